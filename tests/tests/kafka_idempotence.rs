//! Idempotent producers on the Kafka port: InitProducerId issues ids, a retried batch is answered with its
//! original base offset and stored once, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch
//! INVALID_PRODUCER_EPOCH, and ids stay unique across a restart; a transactional id keeps its producer id at a new
//! epoch each time, and its batches are taken only inside its open transaction, for the partitions it added.

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

/// `batch` with the transactional attribute bit set (and its CRC again).
fn transactional(batch: Bytes) -> Bytes {
    let mut bytes = batch.to_vec();
    let mut header = rill_protocol::BatchHeader::parse(&bytes).expect("a header");
    header.attributes |= rill_protocol::batch::TRANSACTIONAL_BIT;
    rill_protocol::record::write_header(&mut bytes, &header);
    Bytes::from(bytes)
}

async fn add_partition(client: &mut KafkaClient, id: i64, epoch: i16) -> i16 {
    let topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![0]);
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("orders-tx")))
        .with_v3_and_below_producer_id(ProducerId(id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![topic]);
    let response: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, 3, &request).await;
    response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end_transaction(client: &mut KafkaClient, id: i64, epoch: i16, commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("orders-tx")))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let response: EndTxnResponse = client.call(ApiKey::EndTxn, 3, &request).await;
    response.error_code
}

#[tokio::test]
async fn a_transactional_ids_batches_go_only_into_its_open_transaction_for_the_partitions_it_added() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (error, id, epoch) = init_producer_id(&mut client, 4, Some("orders-tx")).await;
    assert_eq!((error, epoch), (0, 0));
    let batch = |values: &[&str], sequence| transactional(idempotent_batch_of(values, id, epoch, sequence));
    let (refused, _) = produce(&mut client, "t", batch(&["a"], 0)).await;
    assert_eq!(refused, ResponseError::InvalidTxnState.code(), "the partition was not added");
    assert_eq!(add_partition(&mut client, id, epoch).await, 0);
    assert_eq!(produce(&mut client, "t", batch(&["a", "b"], 0)).await, (0, 0));
    assert_eq!(end_transaction(&mut client, id, epoch, true).await, 0);
    assert_eq!(end_transaction(&mut client, id, epoch, true).await, 0, "a retried commit succeeds again");
    assert_eq!(end_transaction(&mut client, id, epoch, false).await, ResponseError::InvalidTxnState.code());
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    let (_, metrics) = rill_tests::admin_http::get(admin, "/metrics", "text/plain").await;
    let sample = |name: &str| rill_tests::admin_http::sample(&metrics, name);
    assert_eq!(sample(r#"rill_transactions_total{outcome="committed"}"#), Some(1.0), "{metrics}");
    assert_eq!(sample(r#"rill_transactions_total{outcome="timed_out"}"#), Some(0.0));
    assert_eq!((sample("rill_transactional_ids"), sample("rill_transactions_open")), (Some(1.0), Some(0.0)));
    let (refused, _) = produce(&mut client, "t", batch(&["c"], 2)).await;
    assert_eq!(refused, ResponseError::InvalidTxnState.code(), "after the commit, outside any transaction");
    // A new instance: same producer id, the next epoch; the old one is fenced.
    let (error, again, next) = init_producer_id(&mut client, 4, Some("orders-tx")).await;
    assert_eq!((error, again, next), (0, id, 1));
    assert_eq!(add_partition(&mut client, id, epoch).await, ResponseError::ProducerFenced.code());
    let (error, ..) = init_producer_id(&mut client, 2, Some("orders-tx")).await;
    assert_eq!(error, 0, "v2 has no producer id to check");
    let too_long = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("orders-tx"))))
        .with_transaction_timeout_ms(3_600_000);
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &too_long).await;
    assert_eq!(response.error_code, ResponseError::InvalidTransactionTimeout.code());
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

