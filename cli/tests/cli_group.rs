//! `rill group ...` as the built binary against a real `rill broker` process: describe (committed offset, end
//! offset, lag) and reset-offsets to each kind of target, and their errors.

use crate::common;

use common::{config_rows, rill, rill_with_stdin, BrokerProcess, Running};

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
fn a_deleted_topics_commits_are_forgotten_so_a_recreated_topic_is_read_from_its_start() {
    let (dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    rill(b, &["consume", "events", "--group", "g"]).ok();
    rill(b, &["consume", "events", "--group", "other"]).ok();
    assert_eq!(rows(b, &["g"]), [["events", "0", "4", "4", "0"], ["events", "1", "2", "2", "0"]]);

    rill(b, &["topic", "delete", "events"]).ok();
    rill(b, &["group", "describe", "g"]).fails(1, "unknown group \"g\"");
    rill(b, &["topic", "create", "events", "--partitions", "2"]).ok();
    rill_with_stdin(b, &["produce", "events", "--partition", "0"], b"new\n").ok();
    // The old commit (4) would have skipped the new record, and every one up to offset 4.
    assert_eq!(rill(b, &["consume", "events", "--group", "g"]).ok(), "new\n");

    // Forgetting is durable: the tombstones are in the offsets log, and a restart does not bring the old
    // commits back (the other group had only them).
    drop(broker);
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    assert_eq!(rows(b, &["g"]), [["events", "0", "1", "1", "0"]]);
    rill(b, &["group", "describe", "other"]).fails(1, "unknown group \"other\"");
}

/// Commits `offset` for partition 0 of `events` as a standalone committer over gRPC: any offset, as Kafka's
/// OffsetCommit takes, which `rill consume` (committing what it printed) cannot give.
fn commit_raw(broker: &BrokerProcess, group: &str, offset: i64) {
    use rill_protocol::v1::{consumer_groups_client::ConsumerGroupsClient, CommitOffsetsRequest, OffsetCommit};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut groups = ConsumerGroupsClient::connect(broker.url()).await.expect("connect over gRPC");
        let offsets = vec![OffsetCommit { topic: "events".into(), partition: 0, offset, metadata: String::new() }];
        let request = CommitOffsetsRequest { group: group.into(), member_id: String::new(), generation: -1, offsets };
        groups.commit_offsets(request).await.expect("the commit is stored");
    });
}

#[test]
fn a_committed_offset_past_the_end_starts_at_the_oldest_record_as_with_follow() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    commit_raw(&broker, "g", 99);
    assert_eq!(rows(b, &["g"])[0], ["events", "0", "99", "4", "0"]);
    let read = ["consume", "events", "--group", "g", "--partition", "0"];
    assert_eq!(rill(b, &read).ok(), "a\nb\nc\nd\n", "out of range: from the oldest record");
    assert_eq!(rows(b, &["g"])[0], ["events", "0", "4", "4", "0"], "and committed where it stopped");
    // One in range is resumed from, as before.
    commit_raw(&broker, "g", 3);
    assert_eq!(rill(b, &read).ok(), "d\n");
}

#[test]
fn reset_offsets_of_an_unknown_topic_or_partition_fails_with_exit_1() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    rill(b, &["group", "reset-offsets", "g", "--topic", "nope", "--to-earliest"]).fails(1, "unknown topic \"nope\"");
    rill(b, &["group", "reset-offsets", "g", "--topic", "events", "--partition", "9", "--to-earliest"])
        .fails(1, "partition 9");
}

#[test]
fn followers_of_one_group_share_its_partitions_as_members() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    let first = Running::spawn(b, &["consume", "events", "--group", "live", "--follow", "--format", "json"]);
    // The first member owns both partitions: it prints all six records.
    let mut seen: Vec<(i64, i64)> = (0..6).map(|_| partition_offset(&first.next_line())).collect();
    seen.sort_unstable();
    assert_eq!(seen, [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]);

    let second = Running::spawn(b, &["consume", "events", "--group", "live", "--follow", "--format", "json"]);
    let members = wait_for_members(b, "live", 2);
    assert!(members.starts_with("group live (stable, generation "), "{members}");
    let owners: Vec<&str> =
        members.lines().filter(|l| l.starts_with("events")).filter_map(|l| l.split_whitespace().nth(5)).collect();
    assert_eq!(owners.len(), 2, "{members}");
    assert_ne!(owners[0], owners[1], "one partition each: {members}");
    assert!(owners.iter().all(|o| *o != "-"), "{members}");

    // A record for each partition: each member prints only its own partition's.
    rill(b, &["produce", "events", "--partition", "0", "--value", "p0"]).ok();
    rill(b, &["produce", "events", "--partition", "1", "--value", "p1"]).ok();
    let a = partition_offset(&first.next_line());
    let c = partition_offset(&second.next_line());
    let mut got = [a, c];
    got.sort_unstable();
    assert_eq!(got, [(0, 4), (1, 2)], "each new record printed once, by the partition's owner");

    // While it has members, the group cannot be reset.
    rill(b, &["group", "reset-offsets", "live", "--topic", "events", "--to-earliest"]).fails(1, "refused");

    for member in [first, second] {
        let (status, stderr) = member.stop_with(libc::SIGINT);
        assert!(status.success(), "{status:?} {stderr}");
    }
    // They committed what they printed and left: nothing is left to read, and the group is empty.
    assert_eq!(rill(b, &["consume", "events", "--group", "live"]).ok(), "");
    let described = rill(b, &["group", "describe", "live"]);
    assert!(described.ok().starts_with("group live (empty, no members)"), "{described:?}");
}

