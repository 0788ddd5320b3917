//! The topics the broker holds: created, deleted, grown and restored on start, each change made durable in its
//! metadata file (see `meta.rs` for why the order of steps makes every crash point safe).
//!
//! Lookups (every produce and fetch) take a read lock on a map for a few nanoseconds and clone an `Arc`. Topic
//! changes are serialized by one admin lock; they are rare, slow (they touch the disk) and must not interleave
//! (two creates of one name), so that lock is an async mutex held across the awaits of one change. It is never
//! taken on the produce/fetch path. A create holds it only to reserve its name (and its partitions' share of the
//! limits); the slow part, opening the partitions and writing the metadata, runs beside other creates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rill_protocol::v1;
use rill_storage::{
    is_deleted_dir_name, parse_partition_dir_name, partition_dir, Log, LogConfig, SegmentFileCache, SystemClock,
    TailCache, TopicName, WriteMode,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{BrokerConfig, DurabilityPolicy};
use crate::error::{BrokerError, Result};
use crate::file_budget::FileBudget;
use crate::meta::{self, TopicMeta, TopicSettings};
use crate::partition::Partition;
use crate::topic_config::{ConfigKey, Defaults, TopicConfigState};
use crate::topic_defaults::TopicDefaults;
use crate::topic_id::TopicId;

/// Prefix of names the broker keeps for itself (`__topics`, `__consumer_offsets`).
pub const RESERVED_PREFIX: &str = "__";

/// Partitions opened or closed at once on start and shutdown. Each open or close is a few small writes and an
/// fsync or two: one at a time, 10,000 partitions took minutes; a bounded number at once lets the device merge
/// them without flooding the blocking pool.
const PARALLEL_PARTITION_TASKS: usize = 64;

/// What every partition of the node shares.
#[derive(Clone)]
struct Shared {
    /// The broker's `appends_in_flight` slots, shared by every partition's writer.
    append_slots: Arc<Semaphore>,
    /// Descriptors of sealed segments being read, bounded by `max_open_segment_files`.
    segment_files: Arc<SegmentFileCache>,
    /// The writers' group-commit counts; `None` when the node records no metrics.
    write_metrics: Option<Arc<crate::metrics::WriteMetrics>>,
    /// Recent appends of every partition, in memory; `None` with `tail_cache_bytes` 0.
    tail_cache: Option<Arc<TailCache>>,
}

pub struct Topic {
    pub name: TopicName,
    /// Stable for the topic's life (`topic_id.rs`); kept in its metadata file.
    pub id: TopicId,
    /// Changed by an alter (`Registry::alter_settings`) while the topic serves: read as a copy.
    settings: RwLock<TopicSettings>,
    /// Grows with AddPartitions; never shrinks while the topic exists.
    partitions: RwLock<Vec<Arc<Partition>>>,
    next_round_robin: AtomicU32,
}

impl Topic {
    pub fn partition_count(&self) -> u32 {
        read(&self.partitions).len() as u32
    }

    /// The topic's settings as they are now.
    pub fn settings(&self) -> TopicSettings {
        read(&self.settings).clone()
    }

    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        read(&self.partitions).clone()
    }

    pub fn partition(&self, index: u32) -> Result<Arc<Partition>> {
        let partitions = read(&self.partitions);
        partitions.get(index as usize).cloned().ok_or_else(|| BrokerError::UnknownPartition {
            topic: self.name.to_string(),
            partition: index,
            partition_count: partitions.len() as u32,
        })
    }

    /// The next partition for a record without a key: plain round-robin over the current partitions.
    pub fn round_robin_partition(&self) -> u32 {
        self.next_round_robin.fetch_add(1, Ordering::Relaxed) % self.partition_count().max(1)
    }

    pub fn info(&self) -> v1::TopicInfo {
        v1::TopicInfo {
            name: self.name.to_string(),
            partition_count: self.partition_count(),
            config: Some(settings_info(&self.settings())),
            replication_factor: 1,
            min_insync_replicas: 1,
            overridden_keys: Vec::new(),
        }
    }
}

/// A topic's settings as the API shows them.
pub fn settings_info(s: &TopicSettings) -> v1::TopicConfig {
    v1::TopicConfig {
        retention_bytes: s.retention_bytes,
        retention_ms: s.retention_ms,
        segment_bytes: Some(s.segment_bytes),
        durability: match s.durability {
            DurabilityPolicy::Always => v1::DurabilityPolicy::Always,
            DurabilityPolicy::Interval => v1::DurabilityPolicy::Interval,
            DurabilityPolicy::Never => v1::DurabilityPolicy::Never,
        } as i32,
        flush_interval_ms: Some(s.flush_interval_ms),
        max_batch_bytes: Some(s.max_batch_bytes),
        cleanup_policy: Some(s.cleanup.policy().to_owned()),
        delete_retention_ms: Some(s.cleanup.delete_retention_ms),
        min_compaction_lag_ms: Some(s.cleanup.min_compaction_lag_ms),
        min_cleanable_dirty_ratio: Some(f64::from(s.cleanup.min_cleanable_dirty_permille) / 1000.0),
        max_compaction_lag_ms: s.cleanup.max_compaction_lag_ms,
        segment_ms: Some(s.segment_ms),
        message_timestamp_type: Some(s.timestamps.type_name().to_owned()),
        message_timestamp_before_max_ms: s.timestamps.before_max_ms,
        message_timestamp_after_max_ms: s.timestamps.after_max_ms,
        compression_type: Some(s.compression.name().to_owned()),
        key_schema_validation: Some(s.schema_ids.key.enabled),
        value_schema_validation: Some(s.schema_ids.value.enabled),
        key_subject_name_strategy: Some(format!("{:?}", s.schema_ids.key.strategy)),
        value_subject_name_strategy: Some(format!("{:?}", s.schema_ids.value.strategy)),
        dead_letter_group_enable: Some(s.takes_dead_letters),
        compression_gzip_level: s.compression_levels.gzip,
        compression_lz4_level: s.compression_levels.lz4,
        compression_zstd_level: s.compression_levels.zstd,
        leader_throttled_replicas: Some(s.throttled_replicas.leader.to_string()),
        follower_throttled_replicas: Some(s.throttled_replicas.follower.to_string()),
    }
}

