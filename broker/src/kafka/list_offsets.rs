//! ListOffsets (v1–v6): -2 is the log start offset, -1 the high watermark, any other timestamp the first offset
//! whose record timestamp is at or after it (-1, "none", when no record is that late). v7, which adds -3 (the
//! largest timestamp), is not served. rill's time index does not keep the record's timestamp beside the offset
//! it finds, so the answer's `timestamp` is -1 (docs/kafka.md).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::KafkaContext;
use crate::registry::blocking;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub async fn answer(
    kafka: &KafkaContext,
    request: ListOffsetsRequest,
    principal: &crate::auth::Principal,
) -> ListOffsetsResponse {
    use crate::auth::acl::{Operation, Resource};
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        // Kafka asks DESCRIBE on the topic (READ implies it).
        let authorized = kafka.authorize(principal, Operation::Describe, &Resource::topic(topic.name.0.as_str()));
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in topic.partitions {
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(asked.partition_index)
                // The leader epoch stays -1, "unknown": the field exists from v4 only, and clients accept -1.
                .with_timestamp(-1);
            let offset = match authorized {
                Ok(()) => offset_for(kafka, topic.name.0.as_str(), asked.partition_index, asked.timestamp).await,
                Err(code) => Err(code),
            };
            partitions.push(match offset {
                Ok(offset) => answer.with_offset(offset),
                Err(code) => answer.with_error_code(code).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn offset_for(kafka: &KafkaContext, topic: &str, index: i32, timestamp_ms: i64) -> Result<i64, i16> {
    let index = u32::try_from(index).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
    let partition = kafka.node.registry.partition(topic, index).map_err(|err| error_code(&err))?;
    let log = Arc::clone(partition.log());
    match timestamp_ms {
        EARLIEST => Ok(log.log_start_offset()),
        LATEST => Ok(log.high_watermark()),
        // Other negative specs (-3, largest timestamp, and later ones) come with versions not advertised.
        timestamp_ms if timestamp_ms < 0 => Err(ResponseError::InvalidRequest.code()),
        timestamp_ms => blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?))
            .await
            .map(|found| found.unwrap_or(-1))
            .map_err(|err| error_code(&err)),
    }
}
