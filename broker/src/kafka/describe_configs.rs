//! DescribeConfigs (v1–v4) for topics (resource type 2: the topic's effective settings under Kafka's names)
//! and this broker (type 4, named by its node id or ""; its settings under Kafka's broker names, and the
//! cluster's replication throttle as `*.replication.throttled.rate`, which with Kafka's log-dir throttle are
//! not read-only on a cluster: `broker_configs.rs`), and groups (type 32: every `share.*` and `consumer.*` group
//! config, the group's own value as GROUP_CONFIG, else the broker's as DEFAULT_CONFIG), and client metrics
//! subscriptions (type 16: `metrics`, `interval.ms` and `match`, each set one as CLIENT_METRICS_CONFIG, else Kafka's
//! default as DEFAULT_CONFIG; a subscription of the node's own settings as STATIC_BROKER_CONFIG, read-only; a name
//! no subscription has gets the defaults, as on Kafka). Asked-for keys filter the answer; a key rill does not have
//! is left out, as Kafka does. Other resource types get INVALID_REQUEST, naming the four that are served.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use super::topic_configs::{
    broker_entries, text, topic_entries, ConfigEntry, SOURCE_DEFAULT, SOURCE_STATIC_BROKER, TYPE_BOOLEAN, TYPE_INT,
    TYPE_LIST, TYPE_STRING,
};
use super::topics_admin::admin_error;
use super::KafkaContext;
use crate::client_telemetry::SubscriptionSource;
use crate::group_config::GroupConfigType;

use super::list_config_resources::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP, RESOURCE_TOPIC};
/// Kafka's CLIENT_METRICS_CONFIG config source: a subscription's own setting.
const SOURCE_CLIENT_METRICS: i8 = 7;
/// Kafka's GROUP_CONFIG config source: a group's own setting.
const SOURCE_GROUP: i8 = 8;

pub fn answer(
    kafka: &KafkaContext,
    request: &DescribeConfigsRequest,
    principal: &crate::auth::Principal,
) -> DescribeConfigsResponse {
    let results = request.resources.iter().map(|resource| described(kafka, resource, principal)).collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn described(
    kafka: &KafkaContext,
    resource: &DescribeConfigsResource,
    principal: &crate::auth::Principal,
) -> DescribeConfigsResult {
    use crate::auth::acl::{Operation, Resource};
    let name = resource.resource_name.as_str();
    let answer = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let refused = |error: ResponseError, message: String| {
        answer.clone().with_error_code(error.code()).with_error_message(Some(text(message)))
    };
    // Kafka: DESCRIBE_CONFIGS on the topic or the group, or on the cluster for a broker's configs.
    let acl_resource = match resource.resource_type {
        RESOURCE_TOPIC => Resource::topic(name),
        RESOURCE_GROUP => Resource::group(name),
        _ => Resource::cluster(),
    };
    if let Err(denied) = kafka.node.authorize(principal, Operation::DescribeConfigs, &acl_resource) {
        let code = super::error::error_code(&denied);
        let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
        return refused(error, denied.to_string());
    }
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match topic_config_entries(kafka, name) {
            Ok(entries) => entries,
            Err(err) => {
                let (error, message) = admin_error(&err);
                return refused(error, message);
            }
        },
        RESOURCE_BROKER if name.is_empty() || name == kafka.node_id.to_string() => broker_entries(kafka),
        RESOURCE_BROKER => {
            return refused(
                ResponseError::InvalidRequest,
                format!("broker {name:?} is not this node ({}); ask it for its own configs", kafka.node_id),
            )
        }
        RESOURCE_GROUP if name.is_empty() => {
            return refused(ResponseError::InvalidRequest, "the group's name is empty".to_owned())
        }
        RESOURCE_GROUP => group_entries(kafka, name),
        RESOURCE_CLIENT_METRICS if name.is_empty() => {
            return refused(ResponseError::InvalidRequest, "the client metrics subscription's name is empty".to_owned())
        }
        RESOURCE_CLIENT_METRICS => client_metrics_entries(kafka, name),
        other => {
            return refused(
                ResponseError::InvalidRequest,
                format!(
                    "resource type {other} is not described: rill serves topics (2), brokers (4), client metrics \
                     subscriptions (16) and groups (32)"
                ),
            )
        }
    };
    let wanted = |entry: &ConfigEntry| {
        resource.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|key| key.as_str() == entry.name))
    };
    let configs = entries
        .into_iter()
        .filter(wanted)
        .map(|entry| {
            DescribeConfigsResourceResult::default()
                .with_name(text(entry.name))
                .with_value(Some(text(entry.value)))
                // A topic key rill cannot alter (message.timestamp.type) is read-only, so that admin clients
                // that offer only the alterable keys (kafka-python's `config_filter='dynamic'`) leave it out.
                .with_read_only(match resource.resource_type {
                    RESOURCE_BROKER => !super::broker_configs::is_dynamic(entry.name, kafka.controller.is_some()),
                    RESOURCE_GROUP => false,
                    RESOURCE_CLIENT_METRICS => entry.source == SOURCE_STATIC_BROKER,
                    _ => crate::topic_config::ConfigKey::parse(entry.name).is_none(),
                })
                .with_config_source(entry.source)
                .with_config_type(entry.config_type)
        })
        .collect();
    answer.with_configs(configs)
}

/// Every group config key with the value `group` runs with.
fn group_entries(kafka: &KafkaContext, group: &str) -> Vec<ConfigEntry> {
    kafka
        .node
        .group_configs
        .entries(group)
        .into_iter()
        .map(|entry| ConfigEntry {
            name: entry.key.kafka_name(),
            value: entry.value,
            source: if entry.is_group_setting { SOURCE_GROUP } else { SOURCE_DEFAULT },
            config_type: match entry.key.value_type() {
                GroupConfigType::Boolean => TYPE_BOOLEAN,
                GroupConfigType::Int => TYPE_INT,
                GroupConfigType::String => TYPE_STRING,
            },
        })
        .collect()
}

/// Every key of client metrics subscription `name`, with its value.
fn client_metrics_entries(kafka: &KafkaContext, name: &str) -> Vec<ConfigEntry> {
    let (keys, source) = kafka.node.client_telemetry.subscription_keys(name);
    crate::client_telemetry::subscriptions::entries(&keys)
        .into_iter()
        .map(|entry| ConfigEntry {
            name: entry.key.kafka_name(),
            value: entry.value,
            source: match (entry.is_set, source) {
                (false, _) => SOURCE_DEFAULT,
                (true, SubscriptionSource::NodeSettings) => SOURCE_STATIC_BROKER,
                (true, SubscriptionSource::ConfigResource) => SOURCE_CLIENT_METRICS,
            },
            config_type: if entry.key.is_list() { TYPE_LIST } else { TYPE_INT },
        })
        .collect()
}

/// Every key of topic `name` with the value it runs with (`topic_config::current_state`).
pub(super) fn topic_config_entries(kafka: &KafkaContext, name: &str) -> crate::error::Result<Vec<ConfigEntry>> {
    let (state, replication_factor) = crate::topic_config::current_state(&kafka.node, name)?;
    Ok(topic_entries(&state, replication_factor, &kafka.node.config, &crate::topic_defaults::current(&kafka.node)))
}
