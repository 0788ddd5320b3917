//! The internal `rill.internal.v1.Controller` service: raft RPCs handed to openraft, heartbeats to the
//! session table. Mounted on the node's listener only when the node has peers, as [`ControllerRoute`]: the
//! generated server, but for `Replicate`, whose answers go out without tonic's encode copy
//! (`replication/frames.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use rill_protocol::grpc_codec::SizedProstCodec;
use rill_protocol::internal::controller_server::{Controller as ControllerRpc, ControllerServer};
use rill_protocol::internal::{
    EpochEndReply, EpochEndRequest, HeartbeatReply, HeartbeatRequest, IdentifyReply, IdentifyRequest, RaftReply,
    RaftRequest, ReplicaFetch,
};
use serde::Serialize;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::metadata::Command;
use super::network::MAX_RAFT_MESSAGE_BYTES;
use super::sessions::HeartbeatRefused;
use super::{Controller, NodeId, TypeConfig};

pub struct ControllerService {
    controller: Arc<Controller>,
    replication: Arc<crate::replication::Replication>,
}

impl Controller {
    /// The internal service, ready for the node's router: raft, heartbeats, proposals, and the replication
    /// streams `replication` serves.
    pub fn rpc_service(self: &Arc<Self>, replication: Arc<crate::replication::Replication>) -> ControllerRoute {
        let generated = ControllerServer::new(ControllerService {
            controller: Arc::clone(self),
            replication: Arc::clone(&replication),
        })
        .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        ControllerRoute { generated, replication }
    }
}

const REPLICATE_PATH: &str = "/rill.internal.v1.Controller/Replicate";

/// The internal service as the server mounts it: `Replicate` answered here, every other method by the generated
/// server. The wire bytes are the generated server's (see `replication/frames.rs`), so either end may be older.
#[derive(Clone)]
pub struct ControllerRoute {
    generated: ControllerServer<ControllerService>,
    replication: Arc<crate::replication::Replication>,
}

impl NamedService for ControllerRoute {
    const NAME: &'static str = <ControllerServer<ControllerService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for ControllerRoute {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != REPLICATE_PATH {
            return Box::pin(self.generated.call(request));
        }
        let answered = replicate(&self.replication, request);
        Box::pin(async move { Ok(answered.unwrap_or_else(|status| status.into_http())) })
    }
}

