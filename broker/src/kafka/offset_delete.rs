//! OffsetDelete (v0): forgets a group's committed offsets for some partitions. As in Kafka, the offsets of a
//! topic that a member of the group subscribes to stay (GROUP_SUBSCRIBED_TO_TOPIC for those partitions); the
//! rest are deleted with tombstones in the offset store, checked again under its lock as they land. Kafka's
//! authorization: DELETE on the group (else GROUP_AUTHORIZATION_FAILED for the request), READ on each topic (else
//! TOPIC_AUTHORIZATION_FAILED for its partitions, nothing of it deleted).

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use super::group_errors::group_code;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::error::BrokerError;
use crate::groups::{check_group_id, GroupCoordinator};
use crate::node::now_ms;
use crate::offsets::OffsetKey;

pub async fn answer(kafka: &KafkaContext, request: OffsetDeleteRequest, principal: &Principal) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    if let Err(code) = kafka.authorize(principal, Operation::Delete, &Resource::group(&group)) {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    if let Err(err) = check_group_id(&group) {
        return OffsetDeleteResponse::default().with_error_code(group_code(&err));
    }
    let node = &kafka.node;
    if let Err(err) = node.offsets.check_coordinator(&group) {
        return OffsetDeleteResponse::default().with_error_code(group_code(&err));
    }
    if node.groups.snapshot(&group).is_none() && node.offsets.for_group(&group).is_empty() {
        return OffsetDeleteResponse::default().with_error_code(ResponseError::GroupIdNotFound.code());
    }
    let subscribed = subscribed_topics(&node.groups, &group);
    let mut keys = BTreeSet::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let is_subscribed = subscribed.contains(topic.name.0.as_str());
        let denied = kafka.authorize(principal, Operation::Read, &Resource::topic(topic.name.0.as_str())).err();
        let partitions = topic
            .partitions
            .iter()
            .map(|asked| {
                let code = match (denied, u32::try_from(asked.partition_index)) {
                    (Some(denied), _) => denied,
                    _ if is_subscribed => ResponseError::GroupSubscribedToTopic.code(),
                    (None, Ok(partition)) => {
                        keys.insert(OffsetKey { group: group.clone(), topic: topic.name.0.to_string(), partition });
                        0
                    }
                    (None, Err(_)) => ResponseError::UnknownTopicOrPartition.code(),
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(asked.partition_index)
                    .with_error_code(code)
            })
            .collect();
        topics.push(OffsetDeleteResponseTopic::default().with_name(topic.name).with_partitions(partitions));
    }
    if !keys.is_empty() {
        let groups = Arc::clone(&node.groups);
        let (checked_group, checked_topics): (String, BTreeSet<String>) =
            (group.clone(), keys.iter().map(|k| k.topic.clone()).collect());
        let check = move || {
            // A member may have subscribed since the look above: then nothing is deleted.
            let now_subscribed = subscribed_topics(&groups, &checked_group);
            match checked_topics.iter().find(|topic| now_subscribed.contains(*topic)) {
                Some(_) => Err(BrokerError::GroupNotEmpty {
                    group: checked_group,
                    members: 1,
                    action: "deleting the offsets of a subscribed topic",
                }),
                None => Ok(()),
            }
        };
        if let Err(err) = node.offsets.delete_checked(keys, now_ms(), check).await {
            return OffsetDeleteResponse::default().with_error_code(group_code(&err));
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

fn subscribed_topics(groups: &GroupCoordinator, group: &str) -> BTreeSet<String> {
    groups.snapshot(group).map(|snapshot| snapshot.topics).unwrap_or_default()
}
