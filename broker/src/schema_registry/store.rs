//! Where the registry lives: a single node's `<data>/__schemas.json`, rewritten whole and atomically on each
//! change (`meta::write_atomically`), or a cluster's replicated metadata, changed by a command every node applies
//! the same way (`registry.rs` is pure). Readers take an `Arc` snapshot; writers are serialized, so a
//! registration's compatibility check and its new version see the same state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::registry::{SchemaChange, SchemaError, SchemaRegistry};
use crate::auth::replicated::{ClusterAccess, StoreBacking};
use crate::cluster::metadata::Command;
use crate::cluster::Controller;

/// The registry file in a single node's data dir.
pub const SCHEMAS_FILE: &str = "__schemas.json";

/// Why a change could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Refused(#[from] SchemaError),
    #[error("cannot read the schema registry {path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("the schema registry could not be saved: {0}")]
    Unavailable(String),
}

pub struct SchemaStore {
    backing: StoreBacking,
    current: RwLock<Arc<SchemaRegistry>>,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SchemaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaStore").field("backing", &self.backing).finish_non_exhaustive()
    }
}

impl SchemaStore {
    /// A single node's registry, from its file if it has one. A damaged file stops the start rather than start
    /// empty and hand out ids that readers already map to other schemas.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(SCHEMAS_FILE);
        let registry = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged { path: path.clone(), reason: e.to_string() })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => SchemaRegistry::default(),
            Err(err) => return Err(StoreError::Damaged { path, reason: err.to_string() }),
        };
        Ok(Self::with(StoreBacking::File(path), registry.into()))
    }

    /// The registry of the cluster `controller` belongs to, as this node applied it.
    pub fn replicated(controller: Arc<Controller>, runtime: tokio::runtime::Handle) -> Arc<Self> {
        let access = ClusterAccess::new(controller, runtime);
        let registry = Arc::clone(&access.metadata().schema_registry);
        let store = Arc::new(Self::with(StoreBacking::Cluster(access), registry));
        if let StoreBacking::Cluster(access) = &store.backing {
            access.follow(Arc::downgrade(&store), Self::refresh);
        }
        store
    }

    fn with(backing: StoreBacking, registry: Arc<SchemaRegistry>) -> Self {
        Self { backing, current: RwLock::new(registry), writer: tokio::sync::Mutex::new(()) }
    }

    fn refresh(&self) {
        if let StoreBacking::Cluster(access) = &self.backing {
            *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Arc::clone(&access.metadata().schema_registry);
        }
    }

    pub fn snapshot(&self) -> Arc<SchemaRegistry> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Makes `change`: checked on this node's state first (a refusal costs no write), then written to the file,
    /// or committed through the controller, which applies it to the cluster's state again. Returns the state
    /// after it.
    pub async fn change(&self, change: SchemaChange) -> Result<Arc<SchemaRegistry>, StoreError> {
        let _one_at_a_time = self.writer.lock().await;
        let mut next = SchemaRegistry::clone(&self.snapshot());
        if !change.apply(&mut next)? {
            return Ok(self.snapshot());
        }
        match &self.backing {
            StoreBacking::File(path) => {
                let bytes = serde_json::to_vec(&next).map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let path = path.clone();
                tokio::task::spawn_blocking(move || crate::meta::write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let next = Arc::new(next);
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&next);
                Ok(next)
            }
            StoreBacking::Cluster(access) => {
                // The nonce tells this node when it has applied this very change, whatever others came between.
                let nonce: u64 = rand::random();
                let change_again = change.clone();
                let outcome = access
                    .propose_async(Command::ChangeSchemas { nonce, change }, |metadata| {
                        metadata.schema_registry.has_applied(nonce)
                    })
                    .await
                    .map_err(StoreError::Unavailable)?;
                self.refresh();
                if outcome.schema_refused {
                    // Another node's change came first (a version this one is not compatible with, say): the
                    // state this node now holds says why.
                    let mut now = SchemaRegistry::clone(&self.snapshot());
                    return Err(match change_again.apply(&mut now) {
                        Err(refusal) => StoreError::Refused(refusal),
                        Ok(_) => StoreError::Unavailable("the change met another one: try again".into()),
                    });
                }
                Ok(self.snapshot())
            }
        }
    }
}
