//! IncrementalAlterConfigs (v0–v1) and AlterConfigs (v0–v2) for topics: the same change as `rill topic alter`
//! (`topic_config.rs`), one result per resource. IncrementalAlterConfigs SETs and DELETEs keys and leaves the
//! others; APPEND and SUBTRACT change a list key (a topic's `cleanup.policy` and throttled-replica lists, the
//! brokers' `log.cleanup.policy`, a client metrics subscription's `metrics` and `match`) from the value the resource runs with, its default included, as
//! Kafka does: APPEND adds the items not in it yet, SUBTRACT removes those named; either of a key that is not a
//! list is INVALID_CONFIG.
//! AlterConfigs replaces the topic's whole set: the keys it does not name go back to the broker's defaults, as in
//! Kafka.
//!
//! A group (type 32, Kafka's group configs) is altered by IncrementalAlterConfigs alone, as in Kafka: its
//! `share.*` and `consumer.*` keys (`group_config.rs`), on a single node or a cluster. So is a client metrics
//! subscription (type 16, KIP-714): setting a key of a new name creates it, deleting its last key deletes it
//! (`client_telemetry/subscriptions.rs`); one of the node's own settings is INVALID_CONFIG.
//!
//! Each topic needs ALTER_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), each group on it
//! (GROUP_AUTHORIZATION_FAILED); a client metrics subscription needs it on the cluster, as on Kafka; a broker
//! resource (type 4) needs it on the cluster (CLUSTER_AUTHORIZATION_FAILED): its dynamic settings are the
//! cluster's topic defaults and the replication throttle (`broker_configs.rs`), the rest are static. Other resource types are INVALID_REQUEST.
//! With `validate_only`, everything is checked and nothing changes.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as FullResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::error::Outcome;
use super::topic_configs::{text, TYPE_LIST};
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::topic_config::{replace_all, ConfigChange};

