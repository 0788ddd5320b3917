//! Changing a topic's settings after it was created (`rill topic alter`, the AlterTopicConfig call, Kafka's
//! IncrementalAlterConfigs and AlterConfigs): the keys that may change, how each value is read, what a delete
//! goes back to (the broker's default as configured now), and the checks the whole result must pass. A change
//! is all or nothing: [`apply_changes`] either returns the complete new settings or the first refusal, naming
//! the key, the value and what is allowed, and the caller applies nothing in that case.
//!
//! Partition count and replication factor are not settings: they have their own calls.

use crate::cluster::placement::default_min_insync_replicas;
use crate::config::{BrokerConfig, DurabilityPolicy};
use crate::error::{BrokerError, Result};
use crate::meta::{
    Cleanup, CompressionLevels, MessageTimestamps, SubjectNameStrategy, TopicCompression, TopicSettings,
    DEFAULT_SEGMENT_MS,
};
use crate::replication::throttle::ReplicaList;
use crate::topic_defaults::TopicDefaults;

/// A topic setting that may change after creation, under Kafka's name and rill's field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigKey {
    RetentionMs,
    RetentionBytes,
    SegmentBytes,
    MaxMessageBytes,
    /// rill's `interval` durability with this period (Kafka's `flush.ms`).
    FlushMs,
    /// rill's durability policy (`always`, `interval`, `never`); Kafka has no such key.
    Durability,
    MinInsyncReplicas,
    /// `delete`, `compact` or `compact,delete` (`meta::Cleanup`).
    CleanupPolicy,
    /// How long a compacted topic keeps a tombstone.
    DeleteRetentionMs,
    /// How young a record of a compacted topic is never compacted away.
    MinCompactionLagMs,
    /// How much of a compacted partition must be dirty before a pass.
    MinCleanableDirtyRatio,
    /// How long a compacted topic's record may wait for a pass, however clean the rest is.
    MaxCompactionLagMs,
    /// How old the active segment gets before it rolls.
    SegmentMs,
    /// `CreateTime` (the producer's clock) or `LogAppendTime` (the broker's).
    MessageTimestampType,
    /// How far behind the broker's clock a CreateTime record may be.
    MessageTimestampBeforeMaxMs,
    /// How far ahead of it.
    MessageTimestampAfterMaxMs,
    /// `producer` (batches stored as sent) or the codec every batch is stored in.
    CompressionType,
    /// Whether every record's key must carry a registered schema id (Confluent's broker-side validation).
    KeySchemaValidation,
    /// The same for values.
    ValueSchemaValidation,
    /// Which subject a key's schema id must be registered under.
    KeySubjectNameStrategy,
    /// The same for values.
    ValueSubjectNameStrategy,
    /// Whether share groups may write dead letters here (Kafka's `errors.deadletterqueue.group.enable`).
    DeadLetterGroupEnable,
    /// The level of gzip when `compression.type` is gzip (Kafka's KIP-390 levels; lz4 and zstd below).
    CompressionGzipLevel,
    CompressionLz4Level,
    CompressionZstdLevel,
    /// Kafka's `leader.replication.throttled.replicas` (`replication/throttle.rs`).
    LeaderThrottledReplicas,
    /// Kafka's `follower.replication.throttled.replicas`.
    FollowerThrottledReplicas,
}

impl ConfigKey {
    pub const ALL: [ConfigKey; 27] = [
        ConfigKey::RetentionMs,
        ConfigKey::RetentionBytes,
        ConfigKey::SegmentBytes,
        ConfigKey::MaxMessageBytes,
        ConfigKey::FlushMs,
        ConfigKey::Durability,
        ConfigKey::MinInsyncReplicas,
        ConfigKey::CleanupPolicy,
        ConfigKey::DeleteRetentionMs,
        ConfigKey::MinCompactionLagMs,
        ConfigKey::MinCleanableDirtyRatio,
        ConfigKey::MaxCompactionLagMs,
        ConfigKey::SegmentMs,
        ConfigKey::MessageTimestampType,
        ConfigKey::MessageTimestampBeforeMaxMs,
        ConfigKey::MessageTimestampAfterMaxMs,
        ConfigKey::CompressionType,
        ConfigKey::KeySchemaValidation,
        ConfigKey::ValueSchemaValidation,
        ConfigKey::KeySubjectNameStrategy,
        ConfigKey::ValueSubjectNameStrategy,
        ConfigKey::DeadLetterGroupEnable,
        ConfigKey::CompressionGzipLevel,
        ConfigKey::CompressionLz4Level,
        ConfigKey::CompressionZstdLevel,
        ConfigKey::LeaderThrottledReplicas,
        ConfigKey::FollowerThrottledReplicas,
    ];

