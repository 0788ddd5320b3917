use std::sync::Mutex as StdMutex;

use super::*;

/// A node with topics of given partition counts, each partition's log at `(start, high watermark)`.
#[derive(Default)]
struct FakeLog {
    topics: BTreeMap<String, u32>,
    bounds: (i64, i64),
    /// What a lookup by time finds, whatever the time.
    at_time: Option<i64>,
    stored: StdMutex<BTreeMap<OffsetKey, Vec<u8>>>,
    /// The leader epoch of every partition.
    epoch: std::sync::atomic::AtomicU32,
}

impl ShareLog for FakeLog {
    fn partition_counts(&self, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
        self.topics.iter().filter(|(t, _)| topics.contains(*t)).map(|(t, n)| (t.clone(), *n)).collect()
    }

    fn bounds(&self, topic: &str, partition: u32, _is_read_committed: bool) -> Option<(i64, i64)> {
        self.topics.get(topic).filter(|n| partition < **n).map(|_| self.bounds)
    }

    fn offset_at_time(&self, _topic: &str, _partition: u32, _timestamp_ms: i64) -> Option<i64> {
        self.at_time
    }

    fn stored(&self, key: &OffsetKey) -> Option<crate::offsets::StoredShareState> {
        let bytes = self.stored.lock().unwrap().get(key).cloned()?;
        Some(crate::offsets::StoredShareState { version: 0, bytes })
    }

    fn leader_epoch(&self, _topic: &str, _partition: u32) -> u32 {
        self.epoch.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stored_in_group(&self, group: &str) -> Vec<(OffsetKey, Vec<u8>)> {
        self.stored
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn settings() -> ShareSettings {
    ShareSettings {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
        rules: DeliveryRules {
            lock_duration: Duration::from_secs(30),
            delivery_count_limit: 5,
            max_record_locks: 100,
            keeps_dead_letters: false,
        },
        auto_offset_reset: ShareStart::Latest,
        is_read_committed: false,
        max_groups: 2,
        max_members_per_group: 3,
    }
}

fn group_defaults() -> crate::group_config::GroupDefaults {
    let consumer = crate::group_config::ConsumerTiming {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(5),
    };
    crate::group_config::GroupDefaults { share: settings(), consumer }
}

fn group_configs() -> Arc<GroupConfigs> {
    Arc::new(GroupConfigs::new(group_defaults()))
}

/// Group configs stored in `dir`, as a single node's are.
fn stored_group_configs(dir: &std::path::Path) -> Arc<GroupConfigs> {
    Arc::new(GroupConfigs::open(group_defaults(), dir).unwrap())
}

fn share_groups() -> ShareGroups {
    ShareGroups::new(group_configs())
}

fn log(topics: &[(&str, u32)]) -> FakeLog {
    FakeLog { topics: topics.iter().map(|(t, n)| (t.to_string(), *n)).collect(), bounds: (2, 10), ..FakeLog::default() }
}

fn join(group: &str, member: &str, topics: &[&str]) -> ShareHeartbeat {
    ShareHeartbeat {
        group: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        subscribed_topics: Some(topics.iter().map(|t| t.to_string()).collect()),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        rack: None,
    }
}

fn beat(group: &str, member: &str, epoch: i32) -> ShareHeartbeat {
    ShareHeartbeat { member_epoch: epoch, subscribed_topics: None, ..join(group, member, &[]) }
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

#[test]
fn joining_members_split_the_partitions_and_new_partitions_start_at_the_reset_offset() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 3)]), Instant::now());
    let a = shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.assignment, Some(BTreeSet::from([tp("jobs", 0), tp("jobs", 1), tp("jobs", 2)])));
    assert_eq!(a.to_store.len(), 3, "each new share partition's start is stored before the answer");
    let started = SharePartition::decode(&a.to_store[0].bytes, &settings().rules).unwrap();
    assert_eq!(started.start(), 10, "latest: the high watermark");
    let b = shares.heartbeat(join("g", "b", &["jobs"]), &log, now).unwrap();
    assert_eq!(b.assignment, Some(BTreeSet::from([tp("jobs", 1)])));
    assert!(b.to_store.is_empty(), "already started");
    // `a` learns of its smaller assignment at its next heartbeat, with a new epoch.
    let a = shares.heartbeat(beat("g", "a", 1), &log, now).unwrap();
    assert_eq!((a.member_epoch, a.assignment), (2, Some(BTreeSet::from([tp("jobs", 0), tp("jobs", 2)]))));
    // Unchanged: no assignment in the answer.
    let a = shares.heartbeat(beat("g", "a", 2), &log, now).unwrap();
    assert_eq!((a.member_epoch, a.assignment), (2, None));
    // An answer lost on the way: the epoch before is still accepted; an older one is fenced.
    assert!(shares.heartbeat(beat("g", "a", 1), &log, now).is_ok());
    assert!(matches!(shares.heartbeat(beat("g", "a", 7), &log, now), Err(ShareError::FencedEpoch { current: 2, .. })));
    assert!(matches!(shares.heartbeat(beat("g", "zed", 3), &log, now), Err(ShareError::UnknownMember { .. })));
}

