//! `--peers`: the nodes of a cluster's controller quorum as `ID@HOST:PORT`, and the checks a node makes of its
//! own cluster settings before it starts.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{BrokerConfig, ConfigError};

/// Controller quorums of these sizes are allowed: odd, so a quorum survives the loss of `(n - 1) / 2` nodes, and
/// small, because every voter takes part in every metadata change.
pub const QUORUM_SIZES: [usize; 3] = [1, 3, 5];

/// One node of the cluster: its id and the `host:port` the other nodes reach it at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    pub node_id: u64,
    pub address: String,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_id, self.address)
    }
}

impl FromStr for Peer {
    type Err = String;

    /// `ID@HOST:PORT`, e.g. `2@127.0.0.1:9093` or `3@broker-3.internal:9092`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (id, address) =
            text.split_once('@').ok_or_else(|| format!("peer {text:?} is not ID@HOST:PORT (e.g. 1@127.0.0.1:9092)"))?;
        let node_id = id
            .parse::<u64>()
            .map_err(|_| format!("peer {text:?}: node id {id:?} is not a whole number from 0 to 2^64-1"))?;
        let (host, port) =
            address.rsplit_once(':').ok_or_else(|| format!("peer {text:?}: address {address:?} has no :PORT"))?;
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("peer {text:?}: {host:?} is not a host name or IP address"));
        }
        match port.parse::<u16>() {
            Ok(port) if port != 0 => {}
            _ => return Err(format!("peer {text:?}: port {port:?} is not a number from 1 to 65535")),
        }
        Ok(Peer { node_id, address: address.to_owned() })
    }
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated `--peers` list (order and surrounding spaces do not matter).
pub fn parse_peers(text: &str) -> Result<Vec<Peer>, String> {
    text.split(',').filter(|part| !part.trim().is_empty()).map(str::parse).collect()
}

