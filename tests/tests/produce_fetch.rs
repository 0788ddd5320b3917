//! Produce and fetch end to end: raw and structured records, replay from an offset and from a timestamp,
//! partitioning, acks, and every bad batch or offset.

use bytes::Bytes;
use rill_protocol::partitioner::partition_for_key;
use rill_protocol::v1;
use rill_tests::{assert_status, batch_of, fetch_request, keyed_batch, produce_request, values_of, TestBroker};
use tonic::Code;

#[tokio::test]
async fn produce_then_fetch_and_replay_from_any_offset() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    assert_eq!(broker.produce_values("t", 0, &["a", "b", "c"]).await, 0);
    assert_eq!(broker.produce_values("t", 0, &["d"]).await, 3);
    let all: Vec<_> = broker.fetch_values("t", 0, 0).await;
    assert_eq!(all, [(0, "a".into()), (1, "b".into()), (2, "c".into()), (3, "d".into())]);
    // Replay from the middle of a batch: the whole batch comes back, records before the offset are skipped.
    assert_eq!(broker.fetch_values("t", 0, 2).await, [(2, "c".into()), (3, "d".into())]);
    let at_end = broker.records.fetch(fetch_request("t", 0, 4, 0, 0)).await.unwrap().into_inner();
    assert!(at_end.record_batches.is_empty());
    assert_eq!((at_end.next_offset, at_end.high_watermark, at_end.log_start_offset), (4, 4, 0));
}

#[tokio::test]
async fn structured_records_go_in_and_come_out_without_the_codec() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("s", 1).await;
    let records = vec![
        v1::Record {
            key: Some(Bytes::from_static(b"k1")),
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![v1::RecordHeader { key: "trace".into(), value: Some(Bytes::from_static(b"42")) }],
            timestamp_ms: 5_000,
        },
        v1::Record { key: None, value: Some(Bytes::from_static(b"world")), headers: vec![], timestamp_ms: 0 },
    ];
    let request = v1::ProduceRequest {
        topic: "s".into(),
        partition: Some(0),
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records })),
        acks: v1::Acks::Leader as i32,
    };
    let produced = broker.records.produce(request).await.unwrap().into_inner();
    assert_eq!((produced.base_offset, produced.last_offset), (0, 1));
    assert!(produced.append_time_ms > 0);
    let fetched = broker
        .records
        .fetch(v1::FetchRequest { format: v1::RecordFormat::Structured as i32, ..fetch_request("s", 0, 1, 0, 0) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.records.len(), 1, "offset 0 is before the requested offset");
    assert_eq!(fetched.records[0].value.as_deref(), Some(&b"world"[..]));
    assert!(fetched.records[0].timestamp_ms > 1_000_000, "timestamp 0 became the broker's clock");
    assert_eq!(fetched.next_offset, 2);
    let first = broker
        .records
        .fetch(v1::FetchRequest { format: v1::RecordFormat::Structured as i32, ..fetch_request("s", 0, 0, 0, 0) })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(first[0].headers[0].key, "trace");
    assert_eq!(first[0].key.as_deref(), Some(&b"k1"[..]));
}

#[tokio::test]
async fn replay_from_a_timestamp_uses_list_offsets() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("ts", 1).await;
    for (i, base) in [1_000, 2_000, 3_000].iter().enumerate() {
        let request = produce_request("ts", Some(0), batch_of(&["x", "y"], *base), v1::Acks::Leader);
        assert_eq!(broker.records.produce(request).await.unwrap().into_inner().base_offset, 2 * i as i64);
    }
    let lookup = |spec: v1::OffsetSpec, timestamp_ms| v1::ListOffsetsRequest {
        topic: "ts".into(),
        partitions: vec![0],
        spec: spec as i32,
        timestamp_ms,
    };
    let offset_of = |r: v1::ListOffsetsResponse| r.offsets[0].offset;
    let at = broker.records.list_offsets(lookup(v1::OffsetSpec::Timestamp, 2_001)).await.unwrap().into_inner();
    assert_eq!(offset_of(at), 3, "record at 2001 is offset 3");
    let at = broker.records.list_offsets(lookup(v1::OffsetSpec::Timestamp, 9_999)).await.unwrap().into_inner();
    assert_eq!(offset_of(at), 6, "after every record: the high watermark");
    let earliest = broker.records.list_offsets(lookup(v1::OffsetSpec::Earliest, 0)).await.unwrap().into_inner();
    assert_eq!(offset_of(earliest), 0);
    let latest = broker.records.list_offsets(lookup(v1::OffsetSpec::Latest, 0)).await.unwrap().into_inner();
    assert_eq!((latest.offsets[0].offset, latest.offsets[0].high_watermark), (6, 6));
    assert_eq!(broker.fetch_values("ts", 0, 3).await[0], (3, "y".into()));

    let unknown = v1::ListOffsetsRequest { partitions: vec![7], ..lookup(v1::OffsetSpec::Latest, 0) };
    assert_status(broker.records.list_offsets(unknown).await, Code::NotFound, &["partition 7"]);
    broker.assert_serving().await;
}

