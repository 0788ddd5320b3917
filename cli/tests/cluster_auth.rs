//! Users and ACLs on a cluster of three real `rill broker` processes: made through one node, they hold on every
//! node (they are part of the replicated metadata), through the loss and restart of the controller leader, and
//! a deleted user or ACL stops working everywhere (docs/security.md, "A cluster").

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{start_as_cluster_node, Cluster};
use common::console::{admin_http, sign_in};
use common::pki::{Ca, Leaf};
use common::{eventually, rill, Output, DEADLINE, RILL};

/// Heartbeats and sessions short enough that a killed leader is replaced within the deadline.
const FAST_SESSIONS: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n";

/// `rill --token TOKEN ARGS` against `broker`; no token for the anonymous principal.
fn rill_as(broker: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(RILL);
    if let Some(token) = token {
        command.arg("--token").arg(token);
    }
    command.args(args).env("RILL_BROKER", broker).env_remove("RILL_TOKEN");
    common::run(&mut command, None)
}

/// Three nodes that require client certificates from `ca`, with authorization on: every node presents `node`
/// (its only node principal) and `User:admin` is the super user.
fn mutual_tls_cluster(ca: &Ca, node: &Leaf) -> Cluster {
    let config = format!(
        "{FAST_SESSIONS}[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
         [auth]\nauthorization = \"on\"\nsuper_users = [\"User:admin\"]\nnode_principals = [\"User:node\"]\n",
        node.cert(),
        node.key(),
        ca.pem_path.to_str().expect("utf-8"),
    );
    Cluster::start(&config)
}

/// A new user with a token, through `broker` (retried while the controller leader is being elected).
fn create_user(broker: &str, token: Option<&str>, name: &str) -> String {
    eventually(&format!("user {name} created"), || {
        let created = rill_as(broker, token, &["user", "create", name, "--password", "pw", "--token"]);
        if created.stderr.contains("already exists") {
            // An earlier attempt that reported a failure (its answer lost in a leader change) had committed, and
            // the token it made was never printed: start again from no user.
            rill_as(broker, token, &["user", "delete", name]);
        }
        created.status.success().then(|| created.stdout.trim().to_owned())
    })
}

/// The controller leader's node id, as `broker` describes the cluster.
fn controller_leader(broker: &str, token: Option<&str>) -> u64 {
    eventually("a controller leader", || {
        let described = rill_as(broker, token, &["cluster", "describe"]);
        described.stdout.lines().find_map(|l| l.strip_prefix("controller leader:")?.trim().parse().ok())
    })
}

/// What `token`'s principal may do on `broker`, as the node itself decides it from the replicated state:
/// whether it is authenticated at all, may list users (ALTER/DESCRIBE on the cluster: the super user only), and
/// which of the topics it may describe.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Unauthenticated,
    Topics { may_list_users: bool, topics: Vec<String> },
}

fn seen_by(broker: &str, token: &str) -> Seen {
    let topics = rill_as(broker, Some(token), &["topic", "list"]);
    if topics.stderr.contains("bearer token is not valid") {
        return Seen::Unauthenticated;
    }
    let topics = topics.ok().lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    let may_list_users = rill_as(broker, Some(token), &["user", "list"]).status.success();
    Seen::Topics { may_list_users, topics }
}

fn topics(may_list_users: bool, names: &[&str]) -> Seen {
    Seen::Topics { may_list_users, topics: names.iter().map(|n| (*n).to_owned()).collect() }
}

