//! Log compaction (`Log::compact`): each key's newest record stays at its offset, the rest go, and the log reads,
//! recovers and replicates as any other.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{both_write_modes, small_config, ManualClock, Stored};
use proptest::prelude::*;
use rill_protocol::{Record, RecordBatchBuilder};
use rill_storage::{CompactionSettings, Log, LogConfig};

/// Every pass due at once: no dirty ratio, no lag, tombstones kept a minute.
const EAGER: CompactionSettings = CompactionSettings {
    min_cleanable_dirty_permille: 0,
    min_compaction_lag_ms: 0,
    delete_retention_ms: 60_000,
    max_compaction_lag_ms: None,
    key_map_bytes: 1 << 20,
};

/// One record to append: its key (`None`: keyless) and value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Put {
    key: Option<u8>,
    value: Option<u16>,
}

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

fn batch_of(puts: &[Put], ts: i64) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::default();
    for put in puts {
        builder.push(&Record {
            key: put.key.map(|k| format!("key-{k}").into_bytes()),
            value: put.value.map(|v| format!("value-{v}-{}", "x".repeat(v as usize % 40)).into_bytes()),
            headers: vec![],
            timestamp_ms: ts,
        });
    }
    builder.build()
}

/// Every record from the log start to the high watermark: (offset, key, value).
fn read_records(log: &Log) -> Vec<Stored> {
    common::read_records(log, log.log_start_offset())
}

/// What compaction up to `end` must leave of `written` (offset order): below `end`, a keyed record only if no
/// later record below `end` has its key, and a tombstone only while `tombstones_stay`; keyless records and
/// everything from `end` on, all.
fn expected_after(written: &[Stored], end: i64, tombstones_stay: bool) -> Vec<Stored> {
    let mut newest: HashMap<&[u8], i64> = HashMap::new();
    for (offset, key, _) in written.iter().filter(|(offset, _, _)| *offset < end) {
        if let Some(key) = key {
            newest.insert(key, *offset);
        }
    }
    written
        .iter()
        .filter(|(offset, key, value)| match key {
            Some(key) if *offset < end => newest[key.as_slice()] == *offset && (value.is_some() || tombstones_stay),
            _ => true,
        })
        .cloned()
        .collect()
}

fn put(key: u8, value: u16) -> Put {
    Put { key: Some(key), value: Some(value) }
}

#[test]
fn each_key_keeps_its_newest_record_at_its_offset_in_every_write_mode() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
        // Single-record and several-record batches, ten keys updated over and over, a keyless record now and then.
        for i in 0..120u16 {
            let puts: Vec<Put> = match i % 4 {
                0 => vec![put((i % 10) as u8, i)],
                1 => vec![put((i % 10) as u8, i), put(((i + 3) % 10) as u8, i + 1000)],
                2 => vec![Put { key: None, value: Some(i) }],
                _ => (0..5).map(|j| put(((i + j) % 10) as u8, i * 10 + j)).collect(),
            };
            log.append(&batch_of(&puts, 1_000_000)).unwrap();
        }
        let before = read_records(&log);
        let (end_before, size_before) = (log.log_end_offset(), log.size_bytes());
        let outcome = log.compact(&EAGER).unwrap().expect("a pass was due");
        assert!(outcome.segments_rewritten > 0 && outcome.records_removed > 0, "{outcome:?}");
        let expected = expected_after(&before, outcome.cleaned_through, true);
        assert!(expected.len() < before.len());
        assert_eq!(read_records(&log), expected, "{config:?}");
        assert_eq!(log.log_end_offset(), end_before, "offsets do not move");
        assert!(log.size_bytes() < size_before, "{} bytes, {size_before} before", log.size_bytes());
        assert_eq!(log.compact(&EAGER).unwrap(), None, "nothing dirty is left");

        // Appends go on after it, and both a clean and an unclean reopen read the same log.
        log.append(&batch_of(&[put(1, 9999)], 1_000_000)).unwrap();
        let now = read_records(&log);
        log.close().unwrap();
        drop(log);
        let reopened = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
        assert_eq!(read_records(&reopened), now, "after a clean reopen");
        drop(reopened);
        std::fs::remove_file(dir.path().join("partition.checkpoint")).unwrap();
        let recovered = Log::open_with_clock(dir.path(), config, clock).unwrap();
        assert_eq!(read_records(&recovered), now, "after a recovery that rescanned every segment");
    }
}

