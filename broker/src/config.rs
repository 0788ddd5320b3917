//! The broker's settings: where it keeps data, where it listens, the defaults new topics get, and a limit on
//! everything a client can make it hold. Every setting has a default; [`BrokerConfig::validate`] rejects a bad
//! one at start, naming it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The port `rill broker` listens on by default: Kafka's 9092, so firewall rules and habits carry over.
pub const DEFAULT_PORT: u16 = 9092;

/// The port of the admin HTTP listener (`/metrics`, `/health`, `/ready`) by default: Redpanda's admin port.
pub const DEFAULT_ADMIN_PORT: u16 = 9644;

/// The admin listener's address when none is configured: 127.0.0.1 (the console and metrics stay off the
/// network until asked for), on the listen port plus the distance from [`DEFAULT_PORT`] to
/// [`DEFAULT_ADMIN_PORT`]. Nodes sharing a machine on consecutive ports (9092, 9093, 9094: docs/cluster.md)
/// then get 9644, 9645, 9646 instead of all claiming 9644 and all but the first failing to start. A listen
/// port of 0, or one too high for the sum, keeps 9644.
pub fn default_admin_listen(listen: SocketAddr) -> SocketAddr {
    let port = match listen.port() {
        0 => DEFAULT_ADMIN_PORT,
        port => port.checked_add(DEFAULT_ADMIN_PORT - DEFAULT_PORT).unwrap_or(DEFAULT_ADMIN_PORT),
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Topic-level background durability, as named in settings and topic metadata files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityPolicy {
    /// Every append is fsynced before it is acknowledged (concurrent appends share fsyncs).
    Always,
    /// Fsync every `flush_interval_ms`.
    Interval,
    /// Never fsync; the OS writes back when it likes.
    Never,
}

impl DurabilityPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "always" => Some(Self::Always),
            "interval" => Some(Self::Interval),
            "never" => Some(Self::Never),
            _ => None,
        }
    }
}

/// What the web console on the admin listener may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsoleMode {
    /// Every page and every action (create and delete topics, produce, reset offsets).
    On,
    /// Every page; every action that changes anything is hidden and refused.
    ReadOnly,
    /// No console: the admin listener serves only `/metrics`, `/health` and `/ready`.
    Off,
}

impl ConsoleMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "on" => Some(Self::On),
            "read-only" => Some(Self::ReadOnly),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Everything the broker needs to start. `Default` is a working single-node setup on `127.0.0.1:9092` with data
