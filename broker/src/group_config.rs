//! A group's own settings: Kafka's group configs (config resource type GROUP), set with IncrementalAlterConfigs
//! and shown by DescribeConfigs, so `kafka-configs --entity-type groups` and admin clients work unchanged, and by
//! `rill group config`. The `share.*` keys are a share group's (`share_groups/`), the `consumer.*` keys a KIP-848
//! consumer group's session and heartbeat (`groups/consumer.rs`). A group's key overrides the broker's option of
//! the same meaning for that group alone; a key the group does not set follows the broker's. [`GroupConfigs`]
//! holds them for both.
//!
//! A config may name a group that has never run (the way to start a share group at the log's start is to set
//! `share.auto.offset.reset=earliest` before its first member joins), and it outlives DeleteGroups, as Kafka's
//! do: configs are the operator's, removed with a DELETE of each key.
//!
//! What lasts: on a single node every group's config is one JSON file in the data directory, [`FILE`], written
//! whole (a temporary file fsynced and renamed) before an alter is answered. A file that cannot be read stops the
//! broker at start, naming it, rather than letting groups silently fall back to the broker's settings. On a
//! cluster they are part of the replicated cluster metadata (`Command::AlterGroupConfig`): an alter is answered
//! once committed and applied on the node asked, every node's coordinators read the same, and a group keeps its
//! settings when its coordinator moves. A share group's keys are read both by its coordinator (the session and
//! heartbeat) and by each partition's leader (where it starts, its locks, its delivery limit), which all follow
//! the same metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::auth::replicated::ClusterAccess;
use crate::cluster::metadata::{ClusterMetadata, Command};
use crate::cluster::Controller;
use crate::error::{BrokerError, Result};
use crate::share_groups::{ShareSettings, ShareStart};

/// The file holding every group's config, in the data directory.
pub const FILE: &str = "__group-configs.json";
const FORMAT_VERSION: u32 = 1;

/// A group config key rill serves, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupConfigKey {
    ShareAutoOffsetReset,
    ShareRecordLockDurationMs,
    ShareDeliveryCountLimit,
    ShareSessionTimeoutMs,
    ShareHeartbeatIntervalMs,
    ShareIsolationLevel,
    ConsumerSessionTimeoutMs,
    ConsumerHeartbeatIntervalMs,
    /// A share group's dead-letter topic (KIP-1191): where the records it rejects or gives up on are written.
    DeadLetterTopicName,
    /// Whether a dead letter carries the record's key and value, or only the headers saying where it was.
    DeadLetterCopyRecord,
}

/// A KIP-848 consumer group's session timeout and heartbeat interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTiming {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// The broker's settings a group without keys of its own runs with.
#[derive(Debug, Clone, Copy)]
pub struct GroupDefaults {
    pub share: ShareSettings,
    pub consumer: ConsumerTiming,
}

impl GroupDefaults {
    pub fn of(config: &crate::config::BrokerConfig) -> GroupDefaults {
        GroupDefaults {
            share: ShareSettings::of(config),
            consumer: ConsumerTiming {
                session_timeout: Duration::from_millis(config.group_consumer_session_timeout_ms),
                heartbeat_interval: Duration::from_millis(config.group_consumer_heartbeat_interval_ms),
            },
        }
    }
}

/// Most groups with a config of their own: each is a few hundred bytes of every node's metadata (and of a single
/// node's file, rewritten whole on each alter), so an operator's script cannot grow them without bound.
pub const MAX_CONFIGURED_GROUPS: usize = 10_000;

/// The range of a duration key, in milliseconds: the same as the broker option's.
const LOCK_DURATION_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;
const DELIVERY_COUNT_LIMIT: std::ops::RangeInclusive<u64> = 2..=10;

