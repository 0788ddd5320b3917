//! Preferred leaders and reassignment on real `rill broker` processes: a killed preferred leader that
//! restarts gets its leadership back by itself within the (shortened) imbalance check interval, or on demand
//! with `rill cluster elect-leaders` while an acks-all producer runs; a partition moves onto a fourth, added
//! node with `rill topic reassign` while an acks-all producer runs, and `rill cluster rebalance` spreads the
//! rest; and librdkafka's idempotent producer goes through an election. Every acknowledged record is then read
//! exactly once, in order, from the partition's leader.

use crate::common;

use std::time::{Duration, Instant};

use common::cluster::{self, describe_topic, start_joining_node, Cluster, PartitionRow};
use common::{rill, BrokerProcess, FedProducer, DEADLINE};
use rill_protocol::reason::Reason;

/// Short sessions and lag limit, so failover and ISR changes happen within the test's deadline.
const FAST_CLUSTER: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n";
const PARTITIONS: usize = 3;

#[track_caller]
fn wait_for_topic(addr: &str, what: &str, done: impl Fn(&[PartitionRow]) -> bool) -> Vec<PartitionRow> {
    cluster::wait_for_topic(addr, "orders", PARTITIONS, what, done)
}

fn all_in_sync(rows: &[PartitionRow], replicas: usize) -> bool {
    rows.iter().all(|r| r.replicas.len() == replicas && r.isr.len() == replicas && r.leader.is_some())
}

/// A cluster with `orders` (3 partitions, 3 replicas) in sync, each partition led by its preferred replica.
fn cluster_with_orders(config: &str) -> (Cluster, Vec<PartitionRow>) {
    let cluster = Cluster::start(config);
    let partitions = PARTITIONS.to_string();
    let create = ["topic", "create", "orders", "--partitions", &partitions, "--replication-factor", "3"];
    let deadline = Instant::now() + DEADLINE;
    // The cluster forms first: a create before a controller leader is elected is refused, and retried.
    while !rill(&cluster.all(), &create).status.success() {
        assert!(Instant::now() < deadline, "orders not created within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = wait_for_topic(cluster.addr(1), "three in-sync replicas everywhere", |rows| {
        all_in_sync(rows, 3) && rows.iter().all(|r| r.leader == r.replicas.first().copied())
    });
    (cluster, rows)
}

/// Kills the preferred leader of partition 0, waits for the failover, restarts it and waits until it is back
/// in every ISR. Returns its id and the rows then.
fn fail_over_and_restart_preferred_leader_of_partition_0(cluster: &mut Cluster, rows: &[PartitionRow]) -> u64 {
    let preferred = rows[0].replicas[0];
    let survivor = if preferred == 1 { 2 } else { 1 };
    cluster.nodes[preferred as usize - 1].take().expect("the preferred leader running").kill();
    wait_for_topic(cluster.addr(survivor), "a failover of partition 0", |rows| {
        rows[0].leader.is_some_and(|l| l != preferred)
    });
    cluster.nodes[preferred as usize - 1] = Some(cluster.start_node(preferred));
    preferred
}

/// Every acknowledged record (`partition offset` lines of `--print-offsets`, line n holding `L-n`) exactly
/// once, in order, at its offset, from each partition's leader.
#[track_caller]
fn assert_every_acknowledged_record_read_once(printed: &[String], leaders: &[String]) {
    let mut acknowledged: Vec<Vec<(i64, String)>> = vec![Vec::new(); PARTITIONS];
    for (line, at) in printed.iter().enumerate() {
        let (partition, offset) = at.split_once(' ').expect("partition offset");
        let partition: usize = partition.parse().expect("partition");
        acknowledged[partition].push((offset.parse().expect("offset"), format!("L-{line}")));
    }
    for (partition, acknowledged) in acknowledged.iter().enumerate() {
        // A new leader's high watermark lags the old one's until its followers have fetched from it (one
        // replication round trip); a read before that stops short of records acknowledged by the old leader.
        let last = acknowledged.last().map_or(-1, |(offset, _)| *offset);
        wait_for_topic(&leaders[partition], "the leader's high watermark past every acknowledgement", |rows| {
            rows[partition].high_watermark > last
        });
        cluster::assert_read_once_in_order(&leaders[partition], partition, acknowledged);
    }
}

