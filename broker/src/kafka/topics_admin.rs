//! DeleteTopics (v1–v5) and CreatePartitions (v0–v3), as the gRPC `TopicAdmin` does them: on a single node
//! through the registry, on a cluster through the replicated metadata (`replication/topics.rs`: committed by the
//! controller leader, forwarded to it from a follower, so any node answers; every replica then deletes or opens
//! its logs). A cluster places new partitions round-robin with the topic's replication factor, or on a manual
//! assignment (one broker id list per new partition). And the one mapping of a topic-administration failure to
//! a Kafka code with its message. DeleteTopics v6 names each topic by name or by id (KIP-516), never both.

use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use rill_storage::StorageError;
use uuid::Uuid;

use super::error::error_code;
use super::mutation_quota::MutationQuota;
use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::error::BrokerError;
use crate::topic_id::TopicId;

/// The version from which DeleteTopics names each topic by name or by id.
const BY_ID_VERSION: i16 = 6;

/// The first versions refused past the controller mutation quota (KIP-599's strict mode).
const STRICT_QUOTA_DELETE_VERSION: i16 = 5;
const STRICT_QUOTA_CREATE_PARTITIONS_VERSION: i16 = 3;

pub async fn delete(
    kafka: &KafkaContext,
    request: DeleteTopicsRequest,
    version: i16,
    caller: &super::dispatch::Caller,
) -> DeleteTopicsResponse {
    let principal = &caller.principal;
    let mut mutations = MutationQuota::of(kafka, principal, &caller.client_id, version >= STRICT_QUOTA_DELETE_VERSION);
    let asked: Vec<(Option<TopicName>, Uuid)> = match version >= BY_ID_VERSION {
        true => request.topics.into_iter().map(|topic| (topic.name, topic.topic_id)).collect(),
        false => request.topic_names.into_iter().map(|name| (Some(name), Uuid::nil())).collect(),
    };
    let mut responses = Vec::with_capacity(asked.len());
    for (name, topic_id) in asked {
        let answer = DeletableTopicResult::default().with_topic_id(topic_id);
        let name = name.filter(|name| !name.0.is_empty());
        let named = match (name.clone(), TopicId::from_uuid(topic_id)) {
            (Some(name), None) => Ok(name),
            (None, Some(id)) => name_of(kafka, id).map(|name| TopicName(text(name))).ok_or_else(|| {
                (ResponseError::UnknownTopicId, format!("no topic has id {topic_id}; it was deleted, or never was"))
            }),
            (Some(_), Some(_)) => {
                Err((ResponseError::InvalidRequest, "a topic is named by its name or by its id, not both".to_owned()))
            }
            (None, None) => {
                Err((ResponseError::InvalidRequest, "a topic to delete needs its name or its id".to_owned()))
            }
        };
        let deleted = match &named {
            Ok(name) => match kafka.node.authorize(principal, Operation::Delete, &Resource::topic(name.0.as_str())) {
                Ok(()) => match mutations.check() {
                    Ok(()) => {
                        let partitions = partition_count_of(kafka, name.0.as_str()).unwrap_or(0);
                        let deleted = kafka.node.delete_topic(name.0.as_str()).await.map_err(|err| admin_error(&err));
                        if deleted.is_ok() {
                            mutations.record(partitions);
                        }
                        deleted
                    }
                    Err(refused) => Err(refused),
                },
                Err(denied) => Err(admin_error(&denied)),
            },
            Err(refused) => Err(refused.clone()),
        };
        let answer = match deleted {
            Ok(()) => answer,
            Err((error, message)) => answer.with_error_code(error.code()).with_error_message(Some(text(message))),
        };
        // Answered under the name asked, or found for the id asked.
        responses.push(answer.with_name(named.ok().or(name)));
    }
    DeleteTopicsResponse::default().with_responses(responses).with_throttle_time_ms(mutations.throttle_time_ms())
}

/// The partitions topic `name` has: this node's replica's, else (on a cluster) the controller's metadata's.
fn partition_count_of(kafka: &KafkaContext, name: &str) -> Option<u32> {
    if let Ok(topic) = kafka.node.registry.topic(name) {
        return Some(topic.partition_count());
    }
    let metadata = kafka.node.replication.as_ref()?.metadata();
    metadata.topics.get(name).and_then(|placed| u32::try_from(placed.partitions.len()).ok())
}

/// The name of the topic with id `id`: this node's replica of it, else (on a cluster) the controller's metadata,
/// which knows topics without a replica here.
fn name_of(kafka: &KafkaContext, id: TopicId) -> Option<String> {
    if let Some(topic) = kafka.node.registry.topic_by_id(id) {
        return Some(topic.name.to_string());
    }
    let metadata = kafka.node.replication.as_ref()?.metadata();
    metadata.topics.iter().find(|(name, placed)| placed.topic_id(name) == id).map(|(name, _)| name.clone())
}

