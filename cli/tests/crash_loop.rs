//! The crash loop: a producer sends sequence-numbered records with acks `durable` to several partitions of an
//! `always` topic while a second client commits group offsets; the real `rill broker` process is SIGKILLed at
//! random moments and restarted. After the last restart every acknowledged record is there exactly once, in send
//! order per partition, with contiguous offsets, and every acknowledged offset commit is still there.
//!
//! 20 kill cycles by default; `RILL_CRASH_CYCLES=500` for the long run. `RILL_CRASH_SEED` replays a run.
//!
//! A second loop runs the real `rill produce --acks durable` on input that never pauses, kills the broker while
//! the producer is mid-stream (after this broker acknowledged something) and restarts it 0.3 s later, while the
//! producer retries; then every line is stored, in input order per partition, at the offset the producer
//! printed, exactly once: `rill produce` is an idempotent producer, so a batch it sends again after a lost answer
//! is recognised by the broker (whose producer state survived the kill) and not stored twice, and with
//! `--no-idempotence` a duplicate appears only as an exact re-send. `RILL_PRODUCE_KILLS` (default 8) sets its kills.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{rill, BrokerProcess, FedProducer};
use rill_protocol::v1::{
    self, consumer_groups_client::ConsumerGroupsClient, records_client::RecordsClient,
    topic_admin_client::TopicAdminClient,
};
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};
use tonic::transport::Channel;

const TOPIC: &str = "crash-loop";
const PARTITIONS: u32 = 4;
const GROUP: &str = "crash-loop-group";

/// xorshift64*: reproducible kill timings without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn batch(value: &str) -> Bytes {
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record { key: None, value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: 1 });
    Bytes::from(builder.build())
}

/// What the clients saw acknowledged, across all cycles.
#[derive(Default)]
struct Ledger {
    /// Per partition: sequence numbers acknowledged, in send order.
    acked: BTreeMap<u32, Vec<u64>>,
    /// Per partition: the next sequence number to send (an unacknowledged send is never repeated).
    next_seq: BTreeMap<u32, u64>,
    /// The last acknowledged commit per partition, and every commit attempted after it.
    commits: BTreeMap<u32, (Option<i64>, Vec<i64>)>,
}

/// A connection whose every call gives up after a few seconds: a call caught by a kill must end with an error,
/// never hang the loop (one in a few hundred once waited for ever on a connection the kill had closed).
async fn channel(url: &str) -> Option<Channel> {
    Channel::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .ok()
}

/// Sends records to one partition until stopped or the broker dies: calls of one to three one-record batches
/// (several go as `record_batches`, appended at once), one call at a time.
async fn produce_until_killed(
    url: String,
    partition: u32,
    acks: v1::Acks,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let Some(channel) = channel(&url).await else { return };
    let mut records = RecordsClient::new(channel);
    while !stop.load(Ordering::Relaxed) {
        let seqs = {
            let mut ledger = ledger.lock().expect("ledger");
            let next = ledger.next_seq.entry(partition).or_default();
            let count = 1 + *next % 3;
            *next += count;
            *next - count..*next
        };
        let mut batches: Vec<Bytes> = seqs.clone().map(|seq| batch(&format!("{partition}:{seq}"))).collect();
        let records_field = match batches.len() {
            1 => v1::produce_request::Records::RecordBatch(batches.remove(0)),
            _ => v1::produce_request::Records::RecordBatches(v1::RecordBatches { batches }),
        };
        let request = v1::ProduceRequest {
            topic: TOPIC.into(),
            partition: Some(partition),
            records: Some(records_field),
            acks: acks as i32,
        };
        match records.produce(request).await {
            Ok(_) => ledger.lock().expect("ledger").acked.entry(partition).or_default().extend(seqs),
            Err(_) => return, // the broker died: this send may or may not have landed
        }
    }
}

