//! The real `rill broker` binary: start on a free port, SIGKILL and SIGTERM, restart, bad configuration.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::BrokerProcess;
use rill_protocol::v1::{
    self, consumer_groups_client::ConsumerGroupsClient, records_client::RecordsClient,
    topic_admin_client::TopicAdminClient,
};
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};

struct Clients {
    admin: TopicAdminClient<tonic::transport::Channel>,
    records: RecordsClient<tonic::transport::Channel>,
    groups: ConsumerGroupsClient<tonic::transport::Channel>,
}

async fn connect(url: &str) -> Clients {
    let channel = tonic::transport::Channel::from_shared(url.to_owned()).unwrap().connect().await.expect("connect");
    Clients {
        admin: TopicAdminClient::new(channel.clone()),
        records: RecordsClient::new(channel.clone()),
        groups: ConsumerGroupsClient::new(channel),
    }
}

fn batch(value: &str) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record { key: None, value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: 1 });
    Bytes::from(builder.build())
}

fn produce(topic: &str, value: &str, acks: v1::Acks) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        records: Some(v1::produce_request::Records::RecordBatch(batch(value))),
        acks: acks as i32,
    }
}

async fn all_values(records: &mut RecordsClient<tonic::transport::Channel>, topic: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let request = v1::FetchRequest { topic: topic.into(), partition: 0, offset, ..Default::default() };
        let response = records.fetch(request).await.expect("fetch").into_inner();
        if response.record_batches.is_empty() {
            return values;
        }
        for batch in BatchIter::new(response.record_batches) {
            for record in batch.expect("batch").records().expect("records") {
                let record = record.expect("record");
                values.push(String::from_utf8_lossy(record.value.unwrap_or_default()).into_owned());
            }
        }
        offset = response.next_offset;
    }
}

/// The clean-shutdown flag of a partition's checkpoint (docs/format.md, `partition.checkpoint`: flags at byte 10,
/// bit 0). Storage sets it on `Log::close` and clears it on open, or before the first change after a clean open.
fn is_clean_shutdown(partition_dir: &Path) -> bool {
    let checkpoint = std::fs::read(partition_dir.join("partition.checkpoint")).expect("checkpoint file");
    assert_eq!(&checkpoint[..8], b"RILLCKPT");
    u16::from_be_bytes([checkpoint[10], checkpoint[11]]) & 1 == 1
}

fn create(name: &str) -> v1::CreateTopicRequest {
    v1::CreateTopicRequest { name: name.into(), partition_count: 1, config: None, ..Default::default() }
}

#[tokio::test]
async fn durable_records_and_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path());
    let mut clients = connect(&broker.url()).await;
    clients.admin.create_topic(create("crash")).await.unwrap();
    let sent: Vec<String> = (0..50).map(|i| format!("record-{i}")).collect();
    for value in &sent {
        clients.records.produce(produce("crash", value, v1::Acks::Durable)).await.unwrap();
    }
    let commit = v1::CommitOffsetsRequest {
        group: "g".into(),
        member_id: String::new(),
        generation: -1,
        offsets: vec![v1::OffsetCommit { topic: "crash".into(), partition: 0, offset: 17, metadata: "m".into() }],
    };
    clients.groups.commit_offsets(commit).await.unwrap();
    broker.child.kill().expect("SIGKILL");
    broker.child.wait().unwrap();
    drop(broker);
    assert!(!is_clean_shutdown(&dir.path().join("crash-0")), "a killed broker closed nothing");

    let broker = BrokerProcess::start(dir.path());
    let mut clients = connect(&broker.url()).await;
    assert_eq!(all_values(&mut clients.records, "crash").await, sent, "every acknowledged record, in order, once");
    let lookup = v1::FetchOffsetsRequest {
        group: "g".into(),
        partitions: vec![v1::TopicPartition { topic: "crash".into(), partition: 0 }],
    };
    let committed = clients.groups.fetch_offsets(lookup).await.unwrap().into_inner().offsets;
    assert_eq!(committed[0].offset, 17);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_0_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path());
    let mut clients = connect(&broker.url()).await;
    clients.admin.create_topic(create("calm")).await.unwrap();
    for value in ["a", "b", "c"] {
        clients.records.produce(produce("calm", value, v1::Acks::Leader)).await.unwrap();
    }
    let killed = Command::new("kill").args(["-TERM", &broker.pid()]).status().expect("run kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = broker.wait_exit(Duration::from_secs(10)).await.expect("exits within seconds of SIGTERM");
    // An idle client connection does not hold the shutdown up (the grace period is 5 s).
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    drop(clients);
    assert!(status.success(), "exit status {status:?}");
    drop(broker);
    // Every log was closed cleanly, so the next start trusts the files without a recovery scan.
    for log_dir in ["calm-0", "__consumer_offsets-0"] {
        assert!(is_clean_shutdown(&dir.path().join(log_dir)), "{log_dir} was not closed cleanly");
    }

    let broker = BrokerProcess::start(dir.path());
    let mut clients = connect(&broker.url()).await;
    assert_eq!(all_values(&mut clients.records, "calm").await, ["a", "b", "c"]);
}

