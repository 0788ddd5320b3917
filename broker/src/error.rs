//! What can go wrong serving a request, and the one place it becomes a gRPC status.
//!
//! Handlers return [`BrokerError`]; `From<BrokerError> for Status` picks the code a client can act on:
//! NOT_FOUND and ALREADY_EXISTS for names, INVALID_ARGUMENT for anything the request got wrong (retrying it
//! cannot help), OUT_OF_RANGE for offsets (with both bounds), RESOURCE_EXHAUSTED for limits (with the limit),
//! UNAVAILABLE for what may pass (disk full, shutting down), INTERNAL for the rest of I/O, with the cause.
//! Beside the code, a [`Reason`] in the status's metadata says which of these it is (a full disk, a
//! shutdown, a size or a count limit), so that clients decide retries and wording without reading messages.

use std::path::PathBuf;

use rill_protocol::reason::{Reason, REASON_KEY};
use rill_storage::StorageError;
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
    #[error(
        "partition {partition} of topic {topic:?} has {in_sync} in-sync replica(s), fewer than its \
         min_insync_replicas of {min_insync_replicas}: retry once replicas catch up"
    )]
    NotEnoughReplicas { topic: String, partition: u32, in_sync: u32, min_insync_replicas: u32 },
    #[error("the cluster's controller is unavailable: {reason}")]
    ControllerUnavailable { reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
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

    pub fn code(&self) -> Code {
        match self {
            BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => Code::NotFound,
            BrokerError::TopicExists { .. } => Code::AlreadyExists,
            BrokerError::ReservedTopicName { .. }
            | BrokerError::InvalidPartitionCount { .. }
            | BrokerError::InvalidArgument { .. } => Code::InvalidArgument,
            BrokerError::TooManyTopics { .. }
            | BrokerError::TooManyOpenFiles { .. }
            | BrokerError::TooLarge { .. }
            | BrokerError::TooManyGroups { .. }
            | BrokerError::TooManyMembers { .. } => Code::ResourceExhausted,
            BrokerError::UnknownGroup { .. } => Code::NotFound,
            BrokerError::UnknownMember { .. }
            | BrokerError::NotOwner { .. }
            | BrokerError::StaleGeneration { .. }
            | BrokerError::GroupNotEmpty { .. }
            | BrokerError::SessionEnded { .. } => Code::FailedPrecondition,
            BrokerError::PartitionClosed { .. } | BrokerError::ShuttingDown => Code::Unavailable,
            BrokerError::NotLeader { .. }
            | BrokerError::NotEnoughReplicas { .. }
            | BrokerError::ControllerUnavailable { .. } => Code::Unavailable,
            BrokerError::Io { source, .. } => io_code(source),
            BrokerError::CorruptMetadata { .. } | BrokerError::Internal(_) => Code::Internal,
            BrokerError::Storage(err) => storage_code(err),
        }
    }

    /// The machine-readable kind of refusal, for the statuses whose code alone does not tell a client what
    /// to do (see `rill_protocol::reason`).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            BrokerError::TooManyTopics { .. }
            | BrokerError::TooManyGroups { .. }
            | BrokerError::TooManyMembers { .. }
            | BrokerError::TooManyOpenFiles { .. } => Some(Reason::LimitReached),
            BrokerError::TooLarge { .. } | BrokerError::Storage(StorageError::BatchTooLarge { .. }) => {
                Some(Reason::TooLarge)
            }
            BrokerError::PartitionClosed { .. }
            | BrokerError::ShuttingDown
            | BrokerError::Storage(StorageError::Closed(_)) => Some(Reason::ShuttingDown),
            BrokerError::NotLeader { .. } => Some(Reason::NotLeader),
            BrokerError::NotEnoughReplicas { .. } => Some(Reason::NotEnoughReplicas),
            BrokerError::Io { source, .. } | BrokerError::Storage(StorageError::Io { source, .. }) => {
                if is_disk_full(source) {
                    Some(Reason::DiskFull)
                } else {
                    is_out_of_descriptors(source).then_some(Reason::LimitReached)
                }
            }
            _ => None,
        }
    }
}

/// The leader's id and address beside a not-leader refusal, so a client can go there without a metadata call.
fn insert_leader(status: &mut Status, leader: Option<u64>, address: Option<&str>) {
    use rill_protocol::reason::{LEADER_ADDRESS_KEY, LEADER_ID_KEY};
    if let Some(Ok(value)) = leader.map(|id| id.to_string().parse()) {
        status.metadata_mut().insert(LEADER_ID_KEY, value);
    }
    if let Some(Ok(value)) = address.map(|a| a.parse()) {
        status.metadata_mut().insert(LEADER_ADDRESS_KEY, value);
    }
}

fn leader_hint(leader: Option<u64>, address: &Option<String>) -> String {
    match (leader, address) {
        (Some(id), Some(address)) => format!("; node {id} at {address} does"),
        (Some(id), None) => format!("; node {id} does"),
        _ => "; it has no leader right now".to_owned(),
    }
}

fn storage_code(err: &StorageError) -> Code {
    match err {
        StorageError::InvalidTopicName { .. }
        | StorageError::InvalidBatch { .. }
        | StorageError::InvalidConfig { .. } => Code::InvalidArgument,
        StorageError::BatchTooLarge { .. } => Code::ResourceExhausted,
        StorageError::OffsetOutOfRange { .. } => Code::OutOfRange,
        StorageError::Io { source, .. } => io_code(source),
        StorageError::Corrupt { .. } => Code::Internal,
        StorageError::Closed { .. } => Code::Unavailable,
    }
}

/// A full disk (ENOSPC, EDQUOT) may clear: UNAVAILABLE tells the client to retry later. Running out of
/// descriptors (EMFILE, ENFILE) is RESOURCE_EXHAUSTED. Other I/O failures are INTERNAL; all carry the cause in
/// the message.
fn io_code(err: &std::io::Error) -> Code {
    if is_disk_full(err) {
        Code::Unavailable
    } else if is_out_of_descriptors(err) {
        // Out of descriptors despite the budget (another process took the system's, or a limit lowered).
        Code::ResourceExhausted
    } else {
        Code::Internal
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
        let code = err.code();
        match code {
            Code::Internal | Code::Unavailable => tracing::warn!(error = %err, "request failed"),
            _ => tracing::debug!(error = %err, "request rejected"),
        }
        let mut status = Status::new(code, err.to_string());
        if let Some(reason) = err.reason() {
            status.metadata_mut().insert(REASON_KEY, tonic::metadata::MetadataValue::from_static(reason.as_str()));
        }
        if let BrokerError::NotLeader { leader, leader_address, .. } = &err {
            insert_leader(&mut status, *leader, leader_address.as_deref());
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
            BrokerError::from(StorageError::OffsetOutOfRange { offset: 99, log_start_offset: 3, high_watermark: 10 });
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

    fn reason_of(status: &Status) -> Option<&str> {
        status.metadata().get(REASON_KEY).and_then(|value| value.to_str().ok())
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
        assert_eq!(reason_of(&Status::from(denied)), None, "an I/O failure that is not a full disk has no reason");
    }

    #[test]
    fn unknown_partition_names_the_valid_range() {
        let err = BrokerError::UnknownPartition { topic: "t".into(), partition: 7, partition_count: 3 };
        assert_eq!(err.to_string(), "unknown partition 7 of topic \"t\": it has partitions 0 to 2");
    }
}
