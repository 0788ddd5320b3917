//! Metadata: this node as the one broker, and each topic asked for with its partitions, all led by this node.
//! Topics are never created by a Metadata request (Kafka's `auto.create.topics.enable=false`): an unknown one
//! is answered with UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::KafkaContext;
use crate::registry::Topic;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn answer(kafka: &KafkaContext, request: &MetadataRequest) -> MetadataResponse {
    let registry = &kafka.node.registry;
    let topics = match &request.topics {
        // Null: every topic (the broker's own `__` logs are not topics in the registry).
        None => registry.list().iter().map(|topic| described(kafka, topic)).collect(),
        Some(asked) => asked
            .iter()
            .map(|asked| {
                let name = asked.name.as_ref().map(|name| name.0.as_str()).unwrap_or_default();
                match registry.topic(name) {
                    Ok(topic) => described(kafka, &topic),
                    Err(_) => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_name(asked.name.clone())
                        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED),
                }
            })
            .collect(),
    };
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(kafka.node_id))
        .with_host(StrBytes::from_string(kafka.advertised_host.clone()))
        .with_port(i32::from(kafka.advertised_port));
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string("rill".to_string())))
        .with_controller_id(BrokerId(kafka.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn described(kafka: &KafkaContext, topic: &Topic) -> MetadataResponseTopic {
    let leader = BrokerId(kafka.node_id);
    let partitions = (0..topic.partition_count())
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(leader)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.to_string()))))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