use super::list_config_resources::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP, RESOURCE_TOPIC};
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn incremental(
    kafka: &KafkaContext,
    request: IncrementalAlterConfigsRequest,
    principal: &Principal,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let changes = resource
            .configs
            .iter()
            .map(|config| incremental_change(config.name.as_str(), config.config_operation, config.value.as_ref()))
            .collect::<Result<Vec<_>, Outcome>>()
            .and_then(|changes| {
                with_list_operations_resolved(kafka, resource.resource_type, resource.resource_name.as_str(), changes)
            });
        let asked = Asked {
            resource_type: resource.resource_type,
            name: &resource.resource_name,
            changes,
            is_incremental: true,
        };
        let (code, message) = alter(kafka, asked, request.validate_only, principal).await;
        responses.push(
            IncrementalResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message.map(text)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub async fn full(kafka: &KafkaContext, request: AlterConfigsRequest, principal: &Principal) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let configs: Result<Vec<(String, String)>, Outcome> = resource
            .configs
            .iter()
            .map(|config| match &config.value {
                Some(value) => Ok((config.name.to_string(), value.to_string())),
                None => Err(invalid_request(format!(
                    "config {} has no value: AlterConfigs sets every key it names",
                    config.name
                ))),
            })
            .collect();
        let changes = match resource.resource_type {
            RESOURCE_BROKER => configs.map(super::broker_configs::replace_all),
            _ => configs.map(replace_all),
        };
        let asked = Asked {
            resource_type: resource.resource_type,
            name: &resource.resource_name,
            changes,
            is_incremental: false,
        };
        let (code, message) = alter(kafka, asked, request.validate_only, principal).await;
        responses.push(
            FullResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(code)
                .with_error_message(message.map(text)),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// One key of an IncrementalAlterConfigs resource as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyChange {
    Change(ConfigChange),
    /// APPEND (true) or SUBTRACT (false) of the comma-separated items, to the list the resource runs with.
    List {
        key: String,
        items: String,
        is_append: bool,
    },
}

fn incremental_change(name: &str, operation: i8, value: Option<&StrBytes>) -> Result<KeyChange, Outcome> {
    match (operation, value) {
        (OP_SET, Some(value)) => Ok(KeyChange::Change(ConfigChange::set(name, value.as_str()))),
        (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
            Err(invalid_request(format!("{} of {name} has no value", operation_name(operation))))
        }
        (OP_DELETE, _) => Ok(KeyChange::Change(ConfigChange::delete(name))),
        (OP_APPEND | OP_SUBTRACT, Some(items)) => {
            Ok(KeyChange::List { key: name.to_owned(), items: items.to_string(), is_append: operation == OP_APPEND })
        }
        (other, _) => Err(invalid_request(format!(
            "unknown config operation {other} for {name}: use SET (0), DELETE (1), APPEND (2) or SUBTRACT (3)"
        ))),
    }
}

fn operation_name(operation: i8) -> &'static str {
    match operation {
        OP_SET => "SET",
        OP_APPEND => "APPEND",
        _ => "SUBTRACT",
    }
}

/// The changes with each APPEND and SUBTRACT made a SET of the list it leaves, from the value the resource runs
/// with now (its default when it sets none). A key that is not a list is INVALID_CONFIG, naming the list keys.
fn with_list_operations_resolved(
    kafka: &KafkaContext,
    resource_type: i8,
    name: &str,
    changes: Vec<KeyChange>,
) -> Result<Vec<ConfigChange>, Outcome> {
    let mut resolved = Vec::with_capacity(changes.len());
    for change in changes {
        let (key, items, is_append) = match change {
            KeyChange::Change(change) => {
                resolved.push(change);
                continue;
            }
            KeyChange::List { key, items, is_append } => (key, items, is_append),
        };
        let operation = if is_append { "APPEND" } else { "SUBTRACT" };
        let current = match resource_type {
            RESOURCE_TOPIC => topic_list_value(kafka, name, &key)?,
            RESOURCE_CLIENT_METRICS => client_metrics_list_value(kafka, name, &key),
            RESOURCE_BROKER => super::topic_configs::broker_entries(kafka)
                .into_iter()
                .find(|entry| entry.name == key && entry.config_type == TYPE_LIST)
                .map(|entry| entry.value),
            _ => None,
        };
        let Some(current) = current else {
            return Err((
                ResponseError::InvalidConfig.code(),
                Some(format!(
                    "{operation} is not allowed for {key}: it is not a list (the list keys are a topic's \
                     cleanup.policy and *.replication.throttled.replicas, the brokers' log.cleanup.policy, and a \
                     client metrics subscription's metrics and match); use SET or DELETE"
                )),
            ));
        };
        resolved.push(ConfigChange::set(key, list_changed(&current, &items, is_append)));
    }
    Ok(resolved)
}

/// `current`'s items with `items` added (those not in it yet) or removed, comma-separated, order kept.
fn list_changed(current: &str, items: &str, is_append: bool) -> String {
    let split = |list: &str| -> Vec<String> {
        list.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
    };
    let (mut list, named) = (split(current), split(items));
    if is_append {
        for item in named {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    } else {
        list.retain(|item| !named.contains(item));
    }
    list.join(",")
}

/// The value topic `name` runs with for list key `key`; `None` for a key that is not a list (or not a key).
fn topic_list_value(kafka: &KafkaContext, name: &str, key: &str) -> Result<Option<String>, Outcome> {
    let entries = super::describe_configs::topic_config_entries(kafka, name).map_err(|err| {
        let (error, message) = super::topics_admin::admin_error(&err);
        (error.code(), Some(message))
    })?;
    Ok(entries.into_iter().find(|entry| entry.name == key && entry.config_type == TYPE_LIST).map(|entry| entry.value))
}

/// The value client metrics subscription `name` runs with for list key `key`.
fn client_metrics_list_value(kafka: &KafkaContext, name: &str, key: &str) -> Option<String> {
    let key = crate::client_telemetry::subscriptions::SubscriptionKey::parse(key).filter(|key| key.is_list())?;
    let (keys, _) = kafka.node.client_telemetry.subscription_keys(name);
    Some(keys.get(&key).cloned().unwrap_or_else(|| key.default_value()))
}

/// The changes less those that keep a fixed config at its one value (`topic_configs::FIXED`); another value is
/// INVALID_CONFIG for the resource, saying why.
fn without_fixed_configs(changes: Vec<ConfigChange>) -> Result<Vec<ConfigChange>, Outcome> {
    let mut kept = Vec::with_capacity(changes.len());
    for change in changes {
        match super::topic_configs::is_fixed_config_kept(&change.key, change.value.as_deref()) {
            Ok(true) => {}
            Ok(false) => kept.push(change),
            Err(why) => return Err((ResponseError::InvalidConfig.code(), Some(why))),
        }
    }
    Ok(kept)
}

fn invalid_request(message: String) -> Outcome {
    (ResponseError::InvalidRequest.code(), Some(message))
}

/// One resource of either request: its type, its name, and its changes or why they were refused as read.
struct Asked<'a> {
    resource_type: i8,
    name: &'a StrBytes,
    changes: Result<Vec<ConfigChange>, Outcome>,
    /// IncrementalAlterConfigs (AlterConfigs replaces a topic's whole set).
    is_incremental: bool,
}

/// Authorization first, as in Kafka, so a principal without ALTER_CONFIGS learns nothing of its changes' faults.
async fn alter(kafka: &KafkaContext, asked: Asked<'_>, is_validate_only: bool, principal: &Principal) -> Outcome {
    let Asked { resource_type, name, changes, is_incremental } = asked;
    let acl_resource = match resource_type {
        RESOURCE_BROKER | RESOURCE_CLIENT_METRICS => Resource::cluster(),
        RESOURCE_GROUP => Resource::group(name),
        _ => Resource::topic(name),
    };
    if let Err(denied) = kafka.node.authorize(principal, Operation::AlterConfigs, &acl_resource) {
        return (super::error::error_code(&denied), Some(denied.to_string()));
    }
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_GROUP if !is_incremental => {
            return invalid_request(
                "a group's configs are altered with IncrementalAlterConfigs, as in Kafka (AlterConfigs serves topics)"
                    .to_owned(),
            )
        }
        RESOURCE_GROUP => return alter_group(kafka, name.as_str(), changes, is_validate_only).await,
        RESOURCE_CLIENT_METRICS if !is_incremental => {
            return invalid_request(
                "a client metrics subscription is altered with IncrementalAlterConfigs, as in Kafka (AlterConfigs \
                 serves topics)"
                    .to_owned(),
            )
        }
        RESOURCE_CLIENT_METRICS => return alter_client_metrics(kafka, name.as_str(), changes, is_validate_only).await,
        RESOURCE_BROKER => {
            return match changes {
                Ok(changes) => super::broker_configs::alter(kafka, name.as_str(), changes, is_validate_only).await,
                Err(refused) => refused,
            }
        }
        other => {
            return invalid_request(format!(
                "resource type {other} cannot be altered: rill alters topics (2), client metrics subscriptions (16) \
                 and groups (32)"
            ))
        }
    }
    let changes = match changes.and_then(without_fixed_configs) {
        Ok(changes) => changes,
        Err(refused) => return refused,
    };
    match crate::topic_config::alter(&kafka.node, name.as_str(), &changes, is_validate_only).await {
        Ok(_) => (0, None),
        Err(err) => (super::error::error_code(&err), Some(err.to_string())),
    }
}

