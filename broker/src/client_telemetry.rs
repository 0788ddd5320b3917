//! Kafka clients' own metrics, pushed to the node (Kafka's KIP-714): a client asks which metrics the node wants
//! (GetTelemetrySubscriptions), then pushes them as OpenTelemetry `MetricsData` every push interval
//! (PushTelemetry), and `/metrics` shows the latest values of each client instance beside the node's own.
//!
//! What is wanted comes from subscriptions: metric name prefixes, a push interval, and which clients, by regular
//! expressions over their client id, instance id, software name and version (from their ApiVersions), and source
//! address and port. The node's own come from its settings (`rill broker --client-metrics`, or
//! `[[client_metrics]]` in its file) and last its life; others are Kafka's CLIENT_METRICS config resources, set
//! and deleted through the Kafka API while it runs (`subscriptions.rs`, kept by `store.rs`). A client no
//! subscription matches is told to push nothing and to ask again after Kafka's default interval; a client whose
//! subscription changed is told so at its next push (UNKNOWN_SUBSCRIPTION_ID) and asks again. With
//! `otlp_endpoint` set, each accepted push is also sent on to it (`forward.rs`).
//!
//! Invariants:
//! - Memory is bounded: at most [`MAX_CLIENT_INSTANCES`] instances (the least recently heard from goes first), at
//!   most [`MAX_SERIES_PER_INSTANCE`] series each and [`MAX_SERIES`] in all, [`MAX_LABELS`] labels a series of
//!   at most [`MAX_TEXT_CHARS`] characters a name or value, a push at most [`TELEMETRY_MAX_BYTES`] compressed and
//!   [`MAX_INFLATED_BYTES`] inflated. An instance not heard from for three push intervals is forgotten, and one
//!   that says it is terminating is forgotten at once. A client asked for nothing is not kept at all.
//! - A client's names and labels never reach the exposition unchecked: each becomes a Prometheus name of
//!   `[a-zA-Z0-9_]` under the `kafka_client_` prefix, so no client can shadow a `rill_` family.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, MetricsData, NumberDataPoint};
use prost::Message;
use rill_protocol::Compression;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most client instances whose metrics are kept.
pub const MAX_CLIENT_INSTANCES: usize = 1_024;
/// Most series kept of one instance; the rest of a push is dropped.
pub const MAX_SERIES_PER_INSTANCE: usize = 1_000;
/// Most series kept over all instances: what one scrape of /metrics may carry of them.
pub const MAX_SERIES: usize = 100_000;
/// Most of a data point's attributes kept as labels (Kafka's clients send one or two).
pub const MAX_LABELS: usize = 16;
/// Longest metric name, label name or label value kept, in characters; a longer name is dropped, a value cut.
pub const MAX_TEXT_CHARS: usize = 256;
/// Largest push taken, compressed (the subscription's `telemetry_max_bytes`).
pub const TELEMETRY_MAX_BYTES: usize = 1 << 20;
/// Largest push taken once inflated.
pub const MAX_INFLATED_BYTES: usize = 16 << 20;
/// Kafka's default push interval (a subscription's `interval.ms`), and what a client no subscription matches is
/// told to ask again after.
pub const DEFAULT_INTERVAL_MS: u32 = 300_000;
/// What a client may compress its pushes with, in the order preferred.
const ACCEPTED_COMPRESSION: [Compression; 3] = [Compression::Zstd, Compression::Lz4, Compression::Gzip];

/// The client selectors a subscription may match on (Kafka's `match` keys).
pub const SELECTORS: [&str; 6] = [
    "client_id",
    "client_instance_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// One of the node's client metrics subscriptions (Kafka's CLIENT_METRICS config resource).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMetricsSubscription {
    pub name: String,
    /// Metric name prefixes (`org.apache.kafka.producer.`); `*` is every metric.
    pub metrics: Vec<String>,
    /// How often a matched client pushes, in ms (100 to 3,600,000).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u32,
    /// Selector to regular expression, each matching the whole value; every one must match. Empty: every client.
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
}

fn default_interval_ms() -> u32 {
    DEFAULT_INTERVAL_MS
}

