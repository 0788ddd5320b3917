//! The console of a cluster whose nodes know each other by the cluster secret alone (`cluster_secret_file`, no
//! TLS, no client certificates), on three real `rill broker` processes with authorization on (docs/console.md,
//! "On a cluster"; docs/security.md, "Forwarded calls"):
//! - a signed-in user's read on a node that does not lead the partition is forwarded to the leader with the
//!   secret, and the leader honours the forwarded principal: alice sees the records, bob (describe only) a 403;
//! - a client that sends `rill-forwarded-principal` itself, without the secret or with another, is refused;
//! - every node's `rill_console_sessions` counts the cluster's sessions;
//! - a leader that does not answer (SIGSTOPped) makes the page a 503 naming it, not a hang.

use crate::common;

use std::process::Command;
use std::time::Instant;

use common::cluster::Cluster;
use common::console::{admin_http, sign_in};
use common::{eventually, Output, DEADLINE, RILL};

const SECRET: &str = "3b9e0f6c1a2d4e8f7c5b0a9d6e3f1c2b";

/// Short heartbeats, but node sessions long enough that a SIGSTOPped node keeps its leaderships for the whole
/// test: the 503 is about a leader that is still named but does not answer.
fn config(secret_file: &std::path::Path, authorization: &str) -> String {
    format!(
        "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 30000\n\
         [auth]\ncluster_secret_file = {secret_file:?}\nadmin_auth = \"required\"\n\
         authorization = \"{authorization}\"\nsuper_users = [\"User:admin\"]\n"
    )
}

/// `rill --token TOKEN ARGS --broker BROKER`.
fn rill_as(broker: &str, token: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut command = Command::new(RILL);
    command.arg("--token").arg(token).args(args).args(["--broker", broker]);
    common::run(command.env_remove("RILL_TOKEN").env_remove("RILL_BROKER"), input)
}

fn get(admin: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, _, page) = admin_http(admin, "GET", path, &format!("Cookie: {cookie}\r\n"), "");
    (status, page)
}

/// `rill_console_sessions` on `admin`'s `/metrics`, scraped with the bearer `token`.
fn console_sessions(admin: &str, token: &str) -> Option<f64> {
    let (status, _, body) = admin_http(admin, "GET", "/metrics", &format!("Authorization: Bearer {token}\r\n"), "");
    assert_eq!(status, 200, "{body}");
    body.lines().find_map(|line| line.strip_prefix("rill_console_sessions ")?.trim().parse().ok())
}

/// Each partition's leader of `orders` as `broker` describes it, once all three replicas of each are in sync.
fn leaders_in_sync(broker: &str, token: &str) -> Vec<u64> {
    eventually("every partition of orders led, with three replicas in sync", || {
        common::cluster::leaders_with_isr(&rill_as(broker, token, &["topic", "describe", "orders"], None).stdout, 3, 3)
    })
}

/// Each partition's leader as `broker` shows `orders`, once every one is led by its preferred replica (the first
/// it lists) with three replicas in sync; `None` before.
fn preferred_leaders(broker: &str, token: &str) -> Option<Vec<u64>> {
    let output = rill_as(broker, token, &["topic", "describe", "orders"], None).stdout;
    let leaders = common::cluster::leaders_with_isr(&output, 3, 3)?;
    let preferred: Vec<u64> = output
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 6 && cells[0].parse::<u32>().is_ok())
        .filter_map(|cells| common::cluster::ids(cells[3]).first().copied())
        .collect();
    (preferred == leaders).then_some(leaders)
}

