//! Kafka's ElectLeaders and partition reassignment APIs on three real `rill broker` processes, spoken raw on
//! the Kafka port (the tests crate's client): a preferred leader SIGKILLed and restarted gets its leadership
//! back through ElectLeaders sent to Metadata's controller (another node answers NOT_CONTROLLER naming it), a
//! second election is not needed; AlterPartitionReassignments moves a partition holding acks-all records onto
//! another node, ListPartitionReassignments shows it moving (or nothing, once done) with the replicas being
//! added and removed, and after an election the new preferred replica leads and serves every record once. And a
//! node just restarted answers Metadata for a topic it does not know yet with LEADER_NOT_AVAILABLE (retriable),
//! never UNKNOWN_TOPIC_OR_PARTITION, until it has caught up with the cluster's metadata.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::{self, Cluster, PartitionRow};
use common::{config_rows, rill, rill_with_stdin, DEADLINE};
use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
const NOT_CONTROLLER: i16 = 41;
const ELECTION_NOT_NEEDED: i16 = 84;
const RECORDS: usize = 200;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// The Kafka side of the test: a runtime for the async client.
struct Kafka {
    runtime: tokio::runtime::Runtime,
}

impl Kafka {
    fn new() -> Kafka {
        Kafka { runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime") }
    }

    fn connect(&self, addr: &str) -> KafkaClient {
        let addr: SocketAddr = addr.parse().expect("node address");
        self.runtime.block_on(KafkaClient::connect(addr))
    }

    fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &self,
        client: &mut KafkaClient,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.runtime.block_on(client.call(api, version, request))
    }

    /// The node Metadata names controller, asked of `addr`.
    fn controller(&self, addr: &str) -> Option<u64> {
        let mut client = self.connect(addr);
        let metadata: MetadataResponse =
            self.call(&mut client, ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(Vec::new())));
        u64::try_from(metadata.controller_id.0).ok().filter(|id| *id >= 1)
    }

    /// `call` on Metadata's controller (asked of any node), again while the answer is NOT_CONTROLLER (a
    /// controller change in between).
    fn on_controller<Resp: kafka_protocol::protocol::Decodable>(
        &self,
        cluster: &Cluster,
        call: impl Fn(&Kafka, &mut KafkaClient) -> Resp,
        top_level_code: impl Fn(&Resp) -> i16,
    ) -> Resp {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(controller) = self.controller(cluster.any_running()) {
                let mut client = self.connect(cluster.addr(controller));
                let answer = call(self, &mut client);
                if top_level_code(&answer) != NOT_CONTROLLER {
                    return answer;
                }
            }
            assert!(Instant::now() < deadline, "no controller answered within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn elect_request(topic: &str, partitions: &[i32]) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(TopicName(text(topic)))
            .with_partitions(partitions.to_vec())]))
        .with_timeout_ms(10_000)
}

/// (partition, code) of each result, sorted.
fn election_codes(response: &ElectLeadersResponse) -> Vec<(i32, i16)> {
    let mut codes: Vec<(i32, i16)> = response
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| (p.partition_id, p.error_code)))
        .collect();
    codes.sort();
    codes
}

fn elect(kafka: &Kafka, cluster: &Cluster, topic: &str, partitions: &[i32]) -> ElectLeadersResponse {
    let request = elect_request(topic, partitions);
    kafka.on_controller(
        cluster,
        |kafka, client| kafka.call(client, ApiKey::ElectLeaders, 2, &request),
        |r: &ElectLeadersResponse| r.error_code,
    )
}

#[track_caller]
fn wait_for(
    cluster: &Cluster,
    topic: &str,
    partitions: usize,
    what: &str,
    done: impl Fn(&[PartitionRow]) -> bool,
) -> Vec<PartitionRow> {
    cluster::wait_for_topic(cluster.any_running(), topic, partitions, what, done)
}

