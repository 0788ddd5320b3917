//! A quick figure for the broker's produce and fetch paths over loopback gRPC: an embedded broker on a temp
//! dir, `PRODUCERS` tasks sending pre-encoded 1 MiB batches (acks leader, policy never) over one tuned HTTP/2
//! connection, then one reader fetching everything back. Not a benchmark suite (that is `rill bench`); a
//! baseline to check that tuning changes move the number.
//!
//! `cargo run --release -p rill-broker --example loopback_throughput [total_mib] [producers] [untuned]`
//!
//! With `untuned`, both sides use HTTP/2's defaults instead (16 KiB frames, 64 KiB windows), for the
//! before/after figure of the tuning.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rill_broker::{Broker, BrokerConfig};
use rill_protocol::v1::{self, records_client::RecordsClient, topic_admin_client::TopicAdminClient};
use rill_protocol::{Record, RecordBatchBuilder};
use tonic::transport::{Channel, Endpoint};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH_BYTES: usize = 1 << 20;
const RECORD_BYTES: usize = 1 << 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total_mib: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2048);
    let producers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let is_tuned = args.next().as_deref() != Some("untuned");
    let dir = tempfile::tempdir()?;
    let mut config = BrokerConfig::for_tests(dir.path());
    config.default_segment_bytes = 256 << 20;
    if !is_tuned {
        config.http2_max_frame_bytes = 16 << 10;
        config.http2_stream_window_bytes = 65_535;
        config.http2_connection_window_bytes = 65_535;
    }
    let broker = Broker::start(config).await?;
    let channel = if is_tuned {
        tuned_channel(&broker.url()).await?
    } else {
        Endpoint::from_shared(broker.url())?.connect().await?
    };
    let mut admin = TopicAdminClient::new(channel.clone());
    let topic_config = v1::TopicConfig { durability: v1::DurabilityPolicy::Never as i32, ..Default::default() };
    admin
        .create_topic(v1::CreateTopicRequest {
            name: "bench".into(),
            partition_count: 1,
            config: Some(topic_config),
            ..Default::default()
        })
        .await?;

    let batch = one_batch();
    let batches = total_mib * (1 << 20) / batch.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let mut records = client(channel.clone());
        let batch = batch.clone();
        let count = batches / producers + usize::from(p < batches % producers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                let request = v1::ProduceRequest {
                    topic: "bench".into(),
                    partition: Some(0),
                    records: Some(v1::produce_request::Records::RecordBatch(batch.clone())),
                    acks: v1::Acks::Leader as i32,
                };
                records.produce(request).await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    report("produce", batches * batch.len(), started.elapsed());

    let mut records = client(channel);
    let started = Instant::now();
    let (mut offset, mut bytes) = (0, 0);
    loop {
        let request =
            v1::FetchRequest { topic: "bench".into(), partition: 0, offset, max_bytes: 8 << 20, ..Default::default() };
        let response = records.fetch(request).await?.into_inner();
        if response.record_batches.is_empty() {
            break;
        }
        bytes += response.record_batches.len();
        offset = response.next_offset;
    }
    report("fetch", bytes, started.elapsed());
    broker.shutdown().await;
    Ok(())
}

fn one_batch() -> Bytes {
    let mut builder = RecordBatchBuilder::with_capacity(BATCH_BYTES + 4096);
    // A current timestamp: retention by age would otherwise delete the segments as soon as they roll.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let record = Record { key: None, value: Some(vec![7u8; RECORD_BYTES]), headers: vec![], timestamp_ms: now_ms };
    while builder.encoded_bytes() + builder.record_bytes(&record) <= BATCH_BYTES {
        builder.push(&record);
    }
    Bytes::from(builder.build())
}

/// The client side of the tuning the broker does on its side: no Nagle, 256 KiB frames, large windows.
async fn tuned_channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .max_frame_size(256 << 10)
        .initial_stream_window_size(32 << 20)
        .initial_connection_window_size(64 << 20)
        .connect()
        .await
}

fn client(channel: Channel) -> RecordsClient<Channel> {
    RecordsClient::new(channel).max_decoding_message_size(16 << 20).max_encoding_message_size(16 << 20)
}

fn report(what: &str, bytes: usize, elapsed: Duration) {
    let mib = bytes as f64 / (1 << 20) as f64;
    println!("{what}: {mib:.0} MiB in {:.2} s = {:.0} MiB/s", elapsed.as_secs_f64(), mib / elapsed.as_secs_f64());
}