#[test]
fn users_and_acls_made_on_one_node_hold_everywhere_through_a_leader_loss_until_deleted() {
    // Bootstrap as on a single node: users and ACLs made with authorization off, then every node restarted
    // with it on. Node 1 takes every change; nodes 2 and 3 only ever see the replicated result.
    let mut cluster = Cluster::start(FAST_SESSIONS);
    let first = cluster.addr(1).to_owned();
    let admin = create_user(&first, None, "admin");
    let reader = create_user(&first, None, "reader");
    let app = create_user(&first, None, "app");
    for topic in ["orders", "secrets"] {
        // Retried until all three nodes have heartbeated: three replicas need three alive nodes.
        eventually(&format!("topic {topic} created"), || {
            let args = ["topic", "create", topic, "--partitions", "1", "--replication-factor", "3"];
            rill(&first, &args).status.success().then_some(())
        });
    }
    let grants: [&[&str]; 2] = [
        &["--allow", "--principal", "User:reader", "--operation", "read", "--topic", "orders"],
        &["--allow", "--principal", "User:app", "--operation", "describe", "--topic", "*"],
    ];
    for grant in grants {
        let args: Vec<&str> = ["acl", "add"].iter().copied().chain(grant.iter().copied()).collect();
        assert!(rill(&first, &args).ok().starts_with("added"), "{grant:?}");
    }
    // A client quota, through node 1 as well: every node holds its clients to it.
    rill(&first, &["quota", "set", "--user", "app", "--producer-byte-rate", "1000000"]).ok();
    let config =
        format!("{FAST_SESSIONS}[auth]\nrequire_auth = true\nauthorization = \"on\"\nsuper_users = [\"User:admin\"]\n");
    std::fs::write(cluster.config(), config).expect("turn authorization on");
    for node_id in 1..=3 {
        cluster.nodes[node_id as usize - 1].take().expect("running").kill();
        cluster.nodes[node_id as usize - 1] = Some(cluster.start_node(node_id));
    }

    let expected = |node: &str| {
        assert_eq!(seen_by(node, &admin), topics(true, &["orders", "secrets"]), "the super user on {node}");
        assert_eq!(seen_by(node, &reader), topics(false, &["orders"]), "reader's literal ACL on {node}");
        assert_eq!(seen_by(node, &app), topics(false, &["orders", "secrets"]), "app's wildcard ACL on {node}");
        rill_as(node, None, &["topic", "list"]).fails(1, "authentication is required");
        let quotas = rill_as(node, Some(&admin), &["quota", "list"]);
        let rows: Vec<Vec<&str>> = quotas.ok().lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows, [["app", "-", "-", "1000000", "-", "-", "-", "-"]], "the quota on {node}");
    };
    for node_id in 1..=3 {
        let node = cluster.addr(node_id).to_owned();
        eventually(&format!("node {node_id} serving with authorization on"), || {
            rill_as(&node, Some(&admin), &["user", "list"]).status.success().then_some(())
        });
        expected(&node);
    }
    // Records go through the partition leader and its followers' internal calls, which need no token.
    let produce = ["produce", "orders", "--acks", "all", "--delivery-timeout-ms", "3000"];
    let mut command = Command::new(RILL);
    command.arg("--token").arg(&admin).args(produce).env("RILL_BROKER", cluster.addr(2));
    common::run(&mut command, Some(b"one\ntwo\n")).ok();
    // A node answers ListOffsets from its own replica, whose high watermark a follower learns on its next fetch.
    eventually("reader consumes orders through node 3", || {
        let consumed = rill_as(cluster.addr(3), Some(&reader), &["consume", "orders", "--from-beginning"]);
        (consumed.ok() == "one\ntwo\n").then_some(())
    });
    rill_as(cluster.addr(3), Some(&reader), &["consume", "secrets"]).fails(1, "User:reader is not authorized");
    // Changing the cluster needs ALTER on it, as Kafka's ElectLeaders and reassignments do: only the super user.
    rill_as(cluster.addr(2), Some(&app), &["cluster", "elect-leaders"])
        .fails(1, "User:app is not authorized to alter the cluster");
    rill_as(cluster.addr(2), Some(&reader), &["cluster", "remove-node", "--node-id", "3"])
        .fails(1, "User:reader is not authorized to alter the cluster");
    rill_as(cluster.addr(2), Some(&admin), &["cluster", "elect-leaders"]).ok();
    rill_as(cluster.addr(3), Some(&app), &["quota", "set", "--user", "app", "--producer-byte-rate", "1"])
        .fails(1, "User:app is not authorized");
    // The console signs a user in on any node (require_auth makes the admin listeners require it too), and
    // shows it what its ACLs allow.
    let mut reader_sessions = Vec::new();
    for node_id in [2, 3] {
        let cookie = sign_in(cluster.admin(node_id), "reader");
        let (status, _, page) =
            admin_http(cluster.admin(node_id), "GET", "/topics", &format!("Cookie: {cookie}\r\n"), "");
        assert_eq!(status, 200, "node {node_id}: {page}");
        assert!(page.contains("orders") && !page.contains("secrets"), "node {node_id}: {page}");
        reader_sessions.push((node_id, cookie));
    }
    let listed = rill_as(cluster.addr(3), Some(&admin), &["acl", "list"]);
    assert_eq!(listed.ok().lines().count(), 1 + 2, "a header and both bindings: {listed:?}");
    let users = rill_as(cluster.addr(2), Some(&admin), &["user", "list"]);
    assert!(!users.ok().contains("pw") && users.lines().len() == 1 + 3, "{users:?}");

    // The controller leader goes: the survivors keep every user and ACL, and still take changes.
    let leader = controller_leader(cluster.addr(1), Some(&admin));
    cluster.nodes[leader as usize - 1].take().expect("running").kill();
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for &node_id in &survivors {
        expected(cluster.addr(node_id));
    }
    let survivor = cluster.addr(survivors[0]).to_owned();
    let late = create_user(&survivor, Some(&admin), "late");
    assert_eq!(seen_by(cluster.addr(survivors[1]), &late), topics(false, &[]), "a user made without the old leader");

    // It comes back with everything, the user made while it was down too.
    cluster.nodes[leader as usize - 1] = Some(cluster.start_node(leader));
    let restarted = cluster.addr(leader).to_owned();
    eventually("the restarted node knows the user made while it was down", || {
        (seen_by(&restarted, &late) == topics(false, &[])).then_some(())
    });
    expected(&restarted);

    // A deleted user and a removed ACL stop working on every node.
    rill_as(&survivor, Some(&admin), &["user", "delete", "reader"]).ok();
    let removed = rill_as(&survivor, Some(&admin), &["acl", "remove", "--principal", "User:app", "--topic", "*"]);
    assert!(removed.ok().contains("User:app"), "the removed binding is printed: {removed:?}");
    for node_id in 1..=3 {
        let node = cluster.addr(node_id).to_owned();
        eventually(&format!("node {node_id} forgets reader and app's ACL"), || {
            let is_gone =
                seen_by(&node, &reader) == Seen::Unauthenticated && seen_by(&node, &app) == topics(false, &[]);
            is_gone.then_some(())
        });
        assert_eq!(seen_by(&node, &admin), topics(true, &["orders", "secrets"]));
    }
    for (node_id, cookie) in reader_sessions {
        let (status, _, page) =
            admin_http(cluster.admin(node_id), "GET", "/topics", &format!("Cookie: {cookie}\r\n"), "");
        assert_eq!(status, 303, "a deleted user's console session ends on node {node_id}: {page}");
    }
}

