//! OTLP traces end to end: a `rill broker` process with `--otlp-endpoint` exports its request spans to a real
//! OTLP/gRPC receiver (opentelemetry-proto's `TraceService`, served here on a free port), and a record's
//! `traceparent` header carries one trace from the producer through the broker's produce span to a consumer's
//! span, exported through the OpenTelemetry SDK to the same receiver.

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{BrokerProcess, DEADLINE, RILL};
use opentelemetry::trace::{Span as _, TracerProvider as _};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use rill_client::{
    Admin, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, SeekTo, TopicConfig, TraceParent,
};
use tokio_stream::wrappers::TcpListenerStream;

/// One span as the receiver got it, flattened: its service, name, ids and attributes.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    node_id: Option<i64>,
    name: String,
    trace_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, Value>,
}

impl ReceivedSpan {
    fn text(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key)? {
            Value::StringValue(text) => Some(text),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key)? {
            Value::IntValue(value) => Some(*value),
            _ => None,
        }
    }
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Default, Clone)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn attributes(list: &[KeyValue]) -> HashMap<String, Value> {
    list.iter().filter_map(|kv| Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?))).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = attributes(resource_spans.resource.as_ref().map_or(&[][..], |r| &r.attributes));
            let service = match resource.get("service.name") {
                Some(Value::StringValue(name)) => name.clone(),
                _ => String::new(),
            };
            let node_id = match resource.get("rill.node.id") {
                Some(Value::IntValue(id)) => Some(*id),
                _ => None,
            };
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    node_id,
                    name: span.name.clone(),
                    trace_id: span.trace_id.clone(),
                    parent_span_id: span.parent_span_id.clone(),
                    attributes: attributes(&span.attributes),
                });
            }
        }
        self.spans.lock().unwrap_or_else(PoisonError::into_inner).extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Serves on a free loopback port until the test's runtime ends; returns the endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    /// Waits (polling the spans received, with a deadline) for a span `accept` takes.
    async fn wait_for(&self, what: &str, accept: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let found = self.spans.lock().unwrap_or_else(PoisonError::into_inner).iter().find(|s| accept(s)).cloned();
            if let Some(span) = found {
                return span;
            }
            if Instant::now() > deadline {
                let seen = self.spans.lock().unwrap_or_else(PoisonError::into_inner).clone();
                panic!("no {what} span within {DEADLINE:?}; received: {seen:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A broker exporting to `endpoint`, its batch exporter flushing every `schedule_delay_ms`.
fn broker_exporting_to(endpoint: &str, dir: &std::path::Path, schedule_delay_ms: u32) -> BrokerProcess {
    let mut command = Command::new(RILL);
    command.env("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms.to_string());
    let data_dir = dir.to_string_lossy().into_owned();
    let args =
        ["broker", "--listen", "127.0.0.1:0", "--data-dir", &data_dir, "--node-id", "7", "--otlp-endpoint", endpoint];
    BrokerProcess::start_command(command, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_and_commit_spans_reach_a_real_receiver_and_one_trace_spans_producer_and_consumer() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = broker_exporting_to(&endpoint, dir.path(), 100);

    let client = Client::connect(&broker.addr).await.expect("connect");
    Admin::new(client.clone()).create_topic("traced", 2, TopicConfig::default()).await.expect("create topic");
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    // The producer's own span, as an instrumented application would have it.
    let producer_context = TraceParent::new(*b"rill-otlp-test-1", *b"producer");
    producer.send("traced", ProducerRecord::new("warm-up").with_partition(1)).await.expect("send").await.expect("ack");
    let record = ProducerRecord::new("hello").with_partition(1).with_trace_parent(producer_context);
    let stored = producer.send("traced", record).await.expect("send").await.expect("acknowledged");
    assert_eq!((stored.partition, stored.offset), (1, 1));

    let produce =
        receiver.wait_for("produce", |s| s.name == "produce" && s.trace_id == producer_context.trace_id.to_vec()).await;
    assert_eq!(produce.service, "rill");
    assert_eq!(produce.node_id, Some(7), "the node id is a resource attribute");
    assert_eq!(produce.text("topic"), Some("traced"));
    assert_eq!(produce.int("partition"), Some(1), "{produce:?}");
    assert_eq!(produce.int("offset"), Some(stored.offset));
    assert_eq!(produce.parent_span_id, producer_context.parent_id.to_vec(), "the producer's span is the parent");
    // The untraced warm-up produce has a span of its own, in a trace of its own.
    let warm_up = receiver.wait_for("untraced produce", |s| s.name == "produce" && s.int("offset") == Some(0)).await;
    assert_ne!(warm_up.trace_id, produce.trace_id);
    assert!(warm_up.parent_span_id.is_empty(), "a record without traceparent starts a new trace");

    // The consumer reads the record and continues the trace in its own span, exported by the OTel SDK.
    let config = ConsumerConfig { group_id: Some("tracers".into()), ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client.clone(), config).expect("consumer");
    consumer.assign("traced", &[1]).await.expect("assign");
    consumer.seek("traced", 1, SeekTo::Offset(stored.offset)).await.expect("seek");
    let consumed = tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("poll in time").expect("poll");
    let parent = consumed.first().and_then(|r| r.trace_parent()).expect("the consumed record carries traceparent");
    assert_eq!(parent, producer_context);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&endpoint)
        .build()
        .expect("the consumer's exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("rill-otlp-test-consumer").build())
        .build();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let parent_cx = opentelemetry::Context::new().with_remote_span_context(remote);
    let mut span = provider.tracer("consumer").start_with_context("process", &parent_cx);
    span.end();
    let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await.expect("flush task");
    flushed.expect("the consumer's span is exported");
    let processed = receiver.wait_for("consumer", |s| s.service == "rill-otlp-test-consumer").await;
    assert_eq!(processed.trace_id, produce.trace_id, "producer, broker and consumer share one trace");

    // The consumer's fetch and commit have spans with their topic, partition and offset.
    let fetch = receiver
        .wait_for("fetch", |s| s.name == "fetch" && s.text("topic") == Some("traced") && s.int("partition") == Some(1))
        .await;
    assert_eq!(fetch.service, "rill");
    assert!(fetch.int("offset").is_some_and(|offset| offset <= stored.offset), "{fetch:?}");
    consumer.commit().await.expect("commit");
    let commit = receiver.wait_for("commit", |s| s.name == "commit").await;
    assert_eq!(commit.text("group"), Some("tracers"));
    assert_eq!((commit.text("topic"), commit.int("partition")), (Some("traced"), Some(1)));
    assert_eq!(commit.int("offset"), Some(stored.offset + 1));
    broker.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_exports_the_spans_still_queued() {
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A schedule delay longer than the test: only the flush at shutdown can deliver the span.
    let broker = broker_exporting_to(&endpoint, dir.path(), 600_000);
    let client = Client::connect(&broker.addr).await.expect("connect");
    Admin::new(client.clone()).create_topic("flushed", 1, TopicConfig::default()).await.expect("create topic");
    let producer = Producer::new(client, ProducerConfig::default()).expect("producer");
    producer.send("flushed", ProducerRecord::new("x")).await.expect("send").await.expect("acknowledged");
    let status = tokio::task::spawn_blocking(move || broker.interrupt()).await.expect("interrupt task");
    assert!(status.success(), "graceful shutdown: {status:?}");
    let produce = receiver.wait_for("flushed produce", |s| s.name == "produce").await;
    assert_eq!(produce.text("topic"), Some("flushed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_clients_traceparent_header_is_continued_by_the_produce_span_and_its_fetch_has_a_span() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = broker_exporting_to(&endpoint, dir.path(), 100);
    let client = Client::connect(&broker.addr).await.expect("connect");
    Admin::new(client).create_topic("kafka-traced", 1, TopicConfig::default()).await.expect("create topic");

    // librdkafka, as an application instrumented with OpenTelemetry's Kafka propagation sends it.
    let context = TraceParent::new(*b"kafka-trace-id-1", *b"kspan-01");
    let traceparent = context.to_header_value();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("acks", "all")
        .set("compression.type", "none")
        .create()
        .expect("rdkafka producer");
    let headers = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(traceparent.as_str()) });
    let record = FutureRecord::<(), str>::to("kafka-traced").partition(0).payload("hello").headers(headers);
    let delivery = producer.send(record, DEADLINE).await.map_err(|(error, _)| error).expect("delivered");
    assert_eq!((delivery.partition, delivery.offset), (0, 0));

    let produce = receiver.wait_for("kafka produce", |s| s.name == "produce" && s.trace_id == context.trace_id).await;
    assert_eq!(produce.text("topic"), Some("kafka-traced"));
    assert_eq!((produce.int("partition"), produce.int("offset")), (Some(0), Some(0)));
    assert_eq!(produce.parent_span_id, context.parent_id.to_vec());

    // A Kafka consumer reads the header back unchanged, and its Fetch has a span.
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "kafka-tracers")
        .set("enable.auto.commit", "false")
        .create()
        .expect("rdkafka consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset("kafka-traced", 0, rdkafka::Offset::Beginning).expect("partition");
    consumer.assign(&assignment).expect("assign");
    let header = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.expect("a record");
                let headers = message.headers().expect("headers");
                return headers.iter().find(|h| h.key == "traceparent").and_then(|h| h.value.map(<[u8]>::to_vec));
            }
        }
        None
    })
    .await
    .expect("consumer task");
    assert_eq!(header.as_deref(), Some(traceparent.as_bytes()), "the header reaches the consumer as sent");
    let fetch =
        receiver.wait_for("kafka fetch", |s| s.name == "fetch" && s.text("topic") == Some("kafka-traced")).await;
    assert_eq!(fetch.int("partition"), Some(0));
    broker.kill();
}
