//! Who may make a cluster's node-to-node calls (`/rill.internal.*`: raft, heartbeats, forwarded proposals,
//! the replication stream; docs/security.md, "Node-to-node calls").
//!
//! These calls share the client listener and bypass the ACLs (a replication stream reads any partition), so a
//! node must tell its peers from its clients. Two things identify a node:
//! - a client certificate, verified against `tls.client_ca`, whose principal is one of the node principals
//!   (the same rule as a forwarded principal's, [`super::forwarded::node_principals`]);
//! - the cluster secret (`auth.cluster_secret_file`), which every node sends in [`CLUSTER_SECRET`] on every
//!   call to a peer and compares in constant time.
//!
//! Invariant: when the listener verifies client certificates, or a cluster secret is set, an internal call
//! with neither is refused. With neither configured, a node cannot tell a peer from a client; that is
//! today's zero-config behaviour, kept while nothing else is protected (authorization off, authentication not
//! required), warned about on loopback and refused off it otherwise ([`check_node_identification`]).
//! The secret is never logged, answered, or kept in a `Debug` output.

use std::collections::HashSet;
use std::path::Path;

use subtle::ConstantTimeEq;

use super::Principal;
use crate::config::{BrokerConfig, ConfigError};

/// The header a node sends the cluster secret in, on every call to a peer.
pub const CLUSTER_SECRET: &str = "rill-cluster-secret";
/// The paths of the node-to-node calls.
pub const INTERNAL_PREFIX: &str = "/rill.internal.";
/// A secret shorter than this is guessable; `openssl rand -hex 32` makes a good one.
const MIN_SECRET_CHARS: usize = 16;
/// A file larger than this is not a secret file (a wrong path, say).
const MAX_SECRET_CHARS: usize = 4096;

/// What a node and its peers share; compared in constant time, never shown.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Reads the secret from `path`: the file's text without surrounding whitespace, visible ASCII (it goes in
    /// a header), at least [`MIN_SECRET_CHARS`] characters.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError { setting: "auth.cluster_secret_file", reason };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if bytes.len() > MAX_SECRET_CHARS {
            return Err(bad(format!("{} holds over {MAX_SECRET_CHARS} bytes: not a secret file", path.display())));
        }
        Self::parse(&bytes).map_err(|reason| bad(format!("{}: {reason}", path.display())))
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the secret is not text".to_owned())?.trim();
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the secret must be printable ASCII without spaces (openssl rand -hex 32)".to_owned());
        }
        if text.len() < MIN_SECRET_CHARS {
            return Err(format!(
                "the secret has {} characters; at least {MIN_SECRET_CHARS} are needed (openssl rand -hex 32)",
                text.len()
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// Whether `sent` is this secret, in time that depends on neither where they differ nor (beyond its
    /// length) on the secret.
    pub fn matches(&self, sent: &[u8]) -> bool {
        bool::from(self.0.as_bytes().ct_eq(sent))
    }

    /// The header value a node sends to its peers.
    pub fn header_value(&self) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
        let mut value: tonic::metadata::MetadataValue<_> =
            self.0.parse().expect("a parsed secret is visible ASCII, a valid header value");
        value.set_sensitive(true);
        value
    }
}

/// Why a node-to-node call was refused. The message is what the caller reads; it never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeCallRefused {
    #[error(
        "rill.internal calls are for the cluster's nodes only, and this connection shows no node's credential \
         (no client certificate, no cluster secret): a node presents a client certificate whose principal is one \
         of --node-principals (unset: this node's own certificate's), or sends the --cluster-secret-file secret"
    )]
    NoCredential,
    #[error(
        "rill.internal calls are for the cluster's nodes only: this connection's certificate is {connection}, \
         not one of the node principals (--node-principals; unset: this node's own certificate's principal), \
         and it sends no cluster secret (--cluster-secret-file)"
    )]
    NotANode { connection: String },
    #[error(
        "rill.internal calls are for the cluster's nodes only: the cluster secret sent is not this node's \
         (every node needs the same --cluster-secret-file)"
    )]
    WrongSecret,
}

impl NodeCallRefused {
    /// UNAUTHENTICATED when the caller showed nothing, PERMISSION_DENIED when what it showed is not a node's.
    pub fn status(&self) -> tonic::Status {
        let reason = match self {
            NodeCallRefused::NoCredential => rill_protocol::reason::Reason::Unauthenticated,
            _ => rill_protocol::reason::Reason::PermissionDenied,
        };
        reason.status(self.to_string())
    }
}

/// What came of the cluster secret a call sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretShown {
    /// It sent none, or this node has none to compare with (then a sent one proves nothing).
    Absent,
    /// It sent this node's.
    Matches,
    /// It sent another.
    Differs,
}

