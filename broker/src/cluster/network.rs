//! openraft's network over the internal `rill.internal.v1.Controller` service: one lazily connected tonic
//! channel per target node; openraft's request and reply types travel as JSON (see the .proto for why).

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use rill_protocol::internal::controller_client::ControllerClient;
use rill_protocol::internal::RaftRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::BrokerConfig;
use crate::tls::{channel_to, PeerChannel};

use super::{ClusterIdCell, NodeId, TypeConfig};

/// Largest raft message in either direction: a snapshot chunk (openraft sends 3 MiB by default) plus framing.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 16 << 20;

/// Makes a [`Connection`] per target node.
#[derive(Clone)]
pub struct Network {
    pub node_id: NodeId,
    pub cluster_id: ClusterIdCell,
    /// This node's peers, formatted as `RaftRequest.peers` carries them.
    pub peers: String,
    /// How to dial the peers (TLS or not).
    pub config: std::sync::Arc<BrokerConfig>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        let client = channel_to(&node.addr, &self.config).map(|channel| {
            ControllerClient::new(channel)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        });
        let client = client.map_err(|err| format!("bad address {:?} of node {target}: {err}", node.addr));
        Connection { from: self.clone(), target, client }
    }
}

/// The raft RPCs to one target node.
pub struct Connection {
    from: Network,
    target: NodeId,
    /// An address that is not a valid URI fails every call (validation of `--peers` makes that unlikely).
    client: Result<ControllerClient<PeerChannel>, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(client) => client,
            Err(reason) => return Err(RPCError::Unreachable(Unreachable::new(&TransportError(reason.clone())))),
        };
        let payload_json =
            serde_json::to_vec(request).map_err(|err| RPCError::Network(NetworkError::new(&err)))?.into();
        let mut grpc_request = tonic::Request::new(RaftRequest {
            cluster_id: self.from.cluster_id.get().unwrap_or_default(),
            from_node_id: self.from.node_id,
            payload_json,
            peers: self.from.peers.clone(),
        });
        grpc_request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(grpc_request).await,
            Rpc::Vote => client.vote(grpc_request).await,
            Rpc::InstallSnapshot => client.install_snapshot(grpc_request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            // Down, restarting or not listening yet, or refusing this node for good (another cluster, other
            // peers, a removed node's vote): openraft backs off instead of retrying at once, which it does for a
            // network error, hundreds of times a second.
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::FailedPrecondition => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let outcome: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.into_inner().payload_json)
            .map_err(|err| RPCError::Network(NetworkError::new(&err)))?;
        outcome.map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
