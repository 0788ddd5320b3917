//! The Kafka wire protocol on the broker's one port: a client speaking Kafka (requests framed by the
//! `kafka-protocol` crate) discovers versions, reads metadata, produces a batch built by
//! `rill_protocol::RecordBatchBuilder`, fetches it back byte for byte and looks offsets up; and bad bytes on a
//! Kafka connection close that connection only, while Kafka and gRPC clients go on being served.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::batch::{set_base_offset, set_partition_leader_epoch};
use rill_protocol::v1;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{assert_status, batch_of, produce_request, values_of, TestBroker};

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

async fn produce(client: &mut KafkaClient, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    produce_v(client, 9, topic, partition, records).await
}

async fn produce_v(client: &mut KafkaClient, version: i16, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let answer = produce_answer(client, version, topic, partition, records).await;
    (answer.error_code, answer.base_offset)
}

async fn produce_answer(
    client: &mut KafkaClient,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ]),
    ]);
    let response: ProduceResponse = client.call(ApiKey::Produce, version, &request).await;
    response.responses.into_iter().next().and_then(|t| t.partition_responses.into_iter().next()).expect("answered")
}

async fn fetch(client: &mut KafkaClient, topic: &str, partition: i32, offset: i64) -> fetch_response::PartitionData {
    fetch_v(client, 12, topic, partition, offset).await
}

async fn fetch_v(
    client: &mut KafkaClient,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20),
        ])]);
    let mut response: FetchResponse = client.call(ApiKey::Fetch, version, &request).await;
    response.responses.remove(0).partitions.remove(0)
}

async fn list_offset(client: &mut KafkaClient, topic: &str, timestamp: i64) -> (i16, i64) {
    list_offset_v(client, 6, topic, timestamp).await
}

async fn list_offset_v(client: &mut KafkaClient, version: i16, topic: &str, timestamp: i64) -> (i16, i64) {
    let answer = client.list_offset(version, topic, 0, timestamp).await;
    (answer.error_code, answer.offset)
}

#[tokio::test]
async fn api_versions_advertises_exactly_the_served_apis() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let response: ApiVersionsResponse = client
        .call(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_string("rill-tests".into()))
                .with_client_software_version(StrBytes::from_string("1".into())),
        )
        .await;
    assert_eq!(response.error_code, 0);
    let mut served: Vec<(i16, i16, i16)> =
        response.api_keys.iter().map(|api| (api.api_key, api.min_version, api.max_version)).collect();
    served.sort();
    let expected = [
        (0, 3, 11), // Produce
        (1, 4, 17), // Fetch
        (2, 1, 9),  // ListOffsets
        (3, 0, 13), // Metadata
        (8, 2, 9),  // OffsetCommit
        (9, 1, 9),  // OffsetFetch
        (10, 0, 4), // FindCoordinator
        (11, 0, 9), // JoinGroup
        (12, 0, 4), // Heartbeat
        (13, 0, 5), // LeaveGroup
        (14, 0, 5), // SyncGroup
        (15, 0, 5), // DescribeGroups
        (16, 0, 5), // ListGroups
        (18, 0, 3), // ApiVersions
        (19, 2, 7), // CreateTopics
        (20, 1, 6), // DeleteTopics
        (21, 0, 2), // DeleteRecords
        (22, 0, 4), // InitProducerId
        (23, 2, 4), // OffsetForLeaderEpoch
        (24, 0, 3), // AddPartitionsToTxn
        (25, 0, 3), // AddOffsetsToTxn
        (26, 0, 3), // EndTxn
        (27, 1, 1), // WriteTxnMarkers
        (28, 0, 3), // TxnOffsetCommit
        (29, 1, 3), // DescribeAcls
        (30, 1, 3), // CreateAcls
        (31, 1, 3), // DeleteAcls
        (32, 1, 4), // DescribeConfigs
        (33, 0, 2), // AlterConfigs
        (35, 1, 4), // DescribeLogDirs
        (37, 0, 3), // CreatePartitions
        (42, 0, 2), // DeleteGroups
        (43, 0, 2), // ElectLeaders
        (44, 0, 1), // IncrementalAlterConfigs
        (45, 0, 1), // AlterPartitionReassignments
        (46, 0, 0), // ListPartitionReassignments
        (47, 0, 0), // OffsetDelete
        (48, 0, 1), // DescribeClientQuotas
        (49, 0, 1), // AlterClientQuotas
        (50, 0, 0), // DescribeUserScramCredentials
        (51, 0, 0), // AlterUserScramCredentials
        (55, 0, 2), // DescribeQuorum
        (60, 0, 1), // DescribeCluster
        (61, 0, 0), // DescribeProducers
        (65, 0, 0), // DescribeTransactions
        (66, 0, 1), // ListTransactions
        (68, 0, 1), // ConsumerGroupHeartbeat
        (69, 0, 1), // ConsumerGroupDescribe
        (71, 0, 0), // GetTelemetrySubscriptions
        (72, 0, 0), // PushTelemetry
        (74, 0, 1), // ListConfigResources
        (75, 0, 0), // DescribeTopicPartitions
        (76, 1, 1), // ShareGroupHeartbeat
        (77, 1, 1), // ShareGroupDescribe
        (78, 1, 1), // ShareFetch
        (79, 1, 1), // ShareAcknowledge
        (90, 0, 0), // DescribeShareGroupOffsets
        (91, 0, 0), // AlterShareGroupOffsets
        (92, 0, 0), // DeleteShareGroupOffsets
    ];
    assert_eq!(served, expected);
}

