//! Produce-side validation end to end: every batch Kafka's broker refuses is refused with INVALID_ARGUMENT and
//! leaves the log as it was; a LogAppendTime batch is stamped with the broker's clock; STRUCTURED fetches decode
//! compressed batches; a request that is not protobuf is INVALID_ARGUMENT.

use bytes::{Buf, BufMut, Bytes};
use rill_protocol::batch::{HEADER_BYTES, LOG_OVERHEAD};
use rill_protocol::compressed::compress_batch;
use rill_protocol::record::write_header;
use rill_protocol::v1;
use rill_protocol::{BatchHeader, BatchIter, Compression};
use rill_tests::{batch_of, fetch_request, produce_request, TestBroker};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Rewrites header fields of a valid batch and recomputes the CRC, so only the field under test is wrong.
fn with_header(batch: &[u8], change: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
    let mut batch = batch.to_vec();
    let mut header = BatchHeader::parse(&batch).expect("a batch");
    change(&mut header);
    write_header(&mut batch, &header);
    batch
}

/// A batch whose header claims `record_count` records over the given records section (valid CRC and length).
fn batch_around(section: &[u8], record_count: i32, attributes: i16) -> Vec<u8> {
    let mut batch = batch_of(&["template"], 1_000)[..HEADER_BYTES].to_vec();
    batch.extend_from_slice(section);
    with_header(&batch, |h| {
        h.batch_length = (HEADER_BYTES + section.len() - LOG_OVERHEAD) as i32;
        h.record_count = record_count;
        h.last_offset_delta = (record_count - 1).max(0);
        h.attributes = attributes;
    })
}

async fn high_watermark(broker: &mut TestBroker, topic: &str) -> i64 {
    let request = v1::ListOffsetsRequest {
        topic: topic.into(),
        partitions: vec![0],
        spec: v1::OffsetSpec::Latest as i32,
        timestamp_ms: 0,
    };
    broker.records.list_offsets(request).await.expect("list offsets").into_inner().offsets[0].high_watermark
}

async fn fetch_structured(broker: &mut TestBroker, topic: &str, offset: i64) -> Vec<v1::FetchedRecord> {
    let request =
        v1::FetchRequest { format: v1::RecordFormat::Structured as i32, ..fetch_request(topic, 0, offset, 0, 0) };
    broker.records.fetch(request).await.expect("structured fetch").into_inner().records
}

#[tokio::test]
async fn each_batch_kafka_refuses_is_invalid_argument_and_appends_nothing() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("v", 1).await;
    assert_eq!(broker.produce_values("v", 0, &["good"]).await, 0);
    let good = batch_of(&["a", "b", "c"], 5_000);
    let zstd = compress_batch(&good, Compression::Zstd, 3).expect("zstd");
    let plain_records = &good[HEADER_BYTES..];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("61 bytes claiming 2^31-1 records", batch_around(&[], i32::MAX, 0), "declares 2147483647 records but holds 0"),
        ("a zstd flag over no records", batch_around(&[], i32::MAX, Compression::Zstd.attribute_bits()), "zstd"),
        (
            "zstd whose payload is plain text",
            batch_around(b"plain text", 1, Compression::Zstd.attribute_bits()),
            "cannot decompress",
        ),
        ("a gzip flag on uncompressed records", with_header(&good, |h| h.attributes |= 1), "gzip"),
        (
            "a count below the records present",
            with_header(&good, |h| (h.record_count, h.last_offset_delta) = (2, 1)),
            "declares 2 records but holds 3",
        ),
        (
            "a zstd count below the records present",
            with_header(&zstd, |h| (h.record_count, h.last_offset_delta) = (2, 1)),
            "declares 2 records but holds 3",
        ),
        (
            "a count that is not last offset delta + 1",
            with_header(&good, |h| h.last_offset_delta = 7),
            "last offset delta",
        ),
        ("no records", batch_around(&[], 0, 0), "at least one record"),
        ("a lying max timestamp", with_header(&good, |h| h.max_timestamp += 1_000_000), "max timestamp"),
        ("a control batch", with_header(&good, |h| h.attributes |= 0x20), "control"),
        ("a transactional batch without a producer id", with_header(&good, |h| h.attributes |= 0x10), "producer id"),
        (
            "records with offset deltas out of order",
            batch_around(&[plain_records, plain_records].concat(), 6, 0),
            "offset delta",
        ),
    ];
    for (what, batch, words) in cases {
        for (partition, acks) in [(Some(0), v1::Acks::Leader), (None, v1::Acks::Leader), (Some(0), v1::Acks::None)] {
            let request = produce_request("v", partition, Bytes::from(batch.clone()), acks);
            let status = broker.records.produce(request).await.expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {}", status.message());
            assert!(status.message().contains("invalid record batch"), "{what}: {}", status.message());
            assert!(status.message().contains(words), "{what}: {:?} lacks {words:?}", status.message());
        }
        assert_eq!(high_watermark(&mut broker, "v").await, 1, "{what}: nothing appended");
    }
    // The good record before the refusals is still served, raw and structured.
    assert_eq!(broker.fetch_values("v", 0, 0).await, [(0, "good".to_string())]);
    assert_eq!(fetch_structured(&mut broker, "v", 0).await.len(), 1);
    broker.assert_serving().await;
}

