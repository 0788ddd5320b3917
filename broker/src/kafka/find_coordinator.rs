//! FindCoordinator (v0–v4): which node coordinates a consumer group. A single node coordinates every group and
//! answers with its own advertised address (what Metadata names, so a client behind NAT reaches it the same
//! way). On a cluster the coordinator is the leader of the group's `__consumer_offsets` partition
//! (`offsets::replicated`), named by its id and cluster address; COORDINATOR_NOT_AVAILABLE while that partition
//! has no leader (or the topic is not placed yet). v4 asks for several groups at once (`coordinator_keys`); earlier
//! versions for one (`key`). A transactional id's coordinator (key type 1) is the single node itself; a cluster
//! has none yet, and refuses the key as Kafka refuses a transactional id a client may not use (fatal in clients,
//! which report it rather than retry forever).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::KafkaContext;
use crate::groups::check_group_id;

/// Kafka's key type of a consumer group.
pub const KEY_TYPE_GROUP: i8 = 0;
/// Kafka's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn answer(
    kafka: &KafkaContext,
    request: FindCoordinatorRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> FindCoordinatorResponse {
    let find = |key: &StrBytes| coordinator_for(kafka, request.key_type, key, principal);
    if version >= 4 {
        let coordinators = request.coordinator_keys.iter().map(find).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let found = find(&request.key);
    FindCoordinatorResponse::default()
        .with_error_code(found.error_code)
        .with_error_message(found.error_message)
        .with_node_id(found.node_id)
        .with_host(found.host)
        .with_port(found.port)
}

fn coordinator_for(
    kafka: &KafkaContext,
    key_type: i8,
    key: &StrBytes,
    principal: &crate::auth::Principal,
) -> Coordinator {
    let refused = |error: ResponseError, message: String| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let itself = || {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(kafka.node_id))
            .with_host(StrBytes::from_string(kafka.advertised_host.clone()))
            .with_port(i32::from(kafka.advertised_port))
    };
    let named = |node_id: u64, address: &str| match (crate::config::parse_advertise(address), i32::try_from(node_id)) {
        (Ok((host, port)), Ok(node_id)) => Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(i32::from(port)),
        _ => refused(
            ResponseError::CoordinatorNotAvailable,
            format!("node {node_id}'s address {address:?} cannot be named to a Kafka client"),
        ),
    };
    if key_type == KEY_TYPE_TRANSACTION {
        let describe = crate::auth::acl::Operation::Describe;
        if let Err(code) = super::transactions::coordinator(kafka, principal, describe, key.as_str()) {
            return Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(format!(
                    "DESCRIBE on transactional id {:?} is not allowed",
                    key.as_str()
                ))));
        }
        // On a cluster: the controller leader coordinates every transactional id (`transactions/replicated.rs`).
        let Some(controller) = kafka.node.transactions.controller() else { return itself() };
        let metadata = controller.metadata();
        return match controller.current_leader_id().and_then(|id| Some((id, metadata.address_of(id)?))) {
            Some((node_id, address)) => named(node_id, address),
            None => refused(
                ResponseError::CoordinatorNotAvailable,
                "the controller quorum has no leader yet, and the transaction coordinator is its leader: retry".into(),
            ),
        };
    }
    if key_type != KEY_TYPE_GROUP {
        return refused(
            ResponseError::InvalidRequest,
            format!("key type {key_type} is not served: consumer groups (0) and transactional ids (1) are"),
        );
    }
    if let Err(err) = check_group_id(key.as_str()) {
        return refused(ResponseError::InvalidGroupId, err.to_string());
    }
    if kafka.node.replication.is_none() {
        return itself();
    }
    let Some((node_id, address)) = kafka.node.offsets.coordinator(key.as_str()) else {
        return refused(
            ResponseError::CoordinatorNotAvailable,
            format!("group {:?}'s offsets partition has no leader yet: retry", key.as_str()),
        );
    };
    named(node_id, &address)
}
