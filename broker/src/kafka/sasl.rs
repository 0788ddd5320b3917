//! SASL on a Kafka connection (KIP-43, KIP-152): SaslHandshake v1 picks a mechanism, then SaslAuthenticate
//! carries its messages (PLAIN and OAUTHBEARER: one; SCRAM: two). With `auth.kafka_sasl_mechanisms` set, a connection may send
//! only ApiVersions, SaslHandshake and SaslAuthenticate until it has authenticated; anything else closes it, as
//! Kafka's broker does. A failed authentication is answered SASL_AUTHENTICATION_FAILED with words that name no
//! secret and do not say whether the user exists, after the address's backoff (`auth/backoff.rs`), and the
//! connection is closed. After a SaslHandshake v0 (KIP-43's first form; librdkafka 2.0, Debian bookworm's kcat,
//! needs it advertised, though it then sends v1) the mechanism's messages come as raw SASL frames, a 4-byte
//! size and the bytes, with no Kafka header, and are answered the same way; a failure there closes the
//! connection without an answer, as Kafka's broker does, since a raw frame has no room for an error.
//!
//! With `auth.connections_max_reauth_ms` set, an authentication lasts that long, or until the credential expires
//! when that is sooner (an OAuth token's `exp`), and SaslAuthenticate v1+ tells the client
//! (`session_lifetime_ms`, KIP-368): the client re-authenticates on the same connection before then (a
//! SaslHandshake with the same mechanism, then SaslAuthenticate, as the same principal; requests go on being
//! served meanwhile), or its next request after the end closes the connection, as Kafka's broker does. So a
//! deleted user, a changed password or an expired token stops a connection within that time.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::hmac;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use super::api_versions::supported_versions;
use super::connection::{malformed_by, RequestError};
use super::framing::{encode_response, FrameError, RequestPreamble};
use super::KafkaContext;
use crate::auth::oauth::TokenError;
use crate::auth::scram::{self, ScramCredential, ScramMechanism, ServerFirst, DEFAULT_ITERATIONS};
use crate::auth::{Principal, SaslMechanism, UserStore};

/// The one message every failed authentication gets: whichever part failed, the client learns no more.
const AUTHENTICATION_FAILED: &str = "authentication failed: invalid user name or password";

/// What a connection may do next.
pub enum Gate {
    /// Serve the request as usual.
    Serve,
    /// A SASL request: [`SaslSession::answer`] it.
    Sasl,
    /// Not before authentication: close the connection.
    Refuse,
    /// The authentication's session ended without a re-authentication (KIP-368): close the connection.
    Expired,
}

enum State {
    /// SASL is off: every request is served.
    Off,
    AwaitingHandshake,
    AwaitingAuthenticate(SaslMechanism),
    /// The server-first message was sent; the client's final one is next.
    ScramFinal {
        user: String,
        server: Box<ServerFirst>,
    },
    Authenticated,
}

/// One connection's SASL state and the principal it acts as.
pub struct SaslSession {
    state: State,
    principal: Principal,
    is_tls: bool,
    /// A SaslHandshake v0 chose the mechanism: its messages come as raw frames until it has authenticated.
    is_raw: bool,
    /// The mechanism the last SaslHandshake chose, and the one the connection authenticated with: a
    /// re-authentication must use it again.
    chosen: Option<SaslMechanism>,
    authenticated_with: Option<SaslMechanism>,
    /// When the authentication's session ends (KIP-368); `None`: it lasts as long as the connection.
    session_ends: Option<Instant>,
    /// The last authentication's session lifetime, for SaslAuthenticate's answer (0: no limit).
    session_lifetime_ms: i64,
    /// A re-authentication is under way: requests are still served as the principal already authenticated.
    is_reauthenticating: bool,
}

/// One SASL answer, and whether the connection must close once it is sent (a failure).
pub struct SaslAnswer {
    pub frame: Bytes,
    pub must_close: bool,
}

