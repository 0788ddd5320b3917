//! `rill quota` end to end: a real `rill broker` process and the `rill` binary (docs/kafka.md, "Client quotas").
//! Quotas set, listed and removed, kept across a restart; bad flags refused with a message and a non-zero exit;
//! with authorization on, a user without ALTER_CONFIGS on the cluster refused; and a node that kept quotas when
//! it ran alone refusing to start in a cluster, naming the file.

use crate::common;

use std::process::Command;

use common::cluster::start_as_cluster_node;
use common::{rill, BrokerProcess, RILL};

fn rows(listing: &str) -> Vec<Vec<String>> {
    listing.lines().skip(1).map(|line| line.split_whitespace().map(str::to_owned).collect()).collect()
}

#[test]
fn quotas_are_set_listed_removed_and_kept_and_bad_flags_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    {
        let broker = BrokerProcess::start(&data);
        let b = broker.addr.as_str();
        assert_eq!(rows(rill(b, &["quota", "list"]).ok()), Vec::<Vec<String>>::new());
        let set = rill(b, &["quota", "set", "--user", "app", "--producer-byte-rate", "1048576"]).ok().to_owned();
        // USER, CLIENT-ID, IP, PRODUCER B/S, CONSUMER B/S, MUTATIONS/S, REQUEST %, CONNECTIONS/S.
        assert_eq!(rows(&set), [["app", "-", "-", "1048576", "-", "-", "-", "-"]]);
        rill(b, &["quota", "set", "--default-user", "--client-id", "reports", "--consumer-byte-rate", "2048"]).ok();
        rill(b, &["quota", "set", "--user", "app", "--consumer-byte-rate", "4096"]).ok();
        let listed = rows(rill(b, &["quota", "list"]).ok());
        assert_eq!(
            listed,
            [
                ["<default>", "reports", "-", "-", "2048", "-", "-", "-"],
                ["app", "-", "-", "1048576", "4096", "-", "-", "-"]
            ]
        );
        // An address's connection rate and a user's topic changes (KIP-612, KIP-599).
        let ip =
            rill(b, &["quota", "set", "--ip", "::ffff:10.0.0.5", "--connection-creation-rate", "20"]).ok().to_owned();
        assert_eq!(rows(&ip), [["-", "-", "10.0.0.5", "-", "-", "-", "-", "20"]], "kept as its IPv4 address");
        let ci = rill(b, &["quota", "set", "--user", "ci", "--controller-mutation-rate", "10"]).ok().to_owned();
        assert_eq!(rows(&ci), [["ci", "-", "-", "-", "-", "10", "-", "-"]]);
        // The share of a thread's time a client id's requests may take (KIP-124).
        let dashboards =
            rill(b, &["quota", "set", "--client-id", "dashboards", "--request-percentage", "50"]).ok().to_owned();
        assert_eq!(rows(&dashboards), [["-", "dashboards", "-", "-", "-", "-", "50", "-"]]);
        rill(b, &["quota", "set", "--client-id", "d", "--request-percentage", "0"]).fails(2, "0 is not in 1..=");
        rill(b, &["quota", "set", "--ip", "10.0.0.5", "--request-percentage", "5"])
            .fails(1, "an ip takes connection_creation_rate alone");
        rill(b, &["quota", "remove", "--client-id", "dashboards", "--request-percentage"]).ok();
        rill(b, &["quota", "set", "--ip", "10.0.0.5", "--producer-byte-rate", "5"])
            .fails(1, "an ip takes connection_creation_rate alone");
        rill(b, &["quota", "set", "--ip", "10.0.0.5", "--user", "a", "--connection-creation-rate", "5"])
            .fails(2, "cannot be used with");
        rill(b, &["quota", "set", "--ip", "db-1", "--connection-creation-rate", "5"]).fails(2, "invalid");
        rill(b, &["quota", "remove", "--ip", "10.0.0.5"]).ok();
        rill(b, &["quota", "remove", "--user", "ci"]).ok();

        rill(b, &["quota", "set", "--user", "app"]).fails(1, "nothing to set");
        rill(b, &["quota", "set", "--producer-byte-rate", "5"]).fails(1, "--user NAME or --default-user");
        rill(b, &["quota", "set", "--user", "a", "--producer-byte-rate", "0"]).fails(2, "0 is not in 1..=");
        rill(b, &["quota", "set", "--user", "a", "--default-user", "--producer-byte-rate", "5"])
            .fails(2, "cannot be used with");
        rill(b, &["quota", "set", "--user", "", "--producer-byte-rate", "5"]).fails(1, "1 to 255 bytes");
        let long = "u".repeat(256);
        rill(b, &["quota", "set", "--user", &long, "--producer-byte-rate", "5"]).fails(1, "got 256 bytes");

        let removed = rill(b, &["quota", "remove", "--user", "app", "--producer-byte-rate"]).ok().to_owned();
        assert_eq!(rows(&removed), [["app", "-", "-", "-", "4096", "-", "-", "-"]]);
    }
    let broker = BrokerProcess::start(&data);
    let b = broker.addr.as_str();
    let kept = rows(rill(b, &["quota", "list"]).ok());
    assert_eq!(
        kept,
        [["<default>", "reports", "-", "-", "2048", "-", "-", "-"], ["app", "-", "-", "-", "4096", "-", "-", "-"]],
        "kept across a restart"
    );
    rill(b, &["quota", "remove", "--user", "app"]).ok();
    rill(b, &["quota", "remove", "--default-user", "--client-id", "reports"]).ok();
    assert_eq!(rows(rill(b, &["quota", "list"]).ok()), Vec::<Vec<String>>::new());
}

