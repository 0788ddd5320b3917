//! Per-group settings of share groups: Kafka's group configs (`share.*`, config resource type GROUP), set with
//! IncrementalAlterConfigs and shown by DescribeConfigs, so `kafka-configs --entity-type groups` and admin
//! clients work unchanged. A group's config overrides the broker's `share_*` option of the same meaning for that
//! group alone; a key the group does not set follows the broker's.
//!
//! A config may name a group that has never run (the way to start a share group at the log's start is to set
//! `share.auto.offset.reset=earliest` before its first member joins), and it outlives DeleteGroups, as Kafka's
//! do: configs are the operator's, removed with a DELETE of each key.
//!
//! What lasts: every group's config is one JSON file in the data directory, [`FILE`], written whole (a temporary
//! file fsynced and renamed) before an alter is answered. A file that cannot be read stops the broker at start,
//! naming it, rather than letting groups silently fall back to the broker's settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{ShareSettings, ShareStart};
use crate::error::{BrokerError, Result};

/// The file holding every group's config, in the data directory.
pub const FILE: &str = "__group-configs.json";
const FORMAT_VERSION: u32 = 1;

/// A group config key rill serves, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupConfigKey {
    AutoOffsetReset,
    RecordLockDurationMs,
    DeliveryCountLimit,
    SessionTimeoutMs,
    HeartbeatIntervalMs,
    IsolationLevel,
}

/// The range of a duration key, in milliseconds: the same as the broker option's.
const LOCK_DURATION_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1_000..=3_600_000;
const DELIVERY_COUNT_LIMIT: std::ops::RangeInclusive<u64> = 2..=10;

impl GroupConfigKey {
    pub const ALL: [GroupConfigKey; 6] = [
        GroupConfigKey::AutoOffsetReset,
        GroupConfigKey::RecordLockDurationMs,
        GroupConfigKey::DeliveryCountLimit,
        GroupConfigKey::SessionTimeoutMs,
        GroupConfigKey::HeartbeatIntervalMs,
        GroupConfigKey::IsolationLevel,
    ];

    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupConfigKey::AutoOffsetReset => "share.auto.offset.reset",
            GroupConfigKey::RecordLockDurationMs => "share.record.lock.duration.ms",
            GroupConfigKey::DeliveryCountLimit => "share.delivery.count.limit",
            GroupConfigKey::SessionTimeoutMs => "share.session.timeout.ms",
            GroupConfigKey::HeartbeatIntervalMs => "share.heartbeat.interval.ms",
            GroupConfigKey::IsolationLevel => "share.isolation.level",
        }
    }

    pub fn parse(name: &str) -> Option<GroupConfigKey> {
        GroupConfigKey::ALL.into_iter().find(|key| key.kafka_name() == name)
    }

    /// Whether Kafka types the key as a string (else an int).
    pub fn is_string(self) -> bool {
        matches!(self, GroupConfigKey::AutoOffsetReset | GroupConfigKey::IsolationLevel)
    }

    /// The broker's value of the key: what a group that does not set it follows.
    pub fn broker_value(self, settings: &ShareSettings) -> String {
        match self {
            GroupConfigKey::AutoOffsetReset => start_name(settings.auto_offset_reset),
            GroupConfigKey::RecordLockDurationMs => settings.rules.lock_duration.as_millis().to_string(),
            GroupConfigKey::DeliveryCountLimit => settings.rules.delivery_count_limit.to_string(),
            GroupConfigKey::SessionTimeoutMs => settings.session_timeout.as_millis().to_string(),
            GroupConfigKey::HeartbeatIntervalMs => settings.heartbeat_interval.as_millis().to_string(),
            GroupConfigKey::IsolationLevel => isolation_name(settings.is_read_committed).to_owned(),
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
            GroupConfigKey::AutoOffsetReset => match value.to_ascii_lowercase().as_str() {
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
            GroupConfigKey::RecordLockDurationMs => in_range(LOCK_DURATION_MS, "milliseconds"),
            GroupConfigKey::DeliveryCountLimit => in_range(DELIVERY_COUNT_LIMIT, "a count"),
            GroupConfigKey::SessionTimeoutMs => in_range(SESSION_TIMEOUT_MS, "milliseconds"),
            GroupConfigKey::HeartbeatIntervalMs => in_range(1..=SESSION_TIMEOUT_MS.end() - 1, "milliseconds"),
            GroupConfigKey::IsolationLevel => match value.to_ascii_lowercase().as_str() {
                level @ ("read_uncommitted" | "read_committed") => Ok(level.to_owned()),
                _ => Err(invalid("read_uncommitted or read_committed")),
            },
        }
    }
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
        "{name} is not a group config rill serves: the share group configs are share.auto.offset.reset, \
         share.record.lock.duration.ms, share.delivery.count.limit, share.session.timeout.ms, \
         share.heartbeat.interval.ms and share.isolation.level{hint}"
    )]
    UnknownKey { name: String, hint: &'static str },
    #[error("{key}={value:?} is not allowed: {allowed}")]
    InvalidValue { key: &'static str, value: String, allowed: String },
    #[error(
        "share.heartbeat.interval.ms ({heartbeat_ms}) must be below share.session.timeout.ms ({session_ms}) for \
         group {group}, counting the broker's value of the one the group does not set"
    )]
    HeartbeatNotBelowSession { group: String, heartbeat_ms: u64, session_ms: u64 },
    #[error("{0} is named twice in one request")]
    Repeated(String),
}

