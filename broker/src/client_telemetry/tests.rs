use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Metric, ResourceMetrics, ScopeMetrics, Sum};

use super::*;

fn subscription(name: &str, metrics: &[&str], interval_ms: u32, matches: &[(&str, &str)]) -> ClientMetricsSubscription {
    ClientMetricsSubscription {
        name: name.into(),
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
        interval_ms,
        matches: matches.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn telemetry_of(fixed: &[ClientMetricsSubscription]) -> ClientTelemetry {
    ClientTelemetry::new(fixed, store::SubscriptionStore::in_memory())
}

fn set(key: &str, value: &str) -> (String, Option<String>) {
    (key.to_owned(), Some(value.to_owned()))
}

fn client(id: &str) -> ClientIdentity {
    ClientIdentity {
        client_id: id.into(),
        software_name: "confluent-kafka-python".into(),
        software_version: "2.16.2-rdkafka-2.16.0".into(),
        peer: Some("10.1.2.3:40000".parse().unwrap()),
    }
}

fn point(value: f64, attributes: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.to_string())) }),
                ..Default::default()
            })
            .collect(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric { name: name.into(), data: Some(metric::Data::Gauge(Gauge { data_points: points })), ..Default::default() }
}

fn sum(name: &str, points: Vec<NumberDataPoint>, is_delta: bool) -> Metric {
    let sum = Sum { data_points: points, aggregation_temporality: if is_delta { 1 } else { 2 }, is_monotonic: true };
    Metric { name: name.into(), data: Some(metric::Data::Sum(sum)), ..Default::default() }
}

fn encoded(metrics: Vec<Metric>) -> Vec<u8> {
    let scope = ScopeMetrics { metrics, ..Default::default() };
    let resource = ResourceMetrics { scope_metrics: vec![scope], ..Default::default() };
    MetricsData { resource_metrics: vec![resource] }.encode_to_vec()
}

#[test]
fn a_client_gets_every_matching_subscriptions_prefixes_and_the_shortest_interval() {
    let telemetry = telemetry_of(&[
        subscription("producers", &["org.apache.kafka.producer."], 60_000, &[("client_id", "app-.*")]),
        subscription(
            "latency",
            &["org.apache.kafka.client.request.latency"],
            5_000,
            &[("client_source_address", "10\\..*")],
        ),
        subscription("other-port", &["*"], 1_000, &[("client_source_port", "9")]),
        subscription("java", &["org.apache.kafka.consumer."], 1_000, &[("client_software_name", "apache-kafka-java")]),
        subscription("python", &["org.apache.kafka.client."], 1_000, &[("client_software_name", "confluent-.*")]),
    ]);
    let asked = telemetry.subscribe(Uuid::nil(), &client("app-orders"));
    assert!(!asked.client_instance_id.is_nil(), "a new client gets an id");
    let expected =
        ["org.apache.kafka.client.", "org.apache.kafka.client.request.latency", "org.apache.kafka.producer."];
    assert_eq!(asked.requested_metrics, expected);
    assert_eq!(asked.push_interval_ms, 1_000);
    let again = telemetry.subscribe(asked.client_instance_id, &client("app-orders"));
    assert_eq!((again.client_instance_id, again.subscription_id), (asked.client_instance_id, asked.subscription_id));
    // The regex matches the whole value: "my-app-1" is not "app-.*".
    let other = telemetry.subscribe(Uuid::nil(), &client("my-app-1"));
    assert_eq!(other.requested_metrics, ["org.apache.kafka.client.", "org.apache.kafka.client.request.latency"]);
    assert_ne!(other.subscription_id, asked.subscription_id, "another ask, another id");
    let nobody = telemetry_of(&[subscription("all", &["*"], 1_000, &[("client_id", "x")])]);
    let unmatched = nobody.subscribe(Uuid::nil(), &client("y"));
    assert_eq!((unmatched.requested_metrics.len(), unmatched.push_interval_ms), (0, DEFAULT_INTERVAL_MS));
    let all = nobody.subscribe(Uuid::nil(), &client("x"));
    assert_eq!(all.requested_metrics, [""], "`*` is every metric, as Kafka's empty prefix");
    assert_eq!(nobody.instance_count(), 1, "a client asked for nothing is not kept");
}

#[test]
fn a_bad_subscription_says_what_is_allowed() {
    let cases = [
        (subscription("", &["*"], 1_000, &[]), "needs a name"),
        (subscription("s", &["*"], 50, &[]), "100..=3600000"),
        (subscription("s", &["*"], 1_000, &[("client_rack", "x")]), "client_id, client_instance_id"),
        (subscription("s", &["*"], 1_000, &[("client_id", "(")]), "is not a regex"),
    ];
    for (bad, allowed) in cases {
        let refused = bad.check().expect_err("refused");
        assert!(refused.contains(allowed), "{refused}");
    }
    assert_eq!(subscription("s", &["*"], 1_000, &[("client_id", "a|b")]).check(), Ok(()));
}

