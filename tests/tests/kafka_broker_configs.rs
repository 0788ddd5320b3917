//! Kafka's dynamic broker configs (`broker/src/kafka/broker_configs.rs`): the replication throttle for replica
//! moves set and cleared through IncrementalAlterConfigs and AlterConfigs on a broker resource, as
//! `kafka-reassign-partitions.sh --throttle` and `kafka-configs.sh --entity-type brokers` do, on a cluster of one
//! (the real controller); the gRPC ClusterAdmin sees the same rate. Static keys, bad values, two different rates,
//! another node's name and a single node are refused with what is allowed. A topic's throttled-replica lists, which
//! the same tool sets beside the rates, are set, appended to and deleted in Kafka's form. The cluster's topic
//! defaults (`log.retention.ms`, ... on the default resource, `broker/src/topic_defaults.rs`) reach the topics that
//! do not set those keys, on a single node and on a cluster of one, and last a restart.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_protocol::v1::{self, cluster_admin_client::ClusterAdminClient};
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{cluster_of_one, TestBroker};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
/// Kafka's DYNAMIC_TOPIC_CONFIG source.
const TOPIC_SOURCE: i8 = 1;
const LEADER: &str = "leader.replication.throttled.rate";
const FOLLOWER: &str = "follower.replication.throttled.rate";
const LOG_DIRS: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
/// Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG and DEFAULT_CONFIG sources.
const DYNAMIC_DEFAULT: i8 = 3;
const DEFAULT: i8 = 5;
const NO_LIMIT: &str = "9223372036854775807";

/// One key's change: (key, operation, value).
type Change<'a> = (&'a str, i8, Option<&'a str>);

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// An IncrementalAlterConfigs of broker resource `name`.
fn incremental(name: &str, changes: &[Change], validate_only: bool) -> IncrementalAlterConfigsRequest {
    let configs = changes
        .iter()
        .map(|(key, operation, value)| {
            IncrementalConfig::default()
                .with_name(text(key))
                .with_config_operation(*operation)
                .with_value(value.map(text))
        })
        .collect();
    let resource =
        IncrementalResource::default().with_resource_type(BROKER).with_resource_name(text(name)).with_configs(configs);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(validate_only)
}

/// The one resource's (code, message).
async fn alter_incrementally(
    client: &mut KafkaClient,
    name: &str,
    changes: &[Change<'_>],
    validate_only: bool,
) -> (i16, String) {
    let request = incremental(name, changes, validate_only);
    let response: IncrementalAlterConfigsResponse = client.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    let result = &response.responses[0];
    (result.error_code, result.error_message.as_deref().unwrap_or_default().to_string())
}

async fn alter_fully(client: &mut KafkaClient, name: &str, configs: &[(&str, &str)]) -> (i16, String) {
    let configs = configs
        .iter()
        .map(|(key, value)| AlterableConfig::default().with_name(text(key)).with_value(Some(text(value))));
    let resource = AlterConfigsResource::default()
        .with_resource_type(BROKER)
        .with_resource_name(text(name))
        .with_configs(configs.collect());
    let request = AlterConfigsRequest::default().with_resources(vec![resource]);
    let response: AlterConfigsResponse = client.call(ApiKey::AlterConfigs, 2, &request).await;
    let result = &response.responses[0];
    (result.error_code, result.error_message.as_deref().unwrap_or_default().to_string())
}

/// One config as DescribeConfigs shows it: (key, value, source, read-only).
type Described = (String, String, i8, bool);

/// Configs `keys` of resource `name`, sorted by key; the resource's error code if it is refused.
async fn described(
    client: &mut KafkaClient,
    resource_type: i8,
    name: &str,
    keys: &[&str],
) -> Result<Vec<Described>, i16> {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_configuration_keys(Some(keys.iter().map(|key| text(key)).collect()));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request).await;
    let result = &response.results[0];
    if result.error_code != 0 {
        return Err(result.error_code);
    }
    let mut configs: Vec<Described> = result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_deref().unwrap_or_default().to_string();
            (c.name.to_string(), value, c.config_source, c.read_only)
        })
        .collect();
    configs.sort();
    Ok(configs)
}

