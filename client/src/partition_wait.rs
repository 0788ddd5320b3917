//! Which refusals of a call about one partition are a passing state of that partition, waited out with a
//! metadata refresh and a backoff, rather than an answer.
//!
//! Why: on a cluster a partition is added through the controller, and each node applies the change when its
//! copy of the metadata catches up. A consumer group's coordinator hands the new partitions to a member as soon
//! as it has applied the change, so the member's first calls for them can reach a node that has not (`unknown
//! partition`), a node whose metadata names no leader yet (`not-leader` without one), or the new leader before it
//! has opened the partition's log (`not-leader` naming itself). Kafka's consumer retries all of these after a
//! metadata refresh; so does this client. The decision rests on the typed [`Error`] (the broker's reason), never
//! on message text.
//!
//! A partition that does not exist must still be an error, and soon: an `unknown partition` is waited for only
//! while the topic's latest metadata the client has seen lists the partition (a lagging node answered), or for
//! [`UNLISTED_PARTITION_WAIT`] at most when it does not (the metadata the client asked may itself be behind).

use std::time::{Duration, Instant};

use crate::error::Error;

/// How long a partition the topic's metadata does not list is waited for after its first `unknown partition`:
/// long enough for a node that lags the controller to apply the change that added it (a few heartbeats), short
/// enough that a partition that was never created is reported within seconds.
pub(crate) const UNLISTED_PARTITION_WAIT: Duration = Duration::from_secs(5);

/// One partition's wait through refusals, for one lookup (ListOffsets) or one assigned partition's fetches.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PartitionWait {
    /// When a refusal as unknown first came while the client's metadata did not list the partition.
    unlisted_since: Option<Instant>,
}

impl PartitionWait {
    /// Whether `err`, a refusal of a call about this partition at `now`, is a passing state of the partition and
    /// worth a retry after a metadata refresh and a backoff. `is_listed`: whether the topic's latest metadata
    /// the client has seen lists the partition.
    ///
    /// Passing: `not-leader` (with or without a leader named: none elected yet, or one not ready), a leader
    /// epoch mismatch (one of the two sides' metadata is behind), `offset-not-available` (a new leader learning
    /// its high watermark), and `unknown partition` as the module docs say. Anything else is for the caller's
    /// own policy ([`Error::is_retriable`] for transport failures).
    pub(crate) fn is_passing(&mut self, err: &Error, is_listed: bool, now: Instant) -> bool {
        match err {
            Error::NotLeader { .. } | Error::LeaderEpochMismatch { .. } | Error::OffsetNotAvailable { .. } => true,
            Error::UnknownPartition { .. } if is_listed => true,
            Error::UnknownPartition { .. } => {
                let since = *self.unlisted_since.get_or_insert(now);
                now.saturating_duration_since(since) < UNLISTED_PARTITION_WAIT
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RequestContext;

    fn unknown() -> Error {
        Error::UnknownPartition { topic: "orders".into(), partition: 2 }
    }

    #[test]
    fn a_partition_without_a_ready_leader_is_waited_for() {
        let now = Instant::now();
        let mut wait = PartitionWait::default();
        let no_leader = Error::NotLeader { message: "it has no leader right now".into(), leader_address: None };
        // The leader named is the node asked, which has not opened the partition's log yet.
        let not_ready = Error::NotLeader { message: "x".into(), leader_address: Some("127.0.0.1:9".into()) };
        for err in [
            no_leader,
            not_ready,
            Error::OffsetNotAvailable { message: "x".into() },
            Error::LeaderEpochMismatch { message: "x".into() },
        ] {
            // Whatever the listing and however long: these are bounded by the caller's deadline, not here.
            assert!(wait.is_passing(&err, false, now + Duration::from_secs(3600)), "{err:?}");
        }
    }

    #[test]
    fn an_unknown_partition_the_metadata_lists_is_a_lagging_node() {
        let now = Instant::now();
        let mut wait = PartitionWait::default();
        assert!(wait.is_passing(&unknown(), true, now));
        assert!(wait.is_passing(&unknown(), true, now + UNLISTED_PARTITION_WAIT * 10));
    }

    #[test]
    fn an_unknown_partition_the_metadata_does_not_list_is_waited_for_a_bounded_time() {
        let start = Instant::now();
        let mut wait = PartitionWait::default();
        assert!(wait.is_passing(&unknown(), false, start));
        assert!(wait.is_passing(&unknown(), false, start + UNLISTED_PARTITION_WAIT / 2));
        // Listed meanwhile: a lagging node, waited for whatever the time.
        assert!(wait.is_passing(&unknown(), true, start + UNLISTED_PARTITION_WAIT * 2));
        // Never listed: given up once the wait, counted from the first refusal, has passed.
        assert!(!wait.is_passing(&unknown(), false, start + UNLISTED_PARTITION_WAIT));
    }

    #[test]
    fn answers_about_the_request_are_not_waited_out() {
        let now = Instant::now();
        let mut wait = PartitionWait::default();
        for err in [
            Error::UnknownTopic { topic: "orders".into() },
            Error::InvalidArgument { message: "x".into() },
            Error::OffsetOutOfRange { message: "x".into() },
            Error::PermissionDenied { message: "x".into() },
            Error::Broker { code: tonic::Code::NotFound, message: "x".into() },
        ] {
            assert!(!wait.is_passing(&err, true, now), "{err:?}");
        }
    }

    /// Statuses as the broker sends them: the reason decides, whatever the words.
    #[test]
    fn the_brokers_reason_decides_not_the_message() {
        use rill_protocol::reason::Reason;
        let now = Instant::now();
        let mut wait = PartitionWait::default();
        let map = |reason: Reason, message: &str| {
            Error::from_status(&reason.status(message), RequestContext::partition("orders", 2))
        };
        let lagging =
            map(Reason::UnknownPartition, "unknown partition 2 of topic \"orders\": it has partitions 0 to 0");
        assert_eq!(lagging, unknown());
        assert!(wait.is_passing(&lagging, true, now));
        let leaderless = map(Reason::NotLeader, "node 3 does not lead partition 2; it has no leader right now");
        assert!(wait.is_passing(&leaderless, false, now), "{leaderless:?}");
        let worded = map(Reason::UnknownTopic, "partition 2 has no leader right now");
        assert!(!wait.is_passing(&worded, true, now), "{worded:?}");
    }
}
