//! AlterPartitionReassignments (v0–v1, KIP-455) and ListPartitionReassignments (v0), through the reassignment
//! `rill topic reassign` runs (`cluster/reassignment.rs`).
//!
//! Alter, on the controller leader, checks each partition's new replica list with the CLI's rules and records
//! the moves that pass in the replicated metadata, then answers; the copying goes on after (as in Kafka), and
//! whichever node leads the controller quorum completes each move once its new replicas are in sync. A refused
//! list is INVALID_REPLICA_ASSIGNMENT with the rule it breaks, a replica count change with
//! `allow_replication_factor_change` false (v1) INVALID_REPLICATION_FACTOR, a partition moving already
//! REASSIGNMENT_IN_PROGRESS (cancel it first). A null list cancels the partition's move: its replicas go back
//! to the original list and the replicas being added leave; NO_REASSIGNMENT_IN_PROGRESS when it is not moving,
//! REASSIGNMENT_IN_PROGRESS saying why when none of its original replicas is in sync (the move must finish).
//! While a node is added or removed, or the replicas rebalanced, the moves asked are REASSIGNMENT_IN_PROGRESS.
//!
//! List, on any node of a cluster, shows the moves its replica of the metadata records, each with its replicas
//! (the target's, then those leaving), those being added and those being removed. ALTER on the cluster for
//! Alter and DESCRIBE for List, as Kafka asks.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::error::{error_code, Outcome};
use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::cluster::reassignment::{CancelFailed, StartRefused};
use crate::cluster::reassignment_state::CancelRefused;
use crate::cluster::{Controller, NodeId};
use crate::error::BrokerError;

pub async fn alter(
    kafka: &KafkaContext,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
    principal: &Principal,
) -> AlterPartitionReassignmentsResponse {
    let controller = match kafka
        .node
        .authorize(principal, Operation::Alter, &Resource::cluster())
        .and_then(|()| kafka.leading_controller())
    {
        Ok(controller) => controller,
        Err(err) => {
            return AlterPartitionReassignmentsResponse::default()
                .with_error_code(error_code(&err))
                .with_error_message(Some(text(err.to_string())))
        }
    };
    let metadata = controller.metadata();
    let may_change_replication_factor = version < 1 || request.allow_replication_factor_change;
    let mut outcomes: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    let mut targets: Vec<(String, u32, Vec<NodeId>)> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        for asked in topic.partitions {
            let key = (name.clone(), asked.partition_index);
            let placed = u32::try_from(asked.partition_index).ok().and_then(|p| metadata.partition(&name, p));
            let (Some(placed), Ok(partition)) = (placed, u32::try_from(asked.partition_index)) else {
                let message = match metadata.topics.get(&name) {
                    None => format!("no topic {name:?}"),
                    Some(t) => format!("topic {name:?} has {} partition(s), not {}", t.partitions.len(), key.1),
                };
                outcomes.insert(key, (ResponseError::UnknownTopicOrPartition.code(), Some(message)));
                continue;
            };
            let outcome = match asked.replicas {
                None => Some(cancel(controller, &name, partition).await),
                Some(replicas) => match node_ids(&replicas) {
                    Err(message) => Some((ResponseError::InvalidReplicaAssignment.code(), Some(message))),
                    Ok(replicas) if !may_change_replication_factor && replicas.len() != placed.replicas.len() => {
                        Some((
                            ResponseError::InvalidReplicationFactor.code(),
                            Some(format!(
                                "{} replica(s) asked for partition {partition} of topic {name:?}, which has {}, and \
                                 the request does not allow a replication factor change",
                                replicas.len(),
                                placed.replicas.len()
                            )),
                        ))
                    }
                    Ok(replicas) => {
                        targets.push((name.clone(), partition, replicas));
                        None
                    }
                },
            };
            if let Some(outcome) = outcome {
                outcomes.insert(key, outcome);
            }
        }
    }
    if !targets.is_empty() {
        let keys: Vec<(String, i32)> = targets.iter().map(|(t, p, _)| (t.clone(), *p as i32)).collect();
        match controller.start_reassignments(targets).await {
            Ok(started) => {
                for (key, result) in keys.into_iter().zip(started) {
                    outcomes.insert(key, started_outcome(result));
                }
            }
            Err(busy) => {
                for key in keys {
                    outcomes.insert(key, (ResponseError::ReassignmentInProgress.code(), Some(busy.to_string())));
                }
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition), (code, message)) in outcomes {
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code)
                .with_error_message(message.map(text)),
        );
    }
    let responses = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReassignableTopicResponse::default().with_name(TopicName(text(topic))).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(may_change_replication_factor)
        .with_error_message(None)
        .with_responses(responses)
}