    /// The name Kafka's tools use (DescribeConfigs reports these).
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigKey::RetentionMs => "retention.ms",
            ConfigKey::RetentionBytes => "retention.bytes",
            ConfigKey::SegmentBytes => "segment.bytes",
            ConfigKey::MaxMessageBytes => "max.message.bytes",
            ConfigKey::FlushMs => "flush.ms",
            ConfigKey::Durability => "rill.durability",
            ConfigKey::MinInsyncReplicas => "min.insync.replicas",
            ConfigKey::CleanupPolicy => "cleanup.policy",
            ConfigKey::DeleteRetentionMs => "delete.retention.ms",
            ConfigKey::MinCompactionLagMs => "min.compaction.lag.ms",
            ConfigKey::MinCleanableDirtyRatio => "min.cleanable.dirty.ratio",
            ConfigKey::MaxCompactionLagMs => "max.compaction.lag.ms",
            ConfigKey::SegmentMs => "segment.ms",
            ConfigKey::MessageTimestampType => "message.timestamp.type",
            ConfigKey::MessageTimestampBeforeMaxMs => "message.timestamp.before.max.ms",
            ConfigKey::MessageTimestampAfterMaxMs => "message.timestamp.after.max.ms",
            ConfigKey::CompressionType => "compression.type",
            ConfigKey::KeySchemaValidation => "confluent.key.schema.validation",
            ConfigKey::ValueSchemaValidation => "confluent.value.schema.validation",
            ConfigKey::KeySubjectNameStrategy => "confluent.key.subject.name.strategy",
            ConfigKey::ValueSubjectNameStrategy => "confluent.value.subject.name.strategy",
            ConfigKey::DeadLetterGroupEnable => "errors.deadletterqueue.group.enable",
            ConfigKey::CompressionGzipLevel => "compression.gzip.level",
            ConfigKey::CompressionLz4Level => "compression.lz4.level",
            ConfigKey::CompressionZstdLevel => "compression.zstd.level",
            ConfigKey::LeaderThrottledReplicas => "leader.replication.throttled.replicas",
            ConfigKey::FollowerThrottledReplicas => "follower.replication.throttled.replicas",
        }
    }

    /// The field of the gRPC `TopicConfig` (or request) that holds the setting.
    pub fn field_name(self) -> &'static str {
        match self {
            ConfigKey::RetentionMs => "retention_ms",
            ConfigKey::RetentionBytes => "retention_bytes",
            ConfigKey::SegmentBytes => "segment_bytes",
            ConfigKey::MaxMessageBytes => "max_batch_bytes",
            ConfigKey::FlushMs => "flush_interval_ms",
            ConfigKey::Durability => "durability",
            ConfigKey::MinInsyncReplicas => "min_insync_replicas",
            ConfigKey::CleanupPolicy => "cleanup_policy",
            ConfigKey::DeleteRetentionMs => "delete_retention_ms",
            ConfigKey::MinCompactionLagMs => "min_compaction_lag_ms",
            ConfigKey::MinCleanableDirtyRatio => "min_cleanable_dirty_ratio",
            ConfigKey::MaxCompactionLagMs => "max_compaction_lag_ms",
            ConfigKey::SegmentMs => "segment_ms",
            ConfigKey::MessageTimestampType => "message_timestamp_type",
            ConfigKey::MessageTimestampBeforeMaxMs => "message_timestamp_before_max_ms",
            ConfigKey::MessageTimestampAfterMaxMs => "message_timestamp_after_max_ms",
            ConfigKey::CompressionType => "compression_type",
            ConfigKey::KeySchemaValidation => "key_schema_validation",
            ConfigKey::ValueSchemaValidation => "value_schema_validation",
            ConfigKey::KeySubjectNameStrategy => "key_subject_name_strategy",
            ConfigKey::ValueSubjectNameStrategy => "value_subject_name_strategy",
            ConfigKey::DeadLetterGroupEnable => "dead_letter_group_enable",
            ConfigKey::CompressionGzipLevel => "compression_gzip_level",
            ConfigKey::CompressionLz4Level => "compression_lz4_level",
            ConfigKey::CompressionZstdLevel => "compression_zstd_level",
            ConfigKey::LeaderThrottledReplicas => "leader_throttled_replicas",
            ConfigKey::FollowerThrottledReplicas => "follower_throttled_replicas",
        }
    }

    /// The codec a level key sets the level of.
    pub fn level_codec(self) -> Option<rill_protocol::Compression> {
        match self {
            ConfigKey::CompressionGzipLevel => Some(rill_protocol::Compression::Gzip),
            ConfigKey::CompressionLz4Level => Some(rill_protocol::Compression::Lz4),
            ConfigKey::CompressionZstdLevel => Some(rill_protocol::Compression::Zstd),
            _ => None,
        }
    }

    /// The key either of its names spells.
    pub fn parse(name: &str) -> Option<ConfigKey> {
        ConfigKey::ALL.into_iter().find(|key| key.kafka_name() == name || key.field_name() == name)
    }

    /// Every key's Kafka name, for a refusal that says what is accepted.
    pub fn names() -> String {
        ConfigKey::ALL.map(ConfigKey::kafka_name).join(", ")
    }
}

/// One change a request asks for: set `key` to `value`, or (`value: None`) delete the topic's own value so the
/// broker's default applies again. `key` is kept as the caller spelled it, for the refusal's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub key: String,
    pub value: Option<String>,
}

impl ConfigChange {
    pub fn set(key: impl Into<String>, value: impl Into<String>) -> ConfigChange {
        ConfigChange { key: key.into(), value: Some(value.into()) }
    }

    pub fn delete(key: impl Into<String>) -> ConfigChange {
        ConfigChange { key: key.into(), value: None }
    }
}

/// The keys a topic set itself (at its create, or by an alter since), which a change of the cluster's defaults
/// leaves alone (`topic_defaults.rs`); stored under their Kafka names. A topic stored before this was kept has
/// none ([`TopicSettings::own_keys`] is `None`), and its own keys are those whose value differs from what the
/// broker's static defaults give ([`overridden_keys`]) until its next change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct OwnKeys(pub std::collections::BTreeSet<ConfigKey>);

