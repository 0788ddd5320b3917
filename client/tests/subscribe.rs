//! A consumer at the tail reads by `Records/Subscribe` (client `src/subscription.rs`, `src/consumer/tail.rs`):
//! pushed batches are handed out as fetched ones are, in order and once each, and a seek or an unassign ends the
//! subscription where it was.

use crate::common;

use bytes::Bytes;
use common::{consume, create_topic, value_str, TestBroker};
use rill_client::{Consumer, ConsumerConfig, Header, Producer, ProducerConfig, ProducerRecord, SeekTo};

/// Sends `count` records to `partition`, values `"{partition}-{first + i}"` with a header, and waits for them.
async fn produce_round(producer: &Producer, topic: &str, partition: u32, first: usize, count: usize) {
    let mut deliveries = Vec::with_capacity(count);
    for i in first..first + count {
        let record =
            ProducerRecord::new(format!("{partition}-{i}")).with_partition(partition).with_header("n", i.to_string());
        deliveries.push(producer.send(topic, record).await.expect("enqueued"));
    }
    for delivery in deliveries {
        delivery.await.expect("stored");
    }
}

#[tokio::test]
async fn records_at_the_tail_are_pushed_in_order_and_once_across_many_polls() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "tail", 2).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("tail", &[0, 1]).await.expect("assign");

    const ROUNDS: usize = 30;
    const PER_ROUND: usize = 40;
    let mut by_partition: [Vec<(i64, String, Vec<Header>)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for partition in 0..2 {
            produce_round(&producer, "tail", partition, round * PER_ROUND, PER_ROUND).await;
        }
        for record in consume(&mut consumer, 2 * PER_ROUND).await {
            let fields = (record.offset, value_str(&record).to_owned(), record.headers.clone());
            by_partition[record.partition as usize].push(fields);
        }
        if round == 0 {
            // The first round was fetched (the log was empty: a fetch long-polled for it); from then on the
            // partitions are at the tail.
            assert_eq!(consumer.fetches_in_flight(), 2, "each partition has its next read on its way");
        }
    }
    assert_eq!(consumer.subscribed_partitions(), 2, "both partitions read their last records by push");
    for (partition, records) in by_partition.iter().enumerate() {
        assert_eq!(records.len(), ROUNDS * PER_ROUND, "partition {partition}: every record once");
        for (i, (offset, value, headers)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {partition}: offsets in order, none twice");
            assert_eq!(value, &format!("{partition}-{i}"));
            assert_eq!(headers, &vec![Header { key: "n".into(), value: Some(Bytes::from(i.to_string())) }]);
        }
        assert_eq!(consumer.position("tail", partition as u32), Some((ROUNDS * PER_ROUND) as i64));
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_seek_during_a_subscription_reads_from_the_new_position_then_subscribes_again() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "rewind", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("rewind", &[0]).await.expect("assign");
    produce_round(&producer, "rewind", 0, 0, 50).await;
    assert_eq!(consume(&mut consumer, 50).await.len(), 50);
    produce_round(&producer, "rewind", 0, 50, 50).await;
    assert_eq!(consume(&mut consumer, 50).await.len(), 50);
    assert_eq!(consumer.subscribed_partitions(), 1, "at the tail, the second round was pushed");

    assert_eq!(consumer.seek("rewind", 0, SeekTo::Offset(20)).await.expect("seek"), 20);
    assert_eq!(consumer.subscribed_partitions(), 0, "a seek ends the subscription");
    let replayed = consume(&mut consumer, 80).await;
    let offsets: Vec<i64> = replayed.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (20..100).collect::<Vec<i64>>(), "from the seek's offset, in order, once");

    produce_round(&producer, "rewind", 0, 100, 30).await;
    let pushed = consume(&mut consumer, 30).await;
    let values: Vec<&str> = pushed.iter().map(value_str).collect();
    let expected: Vec<String> = (100..130).map(|i| format!("0-{i}")).collect();
    assert_eq!(values, expected);
    assert_eq!(consumer.subscribed_partitions(), 1, "caught up again, the partition subscribed again");
    assert_eq!(consumer.position("rewind", 0), Some(130));
    broker.shutdown().await;
}

#[tokio::test]
async fn with_subscriptions_off_the_tail_is_fetched_and_nothing_changes_for_the_application() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "fetched", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let config = ConsumerConfig { subscribes_at_tail: false, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client, config).expect("consumer");
    consumer.assign("fetched", &[0]).await.expect("assign");
    for round in 0..5 {
        produce_round(&producer, "fetched", 0, round * 20, 20).await;
        let records = consume(&mut consumer, 20).await;
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (round as i64 * 20..(round as i64 + 1) * 20).collect::<Vec<i64>>());
        assert_eq!(consumer.subscribed_partitions(), 0, "round {round}: fetched, never pushed");
    }
    broker.shutdown().await;
}
