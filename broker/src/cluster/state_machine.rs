//! The raft state machine: [`ClusterMetadata`] in memory, rebuilt on start from the last snapshot
//! (`<data>/__raft/snapshot.json`, replaced atomically) plus the log entries after it, which openraft replays.
//! Every applied change is published on a `watch` channel for readers (describe, the session keeper).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};

use super::metadata::{ClusterMetadata, CommandOutcome};
use super::{NodeId, TypeConfig};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    metadata: ClusterMetadata,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The `ClusterMetadata` as JSON: the bytes sent to followers that are too far behind.
    data: Vec<u8>,
}

struct Inner {
    state: AppliedState,
    snapshot: Option<StoredSnapshot>,
    snapshot_path: PathBuf,
}

/// Clones share the state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Arc<ClusterMetadata>>>,
}

fn snapshot_error(err: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &err).into()
}

impl StateMachine {
    /// Loads the last snapshot from `raft_dir`, if there is one.
    pub fn open(raft_dir: &Path) -> std::io::Result<Self> {
        let snapshot_path = raft_dir.join("snapshot.json");
        let (state, snapshot) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let snapshot: StoredSnapshot = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                let metadata = serde_json::from_slice(&snapshot.data).map_err(std::io::Error::other)?;
                let state = AppliedState {
                    last_applied: snapshot.meta.last_log_id,
                    membership: snapshot.meta.last_membership.clone(),
                    metadata,
                };
                (state, Some(snapshot))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => (AppliedState::default(), None),
            Err(err) => return Err(err),
        };
        let (published, _) = watch::channel(Arc::new(state.metadata.clone()));
        let inner = Inner { state, snapshot, snapshot_path };
        Ok(Self { inner: Arc::new(Mutex::new(inner)), published: Arc::new(published) })
    }

    /// The metadata as last applied, and every later change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.published.subscribe()
    }

    async fn store_snapshot(path: PathBuf, snapshot: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(snapshot).map_err(snapshot_error)?;
        tokio::task::spawn_blocking(move || crate::meta::write_atomically(&path, &bytes))
            .await
            .map_err(snapshot_error)?
            .map_err(snapshot_error)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        let data = serde_json::to_vec(&inner.state.metadata).map_err(snapshot_error)?;
        let snapshot_id = match inner.state.last_applied {
            Some(last) => format!("{}-{}", last.leader_id, last.index),
            None => "empty".to_owned(),
        };
        let meta = SnapshotMeta {
            last_log_id: inner.state.last_applied,
            last_membership: inner.state.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        // On disk before openraft may purge the log entries it covers.
        Self::store_snapshot(inner.snapshot_path.clone(), &stored).await?;
        inner.snapshot = Some(stored);
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok((inner.state.last_applied, inner.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.inner.lock().await;
        let mut outcomes = Vec::new();
        for entry in entries {
            inner.state.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => CommandOutcome::unchanged(),
                EntryPayload::Normal(command) => inner.state.metadata.apply(&command),
                EntryPayload::Membership(membership) => {
                    inner.state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandOutcome::unchanged()
                }
            };
            outcomes.push(outcome);
        }
        self.published.send_replace(Arc::new(inner.state.metadata.clone()));
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let metadata: ClusterMetadata = serde_json::from_slice(&data)
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e)))?;
        let mut inner = self.inner.lock().await;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        Self::store_snapshot(inner.snapshot_path.clone(), &stored).await?;
        inner.state =
            AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone(), metadata };
        inner.snapshot = Some(stored);
        self.published.send_replace(Arc::new(inner.state.metadata.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok(inner
            .snapshot
            .as_ref()
            .map(|stored| Snapshot { meta: stored.meta.clone(), snapshot: Box::new(Cursor::new(stored.data.clone())) }))
    }
}