#[test]
fn a_tombstone_removes_its_key_and_goes_itself_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let config = LogConfig { segment_bytes: 1024, max_batch_bytes: 1024, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    for i in 0..20u16 {
        log.append(&batch_of(&[put(1, i), put(2, i)], 1_000_000)).unwrap();
    }
    // Stamped long before delete_retention_ms: still the newest value of key 1 for the first pass that sees it.
    log.append(&batch_of(&[Put { key: Some(1), value: None }], 0)).unwrap();
    for i in 0..20u16 {
        log.append(&batch_of(&[put(3, i)], 1_000_000)).unwrap();
    }
    let written = read_records(&log);
    let tombstone_at = written.iter().find(|(_, _, value)| value.is_none()).unwrap().0;
    let outcome = log.compact(&EAGER).unwrap().unwrap();
    assert!(outcome.cleaned_through > tombstone_at, "the tombstone's segment was cleaned: {outcome:?}");
    let after = read_records(&log);
    assert_eq!(after, expected_after(&written, outcome.cleaned_through, true));
    let key1: Vec<_> = after.iter().filter(|(_, key, _)| key.as_deref() == Some(&b"key-1"[..])).collect();
    assert_eq!(key1.len(), 1, "only the tombstone is left of key 1: {key1:?}");
    assert_eq!(key1[0].0, tombstone_at);

    // Past delete_retention_ms the tombstone goes too, at the next pass, which new writes make due (after a restart).
    clock.advance(EAGER.delete_retention_ms as i64 + 1);
    log.close().unwrap();
    drop(log);
    let log = Log::open_with_clock(dir.path(), config, clock).unwrap();
    assert_eq!(log.compact(&EAGER).unwrap(), None, "nothing new since the last pass");
    for i in 20..60u16 {
        log.append(&batch_of(&[put(3, i)], 1_000_000)).unwrap();
    }
    let written = read_records(&log);
    let outcome = log.compact(&EAGER).unwrap().unwrap();
    let after = read_records(&log);
    assert_eq!(after, expected_after(&written, outcome.cleaned_through, false));
    assert!(after.iter().all(|(_, key, _)| key.as_deref() != Some(&b"key-1"[..])), "key 1 is gone");
}

#[test]
fn the_active_segment_and_what_is_too_recent_stay_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let log = Log::open_with_clock(dir.path(), small_config(), clock.clone()).unwrap();
    for i in 0..3u16 {
        log.append(&batch_of(&[put(1, i)], 1_000_000)).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.compact(&EAGER).unwrap(), None, "only the active segment: nothing is cleanable");
    for i in 3..60u16 {
        log.append(&batch_of(&[put(1, i)], 1_000_000)).unwrap();
    }
    let lagging = CompactionSettings { min_compaction_lag_ms: 10_000, ..EAGER };
    assert_eq!(log.compact(&lagging).unwrap(), None, "every segment is younger than the lag");
    let dirty_enough = CompactionSettings { min_cleanable_dirty_permille: 500, ..EAGER };
    clock.advance(10_000);
    assert!(log.compact(&dirty_enough).unwrap().is_some(), "all dirty, past the lag");
    assert_eq!(log.compact(&dirty_enough).unwrap(), None, "nothing dirty since");
}

/// With `max_compaction_lag_ms`, a log dirtied a little (far below the dirty ratio) is still compacted once its
/// oldest dirty record is that old; before then, and without it, the ratio alone decides.
#[test]
fn max_compaction_lag_compacts_a_log_the_ratio_would_leave() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000_000);
    let log = Log::open_with_clock(dir.path(), small_config(), clock.clone()).unwrap();
    for i in 0..60u16 {
        log.append(&batch_of(&[put((i % 30) as u8, i)], 1_000_000)).unwrap();
    }
    let strict = CompactionSettings { min_cleanable_dirty_permille: 1000, ..EAGER };
    log.compact(&EAGER).unwrap().expect("the first pass, everything dirty");
    // A little more: a few updates, far below a ratio of 1.
    for i in 60..100u16 {
        log.append(&batch_of(&[put(1, i)], 1_001_000)).unwrap();
    }
    let written = read_records(&log);
    assert_eq!(log.compact(&strict).unwrap(), None, "the ratio alone: not due");
    let lagged = CompactionSettings { max_compaction_lag_ms: Some(60_000), ..strict };
    assert_eq!(log.compact(&lagged).unwrap(), None, "the dirty records are a second old, the lag a minute");
    clock.advance(61_000);
    let outcome = log.compact(&lagged).unwrap().expect("past the lag: due whatever the ratio");
    assert!(outcome.records_removed > 0, "{outcome:?}");
    assert_eq!(read_records(&log), expected_after(&written, outcome.cleaned_through, true));
}

