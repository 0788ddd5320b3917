//! Transactions in the log: the last stable offset `read_committed` readers stop at, the aborted transactions
//! their reads overlap, markers fencing an old epoch, and all of it kept through rolls, a clean close, a crash
//! with the last segment cut at any byte, and truncation, against a model that replays the surviving batches.

mod common;

use common::{batch, idempotent, small_config, ManualClock};
use proptest::prelude::*;
use rill_protocol::control::{end_transaction_marker, TransactionOutcome};
use rill_protocol::BatchHeader;
use rill_storage::{AbortedTransaction, Log, LogConfig, ProducerError, StorageError};

/// A transactional batch of `records` records from producer `id` at `epoch`, starting at sequence `sequence`.
fn transactional(id: i64, epoch: i16, sequence: i32, records: usize) -> Vec<u8> {
    let mut bytes = idempotent(id, epoch, sequence, records);
    let mut header = BatchHeader::parse(&bytes).unwrap();
    header.attributes |= rill_protocol::batch::TRANSACTIONAL_BIT;
    rill_protocol::record::write_header(&mut bytes, &header);
    bytes
}

fn marker(id: i64, epoch: i16, outcome: TransactionOutcome) -> Vec<u8> {
    end_transaction_marker(id, epoch, 0, outcome, 2_000)
}

fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTransaction {
    AbortedTransaction { producer_id, first_offset, last_offset }
}

#[test]
fn read_committed_readers_stop_at_the_oldest_open_transaction_and_learn_the_aborted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&batch(1, 2, 0)).unwrap();
    assert_eq!(log.last_stable_offset(), 2, "no transaction: the high watermark");
    let first = log.append(&transactional(10, 0, 0, 3)).unwrap();
    let second = log.append(&transactional(11, 0, 0, 1)).unwrap();
    log.append(&transactional(10, 0, 3, 1)).unwrap();
    assert_eq!((first.base_offset, second.base_offset), (2, 5));
    assert_eq!(log.last_stable_offset(), 2, "producer 10's transaction is open from offset 2");
    assert_eq!(log.high_watermark(), 7);
    let commit = log.append_control_unsynced(&marker(10, 0, TransactionOutcome::Commit)).unwrap();
    assert_eq!(commit.base_offset, 7);
    assert_eq!(log.last_stable_offset(), 5, "producer 11's is still open");
    let abort = log.append_control_unsynced(&marker(11, 0, TransactionOutcome::Abort)).unwrap();
    assert_eq!(log.last_stable_offset(), 9, "none open: the high watermark");
    assert_eq!(log.aborted_transactions(0, 9), vec![aborted(11, 5, abort.base_offset)]);
    assert_eq!(log.aborted_transactions(9, 20), Vec::new(), "a read past the marker needs none");
    assert_eq!(log.aborted_transactions(0, 5), Vec::new(), "a read ending before the transaction needs none");
    // The producer's sequence goes on after its marker, in the same epoch, as a Kafka producer's does.
    log.append(&transactional(10, 0, 4, 1)).unwrap();
    assert_eq!(log.last_stable_offset(), 9);
}

#[test]
fn a_marker_of_a_newer_epoch_fences_the_old_instance_of_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(&transactional(3, 0, 0, 2)).unwrap();
    // The coordinator aborts the old instance's transaction in the new instance's epoch.
    log.append_control_unsynced(&marker(3, 1, TransactionOutcome::Abort)).unwrap();
    match log.append(&transactional(3, 0, 2, 1)) {
        Err(StorageError::Producer(ProducerError::InvalidEpoch { current: 1, .. })) => {}
        other => panic!("the old epoch is fenced, got {other:?}"),
    }
    log.append(&transactional(3, 1, 0, 1)).expect("the new instance starts at sequence 0");
    assert_eq!(log.last_stable_offset(), 3, "its new transaction is open");
}

#[test]
fn a_marker_goes_only_through_the_coordinators_path() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let refused = log.append(&marker(1, 0, TransactionOutcome::Commit));
    assert!(matches!(refused, Err(StorageError::InvalidBatch(rill_protocol::BatchError::ControlBatch))));
    let not_a_marker = log.append_control_unsynced(&batch(1, 1, 0));
    assert!(matches!(not_a_marker, Err(StorageError::InvalidBatch(rill_protocol::BatchError::ControlBatch))));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn a_producer_with_an_open_transaction_never_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(0);
    let config = LogConfig { producer_id_expiration_ms: 1_000, ..small_config() };
    let log = Log::open_with_clock(dir.path(), config, clock.clone()).unwrap();
    log.append(&transactional(1, 0, 0, 1)).unwrap();
    log.append(&transactional(2, 0, 0, 1)).unwrap();
    log.append_control_unsynced(&marker(2, 0, TransactionOutcome::Commit)).unwrap();
    clock.advance(5_000);
    assert_eq!(log.expire_producers(), 1, "only the producer without an open transaction");
    assert_eq!(log.last_stable_offset(), 0);
}

