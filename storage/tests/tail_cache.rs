//! The tail cache seen through a `Log`: reads it answers are the bytes the segments hold, and every change that
//! drops bytes from a log drops them from the cache.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{batch, batches, read_all, small_config};
use proptest::prelude::*;
use rill_storage::{Log, LogConfig, SegmentFileCache, StorageError, SystemClock, TailCache, WriteMode};

fn open(dir: &std::path::Path, config: LogConfig, cache: Option<Arc<TailCache>>) -> Log {
    Log::open_cached(dir, config, Arc::new(SystemClock), Arc::new(SegmentFileCache::new(8)), cache).unwrap()
}

fn direct() -> LogConfig {
    LogConfig { write_mode: WriteMode::Direct, ..small_config() }
}

fn values(bytes: Bytes) -> Vec<Vec<u8>> {
    batches(bytes)
        .iter()
        .flat_map(|b| b.records().unwrap().map(|r| r.unwrap().value.unwrap().to_vec()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn a_read_at_the_tail_is_a_hit_and_an_evicted_one_a_miss_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two appends: each counts its buffer, 64 KiB for a small one.
    let cache = TailCache::new(2 * (64 << 10)).unwrap();
    let log = open(dir.path(), direct(), Some(Arc::clone(&cache)));
    for tag in 1..=4 {
        log.append(&batch(tag, 3, 1)).unwrap();
    }
    let tail = log.read_from_memory(9, 1 << 20).expect("the last batch is in memory");
    assert_eq!(values(tail.batches), values(log.read(9, 1 << 20).unwrap().batches));
    assert!(log.read_from_memory(0, 1 << 20).is_none(), "the first batch was evicted");
    let from_disk = log.read(0, 1).unwrap().batches;
    assert_eq!(values(from_disk)[0], b"batch 1 record 0");
    let stats = log.tail_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (2, 1));
    assert_eq!(cache.stats().evictions, 2);
    assert!(log.read_from_memory(12, 1 << 20).unwrap().batches.is_empty(), "at the high watermark");
}

#[test]
fn truncation_then_new_appends_never_serve_the_dropped_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TailCache::new(1 << 20).unwrap();
    let log = open(dir.path(), direct(), Some(Arc::clone(&cache)));
    for tag in 1..=3 {
        log.append(&batch(tag, 2, 1)).unwrap();
    }
    assert!(log.read_from_memory(2, 1 << 20).is_some());
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert!(log.read_from_memory(2, 1 << 20).unwrap().batches.is_empty(), "nothing past the new end");
    log.append(&batch(9, 2, 1)).unwrap();
    let read = log.read_from_memory(2, 1 << 20).expect("the new batch is cached");
    assert_eq!(values(read.batches), vec![b"batch 9 record 0".to_vec(), b"batch 9 record 1".to_vec()]);
    assert_eq!(read_all(&log, 0).len(), 4);
}

#[test]
fn retention_drops_cached_batches_below_the_new_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TailCache::new(1 << 20).unwrap();
    let config = LogConfig { retention_bytes: Some(1), ..direct() };
    let log = open(dir.path(), config, Some(Arc::clone(&cache)));
    for tag in 1..=40 {
        log.append(&batch(tag, 2, 1)).unwrap();
    }
    let used_before = cache.stats().used_bytes;
    assert!(log.enforce_retention().unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(cache.stats().used_bytes < used_before);
    assert!(log.read_from_memory(0, 1 << 20).is_none());
    assert!(matches!(log.read(0, 1 << 20), Err(StorageError::OffsetOutOfRange { .. })));
    assert!(log.read_from_memory(start, 1 << 20).is_some());
}

