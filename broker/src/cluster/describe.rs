//! The public `ClusterAdmin` service: `DescribeCluster`, `AddNode`, `RemoveNode`, `ElectLeaders`,
//! `ReassignPartition`, `CancelReassignment`, `RebalanceReplicas`, `SetReplicationThrottle`. A follower forwards
//! each but the throttle (which any node proposes) to
//! the controller leader (only the leader knows heartbeat ages and may change the membership), and stops waiting
//! for it once raft no longer names that leader (`forward`); a describe is answered from the follower's own
//! replica when the leader is unknown or unreachable.

use std::sync::Arc;
use std::time::Duration;

use rill_protocol::v1::cluster_admin_client::ClusterAdminClient;
use rill_protocol::v1::cluster_admin_server::{ClusterAdmin, ClusterAdminServer};
use rill_protocol::v1::{
    AddNodeRequest, AddNodeResponse, CancelReassignmentRequest, ClusterNode, DescribeClusterRequest,
    DescribeClusterResponse, ElectLeadersRequest, ElectLeadersResponse, LeaderElected, LeaderNotElected,
    NodeState as WireNodeState, PartitionReassignment, ReassignPartitionRequest, ReassignPartitionResponse,
    RebalanceReplicasRequest, RebalanceReplicasResponse, RemoveNodeRequest, RemoveNodeResponse,
    ReplicaMove as WireReplicaMove, SetReplicationThrottleRequest, SetReplicationThrottleResponse,
};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::metadata::NodeState;
use super::preferred_leaders::ElectionScope;
use super::Controller;
use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// How long a follower waits for the leader's answer before answering from its own replica.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ClusterAdminService {
    /// `None` for a single node without peers.
    controller: Option<Arc<Controller>>,
    config: Arc<BrokerConfig>,
    /// The address this node listens on (with the real port), shown for a single node.
    listen_address: String,
    /// Changing the cluster (membership, leaders, replica placement) needs ALTER on the cluster, as Kafka's
    /// ElectLeaders and AlterPartitionReassignments do; describing it needs nothing, as Kafka's DescribeCluster.
    authorizer: Arc<crate::auth::Authorizer>,
}

impl ClusterAdminService {
    pub fn server(
        controller: Option<Arc<Controller>>,
        config: Arc<BrokerConfig>,
        listen_address: String,
        authorizer: Arc<crate::auth::Authorizer>,
    ) -> ClusterAdminServer<Self> {
        ClusterAdminServer::new(Self::new(controller, config, listen_address, authorizer))
    }

    /// The service itself, for a caller in this process (the console) that calls its handlers directly.
    pub fn new(
        controller: Option<Arc<Controller>>,
        config: Arc<BrokerConfig>,
        listen_address: String,
        authorizer: Arc<crate::auth::Authorizer>,
    ) -> Self {
        Self { controller, config, listen_address, authorizer }
    }

    /// ALTER on the cluster for the caller, checked on the node asked before anything is forwarded.
    fn authorize_alter<T>(&self, request: &Request<T>) -> Result<(), Status> {
        use crate::auth::acl::{Operation, Resource};
        let principal = crate::service::principal_of(request);
        self.authorizer.check(&principal, Operation::Alter, &Resource::cluster()).map_err(BrokerError::from)?;
        Ok(())
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
                rack: self.config.rack.clone(),
                raft_log_end: None,
            }],
            removed_node_ids: Vec::new(),
            replication_throttle_bytes_per_sec: None,
            quorum_ack_age_ms: None,
            is_quorum_lost: false,
            raft_high_watermark: None,
            moving: Vec::new(),
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
    let super::QuorumContact { ack_age_ms: quorum_ack_age_ms, is_lost: is_quorum_lost } =
        controller.quorum_contact(&metrics);
    // What each member holds of the quorum's log: the leader knows what every member acknowledged, any node what
    // it holds itself.
    let own_log_end = metrics.last_log_index.map_or(0, |index| index + 1);
    let acknowledged = metrics.replication.as_ref().filter(|_| is_leader);
    let raft_log_end = |node_id: u64| {
        if node_id == controller.node_id {
            return Some(own_log_end);
        }
        let matched = acknowledged?.get(&node_id)?;
        Some(matched.as_ref().map_or(0, |log_id| log_id.index + 1))
    };
    let nodes = controller
        .members()
        .into_iter()
        .map(|(node_id, address)| super::Peer { node_id, address })
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
                rack: record.and_then(|r| r.rack.clone()),
                raft_log_end: raft_log_end(peer.node_id),
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
        removed_node_ids: metadata.removed_nodes.iter().copied().collect(),
        replication_throttle_bytes_per_sec: metadata.replication_throttle_bytes_per_sec,
        quorum_ack_age_ms,
        is_quorum_lost,
        raft_high_watermark: Some(metrics.last_applied.map_or(0, |log_id| log_id.index + 1)),
        moving: moving(&metadata),
    }
}

