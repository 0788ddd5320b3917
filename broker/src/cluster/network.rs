//! openraft's network over the internal `rill.internal.v1.Controller` service: one lazily connected tonic
//! channel per target node; openraft's request and reply types travel as JSON (see the .proto for why).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How often a peer that stays unreachable is logged again.
const UNREACHABLE_REMINDER: Duration = Duration::from_secs(60);
/// Calls to an unreachable peer are retried every half second or so: a failure after a longer silence follows a
/// time when this node called nobody (a follower between elections), so it starts a new outage.
const NEW_OUTAGE_AFTER: Duration = Duration::from_secs(10);

/// Makes a [`Connection`] per target node.
#[derive(Clone)]
pub struct Network {
    pub node_id: NodeId,
    pub cluster_id: ClusterIdCell,
    /// This node's peers, formatted as `RaftRequest.peers` carries them.
    pub peers: String,
    /// How to dial the peers (TLS or not).
    pub config: Arc<BrokerConfig>,
    pub reachability: Arc<PeerReachability>,
}

/// Which peers fail their raft RPCs, shared by every connection to a peer (openraft makes one per replication
/// stream and per election). A peer is logged when it stops answering, every minute while it stays silent, and
/// when it answers again: openraft's own lines, one per failed RPC (several a second per peer down), are off
/// by default (`cli/src/telemetry.rs`).
#[derive(Default)]
pub struct PeerReachability(Mutex<HashMap<NodeId, Outage>>);

struct Outage {
    since: Instant,
    reported: Instant,
    last_failed: Instant,
}

/// What a failed call to a peer logged.
#[derive(Debug, PartialEq, Eq)]
enum Logged {
    Unreachable,
    StillUnreachable,
    Nothing,
}

impl PeerReachability {
    fn failed(&self, target: NodeId, address: &str, error: &dyn std::fmt::Display) {
        self.failed_at(Instant::now(), target, address, error);
    }

    fn failed_at(&self, now: Instant, target: NodeId, address: &str, error: &dyn std::fmt::Display) -> Logged {
        let mut outages = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match outages.get_mut(&target) {
            Some(outage) if now.duration_since(outage.last_failed) < NEW_OUTAGE_AFTER => {
                outage.last_failed = now;
                if now.duration_since(outage.reported) < UNREACHABLE_REMINDER {
                    return Logged::Nothing;
                }
                outage.reported = now;
                let unreachable_s = now.duration_since(outage.since).as_secs();
                tracing::warn!(node_id = target, %address, %error, unreachable_s, "a controller peer is still unreachable");
                Logged::StillUnreachable
            }
            _ => {
                outages.insert(target, Outage { since: now, reported: now, last_failed: now });
                tracing::warn!(node_id = target, %address, %error, "cannot reach a controller peer; retrying");
                Logged::Unreachable
            }
        }
    }

    fn answered(&self, target: NodeId, address: &str) {
        let mut outages = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(outage) = outages.remove(&target) {
            let unreachable_ms = outage.since.elapsed().as_millis() as u64;
            tracing::info!(node_id = target, %address, unreachable_ms, "a controller peer answers again");
        }
    }
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
        Connection { from: self.clone(), target, address: node.addr.clone(), client }
    }
}

/// The raft RPCs to one target node.
pub struct Connection {
    from: Network,
    target: NodeId,
    address: String,
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
        match &reply {
            Ok(_) => self.from.reachability.answered(self.target, &self.address),
            Err(status) => self.from.reachability.failed(self.target, &self.address, status),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_peer_is_logged_when_it_goes_every_minute_it_stays_and_anew_after_a_silence() {
        let reach = PeerReachability::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let fail = |ms| reach.failed_at(at(ms), 2, "a:1", &"refused");
        assert_eq!(fail(0), Logged::Unreachable);
        // Retried every 500 ms for a minute and a half: one reminder, at the minute.
        let logged: Vec<Logged> = (1..180).map(|i| fail(i * 500)).filter(|l| *l != Logged::Nothing).collect();
        assert_eq!(logged, [Logged::StillUnreachable]);
        assert_eq!(reach.failed_at(at(0), 3, "b:1", &"refused"), Logged::Unreachable, "each peer on its own");
        // Nobody called it for a while (this node stopped leading): the next failure is a new outage.
        assert_eq!(fail(89_500 + 10_000), Logged::Unreachable);
        reach.answered(2, "a:1");
        assert_eq!(fail(100_000), Logged::Unreachable, "an answer ends the outage");
    }
}