/// in `./rill-data`; tests use [`BrokerConfig::for_tests`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Directory holding partition logs, topic metadata and committed offsets. Created if missing.
    pub data_dir: PathBuf,
    /// Address to listen on. Port 0 picks a free port; [`crate::BrokerHandle::addr`] tells which.
    pub listen: SocketAddr,
    /// `HOST:PORT` Kafka clients are told to connect to (Metadata's broker address), for a node behind NAT or in
    /// a container. Unset: the listen address with its real port, `0.0.0.0`/`::` replaced by `127.0.0.1`.
    pub advertise: Option<String>,
    /// Address of the admin HTTP listener serving `/metrics`, `/health` and `/ready` (docs/observability.md);
    /// `None` (`"off"` in a file) serves none of them and records no metrics. Port 0 picks a free port.
    #[serde(with = "admin_listen_setting")]
    pub admin_listen: Option<SocketAddr>,
    /// Where Confluent Schema Registry's REST API is served (`schema_registry/`); `None` (the default): not
    /// served. Over TLS with the admin listener's (`tls.admin`), and with its authentication.
    #[serde(default)]
    pub schema_registry_listen: Option<SocketAddr>,
    /// The web console at the admin listener's root (docs/console.md): `on`, `read-only` (every page, no
    /// action that changes anything) or `off`. On by default, because the admin listener is on 127.0.0.1.
    pub console: ConsoleMode,
    /// Host names the console answers to besides IP addresses and `localhost`, e.g. `["broker1.internal"]`.
    /// A request addressed to any other name is refused: a web page whose name an attacker points at
    /// 127.0.0.1 (DNS rebinding) would otherwise be the console's own origin, and read and post like it.
    pub console_hosts: Vec<String>,
    /// OTLP/gRPC endpoint (`http://HOST:PORT`, or `https://`) the `rill` binary exports request spans to
    /// (docs/observability.md); `None`, the default, exports nothing and installs no tracing layer for it.
    pub otlp_endpoint: Option<String>,

    /// Most topics the broker holds (internal ones not counted).
    pub max_topics: u32,
    /// Most partitions one topic may have.
    pub max_partitions_per_topic: u32,
    /// Largest record batch accepted, and the ceiling of any topic's `max_batch_bytes`.
    pub max_batch_bytes: u64,
    /// Largest gRPC request accepted (a produce request is its batches plus a few bytes of framing).
    pub max_request_bytes: u64,
    /// Most bytes one fetch or one subscribe push returns (at least one whole batch is returned regardless).
    pub max_fetch_bytes: u64,
    /// Bytes a fetch returns when the request leaves `max_bytes` at 0.
    pub default_fetch_bytes: u64,
    /// Longest a fetch long-poll may wait, whatever the request asks.
    pub max_fetch_wait_ms: u64,
    /// Batches waiting for one partition's writer before producers wait (back-pressure, not buffering).
    pub partition_queue_batches: usize,
    /// Most partition appends writing to the disk at once, over all partitions (their fsyncs not counted).
    /// The partitions share one device, and past a few writes in flight more only lengthen each one's wait:
    /// on the disk measured in docs/benchmarks.md, 8 concurrent streams of 1 MiB `O_DIRECT` writes ran at
    /// 1.2–1.35 GB/s, 2 to 4 at 1.5–2.0 GB/s, and an 8-partition produce was 11% faster with 4 slots than
    /// unbounded (2 leave the device idle while a slot's batch is staged). Raise it for devices that want a
    /// deeper queue (several disks).
    pub appends_in_flight: usize,
    /// Responses queued for one subscriber before the broker stops reading for it (HTTP/2 flow control then
    /// holds the rest back).
    pub subscribe_queue_batches: usize,
    /// How often the maintenance task runs `flush_if_due` (interval durability) and `enforce_retention`.
    pub maintenance_interval_ms: u64,
    /// Compaction workers (Kafka's `log.cleaner.threads`, 1 by default as Kafka's): how many partitions of
    /// compacted topics are compacted at once, each worker holding one pass's key map (64 MiB at most).
    pub log_cleaner_threads: usize,
    /// How long a graceful shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace_ms: u64,
    /// Worker threads of the process's async runtime (`rill broker` builds it from this); 0 chooses
    /// [`default_worker_threads`]. Blocking work (appends, fsyncs, reads) runs on tokio's blocking pool beside
    /// them, whatever this says.
    pub worker_threads: usize,

    /// Append to partition logs with `O_DIRECT`, bypassing the page cache (see `rill_storage::WriteMode`);
    /// `false` writes through the page cache. A file system that refuses `O_DIRECT` gets buffered writes.
    pub direct_writes: bool,

    /// Default durability policy of new topics.
    pub default_durability: DurabilityPolicy,
    /// Default flush interval of new topics with `interval` durability. 100 ms, not 1 s: a disk's flush can hold
    /// up the direct writes beside it for as long as it takes to write back what came since the last one, so
    /// longer intervals mean longer stalls of every append and acknowledgement (docs/benchmarks.md, "Interval
    /// flushes").
    pub default_flush_interval_ms: u64,
    /// Default segment size of new topics.
    pub default_segment_bytes: u64,
    /// Default retention by age of new topics; `None` keeps forever.
    pub default_retention_ms: Option<u64>,
    /// Default retention by size of new topics; `None` keeps forever.
    pub default_retention_bytes: Option<u64>,
    /// Which metrics Kafka clients push to the node, how often, and which clients (KIP-714,
    /// `client_telemetry.rs`); none by default (others can be set through the Kafka API, `subscriptions.rs`). In a file:
    /// `[[client_metrics]]` with `name`, `metrics` (prefixes; `"*"` every metric), `interval_ms` and
    /// `[client_metrics.match]`.
    pub client_metrics: Vec<crate::client_telemetry::ClientMetricsSubscription>,
    /// Default `compression.type` of new topics (Kafka's broker config of that name): `producer` keeps each batch
    /// as its producer compressed it; a codec has every batch of a topic created without its own stored in it.
    /// In a file: `default_compression_type = "zstd"`.
    pub default_compression_type: crate::meta::TopicCompression,
    /// Default compression levels of new topics (Kafka's broker `compression.gzip.level`, `.lz4.level`,
    /// `.zstd.level`); each unset one is Kafka's default for its codec. In a file:
    /// `[default_compression_levels]` then `zstd = 19`.
    pub default_compression_levels: crate::meta::CompressionLevels,
    /// Partitions of a topic created without a count: a Kafka CreateTopics with `num_partitions` -1 and a topic
    /// created automatically (Kafka's `num.partitions`).
    pub default_partitions: u32,
    /// Replicas of each partition of a topic created without a replication factor: a gRPC create that leaves it
    /// unset, a Kafka CreateTopics with -1 and a topic created automatically (Kafka's
    /// `default.replication.factor`). A single node holds one; on a cluster more than its alive nodes is refused
    /// at the create, naming both.
    pub default_replication_factor: u32,
    /// Kafka's `auto.create.topics.enable`, off by default (as Redpanda's): a Kafka Metadata request that allows
    /// it, or a gRPC DescribeTopic that asks for it (rill's producers do), creates a topic it names that does not
    /// exist, with the defaults above, when the principal may create it.
    pub auto_create_topics: bool,

    /// Largest HTTP/2 frame a client may send. 16 KiB (HTTP/2's default) cuts a 1 MiB batch into 64 frames, each
    /// handled and copied on its own; 2 MiB takes it whole. (A client's own setting bounds what we send it.)
    pub http2_max_frame_bytes: u32,
    /// HTTP/2 per-stream flow-control window.
    pub http2_stream_window_bytes: u32,
    /// HTTP/2 per-connection flow-control window.
    pub http2_connection_window_bytes: u32,
    /// Most concurrent streams (calls) per connection.
    pub max_concurrent_streams: u32,
    /// Most client connections at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Most connections at once from one IP address (Kafka's `max.connections.per.ip`), so that one host cannot
    /// take every slot of `max_connections`; one more from it is closed as soon as it is accepted. Unset: no
    /// limit but `max_connections`. A cluster's nodes connect to each other too, and count from their addresses.
    pub max_connections_per_ip: Option<usize>,
    /// Other limits for given addresses (Kafka's `max.connections.per.ip.overrides`): a proxy, or a host that
    /// runs many clients. In a file: `[max_connections_per_ip_overrides]` then `"10.0.0.5" = 2000`.
    pub max_connections_per_ip_overrides: std::collections::BTreeMap<std::net::IpAddr, usize>,
    /// Most descriptors of sealed segments' `.log` files kept open for reads, in a cache all partitions share (the
    /// least recently read is closed first). Unset: a sixteenth of the open-file limit, between 16 and 1,024.
    pub max_open_segment_files: Option<usize>,
    /// Most bytes of recently appended batches kept in memory for fetches and subscribers, over all partitions
    /// (`rill_storage::TailCache`, oldest evicted first); 0 keeps none. Unset: an eighth of the machine's memory,
    /// at most 1 GiB ([`default_tail_cache_bytes`]).
    pub tail_cache_bytes: Option<u64>,
    /// Free space kept on the data dir's file system for the node's metadata (`disk_reserve.rs`): below it,
    /// partition appends are refused with `disk-full` and, on a cluster, the node's leaderships move. 0 keeps
    /// none. Unset: 5% of the file system, at most 1 GiB.
    pub min_free_disk_bytes: Option<u64>,
    /// A connection on which no byte moves for this long is closed: a stalled or half-open peer holds nothing
    /// for ever. Healthy idle clients are kept alive by keepalive pings sent at a third of this.
    pub idle_connection_timeout_ms: u64,
    /// The length of one of the 11 samples a client's byte rate is measured over for its quota (Kafka's
    /// `quota.window.size.seconds`, in ms): a client may go 10 samples' worth of its quota in a burst before it is
    /// throttled (docs/kafka.md, "Client quotas").
    pub quota_window_ms: u64,

    /// Session timeout of a group member whose join does not ask for one: a member silent this long is removed.
    pub group_session_timeout_ms: u64,
    /// Shortest session timeout a member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// Longest session timeout a member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// Session timeout of a Kafka KIP-848 member (`group.protocol=consumer`): the broker decides it (Kafka's
    /// `group.consumer.session.timeout.ms`); a member that sends no ConsumerGroupHeartbeat this long is removed.
    pub group_consumer_session_timeout_ms: u64,
    /// How often a KIP-848 member is told to heartbeat (Kafka's `group.consumer.heartbeat.interval.ms`); it also
    /// bounds how soon a member hears of a new assignment. Below the session timeout.
    pub group_consumer_heartbeat_interval_ms: u64,
    /// Share groups (KIP-932): a member that sends no ShareGroupHeartbeat this long is removed and the records it
    /// held go back to the group (Kafka's `group.share.session.timeout.ms`).
    pub share_session_timeout_ms: u64,
    /// How often a share group member is told to heartbeat (`group.share.heartbeat.interval.ms`).
    pub share_heartbeat_interval_ms: u64,
    /// How long a share group member holds a record it fetched before it goes back to the group
    /// (`group.share.record.lock.duration.ms`).
    pub share_record_lock_duration_ms: u64,
    /// How often a record is delivered to a share group before it is given up (archived) instead of delivered
    /// again (`group.share.delivery.count.limit`).
    pub share_delivery_count_limit: u16,
    /// Most records of one share partition in flight at once, from its first undone record on
    /// (`group.share.partition.max.record.locks`): what bounds a share group's state per partition.
    pub share_max_record_locks: u32,
    /// Where a share group starts on a partition it has never read (`share.auto.offset.reset`): the log's start
    /// (`earliest`) or its end (`latest`, Kafka's default).
    pub share_auto_offset_reset: crate::share_groups::ShareOffsetReset,
    /// What a share group's dead-letter topic's name must start with, empty for any name (Kafka's
    /// `errors.deadletterqueue.topic.name.prefix`): a group config cannot send dead letters to any topic at all.
    pub dead_letter_topic_prefix: String,
    /// Whether a share group's dead-letter topic that does not exist is created at its first dead letter (Kafka's
    /// `errors.deadletterqueue.auto.create.topics.enable`): one partition, opted in, on up to three nodes of a
    /// cluster. Off: such dead letters are not written (logged).
    pub dead_letter_auto_create_topics: bool,
    /// Most consumer groups the coordinator holds (with members, or empty and remembered for their offsets).
    pub max_groups: u32,
    /// Most members one group may have.
    pub max_members_per_group: u32,
    /// Most topics one member may subscribe to.
    pub max_topics_per_member: u32,
    /// Committed offsets of a group without members are deleted once the group has been empty, and has not
    /// committed, for this long (checked about once a second). `None` keeps them until the group is deleted.
    pub group_offsets_retention_ms: Option<u64>,

    /// This node's id in its cluster; required with `peers` (see docs/cluster.md).
    pub node_id: Option<u64>,
    /// The controller quorum, every node as `ID@HOST:PORT` (this one included). Empty: a cluster of one, with
    /// no controller quorum, as before clusters existed.
    pub peers: Vec<crate::cluster::Peer>,
    /// `HOST:PORT` of running nodes of a cluster to join (instead of `peers`): the node records the cluster's
    /// identity from the first that answers, then waits for `rill cluster add-node` (docs/cluster.md).
    pub join: Vec<String>,
    /// The rack (or availability zone) this node is in, Kafka's `broker.rack`: a new partition's replicas go to
    /// as many racks as its replication factor allows, and a Kafka consumer that names its own rack
    /// (`client.rack`) reads from an in-sync replica in it rather than from a leader elsewhere (docs/cluster.md,
    /// "Racks"). Letters, digits, `.`, `_`, `:` and `-`, at most 64. Unset: no rack.
    pub rack: Option<String>,
    /// Whether this node, leading a partition, sends a Kafka consumer that names its rack (`client.rack`,
    /// Fetch v11+) to an in-sync follower in that rack (KIP-392, Kafka's `replica.selector.class` set to
    /// `RackAwareReplicaSelector`). Followers serve such consumers' fetches either way.
    pub follower_fetching: bool,
    /// How often a node of a cluster tells the controller leader it is alive. Also how soon a dead node is found:
    /// the liveness probe starts 1.5 intervals after its last heartbeat (250 ms: a dead partition leader is
    /// replaced in about half a second; docs/cluster.md, "Liveness").
    pub node_heartbeat_interval_ms: u64,
    /// A node the controller leader has not heard from for this long is fenced (until it heartbeats again).
    pub node_session_timeout_ms: u64,
    /// Whether the controller leader, once a node's heartbeat is half an interval overdue, tries a TCP
    /// connection to the node's address, and fences it at once when the connection is refused: nothing
    /// listens there, so its process is gone (a crash, a kill), and waiting out its session would only keep
    /// its partitions without a leader. A hung node (its port still accepts) and an unreachable host (no
    /// answer at all) still wait for `node_session_timeout_ms` (docs/cluster.md, "Failures"). The voters probe
    /// the controller leader the same way, and call the election themselves once raft's lease allows when its
    /// port refuses (docs/cluster.md, "Liveness").
    pub node_liveness_probe: bool,
    /// On a cluster: a graceful shutdown (SIGINT, SIGTERM) first has the controller fence this node, which moves
    /// its partition leaderships to in-sync replicas and takes it out of every ISR while it still answers
    /// (Kafka's `controlled.shutdown.enable`), bounded by `shutdown_grace_ms`. Off, the node just stops, and
    /// its partitions wait until the controller finds it gone (docs/cluster.md, "Rolling restarts").
    pub controlled_shutdown: bool,
    /// A follower that has not caught up with its partition leader's log end for this long leaves the ISR
    /// (Kafka's `replica.lag.time.max.ms`); it rejoins once it has caught up.
    pub replica_lag_time_max_ms: u64,
    /// On a cluster: how often the node writes its replicated partitions' high watermarks to the data dir's
    /// `__high-watermarks.checkpoint` when one changed (Kafka's `replica.high.watermark.checkpoint.interval.ms`).
    /// A restarted node starts each partition's high watermark from it, so it can be behind by this much.
    pub high_watermark_checkpoint_interval_ms: u64,
    /// On a cluster: the number of partitions of the replicated `__consumer_offsets` topic (Kafka's
    /// `offsets.topic.num.partitions`). Fixed once the topic exists: it decides every group's coordinator.
    pub offsets_topic_partitions: u32,
    /// On a cluster: whether the controller leader hands leaderships back to their preferred replicas by itself
    /// (Kafka's `auto.leader.rebalance.enable`); `rill cluster elect-leaders` works either way.
    pub auto_leader_rebalance_enable: bool,
    /// How often the controller leader checks the leadership balance (Kafka's
    /// `leader.imbalance.check.interval.seconds`, in ms).
    pub leader_imbalance_check_interval_ms: u64,
    /// A node whose preferred partitions are led elsewhere for more than this percentage gets them back
    /// (Kafka's `leader.imbalance.per.broker.percentage`).
    pub leader_imbalance_per_broker_percentage: u32,

    /// TLS on the listener, for gRPC and Kafka clients alike (docs/security.md); `None` serves plaintext.
    pub tls: Option<TlsConfig>,
    /// Authentication: SASL on the Kafka port, bearer tokens on gRPC (docs/security.md).
    pub auth: crate::auth::AuthConfig,
}