impl SaslSession {
    /// A new connection's session; without SASL, its principal is its client certificate's, if any.
    pub fn new(kafka: &KafkaContext, is_tls: bool, peer_certificates: Option<crate::tls::PeerCertificates>) -> Self {
        let is_sasl_on = kafka.node.config.auth.is_sasl_on();
        let state = if is_sasl_on { State::AwaitingHandshake } else { State::Off };
        let from_certificate = match peer_certificates {
            Some(chain) if !is_sasl_on => chain.first().and_then(crate::auth::certificate::principal_of),
            _ => None,
        };
        Self {
            state,
            principal: from_certificate.unwrap_or(Principal::Anonymous),
            is_tls,
            is_raw: false,
            chosen: None,
            authenticated_with: None,
            session_ends: None,
            session_lifetime_ms: 0,
            is_reauthenticating: false,
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The next frame is a raw SASL message (after a SaslHandshake v0), not a Kafka request:
    /// [`SaslSession::answer_raw`] it.
    pub fn expects_raw_frame(&self) -> bool {
        self.is_raw
    }

    pub fn gate(&self, api_key: i16) -> Gate {
        let is_sasl = api_key == ApiKey::SaslHandshake as i16 || api_key == ApiKey::SaslAuthenticate as i16;
        match &self.state {
            State::Off if is_sasl => Gate::Refuse,
            State::Off => Gate::Serve,
            _ if is_sasl => Gate::Sasl,
            _ if api_key == ApiKey::ApiVersions as i16 => Gate::Serve,
            _ if self.session_ends.is_some_and(|end| Instant::now() >= end) => Gate::Expired,
            State::Authenticated => Gate::Serve,
            _ if self.is_reauthenticating => Gate::Serve,
            _ => Gate::Refuse,
        }
    }

    /// Answers a SaslHandshake or SaslAuthenticate request.
    pub async fn answer(
        &mut self,
        kafka: &KafkaContext,
        request: Bytes,
        peer: Option<SocketAddr>,
    ) -> Result<SaslAnswer, RequestError> {
        let preamble = RequestPreamble::parse(&request).ok_or(FrameError::TooShort { size: request.len() as i64 })?;
        let RequestPreamble { api_key, api_version: version, correlation_id } = preamble;
        let api = ApiKey::try_from(api_key).map_err(|()| RequestError::UnknownApiKey(api_key))?;
        let (min, max) = supported_versions(api_key).ok_or(RequestError::NotServed(api))?;
        if version < min || version > max {
            return Err(RequestError::UnsupportedVersion { api, version, min, max });
        }
        let malformed = malformed_by(api, version);
        let mut body = request;
        RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(&malformed)?;
        let header_version = api.response_header_version(version);
        if api == ApiKey::SaslHandshake {
            let request = SaslHandshakeRequest::decode(&mut body, version).map_err(&malformed)?;
            let (response, must_close) = self.handshake(kafka, request.mechanism.as_str());
            self.is_raw = version == 0 && !must_close;
            let frame = encode_response(correlation_id, header_version, &response, version)?;
            return Ok(SaslAnswer { frame, must_close });
        }
        let request = SaslAuthenticateRequest::decode(&mut body, version).map_err(&malformed)?;
        let response = match self.authenticate(kafka, request.auth_bytes).await {
            Ok(bytes) => {
                if let (State::Authenticated, Some(peer)) = (&self.state, peer) {
                    kafka.auth_failures.record_success(peer.ip());
                }
                let lifetime_ms = if matches!(self.state, State::Authenticated) { self.session_lifetime_ms } else { 0 };
                SaslAuthenticateResponse::default().with_auth_bytes(bytes).with_session_lifetime_ms(lifetime_ms)
            }
            Err(failure) => {
                self.failed(kafka, peer, &failure).await;
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(failure.code())
                    .with_error_message(Some(StrBytes::from_string(failure.answer())));
                let frame = encode_response(correlation_id, header_version, &response, version)?;
                return Ok(SaslAnswer { frame, must_close: true });
            }
        };
        let frame = encode_response(correlation_id, header_version, &response, version)?;
        Ok(SaslAnswer { frame, must_close: false })
    }

    /// Answers a raw SASL frame (the body of a frame after a SaslHandshake v0) with the mechanism's next
    /// message in a raw frame. A failure gets no answer: the connection closes (`must_close`, empty frame).
    pub async fn answer_raw(&mut self, kafka: &KafkaContext, message: Bytes, peer: Option<SocketAddr>) -> SaslAnswer {
        match self.authenticate(kafka, message).await {
            Ok(reply) => {
                if let (State::Authenticated, Some(peer)) = (&self.state, peer) {
                    kafka.auth_failures.record_success(peer.ip());
                }
                self.is_raw = !matches!(self.state, State::Authenticated);
                let mut frame = bytes::BytesMut::with_capacity(4 + reply.len());
                frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                frame.extend_from_slice(&reply);
                SaslAnswer { frame: frame.freeze(), must_close: false }
            }
            Err(failure) => {
                self.failed(kafka, peer, &failure).await;
                SaslAnswer { frame: Bytes::new(), must_close: true }
            }
        }
    }

    /// Logs a failed authentication and waits out the address's backoff before it is answered.
    async fn failed(&self, kafka: &KafkaContext, peer: Option<SocketAddr>, failure: &Failure) {
        let delay = peer.map(|peer| kafka.auth_failures.record_failure(peer.ip(), Instant::now()));
        tracing::info!(?peer, reason = %failure, "kafka SASL authentication failed");
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    fn handshake(&mut self, kafka: &KafkaContext, asked: &str) -> (SaslHandshakeResponse, bool) {
        let offered = offered(kafka, self.is_tls);
        let names = offered.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(names);
        // KIP-368: a handshake on an authenticated connection whose session ends starts a re-authentication.
        let is_reauthentication = matches!(self.state, State::Authenticated) && self.session_ends.is_some();
        if !matches!(self.state, State::AwaitingHandshake) && !is_reauthentication {
            return (response.with_error_code(ResponseError::IllegalSaslState.code()), true);
        }
        match offered.into_iter().find(|m| m.name().eq_ignore_ascii_case(asked)) {
            Some(mechanism) if is_reauthentication && Some(mechanism) != self.authenticated_with => {
                tracing::info!(principal = %self.principal, asked, "kafka SASL re-authentication with another mechanism refused");
                let original = self.authenticated_with.map(|m| StrBytes::from_static_str(m.name()));
                let response = response.with_mechanisms(original.into_iter().collect());
                (response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()), true)
            }
            Some(mechanism) => {
                self.state = State::AwaitingAuthenticate(mechanism);
                self.chosen = Some(mechanism);
                self.is_reauthenticating = is_reauthentication;
                (response, false)
            }
            None => (response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()), true),
        }
    }

    async fn authenticate(&mut self, kafka: &KafkaContext, auth_bytes: Bytes) -> Result<Bytes, Failure> {
        let users = Arc::clone(&kafka.node.users);
        match std::mem::replace(&mut self.state, State::AwaitingHandshake) {
            State::AwaitingAuthenticate(SaslMechanism::Plain) => {
                let (user, password) = parse_plain(&auth_bytes)?;
                let checked_user = user.clone();
                let is_valid = tokio::task::spawn_blocking(move || users.check_password(&checked_user, &password))
                    .await
                    .unwrap_or(false);
                if !is_valid {
                    return Err(Failure::Refused(format!("PLAIN: wrong password or unknown user {user:?}")));
                }
                self.authenticated(kafka, user, None)?;
                Ok(Bytes::new())
            }
            State::AwaitingAuthenticate(SaslMechanism::Scram(mechanism)) => {
                let first = scram::parse_client_first(&auth_bytes).map_err(|e| Failure::Refused(e.to_string()))?;
                let user = first.user.clone();
                let credential = credential_or_decoy(&users, &user, mechanism);
                let (server, message) = ServerFirst::new(mechanism, first, credential, &scram::server_nonce());
                self.state = State::ScramFinal { user, server: Box::new(server) };
                Ok(Bytes::from(message))
            }
            State::ScramFinal { user, server } => {
                let last = server.finish(&auth_bytes).map_err(|e| Failure::Refused(format!("{e} (user {user:?})")))?;
                // A user deleted during the exchange, or the decoy of an unknown one, never authenticates.
                if !users.list().iter().any(|u| u.name == user) {
                    return Err(Failure::Refused(format!("unknown user {user:?}")));
                }
                self.authenticated(kafka, user, None)?;
                Ok(Bytes::from(last))
            }
            State::AwaitingAuthenticate(SaslMechanism::OAuthBearer) => {
                let token = parse_oauthbearer(&auth_bytes)?;
                let Some(oauth) = &kafka.node.oauth else {
                    return Err(Failure::InvalidToken(TokenError::NoKeys));
                };
                let valid = oauth.validate(&token.bearer).await.map_err(Failure::InvalidToken)?;
                if token.authzid.as_ref().is_some_and(|authzid| *authzid != valid.user) {
                    let reason =
                        format!("OAUTHBEARER authorization id differs from the token's principal {:?}", valid.user);
                    return Err(Failure::Refused(reason));
                }
                self.authenticated(kafka, valid.user, Some(valid.expires_at))?;
                Ok(Bytes::new())
            }
            State::Authenticated => {
                self.state = State::Authenticated;
                Err(Failure::IllegalState)
            }
            State::Off | State::AwaitingHandshake => Err(Failure::IllegalState),
        }
    }

    /// Records an authentication as `user`, whose credential expires at `credential_expires` if it does (a
    /// token); a re-authentication must be as the same principal.
    fn authenticated(
        &mut self,
        kafka: &KafkaContext,
        user: String,
        credential_expires: Option<SystemTime>,
    ) -> Result<(), Failure> {
        let principal = Principal::User(user);
        if self.is_reauthenticating && principal != self.principal {
            let reason =
                format!("re-authentication as {principal}, not {} the connection authenticated as", self.principal);
            return Err(Failure::Refused(reason));
        }
        let max_reauth_ms = kafka.node.config.auth.connections_max_reauth_ms;
        let lifetime = session_lifetime(max_reauth_ms, credential_expires, SystemTime::now());
        self.session_ends = lifetime.map(|lifetime| Instant::now() + lifetime);
        self.session_lifetime_ms = lifetime.map_or(0, |lifetime| lifetime.as_millis().min(i64::MAX as u128) as i64);
        let mechanism = self.chosen.map_or("", SaslMechanism::name);
        tracing::debug!(
            principal = %principal,
            mechanism,
            session_lifetime_ms = self.session_lifetime_ms,
            reauthentication = self.is_reauthenticating,
            "kafka client authenticated"
        );
        self.principal = principal;
        self.state = State::Authenticated;
        self.authenticated_with = self.chosen;
        self.is_reauthenticating = false;
        Ok(())
    }
}

/// Why an authentication failed: a password's reason is logged, never answered; a token's is both (it names
/// what failed, never the token, and tells nothing of which users exist).
enum Failure {
    Refused(String),
    InvalidToken(TokenError),
    IllegalState,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(reason) => f.write_str(reason),
            Failure::InvalidToken(reason) => write!(f, "OAUTHBEARER: {reason}"),
            Failure::IllegalState => f.write_str("SaslAuthenticate out of order (no SaslHandshake first)"),
        }
    }
}

