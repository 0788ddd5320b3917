//! Partition replication over a cluster, Kafka's way: the controller's metadata says which nodes hold each
//! partition, which one leads it at which epoch, and which replicas are in sync (ISR); this module makes the
//! local logs follow it.
//!
//! - [`reconcile`] watches the applied metadata: it opens the local logs of the topics this node holds a
//!   replica of (and deletes them with the topic), starts a new leader epoch in the log of each partition this
//!   node comes to lead, and runs one [`fetcher`] per leader node this node follows.
//! - [`dropped_replicas`]: once the applied metadata no longer places a replica of a partition on this node
//!   (a completed or cancelled move, remove-node), the reconciler deletes the node's copy of it.
//! - [`fetcher`] (follower side): ONE `Replicate` stream per (follower, leader) pair for all the partitions it
//!   follows there; before fetching it truncates each log to where its last epoch ends on the leader
//!   (KIP-101/KIP-279), then appends the leader's batches unchanged and follows the leader's high watermark
//!   and log start offset (min of it and its own high watermark: Kafka's `maybeIncrementLogStartOffset`).
//! - [`leader`] (leader side): answers those streams, records each follower's log end, and moves the high
//!   watermark to the minimum log end over the ISR. [`isr`] shrinks the ISR of a follower that has not caught
//!   up for `replica_lag_time_max_ms` and grows it back once it has, both through the controller.
//! - [`high_watermarks`]: the data dir's high-watermark checkpoint, stored every
//!   `high_watermark_checkpoint_interval_ms` when a high watermark moved and on a clean shutdown; a restarted
//!   node starts each partition's high watermark from it (capped at its log end) rather than its log start.
//! - [`log_starts`]: DeleteRecords on a cluster (Kafka's `DelayedDeleteRecords`): the leader moves its log start,
//!   its answers carry it to the followers, which move theirs up to their high watermark and report it in their
//!   next fetch; the leader answers once every in-sync replica's start has reached the offset asked.
//! - [`throttle`]: the replication throttle for replica moves (`rill cluster throttle`): a token bucket per
//!   follower stream bounds what the leader sends a replica being added and not yet in sync.
//! - [`frames`]: the leader's answers as HTTP/2 chunks, its record bytes sent as the `Bytes` it read (no encode
//!   copy), byte for byte what prost would write.
//! - [`links`]: the controller and the leader nodes as replication reaches them (raft and tonic in a node);
//!   `simulation/` (tests only) runs all of the above on turmoil hosts through other implementations of them.
//!
//! Invariants: only the node the metadata names leader at the current epoch accepts produces, and it stamps
//! that epoch; a follower's log is a byte-identical prefix of its leader's once it has truncated; the high
//! watermark of a partition never passes what every in-sync replica holds, so an ACKS_ALL produce answered is
//! on every ISR member; a log start offset never moves back, a follower's never passes its leader's, and a
//! DeleteRecords answered is on every ISR member, so a failover does not serve the deleted records again.

mod answers;
mod dropped_replicas;
mod fetcher;
pub mod frames;
mod high_watermarks;
mod isr;
mod leader;
pub mod links;
mod log_starts;
mod reconcile;
mod resign;
#[cfg(test)]
mod simulation;
pub mod throttle;
mod topics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rill_protocol::internal::{EpochEndReply, EpochEndRequest};
use tokio::time::Instant;

use crate::cluster::metadata::PartitionPlacement;
use crate::cluster::Controller;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::node::Node;
use crate::partition::Partition;

pub use leader::ReplicaDataStream;
pub use reconcile::run as run_reconciler;
pub use resign::CannotWrite;
pub use topics::LOCAL_ONLY_KEY;

/// (topic, partition).
pub type PartitionKey = (String, u32);

