//! The reads and acknowledgements of a member of rill's `ShareConsume` stream, made for it by the node serving
//! the stream, which on a cluster is the group's coordinator (it keeps the member): each of the member's
//! partitions is read where it is led, this node's with `delivery::deliver`, another node's by a `Read` call to
//! its leader (`remote.rs`), all of them at once, and a fetch is answered as soon as one delivers.
//! Acknowledgements go to the partitions' leaders the same way. A single node leads every partition.
//!
//! A read that has not answered when a fetch is answered stays in flight, and what it delivers goes out with the
//! member's next fetch: dropping it could lose records its leader had already acquired for the member, held then
//! until their locks ran out. So on a cluster one answer holds at most a fetch's worth of records from each node
//! that leads some of the member's partitions. The reads in flight when the stream ends are aborted; what they
//! acquired is released with the member's departure, or when its locks run out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::delivery::{self, Delivered, Deliveries, Limits};
use super::{remote, AckBatch};
use crate::cluster::metadata::ClusterMetadata;
use crate::groups::TopicPartition;
use crate::node::Node;

/// How often a fetch waiting for records looks again at the partitions the group assigns the member, and the
/// longest one read of this node's partitions waits: another member's join or leave moves partitions at once,
/// and the member should read its new ones within this, not at its next heartbeat.
pub const ASSIGNMENT_RECHECK: Duration = Duration::from_millis(200);

/// The id a single node's reads go by: it leads every partition.
const SINGLE_NODE: u64 = 0;

/// The node leading `partition` by `metadata` (`here` on a single node, which has none).
fn leader_of(metadata: Option<&ClusterMetadata>, partition: &TopicPartition, here: u64) -> Option<u64> {
    let Some(metadata) = metadata else { return Some(here) };
    let topic = metadata.topics.get(&partition.topic)?;
    topic.partitions.get(usize::try_from(partition.partition).ok()?)?.leader
}

/// A member's reads in flight, one per node leading some of its partitions (this node included).
pub struct MemberReads {
    node: Arc<Node>,
    group: String,
    member: String,
    in_flight: BTreeMap<u64, AbortHandle>,
    finished_tx: mpsc::UnboundedSender<(u64, Deliveries)>,
    finished: mpsc::UnboundedReceiver<(u64, Deliveries)>,
}

impl MemberReads {
    pub fn new(node: Arc<Node>, group: &str, member: &str) -> Self {
        let (finished_tx, finished) = mpsc::unbounded_channel();
        MemberReads {
            node,
            group: group.to_owned(),
            member: member.to_owned(),
            in_flight: BTreeMap::new(),
            finished_tx,
            finished,
        }
    }

    /// What the member's partitions deliver, waiting until `limits.deadline` for something (a read in flight
    /// from an earlier fetch included).
    pub async fn read(&mut self, limits: Limits) -> Deliveries {
        let mut out = Deliveries::new();
        loop {
            while let Ok((leader, delivered)) = self.finished.try_recv() {
                self.in_flight.remove(&leader);
                merge(&mut out, delivered);
            }
            if !out.is_empty() || Instant::now() >= limits.deadline || self.node.is_shutting_down() {
                return out;
            }
            self.start(limits);
            let recheck = (Instant::now() + ASSIGNMENT_RECHECK).min(limits.deadline);
            tokio::select! {
                Some((leader, delivered)) = self.finished.recv() => {
                    self.in_flight.remove(&leader);
                    merge(&mut out, delivered);
                }
                _ = tokio::time::sleep_until(recheck) => {}
            }
        }
    }