/// Whether a TLS listener asks clients for a certificate, and what it does without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every client must present a certificate issued by `client_ca`; the handshake fails without one.
    Required,
    /// A client may present one (it is then checked against `client_ca`) or none.
    Optional,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            _ => None,
        }
    }
}

/// The listener's TLS settings: PEM files, read at start and again whenever they change (`reload_interval_ms`)
/// or the node is asked to (SIGHUP to `rill broker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The node's certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to. Unset: clients are not asked for one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client certificate is required (the default) or optional.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// On a cluster: CA certificates (PEM) the other nodes' certificates must chain to when this node dials them
    /// (raft, heartbeats, replication). Unset: `client_ca`, else the public web PKI roots. This node presents
    /// its own `cert` to them.
    #[serde(default)]
    pub cluster_ca: Option<PathBuf>,
    /// How often the files' modification times are checked for a reload.
    #[serde(default = "TlsConfig::default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// Longest a TLS handshake may take: a peer that connects and stays silent holds a connection slot no longer.
    #[serde(default = "TlsConfig::default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Serve the admin listener (`/metrics`, `/health`, `/ready`, the console) over TLS too, with the same
    /// certificate and key (reloaded with them). No client certificate is asked for there: the console signs
    /// users in with their password and `/metrics` takes a bearer token. Off by default, so that a scraper
    /// configured for `http://` keeps working when the broker port turns TLS on.
    #[serde(default)]
    pub admin: bool,
}

