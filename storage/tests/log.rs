//! The log's behaviour through its public API: append, read, roll, timestamps, retention,
//! truncation, concurrency, and a property test against an in-memory model.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use rill_storage::{Durability, Log, LogConfig, StorageError, WriteMode};

#[test]
fn appends_get_dense_offsets_and_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let first = log.append(&batch(0, 3, 1000)).unwrap();
    let second = log.append(&batch(1, 2, 2000)).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    assert_eq!((second.base_offset, second.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.high_watermark(), 5);

    // The stored batch is the sent batch, but for the base offset and leader epoch the log stamped.
    let read = log.read(3, 1 << 20).unwrap();
    let stored = batches(read.batches);
    let mut sent = batch(1, 2, 2000);
    rill_protocol::batch::set_base_offset(&mut sent, 3);
    rill_protocol::batch::set_partition_leader_epoch(&mut sent, 0);
    assert_eq!(&stored[0].bytes[..], &sent[..]);

    let values: Vec<_> = read_all(&log, 0).into_iter().map(|(o, _)| o).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4]);
}

#[test]
fn reading_mid_batch_returns_the_whole_batch_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch(0, 5, 0)).unwrap();
    log.append(&batch(1, 5, 0)).unwrap();
    let read = batches(log.read(7, 1 << 20).unwrap().batches);
    assert_eq!(read[0].header.base_offset, 5);
}

#[test]
fn max_bytes_bounds_a_read_but_never_below_one_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..4 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    let one = log.read(0, 1).unwrap();
    assert_eq!(batches(one.batches).len(), 1);
    let batch_len = batch(0, 2, 0).len();
    let two = log.read(0, 2 * batch_len + batch_len / 2).unwrap();
    assert_eq!(batches(two.batches).len(), 2);
}

#[test]
fn reads_outside_the_log_carry_both_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch(0, 3, 0)).unwrap();
    assert!(log.read(3, 100).unwrap().batches.is_empty(), "reading at the end is an empty read");
    match log.read(4, 100) {
        Err(StorageError::OffsetOutOfRange { offset: 4, log_start_offset: 0, log_end_offset: 3 }) => {}
        other => panic!("expected out of range, got {other:?}"),
    }
    let message = log.read(-1, 100).unwrap_err().to_string();
    assert!(message.contains("0") && message.contains("3"), "{message}");
}

#[test]
fn invalid_and_oversized_batches_are_refused_and_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let mut corrupt = batch(0, 2, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(log.append(&corrupt), Err(StorageError::InvalidBatch(_))));
    assert!(matches!(log.append(&corrupt[..40]), Err(StorageError::InvalidBatch(_))));
    let huge = batch(0, 200, 0);
    assert!(matches!(log.append(&huge), Err(StorageError::BatchTooLarge { limit: 2048, .. })));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.append(&batch(1, 1, 0)).unwrap().base_offset, 0);
}

#[test]
fn segments_roll_by_size_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..60 {
        log.append(&batch(tag, 3, tag as i64)).unwrap();
    }
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    assert!(log_files(dir.path()).len() == log.segment_count());
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 180);
    assert!(all.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
}

#[test]
fn segments_roll_by_age_with_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let config = LogConfig { segment_ms: Some(60_000), segment_bytes: 1 << 20, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&batch(0, 1, 1_000_000)).unwrap();
    log.append(&batch(1, 1, 1_000_000)).unwrap();
    assert_eq!(log.segment_count(), 1);
    clock.advance(60_000);
    log.append(&batch(2, 1, 1_060_000)).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn an_append_is_a_plain_write_only_without_an_fsync_or_a_roll() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let config = LogConfig { segment_ms: Some(60_000), segment_bytes: 1 << 20, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&batch(0, 1, 1_000_000)).unwrap();
    assert!(log.is_plain_write(1000));
    assert!(!log.is_plain_write(1 << 20), "the segment would roll by size");
    clock.advance(60_000);
    assert!(!log.is_plain_write(1000), "the segment would roll by age");
    let always = tempfile::tempdir().unwrap();
    let log = Log::open(always.path(), LogConfig { durability: Durability::Always, ..config }).unwrap();
    log.append(&batch(0, 1, 1_000_000)).unwrap();
    assert!(!log.is_plain_write(1000), "an fsync follows every append");
}

