//! `rill produce` and `rill consume` as the built binary against a real `rill broker` process: lines in,
//! records out, keys and headers, JSON, start positions (the largest timestamp's record among them), stop
//! conditions, groups, --follow, a closed stdout.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{rill, rill_with_stdin, BrokerProcess, Running, RILL};
use rill_protocol::v1::{self, records_client::RecordsClient};
use rill_tests::{batch_of, produce_request};

fn broker_with_topic(topic: &str, partitions: &str) -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    rill(&broker.addr, &["topic", "create", topic, "--partitions", partitions]).ok();
    (dir, broker)
}

fn json_lines(output: &str) -> Vec<serde_json::Value> {
    output.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}"))).collect()
}

#[test]
fn each_line_of_stdin_is_a_record_including_empty_and_unterminated_ones() {
    let (_dir, broker) = broker_with_topic("lines", "1");
    let b = broker.addr.as_str();
    let produced = rill_with_stdin(b, &["produce", "lines", "--print-offsets"], b"hello\n\nworld\r\nlast");
    assert_eq!(produced.ok(), "0 0\n0 1\n0 2\n0 3\n");
    assert_eq!(rill(b, &["produce", "lines", "--value", "one more", "--print-offsets"]).ok(), "0 4\n");
    assert_eq!(rill(b, &["consume", "lines"]).ok(), "hello\n\nworld\nlast\none more\n");
    // Empty input sends nothing and succeeds.
    assert_eq!(rill_with_stdin(b, &["produce", "lines"], b"").ok(), "");
}

