//! Who a call one node forwards to another (the controller leader, a partition leader) acts for
//! (docs/security.md, "Forwarded calls").
//!
//! A bearer token is sent on as it came, and the node it reaches checks it as its own. A client certificate
//! cannot be sent on (its key stays with the client), so the forwarding node names the principal it
//! authenticated in [`FORWARDED_PRINCIPAL`] instead; without a credential it names `User:ANONYMOUS`, so the
//! receiving node never takes the forwarding node's own certificate for the caller.
//!
//! Invariant: a named principal is honoured only from a cluster node, as the node-to-node calls' gate
//! (`node_calls.rs`) knows one: a connection whose client certificate, verified in the TLS handshake against
//! `tls.client_ca`, maps to one of `auth.node_principals` (unset: this node's own certificate's,
//! [`node_principals`]), or a call carrying the cluster secret (`auth.cluster_secret_file`, compared in constant
//! time). A client cannot forge the header, since it would need a node's certificate and key or the secret. With
//! neither configured no caller is a node, so a forwarded `User:NAME` is refused (UNAUTHENTICATED, saying what
//! to configure), never taken on trust; a forwarded `User:ANONYMOUS` is taken from a connection with no
//! certificate principal, as that claims nothing the connection does not already have. A wrong secret is
//! refused whatever the header claims: it is a misconfigured node or a guess, and neither is trusted.

use std::collections::HashSet;

use super::node_calls::SecretShown;
use super::users::validate_name;
use super::Principal;

/// The header a forwarding node puts the caller's principal in (`User:NAME` or `User:ANONYMOUS`).
pub const FORWARDED_PRINCIPAL: &str = "rill-forwarded-principal";

/// The caller of a request, as a node sends it on with a call it forwards.
#[derive(Debug, Clone)]
pub enum ForwardedCaller {
    /// The client's `authorization` header, sent on as it came.
    Token(tonic::metadata::MetadataValue<tonic::metadata::Ascii>),
    /// A principal the client's token cannot prove to the next node: from its certificate, or anonymous.
    Principal(Principal),
}

impl ForwardedCaller {
    /// The caller of `request`: its token if it has one, else the principal its node authenticated.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        match request.metadata().get(http::header::AUTHORIZATION.as_str()) {
            Some(token) => ForwardedCaller::Token(token.clone()),
            None => ForwardedCaller::Principal(
                request.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous),
            ),
        }
    }

    /// Puts the caller on a request this node forwards.
    pub fn send_on(self, metadata: &mut tonic::metadata::MetadataMap) {
        match self {
            ForwardedCaller::Token(token) => {
                metadata.insert(http::header::AUTHORIZATION.as_str(), token);
            }
            ForwardedCaller::Principal(principal) => match principal.to_string().parse() {
                Ok(value) => {
                    metadata.insert(FORWARDED_PRINCIPAL, value);
                }
                // A user name is printable ASCII (`validate_name`), so this is not reached; if it were, the call
                // would go on without the header and the next node would refuse it rather than guess.
                Err(_) => tracing::warn!(%principal, "principal not sendable as a header: forwarded without it"),
            },
        }
    }
}

/// The node principals in effect: `auth.node_principals`, or, unset, this node's own certificate's principal
/// when it checks client certificates (a cluster whose nodes share a certificate name needs no setting). None
/// without a client CA: no connection then has a certificate principal to match.
pub fn node_principals(config: &crate::BrokerConfig) -> Vec<String> {
    if !config.auth.node_principals.is_empty() {
        return config.auth.node_principals.clone();
    }
    let Some(tls) = config.tls.as_ref().filter(|tls| tls.client_ca.is_some()) else { return Vec::new() };
    use rustls::pki_types::pem::PemObject;
    // The listener loaded the same file at start and refused to start without a usable one.
    let own = rustls::pki_types::CertificateDer::pem_file_iter(&tls.cert)
        .ok()
        .and_then(|mut certs| certs.next()?.ok())
        .and_then(|leaf| super::certificate::principal_of(&leaf));
    own.map(|principal| vec![principal.to_string()]).unwrap_or_default()
}

