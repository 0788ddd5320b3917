//! The floor under a durable ack, without the network: one record of 1 KiB arriving at a steady rate (10k a
//! second by default), each answered once an fdatasync covers it. The latency is from the record's arrival (its
//! slot in the schedule, so a late arrival thread counts against it) to the return of the call that waited.
//!
//! - `file`: a plain file, zeros written and fsynced ahead so that no write grows it (what storage's zeros written
//!   ahead give a small append); the arrival thread writes each record, one thread fsyncs whatever was written,
//!   one fsync at a time. Group commit as the disk allows it, with nothing of rill's.
//! - `log`: rill's storage, durability `never`, default write mode: the arrival thread calls `Log::append` (as the
//!   broker's writer does a small produce's), and one thread calls `Log::sync_through` for whatever was appended,
//!   one call at a time (as the broker's fsync task for durable acks, `partition/durable_syncs.rs`).
//! - `log-always`: durability `always`, `Log::append` from waiter threads (appends and fsyncs under the log's own
//!   group commit; arrivals during an fsync queue behind it).
//!
//! The difference between `file` and `log` is storage's; the difference between `log` and `rill bench e2e
//! --acks durable` is the network, the broker and the producer (docs/benchmarks.md, "The durable floor").
//!
//! `cargo build --release -p rill-benches --example durable_floor`, then
//! `target/release/examples/durable_floor DIR file|log|log-always [RATE=10000] [SECONDS=3]`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rill_protocol::{Record, RecordBatchBuilder};
use rill_storage::latency::LATENCY_BUCKET_BOUNDS_US;
use rill_storage::{Durability, Log, LogConfig};

/// Threads appending in `log-always` mode: enough that a record never waits for a free one.
const WAITERS: usize = 16;
/// Arrivals in the first tenth of a second are left out of the figures: the first fills and wake-ups.
const WARM_UP: Duration = Duration::from_millis(100);
const RECORD_BYTES: usize = 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(mode)) = (args.first(), args.get(1)) else {
        eprintln!("usage: durable_floor DIR file|log|log-always [RATE=10000] [SECONDS=3]");
        std::process::exit(2);
    };
    let rate: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    let arrivals = (rate * seconds) as usize;
    let gap = Duration::from_nanos(1_000_000_000 / rate);
    let dir = Path::new(dir).join(format!("durable-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the data directory");
    let done: Arc<Vec<Mutex<Option<Instant>>>> = Arc::new((0..arrivals).map(|_| Mutex::new(None)).collect());
    let start = Instant::now() + Duration::from_millis(20);
    let schedule = |i: usize| start + gap * i as u32;
    let fsyncs = match mode.as_str() {
        "file" => run_file(&dir, arrivals, &schedule, &done),
        "log" | "log-always" => run_log(&dir, mode == "log-always", arrivals, &schedule, &done),
        _ => {
            eprintln!("unknown mode {mode}: file, log or log-always");
            std::process::exit(2);
        }
    };
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    for (i, finished) in done.iter().enumerate() {
        if schedule(i) < start + WARM_UP {
            continue;
        }
        let finished = finished.lock().expect("done").expect("every record answered");
        latency.record(finished.duration_since(schedule(i)).as_micros() as u64).expect("record");
    }
    println!(
        "{mode:10} rate {rate}/s, {} records: p50 {} p90 {} p99 {} p99.9 {} max {} us",
        latency.len(),
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.9),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max()
    );
    println!("{:10} {fsyncs}", "");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a run's fsyncs took. A record arriving during a long fsync waits for it and then for its own: the share
/// of the run spent in fsyncs over 1 ms is about the share of records answered after more than 1 ms, whatever
/// the software does.
fn describe_fsyncs(mut fsyncs: Vec<Duration>, run: Duration) -> String {
    fsyncs.sort_unstable();
    let at = |q: f64| fsyncs.get(((fsyncs.len() as f64 * q) as usize).min(fsyncs.len().saturating_sub(1)));
    let us = |d: Option<&Duration>| d.map_or(0, |d| d.as_micros());
    let slow: Vec<&Duration> = fsyncs.iter().filter(|d| **d > Duration::from_millis(1)).collect();
    let slow_total: Duration = slow.iter().copied().sum();
    format!(
        "{} fsyncs: p50 {} p99 {} max {} us; {} over 1 ms, {:.1} ms in all ({:.2}% of the run)",
        fsyncs.len(),
        us(at(0.5)),
        us(at(0.99)),
        us(fsyncs.last()),
        slow.len(),
        slow_total.as_secs_f64() * 1e3,
        slow_total.as_secs_f64() * 100.0 / run.as_secs_f64()
    )
}

fn wait_for(at: Instant) {
    while Instant::now() < at {
        std::hint::spin_loop();
    }
}