impl From<Vec<String>> for OwnKeys {
    /// A name this version does not know (a newer node's key) is left out.
    fn from(names: Vec<String>) -> OwnKeys {
        OwnKeys(names.iter().filter_map(|name| ConfigKey::parse(name)).collect())
    }
}

impl From<OwnKeys> for Vec<String> {
    fn from(keys: OwnKeys) -> Vec<String> {
        keys.0.into_iter().map(|key| key.kafka_name().to_owned()).collect()
    }
}

/// What a key a topic does not set is: the cluster's dynamic default if one is set, else the broker's static
/// one (its flags, or Kafka's default where rill has no flag).
#[derive(Debug, Clone, Copy)]
pub struct Defaults<'a> {
    pub broker: &'a BrokerConfig,
    pub cluster: &'a TopicDefaults,
}

impl<'a> Defaults<'a> {
    /// The broker's static defaults alone.
    pub fn of(broker: &'a BrokerConfig) -> Defaults<'a> {
        Defaults { broker, cluster: &crate::topic_defaults::NONE }
    }

    pub fn with(broker: &'a BrokerConfig, cluster: &'a TopicDefaults) -> Defaults<'a> {
        Defaults { broker, cluster }
    }
}

/// What a topic's configuration is: its storage settings and the in-sync replicas a produce needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigState {
    pub settings: TopicSettings,
    pub min_insync_replicas: u32,
}

/// Kafka's AlterConfigs replaces a topic's whole set: every alterable key it does not name goes back to the
/// broker's default.
pub fn replace_all(configs: Vec<(String, String)>) -> Vec<ConfigChange> {
    let named: Vec<Option<ConfigKey>> = configs.iter().map(|(key, _)| ConfigKey::parse(key)).collect();
    let mut changes: Vec<ConfigChange> = ConfigKey::ALL
        .into_iter()
        .filter(|key| !named.contains(&Some(*key)))
        // Deleting flush.ms resets the durability too; a set of either in the request decides it.
        .filter(|key| {
            !(matches!(key, ConfigKey::FlushMs | ConfigKey::Durability)
                && (named.contains(&Some(ConfigKey::FlushMs)) || named.contains(&Some(ConfigKey::Durability))))
        })
        .map(|key| ConfigChange::delete(key.kafka_name()))
        .collect();
    changes.extend(configs.into_iter().map(|(key, value)| ConfigChange::set(key, value)));
    changes
}

/// The settings after `changes`, checked whole. Deletes apply first, then sets in the order given; a key named
/// twice is refused (which would win is not obvious). `replication_factor` bounds `min.insync.replicas`. A set
/// makes the key the topic's own; a delete gives it back to the defaults, and the value they give.
pub fn apply_changes(
    current: &TopicConfigState,
    changes: &[ConfigChange],
    replication_factor: u32,
    defaults: Defaults<'_>,
) -> Result<TopicConfigState> {
    let mut seen = Vec::with_capacity(changes.len());
    let mut parsed = Vec::with_capacity(changes.len());
    for change in changes {
        let key = ConfigKey::parse(&change.key).ok_or_else(|| BrokerError::InvalidTopicConfig {
            key: change.key.clone(),
            value: change.value.clone().unwrap_or_default(),
            reason: format!("not a topic setting rill can change; the settings are {}", ConfigKey::names()),
        })?;
        if seen.contains(&key) {
            return Err(refusal(change, "named twice in one request; name each setting once"));
        }
        seen.push(key);
        parsed.push((key, change));
    }
    let mut own = own_keys(current, replication_factor, defaults.broker);
    let mut next = current.clone();
    for (key, _) in parsed.iter().filter(|(_, c)| c.value.is_none()) {
        reset(&mut next, *key, replication_factor, defaults)?;
        own.remove(key);
    }
    let mut sets: Vec<&(ConfigKey, &ConfigChange)> = parsed.iter().filter(|(_, c)| c.value.is_some()).collect();
    // flush.ms implies interval durability: a durability set in the same request goes first, so a conflict
    // between the two is seen whatever order the caller listed them in.
    sets.sort_by_key(|(key, _)| *key != ConfigKey::Durability);
    let is_durability_set = sets.iter().any(|(key, _)| *key == ConfigKey::Durability);
    for (key, change) in sets {
        set(&mut next, (*key, change), is_durability_set, replication_factor, defaults.broker)?;
        own.insert(*key);
    }
    // A max.message.bytes the topic does not set follows its segment.bytes (as at create), so a change of
    // segment.bytes alone never fails for a limit nobody chose.
    if !own.contains(&ConfigKey::MaxMessageBytes) {
        next.settings.max_batch_bytes = default_max_batch_bytes(defaults, next.settings.segment_bytes);
    }
    next.settings.own_keys = Some(OwnKeys(own));
    check_whole(&next, changes, defaults.broker)?;
    Ok(next)
}

/// The topic after taking `defaults` for those of `keys` it does not own: what a change of the cluster's defaults
/// makes of it (`topic_defaults.rs`). Checked whole, as an alter.
pub fn follow_defaults(
    current: &TopicConfigState,
    replication_factor: u32,
    keys: &[ConfigKey],
    defaults: Defaults<'_>,
) -> Result<TopicConfigState> {
    let own = own_keys(current, replication_factor, defaults.broker);
    let changes: Vec<ConfigChange> =
        keys.iter().filter(|key| !own.contains(key)).map(|key| ConfigChange::delete(key.kafka_name())).collect();
    apply_changes(current, &changes, replication_factor, defaults)
}

