//! Client metrics subscriptions as Kafka's CLIENT_METRICS config resources (config resource type 16): each a name
//! and up to three keys, `metrics` (a comma-separated list of metric name prefixes, `*` for every metric),
//! `interval.ms` (100 to 3,600,000; 300,000 unset) and `match` (a comma-separated list of `selector=regex`),
//! set and deleted with IncrementalAlterConfigs, shown by DescribeConfigs, listed by ListConfigResources, so
//! `kafka-client-metrics.sh` and admin clients manage them as on Kafka. A subscription exists while it sets a
//! key: deleting its last key deletes it, as on Kafka.
//!
//! [`StoredSubscriptions`] is what lasts (a single node's file, a cluster's metadata: `store.rs`), by name and
//! Kafka key, each value checked before it is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ClientMetricsSubscription, DEFAULT_INTERVAL_MS, SELECTORS};

/// Most subscriptions set through the Kafka API: each is matched on every GetTelemetrySubscriptions and held in
/// every node's metadata.
pub const MAX_SUBSCRIPTIONS: usize = 1_000;
/// Longest subscription name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest value of a key, in characters: a `metrics` list of a few hundred names, or a long `match`.
pub const MAX_VALUE_CHARS: usize = 8_192;

/// A key a subscription sets, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubscriptionKey {
    Metrics,
    IntervalMs,
    Match,
}

impl SubscriptionKey {
    pub const ALL: [SubscriptionKey; 3] =
        [SubscriptionKey::Metrics, SubscriptionKey::IntervalMs, SubscriptionKey::Match];

    pub fn kafka_name(self) -> &'static str {
        match self {
            SubscriptionKey::Metrics => "metrics",
            SubscriptionKey::IntervalMs => "interval.ms",
            SubscriptionKey::Match => "match",
        }
    }

    pub fn parse(name: &str) -> Option<SubscriptionKey> {
        SubscriptionKey::ALL.into_iter().find(|key| key.kafka_name() == name)
    }

    /// Whether Kafka types the key as a list (else an int).
    pub fn is_list(self) -> bool {
        self != SubscriptionKey::IntervalMs
    }

    /// The value of a subscription that does not set the key.
    pub fn default_value(self) -> String {
        match self {
            SubscriptionKey::IntervalMs => DEFAULT_INTERVAL_MS.to_string(),
            SubscriptionKey::Metrics | SubscriptionKey::Match => String::new(),
        }
    }
}

/// Why a subscription change was refused, saying what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("a client metrics subscription needs a name of 1 to {MAX_NAME_CHARS} characters")]
    BadName,
    #[error("{0} is not a client metrics config: they are metrics, interval.ms and match")]
    UnknownKey(String),
    #[error("{0} is named twice in one request")]
    Repeated(String),
    #[error("{key}={value:?} is not allowed: {allowed}")]
    InvalidValue { key: &'static str, value: String, allowed: String },
    #[error(
        "{MAX_SUBSCRIPTIONS} client metrics subscriptions exist, the most the node keeps: delete one that is no \
         longer needed first"
    )]
    TooMany,
}

/// Every subscription set through the Kafka API, by name then Kafka key name, each value as set (checked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredSubscriptions(BTreeMap<String, BTreeMap<String, String>>);

