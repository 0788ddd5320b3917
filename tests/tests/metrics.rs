//! The admin listener end to end: `/health`, `/ready`, `/metrics` over a real socket, with figures that agree with
//! what was produced, fetched and committed; and no listener (nor metrics) with `admin_listen` off.

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;
use rill_tests::admin_http::{get, sample};
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, fetch_request, TestBroker};
use tokio_stream::StreamExt;

#[tokio::test]
async fn metrics_agree_with_what_was_produced_fetched_and_committed() {
    let mut broker = TestBroker::start().await;
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    assert_ne!(admin.port(), 0, "port 0 was resolved to the port bound");
    broker.create_topic("metered", 2).await;
    broker.produce_values("metered", 1, &["a", "b", "c"]).await;
    broker.produce_values("metered", 1, &["d", "e"]).await;
    let fetched = broker.fetch_values("metered", 1, 0).await;
    assert_eq!(fetched.len(), 5);
    broker
        .groups
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "readers".into(),
            member_id: String::new(),
            generation: -1,
            offsets: vec![v1::OffsetCommit {
                topic: "metered".into(),
                partition: 1,
                offset: 2,
                metadata: String::new(),
            }],
        })
        .await
        .expect("commit");
    // A refused request, counted by its code.
    let refused = broker.records.fetch(fetch_request("no-such-topic", 0, 0, 0, 0)).await;
    assert!(refused.is_err());

    assert_eq!(get(admin, "/health", "*/*").await, (200, "ok\n".into()));
    assert_eq!(get(admin, "/ready", "*/*").await, (200, "ready\n".into()));
    assert_eq!(get(admin, "/nothing-here", "*/*").await.0, 404);
    let (status, text) = get(admin, "/metrics", "text/plain").await;
    assert_eq!(status, 200);
    let p1 = r#"{topic="metered",partition="1"}"#;
    let p0 = r#"{topic="metered",partition="0"}"#;
    assert_eq!(sample(&text, &format!("rill_partition_produced_records_total{p1}")), Some(5.0), "{text}");
    assert_eq!(sample(&text, &format!("rill_partition_produced_records_total{p0}")), Some(0.0));
    assert_eq!(sample(&text, &format!("rill_partition_log_end_offset{p1}")), Some(5.0));
    assert_eq!(sample(&text, &format!("rill_partition_high_watermark{p1}")), Some(5.0));
    assert_eq!(sample(&text, &format!("rill_partition_fetched_records_total{p1}")), Some(5.0));
    assert!(sample(&text, &format!("rill_partition_produced_bytes_total{p1}"))
        .is_some_and(|bytes| bytes > 5.0 * 61.0 / 2.0));
    let group = r#"{group="readers",topic="metered",partition="1"}"#;
    assert_eq!(sample(&text, &format!("rill_group_committed_offset{group}")), Some(2.0));
    assert_eq!(sample(&text, &format!("rill_group_lag_records{group}")), Some(3.0));
    assert_eq!(sample(&text, r#"rill_grpc_requests_total{method="rill.v1.Records/Produce"}"#), Some(2.0));
    assert_eq!(
        sample(&text, r#"rill_grpc_request_errors_total{method="rill.v1.Records/Fetch",code="NOT_FOUND"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"rill_grpc_request_duration_seconds_count{method="rill.v1.Records/Produce"}"#),
        Some(2.0)
    );
    // The fetch read what was just produced: from the tail cache, never the disk.
    assert!(sample(&text, "rill_tail_cache_hits_total").is_some_and(|hits| hits >= 1.0), "{text}");
    assert_eq!(sample(&text, "rill_tail_cache_misses_total"), Some(0.0));
    assert!(sample(&text, "rill_tail_cache_hit_bytes_total").is_some_and(|bytes| bytes > 5.0 * 61.0 / 2.0));
    assert!(sample(&text, "rill_tail_cache_bytes").is_some_and(|bytes| bytes > 0.0));
    assert!(sample(&text, "rill_connections_open").is_some_and(|open| open >= 1.0));
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|rss| rss > 0.0));
    // The data dir's file system, and its reserve not reached.
    let total = sample(&text, "rill_disk_total_bytes").expect("the file system's size");
    assert!(sample(&text, "rill_disk_free_bytes").is_some_and(|free| free > 0.0 && free <= total), "{text}");
    assert!(sample(&text, "rill_disk_reserve_bytes").is_some_and(|reserve| reserve > 0.0 && reserve <= total / 20.0));
    assert_eq!(sample(&text, "rill_disk_below_reserve"), Some(0.0));
    assert_eq!(sample(&text, "rill_disk_reserve_refused_appends_total"), Some(0.0));
    assert_eq!(sample(&text, "rill_partitions_fsync_failed"), Some(0.0));
    assert!(!text.contains("# EOF"), "the 0.0.4 text format has no end marker");
    assert!(text.contains("# TYPE rill_partition_produced_records_total counter"));

    let (status, openmetrics) = get(admin, "/metrics", "application/openmetrics-text;version=1.0.0").await;
    assert_eq!(status, 200);
    assert!(openmetrics.ends_with("# EOF\n"), "OpenMetrics ends with its marker");
    assert!(openmetrics.contains("# TYPE rill_partition_produced_records counter"));
    broker.shutdown().await;
}

