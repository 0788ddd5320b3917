//! KIP-320's fencing on the read path, one rule for Fetch, ListOffsets and OffsetForLeaderEpoch: a request's
//! `current_leader_epoch`, when it carries one, must be the epoch this node knows for the partition, and only the
//! leader answers. The order is Kafka's (`Partition.getLocalLog` after `ReplicaManager.getPartitionOrException`):
//! an unknown partition first, then the epoch, then the leadership, so a client with stale metadata learns that
//! its metadata is stale (FENCED_LEADER_EPOCH) rather than only that this node does not lead.

use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::error::error_code;
use crate::node::Node;
use crate::partition::Partition;

/// The `current_leader_epoch` of a request that does not say (older versions, or a client that does not track
/// it): no check.
pub const NO_EPOCH: i32 = -1;

/// The partition `index` of `topic` if this node leads it at the epoch the request names, with that epoch; else
/// the Kafka code: UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH or NOT_LEADER_OR_FOLLOWER.
pub fn led_partition(
    node: &Node,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
) -> Result<(Arc<Partition>, i32), i16> {
    let index = u32::try_from(index).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
    let (leader_epoch, led) = node.leader_epoch(topic, index).map_err(|err| error_code(&err))?;
    check_current_epoch(current_leader_epoch, leader_epoch)?;
    led.map_err(|err| error_code(&err))?;
    let partition = node.registry.partition(topic, index).map_err(|err| error_code(&err))?;
    Ok((partition, leader_epoch))
}

/// A request's current leader epoch against the one this node knows: older is FENCED_LEADER_EPOCH (the client's
/// metadata is stale), newer UNKNOWN_LEADER_EPOCH (this node's is). Clients retry both after a metadata refresh.
pub fn check_current_epoch(asked: i32, known: i32) -> Result<(), i16> {
    match asked {
        NO_EPOCH => Ok(()),
        asked if asked < known => Err(ResponseError::FencedLeaderEpoch.code()),
        asked if asked > known => Err(ResponseError::UnknownLeaderEpoch.code()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_current_epoch_or_with_the_known_one_passes() {
        assert_eq!(check_current_epoch(NO_EPOCH, 7), Ok(()));
        assert_eq!(check_current_epoch(7, 7), Ok(()));
    }

    #[test]
    fn an_older_current_epoch_is_fenced_and_a_newer_one_unknown() {
        assert_eq!(check_current_epoch(6, 7), Err(74));
        assert_eq!(check_current_epoch(0, 7), Err(74));
        assert_eq!(check_current_epoch(8, 7), Err(75));
    }
}