/// A pass bounded by its key map ends at the last segment it mapped whole, and the next goes on from there.
#[test]
fn a_small_key_map_cleans_part_of_the_log_per_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for i in 0..200u16 {
        log.append(&batch_of(&[put((i % 50) as u8, i)], 1_000_000)).unwrap();
    }
    let written = read_records(&log);
    let small = CompactionSettings { key_map_bytes: 200, ..EAGER };
    let first = log.compact(&small).unwrap().unwrap();
    assert!(first.cleaned_through < log.log_end_offset());
    assert_eq!(read_records(&log), expected_after(&written, first.cleaned_through, true));
    let second = log.compact(&small).unwrap().unwrap();
    assert!(second.cleaned_through > first.cleaned_through, "{first:?} then {second:?}");
}

/// A crash after the rewrite was written but before it took its segment's place leaves the old segment, and the
/// rewrite is removed at the next open.
#[test]
fn a_rewrite_left_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for i in 0..60u16 {
        log.append(&batch_of(&[put(1, i)], 1_000_000)).unwrap();
    }
    let written = read_records(&log);
    log.close().unwrap();
    drop(log);
    let stray = dir.path().join(format!("{:020}.cleaned", 0));
    std::fs::write(&stray, b"half a rewrite").unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(!stray.exists());
    assert_eq!(read_records(&log), written);
}

/// The `.log` files in a log's directory, by base offset.
fn log_files(dir: &std::path::Path) -> Vec<(i64, u64)> {
    let mut files: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().unwrap();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, entry.metadata().unwrap().len()))
        })
        .collect();
    files.sort_unstable();
    files
}

/// A log whose updates keep two keys only: compaction leaves a batch or two of each sealed segment, and the
/// merges that follow put neighbours together while they fit one segment, with every offset and record kept,
/// through a clean reopen and a recovery that rescans every segment.
#[test]
fn small_segments_merge_into_ones_that_fit_a_segment() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        for i in 0..300u16 {
            let keyless = (i % 25 == 0).then_some(Put { key: None, value: Some(i) });
            let puts: Vec<Put> = [put((i % 2) as u8, i)].into_iter().chain(keyless).collect();
            log.append(&batch_of(&puts, 1_000_000)).unwrap();
        }
        let written = read_records(&log);
        let segments_before = log.segment_count();
        let outcome = log.compact(&EAGER).unwrap().expect("a pass was due");
        assert!(outcome.segments_merged > 0, "{outcome:?}");
        assert_eq!(log.segment_count(), segments_before - outcome.segments_merged);
        let expected = expected_after(&written, outcome.cleaned_through, true);
        assert_eq!(read_records(&log), expected, "{config:?}");
        let files = log_files(dir.path());
        assert_eq!(files.len(), log.segment_count(), "one file a segment: {files:?}");
        let sealed = &files[..files.len() - 1];
        assert!(sealed.iter().all(|(_, bytes)| *bytes <= config.segment_bytes), "each fits a segment: {files:?}");
        // Most of the keyed records went, and the keyless ones stayed: far fewer files than before.
        assert!(files.len() * 3 < segments_before, "{} files of {segments_before} segments", files.len());
        log.append(&batch_of(&[put(0, 9999)], 1_000_000)).unwrap();
        let now = read_records(&log);
        log.close().unwrap();
        drop(log);
        let reopened = Log::open(dir.path(), config).unwrap();
        assert_eq!(read_records(&reopened), now, "after a clean reopen");
        drop(reopened);
        std::fs::remove_file(dir.path().join("partition.checkpoint")).unwrap();
        let recovered = Log::open(dir.path(), config).unwrap();
        assert_eq!(read_records(&recovered), now, "after a recovery that rescanned every segment");
        assert_eq!(recovered.segment_count(), log_files(dir.path()).len(), "no segment of the merges came back");
    }
}