/// The two throttle keys of broker `name`.
async fn throttle_configs(client: &mut KafkaClient, name: &str) -> Vec<Described> {
    described(client, BROKER, name, &[LEADER, FOLLOWER]).await.expect("described")
}

fn throttled(value: &str, source: i8, read_only: bool) -> Vec<Described> {
    vec![
        (FOLLOWER.to_owned(), value.to_owned(), source, read_only),
        (LEADER.to_owned(), value.to_owned(), source, read_only),
    ]
}

/// The throttle the gRPC ClusterAdmin describes.
async fn grpc_throttle(broker: &TestBroker) -> Option<u64> {
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = ClusterAdminClient::connect(format!("http://{addr}")).await.expect("connect");
    let described = admin.describe_cluster(v1::DescribeClusterRequest::default()).await.expect("described");
    described.into_inner().replication_throttle_bytes_per_sec
}

#[tokio::test]
async fn a_clusters_replication_throttle_is_set_and_cleared_as_kafkas_broker_configs() {
    let broker = cluster_of_one().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let ok = (0, String::new());
    assert_eq!(throttle_configs(&mut client, "").await, throttled(NO_LIMIT, DEFAULT, false), "dynamic keys");

    // As kafka-reassign-partitions.sh --throttle sends it: both names, on the broker by its id.
    let both = [(LEADER, SET, Some("1048576")), (FOLLOWER, SET, Some("1048576"))];
    assert_eq!(alter_incrementally(&mut client, "1", &both, true).await, ok, "validate_only");
    assert_eq!(grpc_throttle(&broker).await, None, "validate_only changes nothing");
    assert_eq!(alter_incrementally(&mut client, "1", &both, false).await, ok);
    assert_eq!(throttle_configs(&mut client, "1").await, throttled("1048576", DYNAMIC_DEFAULT, false));
    assert_eq!(grpc_throttle(&broker).await, Some(1 << 20));

    // One name, for the cluster's default: the one rate, under both names.
    assert_eq!(alter_incrementally(&mut client, "", &[(FOLLOWER, SET, Some("2048"))], false).await, ok);
    assert_eq!(throttle_configs(&mut client, "").await, throttled("2048", DYNAMIC_DEFAULT, false));

    // Refused, nothing changed.
    let invalid_config = ResponseError::InvalidConfig.code();
    let invalid_request = ResponseError::InvalidRequest.code();
    let refusals: [(&str, Vec<Change>, i16, &str); 9] = [
        (
            "1",
            vec![(LEADER, SET, Some("4096")), (FOLLOWER, DELETE, None)],
            invalid_config,
            "different replication throttles (4096 bytes/s and none)",
        ),
        ("1", vec![(LEADER, SET, Some("100"))], invalid_config, "the least allowed is 1024 bytes/s"),
        ("1", vec![(LEADER, SET, Some("fast"))], invalid_config, "whole number of bytes per second, not \"fast\""),
        ("1", vec![(LEADER, SET, Some("-1"))], invalid_config, "at least 0 bytes per second"),
        (
            "1",
            vec![("num.partitions", SET, Some("3"))],
            invalid_config,
            "num.partitions cannot be changed while the broker runs",
        ),
        ("1", vec![(LEADER, APPEND, Some("4096"))], invalid_config, "APPEND is not allowed"),
        ("1", vec![(LOG_DIRS, SET, Some("4096"))], invalid_config, "one log dir per node"),
        ("7", vec![(LEADER, SET, Some("4096"))], invalid_request, "broker 7 is not this node (1)"),
        ("one", vec![(LEADER, SET, Some("4096"))], invalid_request, "\"one\" is not a broker id"),
    ];
    for (name, changes, code, expected) in refusals {
        let (refused, message) = alter_incrementally(&mut client, name, &changes, false).await;
        assert_eq!(refused, code, "{changes:?}: {message}");
        assert!(message.contains(expected), "{changes:?}: {message}");
    }
    assert_eq!(grpc_throttle(&broker).await, Some(2048));

    // Kafka's no-limit value clears it; so does a DELETE of either name.
    assert_eq!(alter_incrementally(&mut client, "1", &[(LEADER, SET, Some(NO_LIMIT))], false).await, ok);
    assert_eq!(grpc_throttle(&broker).await, None);
    assert_eq!(alter_incrementally(&mut client, "1", &[(LEADER, SET, Some("65536"))], false).await, ok);
    assert_eq!(alter_incrementally(&mut client, "1", &[(LEADER, DELETE, None)], false).await, ok);
    assert_eq!(throttle_configs(&mut client, "1").await, throttled(NO_LIMIT, DEFAULT, false));
    // kafka-reassign-partitions.sh --verify's clean-up deletes Kafka's log-dir throttle with the two rates.
    assert_eq!(alter_incrementally(&mut client, "1", &[(FOLLOWER, SET, Some("65536"))], false).await, ok);
    let clean_up = [(LEADER, DELETE, None), (FOLLOWER, DELETE, None), (LOG_DIRS, DELETE, None)];
    assert_eq!(alter_incrementally(&mut client, "1", &clean_up, false).await, ok);
    assert_eq!(grpc_throttle(&broker).await, None);
    let log_dirs = described(&mut client, BROKER, "1", &[LOG_DIRS]).await.expect("described");
    assert_eq!(log_dirs, [(LOG_DIRS.to_owned(), NO_LIMIT.to_owned(), DEFAULT, false)]);

    // AlterConfigs replaces the set: a throttle key named sets it, none named clears it.
    assert_eq!(alter_fully(&mut client, "1", &[(FOLLOWER, "8192")]).await, ok);
    assert_eq!(grpc_throttle(&broker).await, Some(8192));
    assert_eq!(alter_fully(&mut client, "", &[]).await, ok);
    assert_eq!(grpc_throttle(&broker).await, None);
    let (refused, message) = alter_fully(&mut client, "1", &[("num.partitions", "3")]).await;
    assert_eq!(refused, invalid_config, "{message}");
}