pub struct Registry {
    data_dir: PathBuf,
    config: Arc<BrokerConfig>,
    topics: RwLock<TopicMap>,
    admin: tokio::sync::Mutex<()>,
    /// Topics being created, by name, with their partition counts: the name is taken and the partitions count
    /// against the limits, but the topic is not visible until its metadata file is written. A create holds the
    /// admin lock only to reserve its name, so creates run side by side (each is mostly fsyncs: one at a time,
    /// 10,000 topics took 90 s).
    creating: std::sync::Mutex<BTreeMap<String, u32>>,
    /// Bumped after every create, delete and add-partitions, so the group coordinator can rebalance groups
    /// subscribed to the topic without the registry knowing about groups.
    changes: tokio::sync::watch::Sender<u64>,
    shared: Shared,
    /// Consulted before a topic change opens partitions.
    budget: FileBudget,
    /// A single node's dynamic topic defaults (`topic_defaults.rs`), as stored in its data directory; a cluster
    /// node's are the metadata's, and this stays empty.
    topic_defaults: RwLock<Arc<TopicDefaults>>,
    /// Held by a change of the topic defaults, start to end, so two never interleave their topics' changes.
    defaults_writes: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Restores every topic from its metadata file and opens its partition logs; removes partition directories
    /// that no metadata file mentions (leftovers of a create, delete or add-partitions cut short by a crash).
    pub async fn restore(
        config: Arc<BrokerConfig>,
        budget: FileBudget,
        segment_files: Arc<SegmentFileCache>,
        tail_cache: Option<Arc<TailCache>>,
        write_metrics: Option<Arc<crate::metrics::WriteMetrics>>,
    ) -> Result<Registry> {
        let data_dir = config.data_dir.clone();
        let (metas, topic_defaults) = blocking({
            let (data_dir, config) = (data_dir.clone(), Arc::clone(&config));
            move || {
                let metas = meta::load_all(&data_dir)?;
                remove_orphan_partitions(&data_dir, &metas)?;
                Ok((metas, crate::topic_defaults::load(&data_dir, &config)?))
            }
        })
        .await?;
        let partition_total: u64 = metas.iter().map(|m| u64::from(m.partition_count)).sum();
        if partition_total > budget.max_partitions() {
            tracing::warn!(
                partitions = partition_total,
                max_partitions = budget.max_partitions(),
                max_open_files = budget.max_open_files,
                "the data directory holds more partitions than the open-file budget allows; raise the open-file limit"
            );
        }
        let shared = Shared {
            append_slots: Arc::new(Semaphore::new(config.appends_in_flight)),
            segment_files,
            write_metrics,
            tail_cache,
        };
        let mut topics = BTreeMap::new();
        let mut opening = JoinSet::new();
        let slots = Arc::new(Semaphore::new(PARALLEL_PARTITION_TASKS));
        for meta in metas {
            let (data_dir, config, shared, slots) =
                (data_dir.clone(), Arc::clone(&config), shared.clone(), Arc::clone(&slots));
            opening.spawn(async move {
                let _slot = slots.acquire_owned().await.map_err(|_| BrokerError::ShuttingDown)?;
                let name = TopicName::new(&meta.name)?;
                let partitions =
                    open_partitions(&data_dir, &name, &meta.settings, 0..meta.partition_count, &config, &shared)
                        .await?;
                tracing::debug!(topic = %name, partitions = meta.partition_count, "restored topic");
                Ok::<_, BrokerError>((meta, name, partitions))
            });
        }
        while let Some(opened) = opening.join_next().await {
            let (meta, name, partitions) = opened.map_err(BrokerError::join)??;
            let topic = Topic {
                name,
                id: meta.topic_id.expect("load_all gives every topic an id"),
                settings: RwLock::new(meta.settings),
                partitions: RwLock::new(partitions),
                next_round_robin: AtomicU32::new(0),
            };
            topics.insert(meta.name, Arc::new(topic));
        }
        tracing::info!(topics = topics.len(), partitions = partition_total, "restored topics");
        let registry = Registry {
            data_dir,
            config,
            topics: RwLock::new(TopicMap::from(topics)),
            admin: tokio::sync::Mutex::new(()),
            creating: std::sync::Mutex::default(),
            changes: tokio::sync::watch::Sender::new(0),
            shared,
            budget,
            topic_defaults: RwLock::new(Arc::new(topic_defaults)),
            defaults_writes: tokio::sync::Mutex::new(()),
        };
        registry.follow_stored_defaults().await;
        Ok(registry)
    }

