//! Why the transaction coordinator refuses a request, and the Kafka code each refusal is answered with.

use super::{MAX_TRANSACTIONAL_ID_BYTES, MAX_TRANSACTION_TIMEOUT_MS};

/// Why the coordinator refused a request; the Kafka port answers each with Kafka's code ([`Self::kafka_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error(
        "transactional id {0:?} is not allowed: it must be 1 to {MAX_TRANSACTIONAL_ID_BYTES} bytes without control \
         characters"
    )]
    InvalidTransactionalId(String),
    #[error(
        "transaction timeout {timeout_ms} ms is not allowed: it must be from 1 to {MAX_TRANSACTION_TIMEOUT_MS} ms \
         (Kafka's transaction.max.timeout.ms)"
    )]
    InvalidTimeout { timeout_ms: i64 },
    #[error(
        "transactional id {transactional_id:?} has producer id {current}, not {producer_id}: call InitProducerId \
         again"
    )]
    ProducerIdMismatch { transactional_id: String, producer_id: i64, current: i64 },
    #[error(
        "producer id {producer_id} has no transactional id on this broker: a transactional batch needs the producer \
         id InitProducerId gave a transactional id"
    )]
    UnknownTransactionalProducer { producer_id: i64 },
    #[error("transactional id {transactional_id:?} is not initialised: call InitProducerId first")]
    UnknownTransactionalId { transactional_id: String },
    #[error(
        "producer {producer_id} of transactional id {transactional_id:?} has epoch {epoch}, not the current \
         {current}: a newer instance of it fenced this one, or its transaction timed out"
    )]
    Fenced { transactional_id: String, producer_id: i64, epoch: i16, current: i16 },
    #[error("transactional id {transactional_id:?} is in state {state}: {what} is not allowed there")]
    InvalidState { transactional_id: String, state: &'static str, what: &'static str },
    #[error(
        "partition {partition} of topic {topic:?} is not in the open transaction of transactional id \
         {transactional_id:?}: add it with AddPartitionsToTxn before producing to it"
    )]
    PartitionNotInTransaction { transactional_id: String, topic: String, partition: u32 },
    #[error(
        "group {group:?} is not in the open transaction of transactional id {transactional_id:?}: add it with \
         AddOffsetsToTxn before committing its offsets"
    )]
    GroupNotInTransaction { transactional_id: String, group: String },
    #[error("transactional id {transactional_id:?} is finishing its last transaction: retry shortly")]
    Concurrent { transactional_id: String },
    #[error("the broker keeps at most {limit} {what}: {hint}")]
    TooMany { limit: usize, what: &'static str, hint: &'static str },
    #[error(
        "node {node_id} is not the transaction coordinator{}: look the coordinator up again (FindCoordinator) and \
         retry there",
        coordinator.map(|id| format!(" (node {id} is)")).unwrap_or_default()
    )]
    NotCoordinator { node_id: u64, coordinator: Option<u64> },
    /// A refusal another node answered a forwarded request with, and the codes it would have answered.
    #[error("{message}")]
    Remote { message: String, fenced_known_code: i16, code: i16 },
}

impl TransactionError {
    /// Kafka's code for this refusal. `is_fenced_known`: the request's version knows PRODUCER_FENCED (KIP-588);
    /// older ones get INVALID_PRODUCER_EPOCH, which their clients treat as fenced too.
    pub fn kafka_code(&self, is_fenced_known: bool) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TransactionError::InvalidTransactionalId(_) => E::InvalidRequest.code(),
            TransactionError::InvalidTimeout { .. } => E::InvalidTransactionTimeout.code(),
            TransactionError::ProducerIdMismatch { .. }
            | TransactionError::UnknownTransactionalProducer { .. }
            | TransactionError::UnknownTransactionalId { .. } => E::InvalidProducerIdMapping.code(),
            TransactionError::Fenced { .. } if is_fenced_known => E::ProducerFenced.code(),
            TransactionError::Fenced { .. } => E::InvalidProducerEpoch.code(),
            TransactionError::InvalidState { .. }
            | TransactionError::PartitionNotInTransaction { .. }
            | TransactionError::GroupNotInTransaction { .. } => E::InvalidTxnState.code(),
            TransactionError::Concurrent { .. } => E::ConcurrentTransactions.code(),
            TransactionError::TooMany { .. } => E::PolicyViolation.code(),
            TransactionError::NotCoordinator { .. } => E::NotCoordinator.code(),
            TransactionError::Remote { fenced_known_code, .. } if is_fenced_known => *fenced_known_code,
            TransactionError::Remote { code, .. } => *code,
        }
    }
}
