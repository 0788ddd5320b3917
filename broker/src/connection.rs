//! Accepted connections, limited: at most `max_connections` at once, at most `max_connections_per_ip` of them
//! from one address, opened no faster than the address's `connection_creation_rate` quota
//! (`quotas/connections.rs`), and none that stays silent for longer than `idle_connection_timeout_ms`.
//!
//! Both guard the broker against clients it cannot trust to behave: thousands of idle sockets, or peers that
//! open a connection, send part of the HTTP/2 preface and stall. hyper waits forever for a preface, and its
//! keepalive pings only start after the handshake, so the guard has to sit below it, on the byte stream.
//! "Silent" means no byte read or written: a healthy gRPC client idling on a long-poll still answers the
//! server's keepalive pings, which are sent more often than the timeout, so it is never cut off.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::IpAddr;
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

use crate::metrics::{ConnectionMetrics, OpenConnection};

/// One accepted TCP connection, holding its slot under `max_connections` (and its address's) until it closes.
pub struct LimitedConnection {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
    /// Counts the connection as open until it is dropped (when the node records metrics).
    _open: Option<OpenConnection>,
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

impl LimitedConnection {
    /// The connection's first byte, left unread (`None` when the peer closed first). Waits at most the idle
    /// timeout: a peer that connects and sends nothing holds a slot no longer than that.
    pub async fn first_byte(&self) -> io::Result<Option<u8>> {
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.idle_timeout, self.inner.peek(&mut first)).await {
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(_)) => Ok(Some(first[0])),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no byte within the idle timeout")),
        }
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.peer_addr().ok()
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

/// How many connections the listener takes: in all, and from one address.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub total: usize,
    /// The limit for an address without an override; `None`: only `total`.
    pub per_ip: Option<usize>,
    pub per_ip_overrides: BTreeMap<IpAddr, usize>,
    /// The ip entities' connection rates (client quotas), when the node keeps quotas.
    pub rates: Option<Arc<crate::quotas::connections::ConnectionRates>>,
}

impl ConnectionLimits {
    pub fn of(config: &crate::config::BrokerConfig) -> Self {
        ConnectionLimits {
            total: config.max_connections,
            per_ip: config.max_connections_per_ip,
            per_ip_overrides: config.max_connections_per_ip_overrides.clone(),
            rates: None,
        }
    }

    /// Also holds each address to its connection rate quota.
    pub fn with_rates(self, rates: Arc<crate::quotas::connections::ConnectionRates>) -> Self {
        ConnectionLimits { rates: Some(rates), ..self }
    }

    /// Only a total.
    #[cfg(test)]
    pub fn only_total(total: usize) -> Self {
        ConnectionLimits { total, per_ip: None, per_ip_overrides: BTreeMap::new(), rates: None }
    }

    fn of_address(&self, ip: &IpAddr) -> Option<usize> {
        self.per_ip_overrides.get(ip).copied().or(self.per_ip)
    }

    fn is_per_address(&self) -> bool {
        self.per_ip.is_some() || !self.per_ip_overrides.is_empty()
    }
}

/// The connections open from each address, where any address has a limit.
#[derive(Default)]
struct AddressCounts(std::sync::Mutex<HashMap<IpAddr, usize>>);

impl AddressCounts {
    /// A slot for one more connection from `ip`, if it has fewer than `limit` open.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = counts.entry(ip).or_default();
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(AddressSlot { counts: Arc::clone(self), ip })
    }
}

