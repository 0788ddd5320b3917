//! `rill topic ...` and what every client subcommand shares (`--broker`, `RILL_BROKER`, `--help`, errors),
//! run as the built binary against a real `rill broker` process.

use crate::common;

use common::{dead_address, rill, BrokerProcess, RILL};

fn broker() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    (dir, broker)
}

#[test]
fn a_topic_is_created_listed_described_grown_and_deleted() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    assert_eq!(
        rill(b, &["topic", "create", "orders", "--partitions", "3"]).ok(),
        "created topic \"orders\" with 3 partitions\n"
    );
    assert_eq!(rill(b, &["topic", "create", "one"]).ok(), "created topic \"one\" with 1 partition\n");

    let list = rill(b, &["topic", "list"]);
    let lines = list.lines();
    assert_eq!(lines.len(), 3, "{list:?}");
    assert!(lines[0].starts_with("TOPIC") && lines[0].contains("PARTITIONS"), "{list:?}");
    assert_eq!(lines[1].split_whitespace().take(2).collect::<Vec<_>>(), ["one", "1"]);
    assert_eq!(lines[2].split_whitespace().take(2).collect::<Vec<_>>(), ["orders", "3"]);

    rill(b, &["produce", "orders", "--partition", "1", "--value", "x"]).ok();
    let describe = rill(b, &["topic", "describe", "orders"]);
    let text = describe.ok();
    assert!(text.starts_with("topic              orders\npartitions         3\n"), "{text}");
    let rows: Vec<Vec<&str>> =
        text.lines().skip_while(|l| !l.starts_with("PARTITION")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["PARTITION", "START", "END", "RECORDS", "BYTES", "SEGMENTS", "CACHE_HITS", "CACHE_MISSES"]);
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(&rows[2][..4], ["1", "0", "1", "1"], "partition 1 holds the record: {text}");
    assert!(rows[2][4].parse::<u64>().expect("bytes") > 0, "{text}");
    assert_eq!(&rows[1][..4], ["0", "0", "0", "0"], "{text}");

    assert_eq!(
        rill(b, &["topic", "add-partitions", "orders", "--count", "5"]).ok(),
        "topic \"orders\" now has 5 partitions\n"
    );
    let described = rill(b, &["topic", "describe", "orders"]);
    assert!(described.ok().contains("partitions         5"), "{described:?}");

    assert_eq!(rill(b, &["topic", "delete", "orders"]).ok(), "deleted topic \"orders\"\n");
    let list = rill(b, &["topic", "list"]);
    assert!(!list.ok().contains("orders"), "{list:?}");
}

#[test]
fn topic_settings_given_at_create_are_shown_by_describe() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    let args = [
        "topic",
        "create",
        "audit",
        "--durability",
        "always",
        "--retention-ms",
        "3600000",
        "--retention-bytes",
        "1048576",
        "--segment-bytes",
        "16777216",
    ];
    rill(b, &args).ok();
    let describe = rill(b, &["topic", "describe", "audit"]);
    let settings: Vec<Vec<&str>> = describe.ok().lines().map(|l| l.split_whitespace().collect()).collect();
    for expected in [
        ["durability", "always"],
        ["retention_ms", "3600000"],
        ["retention_bytes", "1048576"],
        ["segment_bytes", "16777216"],
    ] {
        assert!(settings.contains(&expected.to_vec()), "{expected:?} in {describe:?}");
    }
    let list = rill(b, &["topic", "list"]);
    assert_eq!(list.lines()[1].split_whitespace().collect::<Vec<_>>(), ["audit", "1", "always", "3600000", "1048576"]);
}

/// Kafka's retention.ms default is 7 days and -1 keeps forever; the broker, the proto and `--help` say the same.
#[test]
fn a_topic_keeps_records_7_days_by_default_and_forever_with_minus_one() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "weekly"]).ok();
    rill(b, &["topic", "create", "archive", "--retention-ms", "-1", "--retention-bytes", "forever"]).ok();
    let setting = |topic: &str, name: &str| {
        let output = rill(b, &["topic", "describe", topic]);
        let describe = output.ok();
        let line = describe.lines().find(|l| l.split_whitespace().next() == Some(name)).map(str::to_owned);
        line.unwrap_or_else(|| panic!("{name} missing from {describe:?}"))
    };
    assert_eq!(setting("weekly", "retention_ms").split_whitespace().nth(1), Some("604800000"));
    assert_eq!(setting("weekly", "retention_bytes").split_whitespace().nth(1), Some("forever"));
    assert_eq!(setting("archive", "retention_ms").split_whitespace().nth(1), Some("forever"));
    assert_eq!(setting("archive", "retention_bytes").split_whitespace().nth(1), Some("forever"));
    rill(b, &["topic", "create", "bad", "--retention-ms", "-2"]).fails(2, "is not a whole number, -1 or forever");
}