#[tokio::test]
async fn a_single_node_has_no_throttle_to_set_and_shows_its_broker_configs_read_only() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    assert_eq!(throttle_configs(&mut client, "").await, throttled(NO_LIMIT, DEFAULT, true));
    let (refused, message) = alter_incrementally(&mut client, "0", &[(LEADER, SET, Some("1048576"))], false).await;
    assert_eq!(refused, ResponseError::InvalidRequest.code(), "{message}");
    assert!(message.contains("a single node replicates nothing"), "{message}");
    // kafka-reassign-partitions.sh's clean-up (a DELETE of both) finds nothing to clear: no error.
    let clean_up = [(LEADER, DELETE, None), (FOLLOWER, DELETE, None), (LOG_DIRS, DELETE, None)];
    let cleared = alter_incrementally(&mut client, "", &clean_up, false).await;
    assert_eq!(cleared, (0, String::new()));
}

const LEADER_LIST: &str = "leader.replication.throttled.replicas";
const FOLLOWER_LIST: &str = "follower.replication.throttled.replicas";

/// A topic's two throttled-replica lists.
async fn throttled_lists(client: &mut KafkaClient, topic: &str) -> Vec<Described> {
    described(client, TOPIC, topic, &[LEADER_LIST, FOLLOWER_LIST]).await.expect("described")
}

