//! The client's one error type, and the one place gRPC statuses become it.
//!
//! Every variant says what went wrong with the caller's request, not which RPC failed: an unknown topic, a
//! record too large, a broker that cannot be reached, a broker whose disk is full. [`Error::is_retriable`] is
//! the producer's retry policy: only failures that may pass by themselves (the broker unreachable or
//! restarting, a timeout, a full disk) are retried; a request the broker rejected as wrong or over a limit is
//! never sent again. The decision rests on the status code and the broker's machine-readable reason
//! (`rill_protocol::reason`), never on the words of a message.

use std::time::Duration;

use rill_protocol::reason::{Reason, REASON_KEY};
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
    #[error(
        "batch over the size limit: {message} (lower batch_bytes, or raise the topic's or broker's max_batch_bytes)"
    )]
    BatchTooLarge { message: String },
    #[error("the broker refused a request over its limit: {message}")]
    LimitExceeded { message: String },
    #[error("the broker is unavailable: {message}")]
    Unavailable { message: String },
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
        let reason = status.metadata().get(REASON_KEY).and_then(|v| v.to_str().ok()).and_then(Reason::parse);
        match (reason, status.code()) {
            (Some(Reason::DiskFull), _) => return Error::DiskFull { message },
            (Some(Reason::TooLarge), _) => return Error::BatchTooLarge { message },
            (Some(Reason::LimitReached), _) => return Error::LimitExceeded { message },
            (Some(Reason::ShuttingDown), _) => return Error::Unavailable { message },
            (Some(Reason::NotLeader), _) => {
                let leader_address = status
                    .metadata()
                    .get(rill_protocol::reason::LEADER_ADDRESS_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                return Error::NotLeader { message, leader_address };
            }
            (Some(Reason::NotEnoughReplicas), _) => return Error::NotEnoughReplicas { message },
            (None, _) => {}
        }
        match status.code() {
            Code::NotFound => match (ctx.topic, ctx.partition) {
                (Some(topic), Some(partition)) if message.contains("partition") => {
                    Error::UnknownPartition { topic: topic.to_owned(), partition }
                }
                (Some(topic), _) => Error::UnknownTopic { topic: topic.to_owned() },
                (None, _) => Error::Broker { code: Code::NotFound, message },
            },
            Code::AlreadyExists => Error::TopicExists { topic: ctx.topic.unwrap_or_default().to_owned() },
            Code::InvalidArgument => Error::InvalidArgument { message },
            Code::FailedPrecondition => Error::GroupRefused { message },
            Code::OutOfRange if is_tonic_size_limit(&message) => Error::BatchTooLarge { message },
            Code::OutOfRange => Error::OffsetOutOfRange { message },
            // Every limit the broker enforces is fixed (a size or a count) and carries a reason; one without
            // (tonic's own, a proxy's) is treated the same: the same request would be refused again.
            Code::ResourceExhausted => Error::LimitExceeded { message },
            // tonic's own deadline (the `grpc-timeout` the request carries) reports CANCELLED.
            Code::Cancelled if is_local_timeout(status) => {
                Error::TimedOut { after: ctx.timeout.unwrap_or_default(), message }
            }
            Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Internal if is_transport(status) => {
                Error::Unavailable { message: transport_message(status) }
            }
            Code::Unavailable => Error::Unavailable { message },
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
                | Error::TimedOut { .. }
                | Error::DiskFull { .. }
                | Error::NotLeader { .. }
                | Error::NotEnoughReplicas { .. }
        )
    }
}

/// tonic's own client-side check of a message's size (a generated client encoding or decoding over
/// `max_message_bytes`): OUT_OF_RANGE with this fixed wording and no reason, since no broker sent it.
fn is_tonic_size_limit(message: &str) -> bool {
    message.starts_with("Error, encoded message length too large")
        || message.starts_with("Error, decoded message length too large")
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
    status.message() == tonic::TimeoutExpired(()).to_string()
}

/// A status that tonic made up locally because the connection failed (refused, reset, closed), rather than
/// one the broker sent.
fn is_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| source.is::<tonic::transport::Error>())
        || status.message().contains("transport error")
        || status.message().contains("connection")
        || status.message().contains("h2 protocol error")
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

    fn map_with_reason(code: Code, message: &str, reason: Reason) -> Error {
        let mut status = Status::new(code, message);
        status.metadata_mut().insert(REASON_KEY, tonic::metadata::MetadataValue::from_static(reason.as_str()));
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
            map(Code::NotFound, "unknown partition 3 of topic \"orders\": it has partitions 0 to 1"),
            Error::UnknownPartition { topic: "orders".into(), partition: 3 }
        );
        assert_eq!(map(Code::AlreadyExists, "x"), Error::TopicExists { topic: "orders".into() });
        assert!(
            matches!(map(Code::InvalidArgument, "bad name"), Error::InvalidArgument { message } if message == "bad name")
        );
        assert!(matches!(map(Code::OutOfRange, "offset 9"), Error::OffsetOutOfRange { .. }));
        assert!(matches!(map(Code::Internal, "disk"), Error::Broker { code: Code::Internal, .. }));
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