impl StoredSubscriptions {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The keys `name` sets (empty: no such subscription).
    pub fn keys_of(&self, name: &str) -> BTreeMap<SubscriptionKey, String> {
        self.0
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((SubscriptionKey::parse(key)?, value.clone())))
            .collect()
    }

    /// Sets (`Some`) and deletes (`None`) keys of subscription `name`, all or none, each checked; one left with
    /// no key is gone. Whether anything changed. What the cluster metadata runs, the same on every node.
    pub fn apply(&mut self, name: &str, changes: &[(String, Option<String>)]) -> Result<bool, SubscriptionError> {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(SubscriptionError::BadName);
        }
        let mut keys = self.0.get(name).cloned().unwrap_or_default();
        let mut named = Vec::with_capacity(changes.len());
        for (key_name, value) in changes {
            let key =
                SubscriptionKey::parse(key_name).ok_or_else(|| SubscriptionError::UnknownKey(key_name.clone()))?;
            if named.contains(&key) {
                return Err(SubscriptionError::Repeated(key_name.clone()));
            }
            named.push(key);
            match value {
                Some(value) => {
                    check_value(key, value)?;
                    keys.insert(key_name.clone(), value.clone());
                }
                None => {
                    keys.remove(key_name);
                }
            }
        }
        if self.0.get(name).map_or(keys.is_empty(), |before| *before == keys) {
            return Ok(false);
        }
        if keys.is_empty() {
            self.0.remove(name);
        } else {
            if !self.0.contains_key(name) && self.0.len() >= MAX_SUBSCRIPTIONS {
                return Err(SubscriptionError::TooMany);
            }
            self.0.insert(name.to_owned(), keys);
        }
        Ok(true)
    }

    /// Each stored subscription as the node matches clients with. One whose stored values this version refuses
    /// (a newer node's) is left out, logged.
    pub fn subscriptions(&self) -> Vec<ClientMetricsSubscription> {
        self.0
            .iter()
            .filter_map(|(name, keys)| match subscription_of(name, keys) {
                Ok(subscription) => Some(subscription),
                Err(error) => {
                    tracing::warn!(subscription = %name, %error, "a client metrics subscription this version does not read; ignored");
                    None
                }
            })
            .collect()
    }

    /// Checks every subscription as `apply` would have: what a file read at start must pass.
    pub fn check(&self) -> Result<(), String> {
        if self.0.len() > MAX_SUBSCRIPTIONS {
            return Err(SubscriptionError::TooMany.to_string());
        }
        for (name, keys) in &self.0 {
            let changes: Vec<(String, Option<String>)> =
                keys.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect();
            StoredSubscriptions::default().apply(name, &changes).map_err(|err| format!("{name}: {err}"))?;
        }
        Ok(())
    }
}

/// The subscription `keys` describe, each unset key at Kafka's default.
fn subscription_of(
    name: &str,
    keys: &BTreeMap<String, String>,
) -> Result<ClientMetricsSubscription, SubscriptionError> {
    let mut subscription = ClientMetricsSubscription {
        name: name.to_owned(),
        metrics: Vec::new(),
        interval_ms: DEFAULT_INTERVAL_MS,
        matches: BTreeMap::new(),
    };
    for (key_name, value) in keys {
        let key = SubscriptionKey::parse(key_name).ok_or_else(|| SubscriptionError::UnknownKey(key_name.clone()))?;
        match key {
            SubscriptionKey::Metrics => subscription.metrics = list(value).map(str::to_owned).collect(),
            SubscriptionKey::IntervalMs => subscription.interval_ms = interval_ms(value)?,
            SubscriptionKey::Match => subscription.matches = matches(value)?,
        }
    }
    Ok(subscription)
}

/// The items of a Kafka list value: comma-separated, each trimmed, empty ones dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn check_value(key: SubscriptionKey, value: &str) -> Result<(), SubscriptionError> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(invalid(key, value, format!("at most {MAX_VALUE_CHARS} characters")));
    }
    match key {
        SubscriptionKey::Metrics => Ok(()),
        SubscriptionKey::IntervalMs => interval_ms(value).map(drop),
        SubscriptionKey::Match => matches(value).map(drop),
    }
}

fn interval_ms(value: &str) -> Result<u32, SubscriptionError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|ms| (100..=3_600_000).contains(ms))
        .ok_or_else(|| invalid(SubscriptionKey::IntervalMs, value, "milliseconds from 100 to 3600000".to_owned()))
}

