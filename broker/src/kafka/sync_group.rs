//! SyncGroup (v0–v5) of Kafka's classic group protocol: the leader's request carries every member's
//! assignment; each member's answer (the leader's too) waits until it is there. Assignments pass through as
//! the leader encoded them; the broker decodes the consumer protocol's only to describe the group.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::consumer_protocol::assigned_partitions;
use super::group_errors::classic_code;
use super::KafkaContext;
use crate::groups::classic::{ClassicError, Pending};

pub async fn answer(kafka: &KafkaContext, request: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| {
            let partitions = assigned_partitions(&a.assignment).unwrap_or_default();
            (a.member_id.to_string(), a.assignment, partitions)
        })
        .collect();
    let protocol = (request.protocol_type.map(|t| t.to_string()), request.protocol_name.map(|p| p.to_string()));
    if let Err(err) = kafka.node.offsets.check_coordinator(request.group_id.0.as_str()) {
        return SyncGroupResponse::default()
            .with_error_code(classic_code(&ClassicError::NotCoordinator(err.to_string())));
    }
    let synced = kafka.node.groups.classic_sync(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|id| id.as_str()),
        request.generation_id,
        protocol,
        assignments,
    );
    let outcome = match synced {
        Ok(pending) => wait(kafka, pending).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(outcome) => SyncGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_string(outcome.protocol_type)))
            .with_protocol_name(Some(StrBytes::from_string(outcome.protocol)))
            .with_assignment(outcome.assignment),
        Err(err) => {
            tracing::debug!(error = %err, "kafka sync refused");
            SyncGroupResponse::default().with_error_code(classic_code(&err))
        }
    }
}

/// Waits for a parked join or sync to be answered, or for the broker to shut down. A reply dropped unanswered
/// (the member was replaced by a newer request of its own) is a rebalance to rejoin.
pub async fn wait<T>(kafka: &KafkaContext, pending: Pending<T>) -> Result<T, ClassicError> {
    let mut shutdown = kafka.node.shutdown.clone();
    tokio::select! {
        answered = pending => answered.unwrap_or(Err(ClassicError::RebalanceInProgress { group: String::new() })),
        _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => Err(ClassicError::ShuttingDown),
    }
}
