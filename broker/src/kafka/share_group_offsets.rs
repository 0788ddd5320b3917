//! AlterShareGroupOffsets and DeleteShareGroupOffsets (v0): moving a share group's start offsets, or forgetting
//! its state in whole topics, as `kafka-share-groups.sh --reset-offsets` and `--delete-offsets` do. The group must
//! have no members (NON_EMPTY_GROUP otherwise); a group id of a consumer group is GROUP_ID_NOT_FOUND. Altering a
//! group that has never run starts it where asked, which is how a group is set to read a topic from its start
//! before its first member joins. READ on the group and on each topic, as Kafka asks. On a cluster the group's
//! coordinator answers (NOT_COORDINATOR elsewhere), clamping to the bounds of its own replica of each partition
//! (as `rill group reset-offsets` does), and tells every node to drop the windows it changed.

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::consumer_group_heartbeat::TopicIds;
use super::error::error_code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::groups::TopicPartition;
use crate::share_groups::ShareError;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// Why the whole request is refused, if it is: the group's id, its authorization, its kind, its members.
fn refusal(kafka: &KafkaContext, principal: &Principal, group: &str) -> Option<(i16, String)> {
    if let Err(err) = crate::groups::check_group_id(group) {
        return Some((ResponseError::InvalidGroupId.code(), err.to_string()));
    }
    if let Err(code) = kafka.authorize(principal, Operation::Read, &Resource::group(group)) {
        return Some((code, format!("not authorized to READ group {group}")));
    }
    let node = &kafka.node;
    if let Err(err) = node.offsets.check_coordinator(group) {
        return Some((error_code(&err), err.to_string()));
    }
    if node.groups.knows(group)
        || node.groups.classic_snapshot(group).is_some()
        || !node.offsets.for_group(group).is_empty()
    {
        return Some((
            ResponseError::GroupIdNotFound.code(),
            format!("group {group} is a consumer group, not a share group"),
        ));
    }
    let members = node.shares.describe(group, Instant::now()).map_or(0, |view| view.members.len());
    (members > 0).then(|| {
        let err = ShareError::NotEmpty { group: group.to_owned(), members };
        (ResponseError::NonEmptyGroup.code(), err.to_string())
    })
}

pub async fn alter(
    kafka: &KafkaContext,
    request: AlterShareGroupOffsetsRequest,
    principal: &Principal,
) -> AlterShareGroupOffsetsResponse {
    let group = request.group_id.0.to_string();
    if let Some((code, message)) = refusal(kafka, principal, &group) {
        return AlterShareGroupOffsetsResponse::default().with_error_code(code).with_error_message(Some(text(message)));
    }
    let node = &kafka.node;
    let ids = TopicIds::now(kafka);
    let mut targets = Vec::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic_name.0.as_str();
        let authorized = kafka.authorize(principal, Operation::Read, &Resource::topic(name));
        let partitions = topic
            .partitions
            .iter()
            .map(|asked| {
                let answer =
                    AlterShareGroupOffsetsResponsePartition::default().with_partition_index(asked.partition_index);
                let refused = |code: i16, message: String| {
                    answer.clone().with_error_code(code).with_error_message(Some(text(message)))
                };
                if let Err(code) = authorized {
                    return refused(code, format!("not authorized to READ topic {name}"));
                }
                let bounds = u32::try_from(asked.partition_index).ok().and_then(|index| {
                    let partition = node.registry.partition(name, index).ok()?;
                    Some((index, partition.log().log_start_offset(), partition.log().high_watermark()))
                });
                let Some((index, log_start, high_watermark)) = bounds else {
                    let message = format!("partition {} of {name} does not exist", asked.partition_index);
                    return refused(ResponseError::UnknownTopicOrPartition.code(), message);
                };
                if asked.start_offset < 0 {
                    let message = format!("start offset {} is negative: give an offset of the log", asked.start_offset);
                    return refused(ResponseError::InvalidRequest.code(), message);
                }
                // Clamped into the log, as `rill group reset-offsets` clamps.
                targets.push((TopicPartition::new(name, index), asked.start_offset.clamp(log_start, high_watermark)));
                answer
            })
            .collect();
        topics.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic.topic_name.clone())
                .with_topic_id(ids.id_of(name).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    let stored = match node.shares.reset(&group, &targets, node.as_ref(), Instant::now()) {
        Ok(to_store) => {
            node.offsets.save_share_states(&group, to_store).await.map_err(|err| (error_code(&err), err.to_string()))
        }
        Err(err) => Err((ResponseError::NonEmptyGroup.code(), err.to_string())),
    };
    if let Err((code, message)) = stored {
        return AlterShareGroupOffsetsResponse::default().with_error_code(code).with_error_message(Some(text(message)));
    }
    let altered = targets.iter().map(|(partition, _)| partition.topic.clone()).collect();
    crate::share_groups::remote::forget_everywhere(node, &group, Some(altered)).await;
    tracing::info!(%group, partitions = targets.len(), "altered a share group's start offsets");
    AlterShareGroupOffsetsResponse::default().with_responses(topics)
}

pub async fn delete(
    kafka: &KafkaContext,
    request: DeleteShareGroupOffsetsRequest,
    principal: &Principal,
) -> DeleteShareGroupOffsetsResponse {
    let group = request.group_id.0.to_string();
    if let Some((code, message)) = refusal(kafka, principal, &group) {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)));
    }
    let node = &kafka.node;
    let ids = TopicIds::now(kafka);
    let mut forgotten = BTreeSet::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic_name.0.to_string();
        let answer = DeleteShareGroupOffsetsResponseTopic::default()
            .with_topic_name(topic.topic_name.clone())
            .with_topic_id(ids.id_of(&name).unwrap_or_default());
        match kafka.authorize(principal, Operation::Read, &Resource::topic(&name)) {
            Err(code) => topics.push(
                answer
                    .with_error_code(code)
                    .with_error_message(Some(text(format!("not authorized to READ topic {name}")))),
            ),
            Ok(()) => {
                forgotten.insert(name);
                topics.push(answer);
            }
        }
    }
    if let Err(err) = node.shares.forget_topics_of(&group, &forgotten, Instant::now()) {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(ResponseError::NonEmptyGroup.code())
            .with_error_message(Some(text(err.to_string())));
    }
    let gone = forgotten.clone();
    let stored = node.offsets.forget_share_states(&group, move |key| forgotten.contains(&key.topic)).await;
    if let Err(err) = stored {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(error_code(&err))
            .with_error_message(Some(text(err.to_string())));
    }
    crate::share_groups::remote::forget_everywhere(node, &group, Some(gone)).await;
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