impl Failure {
    fn code(&self) -> i16 {
        match self {
            Failure::Refused(_) | Failure::InvalidToken(_) => ResponseError::SaslAuthenticationFailed.code(),
            Failure::IllegalState => ResponseError::IllegalSaslState.code(),
        }
    }

    fn answer(&self) -> String {
        match self {
            Failure::Refused(_) => AUTHENTICATION_FAILED.to_owned(),
            Failure::InvalidToken(reason) => format!("authentication failed: invalid token: {reason}"),
            Failure::IllegalState => "SaslAuthenticate must follow a successful SaslHandshake".to_owned(),
        }
    }
}

/// The mechanisms this connection may use: PLAIN and OAUTHBEARER, which send a secret itself, only over TLS
/// unless the settings allow them without.
fn offered(kafka: &KafkaContext, is_tls: bool) -> Vec<SaslMechanism> {
    let auth = &kafka.node.config.auth;
    let sends_secret = |m: &SaslMechanism| matches!(m, SaslMechanism::Plain | SaslMechanism::OAuthBearer);
    auth.kafka_sasl_mechanisms
        .iter()
        .copied()
        .filter(|m| !sends_secret(m) || is_tls || auth.sasl_plain_without_tls)
        .collect()
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authzid other than the user is refused (rill acts only as
/// the authenticated user).
fn parse_plain(bytes: &[u8]) -> Result<(String, Vec<u8>), Failure> {
    let malformed = || Failure::Refused("malformed PLAIN message".into());
    let mut parts = bytes.splitn(3, |b| *b == 0);
    let (authzid, user, password) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(u), Some(p)) => (a, u, p),
        _ => return Err(malformed()),
    };
    let user = std::str::from_utf8(user).map_err(|_| malformed())?.to_owned();
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(Failure::Refused(format!("PLAIN authorization id differs from user {user:?}")));
    }
    Ok((user, password.to_vec()))
}

