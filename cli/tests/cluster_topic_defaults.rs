//! The cluster's topic defaults on real `rill broker` processes (`broker/src/topic_defaults.rs`): a
//! `log.retention.bytes` default set through one node while another is killed reaches every replica's log of a
//! topic that does not set the key (the live nodes delete its sealed segments at their next retention pass), and
//! the killed node, restarted, applies it from the metadata it catches up on; a topic that sets its own limit keeps
//! every segment on every node. The topic's metadata file on the restarted node holds the new settings.

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
    let mut args = vec!["topic", "create", topic, "--partitions", "1", "--replication-factor", "3"];
    // Tiny segments, so a few records make sealed segments for retention to delete.
    args.extend(["--segment-bytes", "1024", "--max-batch-bytes", "1024"]);
    args.extend(extra);
    eventually("topic created", || rill(&cluster.all(), &args).status.success().then_some(()));
    wait_for_topic(cluster.addr(1), topic, 1, "every replica in sync", |rows| {
        rows.iter().all(|row| row.leader.is_some() && row.isr.len() == 3)
    });
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
