//! What share groups (KIP-932) cost the broker, beside a plain Kafka Fetch of the same records on the same run:
//! an embedded broker on a temp dir, a topic of `PARTITIONS` partitions holding `RECORDS` records of
//! `RECORD_BYTES` (batches of 1000, produced over gRPC), then
//!
//! - `fetch`: one Kafka connection replays every partition with Fetch v12 (1 MiB a request), the baseline;
//! - `share M`: M members of a fresh share group (one connection each) join and ShareFetch (max 500 records a
//!   request) until every record was acquired once, each fetch acknowledging (accept) what the one before
//!   acquired; every acknowledgement is stored and fsynced before its answer, as the broker always does;
//! - `rill-share M`: the same with rill's own members (`rill_client::ShareConsumer`, one `ShareConsume` stream
//!   and connection each, 500 records a poll, each poll accepting what the one before returned).
//!
//! Each figure is the time from the first request to the last record, in records/s and MB/s; a share run also
//! checks that no record was acquired twice. Not a test: the figures go to docs/benchmarks.md.
//!
//! `cargo run --release -p rill-tests --example share_fetch_load [RECORDS] [RECORD_BYTES] [PARTITIONS] [ROUNDS]`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition as SharePartition, FetchTopic as ShareTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_broker::share_groups::ShareOffsetReset;
use rill_protocol::v1;
use rill_protocol::BatchIter;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{batch_of, produce_request, TestBroker};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let records = args.next().unwrap_or(400_000);
    let record_bytes = args.next().unwrap_or(1000);
    let partitions = args.next().unwrap_or(4);
    let rounds = args.next().unwrap_or(3);
    let mut broker = TestBroker::start_with(|config| {
        config.share_auto_offset_reset = ShareOffsetReset::Earliest;
        config.default_segment_bytes = 256 << 20;
    })
    .await;
    broker.create_topic("jobs", partitions as u32).await;
    let value = "x".repeat(record_bytes);
    let values: Vec<&str> = vec![value.as_str(); 1000];
    for n in 0..records / (1000 * partitions) * partitions {
        let batch = batch_of(&values, 1_000);
        let request = produce_request("jobs", Some((n % partitions) as u32), batch, v1::Acks::Leader);
        broker.records.produce(request).await.expect("produce");
    }
    let records = records / (1000 * partitions) * 1000 * partitions;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(text("jobs"))))]));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request).await;
    let topic_id = metadata.topics[0].topic_id;
    let megabytes = (records * record_bytes) as f64 / 1e6;
    for round in 0..rounds {
        let started = Instant::now();
        let read = fetch_all(&mut client, partitions).await;
        assert_eq!(read, records, "the replay read every record");
        report(round, "fetch", records, megabytes, started.elapsed().as_secs_f64());
        for members in [1, 2, 4] {
            let group = format!("load-{round}-{members}");
            let started = Instant::now();
            let duplicates = share_all(addr, &group, members, topic_id, partitions, records).await;
            report(round, &format!("share-{members}"), records, megabytes, started.elapsed().as_secs_f64());
            assert_eq!(duplicates, 0, "a record was acquired twice");
        }
        for members in [1, 2, 4] {
            let group = format!("rill-{round}-{members}");
            let started = Instant::now();
            let duplicates = rill_share_all(addr, &group, members, partitions, records).await;
            report(round, &format!("rill-share-{members}"), records, megabytes, started.elapsed().as_secs_f64());
            assert_eq!(duplicates, 0, "a record was delivered twice");
        }
    }
}

fn report(round: usize, mode: &str, records: usize, megabytes: f64, seconds: f64) {
    println!(
        "round={round} mode={mode} records_per_s={:.0} mb_per_s={:.1} seconds={seconds:.3}",
        records as f64 / seconds,
        megabytes / seconds
    );
}

/// Replays every partition with Fetch v12; returns how many records were read.
async fn fetch_all(client: &mut KafkaClient, partitions: usize) -> usize {
    let mut read = 0;
    for partition in 0..partitions as i32 {
        let mut offset = 0;
        loop {
            let request = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![FetchTopic::default().with_topic(TopicName(text("jobs"))).with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ])]);
            let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request).await;
            let data = &response.responses[0].partitions[0];
            let batches = data.records.clone().unwrap_or_default();
            if batches.is_empty() {
                break;
            }
            for batch in BatchIter::new(batches) {
                let batch = batch.expect("a stored batch");
                read += (batch.header.next_offset() - batch.header.base_offset.max(offset)) as usize;
                offset = batch.header.next_offset();
            }
        }
    }
    read
}

