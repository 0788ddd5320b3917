//! Kafka's topic and broker config names in rill's terms: what CreateTopics may set and DescribeConfigs shows.
//!
//! Topic configs mapped (anything else is INVALID_CONFIG, naming what is accepted, as Kafka refuses a name it
//! does not know): `retention.ms` and `retention.bytes` (-1: no limit), `segment.bytes`, `max.message.bytes`
//! (rill's `max_batch_bytes`), `flush.ms` (rill's `interval` durability with that period), `cleanup.policy`
//! (`delete`, `compact`, `compact,delete`) with `delete.retention.ms`, `min.compaction.lag.ms`,
//! `max.compaction.lag.ms` and `min.cleanable.dirty.ratio`, `segment.ms`, `message.timestamp.type`
//! (`CreateTime`, `LogAppendTime`) with `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`, and
//! `min.insync.replicas` (kept beside the settings: it belongs to the topic's placement on a cluster).
//!
//! `compression.type` (`producer`, or a codec the broker stores every batch in) is mapped too, with the levels it
//! stores at (`compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level`, KIP-390), and Confluent's
//! broker-side schema id validation: `confluent.key.schema.validation`, `confluent.value.schema.validation` and
//! their `confluent.*.subject.name.strategy` (docs/schema-registry.md). One more Kafka config
//! holds what rill always does ([`FIXED`]): `unclean.leader.election.enable=false`. Frameworks set it on the topics
//! they create (ksqlDB on its command topic), so that value is accepted at create and alter and shown by
//! DescribeConfigs, and any other is INVALID_CONFIG saying why.

use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;

use super::KafkaContext;
use crate::config::BrokerConfig;
use crate::config::DurabilityPolicy;
use crate::meta::{
    Cleanup, CompressionLevels, MessageTimestamps, SubjectNameStrategy, TopicCompression, TopicSettings,
};
use crate::topic_config::{overridden_keys, ConfigKey, TopicConfigState};
use crate::topic_defaults::TopicDefaults;
use rill_protocol::Compression;

/// The topic configs CreateTopics accepts.
pub const SETTABLE: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "max.message.bytes",
    "flush.ms",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "max.compaction.lag.ms",
    "segment.ms",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "confluent.key.schema.validation",
    "confluent.value.schema.validation",
    "confluent.key.subject.name.strategy",
    "confluent.value.subject.name.strategy",
    "errors.deadletterqueue.group.enable",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

/// A Kafka topic config whose one value is what rill always does: accepted with that value, refused otherwise.
pub struct FixedConfig {
    pub name: &'static str,
    pub value: &'static str,
    /// Why no other value is accepted.
    pub why: &'static str,
    pub config_type: i8,
}

/// The Kafka topic configs rill holds at one value (see the module doc).
pub const FIXED: [FixedConfig; 1] = [FixedConfig {
    name: "unclean.leader.election.enable",
    value: "false",
    why: "rill never elects a replica that is not in sync, which could lose acknowledged records (docs/cluster.md)",
    config_type: TYPE_BOOLEAN,
}];

/// `Ok(true)`: `name` is a [`FIXED`] config and `value` (`None`: a reset) is its value, a change that changes
/// nothing; `Ok(false)`: not a fixed config; `Err`: a fixed config set to another value, with why.
pub fn is_fixed_config_kept(name: &str, value: Option<&str>) -> Result<bool, String> {
    let Some(fixed) = FIXED.iter().find(|fixed| fixed.name == name) else { return Ok(false) };
    match value.map(str::trim) {
        None => Ok(true),
        Some(value) if value.eq_ignore_ascii_case(fixed.value) => Ok(true),
        Some(value) => Err(format!("{} must be {}, not {value:?}: {}", fixed.name, fixed.value, fixed.why)),
    }
}

/// Kafka's DescribeConfigs config sources and types used here.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;
/// Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG: a setting made for every broker of the cluster at once.
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
pub const TYPE_LIST: i8 = 7;
const TYPE_CLASS: i8 = 8;
const TYPE_DOUBLE: i8 = 6;

/// One config as DescribeConfigs (and CreateTopics v5+) shows it.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
}

/// What a CreateTopics request's configs ask of the new topic.
#[derive(Debug, Default)]
pub struct CreateConfig {
    pub config: v1::TopicConfig,
    /// `min.insync.replicas`; `None`: the default for the replication factor (`placement.rs`).
    pub min_insync_replicas: Option<u32>,
}

