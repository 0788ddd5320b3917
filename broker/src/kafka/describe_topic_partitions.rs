//! DescribeTopicPartitions (75), v0 (KIP-966): the topics' partitions as Metadata describes them (leader, epoch,
//! replicas, ISR), a page at a time, which the Java AdminClient's `describeTopics` (and so `kafka-topics.sh
//! --describe`) asks from Kafka 3.8 on. Built on the Metadata answer (`metadata.rs`), so a topic is described and
//! authorized the same way by both: the topics asked, or with none asked every topic the principal may DESCRIBE;
//! a topic asked that it may not is TOPIC_AUTHORIZATION_FAILED, an unknown one UNKNOWN_TOPIC_OR_PARTITION.
//!
//! Paging is Kafka's: topics in name order, from the cursor's topic and partition on, at most
//! `response_partition_limit` partitions (and never more than [`MAX_PARTITIONS`]); `next_cursor` names where the
//! next page starts, null on the last one. A cursor naming a topic the request does not ask for is
//! INVALID_REQUEST for each topic asked. rill has no eligible leader replicas (KIP-966's ELR): both lists are
//! empty. `topic_authorized_operations` is the operations the principal may perform on the topic, as Kafka
//! reports them.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;

/// The most partitions one answer carries, whatever the request asks (Kafka's
/// `max.request.partition.size.limit` default).
pub const MAX_PARTITIONS: usize = 2000;

pub fn answer(
    kafka: &KafkaContext,
    request: &DescribeTopicPartitionsRequest,
    principal: &Principal,
) -> DescribeTopicPartitionsResponse {
    let asks_all = request.topics.is_empty();
    if let Some(cursor) = &request.cursor {
        if !asks_all && !request.topics.iter().any(|topic| topic.name == cursor.topic_name) {
            let refused = request
                .topics
                .iter()
                .map(|topic| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(topic.name.clone()))
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_topic_authorized_operations(i32::MIN)
                })
                .collect();
            return DescribeTopicPartitionsResponse::default().with_topics(refused);
        }
    }
    let asked = (!asks_all).then(|| {
        request.topics.iter().map(|topic| MetadataRequestTopic::default().with_name(Some(topic.name.clone()))).collect()
    });
    let metadata = super::metadata::answer(kafka, &MetadataRequest::default().with_topics(asked), principal);
    let name_of = |name: &Option<TopicName>| name.as_ref().map(|name| name.0.to_string()).unwrap_or_default();
    let mut topics: Vec<_> = metadata.topics.into_iter().map(|topic| (name_of(&topic.name), topic)).collect();
    topics.sort_by(|(a, _), (b, _)| a.cmp(b));
    topics.dedup_by(|(a, _), (b, _)| a == b);
    let (from_topic, from_partition) = match &request.cursor {
        Some(cursor) => (Some(cursor.topic_name.0.to_string()), cursor.partition_index.max(0)),
        None => (None, 0),
    };
    let cursor_at = |name: &str, partition: i32| {
        Cursor::default()
            .with_topic_name(TopicName(StrBytes::from_string(name.to_owned())))
            .with_partition_index(partition)
    };
    let limit = usize::try_from(request.response_partition_limit).unwrap_or(0).clamp(1, MAX_PARTITIONS);
    let (mut described, mut next_cursor, mut count) = (Vec::new(), None, 0usize);
    for (name, topic) in topics {
        let skip_below = match &from_topic {
            Some(from) if name < *from => continue,
            Some(from) if name == *from => from_partition,
            _ => 0,
        };
        if count >= limit {
            next_cursor = Some(cursor_at(&name, 0));
            break;
        }
        let mut partitions = Vec::new();
        for partition in topic.partitions.into_iter().filter(|p| p.partition_index >= skip_below) {
            if count >= limit {
                next_cursor = Some(cursor_at(&name, partition.partition_index));
                break;
            }
            count += 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(partition.error_code)
                    .with_partition_index(partition.partition_index)
                    .with_leader_id(partition.leader_id)
                    .with_leader_epoch(partition.leader_epoch)
                    .with_replica_nodes(partition.replica_nodes)
                    .with_isr_nodes(partition.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(partition.offline_replicas),
            );
        }
        let operations = match topic.error_code {
            0 => authorized_operations(kafka, principal, name.as_str()),
            _ => i32::MIN,
        };
        described.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(topic.error_code)
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_is_internal(topic.is_internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(operations),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default().with_topics(described).with_next_cursor(next_cursor)
}

/// Kafka's bit field of the operations `principal` may perform on topic `name`: bit `code` set for each.
fn authorized_operations(kafka: &KafkaContext, principal: &Principal, name: &str) -> i32 {
    let resource = Resource::topic(name);
    // Every operation but ALL (a wildcard, not one) and IDEMPOTENT_WRITE (a cluster's).
    Operation::ALL
        .into_iter()
        .filter(|operation| !matches!(operation, Operation::All | Operation::IdempotentWrite))
        .filter(|operation| kafka.node.authorizer.is_allowed(principal, *operation, &resource))
        .fold(0, |bits, operation| bits | 1 << super::acl_wire::operation_code(operation))
}
