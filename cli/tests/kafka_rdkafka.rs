//! librdkafka (the `rdkafka` crate, built from its vendored source) against a real `rill broker` process on its
//! Kafka port: produce with acks=all in each of Kafka's codecs and read back from the beginning, a fetch that
//! carries several cached appends, find offsets by
//! timestamp, consumer groups of three (eager range and cooperative-sticky) through a member's leave with every
//! record read once, commit and resume, and the idempotent producer through a SIGKILL and restart of the broker.
//!
//! These live beside the other process tests (`common` starts and kills `rill broker`) rather than in `tests/`,
//! whose fixtures embed the broker in the test process: a SIGKILL needs a process of its own.

use crate::common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{rill, BrokerProcess, DEADLINE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A Kafka client's configuration pointed at `broker`, with reconnects quick enough for a restart in a test.
fn client_config(broker: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker)
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.ms", "50");
    config
}

fn producer(broker: &str, settings: &[(&str, &str)]) -> FutureProducer {
    let mut config = client_config(broker);
    config.set("acks", "all").set("linger.ms", "2").set("message.timeout.ms", "60000");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config.create().expect("a producer from a valid configuration")
}

/// A consumer outside any group (assign only): offsets come from the test, nothing is committed.
fn assigned_consumer(broker: &str) -> BaseConsumer {
    let mut config = client_config(broker);
    config.set("group.id", "rdkafka-assign-only").set("enable.auto.commit", "false");
    config.create().expect("a consumer from a valid configuration")
}

fn group_consumer(broker: &str, group: &str, assignor: &str) -> BaseConsumer {
    let mut config = client_config(broker);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", assignor)
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "200");
    config.create().expect("a consumer from a valid configuration")
}

/// Sends `value` to `partition` (with `timestamp_ms` if given) and waits for its acknowledgement.
async fn send(producer: &FutureProducer, topic: &str, partition: i32, value: &str, timestamp_ms: Option<i64>) -> i64 {
    let mut record = FutureRecord::<(), str>::to(topic).partition(partition).payload(value);
    if let Some(timestamp_ms) = timestamp_ms {
        record = record.timestamp(timestamp_ms);
    }
    let delivery = producer.send(record, DEADLINE).await.map_err(|(error, _)| error).expect("delivered");
    assert_eq!(delivery.partition, partition);
    delivery.offset
}

/// One record as a consumer read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Read {
    partition: i32,
    offset: i64,
    value: String,
}

/// Polls until `count` records have come, failing past `DEADLINE`.
fn read_records(consumer: &BaseConsumer, count: usize) -> Vec<Read> {
    let deadline = Instant::now() + DEADLINE;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} records within {DEADLINE:?}", records.len());
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(read_of(&message)),
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => {}
        }
    }
    records
}

fn read_of(message: &impl Message) -> Read {
    let value = message.payload().map(|bytes| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default();
    Read { partition: message.partition(), offset: message.offset(), value }
}

fn assign_from(consumer: &BaseConsumer, topic: &str, partition: i32, offset: Offset) {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, offset).expect("a valid offset");
    consumer.assign(&assignment).expect("assign");
}

fn started_broker() -> (tempfile::TempDir, BrokerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(&dir.path().join("data"));
    (dir, broker)
}

