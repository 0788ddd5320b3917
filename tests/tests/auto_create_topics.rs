//! Automatic topic creation (`auto_create_topics`, Kafka's `auto.create.topics.enable`): a Kafka Metadata request
//! that allows it, and a rill producer's first send, create a topic that does not exist with the node's
//! `default_partitions` and `default_replication_factor`, when the principal may create it; off (the default),
//! nothing is created. Creates that leave the partition count to the broker take `default_partitions` too.

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_protocol::v1;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{assert_status, TestBroker, PASSWORD};

fn metadata_of(names: &[&str], allow_auto_topic_creation: bool) -> MetadataRequest {
    let asked = names
        .iter()
        .map(|name| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string((*name).into())))))
        .collect();
    MetadataRequest::default().with_topics(Some(asked)).with_allow_auto_topic_creation(allow_auto_topic_creation)
}

/// Each topic of the answer: (name, error code, partitions).
fn topics_in(response: &MetadataResponse) -> Vec<(String, i16, usize)> {
    let name =
        |t: &metadata_response::MetadataResponseTopic| t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
    response.topics.iter().map(|t| (name(t), t.error_code, t.partitions.len())).collect()
}

async fn partition_count(broker: &mut TestBroker, name: &str) -> Option<u32> {
    let request = v1::DescribeTopicRequest { name: name.into(), auto_create: false };
    let described = broker.admin.describe_topic(request).await.ok()?.into_inner();
    described.topic.map(|topic| topic.partition_count)
}

fn auto_creating(config: &mut rill_broker::BrokerConfig) {
    config.auto_create_topics = true;
    config.default_partitions = 3;
}

#[tokio::test]
async fn a_metadata_request_that_allows_it_creates_each_unknown_topic_with_the_default_partitions() {
    let mut broker = TestBroker::start_with(auto_creating).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();

    // v4 and later carry the client's choice: not allowed, nothing is created.
    let refused: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata_of(&["events"], false)).await;
    assert_eq!(topics_in(&refused), [("events".to_owned(), unknown, 0)]);
    assert_eq!(partition_count(&mut broker, "events").await, None, "not created");

    // Allowed: created, and described in the same answer; asked twice in one request, created once.
    let created: MetadataResponse =
        client.call(ApiKey::Metadata, 12, &metadata_of(&["events", "events", "orders"], true)).await;
    let expected = [("events".to_owned(), 0, 3), ("events".to_owned(), 0, 3), ("orders".to_owned(), 0, 3)];
    assert_eq!(topics_in(&created), expected);
    assert_eq!(partition_count(&mut broker, "events").await, Some(3));

    // Below v4 there is no such field, and Kafka creates.
    let v1: MetadataResponse = client.call(ApiKey::Metadata, 1, &metadata_of(&["legacy"], true)).await;
    assert_eq!(topics_in(&v1), [("legacy".to_owned(), 0, 3)]);

    // A name no topic may have, and one of the broker's own, are refused, not created.
    let invalid = ResponseError::InvalidTopicException.code();
    let bad: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata_of(&["no spaces", "__own"], true)).await;
    assert_eq!(topics_in(&bad), [("no spaces".to_owned(), invalid, 0), ("__own".to_owned(), invalid, 0)]);
    assert_eq!(partition_count(&mut broker, "__own").await, None);

    // The broker's settings say so, and a CreateTopics with -1 partitions takes the same default.
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("0"))
        .with_configuration_keys(None);
    let described: DescribeConfigsResponse = client
        .call(ApiKey::DescribeConfigs, 4, &DescribeConfigsRequest::default().with_resources(vec![resource]))
        .await;
    let value = |name: &str| {
        let entry = described.results[0].configs.iter().find(|c| c.name.as_str() == name).expect("listed");
        entry.value.as_ref().map(|v| v.to_string())
    };
    assert_eq!(value("auto.create.topics.enable").as_deref(), Some("true"));
    assert_eq!(value("num.partitions").as_deref(), Some("3"));
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("by-default")))
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let answer: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic])).await;
    assert_eq!((answer.topics[0].error_code, answer.topics[0].num_partitions), (0, 3));
    // So does a gRPC create that leaves the count unset (0), as `rill topic create` without --partitions does.
    let unset = v1::CreateTopicRequest { name: "grpc-default".into(), ..Default::default() };
    let created = broker.admin.create_topic(unset).await.expect("created").into_inner().topic.expect("a topic");
    assert_eq!(created.partition_count, 3);
}

