//! Producer ids for idempotent producers (Kafka's InitProducerId, rill's gRPC `InitProducerId`): never issued
//! twice, across restarts and crashes.
//!
//! Ids are handed out from a block reserved ahead: a block is durable (fsynced) before the first id of it is
//! issued, so a crash loses at most the rest of a block, never re-issues an id. Where blocks come from is
//! [`ProducerIdBlocks`]: on a single node the data dir's `__producer_ids` file ([`LocalProducerIdBlocks`]); in a
//! cluster, the controller commits each block as a metadata command so that every node's ids are disjoint
//! (Kafka's `AllocateProducerIds`, KIP-730; `cluster::producer_id_blocks`).

use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{BrokerError, Result};

/// Ids reserved at a time: Kafka's block size. One fsync per this many producers started.
pub const BLOCK_IDS: i64 = 1000;
/// The file, in the data dir, that records the end of the last reserved block.
pub const FILE_NAME: &str = "__producer_ids";
const MAGIC: &[u8; 8] = b"RILLPIDS";

/// Where blocks of producer ids come from. Each call returns ids no earlier call, on any node or before any
/// crash, returned.
pub trait ProducerIdBlocks: Send + Sync {
    fn reserve(&self, count: i64) -> Result<Range<i64>>;
}

/// A single node's blocks, recorded in `<data>/__producer_ids`: magic `RILLPIDS`, the end of the last reserved
/// block (i64, big-endian), CRC-32 of those 16 bytes (u32); rewritten through a temporary file, fsync, rename and
/// directory fsync before any id of the new block is issued.
pub struct LocalProducerIdBlocks {
    path: PathBuf,
}

impl LocalProducerIdBlocks {
    pub fn new(data_dir: &Path) -> LocalProducerIdBlocks {
        LocalProducerIdBlocks { path: data_dir.join(FILE_NAME) }
    }

    fn load_end(&self) -> Result<i64> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BrokerError::io(&self.path)(e)),
        };
        decode(&bytes).map_err(|reason| BrokerError::CorruptMetadata {
            path: self.path.clone(),
            reason: format!(
                "{reason}; producer ids cannot be issued without knowing which were: restore the file, or replace \
                 it with one whose end is above every producer id ever issued"
            ),
        })
    }

    fn store_end(&self, end: i64) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(BrokerError::io(&tmp))?;
        file.write_all(&encode(end)).map_err(BrokerError::io(&tmp))?;
        file.sync_all().map_err(BrokerError::io(&tmp))?;
        fs::rename(&tmp, &self.path).map_err(BrokerError::io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(BrokerError::io(dir))?;
        }
        Ok(())
    }
}

fn encode(end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&end.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> std::result::Result<i64, &'static str> {
    let Ok(bytes) = <&[u8; 20]>::try_from(bytes) else { return Err("not 20 bytes long") };
    if crc32fast::hash(&bytes[..16]).to_be_bytes() != bytes[16..] {
        return Err("checksum mismatch");
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic");
    }
    let end = i64::from_be_bytes(bytes[8..16].try_into().map_err(|_| "short")?);
    if end < 0 {
        return Err("negative end");
    }
    Ok(end)
}

impl ProducerIdBlocks for LocalProducerIdBlocks {
    fn reserve(&self, count: i64) -> Result<Range<i64>> {
        let start = self.load_end()?;
        let end = start
            .checked_add(count)
            .ok_or_else(|| BrokerError::Internal("every producer id up to i64::MAX has been issued".into()))?;
        self.store_end(end)?;
        tracing::debug!(start, end, "reserved a block of producer ids");
        Ok(start..end)
    }
}

/// Issues producer ids from reserved blocks.
pub struct ProducerIds {
    blocks: Box<dyn ProducerIdBlocks>,
    /// The rest of the current block.
    current: Mutex<Range<i64>>,
}

impl ProducerIds {
    pub fn new(blocks: Box<dyn ProducerIdBlocks>) -> ProducerIds {
        ProducerIds { blocks, current: Mutex::new(0..0) }
    }

    /// A producer id never issued before. Blocks (an fsync) once per [`BLOCK_IDS`] ids: call it off the async
    /// threads (see [`ProducerIds::issue`]).
    pub fn next_blocking(&self) -> Result<i64> {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_empty() {
            *current = self.blocks.reserve(BLOCK_IDS)?;
        }
        current.next().ok_or_else(|| BrokerError::Internal("a reserved block of producer ids was empty".into()))
    }

    /// [`ProducerIds::next_blocking`] on a blocking thread.
    pub async fn issue(self: &Arc<Self>) -> Result<i64> {
        let ids = Arc::clone(self);
        crate::registry::blocking(move || ids.next_blocking()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_issued_twice_across_restarts_even_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let issued: Vec<i64> = (0..5).map(|_| first.next_blocking().unwrap()).collect();
        assert_eq!(issued, vec![0, 1, 2, 3, 4]);
        // A crash: the rest of the block is lost, never reused.
        drop(first);
        let second = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let after: Vec<i64> = (0..(BLOCK_IDS + 1)).map(|_| second.next_blocking().unwrap()).collect();
        assert_eq!(after[0], BLOCK_IDS);
        assert_eq!(after.last().copied(), Some(2 * BLOCK_IDS));
    }

    #[test]
    fn a_damaged_file_refuses_ids_and_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let ids = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let err = ids.next_blocking().unwrap_err().to_string();
        assert!(err.contains(FILE_NAME) && err.contains("not 20 bytes"), "{err}");
    }

    #[test]
    fn the_file_round_trips_and_any_flipped_byte_is_caught() {
        let bytes = encode(123_000);
        assert_eq!(decode(&bytes), Ok(123_000));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at}");
        }
    }
}
