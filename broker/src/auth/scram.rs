//! SCRAM (RFC 5802, with SHA-256 and SHA-512 per RFC 7677): the credentials a user is stored as, and the
//! server's side of the exchange.
//!
//! The broker never keeps a password: a credential is the salt, the iteration count, `StoredKey = H(ClientKey)`
//! and `ServerKey`. That is enough to check a client's proof (`H(proof XOR ClientSignature) == StoredKey`) and to
//! prove to the client that the server holds the credential (`ServerSignature`), and not enough to log in.
//! PLAIN is checked against the same credential ([`ScramCredential::matches_password`]).
//!
//! Passwords are taken as their UTF-8 bytes, without SASLprep: the same for any ASCII password, which is what
//! Kafka's own clients send.

use std::num::NonZeroU32;

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// RFC 7677's floor, and Kafka's default.
pub const MIN_ITERATIONS: u32 = 4_096;
/// What new credentials get: twice the floor, still well under a millisecond's worth per login on the client.
pub const DEFAULT_ITERATIONS: u32 = 8_192;
/// The most iterations Kafka's AlterUserScramCredentials accepts (Kafka's `ScramMechanism` bound).
pub const MAX_ITERATIONS: u32 = 16_384;
/// Random bytes of a new credential's salt.
const SALT_BYTES: usize = 32;
/// Longest SCRAM message accepted from a client: names are at most 64 bytes and proofs 88 base64 characters,
/// so a valid message is far shorter; a longer one is refused before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL name, as Kafka clients say it (`sasl.mechanism=SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mechanism| mechanism.name().eq_ignore_ascii_case(name))
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Bytes of the mechanism's hash: a SaltedPassword, a StoredKey and a ServerKey are this long.
    pub fn output_bytes(self) -> usize {
        self.digest().output_len()
    }
}

/// One user's SCRAM credential for one mechanism, as stored: never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs: with them, a server could be impersonated to clients.
        f.debug_struct("ScramCredential").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn generate(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> Self {
        let mut salt = vec![0u8; SALT_BYTES];
        rand::Rng::fill(&mut rand::thread_rng(), salt.as_mut_slice());
        Self::derive(mechanism, password, &salt, iterations)
    }

    /// RFC 5802 §3: SaltedPassword = Hi(password, salt, i); StoredKey = H(HMAC(SaltedPassword, "Client Key"));
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn derive(mechanism: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(mechanism, password, salt, iterations);
        Self::from_salted_password(mechanism, salt, iterations, &salted)
    }

    /// From a SaltedPassword computed elsewhere: Kafka's AlterUserScramCredentials carries that (the client runs
    /// the PBKDF2), never the password. The caller checks its length ([`ScramMechanism::output_bytes`]).
    pub fn from_salted_password(mechanism: ScramMechanism, salt: &[u8], iterations: u32, salted: &[u8]) -> Self {
        let client_key = hmac_of(mechanism, salted, b"Client Key");
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key: digest::digest(mechanism.digest(), &client_key).as_ref().to_vec(),
            server_key: hmac_of(mechanism, salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (SASL PLAIN), compared in constant time.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let candidate = Self::derive(mechanism, password, &self.salt, self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }

    /// Whether the stored fields have the lengths `mechanism` gives and a count SCRAM allows: a damaged file
    /// must not make a login panic or pass.
    pub fn is_well_formed(&self, mechanism: ScramMechanism) -> bool {
        let len = mechanism.output_bytes();
        self.stored_key.len() == len
            && self.server_key.len() == len
            && !self.salt.is_empty()
            && self.iterations >= MIN_ITERATIONS
    }
}

fn salted_password(mechanism: ScramMechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.output_bytes()];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("max(1) is never zero");
    pbkdf2::derive(mechanism.pbkdf2(), iterations, salt, password, &mut out);
    out
}

fn hmac_of(mechanism: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(mechanism.hmac(), key), data).as_ref().to_vec()
}

/// Why an exchange failed. Messages name what was wrong with the message, never a key or a proof.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM {message} message: {reason}")]
    Malformed { message: &'static str, reason: String },
    #[error("SCRAM channel binding is not supported: use the gs2 header \"n,,\"")]
    ChannelBinding,
    #[error("SCRAM extension {0:?} is not supported (delegation tokens are not served)")]
    Extension(String),
    #[error("SCRAM nonce does not continue the server's")]
    NonceMismatch,
    #[error("authentication failed: invalid user name or password")]
    InvalidProof,
}

/// A client's first message, parsed.
#[derive(Debug, Clone)]
pub struct ClientFirst {
    /// The user name, `=2C` and `=3D` decoded.
    pub user: String,
    /// An authorization id in the gs2 header, if any (rill acts only as the authenticated user).
    pub authzid: Option<String>,
    nonce: String,
    /// `client-first-message-bare`, part of AuthMessage.
    bare: String,
    /// The gs2 header, which the final message repeats base64-encoded in `c=`.
    gs2_header: String,
}

