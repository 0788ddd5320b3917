//! [`TailCache`]: the batches appended last, in memory, shared by every log of a node.
//!
//! Why: with direct writes (the default) appended bytes never enter the page cache, so a consumer at the tail
//! or a replay of what was just written would read the device. The cache keeps each append's bytes, exactly as
//! the segment holds them, and a read it covers is answered with a `Bytes` slice of them: no device read and no
//! copy of record bytes on the way out.
//!
//! What must stay true:
//! - An entry holds whole consecutive batches `[base_offset, next_offset)` byte-identical to the log's. Every
//!   change that removes bytes from a log (truncation, retention, deletion, close) removes the entries that
//!   cover them before the change is published, so a read never returns bytes the log no longer holds. Reads
//!   stay bounded by the caller's limit (the high watermark), exactly as disk reads are.
//! - A log's entries need not reach back to its start nor follow each other without a gap: a log caches from its
//!   end at its open, and a replicated log only while its node leads it (`Log::stop_caching_appends`). A read
//!   starts in the entry holding its offset (else it misses and goes to the segments) and joins only an entry
//!   that starts where the previous one ends, so it never skips bytes the cache does not hold.
//! - The bytes held never exceed `limit_bytes`: an insert evicts the oldest entries of any log first, and an
//!   entry bigger than the limit is not kept. Slices handed out outlive eviction (a slow consumer's response
//!   still being written pins its entry's memory until it is written or its connection closes); the cache
//!   itself no longer counts or holds them.
//! - The bytes counted are what the cache pins, so the limit bounds memory, not just payload. A small append (a
//!   write through the page cache, under `direct_min_batch_bytes`) is copied into its log's open *chunk*, after
//!   the previous one: it costs the cache its own length, not a buffer of its own. A chunk is counted whole
//!   from its allocation until it is retired (full, or its log idle) and its last entry is gone, because until
//!   then its memory is pinned; its entries count nothing more. A direct write's staging buffer (an append of
//!   `direct_min_batch_bytes` and more) is an entry's own buffer, counted at its capacity.
//! - A log's chunk starts at [`CHUNK_BYTES_MIN`] and doubles with each chunk it fills, up to [`CHUNK_BYTES_MAX`]
//!   (and a sixteenth of the limit); a chunk whose entries are all gone is dropped, so an idle log pins none.
//!   What may pass the limit: the chunks taken by appends in progress, one per writing log.
//! - One lock, held for a map look-up or an insert, never across I/O or a copy; counters are relaxed atomics.
//! - Evicted direct-write buffers that no reader still holds are reused for the next direct writes (a few,
//!   bounded): a buffer the allocator hands out fresh costs a page fault per 4 KiB, and on this VM that made a
//!   1 KB produce 38% slower (docs/benchmarks.md).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::BatchHeader;

use crate::read_ahead::ReadAheadPool;

/// A node's tail cache. Logs take a [`LogTail`] of it with [`TailCache::for_log`].
#[derive(Debug)]
pub struct TailCache {
    limit_bytes: u64,
    state: Mutex<CacheState>,
    next_log_id: AtomicU64,
    counters: Counters,
    /// Reads ahead of sequential readers of the segments (`read_ahead.rs`), their memory counted here.
    read_ahead: ReadAheadPool,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    hit_bytes: AtomicU64,
    evictions: AtomicU64,
}

/// The cache's counters since it was made, and what it holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that went to the segment files.
    pub misses: u64,
    /// Bytes of batches answered from memory.
    pub hit_bytes: u64,
    /// Entries dropped to make room (not those removed because the log dropped their bytes).
    pub evictions: u64,
    pub used_bytes: u64,
    pub limit_bytes: u64,
    pub entries: u64,
    /// Of `used_bytes`: chunks read ahead of sequential readers of the segments (`read_ahead.rs`).
    pub read_ahead_bytes: u64,
    /// Reads answered from a chunk read ahead (not counted in `hits`: they read the device, earlier).
    pub read_ahead_hits: u64,
    /// Chunks read ahead, and their bytes.
    pub read_ahead_reads: u64,
    pub read_ahead_read_bytes: u64,
}

