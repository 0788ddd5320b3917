//! What the application sees of a consumer's fetches between two `poll`s, against an embedded broker: a
//! prefetch's answer is read off the connection while the application is busy, and nothing is lost when a
//! `poll` is cancelled. The first test is the guard for any attempt to run the fetches in the `poll`ing task
//! (docs/benchmarks.md, "Latency: the consumer's fetches polled in its own task"): unread DATA holds the
//! connection's HTTP/2 window.

use crate::common;

use std::time::Duration;

use common::{consume, create_topic, TestBroker, DEADLINE};
use rill_client::{Client, ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};

/// The smallest windows HTTP/2 allows: one unread fetch answer fills the connection's.
fn narrow_windows() -> ClientConfig {
    ClientConfig { stream_window_bytes: 65_535, connection_window_bytes: 65_535, ..ClientConfig::default() }
}

#[tokio::test]
async fn a_fetch_answered_between_polls_never_holds_up_a_producer_on_the_same_connection() {
    let broker = TestBroker::start().await;
    let client = Client::connect_with(broker.addr().to_string(), narrow_windows()).await.expect("client connects");
    create_topic(&client, "between", 1).await;
    // Batches of ~16 KiB, so a fetch of 100 KiB ends mid-log and the prefetch has ~100 KiB more to answer.
    let producer_config = ProducerConfig { batch_bytes: 16 << 10, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), producer_config).expect("producer");
    let value = vec![b'x'; 1000];
    let mut deliveries = Vec::new();
    for _ in 0..300 {
        deliveries.push(producer.send("between", ProducerRecord::new(value.clone())).await.expect("enqueued"));
    }
    for delivery in deliveries {
        tokio::time::timeout(DEADLINE, delivery).await.expect("acknowledged in time").expect("stored");
    }

    let config = ConsumerConfig { fetch_max_bytes: 100 << 10, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client.clone(), config).expect("consumer");
    consumer.assign("between", &[0]).await.expect("assign");
    let first = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("records in time").expect("poll");
    assert!(!first.is_empty() && first.len() < 300, "the first poll took {} of 300 records", first.len());

    // The application handles those records and produces a result before it polls again, as a
    // consume-transform-produce loop does. The prefetch's answer comes meanwhile; left unread, it would fill the
    // connection's window and the ack below could never arrive.
    let delivery = producer.send("between", ProducerRecord::new("result")).await.expect("enqueued");
    let stored = tokio::time::timeout(DEADLINE, delivery)
        .await
        .expect("acknowledged while the consumer was not polling")
        .expect("stored");
    assert_eq!(stored.offset, 300);

    // Nothing read between the polls is lost or repeated.
    let rest = consume(&mut consumer, 301 - first.len()).await;
    let offsets: Vec<i64> = first.iter().chain(&rest).map(|record| record.offset).collect();
    assert_eq!(offsets, (0..301).collect::<Vec<i64>>());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_poll_cancelled_while_waiting_loses_no_record() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "cancelled", 1).await;
    let config = ConsumerConfig { fetch_max_wait: Duration::from_millis(50), ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client.clone(), config).expect("consumer");
    consumer.assign("cancelled", &[0]).await.expect("assign");
    // Nothing to read: each poll is cancelled while it waits, handing the fetches back to the driver task.
    for _ in 0..5 {
        assert!(tokio::time::timeout(Duration::from_millis(20), consumer.poll()).await.is_err());
    }
    let producer = Producer::new(client, ProducerConfig::default()).expect("producer");
    for i in 0..10 {
        let delivery = producer.send("cancelled", ProducerRecord::new(format!("{i}"))).await.expect("enqueued");
        tokio::time::timeout(DEADLINE, delivery).await.expect("acknowledged in time").expect("stored");
    }
    let records = consume(&mut consumer, 10).await;
    let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    broker.shutdown().await;
}
