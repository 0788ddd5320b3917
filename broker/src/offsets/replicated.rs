//! On a cluster node: committed offsets live in the replicated internal topic `__consumer_offsets`, and each
//! group has one coordinator node, the leader of the partition its id hashes to (Kafka's rule, so a Kafka user
//! can predict it: `Utils.abs(groupId.hashCode()) % offsets_topic_partitions`).
//!
//! The topic is created through the controller on first need, as Kafka's broker does: the first group request
//! or FindCoordinator that finds it missing proposes it (`min(3, peers)` replicas, the usual
//! `min_insync_replicas`) and is refused as not-coordinator meanwhile; it is replicated like any partition. A
//! cluster without groups never pays for its partitions. A node that comes to lead one of its
//! partitions first waits for the high watermark to reach the log end it found (so it serves only what every
//! in-sync replica holds), replays the partition into the shared map and only then answers for the groups that
//! hash there (`Coordinators::loaded`). A node that stops leading one drops that partition's offsets and groups
//! (`GroupCoordinator::drop_groups` ends their members' streams with `not-coordinator`).
//!
//! A commit is appended to the leader's log under the store's lock (after the coordinator and membership
//! checks) and answered once the partition's high watermark covers it, as an ACKS_ALL produce: an acknowledged
//! commit is on every ISR member of its offsets partition, so it survives the loss of the coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::{replay, Committed, OffsetKey, OffsetStore};
use crate::cluster::metadata::ClusterMetadata;
use crate::config::{BrokerConfig, DurabilityPolicy};
use crate::error::{BrokerError, Result};
use crate::meta::TopicSettings;
use crate::partition::Partition;
use crate::registry::blocking;
use crate::replication::links::ControllerLink;
use crate::replication::Replication;

/// The internal topic's name, as Kafka's.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often a partition waiting to load looks again at its leadership, besides every high-watermark change.
const LOAD_RECHECK: Duration = Duration::from_millis(500);

/// Kafka's coordinator partition of a group: `Utils.abs(groupId.hashCode()) % partitions`, with Java's
/// `String.hashCode` over UTF-16 code units and `Utils.abs`, which maps `Integer.MIN_VALUE` to 0.
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    let hash = group.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs.unsigned_abs() % partitions.max(1)
}

/// How every replica compacts its copy of the offsets topic (`registry::log_config_of`): Kafka's defaults for
/// `__consumer_offsets` (a pass once half a partition's sealed segments are new, tombstones kept a day).
pub const COMPACTION: rill_storage::CompactionSettings = rill_storage::CompactionSettings {
    min_cleanable_dirty_permille: 500,
    min_compaction_lag_ms: 0,
    delete_retention_ms: 86_400_000,
    max_compaction_lag_ms: None,
    key_map_bytes: 64 << 20,
};

/// The settings every replica opens the offsets topic's logs with. Retention never deletes commits; commits
/// are acknowledged at the high watermark, so page-cache durability per the broker's default flush interval
/// is Kafka's promise (an acknowledged commit is on every in-sync replica).
pub fn topic_settings(config: &BrokerConfig) -> TopicSettings {
    TopicSettings {
        segment_bytes: 64 << 20,
        durability: DurabilityPolicy::Interval,
        flush_interval_ms: config.default_flush_interval_ms,
        max_batch_bytes: 4 << 20,
        retention_ms: None,
        retention_bytes: None,
        cleanup: crate::meta::Cleanup::default(),
        segment_ms: crate::meta::DEFAULT_SEGMENT_MS,
        timestamps: crate::meta::MessageTimestamps::default(),
        compression: crate::meta::TopicCompression::Producer,
        compression_levels: crate::meta::CompressionLevels::default(),
        schema_ids: crate::meta::SchemaIdChecks::default(),
        takes_dead_letters: false,
        throttled_replicas: Default::default(),
        // Reserved: the topic defaults never reach it, so which keys it owns is never asked.
        own_keys: None,
    }
}

