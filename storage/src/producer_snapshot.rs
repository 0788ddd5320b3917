//! Producer-state snapshots: `<offset>.snapshot` files, Kafka's way of persisting idempotent producers' state.
//!
//! A snapshot named by offset `n` (20 digits, like a segment) holds the [`ProducerState`] after every batch
//! below `n`. One is written when a segment rolls (at the new segment's base) and on a clean close (at the log
//! end). On open the log loads the newest snapshot that decodes and is not past the log end, then replays the
//! batches from it to the end ([`ProducerState::observe`]); with none, it replays the whole log. A damaged
//! snapshot is deleted and the next older one tried: it costs a longer replay, never a wrong answer.
//!
//! Layout (big-endian), written whole and atomically (temp file, fsync, rename, fsync directory):
//!
//! | at | field | type |
//! |---|---|---|
//! | 0 | magic `RILLPSNP` | 8 bytes |
//! | 8 | version (= 2; 1 is still read) | u16 |
//! | 10 | producer count `n` | u32 |
//! | 14 | `n` × producer entry (below) | |
//! | | aborted transaction count `a` (version 2) | u32 |
//! | | `a` × (producer id i64, first offset i64, marker offset i64), oldest marker first (version 2) | |
//! | end − 4 | CRC-32 (crc32fast) of all bytes before it | u32 |
//!
//! A version 2 producer entry: producer id (i64), epoch (i16), last seen in ms (i64), first offset of its open
//! transaction (i64, -1 for none), batch count `b` (u8, 0 to 5), then `b` × (first sequence i32, last sequence i32,
//! base offset i64, last offset i64, timestamp in ms i64), oldest first: 27 + 32·b bytes. Version 1 (written
//! before transactions) has only the producer id, epoch and batch count (1 to 5) before the batches, and no
//! aborted transactions; its entries are last seen at their newest batch.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::log_dir::LogDir;
use crate::producer_state::{AbortedTransaction, ProducedBatchMeta, ProducerEntry, ProducerState, BATCHES_KEPT};
use crate::{Result, StorageError};

pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
const MAGIC: &[u8; 8] = b"RILLPSNP";
const VERSION: u16 = 2;
/// The version written before transactions, still read.
const VERSION_1: u16 = 1;
const FIXED_BYTES: usize = 14;
const ENTRY_FIXED_BYTES: usize = 27;
const ENTRY_FIXED_BYTES_V1: usize = 11;
const BATCH_BYTES: usize = 32;
const ABORTED_BYTES: usize = 24;
/// Snapshots kept on disk: the newest, and one to fall back to if it is damaged.
const SNAPSHOTS_KEPT: usize = 2;

pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

pub(crate) fn encode(state: &ProducerState) -> Vec<u8> {
    let entries: Vec<(i64, &ProducerEntry)> = state.iter().collect();
    let batches: usize = entries.iter().map(|(_, entry)| entry.batches.len()).sum();
    let aborted = state.aborted();
    let mut out = Vec::with_capacity(
        FIXED_BYTES + ENTRY_FIXED_BYTES * entries.len() + BATCH_BYTES * batches + 4 + ABORTED_BYTES * aborted.len() + 4,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (producer_id, entry) in entries {
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_seen_ms.to_be_bytes());
        out.extend_from_slice(&entry.transaction_first_offset.unwrap_or(-1).to_be_bytes());
        // An entry holds 0 to BATCHES_KEPT batches: it fits a u8.
        out.push(entry.batches.len() as u8);
        for batch in &entry.batches {
            out.extend_from_slice(&batch.first_sequence.to_be_bytes());
            out.extend_from_slice(&batch.last_sequence.to_be_bytes());
            out.extend_from_slice(&batch.base_offset.to_be_bytes());
            out.extend_from_slice(&batch.last_offset.to_be_bytes());
            out.extend_from_slice(&batch.timestamp_ms.to_be_bytes());
        }
    }
    // A partition keeps its aborted transactions while their markers are in the log: far fewer than 2^32.
    out.extend_from_slice(&(aborted.len() as u32).to_be_bytes());
    for aborted in aborted {
        out.extend_from_slice(&aborted.producer_id.to_be_bytes());
        out.extend_from_slice(&aborted.first_offset.to_be_bytes());
        out.extend_from_slice(&aborted.last_offset.to_be_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A cursor over a snapshot's body that refuses to read past it.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], &'static str> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err("ends in the middle of an entry");
        };
        self.rest = rest;
        Ok(*head)
    }
}

