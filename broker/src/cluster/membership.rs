//! Growing and shrinking a running cluster (`rill cluster add-node` / `remove-node`), carried out by the
//! controller leader, one change at a time.
//!
//! Adding: the node (started with `--join`) must answer at its address as that node of this cluster. It
//! becomes a raft learner, and the call waits until it has caught up on the metadata; it is then promoted to
//! voter if the members can form a larger allowed quorum (1, 3 or 5 voters, [`reassign::voters_for`]), and
//! otherwise stays a non-voting member. Either way it heartbeats, registers and takes replicas of new topics.
//!
//! Removing, Kafka's reassignment order so no acknowledged record depends on the node at any point:
//! 1. the plan ([`reassign::plan_removal`]) is checked before anything changes;
//! 2. each moved partition gains its new replica (`AddReplica`), which catches up through replication and
//!    joins the ISR as any follower does; the call waits for all of them;
//! 3. the node leaves each replica set and ISR (`DropReplica`); where it led, an in-sync replica leads at the
//!    next epoch;
//! 4. `RemoveNode` records it as removed (it stops when it sees that, and is refused if it comes back);
//! 5. it leaves the raft membership (a joint-consensus change), a learner taking its vote if needed.
//!
//! A removal interrupted after step 2 leaves extra replicas, never fewer; running it again finishes it.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};

use super::metadata::{Command, NodeState};
use super::reassign::{self, ReplicaMove};
use super::{Controller, NodeId};
use crate::error::BrokerError;

/// How long a new learner may take to catch up on the metadata.
const LEARNER_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a raft membership change (joint, then uniform config) may take.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the moved replicas may take to catch up and join their ISRs: a partition's whole log is copied.
pub(super) const REASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// What an added node became.
pub struct NodeAdded {
    pub is_voter: bool,
    pub voters: BTreeSet<NodeId>,
}

/// What a removal moved.
pub struct NodeRemoved {
    pub moved: Vec<ReplicaMove>,
    pub voters: BTreeSet<NodeId>,
}

pub(super) fn refused(reason: impl Into<String>) -> BrokerError {
    BrokerError::MembershipRefused { reason: reason.into() }
}

fn raft_failed(what: &str, err: impl std::fmt::Display) -> BrokerError {
    BrokerError::ControllerUnavailable { reason: format!("{what}: {err}") }
}

impl Controller {
    /// On the controller leader: adds the node answering at `address` as `node_id`.
    pub(crate) async fn add_node(&self, node_id: NodeId, address: &str) -> Result<NodeAdded, BrokerError> {
        let _one_change_at_a_time = self.membership_change.lock().await;
        let members = self.members();
        if self.metadata().removed_nodes.contains(&node_id) {
            return Err(refused(format!(
                "node id {node_id} was removed from this cluster and is never reused; start the node with a new id"
            )));
        }
        match members.get(&node_id) {
            Some(existing) if existing == address => {
                let voters = self.voters();
                return Ok(NodeAdded { is_voter: voters.contains(&node_id), voters });
            }
            Some(existing) => {
                return Err(refused(format!("node {node_id} is already a member, at {existing}, not {address}")));
            }
            None => {}
        }
        if let Some((other, _)) = members.iter().find(|(_, a)| a.as_str() == address) {
            return Err(refused(format!("{address} is node {other}'s address; each node needs its own")));
        }
        crate::config::parse_advertise(address).map_err(|reason| BrokerError::invalid("address", reason))?;
        self.check_joining_node(node_id, address).await?;
        let added = tokio::time::timeout(
            LEARNER_CATCH_UP_TIMEOUT,
            self.raft.add_learner(node_id, BasicNode { addr: address.to_owned() }, true),
        )
        .await;
        match added {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(raft_failed("cannot add the node as a learner", err)),
            Err(_) => {
                return Err(raft_failed(
                    "the node did not catch up on the metadata in time",
                    format!("{} s", LEARNER_CATCH_UP_TIMEOUT.as_secs()),
                ))
            }
        }
        tracing::info!(node_id, address, "added a node as a learner of the controller quorum");
        let members: BTreeSet<NodeId> = self.members().into_keys().collect();
        let voters = self.voters();
        let wanted = reassign::voters_for(&members, &voters);
        if wanted != voters {
            self.change_voters(ChangeMembers::ReplaceAllVoters(wanted.clone()), true).await?;
            tracing::info!(?wanted, "the controller quorum's voters changed");
        }
        // A learner registers with its first heartbeat after it caught up: answered once it has (a few
        // heartbeats), a script's next step (a remove-node, a rebalance, a topic create) already counts it among
        // the alive nodes. A node slower than that is still added, and counts from its first heartbeat.
        if !self.wait_for_metadata(|m| m.state_of(node_id) == Some(NodeState::Alive)).await {
            tracing::info!(node_id, "the added node has not heartbeated yet; it takes replicas once it does");
        }
        let voters = self.voters();
        Ok(NodeAdded { is_voter: voters.contains(&node_id), voters })
    }

