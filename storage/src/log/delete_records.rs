//! Deleting a log's records before an offset (Kafka's DeleteRecords): the log start offset moves forward, to any
//! offset up to the high watermark, inside a segment if need be. Kafka users purge data this way (erasure by
//! truncating the head, a poisoned backlog, reprocessing tools).
//!
//! What must stay true: no record below the log start offset is ever served (reads below it are
//! `OffsetOutOfRange`); the start never moves back, across restarts too (`log_start.rs` stores it before it is
//! published); records at or above it are never lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{lock, Log};
use crate::segment::Segment;
use crate::{Result, StorageError};

/// Kafka's "up to the high watermark" in DeleteRecords.
const HIGH_WATERMARK: i64 = -1;

impl Log {
    /// Deletes every record below `offset` (`-1`: below the high watermark) and returns the log start offset
    /// after it: `offset`, or the start as it was if that is already past `offset` (it never moves back). Past the
    /// high watermark, or negative but `-1`, is [`StorageError::DeleteBeyondHighWatermark`] and changes nothing.
    ///
    /// Durable when it returns: the new start is fsynced (`log-start-offset.checkpoint`) before readers see it.
    /// Segments wholly below it are deleted at once; when it is the log end, the active segment is rolled first so
    /// that its records go too. Records below it in the segment that holds it stay on disk until retention deletes
    /// that segment, never served: a read there is `OffsetOutOfRange`, and a read at the start returns the whole
    /// batch holding it, as Kafka does (consumers drop the records before the offset they asked for).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.ensure_open()?;
        let _rewrite = lock(&self.rewrite);
        let mut writer = lock(&self.writer);
        // Refused before the new start is written: after a failed fsync nothing more may reach the disk.
        self.ensure_writable(&writer)?;
        let high_watermark = self.high_watermark();
        let target = if offset == HIGH_WATERMARK { high_watermark } else { offset };
        if !(0..=high_watermark).contains(&target) {
            return Err(StorageError::DeleteBeyondHighWatermark { offset, high_watermark });
        }
        let moved = self.move_log_start(&mut writer, target)?;
        drop(writer);
        self.finish_move(moved)
    }

    /// A follower's log takes its leader's log start offset, as Kafka's `maybeIncrementLogStartOffset` on a
    /// replica: records the leader deleted (DeleteRecords, retention) go here too, so a failover to this replica
    /// never serves them again. The start moves to `min(leader_log_start_offset, high watermark)` and never back;
    /// returns it. No refusal past the high watermark, unlike [`Log::delete_records_before`]: a follower behind its
    /// leader moves as far as it can now and the rest on a later answer, once its high watermark has caught up.
    ///
    /// Durable when it returns, as [`Log::delete_records_before`].
    pub fn follow_log_start_offset(&self, leader_log_start_offset: i64) -> Result<i64> {
        self.ensure_open()?;
        let _rewrite = lock(&self.rewrite);
        let mut writer = lock(&self.writer);
        // Refused before the new start is written: after a failed fsync nothing more may reach the disk.
        self.ensure_writable(&writer)?;
        let target = leader_log_start_offset.min(self.high_watermark());
        let moved = self.move_log_start(&mut writer, target)?;
        drop(writer);
        self.finish_move(moved)
    }

    /// Moves the log start offset forward to `target` (at most the high watermark, the caller checked) under the
    /// writer lock. `Err(start)`: it was already at or past `target`, nothing changed.
    fn move_log_start(&self, writer: &mut super::Writer, target: i64) -> Result<std::result::Result<i64, i64>> {
        let current = self.log_start_offset();
        if target <= current {
            return Ok(Err(current));
        }
        if target == self.log_end_offset() && writer.active.size() > 0 {
            writer.mark_changing(&self.dir)?;
            self.roll(writer)?;
        }
        crate::log_start::store(&self.dir, target)?;
        if let Some(tail) = &self.tail {
            tail.remove_below(target);
        }
        self.log_start_offset.fetch_max(target, Ordering::AcqRel);
        Ok(Ok(target))
    }

    /// After [`Self::move_log_start`], without the writer lock (appends go on meanwhile): the segments wholly
    /// below the new start go. Answers the log start.
    fn finish_move(&self, moved: std::result::Result<i64, i64>) -> Result<i64> {
        let target = match moved {
            Ok(target) => target,
            Err(unchanged) => return Ok(unchanged),
        };
        let deleted = self.delete_segments_below_start()?;
        tracing::info!(
            dir = %self.dir.display(),
            log_start_offset = target,
            segments_deleted = deleted,
            "deleted records below an offset"
        );
        Ok(target)
    }

    /// Deletes the sealed segments whose every record is below the log start offset; returns how many.
    fn delete_segments_below_start(&self) -> Result<usize> {
        let start = self.log_start_offset();
        let doomed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
            // A segment ends where the next begins; the active (last) one has no next and always stays.
            let below: Vec<i64> = segments
                .keys()
                .zip(segments.keys().skip(1))
                .take_while(|(_, &next_base)| next_base <= start)
                .map(|(&base, _)| base)
                .collect();
            below.iter().filter_map(|base| segments.remove(base)).collect()
        };
        for segment in &doomed {
            segment.delete_files()?;
        }
        Ok(doomed.len())
    }
}