#[derive(Debug, Default)]
struct CacheState {
    used_bytes: u64,
    entries: u64,
    /// Of `used_bytes`: chunks read ahead, from their issue until their last holder drops them.
    read_ahead_bytes: u64,
    /// Per log, entries by base offset.
    logs: HashMap<u64, BTreeMap<i64, Entry>>,
    /// Every entry inserted, oldest first: (log, base offset, entry id). An entry removed by its log stays here
    /// until it reaches the front or the queue is compacted; the id tells it from a later entry at the same base.
    order: VecDeque<(u64, i64, u64)>,
    next_entry_id: u64,
    /// Emptied buffers of removed entries, for the next appends; at most [`RECYCLED_BUFFERS_MAX`] and
    /// [`RECYCLED_BYTES_MAX`], not counted in `used_bytes`.
    recycled: Vec<BytesMut>,
    recycled_bytes: usize,
    /// Per log, the chunk its next small append is copied into; absent while an append has it, or the log
    /// has none.
    open_chunks: HashMap<u64, OpenChunk>,
    /// Every chunk counted in `used_bytes`, by id.
    chunks: HashMap<u64, ChunkCharge>,
    next_chunk_id: u64,
}

/// Memory a log's small appends are copied into one after the other; each is split off as its entry's bytes.
#[derive(Debug)]
pub(crate) struct OpenChunk {
    id: u64,
    /// The chunk's room left: empty, its capacity what the next appends may fill without a reallocation.
    rest: BytesMut,
    /// The whole chunk's size, for the next chunk's.
    bytes: usize,
}

#[derive(Debug)]
struct ChunkCharge {
    bytes: u64,
    /// Entries of the cache that lie in the chunk.
    entries: u64,
    /// Whether its log may still append into it (it is in `open_chunks`, or an append has it).
    is_open: bool,
}

/// What an entry counts against the limit.
#[derive(Debug, Clone, Copy)]
enum Charge {
    /// Its own buffer, of this many bytes.
    Own(u64),
    /// Its place in a chunk, which is counted whole (by id) for as long as any entry lies in it.
    Chunk(u64),
}

#[derive(Debug)]
struct Entry {
    id: u64,
    next_offset: i64,
    /// The whole buffer, held whole so it can be reused once no reader holds a slice of it.
    buffer: Bytes,
    /// Where the batches lie in `buffer`.
    batches: std::ops::Range<usize>,
    charge: Charge,
}

/// Read-ahead may hold at most this fraction (1/n) of the limit.
const READ_AHEAD_SHARE: u64 = 8;

/// Buffers are allocated in multiples of this, so that one freed by an eviction fits the next append of about
/// the same size.
const BUFFER_GRANULE_BYTES: usize = 64 << 10;
const RECYCLED_BUFFERS_MAX: usize = 16;
const RECYCLED_BYTES_MAX: usize = 64 << 20;

/// A log's first chunk; each next one doubles, up to [`CHUNK_BYTES_MAX`].
pub(crate) const CHUNK_BYTES_MIN: usize = 64 << 10;
/// The biggest chunk. An append of more than a quarter of it gets a buffer of its own: chunks stay mostly full.
pub(crate) const CHUNK_BYTES_MAX: usize = 1 << 20;

impl TailCache {
    /// A cache holding at most `limit_bytes` of batches; `None` for 0 (no cache).
    pub fn new(limit_bytes: u64) -> Option<Arc<Self>> {
        (limit_bytes > 0).then(|| {
            Arc::new(Self {
                limit_bytes,
                state: Mutex::default(),
                next_log_id: AtomicU64::new(0),
                counters: Counters::default(),
                read_ahead: ReadAheadPool::default(),
            })
        })
    }

