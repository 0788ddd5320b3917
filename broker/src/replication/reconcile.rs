//! Makes this node follow the applied metadata: local logs for the topics it holds replicas of, a new leader
//! epoch in each log it comes to lead, the leader's view of each ISR, and one fetcher per leader it follows. A log
//! fills the node's tail cache only while this node leads it: nobody reads a follower's log.
//! Runs on every metadata change, and on a timer for the ISR's lag checks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::dropped_replicas::{dropped_replicas, is_decided_on_current, DroppedReplica, LocalTopic};
use super::fetcher::{Assignment, Fetcher};
use super::{lock, LeaderState, PartitionKey, Replication};
use crate::cluster::metadata::ClusterMetadata;
use crate::error::BrokerError;
use crate::topic_id::TopicId;

#[derive(Default)]
struct Reconciler {
    /// Topics seen in the metadata during this process's life: only those are deleted when they leave it (a
    /// node that starts with a stale replica of the metadata must not delete what it does not know yet).
    seen: HashSet<String>,
    /// Partitions whose high watermark this node moves (every replicated partition, from its first sight).
    held: HashSet<PartitionKey>,
    fetchers: HashMap<u64, Fetcher>,
    /// The last check for dropped replicas found this node not caught up with the metadata, so it decided
    /// nothing: checked again on the next lag-check tick rather than only on the next metadata change.
    awaits_catch_up: bool,
    /// Every topic of the metadata last applied, with its id: a name that leaves, or comes back with another
    /// id (deleted and re-created between two passes), was deleted.
    topic_ids: HashMap<String, TopicId>,
}

pub async fn run(replication: Arc<Replication>) {
    let mut metadata = replication.controller.watch_metadata();
    let mut reconciler = Reconciler::default();
    let period = (replication.replica_lag / 4).max(Duration::from_millis(50));
    let mut lag_check = tokio::time::interval(period);
    lag_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checkpoint_period = Duration::from_millis(replication.config.high_watermark_checkpoint_interval_ms);
    let mut checkpoint = tokio::time::interval_at(Instant::now() + checkpoint_period, checkpoint_period);
    checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let current = Arc::clone(&metadata.borrow_and_update());
        reconciler.apply(&replication, &current).await;
        loop {
            tokio::select! {
                changed = metadata.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = lag_check.tick() => {
                    replication.shrink_lagging();
                    if reconciler.awaits_catch_up {
                        reconciler.delete_dropped_replicas(&replication, &current).await;
                    }
                }
                // On the blocking pool, not awaited: a slow disk never delays a leadership change.
                _ = checkpoint.tick() => super::high_watermarks::spawn_store(&replication),
            }
        }
    }
}