    /// Brings the topics that do not own a key the stored defaults set to its value: what a change of the
    /// defaults cut short by a crash had left undone (`topic_defaults.rs`). A topic that cannot take it keeps
    /// its settings, logged.
    async fn follow_stored_defaults(&self) {
        let defaults = self.topic_defaults();
        if defaults.is_empty() {
            return;
        }
        let keys: Vec<ConfigKey> = defaults.keys().collect();
        for topic in self.list().into_iter().filter(|topic| !topic.name.as_str().starts_with(RESERVED_PREFIX)) {
            let current = TopicConfigState { settings: topic.settings(), min_insync_replicas: 1 };
            let scope = Defaults::with(&self.config, &defaults);
            match crate::topic_defaults::followed(topic.name.as_str(), &current, 1, &keys, scope) {
                Ok(None) => {}
                Ok(Some(next)) => {
                    if let Err(err) = self.alter_settings(topic.name.as_str(), next.settings).await {
                        tracing::error!(topic = %topic.name, error = %err, "cannot apply the topic defaults");
                    }
                }
                Err(err) => tracing::warn!(topic = %topic.name, error = %err, "a topic cannot take the topic defaults"),
            }
        }
    }

    /// This single node's dynamic topic defaults.
    pub fn topic_defaults(&self) -> Arc<TopicDefaults> {
        Arc::clone(&read(&self.topic_defaults))
    }

