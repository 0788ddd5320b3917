//! The node's metrics: live counters held where the work happens, and their export in the Prometheus/OpenMetrics
//! text format on the admin listener (`admin_http.rs`, docs/observability.md).
//!
//! Hot paths (produce append, fetch) touch only relaxed atomics in structs reached without a look-up:
//! [`PartitionTraffic`] lives on its `Partition`, request counters are fixed tables indexed by method. Everything
//! that can be read from state the node already keeps (log offsets, segments, committed offsets and lag, groups,
//! cluster placement, the process) is read when scraped, in `exposition.rs`, and costs nothing in between.
//!
//! Labels are bounded: topics and groups are names the broker validated and bounds by `max_topics` and
//! `max_groups`; gRPC methods and Kafka APIs come from fixed tables (anything else is `other`).

pub mod admin_http;
mod exposition;
pub mod grpc_layer;
mod process;
mod requests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use exposition::{encode, Scraped};
pub use requests::{KafkaRequestMetrics, RequestMetrics, GRPC_METHODS};

/// Bytes and records a partition took in (appended by producers) and gave out (returned by fetches and pushes).
/// Updated once per append call or read, never per record.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    pub bytes_in: AtomicU64,
    pub records_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub records_out: AtomicU64,
}

impl PartitionTraffic {
    /// An append of `records` records in `bytes` bytes landed.
    pub fn record_in(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// A read returned `records` records in `bytes` bytes.
    pub fn record_out(&self, bytes: u64, records: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }
}

/// Upper bounds of the group-commit histogram: append calls one writer turn wrote together (at most
/// `MAX_BATCHES_PER_WRITE`, 64).
pub const WRITE_GROUP_BOUNDS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Node-wide counters the partitions' writers share.
#[derive(Debug, Default)]
pub struct WriteMetrics {
    /// Writer turns by how many append calls they wrote at once (group commit), not cumulative.
    group_sizes: [AtomicU64; WRITE_GROUP_BOUNDS.len() + 1],
    group_size_sum: AtomicU64,
}

impl WriteMetrics {
    pub fn record_group(&self, append_calls: usize) {
        let calls = append_calls as u64;
        let bucket = WRITE_GROUP_BOUNDS.partition_point(|&bound| bound < calls);
        self.group_sizes[bucket].fetch_add(1, Ordering::Relaxed);
        self.group_size_sum.fetch_add(calls, Ordering::Relaxed);
    }

    /// Counts by bucket of [`WRITE_GROUP_BOUNDS`] and +Inf (not cumulative), and the sum of append calls.
    pub fn snapshot(&self) -> ([u64; WRITE_GROUP_BOUNDS.len() + 1], u64) {
        (
            std::array::from_fn(|i| self.group_sizes[i].load(Ordering::Relaxed)),
            self.group_size_sum.load(Ordering::Relaxed),
        )
    }
}

/// Client connections on the broker port (gRPC and Kafka alike).
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    pub accepted: AtomicU64,
    /// Closed at once because `max_connections` were open, or `max_connections_per_ip` from the peer's address.
    pub refused: AtomicU64,
    pub open: AtomicU64,
    /// Connections to a TLS listener closed because their handshake failed (a bad or missing client
    /// certificate, an untrusted broker certificate, a timeout, plaintext where a handshake should be).
    pub tls_handshake_failures: AtomicU64,
}

/// Decrements the open-connection gauge when the connection it rides on is dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionMetrics>);

impl ConnectionMetrics {
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every live metric of a node. Exists only when the admin listener is on: with `admin_listen` off the hot paths
/// skip their updates (an `Option` check), which is what the metrics-overhead benchmark compares.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub grpc: RequestMetrics,
    pub kafka: KafkaRequestMetrics,
    pub writes: Arc<WriteMetrics>,
    pub connections: Arc<ConnectionMetrics>,
    pub compaction: CompactionMetrics,
    pub follower_fetching: FollowerFetchMetrics,
    /// Produces refused by a topic's schema id validation (`schema_registry/validation.rs`).
    pub schema_id_refusals: AtomicU64,
}

/// KIP-392 on the Kafka port (`kafka/fetch.rs`), counted per partition of a consumer's fetch.
#[derive(Debug, Default)]
pub struct FollowerFetchMetrics {
    /// As leader: sent to a follower in the consumer's rack (`preferred_read_replica`).
    pub redirects: AtomicU64,
    /// As follower: served to a consumer.
    pub follower_reads: AtomicU64,
}

/// What the node's compaction passes did (`server.rs`, `run_compaction`), summed over its partitions.
#[derive(Debug, Default)]
pub struct CompactionMetrics {
    pub passes: AtomicU64,
    pub segments_rewritten: AtomicU64,
    /// Segments merged into a neighbour after a pass (`rill_storage`'s `log/merge.rs`).
    pub segments_merged: AtomicU64,
    pub records_removed: AtomicU64,
    /// Bytes of the rewritten segments before less after.
    pub bytes_reclaimed: AtomicU64,
    pub failures: AtomicU64,
}

impl CompactionMetrics {
    pub fn record(&self, outcome: &rill_storage::CompactionOutcome) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.segments_rewritten.fetch_add(outcome.segments_rewritten as u64, Ordering::Relaxed);
        self.segments_merged.fetch_add(outcome.segments_merged as u64, Ordering::Relaxed);
        self.records_removed.fetch_add(outcome.records_removed, Ordering::Relaxed);
        self.bytes_reclaimed.fetch_add(outcome.bytes_before.saturating_sub(outcome.bytes_after), Ordering::Relaxed);
    }
}