impl Reconciler {
    async fn apply(&mut self, replication: &Arc<Replication>, metadata: &ClusterMetadata) {
        let Ok(node) = replication.node() else { return };
        let me = replication.node_id;
        self.forget_offsets_of_deleted_topics(&node, metadata);
        for (name, placed) in &metadata.topics {
            if !placed.partitions.iter().any(|p| p.replicas.contains(&me)) {
                continue;
            }
            self.seen.insert(name.clone());
            // Metadata written before topic ids has none to compare (its topics' local ids are the nodes' own).
            let local_id = node.registry.topic(name).map(|local| local.id).ok();
            if let (Some(local_id), Some(id)) = (local_id, placed.topic_id) {
                if local_id != id {
                    self.delete_older_topic(replication, &node, name, local_id, id).await;
                }
            }
            match node.registry.topic(name) {
                Err(_) => {
                    let count = placed.partitions.len() as u32;
                    let (settings, id) = (placed.settings.clone(), placed.topic_id(name));
                    match node.registry.open_replicated(name, count, settings, id).await {
                        Ok(_) => tracing::info!(topic = %name, partitions = count, "opened the replicas of a topic"),
                        Err(err) => {
                            tracing::error!(topic = %name, error = %err, "cannot open the replicas of a topic");
                            // What this node was made leader of and cannot even open goes to a replica that can.
                            if err.reason() == rill_protocol::reason::Reason::DiskFull {
                                let led = placed.partitions.iter().enumerate().filter(|(_, p)| p.leader == Some(me));
                                for (index, p) in led {
                                    replication.resign_for_full_disk(name, index as u32, p.leader_epoch);
                                }
                            }
                        }
                    }
                }
                Ok(local) => {
                    // Grown (`Command::AddPartitions`), or grown while this node was down: the new logs open here
                    // before the loop below follows them.
                    let count = placed.partitions.len() as u32;
                    if local.partition_count() < count {
                        match node.registry.add_partitions(name, count).await {
                            Ok(_) => {
                                tracing::info!(topic = %name, partitions = count, "opened a topic's new partitions")
                            }
                            Err(err) => {
                                tracing::error!(topic = %name, error = %err, "cannot open a topic's new partitions")
                            }
                        }
                    }
                    // Altered (`Command::AlterTopicConfig`), or altered while this node was down: the metadata's
                    // settings are the topic's, on every node.
                    if local.settings() != placed.settings {
                        match node.registry.alter_settings(name, placed.settings.clone()).await {
                            Ok(_) => {
                                tracing::info!(topic = %name, "applied a topic's altered settings to its replicas")
                            }
                            Err(err) => tracing::error!(topic = %name, error = %err, "cannot apply a topic's settings"),
                        }
                    }
                }
            }
        }
        let gone: Vec<String> = self.seen.iter().filter(|name| !metadata.topics.contains_key(*name)).cloned().collect();
        for name in gone {
            self.seen.remove(&name);
            self.held.retain(|(topic, _)| *topic != name);
            lock(&replication.leaders).retain(|(topic, _), _| *topic != name);
            match node.registry.delete(&name).await {
                Ok(()) | Err(BrokerError::UnknownTopic { .. }) => {}
                Err(err) => tracing::error!(topic = %name, error = %err, "cannot delete a deleted topic's replicas"),
            }
        }
        let mut wanted: BTreeMap<u64, Vec<Assignment>> = BTreeMap::new();
        let mut led: HashSet<PartitionKey> = HashSet::new();
        for (name, placed) in &metadata.topics {
            for (index, p) in placed.partitions.iter().enumerate() {
                let index = index as u32;
                if !p.replicas.contains(&me) {
                    continue;
                }
                let Ok(partition) = node.registry.partition(name, index) else { continue };
                let key = (name.clone(), index);
                if self.held.insert(key.clone()) {
                    let log = partition.log();
                    // What this node had reached before a restart (capped at the log end), else the log start.
                    let checkpointed = replication.high_watermarks.found(name, index);
                    log.hold_high_watermark(checkpointed.unwrap_or_else(|| log.log_start_offset()));
                    tracing::debug!(
                        topic = %name,
                        partition = index,
                        ?checkpointed,
                        high_watermark = log.high_watermark(),
                        "holding the high watermark"
                    );
                    partition.publish_offsets();
                }
                match p.leader {
                    Some(leader) if leader == me => {
                        led.insert(key.clone());
                        if let Err(err) = become_leader(replication, &partition, key, p).await {
                            tracing::error!(topic = %name, partition = index, error = %err, "cannot take the leadership");
                            // Its epoch could not be written: an in-sync replica with room leads instead.
                            if err.reason() == rill_protocol::reason::Reason::DiskFull {
                                replication.resign_for_full_disk(name, index, p.leader_epoch);
                            }
                        }
                    }
                    Some(leader) => {
                        // Before its fetcher starts: a follower's appends stay out of the tail cache.
                        partition.log().stop_caching_appends();
                        let assignment = Assignment { topic: name.clone(), partition: index, epoch: p.leader_epoch };
                        wanted.entry(leader).or_default().push(assignment);
                    }
                    None => partition.log().stop_caching_appends(),
                }
            }
        }
        let stepped_down: Vec<PartitionKey> = {
            let mut leaders = lock(&replication.leaders);
            let stale: Vec<PartitionKey> = leaders.keys().filter(|key| !led.contains(*key)).cloned().collect();
            for key in &stale {
                leaders.remove(key);
            }
            stale
        };
        for (topic, index) in stepped_down {
            tracing::info!(%topic, partition = index, "no longer the partition leader");
            if let Ok(partition) = node.registry.partition(&topic, index) {
                partition.wake_waiters();
            }
        }
        let unloaded = node.offsets.follow_leadership(replication, metadata, |index| {
            node.registry.partition(crate::offsets::OFFSETS_TOPIC, index).ok()
        });
        if !unloaded.is_empty() {
            let offsets = std::sync::Arc::clone(&node.offsets);
            node.groups.drop_groups(
                |group| unloaded.contains(&offsets.partition_of(group)),
                |group| offsets.check_coordinator(group).err(),
            );
            // Share groups' members rejoin at the new coordinator (their next heartbeat here is not-coordinator).
            node.shares.drop_groups(|group| unloaded.contains(&offsets.partition_of(group)));
        }
        self.fetchers.retain(|leader, _| wanted.contains_key(leader));
        for (leader, mut assignments) in wanted {
            assignments.sort();
            let Some(address) = metadata.address_of(leader).map(str::to_owned) else { continue };
            let is_current =
                self.fetchers.get(&leader).is_some_and(|f| f.assignments == assignments && f.address == address);
            if !is_current {
                tracing::info!(leader, %address, partitions = assignments.len(), "following a leader");
                self.fetchers.insert(leader, Fetcher::start(Arc::clone(replication), leader, address, assignments));
            }
        }
        self.delete_dropped_replicas(replication, metadata).await;
    }

