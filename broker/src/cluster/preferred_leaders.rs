//! Preferred leader election: which partitions to hand back to their preferred leader (the first replica),
//! on demand (`rill cluster elect-leaders`) or when the controller leader finds leadership out of balance.
//! Pure functions of the metadata; [`leader_balance`](super::leader_balance) carries them out as one
//! [`Command::ElectPreferredLeaders`](super::metadata::Command::ElectPreferredLeaders) per run.
//!
//! After a failover the leadership stays where it moved, so a node that restarts leads nothing and the others
//! lead more than their share. Kafka's rule decides when to move it back: a node is out of balance when, of
//! the partitions it is the preferred leader of, more than `leader_imbalance_per_broker_percentage` percent
//! are led by another node (or by none). Only those nodes' partitions move, and only where the preferred
//! replica is alive and in sync, so an election never waits on a catch-up or puts data at stake.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::{ClusterMetadata, PreferredNotElected};
use crate::error::BrokerError;

/// One partition's leadership moving to its preferred replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderMove {
    pub topic: String,
    pub partition: u32,
    /// The leader before, `None` when the partition had none.
    pub from: Option<u64>,
    pub to: u64,
}

/// A partition asked about whose preferred replica cannot lead now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotMoved {
    pub topic: String,
    pub partition: u32,
    pub reason: PreferredNotElected,
}

/// Which partitions an on-demand election looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionScope<'a> {
    All,
    Topic(&'a str),
    Partition(&'a str, u32),
    /// Kafka's ElectLeaders: the partitions it names (each checked as `Partition` is).
    Partitions(&'a [(String, u32)]),
}

/// An on-demand election: the moves, and the partitions not led by their preferred replica that stay so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectionPlan {
    pub moves: Vec<LeaderMove>,
    pub not_moved: Vec<NotMoved>,
}

/// The partitions in `scope` (an unknown topic or partition refused) whose preferred replica may lead now.
pub fn plan_election(metadata: &ClusterMetadata, scope: ElectionScope<'_>) -> Result<ElectionPlan, BrokerError> {
    let partitions: Vec<(String, u32)> = match scope {
        ElectionScope::All => all_partitions(metadata).collect(),
        ElectionScope::Topic(topic) => {
            let placed = metadata.topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
            (0..placed.partitions.len() as u32).map(|p| (topic.to_owned(), p)).collect()
        }
        ElectionScope::Partition(topic, partition) => {
            check_exists(metadata, topic, partition)?;
            vec![(topic.to_owned(), partition)]
        }
        ElectionScope::Partitions(partitions) => {
            for (topic, partition) in partitions {
                check_exists(metadata, topic, *partition)?;
            }
            partitions.to_vec()
        }
    };
    let mut plan = ElectionPlan::default();
    for (topic, partition) in partitions {
        match metadata.can_elect_preferred(&topic, partition) {
            Ok(to) => {
                let from = metadata.partition(&topic, partition).and_then(|p| p.leader);
                plan.moves.push(LeaderMove { topic, partition, from, to });
            }
            Err(PreferredNotElected::AlreadyLeader { .. }) => {}
            Err(reason) => plan.not_moved.push(NotMoved { topic, partition, reason }),
        }
    }
    Ok(plan)
}

/// The nodes over Kafka's imbalance threshold: of the partitions each is the preferred leader of, more than
/// `threshold_percent` percent are not led by it.
pub fn imbalanced_nodes(metadata: &ClusterMetadata, threshold_percent: u32) -> BTreeSet<u64> {
    // (preferred of, not led) per node.
    let mut counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for placed in metadata.topics.values().flat_map(|t| t.partitions.iter()) {
        let Some(preferred) = placed.replicas.first() else { continue };
        let count = counts.entry(*preferred).or_default();
        count.0 += 1;
        if placed.leader != Some(*preferred) {
            count.1 += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, (preferred_of, not_led))| not_led * 100 > preferred_of * u64::from(threshold_percent))
        .map(|(node, _)| node)
        .collect()
}

/// The automatic run: the partitions of the out-of-balance nodes whose preferred replica may lead now. Empty
/// (and so no command at all) when leadership is in balance.
pub fn plan_rebalance(metadata: &ClusterMetadata, threshold_percent: u32) -> Vec<LeaderMove> {
    let imbalanced = imbalanced_nodes(metadata, threshold_percent);
    if imbalanced.is_empty() {
        return Vec::new();
    }
    let Ok(plan) = plan_election(metadata, ElectionScope::All) else { return Vec::new() };
    plan.moves.into_iter().filter(|m| imbalanced.contains(&m.to)).collect()
}

fn all_partitions(metadata: &ClusterMetadata) -> impl Iterator<Item = (String, u32)> + '_ {
    metadata
        .topics
        .iter()
        .flat_map(|(name, placed)| (0..placed.partitions.len() as u32).map(move |p| (name.clone(), p)))
}

fn check_exists(metadata: &ClusterMetadata, topic: &str, partition: u32) -> Result<(), BrokerError> {
    let placed = metadata.topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
    if partition as usize >= placed.partitions.len() {
        return Err(BrokerError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
            partition_count: placed.partitions.len() as u32,
        });
    }
    Ok(())
}