fn create(cluster: &Cluster, topic: &str, partitions: &str, replication_factor: &str) {
    let create = ["topic", "create", topic, "--partitions", partitions, "--replication-factor", replication_factor];
    let deadline = Instant::now() + DEADLINE;
    // The cluster forms first: a create before a controller leader is elected is refused, and retried.
    while !rill(&cluster.all(), &create).status.success() {
        assert!(Instant::now() < deadline, "{topic} not created within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kafka_elect_leaders_and_reassignments_move_leaderships_and_replicas_on_a_cluster() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let kafka = Kafka::new();
    create(&cluster, "orders", "3", "3");
    create(&cluster, "moves", "1", "2");
    let rows = wait_for(&cluster, "orders", 3, "orders in sync, led by the preferred replicas", |rows| {
        rows.iter().all(|r| r.isr.len() == 3 && r.leader == r.replicas.first().copied())
    });
    let input: String = (0..RECORDS).map(|i| format!("m-{i}\n")).collect();
    rill_with_stdin(&cluster.all(), &["produce", "moves", "--acks", "all"], input.as_bytes()).ok();

    // A failover takes partition 0 of orders away from its preferred leader, which comes back in sync.
    let preferred = rows[0].replicas[0];
    cluster.nodes[preferred as usize - 1].take().expect("the preferred leader running").kill();
    wait_for(&cluster, "orders", 3, "a failover of partition 0", |rows| rows[0].leader.is_some_and(|l| l != preferred));
    cluster.nodes[preferred as usize - 1] = Some(cluster.start_node(preferred));
    let rows = wait_for(&cluster, "orders", 3, "the restarted node back in sync", |rows| {
        rows.iter().all(|r| r.isr.len() == 3)
    });
    let deposed = rows[0].leader.expect("a leader");
    assert_ne!(deposed, preferred, "with the automatic rebalance off the leadership stays where it moved");

    // Another node than the controller says which one is.
    let controller = kafka.controller(cluster.any_running()).expect("a controller");
    let other = (1..=3).find(|id| *id != controller).expect("another node");
    let mut client = kafka.connect(cluster.addr(other));
    let refused: ElectLeadersResponse =
        kafka.call(&mut client, ApiKey::ElectLeaders, 2, &elect_request("orders", &[0]));
    if refused.error_code == NOT_CONTROLLER {
        let message =
            refused.replica_election_results[0].partition_result[0].error_message.as_deref().unwrap_or_default();
        assert!(
            message.contains("is not the controller leader") && message.contains("Metadata's controller id"),
            "{message}"
        );
    } else {
        // The controller moved between the two calls: then `other` leads it now and elected.
        assert_eq!(refused.error_code, 0, "{refused:?}");
    }

    let elected = elect(&kafka, &cluster, "orders", &[0, 1, 2]);
    assert_eq!(elected.error_code, 0, "{elected:?}");
    let codes = election_codes(&elected);
    assert!(
        codes == [(0, 0), (1, ELECTION_NOT_NEEDED), (2, ELECTION_NOT_NEEDED)]
            || codes == [(0, ELECTION_NOT_NEEDED), (1, ELECTION_NOT_NEEDED), (2, ELECTION_NOT_NEEDED)]
                && refused.error_code == 0,
        "{codes:?}"
    );
    let rows = wait_for(&cluster, "orders", 3, "every partition led by its preferred replica", |rows| {
        rows.iter().all(|r| r.leader == r.replicas.first().copied())
    });
    assert_eq!(rows[0].leader, Some(preferred));
    assert_eq!(election_codes(&elect(&kafka, &cluster, "orders", &[0])), [(0, ELECTION_NOT_NEEDED)]);

    // Move `moves`/0 from (a, b) onto (c, a): c copies it, b leaves; a keeps leading until an election.
    // The failover may have moved its leadership too: back to its first replica first.
    let codes = election_codes(&elect(&kafka, &cluster, "moves", &[0]));
    assert!(codes == [(0, 0)] || codes == [(0, ELECTION_NOT_NEEDED)], "{codes:?}");
    let before = wait_for(&cluster, "moves", 1, "moves in sync, led by its first replica", |rows| {
        rows[0].isr.len() == 2 && rows[0].leader == rows[0].replicas.first().copied()
    })[0]
        .clone();
    let (a, b) = (before.replicas[0], before.replicas[1]);
    let c = (1..=3).find(|id| !before.replicas.contains(id)).expect("a node without a replica");
    let alter = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        ReassignableTopic::default().with_name(TopicName(text("moves"))).with_partitions(vec![
            ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(c as i32), BrokerId(a as i32)])),
        ]),
    ]);
    let altered: AlterPartitionReassignmentsResponse = kafka.on_controller(
        &cluster,
        |kafka, client| kafka.call(client, ApiKey::AlterPartitionReassignments, 1, &alter),
        |r: &AlterPartitionReassignmentsResponse| r.error_code,
    );
    assert_eq!(altered.error_code, 0, "{:?}", altered.error_message);
    let results: Vec<(i32, i16)> =
        altered.responses.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code))).collect();
    assert_eq!(results, [(0, 0)], "{altered:?}");

    // While it moves, List shows the replicas (the target's, then the one leaving), c added and b removed.
    let list = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(None);
    let deadline = Instant::now() + DEADLINE;
    let mut seen_moving = 0;
    loop {
        let listed: ListPartitionReassignmentsResponse = kafka.on_controller(
            &cluster,
            |kafka, client| kafka.call(client, ApiKey::ListPartitionReassignments, 0, &list),
            |r: &ListPartitionReassignmentsResponse| r.error_code,
        );
        assert_eq!(listed.error_code, 0, "{:?}", listed.error_message);
        let Some(topic) = listed.topics.first() else { break };
        let moving = &topic.partitions[0];
        assert_eq!((topic.name.0.as_str(), moving.partition_index), ("moves", 0));
        let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0 as u64).collect::<Vec<_>>();
        assert_eq!(ids(&moving.replicas), [c, a, b]);
        assert_eq!((ids(&moving.adding_replicas), ids(&moving.removing_replicas)), (vec![c], vec![b]));
        seen_moving += 1;
        assert!(Instant::now() < deadline, "still moving after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows = wait_for(&cluster, "moves", 1, "moves on its new replicas", |rows| {
        rows[0].replicas == [c, a] && rows[0].isr.len() == 2
    });
    assert_eq!(rows[0].leader, Some(a), "a leader that stays keeps leading, as in Kafka");
    let elected = elect(&kafka, &cluster, "moves", &[0]);
    assert_eq!(election_codes(&elected), [(0, 0)], "node {c} is alive and in the ISR: {elected:?}");
    let rows = wait_for(&cluster, "moves", 1, "the new preferred replica leading", |rows| {
        rows[0].leader == Some(c) && rows[0].high_watermark >= RECORDS as i64
    });
    let consumed = rill(cluster.addr(c), &["consume", "moves", "--partition", "0", "--from-beginning"]);
    let read = consumed.ok().lines().collect::<Vec<_>>().join("\n");
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("m-{i}")).collect();
    assert_eq!(read, expected.join("\n"), "every acks-all record once, in order, from node {c}: {rows:?}");
    eprintln!("ListPartitionReassignments showed the move {seen_moving} time(s) before it was done");
}

