//! Kafka's request quota (KIP-124), `request_percentage`: the time a client's requests take to handle, measured
//! per request by a [`HandlerClock`] and charged to the client's meter (`throttle.rs`). Kafka counts the time its
//! network and request handler threads spend on a request; rill's equivalent is the time the request's answer is
//! being polled (decoding, handling, encoding), not the time it waits (a fetch's long poll, a produce's append
//! and replication), which holds no thread. Both edges time their requests with it: the Kafka listener
//! (`kafka/request_time.rs`) and gRPC calls (`service/request_time.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::throttle::ClientThrottle;
use super::QuotaKey;
use crate::auth::Principal;

/// The handling time of one request, for its client's request quota; inert (times nothing) when no client is
/// held to one, or the request is exempt.
pub struct HandlerClock {
    /// Who is charged, and when the clock started; `None` when inert (nothing read, not even the time).
    client: Option<(Principal, String, Instant)>,
    /// Nanoseconds polled in the polls that ended.
    busy: AtomicU64,
    /// When the poll under way began, in nanoseconds after `started`; `u64::MAX` between polls.
    polling_since: AtomicU64,
    /// Nanoseconds charged so far.
    charged: AtomicU64,
    /// The longest wait a charge returned, in microseconds.
    throttle: AtomicU64,
}

impl HandlerClock {
    /// The clock of a request of `client` (its principal and client id), or an inert one (`None`: no quota to
    /// charge, or an exempt request).
    pub fn of(client: Option<(Principal, String)>) -> HandlerClock {
        HandlerClock {
            client: client.map(|(principal, client_id)| (principal, client_id, Instant::now())),
            busy: AtomicU64::new(0),
            polling_since: AtomicU64::new(u64::MAX),
            charged: AtomicU64::new(0),
            throttle: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since `started`.
    fn since(started: Instant) -> u64 {
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn enter(&self) {
        if let Some((_, _, started)) = &self.client {
            self.polling_since.store(Self::since(*started), Ordering::Relaxed);
        }
    }

    fn leave(&self) {
        if let Some((_, _, started)) = &self.client {
            let since = self.polling_since.swap(u64::MAX, Ordering::Relaxed);
            if since != u64::MAX {
                self.busy.fetch_add(Self::since(*started).saturating_sub(since), Ordering::Relaxed);
            }
        }
    }

    /// The time handled so far since `started`, the poll under way included.
    fn busy_nanos(&self, started: Instant) -> u64 {
        let polling = match self.polling_since.load(Ordering::Relaxed) {
            u64::MAX => 0,
            since => Self::since(started).saturating_sub(since),
        };
        self.busy.load(Ordering::Relaxed) + polling
    }

    /// Charges the time handled since the last charge; the longest wait charged so far (zero within the
    /// client's quota, or with none).
    pub fn charge(&self, quotas: &ClientThrottle) -> Duration {
        let Some((principal, client_id, started)) = &self.client else { return Duration::ZERO };
        let busy = self.busy_nanos(*started);
        let uncharged = busy.saturating_sub(self.charged.swap(busy, Ordering::Relaxed));
        if uncharged > 0 {
            let wait = quotas.charge_request_time(principal, client_id, Duration::from_nanos(uncharged));
            self.throttle.fetch_max(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        Duration::from_micros(self.throttle.load(Ordering::Relaxed))
    }

    /// Once the answer is out: charges what is left (the encoding) and counts the request as throttled if it was;
    /// how long the client is to wait for this quota.
    pub fn finish(&self, quotas: &ClientThrottle) -> Duration {
        let wait = self.charge(quotas);
        quotas.count_throttle(QuotaKey::RequestPercentage, wait);
        wait
    }

    /// [`HandlerClock::charge`] as a response's `throttle_time_ms`, at least `other_ms` (a byte rate's wait).
    pub fn throttle_ms(&self, quotas: &ClientThrottle, other_ms: i32) -> i32 {
        let ms = i32::try_from(self.charge(quotas).as_millis()).unwrap_or(i32::MAX);
        ms.max(other_ms)
    }

    /// `answering`, with the time each of its polls takes counted.
    pub fn timing<'a, F: Future>(&'a self, answering: Pin<&'a mut F>) -> Timed<'a, F> {
        Timed { clock: self, answering }
    }
}

/// A future whose polls a [`HandlerClock`] counts.
pub struct Timed<'a, F> {
    clock: &'a HandlerClock,
    answering: Pin<&'a mut F>,
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.clock.enter();
        let polled = this.answering.as_mut().poll(cx);
        this.clock.leave();
        polled
    }
}