#[test]
fn old_record_timestamps_do_not_make_every_append_roll() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_700_000_000_000);
    let config = LogConfig { segment_ms: Some(60_000), segment_bytes: 1 << 20, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock).unwrap();
    for tag in 0..20 {
        log.append(&batch(tag, 2, 0)).unwrap(); // records stamped 1970
    }
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    // Batch t holds timestamps 1000*t .. 1000*t+2 at offsets 3t .. 3t+2, over many segments.
    for t in 0..50 {
        log.append(&batch(t, 3, 1000 * t as i64)).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp(7001).unwrap(), Some(22));
    assert_eq!(log.offset_for_timestamp(7003).unwrap(), Some(24));
    assert_eq!(log.offset_for_timestamp(49_002).unwrap(), Some(149));
    assert_eq!(log.offset_for_timestamp(49_003).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(i64::MIN).unwrap(), Some(0));
}

#[test]
fn offset_for_timestamp_handles_out_of_order_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let timestamps = [500, 100, 900, 300, 1200, 50];
    for (i, ts) in timestamps.iter().enumerate() {
        log.append(&batch(i as u64, 1, *ts)).unwrap();
    }
    for target in [0, 100, 101, 500, 501, 901, 1200, 1201] {
        let expected = timestamps.iter().position(|ts| *ts >= target).map(|i| i as i64);
        assert_eq!(log.offset_for_timestamp(target).unwrap(), expected, "target {target}");
    }
}

#[test]
fn retention_by_size_deletes_oldest_segments_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: Some(4096), ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    for tag in 0..100 {
        log.append(&batch(tag, 3, 0)).unwrap();
    }
    let before = log.segment_count();
    let deleted = log.enforce_retention().unwrap();
    assert!(deleted > 0 && log.segment_count() == before - deleted);
    assert!(log.size_bytes() <= 4096, "{} bytes left", log.size_bytes());
    assert!(log.log_start_offset() > 0);
    assert_eq!(log_files(dir.path()).len(), log.segment_count());
    let start = log.log_start_offset();
    assert!(matches!(log.read(start - 1, 100), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(read_all(&log, start).first().map(|r| r.0), Some(start));
    // With one segment left, retention never removes it, however small the limit.
    let tiny = LogConfig { retention_bytes: Some(1), segment_bytes: 1 << 20, max_batch_bytes: 2048, ..small_config() };
    let other = tempfile::tempdir().unwrap();
    let single = Log::open(other.path(), tiny).unwrap();
    single.append(&batch(0, 3, 0)).unwrap();
    assert_eq!(single.enforce_retention().unwrap(), 0);
}

#[test]
fn retention_by_time_follows_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(10_000_000);
    let config = LogConfig { retention_ms: Some(3_600_000), ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    // Old records first (timestamps two hours back), then fresh ones.
    for tag in 0..30 {
        log.append(&batch(tag, 3, 10_000_000 - 7_200_000)).unwrap();
    }
    let old_end = log.log_end_offset();
    for tag in 30..60 {
        log.append(&batch(tag, 3, 10_000_000)).unwrap();
    }
    assert!(log.enforce_retention().unwrap() > 0);
    assert!(log.log_start_offset() <= old_end && log.log_start_offset() > 0);
    let fresh_start = log.log_start_offset();
    assert_eq!(log.enforce_retention().unwrap(), 0, "nothing more is expired yet");
    clock.advance(3_600_010);
    log.enforce_retention().unwrap();
    assert!(log.log_start_offset() > fresh_start);
    assert_eq!(log.segment_count(), 1, "only the active segment stays");
}

#[test]
fn reconfigured_limits_apply_to_the_next_append_and_retention_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..60 {
        log.append(&batch(tag, 3, 0)).unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(log.enforce_retention().unwrap(), 0, "no limit yet");
    let mid = batch(60, 40, 0);
    log.append(&mid).unwrap();
    let tighter = LogConfig { retention_bytes: Some(4096), max_batch_bytes: mid.len() - 1, ..log.config() };
    log.reconfigure(&tighter).unwrap();
    assert!(matches!(log.append(&mid), Err(StorageError::BatchTooLarge { .. })), "the next append sees the limit");
    assert!(log.enforce_retention().unwrap() > 0, "the next pass uses the new retention");
    assert!(log.segment_count() < segments && log.size_bytes() <= 4096);
    // Fixed settings stay as opened whatever the change holds; an invalid change is refused whole.
    let fixed = LogConfig { index_interval_bytes: 1, ..log.config() };
    log.reconfigure(&fixed).unwrap();
    assert_eq!(log.config().index_interval_bytes, small_config().index_interval_bytes);
    let invalid = LogConfig { segment_bytes: 10, retention_bytes: None, ..log.config() };
    assert!(matches!(log.reconfigure(&invalid), Err(StorageError::InvalidConfig { setting: "segment_bytes", .. })));
    assert_eq!(log.config().retention_bytes, Some(4096), "nothing of a refused change applies");
}

#[test]
fn truncate_to_drops_whole_batches_from_an_offset_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..40 {
        log.append(&batch(tag, 3, tag as i64)).unwrap();
    }
    log.truncate_to(31).unwrap(); // mid-batch: the batch 30..=32 goes whole
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(read_all(&log, 0).len(), 30);
    assert_eq!(log.append(&batch(99, 1, 0)).unwrap().base_offset, 30);
    drop(log);
    let reopened = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(reopened.log_end_offset(), 31);
    assert_eq!(read_all(&reopened, 0).last().unwrap().1, b"batch 99 record 0");
}