/// What the leader of a partition knows of its followers.
#[derive(Debug, Clone)]
struct LeaderState {
    epoch: u32,
    isr: Vec<u64>,
    replicas: Vec<u64>,
    followers: HashMap<u64, FollowerProgress>,
    /// When this node took the leadership: a follower not heard from yet counts as caught up then.
    since: Instant,
    /// An ISR change sent to the controller and not yet seen applied: no second one meanwhile.
    is_isr_change_pending: bool,
    /// The followers an ISR change sent adds, until this node's metadata shows them in the ISR. The high
    /// watermark counts them from the moment the change is sent (Kafka's "maximal ISR"): once the controller
    /// applies it, the follower is in sync and may be elected, so it must hold everything committed by then.
    /// Counting only the ISR as committed, the high watermark could pass the joiner's log end meanwhile, and the
    /// joiner, elected, truncate committed records away. A change whose answer was an error stays counted too:
    /// the error may have been lost in transit after the commit (`isr.rs`). A set, as a second follower may join
    /// while the first one's fate is unknown.
    joining: Vec<u64>,
    /// Where this leader's epoch starts in its log. A follower joins the ISR only once its log reaches it
    /// (Kafka's `isFollowerInSync`): a high watermark the old leader left behind may be below what this leader
    /// holds, and a follower caught up to that alone (one that cannot append, say) would hold the new high
    /// watermark back until it lagged out again.
    epoch_start_offset: i64,
}

#[derive(Debug, Clone, Copy)]
struct FollowerProgress {
    log_end: i64,
    /// Its log start offset as its last fetch said: a DeleteRecords is answered once every ISR member's has
    /// reached the offset asked (`log_starts.rs`).
    log_start: i64,
    /// The last time its fetch offset reached the leader's log end as of its previous fetch (Kafka's rule: a
    /// follower fetching steadily under constant load stays in sync).
    caught_up_at: Instant,
    /// The leader's log end when it last answered this follower, and when.
    leader_end_at_last_fetch: i64,
    last_fetch_at: Instant,
}

/// Longest a produce waits for this node to start a leadership the metadata already gives it.
const LEADERSHIP_START_WAIT: Duration = Duration::from_secs(1);

pub struct Replication {
    controller: Arc<dyn links::ControllerLink>,
    leader_links: Arc<dyn links::LeaderLinks>,
    config: Arc<BrokerConfig>,
    node: Weak<Node>,
    node_id: u64,
    replica_lag: Duration,
    leaders: Mutex<HashMap<PartitionKey, LeaderState>>,
    /// Bumped after every produce appended on this node, and when a DeleteRecords moved a log start here: wakes
    /// the leader's waiting replication streams.
    appended: tokio::sync::watch::Sender<u64>,
    /// Bumped when a follower's fetch reports a new log start offset: wakes the DeleteRecords waiting for it.
    log_starts_reported: tokio::sync::watch::Sender<u64>,
    /// Bumped when this node has started leading a partition at a new epoch: wakes the produces that arrived
    /// between the metadata naming it leader and that start ([`Self::await_leadership_start`]).
    leaderships_started: tokio::sync::watch::Sender<u64>,
    high_watermarks: high_watermarks::HighWatermarkCheckpoints,
    resignations: Mutex<resign::Resignations>,
}

impl Replication {
    pub fn new(controller: Arc<Controller>, node: Weak<Node>, replica_lag_time_max_ms: u64) -> Self {
        let config = Arc::clone(&controller.config);
        let leader_links = Arc::new(links::TonicLeaders { config: Arc::clone(&config) });
        Self::with_links(controller.node_id, controller, leader_links, config, node, replica_lag_time_max_ms)
    }

    /// Replication over other links to the controller and the leaders (the turmoil simulation's).
    pub fn with_links(
        node_id: u64,
        controller: Arc<dyn links::ControllerLink>,
        leader_links: Arc<dyn links::LeaderLinks>,
        config: Arc<BrokerConfig>,
        node: Weak<Node>,
        replica_lag_time_max_ms: u64,
    ) -> Self {
        // Blocking, once: a file of a few bytes per partition, read before any partition is held.
        let high_watermarks = high_watermarks::HighWatermarkCheckpoints::load(&config.data_dir);
        Self {
            high_watermarks,
            node_id,
            controller,
            leader_links,
            config,
            node,
            replica_lag: Duration::from_millis(replica_lag_time_max_ms),
            leaders: Mutex::new(HashMap::new()),
            appended: tokio::sync::watch::Sender::new(0),
            log_starts_reported: tokio::sync::watch::Sender::new(0),
            leaderships_started: tokio::sync::watch::Sender::new(0),
            resignations: Mutex::new(resign::Resignations::new()),
        }
    }

    pub(crate) fn node(&self) -> Result<Arc<Node>> {
        self.node.upgrade().ok_or(BrokerError::ShuttingDown)
    }

