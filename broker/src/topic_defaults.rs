//! The cluster's dynamic topic defaults: Kafka's cluster-wide log configs (`kafka-configs.sh --entity-type
//! brokers --entity-default --alter --add-config log.retention.ms=...`, an admin client's alter of the default
//! broker resource), the value every topic that does not set a key itself takes for it.
//!
//! A topic stores its resolved settings and which keys it set itself (`topic_config::OwnKeys`). A change of a
//! default re-resolves, for the keys changed, every user topic that does not own them, and the defaults and those
//! topics change together: on a cluster one command of the replicated metadata carries the new defaults and every
//! topic's new settings, computed where the change arrived (so each node applies the same values whatever its own
//! flags say), and refused if a topic was altered meanwhile, to be computed again; on a single node the defaults
//! are written to [`FILE`] first, then each topic's settings, each topic read again as it is changed. A topic
//! created afterwards takes the defaults for what its request leaves unset. A DELETE of a default puts the
//! topics that followed it back to the broker's static default (its flags) for that key.
//!
//! Invariants: a topic's own key never changes through a default, and a static default (a flag changed between
//! restarts) never changes an existing topic; only a dynamic one does, when an operator asks for it. A default is
//! refused whole if any topic could not take it (a new `log.segment.bytes` below a topic's own
//! `max.message.bytes`), naming the topic. Reserved topics (`__consumer_offsets`) keep their own settings.
//!
//! A single node cut off between writing the file and a topic's settings applies the defaults it holds to the
//! topics that do not own their keys at the next start ([`crate::registry::Registry::restore`]); a default it
//! deleted may still be held by the topics the crash kept from going back (they keep the value they had).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::topic_config::{ConfigChange, ConfigKey, Defaults, TopicConfigState};

/// The single node's defaults, in its data directory.
pub const FILE: &str = "__topic-defaults.json";
const FORMAT_VERSION: u32 = 1;

/// The topic keys a cluster default may set, each under Kafka's broker name (its `ServerTopicConfigSynonyms`).
/// `flush.ms` and rill's durability are left out (one decides the other; `--durability` and
/// `--flush-interval-ms` are the node's). A `min.insync.replicas` default reaches each topic as at most its
/// replication factor ([`crate::topic_config::default_min_insync_replicas_of`]).
pub const BROKER_NAMES: [(ConfigKey, &str); 18] = [
    (ConfigKey::RetentionMs, "log.retention.ms"),
    (ConfigKey::RetentionBytes, "log.retention.bytes"),
    (ConfigKey::SegmentBytes, "log.segment.bytes"),
    (ConfigKey::SegmentMs, "log.roll.ms"),
    (ConfigKey::MaxMessageBytes, "message.max.bytes"),
    (ConfigKey::MinInsyncReplicas, "min.insync.replicas"),
    (ConfigKey::CleanupPolicy, "log.cleanup.policy"),
    (ConfigKey::DeleteRetentionMs, "log.cleaner.delete.retention.ms"),
    (ConfigKey::MinCompactionLagMs, "log.cleaner.min.compaction.lag.ms"),
    (ConfigKey::MaxCompactionLagMs, "log.cleaner.max.compaction.lag.ms"),
    (ConfigKey::MinCleanableDirtyRatio, "log.cleaner.min.cleanable.ratio"),
    (ConfigKey::CompressionType, "compression.type"),
    (ConfigKey::CompressionGzipLevel, "compression.gzip.level"),
    (ConfigKey::CompressionLz4Level, "compression.lz4.level"),
    (ConfigKey::CompressionZstdLevel, "compression.zstd.level"),
    (ConfigKey::MessageTimestampType, "log.message.timestamp.type"),
    (ConfigKey::MessageTimestampBeforeMaxMs, "log.message.timestamp.before.max.ms"),
    (ConfigKey::MessageTimestampAfterMaxMs, "log.message.timestamp.after.max.ms"),
];

