//! Read-ahead seen through a `Log` whose data the tail cache does not hold (it was reopened): what sequential
//! reads get is what the segments hold, a seek drops the window, truncation and retention under reads in flight
//! fail cleanly or serve the new bytes, and the memory stays within its share of the cache.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};

use crate::config::{Durability, LogConfig, SystemClock, WriteMode};
use crate::segment_files::SegmentFileCache;
use crate::tail_cache::{TailCache, TailCacheStats};
use crate::{Log, StorageError};

/// Records of this many bytes: four make a batch of a quarter MiB, so a 1 MiB chunk holds three.
const VALUE_BYTES: usize = 64 << 10;
const RECORDS_PER_BATCH: usize = 4;
/// Read-ahead may hold 32 MiB of this: more than one window's chunks (each at most a 4 MiB segment).
const CACHE_BYTES: u64 = 256 << 20;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 20,
        max_batch_bytes: 1 << 20,
        durability: Durability::Never,
        write_mode: WriteMode::Direct,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, cache: Option<Arc<TailCache>>) -> Log {
    Log::open_cached(dir, config, Arc::new(SystemClock), Arc::new(SegmentFileCache::new(8)), cache).unwrap()
}

/// A batch whose records' values all repeat the byte `tag`, their first eight bytes the record's number.
fn batch(tag: u8) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::default();
    for i in 0..RECORDS_PER_BATCH {
        let mut value = vec![tag; VALUE_BYTES];
        value[..8].copy_from_slice(&(i as u64).to_be_bytes());
        builder.push(&Record { key: None, value: Some(value), headers: vec![], timestamp_ms: 1 });
    }
    builder.build()
}

/// A log of `batches` batches in `dir`, written and closed, then opened again with a new cache: none of its
/// bytes are in memory.
fn written_log(dir: &Path, batches: u8, config: LogConfig) -> (Log, Arc<TailCache>) {
    let log = open(dir, config, TailCache::new(CACHE_BYTES));
    for tag in 0..batches {
        log.append(&batch(tag)).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let cache = TailCache::new(CACHE_BYTES).unwrap();
    (open(dir, config, Some(Arc::clone(&cache))), cache)
}

/// Reads from `offset` with `max_bytes` a read; the tags of the batches answered and the offset after them.
fn read_tags(log: &Log, offset: i64, max_bytes: usize) -> Result<(Vec<u8>, i64), StorageError> {
    let read = log.read(offset, max_bytes)?;
    let mut tags = Vec::new();
    let mut next = offset;
    for batch in BatchIter::new(read.batches) {
        let batch = batch.expect("whole batches");
        for record in batch.records().unwrap() {
            let value = record.unwrap().value.unwrap();
            assert!(value[8..].iter().all(|b| *b == value[8]), "a record's bytes are all its batch's");
        }
        let value = batch.records().unwrap().next().unwrap().unwrap().value.unwrap();
        tags.push(value[8]);
        next = batch.header.next_offset();
    }
    Ok((tags, next))
}

/// Polls `stats` until `done` holds, for at most 10 s.
fn wait_for(cache: &TailCache, done: impl Fn(&TailCacheStats) -> bool) -> TailCacheStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = cache.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sequential_reads_are_answered_from_chunks_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cache) = written_log(dir.path(), 40, config());
    let mut offset = 0;
    let mut tags = Vec::new();
    let mut reads = 0;
    while offset < log.high_watermark() {
        let (read, next) = read_tags(&log, offset, 1 << 20).unwrap();
        tags.extend(read);
        offset = next;
        reads += 1;
    }
    assert_eq!(tags, (0..40).collect::<Vec<u8>>(), "every batch once, in order");
    let stats = cache.stats();
    assert_eq!(log.tail_cache_stats().unwrap().hits, 0, "none of it was in the tail cache");
    assert!(stats.read_ahead_reads > 0, "chunks were read ahead: {stats:?}");
    // The first read of each segment (and the one after it) reads the device itself; the rest are answered from
    // chunks. Four segments of 4 MiB.
    assert!(stats.read_ahead_hits + 8 >= reads, "{} of {reads} reads were hits", stats.read_ahead_hits);
    assert!(stats.read_ahead_bytes <= CACHE_BYTES / 8 && stats.used_bytes <= stats.limit_bytes);
}

#[test]
fn a_read_elsewhere_drops_the_window_and_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (log, cache) = written_log(dir.path(), 12, config());
    let (_, second) = read_tags(&log, 0, 1 << 20).unwrap();
    let (_, third) = read_tags(&log, second, 1 << 20).unwrap();
    assert!(cache.stats().read_ahead_bytes > 0, "a sequential read issued chunks");
    // Back to the start: not where the last read ended, nor in a chunk.
    let (tags, _) = read_tags(&log, 0, 1 << 20).unwrap();
    assert_eq!(tags[0], 0);
    let stats = wait_for(&cache, |s| s.read_ahead_bytes == 0);
    assert_eq!(stats.read_ahead_bytes, 0, "the dropped chunks are uncounted once their reads end");
    // And reading on from there is sequential again, with the right bytes.
    let (tags, _) = read_tags(&log, third, 1 << 20).unwrap();
    assert_eq!(tags[0], third as u8 / RECORDS_PER_BATCH as u8);
}

