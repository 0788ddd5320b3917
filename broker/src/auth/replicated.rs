//! How a cluster node's [`UserStore`](super::UserStore) and [`AclStore`](super::acl_store::AclStore) reach the
//! users and ACLs in the replicated cluster metadata (`cluster/access.rs`): they read a snapshot they swap when
//! an applied command changes what they hold, and write by proposing a command to the controller leader.
//!
//! A write returns once this node has applied the change, so what a client just created it can list, or log in
//! with, on the node it asked. Other nodes apply it one raft round trip later.

use std::sync::{Arc, Weak};

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::cluster::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::cluster::Controller;

pub struct ClusterAccess {
    controller: Arc<Controller>,
    runtime: Handle,
}

impl ClusterAccess {
    /// `runtime` runs the proposals; the stores' writes are called from a blocking thread of it (as their
    /// file writes on a single node are).
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
        self.runtime.block_on(async {
            let outcome = self.controller.propose(command).await.map_err(|err| err.to_string())?;
            if outcome.changed && !self.controller.wait_for_metadata(is_applied).await {
                return Err("the change was committed but this node has not applied it yet: try again".into());
            }
            Ok(outcome)
        })
    }

    /// Calls `refresh` on `store` after every change of the metadata, until the store is dropped.
    pub fn follow<S: Send + Sync + 'static>(&self, store: Weak<S>, refresh: fn(&S)) {
        let metadata = self.controller.watch_metadata();
        self.runtime.spawn(follow(metadata, store, refresh));
    }
}

async fn follow<S>(mut metadata: watch::Receiver<Arc<ClusterMetadata>>, store: Weak<S>, refresh: fn(&S)) {
    while metadata.changed().await.is_ok() {
        let Some(store) = store.upgrade() else { return };
        refresh(&store);
    }
}
