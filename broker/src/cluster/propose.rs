//! Metadata changes asked for by any node: the controller leader commits a [`Command`] through raft; a
//! follower forwards it to the leader over the internal `Propose` call. Topic creation and deletion, and the
//! partition leaders' ISR changes, all come this way.

use std::time::Duration;

use rill_protocol::internal::controller_client::ControllerClient;
use rill_protocol::internal::RaftRequest;

use super::metadata::{ClusterMetadata, Command, CommandOutcome};
use super::Controller;
use crate::error::BrokerError;
use crate::tls::channel_to;

/// How long a proposal may take to commit: a few raft round trips, or an election.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Controller {
    /// Commits `command` through the controller leader, wherever it is, and says what applying it did.
    pub async fn propose(&self, command: Command) -> Result<CommandOutcome, BrokerError> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader.ok_or_else(|| BrokerError::ControllerUnavailable {
            reason: "no controller leader is elected (is a majority of the peers up?)".into(),
        })?;
        if leader == self.node_id {
            return self.commit(command).await;
        }
        let address =
            metrics.membership_config.membership().get_node(&leader).map(|node| node.addr.clone()).ok_or_else(
                // A leader that just removed itself is still named until the others elect a new one.
                || BrokerError::ControllerUnavailable {
                    reason: format!("controller leader {leader} left the membership; an election is under way"),
                },
            )?;
        let unavailable = |reason: String| BrokerError::ControllerUnavailable { reason };
        let channel = channel_to(&address, &self.config)
            .map_err(|e| unavailable(format!("bad leader address {address}: {e}")))?;
        let payload_json = serde_json::to_vec(&command).map_err(|e| BrokerError::Internal(e.to_string()))?;
        let reply = ControllerClient::new(channel)
            .propose(self.internal_request(payload_json))
            .await
            .map_err(|status| unavailable(format!("controller leader {leader}: {}", status.message())))?;
        serde_json::from_slice(&reply.into_inner().payload_json)
            .map_err(|e| BrokerError::Internal(format!("undecodable proposal outcome: {e}")))
    }

    /// Sends a transaction call (`transactions::remote`, as JSON) to node `to` over the internal `Transaction`
    /// method, and returns its JSON answer.
    pub async fn call_transaction(&self, to: u64, payload_json: Vec<u8>) -> Result<Vec<u8>, BrokerError> {
        let metadata = self.metadata();
        let unavailable = |reason: String| BrokerError::ControllerUnavailable { reason };
        let address = metadata
            .address_of(to)
            .ok_or_else(|| unavailable(format!("node {to} has no known address (is it alive?)")))?
            .to_owned();
        let channel =
            channel_to(&address, &self.config).map_err(|e| unavailable(format!("bad address {address}: {e}")))?;
        let reply = ControllerClient::new(channel)
            .transaction(self.internal_request(payload_json))
            .await
            .map_err(|status| unavailable(format!("node {to} at {address}: {}", status.message())))?;
        Ok(reply.into_inner().payload_json.to_vec())
    }

    /// Sends a share group call (`share_groups::remote`, as JSON) to node `to` over the internal `Share` method,
    /// on the connection kept for that node, and returns its JSON answer.
    pub async fn call_share(&self, to: u64, payload_json: Vec<u8>) -> Result<Vec<u8>, BrokerError> {
        let unavailable = |reason: String| BrokerError::ControllerUnavailable { reason };
        let address = self
            .metadata()
            .address_of(to)
            .ok_or_else(|| unavailable(format!("node {to} has no known address (is it alive?)")))?
            .to_owned();
        let channel = {
            let mut channels = self.peer_channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match channels.get(&to).filter(|(at, _)| *at == address) {
                Some((_, channel)) => channel.clone(),
                None => {
                    let channel = channel_to(&address, &self.config)
                        .map_err(|e| unavailable(format!("bad address {address}: {e}")))?;
                    channels.insert(to, (address.clone(), channel.clone()));
                    channel
                }
            }
        };
        // A `Read` answer carries record batches: up to the internal message limit, not tonic's 4 MiB default.
        let reply = ControllerClient::new(channel)
            .max_decoding_message_size(super::network::MAX_RAFT_MESSAGE_BYTES)
            .share(self.internal_request(payload_json))
            .await
            .map_err(|status| unavailable(format!("node {to} at {address}: {}", status.message())))?;
        Ok(reply.into_inner().payload_json.to_vec())
    }

    /// A JSON payload as the internal service takes it: with this node's cluster id and peers, which the receiver
    /// checks, and bounded by [`PROPOSE_TIMEOUT`].
    fn internal_request(&self, payload_json: Vec<u8>) -> tonic::Request<RaftRequest> {
        let mut request = tonic::Request::new(RaftRequest {
            cluster_id: self.cluster_id.get().unwrap_or_default(),
            from_node_id: self.node_id,
            payload_json: payload_json.into(),
            peers: super::peers::format_peers(&self.peers()),
        });
        request.set_timeout(PROPOSE_TIMEOUT);
        request
    }

    /// This node's raft term while it is the controller leader.
    pub fn leader_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        (metrics.current_leader == Some(self.node_id)).then_some(metrics.current_term)
    }

    /// Commits `command` only if this node is the controller leader: never forwarded, so a caller that acts for
    /// the leader (the transaction coordinator) cannot write through another node.
    pub async fn commit_here(&self, command: Command) -> Result<CommandOutcome, BrokerError> {
        if self.leader_term().is_none() {
            return Err(BrokerError::ControllerUnavailable {
                reason: format!("node {} is no longer the controller leader", self.node_id),
            });
        }
        self.commit(command).await
    }

    /// On the leader: commits `command` and returns once it is applied here.
    pub(super) async fn commit(&self, command: Command) -> Result<CommandOutcome, BrokerError> {
        match tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(command)).await {
            Ok(Ok(written)) => Ok(written.data),
            Ok(Err(err)) => Err(BrokerError::ControllerUnavailable { reason: err.to_string() }),
            Err(_) => Err(BrokerError::ControllerUnavailable {
                reason: format!("not committed within {} ms", PROPOSE_TIMEOUT.as_millis()),
            }),
        }
    }

    /// Waits until this node's replica of the metadata satisfies `is_done` (a proposal committed elsewhere
    /// reaches it one raft round trip later); false on timeout.
    pub async fn wait_for_metadata(&self, is_done: impl Fn(&ClusterMetadata) -> bool) -> bool {
        let mut metadata = self.metadata.clone();
        let waited = tokio::time::timeout(PROPOSE_TIMEOUT, async {
            loop {
                if is_done(&metadata.borrow_and_update()) {
                    return true;
                }
                if metadata.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        waited.unwrap_or(false)
    }

    /// Every applied change of the metadata, from the current one on.
    pub fn watch_metadata(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<ClusterMetadata>> {
        self.metadata.clone()
    }
}
