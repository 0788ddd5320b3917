//! Requests by type: counts, failures by code and latency, in fixed tables so that recording is an index and
//! three atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rill_storage::latency::LatencyHistogram;

/// The gRPC methods counted on their own, by path; any other path counts as `other` (the last entry).
pub const GRPC_METHODS: [&str; 29] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/rill.v1.ClusterAdmin/DescribeCluster",
    "/rill.v1.ConsumerGroups/CommitOffsets",
    "/rill.v1.ConsumerGroups/DeleteGroup",
    "/rill.v1.ConsumerGroups/DescribeGroup",
    "/rill.v1.ConsumerGroups/FetchOffsets",
    "/rill.v1.ConsumerGroups/JoinGroup",
    "/rill.v1.ConsumerGroups/ListGroups",
    "/rill.v1.ConsumerGroups/ResetOffsets",
    "/rill.v1.Records/Fetch",
    "/rill.v1.Records/InitProducerId",
    "/rill.v1.Records/ListOffsets",
    "/rill.v1.Records/Produce",
    "/rill.v1.Records/Subscribe",
    "/rill.v1.TopicAdmin/AddPartitions",
    "/rill.v1.TopicAdmin/CreateTopic",
    "/rill.v1.TopicAdmin/DeleteTopic",
    "/rill.v1.TopicAdmin/DescribeTopic",
    "/rill.v1.TopicAdmin/ListTopics",
    "/rill.internal.v1.Controller/AppendEntries",
    "/rill.internal.v1.Controller/Heartbeat",
    "/rill.internal.v1.Controller/Identify",
    "/rill.internal.v1.Controller/InstallSnapshot",
    "/rill.internal.v1.Controller/OffsetsForLeaderEpoch",
    "/rill.internal.v1.Controller/Propose",
    "/rill.internal.v1.Controller/Replicate",
    "/rill.internal.v1.Controller/Vote",
    "other",
];

/// gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED); anything else counts as 2 (UNKNOWN).
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// One request type's counters.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub requests: AtomicU64,
    pub latency: LatencyHistogram,
}

/// gRPC requests by method, and failures by method and status code.
#[derive(Debug)]
pub struct RequestMetrics {
    by_method: Vec<RequestCounters>,
    /// `by_method.len() * GRPC_CODES.len()`, row-major by method.
    errors: Vec<AtomicU64>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            by_method: (0..GRPC_METHODS.len()).map(|_| RequestCounters::default()).collect(),
            errors: (0..GRPC_METHODS.len() * GRPC_CODES.len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RequestMetrics {
    /// The table index of a request path (`other` for paths not in [`GRPC_METHODS`]).
    pub fn method_index(path: &str) -> usize {
        GRPC_METHODS.iter().position(|known| *known == path).unwrap_or(GRPC_METHODS.len() - 1)
    }

    /// A request answered after `elapsed`, with `code` (`None`: the status comes later, in trailers, and is OK
    /// unless a stream fails mid-way).
    pub fn record(&self, method: usize, elapsed: Duration, code: Option<u16>) {
        let counters = &self.by_method[method];
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.latency.record(elapsed);
        if let Some(code) = code.filter(|&code| code != 0) {
            let code = if usize::from(code) < GRPC_CODES.len() { usize::from(code) } else { 2 };
            self.errors[method * GRPC_CODES.len() + code].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counters(&self) -> impl Iterator<Item = (&'static str, &RequestCounters)> {
        GRPC_METHODS.iter().map(|name| name.trim_start_matches('/')).zip(&self.by_method)
    }

    /// Non-zero failure counts: (method, code name, count).
    pub fn errors(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.errors.iter().enumerate().filter_map(|(i, count)| {
            let count = count.load(Ordering::Relaxed);
            let method = GRPC_METHODS[i / GRPC_CODES.len()].trim_start_matches('/');
            (count > 0).then_some((method, GRPC_CODES[i % GRPC_CODES.len()], count))
        })
    }
}

/// Kafka API keys counted on their own: 0 to this, minus one; higher keys count as unknown.
pub const KAFKA_API_KEYS: usize = 80;

/// Kafka requests by API, and requests that closed their connection (undecodable, unsupported, or failed).
#[derive(Debug)]
pub struct KafkaRequestMetrics {
    /// By API key; the last entry is for keys out of range.
    by_api: Vec<RequestCounters>,
    closed: Vec<AtomicU64>,
}

impl Default for KafkaRequestMetrics {
    fn default() -> Self {
        Self {
            by_api: (0..=KAFKA_API_KEYS).map(|_| RequestCounters::default()).collect(),
            closed: (0..=KAFKA_API_KEYS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl KafkaRequestMetrics {
    pub fn record(&self, api_key: i16, elapsed: Duration, is_failed: bool) {
        let index = usize::try_from(api_key).ok().filter(|&key| key < KAFKA_API_KEYS).unwrap_or(KAFKA_API_KEYS);
        let counters = &self.by_api[index];
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.latency.record(elapsed);
        if is_failed {
            self.closed[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every API that saw a request: (API name, counters, requests that closed the connection).
    pub fn seen(&self) -> impl Iterator<Item = (String, &RequestCounters, u64)> {
        self.by_api.iter().enumerate().filter(|(_, c)| c.requests.load(Ordering::Relaxed) > 0).map(|(key, c)| {
            let name = i16::try_from(key)
                .ok()
                .and_then(|key| kafka_protocol::messages::ApiKey::try_from(key).ok())
                .map_or_else(|| "Unknown".to_string(), |api| format!("{api:?}"));
            (name, c, self.closed[key].load(Ordering::Relaxed))
        })
    }
}
