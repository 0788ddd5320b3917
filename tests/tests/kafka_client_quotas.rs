//! Client quotas (docs/kafka.md, "Client quotas"): DescribeClientQuotas and AlterClientQuotas spoken raw with the
//! `kafka-protocol` crate over every served version, on a single node (kept across a restart) and on a cluster of
//! one (through the controller); Kafka's refusals of what rill does not hold; and the throttling itself: a Kafka
//! producer or consumer past its byte rate told how long to wait and its connection held that long, a throttled
//! fetch answered empty and the same records served after the wait, and a gRPC producer's answers held back.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, cluster_of_one, produce_request, TestBroker, PASSWORD};

const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const ANY: i8 = 2;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// One entry: `entity` as (type, name or `None` for the default), each op as (key, value or `None` to remove).
fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(kind, name)| EntityData::default().with_entity_type(text(kind)).with_entity_name(name.map(text)))
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(key, value)| match value {
                    Some(value) => OpData::default().with_key(text(key)).with_value(*value),
                    None => OpData::default().with_key(text(key)).with_remove(true),
                })
                .collect(),
        )
}

/// Each entry's (code, message).
async fn alter(
    client: &mut KafkaClient,
    version: i16,
    entries: Vec<EntryData>,
    validate_only: bool,
) -> Vec<(i16, String)> {
    let request = AlterClientQuotasRequest::default().with_entries(entries).with_validate_only(validate_only);
    let response: AlterClientQuotasResponse = client.call(ApiKey::AlterClientQuotas, version, &request).await;
    response
        .entries
        .iter()
        .map(|e| (e.error_code, e.error_message.as_deref().unwrap_or_default().to_string()))
        .collect()
}

