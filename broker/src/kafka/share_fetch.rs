//! ShareFetch and ShareAcknowledge (v1): a share group member's reads and acknowledgements (KIP-932), over the
//! node's share groups (`share_groups/`).
//!
//! A ShareFetch names the member's share session (epoch 0 opens it with the partitions listed, a positive epoch
//! continues it, adding and forgetting partitions, -1 closes it), carries acknowledgements of records fetched
//! before, and asks for records: the answer holds, per partition, the batches the log holds around the records
//! acquired for the member and the acquired ranges (`acquired_records`: first, last offset, delivery count); the
//! client keeps only the records those ranges name, and acknowledges the offsets it finds no record at as gaps.
//! The reading, waiting and storing are `share_groups/delivery.rs`'s; this file translates. Batches go out as
//! pieces of the response frame (`connection.rs` serves ShareFetch as it serves Fetch, `response_frame.rs`).
//!
//! A refused acknowledgement (a record not acquired by this member: released, timed out, or never delivered to
//! it) is reported in the partition's `acknowledge_error_code` as INVALID_RECORD_STATE, and the rest of the
//! request goes on. `min_bytes` is read as "one record".
//!
//! On a cluster each partition is fetched and acknowledged at its leader (NOT_LEADER_OR_FOLLOWER elsewhere, with
//! the leader and its endpoint named, `leader_hints.rs`, and the client moves it), and a share session is opened
//! only for a member the group's coordinator has.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::share_fetch_request::AcknowledgementBatch;
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    share_acknowledge_response, share_fetch_response, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::consumer_group_heartbeat::TopicIds;
use super::error::error_code;
use super::leader_hints::{is_hinted, node_endpoint, LeaderHints};
use super::share_group_heartbeat::code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::groups::TopicPartition;
use crate::share_groups::delivery::{self, AckFailure};
use crate::share_groups::{AckBatch, AckError, SessionChange, ShareError};

/// What the request says of one partition it names: its acknowledgements, and why it cannot be read, if so.
struct Named {
    partition: TopicPartition,
    acknowledgements: Vec<AckBatch>,
}

/// A partition's answer being built.
#[derive(Default)]
struct Answer {
    error: Option<(i16, String)>,
    acknowledge_error: Option<(i16, String)>,
    records: Option<Bytes>,
    acquired: Vec<AcquiredRecords>,
}

/// The request's group and member, which a share request must name.
fn member_of(group: Option<&str>, member: Option<&str>) -> Result<(String, String), String> {
    match (group.filter(|g| !g.is_empty()), member.filter(|m| !m.is_empty())) {
        (Some(group), Some(member)) => Ok((group.to_owned(), member.to_owned())),
        (None, _) => Err("group_id is missing: a share request names its share group".into()),
        (_, None) => Err("member_id is missing: a share request names the member (its ShareGroupHeartbeat id)".into()),
    }
}

/// Resolves the partitions a request names: topic ids to names, each partition authorized for READ (TOPIC_
/// AUTHORIZATION_FAILED otherwise), known (UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION) and, on a cluster, led
/// here (NOT_LEADER_OR_FOLLOWER).
fn resolve(
    kafka: &KafkaContext,
    principal: &Principal,
    ids: &TopicIds,
    topic_id: Uuid,
    index: i32,
) -> Result<TopicPartition, (i16, String)> {
    let Some(name) = ids.name_of(topic_id) else {
        return Err((ResponseError::UnknownTopicId.code(), format!("no topic has id {topic_id}")));
    };
    if let Err(code) = kafka.authorize(principal, Operation::Read, &Resource::topic(name)) {
        return Err((code, format!("not authorized to READ topic {name}")));
    }
    let partition = u32::try_from(index).map_err(|_| {
        (ResponseError::UnknownTopicOrPartition.code(), format!("partition {index} of {name} does not exist"))
    })?;
    if let Err(err) = kafka.node.check_partition_exists(name, partition) {
        return Err((error_code(&err), err.to_string()));
    }
    if let Err(err) = kafka.node.check_leader(name, partition) {
        return Err((error_code(&err), err.to_string()));
    }
    Ok(TopicPartition::new(name, partition))
}

