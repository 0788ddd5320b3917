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
