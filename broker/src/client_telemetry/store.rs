//! Where the subscriptions set through the Kafka API last. A single node keeps them in
//! `<data>/__client-metrics.json`, rewritten whole and atomically (temporary file, fsync, rename) before an alter
//! is answered; a file that cannot be read stops the start, naming it, rather than letting clients silently push
//! nothing. A cluster node keeps them in the replicated cluster metadata (`Command::AlterClientMetrics`), so every
//! node asks the same clients for the same metrics; an alter is answered once committed and applied on the node
//! asked.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::subscriptions::{StoredSubscriptions, SubscriptionError};
use crate::auth::replicated::{ClusterAccess, StoreBacking};
use crate::cluster::access::AccessRefusal;
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;
use crate::error::BrokerError;

/// The file, in the data dir (`__`: the broker's own name space).
pub const FILE: &str = "__client-metrics.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionsFile {
    version: u32,
    subscriptions: StoredSubscriptions,
}

/// Why an alter did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AlterSubscriptionError {
    #[error(transparent)]
    Refused(#[from] SubscriptionError),
    #[error(transparent)]
    Store(#[from] BrokerError),
}

enum Backing {
    Lasting(StoreBacking),
    /// A test's: alters last as long as the store.
    #[cfg(test)]
    Memory,
}

pub struct SubscriptionStore {
    backing: Backing,
    current: RwLock<Arc<StoredSubscriptions>>,
    /// Held by a writer from reading the subscriptions to publishing the changed ones.
    writer: Mutex<()>,
}

impl SubscriptionStore {
    /// Loads `<data_dir>/__client-metrics.json`, or starts with none without one.
    pub fn open(data_dir: &Path) -> Result<Self, BrokerError> {
        let path = data_dir.join(FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => StoredSubscriptions::default(),
            Err(err) => return Err(BrokerError::io(&path)(err)),
        };
        Ok(Self::with(Backing::Lasting(StoreBacking::File(path)), Arc::new(stored)))
    }

    /// The subscriptions of the cluster `controller` belongs to, as this node applied them; alters proposed
    /// through `runtime`, from its blocking pool.
    pub fn replicated(controller: Arc<Controller>, runtime: Handle) -> Arc<Self> {
        let access = ClusterAccess::new(controller, runtime);
        let stored = Arc::clone(&access.metadata().client_metrics);
        let store = Arc::new(Self::with(Backing::Lasting(StoreBacking::Cluster(access)), stored));
        if let Backing::Lasting(StoreBacking::Cluster(access)) = &store.backing {
            access.follow(Arc::downgrade(&store), Self::refresh);
        }
        store
    }

    /// A test's: none stored, alters kept in memory.
    #[cfg(test)]
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self::with(Backing::Memory, Arc::default()))
    }

    fn with(backing: Backing, stored: Arc<StoredSubscriptions>) -> Self {
        Self { backing, current: RwLock::new(stored), writer: Mutex::new(()) }
    }

    /// The subscriptions now: a new `Arc` after each change, so a reader can tell a change by its pointer.
    pub fn snapshot(&self) -> Arc<StoredSubscriptions> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn publish(&self, stored: Arc<StoredSubscriptions>) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = stored;
    }

    /// On a cluster node: takes the subscriptions this node last applied, if they changed.
    fn refresh(&self) {
        let Backing::Lasting(StoreBacking::Cluster(access)) = &self.backing else { return };
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let applied = Arc::clone(&access.metadata().client_metrics);
        if !Arc::ptr_eq(&applied, &self.snapshot()) {
            self.publish(applied);
        }
    }

    /// Sets and deletes keys of subscription `name`: checked, then, unless `validate_only`, stored and published.
    /// Blocks on the disk or the controller: call it from the blocking pool.
    pub fn alter(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), AlterSubscriptionError> {
        if let Backing::Lasting(StoreBacking::Cluster(access)) = &self.backing {
            StoredSubscriptions::clone(&self.snapshot()).apply(name, changes)?;
            if validate_only {
                return Ok(());
            }
            return self.propose(access, name, changes);
        }
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = StoredSubscriptions::clone(&self.snapshot());
        if !next.apply(name, changes)? || validate_only {
            return Ok(());
        }
        if let Backing::Lasting(StoreBacking::File(path)) = &self.backing {
            let file = SubscriptionsFile { version: FORMAT_VERSION, subscriptions: next };
            let bytes = serde_json::to_vec_pretty(&file).map_err(|err| BrokerError::Internal(err.to_string()))?;
            crate::meta::write_atomically(path, &bytes)?;
            next = file.subscriptions;
        }
        self.publish(Arc::new(next));
        Ok(())
    }

    /// Commits the change to the cluster metadata and waits until this node applied it.
    fn propose(
        &self,
        access: &ClusterAccess,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), AlterSubscriptionError> {
        let command = Command::AlterClientMetrics { name: name.to_owned(), changes: changes.to_vec() };
        // Applied once applying the changes again would change nothing in this node's metadata.
        let is_applied = |metadata: &ClusterMetadata| {
            StoredSubscriptions::clone(&metadata.client_metrics).apply(name, changes) == Ok(false)
        };
        let outcome =
            access.propose(command, is_applied).map_err(|reason| BrokerError::ControllerUnavailable { reason })?;
        self.refresh();
        match outcome.refusal {
            None => Ok(()),
            Some(AccessRefusal::TooManySubscriptions) => Err(SubscriptionError::TooMany.into()),
            Some(refusal) => Err(BrokerError::Internal(format!(
                "the cluster metadata refused the change of client metrics subscription {name} as {refusal:?}"
            ))
            .into()),
        }
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<StoredSubscriptions, BrokerError> {
    let corrupt = |reason: String| BrokerError::CorruptMetadata { path: path.to_owned(), reason };
    let file: SubscriptionsFile = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {} (this broker reads {FORMAT_VERSION})", file.version)));
    }
    file.subscriptions.check().map_err(corrupt)?;
    Ok(file.subscriptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> (String, Option<String>) {
        (key.to_owned(), Some(value.to_owned()))
    }

    #[test]
    fn subscriptions_survive_a_reopen_and_validate_only_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SubscriptionStore::open(dir.path()).expect("empty store");
        store.alter("orders", &[set("metrics", "org.apache.kafka.producer.")], true).expect("valid");
        assert!(store.snapshot().is_empty() && !dir.path().join(FILE).exists(), "validate only");
        let before = store.snapshot();
        store
            .alter("orders", &[set("metrics", "org.apache.kafka.producer."), set("interval.ms", "5000")], false)
            .expect("stored");
        assert!(!Arc::ptr_eq(&before, &store.snapshot()), "a change is a new snapshot");
        let refused = store.alter("orders", &[set("interval.ms", "5")], false).expect_err("refused");
        assert!(matches!(refused, AlterSubscriptionError::Refused(SubscriptionError::InvalidValue { .. })));

        let reopened = SubscriptionStore::open(dir.path()).expect("reopen");
        assert_eq!(*reopened.snapshot(), *store.snapshot());
        assert_eq!(reopened.snapshot().subscriptions()[0].interval_ms, 5000);
    }

    #[test]
    fn a_damaged_or_forged_file_stops_the_start_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"{not json").expect("write");
        let err = SubscriptionStore::open(dir.path()).err().expect("refused").to_string();
        assert!(err.contains(FILE), "{err}");
        std::fs::write(&path, br#"{"version":1,"subscriptions":{"s":{"interval.ms":"1"}}}"#).expect("write");
        let err = SubscriptionStore::open(dir.path()).err().expect("refused").to_string();
        assert!(err.contains("interval.ms") && err.contains(FILE), "{err}");
        std::fs::write(&path, br#"{"version":7,"subscriptions":{}}"#).expect("write");
        assert!(SubscriptionStore::open(dir.path()).is_err());
    }
}
