//! A broker resource (type 4) through IncrementalAlterConfigs and AlterConfigs: Kafka's dynamic broker configs.
//!
//! rill's broker settings are static (its config file and flags, read at start) but for two kinds. The topic
//! defaults (`log.retention.ms`, `log.segment.bytes`, `compression.type`, ...: `topic_defaults::BROKER_NAMES`),
//! which Kafka sets cluster-wide on the default resource (`kafka-configs.sh --entity-type brokers
//! --entity-default`), are the cluster's: every topic that does not set such a key follows a change of it
//! (`topic_defaults.rs`), on a single node as on a cluster. rill keeps one value for the cluster (topics' settings
//! are replicated, not per node), so one set through this node's id is the cluster's too: librdkafka cannot name
//! the default resource. And the replication
//! throttle for replica moves (`replication/throttle.rs`), which Kafka's tools set on every broker a move
//! touches as `leader.replication.throttled.rate` and `follower.replication.throttled.rate`
//! (`kafka-reassign-partitions.sh --throttle`, `kafka-configs.sh --entity-type brokers`, Cruise Control) and
//! remove with a DELETE of both when the move is done. rill has one rate for the whole cluster, in the
//! replicated metadata, enforced per pair of nodes: both names are that rate, for every broker. So a change to
//! either, named for any broker or for the cluster's default (the empty name), sets or clears it for all, and two
//! different values in one request are refused rather than one of them kept silently. Kafka's third broker
//! throttle, for moves between log dirs, has nothing to throttle here (one log dir per node): its DELETE, which
//! the reassignment tool sends with the other two, is taken.
//!
//! A resource names this node or the default, as DescribeConfigs (Kafka's clients send a broker's configs to
//! that broker). Any other key is INVALID_CONFIG, saying the node's settings are static and which keys are not.
//! The whole request is checked before anything changes; the defaults are then changed before the throttle.
//! A single node replicates nothing: setting a rate there is INVALID_REQUEST; clearing is no error (nothing is
//! set).

use kafka_protocol::ResponseError;

use super::error::Outcome;
use super::KafkaContext;
use crate::topic_config::ConfigChange;

pub const LEADER_THROTTLE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_THROTTLE: &str = "follower.replication.throttled.rate";
/// Kafka's throttle for moves between one broker's log dirs. rill keeps one log dir per node, so nothing is
/// ever throttled by it; `kafka-reassign-partitions.sh --verify` deletes it with the two rates on every broker,
/// so a DELETE (or Kafka's no-limit value) is taken as the no-op it is, and a rate is refused.
pub const LOG_DIR_THROTTLE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
/// Kafka's value of a throttle that is not set (`Long.MAX_VALUE`: no limit); setting it clears the throttle.
pub const UNTHROTTLED: u64 = i64::MAX as u64;

/// Whether a broker config can be changed while the node runs (DescribeConfigs' `read_only` is its negation):
/// the topic defaults always, the throttles on a cluster.
pub fn is_dynamic(key: &str, is_cluster: bool) -> bool {
    crate::topic_defaults::key_of(key).is_some() || (is_cluster && (is_rate(key) || key == LOG_DIR_THROTTLE))
}

/// The two names of the cluster's replication throttle.
fn is_rate(key: &str) -> bool {
    key == LEADER_THROTTLE || key == FOLLOWER_THROTTLE
}

/// AlterConfigs replaces a broker's whole dynamic set: every topic default it does not name goes back to the
/// broker's static one; when it names neither throttle key, the throttle goes back to none; when it names one,
/// that one decides (the other is the same rate under another name, not a second setting to reset).
pub fn replace_all(configs: Vec<(String, String)>) -> Vec<ConfigChange> {
    let is_named = |name: &str| configs.iter().any(|(key, _)| key == name);
    let mut deletes: Vec<ConfigChange> = crate::topic_defaults::BROKER_NAMES
        .iter()
        .filter(|(_, name)| !is_named(name))
        .map(|(_, name)| ConfigChange::delete(*name))
        .collect();
    if !configs.iter().any(|(key, _)| is_rate(key)) {
        deletes.push(ConfigChange::delete(LEADER_THROTTLE));
        deletes.push(ConfigChange::delete(FOLLOWER_THROTTLE));
    }
    let mut changes: Vec<ConfigChange> =
        configs.into_iter().map(|(key, value)| ConfigChange::set(key, value)).collect();
    changes.extend(deletes);
    changes
}

