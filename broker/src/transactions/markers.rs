//! What ending a transaction writes outside the coordinator's own files: a marker in each partition of the
//! transaction (through the partition's writer, after every batch queued before it, then fsynced), and a committed
//! transaction's offsets in the groups' offset store.

use std::collections::HashMap;

use bytes::Bytes;
use rill_protocol::control::{end_transaction_marker, TransactionOutcome};

use super::PendingOffset;
use crate::error::{BrokerError, Result};
use crate::node::{now_ms, Node};
use crate::offsets::OffsetKey;

/// Appends one marker to a partition and fsyncs it. A partition whose topic was deleted meanwhile gets none, as
/// in Kafka: there is nobody left to read it.
pub(super) async fn write_marker(
    node: &Node,
    topic: &str,
    partition: u32,
    producer_id: i64,
    epoch: i16,
    outcome: TransactionOutcome,
) -> Result<()> {
    let target = match node.registry.partition(topic, partition) {
        Ok(target) => target,
        Err(BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. }) => return Ok(()),
        Err(err) => return Err(err),
    };
    let marker = Bytes::from(end_transaction_marker(producer_id, epoch, 0, outcome, now_ms()));
    let appended = target.append_marker(marker).await?;
    target.sync_through(appended.last_offset + 1).await?;
    tracing::trace!(
        topic,
        partition,
        offset = appended.base_offset,
        producer_id,
        ?outcome,
        "wrote a transaction marker"
    );
    Ok(())
}

/// Stores a committed transaction's offsets in their groups' offset store, one call per group.
pub(super) async fn store_offsets(node: &Node, offsets: &[PendingOffset]) -> Result<()> {
    let mut by_group: HashMap<&str, Vec<(OffsetKey, i64, String)>> = HashMap::new();
    for offset in offsets {
        let key = OffsetKey { group: offset.group.clone(), topic: offset.topic.clone(), partition: offset.partition };
        by_group.entry(offset.group.as_str()).or_default().push((key, offset.offset, offset.metadata.clone()));
    }
    for (_, commits) in by_group {
        node.offsets.commit_checked(commits, now_ms(), || Ok(())).await?;
    }
    Ok(())
}