/// The keys the topic set itself: those it stored, or for a topic stored before they were kept, those whose value
/// differs from what the broker's static defaults give.
pub fn own_keys(
    state: &TopicConfigState,
    replication_factor: u32,
    broker: &BrokerConfig,
) -> std::collections::BTreeSet<ConfigKey> {
    match &state.settings.own_keys {
        Some(own) => own.0.clone(),
        None => differing_keys(state, replication_factor, broker).into_iter().collect(),
    }
}

/// A topic's max batch size unless it sets one: the default (`message.max.bytes` of the cluster, else the broker's
/// `max_batch_bytes`), or its `segment_bytes` if that is smaller (a batch must fit in a segment). Kafka accepts a
/// `segment.bytes` below its `message.max.bytes`, and its clients create topics with 1 MiB segments for tests.
pub fn default_max_batch_bytes(defaults: Defaults<'_>, segment_bytes: u64) -> u64 {
    let max = defaults
        .cluster
        .get(ConfigKey::MaxMessageBytes)
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(defaults.broker.max_batch_bytes);
    max.min(defaults.broker.max_batch_bytes).min(segment_bytes)
}

fn refusal(change: &ConfigChange, reason: impl Into<String>) -> BrokerError {
    BrokerError::InvalidTopicConfig {
        key: change.key.clone(),
        value: change.value.clone().unwrap_or_default(),
        reason: reason.into(),
    }
}

/// The `min.insync.replicas` of a topic of `replication_factor` replicas that does not set its own: the cluster's
/// default if one is set, at most the replication factor (a topic of fewer replicas needs all of them, rather than
/// refusing every acks-all produce as Kafka's broker does); else 2 for 3 replicas or more, 1 below.
pub fn default_min_insync_replicas_of(defaults: Defaults<'_>, replication_factor: u32) -> u32 {
    let cluster = defaults.cluster.get(ConfigKey::MinInsyncReplicas).and_then(|value| value.parse::<u32>().ok());
    match cluster {
        Some(count) => count.clamp(1, replication_factor.max(1)),
        None => default_min_insync_replicas(replication_factor),
    }
}

/// Gives `key` the defaults' value: the cluster's if it sets one (checked when it was set), else the broker's.
fn reset(state: &mut TopicConfigState, key: ConfigKey, replication_factor: u32, defaults: Defaults<'_>) -> Result<()> {
    // A cluster's min.insync.replicas is bounded by each topic's replication factor, not checked as the topic's.
    if let Some(value) = defaults.cluster.get(key).filter(|_| key != ConfigKey::MinInsyncReplicas) {
        let change = ConfigChange::set(key.kafka_name(), value);
        return set(state, (key, &change), false, replication_factor, defaults.broker);
    }
    let (scope, defaults) = (defaults, defaults.broker);
    let s = &mut state.settings;
    match key {
        ConfigKey::RetentionMs => s.retention_ms = defaults.default_retention_ms,
        ConfigKey::RetentionBytes => s.retention_bytes = defaults.default_retention_bytes,
        ConfigKey::SegmentBytes => s.segment_bytes = defaults.default_segment_bytes,
        ConfigKey::MaxMessageBytes => s.max_batch_bytes = defaults.max_batch_bytes,
        ConfigKey::FlushMs => {
            s.flush_interval_ms = defaults.default_flush_interval_ms;
            s.durability = defaults.default_durability;
        }
        ConfigKey::Durability => s.durability = defaults.default_durability,
        ConfigKey::MinInsyncReplicas => {
            state.min_insync_replicas = default_min_insync_replicas_of(scope, replication_factor);
        }
        ConfigKey::CleanupPolicy => (s.cleanup.compact, s.cleanup.delete) = (false, true),
        ConfigKey::DeleteRetentionMs => s.cleanup.delete_retention_ms = Cleanup::default().delete_retention_ms,
        ConfigKey::MinCompactionLagMs => s.cleanup.min_compaction_lag_ms = Cleanup::default().min_compaction_lag_ms,
        ConfigKey::MinCleanableDirtyRatio => {
            s.cleanup.min_cleanable_dirty_permille = Cleanup::default().min_cleanable_dirty_permille
        }
        ConfigKey::MaxCompactionLagMs => s.cleanup.max_compaction_lag_ms = None,
        ConfigKey::SegmentMs => s.segment_ms = DEFAULT_SEGMENT_MS,
        ConfigKey::MessageTimestampType => s.timestamps.log_append_time = false,
        ConfigKey::MessageTimestampBeforeMaxMs => s.timestamps.before_max_ms = None,
        ConfigKey::MessageTimestampAfterMaxMs => s.timestamps.after_max_ms = None,
        ConfigKey::CompressionType => s.compression = defaults.default_compression_type,
        ConfigKey::KeySchemaValidation => s.schema_ids.key.enabled = false,
        ConfigKey::ValueSchemaValidation => s.schema_ids.value.enabled = false,
        ConfigKey::KeySubjectNameStrategy => s.schema_ids.key.strategy = SubjectNameStrategy::default(),
        ConfigKey::ValueSubjectNameStrategy => s.schema_ids.value.strategy = SubjectNameStrategy::default(),
        ConfigKey::DeadLetterGroupEnable => s.takes_dead_letters = false,
        ConfigKey::CompressionGzipLevel => s.compression_levels.gzip = defaults.default_compression_levels.gzip,
        ConfigKey::CompressionLz4Level => s.compression_levels.lz4 = defaults.default_compression_levels.lz4,
        ConfigKey::CompressionZstdLevel => s.compression_levels.zstd = defaults.default_compression_levels.zstd,
        ConfigKey::LeaderThrottledReplicas => s.throttled_replicas.leader = ReplicaList::Empty,
        ConfigKey::FollowerThrottledReplicas => s.throttled_replicas.follower = ReplicaList::Empty,
    }
    Ok(())
}

