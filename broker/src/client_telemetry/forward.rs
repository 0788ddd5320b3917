//! Pushed client metrics sent on to the node's OTLP endpoint (`otlp_endpoint`, where its request spans go): what
//! KIP-714 is for, a team's OpenTelemetry collector seeing every client's metrics without reaching the clients.
//! Each accepted push becomes one OTLP/gRPC `MetricsService/Export` call, its resources marked with the client
//! they came from.
//!
//! A collector that is slow or down never holds up a client: pushes queue (at most [`QUEUE_PUSHES`]) for one task
//! that exports them in turn, and a push that finds the queue full is dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::MetricsData;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::{mpsc, watch};

use super::ClientIdentity;

/// Pushes waiting for the exporter.
pub const QUEUE_PUSHES: usize = 256;
/// Longest one export may take, connecting included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A failing collector is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What the forwarder did with the pushes it was given.
#[derive(Debug, Default)]
pub struct ForwardCounts {
    pub exported: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct MetricsForwarder {
    queue: mpsc::Sender<ExportMetricsServiceRequest>,
    pub counts: Arc<ForwardCounts>,
}

impl MetricsForwarder {
    /// Starts the exporter task for `endpoint` (checked by `config::check_otlp_endpoint`); it ends at shutdown.
    pub fn start(endpoint: &str, shutdown: watch::Receiver<bool>) -> Result<MetricsForwarder, String> {
        let mut channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("otlp_endpoint {endpoint:?}: {e}"))?
            .connect_timeout(EXPORT_TIMEOUT)
            .timeout(EXPORT_TIMEOUT);
        if endpoint.starts_with("https://") {
            let tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
            channel = channel.tls_config(tls).map_err(|e| format!("otlp_endpoint {endpoint:?}: {e}"))?;
        }
        let client = MetricsServiceClient::new(channel.connect_lazy());
        let (queue, pushes) = mpsc::channel(QUEUE_PUSHES);
        let counts = Arc::new(ForwardCounts::default());
        tokio::spawn(export(client, pushes, Arc::clone(&counts), endpoint.to_owned(), shutdown));
        Ok(MetricsForwarder { queue, counts })
    }

    /// Queues `data` for export, marked with the client it came from; dropped (and counted) if the queue is full.
    pub fn forward(&self, data: MetricsData, client_instance_id: &str, client: &ClientIdentity) {
        let request = marked(data, client_instance_id, client);
        if self.queue.try_send(request).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `data`'s resources with the client's attributes added under KIP-714's names (replacing any of the same keys the
/// client set).
pub fn marked(data: MetricsData, client_instance_id: &str, client: &ClientIdentity) -> ExportMetricsServiceRequest {
    let text = |key: &str, value: String| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
        ..Default::default()
    };
    let mut added = vec![
        text("client_instance_id", client_instance_id.to_owned()),
        text("client_id", client.client_id.clone()),
        text("client_software_name", client.software_name.clone()),
        text("client_software_version", client.software_version.clone()),
    ];
    if let Some(peer) = client.peer {
        added.push(text("client_source_address", peer.ip().to_string()));
        added.push(text("client_source_port", peer.port().to_string()));
    }
    let mut resource_metrics = data.resource_metrics;
    for resource in &mut resource_metrics {
        let resource = resource.resource.get_or_insert_with(Resource::default);
        resource.attributes.retain(|kv| !added.iter().any(|a| a.key == kv.key));
        resource.attributes.extend(added.iter().cloned());
    }
    ExportMetricsServiceRequest { resource_metrics }
}

async fn export(
    mut client: MetricsServiceClient<tonic::transport::Channel>,
    mut pushes: mpsc::Receiver<ExportMetricsServiceRequest>,
    counts: Arc<ForwardCounts>,
    endpoint: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_warning: Option<Instant> = None;
    loop {
        let request = tokio::select! {
            request = pushes.recv() => match request {
                Some(request) => request,
                None => return,
            },
            _ = shutdown.wait_for(|down| *down) => return,
        };
        match client.export(request).await {
            Ok(_) => {
                counts.exported.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(%endpoint, error = %status, "cannot export client metrics to the OTLP endpoint");
                }
            }
        }
    }
}
