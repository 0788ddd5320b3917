//! CreateTopics (v2–v7), through the gRPC `CreateTopic` path: on a single node the registry's create, on a
//! cluster the replicated metadata (`Replication::create_topic_placed`: placed by the node asked, committed by the
//! controller leader, forwarded to it from a follower, opened by every replica). Each topic gets its own code and
//! message: TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION (a bad or reserved name), INVALID_PARTITIONS,
//! INVALID_REPLICATION_FACTOR (a single node holds one replica: 1 or -1; a cluster 1 to its alive nodes, -1 for
//! `default_replication_factor`, Kafka's `default.replication.factor` as DescribeConfigs shows it; -1 partitions
//! are `default_partitions`, Kafka's `num.partitions`), INVALID_REPLICA_ASSIGNMENT
//! (a manual assignment that breaks a rule: on a cluster, distinct alive nodes, as many for every partition),
//! INVALID_CONFIG (`topic_configs.rs` lists what maps; `min.insync.replicas` from 1 to the replication factor).
//! `validate_only` runs the checks and creates nothing. From v5 a created topic's answer carries its partition
//! count, replication factor and effective configs, from v7 its id.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;
use rill_protocol::v1;

use super::mutation_quota::MutationQuota;
use super::topic_configs::{text, topic_config, topic_entries, CreateConfig};
use super::topics_admin::admin_error;
use super::KafkaContext;
use crate::replication::Replication;
use crate::topic_config::TopicConfigState;

/// Kafka's "the broker's default" for a partition count or replication factor.
const BROKER_DEFAULT: i32 = -1;

type Refusal = (ResponseError, String);

/// The first version refused past the controller mutation quota (KIP-599's strict mode).
const STRICT_QUOTA_VERSION: i16 = 6;

pub async fn answer(
    kafka: &KafkaContext,
    request: CreateTopicsRequest,
    version: i16,
    caller: &super::dispatch::Caller,
) -> CreateTopicsResponse {
    let principal = &caller.principal;
    let mut mutations = MutationQuota::of(kafka, principal, &caller.client_id, version >= STRICT_QUOTA_VERSION);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let authorized = crate::service::authorize_create_topic(&kafka.node, principal, name.0.as_str())
            .map_err(|denied| (ResponseError::TopicAuthorizationFailed, denied.to_string()))
            .and_then(|()| if request.validate_only { Ok(()) } else { mutations.check() });
        let partitions = partition_count_asked(&topic, kafka.node.config.default_partitions);
        let created = match authorized {
            Ok(()) => create(kafka, topic, request.validate_only).await,
            Err(denied) => Err(denied),
        };
        if created.is_ok() && !request.validate_only {
            mutations.record(partitions);
        }
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
    CreateTopicsResponse::default().with_topics(results).with_throttle_time_ms(mutations.throttle_time_ms())
}

/// The partitions a topic asks for: its manual assignment's, its count, or the broker's default.
fn partition_count_asked(topic: &CreatableTopic, default_partitions: u32) -> u32 {
    match (topic.assignments.len(), u32::try_from(topic.num_partitions)) {
        (0, Ok(count)) => count,
        (0, Err(_)) => default_partitions,
        (assigned, _) => u32::try_from(assigned).unwrap_or(u32::MAX),
    }
}

async fn create(
    kafka: &KafkaContext,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, Refusal> {
    let configs = topic.configs.iter().map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
    let asked = topic_config(configs).map_err(|message| (ResponseError::InvalidConfig, message))?;
    match &kafka.node.replication {
        Some(replication) => create_replicated(kafka, replication, &topic, asked, validate_only).await,
        None => create_local(kafka, &topic, asked, validate_only).await,
    }
}

/// A cluster's create: `num_partitions` and `replication_factor`, or a manual assignment of broker ids per
/// partition (with both -1, as Kafka requires), placed and committed through the replicated metadata.
async fn create_replicated(
    kafka: &KafkaContext,
    replication: &Replication,
    topic: &CreatableTopic,
    asked: CreateConfig,
    validate_only: bool,
) -> Result<CreatableTopicResult, Refusal> {
    let assignment = manual_assignment(topic)?;
    let replication_factor = match topic.replication_factor {
        rf if i32::from(rf) == BROKER_DEFAULT => None,
        rf if rf >= 1 => Some(rf as u32),
        rf => {
            let alive = replication.metadata().alive_nodes().len();
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {rf}: give 1 to the {alive} alive node(s) of the cluster, or -1 for this \
                     node's default of {}",
                    kafka.node.config.default_replication_factor
                ),
            ));
        }
    };
    let partition_count = match &assignment {
        Some(_) => 0,
        None => partition_count(topic.num_partitions, kafka.node.config.default_partitions)?,
    };
    let request = v1::CreateTopicRequest {
        name: topic.name.0.to_string(),
        partition_count,
        config: Some(asked.config),
        replication_factor,
        min_insync_replicas: asked.min_insync_replicas,
    };
    let (name, placed) = replication
        .create_topic_placed(request, assignment.as_deref(), validate_only)
        .await
        .map_err(|err| admin_error(&err))?;
    let state = TopicConfigState { settings: placed.settings.clone(), min_insync_replicas: placed.min_insync_replicas };
    let replication_factor = placed.replication_factor();
    let result = CreatableTopicResult::default()
        .with_num_partitions(placed.partitions.len() as i32)
        .with_replication_factor(replication_factor as i16)
        .with_configs(Some(config_results(kafka, &state, replication_factor)));
    if validate_only {
        return Ok(result);
    }
    Ok(result.with_topic_id(placed.topic_id(&name).as_uuid()))
}