#[test]
fn a_push_keeps_its_gauges_and_sums_as_the_instances_latest_values() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 100, &[])]);
    let asked = telemetry.subscribe(Uuid::nil(), &client("app"));
    let metrics = encoded(vec![
        gauge("org.apache.kafka.producer.record.queue.time.avg", vec![point(1.5, &[])]),
        sum("org.apache.kafka.producer.connection.creation.total", vec![point(3.0, &[("node.id", "1")])], false),
        gauge("rill.shadow", vec![point(7.0, &[("__name__", "x"), ("client_id", "spoofed"), ("1x", "y")])]),
    ]);
    telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &metrics).expect("accepted");
    let mut shown = telemetry.snapshot();
    shown.sort_by(|a, b| a.family.cmp(&b.family));
    let families: Vec<(&str, SeriesKind, f64)> = shown.iter().map(|s| (s.family.as_str(), s.kind, s.value)).collect();
    assert_eq!(
        families,
        [
            ("kafka_client_producer_connection_creation", SeriesKind::Counter, 3.0),
            ("kafka_client_producer_record_queue_time_avg", SeriesKind::Gauge, 1.5),
            ("kafka_client_rill_shadow", SeriesKind::Gauge, 7.0),
        ]
    );
    let id = asked.client_instance_id.to_string();
    let labels = |s: &Series| s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    assert_eq!(labels(&shown[0]), format!("client_id=app,client_instance_id={id},node_id=1"));
    assert_eq!(labels(&shown[2]), format!("client_id=app,client_instance_id={id}"), "no label may be forged");

    // The same push compressed, once the interval allows; a terminating one forgets the instance.
    std::thread::sleep(Duration::from_millis(60));
    let mut zstd = Vec::new();
    rill_protocol::compression::compress_into(Compression::Zstd, 3, &metrics, &mut zstd).unwrap();
    telemetry.push(asked.client_instance_id, asked.subscription_id, false, 4, &zstd).expect("zstd accepted");
    assert_eq!(telemetry.snapshot().len(), 3);
    telemetry.push(asked.client_instance_id, asked.subscription_id, true, 0, &metrics).expect("the last push");
    assert_eq!((telemetry.snapshot().len(), telemetry.instance_count()), (0, 0));
}

#[test]
fn a_delta_sum_adds_to_what_the_instance_pushed_before() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 100, &[])]);
    let asked = telemetry.subscribe(Uuid::nil(), &client("app"));
    let delta = encoded(vec![sum("org.apache.kafka.consumer.fetch.total", vec![point(2.0, &[])], true)]);
    for _ in 0..3 {
        telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &delta).expect("accepted");
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(telemetry.snapshot()[0].value, 6.0);
}

#[test]
fn pushes_that_kafka_refuses_are_refused_with_its_reasons() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 10_000, &[])]);
    let asked = telemetry.subscribe(Uuid::nil(), &client("app"));
    let (id, sub) = (asked.client_instance_id, asked.subscription_id);
    let metrics = encoded(vec![gauge("g", vec![point(1.0, &[])])]);
    assert_eq!(telemetry.push(Uuid::nil(), sub, false, 0, &metrics), Err(PushRefusal::NoInstanceId));
    assert_eq!(telemetry.push(id, sub + 1, false, 0, &metrics), Err(PushRefusal::UnknownSubscription(sub + 1)));
    let stranger = Uuid::from_u128(7);
    assert_eq!(telemetry.push(stranger, sub, false, 0, &metrics), Err(PushRefusal::UnknownSubscription(sub)));
    assert_eq!(telemetry.push(id, sub, false, 2, &metrics), Err(PushRefusal::UnsupportedCompression(2)));
    let huge = vec![0u8; TELEMETRY_MAX_BYTES + 1];
    assert_eq!(telemetry.push(id, sub, false, 0, &huge), Err(PushRefusal::TooLarge(TELEMETRY_MAX_BYTES + 1)));
    assert!(matches!(telemetry.push(id, sub, false, 0, &[0xff, 0xff, 0xff]), Err(PushRefusal::Malformed(_))));
    assert!(matches!(telemetry.push(id, sub, false, 4, b"not zstd"), Err(PushRefusal::Malformed(_))));
    telemetry.push(id, sub, false, 0, &metrics).expect("the first push");
    assert!(matches!(
        telemetry.push(id, sub, false, 0, &metrics),
        Err(PushRefusal::TooSoon { interval_ms: 10_000, .. })
    ));
    telemetry.push(id, sub, true, 0, &metrics).expect("a terminating push is never too soon");
}

