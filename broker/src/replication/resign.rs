//! A leader that cannot write hands its leadership over, as Kafka moves the leaderships of a failed log
//! directory (KIP-112): once an append on this node fails for a full disk or because an fsync of the partition's
//! log failed (the log then takes no appends until the node restarts: storage's `FsyncFailed`), or the node
//! cannot open the replica it was made leader of or write the new epoch of a leadership it was given, it asks the
//! controller (`Command::ResignLeadership`) to let the first other alive in-sync replica lead at the next epoch and
//! to take this node out of the ISR. Producers then follow the new leader instead of retrying here until an
//! operator frees space or restarts the node. This node follows like any replica: its fetcher's appends fail until
//! space returns (or the restart), then it catches up, the new leader takes it back into the ISR, and the
//! preferred-leader balance may give the leadership back.
//!
//! A partition with no other alive in-sync replica stays here, refusing produces: moving it would lose what only
//! this node holds in full. It is asked about again after `RETRY_AFTER_REFUSAL`, since the ISR may have grown
//! meanwhile.

use std::time::Duration;

use rill_protocol::reason::Reason;
use rill_storage::StorageError;

use super::{lock, Replication};
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::error::BrokerError;

/// How long a refused resignation waits before a later failed append may ask again.
const RETRY_AFTER_REFUSAL: Duration = Duration::from_secs(5);

/// Why a leader cannot write a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotWrite {
    /// Below the disk reserve, or ENOSPC: writable again once space is freed.
    DiskFull,
    /// An fsync of the partition's log failed: writable again once the node restarts and recovers it.
    FsyncFailed,
}

impl CannotWrite {
    /// Whether `err` means this node cannot write the partition (as opposed to a refusal of the request).
    pub fn of(err: &BrokerError) -> Option<CannotWrite> {
        match err {
            BrokerError::Storage(StorageError::FsyncFailed { .. }) => Some(CannotWrite::FsyncFailed),
            _ if err.reason() == Reason::DiskFull => Some(CannotWrite::DiskFull),
            _ => None,
        }
    }

    fn what(self) -> &'static str {
        match self {
            CannotWrite::DiskFull => "this node's disk is full",
            CannotWrite::FsyncFailed => "an fsync of this node's log of the partition failed",
        }
    }

    fn until(self) -> &'static str {
        match self {
            CannotWrite::DiskFull => "until space is freed",
            CannotWrite::FsyncFailed => "until the node restarts",
        }
    }
}

impl Replication {
    /// This node leads `topic`'s `partition` at `epoch` and cannot write it: asks the controller, in the
    /// background, to move the leadership. At most one request per partition and epoch is in flight.
    pub fn resign_for_full_disk(&self, topic: &str, partition: u32, epoch: u32) {
        self.resign(topic, partition, epoch, CannotWrite::DiskFull);
    }

    /// [`Replication::resign_for_full_disk`], for either reason.
    pub fn resign(&self, topic: &str, partition: u32, epoch: u32, why: CannotWrite) {
        let key = (topic.to_owned(), partition);
        if !lock(&self.resignations).insert((key.clone(), epoch)) {
            return;
        }
        let Some(replication) = self.node.upgrade().and_then(|node| node.replication.clone()) else { return };
        let command =
            Command::ResignLeadership { topic: key.0.clone(), partition, leader: self.node_id, leader_epoch: epoch };
        tokio::spawn(async move {
            let (topic, partition) = (key.0.as_str(), key.1);
            let outcome = replication.controller.propose(command).await;
            let is_moved = match outcome {
                Ok(outcome) if outcome.changed => {
                    // Committed; applied here a moment later (a proposal forwarded to the controller leader).
                    let moved =
                        move |m: &ClusterMetadata| m.partition(topic, partition).is_none_or(|p| p.leader_epoch > epoch);
                    replication.controller.wait_for_metadata(Box::new(moved)).await;
                    let new_leader = replication.metadata().partition(topic, partition).and_then(|p| p.leader);
                    tracing::warn!(
                        topic,
                        partition,
                        epoch,
                        ?new_leader,
                        "{}; handed the partition's leadership to an in-sync replica",
                        why.what()
                    );
                    true
                }
                Ok(_) => {
                    tracing::warn!(topic, partition, epoch, "{} and no other replica is in sync (or it leads no more); it keeps the leadership and refuses produces {}", why.what(), why.until());
                    false
                }
                Err(err) => {
                    tracing::warn!(topic, partition, epoch, error = %err, "{}; cannot ask the controller to move the partition's leadership", why.what());
                    false
                }
            };
            if !is_moved {
                tokio::time::sleep(RETRY_AFTER_REFUSAL).await;
            }
            lock(&replication.resignations).remove(&(key, epoch));
        });
    }

    /// Before an offset commit of `bytes` on this coordinator: `disk-full` once less than half the node's disk
    /// reserve is free (`DiskReserve::take_for_commit`), after which the caller resigns the offsets partition.
    pub fn take_commit_room(&self, bytes: u64) -> crate::error::Result<()> {
        self.node()?.disk_reserve.take_for_commit(bytes)
    }
}

/// The (partition, epoch) pairs whose resignation is in flight, or was refused a moment ago.
pub(super) type Resignations = std::collections::HashSet<(super::PartitionKey, u32)>;