/// `gs2-header client-first-message-bare` (RFC 5802 §7).
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let malformed = |reason: &str| ScramError::Malformed { message: "client-first", reason: reason.to_owned() };
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(malformed("too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let (flag, rest) = text.split_once(',').ok_or_else(|| malformed("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        _ if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(malformed("the gs2 header must start with n or y")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| malformed("no gs2 header"))?;
    let authzid = match authzid {
        "" => None,
        _ => Some(decode_saslname(authzid.strip_prefix("a=").ok_or_else(|| malformed("bad authzid"))?)?),
    };
    let gs2_header = text[..text.len() - bare.len()].to_owned();
    let mut fields = bare.split(',');
    if bare.starts_with("m=") {
        return Err(ScramError::Extension("m".into()));
    }
    let user = fields.next().and_then(|f| f.strip_prefix("n=")).ok_or_else(|| malformed("no n= user name"))?;
    let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| malformed("no r= nonce"))?;
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(malformed("the nonce must be printable ASCII without commas"));
    }
    if let Some(extension) = fields.next() {
        // Kafka's `tokenauth=true` asks for delegation tokens, which rill does not issue.
        let name = extension.split_once('=').map_or(extension, |(name, _)| name);
        return Err(ScramError::Extension(name.to_owned()));
    }
    Ok(ClientFirst {
        user: decode_saslname(user)?,
        authzid,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
        gs2_header,
    })
}

/// RFC 5802 §5.1: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let malformed = || ScramError::Malformed { message: "client-first", reason: "bad escape in a name".into() };
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed()),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The server between its first message and the client's final one.
pub struct ServerFirst {
    mechanism: ScramMechanism,
    client_first: ClientFirst,
    credential: ScramCredential,
    /// `server-first-message`, part of AuthMessage.
    message: String,
    nonce: String,
}

