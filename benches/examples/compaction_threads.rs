//! Compaction workers (`--log-cleaner-threads`) on the real `rill broker` binary: how long a node takes to compact
//! a backlog spread over several partitions with 1 worker and with more.
//!
//! Each round starts a broker on a fresh data dir, creates a compacted topic of PARTITIONS partitions whose
//! `min.compaction.lag.ms` (an hour) holds compaction back, fills each partition with MB of 1 KiB records over
//! 1,000 keys, then sets the lag to 0 and times until every partition is below half its size (its compacted
//! part rewritten to the keys' newest records; the active segment stays). Rounds alternate the worker counts.
//!
//! Usage (release builds of both):
//! `cargo build --release -p rill-cli --bin rill && cargo run --release -p rill-benches --example
//!  compaction_threads -- target/release/rill [PARTITIONS=4] [MB=128] [THREADS=1,2] [ROUNDS=3] [DATA_PARENT=target]`

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_benches::BrokerProcess;
use rill_protocol::v1::{self, records_client::RecordsClient, topic_admin_client::TopicAdminClient};
use rill_protocol::{Record, RecordBatchBuilder};

const KEYS: usize = 1_000;
const RECORD_BYTES: usize = 1_000;
const RECORDS_PER_BATCH: usize = 1_000;
const SEGMENT_BYTES: u64 = 4 << 20;

fn start(rill: &Path, data_dir: &Path, threads: usize) -> BrokerProcess {
    let mut command = Command::new(rill);
    command
        .args(["broker", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--log-cleaner-threads"])
        .arg(threads.to_string())
        .arg("--data-dir")
        .arg(data_dir);
    BrokerProcess::spawn(command)
}

fn batch(first: usize, value: &[u8]) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    for i in first..first + RECORDS_PER_BATCH {
        builder.push(&Record {
            key: Some(format!("key-{:05}", i % KEYS).into_bytes()),
            value: Some(value.to_vec()),
            headers: vec![],
            // Now: `min.compaction.lag.ms` counts from the records' timestamps, so an old one would not hold
            // compaction back while the partitions fill.
            timestamp_ms: now_ms(),
        });
    }
    Bytes::from(builder.build())
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit an i64")
}

async fn sizes(admin: &mut TopicAdminClient<tonic::transport::Channel>) -> Vec<u64> {
    let request = v1::DescribeTopicRequest { name: "table".into(), auto_create: false };
    let described = admin.describe_topic(request).await.expect("describe").into_inner();
    described.partitions.iter().map(|p| p.size_bytes).collect()
}

/// One round: the seconds from the lag's release until every partition is below half its size.
async fn round(rill: &Path, data_parent: &Path, threads: usize, partitions: u32, mb: usize) -> f64 {
    let dir = tempfile::tempdir_in(data_parent).expect("temp dir");
    let broker = start(rill, dir.path(), threads);
    let url = format!("http://{}", broker.addr);
    let mut admin = TopicAdminClient::connect(url.clone()).await.expect("connect");
    let mut records = RecordsClient::connect(url).await.expect("connect").max_encoding_message_size(64 << 20);
    let config = v1::TopicConfig {
        cleanup_policy: Some("compact".into()),
        segment_bytes: Some(SEGMENT_BYTES),
        min_compaction_lag_ms: Some(3_600_000),
        min_cleanable_dirty_ratio: Some(0.0),
        ..Default::default()
    };
    let create = v1::CreateTopicRequest {
        name: "table".into(),
        partition_count: partitions,
        config: Some(config),
        ..Default::default()
    };
    admin.create_topic(create).await.expect("create");
    let value = vec![b'v'; RECORD_BYTES];
    let batches = mb * (1 << 20) / (RECORD_BYTES * RECORDS_PER_BATCH);
    for partition in 0..partitions {
        for b in 0..batches {
            let request = v1::ProduceRequest {
                topic: "table".into(),
                partition: Some(partition),
                records: Some(v1::produce_request::Records::RecordBatch(batch(b * RECORDS_PER_BATCH, &value))),
                acks: v1::Acks::Leader as i32,
            };
            records.produce(request).await.expect("produce");
        }
    }
    let before = sizes(&mut admin).await;
    let release = v1::AlterTopicConfigRequest {
        name: "table".into(),
        set: Some(v1::TopicConfig { min_compaction_lag_ms: Some(0), ..Default::default() }),
        ..Default::default()
    };
    let started = Instant::now();
    admin.alter_topic_config(release).await.expect("alter");
    loop {
        let now = sizes(&mut admin).await;
        if now.iter().zip(&before).all(|(now, before)| now * 2 < *before) {
            break started.elapsed().as_secs_f64();
        }
        assert!(started.elapsed() < Duration::from_secs(600), "not compacted within 10 minutes: {now:?} of {before:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rill = Path::new(args.first().map(String::as_str).unwrap_or("target/release/rill")).to_path_buf();
    let partitions: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let mb: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(128);
    let threads: Vec<usize> =
        args.get(3).map_or("1,2", String::as_str).split(',').map(|t| t.parse().expect("a worker count")).collect();
    let rounds: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(3);
    let data_parent = Path::new(args.get(5).map(String::as_str).unwrap_or("target")).to_path_buf();
    println!("{partitions} partitions x {mb} MB of 1 KiB records over {KEYS} keys, {SEGMENT_BYTES} B segments");
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); threads.len()];
    for r in 0..rounds {
        for (i, &t) in threads.iter().enumerate() {
            let took = round(&rill, &data_parent, t, partitions, mb).await;
            println!("round {r}: {t} worker(s): compacted in {took:.2} s");
            seconds[i].push(took);
        }
    }
    for (i, &t) in threads.iter().enumerate() {
        let mut s = seconds[i].clone();
        s.sort_by(f64::total_cmp);
        println!("{t} worker(s): median {:.2} s [{:.2}–{:.2}]", s[s.len() / 2], s[0], s[s.len() - 1]);
    }
}
