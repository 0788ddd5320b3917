//! rill's one error vocabulary: why the broker refused a request, as a machine-readable word, with the gRPC code
//! and the Kafka error code each refusal is answered with.
//!
//! A status code alone does not say what a client can do: UNAVAILABLE is both "the broker is shutting down" and
//! "its disk is full", FAILED_PRECONDITION both "a producer's sequence has a gap" and "a group member was
//! removed". The broker puts one [`Reason`] on every refusal: on gRPC in the status details, as a
//! `google.rpc.ErrorInfo` whose `reason` is the word and whose `domain` is [`ERROR_DOMAIN`] (`broker/src/error.rs`,
//! the one place its errors become statuses); on the Kafka port as [`Reason::kafka_error_code`]. The client
//! decides retries and wording from the reason ([`reason_of`]), never from the message text, which is for people
//! and may change. The table is [`Reason::ALL`] with [`Reason::as_str`], [`Reason::grpc_code`] and
//! [`Reason::kafka_error_code`]; docs/errors.md lists it.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` the broker sends: whose vocabulary the reason word is.
pub const ERROR_DOMAIN: &str = "rill.dev";

/// What kind of refusal a status is. The wire form is [`Reason::as_str`]; an unknown word (a newer broker) is
/// no reason at all, and the client falls back to the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The broker's disk is full (ENOSPC or EDQUOT): the request may succeed once space is freed.
    DiskFull,
    /// The broker is shutting down, or the partition is closing: another broker start may take it.
    ShuttingDown,
    /// A batch, record or request over a size limit: the same request will always be refused.
    TooLarge,
    /// A count limit (topics, groups, members, open files, producer ids per partition): the same request is
    /// refused until something is deleted or expires.
    LimitReached,
    UnknownTopic,
    UnknownPartition,
    TopicExists,
    /// A topic name that is not allowed (characters, length, the reserved `__` prefix).
    InvalidTopicName,
    /// A request field the broker cannot accept; the message names it and what is allowed.
    InvalidArgument,
    /// A topic setting the broker cannot accept (an unknown key, a value out of range, a change that leaves the
    /// settings inconsistent); the message names the key, the value and what is allowed.
    InvalidConfig,
    /// A record batch whose framing or checksum is damaged.
    CorruptBatch,
    /// A well-formed record batch that breaks a produce rule (docs/format.md).
    InvalidRecord,
    /// A record batch of a format (magic) rill does not store.
    UnsupportedFormat,
    /// A record whose timestamp is further from the broker's clock than the topic's
    /// `message.timestamp.before.max.ms` or `message.timestamp.after.max.ms` allow.
    InvalidTimestamp,
    OffsetOutOfRange,
    UnknownGroup,
    /// A consumer-group member the group no longer has (it left, or its session expired): rejoin.
    UnknownMember,
    /// A commit for a partition the member does not own (any more): drop it.
    NotOwner,
    /// A commit from an older generation than the partition's assignment: apply the latest assignment.
    StaleGeneration,
    /// A group operation that needs a group without members.
    GroupNotEmpty,
    /// A gRPC member joining a group of Kafka members, or the reverse: the two protocols do not share a group.
    GroupKindMismatch,
    /// An idempotent producer's batch whose sequence does not follow its last one in the partition.
    OutOfOrderSequence,
    /// An idempotent producer's epoch older than the partition's: a newer instance of it fenced this one.
    InvalidProducerEpoch,
    /// The node called does not lead the partition (any more): refresh the metadata and send to the leader,
    /// whose id and address the status's metadata carries when known ([`LEADER_ID_KEY`], [`LEADER_ADDRESS_KEY`]).
    NotLeader,
    /// A read naming the partition's leader epoch older than the one the node called knows (KIP-320): the
    /// client's metadata is stale; refresh it and retry.
    FencedLeaderEpoch,
    /// A read naming a leader epoch newer than the one the node called knows: its metadata has not caught up
    /// yet; refresh and retry.
    UnknownLeaderEpoch,
    /// An offset lookup ("latest", or a timestamp not found below the high watermark) on a partition whose new
    /// leader has not yet learnt a high watermark past the start of its epoch (KIP-207): its answer could be
    /// below what the previous leader already gave. Retry shortly.
    OffsetNotAvailable,
    /// The node called is not the consumer group's coordinator (on a cluster, the leader of the group's
    /// `__consumer_offsets` partition): send group requests to the coordinator, whose id and address the status's
    /// metadata carries when known ([`COORDINATOR_ID_KEY`], [`COORDINATOR_ADDRESS_KEY`]).
    NotCoordinator,
    /// The partition has fewer in-sync replicas than its topic's `min_insync_replicas`: retry later.
    NotEnoughReplicas,
    /// A cluster change (a topic created or deleted) that needs the controller quorum, which has no leader
    /// reachable right now: retry later.
    ControllerUnavailable,
    /// A cluster membership change or reassignment (`rill cluster remove-node`, `rill topic reassign`) naming a
    /// node that is not a member.
    UnknownNode,
    /// A cluster membership change or reassignment that would lose data or the controller quorum, reuse a node's
    /// id or address, or run while another one does: the same request is refused until the cluster changes
    /// (the message says how).
    MembershipRefused,
    /// Reading or writing the broker's files failed (other than a full disk).
    StorageFailure,
    /// A fault of the broker's, not of the request.
    Internal,
    /// A user name `rill user` does not know.
    UnknownUser,
    /// A user `rill user create` was asked to create exists already.
    UserExists,
    /// The request carries no credential the broker accepts (a missing, unknown or revoked token; a failed SASL
    /// exchange) while authentication is required. The message never says which.
    Unauthenticated,
    /// An operation this node does not offer in its setup (users or ACLs on a cluster).
    Unsupported,
    /// The broker could not finish in the request's time: a DeleteRecords whose in-sync replicas did not all move
    /// their log start in time (the message names the replicas that lag). Done on the leader already; the same
    /// request again waits anew.
    TimedOut,
    /// With authorization on, no ACL allows the principal the operation on the resource (or one denies it); the
    /// message names all three. On the Kafka port the code depends on the resource: TOPIC_ (29), GROUP_ (30) or
    /// CLUSTER_AUTHORIZATION_FAILED (31); this table holds the topic's, the most common.
    PermissionDenied,
    /// A transactional batch or request that does not fit its transaction's state: a partition not added to the
    /// open transaction, an end of a transaction that is not open.
    InvalidTxnState,
    /// A transactional producer's request while its transaction is being completed: retry shortly.
    ConcurrentTransactions,
    /// A transactional batch or request whose producer id is not the one its transactional id has.
    InvalidProducerIdMapping,
}