impl ClientMetricsSubscription {
    /// What is wrong with it, saying what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a subscription needs a name".into());
        }
        if !(100..=3_600_000).contains(&self.interval_ms) {
            return Err(format!("{}: interval_ms {} is outside 100..=3600000", self.name, self.interval_ms));
        }
        for (selector, pattern) in &self.matches {
            if !SELECTORS.contains(&selector.as_str()) {
                return Err(format!(
                    "{}: {selector:?} is not a client selector rill matches on: {}",
                    self.name,
                    SELECTORS.join(", ")
                ));
            }
            whole_match(pattern).map_err(|e| format!("{}: {selector} {pattern:?} is not a regex: {e}", self.name))?;
        }
        Ok(())
    }
}

fn whole_match(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|err| one_line(&err))
}

/// A regex error in one line: the regex crate's draws the pattern (the anchored one `whole_match` compiled, not
/// the one given) over several lines, with the reason last.
fn one_line(err: &regex::Error) -> String {
    let text = err.to_string();
    let reason = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default();
    reason.trim().trim_start_matches("error: ").to_owned()
}

/// Who is asking: what a subscription's selectors see.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub client_id: String,
    /// As the client's ApiVersions said (empty before v3).
    pub software_name: String,
    pub software_version: String,
    pub peer: Option<SocketAddr>,
}

/// The answer to GetTelemetrySubscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    /// Metric name prefixes; `[""]` is every metric, empty none.
    pub requested_metrics: Vec<String>,
    pub push_interval_ms: u32,
}

impl Subscription {
    pub fn accepted_compression_types() -> Vec<i8> {
        ACCEPTED_COMPRESSION.iter().map(|codec| *codec as i8).collect()
    }
}

/// One client instance as the console lists it.
#[derive(Debug, Clone)]
pub struct InstanceSummary {
    pub client_instance_id: Uuid,
    pub client: ClientIdentity,
    pub requested_metrics: Vec<String>,
    pub push_interval_ms: u32,
    /// `None` before its first push.
    pub since_last_push: Option<Duration>,
    pub series: usize,
    /// The highest of its pushed `*request.latency.avg` values (per node, per request kind), in ms.
    pub request_latency_avg_ms: Option<f64>,
}

/// Why a push was refused, each one of Kafka's error codes for PushTelemetry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRefusal {
    #[error("client instance id must not be the zero UUID: ask GetTelemetrySubscriptions for one")]
    NoInstanceId,
    #[error("subscription {0} is not this client instance's current one: ask GetTelemetrySubscriptions again")]
    UnknownSubscription(i32),
    #[error("pushed {elapsed_ms} ms after the last push; the push interval is {interval_ms} ms")]
    TooSoon { elapsed_ms: u64, interval_ms: u32 },
    #[error("compression type {0} is not accepted: zstd (4), lz4 (3), gzip (1) or none (0)")]
    UnsupportedCompression(i8),
    #[error("{0} bytes is more than the {TELEMETRY_MAX_BYTES} a push may carry")]
    TooLarge(usize),
    #[error("the metrics are not OpenTelemetry MetricsData: {0}")]
    Malformed(String),
}

/// How a series is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Gauge,
    Counter,
}

/// One value of one client instance: a Prometheus family name, the data point's labels, its latest value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub family: String,
    pub kind: SeriesKind,
    pub help: String,
    /// The data point's attributes as Prometheus label names and values, sorted.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

struct Instance {
    client: ClientIdentity,
    subscription: Subscription,
    last_heard: Instant,
    last_push: Option<Instant>,
    series: Vec<Series>,
}

struct CompiledSubscription {
    metrics: Vec<String>,
    interval_ms: u32,
    matches: Vec<(String, regex::Regex)>,
}

/// Where a subscription comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionSource {
    /// The node's settings: fixed for its life, not altered through the Kafka API.
    NodeSettings,
    /// A CLIENT_METRICS config resource, set through the Kafka API.
    ConfigResource,
}

/// Why a subscription alter through the Kafka API did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AlterRefusal {
    #[error(
        "client metrics subscription {0} is the node's own (its --client-metrics or [[client_metrics]] setting): \
         change it there, or use another name"
    )]
    NodeSetting(String),
    #[error(transparent)]
    Store(#[from] store::AlterSubscriptionError),
}