#[tokio::test]
async fn keyed_records_go_to_the_key_hash_partition_and_keyless_ones_round_robin() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("k", 4).await;
    for key in ["alice", "bob", "carol", "dave"] {
        let expected = partition_for_key(key.as_bytes(), 4);
        for _ in 0..2 {
            let request = produce_request("k", None, keyed_batch(key, "v"), v1::Acks::Leader);
            assert_eq!(broker.records.produce(request).await.unwrap().into_inner().partition, expected, "{key}");
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let request = produce_request("k", None, batch_of(&["no key"], 1), v1::Acks::Leader);
        seen.insert(broker.records.produce(request).await.unwrap().into_inner().partition);
    }
    assert_eq!(seen.len(), 4, "four keyless batches visit every partition");
}

#[tokio::test]
async fn acks_none_answers_before_the_append_and_durable_after_the_fsync() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("a", 1).await;
    let none = broker.records.produce(produce_request("a", Some(0), batch_of(&["n"], 1), v1::Acks::None)).await;
    assert_eq!(none.unwrap().into_inner().base_offset, -1);
    let durable = broker.records.produce(produce_request("a", Some(0), batch_of(&["d"], 1), v1::Acks::Durable)).await;
    assert_eq!(durable.unwrap().into_inner().base_offset, 1, "the unacknowledged batch landed first, in order");
    assert_eq!(broker.fetch_values("a", 0, 0).await, [(0, "n".into()), (1, "d".into())]);
    let bad = broker.records.produce(produce_request("a", Some(0), Bytes::from_static(b"junk"), v1::Acks::None)).await;
    assert_status(bad, Code::InvalidArgument, &["invalid record batch"]);
}

fn batches_request(topic: &str, partition: Option<u32>, batches: &[&[u8]], acks: v1::Acks) -> v1::ProduceRequest {
    v1::ProduceRequest {
        records: Some(v1::produce_request::Records::RecordBatches(v1::RecordBatches {
            batches: batches.iter().map(|batch| Bytes::copy_from_slice(batch)).collect(),
        })),
        ..produce_request(topic, partition, Bytes::new(), acks)
    }
}