#[test]
fn a_node_that_ran_alone_with_users_refuses_to_start_in_a_cluster_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d1");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("__users.json"), r#"{"version":1,"users":{}}"#).expect("a users file");
    let output = start_as_cluster_node(&data);
    let stderr = output.fails(1, "__users.json holds the users this node kept when it ran alone");
    assert!(stderr.contains("rill user create") && stderr.contains("move the file out"), "{stderr}");
    assert!(data.join("__users.json").exists(), "the file is left as it was");
}

/// `rill ARGS --broker https://BROKER`, trusting `ca` and presenting `leaf` as the client certificate.
fn rill_with_certificate(broker: &str, ca: &Ca, leaf: &Leaf, args: &[&str]) -> Output {
    let mut command = Command::new(RILL);
    command.args(args).args(["--broker", &format!("https://{broker}")]);
    command.args([
        "--tls-ca",
        ca.pem_path.to_str().expect("utf-8"),
        "--tls-cert",
        leaf.cert(),
        "--tls-key",
        leaf.key(),
    ]);
    common::run(command.env_remove("RILL_TOKEN").env_remove("RILL_BROKER"), None)
}

/// An ElectLeaders call to `broker` over mutual TLS as `leaf`, with `forwarded` in the header a node names the
/// caller it forwards for: what a client forging that header would send.
fn elect_leaders_claiming(broker: &str, ca: &Ca, leaf: &Leaf, forwarded: Option<&str>) -> Result<(), tonic::Status> {
    use rill_protocol::v1::cluster_admin_client::ClusterAdminClient;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let read = |path: &str| std::fs::read(path).expect("read a PEM file");
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(ca.pem_path.to_str().expect("utf-8"))))
            .identity(Identity::from_pem(read(leaf.cert()), read(leaf.key())))
            .domain_name("localhost");
        let endpoint =
            Endpoint::from_shared(format!("https://{broker}")).expect("endpoint").tls_config(tls).expect("tls");
        let channel = tokio::time::timeout(DEADLINE, endpoint.connect()).await.expect("in time").expect("connect");
        let mut request = tonic::Request::new(rill_protocol::v1::ElectLeadersRequest::default());
        if let Some(principal) = forwarded {
            request.metadata_mut().insert("rill-forwarded-principal", principal.parse().expect("ascii"));
        }
        request.set_timeout(DEADLINE);
        ClusterAdminClient::new(channel).elect_leaders(request).await.map(|_| ())
    })
}