/// The rule a listener applies to every `/rill.internal.*` call.
#[derive(Debug, Clone)]
pub struct NodeCallGate {
    /// The listener verifies client certificates (`tls.client_ca`), so a node can show its own.
    is_certificate_checked: bool,
    node_principals: HashSet<String>,
    secret: Option<ClusterSecret>,
}

impl NodeCallGate {
    pub fn new(is_certificate_checked: bool, node_principals: &[String], secret: Option<ClusterSecret>) -> Self {
        Self { is_certificate_checked, node_principals: node_principals.iter().cloned().collect(), secret }
    }

    /// The gate `config` asks for; the secret file was checked by `BrokerConfig::validate`.
    pub fn from_config(config: &BrokerConfig) -> Result<Self, ConfigError> {
        let secret = config.auth.cluster_secret_file.as_deref().map(ClusterSecret::load).transpose()?;
        let is_certificate_checked = config.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some());
        Ok(Self::new(is_certificate_checked, &super::forwarded::node_principals(config), secret))
    }

    /// What `sent_secret` (the call's [`CLUSTER_SECRET`] header) shows: compared in constant time, as
    /// [`NodeCallGate::check`] does. A forwarded principal (`forwarded.rs`) is honoured on the same proof.
    pub fn secret_shown(&self, sent_secret: Option<&[u8]>) -> SecretShown {
        match (&self.secret, sent_secret) {
            (Some(secret), Some(sent)) if secret.matches(sent) => SecretShown::Matches,
            (Some(_), Some(_)) => SecretShown::Differs,
            _ => SecretShown::Absent,
        }
    }

    /// Whether a call that showed `sent_secret` over a connection whose verified client certificate maps to
    /// `connection` is a node's.
    pub fn check(&self, sent_secret: Option<&[u8]>, connection: Option<&Principal>) -> Result<(), NodeCallRefused> {
        let is_node_certificate = self.is_certificate_checked
            && connection.is_some_and(|principal| self.node_principals.contains(&principal.to_string()));
        if is_node_certificate {
            return Ok(());
        }
        match self.secret_shown(sent_secret) {
            SecretShown::Matches => return Ok(()),
            SecretShown::Differs => return Err(NodeCallRefused::WrongSecret),
            SecretShown::Absent if self.secret.is_none() && !self.is_certificate_checked => return Ok(()),
            SecretShown::Absent => {}
        }
        match connection {
            Some(principal) => Err(NodeCallRefused::NotANode { connection: principal.to_string() }),
            None => Err(NodeCallRefused::NoCredential),
        }
    }
}

