//! Topic administration end to end: create, list, describe, add partitions, delete, and every bad input.

use rill_protocol::v1;
use rill_tests::{assert_status, TestBroker};
use tonic::Code;

fn create(name: &str, partitions: u32) -> v1::CreateTopicRequest {
    v1::CreateTopicRequest { name: name.into(), partition_count: partitions, config: None, ..Default::default() }
}

#[tokio::test]
async fn create_list_describe_and_add_partitions() {
    let mut broker = TestBroker::start().await;
    let config = v1::TopicConfig {
        retention_bytes: Some(1 << 30),
        durability: v1::DurabilityPolicy::Always as i32,
        max_batch_bytes: Some(1 << 16),
        ..Default::default()
    };
    let created = broker
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "orders".into(),
            partition_count: 3,
            config: Some(config),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!((created.name.as_str(), created.partition_count), ("orders", 3));
    let effective = created.config.unwrap();
    assert_eq!(effective.durability, v1::DurabilityPolicy::Always as i32);
    assert_eq!(effective.max_batch_bytes, Some(1 << 16));
    assert_eq!(effective.segment_bytes, Some(broker.config.default_segment_bytes), "defaults are filled in");

    broker.create_topic("audit", 1).await;
    let listed = broker.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap().into_inner().topics;
    let names: Vec<_> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["audit", "orders"]);

    broker.produce_values("orders", 1, &["a", "b"]).await;
    let described = broker
        .admin
        .describe_topic(v1::DescribeTopicRequest { name: "orders".into(), auto_create: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.partitions.len(), 3);
    let p1 = &described.partitions[1];
    assert_eq!((p1.partition, p1.log_start_offset, p1.high_watermark), (1, 0, 2));
    assert!(p1.size_bytes > 0 && p1.segment_count >= 1);
    assert_eq!(described.partitions[0].high_watermark, 0);

    let grown = broker
        .admin
        .add_partitions(v1::AddPartitionsRequest { name: "orders".into(), new_partition_count: 5 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.topic.unwrap().partition_count, 5);
    assert_eq!(broker.produce_values("orders", 4, &["new"]).await, 0);
    assert_eq!(broker.fetch_values("orders", 1, 0).await, [(0, "a".into()), (1, "b".into())], "old data intact");
}

#[tokio::test]
async fn delete_topic_removes_its_files_and_its_name_can_be_reused() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("gone", 2).await;
    broker.produce_values("gone", 0, &["x"]).await;
    let data = broker.dir.path().to_owned();
    assert!(data.join("gone-0").is_dir() && data.join("gone-1").is_dir());
    assert!(data.join("__topics/gone.toml").is_file());

    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "gone".into() }).await.unwrap();
    assert!(!data.join("gone-0").exists() && !data.join("gone-1").exists());
    assert!(!data.join("__topics/gone.toml").exists());
    let fetched = broker.records.fetch(rill_tests::fetch_request("gone", 0, 0, 0, 0)).await;
    assert_status(fetched, Code::NotFound, &["gone"]);
    broker.assert_serving().await;

    broker.create_topic("gone", 1).await;
    assert!(broker.fetch_values("gone", 0, 0).await.is_empty(), "a recreated topic starts empty");
}

#[tokio::test]
async fn bad_topic_names_are_invalid_argument_and_build_no_path() {
    let mut broker = TestBroker::start().await;
    let long = "x".repeat(250);
    let cases: [(&str, &str); 7] = [
        ("", "empty"),
        (&long, "249"),
        ("a/b", "letters"),
        ("../etc", "letters"),
        ("sp ace", "letters"),
        (".", "'.'"),
        ("..", "'..'"),
    ];
    for (name, word) in cases {
        let result = broker.admin.create_topic(create(name, 1)).await;
        assert_status(result, Code::InvalidArgument, &["topic name", word]);
        broker.assert_serving().await;
        broker.create_topic("ok-after-bad-name", 1).await;
        broker.admin.delete_topic(v1::DeleteTopicRequest { name: "ok-after-bad-name".into() }).await.unwrap();
    }
    assert_status(
        broker.admin.create_topic(create("__consumer_offsets", 1)).await,
        Code::InvalidArgument,
        &["reserved"],
    );
    broker.assert_serving().await;
    let entries: Vec<_> = std::fs::read_dir(broker.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 3, "only __topics, __consumer_offsets-0 and __lock: {entries:?}");
}

