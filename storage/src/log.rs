//! [`Log`]: one partition's log, a sequence of segments with one writer and many readers.
//!
//! Appends take the writer lock only for the write itself: validation (the CRC) runs before it and
//! the fsync of `Durability::Always` after it, shared by every append waiting at that moment (group
//! commit). Readers take no writer lock: they read the published end offsets and the segment list.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use bytes::Bytes;
use rill_protocol::compression::MAX_DECOMPRESSED_BATCH_BYTES;
use rill_protocol::BatchHeader;

use crate::checkpoint::{sync_dir, Checkpoint, EpochStart};
use crate::config::{Clock, Durability, LogConfig, SegmentSettings, SystemClock, WriteMode};
use crate::latency::LatencyHistogram;
use crate::log_dir::LogDir;
use crate::producer_state::ProducerState;
use crate::recovery::{open_segments, segment_bases, EpochRule, IndexCursor, Opened};
use crate::segment::{AppendRoute, Segment};
use crate::segment_files::SegmentFileCache;
use crate::tail_cache::{LogTail, LogTailStats, TailCache};
use crate::{Result, StorageError};

mod compaction;
mod delete_records;
mod largest_timestamp;
mod merge;
mod producers;
mod replica;
mod start_over;
mod transactions;

pub(crate) use compaction::CLEANED_SUFFIX;
pub use compaction::{CompactionOutcome, CompactionSettings};
pub(crate) use merge::complete_swaps;
use producers::Planned;
pub use producers::{ProducerActivity, ProducerSummary};

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The log's clock when the batch was appended.
    pub append_time_ms: i64,
    /// The batch repeated one its producer had appended already (see `producer_state.rs`): nothing was written,
    /// and the offsets are the original's.
    pub is_duplicate: bool,
}

/// Whole batches read from the log, and the bounds of the log at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Consecutive v2 batches; empty when the read starts at or past the high watermark.
    pub batches: Bytes,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

pub struct Log {
    /// Its fsyncs latch a failure, as the active segment's do (`log_dir.rs`).
    dir: LogDir,
    /// Behind a lock because a topic's limits change while it is open ([`Log::reconfigure`]); read as a copy.
    config: RwLock<LogConfig>,
    segment_settings: SegmentSettings,
    clock: Arc<dyn Clock>,
    /// By base offset. Never empty: the last segment is the active one.
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    /// What consumers may read up to. On one node it follows the log end, or under
    /// `Durability::Always` the fsynced end, so consumers never see what a crash could take back.
    /// In a replicated partition the broker holds it (see `replica.rs`): appends leave it alone.
    high_watermark: AtomicI64,
    /// The first offset of the oldest open transaction (`transactions::NONE_OPEN` when none is), published for
    /// [`Log::last_stable_offset`] before the high watermark moves past it.
    first_unstable_offset: AtomicI64,
    /// The offset of the newest abort marker (`transactions::NONE_ABORTED` when none): a read below it looks for
    /// aborted transactions, a read past it need not.
    last_aborted_offset: AtomicI64,
    /// Held while a segment's files are removed or replaced (retention, truncation, deletion, close, compaction's
    /// swap), so that no two of them act on one segment's files at once. Taken before `writer`.
    rewrite: Mutex<()>,
    /// Held for a whole compaction pass: passes run one at a time.
    compaction: Mutex<()>,
    /// Where the last compaction pass ended (`compaction.rs`), kept as a hint in `cleaner_offset.rs`'s file.
    cleaned_through: AtomicI64,
    /// Set by [`Log::hold_high_watermark`]: the broker, not the append, moves the high watermark.
    is_high_watermark_held: AtomicBool,
    flush: Mutex<FlushState>,
    flushed: Condvar,
    is_closed: AtomicBool,
    /// Every fsync of the active segment's data (group commits, interval flushes), for the broker's metrics.
    fsync_latency: LatencyHistogram,
    /// When a caller last waited in [`Log::sync_through`] (the log's clock, ms): while that is recent, small appends
    /// go into zeros written ahead, as under `Durability::Always` (see [`SYNC_DEMAND_WINDOW_MS`]).
    sync_demanded_ms: AtomicI64,
    /// The node's cache of recent appends, when it keeps one: every append goes in while
    /// `is_caching_appends`, and every change that drops bytes from the log takes them out of it before the change
    /// is published (`tail_cache.rs`).
    tail: Option<LogTail>,
    /// Whether appends go into `tail`: true from the open (one node, a leader), false while the log is a
    /// follower's replica (`replica.rs`: nobody reads a follower's log, so its cache would serve nobody).
    is_caching_appends: AtomicBool,
}

/// State only the appending thread touches.
struct Writer {
    active: Arc<Segment>,
    cursor: IndexCursor,
    /// What the checkpoint file should say; `is_clean_shutdown` is always false here while the log is open.
    checkpoint: Checkpoint,
    /// The checkpoint file still says "clean shutdown" from the last close: true after a clean open until the
    /// first change (an append, roll, truncation or new epoch) stores `checkpoint`. Until then the files are as
    /// that close left them, so the flag is true; a partition opened and closed without a change costs no fsync.
    is_clean_on_disk: bool,
    /// Idempotent producers' state as of the log end (`producer_state.rs`).
    producers: ProducerState,
    /// The offset of the producer snapshot written last, if it still describes `producers` there.
    snapshot_offset: Option<i64>,
}

impl Writer {
    /// Stores the checkpoint, marking the log unclean on disk: done before the first change after a clean open.
    fn mark_changing(&mut self, dir: &LogDir) -> Result<()> {
        if self.is_clean_on_disk {
            self.checkpoint.store(dir)?;
            self.is_clean_on_disk = false;
        }
        Ok(())
    }
}

struct FlushState {
    /// Every offset below this is fsynced.
    durable_end: i64,
    is_flushing: bool,
    /// When the last completed fsync began: it covered everything appended before then, so the interval of
    /// `Durability::Interval` counts from here, not from when the (possibly long) fsync returned.
    last_flush_ms: i64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish_non_exhaustive()
    }
}

