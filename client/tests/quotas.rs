//! Client quotas from the client's side (docs/kafka.md, "Client quotas"): `QuotaAdmin` sets and lists them, and a
//! client that names itself with `ClientConfig::client_id` is held to its client id's quota, set while its
//! produce stream was open.

use std::time::{Duration, Instant};

use rill_broker::{Broker, BrokerConfig};
use rill_client::{
    AlterQuotasRequest, Client, ClientConfig, ClientId, Error, Producer, ProducerConfig, ProducerRecord, QuotaAdmin,
    QuotaEntity,
};

use crate::common::create_topic;

#[tokio::test]
async fn a_client_naming_its_client_id_is_held_to_that_ids_produce_quota() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Samples of 100 ms: a client goes 1 s of its quota in a burst, then is held.
    let config = BrokerConfig { quota_window_ms: 100, ..BrokerConfig::for_tests(dir.path()) };
    let broker = Broker::start(config).await.expect("broker starts");
    let addr = broker.addr().to_string();
    let admin_client = Client::connect(&addr).await.expect("connects");
    create_topic(&admin_client, "t", 1).await;
    // The producer's stream opens before any quota is set: one set later applies to it all the same.
    let config = ClientConfig { client_id: Some(ClientId::new("slow").expect("valid")), ..ClientConfig::default() };
    let slow = Client::connect_with(&addr, config).await.expect("connects");
    let producer = Producer::new(slow, ProducerConfig::default()).expect("producer");
    producer.send("t", ProducerRecord::new("first")).await.expect("queued").await.expect("stored");
    let quotas = QuotaAdmin::new(admin_client);
    let entity = QuotaEntity { client_id: Some("slow".into()), ..QuotaEntity::default() };
    let change = AlterQuotasRequest {
        entity: Some(entity.clone()),
        producer_byte_rate: Some(100_000),
        ..AlterQuotasRequest::default()
    };
    let set = quotas.alter(change).await.expect("set");
    assert_eq!((set.entity.as_ref(), set.producer_byte_rate), (Some(&entity), Some(100_000)));
    assert_eq!(quotas.list().await.expect("listed"), [set]);

    let started = Instant::now();
    // 300 KB one record at a time: 100 KB go in the first burst, the rest at 100 KB/s.
    for _ in 0..5 {
        let delivery = producer.send("t", ProducerRecord::new(vec![b'x'; 60_000])).await.expect("queued");
        delivery.await.expect("stored");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "300 KB produced in {took:?} under a 100 KB/s quota");

    for bad in ["", "a b", &"x".repeat(256)] {
        assert!(matches!(ClientId::new(bad), Err(Error::InvalidUse { .. })), "{bad:?}");
    }
    broker.shutdown().await;
}