/// A single node's create: one replica of each partition, on this node.
async fn create_local(
    kafka: &KafkaContext,
    topic: &CreatableTopic,
    asked: CreateConfig,
    validate_only: bool,
) -> Result<CreatableTopicResult, Refusal> {
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
    if let Some(min_insync_replicas) = asked.min_insync_replicas.filter(|count| *count != 1) {
        return Err((
            ResponseError::InvalidConfig,
            format!("min.insync.replicas {min_insync_replicas}: a single rill node holds one replica (use 1)"),
        ));
    }
    let partitions = local_partition_count(kafka, topic)?;
    let registry = &kafka.node.registry;
    if validate_only {
        registry.validate_create(name, partitions, &asked.config).map_err(|err| admin_error(&err))?;
        return Ok(CreatableTopicResult::default().with_num_partitions(partitions as i32).with_replication_factor(1));
    }
    let created = registry.create(name, partitions, &asked.config).await.map_err(|err| admin_error(&err))?;
    // A single node's topic: one replica, min.insync.replicas 1.
    let state = TopicConfigState { settings: created.settings(), min_insync_replicas: 1 };
    Ok(CreatableTopicResult::default()
        .with_topic_id(created.id.as_uuid())
        .with_num_partitions(created.partition_count() as i32)
        .with_replication_factor(1)
        .with_configs(Some(config_results(kafka, &state, 1))))
}

fn config_results(
    kafka: &KafkaContext,
    state: &TopicConfigState,
    replication_factor: u32,
) -> Vec<CreatableTopicConfigs> {
    topic_entries(state, replication_factor, &kafka.node.config, &crate::topic_defaults::current(&kafka.node))
        .into_iter()
        .map(|entry| {
            CreatableTopicConfigs::default()
                .with_name(text(entry.name))
                .with_value(Some(text(entry.value)))
                .with_config_source(entry.source)
        })
        .collect()
}

fn partition_count(num_partitions: i32, default_partitions: u32) -> Result<u32, Refusal> {
    match num_partitions {
        BROKER_DEFAULT => Ok(default_partitions),
        n => u32::try_from(n).map_err(|_| {
            (ResponseError::InvalidPartitions, format!("{n} partitions: a topic needs at least 1 (or -1)"))
        }),
    }
}

/// The manual assignment's broker ids, partition 0 first; `None` without one. Kafka's rules for the request
/// itself: `num_partitions` and `replication_factor` -1 beside it, each partition 0 to n-1 listed once.
fn manual_assignment(topic: &CreatableTopic) -> Result<Option<Vec<Vec<u64>>>, Refusal> {
    if topic.assignments.is_empty() {
        return Ok(None);
    }
    if topic.num_partitions != BROKER_DEFAULT || i32::from(topic.replication_factor) != BROKER_DEFAULT {
        return Err((
            ResponseError::InvalidRequest,
            "give num_partitions -1 and replication_factor -1 with a manual assignment: it sets both".into(),
        ));
    }
    let mut assignment: Vec<Option<Vec<u64>>> = vec![None; topic.assignments.len()];
    for listed in &topic.assignments {
        let slot = usize::try_from(listed.partition_index).ok().and_then(|index| assignment.get_mut(index));
        let Some(slot) = slot.filter(|slot| slot.is_none()) else {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "partition {} is listed twice or out of range: list partitions 0 to {} once each",
                    listed.partition_index,
                    topic.assignments.len() - 1
                ),
            ));
        };
        let ids: Result<Vec<u64>, _> = listed.broker_ids.iter().map(|id| u64::try_from(id.0)).collect();
        *slot = Some(ids.map_err(|_| {
            (
                ResponseError::InvalidReplicaAssignment,
                format!("partition {} names a negative broker id: node ids are 1 or more", listed.partition_index),
            )
        })?);
    }
    Ok(Some(assignment.into_iter().flatten().collect()))
}

/// `num_partitions`, or the number of partitions a manual assignment lists (each on this node only).
fn local_partition_count(kafka: &KafkaContext, topic: &CreatableTopic) -> Result<u32, Refusal> {
    if topic.assignments.is_empty() {
        return partition_count(topic.num_partitions, kafka.node.config.default_partitions);
    }
    if topic.num_partitions != BROKER_DEFAULT {
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