#[test]
fn topic_errors_are_one_line_naming_the_topic_with_exit_1() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "orders"]).ok();
    rill(b, &["topic", "create", "orders"]).fails(1, "topic \"orders\" already exists");
    rill(b, &["topic", "describe", "nope"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["topic", "delete", "nope"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["topic", "add-partitions", "nope", "--count", "2"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["topic", "add-partitions", "orders", "--count", "1"]).fails(1, "error: ");
    rill(b, &["topic", "create", "bad/name"]).fails(1, "invalid");
}

#[test]
fn if_not_exists_and_if_exists_make_create_and_delete_idempotent() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "orders", "--if-not-exists"]).ok();
    let again = rill(b, &["topic", "create", "orders", "--partitions", "3", "--if-not-exists"]).ok().to_owned();
    assert_eq!(again, "topic \"orders\" exists already\n");
    assert!(rill(b, &["topic", "describe", "orders"]).ok().contains("partitions         1"), "left as it was");
    rill(b, &["topic", "create", "bad/name", "--if-not-exists"]).fails(1, "invalid");
    rill(b, &["topic", "delete", "orders", "--if-exists"]).ok();
    let gone = rill(b, &["topic", "delete", "orders", "--if-exists"]).ok().to_owned();
    assert_eq!(gone, "no topic \"orders\": nothing to delete\n");
    rill(b, &["topic", "delete", "orders"]).fails(1, "unknown topic \"orders\"");
}

#[test]
fn a_topic_created_without_partitions_gets_the_brokers_default() {
    let broker = common::AdminBroker::start(&["--default-partitions", "4"]);
    let created = rill(&broker.addr, &["topic", "create", "wide"]).ok().to_owned();
    assert_eq!(created, "created topic \"wide\" with 4 partitions\n");
}

#[test]
fn bad_flags_exit_2_with_clap_naming_the_flag() {
    let b = dead_address();
    rill(&b, &["topic", "create", "t", "--partitions", "three"]).fails(2, "--partitions");
    // 0 is not a count, and not how to ask for the broker's default (leave --partitions out).
    rill(&b, &["topic", "create", "t", "--partitions", "0"]).fails(2, "0 is not in 1..");
    rill(&b, &["topic", "create", "t", "--durability", "sometimes"]).fails(2, "always, interval, never");
    rill(&b, &["topic", "add-partitions", "t"]).fails(2, "--count");
    rill(&b, &["topic", "frobnicate"]).fails(2, "frobnicate");
    rill(&b, &["produce", "t", "--acks", "most"]).fails(2, "none, leader, durable, all");
    rill(&b, &["produce", "t", "--compression", "brotli"]).fails(2, "none, gzip, snappy, lz4, zstd");
    rill(&b, &["produce", "t", "--compression", "lz4", "--compression-level", "3"]).fails(1, "gzip or zstd");
    rill(&b, &["produce", "t", "--compression", "zstd", "--compression-level", "-131073"]).fails(1, "-131072 to 22");
    rill(&b, &["produce", "t", "--header", "novalue", "--value", "v"]).fails(2, "KEY=VALUE");
    rill(&b, &["produce", "t", "--key", "k", "--key-separator", ":"]).fails(2, "cannot be used with");
    rill(&b, &["consume", "t", "--offset", "3", "--from-beginning"]).fails(2, "cannot be used with");
    rill(&b, &["consume", "t", "--offset=-1"]).fails(2, "--offset");
    rill(&b, &["consume", "t", "--from-time", "yesterday"]).fails(2, "RFC 3339");
    rill(&b, &["consume", "t", "--format", "xml"]).fails(2, "--format");
    rill(&b, &["group", "reset-offsets", "g", "--topic", "t"]).fails(2, "--to-earliest");
    rill(&b, &["group", "reset-offsets", "g", "--topic", "t", "--to-latest", "--to-offset", "3"])
        .fails(2, "cannot be used with");
}

