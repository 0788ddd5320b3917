//! Idempotent producers in the log: duplicates answered with their original offsets, refusals, and the producer
//! state kept through rolls, clean closes, crashes at any point, damaged snapshots and truncation.

mod common;

use std::path::{Path, PathBuf};

use common::{batch, idempotent, small_config, ManualClock};
use proptest::prelude::*;
use rill_protocol::BatchIter;
use rill_storage::{Log, LogConfig, ProducerError, ProducerSummary, StorageError};

fn producer_error(result: Result<rill_storage::AppendInfo, StorageError>) -> ProducerError {
    match result {
        Err(StorageError::Producer(err)) => err,
        other => panic!("expected a producer refusal, got {other:?}"),
    }
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let first = log.append(&idempotent(1, 0, 0, 3)).unwrap();
    log.append(&batch(99, 2, 0)).unwrap();
    let second = log.append(&idempotent(1, 0, 3, 2)).unwrap();
    let end = log.log_end_offset();
    let retried = log.append(&idempotent(1, 0, 0, 3)).unwrap();
    assert!(retried.is_duplicate && !first.is_duplicate);
    assert_eq!((retried.base_offset, retried.last_offset), (first.base_offset, first.last_offset));
    let retried = log.append_batches_unsynced(&[&idempotent(1, 0, 3, 2), &idempotent(1, 0, 5, 1)]).unwrap();
    assert_eq!((retried[0].base_offset, retried[0].is_duplicate), (second.base_offset, true));
    assert_eq!((retried[1].base_offset, retried[1].is_duplicate), (end, false));
    assert_eq!(log.log_end_offset(), end + 1);
}

#[test]
fn a_refused_batch_refuses_its_whole_call_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&idempotent(1, 1, 0, 1)).unwrap();
    let call = [&idempotent(1, 1, 1, 1)[..], &idempotent(1, 1, 5, 1)[..]];
    let refused = log.append_batches_unsynced(&call);
    assert!(matches!(refused, Err(StorageError::Producer(ProducerError::OutOfOrderSequence { expected: 2, .. }))));
    assert_eq!(log.log_end_offset(), 1);
    let fenced = producer_error(log.append(&idempotent(1, 0, 1, 1)));
    assert_eq!(fenced, ProducerError::InvalidEpoch { producer_id: 1, epoch: 0, current: 1 });
    assert!(fenced.to_string().contains("fenced"), "{fenced}");
    assert!(log.append(&idempotent(1, 1, 1, 1)).is_ok(), "the producer continues where the log says");
}

#[test]
fn too_many_producer_ids_are_refused_until_idle_ones_expire() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let config = LogConfig { max_producer_ids: 2, producer_id_expiration_ms: 60_000, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&idempotent(1, 0, 0, 1)).unwrap();
    log.append(&idempotent(2, 0, 0, 1)).unwrap();
    let refused = producer_error(log.append(&idempotent(3, 0, 0, 1)));
    assert_eq!(refused, ProducerError::TooManyProducers { limit: 2 });
    assert!(refused.to_string().contains("max_producer_ids"), "{refused}");
    clock.advance(30_000);
    log.append(&idempotent(2, 0, 1, 1)).unwrap();
    clock.advance(30_000);
    // Producer 1 has been idle a minute: it makes room. Producer 2 has not.
    log.append(&idempotent(3, 0, 0, 1)).unwrap();
    let ids: Vec<i64> = log.producers().iter().map(|p| p.producer_id).collect();
    assert_eq!(ids, vec![2, 3]);
    clock.advance(60_000);
    assert_eq!(log.expire_producers(), 2);
}

/// What the log should remember after `appended` batches (producer id, epoch, first and last sequence, base and
/// last offset), for those below `end`.
fn expected_producers(appended: &[Appended], end: i64) -> Vec<ProducerSummary> {
    let mut producers: Vec<ProducerSummary> = Vec::new();
    for &(id, epoch, first, last, base, last_offset) in appended.iter().filter(|a| a.5 < end) {
        let at = match producers.iter().position(|p| p.producer_id == id) {
            Some(at) => at,
            None => {
                producers.push(ProducerSummary { producer_id: id, epoch, batches: Vec::new() });
                producers.len() - 1
            }
        };
        let producer = &mut producers[at];
        if producer.epoch != epoch {
            producer.epoch = epoch;
            producer.batches.clear();
        }
        producer.batches.push((first, last, base, last_offset));
        if producer.batches.len() > 5 {
            producer.batches.remove(0);
        }
    }
    producers.sort_by_key(|p| p.producer_id);
    producers
}

fn log_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    files.sort();
    files
}

/// Appends `steps` (producer, records, whether to retry the producer's previous batch, whether to bump its epoch)
/// and returns the log and what was appended.
/// One appended batch: producer id, epoch, first and last sequence, base and last offset.
type Appended = (i64, i16, i32, i32, i64, i64);

