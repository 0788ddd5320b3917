//! Accepted connections, limited: at most `max_connections` at once, and none that stays silent for longer than
//! `idle_connection_timeout_ms`.
//!
//! Both guard the broker against clients it cannot trust to behave: thousands of idle sockets, or peers that
//! open a connection, send part of the HTTP/2 preface and stall. hyper waits forever for a preface, and its
//! keepalive pings only start after the handshake, so the guard has to sit below it, on the byte stream.
//! "Silent" means no byte read or written: a healthy gRPC client idling on a long-poll still answers the
//! server's keepalive pings, which are sent more often than the timeout, so it is never cut off.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// One accepted TCP connection, holding its slot under `max_connections` until it closes.
pub struct LimitedConnection {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle_deadline: Pin<Box<Sleep>>,
}

impl LimitedConnection {
    fn touch(&mut self) {
        self.idle_deadline.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// `Ready` with an error once the connection has been silent past its timeout.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.idle_deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Connected for LimitedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl LimitedConnection {
    /// What a write returned, counting written bytes as activity; a stalled write (a peer that stops reading)
    /// is silence too.
    fn after_write(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Wraps accepted TCP streams: each gets a slot or, when all `max_connections` are taken, is closed at once
/// (the client sees the connection refused and can retry) rather than queued where it would hold memory.
pub fn limit(
    incoming: impl Stream<Item = io::Result<TcpStream>>,
    max_connections: usize,
    idle_timeout: Duration,
) -> impl Stream<Item = io::Result<LimitedConnection>> {
    let slots = Arc::new(Semaphore::new(max_connections));
    incoming.filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            // An accept error (EMFILE, a reset before accept) concerns that one connection; keep serving.
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                return None;
            }
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Some(Ok(LimitedConnection {
                inner: stream,
                _slot: slot,
                idle_timeout,
                idle_deadline: Box::pin(tokio::time::sleep(idle_timeout)),
            })),
            Err(_) => {
                tracing::warn!(
                    peer = ?stream.peer_addr().ok(),
                    max_connections,
                    "refusing a connection: max_connections reached"
                );
                None
            }
        }
    })
}
