//! `rill client-metrics` end to end: a real `rill broker` process and the `rill` binary (docs/observability.md,
//! "Kafka clients' own metrics"). Subscriptions set, changed key by key, listed beside the node's own, removed
//! and kept across a restart; the node's own refused; bad values and flags refused with what is allowed and a
//! non-zero exit; with authorization on, a user without ALTER_CONFIGS on the cluster refused.

use crate::common;

use std::process::Command;

use common::{rill, AdminBroker, RILL};

fn rows(listing: &str) -> Vec<Vec<String>> {
    listing.lines().skip(1).map(|line| line.split_whitespace().map(str::to_owned).collect()).collect()
}

#[test]
fn subscriptions_are_set_changed_listed_removed_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let node_own = ["--client-metrics", "org.apache.kafka.consumer."];
    {
        let broker = AdminBroker::start_in(&data, &node_own);
        let b = broker.addr.as_str();
        // NAME, METRICS, INTERVAL MS, MATCH, SET BY ("node settings" and "<every client>" are two words each).
        let own = ["cli", "org.apache.kafka.consumer.", "300000", "<every", "client>", "node", "settings"];
        assert_eq!(rows(rill(b, &["client-metrics", "list"]).ok()), [own]);
        let set = ["client-metrics", "set", "producers", "--metrics", "org.apache.kafka.producer."];
        let made =
            rill(b, &[&set[..], &["--interval-ms", "60000", "--match", "client_id=app-.*"]].concat()).ok().to_owned();
        assert_eq!(rows(&made), [["producers", "org.apache.kafka.producer.", "60000", "client_id=app-.*", "api"]]);
        // One key changed, the others kept.
        let changed = rill(b, &["client-metrics", "set", "producers", "--interval-ms", "1000"]).ok().to_owned();
        assert_eq!(rows(&changed), [["producers", "org.apache.kafka.producer.", "1000", "client_id=app-.*", "api"]]);
        let matched = "client_id=billing-.*,client_software_name=apache-kafka-java";
        rill(b, &["client-metrics", "set", "billing", "--metrics", "*", "--match", matched]).ok();
        let validated =
            rill(b, &["client-metrics", "set", "checked", "--metrics", "*", "--validate-only"]).ok().to_owned();
        assert_eq!(validated.trim(), "no client metrics subscription \"checked\" now");
        let unmatched = rill(b, &["client-metrics", "remove", "producers", "--match"]).ok().to_owned();
        assert_eq!(rows(&unmatched), [["producers", "org.apache.kafka.producer.", "1000", "<every", "client>", "api"]]);

        rill(b, &["client-metrics", "set", "cli", "--metrics", "*"]).fails(1, "is the node's own");
        rill(b, &["client-metrics", "set", "s", "--interval-ms", "50"]).fails(1, "interval.ms");
        rill(b, &["client-metrics", "set", "s", "--match", "host=.*"]).fails(1, "client_software_name");
        rill(b, &["client-metrics", "set", "s", "--match", "client_id=("])
            .fails(1, "\"(\" is not a regular expression (unclosed group)");
        rill(b, &["client-metrics", "set", "s"]).fails(1, "nothing to set");
        rill(b, &["client-metrics", "set", "s", "--interval-ms", "x"]).fails(2, "invalid value");
        let long = "s".repeat(256);
        rill(b, &["client-metrics", "set", &long, "--metrics", "*"]).fails(1, "1 to 255 characters");
    }
    let broker = AdminBroker::start_in(&data, &node_own);
    let b = broker.addr.as_str();
    let kept = rows(rill(b, &["client-metrics", "list"]).ok());
    let names: Vec<&str> = kept.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(names, ["cli", "billing", "producers"], "kept across a restart, the node's own first");
    let billing = ["billing", "*", "300000", "client_id=billing-.*,client_software_name=apache-kafka-java", "api"];
    assert_eq!(kept[1], billing, "the selectors in name order");
    let gone = rill(b, &["client-metrics", "remove", "producers"]).ok().to_owned();
    assert_eq!(gone.trim(), "no client metrics subscription \"producers\" now");
    rill(b, &["client-metrics", "remove", "billing"]).ok();
    assert_eq!(rows(rill(b, &["client-metrics", "list"]).ok()).len(), 1, "the node's own is left");
}

#[test]
fn changing_subscriptions_needs_alter_configs_on_the_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let token = {
        let open = common::BrokerProcess::start(&data);
        rill(&open.addr, &["user", "create", "app", "--password", "pw", "--token"]).ok().trim().to_owned()
    };
    let broker = AdminBroker::start_in(&data, &["--authorization", "on", "--super-users", "User:admin"]);
    let as_app = |args: &[&str]| {
        let mut command = Command::new(RILL);
        command.arg("--token").arg(&token).args(args).env("RILL_BROKER", &broker.addr).env_remove("RILL_TOKEN");
        common::run(&mut command, None)
    };
    as_app(&["client-metrics", "set", "s", "--metrics", "*"]).fails(1, "User:app");
    as_app(&["client-metrics", "list"]).fails(1, "User:app");
}
