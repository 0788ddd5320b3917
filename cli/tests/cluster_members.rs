//! Growing and shrinking a cluster of real `rill broker` processes at run time: a fourth node joins
//! (`--join`, `rill cluster add-node`) and takes replicas; node 2 is removed (`rill cluster remove-node`) while
//! an acks-all producer runs, and every acknowledged record is read exactly once, in order, from replica sets
//! that no longer name it; the removed node stops and is refused when it comes back. And the refusals: an
//! unknown node, a partition that would keep fewer nodes than its replication factor, a quorum that would
//! shrink, a node that is not running.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{self, start_joining_node, start_until_listening, Cluster, PartitionRow};
use common::{dead_address, rill, run, BrokerProcess, FedProducer, DEADLINE, RILL};

/// Short sessions and lag limit, so registration and ISR changes happen within the test's deadline.
const FAST_CLUSTER: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n";
const PARTITIONS: usize = 3;

/// One partition's row of `rill topic describe` in a cluster.
#[track_caller]
fn wait_for_topic(addr: &str, topic: &str, what: &str, done: impl Fn(&[PartitionRow]) -> bool) -> Vec<PartitionRow> {
    cluster::wait_for_topic(addr, topic, PARTITIONS, what, done)
}

/// One node's row of `rill cluster describe`.
#[derive(Debug)]
struct NodeRow {
    id: u64,
    state: String,
    voter: String,
}

/// `rill cluster describe`'s node rows, and its removed-nodes line.
fn describe_cluster(addr: &str) -> Option<(Vec<NodeRow>, String)> {
    let output = rill(addr, &["cluster", "describe"]);
    if !output.status.success() {
        return None;
    }
    let nodes = output
        .stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let id = cells.first()?.parse().ok()?;
            Some(NodeRow { id, state: (*cells.get(2)?).to_owned(), voter: (*cells.get(3)?).to_owned() })
        })
        .collect();
    let removed = output.stdout.lines().find_map(|l| l.strip_prefix("removed nodes:")).unwrap_or("").trim();
    Some((nodes, removed.to_owned()))
}

