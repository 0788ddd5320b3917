//! Where replicas go to spread them evenly over the alive nodes (`rill cluster rebalance`, typically after
//! `add-node`). Pure: the controller leader carries the plan out one partition at a time with
//! [`reassignment`](super::reassignment)'s steps.
//!
//! The plan moves one replica at a time from the node holding the most (alive nodes only) to the one holding
//! the fewest, until no two alive nodes differ by more than one replica, never onto a node that already holds
//! the partition. It prefers a replica that is not the partition's preferred leader, so leaderships stay where
//! they are where it can. Replicas on fenced nodes stay: they cannot hand over what only they may hold.
//! Bounded: at most one move per replica in the cluster.

use std::collections::BTreeMap;

use super::metadata::ClusterMetadata;

/// One partition's new replica list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTarget {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<u64>,
}

/// The partitions whose replicas change, in (topic, partition) order, each with its whole new list.
pub fn plan_rebalance(metadata: &ClusterMetadata) -> Vec<PartitionTarget> {
    let alive = metadata.alive_nodes();
    if alive.len() < 2 {
        return Vec::new();
    }
    let mut load: BTreeMap<u64, usize> = alive.iter().map(|id| (*id, 0)).collect();
    let mut targets: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for (topic, placed) in &metadata.topics {
        for (index, partition) in placed.partitions.iter().enumerate() {
            for replica in &partition.replicas {
                if let Some(count) = load.get_mut(replica) {
                    *count += 1;
                }
            }
            targets.insert((topic.clone(), index as u32), partition.replicas.clone());
        }
    }
    let original = targets.clone();
    let move_limit: usize = load.values().sum();
    for _ in 0..move_limit {
        // Most loaded: highest count, lowest id on a tie; least loaded: lowest count, lowest id.
        let Some((&from, &most)) = load.iter().max_by_key(|(id, count)| (**count, std::cmp::Reverse(**id))) else {
            break;
        };
        let Some((&to, &fewest)) = load.iter().min_by_key(|(id, count)| (**count, **id)) else { break };
        if most <= fewest + 1 {
            break;
        }
        let candidates = targets.iter_mut().filter(|(_, r)| r.contains(&from) && !r.contains(&to));
        let (mut not_preferred, mut preferred) = (None, None);
        for (_, replicas) in candidates {
            if replicas.first() == Some(&from) {
                preferred.get_or_insert(replicas);
            } else {
                not_preferred = Some(replicas);
                break;
            }
        }
        let Some(replicas) = not_preferred.or(preferred) else { break };
        for id in replicas.iter_mut() {
            if *id == from {
                *id = to;
            }
        }
        *load.entry(from).or_default() -= 1;
        *load.entry(to).or_default() += 1;
    }
    targets
        .into_iter()
        .filter(|(key, replicas)| original.get(key) != Some(replicas))
        .map(|((topic, partition), replicas)| PartitionTarget { topic, partition, replicas })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{fixtures, Command};

    fn cluster(alive: &[u64], partitions: &[&[u64]]) -> ClusterMetadata {
        fixtures::cluster(alive, &[("t", partitions)], 2)
    }

    fn loads(metadata: &ClusterMetadata, plan: &[PartitionTarget]) -> BTreeMap<u64, usize> {
        let mut lists: Vec<Vec<u64>> = metadata.topics["t"].partitions.iter().map(|p| p.replicas.clone()).collect();
        for target in plan {
            lists[target.partition as usize] = target.replicas.clone();
        }
        let mut load = BTreeMap::new();
        for id in lists.iter().flatten() {
            *load.entry(*id).or_insert(0) += 1;
        }
        load
    }

    #[test]
    fn an_added_node_takes_an_even_share_without_moving_preferred_leaders() {
        let metadata = cluster(&[1, 2, 3, 4], &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
        let plan = plan_rebalance(&metadata);
        // 9 replicas over 4 nodes: 2,2,3,2. Node 1 (most, lowest id) gives node 4 its replica of partition 1
        // (where it is not the preferred leader), then node 2 its replica of partition 0.
        let expected = vec![
            PartitionTarget { topic: "t".into(), partition: 0, replicas: vec![1, 4, 3] },
            PartitionTarget { topic: "t".into(), partition: 1, replicas: vec![2, 3, 4] },
        ];
        assert_eq!(plan, expected);
        assert_eq!(loads(&metadata, &plan).into_values().collect::<Vec<_>>(), vec![2, 2, 3, 2]);
        for target in &plan {
            let before = &metadata.topics["t"].partitions[target.partition as usize].replicas;
            assert_eq!(target.replicas.first(), before.first(), "the preferred leader stays");
        }
    }

    #[test]
    fn a_balanced_cluster_and_fenced_nodes_move_nothing() {
        assert!(plan_rebalance(&cluster(&[1, 2, 3], &[&[1, 2], &[2, 3], &[3, 1]])).is_empty());
        let mut metadata = cluster(&[1, 2, 3, 4], &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
        metadata.apply(&Command::Fence { node_id: 4, at_ms: 2, stopped_incarnation: None });
        assert!(plan_rebalance(&metadata).is_empty(), "nothing goes to a fenced node");
    }

    #[test]
    fn replicas_stay_on_distinct_nodes_and_the_spread_ends_within_one() {
        let metadata = cluster(&[1, 2, 3, 4, 5], &[&[1, 2], &[1, 2], &[1, 2], &[1, 2], &[1, 3]]);
        let plan = plan_rebalance(&metadata);
        for target in &plan {
            let mut ids = target.replicas.clone();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), target.replicas.len(), "{target:?}");
        }
        let loads: Vec<usize> = loads(&metadata, &plan).into_values().collect();
        assert_eq!(loads.len(), 5, "every alive node holds some: {loads:?}");
        assert!(loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0) <= 1, "{loads:?}");
    }
}
