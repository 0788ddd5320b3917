//! Requests by type: counts, failures by code and latency, in fixed tables so that recording is an index and
//! three atomic adds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rill_storage::latency::LatencyHistogram;

/// The gRPC methods counted on their own, by path; any other path counts as `other` (the last entry).
pub const GRPC_METHODS: [&str; 57] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/rill.v1.AclAdmin/AddAcls",
    "/rill.v1.AclAdmin/ListAcls",
    "/rill.v1.AclAdmin/RemoveAcls",
    "/rill.v1.ClientMetricsAdmin/AlterClientMetrics",
    "/rill.v1.ClientMetricsAdmin/ListClientMetrics",
    "/rill.v1.ClusterAdmin/AddNode",
    "/rill.v1.ClusterAdmin/CancelReassignment",
    "/rill.v1.ClusterAdmin/DescribeCluster",
    "/rill.v1.ClusterAdmin/ElectLeaders",
    "/rill.v1.ClusterAdmin/ReassignPartition",
    "/rill.v1.ClusterAdmin/RebalanceReplicas",
    "/rill.v1.ClusterAdmin/RemoveNode",
    "/rill.v1.ClusterAdmin/SetReplicationThrottle",
    "/rill.v1.ConsumerGroups/AlterGroupConfig",
    "/rill.v1.ConsumerGroups/CommitOffsets",
    "/rill.v1.ConsumerGroups/DeleteGroup",
    "/rill.v1.ConsumerGroups/DescribeGroup",
    "/rill.v1.ConsumerGroups/DescribeGroupConfig",
    "/rill.v1.ConsumerGroups/FetchOffsets",
    "/rill.v1.ConsumerGroups/JoinGroup",
    "/rill.v1.ConsumerGroups/ListGroups",
    "/rill.v1.ConsumerGroups/ResetOffsets",
    "/rill.v1.ConsumerGroups/ShareConsume",
    "/rill.v1.QuotaAdmin/AlterQuotas",
    "/rill.v1.QuotaAdmin/ListQuotas",
    "/rill.v1.Records/Fetch",
    "/rill.v1.Records/InitProducerId",
    "/rill.v1.Records/ListOffsets",
    "/rill.v1.Records/Produce",
    "/rill.v1.Records/ProduceStream",
    "/rill.v1.Records/Subscribe",
    "/rill.v1.TopicAdmin/AddPartitions",
    "/rill.v1.TopicAdmin/AlterTopicConfig",
    "/rill.v1.TopicAdmin/AlterTopicDefaults",
    "/rill.v1.TopicAdmin/CreateTopic",
    "/rill.v1.TopicAdmin/DeleteRecords",
    "/rill.v1.TopicAdmin/DeleteTopic",
    "/rill.v1.TopicAdmin/DescribeTopic",
    "/rill.v1.TopicAdmin/DescribeTopicDefaults",
    "/rill.v1.TopicAdmin/ListTopics",
    "/rill.v1.UserAdmin/CreateToken",
    "/rill.v1.UserAdmin/CreateUser",
    "/rill.v1.UserAdmin/DeleteUser",
    "/rill.v1.UserAdmin/ListUsers",
    "/rill.internal.v1.Controller/AppendEntries",
    "/rill.internal.v1.Controller/Heartbeat",
    "/rill.internal.v1.Controller/Identify",
    "/rill.internal.v1.Controller/InstallSnapshot",
    "/rill.internal.v1.Controller/OffsetsForLeaderEpoch",
    "/rill.internal.v1.Controller/Propose",
    "/rill.internal.v1.Controller/Replicate",
    "/rill.internal.v1.Controller/Share",
    "/rill.internal.v1.Controller/Transaction",
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
        if let Some(code) = code {
            self.record_error(method, code);
        }
    }

    /// A request's final status `code`, when it came after the response headers (in trailers); 0 (OK) counts
    /// nothing.
    pub fn record_error(&self, method: usize, code: u16) {
        if code != 0 {
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

/// Kafka error codes counted on their own: -1 (UNKNOWN_SERVER_ERROR) to this, minus two (Kafka's codes end
/// near 130); higher or lower ones count as -1.
pub const KAFKA_ERROR_CODE_SLOTS: usize = 160;

/// The `code` label of a connection closed instead of answered: not a Kafka code, since the client got none.
pub const CONNECTION_CLOSED: &str = "CONNECTION_CLOSED";

/// Kafka requests by API, requests that closed their connection (undecodable, unsupported, or failed), and the
/// error codes their responses carried.
#[derive(Debug)]
pub struct KafkaRequestMetrics {
    /// By API key; the last entry is for keys out of range.
    by_api: Vec<RequestCounters>,
    closed: Vec<AtomicU64>,
    /// `(KAFKA_API_KEYS + 1) * KAFKA_ERROR_CODE_SLOTS`, row-major by API; slot `code + 1`.
    error_codes: Vec<AtomicU64>,
}

impl Default for KafkaRequestMetrics {
    fn default() -> Self {
        Self {
            by_api: (0..=KAFKA_API_KEYS).map(|_| RequestCounters::default()).collect(),
            closed: (0..=KAFKA_API_KEYS).map(|_| AtomicU64::new(0)).collect(),
            error_codes: (0..(KAFKA_API_KEYS + 1) * KAFKA_ERROR_CODE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

fn api_index(api_key: i16) -> usize {
    usize::try_from(api_key).ok().filter(|&key| key < KAFKA_API_KEYS).unwrap_or(KAFKA_API_KEYS)
}

fn api_name(index: usize) -> String {
    i16::try_from(index)
        .ok()
        .and_then(|key| kafka_protocol::messages::ApiKey::try_from(key).ok())
        .map_or_else(|| "Unknown".to_string(), |api| format!("{api:?}"))
}

/// Kafka's name of an error code, as its documentation spells it (`UNKNOWN_TOPIC_OR_PARTITION`).
fn error_code_name(code: i16) -> String {
    let Some(error) = kafka_protocol::ResponseError::try_from_code(code) else {
        return format!("CODE_{code}");
    };
    let camel = format!("{error:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl KafkaRequestMetrics {
    /// A response carried error `code` (0, none, counts nothing).
    pub fn record_error_code(&self, api_key: i16, code: i16) {
        if code == 0 {
            return;
        }
        let slot = usize::try_from(i32::from(code) + 1).ok().filter(|&slot| slot < KAFKA_ERROR_CODE_SLOTS).unwrap_or(0);
        self.error_codes[api_index(api_key) * KAFKA_ERROR_CODE_SLOTS + slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero error code counts: (API name, code name, count); closed connections under [`CONNECTION_CLOSED`].
    pub fn errors(&self) -> impl Iterator<Item = (String, String, u64)> + '_ {
        let codes = self.error_codes.iter().enumerate().filter_map(|(i, count)| {
            let count = count.load(Ordering::Relaxed);
            let code = i16::try_from(i % KAFKA_ERROR_CODE_SLOTS).unwrap_or(0) - 1;
            (count > 0).then(|| (api_name(i / KAFKA_ERROR_CODE_SLOTS), error_code_name(code), count))
        });
        let closed = self.closed.iter().enumerate().filter_map(|(api, count)| {
            let count = count.load(Ordering::Relaxed);
            (count > 0).then(|| (api_name(api), CONNECTION_CLOSED.to_string(), count))
        });
        codes.chain(closed)
    }

    pub fn record(&self, api_key: i16, elapsed: Duration, is_failed: bool) {
        let index = api_index(api_key);
        let counters = &self.by_api[index];
        counters.requests.fetch_add(1, Ordering::Relaxed);
        counters.latency.record(elapsed);
        if is_failed {
            self.closed[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every API that saw a request: (API name, counters).
    pub fn seen(&self) -> impl Iterator<Item = (String, &RequestCounters)> {
        self.by_api
            .iter()
            .enumerate()
            .filter(|(_, c)| c.requests.load(Ordering::Relaxed) > 0)
            .map(|(key, c)| (api_name(key), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method of every service in `proto/` has its own row: a method added to a `.proto` file and not
    /// here would be counted as `other`, out of sight on the dashboards.
    #[test]
    fn every_grpc_method_in_the_proto_files_is_counted_on_its_own() {
        let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
        let mut files = vec![proto];
        let mut missing = Vec::new();
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).expect("proto dir").map(|entry| entry.expect("entry").path()));
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "proto") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("proto file");
            let (mut package, mut service) = ("", "");
            for line in text.lines().map(str::trim) {
                let word = |prefix: &str| line.strip_prefix(prefix).map(|rest| rest.trim());
                if let Some(rest) = word("package ") {
                    package = rest.trim_end_matches(';');
                } else if let Some(rest) = word("service ") {
                    service = rest.split_whitespace().next().unwrap_or_default();
                } else if let Some(rest) = word("rpc ") {
                    let method = rest.split('(').next().unwrap_or_default().trim();
                    let path = format!("/{package}.{service}/{method}");
                    seen += 1;
                    if !GRPC_METHODS.contains(&path.as_str()) {
                        missing.push(path);
                    }
                }
            }
        }
        assert!(seen > 30, "only {seen} rpcs found under proto/");
        assert!(missing.is_empty(), "not in GRPC_METHODS: {missing:?}");
    }

    #[test]
    fn kafka_error_codes_are_counted_by_api_and_kafkas_name() {
        let metrics = KafkaRequestMetrics::default();
        metrics.record_error_code(0, 3);
        metrics.record_error_code(0, 3);
        metrics.record_error_code(1, 0);
        metrics.record_error_code(1, -1);
        metrics.record_error_code(1, i16::MAX);
        metrics.record(8, Duration::from_millis(1), true);
        let mut errors: Vec<_> = metrics.errors().collect();
        errors.sort();
        assert_eq!(
            errors,
            [
                ("Fetch".to_string(), "UNKNOWN_SERVER_ERROR".to_string(), 2),
                ("OffsetCommit".to_string(), CONNECTION_CLOSED.to_string(), 1),
                ("Produce".to_string(), "UNKNOWN_TOPIC_OR_PARTITION".to_string(), 2),
            ]
        );
    }
}
