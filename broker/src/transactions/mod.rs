//! Kafka transactions: the transaction coordinator (Kafka's `TransactionCoordinator`), which turns
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn into transactional ids' states
//! (`state.rs`), stored durably, and into the markers (control batches) written to every partition a transaction
//! touched (`markers.rs`). The log does the rest (`rill_storage`'s producer state): its last stable offset and
//! aborted transactions are what `read_committed` consumers read by.
//!
//! A single node is its own coordinator and stores each id in a file (`store.rs`). On a cluster the coordinator is
//! the controller leader and the ids live in the replicated metadata (`replicated.rs`, which says how one
//! coordinator at a time is kept); partition leaders on other nodes write the markers and groups' coordinators
//! store the offsets, over the internal `Transaction` call (`remote.rs`).
//!
//! Invariants, and what each protects:
//! - A transactional batch is appended only while its producer's transaction is `Ongoing` at its epoch and has
//!   the partition added ([`TransactionCoordinator::admit_produce`]); the check holds a read guard of the id's gate
//!   until the batch is on the partition's queue, and an end of the transaction takes the gate for write before it
//!   moves the state on (on a cluster: the partition leader's gate, before the marker). So no batch of a
//!   transaction lands after its marker, which would leave a transaction open in the log that its coordinator
//!   considers finished (Kafka's "hanging transaction", KIP-890).
//! - The outcome (`PrepareCommit` / `PrepareAbort`) is stored before the first marker is written, and markers are
//!   durable (fsynced on a single node, on every in-sync replica on a cluster) before the transaction is
//!   `Complete`: a crash anywhere finishes the same outcome at the next start, or at the next coordinator
//!   ([`TransactionCoordinator::run_timers`]), and a completed transaction's marker is kept with its records.
//! - A transaction's committed offsets reach the group's offset store only after every marker is durable, and an
//!   aborted one's never do.
//! - Every operation on one transactional id runs alone (its `operation` lock); ids do not wait for each other.
//! - Bounded: at most [`MAX_TRANSACTIONAL_IDS`] ids (idle ones expire after [`ID_EXPIRATION_MS`]), at most
//!   [`MAX_TRANSACTION_PARTITIONS`] partitions and [`MAX_PENDING_OFFSETS`] offsets in one transaction, a timeout of at
//!   most [`MAX_TRANSACTION_TIMEOUT_MS`].

mod error;
mod markers;
pub mod remote;
mod replicated;
pub mod state;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_protocol::BatchHeader;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use crate::cluster::Controller;
use crate::error::Result;
use crate::node::{now_ms, Node};
pub use error::TransactionError;
pub use markers::Marker;
use markers::{store_offsets, write_marker};
pub use state::{PendingOffset, TransactionMetadata, TransactionState};

/// Kafka's `transaction.max.timeout.ms` default: the longest a producer may ask its transactions to stay open.
pub const MAX_TRANSACTION_TIMEOUT_MS: u64 = 15 * 60 * 1000;
/// Kafka's `transactional.id.expiration.ms` default: an id without a transaction this long is forgotten.
pub const ID_EXPIRATION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
pub const MAX_TRANSACTIONAL_IDS: usize = 10_000;
pub const MAX_TRANSACTION_PARTITIONS: usize = 10_000;
pub const MAX_PENDING_OFFSETS: usize = 100_000;
/// The longest transactional id: Kafka sets none; this keeps the stored state and log lines small.
pub const MAX_TRANSACTIONAL_ID_BYTES: usize = 1024;
/// How often timed-out transactions are aborted and prepared ones finished.
const TIMER_INTERVAL: Duration = Duration::from_millis(500);

/// One transactional id.
struct TransactionEntry {
    /// Serialises the coordinator's operations on this id; each may wait for markers and file writes.
    operation: tokio::sync::Mutex<()>,
    /// Read by each transactional produce from its check until its batches are queued; written by an end of the
    /// transaction while it moves the state on (see the module doc).
    gate: Arc<RwLock<()>>,
    /// Changed only under `operation`, each change stored before it is answered.
    meta: Mutex<TransactionMetadata>,
    /// Whether `meta` is what is stored (false for an id made by InitProducerId until its first store).
    is_stored: AtomicBool,
}