/// Metadata keys beside a [`Reason::NotLeader`]: the partition's leader as the node called knows it.
pub const LEADER_ID_KEY: &str = "rill-leader-id";
pub const LEADER_ADDRESS_KEY: &str = "rill-leader-address";
/// Beside a [`Reason::NotLeader`]: the partition refused. A produce that named none learns which one the node
/// picked (by key or round-robin), so whoever sends it on to the leader can name it there.
pub const PARTITION_KEY: &str = "rill-partition";
/// Metadata keys beside a [`Reason::NotCoordinator`]: the group's coordinator as the node called knows it.
pub const COORDINATOR_ID_KEY: &str = "rill-coordinator-id";
pub const COORDINATOR_ADDRESS_KEY: &str = "rill-coordinator-address";

impl Reason {
    pub const ALL: [Reason; 43] = [
        Reason::DiskFull,
        Reason::ShuttingDown,
        Reason::TooLarge,
        Reason::LimitReached,
        Reason::UnknownTopic,
        Reason::UnknownPartition,
        Reason::TopicExists,
        Reason::InvalidTopicName,
        Reason::InvalidArgument,
        Reason::InvalidConfig,
        Reason::CorruptBatch,
        Reason::InvalidRecord,
        Reason::UnsupportedFormat,
        Reason::InvalidTimestamp,
        Reason::OffsetOutOfRange,
        Reason::UnknownGroup,
        Reason::UnknownMember,
        Reason::NotOwner,
        Reason::StaleGeneration,
        Reason::GroupNotEmpty,
        Reason::GroupKindMismatch,
        Reason::OutOfOrderSequence,
        Reason::InvalidProducerEpoch,
        Reason::NotLeader,
        Reason::FencedLeaderEpoch,
        Reason::UnknownLeaderEpoch,
        Reason::OffsetNotAvailable,
        Reason::NotCoordinator,
        Reason::NotEnoughReplicas,
        Reason::ControllerUnavailable,
        Reason::UnknownNode,
        Reason::MembershipRefused,
        Reason::StorageFailure,
        Reason::Internal,
        Reason::UnknownUser,
        Reason::UserExists,
        Reason::Unauthenticated,
        Reason::Unsupported,
        Reason::TimedOut,
        Reason::PermissionDenied,
        Reason::InvalidTxnState,
        Reason::ConcurrentTransactions,
        Reason::InvalidProducerIdMapping,
    ];

