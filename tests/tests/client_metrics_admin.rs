//! The `ClientMetricsAdmin` gRPC service (what `rill client-metrics` calls) over the same subscriptions as Kafka's
//! CLIENT_METRICS config resources: what one API sets the other shows, on a single node and on a cluster (the
//! replicated metadata); the node's own subscriptions are listed and refused.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1::client_metrics_admin_client::ClientMetricsAdminClient;
use rill_protocol::v1::{AlterClientMetricsRequest, ClientMetricsSubscription, ListClientMetricsRequest};
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{assert_status, TestBroker};
use tonic::transport::Channel;

const CLIENT_METRICS: i8 = 16;

async fn admin(broker: &TestBroker) -> ClientMetricsAdminClient<Channel> {
    ClientMetricsAdminClient::connect(broker.handle.as_ref().expect("running").url()).await.expect("connect")
}

async fn listed(admin: &mut ClientMetricsAdminClient<Channel>) -> Vec<ClientMetricsSubscription> {
    admin.list_client_metrics(ListClientMetricsRequest {}).await.expect("listed").into_inner().subscriptions
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// Subscription `name`'s keys as Kafka's DescribeConfigs shows them, those set only (not DEFAULT_CONFIG, 5).
async fn described(kafka: &mut KafkaClient, name: &str) -> Vec<(String, String)> {
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(text(name))
        .with_configuration_keys(None);
    let answer: DescribeConfigsResponse =
        kafka.call(ApiKey::DescribeConfigs, 4, &DescribeConfigsRequest::default().with_resources(vec![resource])).await;
    assert_eq!(answer.results[0].error_code, 0, "{:?}", answer.results[0].error_message);
    let set = answer.results[0].configs.iter().filter(|c| c.config_source != 5);
    set.map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()).unwrap_or_default())).collect()
}

#[tokio::test]
async fn what_the_grpc_api_sets_kafka_describes_and_what_kafka_sets_it_lists() {
    let broker = TestBroker::start_with(|config| {
        config.client_metrics = vec![rill_broker::client_telemetry::ClientMetricsSubscription {
            name: "own".into(),
            metrics: vec!["org.apache.kafka.consumer.".into()],
            interval_ms: 60_000,
            matches: Default::default(),
        }];
    })
    .await;
    let mut admin = admin(&broker).await;
    let mut kafka = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;

    let change = AlterClientMetricsRequest {
        name: "producers".into(),
        metrics: Some("org.apache.kafka.producer.".into()),
        interval_ms: Some(1_000),
        r#match: Some("client_id=app-.*".into()),
        ..Default::default()
    };
    let made = admin.alter_client_metrics(change).await.expect("set").into_inner().subscription.expect("made");
    assert_eq!(
        (made.metrics, made.interval_ms, made.node_setting),
        (vec!["org.apache.kafka.producer.".into()], 1_000, false)
    );
    assert_eq!(made.r#match.get("client_id").map(String::as_str), Some("app-.*"));
    let mut seen = described(&mut kafka, "producers").await;
    seen.sort();
    let expected = [("interval.ms", "1000"), ("match", "client_id=app-.*"), ("metrics", "org.apache.kafka.producer.")];
    assert_eq!(seen, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));

    // Kafka's IncrementalAlterConfigs makes one; the gRPC listing has it after the node's own.
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let config =
        AlterableConfig::default().with_name(text("metrics")).with_config_operation(0).with_value(Some(text("*")));
    let resource = AlterConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(text("everything"))
        .with_configs(vec![config]);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let altered: IncrementalAlterConfigsResponse = kafka.call(ApiKey::IncrementalAlterConfigs, 1, &request).await;
    assert_eq!(altered.responses[0].error_code, 0);
    let names: Vec<(String, bool)> = listed(&mut admin).await.into_iter().map(|s| (s.name, s.node_setting)).collect();
    assert_eq!(names, [("own".into(), true), ("everything".into(), false), ("producers".into(), false)]);

    // Removing keys: one, then the rest, and the subscription is gone.
    let unmatch = AlterClientMetricsRequest { name: "producers".into(), remove_match: true, ..Default::default() };
    let left = admin.alter_client_metrics(unmatch).await.expect("removed").into_inner().subscription.expect("kept");
    assert!(left.r#match.is_empty() && left.interval_ms == 1_000);
    let rest = AlterClientMetricsRequest {
        name: "producers".into(),
        remove_metrics: true,
        remove_interval_ms: true,
        ..Default::default()
    };
    assert_eq!(admin.alter_client_metrics(rest).await.expect("removed").into_inner().subscription, None);
    assert_eq!(listed(&mut admin).await.len(), 2);

    // Refusals, each saying what is allowed.
    let own = AlterClientMetricsRequest { name: "own".into(), metrics: Some("*".into()), ..Default::default() };
    assert_status(admin.alter_client_metrics(own).await, tonic::Code::InvalidArgument, &["node's own"]);
    let both = AlterClientMetricsRequest {
        name: "s".into(),
        metrics: Some("*".into()),
        remove_metrics: true,
        ..Default::default()
    };
    assert_status(admin.alter_client_metrics(both).await, tonic::Code::InvalidArgument, &["set or removed, not both"]);
    let nothing = AlterClientMetricsRequest { name: "s".into(), ..Default::default() };
    assert_status(admin.alter_client_metrics(nothing).await, tonic::Code::InvalidArgument, &["nothing to change"]);
    let slow = AlterClientMetricsRequest { name: "s".into(), interval_ms: Some(10), ..Default::default() };
    assert_status(admin.alter_client_metrics(slow).await, tonic::Code::InvalidArgument, &["interval.ms", "100"]);
    let checked = AlterClientMetricsRequest {
        name: "s".into(),
        metrics: Some("*".into()),
        validate_only: true,
        ..Default::default()
    };
    assert_eq!(admin.alter_client_metrics(checked).await.expect("valid").into_inner().subscription, None);
    assert_eq!(listed(&mut admin).await.len(), 2, "validate_only changes nothing");
}

#[tokio::test]
async fn a_cluster_node_keeps_them_in_the_replicated_metadata() {
    let broker = rill_tests::cluster_of_one().await;
    let mut admin = admin(&broker).await;
    let change = AlterClientMetricsRequest { name: "all".into(), metrics: Some("*".into()), ..Default::default() };
    admin.alter_client_metrics(change).await.expect("set through the controller");
    let broker = broker.restart().await;
    let mut admin = self::admin(&broker).await;
    // The quorum forms again after the restart; the metadata it replays holds the subscription.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let names: Vec<String> = listed(&mut admin).await.into_iter().map(|s| s.name).collect();
        if names == ["all"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not kept: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