#[test]
fn group_list_shows_each_group_with_its_state_and_members() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    assert_eq!(rill(b, &["group", "list"]).ok(), "GROUP  KIND  STATE  MEMBERS  GENERATION\n", "no groups yet");
    rill(b, &["consume", "events", "--group", "batch", "--max-messages", "1"]).ok();
    let member = Running::spawn(b, &["consume", "events", "--group", "stream", "--follow"]);
    member.next_line();
    let listed = rill(b, &["group", "list"]);
    let rows: Vec<Vec<&str>> = listed.ok().lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{listed:?}");
    assert_eq!(rows[0][..4], ["batch", "consumer", "empty", "0"]);
    assert_eq!(rows[1][..4], ["stream", "consumer", "stable", "1"]);
}

fn partition_offset(json_line: &str) -> (i64, i64) {
    let record: serde_json::Value = serde_json::from_str(json_line).expect("a JSON line");
    (record["partition"].as_i64().expect("partition"), record["offset"].as_i64().expect("offset"))
}

/// `rill group describe G` once it shows `members` members each owning a partition (the broker moves a
/// partition only after its owner acknowledged giving it up).
fn wait_for_members(broker: &str, group: &str, members: usize) -> String {
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        let described = rill(broker, &["group", "describe", group]).ok().to_owned();
        let owners = described.lines().filter(|l| l.starts_with("events") && !l.ends_with(" -")).count();
        if described.contains(&format!("{members} members")) && owners == 2 && described.contains("(stable") {
            return described;
        }
        assert!(std::time::Instant::now() < deadline, "no stable group of {members}: {described}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_member_stopped_by_max_messages_commits_only_what_it_printed() {
    let (_dir, broker) = broker_with_records();
    let b = broker.addr.as_str();
    let member = rill(b, &["consume", "events", "--partition", "0", "--group", "m", "--max-messages", "1"]);
    assert_eq!(member.ok(), "a\n", "standalone, partition 0");
    // As a member: `poll` hands out more than two records, but only the two printed are committed.
    let printed = rill(b, &["consume", "events", "--group", "m", "--follow", "--max-messages", "2"]);
    assert_eq!(printed.lines().len(), 2, "{printed:?}");
    let rest = rill(b, &["consume", "events", "--group", "m"]);
    let mut all: Vec<&str> = printed.lines();
    all.extend(rest.ok().lines());
    all.sort_unstable();
    assert_eq!(all, ["b", "c", "d", "x", "y"], "every record after the commit, once");
}

#[test]
fn rust_log_shows_what_the_client_does_and_without_it_nothing_is_logged() {
    let (_dir, broker) = broker_with_records();
    // A member of a group (`--follow` joins it) reads the six records and leaves.
    let consume = |group: &str, rust_log: Option<&str>| {
        let mut command = std::process::Command::new(common::RILL);
        command
            .args(["consume", "events", "--group", group, "--follow", "--max-messages", "6"])
            .env("RILL_BROKER", &broker.addr)
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = common::run(&mut command, None);
        let mut records: Vec<String> = output.ok().lines().map(str::to_owned).collect();
        records.sort_unstable();
        assert_eq!(records, ["a", "b", "c", "d", "x", "y"]);
        output
    };
    let quiet = consume("g1", None);
    assert!(!quiet.stderr.contains("rebalance"), "no log unless asked: {quiet:?}");
    let logged = consume("g2", Some("rill_client=info"));
    assert!(logged.stderr.contains("rebalance") && logged.stderr.contains("Assigned"), "{logged:?}");
    assert!(!logged.stderr.contains('\x1b'), "no terminal colours in a pipe: {logged:?}");
}

fn config_value(text: &str, key: &str) -> (String, String) {
    let rows = config_rows(text);
    let (_, value, source) = rows.iter().find(|(k, _, _)| k == key).unwrap_or_else(|| panic!("{key} in {text}"));
    (value.clone(), source.clone())
}

#[test]
fn group_config_shows_changes_and_keeps_a_groups_own_settings_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    let shown = rill(b, &["group", "config", "mailers"]).ok().to_owned();
    assert_eq!(config_rows(&shown).len(), 10, "{shown}");
    assert_eq!(config_value(&shown, "share.auto.offset.reset"), ("latest".into(), "broker".into()));
    let set = ["share.auto.offset.reset=earliest", "share.record.lock.duration.ms=60000"];
    let altered = rill(b, &["group", "config", "mailers", "--config", set[0], "--config", set[1]]).ok().to_owned();
    assert_eq!(config_value(&altered, "share.auto.offset.reset"), ("earliest".into(), "group".into()));
    assert_eq!(config_value(&altered, "share.record.lock.duration.ms"), ("60000".into(), "group".into()));
    let dry = ["group", "config", "mailers", "--config", "share.delivery.count.limit=3", "--dry-run"];
    let checked = rill(b, &dry).ok().to_owned();
    assert!(checked.starts_with("dry run: nothing changed"), "{checked}");
    assert_eq!(config_value(&checked, "share.delivery.count.limit"), ("3".into(), "group".into()));
    // Refusals name the key, the value and what is allowed, and change nothing.
    rill(b, &["group", "config", "mailers", "--config", "share.delivery.count.limit=1"]).fails(1, "within 2..=10");
    rill(b, &["group", "config", "mailers", "--config", "retention.ms=1"]).fails(1, "share.auto.offset.reset");
    rill(b, &["group", "config", "mailers", "--config", "share.heartbeat.interval.ms=45000"])
        .fails(1, "below share.session.timeout.ms");
    rill(b, &["group", "config", "mailers", "--config", "nothing"]).fails(1, "is not KEY=VALUE");
    let removed =
        rill(b, &["group", "config", "mailers", "--delete-config", "share.record.lock.duration.ms"]).ok().to_owned();
    assert_eq!(config_value(&removed, "share.record.lock.duration.ms"), ("30000".into(), "broker".into()));

    // Stored before the answer: a broker killed and started again has them.
    broker.kill();
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let after = rill(broker.addr.as_str(), &["group", "config", "mailers"]).ok().to_owned();
    assert_eq!(config_value(&after, "share.auto.offset.reset"), ("earliest".into(), "group".into()));
    assert_eq!(config_value(&after, "share.delivery.count.limit"), ("5".into(), "broker".into()), "dry run kept");
    assert_eq!(config_value(&after, "share.record.lock.duration.ms"), ("30000".into(), "broker".into()));
    // A cluster keeps group configs in its metadata: this data dir, started as a cluster node, is refused rather
    // than its groups silently falling back to the broker's settings.
    broker.kill();
    let output = common::cluster::start_as_cluster_node(&dir.path().join("data"));
    let stderr = output.fails(1, "__group-configs.json holds the group configs this node kept when it ran alone");
    assert!(stderr.contains("rill group config"), "{stderr}");
}