/// Which offsets partitions this node leads and has loaded.
pub(super) struct Coordinators {
    /// The raft controller in a node, the stand-in in the replication simulation.
    controller: Arc<dyn ControllerLink>,
    node_id: u64,
    config: Arc<BrokerConfig>,
    state: Mutex<Leading>,
    /// A creation of the topic is under way: one at a time.
    is_creating: Arc<AtomicBool>,
    /// The last creation refusal logged at WARN: every group request tries again, so the same refusal (too
    /// few alive nodes, say) repeats at DEBUG until it changes or the topic is made.
    creation_refusal: Arc<Mutex<Option<String>>>,
}

#[derive(Default)]
struct Leading {
    loaded: BTreeMap<u32, Loaded>,
    /// Partitions being loaded, with the leader epoch they are loaded at.
    loading: BTreeMap<u32, u32>,
}

#[derive(Clone)]
pub(super) struct Loaded {
    pub partition: Arc<Partition>,
    pub epoch: u32,
    pub replication: Weak<Replication>,
}

impl Coordinators {
    pub fn new(controller: Arc<dyn ControllerLink>, node_id: u64, config: Arc<BrokerConfig>) -> Self {
        Self {
            controller,
            node_id,
            config,
            state: Mutex::new(Leading::default()),
            is_creating: Arc::new(AtomicBool::new(false)),
            creation_refusal: Arc::new(Mutex::new(None)),
        }
    }

    /// Proposes the topic if the metadata has none yet (in the background: the caller is refused meanwhile).
    fn ensure_topic(&self) {
        if self.controller.metadata().topics.contains_key(OFFSETS_TOPIC)
            || self.is_creating.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.is_creating.store(false, Ordering::Release);
            return;
        };
        let (controller, is_creating) = (Arc::clone(&self.controller), Arc::clone(&self.is_creating));
        let (config, creation_refusal) = (Arc::clone(&self.config), Arc::clone(&self.creation_refusal));
        runtime.spawn(async move {
            let refusal = create_topic(controller.as_ref(), &config).await.err().map(|err| err.to_string());
            let mut logged = lock(&creation_refusal);
            match &refusal {
                Some(error) if logged.as_ref() != Some(error) => {
                    tracing::warn!(%error, "cannot create the {OFFSETS_TOPIC} topic yet; the next group request retries");
                }
                Some(error) => tracing::debug!(%error, "cannot create the {OFFSETS_TOPIC} topic yet"),
                None => {}
            }
            *logged = refusal;
            drop(logged);
            is_creating.store(false, Ordering::Release);
        });
    }

    /// The topic's partition count once it exists (it decides coordinators for good), the setting before.
    pub fn partition_count(&self) -> u32 {
        self.controller
            .metadata()
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(self.config.offsets_topic_partitions, |t| t.partitions.len() as u32)
    }

    pub fn partition_of(&self, group: &str) -> u32 {
        partition_for(group, self.partition_count())
    }

    /// The group's coordinator as the metadata names it: the leader of its offsets partition, and its address.
    pub fn coordinator(&self, group: &str) -> Option<(u64, String)> {
        self.ensure_topic();
        let metadata = self.controller.metadata();
        let placed = metadata.partition(OFFSETS_TOPIC, self.partition_of(group))?;
        let leader = placed.leader?;
        Some((leader, metadata.address_of(leader)?.to_owned()))
    }

    /// The loaded partition that holds the group, if this node coordinates it; `not-coordinator` otherwise.
    pub fn leading(&self, group: &str) -> Result<Loaded> {
        let partition = self.partition_of(group);
        let loaded = lock(&self.state).loaded.get(&partition).cloned();
        if let Some(loaded) = loaded {
            // The metadata moves before the reconciler unloads: look at it too, so a deposed leader refuses at once.
            let is_current = loaded
                .replication
                .upgrade()
                .is_some_and(|r| r.check_leader(OFFSETS_TOPIC, partition).is_ok_and(|epoch| epoch == loaded.epoch));
            if is_current {
                return Ok(loaded);
            }
        }
        Err(self.not_coordinator(group, partition))
    }

    fn not_coordinator(&self, group: &str, partition: u32) -> BrokerError {
        let coordinator = self.coordinator(group);
        let me = self.node_id;
        // This node as the coordinator means it leads but is still loading: no hint, the client retries.
        let coordinator = coordinator.filter(|(id, _)| *id != me);
        // Without the topic there is no coordinator to name: say what keeps it from being made.
        let without_coordinator_because = match self.controller.metadata().topics.contains_key(OFFSETS_TOPIC) {
            true => None,
            false => lock(&self.creation_refusal).as_ref().map(|refusal| {
                format!("the {OFFSETS_TOPIC} topic that holds the groups cannot be created yet: {refusal}")
            }),
        };
        BrokerError::NotCoordinator {
            group: group.to_owned(),
            partition,
            node_id: me,
            coordinator: coordinator.as_ref().map(|(id, _)| *id),
            coordinator_address: coordinator.map(|(_, address)| address),
            without_coordinator_because,
        }
    }
}

