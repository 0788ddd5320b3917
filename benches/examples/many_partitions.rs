//! Many idle partitions on the real `rill broker` binary: how long creating them takes, how long the broker takes
//! to start on them and to shut down (SIGTERM), and what each idle partition costs in memory (RSS) and open
//! descriptors. Targets (issue "hardening"): start < 3 s, shutdown < 5 s, <= 1 descriptor and <= 64 KiB RSS per
//! idle partition, for 10,000 single-partition topics.
//!
//! The broker raises its soft open-file limit to the hard one itself; with OPEN_FILE_LIMIT (not 0) it runs under
//! `sh -c "ulimit -n LIMIT && exec rill broker ..."` (raising the hard limit needs CAP_SYS_RESOURCE). With direct
//! writes a partition may hold 2 descriptors (1 with buffered writes), and the broker refuses partitions past
//! its budget: 10,000 direct partitions need a hard limit of about 26,000.
//!
//! Usage (release builds of both):
//! `cargo build --release -p rill-cli --bin rill && cargo run --release -p rill-benches --example many_partitions
//!  -- target/release/rill [TOPICS=10000] [direct|buffered] [OPEN_FILE_LIMIT=0] [DATA_PARENT=target]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_benches::BrokerProcess;
use rill_protocol::v1::{self, topic_admin_client::TopicAdminClient};
use tokio::sync::Semaphore;

/// CreateTopic calls in flight at once.
const PARALLEL_CREATES: usize = 32;

/// Starts the broker and returns it with the time from spawn to its "listening" line (the port accepts then).
fn start(rill: &Path, data_dir: &Path, write_mode: &str, open_file_limit: u64) -> (BrokerProcess, Duration) {
    let ulimit = if open_file_limit > 0 { format!("ulimit -n {open_file_limit} && ") } else { String::new() };
    let script = format!("{ulimit}exec \"$0\" broker --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir \"$1\" --write-mode \"$2\"");
    let started = Instant::now();
    let mut command = Command::new("sh");
    command.args(["-c", &script, &rill.to_string_lossy(), &data_dir.to_string_lossy(), write_mode]);
    let broker = BrokerProcess::spawn(command);
    (broker, started.elapsed())
}

/// SIGTERM, and the time until the process exited.
fn stop(mut broker: BrokerProcess) -> Duration {
    let started = Instant::now();
    let pid = broker.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("run kill").success());
    let status = broker.child.wait().expect("wait for the broker");
    let elapsed = started.elapsed();
    assert!(status.success(), "the broker exited with {status}");
    elapsed
}

/// Resident memory (bytes) and open descriptors of `broker`.
fn footprint(broker: &BrokerProcess) -> (u64, u64) {
    let proc_dir = PathBuf::from(format!("/proc/{}", broker.child.id()));
    let status = std::fs::read_to_string(proc_dir.join("status")).expect("read /proc/PID/status");
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(proc_dir.join("fd")).expect("list /proc/PID/fd").count() as u64;
    (rss_kib * 1024, fds)
}

async fn create_topics(addr: &str, topics: usize) -> Duration {
    let admin = TopicAdminClient::connect(format!("http://{addr}")).await.expect("connect");
    let slots = Arc::new(Semaphore::new(PARALLEL_CREATES));
    let started = Instant::now();
    let mut creating = tokio::task::JoinSet::new();
    for i in 0..topics {
        let (mut admin, slots) = (admin.clone(), Arc::clone(&slots));
        creating.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore open");
            let request = v1::CreateTopicRequest {
                name: format!("idle-{i:05}"),
                partition_count: 1,
                config: None,
                ..Default::default()
            };
            admin.create_topic(request).await.expect("create topic");
        });
    }
    while let Some(done) = creating.join_next().await {
        done.expect("create task");
    }
    started.elapsed()
}

fn per_partition(before: u64, after: u64, partitions: usize) -> f64 {
    after.saturating_sub(before) as f64 / partitions as f64
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: many_partitions RILL [TOPICS] [direct|buffered] [OPEN_FILE_LIMIT] [DATA_PARENT]";
    let rill = PathBuf::from(args.get(1).expect(usage));
    let topics: usize = args.get(2).map_or(10_000, |v| v.parse().expect("TOPICS"));
    let write_mode = args.get(3).map_or("direct", String::as_str);
    let open_file_limit: u64 = args.get(4).map_or(0, |v| v.parse().expect("OPEN_FILE_LIMIT"));
    let parent = PathBuf::from(args.get(5).map_or("target", String::as_str));
    std::fs::create_dir_all(&parent).expect("create DATA_PARENT");
    let dir = tempfile::tempdir_in(&parent).expect("temporary data dir");
    let data_dir = dir.path().join("data");

    let (broker, empty_start) = start(&rill, &data_dir, write_mode, open_file_limit);
    let (empty_rss, empty_fds) = footprint(&broker);
    let create = create_topics(&broker.addr, topics).await;
    let (created_rss, created_fds) = footprint(&broker);
    let first_shutdown = stop(broker);

    let (broker, restart) = start(&rill, &data_dir, write_mode, open_file_limit);
    let (restored_rss, restored_fds) = footprint(&broker);
    let restored_shutdown = stop(broker);

    println!("topics={topics} (1 partition each, --write-mode {write_mode}, otherwise default settings)");
    println!("empty_start_s={:.3}", empty_start.as_secs_f64());
    println!("empty_rss_mib={:.1} empty_fds={empty_fds}", empty_rss as f64 / 1048576.0);
    println!("create_s={:.2} ({:.0} topics/s)", create.as_secs_f64(), topics as f64 / create.as_secs_f64());
    println!(
        "after_create: rss_mib={:.1} fds={created_fds} rss_per_partition_kib={:.1} fds_per_partition={:.3}",
        created_rss as f64 / 1048576.0,
        per_partition(empty_rss, created_rss, topics) / 1024.0,
        per_partition(empty_fds, created_fds, topics)
    );
    println!("shutdown_after_create_s={:.2}", first_shutdown.as_secs_f64());
    println!("start_on_partitions_s={:.2}", restart.as_secs_f64());
    println!(
        "after_restart: rss_mib={:.1} fds={restored_fds} rss_per_partition_kib={:.1} fds_per_partition={:.3}",
        restored_rss as f64 / 1048576.0,
        per_partition(empty_rss, restored_rss, topics) / 1024.0,
        per_partition(empty_fds, restored_fds, topics)
    );
    println!("shutdown_after_restart_s={:.2}", restored_shutdown.as_secs_f64());
}