#[test]
fn always_durability_makes_every_append_durable_with_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { durability: Durability::Always, segment_bytes: 1 << 20, ..small_config() };
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let info = log.append(&batch(w * 100 + i, 2, 0)).unwrap();
                    assert!(log.durable_end_offset() > info.last_offset);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), 320);
    assert_eq!(log.durable_end_offset(), 320);
}

#[test]
fn under_always_readers_see_a_batch_only_once_it_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { durability: Durability::Always, ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    assert!(log.syncs_every_append());
    let first = log.append_unsynced(&batch(0, 2, 0)).unwrap();
    let second = log.append_unsynced(&batch(1, 2, 0)).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.high_watermark(), 0, "nothing is visible before the fsync");
    assert!(log.read(0, 100).unwrap().batches.is_empty());
    log.sync_through(second.last_offset + 1).unwrap();
    assert_eq!(log.high_watermark(), 4);
    assert_eq!(log.durable_end_offset(), 4);
    assert_eq!(read_all(&log, first.base_offset).len(), 4);
}

#[test]
fn interval_durability_flushes_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let config = LogConfig { durability: Durability::Interval { interval_ms: 100 }, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&batch(0, 2, 0)).unwrap();
    log.flush_if_due(0).unwrap();
    assert_eq!(log.durable_end_offset(), 0, "not due yet");
    clock.advance(100);
    log.flush_if_due(0).unwrap();
    assert_eq!(log.durable_end_offset(), 2);
}

