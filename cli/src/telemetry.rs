//! Logs to stderr, and, with `otlp_endpoint` set, the broker's request spans (`rill_broker::request_trace`) to
//! an OpenTelemetry collector over OTLP/gRPC.
//!
//! Without an endpoint nothing but the log layer is installed, so the request spans (DEBUG, target
//! `rill::request`) have no subscriber interested in them and cost a disabled-span check each. With one, a
//! batch exporter sends them from its own thread (spans queue in a bounded buffer, 2,048 by default, and
//! the excess is dropped rather than slowing requests); [`Telemetry::shutdown`] flushes what is queued.

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use rill_broker::BrokerConfig;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The exporter, kept to flush it at shutdown.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// What a broker logs unless `RUST_LOG` says otherwise. openraft logs each failed RPC at warn and error (several
/// lines a second per peer that is down) and its internals at info; rill logs what an operator needs of it: the
/// controller leader elected, a peer unreachable and back (`broker/src/cluster/network.rs`), a stopped raft.
/// `RUST_LOG=info,openraft=info` shows openraft's own lines.
const DEFAULT_LOG_FILTER: &str = "info,openraft=off";

/// Colours only for a person at a terminal: a log file, journald or a log shipper would keep the escape codes.
fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// Installs the global subscriber. Must run inside the tokio runtime that will outlive the exporter: the
/// OTLP exporter's gRPC channel spawns its connection task there.
pub fn install(config: &BrokerConfig) -> anyhow::Result<Telemetry> {
    let Some(endpoint) = &config.otlp_endpoint else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(stderr_is_terminal())
            .with_env_filter(log_filter())
            .init();
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("cannot set up the OTLP exporter for otlp_endpoint {endpoint}"))?;
    let mut resource = Resource::builder()
        .with_service_name("rill")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Some(node_id) = config.node_id {
        // OTLP integers are signed; node ids are small in practice, and a huge one is still told apart as text.
        resource = resource.with_attribute(match i64::try_from(node_id) {
            Ok(id) => KeyValue::new("rill.node.id", id),
            Err(_) => KeyValue::new("rill.node.id", node_id.to_string()),
        });
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rill"))
        .with_filter(Targets::new().with_target(rill_broker::request_trace::TARGET, tracing::Level::DEBUG));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_terminal())
        .with_filter(log_filter());
    tracing_subscriber::registry().with(logs).with(spans).init();
    tracing::info!(%endpoint, "exporting request spans over OTLP");
    Ok(Telemetry { provider: Some(provider) })
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter. Call it outside async code (it blocks until the
    /// export thread is done) while the runtime is still alive.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "the last spans could not be exported");
            }
        }
    }
}
