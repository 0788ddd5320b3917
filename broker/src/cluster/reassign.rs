//! Where the replicas of a node being removed go, and which nodes vote in the controller quorum after a
//! membership change. Pure functions of the metadata, so the refusals and the plan are unit-tested here and the
//! controller leader (`membership.rs`) only carries them out.
//!
//! A moved replica goes to the alive member that holds the fewest replicas (counting the moves already
//! planned), the lowest id on a tie, never to a node that already holds the partition: replicas stay on
//! distinct nodes and the load spreads. The plan is refused, before anything changes, when a partition would
//! have fewer nodes than its replication factor, or when the node removed holds its only in-sync copy and is
//! not alive to hand it over.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::{ClusterMetadata, NodeState};
use super::peers::QUORUM_SIZES;

/// One replica of one partition moving from the removed node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaMove {
    pub topic: String,
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// Why a node cannot be removed as things stand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    #[error(
        "partition {partition} of topic {topic:?} has a replication factor of {replication_factor}, and without \
         node {node} only {available} alive node(s) could hold it ({nodes}); add a node first (rill cluster \
         add-node), or bring a fenced one back"
    )]
    TooFewNodes { topic: String, partition: u32, node: u64, replication_factor: usize, available: usize, nodes: String },
    #[error(
        "node {node} holds the only in-sync replica of partition {partition} of topic {topic:?} and is not alive \
         to hand it over; start it again so its replicas can be copied, then remove it"
    )]
    OnlyInSyncReplica { topic: String, partition: u32, node: u64 },
    #[error(
        "removing node {node} would leave {remaining} member(s), too few for the controller quorum of \
         {voters} voters (quorums have 1, 3 or 5 voters, and shrinking one below 3 would lose its fault \
         tolerance); add a node first"
    )]
    QuorumTooSmall { node: u64, remaining: usize, voters: usize },
    #[error("node {node} is the cluster's last member")]
    LastMember { node: u64 },
}

/// The moves that take every replica off `node`, over the alive `members` (the raft membership, `node` among
/// them).
pub fn plan_removal(
    metadata: &ClusterMetadata,
    node: u64,
    members: &BTreeSet<u64>,
) -> Result<Vec<ReplicaMove>, RemovalRefused> {
    let targets: Vec<u64> =
        members.iter().copied().filter(|id| *id != node && metadata.state_of(*id) == Some(NodeState::Alive)).collect();
    let mut load: BTreeMap<u64, usize> = targets.iter().map(|id| (*id, 0)).collect();
    for partition in metadata.topics.values().flat_map(|t| t.partitions.iter()) {
        for replica in &partition.replicas {
            if let Some(count) = load.get_mut(replica) {
                *count += 1;
            }
        }
    }
    let is_alive = metadata.state_of(node) == Some(NodeState::Alive);
    let mut moves = Vec::new();
    for (topic, placed) in &metadata.topics {
        for (index, partition) in placed.partitions.iter().enumerate() {
            if !partition.replicas.contains(&node) {
                continue;
            }
            let index = index as u32;
            if !is_alive && partition.isr == [node] {
                return Err(RemovalRefused::OnlyInSyncReplica { topic: topic.clone(), partition: index, node });
            }
            // A node that keeps the partition on as many racks first, then the least loaded.
            let to = load
                .iter()
                .filter(|(id, _)| !partition.replicas.contains(id))
                .min_by_key(|(id, count)| {
                    (!super::rebalance::keeps_racks(metadata, &partition.replicas, node, **id), **count, **id)
                })
                .map(|(id, _)| *id);
            let Some(to) = to else {
                let holders: Vec<u64> = targets.iter().copied().filter(|id| partition.replicas.contains(id)).collect();
                return Err(RemovalRefused::TooFewNodes {
                    topic: topic.clone(),
                    partition: index,
                    node,
                    replication_factor: partition.replicas.len(),
                    available: holders.len(),
                    nodes: join_ids(&holders),
                });
            };
            *load.entry(to).or_default() += 1;
            moves.push(ReplicaMove { topic: topic.clone(), partition: index, from: node, to });
        }
    }
    Ok(moves)
}

/// The largest allowed quorum that `member_count` nodes can form (0 for none).
pub fn voter_target(member_count: usize) -> usize {
    QUORUM_SIZES.iter().copied().filter(|size| *size <= member_count).max().unwrap_or(0)
}