/// Kafka's broker ids as node ids; a negative id cannot name a node.
fn node_ids(replicas: &[BrokerId]) -> Result<Vec<NodeId>, String> {
    replicas
        .iter()
        .map(|id| NodeId::try_from(id.0).map_err(|_| format!("replica {} is not a node id (ids are 0 or more)", id.0)))
        .collect()
}

fn started_outcome(result: Result<(), StartRefused>) -> Outcome {
    match result {
        Ok(()) => (0, None),
        Err(StartRefused::Failed(err)) => (error_code(&err), Some(err.to_string())),
        Err(StartRefused::Invalid(refusal)) => {
            (ResponseError::InvalidReplicaAssignment.code(), Some(refusal.to_string()))
        }
        Err(StartRefused::InProgress(message)) => (ResponseError::ReassignmentInProgress.code(), Some(message)),
    }
}

/// A null replica list: the partition's move is cancelled, through the CLI's code.
async fn cancel(controller: &Controller, topic: &str, partition: u32) -> Outcome {
    match controller.cancel_reassignment(topic, partition).await {
        Ok(_) => (0, None),
        Err(CancelFailed::Refused(refusal)) => {
            let code = match refusal {
                CancelRefused::NoSuchPartition { .. } => ResponseError::UnknownTopicOrPartition,
                CancelRefused::NotMoving { .. } => ResponseError::NoReassignmentInProgress,
                CancelRefused::OriginalOutOfSync { .. } => ResponseError::ReassignmentInProgress,
            };
            (code.code(), Some(refusal.to_string()))
        }
        Err(CancelFailed::Controller(err)) => (error_code(&err), Some(err.to_string())),
    }
}

pub fn list(
    kafka: &KafkaContext,
    request: &ListPartitionReassignmentsRequest,
    principal: &Principal,
) -> ListPartitionReassignmentsResponse {
    let refused = |err: BrokerError| {
        ListPartitionReassignmentsResponse::default()
            .with_error_code(error_code(&err))
            .with_error_message(Some(text(err.to_string())))
    };
    if let Err(err) = kafka.node.authorize(principal, Operation::Describe, &Resource::cluster()) {
        return refused(err);
    }
    // A single node moves nothing: its list is empty, which is the truth. In a cluster every node's replica of
    // the metadata records the moves under way.
    let metadata = kafka.controller.as_ref().map(|controller| controller.metadata());
    let is_asked = |topic: &str, partition: u32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.iter().any(|p| *p as i64 == partition as i64)),
    };
    let broker = |ids: &[NodeId]| ids.iter().map(|id| BrokerId(i32::try_from(*id).unwrap_or(-1))).collect();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (topic, partition, placed) in metadata.iter().flat_map(|m| m.reassignments()) {
        let Some((replicas, adding, removing)) = placed.reassignment_view() else { continue };
        if !is_asked(topic, partition) {
            continue;
        }
        by_topic.entry(topic.to_owned()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition as i32)
                .with_replicas(broker(&replicas))
                .with_adding_replicas(broker(adding))
                .with_removing_replicas(broker(removing)),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default().with_name(TopicName(text(name))).with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_error_message(None).with_topics(topics)
}
