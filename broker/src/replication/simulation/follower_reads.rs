//! KIP-392 under the simulation's faults: consumers' reads served by followers, through the check Kafka's
//! Fetch v11+ makes (`Node::check_replica_at`) and the partition's read, which stops at the follower's own high
//! watermark. Every batch a follower served must be in the converged log, byte for byte, at the offset it was
//! served at: a follower never shows a consumer a record that a failover then took back, whatever it missed
//! while cut off, crashed or full. And the leader, asked for a consumer in another node's rack, may only name
//! that node, and only while it is in the ISR the leader holds.

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_protocol::BatchIter;

use super::checks::Converged;
use super::{World, NODES, TOPIC};

/// How far below its high watermark a follower is read from.
const TAIL_OFFSETS: i64 = 16;

/// The rack the simulation gives each node: one node per rack, as three zones would.
pub(super) fn rack_of(node_id: u64) -> String {
    format!("zone-{node_id}")
}

#[derive(Debug, Default)]
pub(super) struct FollowerReads {
    /// Each batch a follower served, by its base offset, with the node that served it first.
    served: BTreeMap<i64, (u64, Bytes)>,
    /// Reads a follower answered with at least one batch.
    pub(super) reads: usize,
    /// Times the leader named a follower for a consumer in that follower's rack.
    pub(super) redirects: usize,
}

impl FollowerReads {
    pub(super) async fn round(&mut self, world: &World) {
        for node_id in NODES {
            let Some(node) = world.node(node_id) else { continue };
            // A follower's replica, as a v11 fetch without an epoch resolves it.
            let Ok((_, false)) = node.check_replica_at(TOPIC, 0, None) else { continue };
            let Ok(partition) = node.registry.partition(TOPIC, 0) else { continue };
            // As a consumer near the tail reads, where a follower's log runs ahead of what is committed. A deletion
            // may move the start past it meanwhile: the read is then out of range, and skipped.
            let log = partition.log();
            let from = log.log_start_offset().max(log.high_watermark() - TAIL_OFFSETS);
            let Ok(read) = partition.read(from, 256 << 10).await else { continue };
            if read.batches.is_empty() {
                continue;
            }
            self.reads += 1;
            for batch in BatchIter::new(read.batches) {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(err) => {
                        world.violation(format!("node {node_id} served a follower read that is no batch: {err}"));
                        break;
                    }
                };
                let offset = batch.header.base_offset;
                match self.served.get(&offset) {
                    Some((first, seen)) if *seen != batch.bytes => world.violation(format!(
                        "node {node_id} served a batch at offset {offset} other than the one node {first} served there"
                    )),
                    Some(_) => {}
                    None => {
                        self.served.insert(offset, (node_id, batch.bytes));
                    }
                }
            }
        }
        self.check_redirects(world);
    }

    fn check_redirects(&mut self, world: &World) {
        let metadata = world.controller.committed();
        let Some(leader) = metadata.topics.get(TOPIC).and_then(|t| t.partitions.first()).and_then(|p| p.leader) else {
            return;
        };
        let Some(node) = world.node(leader) else { return };
        let (Some(replication), Ok(partition)) = (&node.replication, node.registry.partition(TOPIC, 0)) else {
            return;
        };
        let tail = partition.log().high_watermark();
        for asked in NODES {
            let named = replication.preferred_read_replica(TOPIC, 0, &rack_of(asked), tail);
            match named {
                None => {}
                Some(named) if named == asked && named != leader => self.redirects += 1,
                Some(named) => world.violation(format!(
                    "leader {leader} named node {named} for a consumer in {}, node {asked}'s rack",
                    rack_of(asked)
                )),
            }
        }
    }

    /// Every batch served at or above the converged log's start is the converged log's batch at that offset.
    pub(super) fn check(&self, converged: &Converged) -> Result<(), String> {
        let batches = converged.batches()?;
        for (offset, (node_id, served)) in self.served.range(converged.from()..) {
            match batches.get(offset) {
                Some(kept) if kept == served => {}
                Some(_) => {
                    return Err(format!("node {node_id} served a batch at offset {offset} that the log changed"))
                }
                None => {
                    return Err(format!("node {node_id} served a batch at offset {offset} that the log does not keep"))
                }
            }
        }
        if self.reads == 0 || self.redirects == 0 {
            return Err(format!("follower reads not exercised: {self:?}"));
        }
        Ok(())
    }
}
