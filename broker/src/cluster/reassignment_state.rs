//! A partition reassignment as the replicated metadata holds it, so that every node lists the moves under way
//! and a new controller leader finishes the ones its predecessor started (Kafka's KRaft keeps the adding and
//! removing replicas on the partition record for the same reason, KIP-455).
//!
//! While a partition moves, its `replicas` are the original list, in its order, followed by the replicas being
//! added, and its [`ReplicaReassignment`] holds the target list (preferred leader first), the replicas being added
//! and those being removed. Three commands change it, each applied whole or not at all:
//! - `BeginReassignment`: the adding replicas join `replicas` (out of the ISR); they copy through normal
//!   replication and the leader adds them to the ISR as any follower;
//! - `CompleteReassignment`, once [`PartitionPlacement::is_reassignment_ready`]: the replicas become the target,
//!   the ISR keeps the target's members, and a leader left out hands over, at the next epoch, to the first
//!   in-sync replica of the target (alive first);
//! - `CancelReassignment`: the replicas go back to the original list, the ISR keeps the original's members, and a
//!   leader among the adding replicas hands over to the first in-sync original one. Refused when no original
//!   replica is in sync: what only the new replicas hold would be lost.
//!
//! Why the target is kept beside the adding and removing lists: Kafka's record holds `replicas` as the target
//! followed by the removing replicas, so a cancel restores the original set but not its order (its preferred
//! leader may change). Keeping `replicas` in the original order and the target apart restores both exactly.

use serde::{Deserialize, Serialize};

use super::metadata::{ClusterMetadata, PartitionPlacement};
use super::reassign::join_ids;

/// A move under way, on the partition it moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReassignment {
    /// The replica list asked for, the preferred leader first.
    pub target: Vec<u64>,
    /// Target replicas the partition did not have: they copy it, then must join the ISR.
    pub adding: Vec<u64>,
    /// Original replicas the target leaves out: they go when the move completes.
    pub removing: Vec<u64>,
}

/// Why a move cannot be cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    #[error("no partition {partition} of topic {topic:?}")]
    NoSuchPartition { topic: String, partition: u32 },
    #[error("partition {partition} of topic {topic:?} is not being moved: nothing to cancel")]
    NotMoving { topic: String, partition: u32 },
    #[error(
        "partition {partition} of topic {topic:?} cannot go back to its original replicas ({original}): none of \
         them is in sync (ISR {isr}), so records only the new replicas hold would be lost; let the move finish, \
         or bring an original replica back in sync first"
    )]
    OriginalOutOfSync { topic: String, partition: u32, original: String, isr: String },
}

impl PartitionPlacement {
    /// The replicas the partition had before its move (all of them when it is not moving), in their order.
    pub fn original_replicas(&self) -> Vec<u64> {
        match &self.reassignment {
            None => self.replicas.clone(),
            Some(moving) => self.replicas.iter().copied().filter(|id| !moving.adding.contains(id)).collect(),
        }
    }

    /// Whether the move may complete now: every adding replica is in the ISR, and at least one target replica
    /// is (a move that only drops replicas waits for a target replica in sync, so nothing acknowledged is lost).
    pub fn is_reassignment_ready(&self) -> bool {
        self.reassignment.as_ref().is_some_and(|moving| {
            moving.adding.iter().all(|id| self.isr.contains(id)) && moving.target.iter().any(|id| self.isr.contains(id))
        })
    }

    /// Kafka's view of a move: every replica it has (the target's, then those leaving), the adding, the removing.
    pub fn reassignment_view(&self) -> Option<(Vec<u64>, &[u64], &[u64])> {
        let moving = self.reassignment.as_ref()?;
        let mut replicas = moving.target.clone();
        replicas.extend(&moving.removing);
        Some((replicas, &moving.adding, &moving.removing))
    }