    /// The word on the wire, and the gRPC code and Kafka error code the refusal is answered with: the one table.
    fn entry(self) -> (&'static str, Code, i16) {
        match self {
            Reason::DiskFull => ("disk-full", Code::Unavailable, 56), // KAFKA_STORAGE_ERROR
            Reason::ShuttingDown => ("shutting-down", Code::Unavailable, 6), // NOT_LEADER_OR_FOLLOWER: retried
            Reason::TooLarge => ("too-large", Code::ResourceExhausted, 10), // MESSAGE_TOO_LARGE
            Reason::LimitReached => ("limit-reached", Code::ResourceExhausted, 44), // POLICY_VIOLATION
            Reason::UnknownTopic => ("unknown-topic", Code::NotFound, 3), // UNKNOWN_TOPIC_OR_PARTITION
            Reason::UnknownPartition => ("unknown-partition", Code::NotFound, 3),
            Reason::TopicExists => ("topic-exists", Code::AlreadyExists, 36), // TOPIC_ALREADY_EXISTS
            Reason::InvalidTopicName => ("invalid-topic-name", Code::InvalidArgument, 17), // INVALID_TOPIC_EXCEPTION
            Reason::InvalidArgument => ("invalid-argument", Code::InvalidArgument, 42), // INVALID_REQUEST
            Reason::InvalidConfig => ("invalid-config", Code::InvalidArgument, 40), // INVALID_CONFIG
            Reason::CorruptBatch => ("corrupt-batch", Code::InvalidArgument, 2), // CORRUPT_MESSAGE
            Reason::InvalidRecord => ("invalid-record", Code::InvalidArgument, 87), // INVALID_RECORD
            Reason::UnsupportedFormat => ("unsupported-format", Code::InvalidArgument, 43), // UNSUPPORTED_FOR_MESSAGE_FORMAT
            Reason::InvalidTimestamp => ("invalid-timestamp", Code::InvalidArgument, 32),   // INVALID_TIMESTAMP
            Reason::OffsetOutOfRange => ("offset-out-of-range", Code::OutOfRange, 1),       // OFFSET_OUT_OF_RANGE
            Reason::UnknownGroup => ("unknown-group", Code::NotFound, 69),                  // GROUP_ID_NOT_FOUND
            Reason::UnknownMember => ("unknown-member", Code::FailedPrecondition, 25),      // UNKNOWN_MEMBER_ID
            Reason::NotOwner => ("not-owner", Code::FailedPrecondition, 22), // ILLEGAL_GENERATION: rejoin
            Reason::StaleGeneration => ("stale-generation", Code::FailedPrecondition, 22), // ILLEGAL_GENERATION
            Reason::GroupNotEmpty => ("group-not-empty", Code::FailedPrecondition, 68), // NON_EMPTY_GROUP
            Reason::GroupKindMismatch => ("group-kind-mismatch", Code::FailedPrecondition, 23), // INCONSISTENT_GROUP_PROTOCOL
            Reason::OutOfOrderSequence => ("out-of-order-sequence", Code::FailedPrecondition, 45), // OUT_OF_ORDER_SEQUENCE_NUMBER
            Reason::InvalidProducerEpoch => ("invalid-producer-epoch", Code::FailedPrecondition, 47), // INVALID_PRODUCER_EPOCH
            Reason::NotLeader => ("not-leader", Code::Unavailable, 6), // NOT_LEADER_OR_FOLLOWER
            Reason::FencedLeaderEpoch => ("fenced-leader-epoch", Code::FailedPrecondition, 74), // FENCED_LEADER_EPOCH
            Reason::UnknownLeaderEpoch => ("unknown-leader-epoch", Code::Unavailable, 75), // UNKNOWN_LEADER_EPOCH
            Reason::OffsetNotAvailable => ("offset-not-available", Code::Unavailable, 78), // OFFSET_NOT_AVAILABLE
            Reason::NotCoordinator => ("not-coordinator", Code::Unavailable, 16), // NOT_COORDINATOR
            Reason::NotEnoughReplicas => ("not-enough-replicas", Code::Unavailable, 19), // NOT_ENOUGH_REPLICAS
            Reason::ControllerUnavailable => ("controller-unavailable", Code::Unavailable, 41), // NOT_CONTROLLER
            Reason::UnknownNode => ("unknown-node", Code::NotFound, 102), // BROKER_ID_NOT_REGISTERED
            Reason::MembershipRefused => ("membership-refused", Code::FailedPrecondition, 42), // INVALID_REQUEST
            Reason::StorageFailure => ("storage-failure", Code::Internal, 56), // KAFKA_STORAGE_ERROR
            Reason::Internal => ("internal", Code::Internal, -1),      // UNKNOWN_SERVER_ERROR
            Reason::UnknownUser => ("unknown-user", Code::NotFound, 91), // RESOURCE_NOT_FOUND
            Reason::UserExists => ("user-exists", Code::AlreadyExists, 92), // DUPLICATE_RESOURCE
            Reason::Unauthenticated => ("unauthenticated", Code::Unauthenticated, 58), // SASL_AUTHENTICATION_FAILED
            Reason::Unsupported => ("unsupported", Code::Unimplemented, 35), // UNSUPPORTED_VERSION
            Reason::TimedOut => ("timed-out", Code::DeadlineExceeded, 7), // REQUEST_TIMED_OUT
            Reason::PermissionDenied => ("permission-denied", Code::PermissionDenied, 29), // TOPIC_AUTHORIZATION_FAILED
            Reason::InvalidTxnState => ("invalid-txn-state", Code::FailedPrecondition, 48), // INVALID_TXN_STATE
            Reason::ConcurrentTransactions => ("concurrent-transactions", Code::Unavailable, 51), // CONCURRENT_TRANSACTIONS
            Reason::InvalidProducerIdMapping => ("invalid-producer-id-mapping", Code::FailedPrecondition, 49), // INVALID_PRODUCER_ID_MAPPING
        }
    }

    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The gRPC status code of a refusal for this reason.
    pub fn grpc_code(self) -> Code {
        self.entry().1
    }

