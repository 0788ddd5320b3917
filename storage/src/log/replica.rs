//! What a replicated partition needs of its log: a follower appends the leader's batches as they are (offsets
//! and leader epochs kept, so replicas are byte-identical), the broker sets the high watermark from what the
//! in-sync replicas hold, the leader reads past the high watermark for its followers, and a follower finds
//! where an epoch ends in the leader's log (KIP-101/KIP-279) to truncate a divergent tail.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use rill_protocol::{BatchHeader, BatchIter};

use super::{lock, Log, ReadResult};
use crate::checkpoint::EpochStart;
use crate::{Result, StorageError};

impl Log {
    /// From now on the high watermark moves only by [`Log::set_high_watermark`] (the broker knows what the
    /// other replicas hold), and starts at `start` (clamped to the log): what this node knew was committed.
    pub fn hold_high_watermark(&self, start: i64) {
        self.is_high_watermark_held.store(true, Ordering::Release);
        self.set_high_watermark(start);
    }

    /// Whether the broker moves the high watermark (a replicated partition's log, once held).
    pub fn is_high_watermark_held(&self) -> bool {
        self.is_high_watermark_held.load(Ordering::Acquire)
    }

    /// The log becomes a follower's replica: its appends stop going into the node's tail cache, and what the cache
    /// holds of it is dropped. Nobody reads a follower's log (consumers, follower fetches and the group
    /// coordinator go to the leader; there is no fetch-from-follower), so caching it only costs memory and, while
    /// the cache fills, the kernel's zeroing of fresh pages for every replicated byte.
    ///
    /// No writer lock (the caller may be on an async thread): an append already under way may still insert its
    /// batches after the drop. That entry is whole batches byte-identical to the log's like any other, removed by
    /// truncation, retention and eviction as any other: it costs memory until evicted, never a wrong read.
    pub fn stop_caching_appends(&self) {
        if self.is_caching_appends.swap(false, Ordering::AcqRel) {
            if let Some(tail) = &self.tail {
                tail.clear();
            }
        }
    }

    /// The log becomes its partition's leader: appends go into the tail cache again from the next one, so the
    /// cache holds this log from its end at this moment on, and reads below that go to the segment files, as
    /// after a restart. A read the cache answers stops where the cached entries stop being consecutive, so it
    /// never skips the uncached bytes (`tail_cache.rs`).
    pub fn start_caching_appends(&self) {
        self.is_caching_appends.store(true, Ordering::Release);
    }

    /// Whether appends go into the node's tail cache (true from the open until [`Log::stop_caching_appends`]).
    pub fn is_caching_appends(&self) -> bool {
        self.is_caching_appends.load(Ordering::Acquire)
    }

    /// Sets the high watermark, clamped to `[log start, log end]`. It may move back (a follower that truncated).
    pub fn set_high_watermark(&self, high_watermark: i64) {
        // Not `clamp`, which panics when the start is past the end: a truncation inside the batch holding the log
        // start (a start moved inside a batch by a deletion, or by `start_over.rs`) leaves the end below it.
        let clamped = high_watermark.max(self.log_start_offset()).min(self.log_end_offset());
        self.high_watermark.store(clamped, Ordering::Release);
    }