/// Alters broker resource `name` (empty: the cluster's default) with `changes`, or checks them only.
pub async fn alter(kafka: &KafkaContext, name: &str, changes: Vec<ConfigChange>, is_validate_only: bool) -> Outcome {
    if !name.is_empty() {
        match name.parse::<i32>() {
            Ok(id) if id == kafka.node_id => {}
            Ok(id) => {
                return invalid_request(format!(
                    "broker {id} is not this node ({}): send a broker's configs to that broker, or name the \
                     cluster's default (an empty name)",
                    kafka.node_id
                ))
            }
            Err(_) => {
                return invalid_request(format!(
                    "{name:?} is not a broker id: a broker resource names a node id or, empty, the cluster's default"
                ))
            }
        }
    }
    let (defaults, changes): (Vec<ConfigChange>, Vec<ConfigChange>) =
        changes.into_iter().partition(|change| crate::topic_defaults::key_of(&change.key).is_some());
    let asked = match throttle_asked(&changes) {
        Ok(asked) => asked,
        Err(why) => return (ResponseError::InvalidConfig.code(), Some(why)),
    };
    if asked.flatten().is_some() && kafka.controller.is_none() {
        return single_node_throttle();
    }
    // The throttle's change is checked above; the defaults' below, whole, before any changes.
    if !defaults.is_empty() {
        if let Err(err) = crate::topic_defaults::alter(&kafka.node, &defaults, is_validate_only).await {
            return (super::error::error_code(&err), Some(err.to_string()));
        }
    }
    let Some(rate) = asked else { return (0, None) };
    let Some(controller) = &kafka.controller else { return (0, None) };
    if is_validate_only {
        return (0, None);
    }
    match controller.set_replication_throttle(rate).await {
        Ok(_) => (0, None),
        Err(err) => (super::error::error_code(&err), Some(err.to_string())),
    }
}

/// What `changes` ask of the cluster's throttle: `None` nothing, `Some(None)` to clear it, `Some(Some(rate))` to
/// set it. Refused, saying why: a key that is not dynamic, a value that is not a rate rill takes, and two
/// different rates.
fn throttle_asked(changes: &[ConfigChange]) -> Result<Option<Option<u64>>, String> {
    let mut asked: Option<(&str, Option<u64>)> = None;
    for change in changes {
        if change.key == LOG_DIR_THROTTLE {
            match change.value.as_deref().map(str::trim) {
                None => continue,
                Some(value) if value == UNTHROTTLED.to_string() => continue,
                Some(value) => {
                    return Err(format!(
                        "{LOG_DIR_THROTTLE} cannot be set to {value}: rill keeps one log dir per node, so no replica \
                         moves between log dirs for it to throttle (DELETE it, or set {UNTHROTTLED}, Kafka's no limit)"
                    ))
                }
            }
        }
        if !is_rate(&change.key) {
            return Err(format!(
                "{} cannot be changed while the broker runs: rill's broker configs are static (its config file \
                 and flags, read at start; DescribeConfigs shows them) but for {LEADER_THROTTLE} and \
                 {FOLLOWER_THROTTLE}, the replication throttle, and the topic defaults: {}",
                change.key,
                crate::topic_defaults::broker_names()
            ));
        }
        let rate = match change.value.as_deref().map(str::trim) {
            None => None,
            Some(value) => throttle_rate(&change.key, value)?,
        };
        match asked {
            Some((first, other)) if other != rate => {
                return Err(format!(
                    "{first} and {} ask for different replication throttles ({} and {}): rill has one rate, \
                     which both names are, for every broker; ask for the same one",
                    change.key,
                    shown(other),
                    shown(rate)
                ))
            }
            _ => asked = Some((&change.key, rate)),
        }
    }
    Ok(asked.map(|(_, rate)| rate))
}

/// A throttle value as Kafka's tools send it: bytes per second, a whole number; Kafka's no-limit value clears.
fn throttle_rate(key: &str, value: &str) -> Result<Option<u64>, String> {
    let Ok(rate) = value.parse::<i64>() else {
        return Err(format!("{key} must be a whole number of bytes per second, not {value:?}"));
    };
    let Ok(rate) = u64::try_from(rate) else {
        return Err(format!("{key} must be at least 0 bytes per second, not {rate}"));
    };
    if rate == UNTHROTTLED {
        return Ok(None);
    }
    match crate::replication::throttle::check_rate(rate) {
        Ok(rate) => Ok(Some(rate)),
        Err(refused) => Err(format!("{key}: {refused}; through Kafka's API, DELETE the config to clear it")),
    }
}

fn single_node_throttle() -> Outcome {
    invalid_request(
        "a single node replicates nothing, so it has no replication throttle to set: the throttle is a cluster's \
         (nodes started with --cluster)"
            .to_owned(),
    )
}

