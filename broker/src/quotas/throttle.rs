//! Each client's rate against its quota, measured as Kafka's quota sensors measure it: bytes counted in samples
//! of one window (`quota_window_ms`, 1 s by default), the last [`SAMPLES`] of them kept, the rate their total
//! over the time they span, read as at least `SAMPLES - 1` windows so that a client's first bytes are not a
//! burst rate: a client may send 10 windows' worth of its quota at once. A client over its quota is held until
//! its rate, read then, is back at the quota: until the bytes counted would have taken it the whole time since
//! its oldest sample, `total / quota - elapsed` (Kafka's `(rate - quota) / quota * span` is the same once the
//! samples span more than the floor; inside it, Kafka's is too short to bring the rate down, and a client
//! would be throttled again at once), at most [`MAX_THROTTLE`]. Not capped at the samples' span: the samples
//! expire while the client waits, so a cap below the wait would let it start afresh with a new burst, and
//! large requests would go at up to twice the quota. Its next request waits that long (Kafka's
//! KIP-219: the answer goes out at once, carrying the time, and the connection is then not read until it is
//! up).
//!
//! `request_percentage` is metered the same way in microseconds of handling, its quota the microseconds a second
//! its percentage of one thread is (50: 500,000 µs a second); as Kafka's request quota does, it holds a client for
//! at most one window ([`ClientThrottle::max_throttle`]), so that a request that took long to handle does not
//! stop its client for a minute.
//!
//! Memory is bounded: a meter unused for the whole span is dropped (checked at most once a window), and past
//! [`MAX_METERS`] a client with no meter of its own is held to its quota by a meter it does not keep.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::store::QuotaStore;
use super::{MeterKey, QuotaKey, ResolvedQuota, ANONYMOUS_USER};
use crate::auth::Principal;

pub const SAMPLES: u32 = 11;
/// The longest a client is held for one request: one far larger than its quota (a 100 MB produce at 1 KB/s)
/// is not held for a day.
pub const MAX_THROTTLE: Duration = Duration::from_secs(60);
/// Most meters kept at once; each is a few hundred bytes.
pub const MAX_METERS: usize = 100_000;

#[derive(Debug, Default)]
struct Meter {
    /// Oldest first: each sample's start and the bytes counted in it.
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    fn record(&mut self, now: Instant, bytes: u64, window: Duration) {
        match self.samples.back_mut() {
            Some((start, counted)) if now.saturating_duration_since(*start) < window => {
                *counted = counted.saturating_add(bytes)
            }
            _ => self.samples.push_back((now, bytes)),
        }
        while self.samples.len() > SAMPLES as usize
            || self.samples.front().is_some_and(|(start, _)| now.saturating_duration_since(*start) >= window * SAMPLES)
        {
            self.samples.pop_front();
        }
    }

    /// Takes back bytes counted for an answer that was not sent (a throttled fetch's).
    fn unrecord(&mut self, bytes: u64) {
        if let Some((_, counted)) = self.samples.back_mut() {
            *counted = counted.saturating_sub(bytes);
        }
    }

    /// How long the client must wait for its rate to come back to `quota` a second, at most `max`.
    fn throttle_time(&self, now: Instant, quota: u64, window: Duration, max: Duration) -> Duration {
        let total = self.samples.iter().map(|(_, bytes)| bytes).sum::<u64>() as f64;
        let oldest = self.samples.front().map_or(now, |(start, _)| *start);
        let elapsed = now.saturating_duration_since(oldest);
        let span = elapsed.max(window * (SAMPLES - 1));
        let quota = quota as f64;
        if total / span.as_secs_f64() <= quota {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((total / quota - elapsed.as_secs_f64()).clamp(0.0, max.as_secs_f64()))
    }

    fn is_idle(&self, now: Instant, window: Duration) -> bool {
        self.samples.back().is_none_or(|(start, _)| now.saturating_duration_since(*start) >= window * SAMPLES)
    }
}

#[derive(Default)]
struct Meters {
    by_client: HashMap<(QuotaKey, MeterKey), Meter>,
    last_sweep: Option<Instant>,
}

impl Meters {
    fn sweep(&mut self, now: Instant, window: Duration) {
        let is_due = self.last_sweep.is_none_or(|last| now.saturating_duration_since(last) >= window);
        if is_due || self.by_client.len() >= MAX_METERS {
            self.by_client.retain(|_, meter| !meter.is_idle(now, window));
            self.last_sweep = Some(now);
        }
    }
}

/// The node's quotas and its clients' meters: what the Kafka and gRPC edges ask after each produce and fetch.
pub struct ClientThrottle {
    store: Arc<QuotaStore>,
    /// The ip entities' connection rates, which the accept loop asks (`connections.rs`).
    connections: Arc<super::connections::ConnectionRates>,
    meters: Mutex<Meters>,
    /// One sample's length.
    window: Duration,
    /// By [`QuotaKey::ALL`]'s order: requests throttled, and the time they were told to wait, in µs
    /// (`rill_client_throttles_total`, `rill_client_throttle_seconds_total`); a connection rate is never charged
    /// here (`connections.rs`), its place stays 0.
    throttled: [AtomicU64; 5],
    throttled_micros: [AtomicU64; 5],
}

impl std::fmt::Debug for ClientThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientThrottle").field("store", &self.store).finish_non_exhaustive()
    }
}

