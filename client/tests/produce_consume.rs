//! Producer and consumer against an embedded broker: round trip, batching and linger, partitioning,
//! compression, back-pressure, seeks, commits, fan-out.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{consume, create_topic, value_str, TestBroker, DEADLINE};
use futures_util::StreamExt;
use rill_client::{
    Acks, Compression, Consumer, ConsumerConfig, Header, OffsetReset, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use rill_protocol::partitioner::partition_for_key;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

#[tokio::test]
async fn produced_records_come_back_in_order_with_keys_headers_and_timestamps() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "orders", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..100 {
        let record = ProducerRecord::new(format!("order {i}"))
            .with_key(format!("customer-{}", i % 7))
            .with_header("seq", i.to_string())
            .with_timestamp_ms(1_700_000_000_000 + i);
        deliveries.push(producer.send("orders", record).await.expect("enqueued"));
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let stored = delivery.await.expect("acknowledged");
        assert_eq!((stored.partition, stored.offset), (0, i as i64));
        assert_eq!(stored.timestamp_ms, 1_700_000_000_000 + i as i64);
    }

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("orders", &[0]).await.expect("assign");
    let records = consume(&mut consumer, 100).await;
    assert_eq!(records.len(), 100);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.offset, i as i64);
        assert_eq!(value_str(record), format!("order {i}"));
        assert_eq!(record.key.as_deref(), Some(format!("customer-{}", i % 7).as_bytes()));
        assert_eq!(record.headers, vec![Header { key: "seq".into(), value: Some(Bytes::from(i.to_string())) }]);
        assert_eq!(record.timestamp_ms, 1_700_000_000_000 + i as i64);
        assert_eq!((&*record.topic, record.partition), ("orders", 0));
    }
    assert_eq!(consumer.position("orders", 0), Some(100));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_lone_record_is_sent_once_its_linger_expires_without_a_flush() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "lone", 1).await;
    let config = ProducerConfig { linger: Duration::from_millis(20), ..ProducerConfig::default() };
    let producer = Producer::new(client, config).expect("producer");
    let delivery = producer.send("lone", ProducerRecord::new("alone")).await.expect("enqueued");
    let stored = tokio::time::timeout(DEADLINE, delivery).await.expect("sent after the linger").expect("stored");
    assert_eq!(stored.offset, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn records_sent_within_a_linger_share_batches() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "batched", 1).await;
    let config = ProducerConfig { linger: Duration::from_secs(5), batch_bytes: 4096, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..100 {
        deliveries.push(producer.send("batched", ProducerRecord::new(format!("{i:0>50}"))).await.expect("enqueued"));
    }
    producer.flush().await;
    for delivery in deliveries {
        delivery.await.expect("stored");
    }
    // 100 records of ~60 bytes in 4 KiB batches: a handful of batches, never one per record.
    let partitions = rill_client::Admin::new(client).describe_topic("batched").await.expect("describe").partitions;
    assert_eq!(partitions[0].high_watermark, 100);
    let segment_bytes = partitions[0].size_bytes;
    assert!(segment_bytes < 100 * 61 + 100 * 60, "{segment_bytes} bytes: records were not batched");
    broker.shutdown().await;
}

