//! The gRPC services, one file per service. Each handler turns a request into calls on [`Node`] and returns
//! `Result<_, BrokerError>`; the conversion to `tonic::Status` happens in `error.rs`, nowhere else.

pub(crate) mod admin;
pub(crate) mod group_admin;
mod groups;
pub(crate) mod produce;
mod produce_stream;
mod read;
mod records;
mod records_route;
pub(crate) mod request_time;
mod share_consume;

use std::sync::Arc;

use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::node::Node;
use crate::quotas::QuotaKey;

pub use group_admin::{expire_groups, follow_topic_changes};
pub(crate) use produce::produce;
pub use records_route::RecordsRoute;

/// Implements `TopicAdmin`, `Records` and `ConsumerGroups` over one shared [`Node`].
#[derive(Clone)]
pub struct RillService {
    node: Arc<Node>,
}

impl RillService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

/// Who a gRPC request acts as: what the authentication layer put in its extensions (anonymous without one,
/// which only node-to-node calls lack, and those never come here).
pub(crate) fn principal_in(extensions: &http::Extensions) -> Principal {
    extensions.get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

pub(crate) fn principal_of<T>(request: &tonic::Request<T>) -> Principal {
    request.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// The header a gRPC call may name its client id in for client quotas (Kafka's `client.id`); a call without
/// one is client id "".
pub(crate) const CLIENT_ID_HEADER: &str = "rill-client-id";

/// Who a gRPC call is for client quotas: its principal and client id, when any quota is set (`None`: nothing
/// to charge, and nothing cloned on the hot path).
pub(crate) fn quota_client(
    node: &Node,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> Option<QuotaClient> {
    node.quotas.store().is_any_set().then(|| stream_quota_client(headers, extensions))
}

/// Who a long-lived gRPC call (a produce stream, a subscription) is for client quotas, whether or not any is set
/// now: one set while the call lasts applies to it from then on.
pub(crate) fn stream_quota_client(headers: &http::HeaderMap, extensions: &http::Extensions) -> QuotaClient {
    let client_id = headers.get(CLIENT_ID_HEADER).and_then(|id| id.to_str().ok()).unwrap_or_default();
    QuotaClient { principal: principal_in(extensions), client_id: client_id.to_owned() }
}

pub(crate) struct QuotaClient {
    pub principal: Principal,
    pub client_id: String,
}

impl QuotaClient {
    /// Charges `bytes` to the client's quota on `key` and waits out the throttle time, if any, before the call
    /// answers: gRPC has no field to tell a client to wait, so the answer itself comes late (as Kafka's brokers
    /// delayed theirs before KIP-219). Cut short when the node shuts down.
    pub async fn wait_out(&self, node: &Node, key: QuotaKey, bytes: u64) {
        let throttle = node.quotas.charge(key, &self.principal, &self.client_id, bytes);
        if throttle.is_zero() {
            return;
        }
        tracing::debug!(principal = %self.principal, client_id = %self.client_id, throttle_ms = throttle.as_millis() as u64, "gRPC client throttled");
        let mut shutdown = node.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(throttle) => {}
            _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => {}
        }
    }

    /// The most bytes one fetch or push may carry under the client's fetch quota, if one applies.
    pub fn fetch_bytes_bound(&self, node: &Node) -> Option<u32> {
        let quota = node.quotas.quota(QuotaKey::ConsumerByteRate, &self.principal, &self.client_id)?;
        Some(u32::try_from(node.quotas.fetch_bytes_bound(&quota)).unwrap_or(u32::MAX))
    }
}

/// Kafka's rule for creating a topic: CREATE on the cluster, or on the topic itself.
pub(crate) fn authorize_create_topic(node: &Node, principal: &Principal, topic: &str) -> crate::error::Result<()> {
    if node.authorizer.is_allowed(principal, Operation::Create, &Resource::cluster()) {
        return Ok(());
    }
    node.authorize(principal, Operation::Create, &Resource::topic(topic))
}