/// `is_durability_set`: the same request sets the durability (applied before this, see `apply_changes`).
fn set(
    state: &mut TopicConfigState,
    (key, change): (ConfigKey, &ConfigChange),
    is_durability_set: bool,
    replication_factor: u32,
    defaults: &BrokerConfig,
) -> Result<()> {
    let value = change.value.as_deref().unwrap_or_default().trim();
    let whole = |what: &str| -> Result<u64> {
        value.parse::<u64>().map_err(|_| refusal(change, format!("must be a whole number {what}")))
    };
    let limit = |what: &str| -> Result<Option<u64>> {
        match value {
            "-1" => Ok(None),
            _ => whole(what).map(|v| (v != u64::MAX).then_some(v)),
        }
    };
    // Kafka's "no bound" for these is Long.MAX_VALUE, what its tools show and send back.
    let bound = |what: &str| -> Result<Option<u64>> { whole(what).map(|v| (v < LONG_MAX_MS).then_some(v)) };
    let s = &mut state.settings;
    match key {
        ConfigKey::RetentionMs => s.retention_ms = limit("of milliseconds, or -1 to keep records forever")?,
        ConfigKey::RetentionBytes => s.retention_bytes = limit("of bytes, or -1 for no size limit")?,
        ConfigKey::SegmentBytes => {
            let max = rill_storage::SEGMENT_BYTES_MAX;
            let bytes = whole(&format!("of bytes from 1024 to {max}"))?;
            if !(1024..=max).contains(&bytes) {
                return Err(refusal(change, format!("must be from 1024 to {max} bytes")));
            }
            s.segment_bytes = bytes;
        }
        ConfigKey::MaxMessageBytes => {
            let (min, max) = (rill_protocol::batch::HEADER_BYTES as u64, defaults.max_batch_bytes);
            let bytes = whole(&format!("of bytes from {min} to the broker's limit of {max}"))?;
            if !(min..=max).contains(&bytes) {
                return Err(refusal(
                    change,
                    format!("must be from {min} (a batch header) to {max} bytes (the broker's max_batch_bytes)"),
                ));
            }
            s.max_batch_bytes = bytes;
        }
        ConfigKey::FlushMs => {
            let ms = whole("of milliseconds, at least 1")?;
            if ms == 0 {
                return Err(refusal(change, "must be at least 1 millisecond"));
            }
            if s.durability != DurabilityPolicy::Interval && is_durability_set {
                return Err(refusal(
                    change,
                    "sets interval durability, which the same request's durability contradicts",
                ));
            }
            s.flush_interval_ms = ms;
            s.durability = DurabilityPolicy::Interval;
        }
        ConfigKey::Durability => {
            s.durability = DurabilityPolicy::parse(value)
                .ok_or_else(|| refusal(change, "must be always, interval or never (docs/durability.md)"))?;
        }
        ConfigKey::MinInsyncReplicas => {
            let count = whole(&format!("from 1 to the replication factor, {replication_factor}"))?;
            if count == 0 || count > u64::from(replication_factor) {
                return Err(refusal(
                    change,
                    format!("must be from 1 to the topic's replication factor, {replication_factor}"),
                ));
            }
            state.min_insync_replicas = count as u32;
        }
        ConfigKey::CleanupPolicy => {
            (s.cleanup.compact, s.cleanup.delete) = Cleanup::parse_policy(value)
                .ok_or_else(|| refusal(change, "must be delete, compact, or compact,delete"))?;
        }
        ConfigKey::DeleteRetentionMs => s.cleanup.delete_retention_ms = whole("of milliseconds")?,
        ConfigKey::MinCompactionLagMs => s.cleanup.min_compaction_lag_ms = whole("of milliseconds")?,
        ConfigKey::MinCleanableDirtyRatio => {
            s.cleanup.min_cleanable_dirty_permille = Cleanup::parse_dirty_ratio(value)
                .ok_or_else(|| refusal(change, "must be a ratio from 0 to 1, such as 0.5"))?;
        }
        ConfigKey::MaxCompactionLagMs => {
            let lag = bound("of milliseconds from 1 (9223372036854775807: no bound)")?;
            if lag == Some(0) {
                return Err(refusal(change, "must be at least 1 millisecond (9223372036854775807: no bound)"));
            }
            s.cleanup.max_compaction_lag_ms = lag;
        }
        ConfigKey::SegmentMs => {
            let ms = whole("of milliseconds, at least 1")?;
            if ms == 0 {
                return Err(refusal(change, "must be at least 1 millisecond"));
            }
            s.segment_ms = ms;
        }
        ConfigKey::MessageTimestampType => {
            s.timestamps.log_append_time = MessageTimestamps::parse_type(value)
                .ok_or_else(|| refusal(change, "must be CreateTime or LogAppendTime"))?;
        }
        ConfigKey::MessageTimestampBeforeMaxMs => {
            s.timestamps.before_max_ms = bound("of milliseconds (9223372036854775807: no bound)")?;
        }
        ConfigKey::MessageTimestampAfterMaxMs => {
            s.timestamps.after_max_ms = bound("of milliseconds (9223372036854775807: no bound)")?;
        }
        ConfigKey::CompressionType => {
            s.compression = TopicCompression::parse(value)
                .ok_or_else(|| refusal(change, format!("must be {}", TopicCompression::NAMES)))?;
        }
        ConfigKey::KeySchemaValidation | ConfigKey::ValueSchemaValidation => {
            let enabled = crate::meta::parse_bool(value).ok_or_else(|| refusal(change, "must be true or false"))?;
            match key {
                ConfigKey::KeySchemaValidation => s.schema_ids.key.enabled = enabled,
                _ => s.schema_ids.value.enabled = enabled,
            }
        }
        ConfigKey::KeySubjectNameStrategy | ConfigKey::ValueSubjectNameStrategy => {
            let strategy = SubjectNameStrategy::parse(value)
                .ok_or_else(|| refusal(change, format!("must be {}", SubjectNameStrategy::NAMES)))?;
            match key {
                ConfigKey::KeySubjectNameStrategy => s.schema_ids.key.strategy = strategy,
                _ => s.schema_ids.value.strategy = strategy,
            }
        }
        ConfigKey::DeadLetterGroupEnable => {
            s.takes_dead_letters =
                crate::meta::parse_bool(value).ok_or_else(|| refusal(change, "must be true or false"))?;
        }
        ConfigKey::CompressionGzipLevel | ConfigKey::CompressionLz4Level | ConfigKey::CompressionZstdLevel => {
            let codec = key.level_codec().unwrap_or(rill_protocol::Compression::None);
            let level = CompressionLevels::parse(codec, value).map_err(|reason| refusal(change, reason))?;
            match codec {
                rill_protocol::Compression::Gzip => s.compression_levels.gzip = Some(level),
                rill_protocol::Compression::Lz4 => s.compression_levels.lz4 = Some(level),
                _ => s.compression_levels.zstd = Some(level),
            }
        }
        ConfigKey::LeaderThrottledReplicas | ConfigKey::FollowerThrottledReplicas => {
            let list =
                ReplicaList::parse(value).ok_or_else(|| refusal(change, format!("must be {}", ReplicaList::FORMAT)))?;
            match key {
                ConfigKey::LeaderThrottledReplicas => s.throttled_replicas.leader = list,
                _ => s.throttled_replicas.follower = list,
            }
        }
    }
    Ok(())
}

