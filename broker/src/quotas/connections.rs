//! Connection creation rates per IP address (Kafka's KIP-612: `connection_creation_rate` of an `ip` entity, an
//! address's own or the default for every address without one). Each connection accepted from an address takes a
//! token from its bucket, which refills at the quota's rate and holds at most one second of it (at least one
//! token): a client may open a second's worth at once, then no faster than its rate. A connection with no token
//! left is closed as it is accepted, before a byte is read, as `max_connections_per_ip` closes one; a rate of 0
//! closes every connection from the address. It guards the node against a client stuck in a reconnect loop (each
//! new connection costs a TLS handshake or a SASL exchange), not against an attack on the kernel's accept queue.
//!
//! Invariants: accepting costs one atomic load while no quota is set at all, and a read of the quotas' snapshot,
//! a lock and a pointer comparison while no `ip` entity holds a rate; the buckets are bounded
//! (`MAX_TRACKED_ADDRESSES`: the full ones, which remember nothing, are dropped first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::store::QuotaStore;
use super::ClientQuotas;

/// Most addresses whose buckets are kept.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The quotas last read, whether they hold any connection rate, and each address's bucket.
struct Buckets {
    quotas: Arc<ClientQuotas>,
    has_rates: bool,
    by_address: HashMap<IpAddr, Bucket>,
}

pub struct ConnectionRates {
    store: Arc<QuotaStore>,
    buckets: Mutex<Buckets>,
    /// Connections closed for their address's rate (`rill_connections_rate_limited_total`).
    refused: AtomicU64,
}

impl std::fmt::Debug for ConnectionRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRates").field("refused", &self.refused).finish_non_exhaustive()
    }
}

/// Why a connection was closed: its address's quota, in connections a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastRate(pub u64);

impl ConnectionRates {
    pub fn new(store: Arc<QuotaStore>) -> Self {
        let quotas = store.snapshot();
        let has_rates = quotas.has_connection_rates();
        let buckets = Buckets { quotas, has_rates, by_address: HashMap::new() };
        Self { store, buckets: Mutex::new(buckets), refused: AtomicU64::new(0) }
    }

    /// Whether a connection from `ip`, accepted now, may stay; counted against its address's rate.
    pub fn admit(&self, ip: IpAddr) -> Result<(), PastRate> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(&self, ip: IpAddr, now: Instant) -> Result<(), PastRate> {
        if !self.store.is_any_set() {
            return Ok(());
        }
        let quotas = self.store.snapshot();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&buckets.quotas, &quotas) {
            buckets.has_rates = quotas.has_connection_rates();
            buckets.quotas = Arc::clone(&quotas);
        }
        if !buckets.has_rates {
            buckets.by_address.clear();
            return Ok(());
        }
        let ip = ip.to_canonical();
        let Some(rate) = quotas.connection_rate(ip) else { return Ok(()) };
        let capacity = rate.max(1) as f64;
        if buckets.by_address.len() >= MAX_TRACKED_ADDRESSES && !buckets.by_address.contains_key(&ip) {
            let is_full =
                |bucket: &Bucket| bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * capacity >= capacity;
            buckets.by_address.retain(|_, bucket| !is_full(bucket));
            if buckets.by_address.len() >= MAX_TRACKED_ADDRESSES {
                buckets.by_address.clear();
            }
        }
        let bucket = buckets.by_address.entry(ip).or_insert(Bucket { tokens: capacity, at: now });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * rate as f64;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.at = now;
        if rate == 0 || bucket.tokens < 1.0 {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(PastRate(rate));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Connections closed for their address's rate since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::quotas::{QuotaChange, QuotaEntity, QuotaKey};

    fn rate(store: &QuotaStore, ip: Option<IpAddr>, value: Option<u64>) {
        let change = QuotaChange { entity: QuotaEntity::of_ip(ip), key: QuotaKey::ConnectionCreationRate, value };
        store.alter(vec![change], false).expect("valid");
    }

    #[test]
    fn an_address_opens_a_seconds_worth_at_once_then_no_faster_than_its_rate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(QuotaStore::open(dir.path()).expect("store"));
        let rates = ConnectionRates::new(Arc::clone(&store));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        assert!((0..100).all(|_| rates.admit_at(a, now).is_ok()), "no quota: every connection");
        rate(&store, None, Some(5));
        rate(&store, Some(b), Some(1));
        assert!((0..5).all(|_| rates.admit_at(a, now).is_ok()), "a second's worth at once");
        assert_eq!(rates.admit_at(a, now), Err(PastRate(5)));
        assert_eq!(rates.admit_at(a, now + Duration::from_millis(100)), Err(PastRate(5)), "half a token");
        assert_eq!(rates.admit_at(a, now + Duration::from_millis(200)), Ok(()), "a token a fifth of a second");
        assert_eq!(rates.admit_at(b, now), Ok(()));
        assert_eq!(rates.admit_at(b, now), Err(PastRate(1)), "its own quota over the default");
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(rates.admit_at(mapped, now), Err(PastRate(1)), "an IPv4-mapped peer is its IPv4 address");
        assert_eq!(rates.refused(), 4);

        rate(&store, Some(b), Some(0));
        assert_eq!(rates.admit_at(b, now + Duration::from_secs(60)), Err(PastRate(0)), "0 closes every one");
        rate(&store, Some(b), None);
        rate(&store, None, None);
        assert!((0..100).all(|_| rates.admit_at(b, now).is_ok()), "removed: every connection again");
    }
}