/// Kafka's `*.replication.throttled.replicas` topic configs, as `kafka-reassign-partitions.sh --throttle` sets
/// them: SET, APPEND and DELETE through IncrementalAlterConfigs, set at CreateTopics, described back in Kafka's
/// form; a value not in that form is INVALID_CONFIG naming it.
#[tokio::test]
async fn a_topics_throttled_replica_lists_are_set_appended_and_deleted_in_kafkas_form() {
    let broker = cluster_of_one().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (leader_key, follower_key) = (LEADER_LIST, FOLLOWER_LIST);
    let lists = |leader: &str, leader_source: i8, follower: &str, follower_source: i8| {
        vec![
            (follower_key.to_owned(), follower.to_owned(), follower_source, false),
            (leader_key.to_owned(), leader.to_owned(), leader_source, false),
        ]
    };
    assert_eq!(throttled_lists(&mut client, "orders").await, lists("", DEFAULT, "", DEFAULT));

    let alter = |changes: Vec<IncrementalConfig>| {
        let resource = IncrementalResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(text("orders"))
            .with_configs(changes);
        IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
    };
    let change = |key: &str, operation: i8, value: Option<&str>| {
        IncrementalConfig::default().with_name(text(key)).with_config_operation(operation).with_value(value.map(text))
    };
    let answer = |response: IncrementalAlterConfigsResponse| {
        let result = &response.responses[0];
        (result.error_code, result.error_message.as_deref().unwrap_or_default().to_string())
    };
    let set = alter(vec![change(leader_key, SET, Some("0:1, 1:1")), change(follower_key, SET, Some("*"))]);
    assert_eq!(answer(client.call(ApiKey::IncrementalAlterConfigs, 1, &set).await), (0, String::new()));
    assert_eq!(throttled_lists(&mut client, "orders").await, lists("0:1,1:1", TOPIC_SOURCE, "*", TOPIC_SOURCE));
    let appended = alter(vec![change(leader_key, APPEND, Some("0:2"))]);
    assert_eq!(answer(client.call(ApiKey::IncrementalAlterConfigs, 1, &appended).await).0, 0);
    assert_eq!(throttled_lists(&mut client, "orders").await, lists("0:1,1:1,0:2", TOPIC_SOURCE, "*", TOPIC_SOURCE));

    let bad = alter(vec![change(follower_key, SET, Some("0-1"))]);
    let (code, message) = answer(client.call(ApiKey::IncrementalAlterConfigs, 1, &bad).await);
    assert_eq!(code, ResponseError::InvalidConfig.code(), "{message}");
    assert!(message.contains("PARTITION:BROKER pairs"), "{message}");

    let deleted = alter(vec![change(leader_key, DELETE, None), change(follower_key, DELETE, None)]);
    assert_eq!(answer(client.call(ApiKey::IncrementalAlterConfigs, 1, &deleted).await).0, 0);
    assert_eq!(throttled_lists(&mut client, "orders").await, lists("", DEFAULT, "", DEFAULT));

    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(text("throttled")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
            .with_name(text(follower_key))
            .with_value(Some(text("0:1")))]);
    let create = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
    let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
    let described = eventually_described(&mut client, "throttled").await;
    assert_eq!(described, lists("", DEFAULT, "0:1", TOPIC_SOURCE));
}

/// The lists of a topic just created, once the node describes it.
async fn eventually_described(client: &mut KafkaClient, topic: &str) -> Vec<Described> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match described(client, TOPIC, topic, &[LEADER_LIST, FOLLOWER_LIST]).await {
            Ok(lists) => return lists,
            Err(code) => assert!(std::time::Instant::now() < deadline, "{topic} not described: error {code}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// As Kafka: a broker resource's configs need ALTER_CONFIGS on the cluster; without it the throttle is not
/// touched and the answer names the principal.
#[tokio::test]
async fn changing_a_broker_config_needs_alter_configs_on_the_cluster() {
    let broker = rill_tests::cluster_of_one_authorizing(&["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut ops = KafkaClient::connect_as(addr, "ops", rill_tests::PASSWORD).await;
    let set = [(LEADER, SET, Some("1048576"))];
    let (refused, message) = alter_incrementally(&mut ops, "1", &set, false).await;
    assert_eq!(refused, ResponseError::ClusterAuthorizationFailed.code(), "{message}");
    assert!(message.contains("User:ops"), "{message}");
    let mut admin = KafkaClient::connect_as(addr, "admin", rill_tests::PASSWORD).await;
    assert_eq!(throttle_configs(&mut admin, "1").await, throttled(NO_LIMIT, DEFAULT, false), "nothing changed");
    assert_eq!(alter_incrementally(&mut admin, "1", &set, false).await, (0, String::new()));
    assert_eq!(throttle_configs(&mut admin, "1").await, throttled("1048576", DYNAMIC_DEFAULT, false));

    // The topic defaults alike, through Kafka's configs and through gRPC (an anonymous caller here).
    let retention = [("log.retention.ms", SET, Some("60000"))];
    let (refused, message) = alter_incrementally(&mut ops, "", &retention, false).await;
    assert_eq!(refused, ResponseError::ClusterAuthorizationFailed.code(), "{message}");
    let mut grpc = broker.admin.clone();
    let request = v1::AlterTopicDefaultsRequest {
        set: [("log.retention.ms".to_owned(), "60000".to_owned())].into(),
        ..Default::default()
    };
    let denied = grpc.alter_topic_defaults(request).await.expect_err("denied");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("alter_configs"), "{denied:?}");
    let denied = grpc.describe_topic_defaults(v1::DescribeTopicDefaultsRequest {}).await.expect_err("denied");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let shown = described(&mut admin, BROKER, "", &["log.retention.ms"]).await.expect("described");
    assert_eq!(shown[0].2, 4, "nothing changed: the node's static default");
}

/// A topic's keys `keys` as DescribeConfigs shows them.
async fn topic_configs(client: &mut KafkaClient, topic: &str, keys: &[&str]) -> Vec<Described> {
    described(client, TOPIC, topic, keys).await.expect("described")
}

fn config(key: &str, value: &str, source: i8) -> Described {
    (key.to_owned(), value.to_owned(), source, false)
}

/// The retention the topic's logs run with, as the gRPC describe gives it (`None`: kept forever).
async fn grpc_retention(broker: &mut TestBroker, topic: &str) -> Option<u64> {
    let request = v1::DescribeTopicRequest { name: topic.into(), ..Default::default() };
    let described = broker.admin.describe_topic(request).await.expect("described").into_inner();
    let config = described.topic.and_then(|topic| topic.config).expect("config");
    config.retention_ms.filter(|ms| *ms != u64::MAX)
}

/// Creates `topic` through Kafka's CreateTopics, with `configs`.
async fn create_with(client: &mut KafkaClient, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            create_topics_request::CreatableTopicConfig::default().with_name(text(key)).with_value(Some(text(value)))
        })
        .collect();
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(text(topic).into())
        .with_num_partitions(1)
        .with_replication_factor(-1)
        .with_configs(configs);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request).await;
    let created = &response.topics[0];
    assert_eq!(created.error_code, 0, "{:?}", created.error_message);
}

