//! rill's HTTP proxy: Confluent REST Proxy's API v2 (produce, consume in consumer groups, topic and partition
//! metadata as JSON over HTTP) and v3's produce (with headers and timestamps), served to HTTP clients and carried out on a rill cluster through rill's own client
//! library (`rill-client`), as Confluent's REST Proxy is a Kafka client of its cluster.
//!
//! It runs inside a broker (`rill broker --http-proxy-listen`) or beside one (`rill http-proxy`). Either way it is
//! a client: it never touches a node's state, so a cluster's leaders, coordinators and failovers are the client's
//! business, and whatever the broker enforces (authentication, ACLs, quotas, topic limits) applies to it.
//!
//! Main types:
//! - [`HttpProxy`]: the listener and its state; [`HttpProxy::start`] on a bound socket, [`HttpProxy::shutdown`].
//! - [`ProxyConfig`]: the broker to reach, the client settings, the limits on consumer instances.
//!
//! Inside: `server.rs` (HTTP/1.1 over hyper: one task per connection, bounded), `routes.rs` (the API's paths),
//! `topics.rs` (metadata and produce), `v3.rs` (API v3's produce, with headers and timestamps),
//! `consumers.rs` (consumer instances), `format.rs` (the embedded formats
//! `binary`, `json`, `avro`, `protobuf` and `jsonschema`), `schemas.rs` (a registry schema of any kind, and
//! JSON Schema's), `avro.rs` and `protobuf.rs` (their JSON to Confluent's framing and back), `registry.rs` (the
//! schema registry those formats use), `sessions.rs` (a client per caller's credentials),
//! `error.rs` (Confluent's error bodies, mapped once from the client's errors), `metrics.rs` (`GET /metrics`).
//!
//! Invariants:
//! - Every call reaches the broker as its caller: a request's bearer token is the token of the client that
//!   carries it out, and a request without one goes with the proxy's own credentials (none inside a broker), so
//!   the proxy never gives a caller more than the broker would.
//! - A consumer instance belongs to the credentials that created it: any other caller is told it does not exist.
//! - Nothing is committed that was not handed to the HTTP caller: a `records` answer bounded by `max_bytes`
//!   leaves the rest unread in the consumer, and an answer that cannot be encoded in the instance's format puts
//!   its partitions back where the answer began.
//! - Bounded: request bodies (`MAX_REQUEST_BODY_BYTES`, `body_read_timeout`), connections (`MAX_CONNECTIONS`,
//!   each idle at most 30 s), callers' clients
//!   (`MAX_SESSIONS`), consumer instances (`ProxyConfig::max_consumer_instances`, each dropped after
//!   `consumer_instance_timeout` unused), and each `records` answer (`max_bytes`, its wait `timeout`).
//! - Bad input gets Confluent's error body (`{"error_code": ..., "message": ...}`) saying what was wrong and what
//!   is allowed, never a panic or a hang.

mod avro;
mod consumers;
mod error;
mod format;
mod metrics;
mod protobuf;
mod registry;
mod routes;
mod schemas;
mod server;
mod sessions;
mod topics;
mod v3;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rill_client::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;

pub use server::{MAX_CONNECTIONS, MAX_REQUEST_BODY_BYTES};
pub use sessions::MAX_SESSIONS;

/// TLS on the proxy's listener: the server side of a handshake on each accepted connection, bounded in time by
/// the implementation (`rill` hands the broker's own acceptor, which reloads its files when they change).
pub trait ListenerTls: Send + Sync + 'static {
    fn accept(
        &self,
        stream: TcpStream,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<TlsStream<TcpStream>>> + Send + '_>>;
}

/// What the proxy reaches and how many consumers it keeps.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The broker (or brokers, comma-separated) the proxy's clients connect to.
    pub broker: String,
    /// The settings of every client (its `token` is not used: see `token`).
    pub client: ClientConfig,
    /// The proxy's own bearer token, sent to the broker and the schema registry for requests that carry none (a
    /// request's own token replaces it); `None`: such requests go without one.
    pub token: Option<String>,
    /// The schema registry the `avro` format registers and looks up schemas in (`http://HOST:PORT`); `None`:
    /// `avro` is refused, saying so.
    pub schema_registry: Option<String>,
    /// Consumer instances held at once; creating one more is refused (429) until one is deleted or expires.
    pub max_consumer_instances: usize,
    /// A consumer instance not used for this long is closed (it leaves its group; with `auto.commit.enable`
    /// its positions are committed first), as Confluent's `consumer.instance.timeout.ms`.
    pub consumer_instance_timeout: Duration,
    /// TLS on the listener; `None`: plain HTTP.
    pub tls: Option<Arc<dyn ListenerTls>>,
    /// A request body not all there this long after its head is answered 408 (60 s by default).
    pub body_read_timeout: Duration,
}

/// Leaves out the token (a secret).
impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("broker", &self.broker)
            .field("has_token", &self.token.is_some())
            .field("schema_registry", &self.schema_registry)
            .field("max_consumer_instances", &self.max_consumer_instances)
            .field("consumer_instance_timeout", &self.consumer_instance_timeout)
            .field("is_tls", &self.tls.is_some())
            .field("body_read_timeout", &self.body_read_timeout)
            .finish_non_exhaustive()
    }
}

impl ProxyConfig {
    /// Defaults for a proxy reaching `broker`: 1000 consumer instances, 5 minutes of idleness each.
    pub fn new(broker: impl Into<String>) -> Self {
        Self {
            broker: broker.into(),
            client: ClientConfig::default(),
            token: None,
            schema_registry: None,
            max_consumer_instances: 1000,
            consumer_instance_timeout: Duration::from_secs(300),
            tls: None,
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Why the proxy did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the proxy's listening address cannot be read: {0}")]
    Listener(#[source] std::io::Error),
    #[error("max_consumer_instances must be at least 1")]
    NoConsumerInstances,
    #[error("consumer_instance_timeout must be at least 1 s, not {0:?}")]
    InstanceTimeoutTooShort(Duration),
    #[error("the schema registry {0}")]
    SchemaRegistry(String),
}

/// A running proxy. Dropping it leaves the listener serving; [`HttpProxy::shutdown`] stops it.
pub struct HttpProxy {
    addr: SocketAddr,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl HttpProxy {
    /// Serves the API on `listener` until [`HttpProxy::shutdown`]. Connections to the broker are made when a
    /// request needs one, so the proxy starts while the broker is down (and answers 500 until it is up).
    pub fn start(listener: TcpListener, config: ProxyConfig) -> Result<HttpProxy, StartError> {
        if config.max_consumer_instances == 0 {
            return Err(StartError::NoConsumerInstances);
        }
        if config.consumer_instance_timeout < Duration::from_secs(1) {
            return Err(StartError::InstanceTimeoutTooShort(config.consumer_instance_timeout));
        }
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let tls = config.tls.clone();
        let state = Arc::new(routes::ProxyState::new(config).map_err(StartError::SchemaRegistry)?);
        let sweeper = tokio::spawn(consumers::sweep_expired(Arc::clone(&state.consumers)));
        let server = server::serve(listener, tls, state);
        Ok(HttpProxy { addr, server, sweeper })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and closing idle consumer instances. Requests being answered finish; the
    /// consumer instances leave their groups as the last reference to them goes.
    pub fn shutdown(self) {
        self.server.abort();
        self.sweeper.abort();
    }
}