/// Why a forwarded principal was not honoured. The message is what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefused {
    #[error("a call carries a bearer token or a forwarded principal, not both")]
    WithToken,
    #[error("the forwarded principal {claimed:?} is not User:NAME with a valid user name")]
    Malformed { claimed: String },
    #[error(
        "a forwarded principal is honoured only from a cluster node: a connection whose client certificate \
         (checked against tls.client_ca) maps to one of auth.node_principals, or a call carrying the cluster \
         secret (auth.cluster_secret_file); this connection's {connection}, and it sends no cluster secret"
    )]
    NotANode { connection: String },
    #[error(
        "a forwarded principal is honoured only from a cluster node, and the cluster secret this call sent is \
         not this node's (every node needs the same auth.cluster_secret_file)"
    )]
    WrongSecret,
}

/// What a call showed of being a cluster node's: its verified client certificate's principal, and what came of
/// the cluster secret it sent.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub certificate: Option<&'a Principal>,
    pub secret: SecretShown,
}

/// The principal a request carrying `claimed` in [`FORWARDED_PRINCIPAL`] acts as, given `has_token` (it also
/// has an `authorization` header), what its `caller` showed and `node_principals`.
pub fn accept(
    claimed: &[u8],
    has_token: bool,
    caller: Caller<'_>,
    node_principals: &HashSet<String>,
) -> Result<Principal, ForwardRefused> {
    if has_token {
        return Err(ForwardRefused::WithToken);
    }
    let connection = caller.certificate;
    let text = String::from_utf8_lossy(claimed);
    let principal = match text.strip_prefix("User:") {
        Some("ANONYMOUS") => Principal::Anonymous,
        Some(name) if validate_name(name).is_ok() => Principal::User(name.to_owned()),
        _ => return Err(ForwardRefused::Malformed { claimed: text.chars().take(80).collect() }),
    };
    let is_node_certificate = connection.is_some_and(|connection| node_principals.contains(&connection.to_string()));
    // A node's certificate is enough on its own, as at the node-to-node gate; otherwise the secret decides.
    let is_node = match (is_node_certificate, caller.secret) {
        (true, _) | (false, SecretShown::Matches) => true,
        (false, SecretShown::Differs) => return Err(ForwardRefused::WrongSecret),
        (false, SecretShown::Absent) => false,
    };
    match (is_node, &principal, connection) {
        (true, _, _) => Ok(principal),
        (false, Principal::Anonymous, None) => Ok(principal),
        (false, _, Some(connection)) => {
            Err(ForwardRefused::NotANode { connection: format!("certificate is {connection}, not listed") })
        }
        (false, _, None) => Err(ForwardRefused::NotANode { connection: "has no client certificate".to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call over a connection with `certificate` and no cluster secret.
    fn by_certificate(certificate: Option<&Principal>) -> Caller<'_> {
        Caller { certificate, secret: SecretShown::Absent }
    }

    #[test]
    fn only_a_nodes_connection_may_name_a_principal() {
        let nodes: HashSet<String> = ["User:node".to_owned()].into();
        let node = Principal::User("node".into());
        let mallory = Principal::User("mallory".into());
        let alice = Principal::User("alice".into());
        let (from_node, from_mallory, plain) =
            (by_certificate(Some(&node)), by_certificate(Some(&mallory)), by_certificate(None));

        assert_eq!(accept(b"User:alice", false, from_node, &nodes), Ok(alice.clone()));
        assert_eq!(accept(b"User:ANONYMOUS", false, from_node, &nodes), Ok(Principal::Anonymous));
        let forged = accept(b"User:alice", false, from_mallory, &nodes).expect_err("a client's certificate");
        assert!(forged.to_string().contains("User:mallory, not listed"), "{forged}");
        let plaintext = accept(b"User:alice", false, plain, &nodes).expect_err("no certificate");
        assert!(plaintext.to_string().contains("has no client certificate"), "{plaintext}");
        assert!(plaintext.to_string().contains("auth.cluster_secret_file"), "says what to configure: {plaintext}");
        assert!(accept(b"User:alice", false, from_node, &HashSet::new()).is_err(), "no node listed");

        // Anonymous claims nothing a connection without a certificate lacks; with one, it would shed the
        // certificate's DENY ACLs, so it needs a node too.
        assert_eq!(accept(b"User:ANONYMOUS", false, plain, &nodes), Ok(Principal::Anonymous));
        assert!(accept(b"User:ANONYMOUS", false, from_mallory, &nodes).is_err());

        assert_eq!(accept(b"User:alice", true, from_node, &nodes), Err(ForwardRefused::WithToken));
        for claimed in [&b"alice"[..], b"User:", b"User:a b", b"Group:x", b"\xff\xfe", b""] {
            assert!(
                matches!(accept(claimed, false, from_node, &nodes), Err(ForwardRefused::Malformed { .. })),
                "{claimed:?}"
            );
        }
    }

    #[test]
    fn the_cluster_secret_makes_a_call_a_nodes_and_a_wrong_one_is_refused_whatever_it_claims() {
        let nodes = HashSet::new();
        let mallory = Principal::User("mallory".into());
        let alice = Principal::User("alice".into());
        let with = |certificate, secret| Caller { certificate, secret };

        assert_eq!(accept(b"User:alice", false, with(None, SecretShown::Matches), &nodes), Ok(alice.clone()));
        assert_eq!(
            accept(b"User:alice", false, with(Some(&mallory), SecretShown::Matches), &nodes),
            Ok(alice),
            "the secret is a node's credential, whatever certificate the connection has"
        );
        for claimed in [&b"User:alice"[..], b"User:ANONYMOUS"] {
            for certificate in [None, Some(&mallory)] {
                let refused = accept(claimed, false, with(certificate, SecretShown::Differs), &nodes);
                assert_eq!(refused, Err(ForwardRefused::WrongSecret), "{claimed:?} {certificate:?}");
            }
        }
        assert!(ForwardRefused::WrongSecret.to_string().contains("not this node's"));
        // A node's certificate is enough, as at the node-to-node gate, even beside a stale secret.
        let node_nodes: HashSet<String> = ["User:node".to_owned()].into();
        let node = Principal::User("node".into());
        assert!(accept(b"User:bob", false, with(Some(&node), SecretShown::Differs), &node_nodes).is_ok());
        // The secret does not stand in for a token: a call carries one or the other.
        let both = accept(b"User:alice", true, with(None, SecretShown::Matches), &nodes);
        assert_eq!(both, Err(ForwardRefused::WithToken));
    }

    #[test]
    fn unset_node_principals_are_this_nodes_own_certificates_when_it_checks_client_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "node-a");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = dir.path().join("node.pem");
        std::fs::write(&cert, params.self_signed(&key).expect("certificate").pem()).expect("write");
        let mut config = crate::BrokerConfig::for_tests(dir.path());
        assert!(node_principals(&config).is_empty(), "no TLS");
        config.tls = Some(crate::config::TlsConfig::new(&cert, dir.path().join("node.key")));
        assert!(node_principals(&config).is_empty(), "no client certificates are checked");
        config.tls.as_mut().expect("tls").client_ca = Some(cert.clone());
        assert_eq!(node_principals(&config), vec!["User:node-a".to_owned()]);
        config.auth.node_principals = vec!["User:n1".to_owned(), "User:n2".to_owned()];
        assert_eq!(node_principals(&config), config.auth.node_principals, "a list set wins");
    }

    #[test]
    fn a_token_is_sent_on_as_it_came_and_a_certificates_principal_by_name() {
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert("authorization", "Bearer rill_abc".parse().expect("ascii"));
        request.extensions_mut().insert(Principal::User("bob".into()));
        let mut sent = tonic::metadata::MetadataMap::new();
        ForwardedCaller::of(&request).send_on(&mut sent);
        assert_eq!(sent.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer rill_abc"));
        assert!(sent.get(FORWARDED_PRINCIPAL).is_none(), "the token says who it is");

        let mut request = tonic::Request::new(());
        request.extensions_mut().insert(Principal::User("alice".into()));
        let mut sent = tonic::metadata::MetadataMap::new();
        ForwardedCaller::of(&request).send_on(&mut sent);
        assert_eq!(sent.get(FORWARDED_PRINCIPAL).and_then(|v| v.to_str().ok()), Some("User:alice"));
        assert!(sent.get("authorization").is_none());

        let mut sent = tonic::metadata::MetadataMap::new();
        ForwardedCaller::of(&tonic::Request::new(())).send_on(&mut sent);
        assert_eq!(sent.get(FORWARDED_PRINCIPAL).and_then(|v| v.to_str().ok()), Some("User:ANONYMOUS"));
    }
}
