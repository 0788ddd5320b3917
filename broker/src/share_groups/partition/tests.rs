use super::*;

fn rules() -> DeliveryRules {
    DeliveryRules {
        lock_duration: Duration::from_secs(30),
        delivery_count_limit: 3,
        max_record_locks: 10,
        keeps_dead_letters: false,
    }
}

fn data(base_offset: i64, last_offset: i64) -> BatchSpan {
    BatchSpan { base_offset, last_offset, is_skipped: false }
}

fn member(name: &str) -> MemberRef {
    Arc::from(name)
}

fn ranges(acquired: &[Acquired]) -> Vec<(i64, i64, u16)> {
    acquired.iter().map(|a| (a.first, a.last, a.delivery_count)).collect()
}

#[test]
fn fresh_records_are_acquired_once_and_accepting_them_moves_the_start() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(5);
    assert_eq!(partition.read_from(&rules), Some(5));
    let a = member("a");
    let got = partition.acquire(&[data(5, 7), data(8, 8)], &a, now, 100, &rules);
    assert_eq!(ranges(&got), [(5, 8, 1)]);
    // A second member reading the same batches gets nothing: they are out with `a`.
    assert!(partition.acquire(&[data(5, 7), data(8, 8)], &member("b"), now, 100, &rules).is_empty());
    assert_eq!(partition.read_from(&rules), Some(9));
    partition.acknowledge("a", 5, 6, &[1], &rules).unwrap();
    assert_eq!((partition.start(), partition.end(), partition.in_flight()), (7, 9, 2));
    partition.acknowledge("a", 7, 8, &[1, 3], &rules).unwrap();
    assert_eq!((partition.start(), partition.end(), partition.in_flight()), (9, 9, 0));
}

#[test]
fn a_released_record_goes_to_the_next_fetch_until_its_delivery_count_runs_out() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    let (a, b) = (member("a"), member("b"));
    assert_eq!(ranges(&partition.acquire(&[data(0, 1)], &a, now, 100, &rules)), [(0, 1, 1)]);
    partition.acknowledge("a", 0, 1, &[1, 2], &rules).unwrap();
    assert_eq!(partition.read_from(&rules), Some(1));
    assert_eq!(ranges(&partition.acquire(&[data(0, 1)], &b, now, 100, &rules)), [(1, 1, 2)]);
    partition.acknowledge("b", 1, 1, &[2], &rules).unwrap();
    assert_eq!(ranges(&partition.acquire(&[data(0, 1)], &a, now, 100, &rules)), [(1, 1, 3)]);
    // The third delivery was the last: released again, the record is archived and the start moves past it.
    partition.acknowledge("a", 1, 1, &[2], &rules).unwrap();
    assert_eq!((partition.start(), partition.in_flight()), (2, 0));
    let counts = partition.counts();
    assert_eq!((counts.acquired, counts.accepted, counts.released, counts.archived), (4, 1, 3, 1));
}

#[test]
fn under_rules_that_keep_them_every_record_given_up_on_is_a_dead_letter_until_taken() {
    let rules = DeliveryRules { keeps_dead_letters: true, ..rules() };
    let now = Instant::now();
    let mut partition = SharePartition::starting_at(0);
    let (a, b) = (member("a"), member("b"));
    partition.acquire(&[data(0, 3)], &a, now, 100, &rules);
    // Offset 1 rejected, 0 accepted, 2 released: only the reject gives a record up.
    partition.acknowledge("a", 0, 2, &[1, 3, 2], &rules).unwrap();
    let rejected = DeadLetter { offset: 1, delivery_count: 1, cause: DeadLetterCause::Rejected };
    assert_eq!(partition.take_dead_letters(), [rejected]);
    assert!(!partition.has_dead_letters(), "taken once");
    // Offset 2 on its second and third deliveries: the third release archives it; offset 3's lock runs out on
    // its first delivery (available again, not a dead letter).
    partition.acquire(&[data(0, 3)], &b, now, 100, &rules);
    partition.acknowledge("b", 2, 2, &[2], &rules).unwrap();
    partition.acquire(&[data(0, 3)], &a, now, 100, &rules);
    assert!(!partition.has_dead_letters());
    let later = now + rules.lock_duration;
    assert_eq!(partition.expire_locks(later, &rules), 2);
    let exhausted = DeadLetter { offset: 2, delivery_count: 3, cause: DeadLetterCause::DeliveryLimit };
    assert_eq!(partition.take_dead_letters(), [exhausted]);
    assert_eq!(partition.read_from(&rules), Some(3));
    // A member that leaves holding a record on its last delivery gives it up too.
    partition.acquire(&[data(0, 3)], &a, later, 100, &rules);
    partition.release_member("a", &rules);
    assert!(!partition.has_dead_letters(), "its second delivery was not its last");
    partition.acquire(&[data(0, 3)], &b, later, 100, &rules);
    assert_eq!(partition.release_member("b", &rules), 1);
    let left = DeadLetter { offset: 3, delivery_count: 3, cause: DeadLetterCause::DeliveryLimit };
    assert_eq!(partition.take_dead_letters(), [left]);
    assert_eq!((partition.start(), partition.in_flight()), (4, 0));
}

