//! `<data>/cluster.toml`: which cluster a data dir belongs to and which node of it this is. Written atomically on
//! the first start with `--peers` and checked on every later start, so a data dir is never opened as another
//! node, with another peers list, or as a single node after it joined a cluster.
//!
//! ```toml
//! node_id = 2
//! peers = ["1@127.0.0.1:9092", "2@127.0.0.1:9093", "3@127.0.0.1:9094"]
//! cluster_id = "5f0c...e1"   # once the first controller leader has chosen it
//! members = ["1@127.0.0.1:9092", "3@127.0.0.1:9094", "4@127.0.0.1:9095"]  # once the membership changed
//! address = "127.0.0.1:9095" # a node that joined with --join: the address it was added at
//! ```
//!
//! `peers` is the list the cluster was formed with and never changes (raft messages carry it, so two clusters
//! formed from different lists never mix); `members` is the raft membership as this node last applied it
//! (`rill cluster add-node`/`remove-node` change it). A restart may name either list in `--peers`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::peers::{format_peers, Peer};
use crate::error::BrokerError;

pub const IDENTITY_FILE: &str = "cluster.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterIdentity {
    pub node_id: u64,
    /// Sorted by node id.
    pub peers: Vec<Peer>,
    /// Absent until the controller quorum has formed and this node has learned the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The controller membership (voters and learners) as this node last applied it, sorted by node id; empty
    /// until it differs from `peers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Peer>,
    /// The address other nodes reach this node at, for a node that joined a running cluster (`--join`) and so
    /// is not among `peers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl ClusterIdentity {
    /// Whether `--peers` as given agrees with this data dir: the list the cluster was formed with, or its
    /// current membership.
    fn accepts_peers(&self, configured: &[Peer]) -> bool {
        let configured = format_peers(configured);
        configured == format_peers(&self.peers)
            || (!self.members.is_empty() && configured == format_peers(&self.members))
    }

    /// The address this node is reached at: its entry in the peers, or the one it joined with.
    pub fn own_address(&self) -> Option<String> {
        let listed = self.peers.iter().find(|p| p.node_id == self.node_id).map(|p| p.address.clone());
        listed.or_else(|| self.address.clone())
    }

    /// Whether this node is one of the peers the cluster was formed with (a joined node is not, and never
    /// proposes the initial membership).
    pub fn is_founding_member(&self) -> bool {
        self.peers.iter().any(|p| p.node_id == self.node_id)
    }
}

/// Why a data dir cannot be used with the settings given.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "data dir {data_dir} belongs to node {recorded} of its cluster, but this node was started with node id \
         {configured}; start it with --node-id {recorded}, or use another data dir"
    )]
    OtherNodeId { data_dir: PathBuf, recorded: u64, configured: u64 },
    #[error(
        "data dir {data_dir} was set up with peers {recorded}{members}, but this node was started with peers \
         {configured}; start every node with the peers its cluster was formed with, or its current members"
    )]
    OtherPeers { data_dir: PathBuf, recorded: String, members: String, configured: String },
    #[error("cannot join the cluster: {reason}")]
    CannotJoin { reason: String },
    #[error(
        "data dir {data_dir} belongs to node {node_id} of a cluster (peers {peers}); start it with --node-id \
         {node_id} --peers {peers}, or use another data dir for a single node"
    )]
    ClusterDataDirWithoutPeers { data_dir: PathBuf, node_id: u64, peers: String },
    #[error(
        "data dir {data_dir} holds the topics of a single node ({topics}), which a cluster node would neither serve \
         nor keep: start it without --peers (and --join) to use them, or give the cluster node another data dir"
    )]
    SingleNodeTopics { data_dir: PathBuf, topics: String },
    #[error("cannot use {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(transparent)]
    Io(#[from] BrokerError),
}

pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_FILE)
}

/// Reads `cluster.toml`, if the data dir has one.
pub fn load(data_dir: &Path) -> Result<Option<ClusterIdentity>, IdentityError> {
    let path = identity_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(IdentityError::Unreadable { path, reason: err.to_string() }),
    };
    toml::from_str(&text).map(Some).map_err(|err| IdentityError::Unreadable { path, reason: err.to_string() })
}

