//! `rill broker` under a low open-file limit (`ulimit -n 256`): topics that would not fit are refused with a clear
//! RESOURCE_EXHAUSTED (never INTERNAL "Too many open files", never a half-created topic), running out of
//! descriptors on accepts does not flood the log, and the broker keeps serving throughout.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rill, BrokerProcess, DEADLINE};
use rill_protocol::v1::{self, topic_admin_client::TopicAdminClient};

/// The accept loop's "out of file descriptors" log line.
const OUT_OF_DESCRIPTORS: &str = "out of file descriptors";

/// `rill broker` on a free port with its soft and hard open-file limits at `limit`, stderr to `log`.
fn broker_with_open_file_limit(limit: u32, data_dir: &Path, log: &Path) -> BrokerProcess {
    let script =
        format!("ulimit -n {limit} && exec \"$0\" broker --listen 127.0.0.1:0 --admin-listen off --data-dir \"$1\"");
    let mut child = Command::new("sh")
        .args(["-c", &script, common::RILL, &data_dir.to_string_lossy()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("create the log file"))
        .spawn()
        .expect("spawn rill broker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read the listen line");
    let Some(addr) = line.trim().strip_prefix("rill broker listening on ") else {
        let _ = child.kill();
        panic!("unexpected first line {line:?}: {}", std::fs::read_to_string(log).unwrap_or_default());
    };
    BrokerProcess { child, addr: addr.to_owned() }
}

fn lines_containing(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|line| line.contains(needle)).count()
}

/// Polls `condition` every 20 ms until it holds; fails the test past `DEADLINE`.
#[track_caller]
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_under_a_low_open_file_limit_refuses_clearly_without_a_log_flood_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, log) = (dir.path().join("data"), dir.path().join("broker.log"));
    let broker = broker_with_open_file_limit(256, &data_dir, &log);
    let mut admin = TopicAdminClient::connect(broker.url()).await.expect("connect");

    // Topics of one partition until the budget refuses one: cleanly, well before the limit itself.
    let mut created = 0;
    let refusal = loop {
        let request = v1::CreateTopicRequest {
            name: format!("t{created}"),
            partition_count: 1,
            config: None,
            ..Default::default()
        };
        match admin.create_topic(request).await {
            Ok(_) => created += 1,
            Err(status) => break status,
        }
        assert!(created < 256, "256 descriptors cannot hold {created} partitions");
    };
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted, "{refusal:?}");
    assert!(refusal.message().contains("would need 2 more open files"), "{refusal:?}");
    assert!(refusal.message().contains("the broker may open 256"), "{refusal:?}");
    assert!(created >= 16, "only {created} topics fit in 256 descriptors");
    assert!(!data_dir.join(format!("t{created}-0")).exists(), "a refused topic leaves no directory");

    // The CLI says the same in one line.
    let refused = rill(&broker.addr, &["topic", "create", "one-too-many"]);
    refused.fails(1, "the broker may open 256");

    // Exhaust the broker's descriptors with connections that never speak: its accepts fail with EMFILE.
    let addr: std::net::SocketAddr = broker.addr.parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(std::net::TcpStream::connect(addr).expect("the kernel queues the connection"));
    }
    wait_for("the first out-of-descriptors line", || lines_containing(&log, OUT_OF_DESCRIPTORS) >= 1);
    let first_seen = Instant::now();
    // A second line comes only after a second: waiting for it lets the accept loop run long enough to flood.
    wait_for("a second out-of-descriptors line", || lines_containing(&log, OUT_OF_DESCRIPTORS) >= 2);
    let lines = lines_containing(&log, OUT_OF_DESCRIPTORS);
    let allowed = first_seen.elapsed().as_secs() as usize + 2;
    assert!(lines <= allowed, "{lines} out-of-descriptors lines in {:?}", first_seen.elapsed());
    let log_bytes = std::fs::metadata(&log).unwrap().len();
    assert!(log_bytes < 64 << 10, "the log grew to {log_bytes} bytes");

    // Connections closed, the broker serves again: the old client and new ones.
    drop(idle);
    let topics = admin.list_topics(v1::ListTopicsRequest {}).await.expect("list topics on the old connection");
    assert_eq!(topics.into_inner().topics.len(), created);
    wait_for("a new connection to be served", || rill(&broker.addr, &["topic", "list"]).status.success());
    assert!(!std::fs::read_to_string(&log).unwrap().contains("panicked"));
}