#[tokio::test]
async fn send_batch_stores_every_record_once_at_the_offsets_its_delivery_reports() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "bulk", 3).await;
    // Small batches, so one call's records span several batches and, keyless, several partitions; a few keyed
    // and explicitly placed records break the runs.
    let config = ProducerConfig { batch_bytes: 4096, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), config).expect("producer");
    let mut records: Vec<ProducerRecord> = (0..1500).map(|i| ProducerRecord::new(format!("{i:0>60}"))).collect();
    for i in (0..1500).step_by(97) {
        records[i] = records[i].clone().with_key(format!("key-{i}"));
    }
    records[10] = records[10].clone().with_partition(2);
    let mut deliveries = Vec::new();
    for call in records.chunks(500) {
        deliveries.push(producer.send_batch("bulk", call).await.expect("enqueued"));
    }
    let mut stored_at = std::collections::HashMap::new();
    for (call, delivery) in deliveries.into_iter().enumerate() {
        let runs = tokio::time::timeout(DEADLINE, delivery).await.expect("answered").expect("stored");
        assert_eq!(runs.iter().map(|r| r.record_count).sum::<usize>(), 500);
        let mut next = 0;
        for run in runs {
            assert_eq!(run.first_record, next, "runs cover the call in order");
            next += run.record_count;
            for i in 0..run.record_count {
                let record = call * 500 + run.first_record + i;
                stored_at.insert((run.partition, run.base_offset + i as i64), record);
            }
        }
    }
    assert_eq!(stored_at.len(), 1500, "no two records reported at one offset");
    // Batches that waited for their partition's in-flight call went with the next call, several to a call.
    let metrics = producer.metrics();
    assert!(
        metrics.produce_calls < metrics.batches_acknowledged,
        "{} calls for {} batches",
        metrics.produce_calls,
        metrics.batches_acknowledged
    );
    assert!(stored_at.values().collect::<HashSet<_>>().len() == 1500);
    assert_eq!(stored_at.iter().find(|(_, &r)| r == 10).map(|((p, _), _)| *p), Some(2));

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("bulk", &[0, 1, 2]).await.expect("assign");
    let consumed = consume(&mut consumer, 1500).await;
    assert_eq!(consumed.len(), 1500);
    for record in &consumed {
        let index = stored_at[&(record.partition, record.offset)];
        assert_eq!(
            value_str(record),
            format!("{index:0>60}"),
            "partition {} offset {}",
            record.partition,
            record.offset
        );
        let key = record.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(key, records[index].key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()));
        if let Some(key) = &records[index].key {
            assert_eq!(record.partition, partition_for_key(key, 3));
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn keyed_records_land_where_partition_for_key_says_and_keyless_ones_spread() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "keyed", 4).await;
    let config = ProducerConfig { batch_bytes: 1024, ..ProducerConfig::default() };
    let producer = Producer::new(client, config).expect("producer");
    for key in ["alice", "bob", "carol", "dave", "eve", "mallory", "trent"] {
        let expected = partition_for_key(key.as_bytes(), 4);
        for _ in 0..3 {
            let delivery = producer.send("keyed", ProducerRecord::new("v").with_key(key)).await.expect("enqueued");
            assert_eq!(delivery.partition(), expected);
            assert_eq!(delivery.await.expect("stored").partition, expected, "key {key}");
        }
    }
    let mut used = HashSet::new();
    let mut deliveries = Vec::new();
    for _ in 0..200 {
        deliveries.push(producer.send("keyed", ProducerRecord::new(vec![0u8; 100])).await.expect("enqueued"));
    }
    producer.flush().await;
    for delivery in deliveries {
        used.insert(delivery.await.expect("stored").partition);
    }
    assert_eq!(used.len(), 4, "keyless records stick per batch and then move on: {used:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn lz4_and_zstd_batches_are_decoded_transparently() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    for (topic, compression) in [("lz4", Compression::Lz4), ("zstd", Compression::Zstd { level: 3 })] {
        create_topic(&client, topic, 1).await;
        let config = ProducerConfig { compression, ..ProducerConfig::default() };
        let producer = Producer::new(client.clone(), config).expect("producer");
        for i in 0..500 {
            let record = ProducerRecord::new(format!("compressible value number {i}")).with_key(format!("k{i}"));
            drop(producer.send(topic, record).await.expect("enqueued"));
        }
        producer.flush().await;
        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default()).expect("consumer");
        consumer.assign(topic, &[0]).await.expect("assign");
        let records = consume(&mut consumer, 500).await;
        let values: Vec<String> = records.iter().map(|r| value_str(r).to_owned()).collect();
        let expected: Vec<String> = (0..500).map(|i| format!("compressible value number {i}")).collect();
        assert_eq!(values, expected, "{compression:?}");
        let stored = rill_client::Admin::new(client.clone()).describe_topic(topic).await.expect("describe");
        let raw_bytes: u64 = 500 * 40;
        assert!(stored.partitions[0].size_bytes < raw_bytes, "{compression:?} batches were stored uncompressed");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn buffered_bytes_never_exceed_the_budget_and_every_send_completes() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "pressure", 2).await;
    let config = ProducerConfig {
        batch_bytes: 16 << 10,
        max_buffered_bytes: 32 << 10,
        // An hour: only a full buffer (which cuts lingers short) gets batches out before the flush.
        linger: Duration::from_secs(3600),
        delivery_timeout: Duration::from_secs(7200),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..2000 {
        let record = ProducerRecord::new(vec![b'x'; 1000]).with_key(format!("{i}"));
        deliveries.push(producer.send("pressure", record).await.expect("waits for room, then enqueues"));
        assert!(producer.buffered_bytes() <= 32 << 10, "{} bytes buffered", producer.buffered_bytes());
    }
    let stored_before_flush = producer.metrics().batches_acknowledged;
    assert!(stored_before_flush > 0, "a full buffer sent batches before their linger");
    producer.flush().await;
    for delivery in deliveries {
        delivery.await.expect("stored");
    }
    assert_eq!(producer.buffered_bytes(), 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn seek_moves_to_an_offset_the_ends_and_a_timestamp() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "timeline", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let base = now_ms() - 60_000;
    for i in 0..10 {
        let record = ProducerRecord::new(format!("t{i}")).with_timestamp_ms(base + i * 1000);
        drop(producer.send("timeline", record).await.expect("enqueued"));
    }
    producer.flush().await;

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("timeline", &[0]).await.expect("assign");
    assert_eq!(consumer.seek("timeline", 0, SeekTo::Timestamp(base + 6_500)).await.expect("seek"), 7);
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "t7");
    assert_eq!(consumer.seek("timeline", 0, SeekTo::Offset(3)).await.expect("seek"), 3);
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "t3");
    assert_eq!(consumer.seek("timeline", 0, SeekTo::Beginning).await.expect("seek"), 0);
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "t0");
    assert_eq!(consumer.seek("timeline", 0, SeekTo::End).await.expect("seek"), 10);
    let late = producer.send("timeline", ProducerRecord::new("after the end")).await.expect("enqueued");
    late.await.expect("stored");
    let records = consume(&mut consumer, 1).await;
    assert_eq!((records[0].offset, value_str(&records[0])), (10, "after the end"));
    let err = consumer.seek("elsewhere", 0, SeekTo::Beginning).await.expect_err("not assigned");
    assert!(matches!(err, rill_client::Error::NotAssigned { .. }), "{err:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_group_resumes_from_its_committed_offsets() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "jobs", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..10 {
        drop(producer.send("jobs", ProducerRecord::new(format!("job {i}"))).await.expect("enqueued"));
    }
    producer.flush().await;
    let config = ConsumerConfig { group_id: Some("workers".into()), ..ConsumerConfig::default() };

    let mut first = Consumer::new(client.clone(), config.clone()).expect("consumer");
    first.assign("jobs", &[0]).await.expect("assign");
    let mut handled = Vec::new();
    while handled.len() < 4 {
        match first.next_record().await {
            Some(record) => handled.push(record.expect("record")),
            None => panic!("assigned partitions vanished"),
        }
    }
    first.commit().await.expect("commit");
    drop(first);

    let committed = rill_client::Admin::new(client.clone())
        .committed_offsets("workers", &[("jobs", 0)])
        .await
        .expect("committed offsets");
    assert_eq!(committed[0].offset, 4, "the position after the 4 records handed out, not what was prefetched");

    let mut second = Consumer::new(client, config).expect("consumer");
    second.assign("jobs", &[0]).await.expect("assign");
    let rest = consume(&mut second, 6).await;
    assert_eq!(rest.iter().map(|r| r.offset).collect::<Vec<_>>(), (4..10).collect::<Vec<_>>());
    broker.shutdown().await;
}

