//! The stream a connection is served over once accepted: the TCP connection itself, or TLS over it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::connection::LimitedConnection;

/// A client's certificate chain as verified in the handshake, leaf first; `auth::certificate` maps its leaf to
/// a principal (docs/security.md, "Principals").
pub type PeerCertificates = Arc<[CertificateDer<'static>]>;

/// What tonic puts in every request's extensions for the connection it came on: where from, and the client
/// certificate if it presented one.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: Option<SocketAddr>,
    pub local_addr: Option<SocketAddr>,
    pub peer_certificates: Option<PeerCertificates>,
}

/// One accepted connection as the protocols read and write it.
pub enum ServedStream {
    Plain(LimitedConnection),
    Tls(Box<TlsStream<LimitedConnection>>),
}

/// Ciphertext a TLS connection may hold before its next socket write, and so the most one write carries: 64
/// records of 16 KiB. rustls's default of 64 KiB makes every write of a large response (a fetch) 4 records,
/// 65,624 bytes, one more than a 64 KiB loopback segment holds, so each write leaves as two packets; the client
/// had the same defect (client/src/tls.rs, docs/benchmarks.md "TLS"). One MiB a connection, at most.
const TLS_SEND_BUFFER_BYTES: usize = 1 << 20;

impl ServedStream {
    /// Wraps a finished server handshake.
    pub fn tls(mut stream: TlsStream<LimitedConnection>) -> Self {
        stream.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER_BYTES));
        Self::Tls(Box::new(stream))
    }

    fn tcp(&self) -> &LimitedConnection {
        match self {
            Self::Plain(connection) => connection,
            Self::Tls(stream) => stream.get_ref().0,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The client's verified certificate chain: `None` on plaintext, or when it presented none.
    pub fn peer_certificates(&self) -> Option<PeerCertificates> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(stream) => stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|cert| cert.clone().into_owned()).collect()),
        }
    }
}

impl Connected for ServedStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let tcp = self.tcp().connect_info();
        ConnectionInfo {
            remote_addr: tcp.remote_addr(),
            local_addr: tcp.local_addr(),
            peer_certificates: self.peer_certificates(),
        }
    }
}

impl AsyncRead for ServedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(connection) => connection.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(connection) => Pin::new(connection).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_stream::StreamExt;

    use super::*;

    /// A served TLS stream on 127.0.0.1 and the client end of it, over real sockets.
    async fn tls_pair() -> (ServedStream, tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key"),
            )
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = Box::pin(crate::connection::limit(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            crate::connection::ConnectionLimits::only_total(1),
            Duration::from_secs(30),
            None,
        ));
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("127.0.0.1").expect("name");
            tokio_rustls::TlsConnector::from(Arc::new(client_config)).connect(name, tcp).await.expect("handshake")
        });
        let connection = accepted.next().await.expect("a connection").expect("accepted");
        let served = tokio_rustls::TlsAcceptor::from(Arc::new(server_config)).accept(connection).await.expect("accept");
        (ServedStream::tls(served), client.await.expect("client task"))
    }

    #[tokio::test]
    async fn a_large_vectored_write_goes_out_a_mebibyte_at_a_time_and_arrives_whole() {
        let (mut served, mut client) = tls_pair().await;
        assert!(served.is_write_vectored());
        let parts: Vec<Vec<u8>> = (0..3u8).map(|i| (0..1_500_000u32).map(|j| (j % 253) as u8 ^ i).collect()).collect();
        let expected = parts.concat();
        let reader = tokio::spawn(async move {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.map(|_| received)
        });
        let mut sent = 0;
        let mut first_write = None;
        while sent < expected.len() {
            // The slices still to send: `sent` bytes in, possibly mid-slice.
            let mut skip = sent;
            let slices: Vec<IoSlice<'_>> = parts
                .iter()
                .filter_map(|part| {
                    let from = skip.min(part.len());
                    skip -= from;
                    (from < part.len()).then(|| IoSlice::new(&part[from..]))
                })
                .collect();
            let written = served.write_vectored(&slices).await.expect("write");
            assert!(written > 0 && written <= TLS_SEND_BUFFER_BYTES, "one write took {written} bytes");
            first_write.get_or_insert(written);
            sent += written;
        }
        served.shutdown().await.expect("close");
        // rustls's default would have taken 64 KiB; the raised limit takes far more of a 4.5 MB write at once.
        assert!(first_write.expect("a write") > 64 * 1024, "first write {first_write:?}");
        let received = tokio::time::timeout(Duration::from_secs(30), reader).await.expect("in time");
        assert_eq!(received.expect("reader task").expect("reads"), expected);
    }
}
