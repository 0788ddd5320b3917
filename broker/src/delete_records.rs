//! Deleting a partition's records before an offset: the one implementation behind gRPC's
//! `TopicAdmin.DeleteRecords` and Kafka's DeleteRecords (`storage`'s `Log::delete_records_before` does the work).
//!
//! A single node only. On a cluster it is refused (`unsupported`): followers learn the leader's batches and high
//! watermark but not its log start offset yet, so after a failover the new leader would serve the deleted records
//! again, which is worse than refusing.

use std::sync::Arc;

use crate::error::{BrokerError, Result};
use crate::node::Node;
use crate::registry::blocking;

/// Deletes the records of `topic`'s `partition` below `offset` (-1: below the high watermark); answers the log
/// start offset after it. Authorization (DELETE on the topic) is the caller's.
pub async fn delete_records_before(node: &Node, topic: &str, partition: u32, offset: i64) -> Result<i64> {
    if node.replication.is_some() {
        return Err(refused_on_cluster());
    }
    let partition = node.registry.partition(topic, partition)?;
    let log = Arc::clone(partition.log());
    let low_watermark = blocking(move || Ok(log.delete_records_before(offset)?)).await?;
    tracing::info!(topic, partition = partition.index, offset, low_watermark, "deleted records");
    Ok(low_watermark)
}

pub fn refused_on_cluster() -> BrokerError {
    BrokerError::UnsupportedOnCluster {
        what: "deleting records",
        why: "followers do not yet learn the leader's log start offset, so a failover would serve the deleted \
              records again",
    }
}