/// A group's configs (`group_config.rs`): INVALID_CONFIG for a key or value refused, saying why.
async fn alter_group(
    kafka: &KafkaContext,
    group: &str,
    changes: Result<Vec<ConfigChange>, Outcome>,
    is_validate_only: bool,
) -> Outcome {
    if group.is_empty() {
        return invalid_request("the group's name is empty: a group config names its group".to_owned());
    }
    let changes: Vec<(String, Option<String>)> = match changes {
        Ok(changes) => changes.into_iter().map(|change| (change.key, change.value)).collect(),
        Err(refused) => return refused,
    };
    let configs = std::sync::Arc::clone(&kafka.node.group_configs);
    let group = group.to_owned();
    let altered = tokio::task::spawn_blocking(move || configs.alter(&group, &changes, is_validate_only)).await;
    match altered {
        Ok(Ok(_)) => (0, None),
        Ok(Err(crate::group_config::AlterConfigError::Refused(why))) => {
            (ResponseError::InvalidConfig.code(), Some(why.to_string()))
        }
        Ok(Err(crate::group_config::AlterConfigError::Store(err))) => {
            (super::error::error_code(&err), Some(err.to_string()))
        }
        Err(join) => (ResponseError::UnknownServerError.code(), Some(format!("the alter did not finish: {join}"))),
    }
}