#[tokio::test]
async fn without_a_commit_a_consumer_starts_where_offset_reset_says() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "fresh", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    drop(producer.send("fresh", ProducerRecord::new("old")).await.expect("enqueued"));
    producer.flush().await;
    let config = ConsumerConfig {
        group_id: Some("newcomers".into()),
        offset_reset: OffsetReset::Latest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config).expect("consumer");
    consumer.assign("fresh", &[]).await.expect("assign every partition");
    assert_eq!(consumer.assignment(), vec![("fresh".to_owned(), 0)]);
    assert_eq!(consumer.position("fresh", 0), Some(1));
    drop(producer.send("fresh", ProducerRecord::new("new")).await.expect("enqueued"));
    producer.flush().await;
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "new");
    broker.shutdown().await;
}

#[tokio::test]
async fn two_independent_consumers_each_get_every_record_as_a_stream() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "news", 3).await;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default()).expect("consumer");
        consumer.assign("news", &[]).await.expect("assign");
        readers.push(tokio::spawn(async move {
            let mut seen = HashSet::new();
            let stream = consumer.stream();
            tokio::pin!(stream);
            while seen.len() < 60 {
                let record = stream.next().await.expect("records keep coming").expect("record");
                seen.insert(value_str(&record).to_owned());
            }
            seen
        }));
    }
    let producer = Producer::new(client, ProducerConfig::default()).expect("producer");
    for i in 0..60 {
        let record = ProducerRecord::new(format!("story {i}")).with_key(format!("{i}"));
        drop(producer.send("news", record).await.expect("enqueued"));
    }
    producer.flush().await;
    for reader in readers {
        let seen = tokio::time::timeout(DEADLINE, reader).await.expect("in time").expect("reader task");
        assert_eq!(seen.len(), 60);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn pipelined_batches_are_all_stored_once() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "pipelined", 1).await;
    let config = ProducerConfig {
        batch_bytes: 2048,
        max_in_flight_per_partition: 4,
        linger: Duration::from_millis(1),
        enable_idempotence: false,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..1000 {
        deliveries.push(producer.send("pipelined", ProducerRecord::new(format!("{i:0>100}"))).await.expect("enqueued"));
    }
    producer.flush().await;
    let mut offsets = HashSet::new();
    for delivery in deliveries {
        assert!(offsets.insert(delivery.await.expect("stored").offset), "two records share an offset");
    }
    assert_eq!(offsets, (0..1000).collect::<HashSet<i64>>());
    assert!(producer.metrics().batches_acknowledged > 40, "{:?}", producer.metrics());
    broker.shutdown().await;
}