/// Sealed segments' descriptors a log opened without a shared cache keeps open.
const PRIVATE_SEGMENT_FILES: usize = 16;

/// How long after a caller last waited for an fsync ([`Log::sync_through`]: a produce with durable acks, an offset
/// commit) small appends still go into zeros written ahead (`direct.rs`, "Zeros ahead"): a second, so that a
/// producer asking for durable acks keeps it on, while a log only flushed on a timer, whose fsync waits for
/// nobody, does not write zeros it has no use for.
const SYNC_DEMAND_WINDOW_MS: i64 = 1000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // See segment.rs: state behind these locks stays consistent between statements.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Log {
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self> {
        Self::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    /// Opens the log in `dir`, creating it if needed, and recovers it: after an unclean shutdown every
    /// segment past the recovery point is rescanned and truncated at the first damage.
    pub fn open_with_clock(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::open_shared(dir, config, clock, Arc::new(SegmentFileCache::new(PRIVATE_SEGMENT_FILES)))
    }

    /// [`Log::open_with_clock`], with sealed segments' descriptors kept in `files`, a cache that many logs share:
    /// how a node with many partitions bounds its open files.
    pub fn open_shared(
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        files: Arc<SegmentFileCache>,
    ) -> Result<Self> {
        Self::open_cached(dir, config, clock, files, None)
    }

    /// [`Log::open_shared`], with appends kept in `tail_cache` (shared by many logs) and reads served from it.
    pub fn open_cached(
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        files: Arc<SegmentFileCache>,
        tail_cache: Option<Arc<TailCache>>,
    ) -> Result<Self> {
        config.validate()?;
        let segment_settings = SegmentSettings::new(&config, files, tail_cache.clone());
        let is_new_dir = !dir.exists();
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        if is_new_dir {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let now_ms = clock.now_ms();
        let stored = Checkpoint::load(dir)?;
        let bases = segment_bases(dir)?;
        let opened = open_segments(dir, &segment_settings, stored.as_ref(), &bases, now_ms)?;
        let Opened { mut segments, epochs } = opened;
        if segments.is_empty() {
            let base = stored.as_ref().map_or(0, |c| c.recovery_point.max(0));
            // The new files' directory entries are made durable by the checkpoint's store below, which fsyncs
            // the directory.
            segments.push(Segment::create(dir, base, &segment_settings, now_ms)?);
        }
        let epoch_at = |offset: i64| epoch_at(&epochs, offset);
        let active = segments.last().expect("one segment was just ensured");
        let cursor =
            active.resume_append(config.index_max_bytes, config.index_interval_bytes, &EpochRule::Known(&epoch_at))?;
        let log_end = segments.last().map_or(0, |s| s.next_offset());
        let log_dir = LogDir::new(dir);
        let log_start = restored_log_start(&log_dir, segments[0].base_offset(), log_end)?;
        let checkpoint = Checkpoint { is_clean_shutdown: false, recovery_point: log_end, epochs };
        // From the first change on, a crash is unclean until close() says otherwise. A clean checkpoint that
        // describes the files exactly as opened stays until then (the first change stores this one).
        let is_clean_on_disk = stored.as_ref().is_some_and(|stored| {
            stored.is_clean_shutdown && stored.recovery_point == log_end && stored.epochs == checkpoint.epochs
        });
        if !is_clean_on_disk {
            checkpoint.store(&log_dir)?;
        }
        let segments: BTreeMap<i64, Arc<Segment>> =
            segments.into_iter().map(|s| (s.base_offset(), Arc::new(s))).collect();
        let active = segments.values().next_back().expect("never empty").clone();
        tracing::debug!(dir = %dir.display(), log_start, log_end, segments = segments.len(), "opened log");
        let log = Self {
            dir: log_dir,
            config: RwLock::new(config),
            segment_settings,
            clock,
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active,
                cursor,
                checkpoint,
                is_clean_on_disk,
                producers: ProducerState::default(),
                snapshot_offset: None,
            }),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(log_end),
            high_watermark: AtomicI64::new(log_end),
            first_unstable_offset: AtomicI64::new(transactions::NONE_OPEN),
            last_aborted_offset: AtomicI64::new(transactions::NONE_ABORTED),
            rewrite: Mutex::new(()),
            compaction: Mutex::new(()),
            cleaned_through: AtomicI64::new(
                crate::cleaner_offset::load(dir).filter(|offset| *offset <= log_end).unwrap_or(i64::MIN),
            ),
            is_high_watermark_held: AtomicBool::new(false),
            flush: Mutex::new(FlushState { durable_end: log_end, is_flushing: false, last_flush_ms: now_ms }),
            flushed: Condvar::new(),
            is_closed: AtomicBool::new(false),
            fsync_latency: LatencyHistogram::default(),
            sync_demanded_ms: AtomicI64::new(i64::MIN),
            tail: tail_cache.map(|cache| cache.for_log()),
            is_caching_appends: AtomicBool::new(true),
        };
        log.rebuild_producers(&mut lock(&log.writer), log_end)?;
        Ok(log)
    }

    /// How long this log's fsyncs took, counted since it was opened.
    pub fn fsync_latency(&self) -> &LatencyHistogram {
        &self.fsync_latency
    }

    /// This log's reads through the node's tail cache, if it has one.
    pub fn tail_cache_stats(&self) -> Option<LogTailStats> {
        let read_ahead_hits = self.segment_settings.read_ahead_hits.load(Ordering::Relaxed);
        self.tail.as_ref().map(|tail| LogTailStats { read_ahead_hits, ..tail.stats() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's settings as they are now (a copy: [`Log::reconfigure`] may change them at any time).
    pub fn config(&self) -> LogConfig {
        *self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a topic's changed limits to the open log: `segment_bytes` (the next roll uses it),
    /// `max_batch_bytes` (the next append is checked against it), `retention_ms` and `retention_bytes` (the next
    /// [`Log::enforce_retention`]) and `durability` (the next append or [`Log::flush_if_due`]). The other
    /// settings are fixed for the log's life and are kept as they are, whatever `changed` holds. Refused, with
    /// nothing changed, if the result is not a valid config.
    pub fn reconfigure(&self, changed: &LogConfig) -> Result<()> {
        let mut config = self.config.write().unwrap_or_else(|p| p.into_inner());
        let next = LogConfig {
            segment_bytes: changed.segment_bytes,
            max_batch_bytes: changed.max_batch_bytes,
            retention_ms: changed.retention_ms,
            retention_bytes: changed.retention_bytes,
            durability: changed.durability,
            compaction: changed.compaction,
            ..*config
        };
        next.validate()?;
        *config = next;
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.read().unwrap_or_else(|p| p.into_inner()).values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Every offset below this has reached the disk.
    pub fn durable_end_offset(&self) -> i64 {
        lock(&self.flush).durable_end
    }

    /// The leader epoch appends are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        lock(&self.writer).checkpoint.epochs.last().map_or(0, |e| e.epoch)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.is_closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed(self.dir.to_path_buf()));
        }
        Ok(())
    }

    /// [`Log::ensure_open`] for a change to the segments' data, under the writer lock: refused once an fsync of the
    /// active segment failed (nothing appended could be made durable, and a truncation would open the segment
    /// anew and forget the failure), or one of the log's directory (a segment it names may be missing on disk,
    /// or one it no longer names still there: `log_dir.rs`).
    fn ensure_writable(&self, writer: &Writer) -> Result<()> {
        self.ensure_open()?;
        self.failed_sync(writer).map_or(Ok(()), Err)
    }

    /// The failed fsync of the active segment or of the directory, if there was one since the open.
    fn failed_sync(&self, writer: &Writer) -> Option<StorageError> {
        writer.active.sync_failure().or_else(|| self.dir.sync_failure())
    }

    /// Validates one v2 batch, assigns it the next offsets, stamps the leader epoch and appends it.
    /// With `Durability::Always` it returns once the batch is fsynced.
    pub fn append(&self, batch: &[u8]) -> Result<AppendInfo> {
        let info = self.append_unsynced(batch)?;
        if self.config().durability == Durability::Always {
            self.sync_through(info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// [`Log::append`] without waiting for the fsync that `Durability::Always` asks for: a caller with
    /// many batches appends them all, then waits once in [`Log::sync_through`] before acknowledging any.
    /// Under `Always` the batch becomes visible to readers (the high watermark moves) only once synced.
    pub fn append_unsynced(&self, batch: &[u8]) -> Result<AppendInfo> {
        let appended = self.append_batches_unsynced(&[batch])?;
        appended.first().copied().ok_or_else(|| StorageError::Io {
            path: self.dir.to_path_buf(),
            source: std::io::Error::other("an append of one batch reported none"),
        })
    }

    /// Appends `batches` in order at consecutive offsets, nothing between them, and returns where each landed.
    /// Every batch is validated before any is written, with the rules for what clients produce
    /// (`rill_protocol::validate_produced`: Kafka's, stricter than the `validate` that recovery re-runs, so data
    /// an older broker stored is never truncated for a newer rule): one bad batch refuses them all. The batches
    /// that share a segment go to the file in one write, so a request of many small batches costs the device one
    /// write, not one each. If a write fails, the batches before it that went to an earlier segment (when the group
    /// crossed a segment roll) stay appended and the error is returned: like any failed append, a retry may
    /// store them twice, never lose them.
    pub fn append_batches_unsynced(&self, batches: &[&[u8]]) -> Result<Vec<AppendInfo>> {
        self.ensure_open()?;
        let mut headers = Vec::with_capacity(batches.len());
        let config = self.config();
        let max_batch_bytes = config.max_batch_bytes;
        for batch in batches {
            if batch.len() > max_batch_bytes {
                return Err(StorageError::BatchTooLarge { size: batch.len(), limit: max_batch_bytes });
            }
            headers.push(rill_protocol::validate_produced(batch, MAX_DECOMPRESSED_BATCH_BYTES)?.header);
        }
        // A second walk of the records (and decompression), for compacted logs only.
        if config.compaction.is_some() {
            for batch in batches {
                rill_protocol::compaction::require_keys(batch)?;
            }
        }
        let mut writer = lock(&self.writer);
        self.ensure_writable(&writer)?;
        let now_ms = self.clock.now_ms();
        let plans = self.plan_appends(&mut writer.producers, headers, now_ms)?;
        if plans.iter().any(|plan| matches!(plan, Planned::Append(_))) {
            writer.mark_changing(&self.dir)?;
        }
        let mut appended = Vec::with_capacity(batches.len());
        // The batches waiting for one write to the active segment.
        let mut group: Vec<(&[u8], BatchHeader)> = Vec::with_capacity(batches.len());
        let mut group_bytes = 0u64;
        let mut next_offset = self.log_end_offset.load(Ordering::Relaxed);
        for (batch, plan) in batches.iter().zip(plans) {
            let mut header = match plan {
                Planned::Append(header) => header,
                Planned::Duplicate(original) => {
                    appended.push(original);
                    continue;
                }
            };
            header.base_offset = next_offset;
            if self.needs_roll(&writer.active, group_bytes, &header) {
                self.write_group(&mut writer, &mut group)?;
                group_bytes = 0;
                self.roll(&mut writer)?;
            }
            next_offset = header.next_offset();
            appended.push(AppendInfo {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                append_time_ms: now_ms,
                is_duplicate: false,
            });
            group_bytes += batch.len() as u64;
            group.push((batch, header));
        }
        self.write_group(&mut writer, &mut group)?;
        Ok(appended)
    }

    /// Writes `group` to the active segment and publishes its end; empties `group`.
    fn write_group(&self, writer: &mut Writer, group: &mut Vec<(&[u8], BatchHeader)>) -> Result<()> {
        let Some((_, last)) = group.last() else { return Ok(()) };
        let next = last.next_offset();
        let epoch = writer.checkpoint.epochs.last().map_or(0, |e| e.epoch);
        let Writer { active, cursor, producers, snapshot_offset, .. } = writer;
        let now_ms = self.clock.now_ms();
        let len: usize = group.iter().map(|(batch, _)| batch.len()).sum();
        // A follower's append stays out of the cache (see `is_caching_appends`) and is staged, like any direct write
        // of a log without a cache, in the thread's warm staging memory.
        let tail = self.tail.as_ref().filter(|_| self.is_caching_appends.load(Ordering::Acquire));
        // A direct write is staged in a buffer of the tail cache's, kept as the cached copy: one copy of the record
        // bytes for both. A smaller append goes through the page cache (`direct_min_batch_bytes`) and is copied into
        // the log's chunk of the cache below: asked for a staging buffer it would not use, the cache would hand out
        // one of at least 64 KiB per append.
        let is_direct = self.segment_settings.write_mode == WriteMode::Direct
            && len >= self.segment_settings.direct_min_batch_bytes;
        let keep = tail.filter(|_| is_direct).map(|tail| tail.buffer(len + 2 * crate::direct::BLOCK_BYTES));
        let route = AppendRoute { keep, is_synced: self.is_synced_soon(now_ms) };
        let kept = active.append(group, epoch, cursor, self.config().index_interval_bytes, now_ms, route)?;
        // Before the end is published: a reader at the tail finds the batches in memory from the start.
        if let Some(tail) = tail {
            let base_offset = group.first().map_or(next, |(_, header)| header.base_offset);
            match kept {
                Some(kept) => tail.insert_kept(base_offset, next, kept.buffer, kept.capacity, kept.start..kept.end),
                None => {
                    tail.insert_copy(base_offset, next, len, |into| crate::segment::write_as_stored(group, epoch, into))
                }
            }
        }
        for (batch, header) in group.iter() {
            self.observe_batch(producers, batch, header, now_ms);
        }
        self.publish_transactions(producers);
        *snapshot_offset = None;
        group.clear();
        self.log_end_offset.store(next, Ordering::Release);
        if self.config().durability != Durability::Always && !self.is_high_watermark_held.load(Ordering::Acquire) {
            self.high_watermark.store(next, Ordering::Release);
        }
        Ok(())
    }

    /// Whether an append of `bytes` is sure to be only a write: no fsync after it, no segment roll and no
    /// checkpoint store before it (the first change after a clean open), and no zeros to write ahead of it (while
    /// callers wait for fsyncs, one small append in about 230 writes 256 KiB of them: `direct.rs`, "Zeros ahead").
    /// Such an append is short enough for a caller to run on an async thread; `false` when unsure (the writer lock
    /// is held elsewhere).
    pub fn is_plain_write(&self, bytes: u64) -> bool {
        if self.syncs_every_append() {
            return false;
        }
        let Ok(writer) = self.writer.try_lock() else { return false };
        let active = &writer.active;
        let is_young = self
            .config()
            .segment_ms
            .is_none_or(|ms| self.clock.now_ms().saturating_sub(active.created_ms()) < ms as i64);
        let fits = active.size() + bytes <= self.config().segment_bytes;
        let writes_zeros = self.is_synced_soon(self.clock.now_ms()) && active.would_write_zeros_for(bytes);
        !writer.is_clean_on_disk && fits && is_young && !active.is_index_full() && !writes_zeros
    }

    /// True when appends must be fsynced before they are acknowledged (`Durability::Always`).
    pub fn syncs_every_append(&self) -> bool {
        self.config().durability == Durability::Always
    }

    /// Whether an append now is likely to be fsynced before it is answered: under `Durability::Always`, or while
    /// callers wait for fsyncs ([`SYNC_DEMAND_WINDOW_MS`]).
    fn is_synced_soon(&self, now_ms: i64) -> bool {
        self.syncs_every_append()
            || now_ms.saturating_sub(self.sync_demanded_ms.load(Ordering::Relaxed)) < SYNC_DEMAND_WINDOW_MS
    }

    /// Whether `next` must start a new segment, with `pending` bytes about to be written to the active one.
    fn needs_roll(&self, active: &Segment, pending: u64, next: &BatchHeader) -> bool {
        let size = active.size() + pending;
        let too_big = size > 0 && size + next.total_bytes() as u64 > self.config().segment_bytes;
        let too_old = active.size() > 0
            && self
                .config()
                .segment_ms
                .is_some_and(|ms| self.clock.now_ms().saturating_sub(active.created_ms()) >= ms as i64);
        // Index entries store offsets relative to the base as u32.
        let offsets_overflow = next.last_offset() - active.base_offset() > i64::from(u32::MAX);
        (too_big || too_old || offsets_overflow || active.is_index_full()) && (active.size() > 0 || pending > 0)
    }

    /// Seals the active segment (fsynced, indexes trimmed) and starts a new one at the log end. The
    /// recovery point moves to the new segment: nothing before it needs a rescan after a crash.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        writer.active.seal(&mut writer.cursor)?;
        let base = self.log_end_offset.load(Ordering::Relaxed);
        let segment = Arc::new(Segment::create(&self.dir, base, &self.segment_settings, self.clock.now_ms())?);
        self.dir.sync()?;
        self.segments.write().unwrap_or_else(|p| p.into_inner()).insert(base, segment.clone());
        writer.active = segment;
        writer.cursor = IndexCursor::default();
        writer.checkpoint.recovery_point = base;
        writer.checkpoint.store(&self.dir)?;
        writer.is_clean_on_disk = false;
        // After the checkpoint: a crash before the snapshot is written rebuilds the state from an older one.
        self.store_producer_snapshot(writer, base)?;
        let mut flush = lock(&self.flush);
        flush.durable_end = flush.durable_end.max(base);
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        Ok(())
    }

    /// Blocks until every offset below `end_offset` is on disk. Concurrent callers share fsyncs:
    /// whoever finds none in flight runs one covering everything appended so far, the rest wait.
    pub fn sync_through(&self, end_offset: i64) -> Result<()> {
        self.sync_demanded_ms.store(self.clock.now_ms(), Ordering::Relaxed);
        self.sync_to(end_offset)
    }

    /// [`Log::sync_through`] without counting as a caller waiting for it (a flush on a timer, a close).
    fn sync_to(&self, end_offset: i64) -> Result<()> {
        let mut state = lock(&self.flush);
        loop {
            if state.durable_end >= end_offset {
                return Ok(());
            }
            if state.is_flushing {
                state = self.flushed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.is_flushing = true;
            drop(state);
            // Read the end before picking the segment: if a roll slips in between, the segment
            // holding `target` was fsynced by the roll itself.
            let target = self.log_end_offset.load(Ordering::Acquire);
            let started_ms = self.clock.now_ms();
            let active = self.segments.read().unwrap_or_else(|p| p.into_inner()).values().next_back().cloned();
            let started = Instant::now();
            let synced = active.map_or(Ok(()), |segment| segment.sync());
            self.fsync_latency.record(started.elapsed());
            state = lock(&self.flush);
            state.is_flushing = false;
            if synced.is_ok() {
                state.durable_end = state.durable_end.max(target);
                state.last_flush_ms = state.last_flush_ms.max(started_ms);
                if self.config().durability == Durability::Always
                    && !self.is_high_watermark_held.load(Ordering::Acquire)
                {
                    self.high_watermark.fetch_max(target, Ordering::AcqRel);
                }
            }
            self.flushed.notify_all();
            synced?;
        }
    }

    /// fsyncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        self.sync_to(self.log_end_offset())
    }

    /// For `Durability::Interval`: whether there is something to flush and the interval since the last flush
    /// began will have passed by the caller's next check, `next_check_in_ms` from now. The caller checks on a
    /// timer; waiting for its next tick once the interval is nearly up would stretch every interval by up to a
    /// tick (a flush every 1.1 s for 1 s at a 100 ms tick), and a crash could lose that much more. No I/O.
    pub fn is_flush_due(&self, next_check_in_ms: u64) -> bool {
        let Durability::Interval { interval_ms } = self.config().durability else {
            return false;
        };
        if self.sync_failure().is_some() {
            return false;
        }
        let state = lock(&self.flush);
        let since_last_ms = self.clock.now_ms().saturating_sub(state.last_flush_ms);
        state.durable_end < self.log_end_offset()
            && since_last_ms.saturating_add(next_check_in_ms as i64) >= interval_ms as i64
    }

    /// Why the log takes no appends, if an fsync of its active segment or of its directory failed
    /// ([`StorageError::FsyncFailed`]).
    pub fn sync_failure(&self) -> Option<StorageError> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.values().next_back().and_then(|active| active.sync_failure()).or_else(|| self.dir.sync_failure())
    }

    /// From now on the log behaves as if an fsync of its active segment had failed with `reason`: for tests of
    /// what follows one, where no disk can be made to fail.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_fsyncs(&self, reason: &str) {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        if let Some(active) = segments.values().next_back() {
            active.fail_syncs(reason);
        }
    }

    /// The next fsync of the log's directory fails with `reason`, as if the disk had said so (later ones reach the
    /// disk): for tests of what follows one.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_dir_sync(&self, reason: &str) {
        self.dir.fail_next_sync(reason);
    }

    /// Flushes if [`Log::is_flush_due`] says so.
    pub fn flush_if_due(&self, next_check_in_ms: u64) -> Result<()> {
        if self.is_flush_due(next_check_in_ms) {
            self.flush()?;
        }
        Ok(())
    }

    /// The segment that would hold `offset`: the last whose base is at or below it (else the first).
    fn segment_at(&self, offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.range(..=offset).next_back().or_else(|| segments.iter().next()).map(|(_, s)| s.clone())
    }

    fn segment_after(&self, base_offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        segments.range(base_offset + 1..).next().map(|(_, s)| s.clone())
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Whether a consumer's read at `offset` is out of range. Kafka's rule: the bound is the log end, not the high
    /// watermark. An offset in `[high watermark, log end]` is one the log holds but consumers may not see yet
    /// (a restarted leader whose followers have not fetched, a batch waiting for its fsync): it reads as empty,
    /// so a consumer waits there instead of resetting its position as it would on out-of-range.
    fn is_out_of_range(&self, offset: i64, log_start_offset: i64) -> bool {
        offset < log_start_offset || offset > self.log_end_offset()
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` (at least one whole
    /// batch when there is one), never past the high watermark. Reading at or past the high watermark, up to
    /// the log end, returns no batches; outside `[log start, log end]` is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log_start_offset();
        if self.is_out_of_range(offset, log_start_offset) {
            return Err(self.out_of_range(offset));
        }
        let mut result = ReadResult { batches: Bytes::new(), log_start_offset, high_watermark };
        if offset >= high_watermark {
            return Ok(result);
        }
        if let Some(batches) = self.tail.as_ref().and_then(|t| t.read(offset, max_bytes, high_watermark, true)) {
            result.batches = batches;
            return Ok(result);
        }
        let mut segment = self.segment_at(offset);
        while let Some(current) = segment {
            if let Some(batches) = current.read(offset, max_bytes, high_watermark)? {
                result.batches = batches;
                return Ok(result);
            }
            segment = self.segment_after(current.base_offset());
        }
        Ok(result)
    }

    /// [`Log::read`] when it needs no disk: the batches are in the tail cache, or the read starts at the high
    /// watermark. `None` otherwise (a miss is not counted: the caller goes on to [`Log::read`], which counts it),
    /// and for an offset out of range, which [`Log::read`] reports. Cheap enough for an async thread.
    pub fn read_from_memory(&self, offset: i64, max_bytes: usize) -> Option<ReadResult> {
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log_start_offset();
        if self.is_out_of_range(offset, log_start_offset) {
            return None;
        }
        let mut result = ReadResult { batches: Bytes::new(), log_start_offset, high_watermark };
        if offset < high_watermark {
            result.batches = self.tail.as_ref()?.read(offset, max_bytes, high_watermark, false)?;
        }
        Some(result)
    }

    /// The first offset whose record timestamp is `>= timestamp_ms`, or `None` if every record is
    /// older. Segments whose newest record is older are skipped without being read.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<i64>> {
        let high_watermark = self.high_watermark();
        let mut segment = self.segment_at(self.log_start_offset());
        while let Some(current) = segment {
            if let Some(offset) = current.offset_for_timestamp(timestamp_ms, high_watermark)? {
                return Ok(Some(offset.max(self.log_start_offset())));
            }
            segment = self.segment_after(current.base_offset());
        }
        Ok(None)
    }

    /// Deletes whole segments, oldest first and never the active one, while the log is over
    /// `retention_bytes`, the segment's newest record is older than `retention_ms`, or the segment lies wholly
    /// below the log start offset. Returns how many were deleted; the log start offset moves to the first segment
    /// left, unless records were deleted further than that ([`Log::delete_records_before`]).
    pub fn enforce_retention(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        // No writer lock: only sealed segments are candidates, a roll only adds segments after them,
        // and deleting files a concurrent truncation already removed is harmless.
        let LogConfig { retention_bytes, retention_ms, .. } = self.config();
        let log_start = self.log_start_offset();
        let doomed: Vec<Arc<Segment>> = {
            let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
            let mut total: u64 = segments.values().map(|s| s.size()).sum();
            let sealed = segments.values().zip(segments.keys().skip(1));
            let mut doomed = Vec::new();
            for (segment, &next_base) in sealed {
                let over_size = retention_bytes.is_some_and(|limit| total > limit);
                let expired = retention_ms.is_some_and(|ms| segment.max_timestamp() < now.saturating_sub(ms as i64));
                // Wholly below a start records were deleted up to (left by a crash before the deletion's own pass).
                let is_deleted = next_base <= log_start;
                if !(over_size || expired || is_deleted) {
                    break;
                }
                total -= segment.size();
                doomed.push(segment.clone());
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let _rewrite = lock(&self.rewrite);
        {
            let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
            for segment in &doomed {
                segments.remove(&segment.base_offset());
            }
            let first_base = *segments.keys().next().expect("the active segment is never deleted");
            // Never backwards: a deletion may have moved the start inside the first segment left.
            let start = self.log_start_offset.fetch_max(first_base, Ordering::AcqRel).max(first_base);
            if let Some(tail) = &self.tail {
                tail.remove_below(start);
            }
        }
        for segment in &doomed {
            segment.delete_files()?;
        }
        tracing::info!(
            dir = %self.dir.display(),
            segments = doomed.len(),
            log_start_offset = self.log_start_offset(),
            "deleted segments past retention"
        );
        Ok(doomed.len())
    }

    /// Drops every batch whose last offset is `>= offset`, as a follower does to match a new leader, and every
    /// leader epoch starting at or past the new end. A batch that holds `offset` goes whole, so the log may end
    /// below `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let _rewrite = lock(&self.rewrite);
        let mut writer = lock(&self.writer);
        self.ensure_writable(&writer)?;
        let log_end = self.log_end_offset();
        if offset >= log_end {
            // No batch goes, but an epoch may start at the log end: this node began it as leader and lost the
            // leadership before appending in it. Kept, it would make the new leader's batches of an older epoch
            // look stale from here on, and this follower refuse them for good (Kafka's `truncateTo` clears its
            // epoch cache from the log end for the same reason).
            if writer.checkpoint.epochs.iter().any(|e| !e.survives_truncation_to(log_end)) {
                writer.checkpoint.epochs.retain(|e| e.survives_truncation_to(log_end));
                writer.checkpoint.store(&self.dir)?;
                writer.is_clean_on_disk = false;
                tracing::info!(dir = %self.dir.display(), log_end_offset = log_end, "dropped leader epochs begun at the log end with nothing appended in them");
            }
            return Ok(());
        }
        writer.mark_changing(&self.dir)?;
        // First: from here on no reader gets the dropped batches from memory (nor those a failure below would
        // leave in doubt).
        if let Some(tail) = &self.tail {
            tail.remove_from(offset);
        }
        let now = self.clock.now_ms();
        let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
        // Segments wholly at or past `offset` go, but the first one stays to keep the log start.
        let later: Vec<i64> =
            segments.range(offset..).map(|(b, _)| *b).filter(|b| *b > self.log_start_offset()).collect();
        for base in later {
            if let Some(segment) = segments.remove(&base) {
                segment.delete_files()?;
            }
        }
        let (&base, last) = segments.iter().next_back().expect("the first segment stays");
        let truncated = last.truncated(offset, &self.segment_settings, now)?;
        let epochs = writer.checkpoint.epochs.clone();
        let epoch_at = |offset: i64| epoch_at(&epochs, offset);
        let cursor = truncated.resume_append(
            self.config().index_max_bytes,
            self.config().index_interval_bytes,
            &EpochRule::Known(&epoch_at),
        )?;
        let new_end = truncated.next_offset();
        if let Some(tail) = &self.tail {
            tail.remove_from(new_end);
        }
        let truncated = Arc::new(truncated);
        segments.insert(base, truncated.clone());
        drop(segments);
        self.dir.sync()?;
        writer.active = truncated;
        writer.cursor = cursor;
        writer.checkpoint.epochs.retain(|e| e.survives_truncation_to(new_end));
        writer.checkpoint.recovery_point = writer.checkpoint.recovery_point.min(new_end);
        writer.checkpoint.store(&self.dir)?;
        writer.is_clean_on_disk = false;
        self.log_end_offset.store(new_end, Ordering::Release);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        self.forget_cleaning_past(new_end);
        self.rebuild_producers(&mut writer, new_end)?;
        let mut flush = lock(&self.flush);
        flush.durable_end = flush.durable_end.min(new_end);
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(())
    }

    /// Starts a new leader epoch at the current log end: later appends carry it, and recovery checks
    /// them against it. Epochs only grow.
    pub fn begin_leader_epoch(&self, epoch: i32) -> Result<()> {
        let mut writer = lock(&self.writer);
        let current = writer.checkpoint.epochs.last().map_or(-1, |e| e.epoch);
        if epoch <= current {
            return Err(StorageError::InvalidConfig {
                setting: "leader_epoch",
                reason: format!("epoch {epoch} is not above the current epoch {current}"),
            });
        }
        let start_offset = self.log_end_offset();
        writer.checkpoint.epochs.retain(|e| e.start_offset < start_offset);
        writer.checkpoint.epochs.push(EpochStart { epoch, start_offset });
        writer.checkpoint.store(&self.dir)?;
        writer.is_clean_on_disk = false;
        Ok(())
    }

    /// Clean shutdown: fsync, seal the active segment's indexes, and record a clean checkpoint so the
    /// next open trusts the files without a scan. Later appends fail with `Closed`.
    pub fn close(&self) -> Result<()> {
        let _rewrite = lock(&self.rewrite);
        let mut writer = lock(&self.writer);
        if self.is_closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(tail) = &self.tail {
            tail.clear();
        }
        // After a failed fsync, no file may say the shutdown was clean: the next open must recover from what the
        // disk holds.
        if let Some(failed) = self.failed_sync(&writer) {
            return Err(failed);
        }
        let Writer { active, cursor, .. } = &mut *writer;
        active.seal(cursor)?;
        // Before the clean checkpoint: a clean open trusts the snapshot at the log end.
        self.store_producer_snapshot(&mut writer, self.log_end_offset())?;
        let Writer { checkpoint, is_clean_on_disk, .. } = &mut *writer;
        // Unchanged since a clean open: the checkpoint on disk says exactly this already.
        if !*is_clean_on_disk {
            let clean =
                Checkpoint { is_clean_shutdown: true, recovery_point: self.log_end_offset(), ..checkpoint.clone() };
            clean.store(&self.dir)?;
            *is_clean_on_disk = true;
        }
        lock(&self.flush).durable_end = self.log_end_offset();
        tracing::debug!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "closed log");
        Ok(())
    }

    /// Removes the partition's directory and everything in it; later calls fail with `Closed`.
    /// Readers in the middle of a read finish it: open files outlive their names.
    ///
    /// The directory is first renamed to its [`crate::deleted_dir`] name (and the parent fsynced), then removed:
    /// a crash half-way leaves either the whole partition under its own name or a `.deleted` directory that no
    /// open mistakes for a partition and that the next start removes, never a partition missing some of its
    /// files.
    pub fn delete(&self) -> Result<()> {
        let _rewrite = lock(&self.rewrite);
        let _writer = lock(&self.writer);
        self.is_closed.store(true, Ordering::Release);
        if let Some(tail) = &self.tail {
            tail.clear();
        }
        self.segment_settings.files.forget_dir(&self.dir);
        let doomed = crate::deleted_dir(&self.dir);
        // A leftover of an earlier delete cut short: a rename cannot replace a directory that is not empty.
        if doomed.exists() {
            fs::remove_dir_all(&doomed).map_err(StorageError::io(&doomed))?;
        }
        fs::rename(self.dir.path(), &doomed).map_err(StorageError::io(self.dir.path()))?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent)?;
        }
        fs::remove_dir_all(&doomed).map_err(StorageError::io(&doomed))?;
        Ok(())
    }
}

