//! A throttled replica move on real `rill broker` processes (`broker/src/replication/throttle.rs`): while a
//! partition of about 2 MB is copied to a new replica under a throttle of 256 KiB/s, the bytes the new replica
//! holds stay under `rate × elapsed + one burst + one batch` (an upper bound on progress, not a timing target);
//! clearing the throttle lets the move finish; every record stays readable and the two replicas end byte for
//! byte the same. Bad rates are refused with a message and a non-zero exit.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{wait_for_topic, Cluster, PartitionRow};
use common::{eventually, rill, rill_with_stdin, RILL};

const SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 10000\n";
const RECORDS: usize = 2000;
const VALUE_BYTES: usize = 1000;
const RECORDS_PER_PRODUCE: usize = 50;
const THROTTLE_BYTES_PER_SEC: u64 = 256 << 10;
/// What the leader's bucket holds at most at this rate: 250 ms of it (`throttle.rs`'s BURST).
const BURST_BYTES: u64 = THROTTLE_BYTES_PER_SEC / 4;
/// How long the throttled copy is watched before the throttle is cleared.
const WATCHED: Duration = Duration::from_secs(3);

fn moves(cluster: &Cluster, via: u64) -> PartitionRow {
    wait_for_topic(cluster.addr(via), "moves", 1, "moves described", |_| true).remove(0)
}

