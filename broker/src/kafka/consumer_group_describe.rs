//! ConsumerGroupDescribe (v0–v1): KIP-848's describe, which Kafka's admin clients try first. It shows the
//! broker-assigned groups (KIP-848 and rill gRPC members, `groups::consumer::describe`); for a classic group, or
//! one with only committed offsets, it answers GROUP_ID_NOT_FOUND as Kafka does, and clients describe that group
//! again with DescribeGroups (`groups_admin.rs`). DESCRIBE on each group, as in Kafka (else
//! GROUP_AUTHORIZATION_FAILED for it, saying what was refused to whom).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::consumer_group_heartbeat::TopicIds;
use super::group_errors::group_code;
use super::KafkaContext;
use crate::groups::{check_group_id, TopicPartition};

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// Kafka's member types (v1): a KIP-848 consumer, or one this broker cannot name in Kafka's terms.
const MEMBER_TYPE_CONSUMER: i8 = 1;
const MEMBER_TYPE_UNKNOWN: i8 = -1;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub fn answer(
    kafka: &KafkaContext,
    request: &ConsumerGroupDescribeRequest,
    principal: &crate::auth::Principal,
) -> ConsumerGroupDescribeResponse {
    use crate::auth::acl::{Operation, Resource};
    let ids = TopicIds::now(kafka);
    let groups = request
        .group_ids
        .iter()
        .map(|group| match kafka.node.authorize(principal, Operation::Describe, &Resource::group(group.0.as_str())) {
            Err(err) => DescribedGroup::default()
                .with_group_id(group.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED)
                .with_error_code(super::error::error_code(&err))
                .with_error_message(Some(text(err.to_string())))
                .with_group_state(text("Dead")),
            Ok(()) => described(kafka, &ids, group),
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn described(kafka: &KafkaContext, ids: &TopicIds, group_id: &GroupId) -> DescribedGroup {
    let group = group_id.0.as_str();
    let answer =
        DescribedGroup::default().with_group_id(group_id.clone()).with_authorized_operations(OPERATIONS_NOT_REQUESTED);
    let refused = |answer: DescribedGroup, code: i16, message: String| {
        answer.with_error_code(code).with_error_message(Some(text(message))).with_group_state(text("Dead"))
    };
    if let Err(err) = check_group_id(group) {
        return refused(answer, group_code(&err), err.to_string());
    }
    if let Err(err) = kafka.node.offsets.check_coordinator(group) {
        return refused(answer, group_code(&err), err.to_string());
    }
    let Some(description) = kafka.node.groups.consumer_group_description(group) else {
        let message =
            format!("group {group:?} is not a consumer-protocol group on this node: describe it with DescribeGroups");
        return refused(answer, ResponseError::GroupIdNotFound.code(), message);
    };
    let members = description
        .members
        .into_iter()
        .map(|member| {
            Member::default()
                .with_member_id(text(member.member_id))
                .with_member_epoch(member.member_epoch)
                .with_instance_id(member.instance_id.map(text))
                .with_client_id(text(member.client_id))
                .with_client_host(text(member.client_host))
                .with_subscribed_topic_names(member.subscribed_topics.into_iter().map(|t| TopicName(text(t))).collect())
                .with_subscribed_topic_regex(member.subscribed_regex.map(text))
                .with_assignment(assignment(ids, &member.assignment))
                .with_target_assignment(assignment(ids, &member.target))
                .with_member_type(if member.kip848 { MEMBER_TYPE_CONSUMER } else { MEMBER_TYPE_UNKNOWN })
        })
        .collect();
    answer
        .with_group_state(text(description.state))
        .with_group_epoch(description.group_epoch)
        .with_assignment_epoch(description.group_epoch)
        .with_assignor_name(text(description.assignor))
        .with_members(members)
}

/// Partitions per topic, each with its id and name; a topic deleted since the assignment was computed keeps its
/// name and gets the nil id.
fn assignment(ids: &TopicIds, partitions: &BTreeSet<TopicPartition>) -> Assignment {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition as i32);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            TopicPartitions::default()
                .with_topic_id(ids.id_of(topic).unwrap_or_default())
                .with_topic_name(TopicName(text(topic)))
                .with_partitions(partitions)
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}
