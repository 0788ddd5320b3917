//! One transactional id as the coordinator keeps it, and the checks each request makes against it (Kafka's
//! `TransactionMetadata` and the state checks of its `TransactionCoordinator`).
//!
//! States, as Kafka names them: `Empty` (initialised, no transaction yet), `Ongoing` (partitions or a group
//! added), `PrepareCommit` / `PrepareAbort` (the outcome decided and stored, markers being written), and
//! `CompleteCommit` / `CompleteAbort` (every marker written). A prepared outcome is stored before the first marker
//! is written, so a crash in between finishes the same outcome at the next start.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::TransactionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TransactionState {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn is_prepared(self) -> bool {
        matches!(self, TransactionState::PrepareCommit | TransactionState::PrepareAbort)
    }
}

/// An offset a transaction commits for a group: stored when the transaction commits, dropped when it aborts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// -1 until the first InitProducerId completes.
    pub producer_epoch: i16,
    pub timeout_ms: u64,
    pub state: TransactionState,
    /// The partitions the open (or prepared) transaction wrote to, by topic and index.
    pub partitions: BTreeSet<(String, u32)>,
    /// The groups whose offsets it commits (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    pub pending_offsets: Vec<PendingOffset>,
    /// The broker's clock when the transaction became `Ongoing`: its timeout counts from here.
    pub started_ms: i64,
    /// The broker's clock at the last change: an idle id expires from here.
    pub updated_ms: i64,
}

impl TransactionMetadata {
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: u64, now_ms: i64) -> Self {
        TransactionMetadata {
            transactional_id,
            producer_id,
            producer_epoch: -1,
            timeout_ms,
            state: TransactionState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            started_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// The epoch after the current one, or `None` when the epoch is exhausted and the id needs a new producer id
    /// (Kafka's rule: the last epoch, `i16::MAX`, is never handed out, so a fenced producer cannot wrap around).
    pub fn next_epoch(&self) -> Option<i16> {
        (self.producer_epoch < i16::MAX - 1).then(|| self.producer_epoch + 1)
    }

    /// The request's producer id and epoch are this id's current ones.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TransactionError> {
        if producer_id != self.producer_id {
            return Err(TransactionError::ProducerIdMismatch {
                transactional_id: self.transactional_id.clone(),
                producer_id,
                current: self.producer_id,
            });
        }
        if producer_epoch != self.producer_epoch {
            return Err(TransactionError::Fenced {
                transactional_id: self.transactional_id.clone(),
                producer_id,
                epoch: producer_epoch,
                current: self.producer_epoch,
            });
        }
        Ok(())
    }

    /// The producer may add partitions or a group now: not while an outcome is being written.
    pub fn check_can_add(&self) -> Result<(), TransactionError> {
        if self.state.is_prepared() {
            return Err(TransactionError::Concurrent { transactional_id: self.transactional_id.clone() });
        }
        Ok(())
    }

    pub fn invalid_state(&self, what: &'static str) -> TransactionError {
        TransactionError::InvalidState {
            transactional_id: self.transactional_id.clone(),
            state: self.state.as_str(),
            what,
        }
    }

    /// Moves to `Ongoing` (from any state that allows adding), starting the timeout when the transaction begins.
    pub fn begin_if_new(&mut self, now_ms: i64) {
        if self.state != TransactionState::Ongoing {
            self.state = TransactionState::Ongoing;
            self.started_ms = now_ms;
        }
        self.updated_ms = now_ms;
    }

    /// Whether the open transaction ran past its timeout at `now_ms`.
    pub fn has_timed_out(&self, now_ms: i64) -> bool {
        self.state == TransactionState::Ongoing
            && now_ms.saturating_sub(self.started_ms) > i64::try_from(self.timeout_ms).unwrap_or(i64::MAX)
    }

    /// After every marker is written: the outcome complete, the transaction's partitions and offsets forgotten.
    pub fn complete(&mut self, now_ms: i64) {
        self.state = match self.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            _ => TransactionState::CompleteAbort,
        };
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
        self.updated_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TransactionMetadata {
        let mut meta = TransactionMetadata::new("t".into(), 7, 60_000, 0);
        meta.producer_epoch = 3;
        meta.partitions.insert(("orders".into(), 0));
        meta.begin_if_new(1_000);
        meta
    }

    #[test]
    fn a_request_with_another_producer_id_or_epoch_is_refused_and_says_which() {
        let meta = ongoing();
        assert!(meta.check_producer(7, 3).is_ok());
        assert!(matches!(meta.check_producer(8, 3), Err(TransactionError::ProducerIdMismatch { current: 7, .. })));
        let fenced = meta.check_producer(7, 2).expect_err("an older epoch");
        assert!(matches!(fenced, TransactionError::Fenced { current: 3, .. }));
        assert!(fenced.to_string().contains("fenced"), "{fenced}");
    }

    #[test]
    fn the_timeout_counts_from_the_transactions_start_and_only_while_it_is_open() {
        let mut meta = ongoing();
        meta.begin_if_new(50_000);
        assert!(!meta.has_timed_out(61_000), "a later add does not restart the clock, nor end it");
        assert!(meta.has_timed_out(61_001));
        meta.state = TransactionState::PrepareAbort;
        assert!(!meta.has_timed_out(1_000_000), "a prepared outcome is finished, not timed out");
    }

    #[test]
    fn completing_forgets_the_transactions_partitions_and_offsets() {
        let mut meta = ongoing();
        meta.groups.insert("g".into());
        meta.pending_offsets.push(PendingOffset {
            group: "g".into(),
            topic: "orders".into(),
            partition: 0,
            offset: 5,
            metadata: String::new(),
        });
        meta.state = TransactionState::PrepareCommit;
        assert!(matches!(meta.check_can_add(), Err(TransactionError::Concurrent { .. })));
        meta.complete(2_000);
        assert_eq!(meta.state, TransactionState::CompleteCommit);
        assert!(meta.partitions.is_empty() && meta.groups.is_empty() && meta.pending_offsets.is_empty());
        assert!(meta.check_can_add().is_ok());
    }

    #[test]
    fn the_last_epoch_is_never_handed_out() {
        let mut meta = ongoing();
        meta.producer_epoch = i16::MAX - 2;
        assert_eq!(meta.next_epoch(), Some(i16::MAX - 1));
        meta.producer_epoch = i16::MAX - 1;
        assert_eq!(meta.next_epoch(), None);
    }
}
