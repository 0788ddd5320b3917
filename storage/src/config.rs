//! Per-log settings and the clock the log reads time from.

use std::fmt::Debug;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::segment_files::SegmentFileCache;
use crate::tail_cache::TailCache;
use crate::{Result, StorageError};

/// When appended bytes reach the disk, not just the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `append` returns once its bytes are fsynced. Concurrent appends share one fsync (group commit).
    Always,
    /// A background flush every `interval_ms` (driven by [`crate::Log::flush_if_due`]); a crash loses at
    /// most what was appended since the last completed flush.
    Interval { interval_ms: u64 },
    /// Page cache only; the OS writes back when it likes. A crash of the machine (not of the broker
    /// process) can lose acknowledged data.
    Never,
}

/// How appended bytes travel to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Through the page cache: each append is copied into it, and written back by the kernel.
    Buffered,
    /// `O_DIRECT` from the log's own staging buffer, bypassing the page cache (see `direct.rs`). Falls back
    /// to `Buffered`, with a warning, on a file system that refuses `O_DIRECT`.
    Direct,
}

/// Largest segment file: index entries store positions as u32, and Kafka caps segments the same way.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// The active segment rolls before an append would take it past this size.
    pub segment_bytes: u64,
    /// The active segment rolls once it is this old (by the clock), if it holds any batch.
    pub segment_ms: Option<u64>,
    /// One offset index entry (and time index entry, when the max timestamp grew) per this many bytes.
    pub index_interval_bytes: u64,
    /// Size an active segment's index files are preallocated to; the segment rolls when one is full.
    pub index_max_bytes: u64,
    /// Largest batch `append` accepts.
    pub max_batch_bytes: usize,
    /// Delete the oldest segments while the log is larger than this.
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest record is older than this.
    pub retention_ms: Option<u64>,
    pub durability: Durability,
    pub write_mode: WriteMode,
    /// Under `WriteMode::Direct`, appends smaller than this still go through the page cache: a small batch is
    /// a latency-bound producer's, and its acknowledgement should not wait for the device (on a busy virtual
    /// disk that wait reached tens of milliseconds), while the copy it costs is small. The next large append
    /// writes the block they share directly (the kernel writes the cached page back first).
    pub direct_min_batch_bytes: usize,
    /// An idempotent producer id with no append for this long is forgotten (Kafka's `producer.id.expiration.ms`):
    /// its next batch is accepted at any sequence, as a new producer's would be.
    pub producer_id_expiration_ms: u64,
    /// Producer ids a partition keeps state for; a new one past it is refused (after expiring idle ones). Bounds
    /// the memory of a partition written by many short-lived producers to about 300 bytes each.
    pub max_producer_ids: usize,
    /// A compacted log (Kafka's `cleanup.policy=compact`): appends take only records with keys, and
    /// [`crate::Log::compact_if_configured`] compacts with these settings. `None`: never compacted.
    pub compaction: Option<crate::CompactionSettings>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            index_max_bytes: 10 << 20,
            max_batch_bytes: 8 << 20,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            durability: Durability::Interval { interval_ms: 100 },
            write_mode: WriteMode::Direct,
            direct_min_batch_bytes: 64 << 10,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            max_producer_ids: 10_000,
            compaction: None,
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |setting, reason: String| Err(StorageError::InvalidConfig { setting, reason });
        if self.segment_bytes < 1024 || self.segment_bytes > SEGMENT_BYTES_MAX {
            return bad("segment_bytes", format!("{} is outside 1024..={SEGMENT_BYTES_MAX}", self.segment_bytes));
        }
        if self.segment_ms == Some(0) {
            return bad("segment_ms", "must be at least 1".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.index_max_bytes < 1024 {
            return bad("index_max_bytes", format!("{} is below the minimum of 1024", self.index_max_bytes));
        }
        if self.max_batch_bytes < rill_protocol::batch::HEADER_BYTES || self.max_batch_bytes as u64 > self.segment_bytes
        {
            return bad(
                "max_batch_bytes",
                format!(
                    "{} must be at least {} and at most segment_bytes ({})",
                    self.max_batch_bytes,
                    rill_protocol::batch::HEADER_BYTES,
                    self.segment_bytes
                ),
            );
        }
        if self.max_producer_ids == 0 {
            return bad("max_producer_ids", "must be at least 1".into());
        }
        if let Durability::Interval { interval_ms: 0 } = self.durability {
            return bad("durability", "a flush interval must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// What each segment of a log is created and opened with: its log's settings, where sealed segments'
/// descriptors are kept, and the node's tail cache (whose read-ahead sequential reads of the device use).
#[derive(Debug, Clone)]
pub(crate) struct SegmentSettings {
    pub index_interval_bytes: u64,
    pub index_max_bytes: u64,
    pub write_mode: WriteMode,
    pub direct_min_batch_bytes: usize,
    pub files: Arc<SegmentFileCache>,
    pub tail_cache: Option<Arc<TailCache>>,
    /// The log's reads its segments answered from chunks read ahead (`read_ahead.rs`).
    pub read_ahead_hits: Arc<AtomicU64>,
}

impl SegmentSettings {
    pub fn new(config: &LogConfig, files: Arc<SegmentFileCache>, tail_cache: Option<Arc<TailCache>>) -> Self {
        Self {
            tail_cache,
            read_ahead_hits: Arc::default(),
            index_interval_bytes: config.index_interval_bytes,
            index_max_bytes: config.index_max_bytes,
            write_mode: config.write_mode,
            direct_min_batch_bytes: config.direct_min_batch_bytes,
            files,
        }
    }
}

/// Where the log reads the time: segment age, retention and append times. Tests inject their own.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}
