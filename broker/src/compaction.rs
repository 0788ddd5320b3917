//! The node's compaction loop (docs/compaction.md): every `maintenance_interval_ms`, a pass over the partitions of
//! compacted topics (`Log::compact_if_configured`) by `log_cleaner_threads` workers on the blocking pool (Kafka's
//! `log.cleaner.threads`), each taking the next partition no other worker has, so one partition's long rewrite
//! holds up only its own worker. Apart from the maintenance task: a pass may rewrite gigabytes, and interval
//! flushes and retention must not wait for it. Shutdown is seen between partitions; a log closed under a pass
//! refuses its swap, and the pass ends.
//!
//! Invariants: a partition is compacted by one worker at a time (each pass hands it out once, and the next pass
//! starts only when every worker of this one is done); each worker holds at most one pass's key map (64 MiB), so
//! memory grows with the worker count, not the partition count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::NodeMetrics;
use crate::node::Node;
use crate::partition::Partition;

/// How long a partition whose compaction pass failed waits before the next try: a full disk or a damaged segment
/// would otherwise fail, and log, every `maintenance_interval_ms`.
const COMPACTION_RETRY: Duration = Duration::from_secs(30);

/// Partitions whose last pass failed (a full disk, say), and when: tried again only after [`COMPACTION_RETRY`].
type Failures = Mutex<HashMap<(String, u32), Instant>>;

/// Compacts until shutdown.
pub async fn run(node: Arc<Node>) {
    let tick_ms = node.config.maintenance_interval_ms;
    let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = node.shutdown.clone();
    let failed: Arc<Failures> = Arc::default();
    let workers = node.config.log_cleaner_threads.max(1);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        failed.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, at| at.elapsed() < COMPACTION_RETRY);
        let partitions: Arc<Vec<Arc<Partition>>> = Arc::new(node.registry.all_partitions());
        let next = Arc::new(AtomicUsize::new(0));
        let pass: Vec<_> = (0..workers)
            .map(|_| {
                let (partitions, next, failed) = (Arc::clone(&partitions), Arc::clone(&next), Arc::clone(&failed));
                let (stopping, metrics) = (node.shutdown.clone(), node.metrics.clone());
                tokio::task::spawn_blocking(move || {
                    compact_partitions(&partitions, &next, &stopping, metrics.as_deref(), &failed)
                })
            })
            .collect();
        for worker in pass {
            if let Err(err) = worker.await {
                tracing::error!(error = %err, "compaction pass failed");
            }
        }
    }
}

/// One worker's share of a pass: the next partition not yet taken, until none is left or shutdown starts.
fn compact_partitions(
    partitions: &[Arc<Partition>],
    next: &AtomicUsize,
    stopping: &watch::Receiver<bool>,
    metrics: Option<&NodeMetrics>,
    failed: &Failures,
) {
    let lock = || failed.lock().unwrap_or_else(PoisonError::into_inner);
    while !*stopping.borrow() {
        let Some(partition) = partitions.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
        let key = (partition.topic.to_string(), partition.index);
        if partition.is_closed() || lock().contains_key(&key) {
            continue;
        }
        match partition.log().compact_if_configured() {
            Ok(None) | Err(rill_storage::StorageError::Closed(_)) => {}
            Ok(Some(outcome)) => {
                if let Some(metrics) = metrics {
                    metrics.compaction.record(&outcome);
                }
            }
            Err(err) => {
                tracing::warn!(partition = ?partition, error = %err, retry_in_s = COMPACTION_RETRY.as_secs(), "compaction failed; the old segments stay");
                lock().insert(key, Instant::now());
                if let Some(metrics) = metrics {
                    metrics.compaction.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
