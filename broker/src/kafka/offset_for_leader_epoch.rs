//! OffsetForLeaderEpoch (v2–v4): where a leader epoch ends in the leader's log (KIP-101's API, opened to
//! consumers by KIP-320). After a leader change a consumer asks where the epoch of the last record it read ends;
//! an end below its position means the log it read from was truncated, and it resets rather than skip or
//! re-read. rill's followers use the internal gRPC call instead, so every request is answered as Kafka answers
//! any: by the leader only (`ReplicaManager.lastOffsetForLeaderEpoch` fetches only from the leader whatever the
//! `replica_id`), after the same current-leader-epoch check as Fetch and ListOffsets (`leader_epoch.rs`).
//!
//! The answer is the log's epoch cache read Kafka's way (storage's `end_offset_for_leader_epoch`): the current
//! epoch ends at the log end offset, not the high watermark, as in Kafka; a consumer's position never passes the
//! high watermark, so the log end can only make it see less truncation than there is when there is none.
//! An epoch the log cannot place answers Kafka's undefined pair, epoch -1 and offset -1, without an error.
//!
//! Authorization is Kafka's consumer rule: DESCRIBE on each topic (READ implies it), else
//! TOPIC_AUTHORIZATION_FAILED for its partitions. Kafka also lets CLUSTER_ACTION through, which its followers
//! hold; rill has no such operation, since its followers never speak Kafka to each other.

use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::leader_epoch::led_partition;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;

pub fn answer(
    kafka: &KafkaContext,
    request: OffsetForLeaderEpochRequest,
    principal: &Principal,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.as_str();
            let authorized = kafka.authorize(principal, Operation::Describe, &Resource::topic(name));
            let partitions = topic
                .partitions
                .iter()
                .map(|asked| {
                    let answer = EpochEndOffset::default().with_partition(asked.partition);
                    match authorized.and_then(|()| end_offset(kafka, name, asked)) {
                        Ok(Some((leader_epoch, end_offset))) => {
                            answer.with_leader_epoch(leader_epoch).with_end_offset(end_offset)
                        }
                        // Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET, the answer's defaults.
                        Ok(None) => answer,
                        Err(code) => answer.with_error_code(code),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(topic.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// The epoch at or below the asked one and its end offset in this leader's log; `None` when the log cannot
/// place the epoch.
fn end_offset(kafka: &KafkaContext, topic: &str, asked: &OffsetForLeaderPartition) -> Result<Option<(i32, i64)>, i16> {
    let (partition, _) = led_partition(&kafka.node, topic, asked.partition, asked.current_leader_epoch)?;
    Ok(partition.log().end_offset_for_leader_epoch(asked.leader_epoch))
}
