//! ShareGroupHeartbeat (v1): a share group member's join, heartbeat and leave (KIP-932), on the node's share
//! groups (`share_groups/`). This file translates: topic names to ids (the assignment names topics by id), the
//! share groups' refusals to Kafka's codes, each with its message. A share partition newly assigned starts
//! where the group's reset policy says, and that start is stored before the heartbeat is answered, so records
//! produced after the answer are never skipped by a restart. On a cluster the group's coordinator answers
//! (NOT_COORDINATOR elsewhere), and each partition's leader starts it at the member's first fetch.

use std::collections::BTreeSet;

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::consumer_group_heartbeat::TopicIds;
use super::dispatch::Caller;
use super::error::error_code;
use super::KafkaContext;
use crate::share_groups::{ShareError, ShareHeartbeat};

pub async fn answer(
    kafka: &KafkaContext,
    request: ShareGroupHeartbeatRequest,
    caller: Caller,
) -> ShareGroupHeartbeatResponse {
    let group = request.group_id.0.to_string();
    if kafka.node.is_shutting_down() {
        return refused(ResponseError::CoordinatorNotAvailable, "the broker is shutting down".into());
    }
    if let Err(err) = crate::groups::check_group_id(&group) {
        return refused(ResponseError::InvalidGroupId, err.to_string());
    }
    // On a cluster the group's members live at its coordinator, where the client found it (FindCoordinator).
    if let Err(err) = kafka.node.offsets.check_coordinator(&group) {
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(error_code(&err))
            .with_error_message(Some(StrBytes::from_string(err.to_string())))
            .with_member_epoch(-1);
    }
    if kafka.node.groups.knows(&group) || kafka.node.groups.classic_snapshot(&group).is_some() {
        return refused(ResponseError::InconsistentGroupProtocol, ShareError::NotAShareGroup(group).to_string());
    }
    let heartbeat = ShareHeartbeat {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|names| names.iter().map(|name| name.0.to_string()).collect::<BTreeSet<String>>()),
        client_id: caller.client_id,
        client_host: caller.host,
        rack: request.rack_id.map(|rack| rack.to_string()),
    };
    let answer = kafka.node.shares.heartbeat(heartbeat, kafka.node.as_ref(), Instant::now());
    // Members this heartbeat (or an earlier request) found gone: the other nodes release what they held.
    crate::share_groups::remote::release_departed(&kafka.node);
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => return refused(code(&err), err.to_string()),
    };
    if let Err(err) = crate::share_groups::delivery::save(&kafka.node, &group, answer.to_store).await {
        return ShareGroupHeartbeatResponse::default()
            .with_error_code(error_code(&err))
            .with_error_message(Some(StrBytes::from_string(format!("cannot store where the group starts: {err}"))))
            .with_member_epoch(-1);
    }
    let assignment = answer.assignment.map(|partitions| {
        let ids = TopicIds::now(kafka);
        Assignment::default().with_topic_partitions(
            ids.grouped(&partitions)
                .into_iter()
                .map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions))
                .collect(),
        )
    });
    ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(request.member_id))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment)
}

pub(super) fn code(err: &ShareError) -> ResponseError {
    match err {
        ShareError::UnknownMember { .. } => ResponseError::UnknownMemberId,
        ShareError::FencedEpoch { .. } => ResponseError::FencedMemberEpoch,
        ShareError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ShareError::GroupFull { .. } | ShareError::TooManyGroups { .. } => ResponseError::GroupMaxSizeReached,
        ShareError::SessionNotFound { .. } => ResponseError::ShareSessionNotFound,
        ShareError::InvalidSessionEpoch { .. } => ResponseError::InvalidShareSessionEpoch,
        ShareError::NotAShareGroup(_) => ResponseError::InconsistentGroupProtocol,
        ShareError::NotEmpty { .. } => ResponseError::NonEmptyGroup,
        ShareError::TooManySessions { .. } => ResponseError::ShareSessionLimitReached,
    }
}

fn refused(error: ResponseError, message: String) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_member_epoch(-1)
}