#[test]
fn a_member_whose_epoch_others_moved_twice_between_its_heartbeats_is_not_fenced() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 3)]), Instant::now());
    let a = shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(a.member_epoch, 1);
    // Two members join before `a` beats again: each join moves `a`'s partitions, and its epoch, twice.
    shares.heartbeat(join("g", "b", &["jobs"]), &log, now).unwrap();
    shares.heartbeat(join("g", "c", &["jobs"]), &log, now).unwrap();
    // `a` still says the epoch it was told; it is answered its current epoch and partitions.
    let a = shares.heartbeat(beat("g", "a", 1), &log, now).unwrap();
    assert_eq!((a.member_epoch, a.assignment), (3, Some(BTreeSet::from([tp("jobs", 0)]))));
    // From then on the epochs it was told are the ones it may carry.
    assert!(shares.heartbeat(beat("g", "a", 3), &log, now).is_ok());
    assert!(shares.heartbeat(beat("g", "a", 1), &log, now).is_ok(), "the answer before, lost on the way");
    assert!(matches!(shares.heartbeat(beat("g", "a", 2), &log, now), Err(ShareError::FencedEpoch { current: 3, .. })));
}

#[test]
fn bad_joins_and_limits_are_refused_with_reasons() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    assert!(matches!(shares.heartbeat(join("g", "", &["jobs"]), &log, now), Err(ShareError::InvalidRequest(_))));
    assert!(matches!(shares.heartbeat(join("g", "a", &[]), &log, now), Err(ShareError::InvalidRequest(_))));
    for member in ["a", "b", "c"] {
        shares.heartbeat(join("g", member, &["jobs"]), &log, now).unwrap();
    }
    assert_eq!(
        shares.heartbeat(join("g", "d", &["jobs"]), &log, now).err(),
        Some(ShareError::GroupFull { group: "g".into(), max: 3 })
    );
    shares.heartbeat(join("h", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(
        shares.heartbeat(join("i", "a", &["jobs"]), &log, now).err(),
        Some(ShareError::TooManyGroups { max: 2 })
    );
    // Leaving an unknown group creates nothing.
    assert_eq!(shares.heartbeat(beat("j", "a", -1), &log, now).unwrap().member_epoch, -1);
    assert!(!shares.is_share_group("j"));
}

/// Acquires what `batches` offer for `member` in partition 0 of "jobs".
fn fetch(
    shares: &ShareGroups,
    log: &FakeLog,
    member: &str,
    batches: &[BatchSpan],
    now: Instant,
) -> Vec<(i64, i64, u16)> {
    let (read_from, _) = shares.prepare("g", &tp("jobs", 0), log, now);
    if read_from.is_none() {
        return Vec::new();
    }
    shares
        .acquire("g", member, &tp("jobs", 0), batches, 100, now)
        .iter()
        .map(|a| (a.first, a.last, a.delivery_count))
        .collect()
}

fn batch(base_offset: i64, last_offset: i64) -> BatchSpan {
    BatchSpan { base_offset, last_offset, is_skipped: false }
}

#[test]
fn a_member_whose_session_times_out_gives_its_records_back() {
    let (shares, mut log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 10);
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    shares.heartbeat(join("g", "b", &["jobs"]), &log, now + Duration::from_secs(40)).unwrap();
    let mut released = shares.watch_released();
    // Started at the high watermark (10); the log grew to 14 since.
    log.bounds = (0, 14);
    assert_eq!(fetch(&shares, &log, "a", &[batch(10, 13)], now), [(10, 13, 1)]);
    assert!(fetch(&shares, &log, "b", &[batch(10, 13)], now).is_empty(), "out with a");
    // `a` has not heartbeated for 45 s: b's heartbeat removes it, and its records go to b.
    shares.heartbeat(beat("g", "b", 1), &log, now + Duration::from_secs(46)).unwrap();
    assert!(released.has_changed().unwrap());
    released.borrow_and_update();
    assert_eq!(fetch(&shares, &log, "b", &[batch(10, 13)], now + Duration::from_secs(46)), [(10, 13, 2)]);
    let view = shares.describe("g", now + Duration::from_secs(46)).unwrap();
    assert_eq!(view.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), ["b"]);
}