/// The subscriptions and the client instances the node knows.
pub struct ClientTelemetry {
    /// The node's own, from its settings.
    fixed: Vec<ClientMetricsSubscription>,
    /// Those set through the Kafka API.
    store: Arc<store::SubscriptionStore>,
    /// Both compiled, with the store's snapshot they were compiled from: recompiled when it changes.
    compiled: Mutex<(Arc<subscriptions::StoredSubscriptions>, Arc<Vec<CompiledSubscription>>)>,
    instances: Mutex<HashMap<Uuid, Instance>>,
    forwarder: Option<forward::MetricsForwarder>,
}

impl ClientTelemetry {
    /// From the node's (checked) subscriptions and those `store` holds.
    pub fn new(fixed: &[ClientMetricsSubscription], store: Arc<store::SubscriptionStore>) -> ClientTelemetry {
        let stored = store.snapshot();
        let compiled = Arc::new(compile(fixed, &stored.subscriptions()));
        ClientTelemetry {
            fixed: fixed.to_vec(),
            store,
            compiled: Mutex::new((stored, compiled)),
            instances: Mutex::new(HashMap::new()),
            forwarder: None,
        }
    }

    /// Every subscription, the node's own first, each with where it comes from.
    pub fn subscriptions(&self) -> Vec<(ClientMetricsSubscription, SubscriptionSource)> {
        let fixed = self.fixed.iter().map(|s| (s.clone(), SubscriptionSource::NodeSettings));
        let set = self.store.snapshot().subscriptions().into_iter().filter(|s| !self.is_fixed(&s.name));
        fixed.chain(set.map(|s| (s, SubscriptionSource::ConfigResource))).collect()
    }

    /// The keys subscription `name` sets, and where it comes from (none set: no such subscription).
    pub fn subscription_keys(
        &self,
        name: &str,
    ) -> (BTreeMap<subscriptions::SubscriptionKey, String>, SubscriptionSource) {
        match self.fixed.iter().find(|s| s.name == name) {
            Some(fixed) => (subscriptions::keys_of_fixed(fixed), SubscriptionSource::NodeSettings),
            None => (self.store.snapshot().keys_of(name), SubscriptionSource::ConfigResource),
        }
    }

    /// Sets and deletes keys of subscription `name` (IncrementalAlterConfigs of a CLIENT_METRICS resource). Clients
    /// it concerns learn of it at their next push. Blocks on the disk or the controller: call it from the
    /// blocking pool.
    pub fn alter_subscription(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), AlterRefusal> {
        if self.is_fixed(name) {
            return Err(AlterRefusal::NodeSetting(name.to_owned()));
        }
        Ok(self.store.alter(name, changes, validate_only)?)
    }

    fn is_fixed(&self, name: &str) -> bool {
        self.fixed.iter().any(|s| s.name == name)
    }

