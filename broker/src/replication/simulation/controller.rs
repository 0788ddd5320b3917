//! The simulation's controller: the committed metadata as one value, changed only through the real
//! [`ClusterMetadata::apply`], so leader elections (fencing moves a leadership to another in-sync replica and
//! bumps the epoch; unclean election is off) and ISR changes (only from the leader at its epoch) follow the
//! same rules as in a node. The raft simulation (`cluster/simulation.rs`) covers how a quorum commits them.
//!
//! Each node sees the metadata it last received: a node cut off from the controller keeps its stale view,
//! and its proposals fail, as a node partitioned from the quorum's majority would. A node applies what it
//! receives a few milliseconds later (0 to 25, varying per delivery and node), as a raft follower applies
//! committed entries after the leader: nodes see a change at different moments, and a proposer may have its
//! answer before its own metadata shows the change. Liveness is the driver's
//! job, as the keeper's sessions are in a node: it fences a node silent for the session timeout and marks it
//! alive once it is heard again.
//!
//! An ISR change can be answered with an error although the quorum has it, as a reply lost after the entry was
//! accepted: one on its way when its node is cut off commits at once; while answers are lost
//! ([`StandInController::lose_isr_answers`]) one commits later, before anything after it (a raft log keeps the
//! order), when the next command commits or the loss ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::error::{BrokerError, Result};
use crate::replication::links::{BoxFuture, ControllerLink};

/// Simulated time a proposal takes to commit (a raft round trip and an fsync).
const COMMIT_LATENCY: Duration = Duration::from_millis(10);
/// How long a node takes to apply what it received, in turn per delivery (shifted by the node's id).
const APPLY_DELAYS_MS: [u64; 5] = [0, 3, 11, 25, 1];
const WAIT_FOR_METADATA: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct StandInController {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    committed: Arc<ClusterMetadata>,
    /// What each running node has received, and applies after its delay; replaced when the node restarts.
    views: BTreeMap<u64, watch::Sender<Arc<ClusterMetadata>>>,
    /// What each node last received, kept across its restarts (its raft state on disk).
    last_received: BTreeMap<u64, Arc<ClusterMetadata>>,
    cut_off: BTreeSet<u64>,
    /// Whether ISR changes are answered with an error while they wait in `in_doubt`.
    is_losing_isr_answers: bool,
    /// Proposals answered with an error that commit before the next command.
    in_doubt: Vec<Command>,
}

impl State {
    /// Commits the changes whose answers were lost, then `command`, and delivers the result to every node that
    /// can hear the controller.
    fn commit(&mut self, command: &Command) -> CommandOutcome {
        let mut next = (*self.committed).clone();
        for earlier in std::mem::take(&mut self.in_doubt) {
            next.apply(&earlier);
        }
        let outcome = next.apply(command);
        self.committed = Arc::new(next);
        let nodes: Vec<u64> = self.views.keys().copied().collect();
        for node_id in nodes {
            self.deliver(node_id);
        }
        outcome
    }

    fn deliver(&mut self, node_id: u64) {
        if self.cut_off.contains(&node_id) {
            return;
        }
        self.last_received.insert(node_id, Arc::clone(&self.committed));
        if let Some(view) = self.views.get(&node_id) {
            view.send_replace(Arc::clone(&self.committed));
        }
    }
}

impl StandInController {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Commits `command` and delivers the result to every node that can hear the controller.
    pub fn commit(&self, command: &Command) -> CommandOutcome {
        self.state().commit(command)
    }

    /// From now on an ISR change's answer is lost: the proposer sees an error, the change commits later.
    pub fn lose_isr_answers(&self) {
        self.state().is_losing_isr_answers = true;
    }

    /// Answers arrive again, and the changes whose answers were lost commit now if nothing committed them yet.
    pub fn stop_losing_answers(&self) {
        let mut state = self.state();
        state.is_losing_isr_answers = false;
        if let Some(last) = state.in_doubt.pop() {
            state.commit(&last);
        }
    }

    pub fn committed(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.state().committed)
    }

    /// A node (re)starting: its link to the controller, starting from what it last received (applied at once,
    /// as a restarted node replays its raft log before it serves). Called on the node's host: the task that
    /// applies what the node receives stops with it.
    pub fn connect(self: &Arc<Self>, node_id: u64) -> Arc<dyn ControllerLink> {
        let mut state = self.state();
        let start = state.last_received.get(&node_id).cloned().unwrap_or_default();
        let (view, mut received) = watch::channel(Arc::clone(&start));
        let (applier, applied) = watch::channel(start);
        state.views.insert(node_id, view);
        state.deliver(node_id);
        tokio::spawn(async move {
            let mut deliveries = node_id as usize;
            loop {
                let next = Arc::clone(&received.borrow_and_update());
                applier.send_replace(next);
                if received.changed().await.is_err() {
                    return;
                }
                deliveries += 1;
                let delay = APPLY_DELAYS_MS[deliveries % APPLY_DELAYS_MS.len()];
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        });
        Arc::new(NodeLink { node_id, controller: Arc::clone(self), applied })
    }

    pub fn cut_off(&self, node_id: u64) {
        self.state().cut_off.insert(node_id);
    }

    /// Heard again: it receives the metadata committed meanwhile.
    pub fn reconnect(&self, node_id: u64) {
        let mut state = self.state();
        state.cut_off.remove(&node_id);
        state.deliver(node_id);
    }

    pub fn is_cut_off(&self, node_id: u64) -> bool {
        self.state().cut_off.contains(&node_id)
    }
}

struct NodeLink {
    node_id: u64,
    controller: Arc<StandInController>,
    applied: watch::Receiver<Arc<ClusterMetadata>>,
}

impl ControllerLink for NodeLink {
    fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.applied.borrow())
    }

    fn watch_metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.applied.clone()
    }

    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutcome>> {
        Box::pin(async move {
            let was_cut_off = self.controller.is_cut_off(self.node_id);
            tokio::time::sleep(COMMIT_LATENCY).await;
            let is_isr_change = matches!(command, Command::AlterIsr { .. });
            let lost = || BrokerError::ControllerUnavailable {
                reason: "the controller's answer was lost (the change may still commit)".into(),
            };
            if self.controller.is_cut_off(self.node_id) {
                // Cut off while the change was on its way: the quorum had it, the answer is lost.
                if is_isr_change && !was_cut_off {
                    self.controller.commit(&command);
                    return Err(lost());
                }
                return Err(BrokerError::ControllerUnavailable {
                    reason: format!("node {} is cut off from the controller quorum", self.node_id),
                });
            }
            {
                let mut state = self.controller.state();
                if state.is_losing_isr_answers && is_isr_change {
                    state.in_doubt.push(command);
                    return Err(lost());
                }
            }
            Ok(self.controller.commit(&command))
        })
    }

    fn wait_for_metadata<'a>(
        &'a self,
        is_done: Box<dyn Fn(&ClusterMetadata) -> bool + Send + Sync + 'a>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let mut applied = self.applied.clone();
            tokio::time::timeout(WAIT_FOR_METADATA, applied.wait_for(|m| is_done(m))).await.is_ok_and(|r| r.is_ok())
        })
    }

    fn current_leader(&self) -> Option<u64> {
        None
    }
}