#[track_caller]
fn wait_for_cluster(addr: &str, what: &str, done: impl Fn(&[NodeRow], &str) -> bool) -> Vec<NodeRow> {
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((nodes, removed)) = describe_cluster(addr) {
            if done(&nodes, &removed) {
                return nodes;
            }
            last = Some((nodes, removed));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {what} within {DEADLINE:?}; last seen: {last:?}");
}

fn all_alive(nodes: &[NodeRow], count: usize) -> bool {
    nodes.len() == count && nodes.iter().all(|n| n.state == "alive")
}

/// `rill broker` arguments for a node that joins the cluster through `via`.
fn joining_args(node_id: u64, listen: &str, data_dir: &Path, via: &str, config: &Path) -> Vec<String> {
    let data_dir = data_dir.to_string_lossy();
    let config = config.to_string_lossy();
    let args =
        ["broker", "--node-id", &node_id.to_string(), "--listen", listen, "--data-dir", &data_dir, "--join", via];
    args.into_iter().chain(["--config", &config]).map(str::to_owned).collect()
}

/// The controller leader `addr` names, in an answer from the leader itself.
fn controller_leader(addr: &str) -> Option<u64> {
    let described = rill(addr, &["cluster", "describe"]);
    let stdout = &described.stdout;
    if !described.status.success() || !stdout.contains("(the controller leader)") {
        return None;
    }
    stdout.lines().find_map(|l| l.strip_prefix("controller leader:")).and_then(|id| id.trim().parse().ok())
}

/// Waits until `addr` names a controller leader that `wanted` accepts, and returns it.
#[track_caller]
fn wait_for_controller_leader(addr: &str, wanted: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match controller_leader(addr) {
            Some(leader) if wanted(leader) => return leader,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no wanted controller leader at {addr} within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `node` to exit by itself, and returns its exit code.
#[track_caller]
fn exit_code(node: &mut BrokerProcess) -> Option<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = node.child.try_wait().expect("try_wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "node {} still runs after {DEADLINE:?}", node.addr);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `rill broker ARGS` to its exit (logs off: stderr is then just the `error:` line).
fn rill_broker(args: &[String]) -> common::Output {
    run(Command::new(RILL).args(args).env("RUST_LOG", "off").env("RILL_ADMIN_LISTEN", "127.0.0.1:0"), None)
}

#[test]
fn a_node_added_then_node_2_removed_under_acks_all_load_loses_and_repeats_no_record() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    wait_for_cluster(cluster.addr(1), "three alive nodes", |nodes, _| all_alive(nodes, 3));
    let partitions = PARTITIONS.to_string();
    let create = ["topic", "create", "orders", "--partitions", &partitions, "--replication-factor", "3"];
    rill(&cluster.all(), &create).ok();
    wait_for_topic(cluster.addr(1), "orders", "three in-sync replicas everywhere", |rows| {
        rows.iter().all(|r| r.isr.len() == 3 && r.leader.is_some())
    });

    // Node 4 joins through node 3, and is added through node 1 (which forwards to the controller leader).
    let node_4 = start_joining_node(4, &cluster.dir.path().join("d4"), cluster.addr(3), &cluster.config());
    let added = rill(cluster.addr(1), &["cluster", "add-node", "--node-id", "4", "--address", &node_4.addr]);
    let added = added.ok();
    assert!(added.contains("added node 4") && added.contains("non-voting member"), "{added}");
    assert!(added.contains("voters: 1,2,3"), "a 4th node leaves the quorum at 3 voters: {added}");
    // Answered once node 4 registered: the controller leader, which answers describe, already has it alive.
    let described = rill(cluster.addr(1), &["cluster", "describe"]);
    let row = described.ok().lines().find(|l| l.starts_with("4 ")).map(|l| l.split_whitespace().collect::<Vec<_>>());
    assert_eq!(row.as_ref().map(|r| (r[2], r[3])), Some(("alive", "no")), "{described:?}");
    // It takes replicas of a new topic: four partitions of one replica spread over four nodes.
    rill(&node_4.addr, &["topic", "create", "spread", "--partitions", "4", "--replication-factor", "1"]).ok();
    let spread = rill(&node_4.addr, &["topic", "describe", "spread"]);
    assert!(spread.ok().lines().any(|l| l.split_whitespace().nth(3) == Some("4")), "{}", spread.stdout);

    let brokers = format!("{},{}", cluster.all(), node_4.addr);
    let mut producer =
        FedProducer::spawn(&brokers, &["orders", "--acks", "all", "--print-offsets"], 10, Duration::from_millis(10));
    let mut printed = vec![producer.next_line()]; // mid-stream: a record was acknowledged
    let removed = rill(cluster.addr(3), &["cluster", "remove-node", "--node-id", "2"]);
    let removed = removed.ok();
    // Each `orders` replica on node 2 goes to node 4, the one node without one; `spread`'s goes elsewhere.
    for partition in 0..PARTITIONS {
        assert!(removed.contains(&format!("moved orders/{partition}: node 2 -> node 4")), "{removed}");
    }
    assert!(removed.contains("removed node 2 (4 replica(s) moved)"), "{removed}");
    assert!(removed.contains("voters: 1,3,4"), "node 4 takes node 2's vote: {removed}");
    for _ in 0..20 {
        printed.push(producer.next_line()); // the producer goes on after the removal
    }
    let written = producer.end_input();
    let (status, stderr) = producer.wait();
    assert!(status.success(), "the producer failed across the removal: {stderr}");
    printed.extend(producer.remaining_lines());
    assert_eq!(printed.len() as u64, written, "one offset line per input line: every record acknowledged");

    // The removed node stops by itself, with status 1.
    let mut node_2 = cluster.nodes[1].take().expect("node 2 running");
    assert_eq!(exit_code(&mut node_2), Some(1), "the removed node stops as refused");

    let survivor = cluster.addr(1).to_owned();
    let rows = wait_for_topic(&survivor, "orders", "replica sets and ISRs without node 2", |rows| {
        rows.iter().all(|r| r.replicas.len() == 3 && r.isr.len() == 3 && !r.replicas.contains(&2))
    });
    assert!(rows.iter().all(|r| !r.isr.contains(&2) && r.leader.is_some_and(|l| l != 2)), "{rows:?}");
    let nodes = wait_for_cluster(&survivor, "three voters and node 2 removed", |nodes, removed| {
        removed == "2" && nodes.len() == 3 && nodes.iter().all(|n| n.state == "alive" && n.voter == "yes")
    });
    assert_eq!(nodes.iter().map(|n| n.id).collect::<Vec<_>>(), vec![1, 3, 4]);

    // Every acknowledged record, exactly once and in order, from each partition's leader.
    let mut acknowledged: Vec<Vec<(i64, String)>> = vec![Vec::new(); PARTITIONS];
    for (line, at) in printed.iter().enumerate() {
        let (partition, offset) = at.split_once(' ').expect("partition offset");
        let partition: usize = partition.parse().expect("partition");
        acknowledged[partition].push((offset.parse().expect("offset"), format!("L-{line}")));
    }
    for (partition, acknowledged) in acknowledged.iter().enumerate() {
        let leader = rows[partition].leader.expect("a leader");
        let leader_addr = if leader == 4 { node_4.addr.clone() } else { cluster.addr(leader).to_owned() };
        cluster::assert_read_once_in_order(&leader_addr, partition, acknowledged);
    }

    // Node 3's data dir records the new membership, and it restarts with the peers the cluster was formed with.
    let identity = std::fs::read_to_string(cluster.data_dir(3).join("cluster.toml")).expect("cluster.toml");
    let members = format!("members = [\"1@{}\", \"3@{}\", \"4@{}\"]", cluster.addr(1), cluster.addr(3), node_4.addr);
    assert!(identity.contains(&members), "{identity}");
    cluster.nodes[2].take().expect("node 3 running").kill();
    cluster.nodes[2] = Some(cluster.start_node(3));
    wait_for_cluster(cluster.addr(3), "node 3 back alive", |nodes, _| all_alive(nodes, 3));

    // Node 4, which joined, restarts from its data dir with the same command line and is alive again.
    let node_4_args = joining_args(4, &node_4.addr, &cluster.dir.path().join("d4"), cluster.addr(3), &cluster.config());
    node_4.kill();
    let node_4 = start_until_listening(&node_4_args);
    wait_for_cluster(&node_4.addr, "node 4 back alive", |nodes, _| all_alive(nodes, 3));

    // Node 2 comes back with its data dir: refused, saying why.
    let back = rill_broker(&cluster.args(2));
    back.fails(1, "node 2 was removed from the cluster");
    drop(node_2);
}

#[test]
fn removals_that_would_lose_a_replica_or_the_quorum_and_unknown_nodes_are_refused() {
    let cluster = Cluster::start(FAST_CLUSTER);
    wait_for_cluster(cluster.addr(1), "three alive nodes", |nodes, _| all_alive(nodes, 3));
    let broker = cluster.all();

    let unknown = rill(&broker, &["cluster", "remove-node", "--node-id", "9"]);
    unknown.fails(1, "node 9 is not a member of the cluster (members: 1,2,3)");
    let quorum = rill(&broker, &["cluster", "remove-node", "--node-id", "3"]);
    quorum.fails(1, "would leave 2 member(s), too few for the controller quorum of 3 voters");

    rill(&broker, &["topic", "create", "orders", "--partitions", "1", "--replication-factor", "3"]).ok();
    let replica = rill(&broker, &["cluster", "remove-node", "--node-id", "2"]);
    replica.fails(1, "has a replication factor of 3, and without node 2 only 2 alive node(s) could hold it");

    let nobody = dead_address();
    let absent = rill(&broker, &["cluster", "add-node", "--node-id", "4", "--address", &nobody]);
    absent.fails(1, &format!("nothing answers at {nobody}; start the node first"));
    let taken = rill(&broker, &["cluster", "add-node", "--node-id", "2", "--address", &nobody]);
    taken.fails(1, "node 2 is already a member");

    // Nothing changed: three voters, node 2 still holds its replica.
    let (nodes, removed) = describe_cluster(cluster.addr(2)).expect("describe");
    assert!(removed.is_empty() && nodes.len() == 3 && nodes.iter().all(|n| n.voter == "yes"), "{nodes:?}");
    let described = rill(&broker, &["topic", "describe", "orders"]);
    assert!(described.ok().lines().any(|l| l.split_whitespace().nth(3) == Some("1,2,3")), "{}", described.stdout);
}

#[test]
fn the_controller_leader_removes_itself_and_a_learner_takes_its_vote() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    wait_for_cluster(cluster.addr(1), "three alive nodes", |nodes, _| all_alive(nodes, 3));
    let node_4 = start_joining_node(4, &cluster.dir.path().join("d4"), cluster.addr(1), &cluster.config());
    rill(cluster.addr(1), &["cluster", "add-node", "--node-id", "4", "--address", &node_4.addr]).ok();
    // Node 4 learns who leads only once the leader's first heartbeat reaches it as a voter.
    let leader = wait_for_controller_leader(&node_4.addr, |_| true);

    let removed = rill(&node_4.addr, &["cluster", "remove-node", "--node-id", &leader.to_string()]);
    let removed = removed.ok();
    assert!(removed.contains(&format!("removed node {leader} (0 replica(s) moved)")), "{removed}");
    let mut old_leader = cluster.nodes[leader as usize - 1].take().expect("the leader running");
    assert_eq!(exit_code(&mut old_leader), Some(1), "the removed leader stops once done");
    let nodes = wait_for_cluster(&node_4.addr, "a new leader over three voters", |nodes, removed| {
        removed == leader.to_string()
            && nodes.len() == 3
            && nodes.iter().all(|n| n.state == "alive" && n.voter == "yes")
    });
    assert!(nodes.iter().all(|n| n.id != leader), "{nodes:?}");
    wait_for_controller_leader(&node_4.addr, |new| new != leader);
    // The metadata still changes: a topic can be created over the three members left.
    rill(&node_4.addr, &["topic", "create", "after", "--partitions", "3", "--replication-factor", "3"]).ok();
}
