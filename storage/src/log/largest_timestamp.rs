//! The record with the largest timestamp in a log (Kafka's ListOffsets -3, KIP-734): found without reading the
//! log through, since each segment knows its largest timestamp in memory.

use std::sync::Arc;

use super::Log;
use crate::segment::{LargestTimestamp, Segment};
use crate::Result;

impl Log {
    /// The first record carrying the log's largest timestamp: in the oldest segment whose largest timestamp is
    /// the log's (as Kafka picks it), the first batch reaching it, and in that batch the first record with it.
    /// Only that segment's headers from its nearest time index entry are read. `None` for a log without records.
    ///
    /// Every segment the log holds is considered, as Kafka does (records below a log start offset moved inside a
    /// segment included); the caller decides what it may give out (below the high watermark).
    pub fn largest_timestamp(&self) -> Result<Option<LargestTimestamp>> {
        let newest: Option<Arc<Segment>> = {
            let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
            // The first of equals wins: `max_by_key` would keep the last.
            let newest = segments.values().fold(None, |best: Option<&Arc<Segment>>, segment| match best {
                Some(best) if best.max_timestamp() >= segment.max_timestamp() => Some(best),
                _ if segment.max_timestamp() == i64::MIN => best,
                _ => Some(segment),
            });
            newest.cloned()
        };
        match newest {
            Some(segment) => segment.largest_timestamp(),
            None => Ok(None),
        }
    }
}