impl TransactionEntry {
    fn new(meta: TransactionMetadata, is_stored: bool) -> Arc<Self> {
        Arc::new(TransactionEntry {
            operation: tokio::sync::Mutex::new(()),
            gate: Arc::new(RwLock::new(())),
            meta: Mutex::new(meta),
            is_stored: AtomicBool::new(is_stored),
        })
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, TransactionMetadata> {
        self.meta.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A transactional produce admitted: hold it until the batches are on the partition's queue.
pub struct AdmittedTransactional {
    _gate: OwnedRwLockReadGuard<()>,
}

/// How a transaction ended, as /metrics counts them (`rill_transactions_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its producer committed it.
    Committed,
    /// Its producer aborted it.
    Aborted,
    /// The coordinator aborted it past its timeout.
    TimedOut,
    /// The coordinator aborted it when a newer instance of its producer initialised.
    Fenced,
}

impl Ending {
    pub const ALL: [Ending; 4] = [Ending::Committed, Ending::Aborted, Ending::TimedOut, Ending::Fenced];

    pub fn name(self) -> &'static str {
        match self {
            Ending::Committed => "committed",
            Ending::Aborted => "aborted",
            Ending::TimedOut => "timed_out",
            Ending::Fenced => "fenced",
        }
    }
}

/// Where the coordinator keeps its ids.
enum Backing {
    /// A single node: one file per id under this directory.
    Files(PathBuf),
    /// A cluster node: the replicated metadata.
    Replicated(replicated::Replicated),
}

pub struct TransactionCoordinator {
    backing: Backing,
    by_id: Mutex<HashMap<String, Arc<TransactionEntry>>>,
    by_producer: Mutex<HashMap<i64, Arc<TransactionEntry>>>,
    /// Transactions completed since the start, by [`Ending`].
    endings: [AtomicU64; 4],
}

pub(crate) fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backing {
            Backing::Files(dir) => write!(f, "TransactionCoordinator({})", dir.display()),
            Backing::Replicated(_) => write!(f, "TransactionCoordinator(replicated)"),
        }
    }
}

impl TransactionCoordinator {
    /// Loads the transactional ids stored under `data_dir`. Prepared outcomes are finished by the timers.
    pub fn open(data_dir: &std::path::Path) -> Result<Arc<Self>> {
        let dir = store::dir(data_dir);
        let loaded = store::load(&dir)?;
        let coordinator = Self::with_backing(Backing::Files(dir));
        coordinator.replace_entries(loaded);
        Ok(Arc::new(coordinator))
    }

    /// A cluster node's coordinator: it acts while the node leads the controller quorum.
    pub fn replicated(controller: Arc<Controller>) -> Arc<Self> {
        Arc::new(Self::with_backing(Backing::Replicated(replicated::Replicated::new(controller))))
    }

    fn with_backing(backing: Backing) -> Self {
        TransactionCoordinator {
            backing,
            by_id: Mutex::new(HashMap::new()),
            by_producer: Mutex::new(HashMap::new()),
            endings: Default::default(),
        }
    }

    fn replace_entries(&self, loaded: impl IntoIterator<Item = TransactionMetadata>) {
        let mut by_id = locked(&self.by_id);
        let mut by_producer = locked(&self.by_producer);
        by_id.clear();
        by_producer.clear();
        for meta in loaded {
            let (id, producer_id) = (meta.transactional_id.clone(), meta.producer_id);
            let entry = TransactionEntry::new(meta, true);
            by_id.insert(id, Arc::clone(&entry));
            by_producer.insert(producer_id, entry);
        }
    }

    /// The controller, on a cluster node.
    pub fn controller(&self) -> Option<&Arc<Controller>> {
        match &self.backing {
            Backing::Files(_) => None,
            Backing::Replicated(replicated) => Some(&replicated.controller),
        }
    }

