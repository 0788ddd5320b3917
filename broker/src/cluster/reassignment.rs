//! Moving one partition onto a replica list the operator names (`rill topic reassign`, Kafka's
//! AlterPartitionReassignments), carried out by the controller leader in the order `remove-node` uses, so
//! no acknowledged record depends on a replica that is leaving at any point:
//! 1. the list is checked ([`reassign::plan_reassignment`]) before anything changes;
//! 2. `BeginReassignment` records the move in the replicated metadata (`reassignment_state.rs`): each new node
//!    becomes a replica, copies the partition through normal replication and joins the ISR;
//! 3. once they are all in sync, `CompleteReassignment` puts the replicas in the target's order (the first
//!    named is the preferred leader) and drops the nodes left out, in one entry; where one of them led, the
//!    first in-sync replica of the target leads at the next epoch, and its ACKS_ALL produces in flight fail
//!    with `not-leader` for the client to retry there.
//!
//! Step 3 is taken by whichever node leads the controller quorum when the move is ready: [`Controller::drive`] runs on the
//! leader while any move is recorded, so a controller failover delays a move but never stops it. A move under
//! way can be cancelled (`CancelReassignment`): the replicas go back to the original list and the adding
//! replicas leave (their nodes delete their copies as for any replica removed).
//!
//! A leader that stays keeps the leadership (as in Kafka); a preferred leader election moves it to the first
//! replica. Moves of different partitions run side by side; a partition moving already refuses another move
//! (cancel it first), and adding, removing or rebalancing nodes waits for every move to end (one change at a
//! time: those hold the controller's change lock, which starting a move takes for a moment).
//!
//! `rill cluster rebalance` starts each partition [`rebalance`] moves and waits for it, one after the other.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::membership::{refused, REASSIGNMENT_TIMEOUT};
use super::metadata::{ClusterMetadata, Command};
use super::reassign::{self, join_ids, ReassignmentRefused};
use super::reassignment_state::CancelRefused;
use super::rebalance;
use super::{Controller, NodeId};
use crate::error::BrokerError;

/// How often the controller leader's driver looks again without a metadata change: to notice that it lost
/// the leadership (the new leader drives then).
const DRIVE_RECHECK: Duration = Duration::from_secs(1);

/// What a reassignment, or its cancel, did.
pub struct PartitionReassigned {
    pub previous: Vec<NodeId>,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: u32,
}

/// Why one partition's move was not started.
#[derive(Debug)]
pub enum StartRefused {
    /// No such topic or partition, or the controller could not commit it: the error says which.
    Failed(BrokerError),
    /// The replica list breaks a rule (Kafka's INVALID_REPLICA_ASSIGNMENT).
    Invalid(ReassignmentRefused),
    /// The partition is being moved already (Kafka's REASSIGNMENT_IN_PROGRESS).
    InProgress(String),
}

impl From<StartRefused> for BrokerError {
    fn from(refusal: StartRefused) -> Self {
        match refusal {
            StartRefused::Failed(err) => err,
            StartRefused::Invalid(refusal) => refusal.into(),
            StartRefused::InProgress(message) => refused(message),
        }
    }
}

/// Why a cancel did not happen.
#[derive(Debug)]
pub enum CancelFailed {
    Refused(CancelRefused),
    Controller(BrokerError),
}

impl From<CancelFailed> for BrokerError {
    fn from(failed: CancelFailed) -> Self {
        match failed {
            CancelFailed::Controller(err) => err,
            // The topic went between the check and the commit (`cancel_reassignment` checks it first).
            CancelFailed::Refused(CancelRefused::NoSuchPartition { topic, .. }) => BrokerError::UnknownTopic { topic },
            CancelFailed::Refused(other) => refused(other.to_string()),
        }
    }
}

fn busy() -> BrokerError {
    refused(
        "a node is being added or removed, or the replicas rebalanced, on the controller leader; wait for it to \
         finish (rill cluster describe, rill topic describe), then try again",
    )
}

