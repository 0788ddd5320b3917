//! `rill broker`: settings from defaults, then a TOML file, then `RILL_*` environment variables, then flags
//! (each overriding the one before); runs the node until SIGINT/SIGTERM, then shuts down gracefully (a second
//! signal stops it at once, with exit status 1).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use rill_broker::{
    AdminAuth, AuthorizationMode, Broker, BrokerConfig, ClientAuth, ConsoleMode, DurabilityPolicy, SaslMechanism,
    TlsConfig,
};
use rill_http_proxy::{HttpProxy, ProxyConfig};

const EXAMPLES: &str = "\
Examples:
  rill broker                                   # ./rill-data, 127.0.0.1:9092
  rill broker --data-dir /var/lib/rill --listen 0.0.0.0:9092 --tls-cert node.pem --tls-key node.key \
      --tls-client-ca clients-ca.pem            # off loopback: clients must authenticate (or --allow-insecure)
  rill broker --authorization on --super-users User:admin     # ACLs decide (`rill acl`; docs/security.md)
  rill broker --config rill.toml                # any BrokerConfig field, e.g. max_topics = 100
  RILL_LISTEN=127.0.0.1:0 rill broker           # a free port; the chosen address is printed on stdout
  rill broker --admin-listen 0.0.0.0:9644       # /metrics, /health, /ready for Prometheus (off: none)
  rill broker --tls-cert node.pem --tls-key node.key          # TLS for gRPC and Kafka (docs/security.md)
  rill broker --tls-cert node.pem --tls-key node.key --tls-client-ca clients-ca.pem  # mutual TLS
  rill broker --otlp-endpoint http://127.0.0.1:4317   # request spans to an OpenTelemetry collector
  rill broker --console read-only               # the web console at http://127.0.0.1:9644/ changes nothing
  rill broker --require-auth --tls-cert node.pem --tls-key node.key --admin-tls
                                                # console sign-in, /metrics by bearer token, all over https
  rill broker --node-id 1 --data-dir d1 --listen 127.0.0.1:9092 \
      --peers 1@127.0.0.1:9092,2@127.0.0.1:9093,3@127.0.0.1:9094   # one of three nodes (docs/cluster.md)

Logs go to stderr; RUST_LOG=debug shows per-request detail.";