/// Kafka configs of a CreateTopics request as rill's topic settings; the message says which and why.
pub fn topic_config<'a>(configs: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> Result<CreateConfig, String> {
    let mut asked = CreateConfig::default();
    let config = &mut asked.config;
    for (name, value) in configs {
        let Some(value) = value else { continue };
        if is_fixed_config_kept(name, Some(value))? {
            continue;
        }
        match name {
            "min.insync.replicas" => {
                let count = value.trim().parse().ok().filter(|count| *count >= 1).ok_or_else(|| {
                    format!(
                        "min.insync.replicas must be a whole number from 1 to the replication factor, not {value:?}"
                    )
                })?;
                asked.min_insync_replicas = Some(count);
            }
            "retention.ms" => config.retention_ms = Some(unlimited_or_count(name, value)?),
            "retention.bytes" => config.retention_bytes = Some(unlimited_or_count(name, value)?),
            "segment.bytes" => config.segment_bytes = Some(count(name, value)?),
            "max.message.bytes" => config.max_batch_bytes = Some(count(name, value)?),
            "flush.ms" => {
                config.durability = v1::DurabilityPolicy::Interval as i32;
                config.flush_interval_ms = Some(count(name, value)?);
            }
            "cleanup.policy" => {
                Cleanup::parse_policy(value).ok_or_else(|| {
                    format!("cleanup.policy must be delete, compact, or compact,delete, not {value:?}")
                })?;
                config.cleanup_policy = Some(value.to_owned());
            }
            "delete.retention.ms" => config.delete_retention_ms = Some(count(name, value)?),
            "min.compaction.lag.ms" => config.min_compaction_lag_ms = Some(count(name, value)?),
            "min.cleanable.dirty.ratio" => {
                let permille = Cleanup::parse_dirty_ratio(value)
                    .ok_or_else(|| format!("min.cleanable.dirty.ratio must be from 0 to 1, not {value:?}"))?;
                config.min_cleanable_dirty_ratio = Some(f64::from(permille) / 1000.0);
            }
            "max.compaction.lag.ms" => config.max_compaction_lag_ms = Some(at_least_one(name, value)?),
            "segment.ms" => config.segment_ms = Some(at_least_one(name, value)?),
            "message.timestamp.type" => {
                MessageTimestamps::parse_type(value).ok_or_else(|| {
                    format!("message.timestamp.type must be CreateTime or LogAppendTime, not {value:?}")
                })?;
                config.message_timestamp_type = Some(value.trim().to_owned());
            }
            "message.timestamp.before.max.ms" => config.message_timestamp_before_max_ms = Some(count(name, value)?),
            "message.timestamp.after.max.ms" => config.message_timestamp_after_max_ms = Some(count(name, value)?),
            "compression.type" => {
                TopicCompression::parse(value)
                    .ok_or_else(|| format!("compression.type must be {}, not {value:?}", TopicCompression::NAMES))?;
                config.compression_type = Some(value.trim().to_owned());
            }
            "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                let key = ConfigKey::parse(name).and_then(ConfigKey::level_codec);
                let codec = key.unwrap_or(Compression::None);
                let level = CompressionLevels::parse(codec, value)
                    .map_err(|reason| format!("{name} {reason}, not {value:?}"))?;
                match codec {
                    Compression::Gzip => config.compression_gzip_level = Some(level),
                    Compression::Lz4 => config.compression_lz4_level = Some(level),
                    _ => config.compression_zstd_level = Some(level),
                }
            }
            "confluent.key.schema.validation" | "confluent.value.schema.validation" => {
                let enabled = crate::meta::parse_bool(value)
                    .ok_or_else(|| format!("{name} must be true or false, not {value:?}"))?;
                match name {
                    "confluent.key.schema.validation" => config.key_schema_validation = Some(enabled),
                    _ => config.value_schema_validation = Some(enabled),
                }
            }
            "confluent.key.subject.name.strategy" | "confluent.value.subject.name.strategy" => {
                let strategy = SubjectNameStrategy::parse(value)
                    .ok_or_else(|| format!("{name} must be {}, not {value:?}", SubjectNameStrategy::NAMES))?;
                match name {
                    "confluent.key.subject.name.strategy" => {
                        config.key_subject_name_strategy = Some(format!("{strategy:?}"))
                    }
                    _ => config.value_subject_name_strategy = Some(format!("{strategy:?}")),
                }
            }
            "errors.deadletterqueue.group.enable" => {
                let enabled = crate::meta::parse_bool(value)
                    .ok_or_else(|| format!("{name} must be true or false, not {value:?}"))?;
                config.dead_letter_group_enable = Some(enabled);
            }
            "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
                use crate::replication::throttle::ReplicaList;
                let list = ReplicaList::parse(value)
                    .ok_or_else(|| format!("{name} must be {}, not {value:?}", ReplicaList::FORMAT))?;
                match name {
                    "leader.replication.throttled.replicas" => {
                        config.leader_throttled_replicas = Some(list.to_string())
                    }
                    _ => config.follower_throttled_replicas = Some(list.to_string()),
                }
            }
            other => {
                return Err(format!(
                    "config {other:?} is not supported; the topic configs rill maps are {}",
                    SETTABLE.join(", ")
                ))
            }
        }
    }
    Ok(asked)
}