    /// Appends a leader's batches (consecutive v2 batches, as [`Log::read_to_end`] returned them) unchanged:
    /// the first must start at this log's end, each keeps its base offset and partition leader epoch, and a
    /// batch of a newer epoch starts that epoch here as it did in the leader's log. Checked with recovery's
    /// integrity rules (the leader already applied the produce rules). Returns the new log end.
    pub fn append_replica(&self, batches: Bytes) -> Result<i64> {
        self.ensure_open()?;
        let mut checked: Vec<(Bytes, BatchHeader)> = Vec::new();
        for batch in BatchIter::new(batches) {
            let batch = batch?;
            let header = rill_protocol::validate(&batch.bytes)?;
            if batch.bytes.len() > self.config().max_batch_bytes {
                return Err(StorageError::BatchTooLarge {
                    size: batch.bytes.len(),
                    limit: self.config().max_batch_bytes,
                });
            }
            checked.push((batch.bytes, header));
        }
        let mut writer = lock(&self.writer);
        self.ensure_writable(&writer)?;
        let mut next_offset = self.log_end_offset.load(Ordering::Relaxed);
        if checked.is_empty() {
            return Ok(next_offset);
        }
        writer.mark_changing(&self.dir)?;
        let mut group: Vec<(&[u8], BatchHeader)> = Vec::new();
        let mut group_bytes = 0u64;
        if let Some((_, first)) = checked.first() {
            if self.is_rebase_to(&writer, first, next_offset) {
                self.rebase_empty(&mut writer, first.base_offset)?;
                next_offset = first.base_offset;
            }
        }
        for (bytes, header) in &checked {
            if header.base_offset != next_offset {
                return Err(self.replica_mismatch(format!(
                    "a replicated batch starts at offset {} but the log ends at {next_offset}",
                    header.base_offset
                )));
            }
            let epoch = header.partition_leader_epoch;
            let current = writer.checkpoint.epochs.last().map_or(-1, |e| e.epoch);
            if epoch < current {
                return Err(self.replica_mismatch(format!(
                    "a replicated batch at offset {} carries epoch {epoch}, below the log's epoch {current}",
                    header.base_offset
                )));
            }
            if epoch > current {
                // The batches before it carry the older epoch: write them first.
                self.write_group(&mut writer, &mut group)?;
                group_bytes = 0;
                writer.checkpoint.epochs.push(EpochStart { epoch, start_offset: header.base_offset });
                writer.checkpoint.store(&self.dir)?;
            }
            if self.needs_roll(&writer.active, group_bytes, header) {
                self.write_group(&mut writer, &mut group)?;
                group_bytes = 0;
                self.roll(&mut writer)?;
            }
            next_offset = header.next_offset();
            group_bytes += bytes.len() as u64;
            group.push((bytes, *header));
        }
        self.write_group(&mut writer, &mut group)?;
        Ok(next_offset)
    }

    fn replica_mismatch(&self, reason: String) -> StorageError {
        StorageError::Corrupt { path: self.dir.to_path_buf(), position: 0, reason }
    }

    /// [`Log::read`], but up to the log end rather than the high watermark: what a leader sends its followers.
    pub fn read_to_end(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let log_end = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset, log_end_offset: log_end });
        }
        let mut result = ReadResult { batches: Bytes::new(), log_start_offset, high_watermark: self.high_watermark() };
        if offset >= log_end {
            return Ok(result);
        }
        if let Some(batches) = self.tail.as_ref().and_then(|t| t.read(offset, max_bytes, log_end, true)) {
            result.batches = batches;
            return Ok(result);
        }
        let mut segment = self.segment_at(offset);
        while let Some(current) = segment {
            if offset >= log_end {
                break;
            }
            if let Some(batches) = current.read(offset, max_bytes, log_end)? {
                result.batches = batches;
                break;
            }
            segment = self.segment_after(current.base_offset());
        }
        Ok(result)
    }

    /// [`Log::read_to_end`] when it needs no disk: the batches are in the tail cache, or the read starts at the log
    /// end. `None` otherwise (the caller goes on to [`Log::read_to_end`], which counts the miss), and for an
    /// offset out of range, which [`Log::read_to_end`] reports. Cheap enough for an async thread: a leader's
    /// followers fetch what was just appended, and the blocking pool's two thread hops per fetch were on the
    /// ACKS_ALL path of every batch.
    pub fn read_to_end_from_memory(&self, offset: i64, max_bytes: usize) -> Option<ReadResult> {
        let log_end = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > log_end {
            return None;
        }
        let mut result = ReadResult { batches: Bytes::new(), log_start_offset, high_watermark: self.high_watermark() };
        if offset < log_end {
            result.batches = self.tail.as_ref()?.read(offset, max_bytes, log_end, false)?;
        }
        Some(result)
    }

    /// KIP-279's answer for a follower whose last epoch is `epoch`: the largest epoch this log holds at or below
    /// it, and where that epoch ends here (the start of the next epoch, or the log end for the last one).
    /// `None` when the log has no epoch at or below it.
    pub fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, i64)> {
        let writer = lock(&self.writer);
        let epochs = &writer.checkpoint.epochs;
        let position = epochs.iter().rposition(|e| e.epoch <= epoch)?;
        let end = epochs.get(position + 1).map_or_else(|| self.log_end_offset(), |next| next.start_offset);
        Some((epochs[position].epoch, end))
    }

    /// Kafka's OffsetForLeaderEpoch answer (its `LeaderEpochFileCache.endOffsetFor`), which a consumer uses after
    /// a leader change to find whether the log it read from was truncated (KIP-320): the epoch at or below
    /// `epoch` this log holds and where it ends (the start of the next larger epoch; the log end for the current
    /// epoch). `None`, Kafka's UNDEFINED_EPOCH_OFFSET, for the undefined epoch (-1), an epoch above every one
    /// known, or a log without epochs. Unlike [`Log::epoch_end_offset`], an epoch below every one known answers
    /// with the first epoch's start: what came before it is gone, and the reader must not go past that start.
    pub fn end_offset_for_leader_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let writer = lock(&self.writer);
        end_offset_for(&writer.checkpoint.epochs, epoch, self.log_end_offset())
    }
}

