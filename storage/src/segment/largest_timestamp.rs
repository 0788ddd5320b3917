//! Which record of a segment carries its largest timestamp: what Kafka's ListOffsets -3 (KIP-734) answers.
//!
//! Kafka's rule (`UnifiedLog.fetchOffsetByTimestamp`, since KAFKA-16310): the first batch whose max timestamp is
//! the segment's largest, and in it the first record with that timestamp. The segment keeps its largest
//! timestamp in memory (restored from the last `.timeindex` entry, which sealing makes hold it, or from the
//! rescan of an active segment), so only the batch holding it is looked for. The time index bounds the walk:
//! every batch up to the offset of the last entry below the largest timestamp is older, so the walk of batch
//! headers starts there, as a timestamp lookup's does.

use std::sync::atomic::Ordering;

use rill_protocol::batch::HEADER_BYTES;

use super::{read_lock, Segment};
use crate::Result;

/// The record holding a log's largest timestamp, with the leader epoch of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargestTimestamp {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub leader_epoch: i32,
}

impl Segment {
    /// The first record carrying the segment's largest timestamp; `None` for an empty segment (or while the
    /// batch that raised the largest timestamp is being written, not yet visible).
    pub fn largest_timestamp(&self) -> Result<Option<LargestTimestamp>> {
        let largest = self.max_timestamp.load(Ordering::Acquire);
        if largest == i64::MIN {
            return Ok(None);
        }
        let size = self.size();
        let start = read_lock(&self.time_index).below(largest).map_or(self.base_offset, |e| e.offset);
        let mut position = read_lock(&self.offset_index).floor(start).map_or(0, |e| u64::from(e.position));
        while position + HEADER_BYTES as u64 <= size {
            let header = self.read_header_at(position)?;
            if header.max_timestamp >= largest {
                let Some(offset) = self.first_record_at_or_after(position, &header, header.max_timestamp)? else {
                    // A batch whose records all precede its own max timestamp is not one Kafka's validation
                    // lets in; read on rather than fail the lookup.
                    position += header.total_bytes() as u64;
                    continue;
                };
                return Ok(Some(LargestTimestamp {
                    offset,
                    timestamp_ms: header.max_timestamp,
                    leader_epoch: header.partition_leader_epoch,
                }));
            }
            position += header.total_bytes() as u64;
        }
        Ok(None)
    }
}
