//! The real broker under hostile connections: 1,000 idle TCP connections and 100 that send part of the HTTP/2
//! preface and stall do not stop it serving a normal client; its memory stays bounded; and once they go, it holds
//! no file descriptor for them. Prints the memory figures (`--nocapture`).

use crate::common;

use std::time::{Duration, Instant};

use common::BrokerProcess;

use rill_protocol::v1::{self, records_client::RecordsClient, topic_admin_client::TopicAdminClient};
use rill_protocol::{Record, RecordBatchBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The broker's resident memory in KiB, from /proc.
fn rss_kib(broker: &BrokerProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.child.id())).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

/// The broker's open file descriptors, from /proc.
fn open_fds(broker: &BrokerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.child.id())).expect("/proc fd").count()
}

async fn serve_a_normal_client(url: &str, round: usize) {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .expect("url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("a normal client still connects");
    let mut admin = TopicAdminClient::new(channel.clone());
    let mut records = RecordsClient::new(channel);
    let name = format!("normal-{round}");
    admin
        .create_topic(v1::CreateTopicRequest {
            name: name.clone(),
            partition_count: 1,
            config: None,
            ..Default::default()
        })
        .await
        .expect("create topic");
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record { value: Some(b"still here".to_vec()), ..Record::default() });
    let produce = v1::ProduceRequest {
        topic: name.clone(),
        partition: Some(0),
        records: Some(v1::produce_request::Records::RecordBatch(builder.build().into())),
        acks: v1::Acks::Leader as i32,
    };
    records.produce(produce).await.expect("produce");
    let fetched = records
        .fetch(v1::FetchRequest { topic: name, partition: 0, offset: 0, ..Default::default() })
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched.high_watermark, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_connections_do_not_stop_a_normal_client_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let url = broker.url();
    serve_a_normal_client(&url, 0).await;
    let (rss_before, fds_before) = (rss_kib(&broker), open_fds(&broker));

    let mut hostile = Vec::with_capacity(1100);
    for _ in 0..1000 {
        hostile.push(TcpStream::connect(&broker.addr).await.expect("idle connection"));
    }
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&broker.addr).await.expect("stalling connection");
        stream.write_all(b"PRI * HTTP/2.0\r\n").await.expect("part of the preface");
        hostile.push(stream);
    }
    // The broker has accepted them all (each holds a descriptor) and still serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(&broker) < fds_before + 1095 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // (fds_before counted the first client's connection, which may since have closed.)
    assert!(
        open_fds(&broker) >= fds_before + 1095,
        "the broker accepted every connection: {} fds, {fds_before} before",
        open_fds(&broker)
    );
    serve_a_normal_client(&url, 1).await;
    let rss_during = rss_kib(&broker);

    drop(hostile);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(&broker) > fds_before + 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fds_after = open_fds(&broker);
    serve_a_normal_client(&url, 2).await;
    let rss_after = rss_kib(&broker);
    eprintln!(
        "hostile connections: RSS {rss_before} KiB before, {rss_during} KiB with 1,100 idle/stalled connections \
         ({} KiB each), {rss_after} KiB after they closed; fds {fds_before} before, {fds_after} after",
        rss_during.saturating_sub(rss_before) / 1100
    );
    assert!(fds_after <= fds_before + 5, "descriptors left behind: {fds_before} before, {fds_after} after");
    assert!(
        rss_during < rss_before + 256 * 1024,
        "1,100 idle connections cost more than 256 MiB: {rss_before} -> {rss_during} KiB"
    );
}