    /// Changes this single node's topic defaults (`topic_defaults.rs`): checked, every user topic that does not own
    /// a key changed re-resolved (refused whole if one cannot take it), then, unless `is_validate_only`, the
    /// defaults written and each changed topic's settings. Answers the new defaults and the topics changed.
    pub async fn alter_topic_defaults(
        &self,
        changes: &[crate::topic_config::ConfigChange],
        is_validate_only: bool,
    ) -> Result<(TopicDefaults, usize)> {
        let _writes = self.defaults_writes.lock().await;
        let (next, keys) = self.topic_defaults().changed(changes, &self.config)?;
        let user_topics = || self.list().into_iter().filter(|topic| !topic.name.as_str().starts_with(RESERVED_PREFIX));
        let followed = |topic: &Topic| {
            let current = TopicConfigState { settings: topic.settings(), min_insync_replicas: 1 };
            crate::topic_defaults::followed(
                topic.name.as_str(),
                &current,
                1,
                &keys,
                Defaults::with(&self.config, &next),
            )
        };
        // Checked whole before anything is written: every topic must be able to take it.
        let mut count = 0;
        for topic in user_topics() {
            count += usize::from(followed(&topic)?.is_some());
        }
        if is_validate_only {
            return Ok((next, count));
        }
        blocking({
            let (data_dir, next) = (self.data_dir.clone(), next.clone());
            move || crate::topic_defaults::store(&data_dir, &next)
        })
        .await?;
        *write(&self.topic_defaults) = Arc::new(next.clone());
        // Each topic read again as it is applied, so an alter of it since the check is kept, not undone.
        for topic in user_topics() {
            let Ok(Some(state)) = followed(&topic) else { continue };
            match self.alter_settings(topic.name.as_str(), state.settings).await {
                Ok(_) | Err(BrokerError::UnknownTopic { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        tracing::info!(defaults = ?next, topics = count, "altered the topic defaults");
        Ok((next, count))
    }

    /// Partitions of every topic, and of those being created; internal ones excluded.
    fn partition_total(&self) -> u64 {
        let creating: u64 = lock(&self.creating).values().map(|count| u64::from(*count)).sum();
        creating + read(&self.topics).values().map(|t| u64::from(t.partition_count())).sum::<u64>()
    }

    /// Takes `name` for a create of `partition_count` partitions, after checking the limits; the name is given
    /// back when the returned reservation drops (after the topic is inserted, or when the create fails or is
    /// cancelled).
    async fn reserve(&self, name: &TopicName, partition_count: u32) -> Result<Reservation<'_>> {
        let _admin = self.admin.lock().await;
        let (is_taken, creating_count) = {
            let creating = lock(&self.creating);
            (creating.contains_key(name.as_str()), creating.len())
        };
        if is_taken || read(&self.topics).contains_key(name.as_str()) {
            return Err(BrokerError::TopicExists { topic: name.to_string() });
        }
        if read(&self.topics).len() + creating_count >= self.config.max_topics as usize {
            return Err(BrokerError::TooManyTopics { limit: self.config.max_topics });
        }
        let what = format!("creating topic {:?} with {partition_count} partitions", name.as_str());
        self.budget.check(self.partition_total(), u64::from(partition_count), what)?;
        lock(&self.creating).insert(name.to_string(), partition_count);
        Ok(Reservation { creating: &self.creating, name: name.to_string() })
    }

    /// A receiver that sees a change after every topic create, delete or add-partitions.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The topic with this id, if one exists.
    pub fn topic_by_id(&self, id: TopicId) -> Option<Arc<Topic>> {
        read(&self.topics).by_id.get(&id).cloned()
    }

    /// The names of the topics among `ids` that exist, by id: a Kafka fetch from v13 names every topic by id,
    /// so each is one lookup, whatever the number of topics.
    pub fn names_by_id(&self, ids: &BTreeSet<TopicId>) -> BTreeMap<TopicId, String> {
        let topics = read(&self.topics);
        ids.iter().filter_map(|id| topics.by_id.get(id).map(|topic| (*id, topic.name.to_string()))).collect()
    }

    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        read(&self.topics).get(name).cloned().ok_or_else(|| BrokerError::UnknownTopic { topic: name.to_owned() })
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        self.topic(topic)?.partition(partition)
    }

    pub fn list(&self) -> Vec<Arc<Topic>> {
        read(&self.topics).values().cloned().collect()
    }

    /// Partition appends writing to the disk now (holding one of the `appends_in_flight` slots).
    pub fn appends_in_flight(&self) -> usize {
        self.config.appends_in_flight.saturating_sub(self.shared.append_slots.available_permits())
    }

    /// The node's tail cache, if it keeps one (`tail_cache_bytes` above 0).
    pub fn tail_cache(&self) -> Option<&Arc<TailCache>> {
        self.shared.tail_cache.as_ref()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.list().iter().flat_map(|t| t.partitions()).collect()
    }

    pub async fn create(&self, name: &str, partition_count: u32, config: &v1::TopicConfig) -> Result<Arc<Topic>> {
        let (name, settings) = self.check_create(name, partition_count, config, &self.topic_defaults())?;
        self.create_checked(name, partition_count, settings, TopicId::random()).await
    }

    /// What a create would make of its request, without making it: the checked name and the resolved settings,
    /// `topic_defaults` (the cluster's dynamic defaults) taken for what it leaves unset. A cluster checks this where
    /// the request arrives, before the controller places the topic.
    pub fn check_create(
        &self,
        name: &str,
        partition_count: u32,
        config: &v1::TopicConfig,
        topic_defaults: &TopicDefaults,
    ) -> Result<(TopicName, TopicSettings)> {
        let name = user_topic_name(name)?;
        self.check_partition_count(partition_count, 0)?;
        Ok((name, self.resolve_settings(config, topic_defaults)?))
    }

    /// Opens this node's replicas of a topic the cluster's metadata holds, with the settings the metadata gives.
    pub async fn open_replicated(
        &self,
        name: &str,
        partition_count: u32,
        settings: TopicSettings,
        id: TopicId,
    ) -> Result<Arc<Topic>> {
        // The one reserved name a cluster places: the replicated committed offsets.
        let name = if name == crate::offsets::OFFSETS_TOPIC { TopicName::new(name)? } else { user_topic_name(name)? };
        self.create_checked(name, partition_count, settings, id).await
    }

    async fn create_checked(
        &self,
        name: TopicName,
        partition_count: u32,
        settings: TopicSettings,
        id: TopicId,
    ) -> Result<Arc<Topic>> {
        let _reservation = self.reserve(&name, partition_count).await?;
        // A directory left by a crashed create or delete must not lend its old records to the new topic.
        blocking({
            let (data_dir, name) = (self.data_dir.clone(), name.clone());
            move || remove_partition_dirs(&data_dir, &name, 0..partition_count)
        })
        .await?;
        let partitions =
            open_partitions(&self.data_dir, &name, &settings, 0..partition_count, &self.config, &self.shared).await?;
        let meta = TopicMeta::new(&name, id, partition_count, settings.clone());
        if let Err(err) = blocking({
            let data_dir = self.data_dir.clone();
            move || meta::store(&data_dir, &meta)
        })
        .await
        {
            discard_partitions(partitions, &self.config).await;
            return Err(err);
        }
        let topic = Arc::new(Topic {
            name: name.clone(),
            id,
            settings: RwLock::new(settings),
            partitions: RwLock::new(partitions),
            next_round_robin: AtomicU32::new(0),
        });
        write(&self.topics).insert(name.to_string(), Arc::clone(&topic));
        self.changed();
        tracing::info!(topic = %name, partitions = partition_count, "created topic");
        Ok(topic)
    }

    /// The checks of `create` that touch no disk (name, partition count, settings, the name free), for a
    /// request that only asks whether a create would pass (Kafka's `validate_only`).
    pub fn validate_create(&self, name: &str, partition_count: u32, config: &v1::TopicConfig) -> Result<()> {
        let name = user_topic_name(name)?;
        self.check_partition_count(partition_count, 0)?;
        self.resolve_settings(config, &self.topic_defaults())?;
        if read(&self.topics).contains_key(name.as_str()) || lock(&self.creating).contains_key(name.as_str()) {
            return Err(BrokerError::TopicExists { topic: name.to_string() });
        }
        Ok(())
    }

    /// The checks of `add_partitions` that touch no disk, for a request that only validates.
    pub fn validate_add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let topic = self.topic(name)?;
        self.check_partition_count(new_count, topic.partition_count())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(BrokerError::ReservedTopicName { name: name.to_owned() });
        }
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        blocking({
            let (data_dir, name) = (self.data_dir.clone(), topic.name.clone());
            move || meta::remove(&data_dir, &name)
        })
        .await?;
        write(&self.topics).remove(name);
        self.changed();
        discard_partitions(topic.partitions(), &self.config).await;
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    }

