//! The producers and consumers a run drives: one `rill_client` Producer or Consumer each, on its own connection,
//! as separate processes would be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use rill_client::{
    BatchDelivery, Client, Consumer, ConsumerConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use rill_protocol::hops::{self, Hop};
use tokio::sync::mpsc;

use super::metronome::Metronome;
use super::report::{latency_histogram, Counters};
use super::timeline::{self, Timeline};

/// What one producer sends.
#[derive(Debug, Clone)]
pub struct ProducerJob {
    pub topic: String,
    pub message_bytes: usize,
    /// Stop after this many messages…
    pub messages: Option<u64>,
    /// …or at this instant.
    pub deadline: Option<Instant>,
    /// Messages per second for this producer; `None` is as fast as it goes.
    pub rate: Option<f64>,
    /// Put the send time (ns since `epoch`) in each value's first 8 bytes, for end-to-end latency.
    pub stamp_send_time: bool,
    /// Measure send-to-ack latency of one send call in this many (1 = every call).
    pub latency_every: u64,
    /// Records per producer call: 1 sends each with `Producer::send` (Kafka's API); more hand that many at
    /// once to `Producer::send_batch` (the shape of Iggy's benchmark, which sends 1000 messages a call).
    pub records_per_send: usize,
    /// Mark each record's send as its sequence's [`Hop::Sent`] (`--breakdown`: one producer, one partition, so
    /// the n-th record sent has sequence n).
    pub mark_hops: bool,
    /// Where each measured send-to-ack latency goes with its send time (`--timeline`).
    pub timeline: Option<Arc<Timeline>>,
}

/// Bytes that do not compress to nothing, so compression figures mean something.
fn payload(len: usize, seed: u64) -> Bytes {
    let mut state = seed | 1;
    let mut out = BytesMut::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Letters only: values stay printable for `rill consume`, and compress about as well as JSON does.
        out.put_u8(b'a' + (state % 26) as u8);
    }
    out.freeze()
}

/// What a send call hands back, awaited by the acknowledgement task.
enum Delivery {
    Record(DeliveryFuture),
    Batch(BatchDelivery),
}

/// The value of one record: the shared payload, or a copy of it whose first 8 bytes are the send time (ns since
/// `epoch`).
fn stamped_value(job: &ProducerJob, value: &Bytes, epoch: Instant) -> Bytes {
    if !job.stamp_send_time {
        return value.clone();
    }
    let mut stamped = BytesMut::with_capacity(job.message_bytes.max(8));
    stamped.put_u64(epoch.elapsed().as_nanos() as u64);
    stamped.put_slice(&value[..job.message_bytes.saturating_sub(8)]);
    stamped.freeze()
}

