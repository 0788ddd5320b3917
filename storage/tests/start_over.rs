//! A follower whose whole log is below its leader's log start starts over, empty, at that start (Kafka's
//! `truncateFullyAndStartAt`), and catches up from there: offsets continue from the start, restarts (clean or
//! not) reopen the new log, and a crash part-way reopens a valid log.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use rill_storage::{Log, StorageError};

/// Whatever `follower` lacks from `leader`, fetched from the follower's end as the fetcher does.
fn catch_up(leader: &Log, follower: &Log) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let read = leader.read_to_end(follower.log_end_offset(), 1 << 20).expect("leader read");
        follower.append_replica(read.batches).expect("replica append");
    }
}

/// A leader of 100 records, 2 a batch, in epoch 3, with records before `deleted_to` deleted.
fn leader_with_deleted_head(dir: &std::path::Path, deleted_to: i64) -> Log {
    let log = Log::open(dir, small_config()).unwrap();
    log.begin_leader_epoch(3).unwrap();
    for tag in 0..50 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    assert_eq!(log.delete_records_before(deleted_to).unwrap(), deleted_to);
    log
}

fn bytes_from(log: &Log, from: i64) -> Bytes {
    let mut out = BytesMut::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let read = log.read_to_end(offset, 1 << 20).expect("read");
        for batch in batches(read.batches.clone()) {
            offset = batch.header.next_offset();
        }
        out.extend_from_slice(&read.batches);
    }
    out.freeze()
}

#[test]
fn a_follower_below_the_leader_start_starts_over_there_and_catches_up() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = leader_with_deleted_head(leader_dir.path(), 60);
    let follower = Log::open(follower_dir.path(), small_config()).unwrap();
    let first_dir = tempfile::tempdir().unwrap();
    let first = leader_with_deleted_head(first_dir.path(), 0);
    follower.append_replica(first.read_to_end(0, 100).unwrap().batches).unwrap();
    assert!(follower.log_end_offset() > 0 && follower.log_end_offset() < 60);
    assert!(matches!(
        leader.read_to_end(follower.log_end_offset(), 1 << 20),
        Err(StorageError::OffsetOutOfRange { log_start_offset: 60, .. })
    ));

    follower.truncate_fully_and_start_at(leader.log_start_offset()).unwrap();
    assert_eq!((follower.log_start_offset(), follower.log_end_offset(), follower.high_watermark()), (60, 60, 60));
    assert_eq!(follower.segment_count(), 1);
    assert_eq!(follower.size_bytes(), 0);
    assert!(matches!(follower.read(0, 1 << 20), Err(StorageError::OffsetOutOfRange { .. })));
    catch_up(&leader, &follower);
    assert_eq!(follower.log_end_offset(), 100);
    assert_eq!(bytes_from(&follower, 60), bytes_from(&leader, 60), "the replica is the leader's log byte for byte");
    assert_eq!(follower.leader_epoch(), 3, "the leader's batches bring their epoch");
    follower.set_high_watermark(100);
    assert_eq!(read_all(&follower, 60).first().map(|r| r.0), Some(60));

    drop(follower); // no close: as a crash leaves it
    let follower = Log::open(follower_dir.path(), small_config()).unwrap();
    assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (60, 100));
    assert_eq!(read_all(&follower, 60).len(), 40);
}

#[test]
fn a_start_inside_a_batch_takes_that_batch_whole_and_keeps_the_start() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = leader_with_deleted_head(leader_dir.path(), 61);
    let follower = Log::open(follower_dir.path(), small_config()).unwrap();
    follower.truncate_fully_and_start_at(61).unwrap();
    let read = leader.read_to_end(61, 1 << 20).unwrap();
    assert_eq!(batches(read.batches.clone())[0].header.base_offset, 60, "the batch holding the start comes whole");
    follower.append_replica(read.batches).unwrap();
    catch_up(&leader, &follower);
    assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (61, 100));
    follower.set_high_watermark(100);
    assert!(matches!(follower.read(60, 1 << 20), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&follower, 61).first().map(|r| r.0), Some(61));

    follower.close().unwrap();
    drop(follower);
    let follower = Log::open(follower_dir.path(), small_config()).unwrap();
    assert_eq!((follower.log_start_offset(), follower.log_end_offset()), (61, 100));
}

#[test]
fn appends_continue_from_the_new_start_across_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..20 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    log.truncate_fully_and_start_at(500).unwrap();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.segment_count()), (500, 500, 1));
    assert_eq!(log.append(&batch(99, 2, 0)).unwrap().base_offset, 500);
    assert_eq!(read_all(&log, 500).iter().map(|r| r.0).collect::<Vec<_>>(), vec![500, 501]);
}

#[test]
fn an_offset_below_the_log_end_is_refused_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..10 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    match log.truncate_fully_and_start_at(19) {
        Err(StorageError::InvalidConfig { reason, .. }) => assert!(reason.contains("below the log end 20"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 20));
    assert_eq!(read_all(&log, 0).len(), 20);
    // At the end itself: the log empties and stays at 20.
    log.truncate_fully_and_start_at(20).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (20, 20, 0));
}

/// The states a crash can leave, rebuilt by hand from the files before and after the call, each reopen to a
/// valid log: the newer old segments (step 1 cut short), or the new log (once the checkpoint says so, with or
/// without the log start file and the new segment).
#[test]
fn a_crash_at_any_step_reopens_the_old_log_or_the_new_one() {
    let before = tempfile::tempdir().unwrap();
    let log = Log::open(before.path(), small_config()).unwrap();
    for tag in 0..50 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    drop(log);
    let segments = log_files(before.path());
    assert!(segments.len() > 2, "the test wants several segments, has {}", segments.len());

    // Step 1 cut short: the oldest segments gone, the newer ones left.
    let cut = tempfile::tempdir().unwrap();
    copy_dir(before.path(), cut.path());
    for path in log_files(cut.path()).iter().take(2) {
        std::fs::remove_file(path).unwrap();
    }
    let log = Log::open(cut.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 100);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(read_all(&log, start).len() as i64, 100 - start, "what is left is whole and dense");
    drop(log);

    // After the call, each later step undone: the checkpoint alone decides.
    let after = tempfile::tempdir().unwrap();
    copy_dir(before.path(), after.path());
    let log = Log::open(after.path(), small_config()).unwrap();
    log.truncate_fully_and_start_at(1000).unwrap();
    drop(log);
    for undo in [vec![], vec!["log-start-offset.checkpoint"], vec!["log-start-offset.checkpoint", ".log"]] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(after.path(), dir.path());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if undo.iter().any(|u| name == *u || (u.starts_with('.') && name.ends_with(&u[1..]) && name.contains('.')))
            {
                std::fs::remove_file(&path).unwrap();
            }
        }
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000), "undone: {undo:?}");
        assert_eq!(log.append(&batch(1, 2, 0)).unwrap().base_offset, 1000);
    }
}