/// Each partition the metadata records a move of: the replicas it had, and the target.
fn moving(metadata: &super::metadata::ClusterMetadata) -> Vec<PartitionReassignment> {
    metadata
        .reassignments()
        .filter_map(|(topic, partition, placed)| {
            let moving = placed.reassignment.as_ref()?;
            Some(PartitionReassignment {
                topic: topic.to_owned(),
                partition,
                previous_replica_ids: placed
                    .replicas
                    .iter()
                    .copied()
                    .filter(|id| !moving.adding.contains(id))
                    .collect(),
                replica_ids: moving.target.clone(),
            })
        })
        .collect()
}

/// The cluster as the controller leader sees it, asked on behalf of `caller`: this node's own view when it leads,
/// or when the leader is unknown or does not answer in time (`answered_by_leader` then false).
pub async fn describe_by_leader(
    controller: &Controller,
    caller: crate::auth::forwarded::ForwardedCaller,
) -> DescribeClusterResponse {
    let local = local_view(controller);
    if local.answered_by_leader {
        return local;
    }
    let Some(leader_id) = local.controller_leader_id else { return local };
    leader_view(controller, leader_id, caller).await.unwrap_or(local)
}

/// The controller leader's id and address, when this node is not the leader and knows who is; `None` on the leader.
fn leader_elsewhere(controller: &Controller) -> Result<Option<(u64, String)>, Status> {
    let metrics = controller.raft.metrics().borrow().clone();
    let leader = metrics.current_leader.ok_or_else(|| crate::error::BrokerError::ControllerUnavailable {
        reason: "no controller leader is elected (is a majority of the voters up?)".into(),
    })?;
    if leader == controller.node_id {
        return Ok(None);
    }
    let address = metrics.membership_config.membership().get_node(&leader).map(|node| node.addr.clone());
    let address = address.ok_or_else(|| crate::error::BrokerError::ControllerUnavailable {
        reason: format!("controller leader {leader} has no address"),
    })?;
    Ok(Some((leader, address)))
}

/// A client of the controller leader's `ClusterAdmin`, for a call to forward there.
fn leader_client(
    controller: &Controller,
    address: &str,
) -> Result<ClusterAdminClient<crate::tls::PeerChannel>, Status> {
    let channel = crate::tls::channel_to(address, &controller.config).map_err(|e| {
        Status::from(crate::error::BrokerError::ControllerUnavailable {
            reason: format!("bad controller leader address {address}: {e}"),
        })
    })?;
    Ok(ClusterAdminClient::new(channel))
}