/// One connection's place among its address's, given back when it closes.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Wraps accepted TCP streams: each gets a slot or, when all `max_connections` are taken (or all its address's,
/// `max_connections_per_ip`), is closed at once (the client sees the connection refused and can retry) rather
/// than queued where it would hold memory.
///
/// An accept that fails for want of descriptors (EMFILE, ENFILE) or kernel memory leaves the connection in the
/// listen queue, so the listener is ready again at once: without a pause the loop would spin on the same error
/// (a core and hundreds of thousands of log lines a second). It waits as [`AcceptBackoff`] says before the
/// next accept, and logs at most one line a second.
pub fn limit(
    incoming: impl Stream<Item = io::Result<TcpStream>>,
    limits: ConnectionLimits,
    idle_timeout: Duration,
    metrics: Option<Arc<ConnectionMetrics>>,
) -> impl Stream<Item = io::Result<LimitedConnection>> {
    let slots = Arc::new(Semaphore::new(limits.total));
    let max_connections = limits.total;
    let by_address = Arc::new(AddressCounts::default());
    let backoff = Arc::new(std::sync::Mutex::new(AcceptBackoff::default()));
    incoming
        .then(move |accepted| {
            let backoff = Arc::clone(&backoff);
            async move {
                let pause = {
                    let mut backoff = backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match &accepted {
                        Ok(_) => {
                            backoff.on_accept();
                            None
                        }
                        Err(error) => backoff.on_error(error, Instant::now()),
                    }
                };
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
                accepted.ok()
            }
        })
        .filter_map(move |stream| {
            let stream = stream?;
            if let (Some(rates), Ok(peer)) = (&limits.rates, stream.peer_addr()) {
                if let Err(crate::quotas::connections::PastRate(rate)) = rates.admit(peer.ip()) {
                    // Debug: a client in a reconnect loop would otherwise write a line per attempt.
                    tracing::debug!(%peer, rate, "closing a connection: its address is past its connection_creation_rate");
                    return None;
                }
            }
            let address_slot = match stream.peer_addr() {
                Ok(peer) if limits.is_per_address() => match limits.of_address(&peer.ip()) {
                    Some(limit) => match by_address.take(peer.ip(), limit) {
                        Some(slot) => Some(slot),
                        None => {
                            if let Some(metrics) = &metrics {
                                metrics.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            tracing::warn!(
                                %peer,
                                limit,
                                "refusing a connection: max_connections_per_ip reached for its address"
                            );
                            return None;
                        }
                    },
                    None => None,
                },
                _ => None,
            };
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => Some(Ok(LimitedConnection {
                    inner: stream,
                    _slot: slot,
                    _address_slot: address_slot,
                    _open: metrics.as_ref().map(|metrics| metrics.opened()),
                    idle_timeout,
                    idle_deadline: Box::pin(tokio::time::sleep(idle_timeout)),
                })),
                Err(_) => {
                    if let Some(metrics) = &metrics {
                        metrics.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
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

/// The first pause after an accept failed for want of descriptors, doubled after each further failure.
pub const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest pause: a freed descriptor is noticed within this.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for failed accepts; the others are counted in it.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What the accept loop does after a failed accept: how long to pause, and whether to log.
#[derive(Debug)]
pub struct AcceptBackoff {
    next_pause: Duration,
    last_logged: Option<Instant>,
    /// Failures since the last line logged.
    unlogged_failures: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self { next_pause: ACCEPT_BACKOFF_FIRST, last_logged: None, unlogged_failures: 0 }
    }
}

impl AcceptBackoff {
    /// A connection was accepted: the next shortage starts again from the first pause.
    pub fn on_accept(&mut self) {
        self.next_pause = ACCEPT_BACKOFF_FIRST;
    }

    /// Logs (at most once per [`ACCEPT_LOG_INTERVAL`]) and returns the pause before the next accept: `Some` when
    /// the process or system is out of descriptors or memory, `None` for a failure of that one connection (a peer
    /// that reset before the accept), after which accepting goes on at once.
    pub fn on_error(&mut self, error: &io::Error, now: Instant) -> Option<Duration> {
        let is_shortage = is_resource_shortage(error);
        self.unlogged_failures += 1;
        if self.last_logged.is_none_or(|last| now.duration_since(last) >= ACCEPT_LOG_INTERVAL) {
            let failures = std::mem::take(&mut self.unlogged_failures);
            if is_shortage {
                tracing::warn!(
                    %error,
                    failures,
                    pause_ms = self.next_pause.as_millis() as u64,
                    "accepting connections failed: out of file descriptors or memory; pausing accepts"
                );
            } else {
                tracing::warn!(%error, failures, "accepting a connection failed");
            }
            self.last_logged = Some(now);
        }
        if !is_shortage {
            return None;
        }
        let pause = self.next_pause;
        self.next_pause = (pause * 2).min(ACCEPT_BACKOFF_MAX);
        Some(pause)
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the accept will fail again until something is freed.
fn is_resource_shortage(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn out_of_descriptors_pauses_accepts_doubling_from_10_ms_to_1_s() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<u64> =
            (0..10).map(|_| backoff.on_error(&emfile(), now).expect("a pause").as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        assert_eq!(backoff.on_error(&enfile, now), Some(ACCEPT_BACKOFF_MAX));
    }

    #[test]
    fn an_accepted_connection_resets_the_pause() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        backoff.on_error(&emfile(), now);
        backoff.on_error(&emfile(), now);
        backoff.on_accept();
        assert_eq!(backoff.on_error(&emfile(), now), Some(ACCEPT_BACKOFF_FIRST));
    }

    #[test]
    fn a_failure_of_one_connection_does_not_pause_accepts() {
        let mut backoff = AcceptBackoff::default();
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(backoff.on_error(&aborted, Instant::now()), None);
    }

    #[test]
    fn failed_accepts_log_at_most_one_line_per_second() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        let mut logged = 0;
        // 10,000 failures spread over 2.5 s: three lines (at 0, 1 and 2 s), each counting the failures since the
        // one before.
        for i in 0..10_000u32 {
            let now = start + Duration::from_micros(u64::from(i) * 250);
            let before = backoff.last_logged;
            backoff.on_error(&emfile(), now);
            if backoff.last_logged != before {
                logged += 1;
            }
        }
        assert_eq!(logged, 3);
    }
}