/// KIP-1191 with rill's own tools: a topic opted in as a dead-letter topic, a share group naming it, and
/// `rill consume --share-group --ack reject`; the dead letters carry the records (the group copies them) and
/// headers saying where each was and why.
#[test]
fn a_share_groups_rejected_records_land_in_its_dead_letter_topic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "jobs", "--partitions", "1"]).ok();
    let opted_in = ["--config", "errors.deadletterqueue.group.enable=true"];
    rill(b, &[&["topic", "create", "dlq.jobs", "--partitions", "1"][..], &opted_in].concat()).ok();
    assert!(rill(b, &["topic", "describe", "dlq.jobs"]).ok().contains("dead_letter_group_enable"));
    let configs = [
        "share.auto.offset.reset=earliest",
        "errors.deadletterqueue.topic.name=dlq.jobs",
        "errors.deadletterqueue.copy.record.enable=true",
    ];
    let mut args = vec!["group", "config", "workers"];
    args.extend(configs.iter().flat_map(|config| ["--config", config]));
    let shown = rill(b, &args).ok().to_owned();
    assert_eq!(config_value(&shown, "errors.deadletterqueue.topic.name"), ("dlq.jobs".into(), "group".into()));
    let other = rill(b, &["group", "config", "others"]).ok().to_owned();
    assert_eq!(config_value(&other, "errors.deadletterqueue.topic.name"), ("-".into(), "broker".into()), "none");
    rill(b, &["group", "config", "others", "--config", "errors.deadletterqueue.topic.name=__consumer_offsets"])
        .fails(1, "not starting with __");
    rill(b, &["group", "config", "others", "--config", "errors.deadletterqueue.copy.record.enable=yes"])
        .fails(1, "true or false");
    for value in ["a", "b"] {
        rill(b, &["produce", "jobs", "--value", value]).ok();
    }
    let rejected = ["consume", "jobs", "--share-group", "workers", "--ack", "reject", "--max-messages", "2"];
    assert_eq!(
        shared(rill(b, &[&rejected[..], &["--format", "json"]].concat()).ok()),
        [("a".into(), 1), ("b".into(), 1)]
    );

    let read = ["consume", "dlq.jobs", "--from-beginning", "--max-messages", "2", "--format", "json"];
    let letters: Vec<serde_json::Value> =
        rill(b, &read).ok().lines().map(|line| serde_json::from_str(line).expect("a json line")).collect();
    assert_eq!(letters.len(), 2);
    for (offset, (letter, value)) in letters.iter().zip(["a", "b"]).enumerate() {
        assert_eq!(letter["value"], value, "copied: {letter}");
        let header = |key: &str| {
            let headers = letter["headers"].as_array().expect("headers");
            let found = headers.iter().find(|h| h["key"] == key).unwrap_or_else(|| panic!("{key} in {letter}"));
            found["value"].as_str().expect("a text value").to_owned()
        };
        assert_eq!(header("__dlq.errors.topic"), "jobs");
        assert_eq!(header("__dlq.errors.partition"), "0");
        assert_eq!(header("__dlq.errors.offset"), offset.to_string());
        assert_eq!(header("__dlq.errors.group"), "workers");
        assert_eq!(header("__dlq.errors.delivery.count"), "1");
        assert!(header("__dlq.errors.message").contains("rejected"), "{letter}");
    }
}