/// Forwards a call to the controller leader `(id, address)`, as `call` makes it, and stops waiting for it once
/// raft here no longer names that leader. Why: a leader frozen, cut off or killed after the call went to it
/// would hold the caller for the call's whole timeout (30 s by default), where the other voters elect a new one
/// in about a second. The caller gets UNAVAILABLE and tries again, then reaching the new leader. The old leader
/// may or may not have applied the call; every call forwarded here may be made again.
async fn forward<T, R, Call, Answer>(
    controller: &Controller,
    (leader_id, address): (u64, String),
    request: Request<T>,
    call: Call,
) -> Result<Response<R>, Status>
where
    Call: FnOnce(ClusterAdminClient<crate::tls::PeerChannel>, Request<T>) -> Answer,
    Answer: std::future::Future<Output = Result<Response<R>, Status>>,
{
    let mut metrics = controller.raft.metrics();
    let answer = call(leader_client(controller, &address)?, forwarded(request));
    let deposed = async {
        while metrics.borrow_and_update().current_leader == Some(leader_id) {
            if metrics.changed().await.is_err() {
                // Raft has stopped (the node is shutting down): the call's own timeout decides.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        answer = answer => answer,
        () = deposed => Err(BrokerError::ControllerUnavailable {
            reason: format!(
                "controller leader {leader_id} stopped leading while this call waited for it (it may or may not \
                 have been applied); try again"
            ),
        }
        .into()),
    }
}

/// Asks the leader for its view; `None` when it cannot be had in time.
async fn leader_view(
    controller: &Controller,
    leader_id: u64,
    caller: crate::auth::forwarded::ForwardedCaller,
) -> Option<DescribeClusterResponse> {
    let metrics = controller.raft.metrics().borrow().clone();
    let address = metrics.membership_config.membership().get_node(&leader_id)?.addr.clone();
    let mut client = ClusterAdminClient::new(crate::tls::channel_to(&address, &controller.config).ok()?);
    let mut request = Request::new(DescribeClusterRequest { local_only: true });
    caller.send_on(request.metadata_mut());
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
        if request.get_ref().local_only {
            return Ok(Response::new(local_view(controller)));
        }
        let caller = crate::auth::forwarded::ForwardedCaller::of(&request);
        Ok(Response::new(describe_by_leader(controller, caller).await))
    }

    async fn add_node(&self, request: Request<AddNodeRequest>) -> Result<Response<AddNodeResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.add_node(r).await }).await;
        }
        let AddNodeRequest { node_id, address } = request.into_inner();
        let added = controller.add_node(node_id, address.trim()).await.map_err(Status::from)?;
        Ok(Response::new(AddNodeResponse { is_voter: added.is_voter, voter_ids: added.voters.into_iter().collect() }))
    }

    async fn remove_node(&self, request: Request<RemoveNodeRequest>) -> Result<Response<RemoveNodeResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.remove_node(r).await }).await;
        }
        let removed = controller.remove_node(request.into_inner().node_id).await.map_err(Status::from)?;
        let moved = removed
            .moved
            .into_iter()
            .map(|m| WireReplicaMove { topic: m.topic, partition: m.partition, from_node_id: m.from, to_node_id: m.to })
            .collect();
        Ok(Response::new(RemoveNodeResponse { moved, voter_ids: removed.voters.into_iter().collect() }))
    }

    async fn elect_leaders(
        &self,
        request: Request<ElectLeadersRequest>,
    ) -> Result<Response<ElectLeadersResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_election_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.elect_leaders(r).await }).await;
        }
        let ElectLeadersRequest { topic, partition } = request.into_inner();
        let scope = match (topic.as_deref(), partition) {
            (None, None) => ElectionScope::All,
            (Some(topic), None) => ElectionScope::Topic(topic),
            (Some(topic), Some(partition)) => ElectionScope::Partition(topic, partition),
            (None, Some(_)) => {
                return Err(BrokerError::invalid("partition", "a partition needs its topic").into());
            }
        };
        let elected = controller.elect_preferred_leaders(scope).await.map_err(Status::from)?;
        let not_elected = elected
            .not_moved
            .into_iter()
            .map(|n| LeaderNotElected { topic: n.topic, partition: n.partition, reason: n.reason.to_string() })
            .collect();
        let elected = elected
            .moved
            .into_iter()
            .map(|(m, leader_epoch)| LeaderElected {
                topic: m.topic,
                partition: m.partition,
                previous_leader_id: m.from,
                leader_id: m.to,
                leader_epoch,
            })
            .collect();
        Ok(Response::new(ElectLeadersResponse { elected, not_elected }))
    }

    async fn reassign_partition(
        &self,
        request: Request<ReassignPartitionRequest>,
    ) -> Result<Response<ReassignPartitionResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.reassign_partition(r).await }).await;
        }
        let ReassignPartitionRequest { topic, partition, replica_ids, no_wait } = request.into_inner();
        let done =
            controller.reassign_partition(&topic, partition, replica_ids, !no_wait).await.map_err(Status::from)?;
        Ok(Response::new(reassigned(done)))
    }

    async fn cancel_reassignment(
        &self,
        request: Request<CancelReassignmentRequest>,
    ) -> Result<Response<ReassignPartitionResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.cancel_reassignment(r).await })
                .await;
        }
        let CancelReassignmentRequest { topic, partition } = request.into_inner();
        let done = controller.cancel_reassignment(&topic, partition).await.map_err(BrokerError::from)?;
        Ok(Response::new(reassigned(done)))
    }

    async fn rebalance_replicas(
        &self,
        request: Request<RebalanceReplicasRequest>,
    ) -> Result<Response<RebalanceReplicasResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_refusal()) };
        if let Some(leader) = leader_elsewhere(controller)? {
            return forward(controller, leader, request, |mut c, r| async move { c.rebalance_replicas(r).await }).await;
        }
        let wait = !request.get_ref().no_wait;
        let moved = controller.rebalance_replicas(wait).await.map_err(Status::from)?;
        let moved = moved
            .into_iter()
            .map(|(topic, partition, done)| PartitionReassignment {
                topic,
                partition,
                previous_replica_ids: done.previous,
                replica_ids: done.replicas,
            })
            .collect();
        Ok(Response::new(RebalanceReplicasResponse { moved }))
    }

    async fn set_replication_throttle(
        &self,
        request: Request<SetReplicationThrottleRequest>,
    ) -> Result<Response<SetReplicationThrottleResponse>, Status> {
        self.authorize_alter(&request)?;
        let Some(controller) = &self.controller else { return Err(single_node_throttle_refusal()) };
        let SetReplicationThrottleRequest { bytes_per_sec } = request.into_inner();
        let changed = controller.set_replication_throttle(bytes_per_sec).await.map_err(Status::from)?;
        Ok(Response::new(SetReplicationThrottleResponse {
            previous_bytes_per_sec: changed.previous_bytes_per_sec,
            bytes_per_sec: changed.bytes_per_sec,
        }))
    }
}

