//! The tail cache seen through a `Log`: reads it answers are the bytes the segments hold, every change that
//! drops bytes from a log drops them from the cache, and a replicated log caches only while it leads.

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
    // 128 KiB: small appends are copied into 8 KiB chunks (a sixteenth of the limit), a few dozen to a chunk, and
    // 2000 of them fill it several times over.
    let cache = TailCache::new(2 * (64 << 10)).unwrap();
    let log = open(dir.path(), direct(), Some(Arc::clone(&cache)));
    let appends = 2000;
    for tag in 1..=appends {
        log.append(&batch(tag, 3, 1)).unwrap();
    }
    let last = 3 * (appends - 1) as i64;
    let tail = log.read_from_memory(last, 1 << 20).expect("the last batch is in memory");
    assert_eq!(values(tail.batches), values(log.read(last, 1 << 20).unwrap().batches));
    assert!(log.read_from_memory(0, 1 << 20).is_none(), "the first batch was evicted");
    let from_disk = log.read(0, 1).unwrap().batches;
    assert_eq!(values(from_disk)[0], b"batch 1 record 0");
    let stats = log.tail_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (2, 1));
    let cache_stats = cache.stats();
    assert!(cache_stats.evictions > 0 && cache_stats.used_bytes <= cache_stats.limit_bytes);
    assert!(log.read_from_memory(last + 3, 1 << 20).unwrap().batches.is_empty(), "at the high watermark");
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
    let before = cache.stats();
    assert!(log.enforce_retention().unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 0);
    // The entries go; their chunk, which the newest still lie in, stays counted (it is still pinned).
    let after = cache.stats();
    assert!(after.entries < before.entries && after.used_bytes <= before.used_bytes);
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

/// Every batch of `log` from its start to its end, concatenated, read `max_bytes` at a time as a follower fetches.
fn bytes_to_end(log: &Log, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read_to_end(offset, max_bytes).expect("read within bounds");
        let read = batches(read.batches.clone()).last().map(|b| b.header.next_offset()).map(|next| (next, read));
        let (next, read) =
            read.unwrap_or_else(|| panic!("no batch at {offset} below the end {}", log.log_end_offset()));
        out.extend_from_slice(&read.batches);
        offset = next;
    }
    out
}

/// A leader's log without a cache and a replica of it with one, the replica as a follower from the start.
fn leader_and_follower(cache: &Arc<TailCache>) -> (tempfile::TempDir, Log, Log) {
    let dir = tempfile::tempdir().unwrap();
    let leader = open(&dir.path().join("leader"), direct(), None);
    let follower = open(&dir.path().join("follower"), direct(), Some(Arc::clone(cache)));
    follower.stop_caching_appends();
    (dir, leader, follower)
}

/// What `follower` lacks of `leader`, appended as the fetcher does.
fn catch_up(leader: &Log, follower: &Log) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let read = leader.read_to_end(follower.log_end_offset(), 700).unwrap();
        follower.append_replica(read.batches).unwrap();
    }
}

#[test]
fn a_followers_appends_stay_out_of_the_cache_and_read_from_the_segments() {
    let cache = TailCache::new(1 << 20).unwrap();
    let (_dir, leader, follower) = leader_and_follower(&cache);
    assert!(!follower.is_caching_appends());
    for tag in 1..=6 {
        leader.append(&batch(tag, 2 + tag as usize % 3, 1)).unwrap();
    }
    catch_up(&leader, &follower);
    assert_eq!(cache.stats().entries, 0);
    assert_eq!(cache.stats().used_bytes, 0);
    assert!(follower.read_from_memory(0, 1 << 20).is_none());
    assert!(follower.read_to_end_from_memory(0, 1 << 20).is_none());
    assert_eq!(bytes_to_end(&follower, 1 << 20), bytes_to_end(&leader, 1 << 20));
}