impl OffsetStore {
    /// Follows the applied metadata: starts loading each offsets partition this node has come to lead, and
    /// unloads (forgets the offsets of) each one it no longer leads at the epoch it loaded. Returns the
    /// partitions unloaded, whose groups the caller drops from the group coordinator.
    pub fn follow_leadership(
        self: &Arc<Self>,
        replication: &Arc<Replication>,
        metadata: &ClusterMetadata,
        partition_of: impl Fn(u32) -> Option<Arc<Partition>>,
    ) -> BTreeSet<u32> {
        let Some(coordinators) = self.coordinators() else { return BTreeSet::new() };
        let me = coordinators.node_id;
        let led: BTreeMap<u32, u32> = metadata
            .topics
            .get(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.leader == Some(me))
                    .map(|(index, p)| (index as u32, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default();
        let mut committed = self.lock();
        let mut shares = self.share_lock();
        let mut state = lock(&coordinators.state);
        let unloaded: BTreeSet<u32> =
            state.loaded.iter().filter(|(p, l)| led.get(*p) != Some(&l.epoch)).map(|(p, _)| *p).collect();
        if !unloaded.is_empty() {
            let count = coordinators.partition_count();
            committed.retain(|key, _| !unloaded.contains(&partition_for(&key.group, count)));
            shares.retain(|key, _| !unloaded.contains(&partition_for(&key.group, count)));
            for p in &unloaded {
                state.loaded.remove(p);
                tracing::info!(partition = p, "no longer the coordinator of the groups of an offsets partition");
            }
        }
        state.loading.retain(|p, epoch| led.get(p) == Some(epoch));
        for (&index, &epoch) in &led {
            if state.loaded.get(&index).is_some_and(|l| l.epoch == epoch) || state.loading.contains_key(&index) {
                continue;
            }
            let Some(partition) = partition_of(index) else { continue };
            state.loading.insert(index, epoch);
            tokio::spawn(load(Arc::clone(self), Arc::clone(replication), partition, epoch));
        }
        unloaded
    }

    pub(super) fn coordinators(&self) -> Option<&Coordinators> {
        match &self.backing {
            super::Backing::Replicated(coordinators) => Some(coordinators),
            super::Backing::Local(..) => None,
        }
    }
}

/// Places the topic (Kafka's `offsets.topic.num.partitions`, replication factor `min(3, peers)`) over the
/// alive nodes and commits it through the controller. Another node's concurrent creation wins harmlessly.
async fn create_topic(controller: &dyn ControllerLink, config: &BrokerConfig) -> Result<()> {
    let metadata = controller.metadata();
    if metadata.topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    let replication_factor = config.peers.len().clamp(1, 3) as u32;
    let partitions = config.offsets_topic_partitions;
    let settings = topic_settings(config);
    let placement = crate::cluster::placement::place(
        partitions,
        Some(replication_factor),
        None,
        &metadata.alive_nodes(),
        &metadata.racks(),
        &metadata.preferred_leaderships(),
        settings,
    )?;
    let command = crate::cluster::metadata::Command::CreateTopic { name: OFFSETS_TOPIC.to_owned(), placement };
    if controller.propose(command).await?.changed {
        tracing::info!(partitions, replication_factor, "created the replicated {OFFSETS_TOPIC} topic");
    }
    Ok(())
}

/// Loads one offsets partition this node has come to lead at `epoch`: waits for the high watermark to cover
/// the log end found (a new leader's tail may not be on the other in-sync replicas yet), replays the log, then
/// serves its groups, unless the leadership moved meanwhile.
async fn load(store: Arc<OffsetStore>, replication: Arc<Replication>, partition: Arc<Partition>, epoch: u32) {
    let index = partition.index;
    let still_leading = || replication.check_leader(OFFSETS_TOPIC, index).is_ok_and(|e| e == epoch);
    let end = partition.log().log_end_offset();
    let mut high_watermark = partition.watch_high_watermark();
    while *high_watermark.borrow_and_update() < end {
        if !still_leading() {
            return forget_loading(&store, index, epoch);
        }
        let _ = tokio::time::timeout(LOAD_RECHECK, high_watermark.changed()).await;
    }
    let log = Arc::clone(partition.log());
    let replayed = blocking(move || replay(&log)).await;
    let (entries, share_states): (BTreeMap<OffsetKey, Committed>, _) = match replayed {
        Ok(replayed) => (replayed.committed, replayed.share_states),
        Err(err) => {
            tracing::error!(partition = index, error = %err, "cannot replay an offsets partition");
            return forget_loading(&store, index, epoch);
        }
    };
    let Some(coordinators) = store.coordinators() else { return };
    // Commits of topics deleted while the previous coordinator could not forget them (it was frozen, or lost
    // its leadership first). Every commit was checked against metadata older than the leadership change this
    // load follows, which this node has applied: a topic its metadata lacks now was deleted since.
    let metadata = coordinators.controller.metadata();
    let deleted: BTreeSet<String> =
        entries.keys().filter(|k| !metadata.topics.contains_key(&k.topic)).map(|k| k.topic.clone()).collect();
    {
        let mut committed = store.lock();
        let mut shares = store.share_lock();
        let mut state = lock(&coordinators.state);
        if state.loading.get(&index) != Some(&epoch) || !still_leading() {
            return;
        }
        state.loading.remove(&index);
        let groups = entries.keys().map(|k| k.group.clone()).collect::<BTreeSet<_>>().len();
        committed.extend(entries);
        // Share partitions' states of topics deleted meanwhile stay until the group's next reset or deletion:
        // a leader loads a state only for a partition that exists.
        shares.extend(share_states);
        state.loaded.insert(index, Loaded { partition, epoch, replication: Arc::downgrade(&replication) });
        tracing::info!(partition = index, epoch, groups, "coordinating the groups of an offsets partition");
    }
    if !deleted.is_empty() {
        if let Err(err) = store.forget_topics(deleted.clone(), crate::node::now_ms()).await {
            tracing::error!(topics = ?deleted, error = %err, "cannot forget deleted topics' committed offsets");
        }
    }
}

fn forget_loading(store: &OffsetStore, index: u32, epoch: u32) {
    if let Some(coordinators) = store.coordinators() {
        let mut state = lock(&coordinators.state);
        if state.loading.get(&index) == Some(&epoch) {
            state.loading.remove(&index);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_partitions_follow_javas_string_hash_code() {
        // "hello".hashCode() == 99162322; "Aa" and "BB" collide at 2112; "" hashes to 0.
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("Aa", 50), partition_for("BB", 50));
        assert_eq!(partition_for("Aa", 50), 2112 % 50);
        assert_eq!(partition_for("", 50), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 7), 0);
        // "my-group".hashCode() == -1906497762: Kafka puts it on partition 12 of 50.
        assert_eq!(partition_for("my-group", 50), 12);
        // UTF-16 code units, not UTF-8 bytes or chars: a character outside the BMP is two units.
        let units = "😀".encode_utf16().collect::<Vec<_>>();
        let expected = i32::from(units[0]).wrapping_mul(31).wrapping_add(i32::from(units[1]));
        assert_eq!(partition_for("😀", 1000), expected.unsigned_abs() % 1000);
    }
}
