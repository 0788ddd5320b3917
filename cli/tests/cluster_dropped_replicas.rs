//! A node deletes its copy of a partition once the committed metadata no longer places a replica of it there
//! (`broker/src/replication/dropped_replicas.rs`), on real `rill broker` processes: after a completed move off
//! node 3, after a cancelled move's added replica; and a partition moved back onto node 3 copies every record
//! again from the start.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::cluster::{wait_for_topic, Cluster, PartitionRow};
use common::{eventually, rill, rill_with_stdin, signal, RILL};

/// Sessions long enough that a stopped node stays alive in the metadata (a move onto it, or from it, stays
/// under way rather than being undone by fencing).
const LONG_SESSIONS: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 60000\nreplica_lag_time_max_ms = 1500\n";
const RECORDS: usize = 300;

fn create_moves(cluster: &Cluster) {
    let create = ["topic", "create", "moves", "--partitions", "1", "--replication-factor", "1"];
    // The cluster forms first: a create before a controller leader is elected is refused, and retried.
    eventually("moves created", || rill(&cluster.all(), &create).status.success().then_some(()));
}

#[track_caller]
fn wait_for_moves(cluster: &Cluster, via: u64, what: &str, done: impl Fn(&PartitionRow) -> bool) -> PartitionRow {
    wait_for_topic(cluster.addr(via), "moves", 1, what, |rows| done(&rows[0])).remove(0)
}

/// Node `node`'s directory of partition 0 of `moves`.
fn partition_dir(cluster: &Cluster, node: u64) -> PathBuf {
    cluster.data_dir(node).join("moves-0")
}

fn reassign(cluster: &Cluster, via: u64, replicas: &str) -> String {
    let args = ["topic", "reassign", "moves", "--partition", "0", "--replicas", replicas];
    rill(cluster.addr(via), &args).ok().to_owned()
}

#[track_caller]
fn assert_every_record_read_once(cluster: &Cluster, node: u64, records: &[String]) {
    let consumed = rill(cluster.addr(node), &["consume", "moves", "--partition", "0", "--from-beginning"]);
    let read: Vec<&str> = consumed.ok().lines().collect();
    assert_eq!(read, records, "every acks-all record once, in order, from node {node}");
}

fn controller_leader(cluster: &Cluster) -> u64 {
    eventually("a controller leader", || {
        let described = rill(&cluster.all(), &["cluster", "describe"]);
        let stdout = &described.stdout;
        let is_all_alive = (1..=3).all(|id: u64| {
            stdout.lines().any(|line| {
                let cells: Vec<&str> = line.split_whitespace().collect();
                cells.first() == Some(&id.to_string().as_str()) && cells.get(2) == Some(&"alive")
            })
        });
        let leader = stdout.lines().find_map(|l| l.strip_prefix("controller leader:"))?.trim().parse().ok()?;
        is_all_alive.then_some(leader)
    })
}

#[test]
fn replicas_moved_or_cancelled_off_a_node_are_deleted_there_and_a_move_back_copies_everything_again() {
    let cluster = Cluster::start(LONG_SESSIONS);
    let controller = controller_leader(&cluster);
    create_moves(&cluster);
    let row = wait_for_moves(&cluster, 1, "moves placed", |r| r.leader.is_some());
    if row.replicas != [3] {
        reassign(&cluster, 1, "3");
    }
    let records: Vec<String> = (0..RECORDS).map(|i| format!("m-{i}")).collect();
    let input = records.iter().map(|r| format!("{r}\n")).collect::<String>();
    rill_with_stdin(cluster.addr(3), &["produce", "moves", "--acks", "all", "--partition", "0"], input.as_bytes()).ok();
    assert!(partition_dir(&cluster, 3).is_dir(), "node 3 holds moves-0 before the move");

    // A completed move off node 3: its copy goes, the new replica serves every record.
    let moved = reassign(&cluster, 1, "1");
    assert!(moved.contains("reassigned moves/0: replicas 3 -> 1"), "{moved}");
    eventually("node 3's copy of moves-0 deleted", || (!partition_dir(&cluster, 3).exists()).then_some(()));
    wait_for_moves(&cluster, 1, "moves led by node 1 up to its end", |r| {
        r.leader == Some(1) && r.high_watermark == RECORDS as i64
    });
    assert_every_record_read_once(&cluster, 1, &records);

    // Back onto node 3: it copies the partition from offset 0, as a new replica does.
    reassign(&cluster, 1, "3");
    wait_for_moves(&cluster, 3, "moves back on node 3, every record copied", |r| {
        r.replicas == [3] && r.leader == Some(3) && r.high_watermark == RECORDS as i64
    });
    assert_every_record_read_once(&cluster, 3, &records);
    eventually("node 1's copy of moves-0 deleted", || (!partition_dir(&cluster, 1).exists()).then_some(()));

    // A cancelled move: its leader `from` is stopped (not the controller leader, so the quorum still commits),
    // so the replica added on `to` opens its copy but cannot finish the move; the cancel drops it there.
    let from = if controller == 3 {
        let other = if controller == 1 { 2 } else { 1 };
        reassign(&cluster, 1, &other.to_string());
        other
    } else {
        3
    };
    wait_for_moves(&cluster, controller, "moves on a node that is not the controller leader", |r| {
        r.replicas == [from] && r.leader == Some(from)
    });
    let to = (1..=3).find(|id| *id != from).expect("another node");
    let from_process = &cluster.nodes[from as usize - 1].as_ref().expect("running").child;
    signal(from_process, libc::SIGSTOP);
    let mut waiting = Command::new(RILL)
        .args(["topic", "reassign", "moves", "--partition", "0", "--replicas", &format!("{from},{to}")])
        .env("RILL_BROKER", cluster.addr(controller))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill topic reassign");
    eventually("the added replica's copy opened", || partition_dir(&cluster, to).is_dir().then_some(()));
    let cancelled = rill(cluster.addr(controller), &["topic", "reassign", "moves", "--partition", "0", "--cancel"]);
    let cancelled = cancelled.ok().to_owned();
    eventually("the cancelled replica's copy deleted", || (!partition_dir(&cluster, to).exists()).then_some(()));
    signal(from_process, libc::SIGCONT);
    assert!(
        cancelled.contains(&format!("cancelled the move of moves/0: replicas {from},{to} -> {from}")),
        "{cancelled}"
    );
    let status = common::wait_with_deadline(&mut waiting);
    assert!(!status.success(), "the waiting reassign learns of the cancel");
    wait_for_moves(&cluster, from, "moves on its original replica", |r| r.replicas == [from]);
    assert_every_record_read_once(&cluster, from, &records);
}
