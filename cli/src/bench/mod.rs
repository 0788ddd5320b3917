//! `rill bench`: throughput and latency of a broker, measured through the `rill_client` producer and consumer.
//!
//! Three modes: `produce` (send as fast as possible or at a rate; send-to-ack latency), `consume` (produce a data
//! set, then replay it from offset 0 while it is in the page cache), and `e2e` (consumers tail while producers send
//! at a rate; send-to-consume latency). Against `--broker ADDR`, or `--embedded`: a broker this process starts on
//! a temporary data directory, with `--durability` as its topics' policy. `e2e --breakdown` adds p50/p99 per hop
//! of the path (`breakdown.rs`); `e2e --rate-sweep` runs at each of a list of rates and plots the percentiles
//! against the rate (`sweep.rs`); `e2e --floor` measures the machine's own loopback round trip and the CPU the host
//! stole, in the same run (`floor.rs`).

mod breakdown;
mod floor;
mod metronome;
mod report;
mod sweep;
mod timeline;
mod workers;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rill_client::{Acks, Admin, Client, ClientConfig, Compression, ProducerConfig, TopicConfig, TopicReplication};

use report::{latency_histogram, Counters, CpuTime, PhaseReport, RunReport, TailCacheUse};
use workers::{ConsumerJob, ProducerJob};
use workload::Workload;

const EXAMPLES: &str = "Examples:
  rill bench produce --embedded --workload 8-topics-1-partition-1kb
  rill bench consume --embedded --workload 1-topic-16-partitions-1kb --json
  rill bench e2e --embedded --workload e2e-10k-msgs-1kb --plot-dir docs/plots
  rill bench e2e --embedded --workload e2e-10k-msgs-1kb --messages 50000 --breakdown --floor
  rill bench e2e --embedded --workload e2e-10k-msgs-1kb --rate-sweep --duration 5 --plot-dir docs/plots
  rill bench produce --broker 127.0.0.1:9092 --partitions 8 --producers 8 --message-bytes 100 --duration 10

Workloads: 1-topic-16-partitions-1kb, 1-topic-16-partitions-100b, 8-topics-1-partition-1kb,
8-topics-1-partition-100b, 1-topic-1-partition-1kb, e2e-10k-msgs-1kb. Flags override a workload's settings.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Producers only: throughput and send-to-acknowledgement latency.
    Produce,
    /// Produce a data set, then replay it from offset 0 with the consumers.
    Consume,
    /// Consumers tail while producers send: send-to-consume latency.
    E2e,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcksArg {
    None,
    Leader,
    Durable,
    /// Every in-sync replica holds the batch (a cluster's replicated topics; `leader` with one replica).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Always,
    Interval,
    Never,
}

