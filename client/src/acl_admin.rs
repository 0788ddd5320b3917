//! ACL administration over the `AclAdmin` service (docs/security.md, "ACLs"): Kafka's allow and deny bindings.
//! Bindings and filters are the API's own messages, re-exported; words are lower case (`topic`, `literal`,
//! `read`, `allow`).

use rill_protocol::v1::acl_admin_client::AclAdminClient;
pub use rill_protocol::v1::{Acl, AclFilter};
use rill_protocol::v1::{AddAclsRequest, ListAclsRequest, RemoveAclsRequest};

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// ACL administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct AclAdmin {
    client: Client,
}

impl AclAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn admin(&self) -> AclAdminClient<crate::connection::BrokerChannel> {
        AclAdminClient::new(self.client.channel())
    }

    /// Adds `acls`, all or none; returns how many were new.
    pub async fn add(&self, acls: Vec<Acl>) -> Result<u32> {
        let timeout = self.client.config().request_timeout;
        let answer =
            call(timeout, RequestContext::default(), self.admin().add_acls(request(AddAclsRequest { acls }, timeout)))
                .await?;
        Ok(answer.added)
    }

    /// Removes every binding `filter` matches; returns them.
    pub async fn remove(&self, filter: AclFilter) -> Result<Vec<Acl>> {
        let timeout = self.client.config().request_timeout;
        let message = RemoveAclsRequest { filter: Some(filter) };
        let answer =
            call(timeout, RequestContext::default(), self.admin().remove_acls(request(message, timeout))).await?;
        Ok(answer.removed)
    }

    /// Every binding `filter` matches.
    pub async fn list(&self, filter: AclFilter) -> Result<Vec<Acl>> {
        let timeout = self.client.config().request_timeout;
        let message = ListAclsRequest { filter: Some(filter) };
        let answer =
            call(timeout, RequestContext::default(), self.admin().list_acls(request(message, timeout))).await?;
        Ok(answer.acls)
    }
}
