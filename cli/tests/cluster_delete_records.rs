//! Deleting records on a cluster of three real `rill broker` processes, Kafka's way: only the partition's leader
//! deletes (another node answers NOT_LEADER_OR_FOLLOWER; `rill topic delete-records` and librdkafka's AdminClient
//! go to the leader), the followers take its log start through replication, and the answer comes once every
//! in-sync replica has it. So after the leader is SIGKILLed the new leader's earliest offset is the deleted-to
//! offset and a consumer from the beginning starts there; a restarted replica keeps it, and one that was down
//! during a deletion learns it when it comes back. An in-sync follower that cannot follow (SIGSTOPped) makes the
//! request time out naming it (REQUEST_TIMED_OUT, gRPC `timed-out`), until the ISR drops it.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{self, Cluster};
use common::{eventually, rill, rill_with_stdin, DEADLINE};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};
use rill_protocol::v1::topic_admin_client::TopicAdminClient;
use rill_protocol::v1::{DeleteRecordsBefore, DescribeTopicRequest};
use rill_tests::kafka_client::KafkaClient;

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
/// For the SIGSTOP test: a stopped follower stays in sync (and its node alive) for seconds, far longer than the
/// short requests that must time out on it take even on a loaded machine.
const PATIENT_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 4000\n\
                               replica_lag_time_max_ms = 4000\nauto_leader_rebalance_enable = false\n";
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const RECORDS: usize = 30;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Kafka's DeleteRecords of `orders` partition 0 sent raw to the node at `addr`: (error code, low watermark).
fn kafka_delete_records(addr: &str, offset: i64, timeout_ms: i32) -> (i16, i64) {
    let addr: SocketAddr = addr.parse().expect("node address");
    let request =
        DeleteRecordsRequest::default().with_timeout_ms(timeout_ms).with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset)])]);
    let response: DeleteRecordsResponse = runtime().block_on(async {
        let mut client = KafkaClient::connect(addr).await;
        client.call(ApiKey::DeleteRecords, 2, &request).await
    });
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.low_watermark)
}

/// gRPC DeleteRecords of `orders` partition 0 at the node at `addr` (no client routing): (reason, message, low
/// watermark).
fn grpc_delete_records(addr: &str, offset: i64, timeout_ms: u32) -> (String, String, i64) {
    runtime().block_on(async {
        let mut admin = TopicAdminClient::connect(format!("http://{addr}")).await.expect("connect");
        let request = rill_protocol::v1::DeleteRecordsRequest {
            topic: "orders".into(),
            partitions: vec![DeleteRecordsBefore { partition: 0, offset }],
            timeout_ms,
        };
        let answer = admin.delete_records(request).await.expect("an answer per partition").into_inner();
        let result = &answer.partitions[0];
        (result.error_reason.clone(), result.error_message.clone(), result.low_watermark)
    })
}

/// The log start offset of `orders` partition 0 in the node at `addr`'s own replica (a cluster node describes
/// its local log); `None` while it does not answer or holds no open log yet.
fn local_log_start(addr: &str) -> Option<i64> {
    runtime().block_on(async {
        let mut admin = TopicAdminClient::connect(format!("http://{addr}")).await.ok()?;
        let described =
            admin.describe_topic(DescribeTopicRequest { name: "orders".into(), auto_create: false }).await.ok()?;
        let partition = described.into_inner().partitions.into_iter().next()?;
        (partition.high_watermark > 0).then_some(partition.log_start_offset)
    })
}

/// The Rust client's earliest offset of `orders` partition 0, bootstrapped from `addr` (it asks the leader).
fn earliest_offset(addr: &str) -> i64 {
    runtime().block_on(async {
        let client = rill_client::Client::connect(addr).await.expect("connect");
        let offsets = rill_client::Admin::new(client)
            .list_offsets("orders", &[0], rill_client::OffsetSpec::Earliest)
            .await
            .expect("offsets from the leader");
        offsets[0].offset
    })
}

fn rdkafka_delete_records(bootstrap: &str, offset: i64) -> i64 {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("an admin client");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset("orders", 0, Offset::Offset(offset)).expect("a valid offset");
    let options = AdminOptions::new().request_timeout(Some(DEADLINE)).operation_timeout(Some(Duration::from_secs(10)));
    let answer = runtime().block_on(admin.delete_records(&offsets, &options)).expect("an answer to DeleteRecords");
    let element = answer.find_partition("orders", 0).expect("partition 0 answered");
    element.error().expect("deleted on the cluster");
    match element.offset() {
        Offset::Offset(low_watermark) => low_watermark,
        other => panic!("a low watermark, not {other:?}"),
    }
}