impl TlsConfig {
    /// TLS with `cert` and `key`, no client certificates, and the default reload interval and handshake timeout.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            client_auth: None,
            cluster_ca: None,
            reload_interval_ms: Self::default_reload_interval_ms(),
            handshake_timeout_ms: Self::default_handshake_timeout_ms(),
            admin: false,
        }
    }

    fn default_reload_interval_ms() -> u64 {
        5_000
    }

    fn default_handshake_timeout_ms() -> u64 {
        10_000
    }

    /// What the listener does about client certificates: `None` without `client_ca`.
    pub fn effective_client_auth(&self) -> Option<ClientAuth> {
        self.client_ca.as_ref().map(|_| self.client_auth.unwrap_or(ClientAuth::Required))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, reason: String| Err(ConfigError { setting, reason });
        if self.client_auth.is_some() && self.client_ca.is_none() {
            return bad(
                "tls.client_auth",
                "needs tls.client_ca, the CA that client certificates are checked against".into(),
            );
        }
        if !(100..=3_600_000).contains(&self.reload_interval_ms) {
            return bad("tls.reload_interval_ms", format!("{} is outside 100..=3600000", self.reload_interval_ms));
        }
        if !(1..=300_000).contains(&self.handshake_timeout_ms) {
            return bad("tls.handshake_timeout_ms", format!("{} is outside 1..=300000", self.handshake_timeout_ms));
        }
        Ok(())
    }
}

/// Splits an advertised `HOST:PORT` (a name, an IPv4 address, or `[IPv6]`) into its host and port.
pub fn parse_advertise(advertise: &str) -> Result<(String, u16), String> {
    let (host, port) = advertise.rsplit_once(':').ok_or_else(|| format!("{advertise:?} is not HOST:PORT (no port)"))?;
    let port: u16 = port.parse().map_err(|_| format!("{advertise:?} has no valid port (1 to 65535)"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || port == 0 {
        return Err(format!("{advertise:?} needs a host and a port other than 0"));
    }
    Ok((host.to_string(), port))
}

/// Most bytes of a rack name (`BrokerConfig::rack`).
pub const MAX_RACK_BYTES: usize = 64;

/// A rack name as `--rack` takes it: what cloud zones and data-centre racks are called (`us-east-1a`, `use1-az1`,
/// `dc2:row4`), and nothing a log line or a table could be confused by.
pub fn check_rack(rack: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if rack.is_empty() || rack.len() > MAX_RACK_BYTES {
        return Err(format!("{rack:?} must be 1 to {MAX_RACK_BYTES} characters long"));
    }
    match rack.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("{rack:?} has {c:?}: a rack name is letters, digits, '.', '_', ':' and '-'")),
        None => Ok(()),
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("rill-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            advertise: None,
            admin_listen: Some(default_admin_listen(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))),
            schema_registry_listen: None,
            console: ConsoleMode::On,
            console_hosts: Vec::new(),
            otlp_endpoint: None,
            max_topics: 10_000,
            max_partitions_per_topic: 1_024,
            max_batch_bytes: 8 << 20,
            max_request_bytes: (8 << 20) + rill_protocol::MESSAGE_OVERHEAD_BYTES as u64,
            max_fetch_bytes: 8 << 20,
            default_fetch_bytes: 1 << 20,
            max_fetch_wait_ms: 30_000,
            partition_queue_batches: 64,
            appends_in_flight: 4,
            subscribe_queue_batches: 4,
            maintenance_interval_ms: 100,
            log_cleaner_threads: 1,
            shutdown_grace_ms: 5_000,
            worker_threads: 0,
            direct_writes: true,
            default_durability: DurabilityPolicy::Interval,
            default_flush_interval_ms: 100,
            default_segment_bytes: 1 << 30,
            default_retention_ms: Some(7 * 24 * 3600 * 1000),
            default_retention_bytes: None,
            client_metrics: Vec::new(),
            default_compression_type: crate::meta::TopicCompression::Producer,
            default_compression_levels: crate::meta::CompressionLevels::default(),
            default_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: false,
            http2_max_frame_bytes: 2 << 20,
            http2_stream_window_bytes: 32 << 20,
            http2_connection_window_bytes: 64 << 20,
            max_concurrent_streams: 1_024,
            max_connections: 4_096,
            max_connections_per_ip: None,
            max_connections_per_ip_overrides: std::collections::BTreeMap::new(),
            max_open_segment_files: None,
            tail_cache_bytes: None,
            min_free_disk_bytes: None,
            idle_connection_timeout_ms: 600_000,
            quota_window_ms: 1_000,
            group_session_timeout_ms: 10_000,
            group_min_session_timeout_ms: 100,
            group_max_session_timeout_ms: 300_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            share_session_timeout_ms: 45_000,
            share_heartbeat_interval_ms: 5_000,
            share_record_lock_duration_ms: 30_000,
            share_delivery_count_limit: 5,
            share_max_record_locks: 2_000,
            dead_letter_topic_prefix: "dlq.".to_owned(),
            dead_letter_auto_create_topics: false,
            share_auto_offset_reset: crate::share_groups::ShareOffsetReset::Latest,
            max_groups: 10_000,
            max_members_per_group: 1_000,
            max_topics_per_member: 1_000,
            group_offsets_retention_ms: None,
            node_id: None,
            peers: Vec::new(),
            join: Vec::new(),
            rack: None,
            follower_fetching: true,
            node_heartbeat_interval_ms: 250,
            node_session_timeout_ms: 6_000,
            node_liveness_probe: true,
            controlled_shutdown: true,
            replica_lag_time_max_ms: 10_000,
            high_watermark_checkpoint_interval_ms: 5_000,
            offsets_topic_partitions: 50,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            tls: None,
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

/// The tail cache's size when `tail_cache_bytes` is not set: an eighth of the machine's memory, at most 1 GiB
/// (and 1 GiB when the memory cannot be read).
pub fn default_tail_cache_bytes() -> u64 {
    const CAP_BYTES: u64 = 1 << 30;
    physical_memory_bytes().map_or(CAP_BYTES, |memory| (memory / 8).min(CAP_BYTES))
}

/// The machine's physical memory, if the system says.
fn physical_memory_bytes() -> Option<u64> {
    // SAFETY: `sysconf` reads system constants; it has no preconditions.
    let (pages, page_bytes) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let (pages, page_bytes) = (u64::try_from(pages).ok()?, u64::try_from(page_bytes).ok()?);
    pages.checked_mul(page_bytes)
}

/// Most runtime worker threads a setting may ask for: far above any core count rill is run on, low enough
/// that a typo (an extra digit or two) is refused instead of starting thousands of threads.
pub const MAX_WORKER_THREADS: usize = 1024;

/// Most compaction workers (`log_cleaner_threads`): each may hold 64 MiB of keys and keep a disk busy.
pub const MAX_LOG_CLEANER_THREADS: usize = 64;

/// The runtime's worker threads when `worker_threads` is 0: one per core the process may run on (tokio's own
/// default), 1 when that cannot be read.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Parses `--admin-listen`: an address, or `off` for no admin listener.
pub fn parse_admin_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| format!("{text:?} is neither HOST:PORT (an IP address and a port) nor off"))
}