/// A compacted topic whose keys are written over and over: the broker's compaction loop runs a pass, and
/// `/metrics` counts it, with what it removed and freed.
#[tokio::test]
async fn compaction_passes_are_counted() {
    let mut broker = TestBroker::start().await;
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    create_compacted(&mut broker, 1, 100).await;
    let keyless = broker
        .records
        .produce(rill_tests::produce_request("table", Some(0), batch_of(&["v"], 1), v1::Acks::Leader))
        .await;
    let refused = keyless.expect_err("a keyless record on a compacted topic");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("no key"), "{}", refused.message());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let (_, text) = get(admin, "/metrics", "text/plain").await;
        // Passes may run while the records still arrive: enough of them, and what they removed, counted.
        if sample(&text, "rill_compaction_records_removed_total").is_some_and(|removed| removed > 50.0) {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "compaction not counted within 30 s: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(sample(&text, "rill_compaction_passes_total").is_some_and(|passes| passes >= 1.0), "{text}");
    assert!(sample(&text, "rill_compaction_reclaimed_bytes_total").is_some_and(|bytes| bytes > 1000.0));
    assert!(sample(&text, "rill_compaction_segments_rewritten_total").is_some_and(|segments| segments >= 1.0));
    // Three keys in 1 KiB segments: what compaction leaves of many segments fits a few.
    assert!(sample(&text, "rill_compaction_segments_merged_total").is_some_and(|segments| segments >= 1.0), "{text}");
    assert_eq!(sample(&text, "rill_compaction_failures_total"), Some(0.0));
}

/// Creates `table`, compacted as eagerly as settings allow (1 KiB segments, any dirty ratio), with `partitions`
/// partitions, and writes `records` keyed records over three keys to it, spread round the partitions.
async fn create_compacted(broker: &mut TestBroker, partitions: u32, records: u32) {
    let config = v1::TopicConfig {
        cleanup_policy: Some("compact".into()),
        segment_bytes: Some(1024),
        min_cleanable_dirty_ratio: Some(0.0),
        ..Default::default()
    };
    let request = v1::CreateTopicRequest {
        name: "table".into(),
        partition_count: partitions,
        config: Some(config),
        ..Default::default()
    };
    let created = broker.admin.create_topic(request).await.expect("create").into_inner();
    assert_eq!(created.topic.and_then(|t| t.config).and_then(|c| c.cleanup_policy).as_deref(), Some("compact"));
    for n in 0..records {
        let batch = rill_tests::keyed_batch(&format!("k{}", n % 3), &format!("value {n}"));
        let request = rill_tests::produce_request("table", Some(n % partitions), batch, v1::Acks::Leader);
        broker.records.produce(request).await.expect("produce");
    }
}

/// With several compaction workers (`log_cleaner_threads`) every partition is still compacted, each by one of
/// them, and nothing fails.
#[tokio::test]
async fn several_compaction_workers_compact_every_partition() {
    let mut broker = TestBroker::start_with(|config| config.log_cleaner_threads = 3).await;
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    create_compacted(&mut broker, 4, 400).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let request = v1::DescribeTopicRequest { name: "table".into(), auto_create: false };
        let described = broker.admin.describe_topic(request).await.expect("described").into_inner();
        // 100 batches of about 85 bytes in 1 KiB segments: about 9 segments uncompacted; compacted (3 keys) and
        // merged, the compacted part is one, beside the active segment.
        let compacted = described.partitions.iter().filter(|partition| partition.segment_count <= 3).count();
        if compacted == 4 {
            break;
        }
        let (_, text) = get(admin, "/metrics", "text/plain").await;
        assert!(tokio::time::Instant::now() < deadline, "{compacted} of 4 partitions compacted within 30 s: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, text) = get(admin, "/metrics", "text/plain").await;
    assert_eq!(sample(&text, "rill_compaction_failures_total"), Some(0.0));
}

#[tokio::test]
async fn kafka_error_codes_and_streams_failing_mid_way_are_counted() {
    let mut broker = TestBroker::start().await;
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    broker.create_topic("counted", 1).await;
    // A Kafka Produce to two partitions that do not exist: answered, with UNKNOWN_TOPIC_OR_PARTITION for each.
    let mut kafka = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let partition = |index| PartitionProduceData::default().with_index(index).with_records(Some(batch_of(&["x"], 1)));
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("no-such-topic")))
            .with_partition_data(vec![partition(0), partition(1)]),
    ]);
    let response: ProduceResponse = kafka.call(ApiKey::Produce, 9, &request).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // A Subscribe that started, then failed when its topic was deleted: the status comes in the trailers.
    let subscribe = v1::SubscribeRequest {
        topic: "counted".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    let mut stream = broker.records.subscribe(subscribe).await.expect("subscribed").into_inner();
    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "counted".into() }).await.expect("delete");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.expect("ended in time");
    assert!(matches!(ended, Some(Err(_))), "the stream ends with an error: {ended:?}");

    let (_, text) = get(admin, "/metrics", "text/plain").await;
    let produce_errors = r#"rill_kafka_request_errors_total{api="Produce",code="UNKNOWN_TOPIC_OR_PARTITION"}"#;
    assert_eq!(sample(&text, produce_errors), Some(2.0), "one per partition, as Kafka counts: {text}");
    let subscribe_errors = r#"rill_grpc_request_errors_total{method="rill.v1.Records/Subscribe",code="UNAVAILABLE"}"#;
    assert_eq!(sample(&text, subscribe_errors), Some(1.0), "{text}");
    assert_eq!(sample(&text, "rill_tls_handshake_failures_total"), Some(0.0), "present, zero without TLS");
    broker.shutdown().await;
}

