//! The cluster's topic defaults on real `rill broker` processes (`broker/src/topic_defaults.rs`): a
//! `log.retention.bytes` default set through one node while another is killed reaches every replica's log of a
//! topic that does not set the key (the live nodes delete its sealed segments at their next retention pass), and
//! the killed node, restarted, applies it from the metadata it catches up on; a topic that sets its own limit keeps
//! every segment on every node. The topic's metadata file on the restarted node holds the new settings. A
//! `min.insync.replicas` default decides what an acks-all produce needs of each topic that does not set it (at most
//! its replication factor), and its delete gives them back their replication factor's default.

use crate::common;

use common::cluster::{wait_for_topic, Cluster};
use common::{eventually, rill, rill_with_stdin};

const SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                        replica_lag_time_max_ms = 1500\n";

/// Sealed and active segment files of `topic`-0 on `node`.
fn segment_count(cluster: &Cluster, node: u64, topic: &str) -> usize {
    let dir = cluster.data_dir(node).join(format!("{topic}-0"));
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "log")).count()
}

fn create(cluster: &Cluster, topic: &str, extra: &[&str]) {
    create_placed(cluster, topic, 3, extra);
}

fn create_placed(cluster: &Cluster, topic: &str, replicas: usize, extra: &[&str]) {
    let replication_factor = replicas.to_string();
    let mut args = vec!["topic", "create", topic, "--partitions", "1", "--replication-factor", &replication_factor];
    // Tiny segments, so a few records make sealed segments for retention to delete.
    args.extend(["--segment-bytes", "1024", "--max-batch-bytes", "1024"]);
    args.extend(extra);
    eventually("topic created", || rill(&cluster.all(), &args).status.success().then_some(()));
    wait_for_topic(cluster.addr(1), topic, 1, "every replica in sync", |rows| {
        rows.iter().all(|row| row.leader.is_some() && row.isr.len() == replicas)
    });
}

/// `min_insync_replicas` as `rill topic describe` through `node` shows it.
fn min_insync_replicas(cluster: &Cluster, node: u64, topic: &str) -> String {
    let shown = rill(cluster.addr(node), &["topic", "describe", topic]);
    let row = shown.ok().lines().find(|line| line.starts_with("min_insync_replicas")).map(str::to_owned);
    row.and_then(|row| row.split_whitespace().nth(1).map(str::to_owned)).unwrap_or_default()
}

/// One record to `topic` with acks all, given half a second; stderr on refusal.
fn produce_acks_all(cluster: &Cluster, node: u64, topic: &str) -> Result<(), String> {
    let args = ["produce", topic, "--partition", "0", "--acks", "all", "--delivery-timeout-ms", "500"];
    let out = rill_with_stdin(cluster.addr(node), &args, b"x\n");
    if out.status.success() {
        Ok(())
    } else {
        Err(out.stderr.clone())
    }
}

#[test]
fn a_default_reaches_every_replica_and_a_node_down_meanwhile_applies_it_when_it_returns() {
    let mut cluster = Cluster::start(SESSIONS);
    create(&cluster, "follows", &[]);
    create(&cluster, "kept", &["--retention-bytes", "-1"]);
    for topic in ["follows", "kept"] {
        // One produce per record, so each is its own batch and the segments fill one after another.
        for i in 0..20 {
            let value = format!("record-{i:04}-{}\n", "x".repeat(100));
            let args = ["produce", topic, "--partition", "0", "--acks", "all"];
            rill_with_stdin(&cluster.all(), &args, value.as_bytes()).ok();
        }
    }
    for node in 1..=3 {
        eventually("every replica holds the sealed segments", || {
            (segment_count(&cluster, node, "follows") > 2 && segment_count(&cluster, node, "kept") > 2).then_some(())
        });
    }
    let kept_before: Vec<usize> = (1..=3).map(|node| segment_count(&cluster, node, "kept")).collect();

    cluster.nodes[2].take().expect("node 3 runs").kill();
    let set = rill(cluster.addr(1), &["topic", "defaults", "--config", "log.retention.bytes=1"]);
    assert!(set.ok().contains("; 1 topic changed with them"), "kept sets its own: {set:?}");
    for node in [1, 2] {
        eventually("the live replicas delete their sealed segments", || {
            (segment_count(&cluster, node, "follows") == 1).then_some(())
        });
    }
    cluster.nodes[2] = Some(cluster.start_node(3));
    eventually("the returning replica applies the default it missed", || {
        (segment_count(&cluster, 3, "follows") == 1).then_some(())
    });
    let toml = std::fs::read_to_string(cluster.data_dir(3).join("__topics").join("follows.toml")).expect("metadata");
    assert!(toml.contains("retention_bytes = 1"), "{toml}");
    let kept_after: Vec<usize> = (1..=3).map(|node| segment_count(&cluster, node, "kept")).collect();
    assert_eq!(kept_after, kept_before, "a topic that sets its own limit keeps every segment");
    let shown = rill(cluster.addr(3), &["topic", "defaults"]);
    let row = shown.ok().lines().find(|l| l.starts_with("log.retention.bytes")).unwrap_or_default().to_owned();
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["log.retention.bytes", "1", "cluster"], "{row}");
}

