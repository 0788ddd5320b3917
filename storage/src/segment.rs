//! A segment: one `.log` file of consecutive batches, named by the base offset of its first batch,
//! with its `.index` and `.timeindex`.
//!
//! One writer (the log, under its writer lock) appends; any number of readers read at the same
//! time. A reader sees `size` only after the bytes under it are written, so it never reads a torn
//! batch. Reads use `pread` into one buffer per call: one copy from the page cache, none per record.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::{Bytes, BytesMut};
use rill_protocol::batch::{Compression, HEADER_BYTES, PARTITION_LEADER_EPOCH_AT};
use rill_protocol::compressed::records_section;
use rill_protocol::compression::{with_decompressor, MAX_DECOMPRESSED_BATCH_BYTES};
use rill_protocol::record::RecordIter;
use rill_protocol::{BatchHeader, TimestampType};

use crate::config::{SegmentSettings, WriteMode};
use crate::direct::{self, DirectAppender, RecentBytes};
use crate::index::{OffsetIndex, TimeIndex};
use crate::read_ahead::{Lookup, Window};
use crate::recovery::{EpochRule, IndexCursor};
use crate::segment_files::{Access, SegmentFileCache};
use crate::tail_cache::TailCache;
use crate::{Result, StorageError};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// A direct append staged in a buffer the caller keeps: the batches as written are `buffer[start..end]`.
pub(crate) struct KeptWrite {
    pub buffer: Bytes,
    /// The buffer's allocation, what it costs the tail cache.
    pub capacity: usize,
    pub start: usize,
    pub end: usize,
}

/// How an append reaches the device, beside what its size decides.
pub(crate) struct AppendRoute {
    /// A buffer of the tail cache's: a direct write is staged in it, and it becomes the cached copy.
    pub keep: Option<BytesMut>,
    /// An fsync follows before the append is acknowledged (`Durability::Always`, or callers waiting for fsyncs):
    /// a small append goes through the page cache into zeros written ahead of it (see `direct.rs`, "Zeros ahead"),
    /// so that the fsync flushes its page and changes no metadata.
    pub is_synced: bool,
}

/// A batch's first fields as the log stores them: its assigned base offset, its length, the leader epoch.
type PatchedHead = [u8; PARTITION_LEADER_EPOCH_AT + 4];

fn patched_head(batch: &[u8], header: &BatchHeader, epoch: i32) -> PatchedHead {
    let mut head = [0u8; PARTITION_LEADER_EPOCH_AT + 4];
    head[..8].copy_from_slice(&header.base_offset.to_be_bytes());
    head[8..12].copy_from_slice(&batch[8..12]);
    head[12..16].copy_from_slice(&epoch.to_be_bytes());
    head
}

/// Appends to `out` the bytes [`Segment::append`] writes for `batches`: what the tail cache keeps of an append.
pub(crate) fn write_as_stored(batches: &[(&[u8], BatchHeader)], epoch: i32, out: &mut BytesMut) {
    for (batch, header) in batches {
        out.extend_from_slice(&patched_head(batch, header, epoch));
        out.extend_from_slice(&batch[PARTITION_LEADER_EPOCH_AT + 4..]);
    }
}

/// `<dir>/<base offset, 20 digits>.<suffix>`: sorting names sorts segments.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

mod largest_timestamp;
mod read_ahead;
mod reopen;

pub use largest_timestamp::LargestTimestamp;

pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    /// The `.log`'s own descriptor, held while the segment is active (appended to, or may be). A sealed segment
    /// holds none: reads open the file through `files`, so its descriptor counts against that cache's bound.
    held_file: RwLock<Option<Arc<File>>>,
    files: Arc<SegmentFileCache>,
    /// Bytes of whole batches that readers may see.
    size: AtomicU64,
    /// Offset after the last batch.
    next_offset: AtomicI64,
    /// Largest batch timestamp; `i64::MIN` while empty.
    max_timestamp: AtomicI64,
    /// When the segment began, for `segment_ms`: when its first batch was appended, or when it was
    /// opened, by the log's clock. Not a batch timestamp: a producer's clock (or an old replayed
    /// record) must not make every append roll a segment.
    created_ms: AtomicI64,
    offset_index: RwLock<OffsetIndex>,
    time_index: RwLock<TimeIndex>,
    /// How appends reach the file, and what reads need to know of it.
    io: SegmentIo,
    /// Set when log compaction is about to put a rewritten file at this segment's path
    /// ([`Segment::pin_before_replacement`]): this segment's own file, which its readers use from then on, so
    /// that a reader still holding this segment never reads the new file at this segment's index positions.
    replaced: OnceLock<Arc<File>>,
}

