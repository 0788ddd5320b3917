//! Deleting records before an offset (Kafka's DeleteRecords): the log start offset moves inside a segment, stays
//! across restarts and retention, and nothing below it is ever served.

mod common;

use common::*;
use proptest::prelude::*;
use rill_storage::{Log, LogConfig, StorageError, WriteMode};

/// 100 records, 2 a batch, in several small segments.
fn log_of_100(dir: &std::path::Path) -> Log {
    let log = Log::open(dir, small_config()).unwrap();
    for tag in 0..50 {
        log.append(&batch(tag, 2, 0)).unwrap();
    }
    assert_eq!(log.high_watermark(), 100);
    log
}

fn is_out_of_range(read: Result<rill_storage::ReadResult, StorageError>) -> bool {
    matches!(read, Err(StorageError::OffsetOutOfRange { .. }))
}

#[test]
fn deleting_inside_a_batch_hides_every_record_below_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    let segments = log.segment_count();
    assert!(segments > 2, "the test wants several segments, has {segments}");
    assert_eq!(log.delete_records_before(45).unwrap(), 45);
    assert_eq!(log.log_start_offset(), 45);
    assert!(is_out_of_range(log.read(44, 1 << 20)));
    assert!(is_out_of_range(log.read(0, 1 << 20)));
    // The read at the start returns the batch holding it whole, as Kafka's; the records from 45 on are all there.
    let read = batches(log.read(45, 1 << 20).unwrap().batches);
    assert_eq!(read[0].header.base_offset, 44);
    let records = read_all(&log, 45);
    assert_eq!(records.first().map(|r| r.0), Some(45));
    assert_eq!(records.len(), 55);
    assert!(log.segment_count() < segments, "segments wholly below 45 are deleted at once");
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(45));

    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 45);
    assert!(is_out_of_range(log.read(44, 1 << 20)));
    assert_eq!(read_all(&log, 45).len(), 55);
}

#[test]
fn an_unclean_restart_keeps_the_start_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    log.delete_records_before(33).unwrap();
    drop(log); // no close: as a crash leaves it
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 33);
    assert_eq!(read_all(&log, 33).len(), 67);
}

#[test]
fn minus_one_means_the_high_watermark_and_past_it_is_refused_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    for bad in [101, -2, i64::MAX, i64::MIN] {
        match log.delete_records_before(bad) {
            Err(StorageError::DeleteBeyondHighWatermark { offset, high_watermark: 100 }) => assert_eq!(offset, bad),
            other => panic!("deleting before {bad}: {other:?}"),
        }
    }
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.delete_records_before(-1).unwrap(), 100);
    assert_eq!(log.log_start_offset(), 100);
    // Everything went, the active segment too (rolled first): one empty segment is left to append to.
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.read(100, 1 << 20).unwrap().batches.len(), 0);
    let info = log.append(&batch(99, 2, 0)).unwrap();
    assert_eq!(info.base_offset, 100);
    assert_eq!(read_all(&log, 100).len(), 2);
}

#[test]
fn the_start_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    assert_eq!(log.delete_records_before(60).unwrap(), 60);
    assert_eq!(log.delete_records_before(20).unwrap(), 60, "an older offset answers the start as it is");
    assert_eq!(log.delete_records_before(60).unwrap(), 60);
    assert_eq!(log.log_start_offset(), 60);
}

/// A follower takes its leader's log start up to its own high watermark, never refused and never back, and keeps
/// it across a restart: after a failover it is the new leader's start.
#[test]
fn a_follower_follows_the_leaders_start_up_to_its_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    log.hold_high_watermark(40);
    assert_eq!(log.follow_log_start_offset(60).unwrap(), 40, "no further than what it knows committed");
    assert_eq!(log.log_start_offset(), 40);
    assert!(is_out_of_range(log.read(39, 1 << 20)));
    assert_eq!(log.follow_log_start_offset(30).unwrap(), 40, "a lower leader start never moves it back");
    log.set_high_watermark(100);
    assert_eq!(log.follow_log_start_offset(60).unwrap(), 60);
    assert_eq!(log.follow_log_start_offset(i64::MAX).unwrap(), 100, "the whole log, capped");
    assert_eq!(log.segment_count(), 1, "every segment below went, the active one rolled");
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 100);
    assert_eq!(log.append(&batch(7, 2, 0)).unwrap().base_offset, 100);
}

