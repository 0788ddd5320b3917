//! The log's side of transactions (`producer_state.rs` has the rules): the coordinator's markers appended,
//! the last stable offset `read_committed` readers stop at, and the aborted transactions their reads overlap.
//!
//! Readers take no writer lock for the last stable offset: the writer publishes the first unstable offset before
//! the high watermark that makes the batch opening a transaction readable, and [`Log::last_stable_offset`] loads
//! them in the opposite order, so it never passes an open transaction. Aborted transactions are read under the
//! writer lock, and only by a read that reaches the newest abort marker's offset or below it.

use std::sync::atomic::Ordering;

use rill_protocol::control::transaction_outcome;
use rill_protocol::BatchHeader;

use super::{lock, AppendInfo, Log};
use crate::producer_state::{AbortedTransaction, ProducerState};
use crate::{Result, StorageError};

/// The first unstable offset published when no transaction is open.
pub(super) const NONE_OPEN: i64 = i64::MAX;
/// The newest abort marker's offset published when no transaction was aborted.
pub(super) const NONE_ABORTED: i64 = -1;

impl Log {
    /// The offset below which every record is committed or aborted, no transaction open: the high watermark, or
    /// the first offset of the oldest open transaction when that is lower (Kafka's last stable offset).
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        high_watermark.min(self.first_unstable_offset.load(Ordering::Acquire))
    }

    /// The aborted transactions a read of `from..to` overlaps, oldest marker first: what a `read_committed`
    /// consumer needs to skip their records (see [`ProducerState::aborted_between`]).
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTransaction> {
        if self.last_aborted_offset.load(Ordering::Acquire) < from {
            return Vec::new();
        }
        lock(&self.writer).producers.aborted_between(from, to)
    }

    /// Appends a transaction marker (a control batch, `rill_protocol::control`) the broker's coordinator wrote,
    /// at the log end: clients may not produce control batches, so it skips their rules and the producer's
    /// sequence checks, and is only checked whole. Like [`Log::append_unsynced`], the caller fsyncs.
    pub fn append_control_unsynced(&self, marker: &[u8]) -> Result<AppendInfo> {
        self.ensure_open()?;
        let mut header = rill_protocol::validate(marker)?;
        if !header.is_control() {
            return Err(StorageError::InvalidBatch(rill_protocol::BatchError::ControlBatch));
        }
        let mut writer = lock(&self.writer);
        self.ensure_writable(&writer)?;
        writer.mark_changing(&self.dir)?;
        header.base_offset = self.log_end_offset.load(Ordering::Relaxed);
        if self.needs_roll(&writer.active, 0, &header) {
            self.roll(&mut writer)?;
        }
        let info = AppendInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            append_time_ms: self.clock.now_ms(),
            is_duplicate: false,
        };
        let mut group = vec![(marker, header)];
        self.write_group(&mut writer, &mut group)?;
        Ok(info)
    }

    /// Takes one batch into the producer state: a data batch is remembered, a marker ends its producer's
    /// transaction. A marker that does not parse was damaged after it was written whole: it changes nothing.
    pub(super) fn observe_batch(&self, producers: &mut ProducerState, batch: &[u8], header: &BatchHeader, now_ms: i64) {
        if !header.is_control() {
            producers.observe(header, now_ms);
            return;
        }
        match transaction_outcome(batch) {
            Ok(outcome) => producers.end_transaction(header, outcome, now_ms),
            Err(err) => tracing::warn!(
                dir = %self.dir.display(),
                offset = header.base_offset,
                error = %err,
                "a control batch's record does not parse; ignoring it"
            ),
        }
    }

    /// Publishes what readers need of `producers` without the writer lock: called after every change, before the
    /// high watermark that makes it readable moves.
    pub(super) fn publish_transactions(&self, producers: &ProducerState) {
        let first_unstable = producers.first_unstable_offset().unwrap_or(NONE_OPEN);
        self.first_unstable_offset.store(first_unstable, Ordering::Release);
        let last_aborted = producers.last_aborted_offset().unwrap_or(NONE_ABORTED);
        self.last_aborted_offset.store(last_aborted, Ordering::Release);
    }
}
