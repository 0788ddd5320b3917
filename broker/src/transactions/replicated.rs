//! The coordinator on a cluster: its transactional ids live in the controller's replicated metadata
//! (`ClusterMetadata::transactions`, by producer id), and the coordinator is the controller leader.
//!
//! - **One coordinator at a time.** The coordinator acts only while this node leads the controller quorum, and it
//!   stores each change through raft itself ([`Controller::commit_here`], never forwarded). On taking the
//!   leadership (a new term) it first commits a no-op, so every entry an earlier leader committed is applied
//!   here, and only then loads the ids from the metadata. Each store is a compare-and-set against the state the
//!   coordinator read (`Command::StoreTransaction`): a coordinator that lost the leadership and regained it
//!   between a read and a store cannot overwrite what another stored meanwhile. A new coordinator finishes the
//!   outcomes it finds prepared and times out the open transactions, as a restarted single node does.
//! - **No batch after its marker, across nodes.** A partition's leader admits a transactional batch by its own
//!   copy of the metadata (the transaction `Ongoing` at the batch's epoch with the partition added), holding
//!   that producer's gate here until the batch is queued. A marker is written by the partition's leader once its
//!   copy has the transaction's outcome at the marker's epoch (the prepared outcome applied there; not merely "not
//!   open", which a copy too far behind to know the producer would also say) and with the gate closed for write:
//!   a batch checked before that is queued before the marker, one checked after is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::{locked, TransactionError, TransactionMetadata, TransactionState};
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;
use crate::error::{BrokerError, Result};

/// How long a partition's leader waits for its copy of the metadata to show what the coordinator stored (one raft
/// round trip, usually): a transaction's partition added, or its outcome prepared.
const METADATA_WAIT: Duration = Duration::from_secs(2);

/// A load under way: the term it is for and the metadata it reads, one load at a time.
pub(super) struct Loading<'a> {
    term: u64,
    pub metadata: Arc<ClusterMetadata>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

pub(super) struct Replicated {
    pub controller: Arc<Controller>,
    /// The controller term whose metadata the coordinator's ids were loaded in; `None`: not loaded.
    loaded_term: Mutex<Option<u64>>,
    /// Serialises loads.
    loading: tokio::sync::Mutex<()>,
    /// Each transactional producer's gate on this node, as a partition leader: read from a batch's check until it
    /// is queued, written while a marker is queued.
    gates: Mutex<HashMap<i64, Arc<RwLock<()>>>>,
}

impl Replicated {
    pub fn new(controller: Arc<Controller>) -> Self {
        Replicated {
            controller,
            loaded_term: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
            gates: Mutex::new(HashMap::new()),
        }
    }

    pub fn not_coordinator(&self) -> TransactionError {
        TransactionError::NotCoordinator {
            node_id: self.controller.node_id,
            coordinator: self.controller.current_leader_id(),
        }
    }

    /// Whether the ids loaded are this node's as the current controller leader.
    pub fn is_loaded(&self) -> bool {
        let term = self.controller.leader_term();
        term.is_some() && *locked(&self.loaded_term) == term
    }

    pub fn unload(&self) {
        *locked(&self.loaded_term) = None;
    }