#[test]
fn keys_headers_and_binary_values_come_back_in_json_lines() {
    let (_dir, broker) = broker_with_topic("keyed", "4");
    let b = broker.addr.as_str();
    rill_with_stdin(
        b,
        &["produce", "keyed", "--key-separator", "::", "--header", "src=test"],
        b"k1::v1\nk2::v::2\nk1::v3\n",
    )
    .ok();
    rill_with_stdin(b, &["produce", "keyed", "--partition", "2", "--key", "bin"], b"\xff\xfe\n").ok();
    let records = json_lines(rill(b, &["consume", "keyed", "--format", "json"]).ok());
    assert_eq!(records.len(), 4);
    let k1: Vec<&serde_json::Value> = records.iter().filter(|r| r["key"] == "k1").collect();
    assert_eq!(k1.len(), 2);
    assert_eq!(k1[0]["partition"], k1[1]["partition"], "one key, one partition");
    assert_eq!((k1[0]["value"].as_str(), k1[1]["value"].as_str()), (Some("v1"), Some("v3")), "in order");
    let k2 = records.iter().find(|r| r["key"] == "k2").expect("k2");
    assert_eq!(k2["value"], "v::2", "split at the first separator only");
    assert_eq!(k2["headers"], serde_json::json!([{"key": "src", "value": "test"}]));
    assert_eq!(k2["topic"], "keyed");
    assert!(k2["timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{k2}");
    let binary = records.iter().find(|r| r["key"] == "bin").expect("binary record");
    assert_eq!(binary["partition"], 2);
    assert_eq!(binary["value_b64"], "//4=");
    assert!(binary.get("value").is_none(), "{binary}");
    // --format value passes the bytes through untouched.
    let raw = rill(b, &["consume", "keyed", "--partition", "2"]);
    assert!(raw.stdout_bytes.windows(3).any(|w| w == b"\xff\xfe\n"), "{raw:?}");
}

#[test]
fn a_line_without_the_key_separator_fails_after_storing_the_lines_before_it() {
    let (_dir, broker) = broker_with_topic("sep", "1");
    let b = broker.addr.as_str();
    let output = rill_with_stdin(b, &["produce", "sep", "--key-separator", ":"], b"a:1\nno separator\nc:3\n");
    output.fails(1, "line 2 has no key separator \":\"");
    assert_eq!(rill(b, &["consume", "sep"]).ok(), "1\n");
}

#[test]
fn every_acks_level_and_compression_round_trips() {
    let (_dir, broker) = broker_with_topic("codecs", "2");
    let b = broker.addr.as_str();
    let mut expected = Vec::new();
    let codecs = [("none", "none", ""), ("leader", "lz4", ""), ("durable", "zstd", "19"), ("all", "gzip", "9")];
    for (acks, compression, level) in codecs.into_iter().chain([("leader", "snappy", "")]) {
        let lines: String = (0..500).map(|i| format!("{acks}-{compression}-{i}\n")).collect();
        let mut args = vec!["produce", "codecs", "--acks", acks, "--compression", compression, "--print-offsets"];
        if !level.is_empty() {
            args.extend(["--compression-level", level]);
        }
        let printed = rill_with_stdin(b, &args, lines.as_bytes());
        let offsets = printed.lines();
        assert_eq!(offsets.len(), 500, "one offset line per record");
        if acks == "none" {
            assert!(offsets.iter().all(|l| l.ends_with(" -1")), "acks none has no offsets: {printed:?}");
        } else {
            assert!(offsets.iter().all(|l| !l.ends_with(" -1")), "{printed:?}");
        }
        expected.extend(lines.lines().map(str::to_owned));
    }
    let mut consumed: Vec<String> = rill(b, &["consume", "codecs"]).ok().lines().map(str::to_owned).collect();
    consumed.sort();
    expected.sort();
    assert_eq!(consumed, expected);
}

#[test]
fn producing_to_an_unknown_topic_or_partition_fails_with_exit_1() {
    let (_dir, broker) = broker_with_topic("small", "2");
    let b = broker.addr.as_str();
    rill(b, &["produce", "nope", "--value", "v"]).fails(1, "unknown topic \"nope\"");
    rill_with_stdin(b, &["produce", "nope"], b"a\nb\n").fails(1, "unknown topic \"nope\"");
    rill(b, &["produce", "small", "--partition", "7", "--value", "v"]).fails(1, "partition 7");
    rill(b, &["consume", "nope"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["consume", "small", "--partition", "7"]).fails(1, "partition 7");
}

#[test]
fn consume_starts_at_an_offset_a_time_or_the_end_and_stops_at_max_messages() {
    let (_dir, broker) = broker_with_topic("replay", "1");
    let b = broker.addr.as_str();
    rill_with_stdin(b, &["produce", "replay"], b"r0\nr1\nr2\nr3\nr4\n").ok();
    assert_eq!(rill(b, &["consume", "replay", "--offset", "3"]).ok(), "r3\nr4\n");
    assert_eq!(rill(b, &["consume", "replay", "--offset", "5"]).ok(), "", "the end offset is a valid start");
    rill(b, &["consume", "replay", "--offset", "6"]).fails(1, "offset 6 is out of range for partition 0");
    assert_eq!(rill(b, &["consume", "replay", "--max-messages", "2"]).ok(), "r0\nr1\n");
    assert_eq!(rill(b, &["consume", "replay", "--from-end"]).ok(), "");
    assert_eq!(rill(b, &["consume", "replay", "--from-beginning", "--max-messages", "1"]).ok(), "r0\n");

    // By time: every record's timestamp is known from the JSON; start at the fourth one's.
    let records = json_lines(rill(b, &["consume", "replay", "--format", "json"]).ok());
    let fourth = records[3]["timestamp"].as_i64().expect("timestamp");
    let later = rill(b, &["consume", "replay", "--from-time", &fourth.to_string()]);
    assert!(later
        .ok()
        .starts_with(records.iter().find(|r| r["timestamp"] == fourth).expect("r")["value"].as_str().expect("s")));
    assert!(later.ok().ends_with("r3\nr4\n"), "{later:?}");
    assert_eq!(rill(b, &["consume", "replay", "--from-time", "2999-01-01T00:00:00Z"]).ok(), "", "nothing that late");
    assert_eq!(
        rill(b, &["consume", "replay", "--from-time", "2000-01-01T00:00:00+02:00"]).ok(),
        "r0\nr1\nr2\nr3\nr4\n"
    );
}

/// Appends one batch per `(values, base_timestamp_ms)` to partition 0 of `topic` over gRPC, its records stamped
/// `base_timestamp_ms`, `base_timestamp_ms + 1`, ...: producers' clocks out of order, which `rill produce` (stamping
/// with its own clock) cannot give.
fn produce_stamped(broker: &BrokerProcess, topic: &str, batches: &[(&[&str], i64)]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut records = RecordsClient::connect(broker.url()).await.expect("connect over gRPC");
        for (values, base_timestamp_ms) in batches {
            let request = produce_request(topic, Some(0), batch_of(values, *base_timestamp_ms), v1::Acks::Leader);
            records.produce(request).await.expect("the batch is appended");
        }
    });
}