    /// The subscriptions compiled, recompiled first if the store's changed.
    fn compiled(&self) -> Arc<Vec<CompiledSubscription>> {
        let stored = self.store.snapshot();
        let mut compiled = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&compiled.0, &stored) {
            let set: Vec<ClientMetricsSubscription> =
                stored.subscriptions().into_iter().filter(|s| !self.is_fixed(&s.name)).collect();
            *compiled = (Arc::clone(&stored), Arc::new(compile(&self.fixed, &set)));
        }
        Arc::clone(&compiled.1)
    }

    /// Sends every accepted push on to an OTLP endpoint too.
    pub fn forwarding_to(self, forwarder: forward::MetricsForwarder) -> ClientTelemetry {
        ClientTelemetry { forwarder: Some(forwarder), ..self }
    }

    /// What the forwarder did, when there is one.
    pub fn forward_counts(&self) -> Option<&forward::ForwardCounts> {
        self.forwarder.as_ref().map(|f| f.counts.as_ref())
    }

    /// GetTelemetrySubscriptions: what `instance` (a new id if nil) is to push, remembered for its pushes. A
    /// client asked for nothing is not remembered: it pushes nothing, and asks again.
    pub fn subscribe(&self, instance: Uuid, client: &ClientIdentity) -> Subscription {
        let instance =
            if instance.is_nil() { uuid::Builder::from_random_bytes(rand::random()).into_uuid() } else { instance };
        let subscription = self.resolve(instance, client);
        let now = Instant::now();
        let mut instances = self.lock();
        forget_expired(&mut instances, now);
        if subscription.requested_metrics.is_empty() {
            instances.remove(&instance);
            return subscription;
        }
        if !instances.contains_key(&instance) && instances.len() >= MAX_CLIENT_INSTANCES {
            let oldest = instances.iter().min_by_key(|(_, i)| i.last_heard).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                instances.remove(&oldest);
            }
        }
        let entry = instances.entry(instance).or_insert_with(|| Instance {
            client: client.clone(),
            subscription: subscription.clone(),
            last_heard: now,
            last_push: None,
            series: Vec::new(),
        });
        if entry.subscription.subscription_id != subscription.subscription_id {
            entry.series.clear();
        }
        entry.subscription = subscription.clone();
        entry.client = client.clone();
        entry.last_heard = now;
        subscription
    }

    /// PushTelemetry: checks the push and keeps its values as the instance's latest.
    pub fn push(
        &self,
        instance: Uuid,
        subscription_id: i32,
        terminating: bool,
        compression_type: i8,
        payload: &[u8],
    ) -> Result<(), PushRefusal> {
        if instance.is_nil() {
            return Err(PushRefusal::NoInstanceId);
        }
        let now = Instant::now();
        let client = {
            let mut instances = self.lock();
            forget_expired(&mut instances, now);
            let known = instances.get(&instance).filter(|i| i.subscription.subscription_id == subscription_id);
            let Some(known) = known else { return Err(PushRefusal::UnknownSubscription(subscription_id)) };
            // The subscriptions changed since it asked: it is to ask again, and push what is asked now.
            if !terminating && self.resolve(instance, &known.client).subscription_id != subscription_id {
                return Err(PushRefusal::UnknownSubscription(subscription_id));
            }
            let interval_ms = known.subscription.push_interval_ms;
            // Half the interval: a client's timer may fire a little early, and its first push is jittered.
            if let Some(elapsed) = known.last_push.map(|last| now.duration_since(last)) {
                if !terminating && elapsed < Duration::from_millis(u64::from(interval_ms) / 2) {
                    return Err(PushRefusal::TooSoon { elapsed_ms: elapsed.as_millis() as u64, interval_ms });
                }
            }
            known.client.clone()
        };
        let codec = match compression_type {
            0 => Compression::None,
            other => ACCEPTED_COMPRESSION
                .into_iter()
                .find(|codec| *codec as i8 == other)
                .ok_or(PushRefusal::UnsupportedCompression(other))?,
        };
        if payload.len() > TELEMETRY_MAX_BYTES {
            return Err(PushRefusal::TooLarge(payload.len()));
        }
        let data = rill_protocol::compression::with_decompressor(|decompressor, inflated| {
            decompressor
                .decompress_into(codec, payload, MAX_INFLATED_BYTES, inflated)
                .map_err(|e| PushRefusal::Malformed(e.to_string()))?;
            MetricsData::decode(inflated.as_slice()).map_err(|e| PushRefusal::Malformed(e.to_string()))
        })?;
        let mut instances = self.lock();
        let others: usize = instances.iter().filter(|(id, _)| **id != instance).map(|(_, i)| i.series.len()).sum();
        let room = MAX_SERIES_PER_INSTANCE.min(MAX_SERIES.saturating_sub(others));
        // Forgotten or resubscribed while this push was decoded: its subscription is gone with it.
        let Some(known) = instances.get_mut(&instance).filter(|i| i.subscription.subscription_id == subscription_id)
        else {
            return Err(PushRefusal::UnknownSubscription(subscription_id));
        };
        if terminating {
            instances.remove(&instance);
        } else {
            known.series = series_of(&data, &known.series, room);
            known.last_push = Some(now);
            known.last_heard = now;
        }
        drop(instances);
        if let Some(forwarder) = &self.forwarder {
            forwarder.forward(data, &instance.to_string(), &client);
        }
        Ok(())
    }

    /// Every instance's latest series, with its `client_id` and `client_instance_id` labels first.
    pub fn snapshot(&self) -> Vec<Series> {
        let mut instances = self.lock();
        forget_expired(&mut instances, Instant::now());
        let mut all = Vec::new();
        for (id, instance) in instances.iter() {
            for series in &instance.series {
                let mut labels = vec![
                    ("client_id".to_owned(), instance.client.client_id.clone()),
                    ("client_instance_id".to_owned(), id.to_string()),
                ];
                labels.extend(series.labels.iter().cloned());
                all.push(Series { labels, ..series.clone() });
            }
        }
        all
    }

    /// Every instance known, the most recently heard from first: what the console's client list shows.
    pub fn instances(&self) -> Vec<InstanceSummary> {
        let now = Instant::now();
        let mut instances = self.lock();
        forget_expired(&mut instances, now);
        let mut all: Vec<InstanceSummary> = instances
            .iter()
            .map(|(id, instance)| InstanceSummary {
                client_instance_id: *id,
                client: instance.client.clone(),
                requested_metrics: instance.subscription.requested_metrics.clone(),
                push_interval_ms: instance.subscription.push_interval_ms,
                since_last_push: instance.last_push.map(|at| now.duration_since(at)),
                series: instance.series.len(),
                request_latency_avg_ms: instance
                    .series
                    .iter()
                    .filter(|s| s.family.ends_with("_request_latency_avg"))
                    .map(|s| s.value)
                    .reduce(f64::max),
            })
            .collect();
        all.sort_by_key(|i| (i.since_last_push.is_none(), i.since_last_push));
        all
    }

    /// Client instances known.
    pub fn instance_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instance>> {
        // A panic while holding it leaves maps of plain values, still consistent: keep serving.
        self.instances.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn resolve(&self, instance: Uuid, client: &ClientIdentity) -> Subscription {
        let instance_text = instance.to_string();
        let address = client.peer.map(|peer| peer.ip().to_string()).unwrap_or_default();
        let port = client.peer.map(|peer| peer.port().to_string()).unwrap_or_default();
        let value_of = |selector: &str| match selector {
            "client_id" => client.client_id.as_str(),
            "client_instance_id" => instance_text.as_str(),
            "client_software_name" => client.software_name.as_str(),
            "client_software_version" => client.software_version.as_str(),
            "client_source_address" => address.as_str(),
            _ => port.as_str(),
        };
        let compiled = self.compiled();
        let matched: Vec<&CompiledSubscription> = compiled
            .iter()
            .filter(|s| s.matches.iter().all(|(selector, regex)| regex.is_match(value_of(selector))))
            .collect();
        let mut metrics: Vec<String> = matched.iter().flat_map(|s| s.metrics.iter().cloned()).collect();
        if metrics.iter().any(|m| m == "*" || m.is_empty()) {
            metrics = vec![String::new()];
        }
        metrics.sort();
        metrics.dedup();
        let push_interval_ms = matched.iter().map(|s| s.interval_ms).min().unwrap_or(DEFAULT_INTERVAL_MS);
        // The id changes whenever what is asked of the client does, as Kafka's does.
        let mut hasher = crc32fast::Hasher::new();
        for prefix in &metrics {
            hasher.update(prefix.as_bytes());
            hasher.update(&[0]);
        }
        hasher.update(&push_interval_ms.to_be_bytes());
        let subscription_id = hasher.finalize() as i32;
        Subscription { client_instance_id: instance, subscription_id, requested_metrics: metrics, push_interval_ms }
    }
}