const LEADER_NOT_AVAILABLE: i16 = 5;

/// The code of `orders` in Metadata asked of `client`, and its partition count.
fn orders_in_metadata(kafka: &Kafka, client: &mut KafkaClient) -> (i16, usize) {
    let asked = metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(text("orders"))));
    let metadata: MetadataResponse =
        kafka.call(client, ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![asked])));
    let topic = &metadata.topics[0];
    (topic.error_code, topic.partitions.len())
}

#[test]
fn a_restarted_node_answers_metadata_retriably_until_it_has_caught_up() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let kafka = Kafka::new();
    create(&cluster, "orders", "3", "3");
    wait_for(&cluster, "orders", 3, "orders in sync", |rows| rows.iter().all(|r| r.isr.len() == 3));

    // Node 3 restarts with its raft log on disk but nothing applied: until the leader tells it how far that log
    // is committed, it does not know `orders`. It never says the topic does not exist.
    cluster.nodes[2].take().expect("node 3 running").kill();
    cluster.nodes[2] = Some(cluster.start_node(3));
    let mut client = kafka.connect(cluster.addr(3));
    let deadline = Instant::now() + DEADLINE;
    let mut not_yet = 0;
    loop {
        match orders_in_metadata(&kafka, &mut client) {
            (0, 3) => break,
            (LEADER_NOT_AVAILABLE, 0) => not_yet += 1,
            other => {
                panic!("node 3 answered {other:?} for orders (code, partitions) after {not_yet} retriable answers")
            }
        }
        assert!(Instant::now() < deadline, "node 3 did not catch up within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("node 3 answered LEADER_NOT_AVAILABLE {not_yet} time(s) before it had caught up");
    // gRPC's metadata call on the same node knows it too.
    assert!(rill(cluster.addr(3), &["topic", "describe", "orders"]).ok().contains("PARTITION"));
}

/// `rill group config billing` asked of `addr` (no rows while it fails: a node starting).
/// The `consumer.*` rows of `rill group config` (KEY, VALUE, SOURCE).
fn consumer_rows(text: &str) -> Vec<(String, String, String)> {
    config_rows(text).into_iter().filter(|(key, _, _)| key.starts_with("consumer.")).collect()
}

fn billing_config(addr: &str) -> Vec<(String, String, String)> {
    let shown = rill(addr, &["group", "config", "billing"]);
    if shown.status.success() {
        consumer_rows(shown.ok())
    } else {
        Vec::new()
    }
}

/// The heartbeat interval a KIP-848 member joining `group` is told by the group's coordinator (FindCoordinator
/// asked of any running node), and the coordinator's id; again while no coordinator serves the group yet.
fn joined_heartbeat_interval(kafka: &Kafka, cluster: &Cluster, group: &str, member: &str) -> (i32, u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut any = kafka.connect(cluster.any_running());
        let find = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![text(group)]);
        let found: FindCoordinatorResponse = kafka.call(&mut any, ApiKey::FindCoordinator, 4, &find);
        let coordinator = &found.coordinators[0];
        let node = u64::try_from(coordinator.node_id.0).unwrap_or(0);
        // Until its fence, a killed coordinator is still named: asked again.
        let is_up = |node: u64| cluster.nodes.get(node as usize - 1).is_some_and(Option::is_some);
        if coordinator.error_code == 0 && node >= 1 && is_up(node) {
            let mut client = kafka.connect(cluster.addr(node));
            let join = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(text(group)))
                .with_member_id(text(member))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(text("orders"))]))
                .with_topic_partitions(Some(Vec::new()));
            let joined: ConsumerGroupHeartbeatResponse =
                kafka.call(&mut client, ApiKey::ConsumerGroupHeartbeat, 1, &join);
            if joined.error_code == 0 {
                return (joined.heartbeat_interval_ms, node);
            }
        }
        assert!(Instant::now() < deadline, "no coordinator of {group} took a member within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_groups_config_altered_on_one_node_is_every_nodes_and_outlives_its_coordinator_and_restarts() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let kafka = Kafka::new();
    create(&cluster, "orders", "3", "3");
    wait_for(&cluster, "orders", 3, "orders in sync", |rows| rows.iter().all(|r| r.isr.len() == 3));
    let broker_interval = joined_heartbeat_interval(&kafka, &cluster, "billing", "first").0;

    // Set through node 1; every node shows it (the others once they applied it).
    let set = ["consumer.session.timeout.ms=20000", "consumer.heartbeat.interval.ms=2000"];
    let altered = rill(cluster.addr(1), &["group", "config", "billing", "--config", set[0], "--config", set[1]]);
    let expected = vec![
        ("consumer.heartbeat.interval.ms".to_owned(), "2000".to_owned(), "group".to_owned()),
        ("consumer.session.timeout.ms".to_owned(), "20000".to_owned(), "group".to_owned()),
    ];
    assert_eq!(consumer_rows(altered.ok()), expected, "answered once applied on the node asked");
    for node in 1..=3 {
        common::eventually(&format!("billing's config on node {node}"), || {
            (billing_config(cluster.addr(node)) == expected).then_some(())
        });
    }
    // A share group's key too: what each partition's leader starts the group's windows with.
    let share = ["group", "config", "workers", "--config", "share.auto.offset.reset=earliest"];
    let shared = config_rows(rill(cluster.addr(2), &share).ok());
    assert!(shared.contains(&("share.auto.offset.reset".into(), "earliest".into(), "group".into())), "{shared:?}");
    common::eventually("workers' config on node 3", || {
        let shown = rill(cluster.addr(3), &["group", "config", "workers"]);
        shown.status.success().then(|| config_rows(shown.ok())).filter(|rows| *rows == shared).map(drop)
    });
    rill(cluster.addr(2), &["group", "config", "billing", "--config", "consumer.heartbeat.interval.ms=20000"])
        .fails(1, "below consumer.session.timeout.ms");

    // The group's coordinator tells a joining member the group's interval, not the broker's.
    let (interval, coordinator) = joined_heartbeat_interval(&kafka, &cluster, "billing", "second");
    assert_eq!((interval, broker_interval == 2000), (2000, false));
    // Its coordinator SIGKILLed: the next one tells the same, the config being the cluster's, not the node's.
    cluster.nodes[coordinator as usize - 1].take().expect("the coordinator running").kill();
    let (interval, next) = joined_heartbeat_interval(&kafka, &cluster, "billing", "third");
    assert_eq!((interval, next == coordinator), (2000, false));
    eprintln!("billing moved from node {coordinator} to node {next}");

    // Every node stopped and started again: the config is in the replicated metadata they recover.
    for node in 1..=3u64 {
        if let Some(running) = cluster.nodes[node as usize - 1].take() {
            running.kill();
        }
    }
    for node in 1..=3u64 {
        cluster.nodes[node as usize - 1] = Some(cluster.start_node(node));
    }
    common::eventually("billing's config after a restart of every node", || {
        (billing_config(cluster.addr(3)) == expected).then_some(())
    });
    let delete = ["group", "config", "billing", "--delete-config", "consumer.heartbeat.interval.ms"];
    let deleted = consumer_rows(rill(cluster.addr(3), &delete).ok());
    assert_eq!(deleted[0].2, "broker", "{deleted:?}");
    assert_eq!(deleted[1], expected[1], "the other key stays");
    common::eventually("the delete on node 1", || (billing_config(cluster.addr(1)) == deleted).then_some(()));
}

