//! `__high-watermarks.checkpoint`: the last high watermark a node knew for each replicated partition of its data
//! dir (Kafka's `replication-offset-checkpoint`), so a restarted node does not start them from the log start.
//!
//! Layout (big-endian), rewritten whole and atomically (a temp file, fsync, rename, fsync of the directory):
//!
//! | at | field | type |
//! |---|---|---|
//! | 0 | magic `RILLHWMK` | 8 bytes |
//! | 8 | version (= 1) | u16 |
//! | 10 | partition count `n` | u32 |
//! | 14 | `n` × (topic name length `l` u16, topic name `l` bytes UTF-8, partition u32, high watermark i64) | |
//! | end − 4 | CRC-32 (crc32fast) of all bytes before it | u32 |
//!
//! Invariants, checked on decode: entries strictly ascending by (topic, partition), so none twice; every high
//! watermark `>= 0`; every byte accounted for. A file that breaks one is refused whole, never half-trusted.
//!
//! The value is a hint that is safe when low: a high watermark only ever covers records every in-sync replica
//! held, and the log caps it at its end on use. So a missing, damaged or unknown-version file is ignored with a
//! warning (each partition starts from its log start, as before this file existed) rather than refused: refusing
//! would turn a damaged cache of a few bytes into a node that cannot start, and the fix would be to delete it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::sync_dir;
use crate::{Result, StorageError};

pub const FILE_NAME: &str = "__high-watermarks.checkpoint";
/// Temp files are `FILE_NAME` + this + a unique suffix: a store never writes into another's temp file (two
/// processes of one node overlap in the simulations; a crashed store leaves its temp file for the next start).
const TEMP_INFIX: &str = ".tmp-";
const MAGIC: &[u8; 8] = b"RILLHWMK";
const VERSION: u16 = 1;
/// Magic, version, count and CRC.
const FIXED_BYTES: usize = 18;
/// More partitions than a node could hold; a count above it means a damaged file.
const MAX_PARTITIONS: u32 = 1 << 22;

static TEMP_FILES: AtomicU64 = AtomicU64::new(0);

/// Why a file's bytes are not a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("damaged frame: {0}")]
    Frame(&'static str),
    #[error("version {found}, this build reads version {VERSION}")]
    UnknownVersion { found: u16 },
    #[error("entry {index}: {reason}")]
    Entry { index: u32, reason: &'static str },
    #[error("{0}")]
    Layout(&'static str),
}

/// The high watermark of each partition, by (topic, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HighWatermarkCheckpoint {
    pub partitions: BTreeMap<(String, u32), i64>,
}

impl HighWatermarkCheckpoint {
    pub fn get(&self, topic: &str, partition: u32) -> Option<i64> {
        // A BTreeMap keyed by (String, u32) needs an owned key to look up.
        self.partitions.get(&(topic.to_owned(), partition)).copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let names: usize = self.partitions.keys().map(|(topic, _)| topic.len()).sum();
        let mut out = Vec::with_capacity(FIXED_BYTES + 14 * self.partitions.len() + names);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.partitions.len() as u32).to_be_bytes());
        for ((topic, partition), high_watermark) in &self.partitions {
            // Topic names are at most 249 bytes (Kafka's limit, `TopicName`).
            out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(&partition.to_be_bytes());
            // Decode refuses a negative one (no log has one): clamp rather than write a file that is refused whole.
            out.extend_from_slice(&(*high_watermark).max(0).to_be_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> std::result::Result<Self, DecodeError> {
        let body = crate::framed_file::checked_body(buf, FIXED_BYTES, MAGIC).map_err(DecodeError::Frame)?;
        let mut cursor = Cursor { rest: body };
        let version = u16::from_be_bytes(cursor.take::<2>().ok_or(DecodeError::Layout("short"))?);
        if version != VERSION {
            return Err(DecodeError::UnknownVersion { found: version });
        }
        let count = u32::from_be_bytes(cursor.take::<4>().ok_or(DecodeError::Layout("short"))?);
        if count > MAX_PARTITIONS {
            return Err(DecodeError::Layout("partition count above any node's"));
        }
        let mut partitions = BTreeMap::new();
        let mut previous: Option<(String, u32)> = None;
        for index in 0..count {
            let entry = |reason| DecodeError::Entry { index, reason };
            let len = u16::from_be_bytes(cursor.take::<2>().ok_or(entry("cut short"))?);
            let name = cursor.take_slice(usize::from(len)).ok_or(entry("cut short"))?;
            let topic = std::str::from_utf8(name).map_err(|_| entry("topic name is not UTF-8"))?.to_owned();
            let partition = u32::from_be_bytes(cursor.take::<4>().ok_or(entry("cut short"))?);
            let high_watermark = i64::from_be_bytes(cursor.take::<8>().ok_or(entry("cut short"))?);
            if high_watermark < 0 {
                return Err(entry("negative high watermark"));
            }
            let key = (topic, partition);
            if previous.as_ref().is_some_and(|p| *p >= key) {
                return Err(entry("not after the previous entry"));
            }
            previous = Some(key.clone());
            partitions.insert(key, high_watermark);
        }
        if !cursor.rest.is_empty() {
            return Err(DecodeError::Layout("bytes after the last entry"));
        }
        Ok(Self { partitions })
    }

    /// Reads the checkpoint in `dir` and removes temp files a crashed store left there. A missing file is
    /// `Ok(None)`; a damaged or unknown-version one is logged and `Ok(None)` too (see the module doc for why).
    /// `Err` only for an I/O error other than "not found".
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        remove_temp_files(dir)?;
        let path = dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => match Self::decode(&bytes) {
                Ok(checkpoint) => Ok(Some(checkpoint)),
                Err(reason) => {
                    tracing::warn!(
                        path = %path.display(),
                        %reason,
                        "ignoring the high-watermark checkpoint; replicated partitions start from their log start"
                    );
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path)(e)),
        }
    }

    /// Replaces the checkpoint in `dir` atomically: a crash at any point leaves the old file or the new one.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let unique = TEMP_FILES.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{FILE_NAME}{TEMP_INFIX}{}-{unique}", std::process::id()));
        let written = (|| {
            let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
            file.write_all(&self.encode()).map_err(StorageError::io(&tmp))?;
            file.sync_all().map_err(StorageError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(StorageError::io(&path))
        })();
        if written.is_err() {
            // Best effort: a full disk is the likely cause, and the next start removes it anyway.
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(dir)
    }
}

fn remove_temp_files(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let is_temp =
            name.to_str().is_some_and(|n| n.starts_with(FILE_NAME) && n[FILE_NAME.len()..].starts_with(TEMP_INFIX));
        if is_temp {
            let path = entry.path();
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
    }
    Ok(())
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take_slice(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.rest.len() < len {
            return None;
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(head)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take_slice(N)?.try_into().ok()
    }
}

#[cfg(test)]
#[path = "high_watermarks_tests.rs"]
mod tests;
