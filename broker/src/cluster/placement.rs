//! Where a new topic's replicas go: round-robin over the alive nodes, so leaderships (the first replica of
//! each partition) spread evenly, and every partition's replicas are distinct nodes. The round-robin starts at
//! the node that is the preferred leader of the fewest partitions already: otherwise every single-partition
//! topic would be led by the lowest node id, which would do all the leaders' work (Kafka starts at a random
//! node for the same reason; counting is deterministic and evens out small clusters faster).
//!
//! With racks (`--rack`, Kafka's `broker.rack`), the ring the round-robin walks takes the racks in turn (the
//! first node of each rack, then the second of each, ...), and a partition's replicas after its first skip nodes
//! of a rack the partition already has until it has one in every rack: each partition is on as many racks as
//! its replication factor allows, so losing a rack (a zone) loses no partition whose replication factor
//! exceeds one, even when racks hold unequal numbers of nodes. Nodes without a rack count as one rack of their
//! own. Without racks the ring is the nodes in id order and a partition's replicas are consecutive, as before.

use std::collections::{BTreeMap, BTreeSet};

use super::metadata::{PartitionPlacement, TopicPlacement};
use crate::error::{BrokerError, Result};
use crate::meta::TopicSettings;
use crate::topic_id::TopicId;

/// Kafka's `min.insync.replicas` default for a replicated topic: one replica may be down and produces with
/// acks all still succeed, yet every acknowledged record is on two nodes.
pub fn default_min_insync_replicas(replication_factor: u32) -> u32 {
    if replication_factor >= 3 {
        2
    } else {
        1
    }
}

/// Each node's rack, for the nodes that have one (`ClusterMetadata::racks`).
pub type Racks = BTreeMap<u64, String>;

/// Places `partition_count` partitions of `replication_factor` replicas on `alive` (ascending node ids), with
/// `racks`. On the ring of the nodes (`rack_ring`), partition `i` starts at `ring[(s + i) % n]`, where `ring[s]`
/// is the node with the fewest `preferred_leaderships` (the first on the ring among equals), and its other
/// replicas follow on the ring (`spread`); each starts with every replica in sync, the first leading at epoch 0.
pub fn place(
    partition_count: u32,
    replication_factor: Option<u32>,
    min_insync_replicas: Option<u32>,
    alive: &[u64],
    racks: &Racks,
    preferred_leaderships: &BTreeMap<u64, usize>,
    settings: TopicSettings,
) -> Result<TopicPlacement> {
    let replication_factor = replication_factor.unwrap_or(1);
    let alive_count = alive.len() as u32;
    if replication_factor == 0 {
        return Err(BrokerError::invalid("replication_factor", "must be at least 1"));
    }
    if replication_factor > alive_count {
        return Err(BrokerError::invalid(
            "replication_factor",
            format!(
                "{replication_factor} is more than the {alive_count} alive node(s) of the cluster; a partition's \
                 replicas must be on distinct nodes"
            ),
        ));
    }
    let min_insync_replicas = check_min_insync_replicas(min_insync_replicas, replication_factor)?;
    let ring = rack_ring(alive, racks);
    let start = (0..ring.len())
        .min_by_key(|&position| (preferred_leaderships.get(&ring[position]).copied().unwrap_or(0), position))
        .unwrap_or(0);
    let partitions = (0..partition_count as usize)
        .map(|index| {
            let replicas = spread(&ring, (start + index) % ring.len(), replication_factor as usize, racks);
            PartitionPlacement {
                leader: replicas.first().copied(),
                leader_epoch: 0,
                isr: replicas.clone(),
                replicas,
                reassignment: None,
            }
        })
        .collect();
    Ok(TopicPlacement { partitions, min_insync_replicas, settings, topic_id: Some(TopicId::random()) })
}

/// The nodes in the order placement walks them: one node of each rack in turn (racks by name, the nodes without
/// a rack last, nodes by id within a rack), so neighbours on the ring are in different racks wherever the
/// racks' sizes allow.
fn rack_ring(alive: &[u64], racks: &Racks) -> Vec<u64> {
    let mut by_rack: BTreeMap<(bool, &str), Vec<u64>> = BTreeMap::new();
    for &node in alive {
        let rack = racks.get(&node).map(String::as_str);
        by_rack.entry((rack.is_none(), rack.unwrap_or_default())).or_default().push(node);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest).flat_map(|depth| by_rack.values().filter_map(move |nodes| nodes.get(depth).copied())).collect()
}