    /// Starts a read at each node leading some of the member's partitions that has none in flight.
    fn start(&mut self, limits: Limits) {
        let here = self.node.replication.as_ref().map_or(SINGLE_NODE, |r| r.node_id());
        let metadata = self.node.replication.as_ref().map(|r| r.metadata());
        let mut by_leader: BTreeMap<u64, Vec<TopicPartition>> = BTreeMap::new();
        for partition in self.node.shares.assignment_of(&self.group, &self.member) {
            // A partition without a leader has nothing to read until it has one.
            if let Some(leader) = leader_of(metadata.as_deref(), &partition, here) {
                by_leader.entry(leader).or_default().push(partition);
            }
        }
        for (leader, partitions) in by_leader {
            if self.in_flight.contains_key(&leader) {
                continue;
            }
            let (node, group, member) = (Arc::clone(&self.node), self.group.clone(), self.member.clone());
            let finished = self.finished_tx.clone();
            let task = tokio::spawn(async move {
                let delivered = if leader == here {
                    let slice = Limits { deadline: limits.deadline.min(Instant::now() + ASSIGNMENT_RECHECK), ..limits };
                    delivery::deliver(&node, &group, &member, &partitions, slice).await
                } else {
                    let slice =
                        Limits { deadline: limits.deadline.min(Instant::now() + remote::READ_WAIT_CAP), ..limits };
                    let delivered = remote::read(&node, leader, &group, &member, partitions, slice).await;
                    // A leader that cannot be reached is not asked again at once: its refusals would come back
                    // in a loop as fast as the member polls.
                    if delivered.values().all(Result::is_err) {
                        tokio::time::sleep_until(slice.deadline.min(Instant::now() + ASSIGNMENT_RECHECK)).await;
                    }
                    delivered
                };
                let _ = finished.send((leader, delivered));
            });
            self.in_flight.insert(leader, task.abort_handle());
        }
    }

    /// Applies and stores `acknowledgements` where their partitions are led: this node's applied in memory before
    /// this returns its future (what they release is readable at once), every one stored before it resolves.
    pub fn acknowledge(
        &self,
        acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)>,
    ) -> impl std::future::Future<Output = BTreeMap<TopicPartition, Result<(), String>>> + 'static {
        let node = Arc::clone(&self.node);
        let (group, member) = (self.group.clone(), self.member.clone());
        let here = node.replication.as_ref().map_or(SINGLE_NODE, |r| r.node_id());
        let metadata = node.replication.as_ref().map(|r| r.metadata());
        let mut local = Vec::new();
        let mut elsewhere: BTreeMap<u64, Vec<(TopicPartition, Vec<AckBatch>)>> = BTreeMap::new();
        for (partition, batches) in acknowledgements {
            match leader_of(metadata.as_deref(), &partition, here) {
                Some(leader) if leader != here => elsewhere.entry(leader).or_default().push((partition, batches)),
                // Here, or no leader known: this node's refusal (not the leader) says why.
                _ => local.push((partition, batches)),
            }
        }
        let applied = delivery::apply(&node, &group, &member, local);
        async move {
            let remote_calls =
                elsewhere.into_iter().map(|(leader, acks)| remote::acknowledge(&node, leader, &group, &member, acks));
            let (stored, remote) =
                tokio::join!(delivery::store(&node, &group, applied), futures_util::future::join_all(remote_calls));
            let mut out: BTreeMap<TopicPartition, Result<(), String>> = stored
                .into_iter()
                .map(|(partition, outcome)| (partition, outcome.map_err(|failure| failure.to_string())))
                .collect();
            out.extend(remote.into_iter().flatten());
            out
        }
    }
}

impl Drop for MemberReads {
    fn drop(&mut self) {
        for read in self.in_flight.values() {
            read.abort();
        }
    }
}

/// Adds one read's deliveries to an answer's. A partition two reads delivered (its leader moved between them)
/// keeps the records of both: each was acquired for the member.
fn merge(out: &mut Deliveries, delivered: Deliveries) {
    for (partition, outcome) in delivered {
        match (out.remove(&partition), outcome) {
            (Some(Ok(first)), Ok(second)) => {
                let mut records = bytes::BytesMut::from(&first.records[..]);
                records.extend_from_slice(&second.records);
                let mut acquired = first.acquired;
                acquired.extend(second.acquired);
                out.insert(partition, Ok(Delivered { records: records.freeze(), acquired }));
            }
            (Some(Ok(kept)), Err(err)) => {
                tracing::debug!(topic = %partition.topic, partition = partition.partition, error = %err,
                    "a share partition's second read failed");
                out.insert(partition, Ok(kept));
            }
            (_, outcome) => {
                out.insert(partition, outcome);
            }
        }
    }
}
