//! Deleting a partition's records before an offset: the one implementation behind gRPC's
//! `TopicAdmin.DeleteRecords` and Kafka's DeleteRecords (`storage`'s `Log::delete_records_before` does the work).
//!
//! On a cluster, Kafka's way: only the partition's leader deletes (elsewhere `not-leader`); it moves its own log
//! start, refusing an offset past its high watermark, then waits until every in-sync replica has moved its own
//! (`replication/log_starts.rs`) and answers the low watermark, the smallest log start over the ISR. Each
//! replica stores its start before it publishes it, so a new leader after a failover keeps it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::node::Node;
use crate::registry::blocking;

/// Kafka's "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;
/// The wait for the in-sync replicas when the request names none: Kafka's default `request.timeout.ms`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait a request may ask for: a DeleteRecords holds a task per partition meanwhile.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// The wait a request's `timeout_ms` asks for: [`DEFAULT_TIMEOUT`] for 0 or less, at most [`MAX_TIMEOUT`].
pub fn timeout_of(timeout_ms: i64) -> Duration {
    match u64::try_from(timeout_ms) {
        Ok(0) | Err(_) => DEFAULT_TIMEOUT,
        Ok(ms) => Duration::from_millis(ms).min(MAX_TIMEOUT),
    }
}

/// Deletes the records of `topic`'s `partition` below `offset` (-1: below the high watermark); answers the low
/// watermark after it (the log start offset; on a cluster the smallest over the ISR, waited for up to `timeout`).
/// Authorization (DELETE on the topic) is the caller's.
pub async fn delete_records_before(
    node: &Node,
    topic: &str,
    partition: u32,
    offset: i64,
    timeout: Duration,
) -> Result<i64> {
    // Leadership first, as produce: a node that does not lead it answers `not-leader`, which clients retry at the
    // leader, even before its log is open here.
    let epoch = match &node.replication {
        Some(replication) => Some(replication.check_leader(topic, partition)?),
        None => None,
    };
    let partition = node.registry.partition(topic, partition)?;
    let log = Arc::clone(partition.log());
    let log_start = blocking(move || Ok(log.delete_records_before(offset)?)).await?;
    tracing::info!(topic, partition = partition.index, offset, log_start, "deleted records");
    let (Some(replication), Some(epoch)) = (&node.replication, epoch) else { return Ok(log_start) };
    replication.on_log_start_moved();
    // Kafka's DelayedDeleteRecords waits for the offset asked (the high watermark for -1), not for a start that
    // was already past it: replicas that took an earlier, larger deletion have nothing more to do.
    let asked = if offset == HIGH_WATERMARK { log_start } else { offset.min(log_start) };
    replication.wait_log_starts(&partition, epoch, asked, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_of_zero_or_less_is_the_default_and_a_long_one_is_capped() {
        assert_eq!(timeout_of(0), DEFAULT_TIMEOUT);
        assert_eq!(timeout_of(-5), DEFAULT_TIMEOUT);
        assert_eq!(timeout_of(1_500), Duration::from_millis(1_500));
        assert_eq!(timeout_of(i64::MAX), MAX_TIMEOUT);
    }
}