#[test]
fn a_member_joining_again_with_its_id_keeps_its_records_and_its_session() {
    let (shares, mut log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 10);
    let first = shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    let opened = SessionChange { epoch: 0, added: &[tp("jobs", 0)], forgotten: &[], has_acknowledgements: false };
    shares.fetch_session("g", "a", opened, now).unwrap();
    log.bounds = (0, 14);
    assert_eq!(fetch(&shares, &log, "a", &[batch(10, 13)], now), [(10, 13, 1)]);
    let released = shares.watch_released();
    let again = shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(again.member_epoch, first.member_epoch);
    assert_eq!(again.assignment, Some([tp("jobs", 0)].into()), "a join is answered with the whole assignment");
    assert!(!released.has_changed().unwrap(), "nothing went back to the group");
    shares.heartbeat(join("g", "b", &["jobs"]), &log, now).unwrap();
    assert!(fetch(&shares, &log, "b", &[batch(10, 13)], now).is_empty(), "still out with a");
    let continued = SessionChange { epoch: 1, added: &[], forgotten: &[], has_acknowledgements: true };
    assert_eq!(shares.fetch_session("g", "a", continued, now).unwrap(), [tp("jobs", 0)], "its session goes on");
    let (outcomes, _) =
        shares.acknowledge("g", "a", vec![(tp("jobs", 0), vec![AckBatch { first: 10, last: 13, types: vec![1] }])]);
    assert_eq!(outcomes, [(tp("jobs", 0), Ok(()))]);
    assert_eq!(shares.describe("g", now).unwrap().members.len(), 2);
}

#[test]
fn share_sessions_follow_their_epochs() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 2)]), Instant::now());
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    let fetch_session = |epoch, added: &[TopicPartition], forgotten: &[TopicPartition], has_acknowledgements| {
        shares.fetch_session("g", "a", SessionChange { epoch, added, forgotten, has_acknowledgements }, now)
    };
    assert!(matches!(fetch_session(1, &[], &[], false), Err(ShareError::SessionNotFound { .. })));
    assert!(matches!(fetch_session(0, &[], &[], true), Err(ShareError::InvalidRequest(_))));
    assert_eq!(fetch_session(0, &[tp("jobs", 0)], &[], false).unwrap(), [tp("jobs", 0)]);
    assert_eq!(fetch_session(1, &[tp("jobs", 1)], &[], true).unwrap(), [tp("jobs", 0), tp("jobs", 1)]);
    assert_eq!(fetch_session(3, &[], &[], false), Err(ShareError::InvalidSessionEpoch { sent: 3, expected: 2 }));
    assert_eq!(fetch_session(2, &[], &[tp("jobs", 0)], false).unwrap(), [tp("jobs", 1)]);
    assert!(matches!(fetch_session(-2, &[], &[], false), Err(ShareError::InvalidRequest(_))));
    assert!(fetch_session(-1, &[], &[], true).unwrap().is_empty());
    assert!(matches!(fetch_session(3, &[], &[], false), Err(ShareError::SessionNotFound { .. })), "closed");
    let change = SessionChange { epoch: 0, added: &[], forgotten: &[], has_acknowledgements: false };
    let stranger = shares.fetch_session("g", "zed", change, now);
    assert!(matches!(stranger, Err(ShareError::UnknownMember { .. })));
}

