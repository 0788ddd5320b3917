//! The high watermark on three real `rill broker` processes: a consumer at an offset the leader holds but its
//! high watermark has not reached waits there (gRPC and librdkafka alike) instead of being told out of range,
//! and a leader SIGKILLed and restarted within its session serves up to the high watermark it checkpointed,
//! not from its log start, while a follower it counts in sync has not fetched yet.

use crate::common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{eventually, rill, rill_with_stdin, signal, DEADLINE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rill_protocol::v1::{self, records_client::RecordsClient};

/// Sessions and the ISR lag limit far beyond the test, so a stopped follower stays in the ISR (holding the high
/// watermark back) and a restarted leader keeps its leadership (no liveness probe, which would fence the killed
/// leader as soon as its port refused); checkpoints every 100 ms.
const SLOW_FAILURE_DETECTION: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 120000\n\
                                      node_liveness_probe = false\nreplica_lag_time_max_ms = 120000\n\
                                      high_watermark_checkpoint_interval_ms = 100\n";

/// Leader, ISR, high watermark and each replica's log end of partition 0 of `orders`, from `rill topic describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    leader: Option<u64>,
    isr: Vec<u64>,
    high_watermark: i64,
    log_ends: Vec<(u64, i64)>,
}

fn describe(addr: &str) -> Option<Row> {
    let output = rill(addr, &["topic", "describe", "orders"]);
    let line = output.stdout.lines().find(|line| line.split_whitespace().next() == Some("0"))?.to_owned();
    let cells: Vec<&str> = line.split_whitespace().collect();
    Some(Row {
        leader: cells.get(1)?.parse().ok(),
        isr: cells.get(4)?.split(',').filter_map(|id| id.parse().ok()).collect(),
        high_watermark: cells.get(5)?.parse().ok()?,
        log_ends: cells[6..]
            .iter()
            .filter_map(|cell| cell.split_once(':'))
            .filter_map(|(node, end)| Some((node.parse().ok()?, end.parse().ok()?)))
            .collect(),
    })
}

/// A gRPC fetch of partition 0 straight from `addr` (no client routing), records decoded.
fn fetch(addr: &str, offset: i64, min_bytes: u32, max_wait_ms: u32) -> Result<v1::FetchResponse, tonic::Status> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut records = RecordsClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let request = v1::FetchRequest {
            topic: "orders".into(),
            partition: 0,
            offset,
            min_bytes,
            max_wait_ms,
            format: v1::RecordFormat::Structured as i32,
            ..Default::default()
        };
        records.fetch(request).await.map(tonic::Response::into_inner)
    })
}

fn values(response: &v1::FetchResponse) -> Vec<(i64, String)> {
    response
        .records
        .iter()
        .map(|r| (r.offset, String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()))
        .collect()
}

/// The partition's high watermark in `node`'s checkpoint file.
fn checkpointed(cluster: &Cluster, node: u64) -> Option<i64> {
    rill_storage::HighWatermarkCheckpoint::load(&cluster.data_dir(node)).ok()??.get("orders", 0)
}

fn is_out_of_range(err: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode;
    matches!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset))
}

/// A librdkafka consumer of partition 0 from `offset` that resets nowhere: an out-of-range answer would reach the
/// test as an error instead of moving the consumer.
fn consumer_at(bootstrap: &str, offset: i64) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "high-watermark-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("a consumer from a valid configuration");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset("orders", 0, Offset::Offset(offset)).expect("valid offset");
    consumer.assign(&assignment).expect("assign");
    consumer
}

