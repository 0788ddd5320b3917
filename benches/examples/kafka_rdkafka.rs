//! librdkafka against a broker's Kafka port: the figures docs/benchmarks.md sets beside `rill bench`'s gRPC
//! ones, in the shape of its `8-topics-1-partition-1kb` and `e2e-10k-msgs-1kb` workloads.
//!
//! - `produce`: one librdkafka producer per topic (8 by default), each sending `--messages / producers` records
//!   of `--message-bytes` to its own single-partition topic as fast as librdkafka takes them, with its
//!   high-throughput settings (linger 5 ms, 1 MB batches, acks=1: rill's `leader`; not idempotent, since
//!   librdkafka's idempotence forces acks=all, which rill makes fsynced), its default queue of 100,000
//!   messages (`--queue-messages`), and delivery reports served every 1000 sends (`--poll-every`).
//! - `consume`: one consumer per topic replays it from offset 0 (librdkafka's default fetch sizes: 1 MiB per
//!   partition, as `rill bench`'s `--fetch-bytes`; `--fetch-partition-bytes` to change it).
//! - `e2e`: one producer at `--rate` records per second (linger 0: latency, not batching) and one consumer
//!   tailing the topic; each record carries its send time, so send→consume latency is measured in one process.
//!   Send→ack is measured too, but as its delivery report is served: by the sender's poll after its next send,
//!   so up to one interval (100 µs at 10k msg/s) after the acknowledgement came.
//!
//! Topics are created by the caller (`benches/kafka.sh` uses `rill topic create`): `<prefix>-0` .. `<prefix>-N`.
//! Usage: `kafka_rdkafka produce|consume|e2e BROKER PREFIX [--topics N] [--messages N] [--message-bytes N]
//! [--rate N] [--queue-messages N] [--poll-every N] [--fetch-partition-bytes N]`. Prints one `key=value` line
//! per figure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

struct Settings {
    mode: String,
    broker: String,
    prefix: String,
    topics: usize,
    messages: u64,
    message_bytes: usize,
    rate: u64,
    /// librdkafka's `queue.buffering.max.messages`: records a producer holds until their delivery reports
    /// are served. A queue deeper than the run (1,000,000 before 2026-12-01) puts every record on memory the
    /// kernel hands out fresh (and zeroes); a bounded one reuses what delivered records free.
    queue_messages: u64,
    /// Serve delivery reports after every this many sends. Once a send (1 before 2026-12-01) cost a poll's
    /// clock reads and queue locks per record; a full queue is served at once whatever this is.
    poll_every: u64,
    /// How many librdkafka producer instances the producing threads (one a topic) share; by default one each,
    /// the shape `rill bench` runs. One instance for all eight (librdkafka's advice for a process) ran at half
    /// the rate, its threads contending for the instance's queue (docs/benchmarks.md, 2026-12-03).
    clients: usize,
    /// librdkafka's `max.partition.fetch.bytes` for the consumers (its default, 1 MiB, unless given; the broker
    /// caps a partition's share at its `max_fetch_bytes`, 8 MiB by default).
    fetch_partition_bytes: u64,
    /// `e2e`: where to write each record's send time and latency (`consume,SENT_MS,LATENCY_MS` lines, as
    /// `rill bench e2e --timeline` writes them), to see whether the slow records come in bursts.
    timeline: Option<std::path::PathBuf>,
    /// More librdkafka settings for the consumers (`--consumer-set KEY=VALUE`, repeatable), for measuring them.
    consumer_settings: Vec<(String, String)>,
    /// The same for the producers (`--producer-set KEY=VALUE`), applied after the benchmark's own settings.
    producer_settings: Vec<(String, String)>,
}

