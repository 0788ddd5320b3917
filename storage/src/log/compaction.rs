//! Log compaction (Kafka's `cleanup.policy=compact`): of the records with the same key, the log keeps the newest,
//! so a consumer reading from the start still ends with every key's latest value, in a log that grows with the
//! number of keys rather than of updates.
//!
//! A pass ([`Log::compact`]) runs when the log's *cleanable* part holds enough not yet compacted ("dirty") bytes
//! (`min_cleanable_dirty_permille` of it), or when its oldest dirty segment's newest record is `max_compaction_lag_ms`
//! old, however little is dirty:
//! - Cleanable: the sealed segments wholly below the high watermark and the last stable offset (a key's newest
//!   record must be one no truncation can take back, and no open transaction may decide what is newest), and
//!   whose newest record is at least `min_compaction_lag_ms` old. The active segment never is.
//! - Dirty: the cleanable segments past where the last pass ended (`cleaner_offset.rs` keeps it across restarts,
//!   as a hint: without it a pass treats the whole cleanable part as dirty, which costs a rewrite and removes
//!   nothing more than a pass would).
//! - The pass maps each key in the dirty segments to its newest offset (at most `key_map_bytes` of keys: past
//!   that it ends at the last segment it mapped whole, and the next pass goes on from there), then rewrites every
//!   cleanable segment up to there, keeping a record unless the map holds a newer offset for its key.
//!
//! What stays, whatever the map says:
//! - Offsets. A batch keeps its header and covers the same offsets with fewer records (`rill_protocol::
//!   compaction`); a batch that lost every record becomes an empty one, and a run of such batches of one producer
//!   (or of none) in one leader epoch becomes a single empty batch over all their offsets. Offsets stay dense
//!   from batch to batch, so recovery, the indexes, replication and readers see a log like any other.
//! - Records without a key (a topic may have become compacted after they were written).
//! - Control batches (transaction markers), whole. Below the last stable offset every transaction has its marker:
//!   a transactional batch whose producer's transaction is among the log's aborted ones (`producer_state.rs`, what
//!   `read_committed` readers skip by) loses every record, as Kafka's cleaner removes aborted data, and never
//!   counts as a key's newest value; any other transactional batch was committed and is compacted as the rest.
//! - A tombstone (a record with a key and no value) is the newest value of its key until its batch is
//!   `delete_retention_ms` old and an earlier pass covered it; then it goes too, so deleted keys do not stay
//!   forever. A consumer that reads the whole log within that time sees every deletion.
//!
//! Each rewritten segment is written beside the old one (`<base>.cleaned`), fsynced and checked as recovery would
//! check it (same offsets, every batch valid), then swapped in under [`Log`]'s `rewrite` lock: the old segment's
//! readers are pinned to its file ([`Segment::pin_before_replacement`]), its index files are removed (they are a
//! cache; recovery rebuilds them) and the directory fsynced, the new file renamed over the old and the directory
//! fsynced, and the segment reopened from it. A crash leaves the old file or the new one, never a mix; a leftover
//! `.cleaned` file is removed at the next open.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::compaction::{empty_batch, retain_records, Retained};
use rill_protocol::{BatchHeader, RecordView};