    /// Stores the high-watermark checkpoint if a high watermark moved since the last store (blocking): the last
    /// one of a clean shutdown, after the logs are closed.
    pub fn store_high_watermarks(&self, registry: &crate::registry::Registry) {
        match self.high_watermarks.store_final(registry) {
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "cannot store the high-watermark checkpoint at shutdown"),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The controller's metadata as this node last applied it.
    pub fn metadata(&self) -> Arc<crate::cluster::metadata::ClusterMetadata> {
        self.controller.metadata()
    }

    /// The controller's metadata, changed each time this node applies a command (for those that follow it).
    pub fn watch_metadata(&self) -> tokio::sync::watch::Receiver<Arc<crate::cluster::metadata::ClusterMetadata>> {
        self.controller.watch_metadata()
    }

    /// The controller quorum's leader as this node knows it.
    pub fn controller_leader(&self) -> Option<u64> {
        self.controller.current_leader()
    }

    /// Whether this node has applied the cluster's metadata since it started (`Controller::has_caught_up`).
    pub fn has_caught_up(&self) -> bool {
        self.controller.has_caught_up()
    }

    /// The refusal of a topic the applied metadata lacks: `unknown-topic` once this node has caught up with the
    /// metadata, and before that `controller-unavailable` (UNAVAILABLE, retried by clients): a node just
    /// restarted may not know a topic yet.
    pub fn unknown_topic(&self, topic: &str) -> BrokerError {
        // The caller read the metadata before this: if this node caught up since, the apply that did it may hold
        // the topic, so the metadata is read again (after the check) before the topic is called unknown.
        if self.has_caught_up() && !self.controller.metadata().topics.contains_key(topic) {
            return BrokerError::UnknownTopic { topic: topic.to_owned() };
        }
        BrokerError::ControllerUnavailable {
            reason: format!(
                "node {} has not caught up with the cluster's metadata since it started, and does not know topic {topic:?} yet; retry in a moment",
                self.node_id
            ),
        }
    }

    fn placement(&self, topic: &str, partition: u32) -> Result<(PartitionPlacement, u32)> {
        // Read before the metadata, as in `unknown_topic`: an apply between the two could hold the topic.
        let has_caught_up = self.has_caught_up();
        let metadata = self.controller.metadata();
        let Some(placed) = metadata.topics.get(topic) else {
            // Before this node has caught up with the metadata, a produce or fetch for a topic it does not know
            // yet is "not the leader" (retried after a metadata refresh), not "no such topic".
            if !has_caught_up {
                let (leader, leader_address) = (None, None);
                let (topic, node_id) = (topic.to_owned(), self.node_id);
                return Err(BrokerError::NotLeader { topic, partition, node_id, leader, leader_address });
            }
            return Err(BrokerError::UnknownTopic { topic: topic.to_owned() });
        };
        let p = placed.partitions.get(partition as usize).ok_or_else(|| BrokerError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
            partition_count: placed.partitions.len() as u32,
        })?;
        Ok((p.clone(), placed.min_insync_replicas))
    }

    /// Ok (with the epoch) if this node leads the partition and has started that epoch in its log; otherwise
    /// `not-leader`, naming the leader when there is one.
    pub fn check_leader(&self, topic: &str, partition: u32) -> Result<u32> {
        let (placed, _) = self.placement(topic, partition)?;
        self.check_placed_leader(topic, partition, &placed)
    }

    /// The partition's leader epoch as this node's metadata has it, with [`Self::check_leader`]'s answer read
    /// from the same metadata: what a request carrying the client's current leader epoch (KIP-320) is checked
    /// against before the leadership itself, as Kafka does.
    pub fn leader_epoch(&self, topic: &str, partition: u32) -> Result<(u32, Result<u32>)> {
        let (placed, _) = self.placement(topic, partition)?;
        Ok((placed.leader_epoch, self.check_placed_leader(topic, partition, &placed)))
    }