/// Decodes a snapshot; `Err` says why the bytes are not one.
pub(crate) fn decode(buf: &[u8]) -> std::result::Result<ProducerState, &'static str> {
    let body = crate::framed_file::checked_body(buf, FIXED_BYTES + 4, MAGIC)?;
    let mut reader = Reader { rest: body };
    let version = u16::from_be_bytes(reader.take()?);
    if version != VERSION && version != VERSION_1 {
        return Err("unknown version");
    }
    let is_v1 = version == VERSION_1;
    let count = u32::from_be_bytes(reader.take()?) as usize;
    // Every entry takes at least this many bytes: a count the body cannot hold is damage, caught before any
    // allocation by it.
    let smallest_entry = if is_v1 { ENTRY_FIXED_BYTES_V1 + BATCH_BYTES } else { ENTRY_FIXED_BYTES };
    if count > reader.rest.len() / smallest_entry {
        return Err("producer count does not fit the size");
    }
    let mut state = ProducerState::default();
    for _ in 0..count {
        let producer_id = i64::from_be_bytes(reader.take()?);
        let epoch = i16::from_be_bytes(reader.take()?);
        let (last_seen_ms, transaction_first_offset) = match is_v1 {
            true => (None, None),
            false => {
                let last_seen_ms = i64::from_be_bytes(reader.take()?);
                let first_offset = i64::from_be_bytes(reader.take()?);
                if first_offset < -1 {
                    return Err("an open transaction's first offset is negative");
                }
                (Some(last_seen_ms), (first_offset >= 0).then_some(first_offset))
            }
        };
        let [batch_count] = reader.take()?;
        let batch_count = usize::from(batch_count);
        let fewest = if is_v1 { 1 } else { 0 };
        if !(fewest..=BATCHES_KEPT).contains(&batch_count) {
            return Err("an entry's batch count is outside what its version allows (1 or 0, to 5)");
        }
        if producer_id < 0 || state.get(producer_id).is_some() {
            return Err("a producer id is negative or listed twice");
        }
        let mut batches = VecDeque::with_capacity(batch_count);
        for _ in 0..batch_count {
            batches.push_back(ProducedBatchMeta {
                first_sequence: i32::from_be_bytes(reader.take()?),
                last_sequence: i32::from_be_bytes(reader.take()?),
                base_offset: i64::from_be_bytes(reader.take()?),
                last_offset: i64::from_be_bytes(reader.take()?),
                timestamp_ms: i64::from_be_bytes(reader.take()?),
            });
        }
        let last_seen_ms = last_seen_ms.unwrap_or_else(|| batches.back().map_or(i64::MIN, |batch| batch.timestamp_ms));
        state.insert(producer_id, ProducerEntry { epoch, batches, transaction_first_offset, last_seen_ms });
    }
    if !is_v1 {
        let count = u32::from_be_bytes(reader.take()?) as usize;
        if count > reader.rest.len() / ABORTED_BYTES {
            return Err("aborted transaction count does not fit the size");
        }
        let mut previous = i64::MIN;
        for _ in 0..count {
            let aborted = AbortedTransaction {
                producer_id: i64::from_be_bytes(reader.take()?),
                first_offset: i64::from_be_bytes(reader.take()?),
                last_offset: i64::from_be_bytes(reader.take()?),
            };
            if aborted.last_offset < previous || aborted.first_offset > aborted.last_offset {
                return Err("aborted transactions out of order, or one ending before it starts");
            }
            previous = aborted.last_offset;
            state.push_aborted(aborted);
        }
    }
    if !reader.rest.is_empty() {
        return Err("bytes after the last entry");
    }
    Ok(state)
}

/// Writes `state` as the snapshot at `offset`, then deletes all but the newest [`SNAPSHOTS_KEPT`].
pub(crate) fn store(dir: &LogDir, offset: i64, state: &ProducerState) -> Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension(format!("{SNAPSHOT_SUFFIX}.tmp"));
    let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
    file.write_all(&encode(state)).map_err(StorageError::io(&tmp))?;
    file.sync_all().map_err(StorageError::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(StorageError::io(&path))?;
    let offsets = snapshot_offsets(dir)?;
    for &old in offsets.iter().rev().skip(SNAPSHOTS_KEPT) {
        remove(dir, old)?;
    }
    dir.sync()
}

/// Offsets of the snapshots in `dir`, ascending. Leftover temporary files are removed.
pub(crate) fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{SNAPSHOT_SUFFIX}.tmp")) {
            let path = entry.path();
            fs::remove_file(&path).map_err(StorageError::io(path))?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_SUFFIX}")) {
            match stem.parse::<i64>() {
                Ok(offset) if offset >= 0 && stem.len() == 20 => offsets.push(offset),
                _ => {
                    tracing::warn!(dir = %dir.display(), file = name, "ignoring a .snapshot file not named by an offset")
                }
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

pub(crate) fn remove(dir: &Path, offset: i64) -> Result<()> {
    let path = snapshot_path(dir, offset);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(path)(e)),
        _ => Ok(()),
    }
}