/// A crash after a merge's commit (its `.swap` renamed and fsynced) but before the old segments' files were all
/// removed: the next open finishes the merge, wherever it stopped.
#[test]
fn a_merge_a_crash_interrupted_is_finished_at_open() {
    for removed_before_the_crash in [0, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_config()).unwrap();
        for i in 0..150u16 {
            log.append(&batch_of(&[Put { key: None, value: Some(i) }], 1_000_000)).unwrap();
        }
        let written = read_records(&log);
        log.close().unwrap();
        drop(log);
        // What a merge of the first three segments commits: their batches, one after the other.
        let files = log_files(dir.path());
        assert!(files.len() > 4, "{files:?}");
        let merged: Vec<u8> = files[..3]
            .iter()
            .flat_map(|(base, _)| std::fs::read(dir.path().join(format!("{base:020}.log"))).unwrap())
            .collect();
        let (base, next) = (files[0].0, files[3].0);
        std::fs::write(dir.path().join(format!("{base:020}-{next:020}.swap")), &merged).unwrap();
        for (doomed, _) in &files[1..1 + removed_before_the_crash] {
            std::fs::remove_file(dir.path().join(format!("{doomed:020}.log"))).unwrap();
        }
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_eq!(read_records(&log), written, "after {removed_before_the_crash} of the old files went");
        let now = log_files(dir.path());
        assert_eq!(now[0], (base, merged.len() as u64), "the merged segment in the first one's place");
        assert_eq!(&now[1..], &files[3..], "the others went, the rest stayed");
        assert_eq!(log.segment_count(), files.len() - 2);
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_str()
            .unwrap()
            .ends_with(".swap")));
    }
}

/// Readers going on while a pass swaps segments under them: every read answers whole valid batches from the
/// offset asked, and every key ends with its newest value.
#[test]
fn reads_during_a_pass_see_the_old_segment_or_the_new_one() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), config).unwrap());
        for i in 0..400u16 {
            log.append(&batch_of(&[put((i % 7) as u8, i)], 1_000_000)).unwrap();
        }
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (log, done) = (Arc::clone(&log), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut passes = 0;
                    while !done.load(Ordering::Acquire) || passes == 0 {
                        let records = read_records(&log);
                        assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "offsets in order");
                        passes += 1;
                    }
                })
            })
            .collect();
        for _ in 0..5 {
            log.compact(&EAGER).unwrap();
            for i in 0..50u16 {
                log.append(&batch_of(&[put((i % 7) as u8, 5000 + i)], 1_000_000)).unwrap();
            }
        }
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().unwrap();
        }
    }
}

fn puts() -> impl Strategy<Value = Vec<Vec<Put>>> {
    let one = (prop::option::weighted(0.9, 0u8..12), prop::option::weighted(0.9, any::<u16>()))
        .prop_map(|(key, value)| Put { key, value });
    prop::collection::vec(prop::collection::vec(one, 1..6), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any mix of keys, tombstones and keyless records, compacted, appended to and compacted again, reads as the
    /// model says, and the same after a recovery that rescans every segment.
    #[test]
    fn compaction_leaves_what_the_model_says(first in puts(), second in puts()) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let config = LogConfig { segment_bytes: 1024, max_batch_bytes: 1024, ..small_config() };
        let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
        for batch in &first {
            log.append(&batch_of(batch, 1_000_000)).unwrap();
        }
        let mut model = read_records(&log);
        if let Some(outcome) = log.compact(&EAGER).unwrap() {
            model = expected_after(&model, outcome.cleaned_through, true);
        }
        prop_assert_eq!(&read_records(&log), &model);
        for batch in &second {
            log.append(&batch_of(batch, 1_000_000)).unwrap();
        }
        model = read_records(&log);
        if let Some(outcome) = log.compact(&EAGER).unwrap() {
            model = expected_after(&model, outcome.cleaned_through, true);
        }
        prop_assert_eq!(&read_records(&log), &model);
        drop(log);
        std::fs::remove_file(dir.path().join("partition.checkpoint")).unwrap();
        let recovered = Log::open_with_clock(dir.path(), config, clock).unwrap();
        prop_assert_eq!(read_records(&recovered), model);
    }
}