#[test]
fn acknowledgements_apply_per_partition_and_hand_back_the_state_to_store() {
    let (shares, mut log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 10);
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    log.bounds = (0, 13);
    assert_eq!(fetch(&shares, &log, "a", &[batch(10, 12)], now), [(10, 12, 1)]);
    let acks = vec![
        (
            tp("jobs", 0),
            vec![AckBatch { first: 10, last: 11, types: vec![1] }, AckBatch { first: 12, last: 12, types: vec![2] }],
        ),
        (tp("other", 0), vec![AckBatch { first: 0, last: 0, types: vec![1] }]),
    ];
    let mut released = shares.watch_released();
    let (outcomes, to_store) = shares.acknowledge("g", "a", acks);
    assert_eq!(outcomes[0], (tp("jobs", 0), Ok(())));
    assert_eq!(outcomes[1], (tp("other", 0), Err(AckError::NotAcquired { offset: 0 })));
    assert!(released.has_changed().unwrap(), "a release wakes waiting fetches");
    released.borrow_and_update();
    let stored = SharePartition::decode(&to_store[0].bytes, &settings().rules).unwrap();
    assert_eq!((stored.start(), stored.end(), stored.in_flight()), (12, 13, 1));
    // A partition's batches apply all or none: the second batch names an offset already accepted.
    let (outcomes, to_store) = shares.acknowledge(
        "g",
        "a",
        vec![(
            tp("jobs", 0),
            vec![AckBatch { first: 12, last: 12, types: vec![1] }, AckBatch { first: 10, last: 10, types: vec![1] }],
        )],
    );
    assert_eq!(outcomes[0].1, Err(AckError::NotAcquired { offset: 12 }), "12 was released, not held");
    assert!(to_store.is_empty());
    let views = shares.partitions("g", &log);
    assert_eq!(views, [SharePartitionView { partition: tp("jobs", 0), start_offset: 12, in_flight: 1, acquired: 0 }]);
}

#[test]
fn a_stored_state_is_loaded_rather_than_started_again() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    let mut stored = SharePartition::starting_at(4);
    stored.acquire(&[batch(4, 6)], &Arc::from("old"), now, 10, &settings().rules);
    stored.acknowledge("old", 4, 4, &[1], &settings().rules).unwrap();
    let key = OffsetKey { group: "g".into(), topic: "jobs".into(), partition: 0 };
    log.stored.lock().unwrap().insert(key, stored.encode());
    let answer = shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert!(answer.to_store.is_empty(), "loaded, not started");
    // 5 and 6 were out with a member of a broker that stopped: delivered again, for the second time.
    assert_eq!(fetch(&shares, &log, "a", &[batch(4, 6), batch(7, 9)], now), [(5, 6, 2), (7, 9, 1)]);
}

#[test]
fn deleting_a_share_group_needs_it_empty() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(shares.delete("g", now), Err(ShareError::NotEmpty { group: "g".into(), members: 1 }));
    shares.heartbeat(beat("g", "a", -1), &log, now).unwrap();
    assert_eq!(shares.list(now), [("g".to_string(), 0)]);
    assert_eq!(shares.delete("g", now), Ok(true));
    assert_eq!(shares.delete("g", now), Ok(false));
    assert!(shares.partitions("g", &log).is_empty());
}