impl GroupConfigKey {
    pub const ALL: [GroupConfigKey; 10] = [
        GroupConfigKey::ConsumerHeartbeatIntervalMs,
        GroupConfigKey::ConsumerSessionTimeoutMs,
        GroupConfigKey::ShareAutoOffsetReset,
        GroupConfigKey::ShareRecordLockDurationMs,
        GroupConfigKey::ShareDeliveryCountLimit,
        GroupConfigKey::ShareSessionTimeoutMs,
        GroupConfigKey::ShareHeartbeatIntervalMs,
        GroupConfigKey::ShareIsolationLevel,
        GroupConfigKey::DeadLetterTopicName,
        GroupConfigKey::DeadLetterCopyRecord,
    ];

    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupConfigKey::ShareAutoOffsetReset => "share.auto.offset.reset",
            GroupConfigKey::ShareRecordLockDurationMs => "share.record.lock.duration.ms",
            GroupConfigKey::ShareDeliveryCountLimit => "share.delivery.count.limit",
            GroupConfigKey::ShareSessionTimeoutMs => "share.session.timeout.ms",
            GroupConfigKey::ShareHeartbeatIntervalMs => "share.heartbeat.interval.ms",
            GroupConfigKey::ShareIsolationLevel => "share.isolation.level",
            GroupConfigKey::ConsumerSessionTimeoutMs => "consumer.session.timeout.ms",
            GroupConfigKey::ConsumerHeartbeatIntervalMs => "consumer.heartbeat.interval.ms",
            GroupConfigKey::DeadLetterTopicName => "errors.deadletterqueue.topic.name",
            GroupConfigKey::DeadLetterCopyRecord => "errors.deadletterqueue.copy.record.enable",
        }
    }

    pub fn parse(name: &str) -> Option<GroupConfigKey> {
        GroupConfigKey::ALL.into_iter().find(|key| key.kafka_name() == name)
    }

    /// How Kafka types the key's value (DescribeConfigs' `config_type`).
    pub fn value_type(self) -> GroupConfigType {
        match self {
            GroupConfigKey::ShareAutoOffsetReset
            | GroupConfigKey::ShareIsolationLevel
            | GroupConfigKey::DeadLetterTopicName => GroupConfigType::String,
            GroupConfigKey::DeadLetterCopyRecord => GroupConfigType::Boolean,
            _ => GroupConfigType::Int,
        }
    }

    /// The broker's value of the key: what a group that does not set it follows.
    pub fn broker_value(self, defaults: &GroupDefaults) -> String {
        let settings = &defaults.share;
        match self {
            GroupConfigKey::ShareAutoOffsetReset => start_name(settings.auto_offset_reset),
            GroupConfigKey::ShareRecordLockDurationMs => settings.rules.lock_duration.as_millis().to_string(),
            GroupConfigKey::ShareDeliveryCountLimit => settings.rules.delivery_count_limit.to_string(),
            GroupConfigKey::ShareSessionTimeoutMs => settings.session_timeout.as_millis().to_string(),
            GroupConfigKey::ShareHeartbeatIntervalMs => settings.heartbeat_interval.as_millis().to_string(),
            GroupConfigKey::ShareIsolationLevel => isolation_name(settings.is_read_committed).to_owned(),
            GroupConfigKey::ConsumerSessionTimeoutMs => defaults.consumer.session_timeout.as_millis().to_string(),
            GroupConfigKey::ConsumerHeartbeatIntervalMs => defaults.consumer.heartbeat_interval.as_millis().to_string(),
            // No dead-letter topic unless the group names one, as in Kafka.
            GroupConfigKey::DeadLetterTopicName => String::new(),
            GroupConfigKey::DeadLetterCopyRecord => "false".to_owned(),
        }
    }

    /// `value` in the form stored, or why it is refused.
    fn checked(self, value: &str) -> std::result::Result<String, GroupConfigError> {
        let value = value.trim();
        let invalid = |allowed: &str| GroupConfigError::InvalidValue {
            key: self.kafka_name(),
            value: value.to_owned(),
            allowed: allowed.to_owned(),
        };
        let in_range = |range: std::ops::RangeInclusive<u64>, what: &str| match value.parse::<u64>() {
            Ok(number) if range.contains(&number) => Ok(number.to_string()),
            _ => Err(invalid(&format!("{what} within {}..={}", range.start(), range.end()))),
        };
        match self {
            GroupConfigKey::ShareAutoOffsetReset => match value.to_ascii_lowercase().as_str() {
                "earliest" | "latest" => Ok(value.to_ascii_lowercase()),
                by_duration if by_duration.starts_with("by_duration:") => {
                    let duration = value["by_duration:".len()..].trim();
                    match parse_iso_duration(duration) {
                        Some(_) => Ok(format!("by_duration:{}", duration.to_ascii_uppercase())),
                        None => Err(invalid(
                            "earliest, latest, or by_duration: with an ISO-8601 duration not below zero \
                             (by_duration:PT1H, by_duration:P1DT12H, by_duration:PT90.5S)",
                        )),
                    }
                }
                _ => Err(invalid("earliest, latest, or by_duration:DURATION (ISO-8601, e.g. by_duration:PT1H)")),
            },
            GroupConfigKey::ShareRecordLockDurationMs => in_range(LOCK_DURATION_MS, "milliseconds"),
            GroupConfigKey::ShareDeliveryCountLimit => in_range(DELIVERY_COUNT_LIMIT, "a count"),
            GroupConfigKey::ShareSessionTimeoutMs | GroupConfigKey::ConsumerSessionTimeoutMs => {
                in_range(SESSION_TIMEOUT_MS, "milliseconds")
            }
            GroupConfigKey::ShareHeartbeatIntervalMs | GroupConfigKey::ConsumerHeartbeatIntervalMs => {
                in_range(1..=SESSION_TIMEOUT_MS.end() - 1, "milliseconds")
            }
            GroupConfigKey::ShareIsolationLevel => match value.to_ascii_lowercase().as_str() {
                level @ ("read_uncommitted" | "read_committed") => Ok(level.to_owned()),
                _ => Err(invalid("read_uncommitted or read_committed")),
            },
            // Empty: no dead-letter topic. The topic need not exist yet; whether it may take dead letters (its
            // `errors.deadletterqueue.group.enable`, the broker's prefix) is checked at each write, since both
            // may change after this.
            GroupConfigKey::DeadLetterTopicName => match value {
                "" => Ok(String::new()),
                internal if internal.starts_with("__") => {
                    Err(invalid("a topic name not starting with __ (internal topics never take dead letters)"))
                }
                name => match rill_storage::TopicName::new(name) {
                    Ok(_) => Ok(name.to_owned()),
                    Err(err) => Err(invalid(&format!("a valid topic name ({err})"))),
                },
            },
            GroupConfigKey::DeadLetterCopyRecord => match value.to_ascii_lowercase().as_str() {
                flag @ ("true" | "false") => Ok(flag.to_owned()),
                _ => Err(invalid("true or false")),
            },
        }
    }
}