#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct BrokerArgs {
    /// Data directory (created if missing). [default: ./rill-data]
    #[arg(long, env = "RILL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. [default: 127.0.0.1:9092]
    #[arg(long, env = "RILL_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// HOST:PORT Kafka clients are told to connect to (behind NAT, in a container). [default: the listen
    /// address, 0.0.0.0 as 127.0.0.1]
    #[arg(long, env = "RILL_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Address of the admin HTTP listener (/metrics, /health, /ready), or `off`. [default: 127.0.0.1, on the
    /// listen port + 552: 9644 for 9092, 9645 for 9093]
    #[arg(long, env = "RILL_ADMIN_LISTEN", value_name = "ADDR|off", value_parser = parse_admin_listen)]
    admin_listen: Option<AdminListen>,
    /// Serve Confluent Schema Registry's REST API here (Avro schemas, for Confluent's serializers), e.g.
    /// 127.0.0.1:8081; over TLS with --admin-tls, with the admin listener's authentication. [default: off]
    #[arg(long, env = "RILL_SCHEMA_REGISTRY_LISTEN", value_name = "ADDR")]
    schema_registry_listen: Option<std::net::SocketAddr>,
    /// Serve Confluent REST Proxy's API v2 here (produce and consume over HTTP as JSON), e.g. 127.0.0.1:8082: a
    /// client of this broker, so its authentication and ACLs apply to each caller's bearer token. Needs the
    /// broker port without TLS (with TLS, run `rill http-proxy` beside it). [default: off]
    #[arg(long, env = "RILL_HTTP_PROXY_LISTEN", value_name = "ADDR")]
    http_proxy_listen: Option<std::net::SocketAddr>,
    /// The web console at the admin listener's root: on, read-only (no action that changes anything) or off.
    /// [default: on]
    #[arg(long, env = "RILL_CONSOLE", value_name = "on|read-only|off", value_parser = parse_console)]
    console: Option<ConsoleMode>,
    /// Export request spans (produce, fetch, commit, with topic, partition, offset) to this OTLP/gRPC endpoint,
    /// e.g. http://127.0.0.1:4317 (an OpenTelemetry collector). [default: off]
    #[arg(long, env = "RILL_OTLP_ENDPOINT", value_name = "URL", value_parser = parse_otlp_endpoint)]
    otlp_endpoint: Option<String>,
    /// TOML file with broker settings (field names as in BrokerConfig, e.g. `max_topics = 100`).
    #[arg(long, env = "RILL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Most topics the broker holds.
    #[arg(long, env = "RILL_MAX_TOPICS")]
    max_topics: Option<u32>,
    /// Most partitions per topic.
    #[arg(long, env = "RILL_MAX_PARTITIONS_PER_TOPIC")]
    max_partitions_per_topic: Option<u32>,
    /// Largest record batch accepted, in bytes.
    #[arg(long, env = "RILL_MAX_BATCH_BYTES")]
    max_batch_bytes: Option<u64>,
    /// Largest gRPC request accepted, in bytes (at least --max-batch-bytes).
    #[arg(long, env = "RILL_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<u64>,
    /// Durability policy of new topics: always, interval or never.
    #[arg(long, env = "RILL_DEFAULT_DURABILITY", value_parser = parse_durability)]
    default_durability: Option<DurabilityPolicy>,
    /// Flush interval of new topics with interval durability, in ms.
    #[arg(long, env = "RILL_DEFAULT_FLUSH_INTERVAL_MS")]
    default_flush_interval_ms: Option<u64>,
    /// Segment size of new topics, in bytes.
    #[arg(long, env = "RILL_DEFAULT_SEGMENT_BYTES")]
    default_segment_bytes: Option<u64>,
    /// Retention by age of new topics, in ms; -1 or `forever` keeps their records forever. [default: 7 days]
    #[arg(long, env = "RILL_DEFAULT_RETENTION_MS", allow_hyphen_values = true,
          value_parser = crate::topic::parse_retention)]
    default_retention_ms: Option<u64>,
    /// Kafka clients push these of their metrics to the node every --client-metrics-interval-ms, shown on
    /// /metrics as kafka_client_* (KIP-714): name prefixes, comma-separated (org.apache.kafka.producer.,...), or *
    /// for all. Adds a subscription named cli matching every client; [[client_metrics]] in the file matches some.
    #[arg(long, env = "RILL_CLIENT_METRICS", value_name = "PREFIXES", value_delimiter = ',')]
    client_metrics: Option<Vec<String>>,
    /// How often clients push the metrics --client-metrics names, in ms (100 to 3600000). [default: 300000]
    #[arg(long, env = "RILL_CLIENT_METRICS_INTERVAL_MS", value_name = "MS", requires = "client_metrics")]
    client_metrics_interval_ms: Option<u32>,
    /// Compression of new topics that do not set their own compression.type (Kafka's broker compression.type):
    /// producer keeps each batch as its producer compressed it; uncompressed, gzip, snappy, lz4 or zstd has the
    /// broker store every batch in that codec. [default: producer]
    #[arg(long, env = "RILL_DEFAULT_COMPRESSION_TYPE", value_name = "TYPE", value_parser = parse_compression_type)]
    default_compression_type: Option<rill_broker::TopicCompression>,
    /// Partitions of compacted topics compacted at once (Kafka's log.cleaner.threads), 1 to 64; each may hold
    /// 64 MiB of keys. [default: 1]
    #[arg(long, env = "RILL_LOG_CLEANER_THREADS", value_name = "N")]
    log_cleaner_threads: Option<usize>,
    /// Partitions of a topic created without a count (a Kafka CreateTopics with num_partitions -1, a topic
    /// created automatically; Kafka's num.partitions), 1 to --max-partitions-per-topic. [default: 1]
    #[arg(long, env = "RILL_DEFAULT_PARTITIONS", value_name = "N")]
    default_partitions: Option<u32>,
    /// Replicas of each partition of a topic created without a replication factor (Kafka's
    /// default.replication.factor): 1 on a single node; on a cluster at most its alive nodes. [default: 1]
    #[arg(long, env = "RILL_DEFAULT_REPLICATION_FACTOR", value_name = "N")]
    default_replication_factor: Option<u32>,
    /// Create a topic that does not exist when a Kafka client's Metadata request allows it or a rill producer
    /// first sends to it, with --default-partitions and --default-replication-factor, if the client may create
    /// it (Kafka's auto.create.topics.enable). [default: off]
    #[arg(long, env = "RILL_AUTO_CREATE_TOPICS")]
    auto_create_topics: bool,
    /// gzip level of new topics (compression.gzip.level): 1 to 9, or -1 for zlib's default (6).
    #[arg(long, env = "RILL_DEFAULT_COMPRESSION_GZIP_LEVEL", value_name = "LEVEL", allow_hyphen_values = true,
          value_parser = |text: &str| parse_level(rill_protocol::Compression::Gzip, text))]
    default_compression_gzip_level: Option<i32>,
    /// lz4 level of new topics (compression.lz4.level): 1 to 17; 9, the default, is LZ4's fast compressor.
    #[arg(long, env = "RILL_DEFAULT_COMPRESSION_LZ4_LEVEL", value_name = "LEVEL",
          value_parser = |text: &str| parse_level(rill_protocol::Compression::Lz4, text))]
    default_compression_lz4_level: Option<i32>,
    /// zstd level of new topics (compression.zstd.level): -131072 to 22. [default: 3]
    #[arg(long, env = "RILL_DEFAULT_COMPRESSION_ZSTD_LEVEL", value_name = "LEVEL", allow_hyphen_values = true,
          value_parser = |text: &str| parse_level(rill_protocol::Compression::Zstd, text))]
    default_compression_zstd_level: Option<i32>,
    /// How appends reach the disk: direct (O_DIRECT, bypassing the page cache) or buffered.
    #[arg(long, env = "RILL_WRITE_MODE", value_enum)]
    write_mode: Option<WriteModeArg>,
    /// Most partition appends writing to the disk at once (default 4; raise it for devices that want a deeper
    /// queue).
    #[arg(long, env = "RILL_APPENDS_IN_FLIGHT")]
    appends_in_flight: Option<usize>,
    /// Most bytes of recent appends kept in memory for consumers at the tail, over all partitions (oldest
    /// evicted first); 0 turns the cache off. [default: 1/8 of the machine's memory, at most 1 GiB]
    #[arg(long, env = "RILL_TAIL_CACHE_BYTES", value_name = "BYTES")]
    tail_cache_bytes: Option<u64>,
    /// Free space kept on the data dir's file system for the node's metadata: below it, appends are refused
    /// with disk-full and a cluster node's leaderships move to in-sync replicas; 0 keeps none. [default: 5% of
    /// the file system, at most 1 GiB]
    #[arg(long, env = "RILL_MIN_FREE_DISK_BYTES", value_name = "BYTES")]
    min_free_disk_bytes: Option<u64>,
    /// Worker threads of the broker's async runtime (at most 1024); 0 is one per core. [default: 0]
    #[arg(long, env = "RILL_WORKER_THREADS", value_name = "N")]
    worker_threads: Option<usize>,
    /// This node's id in its cluster (required with --peers).
    #[arg(long, env = "RILL_NODE_ID", value_name = "ID")]
    node_id: Option<u64>,
    /// Every node of the cluster, this one included: ID@HOST:PORT,... (1, 3 or 5 nodes). Without it the node
    /// is a cluster of one.
    #[arg(long, env = "RILL_PEERS", value_name = "PEERS", value_parser = parse_peers)]
    peers: Option<Peers>,
    /// Join a running cluster through any of its nodes (HOST:PORT,...) instead of --peers; then add this node
    /// with `rill cluster add-node` (docs/cluster.md).
    #[arg(long, env = "RILL_JOIN", value_name = "ADDRESSES", value_delimiter = ',', conflicts_with = "peers")]
    join: Option<Vec<String>>,
    /// The rack or availability zone this node is in (Kafka's broker.rack): replicas spread over racks, and
    /// Kafka consumers that set client.rack read from a replica in theirs.
    #[arg(long, env = "RILL_RACK", value_name = "RACK")]
    rack: Option<String>,
    /// Whether a leader sends a Kafka consumer with client.rack to an in-sync replica in its rack (KIP-392),
    /// on or off. [default: on]
    #[arg(long, env = "RILL_FOLLOWER_FETCHING", value_name = "on|off", value_parser = parse_on_off)]
    follower_fetching: Option<bool>,
    /// On a cluster: whether the controller leader hands leaderships back to their preferred replicas by
    /// itself, on or off (Kafka's auto.leader.rebalance.enable). [default: on]
    #[arg(long, env = "RILL_AUTO_LEADER_REBALANCE", value_name = "on|off", value_parser = parse_on_off)]
    auto_leader_rebalance: Option<bool>,
    /// How often the controller leader checks the leadership balance. [default: 300000]
    #[arg(long, env = "RILL_LEADER_IMBALANCE_CHECK_INTERVAL_MS", value_name = "MS")]
    leader_imbalance_check_interval_ms: Option<u64>,
    /// A node whose preferred partitions are led elsewhere for more than this percentage gets them back.
    /// [default: 10]
    #[arg(long, env = "RILL_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE", value_name = "PERCENT")]
    leader_imbalance_per_broker_percentage: Option<u32>,
    /// Where a Kafka share group (KIP-932) starts on a partition it has never read: the log's start or its end
    /// (Kafka's share.auto.offset.reset). [default: latest]
    #[arg(long, env = "RILL_SHARE_AUTO_OFFSET_RESET", value_name = "earliest|latest", value_parser = parse_share_reset)]
    share_auto_offset_reset: Option<rill_broker::share_groups::ShareOffsetReset>,
    /// How long a share group member holds a record it fetched before the record goes back to the group
    /// (1000..=3600000; Kafka's group.share.record.lock.duration.ms). [default: 30000]
    #[arg(long, env = "RILL_SHARE_RECORD_LOCK_MS", value_name = "MS")]
    share_record_lock_ms: Option<u64>,
    /// Deliveries of a record to a share group before it is given up instead of delivered again (2..=10;
    /// Kafka's group.share.delivery.count.limit). [default: 5]
    #[arg(long, env = "RILL_SHARE_DELIVERY_COUNT_LIMIT", value_name = "N")]
    share_delivery_count_limit: Option<u16>,
    /// What a share group's dead-letter topic (its errors.deadletterqueue.topic.name) must start with; empty for
    /// any name (Kafka's errors.deadletterqueue.topic.name.prefix). [default: dlq.]
    #[arg(long, env = "RILL_DEAD_LETTER_TOPIC_PREFIX", value_name = "PREFIX")]
    dead_letter_topic_prefix: Option<String>,
    /// Create a share group's dead-letter topic that does not exist at its first dead letter: one partition,
    /// opted in (Kafka's errors.deadletterqueue.auto.create.topics.enable). [default: off]
    #[arg(long, env = "RILL_DEAD_LETTER_AUTO_CREATE_TOPICS")]
    dead_letter_auto_create_topics: bool,
    /// Serve gRPC and Kafka over TLS with this certificate chain (PEM, leaf first); needs --tls-key. Reloaded
    /// on SIGHUP and when the file changes.
    #[arg(long, env = "RILL_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "RILL_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ask clients for a certificate issued by this CA (PEM): mutual TLS.
    #[arg(long, env = "RILL_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: refuse clients without a certificate (required, the default) or accept them
    /// (optional; a certificate given is still checked).
    #[arg(long, env = "RILL_TLS_CLIENT_AUTH", value_name = "required|optional", value_parser = parse_client_auth)]
    tls_client_auth: Option<ClientAuth>,
    /// On a cluster: the CA (PEM) the other nodes' certificates must chain to when this node dials them; this
    /// node presents its --tls-cert. [default: --tls-client-ca, else the public roots]
    #[arg(long, env = "RILL_CLUSTER_TLS_CA", value_name = "FILE")]
    cluster_tls_ca: Option<PathBuf>,
    /// SASL mechanisms Kafka clients must authenticate with, comma-separated: SCRAM-SHA-256, SCRAM-SHA-512,
    /// PLAIN, OAUTHBEARER (PLAIN and OAUTHBEARER need TLS, or --sasl-plain-without-tls; OAUTHBEARER needs
    /// --oauth-jwks). Users: `rill user create`.
    #[arg(long, env = "RILL_KAFKA_SASL_MECHANISMS", value_name = "LIST", value_parser = parse_sasl_mechanisms)]
    kafka_sasl_mechanisms: Option<SaslMechanisms>,
    /// Offer PLAIN and OAUTHBEARER on a listener without TLS (the password or token crosses the network in the
    /// clear).
    #[arg(long, env = "RILL_SASL_PLAIN_WITHOUT_TLS")]
    sasl_plain_without_tls: bool,
    /// The identity provider's public keys OAuth bearer tokens (JWTs) are checked against: its JWKS URL
    /// (https:// or http://, OIDC's jwks_uri) or a file. Enables SASL OAUTHBEARER (with
    /// --kafka-sasl-mechanisms) and JWTs as bearer tokens on gRPC and the admin listener.
    #[arg(long, env = "RILL_OAUTH_JWKS", value_name = "URL|FILE")]
    oauth_jwks: Option<String>,
    /// A CA (PEM) for an https:// --oauth-jwks, beside the public ones.
    #[arg(long, env = "RILL_OAUTH_JWKS_CA", value_name = "FILE")]
    oauth_jwks_ca: Option<PathBuf>,
    /// The issuer (iss) every token must name. [default: any]
    #[arg(long, env = "RILL_OAUTH_ISSUER", value_name = "ISSUER")]
    oauth_issuer: Option<String>,
    /// Audiences, comma-separated, one of which every token's aud must name. [default: aud not checked]
    #[arg(long, env = "RILL_OAUTH_AUDIENCE", value_name = "LIST", value_delimiter = ',')]
    oauth_audience: Option<Vec<String>>,
    /// KIP-368: a Kafka client's SASL authentication lasts this long (or until its OAuth token expires, if
    /// sooner); it re-authenticates on its connection before then, or the connection is closed. 0: as long as
    /// the connection, as Kafka's connections.max.reauth.ms. [default: 0]
    #[arg(long, env = "RILL_CONNECTIONS_MAX_REAUTH_MS", value_name = "MS")]
    connections_max_reauth_ms: Option<u64>,
    /// The token claim that names the principal (User:VALUE). [default: sub]
    #[arg(long, env = "RILL_OAUTH_PRINCIPAL_CLAIM", value_name = "CLAIM")]
    oauth_principal_claim: Option<String>,
    /// Refuse gRPC calls without a valid bearer token (`rill token create USER`), UNAUTHENTICATED; also turns
    /// on --admin-auth required unless that says otherwise.
    #[arg(long, env = "RILL_REQUIRE_AUTH")]
    require_auth: bool,
    /// The admin listener: `required` (the console asks users to sign in; /metrics and the console take a
    /// bearer token; /health and /ready stay open) or `off`. [default: required with --require-auth, else off]
    #[arg(long, env = "RILL_ADMIN_AUTH", value_name = "required|off", value_parser = parse_admin_auth)]
    admin_auth: Option<AdminAuth>,
    /// Serve the admin listener (console, /metrics, /health, /ready) over TLS with --tls-cert and --tls-key.
    #[arg(long, env = "RILL_ADMIN_TLS")]
    admin_tls: bool,
    /// Whether ACLs decide what each principal may do (`rill acl`): off (the default) or on.
    #[arg(long, env = "RILL_AUTHORIZATION", value_name = "off|on", value_parser = parse_authorization)]
    authorization: Option<AuthorizationMode>,
    /// Principals that may do everything whatever the ACLs say, comma-separated: User:admin,User:ops.
    #[arg(long, env = "RILL_SUPER_USERS", value_name = "LIST", value_delimiter = ',')]
    super_users: Option<Vec<String>>,
    /// On a cluster with client certificates: the principals of the certificates the nodes present to each
    /// other, comma-separated (User:node). A call forwarded over such a connection acts as the client it is
    /// forwarded for; from any other connection a forwarded principal is refused.
    #[arg(long, env = "RILL_NODE_PRINCIPALS", value_name = "LIST", value_delimiter = ',')]
    node_principals: Option<Vec<String>>,
    /// On a cluster: a file holding the secret every node shares (`openssl rand -hex 32`). Each node sends it
    /// on its node-to-node calls and refuses such calls without it: how nodes tell each other from clients
    /// without client certificates.
    #[arg(long, env = "RILL_CLUSTER_SECRET_FILE", value_name = "PATH")]
    cluster_secret_file: Option<std::path::PathBuf>,
    /// Listen on a non-loopback address although clients need not authenticate (a trusted network only).
    #[arg(long, env = "RILL_ALLOW_INSECURE")]
    allow_insecure: bool,
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{text:?} is not one of on, off")),
    }
}