fn ack_batches(batches: &[AcknowledgementBatch]) -> Vec<AckBatch> {
    batches
        .iter()
        .map(|batch| AckBatch {
            first: batch.first_offset,
            last: batch.last_offset,
            types: batch.acknowledge_types.clone(),
        })
        .collect()
}

/// Stores what `delivery::apply` changed (fsynced); each partition's outcome as `acknowledge_error_code`.
async fn store(
    kafka: &KafkaContext,
    group: &str,
    applied: delivery::Applied,
) -> BTreeMap<TopicPartition, Option<(i16, String)>> {
    delivery::store(&kafka.node, group, applied)
        .await
        .into_iter()
        .map(|(partition, outcome)| {
            let error = match outcome {
                Ok(()) => None,
                Err(failure @ AckFailure::Refused(AckError::NotAcquired { .. })) => {
                    Some((ResponseError::InvalidRecordState.code(), failure.to_string()))
                }
                Err(failure @ AckFailure::Refused(_)) => {
                    Some((ResponseError::InvalidRequest.code(), failure.to_string()))
                }
                Err(AckFailure::NotStored(err)) => {
                    Some((error_code(&err), AckFailure::NotStored(std::sync::Arc::clone(&err)).to_string()))
                }
            };
            (partition, error)
        })
        .collect()
}

pub async fn answer(kafka: &KafkaContext, request: ShareFetchRequest, principal: &Principal) -> ShareFetchResponse {
    let node = &kafka.node;
    // The group's own lock duration (its `share.record.lock.duration.ms`), the broker's for a request naming none.
    let settings =
        request.group_id.as_ref().map_or(*node.shares.settings(), |group| node.shares.settings_of(group.0.as_str()));
    let lock_ms = i32::try_from(settings.rules.lock_duration.as_millis()).unwrap_or(i32::MAX);
    let refused = |error: ResponseError, message: String| {
        ShareFetchResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_acquisition_lock_timeout_ms(lock_ms)
    };
    let (group, member) = match member_of(request.group_id.as_ref().map(|g| g.0.as_str()), request.member_id.as_deref())
    {
        Ok(pair) => pair,
        Err(message) => return refused(ResponseError::InvalidRequest, message),
    };
    if let Err(code) = kafka.authorize(principal, Operation::Read, &Resource::group(&group)) {
        let message = format!("not authorized to READ group {group}");
        return ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_acquisition_lock_timeout_ms(lock_ms);
    }
    let ids = TopicIds::now(kafka);
    let mut answers: BTreeMap<(Uuid, i32), Answer> = BTreeMap::new();
    let mut named = Vec::new();
    for topic in &request.topics {
        for asked in &topic.partitions {
            match resolve(kafka, principal, &ids, topic.topic_id, asked.partition_index) {
                Ok(partition) => {
                    named.push(Named { partition, acknowledgements: ack_batches(&asked.acknowledgement_batches) })
                }
                Err(error) => {
                    answers.entry((topic.topic_id, asked.partition_index)).or_default().error = Some(error);
                }
            }
        }
    }
    let forgotten: Vec<TopicPartition> = request
        .forgotten_topics_data
        .iter()
        .filter_map(|topic| ids.name_of(topic.topic_id).map(|name| (name, &topic.partitions)))
        .flat_map(|(name, partitions)| {
            partitions.iter().filter_map(move |p| Some(TopicPartition::new(name, u32::try_from(*p).ok()?)))
        })
        .collect();
    let added: Vec<TopicPartition> = named.iter().map(|n| n.partition.clone()).collect();
    let has_acknowledgements = named.iter().any(|n| !n.acknowledgements.is_empty());
    let epoch = request.share_session_epoch;
    if epoch == 0 && node.shares.is_clustered() {
        match crate::share_groups::remote::is_member(node, &group, &member).await {
            Ok(true) => {}
            Ok(false) => {
                let err = ShareError::UnknownMember { group: group.clone(), member: member.clone() };
                return refused(code(&err), err.to_string());
            }
            Err(err) => {
                let message = format!("cannot ask group {group}'s coordinator about member {member}: {err}");
                return ShareFetchResponse::default()
                    .with_error_code(error_code(&err))
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_acquisition_lock_timeout_ms(lock_ms);
            }
        }
    }
    let now = Instant::now();
    let change = SessionChange { epoch, added: &added, forgotten: &forgotten, has_acknowledgements };
    let session = match node.shares.fetch_session(&group, &member, change, now) {
        Ok(partitions) => partitions,
        Err(err) => return refused(code(&err), err.to_string()),
    };
    let acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)> = named
        .iter()
        .filter(|n| !n.acknowledgements.is_empty())
        .map(|n| (n.partition.clone(), n.acknowledgements.clone()))
        .collect();
    let applied = delivery::apply(node, &group, &member, acknowledgements);
    for n in &named {
        if let Some(id) = ids.id_of(&n.partition.topic) {
            answers.entry((id, n.partition.partition as i32)).or_default();
        }
    }
    // The acknowledgements' fsync and the fetch's reads run at once: the fetch sees what they released (it is
    // in memory already), and the answer waits for both.
    let stored = if epoch == -1 {
        node.shares.release_member(&group, &member);
        store(kafka, &group, applied).await
    } else {
        let fetched = fetch_records(kafka, &request, &group, &member, &session, &ids, &mut answers);
        tokio::join!(store(kafka, &group, applied), fetched).0
    };
    for (partition, error) in stored {
        let Some(id) = ids.id_of(&partition.topic) else { continue };
        answers.entry((id, partition.partition as i32)).or_default().acknowledge_error =
            Some(error.unwrap_or((0, String::new())));
    }
    let mut response =
        ShareFetchResponse::default().with_acquisition_lock_timeout_ms(lock_ms).with_responses(responses(answers));
    let mut hints = LeaderHints::new(kafka);
    for topic in &mut response.responses {
        let Some(name) = ids.name_of(topic.topic_id) else { continue };
        let refused =
            topic.partitions.iter_mut().filter(|p| is_hinted(p.error_code) || is_hinted(p.acknowledge_error_code));
        for partition in refused {
            if let Some((leader_id, leader_epoch)) = hints.leader_of(name, partition.partition_index) {
                partition.current_leader =
                    LeaderIdAndEpoch::default().with_leader_id(leader_id).with_leader_epoch(leader_epoch);
            }
        }
    }
    response.node_endpoints =
        hints.endpoints().into_iter().map(|b| node_endpoint!(share_fetch_response::NodeEndpoint, b)).collect();
    response
}