#[test]
fn instances_and_their_series_are_bounded_and_forgotten_after_three_intervals() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 100, &[])]);
    let first = telemetry.subscribe(Uuid::nil(), &client("first"));
    for _ in 0..MAX_CLIENT_INSTANCES {
        telemetry.subscribe(Uuid::nil(), &client("more"));
    }
    assert_eq!(telemetry.instance_count(), MAX_CLIENT_INSTANCES);
    let metrics = encoded(vec![gauge("g", vec![point(1.0, &[])])]);
    let refused = telemetry.push(first.client_instance_id, first.subscription_id, false, 0, &metrics);
    assert_eq!(refused, Err(PushRefusal::UnknownSubscription(first.subscription_id)), "the oldest went first");

    let points = (0..MAX_SERIES_PER_INSTANCE + 50).map(|i| point(1.0, &[("n", &i.to_string())])).collect();
    let asked = telemetry.subscribe(Uuid::nil(), &client("wide"));
    telemetry
        .push(asked.client_instance_id, asked.subscription_id, false, 0, &encoded(vec![gauge("g", points)]))
        .unwrap();
    assert_eq!(telemetry.snapshot().len(), MAX_SERIES_PER_INSTANCE);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!((telemetry.snapshot().len(), telemetry.instance_count()), (0, 0), "silent for 3 intervals");
}

#[test]
fn a_forwarded_push_names_the_client_it_came_from_over_what_the_client_said() {
    let metrics = encoded(vec![gauge("org.apache.kafka.producer.record.queue.time.avg", vec![point(1.0, &[])])]);
    let mut data = MetricsData::decode(metrics.as_slice()).unwrap();
    let forged = KeyValue {
        key: "client_id".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("someone-else".into())) }),
        ..Default::default()
    };
    data.resource_metrics[0].resource =
        Some(opentelemetry_proto::tonic::resource::v1::Resource { attributes: vec![forged], ..Default::default() });
    data.resource_metrics.push(ResourceMetrics::default());
    let request = forward::marked(data, "9c5f0d8e-0000-4000-8000-000000000001", &client("app"));
    for resource in &request.resource_metrics {
        let attributes: Vec<(String, String)> = resource
            .resource
            .as_ref()
            .expect("every resource marked")
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), attribute_text(kv.value.as_ref().unwrap().value.as_ref().unwrap())))
            .collect();
        let expected = [
            ("client_instance_id", "9c5f0d8e-0000-4000-8000-000000000001"),
            ("client_id", "app"),
            ("client_software_name", "confluent-kafka-python"),
            ("client_software_version", "2.16.2-rdkafka-2.16.0"),
            ("client_source_address", "10.1.2.3"),
            ("client_source_port", "40000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(attributes, expected);
    }
    assert_eq!(request.resource_metrics[0].scope_metrics[0].metrics.len(), 1, "the metrics go as pushed");
}

#[test]
fn a_push_cannot_make_labels_or_names_without_bound() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 100, &[])]);
    let asked = telemetry.subscribe(Uuid::nil(), &client("app"));
    let keys: Vec<String> = (0..MAX_LABELS + 10).map(|i| format!("k{i:03}")).collect();
    let long_value = "v".repeat(MAX_TEXT_CHARS * 4);
    let long_key = "k".repeat(MAX_TEXT_CHARS + 1);
    let mut attributes: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    attributes.insert(0, ("a_long_value", &long_value));
    attributes.insert(0, (&long_key, "dropped: its name is too long"));
    let wide = gauge("wide", vec![point(1.0, &attributes)]);
    let long_name = gauge(&"n".repeat(MAX_TEXT_CHARS + 1), vec![point(1.0, &[])]);
    let metrics = encoded(vec![wide, long_name]);
    telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &metrics).expect("accepted");
    let shown = telemetry.snapshot();
    assert_eq!(shown.len(), 1, "the metric with a name past {MAX_TEXT_CHARS} characters is dropped");
    let labels = &shown[0].labels[2..];
    assert_eq!(labels.len(), MAX_LABELS);
    assert_eq!(labels[0], ("a_long_value".to_owned(), "v".repeat(MAX_TEXT_CHARS)));
    assert!(labels.iter().all(|(name, _)| name.len() <= MAX_TEXT_CHARS));
}