/// Several batches in one call land in order at consecutive offsets; one bad batch, an element that is not exactly
/// one whole batch, or no element refuses the whole call and appends nothing.
#[tokio::test]
async fn a_call_of_several_batches_appends_them_all_in_order_or_none() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("m", 1).await;
    let first = batch_of(&["a", "b"], 1);
    let second = batch_of(&["c"], 1);
    let third = batch_of(&["d", "e", "f"], 1);
    let request = batches_request("m", Some(0), &[&first, &second, &third], v1::Acks::Leader);
    let answer = broker.records.produce(request).await.expect("appended").into_inner();
    assert_eq!((answer.base_offset, answer.last_offset), (0, 5));
    let values: Vec<(i64, String)> =
        ["a", "b", "c", "d", "e", "f"].iter().enumerate().map(|(i, v)| (i as i64, v.to_string())).collect();
    assert_eq!(broker.fetch_values("m", 0, 0).await, values);

    let mut bad = batch_of(&["x"], 1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let refusals: [(&str, v1::ProduceRequest, &str); 5] = [
        ("a bad second batch", batches_request("m", Some(0), &[&first, &bad], v1::Acks::Leader), "checksum"),
        (
            "a cut last batch",
            batches_request("m", Some(0), &[&first, &second[..second.len() - 1]], v1::Acks::Leader),
            "says",
        ),
        (
            "two batches in one element",
            batches_request("m", Some(0), &[&[&first[..], &second[..]].concat()], v1::Acks::Leader),
            "says",
        ),
        ("no batch", batches_request("m", Some(0), &[], v1::Acks::Leader), "no batch"),
        ("acks none with a bad batch", batches_request("m", None, &[&first, &bad], v1::Acks::None), "checksum"),
    ];
    for (what, request, word) in refusals {
        let status = broker.records.produce(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {}", status.message());
        assert!(status.message().contains(word), "{what}: {:?} lacks {word:?}", status.message());
        assert_eq!(broker.fetch_values("m", 0, 0).await.len(), 6, "{what}: nothing appended");
    }
    // Half a million empty elements: refused as malformed, and the broker goes on serving.
    let empties = vec![&[][..]; 500_000];
    let status = broker.records.produce(batches_request("m", Some(0), &empties, v1::Acks::Leader)).await;
    assert_status(status, Code::InvalidArgument, &["invalid record batch"]);
    broker.assert_serving().await;
    let none = broker.records.produce(batches_request("m", None, &[&second, &first], v1::Acks::None)).await;
    assert_eq!(none.expect("queued").into_inner().base_offset, -1);
    let after = broker.produce_values("m", 0, &["g"]).await;
    assert_eq!(after, 9, "the unacknowledged call's three records landed first, in order");
    let tail: Vec<String> = broker.fetch_values("m", 0, 6).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(tail, ["c", "a", "b", "g"]);
}

/// Damages a valid batch in each way the issue lists; each is refused and nothing is appended.
#[tokio::test]
async fn bad_batches_are_invalid_argument_and_append_nothing() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("b", 1).await;
    let good = batch_of(&["one", "two"], 1).to_vec();

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let truncated = good[..good.len() - 3].to_vec();
    let mut long_length = good.clone();
    long_length[8..12].copy_from_slice(&(good.len() as i32).to_be_bytes()); // claims 12 bytes more than sent
    let mut too_many = good.clone();
    // Claim three records over two, and fix the CRC so that only the count is wrong.
    let mut header = rill_protocol::validate(&good).unwrap();
    header.record_count = 3;
    header.last_offset_delta = 2;
    rill_protocol::record::write_header(&mut too_many, &header);

    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("bad crc", bad_crc, "checksum"),
        ("truncated", truncated, "says"),
        ("length lie", long_length, "says"),
        ("count lie", too_many, "declares 3 records"),
        ("header only", good[..30].to_vec(), "truncated"),
    ];
    for (what, bytes, word) in cases {
        for partition in [Some(0), None] {
            let request = produce_request("b", partition, Bytes::from(bytes.clone()), v1::Acks::Leader);
            let result = broker.records.produce(request).await;
            let status = result.expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {}", status.message());
            assert!(status.message().contains("invalid record batch"), "{what}: {}", status.message());
            assert!(status.message().contains(word), "{what}: {:?} lacks {word:?}", status.message());
        }
        assert!(broker.fetch_values("b", 0, 0).await.is_empty(), "{what}: nothing appended");
    }
    let empty = v1::ProduceRequest { topic: "b".into(), partition: Some(0), records: None, acks: 0 };
    assert_status(
        broker.records.produce(empty).await,
        Code::InvalidArgument,
        &["record_batch, record_batches or record_list"],
    );
    broker.assert_serving().await;
    let empty_list = v1::ProduceRequest {
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList::default())),
        ..produce_request("b", Some(0), Bytes::new(), v1::Acks::Leader)
    };
    assert_status(broker.records.produce(empty_list).await, Code::InvalidArgument, &["at least one record"]);
    broker.assert_serving().await;
    assert_eq!(broker.produce_values("b", 0, &["good"]).await, 0, "the broker still serves");
}