fn run(path: &Path, config: LogConfig, steps: &[(i64, usize, bool, bool)]) -> (Log, Vec<Appended>) {
    let log = Log::open(path, config).unwrap();
    let mut appended = Vec::new();
    // Per producer: epoch, next sequence, previous batch.
    let mut producers: Vec<(i16, i32, Option<Vec<u8>>)> = vec![(0, 0, None); 4];
    for &(id, records, is_retry, bumps_epoch) in steps {
        let (epoch, next, previous) = &mut producers[id as usize];
        if is_retry {
            if let Some(previous) = previous {
                let info = log.append(previous).unwrap();
                assert!(info.is_duplicate);
                continue;
            }
        }
        if bumps_epoch {
            *epoch += 1;
            *next = 0;
        }
        let bytes = idempotent(id, *epoch, *next, records);
        let info = log.append(&bytes).unwrap();
        assert!(!info.is_duplicate);
        let last = *next + records as i32 - 1;
        appended.push((id, *epoch, *next, last, info.base_offset, info.last_offset));
        *next = last + 1;
        *previous = Some(bytes);
        if id == 3 {
            // A producer that is not idempotent, between them.
            log.append(&batch(7, 1, 0)).unwrap();
        }
    }
    (log, appended)
}

fn steps() -> impl Strategy<Value = Vec<(i64, usize, bool, bool)>> {
    prop::collection::vec((0i64..4, 1usize..4, any::<bool>(), prop::bool::weighted(0.1)), 1..60)
}

#[test]
fn a_clean_close_leaves_a_snapshot_at_the_log_end_and_the_next_open_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let steps: Vec<_> = (0..150).map(|i| (i % 3, 2, i % 5 == 0, false)).collect();
    let (log, appended) = run(dir.path(), small_config(), &steps);
    assert!(log.segment_count() > 2, "the steps span several segments");
    let end = log.log_end_offset();
    log.close().unwrap();
    assert!(log_files(dir.path(), "snapshot").iter().any(|p| p.ends_with(format!("{end:020}.snapshot"))));
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.producers(), expected_producers(&appended, end));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// A crash leaves the last segment cut at any byte and the snapshots as the rolls left them, perhaps the
    /// newest damaged or lost: the reopened log remembers exactly the batches that survived, so it answers
    /// retries as a log that never crashed would.
    #[test]
    fn recovery_after_a_crash_at_any_point_gives_the_same_answers(
        steps in steps(),
        cut in any::<prop::sample::Index>(),
        snapshot_damage in 0u8..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (log, appended) = run(dir.path(), small_config(), &steps);
        drop(log); // a crash: no close
        let last = log_files(dir.path(), "log").pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(cut.index(len as usize + 1) as u64).unwrap();
        if let Some(newest) = log_files(dir.path(), "snapshot").pop() {
            match snapshot_damage {
                1 => std::fs::write(&newest, b"not a snapshot").unwrap(),
                2 => std::fs::remove_file(&newest).unwrap(),
                _ => {}
            }
        }
        let log = Log::open(dir.path(), small_config()).unwrap();
        let end = log.log_end_offset();
        prop_assert_eq!(log.producers(), expected_producers(&appended, end));
        // And the answers: a retry of each surviving producer's last batch is a duplicate at its offsets.
        for producer in log.producers() {
            let &(first, last, base, _) = producer.batches.last().unwrap();
            let retry = log.append(&idempotent(producer.producer_id, producer.epoch, first, (last - first + 1) as usize)).unwrap();
            prop_assert!(retry.is_duplicate);
            prop_assert_eq!(retry.base_offset, base);
        }
    }

    /// Truncation (a follower matching its leader) forgets exactly the batches it removed, and a reopen agrees.
    #[test]
    fn truncation_keeps_the_state_of_the_batches_left(steps in steps(), at in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let (log, appended) = run(dir.path(), small_config(), &steps);
        let offset = at.index(log.log_end_offset() as usize + 1) as i64;
        log.truncate_to(offset).unwrap();
        let end = log.log_end_offset();
        prop_assert_eq!(log.producers(), expected_producers(&appended, end));
        drop(log);
        let log = Log::open(dir.path(), small_config()).unwrap();
        prop_assert_eq!(log.producers(), expected_producers(&appended, end));
    }
}

#[test]
fn retention_keeps_the_producers_whose_batches_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { retention_bytes: Some(4096), ..small_config() };
    let steps: Vec<_> = (0..60).map(|i| (i % 2, 3, false, false)).collect();
    let (log, appended) = run(dir.path(), config, &steps);
    assert!(log.enforce_retention().unwrap() > 0);
    let expected = expected_producers(&appended, i64::MAX);
    assert_eq!(log.producers(), expected);
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.producers(), expected);
    let reread: usize = BatchIter::new(log.read(log.log_start_offset(), 1 << 20).unwrap().batches).count();
    assert!(reread > 0);
}