#[tokio::test]
async fn api_versions_newer_than_served_is_answered_in_v0_with_unsupported_version() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    client.send(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default()).await;
    let mut body = client.receive().await.expect("an answer, not a closed connection");
    use kafka_protocol::protocol::Decodable;
    let header = ResponseHeader::decode(&mut body, 0).expect("v0 header");
    assert_eq!(header.correlation_id, 1);
    let response = ApiVersionsResponse::decode(&mut body, 0).expect("a v0 body");
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(response.api_keys.iter().any(|api| api.api_key == 18 && api.max_version == 3));
}

#[tokio::test]
async fn metadata_names_this_node_as_leader_and_unknown_topics_as_unknown() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 3).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    for version in [0, 1, 4, 9, 12, 13] {
        let request = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("orders"))),
            MetadataRequestTopic::default().with_name(Some(topic_name("missing"))),
        ]));
        let response: MetadataResponse = client.call(ApiKey::Metadata, version, &request).await;
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(response.brokers[0].host.as_str(), "127.0.0.1");
        assert_eq!(response.brokers[0].port, i32::from(addr.port()));
        let orders = &response.topics[0];
        assert_eq!((orders.error_code, orders.partitions.len()), (0, 3), "v{version}");
        assert!(orders.partitions.iter().all(|p| p.leader_id == response.brokers[0].node_id));
        assert_eq!(response.topics[1].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION, never auto-created");
    }
    let all: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!(all.topics.len(), 1);
    // v0 has no null: its empty list asks for every topic; from v1 an empty list asks for none.
    let empty = MetadataRequest::default().with_topics(Some(Vec::new()));
    let all_v0: MetadataResponse = client.call(ApiKey::Metadata, 0, &empty).await;
    assert_eq!(all_v0.topics.len(), 1);
    let none_v1: MetadataResponse = client.call(ApiKey::Metadata, 1, &empty).await;
    assert!(none_v1.topics.is_empty());
}

#[tokio::test]
async fn every_topic_has_an_id_that_survives_a_restart_and_names_it_in_metadata() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    let ask_all = MetadataRequest::default().with_topics(None);
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let before: MetadataResponse = client.call(ApiKey::Metadata, 12, &ask_all).await;
    let id = before.topics[0].topic_id;
    assert!(!id.is_nil(), "v10+ carries the topic id");
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let after: MetadataResponse = client.call(ApiKey::Metadata, 12, &ask_all).await;
    assert_eq!(after.topics[0].topic_id, id, "the id is kept on disk, not drawn again");
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(None).with_topic_id(id),
        MetadataRequestTopic::default().with_name(None).with_topic_id(uuid::Uuid::from_u128(42)),
    ]));
    let found: MetadataResponse = client.call(ApiKey::Metadata, 12, &by_id).await;
    assert_eq!(found.topics[0].name.as_ref().map(|n| n.0.as_str()), Some("orders"));
    assert_eq!((found.topics[0].error_code, found.topics[0].partitions.len()), (0, 2));
    assert_eq!(found.topics[1].error_code, 100, "UNKNOWN_TOPIC_ID");
}

