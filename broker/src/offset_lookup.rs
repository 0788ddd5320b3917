//! What a partition's leader answers when asked for an offset (Kafka's ListOffsets, gRPC's `ListOffsets`): one
//! rule for both protocols, so that a Kafka client and a rill client never get different offsets for the same
//! question. Kafka's rules (its `Partition.fetchOffsetForTimestamp`), kept because a replica's own high watermark
//! is not one a client may trust:
//! - Only the leader answers (the edges check that first); a follower's high watermark trails the leader's.
//! - Consumers read only below the high watermark, so no offset at or past it is given out for a timestamp.
//! - A new leader learns the high watermark from its followers' fetches. Until it reaches the start of the
//!   leader's epoch, its value may be below what the previous leader already answered, so "latest", and a
//!   timestamp not found below it, are "not available yet", which clients retry (KIP-207): otherwise "latest"
//!   could go backwards across a failover.

use rill_storage::Log;

/// The question asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next committed record will get.
    Latest,
    /// The first offset whose record's timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
    /// The first record carrying the partition's largest timestamp (Kafka's -3, KIP-734). Answered as a
    /// timestamp is: only below the high watermark (a largest timestamp at or past it is "none", as in Kafka,
    /// not the largest below it).
    LargestTimestamp,
}

/// A new leader whose high watermark has not yet reached the start of its epoch: ask again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetNotAvailable {
    pub high_watermark: i64,
    pub epoch_start: i64,
}

/// What the leader's log says at the moment of a lookup.
#[derive(Debug, Clone, Copy)]
pub struct LeaderWindow {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Where the leader's current epoch starts in its log; `None` for the log's first epoch.
    pub epoch_start: Option<i64>,
}

impl LeaderWindow {
    /// The window of `log` now. The high watermark is read before the epoch start: a high watermark that moves
    /// past the epoch start in between is answered as lagging (retried), never a lagging one as caught up.
    pub fn of(log: &Log) -> LeaderWindow {
        let high_watermark = log.high_watermark();
        let epoch_start = log.epoch_end_offset(log.leader_epoch().saturating_sub(1)).map(|(_, end)| end);
        LeaderWindow { log_start_offset: log.log_start_offset(), high_watermark, epoch_start }
    }

    fn lagging(&self) -> Option<OffsetNotAvailable> {
        self.epoch_start
            .filter(|start| *start > self.high_watermark)
            .map(|epoch_start| OffsetNotAvailable { high_watermark: self.high_watermark, epoch_start })
    }

    /// The answer to `query`, given the offset the time index found for a timestamp (ignored otherwise).
    /// `Ok(None)`: no record at or after the timestamp below the high watermark.
    pub fn answer(
        &self,
        query: OffsetQuery,
        found_at_timestamp: Option<i64>,
    ) -> Result<Option<i64>, OffsetNotAvailable> {
        match query {
            OffsetQuery::Earliest => Ok(Some(self.log_start_offset)),
            OffsetQuery::Latest => match self.lagging() {
                Some(lagging) => Err(lagging),
                None => Ok(Some(self.high_watermark)),
            },
            OffsetQuery::Timestamp(_) | OffsetQuery::LargestTimestamp => {
                match found_at_timestamp.filter(|offset| *offset < self.high_watermark) {
                    Some(offset) => Ok(Some(offset)),
                    // Not found below the high watermark: it may be in what the previous leader committed.
                    None => match self.lagging() {
                        Some(lagging) => Err(lagging),
                        None => Ok(None),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUGHT_UP: LeaderWindow = LeaderWindow { log_start_offset: 3, high_watermark: 40, epoch_start: Some(30) };
    const LAGGING: LeaderWindow = LeaderWindow { log_start_offset: 3, high_watermark: 25, epoch_start: Some(30) };
    const NOT_AVAILABLE: OffsetNotAvailable = OffsetNotAvailable { high_watermark: 25, epoch_start: 30 };
    const AT: OffsetQuery = OffsetQuery::Timestamp(1_000);

    #[test]
    fn a_caught_up_leader_answers_its_high_watermark_and_log_start() {
        assert_eq!(CAUGHT_UP.answer(OffsetQuery::Latest, None), Ok(Some(40)));
        assert_eq!(CAUGHT_UP.answer(OffsetQuery::Earliest, None), Ok(Some(3)));
        let at_epoch_start = LeaderWindow { high_watermark: 30, ..CAUGHT_UP };
        assert_eq!(at_epoch_start.answer(OffsetQuery::Latest, None), Ok(Some(30)), "caught up at the epoch start");
        let first_epoch = LeaderWindow { epoch_start: None, high_watermark: 0, ..CAUGHT_UP };
        assert_eq!(first_epoch.answer(OffsetQuery::Latest, None), Ok(Some(0)), "the log's first epoch never lags");
    }

    #[test]
    fn a_new_leader_whose_high_watermark_trails_its_epoch_start_says_not_available() {
        assert_eq!(LAGGING.answer(OffsetQuery::Latest, None), Err(NOT_AVAILABLE));
        assert_eq!(LAGGING.answer(AT, Some(27)), Err(NOT_AVAILABLE), "found at or past the high watermark");
        assert_eq!(LAGGING.answer(AT, None), Err(NOT_AVAILABLE), "not found: the old leader may have committed it");
    }

    #[test]
    fn a_lagging_leader_still_answers_the_log_start_and_timestamps_below_its_high_watermark() {
        assert_eq!(LAGGING.answer(OffsetQuery::Earliest, None), Ok(Some(3)));
        assert_eq!(LAGGING.answer(AT, Some(10)), Ok(Some(10)));
    }

    #[test]
    fn a_timestamp_found_at_or_past_the_high_watermark_is_none_on_a_caught_up_leader() {
        assert_eq!(CAUGHT_UP.answer(AT, Some(40)), Ok(None));
        assert_eq!(CAUGHT_UP.answer(AT, Some(39)), Ok(Some(39)));
        assert_eq!(CAUGHT_UP.answer(AT, None), Ok(None));
        let largest = OffsetQuery::LargestTimestamp;
        assert_eq!(CAUGHT_UP.answer(largest, Some(39)), Ok(Some(39)));
        assert_eq!(CAUGHT_UP.answer(largest, Some(40)), Ok(None), "the largest is not committed yet");
        assert_eq!(LAGGING.answer(largest, Some(27)), Err(NOT_AVAILABLE));
    }
}