    /// Ok where this node is the coordinator: always on a single node; on a cluster while it leads the controller,
    /// with the ids loaded from the metadata at the start of its term.
    async fn ensure_coordinator(&self) -> Result<()> {
        let Backing::Replicated(replicated) = &self.backing else { return Ok(()) };
        let Some(loading) = replicated.load_if_needed().await? else { return Ok(()) };
        self.replace_entries(loading.metadata.transactions.values().map(|meta| TransactionMetadata::clone(meta)));
        replicated.loaded(loading);
        Ok(())
    }

    /// Whether this node acts as the coordinator now (its ids loaded).
    fn is_coordinator(&self) -> bool {
        match &self.backing {
            Backing::Files(_) => true,
            Backing::Replicated(replicated) => replicated.is_loaded(),
        }
    }

    fn entry(&self, transactional_id: &str) -> Result<Arc<TransactionEntry>, TransactionError> {
        locked(&self.by_id)
            .get(transactional_id)
            .cloned()
            .ok_or_else(|| TransactionError::UnknownTransactionalId { transactional_id: transactional_id.to_string() })
    }

    /// Stores `meta` (a file written off the async threads, or a change committed through the controller) and
    /// publishes it to the entry.
    async fn store(&self, entry: &TransactionEntry, meta: TransactionMetadata, replaces: Option<i64>) -> Result<()> {
        match &self.backing {
            Backing::Files(dir) => {
                let dir = dir.clone();
                let stored = meta.clone();
                crate::registry::blocking(move || store::store(&dir, &stored, replaces)).await?;
            }
            Backing::Replicated(replicated) => {
                let prior = entry.is_stored.load(Ordering::Acquire).then(|| entry.meta().clone());
                replicated.store(&meta, replaces, prior).await?;
            }
        }
        *entry.meta() = meta;
        entry.is_stored.store(true, Ordering::Release);
        Ok(())
    }

    /// InitProducerId with a transactional id: the id's producer id and a new epoch, which fences every older
    /// instance. An open transaction is aborted first, in the new epoch; a prepared one is finished. `expected`
    /// (v3+, KIP-360) is the producer id and epoch the caller had, checked when given.
    pub async fn init_producer(
        &self,
        node: &Node,
        transactional_id: &str,
        timeout_ms: i64,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16)> {
        check_transactional_id(transactional_id)?;
        let timeout_ms = u64::try_from(timeout_ms)
            .ok()
            .filter(|ms| (1..=MAX_TRANSACTION_TIMEOUT_MS).contains(ms))
            .ok_or(TransactionError::InvalidTimeout { timeout_ms })?;
        self.ensure_coordinator().await?;
        let entry = self.entry_or_new(node, transactional_id, timeout_ms).await?;
        let _operation = entry.operation.lock().await;
        let current = entry.meta().clone();
        if let Some((producer_id, epoch)) = expected {
            // KIP-360: a producer recovering from an error bumps its own epoch; only the current instance may.
            if producer_id != current.producer_id || epoch != current.producer_epoch {
                return Err(TransactionError::Fenced {
                    transactional_id: transactional_id.to_string(),
                    producer_id,
                    epoch,
                    current: current.producer_epoch,
                }
                .into());
            }
        }
        if current.state.is_prepared() {
            self.finish(node, &entry, None).await?;
        }
        let mut meta = entry.meta().clone();
        meta.timeout_ms = timeout_ms;
        let meta = if meta.state == TransactionState::Ongoing {
            tracing::info!(
                transactional_id,
                producer_id = meta.producer_id,
                "aborting the open transaction of a fenced producer"
            );
            self.abort_fencing(node, &entry, meta, Ending::Fenced).await?
        } else {
            meta.state = TransactionState::Empty;
            meta.updated_ms = now_ms();
            match meta.next_epoch() {
                Some(epoch) => {
                    meta.producer_epoch = epoch;
                    self.store(&entry, meta.clone(), None).await?;
                    meta
                }
                None => self.renew_producer_id(node, &entry, meta).await?,
            }
        };
        tracing::debug!(
            transactional_id,
            producer_id = meta.producer_id,
            epoch = meta.producer_epoch,
            "initialised a transactional producer"
        );
        Ok((meta.producer_id, meta.producer_epoch))
    }