fn parse_share_reset(text: &str) -> Result<rill_broker::share_groups::ShareOffsetReset, String> {
    use rill_broker::share_groups::ShareOffsetReset;
    match text {
        "earliest" => Ok(ShareOffsetReset::Earliest),
        "latest" => Ok(ShareOffsetReset::Latest),
        _ => Err(format!("{text:?} is not one of earliest, latest")),
    }
}

fn parse_authorization(text: &str) -> Result<AuthorizationMode, String> {
    AuthorizationMode::parse(text).ok_or_else(|| format!("{text:?} is not one of off, on"))
}

fn parse_admin_auth(text: &str) -> Result<AdminAuth, String> {
    AdminAuth::parse(text).ok_or_else(|| format!("{text:?} is not one of required, off"))
}

/// `--kafka-sasl-mechanisms`, parsed (a newtype: clap would read a bare `Vec` as a repeated flag).
#[derive(Debug, Clone)]
pub struct SaslMechanisms(Vec<SaslMechanism>);

fn parse_sasl_mechanisms(text: &str) -> Result<SaslMechanisms, String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| SaslMechanism::try_from(name.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map(SaslMechanisms)
}

fn parse_otlp_endpoint(text: &str) -> Result<String, String> {
    rill_broker::check_otlp_endpoint(text).map(|()| text.to_string())
}