#[test]
fn a_min_insync_default_decides_what_acks_all_needs_of_the_topics_that_do_not_set_it() {
    let mut cluster = Cluster::start(SESSIONS);
    create(&cluster, "follows", &[]);
    create(&cluster, "own", &["--min-insync-replicas", "2"]);
    create_placed(&cluster, "pair", 2, &[]);
    let counts = |cluster: &Cluster, node| {
        ["follows", "own", "pair"].map(|topic| min_insync_replicas(cluster, node, topic)).join(" ")
    };
    assert_eq!(counts(&cluster, 1), "2 2 1", "each replication factor's default, or the topic's own");

    let set = ["topic", "defaults", "--config", "min.insync.replicas=3"];
    let dry: Vec<&str> = set.iter().copied().chain(["--dry-run"]).collect();
    assert!(rill(cluster.addr(2), &dry).ok().contains("2 topics would change with them"));
    assert_eq!(counts(&cluster, 1), "2 2 1", "a dry run changes nothing");
    let changed = rill(cluster.addr(2), &set);
    assert!(changed.ok().contains("; 2 topics changed with them"), "follows and pair: {changed:?}");
    let row = changed.ok().lines().find(|l| l.starts_with("min.insync.replicas")).unwrap_or_default().to_owned();
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["min.insync.replicas", "3", "cluster"], "{row}");
    for node in 1..=3 {
        eventually("every node holds the new counts", || (counts(&cluster, node) == "3 2 2").then_some(()));
    }
    create(&cluster, "later", &[]);
    assert_eq!(min_insync_replicas(&cluster, 3, "later"), "3", "a topic created afterwards takes the default");

    // With one node down, acks all needs all three replicas of the topics that follow the default, two of "own".
    let follows = wait_for_topic(cluster.addr(1), "follows", 1, "a leader", |rows| rows[0].leader.is_some());
    let leader = follows[0].leader.expect("a leader");
    let down = (1..=3).find(|node| *node != leader).expect("a follower");
    cluster.nodes[down as usize - 1].take().expect("running").kill();
    for topic in ["follows", "own"] {
        wait_for_topic(cluster.addr(leader), topic, 1, "the ISR shrunk to 2", |rows| rows[0].isr.len() == 2);
    }
    let refused = produce_acks_all(&cluster, leader, "follows").expect_err("3 in sync needed");
    assert!(refused.contains("fewer than its min_insync_replicas of 3"), "{refused}");
    eventually("the topic's own count needs two", || produce_acks_all(&cluster, leader, "own").ok());

    let deleted = rill(cluster.addr(leader), &["topic", "defaults", "--delete-config", "min.insync.replicas"]);
    assert!(deleted.ok().contains("; 3 topics changed with them"), "follows, pair and later: {deleted:?}");
    assert_eq!(counts(&cluster, leader), "2 2 1", "back to each replication factor's default");
    eventually("acks all takes the two in sync again", || produce_acks_all(&cluster, leader, "follows").ok());
}
