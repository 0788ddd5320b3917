//! ISR changes, decided by the partition leader and committed by the controller (Kafka's AlterPartition): a
//! follower that has not caught up for `replica_lag_time_max_ms` leaves; one whose log reaches the high
//! watermark comes back (`leader.rs`). One change per partition is in flight at a time; the metadata, once
//! applied, is what the leader acts on (`reconcile.rs`).

use std::sync::Arc;

use tokio::time::Instant;

use super::{lock, PartitionKey, Replication};
use crate::cluster::metadata::Command;

impl Replication {
    /// Sends the new ISR to the controller in the background; the partition accepts no other change until the
    /// answer.
    pub(super) fn propose_isr(&self, key: PartitionKey, epoch: u32, isr: Vec<u64>) {
        let controller = Arc::clone(&self.controller);
        let leader = self.node_id;
        let (topic, partition) = key.clone();
        let command = Command::AlterIsr { topic, partition, leader, leader_epoch: epoch, isr };
        let replication = self.node.upgrade().and_then(|node| node.replication.clone());
        tokio::spawn(async move {
            let committed = controller.propose(command).await;
            if let Err(err) = &committed {
                tracing::info!(topic = %key.0, partition = key.1, error = %err, "ISR change not committed; will retry");
            }
            if let Some(replication) = replication {
                // A later epoch's state is not this change's to clear.
                if let Some(state) = lock(&replication.leaders).get_mut(&key).filter(|state| state.epoch == epoch) {
                    // The joiner stays counted either way, until this node's metadata shows it in the ISR
                    // (`reconcile.rs`) or it goes quiet (`shrink_lagging`): committed, the commit may reach this
                    // node's copy after this answer; an error may have been lost in transit after the commit
                    // (a timeout, a controller leader gone), and the change then applies later. Counting a
                    // joiner that never joins only holds the high watermark to a follower that is caught up.
                    state.is_isr_change_pending = false;
                }
            }
        });
    }

    /// Leader, on a timer: takes out of the ISR every follower that has not caught up for the lag limit.
    pub(super) fn shrink_lagging(&self) {
        let now = Instant::now();
        let mut changes = Vec::new();
        {
            let mut leaders = lock(&self.leaders);
            for (key, state) in leaders.iter_mut() {
                if state.is_isr_change_pending {
                    continue;
                }
                state.forget_quiet_joiners(now, self.replica_lag);
                let lagging: Vec<u64> = state
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| *id != self.node_id)
                    .filter(|id| {
                        let caught_up_at = state.followers.get(id).map_or(state.since, |f| f.caught_up_at);
                        now.saturating_duration_since(caught_up_at) > self.replica_lag
                    })
                    .collect();
                if lagging.is_empty() {
                    continue;
                }
                state.is_isr_change_pending = true;
                let shrunk: Vec<u64> = state.isr.iter().copied().filter(|id| !lagging.contains(id)).collect();
                tracing::warn!(topic = %key.0, partition = key.1, ?lagging, ?shrunk, lag_ms = self.replica_lag.as_millis() as u64, "followers lagging; shrinking the ISR");
                changes.push((key.clone(), state.epoch, shrunk));
            }
        }
        for (key, epoch, isr) in changes {
            self.propose_isr(key, epoch, isr);
        }
    }
}