/// Feeds the producer on for `lines` more acknowledged records, ends it, and returns every line it printed.
#[track_caller]
fn finish(mut producer: FedProducer, mut printed: Vec<String>, lines: usize) -> Vec<String> {
    for _ in 0..lines {
        printed.push(producer.next_line());
    }
    let written = producer.end_input();
    let (status, stderr) = producer.wait();
    assert!(status.success(), "the producer failed: {stderr}");
    printed.extend(producer.remaining_lines());
    assert_eq!(printed.len() as u64, written, "one offset line per input line: every record acknowledged");
    printed
}

#[test]
fn a_restarted_preferred_leader_gets_its_leadership_back_within_the_check_interval() {
    let config = format!("{FAST_CLUSTER}leader_imbalance_check_interval_ms = 500\n");
    let (mut cluster, rows) = cluster_with_orders(&config);
    let epoch_before = rows[0].epoch;
    let preferred = fail_over_and_restart_preferred_leader_of_partition_0(&mut cluster, &rows);

    // Nobody asks: the controller leader sees node `preferred` lead none of its preferred partitions, and
    // hands them back once it is in their ISRs again.
    let rows = wait_for_topic(cluster.addr(preferred), "the leadership back on the preferred replica", |rows| {
        rows[0].leader == Some(preferred) && rows[0].isr.contains(&preferred)
    });
    assert!(rows[0].epoch >= epoch_before + 2, "a failover and an election, each a new epoch: {rows:?}");
    assert!(rows.iter().all(|r| r.leader == r.replicas.first().copied()), "every partition balanced: {rows:?}");
}

/// Subscribes to orders/0 at `broker` from its high watermark on a thread of its own, and returns how many
/// pushes came before the stream ended, and the status it ended with. Fails the test if it has not ended within
/// `DEADLINE`.
fn subscribe_until_refused(broker: String) -> std::thread::JoinHandle<(usize, tonic::Status)> {
    use rill_protocol::v1::{records_client::RecordsClient, SubscribeRequest};
    use tokio_stream::StreamExt;

    let (started, subscribed) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{broker}")).expect("endpoint");
            let channel = tokio::time::timeout(DEADLINE, endpoint.connect()).await.expect("in time").expect("connect");
            let request = SubscribeRequest { topic: "orders".into(), partition: 0, offset: -1, ..Default::default() };
            let mut pushes = RecordsClient::new(channel).subscribe(request).await.expect("subscribed").into_inner();
            started.send(()).expect("the test waits");
            let mut pushed = 0;
            loop {
                match tokio::time::timeout(DEADLINE, pushes.next()).await {
                    Ok(Some(Ok(_))) => pushed += 1,
                    Ok(Some(Err(refused))) => return (pushed, refused),
                    Ok(None) => panic!("the subscription ended without a status after {pushed} pushes"),
                    Err(_) => panic!("the subscription still open {DEADLINE:?} after its last push ({pushed} pushes)"),
                }
            }
        })
    });
    subscribed.recv_timeout(DEADLINE).expect("subscribed in time");
    thread
}