#[test]
fn a_client_certificates_principal_is_forwarded_to_the_controller_leader_and_cannot_be_forged() {
    let certs = tempfile::tempdir().expect("temp dir");
    let d = certs.path();
    let ca = Ca::new(d, "ca");
    // Every node presents `node` to the others; clients are admin (a super user), alice and mallory. All are
    // issued by the one CA, for localhost and 127.0.0.1: only the configured name tells a node from a client.
    let [node, admin, alice, mallory] = ["node", "admin", "alice", "mallory"].map(|name| ca.issue(d, name, 1, false));
    let cluster = mutual_tls_cluster(&ca, &node);
    let leader = eventually("a controller leader", || {
        let described = rill_with_certificate(cluster.addr(1), &ca, &admin, &["cluster", "describe"]);
        described.stdout.lines().find_map(|l| l.strip_prefix("controller leader:")?.trim().parse::<u64>().ok())
    });
    let follower = cluster.addr(if leader == 1 { 2 } else { 1 }).to_owned();

    let refused = rill_with_certificate(&follower, &ca, &alice, &["cluster", "elect-leaders"]);
    assert!(refused.stderr.contains("User:alice is not authorized to alter the cluster"), "{refused:?}");
    let grant = ["acl", "add", "--allow", "--principal", "User:alice", "--operation", "alter", "--cluster"];
    eventually("alice's ACL added", || {
        rill_with_certificate(&follower, &ca, &admin, &grant).status.success().then_some(())
    });

    // Asked of a follower, the call goes to the controller leader, which must see alice, not the follower's
    // own certificate (`User:node`, which no ACL allows anything).
    let elected = eventually("alice's forwarded election answered", || {
        let elected = rill_with_certificate(&follower, &ca, &alice, &["cluster", "elect-leaders"]);
        (elected.status.success() || elected.stderr.contains("not authorized")).then_some(elected)
    });
    assert!(elected.status.success(), "the leader acted as alice: {elected:?}");

    // A client naming another principal in the forwarding header is refused, whatever its certificate.
    let leader_addr = cluster.addr(leader).to_owned();
    let forged = elect_leaders_claiming(&leader_addr, &ca, &mallory, Some("User:alice")).expect_err("forged");
    assert_eq!(forged.code(), tonic::Code::Unauthenticated, "{forged:?}");
    assert!(forged.message().contains("honoured only from a cluster node"), "{forged:?}");
    assert!(forged.message().contains("User:mallory"), "the refusal names the connection's principal: {forged:?}");
    let as_herself = elect_leaders_claiming(&leader_addr, &ca, &mallory, None).expect_err("no ACL for mallory");
    assert_eq!(as_herself.code(), tonic::Code::PermissionDenied, "mallory is mallory: {as_herself:?}");
    // On a loaded machine the controller may be between leaders for a moment: that answer is retriable.
    eventually("alice's own certificate, asked directly", || {
        match elect_leaders_claiming(&leader_addr, &ca, &alice, None) {
            Ok(()) => Some(()),
            Err(status) if status.code() == tonic::Code::Unavailable => None,
            Err(status) => panic!("alice's own certificate, asked directly: {status:?}"),
        }
    });
}

