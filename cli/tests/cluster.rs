//! Clusters of real `rill broker` processes on loopback: the controller quorum forms, a SIGKILLed controller
//! leader is replaced and fenced, and comes back alive when restarted; a SIGKILLed node is fenced as soon as its
//! port refuses, long before its session ends, and a frozen one is not; a dead controller leader's survivors call
//! the election themselves, a frozen one's do not; a killed partition leader is fenced as soon as the controller
//! leader's replication stream from it breaks, or another node's does; a node stopped gracefully hands its
//! leaderships over first; bad cluster settings are refused at start.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{broker_args, scrape, wait_for_topic, Cluster};
use common::{dead_address, eventually, rill, run, signal, BrokerProcess, DEADLINE, RILL};

/// Heartbeats and sessions short enough that fencing happens within the tests' deadline.
const FAST_SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n";

/// What `rill cluster describe` printed, parsed.
#[derive(Debug)]
struct Described {
    leader: Option<u64>,
    /// Node id -> state column.
    states: Vec<(u64, String)>,
}

impl Described {
    fn state_of(&self, node_id: u64) -> Option<&str> {
        self.states.iter().find(|(id, _)| *id == node_id).map(|(_, s)| s.as_str())
    }

    fn all_alive(&self) -> bool {
        self.states.len() == 3 && self.states.iter().all(|(_, s)| s == "alive")
    }
}

fn describe(addr: &str) -> Option<Described> {
    let output = rill(addr, &["cluster", "describe"]);
    if !output.status.success() {
        return None;
    }
    let leader = output
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("controller leader:"))
        .and_then(|rest| rest.trim().parse().ok());
    let states = output
        .stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            Some((cells.first()?.parse().ok()?, (*cells.get(2)?).to_owned()))
        })
        .collect();
    Some(Described { leader, states })
}

/// Polls `describe` on `addr` until `done` holds, up to the deadline.
#[track_caller]
fn wait_for(addr: &str, what: &str, done: impl Fn(&Described) -> bool) -> Described {
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(described) = describe(addr) {
            if done(&described) {
                return described;
            }
            last = Some(described);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {what} within {DEADLINE:?}; last seen: {last:?}");
}

/// A cluster started with `config`, once its controller leader has the three nodes alive; with that leader.
fn formed_cluster(config: &str) -> (Cluster, u64) {
    let cluster = Cluster::start(config);
    let formed =
        wait_for(cluster.addr(1), "controller leader with 3 alive nodes", |d| d.leader.is_some() && d.all_alive());
    (cluster, formed.leader.expect("a leader"))
}

/// Restarts node `node_id` with the broker's default logging (no RUST_LOG) written to `<cluster dir>/d<id>.log`.
fn restart_logging_by_default(cluster: &mut Cluster, node_id: u64) -> std::path::PathBuf {
    cluster.nodes[node_id as usize - 1].take().expect("running").kill();
    let log = cluster.dir.path().join(format!("d{node_id}.log"));
    let args = cluster.args(node_id);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = eventually("the node restarted on its port", || {
        let file = std::fs::File::create(&log).expect("create log file");
        let mut command = Command::new(RILL);
        command.env_remove("RUST_LOG").stderr(file);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| BrokerProcess::start_command(command, &args))).ok()
    });
    cluster.nodes[node_id as usize - 1] = Some(node);
    log
}

