//! A follower's log built with `append_replica` from what the leader's `read_to_end` returns is the leader's
//! log byte for byte, epochs included; truncation to an epoch's end (KIP-101) and the held high watermark.

mod common;

use bytes::{Bytes, BytesMut};
use common::{batch, small_config};
use proptest::prelude::*;
use rill_storage::{HighWatermarkCheckpoint, Log, StorageError};

/// Every batch of `log` from its start to its end, concatenated.
fn all_bytes(log: &Log) -> Bytes {
    let mut out = BytesMut::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read_to_end(offset, 1 << 20).expect("read");
        assert!(!read.batches.is_empty(), "no batch at {offset} below the end {}", log.log_end_offset());
        offset = rill_protocol::BatchIter::new(read.batches.clone())
            .map(|b| b.expect("stored batches are whole").header.next_offset())
            .last()
            .expect("at least one batch");
        out.extend_from_slice(&read.batches);
    }
    out.freeze()
}

/// Copies what `follower` lacks from `leader`, `max_bytes` at a time, as the fetcher does.
fn catch_up(leader: &Log, follower: &Log, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let read = leader.read_to_end(follower.log_end_offset(), max_bytes).expect("leader read");
        follower.append_replica(read.batches).expect("replica append");
    }
}

#[derive(Debug, Clone)]
enum Step {
    Append { records: usize },
    NewEpoch,
    Replicate { max_bytes: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..8).prop_map(|records| Step::Append { records }),
        1 => Just(Step::NewEpoch),
        2 => (1usize..3000).prop_map(|max_bytes| Step::Replicate { max_bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Whatever the appends, epoch changes and fetch sizes, the replica ends byte-identical to the leader and
    /// answers the same epoch boundaries.
    #[test]
    fn a_replica_log_is_byte_identical_to_its_leader(steps in proptest::collection::vec(step(), 1..50)) {
        let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = Log::open(leader_dir.path(), small_config()).unwrap();
        let follower = Log::open(follower_dir.path(), small_config()).unwrap();
        let (mut epoch, mut tag) = (0, 0u64);
        for step in steps {
            match step {
                Step::Append { records } => {
                    tag += 1;
                    leader.append(&batch(tag, records, tag as i64)).unwrap();
                }
                Step::NewEpoch => {
                    epoch += 1;
                    leader.begin_leader_epoch(epoch).unwrap();
                }
                Step::Replicate { max_bytes } => catch_up(&leader, &follower, max_bytes),
            }
        }
        catch_up(&leader, &follower, 1 << 20);
        prop_assert_eq!(all_bytes(&follower), all_bytes(&leader));
        for asked in 0..=epoch {
            let (leader_answer, follower_answer) = (leader.epoch_end_offset(asked), follower.epoch_end_offset(asked));
            // The follower learns an epoch only from its first batch, so it may end an empty epoch's range
            // where the leader's next one starts; the offsets agree wherever batches exist.
            if let (Some((_, l)), Some((_, f))) = (leader_answer, follower_answer) {
                prop_assert_eq!(l, f);
            }
        }
        // Reopened, the replica still holds the same bytes (its checkpoint's epochs match its batches).
        drop(follower);
        let reopened = Log::open(follower_dir.path(), small_config()).unwrap();
        prop_assert_eq!(all_bytes(&reopened), all_bytes(&leader));
    }
}

#[test]
fn a_batch_that_does_not_start_at_the_log_end_is_refused() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Log::open(leader_dir.path(), small_config()).unwrap();
    let follower = Log::open(follower_dir.path(), small_config()).unwrap();
    leader.append(&batch(1, 3, 1)).unwrap();
    leader.append(&batch(2, 3, 2)).unwrap();
    let second = leader.read_to_end(3, 1 << 20).unwrap().batches;
    let err = follower.append_replica(second).expect_err("a gap");
    assert!(err.to_string().contains("starts at offset 3 but the log ends at 0"), "{err}");
    assert_eq!(follower.log_end_offset(), 0);
}

#[test]
fn a_follower_truncates_a_divergent_tail_to_the_end_of_its_last_epoch_on_the_new_leader() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old_leader = Log::open(old_dir.path(), small_config()).unwrap();
    let new_leader = Log::open(new_dir.path(), small_config()).unwrap();
    old_leader.append(&batch(1, 2, 1)).unwrap();
    catch_up(&old_leader, &new_leader, 1 << 20);
    // Appended on the old leader only, never replicated: not committed.
    old_leader.append(&batch(2, 2, 2)).unwrap();
    new_leader.begin_leader_epoch(1).unwrap();
    new_leader.append(&batch(3, 4, 3)).unwrap();
    let (epoch, end) = new_leader.epoch_end_offset(old_leader.leader_epoch()).expect("epoch 0 is known");
    assert_eq!((epoch, end), (0, 2));
    old_leader.truncate_to(end).unwrap();
    catch_up(&new_leader, &old_leader, 1 << 20);
    assert_eq!(all_bytes(&old_leader), all_bytes(&new_leader));
    assert_eq!(old_leader.leader_epoch(), 1);
}

