use proptest::prelude::*;

use super::*;

fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id,
        producer_epoch: epoch,
        base_sequence,
        record_count: records,
    }
}

/// Checks and, when accepted, records the batch at `*end` (advancing it), as the log does.
fn append(state: &mut ProducerState, end: &mut i64, batch: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
    let outcome = ProducerState::check(state.get(batch.producer_id), batch)?;
    if outcome == SequenceCheck::Append {
        state.record(batch, *end, 1_000);
        *end += i64::from(batch.record_count);
    }
    Ok(outcome)
}

fn original_offsets(outcome: Result<SequenceCheck, ProducerError>) -> Option<(i64, i64)> {
    match outcome {
        Ok(SequenceCheck::Duplicate(original)) => Some((original.base_offset, original.last_offset)),
        _ => None,
    }
}

#[test]
fn a_retry_of_any_of_the_last_five_batches_gets_its_original_offsets() {
    let (mut state, mut end) = (ProducerState::default(), 0);
    for i in 0..7 {
        assert_eq!(append(&mut state, &mut end, &header(1, 0, i * 3, 3)), Ok(SequenceCheck::Append));
    }
    for i in 2..7 {
        let retry = original_offsets(append(&mut state, &mut end, &header(1, 0, i * 3, 3)));
        assert_eq!(retry, Some((i64::from(i) * 3, i64::from(i) * 3 + 2)), "batch {i}");
    }
    assert_eq!(end, 21, "no duplicate was appended");
    // Older than the last five: no longer known, so neither a duplicate nor the next batch.
    assert_eq!(
        append(&mut state, &mut end, &header(1, 0, 3, 3)),
        Err(ProducerError::OutOfOrderSequence { producer_id: 1, epoch: 0, sequence: 3, expected: 21 })
    );
}

#[test]
fn a_gap_or_an_overlapping_batch_is_out_of_order() {
    let (mut state, mut end) = (ProducerState::default(), 0);
    append(&mut state, &mut end, &header(1, 0, 0, 5)).unwrap();
    let gap = append(&mut state, &mut end, &header(1, 0, 6, 1));
    assert_eq!(gap, Err(ProducerError::OutOfOrderSequence { producer_id: 1, epoch: 0, sequence: 6, expected: 5 }));
    // Same first sequence, different length: not the batch it claims to repeat.
    assert!(append(&mut state, &mut end, &header(1, 0, 0, 4)).is_err());
    assert_eq!(append(&mut state, &mut end, &header(1, 0, 5, 1)), Ok(SequenceCheck::Append));
}

#[test]
fn an_older_epoch_is_fenced_and_a_newer_one_starts_at_sequence_zero() {
    let (mut state, mut end) = (ProducerState::default(), 0);
    append(&mut state, &mut end, &header(1, 2, 0, 2)).unwrap();
    assert_eq!(
        append(&mut state, &mut end, &header(1, 1, 2, 1)),
        Err(ProducerError::InvalidEpoch { producer_id: 1, epoch: 1, current: 2 })
    );
    assert_eq!(
        append(&mut state, &mut end, &header(1, 3, 2, 1)),
        Err(ProducerError::OutOfOrderSequence { producer_id: 1, epoch: 3, sequence: 2, expected: 0 })
    );
    assert_eq!(append(&mut state, &mut end, &header(1, 3, 0, 1)), Ok(SequenceCheck::Append));
    // The new epoch forgot the old one's batches: the old first batch is fenced, not a duplicate.
    assert!(matches!(append(&mut state, &mut end, &header(1, 2, 0, 2)), Err(ProducerError::InvalidEpoch { .. })));
    assert_eq!(state.get(1).map(|e| (e.epoch, e.batches.len())), Some((3, 1)));
}

