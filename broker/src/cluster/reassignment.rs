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
