//! The cluster metadata the controller quorum replicates: the cluster id, the nodes and their liveness, and
//! (from the next step on) topic placement. Changed only by applying a [`Command`] that raft committed, so every
//! replica that applied the same log holds the same metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node's liveness as the controller leader judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Heartbeating within `node_session_timeout_ms`.
    Alive,
    /// Silent for longer than `node_session_timeout_ms`; its leaderships (next step) move elsewhere.
    Fenced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: u64,
    pub address: String,
    pub state: NodeState,
    /// When the leader that wrote the current state decided it, by its wall clock (ms since the Unix epoch).
    /// Informational: no decision reads it, so clock skew between nodes cannot fence anyone.
    pub state_since_ms: i64,
}

/// Where a partition's replicas live. Defined now so the snapshot format has room for it; placement itself
/// arrives with replication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// Node ids holding a replica, the preferred leader first.
    pub replicas: Vec<u64>,
    pub leader: Option<u64>,
    /// Bumped on every leader change, so a deposed leader's writes can be told apart.
    pub leader_epoch: u32,
    /// The in-sync replicas.
    pub isr: Vec<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPlacement {
    /// Indexed by partition number.
    pub partitions: Vec<PartitionPlacement>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Chosen once, by the first controller leader.
    pub cluster_id: Option<String>,
    pub nodes: BTreeMap<u64, NodeRecord>,
    pub topics: BTreeMap<String, TopicPlacement>,
}

/// A change to the metadata, as raft log entries carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster id if none is set yet (the first committed one wins).
    SetClusterId { cluster_id: String },
    /// The node heartbeats: registers it, or brings it back from fenced.
    MarkAlive { node_id: u64, address: String, at_ms: i64 },
    /// The node's session expired.
    Fence { node_id: u64, at_ms: i64 },
}

/// What applying a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub changed: bool,
}

impl ClusterMetadata {
    /// Applies one committed command. Deterministic: depends only on the metadata and the command.
    pub fn apply(&mut self, command: &Command) -> CommandOutcome {
        let changed = match command {
            Command::SetClusterId { cluster_id } => {
                let is_unset = self.cluster_id.is_none();
                if is_unset {
                    self.cluster_id = Some(cluster_id.clone());
                }
                is_unset
            }
            Command::MarkAlive { node_id, address, at_ms } => {
                let record = NodeRecord {
                    node_id: *node_id,
                    address: address.clone(),
                    state: NodeState::Alive,
                    state_since_ms: *at_ms,
                };
                match self.nodes.get_mut(node_id) {
                    Some(existing) if existing.state == NodeState::Alive && existing.address == *address => false,
                    Some(existing) => {
                        *existing = record;
                        true
                    }
                    None => {
                        self.nodes.insert(*node_id, record);
                        true
                    }
                }
            }
            Command::Fence { node_id, at_ms } => match self.nodes.get_mut(node_id) {
                Some(existing) if existing.state == NodeState::Alive => {
                    existing.state = NodeState::Fenced;
                    existing.state_since_ms = *at_ms;
                    true
                }
                _ => false,
            },
        };
        CommandOutcome { changed }
    }

    pub fn state_of(&self, node_id: u64) -> Option<NodeState> {
        self.nodes.get(&node_id).map(|n| n.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(node_id: u64) -> Command {
        Command::MarkAlive { node_id, address: format!("h:{node_id}"), at_ms: 1 }
    }

    #[test]
    fn the_first_cluster_id_committed_wins() {
        let mut metadata = ClusterMetadata::default();
        assert!(metadata.apply(&Command::SetClusterId { cluster_id: "a".into() }).changed);
        assert!(!metadata.apply(&Command::SetClusterId { cluster_id: "b".into() }).changed);
        assert_eq!(metadata.cluster_id.as_deref(), Some("a"));
    }

    #[test]
    fn a_fenced_node_comes_back_alive_when_it_heartbeats_again() {
        let mut metadata = ClusterMetadata::default();
        assert!(metadata.apply(&alive(2)).changed);
        assert!(!metadata.apply(&alive(2)).changed);
        assert!(metadata.apply(&Command::Fence { node_id: 2, at_ms: 5 }).changed);
        assert_eq!(metadata.state_of(2), Some(NodeState::Fenced));
        assert!(!metadata.apply(&Command::Fence { node_id: 2, at_ms: 6 }).changed);
        assert!(metadata.apply(&alive(2)).changed);
        assert_eq!(metadata.state_of(2), Some(NodeState::Alive));
    }

    #[test]
    fn fencing_an_unknown_node_changes_nothing() {
        let mut metadata = ClusterMetadata::default();
        assert!(!metadata.apply(&Command::Fence { node_id: 9, at_ms: 1 }).changed);
        assert!(metadata.nodes.is_empty());
    }
}