/// `count` distinct nodes of `ring` from `first` on: each pass around the ring takes the next node of every
/// rack the partition does not have yet, so every rack is used before any is used twice.
fn spread(ring: &[u64], first: usize, count: usize, racks: &Racks) -> Vec<u64> {
    let rack_of = |node: &u64| racks.get(node).map(String::as_str);
    let rack_count = ring.iter().map(rack_of).collect::<BTreeSet<_>>().len();
    let mut chosen: Vec<u64> = Vec::with_capacity(count);
    let mut racks_used = BTreeSet::new();
    while chosen.len() < count.min(ring.len()) {
        let before = chosen.len();
        for step in 0..ring.len() {
            let node = ring[(first + step) % ring.len()];
            if chosen.len() == count || chosen.contains(&node) || racks_used.contains(&rack_of(&node)) {
                continue;
            }
            chosen.push(node);
            racks_used.insert(rack_of(&node));
            if racks_used.len() == rack_count {
                racks_used.clear();
            }
        }
        if chosen.len() == before {
            // Every rack left has no node the partition does not hold: any rack will do.
            racks_used.clear();
        }
    }
    chosen
}

/// `min_insync_replicas` as asked (`None`: the default for the replication factor), checked against it.
pub fn check_min_insync_replicas(min_insync_replicas: Option<u32>, replication_factor: u32) -> Result<u32> {
    let min_insync_replicas = min_insync_replicas.unwrap_or_else(|| default_min_insync_replicas(replication_factor));
    if min_insync_replicas == 0 || min_insync_replicas > replication_factor {
        return Err(BrokerError::invalid(
            "min_insync_replicas",
            format!("{min_insync_replicas} must be between 1 and the replication factor {replication_factor}"),
        ));
    }
    Ok(min_insync_replicas)
}