/// The entities described, each as "type=name" parts (`<default>` for a default) with its values, sorted.
async fn describe(
    client: &mut KafkaClient,
    version: i16,
    filters: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Vec<(String, Vec<(String, f64)>)>, (i16, String)> {
    let components = filters
        .iter()
        .map(|(kind, match_type, name)| {
            ComponentData::default()
                .with_entity_type(text(kind))
                .with_match_type(*match_type)
                .with_match(name.map(text))
        })
        .collect();
    let request = DescribeClientQuotasRequest::default().with_components(components).with_strict(strict);
    let response: DescribeClientQuotasResponse = client.call(ApiKey::DescribeClientQuotas, version, &request).await;
    if response.error_code != 0 {
        return Err((response.error_code, response.error_message.as_deref().unwrap_or_default().to_string()));
    }
    let mut entries: Vec<(String, Vec<(String, f64)>)> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|c| format!("{}={}", &*c.entity_type, c.entity_name.as_deref().unwrap_or("<default>")))
                .collect::<Vec<_>>()
                .join(",");
            let mut values: Vec<(String, f64)> = e.values.iter().map(|v| (v.key.to_string(), v.value)).collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity, values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn addr(broker: &TestBroker) -> std::net::SocketAddr {
    broker.handle.as_ref().expect("running").addr()
}

/// Sets, describes, removes and refuses quotas on `broker` at every served version.
async fn set_describe_and_remove(broker: &TestBroker) {
    let mut client = KafkaClient::connect(addr(broker)).await;
    for version in 0..=1 {
        let entries = vec![
            entry(&[("user", Some("alice"))], &[("producer_byte_rate", Some(1048576.0))]),
            entry(&[("user", None), ("client-id", Some("app"))], &[("consumer_byte_rate", Some(2048.0))]),
            entry(&[("client-id", None)], &[("producer_byte_rate", Some(512.0)), ("consumer_byte_rate", Some(4096.0))]),
        ];
        assert_eq!(alter(&mut client, version, entries.clone(), true).await, vec![(0, String::new()); 3], "v{version}");
        assert_eq!(describe(&mut client, version, &[], false).await, Ok(vec![]), "validate only sets nothing");
        assert_eq!(alter(&mut client, version, entries, false).await, vec![(0, String::new()); 3], "v{version}");

        let all = describe(&mut client, version, &[], false).await.expect("described");
        let expected = vec![
            (
                "client-id=<default>".to_string(),
                vec![("consumer_byte_rate".into(), 4096.0), ("producer_byte_rate".into(), 512.0)],
            ),
            ("user=<default>,client-id=app".into(), vec![("consumer_byte_rate".into(), 2048.0)]),
            ("user=alice".into(), vec![("producer_byte_rate".into(), 1048576.0)]),
        ];
        assert_eq!(all, expected, "v{version}");
        let alice = describe(&mut client, version, &[("user", EXACT, Some("alice"))], true).await.expect("described");
        assert_eq!(alice, expected[2..].to_vec());
        let user_default = describe(&mut client, version, &[("user", DEFAULT, None)], false).await.expect("described");
        assert_eq!(user_default, expected[1..2].to_vec());
        let strict_users = describe(&mut client, version, &[("user", ANY, None)], true).await.expect("described");
        assert_eq!(strict_users, expected[2..].to_vec(), "strict: no entity with a client-id too");

        // What rill does not hold, each refused with a message saying what is served; the valid entry beside
        // them still applies.
        let refused = alter(
            &mut client,
            version,
            vec![
                entry(&[("user", Some("bob"))], &[("request_percentage", Some(0.5))]),
                entry(&[("ip", Some("db-1"))], &[("connection_creation_rate", Some(10.0))]),
                entry(&[("user", Some("bob"))], &[("producer_byte_rate", Some(1.5))]),
                entry(&[("user", Some("bob")), ("user", Some("carol"))], &[("producer_byte_rate", Some(10.0))]),
                entry(&[("user", Some("alice"))], &[("producer_byte_rate", None)]),
            ],
            false,
        )
        .await;
        let codes: Vec<i16> = refused.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, [INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST, 0], "{refused:?}");
        assert!(refused[0].1.contains("request_percentage must be a whole number from 1 to 1000000"), "{refused:?}");
        assert!(refused[1].1.contains("\"db-1\" is not an IP address"), "{refused:?}");
        assert!(refused[2].1.contains("whole number"), "{refused:?}");
        let bad_filter = describe(&mut client, version, &[("user", 3, None)], false).await;
        assert!(
            matches!(&bad_filter, Err((INVALID_REQUEST, message)) if message.contains("0 (exact)")),
            "{bad_filter:?}"
        );

        let after = describe(&mut client, version, &[], false).await.expect("described");
        assert_eq!(after, expected[..2].to_vec(), "alice's only value removed: the entity goes");
        let clear = vec![
            entry(&[("user", None), ("client-id", Some("app"))], &[("consumer_byte_rate", None)]),
            entry(&[("client-id", None)], &[("producer_byte_rate", None), ("consumer_byte_rate", None)]),
        ];
        assert_eq!(alter(&mut client, version, clear, false).await, vec![(0, String::new()); 2]);
        assert_eq!(describe(&mut client, version, &[], false).await, Ok(vec![]));
    }
}

#[tokio::test]
async fn quotas_are_set_described_and_removed_on_a_single_node_and_kept_across_a_restart() {
    let broker = TestBroker::start().await;
    set_describe_and_remove(&broker).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let set = vec![entry(&[("client-id", Some("app"))], &[("producer_byte_rate", Some(100000.0))])];
    assert_eq!(alter(&mut client, 1, set, false).await, [(0, String::new())]);
    drop(client);
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let kept = describe(&mut client, 1, &[], false).await.expect("described");
    assert_eq!(kept, [("client-id=app".to_string(), vec![("producer_byte_rate".to_string(), 100000.0)])]);
}

#[tokio::test]
async fn quotas_are_set_described_and_removed_through_a_clusters_controller() {
    let broker = cluster_of_one().await;
    set_describe_and_remove(&broker).await;
}