    /// A handle for one log: its entries are its own, removed when the handle is dropped.
    pub fn for_log(self: &Arc<Self>) -> LogTail {
        LogTail {
            cache: Arc::clone(self),
            log_id: self.next_log_id.fetch_add(1, Ordering::Relaxed),
            counters: Counters::default(),
        }
    }

    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    pub fn stats(&self) -> TailCacheStats {
        let (used_bytes, entries, read_ahead_bytes) = {
            let state = self.lock();
            (state.used_bytes, state.entries, state.read_ahead_bytes)
        };
        TailCacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            hit_bytes: self.counters.hit_bytes.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            used_bytes,
            limit_bytes: self.limit_bytes,
            entries,
            read_ahead_bytes,
            read_ahead_hits: self.read_ahead.hits.load(Ordering::Relaxed),
            read_ahead_reads: self.read_ahead.reads.load(Ordering::Relaxed),
            read_ahead_read_bytes: self.read_ahead.read_bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn read_ahead_pool(&self) -> &ReadAheadPool {
        &self.read_ahead
    }

    /// Counts `bytes` of a chunk read ahead against the limit, evicting the oldest entries to make room; false
    /// (nothing counted) when read-ahead already holds an eighth of the limit: the cache stays mostly a cache.
    pub(crate) fn reserve_read_ahead(&self, bytes: u64) -> bool {
        let mut state = self.lock();
        if state.read_ahead_bytes + bytes > self.limit_bytes / READ_AHEAD_SHARE {
            return false;
        }
        state.read_ahead_bytes += bytes;
        state.used_bytes += bytes;
        self.evict_over_limit(&mut state);
        true
    }

    /// Uncounts a chunk [`TailCache::reserve_read_ahead`] counted.
    pub(crate) fn release_read_ahead(&self, bytes: u64) {
        let mut state = self.lock();
        state.read_ahead_bytes -= bytes;
        state.used_bytes -= bytes;
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Every statement under this lock leaves the state consistent, so a poisoned lock's state is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An empty buffer of at least `len` bytes: a recycled one if one fits, else a new one.
    fn buffer(&self, len: usize) -> BytesMut {
        {
            let mut state = self.lock();
            if let Some(at) = state.recycled.iter().position(|b| b.capacity() >= len) {
                let buffer = state.recycled.swap_remove(at);
                state.recycled_bytes -= buffer.capacity();
                return buffer;
            }
        }
        BytesMut::with_capacity(len.next_multiple_of(BUFFER_GRANULE_BYTES))
    }

    /// Keeps an entry. With `chunk` (the open chunk `buffer` was split from, given back) the entry counts against
    /// that chunk; otherwise it counts `buffer`'s `capacity`.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        log_id: u64,
        base_offset: i64,
        next_offset: i64,
        buffer: Bytes,
        capacity: usize,
        batches: std::ops::Range<usize>,
        chunk: Option<OpenChunk>,
    ) {
        let charge = match &chunk {
            Some(chunk) => Charge::Chunk(chunk.id),
            None => Charge::Own(capacity as u64),
        };
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(chunk) = chunk {
            if let Some(replaced) = state.open_chunks.insert(log_id, chunk) {
                state.retire(replaced);
            }
        }
        let is_too_big = matches!(charge, Charge::Own(bytes) if bytes > self.limit_bytes);
        if batches.is_empty() || is_too_big {
            return;
        }
        let id = state.next_entry_id;
        state.next_entry_id += 1;
        let entry = Entry { id, next_offset, buffer, batches, charge };
        match charge {
            Charge::Own(bytes) => state.used_bytes += bytes,
            Charge::Chunk(chunk) => state.chunks.get_mut(&chunk).expect("an open chunk is counted").entries += 1,
        }
        state.entries += 1;
        if let Some(old) = state.logs.entry(log_id).or_default().insert(base_offset, entry) {
            state.forget(log_id, old);
        }
        state.order.push_back((log_id, base_offset, id));
        self.evict_over_limit(state);
    }

    /// Removes the oldest entries until the bytes counted are within the limit, or none is left.
    fn evict_over_limit(&self, state: &mut CacheState) {
        while state.used_bytes > self.limit_bytes {
            let Some((victim_log, victim_base, victim_id)) = state.order.pop_front() else { break };
            if state.remove_if(victim_log, victim_base, victim_id) {
                self.counters.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Removed entries leave their place in the queue behind: keep those from outgrowing the live ones.
        if state.order.len() as u64 > 2 * state.entries + 1024 {
            let logs = &state.logs;
            state.order.retain(|(log, base, id)| logs.get(log).and_then(|m| m.get(base)).is_some_and(|e| e.id == *id));
        }
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` (but the whole first batch), none at or
    /// past `limit_offset`. `None` when no entry holds `offset`.
    ///
    /// The answer is a slice of the entry holding `offset` when that gives at least [`COALESCE_BELOW_BYTES`]
    /// (or all there is, or `max_bytes`): no copy. A smaller slice, the end of an entry, is joined with the
    /// entries after it into one new buffer: small appends (a producer that sends record by record) would
    /// otherwise answer a fetch with a few hundred bytes where the segment read would give a megabyte.
    fn read(&self, log_id: u64, offset: i64, max_bytes: usize, limit_offset: i64) -> Option<Bytes> {
        let (entry_bytes, entry_end) = self.entry_at(log_id, offset)?;
        let first = whole_batches(&entry_bytes, Some(offset), max_bytes, limit_offset)?;
        let stopped_early = first.is_cut || first.end - first.start >= max_bytes;
        let slice = entry_bytes.slice(first.start..first.end);
        if stopped_early || slice.len() >= COALESCE_BELOW_BYTES {
            return Some(slice);
        }
        // An entry removed meanwhile (truncation) ends the answer there, as a concurrent segment read would.
        let Some(mut following) = self.entry_at(log_id, entry_end) else { return Some(slice) };
        let mut joined = Vec::with_capacity(max_bytes.min(COALESCE_MAX_BYTES));
        joined.extend_from_slice(&slice);
        let mut next = entry_end;
        while joined.len() < max_bytes && joined.len() < COALESCE_MAX_BYTES {
            let (bytes, end) = following;
            let Some(more) = whole_batches(&bytes, Some(next), max_bytes - joined.len(), limit_offset) else { break };
            // The first batch of an entry is taken whole only if it fits: `max_bytes` binds after the first batch.
            if more.end == more.start || joined.len() + (more.end - more.start) > max_bytes {
                break;
            }
            joined.extend_from_slice(&bytes[more.start..more.end]);
            if more.is_cut {
                break;
            }
            next = end;
            match self.entry_at(log_id, next) {
                Some(entry) => following = entry,
                None => break,
            }
        }
        Some(Bytes::from(joined))
    }

    /// `log_id`'s open chunk if it has room for `len` more bytes, else a new one (the old one retired, the new
    /// one counted and room made for it). `None` when a chunk that size would not fit the limit.
    fn take_chunk(&self, log_id: u64, len: usize) -> Option<OpenChunk> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut bytes = CHUNK_BYTES_MIN;
        if let Some(old) = state.open_chunks.remove(&log_id) {
            if old.rest.capacity() >= len {
                return Some(old);
            }
            bytes = (old.bytes * 2).min(CHUNK_BYTES_MAX);
            state.retire(old);
        }
        let bytes = bytes.min(self.limit_bytes as usize / 16).max(len);
        if bytes as u64 > self.limit_bytes {
            return None;
        }
        let rest = BytesMut::with_capacity(bytes);
        let id = state.next_chunk_id;
        state.next_chunk_id += 1;
        let charged = rest.capacity() as u64;
        state.chunks.insert(id, ChunkCharge { bytes: charged, entries: 0, is_open: true });
        state.used_bytes += charged;
        self.evict_over_limit(state);
        Some(OpenChunk { id, rest, bytes })
    }

    /// The bytes of the entry of `log_id` holding `offset`, and the offset after it.
    fn entry_at(&self, log_id: u64, offset: i64) -> Option<(Bytes, i64)> {
        let state = self.lock();
        let (_, entry) = state.logs.get(&log_id)?.range(..=offset).next_back()?;
        (entry.next_offset > offset).then(|| (entry.buffer.slice(entry.batches.clone()), entry.next_offset))
    }
}

/// Answers that start with a slice this small are joined with the next entries (see [`TailCache::read`]).
const COALESCE_BELOW_BYTES: usize = 64 << 10;
/// The most a joined answer copies.
const COALESCE_MAX_BYTES: usize = 1 << 20;

/// Where whole batches lie in one entry's bytes.
struct Span {
    start: usize,
    end: usize,
    /// Stopped before the entry's end: `max_bytes` or the limit offset reached.
    is_cut: bool,
}

/// The whole batches of `bytes` from the one holding `from_offset` (from the first when `None`), at most `room`
/// bytes but always the first one, none at or past `limit_offset`. `None` if no batch holds `from_offset` below
/// the limit.
fn whole_batches(bytes: &[u8], from_offset: Option<i64>, room: usize, limit_offset: i64) -> Option<Span> {
    let mut start = None;
    let mut end = 0;
    let mut position = 0;
    while position + HEADER_BYTES <= bytes.len() {
        // Entries are whole batches the log validated: a header that does not parse is a bug, and the segment read
        // that the miss leads to reports the bytes' state properly.
        let header = BatchHeader::parse(&bytes[position..]).ok()?;
        let batch_end = position + header.total_bytes();
        if batch_end > bytes.len() || header.base_offset >= limit_offset {
            return start.map(|start| Span { start, end, is_cut: true });
        }
        match start {
            None if from_offset.is_none_or(|offset| header.last_offset() >= offset) => {
                start = Some(position);
                end = batch_end;
            }
            None => {}
            Some(first) if batch_end - first <= room => end = batch_end,
            Some(start) => return Some(Span { start, end, is_cut: true }),
        }
        position = batch_end;
    }
    start.map(|start| Span { start, end, is_cut: false })
}

impl CacheState {
    /// Uncounts a removed entry of `log_id`. Its own buffer is kept for reuse if no reader holds a slice of it and
    /// there is room; the last entry of a chunk uncounts the chunk, and drops it if it was its log's open one (the
    /// log has appended nothing since the cache turned over: it is idle, or it was truncated or closed).
    fn forget(&mut self, log_id: u64, entry: Entry) {
        self.entries -= 1;
        let charged_bytes = match entry.charge {
            Charge::Own(bytes) => bytes,
            Charge::Chunk(id) => {
                let Some(chunk) = self.chunks.get_mut(&id) else { return };
                chunk.entries -= 1;
                if chunk.entries == 0 {
                    if chunk.is_open && self.open_chunks.get(&log_id).is_some_and(|open| open.id == id) {
                        self.open_chunks.remove(&log_id);
                        chunk.is_open = false;
                    }
                    if !chunk.is_open {
                        self.used_bytes -= chunk.bytes;
                        self.chunks.remove(&id);
                    }
                }
                return;
            }
        };
        self.used_bytes -= charged_bytes;
        if self.recycled.len() >= RECYCLED_BUFFERS_MAX
            || self.recycled_bytes + charged_bytes as usize > RECYCLED_BYTES_MAX
        {
            return;
        }
        if let Ok(mut buffer) = entry.buffer.try_into_mut() {
            buffer.clear();
            self.recycled_bytes += buffer.capacity();
            self.recycled.push(buffer);
        }
    }

    /// No more appends go into `chunk`: it is uncounted once no entry lies in it (now, or when its last goes).
    fn retire(&mut self, chunk: OpenChunk) {
        let Some(charge) = self.chunks.get_mut(&chunk.id) else { return };
        charge.is_open = false;
        if charge.entries == 0 {
            self.used_bytes -= charge.bytes;
            self.chunks.remove(&chunk.id);
        }
    }

    /// Removes the entry at `base_offset` of `log_id` if it is still entry `id`; true if it was.
    fn remove_if(&mut self, log_id: u64, base_offset: i64, id: u64) -> bool {
        let Some(entries) = self.logs.get_mut(&log_id) else { return false };
        if entries.get(&base_offset).is_none_or(|e| e.id != id) {
            return false;
        }
        let entry = entries.remove(&base_offset).expect("just found");
        if entries.is_empty() {
            self.logs.remove(&log_id);
        }
        self.forget(log_id, entry);
        true
    }

    /// Removes the entries of `log_id` for which `doomed` holds.
    fn remove_where(&mut self, log_id: u64, mut doomed: impl FnMut(i64, &Entry) -> bool) {
        let Some(entries) = self.logs.get_mut(&log_id) else { return };
        let bases: Vec<i64> = entries.iter().filter(|(base, entry)| doomed(**base, entry)).map(|(b, _)| *b).collect();
        let removed: Vec<Entry> = bases.iter().filter_map(|base| entries.remove(base)).collect();
        if entries.is_empty() {
            self.logs.remove(&log_id);
        }
        for entry in removed {
            self.forget(log_id, entry);
        }
    }
}

/// One log's part of a [`TailCache`]: what the log inserts on append and removes when it drops bytes.
#[derive(Debug)]
pub struct LogTail {
    cache: Arc<TailCache>,
    log_id: u64,
    /// This log's reads: the node-wide counters, per partition.
    counters: Counters,
}

/// One log's reads through the cache since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogTailStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_bytes: u64,
    /// Of `misses`: reads the segments answered from chunks read ahead (`read_ahead.rs`).
    pub read_ahead_hits: u64,
}

impl LogTail {
    /// An empty buffer of at least `len` bytes for [`LogTail::insert`].
    pub(crate) fn buffer(&self, len: usize) -> BytesMut {
        self.cache.buffer(len)
    }

    /// Keeps a copy of the whole batches `[base_offset, next_offset)` as just written to the log, `len` bytes that
    /// `copy` appends to the buffer it is given. A small append goes into the log's open chunk (see the module's
    /// doc), a bigger one into a buffer of its own.
    pub(crate) fn insert_copy(&self, base_offset: i64, next_offset: i64, len: usize, copy: impl FnOnce(&mut BytesMut)) {
        if len > CHUNK_BYTES_MAX / 4 {
            let mut written = BytesMut::with_capacity(len);
            copy(&mut written);
            let capacity = written.capacity();
            self.cache.insert(self.log_id, base_offset, next_offset, written.freeze(), capacity, 0..len, None);
            return;
        }
        let Some(mut chunk) = self.cache.take_chunk(self.log_id, len) else { return };
        let room = chunk.rest.capacity();
        copy(&mut chunk.rest);
        // `copy` writing other than `len` bytes would be a bug; more than the room would have reallocated `rest`
        // into memory the chunk's count does not cover. Neither is kept.
        if chunk.rest.len() != len || room < len {
            chunk.rest.clear();
            self.cache.lock().retire(chunk);
            return;
        }
        let written = chunk.rest.split_to(len).freeze();
        self.cache.insert(self.log_id, base_offset, next_offset, written, len, 0..len, Some(chunk));
    }

    /// Keeps `buffer[batches]`, the whole batches `[base_offset, next_offset)` as just written to the log, where
    /// `buffer` is a buffer of this cache's, of `capacity` bytes, the direct write was staged in.
    pub(crate) fn insert_kept(
        &self,
        base_offset: i64,
        next_offset: i64,
        buffer: Bytes,
        capacity: usize,
        batches: std::ops::Range<usize>,
    ) {
        self.cache.insert(self.log_id, base_offset, next_offset, buffer, capacity, batches, None);
    }

    /// See [`TailCache::read`]; counts a hit, and a miss when `counts_miss`.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize, limit_offset: i64, counts_miss: bool) -> Option<Bytes> {
        let read = self.cache.read(self.log_id, offset, max_bytes, limit_offset);
        for counters in [&self.cache.counters, &self.counters] {
            match &read {
                Some(bytes) => {
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                    counters.hit_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                None if counts_miss => {
                    counters.misses.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
        }
        read
    }

    pub fn stats(&self) -> LogTailStats {
        LogTailStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            hit_bytes: self.counters.hit_bytes.load(Ordering::Relaxed),
            read_ahead_hits: 0,
        }
    }

    /// Forgets every batch at or past `end_offset` (the log was truncated there): an entry that straddles it
    /// goes whole.
    pub(crate) fn remove_from(&self, end_offset: i64) {
        self.cache.lock().remove_where(self.log_id, |_, entry| entry.next_offset > end_offset);
    }

    /// Forgets the entries wholly below `start_offset` (retention moved the log start there).
    pub(crate) fn remove_below(&self, start_offset: i64) {
        self.cache.lock().remove_where(self.log_id, |_, entry| entry.next_offset <= start_offset);
    }

    /// Forgets every entry holding a batch below `end_offset` (log compaction rewrote the segments there): an
    /// entry that straddles it goes whole.
    pub(crate) fn remove_starting_below(&self, end_offset: i64) {
        self.cache.lock().remove_where(self.log_id, |base, _| base < end_offset);
    }

    /// Forgets everything of this log (closed or deleted), and drops its open chunk.
    pub(crate) fn clear(&self) {
        let mut state = self.cache.lock();
        state.remove_where(self.log_id, |_, _| true);
        if let Some(chunk) = state.open_chunks.remove(&self.log_id) {
            state.retire(chunk);
        }
    }

    pub fn cache(&self) -> &Arc<TailCache> {
        &self.cache
    }
}

impl Drop for LogTail {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests;