fn log_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log).expect("read log").lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn a_peer_that_stops_answering_is_logged_once_by_default_and_again_when_it_answers() {
    let (mut cluster, _) = formed_cluster(FAST_SESSIONS);
    let logs: Vec<_> = (1..=3).map(|id| restart_logging_by_default(&mut cluster, id)).collect();
    let leader =
        wait_for(cluster.addr(1), "a controller leader with 3 alive nodes", |d| d.leader.is_some() && d.all_alive())
            .leader
            .expect("a leader");
    let (leader_log, down) = (&logs[leader as usize - 1], if leader == 3 { 2 } else { 3 });
    eventually("the leader's election logged", || {
        (log_lines(leader_log, "controller leader elected") > 0).then_some(())
    });

    // Settled: the rolling restart's own flaps are logged before this point.
    std::thread::sleep(Duration::from_millis(500));
    let before = std::fs::read_to_string(leader_log).expect("read log").lines().count();
    cluster.nodes[down as usize - 1].take().expect("running").kill();
    // The leader sends it heartbeats every 100 ms and openraft retries every 500 ms: a line per failed call
    // would be a dozen or more by now.
    std::thread::sleep(Duration::from_secs(3));
    let unreachable = format!("node_id={down}");
    let text = std::fs::read_to_string(leader_log).expect("read log");
    let since_kill: Vec<&str> = text.lines().skip(before).collect();
    let peer_lines: Vec<&&str> = since_kill.iter().filter(|l| l.contains("controller peer")).collect();
    assert_eq!(peer_lines.len(), 1, "one line for the peer that went down: {since_kill:#?}");
    assert!(peer_lines[0].contains("cannot reach a controller peer") && peer_lines[0].contains(&unreachable), "{text}");
    assert!(!text.contains("openraft"), "openraft's own lines are off by default: {text}");
    assert!(!text.contains('\x1b'), "no terminal colours in a file: {text}");

    let answered_before = log_lines(leader_log, "a controller peer answers again");
    cluster.nodes[down as usize - 1] = Some(cluster.start_node(down));
    eventually("the peer logged back", || {
        (log_lines(leader_log, "a controller peer answers again") > answered_before).then_some(())
    });
}

#[test]
fn a_killed_controller_leader_is_replaced_and_fenced_until_it_restarts() {
    let (mut cluster, old_leader) = formed_cluster(FAST_SESSIONS);
    let survivor = if old_leader == 1 { 2 } else { 1 };

    cluster.nodes[old_leader as usize - 1].take().expect("running").kill();
    let after = wait_for(cluster.addr(survivor), "new leader with the old one fenced", |d| {
        d.leader.is_some_and(|l| l != old_leader) && d.state_of(old_leader) == Some("fenced")
    });
    assert_eq!(after.states.iter().filter(|(_, s)| s == "alive").count(), 2, "{after:?}");

    cluster.nodes[old_leader as usize - 1] = Some(cluster.start_node(old_leader));
    wait_for(cluster.addr(old_leader), "the restarted node alive again", |d| d.leader.is_some() && d.all_alive());
}

/// Heartbeats every 100 ms and sessions far beyond the tests' deadline: a node fenced within it was fenced by the
/// liveness probe, not by its session.
const LONG_SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 120000\n";

#[test]
fn a_killed_node_is_fenced_once_its_port_refuses_and_a_frozen_one_keeps_its_session() {
    let (mut cluster, leader) = formed_cluster(LONG_SESSIONS);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (frozen, killed) = (others[0], others[1]);

    // Frozen for twenty heartbeats: its kernel still accepts the probe's connections, so nothing says the
    // process is gone, and it keeps its session.
    let frozen_child = &cluster.nodes[frozen as usize - 1].as_ref().expect("running").child;
    signal(frozen_child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(2));
    let during = describe(cluster.addr(leader));
    signal(frozen_child, libc::SIGCONT);
    let during = during.expect("the controller leader describes the cluster");
    assert_eq!(during.state_of(frozen), Some("alive"), "a frozen node was fenced before its session ended: {during:?}");

    // Killed: its port refuses, and it is fenced within the deadline (30 s), long before its 120 s session.
    cluster.nodes[killed as usize - 1].take().expect("running").kill();
    let after = wait_for(cluster.addr(leader), "the killed node fenced", |d| d.state_of(killed) == Some("fenced"));
    assert_eq!(after.state_of(frozen), Some("alive"), "{after:?}");

    // Restarted, it is alive again at once: the dead process's session does not hold the id.
    cluster.nodes[killed as usize - 1] = Some(cluster.start_node(killed));
    wait_for(cluster.addr(leader), "the restarted node alive again", |d| d.all_alive());
}

/// `rill_controller_elections_called_total` summed over `nodes`' scrapes.
fn elections_called(cluster: &Cluster, nodes: &[u64]) -> f64 {
    let scrapes = nodes.iter().map(|id| scrape(cluster.admin(*id)).expect("the node's /metrics answers"));
    scrapes.map(|samples| samples.get("rill_controller_elections_called_total").copied().unwrap_or(0.0)).sum()
}