/// Kafka's Long.MAX_VALUE: a bound in milliseconds this large (or larger) is no bound.
pub const LONG_MAX_MS: u64 = i64::MAX as u64;

/// What no single key checks: a batch must fit a segment.
fn check_whole(next: &TopicConfigState, changes: &[ConfigChange], defaults: &BrokerConfig) -> Result<()> {
    let s = &next.settings;
    if s.max_batch_bytes > s.segment_bytes {
        let blamed = changes
            .iter()
            .find(|c| matches!(ConfigKey::parse(&c.key), Some(ConfigKey::MaxMessageBytes | ConfigKey::SegmentBytes)))
            .cloned()
            .unwrap_or_else(|| ConfigChange::delete(ConfigKey::SegmentBytes.kafka_name()));
        return Err(refusal(
            &blamed,
            format!(
                "max.message.bytes ({}) would be above segment.bytes ({}): a batch must fit in one segment",
                s.max_batch_bytes, s.segment_bytes
            ),
        ));
    }
    if let Some(max_lag) = s.cleanup.max_compaction_lag_ms.filter(|lag| *lag < s.cleanup.min_compaction_lag_ms) {
        let blamed = changes
            .iter()
            .find(|c| {
                matches!(ConfigKey::parse(&c.key), Some(ConfigKey::MaxCompactionLagMs | ConfigKey::MinCompactionLagMs))
            })
            .cloned()
            .unwrap_or_else(|| ConfigChange::set(ConfigKey::MaxCompactionLagMs.kafka_name(), max_lag.to_string()));
        return Err(refusal(
            &blamed,
            format!(
                "max.compaction.lag.ms ({max_lag}) would be below min.compaction.lag.ms ({}): a record cannot have \
                 to be compacted before it may be",
                s.cleanup.min_compaction_lag_ms
            ),
        ));
    }
    if s.max_batch_bytes > defaults.max_batch_bytes {
        return Err(BrokerError::InvalidTopicConfig {
            key: ConfigKey::MaxMessageBytes.kafka_name().to_owned(),
            value: s.max_batch_bytes.to_string(),
            reason: format!("is above the broker's max_batch_bytes of {}", defaults.max_batch_bytes),
        });
    }
    Ok(())
}

/// The keys the topic sets itself ([`own_keys`]), in [`ConfigKey::ALL`]'s order: shown as set on the topic
/// (DescribeConfigs' TOPIC_CONFIG source, `rill topic describe`), the others as defaults.
pub fn overridden_keys(state: &TopicConfigState, replication_factor: u32, defaults: &BrokerConfig) -> Vec<ConfigKey> {
    let own = own_keys(state, replication_factor, defaults);
    ConfigKey::ALL.into_iter().filter(|key| own.contains(key)).collect()
}