fn settings() -> Result<Settings, String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: kafka_rdkafka produce|consume|e2e BROKER PREFIX [--topics N] [--messages N] \
                 [--message-bytes N] [--rate N] [--queue-messages N] [--poll-every N] \
                 [--fetch-partition-bytes N] [--clients N] [--timeline FILE] \
                 [--consumer-set KEY=VALUE]... [--producer-set KEY=VALUE]...";
    let (Some(mode), Some(broker), Some(prefix)) = (args.next(), args.next(), args.next()) else {
        return Err(usage.into());
    };
    let mut settings = Settings {
        mode,
        broker,
        prefix,
        topics: 8,
        messages: 2_000_000,
        message_bytes: 1000,
        rate: 10_000,
        queue_messages: 100_000,
        poll_every: 1000,
        fetch_partition_bytes: 1 << 20,
        clients: 0,
        timeline: None,
        consumer_settings: Vec::new(),
        producer_settings: Vec::new(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value; {usage}"))?;
        if flag == "--timeline" {
            settings.timeline = Some(value.into());
            continue;
        }
        if flag == "--consumer-set" || flag == "--producer-set" {
            let (key, setting) =
                value.split_once('=').ok_or_else(|| format!("{flag} takes KEY=VALUE, not {value:?}"))?;
            let to = if flag == "--consumer-set" {
                &mut settings.consumer_settings
            } else {
                &mut settings.producer_settings
            };
            to.push((key.to_owned(), setting.to_owned()));
            continue;
        }
        let number: u64 = value.parse().map_err(|_| format!("{flag} takes a whole number, not {value:?}"))?;
        match flag.as_str() {
            "--topics" => settings.topics = number as usize,
            "--messages" => settings.messages = number,
            "--message-bytes" => settings.message_bytes = number.max(16) as usize,
            "--rate" => settings.rate = number.max(1),
            "--queue-messages" => settings.queue_messages = number.max(1),
            "--poll-every" => settings.poll_every = number.max(1),
            "--fetch-partition-bytes" => settings.fetch_partition_bytes = number.max(1),
            "--clients" => settings.clients = number.max(1) as usize,
            _ => return Err(format!("unknown flag {flag}; {usage}")),
        }
    }
    Ok(settings)
}

fn main() {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    match settings.mode.as_str() {
        "produce" => produce(&settings),
        "consume" => consume(&settings),
        "e2e" => end_to_end(&settings),
        other => {
            eprintln!("unknown mode {other:?}: produce, consume or e2e");
            std::process::exit(2);
        }
    }
}

/// A record's send time (ns since the run's epoch) and how long after it something happened to it (µs).
type TimedPoint = (u128, u64);

/// Counts acknowledged records; a failed delivery is a failed benchmark.
struct Acknowledgements {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    /// `e2e`: the clock its payloads' send times count from, and each acknowledged record's send time and
    /// send→ack latency (µs), which tells a slow produce from a slow fetch.
    acks_timed: Option<(Instant, std::sync::Mutex<Vec<TimedPoint>>)>,
}

struct Counting(Arc<Acknowledgements>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                if let (Some((epoch, timed)), Some(payload)) = (&self.0.acks_timed, message.payload()) {
                    let sent_ns = u128::from_le_bytes(payload[..16].try_into().expect("16 bytes"));
                    let latency_us = (epoch.elapsed().as_nanos().saturating_sub(sent_ns) / 1000) as u64;
                    if sent_ns != 0 {
                        timed.lock().expect("no panic while holding it").push((sent_ns, latency_us));
                    }
                }
                self.0.acknowledged.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn producer(
    broker: &str,
    linger_ms: &str,
    queue_messages: u64,
    extra: &[(String, String)],
    counts: Arc<Acknowledgements>,
) -> BaseProducer<Counting> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker)
        .set("acks", "1")
        .set("enable.idempotence", "false")
        .set("linger.ms", linger_ms)
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", queue_messages.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.codec", "none");
    for (key, value) in extra {
        config.set(key, value);
    }
    config.create_with_context(Counting(counts)).expect("a producer from a valid configuration")
}

/// Sends `record`, serving delivery reports while librdkafka's queue is full (that wait is the back-pressure).
fn send(producer: &BaseProducer<Counting>, topic: &str, payload: &[u8]) {
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => panic!("produce to {topic}: {error}"),
        }
    }
}