#[tokio::test]
async fn describing_needs_describe_configs_and_altering_alter_configs_on_the_cluster() {
    let broker = TestBroker::start_authorizing(&[], &["admin", "ops"]).await;
    let mut ops = KafkaClient::connect_as(addr(&broker), "ops", PASSWORD).await;
    let denied = describe(&mut ops, 1, &[], false).await;
    assert!(
        matches!(&denied, Err((CLUSTER_AUTHORIZATION_FAILED, message)) if message.contains("User:ops")),
        "{denied:?}"
    );
    let set = vec![entry(&[("user", Some("ops"))], &[("producer_byte_rate", Some(10.0))])];
    let refused = alter(&mut ops, 1, set.clone(), false).await;
    assert_eq!(refused.iter().map(|(code, _)| *code).collect::<Vec<_>>(), [CLUSTER_AUTHORIZATION_FAILED]);
    let mut admin = KafkaClient::connect_as(addr(&broker), "admin", PASSWORD).await;
    assert_eq!(alter(&mut admin, 1, set, false).await, [(0, String::new())], "a super user may");
    assert_eq!(describe(&mut admin, 1, &[], false).await.expect("described").len(), 1);
}

/// A broker with topic `t` whose quota samples are 100 ms: a client's rate is read over 1 s at first, so a
/// client goes 1 s of its quota in a burst before it is throttled, and waits about a second then.
async fn broker_with_short_quota_windows() -> TestBroker {
    let mut broker = TestBroker::start_with(|config| config.quota_window_ms = 100).await;
    broker.create_topic("t", 1).await;
    broker
}

/// A batch of one record of about 60 KB.
fn big_batch() -> bytes::Bytes {
    batch_of(&[&"x".repeat(60_000)], 1)
}

fn produce_of(batch: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(1).with_timeout_ms(5_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(text("t"))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch)),
        ]),
    ])
}

/// The partition's (error code, base offset) and the response's throttle time.
async fn produce(client: &mut KafkaClient) -> (i16, i64, i32) {
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_of(big_batch())).await;
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset, response.throttle_time_ms)
}

#[tokio::test]
async fn a_kafka_producer_past_its_quota_is_told_to_wait_and_its_connection_is_held_that_long() {
    let broker = broker_with_short_quota_windows().await;
    let mut admin = KafkaClient::connect(addr(&broker)).await;
    let set = vec![entry(&[("client-id", Some("slow"))], &[("producer_byte_rate", Some(200_000.0))])];
    assert_eq!(alter(&mut admin, 1, set, false).await, [(0, String::new())]);

    // 200 KB/s over the 1 s the rate is read over at first: about 200 KB go before the first throttle.
    let mut slow = KafkaClient::connect(addr(&broker)).await.with_client_id("slow");
    let (mut sent, mut last_offset) = (0, -1);
    let (asked, throttle_ms) = loop {
        let asked = Instant::now();
        let (code, base_offset, throttle_ms) = produce(&mut slow).await;
        assert_eq!(code, 0, "a throttled produce is still appended");
        assert!(base_offset > last_offset);
        (sent, last_offset) = (sent + 1, base_offset);
        if throttle_ms > 0 {
            break (asked, throttle_ms);
        }
        assert!(sent < 10, "no throttle after {sent} produces of 60 KB");
    };
    assert!(sent >= 3, "throttled after only {sent} produces of 60 KB");
    // About 240 KB sent in the first moments: held until 1.2 s after the first.
    assert!((1..=1_300).contains(&throttle_ms), "{throttle_ms} ms");
    // The connection is not read until the time is up: the next answer comes no sooner (counted from before the
    // throttled request was sent, which the broker answered before it started waiting).
    let (code, _, _) = produce(&mut slow).await;
    assert_eq!(code, 0);
    let held = asked.elapsed();
    assert!(held >= Duration::from_millis(throttle_ms as u64), "held {held:?}, told {throttle_ms} ms");
    // Another client id is not covered by the quota.
    let mut other = KafkaClient::connect(addr(&broker)).await.with_client_id("other");
    for _ in 0..40 {
        assert_eq!(produce(&mut other).await.2, 0, "no quota for client id \"other\"");
    }
}