/// A structured `Records/Fetch` of `orders` partition `partition` from offset 0, sent straight to `broker` the
/// way a node forwards it: `rill-forwarded-principal: CLAIMED`, plus `rill-cluster-secret` when `secret` is set.
fn fetch_claiming(
    broker: &str,
    claimed: &str,
    secret: Option<&str>,
    partition: u32,
) -> Result<Vec<String>, tonic::Status> {
    use rill_protocol::v1::records_client::RecordsClient;
    use rill_protocol::v1::{FetchRequest, RecordFormat};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{broker}")).expect("endpoint");
        let channel = tokio::time::timeout(DEADLINE, endpoint.connect()).await.expect("in time").expect("connect");
        let message = FetchRequest {
            topic: "orders".into(),
            partition,
            format: RecordFormat::Structured.into(),
            ..Default::default()
        };
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("rill-forwarded-principal", claimed.parse().expect("ascii"));
        if let Some(secret) = secret {
            request.metadata_mut().insert("rill-cluster-secret", secret.parse().expect("ascii"));
        }
        request.set_timeout(DEADLINE);
        let answer = RecordsClient::new(channel).fetch(request).await?.into_inner();
        Ok(answer
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into())
            .collect())
    })
}

/// SIGCONTs a SIGSTOPped node when dropped, so a failing assertion never leaves a stopped process behind (the
/// cluster's guard then kills it).
struct Stopped<'a>(&'a std::process::Child);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        common::signal(self.0, libc::SIGCONT);
    }
}