/// One group's config: each key it sets, with its value as stored (checked).
pub type GroupConfig = BTreeMap<GroupConfigKey, String>;

/// `config` after `changes` (each a key and `Some(value)` to set it, `None` to remove it), checked against the
/// broker's `settings` for the keys the group does not set.
pub fn changed(
    group: &str,
    config: &GroupConfig,
    changes: &[(String, Option<String>)],
    settings: &ShareSettings,
) -> std::result::Result<GroupConfig, GroupConfigError> {
    let next = with_keys_changed(config, changes)?;
    let effective = with_keys_applied(&next, *settings);
    if effective.heartbeat_interval >= effective.session_timeout {
        return Err(GroupConfigError::HeartbeatNotBelowSession {
            group: group.to_owned(),
            heartbeat_ms: effective.heartbeat_interval.as_millis() as u64,
            session_ms: effective.session_timeout.as_millis() as u64,
        });
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
        let key = GroupConfigKey::parse(name).ok_or_else(|| GroupConfigError::UnknownKey {
            name: name.clone(),
            hint: if name.starts_with("consumer.") {
                " (a consumer group's session and heartbeat are the broker's group_consumer_* settings)"
            } else {
                ""
            },
        })?;
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
pub fn entries(config: &GroupConfig, broker: &ShareSettings) -> Vec<GroupConfigEntry> {
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

fn with_keys_applied(config: &GroupConfig, mut settings: ShareSettings) -> ShareSettings {
    for (key, value) in config {
        let millis = || value.parse::<u64>().ok().map(Duration::from_millis);
        match key {
            GroupConfigKey::AutoOffsetReset => {
                settings.auto_offset_reset = match value.strip_prefix("by_duration:") {
                    Some(duration) => {
                        parse_iso_duration(duration).map_or(settings.auto_offset_reset, ShareStart::ByDuration)
                    }
                    None if value == "earliest" => ShareStart::Earliest,
                    None => ShareStart::Latest,
                };
            }
            GroupConfigKey::RecordLockDurationMs => {
                settings.rules.lock_duration = millis().unwrap_or(settings.rules.lock_duration);
            }
            GroupConfigKey::DeliveryCountLimit => {
                settings.rules.delivery_count_limit = value.parse().unwrap_or(settings.rules.delivery_count_limit);
            }
            GroupConfigKey::SessionTimeoutMs => {
                settings.session_timeout = millis().unwrap_or(settings.session_timeout);
            }
            GroupConfigKey::HeartbeatIntervalMs => {
                settings.heartbeat_interval = millis().unwrap_or(settings.heartbeat_interval);
            }
            GroupConfigKey::IsolationLevel => settings.is_read_committed = value == "read_committed",
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
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(err) => return Err(BrokerError::io(&path)(err)),
    };
    let corrupt = |why: String| BrokerError::Internal(format!("{} cannot be read: {why}", path.display()));
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

/// Writes every group's config to `data_dir`, whole, fsynced.
pub fn store(data_dir: &Path, groups: &BTreeMap<String, GroupConfig>) -> Result<()> {
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
    crate::meta::write_atomically(&data_dir.join(FILE), &bytes)
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
            },
            auto_offset_reset: ShareStart::Latest,
            is_read_committed: false,
            max_groups: 10,
            max_members_per_group: 10,
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
            &settings(),
        )
        .unwrap();
        let applied = apply(&config, settings());
        assert_eq!(applied.auto_offset_reset, ShareStart::Earliest);
        assert_eq!(applied.rules.lock_duration, Duration::from_millis(1500));
        assert_eq!(applied.rules.delivery_count_limit, 3);
        assert_eq!(applied.session_timeout, Duration::from_secs(45), "not set: the broker's");
        let config = changed("g", &config, &[("share.delivery.count.limit".into(), None)], &settings()).unwrap();
        assert_eq!(apply(&config, settings()).rules.delivery_count_limit, 5);
        assert_eq!(config.get(&GroupConfigKey::AutoOffsetReset).map(String::as_str), Some("earliest"));
    }

    #[test]
    fn bad_keys_and_values_are_refused_saying_what_is_allowed() {
        let refused = |changes: &[(String, Option<String>)]| {
            changed("g", &GroupConfig::new(), changes, &settings()).unwrap_err().to_string()
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
        assert!(refused(&[set("consumer.session.timeout.ms", "1")]).contains("group_consumer_"));
        let twice = [set("share.delivery.count.limit", "3"), ("share.delivery.count.limit".into(), None)];
        assert!(refused(&twice).contains("named twice"));
        // The heartbeat must stay below the session timeout, the broker's 45 s counting for a group without one.
        assert!(refused(&[set("share.heartbeat.interval.ms", "45000")]).contains("below share.session.timeout.ms"));
        assert!(refused(&[set("share.session.timeout.ms", "5000")]).contains("below share.session.timeout.ms"));
        let both = [set("share.session.timeout.ms", "5000"), set("share.heartbeat.interval.ms", "1000")];
        assert!(changed("g", &GroupConfig::new(), &both, &settings()).is_ok());
        let committed =
            changed("g", &GroupConfig::new(), &[set("share.isolation.level", "READ_COMMITTED")], &settings()).unwrap();
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
            changed("g", &GroupConfig::new(), &[set("share.auto.offset.reset", "by_duration:pt1h")], &settings())
                .unwrap();
        assert_eq!(config.get(&GroupConfigKey::AutoOffsetReset).map(String::as_str), Some("by_duration:PT1H"));
        assert_eq!(apply(&config, settings()).auto_offset_reset, ShareStart::ByDuration(Duration::from_secs(3600)));
    }

    #[test]
    fn a_heartbeat_the_brokers_new_session_timeout_overtook_becomes_a_third_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            changed("g", &GroupConfig::new(), &[set("share.heartbeat.interval.ms", "40000")], &settings()).unwrap();
        store(dir.path(), &BTreeMap::from([("g".to_owned(), config)])).unwrap();
        // Restarted with a 30 s session timeout: the stored config still loads.
        let shorter = ShareSettings { session_timeout: Duration::from_secs(30), ..settings() };
        let loaded = load(dir.path()).unwrap();
        let applied = apply(&loaded["g"], shorter);
        assert_eq!(applied.heartbeat_interval, Duration::from_secs(10));
    }

    #[test]
    fn configs_survive_a_reload_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "no file: no configs");
        let config =
            changed("g", &GroupConfig::new(), &[set("share.auto.offset.reset", "earliest")], &settings()).unwrap();
        let groups = BTreeMap::from([("g".to_owned(), config)]);
        store(dir.path(), &groups).unwrap();
        assert_eq!(load(dir.path()).unwrap(), groups);
        std::fs::write(dir.path().join(FILE), br#"{"format_version":1,"groups":{"g":{"share.x":"1"}}}"#).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE) && err.contains("share.x"), "{err}");
        std::fs::write(dir.path().join(FILE), b"{").unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains(FILE));
    }
}