/// What a `rill.internal` Vote and a replication stream opened straight at `broker` are answered: over mutual
/// TLS as `leaf` when `tls` is given, else in plaintext; with `secret` in the cluster-secret header if given.
/// These are the calls a client would make to take part in raft or read any partition past the ACLs.
fn internal_calls(broker: &str, tls: Option<(&Ca, &Leaf)>, secret: Option<&str>) -> [Result<(), tonic::Status>; 2] {
    use rill_protocol::internal::controller_client::ControllerClient;
    use rill_protocol::internal::{RaftRequest, ReplicaFetch};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let endpoint = match tls {
            Some((ca, leaf)) => {
                let read = |path: &str| std::fs::read(path).expect("read a PEM file");
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(ca.pem_path.to_str().expect("utf-8"))))
                    .identity(Identity::from_pem(read(leaf.cert()), read(leaf.key())))
                    .domain_name("localhost");
                Endpoint::from_shared(format!("https://{broker}")).expect("endpoint").tls_config(tls).expect("tls")
            }
            None => Endpoint::from_shared(format!("http://{broker}")).expect("endpoint"),
        };
        let channel = tokio::time::timeout(DEADLINE, endpoint.connect()).await.expect("in time").expect("connect");
        let mut client = ControllerClient::new(channel);
        let with_secret = |request: &mut tonic::metadata::MetadataMap| {
            if let Some(secret) = secret {
                request.insert("rill-cluster-secret", secret.parse().expect("ascii"));
            }
        };
        let mut vote = tonic::Request::new(RaftRequest::default());
        with_secret(vote.metadata_mut());
        vote.set_timeout(DEADLINE);
        let voted = client.vote(vote).await.map(|_| ());
        let fetch = ReplicaFetch { follower_id: 99, max_wait_ms: 10, ..ReplicaFetch::default() };
        let mut replicate = tonic::Request::new(tokio_stream::iter(vec![fetch]));
        with_secret(replicate.metadata_mut());
        replicate.set_timeout(Duration::from_secs(2));
        let replicated = client.replicate(replicate).await.map(|_| ());
        [voted, replicated]
    })
}

/// Whether the node-to-node gate let the call through: whatever the service then answered (an empty raft
/// payload is not a vote), it was not refused for want of a node's credential.
fn passed_the_gate(answer: &Result<(), tonic::Status>) -> bool {
    answer
        .as_ref()
        .err()
        .is_none_or(|status| !matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied))
}

/// `rill node_call_denials_total` on a node's admin listener.
fn node_call_denials(admin: &str) -> f64 {
    let samples = common::cluster::scrape(admin).expect("the admin listener answers");
    let counter = samples.iter().find(|(series, _)| series.starts_with("rill_node_call_denials_total"));
    let denials = counter.map(|(_, value)| *value);
    denials.unwrap_or_else(|| panic!("no rill_node_call_denials_total among {:?}", samples.keys().collect::<Vec<_>>()))
}

