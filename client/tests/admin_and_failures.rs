//! Admin calls, errors in the caller's terms, and a producer riding out a broker restart.

use crate::common;

use std::time::Duration;

use common::{consume, create_topic, value_str, TestBroker, DEADLINE};
use rill_client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, Error, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    TopicConfig,
};
use rill_protocol::v1::{
    AddPartitionsRequest, AddPartitionsResponse, CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest,
    DeleteTopicResponse, DescribeTopicRequest, DescribeTopicResponse, ListTopicsRequest, ListTopicsResponse,
};
use tonic::{Request, Response, Status};

#[tokio::test]
async fn topics_are_created_listed_described_grown_and_deleted() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.client().await);
    let config = TopicConfig { retention_bytes: Some(1 << 30), ..TopicConfig::default() };
    let created = admin.create_topic("events", 2, config).await.expect("create");
    assert_eq!((created.name.as_str(), created.partition_count), ("events", 2));
    assert_eq!(created.config.expect("effective config").retention_bytes, Some(1 << 30));
    admin.create_topic("audit", 1, TopicConfig::default()).await.expect("create");
    let names: Vec<String> = admin.list_topics().await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["audit", "events"]);

    let grown = admin.add_partitions("events", 5).await.expect("add partitions");
    assert_eq!(grown.partition_count, 5);
    let described = admin.describe_topic("events").await.expect("describe");
    assert_eq!(described.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(described.partitions.iter().all(|p| p.high_watermark == 0 && p.log_start_offset == 0));

    admin.delete_topic("audit").await.expect("delete");
    assert_eq!(admin.describe_topic("audit").await.unwrap_err(), Error::UnknownTopic { topic: "audit".into() });
    broker.shutdown().await;
}

#[tokio::test]
async fn errors_name_what_the_caller_got_wrong() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    create_topic(&client, "taken", 1).await;
    let err = admin.create_topic("taken", 1, TopicConfig::default()).await.unwrap_err();
    assert_eq!(err, Error::TopicExists { topic: "taken".into() });
    let err = admin.create_topic("bad/name", 1, TopicConfig::default()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    let err = admin.add_partitions("taken", 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");

    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let err = producer.send("missing", ProducerRecord::new("v")).await.err().expect("unknown topic");
    assert_eq!(err, Error::UnknownTopic { topic: "missing".into() });
    assert!(!err.is_retriable());
    let err = producer.send("taken", ProducerRecord::new("v").with_partition(3)).await.err().expect("no partition 3");
    assert_eq!(err, Error::UnknownPartition { topic: "taken".into(), partition: 3 });

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default()).expect("consumer");
    let err = consumer.assign("missing", &[0]).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. } | Error::UnknownPartition { .. }), "{err:?}");
    assert!(matches!(consumer.commit().await, Err(Error::NoGroup)));
    broker.shutdown().await;
}

/// A partition the topic never had is an error, not an endless wait: the consumer waits a bounded time for the
/// metadata to list it (on a cluster the node asked may be behind the controller), well within the call's own
/// timeout, then names it.
#[tokio::test]
async fn assigning_a_partition_the_topic_never_had_fails_after_a_bounded_wait() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "small", 1).await;
    assert!(client.config().request_timeout > DEADLINE, "the wait ends before the call's own timeout would");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    let assigned = tokio::time::timeout(DEADLINE, consumer.assign("small", &[4])).await.expect("ends by itself");
    assert_eq!(assigned.unwrap_err(), Error::UnknownPartition { topic: "small".into(), partition: 4 });
    assert!(consumer.assignment().is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn list_offsets_reports_both_ends_and_timestamps() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "ends", 2).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for i in 0..5 {
        let record = ProducerRecord::new("v").with_partition(1).with_timestamp_ms(1_700_000_000_000 + i * 10);
        drop(producer.send("ends", record).await.expect("enqueued"));
    }
    producer.flush().await;
    let admin = Admin::new(client);
    let latest = admin.list_offsets("ends", &[], OffsetSpec::Latest).await.expect("latest");
    let ends: Vec<(u32, i64)> = latest.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(ends, vec![(0, 0), (1, 5)]);
    let at = admin.list_offsets("ends", &[1], OffsetSpec::Timestamp(1_700_000_000_025)).await.expect("by time");
    assert_eq!(at[0].offset, 3);
    // Out of order: an older timestamp after the largest one; an empty partition answers its high watermark.
    let older = ProducerRecord::new("late clock").with_partition(1).with_timestamp_ms(1_600_000_000_000);
    drop(producer.send("ends", older).await.expect("enqueued"));
    producer.flush().await;
    let largest = admin.list_offsets("ends", &[], OffsetSpec::MaxTimestamp).await.expect("max timestamp");
    let largest: Vec<(u32, i64)> = largest.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(largest, vec![(0, 0), (1, 4)]);
    broker.shutdown().await;
}