/// A cluster with `orders` (1 partition, RF 3, all in sync) holding `RECORDS` records `v0`..; and its leader.
fn cluster_with_orders(config: &str) -> (Cluster, u64) {
    let cluster = Cluster::start(config);
    let create = ["topic", "create", "orders", "--replication-factor", "3"];
    eventually("the topic created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let rows = cluster::wait_for_topic(cluster.addr(1), "orders", 1, "a leader and 3 in-sync replicas", |rows| {
        rows[0].leader.is_some() && rows[0].isr.len() == 3
    });
    let leader = rows[0].leader.expect("a leader");
    let lines: String = (0..RECORDS).map(|i| format!("v{i}\n")).collect();
    rill_with_stdin(&cluster.all(), &["produce", "orders", "--partition", "0", "--acks", "all"], lines.as_bytes()).ok();
    (cluster, leader)
}

/// SIGCONTs a SIGSTOPped node when dropped, so a failing assertion never leaves a stopped process behind (the
/// cluster's guard then kills it).
struct Stopped<'a>(&'a std::process::Child);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        common::signal(self.0, libc::SIGCONT);
    }
}

#[test]
fn deleted_records_are_gone_on_every_replica_and_stay_gone_after_a_failover() {
    let (mut cluster, leader) = cluster_with_orders(FAST_CLUSTER);
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");

    // A node that does not lead the partition refuses, as Kafka's; the CLI, bootstrapped there, finds the leader.
    assert_eq!(kafka_delete_records(cluster.addr(follower), 5, 5_000), (NOT_LEADER_OR_FOLLOWER, -1));
    let (reason, message, _) = grpc_delete_records(cluster.addr(follower), 5, 5_000);
    assert_eq!(reason, "not-leader", "{message}");
    let deleted =
        rill(cluster.addr(follower), &["topic", "delete-records", "orders", "--partition", "0", "--before", "10"]);
    assert!(deleted.ok().contains("records before 10 deleted; log start offset 10"), "{}", deleted.stdout);

    // librdkafka's AdminClient, bootstrapped at the follower too.
    assert_eq!(rdkafka_delete_records(cluster.addr(follower), 20), 20);
    // Answered once every in-sync replica had moved: no waiting here.
    for node in 1..=3 {
        assert_eq!(local_log_start(cluster.addr(node)), Some(20), "node {node}'s replica");
    }

    // The leader dies without a word; the new one serves from 20, as the old one did.
    cluster.nodes[leader as usize - 1].take().expect("running").kill();
    let survivor = follower;
    let rows = cluster::wait_for_topic(cluster.addr(survivor), "orders", 1, "a new leader", |rows| {
        rows[0].leader.is_some_and(|l| l != leader)
    });
    let new_leader = rows[0].leader.expect("a new leader");
    let rows = cluster::describe_topic(cluster.addr(survivor), "orders", 1).expect("described");
    assert_eq!(rows[0].log_start, Some(20), "describe's START, from the new leader: {rows:?}");
    assert_eq!(earliest_offset(cluster.addr(survivor)), 20, "ListOffsets earliest at the new leader");
    let consumed = eventually("the new leader serving", || {
        let out = rill(cluster.addr(new_leader), &["consume", "orders", "--from-beginning", "--max-messages", "1"]);
        out.status.success().then(|| out.stdout.clone())
    });
    assert_eq!(consumed.lines().next(), Some("v20"), "a consumer from the beginning starts at the deleted-to offset");

    // Deleted while the old leader is down: the ISR is the two survivors, which answer at once.
    let deleted =
        rill(cluster.addr(survivor), &["topic", "delete-records", "orders", "--partition", "0", "--before", "25"]);
    assert!(deleted.ok().contains("log start offset 25"), "{}", deleted.stdout);
    let rows = cluster::describe_topic(cluster.addr(survivor), "orders", 1).expect("described");
    assert_eq!(rows[0].log_start, Some(25), "describe's START after the second delete: {rows:?}");

    // The old leader comes back as a follower: it kept 20 on disk, and learns 25 from the new leader.
    cluster.nodes[leader as usize - 1] = Some(cluster.start_node(leader));
    eventually("the restarted replica at log start 25", || {
        (local_log_start(cluster.addr(leader))? == 25).then_some(())
    });
    assert_eq!(earliest_offset(cluster.addr(leader)), 25, "ListOffsets earliest, routed to the leader");
}

