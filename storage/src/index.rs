//! The sparse indexes beside each segment: `.index` maps offsets to file positions, `.timeindex` maps
//! timestamps to offsets. Both are Kafka's layouts: fixed-size big-endian entries, no header, offsets stored
//! relative to the segment's base offset.
//!
//! An active segment's index lives in memory and reaches its file only when the segment is sealed (on a roll
//! or a clean shutdown): after a crash the active segment is rescanned and its indexes rebuilt anyway, so a
//! file kept up to date would be a copy nobody reads, and it would cost a descriptor per index per partition.
//! A sealed index is mapped read-only and its descriptor closed at once: the mapping keeps the pages, and an
//! idle partition holds no index descriptor at all. Index files are a cache of what the `.log` holds: loading
//! checks that the entries are plausible, and the caller rebuilds from the log when they are not.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::{Result, StorageError};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const BYTES: usize;
    fn decode(buf: &[u8], base_offset: i64) -> Self;
    fn encode(&self, buf: &mut [u8], base_offset: i64);
    /// What lookups search by: the offset, or the timestamp.
    fn key(&self) -> i64;
    fn offset(&self) -> i64;
}

/// `.index` entry: the batch starting at `offset` begins `position` bytes into the `.log`.
/// On disk: relative offset (u32), position (u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: i64,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;
    fn decode(buf: &[u8], base_offset: i64) -> Self {
        Self { offset: base_offset + i64::from(u32_at(buf, 0)), position: u32_at(buf, 4) }
    }
    fn encode(&self, buf: &mut [u8], base_offset: i64) {
        buf[0..4].copy_from_slice(&((self.offset - base_offset) as u32).to_be_bytes());
        buf[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn key(&self) -> i64 {
        self.offset
    }
    fn offset(&self) -> i64 {
        self.offset
    }
}

/// `.timeindex` entry: every batch before the one starting at `offset`, and that batch itself, holds
/// only timestamps `<= timestamp`. On disk: timestamp (i64), relative offset (u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub offset: i64,
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;
    fn decode(buf: &[u8], base_offset: i64) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[0..8]);
        Self { timestamp: i64::from_be_bytes(ts), offset: base_offset + i64::from(u32_at(buf, 8)) }
    }
    fn encode(&self, buf: &mut [u8], base_offset: i64) {
        buf[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&((self.offset - base_offset) as u32).to_be_bytes());
    }
    fn key(&self) -> i64 {
        self.timestamp
    }
    fn offset(&self) -> i64 {
        self.offset
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(b)
}

pub(crate) type OffsetIndex = MmapIndex<OffsetEntry>;
pub(crate) type TimeIndex = MmapIndex<TimeEntry>;

/// Why an index file on disk cannot be trusted; the caller rebuilds it from the log.
#[derive(Debug)]
pub(crate) enum LoadError {
    Missing,
    Implausible(String),
    Io(StorageError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Missing => f.write_str("missing"),
            LoadError::Implausible(why) => f.write_str(why),
            LoadError::Io(e) => write!(f, "{e}"),
        }
    }
}

pub(crate) struct MmapIndex<E> {
    path: PathBuf,
    entries: Entries,
    /// Entries held.
    len: usize,
    /// Most entries the index takes while active; the segment rolls when it is full.
    max_entries: usize,
    base_offset: i64,
    _entry: PhantomData<E>,
}

/// Where an index's encoded entries are.
enum Entries {
    /// An active segment's, in memory. `is_on_disk` says the file already holds exactly these (an index loaded
    /// and not changed since), so sealing it again needs no write.
    Active { bytes: Vec<u8>, is_on_disk: bool },
    /// A sealed segment's file, mapped (no descriptor kept); `None` while empty: a zero-length mapping is not
    /// portable.
    Sealed(Option<Mmap>),
}

