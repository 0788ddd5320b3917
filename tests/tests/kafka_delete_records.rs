//! Deleting records before an offset, over Kafka's DeleteRecords (v0–v2) and gRPC's TopicAdmin.DeleteRecords: the
//! low watermark answered, reads below it refused (OFFSET_OUT_OF_RANGE / OUT_OF_RANGE), ListOffsets' earliest
//! there, per-partition error codes, Kafka's ACL (DELETE on the topic), and a restart keeping it. ListOffsets -3
//! keeps Kafka's answer, which a log start moved past the largest timestamp's record does not change.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, fetch_request, produce_request, TestBroker, PASSWORD};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// DeleteRecords of `(topic, partition, offset)`s at `version`: each partition's (error code, low watermark).
async fn delete_records(client: &mut KafkaClient, version: i16, asked: &[(&str, i32, i64)]) -> Vec<(i16, i64)> {
    let topics = asked
        .iter()
        .map(|(topic, partition, offset)| {
            DeleteRecordsTopic::default().with_name(TopicName(text(topic))).with_partitions(vec![
                DeleteRecordsPartition::default().with_partition_index(*partition).with_offset(*offset),
            ])
        })
        .collect();
    let request = DeleteRecordsRequest::default().with_topics(topics).with_timeout_ms(5_000);
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, version, &request).await;
    response.topics.iter().flat_map(|t| &t.partitions).map(|p| (p.error_code, p.low_watermark)).collect()
}

/// A Kafka Fetch v12 at `offset`: (error code, log start offset, first batch's base offset if any).
async fn fetch_at(client: &mut KafkaClient, topic: &str, offset: i64) -> (i16, i64, Option<i64>) {
    let request =
        FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(
            vec![FetchTopic::default().with_topic(TopicName(text(topic))).with_partitions(vec![
                FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
            ])],
        );
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
    let data = &response.responses[0].partitions[0];
    let first = data.records.as_ref().and_then(|records| rill_tests::values_of(records).first().map(|(o, _)| *o));
    (data.error_code, data.log_start_offset, first)
}

async fn earliest(client: &mut KafkaClient, topic: &str) -> i64 {
    client.list_offset(6, topic, 0, -2).await.offset
}

async fn produce_100(broker: &mut TestBroker, topic: &str) {
    let values: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    for chunk in values.chunks(10) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        broker.produce_values(topic, 0, &chunk).await;
    }
}

#[tokio::test]
async fn kafka_delete_records_moves_the_low_watermark_and_reads_below_it_are_out_of_range() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("purged", 2).await;
    produce_100(&mut broker, "purged").await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;

    assert_eq!(delete_records(&mut client, 0, &[("purged", 0, 35)]).await, [(0, 35)]);
    // v2 is flexible; an offset inside a batch is fine, and -1 is the high watermark (0 on the empty partition).
    let answered = delete_records(&mut client, 2, &[("purged", 0, 43), ("purged", 1, -1)]).await;
    assert_eq!(answered, [(0, 43), (0, 0)]);
    assert_eq!(fetch_at(&mut client, "purged", 10).await, (OFFSET_OUT_OF_RANGE, 43, None));
    assert_eq!(fetch_at(&mut client, "purged", 42).await.0, OFFSET_OUT_OF_RANGE);
    // At the start: the batch holding it comes whole (40..49), as Kafka's; the client drops what is below.
    assert_eq!(fetch_at(&mut client, "purged", 43).await, (0, 43, Some(40)));
    assert_eq!(earliest(&mut client, "purged").await, 43);

    // Per-partition refusals, the others served.
    let answered = delete_records(
        &mut client,
        1,
        &[("purged", 0, 101), ("purged", 0, -2), ("purged", 9, 1), ("nope", 0, 1), ("purged", 0, 20)],
    )
    .await;
    assert_eq!(
        answered,
        [
            (OFFSET_OUT_OF_RANGE, -1),
            (OFFSET_OUT_OF_RANGE, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (0, 43), // never back: the start as it is
        ]
    );

    // gRPC sees the same start, and its fetch below it is OUT_OF_RANGE with both bounds.
    let refused = broker.records.fetch(fetch_request("purged", 0, 10, 0, 0)).await.expect_err("below the start");
    assert_eq!(refused.code(), tonic::Code::OutOfRange);
    assert!(refused.message().contains("43"), "{}", refused.message());
    let described =
        broker.admin.describe_topic(v1::DescribeTopicRequest { name: "purged".into(), auto_create: false }).await;
    assert_eq!(described.expect("describe").into_inner().partitions[0].log_start_offset, 43);

    // A graceful restart keeps it (the SIGKILL case is cli/tests/cli_delete_records.rs).
    let mut broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    assert_eq!(earliest(&mut client, "purged").await, 43);
    assert_eq!(fetch_at(&mut client, "purged", 10).await.0, OFFSET_OUT_OF_RANGE);
    let values = broker.fetch_all_values("purged", 0, 43).await;
    assert_eq!((values.len(), values[0].clone()), (57, (43, "v43".to_owned())));
}