#[test]
fn a_dead_controller_leaders_survivors_call_an_election_and_a_frozen_ones_do_not() {
    // With 120 s sessions raft's lease is 3 s and its own election timeout 2-3 s more.
    let (mut cluster, leader) = formed_cluster(LONG_SESSIONS);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();

    // Frozen past the lease: its port still accepts, so nothing says it is gone, and nobody calls an election.
    let leader_child = &cluster.nodes[leader as usize - 1].as_ref().expect("running").child;
    signal(leader_child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(3_500));
    let called_while_frozen = elections_called(&cluster, &survivors);
    signal(leader_child, libc::SIGCONT);
    assert_eq!(called_while_frozen, 0.0, "an election was called on a frozen leader");
    let thawed = wait_for(cluster.addr(survivors[0]), "the thawed leader still leading", |d| d.all_alive());
    assert_eq!(thawed.leader, Some(leader), "{thawed:?}");

    // Killed: its port refuses, and the survivors call the election themselves once the lease is over.
    cluster.nodes[leader as usize - 1].take().expect("running").kill();
    let after = wait_for(cluster.addr(survivors[0]), "a new leader with the old one fenced", |d| {
        d.leader.is_some_and(|l| l != leader) && d.state_of(leader) == Some("fenced")
    });
    assert!(survivors.contains(&after.leader.expect("a leader")), "{after:?}");
    let called = elections_called(&cluster, &survivors);
    assert!(called >= 1.0, "the survivors called no election: raft's own timer elected the new leader");
}