/// The topic key broker config `name` is the default of.
pub fn key_of(name: &str) -> Option<ConfigKey> {
    BROKER_NAMES.iter().find(|(_, broker)| *broker == name).map(|(key, _)| *key)
}

/// Kafka's broker name of topic key `key`'s default, if a default may be set for it.
pub fn broker_name(key: ConfigKey) -> Option<&'static str> {
    BROKER_NAMES.iter().find(|(k, _)| *k == key).map(|(_, name)| *name)
}

/// Every broker name, for a refusal that says what may be set.
pub fn broker_names() -> String {
    BROKER_NAMES.map(|(_, name)| name).join(", ")
}

/// The defaults set, by topic key, each value as it was given (checked, trimmed). Stored under the topic keys'
/// Kafka names; a name this version does not know (a newer node's) is left out when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct TopicDefaults(BTreeMap<ConfigKey, String>);

/// No default set.
pub static NONE: TopicDefaults = TopicDefaults(BTreeMap::new());

impl From<BTreeMap<String, String>> for TopicDefaults {
    fn from(stored: BTreeMap<String, String>) -> TopicDefaults {
        TopicDefaults(
            stored
                .into_iter()
                .filter_map(|(name, value)| {
                    ConfigKey::parse(&name).filter(|key| broker_name(*key).is_some()).zip(Some(value))
                })
                .collect(),
        )
    }
}

impl From<TopicDefaults> for BTreeMap<String, String> {
    fn from(defaults: TopicDefaults) -> BTreeMap<String, String> {
        defaults.0.into_iter().map(|(key, value)| (key.kafka_name().to_owned(), value)).collect()
    }
}