use super::{epoch_at, lock, Log};
use crate::checkpoint::EpochStart;
use crate::recovery::{self, EpochRule, ScanStart};
use crate::segment::{segment_path, OpenMode, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::{Result, StorageError};

/// The suffix of a segment's rewritten file before it takes the `.log`'s place.
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";

/// When and how a log is compacted: Kafka's topic configs of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionSettings {
    /// A pass runs once the dirty bytes are at least this share of the cleanable bytes, in thousandths (0 to
    /// 1000; Kafka's `min.cleanable.dirty.ratio` 0.5 is 500).
    pub min_cleanable_dirty_permille: u16,
    /// A segment is cleanable only once its newest record is this old.
    pub min_compaction_lag_ms: u64,
    /// How long a tombstone stays once written (by its batch's newest timestamp).
    pub delete_retention_ms: u64,
    /// A pass runs, however little of the log is dirty, once the oldest dirty cleanable segment's newest record is
    /// this old (`None`: the dirty ratio alone decides). The log's `segment_ms` must be at most this too, or the
    /// active segment, which a pass never takes, could hold records past it.
    pub max_compaction_lag_ms: Option<u64>,
    /// Most bytes of keys one pass maps (each key counted with its map entry's overhead).
    pub key_map_bytes: usize,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    /// Sizes of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The pass covered the log below this offset.
    pub cleaned_through: i64,
    /// Segments that went into a neighbour (`merge.rs`): the log has this many fewer.
    pub segments_merged: usize,
}

/// Bytes a key costs the map beyond its own: the entry, its offset and the allocation's header, roughly.
const KEY_ENTRY_OVERHEAD: usize = 48;

/// What a pass does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchKind {
    /// A transaction marker: kept whole.
    Marker,
    /// Part of an aborted transaction: every record goes.
    Aborted,
    /// Not transactional, or committed: compacted by key.
    Data,
}

/// The aborted transactions of the log below a pass's end, by producer: `(first offset, marker offset)`.
struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    fn of(log: &Log, end: i64) -> Self {
        let mut ranges: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for aborted in log.aborted_transactions(log.log_start_offset(), end) {
            ranges.entry(aborted.producer_id).or_default().push((aborted.first_offset, aborted.last_offset));
        }
        Self(ranges)
    }

    fn kind_of(&self, header: &BatchHeader) -> BatchKind {
        if header.is_control() {
            return BatchKind::Marker;
        }
        let is_aborted = header.is_transactional()
            && self.0.get(&header.producer_id).is_some_and(|ranges| {
                ranges.iter().any(|&(first, marker)| first <= header.base_offset && header.base_offset < marker)
            });
        if is_aborted {
            BatchKind::Aborted
        } else {
            BatchKind::Data
        }
    }
}

/// A run of batches that lost every record, written as one empty batch once it ends.
struct EmptyRun {
    first: BatchHeader,
    last_offset: i64,
    max_timestamp: i64,
}

impl EmptyRun {
    /// Whether `next` (also emptied, right after the run) can join it: same leader epoch, same producer and
    /// timestamp type, not transactional, its sequence where the run's offsets put it, and the whole within the
    /// reach of a batch's offset delta.
    fn takes(&self, next: &BatchHeader) -> bool {
        let first = &self.first;
        let same_kind = next.partition_leader_epoch == first.partition_leader_epoch
            && next.producer_id == first.producer_id
            && next.producer_epoch == first.producer_epoch
            && next.timestamp_type() == first.timestamp_type()
            && next.is_transactional() == first.is_transactional()
            && next.base_offset == self.last_offset + 1;
        let distance = next.base_offset - first.base_offset;
        let in_sequence = first.producer_id < 0
            || i32::try_from(distance).is_ok_and(|d| first.base_sequence.wrapping_add(d) == next.base_sequence);
        same_kind && in_sequence && next.last_offset() - first.base_offset <= i64::from(i32::MAX)
    }
}