fn key_index(key: QuotaKey) -> usize {
    match key {
        QuotaKey::ProducerByteRate => 0,
        QuotaKey::ConsumerByteRate => 1,
        QuotaKey::ConnectionCreationRate => 2,
        QuotaKey::ControllerMutationRate => 3,
        QuotaKey::RequestPercentage => 4,
    }
}

/// Microseconds of one thread's time a second in one percent of it.
const MICROS_PER_PERCENT: u64 = 10_000;

/// What `quota` allows a second, in the units its meter counts: bytes, partitions, or microseconds of handling.
fn allowance(key: QuotaKey, quota: &ResolvedQuota) -> u64 {
    match key {
        QuotaKey::RequestPercentage => quota.bytes_per_sec.saturating_mul(MICROS_PER_PERCENT),
        _ => quota.bytes_per_sec,
    }
}

/// The user name quotas know a principal by.
pub fn quota_user(principal: &Principal) -> &str {
    match principal {
        Principal::User(name) => name,
        Principal::Anonymous => ANONYMOUS_USER,
    }
}

impl ClientThrottle {
    pub fn new(store: Arc<QuotaStore>, window: Duration) -> Self {
        Self {
            connections: Arc::new(super::connections::ConnectionRates::new(Arc::clone(&store))),
            store,
            meters: Mutex::new(Meters::default()),
            window,
            throttled: Default::default(),
            throttled_micros: Default::default(),
        }
    }

    /// For each metered rate: how many requests were throttled, and for how long in all.
    pub fn throttle_counts(&self) -> [(QuotaKey, u64, Duration); 4] {
        QuotaKey::METERED.map(|key| {
            let index = key_index(key);
            let micros = self.throttled_micros[index].load(Ordering::Relaxed);
            (key, self.throttled[index].load(Ordering::Relaxed), Duration::from_micros(micros))
        })
    }

    pub fn store(&self) -> &Arc<QuotaStore> {
        &self.store
    }

    pub fn connection_rates(&self) -> &Arc<super::connections::ConnectionRates> {
        &self.connections
    }

    /// The quota on `key` for this client, if any is set for it.
    pub fn quota(&self, key: QuotaKey, principal: &Principal, client_id: &str) -> Option<ResolvedQuota> {
        if !self.store.is_any_set() {
            return None;
        }
        self.store.snapshot().resolve(key, quota_user(principal), client_id)
    }

    /// The longest one request holds a client on `key`: one window for `request_percentage`, as in Kafka.
    fn max_throttle(&self, key: QuotaKey) -> Duration {
        match key {
            QuotaKey::RequestPercentage => self.window,
            _ => MAX_THROTTLE,
        }
    }

    /// Counts `busy`, time a request of this client took to handle, against its `request_percentage`; how long
    /// it must now wait (zero within its quota, or with none). Not counted as a throttle: a request is charged
    /// in parts, and counted once ([`ClientThrottle::count_throttle`]).
    pub fn charge_request_time(&self, principal: &Principal, client_id: &str, busy: Duration) -> Duration {
        let key = QuotaKey::RequestPercentage;
        match self.quota(key, principal, client_id) {
            Some(quota) => self.metered(key, &quota, busy.as_micros() as u64, Instant::now()),
            None => Duration::ZERO,
        }
    }