#[test]
fn a_users_certificate_cannot_make_node_to_node_calls_while_the_nodes_keep_replicating() {
    let certs = tempfile::tempdir().expect("temp dir");
    let d = certs.path();
    let ca = Ca::new(d, "ca");
    let [node, admin, alice] = ["node", "admin", "alice"].map(|name| ca.issue(d, name, 1, false));
    let cluster = mutual_tls_cluster(&ca, &node);
    let first = cluster.addr(1).to_owned();
    eventually("topic orders created with three replicas", || {
        let args = ["topic", "create", "orders", "--partitions", "1", "--replication-factor", "3"];
        rill_with_certificate(&first, &ca, &admin, &args).status.success().then_some(())
    });

    // Alice is a user of this cluster, and super users aside the most trusted kind of caller there is: one
    // with a certificate from the cluster's own CA. Still she may neither vote nor open a replication stream.
    for refused in internal_calls(&first, Some((&ca, &alice)), None) {
        let status = refused.expect_err("alice is not a node");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("for the cluster's nodes only"), "{status:?}");
        assert!(status.message().contains("User:alice") && status.message().contains("--node-principals"));
    }
    assert!(node_call_denials(cluster.admin(1)) >= 2.0, "both refusals are counted");
    for answer in internal_calls(&first, Some((&ca, &node)), None) {
        assert!(passed_the_gate(&answer), "a node's certificate passes: {answer:?}");
    }

    // Meanwhile the nodes, which present `User:node` to each other, replicate as before.
    let produce = |value: &str| {
        let mut command = Command::new(RILL);
        command.args(["produce", "orders", "--acks", "all", "--broker", &format!("https://{first}")]);
        command.args(["--tls-ca", ca.pem_path.to_str().expect("utf-8"), "--tls-cert", admin.cert()]);
        command.args(["--tls-key", admin.key()]);
        common::run(command.env_remove("RILL_TOKEN").env_remove("RILL_BROKER"), Some(format!("{value}\n").as_bytes()))
    };
    eventually("a record acknowledged by all three replicas", || produce("one").status.success().then_some(()));
    eventually("all three replicas in sync at the high watermark", || {
        let described = rill_with_certificate(&first, &ca, &admin, &["topic", "describe", "orders"]);
        described.stdout.lines().find_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let is_row = cells.len() >= 6 && cells[0] == "0";
            (is_row && common::cluster::ids(cells[4]).len() == 3 && cells[5].parse::<i64>().ok()? >= 1).then_some(())
        })
    });
}

#[test]
fn with_a_cluster_secret_a_call_without_it_or_with_another_is_refused_while_the_nodes_replicate() {
    let secrets = tempfile::tempdir().expect("temp dir");
    let secret = "5f1c2d9a0b7e4f3c8a6d1e2f9b0c7a4d";
    let secret_file = secrets.path().join("cluster.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write the secret");
    let config = format!("{FAST_SESSIONS}[auth]\ncluster_secret_file = {secret_file:?}\n");
    let cluster = Cluster::start(&config);
    let first = cluster.addr(1).to_owned();
    eventually("topic orders created with three replicas", || {
        let args = ["topic", "create", "orders", "--partitions", "1", "--replication-factor", "3"];
        rill(&first, &args).status.success().then_some(())
    });

    for refused in internal_calls(&first, None, None) {
        let status = refused.expect_err("no secret");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("--cluster-secret-file"), "{status:?}");
    }
    for refused in internal_calls(&first, None, Some("0000000000000000000000000000000000")) {
        let status = refused.expect_err("another secret");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(!status.message().contains(secret), "the answer never holds the secret: {status:?}");
    }
    assert!(node_call_denials(cluster.admin(1)) >= 4.0, "every refusal is counted");
    for answer in internal_calls(&first, None, Some(secret)) {
        assert!(passed_the_gate(&answer), "the secret passes: {answer:?}");
    }

    eventually("a record acknowledged by all three replicas", || {
        common::rill_with_stdin(&first, &["produce", "orders", "--acks", "all"], b"one\n")
            .status
            .success()
            .then_some(())
    });
    common::cluster::wait_for_topic(&first, "orders", 1, "three replicas in sync", |rows| {
        rows[0].isr.len() == 3 && rows[0].high_watermark >= 1
    });
}