/// Writes `identity` to the data dir atomically (a crash leaves the old file or the new one, never a mix).
pub fn store(data_dir: &Path, identity: &ClusterIdentity) -> Result<(), IdentityError> {
    let text = toml::to_string(identity).map_err(|err| IdentityError::Unreadable {
        path: identity_path(data_dir),
        reason: format!("cannot encode: {err}"),
    })?;
    crate::meta::write_atomically(&identity_path(data_dir), text.as_bytes())?;
    Ok(())
}

/// Checks the data dir against this start's settings and records them on the first start with peers. Returns
/// the identity in force, or `None` for a single node (no peers) on a data dir that never joined a cluster.
///
/// `is_joining` (`--join`): a data dir that already belongs to a cluster is reopened as the node it records; a
/// fresh one is left for [`super::join`] to set up.
pub fn check_or_record(
    data_dir: &Path,
    node_id: Option<u64>,
    peers: &[Peer],
    is_joining: bool,
) -> Result<Option<ClusterIdentity>, IdentityError> {
    let recorded = load(data_dir)?;
    let (Some(configured_id), false) = (node_id, peers.is_empty()) else {
        if let (Some(recorded), Some(_), true) = (&recorded, node_id, is_joining) {
            return check_joined(data_dir, recorded.clone(), node_id);
        }
        return match recorded {
            Some(recorded) => Err(IdentityError::ClusterDataDirWithoutPeers {
                data_dir: data_dir.to_owned(),
                node_id: recorded.node_id,
                peers: format_peers(&recorded.peers),
            }),
            None => Ok(None),
        };
    };
    let mut configured_peers = peers.to_vec();
    configured_peers.sort();
    match recorded {
        Some(recorded) if recorded.node_id != configured_id => Err(IdentityError::OtherNodeId {
            data_dir: data_dir.to_owned(),
            recorded: recorded.node_id,
            configured: configured_id,
        }),
        Some(recorded) if !recorded.accepts_peers(&configured_peers) => Err(IdentityError::OtherPeers {
            data_dir: data_dir.to_owned(),
            recorded: format_peers(&recorded.peers),
            members: if recorded.members.is_empty() {
                String::new()
            } else {
                format!(" (members now {})", format_peers(&recorded.members))
            },
            configured: format_peers(&configured_peers),
        }),
        Some(recorded) => Ok(Some(recorded)),
        None => {
            refuse_single_node_topics(data_dir)?;
            let identity = ClusterIdentity {
                node_id: configured_id,
                peers: configured_peers,
                cluster_id: None,
                members: Vec::new(),
                address: None,
            };
            store(data_dir, &identity)?;
            Ok(Some(identity))
        }
    }
}

/// A data dir becomes a cluster node's only if it holds no topic of its own: the cluster's metadata would not
/// list them, and a topic created later under one of their names replaces that copy.
pub fn refuse_single_node_topics(data_dir: &Path) -> Result<(), IdentityError> {
    let dir = crate::meta::topics_dir(data_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(IdentityError::Unreadable { path: dir, reason: err.to_string() }),
    };
    let mut topics: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".toml").map(str::to_owned))
        .filter(|name| !name.starts_with(crate::registry::RESERVED_PREFIX))
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    topics.sort();
    Err(IdentityError::SingleNodeTopics { data_dir: data_dir.to_owned(), topics: topics.join(", ") })
}