/// `rill bench --metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsArg {
    On,
    Off,
}

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    #[arg(value_enum)]
    mode: Mode,
    /// The broker to measure.
    #[arg(long, env = "RILL_BROKER", default_value = "127.0.0.1:9092", conflicts_with = "embedded")]
    broker: String,
    /// Start a broker in this process on a temporary data directory and measure it.
    #[arg(long)]
    embedded: bool,
    /// Worker threads of this process's async runtime (producers, consumers and an --embedded broker); 0 is one
    /// per core, as for `rill broker --worker-threads`.
    #[arg(long, env = "RILL_WORKER_THREADS", default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=rill_broker::MAX_WORKER_THREADS as i64))]
    worker_threads: u16,
    /// The embedded broker listens with TLS, with this certificate (PEM; its CA goes in --tls-ca).
    #[arg(long, requires_all = ["embedded", "embedded_tls_key"], value_name = "FILE")]
    embedded_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --embedded-tls-cert.
    #[arg(long, requires = "embedded_tls_cert", value_name = "FILE")]
    embedded_tls_key: Option<PathBuf>,
    #[command(flatten)]
    tls: crate::connect::TlsFlags,
    /// Where the embedded broker's temporary data directory goes (the disk under test).
    #[arg(long, requires = "embedded")]
    data_dir: Option<PathBuf>,
    /// The embedded broker's durability policy for the benchmark topics.
    #[arg(long, value_enum, default_value = "never")]
    durability: DurabilityArg,
    /// How the embedded broker appends: direct (O_DIRECT) or buffered (through the page cache).
    #[arg(long, value_enum, default_value = "direct", requires = "embedded")]
    write_mode: crate::broker::WriteModeArg,
    /// The embedded broker's `appends_in_flight`: most partition appends writing to the disk at once.
    #[arg(long, default_value_t = rill_broker::BrokerConfig::default().appends_in_flight, requires = "embedded")]
    appends_in_flight: usize,
    /// The embedded broker's `tail_cache_bytes`: recent appends kept in memory (0: none). Default: the broker's
    /// (an eighth of the machine's memory, at most 1 GiB).
    #[arg(long, requires = "embedded")]
    tail_cache_bytes: Option<u64>,
    /// Consume: replay the data set this many times (a round long enough to measure, from data that fits the
    /// broker's tail cache); the figures are over all replays.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    replays: u32,
    /// Whether the embedded broker records metrics (and serves them on a free admin port): `off` measures what
    /// they cost.
    #[arg(long, value_enum, default_value = "on", requires = "embedded")]
    metrics: MetricsArg,
    /// A named workload (see below); flags override its settings.
    #[arg(long, default_value = "1-topic-1-partition-1kb")]
    workload: String,
    /// Prefix of the topics the run creates (default: bench-<workload>-<unix ms>).
    #[arg(long)]
    topic_prefix: Option<String>,
    #[arg(long)]
    topics: Option<u32>,
    #[arg(long)]
    partitions: Option<u32>,
    #[arg(long)]
    message_bytes: Option<usize>,
    /// Total messages over all producers.
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Run the producers this many seconds instead of for a message count.
    #[arg(long)]
    duration: Option<u64>,
    #[arg(long)]
    producers: Option<u32>,
    #[arg(long)]
    consumers: Option<u32>,
    #[arg(long)]
    batch_bytes: Option<usize>,
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Records each producer hands the client per call: 1 sends record by record (`Producer::send`), more go
    /// through `Producer::send_batch` that many at a time. Default: the workload's (1000 for the 8-topics
    /// workloads, Iggy's batch shape; 1 for the others).
    #[arg(long)]
    records_per_send: Option<usize>,
    /// Most batch bytes one produce call carries: the batches that waited for their partition's in-flight call
    /// go together, up to this (the client's `max_request_bytes`). 1 sends one batch per call.
    #[arg(long, default_value_t = ProducerConfig::default().max_request_bytes)]
    max_request_bytes: usize,
    /// Bytes each producer may hold enqueued but not acknowledged (the client's `max_buffered_bytes`). Default:
    /// room for a full batch per call in flight and one more, per partition, at least 2 MiB.
    #[arg(long)]
    max_buffered_bytes: Option<usize>,
    /// Produce with one unary call per request instead of the connection's produce stream (the client's
    /// `uses_produce_stream` off), to compare the two.
    #[arg(long)]
    unary_produce: bool,
    /// Produce as plain (not idempotent) producers, to measure what idempotence costs.
    #[arg(long)]
    no_idempotence: bool,
    /// Produce calls in flight per partition (the client's `max_in_flight_per_partition`; at most 5 for an
    /// idempotent producer). More than 1 pipelines calls that wait on replication (`--acks all`).
    #[arg(long, default_value_t = ProducerConfig::default().max_in_flight_per_partition)]
    max_in_flight: usize,
    /// Most bytes a consumer's fetch asks for. 1 MiB (Kafka's per-partition default) keeps a fetch's bytes in
    /// the CPU caches between its copies; 8 MiB replayed ~9% slower here.
    #[arg(long, default_value_t = 1 << 20)]
    fetch_bytes: u32,
    /// Messages per second over all producers (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long, value_enum, default_value = "leader")]
    acks: AcksArg,
    /// Copies of each partition the run's topics get, on that many nodes of a cluster (`--broker` names them).
    /// Default: the broker's default, 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    replication_factor: Option<u32>,
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Print the report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Write SVG plots (throughput over time, latency by percentile) into this directory.
    #[arg(long)]
    plot_dir: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// E2e: time each hop of the sampled batches (client encode, HTTP/2, broker decode, writer queue, append,
    /// high-watermark publish, fetch wake, HTTP/2 back, client decode) and print p50/p99 per hop. The broker's
    /// hops are marked in this process, so it needs `--embedded`; batches are known by their producer sequence,
    /// so it needs one producer and one partition.
    #[arg(long, requires = "embedded")]
    breakdown: bool,
    /// E2e: one run per rate of --sweep-rates, each --duration seconds (default 5) on the same topics; prints
    /// send-to-ack and send-to-consume p50/p99/p99.9 per rate, and with --plot-dir writes them as a CSV and an
    /// SVG plot against the rate.
    #[arg(long, conflicts_with_all = ["breakdown", "rate", "messages"])]
    rate_sweep: bool,
    /// The rates (messages a second over all producers) of --rate-sweep, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "rate_sweep", default_values_t = sweep::DEFAULT_RATES)]
    sweep_rates: Vec<u64>,
    /// E2e: write every send-to-ack and send-to-consume latency with its record's send time to this CSV file
    /// (`kind,sent_ms,latency_ms`): when in the run the tail happens.
    #[arg(long, conflicts_with = "rate_sweep")]
    timeline: Option<PathBuf>,
    /// E2e: after the run (after each rate's, with --rate-sweep), a loopback TCP ping-pong between two threads
    /// at the run's message size, rate and duration: the machine's latency floor now, printed beside rill's
    /// figures with the CPU steal (/proc/stat) during the run and during the ping-pong.
    #[arg(long)]
    floor: bool,
}