#[test]
fn retention_under_reads_in_flight_fails_cleanly_and_frees_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: Some(1), ..config() };
    let (log, cache) = written_log(dir.path(), 40, config);
    let (_, next) = read_tags(&log, 0, 1 << 20).unwrap();
    let (_, next) = read_tags(&log, next, 1 << 20).unwrap();
    assert!(cache.stats().read_ahead_bytes > 0);
    assert!(log.enforce_retention().unwrap() > 0, "every sealed segment goes");
    match log.read(next, 1 << 20) {
        Err(StorageError::OffsetOutOfRange { offset, .. }) => assert_eq!(offset, next),
        other => panic!("a read of a deleted segment is out of range, got {other:?}"),
    }
    let stats = wait_for(&cache, |s| s.read_ahead_bytes == 0);
    assert_eq!(stats.read_ahead_bytes, 0, "the deleted segments' chunks are freed");
    let (tags, _) = read_tags(&log, log.log_start_offset(), 1 << 20).unwrap();
    assert!(!tags.is_empty(), "the log reads on from its new start");
}

#[test]
fn truncation_under_reads_in_flight_serves_the_new_batches() {
    let dir = tempfile::tempdir().unwrap();
    // One segment: the reads ahead are of the active segment, which the truncation cuts.
    let config = LogConfig { segment_bytes: 64 << 20, ..config() };
    let (log, cache) = written_log(dir.path(), 16, config);
    let (_, next) = read_tags(&log, 0, 1 << 20).unwrap();
    let (_, next) = read_tags(&log, next, 1 << 20).unwrap();
    assert!(cache.stats().read_ahead_bytes > 0);
    log.truncate_to(next).unwrap();
    for tag in 100..104 {
        log.append(&batch(tag)).unwrap();
    }
    let (tags, _) = read_tags(&log, next, 1 << 20).unwrap();
    assert_eq!(tags[0], 100, "the batches appended after the truncation, not the chunks read before it");
    let mut offset = next;
    let mut all = Vec::new();
    while offset < log.high_watermark() {
        let (tags, after) = read_tags(&log, offset, 1 << 20).unwrap();
        all.extend(tags);
        offset = after;
    }
    assert_eq!(all, vec![100, 101, 102, 103]);
}

#[test]
fn many_sequential_readers_stay_within_the_read_ahead_share() {
    let dirs: Vec<_> = (0..12).map(|_| tempfile::tempdir().unwrap()).collect();
    // Read-ahead's share, 16 MiB, is less than the twelve windows want (up to 4 chunks of up to 4 MiB each).
    let cache = TailCache::new(128 << 20).unwrap();
    let logs: Vec<Log> = dirs
        .iter()
        .map(|dir| {
            let (log, _) = written_log(dir.path(), 16, config());
            log.close().unwrap();
            drop(log);
            open(dir.path(), config(), Some(Arc::clone(&cache)))
        })
        .collect();
    let mut offsets = vec![0i64; logs.len()];
    let mut peak = 0;
    for _ in 0..6 {
        for (log, offset) in logs.iter().zip(&mut offsets) {
            let (_, next) = read_tags(log, *offset, 1 << 20).unwrap();
            *offset = next;
            let stats = cache.stats();
            peak = peak.max(stats.read_ahead_bytes);
            assert!(stats.read_ahead_bytes <= (128 << 20) / 8, "{stats:?}");
            assert!(stats.used_bytes <= stats.limit_bytes, "{stats:?}");
        }
    }
    assert!(peak > 0, "read-ahead ran");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever the reader does (reads on, jumps, asks for little or much), each read answers what a log without
    /// read-ahead (written through the page cache, read without a cache) answers, or the first of those batches (at
    /// least one): a read a chunk answers stops at the chunk's end.
    #[test]
    fn any_sequence_of_reads_answers_batches_a_log_without_read_ahead_answers(
        steps in prop::collection::vec((any::<bool>(), 0u8..24, 1usize..3_000_000), 1..24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (log, _cache) = written_log(dir.path(), 24, config());
        let plain_dir = tempfile::tempdir().unwrap();
        let plain = open(plain_dir.path(), LogConfig { write_mode: WriteMode::Buffered, ..config() }, None);
        for tag in 0..24 {
            plain.append(&batch(tag)).unwrap();
        }
        let mut offset = 0;
        for (reads_on, jump_to, max_bytes) in steps {
            if !reads_on || offset >= log.high_watermark() {
                offset = i64::from(jump_to) * RECORDS_PER_BATCH as i64;
            }
            let expected = plain.read(offset, max_bytes).unwrap().batches;
            let read = log.read(offset, max_bytes).unwrap().batches;
            prop_assert_eq!(read.is_empty(), expected.is_empty());
            prop_assert!(expected.starts_with(&read), "{} bytes, not a prefix of the {} expected", read.len(), expected.len());
            offset = BatchIter::new(read).last().map_or(offset, |b| b.unwrap().header.next_offset());
        }
    }
}