#[tokio::test]
async fn metadata_gives_the_advertised_address_when_one_is_set() {
    let broker = TestBroker::start_with(|config| config.advertise = Some("kafka.example:19092".into())).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let response: MetadataResponse =
        client.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!((response.brokers[0].host.as_str(), response.brokers[0].port), ("kafka.example", 19092));
}

#[tokio::test]
async fn a_produced_batch_is_fetched_back_byte_for_byte_and_offsets_are_listed() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let first = batch_of(&["a", "b"], 1_000);
    let second = batch_of(&["c"], 5_000);
    assert_eq!(produce(&mut client, "t", 0, first.clone()).await, (0, 0));
    assert_eq!(produce(&mut client, "t", 0, second.clone()).await, (0, 2));

    let fetched = fetch(&mut client, "t", 0, 0).await;
    assert_eq!((fetched.error_code, fetched.high_watermark, fetched.log_start_offset), (0, 3, 0));
    // The broker stamps the base offset and its leader epoch (0) into each batch, outside the CRC, as Kafka does.
    let stamped = |batch: &Bytes, base_offset: i64| {
        let mut batch = batch.to_vec();
        set_base_offset(&mut batch, base_offset);
        set_partition_leader_epoch(&mut batch, 0);
        batch
    };
    let expected = [stamped(&first, 0), stamped(&second, 2)].concat();
    assert_eq!(fetched.records.as_deref(), Some(&expected[..]), "stored and served unchanged but for those fields");
    // A gRPC client reads what the Kafka client wrote.
    assert_eq!(broker.fetch_values("t", 0, 0).await, [(0, "a".into()), (1, "b".into()), (2, "c".into())]);

    assert_eq!(list_offset(&mut client, "t", -2).await, (0, 0));
    assert_eq!(list_offset(&mut client, "t", -1).await, (0, 3));
    assert_eq!(list_offset(&mut client, "t", 1_001).await, (0, 1), "first record at or after the timestamp");
    assert_eq!(list_offset(&mut client, "t", 9_999).await, (0, -1), "no record that late");

    let past_the_end = fetch(&mut client, "t", 0, 99).await;
    assert_eq!(past_the_end.error_code, 1, "OFFSET_OUT_OF_RANGE");
    let unknown = fetch(&mut client, "nope", 0, 0).await;
    assert_eq!(unknown.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(values_of(&fetch(&mut client, "t", 0, 2).await.records.expect("records")), [(2, "c".into())]);
}

