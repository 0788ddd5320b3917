//! `LatencyHistogram`: durations counted into fixed buckets with relaxed atomics, so that code on a hot path
//! (an fsync, a request) can record one without a lock or an allocation. Whoever exports it (the broker's
//! `/metrics`) reads the buckets at scrape time; this crate knows nothing of the export format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds: 50 µs to 10 s, roughly ×2.5 apart; slower lands in +Inf.
/// Fixed so that every histogram of the node has the same buckets and PromQL can sum them.
pub const LATENCY_BUCKET_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// Counts of durations by bucket (not cumulative: the exporter accumulates), their number and their sum.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// One more than the bounds: the last counts durations above every bound.
    buckets: [AtomicU64; LATENCY_BUCKET_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// A histogram as read at one instant (the fields are read one by one, so a concurrent record may show in the
/// count and not yet in its bucket: harmless for monitoring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Per bucket of [`LATENCY_BUCKET_BOUNDS_US`], then the +Inf one; not cumulative.
    pub buckets: [u64; LATENCY_BUCKET_BOUNDS_US.len() + 1],
    pub count: u64,
    pub sum_ns: u64,
}

impl LatencyHistogram {
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

impl LatencySnapshot {
    /// Adds another histogram's counts: how a node sums its partitions' fsyncs.
    pub fn add(&mut self, other: &LatencySnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }
}

impl Default for LatencySnapshot {
    fn default() -> Self {
        Self { buckets: [0; LATENCY_BUCKET_BOUNDS_US.len() + 1], count: 0, sum_ns: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_is_not_below_it() {
        let histogram = LatencyHistogram::default();
        histogram.record(Duration::from_micros(50));
        histogram.record(Duration::from_micros(51));
        histogram.record(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], 1);
        assert_eq!(snapshot.buckets[1], 1);
        assert_eq!(snapshot.buckets[LATENCY_BUCKET_BOUNDS_US.len()], 1);
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.sum_ns, 60_000_101_000);
    }
}