#[test]
fn a_groups_own_config_changes_where_it_starts_how_long_it_holds_records_and_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let configs = stored_group_configs(dir.path());
    let (shares, log, now) = (ShareGroups::new(Arc::clone(&configs)), log(&[("jobs", 1)]), Instant::now());
    let set = |key: &str, value: &str| (key.to_owned(), Some(value.to_owned()));
    configs.alter("g", &[set("share.auto.offset.reset", "earliest")], true).unwrap();
    assert!(configs.get("g").is_empty(), "validate only: nothing changes");
    assert!(!dir.path().join(crate::group_config::FILE).exists(), "and nothing is written");
    let refused = configs.alter("g", &[set("share.delivery.count.limit", "1")], false);
    assert!(matches!(refused, Err(crate::group_config::AlterConfigError::Refused(_))), "{refused:?}");
    let changes = [
        set("share.auto.offset.reset", "earliest"),
        set("share.record.lock.duration.ms", "1500"),
        set("share.session.timeout.ms", "10000"),
    ];
    configs.alter("g", &changes, false).unwrap();
    assert_eq!(crate::group_config::load(dir.path()).unwrap().get("g"), Some(&configs.get("g")));
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    shares.heartbeat(join("h", "a", &["jobs"]), &log, now).unwrap();
    let (g_from, _) = shares.prepare("g", &tp("jobs", 0), &log, now);
    let (h_from, _) = shares.prepare("h", &tp("jobs", 0), &log, now);
    assert_eq!((g_from, h_from), (Some(2), None), "g starts at the log's start (2), h at the high watermark");
    assert_eq!(shares.acquire("g", "a", &tp("jobs", 0), &[batch(2, 9)], 100, now).len(), 1);
    assert_eq!(shares.next_deadline("g", &[tp("jobs", 0)]), Some(now + Duration::from_millis(1500)));
    // g's members time out after 10 s of silence; h's after the broker's 45 s.
    let later = now + Duration::from_secs(11);
    shares.heartbeat(join("g", "b", &["jobs"]), &log, later).unwrap();
    shares.heartbeat(join("h", "b", &["jobs"]), &log, later).unwrap();
    let members = |group| shares.describe(group, later).unwrap().members.len();
    assert_eq!((members("g"), members("h")), (1, 2));
    // Deleting its keys puts the group back on the broker's settings; the file then holds no group.
    let deletes: Vec<(String, Option<String>)> = changes.iter().map(|(key, _)| (key.clone(), None)).collect();
    configs.alter("g", &deletes, false).unwrap();
    assert_eq!(shares.settings_of("g").rules.lock_duration, Duration::from_secs(30));
    assert!(crate::group_config::load(dir.path()).unwrap().is_empty());
}

