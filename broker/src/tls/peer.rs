//! Channels from this node to the other nodes of its cluster (raft, heartbeats, forwarded proposals,
//! replication, topic look-ups): plaintext, or TLS when this node's listener uses TLS, since the peers'
//! listeners then do too (one setting for the whole cluster).

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::load::read;
use super::TlsError;
use crate::config::{BrokerConfig, TlsConfig};

/// How long a node waits for a peer's TCP connection (and TLS handshake).
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a channel to a peer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerChannelError {
    #[error("invalid peer address: {0}")]
    Address(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The TLS a node dials its peers with: trusting `cluster_ca` (else `client_ca`, else the public roots) and
/// presenting its own certificate. The files are read at each dial, so a renewed certificate is used by the
/// next channel opened.
fn peer_tls(tls: &TlsConfig) -> Result<ClientTlsConfig, TlsError> {
    let mut config = ClientTlsConfig::new();
    match tls.cluster_ca.as_ref().or(tls.client_ca.as_ref()) {
        Some(ca) => config = config.ca_certificate(Certificate::from_pem(read("cluster CA", ca)?)),
        None => config = config.with_webpki_roots(),
    }
    let identity = Identity::from_pem(read("certificate", &tls.cert)?, read("key", &tls.key)?);
    Ok(config.identity(identity))
}

/// Opens a lazily connected channel to the node at `address` (`host:port`), over TLS when `config.tls` is set.
pub fn channel_to(address: &str, config: &BrokerConfig) -> Result<Channel, PeerChannelError> {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Endpoint::from_shared(format!("{scheme}://{address}"))?.connect_timeout(PEER_CONNECT_TIMEOUT).tcp_nodelay(true);
    if let Some(tls) = &config.tls {
        endpoint = endpoint.tls_config(peer_tls(tls)?)?;
    }
    Ok(endpoint.connect_lazy())
}