impl Log {
    /// Runs one compaction pass if the log's cleanable part is dirty enough (see the module doc). `Ok(None)`: no
    /// pass was due. Blocking: reads and writes whole segments; the log keeps taking appends and reads meanwhile.
    pub fn compact(&self, settings: &CompactionSettings) -> Result<Option<CompactionOutcome>> {
        let _one_pass_at_a_time = lock(&self.compaction);
        self.ensure_open()?;
        let now = self.clock.now_ms();
        let limit = self.last_stable_offset();
        let lag_horizon = now.saturating_sub(i64::try_from(settings.min_compaction_lag_ms).unwrap_or(i64::MAX));
        let cleanable: Vec<Arc<Segment>> = {
            let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
            segments
                .values()
                .zip(segments.keys().skip(1))
                .take_while(|(segment, &next_base)| next_base <= limit && segment.max_timestamp() <= lag_horizon)
                .map(|(segment, _)| Arc::clone(segment))
                .collect()
        };
        let cleaned_through = self.cleaned_through.load(Ordering::Acquire);
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let mut dirty_segments = cleanable.iter().filter(|s| s.next_offset() > cleaned_through).peekable();
        // Past max.compaction.lag.ms, by the oldest dirty segment's newest record: a pass is due at most one
        // segment's span after its oldest record reached the lag.
        let is_past_max_lag = settings.max_compaction_lag_ms.is_some_and(|lag| {
            let horizon = now.saturating_sub(i64::try_from(lag).unwrap_or(i64::MAX));
            dirty_segments.peek().is_some_and(|oldest| oldest.max_timestamp() <= horizon)
        });
        let dirty: u64 = dirty_segments.map(|s| s.size()).sum();
        let is_dirty_enough =
            u128::from(dirty) * 1000 >= u128::from(settings.min_cleanable_dirty_permille) * u128::from(total);
        if dirty == 0 || !(is_dirty_enough || is_past_max_lag) {
            return Ok(None);
        }
        // Only now: the maintenance task asks every pass, and most find nothing due.
        let epochs = lock(&self.writer).checkpoint.epochs.clone();
        let aborted = AbortedRanges::of(self, cleanable.last().map_or(limit, |s| s.next_offset()));
        let (newest, end) = self.map_keys(&cleanable, cleaned_through, settings.key_map_bytes, &aborted)?;
        let tombstone_horizon = now.saturating_sub(i64::try_from(settings.delete_retention_ms).unwrap_or(i64::MAX));
        // First: no read is answered from memory with the bytes these segments held before.
        if let Some(tail) = &self.tail {
            tail.remove_starting_below(end);
        }
        let mut outcome = CompactionOutcome { cleaned_through: end, ..CompactionOutcome::default() };
        for segment in cleanable.iter().take_while(|s| s.next_offset() <= end) {
            let keep = |record: &RecordView<'_>, batch_max_timestamp: i64| match record.key {
                None => true,
                Some(key) => {
                    let is_newest = newest.get(key).is_none_or(|&offset| offset <= record.offset);
                    // Only in what an earlier pass covered: a tombstone is the newest value of its key for at least one
                    // pass, whatever timestamp its producer gave it.
                    let is_expired_tombstone = record.value.is_none()
                        && record.offset < cleaned_through
                        && batch_max_timestamp < tombstone_horizon;
                    is_newest && !is_expired_tombstone
                }
            };
            let Some(rewrite) = write_compacted(segment, &aborted, keep)? else { continue };
            let before = segment.size();
            match self.swap_in(segment, &rewrite, &epochs) {
                Ok(true) => {
                    outcome.segments_rewritten += 1;
                    outcome.records_removed += rewrite.records_removed;
                    outcome.bytes_before += before;
                    outcome.bytes_after += rewrite.bytes;
                }
                Ok(false) => {
                    remove_if_present(&rewrite.path)?;
                    return Ok(Some(outcome));
                }
                Err(e) => {
                    let _ = remove_if_present(&rewrite.path);
                    return Err(e);
                }
            }
        }
        self.cleaned_through.fetch_max(end, Ordering::AcqRel);
        if let Err(err) = crate::cleaner_offset::store(self.dir.path(), end) {
            tracing::warn!(dir = %self.dir.display(), error = %err, "cannot keep where compaction ended");
        }
        outcome.segments_merged = self.merge_small_segments(end, &epochs)?;
        tracing::info!(
            dir = %self.dir.display(),
            segments = outcome.segments_rewritten,
            segments_merged = outcome.segments_merged,
            records_removed = outcome.records_removed,
            bytes_before = outcome.bytes_before,
            bytes_after = outcome.bytes_after,
            cleaned_through = end,
            "compacted log"
        );
        Ok(Some(outcome))
    }

    /// [`Log::compact`] with the log's own settings, when it has any (`LogConfig::compaction`: a compacted topic).
    pub fn compact_if_configured(&self) -> Result<Option<CompactionOutcome>> {
        match self.config().compaction {
            Some(settings) => self.compact(&settings),
            None => Ok(None),
        }
    }

    /// A truncation to `end`: what is appended from there on was never compacted. Otherwise it would count as
    /// clean, and keys in it would never be mapped.
    pub(super) fn forget_cleaning_past(&self, end: i64) {
        if self.cleaned_through.fetch_min(end, Ordering::AcqRel) > end {
            if let Err(err) = crate::cleaner_offset::store(self.dir.path(), end) {
                tracing::warn!(dir = %self.dir.display(), error = %err, "cannot keep where compaction ended");
            }
        }
    }

    /// Each key of the dirty segments (those past `cleaned_through`) with its newest offset, and the offset the map
    /// covers the log below: the end of the last segment mapped whole before the keys passed `key_map_bytes` (at
    /// least one segment is always mapped).
    fn map_keys(
        &self,
        cleanable: &[Arc<Segment>],
        cleaned_through: i64,
        key_map_bytes: usize,
        aborted: &AbortedRanges,
    ) -> Result<(HashMap<Vec<u8>, i64>, i64)> {
        let mut newest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut end = cleaned_through;
        for segment in cleanable.iter().filter(|s| s.next_offset() > cleaned_through) {
            if map_bytes >= key_map_bytes && end > cleaned_through {
                break;
            }
            for_each_batch(segment, |header, batch| {
                if aborted.kind_of(header) != BatchKind::Data {
                    return Ok(());
                }
                retain_records(batch, |record| {
                    if let Some(key) = record.key {
                        if newest.insert(key.to_vec(), record.offset).is_none() {
                            map_bytes += key.len() + KEY_ENTRY_OVERHEAD;
                        }
                    }
                    true
                })?;
                Ok(())
            })?;
            end = segment.next_offset();
        }
        Ok((newest, end))
    }

    /// Puts `rewrite` in `segment`'s place (see the module doc for the order of the steps). `Ok(false)`: the
    /// segment left the log meanwhile (retention, a truncation), and nothing changed.
    fn swap_in(&self, segment: &Arc<Segment>, rewrite: &Rewrite, epochs: &[EpochStart]) -> Result<bool> {
        let base = segment.base_offset();
        let next = segment.next_offset();
        let epoch_of = |offset: i64| epoch_at(epochs, offset);
        check_rewrite(rewrite, base, next, &epoch_of, self.config().index_interval_bytes)?;
        let _rewrite = lock(&self.rewrite);
        self.ensure_open()?;
        let is_in_log = {
            let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
            segments.get(&base).is_some_and(|current| Arc::ptr_eq(current, segment))
        };
        if !is_in_log {
            return Ok(false);
        }
        segment.pin_before_replacement()?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(&segment_path(self.dir.path(), base, suffix))?;
        }
        self.dir.sync()?;
        fs::rename(&rewrite.path, segment.log_path()).map_err(StorageError::io(&rewrite.path))?;
        self.dir.sync()?;
        // A reader that opened the path before the rename must not leave the old file in the shared cache.
        self.segment_settings.files.forget(segment.log_path());
        let reopened = self.reopen_rewritten(base, next, rewrite.bytes, epochs)?;
        self.segments.write().unwrap_or_else(|p| p.into_inner()).insert(base, Arc::new(reopened));
        Ok(true)
    }

    /// The segment at `base` opened from the file a rewrite or a merge just put there, scanned (its indexes
    /// rebuilt) and sealed: it must read back as `bytes` of whole valid batches ending at `next`.
    pub(super) fn reopen_rewritten(&self, base: i64, next: i64, bytes: u64, epochs: &[EpochStart]) -> Result<Segment> {
        let epoch_of = |offset: i64| epoch_at(epochs, offset);
        let mode = OpenMode {
            needs_scan: true,
            known_next_offset: Some(next),
            epochs: EpochRule::Known(&epoch_of),
            previous_epoch: epoch_of(base - 1),
            now_ms: self.clock.now_ms(),
            settings: &self.segment_settings,
        };
        let path = segment_path(self.dir.path(), base, LOG_SUFFIX);
        let (reopened, scan) = Segment::open(self.dir.path(), base, &mode)?;
        let scan = scan.ok_or_else(|| corrupt(&path, "the new segment file was not scanned"))?;
        if scan.damage.is_some() || scan.next_offset != next || scan.valid_bytes != bytes || scan.file_bytes != bytes {
            return Err(corrupt(&path, "the new segment file does not read back as written"));
        }
        reopened.seal(&mut scan.cursor.clone())?;
        Ok(reopened)
    }
}

