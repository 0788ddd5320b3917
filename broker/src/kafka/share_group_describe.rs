//! ShareGroupDescribe (v1) and DescribeShareGroupOffsets (v0): a share group's members and what each reads, and
//! where the group is in each partition (its share-partition start offset: every record below is done with),
//! as `kafka-share-groups.sh --describe` shows them. A group id that is no share group is GROUP_ID_NOT_FOUND. On a
//! cluster both are answered by the group's coordinator (NOT_COORDINATOR elsewhere), the offsets from what it
//! stores, fresher where it leads the partition too.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::share_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::consumer_group_heartbeat::TopicIds;
use super::error::error_code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub fn describe(
    kafka: &KafkaContext,
    request: &ShareGroupDescribeRequest,
    principal: &Principal,
) -> ShareGroupDescribeResponse {
    let ids = TopicIds::now(kafka);
    let groups = request
        .group_ids
        .iter()
        .map(|group_id| {
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::group(group_id.as_str())) {
                return described
                    .with_error_code(code)
                    .with_error_message(Some(text(format!("not authorized to DESCRIBE group {}", group_id.as_str()))));
            }
            if let Err(err) = kafka.node.offsets.check_coordinator(group_id.as_str()) {
                return described.with_error_code(error_code(&err)).with_error_message(Some(text(err.to_string())));
            }
            let Some(view) = kafka.node.shares.describe(group_id.as_str(), Instant::now()) else {
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(text(format!("group {} is not a share group", group_id.as_str()))));
            };
            let members = view
                .members
                .iter()
                .map(|member| {
                    let partitions = ids
                        .grouped(&member.assignment)
                        .into_iter()
                        .map(|(id, partitions)| {
                            let name = ids.name_of(id).unwrap_or_default().to_owned();
                            TopicPartitions::default()
                                .with_topic_id(id)
                                .with_topic_name(TopicName(text(name)))
                                .with_partitions(partitions)
                        })
                        .collect();
                    Member::default()
                        .with_member_id(text(member.member_id.clone()))
                        .with_rack_id(member.rack.clone().map(text))
                        .with_member_epoch(member.member_epoch)
                        .with_client_id(text(member.client_id.clone()))
                        .with_client_host(text(member.client_host.clone()))
                        .with_subscribed_topic_names(
                            member.subscribed_topics.iter().map(|t| TopicName(text(t.clone()))).collect(),
                        )
                        .with_assignment(Assignment::default().with_topic_partitions(partitions))
                })
                .collect::<Vec<_>>();
            let state = if members.is_empty() { "Empty" } else { "Stable" };
            described
                .with_group_state(text(state))
                .with_group_epoch(view.group_epoch)
                .with_assignment_epoch(view.assignment_epoch)
                .with_assignor_name(text("simple"))
                .with_members(members)
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

pub fn offsets(
    kafka: &KafkaContext,
    request: &DescribeShareGroupOffsetsRequest,
    principal: &Principal,
) -> DescribeShareGroupOffsetsResponse {
    let ids = TopicIds::now(kafka);
    let groups = request
        .groups
        .iter()
        .map(|asked| {
            let group_id = asked.group_id.as_str();
            let answered = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(GroupId(text(group_id)));
            if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::group(group_id)) {
                return answered
                    .with_error_code(code)
                    .with_error_message(Some(text(format!("not authorized to DESCRIBE group {group_id}"))));
            }
            if let Err(err) = kafka.node.offsets.check_coordinator(group_id) {
                return answered.with_error_code(error_code(&err)).with_error_message(Some(text(err.to_string())));
            }
            let known = kafka.node.shares.partitions(group_id, kafka.node.as_ref());
            let mut by_topic: BTreeMap<String, Vec<DescribeShareGroupOffsetsResponsePartition>> = BTreeMap::new();
            let wanted = |topic: &str, partition: u32| match &asked.topics {
                None => true,
                Some(topics) => {
                    topics.iter().any(|t| t.topic_name.as_str() == topic && t.partitions.contains(&(partition as i32)))
                }
            };
            for view in known.iter().filter(|v| wanted(&v.partition.topic, v.partition.partition)) {
                if !kafka.node.authorizer.is_allowed(
                    principal,
                    Operation::Describe,
                    &Resource::topic(&view.partition.topic),
                ) {
                    continue;
                }
                by_topic.entry(view.partition.topic.clone()).or_default().push(
                    DescribeShareGroupOffsetsResponsePartition::default()
                        .with_partition_index(view.partition.partition as i32)
                        .with_start_offset(view.start_offset)
                        .with_leader_epoch(-1),
                );
            }
            // A partition asked for that the group has not started is answered with start offset -1, as Kafka's.
            for topic in asked.topics.iter().flatten() {
                for &index in &topic.partitions {
                    let partitions = by_topic.entry(topic.topic_name.to_string()).or_default();
                    if !partitions.iter().any(|p| p.partition_index == index) {
                        partitions.push(
                            DescribeShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(index)
                                .with_start_offset(-1)
                                .with_leader_epoch(-1),
                        );
                    }
                }
            }
            let topics = by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_id(ids.id_of(&name).unwrap_or_default())
                        .with_topic_name(TopicName(text(name)))
                        .with_partitions(partitions)
                })
                .collect();
            answered.with_topics(topics)
        })
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}