fn unknown_topic(topic: &str) -> BrokerError {
    BrokerError::UnknownTopic { topic: topic.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{fixtures, Command};

    /// Nodes 1..=3 alive, topic `t` with the given replica lists, each led by its first replica at epoch 0.
    fn cluster(partitions: &[&[u64]]) -> ClusterMetadata {
        fixtures::cluster(&[1, 2, 3], &[("t", partitions)], 1)
    }

    fn leaders(metadata: &ClusterMetadata) -> Vec<(Option<u64>, u32)> {
        metadata.topics["t"].partitions.iter().map(|p| (p.leader, p.leader_epoch)).collect()
    }

    fn elect_all(partitions: u32) -> Command {
        Command::ElectPreferredLeaders { partitions: (0..partitions).map(|p| ("t".to_owned(), p)).collect() }
    }

    /// Node 1 fails over (fenced: its partition goes to 2 at epoch 1) and comes back, out of the ISR.
    fn after_failover_of_node_1() -> ClusterMetadata {
        let mut metadata = cluster(&[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
        metadata.apply(&Command::Fence { node_id: 1, at_ms: 2, stopped_incarnation: None });
        metadata.apply(&Command::MarkAlive { node_id: 1, address: "h:1".into(), rack: None, at_ms: 3 });
        metadata
    }

    #[test]
    fn the_preferred_replica_leads_again_at_the_next_epoch_once_back_in_sync() {
        let mut metadata = after_failover_of_node_1();
        assert_eq!(leaders(&metadata), vec![(Some(2), 1), (Some(2), 0), (Some(3), 0)]);
        assert!(!metadata.apply(&elect_all(3)).changed, "node 1 is alive but out of the ISR: nothing moves");
        let rejoined =
            Command::AlterIsr { topic: "t".into(), partition: 0, leader: 2, leader_epoch: 1, isr: vec![2, 3, 1] };
        assert!(metadata.apply(&rejoined).changed);
        assert!(metadata.apply(&elect_all(3)).changed);
        assert_eq!(leaders(&metadata), vec![(Some(1), 2), (Some(2), 0), (Some(3), 0)], "only partition 0 moved");
        assert!(!metadata.apply(&elect_all(3)).changed, "already preferred everywhere: a second run is a no-op");
    }

    #[test]
    fn a_fenced_preferred_replica_is_never_elected_and_unknown_partitions_are_skipped() {
        let mut metadata = cluster(&[&[1, 2, 3]]);
        metadata.apply(&Command::Fence { node_id: 1, at_ms: 2, stopped_incarnation: None });
        assert_eq!(metadata.can_elect_preferred("t", 0), Err(PreferredNotElected::NotAlive { preferred: 1 }));
        let command =
            Command::ElectPreferredLeaders { partitions: vec![("t".into(), 0), ("t".into(), 9), ("x".into(), 0)] };
        assert!(!metadata.apply(&command).changed);
        assert_eq!(leaders(&metadata), vec![(Some(2), 1)]);
    }

    #[test]
    fn replicas_are_reordered_only_as_a_permutation_of_the_current_ones() {
        let mut metadata = cluster(&[&[1, 2, 3]]);
        let order =
            |replicas: &[u64]| Command::OrderReplicas { topic: "t".into(), partition: 0, replicas: replicas.to_vec() };
        assert!(!metadata.apply(&order(&[3, 2])).changed, "a replica missing");
        assert!(!metadata.apply(&order(&[3, 2, 2, 1])).changed, "a duplicate");
        assert!(!metadata.apply(&order(&[3, 2, 4])).changed, "another node");
        assert!(metadata.apply(&order(&[3, 1, 2])).changed);
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.replicas.clone(), p.leader, p.leader_epoch), (vec![3, 1, 2], Some(1), 0), "leadership stays");
        assert_eq!(metadata.can_elect_preferred("t", 0), Ok(3));
    }

    #[test]
    fn an_on_demand_plan_names_the_moves_and_why_the_others_stay() {
        let metadata = after_failover_of_node_1();
        let plan = plan_election(&metadata, ElectionScope::All).expect("known scope");
        assert!(plan.moves.is_empty(), "{plan:?}");
        let expected =
            NotMoved { topic: "t".into(), partition: 0, reason: PreferredNotElected::NotInSync { preferred: 1 } };
        assert_eq!(plan.not_moved, vec![expected]);
        assert!(matches!(plan_election(&metadata, ElectionScope::Topic("x")), Err(BrokerError::UnknownTopic { .. })));
        assert!(matches!(
            plan_election(&metadata, ElectionScope::Partition("t", 3)),
            Err(BrokerError::UnknownPartition { partition_count: 3, .. })
        ));
        let one = plan_election(&metadata, ElectionScope::Partition("t", 1)).expect("known partition");
        assert_eq!(one, ElectionPlan::default(), "partition 1 is led by its preferred replica");
    }

    #[test]
    fn only_nodes_over_the_imbalance_threshold_get_their_leadership_back() {
        // Node 1 prefers partitions 0..4 and leads 3 of them: 25% not led.
        let mut metadata = cluster(&[&[1, 2, 3], &[1, 3, 2], &[1, 2, 3], &[1, 3, 2], &[2, 3, 1]]);
        let moved =
            Command::AlterIsr { topic: "t".into(), partition: 0, leader: 1, leader_epoch: 0, isr: vec![1, 2, 3] };
        metadata.apply(&moved);
        metadata.topics.get_mut("t").expect("t").partitions[0].leader = Some(2);
        assert_eq!(imbalanced_nodes(&metadata, 10), BTreeSet::from([1]));
        assert!(imbalanced_nodes(&metadata, 25).is_empty(), "exactly at the threshold is in balance");
        let moves = plan_rebalance(&metadata, 10);
        assert_eq!(moves, vec![LeaderMove { topic: "t".into(), partition: 0, from: Some(2), to: 1 }]);
        assert!(plan_rebalance(&metadata, 25).is_empty());
        assert!(plan_rebalance(&cluster(&[&[1, 2, 3]]), 0).is_empty(), "balanced: nothing to do at any threshold");
    }
}
