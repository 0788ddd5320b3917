//! ListOffsets (v1–v6): -2 is the log start offset, -1 the high watermark, any other timestamp the first offset
//! below the high watermark whose record timestamp is at or after it (-1, "none", when no such record). v7, which
//! adds -3 (the largest timestamp), is not served. rill's time index does not keep the record's timestamp beside
//! the offset it finds, so the answer's `timestamp` is -1 (docs/kafka.md).
//!
//! A request's `current_leader_epoch` (v4+, KIP-320), when set, is checked first against the epoch this node
//! knows (`leader_epoch.rs`, shared with Fetch and OffsetForLeaderEpoch); only the leader answers, any other
//! replica says NOT_LEADER_OR_FOLLOWER. What the leader answers is `offset_lookup.rs`'s rule, the one gRPC's
//! ListOffsets follows too; its "not available yet" is OFFSET_NOT_AVAILABLE, which clients retry (KIP-207), and
//! "no record at or after the timestamp" is -1.

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
/// The offset of a timestamp lookup that found no record.
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
            let answer =
                ListOffsetsPartitionResponse::default().with_partition_index(asked.partition_index).with_timestamp(-1);
            let found = match authorized {
                Ok(()) => offset_for(kafka, topic.name.0.as_str(), &asked).await,
                Err(code) => Err(code),
            };
            partitions.push(match found {
                // The field exists from v4; below, the encoder refuses any value but its default.
                Ok(Found { offset, leader_epoch }) if version >= FIRST_WITH_LEADER_EPOCH => {
                    answer.with_offset(offset).with_leader_epoch(leader_epoch)
                }
                Ok(Found { offset, .. }) => answer.with_offset(offset),
                Err(code) => answer.with_error_code(code).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// An offset the leader gives, with the epoch it leads at (v4+ clients validate their position with it).
struct Found {
    offset: i64,
    leader_epoch: i32,
}

async fn offset_for(kafka: &KafkaContext, topic: &str, asked: &ListOffsetsPartition) -> Result<Found, i16> {
    let (partition, leader_epoch) =
        led_partition(&kafka.node, topic, asked.partition_index, asked.current_leader_epoch)?;
    let query = query_of(asked.timestamp)?;
    let log = Arc::clone(partition.log());
    let window = LeaderWindow::of(&log);
    let found_at_timestamp = match query {
        OffsetQuery::Timestamp(timestamp_ms) => {
            blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?)).await.map_err(|err| error_code(&err))?
        }
        OffsetQuery::Earliest | OffsetQuery::Latest => None,
    };
    let offset = window
        .answer(query, found_at_timestamp)
        .map_err(|_: OffsetNotAvailable| ResponseError::OffsetNotAvailable.code())?
        .unwrap_or(NONE);
    Ok(Found { offset, leader_epoch })
}

/// The question a request's `timestamp` asks. Other negative specs (-3, the largest timestamp, and later ones)
/// come with versions not advertised: INVALID_REQUEST.
fn query_of(timestamp: i64) -> Result<OffsetQuery, i16> {
    match timestamp {
        EARLIEST => Ok(OffsetQuery::Earliest),
        LATEST => Ok(OffsetQuery::Latest),
        timestamp_ms if timestamp_ms >= 0 => Ok(OffsetQuery::Timestamp(timestamp_ms)),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_specs_map_to_queries_and_unserved_specs_are_invalid() {
        assert_eq!(query_of(-2), Ok(OffsetQuery::Earliest));
        assert_eq!(query_of(-1), Ok(OffsetQuery::Latest));
        assert_eq!(query_of(0), Ok(OffsetQuery::Timestamp(0)));
        assert_eq!(query_of(-3), Err(42));
    }
}
