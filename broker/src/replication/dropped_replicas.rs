//! Deletes this node's copy of a partition once the committed metadata no longer places a replica of it here:
//! after a completed move that left the node out, a cancelled move's added replica, `rill cluster remove-node`.
//! Kafka does the same with StopReplica (delete = true).
//!
//! What must stay true, since a copy deleted wrongly is acknowledged data lost:
//! - the decision is made from the metadata this node has applied (committed entries only), and only once the
//!   node has caught up with it (`Controller::has_caught_up`), on the metadata published since
//!   (`is_decided_on_current`): a restarted node's stale snapshot may not yet know that it was added back, or
//!   that the topic was re-created, or created at all;
//! - never while the node is a replica, an adding replica of a move under way, or the leader;
//! - a topic the metadata does not hold at all was deleted (every topic of a cluster node is opened from the
//!   metadata it applied, and a data dir's single-node topics are refused at its first start as a cluster node,
//!   `identity.rs`): caught up, the node has applied every entry up to the one that created it, so the topic's
//!   absence is a `DeleteTopic` this node applied while it was down, or before it restarted; its copy is
//!   deleted whole (Kafka's KRaft brokers delete such stray logs at start). Reserved topics (`__` names) never
//!   are;
//! - the deletion itself is crash-safe: the directory is renamed to `<topic>-<p>.deleted` first and removed
//!   after (`Log::delete`); a start removes a leftover `.deleted` directory (`registry.rs`).
//!
//! A node that holds no replica of a topic any more closes the whole topic here (its metadata file and every
//! partition directory go). One that still holds other partitions of it keeps an empty log in the dropped
//! partition's place, since a topic's partitions are indexed by number: the old records are gone, and a replica
//! added back later fetches from the leader's log start like any new one.

use crate::cluster::metadata::{ClusterMetadata, PartitionPlacement};
use crate::registry::RESERVED_PREFIX;

/// A local copy the metadata no longer places on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DroppedReplica {
    /// No partition of the topic is on this node any more.
    Topic(String),
    /// This partition is not, others of the topic are.
    Partition(String, u32),
    /// The metadata holds no topic of this name: it was deleted while this node was down.
    Deleted(String),
}

/// What this node holds of one topic: per partition, whether its log holds (or ever held) a record.
pub(super) struct LocalTopic {
    pub name: String,
    pub partition_holds_records: Vec<bool>,
}

/// Whether `me` is, or is about to be, a replica of the partition: listed in its replicas (a move under way
/// lists the replicas it adds there too), named by the move as added or as target, or its leader.
fn is_placed_on(me: u64, placed: &PartitionPlacement) -> bool {
    let is_moving_here =
        placed.reassignment.as_ref().is_some_and(|moving| moving.adding.contains(&me) || moving.target.contains(&me));
    placed.replicas.contains(&me) || placed.leader == Some(me) || is_moving_here
}

/// Whether deletions may be decided on `used`: this node `has_caught_up` (read first) and `used` is the metadata
/// published now (read after). A `used` read before the apply that caught the node up lacks what that apply
/// created, and a topic it lacks would be taken for deleted.
pub(super) fn is_decided_on_current(has_caught_up: bool, used: &ClusterMetadata, published: &ClusterMetadata) -> bool {
    has_caught_up && std::ptr::eq(used, published)
}

