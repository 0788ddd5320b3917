//! ListGroups (v0–v5; v5 lists each group's type and filters by it), DescribeGroups (v0–v5) and DeleteGroups (v0–v2) over every group the node knows: Kafka
//! clients' groups (classic protocol), rill's own gRPC groups, and groups that only have committed offsets.
//!
//! A rill group is shown to Kafka tools as a "consumer" group in the states of Kafka's own server-side
//! (KIP-848) groups, `Stable` or `Reconciling`, its members' subscriptions and assignments encoded in the
//! consumer protocol, so `kafka-consumer-groups --describe` lists who reads what. A group with only offsets is
//! `Empty`; one the node does not know is `Dead` (error NONE before v6, as in Kafka).

use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;

use super::consumer_protocol::{encode_assignment, encode_subscription};
use super::group_errors::group_code;
use super::KafkaContext;
use crate::groups::check_group_id;
use crate::groups::classic::ClassicSnapshot;
use crate::service::group_admin;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub fn list(
    kafka: &KafkaContext,
    request: &ListGroupsRequest,
    version: i16,
    principal: &Principal,
) -> ListGroupsResponse {
    let node = &kafka.node;
    let mut listed: Vec<ListedGroup> = Vec::new();
    let rill_groups = group_admin::list(node).groups;
    // Kafka lists the groups the principal may DESCRIBE (or all, with DESCRIBE on the cluster).
    let sees_all = node.authorizer.is_allowed(principal, Operation::Describe, &Resource::cluster());
    let rill_groups = rill_groups
        .into_iter()
        .filter(|g| sees_all || node.authorizer.is_allowed(principal, Operation::Describe, &Resource::group(&g.group)));
    for summary in rill_groups {
        // Kafka's group types (v5, KIP-848): a classic group's members assign, a consumer group's broker does, a
        // share group is KIP-932's.
        let (protocol_type, state, group_type) = match node.groups.classic_snapshot(&summary.group) {
            Some(classic) => (classic.protocol_type, classic.state.kafka_name(), "classic"),
            None if summary.kind() == v1::GroupKind::Share => {
                ("share".to_owned(), if summary.member_count == 0 { "Empty" } else { "Stable" }, "share")
            }
            None if summary.member_count == 0 => (String::new(), "Empty", "consumer"),
            None => ("consumer".to_owned(), rill_state(summary.state()), "consumer"),
        };
        let wanted_state = request.states_filter.is_empty()
            || request.states_filter.iter().any(|filter| filter.as_str().eq_ignore_ascii_case(state));
        let wanted_type = request.types_filter.is_empty()
            || request.types_filter.iter().any(|filter| filter.as_str().eq_ignore_ascii_case(group_type));
        if wanted_state && wanted_type {
            listed.push(
                ListedGroup::default()
                    .with_group_id(GroupId(text(summary.group)))
                    .with_protocol_type(text(protocol_type))
                    .with_group_state(text(state))
                    .with_group_type(if version >= 5 { text(group_type) } else { StrBytes::default() }),
            );
        }
    }
    ListGroupsResponse::default().with_groups(listed)
}

pub fn describe(
    kafka: &KafkaContext,
    request: &DescribeGroupsRequest,
    principal: &Principal,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|group| match kafka.authorize(principal, Operation::Describe, &Resource::group(group.0.as_str())) {
            Ok(()) => described(kafka, group),
            Err(code) => DescribedGroup::default()
                .with_group_id(group.clone())
                .with_error_code(code)
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn described(kafka: &KafkaContext, group_id: &GroupId) -> DescribedGroup {
    let node = &kafka.node;
    let group = group_id.0.as_str();
    let answer =
        DescribedGroup::default().with_group_id(group_id.clone()).with_authorized_operations(OPERATIONS_NOT_REQUESTED);
    if let Err(err) = check_group_id(group) {
        return answer.with_error_code(group_code(&err)).with_group_state(text("Dead"));
    }
    if let Err(err) = node.offsets.check_coordinator(group) {
        return answer.with_error_code(group_code(&err)).with_group_state(text("Dead"));
    }
    if let Some(classic) = node.groups.classic_snapshot(group) {
        return classic_described(answer, classic);
    }
    match node.groups.snapshot(group) {
        Some(snapshot) if !snapshot.members.is_empty() => {
            let members = snapshot
                .members
                .iter()
                .map(|m| {
                    let assigned: Vec<_> = m
                        .assigned
                        .iter()
                        .chain(&m.revoking)
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| crate::groups::TopicPartition::new(t.topic.clone(), *p))
                        })
                        .collect();
                    DescribedGroupMember::default()
                        .with_member_id(text(m.member_id.clone()))
                        .with_client_id(text(m.client_id.clone()))
                        .with_member_metadata(encode_subscription(&m.topics))
                        .with_member_assignment(encode_assignment(&assigned))
                })
                .collect();
            let assignor = snapshot.assignor.as_str_name().trim_start_matches("ASSIGNOR_").to_ascii_lowercase();
            answer
                .with_group_state(text(rill_state(snapshot.state)))
                .with_protocol_type(text("consumer"))
                .with_protocol_data(text(assignor))
                .with_members(members)
        }
        Some(_) => answer.with_group_state(text("Empty")),
        None if !node.offsets.for_group(group).is_empty() => answer.with_group_state(text("Empty")),
        None => answer.with_group_state(text("Dead")),
    }
}

fn classic_described(answer: DescribedGroup, classic: ClassicSnapshot) -> DescribedGroup {
    let members = classic
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(text(m.id))
                .with_group_instance_id(m.instance_id.map(text))
                .with_client_id(text(m.client_id))
                .with_client_host(text(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment)
        })
        .collect();
    answer
        .with_group_state(text(classic.state.kafka_name()))
        .with_protocol_type(text(classic.protocol_type))
        .with_protocol_data(text(classic.protocol))
        .with_members(members)
}

/// A rill group's state in the words of Kafka's server-side (KIP-848) groups.
fn rill_state(state: v1::GroupState) -> &'static str {
    match state {
        v1::GroupState::Stable => "Stable",
        v1::GroupState::Reconciling => "Reconciling",
        _ => "Empty",
    }
}

pub async fn delete(kafka: &KafkaContext, request: DeleteGroupsRequest, principal: &Principal) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let code = match kafka.authorize(principal, Operation::Delete, &Resource::group(group.0.as_str())) {
            Err(code) => code,
            Ok(()) => match group_admin::delete(&kafka.node, group.0.to_string()).await {
                Ok(_) => 0,
                Err(err) => group_code(&err),
            },
        };
        results.push(DeletableGroupResult::default().with_group_id(group).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}
