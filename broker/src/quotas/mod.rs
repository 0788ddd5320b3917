//! Client quotas (Kafka's KIP-13 and KIP-55, managed with KIP-546's DescribeClientQuotas and AlterClientQuotas):
//! byte rates a client may produce and fetch at, set for a user, a client id, or both, each a name or the default
//! for every name without a quota of its own. A client past its rate is not refused: it is throttled, as Kafka's
//! broker throttles, long enough to bring its rate back to the quota (`throttle.rs`). And (KIP-612) the rate at
//! which an IP address may open connections, set for an `ip` entity (an address, or the default for every address
//! without one of its own): a connection past it is closed as it is accepted (`connections.rs`). And (KIP-599)
//! the partitions a second a user or client id may create or delete, `controller_mutation_rate`, metered as the
//! byte rates are and enforced by the Kafka topic admin requests (`kafka/mutation_quota.rs`). And (KIP-124) the
//! share of one thread's time a user or client id's requests may take to handle, `request_percentage`, metered
//! in microseconds of handling (`kafka/request_time.rs` on the Kafka listener, `service/request_time.rs` for
//! gRPC calls).
//!
//! `ClientQuotas` is the configuration and its rules (what may be set, which quota applies to a client); the
//! store (`store.rs`) keeps it, in `<data>/__quotas.json` on a single node or in the replicated cluster
//! metadata; the meters (`throttle.rs`) measure each client's rate and say how long to hold it.
//!
//! Invariants:
//! - Which quota applies is Kafka's order (`ClientQuotas::resolve`), decided per key: the most specific entity
//!   with a value for that key wins, and the clients it covers share one meter when it names the user or client
//!   id they share (`/users/alice`: every client of alice together), one each when a default stands for it.
//! - Every value is a whole number (bytes, partitions or connections a second, or a percentage), at least 1 (a
//!   connection rate may be 0); an entity holds at least one value, or it is gone. At most [`MAX_QUOTA_ENTITIES`] entities, names at most [`MAX_ENTITY_NAME_BYTES`] bytes.

pub mod connections;
pub mod request_time;
pub mod service;
pub mod store;
pub mod throttle;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Most entities a node (or a cluster) holds quotas for: the store rewrites them whole on a change.
pub const MAX_QUOTA_ENTITIES: usize = 10_000;
/// Longest user or client-id name an entity may have.
pub const MAX_ENTITY_NAME_BYTES: usize = 255;
/// The name Kafka gives a client that did not authenticate; `/users/ANONYMOUS` sets its quota.
pub const ANONYMOUS_USER: &str = "ANONYMOUS";

/// One component of an entity: a name, or the default for every name that has no entity of its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    fn is(&self, name: &str) -> bool {
        matches!(self, EntityName::Named(own) if own == name)
    }
}

/// Who a quota is for: a user, a client id, or both (Kafka's `/users/u`, `/clients/c`, `/users/u/clients/c`); or
/// an IP address alone (`/ips/10.0.0.5`), its name the address as `IpAddr` writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<EntityName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |name: &EntityName| match name {
            EntityName::Default => "<default>".to_owned(),
            EntityName::Named(name) => format!("{name:?}"),
        };
        match (&self.user, &self.client_id, &self.ip) {
            (_, _, Some(ip)) => write!(f, "ip {}", part(ip)),
            (Some(user), Some(client), None) => write!(f, "user {} client-id {}", part(user), part(client)),
            (Some(user), None, None) => write!(f, "user {}", part(user)),
            (None, Some(client), None) => write!(f, "client-id {}", part(client)),
            (None, None, None) => f.write_str("no entity"),
        }
    }
}

/// What a quota limits, by Kafka's config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // Kafka's names, each a rate.
pub enum QuotaKey {
    /// Bytes of produce requests a second.
    ProducerByteRate,
    /// Bytes of fetch responses a second.
    ConsumerByteRate,
    /// Connections an IP address may open a second (an `ip` entity's one key).
    ConnectionCreationRate,
    /// Partitions a second a client may create or delete (KIP-599): CreateTopics, CreatePartitions, DeleteTopics.
    ControllerMutationRate,
    /// The share of one thread's time, in percent, a client's requests may take to handle (KIP-124): 100 is one
    /// thread's whole time, 200 two threads'.
    RequestPercentage,
}