#[tokio::test]
async fn sends_during_a_broker_restart_are_retried_and_stored() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "durable", 1).await;
    let config = ProducerConfig {
        retries: 100,
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), config).expect("producer");
    let first = producer.send("durable", ProducerRecord::new("before")).await.expect("enqueued");
    assert_eq!(first.await.expect("stored").offset, 0);

    let addr = broker.stop().await;
    // Sent while no broker listens: the batch fails as unavailable and is retried with backoff.
    let during = producer.send("durable", ProducerRecord::new("during")).await.expect("enqueued");
    let failed_once = async {
        while producer.metrics().retries == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, failed_once).await.expect("the batch failed against the stopped broker");
    broker.restart_on(addr).await;
    let stored = tokio::time::timeout(DEADLINE, during).await.expect("in time").expect("stored after the restart");
    assert_eq!(stored.offset, 1);
    let metrics = producer.metrics();
    assert_eq!((metrics.batches_acknowledged, metrics.batches_failed), (2, 0));

    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    consumer.assign("durable", &[0]).await.expect("assign");
    let values: Vec<String> = consume(&mut consumer, 2).await.iter().map(|r| value_str(r).to_owned()).collect();
    assert_eq!(values, vec!["before", "during"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_consumer_keeps_reading_across_a_broker_restart() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "tail", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    producer.send("tail", ProducerRecord::new("one")).await.expect("enqueued").await.expect("stored");
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.assign("tail", &[0]).await.expect("assign");
    assert_eq!(value_str(&consume(&mut consumer, 1).await[0]), "one");

    let addr = broker.stop().await;
    broker.restart_on(addr).await;
    producer.send("tail", ProducerRecord::new("two")).await.expect("enqueued").await.expect("stored");
    let records = consume(&mut consumer, 1).await;
    assert_eq!((records[0].offset, value_str(&records[0])), (1, "two"));
    broker.shutdown().await;
}

/// A TopicAdmin service that never answers.
struct SilentAdmin;

#[tonic::async_trait]
impl rill_protocol::v1::topic_admin_server::TopicAdmin for SilentAdmin {
    async fn create_topic(&self, _: Request<CreateTopicRequest>) -> Result<Response<CreateTopicResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn delete_topic(&self, _: Request<DeleteTopicRequest>) -> Result<Response<DeleteTopicResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn list_topics(&self, _: Request<ListTopicsRequest>) -> Result<Response<ListTopicsResponse>, Status> {
        std::future::pending().await
    }
    async fn describe_topic(
        &self,
        _: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn add_partitions(
        &self,
        _: Request<AddPartitionsRequest>,
    ) -> Result<Response<AddPartitionsResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn alter_topic_config(
        &self,
        _: Request<rill_protocol::v1::AlterTopicConfigRequest>,
    ) -> Result<Response<rill_protocol::v1::AlterTopicConfigResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn delete_records(
        &self,
        _: Request<rill_protocol::v1::DeleteRecordsRequest>,
    ) -> Result<Response<rill_protocol::v1::DeleteRecordsResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn describe_topic_defaults(
        &self,
        _: Request<rill_protocol::v1::DescribeTopicDefaultsRequest>,
    ) -> Result<Response<rill_protocol::v1::DescribeTopicDefaultsResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
    async fn alter_topic_defaults(
        &self,
        _: Request<rill_protocol::v1::AlterTopicDefaultsRequest>,
    ) -> Result<Response<rill_protocol::v1::AlterTopicDefaultsResponse>, Status> {
        Err(Status::unimplemented("silent"))
    }
}

#[tokio::test]
async fn a_call_the_broker_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(rill_protocol::v1::topic_admin_server::TopicAdminServer::new(SilentAdmin))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let config = ClientConfig { request_timeout: Duration::from_millis(200), ..ClientConfig::default() };
    let client = Client::connect_with(addr.to_string(), config).await.expect("connects");
    let err = Admin::new(client).list_topics().await.unwrap_err();
    assert!(matches!(err, Error::TimedOut { after, .. } if after == Duration::from_millis(200)), "{err:?}");
    assert!(err.is_retriable());
    server.abort();
}

#[tokio::test]
async fn a_peer_that_never_speaks_http2_is_unavailable() {
    // Accepts TCP and says nothing: the connection's handshake times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = Client::connect_lazy(addr.to_string(), config).expect("valid address");
    let err = Admin::new(client).list_topics().await.unwrap_err();
    // Which timer fires first (the handshake's or the call's) is a race; either way it is worth retrying.
    assert!(matches!(err, Error::Unavailable { .. } | Error::TimedOut { .. }), "{err:?}");
    assert!(err.is_retriable());
    accept.abort();
}

#[tokio::test]
async fn the_producer_sees_added_partitions_once_its_metadata_ages_out() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "growing", 1).await;
    let config = ProducerConfig { metadata_max_age: Duration::ZERO, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), config).expect("producer");
    producer.send("growing", ProducerRecord::new("a")).await.expect("enqueued").await.expect("stored");
    let err = producer.send("growing", ProducerRecord::new("b").with_partition(2)).await.err().expect("no partition 2");
    assert_eq!(err, Error::UnknownPartition { topic: "growing".into(), partition: 2 });

    Admin::new(client).add_partitions("growing", 3).await.expect("grow");
    let stored = producer
        .send("growing", ProducerRecord::new("c").with_partition(2))
        .await
        .expect("partition 2 exists now")
        .await
        .expect("stored");
    assert_eq!((stored.partition, stored.offset), (2, 0));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_batch_over_the_topics_limit_fails_without_retries() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let config = TopicConfig { max_batch_bytes: Some(1024), ..TopicConfig::default() };
    Admin::new(client.clone()).create_topic("small", 1, config).await.expect("create");
    let producer = Producer::new(client, ProducerConfig::default()).expect("producer");
    let delivery = producer.send("small", ProducerRecord::new(vec![0u8; 4000])).await.expect("enqueued");
    let err = delivery.await.expect_err("over the topic's max_batch_bytes");
    assert!(matches!(err, Error::BatchTooLarge { .. }), "{err:?}");
    assert_eq!(producer.metrics().retries, 0);
    broker.shutdown().await;
}
