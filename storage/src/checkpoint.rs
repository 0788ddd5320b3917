//! `partition.checkpoint`: what a log must know about itself before it trusts its segments.
//!
//! Layout (big-endian), rewritten whole and atomically (temp file, fsync, rename, fsync directory):
//!
//! | at | field | type |
//! |---|---|---|
//! | 0 | magic `RILLCKPT` | 8 bytes |
//! | 8 | version (= 1) | u16 |
//! | 10 | flags: bit 0 = clean shutdown | u16 |
//! | 12 | recovery point: every offset below it is fsynced | i64 |
//! | 20 | leader epoch count `n` | u32 |
//! | 24 | `n` × (epoch i32, start offset i64) | 12 bytes each |
//! | 24+12n | CRC-32 (crc32fast) of all bytes before it | u32 |
//!
//! The leader epochs say which epoch every batch from a start offset on must carry; recovery uses them
//! to catch damage to `partition_leader_epoch`, which Kafka's batch CRC does not cover.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::log_dir::LogDir;
use crate::{Result, StorageError};

pub(crate) const FILE_NAME: &str = "partition.checkpoint";
const MAGIC: &[u8; 8] = b"RILLCKPT";
const VERSION: u16 = 1;
const CLEAN_SHUTDOWN: u16 = 1;
/// More epochs than a log could plausibly see; a count above it means a damaged file.
const MAX_EPOCHS: u32 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochStart {
    pub epoch: i32,
    pub start_offset: i64,
}

impl EpochStart {
    /// Whether a truncation to `end` keeps this epoch: only one that starts below it, or the first epoch 0 at
    /// offset 0 that every log holds from its creation (it covers a log's batches when no leader ever began
    /// an epoch in it; no batch carries an epoch below it). Kept past the end, a later epoch would make batches
    /// of the epoch before it look stale.
    pub fn survives_truncation_to(&self, end: i64) -> bool {
        self.start_offset < end || (self.start_offset == 0 && self.epoch == 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub is_clean_shutdown: bool,
    pub recovery_point: i64,
    /// Ascending by epoch and by start offset.
    pub epochs: Vec<EpochStart>,
}

impl Checkpoint {
    /// The epoch batches starting at `offset` must carry, if any epoch covers it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        crate::log::epoch_at(&self.epochs, offset)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + 12 * self.epochs.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(if self.is_clean_shutdown { CLEAN_SHUTDOWN } else { 0 }).to_be_bytes());
        out.extend_from_slice(&self.recovery_point.to_be_bytes());
        out.extend_from_slice(&(self.epochs.len() as u32).to_be_bytes());
        for e in &self.epochs {
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.start_offset.to_be_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a checkpoint; `Err` says why the bytes are not one.
    fn decode(buf: &[u8]) -> std::result::Result<Self, &'static str> {
        // After the magic: version (2), flags (2), recovery point (8), epoch count (4).
        let body = crate::framed_file::checked_body(buf, 28, MAGIC)?;
        if u16::from_be_bytes([body[0], body[1]]) != VERSION {
            return Err("unknown version");
        }
        let flags = u16::from_be_bytes([body[2], body[3]]);
        let recovery_point = i64::from_be_bytes(body[4..12].try_into().map_err(|_| "short")?);
        let count = u32::from_be_bytes(body[12..16].try_into().map_err(|_| "short")?);
        if count > MAX_EPOCHS || body.len() != 16 + 12 * count as usize {
            return Err("epoch count does not match the size");
        }
        let epochs = body[16..]
            .chunks_exact(12)
            .map(|c| EpochStart {
                epoch: i32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                start_offset: i64::from_be_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]),
            })
            .collect();
        Ok(Self { is_clean_shutdown: flags & CLEAN_SHUTDOWN != 0, recovery_point, epochs })
    }

    /// Reads the checkpoint in `dir`. A missing file is `Ok(None)`; a damaged one is logged and
    /// treated as missing, which makes the log rescan everything: slow, never wrong.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => match Self::decode(&bytes) {
                Ok(checkpoint) => Ok(Some(checkpoint)),
                Err(reason) => {
                    tracing::warn!(path = %path.display(), reason, "ignoring damaged checkpoint; rescanning the log");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path)(e)),
        }
    }

    pub(crate) fn store(&self, dir: &LogDir) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
        file.write_all(&self.encode()).map_err(StorageError::io(&tmp))?;
        file.sync_all().map_err(StorageError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(StorageError::io(&path))?;
        dir.sync()
    }
}

/// Makes a directory's entries (new, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stores_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), None);
        let checkpoint = Checkpoint {
            is_clean_shutdown: true,
            recovery_point: 42,
            epochs: vec![EpochStart { epoch: 0, start_offset: 0 }, EpochStart { epoch: 3, start_offset: 40 }],
        };
        checkpoint.store(&LogDir::new(dir.path())).unwrap();
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), Some(checkpoint.clone()));
        assert_eq!(checkpoint.epoch_at(39), Some(0));
        assert_eq!(checkpoint.epoch_at(40), Some(3));
        assert_eq!(checkpoint.epoch_at(-1), None);
    }

    proptest! {
        #[test]
        fn any_damage_is_detected_not_trusted(at in 0usize..52, flip in 1u8..=255) {
            let checkpoint = Checkpoint {
                is_clean_shutdown: true,
                recovery_point: 7,
                epochs: vec![EpochStart { epoch: 0, start_offset: 0 }, EpochStart { epoch: 1, start_offset: 5 }],
            };
            let mut bytes = checkpoint.encode();
            bytes[at] ^= flip;
            prop_assert!(Checkpoint::decode(&bytes).is_err());
            prop_assert!(Checkpoint::decode(&bytes[..at]).is_err());
        }
    }
}