fn create_topic(broker: &BrokerProcess, name: &str, partitions: u32) {
    rill(&broker.addr, &["topic", "create", name, "--partitions", &partitions.to_string()]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_codec_is_produced_with_acks_all_and_read_back_from_the_beginning() {
    let (_dir, broker) = started_broker();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 1);
        // A batch of many records, so the codec has something to compress.
        let producer = producer(&broker.addr, &[("compression.codec", codec), ("linger.ms", "20")]);
        let values: Vec<String> = (0..500).map(|i| format!("{codec} record {i} {}", "x".repeat(i % 50))).collect();
        let pending: Vec<_> = values
            .iter()
            .map(|value| {
                producer.send_result(FutureRecord::<(), str>::to(&topic).partition(0).payload(value)).expect("queued")
            })
            .collect();
        let mut offsets = Vec::new();
        for delivery in pending {
            offsets.push(delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered").offset);
        }
        assert_eq!(offsets, (0..500).collect::<Vec<i64>>(), "{codec}: each record acknowledged at its own offset");

        let consumer = assigned_consumer(&broker.addr);
        assign_from(&consumer, &topic, 0, Offset::Beginning);
        let read: Vec<String> = read_records(&consumer, 500).into_iter().map(|r| r.value).collect();
        assert_eq!(read, values, "{codec}: every record back, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_carries_several_cached_appends_and_every_record_comes_back_in_order() {
    let (_dir, broker) = started_broker();
    create_topic(&broker, "appends", 1);
    // One record an append (each acknowledged before the next is sent): large appends, which the broker answers
    // as slices of the tail cache, around small ones, which it joins; a fetch of 4 MiB takes them all at once.
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("message.max.bytes", "1000000")]);
    let sizes = [100_000usize, 90_000, 120_000, 50, 70, 30, 80_000, 100_000, 66_000, 100_000];
    let mut values = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let value = format!("{i}:{}", "x".repeat(*size));
        assert_eq!(send(&producer, "appends", 0, &value, None).await, i as i64, "each record its own append");
        values.push(value);
    }
    let mut config = client_config(&broker.addr);
    config
        .set("group.id", "rdkafka-assign-only")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "4194304")
        .set("fetch.max.bytes", "8388608");
    let consumer: BaseConsumer = config.create().expect("a consumer from a valid configuration");
    assign_from(&consumer, "appends", 0, Offset::Beginning);
    let read = read_records(&consumer, values.len());
    assert_eq!(read.iter().map(|r| r.offset).collect::<Vec<_>>(), (0..values.len() as i64).collect::<Vec<_>>());
    assert!(read.iter().map(|r| &r.value).eq(values.iter()), "every record whole, in order");

    // From the middle of the run too: the answer starts at the append holding the offset.
    let consumer = assigned_consumer(&broker.addr);
    assign_from(&consumer, "appends", 0, Offset::Offset(4));
    let read = read_records(&consumer, values.len() - 4);
    assert!(read.iter().map(|r| &r.value).eq(values[4..].iter()), "from offset 4 on, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_the_first_record_at_or_after_a_timestamp() {
    let (_dir, broker) = started_broker();
    create_topic(&broker, "timed", 1);
    let producer = producer(&broker.addr, &[]);
    let base_ms = 1_700_000_000_000;
    for i in 0..100 {
        send(&producer, "timed", 0, &format!("t{i}"), Some(base_ms + i * 10)).await;
    }
    let consumer = assigned_consumer(&broker.addr);
    let cases = [(base_ms, 0), (base_ms + 250, 25), (base_ms + 255, 26), (base_ms + 990, 99), (base_ms + 991, -1)];
    for (timestamp_ms, expected) in cases {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset("timed", 0, Offset::Offset(timestamp_ms)).expect("a valid offset");
        let found = consumer.offsets_for_times(query, DEADLINE).expect("offsets_for_times");
        let offset = found.find_partition("timed", 0).expect("the asked partition").offset();
        let expected = if expected < 0 { Offset::End } else { Offset::Offset(expected) };
        assert_eq!(offset, expected, "the first record at or after {timestamp_ms}");
    }
    assign_from(&consumer, "timed", 0, Offset::Offset(25));
    assert_eq!(read_records(&consumer, 1)[0].value, "t25");
}

/// One member of a group on a thread of its own: polls, records what it read, commits each record before the
/// next poll (so a partition that moves resumes after it), and publishes its assignment.
struct Member {
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<BTreeSet<i32>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn spawn(consumer: BaseConsumer, topic: &str, seen: Arc<Mutex<Vec<Read>>>) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(BTreeSet::new()));
        consumer.subscribe(&[topic]).expect("subscribe");
        let (stopping, publishing) = (stop.clone(), assigned.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Some(polled) = consumer.poll(Duration::from_millis(50)) {
                    let message = polled.expect("no consumer error");
                    seen.lock().expect("not poisoned").push(read_of(&message));
                    consumer.commit_message(&message, CommitMode::Sync).expect("commit");
                }
                let now: BTreeSet<i32> =
                    consumer.assignment().expect("assignment").elements().iter().map(|e| e.partition()).collect();
                *publishing.lock().expect("not poisoned") = now;
            }
            // Dropping the consumer closes it: it leaves the group (LeaveGroup) before the thread ends.
            drop(consumer);
        });
        Member { stop, assigned, thread: Some(thread) }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.assigned.lock().expect("not poisoned").clone()
    }

    fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the member's thread ends without a panic");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn produce_per_partition(broker: &str, topic: &str, partitions: i32, range: std::ops::Range<i32>) {
    let producer = producer(broker, &[]);
    let mut pending = Vec::new();
    for partition in 0..partitions {
        for i in range.clone() {
            let value = format!("{partition}:{i}");
            let record = FutureRecord::<(), str>::to(topic).partition(partition).payload(&value);
            pending.push(producer.send_result(record).expect("queued"));
        }
    }
    for delivery in pending {
        delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered");
    }
}

