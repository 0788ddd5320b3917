//! `Records/ProduceStream` (broker `service/produce_stream.rs`, client `src/produce_stream.rs`): many produces
//! over one open stream, answered by correlation id, each refused on its own; a stream that breaks with the
//! broker loses no acknowledged record and stores none twice.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::group::FreezableProxy;
use common::{consume, create_topic, value_str, TestBroker, DEADLINE};
use prost::Message;
use rill_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::v1::records_client::RecordsClient;
use rill_protocol::v1::{
    self, produce_request::Records, produce_stream_response::Outcome, ProduceRequest, ProduceStreamRequest,
};

fn record_list(values: &[&str]) -> Option<Records> {
    let records = values
        .iter()
        .map(|value| v1::Record { value: Some(Bytes::copy_from_slice(value.as_bytes())), ..Default::default() })
        .collect();
    Some(Records::RecordList(v1::RecordList { records }))
}

fn streamed(correlation_id: u64, topic: &str, partition: u32, values: &[&str]) -> ProduceStreamRequest {
    let request = ProduceRequest {
        topic: topic.to_owned(),
        partition: Some(partition),
        records: record_list(values),
        acks: v1::Acks::Leader as i32,
    };
    ProduceStreamRequest { correlation_id, request: Some(request) }
}

#[tokio::test]
async fn requests_on_one_stream_are_answered_by_correlation_id_and_refused_one_by_one() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "streamed", 4).await;
    let mut records = RecordsClient::connect(format!("http://{}", broker.addr())).await.expect("connects");
    let mut requests: Vec<ProduceStreamRequest> = (0..200u64)
        .map(|id| {
            let value = format!("r{id}");
            streamed(id, "streamed", (id % 4) as u32, &[value.as_str()])
        })
        .collect();
    // Refused on their own, the stream going on: an unknown topic, a request without records, none at all.
    requests.push(streamed(1000, "no-such-topic", 0, &["x"]));
    requests.push(ProduceStreamRequest {
        correlation_id: 1001,
        request: Some(ProduceRequest { records: None, ..streamed(0, "streamed", 0, &[]).request.unwrap() }),
    });
    requests.push(ProduceStreamRequest { correlation_id: 1002, request: None });
    let outcomes = pipelined(&mut records, requests).await;

    // Every request of a partition got offsets of its own: nothing lost, nothing stored twice. (Their order is
    // the test below.)
    let mut offsets = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for id in 0..200u64 {
        let Outcome::Produced(produced) = &outcomes[&id] else { panic!("request {id}: {:?}", outcomes[&id]) };
        assert_eq!(produced.partition, (id % 4) as u32);
        assert_eq!(produced.last_offset, produced.base_offset, "one record a request");
        offsets[produced.partition as usize].push(produced.base_offset);
    }
    for (partition, mut offsets) in offsets.into_iter().enumerate() {
        offsets.sort_unstable();
        assert_eq!(offsets, (0..50).collect::<Vec<i64>>(), "partition {partition}");
    }
    let refused = |id: u64| match &outcomes[&id] {
        Outcome::Refused(refused) => {
            tonic::Status::with_details(tonic::Code::from_i32(refused.code), &refused.message, refused.details.clone())
        }
        other => panic!("request {id} was not refused: {other:?}"),
    };
    let unknown = refused(1000);
    assert_eq!((unknown.code(), reason_of(&unknown)), (tonic::Code::NotFound, Some(Reason::UnknownTopic)));
    assert!(unknown.message().contains("no-such-topic"), "{unknown:?}");
    let empty = refused(1001);
    assert_eq!(empty.code(), tonic::Code::InvalidArgument, "{empty:?}");
    assert!(empty.message().contains("records"), "{empty:?}");
    let missing = refused(1002);
    assert_eq!(missing.code(), tonic::Code::InvalidArgument, "{missing:?}");
    broker.shutdown().await;
}