/// A client metrics subscription's keys (`client_telemetry/subscriptions.rs`): INVALID_CONFIG for a name, key or
/// value refused, saying why.
async fn alter_client_metrics(
    kafka: &KafkaContext,
    name: &str,
    changes: Result<Vec<ConfigChange>, Outcome>,
    is_validate_only: bool,
) -> Outcome {
    use crate::client_telemetry::store::AlterSubscriptionError;
    use crate::client_telemetry::AlterRefusal;
    let changes: Vec<(String, Option<String>)> = match changes {
        Ok(changes) => changes.into_iter().map(|change| (change.key, change.value)).collect(),
        Err(refused) => return refused,
    };
    let telemetry = std::sync::Arc::clone(&kafka.node.client_telemetry);
    let name = name.to_owned();
    let altered =
        tokio::task::spawn_blocking(move || telemetry.alter_subscription(&name, &changes, is_validate_only)).await;
    match altered {
        Ok(Ok(())) => (0, None),
        Ok(Err(refused @ (AlterRefusal::NodeSetting(_) | AlterRefusal::Store(AlterSubscriptionError::Refused(_))))) => {
            (ResponseError::InvalidConfig.code(), Some(refused.to_string()))
        }
        Ok(Err(AlterRefusal::Store(AlterSubscriptionError::Store(err)))) => {
            (super::error::error_code(&err), Some(err.to_string()))
        }
        Err(join) => (ResponseError::UnknownServerError.code(), Some(format!("the alter did not finish: {join}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_operations_are_read_as_asked_and_unknown_operations_are_invalid_requests() {
        let value = StrBytes::from_static_str("x");
        assert_eq!(
            incremental_change("retention.ms", OP_SET, Some(&value)),
            Ok(KeyChange::Change(ConfigChange::set("retention.ms", "x")))
        );
        assert_eq!(
            incremental_change("retention.ms", OP_DELETE, None),
            Ok(KeyChange::Change(ConfigChange::delete("retention.ms")))
        );
        assert_eq!(
            incremental_change("cleanup.policy", OP_SUBTRACT, Some(&value)),
            Ok(KeyChange::List { key: "cleanup.policy".into(), items: "x".into(), is_append: false })
        );
        assert_eq!(incremental_change("x", 9, None).unwrap_err().0, ResponseError::InvalidRequest.code());
        assert_eq!(incremental_change("x", OP_SET, None).unwrap_err().0, ResponseError::InvalidRequest.code());
        let (code, message) = incremental_change("cleanup.policy", OP_APPEND, None).unwrap_err();
        assert_eq!(
            (code, message.as_deref()),
            (ResponseError::InvalidRequest.code(), Some("APPEND of cleanup.policy has no value"))
        );
    }

    #[test]
    fn append_adds_what_is_missing_and_subtract_removes_what_is_named_in_order() {
        assert_eq!(list_changed("delete", "compact", true), "delete,compact");
        assert_eq!(list_changed("delete,compact", "compact, delete", true), "delete,compact");
        assert_eq!(list_changed("", "a.,b.", true), "a.,b.");
        assert_eq!(list_changed("compact,delete", "delete", false), "compact");
        assert_eq!(list_changed("a., b.", "c.", false), "a.,b.");
        assert_eq!(list_changed("delete", "delete", false), "");
    }
}