#[test]
fn an_in_sync_follower_that_cannot_follow_times_the_request_out_naming_it() {
    let (cluster, leader) = cluster_with_orders(PATIENT_CLUSTER);
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let stopped = Stopped(&cluster.nodes[follower as usize - 1].as_ref().expect("running").child);
    common::signal(stopped.0, libc::SIGSTOP);

    // Well within the ISR's lag limit: the stopped follower is still in sync, and cannot move its log start.
    let (code, low_watermark) = kafka_delete_records(cluster.addr(leader), 10, 300);
    assert_eq!((code, low_watermark), (REQUEST_TIMED_OUT, -1));
    let (reason, message, _) = grpc_delete_records(cluster.addr(leader), 12, 300);
    assert_eq!(reason, "timed-out", "{message}");
    assert!(message.contains(&format!("node {follower} (log start 0)")), "{message}");
    // Done on the leader, and on the other follower, already.
    let other = (1..=3).find(|id| *id != leader && *id != follower).expect("the other follower");
    eventually("the running follower at 12", || (local_log_start(cluster.addr(other))? == 12).then_some(()));

    // Once the ISR drops the stopped follower, the same request is answered: the low watermark is the ISR's.
    let (reason, message, low_watermark) = grpc_delete_records(cluster.addr(leader), 12, 20_000);
    assert_eq!((reason.as_str(), low_watermark), ("", 12), "{message}");

    drop(stopped);
    eventually("the resumed follower at 12", || (local_log_start(cluster.addr(follower))? == 12).then_some(()));
}

/// Issue #14: a replica that was down while records were deleted past its whole log (its end below the leader's
/// new log start) cannot fetch what it lacks, since those offsets exist nowhere any more. It starts its log over,
/// empty, at the leader's log start (Kafka's `truncateFullyAndStartAt`), catches up from there, rejoins the ISR,
/// and once it leads again serves exactly the records from the deletion point on.
#[test]
fn a_replica_whose_log_ends_below_the_leader_start_starts_over_there_and_rejoins_the_isr() {
    let (mut cluster, preferred) = cluster_with_orders(FAST_CLUSTER);
    let other = (1..=3).find(|id| *id != preferred).expect("another node");
    // The preferred leader goes down holding offsets 0..RECORDS; with the automatic rebalance off, leadership
    // stays with a survivor after the failover.
    cluster.nodes[preferred as usize - 1].take().expect("running").kill();
    let rows = cluster::wait_for_topic(
        cluster.addr(other),
        "orders",
        1,
        "a new leader, the dead node out of the ISR",
        |rows| rows[0].leader.is_some_and(|l| l != preferred) && !rows[0].isr.contains(&preferred),
    );
    let leader = rows[0].leader.expect("a new leader");

    const MORE: usize = 30;
    let lines: String = (RECORDS..RECORDS + MORE).map(|i| format!("v{i}\n")).collect();
    rill_with_stdin(
        cluster.addr(leader),
        &["produce", "orders", "--partition", "0", "--acks", "all"],
        lines.as_bytes(),
    )
    .ok();
    // Past the dead replica's whole log (it ends at RECORDS), and not on a batch boundary of its own making.
    let deleted_to = (RECORDS + MORE / 2) as i64;
    let before = deleted_to.to_string();
    let deleted =
        rill(cluster.addr(leader), &["topic", "delete-records", "orders", "--partition", "0", "--before", &before]);
    assert!(deleted.ok().contains(&format!("log start offset {deleted_to}")), "{}", deleted.stdout);

    cluster.nodes[preferred as usize - 1] = Some(cluster.start_node(preferred));
    let end = (RECORDS + MORE) as i64;
    cluster::wait_for_topic(cluster.addr(leader), "orders", 1, "the restarted replica back in the ISR", |rows| {
        rows[0].isr.contains(&preferred) && rows[0].log_ends.contains(&(preferred, end))
    });
    eventually("the restarted replica's own log start at the deletion point", || {
        (local_log_start(cluster.addr(preferred))? == deleted_to).then_some(())
    });

    // Leadership back to the replica that started over; it alone now answers for the partition.
    rill(cluster.addr(leader), &["cluster", "elect-leaders", "--topic", "orders", "--partition", "0"]).ok();
    cluster::wait_for_topic(cluster.addr(preferred), "orders", 1, "the restarted replica leading", |rows| {
        rows[0].leader == Some(preferred)
    });
    assert_eq!(earliest_offset(cluster.addr(preferred)), deleted_to, "ListOffsets earliest at the new leader");
    let consumed = eventually("every record from the deletion point, from the new leader", || {
        let out = rill(cluster.addr(preferred), &["consume", "orders", "--partition", "0", "--from-beginning"]);
        let read: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
        (out.status.success() && read.len() >= (end - deleted_to) as usize).then_some(read)
    });
    let expected: Vec<String> = (deleted_to..end).map(|i| format!("v{i}")).collect();
    assert_eq!(consumed, expected, "exactly the records from the deletion point on, in order, once");
}