/// Kafka's broker sets a CreateTime batch's `max_timestamp` instead of refusing it when it is not the largest record
/// timestamp (Sarama 1.22, Debian bookworm's, leaves it -1): so does the Kafka port. gRPC keeps the rule.
#[tokio::test]
async fn a_batch_without_its_max_timestamp_is_corrected_on_the_kafka_port_and_refused_on_grpc() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let right = batch_of(&["a", "b", "c"], 1_000);
    let mut unset = right.to_vec();
    let mut header = rill_protocol::BatchHeader::parse(&unset).expect("a batch");
    assert_eq!(header.max_timestamp, 1_002);
    header.max_timestamp = -1;
    rill_protocol::record::write_header(&mut unset, &header);
    let unset = Bytes::from(unset);

    assert_status(
        broker.records.produce(produce_request("t", Some(0), unset.clone(), v1::Acks::Leader)).await,
        tonic::Code::InvalidArgument,
        &["max timestamp -1 is not the largest record timestamp 1002"],
    );
    assert_eq!(produce(&mut client, "t", 0, unset).await, (0, 0));
    let fetched = fetch(&mut client, "t", 0, 0).await.records.expect("records");
    let mut expected = right.to_vec();
    set_base_offset(&mut expected, 0);
    set_partition_leader_epoch(&mut expected, 0);
    assert_eq!(&fetched[..], &expected[..], "stored as a client that set the field would have sent it");
    assert_eq!(list_offset(&mut client, "t", 1_002).await, (0, 2), "the time index has the batch's real time");
    // Any other fault is still refused: here a count that does not match the records.
    let mut miscounted = right.to_vec();
    let mut header = rill_protocol::BatchHeader::parse(&miscounted).expect("a batch");
    (header.max_timestamp, header.record_count, header.last_offset_delta) = (-1, 2, 1);
    rill_protocol::record::write_header(&mut miscounted, &header);
    assert_eq!(produce(&mut client, "t", 0, Bytes::from(miscounted.clone())).await, (87, -1), "INVALID_RECORD");
    // Produce v8+ says what was wrong in words (KIP-467's error_message), as Kafka's broker does.
    let answer = produce_answer(&mut client, 9, "t", 0, Bytes::from(miscounted)).await;
    let message = answer.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(answer.error_code == 87 && message.contains("record"), "error message {message:?}");
    assert_eq!(broker.fetch_values("t", 0, 0).await.len(), 3);
}

#[tokio::test]
async fn every_advertised_version_of_produce_fetch_and_list_offsets_is_answered() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    for (expected_offset, version) in (3..=9).enumerate() {
        assert_eq!(produce_v(&mut client, version, "t", 0, batch_of(&["v"], 1)).await, (0, expected_offset as i64));
    }
    for version in 4..=12 {
        let fetched = fetch_v(&mut client, version, "t", 0, 6).await;
        assert_eq!(values_of(&fetched.records.expect("records")), [(6, "v".into())], "Fetch v{version}");
    }
    for version in 1..=9 {
        assert_eq!(list_offset_v(&mut client, version, "t", -1).await, (0, 7), "ListOffsets v{version}");
    }
}

#[tokio::test]
async fn a_damaged_batch_is_corrupt_message_and_an_unknown_partition_is_unknown() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let mut damaged = batch_of(&["x"], 1).to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert_eq!(produce(&mut client, "t", 0, Bytes::from(damaged)).await.0, 2, "CORRUPT_MESSAGE");
    assert_eq!(produce(&mut client, "t", 0, Bytes::from_static(b"not a batch")).await.0, 2);
    assert_eq!(produce(&mut client, "t", 7, batch_of(&["x"], 1)).await.0, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(produce(&mut client, "missing", 0, batch_of(&["x"], 1)).await.0, 3);
    // Nothing of the refused batches was stored.
    assert_eq!(list_offset(&mut client, "t", -1).await, (0, 0));
}