/// Kafka's -1 is rill's "no limit", the largest u64.
fn unlimited_or_count(name: &str, value: &str) -> Result<u64, String> {
    if value.trim() == "-1" {
        return Ok(u64::MAX);
    }
    count(name, value)
        .map_err(|_| format!("{name} must be -1 (no limit) or a whole number of 0 or more, not {value:?}"))
}

fn count(name: &str, value: &str) -> Result<u64, String> {
    value.trim().parse().map_err(|_| format!("{name} must be a whole number of 0 or more, not {value:?}"))
}

fn at_least_one(name: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|ms| *ms >= 1)
        .ok_or_else(|| format!("{name} must be a whole number of milliseconds from 1, not {value:?}"))
}

/// A topic's effective configs: those set on the topic (`topic_config::overridden_keys`) with source TOPIC_CONFIG,
/// those it takes from the cluster's dynamic defaults (`topic_defaults.rs`) as DYNAMIC_DEFAULT_BROKER_CONFIG, the
/// others as defaults.
pub fn topic_entries(
    state: &TopicConfigState,
    replication_factor: u32,
    defaults: &BrokerConfig,
    cluster: &TopicDefaults,
) -> Vec<ConfigEntry> {
    let s: &TopicSettings = &state.settings;
    let overridden = overridden_keys(state, replication_factor, defaults);
    // One of the topic's keys, under Kafka's name, with its source.
    let topic = |key: ConfigKey, value: String, config_type: i8| {
        let source = if overridden.contains(&key) {
            SOURCE_TOPIC
        } else if cluster.get(key).is_some() {
            SOURCE_DYNAMIC_DEFAULT_BROKER
        } else {
            SOURCE_DEFAULT
        };
        entry(key.kafka_name(), value, source, config_type)
    };
    let limit = |value: Option<u64>| value.filter(|v| *v != u64::MAX).map_or("-1".to_owned(), |v| v.to_string());
    // Kafka shows an unset bound as Long.MAX_VALUE.
    let bound = |value: Option<u64>| value.unwrap_or(crate::topic_config::LONG_MAX_MS).to_string();
    let flush_ms = match s.durability {
        DurabilityPolicy::Interval => s.flush_interval_ms.to_string(),
        // Kafka's "never forced" value, Long.MAX_VALUE: fsyncs follow rill's durability policy instead.
        DurabilityPolicy::Always | DurabilityPolicy::Never => i64::MAX.to_string(),
    };
    let durability = match s.durability {
        DurabilityPolicy::Always => "always",
        DurabilityPolicy::Interval => "interval",
        DurabilityPolicy::Never => "never",
    };
    let cleanup = &s.cleanup;
    let levels = &s.compression_levels;
    vec![
        topic(ConfigKey::CleanupPolicy, cleanup.policy().into(), TYPE_LIST),
        topic(ConfigKey::DeleteRetentionMs, cleanup.delete_retention_ms.to_string(), TYPE_LONG),
        topic(ConfigKey::MinCompactionLagMs, cleanup.min_compaction_lag_ms.to_string(), TYPE_LONG),
        topic(ConfigKey::MinCleanableDirtyRatio, cleanup.dirty_ratio_text(), TYPE_DOUBLE),
        topic(ConfigKey::RetentionMs, limit(s.retention_ms), TYPE_LONG),
        topic(ConfigKey::RetentionBytes, limit(s.retention_bytes), TYPE_LONG),
        topic(ConfigKey::SegmentBytes, s.segment_bytes.to_string(), TYPE_INT),
        topic(ConfigKey::MaxMessageBytes, s.max_batch_bytes.to_string(), TYPE_INT),
        topic(ConfigKey::FlushMs, flush_ms, TYPE_LONG),
        topic(ConfigKey::Durability, durability.into(), TYPE_STRING),
        topic(ConfigKey::MinInsyncReplicas, state.min_insync_replicas.to_string(), TYPE_INT),
        topic(ConfigKey::MaxCompactionLagMs, bound(cleanup.max_compaction_lag_ms), TYPE_LONG),
        topic(ConfigKey::SegmentMs, s.segment_ms.to_string(), TYPE_LONG),
        topic(ConfigKey::MessageTimestampType, s.timestamps.type_name().into(), TYPE_STRING),
        topic(ConfigKey::MessageTimestampBeforeMaxMs, bound(s.timestamps.before_max_ms), TYPE_LONG),
        topic(ConfigKey::MessageTimestampAfterMaxMs, bound(s.timestamps.after_max_ms), TYPE_LONG),
        topic(ConfigKey::CompressionType, s.compression.name().into(), TYPE_STRING),
        topic(ConfigKey::CompressionGzipLevel, levels.shown(Compression::Gzip).to_string(), TYPE_INT),
        topic(ConfigKey::CompressionLz4Level, levels.shown(Compression::Lz4).to_string(), TYPE_INT),
        topic(ConfigKey::CompressionZstdLevel, levels.shown(Compression::Zstd).to_string(), TYPE_INT),
        topic(ConfigKey::KeySchemaValidation, s.schema_ids.key.enabled.to_string(), TYPE_BOOLEAN),
        topic(ConfigKey::ValueSchemaValidation, s.schema_ids.value.enabled.to_string(), TYPE_BOOLEAN),
        topic(ConfigKey::KeySubjectNameStrategy, s.schema_ids.key.strategy.class_name(), TYPE_STRING),
        topic(ConfigKey::ValueSubjectNameStrategy, s.schema_ids.value.strategy.class_name(), TYPE_STRING),
        topic(ConfigKey::DeadLetterGroupEnable, s.takes_dead_letters.to_string(), TYPE_BOOLEAN),
        topic(ConfigKey::LeaderThrottledReplicas, s.throttled_replicas.leader.to_string(), TYPE_LIST),
        topic(ConfigKey::FollowerThrottledReplicas, s.throttled_replicas.follower.to_string(), TYPE_LIST),
    ]
    .into_iter()
    .chain(FIXED.iter().map(|fixed| entry(fixed.name, fixed.value.into(), SOURCE_DEFAULT, fixed.config_type)))
    .collect()
}