#[test]
fn consumers_past_the_high_watermark_wait_and_a_restarted_leader_serves_up_to_its_checkpoint() {
    let mut cluster = Cluster::start(SLOW_FAILURE_DETECTION);
    let create = ["topic", "create", "orders", "--replication-factor", "3", "--min-insync-replicas", "2"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let row = eventually("a leader and 3 in-sync replicas", || {
        describe(cluster.addr(1)).filter(|r| r.leader.is_some() && r.isr.len() == 3)
    });
    let leader = row.leader.expect("a leader");
    let (stopped, running) = {
        let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
        (followers[0], followers[1])
    };
    let early: String = (0..5).map(|i| format!("early-{i}\n")).collect();
    rill_with_stdin(cluster.addr(leader), &["produce", "orders", "--acks", "all"], early.as_bytes()).ok();
    eventually("the high watermark at 5", || describe(cluster.addr(leader)).filter(|r| r.high_watermark == 5));
    eventually("the leader's checkpoint at 5", || (checkpointed(&cluster, leader) == Some(5)).then_some(()));

    // A follower stopped: it stays in the ISR, so the high watermark stays at 5 while the leader's log grows.
    signal(&cluster.nodes[stopped as usize - 1].as_ref().expect("running").child, libc::SIGSTOP);
    let late: String = (0..3).map(|i| format!("late-{i}\n")).collect();
    rill_with_stdin(cluster.addr(leader), &["produce", "orders", "--acks", "leader"], late.as_bytes()).ok();
    let row = eventually("the leader's log end at 8", || {
        describe(cluster.addr(leader)).filter(|r| r.log_ends.contains(&(leader, 8)))
    });
    assert_eq!(row.high_watermark, 5, "{row:?}");

    let between = fetch(cluster.addr(leader), 6, 0, 0).expect("an offset below the log end is not out of range");
    assert_eq!((between.records.len(), between.next_offset, between.high_watermark), (0, 6, 5), "{between:?}");
    let past = fetch(cluster.addr(leader), 9, 0, 0).expect_err("past the log end");
    assert_eq!(past.code(), tonic::Code::OutOfRange, "{past:?}");
    assert!(past.message().contains("to 8"), "names the log end: {past:?}");
    let bootstrap = format!("{},{}", cluster.addr(leader), cluster.addr(running));
    let consumer = consumer_at(&bootstrap, 6);
    let polled = consumer.poll(Duration::from_millis(1_500));
    assert!(polled.is_none(), "nothing to read at 6 yet, and no out-of-range error: {polled:?}");
    // Closed before the restart: a node that has just started answers Metadata with UNKNOWN_TOPIC_OR_PARTITION
    // until it has applied the cluster's metadata, and librdkafka may then drop the partition for minutes
    // (`topic.metadata.refresh.interval.ms`), which is not what this test is about.
    drop(consumer);

    // The leader SIGKILLed and restarted within its session: it leads again at the same epoch, and the stopped
    // follower, still in the ISR, has not told it its log end. Its high watermark is the checkpoint's.
    cluster.nodes[leader as usize - 1].take().expect("running").kill();
    cluster.nodes[leader as usize - 1] = Some(cluster.start_node(leader));
    let restarted = eventually("the restarted leader serving fetches", || fetch(cluster.addr(leader), 0, 0, 0).ok());
    let early_values: Vec<(i64, String)> = (0..5).map(|i| (i, format!("early-{i}"))).collect();
    assert_eq!(values(&restarted), early_values, "{restarted:?}");
    assert_eq!(restarted.high_watermark, 5, "the checkpointed high watermark, not the log start");
    let between = fetch(cluster.addr(leader), 6, 0, 0).expect("still an empty read, not out of range");
    assert_eq!((between.records.len(), between.high_watermark), (0, 5), "{between:?}");
    let consumer = consumer_at(&bootstrap, 6);
    let polled = consumer.poll(Duration::from_millis(1_000));
    assert!(polled.is_none(), "nothing at 6 on the restarted leader yet, and no error: {polled:?}");

    // The follower resumes: the high watermark passes 6, and both waiting consumers get offset 6 first.
    signal(&cluster.nodes[stopped as usize - 1].as_ref().expect("running").child, libc::SIGCONT);
    let waited = eventually("records past 6", || {
        fetch(cluster.addr(leader), 6, 1, 2_000).ok().filter(|f| !f.records.is_empty())
    });
    assert_eq!(values(&waited).first(), Some(&(6, "late-1".to_owned())), "{waited:?}");
    let deadline = Instant::now() + DEADLINE;
    let message = loop {
        assert!(Instant::now() < deadline, "librdkafka never got offset 6");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => break (message.offset(), message.payload().map(|p| p.to_vec())),
            Some(Err(err)) if is_out_of_range(&err) => panic!("the consumer was told out of range: {err}"),
            // The leader's restart: connection errors until librdkafka reconnects.
            // Printed, not failed on: only an out-of-range answer would break the promise.
            Some(Err(err)) => eprintln!("consumer error: {err}"),
            None => {}
        }
    };
    assert_eq!(message, (6, Some(b"late-1".to_vec())), "read on from where it waited, no reset");
}