#[test]
fn interval_durability_flushes_at_the_last_check_before_the_interval_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let config = LogConfig { durability: Durability::Interval { interval_ms: 1000 }, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&batch(0, 2, 0)).unwrap();
    clock.advance(850);
    log.flush_if_due(100).unwrap();
    assert_eq!(log.durable_end_offset(), 0, "the check at 950 ms still comes in time");
    clock.advance(100);
    log.flush_if_due(100).unwrap();
    assert_eq!(log.durable_end_offset(), 2, "the check after 1050 ms would be late");

    // The next interval counts from when that flush began, however long the fsync took.
    log.append(&batch(1, 2, 0)).unwrap();
    clock.advance(850);
    log.flush_if_due(100).unwrap();
    assert_eq!(log.durable_end_offset(), 2);
    clock.advance(50);
    log.flush_if_due(100).unwrap();
    assert_eq!(log.durable_end_offset(), 4);
}

#[test]
fn interval_durability_flushes_nothing_when_nothing_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let config = LogConfig { durability: Durability::Interval { interval_ms: 100 }, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&batch(0, 2, 0)).unwrap();
    log.flush_if_due(100).unwrap();
    assert_eq!(log.durable_end_offset(), 2);
    let fsyncs = log.fsync_latency().snapshot().count;
    clock.advance(1000);
    log.flush_if_due(100).unwrap();
    assert_eq!(log.fsync_latency().snapshot().count, fsyncs, "no fsync without new appends");
}

#[test]
fn closed_log_refuses_appends_and_reopens_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..25 {
        log.append(&batch(tag, 2, tag as i64 * 10)).unwrap();
    }
    let before = read_all(&log, 0);
    log.close().unwrap();
    assert!(matches!(log.append(&batch(0, 1, 0)), Err(StorageError::Closed(_))));
    drop(log);
    let reopened = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_all(&reopened, 0), before);
    assert_eq!(reopened.append(&batch(1, 1, 0)).unwrap().base_offset, 50);
    assert_eq!(reopened.offset_for_timestamp(121).unwrap(), Some(25));
}

/// Direct writes pad the active segment to a whole block. A clean close cuts every segment back to its last
/// batch; after a crash the padding is cut on reopen, and nothing appended is lost either way.
#[test]
fn direct_write_padding_never_outlives_a_close_and_never_costs_a_batch() {
    let config = LogConfig {
        write_mode: WriteMode::Direct,
        direct_min_batch_bytes: 0,
        segment_bytes: 64 << 10,
        ..small_config()
    };
    for is_clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        for tag in 0..40 {
            log.append(&batch(tag, 1 + tag as usize % 4, tag as i64)).unwrap();
        }
        let before = read_all(&log, 0);
        let logical = log.size_bytes();
        let on_disk = || log_files(dir.path()).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum::<u64>();
        if is_clean {
            log.close().unwrap();
            assert_eq!(on_disk(), logical, "a closed log's files end at their last batch");
        } else {
            assert!(on_disk() > logical, "the active segment is padded to a block");
        }
        drop(log);
        let reopened = Log::open(dir.path(), config).unwrap();
        assert_eq!(read_all(&reopened, 0), before, "clean={is_clean}");
        assert_eq!(reopened.size_bytes(), logical);
        let next = reopened.append(&batch(99, 1, 0)).unwrap();
        assert_eq!(next.base_offset, before.len() as i64, "appends continue after the last batch");
        assert_eq!(read_all(&reopened, 0).len(), before.len() + 1);
    }
}

/// `direct.rs`'s `ZEROS_AHEAD`.
const ZEROS_AHEAD: u64 = 256 << 10;

/// Direct writes, one segment, appends of up to 64 KiB through the page cache.
fn one_segment_direct(durability: Durability) -> LogConfig {
    LogConfig {
        write_mode: WriteMode::Direct,
        durability,
        segment_bytes: 1 << 30,
        index_max_bytes: 1 << 20,
        direct_min_batch_bytes: 64 << 10,
        ..small_config()
    }
}

/// The bytes of every segment file in `dir`, zeros past the batches included.
fn on_disk(dir: &std::path::Path) -> u64 {
    log_files(dir).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum()
}