/// The node's settings under Kafka's broker config names, the topic defaults among them (the cluster's dynamic
/// value where one is set, else this node's static one).
pub fn broker_entries(kafka: &KafkaContext) -> Vec<ConfigEntry> {
    let c = &kafka.node.config;
    let listener = format!("PLAINTEXT://{}:{}", kafka.advertised_host, kafka.advertised_port);
    let fixed = SOURCE_STATIC_BROKER;
    let mut entries = vec![
        entry("broker.id", kafka.node_id.to_string(), fixed, TYPE_INT),
        entry("advertised.listeners", listener, fixed, TYPE_STRING),
        entry("auto.create.topics.enable", c.auto_create_topics.to_string(), fixed, TYPE_BOOLEAN),
        entry("num.partitions", c.default_partitions.to_string(), fixed, TYPE_INT),
        entry("default.replication.factor", c.default_replication_factor.to_string(), fixed, TYPE_INT),
        entry("log.cleaner.threads", c.log_cleaner_threads.to_string(), fixed, TYPE_INT),
        entry("socket.request.max.bytes", c.max_request_bytes.to_string(), fixed, TYPE_INT),
        entry("group.min.session.timeout.ms", c.group_min_session_timeout_ms.to_string(), fixed, TYPE_INT),
        entry("group.max.session.timeout.ms", c.group_max_session_timeout_ms.to_string(), fixed, TYPE_INT),
        entry("group.initial.rebalance.delay.ms", "0".into(), fixed, TYPE_INT),
        throttle_entry(super::broker_configs::LEADER_THROTTLE, kafka),
        throttle_entry(super::broker_configs::FOLLOWER_THROTTLE, kafka),
        entry(
            super::broker_configs::LOG_DIR_THROTTLE,
            super::broker_configs::UNTHROTTLED.to_string(),
            SOURCE_DEFAULT,
            TYPE_LONG,
        ),
    ];
    entries.extend(topic_default_entries(c, &crate::topic_defaults::current(&kafka.node)));
    // What tools that place or read by zone look for (Cruise Control, kafka-ui): the rack when the node has one,
    // and Kafka's selector class while this node sends consumers to followers in their rack (KIP-392).
    if let Some(rack) = &c.rack {
        entries.push(entry("broker.rack", rack.clone(), fixed, TYPE_STRING));
    }
    if c.follower_fetching && kafka.controller.is_some() {
        let selector = "org.apache.kafka.common.replica.RackAwareReplicaSelector".to_owned();
        entries.push(entry("replica.selector.class", selector, fixed, TYPE_CLASS));
    }
    entries
}