#[tokio::test]
async fn a_grpc_read_committed_fetch_stops_at_an_open_transaction_and_leaves_aborted_batches_out() {
    use rill_protocol::v1;
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let (_, id, epoch) = init_producer_id(&mut client, 4, Some("orders-tx")).await;
    let batch = |values: &[&str], sequence| transactional(idempotent_batch_of(values, id, epoch, sequence));
    assert_eq!(add_partition(&mut client, id, epoch).await, 0);
    assert_eq!(produce(&mut client, "t", batch(&["a0", "a1"], 0)).await, (0, 0));
    assert_eq!(end_transaction(&mut client, id, epoch, false).await, 0, "aborted: the marker is offset 2");
    assert_eq!(produce(&mut client, "t", rill_tests::batch_of(&["plain"], 1_000)).await, (0, 3));
    assert_eq!(add_partition(&mut client, id, epoch).await, 0);
    assert_eq!(produce(&mut client, "t", batch(&["open"], 2)).await, (0, 4));

    // What kafka-transactions.sh sees: the open transaction, its partition, and where it starts in the log.
    let list: ListTransactionsResponse =
        client.call(ApiKey::ListTransactions, 1, &ListTransactionsRequest::default().with_duration_filter(-1)).await;
    let listed: Vec<(&str, i64, &str)> = list
        .transaction_states
        .iter()
        .map(|t| (t.transactional_id.0.as_str(), t.producer_id.0, t.transaction_state.as_str()))
        .collect();
    assert_eq!(listed, [("orders-tx", id, "Ongoing")]);
    let filtered = ListTransactionsRequest::default()
        .with_state_filters(vec![StrBytes::from_static_str("CompleteAbort"), StrBytes::from_static_str("Bogus")]);
    let filtered: ListTransactionsResponse = client.call(ApiKey::ListTransactions, 0, &filtered).await;
    assert!(filtered.transaction_states.is_empty());
    assert_eq!(filtered.unknown_state_filters.iter().map(|f| f.as_str()).collect::<Vec<_>>(), ["Bogus"]);
    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(StrBytes::from_static_str("orders-tx")),
        TransactionalId(StrBytes::from_static_str("nobody")),
    ]);
    let described: DescribeTransactionsResponse = client.call(ApiKey::DescribeTransactions, 0, &describe).await;
    let open = &described.transaction_states[0];
    assert_eq!((open.error_code, open.transaction_state.as_str(), open.producer_epoch), (0, "Ongoing", epoch));
    assert_eq!((open.topics[0].topic.0.as_str(), open.topics[0].partitions.clone()), ("t", vec![0]));
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(described.transaction_states[1].error_code, ResponseError::TransactionalIdNotFound.code());
    let topic = describe_producers_request::TopicRequest::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_indexes(vec![0]);
    let producers: DescribeProducersResponse =
        client.call(ApiKey::DescribeProducers, 0, &DescribeProducersRequest::default().with_topics(vec![topic])).await;
    let active = &producers.topics[0].partitions[0].active_producers;
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].producer_id.0, active[0].last_sequence, active[0].current_txn_start_offset), (id, 2, 4));

    let fetch = |isolation: v1::Isolation| v1::FetchRequest {
        isolation: isolation as i32,
        ..rill_tests::fetch_request("t", 0, 0, 0, 0)
    };
    let committed = broker.records.fetch(fetch(v1::Isolation::ReadCommitted)).await.expect("fetch").into_inner();
    let values: Vec<String> = rill_tests::values_of(&committed.record_batches).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["plain"], "the aborted batch left out, the open transaction not reached");
    assert_eq!((committed.next_offset, committed.last_stable_offset, committed.high_watermark), (4, 4, 5));
    let all = broker.records.fetch(fetch(v1::Isolation::ReadUncommitted)).await.expect("fetch").into_inner();
    let values: Vec<String> = rill_tests::values_of(&all.record_batches).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["a0", "a1", "plain", "open"]);

    // A subscriber at READ_COMMITTED from the open transaction gets it once it commits, past its marker.
    let request = v1::SubscribeRequest {
        topic: "t".into(),
        offset: 4,
        isolation: v1::Isolation::ReadCommitted as i32,
        ..Default::default()
    };
    let mut pushes = broker.records.subscribe(request).await.expect("subscribe").into_inner();
    assert_eq!(end_transaction(&mut client, id, epoch, true).await, 0);
    let pushed = tokio_stream::StreamExt::next(&mut pushes).await.expect("a push").expect("not an error");
    let values: Vec<String> = rill_tests::values_of(&pushed.record_batches).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["open"]);
    assert_eq!((pushed.next_offset, pushed.last_stable_offset), (6, 6), "the commit marker read past");
}