#[tokio::test]
async fn admin_listen_off_serves_nothing_and_records_nothing() {
    let mut broker = TestBroker::start_with(|config| config.admin_listen = None).await;
    assert_eq!(broker.handle.as_ref().and_then(|h| h.admin_addr()), None);
    broker.create_topic("quiet", 1).await;
    assert_eq!(broker.produce_values("quiet", 0, &["a"]).await, 0);
    broker.shutdown().await;
}

/// A Kafka client's pushed metrics (KIP-714) on /metrics and on the console's client list, which says who it is,
/// what it is asked for and the request latency it measured.
#[tokio::test]
async fn a_clients_pushed_metrics_show_on_metrics_and_the_console() {
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
        PushTelemetryRequest, PushTelemetryResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, MetricsData, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use prost::Message;

    let broker = TestBroker::start_with(|config| {
        config.client_metrics.push(rill_broker::client_telemetry::ClientMetricsSubscription {
            name: "producers".into(),
            metrics: vec!["org.apache.kafka.producer.".into()],
            interval_ms: 60_000,
            matches: Default::default(),
        })
    })
    .await;
    let handle = broker.handle.as_ref().expect("running");
    let admin = handle.admin_addr().expect("the test config turns the listener on");
    let (status, page) = get(admin, "/clients", "text/html").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No client has asked yet"), "{page}");

    let mut client = KafkaClient::connect(handle.addr()).await.with_client_id("orders-app");
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("test-kafka-client"))
        .with_client_software_version(StrBytes::from_static_str("1.2.3"));
    let _: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &versions).await;
    let asked: GetTelemetrySubscriptionsResponse =
        client.call(ApiKey::GetTelemetrySubscriptions, 0, &GetTelemetrySubscriptionsRequest::default()).await;
    let point = NumberDataPoint {
        attributes: vec![KeyValue {
            key: "node.id".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue("0".into())) }),
            ..Default::default()
        }],
        value: Some(number_data_point::Value::AsDouble(1.75)),
        ..Default::default()
    };
    let gauge = Metric {
        name: "org.apache.kafka.producer.node.request.latency.avg".into(),
        data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
        ..Default::default()
    };
    let scope = ScopeMetrics { metrics: vec![gauge], ..Default::default() };
    let data =
        MetricsData { resource_metrics: vec![ResourceMetrics { scope_metrics: vec![scope], ..Default::default() }] };
    let push = PushTelemetryRequest::default()
        .with_client_instance_id(asked.client_instance_id)
        .with_subscription_id(asked.subscription_id)
        .with_metrics(data.encode_to_vec().into());
    let pushed: PushTelemetryResponse = client.call(ApiKey::PushTelemetry, 0, &push).await;
    assert_eq!(pushed.error_code, 0);

    let (_, text) = get(admin, "/metrics", "text/plain").await;
    let series = format!(
        "kafka_client_producer_node_request_latency_avg{{client_id=\"orders-app\",client_instance_id=\"{}\",node_id=\"0\"}}",
        asked.client_instance_id
    );
    assert_eq!(sample(&text, &series), Some(1.75), "{text}");
    let (status, page) = get(admin, "/clients", "text/html").await;
    assert_eq!(status, 200, "{page}");
    for shown in ["orders-app", "test-kafka-client 1.2.3", "org.apache.kafka.producer.", "1.75 ms", "60 s"] {
        assert!(page.contains(shown), "{shown} on the page:\n{page}");
    }
    assert!(page.contains(&asked.client_instance_id.to_string()));
}