fn parse_client_auth(text: &str) -> Result<ClientAuth, String> {
    ClientAuth::parse(text).ok_or_else(|| format!("{text:?} is not one of required, optional"))
}

/// `--peers`, parsed (a newtype: clap would read a bare `Vec` as a repeated flag).
#[derive(Debug, Clone)]
pub struct Peers(Vec<rill_broker::Peer>);

fn parse_peers(text: &str) -> Result<Peers, String> {
    rill_broker::parse_peers(text).map(Peers)
}

/// `--admin-listen`, parsed (a newtype: clap would read `Option<Option<_>>` as a flag with an optional value).
#[derive(Debug, Clone)]
pub struct AdminListen(Option<SocketAddr>);

fn parse_admin_listen(text: &str) -> Result<AdminListen, String> {
    rill_broker::parse_admin_listen(text).map(AdminListen)
}

/// `--write-mode`: how partition logs are appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteModeArg {
    /// O_DIRECT from the broker's own buffer: no page-cache copy, no writeback backlog.
    Direct,
    /// Through the page cache.
    Buffered,
}

fn parse_console(text: &str) -> Result<ConsoleMode, String> {
    ConsoleMode::parse(text).ok_or_else(|| format!("{text:?} is not one of on, read-only, off"))
}

fn parse_compression_type(text: &str) -> Result<rill_broker::TopicCompression, String> {
    use rill_broker::TopicCompression;
    TopicCompression::parse(text).ok_or_else(|| format!("{text:?} is not one of {}", TopicCompression::NAMES))
}