#[tokio::test]
async fn a_bad_batch_among_several_refuses_the_whole_call() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("m", 1).await;
    let good = batch_of(&["a"], 1);
    let lying = with_header(&good, |h| h.max_timestamp = 0);
    let request = v1::ProduceRequest {
        records: Some(v1::produce_request::Records::RecordBatches(v1::RecordBatches {
            batches: vec![good.clone(), good, Bytes::from(lying)],
        })),
        ..produce_request("m", Some(0), Bytes::new(), v1::Acks::Leader)
    };
    let status = broker.records.produce(request).await.expect_err("a lying third batch");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("max timestamp"), "{}", status.message());
    assert_eq!(high_watermark(&mut broker, "m").await, 0);
}

#[tokio::test]
async fn a_log_append_time_batch_is_stamped_with_the_broker_clock() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("lat", 1).await;
    let before_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Record timestamps 5 and 6, max timestamp a lie: LogAppendTime ignores both.
    let batch = with_header(&batch_of(&["x", "y"], 5), |h| {
        h.attributes |= 0x08;
        h.max_timestamp = 42;
    });
    let produced = broker.records.produce(produce_request("lat", Some(0), Bytes::from(batch), v1::Acks::Leader));
    let produced = produced.await.expect("a LogAppendTime batch is accepted").into_inner();
    let after_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert_eq!((produced.base_offset, produced.last_offset), (0, 1));

    let fetched = broker.records.fetch(fetch_request("lat", 0, 0, 0, 0)).await.expect("fetch").into_inner();
    let stored = BatchIter::new(fetched.record_batches).next().expect("one batch").expect("parses");
    rill_protocol::validate(&stored.bytes).expect("the stamped batch's CRC holds");
    let stamped = stored.header.max_timestamp;
    assert!((before_ms..=after_ms).contains(&stamped), "{stamped} not within {before_ms}..={after_ms}");
    let structured = fetch_structured(&mut broker, "lat", 0).await;
    assert!(structured.iter().all(|r| r.timestamp_ms == stamped), "{structured:?}");
    // ListOffsets by time sees the broker's time, not the producer's.
    let lookup = |timestamp_ms| v1::ListOffsetsRequest {
        topic: "lat".into(),
        partitions: vec![0],
        spec: v1::OffsetSpec::Timestamp as i32,
        timestamp_ms,
    };
    let at = broker.records.list_offsets(lookup(stamped)).await.expect("lookup").into_inner();
    assert_eq!(at.offsets[0].offset, 0);
    let later = broker.records.list_offsets(lookup(stamped + 1)).await.expect("lookup").into_inner();
    assert_eq!(later.offsets[0].offset, 2, "nothing is later than the stamp");
}

