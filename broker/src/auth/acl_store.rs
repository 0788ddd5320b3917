//! The node's ACLs. A single node keeps them in `<data>/__acls.json`, rewritten whole and atomically (temporary
//! file, fsync, rename, directory fsync) on every change, as `__users.json` is: a crash leaves the old set or
//! the new one. A cluster node keeps them in the replicated cluster metadata (`replicated.rs`), the same on
//! every node, and changes them by proposing a command to the controller leader.
//!
//! Every authorized request reads the bindings: it takes a snapshot (`Arc`) under a read lock held for no I/O.
//! On a single node writers are serialized by their own lock, held across the file write, then swap the
//! snapshot; on a cluster node the snapshot is the metadata's own list, swapped whenever a command changes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::acl::{AclBinding, AclFilter, InvalidAcl};
use super::replicated::{ClusterAccess, StoreBacking as Backing};
use crate::cluster::access::AccessRefusal;
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;

/// The file, in the data dir (`__`: the broker's own name space).
pub const ACLS_FILE: &str = "__acls.json";
const FORMAT_VERSION: u32 = 1;
/// Most bindings a node (or a cluster) holds: each request scans the ones of its principal, and the file, or the
/// metadata's list, is rewritten whole on a change.
pub const MAX_ACLS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error(transparent)]
    Invalid(#[from] InvalidAcl),
    #[error("too many ACLs: a node or a cluster holds at most {limit}")]
    TooMany { limit: usize },
    #[error("the cluster could not record the change: {reason}")]
    Unavailable { reason: String },
    #[error("corrupt ACL file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AclError {
    pub fn reason(&self) -> rill_protocol::reason::Reason {
        use rill_protocol::reason::Reason;
        match self {
            AclError::Invalid(_) => Reason::InvalidArgument,
            AclError::TooMany { .. } => Reason::LimitReached,
            AclError::Unavailable { .. } => Reason::ControllerUnavailable,
            AclError::Io { .. } => Reason::StorageFailure,
            AclError::Corrupt { .. } | AclError::Internal(_) => Reason::Internal,
        }
    }
}

impl From<AclError> for tonic::Status {
    fn from(err: AclError) -> Self {
        err.reason().status(err.to_string())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AclsFile {
    version: u32,
    acls: BTreeSet<AclBinding>,
}

pub struct AclStore {
    backing: Backing,
    current: RwLock<Arc<Vec<AclBinding>>>,
    /// Serializes the writers of the file, or the swaps of the snapshot on a cluster node.
    writer: Mutex<()>,
}

impl std::fmt::Debug for AclStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclStore").field("backing", &self.backing).finish_non_exhaustive()
    }
}

