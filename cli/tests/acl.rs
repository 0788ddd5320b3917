//! ACLs end to end over gRPC: a real `rill broker --authorization on` process, users with bearer tokens, and the
//! `rill` binary as each of them (docs/security.md, "ACLs"). A matrix of principal × operation × resource, the
//! denial counter on /metrics, `rill acl` itself, and the refusal to listen off loopback without authentication.

use crate::common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{rill, AdminBroker, BrokerProcess};

/// A broker with authorization on (`User:admin` a super user) and its admin listener, over an existing data dir.
fn authorizing_broker(data: &std::path::Path) -> AdminBroker {
    AdminBroker::start_in(data, &["--authorization", "on", "--super-users", "User:admin"])
}

/// `rill --token TOKEN ARGS` against `broker`; no token for the anonymous principal.
fn rill_as(broker: &str, token: Option<&str>, args: &[&str]) -> common::Output {
    let mut command = Command::new(common::RILL);
    if let Some(token) = token {
        command.arg("--token").arg(token);
    }
    command.args(args).env("RILL_BROKER", broker).env_remove("RILL_TOKEN");
    common::run(&mut command, None)
}

fn rill_as_with_stdin(broker: &str, token: &str, args: &[&str], input: &[u8]) -> common::Output {
    let mut command = Command::new(common::RILL);
    command.arg("--token").arg(token).args(args).env("RILL_BROKER", broker).env_remove("RILL_TOKEN");
    common::run(&mut command, Some(input))
}