/// Acquires records for the member from its session's partitions, waiting for some as the request allows, into
/// `answers`.
async fn fetch_records(
    kafka: &KafkaContext,
    request: &ShareFetchRequest,
    group: &str,
    member: &str,
    session: &[TopicPartition],
    ids: &TopicIds,
    answers: &mut BTreeMap<(Uuid, i32), Answer>,
) {
    let node = &kafka.node;
    let limits = delivery::Limits::of(
        node,
        i64::from(request.max_records),
        i64::from(request.max_bytes),
        i64::from(request.max_wait_ms),
    );
    for (partition, delivered) in delivery::deliver(node, group, member, session, limits).await {
        let Some(id) = ids.id_of(&partition.topic) else { continue };
        let answer = answers.entry((id, partition.partition as i32)).or_default();
        match delivered {
            Ok(delivered) => {
                answer.records = Some(delivered.records);
                answer.acquired = delivered
                    .acquired
                    .iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first)
                            .with_last_offset(a.last)
                            .with_delivery_count(i16::try_from(a.delivery_count).unwrap_or(i16::MAX))
                    })
                    .collect();
            }
            Err(err) => answer.error = Some((error_code(&err), err.to_string())),
        }
    }
}

fn responses(answers: BTreeMap<(Uuid, i32), Answer>) -> Vec<ShareFetchableTopicResponse> {
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, index), answer) in answers {
        let (code, message) = answer.error.unwrap_or((0, String::new()));
        let (ack_code, ack_message) = answer.acknowledge_error.unwrap_or((0, String::new()));
        let data = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_error_message((code != 0).then(|| StrBytes::from_string(message)))
            .with_acknowledge_error_code(ack_code)
            .with_acknowledge_error_message((ack_code != 0).then(|| StrBytes::from_string(ack_message)))
            .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(-1).with_leader_epoch(-1))
            .with_records(Some(answer.records.unwrap_or_default()))
            .with_acquired_records(answer.acquired);
        by_topic.entry(topic_id).or_default().push(data);
    }
    by_topic
        .into_iter()
        .map(|(topic_id, partitions)| {
            ShareFetchableTopicResponse::default().with_topic_id(topic_id).with_partitions(partitions)
        })
        .collect()
}