    /// Each group coordinated here forgets the committed offsets of the topics deleted since the last pass, in
    /// the background: the tombstones wait for the offsets partition's in-sync replicas, which must not hold up
    /// a leadership change. Every node runs this, so each group's coordinator does it for its groups.
    fn forget_offsets_of_deleted_topics(&mut self, node: &Arc<crate::node::Node>, metadata: &ClusterMetadata) {
        let current: HashMap<String, TopicId> =
            metadata.topics.iter().map(|(name, placed)| (name.clone(), placed.topic_id(name))).collect();
        let deleted: BTreeSet<String> =
            self.topic_ids.iter().filter(|(name, id)| current.get(*name) != Some(id)).map(|(n, _)| n.clone()).collect();
        self.topic_ids = current;
        if deleted.is_empty() {
            return;
        }
        // Share groups too: the windows this node keeps, and the states stored for the groups coordinated here,
        // so a topic created again under the name is read from each group's reset policy.
        for topic in &deleted {
            node.shares.forget_topic(topic);
        }
        let (offsets, deleted_at_ms) = (Arc::clone(&node.offsets), crate::node::now_ms());
        tokio::spawn(async move {
            if let Err(err) = offsets.forget_topics(deleted.clone(), deleted_at_ms).await {
                tracing::error!(topics = ?deleted, error = %err, "cannot forget deleted topics' committed offsets");
            }
            offsets.forget_share_states_of_topics(&deleted).await;
        });
    }

    /// Deletes this node's copy of a topic that the metadata now names with another id: a topic of the same name
    /// deleted while this node was down, or deleted and re-created between two passes. Its records are not the
    /// new topic's, and a replica that kept them could lead the new topic with them. Kafka's KRaft brokers do the
    /// same with a log whose topic id the metadata no longer has (a stray log). The caller opens the new topic.
    async fn delete_older_topic(
        &mut self,
        replication: &Arc<Replication>,
        node: &Arc<crate::node::Node>,
        name: &str,
        local_id: TopicId,
        id: TopicId,
    ) {
        tracing::warn!(topic = %name, local_topic_id = %local_id, topic_id = %id, "deleting the replicas of an older topic of this name");
        // Fetchers hold the old logs: stopped first, they are started again for the new ones below.
        self.fetchers.retain(|_, fetcher| !fetcher.assignments.iter().any(|a| a.topic == name));
        self.held.retain(|(topic, _)| topic != name);
        lock(&replication.leaders).retain(|(topic, _), _| topic != name);
        match node.registry.delete(name).await {
            Ok(()) | Err(BrokerError::UnknownTopic { .. }) => {}
            Err(err) => tracing::error!(topic = %name, error = %err, "cannot delete an older topic's replicas"),
        }
    }

    /// Deletes this node's whole copy of a topic, which no fetcher follows (the metadata places none of it here).
    async fn delete_local_topic(
        &mut self,
        replication: &Arc<Replication>,
        node: &Arc<crate::node::Node>,
        name: String,
        why: &'static str,
    ) {
        self.seen.remove(&name);
        self.held.retain(|(topic, _)| *topic != name);
        lock(&replication.leaders).retain(|(topic, _), _| *topic != name);
        match node.registry.delete(&name).await {
            Ok(()) => tracing::info!(topic = %name, why, "deleted a topic's local copy"),
            Err(err) => tracing::error!(topic = %name, why, error = %err, "cannot delete a topic's local copy"),
        }
    }