/// A node elected leader begins its epoch at its log end; another node takes over before it appends anything
/// (one whose log holds a record more, of the older epoch). Following it, this node must take that record: the
/// epoch it began and never wrote goes with the truncation to its log end, or every batch of the older epoch
/// would look stale and the replica stop for good (the replication simulation's seed 378).
#[test]
fn an_epoch_begun_at_the_log_end_and_never_written_goes_with_a_truncation_there() {
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Log::open(old_dir.path(), small_config()).unwrap();
    let second = Log::open(new_dir.path(), small_config()).unwrap();
    first.begin_leader_epoch(1).unwrap();
    first.append(&batch(1, 2, 1)).unwrap();
    catch_up(&first, &second, 1 << 20);
    first.append(&batch(2, 1, 2)).unwrap();
    // `second` leads at epoch 2 without appending, then `first` leads again at epoch 3.
    second.begin_leader_epoch(2).unwrap();
    first.begin_leader_epoch(3).unwrap();
    first.append(&batch(3, 1, 3)).unwrap();

    // The fetcher's truncation: where `second`'s last epoch (2) ends on `first` (its epoch 1 ends at 3), and no
    // further than `second`'s own end of epoch 1 (its log end).
    let (epoch, end) = first.epoch_end_offset(second.leader_epoch()).expect("epoch 1 is known");
    assert_eq!((epoch, end), (1, 3));
    let own_end = second.epoch_end_offset(epoch).map_or(second.log_end_offset(), |(_, end)| end);
    assert_eq!(own_end, 2);
    second.truncate_to(end.min(own_end)).unwrap();
    assert_eq!((second.log_end_offset(), second.leader_epoch()), (2, 1), "epoch 2 gone, no batch with it");
    catch_up(&first, &second, 1 << 20);
    assert_eq!(all_bytes(&second), all_bytes(&first));
    assert_eq!(second.leader_epoch(), 3);

    // And so after a restart: the checkpoint says the same.
    drop(second);
    let reopened = Log::open(new_dir.path(), small_config()).unwrap();
    for epoch in 1..=3 {
        assert_eq!(reopened.epoch_end_offset(epoch), first.epoch_end_offset(epoch), "epoch {epoch}");
    }
    assert_eq!(reopened.epoch_end_offset(2), Some((1, 3)), "epoch 2 is not remembered");
}

#[test]
fn a_held_high_watermark_moves_only_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.hold_high_watermark(0);
    log.append(&batch(1, 3, 1)).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (3, 0));
    assert!(log.read(0, 1 << 20).unwrap().batches.is_empty(), "consumers read only up to the high watermark");
    log.set_high_watermark(10);
    assert_eq!(log.high_watermark(), 3, "never past the log end");
}

