//! KIP-320's fencing on the read path, one rule for Fetch, ListOffsets and OffsetForLeaderEpoch: a request's
//! `current_leader_epoch`, when it carries one, must be the epoch this node knows for the partition, and only the
//! leader answers. The order is Kafka's (`Partition.getLocalLog` after `ReplicaManager.getPartitionOrException`):
//! an unknown partition first, then the epoch, then the leadership, so a client with stale metadata learns that
//! its metadata is stale (FENCED_LEADER_EPOCH) rather than only that this node does not lead. The rule itself is
//! `Node::check_leader_at`, which gRPC Fetch and Subscribe use too; this is its Kafka face.

use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::error::error_code;
use crate::node::Node;
use crate::partition::Partition;

/// The `current_leader_epoch` of a request that does not say (older versions, or a client that does not track
/// it): no check.
pub const NO_EPOCH: i32 = -1;

/// The partition `index` of `topic` if this node leads it at the epoch the request names, with that epoch; else
/// the Kafka code: UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH or NOT_LEADER_OR_FOLLOWER
/// (`Node::check_leader_at`, the check gRPC reads make too).
pub fn led_partition(
    node: &Node,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<Partition>, i32), i16> {
    let index = u32::try_from(index).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
    let asked = (current_leader_epoch != NO_EPOCH).then_some(i64::from(current_leader_epoch));
    let leader_epoch = node.check_leader_at(topic, index, asked).map_err(|err| error_code(&err))?;
    let partition = node.registry.partition(topic, index).map_err(|err| error_code(&err))?;
    Ok((partition, leader_epoch))
}

/// [`led_partition`] for a consumer's Fetch from v11 (KIP-392), which a follower serves too: also whether this
/// node leads it.
pub fn replica_partition(
    node: &Node,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<Partition>, i32, bool), i16> {
    let index = u32::try_from(index).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
    let asked = (current_leader_epoch != NO_EPOCH).then_some(i64::from(current_leader_epoch));
    let (leader_epoch, is_leader) = node.check_replica_at(topic, index, asked).map_err(|err| error_code(&err))?;
    let partition = node.registry.partition(topic, index).map_err(|err| error_code(&err))?;
    Ok((partition, leader_epoch, is_leader))
}
