//! The controller's raft log and vote on disk, in `<data>/__raft/`.
//!
//! `log` is append-only: each record is `[len: u32 LE][crc32: u32 LE][payload: len bytes of JSON]`, the CRC
//! (IEEE) over the payload. A payload is an entry, a truncation (entries from an index on are gone) or a purge
//! (entries up to a log id are gone, covered by the snapshot). Opening replays the records; a torn or corrupt
//! tail is cut off, which loses nothing acknowledged because an append is fsynced before openraft is told it
//! is done. `vote.json` is replaced atomically (temporary file, fsync, rename, fsync of the directory) before
//! `save_vote` returns, so a node never answers a vote it could forget in a crash.
//!
//! Purged records stay in `log` until it is rewritten: after a purge that leaves the file at least 1 MiB and
//! more than twice what its live records take (and at open, for a file grown so by an earlier version), the
//! live records (the last purge and the entries after it) are written to a new file that replaces `log`
//! atomically, so a crash finds the old file or the new one, which replay to the same state.
//!
//! Blocking file work runs on tokio's blocking pool; the in-memory copy of the entries serves reads.

// openraft's traits fix the error type (`StorageError`, a few hundred bytes); boxing it here would only be
// unboxed again at the trait boundary.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;

/// Largest record accepted when replaying: far above any metadata entry, and a bound on what a corrupt length
/// field can make us allocate.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// A log file smaller than this is never rewritten: a rewrite would save less than it costs.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
enum LogRecord {
    /// Boxed: an entry is far larger than the other records (serde writes a box as what it holds).
    Entry(Box<Entry>),
    /// Entries at this index and after are deleted (a new leader overwrote them).
    TruncateFrom(u64),
    /// Entries up to and including this log id are deleted (they are in the snapshot).
    PurgeUpTo(LogId<NodeId>),
}

struct LogFile {
    path: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId<NodeId>>,
    vote_path: PathBuf,
    vote: Option<Vote<NodeId>>,
}

/// openraft's log storage over the `log` and `vote.json` files. Clones share the files.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogFile>>,
}

fn io_error(err: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&err).into()
}

