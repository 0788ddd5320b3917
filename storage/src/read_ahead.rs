//! Read-ahead: several direct reads in flight ahead of a consumer that reads a segment from start to end.
//!
//! Why: a replay of data the tail cache no longer holds reads the device, and one fetch reads one span at a time:
//! the device waits for the consumer's round trip between two reads, and each stream has one read in flight.
//! With read-ahead the next spans of a sequentially read segment are already being read (into memory of our own,
//! with `O_DIRECT`, as every read of a directly written segment is) while the consumer handles the previous one.
//!
//! How: each directly written [`crate::segment::Segment`] has a [`Window`]: the spans ("chunks") read, or being
//! read, ahead of its reader, consecutive, each ending where a batch starts (a position its offset index names),
//! so a read that starts where the previous one ended is answered with a slice of one chunk: no copy. A read that
//! ends where the next begins is *sequential*; after it the window is topped up to [`CHUNKS_IN_FLIGHT_MAX`]
//! chunks. The reads run on a few threads of the node's [`ReadAheadPool`] (spawned on demand, gone when idle).
//!
//! What must stay true:
//! - Memory is bounded per window ([`CHUNKS_IN_FLIGHT_MAX`] chunks of about [`CHUNK_BYTES`], one chunk at least) and per node: each chunk is counted
//!   against the tail cache's limit ([`TailCache::reserve_read_ahead`], at most an eighth of it) from its issue
//!   until its last holder drops it, and a chunk that finds no room is not issued (the reader reads itself).
//! - A chunk holds bytes below the segment's published size at its issue: whole batches that never change. A
//!   read from it stops at the caller's limit (the high watermark) exactly as a device read does.
//! - A read elsewhere (a seek) drops the window; so does truncation or deletion, which drop the segment and its
//!   window with it (a chunk still being read is read from the descriptor it was issued with, and its answer is
//!   dropped unused). A window idle for [`IDLE_MS`] is dropped when another needs its room.
//! - A failed chunk read is never an answer: the reader reads the span itself, and reports that read's error.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::direct::{self, BLOCK_BYTES};
use crate::tail_cache::TailCache;

/// The span a chunk aims at. The virtual disk here reads big requests with many in flight fastest, 8 MiB chunks
/// two at a time replayed fastest of the shapes tried (docs/benchmarks.md), and a chunk serves a fetch of any size
/// as slices of it.
pub(crate) const CHUNK_BYTES: u64 = 8 << 20;
/// A chunk longer than this (one batch bigger than it) is not read ahead.
pub(crate) const CHUNK_BYTES_MAX: u64 = 16 << 20;
/// Chunks one window keeps read or in flight.
pub(crate) const CHUNKS_IN_FLIGHT_MAX: usize = 2;

/// How long a chunk aims to be, how many a window keeps, and how many threads read them: [`CHUNK_BYTES`],
/// [`CHUNKS_IN_FLIGHT_MAX`] and [`WORKERS_MAX`], or, for measuring others, `RILL_READ_AHEAD=<chunk
/// bytes>x<chunks>x<threads>` in the environment (read once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub chunk_bytes: u64,
    pub chunks: usize,
    pub workers: usize,
}

impl Shape {
    pub fn get() -> Shape {
        static SHAPE: std::sync::OnceLock<Shape> = std::sync::OnceLock::new();
        *SHAPE.get_or_init(|| {
            let default = Shape { chunk_bytes: CHUNK_BYTES, chunks: CHUNKS_IN_FLIGHT_MAX, workers: WORKERS_MAX };
            let Ok(text) = std::env::var("RILL_READ_AHEAD") else { return default };
            let mut fields = text.split('x').map(str::parse::<u64>);
            let mut next = || fields.next().and_then(Result::ok);
            let parsed = (next(), next(), next());
            match parsed {
                (Some(chunk_bytes), Some(chunks), Some(workers))
                    if (BLOCK_BYTES as u64..=CHUNK_BYTES_MAX).contains(&chunk_bytes)
                        && (1..=64).contains(&chunks)
                        && (1..=256).contains(&workers) =>
                {
                    Shape { chunk_bytes, chunks: chunks as usize, workers: workers as usize }
                }
                _ => {
                    tracing::warn!(value = %text, "RILL_READ_AHEAD is not <chunk bytes>x<chunks>x<threads>; using the default");
                    default
                }
            }
        })
    }