/// [`Log::end_offset_for_leader_epoch`] over the epochs a log holds (ascending by epoch and start offset).
fn end_offset_for(epochs: &[EpochStart], epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
    let latest = epochs.last()?;
    if epoch < 0 || epoch > latest.epoch {
        return None;
    }
    if epoch == latest.epoch {
        return Some((epoch, log_end_offset));
    }
    let next = epochs.iter().find(|e| e.epoch > epoch)?;
    match epochs.iter().rev().find(|e| e.epoch <= epoch) {
        Some(floor) => Some((floor.epoch, next.start_offset)),
        None => Some((epoch, next.start_offset)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCHS: [EpochStart; 3] = [
        EpochStart { epoch: 2, start_offset: 10 },
        EpochStart { epoch: 4, start_offset: 25 },
        EpochStart { epoch: 7, start_offset: 40 },
    ];

    #[test]
    fn the_current_epoch_ends_at_the_log_end_and_an_older_one_where_the_next_starts() {
        assert_eq!(end_offset_for(&EPOCHS, 7, 55), Some((7, 55)));
        assert_eq!(end_offset_for(&EPOCHS, 4, 55), Some((4, 40)));
        assert_eq!(end_offset_for(&EPOCHS, 2, 55), Some((2, 25)));
    }

    #[test]
    fn an_epoch_this_log_never_held_answers_the_largest_below_it() {
        assert_eq!(end_offset_for(&EPOCHS, 5, 55), Some((4, 40)));
        assert_eq!(end_offset_for(&EPOCHS, 6, 55), Some((4, 40)));
        assert_eq!(end_offset_for(&EPOCHS, 3, 55), Some((2, 25)));
    }

    #[test]
    fn an_epoch_below_every_one_known_ends_where_the_first_starts() {
        assert_eq!(end_offset_for(&EPOCHS, 1, 55), Some((1, 10)));
        assert_eq!(end_offset_for(&EPOCHS, 0, 55), Some((0, 10)));
    }

    #[test]
    fn the_undefined_epoch_a_future_one_and_a_log_without_epochs_are_undefined() {
        assert_eq!(end_offset_for(&EPOCHS, -1, 55), None);
        assert_eq!(end_offset_for(&EPOCHS, 8, 55), None);
        assert_eq!(end_offset_for(&[], 0, 0), None);
    }
}