/// The keys whose value on the topic differs from what the broker's static defaults would give it now: a topic
/// stored before its own keys were kept owns these (a value set equal to the default reads as a default).
fn differing_keys(state: &TopicConfigState, replication_factor: u32, defaults: &BrokerConfig) -> Vec<ConfigKey> {
    let s = &state.settings;
    let mut keys = Vec::new();
    let mut differs = |key, is_different: bool| {
        if is_different {
            keys.push(key);
        }
    };
    differs(ConfigKey::RetentionMs, s.retention_ms != defaults.default_retention_ms);
    differs(ConfigKey::RetentionBytes, s.retention_bytes != defaults.default_retention_bytes);
    differs(ConfigKey::SegmentBytes, s.segment_bytes != defaults.default_segment_bytes);
    differs(
        ConfigKey::MaxMessageBytes,
        s.max_batch_bytes != default_max_batch_bytes(Defaults::of(defaults), s.segment_bytes),
    );
    differs(
        ConfigKey::FlushMs,
        s.durability == DurabilityPolicy::Interval && s.flush_interval_ms != defaults.default_flush_interval_ms,
    );
    differs(ConfigKey::Durability, s.durability != defaults.default_durability);
    differs(ConfigKey::MinInsyncReplicas, state.min_insync_replicas != default_min_insync_replicas(replication_factor));
    let default = Cleanup::default();
    differs(ConfigKey::CleanupPolicy, (s.cleanup.compact, s.cleanup.delete) != (default.compact, default.delete));
    differs(ConfigKey::DeleteRetentionMs, s.cleanup.delete_retention_ms != default.delete_retention_ms);
    differs(ConfigKey::MinCompactionLagMs, s.cleanup.min_compaction_lag_ms != default.min_compaction_lag_ms);
    differs(
        ConfigKey::MinCleanableDirtyRatio,
        s.cleanup.min_cleanable_dirty_permille != default.min_cleanable_dirty_permille,
    );
    differs(ConfigKey::MaxCompactionLagMs, s.cleanup.max_compaction_lag_ms.is_some());
    differs(ConfigKey::SegmentMs, s.segment_ms != DEFAULT_SEGMENT_MS);
    differs(ConfigKey::MessageTimestampType, s.timestamps.log_append_time);
    differs(ConfigKey::MessageTimestampBeforeMaxMs, s.timestamps.before_max_ms.is_some());
    differs(ConfigKey::MessageTimestampAfterMaxMs, s.timestamps.after_max_ms.is_some());
    differs(ConfigKey::CompressionType, s.compression != defaults.default_compression_type);
    differs(ConfigKey::KeySchemaValidation, s.schema_ids.key.enabled);
    differs(ConfigKey::ValueSchemaValidation, s.schema_ids.value.enabled);
    differs(ConfigKey::KeySubjectNameStrategy, s.schema_ids.key.strategy != SubjectNameStrategy::default());
    differs(ConfigKey::ValueSubjectNameStrategy, s.schema_ids.value.strategy != SubjectNameStrategy::default());
    differs(ConfigKey::DeadLetterGroupEnable, s.takes_dead_letters);
    let levels = (&s.compression_levels, &defaults.default_compression_levels);
    differs(ConfigKey::CompressionGzipLevel, levels.0.gzip != levels.1.gzip);
    differs(ConfigKey::CompressionLz4Level, levels.0.lz4 != levels.1.lz4);
    differs(ConfigKey::CompressionZstdLevel, levels.0.zstd != levels.1.zstd);
    differs(ConfigKey::LeaderThrottledReplicas, !s.throttled_replicas.leader.is_empty());
    differs(ConfigKey::FollowerThrottledReplicas, !s.throttled_replicas.follower.is_empty());
    keys
}

#[cfg(test)]
mod tests;