pub async fn create_partitions(
    kafka: &KafkaContext,
    request: CreatePartitionsRequest,
    version: i16,
    caller: &super::dispatch::Caller,
) -> CreatePartitionsResponse {
    let principal = &caller.principal;
    let is_strict = version >= STRICT_QUOTA_CREATE_PARTITIONS_VERSION;
    let mut mutations = MutationQuota::of(kafka, principal, &caller.client_id, is_strict);
    let registry = &kafka.node.registry;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let answer = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let name = topic.name.0.as_str();
        let authorized = kafka
            .node
            .authorize(principal, Operation::Alter, &Resource::topic(name))
            .map_err(|e| admin_error(&e))
            .and_then(|()| if request.validate_only { Ok(()) } else { mutations.check() });
        let before = partition_count_of(kafka, name).unwrap_or(0);
        let outcome = match u32::try_from(topic.count) {
            _ if authorized.is_err() => authorized,
            Err(_) => Err((ResponseError::InvalidPartitions, format!("{} partitions is below 1", topic.count))),
            Ok(count) => match &kafka.node.replication {
                Some(replication) => match new_partitions_assignment(&topic) {
                    Ok(assignment) => replication
                        .add_partitions(name, count, assignment.as_deref(), request.validate_only)
                        .await
                        .map(drop)
                        .map_err(|e| admin_error(&e)),
                    Err(refusal) => Err(refusal),
                },
                None if request.validate_only => {
                    registry.validate_add_partitions(name, count).map_err(|e| admin_error(&e))
                }
                None => registry.add_partitions(name, count).await.map(drop).map_err(|e| admin_error(&e)),
            },
        };
        if outcome.is_ok() && !request.validate_only {
            mutations.record(u32::try_from(topic.count).unwrap_or(0).saturating_sub(before));
        }
        results.push(match outcome {
            Ok(()) => answer,
            Err((error, message)) => answer.with_error_code(error.code()).with_error_message(Some(text(message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results).with_throttle_time_ms(mutations.throttle_time_ms())
}

/// A CreatePartitions topic's manual assignment (broker ids per new partition); `None` without one (null).
fn new_partitions_assignment(topic: &CreatePartitionsTopic) -> Result<Option<Vec<Vec<u64>>>, (ResponseError, String)> {
    // Only null asks for automatic placement. An empty list is a manual assignment of no partitions, which the
    // count check refuses (INVALID_REPLICA_ASSIGNMENT) for any increase, as Kafka's controller does
    // (`ReplicationControlManager.createPartitions` tests `assignments() != null`, not emptiness).
    let Some(assignments) = topic.assignments.as_ref() else { return Ok(None) };
    let to_ids = |listed: &CreatePartitionsAssignment| -> Option<Vec<u64>> {
        listed.broker_ids.iter().map(|id| u64::try_from(id.0).ok()).collect()
    };
    assignments.iter().map(to_ids).collect::<Option<Vec<_>>>().map(Some).ok_or_else(|| {
        (
            ResponseError::InvalidReplicaAssignment,
            "the assignment names a negative broker id: node ids are 1 or more".into(),
        )
    })
}

/// Kafka's code for a failed topic create, delete or add-partitions, with rill's message (which says what
/// was wrong and what is allowed).
pub fn admin_error(err: &BrokerError) -> (ResponseError, String) {
    let error = match err {
        BrokerError::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        BrokerError::ReservedTopicName { .. } | BrokerError::Storage(StorageError::InvalidTopicName { .. }) => {
            ResponseError::InvalidTopicException
        }
        BrokerError::InvalidPartitionCount { .. } => ResponseError::InvalidPartitions,
        // `cluster/placement.rs`'s refusals, which name the alive nodes or the rule a manual assignment broke.
        BrokerError::InvalidArgument { field: "replication_factor", .. } => ResponseError::InvalidReplicationFactor,
        BrokerError::InvalidArgument { field: "replica_assignment", .. } => ResponseError::InvalidReplicaAssignment,
        BrokerError::InvalidArgument { .. } | BrokerError::Storage(StorageError::InvalidConfig { .. }) => {
            ResponseError::InvalidConfig
        }
        BrokerError::TooManyTopics { .. } | BrokerError::TooManyOpenFiles { .. } => ResponseError::PolicyViolation,
        other => {
            return (
                ResponseError::try_from_code(error_code(other)).unwrap_or(ResponseError::UnknownServerError),
                other.to_string(),
            )
        }
    };
    (error, err.to_string())
}
