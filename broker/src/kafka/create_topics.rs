//! CreateTopics (v2–v7) through the registry's create, the gRPC `CreateTopic` path. Each topic gets its own
//! code and message: TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION (a bad or reserved name), INVALID_PARTITIONS,
//! INVALID_REPLICATION_FACTOR (one node holds one replica: only 1, or -1 for the default, is accepted),
//! INVALID_CONFIG (`topic_configs.rs` lists what maps). `validate_only` runs the checks and creates nothing.
//! From v5 a created topic's answer carries its partition count and effective configs.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;
use rill_protocol::v1;

use super::topic_configs::{text, topic_config, topic_entries};
use super::topics_admin::admin_error;
use super::KafkaContext;

/// The partition count of a topic created with -1 (Kafka's broker default `num.partitions`).
const DEFAULT_PARTITIONS: u32 = 1;

pub async fn answer(
    kafka: &KafkaContext,
    request: CreateTopicsRequest,
    principal: &crate::auth::Principal,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let authorized = crate::service::authorize_create_topic(&kafka.node, principal, name.0.as_str())
            .map_err(|denied| (ResponseError::TopicAuthorizationFailed, denied.to_string()));
        let created = match authorized {
            Ok(()) => create(kafka, topic, request.validate_only).await,
            Err(denied) => Err(denied),
        };
        let result = match created {
            Ok(result) => result,
            Err((error, message)) => CreatableTopicResult::default()
                .with_error_code(error.code())
                .with_error_message(Some(text(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        };
        results.push(result.with_name(name));
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create(
    kafka: &KafkaContext,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, (ResponseError, String)> {
    let name = topic.name.0.as_str();
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {}: a single rill node holds one replica (use 1 or -1)",
                topic.replication_factor
            ),
        ));
    }
    let partitions = partition_count(kafka, &topic)?;
    let configs = topic.configs.iter().map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
    let config: v1::TopicConfig = topic_config(configs).map_err(|message| (ResponseError::InvalidConfig, message))?;
    let registry = &kafka.node.registry;
    if validate_only {
        registry.validate_create(name, partitions, &config).map_err(|err| admin_error(&err))?;
        return Ok(CreatableTopicResult::default().with_num_partitions(partitions as i32).with_replication_factor(1));
    }
    let created = registry.create(name, partitions, &config).await.map_err(|err| admin_error(&err))?;
    // A single node's topic: one replica, min.insync.replicas 1.
    let state = crate::topic_config::TopicConfigState { settings: created.settings(), min_insync_replicas: 1 };
    let configs = topic_entries(&state, 1, &kafka.node.config)
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(text(entry.name))
                .with_value(Some(text(entry.value)))
                .with_config_source(entry.source)
        })
        .collect();
    Ok(CreatableTopicResult::default()
        .with_topic_id(created.id.as_uuid())
        .with_num_partitions(created.partition_count() as i32)
        .with_replication_factor(1)
        .with_configs(Some(configs)))
}

/// `num_partitions`, or the number of partitions a manual assignment lists (each on this node only).
fn partition_count(kafka: &KafkaContext, topic: &CreatableTopic) -> Result<u32, (ResponseError, String)> {
    if topic.assignments.is_empty() {
        return match topic.num_partitions {
            -1 => Ok(DEFAULT_PARTITIONS),
            n => u32::try_from(n).map_err(|_| {
                (ResponseError::InvalidPartitions, format!("{n} partitions: a topic needs at least 1 (or -1)"))
            }),
        };
    }
    if topic.num_partitions != -1 {
        return Err((ResponseError::InvalidRequest, "give num_partitions -1 with a manual assignment".into()));
    }
    let is_here = |ids: &[kafka_protocol::messages::BrokerId]| ids.len() == 1 && ids[0].0 == kafka.node_id;
    if let Some(bad) = topic.assignments.iter().find(|a| !is_here(&a.broker_ids)) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!(
                "partition {} is assigned to {:?}: every partition of a single node is on node {} alone",
                bad.partition_index,
                bad.broker_ids.iter().map(|id| id.0).collect::<Vec<_>>(),
                kafka.node_id
            ),
        ));
    }
    Ok(topic.assignments.len() as u32)
}