fn check_joined(
    data_dir: &Path,
    recorded: ClusterIdentity,
    node_id: Option<u64>,
) -> Result<Option<ClusterIdentity>, IdentityError> {
    match node_id {
        Some(configured) if configured != recorded.node_id => {
            Err(IdentityError::OtherNodeId { data_dir: data_dir.to_owned(), recorded: recorded.node_id, configured })
        }
        _ => Ok(Some(recorded)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::peers::parse_peers;

    #[test]
    fn a_first_cluster_start_over_a_single_nodes_topics_is_refused_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let peers = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        let topics = crate::meta::topics_dir(dir.path());
        std::fs::create_dir_all(&topics).unwrap();
        // The replicated committed offsets' metadata is a cluster node's own.
        std::fs::write(topics.join("__consumer_offsets.toml"), "").unwrap();
        std::fs::write(topics.join("orders.toml"), "").unwrap();
        std::fs::write(topics.join("audit.toml"), "").unwrap();
        let refused = check_or_record(dir.path(), Some(1), &peers, false).unwrap_err().to_string();
        assert!(refused.contains("(audit, orders)"), "{refused}");
        assert!(load(dir.path()).unwrap().is_none(), "no identity recorded");
        std::fs::remove_file(topics.join("orders.toml")).unwrap();
        std::fs::remove_file(topics.join("audit.toml")).unwrap();
        assert!(check_or_record(dir.path(), Some(1), &peers, false).unwrap().is_some());
    }

    #[test]
    fn the_first_start_records_the_identity_and_a_restart_with_the_same_settings_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let peers = parse_peers("3@c:3,1@a:1,2@b:2").unwrap();
        let first = check_or_record(dir.path(), Some(2), &peers, false).unwrap().unwrap();
        assert_eq!(format_peers(&first.peers), "1@a:1,2@b:2,3@c:3");
        let reordered = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        assert_eq!(check_or_record(dir.path(), Some(2), &reordered, false).unwrap(), Some(first));
    }

    #[test]
    fn a_restart_as_another_node_or_with_other_peers_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let peers = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        check_or_record(dir.path(), Some(2), &peers, false).unwrap();
        let err = check_or_record(dir.path(), Some(3), &peers, false).unwrap_err().to_string();
        assert!(err.contains("node 2") && err.contains("node id 3"), "{err}");
        let other = parse_peers("1@a:1,2@b:2,3@d:3").unwrap();
        let err = check_or_record(dir.path(), Some(2), &other, false).unwrap_err().to_string();
        assert!(err.contains("3@c:3") && err.contains("3@d:3"), "{err}");
        let err = check_or_record(dir.path(), None, &[], false).unwrap_err().to_string();
        assert!(err.contains("--node-id 2 --peers 1@a:1,2@b:2,3@c:3"), "{err}");
    }

    #[test]
    fn a_restart_may_name_the_founding_peers_or_the_current_members_but_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let founding = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        let mut identity = check_or_record(dir.path(), Some(3), &founding, false).unwrap().unwrap();
        identity.members = parse_peers("1@a:1,3@c:3,4@d:4").unwrap();
        store(dir.path(), &identity).unwrap();
        assert!(check_or_record(dir.path(), Some(3), &founding, false).is_ok());
        assert!(check_or_record(dir.path(), Some(3), &parse_peers("4@d:4,1@a:1,3@c:3").unwrap(), false).is_ok());
        let err = check_or_record(dir.path(), Some(3), &parse_peers("1@a:1,3@c:3,5@e:5").unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("members now 1@a:1,3@c:3,4@d:4") && err.contains("5@e:5"), "{err}");
    }

    #[test]
    fn a_joined_node_restarts_from_its_data_dir_as_the_node_it_joined_as() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_or_record(dir.path(), Some(4), &[], true).unwrap(), None, "a fresh dir is left to join");
        let joined = ClusterIdentity {
            node_id: 4,
            peers: parse_peers("1@a:1,2@b:2,3@c:3").unwrap(),
            cluster_id: Some("c".into()),
            members: Vec::new(),
            address: Some("d:4".into()),
        };
        store(dir.path(), &joined).unwrap();
        let reopened = check_or_record(dir.path(), Some(4), &[], true).unwrap().unwrap();
        assert_eq!((reopened.own_address(), reopened.is_founding_member()), (Some("d:4".into()), false));
        assert!(check_or_record(dir.path(), Some(5), &[], true).unwrap_err().to_string().contains("node 4"));
    }

    #[test]
    fn a_single_node_data_dir_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_or_record(dir.path(), None, &[], false).unwrap(), None);
        assert!(!identity_path(dir.path()).exists());
    }
}