/// Three members share six partitions; one leaves; the other two take its partitions over; every record
/// produced before and after the leave is read exactly once.
async fn group_of_three_through_a_leave(assignor: &str) {
    let (_dir, broker) = started_broker();
    let (topic, partitions) = (format!("group-{assignor}"), 6);
    create_topic(&broker, &topic, partitions as u32);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let group = format!("rdkafka-{assignor}");
    let mut members: Vec<Member> =
        (0..3).map(|_| Member::spawn(group_consumer(&broker.addr, &group, assignor), &topic, seen.clone())).collect();
    let all: BTreeSet<i32> = (0..partitions).collect();
    let balanced = |members: &[Member], each: usize| {
        let assignments: Vec<BTreeSet<i32>> = members.iter().map(Member::assigned).collect();
        assignments.iter().all(|a| a.len() >= each)
            && assignments.iter().map(BTreeSet::len).sum::<usize>() == partitions as usize
            && assignments.iter().flatten().copied().collect::<BTreeSet<i32>>() == all
    };
    tokio::task::block_in_place(|| wait_for("a balanced assignment of 2 each", || balanced(&members, 2)));
    produce_per_partition(&broker.addr, &topic, partitions, 0..20).await;
    tokio::task::block_in_place(|| wait_for("the first records", || seen.lock().expect("lock").len() >= 120));

    let leaving = members.pop().expect("three members");
    tokio::task::block_in_place(|| leaving.leave());
    tokio::task::block_in_place(|| wait_for("the leaver's partitions to move", || balanced(&members, 3)));
    produce_per_partition(&broker.addr, &topic, partitions, 20..40).await;
    tokio::task::block_in_place(|| wait_for("the records after the leave", || seen.lock().expect("lock").len() >= 240));
    // Anything read twice (a partition resumed before its last commit) shows up within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for member in members {
        tokio::task::block_in_place(|| member.leave());
    }
    let mut values: Vec<String> = seen.lock().expect("lock").iter().map(|r| r.value.clone()).collect();
    values.sort();
    let mut expected: Vec<String> = (0..partitions).flat_map(|p| (0..40).map(move |i| format!("{p}:{i}"))).collect();
    expected.sort();
    assert_eq!(values, expected, "every record read exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_group_of_three_hands_a_leavers_partitions_over_and_reads_each_record_once() {
    group_of_three_through_a_leave("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_sticky_group_of_three_hands_a_leavers_partitions_over_and_reads_each_record_once() {
    group_of_three_through_a_leave("cooperative-sticky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_of_the_group_resumes_after_the_last_commit() {
    let (_dir, broker) = started_broker();
    create_topic(&broker, "resume", 1);
    produce_per_partition(&broker.addr, "resume", 1, 0..100).await;
    tokio::task::block_in_place(|| {
        commit_after_reading(&broker.addr, 40);
        let second = group_consumer(&broker.addr, "resumers", "range");
        second.subscribe(&["resume"]).expect("subscribe");
        let rest: Vec<String> = read_records(&second, 60).into_iter().map(|r| r.value).collect();
        assert_eq!(rest, (40..100).map(|i| format!("0:{i}")).collect::<Vec<_>>(), "resumed at the commit");
    });
}

/// A member of group `resumers` reads `count` records of `resume`, commits the offset after them, and leaves.
fn commit_after_reading(broker: &str, count: usize) {
    let consumer = group_consumer(broker, "resumers", "range");
    consumer.subscribe(&["resume"]).expect("subscribe");
    let read = read_records(&consumer, count);
    // The offset lists are dropped before the consumer: librdkafka's list entries hold references to the
    // consumer's partitions, and destroying the consumer waits (forever) until those are released.
    {
        let mut commit = TopicPartitionList::new();
        commit.add_partition_offset("resume", 0, Offset::Offset(read[count - 1].offset + 1)).expect("a valid offset");
        consumer.commit(&commit, CommitMode::Sync).expect("commit");
        let committed = consumer.committed(DEADLINE).expect("committed offsets");
        let offset = committed.find_partition("resume", 0).expect("partition 0").offset();
        assert_eq!(offset, Offset::Offset(count as i64));
    }
    drop(consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotent_producer_stores_each_record_once_through_a_broker_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let broker = BrokerProcess::start(&data_dir);
    let addr = broker.addr.clone();
    create_topic(&broker, "exactly", 1);
    let producer = producer(&addr, &[("enable.idempotence", "true")]);
    let queue = |range: std::ops::Range<i32>| {
        range
            .map(|i| {
                let value = i.to_string();
                producer
                    .send_result(FutureRecord::<(), str>::to("exactly").partition(0).payload(&value))
                    .expect("queued")
            })
            .collect::<Vec<_>>()
    };
    let mut pending = queue(0..2_000);
    for delivery in pending.drain(..) {
        delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered");
    }
    // Records in flight while the broker dies: librdkafka retries them against the restarted broker, whose
    // producer state (persisted with the log) answers a retry of a stored batch with its original offset.
    pending.extend(queue(2_000..4_000));
    broker.kill();
    let broker = BrokerProcess::start_on(&data_dir, &addr);
    pending.extend(queue(4_000..6_000));
    let mut offsets = Vec::new();
    for delivery in pending {
        offsets.push(delivery.await.expect("not cancelled").map_err(|(error, _)| error).expect("delivered").offset);
    }
    offsets.sort();
    assert_eq!(offsets, (2_000..6_000).collect::<Vec<i64>>(), "each record acknowledged at its own offset");

    let consumer = assigned_consumer(&broker.addr);
    assign_from(&consumer, "exactly", 0, Offset::Beginning);
    let stored = tokio::task::block_in_place(|| read_records(&consumer, 6_000));
    let values: Vec<String> = stored.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, (0..6_000).map(|i| i.to_string()).collect::<Vec<_>>(), "each record once, in order");
    let offsets: Vec<i64> = stored.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..6_000).collect::<Vec<i64>>(), "no gap");
    assert!(consumer.poll(Duration::from_millis(500)).is_none(), "nothing after the 6000th record");
}

