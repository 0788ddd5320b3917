//! TLS to the broker (docs/security.md): used for an `https://` address, and for every node learned from one
//! (leaders, coordinators), so a cluster reached over TLS is never spoken to in plaintext.
//!
//! The broker's certificate must chain to a CA this client trusts: the public web PKI roots (Mozilla's, as
//! `webpki-roots` ships them) and any CA given here. A client certificate is presented when the broker asks
//! for one (mutual TLS).
//!
//! The handshake is ours (tokio-rustls, called by `http2.rs` when it opens a connection), not tonic's `tls_config`,
//! for one setting tonic does not reach: how much ciphertext a connection may queue before it writes to the socket
//! (`SEND_BUFFER_BYTES`). docs/benchmarks.md, "TLS", has the profile that asked for it.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

/// The ALPN id of HTTP/2, which gRPC needs: a broker that does not pick it is not a gRPC endpoint.
const ALPN_H2: &[u8] = b"h2";

/// Ciphertext a connection may hold before its next socket write, and so the most one write carries: 64 TLS
/// records of 16 KiB. rustls's default of 64 KiB makes every write 4 records, 65,624 bytes, one more than a
/// 64 KiB loopback segment holds: the write leaves as a full segment and an 88-byte one, and the kernel's
/// per-packet cost on both ends doubles. One MiB a connection is the memory this costs, at most.
const SEND_BUFFER_BYTES: usize = 1 << 20;

/// What a client trusts and presents over TLS. Its `Debug` never shows the private key.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) trusted besides the public roots: a private CA that signed the broker's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// This client's certificate chain and private key (PEM), for a broker that asks for one.
    pub identity: Option<ClientIdentity>,
    /// The name the broker's certificate must be valid for, when it is not the address's host.
    pub server_name: Option<String>,
}

/// A client certificate chain and its key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("has_ca", &self.ca_pem.is_some())
            .field("has_identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn read(role: &str, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|err| Error::InvalidUse { message: format!("cannot read TLS {role} {}: {err}", path.display()) })?;
    if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(Error::InvalidUse {
            message: format!("TLS {role} {} is not PEM (no `-----BEGIN` line)", path.display()),
        });
    }
    Ok(bytes)
}

impl ClientTls {
    /// Reads the PEM files: `ca` to trust besides the public roots; `cert` and `key` (both or neither) to present.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let ca_pem = ca.map(|path| read("CA", path)).transpose()?;
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                Some(ClientIdentity { cert_pem: read("certificate", cert)?, key_pem: read("key", key)? })
            }
            (None, None) => None,
            _ => {
                return Err(Error::InvalidUse {
                    message: "a TLS client certificate needs its key, and a key its certificate: give both".into(),
                })
            }
        };
        Ok(Self { ca_pem, identity, server_name: None })
    }

    /// The rustls settings: the public roots and `ca_pem` trusted, `identity` presented, HTTP/2 offered.
    fn rustls_config(&self) -> std::result::Result<ClientConfig, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &self.ca_pem {
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|err| format!("CA certificates are not valid PEM: {err}"))?;
                roots.add(cert).map_err(|err| format!("CA certificate cannot be trusted: {err}"))?;
            }
        }
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => {
                let chain = CertificateDer::pem_slice_iter(&identity.cert_pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|err| format!("client certificate is not valid PEM: {err}"))?;
                let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
                    .map_err(|err| format!("client key is not a PEM private key: {err}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|err| format!("client certificate: {err}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }

    /// The connector a channel to `https://` addresses opens its connections with.
    pub(crate) fn connector(&self) -> std::result::Result<TlsConnector, String> {
        let server_name = match &self.server_name {
            Some(name) => {
                Some(ServerName::try_from(name.clone()).map_err(|err| format!("server name {name:?}: {err}"))?)
            }
            None => None,
        };
        Ok(TlsConnector { config: Arc::new(self.rustls_config()?), server_name })
    }
}

/// Opens a TCP connection to the URI's host and port and runs the TLS handshake over it; the name checked in
/// the broker's certificate is the host, unless `ClientTls::server_name` says otherwise.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(&uri).await.map(TokioIo::new) })
    }
}