/// One step of a run: a transactional batch of producer `.0` (`records` records), or its marker.
#[derive(Debug, Clone, Copy)]
enum Step {
    Batch(i64, usize),
    Marker(i64, TransactionOutcome),
    Plain(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0i64..3, 1usize..4).prop_map(|(id, records)| Step::Batch(id, records)),
        2 => (0i64..3, any::<bool>()).prop_map(|(id, commit)| {
            Step::Marker(id, if commit { TransactionOutcome::Commit } else { TransactionOutcome::Abort })
        }),
        1 => (1usize..4).prop_map(Step::Plain),
    ];
    prop::collection::vec(step, 1..40)
}

/// Each step as appended: where it landed.
fn run(log: &Log, steps: &[Step]) -> Vec<(Step, i64, i64)> {
    let mut sequences = [0i32; 3];
    let mut landed = Vec::new();
    for &step in steps {
        let info = match step {
            Step::Batch(id, records) => {
                let sequence = &mut sequences[id as usize];
                let info = log.append(&transactional(id, 0, *sequence, records)).unwrap();
                *sequence += records as i32;
                info
            }
            Step::Marker(id, outcome) => log.append_control_unsynced(&marker(id, 0, outcome)).unwrap(),
            Step::Plain(records) => log.append(&batch(99, records, 1_000)).unwrap(),
        };
        landed.push((step, info.base_offset, info.last_offset));
    }
    landed
}

/// What the log must say once it ends at `end`: the first unstable offset and the aborted transactions, from
/// the steps wholly below `end`.
fn model(landed: &[(Step, i64, i64)], end: i64) -> (Option<i64>, Vec<AbortedTransaction>) {
    let mut open: [Option<i64>; 3] = [None; 3];
    let mut aborted_list = Vec::new();
    for &(step, base, last) in landed.iter().filter(|(_, _, last)| *last < end) {
        match step {
            Step::Batch(id, _) => {
                open[id as usize].get_or_insert(base);
            }
            Step::Marker(id, outcome) => {
                if let Some(first) = open[id as usize].take() {
                    if outcome == TransactionOutcome::Abort {
                        aborted_list.push(aborted(id, first, last));
                    }
                }
            }
            Step::Plain(_) => {}
        }
    }
    (open.iter().flatten().min().copied(), aborted_list)
}

fn assert_matches_model(log: &Log, landed: &[(Step, i64, i64)]) -> Result<(), TestCaseError> {
    let end = log.log_end_offset();
    let (first_unstable, aborted_list) = model(landed, end);
    prop_assert_eq!(log.last_stable_offset(), first_unstable.unwrap_or(end).min(log.high_watermark()));
    prop_assert_eq!(log.aborted_transactions(0, end), aborted_list);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the order of batches and markers, the log agrees with the model: as it runs, after a clean
    /// reopen, and after a crash whose last segment is cut at any byte (the snapshots as the rolls left them).
    #[test]
    fn open_and_aborted_transactions_survive_a_reopen_and_a_crash_at_any_point(
        steps in steps(),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_config()).unwrap();
        let landed = run(&log, &steps);
        assert_matches_model(&log, &landed)?;
        log.close().unwrap();
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_matches_model(&log, &landed)?;
        log.append(&batch(98, 1, 1_000)).unwrap();
        drop(log); // a crash: no close
        let mut segments: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        segments.sort();
        let last = segments.pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&last).unwrap().set_len(cut.index(len as usize + 1) as u64).unwrap();
        let log = Log::open(dir.path(), small_config()).unwrap();
        assert_matches_model(&log, &landed)?;
    }

    /// Truncation (a follower matching its leader) reopens the transactions whose markers it removed and
    /// forgets those whose batches it removed.
    #[test]
    fn truncation_keeps_the_transactions_of_the_batches_left(steps in steps(), at in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), small_config()).unwrap();
        let landed = run(&log, &steps);
        log.truncate_to(at.index(log.log_end_offset() as usize + 1) as i64).unwrap();
        assert_matches_model(&log, &landed)?;
    }
}
