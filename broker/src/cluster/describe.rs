//! The public `ClusterAdmin` service: `DescribeCluster`. A follower forwards to the controller leader (only the
//! leader knows heartbeat ages) and answers from its own replica when the leader is unknown or unreachable.

use std::sync::Arc;
use std::time::Duration;

use rill_protocol::v1::cluster_admin_client::ClusterAdminClient;
use rill_protocol::v1::cluster_admin_server::{ClusterAdmin, ClusterAdminServer};
use rill_protocol::v1::{ClusterNode, DescribeClusterRequest, DescribeClusterResponse, NodeState as WireNodeState};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::metadata::NodeState;
use super::Controller;
use crate::config::BrokerConfig;

/// How long a follower waits for the leader's answer before answering from its own replica.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterAdminService {
    /// `None` for a single node without peers.
    controller: Option<Arc<Controller>>,
    config: Arc<BrokerConfig>,
    /// The address this node listens on (with the real port), shown for a single node.
    listen_address: String,
}

impl ClusterAdminService {
    pub fn server(
        controller: Option<Arc<Controller>>,
        config: Arc<BrokerConfig>,
        listen_address: String,
    ) -> ClusterAdminServer<Self> {
        ClusterAdminServer::new(Self { controller, config, listen_address })
    }

    fn single_node(&self) -> DescribeClusterResponse {
        DescribeClusterResponse {
            cluster_id: String::new(),
            has_controller_quorum: false,
            controller_leader_id: None,
            raft_term: 0,
            answered_by_node_id: self.config.node_id,
            answered_by_leader: false,
            nodes: vec![ClusterNode {
                node_id: self.config.node_id,
                address: self.listen_address.clone(),
                state: WireNodeState::Alive.into(),
                is_voter: false,
                last_heartbeat_age_ms: None,
            }],
        }
    }
}

/// This node's view: its replica of the metadata, raft's metrics and, on the leader, the session ages.
fn local_view(controller: &Controller) -> DescribeClusterResponse {
    let metrics = controller.raft.metrics().borrow().clone();
    let metadata = controller.metadata();
    let is_leader = metrics.current_leader == Some(controller.node_id) && metrics.state.is_leader();
    let voters: Vec<u64> = metrics.membership_config.voter_ids().collect();
    let now = Instant::now();
    let nodes = controller
        .peers()
        .into_iter()
        .map(|peer| {
            let record = metadata.nodes.get(&peer.node_id);
            let state = match record.map(|r| r.state) {
                Some(NodeState::Alive) => WireNodeState::Alive,
                Some(NodeState::Fenced) => WireNodeState::Fenced,
                None => WireNodeState::Unregistered,
            };
            let last_heartbeat_age_ms = if is_leader {
                controller.sessions.heartbeat_age(peer.node_id, now).map(|age| age.as_millis() as u64)
            } else {
                None
            };
            ClusterNode {
                node_id: Some(peer.node_id),
                address: record.map(|r| r.address.clone()).unwrap_or(peer.address),
                state: state.into(),
                is_voter: voters.contains(&peer.node_id),
                last_heartbeat_age_ms,
            }
        })
        .collect();
    DescribeClusterResponse {
        cluster_id: metadata.cluster_id.clone().unwrap_or_default(),
        has_controller_quorum: true,
        controller_leader_id: metrics.current_leader,
        raft_term: metrics.current_term,
        answered_by_node_id: Some(controller.node_id),
        answered_by_leader: is_leader,
        nodes,
    }
}

/// Asks the leader for its view; `None` when it cannot be had in time.
async fn leader_view(controller: &Controller, leader_id: u64) -> Option<DescribeClusterResponse> {
    let metrics = controller.raft.metrics().borrow().clone();
    let address = metrics.membership_config.membership().get_node(&leader_id)?.addr.clone();
    let mut client = ClusterAdminClient::new(crate::tls::channel_to(&address, &controller.config).ok()?);
    let mut request = Request::new(DescribeClusterRequest { local_only: true });
    request.set_timeout(FORWARD_TIMEOUT);
    match tokio::time::timeout(FORWARD_TIMEOUT, client.describe_cluster(request)).await {
        Ok(Ok(answer)) => Some(answer.into_inner()),
        Ok(Err(status)) => {
            tracing::debug!(leader_id, error = %status, "controller leader did not describe the cluster");
            None
        }
        Err(_) => None,
    }
}

#[tonic::async_trait]
impl ClusterAdmin for ClusterAdminService {
    async fn describe_cluster(
        &self,
        request: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        let Some(controller) = &self.controller else { return Ok(Response::new(self.single_node())) };
        let local = local_view(controller);
        if request.get_ref().local_only || local.answered_by_leader {
            return Ok(Response::new(local));
        }
        if let Some(leader_id) = local.controller_leader_id {
            if let Some(answer) = leader_view(controller, leader_id).await {
                return Ok(Response::new(answer));
            }
        }
        Ok(Response::new(local))
    }
}
