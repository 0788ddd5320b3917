//! OffsetCommit (v2–v9): a Kafka consumer's commits go to the same offset store as rill's own (so they show in
//! `rill group describe`), checked as they land against the group: a member of a Kafka group commits with its
//! current generation, a KIP-848 member with an epoch it was sent and only partitions it owns, a consumer outside
//! any group with generation -1 (`GroupCoordinator::check_kafka_commit`).
//! v9 is v8 for clients of the KIP-848 protocol: an epoch behind the member's is STALE_MEMBER_EPOCH there, which
//! they retry with their current epoch, and one ahead of it FENCED_MEMBER_EPOCH (rejoin). Below v9 either is
//! ILLEGAL_GENERATION, the only code those versions know. (Kafka refuses a KIP-848 member's commit below v9;
//! rill takes it, as it did before v9 was served.)
//! Each partition gets its own code: one that does not exist or whose metadata is too long is refused alone;
//! a refusal by the group applies to every partition of the request.

use std::sync::{Arc, Mutex, PoisonError};

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;
use tracing::Instrument;

use super::error::error_code;
use super::group_errors::{classic_code, group_code};
use super::KafkaContext;
use crate::error::BrokerError;
use crate::groups::classic::ClassicError;
use crate::groups::{check_group_id, TopicPartition};
use crate::node::now_ms;
use crate::offsets::{OffsetKey, MAX_METADATA_BYTES};
use crate::request_trace;

/// The first version (Kafka 3.7) whose clients know KIP-848's member-epoch codes.
const COMMIT_VERSION_FOR_KIP_848: i16 = 9;

/// Commits under a `commit` span (`request_trace`) naming every partition asked for.
pub async fn answer(
    kafka: &KafkaContext,
    request: OffsetCommitRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> OffsetCommitResponse {
    let span = commit_span(&request);
    let response = commit(kafka, request, version, principal).instrument(span.clone()).await;
    let failed = response.topics.iter().flat_map(|t| &t.partitions).find(|p| p.error_code != 0);
    if let Some(failed) = failed {
        let outcome: Result<(), String> = Err(format!("kafka error code {}", failed.error_code));
        request_trace::record_outcome(&span, &outcome);
    }
    response
}

fn commit_span(request: &OffsetCommitRequest) -> tracing::Span {
    let offsets = request.topics.iter().flat_map(|topic| {
        topic.partitions.iter().map(move |asked| {
            (topic.name.0.as_str(), u32::try_from(asked.partition_index).unwrap_or(u32::MAX), asked.committed_offset)
        })
    });
    let count = request.topics.iter().map(|topic| topic.partitions.len()).sum();
    request_trace::commit_span(request.group_id.0.as_str(), count, offsets)
}

async fn commit(
    kafka: &KafkaContext,
    request: OffsetCommitRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> OffsetCommitResponse {
    use crate::auth::acl::{Operation, Resource};
    let group = request.group_id.0.to_string();
    // Kafka: READ on the group (every partition answers GROUP_AUTHORIZATION_FAILED), then READ on each topic.
    let group_refusal = check_group_id(&group)
        .err()
        .map(|err| group_code(&err))
        .or_else(|| kafka.authorize(principal, Operation::Read, &Resource::group(&group)).err());
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut commits = Vec::new();
    // (topic, partition) positions in `topics` whose code is the store's answer.
    let mut waiting = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let topic_refusal = group_refusal
            .or_else(|| kafka.authorize(principal, Operation::Read, &Resource::topic(topic.name.0.as_str())).err());
        for asked in topic.partitions {
            let metadata = asked.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
            let refusal = topic_refusal.or_else(|| {
                let index = u32::try_from(asked.partition_index).ok()?;
                // On a cluster, against the metadata: the coordinator need not hold a replica of the partition.
                if let Err(err) = kafka.node.check_partition_exists(topic.name.0.as_str(), index) {
                    return Some(error_code(&err));
                }
                if metadata.len() > MAX_METADATA_BYTES {
                    return Some(ResponseError::OffsetMetadataTooLarge.code());
                }
                if asked.committed_offset < 0 {
                    return Some(ResponseError::InvalidRequest.code());
                }
                let key = OffsetKey { group: group.clone(), topic: topic.name.0.to_string(), partition: index };
                commits.push((key, asked.committed_offset, metadata));
                waiting.push((topics.len(), partitions.len()));
                Some(0)
            });
            let code = refusal.unwrap_or(ResponseError::UnknownTopicOrPartition.code());
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(asked.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions));
    }
    if !commits.is_empty() {
        let groups = Arc::clone(&kafka.node.groups);
        let member = request.member_id.to_string();
        let instance = request.group_instance_id.as_ref().map(|id| id.to_string());
        let generation = request.generation_id_or_member_epoch;
        let partitions: Vec<TopicPartition> =
            commits.iter().map(|(key, _, _)| TopicPartition::new(key.topic.clone(), key.partition)).collect();
        // The store's check speaks `BrokerError`; the group's own refusal, with its Kafka code, is kept here.
        let refused_by_group = Arc::new(Mutex::new(None));
        let refusal = Arc::clone(&refused_by_group);
        let check = move || {
            groups.check_kafka_commit(&group, &member, instance.as_deref(), generation, &partitions).map_err(|err| {
                let unknown = BrokerError::UnknownMember { group: group.clone(), member: member.clone() };
                *refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
                unknown
            })
        };
        let stored = kafka.node.offsets.commit_checked(commits, now_ms(), check).await;
        let refusal = refused_by_group.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(refusal) = &refusal {
            // A refused commit is the client's to handle, but it explains records read twice later: keep it.
            tracing::debug!(member = %request.member_id, epoch = generation, error = %refusal, "commit refused");
        }
        let code = match (stored, refusal) {
            (Ok(()), _) => 0,
            (Err(_), Some(ClassicError::StaleMemberEpoch { .. })) if version < COMMIT_VERSION_FOR_KIP_848 => {
                ResponseError::IllegalGeneration.code()
            }
            (Err(_), Some(refusal)) => classic_code(&refusal),
            (Err(err), None) => group_code(&err),
        };
        for (topic, partition) in waiting {
            topics[topic].partitions[partition].error_code = code;
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