    /// Counts a request held `throttle` for going past its quota on `key` (`rill_client_throttles_total`).
    pub fn count_throttle(&self, key: QuotaKey, throttle: Duration) {
        if !throttle.is_zero() {
            let index = key_index(key);
            self.throttled[index].fetch_add(1, Ordering::Relaxed);
            self.throttled_micros[index].fetch_add(throttle.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// Counts `bytes` against the client's quota on `key`; how long it must now wait (zero within its quota,
    /// or with none).
    pub fn charge(&self, key: QuotaKey, principal: &Principal, client_id: &str, bytes: u64) -> Duration {
        match self.quota(key, principal, client_id) {
            Some(quota) => self.charge_at(key, &quota, bytes, Instant::now()),
            None => Duration::ZERO,
        }
    }

    /// How long a client on `quota` is to wait now, counting nothing: a request that would only add to its
    /// rate is refused while this is not zero (KIP-599's strict mode).
    pub fn pending(&self, key: QuotaKey, quota: &ResolvedQuota) -> Duration {
        let now = Instant::now();
        let mut meters = self.meters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        meters.sweep(now, self.window);
        let meter = meters.by_client.get(&(key, quota.meter.clone()));
        let max = self.max_throttle(key);
        meter.map_or(Duration::ZERO, |meter| meter.throttle_time(now, allowance(key, quota), self.window, max))
    }

    /// Takes back `bytes` charged to a resolved quota for an answer that was not sent.
    pub fn refund(&self, key: QuotaKey, quota: &ResolvedQuota, bytes: u64) {
        let mut meters = self.meters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(meter) = meters.by_client.get_mut(&(key, quota.meter.clone())) {
            meter.unrecord(bytes);
        }
    }

    pub(crate) fn charge_at(&self, key: QuotaKey, quota: &ResolvedQuota, bytes: u64, now: Instant) -> Duration {
        let throttle = self.metered(key, quota, bytes, now);
        self.count_throttle(key, throttle);
        throttle
    }

    fn metered(&self, key: QuotaKey, quota: &ResolvedQuota, bytes: u64, now: Instant) -> Duration {
        let (window, max, allowed) = (self.window, self.max_throttle(key), allowance(key, quota));
        let mut meters = self.meters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        meters.sweep(now, window);
        let id = (key, quota.meter.clone());
        match meters.by_client.get_mut(&id) {
            Some(meter) => {
                meter.record(now, bytes, window);
                meter.throttle_time(now, allowed, window, max)
            }
            None => {
                let mut meter = Meter::default();
                meter.record(now, bytes, window);
                let throttle = meter.throttle_time(now, allowed, window, max);
                if meters.by_client.len() < MAX_METERS {
                    meters.by_client.insert(id, meter);
                }
                throttle
            }
        }
    }

    /// The most one fetch answer may carry for a client under a fetch quota: what the quota allows over the
    /// samples' floor (Kafka bounds a fetch the same way, so that one answer cannot hold the client for long).
    pub fn fetch_bytes_bound(&self, quota: &ResolvedQuota) -> u64 {
        let span = self.window * (SAMPLES - 1);
        ((quota.bytes_per_sec as f64 * span.as_secs_f64()) as u64).max(1)
    }

    #[cfg(test)]
    fn meter_count(&self) -> usize {
        self.meters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).by_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::{EntityName, QuotaChange, QuotaEntity};

    const WINDOW: Duration = Duration::from_secs(1);

    fn throttle_with_client_default(bytes_per_sec: u64) -> (tempfile::TempDir, ClientThrottle) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(QuotaStore::open(dir.path()).expect("store"));
        let entity = QuotaEntity { user: None, client_id: Some(EntityName::Default), ip: None };
        let change = QuotaChange { entity, key: QuotaKey::ProducerByteRate, value: Some(bytes_per_sec) };
        store.alter(vec![change], false).expect("set");
        (dir, ClientThrottle::new(store, WINDOW))
    }

    #[test]
    fn a_client_kept_sending_is_held_to_its_quota_on_average_whatever_its_request_size() {
        // (sample window, request bytes): small requests, and requests of more than the samples' span of quota,
        // whose waits outlast the samples.
        for (window, request_bytes) in [(WINDOW, 500u64), (Duration::from_millis(100), 1_500)] {
            let (dir, _) = throttle_with_client_default(1_000);
            let throttle = ClientThrottle::new(Arc::new(QuotaStore::open(dir.path()).expect("store")), window);
            let quota = throttle.quota(QuotaKey::ProducerByteRate, &Principal::Anonymous, "app").expect("covered");
            // A client that sends, then waits what it is told (or 100 ms), for 60 simulated seconds.
            let start = Instant::now();
            let (mut now, mut sent, mut held) = (start, 0u64, 0);
            while now < start + Duration::from_secs(60) {
                let wait = throttle.charge_at(QuotaKey::ProducerByteRate, &quota, request_bytes, now);
                sent += request_bytes;
                held += usize::from(!wait.is_zero());
                assert!(wait <= MAX_THROTTLE);
                now += wait.max(Duration::from_millis(100));
            }
            let rate = sent as f64 / now.duration_since(start).as_secs_f64();
            // The first span's allowance (10 windows at the quota) comes on top, as in Kafka: at most 10,000 B
            // over about 60 s.
            assert!((950.0..=1_200.0).contains(&rate), "window {window:?}, {request_bytes} B: {rate:.0} B/s");
            assert!(held > 0);
        }
    }

    #[test]
    fn within_the_quota_nothing_waits_and_clients_of_a_default_have_their_own_meters() {
        let (_dir, throttle) = throttle_with_client_default(1_000);
        let now = Instant::now();
        for client in ["a", "b"] {
            let quota = throttle.quota(QuotaKey::ProducerByteRate, &Principal::Anonymous, client).expect("covered");
            assert_eq!(throttle.charge_at(QuotaKey::ProducerByteRate, &quota, 9_000, now), Duration::ZERO);
            let over = throttle.charge_at(QuotaKey::ProducerByteRate, &quota, 1_500, now + WINDOW);
            // 10,500 B in the first second: held until 10.5 s after the first byte, when the rate is back at
            // 1,000 B/s.
            assert_eq!(over, Duration::from_millis(9_500), "{client}");
        }
        assert_eq!(throttle.meter_count(), 2);
        let [(_, produce_throttles, produce_held), (_, fetch_throttles, _), _, _] = throttle.throttle_counts();
        assert_eq!((produce_throttles, produce_held, fetch_throttles), (2, Duration::from_millis(19_000), 0));
        assert_eq!(throttle.quota(QuotaKey::ConsumerByteRate, &Principal::Anonymous, "a"), None);
    }

    #[test]
    fn idle_meters_go_and_a_refund_takes_bytes_back() {
        let (_dir, throttle) = throttle_with_client_default(1_000);
        let quota = throttle.quota(QuotaKey::ProducerByteRate, &Principal::Anonymous, "a").expect("covered");
        let now = Instant::now();
        assert!(!throttle.charge_at(QuotaKey::ProducerByteRate, &quota, 20_000, now).is_zero());
        throttle.refund(QuotaKey::ProducerByteRate, &quota, 20_000);
        assert!(throttle.charge_at(QuotaKey::ProducerByteRate, &quota, 1, now).is_zero(), "refunded");
        let other = throttle.quota(QuotaKey::ProducerByteRate, &Principal::Anonymous, "b").expect("covered");
        throttle.charge_at(QuotaKey::ProducerByteRate, &other, 1, now + WINDOW * SAMPLES);
        assert_eq!(throttle.meter_count(), 1, "a's meter went once idle for the whole span");
    }

    #[test]
    fn a_request_percentage_meters_microseconds_and_holds_a_client_at_most_a_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(QuotaStore::open(dir.path()).expect("store"));
        let entity = QuotaEntity { user: None, client_id: Some(EntityName::Default), ip: None };
        let change = QuotaChange { entity, key: QuotaKey::RequestPercentage, value: Some(10) };
        store.alter(vec![change], false).expect("set");
        let throttle = ClientThrottle::new(store, WINDOW);
        let key = QuotaKey::RequestPercentage;
        let quota = throttle.quota(key, &Principal::Anonymous, "app").expect("covered");
        let now = Instant::now();
        // 10% of a thread is 100 ms a second: 900 ms over the first span is within it.
        assert_eq!(throttle.charge_at(key, &quota, 900_000, now), Duration::ZERO);
        // 1.1 s: 11 s to bring the share back, held one window at most.
        assert_eq!(throttle.charge_at(key, &quota, 200_000, now), WINDOW);
        assert_eq!(throttle.pending(key, &quota), WINDOW);
    }
}