/// Partition 0 of `t` from `offset`, at most `max_bytes`: the response's throttle time and the offsets of the
/// records it carries.
async fn fetch(client: &mut KafkaClient, offset: i64, max_bytes: i32) -> (i32, Vec<i64>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default().with_topic(TopicName(text("t"))).with_partitions(vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(max_bytes),
        ])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let records = partition.records.as_ref().map(rill_tests::values_of).unwrap_or_default();
    (response.throttle_time_ms, records.into_iter().map(|(offset, _)| offset).collect())
}

#[tokio::test]
async fn a_kafka_consumer_past_its_quota_gets_an_empty_answer_then_the_same_records_after_the_wait() {
    let broker = broker_with_short_quota_windows().await;
    let mut producer = KafkaClient::connect(addr(&broker)).await;
    for _ in 0..50 {
        produce(&mut producer).await;
    }
    let set = vec![entry(&[("client-id", Some("reader"))], &[("consumer_byte_rate", Some(200_000.0))])];
    assert_eq!(alter(&mut producer, 1, set, false).await, [(0, String::new())]);

    let mut reader = KafkaClient::connect(addr(&broker)).await.with_client_id("reader");
    let (mut offset, mut fetched_bytes) = (0, 0);
    let (asked, throttle_ms, records) = loop {
        let asked = Instant::now();
        let (throttle_ms, offsets) = fetch(&mut reader, offset, 100_000).await;
        if throttle_ms > 0 {
            break (asked, throttle_ms, offsets);
        }
        assert!(!offsets.is_empty() && offsets[0] == offset, "fetched from {offset}: {offsets:?}");
        offset = offsets.last().expect("records") + 1;
        fetched_bytes += 60_000 * offsets.len();
        assert!(offset < 10, "no throttle after {fetched_bytes} bytes");
    };
    assert!(fetched_bytes >= 120_000, "throttled after only {fetched_bytes} bytes");
    assert!(records.is_empty(), "a throttled fetch carries no records: {records:?}");
    let (_, after) = fetch(&mut reader, offset, 100_000).await;
    assert!(asked.elapsed() >= Duration::from_millis(throttle_ms as u64), "held {:?}", asked.elapsed());
    assert_eq!(after.first(), Some(&offset), "the records withheld come after the wait");
}