/// Who votes once the membership is `members`: the current voters that stay (lowest ids first), topped up
/// with other members by ascending id, up to [`voter_target`]. Keeping voters where they are means a change
/// moves as few votes as it can.
pub fn voters_for(members: &BTreeSet<u64>, current_voters: &BTreeSet<u64>) -> BTreeSet<u64> {
    let target = voter_target(members.len());
    let staying = current_voters.iter().filter(|id| members.contains(id));
    let others = members.iter().filter(|id| !current_voters.contains(id));
    staying.chain(others).copied().take(target).collect()
}

/// Refuses a removal that would shrink the controller quorum below what it tolerates: a quorum of 3 or 5 must
/// keep at least 3 voters, a quorum of 1 its one.
pub fn check_quorum(node: u64, members: &BTreeSet<u64>, voters: &BTreeSet<u64>) -> Result<(), RemovalRefused> {
    let remaining = members.iter().filter(|id| **id != node).count();
    if remaining == 0 {
        return Err(RemovalRefused::LastMember { node });
    }
    if voter_target(remaining) < voters.len().min(3) {
        return Err(RemovalRefused::QuorumTooSmall { node, remaining, voters: voters.len() });
    }
    Ok(())
}

/// Why a partition cannot be moved onto the replica list asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentRefused {
    #[error("the new replica list is empty; name at least {min_insync_replicas} node id(s)")]
    Empty { min_insync_replicas: u32 },
    #[error("node {node} appears more than once in the new replica list {replicas}; each node holds one replica")]
    DuplicateNode { node: u64, replicas: String },
    #[error("node {node} is not a member of the cluster (alive members: {alive})")]
    UnknownNode { node: u64, alive: String },
    #[error(
        "node {node} is fenced (not heartbeating) and cannot copy the partition; start it again or pick one of \
         the alive members ({alive})"
    )]
    NodeNotAlive { node: u64, alive: String },
    #[error(
        "{count} replica(s) is fewer than topic {topic:?}'s min_insync_replicas of {min_insync_replicas}: every \
         acks=all produce would be refused; name at least {min_insync_replicas} node ids"
    )]
    TooFewReplicas { topic: String, count: usize, min_insync_replicas: u32 },
}

/// A partition's move onto `target`: the nodes that gain a replica, and those that lose theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentPlan {
    pub current: Vec<u64>,
    pub target: Vec<u64>,
    pub adding: Vec<u64>,
    pub dropping: Vec<u64>,
}

/// Checks `target` for the partition (unknown topics and partitions are the caller's to refuse: `Ok(None)`).
/// Every node that gains a replica must be alive to copy it; nodes that keep theirs may be down.
pub fn plan_reassignment(
    metadata: &ClusterMetadata,
    topic: &str,
    partition: u32,
    target: &[u64],
) -> Result<Option<ReassignmentPlan>, ReassignmentRefused> {
    let Some(placed) = metadata.topics.get(topic) else { return Ok(None) };
    let Some(current) = placed.partitions.get(partition as usize) else { return Ok(None) };
    let min_insync_replicas = placed.min_insync_replicas;
    if target.is_empty() {
        return Err(ReassignmentRefused::Empty { min_insync_replicas });
    }
    if let Some(node) = target.iter().enumerate().find(|(i, id)| target[..*i].contains(id)).map(|(_, id)| *id) {
        return Err(ReassignmentRefused::DuplicateNode { node, replicas: join_ids(target) });
    }
    let alive = join_ids(&metadata.alive_nodes());
    for node in target {
        match metadata.state_of(*node) {
            None => return Err(ReassignmentRefused::UnknownNode { node: *node, alive }),
            Some(NodeState::Fenced) if !current.replicas.contains(node) => {
                return Err(ReassignmentRefused::NodeNotAlive { node: *node, alive })
            }
            Some(_) => {}
        }
    }
    if (target.len() as u32) < min_insync_replicas {
        return Err(ReassignmentRefused::TooFewReplicas {
            topic: topic.to_owned(),
            count: target.len(),
            min_insync_replicas,
        });
    }
    Ok(Some(ReassignmentPlan {
        current: current.replicas.clone(),
        target: target.to_vec(),
        adding: target.iter().copied().filter(|id| !current.replicas.contains(id)).collect(),
        dropping: current.replicas.iter().copied().filter(|id| !target.contains(id)).collect(),
    }))
}

