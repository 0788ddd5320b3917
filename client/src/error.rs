//! The client's one error type, and the one place gRPC statuses become it.
//!
//! Every variant says what went wrong with the caller's request, not which RPC failed: an unknown topic, a
//! record too large, a broker that cannot be reached, a broker whose disk is full. [`Error::is_retriable`] is
//! the producer's retry policy: only failures that may pass by themselves (the broker unreachable or
//! restarting, a timeout, a full disk) are retried; a request the broker rejected as wrong or over a limit is
//! never sent again. The decision rests on the broker's machine-readable reason (`rill_protocol::reason`: a
//! `google.rpc.ErrorInfo` in the status details, on every refusal the broker makes) and, for a status without
//! one (made by tonic on this side, or by a proxy), on its code; never on the words of a message.

use std::time::Duration;

use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::BatchError;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms of the request that failed. `Clone` because one produce failure is reported to
/// every record of the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid broker address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },
    #[error("unknown partition {partition} of topic {topic:?}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {topic:?} already exists")]
    TopicExists { topic: String },
    #[error("the broker rejected the request as invalid: {message}")]
    InvalidArgument { message: String },
    /// Refused by the client itself, before any request: a setting out of range, or a call the client's state
    /// does not allow.
    #[error("invalid use of the client: {message}")]
    InvalidUse { message: String },
    #[error("offset out of range: {message}")]
    OffsetOutOfRange { message: String },
    #[error("record of {size} bytes exceeds the limit of {limit} bytes ({setting})")]
    RecordTooLarge { size: usize, limit: usize, setting: &'static str },
    // The producer fills batches only up to the topic's limit, so what is over it is a single record (or a
    // limit lowered since the producer last described the topic): no producer setting helps.
    #[error(
        "batch over the size limit: {message} (a record this large needs a larger max.message.bytes on the topic \
         or max_batch_bytes on the broker)"
    )]
    BatchTooLarge { message: String },
    #[error("the broker refused a request over its limit: {message}")]
    LimitExceeded { message: String },
    #[error("the broker is unavailable: {message}")]
    Unavailable { message: String },
    /// The broker answered, but the cluster's controller could not commit what it asked (no leader elected yet,
    /// or the leader unreachable from that node): retried, after a backoff, at the same node, which is not at
    /// fault and learns the new leader with the election.
    #[error("{message}")]
    ControllerUnavailable { message: String },
    /// The broker could not write: its disk (or the data directory's quota) is full. Retried, since freeing
    /// space makes the same request succeed.
    #[error("the broker's disk is full: {message}")]
    DiskFull { message: String },
    #[error("timed out after {after:?}: {message}")]
    TimedOut { after: Duration, message: String },
    /// The node called does not lead the partition (a cluster's leader moved): retried once the metadata names
    /// the leader. `leader_address` is the leader the node named, if it knew one.
    #[error("not the partition leader: {message}")]
    NotLeader { message: String, leader_address: Option<String> },
    /// A fetch named a leader epoch the partition's leader does not have (KIP-320): older (the client's metadata
    /// is stale) or newer (the node's is). Retried after the client asks for the partition's placement again.
    #[error("leader epoch mismatch: {message}")]
    LeaderEpochMismatch { message: String },
    /// An offset lookup on a partition whose new leader has not yet learnt a high watermark past the start of
    /// its epoch (KIP-207): its "latest" could be below what the previous leader gave. Retried shortly, within
    /// the call's timeout.
    #[error("offset not available yet: {message}")]
    OffsetNotAvailable { message: String },
    /// The node called is not the consumer group's coordinator (a cluster moved it): retried at the coordinator
    /// the node named (`coordinator_address`), or at another node when it named none.
    #[error("not the group's coordinator: {message}")]
    NotCoordinator { message: String, coordinator_address: Option<String> },
    /// Too few in-sync replicas for an acks-all produce: retried, since replicas catch up or come back.
    #[error("not enough in-sync replicas: {message}")]
    NotEnoughReplicas { message: String },
    /// A fetched batch that cannot be decoded. The records before it were handed out first; seek the partition
    /// to `skip_to` to go on past it (see [`Error::undecodable_batch`]), or the next poll meets it again.
    #[error(
        "cannot decode the batch at offset {offset} of {topic:?} partition {partition}: {source} \
         (seek to offset {skip_to} to skip it)"
    )]
    Corrupt {
        topic: String,
        partition: u32,
        /// The first offset of the batch that was asked for.
        offset: i64,
        /// The offset right after the batch.
        skip_to: i64,
        #[source]
        source: BatchError,
    },
    /// A fetched compressed batch whose records do not decompress; as [`Error::Corrupt`].
    #[error(
        "cannot decompress the {codec} batch at offset {offset} of {topic:?} partition {partition}: {message} \
         (seek to offset {skip_to} to skip it)"
    )]
    Decompress { codec: &'static str, topic: String, partition: u32, offset: i64, skip_to: i64, message: String },
    #[error("cannot compress a batch: {message}")]
    Compress { message: String },
    #[error("{what} is not assigned to this consumer")]
    NotAssigned { what: String },
    #[error("this needs a consumer group id (ConsumerConfig::group_id)")]
    NoGroup,
    #[error("the producer is closed")]
    ProducerClosed,
    /// Not sent: an earlier batch of the same partition failed for good (`cause`), and storing this one would
    /// leave a gap in the producer's records there. The partition takes no more records from this producer.
    #[error("not sent: an earlier batch to {topic:?} partition {partition} failed ({cause})")]
    EarlierBatchFailed { topic: String, partition: u32, cause: Box<Error> },
    /// The consumer group's state refused the request: a commit from a member the broker removed or whose
    /// partition moved (drop the partitions and rejoin: a subscribed consumer does), or a reset or delete of a
    /// group that still has members (stop them first).
    #[error("the consumer group refused the request: {message}")]
    GroupRefused { message: String },
    /// An idempotent producer's batch whose sequence does not follow its last one in the partition: the broker
    /// lost records it had acknowledged (a crash before they reached the disk), or another process sends with
    /// this producer's id. Not retried.
    #[error("the broker refused the producer's sequence: {message}")]
    OutOfOrderSequence { message: String },
    /// A newer instance of this idempotent producer (same id, newer epoch) took over the partition.
    #[error("the producer was fenced: {message}")]
    ProducerFenced { message: String },
    /// The broker requires authentication and the request carried no credential it accepts (no token, or one
    /// it does not know). Not retried: the same credential is refused again.
    #[error("the broker refused the request: {message}")]
    Unauthenticated { message: String },
    /// With authorization on, the broker's ACLs do not let this client's principal do what it asked; the message
    /// names the principal, the operation and the resource. Not retried: an operator must add an ACL first.
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },
    /// A user administration call refused: an unknown user, one that exists already, or users on a cluster.
    #[error("{message}")]
    UserRefused { message: String },
    #[error("broker error ({code:?}): {message}")]
    Broker { code: Code, message: String },
}

