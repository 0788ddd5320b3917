//! Kafka's transactional APIs on the transaction coordinator (`crate::transactions`): AddPartitionsToTxn (v0–3),
//! AddOffsetsToTxn (v0–3), TxnOffsetCommit (v0–3) and EndTxn (v0–3); InitProducerId with a transactional id is in
//! `init_producer_id.rs`. On a cluster the coordinator is the controller leader (FindCoordinator names it); another
//! node answers NOT_COORDINATOR, and a client looks the coordinator up again. TxnOffsetCommit goes to the group's
//! coordinator, which checks the group and forwards the offsets to the transaction coordinator.
//!
//! Authorization as Kafka's: WRITE on the transactional id (DESCRIBE for FindCoordinator), WRITE on each topic a
//! transaction adds, READ on a group whose offsets it commits.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::group_errors::classic_code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::error::BrokerError;
use crate::groups::TopicPartition;
use crate::offsets::MAX_METADATA_BYTES;
use crate::transactions::{PendingOffset, TransactionCoordinator};

/// The first versions whose clients know PRODUCER_FENCED (KIP-588); older ones are told INVALID_PRODUCER_EPOCH.
const FENCED_SINCE_ADD_PARTITIONS: i16 = 2;
const FENCED_SINCE_ADD_OFFSETS: i16 = 2;
const FENCED_SINCE_END: i16 = 2;
const FENCED_SINCE_TXN_OFFSET_COMMIT: i16 = 3;
pub const FENCED_SINCE_INIT_PRODUCER_ID: i16 = 4;

/// Kafka's code for a refusal on the way to or from the coordinator.
pub fn code_of(err: &BrokerError, is_fenced_known: bool) -> i16 {
    match err {
        BrokerError::Transaction(err) => err.kafka_code(is_fenced_known),
        other => error_code(other),
    }
}

/// The coordinator, when the principal may `operation` on `transactional_id`; else Kafka's code.
pub fn coordinator<'a>(
    kafka: &'a KafkaContext,
    principal: &Principal,
    operation: Operation,
    transactional_id: &str,
) -> Result<&'a TransactionCoordinator, i16> {
    kafka.authorize(principal, operation, &Resource::transactional_id(transactional_id))?;
    Ok(&kafka.node.transactions)
}