/// Serves one follower's `Replicate` stream: its fetches decoded as tonic would, the answers as
/// [`ReplicaDataBody`](crate::replication::frames::ReplicaDataBody) chunks.
fn replicate(
    replication: &Arc<crate::replication::Replication>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Status> {
    if let Some(encoding) = request.headers().get("grpc-encoding").filter(|e| *e != "identity") {
        return Err(Status::unimplemented(format!(
            "replication fetches compressed with {encoding:?} are not supported; send identity-encoded messages"
        )));
    }
    let decoder = SizedProstCodec::<rill_protocol::internal::ReplicaData, ReplicaFetch>::default().decoder();
    let fetches = Streaming::new_request(decoder, request.into_body(), None, Some(MAX_RAFT_MESSAGE_BYTES));
    let answers = replication.serve_follower(fetches);
    let body = crate::replication::frames::ReplicaDataBody::new(answers, MAX_RAFT_MESSAGE_BYTES);
    let mut http = http::Response::new(Body::new(body));
    http.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    Ok(http)
}

impl ControllerService {
    /// Refuses a sender from another cluster: its raft messages would mix two clusters' logs.
    fn check_cluster(&self, sender_cluster_id: &str, sender: NodeId) -> Result<(), Status> {
        match self.controller.cluster_id.get() {
            Some(ours) if !sender_cluster_id.is_empty() && sender_cluster_id != ours => {
                Err(Status::failed_precondition(format!(
                    "node {sender} belongs to cluster {sender_cluster_id}, but node {} (at {}) belongs to cluster \
                     {ours}: its data dir is another cluster's; start it with a fresh data dir",
                    self.controller.node_id, self.controller.address
                )))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a sender whose peers differ: its membership is not ours.
    fn check_peers(&self, request: &RaftRequest) -> Result<(), Status> {
        let ours = super::peers::format_peers(&self.controller.peers());
        if request.peers != ours {
            return Err(Status::failed_precondition(format!(
                "node {} was started with peers {}, but node {} with peers {ours}; every node needs the same peers",
                request.from_node_id, request.peers, self.controller.node_id
            )));
        }
        Ok(())
    }

    /// Refuses a vote request from a node removed from the cluster: a stale process or data dir must not
    /// campaign in the membership it left. Only votes: a controller leader that removes itself goes on
    /// replicating until the membership without it commits, and its AppendEntries must still land after a
    /// follower appended that membership (a retried or lost ack otherwise leaves the leader unable to commit
    /// it, and `remove-node` waiting, until the followers elect a new leader). A removed node's stale
    /// AppendEntries are refused by raft itself (an older term), and its heartbeat stops it (`heartbeat`).
    fn check_not_removed(&self, sender: NodeId) -> Result<(), Status> {
        // A node being removed stays in the membership until the change commits (it may be the leader doing it).
        let is_removed = self.controller.metadata().removed_nodes.contains(&sender);
        if is_removed && !self.controller.members().contains_key(&sender) {
            return Err(Status::failed_precondition(super::probe::removed_message(sender)));
        }
        Ok(())
    }

    fn decode<T: serde::de::DeserializeOwned>(request: &RaftRequest) -> Result<T, Status> {
        serde_json::from_slice(&request.payload_json)
            .map_err(|err| Status::invalid_argument(format!("undecodable raft message: {err}")))
    }
}

fn reply<T: Serialize>(outcome: &T) -> Result<Response<RaftReply>, Status> {
    let payload_json =
        serde_json::to_vec(outcome).map_err(|err| Status::internal(format!("cannot encode raft reply: {err}")))?.into();
    Ok(Response::new(RaftReply { payload_json }))
}

#[tonic::async_trait]
impl ControllerRpc for ControllerService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        self.check_peers(&request)?;
        self.controller.raft_contact.heard(request.from_node_id, Instant::now());
        let rpc: AppendEntriesRequest<TypeConfig> = Self::decode(&request)?;
        reply(&self.controller.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        self.check_peers(&request)?;
        self.check_not_removed(request.from_node_id)?;
        self.controller.raft_contact.heard(request.from_node_id, Instant::now());
        let rpc: VoteRequest<NodeId> = Self::decode(&request)?;
        reply(&self.controller.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        self.check_peers(&request)?;
        self.controller.raft_contact.heard(request.from_node_id, Instant::now());
        let rpc: InstallSnapshotRequest<TypeConfig> = Self::decode(&request)?;
        reply(&self.controller.raft.install_snapshot(rpc).await)
    }

    async fn identify(&self, _request: Request<IdentifyRequest>) -> Result<Response<IdentifyReply>, Status> {
        Ok(Response::new(IdentifyReply {
            node_id: self.controller.node_id,
            incarnation: self.controller.incarnation,
            cluster_id: self.controller.cluster_id.get().unwrap_or_default(),
            peers: super::peers::format_peers(&self.controller.peers()),
            removed_node_ids: self.controller.metadata().removed_nodes.iter().copied().collect(),
        }))
    }

    async fn propose(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        self.check_peers(&request)?;
        let command: Command = Self::decode(&request)?;
        let metrics = self.controller.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.controller.node_id) {
            return Err(Status::unavailable(format!("node {} is not the controller leader", self.controller.node_id)));
        }
        let outcome = self.controller.commit(command).await.map_err(Status::from)?;
        reply(&outcome)
    }

    type ReplicateStream = crate::replication::ReplicaDataStream;

    // Reached only where the generated server is mounted without `ControllerRoute`, which answers this method
    // itself: the same stream, encoded by tonic.

    async fn replicate(
        &self,
        request: Request<tonic::Streaming<ReplicaFetch>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        Ok(Response::new(self.replication.serve_follower(request.into_inner())))
    }

    async fn offsets_for_leader_epoch(
        &self,
        request: Request<EpochEndRequest>,
    ) -> Result<Response<EpochEndReply>, Status> {
        Ok(Response::new(self.replication.epoch_end(request.into_inner())?))
    }

    async fn transaction(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        let call: crate::transactions::remote::Call = Self::decode(&request)?;
        let node = self.replication.node().map_err(Status::from)?;
        reply(&crate::transactions::remote::serve(&node, call).await)
    }

    async fn share(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.from_node_id)?;
        let call: crate::share_groups::remote::Call = Self::decode(&request)?;
        let node = self.replication.node().map_err(Status::from)?;
        reply(&crate::share_groups::remote::serve(&node, call).await)
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatReply>, Status> {
        let request = request.into_inner();
        self.check_cluster(&request.cluster_id, request.node_id)?;
        if self.controller.metadata().removed_nodes.contains(&request.node_id) {
            return Err(Status::failed_precondition(super::probe::removed_message(request.node_id)));
        }
        let members = self.controller.members();
        if !members.contains_key(&request.node_id) {
            let listed: Vec<u64> = members.keys().copied().collect();
            return Err(Status::failed_precondition(format!(
                "node {} is not a member of the cluster (members: {}); it was removed, or was never added (rill \
                 cluster add-node)",
                request.node_id,
                super::reassign::join_ids(&listed)
            )));
        }
        // Checked as `--rack` was: a peer of another version must not put a name in the metadata that this
        // version's tables and logs would not show as it is.
        if let Some(Err(reason)) = request.rack.as_deref().map(crate::config::check_rack) {
            return Err(Status::invalid_argument(format!("node {}'s rack {reason}", request.node_id)));
        }
        let heard = self.controller.sessions.heard(
            request.node_id,
            &request.address,
            request.rack.as_deref(),
            request.incarnation,
            Instant::now(),
        );
        match heard {
            Ok(()) => {
                for suspect in request.suspects {
                    self.controller.suspect(suspect);
                }
                Ok(Response::new(HeartbeatReply {}))
            }
            Err(refused @ HeartbeatRefused::DuplicateNodeId { .. }) => Err(Status::already_exists(refused.to_string())),
            Err(HeartbeatRefused::NotLeader) => {
                Err(Status::unavailable(format!("node {} is not the controller leader", self.controller.node_id)))
            }
        }
    }
}
