//! A client whose first bootstrap address is a frozen node (SIGSTOP: its kernel accepts the connection and
//! buffers the HTTP/2 preface, nobody answers) moves to the next address after the connect timeout
//! (`client/src/http2.rs`) rather than waiting out the request timeout there.

use crate::common;

use std::time::{Duration, Instant};

use common::cluster::{wait_for_topic, Cluster};
use common::{eventually, rill, signal};

const FAST_SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n";

/// The CLI's client settings (`ClientConfig::default()`): 5 s to connect, 30 s for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn topic_describe_answers_from_another_node_when_the_first_bootstrap_node_is_frozen() {
    let cluster = Cluster::start(FAST_SESSIONS);
    let create = ["topic", "create", "orders", "--partitions", "3", "--replication-factor", "3"];
    eventually("orders created", || rill(&cluster.all(), &create).status.success().then_some(()));
    wait_for_topic(cluster.addr(2), "orders", 3, "orders placed", |rows| rows.iter().all(|r| r.leader.is_some()));

    let node_1 = &cluster.nodes[0].as_ref().expect("node 1 running").child;
    signal(node_1, libc::SIGSTOP);
    let started = Instant::now();
    let described = rill(&cluster.all(), &["topic", "describe", "orders"]);
    let took = started.elapsed();
    signal(node_1, libc::SIGCONT);

    let stdout = described.ok();
    assert!(stdout.lines().any(|line| line.starts_with("PARTITION")), "{stdout}");
    // The connect timeout (5 s) at node 1, then node 2's answer; node 2 may also wait up to 2 s for node 1 as a
    // partition leader (`ask_leader`). Well within the 30 s request timeout either way.
    assert!(took < REQUEST_TIMEOUT / 2, "took {took:?}, the request timeout is {REQUEST_TIMEOUT:?}");
    eprintln!("topic describe with node 1 frozen answered in {took:?}");
}
