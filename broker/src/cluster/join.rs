//! `--join HOST:PORT,...`: the first start of a node that grows a running cluster. It asks the nodes named who
//! they are (`Identify`), takes the cluster's id and founding peers from the first that has formed, and
//! records them in `cluster.toml` with its own id and address. It then starts raft without proposing any
//! membership and waits: `rill cluster add-node` makes it a learner, then perhaps a voter (`membership.rs`).
//!
//! Recording the cluster's founding peers (not a list of its own) is what lets the raft messages' peers check
//! keep working: every node of one cluster carries the same list, however the membership changed since.

use super::identity::{self, ClusterIdentity, IdentityError};
use super::peers::parse_peers;
use crate::config::BrokerConfig;

/// The identity a fresh data dir takes to join the cluster that one of `config.join` belongs to.
pub async fn identity_from_cluster(config: &BrokerConfig) -> Result<ClusterIdentity, IdentityError> {
    let refuse = |reason: String| IdentityError::CannotJoin { reason };
    let node_id = config.node_id.ok_or_else(|| refuse("--join needs --node-id".into()))?;
    let address = own_address(config).map_err(refuse)?;
    let mut unanswered = Vec::new();
    for target in &config.join {
        let Some(reply) = super::probe::identify(target, config).await else {
            unanswered.push(format!("{target} (no answer)"));
            continue;
        };
        if reply.cluster_id.is_empty() {
            unanswered.push(format!("{target} (its cluster has not formed yet)"));
            continue;
        }
        let peers = parse_peers(&reply.peers).map_err(|e| refuse(format!("{target} answered bad peers: {e}")))?;
        if peers.iter().any(|p| p.node_id == node_id) || reply.removed_node_ids.contains(&node_id) {
            return Err(refuse(format!(
                "node id {node_id} is, or was, a member of cluster {} (founding peers {}); a node id is never \
                 reused: pick a new one",
                reply.cluster_id, reply.peers
            )));
        }
        let joined = ClusterIdentity {
            node_id,
            peers,
            cluster_id: Some(reply.cluster_id.clone()),
            members: Vec::new(),
            address: Some(address.clone()),
        };
        identity::store(&config.data_dir, &joined)?;
        tracing::info!(node_id, %address, cluster_id = %reply.cluster_id, via = %target, "set up to join the cluster");
        return Ok(joined);
    }
    Err(refuse(format!(
        "no node of a formed cluster answered at {}; start the cluster first, and name its nodes' addresses",
        unanswered.join(", ")
    )))
}

/// Where the other nodes reach this one: `--advertise`, else `--listen` when it names a host and port they can
/// dial.
fn own_address(config: &BrokerConfig) -> Result<String, String> {
    if let Some(advertise) = &config.advertise {
        return Ok(advertise.clone());
    }
    if config.listen.ip().is_unspecified() || config.listen.port() == 0 {
        return Err(format!(
            "--listen {} is not an address other nodes can dial; give --advertise HOST:PORT, the address to add \
             this node at",
            config.listen
        ));
    }
    Ok(config.listen.to_string())
}