/// ShareAcknowledge: acknowledgements alone, in the member's open session (a positive epoch, which it advances,
/// or -1, which closes the session after them and releases what the member still holds).
pub async fn acknowledge_request(
    kafka: &KafkaContext,
    request: ShareAcknowledgeRequest,
    principal: &Principal,
) -> ShareAcknowledgeResponse {
    use share_acknowledge_response::{PartitionData, ShareAcknowledgeTopicResponse};
    let node = &kafka.node;
    let refused = |code: i16, message: String| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let (group, member) = match member_of(request.group_id.as_ref().map(|g| g.0.as_str()), request.member_id.as_deref())
    {
        Ok(pair) => pair,
        Err(message) => return refused(ResponseError::InvalidRequest.code(), message),
    };
    if let Err(code) = kafka.authorize(principal, Operation::Read, &Resource::group(&group)) {
        return refused(code, format!("not authorized to READ group {group}"));
    }
    let epoch = request.share_session_epoch;
    if epoch == 0 {
        let err = ShareError::InvalidSessionEpoch { sent: 0, expected: 1 };
        return refused(code(&err).code(), format!("{err}: ShareAcknowledge needs a session a ShareFetch opened"));
    }
    let change = SessionChange { epoch, added: &[], forgotten: &[], has_acknowledgements: true };
    if let Err(err) = node.shares.fetch_session(&group, &member, change, Instant::now()) {
        return refused(code(&err).code(), err.to_string());
    }
    let ids = TopicIds::now(kafka);
    let mut outcomes: BTreeMap<(Uuid, i32), (i16, String)> = BTreeMap::new();
    let mut acknowledgements = Vec::new();
    for topic in &request.topics {
        for asked in &topic.partitions {
            match resolve(kafka, principal, &ids, topic.topic_id, asked.partition_index) {
                Ok(partition) => {
                    let batches = asked
                        .acknowledgement_batches
                        .iter()
                        .map(|b| AckBatch {
                            first: b.first_offset,
                            last: b.last_offset,
                            types: b.acknowledge_types.clone(),
                        })
                        .collect();
                    acknowledgements.push((partition, batches));
                }
                Err(error) => {
                    outcomes.insert((topic.topic_id, asked.partition_index), error);
                }
            }
        }
    }
    let applied = delivery::apply(node, &group, &member, acknowledgements);
    if epoch == -1 {
        node.shares.release_member(&group, &member);
    }
    for (partition, error) in store(kafka, &group, applied).await {
        if let Some(id) = ids.id_of(&partition.topic) {
            outcomes.insert((id, partition.partition as i32), error.unwrap_or((0, String::new())));
        }
    }
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    let mut hints = LeaderHints::new(kafka);
    for ((topic_id, index), (code, message)) in outcomes {
        let leader = ids.name_of(topic_id).filter(|_| is_hinted(code)).and_then(|name| hints.leader_of(name, index));
        let (leader_id, leader_epoch) = leader.unwrap_or((-1, -1));
        by_topic.entry(topic_id).or_default().push(
            PartitionData::default()
                .with_partition_index(index)
                .with_error_code(code)
                .with_error_message((code != 0).then(|| StrBytes::from_string(message)))
                .with_current_leader(
                    share_acknowledge_response::LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                ),
        );
    }
    let endpoints = hints.endpoints().into_iter();
    ShareAcknowledgeResponse::default()
        .with_node_endpoints(endpoints.map(|b| node_endpoint!(share_acknowledge_response::NodeEndpoint, b)).collect())
        .with_responses(
            by_topic
                .into_iter()
                .map(|(topic_id, partitions)| {
                    ShareAcknowledgeTopicResponse::default().with_topic_id(topic_id).with_partitions(partitions)
                })
                .collect(),
        )
}