const REASSIGNMENT_IN_PROGRESS: i16 = 60;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// AlterPartitionReassignments of `topic`/`partition` onto `replicas` (`None`: cancel its move).
fn alter_one(topic: &str, partition: i32, replicas: Option<&[u64]>) -> AlterPartitionReassignmentsRequest {
    let replicas = replicas.map(|ids| ids.iter().map(|id| BrokerId(*id as i32)).collect());
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default().with_name(TopicName(text(topic))).with_partitions(vec![
            ReassignablePartition::default().with_partition_index(partition).with_replicas(replicas),
        ])])
}

/// Sends `request` to the controller, as Metadata asked of node `ask` names it (again after a NOT_CONTROLLER);
/// each partition's (code, message). Neither may be a stopped node.
fn alter_on_controller(
    kafka: &Kafka,
    cluster: &Cluster,
    ask: u64,
    request: &AlterPartitionReassignmentsRequest,
) -> Vec<(i16, String)> {
    let deadline = Instant::now() + DEADLINE;
    let altered: AlterPartitionReassignmentsResponse = loop {
        let controller = kafka.controller(cluster.addr(ask)).expect("a controller");
        let mut client = kafka.connect(cluster.addr(controller));
        let answer: AlterPartitionReassignmentsResponse =
            kafka.call(&mut client, ApiKey::AlterPartitionReassignments, 1, request);
        if answer.error_code != NOT_CONTROLLER {
            break answer;
        }
        assert!(Instant::now() < deadline, "no controller answered within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(altered.error_code, 0, "{:?}", altered.error_message);
    altered
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.error_code, p.error_message.as_deref().unwrap_or_default().to_string()))
        .collect()
}

