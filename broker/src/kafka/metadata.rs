//! Metadata: on a single node, this node as the one broker, and each topic asked for with its partitions, all
//! led by this node. On a cluster (`cluster_answer`), every alive node as a broker with its cluster address, and
//! per partition the leader, leader epoch, replicas and ISR the controller's metadata holds, so Kafka clients
//! send produces and fetches to leaders. An unknown topic is answered with UNKNOWN_TOPIC_OR_PARTITION, unless the
//! node creates topics automatically (`auto_create_topics`, Kafka's `auto.create.topics.enable`; off by default)
//! and the request allows it (`allow_auto_topic_creation`, from v4; always below, as Kafka): then
//! `answer_creating` creates each unknown topic asked for by name that the principal may create (else
//! TOPIC_AUTHORIZATION_FAILED, as Kafka) before it answers, and a topic created but not yet known here is
//! LEADER_NOT_AVAILABLE, which clients retry. From v10 each topic carries its id (`topic_id.rs`), and a topic
//! may be asked for by id alone (v12, as KIP-848 consumers do to name the topics of their assignment): an
//! unknown id is UNKNOWN_TOPIC_ID. A cluster node that has not caught up with the metadata since it started
//! answers a topic it does not know with LEADER_NOT_AVAILABLE instead, which clients retry (a Kafka broker does
//! not serve clients at all until it has caught up).

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::cluster::metadata::ClusterMetadata;
use crate::registry::Topic;
use crate::topic_id::TopicId;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// The answer to a Metadata request, with the topics it names created first when the node creates topics
/// automatically and the request allows it (the module's doc).
pub async fn answer_creating(
    kafka: &KafkaContext,
    request: &MetadataRequest,
    principal: &Principal,
    client_id: &str,
) -> MetadataResponse {
    let created = create_missing(kafka, request, principal, client_id).await;
    let mut response = answer(kafka, request, principal);
    if created.is_empty() {
        return response;
    }
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for topic in response.topics.iter_mut().filter(|topic| topic.error_code == unknown) {
        let outcome = topic.name.as_ref().and_then(|name| created.get(name.0.as_str()));
        if let Some(outcome) = outcome {
            // Created, or found made by another request: known to the cluster, not yet here.
            topic.error_code = outcome.err().unwrap_or(ResponseError::LeaderNotAvailable.code());
        }
    }
    response
}

/// Creates each topic `request` names that does not exist, when the node and the request allow it: by name, the
/// outcome of each creation tried (its Kafka error code if refused). The partitions created count against the
/// client's controller mutation quota as Kafka's permissive mode counts them (KIP-599: Kafka's Metadata creates
/// through a permissive quota): never refused for it, but a CreateTopics after is throttled for them.
async fn create_missing(
    kafka: &KafkaContext,
    request: &MetadataRequest,
    principal: &Principal,
    client_id: &str,
) -> std::collections::BTreeMap<String, Result<(), i16>> {
    let mut created = std::collections::BTreeMap::new();
    let node = &kafka.node;
    let (true, true, Some(asked)) =
        (node.config.auto_create_topics, request.allow_auto_topic_creation, &request.topics)
    else {
        return created;
    };
    let mut mutations = super::mutation_quota::MutationQuota::of(kafka, principal, client_id, false);
    for name in asked.iter().filter_map(|asked| asked.name.as_ref()).map(|name| name.0.as_str()) {
        if created.contains_key(name) || node.knows_topic(name) || !may_describe(kafka, principal, name) {
            continue;
        }
        let outcome = node.create_topic_by_default(principal, name).await;
        if let Ok(partitions) = outcome {
            mutations.record(partitions);
        }
        let outcome = outcome.map(drop).map_err(|err| match err {
            crate::error::BrokerError::Denied(denied) => super::error::denied_code(denied.resource_type),
            // A cluster still forming, a controller being elected, a full disk: the client asks again.
            err if err.code() == tonic::Code::Unavailable => ResponseError::LeaderNotAvailable.code(),
            err => {
                let (error, message) = super::topics_admin::admin_error(&err);
                tracing::debug!(topic = name, error = %message, "topic not created automatically");
                error.code()
            }
        });
        created.insert(name.to_owned(), outcome);
    }
    created
}

