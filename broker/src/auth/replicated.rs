//! How a cluster node's [`UserStore`](super::UserStore) and [`AclStore`](super::acl_store::AclStore) reach the
//! users and ACLs in the replicated cluster metadata (`cluster/access.rs`): they read a snapshot they swap when
//! an applied command changes what they hold, and write by proposing a command to the controller leader.
//!
//! A write returns once this node has applied the change, so what a client just created it can list, or log in
//! with, on the node it asked. Other nodes apply it one raft round trip later.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::cluster::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::cluster::Controller;

/// Where a store of the node's users, ACLs or client quotas keeps them: a file in the data dir on a single node
/// (`__users.json`, `__acls.json`, `__quotas.json`), the replicated metadata on a cluster node.
pub enum StoreBacking {
    File(PathBuf),
    Cluster(ClusterAccess),
}

impl std::fmt::Debug for StoreBacking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreBacking::File(path) => write!(f, "{}", path.display()),
            StoreBacking::Cluster(_) => f.write_str("the cluster metadata"),
        }
    }
}

pub struct ClusterAccess {
    controller: Arc<Controller>,
    runtime: Handle,
}

impl ClusterAccess {
    /// `runtime` runs the proposals. The stores' writes are meant for its blocking pool (as their file writes on
    /// a single node are); called on one of its worker threads instead, they still work (`block_in_place`).
    pub fn new(controller: Arc<Controller>, runtime: Handle) -> Self {
        Self { controller, runtime }
    }

    /// The metadata as this node last applied it.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.controller.metadata()
    }

    /// Commits `command` through the controller leader and, if it changed anything, waits until this node has
    /// applied it (`is_applied`). Err says why it could not be committed.
    pub fn propose(
        &self,
        command: Command,
        is_applied: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<CommandOutcome, String> {
        wait_on(&self.runtime, self.propose_async(command, is_applied))
    }

    /// [`ClusterAccess::propose`] for an async caller.
    pub async fn propose_async(
        &self,
        command: Command,
        is_applied: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<CommandOutcome, String> {
        let outcome = self.controller.propose(command).await.map_err(|err| err.to_string())?;
        if outcome.changed && !self.controller.wait_for_metadata(is_applied).await {
            return Err("the change was committed but this node has not applied it yet: try again".into());
        }
        Ok(outcome)
    }

    /// Proposes `command` without waiting for it, for a change nobody waits on (a session's coarse touch): a
    /// failure is logged, and the next use proposes again.
    pub fn propose_in_background(&self, command: Command, what: &'static str) {
        let controller = Arc::clone(&self.controller);
        self.runtime.spawn(async move {
            if let Err(error) = controller.propose(command).await {
                tracing::debug!(%error, what, "metadata change not committed; a later one retries");
            }
        });
    }

    /// Calls `refresh` on `store` once, then after every change of the metadata, until the store is dropped.
    /// The first call covers what was applied between the store's first read and this subscription, which
    /// `changed` does not report (a node replaying its log at start applies much there).
    pub fn follow<S: Send + Sync + 'static>(&self, store: Weak<S>, refresh: fn(&S)) {
        let metadata = self.controller.watch_metadata();
        self.runtime.spawn(follow(metadata, store, refresh));
    }
}

/// Runs `work` on `runtime` and waits for it, from a thread of its blocking pool or one of its workers.
fn wait_on<T>(runtime: &Handle, work: impl std::future::Future<Output = T>) -> T {
    // Outside a worker thread (the blocking pool) `block_in_place` just runs the closure; on a worker of the
    // multi-threaded runtime it hands the worker's other tasks away first, where `block_on` alone would panic.
    tokio::task::block_in_place(|| runtime.block_on(work))
}

async fn follow<S>(mut metadata: watch::Receiver<Arc<ClusterMetadata>>, store: Weak<S>, refresh: fn(&S)) {
    loop {
        let Some(store) = store.upgrade() else { return };
        refresh(&store);
        drop(store);
        if metadata.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waits_on_the_runtime_from_the_blocking_pool_or_a_worker() {
        let runtime = Handle::current();
        let on_pool = runtime.clone();
        let from_pool = tokio::task::spawn_blocking(move || wait_on(&on_pool, async { 1 })).await.expect("joined");
        let from_worker = tokio::spawn(async move { wait_on(&runtime, async { 2 }) }).await.expect("joined");
        assert_eq!((from_pool, from_worker), (1, 2));
    }

    #[tokio::test]
    async fn a_follower_refreshes_at_once_then_after_each_change_it_did_not_see() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;
        let (sender, mut receiver) = watch::channel(Arc::new(ClusterMetadata::default()));
        // A change applied between the store's first read and the subscription: already seen by the receiver.
        sender.send_replace(Arc::new(ClusterMetadata::default()));
        receiver.borrow_and_update();
        let refreshes = Arc::new(AtomicUsize::new(0));
        let following = tokio::spawn(follow(receiver, Arc::downgrade(&refreshes), |count: &AtomicUsize| {
            count.fetch_add(1, Ordering::SeqCst);
        }));
        let wait_for = |expected: usize| {
            let refreshes = Arc::clone(&refreshes);
            async move {
                while refreshes.load(Ordering::SeqCst) < expected {
                    tokio::task::yield_now().await;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait_for(1)).await.expect("refreshed without a change");
        sender.send_replace(Arc::new(ClusterMetadata::default()));
        tokio::time::timeout(Duration::from_secs(5), wait_for(2)).await.expect("refreshed after the change");
        drop(refreshes);
        sender.send_replace(Arc::new(ClusterMetadata::default()));
        tokio::time::timeout(Duration::from_secs(5), following).await.expect("ends").expect("joined");
    }
}
