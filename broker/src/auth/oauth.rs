//! OAuth 2 bearer tokens from an identity provider (OIDC: Keycloak, Okta, Entra ID, Auth0, ...): a client
//! gets a JWT from the provider and shows it, by SASL OAUTHBEARER on the Kafka port (`kafka/sasl.rs`, RFC 7628,
//! Kafka's KIP-255 and KIP-768) or as `authorization: Bearer JWT` on gRPC and the admin listener. The broker
//! never talks to the provider but to read its public signing keys (a JWKS, RFC 7517: an `https://` or
//! `http://` URL, or a file): it checks each token's signature against them, its expiry (with a clock skew
//! allowance), and the issuer and audience it was told to expect; the principal is `User:` and one of the
//! token's claims (`sub` unless told otherwise), held to the user-name rule ACLs use.
//!
//! **Invariants:** only asymmetric signatures (RS*, PS*, ES*, EdDSA) are accepted, never a shared secret
//! (`HS*`) nor an unsigned token, whatever the token's header asks; a token is never logged. A key is used only
//! for the algorithm family it belongs to and, when the JWKS names one, its algorithm. The keys are read again
//! every `jwks_refresh_secs`, and at most every [`MIN_REFETCH`] when a token names a key id they lack (the
//! provider rotated its keys): a failed read keeps the keys already held, so a provider briefly down stops no
//! client whose token's key is known.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// A token naming a key id the keys lack makes the broker read them again, but not more often than this.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Longest a read of the provider's keys may take (connect, TLS, answer).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document read: providers publish a few keys, a few KiB.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// `[auth.oauth]` in the broker's TOML (docs/security.md, "OAuth bearer tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The provider's public keys: an `https://` or `http://` URL of its JWKS (OIDC's `jwks_uri`), or a file.
    pub jwks: String,
    /// A PEM file of the CA that signed the JWKS URL's certificate, beside the public CAs.
    #[serde(default)]
    pub jwks_ca: Option<PathBuf>,
    /// The `iss` every token must carry; unset: any issuer (the keys alone vouch for the token).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Audiences one of which every token's `aud` must name; empty: `aud` is not checked.
    #[serde(default)]
    pub audience: Vec<String>,
    /// The claim naming the principal (`User:` and its value).
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// How far the broker's clock and the provider's may disagree on `exp` and `nbf`.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// How often the keys are read again.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
}

fn default_principal_claim() -> String {
    "sub".to_owned()
}

fn default_clock_skew_secs() -> u64 {
    30
}

fn default_jwks_refresh_secs() -> u64 {
    3600
}

impl OAuthConfig {
    pub fn new(jwks: impl Into<String>) -> Self {
        Self {
            jwks: jwks.into(),
            jwks_ca: None,
            issuer: None,
            audience: Vec::new(),
            principal_claim: default_principal_claim(),
            clock_skew_secs: default_clock_skew_secs(),
            jwks_refresh_secs: default_jwks_refresh_secs(),
        }
    }

    /// Checks the settings that need no I/O; the keys themselves are read at start ([`OAuthValidator::start`]).
    pub(crate) fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let bad = |setting, reason: String| Err(crate::config::ConfigError { setting, reason });
        if let Err(reason) = JwksSource::parse(&self.jwks) {
            return bad("auth.oauth.jwks", reason);
        }
        if self.jwks_ca.is_some() && !self.jwks.starts_with("https://") {
            return bad("auth.oauth.jwks_ca", "a CA for the JWKS needs an https:// jwks URL".into());
        }
        if self.principal_claim.is_empty() || self.principal_claim.len() > 256 {
            return bad("auth.oauth.principal_claim", "a claim name of 1 to 256 characters, such as sub".into());
        }
        if self.clock_skew_secs > 3600 {
            return bad("auth.oauth.clock_skew_secs", format!("at most 3600 seconds, not {}", self.clock_skew_secs));
        }
        if !(10..=7 * 86_400).contains(&self.jwks_refresh_secs) {
            return bad(
                "auth.oauth.jwks_refresh_secs",
                format!("10 seconds to 7 days (604800), not {}", self.jwks_refresh_secs),
            );
        }
        if self.audience.iter().any(String::is_empty) || self.issuer.as_deref() == Some("") {
            return bad("auth.oauth", "an issuer or audience must not be empty".into());
        }
        Ok(())
    }
}

