//! Idempotent producers: what a partition remembers of each producer id, so that a retried batch is answered
//! with the offsets it got the first time instead of being stored twice.
//!
//! Kafka's `ProducerStateManager`, without transactions. For each producer id the partition keeps the
//! producer's epoch and its last [`BATCHES_KEPT`] batches (first and last sequence, base and last offset, the
//! broker's clock when appended). A produced batch that carries a producer id (not
//! [`rill_protocol::batch::NO_PRODUCER_ID`]) is checked against them ([`ProducerState::check`]):
//! - an exact repeat of one of those batches (same epoch, first and last sequence) is a duplicate: it is not
//!   appended and is answered with the original offsets;
//! - an older epoch is fenced ([`ProducerError::InvalidEpoch`]): a newer instance of the producer took over;
//! - a newer epoch must start at sequence 0, and the same epoch must continue at the sequence after the last
//!   batch (wrapping from `i32::MAX` to 0, as Kafka's does); anything else is
//!   [`ProducerError::OutOfOrderSequence`];
//! - a producer id the partition has no state for is accepted at any sequence: its state may have expired or
//!   been removed with the log's head, and Kafka's broker (since KIP-360) accepts it for the same reason.
//!
//! Recovery and a replica's appends use [`ProducerState::observe`] instead: what is in the log was accepted once,
//! and is only remembered, never re-checked.
//!
//! Memory is bounded twice: a producer id idle for `producer_id_expiration_ms` is forgotten
//! ([`ProducerState::expire`]), and a partition holds at most `max_producer_ids` of them
//! ([`ProducerError::TooManyProducers`], after expiring the idle ones).

use std::collections::{HashMap, VecDeque};

use rill_protocol::BatchHeader;

/// Batches remembered per producer id: Kafka's, and the most in-flight requests per connection an idempotent
/// Kafka producer may have, so any batch a producer can still be retrying is among them.
pub const BATCHES_KEPT: usize = 5;

/// Why a produced batch was refused by the idempotence checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error(
        "out of order sequence from producer {producer_id} (epoch {epoch}): batch starts at sequence {sequence}, \
         the partition expected {expected}"
    )]
    OutOfOrderSequence { producer_id: i64, epoch: i16, sequence: i32, expected: i32 },
    #[error(
        "producer {producer_id} has epoch {epoch}, older than the partition's current epoch {current}: a newer \
         instance of this producer fenced it"
    )]
    InvalidEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error(
        "the partition already keeps state for {limit} producer ids (max_producer_ids) and none is idle long \
         enough to expire: use fewer producers, or raise the limit"
    )]
    TooManyProducers { limit: usize },
}

/// One batch a producer appended, as remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatchMeta {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's clock when the batch was appended (or, for a batch rebuilt from the log, when it was read
    /// back): what expiry measures idleness from. Never the producer's own timestamps, which may be years old.
    pub timestamp_ms: i64,
}

/// A producer id's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; never empty, at most [`BATCHES_KEPT`].
    pub batches: VecDeque<ProducedBatchMeta>,
}

impl ProducerEntry {
    fn last_seen_ms(&self) -> i64 {
        self.batches.back().map_or(i64::MIN, |batch| batch.timestamp_ms)
    }

    /// Records `batch` as the producer's newest at `epoch`; a new epoch forgets the old one's batches.
    fn push(&mut self, epoch: i16, batch: ProducedBatchMeta) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// The sequence of the last record of a batch: Kafka's `incrementSequence`, wrapping past `i32::MAX` to 0.
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    add_sequence(base_sequence, i64::from(last_offset_delta))
}

/// `sequence` moved `steps` forward, wrapping from `i32::MAX` to 0.
fn add_sequence(sequence: i32, steps: i64) -> i32 {
    let wrapped = (i64::from(sequence) + steps).rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).expect("a remainder modulo 2^31 fits an i32")
}

/// Whether a batch starting at `first` may follow one that ended at `last` (Kafka's `inSequence`).
fn follows(last: i32, first: i32) -> bool {
    first == add_sequence(last, 1)
}

/// What to do with a produced batch that carries a producer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it, then [`ProducerState::record`] it.
    Append,
    /// Already in the log: answer with the original batch, append nothing.
    Duplicate(ProducedBatchMeta),
}

/// Every producer id's state in one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer id and its state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    /// Checks a produced batch from `header`'s producer against `entry`, that producer's state (`None` when the
    /// partition has none). See the module doc for the rules.
    pub fn check(entry: Option<&ProducerEntry>, header: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = entry else { return Ok(SequenceCheck::Append) };
        let (producer_id, epoch, first) = (header.producer_id, header.producer_epoch, header.base_sequence);
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch { producer_id, epoch, current: entry.epoch });
        }
        if epoch > entry.epoch {
            if first != 0 {
                return Err(ProducerError::OutOfOrderSequence { producer_id, epoch, sequence: first, expected: 0 });
            }
            return Ok(SequenceCheck::Append);
        }
        let last = last_sequence(first, header.last_offset_delta);
        if let Some(original) =
            entry.batches.iter().find(|batch| batch.first_sequence == first && batch.last_sequence == last)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        let newest = entry.batches.back().map_or(-1, |batch| batch.last_sequence);
        if !follows(newest, first) {
            let expected = add_sequence(newest, 1);
            return Err(ProducerError::OutOfOrderSequence { producer_id, epoch, sequence: first, expected });
        }
        Ok(SequenceCheck::Append)
    }

    /// Remembers a batch appended at `base_offset` (its header's own base offset is ignored: a produced batch's is
    /// not yet stamped), seen at `now_ms`. Does nothing for a batch without a producer id.
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64, now_ms: i64) {
        if header.producer_id < 0 {
            return;
        }
        let batch = ProducedBatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header.base_sequence, header.last_offset_delta),
            base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
            timestamp_ms: now_ms,
        };
        self.producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry { epoch: header.producer_epoch, batches: VecDeque::new() })
            .push(header.producer_epoch, batch);
    }

    /// Remembers a batch read back from the log (recovery) or appended by replication, without checking it: it
    /// was accepted once. The seam a replica's append must go through, so that a follower that becomes leader
    /// answers retries as the old leader would have.
    pub fn observe(&mut self, header: &BatchHeader, now_ms: i64) {
        self.record(header, header.base_offset, now_ms);
    }

    /// Puts back a producer's whole state (a snapshot being loaded).
    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// Forgets every producer id whose newest batch is `expiration_ms` or more older than `now_ms`; returns how
    /// many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: u64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(i64::try_from(expiration_ms).unwrap_or(i64::MAX));
        self.producers.retain(|_, entry| entry.last_seen_ms() > horizon);
        before - self.producers.len()
    }
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
