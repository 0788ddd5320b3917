//! Where the quotas live. A single node keeps them in `<data>/__quotas.json`, rewritten whole and atomically
//! (temporary file, fsync, rename, directory fsync) on every change, as `__acls.json` is; a cluster node keeps
//! them in the replicated cluster metadata, the same on every node, and changes them by proposing
//! `AlterClientQuotas` to the controller leader.
//!
//! Every produce and fetch asks whether any quota is set (one atomic load); only then does it take the snapshot
//! (`Arc`) under a read lock held for no I/O.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::{ClientQuotas, InvalidQuota, QuotaChange, QuotaKey};
use crate::auth::replicated::{ClusterAccess, StoreBacking as Backing};
use crate::cluster::access::AccessRefusal;
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;

/// The file, in the data dir (`__`: the broker's own name space).
pub const QUOTAS_FILE: &str = "__quotas.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Invalid(#[from] InvalidQuota),
    #[error("the cluster could not record the change: {reason}")]
    Unavailable { reason: String },
    #[error("corrupt quota file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct QuotasFile {
    version: u32,
    quotas: ClientQuotas,
}

pub struct QuotaStore {
    backing: Backing,
    current: RwLock<Arc<ClientQuotas>>,
    /// Whether `current` holds any quota: what the data path asks first.
    is_any_set: AtomicBool,
    /// Whether any entity in `current` holds a `request_percentage`: when not, no request's handling is timed.
    is_request_time_set: AtomicBool,
    /// Serializes the writers of the file, or the swaps of the snapshot on a cluster node.
    writer: Mutex<()>,
}

impl std::fmt::Debug for QuotaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaStore").field("backing", &self.backing).finish_non_exhaustive()
    }
}