impl QuotaKey {
    /// The rates a user or client id is held to, metered per client (`throttle.rs`).
    pub const METERED: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::ControllerMutationRate,
        QuotaKey::RequestPercentage,
    ];
    pub const ALL: [QuotaKey; 5] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::ConnectionCreationRate,
        QuotaKey::ControllerMutationRate,
        QuotaKey::RequestPercentage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::RequestPercentage => "request_percentage",
        }
    }

    /// The smallest value it may have: a connection rate of 0 refuses every connection from the address.
    fn least(self) -> u64 {
        u64::from(self != QuotaKey::ConnectionCreationRate)
    }

    /// The largest value it may have (Kafka's connection rate is an int; a million percent is ten thousand
    /// threads' time, and keeps the microseconds a second it meters well inside a u64).
    fn most(self) -> u64 {
        match self {
            QuotaKey::ConnectionCreationRate => i32::MAX as u64,
            QuotaKey::RequestPercentage => 1_000_000,
            _ => i64::MAX as u64,
        }
    }

    pub fn parse(name: &str) -> Result<QuotaKey, InvalidQuota> {
        QuotaKey::ALL.into_iter().find(|key| key.name() == name).ok_or_else(|| InvalidQuota::Key(name.to_owned()))
    }
}

/// One change: `key` of `entity` set to `value` bytes a second, or removed (`None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub key: QuotaKey,
    pub value: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidQuota {
    #[error(
        "quota key {0:?} is not served: rill enforces producer_byte_rate, consumer_byte_rate, \
         controller_mutation_rate and request_percentage for users and client ids, and connection_creation_rate \
         for ips"
    )]
    Key(String),
    #[error("entity type {0:?} is not served: an entity is a user, a client-id, both, or an ip")]
    EntityType(String),
    #[error("an entity names user or client-id at most once each and at least one of them, or an ip alone")]
    EntityShape,
    #[error("an entity name is 1 to {MAX_ENTITY_NAME_BYTES} bytes, got {0} bytes")]
    EntityName(usize),
    #[error("ip entity {0:?} is not an IP address (or the default)")]
    IpAddress(String),
    #[error(
        "{key} is not a quota of {entity}: an ip takes connection_creation_rate alone, a user or client-id \
         producer_byte_rate, consumer_byte_rate, controller_mutation_rate and request_percentage"
    )]
    KeyOfEntity { key: &'static str, entity: String },
    #[error("{key} must be a whole number from {least} to {most}, got {value}")]
    Value { key: &'static str, value: f64, least: u64, most: u64 },
    #[error("too many quota entities: a node or a cluster holds at most {MAX_QUOTA_ENTITIES}")]
    TooMany,
}

impl QuotaEntity {
    /// The quota of address `ip` (`None`: the default for every address).
    pub fn of_ip(ip: Option<IpAddr>) -> QuotaEntity {
        let name = ip.map_or(EntityName::Default, |ip| EntityName::Named(ip.to_canonical().to_string()));
        QuotaEntity { ip: Some(name), ..QuotaEntity::default() }
    }

    pub fn validate(&self) -> Result<(), InvalidQuota> {
        if let Some(ip) = &self.ip {
            if self.user.is_some() || self.client_id.is_some() {
                return Err(InvalidQuota::EntityShape);
            }
            return match ip {
                EntityName::Named(name) if name.parse::<IpAddr>().is_err() => {
                    Err(InvalidQuota::IpAddress(name.clone()))
                }
                _ => Ok(()),
            };
        }
        if self.user.is_none() && self.client_id.is_none() {
            return Err(InvalidQuota::EntityShape);
        }
        for name in [&self.user, &self.client_id].into_iter().flatten() {
            if let EntityName::Named(name) = name {
                if name.is_empty() || name.len() > MAX_ENTITY_NAME_BYTES {
                    return Err(InvalidQuota::EntityName(name.len()));
                }
            }
        }
        Ok(())
    }
}

/// A rate as Kafka's clients send it (a double), if it is one rill holds.
pub fn rate_from_wire(key: QuotaKey, value: f64) -> Result<u64, InvalidQuota> {
    let is_whole = value.fract() == 0.0 && value >= key.least() as f64 && value <= key.most() as f64;
    if !is_whole {
        return Err(out_of_range(key, value));
    }
    Ok(value as u64)
}

fn out_of_range(key: QuotaKey, value: f64) -> InvalidQuota {
    InvalidQuota::Value { key: key.name(), value, least: key.least(), most: key.most() }
}

/// Whose meter a resolved quota charges: the user and client id it names or stands for a default of; `None`
/// where the quota covers every value of that component together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeterKey {
    pub user: Option<String>,
    pub client_id: Option<String>,
}

