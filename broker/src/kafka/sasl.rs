//! SASL on a Kafka connection (KIP-43, KIP-152): SaslHandshake v1 picks a mechanism, then SaslAuthenticate
//! carries its messages (PLAIN: one; SCRAM: two). With `auth.kafka_sasl_mechanisms` set, a connection may send
//! only ApiVersions, SaslHandshake and SaslAuthenticate until it has authenticated; anything else closes it, as
//! Kafka's broker does. A failed authentication is answered SASL_AUTHENTICATION_FAILED with words that name no
//! secret and do not say whether the user exists, after the address's backoff (`auth/backoff.rs`), and the
//! connection is closed. After a SaslHandshake v0 (KIP-43's first form; librdkafka 2.0, Debian bookworm's kcat,
//! needs it advertised, though it then sends v1) the mechanism's messages come as raw SASL frames, a 4-byte
//! size and the bytes, with no Kafka header, and are answered the same way; a failure there closes the
//! connection without an answer, as Kafka's broker does, since a raw frame has no room for an error.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

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
        Self { state, principal: from_certificate.unwrap_or(Principal::Anonymous), is_tls, is_raw: false }
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
            State::Authenticated => Gate::Serve,
            _ if api_key == ApiKey::ApiVersions as i16 => Gate::Serve,
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
                SaslAuthenticateResponse::default().with_auth_bytes(bytes)
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
        if !matches!(self.state, State::AwaitingHandshake) {
            return (response.with_error_code(ResponseError::IllegalSaslState.code()), true);
        }
        match offered.into_iter().find(|m| m.name().eq_ignore_ascii_case(asked)) {
            Some(mechanism) => {
                self.state = State::AwaitingAuthenticate(mechanism);
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
                self.authenticated(user, "PLAIN");
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
                self.authenticated(user, "SCRAM");
                Ok(Bytes::from(last))
            }
            State::Authenticated => {
                self.state = State::Authenticated;
                Err(Failure::IllegalState)
            }
            State::Off | State::AwaitingHandshake => Err(Failure::IllegalState),
        }
    }

    fn authenticated(&mut self, user: String, mechanism: &'static str) {
        self.principal = Principal::User(user);
        self.state = State::Authenticated;
        tracing::debug!(principal = %self.principal, mechanism, "kafka client authenticated");
    }
}

/// Why an authentication failed: the reason is logged, never answered.
enum Failure {
    Refused(String),
    IllegalState,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(reason) => f.write_str(reason),
            Failure::IllegalState => f.write_str("SaslAuthenticate out of order (no SaslHandshake first)"),
        }
    }
}

impl Failure {
    fn code(&self) -> i16 {
        match self {
            Failure::Refused(_) => ResponseError::SaslAuthenticationFailed.code(),
            Failure::IllegalState => ResponseError::IllegalSaslState.code(),
        }
    }

    fn answer(&self) -> String {
        match self {
            Failure::Refused(_) => AUTHENTICATION_FAILED.to_owned(),
            Failure::IllegalState => "SaslAuthenticate must follow a successful SaslHandshake".to_owned(),
        }
    }
}

/// The mechanisms this connection may use: PLAIN only over TLS unless the settings allow it without.
fn offered(kafka: &KafkaContext, is_tls: bool) -> Vec<SaslMechanism> {
    let auth = &kafka.node.config.auth;
    auth.kafka_sasl_mechanisms
        .iter()
        .copied()
        .filter(|m| *m != SaslMechanism::Plain || is_tls || auth.sasl_plain_without_tls)
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
}