#[tokio::test]
async fn bad_bytes_on_a_kafka_connection_close_only_that_connection() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut healthy = KafkaClient::connect(addr).await;
    let two_gib_prefix = i32::MAX.to_be_bytes().to_vec();
    // Unknown API key 999, version 0, correlation id 1, then a null client id.
    let unknown_api_key = [
        &10i32.to_be_bytes()[..],
        &999i16.to_be_bytes(),
        &0i16.to_be_bytes(),
        &1i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
    ]
    .concat();
    // A known API that is not served (EndTxn v0: no transactions), well framed.
    let not_served = [
        &10i32.to_be_bytes()[..],
        &26i16.to_be_bytes(),
        &0i16.to_be_bytes(),
        &1i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
    ]
    .concat();
    // Metadata v12 whose body is cut short of its fields.
    let malformed =
        [&9i32.to_be_bytes()[..], &3i16.to_be_bytes(), &12i16.to_be_bytes(), &1i32.to_be_bytes(), &[0u8]].concat();
    // Metadata v1 claiming 2^31 - 1 topics in a 4-byte array: refused as short, never allocated for.
    let lying_count = [
        &16i32.to_be_bytes()[..],
        &3i16.to_be_bytes(),
        &1i16.to_be_bytes(),
        &1i32.to_be_bytes(),
        &(-1i16).to_be_bytes(),
        &i32::MAX.to_be_bytes(),
        &[0u8; 2],
    ]
    .concat();
    let cases: [(&str, Vec<u8>); 6] = [
        ("garbage", vec![0x01, 0xfe, 0x33, 0x00, 0x17, 0x99, 0x12, 0x00, 0xff, 0xff]),
        ("2 GiB size prefix", two_gib_prefix),
        ("unknown API key", unknown_api_key),
        ("API not served", not_served),
        ("malformed body", malformed),
        ("lying array count", lying_count),
    ];
    for (what, bytes) in cases {
        let mut client = KafkaClient::connect(addr).await;
        client.send_raw(&bytes).await;
        assert!(client.is_closed_by_broker().await, "{what}: the connection is closed");
        let answer: ApiVersionsResponse = healthy.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
        assert_eq!(answer.error_code, 0, "{what}: the other Kafka connection is still served");
        broker.assert_serving().await;
    }
    // A request cut mid-way: the client announces 100 bytes, sends 10 and goes away.
    let mut cut = KafkaClient::connect(addr).await;
    cut.send_raw(&[&100i32.to_be_bytes()[..], &[0u8; 10]].concat()).await;
    drop(cut);
    assert_eq!(produce(&mut healthy, "t", 0, batch_of(&["still here"], 1)).await, (0, 0));
    broker.assert_serving().await;
}

#[tokio::test]
async fn produce_with_acks_0_gets_no_response_and_the_next_request_is_answered() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let request =
        ProduceRequest::default().with_acks(0).with_timeout_ms(5_000).with_topic_data(vec![TopicProduceData::default(
        )
        .with_name(topic_name("t"))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch_of(&["quiet"], 1)))])]);
    client.send(ApiKey::Produce, 9, &request).await;
    // The next answer is the Metadata one: correlation ids are checked in order by `call`.
    let _: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    // Fetch waits (max_wait_ms) until the unacknowledged append lands.
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(5_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name("t")).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
        ])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
    let records = response.responses[0].partitions[0].records.clone().expect("records");
    assert_eq!(values_of(&records), [(0, "quiet".into())]);
}

#[tokio::test]
async fn kafka_connections_count_against_max_connections() {
    // The test broker's own gRPC connection takes one of the two slots.
    let broker = TestBroker::start_with(|config| config.max_connections = 2).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut first = KafkaClient::connect(addr).await;
    let _: ApiVersionsResponse = first.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let mut refused = KafkaClient::connect(addr).await;
    assert!(refused.is_closed_by_broker().await, "no slot left: closed at once");
    drop(first);
    // The slot comes back once the first Kafka connection is gone (the broker notices the close).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut again = KafkaClient::connect(addr).await;
        again.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
        if again.receive().await.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never came back");
        tokio::task::yield_now().await;
    }
}