    /// Deletes this node's copy of one partition and puts an empty log in its place, for a cluster node that
    /// is no longer one of the partition's replicas while it still holds others of the topic (a topic's
    /// partitions stay indexed by number). Readers of the old copy get an error on their next call, as for a
    /// deleted topic; a replica added back later fetches from the leader's log start, as a new one does.
    pub async fn reset_partition(&self, name: &str, index: u32) -> Result<()> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let old = topic.partition(index)?;
        discard_partitions(vec![old], &self.config).await;
        let fresh = open_partitions(
            &self.data_dir,
            &topic.name,
            &topic.settings(),
            index..index + 1,
            &self.config,
            &self.shared,
        )
        .await?;
        let mut partitions = write(&topic.partitions);
        if let (Some(slot), Some(fresh)) = (partitions.get_mut(index as usize), fresh.into_iter().next()) {
            *slot = fresh;
        }
        Ok(())
    }

    pub async fn add_partitions(&self, name: &str, new_count: u32) -> Result<Arc<Topic>> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        let old_count = topic.partition_count();
        self.check_partition_count(new_count, old_count)?;
        let what = format!("adding {} partitions to topic {name:?}", new_count - old_count);
        self.budget.check(self.partition_total(), u64::from(new_count - old_count), what)?;
        blocking({
            let (data_dir, name) = (self.data_dir.clone(), topic.name.clone());
            move || remove_partition_dirs(&data_dir, &name, old_count..new_count)
        })
        .await?;
        let added = open_partitions(
            &self.data_dir,
            &topic.name,
            &topic.settings(),
            old_count..new_count,
            &self.config,
            &self.shared,
        )
        .await?;
        let meta = TopicMeta::new(&topic.name, topic.id, new_count, topic.settings());
        if let Err(err) = blocking({
            let data_dir = self.data_dir.clone();
            move || meta::store(&data_dir, &meta)
        })
        .await
        {
            discard_partitions(added, &self.config).await;
            return Err(err);
        }
        write(&topic.partitions).extend(added);
        self.changed();
        tracing::info!(topic = %name, from = old_count, to = new_count, "added partitions");
        Ok(topic)
    }

    /// The broker's settings: the defaults a topic's deleted settings go back to, and its limits.
    pub fn broker_config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Gives the topic new settings (checked already, `topic_config.rs`): written to its metadata file first,
    /// so a restart keeps them, then applied to every open partition log (retention at the next pass, segment
    /// size at the next roll, the batch limit and durability at the next append). The admin lock keeps a
    /// concurrent add-partitions from opening partitions with the old settings.
    pub async fn alter_settings(&self, name: &str, settings: TopicSettings) -> Result<Arc<Topic>> {
        let _admin = self.admin.lock().await;
        let topic = self.topic(name)?;
        if topic.settings() == settings {
            return Ok(topic);
        }
        settings.log_config().validate()?;
        let meta = TopicMeta::new(&topic.name, topic.id, topic.partition_count(), settings.clone());
        blocking({
            let data_dir = self.data_dir.clone();
            move || meta::store(&data_dir, &meta)
        })
        .await?;
        *write(&topic.settings) = settings.clone();
        let log_config = log_config_of(name, &settings);
        for partition in topic.partitions() {
            // Validated above with the same values: a refusal here would be a bug, and the file already holds
            // the new settings, which the next open applies.
            if let Err(err) = partition.log().reconfigure(&log_config) {
                tracing::error!(partition = ?partition, error = %err, "cannot apply a topic's new settings");
            }
        }
        tracing::info!(topic = %name, ?settings, "altered topic settings");
        Ok(topic)
    }

    /// Stops every writer (after what is queued) and closes every log cleanly, so the next start needs no
    /// recovery scan.
    pub async fn close_all(&self) {
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let slots = Arc::new(Semaphore::new(PARALLEL_PARTITION_TASKS));
        let mut closing = JoinSet::new();
        for partition in self.all_partitions() {
            let slots = Arc::clone(&slots);
            closing.spawn(async move {
                let _slot = slots.acquire_owned().await;
                partition.stop_writer(grace).await;
                let log = Arc::clone(partition.log());
                match tokio::task::spawn_blocking(move || log.close()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(partition = ?partition, error = %err, "closing the log failed"),
                    Err(err) => tracing::error!(partition = ?partition, error = %err, "closing the log failed"),
                }
            });
        }
        while closing.join_next().await.is_some() {}
    }

    /// A topic of `current` partitions may have `requested`: at least 1, more than it has (never fewer), at most
    /// `max_partitions_per_topic`. A cluster checks this where an add-partitions arrives, before the controller.
    pub fn check_partition_count(&self, requested: u32, current: u32) -> Result<()> {
        let max = self.config.max_partitions_per_topic;
        let reason = if requested == 0 {
            "a topic needs at least 1 partition".to_owned()
        } else if requested > max {
            format!("the broker allows at most {max} partitions per topic (max_partitions_per_topic)")
        } else if requested <= current {
            format!("the topic already has {current} partitions; partitions can be added, never removed")
        } else {
            return Ok(());
        };
        Err(BrokerError::InvalidPartitionCount { requested, reason })
    }

    /// The topic's effective settings: the request's values, which are its own keys, over the defaults (the
    /// cluster's dynamic ones, then the broker's), checked by storage.
    fn resolve_settings(&self, requested: &v1::TopicConfig, topic_defaults: &TopicDefaults) -> Result<TopicSettings> {
        let defaults = &self.config;
        let durability = match v1::DurabilityPolicy::try_from(requested.durability) {
            Ok(v1::DurabilityPolicy::Unspecified) => defaults.default_durability,
            Ok(v1::DurabilityPolicy::Always) => DurabilityPolicy::Always,
            Ok(v1::DurabilityPolicy::Interval) => DurabilityPolicy::Interval,
            Ok(v1::DurabilityPolicy::Never) => DurabilityPolicy::Never,
            Err(_) => {
                return Err(BrokerError::invalid(
                    "config.durability",
                    format!("unknown policy {}", requested.durability),
                ))
            }
        };
        let segment_bytes = requested.segment_bytes.unwrap_or(defaults.default_segment_bytes);
        let max_batch_bytes = requested
            .max_batch_bytes
            .unwrap_or_else(|| crate::topic_config::default_max_batch_bytes(Defaults::of(defaults), segment_bytes));
        if max_batch_bytes > defaults.max_batch_bytes {
            return Err(BrokerError::invalid(
                "config.max_batch_bytes",
                format!("{max_batch_bytes} is above the broker's limit of {} bytes", defaults.max_batch_bytes),
            ));
        }
        let settings = TopicSettings {
            segment_bytes,
            durability,
            flush_interval_ms: requested.flush_interval_ms.unwrap_or(defaults.default_flush_interval_ms),
            max_batch_bytes,
            retention_ms: retention_limit(requested.retention_ms, defaults.default_retention_ms),
            retention_bytes: retention_limit(requested.retention_bytes, defaults.default_retention_bytes),
            cleanup: requested_cleanup(requested)?,
            segment_ms: requested.segment_ms.unwrap_or(crate::meta::DEFAULT_SEGMENT_MS),
            timestamps: requested_timestamps(requested)?,
            compression: match &requested.compression_type {
                None => defaults.default_compression_type,
                Some(name) => crate::meta::TopicCompression::parse(name).ok_or_else(|| {
                    BrokerError::invalid(
                        "config.compression_type",
                        format!("{name:?} is not a compression type: {}", crate::meta::TopicCompression::NAMES),
                    )
                })?,
            },
            compression_levels: requested_compression_levels(requested, &defaults.default_compression_levels)?,
            schema_ids: requested_schema_ids(requested)?,
            takes_dead_letters: requested.dead_letter_group_enable.unwrap_or(false),
            throttled_replicas: requested_throttled_replicas(requested)?,
            own_keys: Some(crate::topic_config::requested_keys(requested)),
        };
        if settings.flush_interval_ms == 0 {
            return Err(BrokerError::invalid("config.flush_interval_ms", "must be at least 1"));
        }
        let settings = if topic_defaults.is_empty() {
            settings
        } else {
            let keys: Vec<ConfigKey> = topic_defaults.keys().collect();
            let state = TopicConfigState { settings, min_insync_replicas: 1 };
            let scope = Defaults::with(defaults, topic_defaults);
            crate::topic_config::follow_defaults(&state, 1, &keys, scope)?.settings
        };
        settings.log_config().validate()?;
        Ok(settings)
    }
}