/// The node's `moves-0` segment files, by name, in order.
fn segments(cluster: &Cluster, node: u64) -> Vec<PathBuf> {
    let dir = cluster.data_dir(node).join("moves-0");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

/// The sizes of the whole record batches (Kafka's v2 layout: a batch is its length field at byte 8, plus 12)
/// at the start of `path`, stopping at a torn or unwritten (zero) tail, so preallocated files count right.
fn batch_sizes(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut sizes = Vec::new();
    let mut at = 0usize;
    while at + 12 <= bytes.len() {
        let length = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        if length == 0 || at + 12 + length > bytes.len() {
            break;
        }
        sizes.push(12 + length as u64);
        at += 12 + length;
    }
    sizes
}

/// Bytes of whole batches the node holds of `moves-0`.
fn copied_bytes(cluster: &Cluster, node: u64) -> u64 {
    segments(cluster, node).iter().flat_map(|p| batch_sizes(p)).sum()
}

fn describe_cluster(cluster: &Cluster, via: u64) -> String {
    rill(cluster.addr(via), &["cluster", "describe"]).ok().to_owned()
}

#[test]
fn a_throttled_move_copies_no_faster_than_the_rate_and_finishes_once_the_throttle_is_cleared() {
    let cluster = Cluster::start(SESSIONS);
    let create = ["topic", "create", "moves", "--partitions", "1", "--replication-factor", "1"];
    eventually("moves created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let leader = eventually("moves led", || moves(&cluster, 1).leader);
    let new_replica = (1..=3).find(|id| *id != leader).expect("another node");

    // About 2 MB, acknowledged by the one replica, in batches of about 50 KB (one `rill produce` each, whose
    // batches hold at most what it was given): a read may end one batch past the bucket's allowance, so small
    // batches keep the bound below tight.
    let records: Vec<String> = (0..RECORDS).map(|i| format!("{i:06}-{}", "x".repeat(VALUE_BYTES - 7))).collect();
    let produce = ["produce", "moves", "--partition", "0", "--acks", "all"];
    for chunk in records.chunks(RECORDS_PER_PRODUCE) {
        let input: String = chunk.iter().map(|r| format!("{r}\n")).collect();
        rill_with_stdin(cluster.addr(leader), &produce, input.as_bytes()).ok();
    }
    let total: u64 = copied_bytes(&cluster, leader);
    let largest_batch = segments(&cluster, leader).iter().flat_map(|p| batch_sizes(p)).max().expect("batches");
    assert!(total > (RECORDS * VALUE_BYTES) as u64, "{total} bytes on the leader");
    assert!(largest_batch <= (RECORDS_PER_PRODUCE * (VALUE_BYTES + 100)) as u64, "largest batch {largest_batch}");

    // Bad rates: refused before anything changes, saying what is allowed, with a non-zero exit.
    for (rate, says) in [("0", "0 would stop every move"), ("-5", "is negative"), ("lots", "is not a number")] {
        let refused = rill(cluster.addr(1), &["cluster", "throttle", "set", rate]);
        assert!(!refused.status.success() && refused.stderr.contains(says), "{rate}: {refused:?}");
    }
    let too_low = rill(cluster.addr(2), &["cluster", "throttle", "set", "100"]);
    too_low.fails(1, "least allowed is 1024 bytes/s");
    let too_high = rill(cluster.addr(2), &["cluster", "throttle", "set", "2048G"]);
    too_high.fails(1, "most allowed is 1099511627776 bytes/s");
    assert!(describe_cluster(&cluster, 3).contains("move throttle:      none"), "nothing was set");

    // The move, throttled: the reassign sets the throttle, then waits for the move to finish.
    let started = Instant::now();
    let target = format!("{leader},{new_replica}");
    let throttle = THROTTLE_BYTES_PER_SEC.to_string();
    let mut reassign = Command::new(RILL)
        .args(["topic", "reassign", "moves", "--partition", "0", "--replicas", &target, "--throttle", &throttle])
        .env("RILL_BROKER", cluster.addr(new_replica))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill topic reassign");
    let mut most_copied = 0;
    while started.elapsed() < WATCHED {
        let copied = copied_bytes(&cluster, new_replica);
        let elapsed = started.elapsed().as_secs_f64();
        let bound = THROTTLE_BYTES_PER_SEC as f64 * elapsed + (BURST_BYTES + largest_batch) as f64;
        assert!(
            copied as f64 <= bound,
            "node {new_replica} holds {copied} bytes after {elapsed:.2} s at {THROTTLE_BYTES_PER_SEC} bytes/s (bound \
             {bound:.0}, largest batch {largest_batch})"
        );
        most_copied = most_copied.max(copied);
        std::thread::sleep(Duration::from_millis(100));
    }
    let watched = started.elapsed().as_secs_f64();
    eprintln!(
        "throttled copy: {most_copied} of {total} bytes in {watched:.2} s at {THROTTLE_BYTES_PER_SEC} bytes/s \
         (largest batch {largest_batch})"
    );
    if most_copied == 0 {
        let _ = reassign.kill();
        let output = reassign.wait_with_output().expect("reassign output");
        let topic = rill(cluster.addr(1), &["topic", "describe", "moves"]);
        panic!("the throttled move copied nothing: reassign {output:?}; topic {topic:?}");
    }
    assert!(most_copied < total, "the move is still copying: {most_copied} of {total} bytes");
    // Every node shows the throttle in force, and the topic shows the move under it.
    for node in 1..=3 {
        let described = describe_cluster(&cluster, node);
        assert!(described.contains(&format!("move throttle:      {THROTTLE_BYTES_PER_SEC} bytes/s")), "{described}");
    }
    let topic = rill(cluster.addr(1), &["topic", "describe", "moves"]).ok().to_owned();
    assert!(topic.contains(&format!("partition 0 is moving onto {target}")), "{topic}");
    assert!(topic.contains(&format!("move throttle: {THROTTLE_BYTES_PER_SEC} bytes/s")), "{topic}");

    // Cleared while the move runs: it finishes at full speed.
    let cleared = rill(cluster.addr(leader), &["cluster", "throttle", "clear"]).ok().to_owned();
    assert!(cleared.contains(&format!("cleared (was {THROTTLE_BYTES_PER_SEC} bytes/s)")), "{cleared}");
    let status = common::wait_with_deadline(&mut reassign);
    assert!(status.success(), "the reassign finishes once the throttle is cleared");
    let row = wait_for_topic(cluster.addr(1), "moves", 1, "moves on both replicas", |rows| {
        rows[0].replicas == [leader, new_replica] && rows[0].isr.len() == 2
    })
    .remove(0);
    assert_eq!(row.high_watermark, RECORDS as i64);
    assert!(describe_cluster(&cluster, 2).contains("move throttle:      none"));

    // Every record readable, and both copies byte for byte the same.
    let consumed = rill(cluster.addr(leader), &["consume", "moves", "--partition", "0", "--from-beginning"]);
    assert_eq!(consumed.ok().lines().collect::<Vec<_>>(), records, "every record once, in order");
    let (on_leader, on_new) = (segments(&cluster, leader), segments(&cluster, new_replica));
    let names = |paths: &[PathBuf]| paths.iter().map(|p| p.file_name().map(|n| n.to_owned())).collect::<Vec<_>>();
    assert_eq!(names(&on_leader), names(&on_new), "the same segments");
    for (a, b) in on_leader.iter().zip(&on_new) {
        let (a_sizes, b_sizes) = (batch_sizes(a), batch_sizes(b));
        assert_eq!(a_sizes, b_sizes, "the same batches in {a:?} and {b:?}");
        let length: u64 = a_sizes.iter().sum();
        let read = |p: &Path| std::fs::read(p).expect("segment").into_iter().take(length as usize).collect::<Vec<_>>();
        assert!(read(a) == read(b), "{a:?} and {b:?} differ");
    }
}

/// Kafka's `follower.replication.throttled.replicas` (`rill topic alter --config`): a replica that restarts
/// behind, not being added by any move, catches up at full speed unless the topic's list names it; named, it
/// copies no faster than the cluster's throttle, and once the list is deleted it catches up and rejoins the ISR.
#[test]
fn a_lagging_replica_the_topics_throttled_list_names_catches_up_no_faster_than_the_rate() {
    let config = format!("{SESSIONS}replica_lag_time_max_ms = 1000\n");
    let mut cluster = Cluster::start(&config);
    let create = ["topic", "create", "moves", "--partitions", "1", "--replication-factor", "2"];
    eventually("moves created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let row = eventually("moves led, both in sync", || Some(moves(&cluster, 1)).filter(|row| row.isr.len() == 2));
    let leader = row.leader.expect("a leader");
    let follower = *row.replicas.iter().find(|id| **id != leader).expect("a follower");

    cluster.nodes[follower as usize - 1].take().expect("running").kill();
    eventually("the follower out of the ISR", || Some(moves(&cluster, leader)).filter(|row| row.isr == [leader]));
    let records: Vec<String> = (0..RECORDS).map(|i| format!("{i:06}-{}", "x".repeat(VALUE_BYTES - 7))).collect();
    let produce = ["produce", "moves", "--partition", "0", "--acks", "leader"];
    for chunk in records.chunks(RECORDS_PER_PRODUCE) {
        let input: String = chunk.iter().map(|r| format!("{r}\n")).collect();
        rill_with_stdin(cluster.addr(leader), &produce, input.as_bytes()).ok();
    }
    let total = copied_bytes(&cluster, leader);
    let largest_batch = segments(&cluster, leader).iter().flat_map(|p| batch_sizes(p)).max().expect("batches");
    assert_eq!(copied_bytes(&cluster, follower), 0, "the follower was down while the records came");

    let throttle = THROTTLE_BYTES_PER_SEC.to_string();
    rill(cluster.addr(leader), &["cluster", "throttle", "set", &throttle]).ok();
    let list = format!("follower.replication.throttled.replicas=0:{follower}");
    rill(cluster.addr(leader), &["topic", "alter", "moves", "--config", &list]).ok();
    let described = rill(cluster.addr(leader), &["topic", "describe", "moves"]).ok().to_owned();
    let shown = described.lines().find(|line| line.contains("follower_throttled_replicas"));
    assert!(shown.is_some_and(|line| line.ends_with(&format!("0:{follower}"))), "{described}");

    let started = Instant::now();
    cluster.nodes[follower as usize - 1] = Some(cluster.start_node(follower));
    let mut most_copied = 0;
    while started.elapsed() < WATCHED {
        let copied = copied_bytes(&cluster, follower);
        let elapsed = started.elapsed().as_secs_f64();
        let bound = THROTTLE_BYTES_PER_SEC as f64 * elapsed + (BURST_BYTES + largest_batch) as f64;
        assert!(copied as f64 <= bound, "node {follower} holds {copied} bytes after {elapsed:.2} s (bound {bound:.0})");
        most_copied = most_copied.max(copied);
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("throttled catch-up: {most_copied} of {total} bytes in {:.2} s", started.elapsed().as_secs_f64());
    assert!(most_copied > 0, "the restarted follower copied nothing");
    assert!(most_copied < total, "the catch-up is still throttled: {most_copied} of {total} bytes");

    // The list deleted: the follower catches up at full speed, and both copies hold every record.
    rill(
        cluster.addr(leader),
        &["topic", "alter", "moves", "--delete-config", "follower.replication.throttled.replicas"],
    )
    .ok();
    let row =
        wait_for_topic(cluster.addr(leader), "moves", 1, "the follower back in sync", |rows| rows[0].isr.len() == 2)
            .remove(0);
    assert_eq!(row.high_watermark, RECORDS as i64);
    assert_eq!(copied_bytes(&cluster, follower), total);
    rill(cluster.addr(leader), &["cluster", "throttle", "clear"]).ok();
}
