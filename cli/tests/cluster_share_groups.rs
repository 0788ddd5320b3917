//! rill's own share group members (`rill consume --share-group G`, the client's `ShareConsumer` over the
//! `ShareConsume` stream) on three real `rill broker` processes. The stream is opened at the group's coordinator
//! (a member bootstrapped from another node follows its `not-coordinator` refusal), which reads and acknowledges
//! for the member at each partition's leader: every record of a topic whose partitions three different nodes
//! lead is delivered once and accepted there, a released record comes back counted twice, two members share the
//! records without one printed by both, and a member whose coordinator is SIGKILLed joins the new one and reads on.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{coordinator_partition, describe_topic, wait_for_topic, Cluster};
use common::{eventually, rill, rill_with_stdin, Running, DEADLINE};

/// Short sessions so a killed node's partitions move within the test's deadline; few offsets partitions.
const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\noffsets_topic_partitions = 5\n\
                            auto_leader_rebalance_enable = false\n";
const OFFSETS_PARTITIONS: usize = 5;
const PARTITIONS: usize = 3;

/// `(value, delivery_count)` of `rill consume --share-group --format json` lines.
fn shared(lines: &[&str]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (json["value"].as_str().expect("a value").to_owned(), json["delivery_count"].as_u64().expect("a count"))
        })
        .collect()
}

/// Creates `jobs` (3 partitions, 3 replicas, each led by another node), sets the group to read from the start,
/// and returns the group's coordinator once its offsets partition has 3 in-sync replicas, and each partition's
/// leader.
fn prepare(cluster: &Cluster, group: &str) -> (u64, Vec<u64>) {
    let addr = cluster.addr(1);
    eventually("the topic's creation", || {
        let created = rill(addr, &["topic", "create", "jobs", "--partitions", "3", "--replication-factor", "3"]);
        created.status.success().then_some(())
    });
    let rows = wait_for_topic(addr, "jobs", PARTITIONS, "3 in-sync replicas", |rows| {
        rows.iter().all(|row| row.leader.is_some() && row.isr.len() == 3)
    });
    let leaders: Vec<u64> = rows.iter().filter_map(|row| row.leader).collect();
    assert_eq!(leaders.iter().collect::<BTreeSet<_>>().len(), 3, "each partition led by another node: {rows:?}");
    eventually("the group's config", || {
        let set = rill(addr, &["group", "config", group, "--config", "share.auto.offset.reset=earliest"]);
        set.status.success().then_some(())
    });
    let offsets_partition = coordinator_partition(group, OFFSETS_PARTITIONS);
    let coordinator = eventually("the group's coordinator", || {
        // The first group request creates `__consumer_offsets` (refused meanwhile): the describe asks for it.
        rill(addr, &["group", "describe", group]);
        let rows = describe_topic(addr, "__consumer_offsets", OFFSETS_PARTITIONS)?;
        let row = &rows[offsets_partition];
        row.leader.filter(|_| row.isr.len() == 3)
    });
    (coordinator, leaders)
}

/// Produces `values` to `partition` of `jobs`, every one acknowledged by all in-sync replicas.
fn produce(broker: &str, partition: usize, values: &[String]) -> bool {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let partition = partition.to_string();
    let args = ["produce", "jobs", "--partition", &partition, "--acks", "all", "--delivery-timeout-ms", "3000"];
    rill_with_stdin(broker, &args, input.as_bytes()).status.success()
}

fn values(prefix: &str, partition: usize, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-p{partition}-{i}")).collect()
}

/// `rill consume jobs --share-group G` at `broker`, with `extra` flags, JSON lines.
fn share(broker: &str, group: &str, extra: &[&str]) -> Vec<(String, u64)> {
    let mut args = vec!["consume", "jobs", "--share-group", group, "--format", "json"];
    args.extend_from_slice(extra);
    let output = rill(broker, &args);
    shared(&output.ok().lines().collect::<Vec<_>>())
}