/// Commits offsets (the acknowledged count so far) for every partition until the broker dies.
async fn commit_until_killed(url: String, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let Some(channel) = channel(&url).await else { return };
    let mut groups = ConsumerGroupsClient::new(channel);
    while !stop.load(Ordering::Relaxed) {
        let offsets: Vec<(u32, i64)> = {
            let ledger = ledger.lock().expect("ledger");
            (0..PARTITIONS).map(|p| (p, ledger.acked.get(&p).map_or(0, |a| a.len() as i64))).collect()
        };
        {
            let mut ledger = ledger.lock().expect("ledger");
            for (p, offset) in &offsets {
                ledger.commits.entry(*p).or_default().1.push(*offset);
            }
        }
        let request = v1::CommitOffsetsRequest {
            group: GROUP.into(),
            member_id: String::new(),
            generation: -1,
            offsets: offsets
                .iter()
                .map(|(p, offset)| v1::OffsetCommit {
                    topic: TOPIC.into(),
                    partition: *p,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        match groups.commit_offsets(request).await {
            Ok(_) => {
                let mut ledger = ledger.lock().expect("ledger");
                for (p, offset) in &offsets {
                    *ledger.commits.entry(*p).or_default() = (Some(*offset), Vec::new());
                }
            }
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn read_partition(records: &mut RecordsClient<Channel>, partition: u32) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let request = v1::FetchRequest { topic: TOPIC.into(), partition, offset, ..Default::default() };
        let response = records.fetch(request).await.expect("fetch after the last restart").into_inner();
        if response.record_batches.is_empty() {
            return out;
        }
        for batch in BatchIter::new(response.record_batches) {
            for record in batch.expect("whole batch").records().expect("uncompressed") {
                let record = record.expect("record decodes");
                let value = String::from_utf8(record.value.unwrap_or_default().to_vec()).expect("utf-8");
                let (p, seq) = value.split_once(':').expect("partition:seq");
                assert_eq!(p.parse::<u32>().unwrap(), partition, "record in the wrong partition");
                out.push((record.offset, seq.parse().unwrap()));
            }
        }
        offset = response.next_offset;
    }
}

/// Policy `always`, acks `durable`: the strongest promise, which also holds for a machine crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_and_commits_survive_repeated_sigkill() {
    crash_loop(v1::DurabilityPolicy::Always, v1::Acks::Durable).await;
}

/// Policy `interval`, acks `leader`: a killed process loses nothing acknowledged either, because appended bytes
/// are in the kernel's page cache, which outlives the process (docs/durability.md). Only a machine crash can
/// lose what came after the last flush, which a process kill cannot show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_repeated_sigkill_under_the_interval_policy() {
    crash_loop(v1::DurabilityPolicy::Interval, v1::Acks::Leader).await;
}

async fn crash_loop(policy: v1::DurabilityPolicy, acks: v1::Acks) {
    let cycles: u32 = std::env::var("RILL_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("RILL_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("crash loop ({policy:?}, {acks:?}): {cycles} cycles, RILL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let broker = BrokerProcess::start(dir.path());
    let admin = channel(&broker.url()).await.expect("connect");
    let config = v1::TopicConfig { durability: policy as i32, ..Default::default() };
    let create = v1::CreateTopicRequest {
        name: TOPIC.into(),
        partition_count: PARTITIONS,
        config: Some(config),
        ..Default::default()
    };
    TopicAdminClient::new(admin).create_topic(create).await.expect("create topic");
    let mut broker = Some(broker);

    for _ in 0..cycles {
        let running = broker.take().unwrap_or_else(|| BrokerProcess::start(dir.path()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks: Vec<_> = (0..PARTITIONS)
            .map(|p| tokio::spawn(produce_until_killed(running.url(), p, acks, ledger.clone(), stop.clone())))
            .collect();
        tasks.push(tokio::spawn(commit_until_killed(running.url(), ledger.clone(), stop.clone())));
        tokio::time::sleep(Duration::from_millis(20 + rng.below(200))).await;
        running.kill();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("client task");
        }
    }

    let broker = BrokerProcess::start(dir.path());
    let reader = channel(&broker.url()).await.expect("connect after the last restart");
    let mut records = RecordsClient::new(reader.clone());
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    let mut acknowledged = 0;
    let mut recovered = 0;
    for partition in 0..PARTITIONS {
        let stored = read_partition(&mut records, partition).await;
        let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..stored.len() as i64).collect::<Vec<_>>(), "offsets are contiguous from 0");
        let seqs: Vec<u64> = stored.iter().map(|(_, s)| *s).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "partition {partition}: send order kept, no duplicate");
        let acked = ledger.acked.get(&partition).cloned().unwrap_or_default();
        let missing: Vec<_> = acked.iter().filter(|s| seqs.binary_search(s).is_err()).collect();
        assert!(missing.is_empty(), "partition {partition}: acknowledged records lost: {missing:?}");
        acknowledged += acked.len();
        recovered += seqs.len();
    }
    let mut groups = ConsumerGroupsClient::new(reader);
    let lookup = v1::FetchOffsetsRequest {
        group: GROUP.into(),
        partitions: (0..PARTITIONS).map(|p| v1::TopicPartition { topic: TOPIC.into(), partition: p }).collect(),
    };
    let committed = groups.fetch_offsets(lookup).await.expect("fetch offsets").into_inner().offsets;
    for (partition, (last_acked, attempted_after)) in &ledger.commits {
        let Some(last_acked) = last_acked else { continue };
        let found = committed.iter().find(|c| c.partition == *partition).map(|c| c.offset);
        let found = found.unwrap_or_else(|| panic!("partition {partition}: acknowledged commit {last_acked} lost"));
        assert!(
            found == *last_acked || attempted_after.contains(&found),
            "partition {partition}: committed {found}, last acknowledged {last_acked}, attempted since {attempted_after:?}"
        );
    }
    eprintln!("crash loop ({policy:?}): {cycles} kills, {acknowledged} records acknowledged, {recovered} recovered");
    assert!(acknowledged > 0, "the producers never got an acknowledgement");
}

/// Values `L-<n>` of one partition, in offset order (offsets are dense from 0: the index is the offset).
fn stored_values(addr: &str, topic: &str, partition: u32) -> Vec<u64> {
    let partition = partition.to_string();
    let consumed = rill(addr, &["consume", topic, "--partition", &partition, "--from-beginning"]);
    consumed.ok().lines().map(|line| line.strip_prefix("L-").and_then(|n| n.parse().ok()).expect("L-<n>")).collect()
}

/// What the outside kill loop did, smaller: `rill produce --acks durable` streams numbered lines while
/// the broker is SIGKILLed mid-stream and restarted 0.3 s later, the producer retrying meanwhile.
#[test]
fn one_producers_records_stay_in_send_order_once_each_across_sigkills_while_it_retries() {
    produce_through_sigkills(true);
}

#[test]
fn a_plain_producers_records_stay_in_send_order_across_sigkills_duplicated_only_as_re_sends() {
    produce_through_sigkills(false);
}

fn produce_through_sigkills(is_idempotent: bool) {
    let kills: u32 = std::env::var("RILL_PRODUCE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let seed: u64 = std::env::var("RILL_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("produce kill loop: {kills} kills, RILL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    rill(&addr, &["topic", "create", "stream", "--partitions", "2"]).ok();
    // 40,000 lines a second, never pausing: the input outlasts every kill.
    let mut args = vec!["stream", "--acks", "durable", "--print-offsets"];
    if !is_idempotent {
        args.push("--no-idempotence");
    }
    let mut producer = FedProducer::spawn(&addr, &args, 200, Duration::from_millis(5));
    let mut printed = Vec::new();
    let mut broker = Some(broker);
    for _ in 0..kills {
        // Mid-stream: this broker has acknowledged a record since it started.
        printed.push(producer.next_line());
        // A random moment to kill (what is in flight differs each time), not a wait for something.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        if let Some(running) = broker.take() {
            running.kill();
        }
        // The outside loop's restart delay: the producer's calls fail and are retried meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        broker = Some(BrokerProcess::start_on(dir.path(), &addr));
    }
    let written = producer.end_input();
    let (status, stderr) = producer.wait();
    assert!(status.success(), "the producer failed across restarts: {stderr}");
    printed.extend(producer.remaining_lines());
    assert_eq!(printed.len() as u64, written, "one offset line per input line");

    let stored: Vec<Vec<u64>> = (0..2).map(|p| stored_values(&addr, "stream", p)).collect();
    let mut sent_to: [Vec<u64>; 2] = Default::default();
    for (line, at) in printed.iter().enumerate() {
        let (partition, offset) = at.split_once(' ').expect("partition offset");
        let (partition, offset): (usize, usize) = (partition.parse().unwrap(), offset.parse().unwrap());
        // The producer's printed offset holds its line: an acknowledgement never points elsewhere.
        assert_eq!(stored[partition].get(offset), Some(&(line as u64)), "line {line} printed at {at}");
        sent_to[partition].push(line as u64);
    }
    let mut duplicates = 0;
    for (partition, values) in stored.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let mut first_seen = Vec::new();
        for &value in values {
            if seen.insert(value) {
                first_seen.push(value);
            } else {
                duplicates += 1; // a batch sent again after its answer was lost: the same lines, already stored
            }
        }
        // In send order, each line once (ignoring re-sends), and nothing but what was sent there: no gap, no
        // later line ahead of an earlier one.
        assert!(first_seen == sent_to[partition], "partition {partition}: stored out of send order or with a gap");
    }
    eprintln!("produce kill loop: {kills} kills, {written} lines stored in order, {duplicates} duplicates");
    if is_idempotent {
        assert_eq!(duplicates, 0, "an idempotent producer's re-sends are never stored twice");
    }
}
