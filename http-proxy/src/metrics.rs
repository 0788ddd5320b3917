//! The proxy's own metrics, served at `GET /metrics` on its listener in Prometheus' text format: requests by
//! endpoint and status, their durations, records produced and consumed by embedded format, and what the proxy
//! holds (consumer instances, callers' clients). Labels are endpoints and formats, a fixed set: no topic, group or
//! caller names, so the series stay few whatever the traffic, and the page tells nothing about who calls.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::format::EmbeddedFormat;

/// What a request asked for, as its metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    Root,
    Metrics,
    Topics,
    Topic,
    Produce,
    Partitions,
    Partition,
    PartitionOffsets,
    Brokers,
    ConsumerCreate,
    ConsumerDelete,
    Subscription,
    Assignments,
    Positions,
    Records,
    Offsets,
    V3Clusters,
    V3Records,
    /// No such endpoint, or a request refused before its path was read.
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 19] = [
        Endpoint::Root,
        Endpoint::Metrics,
        Endpoint::Topics,
        Endpoint::Topic,
        Endpoint::Produce,
        Endpoint::Partitions,
        Endpoint::Partition,
        Endpoint::PartitionOffsets,
        Endpoint::Brokers,
        Endpoint::ConsumerCreate,
        Endpoint::ConsumerDelete,
        Endpoint::Subscription,
        Endpoint::Assignments,
        Endpoint::Positions,
        Endpoint::Records,
        Endpoint::Offsets,
        Endpoint::V3Clusters,
        Endpoint::V3Records,
        Endpoint::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Endpoint::Root => "root",
            Endpoint::Metrics => "metrics",
            Endpoint::Topics => "topics",
            Endpoint::Topic => "topic",
            Endpoint::Produce => "produce",
            Endpoint::Partitions => "partitions",
            Endpoint::Partition => "partition",
            Endpoint::PartitionOffsets => "partition_offsets",
            Endpoint::Brokers => "brokers",
            Endpoint::ConsumerCreate => "consumer_create",
            Endpoint::ConsumerDelete => "consumer_delete",
            Endpoint::Subscription => "subscription",
            Endpoint::Assignments => "assignments",
            Endpoint::Positions => "positions",
            Endpoint::Records => "records",
            Endpoint::Offsets => "offsets",
            Endpoint::V3Clusters => "v3_clusters",
            Endpoint::V3Records => "v3_records",
            Endpoint::Other => "other",
        }
    }

    fn index(self) -> usize {
        Endpoint::ALL.iter().position(|e| *e == self).unwrap_or(Endpoint::ALL.len() - 1)
    }
}

/// Upper bounds of the duration histogram's buckets, in seconds (a `records` long-poll lasts up to its timeout).
const DURATION_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];
const FORMATS: [EmbeddedFormat; 5] = [
    EmbeddedFormat::Binary,
    EmbeddedFormat::Json,
    EmbeddedFormat::Avro,
    EmbeddedFormat::Protobuf,
    EmbeddedFormat::JsonSchema,
];

#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when encoded), and one past the last bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

#[derive(Default)]
pub(crate) struct ProxyMetrics {
    requests: Mutex<BTreeMap<(Endpoint, u16), u64>>,
    durations: [Histogram; Endpoint::ALL.len()],
    produced: [AtomicU64; FORMATS.len()],
    consumed: [AtomicU64; FORMATS.len()],
}

fn format_index(format: EmbeddedFormat) -> usize {
    FORMATS.iter().position(|f| *f == format).unwrap_or(0)
}

impl ProxyMetrics {
    pub fn request_done(&self, endpoint: Endpoint, status: u16, took: Duration) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((endpoint, status)).or_default() += 1;
        let histogram = &self.durations[endpoint.index()];
        let seconds = took.as_secs_f64();
        let bucket = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(DURATION_BUCKETS.len());
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        histogram.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        histogram.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn produced(&self, format: EmbeddedFormat, records: u64) {
        self.produced[format_index(format)].fetch_add(records, Ordering::Relaxed);
    }

    pub fn consumed(&self, format: EmbeddedFormat, records: u64) {
        self.consumed[format_index(format)].fetch_add(records, Ordering::Relaxed);
    }

    /// The page, with the gauges read now.
    pub fn encode(&self, consumer_instances: usize, callers: usize) -> String {
        let mut page = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = self.encode_into(&mut page, consumer_instances, callers);
        page
    }

