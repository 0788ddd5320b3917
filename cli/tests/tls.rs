//! TLS and mutual TLS end to end: a real `rill broker` process with certificates made in the test, and the
//! `rill` binary (and the client library) connecting over `https://`. Refusals must come as errors, quickly;
//! certificates must reload without a restart.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::pki::{self, Ca, Leaf};
use common::{rill, run, BrokerProcess, Output, DEADLINE, RILL};

/// A broker with TLS, started with `extra` flags after the usual ones.
fn tls_broker(dir: &Path, server: &Leaf, extra: &[&str]) -> BrokerProcess {
    let data = dir.join("data");
    let mut args = vec!["broker", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().expect("utf-8 path")];
    args.extend(["--tls-cert", server.cert(), "--tls-key", server.key()]);
    args.extend(extra);
    BrokerProcess::start_command(Command::new(RILL), &args)
}

/// `rill ARGS --broker https://ADDR --tls-ca CA` plus `extra` (client certificate flags).
fn rill_tls(broker: &BrokerProcess, ca: &Ca, args: &[&str], extra: &[&str], input: Option<&[u8]>) -> Output {
    let url = format!("https://{}", broker.addr);
    let mut command = Command::new(RILL);
    command.args(args).args(["--broker", &url, "--tls-ca", ca.pem_path.to_str().expect("utf-8")]).args(extra);
    run(&mut command, input)
}

/// Runs `check` until it returns true, failing the test past `DEADLINE`.
#[track_caller]
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn records_produced_over_tls_are_consumed_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server", 1, false);
    let broker = tls_broker(dir.path(), &server, &[]);
    rill_tls(&broker, &ca, &["topic", "create", "secure", "--partitions", "2"], &[], None).ok();
    let produced = rill_tls(&broker, &ca, &["produce", "secure", "--partition", "1"], &[], Some(b"one\ntwo\nthree\n"));
    produced.ok();
    let consumed = rill_tls(&broker, &ca, &["consume", "secure"], &[], None);
    assert_eq!(consumed.ok(), "one\ntwo\nthree\n");
    // RILL_BROKER may say https:// too; --tls-ca alone makes a bare HOST:PORT use TLS.
    let listed = run(
        Command::new(RILL)
            .args(["topic", "list", "--tls-ca", ca.pem_path.to_str().expect("utf-8")])
            .env("RILL_BROKER", &broker.addr),
        None,
    );
    assert!(listed.ok().contains("secure"), "{listed:?}");
}

#[test]
fn a_plaintext_client_of_a_tls_listener_and_a_tls_client_of_a_plaintext_one_fail_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server", 1, false);
    let tls = tls_broker(dir.path(), &server, &[]);
    let started = Instant::now();
    let plaintext = rill(&tls.addr, &["topic", "list"]);
    plaintext.fails(1, "use https://HOST:PORT");
    let plain = BrokerProcess::start(&dir.path().join("plain-data"));
    let tls_client = rill_tls(&plain, &ca, &["topic", "list"], &[], None);
    tls_client.fails(1, "without TLS");
    // Each is refused at its first byte: well within the 5 s connect timeout, nothing waits for a deadline.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn a_broker_certificate_the_client_does_not_trust_is_refused_naming_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server", 1, false);
    let broker = tls_broker(dir.path(), &server, &[]);
    let other_ca = Ca::new(dir.path(), "other-ca");
    rill_tls(&broker, &other_ca, &["topic", "list"], &[], None).fails(1, "not accepted (UnknownIssuer)");
    let expired = ca.issue(dir.path(), "expired-server", 2, true);
    let expired_broker = tls_broker(&dir.path().join("expired"), &expired, &[]);
    rill_tls(&expired_broker, &ca, &["topic", "list"], &[], None).fails(1, "not accepted (certificate expired");
}

#[test]
fn required_client_certificates_refuse_none_expired_foreign_and_self_signed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let broker = tls_broker(d, &server, &["--tls-client-ca", ca.pem_path.to_str().expect("utf-8")]);
    let good = ca.issue(d, "good-client", 2, false);
    let listed =
        rill_tls(&broker, &ca, &["topic", "create", "t"], &["--tls-cert", good.cert(), "--tls-key", good.key()], None);
    listed.ok();
    let expired = ca.issue(d, "expired-client", 3, true);
    let other_ca = Ca::new(d, "other-ca");
    let foreign = other_ca.issue(d, "foreign-client", 4, false);
    let self_signed = pki::self_signed(d, "self-signed-client");
    let refusals = [
        ("no certificate", None),
        ("an expired certificate", Some(&expired)),
        ("a certificate from another CA", Some(&foreign)),
        ("a self-signed certificate", Some(&self_signed)),
    ];
    for (what, leaf) in refusals {
        let flags = leaf.map(|l| vec!["--tls-cert", l.cert(), "--tls-key", l.key()]).unwrap_or_default();
        let started = Instant::now();
        let refused = rill_tls(&broker, &ca, &["topic", "list"], &flags, None);
        assert_eq!(refused.status.code(), Some(1), "{what} was not refused: {refused:?}");
        refused.fails(1, "--tls-cert and --tls-key");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: refused only after {:?}", started.elapsed());
    }
    // The good client still works after all those refusals.
    let listed =
        rill_tls(&broker, &ca, &["topic", "list"], &["--tls-cert", good.cert(), "--tls-key", good.key()], None);
    assert!(listed.ok().contains('t'));
}