#[tokio::test]
async fn auto_commit_stores_the_position_of_records_already_handed_out() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "auto", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..3 {
        producer.send("auto", ProducerRecord::new(format!("{i}"))).await.expect("enqueued").await.expect("stored");
    }
    let config = ConsumerConfig {
        group_id: Some("auto-group".into()),
        auto_commit_interval: Some(Duration::ZERO),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config).expect("consumer");
    consumer.assign("auto", &[0]).await.expect("assign");
    let first = consume(&mut consumer, 3).await;
    assert_eq!(first.len(), 3);
    // The next poll commits what the previous ones handed out, then waits for a new record.
    let late = producer.send("auto", ProducerRecord::new("3")).await.expect("enqueued");
    late.await.expect("stored");
    consume(&mut consumer, 1).await;
    let committed = rill_client::Admin::new(client).committed_offsets("auto-group", &[]).await.expect("committed");
    assert_eq!(
        committed.iter().map(|c| (c.topic.as_str(), c.partition, c.offset)).collect::<Vec<_>>(),
        vec![("auto", 0, 3)]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn dropping_the_producer_still_sends_what_it_buffered() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "dropped", 1).await;
    let config = ProducerConfig {
        linger: Duration::from_secs(3600),
        delivery_timeout: Duration::from_secs(7200),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).expect("producer");
    let delivery = producer.send("dropped", ProducerRecord::new("last words")).await.expect("enqueued");
    drop(producer);
    let stored = tokio::time::timeout(DEADLINE, delivery).await.expect("sent on drop, not after the linger");
    assert_eq!(stored.expect("stored").offset, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn every_acks_level_stores_the_records() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "acks", 1).await;
    for (acks, expected_offset) in [(Acks::Leader, 0), (Acks::Durable, 1), (Acks::None, -1)] {
        let producer =
            Producer::new(client.clone(), ProducerConfig { acks, ..ProducerConfig::default() }).expect("producer");
        let stored = producer.send("acks", ProducerRecord::new(format!("{acks:?}"))).await.expect("enqueued");
        assert_eq!(stored.await.expect("acknowledged").offset, expected_offset, "{acks:?}");
    }
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("acks", &[0]).await.expect("assign");
    let values: Vec<String> = consume(&mut consumer, 3).await.iter().map(|r| value_str(r).to_owned()).collect();
    assert_eq!(values, vec!["Leader", "Durable", "None"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_position_outside_the_log_resets_where_offset_reset_says() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "reset", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..3 {
        drop(producer.send("reset", ProducerRecord::new(format!("r{i}"))).await.expect("enqueued"));
    }
    producer.flush().await;
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("reset", &[0]).await.expect("assign");
    consumer.seek("reset", 0, SeekTo::Offset(1_000)).await.expect("a seek is not checked until the fetch");
    let records = consume(&mut consumer, 3).await;
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2], "reset to the earliest");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_record_of_several_megabytes_round_trips() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "large", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let value: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 251) as u8).collect();
    let delivery = producer.send("large", ProducerRecord::new(value.clone())).await.expect("enqueued");
    assert_eq!(delivery.await.expect("stored").offset, 0);
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("large", &[0]).await.expect("assign");
    let records = consume(&mut consumer, 1).await;
    assert_eq!(records[0].value.as_deref(), Some(&value[..]), "a 6 MiB value, above gRPC's default 4 MiB limit");
    broker.shutdown().await;
}