/// The topic defaults under their broker names (`topic_defaults::described`): a dynamic one as
/// DYNAMIC_DEFAULT_BROKER_CONFIG; one of this node's flags (`--retention-ms`, ...) as STATIC_BROKER_CONFIG; else
/// Kafka's default, as DEFAULT_CONFIG.
fn topic_default_entries(config: &BrokerConfig, cluster: &TopicDefaults) -> Vec<ConfigEntry> {
    let is_flag = |key| {
        matches!(
            key,
            ConfigKey::RetentionMs
                | ConfigKey::RetentionBytes
                | ConfigKey::SegmentBytes
                | ConfigKey::MaxMessageBytes
                | ConfigKey::CompressionType
                | ConfigKey::CompressionGzipLevel
                | ConfigKey::CompressionLz4Level
                | ConfigKey::CompressionZstdLevel
        )
    };
    crate::topic_defaults::described(config, cluster)
        .into_iter()
        .map(|default| {
            let source = match (default.is_set, is_flag(default.key)) {
                (true, _) => SOURCE_DYNAMIC_DEFAULT_BROKER,
                (false, true) => SOURCE_STATIC_BROKER,
                (false, false) => SOURCE_DEFAULT,
            };
            entry(default.broker_name, default.value, source, default.config_type)
        })
        .collect()
}

/// The cluster's replication throttle for moves (`rill cluster throttle`), under both of Kafka's names (KIP-73):
/// rill enforces one rate on the leader's side per pair of nodes (`replication/throttle.rs`). Cluster-wide, so
/// reported as a dynamic default; unset, Kafka's no-limit value.
fn throttle_entry(name: &'static str, kafka: &KafkaContext) -> ConfigEntry {
    let rate = kafka.controller.as_ref().and_then(|c| c.metadata().replication_throttle_bytes_per_sec);
    match rate {
        Some(rate) => entry(name, rate.to_string(), SOURCE_DYNAMIC_DEFAULT_BROKER, TYPE_LONG),
        None => entry(name, super::broker_configs::UNTHROTTLED.to_string(), SOURCE_DEFAULT, TYPE_LONG),
    }
}

fn entry(name: &'static str, value: String, source: i8, config_type: i8) -> ConfigEntry {
    ConfigEntry { name, value, source, config_type }
}