#[test]
fn optional_client_certificates_accept_clients_with_and_without_one_but_not_a_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let ca_path = ca.pem_path.to_str().expect("utf-8");
    let broker = tls_broker(d, &server, &["--tls-client-ca", ca_path, "--tls-client-auth", "optional"]);
    rill_tls(&broker, &ca, &["topic", "create", "t"], &[], None).ok();
    let good = ca.issue(d, "good-client", 2, false);
    let listed =
        rill_tls(&broker, &ca, &["topic", "list"], &["--tls-cert", good.cert(), "--tls-key", good.key()], None);
    assert!(listed.ok().contains('t'));
    let other_ca = Ca::new(d, "other-ca");
    let foreign = other_ca.issue(d, "foreign-client", 4, false);
    let refused =
        rill_tls(&broker, &ca, &["topic", "list"], &["--tls-cert", foreign.cert(), "--tls-key", foreign.key()], None);
    assert_eq!(refused.status.code(), Some(1), "a certificate given is still checked: {refused:?}");
}

#[test]
fn certificates_reload_on_sighup_and_on_file_change_and_open_connections_keep_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let first = ca.issue(d, "server", 1, false);
    // A short poll, so the file-change reload comes quickly; SIGHUP is checked first, before a poll could.
    let config = d.join("rill.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nreload_interval_ms = 200\n",
            first.cert_path.to_str().expect("utf-8"),
            first.key_path.to_str().expect("utf-8")
        ),
    )
    .expect("write config");
    let data = d.join("data");
    let broker = BrokerProcess::start_command(
        Command::new(RILL),
        &[
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(pki::served_certificate(&broker.addr, &ca), first.der);

    // A connection opened before the reloads, used after them.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tls = rill_client::ClientTls::from_files(Some(&ca.pem_path), None, None).expect("client TLS");
    let config = rill_client::ClientConfig { tls: Some(tls), ..rill_client::ClientConfig::default() };
    let url = format!("https://{}", broker.addr);
    let admin = runtime.block_on(async {
        let admin = rill_client::Admin::new(rill_client::Client::connect_with(&url, config).await.expect("connect"));
        admin
            .create_topic("before", 1, rill_client::TopicConfig::default())
            .await
            .expect("create over the first connection");
        admin
    });

    // A broken pair (the key of another certificate) is refused and the certificate in use kept.
    let second = ca.issue(d, "second", 2, false);
    let mismatched = ca.issue(d, "mismatched", 9, false);
    std::fs::copy(&second.cert_path, &first.cert_path).expect("copy cert");
    std::fs::copy(&mismatched.key_path, &first.key_path).expect("copy key");
    common::signal(&broker.child, libc::SIGHUP);
    assert_eq!(pki::served_certificate(&broker.addr, &ca), first.der, "a failed reload keeps the certificate");

    // SIGHUP with a whole new pair: new connections get it.
    second.install_over(&first);
    common::signal(&broker.child, libc::SIGHUP);
    wait_until("the SIGHUP reload", || pki::served_certificate(&broker.addr, &ca) == second.der);

    // Files replaced, no signal: the poll notices.
    let third = ca.issue(d, "third", 3, false);
    third.install_over(&first);
    wait_until("the reload on file change", || pki::served_certificate(&broker.addr, &ca) == third.der);

    runtime.block_on(async {
        admin
            .create_topic("after", 1, rill_client::TopicConfig::default())
            .await
            .expect("the connection opened before the reloads still works");
        let topics = admin.list_topics().await.expect("list");
        assert!(topics.iter().any(|t| t.name == "after"), "{topics:?}");
    });
}

#[test]
fn a_missing_unreadable_or_mismatched_certificate_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let other = ca.issue(d, "other", 2, false);
    let data = d.join("data");
    let data = data.to_str().expect("utf-8");
    let missing = d.join("missing.pem");
    let missing = missing.to_str().expect("utf-8");
    let not_pem = d.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let not_pem = not_pem.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 4] = [
        (&["--tls-cert", missing, "--tls-key", server.key()], missing),
        (&["--tls-cert", not_pem, "--tls-key", server.key()], "holds no certificate"),
        (&["--tls-cert", server.cert(), "--tls-key", other.key()], "do not match"),
        (&["--tls-cert", server.cert(), "--tls-key", server.key(), "--tls-client-ca", missing], missing),
    ];
    for (flags, needle) in cases {
        let mut command = Command::new(RILL);
        command.args(["broker", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--data-dir", data]).args(flags);
        let output = run(&mut command, None);
        output.fails(1, needle);
    }
    let output = run(
        Command::new(RILL).args(["broker", "--listen", "127.0.0.1:0", "--data-dir", data, "--tls-cert", server.cert()]),
        None,
    );
    assert_eq!(output.status.code(), Some(2), "clap refuses --tls-cert without --tls-key: {output:?}");
}

#[test]
fn the_rust_client_presents_its_certificate_and_reads_what_it_wrote() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let broker = tls_broker(d, &server, &["--tls-client-ca", ca.pem_path.to_str().expect("utf-8")]);
    let client = ca.issue(d, "client", 2, false);
    let input = b"a\nb\n";
    let flags = ["--tls-cert", client.cert(), "--tls-key", client.key()];
    rill_tls(&broker, &ca, &["topic", "create", "m"], &flags, None).ok();
    rill_tls(&broker, &ca, &["produce", "m"], &flags, Some(input)).ok();
    assert_eq!(rill_tls(&broker, &ca, &["consume", "m"], &flags, None).ok(), "a\nb\n");
    // Through RILL_CLIENT_TLS_* as well as flags.
    let output = run(
        Command::new(RILL)
            .args(["consume", "m", "--broker", &format!("https://{}", broker.addr)])
            .env("RILL_CLIENT_TLS_CA", &ca.pem_path)
            .env("RILL_CLIENT_TLS_CERT", &client.cert_path)
            .env("RILL_CLIENT_TLS_KEY", &client.key_path),
        None,
    );
    assert_eq!(output.ok(), "a\nb\n");
}

