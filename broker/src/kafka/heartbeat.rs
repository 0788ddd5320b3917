//! Heartbeat (v0–v4) and LeaveGroup (v0–v5) of Kafka's classic group protocol: a heartbeat keeps the member's
//! session and says REBALANCE_IN_PROGRESS when it must rejoin; a leave removes members at once (by member id,
//! or from v3 by static instance id, several per request) and the rest rebalance.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LeaveGroupResponse};

use super::group_errors::classic_code;
use super::KafkaContext;
use crate::groups::classic::ClassicError;

pub fn heartbeat(kafka: &KafkaContext, request: &HeartbeatRequest) -> HeartbeatResponse {
    if let Err(err) = kafka.node.offsets.check_coordinator(request.group_id.0.as_str()) {
        return HeartbeatResponse::default()
            .with_error_code(classic_code(&ClassicError::NotCoordinator(err.to_string())));
    }
    let beat = kafka.node.groups.classic_heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|id| id.as_str()),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(beat.map_or_else(|err| classic_code(&err), |()| 0))
}

pub fn leave(kafka: &KafkaContext, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let groups = Arc::clone(&kafka.node.groups);
    let group = request.group_id.0.as_str();
    if let Err(err) = kafka.node.offsets.check_coordinator(group) {
        return LeaveGroupResponse::default()
            .with_error_code(classic_code(&ClassicError::NotCoordinator(err.to_string())));
    }
    if version < 3 {
        let left = groups.classic_leave(group, request.member_id.as_str(), None);
        return LeaveGroupResponse::default().with_error_code(left.map_or_else(|err| classic_code(&err), |()| 0));
    }
    let members = request
        .members
        .into_iter()
        .map(|member| {
            let instance = member.group_instance_id.as_ref().map(|id| id.as_str());
            let left = groups.classic_leave(group, member.member_id.as_str(), instance);
            MemberResponse::default()
                .with_member_id(member.member_id)
                .with_group_instance_id(member.group_instance_id)
                .with_error_code(left.map_or_else(|err| classic_code(&err), |()| 0))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