/// A segment's compacted copy, written and fsynced beside it.
pub(super) struct Rewrite {
    pub(super) path: PathBuf,
    pub(super) bytes: u64,
    pub(super) records_removed: u64,
}

/// Calls `on_batch` with each batch of sealed `segment`, in order, read from its file through a 1 MiB buffer (a
/// segment of small batches is read in large reads, not two per batch).
fn for_each_batch(segment: &Segment, mut on_batch: impl FnMut(&BatchHeader, &[u8]) -> Result<()>) -> Result<()> {
    let path = segment.log_path();
    let file = File::open(path).map_err(StorageError::io(path))?;
    let size = segment.size();
    let mut reader = BufReader::with_capacity(1 << 20, file.take(size));
    let mut position = 0u64;
    let mut batch = Vec::new();
    while position < size {
        batch.resize(HEADER_BYTES, 0);
        reader.read_exact(&mut batch).map_err(StorageError::io(path))?;
        let header = BatchHeader::parse(&batch).map_err(|e| corrupt(path, &format!("at {position}: {e}")))?;
        batch.resize(header.total_bytes(), 0);
        reader.read_exact(&mut batch[HEADER_BYTES..]).map_err(StorageError::io(path))?;
        on_batch(&header, &batch)?;
        position += header.total_bytes() as u64;
    }
    Ok(())
}