#[tokio::test]
async fn oversized_batches_and_requests_are_resource_exhausted_with_the_limit() {
    let mut broker = TestBroker::start_with(|c| {
        c.max_batch_bytes = 64 << 10;
        c.max_request_bytes = 128 << 10;
    })
    .await;
    broker.create_topic("big", 1).await;
    let value = "x".repeat(70 << 10);
    let request = produce_request("big", Some(0), batch_of(&[&value], 1), v1::Acks::Leader);
    assert_status(broker.records.produce(request).await, Code::ResourceExhausted, &["65536"]);
    broker.assert_serving().await;
    let record = v1::Record { value: Some(Bytes::from(value.clone())), ..Default::default() };
    let structured = v1::ProduceRequest {
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records: vec![record] })),
        ..produce_request("big", Some(0), Bytes::new(), v1::Acks::Leader)
    };
    assert_status(broker.records.produce(structured).await, Code::ResourceExhausted, &["65536"]);
    broker.assert_serving().await;
    // In a call of several batches the limit holds for each.
    let small = batch_of(&["small"], 1);
    let big = batch_of(&[&value], 1);
    let several = batches_request("big", Some(0), &[&small, &big], v1::Acks::Leader);
    assert_status(broker.records.produce(several).await, Code::ResourceExhausted, &["65536"]);
    assert!(broker.fetch_values("big", 0, 0).await.is_empty(), "nothing of the call appended");
    // Past the request limit the gRPC layer refuses the message before decoding it.
    let huge = "y".repeat(200 << 10);
    let request = produce_request("big", Some(0), batch_of(&[&huge], 1), v1::Acks::Leader);
    assert_status(broker.records.produce(request).await, Code::ResourceExhausted, &["131072"]);
    broker.assert_serving().await;
    assert!(broker.fetch_values("big", 0, 0).await.is_empty());
    assert_eq!(broker.produce_values("big", 0, &["small"]).await, 0);
}

#[tokio::test]
async fn unknown_topics_partitions_and_out_of_range_offsets_are_named() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("o", 2).await;
    broker.produce_values("o", 0, &["a", "b", "c"]).await;
    let request = produce_request("nope", Some(0), batch_of(&["a"], 1), v1::Acks::Leader);
    assert_status(broker.records.produce(request).await, Code::NotFound, &["unknown topic", "nope"]);
    broker.assert_serving().await;
    let request = produce_request("o", Some(2), batch_of(&["a"], 1), v1::Acks::Leader);
    assert_status(broker.records.produce(request).await, Code::NotFound, &["partition 2", "0 to 1"]);
    broker.assert_serving().await;
    assert_status(broker.records.fetch(fetch_request("o", 9, 0, 0, 0)).await, Code::NotFound, &["partition 9"]);
    broker.assert_serving().await;
    let beyond = broker.records.fetch(fetch_request("o", 0, 4, 0, 0)).await;
    assert_status(beyond, Code::OutOfRange, &["offset 4", "0", "3"]);
    broker.assert_serving().await;
    let negative = broker.records.fetch(fetch_request("o", 0, -1, 0, 0)).await;
    assert_status(negative, Code::OutOfRange, &["-1", "0", "3"]);
    broker.assert_serving().await;
    assert_eq!(
        values_of(&broker.records.fetch(fetch_request("o", 0, 0, 0, 0)).await.unwrap().into_inner().record_batches)
            .len(),
        3
    );
}