    /// Hands the leadership over when the leader is not in `kept`: to the first replica (in `replicas` order)
    /// that is in the ISR and alive, else the first in the ISR, at the next epoch.
    fn keep_leader_among(&mut self, kept: &[u64], alive: &[u64]) {
        let Some(leader) = self.leader else { return };
        if kept.contains(&leader) {
            return;
        }
        let alive_in_sync = self.replicas.iter().copied().find(|id| self.isr.contains(id) && alive.contains(id));
        self.leader = alive_in_sync.or_else(|| self.isr.first().copied());
        self.leader_epoch += 1;
    }
}

impl ClusterMetadata {
    /// Every partition being moved, by topic and partition.
    pub fn reassignments(&self) -> impl Iterator<Item = (&str, u32, &PartitionPlacement)> {
        self.topics.iter().flat_map(|(name, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.reassignment.is_some())
                .map(move |(index, p)| (name.as_str(), index as u32, p))
        })
    }

    /// Whether any partition is being moved.
    pub fn has_reassignments(&self) -> bool {
        self.reassignments().next().is_some()
    }

    /// Whether the move of `topic`/`partition` may be cancelled now (what `CancelReassignment` checks).
    pub fn can_cancel_reassignment(&self, topic: &str, partition: u32) -> Result<(), CancelRefused> {
        let p = self
            .partition(topic, partition)
            .ok_or_else(|| CancelRefused::NoSuchPartition { topic: topic.to_owned(), partition })?;
        if p.reassignment.is_none() {
            return Err(CancelRefused::NotMoving { topic: topic.to_owned(), partition });
        }
        let original = p.original_replicas();
        if !p.isr.iter().any(|id| original.contains(id)) {
            return Err(CancelRefused::OriginalOutOfSync {
                topic: topic.to_owned(),
                partition,
                original: join_ids(&original),
                isr: join_ids(&p.isr),
            });
        }
        Ok(())
    }

    /// `BeginReassignment`: refused (false) for an unknown partition, one already moving, or a target that is
    /// empty, names a node twice or names a removed node. The proposer checked the rest (`reassign.rs`).
    pub(super) fn begin_reassignment(&mut self, topic: &str, partition: u32, target: &[u64]) -> bool {
        let has_duplicates = target.iter().enumerate().any(|(i, id)| target[..i].contains(id));
        if target.is_empty() || has_duplicates || target.iter().any(|id| self.removed_nodes.contains(id)) {
            return false;
        }
        let Some(p) = self.partition_mut(topic, partition) else { return false };
        if p.reassignment.is_some() {
            return false;
        }
        let adding: Vec<u64> = target.iter().copied().filter(|id| !p.replicas.contains(id)).collect();
        let removing: Vec<u64> = p.replicas.iter().copied().filter(|id| !target.contains(id)).collect();
        p.replicas.extend(&adding);
        p.reassignment = Some(ReplicaReassignment { target: target.to_vec(), adding, removing });
        true
    }

    /// `CompleteReassignment`: applied only when the move is ready.
    pub(super) fn complete_reassignment(&mut self, topic: &str, partition: u32) -> bool {
        let alive = self.alive_nodes();
        let Some(p) = self.partition_mut(topic, partition) else { return false };
        if !p.is_reassignment_ready() {
            return false;
        }
        let Some(moving) = p.reassignment.take() else { return false };
        p.isr.retain(|id| moving.target.contains(id));
        p.replicas = moving.target;
        let kept = p.replicas.clone();
        p.keep_leader_among(&kept, &alive);
        true
    }

    /// `CancelReassignment`: applied only when [`ClusterMetadata::can_cancel_reassignment`] allows it.
    pub(super) fn cancel_reassignment(&mut self, topic: &str, partition: u32) -> bool {
        if self.can_cancel_reassignment(topic, partition).is_err() {
            return false;
        }
        let alive = self.alive_nodes();
        let Some(p) = self.partition_mut(topic, partition) else { return false };
        let original = p.original_replicas();
        p.reassignment = None;
        p.isr.retain(|id| original.contains(id));
        p.replicas = original;
        let kept = p.replicas.clone();
        p.keep_leader_among(&kept, &alive);
        true
    }

    fn partition_mut(&mut self, topic: &str, partition: u32) -> Option<&mut PartitionPlacement> {
        self.topics.get_mut(topic)?.partitions.get_mut(partition as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::{fixtures, Command};

    fn begin(target: &[u64]) -> Command {
        Command::BeginReassignment { topic: "t".into(), partition: 0, target: target.to_vec() }
    }

    fn complete() -> Command {
        Command::CompleteReassignment { topic: "t".into(), partition: 0 }
    }

    fn cancel() -> Command {
        Command::CancelReassignment { topic: "t".into(), partition: 0 }
    }

    fn in_sync(metadata: &mut ClusterMetadata, isr: &[u64]) {
        let p = metadata.partition("t", 0).expect("placed");
        let (leader, leader_epoch) = (p.leader.expect("a leader"), p.leader_epoch);
        let alter = Command::AlterIsr { topic: "t".into(), partition: 0, leader, leader_epoch, isr: isr.to_vec() };
        assert!(metadata.apply(&alter).changed, "isr {isr:?}");
    }

    fn state(metadata: &ClusterMetadata) -> (Vec<u64>, Vec<u64>, Option<u64>, u32) {
        let p = metadata.partition("t", 0).expect("placed");
        (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch)
    }

    #[test]
    fn a_move_adds_its_replicas_then_completes_once_they_are_in_sync() {
        let mut metadata = fixtures::cluster(&[1, 2, 3, 4], &[("t", &[&[1, 2, 3]])], 2);
        assert!(metadata.apply(&begin(&[4, 2, 3])).changed);
        assert!(!metadata.apply(&begin(&[4, 1, 2])).changed, "one move at a time per partition");
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!(p.replicas, [1, 2, 3, 4], "the original order, then the adding replicas");
        assert_eq!(
            p.reassignment,
            Some(ReplicaReassignment { target: vec![4, 2, 3], adding: vec![4], removing: vec![1] })
        );
        assert_eq!(p.reassignment_view().expect("moving").0, [4, 2, 3, 1], "Kafka's list: target, then removing");
        assert!(!metadata.apply(&complete()).changed, "node 4 is not in sync yet");
        in_sync(&mut metadata, &[1, 2, 3, 4]);
        assert!(metadata.apply(&complete()).changed);
        // Node 1 led and left: the first in-sync replica of the target leads at the next epoch.
        assert_eq!(state(&metadata), (vec![4, 2, 3], vec![2, 3, 4], Some(4), 1));
        assert!(!metadata.has_reassignments());
        assert!(!metadata.apply(&complete()).changed, "nothing left to complete");
    }

    #[test]
    fn a_cancel_restores_the_original_list_in_its_order_and_keeps_leadership_on_it() {
        let mut metadata = fixtures::cluster(&[1, 2, 3, 4, 5], &[("t", &[&[3, 1, 2]])], 2);
        assert!(metadata.apply(&begin(&[4, 5, 1])).changed);
        in_sync(&mut metadata, &[3, 1, 2, 4]);
        // A preferred leader election moved the leadership onto an adding replica meanwhile.
        let p = metadata.topics.get_mut("t").expect("t").partitions.get_mut(0).expect("0");
        (p.leader, p.leader_epoch) = (Some(4), 1);
        assert!(metadata.apply(&cancel()).changed);
        assert_eq!(state(&metadata), (vec![3, 1, 2], vec![3, 1, 2], Some(3), 2));
        assert!(!metadata.has_reassignments());
        assert_eq!(
            metadata.can_cancel_reassignment("t", 0),
            Err(CancelRefused::NotMoving { topic: "t".into(), partition: 0 })
        );
        assert!(!metadata.apply(&cancel()).changed);
    }

    #[test]
    fn a_cancel_that_would_keep_no_in_sync_copy_is_refused() {
        let mut metadata = fixtures::cluster(&[1, 2, 3], &[("t", &[&[1]])], 1);
        assert!(metadata.apply(&begin(&[2])).changed);
        in_sync(&mut metadata, &[1, 2]);
        // Node 1 is fenced: out of the ISR, its leadership to node 2, which only the new list holds.
        metadata.apply(&Command::Fence { node_id: 1, at_ms: 2, stopped_incarnation: None });
        assert_eq!(state(&metadata), (vec![1, 2], vec![2], Some(2), 1));
        let refused = metadata.can_cancel_reassignment("t", 0).expect_err("no original replica in sync");
        assert!(refused.to_string().contains("original replicas (1)") && refused.to_string().contains("ISR 2"));
        assert!(!metadata.apply(&cancel()).changed);
        assert!(metadata.apply(&complete()).changed, "the move can still finish");
        assert_eq!(state(&metadata), (vec![2], vec![2], Some(2), 1));
    }

    #[test]
    fn bad_targets_and_unknown_partitions_begin_nothing() {
        let mut metadata = fixtures::cluster(&[1, 2, 3], &[("t", &[&[1, 2]])], 1);
        metadata.apply(&Command::RemoveNode { node_id: 3 });
        for target in [&[][..], &[1, 1], &[1, 3]] {
            assert!(!metadata.apply(&begin(target)).changed, "{target:?}");
        }
        let unknown = Command::BeginReassignment { topic: "t".into(), partition: 5, target: vec![1] };
        assert!(!metadata.apply(&unknown).changed);
        assert_eq!(
            metadata.can_cancel_reassignment("x", 0),
            Err(CancelRefused::NoSuchPartition { topic: "x".into(), partition: 0 })
        );
    }

    #[test]
    fn a_shrinking_move_waits_for_a_target_replica_in_sync() {
        let mut metadata = fixtures::cluster(&[1, 2, 3], &[("t", &[&[1, 2, 3]])], 1);
        in_sync(&mut metadata, &[1, 2]);
        assert!(metadata.apply(&begin(&[3])).changed);
        assert!(!metadata.apply(&complete()).changed, "node 3 is out of sync: dropping 1 and 2 would lose records");
        in_sync(&mut metadata, &[1, 2, 3]);
        assert!(metadata.apply(&complete()).changed);
        assert_eq!(state(&metadata), (vec![3], vec![3], Some(3), 1));
    }

    #[test]
    fn a_move_under_way_survives_a_snapshot_and_an_older_snapshot_loads_without_one() {
        let mut metadata = fixtures::cluster(&[1, 2, 3], &[("t", &[&[1, 2]])], 1);
        metadata.apply(&begin(&[3, 2]));
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&metadata).expect("encodes")).expect("decodes");
        assert_eq!(restored, metadata);
        assert_eq!(restored.reassignments().map(|(t, p, _)| (t, p)).collect::<Vec<_>>(), [("t", 0)]);
        // A partition record written before moves were replicated has no `reassignment` field.
        let old = r#"{"cluster_id":"c","nodes":{},"topics":{"t":{"partitions":[{"replicas":[1,2],"leader":1,
            "leader_epoch":3,"isr":[1,2]}],"min_insync_replicas":1,"settings":{"segment_bytes":1048576,
            "durability":"interval","flush_interval_ms":1000,"max_batch_bytes":1048576,"retention_ms":null,
            "retention_bytes":null}}}}"#;
        let old: ClusterMetadata = serde_json::from_str(old).expect("an older snapshot loads");
        let p = old.partition("t", 0).expect("placed");
        assert_eq!((p.reassignment.clone(), p.replicas.clone(), p.leader_epoch), (None, vec![1, 2], 3));
        // And a partition not moving is written as before, so an older node could still read it.
        let written = serde_json::to_string(&old).expect("encodes");
        assert!(!written.contains("reassignment"), "{written}");
    }
}