#[tokio::test]
async fn a_batch_past_what_a_consumers_quota_allows_at_once_is_served_and_the_consumer_waits_after_it() {
    let broker = broker_with_short_quota_windows().await;
    let mut producer = KafkaClient::connect(addr(&broker)).await;
    // One batch of 300 KB: more than 1 s at 200 KB/s, the most this quota lets one answer carry.
    let value = "x".repeat(60_000);
    let batch = batch_of(&[value.as_str(); 5], 1);
    let response: ProduceResponse = producer.call(ApiKey::Produce, 9, &produce_of(batch)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let set = vec![entry(&[("client-id", Some("reader"))], &[("consumer_byte_rate", Some(200_000.0))])];
    assert_eq!(alter(&mut producer, 1, set, false).await, [(0, String::new())]);
    let mut reader = KafkaClient::connect(addr(&broker)).await.with_client_id("reader");
    // Withheld, it could never be served: it goes out, with the time to wait after it.
    let asked = Instant::now();
    let (throttle_ms, offsets) = fetch(&mut reader, 0, 1 << 20).await;
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    assert!(throttle_ms > 0, "300 KB at once is past a 200 KB/s quota");
    let (_, after) = fetch(&mut reader, 5, 1 << 20).await;
    assert!(asked.elapsed() >= Duration::from_millis(throttle_ms as u64), "held {:?}", asked.elapsed());
    assert!(after.is_empty(), "nothing past the batch: {after:?}");
}

#[tokio::test]
async fn a_grpc_producer_and_consumer_past_their_quotas_have_their_answers_held_back() {
    let mut broker = broker_with_short_quota_windows().await;
    let mut admin = KafkaClient::connect(addr(&broker)).await;
    // gRPC calls without a bearer token are user ANONYMOUS; this one names no client id.
    let set = vec![entry(&[("user", Some("ANONYMOUS"))], &[("producer_byte_rate", Some(200_000.0))])];
    assert_eq!(alter(&mut admin, 1, set, false).await, [(0, String::new())]);
    let started = Instant::now();
    // 600 KB at 200 KB/s, 200 KB of it in the first burst: the answers are held about 2 s in all.
    for _ in 0..10 {
        let request = produce_request("t", Some(0), big_batch(), v1::Acks::Leader);
        broker.records.produce(request).await.expect("a throttled produce is answered");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_500), "10 produces of 60 KB took {took:?} under a 200 KB/s quota");
    // The same through the client id header, for a client id quota.
    let set = vec![
        entry(&[("user", Some("ANONYMOUS"))], &[("producer_byte_rate", None)]),
        entry(&[("client-id", Some("grpc-app"))], &[("consumer_byte_rate", Some(200_000.0))]),
    ];
    assert_eq!(alter(&mut admin, 1, set, false).await, vec![(0, String::new()); 2]);
    let started = Instant::now();
    let mut offset = 0;
    while offset < 10 {
        let mut request = tonic::Request::new(rill_tests::fetch_request("t", 0, offset, 0, 0));
        request.metadata_mut().insert("rill-client-id", "grpc-app".parse().expect("ASCII"));
        let response = broker.records.fetch(request).await.expect("fetch").into_inner();
        offset = response.next_offset;
    }
    // 600 KB read at 200 KB/s, as the produces above.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_500), "600 KB fetched in {took:?} under a 200 KB/s quota");
}

/// KIP-612: an `ip` entity's `connection_creation_rate`, set and described through the Kafka API, closes the
/// connections an address opens past its rate as they are accepted (gRPC's and Kafka's, on the one port), counted
/// on /metrics; an address of its own quota is held to it over the default's, and a removed quota frees it.
#[tokio::test]
async fn an_addresss_connections_past_its_connection_rate_are_closed_as_accepted() {
    let broker = TestBroker::start().await;
    let handle = broker.handle.as_ref().expect("running");
    let addr = handle.addr();
    let mut admin = KafkaClient::connect(addr).await;
    let set = vec![
        entry(&[("ip", Some("127.0.0.1"))], &[("connection_creation_rate", Some(2.0))]),
        entry(&[("ip", None)], &[("connection_creation_rate", Some(1000.0))]),
    ];
    assert_eq!(alter(&mut admin, 1, set, false).await, vec![(0, String::new()); 2]);
    let ips = describe(&mut admin, 1, &[("ip", ANY, None)], true).await.expect("described");
    assert_eq!(
        ips,
        [
            ("ip=127.0.0.1".to_owned(), vec![("connection_creation_rate".to_owned(), 2.0)]),
            ("ip=<default>".to_owned(), vec![("connection_creation_rate".to_owned(), 1000.0)]),
        ]
    );
    // A second's worth (2) at once, then closed before a byte is read.
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut client = KafkaClient::connect(addr).await;
        let answer: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
        assert_eq!(answer.error_code, 0);
        kept.push(client);
    }
    let mut refused = KafkaClient::connect(addr).await;
    assert!(refused.is_closed_by_broker().await, "past the rate: closed at once");
    let metrics = handle.admin_addr().expect("the test config turns the listener on");
    let (_, text) = rill_tests::admin_http::get(metrics, "/metrics", "text/plain").await;
    let limited = text
        .lines()
        .find_map(|line| line.strip_prefix("rill_connections_rate_limited_total "))
        .and_then(|value| value.parse::<f64>().ok());
    assert!(limited.is_some_and(|n| n >= 1.0), "{limited:?}");
    // Removed: the default's rate applies, and the address connects again.
    let remove = vec![entry(&[("ip", Some("127.0.0.1"))], &[("connection_creation_rate", None)])];
    assert_eq!(alter(&mut kept[0], 1, remove, false).await, vec![(0, String::new())]);
    let mut again = KafkaClient::connect(addr).await;
    let answer: ApiVersionsResponse = again.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(answer.error_code, 0);
}

