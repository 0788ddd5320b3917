//! IncrementalAlterConfigs (v0–v1) and AlterConfigs (v0–v2) for topics: the same change as `rill topic alter`
//! (`topic_config.rs`), one result per resource. IncrementalAlterConfigs SETs and DELETEs keys and leaves the
//! others; APPEND and SUBTRACT are refused per key with INVALID_CONFIG, as Kafka refuses them for a key that is
//! not a list (rill's one list key, `cleanup.policy`, has a single allowed value). AlterConfigs replaces the
//! topic's whole set: the keys it does not name go back to the broker's defaults, as in Kafka.
//!
//! A group (type 32, Kafka's group configs) is altered by IncrementalAlterConfigs alone, as in Kafka: its
//! `share.*` and `consumer.*` keys (`group_config.rs`), on a single node or a cluster. So is a client metrics
//! subscription (type 16, KIP-714): setting a key of a new name creates it, deleting its last key deletes it
//! (`client_telemetry/subscriptions.rs`); one of the node's own settings is INVALID_CONFIG.
//!
//! Each topic needs ALTER_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), each group on it
//! (GROUP_AUTHORIZATION_FAILED); a client metrics subscription needs it on the cluster, as on Kafka; a broker
//! resource (type 4) needs it on the cluster (CLUSTER_AUTHORIZATION_FAILED)
//! and is then refused with INVALID_REQUEST: rill's broker settings are static, and the replication throttle has
//! its own call (`rill cluster throttle`). Other resource types are INVALID_REQUEST. With `validate_only`,
//! everything is checked and nothing changes.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as FullResult;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::error::Outcome;
use super::topic_configs::text;
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
            .collect::<Result<Vec<_>, Outcome>>();
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
        let changes = configs.map(replace_all);
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

fn incremental_change(name: &str, operation: i8, value: Option<&StrBytes>) -> Result<ConfigChange, Outcome> {
    match (operation, value) {
        (OP_SET, Some(value)) => Ok(ConfigChange::set(name, value.as_str())),
        (OP_SET, None) => Err(invalid_request(format!("SET of {name} has no value"))),
        (OP_DELETE, _) => Ok(ConfigChange::delete(name)),
        (OP_APPEND | OP_SUBTRACT, _) => Err((
            ResponseError::InvalidConfig.code(),
            Some(format!(
                "{} is not allowed for {name}: each of rill's config keys holds one value; use SET or DELETE",
                if operation == OP_APPEND { "APPEND" } else { "SUBTRACT" }
            )),
        )),
        (other, _) => Err(invalid_request(format!(
            "unknown config operation {other} for {name}: use SET (0), DELETE (1), APPEND (2) or SUBTRACT (3)"
        ))),
    }
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
            return invalid_request(
                "broker configs are static in rill (set at start, see DescribeConfigs); the replication throttle is \
                 set with `rill cluster throttle`"
                    .to_owned(),
            )
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
    fn append_and_subtract_are_refused_per_key_and_unknown_operations_are_invalid_requests() {
        let value = StrBytes::from_static_str("x");
        assert_eq!(
            incremental_change("retention.ms", OP_SET, Some(&value)),
            Ok(ConfigChange::set("retention.ms", "x"))
        );
        assert_eq!(incremental_change("retention.ms", OP_DELETE, None), Ok(ConfigChange::delete("retention.ms")));
        let (code, message) = incremental_change("cleanup.policy", OP_APPEND, Some(&value)).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig.code());
        assert!(message.expect("a message").contains("cleanup.policy"));
        assert_eq!(incremental_change("x", 9, None).unwrap_err().0, ResponseError::InvalidRequest.code());
        assert_eq!(incremental_change("x", OP_SET, None).unwrap_err().0, ResponseError::InvalidRequest.code());
    }
}