/// The local copies to delete, given what this node holds (`local`) and the metadata it has applied; nothing
/// unless it `has_caught_up`.
pub(super) fn dropped_replicas(
    me: u64,
    metadata: &ClusterMetadata,
    has_caught_up: bool,
    local: &[LocalTopic],
) -> Vec<DroppedReplica> {
    if !has_caught_up {
        return Vec::new();
    }
    let mut dropped = Vec::new();
    for topic in local {
        let Some(placed) = metadata.topics.get(&topic.name) else {
            if !topic.name.starts_with(RESERVED_PREFIX) {
                dropped.push(DroppedReplica::Deleted(topic.name.clone()));
            }
            continue;
        };
        if placed.partitions.len() != topic.partition_holds_records.len() {
            // Opened from another version of the placement than this one: decide on a later change.
            continue;
        }
        let is_anywhere_here = placed.partitions.iter().any(|p| is_placed_on(me, p));
        // The replicated committed offsets stay open: the group coordinator looks its partitions up by number.
        if !is_anywhere_here && !topic.name.starts_with(RESERVED_PREFIX) {
            dropped.push(DroppedReplica::Topic(topic.name.clone()));
            continue;
        }
        for (index, (p, holds_records)) in placed.partitions.iter().zip(&topic.partition_holds_records).enumerate() {
            if *holds_records && !is_placed_on(me, p) {
                dropped.push(DroppedReplica::Partition(topic.name.clone(), index as u32));
            }
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::TopicPlacement;
    use crate::cluster::reassignment_state::ReplicaReassignment;

    fn partition(replicas: &[u64], leader: u64, moving: Option<ReplicaReassignment>) -> PartitionPlacement {
        PartitionPlacement {
            replicas: replicas.to_vec(),
            leader: Some(leader),
            leader_epoch: 1,
            isr: replicas.to_vec(),
            reassignment: moving,
        }
    }

    fn metadata_with(name: &str, partitions: Vec<PartitionPlacement>) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        let placed = TopicPlacement {
            partitions,
            min_insync_replicas: 1,
            settings: crate::cluster::metadata::fixtures::topic_settings(),
            topic_id: None,
        };
        metadata.topics.insert(name.to_owned(), placed);
        metadata
    }

    fn local(name: &str, holds: &[bool]) -> Vec<LocalTopic> {
        vec![LocalTopic { name: name.to_owned(), partition_holds_records: holds.to_vec() }]
    }

    #[test]
    fn a_partition_moved_off_this_node_is_dropped_and_a_replica_kept() {
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, None), partition(&[3, 1], 3, None)]);
        assert_eq!(
            dropped_replicas(3, &metadata, true, &local("orders", &[true, true])),
            [DroppedReplica::Partition("orders".into(), 0)]
        );
        // An empty log in a dropped partition's place has nothing left to delete.
        assert!(dropped_replicas(3, &metadata, true, &local("orders", &[false, true])).is_empty());
    }

    #[test]
    fn a_topic_with_no_replica_left_here_is_dropped_whole() {
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, None), partition(&[2, 1], 2, None)]);
        assert_eq!(
            dropped_replicas(3, &metadata, true, &local("orders", &[true, false])),
            [DroppedReplica::Topic("orders".into())]
        );
    }

    /// A restarted node read the metadata of its snapshot (no `payments`), then applied the log entry creating
    /// `payments` and so caught up: decided on the old metadata, its copy of `payments` would look deleted.
    #[test]
    fn only_the_metadata_published_since_catching_up_is_decided_on() {
        let stale = std::sync::Arc::new(metadata_with("orders", vec![partition(&[3], 3, None)]));
        let mut applied = (*stale).clone();
        applied.topics.insert(
            "payments".into(),
            metadata_with("payments", vec![partition(&[3], 3, None)]).topics["payments"].clone(),
        );
        let published = std::sync::Arc::new(applied);
        assert!(!is_decided_on_current(true, &stale, &published), "read before the catch-up");
        assert!(!is_decided_on_current(false, &published, &published), "not caught up");
        assert!(is_decided_on_current(true, &published, &published));
        // What the stale metadata would have decided, and the published one does.
        let held: Vec<LocalTopic> =
            [local("orders", &[true]), local("payments", &[true])].into_iter().flatten().collect();
        assert_eq!(dropped_replicas(3, &stale, true, &held), [DroppedReplica::Deleted("payments".into())]);
        assert!(dropped_replicas(3, &published, true, &held).is_empty());
    }

    #[test]
    fn nothing_is_dropped_before_catching_up() {
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, None)]);
        assert!(dropped_replicas(3, &metadata, false, &local("orders", &[true])).is_empty());
        assert!(dropped_replicas(3, &metadata, false, &local("payments", &[true])).is_empty());
        // A local topic whose partition count differs from the metadata's is left for a later decision.
        assert!(dropped_replicas(3, &metadata, true, &local("orders", &[true, true])).is_empty());
    }

    #[test]
    fn a_topic_the_metadata_does_not_hold_was_deleted_unless_reserved() {
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, None)]);
        assert_eq!(
            dropped_replicas(1, &metadata, true, &local("payments", &[true, false])),
            [DroppedReplica::Deleted("payments".into())]
        );
        assert!(dropped_replicas(1, &metadata, true, &local("__consumer_offsets", &[true])).is_empty());
    }

    #[test]
    fn an_adding_replica_of_a_move_under_way_and_a_leader_are_never_dropped() {
        let moving = ReplicaReassignment { target: vec![3, 2], adding: vec![3], removing: vec![1] };
        let metadata = metadata_with("orders", vec![partition(&[1, 2, 3], 1, Some(moving.clone()))]);
        assert!(dropped_replicas(3, &metadata, true, &local("orders", &[true])).is_empty());
        // Even were the added replica missing from the list, the move names it.
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, Some(moving))]);
        assert!(dropped_replicas(3, &metadata, true, &local("orders", &[true])).is_empty());
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 3, None)]);
        assert!(dropped_replicas(3, &metadata, true, &local("orders", &[true])).is_empty());
    }

    #[test]
    fn a_cancelled_moves_added_replica_is_dropped() {
        // After CancelReassignment: the original replicas, no move.
        let metadata = metadata_with("orders", vec![partition(&[1, 2], 1, None), partition(&[3, 1], 3, None)]);
        assert_eq!(
            dropped_replicas(3, &metadata, true, &local("orders", &[true, true])),
            [DroppedReplica::Partition("orders".into(), 0)]
        );
    }

    #[test]
    fn the_committed_offsets_topic_is_never_closed_whole() {
        let metadata = metadata_with("__consumer_offsets", vec![partition(&[1, 2], 1, None)]);
        assert_eq!(
            dropped_replicas(3, &metadata, true, &local("__consumer_offsets", &[true])),
            [DroppedReplica::Partition("__consumer_offsets".into(), 0)]
        );
    }
}