#[test]
fn an_unknown_producer_is_accepted_at_any_sequence() {
    let (mut state, mut end) = (ProducerState::default(), 0);
    assert_eq!(append(&mut state, &mut end, &header(9, 4, 1234, 2)), Ok(SequenceCheck::Append));
    assert_eq!(append(&mut state, &mut end, &header(9, 4, 1236, 1)), Ok(SequenceCheck::Append));
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
    assert_eq!(last_sequence(5, 3), 8);
    let (mut state, mut end) = (ProducerState::default(), 0);
    append(&mut state, &mut end, &header(1, 0, i32::MAX - 3, 2)).unwrap();
    // Spans the wrap: sequences MAX-1, MAX, 0.
    assert_eq!(append(&mut state, &mut end, &header(1, 0, i32::MAX - 1, 3)), Ok(SequenceCheck::Append));
    assert_eq!(original_offsets(append(&mut state, &mut end, &header(1, 0, i32::MAX - 1, 3))), Some((2, 4)));
    assert_eq!(append(&mut state, &mut end, &header(1, 0, 1, 1)), Ok(SequenceCheck::Append));
    assert!(append(&mut state, &mut end, &header(1, 0, 0, 1)).is_err());
}

#[test]
fn idle_producers_expire_and_busy_ones_stay() {
    let mut state = ProducerState::default();
    state.record(&header(1, 0, 0, 1), 0, 1_000);
    state.record(&header(2, 0, 0, 1), 1, 5_000);
    assert_eq!(state.expire(10_999, 10_000), 0);
    assert_eq!(state.expire(11_000, 10_000), 1);
    assert!(state.get(1).is_none() && state.get(2).is_some());
    // The clock is the broker's: a producer's ancient timestamps do not make it expire.
    assert_eq!(state.expire(14_000, 10_000), 0);
}

#[test]
fn batches_without_a_producer_id_leave_no_state() {
    let mut state = ProducerState::default();
    state.record(&header(-1, -1, -1, 3), 0, 0);
    assert!(state.is_empty());
}

/// A batch as the model remembers it: first and last sequence, base and last offset.
type Remembered = (i32, i32, i64, i64);

proptest! {
    /// Against a model that keeps every batch: whatever order a producer's batches and retries come in, a retry
    /// of one of its last five batches in the current epoch is answered with that batch's offsets, the next batch
    /// is appended, and nothing else is.
    #[test]
    fn answers_match_a_model_that_keeps_every_batch(
        steps in prop::collection::vec((0i64..3, 0usize..8, 1i32..4, any::<bool>()), 1..80),
        start in prop_oneof![Just(0i32), Just(i32::MAX - 5), 0..i32::MAX],
    ) {
        let (mut state, mut end) = (ProducerState::default(), 0i64);
        // Per producer: every appended batch (first sequence, last sequence, base offset, last offset), and the
        // next sequence.
        let mut model: Vec<(Vec<Remembered>, i32)> = vec![(Vec::new(), start); 3];
        for (producer, back, records, is_retry) in steps {
            let (history, next) = &mut model[producer as usize];
            let batch = if is_retry && !history.is_empty() {
                let (first, _, base, last_offset) = history[history.len() - 1 - back.min(history.len() - 1)];
                header(producer, 0, first, (last_offset - base + 1) as i32)
            } else {
                header(producer, 0, *next, records)
            };
            let position = history.iter().rposition(|(first, last, ..)| {
                *first == batch.base_sequence && *last == last_sequence(batch.base_sequence, batch.last_offset_delta)
            });
            let outcome = append(&mut state, &mut end, &batch);
            match position {
                Some(at) if history.len() - at <= BATCHES_KEPT => {
                    let (_, _, base, last) = history[at];
                    prop_assert_eq!(original_offsets(outcome), Some((base, last)));
                }
                Some(_) => prop_assert!(outcome.is_err(), "a batch older than the last five is refused"),
                None if batch.base_sequence == *next || history.is_empty() => {
                    prop_assert_eq!(outcome, Ok(SequenceCheck::Append));
                    let last = last_sequence(batch.base_sequence, batch.last_offset_delta);
                    history.push((batch.base_sequence, last, end - i64::from(batch.record_count), end - 1));
                    *next = last_sequence(last, 1);
                }
                None => prop_assert!(outcome.is_err()),
            }
        }
    }
}