#[test]
fn reads_between_the_high_watermark_and_the_log_end_are_empty_not_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.hold_high_watermark(0);
    log.append(&batch(1, 2, 1)).unwrap();
    log.append(&batch(1, 2, 1)).unwrap();
    log.set_high_watermark(2);
    assert_eq!(rill_protocol::BatchIter::new(log.read(0, 1 << 20).unwrap().batches).count(), 1);
    for offset in 2..=4 {
        let read = log.read(offset, 1 << 20).unwrap();
        assert!(read.batches.is_empty(), "a read at {offset}, past the high watermark, returns nothing");
        assert_eq!(read.high_watermark, 2);
        let from_memory = log.read_from_memory(offset, 1 << 20);
        assert!(from_memory.is_none_or(|read| read.batches.is_empty()), "nor from memory at {offset}");
    }
    match log.read(5, 1 << 20) {
        Err(StorageError::OffsetOutOfRange { offset: 5, log_start_offset: 0, log_end_offset: 4 }) => {}
        other => panic!("past the log end is out of range, got {other:?}"),
    }
    assert!(log.read_from_memory(5, 1 << 20).is_none());
}

#[test]
fn a_checkpointed_high_watermark_is_capped_at_the_log_end_recovery_left() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("orders-0");
    {
        let log = Log::open(&log_dir, small_config()).unwrap();
        log.hold_high_watermark(0);
        for _ in 0..3 {
            log.append(&batch(1, 2, 1)).unwrap();
        }
        log.set_high_watermark(6);
        let stored = HighWatermarkCheckpoint { partitions: [(("orders".to_owned(), 0), 6)].into() };
        stored.store(dir.path()).unwrap();
        // No close: an unclean stop.
    }
    // The last batch lost (a power loss before write-back): recovery ends the log at 4.
    let segment = log_dir.join("00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(len - batch(1, 2, 1).len() as u64).unwrap();
    let log = Log::open(&log_dir, small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    let checkpointed = HighWatermarkCheckpoint::load(dir.path()).unwrap().and_then(|c| c.get("orders", 0));
    assert_eq!(checkpointed, Some(6));
    log.hold_high_watermark(checkpointed.unwrap_or(0));
    assert_eq!(log.high_watermark(), 4, "capped at the log end");
}

fn open_with_tail_cache(dir: &std::path::Path) -> Log {
    let (clock, files) = (std::sync::Arc::new(rill_storage::SystemClock), rill_storage::SegmentFileCache::new(8));
    let cache = rill_storage::TailCache::new(1 << 20).unwrap();
    Log::open_cached(dir, small_config(), clock, std::sync::Arc::new(files), Some(cache)).unwrap()
}

#[test]
fn a_follower_fetch_from_the_tail_cache_reads_past_the_high_watermark_what_the_segments_hold() {
    let dir = tempfile::tempdir().unwrap();
    let leader = open_with_tail_cache(dir.path());
    leader.hold_high_watermark(0);
    leader.append(&batch(1, 3, 1)).unwrap();
    leader.append(&batch(2, 2, 2)).unwrap();
    for offset in [0, 3] {
        let from_memory = leader.read_to_end_from_memory(offset, 1 << 20).expect("just appended: in the tail cache");
        let from_segments = leader.read_to_end(offset, 1 << 20).unwrap();
        assert!(!from_memory.batches.is_empty(), "past the high watermark, up to the log end");
        assert_eq!(from_memory.batches, from_segments.batches);
        assert_eq!(from_memory.high_watermark, 0);
    }
    let at_end = leader.read_to_end_from_memory(5, 1 << 20).expect("the log end needs no read");
    assert!(at_end.batches.is_empty());
    assert!(leader.read_to_end_from_memory(6, 1 << 20).is_none(), "past the end: read_to_end reports it");
    let uncached_dir = tempfile::tempdir().unwrap();
    let uncached = Log::open(uncached_dir.path(), small_config()).unwrap();
    uncached.append(&batch(1, 3, 1)).unwrap();
    assert!(uncached.read_to_end_from_memory(0, 1 << 20).is_none(), "no tail cache: from the segments");
}
