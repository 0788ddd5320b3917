//! `/metrics`: the live counters of [`NodeMetrics`] plus what is read from the node's state when scraped (log
//! offsets and sizes, committed offsets and lag, groups, cluster placement, the process), rendered by
//! `prometheus-client` in the OpenMetrics text format, or in Prometheus' 0.0.4 text format for a scraper that
//! does not ask for OpenMetrics (promtool, older servers).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry as MetricRegistry;
use rill_storage::latency::{LatencySnapshot, LATENCY_BUCKET_BOUNDS_US};

use super::{process, NodeMetrics, WRITE_GROUP_BOUNDS};
use crate::cluster::Controller;
use crate::node::Node;
use crate::offsets::OffsetKey;

/// What one scrape reads.
pub struct Scraped {
    pub node: Arc<Node>,
    pub metrics: Arc<NodeMetrics>,
    pub controller: Option<Arc<Controller>>,
    /// The console's sign-in sessions held (`AdminAuthenticator::session_count`), counted before the scrape:
    /// the sessions live with the admin listener, not the node.
    pub console_sessions: usize,
}

// prometheus-client wants collectors `Debug`; the node's state is too large to print usefully.
impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").finish_non_exhaustive()
    }
}

/// The node's metrics as text: OpenMetrics when `openmetrics`, else Prometheus' 0.0.4 text format.
pub fn encode(scraped: Scraped, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut registry = MetricRegistry::default();
    registry.register_collector(Box::new(scraped));
    let mut text = String::with_capacity(64 << 10);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(if openmetrics { text } else { to_prometheus_text(&text) })
}

/// OpenMetrics names a counter family without its `_total` suffix and ends with `# EOF`; the 0.0.4 format names
/// the family as its samples are named and has no end marker. The two differ in nothing else we write.
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|rest| rest.strip_suffix(" counter")) {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 12);
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

type Labels = Vec<(&'static str, String)>;

/// Writes one family: `samples` yields (labels, value) and is encoded as `kind`.
fn family<I>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: I,
) -> Result<(), std::fmt::Error>
where
    I: IntoIterator<Item = (Labels, f64)>,
{
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        encode_value(sample, kind, value)?;
    }
    Ok(())
}

fn encode_value(sample: MetricEncoder, kind: MetricType, value: f64) -> Result<(), std::fmt::Error> {
    match kind {
        // Counters are whole counts or seconds; both encode exactly as f64 up to 2^53.
        MetricType::Counter => ConstCounter::new(value).encode(sample),
        _ => ConstGauge::new(value).encode(sample),
    }
}

/// A family of one unlabelled sample.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    encode_value(metric, kind, value)
}

/// A latency histogram in seconds, one per label set.
fn latency_family<I>(encoder: &mut DescriptorEncoder, name: &str, help: &str, series: I) -> std::fmt::Result
where
    I: IntoIterator<Item = (Labels, LatencySnapshot)>,
{
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, snapshot) in series {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKET_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::MAX])
            .zip(snapshot.buckets)
            .collect();
        let (sum_s, count) = (snapshot.sum_ns as f64 / 1e9, snapshot.count);
        if labels.is_empty() {
            // An empty label set would be written as `{}`.
            metric.encode_histogram::<NoLabelSet>(sum_s, count, &buckets, None)?;
        } else {
            metric.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum_s, count, &buckets, None)?;
        }
    }
    Ok(())
}