/// `message.timestamp.type=LogAppendTime` on the topic: every batch is stamped, whatever its producer flagged,
/// batches and record lists alike, and the answer's append time is the stamp.
#[tokio::test]
async fn a_log_append_time_topic_stamps_every_batch_with_the_broker_clock() {
    let mut broker = TestBroker::start().await;
    let config = v1::TopicConfig { message_timestamp_type: Some("LogAppendTime".into()), ..Default::default() };
    let request = v1::CreateTopicRequest {
        name: "stamped".into(),
        partition_count: 1,
        config: Some(config),
        ..Default::default()
    };
    let info = broker.admin.create_topic(request).await.expect("created").into_inner();
    let config = info.topic.and_then(|t| t.config).and_then(|c| c.message_timestamp_type);
    assert_eq!(config.as_deref(), Some("LogAppendTime"));
    let plain = broker.records.produce(produce_request("stamped", Some(0), batch_of(&["a", "b"], 5), v1::Acks::Leader));
    let plain = plain.await.expect("a CreateTime batch is accepted").into_inner();
    let list = v1::ProduceRequest {
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList {
            records: vec![v1::Record { value: Some(Bytes::from_static(b"c")), timestamp_ms: 7, ..Default::default() }],
        })),
        ..produce_request("stamped", Some(0), Bytes::new(), v1::Acks::Leader)
    };
    let listed = broker.records.produce(list).await.expect("a record list is accepted").into_inner();
    let fetched = broker.records.fetch(fetch_request("stamped", 0, 0, 0, 0)).await.expect("fetch").into_inner();
    let stored: Vec<BatchHeader> =
        BatchIter::new(fetched.record_batches).map(|batch| batch.expect("whole batches").header).collect();
    assert_eq!(stored.len(), 2);
    for (header, answered) in stored.iter().zip([&plain, &listed]) {
        assert_eq!(header.timestamp_type(), rill_protocol::TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, answered.append_time_ms, "the answer reports the stamp");
    }
    let structured = fetch_structured(&mut broker, "stamped", 0).await;
    assert_eq!(
        structured.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
        [stored[0].max_timestamp, stored[0].max_timestamp, stored[1].max_timestamp]
    );
}

/// `message.timestamp.before.max.ms` / `after.max.ms`: a record further from the broker's clock is refused with
/// the reason `invalid-timestamp`, naming the bound, and nothing of the call is stored.
#[tokio::test]
async fn records_outside_the_topics_timestamp_bounds_are_refused() {
    let mut broker = TestBroker::start().await;
    let config = v1::TopicConfig {
        message_timestamp_before_max_ms: Some(3_600_000),
        message_timestamp_after_max_ms: Some(60_000),
        ..Default::default()
    };
    let request = v1::CreateTopicRequest {
        name: "bounded".into(),
        partition_count: 1,
        config: Some(config),
        ..Default::default()
    };
    broker.admin.create_topic(request).await.expect("created");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (timestamp, bound) in [
        (now - 7_200_000, "message.timestamp.before.max.ms=3600000"),
        (now + 600_000, "message.timestamp.after.max.ms=60000"),
    ] {
        let batches = v1::ProduceRequest {
            records: Some(v1::produce_request::Records::RecordBatches(v1::RecordBatches {
                batches: vec![batch_of(&["fine"], now), batch_of(&["off"], timestamp)],
            })),
            ..produce_request("bounded", Some(0), Bytes::new(), v1::Acks::Leader)
        };
        let refused = broker.records.produce(batches).await.expect_err("out of bounds");
        assert_eq!(refused.code(), Code::InvalidArgument, "{}", refused.message());
        assert!(refused.message().contains(bound), "{}", refused.message());
        assert_eq!(rill_protocol::reason::reason_of(&refused), Some(rill_protocol::reason::Reason::InvalidTimestamp));
    }
    assert_eq!(high_watermark(&mut broker, "bounded").await, 0, "nothing of a refused call is stored");
    let within = produce_request("bounded", Some(0), batch_of(&["within"], now - 1_800_000), v1::Acks::Leader);
    broker.records.produce(within).await.expect("within the bounds");
    broker.assert_serving().await;
}