/// `fixed` then `set` compiled; one that does not compile (checked before, so never) matches nothing.
fn compile(fixed: &[ClientMetricsSubscription], set: &[ClientMetricsSubscription]) -> Vec<CompiledSubscription> {
    fixed
        .iter()
        .chain(set)
        .filter_map(|s| {
            let matches = s
                .matches
                .iter()
                .map(|(selector, pattern)| Some((selector.clone(), whole_match(pattern).ok()?)))
                .collect::<Option<Vec<_>>>()?;
            Some(CompiledSubscription { metrics: s.metrics.clone(), interval_ms: s.interval_ms, matches })
        })
        .collect()
}

fn forget_expired(instances: &mut HashMap<Uuid, Instance>, now: Instant) {
    instances.retain(|_, instance| {
        let lifetime = Duration::from_millis(u64::from(instance.subscription.push_interval_ms) * 3);
        now.duration_since(instance.last_heard) <= lifetime
    });
}

/// The gauges and sums of `data` as series, at most `room` (histograms and summaries are not shown). A cumulative
/// sum replaces the value before; a delta sum adds to it (`before`), so a monotonic one is still a counter.
fn series_of(data: &MetricsData, before: &[Series], room: usize) -> Vec<Series> {
    let mut out: BTreeMap<(String, Vec<(String, String)>), Series> = BTreeMap::new();
    let metrics = data.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
    for m in metrics {
        let (points, kind, is_delta): (&[NumberDataPoint], SeriesKind, bool) = match &m.data {
            Some(metric::Data::Gauge(gauge)) => (&gauge.data_points, SeriesKind::Gauge, false),
            Some(metric::Data::Sum(sum)) => {
                let kind = if sum.is_monotonic { SeriesKind::Counter } else { SeriesKind::Gauge };
                // AGGREGATION_TEMPORALITY_DELTA is 1.
                (&sum.data_points, kind, sum.aggregation_temporality == 1)
            }
            _ => continue,
        };
        if m.name.chars().count() > MAX_TEXT_CHARS {
            continue;
        }
        let family = family_name(&m.name, kind);
        let help = if m.description.is_empty() { &m.name } else { &m.description };
        // One line of text: the exposition's HELP line ends at a newline.
        let help: String = help.chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect();
        for point in points {
            if out.len() >= room {
                return out.into_values().collect();
            }
            let Some(mut value) = point.value.as_ref().map(|v| match v {
                number_data_point::Value::AsDouble(d) => *d,
                number_data_point::Value::AsInt(i) => *i as f64,
            }) else {
                continue;
            };
            let mut labels: Vec<(String, String)> = point
                .attributes
                .iter()
                .filter_map(|kv| Some((label_name(&kv.key)?, attribute_text(kv.value.as_ref()?.value.as_ref()?))))
                .filter(|(name, _)| name != "client_id" && name != "client_instance_id")
                .take(MAX_LABELS)
                .collect();
            labels.sort();
            labels.dedup_by(|a, b| a.0 == b.0);
            if is_delta {
                let earlier = before.iter().find(|s| s.family == family && s.labels == labels);
                value += earlier.map_or(0.0, |s| s.value);
            }
            out.insert(
                (family.clone(), labels.clone()),
                Series { family: family.clone(), kind, help: help.clone(), labels, value },
            );
        }
    }
    out.into_values().collect()
}