impl TopicDefaults {
    pub fn get(&self, key: ConfigKey) -> Option<&str> {
        self.0.get(&key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = ConfigKey> + '_ {
        self.0.keys().copied()
    }

    /// The defaults after `changes` (keys by their broker names; a `None` value deletes), each value checked as a
    /// topic setting and the whole set checked as one topic would take it (a `max.message.bytes` within the
    /// segment, a compaction lag bound above its minimum). Answers the new defaults and the topic keys changed.
    pub fn changed(&self, changes: &[ConfigChange], broker: &BrokerConfig) -> Result<(TopicDefaults, Vec<ConfigKey>)> {
        let mut next = self.clone();
        let mut changed = Vec::with_capacity(changes.len());
        for change in changes {
            let key = key_of(&change.key).ok_or_else(|| BrokerError::InvalidTopicConfig {
                key: change.key.clone(),
                value: change.value.clone().unwrap_or_default(),
                reason: format!("is not a topic default rill can change; those are {}", broker_names()),
            })?;
            if changed.contains(&key) {
                return Err(BrokerError::InvalidTopicConfig {
                    key: change.key.clone(),
                    value: change.value.clone().unwrap_or_default(),
                    reason: "named twice in one request; name each setting once".to_owned(),
                });
            }
            changed.push(key);
            match change.value.as_deref().map(str::trim) {
                None => next.0.remove(&key),
                Some(value) => next.0.insert(key, value.to_owned()),
            };
        }
        if let Some(value) = next.get(ConfigKey::MinInsyncReplicas) {
            check_min_insync_replicas(value)?;
        }
        // A topic that sets nothing itself must be able to take every default at once.
        let template =
            TopicConfigState { settings: crate::meta::TopicSettings::defaults_of(broker), min_insync_replicas: 1 };
        let sets: Vec<ConfigChange> = next
            .0
            .iter()
            .filter(|(key, _)| **key != ConfigKey::MinInsyncReplicas)
            .map(|(key, value)| ConfigChange::set(key.kafka_name(), value.clone()))
            .collect();
        crate::topic_config::apply_changes(&template, &sets, 1, Defaults::of(broker)).map_err(as_broker_key)?;
        Ok((next, changed))
    }
}

/// A `min.insync.replicas` default: any count from 1 (Kafka's bound), since each topic takes at most its
/// replication factor of it.
fn check_min_insync_replicas(value: &str) -> Result<()> {
    match value.parse::<u32>() {
        Ok(count) if count >= 1 => Ok(()),
        _ => Err(BrokerError::InvalidTopicConfig {
            key: "min.insync.replicas".to_owned(),
            value: value.to_owned(),
            reason: "must be a whole number from 1; a topic with fewer replicas than this needs all of them in sync"
                .to_owned(),
        }),
    }
}

/// A refusal naming a topic key, renamed to the broker config the caller set.
fn as_broker_key(err: BrokerError) -> BrokerError {
    match err {
        BrokerError::InvalidTopicConfig { key, value, reason } => {
            let key = ConfigKey::parse(&key).and_then(broker_name).map_or(key, str::to_owned);
            BrokerError::InvalidTopicConfig { key, value, reason }
        }
        other => other,
    }
}

/// Topic `name`'s configuration once it follows `defaults` for `keys` (those it does not own), or `None` when
/// that changes nothing. Refused, naming the topic, when its own settings cannot take them.
pub fn followed(
    name: &str,
    current: &TopicConfigState,
    replication_factor: u32,
    keys: &[ConfigKey],
    defaults: Defaults<'_>,
) -> Result<Option<TopicConfigState>> {
    let next = crate::topic_config::follow_defaults(current, replication_factor, keys, defaults).map_err(|err| {
        match as_broker_key(err) {
            BrokerError::InvalidTopicConfig { key, value, reason } => BrokerError::InvalidTopicConfig {
                key,
                value,
                reason: format!("topic {name} could not take it: {reason}"),
            },
            other => other,
        }
    })?;
    Ok((next != *current).then_some(next))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format_version: u32,
    defaults: TopicDefaults,
}

/// The defaults stored in `data_dir` (none when the file is absent). A file that cannot be read, or holds a
/// value no longer valid under this node's flags, stops the start, naming the file: topics must not silently fall
/// back to other values.
pub fn load(data_dir: &Path, broker: &BrokerConfig) -> Result<TopicDefaults> {
    let path = data_dir.join(FILE);
    let Some(bytes) = crate::meta::read_if_present(&path)? else { return Ok(TopicDefaults::default()) };
    let corrupt = |why: String| crate::meta::unreadable(&path, why);
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
    if stored.format_version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format_version {}", stored.format_version)));
    }
    NONE.changed(&as_changes(&stored.defaults), broker).map_err(|err| corrupt(err.to_string()))?;
    Ok(stored.defaults)
}

/// `defaults` as the changes that would set them, by broker name.
fn as_changes(defaults: &TopicDefaults) -> Vec<ConfigChange> {
    defaults.0.iter().filter_map(|(key, value)| Some(ConfigChange::set(broker_name(*key)?, value.clone()))).collect()
}

/// Writes `defaults` to `data_dir`, whole, fsynced.
pub fn store(data_dir: &Path, defaults: &TopicDefaults) -> Result<()> {
    let stored = Stored { format_version: FORMAT_VERSION, defaults: defaults.clone() };
    let bytes = serde_json::to_vec_pretty(&stored).map_err(|err| BrokerError::Internal(err.to_string()))?;
    crate::meta::write_atomically(&data_dir.join(FILE), &bytes)
}

/// One topic default as a topic that sets nothing itself has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedDefault {
    pub key: ConfigKey,
    pub broker_name: &'static str,
    /// In Kafka's form, as DescribeConfigs shows the topic key.
    pub value: String,
    /// Kafka's config type of the topic key.
    pub config_type: i8,
    /// Set as a cluster default; else the broker's static one.
    pub is_set: bool,
}