/// The quota a client is held to for one key, and the meter its bytes go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedQuota {
    pub bytes_per_sec: u64,
    pub meter: MeterKey,
}

/// Every quota set, by entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<QuotaEntry>", into = "Vec<QuotaEntry>")]
pub struct ClientQuotas {
    entries: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, u64>>,
}

/// How [`ClientQuotas`] is written: a list (JSON maps take only string keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct QuotaEntry {
    entity: QuotaEntity,
    values: BTreeMap<QuotaKey, u64>,
}

impl From<Vec<QuotaEntry>> for ClientQuotas {
    fn from(entries: Vec<QuotaEntry>) -> Self {
        ClientQuotas { entries: entries.into_iter().map(|e| (e.entity, e.values)).collect() }
    }
}

impl From<ClientQuotas> for Vec<QuotaEntry> {
    fn from(quotas: ClientQuotas) -> Self {
        quotas.entries.into_iter().map(|(entity, values)| QuotaEntry { entity, values }).collect()
    }
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entity with its values, in a stable order.
    pub fn entries(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<QuotaKey, u64>)> {
        self.entries.iter()
    }

    /// Checks every change, then applies them all, or none: a change to remove a value not set changes nothing.
    /// Whether anything changed.
    pub fn apply(&mut self, changes: &[QuotaChange]) -> Result<bool, InvalidQuota> {
        for change in changes {
            change.entity.validate()?;
            let is_ip_key = change.key == QuotaKey::ConnectionCreationRate;
            if is_ip_key != change.entity.ip.is_some() {
                return Err(InvalidQuota::KeyOfEntity { key: change.key.name(), entity: change.entity.to_string() });
            }
            if let Some(value) = change.value.filter(|value| !(change.key.least()..=change.key.most()).contains(value))
            {
                return Err(out_of_range(change.key, value as f64));
            }
        }
        let mut next = self.entries.clone();
        for change in changes {
            match change.value {
                Some(value) => {
                    next.entry(change.entity.clone()).or_default().insert(change.key, value);
                }
                None => {
                    if let Some(values) = next.get_mut(&change.entity) {
                        values.remove(&change.key);
                        if values.is_empty() {
                            next.remove(&change.entity);
                        }
                    }
                }
            }
        }
        if next.len() > MAX_QUOTA_ENTITIES && next.len() > self.entries.len() {
            return Err(InvalidQuota::TooMany);
        }
        let changed = next != self.entries;
        self.entries = next;
        Ok(changed)
    }