fn metrics(admin: &str) -> String {
    let mut stream = std::net::TcpStream::connect(admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}

fn denials(admin: &str, operation: &str, resource_type: &str) -> f64 {
    let series =
        format!("rill_authorization_denials_total{{operation=\"{operation}\",resource_type=\"{resource_type}\"}}");
    metrics(admin)
        .lines()
        .find_map(|line| line.strip_prefix(&series).and_then(|value| value.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} on /metrics"))
}

#[test]
fn each_principal_may_do_what_its_acls_allow_and_every_denial_names_it_and_is_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // Users and their tokens first, with authorization off: nobody could create the first one after.
    let tokens: Vec<String> = {
        let open = BrokerProcess::start(&data);
        ["admin", "app", "reader", "nobody"]
            .iter()
            .map(|user| {
                rill(&open.addr, &["user", "create", user, "--password", "pw", "--token"]).ok().trim().to_owned()
            })
            .collect()
    };
    let [admin, app, reader, nobody] = [&tokens[0], &tokens[1], &tokens[2], &tokens[3]].map(|t| Some(t.as_str()));
    let broker = authorizing_broker(&data);
    let b = broker.addr.as_str();

    // The super user needs no ACL: it creates topics and grants the others theirs.
    for topic in ["orders.eu", "orders.us", "secrets"] {
        rill_as(b, admin, &["topic", "create", topic]).ok();
    }
    let grants: [&[&str]; 4] = [
        &[
            "--allow",
            "--principal",
            "User:app",
            "--operation",
            "write",
            "--operation",
            "read",
            "--topic",
            "orders.",
            "--prefixed",
        ],
        &["--allow", "--principal", "User:app", "--operation", "read", "--group", "app-", "--prefixed"],
        &["--allow", "--principal", "User:reader", "--operation", "read", "--topic", "orders.eu"],
        &["--deny", "--principal", "User:app", "--operation", "write", "--topic", "orders.us"],
    ];
    for grant in grants {
        let args: Vec<&str> = ["acl", "add"].iter().copied().chain(grant.iter().copied()).collect();
        assert!(rill_as(b, admin, &args).ok().starts_with("added"), "{grant:?}");
    }
    let listed = rill_as(b, admin, &["acl", "list"]);
    assert_eq!(listed.lines().len(), 1 + 5, "a header and five bindings: {listed:?}");
    assert!(listed.stdout.contains("deny") && listed.stdout.contains("prefixed"), "{listed:?}");

    // Produce: WRITE on the topic. A deny wins over app's prefixed allow.
    rill_as_with_stdin(b, app.expect("app"), &["produce", "orders.eu"], b"one\ntwo\n").ok();
    rill_as_with_stdin(b, app.expect("app"), &["produce", "orders.us"], b"x\n")
        .fails(1, "User:app is not authorized to write topic \"orders.us\"");
    // `rill produce` describes the topic first (its partitions), which is refused before any write.
    rill_as_with_stdin(b, app.expect("app"), &["produce", "secrets"], b"x\n")
        .fails(1, "User:app is not authorized to describe topic \"secrets\"");
    // An idempotent producer (rill's is) first asks for a producer id: IDEMPOTENT_WRITE on the cluster, or WRITE
    // on some topic, as Kafka.
    rill_as_with_stdin(b, reader.expect("reader"), &["produce", "orders.eu"], b"x\n")
        .fails(1, "User:reader is not authorized to idempotent_write the cluster");

    // Consume: DESCRIBE (list offsets, implied by READ) and READ on the topic.
    assert_eq!(rill_as(b, reader, &["consume", "orders.eu"]).ok(), "one\ntwo\n");
    assert_eq!(rill_as(b, app, &["consume", "orders.eu"]).ok(), "one\ntwo\n");
    rill_as(b, reader, &["consume", "orders.us"])
        .fails(1, "User:reader is not authorized to describe topic \"orders.us\"");
    rill_as(b, nobody, &["consume", "orders.eu"]).fails(1, "User:nobody is not authorized");
    rill_as(b, None, &["consume", "orders.eu"]).fails(1, "User:ANONYMOUS is not authorized");

    // A group's commits: READ on the group (and the topic). app may use app-*, reader no group at all.
    rill_as(b, app, &["consume", "orders.eu", "--group", "app-billing"]).ok();
    rill_as(b, reader, &["consume", "orders.eu", "--group", "app-billing"])
        .fails(1, "User:reader is not authorized to");
    rill_as(b, app, &["consume", "orders.eu", "--group", "other"]).fails(1, "group \"other\"");

    // Listing leaves out what the principal may not describe; it is not a refusal.
    let seen_by_reader = rill_as(b, reader, &["topic", "list"]);
    assert!(seen_by_reader.ok().contains("orders.eu"), "{seen_by_reader:?}");
    assert!(!seen_by_reader.stdout.contains("orders.us") && !seen_by_reader.stdout.contains("secrets"));
    let seen_by_admin = rill_as(b, admin, &["topic", "list"]);
    assert!(seen_by_admin.ok().contains("secrets"), "a super user sees everything");

    // Topic, user and ACL administration: CREATE, DELETE, ALTER on the cluster.
    rill_as(b, app, &["topic", "create", "orders.asia"]).fails(1, "User:app is not authorized to create topic");
    rill_as(b, app, &["topic", "delete", "orders.eu"]).fails(1, "User:app is not authorized to delete topic");
    rill_as(b, app, &["user", "create", "eve", "--password", "pw"])
        .fails(1, "User:app is not authorized to alter the cluster");
    rill_as(b, app, &["acl", "add", "--allow", "--principal", "User:app", "--operation", "all", "--topic", "*"])
        .fails(1, "User:app is not authorized to alter the cluster");
    rill_as(b, reader, &["acl", "list"]).fails(1, "User:reader is not authorized to describe the cluster");

    // Each denial above was counted by operation and resource type.
    assert!(denials(&broker.admin, "write", "topic") >= 1.0);
    assert!(denials(&broker.admin, "describe", "topic") >= 2.0);
    assert!(denials(&broker.admin, "idempotent_write", "cluster") >= 1.0);
    assert!(denials(&broker.admin, "alter", "cluster") >= 2.0);
    assert!(denials(&broker.admin, "create", "topic") >= 1.0);
    assert_eq!(denials(&broker.admin, "idempotent_write", "group"), 0.0, "every pair is exported, zeros too");

    // Removing an ACL takes the permission back at once.
    let removed = rill_as(b, admin, &["acl", "remove", "--principal", "User:reader", "--topic", "orders.eu"]);
    assert!(removed.ok().contains("User:reader"), "the removed binding is printed: {removed:?}");
    rill_as(b, reader, &["consume", "orders.eu"]).fails(1, "User:reader is not authorized");
    rill_as(b, admin, &["acl", "remove"]).fails(1, "--all");
}

#[test]
fn acls_survive_a_restart_and_bad_ones_are_refused_saying_what_is_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data);
    let b = broker.addr.clone();
    rill(&b, &["acl", "add", "--allow", "--principal", "User:app", "--operation", "read", "--group", "g"]).ok();
    rill(&b, &["acl", "add", "--allow", "--principal", "app", "--operation", "read", "--topic", "t"])
        .fails(1, "use User:NAME");
    rill(&b, &["acl", "add", "--allow", "--principal", "User:app", "--operation", "write", "--group", "g"])
        .fails(1, "it takes read, delete, describe, describe_configs, alter_configs, all");
    rill(&b, &["acl", "add", "--allow", "--principal", "User:app", "--operation", "fly", "--topic", "t"])
        .fails(1, "invalid operation \"fly\"");
    drop(broker);
    let broker = BrokerProcess::start_on(&data, &b);
    let listed = rill(&broker.addr, &["acl", "list", "--group", "g"]);
    assert_eq!(listed.lines().len(), 2, "{listed:?}");
    assert!(listed.lines()[1].contains("User:app") && listed.lines()[1].contains("read"), "{listed:?}");
}

#[test]
fn a_broker_refuses_a_non_loopback_address_without_authentication_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let refused = Command::new(common::RILL)
        .args(["broker", "--listen", "0.0.0.0:0", "--admin-listen", "off", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run rill broker");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("--allow-insecure"), "{stderr}");
    assert!(!data.exists(), "refused before the data dir is touched");
    let data = data.to_str().expect("utf-8");
    let allowed = BrokerProcess::start_command(
        Command::new(common::RILL),
        &["broker", "--listen", "0.0.0.0:0", "--admin-listen", "off", "--data-dir", data, "--allow-insecure"],
    );
    let port = allowed.addr.rsplit(':').next().expect("a port");
    let loopback = format!("127.0.0.1:{port}");
    rill(&loopback, &["topic", "create", "open"]).ok();
    assert!(rill(&loopback, &["topic", "list"]).ok().contains("open"), "served on every address");
}