#[tokio::test]
async fn with_the_switch_off_nothing_is_created_by_metadata_or_a_describe() {
    let mut broker = TestBroker::start().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    let answer: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata_of(&["events"], true)).await;
    assert_eq!(topics_in(&answer), [("events".to_owned(), ResponseError::UnknownTopicOrPartition.code(), 0)]);
    let asked = v1::DescribeTopicRequest { name: "events".into(), auto_create: true };
    assert_status(broker.admin.describe_topic(asked).await, tonic::Code::NotFound, &["events"]);
    assert_eq!(partition_count(&mut broker, "events").await, None);
}

/// A rill producer's first send to a topic asks for it to be created; its records land in the new topic's
/// partitions.
#[tokio::test]
async fn a_rill_producers_first_send_creates_the_topic_it_sends_to() {
    let mut broker = TestBroker::start_with(auto_creating).await;
    let url = broker.handle.as_ref().expect("running").addr().to_string();
    let client = rill_client::Client::connect(url).await.expect("client connects");
    let producer =
        rill_client::Producer::new(client.clone(), rill_client::ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..30 {
        let record = rill_client::ProducerRecord::new(format!("event {i}")).with_key(format!("key-{i}"));
        deliveries.push(producer.send("fresh", record).await.expect("enqueued"));
    }
    let mut partitions = std::collections::BTreeSet::new();
    for delivery in deliveries {
        partitions.insert(delivery.await.expect("acknowledged").partition);
    }
    assert_eq!(partition_count(&mut broker, "fresh").await, Some(3));
    assert!(partitions.len() > 1, "keys spread over the 3 partitions: {partitions:?}");

    // A producer that does not ask is told the topic is unknown, as before.
    let config = rill_client::ProducerConfig { auto_create_topics: false, ..Default::default() };
    let producer = rill_client::Producer::new(client, config).expect("producer");
    let refused = producer.send("not-asked", rill_client::ProducerRecord::new("x")).await;
    let refused = match refused {
        Ok(delivery) => delivery.await.map(drop),
        Err(err) => Err(err),
    };
    assert!(matches!(refused, Err(rill_client::Error::UnknownTopic { .. })), "{refused:?}");
    assert_eq!(partition_count(&mut broker, "not-asked").await, None);
}

/// Creating takes CREATE on the cluster or the topic, as a CreateTopics does: without it Metadata answers
/// TOPIC_AUTHORIZATION_FAILED (as Kafka) and a DescribeTopic PERMISSION_DENIED, and nothing is created.
#[tokio::test]
async fn a_principal_that_may_not_create_the_topic_gets_an_authorization_error_and_no_topic() {
    let mut broker = TestBroker::start_authorizing(&[], &["admin", "app"]).await;
    broker.config.auto_create_topics = true;
    broker.config.default_partitions = 1;
    let broker = broker.restart().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let mut app = KafkaClient::connect_as(addr, "app", PASSWORD).await;
    // DESCRIBE on every topic (so what is answered is the create's refusal), CREATE only on "granted".
    for (name, operation) in [("*", 8), ("granted", 2)] {
        let binding = create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_static_str("User:app"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(operation)
            .with_permission_type(3);
        let request = CreateAclsRequest::default().with_creations(vec![binding]);
        let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &request).await;
        assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    }
    let answer: MetadataResponse = app.call(ApiKey::Metadata, 12, &metadata_of(&["denied", "granted"], true)).await;
    let denied = ResponseError::TopicAuthorizationFailed.code();
    assert_eq!(topics_in(&answer), [("denied".to_owned(), denied, 0), ("granted".to_owned(), 0, 1)]);
    let seen: MetadataResponse = admin.call(ApiKey::Metadata, 12, &metadata_of(&["denied", "granted"], false)).await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(topics_in(&seen), [("denied".to_owned(), unknown, 0), ("granted".to_owned(), 0, 1)]);
}

/// On a cluster the topic is placed and committed through the controller, with the node's default replication
/// factor; one larger than the alive nodes is refused at the create, naming both.
/// KIP-599, as Kafka's Metadata: the partitions a client's Metadata creates count against its
/// `controller_mutation_rate` without ever being refused for it (Kafka's permissive mode), so a CreateTopics it
/// sends after, in a strict version, is refused until they are paid for; another client id is not held.
#[tokio::test]
async fn topics_created_by_metadata_count_against_the_clients_controller_mutation_rate() {
    let broker = TestBroker::start_with(|config| {
        auto_creating(config);
        config.default_partitions = 20;
        config.quota_window_ms = 100;
    })
    .await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect(addr).await;
    let rate = alter_client_quotas_request::OpData::default()
        .with_key(StrBytes::from_static_str("controller_mutation_rate"))
        .with_value(1.0);
    let entity = alter_client_quotas_request::EntityData::default()
        .with_entity_type(StrBytes::from_static_str("client-id"))
        .with_entity_name(Some(StrBytes::from_static_str("app")));
    let entry = alter_client_quotas_request::EntryData::default().with_entity(vec![entity]).with_ops(vec![rate]);
    let quota = AlterClientQuotasRequest::default().with_entries(vec![entry]);
    let altered: AlterClientQuotasResponse = admin.call(ApiKey::AlterClientQuotas, 1, &quota).await;
    assert_eq!(altered.entries[0].error_code, 0, "{:?}", altered.entries[0].error_message);

    // Past the rate already (20 partitions at 1 a second) with the first topic, and never refused for it.
    let mut app = KafkaClient::connect(addr).await.with_client_id("app");
    let created: MetadataResponse = app.call(ApiKey::Metadata, 12, &metadata_of(&["first", "second"], true)).await;
    assert_eq!(topics_in(&created), [("first".to_owned(), 0, 20), ("second".to_owned(), 0, 20)]);

    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("third")))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let create = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
    let refused: CreateTopicsResponse = app.call(ApiKey::CreateTopics, 7, &create).await;
    let throttled = ResponseError::ThrottlingQuotaExceeded.code();
    assert_eq!(refused.topics[0].error_code, throttled, "{:?}", refused.topics[0].error_message);
    assert!(refused.throttle_time_ms > 10_000, "40 partitions at 1 a second: {} ms", refused.throttle_time_ms);

    let mut other = KafkaClient::connect(addr).await.with_client_id("other");
    let created: CreateTopicsResponse = other.call(ApiKey::CreateTopics, 7, &create).await;
    assert_eq!((created.topics[0].error_code, created.throttle_time_ms), (0, 0));
}