/// `members` members of `group` acquire and accept every record; returns how many were acquired twice.
async fn share_all(
    addr: std::net::SocketAddr,
    group: &str,
    members: usize,
    topic_id: uuid::Uuid,
    partitions: usize,
    records: usize,
) -> usize {
    let acquired = Arc::new(AtomicU64::new(0));
    // How often each record was acquired, partition by partition (produced round-robin, so equally many each).
    let per_partition = records / partitions;
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(vec![vec![0; per_partition]; partitions]));
    let mut tasks = Vec::new();
    for member in 0..members {
        let (group, acquired, seen) = (group.to_owned(), Arc::clone(&acquired), Arc::clone(&seen));
        tasks.push(tokio::spawn(async move {
            let mut client = KafkaClient::connect(addr).await;
            let member_id = format!("member-{member}");
            let join = ShareGroupHeartbeatRequest::default()
                .with_group_id(GroupId(text(&group)))
                .with_member_id(text(&member_id))
                .with_member_epoch(0)
                .with_subscribed_topic_names(Some(vec![TopicName(text("jobs"))]));
            let joined: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &join).await;
            assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
            let mut pending: BTreeMap<i32, Vec<AcknowledgementBatch>> = BTreeMap::new();
            let mut epoch = 0;
            while acquired.load(Ordering::Relaxed) < records as u64 {
                let fetch_partitions = (0..partitions as i32)
                    .map(|p| {
                        let acks = if epoch == 0 { Vec::new() } else { pending.remove(&p).unwrap_or_default() };
                        SharePartition::default().with_partition_index(p).with_acknowledgement_batches(acks)
                    })
                    .collect();
                let request = ShareFetchRequest::default()
                    .with_group_id(Some(GroupId(text(&group))))
                    .with_member_id(Some(text(&member_id)))
                    .with_share_session_epoch(epoch)
                    .with_max_wait_ms(100)
                    .with_max_bytes(1 << 20)
                    .with_max_records(500)
                    .with_topics(vec![ShareTopic::default().with_topic_id(topic_id).with_partitions(fetch_partitions)]);
                let response: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &request).await;
                assert_eq!(response.error_code, 0, "{:?}", response.error_message);
                epoch += 1;
                for partition in response.responses.iter().flat_map(|t| &t.partitions) {
                    assert_eq!(partition.acknowledge_error_code, 0, "{:?}", partition.acknowledge_error_message);
                    let mut seen = seen.lock().expect("not poisoned");
                    for range in &partition.acquired_records {
                        let count = range.last_offset - range.first_offset + 1;
                        acquired.fetch_add(count as u64, Ordering::Relaxed);
                        let counts = &mut seen[partition.partition_index as usize];
                        for offset in range.first_offset..=range.last_offset {
                            counts[offset as usize] = counts[offset as usize].saturating_add(1);
                        }
                        pending.entry(partition.partition_index).or_default().push(
                            AcknowledgementBatch::default()
                                .with_first_offset(range.first_offset)
                                .with_last_offset(range.last_offset)
                                .with_acknowledge_types(vec![1]),
                        );
                    }
                }
            }
            // The last fetch's records are accepted as the session closes (what a closing session still holds
            // goes back to the group, and another member would read it again).
            let partitions = pending
                .into_iter()
                .map(|(p, batches)| {
                    let batches = batches
                        .into_iter()
                        .map(|b| {
                            share_acknowledge_request::AcknowledgementBatch::default()
                                .with_first_offset(b.first_offset)
                                .with_last_offset(b.last_offset)
                                .with_acknowledge_types(b.acknowledge_types)
                        })
                        .collect();
                    share_acknowledge_request::AcknowledgePartition::default()
                        .with_partition_index(p)
                        .with_acknowledgement_batches(batches)
                })
                .collect();
            let close = ShareAcknowledgeRequest::default()
                .with_group_id(Some(GroupId(text(&group))))
                .with_member_id(Some(text(&member_id)))
                .with_share_session_epoch(-1)
                .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)]);
            let _: ShareAcknowledgeResponse = client.call(ApiKey::ShareAcknowledge, 1, &close).await;
        }));
    }
    for task in tasks {
        task.await.expect("a member task");
    }
    let seen = seen.lock().expect("not poisoned");
    assert!(seen.iter().flatten().all(|count| *count > 0), "every record acquired");
    seen.iter().flatten().filter(|count| **count > 1).count()
}

/// `members` rill members of `group` read and accept every record; returns how many were delivered twice.
async fn rill_share_all(
    addr: std::net::SocketAddr,
    group: &str,
    members: usize,
    partitions: usize,
    records: usize,
) -> usize {
    let delivered = Arc::new(AtomicU64::new(0));
    let per_partition = records / partitions;
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(vec![vec![0; per_partition]; partitions]));
    let config = rill_client::ShareConsumerConfig {
        max_records: 500,
        max_wait: std::time::Duration::from_millis(100),
        ..rill_client::ShareConsumerConfig::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..members {
        let (group, delivered, seen, config) =
            (group.to_owned(), Arc::clone(&delivered), Arc::clone(&seen), config.clone());
        tasks.push(tokio::spawn(async move {
            // A connection of its own each, as each Kafka member has.
            let client = rill_client::Client::connect(addr.to_string()).await.expect("connects");
            let mut member = rill_client::ShareConsumer::join(client, &group, &["jobs"], config).await.expect("joins");
            while delivered.load(Ordering::Relaxed) < records as u64 {
                let polled = member.poll().await.expect("poll");
                delivered.fetch_add(polled.len() as u64, Ordering::Relaxed);
                let mut seen = seen.lock().expect("not poisoned");
                for record in &polled {
                    let counts = &mut seen[record.record.partition as usize];
                    let offset = record.record.offset as usize;
                    counts[offset] = counts[offset].saturating_add(1);
                }
            }
            assert!(member.close().await.expect("close").is_empty(), "every acknowledgement taken");
        }));
    }
    for task in tasks {
        task.await.expect("a member task");
    }
    let seen = seen.lock().expect("not poisoned");
    assert!(seen.iter().flatten().all(|count| *count > 0), "every record delivered");
    seen.iter().flatten().filter(|count| **count > 1).count()
}
