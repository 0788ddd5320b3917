//! ListOffsets (v1–v9): -2 is the log start offset, -1 the high watermark, -3 (v7+, KIP-734) the first record
//! carrying the partition's largest timestamp, with that timestamp, -4 (v8+, KIP-405's local log start) the log
//! start offset again (rill has no tiered storage: the whole log is local), -5 (v9+, KIP-1005's latest tiered
//! offset) "none" (-1, leader epoch -1), as Kafka answers without tiered storage; any other timestamp the first
//! offset below the high watermark whose record timestamp is at or after it (-1, "none", when no such record).
//! rill's time index does not keep the record's timestamp beside the offset it finds, so a timestamp lookup's
//! answer carries `timestamp` -1 (docs/kafka.md); -3's carries the largest timestamp and its batch's leader
//! epoch, as Kafka's does.
//!
//! A request's `current_leader_epoch` (v4+, KIP-320), when set, is checked first against the epoch this node
//! knows (`leader_epoch.rs`, shared with Fetch and OffsetForLeaderEpoch); only the leader answers, any other
//! replica says NOT_LEADER_OR_FOLLOWER. What the leader answers is `offset_lookup.rs`'s rule, the one gRPC's
//! ListOffsets follows too; its "not available yet" is OFFSET_NOT_AVAILABLE, which clients retry (KIP-207), and
//! "no record at or after the timestamp" is -1. Like Kafka's broker, a spec is served whatever the version that
//! carries it (clients ask -3 from v7 on, -4 from v8, -5 from v9).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::leader_epoch::led_partition;
use super::KafkaContext;
use crate::offset_lookup::{LeaderWindow, OffsetNotAvailable, OffsetQuery};
use crate::registry::blocking;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// The offset (and timestamp, and leader epoch) of a lookup that found no record.
const NONE: i64 = -1;
/// The first version whose requests carry `current_leader_epoch` and whose answers carry `leader_epoch`.
const FIRST_WITH_LEADER_EPOCH: i16 = 4;

pub async fn answer(
    kafka: &KafkaContext,
    request: ListOffsetsRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> ListOffsetsResponse {
    use crate::auth::acl::{Operation, Resource};
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        // Kafka asks DESCRIBE on the topic (READ implies it).
        let authorized = kafka.authorize(principal, Operation::Describe, &Resource::topic(topic.name.0.as_str()));
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default().with_partition_index(asked.partition_index);
            let found = match authorized {
                Ok(()) => offset_for(kafka, topic.name.0.as_str(), &asked, request.isolation_level == 1).await,
                Err(code) => Err(code),
            };
            partitions.push(match found {
                // The field exists from v4; below, the encoder refuses any value but its default.
                Ok(Found { offset, leader_epoch, timestamp }) if version >= FIRST_WITH_LEADER_EPOCH => {
                    answer.with_offset(offset).with_timestamp(timestamp).with_leader_epoch(leader_epoch)
                }
                Ok(Found { offset, timestamp, .. }) => answer.with_offset(offset).with_timestamp(timestamp),
                Err(code) => answer.with_error_code(code).with_offset(NONE).with_timestamp(NONE),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// An offset the leader gives, with the epoch it leads at (v4+ clients validate their position with it), or for
/// -3 the epoch of the batch holding the record, and the record's timestamp (-1 but for -3).
struct Found {
    offset: i64,
    leader_epoch: i32,
    timestamp: i64,
}

/// What a request's `timestamp` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// A question `offset_lookup.rs` answers.
    Lookup(OffsetQuery),
    /// The highest offset in tiered storage (-5): rill tiers nothing, so there is none.
    LatestTiered,
}

/// `is_read_committed` (isolation level 1): "latest" and timestamps answer below the last stable offset, as
/// Kafka's do, so a `read_committed` consumer never starts inside an open transaction.
async fn offset_for(
    kafka: &KafkaContext,
    topic: &str,
    asked: &ListOffsetsPartition,
    is_read_committed: bool,
) -> Result<Found, i16> {
    let (partition, leader_epoch) =
        led_partition(&kafka.node, topic, asked.partition_index, asked.current_leader_epoch)?;
    let query = match spec_of(asked.timestamp)? {
        Spec::Lookup(query) => query,
        // Kafka's answer without tiered storage: no offset, no epoch.
        Spec::LatestTiered => return Ok(Found { offset: NONE, leader_epoch: NONE as i32, timestamp: NONE }),
    };
    let log = Arc::clone(partition.log());
    let mut window = LeaderWindow::of(&log);
    if is_read_committed {
        window.high_watermark = window.high_watermark.min(log.last_stable_offset());
    }
    let (found_offset, largest) = match query {
        OffsetQuery::Timestamp(timestamp_ms) => {
            let found = blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?)).await;
            (found.map_err(|err| error_code(&err))?, None)
        }
        OffsetQuery::LargestTimestamp => {
            let found = blocking(move || Ok(log.largest_timestamp()?)).await.map_err(|err| error_code(&err))?;
            (found.map(|largest| largest.offset), found)
        }
        OffsetQuery::Earliest | OffsetQuery::Latest => (None, None),
    };
    let offset =
        window.answer(query, found_offset).map_err(|_: OffsetNotAvailable| ResponseError::OffsetNotAvailable.code())?;
    Ok(match (offset, largest) {
        // As Kafka: the batch's epoch, or -1 for a batch stored without one.
        (Some(offset), Some(largest)) => {
            Found { offset, leader_epoch: largest.leader_epoch.max(-1), timestamp: largest.timestamp_ms }
        }
        (offset, _) => Found { offset: offset.unwrap_or(NONE), leader_epoch, timestamp: NONE },
    })
}

/// The question a request's `timestamp` asks. Other negative specs (-6, KIP-1023's earliest pending upload, and
/// later ones) come with versions not advertised: INVALID_REQUEST.
fn spec_of(timestamp: i64) -> Result<Spec, i16> {
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok(Spec::Lookup(OffsetQuery::Earliest)),
        LATEST => Ok(Spec::Lookup(OffsetQuery::Latest)),
        MAX_TIMESTAMP => Ok(Spec::Lookup(OffsetQuery::LargestTimestamp)),
        LATEST_TIERED => Ok(Spec::LatestTiered),
        timestamp_ms if timestamp_ms >= 0 => Ok(Spec::Lookup(OffsetQuery::Timestamp(timestamp_ms))),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_specs_map_to_queries_and_unserved_specs_are_invalid() {
        assert_eq!(spec_of(-2), Ok(Spec::Lookup(OffsetQuery::Earliest)));
        assert_eq!(spec_of(-1), Ok(Spec::Lookup(OffsetQuery::Latest)));
        assert_eq!(spec_of(0), Ok(Spec::Lookup(OffsetQuery::Timestamp(0))));
        assert_eq!(spec_of(-3), Ok(Spec::Lookup(OffsetQuery::LargestTimestamp)));
        assert_eq!(spec_of(-4), Ok(Spec::Lookup(OffsetQuery::Earliest)), "no tiered storage: all of the log is local");
        assert_eq!(spec_of(-5), Ok(Spec::LatestTiered));
        assert_eq!(spec_of(-6), Err(42));
    }
}