/// A small append of an `always` log goes through the page cache into zeros written ahead of it (so that its fsync
/// changes no metadata); without `always` it just grows the file. Neither the zeros nor the padding cost a batch,
/// after a crash or a clean close, and appends go on after the last batch.
#[test]
fn small_fsynced_appends_go_into_zeros_written_ahead_and_lose_nothing() {
    for (durability, is_clean) in [(Durability::Never, false), (Durability::Always, false), (Durability::Always, true)]
    {
        let dir = tempfile::tempdir().unwrap();
        let config = one_segment_direct(durability);
        let log = Log::open(dir.path(), config).unwrap();
        let on_disk = || on_disk(dir.path());
        for tag in 0..5 {
            log.append(&batch(tag, 1, tag as i64)).unwrap();
        }
        let logical = log.size_bytes();
        assert!(logical < 4096, "small appends: {logical} bytes");
        if durability == Durability::Always {
            assert_eq!(on_disk(), 4096 + ZEROS_AHEAD, "zeros written past the first page");
        } else {
            assert_eq!(on_disk(), logical, "written through the page cache: no zeros");
        }
        // Past the first zeros: the next ones start where they ended.
        let mut appended = 5;
        while log.size_bytes() < 2 * ZEROS_AHEAD + 8192 {
            log.append(&batch(appended, 10, appended as i64)).unwrap();
            appended += 1;
        }
        let logical = log.size_bytes();
        if durability == Durability::Always {
            let (on_disk, page_end) = (on_disk(), logical.next_multiple_of(4096));
            assert!(on_disk % 4096 == 0 && on_disk > page_end && on_disk <= page_end + ZEROS_AHEAD, "{on_disk}");
        }
        let before = read_all(&log, 0);
        assert_eq!(before.len() as u64, 5 + (appended - 5) * 10);
        if is_clean {
            log.close().unwrap();
            assert_eq!(on_disk(), logical, "a clean close cuts the zeros");
        }
        drop(log);
        let reopened = Log::open(dir.path(), config).unwrap();
        assert_eq!(read_all(&reopened, 0), before, "{durability:?}, clean: {is_clean}");
        assert_eq!(reopened.size_bytes(), logical);
        let next = reopened.append(&batch(99, 1, 0)).unwrap().base_offset;
        assert_eq!(next, before.len() as i64, "appends go on after the last batch");
        assert_eq!(read_all(&reopened, 0).len(), before.len() + 1);
    }
}

/// A `never` log whose appends a caller waits to see fsynced (a produce with durable acks) writes zeros ahead too,
/// from the append after the first wait on.
#[test]
fn small_appends_go_into_zeros_while_callers_wait_for_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_segment_direct(Durability::Never);
    let log = Log::open(dir.path(), config).unwrap();
    let on_disk = || on_disk(dir.path());
    let first = log.append(&batch(0, 1, 0)).unwrap();
    assert_eq!(on_disk(), log.size_bytes(), "nobody waited for an fsync yet: the file just grows");
    log.flush().unwrap();
    log.append(&batch(1, 1, 1)).unwrap();
    assert_eq!(on_disk(), log.size_bytes(), "a flush waits for nobody");
    log.sync_through(first.last_offset + 1).unwrap();
    let next = batch(9, 10, 9);
    let len = next.len() as u64;
    assert!(!log.is_plain_write(len), "the append would write zeros first: not for an async thread");
    let second = log.append(&batch(2, 1, 2)).unwrap();
    assert_eq!(on_disk(), 4096 + ZEROS_AHEAD, "zeros written past the page of the append after the wait");
    log.sync_through(second.last_offset + 1).unwrap();
    // A plain write while the zeros reach past the append's page, and not once they would not.
    let mut appended = 3;
    while log.is_plain_write(len) {
        log.append(&next).unwrap();
        appended += 10;
    }
    assert!(appended > 3, "appends into the zeros are plain writes");
    assert!((log.size_bytes() + len).next_multiple_of(4096) > on_disk(), "the next would need new zeros");
    log.append(&next).unwrap();
    appended += 10;
    assert!(log.is_plain_write(len), "zeros written ahead again");
    drop(log);
    let reopened = Log::open(dir.path(), config).unwrap();
    assert_eq!(read_all(&reopened, 0).len(), appended);
}

