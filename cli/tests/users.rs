//! Users and bearer tokens end to end: a real `rill broker` process and the `rill` binary (docs/security.md).

mod common;

use common::{rill, rill_with_stdin, BrokerProcess};

#[test]
fn users_are_created_listed_without_secrets_deleted_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data);
    let created = rill(&broker.addr, &["user", "create", "alice", "--password", "pencil-123"]);
    assert_eq!(created.ok(), "created user alice\n");
    rill_with_stdin(
        &broker.addr,
        &["user", "create", "bob", "--password-stdin", "--mechanism", "SCRAM-SHA-512"],
        b"hunter2\n",
    )
    .ok();
    let listed = rill(&broker.addr, &["user", "list"]);
    let lines = listed.lines();
    assert_eq!(lines.len(), 3, "{listed:?}");
    assert!(lines[0].starts_with("USER") && lines[0].contains("MECHANISMS"), "{listed:?}");
    assert!(lines[1].starts_with("alice") && lines[1].contains("SCRAM-SHA-256,SCRAM-SHA-512"), "{listed:?}");
    assert!(lines[2].starts_with("bob") && lines[2].contains("SCRAM-SHA-512") && !lines[2].contains("256"));
    assert!(!listed.stdout.contains("pencil") && !listed.stdout.contains("hunter2"), "{listed:?}");
    let stored = std::fs::read_to_string(data.join("__users.json")).expect("users file");
    assert!(!stored.contains("pencil-123") && !stored.contains("hunter2"), "passwords are never stored");

    rill(&broker.addr, &["user", "create", "alice", "--password", "x"]).fails(1, "user \"alice\" already exists");
    rill(&broker.addr, &["user", "create", "a,b", "--password", "x"])
        .fails(1, "only ASCII letters, digits, '.', '_', '-' and '@' are allowed");
    rill(&broker.addr, &["user", "create", "carol", "--password", "x", "--mechanism", "MD5"])
        .fails(1, "SCRAM-SHA-256 and SCRAM-SHA-512 are supported");

    let addr = broker.addr.clone();
    drop(broker);
    let broker = BrokerProcess::start_on(&data, &addr);
    assert_eq!(rill(&broker.addr, &["user", "list"]).lines().len(), 3, "users survive a restart");
    assert_eq!(rill(&broker.addr, &["user", "delete", "alice"]).ok(), "deleted user alice\n");
    rill(&broker.addr, &["user", "delete", "alice"]).fails(1, "unknown user \"alice\"");
    let listed = rill(&broker.addr, &["user", "list"]);
    assert_eq!(listed.lines().len(), 2, "{listed:?}");
    assert!(listed.lines()[1].starts_with("bob"));
}

#[test]
fn a_node_of_a_cluster_refuses_user_commands_saying_users_are_not_replicated() {
    let cluster = common::cluster::Cluster::start("");
    for args in [&["user", "list"][..], &["user", "create", "alice", "--password", "x"], &["token", "create", "alice"]]
    {
        rill(cluster.addr(1), args).fails(1, "users are not replicated across a cluster yet");
    }
}