fn labels<const N: usize>(pairs: [(&'static str, String); N]) -> Labels {
    pairs.into_iter().collect()
}

/// A group's partition: `group`, `topic`, `partition`.
fn partition_labels(key: &OffsetKey) -> Labels {
    labels([("group", key.group.clone()), ("topic", key.topic.clone()), ("partition", key.partition.to_string())])
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_process(&mut encoder)?;
        self.encode_partitions(&mut encoder)?;
        self.encode_requests(&mut encoder)?;
        self.encode_storage(&mut encoder)?;
        self.encode_groups(&mut encoder)?;
        self.encode_share_groups(&mut encoder)?;
        self.encode_connections(&mut encoder)?;
        self.encode_authorization(&mut encoder)?;
        self.encode_quotas(&mut encoder)?;
        self.encode_client_telemetry(&mut encoder)?;
        self.encode_transactions(&mut encoder)?;
        self.encode_schema_registry(&mut encoder)?;
        single(
            &mut encoder,
            "rill_producer_ids_available",
            "Producer ids this node can issue without reserving a block (on a cluster, from the controller leader): \
             the rest of its current block and the next one, reserved ahead.",
            MetricType::Gauge,
            self.node.producer_ids.available() as f64,
        )?;
        single(
            &mut encoder,
            "rill_console_sessions",
            "Web console sign-in sessions held: on one node those not yet ended, on a cluster the replicated ones.",
            MetricType::Gauge,
            self.console_sessions as f64,
        )?;
        self.encode_cluster(&mut encoder)
    }
}

impl Scraped {
    fn encode_process(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let version = labels([("version", env!("CARGO_PKG_VERSION").to_string())]);
        family(encoder, "rill_build_info", "The broker's version; always 1.", MetricType::Gauge, [(version, 1.0)])?;
        let stats = process::read();
        let gauges = [
            ("process_resident_memory_bytes", "Resident set size.", stats.resident_bytes),
            ("process_open_fds", "Open file descriptors.", stats.open_fds),
            ("process_max_fds", "The open-file limit (RLIMIT_NOFILE).", stats.max_fds),
            (
                "process_start_time_seconds",
                "Start of the process, in seconds since the Unix epoch.",
                stats.start_time_s,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                single(encoder, name, help, MetricType::Gauge, value)?;
            }
        }
        if let Some(cpu) = stats.cpu_s {
            single(encoder, "process_cpu_seconds", "User and system CPU time.", MetricType::Counter, cpu)?;
        }
        // Scrapes run on the broker's runtime; the count shows what `worker_threads` 0 chose on this machine.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let workers = runtime.metrics().num_workers() as f64;
            let help = "Worker threads of the process's async runtime (the `worker_threads` setting).";
            single(encoder, "rill_runtime_worker_threads", help, MetricType::Gauge, workers)?;
        }
        Ok(())
    }

    fn encode_partitions(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let partitions = self.node.registry.all_partitions();
        let label = |p: &crate::partition::Partition| {
            labels([("topic", p.topic.to_string()), ("partition", p.index.to_string())])
        };
        type Read = fn(&crate::partition::Partition) -> f64;
        let counters: [(&str, &str, Read); 4] = [
            ("rill_partition_produced_bytes", "Bytes of batches appended by producers.", |p| {
                p.traffic().map_or(0.0, |t| t.bytes_in.load(Ordering::Relaxed) as f64)
            }),
            ("rill_partition_produced_records", "Records appended by producers.", |p| {
                p.traffic().map_or(0.0, |t| t.records_in.load(Ordering::Relaxed) as f64)
            }),
            ("rill_partition_fetched_bytes", "Bytes of batches returned by fetches and subscriptions.", |p| {
                p.traffic().map_or(0.0, |t| t.bytes_out.load(Ordering::Relaxed) as f64)
            }),
            ("rill_partition_fetched_records", "Records returned by fetches and subscriptions.", |p| {
                p.traffic().map_or(0.0, |t| t.records_out.load(Ordering::Relaxed) as f64)
            }),
        ];
        for (name, help, read) in counters {
            family(encoder, name, help, MetricType::Counter, partitions.iter().map(|p| (label(p), read(p))))?;
        }
        let gauges: [(&str, &str, Read); 5] = [
            ("rill_partition_log_end_offset", "The offset the next record appended gets.", |p| {
                p.log().log_end_offset() as f64
            }),
            ("rill_partition_high_watermark", "The offset consumers may read up to.", |p| {
                p.log().high_watermark() as f64
            }),
            ("rill_partition_log_start_offset", "The first offset retention and deleted records have left.", |p| {
                p.log().log_start_offset() as f64
            }),
            ("rill_partition_segments", "Segments on disk.", |p| p.log().segment_count() as f64),
            ("rill_partition_size_bytes", "Bytes of the partition's segments on disk.", |p| {
                p.log().size_bytes() as f64
            }),
        ];
        for (name, help, read) in gauges {
            family(encoder, name, help, MetricType::Gauge, partitions.iter().map(|p| (label(p), read(p))))?;
        }
        Ok(())
    }

    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let grpc = &self.metrics.grpc;
        let method = |name: &str| labels([("method", name.to_string())]);
        family(
            encoder,
            "rill_grpc_requests",
            "gRPC requests by method (streams counted when they open).",
            MetricType::Counter,
            grpc.counters().map(|(name, c)| (method(name), c.requests.load(Ordering::Relaxed) as f64)),
        )?;
        family(
            encoder,
            "rill_grpc_request_errors",
            "gRPC requests answered with an error status, by method and code.",
            MetricType::Counter,
            grpc.errors().map(|(name, code, count)| {
                (labels([("method", name.to_string()), ("code", code.to_string())]), count as f64)
            }),
        )?;
        latency_family(
            encoder,
            "rill_grpc_request_duration_seconds",
            "Time from a gRPC request's arrival to its response headers (a unary call's answer).",
            grpc.counters().map(|(name, c)| (method(name), c.latency.snapshot())),
        )?;
        let kafka: Vec<_> = self.metrics.kafka.seen().collect();
        let api = |name: &str| labels([("api", name.to_string())]);
        family(
            encoder,
            "rill_kafka_requests",
            "Kafka-protocol requests by API.",
            MetricType::Counter,
            kafka.iter().map(|(name, c)| (api(name), c.requests.load(Ordering::Relaxed) as f64)),
        )?;
        family(
            encoder,
            "rill_kafka_request_errors",
            "Kafka error codes in responses (each partition, topic or group that has one), by API and code; \
             CONNECTION_CLOSED for requests closed instead of answered.",
            MetricType::Counter,
            self.metrics
                .kafka
                .errors()
                .map(|(name, code, count)| (labels([("api", name), ("code", code)]), count as f64)),
        )?;
        latency_family(
            encoder,
            "rill_kafka_request_duration_seconds",
            "Time to answer a Kafka-protocol request, from its last byte read to its answer encoded.",
            kafka.iter().map(|(name, c)| (api(name), c.latency.snapshot())),
        )
    }

    fn encode_storage(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut fsyncs = LatencySnapshot::default();
        let mut failed = 0u64;
        for partition in self.node.registry.all_partitions() {
            fsyncs.add(&partition.log().fsync_latency().snapshot());
            failed += u64::from(partition.log().sync_failure().is_some());
        }
        latency_family(
            encoder,
            "rill_fsync_duration_seconds",
            "fsyncs of partition logs (group commits and interval flushes) and how long they took.",
            [(Labels::new(), fsyncs)],
        )?;
        single(
            encoder,
            "rill_partitions_fsync_failed",
            "Partitions whose log takes no appends since an fsync of it failed; a restart recovers them from disk.",
            MetricType::Gauge,
            failed as f64,
        )?;
        let compaction = &self.metrics.compaction;
        for (name, help, value) in [
            ("rill_compaction_passes", "Compaction passes that ran (docs/compaction.md).", &compaction.passes),
            (
                "rill_compaction_segments_rewritten",
                "Segments compaction rewrote without superseded records.",
                &compaction.segments_rewritten,
            ),
            (
                "rill_compaction_segments_merged",
                "Segments compaction merged into a neighbour: the partitions have this many fewer segment files.",
                &compaction.segments_merged,
            ),
            (
                "rill_compaction_records_removed",
                "Records compaction removed: superseded values, expired tombstones, aborted transactions' records.",
                &compaction.records_removed,
            ),
            (
                "rill_compaction_reclaimed_bytes",
                "Bytes compaction freed: the rewritten segments' sizes before less after.",
                &compaction.bytes_reclaimed,
            ),
            (
                "rill_compaction_failures",
                "Compaction passes that failed (logged at WARN with the partition and the cause).",
                &compaction.failures,
            ),
        ] {
            single(encoder, name, help, MetricType::Counter, value.load(Ordering::Relaxed) as f64)?;
        }
        let follower_fetching = &self.metrics.follower_fetching;
        for (name, help, value) in [
            (
                "rill_kafka_read_replica_redirects",
                "Partitions of Kafka consumers' fetches this node, leading them, sent to an in-sync follower in the \
                 consumer's rack (KIP-392, client.rack).",
                &follower_fetching.redirects,
            ),
            (
                "rill_kafka_follower_reads",
                "Partitions of Kafka consumers' fetches this node served as a follower (KIP-392).",
                &follower_fetching.follower_reads,
            ),
        ] {
            single(encoder, name, help, MetricType::Counter, value.load(Ordering::Relaxed) as f64)?;
        }
        single(
            encoder,
            "rill_kafka_fetch_sessions",
            "Kafka consumers' fetch sessions open on this node (KIP-227), at most 1000.",
            MetricType::Gauge,
            self.node.fetch_sessions.len() as f64,
        )?;
        let (sizes, sum) = self.metrics.writes.snapshot();
        let buckets: Vec<(f64, u64)> =
            WRITE_GROUP_BOUNDS.iter().map(|&b| b as f64).chain([f64::MAX]).zip(sizes).collect();
        let count = sizes.iter().sum();
        let mut metric = encoder.encode_descriptor(
            "rill_write_group_append_calls",
            "Append calls a partition writer wrote in one turn, under one fsync for `always` topics (group commit).",
            None,
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<NoLabelSet>(sum as f64, count, &buckets, None)?;
        single(
            encoder,
            "rill_appends_in_flight",
            "Partition appends writing to the disk now (at most appends_in_flight).",
            MetricType::Gauge,
            self.node.registry.appends_in_flight() as f64,
        )?;
        self.encode_disk(encoder)?;
        self.encode_tail_cache(encoder)
    }

    /// The data dir's file system and the disk reserve (`disk_reserve.rs`): what to alert on before appends stop.
    fn encode_disk(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let reserve = &self.node.disk_reserve;
        if let Some(space) = reserve.space_now() {
            let sizes = [
                ("rill_disk_total_bytes", "Size of the file system holding the data dir.", space.total_bytes),
                (
                    "rill_disk_free_bytes",
                    "Bytes of the data dir's file system a non-root writer may still use (statvfs f_bavail), read at \
                     the scrape.",
                    space.free_bytes,
                ),
            ];
            for (name, help, value) in sizes {
                single(encoder, name, help, MetricType::Gauge, value as f64)?;
            }
        }
        single(
            encoder,
            "rill_disk_reserve_bytes",
            "min_free_disk_bytes: below this much free space the node refuses partition appends (0: no reserve).",
            MetricType::Gauge,
            reserve.min_free_bytes() as f64,
        )?;
        single(
            encoder,
            "rill_disk_below_reserve",
            "1 while the free space, as last read, is below the reserve and partition appends are refused.",
            MetricType::Gauge,
            if reserve.check().is_err() { 1.0 } else { 0.0 },
        )?;
        single(
            encoder,
            "rill_disk_reserve_refused_appends",
            "Partition appends (produces and replica fetches) refused because the free space was below the reserve, \
             and offset commits on a cluster coordinator below half of it.",
            MetricType::Counter,
            reserve.refused_appends() as f64,
        )
    }

    /// The tail cache's counters; none of its families when the node keeps no cache.
    fn encode_tail_cache(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(cache) = self.node.registry.tail_cache() else { return Ok(()) };
        let stats = cache.stats();
        let families: [(&str, &str, MetricType, u64); 11] = [
            (
                "rill_tail_cache_hits",
                "Partition reads answered from the tail cache, without the disk.",
                MetricType::Counter,
                stats.hits,
            ),
            (
                "rill_tail_cache_misses",
                "Partition reads the tail cache did not hold, read from segment files.",
                MetricType::Counter,
                stats.misses,
            ),
            (
                "rill_tail_cache_hit_bytes",
                "Bytes of batches answered from the tail cache.",
                MetricType::Counter,
                stats.hit_bytes,
            ),
            (
                "rill_tail_cache_evictions",
                "Cached appends dropped, oldest first, to stay within tail_cache_bytes.",
                MetricType::Counter,
                stats.evictions,
            ),
            (
                "rill_tail_cache_bytes",
                "Bytes of batches the tail cache holds now.",
                MetricType::Gauge,
                stats.used_bytes,
            ),
            (
                "rill_tail_cache_limit_bytes",
                "Most bytes the tail cache holds (tail_cache_bytes).",
                MetricType::Gauge,
                stats.limit_bytes,
            ),
            ("rill_tail_cache_entries", "Appends the tail cache holds now.", MetricType::Gauge, stats.entries),
            (
                "rill_read_ahead_hits",
                "Partition reads from segment files answered from a chunk read ahead of the reader.",
                MetricType::Counter,
                stats.read_ahead_hits,
            ),
            (
                "rill_read_ahead_reads",
                "Chunks read ahead of sequential readers of segment files.",
                MetricType::Counter,
                stats.read_ahead_reads,
            ),
            (
                "rill_read_ahead_read_bytes",
                "Bytes of the chunks read ahead of sequential readers.",
                MetricType::Counter,
                stats.read_ahead_read_bytes,
            ),
            (
                "rill_read_ahead_bytes",
                "Bytes of chunks read ahead held now (counted in rill_tail_cache_bytes).",
                MetricType::Gauge,
                stats.read_ahead_bytes,
            ),
        ];
        for (name, help, kind, value) in families {
            single(encoder, name, help, kind, value as f64)?;
        }
        Ok(())
    }

    fn encode_groups(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let committed = self.node.offsets.all_committed();
        let label = partition_labels;
        family(
            encoder,
            "rill_group_committed_offset",
            "A consumer group's committed offset of a partition.",
            MetricType::Gauge,
            committed.iter().map(|(key, offset)| (label(key), *offset as f64)),
        )?;
        let lag = committed.iter().filter_map(|(key, offset)| {
            let partition = self.node.registry.partition(&key.topic, key.partition).ok()?;
            Some((label(key), (partition.log().high_watermark() - offset).max(0) as f64))
        });
        family(
            encoder,
            "rill_group_lag_records",
            "Records between a group's committed offset and the partition's high watermark.",
            MetricType::Gauge,
            lag,
        )?;
        let summaries = self.node.groups.summaries();
        let group = |name: &String| labels([("group", name.clone())]);
        family(
            encoder,
            "rill_group_members",
            "Members of a consumer group.",
            MetricType::Gauge,
            summaries.iter().map(|(name, s)| (group(name), f64::from(s.member_count))),
        )?;
        family(
            encoder,
            "rill_group_generation",
            "A consumer group's generation: it grows by one with every rebalance (0 while empty).",
            MetricType::Gauge,
            summaries.iter().map(|(name, s)| (group(name), f64::from(s.generation))),
        )
    }

    /// Share groups (KIP-932): members per group; per share partition its start offset, what is left to the end,
    /// what is in flight and out under locks; per group what happened to its records, by outcome.
    fn encode_share_groups(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let (members, partitions) = self.node.shares.metrics();
        family(
            encoder,
            "rill_share_group_members",
            "Members of a share group (KIP-932).",
            MetricType::Gauge,
            members.iter().map(|(group, count)| (labels([("group", group.clone())]), *count as f64)),
        )?;
        let label = partition_labels;
        family(
            encoder,
            "rill_share_group_start_offset",
            "A share group's start offset in a partition: every record below it is done with.",
            MetricType::Gauge,
            partitions.iter().map(|p| (label(&p.key), p.start_offset as f64)),
        )?;
        let lag = partitions.iter().filter_map(|p| {
            let partition = self.node.registry.partition(&p.key.topic, p.key.partition).ok()?;
            Some((label(&p.key), (partition.log().high_watermark() - p.start_offset).max(0) as f64))
        });
        family(
            encoder,
            "rill_share_group_lag_records",
            "Records between a share group's start offset and the partition's high watermark (in flight included).",
            MetricType::Gauge,
            lag,
        )?;
        family(
            encoder,
            "rill_share_group_in_flight_records",
            "A share group's records past its start offset out with a member or waiting to be delivered again.",
            MetricType::Gauge,
            partitions.iter().map(|p| (label(&p.key), p.in_flight as f64)),
        )?;
        family(
            encoder,
            "rill_share_group_acquired_records",
            "A share group's records out with a member under a lock now.",
            MetricType::Gauge,
            partitions.iter().map(|p| (label(&p.key), p.acquired as f64)),
        )?;
        let mut by_group: BTreeMap<&str, crate::share_groups::DeliveryCounts> = BTreeMap::new();
        for partition in &partitions {
            *by_group.entry(partition.key.group.as_str()).or_default() += partition.counts;
        }
        let outcomes = by_group.iter().flat_map(|(group, counts)| {
            [
                ("acquired", counts.acquired),
                ("accepted", counts.accepted),
                ("gap", counts.gaps),
                ("released", counts.released),
                ("rejected", counts.rejected),
                ("lock_timeout", counts.lock_timeouts),
                ("member_left", counts.member_releases),
                ("archived", counts.archived),
                ("dead_letter", counts.dead_letters),
                ("dead_letter_lost", counts.dead_letters_lost),
            ]
            .into_iter()
            .map(|(outcome, value)| {
                (labels([("group", (*group).to_owned()), ("outcome", outcome.to_owned())]), value as f64)
            })
        });
        family(
            encoder,
            "rill_share_records",
            "A share group's records by what happened to them since the broker started: acquired (each delivery), \
             accepted, gap, released (by the member), rejected, lock_timeout, member_left, archived (given up after \
             the delivery count limit), dead_letter (rejected or given up, written to the group's dead-letter topic), \
             dead_letter_lost (not written: the topic unfit or its writes failing).",
            MetricType::Counter,
            outcomes,
        )
    }

    fn encode_connections(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let connections = &self.metrics.connections;
        let counters = [
            ("rill_connections_accepted", "Client connections accepted.", &connections.accepted),
            (
                "rill_connections_refused",
                "Client connections closed at once: max_connections were open, or max_connections_per_ip from the \
                 peer's address.",
                &connections.refused,
            ),
            (
                "rill_tls_handshake_failures",
                "Connections to the TLS listener closed because their TLS handshake failed.",
                &connections.tls_handshake_failures,
            ),
        ];
        for (name, help, value) in counters {
            single(encoder, name, help, MetricType::Counter, value.load(Ordering::Relaxed) as f64)?;
        }
        single(
            encoder,
            "rill_connections_rate_limited",
            "Client connections closed as they were accepted: their address was past its connection_creation_rate \
             quota.",
            MetricType::Counter,
            self.node.quotas.connection_rates().refused() as f64,
        )?;
        single(
            encoder,
            "rill_connections_open",
            "Client connections open (gRPC and Kafka).",
            MetricType::Gauge,
            connections.open.load(Ordering::Relaxed) as f64,
        )
    }

    /// Every (operation, resource type) pair, zeros too: both labels come from closed enums (bounded).
    fn encode_authorization(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        family(
            encoder,
            "rill_node_call_denials",
            "Node-to-node calls (rill.internal) refused to a caller that showed no node's certificate or secret.",
            MetricType::Counter,
            [(labels([]), self.node.authorizer.node_call_denial_count() as f64)],
        )?;
        family(
            encoder,
            "rill_authorization_denials",
            "Requests (or parts of one: a topic of a produce) refused by the ACLs, with authorization on.",
            MetricType::Counter,
            self.node.authorizer.denial_counts().into_iter().map(|(operation, resource_type, count)| {
                (
                    labels([
                        ("operation", operation.name().to_string()),
                        ("resource_type", resource_type.name().to_string()),
                    ]),
                    count as f64,
                )
            }),
        )
    }

    /// Throttled requests by quota key (a closed set): every key, zeros too.
    fn encode_quotas(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let counts = self.node.quotas.throttle_counts();
        family(
            encoder,
            "rill_client_throttles",
            "Requests of clients past a client quota (Kafka or gRPC), throttled, by quota.",
            MetricType::Counter,
            counts.iter().map(|(key, count, _)| (labels([("quota", key.name().to_string())]), *count as f64)),
        )?;
        family(
            encoder,
            "rill_client_throttle_seconds",
            "Time clients past a client quota were held for, by quota.",
            MetricType::Counter,
            counts.iter().map(|(key, _, held)| (labels([("quota", key.name().to_string())]), held.as_secs_f64())),
        )
    }

    /// Kafka clients' pushed metrics (KIP-714, `client_telemetry.rs`), one family per metric name, a series per
    /// client instance and data point; the instances known. A name pushed as both a gauge and a counter keeps the
    /// kind it was first seen with.
    fn encode_client_telemetry(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        use crate::client_telemetry::SeriesKind;
        let telemetry = &self.node.client_telemetry;
        single(
            encoder,
            "rill_client_telemetry_instances",
            "Kafka client instances whose pushed metrics this node holds (KIP-714).",
            MetricType::Gauge,
            telemetry.instance_count() as f64,
        )?;
        if let Some(counts) = telemetry.forward_counts() {
            let outcomes = [("exported", &counts.exported), ("failed", &counts.failed), ("dropped", &counts.dropped)];
            family(
                encoder,
                "rill_client_telemetry_exports",
                "Client metrics pushes sent on to the OTLP endpoint: exported, failed (the collector refused or \
                 could not be reached), or dropped (the queue to it was full).",
                MetricType::Counter,
                outcomes
                    .map(|(outcome, n)| (labels([("outcome", outcome.to_string())]), n.load(Ordering::Relaxed) as f64)),
            )?;
        }
        // Family name: its kind, help, and value per label set.
        type Samples = BTreeMap<Vec<(String, String)>, f64>;
        let mut families: BTreeMap<String, (SeriesKind, String, Samples)> = BTreeMap::new();
        for series in telemetry.snapshot() {
            let family = families.entry(series.family).or_insert_with(|| (series.kind, series.help, BTreeMap::new()));
            if family.0 == series.kind {
                family.2.insert(series.labels, series.value);
            }
        }
        for (name, (kind, help, samples)) in families {
            let kind = match kind {
                SeriesKind::Gauge => MetricType::Gauge,
                SeriesKind::Counter => MetricType::Counter,
            };
            let mut metric = encoder.encode_descriptor(&name, &help, None, kind)?;
            for (labels, value) in samples {
                encode_value(metric.encode_family(&labels)?, kind, value)?;
            }
        }
        Ok(())
    }

    /// The transaction coordinator's counts; none of its families on a cluster node, which has none.
    fn encode_schema_registry(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let registry = self.node.schemas.snapshot();
        single(
            encoder,
            "rill_schema_registry_subjects",
            "Schema registry subjects with a live (not soft-deleted) version, as this node holds them.",
            MetricType::Gauge,
            registry.subject_names(false, "").len() as f64,
        )?;
        single(
            encoder,
            "rill_schema_registry_schemas",
            "Schemas the registry holds (each id once, whatever subjects share it).",
            MetricType::Gauge,
            registry.schemas.len() as f64,
        )?;
        single(
            encoder,
            "rill_schema_id_refusals",
            "Produces refused because a record lacked a schema id registered under its subject, on topics with \
             confluent.key.schema.validation or confluent.value.schema.validation.",
            MetricType::Counter,
            self.metrics.schema_id_refusals.load(Ordering::Relaxed) as f64,
        )
    }

    fn encode_transactions(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let transactions = &self.node.transactions;
        family(
            encoder,
            "rill_transactions",
            "Kafka transactions completed, by how they ended: committed, aborted (by the producer), timed_out or \
             fenced (aborted by the coordinator).",
            MetricType::Counter,
            transactions
                .ending_counts()
                .into_iter()
                .map(|(ending, count)| (labels([("outcome", ending.name().to_string())]), count as f64)),
        )?;
        let (ids, open) = transactions.id_counts();
        single(
            encoder,
            "rill_transactional_ids",
            "Transactional ids the coordinator holds.",
            MetricType::Gauge,
            ids as f64,
        )?;
        single(
            encoder,
            "rill_transactions_open",
            "Transactions open (or being committed or aborted) now.",
            MetricType::Gauge,
            open as f64,
        )
    }

    fn encode_cluster(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(controller) = &self.controller else {
            return Ok(());
        };
        let term = controller.raft.metrics().borrow().current_term;
        single(encoder, "rill_controller_term", "The controller quorum's raft term.", MetricType::Gauge, term as f64)?;
        single(
            encoder,
            "rill_controller_elections_called",
            "Elections this node called because the controller leader it followed stopped and its address refused \
             connections, ahead of raft's own election timeout.",
            MetricType::Counter,
            controller.elections_called() as f64,
        )?;
        family(
            encoder,
            "rill_controller_fences",
            "Nodes this node fenced as controller leader, by cause: session-expired (not heard for \
             node_session_timeout_ms), heartbeat-overdue or stream-broken (its address refused a connection once its \
             heartbeat was late, or once a replication stream from it broke).",
            MetricType::Counter,
            controller
                .fences()
                .into_iter()
                .map(|(cause, count)| (labels([("cause", cause.to_string())]), count as f64)),
        )?;
        let metadata = controller.metadata();
        let led: Vec<_> = metadata
            .topics
            .iter()
            .flat_map(|(topic, placement)| {
                placement.partitions.iter().enumerate().map(move |(index, p)| (topic, index, p))
            })
            .filter(|(_, _, p)| p.leader == Some(controller.node_id))
            .collect();
        let label = |topic: &String, index: usize| labels([("topic", topic.clone()), ("partition", index.to_string())]);
        family(
            encoder,
            "rill_partition_isr_size",
            "In-sync replicas of a partition this node leads.",
            MetricType::Gauge,
            led.iter().map(|(topic, index, p)| (label(topic, *index), p.isr.len() as f64)),
        )?;
        family(
            encoder,
            "rill_partition_leader_epoch",
            "Leader epoch of a partition this node leads: it grows by one with every leader change.",
            MetricType::Gauge,
            led.iter().map(|(topic, index, p)| (label(topic, *index), f64::from(p.leader_epoch))),
        )?;
        let under_replicated = led.iter().filter(|(_, _, p)| p.isr.len() < p.replicas.len()).count();
        single(
            encoder,
            "rill_under_replicated_partitions",
            "Partitions this node leads whose ISR is smaller than their replica set.",
            MetricType::Gauge,
            under_replicated as f64,
        )?;
        // Kafka's ReassigningPartitions: a move's new replicas are out of the ISR until they catch up, so these
        // are also under-replicated; this tells the two apart (KIP-352).
        let reassigning = led.iter().filter(|(_, _, p)| p.reassignment.is_some()).count();
        single(
            encoder,
            "rill_reassigning_partitions",
            "Partitions this node leads that are being moved onto other replicas (a reassignment or rebalance).",
            MetricType::Gauge,
            reassigning as f64,
        )
    }
}
