//! What Kafka admin tools and UIs ask a broker about its disks and its partitions' ends (docs/kafka.md), spoken
//! raw with the `kafka-protocol` crate over every advertised version: DescribeLogDirs (v1–v4) gives the data
//! dir and each partition's bytes on disk, growing with produce and equal to its segment files, for the topics
//! asked or all, only to a principal with DESCRIBE on the cluster; ListOffsets v7–v9 answer -3 with the first
//! record carrying the largest timestamp (producers' clocks out of order, before and after a restart), -4 with
//! the log start offset and -5 with "none".

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, TestBroker, PASSWORD};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(text(name))
}

async fn produce(client: &mut KafkaClient, topic: &str, partition: i32, records: Bytes) -> i64 {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ]),
    ]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 0, "produce to {topic}-{partition}");
    answer.base_offset
}

/// DescribeLogDirs v`version`: the whole response.
async fn describe_log_dirs(
    client: &mut KafkaClient,
    version: i16,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeLogDirsResponse {
    let topics = topics.map(|topics| {
        topics
            .into_iter()
            .map(|(name, partitions)| {
                DescribableLogDirTopic::default().with_topic(topic_name(name)).with_partitions(partitions)
            })
            .collect()
    });
    client.call(ApiKey::DescribeLogDirs, version, &DescribeLogDirsRequest::default().with_topics(topics)).await
}

/// The partitions one dir describes, as sorted (topic, partition, size), checking the fields rill fixes.
fn sizes(dir: &describe_log_dirs_response::DescribeLogDirsResult) -> Vec<(String, i32, i64)> {
    assert_eq!(dir.error_code, 0);
    let mut sizes: Vec<_> = dir
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                assert_eq!((p.offset_lag, p.is_future_key), (0, false), "no future replicas");
                (topic.name.0.to_string(), p.partition_index, p.partition_size)
            })
        })
        .collect();
    sizes.sort();
    sizes
}

/// The bytes of a partition's segment files (`<data>/<topic>-<partition>/*.log`).
fn segment_file_bytes(data_dir: &Path, topic: &str, partition: u32) -> i64 {
    std::fs::read_dir(data_dir.join(format!("{topic}-{partition}")))
        .expect("partition dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| std::fs::metadata(path).expect("segment file").len() as i64)
        .sum()
}

#[tokio::test]
async fn log_dirs_give_each_partitions_bytes_on_disk_at_every_version() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    broker.create_topic("audit", 1).await;
    let data_dir = std::path::absolute(broker.dir.path()).expect("absolute data dir");
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let first = batch_of(&["a", "b", "c"], 1_000);
    produce(&mut client, "orders", 0, first.clone()).await;
    let mut produced = first.len() as i64;
    for version in 1..=4 {
        let response = describe_log_dirs(&mut client, version, None).await;
        assert_eq!(response.error_code, 0);
        assert_eq!(response.results.len(), 1, "one log dir: the data dir");
        let dir = &response.results[0];
        assert_eq!(dir.log_dir.as_str(), data_dir.to_str().expect("utf-8 path"), "v{version}");
        // Batches are stored as sent (but for fields the broker stamps), so the bytes on disk are those produced.
        let expected = [("audit".to_owned(), 0, 0), ("orders".to_owned(), 0, produced), ("orders".to_owned(), 1, 0)];
        assert_eq!(sizes(dir), expected, "v{version}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && (0..=dir.total_bytes).contains(&dir.usable_bytes), "{dir:?}");
        } else {
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "not in v{version}");
        }
        // The size grows with each produce.
        let more = batch_of(&["grows"], 2_000);
        produce(&mut client, "orders", 0, more.clone()).await;
        produced += more.len() as i64;
    }
    // After a clean shutdown the segment files end at their last batch: the size described is theirs.
    drop(client);
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let response = describe_log_dirs(&mut client, 4, None).await;
    let on_disk = segment_file_bytes(&data_dir, "orders", 0);
    assert_eq!(on_disk, produced);
    assert!(sizes(&response.results[0]).contains(&("orders".to_owned(), 0, on_disk)));
}