/// A topic's compression levels from its request, each checked against its codec's range; those it leaves unset
/// are the broker's defaults.
fn requested_compression_levels(
    requested: &v1::TopicConfig,
    defaults: &crate::meta::CompressionLevels,
) -> Result<crate::meta::CompressionLevels> {
    use rill_protocol::Compression;
    let level = |field: &'static str, codec, value: Option<i32>| -> Result<Option<i32>> {
        let Some(level) = value else { return Ok(defaults.get(codec)) };
        crate::meta::CompressionLevels::parse(codec, &level.to_string())
            .map(Some)
            .map_err(|reason| BrokerError::invalid(field, format!("{level} is not a level: it {reason}")))
    };
    Ok(crate::meta::CompressionLevels {
        gzip: level("config.compression_gzip_level", Compression::Gzip, requested.compression_gzip_level)?,
        lz4: level("config.compression_lz4_level", Compression::Lz4, requested.compression_lz4_level)?,
        zstd: level("config.compression_zstd_level", Compression::Zstd, requested.compression_zstd_level)?,
    })
}

/// A topic's cleanup policy and compaction settings from its request; unset fields take Kafka's defaults.
fn requested_cleanup(requested: &v1::TopicConfig) -> Result<crate::meta::Cleanup> {
    use crate::meta::Cleanup;
    let mut cleanup = Cleanup::default();
    if let Some(policy) = &requested.cleanup_policy {
        (cleanup.compact, cleanup.delete) = Cleanup::parse_policy(policy).ok_or_else(|| {
            BrokerError::invalid(
                "config.cleanup_policy",
                format!("{policy:?} is not a cleanup policy: delete, compact, or compact,delete"),
            )
        })?;
    }
    cleanup.delete_retention_ms = requested.delete_retention_ms.unwrap_or(cleanup.delete_retention_ms);
    cleanup.min_compaction_lag_ms = requested.min_compaction_lag_ms.unwrap_or(cleanup.min_compaction_lag_ms);
    if let Some(ratio) = requested.min_cleanable_dirty_ratio {
        cleanup.min_cleanable_dirty_permille = Cleanup::parse_dirty_ratio(&ratio.to_string()).ok_or_else(|| {
            BrokerError::invalid("config.min_cleanable_dirty_ratio", format!("{ratio} is not a ratio from 0 to 1"))
        })?;
    }
    cleanup.max_compaction_lag_ms = bound(requested.max_compaction_lag_ms);
    match cleanup.max_compaction_lag_ms {
        Some(0) => {
            return Err(BrokerError::invalid(
                "config.max_compaction_lag_ms",
                "must be at least 1 millisecond (unset: no bound)",
            ))
        }
        Some(max_lag) if max_lag < cleanup.min_compaction_lag_ms => {
            return Err(BrokerError::invalid(
                "config.max_compaction_lag_ms",
                format!(
                "{max_lag} is below min_compaction_lag_ms ({}): a record cannot have to be compacted before it may be",
                cleanup.min_compaction_lag_ms
            ),
            ))
        }
        _ => {}
    }
    Ok(cleanup)
}

