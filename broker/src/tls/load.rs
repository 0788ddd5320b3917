//! Reading the listener's PEM files into a rustls `ServerConfig`, with errors that name the file and what is
//! wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ClientAuth, TlsConfig};

/// The ALPN id of HTTP/2: offered by every gRPC client over TLS, so it marks a gRPC connection.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN id of HTTP/1.1: the admin listener's only protocol.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Which listener a server configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsListener {
    /// The broker port: gRPC (ALPN `h2`) and Kafka, client certificates per `client_ca`.
    Broker,
    /// The admin listener: HTTP/1.1 only (a browser offered `h2` must not get it: the admin server speaks
    /// HTTP/1.1), and no client certificate asked for, since a browser rarely has one and the console signs
    /// users in with their password instead.
    Admin,
}

/// Why the listener's TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {role} {path}: {source}")]
    Read {
        role: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS {role} {path} is not valid PEM: {reason}")]
    Pem { role: &'static str, path: PathBuf, reason: String },
    #[error("TLS {role} {path} holds no certificate (a PEM `BEGIN CERTIFICATE` block is expected)")]
    NoCertificate { role: &'static str, path: PathBuf },
    #[error("TLS key {path} holds no private key (a PEM PKCS#8, PKCS#1 or SEC1 key is expected)")]
    NoKey { path: PathBuf },
    #[error("TLS key {path} cannot be used: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("TLS certificate {cert} and key {key} do not match: the key is not the certificate's")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS client CA {path} cannot be used: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("TLS settings cannot be used: {0}")]
    Rustls(String),
}

pub(crate) fn read(role: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { role, path: path.to_owned(), source })
}

fn certificates(role: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(role, path)?;
    let pem_error =
        |err: rustls::pki_types::pem::Error| TlsError::Pem { role, path: path.to_owned(), reason: err.to_string() };
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { role, path: path.to_owned() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_owned() },
        err => TlsError::Pem { role: "key", path: path.to_owned(), reason: err.to_string() },
    })
}

/// The one crypto provider of the node's TLS: aws-lc-rs (no OpenSSL; its AES-GCM has an AVX-512 path, where
/// ring's stops at AVX2), chosen explicitly so that a second provider linked in by another crate can never make
/// rustls pick at run time.
///
/// AES-128-GCM is preferred to rustls's default first choice, AES-256-GCM (and the listener picks by its own
/// order, not the client's): it has 10 AES rounds to 14, and the cipher is most of what TLS costs a produce
/// stream (docs/benchmarks.md, "TLS").
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| match suite.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
        _ => 2,
    });
    Arc::new(provider)
}

/// Reads the files `tls` names and builds the listener's server configuration: the certificate chain and its
/// key (checked to belong together), client certificates checked against `client_ca` when it is set, ALPN `h2`.
pub fn load_server_config(tls: &TlsConfig, listener: TlsListener) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let chain = certificates("certificate", &tls.cert)?;
    let key = private_key(&tls.key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|err| TlsError::BadKey { path: tls.key.clone(), reason: err.to_string() })?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing_key);
    if certified.keys_match().is_err() {
        return Err(TlsError::Mismatch { cert: tls.cert.clone(), key: tls.key.clone() });
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Rustls(err.to_string()))?;
    let client_auth = match listener {
        TlsListener::Broker => tls.effective_client_auth(),
        TlsListener::Admin => None,
    };
    let builder = match (&tls.client_ca, client_auth) {
        (Some(ca), Some(client_auth)) => {
            let ca_error = |reason: String| TlsError::ClientCa { path: ca.clone(), reason };
            let mut roots = RootCertStore::empty();
            for cert in certificates("client CA", ca)? {
                roots.add(cert).map_err(|err| ca_error(err.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|err| ca_error(err.to_string()))?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|err| TlsError::BadKey { path: tls.key.clone(), reason: err.to_string() })?;
    config.alpn_protocols = match listener {
        TlsListener::Broker => vec![ALPN_H2.to_vec()],
        TlsListener::Admin => vec![ALPN_HTTP_1_1.to_vec()],
    };
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
