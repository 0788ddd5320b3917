//! Where replicas go to spread them evenly over the alive nodes (`rill cluster rebalance`, typically after
//! `add-node`). Pure: the controller leader carries the plan out one partition at a time with
//! [`reassignment`](super::reassignment)'s steps.
//!
//! The plan moves one replica at a time from the node holding the most (alive nodes only) to the one holding
//! the fewest, until no two alive nodes differ by more than one replica, never onto a node that already holds
//! the partition. It prefers a replica that is not the partition's preferred leader, so leaderships stay where
//! they are where it can. Replicas on fenced nodes stay: they cannot hand over what only they may hold.
//! With racks, a move never narrows the racks a partition spans (`keeps_racks`): the replica goes to a node of
//! its own rack or of a rack the partition is not in yet, so a rebalance never undoes what placement spread
//! over zones (with unequal racks it may then end with nodes further apart than one).
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
        // Least loaded: lowest count, lowest id. It takes a replica from the most loaded node that has one it may
        // take (highest count, lowest id on a tie): with racks the most loaded may have none.
        let Some((&to, &fewest)) = load.iter().min_by_key(|(id, count)| (**count, **id)) else { break };
        let mut givers: Vec<(u64, usize)> = load.iter().map(|(id, count)| (*id, *count)).collect();
        givers.sort_by_key(|(id, count)| (std::cmp::Reverse(*count), *id));
        let chosen = givers.into_iter().take_while(|(_, count)| *count > fewest + 1).find_map(|(from, _)| {
            let key = pick_replica(&targets, metadata, from, to)?;
            Some((from, key))
        });
        let Some((from, key)) = chosen else { break };
        if let Some(replicas) = targets.get_mut(&key) {
            for id in replicas.iter_mut() {
                if *id == from {
                    *id = to;
                }
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

/// The partition whose replica on `from` goes to `to`: the first (in topic, partition order) that `to` does not
/// hold, whose racks the move keeps, and whose preferred leader `from` is not; else the first of those it leads.
fn pick_replica(
    targets: &BTreeMap<(String, u32), Vec<u64>>,
    metadata: &ClusterMetadata,
    from: u64,
    to: u64,
) -> Option<(String, u32)> {
    let candidates =
        targets.iter().filter(|(_, r)| r.contains(&from) && !r.contains(&to) && keeps_racks(metadata, r, from, to));
    let mut preferred = None;
    for (key, replicas) in candidates {
        if replicas.first() != Some(&from) {
            return Some(key.clone());
        }
        preferred.get_or_insert_with(|| key.clone());
    }
    preferred
}

/// Whether moving `replicas`' replica on `from` to `to` leaves the partition on as many racks: `to` is in
/// `from`'s rack, or in one none of the other replicas is in. Nodes without a rack are one rack.
pub fn keeps_racks(metadata: &ClusterMetadata, replicas: &[u64], from: u64, to: u64) -> bool {
    let rack_of_to = metadata.rack_of(to);
    rack_of_to == metadata.rack_of(from)
        || replicas.iter().filter(|id| **id != from).all(|id| metadata.rack_of(*id) != rack_of_to)
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
    fn a_move_never_narrows_the_racks_a_partition_spans() {
        // Zones a {1, 2} and b {3}, then node 4 joins zone a: every partition spans a and b, so node 3's
        // replicas stay where they are and node 4 takes its share from nodes 1 and 2 only.
        let mut metadata = cluster(&[1, 2, 3, 4], &[&[1, 3], &[3, 2], &[2, 3], &[3, 1], &[1, 3], &[3, 2]]);
        for (node_id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "a")] {
            let (address, rack) = (format!("h:{node_id}"), Some(rack.to_owned()));
            metadata.apply(&Command::MarkAlive { node_id, address, rack, at_ms: 2 });
        }
        let plan = plan_rebalance(&metadata);
        assert!(!plan.is_empty(), "node 4 takes replicas");
        for target in &plan {
            assert!(target.replicas.contains(&3), "zone b dropped from {target:?}");
        }
        assert_eq!(loads(&metadata, &plan)[&4], 2, "{plan:?}");
        assert!(keeps_racks(&metadata, &[1, 3], 1, 4) && !keeps_racks(&metadata, &[1, 3], 3, 4));
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