impl BenchArgs {
    fn workload(&self) -> anyhow::Result<Workload> {
        let Some(mut w) = workload::named(&self.workload) else {
            bail!("unknown workload {:?}; known: {}", self.workload, workload::NAMES.join(", "));
        };
        let positive = |name: &str, v: u64| if v == 0 { bail!("--{name} must be at least 1") } else { Ok(v) };
        if let Some(v) = self.topics {
            w.topics = positive("topics", v.into())? as u32;
        }
        if let Some(v) = self.partitions {
            w.partitions_per_topic = positive("partitions", v.into())? as u32;
        }
        if let Some(v) = self.message_bytes {
            w.message_bytes = positive("message-bytes", v as u64)? as usize;
        }
        if let Some(v) = self.messages {
            w.messages = Some(positive("messages", v)?);
        }
        if let Some(v) = self.duration {
            w.duration = Duration::from_secs(positive("duration", v)?);
            w.messages = None;
        }
        if let Some(v) = self.producers {
            w.producers = positive("producers", v.into())? as u32;
        }
        if let Some(v) = self.consumers {
            w.consumers = positive("consumers", v.into())? as u32;
        }
        if let Some(v) = self.batch_bytes {
            w.batch_bytes = positive("batch-bytes", v as u64)? as usize;
        }
        if let Some(v) = self.linger_ms {
            w.linger = Duration::from_millis(v);
        }
        if let Some(v) = self.rate {
            w.rate = Some(positive("rate", v)?);
        }
        if let Some(v) = self.records_per_send {
            w.records_per_send = positive("records-per-send", v as u64)? as usize;
        }
        if self.breakdown {
            if self.mode != Mode::E2e {
                bail!("--breakdown times an e2e run's hops: use `rill bench e2e --breakdown`");
            }
            if w.producers != 1 || w.topics * w.partitions_per_topic != 1 || self.no_idempotence {
                bail!(
                    "--breakdown knows a batch by its producer sequence: it needs --producers 1, one topic of one \
                     partition and an idempotent producer (this run has {} producers, {} partitions{})",
                    w.producers,
                    w.topics * w.partitions_per_topic,
                    if self.no_idempotence { ", --no-idempotence" } else { "" }
                );
            }
        }
        if self.timeline.is_some() && self.mode != Mode::E2e {
            bail!("--timeline records an e2e run's latencies: use `rill bench e2e --timeline FILE`");
        }
        if self.floor && self.mode != Mode::E2e {
            bail!("--floor measures the machine's latency beside an e2e run: use `rill bench e2e --floor`");
        }
        if self.rate_sweep {
            if self.mode != Mode::E2e {
                bail!("--rate-sweep runs end-to-end runs at each rate: use `rill bench e2e --rate-sweep`");
            }
            if self.sweep_rates.contains(&0) {
                bail!("--sweep-rates must each be at least 1 message a second");
            }
        }
        if self.mode == Mode::E2e && w.message_bytes < 8 {
            bail!("--message-bytes must be at least 8 for e2e: each value carries its send time");
        }
        Ok(w)
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let workload = args.workload()?;
    let runtime = crate::runtime::multi_thread(args.worker_threads.into())?;
    let report = runtime.block_on(run_async(&args, workload))?;
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        writeln!(out, "{json}")
    } else {
        report
            .phases
            .iter()
            .try_for_each(|phase| phase.print(&mut out))
            .and_then(|()| match &report.breakdown {
                Some(breakdown) => breakdown.print(&mut out),
                None if args.breakdown => writeln!(out, "breakdown: no sampled batch was marked at every hop"),
                None => Ok(()),
            })
            .and_then(|()| report.sweep.as_deref().map_or(Ok(()), |points| sweep::print(points, &mut out)))
            .and_then(|()| report.floor.as_ref().map_or(Ok(()), |floor| floor.print(&mut out)))
    };
    // A reader that went away (`| head`) is not an error of the benchmark.
    match printed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e).context("cannot print the report"),
        _ => {}
    }
    if let Some(dir) = &args.plot_dir {
        let written = match &report.sweep {
            Some(points) => sweep::plot(points, dir, &report.workload)?,
            None => report.plot(dir)?,
        };
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    let errors: u64 = report.phases.iter().map(|p| p.errors).sum::<u64>()
        + report.sweep.iter().flatten().map(|p| p.errors).sum::<u64>();
    if errors > 0 {
        bail!("{errors} messages failed");
    }
    Ok(())
}