#[tokio::test]
async fn unassigned_partitions_stop_and_reassigned_ones_start_over() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "churn", 2).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for partition in 0..2 {
        let record = ProducerRecord::new(format!("p{partition}")).with_partition(partition);
        producer.send("churn", record).await.expect("enqueued").await.expect("stored");
    }
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("churn", &[0, 1]).await.expect("assign");
    assert_eq!(consume(&mut consumer, 2).await.len(), 2);
    consumer.unassign("churn", &[0]);
    assert_eq!(consumer.assignment(), vec![("churn".to_owned(), 1)]);
    let again = producer.send("churn", ProducerRecord::new("p0 again").with_partition(0)).await.expect("enqueued");
    again.await.expect("stored");
    let late = producer.send("churn", ProducerRecord::new("p1 again").with_partition(1)).await.expect("enqueued");
    late.await.expect("stored");
    let records = consume(&mut consumer, 1).await;
    assert_eq!((records[0].partition, value_str(&records[0])), (1, "p1 again"), "partition 0 is no longer read");
    consumer.unassign("churn", &[1]);
    assert!(consumer.poll().await.expect("nothing assigned").is_empty());
    consumer.assign("churn", &[0]).await.expect("assign again");
    let values: Vec<String> = consume(&mut consumer, 2).await.iter().map(|r| value_str(r).to_owned()).collect();
    assert_eq!(values, vec!["p0", "p0 again"], "a reassigned partition starts from offset_reset");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_next_fetch_is_in_flight_while_the_application_holds_records() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "prefetch", 2).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let first = producer.send("prefetch", ProducerRecord::new("first").with_partition(0)).await.expect("enqueued");
    first.await.expect("stored");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("prefetch", &[]).await.expect("assign");
    assert_eq!(consumer.fetches_in_flight(), 2);
    let records = consume(&mut consumer, 1).await;
    assert_eq!(value_str(&records[0]), "first");
    // Handed out, and both partitions already have their next fetch (a long-poll) on its way.
    assert_eq!(consumer.fetches_in_flight(), 2);
    let next = producer.send("prefetch", ProducerRecord::new("second").with_partition(0)).await.expect("enqueued");
    next.await.expect("stored");
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "second");
    broker.shutdown().await;
}

/// The `.log` files under `dir`, found by walking it (the layout is storage's business).
fn segment_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(segment_logs(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_batch_damaged_on_disk_comes_after_the_records_before_it_and_a_seek_skips_it() {
    // Buffered writes and no tail cache: a direct-mode segment, and the tail cache, serve the newest bytes from
    // memory, where damage to the file cannot reach.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = rill_broker::BrokerConfig {
        direct_writes: false,
        tail_cache_bytes: Some(0),
        ..rill_broker::BrokerConfig::for_tests(dir.path())
    };
    let handle = rill_broker::Broker::start(config).await.expect("broker starts");
    let broker = TestBroker { handle: Some(handle), dir };
    let client = broker.client().await;
    create_topic(&client, "rot", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    // Three batches of two records: offsets 0-1, 2-3 and 4-5.
    for batch in 0..3 {
        let first = producer.send("rot", ProducerRecord::new(format!("v{}", 2 * batch))).await.expect("enqueued");
        let second = producer.send("rot", ProducerRecord::new(format!("v{}", 2 * batch + 1))).await.expect("enqueued");
        producer.flush().await;
        assert_eq!(first.await.expect("stored").offset, 2 * batch);
        second.await.expect("stored");
    }
    // Damage the middle batch's last value on disk, behind the broker's back (bit rot the broker cannot see
    // until it restarts and recovery checks the CRCs).
    let logs: Vec<_> = segment_logs(broker.dir.path())
        .into_iter()
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let mut bytes = std::fs::read(&logs[0]).expect("read log");
    let at = bytes.windows(2).position(|w| w == b"v3").expect("the value v3 is on disk");
    bytes[at + 1] = b'X';
    let file = std::fs::OpenOptions::new().write(true).open(&logs[0]).expect("open log");
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes[at + 1..at + 2], (at + 1) as u64).expect("damage");
    file.sync_all().expect("sync");

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("rot", &[0]).await.expect("assign");
    let first = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("poll in time").expect("good records");
    let values: Vec<&str> = first.iter().map(value_str).collect();
    assert_eq!(values, ["v0", "v1"], "the records before the damaged batch come first");
    let err = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("poll in time").expect_err("the damage");
    assert_eq!(err.undecodable_batch(), Some(("rot", 0, 2, 4)), "{err:?}");
    assert!(err.to_string().contains("offset 2"), "{err}");
    // Without a seek the same batch fails again; seeking past it goes on with the records after it.
    let again = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("poll in time").expect_err("again");
    assert_eq!(again.undecodable_batch(), Some(("rot", 0, 2, 4)));
    consumer.seek("rot", 0, SeekTo::Offset(4)).await.expect("seek");
    let rest: Vec<String> = consume(&mut consumer, 2).await.iter().map(|r| value_str(r).to_owned()).collect();
    assert_eq!(rest, ["v4", "v5"]);
    broker.shutdown().await;
}
