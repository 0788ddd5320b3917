//! Why the broker refused a request, as a machine-readable word beside the gRPC status.
//!
//! A status code alone does not say what a client can do: UNAVAILABLE is both "the broker is shutting down" and
//! "its disk is full", RESOURCE_EXHAUSTED both "this batch is too large" and "too many topics". The broker puts
//! one of these reasons in the status's metadata under [`REASON_KEY`] (`broker/src/error.rs`, the one place
//! its errors become statuses) and the client decides retries and wording from it, never from the message
//! text, which is for people and may change.

/// The gRPC metadata key (a response header or trailer) that carries a [`Reason`].
pub const REASON_KEY: &str = "rill-reason";

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
    /// A count limit (topics, groups, members): the same request is refused until something is deleted.
    LimitReached,
    /// The node called does not lead the partition (any more): refresh the metadata and send to the leader,
    /// whose id and address the status's metadata carries when known ([`LEADER_ID_KEY`], [`LEADER_ADDRESS_KEY`]).
    NotLeader,
    /// The partition has fewer in-sync replicas than its topic's `min_insync_replicas`: retry later.
    NotEnoughReplicas,
}

/// Metadata keys beside a [`Reason::NotLeader`]: the partition's leader as the node called knows it.
pub const LEADER_ID_KEY: &str = "rill-leader-id";
pub const LEADER_ADDRESS_KEY: &str = "rill-leader-address";

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::DiskFull,
        Reason::ShuttingDown,
        Reason::TooLarge,
        Reason::LimitReached,
        Reason::NotLeader,
        Reason::NotEnoughReplicas,
    ];

    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DiskFull => "disk-full",
            Reason::ShuttingDown => "shutting-down",
            Reason::TooLarge => "too-large",
            Reason::LimitReached => "limit-reached",
            Reason::NotLeader => "not-leader",
            Reason::NotEnoughReplicas => "not-enough-replicas",
        }
    }

    /// The reason a wire word names; `None` for a word this version does not know.
    pub fn parse(word: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.as_str() == word)
    }
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
    }
}
