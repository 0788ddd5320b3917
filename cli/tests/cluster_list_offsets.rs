//! Kafka's ListOffsets on three real `rill broker` processes, spoken raw on the Kafka port: only the leader
//! answers (a follower says NOT_LEADER_OR_FOLLOWER), a current leader epoch older than the leader's is
//! FENCED_LEADER_EPOCH and a newer one UNKNOWN_LEADER_EPOCH, and a new leader whose high watermark is still below
//! the start of its epoch answers OFFSET_NOT_AVAILABLE for "latest" until its followers catch up, then the
//! high watermark. The lagging window is made, not hoped for: a follower SIGSTOPped while still in the ISR
//! (sessions and the ISR lag limit far beyond the test) holds the high watermark back while the leader's log
//! grows, and the leadership moves, by a preferred-leader election, to the other follower, which holds the
//! records but has been told a high watermark below them. gRPC's ListOffsets follows the same rule (its refusal
//! is `offset-not-available`), and the CLI, whose consume asks "latest" first, waits through the window at the
//! new leader instead of failing.
//!
//! Kafka's Fetch v12 on the same cluster: a fetch whose `last_fetched_epoch` ended, in the new leader's log,
//! below its fetch offset is answered with `diverging_epoch` and no records (KIP-595's field, answered as Kafka's
//! leader answers it); one at or below that end, or in the leader's own epoch, reads on.

use crate::common;

use std::net::SocketAddr;

use common::cluster::{self, Cluster, PartitionRow};
use common::{eventually, rill, rill_with_stdin, signal};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::v1::{self, records_client::RecordsClient};
use rill_tests::kafka_client::{list_offsets_request, KafkaClient};

const SLOW_FAILURE_DETECTION: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 120000\n\
                                      replica_lag_time_max_ms = 120000\nauto_leader_rebalance_enable = false\n";
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const NO_EPOCH: i32 = -1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const OFFSET_NOT_AVAILABLE: i16 = 78;

/// (error code, offset, leader epoch) of partition 0 of `orders`, asked of `addr` with ListOffsets v4.
fn list_offset(addr: &str, timestamp: i64, current_leader_epoch: i32) -> (i16, i64, i32) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr: SocketAddr = addr.parse().expect("node address");
    let mut request = list_offsets_request("orders", 0, timestamp);
    request.topics[0].partitions[0].current_leader_epoch = current_leader_epoch;
    let response: ListOffsetsResponse = runtime.block_on(async {
        let mut client = KafkaClient::connect(addr).await;
        client.call(ApiKey::ListOffsets, 4, &request).await
    });
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset, partition.leader_epoch)
}

/// Partition 0 of `orders` fetched from `addr` with Fetch `version`, at `fetch_offset`, naming the client's last
/// fetched epoch (v12+; older versions cannot carry it, and it is left out).
fn fetch(addr: &str, version: i16, fetch_offset: i64, last_fetched_epoch: i32) -> PartitionData {
    let last_fetched_epoch = if version >= 12 { last_fetched_epoch } else { NO_EPOCH };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr: SocketAddr = addr.parse().expect("node address");
    let request = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![
        FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("orders"))).with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_fetched_epoch)
                .with_partition_max_bytes(1 << 20),
        ]),
    ]);
    let response: FetchResponse = runtime.block_on(async {
        let mut client = KafkaClient::connect(addr).await;
        client.call(ApiKey::Fetch, version, &request).await
    });
    response.responses[0].partitions[0].clone()
}

/// The base offset of the first batch a fetch returned, if it returned any.
fn first_batch_offset(partition: &PartitionData) -> Option<i64> {
    let records = partition.records.as_ref()?;
    let base: [u8; 8] = records.get(..8)?.try_into().ok()?;
    Some(i64::from_be_bytes(base))
}

/// The gRPC `Latest` offset of partition 0 of `orders`, asked of `addr`, or the refusal's gRPC code and reason.
fn grpc_latest(addr: &str) -> Result<i64, (tonic::Code, Option<Reason>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut records = RecordsClient::connect(format!("http://{addr}")).await.expect("connect");
        let request = v1::ListOffsetsRequest {
            topic: "orders".into(),
            partitions: vec![0],
            spec: v1::OffsetSpec::Latest as i32,
            timestamp_ms: 0,
        };
        match records.list_offsets(request).await {
            Ok(response) => Ok(response.into_inner().offsets[0].offset),
            Err(status) => Err((status.code(), reason_of(&status))),
        }
    })
}

fn row(addr: &str) -> Option<PartitionRow> {
    cluster::describe_topic(addr, "orders", 1).map(|rows| rows[0].clone())
}

fn produce(addr: &str, acks: &str, values: impl Iterator<Item = String>) {
    let input: String = values.map(|value| value + "\n").collect();
    rill_with_stdin(addr, &["produce", "orders", "--acks", acks], input.as_bytes()).ok();
}