/// KIP-714 on the wire: offered always, a new instance gets an id and the metrics of the subscriptions it matches
/// (none: nothing, and to ask again after Kafka's default interval), and a push is answered with Kafka's codes for
/// what it got wrong.
#[tokio::test]
async fn client_metrics_are_offered_and_pushes_are_checked() {
    let broker = TestBroker::start_with(|config| {
        config.client_metrics.push(rill_broker::client_telemetry::ClientMetricsSubscription {
            name: "producers".into(),
            metrics: vec!["org.apache.kafka.producer.".into()],
            interval_ms: 60_000,
            matches: [("client_id".to_owned(), "app-.*".to_owned())].into(),
        })
    })
    .await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let versions: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let offered: Vec<i16> =
        versions.api_keys.iter().map(|api| api.api_key).filter(|key| [71, 72, 74].contains(key)).collect();
    assert_eq!(offered, [71, 72, 74]);
    let asked: GetTelemetrySubscriptionsResponse =
        client.call(ApiKey::GetTelemetrySubscriptions, 0, &GetTelemetrySubscriptionsRequest::default()).await;
    assert_eq!(asked.error_code, 0);
    assert!(!asked.client_instance_id.is_nil());
    // The test client's id is not app-*: it is asked for nothing and to ask again after Kafka's default interval.
    assert!(asked.requested_metrics.is_empty());
    assert_eq!((asked.push_interval_ms, asked.accepted_compression_types.as_slice()), (300_000, &[4, 3, 1][..]));
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut app = KafkaClient::connect(addr).await.with_client_id("app-orders");
    let subscribed: GetTelemetrySubscriptionsResponse =
        app.call(ApiKey::GetTelemetrySubscriptions, 0, &GetTelemetrySubscriptionsRequest::default()).await;
    let metrics: Vec<&str> = subscribed.requested_metrics.iter().map(|m| m.as_str()).collect();
    assert_eq!((metrics, subscribed.push_interval_ms), (vec!["org.apache.kafka.producer."], 60_000));
    let push = |instance, subscription_id, compression_type| {
        PushTelemetryRequest::default()
            .with_client_instance_id(instance)
            .with_subscription_id(subscription_id)
            .with_compression_type(compression_type)
    };
    let app_id = subscribed.client_instance_id;
    let codes = [
        (push(asked.client_instance_id, asked.subscription_id, 0), 117),
        (push(app_id, subscribed.subscription_id + 1, 0), 117),
        (push(app_id, subscribed.subscription_id, 2), 76),
    ];
    for (request, code) in codes {
        let answer: PushTelemetryResponse = app.call(ApiKey::PushTelemetry, 0, &request).await;
        assert_eq!(answer.error_code, code);
    }
    let empty: PushTelemetryResponse =
        app.call(ApiKey::PushTelemetry, 0, &push(app_id, subscribed.subscription_id, 0)).await;
    assert_eq!(empty.error_code, 0, "an empty MetricsData is a push of nothing");
    let again: PushTelemetryResponse =
        app.call(ApiKey::PushTelemetry, 0, &push(app_id, subscribed.subscription_id, 0)).await;
    assert_eq!(again.error_code, 89, "THROTTLING_QUOTA_EXCEEDED: sooner than the interval allows");
}

/// Kafka's config resource type of a client metrics subscription (KIP-714).
const CLIENT_METRICS: i8 = 16;

fn alter_subscription(name: &str, changes: &[(&str, Option<&str>)]) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = changes
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_config_operation(if value.is_some() { 0 } else { 1 })
                .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let resource = AlterConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_configs(configs);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

/// Each key of subscription `name` as DescribeConfigs shows it: value, source, read-only.
async fn described_subscription(client: &mut KafkaClient, name: &str) -> Vec<(String, String, i8, bool)> {
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(StrBytes::from_string(name.into()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let answer: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request).await;
    let result = &answer.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                c.config_source,
                c.read_only,
            )
        })
        .collect()
}

async fn listed_resources(client: &mut KafkaClient, version: i16, types: Vec<i8>) -> (i16, Vec<(i8, String)>) {
    let request = ListConfigResourcesRequest::default().with_resource_types(types);
    let answer: ListConfigResourcesResponse = client.call(ApiKey::ListConfigResources, version, &request).await;
    let listed = answer.config_resources.iter().map(|r| (r.resource_type, r.resource_name.to_string())).collect();
    (answer.error_code, listed)
}

