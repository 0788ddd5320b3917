//! What can go wrong serving a request, and the one place it becomes a gRPC status.
//!
//! Handlers return [`BrokerError`]; `From<BrokerError> for Status` picks the code a client can act on:
//! NOT_FOUND and ALREADY_EXISTS for names, INVALID_ARGUMENT for anything the request got wrong (retrying it
//! cannot help), OUT_OF_RANGE for offsets (with both bounds), RESOURCE_EXHAUSTED for limits (with the limit),
//! UNAVAILABLE for what may pass (disk full, shutting down), INTERNAL for the rest of I/O, with the cause.
//! Beside the code, a [`Reason`] in the status's metadata says which of these it is (a full disk, a
//! shutdown, a size or a count limit), so that clients decide retries and wording without reading messages.

use std::path::PathBuf;

use rill_protocol::reason::Reason;
use rill_protocol::BatchError;
use rill_storage::{ProducerError, StorageError};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },
    #[error(
        "unknown partition {partition} of topic {topic:?}: it has partitions 0 to {last}",
        last = partition_count.saturating_sub(1)
    )]
    UnknownPartition { topic: String, partition: u32, partition_count: u32 },
    #[error("topic {topic:?} already exists")]
    TopicExists { topic: String },
    #[error("invalid topic name {name:?}: names starting with \"__\" are reserved for the broker's internal topics")]
    ReservedTopicName { name: String },
    #[error("invalid partition count {requested}: {reason}")]
    InvalidPartitionCount { requested: u32, reason: String },
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// A topic setting refused at create or alter; `value` is as the request gave it (empty for a delete).
    #[error("invalid topic config {key}{}: {reason}", shown_value(value))]
    InvalidTopicConfig { key: String, value: String, reason: String },
    /// A group setting refused at alter (`share_groups/config.rs` says why).
    #[error("invalid config of group {group:?}: {reason}")]
    InvalidGroupConfig { group: String, reason: String },
    #[error("too many topics: the broker holds at most {limit} (max_topics)")]
    TooManyTopics { limit: u32 },
    #[error(
        "{what} would need {needed_files} more open files; the broker may open {max_open_files} and \
         {committed_files} are committed to its partitions, connections and caches (raise the open-file limit, \
         ulimit -n, or delete topics)"
    )]
    TooManyOpenFiles { what: String, needed_files: u64, max_open_files: u64, committed_files: u64 },
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, size: u64, limit: u64 },
    #[error("unknown group {group:?}: it has no members and no committed offsets")]
    UnknownGroup { group: String },
    #[error(
        "member {member:?} is not in group {group:?}: it left, disconnected or its session expired, and its \
         partitions may belong to others now; drop them and rejoin"
    )]
    UnknownMember { group: String, member: String },
    #[error(
        "partition {partition} of topic {topic:?} is not owned by member {member:?} of group {group:?}: it was \
         never assigned to it or its revocation was acknowledged; drop it"
    )]
    NotOwner { group: String, member: String, topic: String, partition: u32 },
    #[error(
        "stale generation {generation} from member {member:?} of group {group:?}: partition {partition} of topic \
         {topic:?} was assigned to it at generation {assigned_at}; apply the latest assignment and commit with its \
         generation"
    )]
    StaleGeneration { group: String, member: String, generation: i32, assigned_at: i32, topic: String, partition: u32 },
    #[error("group {group:?} has {members} active member(s): {action} needs a group without members (stop its consumers first)")]
    GroupNotEmpty { group: String, members: usize, action: &'static str },
    #[error(
        "group {group:?} has {members} {kind} member(s): a {other} consumer cannot join it (a group id names one \
         kind of group: use another group id)"
    )]
    GroupKindMismatch { group: String, members: usize, kind: &'static str, other: &'static str },
    #[error("too many consumer groups: the broker holds at most {limit} (max_groups)")]
    TooManyGroups { limit: u32 },
    #[error("group {group:?} is full: it may have at most {limit} members (max_members_per_group)")]
    TooManyMembers { group: String, limit: u32 },
    #[error("member session ended: {reason}")]
    SessionEnded { reason: String },
    #[error("partition {partition} of topic {topic:?} was deleted or is closing")]
    PartitionClosed { topic: String, partition: u32 },
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata { path: PathBuf, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("node {node_id} does not lead partition {partition} of topic {topic:?}{}", leader_hint(*leader, leader_address))]
    NotLeader { topic: String, partition: u32, node_id: u64, leader: Option<u64>, leader_address: Option<String> },
    /// KIP-320: a read naming a leader epoch older than this node's for the partition (the client's metadata is
    /// stale).
    #[error("leader epoch {asked} of partition {partition} of topic {topic:?} is fenced: the partition is at epoch {current}; refresh the metadata")]
    FencedLeaderEpoch { topic: String, partition: u32, asked: i64, current: i64 },
    /// KIP-320: a read naming a leader epoch newer than this node knows (this node's metadata lags).
    #[error("leader epoch {asked} of partition {partition} of topic {topic:?} is unknown here: this node knows epoch {current}; retry after a metadata refresh")]
    UnknownLeaderEpoch { topic: String, partition: u32, asked: i64, current: i64 },
    /// KIP-207: a new leader whose high watermark has not reached the start of its epoch (`offset_lookup.rs`).
    #[error("partition {partition} of topic {topic:?} has a new leader whose high watermark ({high_watermark}) has not yet reached the start of its epoch ({epoch_start}): its latest offset is not available yet; retry shortly")]
    OffsetNotAvailable { topic: String, partition: u32, high_watermark: i64, epoch_start: i64 },
    /// On a cluster: this node is not the group's coordinator (it does not lead, or has not loaded, the
    /// group's `__consumer_offsets` partition). `coordinator` is `None` while that partition has no leader.
    #[error("node {node_id} is not the coordinator of group {group:?} (offsets partition {partition}){}", coordinator_hint(*coordinator, coordinator_address, without_coordinator_because))]
    NotCoordinator {
        group: String,
        partition: u32,
        node_id: u64,
        coordinator: Option<u64>,
        coordinator_address: Option<String>,
        /// Why there is no coordinator at all, when that is known (the offsets topic cannot be made yet).
        without_coordinator_because: Option<String>,
    },
    /// On a cluster: a share partition's state written by a node whose window is stale (a newer leader of the
    /// partition, or a reset of the group, wrote since it loaded the state: `offsets/share_states.rs`).
    #[error(
        "the state of share group {group:?} in partition {partition} of topic {topic:?} was written at fencing \
         token {stored} since this node loaded it at token {sent} (a newer leader of the partition, or a reset of \
         the group): this node's records in flight there are stale; fetch again from the partition's leader"
    )]
    ShareStateFenced { group: String, topic: String, partition: u32, sent: u32, stored: u32 },
    #[error(
        "partition {partition} of topic {topic:?} has {in_sync} in-sync replica(s), fewer than its \
         min_insync_replicas of {min_insync_replicas}: retry once replicas catch up"
    )]
    NotEnoughReplicas { topic: String, partition: u32, in_sync: u32, min_insync_replicas: u32 },
    #[error("the cluster's controller is unavailable: {reason}")]
    ControllerUnavailable { reason: String },
    /// The data dir's free space is below the reserve (`disk_reserve.rs`): appends wait for room.
    #[error(
        "the file system of {dir} has {free_bytes} bytes free, below this node's min_free_disk_bytes \
         ({min_free_bytes}), kept for its metadata: appends are refused until retention, deleted records or \
         topics, or an operator free space"
    )]
    BelowDiskReserve { dir: String, free_bytes: u64, min_free_bytes: u64 },
    /// A cluster coordinator's offset commits may use the first half of the reserve (`disk_reserve.rs`).
    #[error(
        "the file system of {dir} has {free_bytes} bytes free, below half this node's min_free_disk_bytes \
         ({min_free_bytes}), the half kept for its controller log and checkpoints: offset commits are refused here, \
         and this node hands the group's offsets partition to an in-sync replica, where they go on"
    )]
    CommitsBelowDiskReserve { dir: String, free_bytes: u64, min_free_bytes: u64 },
    #[error("node {node_id} is not a member of the cluster (members: {members})")]
    UnknownNode { node_id: u64, members: String },
    #[error("{reason}")]
    MembershipRefused { reason: String },
    /// A DeleteRecords done on the leader whose in-sync replicas did not all move their log start in time.
    #[error(
        "records of partition {partition} of topic {topic:?} were deleted below {offset} on its leader, but not \
         yet on every in-sync replica within {timeout_ms} ms: {lagging} lag; they follow on their next fetches, \
         and the same request again waits for them anew"
    )]
    DeleteRecordsTimedOut { topic: String, partition: u32, offset: i64, timeout_ms: u64, lagging: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Denied(#[from] crate::auth::Denied),
    #[error(transparent)]
    Transaction(#[from] crate::transactions::TransactionError),
}

impl BrokerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BrokerError {
        let path = path.into();
        move |source| BrokerError::Io { path, source }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> BrokerError {
        BrokerError::InvalidArgument { field, reason: reason.into() }
    }

    /// A blocking task that panicked or was cancelled: a bug or a shutdown, never the client's fault.
    pub(crate) fn join(err: tokio::task::JoinError) -> BrokerError {
        BrokerError::Internal(format!("storage task failed: {err}"))
    }

    /// The gRPC code of the status this error becomes: its reason's (`rill_protocol::reason`).
    pub fn code(&self) -> Code {
        self.reason().grpc_code()
    }

    /// What kind of refusal this is: the word a client decides on, with the gRPC code and the Kafka error code
    /// that go with it (the table is `rill_protocol::reason::Reason`).
    pub fn reason(&self) -> Reason {
        match self {
            BrokerError::UnknownTopic { .. } => Reason::UnknownTopic,
            BrokerError::UnknownPartition { .. } => Reason::UnknownPartition,
            BrokerError::TopicExists { .. } => Reason::TopicExists,
            BrokerError::ReservedTopicName { .. } => Reason::InvalidTopicName,
            BrokerError::InvalidPartitionCount { .. } | BrokerError::InvalidArgument { .. } => Reason::InvalidArgument,
            BrokerError::InvalidTopicConfig { .. } | BrokerError::InvalidGroupConfig { .. } => Reason::InvalidConfig,
            BrokerError::TooManyTopics { .. }
            | BrokerError::TooManyOpenFiles { .. }
            | BrokerError::TooManyGroups { .. }
            | BrokerError::TooManyMembers { .. } => Reason::LimitReached,
            BrokerError::TooLarge { .. } => Reason::TooLarge,
            BrokerError::UnknownGroup { .. } => Reason::UnknownGroup,
            BrokerError::UnknownMember { .. } | BrokerError::SessionEnded { .. } => Reason::UnknownMember,
            BrokerError::NotOwner { .. } => Reason::NotOwner,
            BrokerError::StaleGeneration { .. } => Reason::StaleGeneration,
            BrokerError::GroupNotEmpty { .. } => Reason::GroupNotEmpty,
            BrokerError::GroupKindMismatch { .. } => Reason::GroupKindMismatch,
            BrokerError::PartitionClosed { .. } | BrokerError::ShuttingDown => Reason::ShuttingDown,
            BrokerError::NotLeader { .. } | BrokerError::ShareStateFenced { .. } => Reason::NotLeader,
            BrokerError::FencedLeaderEpoch { .. } => Reason::FencedLeaderEpoch,
            BrokerError::UnknownLeaderEpoch { .. } => Reason::UnknownLeaderEpoch,
            BrokerError::OffsetNotAvailable { .. } => Reason::OffsetNotAvailable,
            BrokerError::NotCoordinator { .. } => Reason::NotCoordinator,
            BrokerError::NotEnoughReplicas { .. } => Reason::NotEnoughReplicas,
            BrokerError::ControllerUnavailable { .. } => Reason::ControllerUnavailable,
            BrokerError::BelowDiskReserve { .. } | BrokerError::CommitsBelowDiskReserve { .. } => Reason::DiskFull,
            BrokerError::UnknownNode { .. } => Reason::UnknownNode,
            BrokerError::MembershipRefused { .. } => Reason::MembershipRefused,
            BrokerError::Io { source, .. } => io_reason(source),
            BrokerError::CorruptMetadata { .. } | BrokerError::Internal(_) => Reason::Internal,
            BrokerError::DeleteRecordsTimedOut { .. } => Reason::TimedOut,
            BrokerError::Storage(err) => storage_reason(err),
            BrokerError::Denied(_) => Reason::PermissionDenied,
            BrokerError::Transaction(err) => transaction_reason(err),
        }
    }
}

fn transaction_reason(err: &crate::transactions::TransactionError) -> Reason {
    use crate::transactions::TransactionError as E;
    match err {
        E::InvalidTransactionalId(_) | E::InvalidTimeout { .. } => Reason::InvalidArgument,
        E::ProducerIdMismatch { .. } | E::UnknownTransactionalProducer { .. } | E::UnknownTransactionalId { .. } => {
            Reason::InvalidProducerIdMapping
        }
        E::Fenced { .. } => Reason::InvalidProducerEpoch,
        E::InvalidState { .. } | E::PartitionNotInTransaction { .. } | E::GroupNotInTransaction { .. } => {
            Reason::InvalidTxnState
        }
        E::Concurrent { .. } => Reason::ConcurrentTransactions,
        E::TooMany { .. } => Reason::LimitReached,
        E::NotCoordinator { .. } => Reason::NotCoordinator,
        E::Remote { .. } => Reason::ConcurrentTransactions,
    }
}

/// The partition, and its leader's id and address, beside a not-leader refusal, so a client can go there without
/// a metadata call.
fn insert_leader(status: &mut Status, partition: u32, leader: Option<u64>, address: Option<&str>) {
    use rill_protocol::reason::{LEADER_ADDRESS_KEY, LEADER_ID_KEY, PARTITION_KEY};
    status.metadata_mut().insert(PARTITION_KEY, partition.into());
    if let Some(Ok(value)) = leader.map(|id| id.to_string().parse()) {
        status.metadata_mut().insert(LEADER_ID_KEY, value);
    }
    if let Some(Ok(value)) = address.map(|a| a.parse()) {
        status.metadata_mut().insert(LEADER_ADDRESS_KEY, value);
    }
}

/// The coordinator's id and address beside a not-coordinator refusal, as for a not-leader one.
fn insert_coordinator(status: &mut Status, coordinator: Option<u64>, address: Option<&str>) {
    use rill_protocol::reason::{COORDINATOR_ADDRESS_KEY, COORDINATOR_ID_KEY};
    if let Some(Ok(value)) = coordinator.map(|id| id.to_string().parse()) {
        status.metadata_mut().insert(COORDINATOR_ID_KEY, value);
    }
    if let Some(Ok(value)) = address.map(|a| a.parse()) {
        status.metadata_mut().insert(COORDINATOR_ADDRESS_KEY, value);
    }
}

fn coordinator_hint(coordinator: Option<u64>, address: &Option<String>, because: &Option<String>) -> String {
    match (coordinator, address, because) {
        (Some(id), Some(address), _) => format!(": node {id} at {address} is"),
        (Some(id), None, _) => format!(": node {id} is"),
        (None, _, Some(because)) => format!(": it has no coordinator, because {because}; retry"),
        _ => ": it has no coordinator until the partition has a leader; retry".to_owned(),
    }
}

fn shown_value(value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        format!("={value}")
    }
}

fn leader_hint(leader: Option<u64>, address: &Option<String>) -> String {
    match (leader, address) {
        (Some(id), Some(address)) => format!("; node {id} at {address} does"),
        (Some(id), None) => format!("; node {id} does"),
        // An address without another node's id is this node's own: the metadata names it the leader, but its log
        // has not started the new epoch yet (`check_placed_leader`).
        (None, Some(_)) => "; it is taking the partition over as its new leader and is not ready yet; retry".to_owned(),
        (None, None) => "; it has no leader right now".to_owned(),
    }
}

fn storage_reason(err: &StorageError) -> Reason {
    match err {
        StorageError::InvalidTopicName { .. } => Reason::InvalidTopicName,
        StorageError::InvalidBatch(batch) => batch_reason(batch),
        StorageError::InvalidConfig { .. } => Reason::InvalidArgument,
        StorageError::BatchTooLarge { .. } => Reason::TooLarge,
        StorageError::OffsetOutOfRange { .. } | StorageError::DeleteBeyondHighWatermark { .. } => {
            Reason::OffsetOutOfRange
        }
        StorageError::Io { source, .. } => io_reason(source),
        StorageError::Corrupt { .. } | StorageError::FsyncFailed { .. } => Reason::StorageFailure,
        StorageError::Closed { .. } => Reason::ShuttingDown,
        StorageError::Producer(ProducerError::OutOfOrderSequence { .. }) => Reason::OutOfOrderSequence,
        StorageError::Producer(ProducerError::InvalidEpoch { .. }) => Reason::InvalidProducerEpoch,
        StorageError::Producer(ProducerError::TooManyProducers { .. }) => Reason::LimitReached,
    }
}

/// Kafka's split: damage to a batch's framing or checksum is a corrupt batch (CORRUPT_MESSAGE), a well-formed
/// batch that breaks a produce rule an invalid record (INVALID_RECORD).
fn batch_reason(err: &BatchError) -> Reason {
    match err {
        BatchError::Truncated { .. }
        | BatchError::BadLength { .. }
        | BatchError::LengthMismatch { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::UnknownCompression(_)
        | BatchError::Decompress { .. } => Reason::CorruptBatch,
        BatchError::UnsupportedMagic(_) => Reason::UnsupportedFormat,
        BatchError::InflatesPastLimit { .. } => Reason::TooLarge,
        BatchError::TimestampTooOld { .. } | BatchError::TimestampTooNew { .. } => Reason::InvalidTimestamp,
        _ => Reason::InvalidRecord,
    }
}

/// A full disk (ENOSPC, EDQUOT) may clear: UNAVAILABLE tells the client to retry later. Running out of
/// descriptors (EMFILE, ENFILE) is a limit, RESOURCE_EXHAUSTED. Other I/O failures are INTERNAL; all carry the
/// cause in the message.
fn io_reason(err: &std::io::Error) -> Reason {
    if is_disk_full(err) {
        Reason::DiskFull
    } else if is_out_of_descriptors(err) {
        // Out of descriptors despite the budget (another process took the system's, or a limit lowered).
        Reason::LimitReached
    } else {
        Reason::StorageFailure
    }
}

fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

fn is_disk_full(err: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(err.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
}

impl From<BrokerError> for Status {
    fn from(err: BrokerError) -> Status {
        match err.reason() {
            // A leadership that moved: the client follows it, and the move itself is logged where it happens
            // (`replication/reconcile.rs`). At warn, a failover with many clients would log a line per request.
            Reason::NotLeader
            | Reason::NotCoordinator
            | Reason::ShuttingDown
            | Reason::UnknownLeaderEpoch
            | Reason::OffsetNotAvailable => tracing::debug!(error = %err, "request refused; the client retries"),
            _ if matches!(err.code(), Code::Internal | Code::Unavailable) => {
                tracing::warn!(error = %err, "request failed")
            }
            _ => tracing::debug!(error = %err, "request rejected"),
        }
        let mut status = err.reason().status(err.to_string());
        if let BrokerError::NotLeader { partition, leader, leader_address, .. } = &err {
            insert_leader(&mut status, *partition, *leader, leader_address.as_deref());
        }
        if let BrokerError::NotCoordinator { coordinator, coordinator_address, .. } = &err {
            insert_coordinator(&mut status, *coordinator, coordinator_address.as_deref());
        }
        status
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_names_both_bounds() {
        let err =
            BrokerError::from(StorageError::OffsetOutOfRange { offset: 99, log_start_offset: 3, log_end_offset: 10 });
        let status = Status::from(err);
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(status.message().contains("99") && status.message().contains('3') && status.message().contains("10"));
    }

    #[test]
    fn disk_full_is_unavailable_and_other_io_is_internal() {
        let full = StorageError::Io { path: "/d".into(), source: std::io::Error::from_raw_os_error(28) };
        assert_eq!(BrokerError::from(full).code(), Code::Unavailable);
        let denied = BrokerError::Io { path: "/d".into(), source: std::io::Error::from_raw_os_error(13) };
        assert_eq!(denied.code(), Code::Internal);
    }

    #[test]
    fn not_leader_says_whether_a_leader_exists_elsewhere_or_this_node_is_taking_over() {
        let not_leader = |leader, leader_address: Option<&str>| {
            let leader_address = leader_address.map(str::to_owned);
            BrokerError::NotLeader { topic: "t".into(), partition: 0, node_id: 2, leader, leader_address }.to_string()
        };
        assert!(not_leader(Some(3), Some("10.0.0.3:9092")).ends_with("; node 3 at 10.0.0.3:9092 does"));
        assert!(not_leader(None, None).ends_with("; it has no leader right now"));
        let taking_over = not_leader(None, Some("10.0.0.2:9092"));
        assert!(taking_over.contains("taking the partition over as its new leader"), "{taking_over}");
    }

    #[test]
    fn a_failed_fsync_is_a_storage_failure_that_says_what_to_do() {
        let failed = StorageError::FsyncFailed { path: "/d/00000000000000000000.log".into(), reason: "EIO".into() };
        let status = Status::from(BrokerError::from(failed));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(reason_of(&status), Some("storage-failure"));
        assert!(status.message().contains("/d/00000000000000000000.log"), "{}", status.message());
        assert!(status.message().contains("until it is reopened (a broker restart)"), "{}", status.message());
    }

    fn reason_of(status: &Status) -> Option<&'static str> {
        rill_protocol::reason::reason_of(status).map(Reason::as_str)
    }

    #[test]
    fn statuses_carry_the_reason_a_client_acts_on() {
        let full = StorageError::Io { path: "/d".into(), source: std::io::Error::from_raw_os_error(28) };
        assert_eq!(reason_of(&Status::from(BrokerError::from(full))), Some("disk-full"));
        let quota = BrokerError::Io { path: "/d".into(), source: std::io::Error::from_raw_os_error(122) };
        assert_eq!(reason_of(&Status::from(quota)), Some("disk-full"));
        assert_eq!(reason_of(&Status::from(BrokerError::ShuttingDown)), Some("shutting-down"));
        let large = BrokerError::TooLarge { what: "record batch", size: 9, limit: 8 };
        assert_eq!(reason_of(&Status::from(large)), Some("too-large"));
        assert_eq!(reason_of(&Status::from(BrokerError::TooManyTopics { limit: 1 })), Some("limit-reached"));
        let denied = BrokerError::Io { path: "/d".into(), source: std::io::Error::from_raw_os_error(13) };
        assert_eq!(reason_of(&Status::from(denied)), Some("storage-failure"));
        let gap = ProducerError::OutOfOrderSequence { producer_id: 1, epoch: 0, sequence: 5, expected: 2 };
        let status = Status::from(BrokerError::from(StorageError::from(gap)));
        assert_eq!((status.code(), reason_of(&status)), (Code::FailedPrecondition, Some("out-of-order-sequence")));
        let fenced = ProducerError::InvalidEpoch { producer_id: 1, epoch: 0, current: 1 };
        let status = Status::from(BrokerError::from(StorageError::from(fenced)));
        assert_eq!((status.code(), reason_of(&status)), (Code::FailedPrecondition, Some("invalid-producer-epoch")));
    }

    #[test]
    fn unknown_partition_names_the_valid_range() {
        let err = BrokerError::UnknownPartition { topic: "t".into(), partition: 7, partition_count: 3 };
        assert_eq!(err.to_string(), "unknown partition 7 of topic \"t\": it has partitions 0 to 2");
    }
}
