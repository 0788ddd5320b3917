//! ListOffsets (v1–v6): -2 is the log start offset, -1 the high watermark, any other timestamp the first offset
//! below the high watermark whose record timestamp is at or after it (-1, "none", when no such record). v7, which
//! adds -3 (the largest timestamp), is not served. rill's time index does not keep the record's timestamp beside
//! the offset it finds, so the answer's `timestamp` is -1 (docs/kafka.md).
//!
//! Kafka's rules for who answers (its `Partition.fetchOffsetForTimestamp`), kept here because a replica's own
//! high watermark is not one a client may trust:
//! - A request's `current_leader_epoch` (v4+, KIP-320), when set, is checked first against the epoch this node
//!   knows (`leader_epoch.rs`, shared with Fetch and OffsetForLeaderEpoch).
//! - Only the leader answers; any other replica says NOT_LEADER_OR_FOLLOWER. A follower's high watermark trails
//!   the leader's, so its "latest" would be an offset the leader would not give.
//! - A new leader learns the high watermark from its followers' fetches. Until it reaches the start of the
//!   leader's epoch, its value may be below what the previous leader already answered, so "latest" and a
//!   timestamp found at or past it are OFFSET_NOT_AVAILABLE, which clients retry (KIP-207).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::leader_epoch::led_partition;
use super::KafkaContext;
use crate::registry::blocking;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
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
    let log = Arc::clone(partition.log());
    // The high watermark is read before the epoch start: a high watermark that moves past the epoch start in
    // between is answered as lagging (retried), never a lagging one as caught up.
    let high_watermark = log.high_watermark();
    let epoch_start = log.epoch_end_offset(log.leader_epoch().saturating_sub(1)).map(|(_, end)| end);
    let window = LeaderWindow { log_start_offset: log.log_start_offset(), high_watermark, epoch_start };
    let found_at_timestamp = match asked.timestamp {
        timestamp_ms if timestamp_ms >= 0 => {
            blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?)).await.map_err(|err| error_code(&err))?
        }
        _ => None,
    };
    let offset = window.answer(asked.timestamp, found_at_timestamp)?;
    Ok(Found { offset, leader_epoch })
}

/// What the leader's log says at the moment of a lookup.
#[derive(Debug, Clone, Copy)]
struct LeaderWindow {
    log_start_offset: i64,
    high_watermark: i64,
    /// Where the leader's current epoch starts in its log; `None` for the log's first epoch.
    epoch_start: Option<i64>,
}

impl LeaderWindow {
    /// A new leader whose high watermark has not yet reached the start of its epoch.
    fn is_high_watermark_lagging(&self) -> bool {
        self.epoch_start.is_some_and(|start| start > self.high_watermark)
    }

    /// The answer to a lookup of `timestamp_ms` (a spec when negative), given the offset the time index found.
    fn answer(&self, timestamp_ms: i64, found_at_timestamp: Option<i64>) -> Result<i64, i16> {
        let not_available = ResponseError::OffsetNotAvailable.code();
        match timestamp_ms {
            EARLIEST => Ok(self.log_start_offset),
            LATEST if self.is_high_watermark_lagging() => Err(not_available),
            LATEST => Ok(self.high_watermark),
            // Other negative specs (-3, largest timestamp, and later ones) come with versions not advertised.
            timestamp_ms if timestamp_ms < 0 => Err(ResponseError::InvalidRequest.code()),
            // Consumers read only below the high watermark: an offset at or past it is not one to give out.
            _ => match found_at_timestamp.filter(|offset| *offset < self.high_watermark) {
                Some(offset) => Ok(offset),
                None if self.is_high_watermark_lagging() => Err(not_available),
                None => Ok(-1),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUGHT_UP: LeaderWindow = LeaderWindow { log_start_offset: 3, high_watermark: 40, epoch_start: Some(30) };
    const LAGGING: LeaderWindow = LeaderWindow { log_start_offset: 3, high_watermark: 25, epoch_start: Some(30) };

    #[test]
    fn a_caught_up_leader_answers_its_high_watermark_and_log_start() {
        assert_eq!(CAUGHT_UP.answer(LATEST, None), Ok(40));
        assert_eq!(CAUGHT_UP.answer(EARLIEST, None), Ok(3));
        let at_epoch_start = LeaderWindow { high_watermark: 30, ..CAUGHT_UP };
        assert_eq!(at_epoch_start.answer(LATEST, None), Ok(30), "a high watermark at the epoch start has caught up");
    }

    #[test]
    fn a_new_leader_whose_high_watermark_trails_its_epoch_start_says_offset_not_available() {
        assert!(LAGGING.is_high_watermark_lagging());
        assert_eq!(LAGGING.answer(LATEST, None), Err(78));
        assert_eq!(LAGGING.answer(1_000, Some(27)), Err(78), "found at or past the high watermark");
        assert_eq!(LAGGING.answer(1_000, None), Err(78), "not found: it may be in what the old leader committed");
    }

    #[test]
    fn a_lagging_leader_still_answers_the_log_start_and_timestamps_below_its_high_watermark() {
        assert_eq!(LAGGING.answer(EARLIEST, None), Ok(3));
        assert_eq!(LAGGING.answer(1_000, Some(10)), Ok(10));
    }

    #[test]
    fn a_timestamp_found_past_the_high_watermark_is_none_on_a_caught_up_leader() {
        assert_eq!(CAUGHT_UP.answer(1_000, Some(40)), Ok(-1));
        assert_eq!(CAUGHT_UP.answer(1_000, Some(39)), Ok(39));
        assert_eq!(CAUGHT_UP.answer(1_000, None), Ok(-1));
    }

    #[test]
    fn the_first_epoch_of_a_log_never_lags_and_unserved_specs_are_invalid() {
        let first_epoch = LeaderWindow { log_start_offset: 0, high_watermark: 0, epoch_start: None };
        assert_eq!(first_epoch.answer(LATEST, None), Ok(0));
        assert_eq!(CAUGHT_UP.answer(-3, None), Err(42));
    }
}