#[test]
fn consume_from_max_timestamp_starts_at_the_largest_timestamp_even_with_older_records_after_it() {
    let (_dir, broker) = broker_with_topic("clocks", "2");
    let b = broker.addr.as_str();
    // The largest timestamp (9_000) is at offset 2; the records after it carry older ones. Partition 1 is empty.
    produce_stamped(&broker, "clocks", &[(&["a", "b"], 5_000), (&["peak"], 9_000), (&["late-1", "late-2"], 1_000)]);
    assert_eq!(rill(b, &["consume", "clocks", "--from-max-timestamp"]).ok(), "peak\nlate-1\nlate-2\n");
    let json = json_lines(rill(b, &["consume", "clocks", "--from-max-timestamp", "--format", "json"]).ok());
    assert_eq!((json[0]["offset"].as_i64(), json[0]["timestamp"].as_i64()), (Some(2), Some(9_000)));

    // DeleteRecords past it: its segment keeps the largest timestamp, and the broker answers its offset, below
    // the log start, as Kafka does; the CLI starts at the oldest record left, not at the largest timestamp left
    // (1_001, "late-2").
    rill(b, &["topic", "delete-records", "clocks", "--partition", "0", "--before", "3"]).ok();
    assert_eq!(rill(b, &["consume", "clocks", "--from-max-timestamp"]).ok(), "late-1\nlate-2\n");
    rill(b, &["consume", "clocks", "--from-max-timestamp", "--from-end"]).fails(2, "cannot be used with");
}

#[test]
fn consume_reads_every_partition_and_exits_at_the_end_offsets_of_its_start() {
    let (_dir, broker) = broker_with_topic("wide", "3");
    let b = broker.addr.as_str();
    let lines: String = (0..300).map(|i| format!("{i}\n")).collect();
    rill_with_stdin(b, &["produce", "wide"], lines.as_bytes()).ok();
    let records = json_lines(rill(b, &["consume", "wide", "--format", "json"]).ok());
    assert_eq!(records.len(), 300);
    for partition in 0..3 {
        let offsets: Vec<i64> =
            records.iter().filter(|r| r["partition"] == partition).map(|r| r["offset"].as_i64().expect("o")).collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {partition} in order, once");
    }
    assert_eq!(
        rill(b, &["consume", "wide", "--partition", "1"]).lines().len(),
        records.iter().filter(|r| r["partition"] == 1).count()
    );
    let empty = broker_with_topic("unused", "1");
    assert_eq!(rill(&empty.1.addr, &["consume", "unused"]).ok(), "", "an empty topic ends at once");
}

/// Bit rot in a stored batch: `rill consume` prints every record before it, then exits 1 naming the topic,
/// partition and offset, and `--offset` past the batch reads on.
#[test]
fn consume_prints_the_records_before_a_damaged_batch_then_fails_naming_where_it_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    // Buffered writes and no tail cache: a direct-mode segment, and the tail cache, serve the newest bytes from
    // memory, where damage to the file cannot reach.
    let command = Command::new(RILL);
    let data_dir = data.to_str().unwrap();
    let args = [
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--write-mode",
        "buffered",
        "--tail-cache-bytes",
        "0",
        "--data-dir",
        data_dir,
    ];
    let broker = BrokerProcess::start_command(command, &args);
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "rot"]).ok();
    for value in ["good-1", "bad-2", "after-3"] {
        rill(b, &["produce", "rot", "--value", value]).ok();
    }
    let log = std::fs::read_dir(data.join("rot-0"))
        .expect("the partition's directory, Kafka's <topic>-<partition>")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a segment file");
    let bytes = std::fs::read(&log).expect("read segment");
    let at = bytes.windows(5).position(|w| w == b"bad-2").expect("the value is on disk");
    let file = std::fs::OpenOptions::new().write(true).open(&log).expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&file, b"X", at as u64).expect("damage the batch");

    let output = rill(b, &["consume", "rot"]);
    assert_eq!(output.stdout, "good-1\n", "the record before the damage is printed: {output:?}");
    let stderr = output.fails(1, "offset 1");
    assert!(stderr.contains("\"rot\" partition 0"), "{stderr}");
    assert_eq!(rill(b, &["consume", "rot", "--offset", "2"]).ok(), "after-3\n");
}