    /// Aborts the open transaction of `meta` (the entry's, `Ongoing`) in a new epoch, whose markers fence the old
    /// instance in every partition it wrote to: the next epoch, or once those ran out the last one (`i16::MAX`,
    /// never handed out), after which the id gets a new producer id at epoch 0. Returns the id's state after.
    async fn abort_fencing(
        &self,
        node: &Node,
        entry: &Arc<TransactionEntry>,
        mut meta: TransactionMetadata,
        ending: Ending,
    ) -> Result<TransactionMetadata> {
        meta.producer_epoch = meta.next_epoch().unwrap_or(i16::MAX);
        meta.state = TransactionState::PrepareAbort;
        meta.updated_ms = now_ms();
        self.prepare(entry, meta, None).await?;
        self.finish(node, entry, Some(ending)).await?;
        let meta = entry.meta().clone();
        if meta.producer_epoch == i16::MAX {
            return self.renew_producer_id(node, entry, meta).await;
        }
        Ok(meta)
    }

    /// Gives the id a new producer id at epoch 0, its epochs having run out.
    async fn renew_producer_id(
        &self,
        node: &Node,
        entry: &Arc<TransactionEntry>,
        mut meta: TransactionMetadata,
    ) -> Result<TransactionMetadata> {
        let old_producer_id = meta.producer_id;
        meta.producer_id = node.producer_ids.issue().await?;
        meta.producer_epoch = 0;
        meta.updated_ms = now_ms();
        self.store(entry, meta.clone(), Some(old_producer_id)).await?;
        let mut by_producer = locked(&self.by_producer);
        by_producer.remove(&old_producer_id);
        by_producer.insert(meta.producer_id, Arc::clone(entry));
        Ok(meta)
    }

    /// The id's entry, made (with a new producer id, nothing stored yet) when the id is new.
    async fn entry_or_new(
        &self,
        node: &Node,
        transactional_id: &str,
        timeout_ms: u64,
    ) -> Result<Arc<TransactionEntry>> {
        if let Ok(entry) = self.entry(transactional_id) {
            return Ok(entry);
        }
        if locked(&self.by_id).len() >= MAX_TRANSACTIONAL_IDS {
            return Err(TransactionError::TooMany {
                limit: MAX_TRANSACTIONAL_IDS,
                what: "transactional ids",
                hint: "reuse ids (one per producer instance), or wait for idle ones to expire (7 days)",
            }
            .into());
        }
        let producer_id = node.producer_ids.issue().await?;
        let mut by_id = locked(&self.by_id);
        if let Some(entry) = by_id.get(transactional_id) {
            // Made meanwhile by a concurrent InitProducerId: the id just issued is left unused.
            return Ok(Arc::clone(entry));
        }
        let entry = TransactionEntry::new(
            TransactionMetadata::new(transactional_id.to_string(), producer_id, timeout_ms, now_ms()),
            false,
        );
        by_id.insert(transactional_id.to_string(), Arc::clone(&entry));
        locked(&self.by_producer).insert(producer_id, Arc::clone(&entry));
        Ok(entry)
    }

