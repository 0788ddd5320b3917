//! Keeps the data dir's `__high-watermarks.checkpoint` (storage's [`HighWatermarkCheckpoint`]) as Kafka keeps its
//! `replication-offset-checkpoint`: every `high_watermark_checkpoint_interval_ms` when a replicated partition's
//! high watermark changed, and once more on a clean shutdown. Never on the produce path: appends and replication
//! only move atomics, and a store reads them.
//!
//! A restarted node starts each replicated partition's high watermark from the file, capped at the log end
//! recovery left (`Log::hold_high_watermark` clamps), instead of from the log start. What it can rely on: every
//! value stored was the partition's high watermark on this node at some moment, so every record below it was on
//! every in-sync replica then (only an in-sync replica becomes leader, and a follower truncates only what lies
//! past its leader's epoch end, which is never below a high watermark). Starting from it therefore shows
//! consumers nothing a failover could take back; it is at most one interval behind what the node had reached.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rill_storage::{HighWatermarkCheckpoint, StorageError};

use super::Replication;
use crate::registry::Registry;

pub struct HighWatermarkCheckpoints {
    data_dir: PathBuf,
    /// What the file held when this process started. A partition's high watermark starts from it when the broker
    /// first holds it, and it is written back for partitions not held yet, so a second restart before the
    /// reconciler gets to them keeps their values.
    found: HighWatermarkCheckpoint,
    /// What this process stored last; locked for the whole of a store, so two stores never overlap.
    stored: Mutex<Option<HighWatermarkCheckpoint>>,
}

impl HighWatermarkCheckpoints {
    /// Reads the file in `data_dir` (blocking: a few bytes per partition, once at start). An unreadable one is
    /// logged and treated as missing: every partition then starts from its log start, which is safe.
    pub fn load(data_dir: &Path) -> Self {
        let found = match HighWatermarkCheckpoint::load(data_dir) {
            Ok(found) => found.unwrap_or_default(),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the high-watermark checkpoint; starting without it");
                HighWatermarkCheckpoint::default()
            }
        };
        if !found.partitions.is_empty() {
            tracing::debug!(partitions = found.partitions.len(), "read the high-watermark checkpoint");
        }
        Self { data_dir: data_dir.to_owned(), found, stored: Mutex::new(None) }
    }

    /// Where the broker starts the high watermark of a partition it holds for the first time in this process.
    pub fn found(&self, topic: &str, partition: u32) -> Option<i64> {
        self.found.get(topic, partition)
    }

    /// What the file should say now: the high watermark of every partition the broker holds, and what the file
    /// said for local partitions it holds none of yet. Partitions gone from the registry drop out.
    fn current(&self, registry: &Registry) -> HighWatermarkCheckpoint {
        let mut current = HighWatermarkCheckpoint::default();
        for partition in registry.all_partitions() {
            let log = partition.log();
            let topic = partition.topic.as_str();
            let high_watermark = if log.is_high_watermark_held() {
                Some(log.high_watermark())
            } else {
                self.found(topic, partition.index)
            };
            if let Some(high_watermark) = high_watermark {
                current.partitions.insert((topic.to_owned(), partition.index), high_watermark);
            }
        }
        current
    }

    /// Stores the file if it would change (blocking: a write and two fsyncs). `Ok(false)` when nothing changed, or
    /// another store is running (the next tick stores what it missed).
    pub fn store_if_changed(&self, registry: &Registry) -> Result<bool, StorageError> {
        let Ok(mut stored) = self.stored.try_lock() else { return Ok(false) };
        self.store_locked(&mut stored, registry)
    }

    /// [`HighWatermarkCheckpoints::store_if_changed`], after waiting for a running store: a clean shutdown's last.
    pub fn store_final(&self, registry: &Registry) -> Result<bool, StorageError> {
        let mut stored = self.stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.store_locked(&mut stored, registry)
    }

    fn store_locked(
        &self,
        stored: &mut Option<HighWatermarkCheckpoint>,
        registry: &Registry,
    ) -> Result<bool, StorageError> {
        let current = self.current(registry);
        if *stored.as_ref().unwrap_or(&self.found) == current {
            return Ok(false);
        }
        current.store(&self.data_dir)?;
        tracing::trace!(partitions = current.partitions.len(), "stored the high-watermark checkpoint");
        *stored = Some(current);
        Ok(true)
    }
}

/// Starts a store on the blocking pool unless one is running; never waits for the disk.
pub fn spawn_store(replication: &Arc<Replication>) {
    let Ok(node) = replication.node() else { return };
    let replication = Arc::clone(replication);
    tokio::task::spawn_blocking(move || {
        if let Err(err) = replication.high_watermarks.store_if_changed(&node.registry) {
            tracing::warn!(error = %err, "cannot store the high-watermark checkpoint; will retry");
        }
    });
}

#[cfg(test)]
mod tests {
    use rill_protocol::{Record, RecordBatchBuilder};
    use rill_storage::SegmentFileCache;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::file_budget::FileBudget;

    fn checkpoint(entries: &[(&str, u32, i64)]) -> HighWatermarkCheckpoint {
        HighWatermarkCheckpoint {
            partitions: entries.iter().map(|(topic, partition, hw)| (((*topic).to_owned(), *partition), *hw)).collect(),
        }
    }

    fn two_records() -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        for value in [b"a", b"b"] {
            builder.push(&Record { key: None, value: Some(value.to_vec()), headers: Vec::new(), timestamp_ms: 0 });
        }
        builder.build()
    }

    #[tokio::test]
    async fn stores_held_partitions_keeps_unheld_ones_and_drops_gone_ones_only_when_changed() {
        let dir = tempfile::tempdir().expect("temp dir");
        checkpoint(&[("gone", 0, 9), ("orders", 0, 1), ("orders", 1, 4)]).store(dir.path()).expect("store");
        let config = Arc::new(BrokerConfig::for_tests(dir.path()));
        let budget = FileBudget { max_open_files: 1_000, reserved_files: 100, files_per_partition: 3 };
        let files = Arc::new(SegmentFileCache::new(16));
        let registry = Registry::restore(config, budget, files, None, None).await.expect("registry");
        registry.create("orders", 2, &Default::default()).await.expect("topic");
        let checkpoints = HighWatermarkCheckpoints::load(dir.path());
        assert_eq!(checkpoints.found("orders", 1), Some(4));

        // Partition 0 is held from the file's value; partition 1 is not held yet.
        let log = Arc::clone(registry.partition("orders", 0).expect("partition").log());
        log.hold_high_watermark(0);
        log.append(&two_records()).expect("append");
        log.append(&two_records()).expect("append");
        log.set_high_watermark(checkpoints.found("orders", 0).expect("in the file"));
        assert!(checkpoints.store_if_changed(&registry).expect("store"));
        let stored = HighWatermarkCheckpoint::load(dir.path()).expect("load");
        assert_eq!(stored, Some(checkpoint(&[("orders", 0, 1), ("orders", 1, 4)])), "gone dropped, 1 kept");
        assert!(!checkpoints.store_if_changed(&registry).expect("store"), "nothing moved: no write");

        log.set_high_watermark(3);
        assert!(checkpoints.store_final(&registry).expect("store"));
        let stored = HighWatermarkCheckpoint::load(dir.path()).expect("load");
        assert_eq!(stored, Some(checkpoint(&[("orders", 0, 3), ("orders", 1, 4)])));
    }
}