#[test]
fn with_the_cluster_secret_alone_a_non_leaders_console_reads_as_its_user_and_a_silent_leader_is_a_503() {
    let secrets = tempfile::tempdir().expect("temp dir");
    let secret_file = secrets.path().join("cluster.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write the secret");
    // Bootstrapping as docs/security.md says: users, tokens and ACLs made with authorization off, then every
    // node restarted with it on.
    let mut cluster = Cluster::start(&config(&secret_file, "off"));
    let first = cluster.addr(1).to_owned();
    eventually("topic orders created with three replicas", || {
        let args = ["topic", "create", "orders", "--partitions", "3", "--replication-factor", "3"];
        common::rill(&first, &args).status.success().then_some(())
    });
    let created = common::rill(&first, &["user", "create", "admin", "--password", "pw", "--token"]);
    let admin = created.ok().trim().to_owned();
    for user in ["alice", "bob"] {
        common::rill(&first, &["user", "create", user, "--password", "pw"]).ok();
    }
    // Alice reads orders; bob may see it listed, but not read its records.
    for (principal, operation) in [("User:alice", "read"), ("User:alice", "describe"), ("User:bob", "describe")] {
        let grant = ["acl", "add", "--allow", "--principal", principal, "--operation", operation, "--topic", "orders"];
        common::rill(&first, &grant).ok();
    }
    std::fs::write(cluster.config(), config(&secret_file, "on")).expect("turn authorization on");
    for node_id in 1..=3 {
        cluster.nodes[node_id as usize - 1].take().expect("running").kill();
        cluster.nodes[node_id as usize - 1] = Some(cluster.start_node(node_id));
    }
    // A preferred replica takes its leadership back only once it is in sync again: a node killed is fenced as
    // soon as its port refuses, so its leaderships moved while it restarted.
    leaders_in_sync(&first, &admin);
    eventually("leaderships handed back to their preferred replicas", || {
        rill_as(&first, &admin, &["cluster", "elect-leaders"], None).status.success().then_some(())
    });
    // The election is committed when the command returns, and applied on each node a little later: the leaders
    // the test acts on below are those every node shows (read at once, one node could still show the old ones,
    // and the test then stop a node that no longer leads the partition it picks).
    let leaders = eventually("every node shows each partition led by its preferred replica", || {
        let views: Vec<Vec<u64>> =
            (1..=3).map(|id| preferred_leaders(cluster.addr(id), &admin)).collect::<Option<_>>()?;
        views.windows(2).all(|pair| pair[0] == pair[1]).then(|| views[0].clone())
    });
    let leader = leaders[0];
    let follower = (1..=3).find(|id| *id != leader).expect("a node that does not lead partition 0");
    eventually("two records acknowledged by every replica of partition 0", || {
        let args = ["produce", "orders", "--partition", "0", "--acks", "all"];
        let produced = rill_as(cluster.addr(leader), &admin, &args, Some(b"first-value\nsecond-value\n"));
        produced.status.success().then_some(())
    });

    // The follower's handler refuses (not the leader); the console sends the call to the leader with the
    // cluster secret, and the leader serves it as alice. Before, it answered 401: the header was honoured only
    // from a node's certificate, which this cluster does not have.
    let console = cluster.admin(follower);
    let alice = sign_in(console, "alice");
    let (status, page) = eventually("alice's page once the follower knows the records", || {
        let (status, page) = get(console, "/topics/orders/messages?partition=0&from=earliest", &alice);
        (status != 200 || page.contains("second-value")).then_some((status, page))
    });
    assert_eq!(status, 200, "node {follower} (leader {leader}): {page}");
    assert!(page.contains("first-value") && page.contains("second-value"), "{page}");
    assert!(page.contains("Partition 0 holds offsets 0 to 1."), "the leader's offsets: {page}");

    let bob = sign_in(console, "bob");
    let (status, page) = get(console, "/topics/orders/messages?partition=0&from=earliest", &bob);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("User:bob is not authorized") && !page.contains("first-value"), "{page}");
    // Both sessions are the cluster's: every node's gauge counts them once applied.
    for node_id in 1..=3 {
        eventually(&format!("node {node_id} counts alice's and bob's sessions"), || {
            (console_sessions(cluster.admin(node_id), &admin)? == 2.0).then_some(())
        });
    }

    // A client that names a principal itself is refused without the secret and with another one; with the
    // secret it is a node's call, and the leader checks the named user's ACLs as for any forwarded call.
    let on_leader = cluster.addr(leader);
    let refused = fetch_claiming(on_leader, "User:alice", None, 0).expect_err("no secret");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("honoured only from a cluster node"), "{refused:?}");
    assert!(refused.message().contains("cluster_secret_file"), "says what to configure: {refused:?}");
    let refused = fetch_claiming(on_leader, "User:alice", Some("00000000000000000000000000000000"), 0)
        .expect_err("another secret");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("not this node's") && !refused.message().contains(SECRET), "{refused:?}");
    let records = fetch_claiming(on_leader, "User:alice", Some(SECRET), 0).expect("a node's call as alice");
    assert_eq!(records, ["first-value", "second-value"]);
    let refused = fetch_claiming(on_leader, "User:bob", Some(SECRET), 0).expect_err("bob may not read");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("User:bob"), "{refused:?}");

    // A leader that does not answer: stopped, it keeps its leaderships (its session outlasts the test) and its
    // socket still accepts connections, so only the console's own bound ends the wait. A partition led by a
    // node that is not the controller leader keeps the metadata quorum out of it.
    let controller = eventually("a controller leader", || {
        let described = rill_as(&first, &admin, &["cluster", "describe"], None);
        described.stdout.lines().find_map(|l| l.strip_prefix("controller leader:")?.trim().parse::<u64>().ok())
    });
    let (partition, silent) = (0..3u32)
        .map(|p| (p, leaders[p as usize]))
        .find(|(_, node)| *node != controller)
        .expect("a partition led by a node that is not the controller leader");
    let asker = (1..=3).find(|id| *id != silent).expect("another node");
    let console = cluster.admin(asker);
    let alice = sign_in(console, "alice");
    let path = format!("/topics/orders/messages?partition={partition}&from=earliest");
    let stopped = Stopped(&cluster.nodes[silent as usize - 1].as_ref().expect("running").child);
    common::signal(stopped.0, libc::SIGSTOP);
    let asked = Instant::now();
    let (status, page) = get(console, &path, &alice);
    let waited = asked.elapsed();
    assert_eq!(status, 503, "partition {partition} led by stopped node {silent}, asked node {asker}: {page}");
    let named = format!("node {silent} at {}", cluster.addr(silent));
    assert!(page.contains(&named), "names the node that did not answer ({named}): {page}");
    assert!(page.contains("did not answer within 5 s") || page.contains("could not be reached"), "{page}");
    // The bound is the console's own; this only says the page was not left hanging.
    assert!(waited < DEADLINE, "answered after {waited:?}");
    drop(stopped);
    eventually("the page served again once the leader is back", || {
        let (status, page) = get(console, &path, &alice);
        (status == 200).then_some(page)
    });
}