/// Every key a default may be set for, in [`BROKER_NAMES`]' order, with its value under `cluster` and the node's
/// static defaults `broker`.
pub fn described(broker: &BrokerConfig, cluster: &TopicDefaults) -> Vec<DescribedDefault> {
    let mut template =
        TopicConfigState { settings: crate::meta::TopicSettings::defaults_of(broker), min_insync_replicas: 1 };
    let keys: Vec<ConfigKey> = cluster.keys().collect();
    // The defaults were checked whole against such a topic when set; a node whose flags changed since shows its
    // static values rather than failing the describe.
    if let Ok(followed) = crate::topic_config::follow_defaults(&template, 1, &keys, Defaults::with(broker, cluster)) {
        template = followed;
    }
    let entries = crate::kafka::topic_configs::topic_entries(&template, 1, broker, cluster);
    BROKER_NAMES
        .iter()
        .filter_map(|(key, broker_name)| {
            let found = entries.iter().find(|entry| entry.name == key.kafka_name())?;
            // The template has one replica; the default is what larger topics take. Unset, Kafka's 1 (rill's
            // topics of 3 replicas or more take 2 then: docs/kafka.md).
            let value = match (key, cluster.get(*key)) {
                (ConfigKey::MinInsyncReplicas, Some(set)) => set.to_owned(),
                _ => found.value.clone(),
            };
            Some(DescribedDefault {
                key: *key,
                broker_name,
                value,
                config_type: found.config_type,
                is_set: cluster.get(*key).is_some(),
            })
        })
        .collect()
}

/// The defaults `node` runs with: its cluster's metadata's, or a single node's own.
pub fn current(node: &crate::node::Node) -> TopicDefaults {
    match &node.replication {
        Some(replication) => replication.topic_defaults(),
        None => TopicDefaults::clone(&node.registry.topic_defaults()),
    }
}

