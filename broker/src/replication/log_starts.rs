//! DeleteRecords on a cluster, the leader's half (Kafka's `DelayedDeleteRecords`): the leader has moved its own
//! log start (`crate::delete_records`); its replication answers carry it to the followers, which move theirs up
//! to their high watermark (`fetcher.rs`) and say where it is in their next fetch (`leader.rs`). The request is
//! answered once every in-sync replica's log start has reached the offset asked, with the low watermark: the
//! smallest log start over the ISR. Only then is the deletion on every replica a failover may elect.
//!
//! Waits are bounded by the request's timeout; past it the answer is `timed-out` naming the replicas that lag.
//! A replica out of the ISR is not waited for (as a lagging replica does not hold back an ACKS_ALL produce): it
//! takes the leader's log start on its next answers, once it is back.

use std::time::Duration;

use tokio::time::Instant;

use super::{lock, LeaderState, Replication};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;

/// How often a waiting DeleteRecords looks again without a follower's report: an ISR shrink (a lagging replica
/// dropped) or a lost leadership does not wake it otherwise.
const RECHECK_EVERY: Duration = Duration::from_millis(100);

/// The ISR's log starts as `state` knows them (this node's own is `leader_log_start`), against `offset`: the low
/// watermark (the smallest), and the replicas below `offset` with their start (-1: not heard from since this node
/// took the leadership).
fn isr_log_starts(state: &LeaderState, node_id: u64, leader_log_start: i64, offset: i64) -> (i64, Vec<(u64, i64)>) {
    let starts: Vec<(u64, i64)> = state
        .isr
        .iter()
        .map(|id| {
            let start = if *id == node_id {
                leader_log_start
            } else {
                state.followers.get(id).map_or(-1, |follower| follower.log_start)
            };
            (*id, start)
        })
        .collect();
    let low_watermark = starts.iter().map(|(_, start)| *start).min().unwrap_or(leader_log_start).max(0);
    let lagging = starts.into_iter().filter(|(_, start)| *start < offset).collect();
    (low_watermark, lagging)
}

impl Replication {
    /// After a DeleteRecords moved a log start on this node, the leader: wakes the followers' held fetches so
    /// they learn the new start now rather than at the end of their wait.
    pub fn on_log_start_moved(&self) {
        self.appended.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Waits until every in-sync replica's log start offset is at least `offset`, then answers the low watermark.
    /// `not-leader` if this node stops leading the partition at `epoch` meanwhile; `timed-out` naming the lagging
    /// replicas once `timeout` has passed.
    pub async fn wait_log_starts(
        &self,
        partition: &Partition,
        epoch: u32,
        offset: i64,
        timeout: Duration,
    ) -> Result<i64> {
        let mut reported = self.log_starts_reported.subscribe();
        let deadline = Instant::now() + timeout;
        let topic = partition.topic.as_str();
        loop {
            if partition.is_closed() {
                return Err(partition.closed());
            }
            self.check_still_leading(partition, epoch)?;
            let leader_log_start = partition.log().log_start_offset();
            let (low_watermark, lagging) = {
                let leaders = lock(&self.leaders);
                let Some(state) = leaders.get(&(topic.to_owned(), partition.index)) else {
                    // `check_leader` just found it; gone since: the leadership moved on.
                    continue;
                };
                isr_log_starts(state, self.node_id, leader_log_start, offset)
            };
            if lagging.is_empty() {
                return Ok(low_watermark);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(BrokerError::DeleteRecordsTimedOut {
                    topic: topic.to_owned(),
                    partition: partition.index,
                    offset,
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    lagging: lagging_list(&lagging),
                });
            }
            let wake = deadline.min(now + RECHECK_EVERY);
            let _ = tokio::time::timeout_at(wake, reported.changed()).await;
        }
    }
}

/// `node 2 (log start 0), node 3 (not heard from)`.
fn lagging_list(lagging: &[(u64, i64)]) -> String {
    let described: Vec<String> = lagging
        .iter()
        .map(|(id, start)| match start {
            -1 => format!("node {id} (not heard from)"),
            start => format!("node {id} (log start {start})"),
        })
        .collect();
    described.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::replication::FollowerProgress;

    fn leader_of(isr: &[u64], followers: &[(u64, i64)]) -> LeaderState {
        let now = Instant::now();
        let progress = |log_start| FollowerProgress {
            log_end: 100,
            log_start,
            caught_up_at: now,
            leader_end_at_last_fetch: 100,
            last_fetch_at: now,
        };
        LeaderState {
            epoch: 3,
            isr: isr.to_vec(),
            replicas: vec![1, 2, 3],
            followers: followers.iter().map(|&(id, start)| (id, progress(start))).collect::<HashMap<_, _>>(),
            since: now,
            is_isr_change_pending: false,
            joining: Vec::new(),
            epoch_start_offset: 0,
        }
    }

    #[test]
    fn the_low_watermark_is_the_smallest_start_over_the_isr_and_only_the_isr() {
        // Node 3 is out of the ISR: its start does not hold the answer back, nor lower the low watermark.
        let state = leader_of(&[1, 2], &[(2, 40), (3, 0)]);
        assert_eq!(isr_log_starts(&state, 1, 40, 40), (40, vec![]));
        let state = leader_of(&[1, 2, 3], &[(2, 45), (3, 30)]);
        assert_eq!(isr_log_starts(&state, 1, 50, 40), (30, vec![(3, 30)]));
    }

    #[test]
    fn a_follower_not_heard_from_lags_and_is_named_so() {
        let state = leader_of(&[1, 2, 3], &[(2, 40)]);
        let (low_watermark, lagging) = isr_log_starts(&state, 1, 40, 40);
        assert_eq!((low_watermark, lagging.clone()), (0, vec![(3, -1)]));
        let state = leader_of(&[1, 2, 3], &[(2, 7)]);
        let (_, lagging) = isr_log_starts(&state, 1, 40, 40);
        assert_eq!(lagging_list(&lagging), "node 2 (log start 7), node 3 (not heard from)");
    }
}