fn shown(rate: Option<u64>) -> String {
    rate.map_or_else(|| "none".to_owned(), |rate| format!("{rate} bytes/s"))
}

fn invalid_request(message: String) -> Outcome {
    (ResponseError::InvalidRequest.code(), Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(changes: &[(&str, Option<&str>)]) -> Result<Option<Option<u64>>, String> {
        let changes: Vec<ConfigChange> = changes
            .iter()
            .map(|(key, value)| ConfigChange { key: (*key).to_owned(), value: value.map(str::to_owned) })
            .collect();
        throttle_asked(&changes)
    }

    #[test]
    fn both_names_are_one_rate_and_kafkas_no_limit_clears_it() {
        assert_eq!(asked(&[]), Ok(None));
        assert_eq!(asked(&[(LEADER_THROTTLE, Some("1048576"))]), Ok(Some(Some(1 << 20))));
        let both = [(LEADER_THROTTLE, Some("1048576")), (FOLLOWER_THROTTLE, Some(" 1048576 "))];
        assert_eq!(asked(&both), Ok(Some(Some(1 << 20))));
        assert_eq!(asked(&[(FOLLOWER_THROTTLE, None), (LEADER_THROTTLE, None)]), Ok(Some(None)));
        assert_eq!(asked(&[(LEADER_THROTTLE, Some("9223372036854775807"))]), Ok(Some(None)));
        // kafka-reassign-partitions.sh --verify's clean-up: the log dirs' throttle goes with the two rates.
        let clean_up = [(LEADER_THROTTLE, None), (FOLLOWER_THROTTLE, None), (LOG_DIR_THROTTLE, None)];
        assert_eq!(asked(&clean_up), Ok(Some(None)));
        assert_eq!(asked(&[(LOG_DIR_THROTTLE, None)]), Ok(None));
    }

    #[test]
    fn other_keys_bad_values_and_two_rates_are_refused_saying_why() {
        let refused = |changes: &[(&str, Option<&str>)]| asked(changes).expect_err("refused");
        let static_key = refused(&[("num.partitions", Some("3"))]);
        assert!(static_key.contains("num.partitions cannot be changed while the broker runs"), "{static_key}");
        assert!(static_key.contains("log.retention.ms, log.retention.bytes"), "{static_key}");
        assert!(static_key.contains(LEADER_THROTTLE), "{static_key}");
        assert!(refused(&[(LEADER_THROTTLE, Some("fast"))]).contains("whole number of bytes per second, not \"fast\""));
        assert!(refused(&[(LEADER_THROTTLE, Some("-5"))]).contains("at least 0 bytes per second, not -5"));
        let too_low = refused(&[(LEADER_THROTTLE, Some("0"))]);
        assert!(too_low.contains("the least allowed is 1024 bytes/s"), "{too_low}");
        let log_dirs = refused(&[(LOG_DIR_THROTTLE, Some("1048576"))]);
        assert!(log_dirs.contains("one log dir per node"), "{log_dirs}");
        let two = refused(&[(LEADER_THROTTLE, Some("2048")), (FOLLOWER_THROTTLE, None)]);
        assert!(two.contains("different replication throttles (2048 bytes/s and none)"), "{two}");
    }

    #[test]
    fn alter_configs_replaces_the_defaults_and_the_throttle_unless_named() {
        let keys = |changes: Vec<ConfigChange>| -> Vec<(String, Option<String>)> {
            changes.into_iter().map(|change| (change.key, change.value)).collect()
        };
        let deleted = |name: &str| (name.to_owned(), None);
        let none = keys(replace_all(vec![]));
        assert_eq!(none.len(), crate::topic_defaults::BROKER_NAMES.len() + 2, "{none:?}");
        assert!(none.contains(&deleted("log.retention.ms")) && none.contains(&deleted("compression.type")));
        assert_eq!(none[none.len() - 2..], [deleted(LEADER_THROTTLE), deleted(FOLLOWER_THROTTLE)]);
        let named = keys(replace_all(vec![
            (FOLLOWER_THROTTLE.to_owned(), "4096".to_owned()),
            ("log.retention.ms".to_owned(), "60000".to_owned()),
        ]));
        assert_eq!(
            named[..2],
            [
                (FOLLOWER_THROTTLE.to_owned(), Some("4096".to_owned())),
                ("log.retention.ms".to_owned(), Some("60000".to_owned()))
            ]
        );
        assert!(!named.contains(&deleted("log.retention.ms")) && !named.contains(&deleted(LEADER_THROTTLE)));
        assert!(named.contains(&deleted("log.segment.bytes")));
    }
}