/// `node`'s `rill_controller_fences_total` for `cause`.
fn fences(cluster: &Cluster, node: u64, cause: &str) -> f64 {
    let samples = scrape(cluster.admin(node)).expect("the node's /metrics answers");
    samples.get(&format!(r#"rill_controller_fences_total{{cause="{cause}"}}"#)).copied().unwrap_or(0.0)
}

/// A cluster started with `config` and its topic `orders` of 3 partitions, RF 3, every ISR whole; with the
/// controller leader, and a node other than it that leads a partition.
fn partition_leader_of_rf3_topic(config: &str) -> (Cluster, u64, u64) {
    let (cluster, controller) = formed_cluster(config);
    let create = ["topic", "create", "orders", "--partitions", "3", "--replication-factor", "3"];
    eventually("the topic created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let rows = wait_for_topic(cluster.addr(controller), "orders", 3, "every partition led, ISR of 3", |rows| {
        rows.iter().all(|row| row.leader.is_some() && row.isr.len() == 3)
    });
    let leader = rows
        .iter()
        .filter_map(|row| row.leader)
        .find(|leader| *leader != controller)
        .expect("a partition led by a node other than the controller leader");
    (cluster, controller, leader)
}

#[test]
fn a_killed_partition_leader_is_fenced_as_soon_as_a_replication_stream_from_it_breaks() {
    // Default heartbeats (the probe of an overdue one starts 375 ms after the last) and sessions past the deadline.
    // Every node follows the partitions the others lead, the controller leader too, each over a stream.
    let (mut cluster, controller, victim) = partition_leader_of_rf3_topic("node_session_timeout_ms = 120000\n");

    cluster.nodes[victim as usize - 1].take().expect("running").kill();
    wait_for(cluster.addr(controller), "the killed leader fenced", |d| d.state_of(victim) == Some("fenced"));
    assert_eq!(fences(&cluster, controller, "stream-broken"), 1.0, "found by its broken stream, not its heartbeat");
    assert_eq!(fences(&cluster, controller, "heartbeat-overdue"), 0.0);
    assert_eq!(fences(&cluster, controller, "session-expired"), 0.0);
}

#[test]
fn a_node_whose_stream_from_a_killed_leader_breaks_names_it_to_the_controller_leader() {
    let (mut cluster, controller) = formed_cluster("node_session_timeout_ms = 120000\n");
    let others: Vec<u64> = (1..=3).filter(|id| *id != controller).collect();
    let (victim, follower) = (others[0], others[1]);
    // Two copies, neither on the controller leader: only the follower streams from the victim.
    let create = ["topic", "create", "orders", "--partitions", "1", "--replication-factor", "2"];
    eventually("the topic created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let replicas = format!("{victim},{follower}");
    let reassign = ["topic", "reassign", "orders", "--partition", "0", "--replicas", &replicas];
    eventually("the partition moved", || rill(&cluster.all(), &reassign).status.success().then_some(()));
    eventually("the victim leading, the follower in sync", || {
        let rows = wait_for_topic(cluster.addr(controller), "orders", 1, "the partition described", |_| true);
        let row = &rows[0];
        if row.leader != Some(victim) {
            rill(&cluster.all(), &["cluster", "elect-leaders"]);
        }
        let mut isr = row.isr.clone();
        isr.sort_unstable();
        let mut expected = vec![victim, follower];
        expected.sort_unstable();
        (row.leader == Some(victim) && row.replicas == [victim, follower] && isr == expected).then_some(())
    });

    cluster.nodes[victim as usize - 1].take().expect("running").kill();
    wait_for(cluster.addr(controller), "the killed leader fenced", |d| d.state_of(victim) == Some("fenced"));
    assert_eq!(fences(&cluster, controller, "stream-broken"), 1.0, "named by the follower, not found overdue");
    assert_eq!(fences(&cluster, controller, "heartbeat-overdue"), 0.0);
}

#[test]
fn a_node_stopped_gracefully_hands_its_leaderships_over_before_it_exits() {
    // Nothing else would find it gone within the test: no probe, and sessions past the deadline.
    let config = "node_session_timeout_ms = 120000\nnode_liveness_probe = false\n";
    let (mut cluster, controller, stopped) = partition_leader_of_rf3_topic(config);

    let status = cluster.nodes[stopped as usize - 1].take().expect("running").interrupt();
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    // Already done when the process has exited: read once, not waited for.
    let described = describe(cluster.addr(controller)).expect("the controller leader describes the cluster");
    assert_eq!(described.state_of(stopped), Some("fenced"), "{described:?}");
    let rows = common::cluster::describe_topic(cluster.addr(controller), "orders", 3).expect("the topic described");
    for row in &rows {
        assert!(row.leader.is_some() && row.leader != Some(stopped), "a leadership left behind: {rows:?}");
        assert!(!row.isr.contains(&stopped), "still counted in sync: {rows:?}");
    }
    // Acks-all produces go on with the other two at once.
    let produced = common::rill_with_stdin(&cluster.all(), &["produce", "orders", "--acks", "all"], b"after\n");
    assert!(produced.status.success(), "{produced:?}");
}

#[test]
fn a_call_forwarded_to_a_frozen_controller_leader_ends_once_another_node_leads() {
    let (cluster, frozen) = formed_cluster(FAST_SESSIONS);
    let follower = if frozen == 1 { 2 } else { 1 };
    // Frozen, not killed: its connections stay open and its port still accepts, so a call forwarded to it waits
    // for an answer that never comes.
    signal(&cluster.nodes[frozen as usize - 1].as_ref().expect("running").child, libc::SIGSTOP);
    // The follower still takes the frozen node for the leader and forwards the call there. It must end once the
    // other two have elected a leader (about a second), not at the call's own timeout (30 s).
    let started = Instant::now();
    let first = rill(cluster.addr(follower), &["cluster", "elect-leaders"]);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "the forwarded call waited {waited:?}: {first:?}");
    if !first.status.success() {
        assert!(first.stderr.contains("stopped leading") || first.stderr.contains("controller"), "{first:?}");
    }
    // And a call made again reaches the new leader.
    let moved = eventually("elect-leaders through the new leader", || {
        let output = rill(cluster.addr(follower), &["cluster", "elect-leaders"]);
        output.status.success().then_some(output.stdout)
    });
    assert!(moved.contains("leadership(s) moved"), "{moved}");
    signal(&cluster.nodes[frozen as usize - 1].as_ref().expect("running").child, libc::SIGCONT);
}

#[test]
fn a_controller_leader_cut_off_from_its_quorum_says_so_until_a_majority_is_back() {
    let (mut cluster, leader) = formed_cluster(FAST_SESSIONS);
    let quorum_line = |addr: &str| {
        let output = rill(addr, &["cluster", "describe"]);
        output.status.success().then(|| output.stdout.lines().find(|l| l.starts_with("quorum:")).map(str::to_owned))
    };
    assert_eq!(quorum_line(cluster.addr(leader)), Some(None), "a formed quorum has no warning");
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &others {
        cluster.nodes[*id as usize - 1].take().expect("running").kill();
    }
    // The leader still answers as leader (nothing can depose it), with the nodes' last committed states.
    let lost = eventually("the quorum reported lost", || quorum_line(cluster.addr(leader)).flatten());
    assert!(lost.contains("LOST") && lost.contains("by a majority of the voters"), "{lost}");
    // And the console's overview, on the same node.
    let (status, _, page) = common::console::admin_http(cluster.admin(leader), "GET", "/", "", "");
    assert!(status == 200 && page.contains("id=\"quorum-lost\"") && page.contains("Controller quorum lost"), "{page}");
    cluster.nodes[others[0] as usize - 1] = Some(cluster.start_node(others[0]));
    eventually("the quorum back", || quorum_line(cluster.addr(leader))?.is_none().then_some(()));
}

#[test]
fn a_single_node_describes_itself_without_a_quorum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path());
    let output = rill(&broker.addr, &["cluster", "describe"]);
    let stdout = output.ok();
    assert!(stdout.starts_with("no controller quorum (single node)\n"), "{stdout}");
    assert!(stdout.contains(&broker.addr) && stdout.contains("alive"), "{stdout}");
    assert!(!dir.path().join("cluster.toml").exists(), "a single node records no cluster identity");
}