/// A group config value's type, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupConfigType {
    Boolean,
    Int,
    String,
}

fn isolation_name(is_read_committed: bool) -> &'static str {
    if is_read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    }
}

fn start_name(start: ShareStart) -> String {
    match start {
        ShareStart::Earliest => "earliest".to_owned(),
        ShareStart::Latest => "latest".to_owned(),
        ShareStart::ByDuration(age) => format!("by_duration:PT{}S", age.as_secs_f64()),
    }
}

/// An ISO-8601 duration as Kafka's `by_duration:` takes it (Java's `Duration.parse`: `PnDTnHnMn.nS`, each part
/// optional but one, case-insensitive), not below zero; fractions of a second below a millisecond are dropped.
pub fn parse_iso_duration(text: &str) -> Option<Duration> {
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut millis: u128 = 0;
    let mut parts = 0;
    let number = |digits: &str| -> Option<u128> {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
    };
    if !days.is_empty() {
        millis += number(days.strip_suffix('D')?)?.checked_mul(86_400_000)?;
        parts += 1;
    }
    if let Some(mut time) = time {
        if time.is_empty() {
            return None;
        }
        for (unit, unit_ms) in [('H', 3_600_000u128), ('M', 60_000)] {
            if let Some(at) = time.find(unit) {
                millis = millis.checked_add(number(&time[..at])?.checked_mul(unit_ms)?)?;
                time = &time[at + 1..];
                parts += 1;
            }
        }
        if !time.is_empty() {
            let seconds = time.strip_suffix('S')?;
            let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
            let fraction_ms = match fraction {
                "" => 0,
                digits => {
                    number(digits)?;
                    format!("{digits:0<3}")[..3].parse::<u128>().ok()?
                }
            };
            millis = millis.checked_add(number(whole)?.checked_mul(1000)?)?.checked_add(fraction_ms)?;
            parts += 1;
        }
    }
    if parts == 0 {
        return None;
    }
    u64::try_from(millis).ok().map(Duration::from_millis)
}

/// Why a group config change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupConfigError {
    #[error(
        "{name} is not a group config rill serves: they are share.auto.offset.reset, share.record.lock.duration.ms, \
         share.delivery.count.limit, share.session.timeout.ms, share.heartbeat.interval.ms, share.isolation.level, \
         errors.deadletterqueue.topic.name, errors.deadletterqueue.copy.record.enable, consumer.session.timeout.ms \
         and consumer.heartbeat.interval.ms"
    )]
    UnknownKey { name: String },
    #[error("{key}={value:?} is not allowed: {allowed}")]
    InvalidValue { key: &'static str, value: String, allowed: String },
    #[error(
        "{kind}.heartbeat.interval.ms ({heartbeat_ms}) must be below {kind}.session.timeout.ms ({session_ms}) for \
         group {group}, counting the broker's value of the one the group does not set"
    )]
    HeartbeatNotBelowSession { kind: &'static str, group: String, heartbeat_ms: u64, session_ms: u64 },
    #[error("{0} is named twice in one request")]
    Repeated(String),
    #[error(
        "{MAX_CONFIGURED_GROUPS} groups have a config of their own, the most the broker keeps: delete the keys of \
         a group that no longer needs them first"
    )]
    TooManyGroups,
}

/// A share group's dead-letter topic, as its config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTopic {
    pub name: String,
    /// `errors.deadletterqueue.copy.record.enable`: a dead letter carries the record's key and value.
    pub copies_record: bool,
}

/// One group's config: each key it sets, with its value as stored (checked).
pub type GroupConfig = BTreeMap<GroupConfigKey, String>;

/// Every group's config by Kafka's key names, as the cluster metadata and the file hold them: a key this version
/// does not know (a newer node's) stays in the metadata and is left out when read.
pub type StoredGroupConfigs = BTreeMap<String, BTreeMap<String, String>>;