/// `org.apache.kafka.producer.record.queue.time.avg` → `kafka_client_producer_record_queue_time_avg`; any other
/// name under `kafka_client_` whole. A counter's family is named without `_total`, which its samples add.
pub fn family_name(otlp_name: &str, kind: SeriesKind) -> String {
    let short = otlp_name.strip_prefix("org.apache.kafka.").unwrap_or(otlp_name);
    let mut name = String::with_capacity(13 + short.len());
    name.push_str("kafka_client_");
    name.extend(short.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    if kind == SeriesKind::Counter {
        while let Some(stripped) = name.strip_suffix("_total") {
            name.truncate(stripped.len());
        }
    }
    name
}

/// An attribute key as a Prometheus label name (`node.id` → `node_id`); `None` for one that cannot be.
fn label_name(key: &str) -> Option<String> {
    if key.chars().count() > MAX_TEXT_CHARS {
        return None;
    }
    let name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let first = name.chars().next()?;
    // Names starting with `__` are Prometheus' own.
    (!first.is_ascii_digit() && !name.starts_with("__")).then_some(name)
}

fn attribute_text(value: &opentelemetry_proto::tonic::common::v1::any_value::Value) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value {
        Value::StringValue(s) => s.chars().take(MAX_TEXT_CHARS).collect(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        _ => String::new(),
    }
}

pub mod forward;
pub mod service;
pub mod store;
pub mod subscriptions;
#[cfg(test)]
mod tests;
