//! Starting a log over, empty, at an offset (Kafka's `truncateFullyAndStartAt`): what a follower does when its
//! whole log lies below its leader's log start (records deleted there by DeleteRecords or retention while the
//! follower was away, or a replica added empty after such a deletion). The offsets it would fetch next no longer
//! exist anywhere, so it drops what it has and fetches from the leader's start.
//!
//! What must stay true: a crash at any point reopens a log that is valid on its own, either the old records (or
//! the newer part of them, as retention could have left it: a log whose end is still below the leader's start,
//! so the follower starts over again) or the new empty log at the offset, never a mix with a hole in its offsets.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rill_protocol::BatchHeader;

use super::{lock, Log, Writer};
use crate::checkpoint::EpochStart;
use crate::producer_state::ProducerState;
use crate::recovery::IndexCursor;
use crate::segment::Segment;
use crate::{producer_snapshot, Result, StorageError};

impl Log {
    /// Deletes every segment (and its indexes and the producer snapshots) and starts an empty log at `offset`:
    /// log start, log end, high watermark and recovery point all become `offset`, the leader epochs start again
    /// (epoch 0 from `offset`; the next replicated batch brings its own), appends continue from `offset`.
    /// `offset` must be at or past the log end: dropping records the log could keep is [`Log::truncate_to`]'s
    /// job, and the log start never moves back. Durable when it returns.
    ///
    /// A failure part-way (an I/O error) closes the log: what is on disk is then what a crash there would leave,
    /// which the next open recovers (see the module doc), while the log in memory no longer matches it.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        self.ensure_open()?;
        let _rewrite = lock(&self.rewrite);
        let mut writer = lock(&self.writer);
        self.ensure_writable(&writer)?;
        let old_start = self.log_start_offset();
        let old_end = self.log_end_offset();
        if offset < old_end {
            return Err(StorageError::InvalidConfig {
                setting: "start_offset",
                reason: format!(
                    "cannot start the log over at offset {offset}: it is below the log end {old_end}; the offset \
                     must be at or past the log end (truncate to drop records the log keeps)"
                ),
            });
        }
        // Readers first: with the start at the new end every read below it is out of range, so nobody reads the
        // old segments as they go.
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        let deleted = self.rewrite_segments(&mut writer, offset, offset).inspect_err(|e| {
            self.is_closed.store(true, Ordering::Release);
            tracing::error!(dir = %self.dir.display(), offset, error = %e, "starting the log over failed; closed it");
        })?;
        tracing::info!(
            dir = %self.dir.display(),
            old_log_start_offset = old_start,
            old_log_end_offset = old_end,
            log_start_offset = offset,
            segments_deleted = deleted,
            "started the log over, empty, at an offset"
        );
        Ok(())
    }

    /// Whether `first`, the first batch a leader sent, holds this log's `end` while the log is empty: a log
    /// started over at its leader's log start when that start is inside a batch (the leader sends the batch
    /// whole, as it does to consumers reading at its start).
    pub(super) fn is_rebase_to(&self, writer: &Writer, first: &BatchHeader, end: i64) -> bool {
        let is_empty = writer.active.size() == 0 && self.segment_count() == 1;
        is_empty && first.base_offset < end && end < first.next_offset()
    }

    /// Moves the empty log's only segment back to `base`, the first offset of the batch holding the log start,
    /// keeping the log start: the records of that batch below it are on disk, never served (as after a deletion
    /// inside a batch, `delete_records.rs`). The log end is published by the append that follows. A crash
    /// part-way reopens an empty log, at its old base or at `base` (with the start clamped to it): nothing below
    /// the leader's start is served, and the next fetch starts over again.
    pub(super) fn rebase_empty(&self, writer: &mut Writer, base: i64) -> Result<()> {
        let log_start = self.log_start_offset();
        self.rewrite_segments(writer, base, log_start).inspect_err(|_| {
            self.is_closed.store(true, Ordering::Release);
        })?;
        tracing::info!(
            dir = %self.dir.display(),
            base_offset = base,
            log_start_offset = log_start,
            "moved an empty log's segment back to the batch holding its start"
        );
        Ok(())
    }

    /// Replaces every segment by one empty segment at `base`, with the log start `log_start` on disk; returns how
    /// many segments went. The in-memory offsets are the caller's to publish.
    fn rewrite_segments(&self, writer: &mut Writer, base: i64, log_start: i64) -> Result<usize> {
        writer.mark_changing(&self.dir)?;
        if let Some(tail) = &self.tail {
            tail.clear();
        }
        // The map keeps them until the new segment replaces them: it is never empty (retention, running without
        // the writer lock, relies on that).
        let doomed: Vec<Arc<Segment>> =
            self.segments.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();

        // The order on disk, and why a crash between any two steps reopens a valid log:
        // 1. The old segments go oldest first, as retention deletes them: a crash part-way leaves the newer ones,
        //    a log starting at the first left (its end still below the leader's start: the follower starts over
        //    again). The producer snapshots go with them: they describe producers of the deleted records.
        // 2. The partition checkpoint says "recovery point `base`, epoch 0 from `base`". With no segment on disk,
        //    an open creates the empty segment at the recovery point: a crash from here on reopens the new log,
        //    whether or not steps 3 and 4 happened. Stored earlier, with old segments still there, the epochs it
        //    names would not describe them.
        // 3. `log-start-offset.checkpoint` says `log_start`, so the start stays put across restarts as after a
        //    deletion (an open takes the larger of it and the first segment's base).
        // 4. The new empty segment, and an fsync of the directory for its entries.
        for segment in &doomed {
            segment.delete_files()?;
        }
        for snapshot in producer_snapshot::snapshot_offsets(&self.dir)? {
            producer_snapshot::remove(&self.dir, snapshot)?;
        }
        self.dir.sync()?;
        writer.checkpoint.recovery_point = base;
        writer.checkpoint.epochs = vec![EpochStart { epoch: 0, start_offset: base }];
        writer.checkpoint.store(&self.dir)?;
        crate::log_start::store(&self.dir, log_start)?;
        let active = Arc::new(Segment::create(&self.dir, base, &self.segment_settings, self.clock.now_ms())?);
        self.dir.sync()?;

        *self.segments.write().unwrap_or_else(|p| p.into_inner()) = BTreeMap::from([(base, active.clone())]);
        writer.active = active;
        writer.cursor = IndexCursor::default();
        writer.producers = ProducerState::default();
        self.publish_transactions(&writer.producers);
        writer.snapshot_offset = None;
        lock(&self.flush).durable_end = base;
        Ok(doomed.len())
    }
}