    /// The Kafka error code the Kafka port answers a refusal for this reason with: the code Kafka's broker
    /// gives the same failure, so Kafka clients retry what they would retry against Kafka.
    pub fn kafka_error_code(self) -> i16 {
        self.entry().2
    }

    /// The reason a wire word names; `None` for a word this version does not know.
    pub fn parse(word: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.as_str() == word)
    }

    /// A status for this reason: its gRPC code, `message`, and the reason in the details as an ErrorInfo.
    pub fn status(self, message: impl Into<String>) -> Status {
        let details = ErrorDetails::with_error_info(self.as_str(), ERROR_DOMAIN, []);
        Status::with_error_details(self.grpc_code(), message, details)
    }
}

/// The reason in `status`'s details: an ErrorInfo of rill's domain with a word this version knows.
pub fn reason_of(status: &Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    if info.domain != ERROR_DOMAIN {
        return None;
    }
    Reason::parse(&info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_wire_word_and_unknown_words_are_none() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::parse("cosmic-rays"), None);
        let mut words: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), Reason::ALL.len(), "every word names one reason");
    }

    /// docs/errors.md says it is this table: every reason has its row there, with its gRPC and Kafka codes.
    #[test]
    fn every_reason_has_its_row_in_the_error_docs() {
        let docs = include_str!("../../docs/errors.md");
        for reason in Reason::ALL {
            let row = docs
                .lines()
                .find(|line| line.starts_with(&format!("| `{}` |", reason.as_str())))
                .unwrap_or_else(|| panic!("docs/errors.md has no row for `{}`", reason.as_str()));
            let columns: Vec<&str> = row.split('|').map(str::trim).collect();
            let mut grpc = String::new();
            for (i, c) in format!("{:?}", reason.grpc_code()).chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    grpc.push('_');
                }
                grpc.push(c.to_ascii_uppercase());
            }
            assert_eq!(columns[2], grpc, "the gRPC code of `{}`", reason.as_str());
            let kafka = format!("({})", reason.kafka_error_code());
            assert!(columns[3].contains(&kafka), "the Kafka code of `{}` is {kafka}: {}", reason.as_str(), columns[3]);
        }
    }

    #[test]
    fn a_status_carries_its_reason_through_the_wire_encoding() {
        for reason in Reason::ALL {
            let status = reason.status("why, for people");
            assert_eq!(status.code(), reason.grpc_code());
            // As the other side sees it: rebuilt from the trailers.
            let http = status.into_http::<()>();
            let received = Status::from_header_map(http.headers()).expect("a status in the headers");
            assert_eq!(reason_of(&received), Some(reason));
            assert_eq!(received.message(), "why, for people");
        }
    }

    #[test]
    fn a_status_without_rills_error_info_has_no_reason() {
        assert_eq!(reason_of(&Status::unavailable("connection refused")), None);
        let other = Status::with_error_details(
            Code::Unavailable,
            "m",
            ErrorDetails::with_error_info("disk-full", "example.com", []),
        );
        assert_eq!(reason_of(&other), None, "another domain's words are not rill's");
    }
}