    fn encode_into(&self, page: &mut String, consumer_instances: usize, callers: usize) -> std::fmt::Result {
        writeln!(page, "# HELP rill_http_proxy_requests_total HTTP proxy requests answered, by endpoint and status.")?;
        writeln!(page, "# TYPE rill_http_proxy_requests_total counter")?;
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ((endpoint, status), count) in requests {
            let endpoint = endpoint.label();
            writeln!(page, "rill_http_proxy_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}")?;
        }
        writeln!(page, "# HELP rill_http_proxy_request_duration_seconds Time to answer an HTTP proxy request.")?;
        writeln!(page, "# TYPE rill_http_proxy_request_duration_seconds histogram")?;
        for endpoint in Endpoint::ALL {
            let histogram = &self.durations[endpoint.index()];
            let count = histogram.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let label = endpoint.label();
            let mut cumulative = 0;
            for (bound, bucket) in DURATION_BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                writeln!(
                    page,
                    "rill_http_proxy_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"{bound}\"}} {cumulative}"
                )?;
            }
            writeln!(
                page,
                "rill_http_proxy_request_duration_seconds_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {count}"
            )?;
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            writeln!(page, "rill_http_proxy_request_duration_seconds_sum{{endpoint=\"{label}\"}} {sum}")?;
            writeln!(page, "rill_http_proxy_request_duration_seconds_count{{endpoint=\"{label}\"}} {count}")?;
        }
        for (name, help, counters) in [
            (
                "rill_http_proxy_records_produced_total",
                "Records the HTTP proxy stored, by embedded format.",
                &self.produced,
            ),
            (
                "rill_http_proxy_records_consumed_total",
                "Records the HTTP proxy handed to callers, by embedded format.",
                &self.consumed,
            ),
        ] {
            writeln!(page, "# HELP {name} {help}")?;
            writeln!(page, "# TYPE {name} counter")?;
            for (format, counter) in FORMATS.iter().zip(counters) {
                writeln!(page, "{name}{{format=\"{}\"}} {}", format.name(), counter.load(Ordering::Relaxed))?;
            }
        }
        writeln!(page, "# HELP rill_http_proxy_consumer_instances Consumer instances the HTTP proxy holds.")?;
        writeln!(page, "# TYPE rill_http_proxy_consumer_instances gauge")?;
        writeln!(page, "rill_http_proxy_consumer_instances {consumer_instances}")?;
        writeln!(page, "# HELP rill_http_proxy_callers Callers' clients the HTTP proxy holds (one per bearer token).")?;
        writeln!(page, "# TYPE rill_http_proxy_callers gauge")?;
        writeln!(page, "rill_http_proxy_callers {callers}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_endpoint_and_status_and_timed_in_buckets() {
        let metrics = ProxyMetrics::default();
        metrics.request_done(Endpoint::Produce, 200, Duration::from_millis(3));
        metrics.request_done(Endpoint::Produce, 200, Duration::from_millis(30));
        metrics.request_done(Endpoint::Records, 404, Duration::from_secs(10));
        metrics.produced(EmbeddedFormat::Avro, 5);
        let page = metrics.encode(2, 1);
        for line in [
            "rill_http_proxy_requests_total{endpoint=\"produce\",status=\"200\"} 2",
            "rill_http_proxy_requests_total{endpoint=\"records\",status=\"404\"} 1",
            "rill_http_proxy_request_duration_seconds_bucket{endpoint=\"produce\",le=\"0.005\"} 1",
            "rill_http_proxy_request_duration_seconds_bucket{endpoint=\"produce\",le=\"0.05\"} 2",
            "rill_http_proxy_request_duration_seconds_bucket{endpoint=\"records\",le=\"5\"} 0",
            "rill_http_proxy_request_duration_seconds_bucket{endpoint=\"records\",le=\"+Inf\"} 1",
            "rill_http_proxy_request_duration_seconds_count{endpoint=\"produce\"} 2",
            "rill_http_proxy_records_produced_total{format=\"avro\"} 5",
            "rill_http_proxy_records_consumed_total{format=\"binary\"} 0",
            "rill_http_proxy_consumer_instances 2",
            "rill_http_proxy_callers 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing from\n{page}");
        }
        assert!(!page.contains("endpoint=\"topics\""), "endpoints never called have no series");
    }
}
