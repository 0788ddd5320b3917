//! `rill topic delete-records` against a real `rill broker` process: records before an offset go for good, the
//! topic's consumers start after them, reads below them are refused, and a crash of the broker keeps it so.

use crate::common;

use common::{rill, rill_with_stdin, BrokerProcess};

fn values(from: usize, to: usize) -> Vec<u8> {
    (from..to).map(|i| format!("v{i}\n")).collect::<String>().into_bytes()
}

/// The offsets and values `rill consume --from-beginning` prints, in order.
fn consumed_from_beginning(b: &str, topic: &str) -> Vec<(i64, String)> {
    let output = rill(b, &["consume", topic, "--from-beginning", "--format", "json"]);
    output
        .ok()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (record["offset"].as_i64().expect("offset"), record["value"].as_str().expect("value").to_owned())
        })
        .collect()
}

/// Partition `p`'s log start offset, from `rill topic describe`.
fn log_start(b: &str, topic: &str, p: usize) -> i64 {
    let output = rill(b, &["topic", "describe", topic]);
    let text = output.ok();
    let row = text.lines().skip_while(|l| !l.starts_with("PARTITION")).nth(1 + p).expect("a partition row");
    row.split_whitespace().nth(1).expect("START").parse().expect("a number")
}

#[test]
fn records_before_an_offset_are_gone_for_consumers_and_after_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data);
    let b = broker.addr.clone();
    let b = b.as_str();
    rill(b, &["topic", "create", "orders", "--partitions", "2"]).ok();
    rill_with_stdin(b, &["produce", "orders", "--partition", "0"], &values(0, 100)).ok();

    let deleted = rill(b, &["topic", "delete-records", "orders", "--partition", "0", "--before", "40"]);
    assert_eq!(
        deleted.ok(),
        "topic \"orders\" partition 0: records before 40 deleted; log start offset 40\n",
        "{deleted:?}"
    );
    assert_eq!(log_start(b, "orders", 0), 40);
    assert_eq!(log_start(b, "orders", 1), 0, "the other partition keeps its records");
    let consumed = consumed_from_beginning(b, "orders");
    assert_eq!(consumed.len(), 60, "{consumed:?}");
    assert_eq!(consumed[0], (40, "v40".to_owned()));
    assert_eq!(consumed[59], (99, "v99".to_owned()));
    rill(b, &["consume", "orders", "--partition", "0", "--offset", "10"]).fails(1, "holds offsets 40 to 100");

    // An older offset answers the start as it is; past the high watermark and unknown names are refused.
    let again = rill(b, &["topic", "delete-records", "orders", "--partition", "0", "--before", "10"]);
    assert!(again.ok().ends_with("log start offset 40\n"), "{again:?}");
    rill(b, &["topic", "delete-records", "orders", "--partition", "0", "--before", "101"])
        .fails(1, "past the high watermark 100");
    rill(b, &["topic", "delete-records", "orders", "--partition", "7", "--before", "1"])
        .fails(1, "unknown partition 7");
    rill(b, &["topic", "delete-records", "nope", "--partition", "0", "--before", "1"])
        .fails(1, "unknown topic \"nope\"");
    rill(b, &["topic", "delete-records", "orders"]).fails(1, "--offset-json-file");
    assert_eq!(log_start(b, "orders", 0), 40);

    // Kafka's offset JSON file; -1 is the high watermark.
    let file = dir.path().join("purge.json");
    std::fs::write(&file, r#"{"partitions": [{"topic": "orders", "partition": 1, "offset": -1}], "version": 1}"#)
        .expect("write");
    rill_with_stdin(b, &["produce", "orders", "--partition", "1"], &values(0, 5)).ok();
    let purged = rill(b, &["topic", "delete-records", "--offset-json-file", file.to_str().expect("utf-8")]);
    assert_eq!(purged.ok(), "topic \"orders\" partition 1: records before -1 deleted; log start offset 5\n");

    // A crash (SIGKILL) keeps both: the start was fsynced before the answer.
    let addr = broker.addr.clone();
    broker.kill();
    let broker = BrokerProcess::start_on(&data, &addr);
    let b = broker.addr.as_str();
    assert_eq!((log_start(b, "orders", 0), log_start(b, "orders", 1)), (40, 5));
    let consumed = consumed_from_beginning(b, "orders");
    assert_eq!(consumed.first(), Some(&(40, "v40".to_owned())));
    assert_eq!(consumed.len(), 60);
    rill_with_stdin(b, &["produce", "orders", "--partition", "0"], &values(100, 101)).ok();
    assert_eq!(consumed_from_beginning(b, "orders").len(), 61);
}
