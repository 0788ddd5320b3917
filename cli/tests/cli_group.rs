//! `rill group ...` as the built binary against a real `rill broker` process: describe (committed offset, end
//! offset, lag) and reset-offsets to each kind of target, and their errors.

mod common;

use common::{rill, rill_with_stdin, BrokerProcess};

fn broker_with_records() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "events", "--partitions", "2"]).ok();
    rill_with_stdin(b, &["produce", "events", "--partition", "0"], b"a\nb\nc\nd\n").ok();
    rill_with_stdin(b, &["produce", "events", "--partition", "1"], b"x\ny\n").ok();
    (dir, broker)
}

/// `rill group describe ARGS` partition rows as words (TOPIC to LAG), without the title and header lines.
fn rows(broker: &str, args: &[&str]) -> Vec<Vec<String>> {
    let mut full = vec!["group", "describe"];
    full.extend_from_slice(args);
    let output = rill(broker, &full);
    let text = output.ok();
    let header = ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"];
    assert!(text.lines().any(|l| l.split_whitespace().eq(header)), "{text}");
    text.lines()
        .skip_while(|l| !l.starts_with("TOPIC"))
        .skip(1)
        .map(|l| l.split_whitespace().take(5).map(str::to_owned).collect())
        .collect()
}

#[test]
fn describe_shows_committed_end_and_lag_per_partition() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    rill(b, &["consume", "events", "--group", "g", "--partition", "0", "--max-messages", "3"]).ok();
    assert_eq!(rows(b, &["g"]), [["events", "0", "3", "4", "1"]], "only what the group committed");
    assert_eq!(rows(b, &["g", "--topic", "events"]), [["events", "0", "3", "4", "1"]]);
    assert!(rows(b, &["g", "--topic", "other"]).is_empty(), "--topic only filters");
    let described = rill(b, &["group", "describe", "g"]);
    assert!(described.ok().starts_with("group g (empty, no members)\n"), "{described:?}");
    rill(b, &["group", "describe", "nobody"]).fails(1, "unknown group \"nobody\"");
}

#[test]
fn reset_offsets_moves_the_group_to_each_kind_of_target() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    let reset = |to: &[&str]| {
        let mut args = vec!["group", "reset-offsets", "g", "--topic", "events"];
        args.extend_from_slice(to);
        rill(b, &args).ok().to_owned()
    };

    let printed = reset(&["--to-latest"]);
    assert!(printed.starts_with("group g reset\n"), "{printed}");
    assert_eq!(rows(b, &["g"]), [["events", "0", "4", "4", "0"], ["events", "1", "2", "2", "0"]]);
    assert_eq!(rill(b, &["consume", "events", "--group", "g"]).ok(), "", "nothing left to read");

    reset(&["--to-earliest"]);
    assert_eq!(rows(b, &["g"]), [["events", "0", "0", "4", "4"], ["events", "1", "0", "2", "2"]]);

    reset(&["--partition", "0", "--to-offset", "2"]);
    assert_eq!(rows(b, &["g"])[0], ["events", "0", "2", "4", "2"]);
    assert_eq!(rill(b, &["consume", "events", "--group", "g", "--partition", "0"]).ok(), "c\nd\n");

    reset(&["--to-offset", "99"]);
    assert_eq!(rows(b, &["g"]), [["events", "0", "4", "4", "0"], ["events", "1", "2", "2", "0"]], "clamped to the end");

    // By time: far in the past is the beginning, far in the future the end.
    reset(&["--to-time", "2000-01-01T00:00:00Z"]);
    assert_eq!(rows(b, &["g"])[0], ["events", "0", "0", "4", "4"]);
    reset(&["--to-time", "2999-01-01T00:00:00Z"]);
    assert_eq!(rows(b, &["g"])[0], ["events", "0", "4", "4", "0"]);
}

#[test]
fn reset_offsets_of_an_unknown_topic_or_partition_fails_with_exit_1() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    rill(b, &["group", "reset-offsets", "g", "--topic", "nope", "--to-earliest"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["group", "reset-offsets", "g", "--topic", "events", "--partition", "9", "--to-earliest"])
        .fails(1, "partition 9");
}