#[test]
fn a_cluster_whose_nodes_require_client_certificates_replicates_over_tls() {
    let certs = tempfile::tempdir().expect("temp dir");
    let d = certs.path();
    let ca = Ca::new(d, "ca");
    // One certificate for every node (all on 127.0.0.1); it is also each node's client certificate to the others.
    let node = ca.issue(d, "node", 1, false);
    let config = format!(
        "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n\
         [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n",
        node.cert(),
        node.key(),
        ca.pem_path.to_str().expect("utf-8")
    );
    let cluster = common::cluster::Cluster::start(&config);
    let client = ca.issue(d, "client", 2, false);
    let ca_path = ca.pem_path.to_str().expect("utf-8");
    let tls_rill = |args: &[&str], input: Option<&[u8]>| {
        let mut command = Command::new(RILL);
        command.args(args).args(["--broker", &cluster.all(), "--tls-ca", ca_path]);
        command.args(["--tls-cert", client.cert(), "--tls-key", client.key()]);
        run(&mut command, input)
    };
    // The quorum forms (raft and heartbeats between the nodes, over mutual TLS) before a topic can be created.
    wait_until("an RF 3 topic is created", || {
        tls_rill(&["topic", "create", "orders", "--replication-factor", "3"], None).status.success()
    });
    wait_until("3 in-sync replicas (replication over TLS)", || {
        let described = tls_rill(&["topic", "describe", "orders"], None);
        described.status.success()
            && described
                .stdout
                .lines()
                .any(|line| line.split_whitespace().nth(4).is_some_and(|isr| isr.split(',').count() == 3))
    });
    let input = b"r1\nr2\nr3\n";
    tls_rill(&["produce", "orders", "--acks", "all"], Some(input)).ok();
    assert_eq!(tls_rill(&["consume", "orders"], None).ok(), "r1\nr2\nr3\n");
}

/// The value of `rill_tls_handshake_failures_total` in the broker's `/metrics`.
fn handshake_failures(admin: &str) -> f64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let line = answer.lines().find_map(|line| line.strip_prefix("rill_tls_handshake_failures_total "));
    line.and_then(|value| value.trim().parse().ok()).unwrap_or_else(|| panic!("no handshake counter in {answer}"))
}

#[test]
fn failed_handshakes_are_counted_in_the_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new(d, "ca");
    let server = ca.issue(d, "server", 1, false);
    let ca_path = ca.pem_path.to_str().expect("utf-8");
    let broker = common::AdminBroker::start(&[
        "--tls-cert",
        server.cert(),
        "--tls-key",
        server.key(),
        "--tls-client-ca",
        ca_path,
    ]);
    let client = ca.issue(d, "client", 2, false);
    let url = format!("https://{}", broker.addr);
    let with_cert = ["--broker", &url, "--tls-ca", ca_path, "--tls-cert", client.cert(), "--tls-key", client.key()];
    run(Command::new(RILL).args(["topic", "create", "t"]).args(with_cert), None).ok();
    assert_eq!(handshake_failures(&broker.admin), 0.0, "a good handshake is no failure");
    run(Command::new(RILL).args(["topic", "list", "--broker", &url, "--tls-ca", ca_path]), None).fails(1, "--tls-cert");
    let after_no_certificate = handshake_failures(&broker.admin);
    assert!(after_no_certificate >= 1.0, "a client without a certificate: {after_no_certificate}");
    rill(&broker.addr, &["topic", "list"]).fails(1, "use https://HOST:PORT");
    wait_until("the plaintext client counted", || handshake_failures(&broker.admin) > after_no_certificate);
}
