//! A three-node cluster's `/metrics`, scraped from each real `rill broker` process: ISR sizes, under-replicated
//! partitions, leader epochs and the controller term are present and agree with the cluster's state, before and
//! after the SIGKILL of a partition leader.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::{scrape, Cluster};
use common::{rill, DEADLINE};

const FAST_CLUSTER: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n";
const PARTITIONS: u32 = 3;

fn partition_series(name: &str, partition: u32) -> String {
    format!(r#"{name}{{topic="metered",partition="{partition}"}}"#)
}

/// The nodes' scrapes (only running nodes), once `done` holds for them, or the test fails naming `what`.
#[track_caller]
fn wait_for(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&HashMap<u64, HashMap<String, f64>>) -> bool,
) -> HashMap<u64, HashMap<String, f64>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let scrapes: HashMap<u64, HashMap<String, f64>> = (1..=3u64)
            .filter(|&id| cluster.nodes[id as usize - 1].is_some())
            .filter_map(|id| Some((id, scrape(cluster.admin(id))?)))
            .collect();
        if done(&scrapes) {
            return scrapes;
        }
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}; last scrapes: {scrapes:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The node whose metrics show it leading `partition`, and its leader epoch there.
fn leader_of(scrapes: &HashMap<u64, HashMap<String, f64>>, partition: u32) -> Option<(u64, f64)> {
    let series = partition_series("rill_partition_leader_epoch", partition);
    scrapes.iter().find_map(|(id, samples)| samples.get(&series).map(|epoch| (*id, *epoch)))
}

#[test]
fn cluster_metrics_follow_the_isr_and_a_leader_change_after_a_kill() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let partitions = PARTITIONS.to_string();
    let args = ["topic", "create", "metered", "--partitions", &partitions, "--replication-factor", "3"];
    let deadline = Instant::now() + DEADLINE;
    // Until the quorum forms and every node has registered, the create is refused.
    while !rill(&cluster.all(), &args).status.success() {
        assert!(Instant::now() < deadline, "the topic was never created");
        std::thread::sleep(Duration::from_millis(200));
    }

    let healthy = wait_for(&cluster, "every partition led, with an ISR of 3", |scrapes| {
        scrapes.len() == 3
            && (0..PARTITIONS).all(|p| {
                let isr = partition_series("rill_partition_isr_size", p);
                let led: Vec<f64> = scrapes.values().filter_map(|s| s.get(&isr).copied()).collect();
                led == [3.0]
            })
            && scrapes.values().all(|s| s.get("rill_under_replicated_partitions") == Some(&0.0))
    });
    let terms: Vec<f64> = healthy.values().map(|s| s["rill_controller_term"]).collect();
    assert!(terms.iter().all(|&term| term >= 1.0), "a controller was elected: {terms:?}");
    let (leader, epoch) = leader_of(&healthy, 0).expect("partition 0 has a leader");

    cluster.nodes[leader as usize - 1].take().expect("running").kill();
    let after = wait_for(&cluster, "partition 0 led by a survivor at a new epoch, under-replicated", |scrapes| {
        leader_of(scrapes, 0).is_some_and(|(id, new_epoch)| {
            let samples = &scrapes[&id];
            id != leader
                && new_epoch > epoch
                && samples.get(&partition_series("rill_partition_isr_size", 0)) == Some(&2.0)
                && samples.get("rill_under_replicated_partitions").is_some_and(|&count| count >= 1.0)
        })
    });
    let survivors_terms: Vec<f64> = after.values().map(|s| s["rill_controller_term"]).collect();
    assert!(
        survivors_terms.iter().all(|term| terms.iter().all(|before| term >= before)),
        "the controller term never goes back: before {terms:?}, after {survivors_terms:?}"
    );
    // No partition is led by two survivors at once.
    for partition in 0..PARTITIONS {
        let series = partition_series("rill_partition_leader_epoch", partition);
        let leaders = after.values().filter(|s| s.contains_key(&series)).count();
        assert!(leaders <= 1, "partition {partition} has {leaders} leaders: {after:#?}");
    }
}
