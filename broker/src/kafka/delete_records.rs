//! DeleteRecords (v0–v2; v2 is flexible): each partition's records before an offset are deleted (-1: before the
//! high watermark) and the answer is its new low watermark (the log start offset), as `kafka-delete-records.sh`
//! and the AdminClients' `deleteRecords` expect. The work is `crate::delete_records`, shared with gRPC.
//!
//! Per partition, as Kafka: DELETE on the topic or TOPIC_AUTHORIZATION_FAILED; UNKNOWN_TOPIC_OR_PARTITION; an
//! offset past the high watermark is OFFSET_OUT_OF_RANGE. On a cluster a node that does not lead the partition
//! answers NOT_LEADER_OR_FOLLOWER (clients send it to the leader), and the leader answers once every in-sync
//! replica's log start has reached the offset, waiting up to `timeout_ms` (REQUEST_TIMED_OUT past it); the
//! partitions of one request wait together. A single node answers once the new start is fsynced.

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
    let timeout = crate::delete_records::timeout_of(i64::from(request.timeout_ms));
    let answers = request.topics.into_iter().map(|topic| async move {
        let name = topic.name.0.as_str();
        let authorized = kafka.authorize(principal, Operation::Delete, &Resource::topic(name));
        let deletions = topic.partitions.iter().map(|asked| async move {
            let deleted = match (authorized, u32::try_from(asked.partition_index)) {
                (Err(code), _) => Err(code),
                (Ok(()), Err(_)) => Err(kafka_protocol::ResponseError::UnknownTopicOrPartition.code()),
                (Ok(()), Ok(partition)) => {
                    crate::delete_records::delete_records_before(&kafka.node, name, partition, asked.offset, timeout)
                        .await
                        .map_err(|err| error_code(&err))
                }
            };
            let result = DeleteRecordsPartitionResult::default().with_partition_index(asked.partition_index);
            match deleted {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => result.with_low_watermark(NO_LOW_WATERMARK).with_error_code(code),
            }
        });
        // Every partition waits for its replicas at once: the request takes the longest wait, not their sum.
        let partitions = futures_util::future::join_all(deletions).await;
        DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions)
    });
    DeleteRecordsResponse::default().with_topics(futures_util::future::join_all(answers).await)
}