/// `compression.type` naming a codec: a batch in another codec is stored in that one (its records, offsets and
/// producer fields the same), one already in it as sent; a record list without a partition still goes by its
/// first key, read before the recompression.
#[tokio::test]
async fn a_topics_compression_type_recompresses_batches_into_its_codec() {
    let mut broker = TestBroker::start().await;
    for (name, codec) in [("zstd-topic", "zstd"), ("plain-topic", "uncompressed")] {
        let config = v1::TopicConfig { compression_type: Some(codec.into()), ..Default::default() };
        let request = v1::CreateTopicRequest {
            name: name.into(),
            partition_count: 4,
            config: Some(config),
            ..Default::default()
        };
        let created = broker.admin.create_topic(request).await.expect("created").into_inner();
        let shown = created.topic.and_then(|t| t.config).and_then(|c| c.compression_type);
        assert_eq!(shown.as_deref(), Some(codec));
    }
    let values: Vec<String> = (0..50).map(|i| format!("value {i} ").repeat(20)).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let plain = batch_of(&values, 1_000);
    let lz4 = Bytes::from(compress_batch(&plain, Compression::Lz4, 0).unwrap());
    let zstd = Bytes::from(compress_batch(&plain, Compression::Zstd, 3).unwrap());
    let cases = [
        ("zstd-topic", plain.clone(), Compression::Zstd, false),
        ("zstd-topic", lz4.clone(), Compression::Zstd, false),
        ("zstd-topic", zstd.clone(), Compression::Zstd, true),
        ("plain-topic", lz4, Compression::None, false),
    ];
    for (topic, batch, stored_codec, is_as_sent) in cases {
        let produced = broker.records.produce(produce_request(topic, Some(0), batch.clone(), v1::Acks::Leader));
        let offset = produced.await.expect("produced").into_inner().base_offset;
        let fetched = broker.records.fetch(fetch_request(topic, 0, offset, 0, 0)).await.expect("fetch").into_inner();
        let stored = BatchIter::new(fetched.record_batches).next().expect("a batch").expect("whole");
        assert_eq!(stored.header.compression().unwrap(), stored_codec, "{topic}");
        assert_eq!(stored.header.record_count, 50);
        assert_eq!(stored.bytes[16..] == batch[16..], is_as_sent, "{topic}: stored as sent only in its own codec");
        let read: Vec<String> = fetch_structured(&mut broker, topic, offset)
            .await
            .into_iter()
            .take(50)
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(read, values, "{topic}");
    }
    // No partition named: the first record's key picks it, as on any topic.
    for key in ["a", "b", "c", "d", "e"] {
        let list = v1::ProduceRequest {
            partition: None,
            records: Some(v1::produce_request::Records::RecordList(v1::RecordList {
                records: vec![v1::Record {
                    key: Some(Bytes::from(key)),
                    value: Some(Bytes::from_static(b"v")),
                    ..Default::default()
                }],
            })),
            ..produce_request("zstd-topic", None, Bytes::new(), v1::Acks::Leader)
        };
        let produced = broker.records.produce(list).await.expect("produced").into_inner();
        assert_eq!(produced.partition, rill_protocol::partitioner::partition_for_key(key.as_bytes(), 4), "key {key}");
    }
}