impl AclStore {
    /// Loads `<data_dir>/__acls.json`, or starts empty without one. A damaged file stops the start: starting
    /// without its DENYs would let through what the operator shut out.
    pub fn open(data_dir: &Path) -> Result<Self, AclError> {
        let path = data_dir.join(ACLS_FILE);
        let acls = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => return Err(AclError::Io { path, source }),
        };
        let current = RwLock::new(Arc::new(acls.into_iter().collect()));
        Ok(Self { backing: Backing::File(path), current, writer: Mutex::new(()) })
    }

    /// The ACLs of the cluster `controller` belongs to, as this node applied them. Writes propose commands
    /// through `runtime`, so they are called from its blocking pool, as a single node's file writes are.
    pub fn replicated(controller: Arc<Controller>, runtime: Handle) -> Arc<Self> {
        let access = ClusterAccess::new(controller, runtime);
        let current = RwLock::new(Arc::clone(&access.metadata().acls));
        let store = Arc::new(Self { backing: Backing::Cluster(access), current, writer: Mutex::new(()) });
        if let Backing::Cluster(access) = &store.backing {
            access.follow(Arc::downgrade(&store), Self::refresh);
        }
        store
    }

    /// On a cluster node: takes the bindings this node last applied (the metadata keeps them sorted, as here).
    fn refresh(&self) {
        let Backing::Cluster(access) = &self.backing else { return };
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let acls = Arc::clone(&access.metadata().acls);
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = acls;
    }

    /// On a cluster node: proposes `command`, then holds what this node applied. The count it added or removed.
    fn propose(
        &self,
        access: &ClusterAccess,
        command: Command,
        is_applied: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<usize, AclError> {
        let outcome = access.propose(command, is_applied).map_err(|reason| AclError::Unavailable { reason })?;
        self.refresh();
        match outcome.refusal {
            None => Ok(outcome.count.unwrap_or(0) as usize),
            Some(AccessRefusal::TooManyAcls) => Err(AclError::TooMany { limit: MAX_ACLS }),
            Some(refusal) => Err(AclError::Internal(format!("the controller refused the ACL change as {refusal:?}"))),
        }
    }

    /// Every binding, in a stable order (resource type, pattern, name, principal, ...).
    pub fn snapshot(&self) -> Arc<Vec<AclBinding>> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Applies `change` to a copy, writes it, then publishes it: a failed write changes nothing.
    fn update<T>(&self, change: impl FnOnce(&mut BTreeSet<AclBinding>) -> Result<T, AclError>) -> Result<T, AclError> {
        let Backing::File(path) = &self.backing else {
            return Err(AclError::Internal("a cluster node's ACLs change by proposing, not in a file".into()));
        };
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut acls: BTreeSet<AclBinding> = self.snapshot().iter().cloned().collect();
        let outcome = change(&mut acls)?;
        let file = AclsFile { version: FORMAT_VERSION, acls };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|err| AclError::Internal(err.to_string()))?;
        crate::meta::write_atomically(path, &bytes)
            .map_err(|err| AclError::Internal(format!("cannot write {}: {err}", path.display())))?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(file.acls.into_iter().collect());
        Ok(outcome)
    }

    /// Adds `bindings` (all or none); one already held is not added twice. Returns how many were new.
    pub fn add(&self, bindings: Vec<AclBinding>) -> Result<usize, AclError> {
        for binding in &bindings {
            binding.validate()?;
        }
        if let Backing::Cluster(access) = &self.backing {
            let snapshot = self.snapshot();
            let new: BTreeSet<&AclBinding> = bindings.iter().filter(|b| snapshot.binary_search(b).is_err()).collect();
            if snapshot.len() + new.len() > MAX_ACLS {
                return Err(AclError::TooMany { limit: MAX_ACLS });
            }
            if new.is_empty() {
                return Ok(0);
            }
            let is_applied = |m: &ClusterMetadata| bindings.iter().all(|b| m.acls.binary_search(b).is_ok());
            return self.propose(access, Command::AddAcls { bindings: bindings.clone() }, is_applied);
        }
        self.update(|acls| {
            let before = acls.len();
            acls.extend(bindings);
            if acls.len() > MAX_ACLS {
                return Err(AclError::TooMany { limit: MAX_ACLS });
            }
            Ok(acls.len() - before)
        })
    }

    /// Removes every binding `filter` matches, and returns them.
    pub fn remove(&self, filter: &AclFilter) -> Result<Vec<AclBinding>, AclError> {
        if !self.snapshot().iter().any(|b| filter.matches(b)) {
            return Ok(Vec::new());
        }
        if let Backing::Cluster(access) = &self.backing {
            // The bindings the filter matches here: a binding added elsewhere meanwhile stays, as it would had it
            // been added a moment later.
            let matched = self.list(filter);
            let is_applied = |m: &ClusterMetadata| matched.iter().all(|b| m.acls.binary_search(b).is_err());
            self.propose(access, Command::RemoveAcls { bindings: matched.clone() }, is_applied)?;
            return Ok(matched);
        }
        self.update(|acls| {
            let removed: Vec<AclBinding> = acls.iter().filter(|b| filter.matches(b)).cloned().collect();
            acls.retain(|b| !filter.matches(b));
            Ok(removed)
        })
    }

    pub fn list(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.snapshot().iter().filter(|b| filter.matches(b)).cloned().collect()
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeSet<AclBinding>, AclError> {
    let corrupt = |reason: String| AclError::Corrupt { path: path.to_owned(), reason };
    let file: AclsFile = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {} (this broker reads {FORMAT_VERSION})", file.version)));
    }
    if let Some(err) = file.acls.iter().find_map(|b| b.validate().err()) {
        return Err(corrupt(err.to_string()));
    }
    Ok(file.acls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::allow_read;

    #[test]
    fn acls_persist_across_a_reopen_and_remove_by_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = AclStore::open(dir.path()).expect("empty store");
        let added = store
            .add(vec![allow_read("User:alice", "a"), allow_read("User:bob", "a"), allow_read("User:alice", "a")])
            .expect("add");
        assert_eq!(added, 2, "a duplicate is stored once");
        assert_eq!(store.add(vec![allow_read("User:alice", "a")]).expect("again"), 0);
        let reopened = AclStore::open(dir.path()).expect("reopen");
        assert_eq!(reopened.list(&AclFilter::default()).len(), 2);
        let removed = reopened
            .remove(&AclFilter { principal: Some("User:alice".into()), ..AclFilter::default() })
            .expect("remove");
        assert_eq!(removed, vec![allow_read("User:alice", "a")]);
        assert_eq!(
            AclStore::open(dir.path()).expect("reopen").list(&AclFilter::default()),
            [allow_read("User:bob", "a")]
        );
    }

    #[test]
    fn an_invalid_binding_adds_nothing_and_a_damaged_file_stops_the_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = AclStore::open(dir.path()).expect("empty store");
        let err = store.add(vec![allow_read("User:alice", "a"), allow_read("alice", "b")]).expect_err("bad principal");
        assert!(matches!(err, AclError::Invalid(InvalidAcl::Principal(_))), "{err}");
        assert!(store.list(&AclFilter::default()).is_empty(), "all or nothing");
        std::fs::write(dir.path().join(ACLS_FILE), b"{\"version\":1,\"acls\":[").expect("damage");
        let err = AclStore::open(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains(ACLS_FILE), "{err}");
    }
}
