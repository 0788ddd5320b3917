//! A client per caller: the broker authenticates and authorizes each call by the credentials it carries, so the
//! proxy carries each HTTP caller's own. A request's `Authorization: Bearer TOKEN` (a rill token or an OAuth JWT)
//! selects the client made with that token; a request without one uses the proxy's own (`ProxyConfig::client`).
//!
//! At most [`MAX_SESSIONS`] clients are kept; the one unused longest makes room for a new caller (a request
//! already holding it finishes with it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_client::{Acks, BearerToken, Client, ClientConfig, Producer, ProducerConfig};

use crate::error::ApiError;

/// Callers' clients kept at once.
pub const MAX_SESSIONS: usize = 64;

/// Whose credentials a request carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Credential {
    /// None: the proxy's own.
    Proxy,
    Bearer(String),
}

impl Credential {
    /// From the `Authorization` header.
    pub fn of(authorization: Option<&str>) -> Result<Self, ApiError> {
        let Some(value) = authorization else { return Ok(Credential::Proxy) };
        let value = value.trim();
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Ok(Credential::Bearer(token.trim().to_owned()))
            }
            _ => Err(ApiError::new(
                401,
                40101,
                "rill's HTTP proxy takes `Authorization: Bearer TOKEN` (a rill token from `rill token create USER`, \
                 or an OAuth JWT), passed on to the broker; other schemes (Basic) are not served",
            )),
        }
    }
}

/// One caller's client and its producer (made at its first produce).
pub(crate) struct Session {
    pub client: Client,
    producer: Mutex<Option<Producer>>,
}

impl Session {
    /// The caller's producer: acknowledged once every in-sync replica holds a batch (Kafka's `acks=all`, its
    /// producers' default), idempotent, each request's records sent at once (no linger).
    pub fn producer(&self) -> Result<Producer, ApiError> {
        let mut held = self.producer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(producer) = held.as_ref() {
            return Ok(producer.clone());
        }
        let config = ProducerConfig { acks: Acks::All, linger: Duration::ZERO, ..ProducerConfig::default() };
        let producer = Producer::new(self.client.clone(), config).map_err(|err| ApiError::from_client(&err))?;
        *held = Some(producer.clone());
        Ok(producer)
    }
}

pub(crate) struct Sessions {
    broker: String,
    base: ClientConfig,
    /// The proxy's own token, for callers without one.
    own_token: Option<String>,
    /// Each session with the stamp of its last use (a counter: ties cannot happen).
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    sessions: HashMap<Credential, (Arc<Session>, u64)>,
    uses: u64,
}

impl Sessions {
    pub fn new(broker: String, base: ClientConfig, own_token: Option<String>) -> Self {
        Self { broker, base, own_token, held: Mutex::new(Held::default()) }
    }

    /// How many callers' clients are held.
    pub fn count(&self) -> usize {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).sessions.len()
    }

    /// The client of `credential`'s caller, made (without connecting yet) if it has none.
    pub fn session(&self, credential: &Credential) -> Result<Arc<Session>, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.uses += 1;
        let now = held.uses;
        if let Some((session, last_used)) = held.sessions.get_mut(credential) {
            *last_used = now;
            return Ok(Arc::clone(session));
        }
        let mut config = self.base.clone();
        let token = match credential {
            Credential::Bearer(token) => Some(token),
            Credential::Proxy => self.own_token.as_ref(),
        };
        config.token = token
            .map(|token| BearerToken::new(token))
            .transpose()
            .map_err(|err| ApiError::new(401, 40101, format!("bearer token: {err}")))?;
        let client = Client::connect_lazy(&self.broker, config).map_err(|err| ApiError::from_client(&err))?;
        if held.sessions.len() >= MAX_SESSIONS {
            let oldest = held.sessions.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                held.sessions.remove(&oldest);
            }
        }
        let session = Arc::new(Session { client, producer: Mutex::new(None) });
        held.sessions.insert(credential.clone(), (Arc::clone(&session), now));
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_passed_on_and_other_schemes_refused() {
        assert_eq!(Credential::of(None), Ok(Credential::Proxy));
        assert_eq!(Credential::of(Some("Bearer abc")), Ok(Credential::Bearer("abc".into())));
        assert_eq!(Credential::of(Some("bearer  abc ")), Ok(Credential::Bearer("abc".into())));
        let basic = Credential::of(Some("Basic YTpi")).unwrap_err();
        assert_eq!((basic.status, basic.error_code), (401, 40101));
        assert!(basic.message.contains("Bearer"), "{}", basic.message);
        assert!(Credential::of(Some("Bearer ")).is_err());
    }

    #[tokio::test]
    async fn callers_past_the_limit_replace_the_one_unused_longest() {
        let sessions = Sessions::new("127.0.0.1:9".into(), ClientConfig::default(), None);
        let first = Credential::Bearer("token-0".into());
        let kept = sessions.session(&first).unwrap();
        for n in 1..=MAX_SESSIONS {
            sessions.session(&Credential::Bearer(format!("token-{n}"))).unwrap();
        }
        let held = sessions.held.lock().unwrap();
        assert_eq!(held.sessions.len(), MAX_SESSIONS);
        assert!(!held.sessions.contains_key(&first), "the one unused longest went");
        drop(held);
        assert!(Arc::strong_count(&kept) == 1, "a caller still holding its session keeps it");
    }
}