/// Applies `changes` to `group`'s config in `groups`, each key and value checked on its own (what the cluster
/// metadata runs, the same on every node: the check of a heartbeat against a session timeout depends on a
/// node's broker settings, so the proposer makes it). Whether anything changed.
pub fn apply_stored(
    groups: &mut StoredGroupConfigs,
    group: &str,
    changes: &[(String, Option<String>)],
) -> std::result::Result<bool, GroupConfigError> {
    let current = groups.get(group).cloned().unwrap_or_default();
    let known: Vec<(String, Option<String>)> = current
        .iter()
        .filter(|(name, _)| GroupConfigKey::parse(name).is_some())
        .map(|(name, value)| (name.clone(), Some(value.clone())))
        .collect();
    let next = with_keys_changed(&with_keys_changed(&GroupConfig::new(), &known)?, changes)?;
    let mut stored: BTreeMap<String, String> =
        current.into_iter().filter(|(name, _)| GroupConfigKey::parse(name).is_none()).collect();
    stored.extend(next.into_iter().map(|(key, value)| (key.kafka_name().to_owned(), value)));
    if groups.get(group).map_or(stored.is_empty(), |before| *before == stored) {
        return Ok(false);
    }
    if stored.is_empty() {
        groups.remove(group);
    } else {
        if !groups.contains_key(group) && groups.len() >= MAX_CONFIGURED_GROUPS {
            return Err(GroupConfigError::TooManyGroups);
        }
        groups.insert(group.to_owned(), stored);
    }
    Ok(true)
}

/// The configs of `stored` this version reads: a key it does not know, or a value it would refuse, is left out
/// (logged), so a group runs with the broker's setting for it.
fn readable(stored: &StoredGroupConfigs) -> BTreeMap<String, GroupConfig> {
    let mut groups = BTreeMap::new();
    for (group, keys) in stored {
        let mut config = GroupConfig::new();
        for (name, value) in keys {
            match GroupConfigKey::parse(name).map(|key| (key, key.checked(value))) {
                Some((key, Ok(value))) => {
                    config.insert(key, value);
                }
                _ => tracing::warn!(group, key = %name, value, "a group config this version does not read; ignored"),
            }
        }
        if !config.is_empty() {
            groups.insert(group.clone(), config);
        }
    }
    groups
}

/// `config` after `changes` (each a key and `Some(value)` to set it, `None` to remove it), checked against the
/// broker's `defaults` for the keys the group does not set.
pub fn changed(
    group: &str,
    config: &GroupConfig,
    changes: &[(String, Option<String>)],
    defaults: &GroupDefaults,
) -> std::result::Result<GroupConfig, GroupConfigError> {
    let next = with_keys_changed(config, changes)?;
    let share = with_keys_applied(&next, defaults.share);
    let consumer = consumer_keys_applied(&next, defaults.consumer);
    for (kind, heartbeat, session) in [
        ("share", share.heartbeat_interval, share.session_timeout),
        ("consumer", consumer.heartbeat_interval, consumer.session_timeout),
    ] {
        if heartbeat >= session {
            return Err(GroupConfigError::HeartbeatNotBelowSession {
                kind,
                group: group.to_owned(),
                heartbeat_ms: heartbeat.as_millis() as u64,
                session_ms: session.as_millis() as u64,
            });
        }
    }
    Ok(next)
}

/// `config` after `changes`, each key and value checked on its own.
fn with_keys_changed(
    config: &GroupConfig,
    changes: &[(String, Option<String>)],
) -> std::result::Result<GroupConfig, GroupConfigError> {
    let mut next = config.clone();
    let mut named = Vec::with_capacity(changes.len());
    for (name, value) in changes {
        let key = GroupConfigKey::parse(name).ok_or_else(|| GroupConfigError::UnknownKey { name: name.clone() })?;
        if named.contains(&key) {
            return Err(GroupConfigError::Repeated(name.clone()));
        }
        named.push(key);
        match value {
            Some(value) => {
                next.insert(key, key.checked(value)?);
            }
            None => {
                next.remove(&key);
            }
        }
    }
    Ok(next)
}

/// One key as a group runs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfigEntry {
    pub key: GroupConfigKey,
    pub value: String,
    /// The group's own value; false: the broker's.
    pub is_group_setting: bool,
}

/// Every key with the value a group of `config` runs with, in [`GroupConfigKey::ALL`]'s order.
pub fn entries(config: &GroupConfig, broker: &GroupDefaults) -> Vec<GroupConfigEntry> {
    GroupConfigKey::ALL
        .into_iter()
        .map(|key| match config.get(&key) {
            Some(value) => GroupConfigEntry { key, value: value.clone(), is_group_setting: true },
            None => GroupConfigEntry { key, value: key.broker_value(broker), is_group_setting: false },
        })
        .collect()
}

/// The broker's `settings` with `config`'s keys in their place.
pub fn apply(config: &GroupConfig, settings: ShareSettings) -> ShareSettings {
    let mut settings = with_keys_applied(config, settings);
    // An alter never leaves the heartbeat at or above the session timeout, but the broker's settings, which a
    // group setting one of the two is checked against, may change at a restart: a third of the session then, so
    // members beat in time rather than time out.
    if settings.heartbeat_interval >= settings.session_timeout {
        settings.heartbeat_interval = settings.session_timeout / 3;
    }
    settings
}

/// A consumer group's timing: the broker's `timing` with `config`'s keys in their place (a heartbeat a restart
/// with a shorter broker session timeout overtook becomes a third of the session, as for share groups).
pub fn consumer_timing(config: &GroupConfig, timing: ConsumerTiming) -> ConsumerTiming {
    let mut timing = consumer_keys_applied(config, timing);
    if timing.heartbeat_interval >= timing.session_timeout {
        timing.heartbeat_interval = timing.session_timeout / 3;
    }
    timing
}