/// A topic's throttled replica lists from its request; unset fields are empty.
fn requested_throttled_replicas(
    requested: &v1::TopicConfig,
) -> Result<crate::replication::throttle::ThrottledReplicas> {
    use crate::replication::throttle::ReplicaList;
    let list = |field: &'static str, value: &Option<String>| -> Result<ReplicaList> {
        let Some(value) = value else { return Ok(ReplicaList::Empty) };
        ReplicaList::parse(value).ok_or_else(|| {
            BrokerError::invalid(field, format!("{value:?} is not a replica list: {}", ReplicaList::FORMAT))
        })
    };
    Ok(crate::replication::throttle::ThrottledReplicas {
        leader: list("config.leader_throttled_replicas", &requested.leader_throttled_replicas)?,
        follower: list("config.follower_throttled_replicas", &requested.follower_throttled_replicas)?,
    })
}

/// A topic's schema id validation from its request; unset fields are off, with TopicNameStrategy.
fn requested_schema_ids(requested: &v1::TopicConfig) -> Result<crate::meta::SchemaIdChecks> {
    use crate::meta::{SchemaIdCheck, SubjectNameStrategy};
    let strategy = |field: &'static str, value: &Option<String>| -> Result<SubjectNameStrategy> {
        match value {
            None => Ok(SubjectNameStrategy::default()),
            Some(name) => SubjectNameStrategy::parse(name).ok_or_else(|| {
                BrokerError::invalid(
                    field,
                    format!("{name:?} is not a subject name strategy: {}", SubjectNameStrategy::NAMES),
                )
            }),
        }
    };
    Ok(crate::meta::SchemaIdChecks {
        key: SchemaIdCheck {
            enabled: requested.key_schema_validation.unwrap_or(false),
            strategy: strategy("config.key_subject_name_strategy", &requested.key_subject_name_strategy)?,
        },
        value: SchemaIdCheck {
            enabled: requested.value_schema_validation.unwrap_or(false),
            strategy: strategy("config.value_subject_name_strategy", &requested.value_subject_name_strategy)?,
        },
    })
}

/// A topic's timestamp type and bounds from its request; unset fields take Kafka's defaults.
fn requested_timestamps(requested: &v1::TopicConfig) -> Result<crate::meta::MessageTimestamps> {
    use crate::meta::MessageTimestamps;
    let log_append_time = match &requested.message_timestamp_type {
        None => false,
        Some(name) => MessageTimestamps::parse_type(name).ok_or_else(|| {
            BrokerError::invalid(
                "config.message_timestamp_type",
                format!("{name:?} is not a timestamp type: CreateTime or LogAppendTime"),
            )
        })?,
    };
    Ok(MessageTimestamps {
        log_append_time,
        before_max_ms: bound(requested.message_timestamp_before_max_ms),
        after_max_ms: bound(requested.message_timestamp_after_max_ms),
    })
}

/// A bound in milliseconds from a request: Kafka's Long.MAX_VALUE (and anything above) is none.
fn bound(requested: Option<u64>) -> Option<u64> {
    requested.filter(|ms| *ms < crate::topic_config::LONG_MAX_MS)
}

/// A topic's retention limit from its request: unset takes the broker's default, and `u64::MAX` (the proto's
/// spelling of Kafka's -1) means no limit.
fn retention_limit(requested: Option<u64>, default: Option<u64>) -> Option<u64> {
    match requested {
        Some(u64::MAX) => None,
        Some(limit) => Some(limit),
        None => default,
    }
}

/// The config of topic `name`'s partition logs. A cluster's `__consumer_offsets` is compacted whatever its stored
/// settings say: a coordinator's replay keeps each key's newest commit and forgets a tombstoned one, which is what
/// compaction leaves, so its logs stop growing with every commit. Not through its settings, which predate
/// compaction and live in the replicated metadata an older node must still read during a rolling upgrade.
fn log_config_of(name: &str, settings: &TopicSettings) -> LogConfig {
    let config = settings.log_config();
    if name == crate::offsets::OFFSETS_TOPIC {
        return LogConfig { compaction: Some(crate::offsets::replicated::COMPACTION), ..config };
    }
    config
}

/// A topic name taken by a create in progress, given back on drop.
struct Reservation<'a> {
    creating: &'a std::sync::Mutex<BTreeMap<String, u32>>,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        lock(self.creating).remove(&self.name);
    }
}