/// The write path of one segment: buffered or direct, and the state direct writes keep.
struct SegmentIo {
    /// The direct descriptor is opened by the first append, so sealed segments hold no second descriptor.
    writes: Mutex<Writes>,
    /// Whether `writes` is (or will be, once opened) direct; cleared by a fallback to buffered writes. Read
    /// without the `writes` lock, which an append holds for the whole device write.
    is_direct: AtomicBool,
    /// Smaller appends go through the page cache even when writes are direct (`LogConfig`).
    direct_min_batch_bytes: usize,
    /// Set when the file system refused an `O_DIRECT` descriptor for reads: later reads go through the page
    /// cache without asking again. (Direct read descriptors live in the log's `SegmentFileCache`.)
    direct_reads_refused: AtomicBool,
    /// The newest bytes of a directly written segment, for readers tailing it (empty otherwise).
    recent: Mutex<RecentBytes>,
    /// Chunks read ahead of a sequential reader (`read_ahead.rs`): a directly written segment of a log with a tail
    /// cache has them.
    read_ahead: Option<ReadAheadSite>,
    /// Why the first failed fsync of the `.log` failed. Set once, never cleared ([`Segment::sync`]).
    sync_failure: OnceLock<String>,
}

struct ReadAheadSite {
    cache: Arc<TailCache>,
    window: Arc<Mutex<Window>>,
    /// The log's count of reads answered from the window.
    hits: Arc<std::sync::atomic::AtomicU64>,
}

impl SegmentIo {
    fn new(settings: &SegmentSettings) -> Self {
        let mode = settings.write_mode;
        let writes = match mode {
            WriteMode::Buffered => Writes::Buffered,
            WriteMode::Direct => Writes::DirectUnopened,
        };
        let read_ahead = match (&settings.tail_cache, mode) {
            (Some(cache), WriteMode::Direct) => {
                let window = Arc::new(Mutex::new(Window::default()));
                Some(ReadAheadSite { cache: Arc::clone(cache), window, hits: Arc::clone(&settings.read_ahead_hits) })
            }
            _ => None,
        };
        Self {
            writes: Mutex::new(writes),
            is_direct: AtomicBool::new(mode == WriteMode::Direct),
            direct_min_batch_bytes: settings.direct_min_batch_bytes,
            direct_reads_refused: AtomicBool::new(false),
            recent: Mutex::default(),
            read_ahead,
            sync_failure: OnceLock::new(),
        }
    }
}

enum Writes {
    Buffered,
    DirectUnopened,
    Direct(DirectAppender),
}