    /// The quota on `key` for a client authenticated as `user` (or [`ANONYMOUS_USER`]) that sent `client_id`,
    /// in Kafka's order of precedence; `None` when no entity covers it.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<ResolvedQuota> {
        use EntityName::Default;
        let named = |name: &str| Some(EntityName::Named(name.to_owned()));
        let both = || MeterKey { user: Some(user.to_owned()), client_id: Some(client_id.to_owned()) };
        let user_only = || MeterKey { user: Some(user.to_owned()), client_id: None };
        let client_only = || MeterKey { user: None, client_id: Some(client_id.to_owned()) };
        let order: [(QuotaEntity, MeterKey); 8] = [
            (QuotaEntity { user: named(user), client_id: named(client_id), ip: None }, both()),
            (QuotaEntity { user: named(user), client_id: Some(Default), ip: None }, both()),
            (QuotaEntity { user: named(user), client_id: None, ip: None }, user_only()),
            (QuotaEntity { user: Some(Default), client_id: named(client_id), ip: None }, both()),
            (QuotaEntity { user: Some(Default), client_id: Some(Default), ip: None }, both()),
            (QuotaEntity { user: Some(Default), client_id: None, ip: None }, user_only()),
            (QuotaEntity { user: None, client_id: named(client_id), ip: None }, client_only()),
            (QuotaEntity { user: None, client_id: Some(Default), ip: None }, client_only()),
        ];
        order.into_iter().find_map(|(entity, meter)| {
            let bytes_per_sec = *self.entries.get(&entity)?.get(&key)?;
            Some(ResolvedQuota { bytes_per_sec, meter })
        })
    }

    /// Whether any entity holds a value for `key`.
    pub fn holds(&self, key: QuotaKey) -> bool {
        self.entries.values().any(|values| values.contains_key(&key))
    }

    /// Whether any `ip` entity holds a connection rate: when not, accepting a connection looks nothing up.
    pub fn has_connection_rates(&self) -> bool {
        self.entries.keys().any(|entity| entity.ip.is_some())
    }

    /// The connections a second address `ip` may open: its own quota, else the default ip quota's.
    pub fn connection_rate(&self, ip: IpAddr) -> Option<u64> {
        let key = QuotaKey::ConnectionCreationRate;
        let value_of = |entity: QuotaEntity| self.entries.get(&entity).and_then(|values| values.get(&key)).copied();
        value_of(QuotaEntity::of_ip(Some(ip))).or_else(|| value_of(QuotaEntity::of_ip(None)))
    }

    /// The entities DescribeClientQuotas matches: for each component asked, one with that exact name, the
    /// default, or any (`None` as the filter's name); `is_strict` leaves out entities with other components.
    pub fn matching<'a>(
        &'a self,
        filters: &'a [ComponentFilter],
        is_strict: bool,
    ) -> impl Iterator<Item = (&'a QuotaEntity, &'a BTreeMap<QuotaKey, u64>)> + 'a {
        self.entries.iter().filter(move |(entity, _)| {
            let component = |kind: EntityKind| match kind {
                EntityKind::User => &entity.user,
                EntityKind::ClientId => &entity.client_id,
                EntityKind::Ip => &entity.ip,
            };
            let each_matches = filters.iter().all(|filter| match (&filter.kind_match, component(filter.kind)) {
                (_, None) => false,
                (NameMatch::Exact(name), Some(own)) => own.is(name),
                (NameMatch::Default, Some(own)) => *own == EntityName::Default,
                (NameMatch::Any, Some(_)) => true,
            });
            let asked = |kind| filters.iter().any(|f| f.kind == kind);
            let has_no_other = [EntityKind::User, EntityKind::ClientId, EntityKind::Ip]
                .into_iter()
                .all(|kind| asked(kind) || component(kind).is_none());
            each_matches && (!is_strict || has_no_other)
        })
    }
}

/// The components of an entity, by Kafka's entity type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    User,
    ClientId,
    Ip,
}

impl EntityKind {
    pub fn parse(name: &str) -> Result<EntityKind, InvalidQuota> {
        match name {
            "user" => Ok(EntityKind::User),
            "client-id" => Ok(EntityKind::ClientId),
            "ip" => Ok(EntityKind::Ip),
            other => Err(InvalidQuota::EntityType(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::ClientId => "client-id",
            EntityKind::Ip => "ip",
        }
    }
}

/// DescribeClientQuotas' filter on one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentFilter {
    pub kind: EntityKind,
    pub kind_match: NameMatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameMatch {
    Exact(String),
    Default,
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Option<EntityName> {
        Some(EntityName::Named(name.into()))
    }

    fn set(entity: QuotaEntity, key: QuotaKey, value: u64) -> QuotaChange {
        QuotaChange { entity, key, value: Some(value) }
    }

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id, ip: None }
    }

    #[test]
    fn the_most_specific_entity_with_the_key_wins_in_kafkas_order() {
        use EntityName::Default;
        use QuotaKey::{ConsumerByteRate as Fetch, ProducerByteRate as Produce};
        let levels = [
            (entity(None, Some(Default)), 8),
            (entity(None, named("c")), 7),
            (entity(Some(Default), None), 6),
            (entity(Some(Default), Some(Default)), 5),
            (entity(Some(Default), named("c")), 4),
            (entity(named("u"), None), 3),
            (entity(named("u"), Some(Default)), 2),
            (entity(named("u"), named("c")), 1),
        ];
        let mut quotas = ClientQuotas::default();
        let meter = |user: Option<&str>, client: Option<&str>| MeterKey {
            user: user.map(str::to_owned),
            client_id: client.map(str::to_owned),
        };
        let expected_meters = [
            meter(None, Some("c")),
            meter(None, Some("c")),
            meter(Some("u"), None),
            meter(Some("u"), Some("c")),
            meter(Some("u"), Some("c")),
            meter(Some("u"), None),
            meter(Some("u"), Some("c")),
            meter(Some("u"), Some("c")),
        ];
        // Added from the least specific: each new level takes over.
        for ((entity, rate), expected_meter) in levels.into_iter().zip(expected_meters) {
            assert!(quotas.apply(&[set(entity.clone(), Produce, rate)]).expect("valid"));
            let resolved = quotas.resolve(Produce, "u", "c").expect("covered");
            assert_eq!(resolved, ResolvedQuota { bytes_per_sec: rate, meter: expected_meter }, "{entity}");
        }
        assert_eq!(quotas.resolve(Fetch, "u", "c"), None, "decided per key");
        // Another user falls to the user default, another client of no user quota to the client ones.
        assert_eq!(quotas.resolve(Produce, "v", "c").map(|q| q.bytes_per_sec), Some(4));
        assert_eq!(quotas.resolve(Produce, "v", "d").map(|q| q.bytes_per_sec), Some(5));
        let mut clients_only = ClientQuotas::default();
        clients_only.apply(&[set(entity(None, Some(Default)), Fetch, 9)]).expect("valid");
        assert_eq!(clients_only.resolve(Fetch, ANONYMOUS_USER, "").map(|q| q.bytes_per_sec), Some(9));
    }