/// Runs `rill broker ARGS` to its exit (logs off: stderr is then just the `error:` line).
fn rill_broker(args: &[String]) -> common::Output {
    run(Command::new(RILL).args(args).env("RUST_LOG", "off").env("RILL_ADMIN_LISTEN", "127.0.0.1:0"), None)
}

/// Starts node 1 of a three-node peers list once (recording its identity), then stops it.
fn record_identity(dir: &Path, listen: &str, peers: &str) {
    let args = broker_args(1, listen, &dir.join("d1"), peers, None);
    BrokerProcess::start_command(Command::new(RILL), &args.iter().map(String::as_str).collect::<Vec<_>>()).kill();
}

#[test]
fn a_topic_created_before_the_cluster_forms_is_refused_as_a_wait_not_a_bad_replication_factor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@{},3@{}", dead_address(), dead_address());
    let args = broker_args(1, &listen, &dir.path().join("d1"), &peers, None);
    let _lone = BrokerProcess::start_command(Command::new(RILL), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let output = rill(&listen, &["topic", "create", "early", "--replication-factor", "1"]);
    let stderr = output.fails(1, "the cluster is still forming").to_owned();
    assert!(stderr.contains("controller is unavailable") && !stderr.contains("replication_factor"), "{stderr}");
}

#[test]
fn a_data_dir_restarted_as_another_node_id_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    record_identity(dir.path(), &listen, &peers);
    let peers_as_2 = format!("1@127.0.0.1:3,2@{listen},3@127.0.0.1:2");
    let output = rill_broker(&broker_args(2, &listen, &dir.path().join("d1"), &peers_as_2, None));
    output.fails(1, "belongs to node 1 of its cluster, but this node was started with node id 2");
}

#[test]
fn a_data_dir_restarted_with_other_peers_is_refused_naming_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    record_identity(dir.path(), &listen, &peers);
    let other = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:9");
    let stderr = rill_broker(&broker_args(1, &listen, &dir.path().join("d1"), &other, None))
        .fails(1, "start every node with the peers its cluster was formed with, or its current members")
        .to_owned();
    assert!(stderr.contains("3@127.0.0.1:2") && stderr.contains("3@127.0.0.1:9"), "{stderr}");
}

#[test]
fn a_cluster_data_dir_started_without_peers_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    record_identity(dir.path(), &listen, &peers);
    let data_dir = dir.path().join("d1").to_string_lossy().into_owned();
    let args = ["broker", "--listen", &listen, "--data-dir", &data_dir].map(str::to_owned);
    rill_broker(&args).fails(1, &format!("start it with --node-id 1 --peers {peers}"));
}

#[test]
fn a_single_nodes_data_dir_with_topics_is_refused_as_a_cluster_nodes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("d1");
    let single = BrokerProcess::start(&data_dir);
    rill(&single.addr, &["topic", "create", "orders"]).ok();
    rill(&single.addr, &["produce", "orders", "--value", "kept"]).ok();
    single.kill();

    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    rill_broker(&broker_args(1, &listen, &data_dir, &peers, None))
        .fails(1, "holds the topics of a single node (orders), which a cluster node would neither serve nor keep");
    let joining = ["broker", "--node-id", "4", "--listen", &listen, "--join", "127.0.0.1:1"].map(str::to_owned);
    let mut joining = joining.to_vec();
    joining.extend(["--data-dir".to_owned(), data_dir.to_string_lossy().into_owned()]);
    rill_broker(&joining).fails(1, "holds the topics of a single node (orders)");

    // Refused before anything was written: the single node starts again with its records.
    let single = BrokerProcess::start(&data_dir);
    assert_eq!(rill(&single.addr, &["consume", "orders"]).ok(), "kept\n");
}