impl QuotaStore {
    /// Loads `<data_dir>/__quotas.json`, or starts with no quota without one. A damaged file stops the start:
    /// starting without the quotas would let every client run unthrottled, unnoticed.
    pub fn open(data_dir: &Path) -> Result<Self, QuotaError> {
        let path = data_dir.join(QUOTAS_FILE);
        let quotas = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => ClientQuotas::default(),
            Err(source) => return Err(QuotaError::Io { path, source }),
        };
        Ok(Self::with(Backing::File(path), Arc::new(quotas)))
    }

    /// The quotas of the cluster `controller` belongs to, as this node applied them. Changes propose commands
    /// through `runtime`, so they are made from its blocking pool, as a single node's file writes are.
    pub fn replicated(controller: Arc<Controller>, runtime: Handle) -> Arc<Self> {
        let access = ClusterAccess::new(controller, runtime);
        let quotas = Arc::clone(&access.metadata().client_quotas);
        let store = Arc::new(Self::with(Backing::Cluster(access), quotas));
        if let Backing::Cluster(access) = &store.backing {
            access.follow(Arc::downgrade(&store), Self::refresh);
        }
        store
    }

    fn with(backing: Backing, quotas: Arc<ClientQuotas>) -> Self {
        let is_any_set = AtomicBool::new(!quotas.is_empty());
        let is_request_time_set = AtomicBool::new(quotas.holds(QuotaKey::RequestPercentage));
        Self { backing, current: RwLock::new(quotas), is_any_set, is_request_time_set, writer: Mutex::new(()) }
    }

    /// Whether any quota is set: when not, nothing is metered.
    pub fn is_any_set(&self) -> bool {
        self.is_any_set.load(Ordering::Relaxed)
    }

    /// Whether any client is held to a `request_percentage`: when not, nothing times a request's handling.
    pub fn is_request_time_set(&self) -> bool {
        self.is_request_time_set.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<ClientQuotas> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn publish(&self, quotas: Arc<ClientQuotas>) {
        self.is_any_set.store(!quotas.is_empty(), Ordering::Relaxed);
        self.is_request_time_set.store(quotas.holds(QuotaKey::RequestPercentage), Ordering::Relaxed);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = quotas;
    }

    /// On a cluster node: takes the quotas this node last applied.
    fn refresh(&self) {
        let Backing::Cluster(access) = &self.backing else { return };
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.publish(Arc::clone(&access.metadata().client_quotas));
    }

    /// Checks `changes` and, unless `validate_only`, applies them all (or none, if one is invalid). Whether
    /// anything changed. Blocks on a file write or the controller: call it from the blocking pool.
    pub fn alter(&self, changes: Vec<QuotaChange>, validate_only: bool) -> Result<bool, QuotaError> {
        let mut next = ClientQuotas::clone(&self.snapshot());
        let changes_anything = next.apply(&changes)?;
        if validate_only || !changes_anything {
            return Ok(false);
        }
        match &self.backing {
            Backing::Cluster(access) => {
                // Applied once applying the changes again would change nothing on this node's metadata.
                let is_applied =
                    |m: &ClusterMetadata| ClientQuotas::clone(&m.client_quotas).apply(&changes) == Ok(false);
                let outcome = access
                    .propose(Command::AlterClientQuotas { changes: changes.clone() }, is_applied)
                    .map_err(|reason| QuotaError::Unavailable { reason })?;
                self.refresh();
                match outcome.refusal {
                    None => Ok(outcome.changed),
                    Some(AccessRefusal::TooManyQuotas) => Err(InvalidQuota::TooMany.into()),
                    Some(refusal) => {
                        Err(QuotaError::Internal(format!("the controller refused the quota change as {refusal:?}")))
                    }
                }
            }
            Backing::File(path) => {
                let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                // Again under the lock: another writer may have changed the quotas since the check above.
                let mut next = ClientQuotas::clone(&self.snapshot());
                if !next.apply(&changes)? {
                    return Ok(false);
                }
                let file = QuotasFile { version: FORMAT_VERSION, quotas: next };
                let bytes = serde_json::to_vec_pretty(&file).map_err(|err| QuotaError::Internal(err.to_string()))?;
                crate::meta::write_atomically(path, &bytes)
                    .map_err(|err| QuotaError::Write { path: path.clone(), reason: err.to_string() })?;
                self.publish(Arc::new(file.quotas));
                Ok(true)
            }
        }
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<ClientQuotas, QuotaError> {
    let corrupt = |reason: String| QuotaError::Corrupt { path: path.to_owned(), reason };
    let file: QuotasFile = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {} (this broker reads {FORMAT_VERSION})", file.version)));
    }
    // What `apply` would have refused stops the start as a damaged file does.
    if let Some((entity, _)) = file.quotas.entries().find(|(_, values)| values.is_empty()) {
        return Err(corrupt(format!("{entity} holds no quota")));
    }
    let mut checked = ClientQuotas::default();
    let changes: Vec<QuotaChange> = file
        .quotas
        .entries()
        .flat_map(|(entity, values)| {
            values.iter().map(|(key, value)| QuotaChange { entity: entity.clone(), key: *key, value: Some(*value) })
        })
        .collect();
    checked.apply(&changes).map_err(|err| corrupt(err.to_string()))?;
    Ok(file.quotas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::{EntityName, QuotaEntity, QuotaKey};

    fn alice_produces_at(value: Option<u64>) -> QuotaChange {
        let entity = QuotaEntity { user: Some(EntityName::Named("alice".into())), client_id: None, ip: None };
        QuotaChange { entity, key: QuotaKey::ProducerByteRate, value }
    }

    #[test]
    fn quotas_persist_across_a_reopen_and_validate_only_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = QuotaStore::open(dir.path()).expect("empty store");
        assert!(!store.is_any_set());
        assert!(!store.alter(vec![alice_produces_at(Some(100))], true).expect("valid"), "validate only");
        assert!(!store.is_any_set() && !dir.path().join(QUOTAS_FILE).exists());
        assert!(store.alter(vec![alice_produces_at(Some(100))], false).expect("valid"));
        assert!(store.is_any_set());
        let reopened = QuotaStore::open(dir.path()).expect("reopen");
        assert_eq!(reopened.snapshot(), store.snapshot());
        assert_eq!(
            reopened.snapshot().resolve(QuotaKey::ProducerByteRate, "alice", "x").map(|q| q.bytes_per_sec),
            Some(100)
        );
        assert!(reopened.alter(vec![alice_produces_at(None)], false).expect("valid"));
        assert!(!reopened.is_any_set());
        assert!(QuotaStore::open(dir.path()).expect("reopen").snapshot().is_empty());
    }

    #[test]
    fn an_invalid_change_writes_nothing_and_a_damaged_file_stops_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = QuotaStore::open(dir.path()).expect("empty store");
        let err = store.alter(vec![alice_produces_at(Some(100)), alice_produces_at(Some(0))], false).expect_err("0");
        assert!(matches!(err, QuotaError::Invalid(InvalidQuota::Value { .. })), "{err}");
        assert!(store.snapshot().is_empty(), "all or nothing");
        std::fs::write(dir.path().join(QUOTAS_FILE), br#"{"version":1,"quotas":[{"entity":{},"values":{}}]}"#)
            .expect("damage");
        let err = QuotaStore::open(dir.path()).expect_err("an entity of nothing");
        assert!(err.to_string().contains(QUOTAS_FILE), "{err}");
    }
}