/// One listed move: (partition, replicas, adding, removing).
type ListedMove = (i32, Vec<u64>, Vec<u64>, Vec<u64>);

/// ListPartitionReassignments asked of `addr`, whichever node it is.
fn moves_listed_by(kafka: &Kafka, addr: &str) -> Vec<ListedMove> {
    let mut client = kafka.connect(addr);
    let list = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(None);
    let listed: ListPartitionReassignmentsResponse =
        kafka.call(&mut client, ApiKey::ListPartitionReassignments, 0, &list);
    assert_eq!(listed.error_code, 0, "{:?}", listed.error_message);
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0 as u64).collect::<Vec<_>>();
    listed
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, ids(&p.replicas), ids(&p.adding_replicas), ids(&p.removing_replicas)))
        .collect()
}

/// `RECORDS` records produced with acks=all to `orders`/`partition`, then read back from the start.
fn produce_all_acked(cluster: &Cluster, partition: usize) -> Vec<String> {
    let records: Vec<String> = (0..RECORDS).map(|i| format!("r-{i}")).collect();
    let input = records.iter().map(|r| format!("{r}\n")).collect::<String>();
    let partition = partition.to_string();
    let args = ["produce", "orders", "--acks", "all", "--partition", &partition];
    rill_with_stdin(&cluster.all(), &args, input.as_bytes()).ok();
    records
}