    /// Deletes the local copies the metadata no longer places on this node (`dropped_replicas.rs`), after the
    /// fetchers stopped following them. The disk work runs on the blocking pool (`Registry`).
    async fn delete_dropped_replicas(&mut self, replication: &Arc<Replication>, metadata: &ClusterMetadata) {
        let Ok(node) = replication.node() else { return };
        let local: Vec<LocalTopic> = node
            .registry
            .list()
            .iter()
            .map(|topic| LocalTopic {
                name: topic.name.to_string(),
                partition_holds_records: topic.partitions().iter().map(|p| p.log().log_end_offset() > 0).collect(),
            })
            .collect();
        // Caught up, and `metadata` is the metadata published since: read before the caught-up check, an apply
        // landing after it (the one that catches up) would make a topic it created look deleted.
        let has_caught_up = replication.has_caught_up();
        let has_caught_up = is_decided_on_current(has_caught_up, metadata, &replication.controller.metadata());
        // Not caught up yet (or deciding on metadata older than the catch-up): nothing is decided now, and the
        // lag-check timer asks again until it is.
        self.awaits_catch_up = !has_caught_up;
        let dropped = dropped_replicas(replication.node_id, metadata, has_caught_up, &local);
        for replica in dropped {
            match replica {
                DroppedReplica::Topic(name) => {
                    self.delete_local_topic(replication, &node, name, "dropped replica").await
                }
                DroppedReplica::Deleted(name) => {
                    self.delete_local_topic(replication, &node, name, "deleted while this node was down").await
                }
                DroppedReplica::Partition(name, index) => {
                    let key = (name, index);
                    // Held again, from the empty log, if the partition comes back here.
                    self.held.remove(&key);
                    lock(&replication.leaders).remove(&key);
                    let (name, index) = key;
                    match node.registry.reset_partition(&name, index).await {
                        Ok(()) => tracing::info!(topic = %name, partition = index, "deleted a dropped replica's copy"),
                        Err(err) => {
                            tracing::error!(topic = %name, partition = index, error = %err, "cannot delete a dropped replica")
                        }
                    }
                }
            }
        }
    }
}

/// Takes or refreshes the leadership of one partition: a new epoch starts in the log (before any produce is
/// accepted at it), and the ISR and replicas follow the metadata.
async fn become_leader(
    replication: &Replication,
    partition: &Arc<crate::partition::Partition>,
    key: PartitionKey,
    placed: &crate::cluster::metadata::PartitionPlacement,
) -> crate::error::Result<()> {
    // Before any produce is accepted: the cache holds this log from its end now on (a follower's log is cached by
    // nobody, `Log::stop_caching_appends`), so reads at the tail, the followers' fetches first, hit memory.
    partition.log().start_caching_appends();
    let is_new_epoch = lock(&replication.leaders).get(&key).is_none_or(|state| state.epoch != placed.leader_epoch);
    let epoch = i32::try_from(placed.leader_epoch).unwrap_or(i32::MAX);
    if is_new_epoch {
        let log = Arc::clone(partition.log());
        let is_behind = log.epoch_end_offset(i32::MAX).is_none_or(|(last, _)| last < epoch);
        if is_behind {
            tokio::task::spawn_blocking(move || log.begin_leader_epoch(epoch)).await.map_err(BrokerError::join)??;
        }
        tracing::info!(topic = %key.0, partition = key.1, epoch = placed.leader_epoch, isr = ?placed.isr, "leading the partition");
    }
    // Where the epoch before this one ends is where this one starts (the log start if there is none).
    let log = partition.log();
    let epoch_start_offset = log.epoch_end_offset(epoch - 1).map_or(log.log_start_offset(), |(_, end)| end);
    {
        let mut leaders = lock(&replication.leaders);
        let state = leaders.entry(key).or_insert_with(|| LeaderState {
            epoch: placed.leader_epoch,
            isr: Vec::new(),
            replicas: Vec::new(),
            followers: HashMap::new(),
            since: Instant::now(),
            is_isr_change_pending: false,
            joining: Vec::new(),
            epoch_start_offset,
        });
        if state.epoch != placed.leader_epoch {
            *state = LeaderState {
                epoch: placed.leader_epoch,
                followers: HashMap::new(),
                since: Instant::now(),
                is_isr_change_pending: false,
                joining: Vec::new(),
                epoch_start_offset,
                ..state.clone()
            };
        }
        state.follow_placement(&placed.isr, &placed.replicas);
    }
    replication.leaderships_started.send_modify(|started| *started = started.wrapping_add(1));
    replication.advance_high_watermark(partition);
    partition.wake_waiters();
    Ok(())
}
