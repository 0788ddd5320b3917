//! Kafka clients administering a cluster of three real `rill broker` processes: librdkafka's AdminClient (the
//! rdkafka crate) creates a replicated topic, which every node's `rill topic describe` shows with 3 replicas per
//! partition in sync, and which takes acks-all produces and gives every record back; CreatePartitions and
//! DeleteTopics sent to a node that is not the controller leader are forwarded and applied on every node (an
//! empty CreatePartitions assignment list is refused as INVALID_REPLICA_ASSIGNMENT, not taken for null); a
//! replication factor above the alive nodes is INVALID_REPLICATION_FACTOR naming the count; validate-only creates
//! nothing; AlterConfigs through librdkafka changes the live topic on every node. And a consumer group commits
//! offsets for single-replica topics that live on other nodes than its coordinator (placed by a manual
//! assignment), which `rill group describe` shows. A produce sent the moment CreateTopics answers finds its
//! partitions led: the leader waits the few milliseconds it takes to start a leadership the metadata gives it.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::{self, Cluster, PartitionRow};
use common::{rill, DEADLINE};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use rill_tests::kafka_client::KafkaClient;

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\noffsets_topic_partitions = 3\n";
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const RECORDS: i32 = 600;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("an admin client from a valid config")
}

fn options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(DEADLINE)).operation_timeout(Some(Duration::from_secs(10)))
}

/// Blocks until `rill cluster describe` shows all three nodes alive: a replication factor of 3 needs them.
fn wait_for_three_alive(cluster: &Cluster) {
    common::eventually("every node alive", || {
        let described = rill(&cluster.all(), &["cluster", "describe"]);
        let alive = described.stdout.lines().filter(|line| line.split_whitespace().nth(2) == Some("alive")).count();
        (alive == 3).then_some(())
    });
}