#[test]
fn a_deleted_and_recreated_log_reads_only_its_own_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let cache = TailCache::new(1 << 20).unwrap();
    let old = open(&path, direct(), Some(Arc::clone(&cache)));
    old.append(&batch(1, 2, 1)).unwrap();
    old.delete().unwrap();
    assert_eq!(cache.stats().used_bytes, 0);
    let new = open(&path, direct(), Some(Arc::clone(&cache)));
    new.append(&batch(2, 2, 1)).unwrap();
    let read = new.read_from_memory(0, 1 << 20).unwrap();
    assert_eq!(values(read.batches)[0], b"batch 2 record 0");
    drop(old);
    drop(new);
    assert_eq!(cache.stats().entries, 0);
}

#[derive(Debug, Clone)]
enum Op {
    Append { batches: Vec<usize> },
    Read { at: prop::sample::Index, max_bytes: usize },
    Truncate { at: prop::sample::Index },
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(1usize..6, 1..4).prop_map(|batches| Op::Append { batches }),
        4 => (any::<prop::sample::Index>(), 1usize..1500).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<prop::sample::Index>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Retention),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A log read through a (small, evicting) cache gives the bytes a read from its segments gives: the same
    /// error, or whole batches of which one read begins the other, byte for byte (each may stop at a boundary of
    /// its own, within `max_bytes`); and a scan of the whole log is the same either way.
    #[test]
    fn reads_through_the_cache_equal_reads_from_disk(
        ops in proptest::collection::vec(op(), 1..60),
        is_direct in any::<bool>(),
        limit in 200u64..3000,
    ) {
        let write_mode = if is_direct { WriteMode::Direct } else { WriteMode::Buffered };
        let config = LogConfig { write_mode, retention_bytes: Some(4096), ..small_config() };
        let (cached_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cached = open(cached_dir.path(), config.clone(), TailCache::new(limit));
        let plain = open(plain_dir.path(), config, None);
        let mut tag = 0;
        for op in ops {
            match op {
                Op::Append { batches } => {
                    let encoded: Vec<Vec<u8>> = batches.iter().map(|records| { tag += 1; batch(tag, *records, 1) }).collect();
                    let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                    let offsets = |log: &Log| -> Vec<(i64, i64)> {
                        log.append_batches_unsynced(&parts).unwrap().iter().map(|a| (a.base_offset, a.last_offset)).collect()
                    };
                    prop_assert_eq!(offsets(&cached), offsets(&plain));
                }
                Op::Read { at, max_bytes } => {
                    let offset = at.index(cached.log_end_offset() as usize + 2) as i64;
                    match (cached.read(offset, max_bytes), plain.read(offset, max_bytes)) {
                        (Ok(got), Ok(want)) => {
                            prop_assert_eq!(got.batches.is_empty(), want.batches.is_empty());
                            // Each stops at its own boundary (an entry's end, a segment's end): one begins the other.
                            prop_assert!(want.batches.starts_with(&got.batches) || got.batches.starts_with(&want.batches));
                            // Whole batches (`batches` refuses a torn one).
                            prop_assert_eq!(batches(got.batches.clone()).is_empty(), got.batches.is_empty());
                            if let Some(memory) = cached.read_from_memory(offset, max_bytes) {
                                prop_assert!(
                                    want.batches.starts_with(&memory.batches) || memory.batches.starts_with(&want.batches)
                                );
                            }
                        }
                        (Err(got), Err(want)) => prop_assert_eq!(got.to_string(), want.to_string()),
                        (got, want) => prop_assert!(false, "cached {got:?}, from disk {want:?}"),
                    }
                }
                Op::Truncate { at } => {
                    let offset = at.index(cached.log_end_offset() as usize + 1) as i64;
                    cached.truncate_to(offset).unwrap();
                    plain.truncate_to(offset).unwrap();
                }
                Op::Retention => {
                    prop_assert_eq!(cached.enforce_retention().unwrap(), plain.enforce_retention().unwrap());
                }
            }
            prop_assert_eq!(cached.log_end_offset(), plain.log_end_offset());
        }
        let start = plain.log_start_offset();
        prop_assert_eq!(read_all(&cached, start), read_all(&plain, start));
    }
}