/// Three nodes whose `orders` (one partition, 3 replicas) has a leader and every replica in sync.
fn cluster_with_orders_in_sync() -> (Cluster, PartitionRow) {
    let cluster = Cluster::start(SLOW_FAILURE_DETECTION);
    let create = ["topic", "create", "orders", "--replication-factor", "3", "--min-insync-replicas", "2"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let in_sync = eventually("a leader and 3 in-sync replicas", || {
        row(cluster.addr(1)).filter(|r| r.leader.is_some() && r.isr.len() == 3)
    });
    (cluster, in_sync)
}

#[test]
fn list_offsets_is_answered_by_the_leader_at_its_epoch_once_its_high_watermark_reaches_the_epoch_start() {
    let (cluster, first) = cluster_with_orders_in_sync();
    let old_leader = first.leader.expect("a leader");
    let followers: Vec<u64> = first.replicas.iter().copied().filter(|id| *id != old_leader).collect();
    let (new_leader, stopped) = (followers[0], followers[1]);
    produce(cluster.addr(old_leader), "all", (0..10).map(|i| format!("early-{i}")));
    let caught_up = eventually("every replica at 10", || {
        row(cluster.addr(old_leader)).filter(|r| r.high_watermark == 10 && r.log_ends.iter().all(|(_, end)| *end == 10))
    });

    // The leader answers, at its epoch; the followers send the client to it.
    let epoch = i32::try_from(caught_up.epoch).expect("a small epoch");
    assert_eq!(list_offset(cluster.addr(old_leader), LATEST, NO_EPOCH), (0, 10, epoch));
    assert_eq!(list_offset(cluster.addr(old_leader), LATEST, epoch), (0, 10, epoch));
    for follower in [new_leader, stopped] {
        assert_eq!(list_offset(cluster.addr(follower), LATEST, NO_EPOCH).0, NOT_LEADER_OR_FOLLOWER);
        assert_eq!(list_offset(cluster.addr(follower), EARLIEST, epoch).0, NOT_LEADER_OR_FOLLOWER);
    }
    assert_eq!(list_offset(cluster.addr(old_leader), LATEST, epoch + 1).0, UNKNOWN_LEADER_EPOCH);

    // The next preferred leader, while every replica is up: only the order changes, nothing is copied.
    let order = format!("{new_leader},{old_leader},{stopped}");
    rill(&cluster.all(), &["topic", "reassign", "orders", "--partition", "0", "--replicas", &order]).ok();

    // One follower stopped, still in the ISR: the high watermark stays at 10 while the other follower copies
    // the leader's log to 20.
    signal(&cluster.nodes[stopped as usize - 1].as_ref().expect("running").child, libc::SIGSTOP);
    let running = format!("{},{}", cluster.addr(old_leader), cluster.addr(new_leader));
    produce(cluster.addr(old_leader), "leader", (0..10).map(|i| format!("late-{i}")));
    let grown = eventually("the next leader's log end at 20", || {
        row(cluster.addr(old_leader)).filter(|r| r.log_ends.contains(&(new_leader, 20)))
    });
    assert_eq!(grown.high_watermark, 10, "the stopped follower holds it back: {grown:?}");

    // The leadership moves: the new leader's epoch starts at 20, above the high watermark it was told.
    let args = ["cluster", "elect-leaders", "--topic", "orders", "--partition", "0"];
    eventually("the election", || rill(&running, &args).status.success().then_some(()));
    let elected = eventually("the new leader in the metadata", || {
        row(cluster.addr(new_leader)).filter(|r| r.leader == Some(new_leader))
    });
    let new_epoch = i32::try_from(elected.epoch).expect("a small epoch");
    assert!(new_epoch > epoch, "{elected:?}");
    let (code, _, _) = eventually("the new leader answering", || {
        Some(list_offset(cluster.addr(new_leader), LATEST, NO_EPOCH))
            .filter(|(code, _, _)| *code != NOT_LEADER_OR_FOLLOWER)
    });
    assert_eq!(code, OFFSET_NOT_AVAILABLE, "latest while the high watermark is below the epoch start");
    assert_eq!(list_offset(cluster.addr(new_leader), LATEST, new_epoch).0, OFFSET_NOT_AVAILABLE);
    assert_eq!(list_offset(cluster.addr(new_leader), EARLIEST, new_epoch), (0, 0, new_epoch), "the log start is safe");
    assert_eq!(list_offset(cluster.addr(new_leader), LATEST, epoch).0, FENCED_LEADER_EPOCH);
    assert_eq!(list_offset(cluster.addr(new_leader), LATEST, new_epoch + 1).0, UNKNOWN_LEADER_EPOCH);
    let old_leader_knows_the_new_epoch = eventually("the old leader following", || {
        Some(list_offset(cluster.addr(old_leader), LATEST, epoch)).filter(|(code, _, _)| *code != 0)
    });
    assert_eq!(old_leader_knows_the_new_epoch.0, FENCED_LEADER_EPOCH);
    assert_eq!(list_offset(cluster.addr(old_leader), LATEST, new_epoch).0, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        grpc_latest(cluster.addr(new_leader)),
        Err((tonic::Code::Unavailable, Some(Reason::OffsetNotAvailable))),
        "gRPC's latest while the high watermark is below the epoch start"
    );
    assert_eq!(grpc_latest(cluster.addr(old_leader)), Err((tonic::Code::Unavailable, Some(Reason::NotLeader))));

    // A consume started in the window asks "latest" first and waits at the new leader for it (within the
    // client's request timeout, 30 s), so it reads all 20 records once the follower is back, rather than failing.
    // The new leader's count of gRPC ListOffsets calls says when the consume's first one has arrived there.
    let list_offsets_at_new_leader = || {
        let samples = cluster::scrape(cluster.admin(new_leader))?;
        samples.get(r#"rill_grpc_requests_total{method="rill.v1.Records/ListOffsets"}"#).copied()
    };
    let asked_before = list_offsets_at_new_leader().unwrap_or(0.0);
    let consume_addr = cluster.addr(new_leader).to_owned();
    let consume = std::thread::spawn(move || rill(&consume_addr, &["consume", "orders", "--partition", "0"]));
    eventually("the consume asking the new leader for latest", || {
        list_offsets_at_new_leader().filter(|asked| *asked > asked_before)
    });

    // The stopped follower resumes and catches up: the high watermark passes the epoch start, and "latest" is it.
    signal(&cluster.nodes[stopped as usize - 1].as_ref().expect("running").child, libc::SIGCONT);
    let answered = eventually("the new leader's high watermark at 20", || {
        Some(list_offset(cluster.addr(new_leader), LATEST, new_epoch))
            .filter(|(code, _, _)| *code != OFFSET_NOT_AVAILABLE)
    });
    assert_eq!(answered, (0, 20, new_epoch));
    assert_eq!(grpc_latest(cluster.addr(new_leader)), Ok(20));
    let consumed = consume.join().expect("the consume thread");
    assert!(consumed.status.success(), "consume through the window: {}", consumed.stderr);
    assert_eq!(consumed.stdout.lines().count(), 20, "{}", consumed.stdout);
    assert_eq!(
        list_offset(cluster.addr(new_leader), 0, new_epoch),
        (0, 0, new_epoch),
        "the first record at or after 0"
    );
}

#[test]
fn a_fetch_past_the_end_of_its_last_fetched_epoch_is_answered_with_the_diverging_epoch() {
    let (cluster, first) = cluster_with_orders_in_sync();
    let old_leader = first.leader.expect("a leader");
    let new_leader = first.replicas.iter().copied().find(|id| *id != old_leader).expect("a follower");
    produce(cluster.addr(old_leader), "all", (0..10).map(|i| format!("old-{i}")));
    let old_epoch = i32::try_from(first.epoch).expect("a small epoch");

    // The leadership moves; the new leader's epoch starts at 10, and 5 records are appended in it.
    let others: Vec<String> = first.replicas.iter().filter(|id| **id != new_leader).map(u64::to_string).collect();
    let order = format!("{new_leader},{}", others.join(","));
    rill(&cluster.all(), &["topic", "reassign", "orders", "--partition", "0", "--replicas", &order]).ok();
    let args = ["cluster", "elect-leaders", "--topic", "orders", "--partition", "0"];
    eventually("the election", || rill(&cluster.all(), &args).status.success().then_some(()));
    let elected = eventually("the new leader in the metadata", || {
        row(cluster.addr(new_leader)).filter(|r| r.leader == Some(new_leader))
    });
    let new_epoch = i32::try_from(elected.epoch).expect("a small epoch");
    assert!(new_epoch > old_epoch, "{elected:?}");
    eventually("the new leader taking produces", || {
        rill_with_stdin(cluster.addr(new_leader), &["produce", "orders", "--acks", "all"], b"new-0\n")
            .status
            .success()
            .then_some(())
    });
    produce(cluster.addr(new_leader), "all", (1..5).map(|i| format!("new-{i}")));
    eventually("the high watermark at 15", || row(cluster.addr(new_leader)).filter(|r| r.high_watermark == 15));

    // A client that says it read offset 11 in the old epoch read what this log never held in that epoch.
    let diverged = fetch(cluster.addr(new_leader), 12, 12, old_epoch);
    assert_eq!(diverged.error_code, 0, "{diverged:?}");
    assert_eq!(
        diverged.diverging_epoch,
        EpochEndOffset::default().with_epoch(old_epoch).with_end_offset(10),
        "{diverged:?}"
    );
    assert_eq!(first_batch_offset(&diverged), None, "no records beside a diverging epoch");

    // At the old epoch's end, in the leader's epoch, without an epoch, or before v12: the records.
    for (version, offset, last_fetched_epoch) in
        [(12, 10, old_epoch), (12, 5, old_epoch), (12, 12, new_epoch), (12, 12, -1), (11, 12, old_epoch)]
    {
        let read = fetch(cluster.addr(new_leader), version, offset, last_fetched_epoch);
        assert_eq!(read.error_code, 0, "v{version} at {offset}, last epoch {last_fetched_epoch}: {read:?}");
        assert_eq!(read.diverging_epoch, EpochEndOffset::default(), "v{version} at {offset}: {read:?}");
        let base = first_batch_offset(&read).expect("records");
        assert!(base <= offset, "v{version}: the batch holding {offset} comes first, got one at {base}");
        assert_eq!(read.high_watermark, 15);
    }
}