impl ServerFirst {
    /// Answers `client_first` for `credential`, adding `server_nonce` (random, printable, no comma) to the
    /// client's nonce. Returns the state and the `server-first-message` to send.
    pub fn new(
        mechanism: ScramMechanism,
        client_first: ClientFirst,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> (Self, String) {
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let message = format!("r={nonce},s={},i={}", BASE64.encode(&credential.salt), credential.iterations);
        (Self { mechanism, client_first, credential, message: message.clone(), nonce }, message)
    }

    /// Checks `client-final-message` and returns the `server-final-message` (`v=ServerSignature`).
    /// Whether `nonce` echoes this exchange's: exactly (RFC 5802), or with the client's own nonce once more in
    /// front, as librdkafka 2.0 sends it (Debian bookworm's kcat; 2.16 sends it exactly), which Kafka's broker
    /// took while it checked only the nonce's end. Either way the server's fresh nonce ends it, and the proof
    /// covers the message as sent, so a replay still fails; any other prefix is refused.
    fn is_echoed_nonce(&self, nonce: &str) -> bool {
        let client_nonce = self.client_first.nonce.as_str();
        nonce == self.nonce || nonce.strip_prefix(client_nonce) == Some(self.nonce.as_str())
    }

    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let malformed = |reason: &str| ScramError::Malformed { message: "client-final", reason: reason.to_owned() };
        if client_final.len() > MAX_MESSAGE_BYTES {
            return Err(malformed("too long"));
        }
        let text = std::str::from_utf8(client_final).map_err(|_| malformed("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| malformed("no p= proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or_else(|| malformed("no c= binding"))?;
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| malformed("no r= nonce"))?;
        if let Some(extension) = fields.next() {
            return Err(ScramError::Extension(extension.split_once('=').map_or(extension, |(n, _)| n).to_owned()));
        }
        if BASE64.decode(binding).ok().as_deref() != Some(self.client_first.gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBinding);
        }
        if !self.is_echoed_nonce(nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = BASE64.decode(proof).map_err(|_| malformed("the proof is not base64"))?;
        let mechanism = self.mechanism;
        if proof.len() != mechanism.output_bytes() || !self.credential.is_well_formed(mechanism) {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!("{},{},{without_proof}", self.client_first.bare, self.message);
        let client_signature = hmac_of(mechanism, &self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        let stored_key = digest::digest(mechanism.digest(), &client_key);
        if !bool::from(stored_key.as_ref().ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_of(mechanism, &self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// A server nonce: 24 random bytes, base64 (printable, never a comma).
pub fn server_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    BASE64.encode(bytes)
}

mod base64_bytes {
    use base64::Engine as _;

    use super::BASE64;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side of the exchange, written from RFC 5802 §3, to drive the server in tests.
    fn client_final(mechanism: ScramMechanism, password: &[u8], client_first_bare: &str, server_first: &str) -> String {
        prefixed_client_final(mechanism, password, client_first_bare, server_first, "")
    }

    /// The same, with `prefix` sent in front of the nonce (the proof covers it, as a client computes it).
    fn prefixed_client_final(
        mechanism: ScramMechanism,
        password: &[u8],
        client_first_bare: &str,
        server_first: &str,
        prefix: &str,
    ) -> String {
        let mut fields = server_first.split(',');
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).expect("r=");
        let salt = BASE64.decode(fields.next().and_then(|f| f.strip_prefix("s=")).expect("s=")).expect("salt");
        let iterations: u32 = fields.next().and_then(|f| f.strip_prefix("i=")).expect("i=").parse().expect("i");
        let salted = salted_password(mechanism, password, &salt, iterations);
        let client_key = hmac_of(mechanism, &salted, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), &client_key);
        let without_proof = format!("c=biws,r={prefix}{nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_of(mechanism, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        format!("{without_proof},p={}", BASE64.encode(proof))
    }

    #[test]
    fn the_rfc_7677_exchange_is_accepted_and_answered_with_its_server_signature() {
        // RFC 7677 §3: user "user", password "pencil".
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let credential = ScramCredential::derive(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").expect("client-first");
        assert_eq!(first.user, "user");
        let (server, server_first) =
            ServerFirst::new(ScramMechanism::Sha256, first, credential, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(server.finish(client_final), Ok("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_owned()));
    }

    #[test]
    fn a_wrong_password_fails_with_an_invalid_proof_for_both_mechanisms() {
        for mechanism in ScramMechanism::ALL {
            let credential = ScramCredential::generate(mechanism, b"right", MIN_ITERATIONS);
            assert!(credential.is_well_formed(mechanism));
            for (password, expected_ok) in [(&b"right"[..], true), (&b"wrong"[..], false)] {
                let first = parse_client_first(b"n,,n=alice,r=abc").expect("client-first");
                let bare = first.bare.clone();
                let (server, server_first) = ServerFirst::new(mechanism, first, credential.clone(), &server_nonce());
                let last = client_final(mechanism, password, &bare, &server_first);
                let outcome = server.finish(last.as_bytes());
                assert_eq!(outcome.is_ok(), expected_ok, "{mechanism:?}: {outcome:?}");
                if !expected_ok {
                    assert_eq!(outcome, Err(ScramError::InvalidProof));
                }
            }
            assert!(credential.matches_password(mechanism, b"right"));
            assert!(!credential.matches_password(mechanism, b"righ"));
        }
    }

    #[test]
    fn the_nonce_is_taken_with_librdkafkas_repeated_client_nonce_and_no_other_prefix() {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", MIN_ITERATIONS);
        for (prefix, expected_ok) in [("", true), ("abc", true), ("x", false), ("abcabc", false)] {
            let first = parse_client_first(b"n,,n=alice,r=abc").expect("client-first");
            let bare = first.bare.clone();
            let (server, server_first) = ServerFirst::new(ScramMechanism::Sha256, first, credential.clone(), "srv");
            let last = prefixed_client_final(ScramMechanism::Sha256, b"pw", &bare, &server_first, prefix);
            let outcome = server.finish(last.as_bytes());
            assert_eq!(outcome.is_ok(), expected_ok, "prefix {prefix:?}: {outcome:?}");
        }
    }

    #[test]
    fn a_replayed_final_message_with_another_nonce_is_refused() {
        let credential = ScramCredential::generate(ScramMechanism::Sha256, b"pw", MIN_ITERATIONS);
        let first = parse_client_first(b"n,,n=alice,r=abc").expect("client-first");
        let (server, _) = ServerFirst::new(ScramMechanism::Sha256, first, credential, "server");
        assert_eq!(server.finish(b"c=biws,r=abcother,p=AAAA"), Err(ScramError::NonceMismatch));
    }

    #[test]
    fn malformed_and_unsupported_client_messages_are_errors_not_panics() {
        for bad in [&b""[..], b"n", b"n,,", b"x,,n=a,r=b", b"n,,r=abc", b"n,,n=a", b"n,,n=a=,r=b", b"\xff,,"] {
            assert!(matches!(parse_client_first(bad), Err(ScramError::Malformed { .. })), "{bad:?}");
        }
        assert_eq!(parse_client_first(b"p=tls-unique,,n=a,r=b").err(), Some(ScramError::ChannelBinding));
        assert_eq!(
            parse_client_first(b"n,,n=a,r=b,tokenauth=true").err(),
            Some(ScramError::Extension("tokenauth".into()))
        );
        assert_eq!(parse_client_first(b"n,,n=a=2Cb=3Dc,r=x").expect("escaped").user, "a,b=c");
        let first = parse_client_first(b"n,,n=a,r=b").expect("client-first");
        let credential = ScramCredential::generate(ScramMechanism::Sha512, b"pw", MIN_ITERATIONS);
        let (server, _) = ServerFirst::new(ScramMechanism::Sha512, first, credential, "s");
        assert!(matches!(server.finish(b"garbage"), Err(ScramError::Malformed { .. })));
    }

    #[test]
    fn a_credential_never_shows_its_keys_in_debug_output() {
        let credential = ScramCredential::derive(ScramMechanism::Sha256, b"pw", b"salt", 4096);
        let shown = format!("{credential:?}");
        assert!(!shown.contains(&BASE64.encode(&credential.stored_key)) && !shown.contains("stored_key"), "{shown}");
    }
}