    /// What one window's chunks may add up to (more only for a single chunk).
    fn window_bytes_max(self) -> u64 {
        self.chunks as u64 * charge_for(self.chunk_bytes)
    }
}
/// A window unused this long gives its chunks up when another window needs the room.
pub(crate) const IDLE_MS: u64 = 1000;
/// Threads reading chunks, node-wide: the reads the device has in flight for read-ahead (two chunks for each of
/// eight sequential readers). The device here reads two to three times faster with 32–64 reads in flight than
/// with 8 (docs/benchmarks.md).
pub(crate) const WORKERS_MAX: usize = 16;
/// A worker with nothing to read for this long ends.
const WORKER_IDLE: Duration = Duration::from_secs(5);
/// How long a reader waits for a chunk before reading the span itself (a device that hangs hangs that read too;
/// this only keeps a lost wake-up from hanging the reader forever).
const CHUNK_WAIT: Duration = Duration::from_secs(30);

/// The node's read-ahead threads and counters; one per [`TailCache`].
#[derive(Debug, Default)]
pub(crate) struct ReadAheadPool {
    queue: Arc<JobQueue>,
    windows: Mutex<Vec<Weak<Mutex<Window>>>>,
    pub hits: AtomicU64,
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct JobQueue {
    state: Mutex<QueueState>,
    has_job: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    workers: usize,
    idle_workers: usize,
}

#[derive(Debug)]
struct Job {
    file: Arc<File>,
    position: u64,
    len: usize,
    slot: Arc<Slot>,
}

/// One chunk's read: pending until a worker fills it.
#[derive(Debug)]
struct Slot {
    fill: Mutex<Fill>,
    filled: Condvar,
    /// Released (uncounted from the tail cache) when the last holder drops the slot.
    charge: Charge,
}

#[derive(Debug)]
enum Fill {
    Pending,
    Ready(Bytes),
    Failed,
}

#[derive(Debug)]
struct Charge {
    cache: Weak<TailCache>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            cache.release_read_ahead(self.bytes);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every statement under these locks leaves the state consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ReadAheadPool {
    fn submit(&self, job: Job) {
        let mut state = lock(&self.queue.state);
        state.jobs.push_back(job);
        if state.idle_workers > 0 {
            drop(state);
            self.queue.has_job.notify_one();
            return;
        }
        if state.workers >= Shape::get().workers {
            return;
        }
        let queue = Arc::downgrade(&self.queue);
        let spawned = std::thread::Builder::new().name("rill-read-ahead".into()).spawn(move || work(&queue));
        match spawned {
            Ok(_) => state.workers += 1,
            // With no worker at all, nobody would fill the queued chunks: fail them, so their readers read.
            Err(e) if state.workers == 0 => {
                tracing::warn!(error = %e, "cannot start a read-ahead thread; reading without read-ahead");
                for job in state.jobs.drain(..) {
                    job.slot.set(Fill::Failed);
                }
            }
            Err(_) => {}
        }
    }

    fn register(&self, window: &Arc<Mutex<Window>>) {
        let mut windows = lock(&self.windows);
        windows.retain(|w| w.strong_count() > 0);
        windows.push(Arc::downgrade(window));
    }

    /// Drops the chunks of windows idle for [`IDLE_MS`] (not `except`, whose lock the caller holds).
    fn drop_idle(&self, except: &Arc<Mutex<Window>>) {
        let windows: Vec<Arc<Mutex<Window>>> = lock(&self.windows).iter().filter_map(Weak::upgrade).collect();
        let idle_since = Instant::now() - Duration::from_millis(IDLE_MS);
        for window in windows.iter().filter(|w| !Arc::ptr_eq(w, except)) {
            if let Ok(mut window) = window.try_lock() {
                if window.last_used < idle_since && !window.chunks.is_empty() {
                    window.clear();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A worker: reads queued chunks until none comes for [`WORKER_IDLE`] or the pool is gone.
fn work(queue: &Weak<JobQueue>) {
    loop {
        let Some(queue) = queue.upgrade() else { return };
        let job = {
            let mut state = lock(&queue.state);
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                state.idle_workers += 1;
                let (next, timeout) =
                    queue.has_job.wait_timeout(state, WORKER_IDLE).unwrap_or_else(|poisoned| poisoned.into_inner());
                state = next;
                state.idle_workers -= 1;
                if timeout.timed_out() && state.jobs.is_empty() {
                    state.workers -= 1;
                    return;
                }
            }
        };
        drop(queue);
        // Nobody waits for it any more (its window was dropped): skip the read.
        if Arc::strong_count(&job.slot) == 1 {
            continue;
        }
        let fill = match direct::read_at(&job.file, job.position, job.len) {
            Ok(bytes) => Fill::Ready(bytes),
            Err(e) => {
                tracing::debug!(error = %e, position = job.position, "a read-ahead read failed; its reader reads itself");
                Fill::Failed
            }
        };
        job.slot.set(fill);
    }
}

impl Slot {
    fn set(&self, fill: Fill) {
        *lock(&self.fill) = fill;
        self.filled.notify_all();
    }

    /// The chunk's bytes once read; `None` if the read failed (or took longer than [`CHUNK_WAIT`]).
    fn wait(&self) -> Option<Bytes> {
        let deadline = Instant::now() + CHUNK_WAIT;
        let mut fill = lock(&self.fill);
        loop {
            match &*fill {
                Fill::Ready(bytes) => return Some(bytes.clone()),
                Fill::Failed => return None,
                Fill::Pending => {}
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            fill = self.filled.wait_timeout(fill, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

#[derive(Debug)]
struct Chunk {
    start: u64,
    end: u64,
    slot: Arc<Slot>,
}

/// One segment's chunks read ahead of its reader, and where that reader's last read ended.
#[derive(Debug)]
pub(crate) struct Window {
    /// Consecutive: each starts where the previous ends.
    chunks: VecDeque<Chunk>,
    /// Where the last read ended: a read starting here is sequential.
    next_read: Option<u64>,
    last_used: Instant,
    is_registered: bool,
}

impl Default for Window {
    fn default() -> Self {
        Self { chunks: VecDeque::new(), next_read: None, last_used: Instant::now(), is_registered: false }
    }
}

/// What a read at a position finds in its window.
pub(crate) enum Lookup {
    /// The bytes from the position to the end of the chunk holding it.
    Hit(Bytes),
    /// No chunk holds it, but it follows the previous read: read it, then read ahead.
    Sequential,
    /// Elsewhere: read it; the window was dropped.
    Elsewhere,
}

/// What topping a window up needs to know of its segment.
pub(crate) struct Source<'a> {
    pub cache: &'a Arc<TailCache>,
    /// The segment's direct descriptor.
    pub file: Arc<File>,
    /// The segment's published size: nothing past it is read.
    pub size: u64,
    /// Where the chunk starting at a position should end: a batch start (or `size`) near `CHUNK_BYTES` past it.
    pub chunk_end: &'a dyn Fn(u64) -> u64,
}

impl Window {
    fn clear(&mut self) {
        self.chunks.clear();
    }

    /// The bytes from `position` to the end of the chunk that holds them, without changing the window: for a
    /// batch header. Waits for a chunk still being read. `None` if no chunk holds `position..position + len`.
    pub fn peek(&self, position: u64, len: usize) -> Option<Bytes> {
        let chunk = self.chunks.iter().find(|c| c.start <= position && position + len as u64 <= c.end)?;
        let bytes = chunk.slot.wait()?;
        let from = (position - chunk.start) as usize;
        (from + len <= bytes.len()).then(|| bytes.slice(from..))
    }

    /// A read at `position`: the chunks before it are done with; a read outside every chunk and not where the last
    /// one ended drops the window.
    pub fn look_up(&mut self, position: u64, pool: &ReadAheadPool) -> Lookup {
        self.last_used = Instant::now();
        while self.chunks.front().is_some_and(|c| c.end <= position) {
            self.chunks.pop_front();
        }
        let holding = self.chunks.front().filter(|c| c.start <= position).map(|c| (c.start, Arc::clone(&c.slot)));
        if let Some((start, slot)) = holding {
            let from = (position - start) as usize;
            if let Some(bytes) = slot.wait().filter(|bytes| from < bytes.len()) {
                pool.hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Hit(bytes.slice(from..));
            }
            // The chunk's read failed: the reader reads itself, and the window starts over after it.
            self.clear();
            return Lookup::Sequential;
        }
        if self.next_read == Some(position) {
            self.clear();
            return Lookup::Sequential;
        }
        if !self.chunks.is_empty() {
            pool.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.clear();
        Lookup::Elsewhere
    }

    /// A read that was not sequential ended at `end`: the next read is, if it starts there.
    pub fn after_read_elsewhere(&mut self, end: u64) {
        self.next_read = Some(end);
    }

    /// A sequential read (or one a chunk answered) ended at `end`: issue chunks until the window is full. `this`
    /// is the window itself, which the pool keeps a weak reference to (to drop it once idle).
    pub fn after_read(&mut self, end: u64, this: &Arc<Mutex<Window>>, source: &Source<'_>) {
        self.next_read = Some(end);
        let pool = source.cache.read_ahead_pool();
        if !self.is_registered {
            pool.register(this);
            self.is_registered = true;
        }
        let shape = Shape::get();
        let mut from = self.chunks.back().map_or(end, |c| c.end).max(end);
        while self.chunks.len() < shape.chunks && from < source.size {
            let chunk_end = (source.chunk_end)(from).min(source.size);
            let len = chunk_end.saturating_sub(from);
            let held: u64 = self.chunks.iter().map(|c| c.slot.charge.bytes).sum();
            let charge_bytes = charge_for(len);
            if len == 0 || len > CHUNK_BYTES_MAX || (held > 0 && held + charge_bytes > shape.window_bytes_max()) {
                break;
            }
            let is_reserved = source.cache.reserve_read_ahead(charge_bytes) || {
                pool.drop_idle(this);
                source.cache.reserve_read_ahead(charge_bytes)
            };
            if !is_reserved {
                break;
            }
            let slot = Arc::new(Slot {
                fill: Mutex::new(Fill::Pending),
                filled: Condvar::new(),
                charge: Charge { cache: Arc::downgrade(source.cache), bytes: charge_bytes },
            });
            pool.reads.fetch_add(1, Ordering::Relaxed);
            pool.read_bytes.fetch_add(len, Ordering::Relaxed);
            pool.submit(Job {
                file: Arc::clone(&source.file),
                position: from,
                len: len as usize,
                slot: Arc::clone(&slot),
            });
            self.chunks.push_back(Chunk { start: from, end: chunk_end, slot });
            from = chunk_end;
        }
    }
}

/// What a chunk of `len` bytes costs in memory: its aligned span (a block more at each end, at most) and the block
/// the buffer is aligned within.
fn charge_for(len: u64) -> u64 {
    len.next_multiple_of(BLOCK_BYTES as u64) + 2 * BLOCK_BYTES as u64
}

#[cfg(test)]
mod tests;
