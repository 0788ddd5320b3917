//! Starting and stopping a node: restore state, bind, serve gRPC, run maintenance, shut down gracefully.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill_protocol::v1::{
    consumer_groups_server::ConsumerGroupsServer, records_server::RecordsServer, topic_admin_server::TopicAdminServer,
};
use rill_protocol::MESSAGE_OVERHEAD_BYTES;
use rill_storage::{SegmentFileCache, TailCache};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::config::{BrokerConfig, ConfigError};
use crate::connection;
use crate::data_dir_lock::{DataDirLock, LockError};
use crate::error::BrokerError;
use crate::file_budget::{default_segment_files, raise_open_file_limit, FileBudget};
use crate::groups::GroupCoordinator;
use crate::node::Node;
use crate::offsets::OffsetStore;
use crate::producer_ids::{LocalProducerIdBlocks, ProducerIds};
use crate::registry::Registry;
use crate::request_limit::codec_refusals_get_rills_codes;
use crate::service::{RecordsRoute, RillService};
use crate::tls::TlsAcceptorHandle;

/// How often the maintenance task expires empty groups' offsets and forgets empty groups with nothing to keep.
const GROUP_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for admin requests on {addr} (set admin_listen to another address, or off): {source}")]
    AdminBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot restore state from the data directory: {0}")]
    Restore(#[from] BrokerError),
    #[error("cannot set up gRPC reflection: {0}")]
    Reflection(String),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ControllerError),
    #[error("cannot read the open-file limit (RLIMIT_NOFILE): {0}")]
    OpenFileLimit(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Users(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Acls(#[from] crate::auth::acl_store::AclError),
    #[error(transparent)]
    Quotas(#[from] crate::quotas::store::QuotaError),
    #[error(transparent)]
    OAuth(#[from] crate::auth::oauth::OAuthError),
    #[error(transparent)]
    Schemas(#[from] crate::schema_registry::StoreError),
    #[error("cannot listen for schema registry requests on {addr}: {source}")]
    SchemaRegistryBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Starts broker nodes. See [`Broker::start`].
pub struct Broker;

impl Broker {
    /// Validates `config`, restores every topic and committed offset from `config.data_dir`, binds
    /// `config.listen` and serves until [`BrokerHandle::shutdown`]. Returns once the port accepts connections.
    pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, StartError> {
        config.validate()?;
        // Before anything touches the data dir: a bad certificate is the operator's to fix, and says so at once.
        let tls = config.tls.clone().map(TlsAcceptorHandle::load).transpose()?;
        let admin_tls = match &config.tls {
            Some(settings) if settings.admin && config.admin_listen.is_some() => {
                Some(TlsAcceptorHandle::load_for(settings.clone(), crate::tls::TlsListener::Admin)?)
            }
            _ => None,
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
        let data_dir_lock = DataDirLock::acquire(&config.data_dir)?;
        let max_open_files = raise_open_file_limit().map_err(StartError::OpenFileLimit)?;
        let segment_files = config.max_open_segment_files.unwrap_or_else(|| default_segment_files(max_open_files));
        let budget = FileBudget::new(max_open_files, segment_files, &config);
        tracing::info!(
            max_open_files,
            reserved_files = budget.reserved_files,
            files_per_partition = budget.files_per_partition,
            max_partitions = budget.max_partitions(),
            max_open_segment_files = segment_files,
            "open-file budget"
        );
        let identity = crate::cluster::identity_for_start(&config).await?;
        let config = Arc::new(config);
        let controller = match identity {
            Some(identity) => Some(crate::cluster::Controller::open(Arc::clone(&config), identity).await?),
            None => None,
        };
        // Bound before the partitions are restored, so a taken admin port fails the start at once.
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(
                crate::metrics::admin_http::bind(addr)
                    .await
                    .map_err(|source| StartError::AdminBind { addr, source })?,
            ),
            None => None,
        };
        let metrics = admin_listener.as_ref().map(|_| Arc::new(crate::metrics::NodeMetrics::default()));
        let segment_files = Arc::new(SegmentFileCache::new(segment_files));
        let write_metrics = metrics.as_ref().map(|m| Arc::clone(&m.writes));
        let tail_cache_bytes = config.tail_cache_bytes.unwrap_or_else(crate::config::default_tail_cache_bytes);
        tracing::info!(tail_cache_bytes, "tail cache");
        let tail_cache = TailCache::new(tail_cache_bytes);
        let registry =
            Registry::restore(Arc::clone(&config), budget, segment_files, tail_cache.clone(), write_metrics).await?;
        // A cluster node keeps commits in the replicated `__consumer_offsets` topic, whose partition 0 would
        // live in the single-node log's directory: it never opens that log.
        let offsets = Arc::new(match &controller {
            Some(controller) => {
                let link: Arc<dyn crate::replication::links::ControllerLink> = Arc::clone(controller) as _;
                OffsetStore::replicated(link, controller.node_id, Arc::clone(&config))
            }
            None => OffsetStore::open(&config.data_dir).await?,
        });
        if controller.is_none() {
            // A commit names a topic that exists, so one for a topic the registry lacks outlived the topic's
            // deletion (a crash between the two).
            let deleted: BTreeSet<String> = offsets
                .all_committed()
                .into_iter()
                .map(|(key, _)| key.topic)
                .filter(|topic| registry.topic(topic).is_err())
                .collect();
            if !deleted.is_empty() {
                offsets.forget_topics(deleted, crate::node::now_ms()).await?;
            }
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let group_defaults = crate::group_config::GroupDefaults::of(&config);
        let group_configs = match &controller {
            None => Arc::new(crate::group_config::GroupConfigs::open(group_defaults, &config.data_dir)?),
            Some(controller) => crate::group_config::GroupConfigs::replicated(
                group_defaults,
                Arc::clone(controller),
                tokio::runtime::Handle::current(),
            ),
        };
        let groups = Arc::new(GroupCoordinator::new(Arc::clone(&config), Arc::clone(&group_configs)));
        // In a cluster the controller hands out the blocks, so that ids are unique across nodes and disks.
        let producer_id_blocks: Box<dyn crate::producer_ids::ProducerIdBlocks> = match &controller {
            Some(controller) => Box::new(crate::cluster::producer_id_blocks::ControllerProducerIdBlocks::new(
                Arc::clone(controller),
                tokio::runtime::Handle::current(),
            )),
            None => Box::new(LocalProducerIdBlocks::new(&config.data_dir)),
        };
        let producer_ids = Arc::new(ProducerIds::new(producer_id_blocks));
        if controller.is_some() {
            // A restarted node's block died with its process; reserving one now keeps the controller leader (and
            // an election, during a rolling restart) out of the next new producer's way.
            producer_ids.reserve_next_in_background();
        }
        // A single node keeps its users and ACLs in files; a cluster node in the replicated metadata, and it
        // refuses to start over files of its own, which it would otherwise silently ignore.
        let (users, acls, quotas) = match &controller {
            Some(controller) => {
                crate::auth::refuse_node_files_on_cluster(&config.data_dir)?;
                let runtime = tokio::runtime::Handle::current();
                (
                    crate::auth::UserStore::replicated(Arc::clone(controller), runtime.clone()),
                    crate::auth::acl_store::AclStore::replicated(Arc::clone(controller), runtime.clone()),
                    crate::quotas::store::QuotaStore::replicated(Arc::clone(controller), runtime),
                )
            }
            None => (
                Arc::new(crate::auth::UserStore::open(&config.data_dir)?),
                Arc::new(crate::auth::acl_store::AclStore::open(&config.data_dir)?),
                Arc::new(crate::quotas::store::QuotaStore::open(&config.data_dir)?),
            ),
        };
        let quotas = Arc::new(crate::quotas::throttle::ClientThrottle::new(
            quotas,
            Duration::from_millis(config.quota_window_ms),
        ));
        let authorizer = Arc::new(crate::auth::Authorizer::new(
            config.auth.authorization == crate::auth::AuthorizationMode::On,
            &config.auth.super_users,
            acls,
        ));
        let disk_reserve =
            Arc::new(crate::disk_reserve::DiskReserve::new(&config.data_dir, config.min_free_disk_bytes));
        let transactions = match &controller {
            Some(controller) => crate::transactions::TransactionCoordinator::replicated(Arc::clone(controller)),
            None => crate::transactions::TransactionCoordinator::open(&config.data_dir)?,
        };
        disk_reserve.spawn_refresh(shutdown_rx.clone());
        let oauth = match &config.auth.oauth {
            Some(oauth) => Some(crate::auth::oauth::OAuthValidator::start(oauth.clone()).await?),
            None => None,
        };
        let schemas = match &controller {
            Some(controller) => crate::schema_registry::SchemaStore::replicated(
                Arc::clone(controller),
                tokio::runtime::Handle::current(),
            ),
            None => Arc::new(crate::schema_registry::SchemaStore::open(&config.data_dir)?),
        };
        let shares = Arc::new(match &controller {
            Some(_) => crate::share_groups::ShareGroups::clustered(Arc::clone(&group_configs)),
            None => crate::share_groups::ShareGroups::new(Arc::clone(&group_configs)),
        });
        let subscriptions = match &controller {
            Some(controller) => crate::client_telemetry::store::SubscriptionStore::replicated(
                Arc::clone(controller),
                tokio::runtime::Handle::current(),
            ),
            None => Arc::new(crate::client_telemetry::store::SubscriptionStore::open(&config.data_dir)?),
        };
        let mut client_telemetry = crate::client_telemetry::ClientTelemetry::new(&config.client_metrics, subscriptions);
        if let Some(endpoint) = &config.otlp_endpoint {
            let forwarder = crate::client_telemetry::forward::MetricsForwarder::start(endpoint, shutdown_rx.clone())
                .map_err(|reason| ConfigError { setting: "otlp_endpoint", reason })?;
            client_telemetry = client_telemetry.forwarding_to(forwarder);
        }
        let client_telemetry = Arc::new(client_telemetry);
        let node = Arc::new_cyclic(|weak| Node {
            client_telemetry,
            oauth: oauth.clone(),
            schemas,
            transactions: transactions.clone(),
            authorizer,
            quotas,
            disk_reserve,
            config: Arc::clone(&config),
            registry,
            offsets,
            groups,
            shares,
            group_configs,
            fetch_sessions: Default::default(),
            producer_ids,
            users: users.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown_rx,
            replication: controller.as_ref().map(|controller| {
                Arc::new(crate::replication::Replication::new(
                    Arc::clone(controller),
                    weak.clone(),
                    config.replica_lag_time_max_ms,
                ))
            }),
        });

        // Finishes the outcomes a crash (or an earlier coordinator) left prepared, then times transactions out.
        tokio::spawn(transactions.run_timers(Arc::downgrade(&node), node.shutdown.clone()));

        let bind = |source| StartError::Bind { addr: config.listen, source };
        let incoming = TcpIncoming::bind(config.listen).map_err(bind)?.with_nodelay(Some(true));
        let addr = incoming.local_addr().map_err(bind)?;
        let idle_timeout = Duration::from_millis(config.idle_connection_timeout_ms);
        let connection_metrics = metrics.as_ref().map(|m| Arc::clone(&m.connections));
        let limits = connection::ConnectionLimits::of(&config).with_rates(Arc::clone(node.quotas.connection_rates()));
        let accepted = connection::limit(incoming, limits, idle_timeout, connection_metrics);
        // Kafka clients on the same port: their connections are served by `kafka`, the rest go on to tonic.
        let kafka = Arc::new(crate::kafka::KafkaContext::new(Arc::clone(&node), addr, controller.clone()));
        let incoming = crate::kafka::listener::split(accepted, kafka, tls.clone(), node.shutdown.clone());
        let tls_watcher =
            tls.as_ref().map(|tls| tokio::spawn(crate::tls::watch_files(Arc::clone(tls), node.shutdown.clone())));
        let admin_tls_watcher =
            admin_tls.as_ref().map(|tls| tokio::spawn(crate::tls::watch_files(Arc::clone(tls), node.shutdown.clone())));

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<TopicAdminServer<RillService>>().await;
        health.set_serving::<RecordsServer<RillService>>().await;
        health.set_serving::<ConsumerGroupsServer<RillService>>().await;
        // Both versions of the reflection service: grpcurl asks for v1, while grpcio-reflection, grpcui,
        // Postman, evans and older grpcurl still ask for v1alpha, which tonic serves from the same descriptors.
        let reflection_builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(rill_protocol::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection = reflection_builder().build_v1().map_err(|e| StartError::Reflection(e.to_string()))?;
        let reflection_v1alpha =
            reflection_builder().build_v1alpha().map_err(|e| StartError::Reflection(e.to_string()))?;

        let service = RillService::new(Arc::clone(&node));
        let max_decode = usize::try_from(config.max_request_bytes).unwrap_or(usize::MAX);
        // A fetch returns at least one whole batch even when it is larger than max_fetch_bytes.
        let max_encode =
            usize::try_from(config.max_fetch_bytes.max(config.max_batch_bytes) + MESSAGE_OVERHEAD_BYTES as u64)
                .unwrap_or(usize::MAX);
        let node_calls = crate::auth::node_calls::NodeCallGate::from_config(&config).map_err(StartError::Config)?;
        if let Ok(Some(warning)) = crate::auth::node_calls::check_node_identification(&config) {
            tracing::warn!("{warning}");
        }
        let router = Server::builder()
            .tcp_nodelay(true)
            .max_frame_size(config.http2_max_frame_bytes)
            .initial_stream_window_size(config.http2_stream_window_bytes)
            .initial_connection_window_size(config.http2_connection_window_bytes)
            .max_concurrent_streams(config.max_concurrent_streams)
            // Pings keep a healthy idle connection from looking silent to the idle timeout.
            .http2_keepalive_interval(Some((idle_timeout / 3).min(Duration::from_secs(30))))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .layer(tower::util::MapResponseLayer::new(codec_refusals_get_rills_codes))
            .layer(tower::util::option_layer(metrics.clone().map(crate::metrics::grpc_layer::GrpcMetricsLayer::new)))
            .layer(
                crate::auth::authenticate::AuthenticateLayer::new(
                    users.clone(),
                    config.auth.require_auth,
                    &crate::auth::forwarded::node_principals(&config),
                    node_calls,
                    Arc::clone(&node.authorizer),
                )
                .with_oauth(node.oauth.clone()),
            )
            // Under authentication, which names each call's principal.
            .layer(crate::service::request_time::RequestTimeLayer::new(Arc::clone(&node.quotas), node.shutdown.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(
                TopicAdminServer::new(service.clone())
                    .max_decoding_message_size(max_decode)
                    .max_encoding_message_size(max_encode),
            )
            .add_service(RecordsRoute::new(
                RecordsServer::new(service.clone())
                    .max_decoding_message_size(max_decode)
                    .max_encoding_message_size(max_encode),
                Arc::clone(&node),
                max_decode,
                max_encode,
            ))
            .add_service(
                ConsumerGroupsServer::new(service)
                    .max_decoding_message_size(max_decode)
                    .max_encoding_message_size(max_encode),
            )
            .add_service(crate::cluster::describe::ClusterAdminService::server(
                controller.clone(),
                Arc::clone(&config),
                addr.to_string(),
                Arc::clone(&node.authorizer),
            ))
            .add_service(crate::auth::service::UserAdminService::server(users.clone(), Arc::clone(&node.authorizer)))
            .add_service(crate::auth::acl_service::AclAdminService::server(Arc::clone(&node.authorizer)))
            .add_service(crate::quotas::service::QuotaAdminService::server(
                Arc::clone(&node.authorizer),
                Arc::clone(node.quotas.store()),
            ))
            .add_service(crate::client_telemetry::service::ClientMetricsAdminService::server(
                Arc::clone(&node.authorizer),
                Arc::clone(&node.client_telemetry),
            ))
            .add_optional_service(
                controller.as_ref().zip(node.replication.clone()).map(|(c, replication)| c.rpc_service(replication)),
            );
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(err) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                tracing::error!(error = %err, "gRPC server failed");
            }
        });
        if let Some(controller) = &controller {
            controller.start_background();
        }
        let replication = node.replication.clone().map(|r| tokio::spawn(crate::replication::run_reconciler(r)));
        let maintenance = tokio::spawn(run_maintenance(Arc::clone(&node)));
        let group_refresh = tokio::spawn(crate::service::follow_topic_changes(Arc::clone(&node)));
        let is_started = Arc::new(AtomicBool::new(true));
        let (admin_addr, admin) = match (admin_listener, metrics) {
            (Some(listener), Some(metrics)) => {
                let admin_addr = listener.local_addr().ok();
                let auth = Arc::new(
                    crate::auth::admin::AdminAuthenticator::new(
                        users.clone(),
                        config.auth.is_admin_auth_required(),
                        console_sessions(&config.data_dir, controller.as_ref()),
                    )
                    .with_oauth(node.oauth.clone()),
                );
                let throughput = Arc::new(crate::console::Throughput::default());
                let lag = Arc::new(crate::console::LagHistory::default());
                let console = crate::console::Console::new(
                    Arc::clone(&node),
                    controller.clone(),
                    addr,
                    Arc::clone(&throughput),
                    Arc::clone(&lag),
                    Arc::clone(&auth),
                )
                .map(Arc::new);
                if console.is_some() {
                    tokio::spawn(crate::console::run_sampler(Arc::clone(&node), throughput, lag));
                }
                let state = crate::metrics::admin_http::AdminState {
                    node: Arc::clone(&node),
                    metrics,
                    controller: controller.clone(),
                    is_started: Arc::clone(&is_started),
                    console,
                    auth,
                    tls: admin_tls.clone(),
                };
                (admin_addr, Some(crate::metrics::admin_http::serve(listener, state)))
            }
            _ => (None, None),
        };
        let (schema_registry_addr, schema_registry) = match config.schema_registry_listen {
            Some(addr) => {
                let listener = crate::metrics::admin_http::bind(addr)
                    .await
                    .map_err(|source| StartError::SchemaRegistryBind { addr, source })?;
                let store = Arc::clone(&node.schemas);
                let auth = Arc::new(
                    crate::auth::admin::AdminAuthenticator::new(
                        users.clone(),
                        config.auth.is_admin_auth_required(),
                        crate::auth::admin::SessionStore::Node(crate::auth::sessions::Sessions::default()),
                    )
                    .with_oauth(node.oauth.clone()),
                );
                let api = crate::schema_registry::http::SchemaRegistryApi::new(
                    store,
                    auth,
                    users.clone(),
                    Arc::clone(&node.authorizer),
                );
                let addr = listener.local_addr().ok();
                (addr, Some(crate::metrics::admin_http::serve_http(listener, admin_tls.clone(), Arc::new(api))))
            }
            None => (None, None),
        };
        let is_admin_exposed = admin_addr.is_some_and(|admin| !admin.ip().is_loopback());
        if is_admin_exposed && config.auth.is_admin_auth_required() && admin_tls.is_none() {
            tracing::warn!(
                ?admin_addr,
                "the console's sign-in sends passwords in the clear on a non-loopback address: add --admin-tls"
            );
        }
        tracing::info!(
            %addr,
            ?admin_addr,
            is_tls = tls.is_some(),
            is_admin_tls = admin_tls.is_some(),
            is_admin_auth_required = config.auth.is_admin_auth_required(),
            data_dir = %config.data_dir.display(),
            "broker started"
        );
        Ok(BrokerHandle {
            addr,
            tls,
            tls_watcher,
            admin_tls,
            admin_tls_watcher,
            admin_addr,
            admin,
            schema_registry_addr,
            schema_registry,
            is_started,
            node,
            shutdown_tx,
            stop_tx,
            server,
            maintenance,
            group_refresh,
            health,
            data_dir_lock,
            controller,
            replication,
        })
    }
}

/// A running node. Dropping it without [`BrokerHandle::shutdown`] leaves the node running until the runtime ends.
pub struct BrokerHandle {
    addr: SocketAddr,
    /// The listener's TLS, when on: reloaded by [`BrokerHandle::reload_tls`] and by `tls_watcher`.
    tls: Option<Arc<TlsAcceptorHandle>>,
    tls_watcher: Option<JoinHandle<()>>,
    /// The admin listener's TLS (`tls.admin`): the same files, loaded for HTTP/1.1, reloaded with the other.
    admin_tls: Option<Arc<TlsAcceptorHandle>>,
    admin_tls_watcher: Option<JoinHandle<()>>,
    /// Where `/metrics`, `/health` and `/ready` are served; `None` with `admin_listen` off.
    admin_addr: Option<SocketAddr>,
    admin: Option<JoinHandle<()>>,
    /// Where the schema registry is served; `None` with `schema_registry_listen` unset.
    schema_registry_addr: Option<SocketAddr>,
    schema_registry: Option<JoinHandle<()>>,
    /// What `/ready` reports (with the cluster registration): false again once shutdown begins.
    is_started: Arc<AtomicBool>,
    node: Arc<Node>,
    shutdown_tx: watch::Sender<bool>,
    stop_tx: oneshot::Sender<()>,
    server: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    group_refresh: JoinHandle<()>,
    health: tonic_health::server::HealthReporter,
    /// Released (dropped) only after every log is closed.
    data_dir_lock: DataDirLock,
    /// This node's member of the controller quorum; `None` without peers.
    controller: Option<Arc<crate::cluster::Controller>>,
    /// The task that makes local replicas follow the metadata (and owns the follower fetchers).
    replication: Option<JoinHandle<()>>,
}

impl BrokerHandle {
    /// The address the node listens on (with the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address (with the real port when the config asked for port 0), if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// `http://<schema registry addr>`, or `https://` with `tls.admin` on; `None` when not served.
    pub fn schema_registry_url(&self) -> Option<String> {
        let scheme = if self.admin_tls.is_some() { "https" } else { "http" };
        self.schema_registry_addr.map(|addr| format!("{scheme}://{addr}"))
    }

    /// `http://<admin addr>`, or `https://` with `tls.admin` on: where the console and `/metrics` are.
    pub fn admin_url(&self) -> Option<String> {
        let scheme = if self.admin_tls.is_some() { "https" } else { "http" };
        self.admin_addr.map(|addr| format!("{scheme}://{addr}"))
    }

    /// `http://<addr>`, or `https://<addr>` with TLS on, ready for a client's `connect`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Reads the TLS certificate, key and client CA files again (what SIGHUP does to `rill broker`): new
    /// connections get them, open ones keep theirs. A failure keeps the ones in use. `Ok(false)`: TLS is off.
    /// The admin listener's TLS (`tls.admin`) is reloaded from the same files.
    pub fn reload_tls(&self) -> Result<bool, crate::tls::TlsError> {
        if let Some(admin_tls) = &self.admin_tls {
            admin_tls.reload()?;
        }
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Waits until the node must stop because it cannot stay in its cluster (its data dir belongs to another
    /// cluster, or its node id is held by another running process), and says why. Never returns for a single node.
    pub async fn failed(&self) -> String {
        match &self.controller {
            Some(controller) => controller.failed().await,
            None => std::future::pending().await,
        }
    }

    /// Stops gracefully: on a cluster first hand this node's leaderships over (`controlled_shutdown`), then refuse
    /// new connections, end long-polls and subscriptions, let in-flight calls finish
    /// (up to `shutdown_grace_ms`), then drain each partition's queued appends and close every log cleanly,
    /// so the next start needs no recovery.
    pub async fn shutdown(self) {
        tracing::info!(addr = %self.addr, "broker stopping");
        let mut replication = self.replication;
        if let Some(controller) = &self.controller {
            let grace = Duration::from_millis(self.node.config.shutdown_grace_ms);
            let still_led = controller.hand_over_leaderships(grace).await;
            tracing::info!(still_led, "partition leaderships handed over before stopping");
            // Out of every ISR now: its fetchers would only ask the leaders to take it back in.
            if let Some(replication) = replication.take() {
                replication.abort();
                let _ = replication.await;
            }
        }
        self.is_started.store(false, Ordering::Release);
        self.health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        self.shutdown_tx.send_replace(true);
        let _ = self.stop_tx.send(());
        let grace = Duration::from_millis(self.node.config.shutdown_grace_ms);
        let mut server = self.server;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!("in-flight calls still running after the grace period; closing their connections");
            server.abort();
        }
        let _ = self.maintenance.await;
        let _ = self.group_refresh.await;
        if let Some(tls_watcher) = self.tls_watcher {
            let _ = tls_watcher.await;
        }
        if let Some(admin_tls_watcher) = self.admin_tls_watcher {
            let _ = admin_tls_watcher.await;
        }
        if let Some(replication) = replication {
            // Aborting it drops the fetchers, which stops them.
            replication.abort();
            let _ = replication.await;
        }
        if let Some(controller) = &self.controller {
            controller.shutdown().await;
        }
        self.node.registry.close_all().await;
        if let Some(replication) = self.node.replication.clone() {
            // The high watermarks as they ended: the next start resumes from them.
            let node = Arc::clone(&self.node);
            let stored = tokio::task::spawn_blocking(move || replication.store_high_watermarks(&node.registry));
            if let Err(err) = stored.await {
                tracing::error!(error = %err, "storing the high-watermark checkpoint failed");
            }
        }
        if let Err(err) = self.node.offsets.close().await {
            tracing::error!(error = %err, "closing the committed-offsets log failed");
        }
        drop(self.data_dir_lock);
        if let Some(schema_registry) = self.schema_registry {
            schema_registry.abort();
        }
        if let Some(admin) = self.admin {
            admin.abort();
        }
        tracing::info!(addr = %self.addr, "broker stopped");
    }
}

/// The node's periodic work until shutdown: [`run_housekeeping`] and, beside it, the compaction loop
/// (`compaction.rs`).
async fn run_maintenance(node: Arc<Node>) {
    tokio::join!(run_housekeeping(Arc::clone(&node)), crate::compaction::run(node));
}

/// Flushes logs whose interval is due, applies retention and expires empty groups' offsets, every
/// `maintenance_interval_ms`, until shutdown.
/// Each pass runs on the blocking pool (the flushes, then one task over all partitions), so a slow disk delays
/// the next pass, never a request.
async fn run_housekeeping(node: Arc<Node>) {
    let tick_ms = node.config.maintenance_interval_ms;
    let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = node.shutdown.clone();
    let mut last_group_sweep = tokio::time::Instant::now();
    let prefault = Arc::new(crate::prefault::Prefault::default());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let partitions = node.registry.all_partitions();
        flush_due_logs(&partitions, tick_ms).await;
        let tail_cache = node.registry.tail_cache().cloned();
        let prefault = Arc::clone(&prefault);
        let pass = tokio::task::spawn_blocking(move || {
            if let Some(cache) = tail_cache {
                let stats = cache.stats();
                let touched = prefault.top_up(stats.used_bytes, stats.limit_bytes);
                if touched > 0 {
                    tracing::debug!(touched, total = prefault.touched_bytes(), "prefaulted memory for the tail cache");
                }
            }
            for partition in partitions.iter().filter(|p| !p.is_closed()) {
                match partition.log().enforce_retention() {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(partition = ?partition, segments = deleted, "retention deleted segments")
                    }
                    Err(err) => tracing::warn!(partition = ?partition, error = %err, "retention failed"),
                }
                partition.log().expire_producers();
            }
        });
        if let Err(err) = pass.await {
            tracing::error!(error = %err, "maintenance pass failed");
        }
        // The sweep reads every committed offset under the store's lock: once a second is plenty for expiry
        // measured in minutes or days.
        if last_group_sweep.elapsed() >= GROUP_SWEEP_INTERVAL {
            last_group_sweep = tokio::time::Instant::now();
            crate::service::expire_groups(&node).await;
        }
    }
}

/// Most interval flushes of one maintenance pass running at once.
const FLUSHES_IN_FLIGHT: usize = 16;

/// fsyncs every log whose flush interval is due, several at once. A disk's flush can hold up the writes beside it
/// until it is done, and concurrent ones are merged into one by the block layer or the device: one after another,
/// eight partitions' flushes held appends up eight times a pass (docs/benchmarks.md, "Interval flushes").
async fn flush_due_logs(partitions: &[Arc<crate::partition::Partition>], tick_ms: u64) {
    use futures_util::StreamExt;
    let due: Vec<_> = partitions.iter().filter(|p| !p.is_closed() && p.log().is_flush_due(tick_ms)).cloned().collect();
    futures_util::stream::iter(due)
        .map(|partition| async move {
            let log = Arc::clone(partition.log());
            match tokio::task::spawn_blocking(move || log.flush_if_due(tick_ms)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(partition = ?partition, error = %err, "background flush failed"),
                Err(err) => tracing::error!(partition = ?partition, error = %err, "background flush failed"),
            }
        })
        .buffer_unordered(FLUSHES_IN_FLIGHT)
        .for_each(|()| async {})
        .await;
}

/// Where the console's sign-in sessions live: a single node's own file, or a cluster's metadata. A cluster node
/// never reads the per-node file, so one left from before the node joined a cluster is removed: its sessions
/// named users the cluster does not hold (a node with a users file does not start as a cluster node).
fn console_sessions(
    data_dir: &std::path::Path,
    controller: Option<&Arc<crate::cluster::Controller>>,
) -> crate::auth::admin::SessionStore {
    use crate::auth::admin::SessionStore;
    let Some(controller) = controller else {
        return SessionStore::Node(crate::auth::sessions::Sessions::open(data_dir, std::time::SystemTime::now()));
    };
    let file = crate::auth::session_file::path_in(data_dir);
    if file.exists() {
        match crate::auth::session_file::remove(&file) {
            Ok(()) => {
                tracing::info!(path = %file.display(), "per-node console sessions file removed: unused on a cluster")
            }
            Err(error) => {
                tracing::warn!(%error, "per-node console sessions file left in place; a cluster never reads it")
            }
        }
    }
    SessionStore::Cluster(crate::auth::cluster_sessions::ClusterSessions::new(
        Arc::clone(controller),
        tokio::runtime::Handle::current(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rill_protocol::{Record, RecordBatchBuilder};
    use rill_storage::{Durability, Log, LogConfig, TopicName};
    use tokio::sync::Semaphore;

    use super::flush_due_logs;
    use crate::partition::Partition;

    fn one_record_batch() -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        builder.push(&Record { key: None, value: Some(b"v".to_vec()), headers: Vec::new(), timestamp_ms: 1 });
        builder.build()
    }

    #[tokio::test]
    async fn a_pass_fsyncs_every_log_with_interval_durability_and_new_appends_and_no_other() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let slots = Arc::new(Semaphore::new(2));
        let topic = TopicName::new("t").expect("a valid name");
        let partitions: Vec<_> = (0..20u32)
            .map(|index| {
                let durability = match index % 2 {
                    0 => Durability::Interval { interval_ms: 100 },
                    _ => Durability::Never,
                };
                let config = LogConfig { durability, ..LogConfig::default() };
                let log = Log::open(&dir.path().join(index.to_string()), config).expect("a log");
                Partition::start(topic.clone(), index, log, 4, Arc::clone(&slots), None)
            })
            .collect();
        for partition in &partitions[..10] {
            partition.log().append(&one_record_batch()).expect("an append");
        }

        flush_due_logs(&partitions, 100).await;

        for (index, partition) in partitions.iter().enumerate() {
            let log = partition.log();
            let fsyncs = log.fsync_latency().snapshot().count;
            match (index < 10, index % 2 == 0) {
                (true, true) => {
                    assert_eq!(log.durable_end_offset(), log.log_end_offset(), "partition {index}");
                    assert_eq!(fsyncs, 1, "partition {index}: one fsync");
                }
                _ => assert_eq!(fsyncs, 0, "partition {index}: nothing new, or not interval durability"),
            }
        }
        flush_due_logs(&partitions, 100).await;
        let fsyncs: u64 = partitions.iter().map(|p| p.log().fsync_latency().snapshot().count).sum();
        assert_eq!(fsyncs, 5, "a second pass with nothing appended fsyncs nothing");
    }
}