/// Kafka's rule for ListOffsets -3 (`UnifiedLog.fetchOffsetByTimestamp`): the segment with the largest
/// `maxTimestampSoFar`, which still counts records DeleteRecords removed from inside it, and no log start check.
/// So the answer stays the removed record's offset, below the log start, over both protocols; a consumer
/// seeking there is told "out of range" and resets (storage/tests/largest_timestamp.rs pins the log's side).
#[tokio::test]
async fn max_timestamp_answers_as_kafka_does_below_a_log_start_moved_past_it() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("clocks", 1).await;
    // Offsets 0 and 1 at 8_999 and 9_000 (the largest), then 2 and 3 at older times.
    for (values, base_timestamp_ms) in [(&["a", "peak"], 8_999), (&["late-1", "late-2"], 1_000)] {
        let request = produce_request("clocks", Some(0), batch_of(values, base_timestamp_ms), v1::Acks::Leader);
        broker.records.produce(request).await.expect("the batch is appended");
    }
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    assert_eq!(delete_records(&mut client, 2, &[("clocks", 0, 3)]).await, [(0, 3)]);

    let largest = client.list_offset(7, "clocks", 0, -3).await;
    assert_eq!((largest.error_code, largest.offset, largest.timestamp), (0, 1, 9_000), "{largest:?}");
    let request = v1::ListOffsetsRequest {
        topic: "clocks".into(),
        partitions: vec![0],
        spec: v1::OffsetSpec::MaxTimestamp as i32,
        timestamp_ms: 0,
    };
    let answered = broker.records.list_offsets(request).await.expect("answered").into_inner().offsets;
    assert_eq!((answered[0].offset, answered[0].log_start_offset), (1, 3), "gRPC gives the same, with the start");
}

#[tokio::test]
async fn grpc_delete_records_answers_each_partition_with_its_low_watermark_or_reason() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("purged", 1).await;
    produce_100(&mut broker, "purged").await;
    let request = v1::DeleteRecordsRequest {
        topic: "purged".into(),
        partitions: vec![
            v1::DeleteRecordsBefore { partition: 0, offset: 40 },
            v1::DeleteRecordsBefore { partition: 0, offset: 500 },
            v1::DeleteRecordsBefore { partition: 3, offset: 1 },
        ],
        timeout_ms: 0,
    };
    let results = broker.admin.delete_records(request).await.expect("answered").into_inner().partitions;
    assert_eq!((results[0].low_watermark, results[0].error_reason.as_str()), (40, ""));
    assert_eq!((results[1].low_watermark, results[1].error_reason.as_str()), (-1, "offset-out-of-range"));
    assert!(results[1].error_message.contains("high watermark 100"), "{}", results[1].error_message);
    assert_eq!(results[2].error_reason, "unknown-partition");
    assert_eq!(broker.fetch_values("purged", 0, 40).await.first(), Some(&(40, "v40".to_owned())));

    let unknown = v1::DeleteRecordsRequest { topic: "nope".into(), partitions: vec![], timeout_ms: 0 };
    assert_eq!(broker.admin.delete_records(unknown).await.expect_err("unknown").code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn kafka_delete_records_needs_delete_on_the_topic() {
    let broker = TestBroker::start_authorizing(&[("purged", 1)], &["admin", "app"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    let mut app = KafkaClient::connect_as(addr, "app", PASSWORD).await;
    let grant = |operation: i8| {
        CreateAclsRequest::default().with_creations(vec![AclCreation::default()
            .with_resource_type(2) // topic
            .with_resource_name(text("purged"))
            .with_resource_pattern_type(3) // literal
            .with_principal(text("User:app"))
            .with_host(text("*"))
            .with_operation(operation)
            .with_permission_type(3)]) // allow
    };
    let read = 3;
    let delete = 6;
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant(read)).await;
    assert_eq!(granted.results[0].error_code, 0);
    assert_eq!(delete_records(&mut app, 2, &[("purged", 0, 0)]).await, [(TOPIC_AUTHORIZATION_FAILED, -1)]);
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant(delete)).await;
    assert_eq!(granted.results[0].error_code, 0);
    assert_eq!(delete_records(&mut app, 2, &[("purged", 0, 0)]).await, [(0, 0)]);
}
