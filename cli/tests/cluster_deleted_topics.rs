//! A deleted topic leaves nothing behind that a re-created topic of the same name could inherit, on real
//! `rill broker` processes: its groups' committed offsets (forgotten by each group's coordinator,
//! `broker/src/offsets/mod.rs` `forget_topics`), and a node's copy of it that the node never saw deleted
//! (deleted once the node has caught up with the metadata, `broker/src/replication/dropped_replicas.rs`, or
//! replaced once the metadata names the topic with another id, `broker/src/replication/reconcile.rs`).

use crate::common;

use std::path::Path;

use common::cluster::{coordinator_partition, describe_topic, wait_for_topic, Cluster};
use common::{eventually, rill, rill_with_stdin, signal};

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n\
                            offsets_topic_partitions = 5\n";
const OFFSETS_PARTITIONS: usize = 5;

fn create_events(cluster: &Cluster, partitions: usize) {
    let partitions = partitions.to_string();
    let create = ["topic", "create", "events", "--partitions", &partitions, "--replication-factor", "3"];
    // Before the cluster has formed, or while a node is still fenced, a create is refused: retried.
    eventually("events created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let count = partitions.parse().expect("a count");
    wait_for_topic(cluster.addr(1), "events", count, "every replica in sync", |rows| {
        rows.iter().all(|row| row.leader.is_some() && row.isr.len() == 3)
    });
}

/// Produces `values` to `partition` of `events` with acks all; every one acknowledged.
fn produce(cluster: &Cluster, partition: usize, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let partition = partition.to_string();
    let args = ["produce", "events", "--partition", &partition, "--acks", "all"];
    rill_with_stdin(&cluster.all(), &args, input.as_bytes()).ok();
}

fn controller_leader(cluster: &Cluster) -> u64 {
    eventually("a controller leader", || {
        let described = rill(&cluster.all(), &["cluster", "describe"]);
        described.stdout.lines().find_map(|l| l.strip_prefix("controller leader:"))?.trim().parse().ok()
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

/// Deletes `events` (of `partitions` partitions) while keeping node 3's copy of it aside, then restarts node 3 with
/// that copy put back: as a node that applied the deletion and was killed before its copy was gone would start,
/// its metadata naming no such topic.
fn delete_events_leaving_node_3_a_copy(cluster: &mut Cluster, partitions: usize) {
    let d3 = cluster.data_dir(3);
    let aside = cluster.dir.path().join("aside");
    let move_copy = |from: &Path, to: &Path, toml_from: &Path, toml_to: &Path| {
        for partition in 0..partitions {
            copy_dir(&from.join(format!("events-{partition}")), &to.join(format!("events-{partition}")));
        }
        std::fs::copy(toml_from, toml_to).expect("copy the topic's metadata file");
    };
    cluster.nodes[2].take().expect("running").kill();
    move_copy(&d3, &aside, &d3.join("__topics/events.toml"), &aside.join("events.toml"));
    cluster.nodes[2] = Some(cluster.start_node(3));
    rill(&cluster.all(), &["topic", "delete", "events"]).ok();
    eventually("node 3's copy deleted", || (!d3.join("__topics/events.toml").exists()).then_some(()));
    cluster.nodes[2].take().expect("running").kill();
    move_copy(&aside, &d3, &aside.join("events.toml"), &d3.join("__topics/events.toml"));
    cluster.nodes[2] = Some(cluster.start_node(3));
}

#[test]
fn a_deleted_topics_committed_offsets_are_forgotten_so_its_successor_is_read_from_the_start() {
    let cluster = Cluster::start(FAST_CLUSTER);
    create_events(&cluster, 2);
    produce(&cluster, 0, &(0..5).map(|i| format!("old-{i}")).collect::<Vec<_>>());
    produce(&cluster, 1, &["old-p1".to_owned()]);
    let all = cluster.all();
    let consumed = rill(&all, &["consume", "events", "--group", "g"]);
    assert_eq!(consumed.ok().lines().count(), 6, "{consumed:?}");
    let described = rill(&all, &["group", "describe", "g"]);
    assert!(described.ok().lines().any(|l| l.split_whitespace().take(3).eq(["events", "0", "5"])), "{described:?}");

    rill(&all, &["topic", "delete", "events"]).ok();
    // The coordinator forgets as it applies the deletion, after the delete is answered.
    eventually("the group's commits forgotten", || {
        rill(&all, &["group", "describe", "g"]).stderr.contains("unknown group \"g\"").then_some(())
    });
    create_events(&cluster, 2);
    produce(&cluster, 0, &["new-0".to_owned()]);
    // The old commit (5) would skip the new record, and every one the new topic gets up to offset 5.
    assert_eq!(rill(&all, &["consume", "events", "--group", "g"]).ok(), "new-0\n");
}

#[test]
fn a_copy_of_a_deleted_topic_left_by_a_crash_is_deleted_once_the_node_is_back() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    create_events(&cluster, 2);
    let kept = ["topic", "create", "kept", "--partitions", "1", "--replication-factor", "3"];
    rill(&cluster.all(), &kept).ok();
    produce(&cluster, 0, &(0..20).map(|i| format!("old-{i}")).collect::<Vec<_>>());
    wait_for_topic(cluster.addr(1), "events", 2, "node 3 holding the records", |rows| {
        rows[0].log_ends.iter().any(|&(node, end)| node == 3 && end == 20)
    });
    delete_events_leaving_node_3_a_copy(&mut cluster, 2);
    // Its metadata has no such topic, so no deletion is left to apply and no new topic names it.
    let d3 = cluster.data_dir(3);
    eventually("node 3's copy of the deleted topic gone again", || {
        let left = ["__topics/events.toml", "events-0", "events-1"].iter().any(|p| d3.join(p).exists());
        (!left).then_some(())
    });
    assert!(d3.join("__topics/kept.toml").exists() && d3.join("kept-0").exists(), "the other topic stays");
}

#[test]
fn a_node_replaces_its_copy_of_a_deleted_topic_when_a_new_topic_takes_the_name() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    create_events(&cluster, 3);
    let old: Vec<String> = (0..50).map(|i| format!("old-{i}")).collect();
    for partition in 0..3 {
        produce(&cluster, partition, &old);
    }
    wait_for_topic(cluster.addr(1), "events", 3, "node 3 holding every old record", |rows| {
        rows.iter().all(|row| row.log_ends.iter().any(|&(node, end)| node == 3 && end == 50))
    });

    delete_events_leaving_node_3_a_copy(&mut cluster, 3);

    create_events(&cluster, 3);
    for partition in 0..3 {
        produce(&cluster, partition, &["new".to_owned()]);
    }
    let rows = wait_for_topic(cluster.addr(1), "events", 3, "every replica at the new log end", |rows| {
        rows.iter().all(|row| row.high_watermark == 1 && row.log_ends.iter().all(|&(_, end)| end == 1))
    });
    assert!(rows.iter().any(|row| row.leader == Some(3)), "node 3 leads a partition of the new topic: {rows:?}");
    for partition in 0..3 {
        let args = ["consume", "events", "--partition", &partition.to_string(), "--from-beginning"];
        assert_eq!(rill(&cluster.all(), &args).ok(), "new\n", "partition {partition}: the new topic's record only");
    }
}

#[test]
fn a_coordinator_frozen_through_a_topics_deletion_is_replaced_by_one_that_forgets_its_commits() {
    let cluster = Cluster::start(FAST_CLUSTER);
    create_events(&cluster, 1);
    produce(&cluster, 0, &["a".to_owned(), "b".to_owned()]);
    let kept = ["topic", "create", "kept", "--partitions", "1", "--replication-factor", "3"];
    rill(&cluster.all(), &kept).ok();
    rill(&cluster.all(), &["produce", "kept", "--value", "k", "--acks", "all"]).ok();
    // The offsets topic is created by a group's first call: retried until it is placed.
    eventually("the offsets topic", || {
        rill(&cluster.all(), &["consume", "kept", "--group", "first"]).status.success().then_some(())
    });
    // A group coordinated by a node that does not lead the controller: frozen, it cannot hold the deletion up.
    let controller = controller_leader(&cluster);
    let offsets_leaders =
        wait_for_topic(cluster.addr(1), "__consumer_offsets", OFFSETS_PARTITIONS, "leaders", |rows| {
            rows.iter().all(|row| row.leader.is_some())
        });
    let (group, coordinator) = (0..)
        .map(|i| format!("g{i}"))
        .find_map(|g| {
            let leader = offsets_leaders[coordinator_partition(&g, OFFSETS_PARTITIONS)].leader.expect("a leader");
            (leader != controller).then_some((g, leader))
        })
        .expect("a group");
    let all = cluster.all();
    assert_eq!(rill(&all, &["consume", "events", "--group", &group]).ok(), "a\nb\n");
    assert_eq!(rill(&all, &["consume", "kept", "--group", &group]).ok(), "k\n");

    let frozen = &cluster.nodes[coordinator as usize - 1].as_ref().expect("running").child;
    signal(frozen, libc::SIGSTOP);
    let survivor = if controller == 1 || coordinator == 1 {
        if controller == 2 || coordinator == 2 {
            3
        } else {
            2
        }
    } else {
        1
    };
    let survivor = cluster.addr(survivor);
    rill(survivor, &["topic", "delete", "events"]).ok();
    // Fenced after its session, the frozen node loses the offsets partition; its successor loads the log, which
    // holds no tombstones for the deleted topic.
    let partition = coordinator_partition(&group, OFFSETS_PARTITIONS);
    eventually("a new coordinator", || {
        let rows = describe_topic(survivor, "__consumer_offsets", OFFSETS_PARTITIONS)?;
        rows[partition].leader.filter(|leader| *leader != coordinator).map(drop)
    });
    let rows = eventually("the group's commits without the deleted topic's", || {
        let described = rill(survivor, &["group", "describe", &group]);
        let rows: Vec<String> =
            described.stdout.lines().skip_while(|l| !l.starts_with("TOPIC")).skip(1).map(str::to_owned).collect();
        (described.status.success() && !rows.iter().any(|r| r.starts_with("events "))).then_some(rows)
    });
    assert!(rows.len() == 1 && rows[0].starts_with("kept "), "{rows:?}");
    signal(frozen, libc::SIGCONT);
}