/// `1@a:1,2@b:2`, sorted by node id: the form messages and `cluster.toml` use.
pub fn format_peers(peers: &[Peer]) -> String {
    let mut sorted = peers.to_vec();
    sorted.sort();
    sorted.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Checks `node_id`, `peers` and the heartbeat settings: a node id needs peers that list it, ids and addresses
/// are unique, and the quorum has 1, 3 or 5 voters.
pub fn validate(config: &BrokerConfig) -> Result<(), ConfigError> {
    let bad = |setting, reason: String| Err(ConfigError { setting, reason });
    if config.node_heartbeat_interval_ms == 0 {
        return bad("node_heartbeat_interval_ms", "must be at least 1".into());
    }
    if config.node_session_timeout_ms <= config.node_heartbeat_interval_ms {
        return bad(
            "node_session_timeout_ms",
            format!(
                "{} must be longer than node_heartbeat_interval_ms ({}), or every node would be fenced between two \
                 heartbeats",
                config.node_session_timeout_ms, config.node_heartbeat_interval_ms
            ),
        );
    }
    if !config.join.is_empty() {
        if !config.peers.is_empty() {
            return bad(
                "join",
                "and peers are exclusive: peers forms a new cluster, join adds this node to a running one".into(),
            );
        }
        if config.node_id.is_none() {
            return bad("node_id", "is required with join: which new node id is this node?".into());
        }
        if let Some(bad_address) = config.join.iter().find(|a| crate::config::parse_advertise(a).is_err()) {
            return bad("join", format!("{bad_address:?} is not HOST:PORT of a running node of the cluster"));
        }
        return Ok(());
    }
    if config.peers.is_empty() {
        return Ok(());
    }
    let Some(node_id) = config.node_id else {
        return bad("node_id", "is required with peers: which of the peers is this node?".into());
    };
    let mut ids = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for peer in &config.peers {
        if !ids.insert(peer.node_id) {
            return bad("peers", format!("node id {} is listed twice; each node needs its own id", peer.node_id));
        }
        if !addresses.insert(peer.address.as_str()) {
            return bad("peers", format!("address {} is listed twice; each node needs its own address", peer.address));
        }
    }
    if !ids.contains(&node_id) {
        return bad(
            "node_id",
            format!("{node_id} is not among the peers ({}); list this node in peers too", format_peers(&config.peers)),
        );
    }
    if !QUORUM_SIZES.contains(&config.peers.len()) {
        return bad("peers", format!("{} nodes listed; a controller quorum has 1, 3 or 5 nodes", config.peers.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(node_id: Option<u64>, peers: &str) -> BrokerConfig {
        BrokerConfig { node_id, peers: parse_peers(peers).unwrap(), ..BrokerConfig::default() }
    }

    #[test]
    fn a_peers_list_parses_ids_and_host_names() {
        let peers = parse_peers("1@127.0.0.1:9092, 2@broker-2.internal:9093,3@[::1]:9094").unwrap();
        assert_eq!(peers[1], Peer { node_id: 2, address: "broker-2.internal:9093".into() });
        assert_eq!(peers[2].address, "[::1]:9094");
        assert_eq!(format_peers(&peers), "1@127.0.0.1:9092,2@broker-2.internal:9093,3@[::1]:9094");
    }

    #[test]
    fn a_malformed_peer_is_refused_with_the_form_expected() {
        for bad in ["127.0.0.1:9092", "x@127.0.0.1:9092", "1@127.0.0.1", "1@127.0.0.1:0", "1@:9092", "1@h:port"] {
            let err = parse_peers(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn a_node_id_must_be_among_the_peers_which_must_be_unique() {
        let named = |c: BrokerConfig| c.validate().map_err(|e| (e.setting, e.reason));
        assert!(named(config(Some(1), "1@a:1,2@b:2,3@c:3")).is_ok());
        assert_eq!(named(config(Some(4), "1@a:1,2@b:2,3@c:3")).unwrap_err().0, "node_id");
        assert_eq!(named(config(None, "1@a:1,2@b:2,3@c:3")).unwrap_err().0, "node_id");
        let (setting, reason) = named(config(Some(1), "1@a:1,1@b:2,3@c:3")).unwrap_err();
        assert_eq!((setting, reason.contains("node id 1 is listed twice")), ("peers", true));
        let (setting, reason) = named(config(Some(1), "1@a:1,2@a:1,3@c:3")).unwrap_err();
        assert_eq!((setting, reason.contains("address a:1 is listed twice")), ("peers", true));
        assert_eq!(named(config(Some(1), "1@a:1,2@b:2")).unwrap_err().0, "peers");
    }

    #[test]
    fn a_toml_file_sets_the_node_id_and_peers_and_refuses_a_malformed_peer() {
        let text = "node_id = 2\npeers = [\"1@a:1\", \"2@b:2\", \"3@c:3\"]\nnode_session_timeout_ms = 3000\n";
        let config: BrokerConfig = toml::from_str(text).unwrap();
        assert_eq!((config.node_id, config.peers.len(), config.node_session_timeout_ms), (Some(2), 3, 3000));
        assert!(config.validate().is_ok());
        let err = toml::from_str::<BrokerConfig>("peers = [\"1@a\"]").unwrap_err().to_string();
        assert!(err.contains("has no :PORT"), "{err}");
    }

    #[test]
    fn a_session_timeout_must_outlast_the_heartbeat_interval() {
        let config =
            BrokerConfig { node_heartbeat_interval_ms: 1000, node_session_timeout_ms: 1000, ..BrokerConfig::default() };
        assert_eq!(config.validate().unwrap_err().setting, "node_session_timeout_ms");
    }

    #[test]
    fn join_needs_a_node_id_and_no_peers() {
        let joining =
            |node_id, peers: &str| BrokerConfig { join: vec!["127.0.0.1:9092".into()], ..config(node_id, peers) };
        assert!(joining(Some(4), "").validate().is_ok());
        assert_eq!(joining(None, "").validate().unwrap_err().setting, "node_id");
        assert_eq!(joining(Some(4), "1@a:1").validate().unwrap_err().setting, "join");
    }

    #[test]
    fn without_peers_a_node_id_alone_is_allowed() {
        assert!(config(Some(7), "").validate().is_ok());
        assert!(config(None, "").validate().is_ok());
    }
}
