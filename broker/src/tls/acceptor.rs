//! The listener's TLS acceptor: the server configuration in use, swapped whole when the files change.
//!
//! Each handshake takes the configuration current when it starts (an `Arc` clone under a brief read lock), so a
//! reload never disturbs a handshake in flight or a connection already open: those keep the certificate they
//! were served, and only new connections see the new one.

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::load::{load_server_config, TlsError, TlsListener};
use crate::config::TlsConfig;

/// The TLS side of the listener, shared by every connection's task and the file watcher.
pub struct TlsAcceptorHandle {
    settings: TlsConfig,
    listener: TlsListener,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for TlsAcceptorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptorHandle").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl TlsAcceptorHandle {
    /// Loads the files `settings` names for the broker port: the node does not start without a configuration
    /// that loads.
    pub fn load(settings: TlsConfig) -> Result<Arc<Self>, TlsError> {
        Self::load_for(settings, TlsListener::Broker)
    }

    /// Loads the files `settings` names for `listener`.
    pub fn load_for(settings: TlsConfig, listener: TlsListener) -> Result<Arc<Self>, TlsError> {
        let config = load_server_config(&settings, listener)?;
        Ok(Arc::new(Self { settings, listener, current: RwLock::new(config) }))
    }

    fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs the server side of a handshake on `stream`, failing if it takes longer than the handshake timeout.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) -> io::Result<TlsStream<S>> {
        let timeout = Duration::from_millis(self.settings.handshake_timeout_ms);
        match tokio::time::timeout(timeout, TlsAcceptor::from(self.current()).accept(stream)).await {
            Ok(handshake) => handshake,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake not finished within {} ms", self.settings.handshake_timeout_ms),
            )),
        }
    }

    /// Reads the files again and, if they load, serves new connections with them; otherwise keeps the
    /// configuration in use and says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_server_config(&self.settings, self.listener)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }
}

/// What identifies one version of a file without reading it: a replaced file (a rename over it) changes its
/// inode, an edited one its modification time or length.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

fn stamps(settings: &TlsConfig) -> Vec<FileStamp> {
    [Some(&settings.cert), Some(&settings.key), settings.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| stamp(p))
        .collect()
}

/// Checks the TLS files every `reload_interval_ms` and reloads when any changed, until the node shuts down.
/// A failed reload is logged once per change, not once per check; a certificate and key replaced one after
/// the other fail in between (they do not match) and load once both are in place.
pub async fn watch_files(acceptor: Arc<TlsAcceptorHandle>, mut shutdown: watch::Receiver<bool>) {
    let mut seen = stamps(&acceptor.settings);
    let mut tick = tokio::time::interval(Duration::from_millis(acceptor.settings.reload_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = stamps(&acceptor.settings);
        if now == seen {
            continue;
        }
        seen = now;
        match acceptor.reload() {
            Ok(()) => tracing::info!(
                cert = %acceptor.settings.cert.display(),
                listener = ?acceptor.listener,
                "TLS files changed: reloaded"
            ),
            Err(error) => tracing::warn!(%error, "TLS files changed but cannot be loaded: keeping the ones in use"),
        }
    }
}
