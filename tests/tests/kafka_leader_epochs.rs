//! KIP-320 on the read path of one node, spoken raw on the Kafka port: OffsetForLeaderEpoch (every served
//! version) answers where an epoch ends in the leader's log, an epoch the log cannot place gets Kafka's undefined
//! pair, a current leader epoch newer than the node's is UNKNOWN_LEADER_EPOCH, an unknown partition is
//! UNKNOWN_TOPIC_OR_PARTITION, and a principal without DESCRIBE on the topic TOPIC_AUTHORIZATION_FAILED; Fetch
//! checks the current leader epoch of every partition from v9 the same way. A single node leads every partition
//! at epoch 0, so the older-epoch (FENCED_LEADER_EPOCH) and not-leader answers, which need a leader change, are
//! proven on three processes in `cli/tests/cluster_leader_epochs.rs`.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, values_of, TestBroker, PASSWORD};

const NO_EPOCH: i32 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const SERVED: std::ops::RangeInclusive<i16> = 2..=4;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// (error code, leader epoch, end offset) for partition `partition` of `topic` asked at v`version`.
async fn end_offset(
    client: &mut KafkaClient,
    version: i16,
    (topic, partition): (&str, i32),
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
            OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch),
        ]),
    ]);
    let response: OffsetForLeaderEpochResponse = client.call(ApiKey::OffsetForLeaderEpoch, version, &request).await;
    assert_eq!(response.topics.len(), 1, "one topic asked, one answered");
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.partition, partition);
    (answer.error_code, answer.leader_epoch, answer.end_offset)
}

async fn produce(client: &mut KafkaClient, values: &[&str]) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(topic_name("t")).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch_of(values, 1))),
        ]),
    ]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

/// Partition 0 of `t` fetched from `offset` at v`version` with `current_leader_epoch`.
async fn fetch(client: &mut KafkaClient, version: i16, offset: i64, current_leader_epoch: i32) -> (i16, Vec<i64>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name("t")).with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_partition_max_bytes(1 << 20),
        ])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, version, &request).await;
    let answer = &response.responses[0].partitions[0];
    // A batch starting below the fetch offset comes whole; a client skips the records below its offset.
    let records = answer.records.as_ref().map(values_of).unwrap_or_default();
    let offsets = records.into_iter().map(|(o, _)| o).filter(|o| *o >= offset).collect();
    (answer.error_code, offsets)
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_the_end_of_the_current_epoch_at_every_served_version() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    for version in SERVED {
        assert_eq!(end_offset(&mut client, version, ("t", 0), NO_EPOCH, 0).await, (0, 0, 0), "v{version}, empty");
    }
    produce(&mut client, &["a", "b", "c"]).await;
    for version in SERVED {
        // A single node leads at epoch 0, and its current epoch ends at the log end.
        assert_eq!(end_offset(&mut client, version, ("t", 0), NO_EPOCH, 0).await, (0, 0, 3), "v{version}");
        assert_eq!(end_offset(&mut client, version, ("t", 0), 0, 0).await, (0, 0, 3), "v{version} at epoch 0");
        // Kafka's UNDEFINED_EPOCH_OFFSET, without an error: an epoch after every one the log knows, and -1.
        assert_eq!(end_offset(&mut client, version, ("t", 0), 0, 5).await, (0, -1, -1), "v{version}, epoch 5");
        assert_eq!(end_offset(&mut client, version, ("t", 0), 0, -1).await, (0, -1, -1), "v{version}, epoch -1");
        assert_eq!(end_offset(&mut client, version, ("t", 1), 0, 0).await, (0, 0, 0), "v{version}, partition 1");
    }
}

#[tokio::test]
async fn offset_for_leader_epoch_refuses_a_newer_current_epoch_and_an_unknown_partition_at_every_version() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    produce(&mut client, &["a"]).await;
    for version in SERVED {
        let newer = end_offset(&mut client, version, ("t", 0), 1, 0).await;
        assert_eq!(newer, (UNKNOWN_LEADER_EPOCH, -1, -1), "v{version}: the node's metadata is the stale one");
        let unknown = end_offset(&mut client, version, ("t", 7), NO_EPOCH, 0).await;
        assert_eq!(unknown.0, UNKNOWN_TOPIC_OR_PARTITION, "v{version}: partition 7");
        assert_eq!(end_offset(&mut client, version, ("t", -1), NO_EPOCH, 0).await.0, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(end_offset(&mut client, version, ("nope", 0), 0, 0).await.0, UNKNOWN_TOPIC_OR_PARTITION);
    }
}

#[tokio::test]
async fn offset_for_leader_epoch_needs_describe_on_the_topic() {
    let broker = TestBroker::start_authorizing(&[("t", 1)], &["admin", "reader"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut reader = KafkaClient::connect_as(addr, "reader", PASSWORD).await;
    for version in SERVED {
        let denied = end_offset(&mut reader, version, ("t", 0), NO_EPOCH, 0).await;
        assert_eq!(denied, (TOPIC_AUTHORIZATION_FAILED, -1, -1), "v{version}");
    }

    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let grant = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
        .with_resource_type(2) // TOPIC
        .with_resource_name(StrBytes::from_static_str("t"))
        .with_resource_pattern_type(3) // LITERAL
        .with_principal(StrBytes::from_static_str("User:reader"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(8) // DESCRIBE
        .with_permission_type(3)]); // ALLOW
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
    for version in SERVED {
        assert_eq!(end_offset(&mut reader, version, ("t", 0), NO_EPOCH, 0).await, (0, 0, 0), "v{version}");
    }
}

#[tokio::test]
async fn fetch_checks_the_current_leader_epoch_from_v9() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    produce(&mut client, &["a", "b"]).await;
    for version in 9..=12 {
        assert_eq!(fetch(&mut client, version, 0, NO_EPOCH).await, (0, vec![0, 1]), "v{version}, no epoch");
        assert_eq!(fetch(&mut client, version, 1, 0).await, (0, vec![1]), "v{version}, the node's epoch");
        let newer = fetch(&mut client, version, 0, 1).await;
        assert_eq!(newer, (UNKNOWN_LEADER_EPOCH, vec![]), "v{version}, an epoch the node does not know yet");
    }
    // Before v9 the field is not on the wire: the check is skipped whatever the client meant.
    for version in 4..=8 {
        assert_eq!(fetch(&mut client, version, 0, NO_EPOCH).await, (0, vec![0, 1]), "v{version}");
    }
}