/// Writes `segment` without the records `keep` refuses (given each record and its batch's newest timestamp) to
/// `<base>.cleaned` and fsyncs it; `None` (and no file) when every record stays. The file is created at the first
/// batch that changes, with the unchanged bytes before it copied: a segment a pass leaves as it is costs a read.
fn write_compacted(
    segment: &Segment,
    aborted: &AbortedRanges,
    mut keep: impl FnMut(&RecordView<'_>, i64) -> bool,
) -> Result<Option<Rewrite>> {
    let path = segment.log_path().with_extension(CLEANED_SUFFIX);
    let mut output = Output { path: &path, source: segment.log_path(), unchanged: 0, file: None, bytes: 0 };
    let mut records_removed = 0u64;
    let mut run: Option<EmptyRun> = None;
    let written = for_each_batch(segment, |header, batch| {
        let retained = match aborted.kind_of(header) {
            BatchKind::Marker => Retained::All,
            BatchKind::Aborted if header.record_count == 0 => Retained::All,
            BatchKind::Aborted => Retained::None { removed: header.record_count as usize },
            BatchKind::Data => retain_records(batch, |record| keep(record, header.max_timestamp))?,
        };
        match retained {
            Retained::All => {
                output.end_run(&mut run)?;
                output.keep(batch)
            }
            Retained::Some { batch: rewritten, removed } => {
                records_removed += removed as u64;
                output.end_run(&mut run)?;
                output.write(&rewritten)
            }
            Retained::None { removed } => {
                records_removed += removed as u64;
                match &mut run {
                    Some(current) if current.takes(header) => {
                        current.last_offset = header.last_offset();
                        current.max_timestamp = current.max_timestamp.max(header.max_timestamp);
                    }
                    _ => {
                        output.end_run(&mut run)?;
                        run = Some(EmptyRun {
                            first: *header,
                            last_offset: header.last_offset(),
                            max_timestamp: header.max_timestamp,
                        });
                    }
                }
                Ok(())
            }
        }
    })
    .and_then(|()| output.end_run(&mut run))
    .and_then(|()| output.finish());
    match written {
        Err(e) => {
            let _ = remove_if_present(&path);
            Err(e)
        }
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => Ok(Some(Rewrite { path, bytes, records_removed })),
    }
}

/// The rewrite of one segment as it is written: nothing while every batch so far stays as it was.
struct Output<'a> {
    path: &'a Path,
    source: &'a Path,
    /// Bytes of the source kept unchanged before the file was created.
    unchanged: u64,
    file: Option<BufWriter<File>>,
    /// Bytes written to the file.
    bytes: u64,
}