    #[test]
    fn changes_apply_all_or_none_and_an_entity_without_values_goes() {
        let mut quotas = ClientQuotas::default();
        let alice = entity(named("alice"), None);
        let changes = [
            set(alice.clone(), QuotaKey::ProducerByteRate, 1024),
            set(alice.clone(), QuotaKey::ConsumerByteRate, 2048),
        ];
        assert!(quotas.apply(&changes).expect("valid"));
        assert!(!quotas.apply(&changes).expect("valid"), "the same values again change nothing");
        let bad = [
            QuotaChange { entity: alice.clone(), key: QuotaKey::ProducerByteRate, value: None },
            set(entity(named(""), None), QuotaKey::ProducerByteRate, 1),
        ];
        assert_eq!(quotas.apply(&bad), Err(InvalidQuota::EntityName(0)));
        assert_eq!(quotas.len(), 1);
        assert_eq!(
            quotas.apply(&[set(entity(None, None), QuotaKey::ProducerByteRate, 1)]),
            Err(InvalidQuota::EntityShape)
        );
        assert!(matches!(
            quotas.apply(&[set(alice.clone(), QuotaKey::ProducerByteRate, 0)]),
            Err(InvalidQuota::Value { .. })
        ));
        let remove = |key| QuotaChange { entity: alice.clone(), key, value: None };
        assert!(quotas.apply(&[remove(QuotaKey::ProducerByteRate)]).expect("valid"));
        assert_eq!(quotas.len(), 1);
        assert!(quotas.apply(&[remove(QuotaKey::ConsumerByteRate)]).expect("valid"));
        assert!(quotas.is_empty(), "no values left: the entity goes");
        assert!(!quotas.apply(&[remove(QuotaKey::ConsumerByteRate)]).expect("valid"), "nothing to remove");
    }