pub fn answer(kafka: &KafkaContext, request: &MetadataRequest, principal: &Principal) -> MetadataResponse {
    if let Some(replication) = &kafka.node.replication {
        return cluster_answer(kafka, replication, request, principal);
    }
    let registry = &kafka.node.registry;
    let may_describe = |name: &str| may_describe(kafka, principal, name);
    let topics = match &request.topics {
        // Null: every topic the principal may describe, as Kafka lists (the broker's own `__` logs are not
        // topics in the registry).
        None => registry
            .list()
            .iter()
            .filter(|topic| may_describe(&topic.name.to_string()))
            .map(|t| described(kafka, t))
            .collect(),
        Some(asked) => asked
            .iter()
            .map(|asked| {
                let found = match asked_id(asked) {
                    Some(id) => registry.topic_by_id(id),
                    None => registry.topic(asked_name(asked)).ok(),
                };
                // Kafka checks before it looks: a topic asked for by name is TOPIC_AUTHORIZATION_FAILED whether
                // or not it exists, so a denied principal cannot probe which names exist.
                let name = found.as_ref().map_or_else(|| asked_name(asked).to_owned(), |t| t.name.to_string());
                if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::topic(&name)) {
                    return unknown(asked).with_error_code(code);
                }
                match found {
                    Some(topic) => described(kafka, &topic),
                    None => unknown(asked),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![this_broker(kafka).into()])
        .with_cluster_id(Some(StrBytes::from_string(cluster_id(None))))
        .with_controller_id(BrokerId(kafka.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// Whether `principal` may see topic `name` in a listing: DESCRIBE on it, as Kafka lists.
fn may_describe(kafka: &KafkaContext, principal: &Principal, name: &str) -> bool {
    kafka.node.authorizer.is_allowed(principal, Operation::Describe, &Resource::topic(name))
}

fn described(kafka: &KafkaContext, topic: &Topic) -> MetadataResponseTopic {
    let leader = BrokerId(kafka.node_id);
    let partitions = (0..topic.partition_count())
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index as i32)
                .with_leader_id(leader)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.to_string()))))
        .with_topic_id(topic.id.as_uuid())
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

/// A broker as Metadata and DescribeCluster describe it.
pub(super) struct Broker {
    pub id: BrokerId,
    pub host: String,
    pub port: i32,
    /// Its `--rack` (Kafka's `broker.rack`): consumers with a `client.rack` compare theirs with it.
    pub rack: Option<String>,
}

impl From<Broker> for MetadataResponseBroker {
    fn from(broker: Broker) -> Self {
        MetadataResponseBroker::default()
            .with_node_id(broker.id)
            .with_host(StrBytes::from_string(broker.host))
            .with_port(broker.port)
            .with_rack(broker.rack.map(StrBytes::from_string))
    }
}

/// A single node as the one broker: itself at its advertised address.
pub(super) fn this_broker(kafka: &KafkaContext) -> Broker {
    Broker {
        id: BrokerId(kafka.node_id),
        host: kafka.advertised_host.clone(),
        port: i32::from(kafka.advertised_port),
        rack: kafka.node.config.rack.clone(),
    }
}

/// A cluster's brokers as clients see them (Metadata, DescribeCluster): every alive node at its cluster address,
/// with its rack.
pub(super) fn cluster_brokers(metadata: &ClusterMetadata) -> Vec<Broker> {
    metadata
        .alive_nodes()
        .into_iter()
        .filter_map(|id| {
            let (host, port) = crate::config::parse_advertise(metadata.address_of(id)?).ok()?;
            let rack = metadata.rack_of(id).map(str::to_owned);
            Some(Broker { id: BrokerId(i32::try_from(id).ok()?), host, port: i32::from(port), rack })
        })
        .collect()
}

/// The cluster id Kafka clients are told: the cluster's own, or "rill" for a single node (or a cluster that has
/// not recorded one).
pub(super) fn cluster_id(metadata: Option<&ClusterMetadata>) -> String {
    metadata.and_then(|m| m.cluster_id.clone()).unwrap_or_else(|| "rill".into())
}

/// The controller Kafka clients are told of: the controller quorum's leader, -1 while none is elected.
pub(super) fn controller_id(replication: &crate::replication::Replication) -> BrokerId {
    BrokerId(replication.controller_leader().and_then(|id| i32::try_from(id).ok()).unwrap_or(-1))
}

/// A cluster node's answer, authorized as a single node's: a listing holds the topics the principal may describe,
/// and a topic asked for that it may not is TOPIC_AUTHORIZATION_FAILED whether or not it exists.
fn cluster_answer(
    kafka: &KafkaContext,
    replication: &crate::replication::Replication,
    request: &MetadataRequest,
    principal: &Principal,
) -> MetadataResponse {
    // Whether this node has caught up, read before the metadata: read after, an apply landing between the two
    // would make a topic the metadata read lacks look deleted rather than not known yet.
    let has_caught_up = replication.has_caught_up();
    let metadata = replication.metadata();
    let brokers = cluster_brokers(&metadata).into_iter().map(Into::into).collect();
    let placed_topic = |name: &str, placed: &crate::cluster::metadata::TopicPlacement| {
        let broker = |id: &u64| BrokerId(i32::try_from(*id).unwrap_or(-1));
        let partitions = placed
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let answer = MetadataResponsePartition::default()
                    .with_partition_index(index as i32)
                    .with_leader_id(p.leader.as_ref().map_or(BrokerId(-1), broker))
                    .with_leader_epoch(i32::try_from(p.leader_epoch).unwrap_or(i32::MAX))
                    .with_replica_nodes(p.replicas.iter().map(broker).collect())
                    .with_isr_nodes(p.isr.iter().map(broker).collect());
                match p.leader {
                    Some(_) => answer,
                    None => answer.with_error_code(ResponseError::LeaderNotAvailable.code()),
                }
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
            .with_topic_id(placed.topic_id(name).as_uuid())
            .with_is_internal(name == crate::offsets::OFFSETS_TOPIC)
            .with_partitions(partitions)
            .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
    };
    let topics = match &request.topics {
        None => metadata
            .topics
            .iter()
            .filter(|(name, _)| may_describe(kafka, principal, name))
            .map(|(name, placed)| placed_topic(name, placed))
            .collect(),
        Some(asked) => asked
            .iter()
            .map(|asked| {
                let found = match asked_id(asked) {
                    Some(id) => metadata.topics.iter().find(|(name, placed)| placed.topic_id(name) == id),
                    None => metadata.topics.get_key_value(asked_name(asked)),
                };
                let name = found.map_or_else(|| asked_name(asked).to_owned(), |(name, _)| name.clone());
                if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::topic(&name)) {
                    return unknown(asked).with_error_code(code);
                }
                match found {
                    Some((name, placed)) => placed_topic(name, placed),
                    // A node just restarted may not know the topic yet: retriable, so clients ask again.
                    None if !has_caught_up => unknown(asked).with_error_code(ResponseError::LeaderNotAvailable.code()),
                    None => unknown(asked),
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(cluster_id(Some(&metadata)))))
        .with_controller_id(controller_id(replication))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

fn asked_name(asked: &MetadataRequestTopic) -> &str {
    asked.name.as_ref().map(|name| name.0.as_str()).unwrap_or_default()
}

/// The id a topic is asked for by: one that is set, on a topic asked for without a name (v12). With a name the
/// name decides, as Kafka's broker does.
fn asked_id(asked: &MetadataRequestTopic) -> Option<TopicId> {
    if asked_name(asked).is_empty() {
        TopicId::from_uuid(asked.topic_id)
    } else {
        None
    }
}

fn unknown(asked: &MetadataRequestTopic) -> MetadataResponseTopic {
    let code = match asked_id(asked) {
        Some(_) => ResponseError::UnknownTopicId.code(),
        None => ResponseError::UnknownTopicOrPartition.code(),
    };
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(asked.name.clone())
        .with_topic_id(asked.topic_id)
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