impl<E: IndexEntry> MmapIndex<E> {
    /// A new, empty, active index of at most `max_bytes` (rounded down to whole entries). The file at `path` is
    /// emptied now, so no older file's entries outlive this segment's start.
    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(StorageError::io(path))?;
        Ok(Self {
            path: path.to_owned(),
            entries: Entries::Active { bytes: Vec::new(), is_on_disk: false },
            len: 0,
            max_entries: (max_bytes / E::BYTES as u64) as usize,
            base_offset,
            _entry: PhantomData,
        })
    }

    /// Loads an index written by a sealed segment and checks it against the log: keys in order, offsets inside
    /// `[base_offset, next_offset)`, positions inside the log file. The file is mapped and closed.
    pub fn load(
        path: &Path,
        base_offset: i64,
        next_offset: i64,
        plausible: impl Fn(&E) -> bool,
    ) -> std::result::Result<Self, LoadError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Missing),
            Err(e) => return Err(LoadError::Io(StorageError::io(path)(e))),
        };
        let len = file.metadata().map_err(|e| LoadError::Io(StorageError::io(path)(e)))?.len();
        if len % E::BYTES as u64 != 0 {
            return Err(LoadError::Implausible(format!("size {len} is not a whole number of entries")));
        }
        let mmap = map(&file, path, len).map_err(LoadError::Io)?;
        let entries = (len / E::BYTES as u64) as usize;
        let index = Self {
            path: path.to_owned(),
            entries: Entries::Sealed(mmap),
            len: entries,
            max_entries: entries,
            base_offset,
            _entry: PhantomData,
        };
        let mut previous: Option<E> = None;
        for i in 0..index.len {
            let entry = index.entry(i);
            let in_order = previous.is_none_or(|p| entry.key() >= p.key() && entry.offset() > p.offset());
            let in_range = entry.offset() >= base_offset && entry.offset() < next_offset.max(base_offset + 1);
            if !in_order || !in_range || !plausible(&entry) {
                return Err(LoadError::Implausible(format!("entry {i} ({entry:?}) is out of order or range")));
            }
            previous = Some(entry);
        }
        Ok(index)
    }

    fn bytes(&self) -> &[u8] {
        match &self.entries {
            Entries::Active { bytes, .. } => bytes,
            Entries::Sealed(mmap) => mmap.as_deref().unwrap_or_default(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// A sealed index is always full: it takes no more entries.
    pub fn is_full(&self) -> bool {
        match self.entries {
            Entries::Active { .. } => self.len >= self.max_entries,
            Entries::Sealed(_) => true,
        }
    }

    pub fn entry(&self, i: usize) -> E {
        E::decode(&self.bytes()[i * E::BYTES..(i + 1) * E::BYTES], self.base_offset)
    }

    pub fn last(&self) -> Option<E> {
        self.len.checked_sub(1).map(|i| self.entry(i))
    }

    /// Appends an entry; the caller checks `is_full` first and rolls the segment when it is.
    pub fn append(&mut self, entry: E) -> Result<()> {
        debug_assert!(self.last().is_none_or(|l| entry.offset() > l.offset()));
        debug_assert!(!self.is_full());
        let Entries::Active { bytes, is_on_disk } = &mut self.entries else {
            return Err(StorageError::io(&self.path)(std::io::Error::other("append to a sealed index")));
        };
        let at = bytes.len();
        bytes.resize(at + E::BYTES, 0);
        entry.encode(&mut bytes[at..], self.base_offset);
        *is_on_disk = false;
        self.len += 1;
        Ok(())
    }

    /// The last entry whose key is `<= key`, if any.
    pub fn floor(&self, key: i64) -> Option<E> {
        // Binary search for the first entry with a key above `key`.
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).key() <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i))
    }

    /// How many entries come before the first for which `is_before` is false; `is_before` must hold for a prefix of
    /// the entries (any key or position that grows with them).
    pub fn count_while(&self, is_before: impl Fn(&E) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if is_before(&self.entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The number of entries held.
    pub fn entries(&self) -> usize {
        self.len
    }

    /// The last entry whose key is strictly below `key`, if any.
    pub fn below(&self, key: i64) -> Option<E> {
        self.floor(key.saturating_sub(1))
    }

    /// Drops every entry for offsets `>= offset`.
    pub fn truncate_from_offset(&mut self, offset: i64) {
        let before = self.len;
        while self.last().is_some_and(|e| e.offset() >= offset) {
            self.len -= 1;
        }
        if let Entries::Active { bytes, is_on_disk } = &mut self.entries {
            bytes.truncate(self.len * E::BYTES);
            *is_on_disk &= self.len == before;
        }
    }

    /// Writes the entries to the file (fsynced: done when the segment is sealed, on a roll or a clean shutdown)
    /// and maps it read-only, closing the descriptor. An index already on disk as it is is only mapped again.
    pub fn seal(&mut self) -> Result<()> {
        let Entries::Active { bytes, is_on_disk } = &self.entries else { return Ok(()) };
        // An index without entries whose file is empty already (an idle partition's) needs neither a write nor an
        // fsync: an empty file cannot mislead a lookup. This keeps a shutdown of many idle partitions quick.
        let is_empty_on_disk = bytes.is_empty() && std::fs::metadata(&self.path).is_ok_and(|m| m.len() == 0);
        if is_empty_on_disk {
            self.entries = Entries::Sealed(None);
            self.max_entries = 0;
            return Ok(());
        }
        let file = if *is_on_disk {
            File::open(&self.path).map_err(StorageError::io(&self.path))?
        } else {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(StorageError::io(&self.path))?;
            file.write_all_at(bytes, 0).map_err(StorageError::io(&self.path))?;
            file.sync_data().map_err(StorageError::io(&self.path))?;
            file
        };
        let mmap = map(&file, &self.path, bytes.len() as u64)?;
        self.entries = Entries::Sealed(mmap);
        self.max_entries = self.len;
        Ok(())
    }

    /// Makes a sealed index take entries again (up to `max_bytes`), for a segment that becomes active once more.
    pub fn reopen_for_append(&mut self, max_bytes: u64) {
        if let Entries::Sealed(mmap) = &self.entries {
            let bytes = mmap.as_deref().unwrap_or_default().to_vec();
            self.entries = Entries::Active { bytes, is_on_disk: true };
        }
        self.max_entries = ((max_bytes / E::BYTES as u64) as usize).max(self.len);
    }
}

/// Maps `len` bytes of `file` read-only (`None` for an empty file).
fn map(file: &File, path: &Path, len: u64) -> Result<Option<Mmap>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the file is private to this log; a sealed index file is only ever replaced whole (truncated and
    // rewritten) after its mapping is dropped, by `create` or `seal` of the same segment, never while mapped.
    let mmap = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }.map_err(StorageError::io(path))?;
    Ok(Some(mmap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_finds_the_last_entry_at_or_below_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::create(&path, 100, 1024).unwrap();
        for (i, offset) in [100, 110, 130].into_iter().enumerate() {
            index.append(OffsetEntry { offset, position: i as u32 * 4096 }).unwrap();
        }
        assert_eq!(index.floor(99), None);
        assert_eq!(index.floor(100).unwrap().offset, 100);
        assert_eq!(index.floor(129).unwrap().offset, 110);
        assert_eq!(index.floor(1000).unwrap().offset, 130);
        assert_eq!(index.below(110).unwrap().offset, 100);
    }

    #[test]
    fn trimmed_index_loads_back_and_implausible_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::create(&path, 50, 1200).unwrap();
        index.append(TimeEntry { timestamp: 10, offset: 50 }).unwrap();
        index.append(TimeEntry { timestamp: 20, offset: 60 }).unwrap();
        index.seal().unwrap();
        drop(index);
        let loaded = TimeIndex::load(&path, 50, 70, |_| true).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded.floor(15).unwrap(), TimeEntry { timestamp: 10, offset: 50 });
        // Entries past the log's end offset cannot be right.
        assert!(matches!(TimeIndex::load(&path, 50, 55, |_| true), Err(LoadError::Implausible(_))));
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(matches!(TimeIndex::load(&path, 50, 70, |_| true), Err(LoadError::Implausible(_))));
        assert!(matches!(TimeIndex::load(&dir.path().join("x"), 0, 1, |_| true), Err(LoadError::Missing)));
    }
}