fn consumer_keys_applied(config: &GroupConfig, mut timing: ConsumerTiming) -> ConsumerTiming {
    let millis = |key| config.get(&key).and_then(|value| value.parse::<u64>().ok()).map(Duration::from_millis);
    if let Some(session) = millis(GroupConfigKey::ConsumerSessionTimeoutMs) {
        timing.session_timeout = session;
    }
    if let Some(heartbeat) = millis(GroupConfigKey::ConsumerHeartbeatIntervalMs) {
        timing.heartbeat_interval = heartbeat;
    }
    timing
}

fn with_keys_applied(config: &GroupConfig, mut settings: ShareSettings) -> ShareSettings {
    for (key, value) in config {
        let millis = || value.parse::<u64>().ok().map(Duration::from_millis);
        match key {
            GroupConfigKey::ShareAutoOffsetReset => {
                settings.auto_offset_reset = match value.strip_prefix("by_duration:") {
                    Some(duration) => {
                        parse_iso_duration(duration).map_or(settings.auto_offset_reset, ShareStart::ByDuration)
                    }
                    None if value == "earliest" => ShareStart::Earliest,
                    None => ShareStart::Latest,
                };
            }
            GroupConfigKey::ShareRecordLockDurationMs => {
                settings.rules.lock_duration = millis().unwrap_or(settings.rules.lock_duration);
            }
            GroupConfigKey::ShareDeliveryCountLimit => {
                settings.rules.delivery_count_limit = value.parse().unwrap_or(settings.rules.delivery_count_limit);
            }
            GroupConfigKey::ShareSessionTimeoutMs => {
                settings.session_timeout = millis().unwrap_or(settings.session_timeout);
            }
            GroupConfigKey::ShareHeartbeatIntervalMs => {
                settings.heartbeat_interval = millis().unwrap_or(settings.heartbeat_interval);
            }
            GroupConfigKey::ShareIsolationLevel => settings.is_read_committed = value == "read_committed",
            GroupConfigKey::DeadLetterTopicName => settings.rules.keeps_dead_letters = !value.is_empty(),
            GroupConfigKey::ConsumerSessionTimeoutMs
            | GroupConfigKey::ConsumerHeartbeatIntervalMs
            | GroupConfigKey::DeadLetterCopyRecord => {}
        }
    }
    settings
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    format_version: u32,
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// Every group's config as stored in `data_dir` (none when the file is absent); a key or value the file should
/// never hold is an error naming the file. A heartbeat no longer below the session timeout (the broker's settings
/// changed since the alter) is not: `apply` makes it a third of the session.
pub fn load(data_dir: &Path) -> Result<BTreeMap<String, GroupConfig>> {
    let path = data_dir.join(FILE);
    let Some(bytes) = crate::meta::read_if_present(&path)? else { return Ok(BTreeMap::new()) };
    let corrupt = |why: String| crate::meta::unreadable(&path, why);
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
    if stored.format_version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format_version {}", stored.format_version)));
    }
    let mut groups = BTreeMap::new();
    for (group, keys) in stored.groups {
        let changes: Vec<(String, Option<String>)> = keys.into_iter().map(|(key, value)| (key, Some(value))).collect();
        let config =
            with_keys_changed(&GroupConfig::new(), &changes).map_err(|err| corrupt(format!("group {group}: {err}")))?;
        if !config.is_empty() {
            groups.insert(group, config);
        }
    }
    Ok(groups)
}