/// `selector=regex` pairs, each selector once and known, each regex valid.
fn matches(value: &str) -> Result<BTreeMap<String, String>, SubscriptionError> {
    let allowed = || format!("comma-separated selector=regex pairs, each selector one of {}", SELECTORS.join(", "));
    let mut pairs = BTreeMap::new();
    for item in list(value) {
        let Some((selector, pattern)) = item.split_once('=') else {
            return Err(invalid(SubscriptionKey::Match, value, allowed()));
        };
        let (selector, pattern) = (selector.trim(), pattern.trim());
        if !SELECTORS.contains(&selector) || pairs.contains_key(selector) {
            return Err(invalid(SubscriptionKey::Match, value, allowed()));
        }
        if let Err(err) = super::whole_match(pattern) {
            let why = format!("{pattern:?} is not a regular expression ({err})");
            return Err(invalid(SubscriptionKey::Match, value, why));
        }
        pairs.insert(selector.to_owned(), pattern.to_owned());
    }
    Ok(pairs)
}

fn invalid(key: SubscriptionKey, value: &str, allowed: String) -> SubscriptionError {
    SubscriptionError::InvalidValue { key: key.kafka_name(), value: value.chars().take(200).collect(), allowed }
}

/// One key of a subscription as DescribeConfigs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEntry {
    pub key: SubscriptionKey,
    pub value: String,
    /// Set by the subscription (else Kafka's default).
    pub is_set: bool,
}

/// Every key of a subscription that sets `keys`, in [`SubscriptionKey::ALL`]'s order.
pub fn entries(keys: &BTreeMap<SubscriptionKey, String>) -> Vec<SubscriptionEntry> {
    SubscriptionKey::ALL
        .into_iter()
        .map(|key| match keys.get(&key) {
            Some(value) => SubscriptionEntry { key, value: value.clone(), is_set: true },
            None => SubscriptionEntry { key, value: key.default_value(), is_set: false },
        })
        .collect()
}