/// An `always` log whose appends alternate between small ones (page cache, into zeros) and large ones (direct):
/// each kind finds the block the other changed, and a crash at any point loses nothing appended.
#[test]
fn small_and_large_fsynced_appends_interleave_without_loss() {
    let config = LogConfig {
        write_mode: WriteMode::Direct,
        durability: Durability::Always,
        segment_bytes: 1 << 30,
        index_max_bytes: 1 << 20,
        direct_min_batch_bytes: 300,
        ..small_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config).unwrap();
    let mut expected = 0;
    for round in 0..60u64 {
        // 1 record stays under 300 bytes (page cache), 10 go over (direct); a run of each, of varying length.
        let count = if (round / 3) % 2 == 0 { 1 } else { 10 };
        log.append(&batch(round, count, round as i64)).unwrap();
        expected += count;
        assert_eq!(read_all(&log, 0).len(), expected, "round {round}");
        if round % 20 == 19 {
            // A crash: no close, nothing cut.
            let before = read_all(&log, 0);
            drop(log);
            log = Log::open(dir.path(), config).unwrap();
            assert_eq!(read_all(&log, 0), before, "reopened after round {round}");
        }
    }
}

#[test]
fn a_reader_racing_a_writer_never_sees_a_torn_or_out_of_order_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 64 * 1024, ..small_config() };
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    const BATCHES: u64 = 2000;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for tag in 0..BATCHES {
                log.append(&batch(tag, 1 + (tag % 4) as usize, tag as i64)).unwrap();
            }
        })
    };
    let mut next = 0i64;
    let mut seen = 0u64;
    while seen < BATCHES {
        let read = log.read(next, 4096).unwrap();
        for batch in batches(read.batches) {
            rill_protocol::validate(&batch.bytes).expect("a reader only sees whole, valid batches");
            assert_eq!(batch.header.base_offset, next, "batches arrive in order with no gap");
            next = batch.header.next_offset();
            seen += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(next, log.log_end_offset());
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 10, ..small_config() };
    let err = Log::open(dir.path(), config).unwrap_err().to_string();
    assert!(err.contains("segment_bytes"), "{err}");
}

#[test]
fn a_group_of_batches_lands_at_consecutive_offsets_across_segment_rolls_and_a_bad_one_refuses_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch(0, 2, 0)).unwrap();
    // More than a 2 KiB segment holds, in one call.
    let encoded: Vec<Vec<u8>> = (1..=12).map(|tag| batch(tag, 10, tag as i64)).collect();
    let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let infos = log.append_batches_unsynced(&parts).unwrap();
    let bases: Vec<i64> = infos.iter().map(|info| info.base_offset).collect();
    assert_eq!(bases, (0..12).map(|i| 2 + 10 * i).collect::<Vec<_>>());
    assert!(log.segment_count() > 1, "the group crossed a segment roll: {} segments", log.segment_count());
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 2 + 120);
    assert!(all.iter().enumerate().all(|(i, (offset, _))| *offset == i as i64));
    assert_eq!(all[2].1, b"batch 1 record 0");

    let mut bad = batch(99, 1, 99);
    bad[30] ^= 0xff; // inside the CRC's range
    let end = log.log_end_offset();
    let refused = log.append_batches_unsynced(&[&batch(98, 1, 98), &bad]);
    assert!(refused.is_err());
    assert_eq!(log.log_end_offset(), end, "nothing of a refused group is appended");
    drop(log);
    let reopened = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_all(&reopened, 0).len(), 122);
}

