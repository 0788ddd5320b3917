//! Where a new topic's replicas go: round-robin over the alive nodes, so leaderships (the first replica of
//! each partition) spread evenly, and every partition's replicas are distinct nodes. The round-robin starts at
//! the node that is the preferred leader of the fewest partitions already: otherwise every single-partition
//! topic would be led by the lowest node id, which would do all the leaders' work (Kafka starts at a random
//! node for the same reason; counting is deterministic and evens out small clusters faster).

use std::collections::BTreeMap;

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

/// Places `partition_count` partitions of `replication_factor` replicas on `alive` (ascending node ids).
/// Partition `i`'s replicas are `alive[(s + i) % n]`, `alive[(s + i + 1) % n]`, ..., where `alive[s]` is the
/// node with the fewest `preferred_leaderships` (the lowest id among equals); each starts with every replica
/// in sync, the first leading at epoch 0.
pub fn place(
    partition_count: u32,
    replication_factor: Option<u32>,
    min_insync_replicas: Option<u32>,
    alive: &[u64],
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
    let start = (0..alive.len())
        .min_by_key(|&position| (preferred_leaderships.get(&alive[position]).copied().unwrap_or(0), position))
        .unwrap_or(0);
    let partitions = (0..partition_count as usize)
        .map(|index| {
            let replicas: Vec<u64> =
                (0..replication_factor as usize).map(|j| alive[(start + index + j) % alive.len()]).collect();
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
        }
    }

    #[test]
    fn replicas_go_round_robin_on_distinct_nodes_and_leaderships_spread() {
        let placed = place(6, Some(3), None, &[1, 2, 3], &BTreeMap::new(), settings()).expect("fits");
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
        let err =
            place(1, Some(3), None, &[1, 2], &BTreeMap::new(), settings()).expect_err("too few nodes").to_string();
        assert!(err.contains('3') && err.contains("2 alive"), "{err}");
        let err = place(1, Some(2), Some(3), &[1, 2], &BTreeMap::new(), settings())
            .expect_err("min isr above rf")
            .to_string();
        assert!(err.contains("min_insync_replicas"), "{err}");
        assert_eq!(
            place(1, Some(2), None, &[1, 2], &BTreeMap::new(), settings()).expect("fits").min_insync_replicas,
            1
        );
    }

    #[test]
    fn single_partition_topics_take_turns_at_leading_starting_with_the_least_loaded_node() {
        let mut led = BTreeMap::new();
        let mut leaders = Vec::new();
        for _ in 0..7 {
            let placed = place(1, Some(3), None, &[1, 2, 3], &led, settings()).expect("fits");
            let leader = placed.partitions[0].leader.expect("a leader");
            assert_eq!(placed.partitions[0].replicas.len(), 3);
            *led.entry(leader).or_insert(0) += 1;
            leaders.push(leader);
        }
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3, 1]);
        // A node that joins later is preferred until it has caught up with the others.
        led.insert(4, 0);
        let placed = place(2, Some(2), None, &[1, 2, 3, 4], &led, settings()).expect("fits");
        let leaders: Vec<u64> = placed.partitions.iter().filter_map(|p| p.leader).collect();
        assert_eq!(leaders, vec![4, 1]);
        assert_eq!(placed.partitions[0].replicas, vec![4, 1]);
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