/// The keys of a subscription from the node's own settings, as Kafka would spell them.
pub fn keys_of_fixed(subscription: &ClientMetricsSubscription) -> BTreeMap<SubscriptionKey, String> {
    let matches: Vec<String> =
        subscription.matches.iter().map(|(selector, pattern)| format!("{selector}={pattern}")).collect();
    BTreeMap::from([
        (SubscriptionKey::Metrics, subscription.metrics.join(",")),
        (SubscriptionKey::IntervalMs, subscription.interval_ms.to_string()),
        (SubscriptionKey::Match, matches.join(",")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> (String, Option<String>) {
        (key.to_owned(), Some(value.to_owned()))
    }

    fn delete(key: &str) -> (String, Option<String>) {
        (key.to_owned(), None)
    }

    #[test]
    fn keys_set_and_deleted_make_and_remove_a_subscription() {
        let mut stored = StoredSubscriptions::default();
        let changes = [
            set("metrics", "org.apache.kafka.producer., org.apache.kafka.consumer.fetch"),
            set("interval.ms", "1000"),
            set("match", "client_id=orders-.*,client_software_name=confluent-kafka-python"),
        ];
        assert_eq!(stored.apply("orders", &changes), Ok(true));
        assert_eq!(stored.apply("orders", &changes), Ok(false), "the same again changes nothing");
        let subscription = &stored.subscriptions()[0];
        assert_eq!(subscription.name, "orders");
        assert_eq!(subscription.metrics, ["org.apache.kafka.producer.", "org.apache.kafka.consumer.fetch"]);
        assert_eq!(subscription.interval_ms, 1000);
        assert_eq!(subscription.matches["client_id"], "orders-.*");
        assert_eq!(subscription.check(), Ok(()));

        assert_eq!(stored.apply("orders", &[delete("interval.ms")]), Ok(true));
        assert_eq!(stored.subscriptions()[0].interval_ms, DEFAULT_INTERVAL_MS, "back to Kafka's default");
        let shown = entries(&stored.keys_of("orders"));
        assert_eq!(
            shown[1],
            SubscriptionEntry { key: SubscriptionKey::IntervalMs, value: "300000".into(), is_set: false }
        );
        assert!(shown[0].is_set && shown[2].is_set);

        assert_eq!(stored.apply("orders", &[delete("metrics"), delete("match")]), Ok(true));
        assert!(stored.is_empty(), "a subscription without keys is gone");
        assert_eq!(stored.apply("ghost", &[delete("metrics")]), Ok(false), "deleting from nothing is nothing");
    }

    #[test]
    fn a_metrics_key_set_empty_keeps_a_subscription_that_asks_for_nothing() {
        let mut stored = StoredSubscriptions::default();
        assert_eq!(stored.apply("quiet", &[set("metrics", "")]), Ok(true));
        assert_eq!(stored.subscriptions()[0].metrics, Vec::<String>::new());
    }

    #[test]
    fn bad_keys_values_and_names_are_refused_whole_saying_what_is_allowed() {
        let mut stored = StoredSubscriptions::default();
        let refused = |stored: &mut StoredSubscriptions, changes: &[(String, Option<String>)]| {
            stored.apply("s", changes).expect_err("refused").to_string()
        };
        assert!(refused(&mut stored, &[set("metric", "x")]).contains("metrics, interval.ms and match"));
        assert!(refused(&mut stored, &[set("interval.ms", "99")]).contains("100 to 3600000"));
        assert!(refused(&mut stored, &[set("interval.ms", "soon")]).contains("100 to 3600000"));
        assert!(refused(&mut stored, &[set("match", "client_colour=red")]).contains("client_software_version"));
        assert!(refused(&mut stored, &[set("match", "client_id")]).contains("selector=regex"));
        assert!(refused(&mut stored, &[set("match", "client_id=a,client_id=b")]).contains("selector=regex"));
        assert!(refused(&mut stored, &[set("match", "client_id=(")]).contains("not a regular expression"));
        assert!(refused(&mut stored, &[set("metrics", "a"), set("metrics", "b")]).contains("twice"));
        assert!(refused(&mut stored, &[set("metrics", &"m,".repeat(MAX_VALUE_CHARS))]).contains("at most"));
        // All or none: a good key beside a bad one is not stored either.
        assert!(refused(&mut stored, &[set("metrics", "*"), set("interval.ms", "0")]).contains("interval.ms"));
        assert!(stored.is_empty());
        assert_eq!(stored.apply("", &[set("metrics", "*")]), Err(SubscriptionError::BadName));
        assert_eq!(
            stored.apply(&"n".repeat(MAX_NAME_CHARS + 1), &[set("metrics", "*")]),
            Err(SubscriptionError::BadName)
        );
    }

    #[test]
    fn subscriptions_are_bounded_and_a_deleted_ones_place_is_free_again() {
        let mut stored = StoredSubscriptions::default();
        for n in 0..MAX_SUBSCRIPTIONS {
            assert_eq!(stored.apply(&format!("s{n}"), &[set("metrics", "*")]), Ok(true));
        }
        assert_eq!(stored.apply("one-more", &[set("metrics", "*")]), Err(SubscriptionError::TooMany));
        assert_eq!(stored.apply("s0", &[set("interval.ms", "1000")]), Ok(true), "an existing one still changes");
        assert_eq!(stored.apply("s1", &[delete("metrics")]), Ok(true));
        assert_eq!(stored.apply("one-more", &[set("metrics", "*")]), Ok(true));
        assert_eq!(stored.check(), Ok(()));
    }

    #[test]
    fn the_node_settings_subscriptions_are_shown_under_kafkas_keys() {
        let fixed = ClientMetricsSubscription {
            name: "cli".into(),
            metrics: vec!["org.apache.kafka.producer.".into(), "org.apache.kafka.consumer.".into()],
            interval_ms: 30_000,
            matches: BTreeMap::from([("client_id".into(), "a.*".into())]),
        };
        let keys = keys_of_fixed(&fixed);
        assert_eq!(keys[&SubscriptionKey::Metrics], "org.apache.kafka.producer.,org.apache.kafka.consumer.");
        assert_eq!(keys[&SubscriptionKey::IntervalMs], "30000");
        assert_eq!(keys[&SubscriptionKey::Match], "client_id=a.*");
        // Read back as a stored subscription would be: the same.
        let changes: Vec<(String, Option<String>)> =
            keys.iter().map(|(key, value)| (key.kafka_name().to_owned(), Some(value.clone()))).collect();
        let mut stored = StoredSubscriptions::default();
        stored.apply("cli", &changes).expect("valid");
        assert_eq!(stored.subscriptions(), [fixed]);
    }
}