/// A gRPC AlterTopicConfig request's changes, in the shape Kafka's requests take too. Set fields are named by
/// their Kafka keys, so a refusal reads the same whichever way the change came (`rill topic alter` takes those).
pub fn changes_of(request: &rill_protocol::v1::AlterTopicConfigRequest) -> Vec<ConfigChange> {
    use rill_protocol::v1::DurabilityPolicy as Policy;
    let set = request.set.clone().unwrap_or_default();
    let limit = |value: u64| if value == u64::MAX { "-1".to_owned() } else { value.to_string() };
    let mut changes = Vec::new();
    let mut push = |key: ConfigKey, value: Option<String>| {
        if let Some(value) = value {
            changes.push(ConfigChange::set(key.kafka_name(), value));
        }
    };
    push(ConfigKey::RetentionMs, set.retention_ms.map(limit));
    push(ConfigKey::RetentionBytes, set.retention_bytes.map(limit));
    push(ConfigKey::SegmentBytes, set.segment_bytes.map(|v| v.to_string()));
    push(ConfigKey::MaxMessageBytes, set.max_batch_bytes.map(|v| v.to_string()));
    push(ConfigKey::FlushMs, set.flush_interval_ms.map(|v| v.to_string()));
    let durability = match Policy::try_from(set.durability) {
        Ok(Policy::Unspecified) => None,
        Ok(Policy::Always) => Some("always".to_owned()),
        Ok(Policy::Interval) => Some("interval".to_owned()),
        Ok(Policy::Never) => Some("never".to_owned()),
        Err(_) => Some(set.durability.to_string()),
    };
    push(ConfigKey::Durability, durability);
    push(ConfigKey::MinInsyncReplicas, request.min_insync_replicas.map(|v| v.to_string()));
    push(ConfigKey::CleanupPolicy, set.cleanup_policy.clone());
    push(ConfigKey::DeleteRetentionMs, set.delete_retention_ms.map(|v| v.to_string()));
    push(ConfigKey::MinCompactionLagMs, set.min_compaction_lag_ms.map(|v| v.to_string()));
    push(ConfigKey::MinCleanableDirtyRatio, set.min_cleanable_dirty_ratio.map(|v| v.to_string()));
    push(ConfigKey::MaxCompactionLagMs, set.max_compaction_lag_ms.map(|v| v.to_string()));
    push(ConfigKey::SegmentMs, set.segment_ms.map(|v| v.to_string()));
    push(ConfigKey::MessageTimestampType, set.message_timestamp_type.clone());
    push(ConfigKey::MessageTimestampBeforeMaxMs, set.message_timestamp_before_max_ms.map(|v| v.to_string()));
    push(ConfigKey::MessageTimestampAfterMaxMs, set.message_timestamp_after_max_ms.map(|v| v.to_string()));
    push(ConfigKey::CompressionType, set.compression_type.clone());
    push(ConfigKey::KeySchemaValidation, set.key_schema_validation.map(|v| v.to_string()));
    push(ConfigKey::ValueSchemaValidation, set.value_schema_validation.map(|v| v.to_string()));
    push(ConfigKey::KeySubjectNameStrategy, set.key_subject_name_strategy.clone());
    push(ConfigKey::ValueSubjectNameStrategy, set.value_subject_name_strategy.clone());
    push(ConfigKey::DeadLetterGroupEnable, set.dead_letter_group_enable.map(|v| v.to_string()));
    push(ConfigKey::CompressionGzipLevel, set.compression_gzip_level.map(|v| v.to_string()));
    push(ConfigKey::CompressionLz4Level, set.compression_lz4_level.map(|v| v.to_string()));
    push(ConfigKey::CompressionZstdLevel, set.compression_zstd_level.map(|v| v.to_string()));
    push(ConfigKey::LeaderThrottledReplicas, set.leader_throttled_replicas.clone());
    push(ConfigKey::FollowerThrottledReplicas, set.follower_throttled_replicas.clone());
    changes.extend(request.delete.iter().map(ConfigChange::delete));
    changes
}

/// The keys a create's request sets: the topic's own keys from the start.
pub fn requested_keys(config: &rill_protocol::v1::TopicConfig) -> OwnKeys {
    let request = rill_protocol::v1::AlterTopicConfigRequest { set: Some(config.clone()), ..Default::default() };
    OwnKeys(changes_of(&request).iter().filter_map(|change| ConfigKey::parse(&change.key)).collect())
}

/// Alters topic `name` on this node (a single node) or through the controller (a cluster), after the caller
/// authorized it: the topic's info as the change leaves it (with `validate_only`, as it would, changing
/// nothing).
pub async fn alter(
    node: &crate::node::Node,
    name: &str,
    changes: &[ConfigChange],
    is_validate_only: bool,
) -> Result<rill_protocol::v1::TopicInfo> {
    if let Some(replication) = &node.replication {
        return replication.alter_topic_config(name, changes, is_validate_only).await;
    }
    let topic = node.registry.topic(name)?;
    let current = TopicConfigState { settings: topic.settings(), min_insync_replicas: 1 };
    let next = apply_changes(&current, changes, 1, Defaults::with(&node.config, &node.registry.topic_defaults()))?;
    let mut info = topic.info();
    if !is_validate_only {
        node.registry.alter_settings(name, next.settings.clone()).await?;
    }
    info.config = Some(crate::registry::settings_info(&next.settings));
    fill_overrides(&mut info, &next, 1, &node.config);
    Ok(info)
}

/// Topic `name`'s configuration as it runs, with its replication factor: a cluster's is the metadata's (a node
/// applies an alter to its logs a moment after it learns of it); a single node's is its registry's, with
/// min.insync.replicas and the replication factor 1. What DescribeConfigs and the console's settings page show.
pub fn current_state(node: &crate::node::Node, name: &str) -> Result<(TopicConfigState, u32)> {
    if let Some(replication) = &node.replication {
        let metadata = replication.metadata();
        // A cluster's topics are the metadata's alone: a local copy it lacks is a deleted topic's, not yet removed.
        let placed = metadata.topics.get(name).ok_or_else(|| replication.unknown_topic(name))?;
        let state =
            TopicConfigState { settings: placed.settings.clone(), min_insync_replicas: placed.min_insync_replicas };
        return Ok((state, placed.replication_factor()));
    }
    let topic = node.registry.topic(name)?;
    Ok((TopicConfigState { settings: topic.settings(), min_insync_replicas: 1 }, 1))
}

/// Fills `info.overridden_keys` and its settings fields from `state`.
pub fn fill_overrides(
    info: &mut rill_protocol::v1::TopicInfo,
    state: &TopicConfigState,
    replication_factor: u32,
    defaults: &BrokerConfig,
) {
    info.min_insync_replicas = state.min_insync_replicas;
    info.overridden_keys = overridden_keys(state, replication_factor, defaults)
        .into_iter()
        .map(|key| key.kafka_name().to_owned())
        .collect();
}