/// An OTLP endpoint is an `http://` or `https://` URL with a host and a port: a typo would otherwise surface
/// only as spans that never arrive.
pub fn check_otlp_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| format!("{endpoint:?} must start with http:// or https://, e.g. http://127.0.0.1:4317"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0) => Ok(()),
        _ => Err(format!("{endpoint:?} needs a host and a port, e.g. http://127.0.0.1:4317")),
    }
}

/// `admin_listen` in a TOML file: `"127.0.0.1:9644"` or `"off"` (TOML has no null).
mod admin_listen_setting {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<SocketAddr>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_admin_listen(&text).map_err(serde::de::Error::custom)
    }
}

/// A setting that cannot work, named as it is in the config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl BrokerConfig {
    /// A config for tests: data in `data_dir`, a free port on 127.0.0.1, 16 MiB segments, and no retention by
    /// default, so records with made-up timestamps (1970) are not deleted as soon as their segment rolls.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            shutdown_grace_ms: 2_000,
            default_segment_bytes: 16 << 20,
            default_retention_ms: None,
            ..Self::default()
        }
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, reason: String| Err(ConfigError { setting, reason });
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "must not be empty".into());
        }
        if let Some(advertise) = &self.advertise {
            if let Err(reason) = parse_advertise(advertise) {
                return bad("advertise", reason);
            }
        }
        if let Some(rack) = &self.rack {
            if let Err(reason) = check_rack(rack) {
                return bad("rack", reason);
            }
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            if let Err(reason) = check_otlp_endpoint(endpoint) {
                return bad("otlp_endpoint", reason);
            }
        }
        if self.max_topics == 0 {
            return bad("max_topics", "must be at least 1".into());
        }
        if self.max_partitions_per_topic == 0 {
            return bad("max_partitions_per_topic", "must be at least 1".into());
        }
        if self.default_partitions == 0 || self.default_partitions > self.max_partitions_per_topic {
            return bad(
                "default_partitions",
                format!(
                    "{} is outside 1..=max_partitions_per_topic ({})",
                    self.default_partitions, self.max_partitions_per_topic
                ),
            );
        }
        if self.default_replication_factor == 0 {
            return bad("default_replication_factor", "must be at least 1".into());
        }
        if self.default_replication_factor > 1 && self.peers.is_empty() && self.join.is_empty() {
            return bad(
                "default_replication_factor",
                format!(
                    "{}: a single node (no peers) holds one replica of each partition; use 1",
                    self.default_replication_factor
                ),
            );
        }
        let header = rill_protocol::batch::HEADER_BYTES as u64;
        if self.max_batch_bytes < header || self.max_batch_bytes > 1 << 30 {
            return bad("max_batch_bytes", format!("{} is outside {header}..=1 GiB", self.max_batch_bytes));
        }
        if self.max_request_bytes < self.max_batch_bytes || self.max_request_bytes > u32::MAX as u64 {
            return bad(
                "max_request_bytes",
                format!(
                    "{} must be at least max_batch_bytes ({}) and below 4 GiB",
                    self.max_request_bytes, self.max_batch_bytes
                ),
            );
        }
        if self.max_fetch_bytes == 0 || self.max_fetch_bytes > 1 << 30 {
            return bad("max_fetch_bytes", format!("{} is outside 1..=1 GiB", self.max_fetch_bytes));
        }
        if self.default_fetch_bytes == 0 || self.default_fetch_bytes > self.max_fetch_bytes {
            return bad(
                "default_fetch_bytes",
                format!("{} is outside 1..=max_fetch_bytes ({})", self.default_fetch_bytes, self.max_fetch_bytes),
            );
        }
        if self.partition_queue_batches == 0 || self.partition_queue_batches > 1 << 16 {
            return bad("partition_queue_batches", format!("{} is outside 1..=65536", self.partition_queue_batches));
        }
        if self.appends_in_flight == 0 || self.appends_in_flight > Semaphore::MAX_PERMITS {
            return bad(
                "appends_in_flight",
                format!("{} is outside 1..={}", self.appends_in_flight, Semaphore::MAX_PERMITS),
            );
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return bad(
                "worker_threads",
                format!(
                    "{} is outside 0..={MAX_WORKER_THREADS} (0: the default for this machine)",
                    self.worker_threads
                ),
            );
        }
        if self.subscribe_queue_batches == 0 || self.subscribe_queue_batches > 1024 {
            return bad("subscribe_queue_batches", format!("{} is outside 1..=1024", self.subscribe_queue_batches));
        }
        if !(10..=3_600_000).contains(&self.high_watermark_checkpoint_interval_ms) {
            return bad(
                "high_watermark_checkpoint_interval_ms",
                format!("{} is outside 10..=3600000", self.high_watermark_checkpoint_interval_ms),
            );
        }
        if self.maintenance_interval_ms == 0 {
            return bad("maintenance_interval_ms", "must be at least 1".into());
        }
        if !(1..=MAX_LOG_CLEANER_THREADS).contains(&self.log_cleaner_threads) {
            return bad(
                "log_cleaner_threads",
                format!("{} is outside 1..={MAX_LOG_CLEANER_THREADS}", self.log_cleaner_threads),
            );
        }
        if self.default_flush_interval_ms == 0 {
            return bad("default_flush_interval_ms", "must be at least 1".into());
        }
        if self.default_segment_bytes < 1024 || self.default_segment_bytes > i32::MAX as u64 {
            return bad("default_segment_bytes", format!("{} is outside 1024..=2 GiB", self.default_segment_bytes));
        }
        if self.default_segment_bytes < self.max_batch_bytes {
            return bad(
                "default_segment_bytes",
                format!("{} is below max_batch_bytes ({})", self.default_segment_bytes, self.max_batch_bytes),
            );
        }
        for subscription in &self.client_metrics {
            subscription.check().map_err(|reason| ConfigError { setting: "client_metrics", reason })?;
        }
        let mut names: Vec<&str> = self.client_metrics.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return bad("client_metrics", format!("two subscriptions are named {:?}", twice[0]));
        }
        if let Err((codec, reason)) = self.default_compression_levels.check() {
            let setting = match codec {
                rill_protocol::Compression::Gzip => "default_compression_levels.gzip",
                rill_protocol::Compression::Lz4 => "default_compression_levels.lz4",
                _ => "default_compression_levels.zstd",
            };
            return bad(setting, reason);
        }
        // HTTP/2 allows frames of 16 KiB to 16 MiB - 1 (RFC 9113 section 4.2).
        if !(16_384..=16_777_215).contains(&self.http2_max_frame_bytes) {
            return bad("http2_max_frame_bytes", format!("{} is outside 16384..=16777215", self.http2_max_frame_bytes));
        }
        if self.http2_stream_window_bytes < 65_535 || self.http2_stream_window_bytes > i32::MAX as u32 {
            return bad(
                "http2_stream_window_bytes",
                format!("{} is outside 65535..=2^31-1", self.http2_stream_window_bytes),
            );
        }
        if self.http2_connection_window_bytes < self.http2_stream_window_bytes
            || self.http2_connection_window_bytes > i32::MAX as u32
        {
            return bad(
                "http2_connection_window_bytes",
                format!(
                    "{} must be at least http2_stream_window_bytes and at most 2^31-1",
                    self.http2_connection_window_bytes
                ),
            );
        }
        if self.max_concurrent_streams == 0 {
            return bad("max_concurrent_streams", "must be at least 1".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1".into());
        }
        if self.max_connections_per_ip == Some(0) {
            return bad(
                "max_connections_per_ip",
                "must be at least 1 (leave it unset for no limit per address)".into(),
            );
        }
        if let Some((ip, _)) = self.max_connections_per_ip_overrides.iter().find(|(_, limit)| **limit == 0) {
            return bad(
                "max_connections_per_ip_overrides",
                format!(
                    "{ip} has a limit of 0: each must be at least 1 (remove the entry to use max_connections_per_ip)"
                ),
            );
        }
        if let (Some(bytes), Some(memory)) = (self.tail_cache_bytes, physical_memory_bytes()) {
            if bytes > memory / 2 {
                return bad(
                    "tail_cache_bytes",
                    format!(
                        "{bytes} is more than half of this machine's memory ({memory} bytes); 0 turns the cache off"
                    ),
                );
            }
        }
        if self.max_open_segment_files == Some(0) {
            return bad(
                "max_open_segment_files",
                "must be at least 1 (or unset, to derive it from the open-file limit)".into(),
            );
        }
        if self.idle_connection_timeout_ms < 100 {
            return bad(
                "idle_connection_timeout_ms",
                format!("{} is below the minimum of 100", self.idle_connection_timeout_ms),
            );
        }
        if !(100..=60_000).contains(&self.quota_window_ms) {
            return bad("quota_window_ms", format!("{} is outside 100 to 60000", self.quota_window_ms));
        }
        self.validate_groups()?;
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        self.auth.validate(self.tls.is_some())?;
        crate::auth::config::check_exposure(self.listen, &self.auth, self.tls.as_ref())?;
        if let Some(addr) = self.schema_registry_listen {
            let is_open = !self.auth.is_admin_auth_required() && !self.auth.allow_insecure;
            if !addr.ip().is_loopback() && is_open {
                return bad(
                    "schema_registry_listen",
                    format!(
                        "{addr} is not a loopback address, and callers need not authenticate there: anyone who \
                         reaches it could change or delete every schema. Require authentication (--admin-auth \
                         required, or --require-auth), or pass --allow-insecure on a trusted network"
                    ),
                );
            }
            // Port 0 picks a free port for each listener: two of them never collide.
            if addr.port() != 0 && (Some(addr) == self.admin_listen || addr == self.listen) {
                return bad("schema_registry_listen", format!("{addr} is taken by another listener of the broker"));
            }
        }
        if let Some(path) = &self.auth.cluster_secret_file {
            crate::auth::node_calls::ClusterSecret::load(path)?;
        }
        crate::auth::node_calls::check_node_identification(self)?;
        crate::cluster::validate_settings(self)
    }

    fn validate_groups(&self) -> Result<(), ConfigError> {
        let bad = |setting, reason: String| Err(ConfigError { setting, reason });
        // Kafka's bounds for the share group settings of the same names.
        if self.share_heartbeat_interval_ms == 0
            || self.share_heartbeat_interval_ms >= self.share_session_timeout_ms
            || self.share_session_timeout_ms > i32::MAX as u64
        {
            return bad(
                "share_heartbeat_interval_ms",
                format!(
                    "{} must be at least 1 and below share_session_timeout_ms ({}, at most 2^31-1)",
                    self.share_heartbeat_interval_ms, self.share_session_timeout_ms
                ),
            );
        }
        if !(1_000..=3_600_000).contains(&self.share_record_lock_duration_ms) {
            return bad(
                "share_record_lock_duration_ms",
                format!("{} is outside 1000..=3600000", self.share_record_lock_duration_ms),
            );
        }
        if !(2..=10).contains(&self.share_delivery_count_limit) {
            return bad("share_delivery_count_limit", format!("{} is outside 2..=10", self.share_delivery_count_limit));
        }
        if !(100..=100_000).contains(&self.share_max_record_locks) {
            return bad("share_max_record_locks", format!("{} is outside 100..=100000", self.share_max_record_locks));
        }
        let prefix = &self.dead_letter_topic_prefix;
        if prefix.len() > 249 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return bad(
                "dead_letter_topic_prefix",
                format!("{prefix:?} is not the start of a topic name: at most 249 of A-Z, a-z, 0-9, '.', '_', '-'"),
            );
        }
        // Sessions are sent to members as u32 milliseconds.
        let max_session_ms = u64::from(u32::MAX);
        if self.group_consumer_heartbeat_interval_ms == 0
            || self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms
            || self.group_consumer_session_timeout_ms > i32::MAX as u64
        {
            return bad(
                "group_consumer_heartbeat_interval_ms",
                format!(
                    "{} must be at least 1 and below group_consumer_session_timeout_ms ({}, at most 2^31-1)",
                    self.group_consumer_heartbeat_interval_ms, self.group_consumer_session_timeout_ms
                ),
            );
        }
        if self.group_min_session_timeout_ms == 0 || self.group_min_session_timeout_ms > max_session_ms {
            return bad(
                "group_min_session_timeout_ms",
                format!("{} is outside 1..=2^32-1", self.group_min_session_timeout_ms),
            );
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms
            || self.group_max_session_timeout_ms > max_session_ms
        {
            return bad(
                "group_max_session_timeout_ms",
                format!(
                    "{} must be at least group_min_session_timeout_ms ({}) and below 2^32",
                    self.group_max_session_timeout_ms, self.group_min_session_timeout_ms
                ),
            );
        }
        if !(self.group_min_session_timeout_ms..=self.group_max_session_timeout_ms)
            .contains(&self.group_session_timeout_ms)
        {
            return bad(
                "group_session_timeout_ms",
                format!(
                    "{} is outside group_min_session_timeout_ms..=group_max_session_timeout_ms ({}..={})",
                    self.group_session_timeout_ms, self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
                ),
            );
        }
        if !(1..=1024).contains(&self.offsets_topic_partitions) {
            return bad("offsets_topic_partitions", format!("{} is outside 1..=1024", self.offsets_topic_partitions));
        }
        if self.leader_imbalance_check_interval_ms == 0 {
            return bad("leader_imbalance_check_interval_ms", "must be at least 1".into());
        }
        if self.leader_imbalance_per_broker_percentage > 100 {
            return bad(
                "leader_imbalance_per_broker_percentage",
                format!("{} is outside 0..=100", self.leader_imbalance_per_broker_percentage),
            );
        }
        if self.max_groups == 0 {
            return bad("max_groups", "must be at least 1".into());
        }
        if self.max_members_per_group == 0 {
            return bad("max_members_per_group", "must be at least 1".into());
        }
        if self.max_topics_per_member == 0 {
            return bad("max_topics_per_member", "must be at least 1".into());
        }
        if self.group_offsets_retention_ms == Some(0) {
            return bad("group_offsets_retention_ms", "must be at least 1 (or unset to keep offsets)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
        assert_eq!(BrokerConfig::for_tests("/tmp/x").validate(), Ok(()));
    }

    #[test]
    fn the_schema_registry_shares_no_listeners_port_but_port_0_is_always_free() {
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = BrokerConfig { schema_registry_listen: Some(free), ..BrokerConfig::for_tests("/tmp/x") };
        assert_eq!(config.admin_listen, Some(free), "the admin listener also on port 0");
        assert_eq!(config.validate(), Ok(()));
        let admin = SocketAddr::from(([127, 0, 0, 1], 9644));
        let taken = BrokerConfig {
            admin_listen: Some(admin),
            schema_registry_listen: Some(admin),
            ..BrokerConfig::for_tests("/tmp/x")
        };
        assert_eq!(taken.validate().map_err(|e| e.setting), Err("schema_registry_listen"));
    }

    #[test]
    fn a_rack_is_a_short_zone_like_name() {
        for good in ["us-east-1a", "use1-az1", "dc2:row4", "rack_7.b"] {
            assert_eq!(check_rack(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "zone/1", "é", &"r".repeat(MAX_RACK_BYTES + 1)] {
            assert!(check_rack(bad).is_err(), "{bad:?}");
        }
        let config = BrokerConfig { rack: Some("zone a".into()), ..BrokerConfig::default() };
        let refused = config.validate().expect_err("a space");
        assert_eq!(refused.setting, "rack");
        assert!(refused.reason.contains("letters, digits"), "{}", refused.reason);
    }

    #[test]
    fn advertise_is_host_and_port_with_ipv6_in_brackets() {
        assert_eq!(parse_advertise("kafka.example:9092"), Ok(("kafka.example".into(), 9092)));
        assert_eq!(parse_advertise("[::1]:19092"), Ok(("::1".into(), 19092)));
        for bad in ["nohost", ":9092", "host:0", "host:port", "host:70000"] {
            assert!(parse_advertise(bad).is_err(), "{bad}");
        }
        let config = BrokerConfig { advertise: Some("host".into()), ..BrokerConfig::default() };
        assert_eq!(config.validate().map_err(|e| e.setting), Err("advertise"));
    }

    #[test]
    fn a_bad_setting_is_named() {
        let config = BrokerConfig { max_request_bytes: 10, ..BrokerConfig::default() };
        assert_eq!(config.validate().map_err(|e| e.setting), Err("max_request_bytes"));
        let config = BrokerConfig { http2_max_frame_bytes: 1, ..BrokerConfig::default() };
        assert_eq!(config.validate().map_err(|e| e.setting), Err("http2_max_frame_bytes"));
    }

    #[test]
    fn per_ip_connection_limits_read_from_a_file_with_overrides_by_address() {
        let file =
            "max_connections_per_ip = 100\n[max_connections_per_ip_overrides]\n\"10.0.0.5\" = 2000\n\"::1\" = 7\n";
        let config: BrokerConfig = toml::from_str(file).expect("limits");
        assert_eq!(config.max_connections_per_ip, Some(100));
        let overrides: Vec<(String, usize)> =
            config.max_connections_per_ip_overrides.iter().map(|(ip, limit)| (ip.to_string(), *limit)).collect();
        assert_eq!(overrides, vec![("10.0.0.5".to_string(), 2000), ("::1".to_string(), 7)]);
        assert_eq!(config.validate(), Ok(()));
        assert!(toml::from_str::<BrokerConfig>("[max_connections_per_ip_overrides]\n\"host.example\" = 1").is_err());
        assert_eq!(BrokerConfig::default().max_connections_per_ip, None, "no limit per address unless set");
    }

    #[test]
    fn default_compression_reads_from_a_file_and_a_level_out_of_range_is_named() {
        let file = "default_compression_type = \"zstd\"\n[default_compression_levels]\nzstd = 19\ngzip = -1\n";
        let config: BrokerConfig = toml::from_str(file).expect("compression defaults");
        assert_eq!(config.default_compression_type, crate::meta::TopicCompression::Zstd);
        assert_eq!(config.default_compression_levels.get(rill_protocol::Compression::Zstd), Some(19));
        assert_eq!(config.validate(), Ok(()));
        assert!(toml::from_str::<BrokerConfig>("default_compression_type = \"brotli\"").is_err());
        assert!(toml::from_str::<BrokerConfig>("[default_compression_levels]\nsnappy = 1").is_err());
        let config: BrokerConfig = toml::from_str("[default_compression_levels]\nlz4 = 18").expect("a number");
        let refused = config.validate().expect_err("past lz4's 17");
        assert_eq!(refused.setting, "default_compression_levels.lz4");
        assert!(refused.reason.contains("18 is not a level") && refused.reason.contains("1 to 17"), "{refused}");
    }

    #[test]
    fn worker_threads_0_is_the_machines_default_and_a_count_past_the_limit_is_named() {
        assert_eq!(BrokerConfig::default().worker_threads, 0);
        let config: BrokerConfig = toml::from_str("worker_threads = 1").expect("a count");
        assert_eq!((config.worker_threads, config.validate()), (1, Ok(())));
        let config = BrokerConfig { worker_threads: MAX_WORKER_THREADS, ..BrokerConfig::default() };
        assert_eq!(config.validate(), Ok(()));
        let config = BrokerConfig { worker_threads: MAX_WORKER_THREADS + 1, ..BrokerConfig::default() };
        let refused = config.validate().expect_err("past the limit");
        assert_eq!(refused.setting, "worker_threads");
        assert!(refused.reason.contains("0..=1024"), "{}", refused.reason);
        assert!(toml::from_str::<BrokerConfig>("worker_threads = -1").is_err());
        assert!(toml::from_str::<BrokerConfig>("worker_threads = \"two\"").is_err());
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert!((1..=cores).contains(&default_worker_threads()), "{} on {cores} cores", default_worker_threads());
    }

    #[test]
    fn a_toml_file_overrides_only_what_it_names_and_rejects_unknown_keys() {
        let config: BrokerConfig = toml::from_str("max_topics = 5\ndefault_durability = \"always\"").unwrap();
        assert_eq!(config.max_topics, 5);
        assert_eq!(config.default_durability, DurabilityPolicy::Always);
        assert_eq!(config.max_batch_bytes, BrokerConfig::default().max_batch_bytes);
        assert!(toml::from_str::<BrokerConfig>("max_topic = 5").is_err());
    }

    #[test]
    fn otlp_endpoint_is_an_http_url_with_host_and_port() {
        assert!(check_otlp_endpoint("http://127.0.0.1:4317").is_ok());
        assert!(check_otlp_endpoint("https://collector.internal:4317/").is_ok());
        for bad in ["127.0.0.1:4317", "http://127.0.0.1", "http://:4317", "grpc://x:1", "http://x:0", "http://x:port"] {
            assert!(check_otlp_endpoint(bad).is_err(), "{bad} accepted");
        }
        let config = BrokerConfig { otlp_endpoint: Some("localhost:4317".into()), ..BrokerConfig::default() };
        assert_eq!(config.validate().map_err(|e| e.setting), Err("otlp_endpoint"));
    }

    #[test]
    fn admin_listen_is_an_address_or_off() {
        let config: BrokerConfig = toml::from_str("admin_listen = \"off\"").unwrap();
        assert_eq!(config.admin_listen, None);
        let config: BrokerConfig = toml::from_str("admin_listen = \"0.0.0.0:9645\"").unwrap();
        assert_eq!(config.admin_listen, Some(SocketAddr::from(([0, 0, 0, 0], 9645))));
        let err = toml::from_str::<BrokerConfig>("admin_listen = \"localhost\"").unwrap_err();
        assert!(err.to_string().contains("nor off"), "{err}");
        assert_eq!(BrokerConfig::default().admin_listen.map(|a| a.port()), Some(DEFAULT_ADMIN_PORT));
    }

    #[test]
    fn the_default_admin_port_follows_the_listen_port() {
        let admin = |listen: &str| default_admin_listen(listen.parse().unwrap());
        assert_eq!(admin("127.0.0.1:9092"), "127.0.0.1:9644".parse().unwrap());
        assert_eq!(admin("127.0.0.1:9094"), "127.0.0.1:9646".parse().unwrap());
        // The admin listener stays on loopback whatever the broker listens on.
        assert_eq!(admin("0.0.0.0:19092"), "127.0.0.1:19644".parse().unwrap());
        assert_eq!(admin("[::1]:9093"), "127.0.0.1:9645".parse().unwrap());
        assert_eq!(admin("127.0.0.1:0"), "127.0.0.1:9644".parse().unwrap());
        assert_eq!(admin("127.0.0.1:65500"), "127.0.0.1:9644".parse().unwrap());
    }
}
