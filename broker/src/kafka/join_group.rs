//! JoinGroup (v0–v9) of Kafka's classic group protocol, on the node's coordinator
//! (`groups::classic`): the answer waits until the group's join phase completes, at most the rebalance
//! timeout (or the broker's shutdown). From v4 a member's first join is answered MEMBER_ID_REQUIRED with the
//! id to join with (KIP-394), unless it has a static `group.instance.id`.

use std::collections::BTreeSet;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::consumer_protocol::subscribed_topics;
use super::dispatch::Caller;
use super::group_errors::classic_code;
use super::KafkaContext;
use crate::groups::classic::{ClassicError, JoinOutcome, JoinRequest};

pub async fn answer(
    kafka: &KafkaContext,
    request: JoinGroupRequest,
    version: i16,
    caller: Caller,
) -> JoinGroupResponse {
    if kafka.node.shares.is_share_group(request.group_id.as_str()) {
        // JoinGroup has no error message: the code alone says the id belongs to a group of another kind.
        return JoinGroupResponse::default()
            .with_error_code(kafka_protocol::ResponseError::InconsistentGroupProtocol.code())
            .with_generation_id(-1);
    }
    let protocol_type = request.protocol_type.to_string();
    let topics = match protocol_type.as_str() {
        "consumer" => {
            request.protocols.first().and_then(|protocol| subscribed_topics(&protocol.metadata)).unwrap_or_default()
        }
        _ => BTreeSet::new(),
    };
    let join = JoinRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: caller.client_id,
        client_host: caller.host,
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        protocol_type,
        protocols: request.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        topics,
        requires_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    if let Err(err) = kafka.node.offsets.check_coordinator(&join.group) {
        return refused(&ClassicError::NotCoordinator(err.to_string()), member_id);
    }
    let outcome = match kafka.node.groups.classic_join(join) {
        Ok(pending) => super::sync_group::wait(kafka, pending).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(outcome) => joined(outcome),
        Err(err) => refused(&err, member_id),
    }
}

fn joined(outcome: JoinOutcome) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(m.id))
                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_generation_id(outcome.generation)
        .with_protocol_type(Some(StrBytes::from_string(outcome.protocol_type)))
        .with_protocol_name(Some(StrBytes::from_string(outcome.protocol)))
        .with_leader(StrBytes::from_string(outcome.leader))
        .with_member_id(StrBytes::from_string(outcome.member_id))
        .with_members(members)
}

fn refused(err: &ClassicError, member_id: String) -> JoinGroupResponse {
    tracing::debug!(error = %err, "kafka join refused");
    let member_id = match err {
        ClassicError::MemberIdRequired { member_id } => member_id.clone(),
        _ => member_id,
    };
    JoinGroupResponse::default()
        .with_error_code(classic_code(err))
        .with_generation_id(-1)
        .with_protocol_name(Some(StrBytes::default()))
        .with_member_id(StrBytes::from_string(member_id))
}