/// Kafka's level configs (KIP-390) decide how a topic whose `compression.type` names a codec stores a batch: the
/// stored batch is the one `compress_batch` makes at the topic's level, a level set after creation applies to the
/// next batch, and a level out of its codec's range is refused at create with what is allowed.
#[tokio::test]
async fn a_topics_compression_level_is_the_level_its_batches_are_stored_at() {
    let mut broker = TestBroker::start().await;
    let topics = [("zstd-1", "zstd", 1), ("zstd-19", "zstd", 19), ("gzip-1", "gzip", 1), ("lz4-12", "lz4", 12)];
    for (name, codec, level) in topics {
        let mut config = v1::TopicConfig { compression_type: Some(codec.into()), ..Default::default() };
        match codec {
            "zstd" => config.compression_zstd_level = Some(level),
            "gzip" => config.compression_gzip_level = Some(level),
            _ => config.compression_lz4_level = Some(level),
        }
        let request = v1::CreateTopicRequest {
            name: name.into(),
            partition_count: 1,
            config: Some(config),
            ..Default::default()
        };
        let created = broker.admin.create_topic(request).await.expect("created").into_inner();
        let config = created.topic.and_then(|t| t.config).expect("a config");
        let shown = [config.compression_zstd_level, config.compression_gzip_level, config.compression_lz4_level];
        assert!(shown.contains(&Some(level)), "{name}: {config:?}");
    }
    let values: Vec<String> = (0..400).map(|i| format!("{{\"order\": {}, \"status\": \"paid\"}} ", i % 37)).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let plain = batch_of(&values, 1_000);
    let expected = |codec, level| compress_batch(&plain, codec, level).unwrap();
    // Offsets and the CRC aside (bytes 0..8 and 17..21), the stored batch is the one made at the topic's level.
    let same = |stored: &[u8], made: &[u8]| stored.len() == made.len() && stored[21..] == made[21..];
    let zstd_1 = stored_batch(&mut broker, &plain, "zstd-1").await;
    assert!(same(&zstd_1, &expected(Compression::Zstd, 1)), "zstd level 1");
    let zstd_19 = stored_batch(&mut broker, &plain, "zstd-19").await;
    assert!(same(&zstd_19, &expected(Compression::Zstd, 19)), "zstd level 19");
    assert!(zstd_19.len() < zstd_1.len(), "19 smaller than 1: {} and {}", zstd_19.len(), zstd_1.len());
    assert!(same(&stored_batch(&mut broker, &plain, "gzip-1").await, &expected(Compression::Gzip, 1)), "gzip level 1");
    assert!(same(&stored_batch(&mut broker, &plain, "lz4-12").await, &expected(Compression::Lz4, 12)), "lz4 HC at 12");
    let set = v1::TopicConfig { compression_zstd_level: Some(19), ..Default::default() };
    let alter = v1::AlterTopicConfigRequest { name: "zstd-1".into(), set: Some(set), ..Default::default() };
    broker.admin.alter_topic_config(alter).await.expect("altered");
    assert!(
        same(&stored_batch(&mut broker, &plain, "zstd-1").await, &expected(Compression::Zstd, 19)),
        "the next batch at 19"
    );
    let config = v1::TopicConfig {
        compression_type: Some("zstd".into()),
        compression_zstd_level: Some(23),
        ..Default::default()
    };
    let request = v1::CreateTopicRequest {
        name: "zstd-23".into(),
        partition_count: 1,
        config: Some(config),
        ..Default::default()
    };
    let refused = broker.admin.create_topic(request).await.expect_err("out of range");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("from -131072 (fastest) to 22"), "{}", refused.message());
    broker.assert_serving().await;
}

/// A node's default compression (Kafka's broker `compression.type` and levels) is what a topic created without
/// its own gets: its batches are stored in that codec at that level, it is shown as the topic's, and a topic that
/// names `producer` keeps batches as sent.
#[tokio::test]
async fn a_brokers_default_compression_is_what_topics_created_without_their_own_store() {
    let mut broker = TestBroker::start_with(|config| {
        config.default_compression_type = rill_broker::TopicCompression::Zstd;
        config.default_compression_levels.zstd = Some(19);
    })
    .await;
    broker.create_topic("plain-default", 1).await;
    let as_sent = v1::TopicConfig { compression_type: Some("producer".into()), ..Default::default() };
    let gzip = v1::TopicConfig { compression_type: Some("gzip".into()), ..Default::default() };
    for (name, config) in [("as-sent", as_sent), ("gzip", gzip)] {
        let request = v1::CreateTopicRequest {
            name: name.into(),
            partition_count: 1,
            config: Some(config),
            ..Default::default()
        };
        broker.admin.create_topic(request).await.expect("created");
    }
    let described = broker
        .admin
        .describe_topic(v1::DescribeTopicRequest { name: "plain-default".into(), auto_create: false })
        .await;
    let config = described.expect("described").into_inner().topic.and_then(|t| t.config).expect("a config");
    assert_eq!((config.compression_type.as_deref(), config.compression_zstd_level), (Some("zstd"), Some(19)));

    let values: Vec<String> = (0..400).map(|i| format!("{{\"order\": {}, \"status\": \"paid\"}} ", i % 37)).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let plain = batch_of(&values, 1_000);
    let same = |stored: &[u8], made: &[u8]| stored.len() == made.len() && stored[21..] == made[21..];
    let stored = stored_batch(&mut broker, &plain, "plain-default").await;
    assert!(same(&stored, &compress_batch(&plain, Compression::Zstd, 19).unwrap()), "zstd at the node's level 19");
    let stored = stored_batch(&mut broker, &plain, "gzip").await;
    assert!(same(&stored, &compress_batch(&plain, Compression::Gzip, 6).unwrap()), "the topic's codec, gzip's level");
    assert_eq!(stored_batch(&mut broker, &plain, "as-sent").await[21..], plain[21..], "producer: kept as sent");
    broker.assert_serving().await;
}

