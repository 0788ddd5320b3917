//! Cluster administration: `DescribeCluster` over the `ClusterAdmin` service. The answer is the API's own
//! message (`rill_protocol::v1`), re-exported, since the `.proto` is the contract.

use rill_protocol::v1::cluster_admin_client::ClusterAdminClient;
use rill_protocol::v1::DescribeClusterRequest;
pub use rill_protocol::v1::{
    ClusterNode, DescribeClusterResponse as ClusterDescription, NodeState as ClusterNodeState,
};

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// Cluster administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct ClusterAdmin {
    client: Client,
}

impl ClusterAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The cluster's nodes, their states and the controller leader, as the node connected to (or, through it,
    /// the controller leader) sees them.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        call(
            timeout,
            RequestContext::default(),
            admin.describe_cluster(request(DescribeClusterRequest { local_only: false }, timeout)),
        )
        .await
    }
}