#[tokio::test]
async fn existing_unknown_and_over_limit_topics_are_refused_clearly() {
    let mut broker = TestBroker::start_with(|c| {
        c.max_topics = 2;
        c.max_partitions_per_topic = 4;
    })
    .await;
    broker.create_topic("a", 1).await;
    assert_status(broker.admin.create_topic(create("a", 1)).await, Code::AlreadyExists, &["\"a\"", "exists"]);
    broker.assert_serving().await;
    assert_status(broker.admin.create_topic(create("b", 5)).await, Code::InvalidArgument, &["at most 4"]);
    broker.assert_serving().await;
    broker.create_topic("b", 4).await;
    assert_status(
        broker.admin.create_topic(create("c", 1)).await,
        Code::ResourceExhausted,
        &["at most 2", "max_topics"],
    );
    broker.assert_serving().await;

    let unknown = v1::DescribeTopicRequest { name: "nope".into(), auto_create: false };
    assert_status(broker.admin.describe_topic(unknown).await, Code::NotFound, &["unknown topic", "nope"]);
    broker.assert_serving().await;
    let unknown = v1::DeleteTopicRequest { name: "nope".into() };
    assert_status(broker.admin.delete_topic(unknown).await, Code::NotFound, &["nope"]);
    broker.assert_serving().await;
    let shrink = v1::AddPartitionsRequest { name: "b".into(), new_partition_count: 3 };
    assert_status(broker.admin.add_partitions(shrink).await, Code::InvalidArgument, &["already has 4"]);
    broker.assert_serving().await;
    let too_many = v1::AddPartitionsRequest { name: "a".into(), new_partition_count: 9 };
    assert_status(broker.admin.add_partitions(too_many).await, Code::InvalidArgument, &["at most 4"]);
    broker.assert_serving().await;

    let bad_config = v1::CreateTopicRequest {
        name: "x".into(),
        partition_count: 1,
        config: Some(v1::TopicConfig { max_batch_bytes: Some(1 << 40), ..Default::default() }),
        ..Default::default()
    };
    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "b".into() }).await.unwrap();
    assert_status(broker.admin.create_topic(bad_config).await, Code::InvalidArgument, &["max_batch_bytes", "limit"]);
    broker.assert_serving().await;
    let bad_segment = v1::CreateTopicRequest {
        name: "x".into(),
        partition_count: 1,
        config: Some(v1::TopicConfig { segment_bytes: Some(10), ..Default::default() }),
        ..Default::default()
    };
    assert_status(broker.admin.create_topic(bad_segment).await, Code::InvalidArgument, &["segment_bytes"]);
    broker.assert_serving().await;
    broker.create_topic("x", 1).await;
    assert_eq!(broker.produce_values("x", 0, &["still serving"]).await, 0);
}

#[tokio::test]
async fn an_io_failure_is_internal_with_the_cause_and_the_broker_stays_up() {
    let mut broker = TestBroker::start().await;
    // A plain file where the partition directory must go: creating the topic fails on the file system.
    std::fs::write(broker.dir.path().join("blocked-0"), b"not a directory").unwrap();
    let result = broker.admin.create_topic(create("blocked", 1)).await;
    assert_status(result, Code::Internal, &["i/o error", "blocked-0"]);
    broker.assert_serving().await;
    let listed = broker.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap().into_inner().topics;
    assert!(listed.is_empty(), "a failed create leaves no topic behind");
    broker.create_topic("fine", 1).await;
    assert_eq!(broker.produce_values("fine", 0, &["v"]).await, 0);
}

#[tokio::test]
async fn topics_survive_a_restart_with_their_config() {
    let mut broker = TestBroker::start().await;
    let config = v1::TopicConfig { retention_ms: Some(123_456), ..Default::default() };
    broker
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "kept".into(),
            partition_count: 2,
            config: Some(config),
            ..Default::default()
        })
        .await
        .unwrap();
    broker
        .admin
        .add_partitions(v1::AddPartitionsRequest { name: "kept".into(), new_partition_count: 3 })
        .await
        .unwrap();
    let mut broker = broker.restart().await;
    let described = broker
        .admin
        .describe_topic(v1::DescribeTopicRequest { name: "kept".into(), auto_create: false })
        .await
        .unwrap()
        .into_inner();
    let topic = described.topic.unwrap();
    assert_eq!(topic.partition_count, 3);
    assert_eq!(topic.config.unwrap().retention_ms, Some(123_456));
}