    /// When this node leads the controller in a term it has not loaded yet: the metadata to load the ids from, to
    /// be marked loaded with [`Self::loaded`]. `None` when loaded already; `Err(NotCoordinator)` on a node that does
    /// not lead.
    pub async fn load_if_needed(&self) -> Result<Option<Loading<'_>>> {
        let term = self.controller.leader_term().ok_or_else(|| self.not_coordinator())?;
        let loading = self.loading.lock().await;
        if *locked(&self.loaded_term) == Some(term) {
            return Ok(None);
        }
        // A no-op committed in this term: applied here, it comes after every entry an earlier leader committed.
        // (The cluster id again: the first one committed stays. Before there is one, the keeper is about to choose
        // it, and this waits for the next tick rather than race it.)
        let cluster_id = self.controller.metadata().cluster_id.clone().ok_or_else(|| self.not_coordinator())?;
        self.controller.commit_here(Command::SetClusterId { cluster_id }).await.map_err(|_| self.not_coordinator())?;
        if self.controller.leader_term() != Some(term) {
            return Err(self.not_coordinator().into());
        }
        tracing::info!(term, "this node is the transaction coordinator: loading the transactional ids");
        Ok(Some(Loading { term, metadata: self.controller.metadata(), _guard: loading }))
    }

    /// Marks the term the ids were loaded in as loaded (a later term loads again).
    pub fn loaded(&self, loading: Loading<'_>) {
        *locked(&self.loaded_term) = Some(loading.term);
    }

    /// Stores `meta` if the id still holds `prior` (`None`: nothing stored for it yet).
    pub async fn store(
        &self,
        meta: &TransactionMetadata,
        replaces: Option<i64>,
        prior: Option<TransactionMetadata>,
    ) -> Result<()> {
        let command = Command::StoreTransaction { meta: Box::new(meta.clone()), replaces, prior: prior.map(Box::new) };
        self.commit(command, &meta.transactional_id).await
    }

    pub async fn remove(&self, prior: &TransactionMetadata) -> Result<()> {
        let command = Command::RemoveTransaction { producer_id: prior.producer_id, prior: Box::new(prior.clone()) };
        self.commit(command, &prior.transactional_id).await
    }

    async fn commit(&self, command: Command, transactional_id: &str) -> Result<()> {
        let outcome = self.controller.commit_here(command).await.map_err(|err| {
            tracing::debug!(error = %err, "the transaction coordinator could not store a change");
            self.unload();
            BrokerError::from(self.not_coordinator())
        })?;
        if !outcome.changed {
            // Another coordinator changed the id since it was loaded: load again before the next request.
            self.unload();
            return Err(TransactionError::Concurrent { transactional_id: transactional_id.to_string() }.into());
        }
        Ok(())
    }

    fn gate(&self, producer_id: i64) -> Arc<RwLock<()>> {
        Arc::clone(locked(&self.gates).entry(producer_id).or_default())
    }

    /// A partition leader's check of a transactional batch (see the module doc).
    pub fn admit_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: u32,
    ) -> Result<OwnedRwLockReadGuard<()>, TransactionError> {
        let metadata = self.controller.metadata();
        let meta = metadata
            .transactions
            .get(&producer_id)
            .ok_or(TransactionError::UnknownTransactionalProducer { producer_id })?;
        let Ok(gate) = self.gate(producer_id).try_read_owned() else {
            return Err(TransactionError::Concurrent { transactional_id: meta.transactional_id.clone() });
        };
        meta.check_producer(producer_id, epoch)?;
        if meta.state != TransactionState::Ongoing || !meta.partitions.contains(&(topic.to_string(), partition)) {
            return Err(TransactionError::PartitionNotInTransaction {
                transactional_id: meta.transactional_id.clone(),
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(gate)
    }

    /// Waits (bounded) until this node's copy of the metadata settles the batch's check: the coordinator answered
    /// the producer's InitProducerId and AddPartitionsToTxn once each change applied on the controller leader, and
    /// a partition leader learns it is committed up to a raft heartbeat later. Settled: the producer id is known
    /// and either the transaction is open with the partition (admitted) or a newer epoch fenced the batch. The
    /// check itself is [`Self::admit_produce`]'s, which refuses what is still unsettled after the wait.
    pub async fn await_admissible(&self, producer_id: i64, epoch: i16, topic: &str, partition: u32) {
        let is_settled = |metadata: &ClusterMetadata| {
            metadata.transactions.get(&producer_id).is_some_and(|meta| {
                meta.producer_epoch > epoch
                    || (meta.state == TransactionState::Ongoing
                        && meta.partitions.contains(&(topic.to_string(), partition)))
            })
        };
        if !is_settled(&self.controller.metadata()) {
            let _ = tokio::time::timeout(METADATA_WAIT, self.controller.wait_for_metadata(is_settled)).await;
        }
    }

    /// A partition leader about to write the marker of `producer_id`'s transaction at `epoch`: with
    /// `awaits_outcome` (the coordinator's markers) waits until its copy of the metadata has that transaction's
    /// outcome, prepared or complete, at `epoch` (or a newer epoch): from then on it admits none of the
    /// transaction's batches, even one whose earlier check found this copy too far behind to know the producer.
    /// Then closes the gate for write. An operator's marker (WriteTxnMarkers) is for a transaction the coordinator
    /// does not hold: nothing to wait for.
    pub async fn close_gate(
        &self,
        producer_id: i64,
        epoch: i16,
        awaits_outcome: bool,
    ) -> Result<OwnedRwLockWriteGuard<()>> {
        let has_outcome = |metadata: &ClusterMetadata| {
            metadata.transactions.get(&producer_id).is_some_and(|meta| {
                let is_ended = !matches!(meta.state, TransactionState::Empty | TransactionState::Ongoing);
                meta.producer_epoch > epoch || (meta.producer_epoch == epoch && is_ended)
            })
        };
        if awaits_outcome
            && !has_outcome(&self.controller.metadata())
            && !tokio::time::timeout(METADATA_WAIT, self.controller.wait_for_metadata(has_outcome))
                .await
                .unwrap_or(false)
        {
            return Err(BrokerError::ControllerUnavailable {
                reason: format!(
                    "node {} has not yet seen the end of producer {producer_id}'s transaction in the metadata",
                    self.controller.node_id
                ),
            });
        }
        Ok(self.gate(producer_id).write_owned().await)
    }

    /// Forgets the gates of producers the metadata no longer has.
    pub fn prune_gates(&self) {
        let metadata = self.controller.metadata();
        locked(&self.gates)
            .retain(|producer_id, gate| metadata.transactions.contains_key(producer_id) || Arc::strong_count(gate) > 1);
    }
}