#[test]
fn all_instances_together_hold_at_most_max_series() {
    let telemetry = telemetry_of(&[subscription("all", &["*"], 60_000, &[])]);
    let points = (0..MAX_SERIES_PER_INSTANCE).map(|i| point(1.0, &[("n", &i.to_string())])).collect();
    let metrics = encoded(vec![gauge("g", points)]);
    let instances = MAX_SERIES / MAX_SERIES_PER_INSTANCE + 2;
    for _ in 0..instances {
        let asked = telemetry.subscribe(Uuid::nil(), &client("many"));
        telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &metrics).expect("accepted");
    }
    assert_eq!(telemetry.instance_count(), instances);
    assert_eq!(telemetry.snapshot().len(), MAX_SERIES, "the last instances keep none");
}

#[test]
fn a_subscription_set_through_the_kafka_api_reaches_clients_and_a_change_reaches_them_at_their_next_push() {
    let telemetry =
        telemetry_of(&[subscription("node", &["org.apache.kafka.consumer."], 60_000, &[("client_id", "c")])]);
    let before = telemetry.subscribe(Uuid::nil(), &client("app"));
    assert!(before.requested_metrics.is_empty(), "nothing matches yet");
    assert_eq!(telemetry.instance_count(), 0, "a client asked for nothing is not kept");

    let producers =
        [set("metrics", "org.apache.kafka.producer."), set("interval.ms", "100"), set("match", "client_id=app")];
    telemetry.alter_subscription("producers", &producers, false).expect("set");
    let asked = telemetry.subscribe(before.client_instance_id, &client("app"));
    assert_eq!(
        (asked.requested_metrics.as_slice(), asked.push_interval_ms),
        (&["org.apache.kafka.producer.".to_owned()][..], 100)
    );
    let payload = encoded(vec![gauge("org.apache.kafka.producer.record.queue.time.avg", vec![point(1.0, &[])])]);
    telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &payload).expect("pushed");
    assert_eq!(telemetry.snapshot().len(), 1);

    // Altered: the client's next push is refused, as Kafka's, so that it asks again.
    telemetry.alter_subscription("producers", &[set("metrics", "*")], false).expect("altered");
    std::thread::sleep(Duration::from_millis(60));
    let refused = telemetry.push(asked.client_instance_id, asked.subscription_id, false, 0, &payload);
    assert_eq!(refused, Err(PushRefusal::UnknownSubscription(asked.subscription_id)));
    let again = telemetry.subscribe(asked.client_instance_id, &client("app"));
    assert_eq!(again.requested_metrics, [""]);
    telemetry.push(again.client_instance_id, again.subscription_id, false, 0, &payload).expect("pushed again");

    // Deleted (every key): asked for nothing again, its series gone with it.
    let deletes: Vec<(String, Option<String>)> =
        ["metrics", "interval.ms", "match"].iter().map(|key| (key.to_string(), None)).collect();
    telemetry.alter_subscription("producers", &deletes, false).expect("deleted");
    std::thread::sleep(Duration::from_millis(60));
    let refused = telemetry.push(again.client_instance_id, again.subscription_id, false, 0, &payload);
    assert_eq!(refused, Err(PushRefusal::UnknownSubscription(again.subscription_id)));
    assert!(telemetry.subscribe(again.client_instance_id, &client("app")).requested_metrics.is_empty());
    assert!(telemetry.snapshot().is_empty() && telemetry.instance_count() == 0);
}

#[test]
fn the_nodes_own_subscriptions_are_listed_first_and_not_altered_through_the_kafka_api() {
    let telemetry = telemetry_of(&[subscription("node", &["*"], 1_000, &[])]);
    let refused = telemetry.alter_subscription("node", &[set("interval.ms", "5000")], false).expect_err("refused");
    assert!(refused.to_string().contains("--client-metrics"), "{refused}");
    let bad = telemetry.alter_subscription("other", &[set("interval.ms", "5")], false).expect_err("refused");
    assert!(bad.to_string().contains("100 to 3600000"), "{bad}");
    telemetry.alter_subscription("other", &[set("metrics", "org.apache.kafka.")], true).expect("validates");
    assert_eq!(telemetry.subscriptions().len(), 1, "validate only sets nothing");
    telemetry.alter_subscription("other", &[set("metrics", "org.apache.kafka.")], false).expect("set");
    let listed: Vec<(String, SubscriptionSource)> =
        telemetry.subscriptions().into_iter().map(|(s, source)| (s.name, source)).collect();
    assert_eq!(
        listed,
        [
            ("node".to_owned(), SubscriptionSource::NodeSettings),
            ("other".to_owned(), SubscriptionSource::ConfigResource)
        ]
    );
    let (keys, source) = telemetry.subscription_keys("node");
    assert_eq!(
        (keys[&subscriptions::SubscriptionKey::IntervalMs].as_str(), source),
        ("1000", SubscriptionSource::NodeSettings)
    );
    assert!(telemetry.subscription_keys("absent").0.is_empty());
}