/// Sends until the job is done, then waits for every acknowledgement. Returns the send-to-ack latencies (µs)
/// and the number of records that failed.
pub async fn produce(
    client: Client,
    config: ProducerConfig,
    job: ProducerJob,
    counters: Arc<Counters>,
    epoch: Instant,
    seed: u64,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let producer = Producer::new(client, config).context("cannot create a producer")?;
    let value = payload(job.message_bytes, seed);
    // Acknowledgements are awaited by a second task, in send order, so the send loop never waits on them.
    let (acks_tx, mut acks_rx) = mpsc::channel::<(Instant, Delivery)>(1 << 16);
    let timeline = job.timeline.clone();
    let collector = tokio::spawn(async move {
        let mut latencies = latency_histogram();
        let mut points = Vec::new();
        let mut failed = 0u64;
        while let Some((sent_at, delivery)) = acks_rx.recv().await {
            let answered = match delivery {
                Delivery::Record(record) => record.await.map(drop),
                Delivery::Batch(batch) => batch.await.map(drop),
            };
            match answered {
                Ok(()) => {
                    let latency_us = (sent_at.elapsed().as_micros() as u64).max(1);
                    let _ = latencies.record(latency_us);
                    if timeline.is_some() {
                        let sent_us = sent_at.saturating_duration_since(epoch).as_micros() as u64;
                        points.push(timeline::Point { kind: timeline::Kind::Ack, sent_us, latency_us });
                    }
                }
                Err(error) => {
                    if failed == 0 {
                        // Every later batch of the partition fails behind the first failure: say that one.
                        eprintln!("rill bench: a record failed: {}", error.root());
                    }
                    failed += 1;
                }
            }
        }
        if let Some(timeline) = timeline {
            timeline.extend(points);
        }
        (latencies, failed)
    });
    let started = Instant::now();
    let mut sent = 0u64;
    let mut calls = 0u64;
    let mut unreported = 0u64;
    let mut send_error = None;
    let per_call = job.records_per_send.max(1) as u64;
    let metronome = match job.rate {
        Some(rate) => Some(Metronome::start(rate, started).context("cannot start the pacing thread")?),
        None => None,
    };
    // The records of one call: built once, and again per call only when each value carries its send time.
    let mut records: Vec<ProducerRecord> = Vec::new();
    loop {
        if job.messages.is_some_and(|n| sent >= n) || job.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let count = job.messages.map_or(per_call, |n| per_call.min(n - sent));
        if let Some(metronome) = &metronome {
            // Pace by the schedule, not by sleeping per message: send each record when it comes due, catch up
            // at once if late.
            if sent >= metronome.due() {
                metronome.wait_beyond(sent).await;
                continue;
            }
        }
        if job.stamp_send_time || records.len() != count as usize {
            records.clear();
            records.extend((0..count).map(|_| ProducerRecord::new(stamped_value(&job, &value, epoch))));
        }
        if job.mark_hops {
            for sequence in sent..sent + count {
                // Sequences wrap from i32::MAX to 0, as the producer's do.
                hops::mark((sequence % (1 << 31)) as i32, Hop::Sent);
            }
        }
        let is_sampled = calls.is_multiple_of(job.latency_every);
        let sent_at = if is_sampled { Some(Instant::now()) } else { None };
        let delivery = if per_call == 1 {
            producer.send(&job.topic, records[0].clone()).await.map(Delivery::Record)
        } else {
            producer.send_batch(&job.topic, &records).await.map(Delivery::Batch)
        };
        match delivery {
            Ok(delivery) => {
                // The shared counters are bumped every 256 records, not per send: two atomic adds per record on
                // a cache line all producers share cost more than the record's own encoding at 100 B.
                unreported += count;
                if unreported >= 256 {
                    counters.add(unreported, unreported * job.message_bytes as u64);
                    unreported = 0;
                }
                match sent_at {
                    Some(at) => {
                        if acks_tx.send((at, delivery)).await.is_err() {
                            break;
                        }
                    }
                    None => drop(delivery),
                }
            }
            Err(error) => {
                send_error = Some(error);
                break;
            }
        }
        sent += count;
        calls += 1;
    }
    counters.add(unreported, unreported * job.message_bytes as u64);
    producer.flush().await;
    drop(acks_tx);
    let (latencies, sampled_failures) = collector.await.context("the acknowledgement task failed")?;
    if let Some(error) = send_error {
        return Err(error).context(format!("sending to {} failed", job.topic));
    }
    let failed_batches = producer.metrics().batches_failed;
    Ok((latencies, sampled_failures.max(failed_batches)))
}

/// What one consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerJob {
    pub partitions: Vec<(String, u32)>,
    /// Start from the end (end-to-end runs) instead of the beginning (replays).
    pub from_end: bool,
    /// Stop at this instant at the latest.
    pub deadline: Instant,
    /// Values carry their send time: record send-to-consume latency.
    pub stamped: bool,
    pub fetch_bytes: u32,
    /// Where each send-to-consume latency goes with its send time (`--timeline`).
    pub timeline: Option<Arc<Timeline>>,
}

/// Joins its partitions and positions itself; the returned consumer is then read by [`consume`].
pub async fn prepare_consumer(client: Client, job: &ConsumerJob) -> anyhow::Result<Consumer> {
    let config = ConsumerConfig {
        fetch_max_bytes: job.fetch_bytes,
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config).context("cannot create a consumer")?;
    for (topic, partition) in &job.partitions {
        consumer.assign(topic, &[*partition]).await.with_context(|| format!("cannot assign {topic}/{partition}"))?;
        let to = if job.from_end { SeekTo::End } else { SeekTo::Beginning };
        consumer.seek(topic, *partition, to).await.with_context(|| format!("cannot seek {topic}/{partition}"))?;
    }
    Ok(consumer)
}

/// Reads until `stop` is set (the run has read everything) or the deadline; returns send-to-consume latencies
/// (µs) for stamped values.
pub async fn consume(
    mut consumer: Consumer,
    job: ConsumerJob,
    counters: Arc<Counters>,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Histogram<u64>> {
    let mut latencies = latency_histogram();
    let mut points = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < job.deadline {
        // Wake at least every 100 ms to notice `stop`.
        let wait = job.deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        let Ok(records) = tokio::time::timeout(wait, consumer.poll()).await else { continue };
        let records = records.context("fetch failed")?;
        let now_ns = epoch.elapsed().as_nanos() as u64;
        let mut bytes = 0u64;
        for record in &records {
            let value = record.value.as_deref().unwrap_or_default();
            bytes += value.len() as u64;
            if job.stamped && value.len() >= 8 {
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&value[..8]);
                let sent_ns = u64::from_be_bytes(sent);
                let micros = now_ns.saturating_sub(sent_ns) / 1000;
                let _ = latencies.record(micros.max(1));
                if job.timeline.is_some() {
                    let latency_us = micros.max(1);
                    points.push(timeline::Point { kind: timeline::Kind::Consume, sent_us: sent_ns / 1000, latency_us });
                }
            }
        }
        counters.add(records.len() as u64, bytes);
    }
    if let Some(timeline) = &job.timeline {
        timeline.extend(points);
    }
    Ok(latencies)
}