#[test]
fn a_peers_list_with_a_duplicate_node_id_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},1@127.0.0.1:1,3@127.0.0.1:2");
    rill_broker(&broker_args(1, &listen, &dir.path().join("d1"), &peers, None))
        .fails(1, "invalid setting peers: node id 1 is listed twice");
}

#[test]
fn a_node_id_missing_from_the_peers_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    rill_broker(&broker_args(4, &listen, &dir.path().join("d1"), &peers, None))
        .fails(1, "invalid setting node_id: 4 is not among the peers");
}

#[test]
fn a_malformed_peer_is_refused_with_the_form_expected() {
    let output = run(Command::new(RILL).args(["broker", "--node-id", "1", "--peers", "1@localhost"]), None);
    output.fails(2, "has no :PORT");
}

#[test]
fn a_second_process_with_a_running_node_id_stops_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    let args = broker_args(1, &listen, &dir.path().join("d1"), &peers, None);
    let _running =
        BrokerProcess::start_command(Command::new(RILL), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let impostor = rill_broker(&broker_args(1, &dead_address(), &dir.path().join("other"), &peers, None));
    impostor.fails(1, &format!("node id 1 is already running: another process answers at its address {listen}"));
}

#[test]
fn a_node_whose_peers_disagree_with_a_running_peer_stops_naming_both_lists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (dead_address(), dead_address());
    let peers = format!("1@{first},2@{second},3@127.0.0.1:2");
    let args = broker_args(1, &first, &dir.path().join("d1"), &peers, None);
    let _running =
        BrokerProcess::start_command(Command::new(RILL), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let other = format!("1@{first},2@{second},3@127.0.0.1:9");
    let stderr = rill_broker(&broker_args(2, &second, &dir.path().join("d2"), &other, None))
        .fails(1, "every node needs the same peers")
        .to_owned();
    assert!(stderr.contains("3@127.0.0.1:2") && stderr.contains("3@127.0.0.1:9"), "{stderr}");
}

/// Polls until `data_dir/cluster.toml` records a cluster id, and returns it.
#[track_caller]
fn recorded_cluster_id(data_dir: &Path) -> String {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(data_dir.join("cluster.toml")).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with("cluster_id")) {
            return line.split('"').nth(1).expect("quoted cluster id").to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} recorded no cluster id within {DEADLINE:?}", data_dir.display());
}

#[test]
fn a_data_dir_of_another_cluster_is_refused_as_it_joins_naming_both_clusters() {
    // Cluster A forms and every node records its id; then all of it stops.
    let mut first = Cluster::start(FAST_SESSIONS);
    let cluster_a = recorded_cluster_id(&first.data_dir(3));
    let (addrs, peers) = (first.addrs.clone(), first.peers.clone());
    let node_3_of_a = first.data_dir(3);
    first.nodes.clear(); // SIGKILLs them

    // Cluster B forms on the same addresses from fresh data dirs, with two of its three nodes.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("rill.toml");
    std::fs::write(&config, FAST_SESSIONS).expect("write config");
    let _b: Vec<BrokerProcess> = (1..=2)
        .map(|node_id| {
            let args = broker_args(
                node_id,
                &addrs[node_id as usize - 1],
                &dir.path().join(format!("b{node_id}")),
                &peers,
                Some(&config),
            );
            BrokerProcess::start_command(Command::new(RILL), &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .collect();
    let cluster_b = recorded_cluster_id(&dir.path().join("b1"));
    assert_ne!(cluster_a, cluster_b);

    let stderr = rill_broker(&broker_args(3, &addrs[2], &node_3_of_a, &peers, Some(&config)))
        .fails(1, "use a fresh data dir for this node")
        .to_owned();
    assert!(stderr.contains(&cluster_a) && stderr.contains(&cluster_b), "{stderr}");
}