fn creatable(name: &str, partitions: i32) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default()
        .with_name(TopicName(text(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
}

/// KIP-599: a client past its `controller_mutation_rate` has the topics it creates, grows or deletes refused with
/// THROTTLING_QUOTA_EXCEEDED from the strict versions on (the first topic within the rate still goes, however
/// large), and served at older versions; every answer says how long to wait, `validate_only` counts nothing.
#[tokio::test]
async fn topics_created_grown_or_deleted_past_a_controller_mutation_rate_are_refused_in_strict_versions() {
    let broker = broker_with_short_quota_windows().await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect(addr).await;
    let quota = vec![entry(&[("client-id", Some("provisioner"))], &[("controller_mutation_rate", Some(2.0))])];
    assert_eq!(alter(&mut admin, 1, quota, false).await, vec![(0, String::new())]);
    let mut client = KafkaClient::connect(addr).await.with_client_id("provisioner");
    let create = |topics| CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(10_000);
    let checked = create(vec![creatable("checked", 50)]).with_validate_only(true);
    let answer: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &checked).await;
    assert_eq!((answer.topics[0].error_code, answer.throttle_time_ms), (0, 0), "validate_only counts nothing");

    let answer: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &create(vec![creatable("first", 10), creatable("second", 1)])).await;
    let codes: Vec<i16> = answer.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 89], "{:?}", answer.topics[1].error_message);
    let message = answer.topics[1].error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("controller_mutation_rate quota of 2 partitions a second"), "{message}");
    assert!(answer.throttle_time_ms > 1_000, "10 partitions at 2 a second: {} ms", answer.throttle_time_ms);

    let grow = CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default().with_name(TopicName(text("first"))).with_count(12),
    ]);
    let answer: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, 3, &grow).await;
    assert_eq!(answer.results[0].error_code, 89);
    let delete =
        DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![TopicName(text("first"))]);
    let answer: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 4, &delete).await;
    assert_eq!(answer.responses[0].error_code, 0, "DeleteTopics v4 is permissive: served");
    assert!(answer.throttle_time_ms > 0);
    // Older versions are served, and told to wait.
    let answer: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &create(vec![creatable("late", 1)])).await;
    assert_eq!(answer.topics[0].error_code, 0);
    assert!(answer.throttle_time_ms > 0);
    // Another client id is not held by it.
    let mut other = KafkaClient::connect(addr).await.with_client_id("other");
    let answer: CreateTopicsResponse = other.call(ApiKey::CreateTopics, 7, &create(vec![creatable("other", 20)])).await;
    assert_eq!((answer.topics[0].error_code, answer.throttle_time_ms), (0, 0));
}

