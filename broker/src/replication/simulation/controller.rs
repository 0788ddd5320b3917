//! The simulation's controller: the committed metadata as one value, changed only through the real
//! [`ClusterMetadata::apply`], so leader elections (fencing moves a leadership to another in-sync replica and
//! bumps the epoch; unclean election is off) and ISR changes (only from the leader at its epoch) follow the
//! same rules as in a node. The raft simulation (`cluster/simulation.rs`) covers how a quorum commits them.
//!
//! Each node sees the metadata it last received: a node cut off from the controller keeps its stale view,
//! and its proposals fail, as a node partitioned from the quorum's majority would. Liveness is the driver's
//! job, as the keeper's sessions are in a node: it fences a node silent for the session timeout and marks it
//! alive once it is heard again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::cluster::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::error::{BrokerError, Result};
use crate::replication::links::{BoxFuture, ControllerLink};

/// Simulated time a proposal takes to commit (a raft round trip and an fsync).
const COMMIT_LATENCY: Duration = Duration::from_millis(10);
const WAIT_FOR_METADATA: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct StandInController {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    committed: Arc<ClusterMetadata>,
    /// What each running node has applied; replaced when the node restarts.
    views: BTreeMap<u64, watch::Sender<Arc<ClusterMetadata>>>,
    /// What each node last received, kept across its restarts (its raft state on disk).
    last_received: BTreeMap<u64, Arc<ClusterMetadata>>,
    cut_off: BTreeSet<u64>,
}

impl State {
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
        let mut state = self.state();
        let mut next = (*state.committed).clone();
        let outcome = next.apply(command);
        state.committed = Arc::new(next);
        let nodes: Vec<u64> = state.views.keys().copied().collect();
        for node_id in nodes {
            state.deliver(node_id);
        }
        outcome
    }

    pub fn committed(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.state().committed)
    }

    /// A node (re)starting: its link to the controller, starting from what it last received.
    pub fn connect(self: &Arc<Self>, node_id: u64) -> Arc<dyn ControllerLink> {
        let mut state = self.state();
        let start = state.last_received.get(&node_id).cloned().unwrap_or_default();
        let (view, applied) = watch::channel(start);
        state.views.insert(node_id, view);
        state.deliver(node_id);
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
            tokio::time::sleep(COMMIT_LATENCY).await;
            if self.controller.is_cut_off(self.node_id) {
                return Err(BrokerError::ControllerUnavailable {
                    reason: format!("node {} is cut off from the controller quorum", self.node_id),
                });
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