/// Where an opened log starts: the first segment's base, or further where records were deleted up to
/// (`log_start.rs`). A stored start past the recovered log end (the deletion reached records a crash then took
/// back) is clamped to the end, and stored clamped: otherwise the records appended next, up to the old value,
/// would vanish at the following open.
fn restored_log_start(dir: &LogDir, first_base: i64, log_end: i64) -> Result<i64> {
    let Some(stored) = crate::log_start::load(dir)? else { return Ok(first_base) };
    if stored > log_end {
        tracing::warn!(
            dir = %dir.display(),
            stored_log_start_offset = stored,
            log_end_offset = log_end,
            "the log start offset records were deleted up to is past the recovered log end; starting at the end"
        );
        crate::log_start::store(dir, log_end)?;
        return Ok(log_end.max(first_base));
    }
    Ok(stored.max(first_base))
}

pub(crate) fn epoch_at(epochs: &[EpochStart], offset: i64) -> Option<i32> {
    epochs.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch)
}

#[cfg(test)]
mod tests {
    use rill_protocol::{Record, RecordBatchBuilder};

    use super::*;

    fn batch(value: &str) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        builder.push(&Record { key: None, value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: 0 });
        builder.build()
    }

    fn active(log: &Log) -> Arc<Segment> {
        log.segments.read().unwrap().values().next_back().cloned().unwrap()
    }

    fn values(log: &Log) -> Vec<String> {
        let read = log.read(0, 1 << 20).unwrap();
        rill_protocol::BatchIter::new(read.batches)
            .flat_map(|batch| {
                let batch = batch.unwrap();
                let values: Vec<String> = batch
                    .records()
                    .unwrap()
                    .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
                    .collect();
                values
            })
            .collect()
    }

    /// A second fsync after a failed one may succeed over pages the kernel dropped: the failure must stick, and
    /// nothing appended after it may be taken (each case: the disk's real descriptor is put back after the failure,
    /// so an fsync asked of it would succeed).
    #[test]
    fn a_failed_fsync_fails_every_later_one_and_the_log_takes_no_appends_until_reopened() {
        for (durability, write_mode) in [
            (Durability::Never, WriteMode::Direct),
            (Durability::Never, WriteMode::Buffered),
            (Durability::Always, WriteMode::Direct),
            (Durability::Always, WriteMode::Buffered),
            (Durability::Interval { interval_ms: 1 }, WriteMode::Direct),
        ] {
            let case = format!("{durability:?} {write_mode:?}");
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { durability, write_mode, ..LogConfig::default() };
            let log = Log::open(dir.path(), config).unwrap();
            log.append(&batch("a")).unwrap();
            log.sync_through(1).unwrap();
            let b = log.append_unsynced(&batch("b")).unwrap();
            assert_eq!(b.last_offset, 1, "{case}");

            let segment = active(&log);
            let disk = segment.break_fsync();
            let failed = log.sync_through(2).unwrap_err();
            segment.restore_file(disk);
            assert!(matches!(failed, StorageError::FsyncFailed { .. }), "{case}: {failed}");
            assert!(failed.to_string().contains("no more appends until it is reopened"), "{case}: {failed}");

            let again = log.sync_through(2).unwrap_err();
            assert!(matches!(again, StorageError::FsyncFailed { .. }), "{case}: the retry must fail too: {again}");
            assert!(log.flush().is_err(), "{case}");
            assert_eq!(log.durable_end_offset(), 1, "{case}: b is not known to be on disk");
            let refused = log.append(&batch("c")).unwrap_err();
            assert!(matches!(refused, StorageError::FsyncFailed { .. }), "{case}: {refused}");
            assert!(log.append_replica(Bytes::from(batch("c"))).is_err(), "{case}");
            assert!(
                log.truncate_to(1).is_err(),
                "{case}: a truncation would reopen the segment and forget the failure"
            );
            assert_eq!(log.log_end_offset(), 2, "{case}");
            assert!(log.sync_failure().is_some(), "{case}");
            if matches!(durability, Durability::Interval { .. }) {
                assert!(!log.is_flush_due(1_000), "{case}: nothing an interval flush could do");
            }
            if durability == Durability::Always {
                assert_eq!(log.high_watermark(), 1, "{case}: readers never see what no fsync covered");
            }
            assert!(log.close().is_err(), "{case}: the close's fsync fails too");
            drop(log);

            // What the disk holds comes back, and the reopened log takes appends again.
            let log = Log::open(dir.path(), config).unwrap();
            assert!(log.sync_failure().is_none(), "{case}");
            log.append(&batch("c")).unwrap();
            log.flush().unwrap();
            assert_eq!(values(&log), ["a", "b", "c"], "{case}");
        }
    }

    /// A directory's fsync that failed may succeed when retried over entries the kernel dropped (a new segment's,
    /// a truncation's removals): the failure must stick, and the log take no change until reopened. Each case
    /// fails one fsync of the directory, as the disk would, and lets the later ones reach the disk.
    #[test]
    fn a_failed_directory_fsync_sticks_and_the_log_takes_no_changes_until_reopened() {
        type Change = fn(&Log) -> Result<()>;
        let cases: [(&str, Change); 3] = [
            ("a roll", |log| {
                // 1024-byte segments: a few 300-byte records fill the active one and the next append rolls.
                for _ in 0..8 {
                    log.append(&batch(&"r".repeat(300)))?;
                }
                Ok(())
            }),
            ("a truncation", |log| log.truncate_to(1).map(drop)),
            ("a deletion of records", |log| log.delete_records_before(1).map(drop)),
        ];
        for (case, change) in cases {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 1024, max_batch_bytes: 1024, ..LogConfig::default() };
            let log = Log::open(dir.path(), config).unwrap();
            log.append(&batch("a")).unwrap();
            log.append(&batch("b")).unwrap();
            log.flush().unwrap();

            log.fail_next_dir_sync("injected: EIO");
            let failed = change(&log).unwrap_err();
            assert!(
                matches!(&failed, StorageError::FsyncFailed { path, .. } if path == dir.path()),
                "{case}: {failed}"
            );
            assert!(failed.to_string().contains("injected: EIO"), "{case}: {failed}");

            // The directory would fsync now: the log must not believe it.
            let end = log.log_end_offset();
            let refused = log.append(&batch("c")).unwrap_err();
            assert!(matches!(refused, StorageError::FsyncFailed { .. }), "{case}: {refused}");
            assert!(log.append_replica(Bytes::from(batch("c"))).is_err(), "{case}");
            assert!(log.truncate_to(1).is_err(), "{case}");
            assert!(log.delete_records_before(1).is_err(), "{case}");
            assert!(log.truncate_fully_and_start_at(100).is_err(), "{case}");
            assert_eq!(log.log_end_offset(), end, "{case}: nothing appended or cut");
            assert!(log.sync_failure().is_some(), "{case}");
            assert!(log.close().is_err(), "{case}: no clean checkpoint after a failed fsync");
            drop(log);

            // Reopened, the log holds what the disk does and takes changes again.
            let log = Log::open(dir.path(), config).unwrap();
            assert!(log.sync_failure().is_none(), "{case}");
            // The deletion's new start was renamed into place, and the truncation cut the segment, before the
            // fsync failed: the disk may hold either state.
            let start = log.log_start_offset();
            assert!(start <= 1, "{case}: start {start}");
            let read = log.read(start, 1 << 20).unwrap();
            let first = rill_protocol::BatchIter::new(read.batches).next().unwrap().unwrap();
            assert_eq!(first.header.base_offset, start, "{case}");
            assert!(log.log_end_offset() > start, "{case}");
            log.append(&batch("c")).unwrap();
            log.truncate_to(start + 1).unwrap();
            assert_eq!(log.log_end_offset(), start + 1, "{case}");
        }
    }
}