/// The newest snapshot at or below `end_offset` that decodes, and its offset. Snapshots past `end_offset` (the
/// log lost their batches) and damaged ones are deleted on the way.
pub(crate) fn load_latest(dir: &Path, end_offset: i64) -> Result<Option<(i64, ProducerState)>> {
    let offsets = snapshot_offsets(dir)?;
    let mut found = None;
    for &offset in offsets.iter().rev() {
        if offset > end_offset {
            remove(dir, offset)?;
            continue;
        }
        let path = snapshot_path(dir, offset);
        let bytes = fs::read(&path).map_err(StorageError::io(&path))?;
        match decode(&bytes) {
            Ok(state) => {
                found = Some((offset, state));
                break;
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "ignoring a damaged producer snapshot");
                remove(dir, offset)?;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = (i64, ProducerEntry)> {
        let batch = (any::<i32>(), any::<i32>(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(
            |(first_sequence, last_sequence, base_offset, last_offset, timestamp_ms)| ProducedBatchMeta {
                first_sequence,
                last_sequence,
                base_offset,
                last_offset,
                timestamp_ms,
            },
        );
        let open = prop::option::of(0..i64::MAX);
        (0..i64::MAX, any::<i16>(), prop::collection::vec_deque(batch, 0..=BATCHES_KEPT), open, any::<i64>()).prop_map(
            |(id, epoch, batches, transaction_first_offset, last_seen_ms)| {
                (id, ProducerEntry { epoch, batches, transaction_first_offset, last_seen_ms })
            },
        )
    }

    fn state_strategy() -> impl Strategy<Value = ProducerState> {
        let aborted = prop::collection::vec((0..i64::MAX, 0..1_000i64, 0..1_000i64), 0..10);
        (prop::collection::vec(entry_strategy(), 0..20), aborted).prop_map(|(entries, aborted)| {
            let mut state = ProducerState::default();
            for (id, entry) in entries {
                state.insert(id, entry);
            }
            let mut marker = 0;
            for (producer_id, length, gap) in aborted {
                marker += gap + length;
                state.push_aborted(AbortedTransaction {
                    producer_id,
                    first_offset: marker - length,
                    last_offset: marker,
                });
            }
            state
        })
    }

    proptest! {
        #[test]
        fn a_snapshot_decodes_to_the_state_it_encoded(state in state_strategy()) {
            prop_assert_eq!(decode(&encode(&state)), Ok(state));
        }

        #[test]
        fn any_damage_or_cut_is_detected(state in state_strategy(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut bytes = encode(&state);
            let at = at.index(bytes.len());
            prop_assert!(decode(&bytes[..at]).is_err());
            bytes[at] ^= flip;
            prop_assert!(decode(&bytes).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn a_version_1_snapshot_still_loads_its_producers() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION_1.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.extend_from_slice(&7i64.to_be_bytes());
        bytes.extend_from_slice(&3i16.to_be_bytes());
        bytes.push(1);
        for field in [0i32, 4] {
            bytes.extend_from_slice(&field.to_be_bytes());
        }
        for field in [10i64, 14, 99] {
            bytes.extend_from_slice(&field.to_be_bytes());
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let state = decode(&bytes).expect("a version 1 snapshot decodes");
        let entry = state.get(7).expect("its producer");
        assert_eq!((entry.epoch, entry.last_seen_ms, entry.transaction_first_offset), (3, 99, None));
        assert_eq!(entry.batches.len(), 1);
        assert_eq!(state.first_unstable_offset(), None);
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(decode(&bytes), Err("producer count does not fit the size"));
    }

    #[test]
    fn the_newest_good_snapshot_wins_and_damaged_or_later_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = ProducerState::default();
        let batch =
            ProducedBatchMeta { first_sequence: 0, last_sequence: 4, base_offset: 0, last_offset: 4, timestamp_ms: 1 };
        state.insert(
            7,
            ProducerEntry {
                epoch: 0,
                batches: VecDeque::from([batch]),
                transaction_first_offset: None,
                last_seen_ms: 1,
            },
        );
        store(&crate::log_dir::LogDir::new(dir.path()), 5, &state).unwrap();
        store(&crate::log_dir::LogDir::new(dir.path()), 10, &ProducerState::default()).unwrap();
        fs::write(snapshot_path(dir.path(), 10), b"damaged").unwrap();
        assert_eq!(load_latest(dir.path(), 15).unwrap(), Some((5, state.clone())));
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![5]);
        store(&crate::log_dir::LogDir::new(dir.path()), 20, &ProducerState::default()).unwrap();
        assert_eq!(load_latest(dir.path(), 15).unwrap(), Some((5, state)));
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![5]);
    }
}
