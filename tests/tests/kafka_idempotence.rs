//! Idempotent producers on the Kafka port: InitProducerId issues ids, a retried batch is answered with its
//! original base offset and stored once, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch
//! INVALID_PRODUCER_EPOCH, a transactional id is refused, and ids stay unique across a restart.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{idempotent_batch_of, TestBroker};

async fn produce(client: &mut KafkaClient, topic: &str, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request).await;
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

async fn init_producer_id(client: &mut KafkaClient, version: i16, transactional_id: Option<&str>) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.into()))))
        .with_transaction_timeout_ms(60_000);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, version, &request).await;
    (response.error_code, response.producer_id.0, response.producer_epoch)
}

#[tokio::test]
async fn init_producer_id_issues_distinct_ids_at_every_version_and_after_a_restart() {
    let mut broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let mut issued = Vec::new();
    for version in 0..=4 {
        let (error, id, epoch) = init_producer_id(&mut client, version, None).await;
        assert_eq!((error, epoch), (0, 0), "v{version}");
        issued.push(id);
    }
    broker = broker.restart().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (_, after_restart, _) = init_producer_id(&mut client, 4, None).await;
    issued.push(after_restart);
    let mut unique = issued.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), issued.len(), "ids are never issued twice: {issued:?}");
}

#[tokio::test]
async fn a_transactional_id_is_refused() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (error, id, _) = init_producer_id(&mut client, 4, Some("orders-tx")).await;
    assert_eq!((error, id), (ResponseError::TransactionalIdAuthorizationFailed.code(), -1));
}

#[tokio::test]
async fn a_retry_gets_the_original_offset_a_gap_and_an_old_epoch_are_refused() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (_, id, epoch) = init_producer_id(&mut client, 4, None).await;
    assert_eq!(produce(&mut client, "t", idempotent_batch_of(&["a", "b"], id, epoch, 0)).await, (0, 0));
    assert_eq!(produce(&mut client, "t", idempotent_batch_of(&["c"], id, epoch, 2)).await, (0, 2));
    // The answer to the first was lost; the producer sends it again.
    assert_eq!(produce(&mut client, "t", idempotent_batch_of(&["a", "b"], id, epoch, 0)).await, (0, 0));
    let gap = produce(&mut client, "t", idempotent_batch_of(&["e"], id, epoch, 4)).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(produce(&mut client, "t", idempotent_batch_of(&["x"], id, epoch + 1, 0)).await, (0, 3));
    let fenced = produce(&mut client, "t", idempotent_batch_of(&["d"], id, epoch, 3)).await;
    assert_eq!(fenced.0, ResponseError::InvalidProducerEpoch.code());
    let stored = broker.fetch_all_values("t", 0, 0).await;
    let values: Vec<&str> = stored.iter().map(|(_, value)| value.as_str()).collect();
    assert_eq!(values, ["a", "b", "c", "x"], "each record once, in order");
}