#[test]
fn a_member_reads_every_partition_at_its_leader_through_the_coordinator_and_acknowledges_there() {
    let cluster = Cluster::start(FAST_CLUSTER);
    let (coordinator, leaders) = prepare(&cluster, "workers");
    let other = (1..=3).find(|id| *id != coordinator).expect("another node");
    let mut produced = BTreeSet::new();
    for partition in 0..PARTITIONS {
        let batch = values("first", partition, 10);
        assert!(produce(&cluster.all(), partition, &batch), "produce to partition {partition}");
        produced.extend(batch);
    }

    // Bootstrapped from a node that is not the coordinator: the member follows the refusal there, and the
    // coordinator reads the two partitions other nodes lead at those nodes.
    let read = share(cluster.addr(other), "workers", &["--follow", "--max-messages", "30"]);
    assert!(read.iter().all(|(_, count)| *count == 1), "each delivered once: {read:?}");
    let read_values: BTreeSet<String> = read.iter().map(|(value, _)| value.clone()).collect();
    assert_eq!(read.len(), 30, "no record twice: {read:?}");
    assert_eq!(read_values, produced);
    // Accepted at each leader: nothing comes again.
    assert_eq!(share(cluster.addr(other), "workers", &[]), []);

    // Released at its leader (another node than the coordinator), then delivered again, counted twice.
    let remote = leaders.iter().position(|leader| *leader != coordinator).expect("a partition led elsewhere");
    assert!(produce(&cluster.all(), remote, &values("second", remote, 1)), "produce to partition {remote}");
    let second = format!("second-p{remote}-0");
    let released = share(&cluster.all(), "workers", &["--follow", "--max-messages", "1", "--ack", "release"]);
    assert_eq!(released, [(second.clone(), 1)]);
    assert_eq!(share(&cluster.all(), "workers", &["--follow", "--max-messages", "1"]), [(second, 2)]);
    assert_eq!(share(&cluster.all(), "workers", &[]), []);

    // Every record is done with, as the coordinator stored the leaders' windows: each partition's share start is
    // its end.
    let described = rill(&cluster.all(), &["group", "describe", "workers"]).ok().to_owned();
    for partition in 0..PARTITIONS {
        let end = if partition == remote { "11" } else { "10" };
        let row: Vec<&str> = described
            .lines()
            .find(|line| line.split_whitespace().take(2).eq(["jobs", partition.to_string().as_str()]))
            .unwrap_or_else(|| panic!("a row for partition {partition}: {described}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[2], end, "partition {partition} done with: {described}");
    }
}

#[test]
fn two_members_share_the_records_and_a_member_outlives_the_sigkill_of_its_coordinator() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let (coordinator, _) = prepare(&cluster, "pool");
    let member = |broker: &str| {
        Running::spawn(broker, &["consume", "jobs", "--share-group", "pool", "--follow", "--format", "json"])
    };
    let (first, second) = (member(&cluster.all()), member(&cluster.all()));
    let mut produced = BTreeSet::new();
    for partition in 0..PARTITIONS {
        let batch = values("before", partition, 20);
        assert!(produce(&cluster.all(), partition, &batch), "produce to partition {partition}");
        produced.extend(batch);
    }
    // Each member prints what it was handed; none is handed what the other holds (nothing is released or runs
    // out of its lock here), so no value is printed twice.
    let mut printed: BTreeMap<String, &str> = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while printed.len() < produced.len() {
        assert!(Instant::now() < deadline, "not every record printed: {} of {}", printed.len(), produced.len());
        for (name, member) in [("first", &first), ("second", &second)] {
            while let Some(line) = member.line_within(Duration::from_millis(50)) {
                let (value, count) = shared(&[line.as_str()]).remove(0);
                assert_eq!(count, 1, "{value} delivered once");
                if let Some(earlier) = printed.insert(value.clone(), name) {
                    panic!("{value} printed by {earlier} and by {name}");
                }
            }
        }
    }
    assert_eq!(printed.keys().cloned().collect::<BTreeSet<_>>(), produced);
    let (status, stderr) = second.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");

    // The coordinator goes (and with it one partition's leader); the remaining member's stream breaks, and it
    // joins the new coordinator, which reads on where the stored windows end, at each partition's leader. A
    // record it held unacknowledged at the kill may come again (at-least-once), so only what follows is awaited.
    cluster.nodes[coordinator as usize - 1].take().expect("coordinator running").kill();
    let survivors: Vec<&str> = (1..=3).filter(|id| *id != coordinator).map(|id| cluster.addr(id)).collect();
    let survivors = survivors.join(",");
    let mut after = BTreeSet::new();
    let produce_deadline = Instant::now() + DEADLINE;
    for partition in 0..PARTITIONS {
        for attempt in 0.. {
            // Each attempt's values are distinct: one that failed may or may not be stored, and is not awaited.
            let batch = values(&format!("after-{attempt}"), partition, 5);
            if produce(&survivors, partition, &batch) {
                after.extend(batch);
                break;
            }
            assert!(Instant::now() < produce_deadline, "no acks-all produce to partition {partition} after the kill");
        }
    }
    while !after.is_empty() {
        let line = first.next_line();
        let (value, _) = shared(&[line.as_str()]).remove(0);
        after.remove(&value);
    }
    let (status, stderr) = first.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");
}