/// Each returns what its fsyncs took.
fn run_file(
    dir: &Path,
    arrivals: usize,
    schedule: &dyn Fn(usize) -> Instant,
    done: &Arc<Vec<Mutex<Option<Instant>>>>,
) -> String {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("floor.data"))
        .expect("open");
    let zeros = vec![0u8; 1 << 20];
    let span = (arrivals * (RECORD_BYTES + 64)) as u64 + (1 << 20);
    for at in (0..span).step_by(zeros.len()) {
        file.write_at(&zeros, at).expect("write zeros");
    }
    file.sync_all().expect("fsync the zeros");
    let record = vec![b'x'; RECORD_BYTES + 64];
    group_commit(
        arrivals,
        schedule,
        done,
        |i| file.write_all_at(&record, (i * record.len()) as u64).expect("write"),
        |_| file.sync_data().expect("fdatasync"),
    )
}

/// Group commit from two threads: this one writes each record at its arrival (`write`), another makes durable
/// everything written so far (`sync`, given the highest record written), one call at a time, and answers those
/// records once it returns. Returns what the `sync` calls took.
fn group_commit(
    arrivals: usize,
    schedule: &dyn Fn(usize) -> Instant,
    done: &Arc<Vec<Mutex<Option<Instant>>>>,
    mut write: impl FnMut(usize),
    sync: impl Fn(usize) + Send + Sync,
) -> String {
    // (highest record written, arrivals over)
    let written = (Mutex::new((None::<usize>, false)), Condvar::new());
    let began = Instant::now();
    let fsyncs = std::thread::scope(|scope| {
        let syncer = scope.spawn(|| {
            let mut synced: Option<usize> = None;
            let mut fsyncs = Vec::new();
            loop {
                let upto = {
                    let mut state = written.0.lock().expect("state");
                    while state.0 == synced && !state.1 {
                        state = written.1.wait(state).expect("state");
                    }
                    if state.0 == synced {
                        return fsyncs;
                    }
                    state.0.expect("a record written")
                };
                let started = Instant::now();
                sync(upto);
                let now = Instant::now();
                fsyncs.push(now - started);
                for slot in &done[synced.map_or(0, |s| s + 1)..=upto] {
                    *slot.lock().expect("done") = Some(now);
                }
                synced = Some(upto);
            }
        });
        for i in 0..arrivals {
            wait_for(schedule(i));
            write(i);
            written.0.lock().expect("state").0 = Some(i);
            written.1.notify_one();
        }
        written.0.lock().expect("state").1 = true;
        written.1.notify_one();
        syncer.join().expect("syncer")
    });
    describe_fsyncs(fsyncs, began.elapsed())
}

fn run_log(
    dir: &Path,
    is_always: bool,
    arrivals: usize,
    schedule: &dyn Fn(usize) -> Instant,
    done: &Arc<Vec<Mutex<Option<Instant>>>>,
) -> String {
    let durability = if is_always { Durability::Always } else { Durability::Never };
    let log =
        Arc::new(Log::open(dir, LogConfig { durability, retention_ms: None, ..LogConfig::default() }).expect("open"));
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record { key: None, value: Some(vec![b'x'; RECORD_BYTES]), headers: vec![], timestamp_ms: 0 });
    let batch = Arc::new(builder.build());
    if !is_always {
        // One batch of one record each, in an empty log: record `i` ends at offset `i + 1`.
        let timed = group_commit(
            arrivals,
            schedule,
            done,
            |_| {
                log.append(&batch).expect("append");
            },
            |upto| log.sync_through(upto as i64 + 1).expect("sync_through"),
        );
        log.close().expect("close");
        return format!("sync_through calls, each an fsync: {timed}");
    }
    let (jobs, queue) = mpsc::channel::<Option<usize>>();
    let queue = Arc::new(Mutex::new(queue));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (log, queue, done, batch) = (log.clone(), queue.clone(), done.clone(), batch.clone());
            std::thread::spawn(move || loop {
                let job = queue.lock().expect("queue").recv().expect("jobs");
                let Some(i) = job else { return };
                log.append(&batch).expect("append");
                *done[i].lock().expect("done") = Some(Instant::now());
            })
        })
        .collect();
    for i in 0..arrivals {
        wait_for(schedule(i));
        jobs.send(Some(i)).expect("waiters");
    }
    for _ in 0..WAITERS {
        jobs.send(None).expect("waiters");
    }
    for waiter in waiters {
        waiter.join().expect("waiter");
    }
    // Storage counts its fsyncs in buckets (for the broker's metrics), not one by one.
    let fsyncs = log.fsync_latency().snapshot();
    let over_1ms: u64 = LATENCY_BUCKET_BOUNDS_US
        .iter()
        .zip(&fsyncs.buckets)
        .filter(|(bound, _)| **bound > 1_000)
        .map(|(_, count)| count)
        .sum::<u64>()
        + fsyncs.buckets[LATENCY_BUCKET_BOUNDS_US.len()];
    log.close().expect("close");
    format!("{} fsyncs, {over_1ms} over 1 ms", fsyncs.count)
}