fn in_progress(topic: &str, partition: u32, metadata: &ClusterMetadata) -> Option<String> {
    let moving = metadata.partition(topic, partition)?.reassignment.as_ref()?;
    Some(format!(
        "partition {partition} of topic {topic:?} is being moved onto {} already; wait for it to finish, or cancel \
         it (rill topic reassign {topic} --partition {partition} --cancel) and reassign it again",
        join_ids(&moving.target)
    ))
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
    /// On the controller leader: moves `topic`/`partition` onto `target`, the preferred leader first. With
    /// `wait`, answers once done (or the move was cancelled, or it is still copying after
    /// [`REASSIGNMENT_TIMEOUT`]: it then stays under way); without, once the move is recorded (Kafka's
    /// AlterPartitionReassignments; `rill topic reassign --no-wait`), with the replicas before, the target, and
    /// the ISR and leader as they are then, while the copying goes on.
    pub(crate) async fn reassign_partition(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        target: Vec<NodeId>,
        wait: bool,
    ) -> Result<PartitionReassigned, BrokerError> {
        let previous = self.metadata().partition(topic, partition).map(|p| p.replicas.clone()).unwrap_or_default();
        let mut started = self.start_reassignments(vec![(topic.to_owned(), partition, target.clone())]).await?;
        started.pop().unwrap_or(Ok(())).map_err(BrokerError::from)?;
        if wait {
            return self.wait_for_reassignment(topic, partition, &target, previous).await;
        }
        let metadata = self.metadata();
        let placed = metadata.partition(topic, partition).ok_or_else(|| self.unknown_partition(topic, partition))?;
        Ok(PartitionReassigned {
            previous,
            replicas: target,
            isr: placed.isr.clone(),
            leader: placed.leader,
            leader_epoch: placed.leader_epoch,
        })
    }

    /// On the controller leader: checks each `(topic, partition, target)` and records the moves that pass in
    /// the metadata, then answers, in the order asked, whether each was started; the copying goes on after.
    /// A list that breaks a rule is refused alone; those that pass are refused together (`membership-refused`)
    /// while a node is being added or removed or the replicas rebalanced.
    pub(crate) async fn start_reassignments(
        self: &Arc<Self>,
        targets: Vec<(String, u32, Vec<NodeId>)>,
    ) -> Result<Vec<Result<(), StartRefused>>, BrokerError> {
        let Ok(_one_change_at_a_time) = self.membership_change.try_lock() else {
            // A list that breaks a rule is refused for that rule, even while another change runs.
            let metadata = self.metadata();
            if targets.iter().all(|(t, p, target)| reassign::plan_reassignment(&metadata, t, *p, target).is_err()) {
                return Ok(targets.into_iter().map(|(t, p, target)| self.check_start(&t, p, &target)).collect());
            }
            return Err(busy());
        };
        let mut answers = Vec::with_capacity(targets.len());
        for (topic, partition, target) in targets {
            let answer = match self.check_start(&topic, partition, &target) {
                Ok(()) => self.begin(&topic, partition, target).await,
                Err(refusal) => Err(refusal),
            };
            answers.push(answer);
        }
        self.drive();
        Ok(answers)
    }

    fn check_start(&self, topic: &str, partition: u32, target: &[NodeId]) -> Result<(), StartRefused> {
        let metadata = self.metadata();
        match reassign::plan_reassignment(&metadata, topic, partition, target) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(StartRefused::Failed(self.unknown_partition(topic, partition))),
            Err(refusal) => return Err(StartRefused::Invalid(refusal)),
        }
        match in_progress(topic, partition, &metadata) {
            Some(message) => Err(StartRefused::InProgress(message)),
            None => Ok(()),
        }
    }

    async fn begin(&self, topic: &str, partition: u32, target: Vec<NodeId>) -> Result<(), StartRefused> {
        let from = self.metadata().partition(topic, partition).map(|p| join_ids(&p.replicas)).unwrap_or_default();
        let to = join_ids(&target);
        let command = Command::BeginReassignment { topic: topic.to_owned(), partition, target };
        let outcome = self.commit(command).await.map_err(StartRefused::Failed)?;
        if !outcome.changed {
            // Another move began in between (the metadata changed after the check).
            let metadata = self.metadata();
            let message = in_progress(topic, partition, &metadata);
            return Err(message.map_or_else(
                || StartRefused::Failed(self.unknown_partition(topic, partition)),
                StartRefused::InProgress,
            ));
        }
        tracing::info!(topic, partition, %from, %to, "reassigning a partition");
        Ok(())
    }

    /// Waits until the move of `topic`/`partition` onto `target` ends, and says how.
    async fn wait_for_reassignment(
        &self,
        topic: &str,
        partition: u32,
        target: &[NodeId],
        previous: Vec<NodeId>,
    ) -> Result<PartitionReassigned, BrokerError> {
        let mut metadata = self.watch_metadata();
        let ended = tokio::time::timeout(REASSIGNMENT_TIMEOUT, async {
            loop {
                let ended = {
                    let current = metadata.borrow_and_update();
                    match current.partition(topic, partition) {
                        None => Some(Err(self.unknown_partition(topic, partition))),
                        Some(p) if p.reassignment.is_some() => None,
                        Some(p) if p.replicas == target => Some(Ok(PartitionReassigned {
                            previous: previous.clone(),
                            replicas: p.replicas.clone(),
                            isr: p.isr.clone(),
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                        })),
                        Some(p) => Some(Err(refused(format!(
                            "the move of partition {partition} of topic {topic:?} was cancelled; its replicas are {}",
                            join_ids(&p.replicas)
                        )))),
                    }
                };
                if let Some(ended) = ended {
                    return ended;
                }
                if metadata.changed().await.is_err() {
                    return Err(BrokerError::ControllerUnavailable { reason: "the metadata stopped".into() });
                }
            }
        })
        .await;
        ended.unwrap_or_else(|_| {
            let adding = self
                .metadata()
                .partition(topic, partition)
                .and_then(|p| p.reassignment.as_ref().map(|m| join_ids(&m.adding)))
                .unwrap_or_default();
            Err(refused(format!(
                "the new replicas ({adding}) did not join the ISR within {} s; the move stays under way and \
                 finishes once they do (rill topic describe shows it), or cancel it: rill topic reassign {topic} \
                 --partition {partition} --cancel",
                REASSIGNMENT_TIMEOUT.as_secs()
            )))
        })
    }

    /// On the controller leader: ends the move of `topic`/`partition` on its original replicas.
    pub(crate) async fn cancel_reassignment(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionReassigned, CancelFailed> {
        let metadata = self.metadata();
        if metadata.partition(topic, partition).is_none() {
            return Err(CancelFailed::Controller(self.unknown_partition(topic, partition)));
        }
        metadata.can_cancel_reassignment(topic, partition).map_err(CancelFailed::Refused)?;
        let previous = metadata.partition(topic, partition).map(|p| p.replicas.clone()).unwrap_or_default();
        let command = Command::CancelReassignment { topic: topic.to_owned(), partition };
        let outcome = self.commit(command).await.map_err(CancelFailed::Controller)?;
        let after = self.metadata();
        if !outcome.changed {
            // The move completed, or its last original replica fell out of sync, in between.
            after.can_cancel_reassignment(topic, partition).map_err(CancelFailed::Refused)?;
        }
        let p = after.partition(topic, partition).ok_or_else(|| {
            CancelFailed::Refused(CancelRefused::NoSuchPartition { topic: topic.to_owned(), partition })
        })?;
        tracing::info!(topic, partition, replicas = %join_ids(&p.replicas), "cancelled a partition reassignment");
        Ok(PartitionReassigned {
            previous,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch,
        })
    }

    /// On the controller leader: completes each recorded move once it is ready, until none is left or this
    /// node stops leading. Started after a move begins and from the keeper's every tick on the leader, so a new
    /// controller leader picks up the moves its predecessor began; one driver runs at a time.
    pub(crate) fn drive(self: &Arc<Self>) {
        if !self.is_leader() || !self.metadata().has_reassignments() {
            return;
        }
        if self.is_driving_reassignments.swap(true, Ordering::SeqCst) {
            return;
        }
        let controller = Arc::clone(self);
        tokio::spawn(async move {
            controller.complete_ready_moves().await;
            controller.is_driving_reassignments.store(false, Ordering::SeqCst);
        });
    }

    async fn complete_ready_moves(&self) {
        let mut metadata = self.watch_metadata();
        loop {
            if !self.is_leader() {
                return;
            }
            let ready: Vec<(String, u32)> = {
                let current = metadata.borrow_and_update();
                if !current.has_reassignments() {
                    return;
                }
                current
                    .reassignments()
                    .filter(|(_, _, p)| p.is_reassignment_ready())
                    .map(|(topic, partition, _)| (topic.to_owned(), partition))
                    .collect()
            };
            for (topic, partition) in ready {
                let command = Command::CompleteReassignment { topic: topic.clone(), partition };
                match self.commit(command).await {
                    Ok(outcome) if outcome.changed => {
                        let replicas = self.metadata().partition(&topic, partition).map(|p| join_ids(&p.replicas));
                        tracing::info!(
                            topic,
                            partition,
                            replicas = replicas.unwrap_or_default(),
                            "reassigned a partition"
                        );
                    }
                    Ok(_) => {}
                    Err(err) => tracing::info!(topic, partition, error = %err, "cannot complete a reassignment yet"),
                }
            }
            if let Ok(Err(_)) = tokio::time::timeout(DRIVE_RECHECK, metadata.changed()).await {
                return;
            }
        }
    }

    /// Refuses a change of nodes or a rebalance while any partition is being moved.
    pub(super) fn refuse_while_moving(&self, what: &str) -> Result<(), BrokerError> {
        let metadata = self.metadata();
        let Some((topic, partition, _)) = metadata.reassignments().next() else { return Ok(()) };
        Err(refused(format!(
            "partition {partition} of topic {topic:?} is being moved; {what} waits until no partition moves: let \
             the move finish (rill topic describe shows it) or cancel it (rill topic reassign {topic} --partition \
             {partition} --cancel)"
        )))
    }

    /// On the controller leader: spreads the replicas evenly over the alive nodes ([`rebalance::plan_rebalance`]).
    /// With `wait`, one partition after the other, each answered once moved. Without, every move of the plan
    /// starts at once and the answer comes once they are recorded, as `kafka-reassign-partitions.sh --execute`
    /// runs a plan: they copy side by side (the replication throttle bounds them) and each completes on its own;
    /// each answer then holds the replicas before, the target, and the ISR and leader at the start. A move
    /// refused when started (the metadata changed since the plan) is the error; those started stay under way.
    pub(crate) async fn rebalance_replicas(
        self: &Arc<Self>,
        wait: bool,
    ) -> Result<Vec<(String, u32, PartitionReassigned)>, BrokerError> {
        let Ok(_one_change_at_a_time) = self.membership_change.try_lock() else { return Err(busy()) };
        self.refuse_while_moving("a rebalance")?;
        let plan = rebalance::plan_rebalance(&self.metadata());
        tracing::info!(partitions = plan.len(), wait, "rebalancing replicas over the alive nodes");
        let mut moved = Vec::with_capacity(plan.len());
        for target in plan {
            let (topic, partition) = (target.topic, target.partition);
            let Some(before) = self.metadata().partition(&topic, partition).cloned() else {
                return Err(self.unknown_partition(&topic, partition));
            };
            self.check_start(&topic, partition, &target.replicas)?;
            self.begin(&topic, partition, target.replicas.clone()).await?;
            let done = if wait {
                self.drive();
                self.wait_for_reassignment(&topic, partition, &target.replicas, before.replicas).await?
            } else {
                PartitionReassigned {
                    previous: before.replicas,
                    replicas: target.replicas,
                    isr: before.isr,
                    leader: before.leader,
                    leader_epoch: before.leader_epoch,
                }
            };
            moved.push((topic, partition, done));
        }
        self.drive();
        Ok(moved)
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