async fn run_async(args: &BenchArgs, workload: Workload) -> anyhow::Result<RunReport> {
    // An embedded broker lives as long as the run; its data directory goes with it.
    let mut embedded = None;
    let addr = if args.embedded {
        let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        let dir = tempfile::Builder::new().prefix("rill-bench-").tempdir_in(&parent).context("temp data dir")?;
        let config = rill_broker::BrokerConfig {
            data_dir: dir.path().to_owned(),
            listen: ([127, 0, 0, 1], 0).into(),
            default_durability: match args.durability {
                DurabilityArg::Always => rill_broker::DurabilityPolicy::Always,
                DurabilityArg::Interval => rill_broker::DurabilityPolicy::Interval,
                DurabilityArg::Never => rill_broker::DurabilityPolicy::Never,
            },
            default_retention_ms: None,
            direct_writes: args.write_mode == crate::broker::WriteModeArg::Direct,
            appends_in_flight: args.appends_in_flight,
            admin_listen: (args.metrics == MetricsArg::On).then_some(([127, 0, 0, 1], 0).into()),
            tls: args
                .embedded_tls_cert
                .clone()
                .zip(args.embedded_tls_key.clone())
                .map(|(cert, key)| rill_broker::TlsConfig::new(cert, key)),
            tail_cache_bytes: args.tail_cache_bytes,
            ..rill_broker::BrokerConfig::default()
        };
        let broker = rill_broker::Broker::start(config).await.context("cannot start the embedded broker")?;
        let addr = broker.url();
        embedded = Some((broker, dir));
        addr
    } else {
        args.broker.clone()
    };
    let client_config = ClientConfig { uses_produce_stream: !args.unary_produce, ..args.tls.client_config()? };
    let admin = Admin::new(Client::connect_with(&addr, client_config.clone()).await.context("cannot connect")?);
    let prefix = args.topic_prefix.clone().unwrap_or_else(|| {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        format!("bench-{}-{ms}", workload.name)
    });
    let topics: Vec<String> = (0..workload.topics).map(|i| format!("{prefix}-{i}")).collect();
    let replication = TopicReplication { factor: args.replication_factor, min_insync_replicas: None };
    for topic in &topics {
        admin
            .create_replicated_topic(topic, workload.partitions_per_topic, replication, TopicConfig::default())
            .await
            .with_context(|| format!("cannot create topic {topic}"))?;
    }
    if args.replication_factor.is_some() {
        wait_until_every_node_knows(&addr, &client_config, &topics).await?;
    }
    let producer_config = ProducerConfig {
        batch_bytes: workload.batch_bytes,
        linger: workload.linger,
        acks: match args.acks {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Leader,
            AcksArg::Durable => Acks::Durable,
            AcksArg::All => Acks::All,
        },
        compression: match args.compression {
            CompressionArg::None => Compression::None,
            // Level 1, as zstd's: the benchmark measures the broker, not how hard the codec can try.
            CompressionArg::Gzip => Compression::Gzip { level: 1 },
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd { level: 1 },
        },
        // Room for a full batch per call in flight and one filling, per partition, and no more: a deeper buffer
        // only adds latency (queued bytes / throughput) and memory to touch. With one call in flight, four batches
        // gave the same throughput as two and twice the send-to-ack p50 and p99 (docs/benchmarks.md, "latency at
        // load", 2026-12-01).
        max_buffered_bytes: args.max_buffered_bytes.unwrap_or(
            (workload.batch_bytes * (args.max_in_flight + 1) * workload.partitions_per_topic as usize).max(2 << 20),
        ),
        // 0 is refused by `Producer::new`, naming the setting.
        max_request_bytes: args.max_request_bytes,
        enable_idempotence: !args.no_idempotence,
        max_in_flight_per_partition: args.max_in_flight,
        ..ProducerConfig::default()
    };
    let settings = serde_json::json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "embedded": args.embedded,
        "durability": format!("{:?}", args.durability).to_lowercase(),
        "write_mode": format!("{:?}", args.write_mode).to_lowercase(),
        "appends_in_flight": args.embedded.then_some(args.appends_in_flight),
        // What `--worker-threads` gave this process's runtime (0 resolved to the machine's default).
        "worker_threads": tokio::runtime::Handle::current().metrics().num_workers(),
        "tail_cache_bytes": args.tail_cache_bytes,
        "transparent_huge_pages": crate::allocator::huge_pages().describe(),
        "replays": args.replays,
        "topics": workload.topics,
        "partitions_per_topic": workload.partitions_per_topic,
        "message_bytes": workload.message_bytes,
        "messages": workload.messages,
        "duration_s": workload.messages.is_none().then_some(workload.duration.as_secs()),
        "producers": workload.producers,
        "idempotence": !args.no_idempotence,
        "max_in_flight": args.max_in_flight,
        "consumers": workload.consumers,
        "batch_bytes": workload.batch_bytes,
        "fetch_bytes": args.fetch_bytes,
        "max_request_bytes": args.max_request_bytes,
        "max_buffered_bytes": args.max_buffered_bytes,
        "linger_ms": workload.linger.as_millis() as u64,
        "records_per_send": workload.records_per_send,
        "rate": workload.rate,
        "acks": format!("{:?}", args.acks).to_lowercase(),
        "replication_factor": args.replication_factor.unwrap_or(1),
        "compression": format!("{:?}", args.compression).to_lowercase(),
    });
    let show_progress = !args.quiet && !args.json;
    let run = Run {
        addr,
        client_config,
        producer_config,
        workload,
        topics,
        show_progress,
        fetch_bytes: args.fetch_bytes,
        mark_hops: args.breakdown,
        timeline: args.timeline.as_ref().map(|_| Arc::new(timeline::Timeline::default())),
    };
    let mut report = RunReport {
        workload: run.workload.name.clone(),
        settings,
        phases: Vec::new(),
        histograms: Vec::new(),
        breakdown: None,
        sweep: None,
        floor: None,
    };
    match args.mode {
        Mode::Produce => {
            let (phase, latencies) = run.produce_phase(None).await?;
            report.phases.push(phase);
            report.histograms.push(("produce".into(), latencies));
        }
        Mode::Consume => {
            let (phase, latencies) = run.produce_phase(None).await?;
            let produced = phase.messages;
            report.phases.push(phase);
            report.histograms.push(("produce".into(), latencies));
            let before = tail_cache_use(&admin, &run.topics).await?;
            let (mut phase, _) = run.consume_phase(produced).await?;
            for _ in 1..args.replays {
                phase.absorb(run.consume_phase(produced).await?.0);
            }
            phase.tail_cache = Some(TailCacheUse::between(before, tail_cache_use(&admin, &run.topics).await?));
            report.phases.push(phase);
        }
        Mode::E2e if args.rate_sweep => {
            let seconds = args.duration.unwrap_or(5);
            let mut points = Vec::new();
            for &rate in &args.sweep_rates {
                let workload = Workload { rate: Some(rate), messages: Some(rate * seconds), ..run.workload.clone() };
                let step = Run { workload, ..run.clone() };
                let steal_before = floor::CpuTicks::read();
                let (produce, consume, _, _) = step.e2e_phase().await.with_context(|| format!("at {rate} msg/s"))?;
                let mut point = sweep::SweepPoint::of(rate, &produce, &consume);
                if args.floor {
                    point.floor = Some(step.floor_after(&produce, steal_before).await?);
                }
                if show_progress {
                    eprintln!("rate {rate}: done");
                }
                points.push(point);
            }
            report.sweep = Some(points);
        }
        Mode::E2e => {
            let before = tail_cache_use(&admin, &run.topics).await?;
            if args.breakdown {
                rill_protocol::hops::start();
            }
            let steal_before = floor::CpuTicks::read();
            let e2e = run.e2e_phase().await;
            if args.breakdown {
                rill_protocol::hops::stop();
                report.breakdown = breakdown::Breakdown::of(&rill_protocol::hops::take());
            }
            let (produce, mut consume, produce_latencies, e2e_latencies) = e2e?;
            if args.floor {
                report.floor = Some(run.floor_after(&produce, steal_before).await?);
            }
            if let (Some(timeline), Some(path)) = (&run.timeline, &args.timeline) {
                let points = timeline.write(path)?;
                eprintln!("wrote {points} latencies to {}", path.display());
            }
            consume.tail_cache = Some(TailCacheUse::between(before, tail_cache_use(&admin, &run.topics).await?));
            report.phases.push(produce);
            report.phases.push(consume);
            report.histograms.push(("produce".into(), produce_latencies));
            report.histograms.push(("e2e".into(), e2e_latencies));
        }
    }
    if let Some((broker, _dir)) = embedded {
        broker.shutdown().await;
    }
    Ok(report)
}