/// What a request was about, so a status can name the topic or partition the caller used.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestContext<'a> {
    pub topic: Option<&'a str>,
    pub partition: Option<u32>,
    /// The request timeout, reported by `TimedOut`.
    pub timeout: Option<Duration>,
}

impl<'a> RequestContext<'a> {
    pub fn topic(topic: &'a str) -> Self {
        Self { topic: Some(topic), ..Self::default() }
    }

    pub fn partition(topic: &'a str, partition: u32) -> Self {
        Self { topic: Some(topic), partition: Some(partition), ..Self::default() }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl Error {
    /// For a batch the consumer could not decode: its topic, partition, first offset asked for, and the offset
    /// after it, where `Consumer::seek` goes to skip it.
    pub fn undecodable_batch(&self) -> Option<(&str, u32, i64, i64)> {
        match self {
            Error::Corrupt { topic, partition, offset, skip_to, .. }
            | Error::Decompress { topic, partition, offset, skip_to, .. } => {
                Some((topic, *partition, *offset, *skip_to))
            }
            _ => None,
        }
    }

    /// Maps a gRPC status onto the caller's terms. The broker's statuses follow `proto/rill/v1/rill.proto`:
    /// NOT_FOUND names, ALREADY_EXISTS, INVALID_ARGUMENT, OUT_OF_RANGE offsets, RESOURCE_EXHAUSTED limits,
    /// UNAVAILABLE/INTERNAL failures.
    pub(crate) fn from_status(status: &Status, ctx: RequestContext<'_>) -> Self {
        let message = status.message().to_owned();
        match reason_of(status) {
            Some(Reason::NotLeader) => {
                let leader_address = status
                    .metadata()
                    .get(rill_protocol::reason::LEADER_ADDRESS_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Error::NotLeader { message, leader_address }
            }
            Some(Reason::NotCoordinator) => {
                let coordinator_address = status
                    .metadata()
                    .get(rill_protocol::reason::COORDINATOR_ADDRESS_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Error::NotCoordinator { message, coordinator_address }
            }
            Some(reason) => Self::from_reason(reason, status.code(), message, ctx),
            None => Self::from_code(status, message, ctx),
        }
    }

    /// A refusal the broker explained with a reason.
    fn from_reason(reason: Reason, code: Code, message: String, ctx: RequestContext<'_>) -> Self {
        match reason {
            Reason::DiskFull => Error::DiskFull { message },
            Reason::ShuttingDown => Error::Unavailable { message },
            Reason::TooLarge => Error::BatchTooLarge { message },
            Reason::LimitReached => Error::LimitExceeded { message },
            Reason::UnknownTopic => match ctx.topic {
                Some(topic) => Error::UnknownTopic { topic: topic.to_owned() },
                None => Error::Broker { code, message },
            },
            Reason::UnknownPartition => match (ctx.topic, ctx.partition) {
                (Some(topic), Some(partition)) => Error::UnknownPartition { topic: topic.to_owned(), partition },
                _ => Error::Broker { code, message },
            },
            Reason::TopicExists => Error::TopicExists { topic: ctx.topic.unwrap_or_default().to_owned() },
            Reason::InvalidTopicName
            | Reason::InvalidArgument
            | Reason::InvalidConfig
            | Reason::CorruptBatch
            | Reason::InvalidRecord
            | Reason::UnsupportedFormat
            | Reason::InvalidTimestamp => Error::InvalidArgument { message },
            Reason::OffsetOutOfRange => Error::OffsetOutOfRange { message },
            Reason::UnknownMember
            | Reason::NotOwner
            | Reason::StaleGeneration
            | Reason::GroupNotEmpty
            | Reason::GroupKindMismatch => Error::GroupRefused { message },
            Reason::OutOfOrderSequence => Error::OutOfOrderSequence { message },
            Reason::InvalidProducerEpoch => Error::ProducerFenced { message },
            // Handled with the leader's address in `from_status`; without it, the client asks for the leader.
            Reason::NotLeader => Error::NotLeader { message, leader_address: None },
            Reason::FencedLeaderEpoch | Reason::UnknownLeaderEpoch => Error::LeaderEpochMismatch { message },
            Reason::OffsetNotAvailable => Error::OffsetNotAvailable { message },
            Reason::NotCoordinator => Error::NotCoordinator { message, coordinator_address: None },
            Reason::NotEnoughReplicas => Error::NotEnoughReplicas { message },
            Reason::TimedOut => Error::TimedOut { after: ctx.timeout.unwrap_or_default(), message },
            Reason::ControllerUnavailable => Error::ControllerUnavailable { message },
            Reason::Unauthenticated => Error::Unauthenticated { message },
            Reason::PermissionDenied => Error::PermissionDenied { message },
            Reason::UnknownUser | Reason::UserExists | Reason::Unsupported => Error::UserRefused { message },
            Reason::ConcurrentTransactions => Error::Unavailable { message },
            Reason::UnknownGroup
            | Reason::InvalidTxnState
            | Reason::InvalidProducerIdMapping
            | Reason::UnknownNode
            | Reason::MembershipRefused
            | Reason::StorageFailure
            | Reason::Internal => Error::Broker { code, message },
        }
    }

    /// A status without a reason: one tonic made on this side (a failed connection, a deadline, a message over
    /// the size limit) or a proxy's. Every refusal the broker itself makes carries a reason, so a status without
    /// one that looks like a failure is the connection's.
    fn from_code(status: &Status, message: String, ctx: RequestContext<'_>) -> Self {
        match status.code() {
            Code::NotFound => match ctx.topic {
                Some(topic) => Error::UnknownTopic { topic: topic.to_owned() },
                None => Error::Broker { code: Code::NotFound, message },
            },
            Code::AlreadyExists => Error::TopicExists { topic: ctx.topic.unwrap_or_default().to_owned() },
            Code::InvalidArgument => Error::InvalidArgument { message },
            Code::FailedPrecondition => Error::GroupRefused { message },
            // tonic's own check of a message against `max_message_bytes`: the broker's OUT_OF_RANGE (an offset)
            // always carries a reason.
            Code::OutOfRange => Error::BatchTooLarge { message },
            // Every limit is fixed (a size or a count): the same request would be refused again.
            Code::ResourceExhausted => Error::LimitExceeded { message },
            // tonic's own deadline (the `grpc-timeout` the request carries) reports CANCELLED.
            Code::Cancelled if is_local_timeout(status) => {
                Error::TimedOut { after: ctx.timeout.unwrap_or_default(), message }
            }
            Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Internal => {
                Error::Unavailable { message: transport_message(status) }
            }
            Code::DeadlineExceeded => Error::TimedOut { after: ctx.timeout.unwrap_or_default(), message },
            code => Error::Broker { code, message },
        }
    }

    /// What really went wrong: the failure an [`Error::EarlierBatchFailed`] failed behind, else the error itself.
    pub fn root(&self) -> &Error {
        match self {
            Error::EarlierBatchFailed { cause, .. } => cause.root(),
            err => err,
        }
    }

    /// Whether sending the same request again may succeed: the producer's retry policy.
    ///
    /// Retried: the broker unreachable or shutting down, a timeout, a full disk. Never retried: what the
    /// broker judged wrong (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, ALREADY_EXISTS), limits (a size or a
    /// count, which the same request will exceed again) and client-side errors.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::ControllerUnavailable { .. }
                | Error::TimedOut { .. }
                | Error::DiskFull { .. }
                | Error::NotLeader { .. }
                | Error::LeaderEpochMismatch { .. }
                | Error::OffsetNotAvailable { .. }
                | Error::NotCoordinator { .. }
                | Error::NotEnoughReplicas { .. }
        )
    }
}

/// A status tonic made up because the request's deadline passed before the answer came.
fn is_local_timeout(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = cause.source();
    }
    false
}

fn transport_message(status: &Status) -> String {
    with_causes(status.message().to_owned(), std::error::Error::source(status))
}

/// `message`, then every cause in `source`'s chain after a ": ": what a transport error really was.
pub(crate) fn with_causes(mut message: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(code: Code, message: &str) -> Error {
        Error::from_status(&Status::new(code, message), RequestContext::partition("orders", 3))
    }

    /// A status as the broker sends it: the reason's code, and the reason in the details.
    fn map_with_reason(code: Code, message: &str, reason: Reason) -> Error {
        let status = reason.status(message);
        assert_eq!(status.code(), code, "{reason:?}");
        Error::from_status(&status, RequestContext::partition("orders", 3))
    }

    #[test]
    fn transient_statuses_are_retried() {
        assert!(map(Code::Unavailable, "the broker is shutting down").is_retriable());
        assert!(map(Code::DeadlineExceeded, "deadline").is_retriable());
    }

    #[test]
    fn the_brokers_reason_decides_not_the_message_text() {
        let full =
            map_with_reason(Code::Unavailable, "i/o error on /d/0.log: No space left on device", Reason::DiskFull);
        assert!(matches!(&full, Error::DiskFull { .. }) && full.is_retriable(), "{full:?}");
        assert!(full.to_string().starts_with("the broker's disk is full"), "{full}");
        // Wording that once decided retries means nothing now: the reason does.
        let worded = map_with_reason(Code::ResourceExhausted, "try again, not too many", Reason::TooLarge);
        assert!(matches!(worded, Error::BatchTooLarge { .. }) && !worded.is_retriable());
        let count = map_with_reason(Code::ResourceExhausted, "a size exceeds the limit", Reason::LimitReached);
        assert!(matches!(count, Error::LimitExceeded { .. }) && !count.is_retriable());
        let closing = map_with_reason(Code::Unavailable, "partition closing", Reason::ShuttingDown);
        assert!(matches!(closing, Error::Unavailable { .. }) && closing.is_retriable());
        // The node answered: its controller is away, not the node itself.
        let controller = map_with_reason(
            Code::Unavailable,
            "the cluster's controller is unavailable: controller leader 3: tcp connect error",
            Reason::ControllerUnavailable,
        );
        assert!(matches!(controller, Error::ControllerUnavailable { .. }) && controller.is_retriable());
        // An UNAVAILABLE with no reason is a broker away, not a full disk, whatever its words.
        assert!(matches!(map(Code::Unavailable, "No space left on device"), Error::Unavailable { .. }));
    }

    #[test]
    fn rejected_requests_and_fixed_limits_are_never_retried() {
        assert!(!map(Code::InvalidArgument, "bad crc").is_retriable());
        assert!(!map(Code::NotFound, "unknown topic \"orders\"").is_retriable());
        assert!(!map(Code::OutOfRange, "offset 9 outside [0, 3]").is_retriable());
        assert!(!map(Code::AlreadyExists, "exists").is_retriable());
        let size = map_with_reason(
            Code::ResourceExhausted,
            "record batch of 9000000 bytes exceeds the limit of 8388608 bytes",
            Reason::TooLarge,
        );
        assert!(matches!(size, Error::BatchTooLarge { .. }) && !size.is_retriable());
        let local =
            map(Code::OutOfRange, "Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes");
        assert!(matches!(local, Error::BatchTooLarge { .. }) && !local.is_retriable());
        assert!(!map(Code::ResourceExhausted, "too many topics: the broker holds at most 10").is_retriable());
        assert!(!Error::RecordTooLarge { size: 2, limit: 1, setting: "batch" }.is_retriable());
    }

    #[test]
    fn statuses_name_the_callers_topic_and_partition() {
        assert_eq!(map(Code::NotFound, "unknown topic \"orders\""), Error::UnknownTopic { topic: "orders".into() });
        assert_eq!(
            map_with_reason(Code::NotFound, "unknown partition 3 of topic \"orders\"", Reason::UnknownPartition),
            Error::UnknownPartition { topic: "orders".into(), partition: 3 }
        );
        // The word "partition" in a message no longer decides anything: the reason does.
        assert_eq!(
            map_with_reason(Code::NotFound, "no such partition", Reason::UnknownTopic),
            Error::UnknownTopic { topic: "orders".into() }
        );
        assert_eq!(map(Code::AlreadyExists, "x"), Error::TopicExists { topic: "orders".into() });
        assert!(
            matches!(map(Code::InvalidArgument, "bad name"), Error::InvalidArgument { message } if message == "bad name")
        );
        let offset = map_with_reason(Code::OutOfRange, "offset 9", Reason::OffsetOutOfRange);
        assert!(matches!(offset, Error::OffsetOutOfRange { .. }));
        let disk = map_with_reason(Code::Internal, "i/o error", Reason::StorageFailure);
        assert!(matches!(disk, Error::Broker { code: Code::Internal, .. }) && !disk.is_retriable());
        // An INTERNAL without a reason did not come from the broker's refusals: the connection broke.
        assert!(map(Code::Internal, "h2 protocol error").is_retriable());
    }

    #[test]
    fn an_idempotent_producers_refusals_are_final() {
        let gap = map_with_reason(Code::FailedPrecondition, "out of order", Reason::OutOfOrderSequence);
        assert!(matches!(gap, Error::OutOfOrderSequence { .. }) && !gap.is_retriable());
        let fenced = map_with_reason(Code::FailedPrecondition, "older epoch", Reason::InvalidProducerEpoch);
        assert!(matches!(fenced, Error::ProducerFenced { .. }) && !fenced.is_retriable());
        let removed = map_with_reason(Code::FailedPrecondition, "member left", Reason::UnknownMember);
        assert!(matches!(removed, Error::GroupRefused { .. }));
    }

    #[test]
    fn a_timeout_reports_the_configured_duration() {
        let status = Status::new(Code::DeadlineExceeded, "Timeout expired");
        let ctx = RequestContext::topic("t").with_timeout(Duration::from_secs(3));
        assert!(
            matches!(Error::from_status(&status, ctx), Error::TimedOut { after, .. } if after == Duration::from_secs(3))
        );
    }
}