impl Output<'_> {
    /// `batch` stays as it is.
    fn keep(&mut self, batch: &[u8]) -> Result<()> {
        match self.file {
            None => {
                self.unchanged += batch.len() as u64;
                Ok(())
            }
            Some(_) => self.write(batch),
        }
    }

    fn write(&mut self, batch: &[u8]) -> Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file =
                    BufWriter::with_capacity(1 << 20, File::create(self.path).map_err(StorageError::io(self.path))?);
                let source = File::open(self.source).map_err(StorageError::io(self.source))?;
                std::io::copy(&mut source.take(self.unchanged), &mut file).map_err(StorageError::io(self.path))?;
                self.bytes = self.unchanged;
                self.file.insert(file)
            }
        };
        file.write_all(batch).map_err(StorageError::io(self.path))?;
        self.bytes += batch.len() as u64;
        Ok(())
    }

    fn end_run(&mut self, run: &mut Option<EmptyRun>) -> Result<()> {
        if let Some(ended) = run.take() {
            let empty = empty_batch(&ended.first, ended.last_offset, ended.max_timestamp)?;
            self.write(&empty)?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the file; its size, or `None` when nothing changed and there is no file.
    fn finish(self) -> Result<Option<u64>> {
        let Some(file) = self.file else { return Ok(None) };
        let file = file.into_inner().map_err(|e| StorageError::io(self.path)(e.into_error()))?;
        file.sync_all().map_err(StorageError::io(self.path))?;
        Ok(Some(self.bytes))
    }
}

/// Recovery's scan of the rewritten file: every batch valid, in the leader epochs the log has for its offsets,
/// offsets dense from `base` to `next`. Anything else is a fault of the rewrite, and the old segment stays.
pub(super) fn check_rewrite(
    rewrite: &Rewrite,
    base: i64,
    next: i64,
    epoch_of: &dyn Fn(i64) -> Option<i32>,
    index_interval_bytes: u64,
) -> Result<()> {
    let file = File::open(&rewrite.path).map_err(StorageError::io(&rewrite.path))?;
    let scan = recovery::scan(
        &file,
        &rewrite.path,
        ScanStart::segment_start(base),
        index_interval_bytes,
        &EpochRule::Known(epoch_of),
        epoch_of(base - 1),
    )?;
    if let Some(damage) = scan.damage {
        return Err(corrupt(&rewrite.path, &format!("the rewritten segment is damaged: {damage}")));
    }
    if scan.next_offset != next || scan.valid_bytes != rewrite.bytes {
        return Err(corrupt(
            &rewrite.path,
            &format!("the rewritten segment ends at offset {} where the segment ended at {next}", scan.next_offset),
        ));
    }
    Ok(())
}

pub(super) fn corrupt(path: &Path, reason: &str) -> StorageError {
    StorageError::Corrupt { path: path.to_owned(), position: 0, reason: reason.to_owned() }
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(path)(e)),
        _ => Ok(()),
    }
}