#[test]
fn changing_quotas_needs_alter_configs_on_the_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let token = {
        let open = BrokerProcess::start(&data);
        rill(&open.addr, &["user", "create", "app", "--password", "pw", "--token"]).ok().trim().to_owned()
    };
    let broker = common::AdminBroker::start_in(&data, &["--authorization", "on", "--super-users", "User:admin"]);
    let as_app = |args: &[&str]| {
        let mut command = Command::new(RILL);
        command.arg("--token").arg(&token).args(args).env("RILL_BROKER", &broker.addr).env_remove("RILL_TOKEN");
        common::run(&mut command, None)
    };
    as_app(&["quota", "set", "--user", "app", "--producer-byte-rate", "10"]).fails(1, "User:app");
    as_app(&["quota", "list"]).fails(1, "User:app");
}

#[test]
fn a_node_that_ran_alone_with_quotas_refuses_to_start_in_a_cluster_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("d1");
    {
        let broker = BrokerProcess::start(&data);
        rill(&broker.addr, &["quota", "set", "--default-client-id", "--producer-byte-rate", "100"]).ok();
    }
    let output = start_as_cluster_node(&data);
    let stderr = output.fails(1, "__quotas.json holds the client quotas this node kept when it ran alone");
    assert!(stderr.contains("rill quota set") && stderr.contains("move the file out"), "{stderr}");
}

#[test]
fn rill_client_id_names_the_commands_client_for_its_quota() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Samples of 100 ms: a client goes 1 s of its quota at once, then is held.
    let config = dir.path().join("rill.toml");
    std::fs::write(&config, "quota_window_ms = 100\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let broker = common::AdminBroker::start_in(&dir.path().join("data"), &["--config", &config]);
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "t"]).ok();
    rill(b, &["quota", "set", "--client-id", "importer", "--producer-byte-rate", "200000"]).ok();
    let throttles = || {
        let samples = common::cluster::scrape(&broker.admin).expect("/metrics answers");
        samples["rill_client_throttles_total{quota=\"producer_byte_rate\"}"]
    };
    let lines = format!("{}\n", "x".repeat(999)).repeat(300);
    common::rill_with_stdin(b, &["produce", "t"], lines.as_bytes()).ok();
    assert_eq!(throttles(), 0.0, "without --client-id the importer's quota does not apply");

    // 300 KB in one go, 100 KB past the first burst: the answer is held about 1.5 s.
    let started = std::time::Instant::now();
    let mut command = Command::new(RILL);
    command.args(["--client-id", "importer", "produce", "t"]).env("RILL_BROKER", b);
    common::run(&mut command, Some(lines.as_bytes())).ok();
    assert!(throttles() >= 1.0, "the importer's produce is throttled");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "held {:?}", started.elapsed());
    let mut bad = Command::new(RILL);
    bad.args(["--client-id", "not visible ascii", "topic", "list"]).env("RILL_BROKER", b);
    common::run(&mut bad, None).fails(1, "--client-id (RILL_CLIENT_ID)");
}