#[test]
fn a_compacted_log_takes_only_records_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { compaction: Some(EAGER), ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    log.append(&batch_of(&[put(1, 1)], 1_000_000)).unwrap();
    let keyless = log.append(&batch_of(&[put(1, 2), Put { key: None, value: Some(3) }], 1_000_000)).unwrap_err();
    assert!(keyless.to_string().contains("no key"), "{keyless}");
    assert_eq!(log.log_end_offset(), 1, "nothing of the refused batch was appended");
    log.reconfigure(&LogConfig { compaction: None, ..config }).unwrap();
    log.append(&batch_of(&[Put { key: None, value: Some(3) }], 1_000_000)).unwrap();
}

/// `puts` as a transactional batch of producer `id` (epoch 0) at sequence `sequence`.
fn transactional(id: i64, sequence: i32, puts: &[Put]) -> Vec<u8> {
    let mut bytes = batch_of(puts, 1_000_000);
    let mut header = rill_protocol::BatchHeader::parse(&bytes).unwrap();
    (header.producer_id, header.producer_epoch, header.base_sequence) = (id, 0, sequence);
    header.attributes |= rill_protocol::batch::TRANSACTIONAL_BIT;
    rill_protocol::record::write_header(&mut bytes, &header);
    bytes
}

/// A committed transaction's records are compacted as any others; an aborted one's all go and never stand for
/// their key's newest value; the markers stay.
#[test]
fn aborted_transactions_go_and_committed_ones_are_compacted() {
    use rill_protocol::control::{end_transaction_marker, TransactionOutcome};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let marker = |id, outcome| end_transaction_marker(id, 0, 0, outcome, 1_000_000);
    log.append(&transactional(10, 0, &[put(1, 100), put(4, 400)])).unwrap();
    log.append_control_unsynced(&marker(10, TransactionOutcome::Commit)).unwrap();
    log.append(&transactional(11, 0, &[put(1, 200), put(2, 201)])).unwrap();
    log.append_control_unsynced(&marker(11, TransactionOutcome::Abort)).unwrap();
    log.append(&batch_of(&[put(4, 401)], 1_000_000)).unwrap();
    for i in 0..60u16 {
        log.append(&batch_of(&[put(9, i)], 1_000_000)).unwrap();
    }
    let outcome = log.compact(&EAGER).unwrap().unwrap();
    let data = |records: Vec<Stored>| -> Vec<KeyValue> {
        let ours = records.into_iter().filter(|(_, key, _)| key.as_ref().is_some_and(|k| k.starts_with(b"key-")));
        ours.filter(|(offset, key, _)| *offset < outcome.cleaned_through && key.as_deref() != Some(&b"key-9"[..]))
            .map(|(_, key, value)| (key, value))
            .collect()
    };
    let value = |v: u16| Some(format!("value-{v}-{}", "x".repeat(v as usize % 40)).into_bytes());
    assert_eq!(
        data(read_records(&log)),
        vec![(Some(b"key-1".to_vec()), value(100)), (Some(b"key-4".to_vec()), value(401))],
        "k1 keeps its committed value, the aborted k1 and k2 are gone, the committed k4 gave way to a later one"
    );
    let markers = read_records(&log).into_iter().filter(|(_, key, _)| key.as_ref().is_some_and(|k| k.len() == 4));
    assert_eq!(markers.count(), 2, "both markers stay");
    assert_eq!(log.aborted_transactions(0, log.log_end_offset()).len(), 1, "read_committed readers still skip it");
}

/// Where the last pass ended survives a restart, so the next pass does not rewrite the log again; without the file
/// a pass reads it all again and removes nothing more.
#[test]
fn a_restart_remembers_where_compaction_ended() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for i in 0..80u16 {
        log.append(&batch_of(&[put((i % 5) as u8, i)], 1_000_000)).unwrap();
    }
    log.compact(&EAGER).unwrap().expect("a pass was due");
    let compacted = read_records(&log);
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.compact(&EAGER).unwrap(), None, "nothing dirty since the last pass");
    drop(log);
    std::fs::remove_file(dir.path().join("cleaner-offset.checkpoint")).unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let again = log.compact(&EAGER).unwrap().expect("everything counts as dirty");
    assert_eq!((again.segments_rewritten, again.records_removed), (0, 0), "{again:?}");
    assert_eq!(read_records(&log), compacted);
}