#[test]
fn a_group_resumes_after_what_it_printed_and_describe_shows_its_lag() {
    let (_dir, broker) = broker_with_topic("jobs", "2");
    let b = broker.addr.as_str();
    rill_with_stdin(b, &["produce", "jobs", "--partition", "0"], b"a\nb\nc\n").ok();
    rill_with_stdin(b, &["produce", "jobs", "--partition", "1"], b"x\n").ok();
    let first = rill(b, &["consume", "jobs", "--partition", "0", "--group", "workers", "--max-messages", "2"]);
    assert_eq!(first.ok(), "a\nb\n");
    assert_eq!(rill(b, &["consume", "jobs", "--partition", "0", "--group", "workers"]).ok(), "c\n");
    assert_eq!(rill(b, &["consume", "jobs", "--partition", "0", "--group", "workers"]).ok(), "", "all consumed");
    assert_eq!(rill(b, &["consume", "jobs", "--group", "workers"]).ok(), "x\n", "partition 1 from the beginning");
    let rows = group_rows(b, "workers");
    assert_eq!(rows, [vec!["jobs", "0", "3", "3", "0"], vec!["jobs", "1", "1", "1", "0"]]);
    rill(b, &["produce", "jobs", "--partition", "1", "--value", "y"]).ok();
    assert_eq!(group_rows(b, "workers")[1], ["jobs", "1", "1", "2", "1"], "one record of lag");
    // --from-beginning overrides the commits, and the group commits the new position.
    assert_eq!(
        rill(b, &["consume", "jobs", "--partition", "0", "--group", "workers", "--from-beginning"]).ok(),
        "a\nb\nc\n"
    );
}

/// `rill group describe G` partition rows as words (TOPIC to LAG), without the title and header lines.
fn group_rows(broker: &str, group: &str) -> Vec<Vec<String>> {
    let describe = rill(broker, &["group", "describe", group]);
    describe
        .ok()
        .lines()
        .skip_while(|l| !l.starts_with("TOPIC"))
        .skip(1)
        .map(|l| l.split_whitespace().take(5).map(str::to_owned).collect())
        .collect()
}