/// The broker's tail-cache counters summed over `topics`' partitions (as the node answering `DescribeTopic` counts
/// them).
async fn tail_cache_use(admin: &Admin, topics: &[String]) -> anyhow::Result<TailCacheUse> {
    let mut total = TailCacheUse::default();
    for topic in topics {
        let description = admin.describe_topic(topic).await.with_context(|| format!("cannot describe {topic}"))?;
        for p in &description.partitions {
            total.hits += p.tail_cache_hits;
            total.misses += p.tail_cache_misses;
            total.hit_bytes += p.tail_cache_hit_bytes;
            total.read_ahead_hits += p.read_ahead_hits;
        }
    }
    Ok(total)
}

#[derive(Clone)]
struct Run {
    addr: String,
    client_config: ClientConfig,
    producer_config: ProducerConfig,
    workload: Workload,
    topics: Vec<String>,
    show_progress: bool,
    fetch_bytes: u32,
    /// Mark each send's [`rill_protocol::hops::Hop::Sent`] (`--breakdown`).
    mark_hops: bool,
    /// Every e2e latency with its send time (`--timeline`).
    timeline: Option<Arc<timeline::Timeline>>,
}

impl Run {
    async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect_with(&self.addr, self.client_config.clone()).await.context("cannot connect to the broker")
    }

    fn producer_jobs(&self, stamp_send_time: bool) -> Vec<ProducerJob> {
        let w = &self.workload;
        let producers = u64::from(w.producers);
        let deadline = w.messages.is_none().then(|| Instant::now() + w.duration);
        (0..producers)
            .map(|i| ProducerJob {
                topic: self.topics[(i % self.topics.len() as u64) as usize].clone(),
                message_bytes: w.message_bytes,
                // Spread the total; the first producers take the remainder.
                messages: w.messages.map(|n| n / producers + u64::from(i < n % producers)),
                deadline,
                rate: w.rate.map(|r| r as f64 / producers as f64),
                stamp_send_time,
                // Every call of a batched send (a thousand records each); one record in 97 otherwise.
                latency_every: if w.records_per_send > 1 || w.rate.is_some_and(|r| r <= 100_000) { 1 } else { 97 },
                records_per_send: w.records_per_send,
                mark_hops: self.mark_hops,
                timeline: self.timeline.clone().filter(|_| stamp_send_time),
            })
            .collect()
    }

    /// Runs the producers to completion (every message acknowledged).
    async fn produce_phase(
        &self,
        epoch: Option<Instant>,
    ) -> anyhow::Result<(PhaseReport, hdrhistogram::Histogram<u64>)> {
        let counters = Arc::new(Counters::default());
        // With an epoch (end-to-end runs) every value carries its send time relative to it.
        let jobs = self.producer_jobs(epoch.is_some());
        let epoch = epoch.unwrap_or_else(Instant::now);
        let mut tasks = Vec::new();
        let clients = futures_join(jobs.iter().map(|_| self.connect())).await?;
        let started = Instant::now();
        let cpu_at_start = CpuTime::now();
        for (i, (job, client)) in jobs.into_iter().zip(clients).enumerate() {
            let (config, counters) = (self.producer_config.clone(), counters.clone());
            tasks.push(tokio::spawn(workers::produce(client, config, job, counters, epoch, i as u64 + 1)));
        }
        let expected = self.workload.messages;
        let all_done = async {
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await);
            }
            outcomes
        };
        let (outcomes_tx, outcomes_rx) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(async move {
            let _ = outcomes_tx.send(all_done.await);
        });
        let series = report::sample_until("produce", counters.clone(), expected, self.show_progress, async {
            let _ = waiter.await;
        })
        .await;
        let elapsed = started.elapsed();
        let cpu = CpuTime::since(cpu_at_start, counters.bytes.load(Ordering::Relaxed));
        let outcomes = outcomes_rx.await.context("the producers' results were lost")?;
        let mut latencies = latency_histogram();
        let mut errors = 0;
        for outcome in outcomes {
            let (histogram, failed) = outcome.context("a producer task panicked")??;
            latencies.add(&histogram).context("merging latencies")?;
            errors += failed;
        }
        Ok((PhaseReport::new("produce", &counters, elapsed, &latencies, cpu, errors, series), latencies))
    }

    /// The topics' partitions dealt out to the consumers.
    fn consumer_jobs(&self, from_end: bool, stamped: bool, deadline: Instant) -> Vec<ConsumerJob> {
        let consumers = self.workload.consumers.max(1) as usize;
        let mut jobs: Vec<ConsumerJob> = (0..consumers)
            .map(|_| ConsumerJob {
                partitions: Vec::new(),
                from_end,
                deadline,
                stamped,
                fetch_bytes: self.fetch_bytes,
                timeline: self.timeline.clone().filter(|_| stamped),
            })
            .collect();
        let all: Vec<(String, u32)> = self
            .topics
            .iter()
            .flat_map(|t| (0..self.workload.partitions_per_topic).map(move |p| (t.clone(), p)))
            .collect();
        for (i, tp) in all.into_iter().enumerate() {
            jobs[i % consumers].partitions.push(tp);
        }
        jobs.retain(|j| !j.partitions.is_empty());
        jobs
    }

    /// Replays `messages` from offset 0.
    async fn consume_phase(&self, messages: u64) -> anyhow::Result<(PhaseReport, hdrhistogram::Histogram<u64>)> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let jobs = self.consumer_jobs(false, false, deadline);
        let expected = Arc::new(AtomicU64::new(messages));
        self.run_consumers(jobs, expected, Instant::now(), "consume", async { Ok(()) }).await.map(|(p, h, _)| (p, h))
    }

    /// Consumers positioned at the end, then producers at the workload's rate.
    async fn e2e_phase(
        &self,
    ) -> anyhow::Result<(PhaseReport, PhaseReport, hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> {
        let epoch = Instant::now();
        // A run by duration learns how many messages to wait for when its producers stop.
        let expected = Arc::new(AtomicU64::new(self.workload.messages.unwrap_or(u64::MAX)));
        let deadline = Instant::now() + self.workload.duration.max(Duration::from_secs(60)) * 2;
        let jobs = self.consumer_jobs(true, true, deadline);
        let produce = async {
            let produced = self.produce_phase(Some(epoch)).await;
            if let Ok((report, _)) = &produced {
                expected.store(report.messages, Ordering::Relaxed);
            }
            produced
        };
        let (consume, consume_latencies, produced) =
            self.run_consumers(jobs, expected.clone(), epoch, "e2e", produce).await?;
        let (produce_report, produce_latencies) = produced;
        Ok((produce_report, consume, produce_latencies, consume_latencies))
    }

    /// The CPU steal since `steal_before` (rill's run, just ended), then the floor probe at this run's message
    /// size and rate for as long as its producers ran.
    async fn floor_after(
        &self,
        produce: &PhaseReport,
        steal_before: Option<floor::CpuTicks>,
    ) -> anyhow::Result<floor::Floor> {
        let steal_during_run =
            floor::CpuTicks::read().zip(steal_before).and_then(|(after, before)| after.steal_percent_since(&before));
        let probe = floor::FloorProbe {
            message_bytes: self.workload.message_bytes,
            rate: self.workload.rate.map(|rate| rate as f64),
            duration: Duration::from_secs_f64(produce.seconds.max(0.1)),
        };
        if self.show_progress {
            eprintln!("floor: loopback ping-pong for {:.1} s", probe.duration.as_secs_f64());
        }
        let mut measured =
            tokio::task::spawn_blocking(move || floor::measure(probe)).await.context("the floor probe panicked")??;
        measured.steal_during_run_percent = steal_during_run;
        Ok(measured)
    }

    /// Runs consumers until together they have read `messages` (which `alongside` may lower, once it knows), while
    /// `alongside` runs (the producers of an end-to-end run, started once every consumer is positioned).
    async fn run_consumers<T>(
        &self,
        jobs: Vec<ConsumerJob>,
        messages: Arc<AtomicU64>,
        epoch: Instant,
        label: &str,
        alongside: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(PhaseReport, hdrhistogram::Histogram<u64>, T)> {
        let counters = Arc::new(Counters::default());
        let mut consumers = Vec::new();
        for job in &jobs {
            consumers.push(workers::prepare_consumer(self.connect().await?, job).await?);
        }
        let started = Instant::now();
        let cpu_at_start = CpuTime::now();
        // Each consumer's share is unknown (keyless records spread unevenly over partitions): all of them read
        // until together they have read `messages`, then stop.
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (consumer, job) in consumers.into_iter().zip(jobs) {
            tasks.push(tokio::spawn(workers::consume(consumer, job, counters.clone(), epoch, stop.clone())));
        }
        let (watch, stopper, target) = (counters.clone(), stop.clone(), messages.clone());
        let done = async move {
            // The sampler reads the same counter every 100 ms; this checks it more often to stop promptly.
            while watch.messages.load(Ordering::Relaxed) < target.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stopper.store(true, Ordering::Relaxed);
        };
        let messages = messages.load(Ordering::Relaxed);
        let expected = (messages != u64::MAX).then_some(messages);
        let sampling = report::sample_until(label, counters.clone(), expected, self.show_progress, async {
            tokio::select! {
                () = done => {}
                () = all_finished(&tasks) => {}
            }
        });
        let (series, alongside) = tokio::join!(sampling, alongside);
        let elapsed = started.elapsed();
        let cpu = CpuTime::since(cpu_at_start, counters.bytes.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        let alongside = alongside?;
        let mut latencies = latency_histogram();
        for task in tasks {
            let histogram = task.await.context("a consumer task panicked")??;
            latencies.add(&histogram).context("merging latencies")?;
        }
        Ok((PhaseReport::new(label, &counters, elapsed, &latencies, cpu, 0, series), latencies, alongside))
    }
}

async fn all_finished(tasks: &[tokio::task::JoinHandle<anyhow::Result<hdrhistogram::Histogram<u64>>>]) {
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn futures_join<T>(
    futures: impl Iterator<Item = impl std::future::Future<Output = anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    for future in futures {
        out.push(future.await?);
    }
    Ok(out)
}

/// A cluster's nodes each open a new topic's logs once they apply its creation; a consumer that asks one that
/// has not yet (its offsets) is told the topic is unknown. Waits (up to 30 s) until every node listed in `addr` knows them.
async fn wait_until_every_node_knows(
    addr: &str,
    client_config: &ClientConfig,
    topics: &[String],
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for node in addr.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let admin = Admin::new(Client::connect_with(node, client_config.clone()).await.context("cannot connect")?);
        for topic in topics {
            while let Err(err) = admin.list_offsets(topic, &[], rill_client::OffsetSpec::Latest).await {
                if tokio::time::Instant::now() > deadline {
                    anyhow::bail!("node {node} does not know topic {topic} 30 s after its creation: {err}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(())
}
