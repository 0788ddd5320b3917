//! The simulation's share-state workload and checks: a share partition's window stored at the group's coordinator
//! as a partition leader stores it (`share_groups::remote`'s `Save`, served by the node called, in process), while
//! the coordinator (the leader of the group's `__consumer_offsets` partition) moves with the faults. Every few
//! rounds the driver plays a new leader of the share partition, which loads the state at a higher fencing token,
//! and then its deposed predecessor, which tries to store with the old token.
//!
//! Checks: a save with a fencing token below one already acknowledged is never acknowledged (the deposed leader's
//! stale window never lands over its successor's, across coordinator failovers); after healing the coordinator
//! serves at least the last acknowledged version.

use std::time::Duration;

use super::{World, NODES, SIM_DEADLINE, TOPIC};
use crate::offsets::{fencing_token, OffsetKey, StoredShareState};
use crate::share_groups::remote::{serve, Answer, Call};
use crate::share_groups::StateToStore;

/// Its `__consumer_offsets` partition is the only one (the simulation has one), as for the commits' group.
const GROUP: &str = "sharers";
/// Fewer acknowledged saves than this means the workload did not run.
const MIN_SAVES: usize = 5;
/// How long the driver waits for one call, as a leader's internal call is bounded.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

fn key() -> OffsetKey {
    OffsetKey { group: GROUP.into(), topic: TOPIC.into(), partition: 0 }
}

/// The driver's saves and what it learned from them.
#[derive(Debug, Default)]
pub(super) struct ShareSaves {
    /// The newest version acknowledged (saves are taken in increasing order).
    acknowledged: Option<u64>,
    /// The token the current "leader" saves with.
    token: u32,
    saves: usize,
    /// Stale saves (an older token than one acknowledged) the store refused as fenced.
    fenced: usize,
    target: usize,
}

impl ShareSaves {
    /// One save at the node last reached, with the current token; every fourth round, a new token first, and
    /// the old one's stale save after it.
    pub(super) async fn round(&mut self, world: &World, sequence: u64) {
        let Some(node) = world.node(NODES[self.target]) else {
            self.target = (self.target + 1) % NODES.len();
            return;
        };
        let version = (u64::from(self.token) << 32) | sequence;
        if self.save(&node, version).await {
            self.acknowledged = Some(version);
            self.saves += 1;
            if self.saves.is_multiple_of(4) {
                // A new leader: its loaded window saves with the next token; its predecessor's save comes late.
                self.token += 1;
                let new_version = (u64::from(self.token) << 32) | sequence;
                if self.save(&node, new_version).await {
                    self.acknowledged = Some(new_version);
                    let stale = version + 1;
                    match call(&node, save_call(stale)).await {
                        Some(Ok(_)) => world.violation(format!(
                            "a save at fencing token {} was acknowledged after one at token {} was",
                            fencing_token(stale),
                            self.token
                        )),
                        Some(Err(crate::share_groups::remote::Refusal::Fenced { .. })) => self.fenced += 1,
                        Some(Err(_)) | None => {}
                    }
                }
            }
        } else {
            // Not the coordinator, or the save not replicated in time: as a leader would, try the next node.
            self.target = (self.target + 1) % NODES.len();
        }
    }

    async fn save(&self, node: &crate::node::Node, version: u64) -> bool {
        matches!(call(node, save_call(version)).await, Some(Ok(Answer::Saved)))
    }

    /// After healing: the coordinator serves at least the last acknowledged version, and the workload ran.
    pub(super) async fn check_final(&self, world: &World) -> Result<(), String> {
        if self.saves < MIN_SAVES {
            return Err(format!("only {} share state saves acknowledged", self.saves));
        }
        let deadline = tokio::time::Instant::now() + SIM_DEADLINE;
        loop {
            if let Some((leader, _)) = super::offsets::coordinator(world) {
                if let Some(node) = world.node(leader) {
                    if let Some(Ok(Answer::Loaded(stored))) = call(&node, Call::Load { key: key() }).await {
                        let version = stored.as_ref().map_or(0, |s: &StoredShareState| s.version);
                        return match self.acknowledged.filter(|a| version < *a) {
                            Some(acknowledged) => Err(format!(
                                "after healing the coordinator (node {leader}) holds share state version {version:#x}, \
                                 below the acknowledged {acknowledged:#x}"
                            )),
                            None => Ok(()),
                        };
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err("no coordinator answered a share state load after healing".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves `call` on `node` as its internal `Share` method would, given up (`None`) after a leader's patience: a
/// save waits for the offsets partition's in-sync replicas, which a fault may keep from coming.
async fn call(node: &crate::node::Node, call: Call) -> Option<Result<Answer, crate::share_groups::remote::Refusal>> {
    tokio::time::timeout(CALL_TIMEOUT, serve(node, call)).await.ok()
}

fn save_call(version: u64) -> Call {
    let state = StateToStore { key: key(), version, bytes: version.to_be_bytes().to_vec(), dead_letters: Vec::new() };
    Call::Save { group: GROUP.into(), states: vec![state] }
}