#[derive(Debug, Clone)]
enum Op {
    /// One `append` of one batch, or one `append_batches_unsynced` of several (batch sizes in records).
    Append {
        batches: Vec<usize>,
    },
    Read {
        at: prop::sample::Index,
        max_bytes: usize,
    },
    Reopen {
        is_clean: bool,
    },
    Truncate {
        at: prop::sample::Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..6).prop_map(|records| Op::Append { batches: vec![records] }),
        2 => proptest::collection::vec(1usize..6, 2..6).prop_map(|batches| Op::Append { batches }),
        3 => (any::<prop::sample::Index>(), 1usize..1500).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<bool>().prop_map(|is_clean| Op::Reopen { is_clean }),
        1 => any::<prop::sample::Index>().prop_map(|at| Op::Truncate { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random appends, reads, rolls, reopens and truncations agree with a plain list of batches.
    #[test]
    fn log_matches_an_in_memory_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config()).unwrap();
        // The model: per batch, its base offset and its records' values.
        let mut model: Vec<(i64, Vec<Vec<u8>>)> = Vec::new();
        let mut tag = 0u64;
        for op in ops {
            let end = model.last().map_or(0, |(base, recs)| base + recs.len() as i64);
            match op {
                Op::Append { batches } => {
                    let first_tag = tag + 1;
                    let encoded: Vec<Vec<u8>> = batches
                        .iter()
                        .map(|records| {
                            tag += 1;
                            batch(tag, *records, tag as i64)
                        })
                        .collect();
                    let infos = if encoded.len() == 1 {
                        vec![log.append(&encoded[0]).unwrap()]
                    } else {
                        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                        log.append_batches_unsynced(&parts).unwrap()
                    };
                    prop_assert_eq!(infos.len(), batches.len());
                    let mut base = end;
                    for ((records, info), batch_tag) in batches.iter().zip(&infos).zip(first_tag..) {
                        prop_assert_eq!(info.base_offset, base);
                        prop_assert_eq!(info.last_offset, base + *records as i64 - 1);
                        let values =
                            (0..*records).map(|i| format!("batch {batch_tag} record {i}").into_bytes()).collect();
                        model.push((base, values));
                        base += *records as i64;
                    }
                    prop_assert_eq!(log.log_end_offset(), base);
                }
                Op::Read { at, max_bytes } => {
                    let offset = if end == 0 { 0 } else { at.index(end as usize) as i64 };
                    let read = batches(log.read(offset, max_bytes).unwrap().batches);
                    if end == 0 {
                        prop_assert!(read.is_empty());
                        continue;
                    }
                    let first = model.iter().position(|(b, r)| offset < b + r.len() as i64).unwrap();
                    prop_assert!(!read.is_empty());
                    let mut total = 0;
                    for (got, (base, values)) in read.iter().zip(&model[first..]) {
                        prop_assert_eq!(got.header.base_offset, *base);
                        let got_values: Vec<Vec<u8>> =
                            got.records().unwrap().map(|r| r.unwrap().value.unwrap().to_vec()).collect();
                        prop_assert_eq!(&got_values, values);
                        total += got.bytes.len();
                    }
                    prop_assert!(read.len() == 1 || total <= max_bytes);
                }
                Op::Reopen { is_clean } => {
                    if is_clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = Log::open(dir.path(), small_config()).unwrap();
                    prop_assert_eq!(log.log_end_offset(), end);
                }
                Op::Truncate { at } => {
                    if end == 0 {
                        continue;
                    }
                    let offset = at.index(end as usize) as i64;
                    log.truncate_to(offset).unwrap();
                    model.retain(|(base, values)| base + values.len() as i64 - 1 < offset);
                    let new_end = model.last().map_or(0, |(base, recs)| base + recs.len() as i64);
                    prop_assert_eq!(log.log_end_offset(), new_end);
                }
            }
        }
        let all = read_all(&log, 0);
        let expected: Vec<(i64, Vec<u8>)> = model
            .iter()
            .flat_map(|(base, values)| values.iter().enumerate().map(move |(i, v)| (base + i as i64, v.clone())))
            .collect();
        prop_assert_eq!(all, expected);
    }
}
