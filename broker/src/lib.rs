//! The rill broker node: a tonic gRPC server over the `storage` crate's partition logs.
//!
//! It serves the `rill.v1` API (`proto/rill/v1/rill.proto`): topic administration, produce, long-polling
//! fetch, subscribe streams, offset lookups, consumer groups (membership, assignment, committed offsets), plus gRPC health checking
//! and server reflection. On the same port it speaks Kafka's wire protocol to existing Kafka clients (`kafka/`:
//! ApiVersions, Metadata, Produce, Fetch, ListOffsets; docs/kafka.md), each connection told apart by its first
//! byte. `rill broker` runs one; tests and applications embed one:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rill_broker::{Broker, BrokerConfig};
//! let dir = std::env::temp_dir().join("rill-demo");
//! let broker = Broker::start(BrokerConfig::for_tests(&dir)).await?; // 127.0.0.1, a free port
//! let url = broker.url(); // connect a `rill_protocol::v1::records_client::RecordsClient` here
//! # let _ = url;
//! broker.shutdown().await; // graceful: in-flight calls finish, logs close cleanly
//! # Ok(()) }
//! ```
//!
//! With `admin_listen` set (127.0.0.1:9644 by default), `metrics/` serves `/metrics` (Prometheus text),
//! `/health` and `/ready` on a second port; hot-path metric updates are atomic adds, never a lock, a look-up or
//! an allocation per record (docs/observability.md). Every other path there is the web console (`console/`,
//! docs/console.md), which calls the gRPC service's own handlers: it holds no topic or group logic of its own.
//!
//! Client quotas (`quotas/`, docs/kafka.md) hold each client to the produce and fetch byte rates set for its user
//! or client id, on both protocols: a Kafka client is told to wait and its connection is not read meanwhile, a
//! gRPC client's answer comes late.
//!
//! `request_trace.rs` gives each produce, fetch and commit a `tracing` span (target `rill::request`) with its
//! topic, partition and offset, continuing the producer's W3C `traceparent` record header; the binary exports
//! them over OTLP when `otlp_endpoint` is set, and with nothing listening they cost one disabled-span check.
//!
//! With `node_id` and `peers` (or `join`, for a node added at run time) set, the node is one of a cluster:
//! `cluster/` runs its member of the controller
//! quorum (openraft, metadata in `<data>/__raft/`, raft RPCs over the internal `rill.internal.v1` service) and
//! serves `ClusterAdmin`, and `replication/` replicates partitions Kafka's way (ISR, high watermark, leader
//! epochs) over the nodes the controller places them on; committed offsets then live in the replicated
//! `__consumer_offsets` topic and each group is served by one coordinator node, the leader of its offsets
//! partition (`offsets/replicated.rs`). Without them nothing of that starts (docs/cluster.md).
//!
//! With `auth.oauth` set, `auth/oauth.rs` checks an identity provider's JWTs (SASL OAUTHBEARER on the Kafka port,
//! bearer tokens on gRPC and the admin listener) against its published keys (docs/security.md). With
//! `schema_registry_listen` set, `schema_registry/` serves Confluent Schema Registry's REST API for Avro schemas,
//! kept in `<data>/__schemas.json` or, on a cluster, in the replicated metadata; a topic may ask every record to
//! carry a registered schema id (docs/schema-registry.md).
//!
//! With `tls` set, `tls/` serves both protocols over TLS (rustls; optional or required client certificates,
//! checked against a CA): the node owns the handshake (with a timeout) and reloads the certificate when its
//! files change or on [`BrokerHandle::reload_tls`]; each gRPC request carries its connection's
//! [`ConnectionInfo`] (the verified client certificate chain) in its extensions (docs/security.md).
//!
//! Main types: [`Broker`] starts a node from a [`BrokerConfig`] and returns a [`BrokerHandle`]; inside,
//! `Registry` holds the topics, `Partition` wraps one log with its writer task and high-watermark watch,
//! `OffsetStore` keeps committed offsets, `GroupCoordinator` runs consumer-group membership and assignment, and
//! `service` maps gRPC calls onto them.
//!
//! Invariants:
//! - One node per data dir (an exclusive `flock` on `<data>/__lock`). All on-disk state lives under it,
//!   and no path is built from a name that did not pass `rill_storage::TopicName::new`. Names starting
//!   with `__` are the broker's own (`__topics/`, `__consumer_offsets-0`, `__lock`; a cluster's
//!   `__consumer_offsets` topic); users cannot create, produce to or delete them.
//! - A topic exists iff its metadata file exists; every create/delete/add-partitions writes that file (atomically)
//!   as its commit point, so a restart after a crash restores exactly the acknowledged topics.
//! - Each partition has exactly one writer task; appends are never made under a lock held across `.await`, and
//!   blocking disk work (append, read, fsync) runs on the blocking pool.
//! - Every queue is bounded (`partition_queue_batches`, `subscribe_queue_batches`): a slow disk or a slow
//!   subscriber pushes back instead of growing memory.
//! - Waiting (long-poll fetch, subscribe) is woken by appends through a watch channel, never by a polling loop.
//! - An acknowledged `durable` produce and an acknowledged offset commit are fsynced; on a cluster an
//!   acknowledged commit is on every in-sync replica of its `__consumer_offsets` partition, and only the node
//!   that leads (and has loaded) that partition serves the group.
//! - No partition is owned by two members of a consumer group at once (asserted after every rebalance step),
//!   and a commit is accepted only from the member owning the partition, checked at the instant it lands.
//! - A TLS listener serves nothing before a handshake that verified what `tls` asks for; a certificate that
//!   fails to load never replaces the one in use, and the node does not start without one that loads.
//! - Bad input is an error status, never a panic; errors become gRPC statuses in one place (`error.rs`), and Kafka
//!   error codes in one other (`kafka/error.rs`). Bad bytes on a Kafka connection close that connection only.

pub mod auth;
pub mod client_telemetry;
mod cluster;
mod codec;
mod compaction;
mod config;
mod connection;
mod console;
mod data_dir_lock;
mod delete_records;
pub mod disk_reserve;
mod error;
mod file_budget;
pub mod group_config;
mod groups;
mod kafka;
mod meta;
pub mod metrics;
mod node;
mod offset_lookup;
mod offsets;
mod partition;
mod prefault;
mod producer_ids;
mod quotas;
mod registry;
mod replication;
mod request_limit;
pub mod request_trace;
pub mod schema_registry;
mod server;
mod service;
pub mod share_groups;
mod tls;
mod topic_config;
mod topic_defaults;
mod topic_id;
pub mod transactions;

pub use auth::oauth::OAuthConfig;
pub use auth::{AdminAuth, AuthConfig, AuthorizationMode, Principal, SaslMechanism};
pub use cluster::{parse_peers, Peer};
pub use config::{
    check_otlp_endpoint, default_admin_listen, default_worker_threads, parse_admin_listen, BrokerConfig, ClientAuth,
    ConfigError, ConsoleMode, DurabilityPolicy, TlsConfig, DEFAULT_ADMIN_PORT, DEFAULT_PORT, MAX_WORKER_THREADS,
};
pub use data_dir_lock::LockError;
pub use error::BrokerError;
pub use file_budget::FileBudget;
pub use meta::{CompressionLevels, SchemaIdCheck, SchemaIdChecks, SubjectNameStrategy, TopicCompression};
pub use server::{Broker, BrokerHandle, StartError};
pub use tls::{
    watch_files as watch_tls_files, ConnectionInfo, PeerCertificates, TlsAcceptorHandle, TlsError, TlsListener,
};