/// One transaction of `producer` writing `values` to partition 0 of `txn`, committed or aborted.
async fn in_transaction(producer: &FutureProducer, values: &[&str], commit: bool) {
    use rdkafka::producer::Producer as _;
    let timeout = Duration::from_secs(30);
    producer.begin_transaction().expect("begin_transaction");
    for value in values {
        let record = FutureRecord::<(), str>::to("txn").payload(*value).partition(0);
        producer.send(record, timeout).await.expect("delivered");
    }
    match commit {
        true => producer.commit_transaction(timeout).expect("commit_transaction"),
        false => producer.abort_transaction(timeout).expect("abort_transaction"),
    }
}

/// librdkafka's transactional producer commits and aborts; `rill consume` reads the partition to its end (a log
/// that ends in a transaction marker included) and prints every record by default, or only the committed ones
/// with `--isolation read-committed`, whose gRPC reads leave the aborted batches out on the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rill_consume_reads_a_transactional_producers_partition_at_either_isolation() {
    use rdkafka::producer::Producer as _;
    let (_dir, broker) = started_broker();
    create_topic(&broker, "txn", 1);
    let producer = producer(&broker.addr, &[("transactional.id", "rdkafka-txn")]);
    producer.init_transactions(Duration::from_secs(30)).expect("init_transactions");
    in_transaction(&producer, &["c0", "c1"], true).await;
    in_transaction(&producer, &["a0", "a1"], false).await;
    in_transaction(&producer, &["c2"], true).await;
    // Offsets: c0 c1 marker a0 a1 marker c2 marker: the log ends in a commit marker.
    let read = |isolation: &str| rill(&broker.addr, &["consume", "txn", "--isolation", isolation]).ok().to_string();
    assert_eq!(read("read-committed"), "c0\nc1\nc2\n");
    assert_eq!(read("read-uncommitted"), "c0\nc1\na0\na1\nc2\n");
}

/// `rill topic describe` names a transaction open in a partition (its producer, where it starts) and where
/// `read_committed` readers stop, and nothing once it is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_describe_shows_an_open_transaction_until_it_commits() {
    use rdkafka::producer::Producer as _;
    let (_dir, broker) = started_broker();
    create_topic(&broker, "txn", 1);
    let producer = producer(&broker.addr, &[("transactional.id", "rdkafka-describe")]);
    producer.init_transactions(Duration::from_secs(30)).expect("init_transactions");
    in_transaction(&producer, &["c0"], true).await;
    producer.begin_transaction().expect("begin_transaction");
    for value in ["o0", "o1"] {
        let record = FutureRecord::<(), str>::to("txn").payload(value).partition(0);
        producer.send(record, Duration::from_secs(30)).await.expect("delivered");
    }
    let described = rill(&broker.addr, &["topic", "describe", "txn"]).ok().to_string();
    // c0 at 0, its marker at 1: the open transaction starts at 2.
    assert!(
        described.contains(
            "partition 0: 1 open transaction(s); read_committed readers stop at offset 2 (the high watermark is 4)"
        ),
        "{described}"
    );
    let line = described.lines().find(|l| l.contains("open since offset")).expect("the open transaction's line");
    assert!(line.trim_start().starts_with("producer ") && line.contains("(epoch 0) open since offset 2"), "{line}");
    producer.commit_transaction(Duration::from_secs(30)).expect("commit_transaction");
    let described = rill(&broker.addr, &["topic", "describe", "txn"]).ok().to_string();
    assert!(!described.contains("open transaction"), "{described}");
}
