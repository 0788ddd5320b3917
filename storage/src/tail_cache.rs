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
//! - The bytes counted are the buffers' capacities, so the limit bounds memory, not just payload.
//! - One lock, held for a map look-up or an insert, never across I/O; counters are relaxed atomics.
//! - Evicted buffers that no reader still holds are reused for the next appends (a few, bounded): a buffer the
//!   allocator hands out fresh costs a page fault per 4 KiB, and on this VM that made a 1 KB produce 38% slower
//!   (docs/benchmarks.md).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::BatchHeader;

/// A node's tail cache. Logs take a [`LogTail`] of it with [`TailCache::for_log`].
#[derive(Debug)]
pub struct TailCache {
    limit_bytes: u64,
    state: Mutex<CacheState>,
    next_log_id: AtomicU64,
    counters: Counters,
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
}

#[derive(Debug, Default)]
struct CacheState {
    used_bytes: u64,
    entries: u64,
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
}

#[derive(Debug)]
struct Entry {
    id: u64,
    next_offset: i64,
    /// The whole buffer, held whole so it can be reused once no reader holds a slice of it.
    buffer: Bytes,
    /// Where the batches lie in `buffer`.
    batches: std::ops::Range<usize>,
    /// The capacity of `buffer`: what the entry counts against the limit.
    charged_bytes: u64,
}

/// Buffers are allocated in multiples of this, so that one freed by an eviction fits the next append of about
/// the same size.
const BUFFER_GRANULE_BYTES: usize = 64 << 10;
const RECYCLED_BUFFERS_MAX: usize = 16;
const RECYCLED_BYTES_MAX: usize = 64 << 20;

impl TailCache {
    /// A cache holding at most `limit_bytes` of batches; `None` for 0 (no cache).
    pub fn new(limit_bytes: u64) -> Option<Arc<Self>> {
        (limit_bytes > 0).then(|| {
            Arc::new(Self {
                limit_bytes,
                state: Mutex::default(),
                next_log_id: AtomicU64::new(0),
                counters: Counters::default(),
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
        let (used_bytes, entries) = {
            let state = self.lock();
            (state.used_bytes, state.entries)
        };
        TailCacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            hit_bytes: self.counters.hit_bytes.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            used_bytes,
            limit_bytes: self.limit_bytes,
            entries,
        }
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

    fn insert(
        &self,
        log_id: u64,
        base_offset: i64,
        next_offset: i64,
        buffer: Bytes,
        charged_bytes: u64,
        batches: std::ops::Range<usize>,
    ) {
        if batches.is_empty() || charged_bytes > self.limit_bytes {
            return;
        }
        let mut state = self.lock();
        let state = &mut *state;
        let id = state.next_entry_id;
        state.next_entry_id += 1;
        let entry = Entry { id, next_offset, buffer, batches, charged_bytes };
        if let Some(old) = state.logs.entry(log_id).or_default().insert(base_offset, entry) {
            state.forget(old);
        }
        state.used_bytes += charged_bytes;
        state.entries += 1;
        state.order.push_back((log_id, base_offset, id));
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
    /// Uncounts a removed entry, and keeps its buffer for reuse if no reader holds a slice of it and there is room.
    fn forget(&mut self, entry: Entry) {
        self.used_bytes -= entry.charged_bytes;
        self.entries -= 1;
        if self.recycled.len() >= RECYCLED_BUFFERS_MAX
            || self.recycled_bytes + entry.charged_bytes as usize > RECYCLED_BYTES_MAX
        {
            return;
        }
        if let Ok(mut buffer) = entry.buffer.try_into_mut() {
            buffer.clear();
            self.recycled_bytes += buffer.capacity();
            self.recycled.push(buffer);
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
        self.forget(entry);
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
            self.forget(entry);
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
}

impl LogTail {
    /// An empty buffer of at least `len` bytes for [`LogTail::insert`].
    pub(crate) fn buffer(&self, len: usize) -> BytesMut {
        self.cache.buffer(len)
    }

    /// Keeps `written`, the whole batches `[base_offset, next_offset)` as just written to the log.
    pub(crate) fn insert(&self, base_offset: i64, next_offset: i64, written: BytesMut) {
        let (charged, len) = (written.capacity() as u64, written.len());
        self.cache.insert(self.log_id, base_offset, next_offset, written.freeze(), charged, 0..len);
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
        self.cache.insert(self.log_id, base_offset, next_offset, buffer, capacity as u64, batches);
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

    /// Forgets everything of this log (closed or deleted).
    pub(crate) fn clear(&self) {
        self.cache.lock().remove_where(self.log_id, |_, _| true);
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
