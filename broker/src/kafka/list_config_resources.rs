//! ListConfigResources (v0–v1): the config resources DescribeConfigs can describe, by type. v0 is KIP-714's
//! ListClientMetricsResources and lists the client metrics subscriptions (the node's own and those set through the
//! Kafka API); v1 (KIP-1142) lists the types asked for, or every type rill serves when none is: topics (2),
//! brokers (4: every alive node of a cluster, each describing its own), client metrics subscriptions (16) and
//! groups (32: those this node knows and those with a config of their own). A type rill does not serve (broker
//! loggers, 8) fails the whole request with UNSUPPORTED_VERSION, as Kafka's does. Needs DESCRIBE_CONFIGS on the
//! cluster (CLUSTER_AUTHORIZATION_FAILED), as on Kafka.

use std::collections::BTreeSet;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::ResponseError;

use super::metadata::{cluster_brokers, this_broker};
use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_CLIENT_METRICS: i8 = 16;
pub const RESOURCE_GROUP: i8 = 32;
/// What v1 lists when asked for no type, in this order.
const SERVED: [i8; 4] = [RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP];

pub fn answer(
    kafka: &KafkaContext,
    request: &ListConfigResourcesRequest,
    version: i16,
    principal: &Principal,
) -> ListConfigResourcesResponse {
    let refused = |error: ResponseError| ListConfigResourcesResponse::default().with_error_code(error.code());
    if let Err(denied) = kafka.node.authorize(principal, Operation::DescribeConfigs, &Resource::cluster()) {
        return ListConfigResourcesResponse::default().with_error_code(super::error::error_code(&denied));
    }
    let types: Vec<i8> = match version {
        0 => vec![RESOURCE_CLIENT_METRICS],
        _ if request.resource_types.is_empty() => SERVED.to_vec(),
        _ => request.resource_types.iter().copied().collect::<BTreeSet<i8>>().into_iter().collect(),
    };
    if types.iter().any(|kind| !SERVED.contains(kind)) {
        return refused(ResponseError::UnsupportedVersion);
    }
    let mut listed = Vec::new();
    for kind in types {
        for name in names_of(kafka, kind) {
            // v0 has no type field: its one type is implied (and not encoded).
            listed.push(ConfigResource::default().with_resource_name(text(name)).with_resource_type(kind));
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(listed)
}

/// The names of every resource of type `kind`, sorted.
fn names_of(kafka: &KafkaContext, kind: i8) -> BTreeSet<String> {
    let node = &kafka.node;
    match kind {
        RESOURCE_TOPIC => match &node.replication {
            Some(replication) => replication.metadata().topics.keys().cloned().collect(),
            None => node.registry.list().iter().map(|topic| topic.name.to_string()).collect(),
        },
        RESOURCE_BROKER => {
            let brokers = match &node.replication {
                Some(replication) => cluster_brokers(&replication.metadata()),
                None => vec![this_broker(kafka)],
            };
            brokers.into_iter().map(|broker| broker.id.0.to_string()).collect()
        }
        RESOURCE_CLIENT_METRICS => node.client_telemetry.subscriptions().into_iter().map(|(s, _)| s.name).collect(),
        RESOURCE_GROUP => {
            let known = crate::service::group_admin::list(node).groups.into_iter().map(|group| group.group);
            known.chain(node.group_configs.configured()).collect()
        }
        _ => BTreeSet::new(),
    }
}