/// Opens `/rill.v1.Records/ProduceStream` with h2 itself, sends `body` as it is, and returns the final status.
async fn raw_stream_status(addr: std::net::SocketAddr, body: Bytes) -> tonic::Status {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let (sender, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut sender = sender.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/rill.v1.Records/ProduceStream"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut send) = sender.send_request(request, false).expect("stream opens");
    send.send_data(body, false).expect("sent");
    let answer = tokio::time::timeout(DEADLINE, async {
        let response = response.await.expect("answered");
        if let Some(status) = tonic::Status::from_header_map(response.headers()) {
            return status;
        }
        let mut body = response.into_body();
        while let Some(data) = body.data().await {
            let data = data.expect("data");
            let _ = body.flow_control().release_capacity(data.len());
        }
        let trailers = body.trailers().await.expect("trailers").expect("a status in the trailers");
        tonic::Status::from_header_map(&trailers).expect("grpc-status")
    })
    .await
    .expect("the broker ends the stream in time");
    drop(send);
    answer
}

#[tokio::test]
async fn bad_bytes_on_the_stream_end_it_with_a_status_that_says_why() {
    let broker = TestBroker::start().await;
    // A length-delimited field whose length runs past the message: not a ProduceStreamRequest.
    let mut garbage = BytesMut::new();
    garbage.put_u8(0);
    garbage.put_u32(3);
    garbage.put_slice(&[(2 << 3) | 2, 0x7f, 0x01]);
    let status = raw_stream_status(broker.addr(), garbage.freeze()).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ProduceStreamRequest"), "{status:?}");

    // A message header announcing more than the broker takes, refused before it is read.
    let mut huge = BytesMut::new();
    huge.put_u8(0);
    huge.put_u32(u32::MAX);
    let status = raw_stream_status(broker.addr(), huge.freeze()).await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_request_bytes"), "{status:?}");

    // The broker is unharmed: a good request on a new stream is answered.
    let mut good = BytesMut::new();
    let message = streamed(7, "after", 0, &["ok"]);
    create_topic(&broker.client().await, "after", 1).await;
    good.put_u8(0);
    good.put_u32(message.encoded_len() as u32);
    message.encode(&mut good).expect("encodes");
    let mut records = RecordsClient::connect(format!("http://{}", broker.addr())).await.expect("connects");
    let mut answers = records.produce_stream(tokio_stream::iter([message])).await.expect("opens").into_inner();
    let answer = answers.message().await.expect("healthy").expect("one answer");
    assert_eq!(answer.correlation_id, 7);
    assert!(matches!(answer.outcome, Some(Outcome::Produced(_))), "{answer:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_producers_concurrent_sends_share_one_connection_and_keep_each_partitions_order() {
    let broker = TestBroker::start().await;
    let proxy = FreezableProxy::start(broker.addr()).await;
    let client = rill_client::Client::connect(proxy.addr.to_string()).await.expect("connects through the proxy");
    create_topic(&client, "ordered", 4).await;
    let config = ProducerConfig { linger: Duration::ZERO, max_in_flight_per_partition: 5, ..Default::default() };
    let producer = Producer::new(client.clone(), config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..2000u32 {
        let record = ProducerRecord::new(format!("{}:{i}", i % 4)).with_partition(i % 4);
        deliveries.push(producer.send("ordered", record).await.expect("enqueued"));
    }
    for delivery in deliveries {
        tokio::time::timeout(DEADLINE, delivery).await.expect("in time").expect("stored");
    }
    assert_eq!(proxy.connections(), 1, "the producer opened more than one connection");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("ordered", &[0, 1, 2, 3]).await.expect("assign");
    let consumed = consume(&mut consumer, 2000).await;
    assert_eq!(consumed.len(), 2000, "no record stored twice");
    for partition in 0..4u32 {
        let values: Vec<&str> = consumed.iter().filter(|record| record.partition == partition).map(value_str).collect();
        let expected: Vec<String> =
            (0..2000u32).filter(|i| i % 4 == partition).map(|i| format!("{partition}:{i}")).collect();
        assert_eq!(values, expected, "partition {partition} in send order");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_broker_stopped_mid_stream_loses_no_acknowledged_record_and_stores_none_twice() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "restarted", 2).await;
    let config = ProducerConfig {
        linger: Duration::ZERO,
        max_in_flight_per_partition: 5,
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        ..Default::default()
    };
    let producer = Producer::new(client.clone(), config).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..3000u32 {
        deliveries.push(producer.send("restarted", ProducerRecord::new(format!("{i}")).with_partition(i % 2)).await);
        if i == 1500 {
            let addr = broker.stop().await;
            broker.restart_on(addr).await;
        }
    }
    for delivery in deliveries {
        let delivery = delivery.expect("enqueued");
        tokio::time::timeout(DEADLINE, delivery).await.expect("in time").expect("stored, after retries if need be");
    }
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("restarted", &[0, 1]).await.expect("assign");
    let consumed = consume(&mut consumer, 3000).await;
    // A last poll for anything stored twice.
    let extra = tokio::time::timeout(Duration::from_millis(500), consumer.poll()).await;
    let extra = extra.map(|polled| polled.expect("poll").len()).unwrap_or(0);
    assert_eq!((consumed.len(), extra), (3000, 0), "every record stored exactly once");
    for partition in 0..2u32 {
        let values: Vec<&str> = consumed.iter().filter(|record| record.partition == partition).map(value_str).collect();
        let expected: Vec<String> = (0..3000u32).filter(|i| i % 2 == partition).map(|i| i.to_string()).collect();
        assert_eq!(values, expected, "partition {partition}");
    }
    broker.shutdown().await;
}

/// Sends `requests` pipelined on one stream (as fast as HTTP/2 flow control lets them go) and returns each
/// request's answer by correlation id.
async fn pipelined(
    records: &mut RecordsClient<tonic::transport::Channel>,
    requests: Vec<ProduceStreamRequest>,
) -> HashMap<u64, Outcome> {
    let total = requests.len();
    let answers = records.produce_stream(tokio_stream::iter(requests)).await.expect("the stream opens");
    let mut answers = answers.into_inner();
    let mut outcomes = HashMap::new();
    let collect = async {
        while let Some(answer) = answers.message().await.expect("the stream stays healthy") {
            outcomes.insert(answer.correlation_id, answer.outcome.expect("an outcome"));
        }
    };
    tokio::time::timeout(DEADLINE, collect).await.expect("every request answered in time");
    assert_eq!(outcomes.len(), total, "one answer per request");
    outcomes
}

/// How many partitions round `round` spreads its requests over: one, then four, in turn.
fn partitions_of_round(round: u64) -> u64 {
    if round.is_multiple_of(2) {
        1
    } else {
        4
    }
}

// Before requests for one partition took their turns (they raced for room in the partition's writer queue, one
// woken waiter against the next request), this failed within its first two rounds in each of 6 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_one_partition_pipelined_on_a_stream_append_in_arrival_order() {
    let broker = TestBroker::start().await;
    create_topic(&broker.client().await, "arrival", 4).await;
    let mut records = RecordsClient::connect(format!("http://{}", broker.addr())).await.expect("connects");
    // No producer id, so no sequence numbers: only the broker's order of appends keeps send order. Each round is
    // one stream of more requests than the broker works on at once (and than a partition's queue holds).
    const ROUNDS: u64 = 20;
    const PER_ROUND: u64 = 600;
    let mut next_offsets = [0i64; 4];
    for round in 0..ROUNDS {
        let partitions = partitions_of_round(round);
        let requests = (0..PER_ROUND)
            .map(|id| streamed(id, "arrival", (id % partitions) as u32, &[&format!("{round}:{id}")]))
            .collect();
        let outcomes = pipelined(&mut records, requests).await;
        for id in 0..PER_ROUND {
            let Outcome::Produced(produced) = &outcomes[&id] else { panic!("request {id}: {:?}", outcomes[&id]) };
            let partition = produced.partition as usize;
            assert_eq!(partition as u64, id % partitions, "request {id} of round {round}");
            assert_eq!(
                produced.base_offset, next_offsets[partition],
                "round {round}: request {id} overtook or fell behind another request for partition {partition}"
            );
            next_offsets[partition] += 1;
        }
    }
    // A reader sees that same order.
    let mut consumer = Consumer::new(broker.client().await, ConsumerConfig::default()).expect("consumer");
    consumer.assign("arrival", &[0]).await.expect("assign");
    let consumed = consume(&mut consumer, next_offsets[0] as usize).await;
    let expected: Vec<String> = (0..ROUNDS)
        .flat_map(|round| {
            let partitions = partitions_of_round(round);
            (0..PER_ROUND).filter(move |id| id % partitions == 0).map(move |id| format!("{round}:{id}"))
        })
        .collect();
    assert_eq!(consumed.iter().map(value_str).collect::<Vec<_>>(), expected);
    broker.shutdown().await;
}