/// Why the provider's keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("cannot read the OAuth keys (auth.oauth.jwks) from {source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
    #[error("cannot read the JWKS CA file {path} (auth.oauth.jwks_ca): {reason}")]
    Ca { path: PathBuf, reason: String },
}

/// Why a token is refused. The words are the client's too: they name what failed, never a key or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT (header.payload.signature, base64url)")]
    Malformed,
    #[error("the token is signed with {0:?}: only RS*, PS*, ES* and EdDSA signatures are accepted")]
    Algorithm(Algorithm),
    #[error("the token names key id {0:?}, which the identity provider's keys do not have")]
    UnknownKey(String),
    #[error("no key of the identity provider verifies the token's signature")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token has no exp claim")]
    NoExpiry,
    #[error("the token's issuer is not the one the broker expects")]
    Issuer,
    #[error("the token's audience does not name this broker")]
    Audience,
    #[error("the token has no {0:?} claim naming its principal as a string")]
    NoPrincipal(String),
    #[error("the token's {claim:?} claim is not a valid principal name: {reason}")]
    Principal { claim: String, reason: String },
    #[error("the identity provider's keys could not be read")]
    NoKeys,
}

/// A token that passed: who it names and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    pub user: String,
    pub expires_at: SystemTime,
}

/// Where the keys come from.
#[derive(Debug, Clone)]
enum JwksSource {
    File(PathBuf),
    Url { uri: http::Uri, is_tls: bool },
}

impl JwksSource {
    fn parse(text: &str) -> Result<Self, String> {
        let is_tls = text.starts_with("https://");
        if !is_tls && !text.starts_with("http://") {
            if text.is_empty() || text.contains("://") {
                return Err(format!("{text:?} is neither an https:// or http:// URL nor a file path"));
            }
            return Ok(JwksSource::File(PathBuf::from(text)));
        }
        let uri: http::Uri = text.parse().map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{text:?} names no host"));
        }
        Ok(JwksSource::Url { uri, is_tls })
    }

    fn name(&self) -> String {
        match self {
            JwksSource::File(path) => path.display().to_string(),
            JwksSource::Url { uri, .. } => uri.to_string(),
        }
    }
}

/// One usable key of the provider's set.
struct PublicKey {
    kid: Option<String>,
    /// The algorithm the JWKS pins the key to (`alg`), if it does.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

/// The keys and when they were last read (or a read last tried).
struct Keys {
    keys: Arc<Vec<PublicKey>>,
    fetched_at: Option<Instant>,
    tried_at: Option<Instant>,
}

/// Checks bearer tokens against the identity provider's keys; one per node, shared by every listener.
pub struct OAuthValidator {
    config: OAuthConfig,
    source: JwksSource,
    tls: Option<Arc<rustls::ClientConfig>>,
    keys: Mutex<Keys>,
    /// One read of the keys at a time; tokens arriving meanwhile wait for it rather than read again.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OAuthValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthValidator").field("jwks", &self.config.jwks).finish_non_exhaustive()
    }
}

impl OAuthValidator {
    /// Reads the keys once. A file that cannot be read, or holds no usable key, fails the start (a setting to
    /// fix); a URL that cannot be read is logged and read again with the first token, so that a node restarted
    /// while the provider is down still starts (its clients then wait for the provider, as they would for a
    /// token).
    pub async fn start(config: OAuthConfig) -> Result<Arc<Self>, OAuthError> {
        let source = JwksSource::parse(&config.jwks)
            .map_err(|reason| OAuthError::Jwks { source_name: config.jwks.clone(), reason })?;
        let tls = match &source {
            JwksSource::Url { is_tls: true, .. } => Some(client_tls(config.jwks_ca.as_deref())?),
            _ => None,
        };
        let validator = Arc::new(Self {
            config,
            source,
            tls,
            keys: Mutex::new(Keys { keys: Arc::new(Vec::new()), fetched_at: None, tried_at: None }),
            refreshing: tokio::sync::Mutex::new(()),
        });
        match validator.refresh().await {
            Ok(count) => tracing::info!(jwks = %validator.source.name(), keys = count, "OAuth keys read"),
            Err(err) if matches!(validator.source, JwksSource::File(_)) => return Err(err),
            Err(err) => tracing::warn!(error = %err, "OAuth keys not read at start; tried again with the first token"),
        }
        Ok(validator)
    }

