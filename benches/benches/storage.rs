//! Storage micro-benchmarks: append throughput (durability `never`, buffered and direct), group commit under
//! `always`, sequential replay (from the page cache, and with direct reads), and a compaction pass. Run with `benches/storage.sh`, which also measures the disk's own
//! limits in the same session; figures go in `docs/benchmarks.md`.
//!
//! Data goes under `$RILL_BENCH_DIR` (default `target/bench-data`), on the disk under test.

use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rill_protocol::{Record, RecordBatchBuilder};
use rill_storage::{Durability, Log, LogConfig, WriteMode};

fn bench_dir(name: &str) -> tempfile::TempDir {
    let root = std::env::var_os("RILL_BENCH_DIR").map_or_else(|| PathBuf::from("../target/bench-data"), PathBuf::from);
    std::fs::create_dir_all(&root).expect("bench data directory");
    tempfile::Builder::new().prefix(name).tempdir_in(root).expect("bench temp dir")
}

/// `count` records of `value_bytes` each, keyless: the shape of the workloads.
fn batch(count: usize, value_bytes: usize) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::with_capacity(count * (value_bytes + 16) + 64);
    let value = vec![b'x'; value_bytes];
    for i in 0..count {
        builder.push(&Record { key: None, value: Some(value.clone()), headers: vec![], timestamp_ms: i as i64 });
    }
    builder.build()
}

fn config(durability: Durability) -> LogConfig {
    LogConfig { durability, retention_ms: None, ..LogConfig::default() }
}

/// 1 KiB records in batches of 100, no fsync: through the page cache, and with `O_DIRECT`.
fn append_never(c: &mut Criterion) {
    let batch = batch(100, 1024);
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.measurement_time(Duration::from_secs(8));
    for (name, write_mode) in
        [("1KiB_x100_never_buffered", WriteMode::Buffered), ("1KiB_x100_never_direct", WriteMode::Direct)]
    {
        let dir = bench_dir("append-never");
        let log = Log::open(dir.path(), LogConfig { write_mode, ..config(Durability::Never) }).expect("open");
        group.bench_function(name, |b| b.iter(|| log.append(&batch).expect("append")));
        // Keep the disk from filling across repeated runs.
        drop(log);
    }
    group.finish();
}

/// `writers` threads each append `per_writer` batches of 10 × 1 KiB with `Durability::Always`.
/// `serialize_fsync` holds one lock across append and fsync: what a broker without group commit does.
fn durable_run(writers: usize, per_writer: usize, serialize_fsync: bool) -> Duration {
    let dir = bench_dir("append-always");
    let durability = if serialize_fsync { Durability::Never } else { Durability::Always };
    let log = Arc::new(Log::open(dir.path(), config(durability)).expect("open"));
    let one_at_a_time = Arc::new(Mutex::new(()));
    let batch = Arc::new(batch(10, 1024));
    let start = Arc::new(Barrier::new(writers + 1));
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (log, batch, start, lock) = (log.clone(), batch.clone(), start.clone(), one_at_a_time.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..per_writer {
                    if serialize_fsync {
                        let _guard = lock.lock().expect("bench lock");
                        let info = log.append(&batch).expect("append");
                        log.sync_through(info.last_offset + 1).expect("fsync");
                    } else {
                        log.append(&batch).expect("append");
                    }
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for t in threads {
        t.join().expect("writer");
    }
    began.elapsed()
}

fn append_always(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_always");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, writers, serialize) in
        [("1_writer", 1, false), ("8_writers_fsync_per_append", 8, true), ("8_writers_group_commit", 8, false)]
    {
        let per_writer = 50;
        group.throughput(Throughput::Elements((writers * per_writer) as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| durable_run(writers, per_writer, serialize)).sum())
        });
    }
    group.finish();
}

/// Replays 512 MiB of log with 1 MiB reads: written through the page cache and read from it, and written and
/// read with `O_DIRECT` (from the device, whatever the page cache holds).
fn read_replay(c: &mut Criterion) {
    let batch = batch(100, 1024);
    let mut group = c.benchmark_group("read");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, write_mode) in
        [("replay_cached_1MiB_reads", WriteMode::Buffered), ("replay_direct_1MiB_reads", WriteMode::Direct)]
    {
        let dir = bench_dir("read");
        let log = Log::open(dir.path(), LogConfig { write_mode, ..config(Durability::Never) }).expect("open");
        let target: u64 = 512 << 20;
        while log.size_bytes() < target {
            log.append(&batch).expect("append");
        }
        let end = log.log_end_offset();
        let replay = || {
            let mut offset = 0;
            let mut bytes = 0u64;
            while offset < end {
                let read = log.read(offset, 1 << 20).expect("read");
                bytes += read.batches.len() as u64;
                let last = rill_protocol::BatchIter::new(read.batches).last().expect("a batch").expect("whole");
                offset = last.header.next_offset();
            }
            bytes
        };
        // The first replay warms the page cache (buffered) and sizes the throughput.
        group.throughput(Throughput::Bytes(replay()));
        group.bench_function(name, |b| b.iter(replay));
        drop(log);
    }
    group.finish();
}

/// One compaction pass (`Log::compact`) over 64 MiB of sealed 8 MiB segments of keyed records, 10,000 keys each
/// updated many times, in batches of 100: 1 KiB records, and 100-byte ones (per-record work). Each sample writes a
/// fresh log (not timed) and times the pass alone. Throughput: the bytes the pass read.
fn compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let settings = rill_storage::CompactionSettings {
        min_cleanable_dirty_permille: 0,
        min_compaction_lag_ms: 0,
        delete_retention_ms: 86_400_000,
        max_compaction_lag_ms: None,
        key_map_bytes: 64 << 20,
    };
    for (name, value_bytes) in [("pass_64MiB_1KiB_records", 1024), ("pass_64MiB_100B_records", 100)] {
        let keyed = |round: usize| {
            let mut builder = RecordBatchBuilder::with_capacity(100 * (value_bytes + 32) + 64);
            let value = vec![b'x'; value_bytes];
            for i in 0..100 {
                let key = format!("key-{:05}", (round * 100 + i) * 7919 % 10_000);
                let record = Record {
                    key: Some(key.into_bytes()),
                    value: Some(value.clone()),
                    headers: vec![],
                    timestamp_ms: 0,
                };
                builder.push(&record);
            }
            builder.build()
        };
        let log_config =
            LogConfig { segment_bytes: 8 << 20, write_mode: WriteMode::Buffered, ..config(Durability::Never) };
        let sealed_bytes: u64 = 64 << 20;
        group.throughput(Throughput::Bytes(sealed_bytes));
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = bench_dir("compaction");
                    let log = Log::open(dir.path(), log_config).expect("open");
                    let mut round = 0;
                    while log.size_bytes() < sealed_bytes + (8 << 20) {
                        log.append(&keyed(round)).expect("append");
                        round += 1;
                    }
                    let started = Instant::now();
                    let outcome = log.compact(&settings).expect("compact").expect("a pass was due");
                    total += started.elapsed();
                    assert!(outcome.records_removed > 0);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append_never, append_always, read_replay, compaction);
criterion_main!(benches);