/// A topic name a user may create: valid for storage (so safe in a path) and not reserved.
fn user_topic_name(name: &str) -> Result<TopicName> {
    let topic = TopicName::new(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(BrokerError::ReservedTopicName { name: name.to_owned() });
    }
    Ok(topic)
}

/// Opens the partitions of `range`. On failure nothing is left behind: the partitions opened are deleted, and so
/// is the directory of the one that failed.
async fn open_partitions(
    data_dir: &Path,
    name: &TopicName,
    settings: &TopicSettings,
    range: std::ops::Range<u32>,
    config: &BrokerConfig,
    shared: &Shared,
) -> Result<Vec<Arc<Partition>>> {
    let write_mode = if config.direct_writes { WriteMode::Direct } else { WriteMode::Buffered };
    let log_config = LogConfig { write_mode, ..log_config_of(name.as_str(), settings) };
    let mut partitions = Vec::with_capacity(range.len());
    for index in range {
        let dir = partition_dir(data_dir, name, index);
        let (log_config, files, cache) = (log_config, Arc::clone(&shared.segment_files), shared.tail_cache.clone());
        let opened =
            blocking(move || Ok(Log::open_cached(&dir, log_config, Arc::new(SystemClock), files, cache)?)).await;
        match opened {
            Ok(log) => partitions.push(Partition::start(
                name.clone(),
                index,
                log,
                config.partition_queue_batches,
                Arc::clone(&shared.append_slots),
                shared.write_metrics.clone(),
            )),
            Err(err) => {
                discard_partitions(partitions, config).await;
                let (data_dir, name) = (data_dir.to_owned(), name.clone());
                if let Err(cleanup) = blocking(move || remove_partition_dirs(&data_dir, &name, index..index + 1)).await
                {
                    tracing::error!(error = %cleanup, "removing the directory of a partition that failed to open");
                }
                return Err(err);
            }
        }
    }
    Ok(partitions)
}

/// Stops and deletes partitions that are no longer (or never became) part of a topic.
async fn discard_partitions(partitions: Vec<Arc<Partition>>, config: &BrokerConfig) {
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    for partition in partitions {
        partition.stop_writer(grace).await;
        let dir_name = format!("{}-{}", partition.topic, partition.index);
        let log = Arc::clone(partition.log());
        // Readers holding the log get an error on their next call, as for any deleted topic.
        let deleted = tokio::task::spawn_blocking(move || log.delete()).await;
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(partition = %dir_name, error = %err, "deleting the partition failed"),
            Err(err) => tracing::error!(partition = %dir_name, error = %err, "deleting the partition failed"),
        }
    }
}

fn remove_partition_dirs(data_dir: &Path, name: &TopicName, range: std::ops::Range<u32>) -> Result<()> {
    for index in range {
        let dir = partition_dir(data_dir, name, index);
        if dir.exists() {
            tracing::warn!(dir = %dir.display(), "removing a leftover partition directory");
            std::fs::remove_dir_all(&dir).map_err(BrokerError::io(&dir))?;
        }
    }
    Ok(())
}

fn remove_orphan_partitions(data_dir: &Path, metas: &[TopicMeta]) -> Result<()> {
    for entry in std::fs::read_dir(data_dir).map_err(BrokerError::io(data_dir))? {
        let entry = entry.map_err(BrokerError::io(data_dir))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !entry.path().is_dir() {
            continue;
        }
        if is_deleted_dir_name(&file_name) {
            let dir = entry.path();
            tracing::info!(dir = %dir.display(), "removing a partition directory whose deletion a crash cut short");
            std::fs::remove_dir_all(&dir).map_err(BrokerError::io(&dir))?;
            continue;
        }
        if file_name.starts_with(RESERVED_PREFIX) {
            continue;
        }
        let Some((topic, index)) = parse_partition_dir_name(&file_name) else { continue };
        let known = metas.iter().any(|m| m.name == topic.as_str() && index < m.partition_count);
        if !known {
            let dir = entry.path();
            tracing::warn!(dir = %dir.display(), "removing a partition directory no topic metadata mentions");
            std::fs::remove_dir_all(&dir).map_err(BrokerError::io(&dir))?;
        }
    }
    Ok(())
}

/// Runs blocking disk work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(BrokerError::join)?
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The topics by name, and by id for Kafka's requests that name topics by id (Fetch v13+, Metadata, KIP-848):
/// the two maps change together, only through `insert` and `remove`.
struct TopicMap {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: std::collections::HashMap<TopicId, Arc<Topic>>,
}

impl From<BTreeMap<String, Arc<Topic>>> for TopicMap {
    fn from(by_name: BTreeMap<String, Arc<Topic>>) -> Self {
        let by_id = by_name.values().map(|topic| (topic.id, Arc::clone(topic))).collect();
        TopicMap { by_name, by_id }
    }
}

impl TopicMap {
    fn insert(&mut self, name: String, topic: Arc<Topic>) {
        self.by_id.insert(topic.id, Arc::clone(&topic));
        if let Some(replaced) = self.by_name.insert(name, topic) {
            self.by_id.remove(&replaced.id);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(removed) = self.by_name.remove(name) {
            self.by_id.remove(&removed.id);
        }
    }
}

impl std::ops::Deref for TopicMap {
    type Target = BTreeMap<String, Arc<Topic>>;

    fn deref(&self) -> &Self::Target {
        &self.by_name
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