pub async fn add_partitions(
    kafka: &KafkaContext,
    request: AddPartitionsToTxnRequest,
    version: i16,
    principal: &Principal,
) -> AddPartitionsToTxnResponse {
    let transactional_id = request.v3_and_below_transactional_id.0.to_string();
    let mut codes: Vec<(TopicName, Vec<(i32, i16)>)> = Vec::new();
    let mut wanted = Vec::new();
    let coordinator = coordinator(kafka, principal, Operation::Write, &transactional_id);
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.as_str();
        let refusal = coordinator
            .as_ref()
            .err()
            .copied()
            .or_else(|| kafka.authorize(principal, Operation::Write, &Resource::topic(name)).err());
        let partitions = topic
            .partitions
            .iter()
            .map(|&index| {
                let code = refusal.unwrap_or_else(|| match u32::try_from(index) {
                    Ok(partition) if kafka.node.check_partition_exists(name, partition).is_ok() => {
                        wanted.push((name.to_string(), partition));
                        0
                    }
                    _ => ResponseError::UnknownTopicOrPartition.code(),
                });
                (index, code)
            })
            .collect();
        codes.push((topic.name.clone(), partitions));
    }
    // Kafka adds none when any is refused: the others are OPERATION_NOT_ATTEMPTED.
    let any_refused = codes.iter().flat_map(|(_, p)| p).any(|(_, code)| *code != 0);
    let outcome = match (coordinator, any_refused) {
        (Ok(coordinator), false) => {
            let added = coordinator
                .add_partitions(
                    &transactional_id,
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                    &wanted,
                )
                .await;
            added.err().map(|err| {
                tracing::debug!(transactional_id, error = %err, "AddPartitionsToTxn refused");
                code_of(&err, version >= FENCED_SINCE_ADD_PARTITIONS)
            })
        }
        _ => None,
    };
    let results = codes
        .into_iter()
        .map(|(name, partitions)| {
            let results = partitions
                .into_iter()
                .map(|(index, code)| {
                    let code = match (outcome, any_refused) {
                        (Some(code), _) => code,
                        (None, true) if code == 0 => ResponseError::OperationNotAttempted.code(),
                        _ => code,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(index)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(name).with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

pub async fn add_offsets(
    kafka: &KafkaContext,
    request: AddOffsetsToTxnRequest,
    version: i16,
    principal: &Principal,
) -> AddOffsetsToTxnResponse {
    let transactional_id = request.transactional_id.0.as_str();
    let group = request.group_id.0.as_str();
    let outcome = async {
        let coordinator = coordinator(kafka, principal, Operation::Write, transactional_id)?;
        kafka.authorize(principal, Operation::Read, &Resource::group(group))?;
        crate::groups::check_group_id(group).map_err(|err| error_code(&err))?;
        coordinator.add_group(transactional_id, request.producer_id.0, request.producer_epoch, group).await.map_err(
            |err| {
                tracing::debug!(transactional_id, group, error = %err, "AddOffsetsToTxn refused");
                code_of(&err, version >= FENCED_SINCE_ADD_OFFSETS)
            },
        )
    }
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(outcome.err().unwrap_or(0))
}

pub async fn end(kafka: &KafkaContext, request: EndTxnRequest, version: i16, principal: &Principal) -> EndTxnResponse {
    let transactional_id = request.transactional_id.0.as_str();
    let outcome = async {
        let coordinator = coordinator(kafka, principal, Operation::Write, transactional_id)?;
        coordinator
            .end(&kafka.node, transactional_id, request.producer_id.0, request.producer_epoch, request.committed)
            .await
            .map_err(|err| {
                tracing::debug!(transactional_id, commit = request.committed, error = %err, "EndTxn refused");
                code_of(&err, version >= FENCED_SINCE_END)
            })
    }
    .await;
    EndTxnResponse::default()
        .with_error_code(outcome.err().unwrap_or(0))
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}

pub async fn commit_offsets(
    kafka: &KafkaContext,
    request: TxnOffsetCommitRequest,
    version: i16,
    principal: &Principal,
) -> TxnOffsetCommitResponse {
    let transactional_id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let refusal = coordinator(kafka, principal, Operation::Write, &transactional_id)
        .err()
        .or_else(|| kafka.authorize(principal, Operation::Read, &Resource::group(&group)).err())
        .or_else(|| crate::groups::check_group_id(&group).err().map(|err| error_code(&err)));
    let mut codes: Vec<(TopicName, Vec<(i32, i16)>)> = Vec::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let topic_refusal =
            refusal.or_else(|| kafka.authorize(principal, Operation::Read, &Resource::topic(name)).err());
        let partitions = topic
            .partitions
            .iter()
            .map(|asked| {
                let metadata = asked.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
                let code = topic_refusal.unwrap_or_else(|| match u32::try_from(asked.partition_index) {
                    Ok(partition) if kafka.node.check_partition_exists(name, partition).is_ok() => {
                        if metadata.len() > MAX_METADATA_BYTES {
                            ResponseError::OffsetMetadataTooLarge.code()
                        } else if asked.committed_offset < 0 {
                            ResponseError::InvalidRequest.code()
                        } else {
                            offsets.push(PendingOffset {
                                group: group.clone(),
                                topic: name.to_string(),
                                partition,
                                offset: asked.committed_offset,
                                metadata,
                            });
                            0
                        }
                    }
                    _ => ResponseError::UnknownTopicOrPartition.code(),
                });
                (asked.partition_index, code)
            })
            .collect();
        codes.push((topic.name.clone(), partitions));
    }
    let mut shared = None;
    if !offsets.is_empty() {
        // v3 (KIP-447): a member of a group commits with its generation, so a zombie consumer's offsets are refused.
        let member = request.member_id.to_string();
        let partitions: Vec<TopicPartition> =
            offsets.iter().map(|o| TopicPartition::new(o.topic.clone(), o.partition)).collect();
        let instance = request.group_instance_id.as_ref().map(|id| id.to_string());
        let checked = match member.is_empty() {
            true => Ok(()),
            false => kafka.node.groups.check_kafka_commit(
                &group,
                &member,
                instance.as_deref(),
                request.generation_id,
                &partitions,
            ),
        };
        shared = match checked {
            Err(refusal) => Some(classic_code(&refusal)),
            Ok(()) => kafka
                .node
                .transactions
                .commit_offsets(&kafka.node, &transactional_id, request.producer_id.0, request.producer_epoch, offsets)
                .await
                .err()
                .map(|err| {
                    tracing::debug!(transactional_id, group, error = %err, "TxnOffsetCommit refused");
                    code_of(&err, version >= FENCED_SINCE_TXN_OFFSET_COMMIT)
                }),
        };
    }
    let topics = codes
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    let code = if code == 0 { shared.unwrap_or(0) } else { code };
                    TxnOffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