#[tokio::test]
async fn a_cluster_node_creates_through_the_controller_with_its_default_replication_factor() {
    let broker = rill_tests::cluster_of_one_with(|config| {
        auto_creating(config);
        config.default_replication_factor = 1;
    })
    .await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    // Created and placed; its leader may take a moment to open the partitions (LEADER_NOT_AVAILABLE meanwhile).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata_of(&["placed"], true)).await;
        let topic = &answer.topics[0];
        let led = topic.partitions.iter().all(|p| p.leader_id.0 == 1 && p.replica_nodes.len() == 1);
        if topic.error_code == 0 && topic.partitions.len() == 3 && led {
            break;
        }
        assert_eq!(topic.error_code, ResponseError::LeaderNotAvailable.code(), "{topic:?}");
        assert!(Instant::now() < deadline, "not placed within 20 s: {topic:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut broker = broker;
    broker.config.default_replication_factor = 2;
    let broker = broker.restart().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata_of(&["too-many"], true)).await;
        let code = answer.topics[0].error_code;
        if code == ResponseError::InvalidReplicationFactor.code() {
            break;
        }
        // The quorum forms again after the restart.
        assert_eq!(code, ResponseError::LeaderNotAvailable.code(), "{:?}", answer.topics[0]);
        assert!(Instant::now() < deadline, "no answer within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