#[track_caller]
fn assert_every_record_read_once(addr: &str, partition: usize, records: &[String]) {
    let partition = partition.to_string();
    let consumed = rill(addr, &["consume", "orders", "--partition", &partition, "--from-beginning"]);
    let read: Vec<&str> = consumed.ok().lines().collect();
    assert_eq!(read, records, "every acks-all record once, in order");
}

/// Creates `orders` (3 partitions, 2 replicas) once every node is alive, so that each partition leaves a
/// different node out; its rows once in sync.
fn create_spread_orders(cluster: &Cluster) -> Vec<PartitionRow> {
    let all_alive = |stdout: &str| {
        (1..=3).all(|id: u64| {
            stdout.lines().any(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                cells.first() == Some(&id.to_string().as_str()) && cells.get(2) == Some(&"alive")
            })
        })
    };
    common::eventually("every node alive", || {
        all_alive(&rill(&cluster.all(), &["cluster", "describe"]).stdout).then_some(())
    });
    create(cluster, "orders", "3", "2");
    wait_for(cluster, "orders", 3, "orders in sync", |rows| rows.iter().all(|r| r.isr.len() == 2))
}

fn stopped(cluster: &Cluster, node: u64, sig: libc::c_int) {
    common::signal(&cluster.nodes[node as usize - 1].as_ref().expect("node running").child, sig);
}