/// `(value, delivery_count)` of `rill consume --share-group --format json` lines.
fn shared(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (json["value"].as_str().expect("a value").to_owned(), json["delivery_count"].as_u64().expect("a count"))
        })
        .collect()
}

#[test]
fn consume_with_a_share_group_acknowledges_what_it_printed_and_releases_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "jobs", "--partitions", "1"]).ok();
    rill(b, &["group", "config", "workers", "--config", "share.auto.offset.reset=earliest"]).ok();
    for value in ["a", "b", "c", "d", "e"] {
        rill(b, &["produce", "jobs", "--value", value]).ok();
    }
    let json = ["--format", "json"];
    let share = |extra: &[&str]| {
        let mut args = vec!["consume", "jobs", "--share-group", "workers"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&json);
        shared(rill(b, &args).ok())
    };
    assert_eq!(share(&["--max-messages", "2"]), [("a".into(), 1), ("b".into(), 1)], "accepted: not seen again");
    assert_eq!(share(&["--max-messages", "1", "--ack", "reject"]), [("c".into(), 1)]);
    assert_eq!(share(&["--max-messages", "1", "--ack", "release"]), [("d".into(), 1)]);
    // Without --follow: what the group has now, then exit. `d` comes back, counted twice.
    assert_eq!(share(&[]), [("d".into(), 2), ("e".into(), 1)]);
    assert_eq!(share(&[]), []);
    let described = rill(b, &["group", "describe", "workers"]).ok().to_owned();
    let row: Vec<&str> = described.lines().find(|l| l.starts_with("jobs")).expect("a row").split_whitespace().collect();
    assert_eq!(row[..3], ["jobs", "0", "5"], "every record done with: {described}");

    // A member that follows prints records as they come; SIGINT acknowledges what it printed and exits 0.
    let follower = Running::spawn(b, &["consume", "jobs", "--share-group", "workers", "--follow", "--format", "json"]);
    common::eventually("the follower's membership", || {
        rill(b, &["group", "describe", "workers"]).ok().contains("rill-").then_some(())
    });
    rill(b, &["produce", "jobs", "--value", "f"]).ok();
    assert_eq!(shared(&follower.next_line()), [("f".into(), 1)]);
    let (status, stderr) = follower.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");
    assert_eq!(share(&[]), [], "f was accepted on the way out");

    // Refusals: flags that belong to consumer groups, an isolation that is the group's own setting.
    rill(b, &["consume", "jobs", "--share-group", "workers", "--group", "g"]).fails(2, "cannot be used with");
    rill(b, &["consume", "jobs", "--share-group", "workers", "--from-beginning"]).fails(2, "cannot be used with");
    rill(b, &["consume", "jobs", "--ack", "reject"]).fails(2, "--share-group");
    rill(b, &["consume", "jobs", "--share-group", "workers", "--isolation", "read-committed"])
        .fails(1, "share.isolation.level=read_committed");
    rill(b, &["consume", "jobs", "--share-group", ""]).fails(1, "a group id cannot be empty");
}