fn parse_level(codec: rill_protocol::Compression, text: &str) -> Result<i32, String> {
    rill_broker::CompressionLevels::parse(codec, text).map_err(|reason| format!("{text:?} {reason}"))
}

fn parse_durability(text: &str) -> Result<DurabilityPolicy, String> {
    DurabilityPolicy::parse(text).ok_or_else(|| format!("{text:?} is not one of always, interval, never"))
}

impl BrokerArgs {
    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        let mut file_sets_admin_listen = false;
        let mut config: BrokerConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                let config =
                    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
                file_sets_admin_listen =
                    toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.contains_key("admin_listen"));
                config
            }
            None => BrokerConfig::default(),
        };
        if !file_sets_admin_listen && self.admin_listen.is_none() {
            let listen = self.listen.unwrap_or(config.listen);
            config.admin_listen = Some(rill_broker::default_admin_listen(listen));
        }
        if let Some(v) = self.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = self.listen {
            config.listen = v;
        }
        if let Some(v) = self.advertise {
            config.advertise = Some(v);
        }
        if let Some(v) = self.schema_registry_listen {
            config.schema_registry_listen = Some(v);
        }
        if let Some(AdminListen(v)) = self.admin_listen {
            config.admin_listen = v;
        }
        if let Some(v) = self.console {
            config.console = v;
        }
        if let Some(v) = self.otlp_endpoint {
            config.otlp_endpoint = Some(v);
        }
        if let Some(v) = self.max_topics {
            config.max_topics = v;
        }
        if let Some(v) = self.max_partitions_per_topic {
            config.max_partitions_per_topic = v;
        }
        if let Some(v) = self.max_batch_bytes {
            config.max_batch_bytes = v;
            // Keep the request limit consistent with the batch limit unless it is set explicitly.
            config.max_request_bytes = config.max_request_bytes.max(v + rill_protocol::MESSAGE_OVERHEAD_BYTES as u64);
        }
        if let Some(v) = self.max_request_bytes {
            config.max_request_bytes = v;
        }
        if let Some(v) = self.default_durability {
            config.default_durability = v;
        }
        if let Some(v) = self.default_flush_interval_ms {
            config.default_flush_interval_ms = v;
        }
        if let Some(v) = self.default_segment_bytes {
            config.default_segment_bytes = v;
        }
        if let Some(v) = self.default_retention_ms {
            config.default_retention_ms = (v != u64::MAX).then_some(v);
        }
        if let Some(metrics) = self.client_metrics {
            config.client_metrics.push(rill_broker::client_telemetry::ClientMetricsSubscription {
                name: "cli".into(),
                metrics,
                interval_ms: self
                    .client_metrics_interval_ms
                    .unwrap_or(rill_broker::client_telemetry::DEFAULT_INTERVAL_MS),
                matches: Default::default(),
            });
        }
        if let Some(v) = self.default_compression_type {
            config.default_compression_type = v;
        }
        if let Some(v) = self.log_cleaner_threads {
            config.log_cleaner_threads = v;
        }
        if let Some(v) = self.default_partitions {
            config.default_partitions = v;
        }
        if let Some(v) = self.default_replication_factor {
            config.default_replication_factor = v;
        }
        if self.auto_create_topics {
            config.auto_create_topics = true;
        }
        if let Some(v) = self.default_compression_gzip_level {
            config.default_compression_levels.gzip = Some(v);
        }
        if let Some(v) = self.default_compression_lz4_level {
            config.default_compression_levels.lz4 = Some(v);
        }
        if let Some(v) = self.default_compression_zstd_level {
            config.default_compression_levels.zstd = Some(v);
        }
        if let Some(v) = self.write_mode {
            config.direct_writes = v == WriteModeArg::Direct;
        }
        if let Some(v) = self.appends_in_flight {
            config.appends_in_flight = v;
        }
        if let Some(v) = self.tail_cache_bytes {
            config.tail_cache_bytes = Some(v);
        }
        if let Some(v) = self.min_free_disk_bytes {
            config.min_free_disk_bytes = Some(v);
        }
        if let Some(v) = self.worker_threads {
            config.worker_threads = v;
        }
        if let Some(v) = self.node_id {
            config.node_id = Some(v);
        }
        if let Some(Peers(v)) = self.peers {
            config.peers = v;
        }
        if let Some(v) = self.rack {
            config.rack = Some(v);
        }
        if let Some(v) = self.follower_fetching {
            config.follower_fetching = v;
        }
        if let Some(v) = self.auto_leader_rebalance {
            config.auto_leader_rebalance_enable = v;
        }
        if let Some(v) = self.leader_imbalance_check_interval_ms {
            config.leader_imbalance_check_interval_ms = v;
        }
        if let Some(v) = self.leader_imbalance_per_broker_percentage {
            config.leader_imbalance_per_broker_percentage = v;
        }
        if let Some(v) = self.share_auto_offset_reset {
            config.share_auto_offset_reset = v;
        }
        if let Some(v) = self.share_record_lock_ms {
            config.share_record_lock_duration_ms = v;
        }
        if let Some(v) = self.share_delivery_count_limit {
            config.share_delivery_count_limit = v;
        }
        if let Some(v) = self.dead_letter_topic_prefix {
            config.dead_letter_topic_prefix = v;
        }
        if self.dead_letter_auto_create_topics {
            config.dead_letter_auto_create_topics = true;
        }
        if let Some(v) = self.join {
            config.join = v;
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            let tls = config.tls.get_or_insert_with(|| TlsConfig::new(&cert, &key));
            (tls.cert, tls.key) = (cert, key);
        }
        if self.tls_client_ca.is_some() || self.tls_client_auth.is_some() || self.cluster_tls_ca.is_some() {
            let Some(tls) = &mut config.tls else {
                anyhow::bail!(
                    "--tls-client-ca, --tls-client-auth and --cluster-tls-ca need TLS on: give --tls-cert and \
                     --tls-key too"
                );
            };
            if let Some(v) = self.cluster_tls_ca {
                tls.cluster_ca = Some(v);
            }
            if let Some(v) = self.tls_client_ca {
                tls.client_ca = Some(v);
            }
            if let Some(v) = self.tls_client_auth {
                tls.client_auth = Some(v);
            }
        }
        if let Some(SaslMechanisms(v)) = self.kafka_sasl_mechanisms {
            config.auth.kafka_sasl_mechanisms = v;
        }
        if self.sasl_plain_without_tls {
            config.auth.sasl_plain_without_tls = true;
        }
        if let Some(v) = self.connections_max_reauth_ms {
            config.auth.connections_max_reauth_ms = Some(v);
        }
        if let Some(jwks) = self.oauth_jwks {
            let oauth = config.auth.oauth.get_or_insert_with(|| rill_broker::OAuthConfig::new(jwks.clone()));
            oauth.jwks = jwks;
        }
        let oauth_flags_without_jwks =
            || anyhow::anyhow!("--oauth-* settings need the identity provider's keys: give --oauth-jwks URL|FILE");
        if let Some(v) = self.oauth_jwks_ca {
            config.auth.oauth.as_mut().ok_or_else(oauth_flags_without_jwks)?.jwks_ca = Some(v);
        }
        if let Some(v) = self.oauth_issuer {
            config.auth.oauth.as_mut().ok_or_else(oauth_flags_without_jwks)?.issuer = Some(v);
        }
        if let Some(v) = self.oauth_audience {
            let audience = v.into_iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
            config.auth.oauth.as_mut().ok_or_else(oauth_flags_without_jwks)?.audience = audience;
        }
        if let Some(v) = self.oauth_principal_claim {
            config.auth.oauth.as_mut().ok_or_else(oauth_flags_without_jwks)?.principal_claim = v;
        }
        if self.require_auth {
            config.auth.require_auth = true;
        }
        if let Some(v) = self.admin_auth {
            config.auth.admin_auth = Some(v);
        }
        if self.admin_tls {
            let Some(tls) = &mut config.tls else {
                anyhow::bail!("--admin-tls serves the admin listener with the broker's certificate: give --tls-cert and --tls-key too");
            };
            tls.admin = true;
        }
        if let Some(v) = self.authorization {
            config.auth.authorization = v;
        }
        if let Some(v) = self.super_users {
            config.auth.super_users = v.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        }
        if let Some(v) = self.node_principals {
            config.auth.node_principals =
                v.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        }
        if let Some(v) = self.cluster_secret_file {
            config.auth.cluster_secret_file = Some(v);
        }
        if self.allow_insecure {
            config.auth.allow_insecure = true;
        }
        config.validate()?;
        Ok(config)
    }
}

pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let http_proxy_listen = args.http_proxy_listen;
    let config = args.into_config()?;
    if http_proxy_listen.is_some() && config.tls.is_some() {
        anyhow::bail!(
            "--http-proxy-listen reaches this broker's port in plain text, and it listens with TLS: run `rill \
             http-proxy --broker https://HOST:PORT --tls-ca CA --listen ADDR` beside the broker instead"
        );
    }
    let runtime = crate::runtime::multi_thread(config.worker_threads)?;
    let telemetry = {
        let _in_runtime = runtime.enter();
        crate::telemetry::install(&config)?
    };
    let served = serve(&runtime, config, http_proxy_listen);
    // After the broker stopped (its last spans ended) and before the runtime goes (the exporter's channel
    // lives on it).
    telemetry.shutdown();
    served
}

fn serve(
    runtime: &tokio::runtime::Runtime,
    config: BrokerConfig,
    http_proxy_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        // Installed before the banner: from then on a SIGHUP reloads TLS files instead of ending the process.
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        let broker = Broker::start(config).await?;
        let http_proxy = match http_proxy_listen {
            None => None,
            Some(addr) => match start_http_proxy(addr, &broker).await {
                Ok(proxy) => Some(proxy),
                Err(refused) => {
                    broker.shutdown().await;
                    return Err(refused);
                }
            },
        };
        if crate::allocator::huge_pages() != crate::allocator::HugePages::On {
            tracing::info!(
                "transparent huge pages {}; {} sets on, off or auto",
                crate::allocator::huge_pages().describe(),
                crate::allocator::HUGE_PAGES_ENV
            );
        }
        // The first line on stdout: scripts and tests read the address from it (useful with port 0). The admin
        // address follows in the same write, so a reader that takes the first line and closes the pipe makes no
        // later write fail (tests with `--admin-listen 127.0.0.1:0` read the second line).
        let mut banner = format!("rill broker listening on {}\n", broker.addr());
        if let Some(admin) = broker.admin_url() {
            banner.push_str(&format!("rill admin listening on {admin}\n"));
        }
        if let Some(registry) = broker.schema_registry_url() {
            banner.push_str(&format!("rill schema registry listening on {registry}\n"));
        }
        if let Some(proxy) = &http_proxy {
            banner.push_str(&format!("rill http proxy listening on http://{}\n", proxy.local_addr()));
        }
        // A reader that went away is no reason to stop serving.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
        drop(stdout);
        let stopped = tokio::select! {
            signal = wait_for_signal() => signal,
            reason = broker.failed() => Err(anyhow::anyhow!("{reason}")),
            never = reload_tls_on_hangup(&broker, &mut hangup) => match never {},
        };
        // The proxy's callers go first: it is a client of this broker.
        if let Some(proxy) = http_proxy {
            proxy.shutdown();
        }
        if let Err(failure) = stopped {
            broker.shutdown().await;
            return Err(failure);
        }
        // A second signal during the graceful shutdown means "now": exit at once (logs recover on the next
        // start, as after a crash).
        tokio::select! {
            () = broker.shutdown() => Ok(()),
            second = wait_for_signal() => {
                second?;
                anyhow::bail!("second signal during shutdown: stopped without closing the logs cleanly")
            }
        }
    })
}