/// The shortest session an authentication gets, so that a token close to its expiry does not have its client
/// re-authenticate in a loop.
const MIN_SESSION: Duration = Duration::from_secs(1);

/// How long an authentication lasts (KIP-368): `connections_max_reauth_ms`, or until the credential expires
/// when that is sooner; `None` (unset or 0) when sessions last as long as their connections, as in Kafka.
fn session_lifetime(
    max_reauth_ms: Option<u64>,
    credential_expires: Option<SystemTime>,
    now: SystemTime,
) -> Option<Duration> {
    let max = Duration::from_millis(max_reauth_ms.filter(|ms| *ms > 0)?);
    let until_expiry = credential_expires.map(|expires| expires.duration_since(now).unwrap_or(Duration::ZERO));
    Some(until_expiry.map_or(max, |until| until.min(max)).max(MIN_SESSION))
}

/// An OAUTHBEARER client's first message.
#[derive(Debug, PartialEq, Eq)]
struct OAuthBearerMessage {
    authzid: Option<String>,
    bearer: String,
}

/// RFC 7628: `n,[a=authzid],` then `\x01`-separated `key=value` pairs, one of them `auth=Bearer TOKEN`, and a
/// closing `\x01`. Other keys (Kafka's SASL extensions) are accepted and ignored; channel binding is refused.
fn parse_oauthbearer(bytes: &[u8]) -> Result<OAuthBearerMessage, Failure> {
    let malformed = |what: &str| Failure::Refused(format!("malformed OAUTHBEARER message: {what}"));
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    let (gs2, rest) = text.split_once('\x01').ok_or_else(|| malformed("no \\x01 after the GS2 header"))?;
    let authzid = match gs2.split(',').collect::<Vec<_>>().as_slice() {
        ["n" | "y", "", ""] => None,
        ["n" | "y", authzid, ""] => {
            let name = authzid.strip_prefix("a=").ok_or_else(|| malformed("a GS2 header part other than a="))?;
            Some(name.replace("=2C", ",").replace("=3D", "="))
        }
        _ => return Err(malformed("the GS2 header must be n,, or n,a=NAME, (no channel binding)")),
    };
    let pairs = rest.strip_suffix("\x01\x01").ok_or_else(|| malformed("it must end with \\x01\\x01"))?;
    let mut bearer = None;
    for pair in pairs.split('\x01') {
        let (key, value) = pair.split_once('=').ok_or_else(|| malformed("a key without =value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(malformed("a key of other than letters"));
        }
        if key == "auth" {
            let (scheme, token) = value.split_once(' ').ok_or_else(|| malformed("auth is not \"Bearer TOKEN\""))?;
            if !scheme.eq_ignore_ascii_case("Bearer") {
                return Err(malformed("auth is not \"Bearer TOKEN\""));
            }
            bearer = Some(token.trim().to_owned());
        }
    }
    let bearer = bearer.filter(|t| !t.is_empty()).ok_or_else(|| malformed("no auth=Bearer TOKEN"))?;
    Ok(OAuthBearerMessage { authzid, bearer })
}

/// `user`'s credential, or for a user that does not exist a decoy: the same for every attempt (its salt an HMAC
/// of the name under a key of this process), so the server-first message does not tell the two apart.
fn credential_or_decoy(users: &Arc<UserStore>, user: &str, mechanism: ScramMechanism) -> ScramCredential {
    if let Some(credential) = users.scram_credential(user, mechanism) {
        return credential;
    }
    static DECOY_KEY: OnceLock<hmac::Key> = OnceLock::new();
    let key = DECOY_KEY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secret);
        hmac::Key::new(hmac::HMAC_SHA256, &secret)
    });
    let salt = hmac::sign(key, format!("{}\0{user}", mechanism.name()).as_bytes()).as_ref().to_vec();
    let len = match mechanism {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    };
    ScramCredential { salt, iterations: DEFAULT_ITERATIONS, stored_key: vec![0; len], server_key: vec![0; len] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_are_parsed_and_a_foreign_authorization_id_is_refused() {
        let (user, password) = parse_plain(b"\0alice\0pencil").ok().expect("valid");
        assert_eq!((user.as_str(), password.as_slice()), ("alice", &b"pencil"[..]));
        assert!(parse_plain(b"alice\0alice\0pw").is_ok());
        assert!(matches!(parse_plain(b"bob\0alice\0pw"), Err(Failure::Refused(_))));
        assert!(matches!(parse_plain(b"alice-pw"), Err(Failure::Refused(_))));
        assert!(matches!(parse_plain(b"\0\xff\0pw"), Err(Failure::Refused(_))));
    }

    proptest::proptest! {
        /// Any bytes a client sends as its OAUTHBEARER message are parsed or refused, never a panic.
        #[test]
        fn any_oauthbearer_message_is_parsed_or_refused(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::Just(1u8), proptest::prelude::Just(b','),
                proptest::prelude::Just(b'='), proptest::prelude::any::<u8>()], 0..64)) {
            let _ = parse_oauthbearer(&bytes);
        }
    }

    #[test]
    fn a_session_lasts_the_reauthentication_interval_or_until_the_credential_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        assert_eq!(session_lifetime(None, Some(now + secs(60)), now), None, "off: as long as the connection");
        assert_eq!(session_lifetime(Some(0), None, now), None, "0 is off, as in Kafka");
        assert_eq!(session_lifetime(Some(300_000), None, now), Some(secs(300)));
        assert_eq!(session_lifetime(Some(300_000), Some(now + secs(60)), now), Some(secs(60)), "the token's exp");
        assert_eq!(session_lifetime(Some(30_000), Some(now + secs(60)), now), Some(secs(30)));
        assert_eq!(session_lifetime(Some(30_000), Some(now - secs(5)), now), Some(MIN_SESSION), "within the skew");
    }

    #[test]
    fn oauthbearer_messages_are_parsed_as_rfc_7628_and_kafka_send_them() {
        let parsed = |bytes: &[u8]| parse_oauthbearer(bytes).ok();
        let token = |authzid: Option<&str>, bearer: &str| {
            Some(OAuthBearerMessage { authzid: authzid.map(str::to_owned), bearer: bearer.to_owned() })
        };
        assert_eq!(parsed(b"n,,\x01auth=Bearer eyJ.a.b\x01\x01"), token(None, "eyJ.a.b"));
        // Kafka's Java client and librdkafka send their SASL extensions as more pairs.
        assert_eq!(parsed(b"n,a=svc,\x01auth=Bearer t.o.k\x01traceId=123\x01\x01"), token(Some("svc"), "t.o.k"));
        assert_eq!(parsed(b"n,,\x01host=broker\x01port=9092\x01auth=bearer  x.y.z\x01\x01"), token(None, "x.y.z"));
        for bad in [
            &b"n,,\x01auth=Bearer x.y.z\x01"[..],
            b"p=tls-unique,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Basic YWxp\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01other=1\x01\x01",
            b"\x01",
            b"n,,\x01au th=Bearer x\x01\x01",
        ] {
            assert!(matches!(parse_oauthbearer(bad), Err(Failure::Refused(_))), "{bad:?}");
        }
    }
}