#[test]
fn without_a_dead_letter_topic_nothing_is_kept() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    partition.acquire(&[data(0, 0)], &member("a"), now, 100, &rules);
    partition.acknowledge("a", 0, 0, &[3], &rules).unwrap();
    assert!(!partition.has_dead_letters());
    assert_eq!(partition.counts().rejected, 1);
}

#[test]
fn a_stored_record_out_on_its_last_delivery_is_a_dead_letter_when_loaded() {
    let rules = DeliveryRules { keeps_dead_letters: true, ..rules() };
    let now = Instant::now();
    let mut partition = SharePartition::starting_at(0);
    for round in 0..3 {
        let name = format!("m{round}");
        partition.acquire(&[data(0, 1)], &member(&name), now, 100, &rules);
        if round < 2 {
            partition.release_member(&name, &rules);
        }
    }
    // Stored while both records were out on their third and last delivery; the broker then stopped.
    let loaded = SharePartition::decode(&partition.encode(), &rules).expect("a state it wrote");
    let mut loaded = loaded;
    let cause = DeadLetterCause::DeliveryLimit;
    let expected = [0, 1].map(|offset| DeadLetter { offset, delivery_count: 3, cause });
    assert_eq!(loaded.take_dead_letters(), expected);
    assert_eq!((loaded.start(), loaded.in_flight()), (2, 0));
    let plain = SharePartition::decode(&partition.encode(), &DeliveryRules { keeps_dead_letters: false, ..rules })
        .expect("a state it wrote");
    assert!(!plain.has_dead_letters());
}

#[test]
fn only_the_holder_may_acknowledge_and_a_refused_batch_changes_nothing() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    partition.acquire(&[data(0, 3)], &member("a"), now, 100, &rules);
    let before = partition.clone();
    assert_eq!(partition.acknowledge("b", 0, 0, &[1], &rules), Err(AckError::NotAcquired { offset: 0 }));
    assert_eq!(partition.acknowledge("a", 2, 4, &[1], &rules), Err(AckError::NotAcquired { offset: 4 }));
    assert_eq!(partition.acknowledge("a", 3, 2, &[1], &rules), Err(AckError::BadRange { first: 3, last: 2 }));
    assert_eq!(
        partition.acknowledge("a", 0, 3, &[1, 1], &rules),
        Err(AckError::TypeCount { first: 0, last: 3, types: 2, count: 4 })
    );
    assert_eq!(partition.acknowledge("a", 0, 1, &[1, 9], &rules), Err(AckError::UnknownType(9)));
    assert_eq!(partition, before);
    partition.acknowledge("a", 0, 3, &[1], &rules).unwrap();
    // Acknowledged once, an offset is not the member's any more.
    assert_eq!(partition.acknowledge("a", 0, 0, &[1], &rules), Err(AckError::NotAcquired { offset: 0 }));
}

#[test]
fn a_requests_batches_apply_all_or_none_and_may_not_overlap() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    partition.acquire(&[data(0, 5)], &member("a"), now, 100, &rules);
    let before = partition.clone();
    let batch = |first, last, types: &[i8]| AckBatch { first, last, types: types.to_vec() };
    let overlapping = [batch(0, 2, &[1]), batch(2, 3, &[2])];
    assert_eq!(
        partition.acknowledge_batches("a", &overlapping, &rules),
        Err(AckError::Overlapping { first: 2, last: 3 })
    );
    let second_bad = [batch(0, 1, &[1]), batch(4, 9, &[1])];
    assert_eq!(partition.acknowledge_batches("a", &second_bad, &rules), Err(AckError::NotAcquired { offset: 6 }));
    assert_eq!(partition, before, "nothing of a refused request applies");
    partition.acknowledge_batches("a", &[batch(3, 5, &[2, 1, 3]), batch(0, 2, &[1])], &rules).unwrap();
    assert_eq!((partition.start(), partition.in_flight(), partition.acquired()), (3, 1, 0));
}