#[test]
fn a_move_under_way_survives_a_controller_leader_sigkill_and_completes_on_the_new_one() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let kafka = Kafka::new();
    let rows = create_spread_orders(&cluster);
    // The controller leader `l` will die: a partition it holds moves off it, onto `c` (the node without a
    // replica) and the replica that stays. Each partition leaves a different node out, so one fits.
    let l = kafka.controller(cluster.any_running()).expect("a controller");
    let (partition, row) = rows.iter().enumerate().find(|(_, r)| r.replicas.contains(&l)).expect("a partition on l");
    let c = (1..=3).find(|id| !row.replicas.contains(id)).expect("a node without a replica");
    let kept = *row.replicas.iter().find(|id| **id != l).expect("a replica on a node that stays up");
    let records = produce_all_acked(&cluster, partition);

    // `c` is stopped, so the move cannot finish before its controller dies: it is recorded, and any node lists it.
    stopped(&cluster, c, libc::SIGSTOP);
    let results = alter_on_controller(&kafka, &cluster, kept, &alter_one("orders", partition as i32, Some(&[c, kept])));
    assert_eq!(results, [(0, String::new())]);
    // A follower lists it once it has applied the entry, a raft round trip after the leader.
    let removing: Vec<u64> = row.replicas.iter().copied().filter(|id| *id != kept).collect();
    let expected = [(partition as i32, vec![c, kept, removing[0]], vec![c], removing.clone())];
    common::eventually("the move listed by a follower", || {
        (moves_listed_by(&kafka, cluster.addr(kept)) == expected).then_some(())
    });
    let describe = rill(cluster.addr(kept), &["topic", "describe", "orders"]);
    let moving = format!("partition {partition} is moving onto {c},{kept}: adding {c}, removing {}", removing[0]);
    assert!(describe.ok().contains(&moving), "{}", describe.ok());

    cluster.nodes[l as usize - 1].take().expect("the controller leader running").kill();
    stopped(&cluster, c, libc::SIGCONT);
    let rows = wait_for(&cluster, "orders", 3, "the move finished by the new controller leader", |rows| {
        rows[partition].replicas == [c, kept] && rows[partition].isr.len() == 2
    });
    let controller = kafka.controller(cluster.any_running()).expect("a new controller");
    assert_ne!(controller, l);
    assert!(moves_listed_by(&kafka, cluster.addr(c)).is_empty(), "nothing moves any more");
    let leader = rows[partition].leader.expect("a leader");
    assert_every_record_read_once(cluster.addr(leader), partition, &records);
}