#[test]
fn follow_tails_new_records_until_sigint_then_commits_and_exits_0() {
    let (_dir, broker) = broker_with_topic("live", "2");
    let b = broker.addr.as_str();
    rill(b, &["produce", "live", "--value", "old"]).ok();
    let follower = Running::spawn(b, &["consume", "live", "--follow", "--group", "tail", "--format", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&follower.next_line()).expect("json")["value"], "old");
    for value in ["new1", "new2"] {
        rill(b, &["produce", "live", "--value", value, "--partition", "1"]).ok();
        let line: serde_json::Value = serde_json::from_str(&follower.next_line()).expect("json");
        assert_eq!(line["value"], value, "printed as it arrives");
    }
    let (status, stderr) = follower.stop_with(libc::SIGINT);
    assert!(status.success(), "SIGINT is a clean exit: {status:?} {stderr}");
    assert_eq!(stderr, "");
    // Everything printed was committed on the way out.
    assert_eq!(rill(b, &["consume", "live", "--group", "tail"]).ok(), "");
    let follower = Running::spawn(b, &["consume", "live", "--follow", "--from-end"]);
    // The follower says nothing when it has found the end, so produce until it shows something: whatever it
    // shows must be new, never the records from before it started.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let first = loop {
        rill(b, &["produce", "live", "--value", "newest"]).ok();
        if let Some(line) = follower.line_within(std::time::Duration::from_millis(200)) {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "the follower printed nothing");
    };
    assert_eq!(first, "newest", "--from-end shows only what comes after");
    let (status, _) = follower.stop_with(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_closed_stdout_ends_consume_quietly_with_exit_0_and_commits_what_was_read() {
    let (_dir, broker) = broker_with_topic("piped", "1");
    let b = broker.addr.as_str();
    rill_with_stdin(b, &["produce", "piped"], b"first\n").ok();
    let mut child = Command::new(RILL)
        .args(["consume", "piped", "--follow", "--group", "reader"])
        .env("RILL_BROKER", b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill consume");
    let guard = KillOnDrop(&mut child);
    {
        let mut stdout = BufReader::new(guard.0.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("first line");
        assert_eq!(line, "first\n");
    } // the reader goes away, like `| head -1`
    rill(b, &["produce", "piped", "--value", "second"]).ok();
    let status = common::wait_with_deadline(guard.0);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut guard.0.stderr.take().expect("piped stderr"), &mut stderr).expect("stderr");
    assert!(status.success(), "{status:?} {stderr}");
    assert_eq!(stderr, "", "no error for a closed pipe");
    // "first" reached the reader and was committed; "second" did not and is read again.
    assert_eq!(rill(b, &["consume", "piped", "--group", "reader"]).ok(), "second\n");
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_large_stdin_is_sent_in_batches_and_read_back_whole() {
    let (_dir, broker) = broker_with_topic("bulk", "3");
    let b = broker.addr.as_str();
    let lines: String = (0..50_000).map(|i| format!("record-{i:06}\n")).collect();
    rill_with_stdin(b, &["produce", "bulk", "--compression", "lz4"], lines.as_bytes()).ok();
    let consumed = rill(b, &["consume", "bulk"]);
    let mut got: Vec<&str> = consumed.ok().lines().collect();
    got.sort_unstable();
    assert_eq!(got, lines.lines().collect::<Vec<_>>());
    let head = rill(b, &["consume", "bulk", "--max-messages", "10"]);
    assert_eq!(head.lines().len(), 10);

    // `| head` closes the pipe long before 50,000 records are written: rill stops quietly with exit 0.
    let rill_dir = std::path::Path::new(RILL).parent().expect("the binary has a directory");
    let path = format!("{}:{}", rill_dir.display(), std::env::var("PATH").unwrap_or_default());
    for pipeline in
        ["rill consume bulk | head -2", "rill consume bulk --format json | head -1", "rill topic list | head -1"]
    {
        let mut command = Command::new("bash");
        command.args(["-c", &format!("set -o pipefail; {pipeline}")]).env("PATH", &path).env("RILL_BROKER", b);
        let output = common::run(&mut command, None);
        assert!(output.status.success(), "`{pipeline}`: {output:?}");
        assert_eq!(output.stderr, "", "`{pipeline}`");
        assert!(!output.stdout.is_empty(), "`{pipeline}`");
    }
}

#[test]
fn batches_are_filled_only_up_to_a_topic_max_batch_bytes_below_the_producers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    // Segments below the broker's 8 MiB batch limit: the topic's limit, which it does not set, follows them.
    rill(b, &["topic", "create", "small", "--segment-bytes", "100000"]).ok();
    let described = rill(b, &["topic", "describe", "small"]);
    assert!(described.ok().lines().any(|l| l.split_whitespace().eq(["max_batch_bytes", "100000"])), "{described:?}");
    // 20,000 lines of 40 bytes would fill the producer's 512 KiB batches: each would be refused as too large.
    let lines: String = (0..20_000).map(|i| format!("record-{i:06}-xxxxxxxxxxxxxxxxxxxxxxxxx\n")).collect();
    rill_with_stdin(b, &["produce", "small"], lines.as_bytes()).ok();
    assert_eq!(rill(b, &["consume", "small"]).ok(), lines);

    // One record over the topic's limit is still refused, naming it.
    let big = "x".repeat(100_001);
    rill(b, &["produce", "small", "--value", &big]).fails(1, "exceeds the limit of 100000 bytes");
}

#[test]
fn consume_without_follow_exits_while_a_producer_keeps_appending() {
    let (_dir, broker) = broker_with_topic("busy", "1");
    let b = broker.addr.as_str();
    rill_with_stdin(b, &["produce", "busy"], b"0\n1\n2\n").ok();
    // A producer that keeps appending for as long as the consumer runs (bounded: 1M lines at most).
    let mut producer = Command::new(RILL)
        .args(["produce", "busy"])
        .env("RILL_BROKER", b)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn rill produce");
    let guard = KillOnDrop(&mut producer);
    let mut stdin = guard.0.stdin.take().expect("piped stdin");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            for i in 3..1_000_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || writeln!(stdin, "{i}").is_err() {
                    return;
                }
            }
        })
    };
    let consumed = rill(b, &["consume", "busy"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    let values: Vec<u64> = consumed.ok().lines().map(|l| l.parse().expect("a number")).collect();
    assert!(values.len() >= 3, "at least what was there before: {}", values.len());
    assert_eq!(values, (0..values.len() as u64).collect::<Vec<_>>(), "a prefix of the log, in order, once");
}