#[test]
fn expired_locks_and_a_leaving_member_release_their_records() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    partition.acquire(&[data(0, 1)], &member("a"), now, 100, &rules);
    partition.acquire(&[data(2, 3)], &member("b"), now + Duration::from_secs(10), 100, &rules);
    assert_eq!(partition.next_deadline(), Some(now + rules.lock_duration));
    assert_eq!(partition.expire_locks(now + Duration::from_secs(29), &rules), 0);
    assert_eq!(partition.expire_locks(now + Duration::from_secs(30), &rules), 2);
    assert_eq!((partition.acquired(), partition.read_from(&rules)), (2, Some(0)));
    assert_eq!(partition.release_member("b", &rules), 2);
    assert_eq!(partition.acquired(), 0);
    assert_eq!((partition.counts().lock_timeouts, partition.counts().member_releases), (2, 2));
    // `b`'s lock is gone: its late acknowledgement is refused.
    assert_eq!(partition.acknowledge("b", 2, 2, &[1], &rules), Err(AckError::NotAcquired { offset: 2 }));
}

#[test]
fn the_window_bounds_fresh_records_and_splits_a_batch_at_its_limit() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    let a = member("a");
    assert_eq!(ranges(&partition.acquire(&[data(0, 24)], &a, now, 100, &rules)), [(0, 9, 1)]);
    assert_eq!(partition.read_from(&rules), None, "the window is full and nothing is available");
    partition.acknowledge("a", 0, 3, &[1], &rules).unwrap();
    assert_eq!(partition.read_from(&rules), Some(10));
    assert_eq!(ranges(&partition.acquire(&[data(0, 24)], &a, now, 100, &rules)), [(10, 13, 1)]);
    assert_eq!(partition.end() - partition.start(), 10);
}

#[test]
fn max_records_stops_at_a_batch_boundary_and_control_batches_are_skipped() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    let marker = BatchSpan { base_offset: 2, last_offset: 2, is_skipped: true };
    let got = partition.acquire(&[data(0, 1), marker, data(3, 4), data(5, 6)], &member("a"), now, 3, &rules);
    assert_eq!(ranges(&got), [(0, 1, 1), (3, 4, 1)]);
    assert_eq!(partition.end(), 5);
    partition.acknowledge("a", 0, 1, &[1], &rules).unwrap();
    assert_eq!(partition.start(), 3, "the marker at 2 was never in flight");
}

#[test]
fn records_below_the_log_start_are_skipped() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(0);
    partition.acquire(&[data(0, 5)], &member("a"), now, 100, &rules);
    assert!(partition.skip_below(3));
    assert_eq!((partition.start(), partition.end(), partition.in_flight()), (3, 6, 3));
    assert!(partition.skip_below(9));
    assert_eq!((partition.start(), partition.end(), partition.in_flight()), (9, 9, 0));
    assert!(!partition.skip_below(4));
}