/// Partitions on the replicas an operator named (Kafka's manual assignment, `assignment[i]` for partition `i`,
/// the preferred leader first), each starting with every replica in sync. Refused (`replica_assignment`) unless
/// every partition names the same number of distinct alive nodes, `replication_factor` of them when given.
pub fn assigned(
    assignment: &[Vec<u64>],
    replication_factor: Option<u32>,
    alive: &[u64],
) -> Result<Vec<PartitionPlacement>> {
    let refuse = |reason: String| Err(BrokerError::invalid("replica_assignment", reason));
    let Some(first) = assignment.first() else { return refuse("it lists no partition".into()) };
    let replication_factor = replication_factor.unwrap_or(first.len() as u32);
    let mut partitions = Vec::with_capacity(assignment.len());
    for (index, replicas) in assignment.iter().enumerate() {
        if replicas.len() as u32 != replication_factor || replicas.is_empty() {
            return refuse(format!(
                "partition {index} lists {} replica(s): every partition needs the same replication factor, {}",
                replicas.len(),
                replication_factor.max(1)
            ));
        }
        let mut distinct = replicas.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != replicas.len() {
            return refuse(format!(
                "partition {index} lists a node twice in {replicas:?}: replicas are distinct nodes"
            ));
        }
        if let Some(absent) = replicas.iter().find(|id| !alive.contains(id)) {
            return refuse(format!(
                "partition {index} names node {absent}, which is not an alive node of the cluster (alive: {alive:?})"
            ));
        }
        partitions.push(PartitionPlacement {
            leader: replicas.first().copied(),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas: replicas.clone(),
            reassignment: None,
        });
    }
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DurabilityPolicy;

    fn settings() -> TopicSettings {
        TopicSettings {
            segment_bytes: 1 << 20,
            durability: DurabilityPolicy::Interval,
            flush_interval_ms: 1000,
            max_batch_bytes: 1 << 20,
            retention_ms: None,
            retention_bytes: None,
            cleanup: crate::meta::Cleanup::default(),
            segment_ms: crate::meta::DEFAULT_SEGMENT_MS,
            timestamps: crate::meta::MessageTimestamps::default(),
            compression: crate::meta::TopicCompression::Producer,
            compression_levels: crate::meta::CompressionLevels::default(),
            schema_ids: crate::meta::SchemaIdChecks::default(),
            takes_dead_letters: false,
            throttled_replicas: Default::default(),
            own_keys: None,
        }
    }

    #[test]
    fn replicas_go_round_robin_on_distinct_nodes_and_leaderships_spread() {
        let placed = place(6, Some(3), None, &[1, 2, 3], &Racks::new(), &BTreeMap::new(), settings()).expect("fits");
        assert_eq!(placed.min_insync_replicas, 2);
        let leaders: Vec<u64> = placed.partitions.iter().filter_map(|p| p.leader).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for p in &placed.partitions {
            let mut distinct = p.replicas.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            assert_eq!(p.isr, p.replicas);
        }
    }

    #[test]
    fn a_replication_factor_above_the_alive_nodes_is_refused_naming_both_counts() {
        let err = place(1, Some(3), None, &[1, 2], &Racks::new(), &BTreeMap::new(), settings())
            .expect_err("too few nodes")
            .to_string();
        assert!(err.contains('3') && err.contains("2 alive"), "{err}");
        let err = place(1, Some(2), Some(3), &[1, 2], &Racks::new(), &BTreeMap::new(), settings())
            .expect_err("min isr above rf")
            .to_string();
        assert!(err.contains("min_insync_replicas"), "{err}");
        assert_eq!(
            place(1, Some(2), None, &[1, 2], &Racks::new(), &BTreeMap::new(), settings())
                .expect("fits")
                .min_insync_replicas,
            1
        );
    }

    #[test]
    fn single_partition_topics_take_turns_at_leading_starting_with_the_least_loaded_node() {
        let mut led = BTreeMap::new();
        let mut leaders = Vec::new();
        for _ in 0..7 {
            let placed = place(1, Some(3), None, &[1, 2, 3], &Racks::new(), &led, settings()).expect("fits");
            let leader = placed.partitions[0].leader.expect("a leader");
            assert_eq!(placed.partitions[0].replicas.len(), 3);
            *led.entry(leader).or_insert(0) += 1;
            leaders.push(leader);
        }
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3, 1]);
        // A node that joins later is preferred until it has caught up with the others.
        led.insert(4, 0);
        let placed = place(2, Some(2), None, &[1, 2, 3, 4], &Racks::new(), &led, settings()).expect("fits");
        let leaders: Vec<u64> = placed.partitions.iter().filter_map(|p| p.leader).collect();
        assert_eq!(leaders, vec![4, 1]);
        assert_eq!(placed.partitions[0].replicas, vec![4, 1]);
    }

    fn racks(pairs: &[(u64, &str)]) -> Racks {
        pairs.iter().map(|(node, rack)| (*node, (*rack).to_owned())).collect()
    }

    fn racks_of(replicas: &[u64], racks: &Racks) -> BTreeSet<String> {
        replicas.iter().map(|node| racks.get(node).cloned().unwrap_or_default()).collect()
    }

    #[test]
    fn with_racks_every_partition_is_on_as_many_racks_as_its_replicas_allow() {
        let zones = racks(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let placed = place(12, Some(3), None, &[1, 2, 3, 4, 5, 6], &zones, &BTreeMap::new(), settings()).expect("fits");
        for p in &placed.partitions {
            assert_eq!(racks_of(&p.replicas, &zones).len(), 3, "{:?}", p.replicas);
        }
        // Leaderships still go round every node, as without racks.
        let mut leaders: Vec<u64> = placed.partitions.iter().filter_map(|p| p.leader).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
        // Without racks the same call places consecutive nodes, as it always has.
        let plain =
            place(2, Some(3), None, &[1, 2, 3, 4, 5, 6], &Racks::new(), &BTreeMap::new(), settings()).expect("fits");
        assert_eq!(plain.partitions[1].replicas, vec![2, 3, 4]);
    }

    #[test]
    fn unequal_racks_still_give_each_partition_a_replica_in_the_small_rack() {
        // Three nodes in one zone, one in another: a partition of two replicas needs that one node.
        let zones = racks(&[(1, "a"), (2, "a"), (3, "a"), (4, "b")]);
        let placed = place(8, Some(2), None, &[1, 2, 3, 4], &zones, &BTreeMap::new(), settings()).expect("fits");
        for p in &placed.partitions {
            assert_eq!(racks_of(&p.replicas, &zones).len(), 2, "{:?}", p.replicas);
        }
        // More replicas than racks: every rack first, then any distinct node.
        let placed = place(4, Some(3), None, &[1, 2, 3, 4], &zones, &BTreeMap::new(), settings()).expect("fits");
        for p in &placed.partitions {
            let mut distinct = p.replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{:?}", p.replicas);
            assert!(p.replicas.contains(&4), "{:?}", p.replicas);
        }
        // Nodes without a rack are a rack of their own.
        let partial = racks(&[(1, "a"), (2, "a")]);
        let placed = place(4, Some(2), None, &[1, 2, 3, 4], &partial, &BTreeMap::new(), settings()).expect("fits");
        for p in &placed.partitions {
            assert_eq!(racks_of(&p.replicas, &partial).len(), 2, "{:?}", p.replicas);
        }
    }

    #[test]
    fn a_manual_assignment_is_taken_as_named_or_refused_saying_which_partition_breaks_which_rule() {
        let placed = assigned(&[vec![3, 1], vec![2, 3]], None, &[1, 2, 3]).expect("valid");
        assert_eq!(
            (placed[0].leader, placed[1].replicas.clone(), placed[1].isr.clone()),
            (Some(3), vec![2, 3], vec![2, 3])
        );
        let refusal =
            |assignment: &[Vec<u64>], rf| assigned(assignment, rf, &[1, 2, 3]).expect_err("refused").to_string();
        assert!(refusal(&[vec![1, 2], vec![3]], None).contains("partition 1 lists 1 replica(s)"));
        assert!(refusal(&[vec![1, 2]], Some(3)).contains("same replication factor, 3"));
        assert!(refusal(&[vec![1, 1]], None).contains("twice"));
        assert!(refusal(&[vec![1, 4]], None).contains("node 4, which is not an alive node"));
        assert!(refusal(&[], None).contains("no partition"));
        assert!(refusal(&[vec![]], None).contains("partition 0 lists 0 replica(s)"));
    }
}
