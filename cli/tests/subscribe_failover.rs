//! A consumer reading a replicated partition at its tail by `Subscribe` keeps reading through a SIGKILL of the
//! partition's leader: its stream breaks, it finds the new leader and subscribes there at its position, and
//! every offset comes once, in order.

use crate::common;

use std::time::{Duration, Instant};

use common::cluster::{self, Cluster, PartitionRow};
use common::{rill, DEADLINE};
use rill_client::{Acks, Client, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};

/// Short sessions and lag limit so failover happens within the test's deadline.
const FAST_CLUSTER: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n";
const TOPIC: &str = "tailed";

fn rows(addr: &str, what: &str, done: impl Fn(&[PartitionRow]) -> bool) -> Vec<PartitionRow> {
    cluster::wait_for_topic(addr, TOPIC, 1, what, done)
}

/// Sends `values` with acks all, each acknowledged before this returns (the producer retries through a
/// failover, idempotent).
async fn produce_acknowledged(producer: &Producer, values: &[String]) {
    let mut deliveries = Vec::new();
    for value in values {
        let record = ProducerRecord::new(value.clone()).with_partition(0);
        deliveries.push(producer.send(TOPIC, record).await.expect("enqueued"));
    }
    for delivery in deliveries {
        delivery.await.expect("acknowledged by the cluster");
    }
}

/// Polls until `offset` (exclusive) is reached, returning (offset, value) of each record handed out.
async fn consume_until(consumer: &mut Consumer, end: i64) -> Vec<(i64, String)> {
    let mut read = Vec::new();
    let collect = async {
        while consumer.position(TOPIC, 0).unwrap_or(0) < end {
            for record in consumer.poll().await.expect("poll") {
                let value = String::from_utf8(record.value.as_deref().unwrap_or_default().to_vec()).expect("UTF-8");
                read.push((record.offset, value));
            }
        }
    };
    if tokio::time::timeout(DEADLINE, collect).await.is_err() {
        panic!("the consumer did not reach offset {end} within {DEADLINE:?}");
    }
    read
}

fn values(label: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{label}-{i}")).collect()
}

#[test]
fn a_subscribed_consumer_reads_through_a_leader_kill_losing_and_repeating_nothing() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let args = ["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "3"];
        let created = rill(cluster.addr(1), &args);
        if created.status.success() {
            break;
        }
        // Until the quorum forms and every node has registered, the create is refused.
        assert!(Instant::now() < deadline, "topic never created: {created:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let in_sync = rows(cluster.addr(1), "a leader with 3 in-sync replicas", |rows| {
        rows[0].leader.is_some() && rows[0].isr.len() == 3
    });
    let leader = in_sync[0].leader.expect("a leader");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // The producer's sender tasks and the consumer's reads run on this runtime.
    let _entered = runtime.enter();
    let client = runtime.block_on(Client::connect(cluster.all())).expect("connects to the cluster");
    let producer_config = ProducerConfig { acks: Acks::All, ..ProducerConfig::default() };
    let producer = Producer::new(client.clone(), producer_config).expect("producer");
    let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("consumer");
    let mut read = runtime.block_on(async {
        consumer.assign(TOPIC, &[0]).await.expect("assign");
        produce_acknowledged(&producer, &values("first", 100)).await;
        let mut read = consume_until(&mut consumer, 100).await;
        produce_acknowledged(&producer, &values("second", 100)).await;
        read.extend(consume_until(&mut consumer, 200).await);
        read
    });
    assert_eq!(consumer.subscribed_partitions(), 1, "at the tail, the second round was pushed");

    cluster.nodes[leader as usize - 1].take().expect("leader running").kill();
    let survivor = cluster.any_running().to_owned();
    let moved = rows(&survivor, "a new leader", |rows| rows[0].leader.is_some_and(|l| l != leader));
    eprintln!("killed leader {leader}; node {} leads now", moved[0].leader.expect("a leader"));

    runtime.block_on(async {
        produce_acknowledged(&producer, &values("third", 100)).await;
        // The producer may have stored a retried batch twice across the failover only if idempotence failed,
        // which is not this test's business: the consumer's business is every offset once, in order.
        let end = rows(&survivor, "the high watermark", |_| true)[0].high_watermark.max(300);
        read.extend(consume_until(&mut consumer, end).await);
        produce_acknowledged(&producer, &values("fourth", 50)).await;
        let end = rows(&survivor, "the high watermark", |_| true)[0].high_watermark;
        read.extend(consume_until(&mut consumer, end).await);
    });
    assert_eq!(consumer.subscribed_partitions(), 1, "subscribed again, at the new leader");
    let offsets: Vec<i64> = read.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<i64>>(), "every offset once, in order");
    for label in ["first", "second", "third", "fourth"] {
        let count = if label == "fourth" { 50 } else { 100 };
        for value in values(label, count) {
            assert!(read.iter().any(|(_, read)| *read == value), "acknowledged {value:?} was never read");
        }
    }
    drop(cluster);
}