    /// The node at `address` must be a process started to join this cluster as `node_id`.
    async fn check_joining_node(&self, node_id: NodeId, address: &str) -> Result<(), BrokerError> {
        let Some(reply) = super::probe::identify(address, &self.config).await else {
            return Err(refused(format!(
                "nothing answers at {address}; start the node first: rill broker --node-id {node_id} --listen \
                 {address} --join {}",
                self.address
            )));
        };
        if reply.node_id != node_id {
            return Err(refused(format!("node {} answers at {address}, not node {node_id}", reply.node_id)));
        }
        let ours = self.cluster_id.get().unwrap_or_default();
        if reply.cluster_id != ours {
            return Err(refused(format!(
                "the node at {address} belongs to cluster {:?}, this is cluster {ours}; start it with a fresh data \
                 dir and --join",
                reply.cluster_id
            )));
        }
        Ok(())
    }

    /// On the controller leader: moves every replica off `node_id`, then takes it out of the cluster.
    pub(crate) async fn remove_node(&self, node_id: NodeId) -> Result<NodeRemoved, BrokerError> {
        let _one_change_at_a_time = self.membership_change.lock().await;
        let members: BTreeSet<NodeId> = self.members().into_keys().collect();
        if !members.contains(&node_id) {
            if self.metadata().removed_nodes.contains(&node_id) {
                return Err(refused(format!("node {node_id} was already removed from the cluster")));
            }
            let listed: Vec<NodeId> = members.iter().copied().collect();
            return Err(BrokerError::UnknownNode { node_id, members: reassign::join_ids(&listed) });
        }
        self.refuse_while_moving("removing a node")?;
        // The partitions first: their refusal names what data is at stake, the more specific of the two.
        let moves = reassign::plan_removal(&self.metadata(), node_id, &members).map_err(|e| refused(e.to_string()))?;
        let voters = self.voters();
        reassign::check_quorum(node_id, &members, &voters).map_err(|e| refused(e.to_string()))?;
        tracing::info!(node_id, replicas = moves.len(), "removing a node: moving its replicas");
        for step in &moves {
            let command = Command::AddReplica { topic: step.topic.clone(), partition: step.partition, node: step.to };
            self.commit(command).await?;
        }
        self.wait_for_new_replicas_in_sync(&moves).await?;
        for step in &moves {
            let command =
                Command::DropReplica { topic: step.topic.clone(), partition: step.partition, node: step.from };
            self.commit(command).await?;
        }
        let is_removing_itself = node_id == self.node_id;
        if is_removing_itself {
            // The keeper stops a node that sees itself removed; this one still has the membership to change.
            self.is_leaving.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let outcome = self.leave_membership(node_id, &members, &voters).await;
        self.is_leaving.store(false, std::sync::atomic::Ordering::SeqCst);
        outcome?;
        tracing::info!(node_id, "removed a node from the cluster");
        Ok(NodeRemoved { moved: moves, voters: self.voters() })
    }

    /// Steps 4 and 5: recorded as removed, then out of the raft membership. Voters other than `node_id` keep
    /// their votes here (the keeper trims an even count of voters afterwards, see `keeper.rs`), so openraft
    /// removes exactly this node (`retain = false` drops only voters left out).
    async fn leave_membership(
        &self,
        node_id: NodeId,
        members: &BTreeSet<NodeId>,
        voters: &BTreeSet<NodeId>,
    ) -> Result<(), BrokerError> {
        self.commit(Command::RemoveNode { node_id }).await?;
        self.sessions.forget(node_id);
        if voters.contains(&node_id) {
            let remaining: BTreeSet<NodeId> = members.iter().copied().filter(|id| *id != node_id).collect();
            let mut next: BTreeSet<NodeId> = voters.iter().copied().filter(|id| *id != node_id).collect();
            next.extend(reassign::voters_for(&remaining, voters));
            self.change_voters(ChangeMembers::ReplaceAllVoters(next), false).await
        } else {
            self.change_voters(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false).await
        }
    }

    async fn change_voters(&self, change: ChangeMembers<NodeId, BasicNode>, retain: bool) -> Result<(), BrokerError> {
        match tokio::time::timeout(MEMBERSHIP_CHANGE_TIMEOUT, self.raft.change_membership(change, retain)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(raft_failed("the controller membership change failed", err)),
            Err(_) => Err(raft_failed(
                "the controller membership change did not commit in time",
                format!("{} s (is a majority of the voters up?)", MEMBERSHIP_CHANGE_TIMEOUT.as_secs()),
            )),
        }
    }

    /// Waits until every moved partition's new replica is in its ISR.
    async fn wait_for_new_replicas_in_sync(&self, moves: &[ReplicaMove]) -> Result<(), BrokerError> {
        let joining: Vec<(String, u32, NodeId)> = moves.iter().map(|m| (m.topic.clone(), m.partition, m.to)).collect();
        self.wait_for_in_sync(&joining, REASSIGNMENT_TIMEOUT).await?.ok_or_else(|| {
            refused(format!(
                "the new replicas did not all join their ISRs within {} s; the removal stopped with the node still \
                 in its replica sets (the new replicas stay and keep copying): run remove-node again",
                REASSIGNMENT_TIMEOUT.as_secs()
            ))
        })
    }

    /// Waits until each `(topic, partition, node)` has `node` in the partition's ISR: `Ok(None)` when `timeout`
    /// passed first.
    pub(super) async fn wait_for_in_sync(
        &self,
        joining: &[(String, u32, NodeId)],
        timeout: Duration,
    ) -> Result<Option<()>, BrokerError> {
        let mut metadata = self.watch_metadata();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let is_lagging = {
                    let current = metadata.borrow_and_update();
                    joining.iter().any(|(topic, partition, node)| {
                        current.partition(topic, *partition).is_none_or(|p| !p.isr.contains(node))
                    })
                };
                if !is_lagging {
                    return Ok(());
                }
                if metadata.changed().await.is_err() {
                    return Err(raft_failed("the metadata stopped", "shutting down"));
                }
            }
        })
        .await;
        waited.map_or(Ok(None), |done| done.map(Some))
    }

    /// On the leader, from the keeper: a voter count outside 1, 3, 5 (left by a removal) is brought back to the
    /// rule, the extra voters staying learners.
    pub(super) async fn settle_voters(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        let is_joint = metrics.membership_config.membership().get_joint_config().len() > 1;
        let voters = self.voters();
        if is_joint || super::peers::QUORUM_SIZES.contains(&voters.len()) {
            return;
        }
        let Ok(_one_change_at_a_time) = self.membership_change.try_lock() else { return };
        let members: BTreeSet<NodeId> = self.members().into_keys().collect();
        let wanted = reassign::voters_for(&members, &voters);
        match self.change_voters(ChangeMembers::ReplaceAllVoters(wanted.clone()), true).await {
            Ok(()) => tracing::info!(?wanted, "the controller quorum's voters settled"),
            Err(err) => tracing::info!(error = %err, "cannot settle the voters yet; next tick retries"),
        }
    }
}
