//! `cleaner-offset.checkpoint`: where a log's last compaction pass ended (`log/compaction.rs`), so that a restart
//! does not compact the whole log again (Kafka keeps a `cleaner-offset-checkpoint` for the same reason).
//!
//! A hint, not a promise: a missing or damaged file, or one past the log end, makes the next pass treat the whole
//! compactable part as dirty, which costs one rewrite and removes nothing a pass would not. So it is replaced by a
//! rename without an fsync: a crash can only lose the hint.
//!
//! Layout (big-endian):
//!
//! | at | field | type |
//! |---|---|---|
//! | 0 | magic `RILLCLNO` | 8 bytes |
//! | 8 | version (= 1) | u16 |
//! | 10 | offset the last pass ended at | i64 |
//! | 18 | CRC-32 (crc32fast) of all bytes before it | u32 |

use std::fs;
use std::path::Path;

use crate::{Result, StorageError};

pub(crate) const FILE_NAME: &str = "cleaner-offset.checkpoint";
const MAGIC: &[u8; 8] = b"RILLCLNO";
const VERSION: u16 = 1;

fn encode(offset: i64) -> Vec<u8> {
    crate::framed_file::encode_offset(MAGIC, VERSION, offset)
}

fn decode(buf: &[u8]) -> Option<i64> {
    crate::framed_file::decode_offset(buf, MAGIC, VERSION).ok()
}

/// The offset stored in `dir`, if a whole one is there.
pub(crate) fn load(dir: &Path) -> Option<i64> {
    fs::read(dir.join(FILE_NAME)).ok().as_deref().and_then(decode)
}

/// Replaces the file in `dir` (temp file and rename; see the module doc for why no fsync).
pub(crate) fn store(dir: &Path, offset: i64) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    fs::write(&tmp, encode(offset)).map_err(StorageError::io(&tmp))?;
    fs::rename(&tmp, &path).map_err(StorageError::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_back_and_anything_else_is_no_hint() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        store(dir.path(), 4211).unwrap();
        assert_eq!(load(dir.path()), Some(4211));
        let mut damaged = encode(4211);
        damaged[12] ^= 1;
        fs::write(dir.path().join(FILE_NAME), &damaged).unwrap();
        assert_eq!(load(dir.path()), None);
        fs::write(dir.path().join(FILE_NAME), b"").unwrap();
        assert_eq!(load(dir.path()), None, "an empty file, as a crash after the rename may leave");
    }
}