pub fn join_ids(ids: &[u64]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{fixtures, Command};

    fn cluster(alive: &[u64], topics: &[(&str, &[&[u64]])]) -> ClusterMetadata {
        fixtures::cluster(alive, topics, 1)
    }

    fn ids(list: &[u64]) -> BTreeSet<u64> {
        list.iter().copied().collect()
    }

    #[test]
    fn each_replica_moves_to_the_least_loaded_node_that_does_not_hold_the_partition() {
        let metadata = cluster(&[1, 2, 3, 4, 5], &[("t", &[&[2, 1, 3], &[1, 2, 4], &[3, 4, 5]])]);
        let moves = plan_removal(&metadata, 2, &ids(&[1, 2, 3, 4, 5])).expect("room for every replica");
        // Loads without node 2: 1→2, 3→2, 4→2, 5→1. Partition 0 holds 1 and 3: 5 (load 1) takes it, then
        // partition 1 holds 1 and 4: 3 and 5 are at 2, the lower id wins.
        let targets: Vec<(u32, u64)> = moves.iter().map(|m| (m.partition, m.to)).collect();
        assert_eq!(targets, vec![(0, 5), (1, 3)]);
        assert!(moves.iter().all(|m| m.from == 2 && m.topic == "t"));
    }

    #[test]
    fn a_removed_nodes_replica_goes_to_its_own_rack_or_a_new_one_before_the_least_loaded() {
        // Zones a {1, 2}, b {3, 4}; node 2 leaves. Partition [2, 3]: node 4 is least loaded but in zone b with 3,
        // so node 1 (zone a, as 2) takes it, and the partition still spans both zones.
        let mut metadata = cluster(&[1, 2, 3, 4], &[("t", &[&[2, 3], &[1, 3], &[1, 3]])]);
        for (node_id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
            let (address, rack) = (format!("h:{node_id}"), Some(rack.to_owned()));
            metadata.apply(&Command::MarkAlive { node_id, address, rack, at_ms: 2 });
        }
        let moves = plan_removal(&metadata, 2, &ids(&[1, 2, 3, 4])).expect("room");
        let targets: Vec<(u32, u64)> = moves.iter().map(|m| (m.partition, m.to)).collect();
        assert_eq!(targets, vec![(0, 1)]);
    }

    #[test]
    fn a_partition_with_no_spare_node_is_refused_naming_its_replication_factor() {
        let metadata = cluster(&[1, 2, 3], &[("orders", &[&[1, 2, 3]])]);
        let refused = plan_removal(&metadata, 2, &ids(&[1, 2, 3])).expect_err("RF 3 on 2 nodes");
        assert!(matches!(refused, RemovalRefused::TooFewNodes { replication_factor: 3, available: 2, .. }));
        assert!(refused.to_string().contains("replication factor of 3"), "{refused}");
        // A fenced node is no target either.
        let mut metadata = cluster(&[1, 2, 3, 4], &[("orders", &[&[1, 2, 3]])]);
        metadata.apply(&Command::Fence { node_id: 4, at_ms: 2, stopped_incarnation: None });
        assert!(plan_removal(&metadata, 2, &ids(&[1, 2, 3, 4])).is_err());
    }

    #[test]
    fn a_dead_node_holding_the_only_in_sync_copy_is_refused() {
        let mut metadata = cluster(&[1, 2, 3], &[("solo", &[&[2]])]);
        assert_eq!(plan_removal(&metadata, 2, &ids(&[1, 2, 3])).expect("alive: it hands over").len(), 1);
        metadata.apply(&Command::Fence { node_id: 2, at_ms: 2, stopped_incarnation: None });
        let refused = plan_removal(&metadata, 2, &ids(&[1, 2, 3])).expect_err("nobody else holds it");
        assert!(matches!(refused, RemovalRefused::OnlyInSyncReplica { partition: 0, .. }), "{refused}");
    }

    #[test]
    fn a_reassignment_adds_the_new_nodes_and_drops_the_old_ones() {
        let metadata = cluster(&[1, 2, 3, 4], &[("t", &[&[1, 2, 3]])]);
        let plan = plan_reassignment(&metadata, "t", 0, &[4, 1, 2]).expect("valid").expect("known partition");
        assert_eq!((plan.adding, plan.dropping), (vec![4], vec![3]));
        let same = plan_reassignment(&metadata, "t", 0, &[3, 2, 1]).expect("valid").expect("known partition");
        assert!(same.adding.is_empty() && same.dropping.is_empty(), "a new order only");
        assert_eq!(plan_reassignment(&metadata, "t", 1, &[1]), Ok(None), "no partition 1");
        assert_eq!(plan_reassignment(&metadata, "x", 0, &[1]), Ok(None), "no topic x");
    }

    #[test]
    fn bad_replica_lists_are_refused_saying_what_is_allowed() {
        let mut metadata = cluster(&[1, 2, 3, 4], &[("t", &[&[1, 2, 3]])]);
        metadata.topics.get_mut("t").expect("t").min_insync_replicas = 2;
        let refused = |target: &[u64]| plan_reassignment(&metadata, "t", 0, target).expect_err("refused");
        assert_eq!(refused(&[]), ReassignmentRefused::Empty { min_insync_replicas: 2 });
        assert_eq!(refused(&[1, 4, 1]), ReassignmentRefused::DuplicateNode { node: 1, replicas: "1,4,1".into() });
        assert_eq!(refused(&[1, 9]), ReassignmentRefused::UnknownNode { node: 9, alive: "1,2,3,4".into() });
        let too_few = refused(&[4]);
        assert!(too_few.to_string().contains("fewer than topic \"t\"'s min_insync_replicas of 2"), "{too_few}");
        metadata.apply(&Command::Fence { node_id: 4, at_ms: 2, stopped_incarnation: None });
        metadata.apply(&Command::Fence { node_id: 3, at_ms: 2, stopped_incarnation: None });
        let refused = |target: &[u64]| plan_reassignment(&metadata, "t", 0, target).expect_err("refused");
        assert!(matches!(refused(&[1, 4]), ReassignmentRefused::NodeNotAlive { node: 4, .. }));
        assert!(plan_reassignment(&metadata, "t", 0, &[3, 1]).is_ok(), "a down node may keep its replica");
    }

    #[test]
    fn a_node_without_replicas_moves_nothing() {
        let metadata = cluster(&[1, 2, 3, 4], &[("t", &[&[1, 3, 4]])]);
        assert_eq!(plan_removal(&metadata, 2, &ids(&[1, 2, 3, 4])), Ok(Vec::new()));
    }

    #[test]
    fn the_voters_are_the_largest_allowed_quorum_keeping_current_voters_first() {
        assert_eq!((voter_target(2), voter_target(4), voter_target(7)), (1, 3, 5));
        assert_eq!(voters_for(&ids(&[1, 2, 3, 4]), &ids(&[1, 2, 3])), ids(&[1, 2, 3]), "a 4th node stays a learner");
        assert_eq!(voters_for(&ids(&[1, 3, 4]), &ids(&[1, 2, 3])), ids(&[1, 3, 4]), "a learner replaces a voter");
        assert_eq!(voters_for(&ids(&[1, 2, 3, 4, 5]), &ids(&[1, 2, 3])), ids(&[1, 2, 3, 4, 5]));
        assert_eq!(voters_for(&ids(&[1, 2, 4, 5]), &ids(&[1, 2, 3, 4, 5])), ids(&[1, 2, 4]));
    }

    #[test]
    fn a_removal_that_shrinks_the_quorum_below_three_voters_is_refused() {
        let refused = check_quorum(2, &ids(&[1, 2, 3]), &ids(&[1, 2, 3])).expect_err("2 nodes cannot hold 3 votes");
        assert!(matches!(refused, RemovalRefused::QuorumTooSmall { remaining: 2, voters: 3, .. }));
        assert!(check_quorum(2, &ids(&[1, 2, 3, 4]), &ids(&[1, 2, 3])).is_ok());
        assert!(check_quorum(5, &ids(&[1, 2, 3, 4, 5]), &ids(&[1, 2, 3, 4, 5])).is_ok(), "5 voters may become 3");
        assert_eq!(check_quorum(1, &ids(&[1]), &ids(&[1])), Err(RemovalRefused::LastMember { node: 1 }));
    }
}
