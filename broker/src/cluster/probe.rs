//! Before a node takes part in the quorum it asks every peer who answers there (`Identify`), so that a bad
//! setup is refused at start instead of mixing two clusters' logs or memberships:
//! - its own address answered by another process: the node id is already running elsewhere;
//! - a peer with another peers list: two memberships could form two quorums;
//! - a peer of another cluster (both having a cluster id): one of the data dirs is another cluster's;
//! - another node id at a peer's address: the peers list is wrong.
//!
//! Peers that cannot be reached are skipped: a node must start while others are down. The raft RPCs check the
//! cluster id and peers again on every call, for nodes that start in another order.

use std::time::Duration;

use rill_protocol::internal::controller_client::ControllerClient;
use rill_protocol::internal::{IdentifyReply, IdentifyRequest};

use super::peers::{format_peers, Peer};
use super::Controller;
use crate::tls::channel_to;

/// How long one peer may take to answer `Identify`.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) async fn identify(address: &str, config: &crate::BrokerConfig) -> Option<IdentifyReply> {
    let mut client = match channel_to(address, config) {
        Ok(channel) => ControllerClient::new(channel),
        Err(error) => {
            tracing::warn!(address, %error, "cannot dial a peer");
            return None;
        }
    };
    let mut request = tonic::Request::new(IdentifyRequest {});
    request.set_timeout(IDENTIFY_TIMEOUT);
    match tokio::time::timeout(IDENTIFY_TIMEOUT, client.identify(request)).await {
        Ok(Ok(reply)) => Some(reply.into_inner()),
        Ok(Err(status)) => {
            tracing::debug!(address, error = %status, "peer did not identify itself");
            None
        }
        Err(_) => None,
    }
}

/// Asks every peer at once (and this node's own address, for a node that joined later and is not among the
/// founding peers); the first disagreement found is the error.
pub async fn check_peers(controller: &Controller) -> Result<(), String> {
    let ours = format_peers(&controller.peers());
    let mut peers = controller.peers();
    if !peers.iter().any(|p| p.node_id == controller.node_id) {
        peers.push(Peer { node_id: controller.node_id, address: controller.address.clone() });
    }
    let replies = futures_join_all(peers.iter().cloned().map(|peer| {
        let config = std::sync::Arc::clone(&controller.config);
        async move {
            let reply = identify(&peer.address, &config).await;
            (peer, reply)
        }
    }))
    .await;
    for (peer, reply) in replies {
        let Some(reply) = reply else { continue };
        check_reply(controller, &peer, &reply, &ours)?;
    }
    Ok(())
}

fn check_reply(controller: &Controller, peer: &Peer, reply: &IdentifyReply, ours: &str) -> Result<(), String> {
    if reply.removed_node_ids.contains(&controller.node_id) {
        return Err(removed_message(controller.node_id));
    }
    if peer.node_id == controller.node_id {
        if reply.incarnation != controller.incarnation {
            return Err(format!(
                "node id {} is already running: another process answers at its address {} (as node {}); each node \
                 needs its own id and address",
                controller.node_id, peer.address, reply.node_id
            ));
        }
        return Ok(());
    }
    let is_same_cluster = controller.cluster_id.get().is_some_and(|own| own == reply.cluster_id);
    if reply.node_id != peer.node_id && is_same_cluster {
        // A founding peer's address taken over by a node added later: the membership has moved on.
        return Ok(());
    }
    if reply.node_id != peer.node_id {
        return Err(format!(
            "the peers list names {} as node {}, but node {} answers there",
            peer.address, peer.node_id, reply.node_id
        ));
    }
    if reply.peers != ours {
        return Err(format!(
            "node {} at {} was started with peers {}, but this node with peers {ours}; every node needs the same peers",
            peer.node_id, peer.address, reply.peers
        ));
    }
    if let Some(own_cluster) = controller.cluster_id.get() {
        if !reply.cluster_id.is_empty() && reply.cluster_id != own_cluster {
            return Err(format!(
                "data dir {} belongs to cluster {own_cluster}, but node {} at {} belongs to cluster {}; use a fresh \
                 data dir for this node",
                controller.config.data_dir.display(),
                peer.node_id,
                peer.address,
                reply.cluster_id
            ));
        }
    }
    Ok(())
}

/// Why a removed node may not come back, and what to do instead.
pub(super) fn removed_message(node_id: u64) -> String {
    format!(
        "node {node_id} was removed from the cluster (rill cluster remove-node) and may not rejoin: its replicas \
         were moved to other nodes. To bring this machine back, start it with a fresh data dir, a new --node-id \
         and --join, then run rill cluster add-node"
    )
}

/// Runs the futures concurrently and collects their outputs in order (a few peers: no need for a crate).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(output) = task.await {
            outputs.push(output);
        }
    }
    outputs
}