/// How [`Segment::open`] should treat the files it finds.
pub(crate) struct OpenMode<'a> {
    /// Rescan and validate the `.log` (unclean shutdown past the recovery point).
    pub needs_scan: bool,
    /// The offset after the segment's last batch, when known without a scan (a sealed segment's
    /// successor's base offset, or the recovery point of a clean shutdown).
    pub known_next_offset: Option<i64>,
    pub epochs: EpochRule<'a>,
    pub previous_epoch: Option<i32>,
    pub now_ms: i64,
    pub settings: &'a SegmentSettings,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64, settings: &SegmentSettings, now_ms: i64) -> Result<Self> {
        let index_max_bytes = settings.index_max_bytes;
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(StorageError::io(&log_path))?;
        let offset_index =
            OffsetIndex::create(&segment_path(dir, base_offset, INDEX_SUFFIX), base_offset, index_max_bytes)?;
        let time_index =
            TimeIndex::create(&segment_path(dir, base_offset, TIME_INDEX_SUFFIX), base_offset, index_max_bytes)?;
        Ok(Self {
            base_offset,
            log_path,
            held_file: RwLock::new(Some(Arc::new(file))),
            files: Arc::clone(&settings.files),
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            created_ms: AtomicI64::new(now_ms),
            offset_index: RwLock::new(offset_index),
            time_index: RwLock::new(time_index),
            io: SegmentIo::new(settings),
            replaced: OnceLock::new(),
        })
    }

    /// Read without the `writes` lock, which an append holds for the whole device write: a reader must not
    /// wait for a writer's I/O.
    fn write_mode(&self) -> WriteMode {
        if self.io.is_direct.load(Ordering::Acquire) {
            WriteMode::Direct
        } else {
            WriteMode::Buffered
        }
    }

    /// The `.log`'s descriptor: the segment's own while active, else one from the cache (opened on a miss).
    fn file(&self) -> std::io::Result<Arc<File>> {
        if let Some(file) = &*read_lock(&self.held_file) {
            return Ok(Arc::clone(file));
        }
        if let Some(pinned) = self.replaced.get() {
            return Ok(Arc::clone(pinned));
        }
        let file = match self.files.get(&self.log_path, Access::Buffered, || File::open(&self.log_path)) {
            Ok(file) => file,
            // Pinned, then removed by a merge (`log/merge.rs`), while the cache tried the path: read the pinned one.
            Err(e) => return self.replaced.get().map(Arc::clone).ok_or(e),
        };
        // Pinned while the cache opened the path: that may have been the rewritten file already.
        Ok(self.replaced.get().map_or(file, Arc::clone))
    }

    /// Before log compaction renames a rewritten file over this (sealed) segment's: keeps a descriptor of the file
    /// as it is for this segment's readers ([`Segment::file`]) and takes its path out of the shared cache, so that
    /// no reader of this segment opens the new file. Readers go to the buffered descriptor from here on.
    pub(crate) fn pin_before_replacement(&self) -> Result<()> {
        let file = File::open(&self.log_path).map_err(StorageError::io(&self.log_path))?;
        let _ = self.replaced.set(Arc::new(file));
        self.files.forget(&self.log_path);
        Ok(())
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The segment's own descriptor, for what only an active segment does (append, truncate, seal).
    fn held_file(&self) -> Result<Arc<File>> {
        read_lock(&self.held_file).clone().ok_or_else(|| {
            StorageError::io(&self.log_path)(std::io::Error::other("the segment is sealed: it holds no descriptor"))
        })
    }

    /// Closes the segment's own descriptors (the `.log`'s and an `O_DIRECT` writer's): it is sealed, and reads
    /// open it through the cache from now on.
    pub fn close_file(&self) {
        *write_lock(&self.held_file) = None;
        let mut writes = lock(&self.io.writes);
        if let Writes::Direct(_) = *writes {
            *writes = Writes::DirectUnopened;
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub fn created_ms(&self) -> i64 {
        self.created_ms.load(Ordering::Relaxed)
    }

    pub fn is_index_full(&self) -> bool {
        read_lock(&self.offset_index).is_full() || read_lock(&self.time_index).is_full()
    }

    /// Whether a synced append of `bytes` now would first write zeros ahead (`direct.rs`, "Zeros ahead"): a device
    /// write of 256 KiB, too long for an async thread. `true` when unsure (the file's end not known yet, or the
    /// write lock held elsewhere).
    pub fn would_write_zeros_for(&self, bytes: u64) -> bool {
        if !self.goes_into_zeros(bytes) {
            return false;
        }
        let Ok(writes) = self.io.writes.try_lock() else { return true };
        let end = (self.size() + bytes).next_multiple_of(direct::BLOCK_BYTES as u64);
        match &*writes {
            Writes::Buffered => false,
            Writes::DirectUnopened => true,
            Writes::Direct(appender) => !appender.has_zeros_through(end),
        }
    }

    /// Whether a synced append of `len` bytes goes into zeros written ahead: small enough for the page cache
    /// (`direct_min_batch_bytes`) and for the zeros a crash may leave (`ZEROS_AHEAD_MAX_APPEND`).
    fn goes_into_zeros(&self, len: u64) -> bool {
        len < self.io.direct_min_batch_bytes as u64 && len <= direct::ZEROS_AHEAD_MAX_APPEND
    }

    /// Appends `batches` (already validated, each with its header carrying the assigned base offset), in order,
    /// at the end of the file, in one write. Each batch's new base offset and `epoch` are written from a 16-byte
    /// patched copy of its header's first fields, the rest straight from the batch: no copy of the record bytes.
    /// On failure nothing of the group stays in the file.
    ///
    /// With `keep` (a buffer of the tail cache's), a direct write is staged in it and the answer is the buffer with
    /// where the batches lie in it; otherwise (no `keep`, or a write through the page cache) `None`.
    pub fn append(
        &self,
        batches: &[(&[u8], BatchHeader)],
        epoch: i32,
        cursor: &mut IndexCursor,
        interval: u64,
        now_ms: i64,
        route: AppendRoute,
    ) -> Result<Option<KeptWrite>> {
        let Some((_, last)) = batches.last() else { return Ok(None) };
        let position = self.size.load(Ordering::Relaxed);
        let heads: Vec<PatchedHead> =
            batches.iter().map(|(batch, header)| patched_head(batch, header, epoch)).collect();
        let parts: Vec<&[u8]> =
            heads.iter().zip(batches).flat_map(|(head, (batch, _))| [&head[..], &batch[head.len()..]]).collect();
        let file = self.held_file()?;
        let kept = match self.write_at(&file, position, &parts, route) {
            Ok(kept) => kept,
            Err(source) => {
                // Leave no partial batch behind: a later append or a clean shutdown must not see one.
                let _ = file.set_len(position);
                return Err(StorageError::Io { path: self.log_path.clone(), source });
            }
        };
        if position == 0 {
            self.created_ms.store(now_ms, Ordering::Relaxed);
        }
        let mut batch_position = position;
        for (batch, header) in batches {
            let (offset_entry, time_entry) = cursor.on_batch(header, batch_position as u32, interval);
            // An index entry that cannot be written (disk full) is skipped, not fatal: the batch is
            // already in the log, and lookups only walk further from an earlier entry.
            if let Some(entry) = offset_entry {
                if let Err(e) = write_lock(&self.offset_index).append(entry) {
                    tracing::warn!(path = %self.log_path.display(), error = %e, "skipped an offset index entry");
                }
            }
            if let Some(entry) = time_entry {
                if let Err(e) = write_lock(&self.time_index).append(entry) {
                    tracing::warn!(path = %self.log_path.display(), error = %e, "skipped a time index entry");
                }
            }
            self.max_timestamp.fetch_max(header.max_timestamp, Ordering::AcqRel);
            batch_position += batch.len() as u64;
        }
        self.next_offset.store(last.next_offset(), Ordering::Release);
        self.size.store(batch_position, Ordering::Release);
        Ok(kept)
    }

    fn write_at(
        &self,
        file: &File,
        position: u64,
        parts: &[&[u8]],
        route: AppendRoute,
    ) -> std::io::Result<Option<KeptWrite>> {
        let mut writes = lock(&self.io.writes);
        if let Writes::DirectUnopened = *writes {
            *writes = match DirectAppender::open(&self.log_path)? {
                Some(appender) => Writes::Direct(appender),
                None => {
                    tracing::warn!(path = %self.log_path.display(), "the file system refuses O_DIRECT; writing through the page cache");
                    self.io.is_direct.store(false, Ordering::Release);
                    Writes::Buffered
                }
            };
        }
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let is_small = len < self.io.direct_min_batch_bytes;
        if let Writes::Direct(appender) = &mut *writes {
            if is_small {
                if route.is_synced && self.goes_into_zeros(len as u64) {
                    return self.write_into_zeros(appender, file, position, parts);
                }
                // Through the page cache below; the next direct write reloads the block this one changes.
                appender.wrote_buffered_through(position + len as u64);
            } else {
                let written = match route.keep {
                    Some(buffer) => appender
                        .write_kept(position, parts, file, buffer)
                        .map(|(buffer, capacity, start, end)| Some(KeptWrite { buffer, capacity, start, end })),
                    None => appender.write_at(position, parts, file).map(|()| None),
                };
                match written {
                    Ok(kept) => {
                        lock(&self.io.recent).push(position, parts);
                        return Ok(kept);
                    }
                    // The device wants a coarser alignment than 4 KiB: nothing was written, so write through
                    // the page cache instead, from here on.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        tracing::warn!(path = %self.log_path.display(), "O_DIRECT refused (alignment); writing through the page cache");
                        *writes = Writes::Buffered;
                        self.io.is_direct.store(false, Ordering::Release);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        write_all_vectored_at(file, parts, position)?;
        if matches!(*writes, Writes::Direct(_)) {
            lock(&self.io.recent).push(position, parts);
        }
        Ok(None)
    }

    /// A small append that an fsync follows: through the page cache, into zeros the appender wrote ahead, and
    /// padded with zeros to the end of its last page, so that the kernel need not read that page first (the zeros
    /// ahead were written direct: not in the page cache).
    fn write_into_zeros(
        &self,
        appender: &mut DirectAppender,
        file: &File,
        position: u64,
        parts: &[&[u8]],
    ) -> std::io::Result<Option<KeptWrite>> {
        let len: u64 = parts.iter().map(|part| part.len() as u64).sum();
        let end = position + len;
        let page_end = end.next_multiple_of(direct::BLOCK_BYTES as u64);
        // Only the fsync's cost rides on the zeros: without them the append is written all the same.
        if let Err(e) = appender.keep_zeroed_through(page_end) {
            tracing::debug!(path = %self.log_path.display(), error = %e, "could not write zeros ahead");
        }
        let padding = &PAGE_OF_ZEROS[..(page_end - end) as usize];
        let padded: Vec<&[u8]> = parts.iter().copied().chain(std::iter::once(padding)).collect();
        // Whatever happens below, the next direct write reloads the block this one changes.
        appender.wrote_buffered_through(page_end);
        if let Err(e) = write_all_vectored_at(file, &padded, position) {
            // The caller cuts the file back to `position`, zeros and all.
            appender.forget_file_end();
            return Err(e);
        }
        lock(&self.io.recent).push(position, parts);
        Ok(None)
    }

    fn read_header_at(&self, position: u64) -> Result<BatchHeader> {
        let mut buf = [0u8; HEADER_BYTES];
        let read_ahead = self.io.read_ahead.as_ref().and_then(|site| lock(&site.window).peek(position, HEADER_BYTES));
        if let Some(bytes) = read_ahead.filter(|bytes| bytes.len() >= HEADER_BYTES) {
            buf.copy_from_slice(&bytes[..HEADER_BYTES]);
        } else if !lock(&self.io.recent).read_into(position, &mut buf) {
            self.file()
                .and_then(|file| file.read_exact_at(&mut buf, position))
                .map_err(StorageError::io(&self.log_path))?;
        }
        BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, e.to_string()))
    }

    fn corrupt(&self, position: u64, reason: String) -> StorageError {
        StorageError::Corrupt { path: self.log_path.clone(), position, reason }
    }

    /// Position and header of the first batch whose last offset is `>= offset`, scanning forward
    /// from the nearest index entry; `None` if no such batch is visible.
    fn locate(&self, offset: i64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let mut position = read_lock(&self.offset_index).floor(offset).map_or(0, |e| u64::from(e.position));
        while position + HEADER_BYTES as u64 <= size {
            let header = self.read_header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (but always the whole first
    /// batch, so a consumer makes progress), stopping before any batch at or past `limit_offset`.
    /// `None` if this segment holds nothing at or after `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, limit_offset: i64) -> Result<Option<Bytes>> {
        let size = self.size();
        let Some((position, first)) = self.locate(offset, size)? else {
            return Ok(None);
        };
        if first.base_offset >= limit_offset {
            return Ok(None);
        }
        let available = size - position;
        let want = (max_bytes as u64).max(first.total_bytes() as u64).min(available) as usize;
        let (buf, is_sequential) = match self.look_up_read_ahead(position) {
            // A chunk ends where a batch starts, so it holds the first batch whole; if not, read it from the device.
            Lookup::Hit(chunk) if chunk.len() >= first.total_bytes() => {
                if let Some(site) = &self.io.read_ahead {
                    site.hits.fetch_add(1, Ordering::Relaxed);
                }
                (chunk.slice(..want.min(chunk.len())), true)
            }
            lookup => {
                let buf = self.read_bytes(position, want).map_err(StorageError::io(&self.log_path))?;
                (buf, !matches!(lookup, Lookup::Elsewhere))
            }
        };
        let mut end = 0;
        while end + HEADER_BYTES <= buf.len() {
            let header =
                BatchHeader::parse(&buf[end..]).map_err(|e| self.corrupt(position + end as u64, e.to_string()))?;
            if header.base_offset >= limit_offset || end + header.total_bytes() > buf.len() {
                break;
            }
            end += header.total_bytes();
        }
        self.after_read(position + end as u64, is_sequential, size);
        Ok(Some(buf.slice(..end)))
    }

    fn is_read_directly(&self) -> bool {
        self.write_mode() == WriteMode::Direct
            && !self.io.direct_reads_refused.load(Ordering::Relaxed)
            && self.replaced.get().is_none()
    }

    /// The segment's `O_DIRECT` descriptor, from the node's cache. An error once the segment is being replaced
    /// ([`Segment::pin_before_replacement`]): the path may name the new file, so reads go to the pinned one.
    fn direct_reader(&self) -> std::io::Result<Arc<File>> {
        let replaced = || std::io::Error::other("the segment's file was replaced by log compaction");
        if self.replaced.get().is_some() {
            return Err(replaced());
        }
        let file = self.files.get(&self.log_path, Access::Direct, || {
            direct::open_reader(&self.log_path)?.ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))
        })?;
        match self.replaced.get() {
            Some(_) => Err(replaced()),
            None => Ok(file),
        }
    }

    /// `len` bytes at `position`: straight from the device when the segment is written directly (its data is
    /// not in the page cache, and a buffered read would put it there only to be copied out again).
    fn read_bytes(&self, position: u64, len: usize) -> std::io::Result<Bytes> {
        if self.is_read_directly() {
            if let Some(recent) = lock(&self.io.recent).read(position, len) {
                return Ok(recent);
            }
            match self.direct_reader() {
                Ok(reader) => match direct::read_at(&reader, position, len) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {} // an alignment the device refuses
                    read => return read,
                },
                Err(_) if self.replaced.get().is_some() => {}
                Err(e) => {
                    tracing::warn!(path = %self.log_path.display(), error = %e, "cannot open for direct reads");
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        self.io.direct_reads_refused.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.file()?.read_exact_at(&mut buf, position)?;
        Ok(Bytes::from(buf))
    }

    /// The first offset below `limit_offset` whose record timestamp is `>= timestamp_ms`.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64, limit_offset: i64) -> Result<Option<i64>> {
        if self.max_timestamp() < timestamp_ms {
            return Ok(None);
        }
        let size = self.size();
        let start = read_lock(&self.time_index).below(timestamp_ms).map_or(self.base_offset, |e| e.offset);
        let mut position = read_lock(&self.offset_index).floor(start).map_or(0, |e| u64::from(e.position));
        while position + HEADER_BYTES as u64 <= size {
            let header = self.read_header_at(position)?;
            if header.base_offset >= limit_offset {
                return Ok(None);
            }
            if header.max_timestamp >= timestamp_ms {
                if let Some(offset) = self.first_record_at_or_after(position, &header, timestamp_ms)? {
                    return Ok(Some(offset));
                }
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }

    /// Within one batch: the first record with a timestamp `>= timestamp_ms`, as Kafka finds it: a compressed
    /// batch's records are decompressed (at most [`MAX_DECOMPRESSED_BATCH_BYTES`], the produce limit); a
    /// LogAppendTime batch answers with its base offset, as its records all carry its `max_timestamp` (the
    /// broker's clock when it was appended), as Kafka reads them.
    fn first_record_at_or_after(&self, position: u64, header: &BatchHeader, timestamp_ms: i64) -> Result<Option<i64>> {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            return Ok(Some(header.base_offset));
        }
        let codec = header.compression().map_err(|e| self.corrupt(position, e.to_string()))?;
        let mut buf = vec![0u8; header.total_bytes()];
        self.file()
            .and_then(|file| file.read_exact_at(&mut buf, position))
            .map_err(StorageError::io(&self.log_path))?;
        let first_at_or_after = |records: RecordIter<'_>| -> Result<Option<i64>> {
            for record in records {
                let record = record.map_err(|e| self.corrupt(position, e.to_string()))?;
                if record.timestamp_ms >= timestamp_ms {
                    return Ok(Some(record.offset));
                }
            }
            Ok(None)
        };
        let section = records_section(&buf);
        if codec == Compression::None {
            return first_at_or_after(RecordIter::new(section, header.base_offset, header.base_timestamp));
        }
        with_decompressor(|decompressor, records| {
            decompressor
                .decompress_into(codec, section, MAX_DECOMPRESSED_BATCH_BYTES, records)
                .map_err(|e| self.corrupt(position, e.to_string()))?;
            first_at_or_after(RecordIter::new(records, header.base_offset, header.base_timestamp))
        })
    }

    /// Drops every batch whose last offset is `>= offset` (a batch holding `offset` goes whole) and
    /// returns the segment reopened over what remains, its indexes rebuilt.
    pub fn truncated(&self, offset: i64, settings: &SegmentSettings, now_ms: i64) -> Result<Segment> {
        if let Some((cut, _)) = self.locate(offset, self.size())? {
            // The segment may be sealed (the truncation removed those after it): then it has no descriptor to write.
            let file = match self.held_file() {
                Ok(file) => file,
                Err(_) => Arc::new(
                    OpenOptions::new().write(true).open(&self.log_path).map_err(StorageError::io(&self.log_path))?,
                ),
            };
            file.set_len(cut).map_err(StorageError::io(&self.log_path))?;
            file.sync_all().map_err(StorageError::io(&self.log_path))?;
        }
        self.files.forget(&self.log_path);
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        // Keep a fallback to buffered writes this segment made.
        let settings = SegmentSettings { write_mode: self.write_mode(), ..settings.clone() };
        let mode = OpenMode {
            needs_scan: true,
            known_next_offset: None,
            epochs: EpochRule::NonDecreasing,
            previous_epoch: None,
            now_ms,
            settings: &settings,
        };
        Segment::open(dir, self.base_offset, &mode).map(|(segment, _)| segment)
    }

    /// Makes the segment read-only on disk: final time index entry, index files written from memory and
    /// mapped, all fsynced. Done when it rolls and on clean shutdown.
    pub fn seal(&self, cursor: &mut IndexCursor) -> Result<()> {
        if let Some(entry) = cursor.final_time_entry() {
            let mut time_index = write_lock(&self.time_index);
            if !time_index.is_full() && time_index.last().is_none_or(|last| last.offset < entry.offset) {
                time_index.append(entry)?;
            }
        }
        // Direct writes leave the file padded to a whole block; a sealed segment ends at its last batch.
        let is_padded = matches!(*lock(&self.io.writes), Writes::Direct(_));
        if is_padded {
            self.held_file()?.set_len(self.size()).map_err(StorageError::io(&self.log_path))?;
            lock(&self.io.recent).clear();
        }
        self.sync()?;
        write_lock(&self.offset_index).seal()?;
        write_lock(&self.time_index).seal()?;
        self.close_file();
        Ok(())
    }

    /// fsyncs the `.log` (data only: its size changes are covered by `fdatasync` too).
    ///
    /// Once one fails, every later call fails with the same reason without asking the disk again: Linux reports a
    /// writeback error to one fsync and may mark the pages it could not write clean, so a second fsync can succeed
    /// over data that never reached the disk (PostgreSQL's "fsyncgate").
    pub fn sync(&self) -> Result<()> {
        if let Some(reason) = self.io.sync_failure.get() {
            return Err(self.fsync_failed(reason));
        }
        let file = self.file().map_err(StorageError::io(&self.log_path))?;
        if let Err(err) = file.sync_data() {
            let reason = self.io.sync_failure.get_or_init(|| err.to_string());
            tracing::error!(path = %self.log_path.display(), error = %err, "fsync failed: the log takes no more appends until it is reopened");
            return Err(self.fsync_failed(reason));
        }
        Ok(())
    }

    /// Whether an fsync of the `.log` has failed: nothing appended since can be made durable.
    pub fn sync_failure(&self) -> Option<StorageError> {
        self.io.sync_failure.get().map(|reason| self.fsync_failed(reason))
    }

    fn fsync_failed(&self, reason: &str) -> StorageError {
        StorageError::FsyncFailed { path: self.log_path.clone(), reason: reason.to_owned() }
    }

    /// Makes the segment behave as if an fsync of it had failed with `reason`.
    #[cfg(any(test, feature = "fault-injection"))]
    pub(crate) fn fail_syncs(&self, reason: &str) {
        let _ = self.io.sync_failure.set(reason.to_owned());
    }

    /// Points the segment's own descriptor at `/dev/null`, where `fdatasync` fails (EINVAL): a real failed
    /// fsync for the tests of what follows one. Returns the descriptor it replaced, for [`Segment::restore_file`].
    #[cfg(test)]
    pub(crate) fn break_fsync(&self) -> Option<Arc<File>> {
        let null = File::open("/dev/null").expect("open /dev/null");
        write_lock(&self.held_file).replace(Arc::new(null))
    }

    #[cfg(test)]
    pub(crate) fn restore_file(&self, file: Option<Arc<File>>) {
        *write_lock(&self.held_file) = file;
    }

    /// Removes the segment's files. Readers holding it keep reading: the data stays until they drop it.
    pub fn delete_files(&self) -> Result<()> {
        self.files.forget(&self.log_path);
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = segment_path(self.log_path.parent().unwrap_or(Path::new(".")), self.base_offset, suffix);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path)(e)),
            }
        }
        Ok(())
    }
}