/// Creates `topic` through librdkafka, again while the cluster is still settling (a controller election, a node
/// not yet heartbeating); a create that landed before its answer was lost shows as TOPIC_ALREADY_EXISTS.
async fn create_with_rdkafka(admin: &AdminClient<DefaultClientContext>, topic: NewTopic<'_>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let results = admin.create_topics([&topic], &options()).await.expect("an answer to CreateTopics");
        match &results[0] {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return,
            Err((name, code)) => {
                assert!(Instant::now() < deadline, "{name} not created within {DEADLINE:?}: {code:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The Kafka side spoken raw (the tests crate's client), to send a request to one chosen node and read the
/// error message librdkafka does not expose.
async fn call<Req, Resp>(addr: &str, api: ApiKey, version: i16, request: &Req) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    let addr: SocketAddr = addr.parse().expect("node address");
    KafkaClient::connect(addr).await.call(api, version, request).await
}

/// A node that is not the controller leader (Metadata's controller id, asked of node 1).
async fn a_follower(cluster: &Cluster) -> u64 {
    let metadata: MetadataResponse =
        call(cluster.addr(1), ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(Vec::new()))).await;
    let controller = u64::try_from(metadata.controller_id.0).expect("a controller");
    (1..=3).find(|id| *id != controller).expect("another node")
}

#[track_caller]
fn wait_on_every_node(cluster: &Cluster, topic: &str, partitions: usize, what: &str) -> Vec<PartitionRow> {
    let mut rows = Vec::new();
    for node in 1..=3 {
        rows = cluster::wait_for_topic(cluster.addr(node), topic, partitions, what, |rows| {
            rows.iter().all(|r| r.replicas.len() == 3 && r.isr.len() == 3 && r.leader.is_some())
        });
    }
    rows
}

/// The value of setting `name` (a row of `rill topic describe`'s settings table) as node `addr` shows it.
fn described_setting(addr: &str, topic: &str, name: &str) -> Option<String> {
    let output = rill(addr, &["topic", "describe", topic]);
    let line = output.stdout.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    line.split_whitespace().nth(1).map(str::to_owned)
}

fn topics_listed(addr: &str) -> BTreeSet<String> {
    let listed = rill(addr, &["topic", "list"]);
    listed.ok().lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

async fn produce_acks_all(bootstrap: &str, topic: &str, partitions: std::ops::Range<i32>, per_partition: i32) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("a producer from a valid configuration");
    let mut deliveries = Vec::new();
    for i in 0..per_partition {
        for partition in partitions.clone() {
            let value = format!("{partition}:{i}");
            let record = FutureRecord::<(), str>::to(topic).partition(partition).payload(&value);
            deliveries.push(producer.send_result(record).expect("queued"));
        }
    }
    for delivery in deliveries {
        delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered with acks all");
    }
}

/// Every record of `topic`'s `partitions`, read from the beginning by a consumer outside any group.
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-topics-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer from a valid configuration");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("a valid offset");
    }
    consumer.assign(&assignment).expect("assign");
    let mut read = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while read.len() < expected {
        assert!(Instant::now() < deadline, "read {} of {expected} records within {DEADLINE:?}", read.len());
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("a record, not an error");
            let value = std::str::from_utf8(message.payload().expect("a value")).expect("utf-8").to_owned();
            assert!(read.insert(value.clone()), "{value} read twice");
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_clients_create_grow_alter_and_delete_replicated_topics_through_any_node() {
    let cluster = tokio::task::block_in_place(|| {
        let cluster = Cluster::start(FAST_CLUSTER);
        wait_for_three_alive(&cluster);
        cluster
    });

    // librdkafka, bootstrapped at node 2, sends the create to Metadata's controller.
    let admin = admin(cluster.addr(2));
    let orders = NewTopic::new("orders", 6, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    create_with_rdkafka(&admin, orders).await;
    tokio::task::block_in_place(|| {
        let rows = wait_on_every_node(&cluster, "orders", 6, "orders on 3 in-sync replicas per partition");
        let leaders: BTreeSet<u64> = rows.iter().filter_map(|r| r.leader).collect();
        assert_eq!(leaders.len(), 3, "leaderships spread over the nodes: {rows:?}");
        assert_eq!(described_setting(cluster.addr(3), "orders", "min_insync_replicas").as_deref(), Some("2"));
    });
    produce_acks_all(&cluster.all(), "orders", 0..6, RECORDS / 6).await;
    let read = tokio::task::block_in_place(|| consume_all(&cluster.all(), "orders", 6, RECORDS as usize));
    let expected: BTreeSet<String> = (0..RECORDS / 6).flat_map(|i| (0..6).map(move |p| format!("{p}:{i}"))).collect();
    assert_eq!(read, expected, "every acks-all record read back once");

    // CreatePartitions to a node that is not the controller leader: forwarded, placed with the topic's
    // replication factor, opened on every replica; the new partitions take acks-all produces.
    let follower = a_follower(&cluster).await;
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        // Null assignments, as Kafka's clients send for automatic placement: kafka-protocol's default is an
        // empty list, which asks for a manual assignment of no partitions.
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(text("orders")))
            .with_count(8)
            .with_assignments(None)]);
    let grown: CreatePartitionsResponse = call(cluster.addr(follower), ApiKey::CreatePartitions, 2, &grow).await;
    assert_eq!(grown.results[0].error_code, 0, "{grown:?}");
    tokio::task::block_in_place(|| wait_on_every_node(&cluster, "orders", 8, "orders grown to 8 partitions"));
    produce_acks_all(&cluster.all(), "orders", 6..8, 10).await;
    // An empty assignment list is a manual assignment of no partitions, not a null one: refused, as Kafka does.
    let empty =
        CreatePartitionsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(text("orders")))
            .with_count(9)
            .with_assignments(Some(vec![]))]);
    let refused: CreatePartitionsResponse = call(cluster.addr(follower), ApiKey::CreatePartitions, 2, &empty).await;
    let refusal = refused.results[0].error_message.as_deref().unwrap_or_default().to_owned();
    assert_eq!(refused.results[0].error_code, INVALID_REPLICA_ASSIGNMENT, "{refused:?}");
    assert!(refusal.contains("lists 0 partition(s)") && refusal.contains("adds 1"), "{refusal}");
    // Nothing was added: growing to 8 is still no increase.
    let again: CreatePartitionsResponse = call(cluster.addr(follower), ApiKey::CreatePartitions, 2, &grow).await;
    let refusal = again.results[0].error_message.as_deref().unwrap_or_default().to_owned();
    assert_eq!(again.results[0].error_code, 37, "INVALID_PARTITIONS: {again:?}");
    assert!(refusal.contains("already has 8 partitions"), "{refusal}");

    // A replication factor above the alive nodes: librdkafka gets the code, the message names the count.
    let wide = NewTopic::new("wide", 1, TopicReplication::Fixed(4));
    let results = admin.create_topics([&wide], &options()).await.expect("an answer to CreateTopics");
    assert_eq!(results[0], Err(("wide".to_owned(), RDKafkaErrorCode::InvalidReplicationFactor)));
    let create = |name: &str, replication_factor: i16, validate_only: bool| {
        CreateTopicsRequest::default().with_timeout_ms(10_000).with_validate_only(validate_only).with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(text(name)))
                .with_num_partitions(2)
                .with_replication_factor(replication_factor),
        ])
    };
    let refused: CreateTopicsResponse =
        call(cluster.addr(follower), ApiKey::CreateTopics, 5, &create("wide", 4, false)).await;
    let message = refused.topics[0].error_message.as_deref().unwrap_or_default().to_owned();
    assert_eq!(refused.topics[0].error_code, INVALID_REPLICATION_FACTOR, "{refused:?}");
    assert!(message.contains("4 is more than the 3 alive node(s)"), "{message}");
    // Validate-only answers what the create would make, and makes nothing.
    let checked: CreateTopicsResponse =
        call(cluster.addr(follower), ApiKey::CreateTopics, 5, &create("dry", 3, true)).await;
    let dry = &checked.topics[0];
    assert_eq!((dry.error_code, dry.num_partitions, dry.replication_factor), (0, 2, 3), "{checked:?}");

    // AlterConfigs through librdkafka: applied on every node, and enforced by whichever leads partition 0.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("orders"))
        .set("max.message.bytes", "200")
        .set("retention.ms", "3600000");
    let altered = admin.alter_configs([&alter], &options()).await.expect("an answer to AlterConfigs");
    assert!(altered[0].is_ok(), "{altered:?}");
    tokio::task::block_in_place(|| {
        for node in 1..=3 {
            common::eventually("the altered settings shown by every node", || {
                let addr = cluster.addr(node);
                let batch = described_setting(addr, "orders", "max_batch_bytes");
                let retention = described_setting(addr, "orders", "retention_ms");
                (batch.as_deref() == Some("200") && retention.as_deref() == Some("3600000")).then_some(())
            });
        }
        let big = "x".repeat(300);
        let args = ["produce", "orders", "--partition", "0", "--acks", "all", "--value", &big];
        rill(&cluster.all(), &args).fails(1, "200");
        assert!(!topics_listed(cluster.addr(1)).contains("dry"), "validate-only created nothing");
    });

    // Kafka's DescribeConfigs on every node: the metadata's settings, the altered one set on the topic.
    for node in 1..=3 {
        let configs = describe_configs(cluster.addr(node), "orders").await;
        assert_eq!(configs.error_code, 0, "{configs:?}");
        let value = |key: &str| {
            let entry = configs.configs.iter().find(|c| c.name.as_str() == key).expect("described");
            (entry.value.as_deref().unwrap_or_default().to_owned(), entry.config_source)
        };
        assert_eq!(value("max.message.bytes"), ("200".to_owned(), 1), "node {node}");
        assert_eq!(value("min.insync.replicas").0, "2", "node {node}");
    }

    // DeleteTopics to a node that is not the controller leader: gone from every node.
    let delete =
        DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![TopicName(text("orders"))]);
    let deleted: DeleteTopicsResponse = call(cluster.addr(follower), ApiKey::DeleteTopics, 4, &delete).await;
    assert_eq!(deleted.responses[0].error_code, 0, "{deleted:?}");
    tokio::task::block_in_place(|| {
        for node in 1..=3 {
            common::eventually("orders gone from every node's topic list", || {
                (!topics_listed(cluster.addr(node)).contains("orders")).then_some(())
            });
        }
    });
    let gone: DeleteTopicsResponse = call(cluster.addr(1), ApiKey::DeleteTopics, 4, &delete).await;
    assert_eq!(gone.responses[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION: {gone:?}");
    for node in 1..=3 {
        let configs = describe_configs(cluster.addr(node), "orders").await;
        assert_eq!(configs.error_code, 3, "node {node} describes a deleted topic: {configs:?}");
    }
}

async fn describe_configs(
    addr: &str,
    topic: &str,
) -> kafka_protocol::messages::describe_configs_response::DescribeConfigsResult {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text(topic))
        .with_configuration_keys(None)]);
    let mut answer: DescribeConfigsResponse = call(addr, ApiKey::DescribeConfigs, 1, &request).await;
    answer.results.remove(0)
}