fn produce(settings: &Settings) {
    let per_producer = settings.messages / settings.topics as u64;
    let counts =
        Arc::new(Acknowledgements { acknowledged: AtomicU64::new(0), failed: AtomicU64::new(0), acks_timed: None });
    let started = Instant::now();
    let clients = if settings.clients == 0 { settings.topics } else { settings.clients.min(settings.topics) };
    let instances: Vec<Arc<BaseProducer<Counting>>> = (0..clients)
        .map(|_| {
            Arc::new(producer(
                &settings.broker,
                "5",
                settings.queue_messages,
                &settings.producer_settings,
                counts.clone(),
            ))
        })
        .collect();
    let producers: Vec<_> = (0..settings.topics)
        .map(|n| {
            let (producer, topic) = (instances[n % clients].clone(), format!("{}-{n}", settings.prefix));
            let payload = vec![b'x'; settings.message_bytes];
            let poll_every = settings.poll_every;
            std::thread::spawn(move || {
                for sent in 1..=per_producer {
                    send(&producer, &topic, &payload);
                    if sent % poll_every == 0 {
                        producer.poll(Duration::ZERO);
                    }
                }
                // Each thread flushes its instance itself, so eight instances flush at once: `flush` serves
                // reports in 100 ms polls, and one instance after another took 0.8 s of the run's clock.
                producer.flush(Duration::from_secs(120)).expect("every record delivered within 2 minutes");
            })
        })
        .collect();
    for producer in producers {
        producer.join().expect("producer thread");
    }
    let elapsed = started.elapsed();
    let acknowledged = counts.acknowledged.load(Ordering::Relaxed);
    assert_eq!(counts.failed.load(Ordering::Relaxed), 0, "no delivery may fail");
    report("produce", acknowledged, settings.message_bytes, elapsed);
}

fn consumer(broker: &str, fetch_partition_bytes: u64, extra: &[(String, String)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker)
        .set("max.partition.fetch.bytes", fetch_partition_bytes.to_string())
        .set("group.id", "kafka-rdkafka-bench")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (key, value) in extra {
        config.set(key, value);
    }
    config.create().expect("a consumer from a valid configuration")
}

/// The replay's rate counts from the first record any consumer gets: a librdkafka consumer (the `rdkafka` crate's
/// needs a `group.id`, even to assign) starts fetching only once its group state machine is next served, about
/// 0.5 s after it starts (docs/benchmarks.md, 2026-12-03), which in a 1 GB replay was a third of the time. When
/// the consumers start far apart (the last one's first record is printed too), the window is not the replay's.
fn consume(settings: &Settings) {
    let per_consumer = settings.messages / settings.topics as u64;
    let started = Instant::now();
    let consumers: Vec<_> = (0..settings.topics)
        .map(|n| {
            let (broker, topic) = (settings.broker.clone(), format!("{}-{n}", settings.prefix));
            let (fetch_partition_bytes, extra) = (settings.fetch_partition_bytes, settings.consumer_settings.clone());
            std::thread::spawn(move || {
                let consumer = consumer(&broker, fetch_partition_bytes, &extra);
                assign(&consumer, &topic, Offset::Beginning);
                let (mut read, mut first_record) = (0, None);
                let deadline = Instant::now() + Duration::from_secs(300);
                while read < per_consumer {
                    assert!(Instant::now() < deadline, "{topic}: only {read} of {per_consumer} records in 5 minutes");
                    if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                        message.expect("no consumer error");
                        first_record.get_or_insert_with(Instant::now);
                        read += 1;
                    }
                }
                (read, first_record)
            })
        })
        .collect();
    let results: Vec<(u64, Option<Instant>)> =
        consumers.into_iter().map(|c| c.join().expect("consumer thread")).collect();
    let read = results.iter().map(|(read, _)| read).sum();
    let firsts: Vec<Instant> = results.iter().filter_map(|(_, first)| *first).collect();
    let (first, last) =
        (firsts.iter().min().copied().unwrap_or(started), firsts.iter().max().copied().unwrap_or(started));
    println!(
        "consume first records after {:.2} s (the last consumer's after {:.2} s); counted from the first",
        (first - started).as_secs_f64(),
        (last - started).as_secs_f64()
    );
    report("consume", read, settings.message_bytes, first.elapsed());
}

fn assign(consumer: &BaseConsumer, topic: &str, offset: Offset) {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, offset).expect("a valid offset");
    consumer.assign(&assignment).expect("assign");
}