/// Serves the HTTP proxy on `addr`, a client of `broker` (at its own address; an unspecified one as loopback) and
/// of its schema registry.
async fn start_http_proxy(addr: SocketAddr, broker: &rill_broker::BrokerHandle) -> anyhow::Result<HttpProxy> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--http-proxy-listen {addr}: cannot listen there"))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the HTTP proxy listens in plain HTTP beyond this host: callers' bearer tokens cross the network unencrypted"
        );
    }
    let mut target = broker.addr();
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    // The avro format registers and reads schemas in this broker's own registry, when it serves one.
    let config = ProxyConfig { schema_registry: broker.schema_registry_url(), ..ProxyConfig::new(target.to_string()) };
    Ok(HttpProxy::start(listener, config)?)
}

/// Reloads the TLS files at each SIGHUP (the files are also watched; this is for operators who prefer to say
/// when). A failure keeps the certificate in use.
async fn reload_tls_on_hangup(
    broker: &rill_broker::BrokerHandle,
    hangup: &mut tokio::signal::unix::Signal,
) -> std::convert::Infallible {
    loop {
        if hangup.recv().await.is_none() {
            return std::future::pending().await;
        }
        match broker.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS files reloaded"),
            Ok(false) => tracing::info!("SIGHUP: nothing to reload (TLS is off)"),
            Err(error) => tracing::warn!(%error, "SIGHUP: TLS files cannot be loaded: keeping the ones in use"),
        }
    }
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    fn config_from(args: &[&str]) -> anyhow::Result<BrokerConfig> {
        let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("rill-broker").chain(args.iter().copied()))?;
        cli.broker.into_config()
    }

    #[test]
    fn a_rack_and_follower_fetching_come_from_their_flags_and_a_bad_rack_is_refused() {
        let config = config_from(&["--rack", "us-east-1a", "--follower-fetching", "off"]).expect("valid");
        assert_eq!((config.rack.as_deref(), config.follower_fetching), (Some("us-east-1a"), false));
        let defaults = config_from(&[]).expect("the defaults");
        assert_eq!((defaults.rack, defaults.follower_fetching), (None, true));
        let refused = config_from(&["--rack", "zone a"]).expect_err("a space").to_string();
        assert!(refused.contains("rack") && refused.contains("letters, digits"), "{refused}");
    }

    #[test]
    fn client_metrics_come_from_their_flags_beside_the_files_subscriptions() {
        let config =
            config_from(&["--client-metrics", "org.apache.kafka.producer.,org.apache.kafka.consumer."]).expect("valid");
        let cli = &config.client_metrics[0];
        assert_eq!((cli.name.as_str(), cli.interval_ms, cli.matches.len()), ("cli", 300_000, 0));
        assert_eq!(cli.metrics, ["org.apache.kafka.producer.", "org.apache.kafka.consumer."]);
        let fast = config_from(&["--client-metrics", "*", "--client-metrics-interval-ms", "1000"]).expect("valid");
        assert_eq!(fast.client_metrics[0].interval_ms, 1_000);
        assert!(config_from(&[]).expect("the defaults").client_metrics.is_empty());
        let refused = config_from(&["--client-metrics", "*", "--client-metrics-interval-ms", "10"]).expect_err("short");
        assert!(refused.to_string().contains("client_metrics") && refused.to_string().contains("100..=3600000"));
        assert!(config_from(&["--client-metrics-interval-ms", "1000"]).is_err(), "an interval needs metrics");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("rill.toml");
        let text =
            "[[client_metrics]]\nname = \"cli\"\nmetrics = [\"*\"]\n[client_metrics.match]\nclient_id = \"app-.*\"\n";
        std::fs::write(&file, text).expect("written");
        let file = file.to_str().expect("utf-8");
        let refused = config_from(&["--config", file, "--client-metrics", "*"]).expect_err("two named cli");
        assert!(refused.to_string().contains("two subscriptions are named \"cli\""), "{refused}");
        let from_file = config_from(&["--config", file]).expect("the file's");
        assert_eq!(from_file.client_metrics[0].matches["client_id"], "app-.*");
    }

    #[test]
    fn default_compression_comes_from_its_flags_and_bad_ones_say_what_is_allowed() {
        use rill_broker::TopicCompression;
        use rill_protocol::Compression;
        let config = config_from(&[
            "--default-compression-type",
            "zstd",
            "--default-compression-zstd-level",
            "-5",
            "--default-compression-gzip-level",
            "-1",
            "--default-compression-lz4-level",
            "12",
        ])
        .expect("valid");
        assert_eq!(config.default_compression_type, TopicCompression::Zstd);
        let levels = &config.default_compression_levels;
        let levels = [Compression::Gzip, Compression::Lz4, Compression::Zstd].map(|codec| levels.get(codec));
        assert_eq!(levels, [Some(-1), Some(12), Some(-5)]);
        let defaults = config_from(&[]).expect("the defaults");
        assert_eq!(defaults.default_compression_type, TopicCompression::Producer);
        assert!(defaults.default_compression_levels.is_default());
        let refused = config_from(&["--default-compression-type", "brotli"]).expect_err("no such codec").to_string();
        assert!(refused.contains("producer, uncompressed, gzip, snappy, lz4 or zstd"), "{refused}");
        let refused = config_from(&["--default-compression-gzip-level", "10"]).expect_err("past 9").to_string();
        assert!(refused.contains("\"10\" must be a whole number from 1 (fastest) to 9"), "{refused}");
        let refused = config_from(&["--default-compression-zstd-level", "23"]).expect_err("past 22").to_string();
        assert!(refused.contains("-131072 (fastest) to 22"), "{refused}");
    }

    #[test]
    fn auto_creation_and_the_creation_defaults_come_from_their_flags() {
        let defaults = config_from(&[]).expect("the defaults");
        assert_eq!(
            (defaults.auto_create_topics, defaults.default_partitions, defaults.default_replication_factor),
            (false, 1, 1)
        );
        let config = config_from(&["--auto-create-topics", "--default-partitions", "6"]).expect("valid");
        assert_eq!((config.auto_create_topics, config.default_partitions), (true, 6));
        let refused = config_from(&["--default-partitions", "0"]).expect_err("no partitions").to_string();
        assert!(
            refused.contains("default_partitions") && refused.contains("1..=max_partitions_per_topic"),
            "{refused}"
        );
        assert_eq!(config_from(&["--log-cleaner-threads", "4"]).expect("valid").log_cleaner_threads, 4);
        let refused = config_from(&["--log-cleaner-threads", "0"]).expect_err("no worker").to_string();
        assert!(refused.contains("log_cleaner_threads") && refused.contains("1..=64"), "{refused}");
        let refused = config_from(&["--default-replication-factor", "3"]).expect_err("a single node").to_string();
        assert!(refused.contains("a single node (no peers) holds one replica"), "{refused}");
    }

    #[test]
    fn share_group_settings_come_from_their_flags_and_bad_ones_are_refused() {
        use rill_broker::share_groups::ShareOffsetReset;
        let config = config_from(&[
            "--share-auto-offset-reset",
            "earliest",
            "--share-record-lock-ms",
            "5000",
            "--share-delivery-count-limit",
            "3",
        ])
        .expect("valid");
        assert_eq!(config.share_auto_offset_reset, ShareOffsetReset::Earliest);
        assert_eq!((config.share_record_lock_duration_ms, config.share_delivery_count_limit), (5_000, 3));
        assert_eq!(config_from(&[]).expect("the defaults").share_auto_offset_reset, ShareOffsetReset::Latest);
        let refused = config_from(&["--share-auto-offset-reset", "newest"]).expect_err("not a policy").to_string();
        assert!(refused.contains("earliest") && refused.contains("latest"), "{refused}");
        let defaults = config_from(&[]).expect("the defaults");
        assert_eq!(
            (defaults.dead_letter_topic_prefix.as_str(), defaults.dead_letter_auto_create_topics),
            ("dlq.", false)
        );
        assert!(config_from(&["--dead-letter-auto-create-topics"]).expect("a switch").dead_letter_auto_create_topics);
        let any = config_from(&["--dead-letter-topic-prefix", ""]).expect("empty: any name");
        assert_eq!(any.dead_letter_topic_prefix, "");
        let refused = config_from(&["--dead-letter-topic-prefix", "dead letters/"]).expect_err("a space").to_string();
        assert!(refused.contains("dead_letter_topic_prefix"), "{refused}");
        let refused = config_from(&["--share-delivery-count-limit", "11"]).expect_err("too many").to_string();
        assert!(refused.contains("share_delivery_count_limit") && refused.contains("2..=10"), "{refused}");
        let refused = config_from(&["--share-record-lock-ms", "10"]).expect_err("too short").to_string();
        assert!(refused.contains("1000..=3600000"), "{refused}");
    }

    #[test]
    fn worker_threads_come_from_the_flag_over_the_toml_file_and_default_to_0() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("rill.toml");
        std::fs::write(&file, "worker_threads = 3\n").expect("write the config file");
        let file = file.to_str().expect("a UTF-8 path");
        assert_eq!(config_from(&[]).expect("the defaults").worker_threads, 0);
        assert_eq!(config_from(&["--config", file]).expect("the file's").worker_threads, 3);
        let flag = config_from(&["--config", file, "--worker-threads", "1"]).expect("the flag's");
        assert_eq!(flag.worker_threads, 1);
        let typo = config_from(&["--worker-threads", "1o"]).expect_err("not a number");
        assert!(format!("{typo:#}").contains("--worker-threads"), "{typo:#}");
        let huge = config_from(&["--worker-threads", "4096"]).expect_err("past the limit");
        assert!(format!("{huge:#}").contains("worker_threads") && format!("{huge:#}").contains("0..=1024"), "{huge:#}");
    }

    /// The three-node commands of docs/cluster.md name only `--listen`: each node's admin listener must land on
    /// a port of its own, while an admin address set anywhere is kept as set.
    #[test]
    fn the_admin_listener_follows_the_listen_port_unless_it_is_set() {
        let admin = |args: &[&str]| config_from(args).expect("a valid command line").admin_listen;
        let at = |addr: &str| Some(addr.parse::<SocketAddr>().expect("an address"));
        assert_eq!(admin(&[]), at("127.0.0.1:9644"));
        assert_eq!(admin(&["--listen", "127.0.0.1:9093"]), at("127.0.0.1:9645"));
        assert_eq!(admin(&["--listen", "127.0.0.1:9094", "--admin-listen", "127.0.0.1:9700"]), at("127.0.0.1:9700"));
        assert_eq!(admin(&["--listen", "127.0.0.1:9094", "--admin-listen", "off"]), None);

        let dir = tempfile::tempdir().expect("temp dir");
        let listen_only = dir.path().join("listen.toml");
        std::fs::write(&listen_only, "listen = \"127.0.0.1:9094\"\n").expect("write the config file");
        let listen_only = listen_only.to_str().expect("a UTF-8 path");
        assert_eq!(admin(&["--config", listen_only]), at("127.0.0.1:9646"));
        assert_eq!(admin(&["--config", listen_only, "--listen", "127.0.0.1:9095"]), at("127.0.0.1:9647"));
        let both = dir.path().join("both.toml");
        std::fs::write(&both, "listen = \"127.0.0.1:9094\"\nadmin_listen = \"off\"\n").expect("write the config file");
        assert_eq!(admin(&["--config", both.to_str().expect("a UTF-8 path")]), None);
    }
}
