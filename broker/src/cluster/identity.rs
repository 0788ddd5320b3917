//! `<data>/cluster.toml`: which cluster a data dir belongs to and which node of it this is. Written atomically on
//! the first start with `--peers` and checked on every later start, so a data dir is never opened as another
//! node, with another peers list, or as a single node after it joined a cluster.
//!
//! ```toml
//! node_id = 2
//! peers = ["1@127.0.0.1:9092", "2@127.0.0.1:9093", "3@127.0.0.1:9094"]
//! cluster_id = "5f0c...e1"   # once the first controller leader has chosen it
//! ```

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
        "data dir {data_dir} was set up with peers {recorded}, but this node was started with peers {configured}; \
         every node must be started with the peers its cluster was formed with"
    )]
    OtherPeers { data_dir: PathBuf, recorded: String, configured: String },
    #[error(
        "data dir {data_dir} belongs to node {node_id} of a cluster (peers {peers}); start it with --node-id \
         {node_id} --peers {peers}, or use another data dir for a single node"
    )]
    ClusterDataDirWithoutPeers { data_dir: PathBuf, node_id: u64, peers: String },
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
pub fn check_or_record(
    data_dir: &Path,
    node_id: Option<u64>,
    peers: &[Peer],
) -> Result<Option<ClusterIdentity>, IdentityError> {
    let recorded = load(data_dir)?;
    let (Some(configured_id), false) = (node_id, peers.is_empty()) else {
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
        Some(recorded) if format_peers(&recorded.peers) != format_peers(&configured_peers) => {
            Err(IdentityError::OtherPeers {
                data_dir: data_dir.to_owned(),
                recorded: format_peers(&recorded.peers),
                configured: format_peers(&configured_peers),
            })
        }
        Some(recorded) => Ok(Some(recorded)),
        None => {
            let identity = ClusterIdentity { node_id: configured_id, peers: configured_peers, cluster_id: None };
            store(data_dir, &identity)?;
            Ok(Some(identity))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::peers::parse_peers;

    #[test]
    fn the_first_start_records_the_identity_and_a_restart_with_the_same_settings_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let peers = parse_peers("3@c:3,1@a:1,2@b:2").unwrap();
        let first = check_or_record(dir.path(), Some(2), &peers).unwrap().unwrap();
        assert_eq!(format_peers(&first.peers), "1@a:1,2@b:2,3@c:3");
        let reordered = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        assert_eq!(check_or_record(dir.path(), Some(2), &reordered).unwrap(), Some(first));
    }

    #[test]
    fn a_restart_as_another_node_or_with_other_peers_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let peers = parse_peers("1@a:1,2@b:2,3@c:3").unwrap();
        check_or_record(dir.path(), Some(2), &peers).unwrap();
        let err = check_or_record(dir.path(), Some(3), &peers).unwrap_err().to_string();
        assert!(err.contains("node 2") && err.contains("node id 3"), "{err}");
        let other = parse_peers("1@a:1,2@b:2,3@d:3").unwrap();
        let err = check_or_record(dir.path(), Some(2), &other).unwrap_err().to_string();
        assert!(err.contains("3@c:3") && err.contains("3@d:3"), "{err}");
        let err = check_or_record(dir.path(), None, &[]).unwrap_err().to_string();
        assert!(err.contains("--node-id 2 --peers 1@a:1,2@b:2,3@c:3"), "{err}");
    }

    #[test]
    fn a_single_node_data_dir_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_or_record(dir.path(), None, &[]).unwrap(), None);
        assert!(!identity_path(dir.path()).exists());
    }
}