#[tokio::test]
async fn retention_moves_the_log_start_and_older_offsets_are_out_of_range_with_both_bounds() {
    let mut broker = TestBroker::start_with(|c| c.maintenance_interval_ms = 10).await;
    let config = v1::TopicConfig {
        segment_bytes: Some(1024),
        max_batch_bytes: Some(1024),
        retention_bytes: Some(2048),
        ..Default::default()
    };
    let request =
        v1::CreateTopicRequest { name: "short".into(), partition_count: 1, config: Some(config), ..Default::default() };
    broker.admin.create_topic(request).await.unwrap();
    let value = "r".repeat(300);
    for _ in 0..20 {
        broker.produce_values("short", 0, &[&value]).await;
    }
    // The maintenance task applies retention in the background: poll its effect, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log_start = loop {
        let described = broker
            .admin
            .describe_topic(v1::DescribeTopicRequest { name: "short".into(), auto_create: false })
            .await
            .unwrap()
            .into_inner();
        // Done once the partition is within its retention size; from then on the log start stays put.
        let partition = &described.partitions[0];
        if partition.size_bytes <= 2048 {
            assert!(partition.log_start_offset > 0);
            break partition.log_start_offset;
        }
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let below = broker.records.fetch(fetch_request("short", 0, 0, 0, 0)).await;
    assert_status(below, Code::OutOfRange, &["offset 0", &log_start.to_string(), "20"]);
    broker.assert_serving().await;
    let subscribe = v1::SubscribeRequest {
        topic: "short".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    assert_status(broker.records.subscribe(subscribe).await, Code::OutOfRange, &[&log_start.to_string()]);
    broker.assert_serving().await;
    let kept = broker.fetch_values("short", 0, log_start).await;
    assert_eq!(kept.first().map(|(o, _)| *o), Some(log_start), "reads from the new log start work");
}

/// With one append slot for the whole broker, eight partitions written at once, durably, all still progress.
#[tokio::test]
async fn partitions_share_the_append_slots_and_all_progress() {
    let mut broker = TestBroker::start_with(|c| c.appends_in_flight = 1).await;
    let config = v1::TopicConfig { durability: v1::DurabilityPolicy::Always as i32, ..Default::default() };
    let request =
        v1::CreateTopicRequest { name: "slots".into(), partition_count: 8, config: Some(config), ..Default::default() };
    broker.admin.create_topic(request).await.unwrap();
    let mut producers = Vec::new();
    for p in 0..8u32 {
        let mut records = broker.records.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..20 {
                let value = format!("p{p}-{i}");
                let request = produce_request("slots", Some(p), batch_of(&[&value], 1), v1::Acks::Durable);
                assert_eq!(records.produce(request).await.unwrap().into_inner().base_offset, i);
            }
        }));
    }
    for producer in producers {
        tokio::time::timeout(std::time::Duration::from_secs(30), producer)
            .await
            .expect("no partition starves")
            .unwrap();
    }
    for p in 0..8 {
        assert_eq!(broker.fetch_all_values("slots", p, 0).await.len(), 20);
    }
    let zero = rill_broker::BrokerConfig { appends_in_flight: 0, ..rill_broker::BrokerConfig::default() };
    let err = zero.validate().expect_err("no slot at all").to_string();
    assert!(err.contains("appends_in_flight"), "{err}");
}

#[tokio::test]
async fn concurrent_producers_on_an_always_topic_are_all_acknowledged_and_readable() {
    let mut broker = TestBroker::start().await;
    let config = v1::TopicConfig { durability: v1::DurabilityPolicy::Always as i32, ..Default::default() };
    let request =
        v1::CreateTopicRequest { name: "sync".into(), partition_count: 1, config: Some(config), ..Default::default() };
    broker.admin.create_topic(request).await.unwrap();
    let mut producers = Vec::new();
    for p in 0..8 {
        let mut records = broker.records.clone();
        producers.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..25 {
                let value = format!("p{p}-{i}");
                let request = produce_request("sync", Some(0), batch_of(&[&value], 1), v1::Acks::Leader);
                offsets.push(records.produce(request).await.unwrap().into_inner().base_offset);
            }
            offsets
        }));
    }
    let mut acknowledged = Vec::new();
    for producer in producers {
        let offsets = producer.await.unwrap();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one producer's batches land in order");
        acknowledged.extend(offsets);
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (0..200).collect::<Vec<i64>>(), "every batch acknowledged once, offsets dense");
    let offsets: Vec<i64> = broker.fetch_all_values("sync", 0, 0).await.into_iter().map(|(o, _)| o).collect();
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>(), "every acknowledged record is readable");
}

#[tokio::test]
async fn unknown_enum_values_are_invalid_argument_naming_the_field() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("e", 1).await;
    let mut request = produce_request("e", Some(0), batch_of(&["v"], 1), v1::Acks::Leader);
    request.acks = 99;
    assert_status(broker.records.produce(request).await, Code::InvalidArgument, &["acks", "99"]);
    broker.assert_serving().await;
    let fetch = v1::FetchRequest { format: 42, ..fetch_request("e", 0, 0, 0, 0) };
    assert_status(broker.records.fetch(fetch).await, Code::InvalidArgument, &["format", "42"]);
    broker.assert_serving().await;
    let lookup = v1::ListOffsetsRequest { topic: "e".into(), partitions: vec![], spec: 7, timestamp_ms: 0 };
    assert_status(broker.records.list_offsets(lookup).await, Code::InvalidArgument, &["spec", "7"]);
    broker.assert_serving().await;
    let create = v1::CreateTopicRequest {
        name: "f".into(),
        partition_count: 1,
        config: Some(v1::TopicConfig { durability: 9, ..Default::default() }),
        ..Default::default()
    };
    assert_status(broker.admin.create_topic(create).await, Code::InvalidArgument, &["durability", "9"]);
    broker.assert_serving().await;
    assert_eq!(broker.produce_values("e", 0, &["fine"]).await, 0);
}
