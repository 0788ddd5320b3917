//! rill's durable partition log: the heart of the broker, and nothing of the network.
//!
//! A [`Log`] is one partition: a directory of [`segment`]s, each a `.log` file of Kafka RecordBatch v2
//! batches (see `rill_protocol`) with a sparse memory-mapped offset index (`.index`) and time index
//! (`.timeindex`), plus a `partition.checkpoint` that records the recovery point, whether the last
//! shutdown was clean, and the leader epochs. `docs/format.md` gives every file byte by byte.
//!
//! Invariants, and what each protects:
//! - Offsets are dense and increasing: the batch after offset `n` starts at `n + 1`, and a segment's
//!   file name is the base offset of its first batch. Recovery uses this to spot damage the CRC
//!   cannot see (the base offset is outside the CRC).
//! - Compaction ([`Log::compact`], `log/compaction.rs`) never breaks that: a compacted batch covers the offsets it
//!   covered with fewer records (an emptied run of batches, one empty batch over the same offsets), only sealed
//!   segments below the last stable offset are rewritten, each rewrite is checked as recovery checks a segment
//!   before it replaces the old file by a rename, and a reader holding the old segment keeps reading the old file.
//! - A reader sees a batch only once all of its bytes are written: a segment's readable size and the
//!   log's end offset are published after the write, so reads never return a torn batch.
//! - Every batch appended passed [`rill_protocol::validate_produced`] (Kafka's produce rules: counts, offset
//!   deltas, timestamps, decompressed contents), and every batch on disk is validated again with the more
//!   lenient integrity check [`rill_protocol::validate`] when recovery scans it (so a batch an older broker
//!   stored is never truncated for a newer rule); recovery truncates at the first byte that is not a whole
//!   valid batch and never panics, whatever the files hold.
//! - No record below the log start offset is ever served: reads below it are `OffsetOutOfRange`. It only moves
//!   forward: by retention (to a segment's base) or by [`Log::delete_records_before`] (to any offset up to the high
//!   watermark, stored in `log-start-offset.checkpoint` before it is published, so a restart keeps it; a damaged
//!   one keeps the log closed rather than serve deleted records).
//! - A transactional batch opens its producer's transaction and only a control batch the broker appends
//!   ([`Log::append_control_unsynced`]) ends it; [`Log::last_stable_offset`] never passes an open transaction's
//!   first batch (its first unstable offset is published before the high watermark moves past it), and the aborted
//!   transactions are kept in the producer snapshots and rebuilt by replay, so `read_committed` readers get the
//!   same answers after a crash or a truncation (`producer_state.rs`, `log/transactions.rs`).
//! - Index files are a cache: they are rebuilt from the `.log` whenever missing or implausible. An active
//!   segment's indexes live in memory until it is sealed; a sealed one's are mapped and their files closed.
//! - Only the active segment holds a descriptor of its own; sealed segments are read through a bounded
//!   [`SegmentFileCache`], so a log's open files do not grow with its segments.
//! - Everything below the recovery point was fsynced; only what lies past it is rescanned after an
//!   unclean shutdown.
//! - Nothing is reported durable that a failed fsync may have lost: once an fsync of a segment fails, every later
//!   one of that segment fails without asking the disk, and the log refuses appends until it is reopened
//!   ([`StorageError::FsyncFailed`]).
//! - A data dir's `__high-watermarks.checkpoint` ([`HighWatermarkCheckpoint`]) holds the high watermark of each
//!   replicated partition as the broker last stored it; replaced whole and atomically, and a damaged one is
//!   ignored (a low high watermark is always safe), never half-read. A log caps it at its end on use.
//! - This crate does no network I/O and spawns no threads but read-ahead's (at most 16 a node, each ending after 5 s
//!   without a read to do: `read_ahead.rs`): callers drive periodic work ([`Log::flush_if_due`],
//!   [`Log::enforce_retention`]) and own notifications of new data.
//! - Chunks read ahead of a sequential reader of a segment count against the [`TailCache`]'s limit (at most an eighth
//!   of it), hold only bytes below the segment's size when issued, and go with their segment on truncation or
//!   retention; a failed one is never an answer.
//! - A [`TailCache`], when a node keeps one, holds the newest appends of all its logs byte-identical to their
//!   segments, bounded in bytes (oldest evicted first); reads it covers never touch the files. Truncation,
//!   retention, deletion and close remove what they drop from it before the change is published.
//! - A log counts its fsyncs' durations in a [`latency::LatencyHistogram`] (relaxed atomics, no lock) and knows
//!   no export format: the broker reads it when its metrics are scraped.

mod checkpoint;
mod cleaner_offset;
mod config;
mod direct;
mod framed_file;
pub mod high_watermarks;
mod index;
pub mod latency;
mod log;
mod log_dir;
mod log_start;
mod producer_snapshot;
pub mod producer_state;
mod read_ahead;
mod recovery;
pub mod segment;
mod segment_files;
pub mod tail_cache;
mod topic;

use std::path::PathBuf;

pub use config::{Clock, Durability, LogConfig, SystemClock, WriteMode, SEGMENT_BYTES_MAX};
pub use high_watermarks::HighWatermarkCheckpoint;
pub use log::{AppendInfo, CompactionOutcome, CompactionSettings, Log, ProducerActivity, ProducerSummary, ReadResult};
pub use producer_state::{AbortedTransaction, ProducerError};
pub use segment::LargestTimestamp;
pub use segment_files::SegmentFileCache;
pub use tail_cache::{LogTailStats, TailCache, TailCacheStats};
pub use topic::{
    deleted_dir, is_deleted_dir_name, parse_partition_dir_name, partition_dir, TopicName, DELETED_DIR_SUFFIX,
};

/// What went wrong in the storage layer, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] rill_protocol::BatchError),
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: usize },
    #[error(
        "offset {offset} is out of range: the log holds offsets {log_start_offset} to {log_end_offset} (exclusive)"
    )]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
    #[error(
        "cannot delete records before offset {offset}: it is past the high watermark {high_watermark}; the offset \
         must be from 0 to {high_watermark}, or -1 for the high watermark"
    )]
    DeleteBeyondHighWatermark { offset: i64, high_watermark: i64 },
    #[error("invalid setting {setting}: {reason}")]
    InvalidConfig { setting: &'static str, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An fsync of a segment failed. Linux reports a writeback error to one fsync and may drop the pages it could
    /// not write, so a later fsync can succeed over data that never reached the disk: from the first failure on,
    /// the log refuses appends and fsyncs (nothing more is acknowledged as durable) until it is reopened, when
    /// recovery keeps what the disk holds.
    #[error(
        "an fsync of {path} failed ({reason}): what was written since the last successful fsync may not be on disk, \
         so the log takes no more appends until it is reopened (a broker restart), when recovery keeps what the disk \
         holds"
    )]
    FsyncFailed { path: PathBuf, reason: String },
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
    #[error("{0}")]
    Producer(#[from] ProducerError),
    #[error("the log at {0} is closed")]
    Closed(PathBuf),
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }

    /// True for a full disk: the append may succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