#[test]
fn elect_leaders_on_demand_moves_leadership_back_under_acks_all_load() {
    let config = format!("{FAST_CLUSTER}auto_leader_rebalance_enable = false\n");
    let (mut cluster, rows) = cluster_with_orders(&config);
    let preferred = fail_over_and_restart_preferred_leader_of_partition_0(&mut cluster, &rows);
    let rows = wait_for_topic(cluster.addr(preferred), "the restarted node back in sync", |rows| all_in_sync(rows, 3));
    let deposed = rows[0].leader.expect("a leader");
    assert_ne!(deposed, preferred, "with the automatic rebalance off the leadership stays where it moved");

    let producer = FedProducer::spawn(
        &cluster.all(),
        &["orders", "--acks", "all", "--print-offsets"],
        10,
        Duration::from_millis(10),
    );
    let printed = vec![producer.next_line()]; // mid-stream: a record was acknowledged
    let subscription = subscribe_until_refused(cluster.addr(deposed).to_owned());
    let elected = rill(cluster.addr(deposed), &["cluster", "elect-leaders"]);
    let elected = elected.ok();
    assert!(elected.contains(&format!("elected orders/0: node {deposed} -> node {preferred} at epoch")), "{elected}");
    assert!(elected.contains("1 leadership(s) moved to the preferred replica"), "{elected}");
    let printed = finish(producer, printed, 20);

    let rows = describe_topic(cluster.addr(1), "orders", PARTITIONS).expect("describe");
    assert!(rows.iter().all(|r| r.leader == r.replicas.first().copied()), "{rows:?}");
    let again = rill(&cluster.all(), &["cluster", "elect-leaders", "--topic", "orders", "--partition", "0"]);
    assert!(again.ok().contains("0 leadership(s) moved"), "already preferred: {}", again.stdout);
    rill(&cluster.all(), &["cluster", "elect-leaders", "--topic", "nope"]).fails(1, "nope");

    let leaders: Vec<String> = rows.iter().map(|r| cluster.addr(r.leader.expect("a leader")).to_owned()).collect();
    assert_every_acknowledged_record_read_once(&printed, &leaders);

    // The subscriber on the deposed leader is told once a record reaches it as a follower, rather than left on a
    // follower's trailing high watermark.
    rill(&cluster.all(), &["produce", "orders", "--partition", "0", "--acks", "all", "--value", "wake"]).ok();
    let (pushed, refused) = subscription.join().expect("the subscriber thread");
    let reason = rill_protocol::reason::reason_of(&refused);
    assert!(
        matches!(reason, Some(Reason::NotLeader | Reason::FencedLeaderEpoch)),
        "after {pushed} pushes the subscription on node {deposed} ended with {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_idempotent_producer_stores_each_record_once_through_a_preferred_election() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let config = format!("{FAST_CLUSTER}auto_leader_rebalance_enable = false\n");
    let (mut cluster, rows) = tokio::task::block_in_place(|| cluster_with_orders(&config));
    let preferred = tokio::task::block_in_place(|| {
        let preferred = fail_over_and_restart_preferred_leader_of_partition_0(&mut cluster, &rows);
        wait_for_topic(cluster.addr(preferred), "the restarted node back in sync", |rows| all_in_sync(rows, 3));
        preferred
    });
    let producer: FutureProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", cluster.all())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "50")
        .create()
        .expect("a producer from a valid configuration");
    let queue = |range: std::ops::Range<i32>| {
        range
            .map(|i| {
                let value = format!("K-{i}");
                producer
                    .send_result(FutureRecord::<(), str>::to("orders").partition(0).payload(&value))
                    .expect("queued")
            })
            .collect::<Vec<_>>()
    };
    let mut pending = queue(0..2_000);
    for delivery in pending.drain(..) {
        delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered");
    }
    // Records in flight as the leadership moves: librdkafka gets NOT_LEADER_OR_FOLLOWER, refreshes its metadata
    // and retries on the preferred replica, which answers a retry of a batch it already holds with its offset.
    pending.extend(queue(2_000..4_000));
    let elected =
        tokio::task::block_in_place(|| rill(&cluster.all(), &["cluster", "elect-leaders", "--topic", "orders"]));
    assert!(elected.ok().contains(&format!("-> node {preferred} at epoch")), "{}", elected.stdout);
    pending.extend(queue(4_000..6_000));
    let mut offsets = Vec::new();
    for delivery in pending {
        offsets.push(delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered").offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (2_000..6_000).collect::<Vec<i64>>(), "each record acknowledged at its own offset");

    let leader = cluster.addr(preferred).to_owned();
    let read = tokio::task::block_in_place(|| {
        wait_for_topic(&leader, "the new leader's high watermark past every record", |rows| {
            rows[0].leader == Some(preferred) && rows[0].high_watermark >= 6_000
        });
        rill(&leader, &["consume", "orders", "--partition", "0", "--from-beginning"])
    });
    let values: Vec<&str> = read.ok().lines().collect();
    let expected: Vec<String> = (0..6_000).map(|i| format!("K-{i}")).collect();
    assert_eq!(values, expected, "each record once, in order, no gap");
}

/// Waits until `rill cluster describe` shows node `node_id` alive (registered by its first heartbeat).
#[track_caller]
fn wait_for_alive(addr: &str, node_id: u64) {
    let deadline = Instant::now() + DEADLINE;
    let is_alive = |stdout: &str| {
        stdout.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.first() == Some(&node_id.to_string().as_str()) && cells.get(2) == Some(&"alive")
        })
    };
    while !is_alive(&rill(addr, &["cluster", "describe"]).stdout) {
        assert!(Instant::now() < deadline, "node {node_id} not alive within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_partition_moves_onto_an_added_node_under_acks_all_load_losing_and_repeating_nothing() {
    let (cluster, rows) = cluster_with_orders(FAST_CLUSTER);
    let node_4 = start_joining_node(4, &cluster.dir.path().join("d4"), cluster.addr(1), &cluster.config());
    rill(cluster.addr(2), &["cluster", "add-node", "--node-id", "4", "--address", &node_4.addr]).ok();
    let addr_of = |id: u64| if id == 4 { node_4.addr.clone() } else { cluster.addr(id).to_owned() };
    wait_for_alive(cluster.addr(1), 4);

    // Refused before anything changes: a node twice, a node that is not a member, fewer than min.insync (2).
    let broker = cluster.all();
    let reassign =
        |replicas: &str| rill(&broker, &["topic", "reassign", "orders", "--partition", "0", "--replicas", replicas]);
    reassign("1,4,1").fails(1, "node 1 appears more than once in the new replica list 1,4,1");
    reassign("9,1,2").fails(1, "node 9 is not a member of the cluster");
    reassign("4").fails(1, "1 replica(s) is fewer than topic \"orders\"'s min_insync_replicas of 2");

    let brokers = format!("{broker},{}", node_4.addr);
    let producer =
        FedProducer::spawn(&brokers, &["orders", "--acks", "all", "--print-offsets"], 10, Duration::from_millis(10));
    let printed = vec![producer.next_line()];
    // Node 4 replaces partition 0's leader, and is its preferred leader from now on.
    let old = rows[0].replicas.clone();
    let new = vec![4, old[1], old[2]];
    let new_list = new.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let old_list = old.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let moved = reassign(&new_list);
    let moved = moved.ok();
    assert!(moved.contains(&format!("reassigned orders/0: replicas {old_list} -> {new_list}")), "{moved}");
    let printed = finish(producer, printed, 20);

    let rows = wait_for_topic(&node_4.addr, "partition 0 on its new replicas, all in sync", |rows| {
        rows[0].replicas == new && rows[0].isr.len() == 3 && !rows[0].isr.contains(&old[0])
    });
    assert_eq!(rows[0].leader, Some(4), "the leader left out hands over to the first new replica in sync");
    let leaders: Vec<String> = rows.iter().map(|r| addr_of(r.leader.expect("a leader"))).collect();
    assert_every_acknowledged_record_read_once(&printed, &leaders);

    // The rest of the spread: node 4 holds 1 of the 9 replicas; a rebalance leaves no two nodes more than one
    // apart, every replica set on distinct nodes and in sync, and a second run moves nothing.
    let rebalanced = rill(&node_4.addr, &["cluster", "rebalance"]);
    let rebalanced = rebalanced.ok();
    assert!(rebalanced.contains("1 partition(s) moved"), "{rebalanced}");
    let rows =
        wait_for_topic(cluster.addr(1), "every partition in sync after the rebalance", |rows| all_in_sync(rows, 3));
    let mut load = [0usize; 4];
    for row in &rows {
        let mut distinct = row.replicas.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{rows:?}");
        for id in &row.replicas {
            load[*id as usize - 1] += 1;
        }
    }
    assert!(load.iter().max() <= Some(&3) && load.iter().min() >= Some(&2), "{load:?} from {rows:?}");
    assert!(rill(&broker, &["cluster", "rebalance"]).ok().contains("0 partition(s) moved"));
}

#[test]
fn a_single_node_refuses_elections_reassignments_and_rebalances_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = BrokerProcess::start(&dir.path().join("data"));
    rill(&node.addr, &["topic", "create", "solo"]).ok();
    let alone = "this node runs alone (started without --peers)";
    rill(&node.addr, &["cluster", "elect-leaders"]).fails(1, alone);
    rill(&node.addr, &["topic", "reassign", "solo", "--partition", "0", "--replicas", "1"]).fails(1, alone);
    rill(&node.addr, &["cluster", "rebalance"]).fails(1, alone);
    rill(&node.addr, &["cluster", "elect-leaders", "--partition", "0"]).fails(2, "--topic");
}
