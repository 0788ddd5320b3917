//! What ending a transaction writes outside the coordinator's own state: a marker in each partition of the
//! transaction (through the partition's writer, after every batch queued before it), and a committed
//! transaction's offsets in the groups' offset store.
//!
//! On a single node a marker is fsynced before it counts. On a cluster it is written by the partition's leader
//! (over `remote.rs` when that is another node) and counts once every in-sync replica holds it, as an acks-all
//! produce; a committed transaction's offsets are stored by each group's coordinator, acknowledged the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::control::{end_transaction_marker, TransactionOutcome};

use serde::{Deserialize, Serialize};

use super::remote::{call, Call};
use super::PendingOffset;
use crate::error::{BrokerError, Result};
use crate::node::{now_ms, Node};
use crate::offsets::OffsetKey;

/// How long the coordinator keeps retrying one marker or one group's offsets on a cluster (a leader moving, a
/// node restarting) before the end of the transaction is answered as not yet done; its timers retry after.
const CLUSTER_RETRY_FOR: Duration = Duration::from_secs(10);
const CLUSTER_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One marker: the end of a producer's transaction (committed or aborted) at its epoch, in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub topic: String,
    pub partition: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
}

impl Marker {
    fn batch(&self) -> Bytes {
        let outcome = if self.commit { TransactionOutcome::Commit } else { TransactionOutcome::Abort };
        Bytes::from(end_transaction_marker(self.producer_id, self.producer_epoch, 0, outcome, now_ms()))
    }

    fn written(&self, offset: i64) {
        let (topic, partition, producer_id, commit) = (&self.topic, self.partition, self.producer_id, self.commit);
        tracing::trace!(topic, partition, offset, producer_id, commit, "wrote a transaction marker");
    }
}

/// Writes one marker, wherever its partition's leader is. A partition whose topic was deleted meanwhile gets none,
/// as in Kafka: there is nobody left to read it.
pub(super) async fn write_marker(node: &Node, marker: &Marker) -> Result<()> {
    let Some(replication) = &node.replication else {
        let target = match node.registry.partition(&marker.topic, marker.partition) {
            Ok(target) => target,
            Err(BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. }) => return Ok(()),
            Err(err) => return Err(err),
        };
        let appended = target.append_marker(marker.batch()).await?;
        target.sync_through(appended.last_offset + 1).await?;
        marker.written(appended.base_offset);
        return Ok(());
    };
    let call_to_leader = Call::WriteMarker(marker.clone());
    retry_on_cluster(|| async {
        let metadata = replication.metadata();
        let Some(placed) = metadata.partition(&marker.topic, marker.partition) else { return Ok(()) };
        let leader = placed.leader.ok_or_else(|| BrokerError::ControllerUnavailable {
            reason: format!("partition {} of topic {:?} has no leader", marker.partition, marker.topic),
        })?;
        if leader == replication.node_id() {
            write_marker_as_leader(node, marker, true).await
        } else {
            call(node, leader, &call_to_leader).await
        }
    })
    .await
}

/// On a cluster node that leads the partition: closes the producer's gate here (`replicated.rs`; for the
/// coordinator's marker, `of_coordinator`, once this node's metadata has the transaction's outcome), appends the
/// marker after every batch queued before it, and returns once every in-sync replica holds it.
pub(super) async fn write_marker_as_leader(node: &Node, marker: &Marker, of_coordinator: bool) -> Result<()> {
    let replication = node.replication.as_ref().ok_or_else(|| {
        BrokerError::Internal("a marker for a partition leader was asked of a single node".to_string())
    })?;
    let leader_epoch = replication.check_leader(&marker.topic, marker.partition)?;
    let target = match node.registry.partition(&marker.topic, marker.partition) {
        Ok(target) => target,
        Err(BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. }) => return Ok(()),
        Err(err) => return Err(err),
    };
    let closed = node.transactions.close_gate(marker.producer_id, marker.producer_epoch, of_coordinator).await?;
    let queued = target.enqueue_marker(marker.batch()).await;
    drop(closed);
    let appended = queued?.appended().await?;
    replication.on_append(&target);
    replication.wait_replicated(&target, leader_epoch, appended.last_offset + 1).await?;
    marker.written(appended.base_offset);
    Ok(())
}

/// Stores a committed transaction's offsets in their groups' offset store, one call per group, at each group's
/// coordinator.
pub(super) async fn store_offsets(node: &Node, offsets: &[PendingOffset]) -> Result<()> {
    let mut by_group: BTreeMap<&str, Vec<PendingOffset>> = BTreeMap::new();
    for offset in offsets {
        by_group.entry(offset.group.as_str()).or_default().push(offset.clone());
    }
    for (group, offsets) in by_group {
        let Some(replication) = &node.replication else {
            store_group_offsets_here(node, &offsets).await?;
            continue;
        };
        let call_to_coordinator = Call::StoreOffsets { offsets: offsets.clone() };
        retry_on_cluster(|| async {
            let coordinator = node.offsets.coordinator(group).map(|(id, _)| id).ok_or_else(|| {
                BrokerError::ControllerUnavailable { reason: format!("group {group:?} has no coordinator yet") }
            })?;
            if coordinator == replication.node_id() {
                store_group_offsets_here(node, &offsets).await
            } else {
                call(node, coordinator, &call_to_coordinator).await
            }
        })
        .await?;
    }
    Ok(())
}

/// Stores offsets of one group in this node's offset store (on a cluster, as the group's coordinator).
pub(super) async fn store_group_offsets_here(node: &Node, offsets: &[PendingOffset]) -> Result<()> {
    let commits = offsets
        .iter()
        .map(|o| {
            let key = OffsetKey { group: o.group.clone(), topic: o.topic.clone(), partition: o.partition };
            (key, o.offset, o.metadata.clone())
        })
        .collect();
    node.offsets.commit_checked(commits, now_ms(), || Ok(())).await
}

/// Retries `attempt` while the cluster moves under it (a leader or coordinator changing, a node unreachable),
/// for at most [`CLUSTER_RETRY_FOR`]. A refusal the coordinator's state decided is returned at once.
async fn retry_on_cluster<F, Fut>(attempt: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let deadline = tokio::time::Instant::now() + CLUSTER_RETRY_FOR;
    loop {
        match attempt().await {
            Err(err) if is_transient(&err) && tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %err, "a transaction write on another node failed; retrying");
                tokio::time::sleep(CLUSTER_RETRY_PAUSE).await;
            }
            done => return done,
        }
    }
}

fn is_transient(err: &BrokerError) -> bool {
    matches!(
        err,
        BrokerError::NotLeader { .. }
            | BrokerError::NotCoordinator { .. }
            | BrokerError::ControllerUnavailable { .. }
            | BrokerError::NotEnoughReplicas { .. }
            | BrokerError::ShuttingDown
    )
}