    /// AddPartitionsToTxn: the partitions join the open transaction (opening it). The caller checked that they
    /// exist.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, u32)],
    ) -> Result<()> {
        self.ensure_coordinator().await?;
        let entry = self.entry(transactional_id)?;
        let _operation = entry.operation.lock().await;
        let mut meta = entry.meta().clone();
        meta.check_producer(producer_id, epoch)?;
        meta.check_can_add()?;
        if partitions.iter().all(|p| meta.partitions.contains(p)) && meta.state == TransactionState::Ongoing {
            return Ok(());
        }
        meta.partitions.extend(partitions.iter().cloned());
        if meta.partitions.len() > MAX_TRANSACTION_PARTITIONS {
            return Err(TransactionError::TooMany {
                limit: MAX_TRANSACTION_PARTITIONS,
                what: "partitions in one transaction",
                hint: "commit more often",
            }
            .into());
        }
        meta.begin_if_new(now_ms());
        self.store(&entry, meta, None).await
    }

    /// AddOffsetsToTxn: the group's offsets may be committed in the open transaction (opening it).
    pub async fn add_group(&self, transactional_id: &str, producer_id: i64, epoch: i16, group: &str) -> Result<()> {
        self.ensure_coordinator().await?;
        let entry = self.entry(transactional_id)?;
        let _operation = entry.operation.lock().await;
        let mut meta = entry.meta().clone();
        meta.check_producer(producer_id, epoch)?;
        meta.check_can_add()?;
        if meta.groups.contains(group) && meta.state == TransactionState::Ongoing {
            return Ok(());
        }
        meta.groups.insert(group.to_string());
        meta.begin_if_new(now_ms());
        self.store(&entry, meta, None).await
    }

    /// TxnOffsetCommit: offsets the open transaction commits for a group it added, kept until it ends. Sent by
    /// Kafka clients to the group's coordinator: on a cluster, forwarded from there to the transaction coordinator.
    pub async fn commit_offsets(
        &self,
        node: &Node,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
    ) -> Result<()> {
        let Some(controller) = self.controller() else {
            return self.commit_offsets_here(transactional_id, producer_id, epoch, offsets).await;
        };
        if controller.leader_term().is_some() {
            return self.commit_offsets_here(transactional_id, producer_id, epoch, offsets).await;
        }
        let coordinator = controller
            .current_leader_id()
            .ok_or(TransactionError::NotCoordinator { node_id: controller.node_id, coordinator: None })?;
        let call = remote::Call::CommitOffsets {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: epoch,
            offsets,
        };
        remote::call(node, coordinator, &call).await
    }

    /// TxnOffsetCommit where this node is the transaction coordinator.
    pub async fn commit_offsets_here(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
    ) -> Result<()> {
        self.ensure_coordinator().await?;
        let entry = self.entry(transactional_id)?;
        let _operation = entry.operation.lock().await;
        let mut meta = entry.meta().clone();
        meta.check_producer(producer_id, epoch)?;
        if meta.state != TransactionState::Ongoing {
            return Err(meta.invalid_state("committing offsets").into());
        }
        if let Some(offset) = offsets.iter().find(|o| !meta.groups.contains(&o.group)) {
            return Err(TransactionError::GroupNotInTransaction {
                transactional_id: transactional_id.to_string(),
                group: offset.group.clone(),
            }
            .into());
        }
        for offset in offsets {
            let same = |kept: &PendingOffset| {
                kept.group == offset.group && kept.topic == offset.topic && kept.partition == offset.partition
            };
            match meta.pending_offsets.iter_mut().find(|kept| same(kept)) {
                Some(kept) => *kept = offset,
                None => meta.pending_offsets.push(offset),
            }
        }
        if meta.pending_offsets.len() > MAX_PENDING_OFFSETS {
            return Err(TransactionError::TooMany {
                limit: MAX_PENDING_OFFSETS,
                what: "offsets in one transaction",
                hint: "commit more often",
            }
            .into());
        }
        meta.updated_ms = now_ms();
        self.store(&entry, meta, None).await
    }

    /// EndTxn: commits or aborts the open transaction. Returns once every marker is durable (and, for a commit,
    /// its offsets are stored). A retry of a finished end with the same outcome succeeds again.
    pub async fn end(
        &self,
        node: &Node,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<()> {
        self.ensure_coordinator().await?;
        let entry = self.entry(transactional_id)?;
        let _operation = entry.operation.lock().await;
        let mut meta = entry.meta().clone();
        meta.check_producer(producer_id, epoch)?;
        let prepared = if commit { TransactionState::PrepareCommit } else { TransactionState::PrepareAbort };
        let completed = if commit { TransactionState::CompleteCommit } else { TransactionState::CompleteAbort };
        match meta.state {
            TransactionState::Ongoing => {}
            state if state == completed => return Ok(()),
            state if state == prepared => return self.finish(node, &entry, None).await,
            state if state.is_prepared() => {
                return Err(TransactionError::Concurrent { transactional_id: transactional_id.to_string() }.into())
            }
            _ => return Err(meta.invalid_state(if commit { "a commit" } else { "an abort" }).into()),
        }
        meta.state = prepared;
        meta.updated_ms = now_ms();
        self.prepare(&entry, meta, None).await?;
        self.finish(node, &entry, None).await
    }

    /// Stores a prepared outcome with the gate held for write: no produce of the transaction is between its check
    /// and its queue when the state moves on, and none is admitted after.
    async fn prepare(&self, entry: &TransactionEntry, meta: TransactionMetadata, replaces: Option<i64>) -> Result<()> {
        let _closed = entry.gate.write().await;
        self.store(entry, meta, replaces).await
    }

    /// Writes the prepared outcome's markers to every partition of the transaction, fsyncs them, stores a committed
    /// transaction's offsets, then stores the outcome complete, counted as `ending` (by default what the producer
    /// asked: a prepared outcome finished after a crash).
    async fn finish(&self, node: &Node, entry: &TransactionEntry, ending: Option<Ending>) -> Result<()> {
        let meta = entry.meta().clone();
        let (commit, by_state) = match meta.state {
            TransactionState::PrepareCommit => (true, Ending::Committed),
            TransactionState::PrepareAbort => (false, Ending::Aborted),
            _ => return Ok(()),
        };
        let markers: Vec<Marker> = meta
            .partitions
            .iter()
            .map(|(topic, partition)| Marker {
                topic: topic.clone(),
                partition: *partition,
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit,
            })
            .collect();
        let writes = markers.iter().map(|marker| write_marker(node, marker));
        for written in futures_util::future::join_all(writes).await {
            written.map_err(|err| match err {
                // Not yet on every partition: the end is retried (by the producer, and by the timers).
                crate::error::BrokerError::ControllerUnavailable { reason } => {
                    tracing::info!(transactional_id = %meta.transactional_id, reason, "a transaction marker is not written yet");
                    TransactionError::Concurrent { transactional_id: meta.transactional_id.clone() }.into()
                }
                err => err,
            })?;
        }
        if commit {
            store_offsets(node, &meta.pending_offsets).await?;
        }
        let mut completed = meta;
        completed.complete(now_ms());
        self.endings[ending.unwrap_or(by_state) as usize].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(transactional_id = %completed.transactional_id, producer_id = completed.producer_id, state = completed.state.as_str(), "transaction completed");
        self.store(entry, completed, None).await
    }

    /// Checks a transactional batch produced to `topic`-`partition` against its producer's transaction; the
    /// answer is held until the batch is queued.
    pub fn admit_produce(
        &self,
        header: &BatchHeader,
        topic: &str,
        partition: u32,
    ) -> Result<AdmittedTransactional, TransactionError> {
        let producer_id = header.producer_id;
        if let Backing::Replicated(replicated) = &self.backing {
            let gate = replicated.admit_produce(producer_id, header.producer_epoch, topic, partition)?;
            return Ok(AdmittedTransactional { _gate: gate });
        }
        let entry = locked(&self.by_producer)
            .get(&producer_id)
            .cloned()
            .ok_or(TransactionError::UnknownTransactionalProducer { producer_id })?;
        let Ok(gate) = Arc::clone(&entry.gate).try_read_owned() else {
            return Err(TransactionError::Concurrent { transactional_id: entry.meta().transactional_id.clone() });
        };
        let meta = entry.meta();
        meta.check_producer(producer_id, header.producer_epoch)?;
        if meta.state != TransactionState::Ongoing || !meta.partitions.contains(&(topic.to_string(), partition)) {
            return Err(TransactionError::PartitionNotInTransaction {
                transactional_id: meta.transactional_id.clone(),
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(AdmittedTransactional { _gate: gate })
    }

    /// On a cluster, before the check of a transactional batch: waits (bounded) until this node's metadata shows
    /// what the coordinator answered the producer (its partition added). Nothing to wait for on a single node.
    pub async fn await_admissible(&self, header: &BatchHeader, topic: &str, partition: u32) {
        if let Backing::Replicated(replicated) = &self.backing {
            replicated.await_admissible(header.producer_id, header.producer_epoch, topic, partition).await;
        }
    }

    /// On a cluster partition leader about to write a marker: see `replicated.rs`.
    async fn close_gate(
        &self,
        producer_id: i64,
        epoch: i16,
        awaits_outcome: bool,
    ) -> Result<Option<tokio::sync::OwnedRwLockWriteGuard<()>>> {
        match &self.backing {
            Backing::Files(_) => Ok(None),
            Backing::Replicated(replicated) => {
                Ok(Some(replicated.close_gate(producer_id, epoch, awaits_outcome).await?))
            }
        }
    }

    /// Whether the coordinator has `producer_id`'s transaction open (or being ended) with the partition: on a
    /// cluster by this node's copy of the metadata.
    pub fn has_open(&self, producer_id: i64, topic: &str, partition: u32) -> bool {
        let holds = |meta: &TransactionMetadata| {
            (meta.state == TransactionState::Ongoing || meta.state.is_prepared())
                && meta.partitions.contains(&(topic.to_string(), partition))
        };
        if let Backing::Replicated(replicated) = &self.backing {
            return replicated.controller.metadata().transactions.get(&producer_id).is_some_and(|meta| holds(meta));
        }
        let entry = locked(&self.by_producer).get(&producer_id).cloned();
        entry.is_some_and(|entry| holds(&entry.meta()))
    }

    /// Writes a marker asked by an operator (WriteTxnMarkers) in a partition this node leads, as the coordinator's
    /// are written: fsynced on a single node, on every in-sync replica on a cluster.
    pub async fn write_marker(&self, node: &Node, marker: &Marker) -> Result<()> {
        match &node.replication {
            None => write_marker(node, marker).await,
            Some(_) => markers::write_marker_as_leader(node, marker, false).await,
        }
    }

    /// Whether an open or prepared transaction holds an offset for the group's partition: a `require_stable`
    /// OffsetFetch waits for it (UNSTABLE_OFFSET_COMMIT). On a cluster, by this node's copy of the metadata.
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: u32) -> bool {
        let holds = |meta: &TransactionMetadata| {
            matches!(meta.state, TransactionState::Ongoing | TransactionState::PrepareCommit)
                && meta.groups.contains(group)
                && meta.pending_offsets.iter().any(|o| o.group == group && o.topic == topic && o.partition == partition)
        };
        if let Backing::Replicated(replicated) = &self.backing {
            return replicated.controller.metadata().transactions.values().any(|meta| holds(meta));
        }
        let entries: Vec<Arc<TransactionEntry>> = locked(&self.by_id).values().cloned().collect();
        entries.iter().any(|entry| holds(&entry.meta()))
    }

    /// One transactional id's state (DescribeTransactions), where this node is the coordinator.
    pub fn get(&self, transactional_id: &str) -> Result<Option<TransactionMetadata>, TransactionError> {
        self.check_coordinator()?;
        Ok(self.entry(transactional_id).ok().map(|entry| entry.meta().clone()))
    }

    /// Every transactional id's state (ListTransactions): none on a cluster node that is not the coordinator.
    pub fn all(&self) -> Vec<TransactionMetadata> {
        if !self.is_coordinator() {
            return Vec::new();
        }
        let entries: Vec<Arc<TransactionEntry>> = locked(&self.by_id).values().cloned().collect();
        entries.iter().map(|entry| entry.meta().clone()).collect()
    }

    fn check_coordinator(&self) -> Result<(), TransactionError> {
        match &self.backing {
            Backing::Replicated(replicated) if !replicated.is_loaded() => Err(replicated.not_coordinator()),
            _ => Ok(()),
        }
    }

    /// Transactions completed since the start, by how they ended.
    pub fn ending_counts(&self) -> [(Ending, u64); 4] {
        Ending::ALL.map(|ending| (ending, self.endings[ending as usize].load(Ordering::Relaxed)))
    }

    /// Transactional ids held, and how many of them have a transaction open (or being completed): none on a
    /// cluster node that is not the coordinator.
    pub fn id_counts(&self) -> (usize, usize) {
        if !self.is_coordinator() {
            return (0, 0);
        }
        let entries: Vec<Arc<TransactionEntry>> = locked(&self.by_id).values().cloned().collect();
        let open = entries
            .iter()
            .filter(|entry| {
                let state = entry.meta().state;
                state == TransactionState::Ongoing || state.is_prepared()
            })
            .count();
        (entries.len(), open)
    }

    /// Until shutdown: aborts transactions past their timeout (in a new epoch, fencing their producer, as Kafka
    /// does), finishes prepared ones (after a crash, or a failed marker write), and forgets ids idle for
    /// [`ID_EXPIRATION_MS`].
    pub async fn run_timers(
        self: Arc<Self>,
        node: std::sync::Weak<Node>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(TIMER_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let Some(node) = node.upgrade() else { return };
            if let Backing::Replicated(replicated) = &self.backing {
                replicated.prune_gates();
                if let Err(err) = self.ensure_coordinator().await {
                    if replicated.is_loaded()
                        || !matches!(
                            &err,
                            crate::error::BrokerError::Transaction(TransactionError::NotCoordinator { .. })
                        )
                    {
                        tracing::debug!(error = %err, "not acting as the transaction coordinator");
                    }
                    replicated.unload();
                    continue;
                }
            }
            let entries: Vec<Arc<TransactionEntry>> = locked(&self.by_id).values().cloned().collect();
            for entry in entries {
                if let Err(err) = self.tend(&node, &entry).await {
                    let transactional_id = entry.meta().transactional_id.clone();
                    tracing::warn!(transactional_id, error = %err, "could not finish a transaction; retrying");
                }
            }
        }
    }

    async fn tend(&self, node: &Node, entry: &Arc<TransactionEntry>) -> Result<()> {
        let now = now_ms();
        let meta = entry.meta().clone();
        let is_idle = !meta.state.is_prepared()
            && meta.state != TransactionState::Ongoing
            && now.saturating_sub(meta.updated_ms) > ID_EXPIRATION_MS;
        if !(meta.state.is_prepared() || meta.has_timed_out(now) || is_idle) {
            return Ok(());
        }
        let _operation = entry.operation.lock().await;
        let meta = entry.meta().clone();
        if meta.state.is_prepared() {
            return self.finish(node, entry, None).await;
        }
        if meta.has_timed_out(now) {
            tracing::info!(transactional_id = %meta.transactional_id, timeout_ms = meta.timeout_ms, "aborting a transaction past its timeout");
            self.abort_fencing(node, entry, meta, Ending::TimedOut).await?;
            return Ok(());
        }
        if is_idle {
            let producer_id = meta.producer_id;
            match &self.backing {
                Backing::Files(dir) => {
                    let dir = dir.clone();
                    crate::registry::blocking(move || store::remove(&dir, producer_id)).await?;
                }
                Backing::Replicated(replicated) => replicated.remove(&meta).await?,
            }
            locked(&self.by_id).remove(&meta.transactional_id);
            locked(&self.by_producer).remove(&producer_id);
        }
        Ok(())
    }
}

fn check_transactional_id(id: &str) -> Result<(), TransactionError> {
    if id.is_empty() || id.len() > MAX_TRANSACTIONAL_ID_BYTES || id.chars().any(char::is_control) {
        return Err(TransactionError::InvalidTransactionalId(id.chars().take(64).collect()));
    }
    Ok(())
}
