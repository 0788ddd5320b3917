//! DeleteRecords in the simulation: the driver's seeded deletions (`Deletions`), a watch on every node's log start
//! offset (`watch_log_start`), and the end-of-seed checks on the converged replicas' log starts.
//!
//! The driver deletes up to near the high watermark it saw acknowledged, so a follower cut off or crashed meanwhile
//! comes back with its log ending below the leader's log start: its fetch is answered `fetch_offset_below_log_start`
//! and it starts over (`fetcher.rs`). The watch counts those start-overs, so the test can insist the path ran.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_protocol::v1;

use super::{lock, wire, World, TOPIC};
use crate::node::Node;

/// One deletion in this many acknowledged ACKS_ALL records, on average. Each one fsyncs a checkpoint on every
/// replica, which costs wall time; at one in 16, 20 seeds still see deletions in each and start-overs in most.
const DELETE_ONE_IN: u32 = 16;
/// Deletions go to at most this far below the acknowledged end, so most pass a lagging follower's log end.
const DELETE_BELOW_END_MAX: i64 = 4;
/// Short, as the issue asks, and under the wire's silence limit: a leader whose ISR lags answers `timed-out`.
const DELETE_TIMEOUT_MS: u32 = 400;

/// The driver's DeleteRecords calls and what they were answered.
pub struct Deletions {
    rng: StdRng,
    pub asked: usize,
    pub succeeded: usize,
    /// The highest low watermark a DeleteRecords answered: no replica may serve a record below it after healing.
    pub deleted_to: i64,
}

impl Deletions {
    pub fn new(seed: u64) -> Self {
        // Its own stream, so the fault loop's draws stay those of the seed before deletions were added.
        Self { rng: StdRng::seed_from_u64(seed ^ 0xde1e_7e00), asked: 0, succeeded: 0, deleted_to: 0 }
    }

    /// After an ACKS_ALL produce answered at `acknowledged_end - 1`: sometimes (a seeded choice) asks `host` to
    /// delete the records below an offset at most `acknowledged_end`, which the high watermark has reached.
    pub async fn maybe_delete(&mut self, host: &str, acknowledged_end: i64) {
        if !self.rng.gen_ratio(1, DELETE_ONE_IN) {
            return;
        }
        let lowest = (acknowledged_end - DELETE_BELOW_END_MAX).max(0);
        let offset = self.rng.gen_range(lowest..=acknowledged_end);
        let request = v1::DeleteRecordsRequest {
            topic: TOPIC.into(),
            partitions: vec![v1::DeleteRecordsBefore { partition: 0, offset }],
            timeout_ms: DELETE_TIMEOUT_MS,
        };
        self.asked += 1;
        // Refused (not the leader, timed out) or lost: nothing was promised, nothing is checked.
        let Ok(response) = wire::delete_records(host, &request).await else { return };
        let Some(result) = response.partitions.first() else { return };
        if result.error_reason.is_empty() && result.low_watermark >= 0 {
            self.succeeded += 1;
            self.deleted_to = self.deleted_to.max(result.low_watermark);
        }
    }
}

impl std::fmt::Debug for Deletions {
    // Without the generator's state, which says nothing to a reader of a seed's summary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} asked, {} answered, deleted to {}", self.asked, self.succeeded, self.deleted_to)
    }
}

/// Samples the partition's log start every tick: it must never go back during this process's life, nor be below
/// the start the node's previous process had published when it crashed (published only once checkpointed). A
/// start above the log end sampled before it is a start-over (a follower's fetch offset fell below the leader's
/// start): following the leader's start never passes the high watermark, so nothing else moves it there.
pub async fn watch_log_start(node_id: u64, node: Arc<Node>, world: Arc<World>) {
    let mut highest = lock(&world.log_start_at_crash).get(&node_id).copied();
    let mut last_end: Option<i64> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Ok(partition) = node.registry.partition(TOPIC, 0) else { continue };
        let log = partition.log();
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        if let Some(highest) = highest.filter(|h| start < *h) {
            world.violation(format!("node {node_id}: the log start went back from {highest} to {start}"));
            return;
        }
        if last_end.is_some_and(|e| start > e) {
            world.start_overs.fetch_add(1, Ordering::Relaxed);
        }
        highest = Some(start);
        last_end = Some(end);
    }
}

/// The log start `node_id` has published, kept at a crash as the floor of its next process's.
pub fn log_start_of(world: &World, node_id: u64) -> Option<i64> {
    Some(world.node(node_id)?.registry.partition(TOPIC, 0).ok()?.log().log_start_offset())
}