/// Whether a cluster node can tell its peers from its clients, where it must: with authorization on or
/// authentication required, a client that reaches the port could otherwise raft-vote or read any partition
/// through the replication stream. Off loopback this refuses to start (unless `allow_insecure`); on loopback
/// it answers the warning to log.
pub fn check_node_identification(config: &BrokerConfig) -> Result<Option<String>, ConfigError> {
    let is_cluster = !config.peers.is_empty() || !config.join.is_empty();
    let is_protected = config.auth.authorization == super::AuthorizationMode::On || config.auth.require_auth;
    let is_certificate_checked = config.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some());
    if !is_cluster || !is_protected || is_certificate_checked || config.auth.cluster_secret_file.is_some() {
        return Ok(None);
    }
    let risk = "this cluster node cannot tell its peers from its clients: any client that reaches the port could \
                make node-to-node calls (raft votes, the replication stream that reads every partition) past the \
                ACLs. Identify the nodes by mutual TLS (--tls-client-ca, --node-principals) or a shared secret \
                (--cluster-secret-file, RILL_CLUSTER_SECRET_FILE, cluster_secret_file in [auth])";
    if config.listen.ip().is_loopback() {
        return Ok(Some(format!("{risk} (docs/security.md, \"Node-to-node calls\")")));
    }
    if config.auth.allow_insecure {
        return Ok(Some(format!("{risk}; listening on {} as --allow-insecure says", config.listen)));
    }
    Err(ConfigError {
        setting: "listen",
        reason: format!(
            "{} is not a loopback address, and {risk}, or pass --allow-insecure (RILL_ALLOW_INSECURE, \
             allow_insecure = true in [auth]) on a trusted network (docs/security.md)",
            config.listen
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ClusterSecret {
        ClusterSecret::parse(b"  0123456789abcdef0123\n").expect("a good secret")
    }

    #[test]
    fn the_secret_matches_only_itself_and_never_shows() {
        let secret = secret();
        assert!(secret.matches(b"0123456789abcdef0123"));
        for wrong in [&b""[..], b"0123456789abcdef012", b"0123456789abcdef01234", b"0123456789abcdef0124"] {
            assert!(!secret.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{secret:?}"), "ClusterSecret(..)");
        assert!(ClusterSecret::parse(b"short").expect_err("short").contains("at least 16"));
        assert!(ClusterSecret::parse(b"has a space in the middle").is_err());
        assert!(ClusterSecret::parse(b"\xff\xfe0123456789abcdef").is_err());
    }

    #[test]
    fn with_certificates_checked_only_a_nodes_certificate_or_the_secret_passes() {
        let node = Principal::User("node".into());
        let alice = Principal::User("alice".into());
        let gate = NodeCallGate::new(true, &["User:node".to_owned()], None);
        assert_eq!(gate.check(None, Some(&node)), Ok(()));
        let refused = gate.check(None, Some(&alice)).expect_err("a user's certificate");
        assert!(refused.to_string().contains("User:alice, not one of the node principals"), "{refused}");
        assert_eq!(refused.status().code(), tonic::Code::PermissionDenied);
        assert_eq!(gate.check(None, None), Err(NodeCallRefused::NoCredential));
        assert_eq!(gate.check(None, None).expect_err("none").status().code(), tonic::Code::Unauthenticated);
        assert!(gate.check(Some(b"0123456789abcdef0123"), Some(&alice)).is_err(), "no secret is set");

        let gate = NodeCallGate::new(true, &["User:node".to_owned()], Some(secret()));
        assert_eq!(gate.check(Some(b"0123456789abcdef0123"), Some(&alice)), Ok(()));
        assert_eq!(gate.check(Some(b"wrong"), None), Err(NodeCallRefused::WrongSecret));
        assert_eq!(gate.check(None, Some(&node)), Ok(()), "a node's certificate needs no secret");
    }

    #[test]
    fn with_a_secret_and_no_certificates_a_call_needs_the_secret() {
        let gate = NodeCallGate::new(false, &[], Some(secret()));
        assert_eq!(gate.check(Some(b"0123456789abcdef0123"), None), Ok(()));
        assert_eq!(gate.check(None, None), Err(NodeCallRefused::NoCredential));
        let wrong = gate.check(Some(b"0123456789abcdef0124"), None).expect_err("wrong secret");
        assert_eq!(wrong.status().code(), tonic::Code::PermissionDenied);
        assert!(!wrong.to_string().contains("0123"), "the message never holds a secret: {wrong}");
        // Neither configured: nothing tells a node from a client, as before (warned about at start).
        assert_eq!(NodeCallGate::new(false, &[], None).check(None, None), Ok(()));

        assert_eq!(gate.secret_shown(Some(b"0123456789abcdef0123")), SecretShown::Matches);
        assert_eq!(gate.secret_shown(Some(b"0123456789abcdef0124")), SecretShown::Differs);
        assert_eq!(gate.secret_shown(None), SecretShown::Absent);
        let unset = NodeCallGate::new(false, &[], None).secret_shown(Some(b"0123456789abcdef0123"));
        assert_eq!(unset, SecretShown::Absent, "with no secret set, a sent one proves nothing");
    }

    #[test]
    fn a_protected_cluster_node_without_node_credentials_warns_on_loopback_and_refuses_off_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = BrokerConfig::for_tests(dir.path());
        config.node_id = Some(1);
        config.peers = vec!["1@127.0.0.1:9092".parse().expect("peer")];
        assert_eq!(check_node_identification(&config), Ok(None), "zero config stays zero config");

        config.auth.authorization = super::super::AuthorizationMode::On;
        let warning = check_node_identification(&config).expect("loopback starts").expect("with a warning");
        assert!(warning.contains("--cluster-secret-file") && warning.contains("--tls-client-ca"), "{warning}");

        config.listen = "0.0.0.0:9092".parse().expect("address");
        let refused = check_node_identification(&config).expect_err("off loopback");
        assert!(refused.reason.contains("is not a loopback address") && refused.reason.contains("--allow-insecure"));
        config.auth.allow_insecure = true;
        assert!(check_node_identification(&config).expect("insecure allowed").is_some(), "still warned");

        config.auth.allow_insecure = false;
        config.auth.cluster_secret_file = Some(dir.path().join("secret"));
        assert_eq!(check_node_identification(&config), Ok(None));
        config.auth.cluster_secret_file = None;
        config.auth.authorization = super::super::AuthorizationMode::Off;
        config.auth.require_auth = true;
        assert!(check_node_identification(&config).is_err(), "required authentication is protected too");
        config.peers.clear();
        assert_eq!(check_node_identification(&config), Ok(None), "a single node serves no internal calls");
    }
}
