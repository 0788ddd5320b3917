//! The log's side of idempotent producers (`producer_state.rs`): checking a produce call's batches before any
//! is written, loading the state on open (newest snapshot plus the batches after it), rebuilding it after a
//! truncation, snapshots at roll and close, and expiry.

use rill_protocol::{BatchHeader, BatchIter};

use super::{lock, AppendInfo, Log, Writer};
use crate::producer_snapshot;
use crate::producer_state::{ProducerEntry, ProducerState, SequenceCheck};
use crate::{Result, StorageError};

/// Bytes read at a time while replaying batches into the producer state.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// What the append will do with one batch of a call.
pub(super) enum Planned {
    /// Write it; its header's base offset is the one it will get.
    Append(BatchHeader),
    /// A retry of a batch already in the log: answer with where it is.
    Duplicate(AppendInfo),
}

/// One producer id as Kafka's DescribeProducers shows it (see [`Log::producer_activity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerActivity {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence of its last record in the partition, -1 when none is kept.
    pub last_sequence: i32,
    /// The broker's clock at its last batch or marker here.
    pub last_seen_ms: i64,
    /// Where its open transaction starts here, if one is open.
    pub transaction_first_offset: Option<i64>,
}

/// One producer id's state as the log keeps it (see [`Log::producers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last batches kept for duplicate detection, oldest first: (first sequence, last sequence, base offset,
    /// last offset).
    pub batches: Vec<(i32, i32, i64, i64)>,
}

impl Log {
    /// Decides what happens to each batch of a call, under the writer lock and before anything is written, so a
    /// refusal leaves the log untouched: offsets for the batches to append (from the log end, in order), the
    /// original offsets for duplicates. Later batches of the call are checked against the earlier ones' state.
    pub(super) fn plan_appends(
        &self,
        producers: &mut ProducerState,
        headers: Vec<BatchHeader>,
        now_ms: i64,
    ) -> Result<Vec<Planned>> {
        let mut next_offset = self.log_end_offset();
        let mut plans = Vec::with_capacity(headers.len());
        // The call's own effect on the producers it touches: copies of their entries, advanced batch by batch.
        // A call of one batch has no later batch to check against it, and skips the copy.
        let needs_scratch = headers.len() > 1;
        let mut scratch = ProducerState::default();
        for mut header in headers {
            if header.producer_id >= 0 {
                let producer_id = header.producer_id;
                let entry = scratch.get(producer_id).or_else(|| producers.get(producer_id));
                match ProducerState::check(entry, &header)? {
                    SequenceCheck::Duplicate(original) => {
                        plans.push(Planned::Duplicate(AppendInfo {
                            base_offset: original.base_offset,
                            last_offset: original.last_offset,
                            append_time_ms: original.timestamp_ms,
                            is_duplicate: true,
                        }));
                        continue;
                    }
                    SequenceCheck::Append => {
                        if entry.is_none() {
                            self.make_room_for_producer(producers, &scratch, now_ms)?;
                        }
                        if needs_scratch {
                            if let (None, Some(current)) = (scratch.get(producer_id), producers.get(producer_id)) {
                                scratch.insert(producer_id, current.clone());
                            }
                            scratch.record(&header, next_offset, now_ms);
                        }
                    }
                }
            }
            header.base_offset = next_offset;
            next_offset = header.next_offset();
            plans.push(Planned::Append(header));
        }
        Ok(plans)
    }

