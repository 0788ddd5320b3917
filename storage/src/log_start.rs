//! `log-start-offset.checkpoint`: a log start offset that records were deleted up to ([`crate::Log::delete_records_before`],
//! Kafka's DeleteRecords). Retention moves the log start only to a segment's base offset, which the segment files
//! themselves say; a deletion may move it inside a segment, so this file says where, for the next open.
//!
//! Layout (big-endian), rewritten whole and atomically (temp file, fsync, rename, fsync of the directory):
//!
//! | at | field | type |
//! |---|---|---|
//! | 0 | magic `RILLLSTA` | 8 bytes |
//! | 8 | version (= 1) | u16 |
//! | 10 | log start offset, `>= 0` | i64 |
//! | 18 | CRC-32 (crc32fast) of all bytes before it | u32 |
//!
//! Unlike the other checkpoints, a damaged file is refused, not ignored: ignoring it would serve again records a
//! user deleted (for erasure, say), so the log does not open until an operator decides (the error names the file;
//! removing it accepts that the deleted records reappear).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::log_dir::LogDir;
use crate::{Result, StorageError};

pub(crate) const FILE_NAME: &str = "log-start-offset.checkpoint";
const MAGIC: &[u8; 8] = b"RILLLSTA";
const VERSION: u16 = 1;
#[cfg(test)]
const FILE_BYTES: usize = crate::framed_file::OFFSET_FILE_BYTES;

fn encode(log_start_offset: i64) -> Vec<u8> {
    crate::framed_file::encode_offset(MAGIC, VERSION, log_start_offset)
}

/// The offset the bytes hold; `Err` says why they are not this file.
fn decode(buf: &[u8]) -> std::result::Result<i64, &'static str> {
    let offset = crate::framed_file::decode_offset(buf, MAGIC, VERSION)?;
    if offset < 0 {
        return Err("negative log start offset");
    }
    Ok(offset)
}

/// The log start offset stored in `dir`, `None` if records were never deleted there. A damaged file is
/// `StorageError::Corrupt` (see the module doc for why it is not ignored).
pub(crate) fn load(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|reason| StorageError::Corrupt {
            path,
            position: 0,
            reason: format!(
                "{reason}: the log start offset records were deleted up to is unknown; the log stays closed rather \
                 than serve deleted records (remove the file to accept that they reappear)"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path)(e)),
    }
}

/// Replaces the file in `dir` atomically: a crash at any point leaves the old value or the new one, never neither.
pub(crate) fn store(dir: &LogDir, log_start_offset: i64) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = File::create(&tmp).map_err(StorageError::io(&tmp))?;
    file.write_all(&encode(log_start_offset)).map_err(StorageError::io(&tmp))?;
    file.sync_all().map_err(StorageError::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(StorageError::io(&path))?;
    dir.sync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stores_and_loads_back_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        store(&crate::log_dir::LogDir::new(dir.path()), 40).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(40));
        store(&crate::log_dir::LogDir::new(dir.path()), 41).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(41));
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
    }

    #[test]
    fn a_damaged_file_keeps_the_log_closed_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"RILLLSTA garbage").unwrap();
        match load(dir.path()) {
            Err(StorageError::Corrupt { path, reason, .. }) => {
                assert!(path.ends_with(FILE_NAME));
                assert!(reason.contains("remove the file"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn any_damage_is_detected_not_trusted(at in 0usize..FILE_BYTES, flip in 1u8..=255, offset in 0i64..i64::MAX) {
            let mut bytes = encode(offset);
            prop_assert_eq!(decode(&bytes), Ok(offset));
            bytes[at] ^= flip;
            prop_assert!(decode(&bytes).is_err());
            prop_assert!(decode(&bytes[..at]).is_err());
        }
    }
}