fn end_to_end(settings: &Settings) {
    let topic = format!("{}-0", settings.prefix);
    let epoch = Instant::now();
    let consumer = consumer(&settings.broker, settings.fetch_partition_bytes, &settings.consumer_settings);
    assign(&consumer, &topic, Offset::End);
    // Let the consumer find its position before the first send, or the first records count its start-up.
    let warm_up = Instant::now() + Duration::from_secs(2);
    while Instant::now() < warm_up {
        consumer.poll(Duration::from_millis(50));
    }
    let messages = settings.messages;
    let (broker, rate, message_bytes, sending_topic, queue_messages) =
        (settings.broker.clone(), settings.rate, settings.message_bytes, topic.clone(), settings.queue_messages);
    let producer_settings = settings.producer_settings.clone();
    let counts = Arc::new(Acknowledgements {
        acknowledged: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        acks_timed: Some((epoch, std::sync::Mutex::new(Vec::with_capacity(messages as usize)))),
    });
    let acks = counts.clone();
    let sender = std::thread::spawn(move || {
        let producer = producer(&broker, "0", queue_messages, &producer_settings, counts);
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut payload = vec![b'x'; message_bytes];
        // One acknowledged record before the clock starts: the producer's own start-up (bootstrap connection,
        // ApiVersions, the topic's metadata, the leader's connection) took ~100 ms here and, counted into the
        // first 1% of records, was the whole p99. Its zero timestamp tells the consumer to skip it.
        payload[..16].fill(0);
        send(&producer, &sending_topic, &payload);
        producer.flush(Duration::from_secs(30)).expect("the warm-up record delivered");
        let first_send = epoch.elapsed();
        for n in 0..messages {
            let due = first_send + interval * n as u32;
            // Wait asleep, leaving the CPU to the broker and librdkafka's threads (2 cores here). librdkafka's
            // poll takes whole milliseconds, so a poll of the 100 µs between sends was one that did not wait:
            // until 2026-12-03 this loop spun a core, and the threads it held off woke on the scheduler's 4 ms
            // tick, the whole of the p99 (docs/benchmarks.md, "Kafka end to end").
            while let Some(early) = due.checked_sub(epoch.elapsed()).filter(|d| !d.is_zero()) {
                if early >= Duration::from_millis(1) {
                    producer.poll(early);
                } else {
                    std::thread::sleep(early);
                }
            }
            payload[..16].copy_from_slice(&epoch.elapsed().as_nanos().to_le_bytes());
            send(&producer, &sending_topic, &payload);
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).expect("every record delivered within a minute");
    });
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(messages / settings.rate + 60);
    let mut read = 0;
    let mut timeline = Vec::with_capacity(if settings.timeline.is_some() { messages as usize } else { 0 });
    while read < messages {
        assert!(Instant::now() < deadline, "{topic}: only {read} of {messages} records before the deadline");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("no consumer error");
            let payload = message.payload().expect("a payload");
            let sent_ns = u128::from_le_bytes(payload[..16].try_into().expect("16 bytes"));
            if sent_ns == 0 {
                continue;
            }
            let latency_us = (epoch.elapsed().as_nanos().saturating_sub(sent_ns) / 1000) as u64;
            latency.saturating_record(latency_us.max(1));
            if settings.timeline.is_some() {
                timeline.push((sent_ns, latency_us));
            }
            read += 1;
        }
    }
    sender.join().expect("producer thread");
    report("e2e", read, settings.message_bytes, started.elapsed());
    let quantiles = |histogram: &Histogram<u64>| {
        let at = |q| histogram.value_at_quantile(q);
        format!("p50={} p99={} p99.9={} max={}", at(0.50), at(0.99), at(0.999), histogram.max())
    };
    println!("e2e_latency_us {}", quantiles(&latency));
    let acked = std::mem::take(&mut *acks.acks_timed.as_ref().expect("timed").1.lock().expect("no panic while held"));
    let mut ack_latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    for (_, latency_us) in &acked {
        ack_latency.saturating_record((*latency_us).max(1));
    }
    println!("e2e_ack_latency_us {}", quantiles(&ack_latency));
    if let Some(path) = &settings.timeline {
        let line = |kind, (sent_ns, latency_us): &TimedPoint| {
            format!("{kind},{:.3},{:.3}\n", *sent_ns as f64 / 1e6, *latency_us as f64 / 1e3)
        };
        let lines: String = acked
            .iter()
            .map(|point| line("ack", point))
            .chain(timeline.iter().map(|point| line("consume", point)))
            .collect();
        std::fs::write(path, lines).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    }
}

fn report(phase: &str, messages: u64, message_bytes: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{phase} messages={messages} seconds={seconds:.2} msgs_per_s={:.0} MB_per_s={:.1}",
        messages as f64 / seconds,
        (messages * message_bytes as u64) as f64 / seconds / 1e6
    );
}
