//! The throughput history the overview charts and the per-partition rates the topic page shows: a sampler
//! task reads every partition's traffic counters every `SAMPLE_INTERVAL` and keeps the node's rates over the
//! last `SAMPLES_KEPT` intervals in a ring buffer. Reading the counters is a few relaxed loads per partition; the
//! produce and fetch paths do nothing more for the console.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::lag_history::LagHistory;
use crate::node::{now_ms, Node};

/// How often the counters are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes at one per 5 s.
pub const SAMPLES_KEPT: usize = 120;

/// The node's rates over one sampling interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub records_in_per_s: f64,
    pub records_out_per_s: f64,
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
}

/// One partition's counters, as last read.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    records_in: u64,
    records_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// One partition's rates over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartitionRate {
    pub records_in_per_s: f64,
    pub records_out_per_s: f64,
}

#[derive(Default)]
struct State {
    samples: VecDeque<Sample>,
    last: HashMap<(String, u32), Counters>,
    rates: HashMap<(String, u32), PartitionRate>,
    last_at: Option<Instant>,
}

/// The history, shared by the sampler task and the console.
#[derive(Default)]
pub struct Throughput {
    state: Mutex<State>,
}

impl Throughput {
    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().samples.iter().copied().collect()
    }

    /// The partition's rates over the last interval (zero before two samples were taken).
    pub fn partition_rate(&self, topic: &str, partition: u32) -> PartitionRate {
        self.lock().rates.get(&(topic.to_string(), partition)).copied().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it left plain numbers behind: still good to show.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads every partition's counters once and records the rates since the previous reading.
    pub fn sample(&self, node: &Node) {
        let now = Instant::now();
        let mut current = HashMap::new();
        for topic in node.registry.list() {
            for partition in topic.partitions() {
                let Some(traffic) = partition.traffic() else { continue };
                let counters = Counters {
                    records_in: traffic.records_in.load(Ordering::Relaxed),
                    records_out: traffic.records_out.load(Ordering::Relaxed),
                    bytes_in: traffic.bytes_in.load(Ordering::Relaxed),
                    bytes_out: traffic.bytes_out.load(Ordering::Relaxed),
                };
                current.insert((topic.name.to_string(), partition.index), counters);
            }
        }
        self.record(current, now, now_ms());
    }

    /// Records the rates between the previous reading and `current`, taken at `now`.
    fn record(&self, current: HashMap<(String, u32), Counters>, now: Instant, now_ms: i64) {
        let mut state = self.lock();
        if let Some(last_at) = state.last_at {
            let seconds = now.duration_since(last_at).as_secs_f64().max(1e-3);
            let mut sample = Sample { at_ms: now_ms, ..Sample::default() };
            let mut rates = HashMap::with_capacity(current.len());
            for (key, now_counters) in &current {
                // A partition new since the last reading (or deleted and re-created) counts from zero.
                let before = state.last.get(key).copied().unwrap_or_default();
                let per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
                let rate = PartitionRate {
                    records_in_per_s: per_s(now_counters.records_in, before.records_in),
                    records_out_per_s: per_s(now_counters.records_out, before.records_out),
                };
                sample.records_in_per_s += rate.records_in_per_s;
                sample.records_out_per_s += rate.records_out_per_s;
                sample.bytes_in_per_s += per_s(now_counters.bytes_in, before.bytes_in);
                sample.bytes_out_per_s += per_s(now_counters.bytes_out, before.bytes_out);
                rates.insert(key.clone(), rate);
            }
            if state.samples.len() == SAMPLES_KEPT {
                state.samples.pop_front();
            }
            state.samples.push_back(sample);
            state.rates = rates;
        }
        state.last = current;
        state.last_at = Some(now);
    }
}

/// Samples the throughput and the groups' lag every `SAMPLE_INTERVAL` until shutdown.
pub async fn run_sampler(node: Arc<Node>, throughput: Arc<Throughput>, lag: Arc<LagHistory>) {
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = node.shutdown.clone();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => return,
        }
        let (node, throughput, lag) = (Arc::clone(&node), Arc::clone(&throughput), Arc::clone(&lag));
        // Ten thousand topics take a few milliseconds: off the async workers.
        let sampled = tokio::task::spawn_blocking(move || {
            throughput.sample(&node);
            lag.sample(&node);
        });
        if sampled.await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(records_in: u64, records_out: u64) -> Counters {
        Counters { records_in, records_out, bytes_in: records_in * 100, bytes_out: records_out * 100 }
    }

    #[test]
    fn rates_are_counter_differences_over_the_interval_and_the_ring_keeps_the_newest() {
        let throughput = Throughput::default();
        let start = Instant::now();
        let reading = |a: Counters, b: Counters| HashMap::from([(("t".to_string(), 0), a), (("t".to_string(), 1), b)]);
        throughput.record(reading(counters(100, 0), counters(0, 0)), start, 0);
        assert!(throughput.samples().is_empty(), "one reading is no rate yet");
        throughput.record(reading(counters(600, 50), counters(500, 0)), start + SAMPLE_INTERVAL, 5_000);
        let samples = throughput.samples();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].records_in_per_s, 200.0, "(500 + 500) records over 5 s");
        assert_eq!(samples[0].bytes_out_per_s, 1_000.0);
        assert_eq!(
            throughput.partition_rate("t", 0),
            PartitionRate { records_in_per_s: 100.0, records_out_per_s: 10.0 }
        );
        assert_eq!(throughput.partition_rate("t", 7), PartitionRate::default(), "unknown partitions read as idle");
        for i in 2..(SAMPLES_KEPT as u32 + 10) {
            throughput.record(reading(counters(600, 50), counters(500, 0)), start + SAMPLE_INTERVAL * i, i64::from(i));
        }
        let samples = throughput.samples();
        assert_eq!(samples.len(), SAMPLES_KEPT, "the ring is bounded");
        assert_eq!(samples.last().map(|s| s.at_ms), Some(i64::from(SAMPLES_KEPT as u32 + 9)), "newest last");
        assert_eq!(samples.last().map(|s| s.records_in_per_s), Some(0.0), "no traffic, no rate");
    }
}