    /// Refuses a new producer id when the partition keeps `max_producer_ids` already, after forgetting the idle
    /// ones. `scratch` holds the call's own producers, some of them new.
    fn make_room_for_producer(
        &self,
        producers: &mut ProducerState,
        scratch: &ProducerState,
        now_ms: i64,
    ) -> Result<()> {
        let limit = self.config().max_producer_ids;
        let count = |producers: &ProducerState| {
            producers.len() + scratch.iter().filter(|(id, _)| producers.get(*id).is_none()).count()
        };
        if count(producers) < limit {
            return Ok(());
        }
        let expired = producers.expire(now_ms, self.config().producer_id_expiration_ms);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "expired idle producer ids");
        }
        if count(producers) < limit {
            return Ok(());
        }
        Err(crate::producer_state::ProducerError::TooManyProducers { limit }.into())
    }

    /// Loads the producer state for a log that ends at `end_offset`: the newest usable snapshot, then every batch
    /// from it (or from the log start, without one) to the end. Also says whether that snapshot was at the end,
    /// so that nothing needed replaying and a close need not write it again.
    pub(super) fn load_producers(&self, end_offset: i64) -> Result<(ProducerState, bool)> {
        let now_ms = self.clock.now_ms();
        let (from, mut producers) =
            producer_snapshot::load_latest(&self.dir, end_offset)?.unwrap_or((i64::MIN, ProducerState::default()));
        let is_at_end = from == end_offset;
        let from = from.max(self.log_start_offset());
        if from < end_offset {
            self.replay_producers(&mut producers, from, end_offset, now_ms)?;
            tracing::debug!(dir = %self.dir.display(), from, end_offset, producers = producers.len(), "rebuilt producer state from the log");
        }
        Ok((producers, is_at_end))
    }

    /// Remembers every batch whose base offset is in `from..end` (recovery's [`ProducerState::observe`]).
    fn replay_producers(&self, producers: &mut ProducerState, from: i64, end: i64, now_ms: i64) -> Result<()> {
        let mut offset = from;
        let mut segment = self.segment_at(offset);
        while let Some(current) = segment.take() {
            if offset >= end {
                break;
            }
            let read = current.read(offset, REPLAY_READ_BYTES, end)?.filter(|bytes| !bytes.is_empty());
            let Some(bytes) = read else {
                segment = self.segment_after(current.base_offset());
                continue;
            };
            for batch in BatchIter::new(bytes) {
                let batch = batch.map_err(|e| StorageError::Corrupt {
                    path: self.dir.to_path_buf(),
                    position: 0,
                    reason: format!("replaying producer state from offset {offset}: {e}"),
                })?;
                if batch.header.base_offset >= from {
                    self.observe_batch(producers, &batch.bytes, &batch.header, now_ms);
                }
                offset = batch.header.next_offset();
            }
            segment = Some(current);
        }
        Ok(())
    }

    /// On open, and after a truncation: the state as of the log end, from the snapshots at or below it and the log.
    pub(super) fn rebuild_producers(&self, writer: &mut Writer, end_offset: i64) -> Result<()> {
        let (producers, is_at_end) = self.load_producers(end_offset)?;
        self.publish_transactions(&producers);
        writer.producers = producers;
        writer.snapshot_offset = is_at_end.then_some(end_offset);
        Ok(())
    }

    /// Writes the producer snapshot at `offset`, the log end (at a roll or a clean close).
    pub(super) fn store_producer_snapshot(&self, writer: &mut Writer, offset: i64) -> Result<()> {
        if writer.snapshot_offset == Some(offset) {
            return Ok(());
        }
        producer_snapshot::store(&self.dir, offset, &writer.producers)?;
        writer.snapshot_offset = Some(offset);
        Ok(())
    }

    /// Forgets producer ids idle for `producer_id_expiration_ms` (Kafka's `producer.id.expiration.ms`); returns
    /// how many. Also forgets the aborted transactions whose markers are below the log start. The caller runs this on
    /// a timer, as it does retention; a full partition also runs it before refusing a new producer id.
    pub fn expire_producers(&self) -> usize {
        let now_ms = self.clock.now_ms();
        let mut writer = lock(&self.writer);
        writer.producers.forget_aborted_below(self.log_start_offset());
        self.publish_transactions(&writer.producers);
        let expired = writer.producers.expire(now_ms, self.config().producer_id_expiration_ms);
        drop(writer);
        if expired > 0 {
            tracing::debug!(dir = %self.dir.display(), expired, "expired idle producer ids");
        }
        expired
    }

    /// What Kafka's DescribeProducers reports of each producer id the partition keeps, by producer id.
    pub fn producer_activity(&self) -> Vec<ProducerActivity> {
        let writer = lock(&self.writer);
        let mut activity: Vec<ProducerActivity> = writer
            .producers
            .iter()
            .map(|(producer_id, entry)| ProducerActivity {
                producer_id,
                epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |batch| batch.last_sequence),
                last_seen_ms: entry.last_seen_ms,
                transaction_first_offset: entry.transaction_first_offset,
            })
            .collect();
        activity.sort_unstable_by_key(|producer| producer.producer_id);
        activity
    }

    /// The state kept for each producer id, by producer id, with the batches kept for duplicate detection.
    pub fn producers(&self) -> Vec<ProducerSummary> {
        let writer = lock(&self.writer);
        let mut summaries: Vec<ProducerSummary> = writer
            .producers
            .iter()
            .map(|(producer_id, entry): (i64, &ProducerEntry)| ProducerSummary {
                producer_id,
                epoch: entry.epoch,
                batches: entry
                    .batches
                    .iter()
                    .map(|b| (b.first_sequence, b.last_sequence, b.base_offset, b.last_offset))
                    .collect(),
            })
            .collect();
        summaries.sort_unstable_by_key(|summary| summary.producer_id);
        summaries
    }
}
