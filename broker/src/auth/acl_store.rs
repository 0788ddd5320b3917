//! The node's ACLs in `<data>/__acls.json`, rewritten whole and atomically (temporary file, fsync, rename,
//! directory fsync) on every change, as `__users.json` is: a crash leaves the old set or the new one.
//!
//! Every authorized request reads the bindings: it takes a snapshot (`Arc`) under a read lock held for no I/O.
//! Writers are serialized by their own lock, held across the file write, then swap the snapshot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::acl::{AclBinding, AclFilter, InvalidAcl};

/// The file, in the data dir (`__`: the broker's own name space).
pub const ACLS_FILE: &str = "__acls.json";
const FORMAT_VERSION: u32 = 1;
/// Most bindings a node holds: each request scans the ones of its principal, and the file is rewritten whole.
pub const MAX_ACLS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error(transparent)]
    Invalid(#[from] InvalidAcl),
    #[error("too many ACLs: a node holds at most {limit}")]
    TooMany { limit: usize },
    #[error("ACLs are not replicated across a cluster yet: `rill acl` works on a single node only (docs/security.md)")]
    NotOnCluster,
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
            AclError::NotOnCluster => Reason::Unsupported,
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
    path: PathBuf,
    current: RwLock<Arc<Vec<AclBinding>>>,
    writer: Mutex<()>,
}

impl std::fmt::Debug for AclStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclStore").field("path", &self.path).finish_non_exhaustive()
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
        Ok(Self { path, current: RwLock::new(Arc::new(acls.into_iter().collect())), writer: Mutex::new(()) })
    }

    /// Every binding, in a stable order (resource type, pattern, name, principal, ...).
    pub fn snapshot(&self) -> Arc<Vec<AclBinding>> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Applies `change` to a copy, writes it, then publishes it: a failed write changes nothing.
    fn update<T>(&self, change: impl FnOnce(&mut BTreeSet<AclBinding>) -> Result<T, AclError>) -> Result<T, AclError> {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut acls: BTreeSet<AclBinding> = self.snapshot().iter().cloned().collect();
        let outcome = change(&mut acls)?;
        let file = AclsFile { version: FORMAT_VERSION, acls };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|err| AclError::Internal(err.to_string()))?;
        crate::meta::write_atomically(&self.path, &bytes)
            .map_err(|err| AclError::Internal(format!("cannot write {}: {err}", self.path.display())))?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(file.acls.into_iter().collect());
        Ok(outcome)
    }

    /// Adds `bindings` (all or none); one already held is not added twice. Returns how many were new.
    pub fn add(&self, bindings: Vec<AclBinding>) -> Result<usize, AclError> {
        for binding in &bindings {
            binding.validate()?;
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
    use crate::auth::acl::{Operation, PatternType, Permission, ResourceType, ANY_HOST};

    fn allow_read(principal: &str, topic: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            pattern_type: PatternType::Literal,
            name: topic.into(),
            principal: principal.into(),
            host: ANY_HOST.into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        }
    }

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
