//! Kafka clients' metrics subscriptions over the `ClientMetricsAdmin` service (KIP-714, docs/observability.md):
//! which metrics Kafka clients push to the broker, how often, and which clients. Subscriptions and changes are the
//! API's own messages, re-exported.

use rill_protocol::v1::client_metrics_admin_client::ClientMetricsAdminClient;
use rill_protocol::v1::ListClientMetricsRequest;
pub use rill_protocol::v1::{AlterClientMetricsRequest, ClientMetricsSubscription};

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// Client metrics subscription administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct ClientMetricsAdmin {
    client: Client,
}

impl ClientMetricsAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn admin(&self) -> ClientMetricsAdminClient<crate::connection::BrokerChannel> {
        ClientMetricsAdminClient::new(self.client.channel())
    }

    /// Sets and removes the keys `change` names of its subscription, all or none; the subscription as it is
    /// after, `None` once it has no key left.
    pub async fn alter(&self, change: AlterClientMetricsRequest) -> Result<Option<ClientMetricsSubscription>> {
        let timeout = self.client.config().request_timeout;
        let answer =
            call(timeout, RequestContext::default(), self.admin().alter_client_metrics(request(change, timeout)))
                .await?;
        Ok(answer.subscription)
    }

    /// Every subscription, the broker's own settings' first.
    pub async fn list(&self) -> Result<Vec<ClientMetricsSubscription>> {
        let timeout = self.client.config().request_timeout;
        let mut admin = self.admin();
        let listing = admin.list_client_metrics(request(ListClientMetricsRequest {}, timeout));
        Ok(call(timeout, RequestContext::default(), listing).await?.subscriptions)
    }
}
