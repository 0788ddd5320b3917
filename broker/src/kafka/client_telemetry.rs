//! GetTelemetrySubscriptions and PushTelemetry (KIP-714): a Kafka client learns which of its metrics the node
//! wants and pushes them; the subscriptions and what is kept are `crate::client_telemetry`'s. Neither API needs
//! an ACL, as on Kafka: a client reports on itself.

use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse, PushTelemetryRequest, PushTelemetryResponse,
};
use kafka_protocol::ResponseError;

use super::dispatch::Caller;
use super::topic_configs::text;
use super::KafkaContext;
use crate::client_telemetry::{ClientIdentity, PushRefusal, Subscription, TELEMETRY_MAX_BYTES};

pub fn subscriptions(
    kafka: &KafkaContext,
    request: &GetTelemetrySubscriptionsRequest,
    caller: &Caller,
) -> GetTelemetrySubscriptionsResponse {
    let client = ClientIdentity {
        client_id: caller.client_id.clone(),
        software_name: caller.software.name.clone(),
        software_version: caller.software.version.clone(),
        peer: caller.peer,
    };
    let subscription = kafka.node.client_telemetry.subscribe(request.client_instance_id, &client);
    GetTelemetrySubscriptionsResponse::default()
        .with_client_instance_id(subscription.client_instance_id)
        .with_subscription_id(subscription.subscription_id)
        .with_accepted_compression_types(Subscription::accepted_compression_types())
        .with_push_interval_ms(i32::try_from(subscription.push_interval_ms).unwrap_or(i32::MAX))
        .with_telemetry_max_bytes(TELEMETRY_MAX_BYTES as i32)
        // Cumulative sums: a scrape then shows each as the client counts it, with nothing to add up.
        .with_delta_temporality(false)
        .with_requested_metrics(subscription.requested_metrics.into_iter().map(text).collect())
}

pub fn push(kafka: &KafkaContext, request: &PushTelemetryRequest) -> PushTelemetryResponse {
    let pushed = kafka.node.client_telemetry.push(
        request.client_instance_id,
        request.subscription_id,
        request.terminating,
        request.compression_type,
        &request.metrics,
    );
    let error = match pushed {
        Ok(()) => return PushTelemetryResponse::default(),
        Err(refusal) => refusal,
    };
    tracing::debug!(client_instance_id = %request.client_instance_id, %error, "client metrics push refused");
    let code = match error {
        PushRefusal::NoInstanceId => ResponseError::InvalidRequest,
        PushRefusal::UnknownSubscription(_) => ResponseError::UnknownSubscriptionId,
        PushRefusal::TooSoon { .. } => ResponseError::ThrottlingQuotaExceeded,
        PushRefusal::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
        PushRefusal::TooLarge(_) => ResponseError::TelemetryTooLarge,
        PushRefusal::Malformed(_) => ResponseError::InvalidRecord,
    };
    PushTelemetryResponse::default().with_error_code(code.code())
}
