//! Users and bearer tokens end to end: a real `rill broker` process and the `rill` binary (docs/security.md).

use crate::common;

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

/// `rill --token TOKEN ARGS` (RILL_TOKEN unset) against `broker`.
fn rill_with_token(broker: &str, token: &str, args: &[&str]) -> common::Output {
    let mut command = std::process::Command::new(common::RILL);
    command.arg("--token").arg(token).args(args).env("RILL_BROKER", broker).env_remove("RILL_TOKEN");
    common::run(&mut command, None)
}

#[test]
fn with_require_auth_a_call_needs_a_token_the_broker_issued_and_a_deleted_user_loses_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // Users are made before authentication is required: the first one cannot show a token it has not got.
    let open = BrokerProcess::start(&data);
    let token = rill(&open.addr, &["user", "create", "alice", "--password", "pw", "--token"]).ok().trim().to_owned();
    assert!(token.starts_with("rill_") && token.len() > 40, "{token}");
    rill(&open.addr, &["user", "create", "bob", "--password", "pw"]).ok();
    let bobs = rill(&open.addr, &["token", "create", "bob"]).ok().trim().to_owned();
    drop(open);

    let args = ["broker", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().expect("utf-8"), "--require-auth"];
    let broker = BrokerProcess::start_command(std::process::Command::new(common::RILL), &args);
    rill(&broker.addr, &["topic", "list"]).fails(1, "requires authentication");
    rill_with_token(&broker.addr, "rill_forged", &["topic", "list"]).fails(1, "the bearer token is not valid");
    rill_with_token(&broker.addr, &token, &["topic", "create", "orders"]).ok();
    let listed = run_with_env_token(&broker.addr, &bobs, &["topic", "list"]);
    assert!(listed.ok().contains("orders"), "RILL_TOKEN is read too: {listed:?}");
    let users = rill_with_token(&broker.addr, &token, &["user", "list"]);
    assert!(users.ok().contains("alice") && users.stdout.contains("bob"), "{users:?}");
    assert!(!users.stdout.contains(&token), "a token is never listed");

    rill_with_token(&broker.addr, &token, &["user", "delete", "bob"]).ok();
    rill_with_token(&broker.addr, &bobs, &["topic", "list"]).fails(1, "the bearer token is not valid");
}

fn run_with_env_token(broker: &str, token: &str, args: &[&str]) -> common::Output {
    let mut command = std::process::Command::new(common::RILL);
    command.args(args).env("RILL_BROKER", broker).env("RILL_TOKEN", token);
    common::run(&mut command, None)
}

#[test]
fn with_require_auth_a_client_certificate_whose_common_name_is_a_user_name_authenticates() {
    use common::pki::Ca;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let data = d.join("data");
    let ca_pem = ca.pem_path.to_str().expect("utf-8");
    let args = [
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--tls-cert",
        server.cert(),
        "--tls-key",
        server.key(),
        "--tls-client-ca",
        ca_pem,
        "--tls-client-auth",
        "optional",
        "--require-auth",
    ];
    let broker = BrokerProcess::start_command(std::process::Command::new(common::RILL), &args);
    let url = format!("https://{}", broker.addr);
    let rill_as = |leaf: Option<&common::pki::Leaf>| {
        let mut command = std::process::Command::new(common::RILL);
        command.args(["topic", "list", "--broker", &url, "--tls-ca", ca_pem]).env_remove("RILL_TOKEN");
        if let Some(leaf) = leaf {
            command.args(["--tls-cert", leaf.cert(), "--tls-key", leaf.key()]);
        }
        common::run(&mut command, None)
    };
    rill_as(None).fails(1, "requires authentication");
    let app = ca.issue(d, "app1", 2, false);
    rill_as(Some(&app)).ok();
    let unnamed = ca.issue(d, "not a user name", 3, false);
    rill_as(Some(&unnamed)).fails(1, "requires authentication");
}
