//! Idempotent producers: what a partition remembers of each producer id, so that a retried batch is answered
//! with the offsets it got the first time instead of being stored twice.
//!
//! Kafka's `ProducerStateManager`. For each producer id the partition keeps the
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
//! Transactions: a transactional batch opens its producer's transaction in the partition (at its base offset) unless
//! one is open; the coordinator's marker (a control batch, `rill_protocol::control`) closes it
//! ([`ProducerState::end_transaction`]), and an abort marker adds it to the partition's aborted transactions. The
//! first offset of the oldest open transaction is the first unstable offset: `read_committed` consumers read below it
//! (Kafka's last stable offset), and learn which producers' records to skip from the aborted transactions their
//! fetch overlaps ([`ProducerState::aborted_between`]). A marker with a newer epoch moves the producer to it, so a
//! fenced instance's late batch is refused in this partition too.
//!
//! Memory is bounded twice: a producer id idle for `producer_id_expiration_ms` is forgotten
//! ([`ProducerState::expire`], never while its transaction is open), and a partition holds at most
//! `max_producer_ids` of them ([`ProducerError::TooManyProducers`], after expiring the idle ones). Aborted
//! transactions are kept while their marker is in the log ([`ProducerState::forget_aborted_below`]).

use std::collections::{BTreeSet, HashMap, VecDeque};

use rill_protocol::control::TransactionOutcome;
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
    /// Oldest first, at most [`BATCHES_KEPT`]; empty when a transaction marker moved the producer to a new epoch
    /// before it wrote here in that epoch.
    pub batches: VecDeque<ProducedBatchMeta>,
    /// Where the producer's open transaction starts in this partition: its first transactional batch since the last
    /// marker. `None` when no transaction of the producer is open here.
    pub transaction_first_offset: Option<i64>,
    /// The broker's clock at the producer's last batch or marker here: what expiry measures idleness from.
    pub last_seen_ms: i64,
}

impl ProducerEntry {
    fn new(epoch: i16, now_ms: i64) -> Self {
        ProducerEntry { epoch, batches: VecDeque::new(), transaction_first_offset: None, last_seen_ms: now_ms }
    }

    /// Moves the producer to `epoch` when it is newer, forgetting the old epoch's batches (their sequences mean
    /// nothing in the new one).
    fn enter_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    /// Records `batch` as the producer's newest at `epoch`; a new epoch forgets the old one's batches.
    fn push(&mut self, epoch: i16, batch: ProducedBatchMeta) {
        self.enter_epoch(epoch);
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.last_seen_ms = self.last_seen_ms.max(batch.timestamp_ms);
        self.batches.push_back(batch);
    }
}

/// A transaction that ended with an abort marker: `read_committed` consumers skip `producer_id`'s records from
/// `first_offset` to the marker at `last_offset` (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
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
    /// (first offset, producer id) of each open transaction: the smallest is the first unstable offset.
    open_transactions: BTreeSet<(i64, i64)>,
    /// By the offset of their abort marker, ascending (markers are appended in offset order).
    aborted: VecDeque<AbortedTransaction>,
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
        // A marker is no batch of the producer's sequence: `end_transaction` takes it.
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let batch = ProducedBatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header.base_sequence, header.last_offset_delta),
            base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
            timestamp_ms: now_ms,
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch, now_ms));
        entry.push(header.producer_epoch, batch);
        if header.is_transactional() && entry.transaction_first_offset.is_none() {
            entry.transaction_first_offset = Some(base_offset);
            self.open_transactions.insert((base_offset, header.producer_id));
        }
    }

    /// Takes a control batch `marker` appended at its header's base offset: a transaction marker with `outcome`
    /// ends its producer's open transaction here (an abort is remembered for `read_committed` readers) and moves the
    /// producer to the marker's epoch when that is newer. Another control record type (`outcome` `None`) changes
    /// nothing.
    pub fn end_transaction(&mut self, marker: &BatchHeader, outcome: Option<TransactionOutcome>, now_ms: i64) {
        let (Some(outcome), producer_id) = (outcome, marker.producer_id) else { return };
        if producer_id < 0 {
            return;
        }
        let entry =
            self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::new(marker.producer_epoch, now_ms));
        if marker.producer_epoch > entry.epoch {
            entry.enter_epoch(marker.producer_epoch);
        }
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        let Some(first_offset) = entry.transaction_first_offset.take() else { return };
        self.open_transactions.remove(&(first_offset, producer_id));
        if outcome == TransactionOutcome::Abort {
            self.aborted.push_back(AbortedTransaction { producer_id, first_offset, last_offset: marker.base_offset });
        }
    }

    /// The first offset of the oldest transaction still open here: `read_committed` readers stop below it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_transactions.first().map(|(offset, _)| *offset)
    }

    /// The offset of the newest abort marker, if any transaction here was aborted.
    pub fn last_aborted_offset(&self) -> Option<i64> {
        self.aborted.back().map(|aborted| aborted.last_offset)
    }

    /// The aborted transactions a read of offsets `from..to` overlaps, oldest marker first: those whose marker is
    /// at or past `from` and which start below `to` (Kafka's `TransactionIndex.collectAbortedTxns`).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTransaction> {
        let start = self.aborted.partition_point(|aborted| aborted.last_offset < from);
        let mut found = Vec::new();
        for aborted in self.aborted.range(start..) {
            if aborted.first_offset < to {
                found.push(*aborted);
            }
            if aborted.last_offset >= to {
                break;
            }
        }
        found
    }

    /// Every aborted transaction kept, oldest marker first (a snapshot being written).
    pub(crate) fn aborted(&self) -> impl ExactSizeIterator<Item = &AbortedTransaction> {
        self.aborted.iter()
    }

    /// Puts back an aborted transaction (a snapshot being loaded), in marker order.
    pub(crate) fn push_aborted(&mut self, aborted: AbortedTransaction) {
        self.aborted.push_back(aborted);
    }

    /// Forgets the aborted transactions whose marker is below `log_start`: no reader can reach them.
    pub fn forget_aborted_below(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|aborted| aborted.last_offset < log_start) {
            self.aborted.pop_front();
        }
    }

    /// Remembers a batch read back from the log (recovery) or appended by replication, without checking it: it
    /// was accepted once. The seam a replica's append must go through, so that a follower that becomes leader
    /// answers retries as the old leader would have.
    pub fn observe(&mut self, header: &BatchHeader, now_ms: i64) {
        self.record(header, header.base_offset, now_ms);
    }

    /// Puts back a producer's whole state (a snapshot being loaded).
    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        if let Some(first_offset) = entry.transaction_first_offset {
            self.open_transactions.insert((first_offset, producer_id));
        }
        if let Some(old) = self.producers.insert(producer_id, entry) {
            if let Some(first_offset) = old.transaction_first_offset {
                self.open_transactions.remove(&(first_offset, producer_id));
            }
        }
    }

    /// Forgets every producer id whose newest batch is `expiration_ms` or more older than `now_ms`, except one
    /// whose transaction is open here (its coordinator ends it, by a timeout at the latest); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: u64) -> usize {
        let before = self.producers.len();
        let horizon = now_ms.saturating_sub(i64::try_from(expiration_ms).unwrap_or(i64::MAX));
        self.producers.retain(|_, entry| entry.last_seen_ms > horizon || entry.transaction_first_offset.is_some());
        before - self.producers.len()
    }
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