/// Subscriptions as Kafka's CLIENT_METRICS config resources: created by setting a key, described with their
/// sources, listed, altered (a client's next push is told to ask again, and then asked for the new metrics),
/// refused with what is allowed, kept over a restart, deleted with their last key; the node's own are read-only.
#[tokio::test]
async fn client_metrics_subscriptions_are_config_resources_altered_while_clients_run() {
    let mut broker = TestBroker::start_with(|config| {
        config.client_metrics.push(rill_broker::client_telemetry::ClientMetricsSubscription {
            name: "node-own".into(),
            metrics: vec!["org.apache.kafka.consumer.".into()],
            interval_ms: 60_000,
            matches: [("client_id".to_owned(), "consumer-.*".to_owned())].into(),
        })
    })
    .await;
    broker.create_topic("orders", 1).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect(addr).await;
    let mut app = KafkaClient::connect(addr).await.with_client_id("app-orders");
    let before: GetTelemetrySubscriptionsResponse =
        app.call(ApiKey::GetTelemetrySubscriptions, 0, &GetTelemetrySubscriptionsRequest::default()).await;
    assert!(before.requested_metrics.is_empty(), "no subscription matches app-orders yet");

    let create = alter_subscription(
        "apps",
        &[
            ("metrics", Some("org.apache.kafka.producer.")),
            ("interval.ms", Some("100")),
            ("match", Some("client_id=app-.*")),
        ],
    );
    let created: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &create).await;
    assert_eq!(created.responses[0].error_code, 0, "{:?}", created.responses[0].error_message);
    assert_eq!(
        described_subscription(&mut admin, "apps").await,
        [
            ("metrics".to_owned(), "org.apache.kafka.producer.".to_owned(), 7, false),
            ("interval.ms".to_owned(), "100".to_owned(), 7, false),
            ("match".to_owned(), "client_id=app-.*".to_owned(), 7, false),
        ]
    );
    let own = described_subscription(&mut admin, "node-own").await;
    assert_eq!(own[1], ("interval.ms".to_owned(), "60000".to_owned(), 4, true), "the node's own: static, read-only");
    let unknown = described_subscription(&mut admin, "nobody").await;
    assert_eq!(unknown[1], ("interval.ms".to_owned(), "300000".to_owned(), 5, false), "Kafka's defaults");
    // v0 has no type on the wire: read as the one it implies.
    let by_name = |names: &[&str]| names.iter().map(|n| (16, n.to_string())).collect::<Vec<_>>();
    assert_eq!(listed_resources(&mut admin, 0, vec![]).await, (0, by_name(&["apps", "node-own"])));
    let (code, all) = listed_resources(&mut admin, 1, vec![]).await;
    assert_eq!(code, 0);
    for wanted in [(2, "orders"), (4, "0"), (16, "apps"), (16, "node-own")] {
        assert!(all.contains(&(wanted.0, wanted.1.to_owned())), "{wanted:?} in {all:?}");
    }
    assert_eq!(listed_resources(&mut admin, 1, vec![16]).await.1.len(), 2);
    assert_eq!(listed_resources(&mut admin, 1, vec![16, 8]).await, (35, vec![]), "broker loggers are not served");

    // A running client: asked for the new subscription at its next ask, and pushes.
    let asked: GetTelemetrySubscriptionsResponse = app
        .call(
            ApiKey::GetTelemetrySubscriptions,
            0,
            &GetTelemetrySubscriptionsRequest::default().with_client_instance_id(before.client_instance_id),
        )
        .await;
    assert_eq!((asked.requested_metrics.len(), asked.push_interval_ms), (1, 100));
    let push = |subscription_id| {
        PushTelemetryRequest::default()
            .with_client_instance_id(asked.client_instance_id)
            .with_subscription_id(subscription_id)
    };
    let pushed: PushTelemetryResponse = app.call(ApiKey::PushTelemetry, 0, &push(asked.subscription_id)).await;
    assert_eq!(pushed.error_code, 0);
    // Altered: its next push is UNKNOWN_SUBSCRIPTION_ID, and its next ask gets what is asked now.
    let every_metric = alter_subscription("apps", &[("metrics", Some("*"))]);
    let altered: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &every_metric).await;
    assert_eq!(altered.responses[0].error_code, 0);
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let stale: PushTelemetryResponse = app.call(ApiKey::PushTelemetry, 0, &push(asked.subscription_id)).await;
    assert_eq!(stale.error_code, 117);
    let again: GetTelemetrySubscriptionsResponse = app
        .call(
            ApiKey::GetTelemetrySubscriptions,
            0,
            &GetTelemetrySubscriptionsRequest::default().with_client_instance_id(asked.client_instance_id),
        )
        .await;
    let metrics: Vec<&str> = again.requested_metrics.iter().map(|m| m.as_str()).collect();
    assert_eq!(metrics, [""], "every metric");

    // APPEND and SUBTRACT change a list key from what the subscription has; of another key, INVALID_CONFIG.
    let list_op = |key: &str, operation: i8, items: &str| {
        let mut request = alter_subscription("apps", &[(key, Some(items))]);
        request.resources[0].configs[0].config_operation = operation;
        request
    };
    for (request, code) in [
        (list_op("match", 2, "client_software_name=rill-.*"), 0),
        (list_op("metrics", 2, "org.apache.kafka.consumer."), 0),
        (list_op("metrics", 3, "*"), 0),
        (list_op("interval.ms", 2, "1000"), 40),
    ] {
        let answer: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
        assert_eq!(answer.responses[0].error_code, code, "{:?}", answer.responses[0].error_message);
    }
    let shown = described_subscription(&mut admin, "apps").await;
    assert_eq!(shown[0].1, "org.apache.kafka.consumer.");
    assert_eq!(shown[2].1, "client_id=app-.*,client_software_name=rill-.*");
    let back = alter_subscription("apps", &[("metrics", Some("*")), ("match", Some("client_id=app-.*"))]);
    let answer: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &back).await;
    assert_eq!(answer.responses[0].error_code, 0);

    // Refused, each saying what is allowed; nothing changed.
    let refusals = [
        (alter_subscription("apps", &[("interval.ms", Some("5"))]), "100 to 3600000"),
        (alter_subscription("apps", &[("match", Some("client_rack=a"))]), "client_software_name"),
        (alter_subscription("apps", &[("colour", Some("red"))]), "metrics, interval.ms and match"),
        (alter_subscription("node-own", &[("interval.ms", Some("1000"))]), "the node's own"),
        (alter_subscription("", &[("metrics", Some("*"))]), "needs a name"),
    ];
    for (request, allowed) in refusals {
        let refused: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
        let result = &refused.responses[0];
        assert_eq!(result.error_code, 40, "INVALID_CONFIG: {:?}", result.error_message);
        let message = result.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
        assert!(message.contains(allowed), "{allowed:?} in {message}");
    }
    let legacy =
        AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(CLIENT_METRICS)
            .with_resource_name(StrBytes::from_static_str("apps"))]);
    let legacy: AlterConfigsResponse = admin.call(ApiKey::AlterConfigs, 2, &legacy).await;
    assert_eq!(legacy.responses[0].error_code, 42, "INVALID_REQUEST: IncrementalAlterConfigs alters them");
    assert_eq!(described_subscription(&mut admin, "apps").await[1].1, "100");

    // Kept over a restart; deleted with its last key.
    let broker = broker.restart().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect(addr).await;
    assert_eq!(described_subscription(&mut admin, "apps").await[0].1, "*");
    let delete = alter_subscription("apps", &[("metrics", None), ("interval.ms", None), ("match", None)]);
    let deleted: IncrementalAlterConfigsResponse = admin.call(ApiKey::IncrementalAlterConfigs, 1, &delete).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(listed_resources(&mut admin, 0, vec![]).await, (0, by_name(&["node-own"])));
}

/// Fetch v13 to v17 name the topic by the id Metadata gives (v17 only adds a follower's tagged directory id).
#[tokio::test]
async fn fetch_by_topic_id_reads_the_records_at_every_version_from_13() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    assert_eq!(produce(&mut client, "t", 0, batch_of(&["by", "id"], 1)).await, (0, 0));
    let asked = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("t")))]));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 13, &asked).await;
    assert_eq!((metadata.error_code, metadata.topics[0].error_code), (0, 0));
    let id = metadata.topics[0].topic_id;
    assert!(!id.is_nil(), "v13 carries the topic's id");
    for version in 13..=17 {
        let request =
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default().with_topic_id(id).with_partitions(vec![
                    FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
                ])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, version, &request).await;
        let answer = &response.responses[0];
        assert_eq!((answer.topic_id, answer.partitions[0].error_code), (id, 0), "v{version}");
        let records = answer.partitions[0].records.clone().expect("records");
        assert_eq!(values_of(&records), [(0, "by".into()), (1, "id".into())], "v{version}");
    }
}