/// The value of `family{quota="request_percentage"}` on the broker's /metrics.
async fn request_percentage_metric(broker: &TestBroker, family: &str) -> f64 {
    let metrics = broker.handle.as_ref().expect("running").admin_addr().expect("the test config turns it on");
    let (_, text) = rill_tests::admin_http::get(metrics, "/metrics", "text/plain").await;
    let series = format!("{family}{{quota=\"request_percentage\"}} ");
    text.lines().find_map(|line| line.strip_prefix(series.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// KIP-124: a client id held to a `request_percentage` whose requests take more of the broker's time than that
/// is told to wait in its answers' `throttle_time_ms`, at most one quota window, and its connection is held that
/// long; another client id is not; /metrics counts it.
#[tokio::test]
async fn a_kafka_client_past_its_request_percentage_is_told_to_wait_at_most_a_window() {
    // Samples of 100 ms: the share is read over 1 s at first, and a wait is at most 100 ms.
    let broker = broker_with_short_quota_windows().await;
    let mut admin = KafkaClient::connect(addr(&broker)).await;
    let set = vec![entry(&[("client-id", Some("busy"))], &[("request_percentage", Some(1.0))])];
    assert_eq!(alter(&mut admin, 1, set, false).await, [(0, String::new())]);
    let described = describe(&mut admin, 1, &[("client-id", EXACT, Some("busy"))], true).await.expect("described");
    assert_eq!(described, [("client-id=busy".to_owned(), vec![("request_percentage".to_owned(), 1.0)])]);

    // 1% of a thread is 10 ms a second: the first second's 10 ms of handling go before the first wait.
    let metadata = MetadataRequest::default().with_topics(None);
    let mut busy = KafkaClient::connect(addr(&broker)).await.with_client_id("busy");
    let (mut sent, started) = (0, Instant::now());
    let (asked, throttle_ms) = loop {
        let asked = Instant::now();
        let answer: MetadataResponse = busy.call(ApiKey::Metadata, 12, &metadata).await;
        assert_eq!(answer.topics.len(), 1, "a throttled request is still answered");
        sent += 1;
        if answer.throttle_time_ms > 0 {
            break (asked, answer.throttle_time_ms);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no throttle after {sent} metadata requests");
    };
    assert!(throttle_ms <= 100, "at most one window: {throttle_ms} ms");
    let answer: MetadataResponse = busy.call(ApiKey::Metadata, 12, &metadata).await;
    assert_eq!(answer.topics.len(), 1);
    let held = asked.elapsed();
    assert!(held >= Duration::from_millis(throttle_ms as u64), "held {held:?}, told {throttle_ms} ms");
    assert!(request_percentage_metric(&broker, "rill_client_throttles_total").await >= 1.0);
    // Another client id is not covered by the quota.
    let mut other = KafkaClient::connect(addr(&broker)).await.with_client_id("other");
    for _ in 0..sent.min(2_000) {
        let answer: MetadataResponse = other.call(ApiKey::Metadata, 12, &metadata).await;
        assert_eq!(answer.throttle_time_ms, 0, "no quota for client id \"other\"");
    }
}

/// The same for gRPC calls, named by their `rill-client-id` header: the answer of a call past the quota is held
/// back (gRPC has no throttle field), at most one window.
#[tokio::test]
async fn a_grpc_client_past_its_request_percentage_has_its_answers_held_back() {
    let mut broker = broker_with_short_quota_windows().await;
    let mut admin = KafkaClient::connect(addr(&broker)).await;
    let set = vec![entry(&[("client-id", Some("grpc-busy"))], &[("request_percentage", Some(1.0))])];
    assert_eq!(alter(&mut admin, 1, set, false).await, [(0, String::new())]);
    let started = Instant::now();
    loop {
        let mut request = tonic::Request::new(rill_tests::fetch_request("t", 0, 0, 0, 0));
        request.metadata_mut().insert("rill-client-id", "grpc-busy".parse().expect("ASCII"));
        let asked = Instant::now();
        broker.records.fetch(request).await.expect("a throttled fetch is answered");
        // A held answer: counted on /metrics by the time it comes (a slow one of a loaded host is not).
        if asked.elapsed() >= Duration::from_millis(50)
            && request_percentage_metric(&broker, "rill_client_throttles_total").await >= 1.0
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no fetch held back in a minute");
    }
    let held = request_percentage_metric(&broker, "rill_client_throttle_seconds_total").await;
    let count = request_percentage_metric(&broker, "rill_client_throttles_total").await;
    assert!(held > 0.0 && held <= 0.1 * count + 1e-6, "{held} s over {count} waits");
}