#[test]
fn becoming_a_follower_drops_what_the_cache_holds_of_the_log() {
    let cache = TailCache::new(1 << 20).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log"), direct(), Some(Arc::clone(&cache)));
    let other = open(&dir.path().join("other"), direct(), Some(Arc::clone(&cache)));
    assert!(log.is_caching_appends(), "a log caches from its open, as on one node");
    for tag in 1..=3 {
        log.append(&batch(tag, 2, 1)).unwrap();
        other.append(&batch(tag, 2, 1)).unwrap();
    }
    assert_eq!(cache.stats().entries, 6);
    log.stop_caching_appends();
    assert_eq!(cache.stats().entries, 3, "only the other log's entries stay");
    assert!(log.read_from_memory(0, 1 << 20).is_none());
    assert!(other.read_from_memory(0, 1 << 20).is_some());
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn a_new_leader_caches_from_its_log_end_and_reads_across_that_point_are_whole() {
    let cache = TailCache::new(1 << 20).unwrap();
    let (dir, leader, follower) = leader_and_follower(&cache);
    for tag in 1..=5 {
        leader.append(&batch(tag, 3, 1)).unwrap();
    }
    catch_up(&leader, &follower);
    // The leader fails; the follower takes over at its log end.
    let boundary = follower.log_end_offset();
    follower.begin_leader_epoch(1).unwrap();
    follower.start_caching_appends();
    for tag in 6..=9 {
        follower.append(&batch(tag, 2, 1)).unwrap();
    }
    assert_eq!(cache.stats().entries, 4, "only the appends after the leadership are cached");
    assert!(follower.read_from_memory(boundary - 1, 1 << 20).is_none(), "below the boundary: the segments");
    let from_boundary = follower.read_from_memory(boundary, 1 << 20).expect("from the boundary: memory");
    assert_eq!(values(from_boundary.batches.clone()).len(), 8, "the four cached appends, joined");
    // Every read, wherever it starts and whatever its size, gives the bytes the segments hold from there.
    let plain = open(&dir.path().join("plain"), direct(), None);
    catch_up(&follower, &plain);
    for offset in 0..follower.log_end_offset() {
        for max_bytes in [1, 300, 1 << 20] {
            let (got, want) = (follower.read(offset, max_bytes).unwrap(), plain.read(offset, max_bytes).unwrap());
            assert!(!got.batches.is_empty());
            assert!(
                want.batches.starts_with(&got.batches) || got.batches.starts_with(&want.batches),
                "offset {offset}, {max_bytes} bytes"
            );
        }
    }
    assert_eq!(bytes_to_end(&follower, 1 << 20), bytes_to_end(&plain, 1 << 20));
    assert_eq!(bytes_to_end(&follower, 300), bytes_to_end(&plain, 300));
}

#[test]
fn a_leader_that_steps_down_and_truncates_never_serves_the_dropped_batches() {
    let cache = TailCache::new(1 << 20).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old_leader = open(&dir.path().join("old"), direct(), Some(Arc::clone(&cache)));
    let new_leader = open(&dir.path().join("new"), direct(), None);
    for tag in 1..=2 {
        old_leader.append(&batch(tag, 2, 1)).unwrap();
    }
    catch_up(&old_leader, &new_leader);
    // Appended by the old leader only: lost when the other replica takes over at epoch 1.
    old_leader.append(&batch(3, 2, 1)).unwrap();
    new_leader.begin_leader_epoch(1).unwrap();
    new_leader.append(&batch(4, 3, 1)).unwrap();
    old_leader.stop_caching_appends();
    assert_eq!(cache.stats().entries, 0);
    let (_, end) = new_leader.epoch_end_offset(0).unwrap();
    old_leader.truncate_to(end).unwrap();
    catch_up(&new_leader, &old_leader);
    assert_eq!(cache.stats().entries, 0);
    // And it leads again: later appends cached, every read the new leader's bytes.
    old_leader.begin_leader_epoch(2).unwrap();
    old_leader.start_caching_appends();
    old_leader.append(&batch(5, 1, 1)).unwrap();
    new_leader.append_replica(old_leader.read_to_end(new_leader.log_end_offset(), 1 << 20).unwrap().batches).unwrap();
    assert_eq!(cache.stats().entries, 1);
    let got: Vec<Vec<u8>> = read_all(&old_leader, 0).into_iter().map(|(_, value)| value).collect();
    assert!(!got.contains(&b"batch 3 record 0".to_vec()));
    assert_eq!(got.len(), 2 + 2 + 3 + 1);
    assert_eq!(bytes_to_end(&old_leader, 1 << 20), bytes_to_end(&new_leader, 1 << 20));
    assert_eq!(bytes_to_end(&old_leader, 200), bytes_to_end(&new_leader, 200));
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        batches: Vec<usize>,
    },
    /// The cached log becomes a leader (caches its appends) or a follower (does not).
    Lead {
        is_leader: bool,
    },
    Read {
        at: prop::sample::Index,
        max_bytes: usize,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(1usize..6, 1..4).prop_map(|batches| Op::Append { batches }),
        4 => (any::<prop::sample::Index>(), 1usize..1500).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<prop::sample::Index>().prop_map(|at| Op::Truncate { at }),
        1 => Just(Op::Retention),
        1 => any::<bool>().prop_map(|is_leader| Op::Lead { is_leader }),
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
        let cached = open(cached_dir.path(), config, TailCache::new(limit));
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
                Op::Lead { is_leader: true } => cached.start_caching_appends(),
                Op::Lead { is_leader: false } => cached.stop_caching_appends(),
            }
            prop_assert_eq!(cached.log_end_offset(), plain.log_end_offset());
        }
        let start = plain.log_start_offset();
        prop_assert_eq!(read_all(&cached, start), read_all(&plain, start));
    }
}