impl TlsConnector {
    pub(crate) async fn connect(&self, uri: &Uri) -> io::Result<TlsStream<TcpStream>> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {what}"));
        // An IPv6 literal comes bracketed in a URI; neither the resolver nor the certificate check wants those.
        let host = uri.host().ok_or_else(|| invalid("no host"))?.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let server_name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                ServerName::try_from(host.to_owned()).map_err(|_| invalid("host is not a valid TLS server name"))?
            }
        };
        let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(&self.config)).connect(server_name, tcp).await?;
        let (_, session) = stream.get_mut();
        if session.alpn_protocol() != Some(ALPN_H2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{uri} did not agree to HTTP/2 in the TLS handshake (ALPN h2): it is not a gRPC endpoint"),
            ));
        }
        session.set_buffer_limit(Some(SEND_BUFFER_BYTES));
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::time::Duration;

    use rcgen::{CertificateParams, KeyPair};
    use rustls::ServerConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tower::Service;

    use super::*;

    /// A self-signed certificate for 127.0.0.1 (PEM) and a server configuration with it, offering `alpn`.
    fn server(alpn: &[&[u8]]) -> (Vec<u8>, Arc<ServerConfig>) {
        let key = KeyPair::generate().expect("key");
        let cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params").self_signed(&key).expect("cert");
        let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key DER");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
            .expect("server config");
        config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
        (cert.pem().into_bytes(), Arc::new(config))
    }

    /// Accepts one TLS connection and returns everything read from it until the client closes.
    async fn listen(config: Arc<ServerConfig>) -> (Uri, tokio::task::JoinHandle<std::io::Result<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let uri: Uri = format!("http://{}", listener.local_addr().expect("addr")).parse().expect("uri");
        let accepted = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
            let mut received = Vec::new();
            stream.read_to_end(&mut received).await?;
            Ok(received)
        });
        (uri, accepted)
    }

    fn client(ca_pem: Vec<u8>) -> TlsConnector {
        ClientTls { ca_pem: Some(ca_pem), identity: None, server_name: None }.connector().expect("connector")
    }

    #[tokio::test]
    async fn vectored_writes_past_the_send_buffer_arrive_whole_and_in_order() {
        let (ca, config) = server(&[ALPN_H2]);
        let (uri, accepted) = listen(config).await;
        let mut stream = client(ca).call(uri).await.expect("handshake").into_inner();
        // Three slices of 1.5 MiB, more than the send buffer holds: each write takes part of what it is given,
        // and the next starts where it stopped.
        let slices: Vec<Vec<u8>> = (0..3u8).map(|i| (0..3 << 19).map(|j| (j % 251) as u8 ^ i).collect()).collect();
        let expected: Vec<u8> = slices.concat();
        let mut sent = 0;
        let mut writes = 0;
        while sent < expected.len() {
            let mut skip = sent;
            let remaining: Vec<IoSlice<'_>> = slices
                .iter()
                .filter_map(|slice| match skip.checked_sub(slice.len()) {
                    Some(rest) => {
                        skip = rest;
                        None
                    }
                    None => Some(IoSlice::new(&slice[std::mem::take(&mut skip)..])),
                })
                .collect();
            let written = stream.write_vectored(&remaining).await.expect("write");
            assert!(written > 0 && written <= SEND_BUFFER_BYTES, "one write took {written} bytes");
            sent += written;
            writes += 1;
        }
        stream.shutdown().await.expect("close");
        assert!(writes > expected.len() / SEND_BUFFER_BYTES, "{writes} writes for {} bytes", expected.len());
        let received = tokio::time::timeout(Duration::from_secs(30), accepted).await.expect("in time");
        assert_eq!(received.expect("server task").expect("server reads"), expected);
    }

    #[tokio::test]
    async fn a_server_that_does_not_agree_to_http2_is_refused_naming_alpn() {
        // A server offering other protocols refuses the handshake itself (a NoApplicationProtocol alert); one
        // that ignores ALPN finishes it, and the client must notice.
        let (ca, config) = server(&[]);
        let (uri, _accepted) = listen(config).await;
        let Err(err) = client(ca).call(uri).await else { panic!("a server without h2 was accepted") };
        assert!(err.to_string().contains("ALPN h2"), "{err}");
    }

    #[tokio::test]
    async fn a_server_certificate_from_an_untrusted_issuer_is_refused() {
        let (_, config) = server(&[ALPN_H2]);
        let (other_ca, _) = server(&[ALPN_H2]);
        let (uri, _accepted) = listen(config).await;
        let Err(err) = client(other_ca).call(uri).await else { panic!("an untrusted certificate was accepted") };
        assert!(err.to_string().contains("invalid peer certificate"), "{err}");
    }
}
