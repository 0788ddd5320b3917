//! Client quota administration over the `QuotaAdmin` service (docs/kafka.md, "Client quotas"): the byte rates a
//! user, a client id, or both may produce and fetch at. Entities and quotas are the API's own messages,
//! re-exported.

use rill_protocol::v1::quota_admin_client::QuotaAdminClient;
use rill_protocol::v1::ListQuotasRequest;
pub use rill_protocol::v1::{AlterQuotasRequest, ClientQuota, QuotaEntity};

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// Client quota administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct QuotaAdmin {
    client: Client,
}

impl QuotaAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn admin(&self) -> QuotaAdminClient<crate::connection::BrokerChannel> {
        QuotaAdminClient::new(self.client.channel())
    }

    /// Sets and removes the values `change` names for its entity, all or none; returns what the entity holds now.
    pub async fn alter(&self, change: AlterQuotasRequest) -> Result<ClientQuota> {
        let timeout = self.client.config().request_timeout;
        let answer =
            call(timeout, RequestContext::default(), self.admin().alter_quotas(request(change, timeout))).await?;
        Ok(answer.quota.unwrap_or_default())
    }

    /// Every entity with a quota, and its values.
    pub async fn list(&self) -> Result<Vec<ClientQuota>> {
        let timeout = self.client.config().request_timeout;
        let answer =
            call(timeout, RequestContext::default(), self.admin().list_quotas(request(ListQuotasRequest {}, timeout)))
                .await?;
        Ok(answer.quotas)
    }
}