#[test]
fn a_move_under_way_is_cancelled_through_kafka_and_the_cli_back_onto_its_original_replicas() {
    // Sessions long enough that the stopped node stays alive in the metadata, so moves onto it may start.
    let cluster =
        Cluster::start(&FAST_CLUSTER.replace("node_session_timeout_ms = 1500", "node_session_timeout_ms = 60000"));
    let kafka = Kafka::new();
    let rows = create_spread_orders(&cluster);
    // The node stopped must not be the controller leader: a partition it holds moves onto the node left out.
    let l = kafka.controller(cluster.any_running()).expect("a controller");
    let (partition, row) = rows.iter().enumerate().find(|(_, r)| r.replicas.contains(&l)).expect("a partition on l");
    let records = produce_all_acked(&cluster, partition);
    let original = row.replicas.clone();
    let c = (1..=3).find(|id| !original.contains(id)).expect("a node without a replica");
    let (p, p_arg) = (partition as i32, partition.to_string());
    let nothing = alter_on_controller(&kafka, &cluster, original[0], &alter_one("orders", p, None));
    assert_eq!(nothing[0].0, NO_REASSIGNMENT_IN_PROGRESS, "{nothing:?}");
    assert!(nothing[0].1.contains("nothing to cancel"), "{nothing:?}");

    // Kafka: a move onto `c` (stopped, so it stays under way) is cancelled with a null replica list.
    stopped(&cluster, c, libc::SIGSTOP);
    let target = [c, original[1]];
    let started = alter_on_controller(&kafka, &cluster, original[0], &alter_one("orders", p, Some(&target)));
    assert_eq!(started[0].0, 0, "{started:?}");
    let again = alter_on_controller(&kafka, &cluster, original[0], &alter_one("orders", p, Some(&original)));
    assert_eq!(again[0].0, REASSIGNMENT_IN_PROGRESS, "one move at a time per partition: {again:?}");
    assert!(again[0].1.contains("--cancel"), "{again:?}");
    common::eventually("the move listed by each replica", || {
        original.iter().all(|id| moves_listed_by(&kafka, cluster.addr(*id)).len() == 1).then_some(())
    });
    assert_eq!(alter_on_controller(&kafka, &cluster, original[0], &alter_one("orders", p, None)), [(0, String::new())]);
    // Node `c` is stopped: ask the others.
    let rows = cluster::wait_for_topic(cluster.addr(original[0]), "orders", 3, "the original replicas back", |rows| {
        rows[partition].replicas == original
    });
    assert!(rows[partition].leader.is_some_and(|l| original.contains(&l)), "{rows:?}");
    assert!(moves_listed_by(&kafka, cluster.addr(original[0])).is_empty());

    // The CLI: a waiting `rill topic reassign` learns that its move was cancelled by `--cancel`.
    let mut waiting = std::process::Command::new(common::RILL)
        .args(["topic", "reassign", "orders", "--partition", &p_arg, "--replicas", &format!("{c},{}", original[1])])
        .env("RILL_BROKER", cluster.addr(original[0]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rill topic reassign");
    let deadline = Instant::now() + DEADLINE;
    while moves_listed_by(&kafka, cluster.addr(original[0])).is_empty() {
        assert!(Instant::now() < deadline, "the CLI's move not listed within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancelled =
        rill(cluster.addr(original[1]), &["topic", "reassign", "orders", "--partition", &p_arg, "--cancel"]);
    let expected = format!(
        "cancelled the move of orders/{partition}: replicas {},{},{c} -> {},{}",
        original[0], original[1], original[0], original[1]
    );
    assert!(cancelled.ok().contains(&expected), "{}", cancelled.ok());
    let status = common::wait_with_deadline(&mut waiting);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut waiting.stderr.take().expect("piped stderr"), &mut stderr).expect("stderr");
    assert!(!status.success() && stderr.contains("was cancelled"), "{status:?}: {stderr}");
    rill(cluster.addr(original[0]), &["topic", "reassign", "orders", "--partition", &p_arg, "--cancel"])
        .fails(1, "nothing to cancel");

    // `--no-wait`: answered once the move is recorded (it cannot finish with `c` stopped), refused as any move.
    let onto_c = format!("{c},{}", original[1]);
    let start = ["topic", "reassign", "orders", "--partition", &p_arg, "--replicas", &onto_c, "--no-wait"];
    let started = rill(cluster.addr(original[1]), &start);
    let expected = format!("started moving orders/{partition}: replicas {},{} -> {onto_c}", original[0], original[1]);
    assert!(started.ok().contains(&expected) && started.ok().contains("--cancel` stops it"), "{}", started.ok());
    assert_eq!(moves_listed_by(&kafka, cluster.addr(original[0])).len(), 1, "listed as soon as answered");
    rill(cluster.addr(original[0]), &start).fails(1, "already");
    let unknown = ["topic", "reassign", "orders", "--partition", &p_arg, "--replicas", "9", "--no-wait"];
    rill(cluster.addr(original[0]), &unknown).fails(1, "node 9");
    rill(cluster.addr(original[0]), &["topic", "reassign", "orders", "--partition", &p_arg, "--cancel"]).ok();

    stopped(&cluster, c, libc::SIGCONT);
    let rows = wait_for(&cluster, "orders", 3, "the original replicas in sync", |rows| {
        rows[partition].replicas == original && rows[partition].isr.len() == 2
    });
    assert_every_record_read_once(cluster.addr(rows[partition].leader.expect("a leader")), partition, &records);
}