/// A single node replicates nothing: there is no replica move to throttle.
pub(crate) fn single_node_throttle_refused() -> BrokerError {
    BrokerError::MembershipRefused {
        reason: "this node runs alone (started without --peers): it replicates nothing, so there is no replica \
                 move to throttle"
            .into(),
    }
}

fn single_node_throttle_refusal() -> Status {
    Status::from(single_node_throttle_refused())
}

/// A single node leads every partition it has: there is no other replica to hand a leadership to.
pub(crate) fn single_node_election_refused() -> BrokerError {
    BrokerError::MembershipRefused {
        reason: "this node runs alone (started without --peers): it leads every partition, and there is no other \
                 replica to elect"
            .into(),
    }
}

/// A single node (no `--peers`) has no membership or replica placement to change.
pub(crate) fn single_node_refused() -> BrokerError {
    BrokerError::MembershipRefused {
        reason: "this node runs alone (started without --peers): there is no cluster membership to change; start \
                 nodes with --peers to form a cluster"
            .into(),
    }
}

fn single_node_election_refusal() -> Status {
    Status::from(single_node_election_refused())
}

fn single_node_refusal() -> Status {
    Status::from(single_node_refused())
}

/// The request, as sent on to the leader: the caller's deadline goes with it (tonic turns `grpc-timeout` back
/// into the request's timeout), and its bearer token or principal (`auth/forwarded.rs`), so the leader
/// authorizes the same user.
fn forwarded<T>(request: Request<T>) -> Request<T> {
    let timeout = request.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
    let caller = crate::auth::forwarded::ForwardedCaller::of(&request);
    let mut forwarded = Request::new(request.into_inner());
    caller.send_on(forwarded.metadata_mut());
    if let Some(timeout) = timeout {
        forwarded.set_timeout(timeout);
    }
    forwarded
}

/// gRPC's `grpc-timeout` header: digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// The answer to a move or its cancel: the replicas before and after, and who leads now.
fn reassigned(done: super::reassignment::PartitionReassigned) -> ReassignPartitionResponse {
    ReassignPartitionResponse {
        previous_replica_ids: done.previous,
        replica_ids: done.replicas,
        isr: done.isr,
        leader_id: done.leader,
        leader_epoch: done.leader_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_call_carries_the_callers_token_and_deadline() {
        let mut request = Request::new(RemoveNodeRequest { node_id: 3 });
        request.metadata_mut().insert("authorization", "Bearer rill_abc".parse().expect("ascii"));
        request.metadata_mut().insert("grpc-timeout", "1500m".parse().expect("ascii"));
        let sent = forwarded(request);
        assert_eq!(sent.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer rill_abc"));
        let timeout = sent.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        assert_eq!(timeout, Some(Duration::from_millis(1500)));
        let anonymous = forwarded(Request::new(RemoveNodeRequest { node_id: 3 }));
        assert!(anonymous.metadata().get("authorization").is_none());
        let header = anonymous.metadata().get(crate::auth::forwarded::FORWARDED_PRINCIPAL);
        assert_eq!(header.and_then(|v| v.to_str().ok()), Some("User:ANONYMOUS"), "never the node's own principal");
    }
}
