//! Channels from this node to the other nodes of its cluster (raft, heartbeats, forwarded proposals,
//! replication, topic look-ups): plaintext, or TLS when this node's listener uses TLS, since the peers'
//! listeners then do too (one setting for the whole cluster). Every call on them carries the cluster secret,
//! when one is set, so the peer knows it from a client (`auth/node_calls.rs`).

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
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
    #[error(transparent)]
    ClusterSecret(#[from] crate::config::ConfigError),
}

/// A channel to a peer, every request on it carrying the cluster secret (when one is set).
pub type PeerChannel = InterceptedService<Channel, SendClusterSecret>;

/// Puts the cluster secret on each request to a peer. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SendClusterSecret(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for SendClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "SendClusterSecret(..)" } else { "SendClusterSecret(None)" })
    }
}

impl tonic::service::Interceptor for SendClusterSecret {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(secret) = &self.0 {
            request.metadata_mut().insert(crate::auth::node_calls::CLUSTER_SECRET, secret.clone());
        }
        Ok(request)
    }
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
/// The secret file is read at each dial, as the certificates are, so a rotated secret is sent by the next
/// channel opened.
pub fn channel_to(address: &str, config: &BrokerConfig) -> Result<PeerChannel, PeerChannelError> {
    let secret = config.auth.cluster_secret_file.as_deref().map(crate::auth::node_calls::ClusterSecret::load);
    let secret = secret.transpose()?.map(|secret| secret.header_value());
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    // The node's own HTTP/2 limits, as its listener takes them: a follower reads the leader's `Replicate`
    // answers from the frames they came in (replication/answers.rs), and a batch up to `http2_max_frame_bytes`
    // then arrives as one frame, which becomes the batch without a copy. At HTTP/2's default 16 KiB frames (and
    // hyper's 2 MiB stream window) every batch of a megabyte was cut in 64 and copied together again.
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))?
        .connect_timeout(PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .max_frame_size(config.http2_max_frame_bytes)
        .initial_stream_window_size(config.http2_stream_window_bytes)
        .initial_connection_window_size(config.http2_connection_window_bytes);
    if let Some(tls) = &config.tls {
        endpoint = endpoint.tls_config(peer_tls(tls)?)?;
    }
    Ok(InterceptedService::new(endpoint.connect_lazy(), SendClusterSecret(secret)))
}