#[tokio::test]
async fn log_dirs_describe_only_the_topics_and_partitions_asked() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 3).await;
    broker.create_topic("audit", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let batch = batch_of(&["x"], 1_000);
    produce(&mut client, "orders", 2, batch.clone()).await;
    for version in 1..=4 {
        // An unknown topic and a partition the topic does not have are left out, as Kafka leaves them.
        let asked = vec![("orders", vec![2, 0, 7]), ("nope", vec![0]), ("audit", vec![])];
        let response = describe_log_dirs(&mut client, version, Some(asked)).await;
        let expected = [("orders".to_owned(), 0, 0), ("orders".to_owned(), 2, batch.len() as i64)];
        assert_eq!(sizes(&response.results[0]), expected, "v{version}");
        let none = describe_log_dirs(&mut client, version, Some(vec![])).await;
        assert_eq!(sizes(&none.results[0]), [], "an empty list asks for nothing");
    }
}

#[tokio::test]
async fn log_dirs_need_describe_on_the_cluster() {
    let broker = TestBroker::start_authorizing(&[("orders", 1)], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    for version in 1..=4 {
        let refused = describe_log_dirs(&mut ops, version, None).await;
        assert!(refused.results.is_empty(), "v{version}: nothing described");
        // The error code exists from v3; below it a refusal is an empty answer, as Kafka's.
        let code = if version >= 3 { CLUSTER_AUTHORIZATION_FAILED } else { 0 };
        assert_eq!(refused.error_code, code, "v{version}");
    }
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    assert_eq!(sizes(&describe_log_dirs(&mut admin, 4, None).await.results[0]), [("orders".to_owned(), 0, 0)]);
    // DESCRIBE on the cluster (Kafka's codes: CLUSTER 4, LITERAL 3, DESCRIBE 8, ALLOW 3).
    let grant = AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(text("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(text("User:ops"))
        .with_host(text("*"))
        .with_operation(8)
        .with_permission_type(3);
    let created: CreateAclsResponse =
        admin.call(ApiKey::CreateAcls, 3, &CreateAclsRequest::default().with_creations(vec![grant])).await;
    assert_eq!(created.results[0].error_code, 0, "{:?}", created.results[0].error_message);
    let allowed = describe_log_dirs(&mut ops, 4, None).await;
    assert_eq!(allowed.error_code, 0);
    assert_eq!(sizes(&allowed.results[0]), [("orders".to_owned(), 0, 0)]);
}

/// ListOffsets v`version` for partition 0: (error code, offset, timestamp, leader epoch).
async fn list_offset(client: &mut KafkaClient, version: i16, topic: &str, timestamp: i64) -> (i16, i64, i64, i32) {
    let answer = client.list_offset(version, topic, 0, timestamp).await;
    (answer.error_code, answer.offset, answer.timestamp, answer.leader_epoch)
}

#[tokio::test]
async fn list_offsets_finds_the_largest_timestamp_the_log_start_and_no_tiered_offset() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("clocks", 1).await;
    broker.create_topic("empty", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    // Producers' clocks disagree: the largest timestamp (9_001) is in the second batch, at offset 3, and comes
    // again later at offset 6; timestamps after it are older.
    produce(&mut client, "clocks", 0, batch_of(&["a", "b"], 5_000)).await;
    produce(&mut client, "clocks", 0, batch_of(&["c", "d"], 9_000)).await;
    produce(&mut client, "clocks", 0, batch_of(&["e", "f"], 1_000)).await;
    produce(&mut client, "clocks", 0, batch_of(&["g"], 9_001)).await;
    produce(&mut client, "clocks", 0, batch_of(&["h"], 7_000)).await;
    for version in 7..=9 {
        assert_eq!(list_offset(&mut client, version, "clocks", -3).await, (0, 3, 9_001, 0), "v{version}");
        assert_eq!(list_offset(&mut client, version, "empty", -3).await, (0, -1, -1, 0), "v{version}: no record");
    }
    for version in 8..=9 {
        assert_eq!(list_offset(&mut client, version, "clocks", -4).await, (0, 0, -1, 0), "v{version}");
    }
    assert_eq!(list_offset(&mut client, 9, "clocks", -5).await, (0, -1, -1, -1), "nothing is tiered");
    assert_eq!(list_offset(&mut client, 9, "clocks", -6).await.0, 42, "v10's spec is INVALID_REQUEST");

    // Across a restart the segments' largest timestamps come back from their files.
    drop(client);
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    assert_eq!(list_offset(&mut client, 7, "clocks", -3).await, (0, 3, 9_001, 0), "after a restart");
}