    /// [`Self::leader_epoch`] for a read a follower may serve too (KIP-392): the answer is `Ok(true)` where this
    /// node leads, `Ok(false)` where it holds a follower's replica, and `not-leader` where it holds none.
    pub fn replica_epoch(&self, topic: &str, partition: u32) -> Result<(u32, Result<bool>)> {
        let (placed, _) = self.placement(topic, partition)?;
        let role = match self.check_placed_leader(topic, partition, &placed) {
            Ok(_) => Ok(true),
            Err(_) if placed.replicas.contains(&self.node_id) => Ok(false),
            Err(not_leader) => Err(not_leader),
        };
        Ok((placed.leader_epoch, role))
    }

    /// KIP-392's choice, at the leader, of the replica a consumer in `rack` reading from `fetch_offset` should
    /// read from: `None` (this node serves) when this node is in that rack, or when no follower is in it that is
    /// alive, in sync, and holds `fetch_offset` as of its last fetch (Kafka's `RackAwareReplicaSelector` with
    /// KAFKA-14372's in-sync rule); among several, the one whose log reaches furthest, the lowest id among equals.
    pub fn preferred_read_replica(&self, topic: &str, partition: u32, rack: &str, fetch_offset: i64) -> Option<u64> {
        let metadata = self.controller.metadata();
        if metadata.rack_of(self.node_id) == Some(rack) {
            return None;
        }
        let leaders = lock(&self.leaders);
        let state = leaders.get(&(topic.to_owned(), partition))?;
        state
            .isr
            .iter()
            .filter(|&&id| id != self.node_id && metadata.rack_of(id) == Some(rack))
            .filter(|&&id| metadata.state_of(id) == Some(crate::cluster::metadata::NodeState::Alive))
            .filter_map(|id| Some((*id, state.followers.get(id)?)))
            .filter(|(_, progress)| progress.log_start <= fetch_offset && fetch_offset <= progress.log_end)
            .max_by_key(|(id, progress)| (progress.log_end, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    fn check_placed_leader(&self, topic: &str, partition: u32, placed: &PartitionPlacement) -> Result<u32> {
        let is_ready = placed.leader == Some(self.node_id)
            && lock(&self.leaders)
                .get(&(topic.to_owned(), partition))
                .is_some_and(|state| state.epoch == placed.leader_epoch);
        if is_ready {
            return Ok(placed.leader_epoch);
        }
        let metadata = self.controller.metadata();
        Err(BrokerError::NotLeader {
            topic: topic.to_owned(),
            partition,
            node_id: self.node_id,
            leader: placed.leader.filter(|id| *id != self.node_id),
            leader_address: placed.leader.and_then(|id| metadata.address_of(id).map(str::to_owned)),
        })
    }

    /// Waits, up to [`LEADERSHIP_START_WAIT`], while the metadata names this node the partition's leader and it
    /// has not started that epoch yet: a topic created a moment ago, a leadership just handed here. The start
    /// takes milliseconds (`reconcile::become_leader`); refused meanwhile, a client backs off far longer, and
    /// some retry at once until they give up (Sarama 1.22 fails a produce right after CreateTopics that way).
    /// Returns at once in every other case; the caller's leader check then answers as before.
    pub async fn await_leadership_start(&self, topic: &str, partition: u32) {
        let mut started = self.leaderships_started.subscribe();
        let _ = tokio::time::timeout(LEADERSHIP_START_WAIT, async {
            while self.is_starting_leadership(topic, partition) {
                if started.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    fn is_starting_leadership(&self, topic: &str, partition: u32) -> bool {
        let Ok((placed, _)) = self.placement(topic, partition) else { return false };
        placed.leader == Some(self.node_id)
            && lock(&self.leaders)
                .get(&(topic.to_owned(), partition))
                .is_none_or(|state| state.epoch != placed.leader_epoch)
    }

    /// Before an ACKS_ALL append: refused while the ISR is below the topic's `min_insync_replicas`.
    pub fn check_in_sync(&self, topic: &str, partition: u32) -> Result<()> {
        let (placed, min_insync_replicas) = self.placement(topic, partition)?;
        let in_sync = placed.isr.len() as u32;
        if in_sync < min_insync_replicas {
            return Err(BrokerError::NotEnoughReplicas {
                topic: topic.to_owned(),
                partition,
                in_sync,
                min_insync_replicas,
            });
        }
        Ok(())
    }

    /// After an append on the leader: the high watermark may move (at once when the ISR is the leader alone).
    pub fn on_append(&self, partition: &Partition) {
        tracing::debug!(topic = %partition.topic, partition = partition.index, log_end = partition.log().log_end_offset(), "leader appended");
        self.advance_high_watermark(partition);
        self.appended.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Ok while this node leads `partition` at `epoch` itself; `not-leader` (naming no leader) once it does not,
    /// including when it leads again at a later epoch: what a wait begun at `epoch` promised no longer holds.
    fn check_still_leading(&self, partition: &Partition, epoch: u32) -> Result<()> {
        let topic = partition.topic.as_str();
        if self.check_leader(topic, partition.index)? == epoch {
            return Ok(());
        }
        Err(BrokerError::NotLeader {
            topic: topic.to_owned(),
            partition: partition.index,
            node_id: self.node_id,
            leader: None,
            leader_address: None,
        })
    }

    /// Waits until the high watermark covers `end_offset` (ACKS_ALL). Fails with `not-leader` if this node
    /// stops leading the partition at `epoch` meanwhile: the batch may or may not survive, as for any failed
    /// produce a retry may duplicate it.
    pub async fn wait_replicated(&self, partition: &Partition, epoch: u32, end_offset: i64) -> Result<()> {
        let mut high_watermark = partition.watch_high_watermark();
        loop {
            let is_covered = *high_watermark.borrow_and_update() >= end_offset;
            if partition.is_closed() {
                return Err(partition.closed());
            }
            // Leadership is checked after the high watermark is read, never before: a node that stepped down
            // (a preferred leader election, a reassignment) follows its new leader's high watermark, which may
            // cover the offsets of a batch this node is about to truncate. Still leading at `epoch` after the
            // read means this node computed that high watermark itself, as the leader.
            // Led again by this node, but at a later epoch: the batch may have been cut by a truncation.
            self.check_still_leading(partition, epoch)?;
            if is_covered {
                return Ok(());
            }
            if high_watermark.changed().await.is_err() {
                return Err(partition.closed());
            }
        }
    }

    /// Leader: the high watermark becomes the smallest log end over the ISR and a follower joining it (never
    /// moving back).
    fn advance_high_watermark(&self, partition: &Partition) {
        let log = partition.log();
        let leader_end = log.log_end_offset();
        let advanced_to = {
            let leaders = lock(&self.leaders);
            let Some(state) = leaders.get(&(partition.topic.to_string(), partition.index)) else { return };
            let bound = state.high_watermark_bound(self.node_id, leader_end);
            // Stored under the lock: a follower's join is decided under it against the high watermark, which
            // must not pass the joiner between that check and `joining` being set.
            (bound > log.high_watermark()).then(|| {
                log.set_high_watermark(bound);
                bound
            })
        };
        if let Some(high_watermark) = advanced_to {
            partition.publish_offsets();
            // Wakes the followers' held fetches: they are answered the new high watermark now (`leader.rs`).
            self.appended.send_modify(|count| *count = count.wrapping_add(1));
            tracing::debug!(topic = %partition.topic, partition = partition.index, high_watermark, "high watermark advanced");
        }
    }

    /// KIP-279 for a follower of a partition this node leads.
    pub fn epoch_end(&self, request: EpochEndRequest) -> Result<EpochEndReply, tonic::Status> {
        let node = self.node()?;
        self.check_leader(&request.topic, request.partition)?;
        let partition = node.registry.partition(&request.topic, request.partition)?;
        let asked = i32::try_from(request.leader_epoch).unwrap_or(i32::MAX);
        Ok(match partition.log().epoch_end_offset(asked) {
            Some((leader_epoch, end_offset)) => EpochEndReply { end_offset, leader_epoch },
            None => EpochEndReply { end_offset: -1, leader_epoch: -1 },
        })
    }

    /// Each replica's log end as this node, the leader, knows it (its own included); empty elsewhere.
    pub fn replica_log_ends(&self, topic: &str, partition: u32, leader_end: i64) -> Vec<(u64, i64)> {
        let leaders = lock(&self.leaders);
        let Some(state) = leaders.get(&(topic.to_owned(), partition)) else { return Vec::new() };
        state
            .replicas
            .iter()
            .filter_map(|id| {
                if *id == self.node_id {
                    Some((*id, leader_end))
                } else {
                    state.followers.get(id).map(|f| (*id, f.log_end))
                }
            })
            .collect()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