/// What a small synced append is padded with to the end of its page.
static PAGE_OF_ZEROS: [u8; direct::BLOCK_BYTES] = [0; direct::BLOCK_BYTES];

/// Most parts one `pwritev` takes (Linux's `IOV_MAX`).
const MAX_PARTS_PER_WRITE: usize = 1024;

/// Writes `parts` one after the other at `position`, in one `pwritev` where a loop of `pwrite`s took two calls a
/// batch (its patched head, then the rest): a lone small append is a latency-bound producer's, written on the
/// broker's async thread.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut position: u64) -> std::io::Result<()> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let mut slices: Vec<IoSlice<'_>> =
        parts.iter().filter(|part| !part.is_empty()).map(|part| IoSlice::new(part)).collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        let count = left.len().min(MAX_PARTS_PER_WRITE);
        let offset =
            libc::off_t::try_from(position).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and each points into a part borrowed for the
        // whole call; the kernel only reads them.
        let written = unsafe { libc::pwritev(file.as_raw_fd(), left.as_ptr().cast(), count as libc::c_int, offset) };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if written == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
        }
        position += written as u64;
        IoSlice::advance_slices(&mut left, written as usize);
    }
    Ok(())
}

// A poisoned lock means a thread panicked while holding it; the index is a cache of the log and
// every writer leaves it consistent between statements, so carrying on is safe.
fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More parts than one `pwritev` takes, empty ones among them, at an offset: the file holds them in order.
    #[test]
    fn a_vectored_write_lands_every_part_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parts");
        let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        let owned: Vec<Vec<u8>> = (0..2500u32).map(|i| vec![(i % 251) as u8; (i % 7) as usize]).collect();
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        write_all_vectored_at(&file, &parts, 10).unwrap();
        let mut expected = vec![0u8; 10];
        expected.extend(owned.concat());
        assert_eq!(fs::read(&path).unwrap(), expected);
    }
}