#[test]
fn bad_configuration_is_rejected_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
        command.arg("broker").args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).args(args);
        command.env("RILL_ADMIN_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.stdin(Stdio::null()).output().expect("run rill");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, stderr) = run(&["--max-topics", "0"], &[]);
    assert!(!ok && stderr.contains("max_topics"), "{stderr}");
    let (ok, stderr) = run(&[], &[("RILL_MAX_BATCH_BYTES", "10")]);
    assert!(!ok && stderr.contains("max_batch_bytes"), "{stderr}");
    let (ok, stderr) = run(&["--advertise", "no-port"], &[]);
    assert!(!ok && stderr.contains("advertise"), "{stderr}");
    let (ok, stderr) = run(&[], &[("RILL_ADVERTISE", "host:0")]);
    assert!(!ok && stderr.contains("advertise"), "{stderr}");
    let config = dir.path().join("rill.toml");
    std::fs::write(&config, "max_topic = 3\n").unwrap();
    let (ok, stderr) = run(&["--config", config.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("max_topic") && stderr.contains("rill.toml"), "{stderr}");
    std::fs::write(&config, "http2_max_frame_bytes = 1\n").unwrap();
    let (ok, stderr) = run(&["--config", config.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("http2_max_frame_bytes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (ok, stderr) = run(&[], &[("RILL_TRANSPARENT_HUGE_PAGES", "yes")]);
    assert!(!ok && stderr.contains("RILL_TRANSPARENT_HUGE_PAGES") && stderr.contains("on, off or auto"), "{stderr}");
}

/// `THP_enabled` of `/proc/PID/status`: 0 once the process turned transparent huge pages off for itself.
fn huge_pages_enabled(pid: &str) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"))?;
    Some(line.trim() == "1")
}

#[test]
fn the_environment_turns_the_brokers_transparent_huge_pages_off_or_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let start = |choice: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rill"));
        command.env("RILL_TRANSPARENT_HUGE_PAGES", choice);
        let data = dir.path().join(choice);
        BrokerProcess::start_command(
            command,
            &["broker", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()],
        )
    };
    // This test's own process, which never turns them off: a kernel without the field (before 5.0) or without
    // transparent huge pages at all has nothing to show.
    if huge_pages_enabled(&std::process::id().to_string()) != Some(true) {
        eprintln!("skipped: this kernel shows no THP_enabled: 1 for a process that keeps them");
        return;
    }
    let off = start("off");
    assert_eq!(huge_pages_enabled(&off.pid()), Some(false), "RILL_TRANSPARENT_HUGE_PAGES=off turns them off");
    drop(off);
    let on = start("on");
    assert_eq!(huge_pages_enabled(&on.pid()), Some(true), "on keeps the kernel's setting");
}

#[test]
fn a_second_signal_during_a_slow_shutdown_stops_the_broker_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path());
    // A client whose runtime then freezes: its connection stays open and never answers the broker's GOAWAY,
    // so the graceful shutdown would wait out its whole grace period (5 s).
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let url = broker.url();
    let frozen = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let clients = runtime.block_on(async {
            let mut clients = connect(&url).await;
            clients.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap();
            clients
        });
        connected_tx.send(()).unwrap();
        let _ = release_rx.recv();
        drop(clients);
    });
    connected_rx.recv().unwrap();
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &broker.pid()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(broker.child.try_wait().unwrap().is_none(), "still in its graceful shutdown");
    assert!(Command::new("kill").args(["-INT", &broker.pid()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second signal did not stop the broker");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(4), "stopped before the grace period ran out");
    release_tx.send(()).unwrap();
    frozen.join().unwrap();
}