pub fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_topic_configs_map_to_rill_settings_and_unknown_ones_are_refused() {
        let asked = [("retention.ms", Some("-1")), ("segment.bytes", Some("1048576")), ("flush.ms", Some("50"))];
        let asked = [("min.insync.replicas", Some("2")), asked[0], asked[1], asked[2]];
        let CreateConfig { config, min_insync_replicas } = topic_config(asked.into_iter()).expect("all mapped");
        assert_eq!(min_insync_replicas, Some(2));
        assert_eq!(config.retention_ms, Some(u64::MAX));
        assert_eq!(config.segment_bytes, Some(1 << 20));
        assert_eq!((config.durability, config.flush_interval_ms), (v1::DurabilityPolicy::Interval as i32, Some(50)));
        let compacted = [
            ("cleanup.policy", Some("compact,delete")),
            ("delete.retention.ms", Some("1000")),
            ("min.compaction.lag.ms", Some("5")),
            ("min.cleanable.dirty.ratio", Some("0.01")),
        ];
        let CreateConfig { config, .. } = topic_config(compacted.into_iter()).expect("compaction configs map");
        assert_eq!(config.cleanup_policy.as_deref(), Some("compact,delete"));
        assert_eq!((config.delete_retention_ms, config.min_compaction_lag_ms), (Some(1000), Some(5)));
        assert_eq!(config.min_cleanable_dirty_ratio, Some(0.01));
        let policy = topic_config([("cleanup.policy", Some("compress"))].into_iter()).unwrap_err();
        assert!(policy.contains("delete, compact, or compact,delete"), "{policy}");
        let ratio = topic_config([("min.cleanable.dirty.ratio", Some("1.5"))].into_iter()).unwrap_err();
        assert!(ratio.contains("from 0 to 1"), "{ratio}");
        let unknown = topic_config([("preallocate", Some("true"))].into_iter()).unwrap_err();
        assert!(unknown.contains("retention.ms"), "the refusal lists what is accepted: {unknown}");
        // What Kafka Streams sends for a changelog, ksqlDB for its command topic.
        let streams = [
            ("cleanup.policy", Some("compact")),
            ("message.timestamp.type", Some("CreateTime")),
            ("segment.ms", Some("600000")),
            ("max.compaction.lag.ms", Some("9223372036854775807")),
            ("message.timestamp.before.max.ms", Some("86400000")),
            ("message.timestamp.after.max.ms", Some("3600000")),
            ("unclean.leader.election.enable", Some("false")),
            ("compression.type", Some("producer")),
        ];
        let CreateConfig { config, .. } = topic_config(streams.into_iter()).expect("all mapped or kept");
        assert_eq!(config.message_timestamp_type.as_deref(), Some("CreateTime"));
        assert_eq!((config.segment_ms, config.max_compaction_lag_ms), (Some(600_000), Some(i64::MAX as u64)));
        assert_eq!(
            (config.message_timestamp_before_max_ms, config.message_timestamp_after_max_ms),
            (Some(86_400_000), Some(3_600_000))
        );
        let unclean = topic_config([("unclean.leader.election.enable", Some("true"))].into_iter()).unwrap_err();
        assert!(unclean.contains("must be false") && unclean.contains("not in sync"), "{unclean}");
        let zstd = topic_config([("compression.type", Some("zstd"))].into_iter()).expect("a codec");
        assert_eq!(zstd.config.compression_type.as_deref(), Some("zstd"));
        let levels = [("compression.zstd.level", Some("-5")), ("compression.gzip.level", Some("-1"))];
        let levels = topic_config(levels.into_iter()).expect("levels in range");
        assert_eq!((levels.config.compression_zstd_level, levels.config.compression_gzip_level), (Some(-5), Some(-1)));
        for (name, value, allowed) in [
            ("compression.gzip.level", "0", "from 1 (fastest) to 9"),
            ("compression.gzip.level", "10", "or -1 for zlib's default"),
            ("compression.lz4.level", "18", "from 1 to 17"),
            ("compression.zstd.level", "23", "from -131072 (fastest) to 22"),
            ("compression.zstd.level", "fast", "to 22"),
        ] {
            let refused = topic_config([(name, Some(value))].into_iter()).unwrap_err();
            assert!(refused.contains(name) && refused.contains(allowed) && refused.contains(value), "{refused}");
        }
        let codec = topic_config([("compression.type", Some("brotli"))].into_iter()).unwrap_err();
        assert!(codec.contains("producer, uncompressed, gzip, snappy, lz4 or zstd"), "{codec}");
        let clock = topic_config([("message.timestamp.type", Some("Now"))].into_iter()).unwrap_err();
        assert!(clock.contains("CreateTime or LogAppendTime"), "{clock}");
        let never = topic_config([("segment.ms", Some("0"))].into_iter()).unwrap_err();
        assert!(never.contains("from 1"), "{never}");
        let negative = topic_config([("retention.bytes", Some("-5"))].into_iter()).unwrap_err();
        assert!(negative.contains("-1 (no limit)"), "{negative}");
        let none_in_sync = topic_config([("min.insync.replicas", Some("0"))].into_iter()).unwrap_err();
        assert!(none_in_sync.contains("from 1 to the replication factor"), "{none_in_sync}");
    }
}
