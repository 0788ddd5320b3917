//! DeleteRecords (v0–v2; v2 is flexible): each partition's records before an offset are deleted (-1: before the
//! high watermark) and the answer is its new low watermark (the log start offset), as `kafka-delete-records.sh`
//! and the AdminClients' `deleteRecords` expect. The work is `crate::delete_records`, shared with gRPC.
//!
//! Per partition, as Kafka: DELETE on the topic or TOPIC_AUTHORIZATION_FAILED; UNKNOWN_TOPIC_OR_PARTITION; an
//! offset past the high watermark is OFFSET_OUT_OF_RANGE. On a cluster every partition is refused with
//! UNSUPPORTED_VERSION (`unsupported`: not served there yet, see `crate::delete_records`). `timeout_ms` is not
//! waited on: a single node answers once the new start is fsynced.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::error::error_code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;

/// The low watermark a refused partition answers, as Kafka's broker does.
const NO_LOW_WATERMARK: i64 = -1;

pub async fn answer(
    kafka: &KafkaContext,
    request: DeleteRecordsRequest,
    principal: &Principal,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.as_str();
        let authorized = kafka.authorize(principal, Operation::Delete, &Resource::topic(name));
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for asked in topic.partitions {
            let deleted = match (authorized, u32::try_from(asked.partition_index)) {
                (Err(code), _) => Err(code),
                (Ok(()), Err(_)) => Err(kafka_protocol::ResponseError::UnknownTopicOrPartition.code()),
                (Ok(()), Ok(partition)) => {
                    crate::delete_records::delete_records_before(&kafka.node, name, partition, asked.offset)
                        .await
                        .map_err(|err| error_code(&err))
                }
            };
            let result = DeleteRecordsPartitionResult::default().with_partition_index(asked.partition_index);
            partitions.push(match deleted {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => result.with_low_watermark(NO_LOW_WATERMARK).with_error_code(code),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