/// Changes the defaults of `node`'s cluster (or of the single node), or checks the change only: see
/// `Replication::alter_topic_defaults` and `Registry::alter_topic_defaults`. Answers the new defaults and how many
/// topics follow them into new settings.
pub async fn alter(
    node: &crate::node::Node,
    changes: &[ConfigChange],
    is_validate_only: bool,
) -> Result<(TopicDefaults, usize)> {
    match &node.replication {
        Some(replication) => replication.alter_topic_defaults(changes, is_validate_only).await,
        None => node.registry.alter_topic_defaults(changes, is_validate_only).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_config::OwnKeys;

    fn set(name: &str, value: &str) -> ConfigChange {
        ConfigChange::set(name, value)
    }

    fn topic(broker: &BrokerConfig, own: &[(&str, &str)]) -> TopicConfigState {
        let template =
            TopicConfigState { settings: crate::meta::TopicSettings::defaults_of(broker), min_insync_replicas: 1 };
        let changes: Vec<ConfigChange> = own.iter().map(|(key, value)| set(key, value)).collect();
        crate::topic_config::apply_changes(&template, &changes, 1, Defaults::of(broker)).expect("valid")
    }

    fn refusal(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(err @ BrokerError::InvalidTopicConfig { .. }) => err.to_string(),
            other => panic!("expected an invalid-config refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_default_reaches_the_topics_that_do_not_own_its_key_and_a_delete_takes_it_back() {
        let broker = BrokerConfig::default();
        let (defaults, keys) = NONE.changed(&[set("log.retention.ms", " 3600000 ")], &broker).expect("valid");
        assert_eq!(
            (defaults.get(ConfigKey::RetentionMs), keys.as_slice()),
            (Some("3600000"), [ConfigKey::RetentionMs].as_slice())
        );
        let scope = Defaults::with(&broker, &defaults);

        let plain = topic(&broker, &[]);
        let took = followed("plain", &plain, 1, &keys, scope).expect("valid").expect("changed");
        assert_eq!(took.settings.retention_ms, Some(3_600_000));
        assert_eq!(took.settings.own_keys, Some(OwnKeys::default()), "following a default owns nothing");

        // Set explicitly, even to the value the broker gave it, a key is the topic's.
        let week = broker.default_retention_ms.map_or("-1".to_owned(), |ms| ms.to_string());
        let owning = topic(&broker, &[("retention.ms", &week)]);
        assert_eq!(retention_after("owning", &owning, &keys, scope), owning.settings.retention_ms);

        // A topic stored before own keys were kept owns what differs from the broker's defaults.
        let mut stored_before = topic(&broker, &[("retention.ms", "5000")]);
        stored_before.settings.own_keys = None;
        assert_eq!(retention_after("old", &stored_before, &keys, scope), Some(5000));
        stored_before.settings.retention_ms = broker.default_retention_ms;
        let old = followed("old", &stored_before, 1, &keys, scope).expect("valid").expect("changed");
        assert_eq!(old.settings.retention_ms, Some(3_600_000));

        let (cleared, keys) = defaults.changed(&[ConfigChange::delete("log.retention.ms")], &broker).expect("valid");
        assert!(cleared.is_empty());
        let back = followed("plain", &took, 1, &keys, Defaults::of(&broker)).expect("valid").expect("changed");
        assert_eq!(back.settings.retention_ms, broker.default_retention_ms);
    }

    fn retention_after(name: &str, state: &TopicConfigState, keys: &[ConfigKey], scope: Defaults<'_>) -> Option<u64> {
        let after = followed(name, state, 1, keys, scope).expect("valid");
        after.map_or(state.settings.retention_ms, |after| after.settings.retention_ms)
    }

    #[test]
    fn a_max_message_bytes_default_follows_the_segment_as_the_brokers_does() {
        let broker = BrokerConfig::default();
        let (defaults, keys) = NONE.changed(&[set("message.max.bytes", "65536")], &broker).expect("valid");
        let scope = Defaults::with(&broker, &defaults);
        let small_segments = topic(&broker, &[("segment.bytes", "32768")]);
        assert_eq!(followed("small", &small_segments, 1, &keys, scope).expect("valid"), None, "the segment bounds it");
        let plain = followed("plain", &topic(&broker, &[]), 1, &keys, scope).expect("valid").expect("changed");
        assert_eq!(plain.settings.max_batch_bytes, 65536);
        // A segment default below a topic's own batch limit: that topic could not take it, and says so.
        let big_batches = topic(&broker, &[("max.message.bytes", "1048576")]);
        let (smaller, keys) = NONE.changed(&[set("log.segment.bytes", "524288")], &broker).expect("valid alone");
        let refused = refusal(followed("orders", &big_batches, 1, &keys, Defaults::with(&broker, &smaller)));
        assert!(
            refused.contains("log.segment.bytes") && refused.contains("topic orders could not take it"),
            "{refused}"
        );
    }

    #[test]
    fn a_min_insync_default_reaches_each_topic_as_at_most_its_replication_factor() {
        let broker = BrokerConfig::default();
        let (defaults, keys) = NONE.changed(&[set("min.insync.replicas", "3")], &broker).expect("above one replica");
        let scope = Defaults::with(&broker, &defaults);
        let state = |own: &[(&str, &str)], replication_factor: u32| {
            let template = TopicConfigState {
                settings: crate::meta::TopicSettings::defaults_of(&broker),
                min_insync_replicas: crate::cluster::placement::default_min_insync_replicas(replication_factor),
            };
            let changes: Vec<ConfigChange> = own.iter().map(|(key, value)| set(key, value)).collect();
            crate::topic_config::apply_changes(&template, &changes, replication_factor, Defaults::of(&broker))
                .expect("valid")
        };
        let after = |current: &TopicConfigState, replication_factor: u32, scope| {
            followed("t", current, replication_factor, &keys, scope).expect("valid").map(|t| t.min_insync_replicas)
        };
        assert_eq!(after(&state(&[], 3), 3, scope), Some(3), "3 replicas: from 2 to 3");
        assert_eq!(after(&state(&[], 5), 5, scope), Some(3), "5 replicas: from 2 to 3");
        assert_eq!(after(&state(&[], 2), 2, scope), Some(2), "2 replicas: from 1 to both");
        assert_eq!(after(&state(&[], 1), 1, scope), None, "one replica stays at 1");
        // Set on the topic, even to what it had, the key is its own.
        assert_eq!(after(&state(&[("min.insync.replicas", "2")], 3), 3, scope), None);
        assert_eq!(crate::topic_config::default_min_insync_replicas_of(scope, 3), 3, "what a new topic takes");

        let mut taken = state(&[], 3);
        taken.min_insync_replicas = 3;
        let (cleared, keys) = defaults.changed(&[ConfigChange::delete("min.insync.replicas")], &broker).expect("valid");
        let back = followed("t", &taken, 3, &keys, Defaults::with(&broker, &cleared)).expect("valid");
        assert_eq!(back.map(|t| t.min_insync_replicas), Some(2), "back to the replication factor's default");

        let shown = described(&broker, &defaults);
        let row = shown.iter().find(|d| d.broker_name == "min.insync.replicas").expect("listed");
        assert_eq!((row.value.as_str(), row.is_set), ("3", true), "shown as set, not as one replica takes it");
        for bad in ["0", "-1", "two", ""] {
            let refused = refusal(NONE.changed(&[set("min.insync.replicas", bad)], &broker));
            assert!(refused.contains("min.insync.replicas") && refused.contains("whole number from 1"), "{refused}");
        }
    }

    #[test]
    fn defaults_are_refused_under_their_broker_names_saying_what_is_allowed() {
        let broker = BrokerConfig::default();
        let unknown = refusal(NONE.changed(&[set("num.partitions", "3")], &broker));
        assert!(
            unknown.contains("num.partitions") && unknown.contains("log.retention.ms, log.retention.bytes"),
            "{unknown}"
        );
        let bad = refusal(NONE.changed(&[set("log.roll.ms", "soon")], &broker));
        assert!(bad.contains("log.roll.ms") && bad.contains("whole number of milliseconds"), "{bad}");
        let policy = refusal(NONE.changed(&[set("log.cleanup.policy", "shrink")], &broker));
        assert!(policy.contains("log.cleanup.policy") && policy.contains("delete, compact"), "{policy}");
        let twice =
            refusal(NONE.changed(&[set("log.retention.ms", "1"), ConfigChange::delete("log.retention.ms")], &broker));
        assert!(twice.contains("named twice"), "{twice}");
        // Checked whole: a bound below its minimum is refused whichever came first.
        let (min_lag, _) = NONE.changed(&[set("log.cleaner.min.compaction.lag.ms", "60000")], &broker).expect("valid");
        let lags = refusal(min_lag.changed(&[set("log.cleaner.max.compaction.lag.ms", "1000")], &broker));
        assert!(lags.contains("below min.compaction.lag.ms"), "{lags}");
        let above =
            refusal(NONE.changed(&[set("message.max.bytes", &(broker.max_batch_bytes + 1).to_string())], &broker));
        assert!(above.contains("message.max.bytes") && above.contains("max_batch_bytes"), "{above}");
    }

    #[test]
    fn defaults_survive_a_reload_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = BrokerConfig::default();
        assert!(load(dir.path(), &broker).expect("none stored").is_empty());
        let (defaults, _) =
            NONE.changed(&[set("log.retention.ms", "60000"), set("compression.type", "zstd")], &broker).expect("valid");
        store(dir.path(), &defaults).expect("stored");
        assert_eq!(load(dir.path(), &broker).expect("read"), defaults);
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        assert!(text.contains("\"retention.ms\": \"60000\""), "stored by topic key: {text}");
        std::fs::write(dir.path().join(FILE), r#"{"format_version":1,"defaults":{"retention.ms":"soon"}}"#)
            .expect("write");
        let damaged = load(dir.path(), &broker).expect_err("refused").to_string();
        assert!(damaged.contains(FILE) && damaged.contains("soon"), "{damaged}");
    }
}