/// Why a group config alter did nothing.
#[derive(Debug, thiserror::Error)]
pub enum AlterConfigError {
    #[error(transparent)]
    Refused(#[from] GroupConfigError),
    #[error(transparent)]
    Store(#[from] BrokerError),
}

/// Where a node's group configs last.
enum Backing {
    /// A single node's `<data>/__group-configs.json`.
    File(PathBuf),
    /// The replicated cluster metadata.
    Cluster(ClusterAccess),
    /// Nothing: a test's node, whose alters last as long as it.
    #[cfg(test)]
    Memory,
}

/// Every group's config, shared by the share groups and the consumer groups' coordinator, each reading a group's
/// on every request of it, so a change applies from the group's next request on.
pub struct GroupConfigs {
    defaults: GroupDefaults,
    backing: Backing,
    configs: RwLock<BTreeMap<String, GroupConfig>>,
    /// On a single node, held by an alter from reading the configs to installing the changed ones, so the file
    /// written in between and the configs in memory never part (a cluster's metadata orders its alters).
    writes: Mutex<()>,
    /// On a cluster node, the metadata's configs last read, so a metadata change that leaves them alone (most
    /// do) costs a pointer comparison.
    applied: Mutex<Arc<StoredGroupConfigs>>,
}

impl GroupConfigs {
    fn with(defaults: GroupDefaults, backing: Backing, configs: BTreeMap<String, GroupConfig>) -> GroupConfigs {
        GroupConfigs {
            defaults,
            backing,
            configs: RwLock::new(configs),
            writes: Mutex::new(()),
            applied: Mutex::new(Arc::default()),
        }
    }

    /// A test's: none stored, alters kept in memory.
    #[cfg(test)]
    pub fn new(defaults: GroupDefaults) -> GroupConfigs {
        GroupConfigs::with(defaults, Backing::Memory, BTreeMap::new())
    }

    /// A single node's: the configs stored in `data_dir` ([`load`]), and alters written there.
    pub fn open(defaults: GroupDefaults, data_dir: &Path) -> Result<GroupConfigs> {
        Ok(GroupConfigs::with(defaults, Backing::File(data_dir.join(FILE)), load(data_dir)?))
    }

    /// A cluster node's: the configs of the metadata `controller` applied, followed as it changes; alters
    /// proposed through `runtime`, from its blocking pool.
    pub fn replicated(defaults: GroupDefaults, controller: Arc<Controller>, runtime: Handle) -> Arc<GroupConfigs> {
        let access = ClusterAccess::new(controller, runtime);
        let configs = Arc::new(GroupConfigs::with(defaults, Backing::Cluster(access), BTreeMap::new()));
        configs.refresh();
        if let Backing::Cluster(access) = &configs.backing {
            access.follow(Arc::downgrade(&configs), GroupConfigs::refresh);
        }
        configs
    }

    /// On a cluster node: takes the configs of the metadata this node last applied, if they changed.
    fn refresh(&self) {
        let Backing::Cluster(access) = &self.backing else { return };
        let metadata = access.metadata();
        let mut applied = self.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if Arc::ptr_eq(&applied, &metadata.group_configs) {
            return;
        }
        *applied = Arc::clone(&metadata.group_configs);
        *self.configs.write().unwrap_or_else(std::sync::PoisonError::into_inner) = readable(&metadata.group_configs);
    }

    pub fn defaults(&self) -> &GroupDefaults {
        &self.defaults
    }

    /// The keys `group` sets itself.
    pub fn get(&self, group: &str) -> GroupConfig {
        self.read().get(group).cloned().unwrap_or_default()
    }

    /// The groups that set a key of their own.
    pub fn configured(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every key this node serves with the value `group` runs with (a cluster node's: the `consumer.*` keys).
    pub fn entries(&self, group: &str) -> Vec<GroupConfigEntry> {
        self.entries_of(&self.get(group))
    }

    /// [`GroupConfigs::entries`] of a group whose own keys are `config` (an alter's, validated only).
    pub fn entries_of(&self, config: &GroupConfig) -> Vec<GroupConfigEntry> {
        entries(config, &self.defaults)
    }

    /// The settings share group `group` runs with.
    pub fn share_settings(&self, group: &str) -> ShareSettings {
        self.read().get(group).map_or(self.defaults.share, |config| apply(config, self.defaults.share))
    }

    /// Share group `group`'s dead-letter topic, if it names one, and whether its dead letters copy the record.
    pub fn dead_letter_topic(&self, group: &str) -> Option<DeadLetterTopic> {
        let groups = self.read();
        let config = groups.get(group)?;
        let name = config.get(&GroupConfigKey::DeadLetterTopicName).filter(|name| !name.is_empty())?;
        let copies_record = config.get(&GroupConfigKey::DeadLetterCopyRecord).is_some_and(|flag| flag == "true");
        Some(DeadLetterTopic { name: name.clone(), copies_record })
    }

    /// The session timeout and heartbeat interval consumer group `group`'s KIP-848 members run with.
    pub fn consumer_timing(&self, group: &str) -> ConsumerTiming {
        self.read().get(group).map_or(self.defaults.consumer, |config| consumer_timing(config, self.defaults.consumer))
    }

    /// Changes `group`'s config: checked, then, unless `validate_only`, stored (the file written and fsynced, or
    /// the change committed to the cluster metadata and applied here) and installed. Returns the group's config
    /// after the change. Blocks on the disk or the controller: call it from the blocking pool.
    pub fn alter(
        &self,
        group: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> std::result::Result<GroupConfig, AlterConfigError> {
        let _writes = match self.backing {
            Backing::Cluster(_) => None,
            _ => Some(self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
        };
        let mut configs = self.read().clone();
        let current = configs.get(group).cloned().unwrap_or_default();
        let next = changed(group, &current, changes, &self.defaults)?;
        if current.is_empty() && !next.is_empty() && configs.len() >= MAX_CONFIGURED_GROUPS {
            return Err(GroupConfigError::TooManyGroups.into());
        }
        if validate_only {
            return Ok(next);
        }
        if next.is_empty() {
            configs.remove(group);
        } else {
            configs.insert(group.to_owned(), next.clone());
        }
        match &self.backing {
            Backing::File(path) => store(path, &configs)?,
            Backing::Cluster(access) => return self.propose(access, group, changes),
            #[cfg(test)]
            Backing::Memory => {}
        }
        *self.configs.write().unwrap_or_else(std::sync::PoisonError::into_inner) = configs;
        Ok(next)
    }

    /// Commits `changes` of `group` to the cluster metadata and waits until this node applied them.
    fn propose(
        &self,
        access: &ClusterAccess,
        group: &str,
        changes: &[(String, Option<String>)],
    ) -> std::result::Result<GroupConfig, AlterConfigError> {
        let command = Command::AlterGroupConfig { group: group.to_owned(), changes: changes.to_vec() };
        // Applied once applying the changes again would change nothing in this node's metadata.
        let is_applied = |metadata: &ClusterMetadata| {
            apply_stored(&mut StoredGroupConfigs::clone(&metadata.group_configs), group, changes) == Ok(false)
        };
        let outcome =
            access.propose(command, is_applied).map_err(|reason| BrokerError::ControllerUnavailable { reason })?;
        self.refresh();
        match outcome.refusal {
            None => Ok(self.get(group)),
            Some(crate::cluster::access::AccessRefusal::TooManyGroupConfigs) => {
                Err(GroupConfigError::TooManyGroups.into())
            }
            Some(refusal) => Err(BrokerError::Internal(format!(
                "the cluster metadata refused the change of group {group}'s config as {refusal:?}"
            ))
            .into()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, GroupConfig>> {
        self.configs.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes every group's config to `path`, whole, fsynced.
fn store(path: &Path, groups: &BTreeMap<String, GroupConfig>) -> Result<()> {
    let stored = Stored {
        format_version: FORMAT_VERSION,
        groups: groups
            .iter()
            .map(|(group, config)| {
                (
                    group.clone(),
                    config.iter().map(|(key, value)| (key.kafka_name().to_owned(), value.clone())).collect(),
                )
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&stored).map_err(|err| BrokerError::Internal(err.to_string()))?;
    crate::meta::write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share_groups::DeliveryRules;

    fn settings() -> ShareSettings {
        ShareSettings {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            rules: DeliveryRules {
                lock_duration: Duration::from_secs(30),
                delivery_count_limit: 5,
                max_record_locks: 2000,
                keeps_dead_letters: false,
            },
            auto_offset_reset: ShareStart::Latest,
            is_read_committed: false,
            max_groups: 10,
            max_members_per_group: 10,
        }
    }

    fn defaults() -> GroupDefaults {
        GroupDefaults {
            share: settings(),
            consumer: ConsumerTiming {
                session_timeout: Duration::from_secs(45),
                heartbeat_interval: Duration::from_secs(5),
            },
        }
    }

    fn set(key: &str, value: &str) -> (String, Option<String>) {
        (key.to_owned(), Some(value.to_owned()))
    }

    #[test]
    fn a_groups_keys_override_the_brokers_and_a_delete_goes_back_to_them() {
        let config = changed(
            "g",
            &GroupConfig::new(),
            &[
                set("share.auto.offset.reset", "EARLIEST"),
                set("share.record.lock.duration.ms", "1500"),
                set("share.delivery.count.limit", "3"),
            ],
            &defaults(),
        )
        .unwrap();
        let applied = apply(&config, settings());
        assert_eq!(applied.auto_offset_reset, ShareStart::Earliest);
        assert_eq!(applied.rules.lock_duration, Duration::from_millis(1500));
        assert_eq!(applied.rules.delivery_count_limit, 3);
        assert_eq!(applied.session_timeout, Duration::from_secs(45), "not set: the broker's");
        let config = changed("g", &config, &[("share.delivery.count.limit".into(), None)], &defaults()).unwrap();
        assert_eq!(apply(&config, settings()).rules.delivery_count_limit, 5);
        assert_eq!(config.get(&GroupConfigKey::ShareAutoOffsetReset).map(String::as_str), Some("earliest"));
    }

    #[test]
    fn bad_keys_and_values_are_refused_saying_what_is_allowed() {
        let refused = |changes: &[(String, Option<String>)]| {
            changed("g", &GroupConfig::new(), changes, &defaults()).unwrap_err().to_string()
        };
        assert!(refused(&[set("share.record.lock.duration.ms", "999")]).contains("1000..=3600000"));
        assert!(refused(&[set("share.delivery.count.limit", "11")]).contains("2..=10"));
        assert!(refused(&[set("share.delivery.count.limit", "x")]).contains("2..=10"));
        assert!(refused(&[set("share.auto.offset.reset", "middle")]).contains("by_duration:DURATION"));
        for bad in ["by_duration:", "by_duration:1H", "by_duration:PT", "by_duration:-PT1H", "by_duration:PT1H1M1X"] {
            assert!(refused(&[set("share.auto.offset.reset", bad)]).contains("ISO-8601"), "{bad}");
        }
        assert!(refused(&[set("share.isolation.level", "serializable")]).contains("read_committed"));
        assert!(refused(&[set("retention.ms", "1")]).contains("share.auto.offset.reset"));
        assert!(refused(&[set("consumer.session.timeout.ms", "1")]).contains("1000..=3600000"));
        assert!(
            refused(&[set("consumer.heartbeat.interval.ms", "45000")]).contains("below consumer.session.timeout.ms")
        );
        let consumer = [set("consumer.session.timeout.ms", "20000"), set("consumer.heartbeat.interval.ms", "2000")];
        let config = changed("g", &GroupConfig::new(), &consumer, &defaults()).unwrap();
        let timing = consumer_timing(&config, defaults().consumer);
        assert_eq!(
            (timing.session_timeout, timing.heartbeat_interval),
            (Duration::from_secs(20), Duration::from_secs(2))
        );
        assert_eq!(apply(&config, settings()).session_timeout, Duration::from_secs(45), "a share group's apart");
        let twice = [set("share.delivery.count.limit", "3"), ("share.delivery.count.limit".into(), None)];
        assert!(refused(&twice).contains("named twice"));
        // The heartbeat must stay below the session timeout, the broker's 45 s counting for a group without one.
        assert!(refused(&[set("share.heartbeat.interval.ms", "45000")]).contains("below share.session.timeout.ms"));
        assert!(refused(&[set("share.session.timeout.ms", "5000")]).contains("below share.session.timeout.ms"));
        let both = [set("share.session.timeout.ms", "5000"), set("share.heartbeat.interval.ms", "1000")];
        assert!(changed("g", &GroupConfig::new(), &both, &defaults()).is_ok());
        let committed =
            changed("g", &GroupConfig::new(), &[set("share.isolation.level", "READ_COMMITTED")], &defaults()).unwrap();
        assert!(apply(&committed, settings()).is_read_committed);
        assert!(!apply(&GroupConfig::new(), settings()).is_read_committed);
    }

    #[test]
    fn by_duration_takes_iso_8601_durations_as_kafka_does() {
        let ms = |text: &str| parse_iso_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("PT1H"), Some(3_600_000));
        assert_eq!(ms("pt15m"), Some(900_000));
        assert_eq!(ms("P1DT12H"), Some(129_600_000));
        assert_eq!(ms("P2D"), Some(172_800_000));
        assert_eq!(ms("PT90.5S"), Some(90_500));
        assert_eq!(ms("PT1H30M5.25S"), Some(5_405_250));
        assert_eq!(ms("PT0S"), Some(0));
        for bad in
            ["", "P", "PT", "1H", "-PT1H", "PT1M1H", "PT1.5.5S", "PTHS", "P1H", "PT1D", "P99999999999999999999999D"]
        {
            assert_eq!(ms(bad), None, "{bad}");
        }
        let config =
            changed("g", &GroupConfig::new(), &[set("share.auto.offset.reset", "by_duration:pt1h")], &defaults())
                .unwrap();
        assert_eq!(config.get(&GroupConfigKey::ShareAutoOffsetReset).map(String::as_str), Some("by_duration:PT1H"));
        assert_eq!(apply(&config, settings()).auto_offset_reset, ShareStart::ByDuration(Duration::from_secs(3600)));
    }

    #[test]
    fn a_heartbeat_the_brokers_new_session_timeout_overtook_becomes_a_third_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            changed("g", &GroupConfig::new(), &[set("share.heartbeat.interval.ms", "40000")], &defaults()).unwrap();
        store(&dir.path().join(FILE), &BTreeMap::from([("g".to_owned(), config)])).unwrap();
        // Restarted with a 30 s session timeout: the stored config still loads.
        let shorter = ShareSettings { session_timeout: Duration::from_secs(30), ..settings() };
        let loaded = load(dir.path()).unwrap();
        let applied = apply(&loaded["g"], shorter);
        assert_eq!(applied.heartbeat_interval, Duration::from_secs(10));
    }

    #[test]
    fn the_groups_with_a_config_are_bounded_and_a_deleted_ones_place_is_free_again() {
        let mut groups = StoredGroupConfigs::new();
        let own = [set("consumer.session.timeout.ms", "20000")];
        for n in 0..MAX_CONFIGURED_GROUPS {
            assert_eq!(apply_stored(&mut groups, &format!("g{n}"), &own), Ok(true));
        }
        assert_eq!(apply_stored(&mut groups, "one-more", &own), Err(GroupConfigError::TooManyGroups));
        assert_eq!(apply_stored(&mut groups, "g0", &[set("consumer.heartbeat.interval.ms", "100")]), Ok(true));
        let delete = [("consumer.session.timeout.ms".to_owned(), None)];
        assert_eq!(apply_stored(&mut groups, "g1", &delete), Ok(true));
        assert_eq!(apply_stored(&mut groups, "one-more", &own), Ok(true));
        // A single node's configs, bounded alike.
        let configs = GroupConfigs::new(defaults());
        *configs.configs.write().unwrap() = readable(&groups);
        let refused = configs.alter("another", &own, true).unwrap_err().to_string();
        assert!(refused.contains("10000 groups"), "{refused}");
        assert!(configs.alter("g5", &own, true).is_ok(), "a group with a config already may change it");
    }

    #[test]
    fn configs_survive_a_reload_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "no file: no configs");
        let config =
            changed("g", &GroupConfig::new(), &[set("share.auto.offset.reset", "earliest")], &defaults()).unwrap();
        let groups = BTreeMap::from([("g".to_owned(), config)]);
        store(&dir.path().join(FILE), &groups).unwrap();
        assert_eq!(load(dir.path()).unwrap(), groups);
        std::fs::write(dir.path().join(FILE), br#"{"format_version":1,"groups":{"g":{"share.x":"1"}}}"#).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE) && err.contains("share.x"), "{err}");
        std::fs::write(dir.path().join(FILE), b"{").unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains(FILE));
    }
}