#[test]
fn every_client_subcommand_names_the_unreachable_broker_and_how_to_change_it() {
    let dead = dead_address();
    let commands: [&[&str]; 11] = [
        &["topic", "create", "t"],
        &["topic", "list"],
        &["topic", "describe", "t"],
        &["topic", "delete", "t"],
        &["topic", "add-partitions", "t", "--count", "2"],
        &["produce", "t", "--value", "v"],
        &["consume", "t"],
        &["group", "list"],
        &["group", "describe", "g"],
        &["group", "reset-offsets", "g", "--topic", "t", "--to-earliest"],
        &["consume", "t", "--follow", "--group", "g"],
    ];
    for args in commands {
        let output = rill(&dead, args);
        let stderr = output.fails(1, &format!("cannot reach the broker at {dead}"));
        assert!(stderr.contains("--broker or RILL_BROKER"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_broker_flag_overrides_rill_broker_and_the_default_is_the_brokers_own_address() {
    let (_dir, broker) = broker();
    // RILL_BROKER points nowhere; --broker wins.
    let output = rill(&dead_address(), &["topic", "create", "t", "--broker", &broker.addr]);
    assert_eq!(output.ok(), "created topic \"t\" with 1 partition\n");
    // Neither set: the default address, named in --help.
    let help =
        common::run(std::process::Command::new(RILL).args(["topic", "list", "--help"]).env_remove("RILL_BROKER"), None);
    assert!(help.ok().contains("[default: 127.0.0.1:9092]"), "{help:?}");
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let commands: [&[&str]; 16] = [
        &[],
        &["broker"],
        &["topic"],
        &["topic", "create"],
        &["topic", "list"],
        &["topic", "describe"],
        &["topic", "delete"],
        &["topic", "add-partitions"],
        &["topic", "delete-records"],
        &["produce"],
        &["consume"],
        &["group"],
        &["group", "list"],
        &["group", "describe"],
        &["group", "reset-offsets"],
        &["top"],
    ];
    for args in commands {
        let mut command = std::process::Command::new(RILL);
        command.args(args).arg("--help");
        let help = common::run(&mut command, None);
        let text = help.ok();
        assert!(text.contains("\nExamples:\n  ") && text.contains("  rill "), "rill {args:?} --help: {text}");
        assert!(text.contains("Usage: rill"), "{text}");
    }
}

/// The value of setting `name` in `rill topic describe`'s settings table, and the "set on the topic" line.
fn described_setting(b: &str, topic: &str, name: &str) -> (String, String) {
    let output = rill(b, &["topic", "describe", topic]);
    let text = output.ok();
    let value = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{name} missing from {text:?}"));
    let overrides = text.lines().find(|l| l.starts_with("set on the topic:")).expect("the overrides line");
    (value.to_owned(), overrides.to_owned())
}

/// The log start offset and segment count of partition 0, from `rill topic describe`.
fn start_and_segments(b: &str, topic: &str) -> (i64, u64) {
    let output = rill(b, &["topic", "describe", topic]);
    let text = output.ok();
    let row: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .nth(1)
        .expect("a partition row")
        .split_whitespace()
        .collect();
    (row[1].parse().expect("start"), row[5].parse().expect("segments"))
}

#[test]
fn altered_settings_apply_to_a_live_topic_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data);
    let b = broker.addr.clone();
    let b = b.as_str();
    // Tiny segments, so a few records make sealed segments for retention to delete.
    rill(b, &["topic", "create", "orders", "--segment-bytes", "1024", "--max-batch-bytes", "1024"]).ok();
    for i in 0..30 {
        rill(b, &["produce", "orders", "--partition", "0", "--value", &format!("record-{i:04}-{}", "x".repeat(100))])
            .ok();
    }
    let (start, segments) = start_and_segments(b, "orders");
    assert_eq!(start, 0);
    assert!(segments > 2, "{segments} segments");
    let (_, overrides) = described_setting(b, "orders", "retention_bytes");
    assert!(overrides.contains("segment.bytes") && !overrides.contains("retention.bytes"), "{overrides}");

    // A dry run changes nothing.
    let dry = rill(b, &["topic", "alter", "orders", "--config", "retention.bytes=1", "--dry-run"]);
    assert!(dry.ok().contains("would alter"), "{dry:?}");
    assert_eq!(described_setting(b, "orders", "retention_bytes").0, "forever");

    // Retention tightened on the live topic: the next pass deletes every sealed segment.
    let altered =
        rill(b, &["topic", "alter", "orders", "--config", "retention.bytes=1", "--config", "max.message.bytes=200"]);
    assert!(altered.ok().starts_with("altered topic \"orders\""), "{altered:?}");
    let (start, segments) = common::eventually("retention deletes the old segments", || {
        let (start, segments) = start_and_segments(b, "orders");
        (segments == 1).then_some((start, segments))
    });
    assert!(start > 0 && segments == 1, "start {start}");
    let (value, overrides) = described_setting(b, "orders", "retention_bytes");
    assert_eq!(value, "1");
    assert!(overrides.contains("retention.bytes") && overrides.contains("max.message.bytes"), "{overrides}");

    // The next produce is checked against the new batch limit.
    rill(b, &["produce", "orders", "--partition", "0", "--value", &"y".repeat(300)]).fails(1, "200");
    rill(b, &["produce", "orders", "--partition", "0", "--value", "small"]).ok();

    // Refusals name the key, the value and what is allowed, and change nothing.
    rill(b, &["topic", "alter", "orders", "--config", "segment.bytes=10"]).fails(1, "segment.bytes=10");
    rill(b, &["topic", "alter", "orders", "--config", "min.insync.replicas=2"]).fails(1, "replication factor, 1");
    rill(b, &["topic", "alter", "orders", "--config", "retention.mss=1"]).fails(1, "unknown topic setting");
    rill(b, &["topic", "alter", "orders", "--config", "retention.ms=soon"]).fails(1, "retention.ms");
    rill(b, &["topic", "alter", "nope", "--config", "retention.ms=1"]).fails(1, "unknown topic \"nope\"");
    assert_eq!(described_setting(b, "orders", "segment_bytes").0, "1024");

    // Kept across a restart, and a delete goes back to the broker's default.
    let addr = broker.addr.clone();
    broker.kill();
    let broker = BrokerProcess::start_on(&data, &addr);
    let b = broker.addr.as_str();
    assert_eq!(described_setting(b, "orders", "retention_bytes").0, "1");
    assert_eq!(described_setting(b, "orders", "max_batch_bytes").0, "200");
    rill(b, &["topic", "alter", "orders", "--delete-config", "retention.bytes"]).ok();
    let (value, overrides) = described_setting(b, "orders", "retention_bytes");
    assert_eq!(value, "forever");
    assert!(!overrides.contains("retention.bytes"), "{overrides}");
}

#[test]
fn compression_levels_are_set_shown_and_refused_out_of_range() {
    let (_dir, broker) = broker();
    let b = broker.addr.as_str();
    let zstd = ["--config", "compression.type=zstd", "--config", "compression.zstd.level=19"];
    rill(b, &[&["topic", "create", "events"][..], &zstd[..]].concat()).ok();
    let (level, overrides) = described_setting(b, "events", "compression_zstd_level");
    assert_eq!(level, "19");
    assert!(overrides.contains("compression.zstd.level") && overrides.contains("compression.type"), "{overrides}");
    rill(b, &["produce", "events", "--partition", "0", "--value", &"stored at 19 ".repeat(50)]).ok();
    assert_eq!(rill(b, &["consume", "events"]).ok(), format!("{}\n", "stored at 19 ".repeat(50)));
    rill(b, &["topic", "alter", "events", "--config", "compression.zstd.level=23"])
        .fails(1, "from -131072 (fastest) to 22");
    rill(b, &["topic", "alter", "events", "--config", "compression.gzip.level=fast"]).fails(1, "1 to 9, or -1");
    rill(b, &["topic", "alter", "events", "--config", "compression.lz4.level=12"]).ok();
    assert_eq!(described_setting(b, "events", "compression_lz4_level").0, "12");
    rill(b, &["topic", "alter", "events", "--delete-config", "compression.zstd.level"]).ok();
    let text = rill(b, &["topic", "describe", "events"]).ok().to_owned();
    assert!(!text.contains("compression_zstd_level"), "back to the default: {text}");
}

/// The value `rill topic defaults` shows for `key`, and its source (`cluster` or `broker`).
fn shown_default(b: &str, key: &str) -> (String, String) {
    let output = rill(b, &["topic", "defaults"]);
    let text = output.ok();
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("{key} missing from {text:?}"))
        .split_whitespace()
        .collect();
    (row[1].to_owned(), row[2].to_owned())
}

#[test]
fn a_topic_default_reaches_the_logs_of_topics_that_do_not_set_the_key_and_lasts_a_restart() {
    let (dir, broker) = broker();
    let data = dir.path().join("data");
    let b = broker.addr.clone();
    let b = b.as_str();
    assert_eq!(shown_default(b, "log.retention.bytes"), ("-1".to_owned(), "broker".to_owned()));
    // Tiny segments, so a few records make sealed segments for retention to delete; `kept` sets its own limit.
    let tiny = ["--segment-bytes", "1024", "--max-batch-bytes", "1024"];
    rill(b, &[&["topic", "create", "follows"][..], &tiny[..]].concat()).ok();
    rill(b, &[&["topic", "create", "kept", "--retention-bytes", "-1"][..], &tiny[..]].concat()).ok();
    for topic in ["follows", "kept"] {
        for i in 0..20 {
            let value = format!("record-{i:04}-{}", "x".repeat(100));
            rill(b, &["produce", topic, "--partition", "0", "--value", &value]).ok();
        }
    }

    let dry = rill(b, &["topic", "defaults", "--config", "log.retention.bytes=1", "--dry-run"]);
    assert!(dry.ok().contains("1 topic would change with them"), "{dry:?}");
    assert_eq!(shown_default(b, "log.retention.bytes").1, "broker", "a dry run changes nothing");
    let set = rill(b, &["topic", "defaults", "--config", "log.retention.bytes=1"]);
    assert!(set.ok().starts_with("changed the topic defaults; 1 topic changed with them"), "{set:?}");
    assert_eq!(shown_default(b, "log.retention.bytes"), ("1".to_owned(), "cluster".to_owned()));
    // The next retention pass deletes every sealed segment of the topic that follows; the other keeps them all.
    common::eventually("retention deletes the old segments", || {
        (start_and_segments(b, "follows").1 == 1).then_some(())
    });
    assert!(start_and_segments(b, "follows").0 > 0);
    assert_eq!(start_and_segments(b, "kept").0, 0);
    let (value, own) = described_setting(b, "kept", "retention_bytes");
    assert_eq!(value, "forever");
    assert!(own.contains("retention.bytes"), "{own}");

    // Refusals name the key and what is allowed, and change nothing.
    rill(b, &["topic", "defaults", "--config", "retention.bytes=1"]).fails(1, "log.retention.bytes, log.segment.bytes");
    rill(b, &["topic", "defaults", "--config", "log.roll.ms=0"]).fails(1, "at least 1 millisecond");
    rill(b, &["topic", "defaults", "--config", "log.segment.bytes"]).fails(1, "KEY=VALUE");
    // A topic's own max batch above a smaller segment default: refused, naming the topic.
    rill(b, &["topic", "create", "big", "--max-batch-bytes", "1048576"]).ok();
    rill(b, &["topic", "defaults", "--config", "log.segment.bytes=65536"]).fails(1, "topic big could not take it");

    // Kept across a kill and restart; a delete gives the broker's default back.
    let addr = broker.addr.clone();
    broker.kill();
    let broker = BrokerProcess::start_on(&data, &addr);
    let b = broker.addr.as_str();
    assert_eq!(shown_default(b, "log.retention.bytes"), ("1".to_owned(), "cluster".to_owned()));
    rill(b, &["topic", "create", "later"]).ok();
    assert_eq!(described_setting(b, "later", "retention_bytes").0, "1");
    rill(b, &["topic", "defaults", "--delete-config", "log.retention.bytes"]).ok();
    assert_eq!(described_setting(b, "later", "retention_bytes").0, "forever");
    assert_eq!(shown_default(b, "log.retention.bytes"), ("-1".to_owned(), "broker".to_owned()));
}
