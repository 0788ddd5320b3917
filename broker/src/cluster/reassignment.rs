//! Moving one partition onto a replica list the operator names (`rill topic reassign`, Kafka's
//! `kafka-reassign-partitions.sh`), carried out by the controller leader in the order `remove-node` uses, so
//! no acknowledged record depends on a replica that is leaving at any point:
//! 1. the list is checked ([`reassign::plan_reassignment`]) before anything changes;
//! 2. each new node becomes a replica (`AddReplica`), copies the partition through normal replication and
//!    joins the ISR; the call waits for all of them;
//! 3. the replicas take the new order (`OrderReplicas`), the first named being the preferred leader;
//! 4. each node left out leaves the replica set and ISR (`DropReplica`); where it led, the first in-sync
//!    replica of the new order leads at the next epoch, and its ACKS_ALL produces in flight fail with
//!    `not-leader` for the client to retry there.
//!
//! `rill cluster rebalance` runs these steps for each partition [`rebalance`] moves, one after the other.
//!
//! A leader that stays keeps the leadership (as in Kafka); a preferred leader election moves it to the first
//! replica. One change at a time: a reassignment, an add-node or a remove-node under way refuses another.
//! Interrupted after step 2 it leaves extra replicas, never fewer; running it again finishes it.
//!
//! Kafka's AlterPartitionReassignments ([`Controller::start_reassignments`]) checks its partitions at once,
//! answers, and moves them in a task of its own, one after the other, holding the one-change lock; every move
//! under way, from there, the CLI or a rebalance, is listed in [`OngoingReassignments`] (Kafka's
//! ListPartitionReassignments) while it runs. That list lives in the controller leader's memory: a controller
//! failover stops the moves it held (extra replicas stay, as after a timeout) and the new leader lists none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::membership::{refused, REASSIGNMENT_TIMEOUT};
use super::metadata::Command;
use super::reassign::{self, join_ids, ReassignmentRefused};
use super::rebalance;
use super::{Controller, NodeId};
use crate::error::BrokerError;

/// What a reassignment did.
pub struct PartitionReassigned {
    pub previous: Vec<NodeId>,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: u32,
}

/// A partition being moved, as Kafka's ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// Every replica it has while it moves: the target's, then those leaving.
    pub replicas: Vec<NodeId>,
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
}

/// The partitions being moved, or queued to move, by this node as controller leader.
#[derive(Default)]
pub(crate) struct OngoingReassignments(Mutex<BTreeMap<(String, u32), OngoingReassignment>>);

impl OngoingReassignments {
    fn insert(&self, topic: &str, partition: u32, plan: &reassign::ReassignmentPlan) {
        let mut replicas = plan.target.clone();
        replicas.extend(&plan.dropping);
        let ongoing = OngoingReassignment { replicas, adding: plan.adding.clone(), removing: plan.dropping.clone() };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert((topic.to_owned(), partition), ongoing);
    }

    fn remove(&self, topic: &str, partition: u32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&(topic.to_owned(), partition));
    }

    /// Every partition being moved, by topic and partition.
    pub fn list(&self) -> BTreeMap<(String, u32), OngoingReassignment> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn contains(&self, topic: &str, partition: u32) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(topic.to_owned(), partition))
    }
}

/// Takes a partition off the list when its move ends, whichever way.
struct Listed<'a> {
    ongoing: &'a OngoingReassignments,
    topic: &'a str,
    partition: u32,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.ongoing.remove(self.topic, self.partition);
    }
}

/// Why one partition of an AlterPartitionReassignments was not started.
#[derive(Debug)]
pub enum StartRefused {
    /// No such topic or partition (`unknown-topic` / `unknown-partition`).
    Unknown(BrokerError),
    /// The replica list breaks a rule (Kafka's INVALID_REPLICA_ASSIGNMENT).
    Invalid(ReassignmentRefused),
}

fn busy() -> BrokerError {
    refused(
        "another reassignment or rebalance, or a node being added or removed, is under way on the controller \
         leader; wait for it to finish (rill topic describe shows the replicas as they move), then try again",
    )
}

impl From<ReassignmentRefused> for BrokerError {
    fn from(refusal: ReassignmentRefused) -> Self {
        match refusal {
            ReassignmentRefused::UnknownNode { node, alive } => {
                BrokerError::UnknownNode { node_id: node, members: alive }
            }
            ReassignmentRefused::NodeNotAlive { .. } => refused(refusal.to_string()),
            other => BrokerError::invalid("replicas", other.to_string()),
        }
    }
}