    #[test]
    fn rates_from_the_wire_are_whole_positive_numbers() {
        assert_eq!(rate_from_wire(QuotaKey::ProducerByteRate, 1048576.0), Ok(1048576));
        for value in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY, 1e19] {
            assert!(rate_from_wire(QuotaKey::ProducerByteRate, value).is_err(), "{value}");
        }
        assert_eq!(QuotaKey::parse("consumer_byte_rate"), Ok(QuotaKey::ConsumerByteRate));
        assert_eq!(QuotaKey::parse("request_percentage"), Ok(QuotaKey::RequestPercentage));
        assert_eq!(rate_from_wire(QuotaKey::RequestPercentage, 200.0), Ok(200));
        let err = rate_from_wire(QuotaKey::RequestPercentage, 2e6).expect_err("past ten thousand threads");
        assert!(err.to_string().contains("from 1 to 1000000"), "{err}");
        let err = QuotaKey::parse("io_thread_units").expect_err("not served");
        assert!(err.to_string().contains("controller_mutation_rate and request_percentage"), "{err}");
    }

    #[test]
    fn the_limit_on_entities_holds_but_never_stops_a_removal() {
        let mut quotas = ClientQuotas::default();
        let changes: Vec<QuotaChange> = (0..MAX_QUOTA_ENTITIES)
            .map(|i| set(entity(None, named(&format!("c{i}"))), QuotaKey::ProducerByteRate, 1))
            .collect();
        assert!(quotas.apply(&changes).expect("at the limit"));
        let one_more = set(entity(None, named("extra")), QuotaKey::ProducerByteRate, 1);
        assert_eq!(quotas.apply(&[one_more]), Err(InvalidQuota::TooMany));
        let removal = QuotaChange { entity: entity(None, named("c0")), key: QuotaKey::ProducerByteRate, value: None };
        assert!(quotas.apply(&[removal]).expect("a removal"));
    }

    #[test]
    fn describe_filters_match_exact_default_or_any_and_strict_leaves_out_other_components() {
        let mut quotas = ClientQuotas::default();
        let entities = [
            entity(named("alice"), None),
            entity(named("alice"), named("app")),
            entity(Some(EntityName::Default), None),
            entity(None, named("app")),
        ];
        let changes: Vec<QuotaChange> =
            entities.iter().map(|e| set(e.clone(), QuotaKey::ProducerByteRate, 10)).collect();
        quotas.apply(&changes).expect("valid");
        let users = |kind_match| vec![ComponentFilter { kind: EntityKind::User, kind_match }];
        let found = |filters: &[ComponentFilter], strict| {
            quotas.matching(filters, strict).map(|(e, _)| e.clone()).collect::<Vec<_>>()
        };
        let alice = users(NameMatch::Exact("alice".into()));
        assert_eq!(found(&alice, false), [entities[0].clone(), entities[1].clone()]);
        assert_eq!(found(&alice, true), [entities[0].clone()]);
        assert_eq!(found(&users(NameMatch::Default), false), [entities[2].clone()]);
        assert_eq!(found(&users(NameMatch::Any), true).len(), 2);
        assert_eq!(found(&[], false).len(), 4, "no filter: every entity");
    }

    #[test]
    fn an_ip_entity_stands_alone_holds_a_connection_rate_and_falls_back_to_the_default_ip() {
        let mut quotas = ClientQuotas::default();
        let rate = QuotaKey::ConnectionCreationRate;
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(!quotas.has_connection_rates());
        quotas
            .apply(&[set(QuotaEntity::of_ip(None), rate, 10), set(QuotaEntity::of_ip(Some(ip)), rate, 0)])
            .expect("valid");
        assert!(quotas.has_connection_rates());
        assert_eq!(quotas.connection_rate(ip), Some(0), "its own, even 0");
        assert_eq!(quotas.connection_rate("10.0.0.6".parse().unwrap()), Some(10), "the default ip's");
        assert_eq!(quotas.connection_rate("::ffff:10.0.0.5".parse().unwrap()), Some(0), "IPv4-mapped is IPv4");
        assert_eq!(quotas.resolve(QuotaKey::ProducerByteRate, "u", "c"), None, "no byte rate from an ip");
        let refusals = [
            (set(QuotaEntity::of_ip(Some(ip)), QuotaKey::ProducerByteRate, 1), "connection_creation_rate alone"),
            (set(entity(named("alice"), None), rate, 1), "connection_creation_rate alone"),
            (set(QuotaEntity { user: named("alice"), ..QuotaEntity::of_ip(None) }, rate, 1), "or an ip alone"),
            (set(QuotaEntity { ip: named("db-1.example"), ..QuotaEntity::default() }, rate, 1), "not an IP address"),
            (set(QuotaEntity::of_ip(None), rate, i32::MAX as u64 + 1), "from 0 to 2147483647"),
        ];
        for (change, why) in refusals {
            let refused = quotas.apply(&[change]).expect_err("refused").to_string();
            assert!(refused.contains(why), "{why:?} in {refused}");
        }
        assert_eq!(rate_from_wire(rate, 0.0), Ok(0));
        assert!(rate_from_wire(rate, 0.5).is_err() && rate_from_wire(QuotaKey::ProducerByteRate, 0.0).is_err());
        let ips = vec![ComponentFilter { kind: EntityKind::Ip, kind_match: NameMatch::Any }];
        assert_eq!(quotas.matching(&ips, true).count(), 2);
    }

    #[test]
    fn quotas_round_trip_through_json() {
        let mut quotas = ClientQuotas::default();
        quotas
            .apply(&[
                set(entity(named("alice"), Some(EntityName::Default)), QuotaKey::ConsumerByteRate, 5),
                set(entity(None, named("app")), QuotaKey::ProducerByteRate, 7),
                set(QuotaEntity::of_ip(Some("10.1.2.3".parse().unwrap())), QuotaKey::ConnectionCreationRate, 3),
            ])
            .expect("valid");
        let text = serde_json::to_string(&quotas).expect("serializable");
        assert_eq!(serde_json::from_str::<ClientQuotas>(&text).expect("parses"), quotas, "{text}");
    }
}