impl LogStore {
    /// Opens (creating if missing) the log in `raft_dir`, replaying it and cutting off a torn tail.
    pub fn open(raft_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(raft_dir)?;
        let path = raft_dir.join("log");
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut offset = 0;
        while let Some((record, next)) = decode_record(&bytes, offset) {
            match record {
                LogRecord::Entry(entry) => {
                    entries.insert(entry.log_id.index, *entry);
                }
                LogRecord::TruncateFrom(index) => {
                    entries.split_off(&index);
                }
                LogRecord::PurgeUpTo(log_id) => {
                    entries = entries.split_off(&(log_id.index + 1));
                    last_purged = Some(log_id);
                }
            }
            offset = next;
        }
        if offset < bytes.len() {
            tracing::warn!(path = %path.display(), valid_bytes = offset, file_bytes = bytes.len(),
                "raft log has a torn or corrupt tail; cutting it off (it was never acknowledged)");
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        let vote_path = raft_dir.join("vote.json");
        let vote = match std::fs::read(&vote_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(std::io::Error::other)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let mut inner = LogFile { path, file, entries, last_purged, vote_path, vote };
        inner.compact_if_mostly_purged()?;
        Ok(Self { inner: Arc::new(Mutex::new(inner)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogFile> {
        // A panic while holding the lock leaves the in-memory copy possibly ahead of the file; the process is
        // going down with it anyway, so reading on is no worse than poisoning every later call.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends records and fsyncs them, on the blocking pool.
    async fn write_records(&self, records: Vec<LogRecord>) -> Result<(), StorageError<NodeId>> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = store.lock();
            let mut buffer = Vec::new();
            for record in &records {
                encode_record(record, &mut buffer).map_err(io_error)?;
            }
            log.file.write_all(&buffer).map_err(io_error)?;
            log.file.sync_data().map_err(io_error)?;
            for record in records {
                match record {
                    LogRecord::Entry(entry) => {
                        log.entries.insert(entry.log_id.index, *entry);
                    }
                    LogRecord::TruncateFrom(index) => {
                        log.entries.split_off(&index);
                    }
                    LogRecord::PurgeUpTo(log_id) => {
                        log.entries = log.entries.split_off(&(log_id.index + 1));
                        log.last_purged = Some(log_id);
                        log.compact_if_mostly_purged().map_err(io_error)?;
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(io_error)?
    }
}

impl LogFile {
    /// Rewrites the file with only its live records when it is at least [`COMPACT_MIN_BYTES`] and more than
    /// twice their size; returns whether it did. A failure before the new file replaces the old one leaves the
    /// old one in use (and is only logged); one after it is an error, since appends need the new file open.
    fn compact_if_mostly_purged(&mut self) -> std::io::Result<bool> {
        let file_bytes = self.file.metadata()?.len();
        if file_bytes < COMPACT_MIN_BYTES {
            return Ok(false);
        }
        let mut live = Vec::new();
        let purge = self.last_purged.map(LogRecord::PurgeUpTo);
        let entries = self.entries.values().map(|entry| LogRecord::Entry(Box::new(entry.clone())));
        for record in purge.into_iter().chain(entries) {
            encode_record(&record, &mut live).map_err(std::io::Error::other)?;
        }
        if live.len() as u64 * 2 > file_bytes {
            return Ok(false);
        }
        if let Err(err) = crate::meta::write_atomically(&self.path, &live) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot rewrite the raft log; keeping it as it is");
            return Ok(false);
        }
        self.file = OpenOptions::new().read(true).append(true).open(&self.path)?;
        tracing::info!(path = %self.path.display(), from_bytes = file_bytes, to_bytes = live.len(),
            "raft log rewritten without its purged entries");
        Ok(true)
    }
}

fn encode_record(record: &LogRecord, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let payload = serde_json::to_vec(record)?;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The record at `offset` and the offset after it, or `None` at the end or at the first torn or corrupt record.
fn decode_record(bytes: &[u8], offset: usize) -> Option<(LogRecord, usize)> {
    let header = bytes.get(offset..offset + 8)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = bytes.get(offset + 8..offset + 8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = serde_json::from_slice(payload).ok()?;
    Some((record, offset + 8 + len))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self.lock().entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let log = self.lock();
        let last_log_id = log.entries.values().next_back().map(|entry| *entry.get_log_id()).or(log.last_purged);
        Ok(LogState { last_purged_log_id: log.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let store = self.clone();
        let vote = *vote;
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&vote).map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
            let path = store.lock().vote_path.clone();
            crate::meta::write_atomically(&path, &bytes)
                .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
            store.lock().vote = Some(vote);
            Ok(())
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records = entries.into_iter().map(|entry| LogRecord::Entry(Box::new(entry))).collect();
        let written = self.write_records(records).await;
        // openraft counts the entries as persisted only now: after the fsync.
        callback.log_io_completed(written.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        written
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_records(vec![LogRecord::TruncateFrom(log_id.index)]).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_records(vec![LogRecord::PurgeUpTo(log_id)]).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    async fn indexes(store: &mut LogStore) -> Vec<u64> {
        store.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_every_whole_record_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.write_records((0..5).map(|i| LogRecord::Entry(Box::new(entry(1, i)))).collect()).await.unwrap();
        store.write_records(vec![LogRecord::TruncateFrom(3), LogRecord::Entry(Box::new(entry(2, 3)))]).await.unwrap();
        drop(store);
        let path = dir.path().join("log");
        let whole = std::fs::metadata(&path).unwrap().len();
        // Half of a next record, as a crash in the middle of an append leaves it.
        let mut torn = Vec::new();
        encode_record(&LogRecord::Entry(Box::new(entry(2, 4))), &mut torn).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);

        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut reopened).await, vec![0, 1, 2, 3]);
        let last = reopened.get_log_state().await.unwrap().last_log_id.unwrap();
        assert_eq!((last.leader_id.term, last.index), (2, 3));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    }

    #[tokio::test]
    async fn a_corrupt_record_ends_the_log_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.write_records((0..3).map(|i| LogRecord::Entry(Box::new(entry(1, i)))).collect()).await.unwrap();
        drop(store);
        let path = dir.path().join("log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut reopened).await, vec![0, 1]);
    }

    #[tokio::test]
    async fn a_mostly_purged_log_is_rewritten_with_only_its_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut store = LogStore::open(dir.path()).unwrap();
        let mut next = 0;
        while std::fs::metadata(&path).unwrap().len() < COMPACT_MIN_BYTES {
            store
                .write_records((next..next + 1000).map(|i| LogRecord::Entry(Box::new(entry(1, i)))).collect())
                .await
                .unwrap();
            next += 1000;
        }
        let before = std::fs::metadata(&path).unwrap().len();
        // A purge that leaves more than half the file alive does not rewrite it.
        store.purge(*entry(1, next / 4).get_log_id()).await.unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > before, "only the purge record was appended");
        store.purge(*entry(1, next - 11).get_log_id()).await.unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before / 100, "{after} bytes left of {before}");
        // Appends go to the new file, and a reopen replays it to the same state.
        store.write_records(vec![LogRecord::Entry(Box::new(entry(2, next)))]).await.unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        let expected: Vec<u64> = (next - 10..=next).collect();
        assert_eq!(indexes(&mut store).await, expected);
        drop(store);
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut reopened).await, expected);
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(next - 11));
        assert_eq!(state.last_log_id.map(|l| (l.leader_id.term, l.index)), Some((2, next)));
        assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["log", "vote.json"], "no temporary file is left");
    }

    #[tokio::test]
    async fn a_log_grown_by_an_earlier_version_is_rewritten_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        // What a version without rewriting left: every entry, then a purge of nearly all of them.
        let mut bytes = Vec::new();
        let mut next = 0;
        while (bytes.len() as u64) < COMPACT_MIN_BYTES {
            encode_record(&LogRecord::Entry(Box::new(entry(1, next))), &mut bytes).unwrap();
            next += 1;
        }
        encode_record(&LogRecord::PurgeUpTo(*entry(1, next - 3).get_log_id()), &mut bytes).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut reopened).await, vec![next - 2, next - 1]);
        assert!(std::fs::metadata(&path).unwrap().len() < 1024);
        drop(reopened);
        let mut again = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut again).await, vec![next - 2, next - 1]);
        assert_eq!(again.get_log_state().await.unwrap().last_purged_log_id.map(|l| l.index), Some(next - 3));
    }

    #[tokio::test]
    async fn the_vote_and_purges_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.write_records((0..4).map(|i| LogRecord::Entry(Box::new(entry(1, i)))).collect()).await.unwrap();
        store.purge(*entry(1, 1).get_log_id()).await.unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        drop(store);
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
        assert_eq!(indexes(&mut reopened).await, vec![2, 3]);
        assert_eq!(reopened.get_log_state().await.unwrap().last_purged_log_id.map(|l| l.index), Some(1));
    }
}