impl Controller {
    /// On the controller leader: moves `topic`/`partition` onto `target`, the preferred leader first.
    pub(crate) async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        target: Vec<NodeId>,
    ) -> Result<PartitionReassigned, BrokerError> {
        let Ok(_one_change_at_a_time) = self.membership_change.try_lock() else { return Err(busy()) };
        self.move_partition(topic, partition, target).await
    }

    /// On the controller leader: checks each `(topic, partition, target)` now and moves those that pass in a
    /// task of its own, one after the other, as [`Controller::reassign_partition`] does each; answers, in the
    /// order asked, whether each was started. A list that breaks a rule is refused alone; those that pass are
    /// refused together (`membership-refused`) while another change runs.
    pub(crate) fn start_reassignments(
        self: &Arc<Self>,
        targets: Vec<(String, u32, Vec<NodeId>)>,
    ) -> Result<Vec<Result<(), StartRefused>>, BrokerError> {
        // A list that breaks a rule is refused for that rule, even while another change runs.
        let metadata = self.metadata();
        let checked: Vec<_> = targets
            .into_iter()
            .map(|(topic, partition, target)| {
                let plan = match reassign::plan_reassignment(&metadata, &topic, partition, &target) {
                    Ok(Some(plan)) => Ok(plan),
                    Ok(None) => Err(StartRefused::Unknown(self.unknown_partition(&topic, partition))),
                    Err(refusal) => Err(StartRefused::Invalid(refusal)),
                };
                (topic, partition, plan)
            })
            .collect();
        let mut started = Vec::new();
        let mut one_change_at_a_time = None;
        if checked.iter().any(|(_, _, plan)| plan.is_ok()) {
            let Ok(guard) = Arc::clone(&self.membership_change).try_lock_owned() else { return Err(busy()) };
            one_change_at_a_time = Some(guard);
        }
        let answers = checked
            .into_iter()
            .map(|(topic, partition, plan)| {
                let plan = plan?;
                self.ongoing_reassignments.insert(&topic, partition, &plan);
                started.push((topic, partition, plan.target));
                Ok(())
            })
            .collect();
        if !started.is_empty() {
            let controller = Arc::clone(self);
            tokio::spawn(async move {
                let _one_change_at_a_time = one_change_at_a_time;
                for (topic, partition, target) in started {
                    if let Err(err) = controller.move_partition(&topic, partition, target).await {
                        controller.ongoing_reassignments.remove(&topic, partition);
                        tracing::warn!(topic, partition, error = %err, "partition reassignment stopped");
                    }
                }
            });
        }
        Ok(answers)
    }

    /// The partitions being moved while this node is the controller leader.
    pub(crate) fn ongoing_reassignments(&self) -> BTreeMap<(String, u32), OngoingReassignment> {
        self.ongoing_reassignments.list()
    }

    /// Whether `topic`/`partition` is being moved (or queued to move) by this node.
    pub(crate) fn is_reassigning(&self, topic: &str, partition: u32) -> bool {
        self.ongoing_reassignments.contains(topic, partition)
    }

    /// On the controller leader: spreads the replicas evenly over the alive nodes ([`rebalance::plan_rebalance`]),
    /// one partition after the other; returns each partition moved.
    pub(crate) async fn rebalance_replicas(&self) -> Result<Vec<(String, u32, PartitionReassigned)>, BrokerError> {
        let Ok(_one_change_at_a_time) = self.membership_change.try_lock() else { return Err(busy()) };
        let plan = rebalance::plan_rebalance(&self.metadata());
        tracing::info!(partitions = plan.len(), "rebalancing replicas over the alive nodes");
        let mut moved = Vec::with_capacity(plan.len());
        for target in plan {
            let done = self.move_partition(&target.topic, target.partition, target.replicas).await?;
            moved.push((target.topic, target.partition, done));
        }
        Ok(moved)
    }

    /// Steps 1 to 4, with the one-change lock held by the caller.
    async fn move_partition(
        &self,
        topic: &str,
        partition: u32,
        target: Vec<NodeId>,
    ) -> Result<PartitionReassigned, BrokerError> {
        let plan = reassign::plan_reassignment(&self.metadata(), topic, partition, &target)?
            .ok_or_else(|| self.unknown_partition(topic, partition))?;
        self.ongoing_reassignments.insert(topic, partition, &plan);
        let _listed = Listed { ongoing: &self.ongoing_reassignments, topic, partition };
        tracing::info!(
            topic,
            partition,
            from = %join_ids(&plan.current),
            to = %join_ids(&plan.target),
            "reassigning a partition"
        );
        for node in &plan.adding {
            self.commit(Command::AddReplica { topic: topic.to_owned(), partition, node: *node }).await?;
        }
        let joining: Vec<(String, u32, NodeId)> =
            plan.adding.iter().map(|n| (topic.to_owned(), partition, *n)).collect();
        if self.wait_for_in_sync(&joining, REASSIGNMENT_TIMEOUT).await?.is_none() {
            return Err(refused(format!(
                "the new replicas ({}) did not join the ISR within {} s; they stay and keep copying, and the old \
                 ones stay too: run the reassignment again to finish it",
                join_ids(&plan.adding),
                REASSIGNMENT_TIMEOUT.as_secs()
            )));
        }
        let mut order = plan.target.clone();
        order.extend(&plan.dropping);
        self.commit(Command::OrderReplicas { topic: topic.to_owned(), partition, replicas: order }).await?;
        for node in &plan.dropping {
            let outcome = self.commit(Command::DropReplica { topic: topic.to_owned(), partition, node: *node }).await?;
            if !outcome.changed
                && self.metadata().partition(topic, partition).is_some_and(|p| p.replicas.contains(node))
            {
                return Err(refused(format!(
                    "node {node} holds the only in-sync replica of {topic}/{partition} and was kept; run the \
                     reassignment again once the new replicas are in sync"
                )));
            }
        }
        let after = self.metadata();
        let placed = after.partition(topic, partition).ok_or_else(|| self.unknown_partition(topic, partition))?;
        tracing::info!(topic, partition, replicas = %join_ids(&placed.replicas), "reassigned a partition");
        Ok(PartitionReassigned {
            previous: plan.current,
            replicas: placed.replicas.clone(),
            isr: placed.isr.clone(),
            leader: placed.leader,
            leader_epoch: placed.leader_epoch,
        })
    }

    fn unknown_partition(&self, topic: &str, partition: u32) -> BrokerError {
        match self.metadata().topics.get(topic) {
            None => BrokerError::UnknownTopic { topic: topic.to_owned() },
            Some(placed) => BrokerError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partition_count: placed.partitions.len() as u32,
            },
        }
    }
}