#[test]
fn retention_keeps_a_start_inside_its_first_segment_and_deletes_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of_100(dir.path());
    log.delete_records_before(75).unwrap();
    // Retention with nothing to do by size or age leaves the start where the deletion put it.
    assert_eq!(log.enforce_retention().unwrap(), 0);
    assert_eq!(log.log_start_offset(), 75);
    log.reconfigure(&LogConfig { retention_bytes: Some(1), ..small_config() }).unwrap();
    log.enforce_retention().unwrap();
    assert!(log.log_start_offset() >= 75);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn a_stored_start_past_the_recovered_end_is_clamped_and_stored_clamped() {
    let dir = tempfile::tempdir().unwrap();
    // Through the page cache: a direct write would pad the file to a block, past the batch ends measured here.
    let config = LogConfig { segment_bytes: 1 << 20, write_mode: WriteMode::Buffered, ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    let mut ends = Vec::new();
    for tag in 0..10 {
        log.append(&batch(tag, 10, 0)).unwrap();
        ends.push(std::fs::metadata(&log_files(dir.path())[0]).unwrap().len());
    }
    log.delete_records_before(50).unwrap();
    drop(log);
    // A crash took back every batch after the third (their bytes never reached the disk).
    let segment = &log_files(dir.path())[0];
    std::fs::OpenOptions::new().write(true).open(segment).unwrap().set_len(ends[2]).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.log_start_offset(), 30);
    // What is appended next stays readable after the next restart: the clamped start was stored.
    log.append(&batch(10, 30, 0)).unwrap();
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_start_offset(), 30);
    assert_eq!(read_all(&log, 30).len(), 30);
}

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize },
    DeleteBefore { at: prop::sample::Index },
    Reopen { is_clean: bool },
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..8).prop_map(|records| Op::Append { records }),
        2 => any::<prop::sample::Index>().prop_map(|at| Op::DeleteBefore { at }),
        1 => any::<bool>().prop_map(|is_clean| Op::Reopen { is_clean }),
        1 => Just(Op::Retention),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random appends, deletions, restarts (clean or not) and retention passes (by size, which may itself move the
    /// start to a segment's base): every record at or above the start is served, none below it, and the start never
    /// moves back.
    #[test]
    fn deletions_restarts_and_retention_agree_with_a_model(ops in proptest::collection::vec(op(), 1..50)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { retention_bytes: Some(6000), ..small_config() };
        let mut log = Log::open(dir.path(), config).unwrap();
        // The model: every record ever appended, by offset, and the start.
        let mut values: Vec<Vec<u8>> = Vec::new();
        let mut start = 0i64;
        for (tag, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { records } => {
                    let info = log.append(&batch(tag as u64, records, 0)).unwrap();
                    prop_assert_eq!(info.base_offset, values.len() as i64);
                    values.extend((0..records).map(|i| format!("batch {tag} record {i}").into_bytes()));
                }
                Op::DeleteBefore { at } => {
                    let offset = at.index(values.len() + 1) as i64;
                    let answered = log.delete_records_before(offset).unwrap();
                    start = start.max(offset);
                    prop_assert_eq!(answered, start);
                }
                Op::Reopen { is_clean } => {
                    if is_clean {
                        log.close().unwrap();
                    }
                    drop(log);
                    log = Log::open(dir.path(), config).unwrap();
                    prop_assert_eq!(log.log_end_offset(), values.len() as i64);
                }
                Op::Retention => {
                    log.enforce_retention().unwrap();
                    prop_assert!(log.log_start_offset() >= start, "retention moved the start back");
                    start = log.log_start_offset();
                }
            }
            prop_assert_eq!(log.log_start_offset(), start);
            if start > 0 {
                prop_assert!(is_out_of_range(log.read(start - 1, 1 << 20)));
            }
            let expected: Vec<(i64, Vec<u8>)> =
                values.iter().cloned().enumerate().skip(start as usize).map(|(o, v)| (o as i64, v)).collect();
            prop_assert_eq!(read_all(&log, start), expected);
        }
    }
}
