//! `Log::largest_timestamp` (Kafka's ListOffsets -3, KIP-734): the first record carrying the log's largest
//! timestamp, whatever order producers' clocks put timestamps in, over many segments and index entries, after a
//! clean or unclean reopen, after retention, and inside compressed batches; and, as in Kafka, whatever a log start
//! moved inside a segment by DeleteRecords hides.

mod common;

use common::*;
use proptest::prelude::*;
use rill_protocol::compressed::compress_batch;
use rill_protocol::{Compression, Record, RecordBatchBuilder};
use rill_storage::{LargestTimestamp, Log, LogConfig};

/// A batch whose records carry exactly `timestamps`, in that order.
fn batch_at(timestamps: &[i64]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::default();
    for (i, ts) in timestamps.iter().enumerate() {
        builder.push(&Record {
            key: None,
            value: Some(format!("record {i} at {ts}").into_bytes()),
            headers: vec![],
            timestamp_ms: *ts,
        });
    }
    builder.build()
}

/// The model: the first record, in offset order, whose timestamp is the largest of all.
fn first_of_largest(batches: &[Vec<i64>]) -> Option<(i64, i64)> {
    let all: Vec<i64> = batches.iter().flatten().copied().collect();
    let largest = *all.iter().max()?;
    let offset = all.iter().position(|ts| *ts == largest).expect("the max is in the list");
    Some((offset as i64, largest))
}

fn found(log: &Log) -> Option<(i64, i64)> {
    log.largest_timestamp().expect("lookup reads the log").map(|l| (l.offset, l.timestamp_ms))
}

#[test]
fn an_empty_log_has_no_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.largest_timestamp().unwrap(), None);
}

#[test]
fn the_first_record_with_the_largest_timestamp_is_found_however_timestamps_are_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    // Out of order across batches and inside them; the largest (900) appears twice, first at offset 4.
    let batches = [vec![500, 100], vec![300, 50, 900, 10], vec![900], vec![200, 700]];
    for timestamps in &batches {
        log.append(&batch_at(timestamps)).unwrap();
    }
    assert_eq!(
        log.largest_timestamp().unwrap(),
        Some(LargestTimestamp { offset: 4, timestamp_ms: 900, leader_epoch: 0 })
    );
}

#[test]
fn a_compressed_batch_answers_the_record_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch_at(&[10, 20])).unwrap();
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let compressed = compress_batch(&batch_at(&[100, 5_000, 40]), codec, 1).unwrap();
        let base = log.append(&compressed).unwrap().base_offset;
        if codec == Compression::Gzip {
            assert_eq!(found(&log), Some((base + 1, 5_000)), "{codec:?}: the middle record, not the batch's base");
        }
    }
    assert_eq!(found(&log), Some((3, 5_000)), "the first of the equal largest timestamps");
    // Timestamp lookups read inside compressed batches too, as Kafka does.
    assert_eq!(log.offset_for_timestamp(101).unwrap(), Some(3));
}

#[test]
fn retention_moves_the_answer_to_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: Some(3000), ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    // The largest timestamp comes first and is deleted by retention; then the largest left is the newest.
    log.append(&batch_at(&[1_000_000])).unwrap();
    for i in 0..60 {
        log.append(&batch_at(&[i * 10, i * 10 + 5])).unwrap();
    }
    assert_eq!(found(&log), Some((0, 1_000_000)));
    assert!(log.enforce_retention().unwrap() > 0);
    assert!(log.log_start_offset() > 0);
    assert_eq!(found(&log), Some((log.log_end_offset() - 1, 595)));
}

/// Kafka's rule, kept on purpose: `UnifiedLog.fetchOffsetByTimestamp` answers -3 from the segment with the
/// largest `maxTimestampSoFar`, which counts records below a log start moved inside that segment (they stay in
/// the file), with no log start check there or in `Partition.fetchOffsetForTimestamp`. So after DeleteRecords
/// the answer can be an offset below the log start; a consumer seeking there is told "out of range" and resets.
/// Answering the largest timestamp left instead would need the segment's batches re-read on every such move.
#[test]
fn a_log_start_moved_inside_a_segment_does_not_change_the_answer_as_in_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch_at(&[5_000, 9_000])).unwrap();
    log.append(&batch_at(&[1_000, 2_000])).unwrap();
    assert_eq!(log.segment_count(), 1, "the deleted record's segment stays");
    assert_eq!(log.delete_records_before(3).unwrap(), 3);
    assert_eq!(found(&log), Some((1, 9_000)), "offset 1, below the log start");
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(found(&log), Some((1, 9_000)), "after a reopen too");
}

/// Segments that roll because their time index is full still know their largest timestamp after a reopen:
/// it is restored from their last time index entry (the batch that fills the index is the segment's last, and
/// its entry holds the largest timestamp so far).
#[test]
fn a_segment_rolled_by_a_full_time_index_keeps_its_largest_timestamp_across_a_reopen() {
    // An entry per batch: the time index (85 entries in the smallest index) fills long before `segment_bytes`.
    let config = LogConfig { index_max_bytes: 1024, index_interval_bytes: 1, segment_bytes: 1 << 20, ..small_config() };
    // The largest timestamp in each of the last batches of the first segment in turn.
    for largest_at in 80..92 {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<Vec<i64>> = (0..200i64)
            .map(|i| if i == largest_at { vec![i * 100, 1_000_000] } else { vec![i * 100, i * 100 + 50] })
            .collect();
        {
            let log = Log::open(dir.path(), config).unwrap();
            for timestamps in &batches {
                log.append(&batch_at(timestamps)).unwrap();
            }
            assert!(log.segment_count() > 1, "{} segments", log.segment_count());
            log.close().unwrap();
        }
        let reopened = Log::open(dir.path(), config).unwrap();
        assert_eq!(found(&reopened), first_of_largest(&batches), "largest at batch {largest_at}");
    }
}

fn timestamps() -> impl Strategy<Value = Vec<Vec<i64>>> {
    // Few distinct values, so the largest often repeats, across batches and within one.
    proptest::collection::vec(proptest::collection::vec(0i64..40, 1..5), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Against the model, while appending, after a clean close and reopen, and after a crash (the files copied
    /// while the log is open, so the active segment is rescanned).
    #[test]
    fn largest_timestamp_matches_the_model_live_and_after_reopens(batches in timestamps(), dense_index in any::<bool>()) {
        let config = if dense_index { LogConfig { index_interval_bytes: 1, ..small_config() } } else { small_config() };
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let expected = first_of_largest(&batches);
        {
            let log = Log::open(dir.path(), config).unwrap();
            for (i, timestamps) in batches.iter().enumerate() {
                log.append(&batch_at(timestamps)).unwrap();
                prop_assert_eq!(found(&log), first_of_largest(&batches[..=i]));
            }
            copy_dir(dir.path(), crashed.path());
            log.close().unwrap();
        }
        prop_assert_eq!(found(&Log::open(dir.path(), config).unwrap()), expected);
        prop_assert_eq!(found(&Log::open(crashed.path(), config).unwrap()), expected);
    }
}
