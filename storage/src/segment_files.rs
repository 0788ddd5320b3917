//! [`SegmentFileCache`]: the bounded set of open `.log` descriptors of sealed segments.
//!
//! A sealed segment holds no descriptor of its own: a read opens its `.log` through this cache, which keeps at
//! most `capacity` of them open and closes the least recently used first. So a broker with thousands of
//! partitions, each with many segments, holds one descriptor per partition (its active segment) plus at most
//! `capacity`, however many segments exist: the open-file limit can be planned for. A file evicted while a read
//! is using it stays open until that read drops it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// How a cached descriptor reads: through the page cache, or with `O_DIRECT` (a directly written segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Buffered,
    Direct,
}

/// Open descriptors of sealed segments' `.log` files, at most `capacity` of them; shared by every log of a node.
#[derive(Debug)]
pub struct SegmentFileCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    files: HashMap<(PathBuf, Access), CachedFile>,
    /// Bumped by every use: the entry with the smallest `last_used` is the least recently used.
    clock: u64,
    /// Counts [`SegmentFileCache::forget`]s: a descriptor opened while one happened is returned but not kept, as
    /// it may be of the file the path named before a rename (log compaction's swap), which later readers of the
    /// path must not get.
    forgets: u64,
}

#[derive(Debug)]
struct CachedFile {
    file: Arc<File>,
    last_used: u64,
}

impl SegmentFileCache {
    /// A cache keeping at most `capacity` (at least 1) descriptors open.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), state: Mutex::default() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Descriptors open in the cache now.
    pub fn open_files(&self) -> usize {
        self.lock().files.len()
    }

    /// The cached descriptor of `path` for `access`, opened by `open` on a miss (outside the lock, so a slow open
    /// delays no other read); the least recently used one is closed to make room.
    pub(crate) fn get(
        &self,
        path: &Path,
        access: Access,
        open: impl FnOnce() -> std::io::Result<File>,
    ) -> std::io::Result<Arc<File>> {
        let key = (path.to_owned(), access);
        let forgets_before = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some(cached) = state.files.get_mut(&key) {
                cached.last_used = now;
                return Ok(Arc::clone(&cached.file));
            }
            state.forgets
        };
        let opened = Arc::new(open()?);
        let mut state = self.lock();
        if state.forgets != forgets_before {
            return Ok(opened);
        }
        state.clock += 1;
        let now = state.clock;
        if let Some(cached) = state.files.get_mut(&key) {
            // Another reader opened it meanwhile: keep one, close ours.
            cached.last_used = now;
            return Ok(Arc::clone(&cached.file));
        }
        while state.files.len() >= self.capacity {
            let oldest = state.files.iter().min_by_key(|(_, cached)| cached.last_used).map(|(key, _)| key.clone());
            let Some(oldest) = oldest else { break };
            state.files.remove(&oldest);
        }
        state.files.insert(key, CachedFile { file: Arc::clone(&opened), last_used: now });
        Ok(opened)
    }

    /// Closes the cached descriptors of `path` (its segment was deleted, truncated or became active again).
    pub(crate) fn forget(&self, path: &Path) {
        let mut state = self.lock();
        state.forgets += 1;
        state.files.retain(|(cached, _), _| cached != path);
    }

    /// Closes the cached descriptors of every file under `dir` (its log was deleted): a deleted file's space is
    /// freed only once its last descriptor closes, and a log created again at the same path must not read the old
    /// files through them.
    pub(crate) fn forget_dir(&self, dir: &Path) {
        let mut state = self.lock();
        state.forgets += 1;
        state.files.retain(|(cached, _), _| !cached.starts_with(dir));
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Every change leaves the map consistent between statements.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_descriptors_and_closes_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("{i}.log"))).collect();
        for path in &paths {
            std::fs::write(path, b"x").unwrap();
        }
        let cache = SegmentFileCache::new(2);
        let opens = std::cell::Cell::new(0);
        let get = |path: &Path| {
            cache
                .get(path, Access::Buffered, || {
                    opens.set(opens.get() + 1);
                    File::open(path)
                })
                .unwrap()
        };
        get(&paths[0]);
        get(&paths[1]);
        get(&paths[0]); // 1 is now the least recently used
        get(&paths[2]);
        assert_eq!(cache.open_files(), 2);
        assert_eq!(opens.get(), 3);
        get(&paths[0]);
        assert_eq!(opens.get(), 3, "0 stayed cached");
        get(&paths[1]);
        assert_eq!(opens.get(), 4, "1 was closed to make room for 2");
        cache.forget(&paths[1]);
        assert_eq!(cache.open_files(), 1);
    }
}