#[test]
fn a_stored_state_comes_back_with_every_record_available_and_exhausted_ones_archived() {
    let (now, rules) = (Instant::now(), rules());
    let mut partition = SharePartition::starting_at(10);
    let a = member("a");
    partition.acquire(&[data(10, 15)], &a, now, 100, &rules);
    partition.acknowledge("a", 10, 15, &[1, 2, 1, 2, 2, 1], &rules).unwrap();
    partition.acquire(&[data(10, 15)], &a, now, 100, &rules);
    partition.acknowledge("a", 11, 11, &[2], &rules).unwrap();
    partition.acquire(&[data(10, 15)], &a, now, 100, &rules);
    // 11 has been delivered three times (the limit), 13 and 14 twice.
    let stored = SharePartition::decode(&partition.encode(), &rules).unwrap();
    assert_eq!((stored.start(), stored.end(), stored.in_flight(), stored.acquired()), (13, 16, 2, 0));
    assert_eq!(stored.read_from(&rules), Some(13));
    for garbage in [&b""[..], b"\x01", b"\x00\x00", &[0u8; 17][..16]] {
        assert_eq!(SharePartition::decode(garbage, &rules), None);
    }
    let mut reversed = SharePartition::starting_at(5).encode();
    reversed[1..9].copy_from_slice(&9i64.to_be_bytes());
    assert_eq!(SharePartition::decode(&reversed, &rules), None, "start past end");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Fetch { member: u8, max_records: usize },
        Ack { member: u8, first: i64, len: i64, kind: i8 },
        Advance { secs: u64 },
        Leave { member: u8 },
        Restore,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3u8, 1..8usize).prop_map(|(member, max_records)| Step::Fetch { member, max_records }),
            (0..3u8, 0..40i64, 1..6i64, 0..5i8).prop_map(|(member, first, len, kind)| Step::Ack {
                member,
                first,
                len,
                kind
            }),
            (1..40u64).prop_map(|secs| Step::Advance { secs }),
            (0..3u8).prop_map(|member| Step::Leave { member }),
            Just(Step::Restore),
        ]
    }

    proptest! {
        /// Whatever members do, the window's invariants hold, no offset is ever held by two members, delivery
        /// counts never pass the limit, and a record leaves the window only once it was acknowledged (accepted,
        /// rejected, a gap) or exhausted.
        #[test]
        fn the_window_keeps_its_invariants(steps in proptest::collection::vec(step(), 1..60)) {
            let rules = DeliveryRules { lock_duration: Duration::from_secs(30), delivery_count_limit: 3, max_record_locks: 8, keeps_dead_letters: false };
            // The log: batches of 3 records, a control marker at every 10th offset.
            let log: Vec<BatchSpan> = (0..20)
                .map(|n| if n % 4 == 3 {
                    BatchSpan { base_offset: n * 3, last_offset: n * 3, is_skipped: true }
                } else {
                    data(n * 3, n * 3 + 2)
                })
                .collect();
            let members: Vec<MemberRef> = ["a", "b", "c"].into_iter().map(member).collect();
            let mut now = Instant::now();
            let mut partition = SharePartition::starting_at(0);
            let mut holder: BTreeMap<i64, u8> = BTreeMap::new();
            let mut deliveries: BTreeMap<i64, u16> = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Fetch { member, max_records } => {
                        let Some(from) = partition.read_from(&rules) else { continue };
                        let batches: Vec<BatchSpan> =
                            log.iter().copied().filter(|b| b.last_offset >= from).collect();
                        for run in partition.acquire(&batches, &members[member as usize], now, max_records, &rules) {
                            for offset in run.first..=run.last {
                                prop_assert!(holder.insert(offset, member).is_none(), "{offset} held twice");
                                let count = deliveries.entry(offset).or_default();
                                *count += 1;
                                prop_assert_eq!(*count, run.delivery_count);
                                prop_assert!(*count <= rules.delivery_count_limit);
                            }
                        }
                    }
                    Step::Ack { member, first, len, kind } => {
                        let last = first + len - 1;
                        let applied = partition.acknowledge(members[member as usize].as_ref(), first, last, &[kind], &rules);
                        let held = (first..=last).all(|o| holder.get(&o) == Some(&member));
                        prop_assert_eq!(applied.is_ok(), held && (0..=3).contains(&kind));
                        if applied.is_ok() {
                            for offset in first..=last {
                                holder.remove(&offset);
                            }
                        }
                    }
                    Step::Advance { secs } => {
                        now += Duration::from_secs(secs);
                        partition.expire_locks(now, &rules);
                        holder.retain(|offset, _| partition.in_flight.get(offset).is_some_and(|r| r.lock.is_some()));
                    }
                    Step::Leave { member } => {
                        partition.release_member(members[member as usize].as_ref(), &rules);
                        holder.retain(|_, m| *m != member);
                    }
                    Step::Restore => {
                        partition = SharePartition::decode(&partition.encode(), &rules).expect("own encoding");
                        holder.clear();
                    }
                }
                prop_assert!(partition.start <= partition.end);
                prop_assert_eq!(partition.start, partition.in_flight.keys().next().copied().unwrap_or(partition.end));
                prop_assert!(partition.in_flight.keys().all(|o| (partition.start..partition.end).contains(o)));
                prop_assert!(partition.end - partition.start <= i64::from(rules.max_record_locks));
                for (offset, record) in &partition.in_flight {
                    prop_assert!(record.delivery_count < rules.delivery_count_limit || record.lock.is_some());
                    prop_assert_eq!(record.lock.is_some(), holder.contains_key(offset));
                }
            }
        }
    }
}