/// The committed offset, end offset and lag of `topic`/0 in `rill group describe group` (the CLI asks the
/// group's coordinator, and each partition's leader for its end).
fn group_row(cluster: &Cluster, group: &str, topic: &str) -> Option<(i64, i64, i64)> {
    let output = rill(&cluster.all(), &["group", "describe", group]);
    output.stdout.lines().find_map(|line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() < 5 || cells[0] != topic || cells[1] != "0" {
            return None;
        }
        Some((cells[2].parse().ok()?, cells[3].parse().ok()?, cells[4].parse().ok()?))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_offsets_for_partitions_its_coordinator_holds_no_replica_of() {
    let cluster = tokio::task::block_in_place(|| {
        let cluster = Cluster::start(FAST_CLUSTER);
        wait_for_three_alive(&cluster);
        cluster
    });
    // One single-replica topic on each node (a manual assignment): whichever node coordinates the group, at
    // least two of them live elsewhere.
    let admin = admin(&cluster.all());
    let placements: [&[i32]; 3] = [&[1], &[2], &[3]];
    for (index, replicas) in placements.iter().enumerate() {
        let name = format!("solo-{}", index + 1);
        let assignment = [*replicas];
        create_with_rdkafka(&admin, NewTopic::new(&name, 1, TopicReplication::Variable(&assignment))).await;
    }
    for node in 1..=3u64 {
        let name = format!("solo-{node}");
        let rows = tokio::task::block_in_place(|| {
            cluster::wait_for_topic(cluster.addr(1), &name, 1, "a single replica where assigned", |rows| {
                rows[0].leader == Some(node)
            })
        });
        assert_eq!(rows[0].replicas, [node], "{name}: {rows:?}");
        produce_acks_all(&cluster.all(), &name, 0..1, 10).await;
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.all())
        .set("group.id", "auditors")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer from a valid configuration");
    let mut offsets = TopicPartitionList::new();
    for node in 1..=3 {
        offsets.add_partition_offset(&format!("solo-{node}"), 0, Offset::Offset(6 + node)).expect("a valid offset");
    }
    tokio::task::block_in_place(|| {
        consumer.commit(&offsets, CommitMode::Sync).expect("every partition committed");
        let read_back = consumer.committed_offsets(offsets.clone(), DEADLINE).expect("committed offsets");
        for node in 1..=3 {
            let found = read_back.find_partition(&format!("solo-{node}"), 0).expect("listed").offset();
            assert_eq!(found, Offset::Offset(6 + node), "solo-{node}");
        }
        // The end and lag of every partition, the two the coordinator holds no replica of included.
        for node in 1..=3 {
            let shown = group_row(&cluster, "auditors", &format!("solo-{node}"));
            assert_eq!(shown, Some((6 + node, 10, 10 - (6 + node))), "rill group describe, solo-{node}");
        }
        // And the group's page in every node's console: end offset and lag in each topic's row.
        for console in 1..=3 {
            let (status, _, page) =
                common::console::admin_http(cluster.admin(console), "GET", "/groups/auditors", "", "");
            assert_eq!(status, 200, "{page}");
            for node in 1..=3 {
                let row =
                    page.split(&format!("/topics/solo-{node}\"")).nth(1).and_then(|rest| rest.split("</tr>").next());
                let cells = format!("<td class=\"num\">10</td><td class=\"num\">{}</td>", 10 - (6 + node));
                assert!(
                    row.is_some_and(|row| row.contains(&cells)),
                    "solo-{node} on node {console}'s console: {row:?}"
                );
            }
        }
    });
}

/// Between the metadata naming a node leader and that node starting the leadership (opening the log at the new
/// epoch) a produce used to get NOT_LEADER_OR_FOLLOWER: Sarama 1.22 retries that at once and gave up on the
/// records of a topic created a moment before. Every partition here is led by the node that answered the create,
/// which knows the topic when it answers, and is produced to at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_right_after_create_topics_waits_for_the_new_leadership() {
    let cluster = tokio::task::block_in_place(|| {
        let cluster = Cluster::start(FAST_CLUSTER);
        wait_for_three_alive(&cluster);
        cluster
    });
    let node = a_follower(&cluster).await;
    let addr: SocketAddr = cluster.addr(node).parse().expect("node address");
    let mut client = KafkaClient::connect(addr).await;
    for round in 0..5 {
        let name = format!("fresh-{round}");
        let led_here = || {
            CreatableReplicaAssignment::default().with_broker_ids(vec![BrokerId(i32::try_from(node).expect("an id"))])
        };
        let create =
            CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(text(&name)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments((0..4).map(|index| led_here().with_partition_index(index)).collect())]);
        let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &create).await;
        assert_eq!(created.topics[0].error_code, 0, "{created:?}");
        let batch = rill_tests::batch_of(&["first"], 1_000);
        let produce = ProduceRequest::default().with_acks(1).with_timeout_ms(5_000).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(TopicName(text(&name))).with_partition_data(
                (0..4)
                    .map(|index| {
                        produce_request::PartitionProduceData::default()
                            .with_index(index)
                            .with_records(Some(batch.clone()))
                    })
                    .collect(),
            ),
        ]);
        let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &produce).await;
        for answer in &produced.responses[0].partition_responses {
            assert_eq!((answer.error_code, answer.base_offset), (0, 0), "{name}: {produced:?}");
        }
    }
}