/// What `topic` stores of `batch`, produced to its partition 0 and fetched back.
async fn stored_batch(broker: &mut TestBroker, batch: &Bytes, topic: &str) -> Vec<u8> {
    let request = produce_request(topic, Some(0), batch.clone(), v1::Acks::Leader);
    let offset = broker.records.produce(request).await.expect("produced").into_inner().base_offset;
    let fetched = broker.records.fetch(fetch_request(topic, 0, offset, 0, 0)).await.expect("fetch");
    let stored = BatchIter::new(fetched.into_inner().record_batches).next().expect("a batch").expect("whole");
    stored.bytes.to_vec()
}

#[tokio::test]
async fn structured_fetch_decodes_compressed_batches_of_every_codec() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("c", 1).await;
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for (i, codec) in codecs.iter().enumerate() {
        let values = [format!("{codec:?}-a"), format!("{codec:?}-b")];
        let plain = batch_of(&[&values[0], &values[1]], 1_000 + i as i64);
        let batch = compress_batch(&plain, *codec, 3).expect("compress");
        let request = produce_request("c", Some(0), Bytes::from(batch), v1::Acks::Leader);
        assert_eq!(broker.records.produce(request).await.expect("produce").into_inner().base_offset, 2 * i as i64);
    }
    let records = fetch_structured(&mut broker, "c", 3).await;
    let seen: Vec<(i64, String)> = records
        .iter()
        .map(|r| (r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()))
        .collect();
    let expected: Vec<(i64, String)> = (3..10)
        .map(|offset| (offset, format!("{:?}-{}", codecs[offset as usize / 2], ["a", "b"][offset as usize % 2])))
        .collect();
    assert_eq!(seen, expected);
}

/// Sends raw bytes as the gRPC message, whatever they hold.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test]
async fn a_produce_request_that_is_not_protobuf_is_invalid_argument() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("g", 1).await;
    let url = broker.handle.as_ref().expect("running").url();
    let channel = tonic::transport::Channel::from_shared(url).expect("url").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    // A truncated varint; a field of wire type 7 (there is none); a topic (field 1) that is not UTF-8.
    for garbage in [&b"\xff\xff\xff"[..], b"\x0f\x00", b"\x0a\x02\xc3\x28"] {
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/rill.v1.Records/Produce");
        let answer = grpc.unary(tonic::Request::new(Bytes::from_static(garbage)), path, RawBytes).await;
        let status = answer.expect_err("garbage is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{garbage:?}: {}", status.message());
        assert!(status.message().contains("not a valid ProduceRequest"), "{}", status.message());
    }
    assert_eq!(high_watermark(&mut broker, "g").await, 0);
    broker.assert_serving().await;
}

/// Every call, not only Produce: a request that does not parse is the caller's error, as the proto promises.
#[tokio::test]
async fn any_request_that_is_not_protobuf_is_invalid_argument() {
    let mut broker = TestBroker::start().await;
    let url = broker.handle.as_ref().expect("running").url();
    let channel = tonic::transport::Channel::from_shared(url).expect("url").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    let paths = ["/rill.v1.Records/Fetch", "/rill.v1.TopicAdmin/CreateTopic", "/rill.v1.ConsumerGroups/CommitOffsets"];
    for path in paths {
        for garbage in [&b"\xff\xff\xff"[..], b"\x0f\x00"] {
            grpc.ready().await.expect("ready");
            let path_and_query = tonic::codegen::http::uri::PathAndQuery::from_static(path);
            let answer = grpc.unary(tonic::Request::new(Bytes::from_static(garbage)), path_and_query, RawBytes).await;
            let status = answer.expect_err("garbage is refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{path} {garbage:?}: {}", status.message());
            assert!(status.message().contains("malformed protobuf message"), "{}", status.message());
        }
    }
    broker.assert_serving().await;
}
