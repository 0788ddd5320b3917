//! Slowing down password guessing: each failed authentication from an IP address makes the next failure's
//! answer from that address wait longer (100 ms, doubling, at most 5 s), until a success or a quiet minute
//! forgets it. The map is bounded: when full, the entry idle longest is dropped, so a flood of addresses costs
//! memory only up to the limit (and an attacker that churns addresses gains at most the first, short waits).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// An address without a failure for this long starts again from the first delay.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Most addresses remembered.
pub const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct FailureBackoff {
    by_address: Mutex<HashMap<IpAddr, Failures>>,
}

impl FailureBackoff {
    /// Records a failure from `address` at `now` and returns how long its answer waits.
    pub fn record_failure(&self, address: IpAddr, now: Instant) -> Duration {
        let mut map = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous =
            map.get(&address).filter(|f| now.saturating_duration_since(f.last) < FORGET_AFTER).map(|f| f.count);
        if previous.is_none() && map.len() >= MAX_ADDRESSES {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(a, _)| *a) {
                    map.remove(&oldest);
                }
            }
        }
        let count = previous.unwrap_or(0).saturating_add(1);
        map.insert(address, Failures { count, last: now });
        FIRST_DELAY.saturating_mul(1u32 << (count - 1).min(16)).min(MAX_DELAY)
    }

    /// Forgets `address`'s failures: it authenticated.
    pub fn record_success(&self, address: IpAddr) {
        self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&address);
    }

    pub fn remembered(&self) -> usize {
        self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_from_one_address_wait_longer_each_time_up_to_the_cap_and_a_success_resets() {
        let backoff = FailureBackoff::default();
        let (guesser, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let now = Instant::now();
        let delays: Vec<u64> = (0..8).map(|_| backoff.record_failure(guesser, now).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff.record_failure(other, now), FIRST_DELAY, "another address is not slowed");
        backoff.record_success(guesser);
        assert_eq!(backoff.record_failure(guesser, now), FIRST_DELAY);
        let later = now + FORGET_AFTER;
        assert_eq!(backoff.record_failure(other, later), FIRST_DELAY, "a quiet minute forgets");
    }

    #[test]
    fn the_map_never_holds_more_than_its_limit() {
        let backoff = FailureBackoff::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            backoff.record_failure(IpAddr::from(i.to_be_bytes()), now + Duration::from_micros(u64::from(i)));
        }
        assert_eq!(backoff.remembered(), MAX_ADDRESSES);
    }
}