    /// Checks `token` and names its principal.
    pub async fn validate(&self, token: &str) -> Result<ValidToken, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !is_asymmetric(header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let refresh_every = Duration::from_secs(self.config.jwks_refresh_secs);
        let (keys, is_stale, may_refetch) = {
            let keys = self.lock_keys();
            let now = Instant::now();
            let is_stale = keys.fetched_at.is_none_or(|at| now.duration_since(at) >= refresh_every);
            let may_refetch = keys.tried_at.is_none_or(|at| now.duration_since(at) >= MIN_REFETCH);
            (Arc::clone(&keys.keys), is_stale, may_refetch)
        };
        let is_refreshed = is_stale && may_refetch;
        let keys = if is_refreshed { self.refresh_or_keep().await } else { keys };
        let keys = match candidates(&keys, header.kid.as_deref(), header.alg) {
            found if !found.is_empty() || !may_refetch || is_refreshed || header.kid.is_none() => keys,
            // A key id the keys lack: the provider may have rotated its keys since they were read.
            _ => self.refresh_or_keep().await,
        };
        if keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let found = candidates(&keys, header.kid.as_deref(), header.alg);
        if found.is_empty() {
            return Err(match header.kid {
                Some(kid) => TokenError::UnknownKey(kid),
                None => TokenError::Signature,
            });
        }
        let validation = self.validation(header.alg);
        let mut last = TokenError::Signature;
        for key in found {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation) {
                Ok(data) => return self.principal_of(&data.claims),
                Err(err) => {
                    last = token_error(&err);
                    if last != TokenError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.clock_skew_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.validate_aud = !self.config.audience.is_empty();
        if validation.validate_aud {
            validation.set_audience(&self.config.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    fn principal_of(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<ValidToken, TokenError> {
        let claim = &self.config.principal_claim;
        let user = claims
            .get(claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| TokenError::NoPrincipal(claim.clone()))?;
        super::users::validate_name(user).map_err(|err| TokenError::Principal {
            claim: claim.clone(),
            reason: match err {
                super::AuthError::InvalidUserName { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        let exp = claims.get("exp").and_then(serde_json::Value::as_u64).ok_or(TokenError::NoExpiry)?;
        Ok(ValidToken { user: user.to_owned(), expires_at: UNIX_EPOCH + Duration::from_secs(exp) })
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the keys again, or keeps those held when that fails (logged).
    async fn refresh_or_keep(&self) -> Arc<Vec<PublicKey>> {
        if let Err(err) = self.refresh().await {
            tracing::warn!(error = %err, "OAuth keys not read again; the keys held stay in use");
        }
        Arc::clone(&self.lock_keys().keys)
    }

    /// Reads the keys; returns how many are usable. Callers that waited for another's read use its result.
    async fn refresh(&self) -> Result<usize, OAuthError> {
        let started = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        if self.lock_keys().tried_at.is_some_and(|at| at >= started) {
            return Ok(self.lock_keys().keys.len());
        }
        self.lock_keys().tried_at = Some(Instant::now());
        let failed = |reason: String| OAuthError::Jwks { source_name: self.source.name(), reason };
        let document = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path).await.map_err(|e| failed(e.to_string()))?,
            JwksSource::Url { uri, .. } => tokio::time::timeout(FETCH_TIMEOUT, fetch(uri, self.tls.clone()))
                .await
                .map_err(|_| failed(format!("no answer within {FETCH_TIMEOUT:?}")))?
                .map_err(failed)?,
        };
        let keys = parse_jwks(&document).map_err(failed)?;
        let count = keys.len();
        let mut held = self.lock_keys();
        held.keys = Arc::new(keys);
        held.fetched_at = Some(Instant::now());
        tracing::debug!(jwks = %self.source.name(), keys = count, "OAuth keys read");
        Ok(count)
    }
}

/// The JWT in an `Authorization` header's value (`Bearer JWT`), if it carries one rather than a token of rill's
/// own (`rill_...`).
pub fn jwt_in_bearer(authorization: &str) -> Option<&str> {
    let token = authorization.strip_prefix("Bearer ")?.trim();
    let is_jwt = !token.starts_with(super::users::TOKEN_PREFIX) && token.bytes().filter(|b| *b == b'.').count() == 2;
    is_jwt.then_some(token)
}

fn is_asymmetric(algorithm: Algorithm) -> bool {
    !matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The keys that may have signed a token of `algorithm` naming `kid`.
fn candidates<'a>(keys: &'a [PublicKey], kid: Option<&str>, algorithm: Algorithm) -> Vec<&'a PublicKey> {
    keys.iter()
        .filter(|key| kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
        .filter(|key| key.key.family() == algorithm.family())
        .filter(|key| key.algorithm.is_none_or(|pinned| pinned == algorithm))
        .collect()
}

/// The usable signing keys of a JWKS document: RSA, EC and OKP keys not marked for encryption. A document
/// with none is refused (a wrong URL, or the provider's symmetric keys only).
fn parse_jwks(document: &[u8]) -> Result<Vec<PublicKey>, String> {
    let set: JwkSet = serde_json::from_slice(document).map_err(|e| format!("not a JWKS (RFC 7517) document: {e}"))?;
    let keys: Vec<PublicKey> = set.keys.iter().filter_map(usable).collect();
    if keys.is_empty() {
        return Err(format!(
            "none of its {} keys is a public signing key rill can use (RSA, EC or OKP, not marked \"use\": \"enc\")",
            set.keys.len()
        ));
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<PublicKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(alg) => Some(Algorithm::try_from(alg).ok()?),
        None => None,
    };
    if algorithm.is_some_and(|alg| alg.family() != key.family()) {
        return None;
    }
    Some(PublicKey { kid: jwk.common.key_id.clone(), algorithm, key })
}

fn token_error(err: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => TokenError::NoExpiry,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::Audience,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => TokenError::Signature,
        ErrorKind::InvalidAlgorithm => TokenError::Signature,
        _ => TokenError::Malformed,
    }
}

/// The public CAs, and `ca` if given, for an `https://` JWKS URL.
fn client_tls(ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, OAuthError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let failed = |reason: String| OAuthError::Ca { path: path.to_owned(), reason };
        let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        let mut added = 0;
        for certificate in rustls_pemfile_certificates(&pem).map_err(failed)? {
            roots.add(certificate).map_err(|e| failed(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(failed("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OAuthError::Jwks { source_name: "TLS".into(), reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn rustls_pemfile_certificates(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// GETs `uri` (HTTP/1.1, no redirects) and returns its body, at most [`MAX_JWKS_BYTES`].
async fn fetch(uri: &http::Uri, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Vec<u8>, String> {
    let host = uri.host().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host.clone(), |a| a.as_str().to_owned());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, concat!("rill/", env!("CARGO_PKG_VERSION")))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = match tls {
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{host:?}: {e}"))?;
            let stream =
                tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            send(stream, request).await?
        }
        None => send(tcp, request).await?,
    };
    if response.status() != http::StatusCode::OK {
        return Err(format!("answered {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES);
    let bytes = body.collect().await.map_err(|e| format!("reading the answer: {e}"))?.to_bytes();
    Ok(bytes.to_vec())
}

async fn send<S>(
    stream: S,
    request: http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "JWKS connection ended");
        }
    });
    sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))
}

/// Seconds since the epoch, for tokens made in tests.
#[cfg(test)]
fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    /// A signing key of a made-up provider, and its JWK.
    pub(crate) struct TestSigner {
        pub kid: String,
        key: EncodingKey,
        pub jwk: Jwk,
        algorithm: Algorithm,
    }

    impl TestSigner {
        pub(crate) fn es256(kid: &str) -> Self {
            use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
            let key = EncodingKey::from_ec_der(pkcs8.as_ref());
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
            jwk.common.key_id = Some(kid.to_owned());
            Self { kid: kid.to_owned(), key, jwk, algorithm: Algorithm::ES256 }
        }

        pub(crate) fn sign(&self, claims: &serde_json::Value) -> String {
            let mut header = Header::new(self.algorithm);
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
        }
    }

    pub(crate) fn jwks_of(signers: &[&TestSigner]) -> String {
        let set = JwkSet { keys: signers.iter().map(|s| s.jwk.clone()).collect() };
        serde_json::to_string(&set).expect("json")
    }

    fn claims(sub: &str, exp_in: i64) -> serde_json::Value {
        let exp = now_secs() as i64 + exp_in;
        serde_json::json!({"sub": sub, "exp": exp, "iat": now_secs(), "iss": "https://idp.test", "aud": "rill"})
    }

    async fn validator_over(
        dir: &std::path::Path,
        jwks: &str,
        tune: impl FnOnce(&mut OAuthConfig),
    ) -> Arc<OAuthValidator> {
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks).expect("write");
        let mut config = OAuthConfig::new(path.display().to_string());
        tune(&mut config);
        OAuthValidator::start(config).await.expect("start")
    }

    #[tokio::test]
    async fn a_signed_token_names_its_subject_and_every_bad_one_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = TestSigner::es256("k1");
        let stranger = TestSigner::es256("k1");
        let validator = validator_over(dir.path(), &jwks_of(&[&signer]), |c| {
            c.issuer = Some("https://idp.test".into());
            c.audience = vec!["rill".into()];
            c.clock_skew_secs = 5;
        })
        .await;
        let token = validator.validate(&signer.sign(&claims("svc-orders", 300))).await.expect("valid");
        assert_eq!(token.user, "svc-orders");
        assert!(token.expires_at > SystemTime::now());
        let refused = |claims: serde_json::Value| {
            let token = signer.sign(&claims);
            let validator = Arc::clone(&validator);
            async move { validator.validate(&token).await.expect_err("refused") }
        };
        assert_eq!(refused(claims("a", -60)).await, TokenError::Expired);
        assert!(validator.validate(&signer.sign(&claims("a", -2))).await.is_ok(), "within the clock skew");
        let mut other_issuer = claims("a", 300);
        other_issuer["iss"] = "https://evil.test".into();
        assert_eq!(refused(other_issuer).await, TokenError::Issuer);
        let mut other_audience = claims("a", 300);
        other_audience["aud"] = serde_json::json!(["kafka", "web"]);
        assert_eq!(refused(other_audience).await, TokenError::Audience);
        let mut no_exp = claims("a", 300);
        no_exp.as_object_mut().expect("object").remove("exp");
        assert_eq!(refused(no_exp).await, TokenError::NoExpiry);
        let mut later = claims("a", 300);
        later["nbf"] = (now_secs() + 120).into();
        assert_eq!(refused(later).await, TokenError::NotYetValid);
        assert!(matches!(refused(claims("auth0|123", 300)).await, TokenError::Principal { .. }));
        let mut no_sub = claims("a", 300);
        no_sub.as_object_mut().expect("object").remove("sub");
        assert_eq!(refused(no_sub).await, TokenError::NoPrincipal("sub".into()));
        assert_eq!(
            validator.validate(&stranger.sign(&claims("a", 300))).await,
            Err(TokenError::Signature),
            "same key id, another key"
        );
        assert_eq!(validator.validate("not.a.token").await, Err(TokenError::Malformed));
        let forged = {
            let header = Header::new(Algorithm::HS256);
            jsonwebtoken::encode(&header, &claims("admin", 300), &EncodingKey::from_secret(&[7u8; 32]).expect("key"))
                .expect("sign")
        };
        assert_eq!(validator.validate(&forged).await, Err(TokenError::Algorithm(Algorithm::HS256)));
        // A tampered payload keeps the header and signature of a valid token.
        let valid = signer.sign(&claims("reader", 300));
        let parts: Vec<&str> = valid.split('.').collect();
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&claims("admin", 300)).expect("json"),
        );
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(validator.validate(&tampered).await, Err(TokenError::Signature));
    }

    #[tokio::test]
    async fn another_claim_may_name_the_principal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = TestSigner::es256("k1");
        let validator =
            validator_over(dir.path(), &jwks_of(&[&signer]), |c| c.principal_claim = "client_id".into()).await;
        let mut with_client = claims("3f1c-uuid", 300);
        with_client["client_id"] = "billing".into();
        assert_eq!(validator.validate(&signer.sign(&with_client)).await.expect("valid").user, "billing");
        assert_eq!(
            validator.validate(&signer.sign(&claims("x", 300))).await,
            Err(TokenError::NoPrincipal("client_id".into()))
        );
    }

    #[tokio::test]
    async fn rotated_keys_are_read_again_for_an_unknown_key_id_but_not_more_often_than_the_minimum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = TestSigner::es256("old");
        let new = TestSigner::es256("new");
        let validator = validator_over(dir.path(), &jwks_of(&[&old]), |_| {}).await;
        // Let the start's read age past the minimum, then rotate.
        validator.lock_keys().tried_at = Some(Instant::now() - MIN_REFETCH);
        std::fs::write(dir.path().join("jwks.json"), jwks_of(&[&new])).expect("rotate");
        assert_eq!(validator.validate(&new.sign(&claims("a", 300))).await.expect("read again").user, "a");
        assert_eq!(
            validator.validate(&old.sign(&claims("a", 300))).await,
            Err(TokenError::UnknownKey("old".into())),
            "the old key is gone, and the keys were just read"
        );
        // Within the minimum, an unknown key id does not read the file again.
        std::fs::write(dir.path().join("jwks.json"), jwks_of(&[&old, &new])).expect("rotate back");
        assert_eq!(validator.validate(&old.sign(&claims("a", 300))).await, Err(TokenError::UnknownKey("old".into())));
        // A failed read keeps the keys held.
        validator.lock_keys().tried_at = Some(Instant::now() - MIN_REFETCH);
        std::fs::write(dir.path().join("jwks.json"), "{not json").expect("break");
        assert!(validator.validate(&new.sign(&claims("a", 300))).await.is_ok());
        assert_eq!(validator.validate(&old.sign(&claims("a", 300))).await, Err(TokenError::UnknownKey("old".into())));
    }

    #[tokio::test]
    async fn a_key_file_without_a_usable_key_fails_the_start_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#).expect("write");
        let err = OAuthValidator::start(OAuthConfig::new(path.display().to_string())).await.expect_err("no key");
        assert!(err.to_string().contains("public signing key"), "{err}");
        let missing = OAuthValidator::start(OAuthConfig::new(dir.path().join("nope").display().to_string()));
        assert!(missing.await.expect_err("missing").to_string().contains("auth.oauth.jwks"));
        let mut enc = TestSigner::es256("e").jwk;
        enc.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(parse_jwks(serde_json::to_string(&JwkSet { keys: vec![enc] }).expect("json").as_bytes()).is_err());
    }

    #[tokio::test]
    async fn keys_are_read_over_http_and_a_provider_down_at_start_does_not_stop_the_node() {
        let signer = TestSigner::es256("k1");
        let body = jwks_of(&[&signer]);
        let addr = {
            let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            closed.local_addr().expect("addr")
        };
        let down = OAuthValidator::start(OAuthConfig::new(format!("http://{addr}/certs"))).await.expect("starts");
        assert_eq!(down.validate(&signer.sign(&claims("svc", 300))).await, Err(TokenError::NoKeys));
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind again");
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let body = body.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut request = vec![0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(format!("{head}{body}\r\n0\r\n\r\n").as_bytes()).await;
                });
            }
        });
        let validator = OAuthValidator::start(OAuthConfig::new(format!("http://{addr}/certs"))).await.expect("start");
        assert_eq!(validator.validate(&signer.sign(&claims("svc", 300))).await.expect("valid").user, "svc");
        let config = OAuthConfig::new("ftp://idp/certs");
        assert!(config.validate().is_err());
    }
}