const RETENTION: &str = "retention.ms";
const COMPRESSION: &str = "compression.type";
const HOUR: &str = "3600000";

/// What a node does with the cluster's topic defaults, named `by` (the default resource, or the node's id):
/// topics that do not set a key follow a change of it, topics that do keep their own; a topic created later takes
/// it; a DELETE gives the topics back the node's static default; refusals change nothing; it lasts a restart.
async fn topic_defaults_are_followed(mut broker: TestBroker, by: &str) {
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let ok = (0, String::new());
    let week = broker.config.default_retention_ms.map_or("-1".to_owned(), |ms| ms.to_string());
    create_with(&mut client, "plain", &[]).await;
    // Set explicitly to the value the default gives: the topic's own all the same.
    create_with(&mut client, "owning", &[(RETENTION, &week)]).await;
    let broker_default = described(&mut client, BROKER, by, &["log.retention.ms"]).await.expect("described");
    assert_eq!(broker_default, [(String::from("log.retention.ms"), week.clone(), 4, false)], "static, alterable");

    let set = [("log.retention.ms", SET, Some(HOUR)), ("compression.type", SET, Some("zstd"))];
    assert_eq!(alter_incrementally(&mut client, by, &set, true).await, ok, "validate_only");
    let static_retention = broker.config.default_retention_ms;
    assert_eq!(grpc_retention(&mut broker, "plain").await, static_retention);
    assert_eq!(alter_incrementally(&mut client, by, &set, false).await, ok);
    let plain = topic_configs(&mut client, "plain", &[RETENTION, COMPRESSION]).await;
    assert_eq!(plain, [config(COMPRESSION, "zstd", DYNAMIC_DEFAULT), config(RETENTION, HOUR, DYNAMIC_DEFAULT)]);
    assert_eq!(grpc_retention(&mut broker, "plain").await, Some(3_600_000), "the logs run with it");
    let owning = topic_configs(&mut client, "owning", &[RETENTION, COMPRESSION]).await;
    assert_eq!(owning, [config(COMPRESSION, "zstd", DYNAMIC_DEFAULT), config(RETENTION, &week, TOPIC_SOURCE)]);
    let broker_default = described(&mut client, BROKER, "", &["log.retention.ms"]).await.expect("described");
    assert_eq!(broker_default, [(String::from("log.retention.ms"), HOUR.to_owned(), DYNAMIC_DEFAULT, false)]);

    // A topic created now takes it; one that sets the key, deleted from it, goes back to it.
    create_with(&mut client, "later", &[]).await;
    assert_eq!(topic_configs(&mut client, "later", &[RETENTION]).await, [config(RETENTION, HOUR, DYNAMIC_DEFAULT)]);
    let delete = |topic: &str| {
        let resource = IncrementalResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(text(topic))
            .with_configs(vec![IncrementalConfig::default().with_name(text(RETENTION)).with_config_operation(DELETE)]);
        IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
    };
    let response: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &delete("owning")).await;
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(topic_configs(&mut client, "owning", &[RETENTION]).await, [config(RETENTION, HOUR, DYNAMIC_DEFAULT)]);

    // Refused whole, nothing changed: a value that is not one, a key that is not a default, a default one topic
    // cannot take (its own max.message.bytes above a new segment size), another node's name.
    create_with(&mut client, "big-batches", &[("max.message.bytes", "1048576")]).await;
    let invalid_config = ResponseError::InvalidConfig.code();
    let refusals: [(&str, Vec<Change>, i16, &str); 4] = [
        (by, vec![("log.retention.ms", SET, Some("soon"))], invalid_config, "log.retention.ms"),
        (by, vec![("log.retention.hours", SET, Some("1"))], invalid_config, "the topic defaults: log.retention.ms"),
        (
            by,
            vec![("log.segment.bytes", SET, Some("524288")), ("log.retention.ms", DELETE, None)],
            invalid_config,
            "topic big-batches could not take it",
        ),
        ("7", vec![("log.retention.ms", SET, Some("1000"))], ResponseError::InvalidRequest.code(), "broker 7"),
    ];
    for (name, changes, code, expected) in refusals {
        let (refused, message) = alter_incrementally(&mut client, name, &changes, false).await;
        assert_eq!(refused, code, "{changes:?}: {message}");
        assert!(message.contains(expected), "{changes:?}: {message}");
    }
    assert_eq!(grpc_retention(&mut broker, "plain").await, Some(3_600_000));

    // APPEND to the cleanup policy default, as to a topic's.
    let compact = [("log.cleanup.policy", APPEND, Some("compact"))];
    assert_eq!(alter_incrementally(&mut client, by, &compact, false).await, ok);
    let policy = topic_configs(&mut client, "plain", &["cleanup.policy"]).await;
    assert_eq!(policy, [config("cleanup.policy", "compact,delete", DYNAMIC_DEFAULT)]);

    // It lasts a restart.
    let mut broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let later = topic_configs(&mut client, "later", &[RETENTION, "cleanup.policy"]).await;
    assert_eq!(
        later,
        [config("cleanup.policy", "compact,delete", DYNAMIC_DEFAULT), config(RETENTION, HOUR, DYNAMIC_DEFAULT)]
    );

    // AlterConfigs replaces the whole set: what it does not name goes back to the node's static defaults.
    assert_eq!(alter_fully(&mut client, by, &[("compression.type", "lz4")]).await, ok);
    let plain = topic_configs(&mut client, "plain", &[RETENTION, COMPRESSION, "cleanup.policy"]).await;
    assert_eq!(
        plain,
        [
            config("cleanup.policy", "delete", DEFAULT),
            config(COMPRESSION, "lz4", DYNAMIC_DEFAULT),
            config(RETENTION, &week, DEFAULT)
        ]
    );
    assert_eq!(grpc_retention(&mut broker, "later").await, static_retention);
    let big = topic_configs(&mut client, "big-batches", &["max.message.bytes"]).await;
    assert_eq!(big, [config("max.message.bytes", "1048576", TOPIC_SOURCE)]);
}

#[tokio::test]
async fn a_single_nodes_topic_defaults_reach_the_topics_that_do_not_set_them() {
    topic_defaults_are_followed(TestBroker::start().await, "").await;
}

#[tokio::test]
async fn a_clusters_topic_defaults_are_set_through_a_brokers_id_and_replicated() {
    topic_defaults_are_followed(cluster_of_one().await, "1").await;
}