#[test]
fn a_group_started_by_duration_starts_at_the_first_record_that_young_or_at_the_end() {
    let configs = group_configs();
    let (shares, mut log, now) = (ShareGroups::new(Arc::clone(&configs)), log(&[("jobs", 1)]), Instant::now());
    let by_hour = [("share.auto.offset.reset".to_owned(), Some("by_duration:PT1H".to_owned()))];
    for group in ["g", "h"] {
        configs.alter(group, &by_hour, false).unwrap();
    }
    // The log holds 2..10; its records from offset 6 on are younger than an hour.
    log.at_time = Some(6);
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(shares.prepare("g", &tp("jobs", 0), &log, now).0, Some(6));
    // Every record older: the group starts at the end, and reads what comes.
    log.at_time = None;
    shares.heartbeat(join("h", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(shares.prepare("h", &tp("jobs", 0), &log, now).0, None);
    assert_eq!(shares.partitions("h", &log)[0].start_offset, 10);
}

#[test]
fn on_a_cluster_the_coordinator_keeps_members_and_a_leader_keeps_windows_it_loaded_at_its_epoch() {
    use std::sync::atomic::Ordering;
    let (mut log, now) = (log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 10);
    log.epoch.store(3, Ordering::Relaxed);
    let partition = tp("jobs", 0);
    // The coordinator: a join is assigned the partition, but starts no window (its leader does).
    let coordinator = ShareGroups::clustered(group_configs());
    let joined = coordinator.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    assert_eq!(joined.assignment, Some(BTreeSet::from([partition.clone()])));
    assert!(joined.to_store.is_empty());
    assert!(coordinator.has_member("g", "a", now) && !coordinator.has_member("g", "b", now));
    // The leader: a session opens for a member it does not have (the coordinator was asked first)...
    let leader = ShareGroups::clustered(group_configs());
    let added = [partition.clone()];
    let opened = SessionChange { epoch: 0, added: &added, forgotten: &[], has_acknowledgements: false };
    assert_eq!(leader.fetch_session("g", "a", opened, now).unwrap(), added);
    // ...and reads nothing before the window is loaded.
    assert!(leader.needs_load("g", &partition, &log));
    assert_eq!(leader.prepare("g", &partition, &log, now), (None, None));
    // Nothing stored: started by the reset policy (latest), its versions at the leader epoch's token.
    let started = leader.install("g", &partition, None, &log).unwrap();
    assert_eq!(started.version, (3 << 32) + 1);
    assert_eq!(SharePartition::decode(&started.bytes, &settings().rules).unwrap().start(), 10);
    assert!(!leader.needs_load("g", &partition, &log));
    assert!(leader.install("g", &partition, None, &log).is_none(), "loaded already");
    log.bounds = (0, 13);
    assert_eq!(fetch(&leader, &log, "a", &[batch(10, 12)], now), [(10, 12, 1)], "acquired under its session");
    let accept = vec![(partition.clone(), vec![AckBatch { first: 10, last: 10, types: vec![1] }])];
    let (outcomes, to_store) = leader.acknowledge("g", "a", accept);
    assert_eq!(outcomes, [(partition.clone(), Ok(()))]);
    assert_eq!(to_store[0].version, (3 << 32) + 2);
    // Led at a new epoch: loaded again from what was stored, its token above the stored one and the epoch.
    log.epoch.store(5, Ordering::Relaxed);
    assert!(leader.needs_load("g", &partition, &log));
    assert_eq!(leader.prepare("g", &partition, &log, now), (None, None), "not read before it is loaded");
    let stored = crate::offsets::StoredShareState { version: to_store[0].version, bytes: to_store[0].bytes.clone() };
    assert!(leader.install("g", &partition, Some(stored.clone()), &log).is_none(), "loaded, not started");
    // 11 and 12 were out under the old epoch: delivered again; 10 was accepted.
    assert_eq!(fetch(&leader, &log, "a", &[batch(10, 12)], now), [(11, 12, 2)]);
    let release = vec![(partition.clone(), vec![AckBatch { first: 11, last: 12, types: vec![2] }])];
    assert_eq!(leader.acknowledge("g", "a", release).1[0].version, (5 << 32) + 1);
    // A stored token above the epoch (a reset raised it): the window takes the next.
    leader.forget_window("g", &partition);
    let reset = crate::offsets::StoredShareState { version: 9 << 32, ..stored };
    assert!(leader.install("g", &partition, Some(reset), &log).is_none());
    let accept = vec![(partition.clone(), vec![AckBatch { first: 11, last: 11, types: vec![0] }])];
    assert_eq!(leader.acknowledge("g", "a", accept).0[0].1, Err(AckError::NotAcquired { offset: 11 }));
    assert_eq!(fetch(&leader, &log, "a", &[batch(11, 12)], now), [(11, 12, 2)]);
    let accept = vec![(partition.clone(), vec![AckBatch { first: 11, last: 12, types: vec![1] }])];
    assert_eq!(leader.acknowledge("g", "a", accept).1[0].version, (10 << 32) + 1);
    // The coordinator's windows, had it any, stay when it stops coordinating; its members go.
    coordinator.drop_groups(|group| group == "g");
    assert!(!coordinator.has_member("g", "a", now));
}

#[test]
fn a_reset_takes_a_fencing_token_above_the_stored_one() {
    let (shares, log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    let key = OffsetKey { group: "g".into(), topic: "jobs".into(), partition: 0 };
    log.stored.lock().unwrap().insert(key, SharePartition::starting_at(4).encode());
    let to_store = shares.reset("g", &[(tp("jobs", 0), 7)], &log, now).unwrap();
    assert_eq!(to_store[0].version, (1 << 32) + 1, "above the stored version 0's token");
    let to_store = shares.reset("g", &[(tp("jobs", 0), 8)], &log, now).unwrap();
    assert_eq!(to_store[0].version, (2 << 32) + 1, "above the window's");
}

#[test]
fn on_a_cluster_a_member_gone_from_its_coordinator_is_told_to_every_leader_which_releases_its_records() {
    let (mut log, now) = (log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 10);
    let partition = tp("jobs", 0);
    let coordinator = ShareGroups::clustered(group_configs());
    coordinator.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    coordinator.heartbeat(join("g", "b", &["jobs"]), &log, now).unwrap();
    assert!(coordinator.take_departed().is_empty());
    // `a` leaves; `b` is timed out (found by the next request of the group).
    coordinator.heartbeat(beat("g", "a", -1), &log, now).unwrap();
    coordinator.heartbeat(join("g", "c", &["jobs"]), &log, now + Duration::from_secs(46)).unwrap();
    let departed = coordinator.take_departed();
    assert_eq!(departed, [("g".to_owned(), "a".to_owned()), ("g".to_owned(), "b".to_owned())]);
    assert!(coordinator.take_departed().is_empty(), "told once");
    // A single node releases them itself: nothing to tell.
    let single = share_groups();
    single.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    single.heartbeat(beat("g", "a", -1), &log, now).unwrap();
    assert!(single.take_departed().is_empty());
    // A leader holding `b`'s records releases them at once, and forgets its session.
    let leader = ShareGroups::clustered(group_configs());
    let added = [partition.clone()];
    let opened = SessionChange { epoch: 0, added: &added, forgotten: &[], has_acknowledgements: false };
    leader.fetch_session("g", "b", opened, now).unwrap();
    leader.install("g", &partition, None, &log);
    log.bounds = (0, 13);
    assert_eq!(fetch(&leader, &log, "b", &[batch(10, 12)], now), [(10, 12, 1)]);
    leader.depart("g", "b");
    let continued = SessionChange { epoch: 1, added: &[], forgotten: &[], has_acknowledgements: false };
    assert!(matches!(leader.fetch_session("g", "b", continued, now), Err(ShareError::SessionNotFound { .. })));
    leader.fetch_session("g", "c", opened, now).unwrap();
    assert_eq!(fetch(&leader, &log, "c", &[batch(10, 12)], now), [(10, 12, 2)], "delivered again at once");
}

#[test]
fn on_a_cluster_a_leader_reads_for_a_coordinators_member_in_a_session_kept_for_it() {
    let (mut log, now) = (log(&[("jobs", 1)]), Instant::now());
    let partition = tp("jobs", 0);
    let leader = ShareGroups::clustered(group_configs());
    leader.install("g", &partition, None, &log);
    log.bounds = (0, 13);
    // Neither a member here nor in a session: nothing is acquired for it.
    assert_eq!(fetch(&leader, &log, "m", &[batch(10, 12)], now), []);
    leader.keep_session("g", "m", now).unwrap();
    assert_eq!(fetch(&leader, &log, "m", &[batch(10, 12)], now), [(10, 12, 1)]);
    let later = now + Duration::from_secs(1);
    leader.keep_session("g", "n", later).unwrap();
    assert_eq!(fetch(&leader, &log, "n", &[batch(10, 12)], later), [], "held by m");
    // m's coordinator says it departed: its records go back at once, and its session with them.
    leader.depart("g", "m");
    assert_eq!(fetch(&leader, &log, "n", &[batch(10, 12)], later), [(10, 12, 2)], "delivered again at once");
    let continued = SessionChange { epoch: 1, added: &[], forgotten: &[], has_acknowledgements: false };
    assert!(matches!(leader.fetch_session("g", "m", continued, later), Err(ShareError::SessionNotFound { .. })));
}

#[test]
fn an_accept_that_makes_room_in_a_full_window_wakes_the_fetches_waiting_on_it() {
    let (shares, mut log, now) = (share_groups(), log(&[("jobs", 1)]), Instant::now());
    log.bounds = (0, 0);
    shares.heartbeat(join("g", "a", &["jobs"]), &log, now).unwrap();
    log.bounds = (0, 300);
    // The window holds 100 records at most (the tests' rules): a takes 50, then the rest of the room.
    assert_eq!(fetch(&shares, &log, "a", &[batch(0, 49)], now), [(0, 49, 1)]);
    let released = shares.watch_released();
    let accept = |first, last| vec![(tp("jobs", 0), vec![AckBatch { first, last, types: vec![1] }])];
    shares.acknowledge("g", "a", accept(0, 9));
    assert!(!released.has_changed().unwrap(), "room before and after: nobody waits on it");
    assert_eq!(fetch(&shares, &log, "a", &[batch(50, 149)], now), [(50, 109, 1)], "split at the window's end");
    assert_eq!(fetch(&shares, &log, "a", &[batch(110, 149)], now), [], "full: a fetch waits");
    shares.acknowledge("g", "a", accept(10, 19));
    assert!(released.has_changed().unwrap(), "the accept made room: the waiting fetch is woken");
    assert_eq!(fetch(&shares, &log, "a", &[batch(110, 149)], now), [(110, 119, 1)]);
}
