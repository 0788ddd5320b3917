//! The KIP-848 state machine on the coordinator, driven by heartbeats as a client sends them: epochs, revocation
//! before reassignment, fencing, session expiry and subscription changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::BrokerConfig;

fn coordinator() -> GroupCoordinator {
    let mut config = BrokerConfig::for_tests(std::path::Path::new("/nonexistent-data-dir"));
    config.group_consumer_session_timeout_ms = 1_000;
    config.group_consumer_heartbeat_interval_ms = 100;
    let defaults = crate::group_config::GroupDefaults::of(&config);
    GroupCoordinator::new(Arc::new(config), Arc::new(crate::group_config::GroupConfigs::new(defaults)))
}

/// Topic "t" with 6 partitions and "u" with 2 exist.
fn counts(topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    let all: BTreeMap<String, u32> = [("t".to_string(), 6), ("u".to_string(), 2)].into();
    all.into_iter().filter(|(t, _)| topics.contains(t)).collect()
}

fn partitions(topic: &str, ps: &[u32]) -> BTreeSet<TopicPartition> {
    ps.iter().map(|p| TopicPartition::new(topic, *p)).collect()
}

fn join(groups: &GroupCoordinator, member: &str, topics: &[&str], now: Instant) -> ConsumerAnswer {
    let request = ConsumerHeartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        subscribed_topics: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(BTreeSet::new()),
        ..ConsumerHeartbeat::default()
    };
    groups.consumer_heartbeat(request, counts, now).expect("joins")
}

fn beat(
    groups: &GroupCoordinator,
    member: &str,
    epoch: i32,
    owned: Option<BTreeSet<TopicPartition>>,
    now: Instant,
) -> Result<ConsumerAnswer, ConsumerError> {
    let request = ConsumerHeartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        owned,
        ..ConsumerHeartbeat::default()
    };
    groups.consumer_heartbeat(request, counts, now)
}

#[tokio::test]
async fn a_member_joins_with_epoch_0_heartbeats_and_leaves() {
    let groups = coordinator();
    let now = Instant::now();
    let a = join(&groups, "a", &["t"], now);
    assert!(a.member_epoch > 0);
    assert_eq!(a.assignment, Some(partitions("t", &[0, 1, 2, 3, 4, 5])));
    assert!(a.new_session.is_some(), "a join starts a session timer");
    let steady = beat(&groups, "a", a.member_epoch, Some(partitions("t", &[0, 1, 2, 3, 4, 5])), now).unwrap();
    assert_eq!((steady.member_epoch, steady.assignment), (a.member_epoch, None), "nothing new to hear");
    let left = beat(&groups, "a", LEAVE_EPOCH, None, now).unwrap();
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    assert!(matches!(beat(&groups, "a", a.member_epoch, None, now), Err(ConsumerError::UnknownMember { .. })));
}

#[tokio::test]
async fn a_partition_moves_only_after_its_owner_reports_it_revoked() {
    let groups = coordinator();
    let now = Instant::now();
    let all = partitions("t", &[0, 1, 2, 3, 4, 5]);
    let a = join(&groups, "a", &["t"], now);
    beat(&groups, "a", a.member_epoch, Some(all.clone()), now).unwrap();
    let b = join(&groups, "b", &["t"], now);
    assert_eq!(b.assignment, Some(BTreeSet::new()), "b waits: a still owns everything");
    // a hears its smaller assignment at a new epoch.
    let told = beat(&groups, "a", a.member_epoch, None, now).unwrap();
    assert!(told.member_epoch > a.member_epoch);
    let kept = told.assignment.clone().expect("the epoch moved, so the assignment is sent");
    assert_eq!(kept.len(), 3);
    // A heartbeat at the old epoch, or at the new one still owning all six, frees nothing.
    beat(&groups, "a", a.member_epoch, Some(all.clone()), now).unwrap();
    beat(&groups, "a", told.member_epoch, Some(all), now).unwrap();
    assert_eq!(beat(&groups, "b", b.member_epoch, None, now).unwrap().assignment, None, "b still waits");
    // a reports it let go: b gets the other three at its next heartbeat.
    beat(&groups, "a", told.member_epoch, Some(kept.clone()), now).unwrap();
    let granted = beat(&groups, "b", b.member_epoch, None, now).unwrap();
    assert!(granted.member_epoch > b.member_epoch);
    let got = granted.assignment.expect("b's epoch moved");
    assert_eq!(got.len(), 3);
    assert!(got.is_disjoint(&kept), "no partition is owned twice");
}

/// KIP-848's commit rules, as a consumer that commits each record meets them through a rebalance and a leave:
/// a member giving partitions up commits them with its previous or its current epoch until it reports them
/// revoked; nobody commits a partition before it is theirs; a member that left commits nothing more, and what it
/// committed before is the store's, not the group's (nothing here forgets it).
#[tokio::test]
async fn a_revoking_member_commits_what_it_gives_up_and_a_new_owner_only_once_granted() {
    use crate::groups::classic::ClassicError;
    let groups = coordinator();
    let now = Instant::now();
    let a = join(&groups, "a", &["t"], now);
    beat(&groups, "a", a.member_epoch, Some(partitions("t", &[0, 1, 2, 3, 4, 5])), now).unwrap();
    let b = join(&groups, "b", &["t"], now);
    let told = beat(&groups, "a", a.member_epoch, None, now).unwrap();
    let kept = told.assignment.expect("a's epoch moved");
    let giving_up: Vec<TopicPartition> = partitions("t", &[0, 1, 2, 3, 4, 5]).difference(&kept).cloned().collect();
    let commit = |member: &str, epoch: i32, tp: &TopicPartition| {
        groups.check_kafka_commit("g", member, None, epoch, std::slice::from_ref(tp))
    };
    for epoch in [a.member_epoch, told.member_epoch] {
        let taken = commit("a", epoch, &giving_up[0]);
        assert!(taken.is_ok(), "a revoking partition at epoch {epoch}: {taken:?}");
    }
    let early = commit("b", b.member_epoch, &giving_up[0]).unwrap_err();
    assert!(matches!(early, ClassicError::IllegalGeneration { .. }), "not b's yet: {early}");
    beat(&groups, "a", told.member_epoch, Some(kept.clone()), now).unwrap();
    let granted = beat(&groups, "b", b.member_epoch, None, now).unwrap();
    let taken = commit("b", granted.member_epoch, &giving_up[0]);
    assert!(taken.is_ok(), "b's once granted: {taken:?}");
    let stale = commit("a", a.member_epoch, kept.first().unwrap()).unwrap_err();
    assert!(matches!(stale, ClassicError::StaleMemberEpoch { .. }), "a moved past that epoch: {stale}");
    let released = commit("a", told.member_epoch, &giving_up[0]).unwrap_err();
    assert!(matches!(released, ClassicError::IllegalGeneration { .. }), "a let it go: {released}");
    beat(&groups, "a", LEAVE_EPOCH, None, now).unwrap();
    let after_leave = commit("a", told.member_epoch, kept.first().unwrap()).unwrap_err();
    assert!(matches!(after_leave, ClassicError::UnknownMember { .. }), "{after_leave}");
}

#[tokio::test]
async fn an_epoch_never_sent_or_older_than_the_last_used_is_fenced() {
    let groups = coordinator();
    let now = Instant::now();
    let a = join(&groups, "a", &["t"], now);
    let fenced = beat(&groups, "a", a.member_epoch + 1, None, now).unwrap_err();
    assert!(matches!(fenced, ConsumerError::FencedEpoch { .. }), "{fenced}");
    assert!(fenced.to_string().contains("rejoin with epoch 0"));
    join(&groups, "b", &["t"], now);
    let newer = beat(&groups, "a", a.member_epoch, None, now).unwrap().member_epoch;
    beat(&groups, "a", newer, None, now).unwrap();
    let stale = beat(&groups, "a", a.member_epoch, None, now).unwrap_err();
    assert!(matches!(stale, ConsumerError::FencedEpoch { .. }), "{stale}");
    let unknown = beat(&groups, "nobody", 3, None, now).unwrap_err();
    assert!(matches!(unknown, ConsumerError::UnknownMember { .. }));
    // A fenced member rejoins with its id at epoch 0 and starts over.
    let again = join(&groups, "a", &["t"], now);
    assert!(again.member_epoch > newer);
}

#[tokio::test]
async fn a_silent_member_expires_after_its_session_and_frees_its_partitions() {
    let groups = coordinator();
    let start = Instant::now();
    let a = join(&groups, "a", &["t"], start);
    let b = join(&groups, "b", &["t"], start);
    let incarnation = a.new_session.expect("a session");
    let later = start + Duration::from_millis(600);
    // b keeps heartbeating; a goes silent.
    beat(&groups, "b", b.member_epoch, Some(BTreeSet::new()), later).unwrap();
    let next = groups.expire_consumer("g", "a", incarnation, later, counts);
    assert_eq!(next, Some(start + Duration::from_millis(1_000)), "not yet: look again at the deadline");
    let expired = start + Duration::from_millis(1_001);
    assert_eq!(groups.expire_consumer("g", "a", incarnation, expired, counts), None);
    assert!(matches!(beat(&groups, "a", a.member_epoch, None, expired), Err(ConsumerError::UnknownMember { .. })));
    let b_now = beat(&groups, "b", b.member_epoch, None, expired).unwrap();
    assert_eq!(b_now.assignment.map(|a| a.len()), Some(6), "b takes over every partition at once");
    let b_incarnation = b.new_session.expect("b's session");
    assert_eq!(groups.expire_consumer("g", "b", b_incarnation + 99, expired, counts), None, "another incarnation");
}

#[tokio::test]
async fn a_subscription_change_rebalances_and_bad_requests_are_refused_clearly() {
    let groups = coordinator();
    let now = Instant::now();
    let a = join(&groups, "a", &["t"], now);
    let request = ConsumerHeartbeat {
        group: "g".into(),
        member_id: "a".into(),
        member_epoch: a.member_epoch,
        subscribed_topics: Some(["t".to_string(), "u".to_string()].into()),
        owned: a.assignment.clone(),
        ..ConsumerHeartbeat::default()
    };
    let grown = groups.consumer_heartbeat(request, counts, now).unwrap();
    assert!(grown.member_epoch > a.member_epoch);
    assert_eq!(grown.assignment.map(|a| a.len()), Some(8), "t's 6 and u's 2");

    let assignor = ConsumerHeartbeat {
        group: "h".into(),
        subscribed_topics: Some(["t".to_string()].into()),
        server_assignor: Some("sticky-ish".into()),
        ..ConsumerHeartbeat::default()
    };
    let err = groups.consumer_heartbeat(assignor, counts, now).unwrap_err();
    assert_eq!(err, ConsumerError::UnsupportedAssignor { name: "sticky-ish".into() });
    assert!(err.to_string().contains("\"uniform\" or \"range\""));
    let no_topics = ConsumerHeartbeat { group: "h".into(), ..ConsumerHeartbeat::default() };
    let err = groups.consumer_heartbeat(no_topics, counts, now).unwrap_err();
    assert!(matches!(&err, ConsumerError::InvalidRequest(m) if m.contains("subscribed topics")), "{err}");
    let bad_topic = ConsumerHeartbeat {
        group: "h".into(),
        subscribed_topics: Some(["no/slashes".to_string()].into()),
        ..ConsumerHeartbeat::default()
    };
    assert!(matches!(groups.consumer_heartbeat(bad_topic, counts, now), Err(ConsumerError::InvalidRequest(_))));
}

#[tokio::test]
async fn range_splits_a_topic_into_consecutive_blocks() {
    let groups = coordinator();
    let now = Instant::now();
    let request = |member: &str| ConsumerHeartbeat {
        group: "g".into(),
        member_id: member.into(),
        subscribed_topics: Some(["t".to_string()].into()),
        server_assignor: Some("range".into()),
        ..ConsumerHeartbeat::default()
    };
    let a = groups.consumer_heartbeat(request("a"), counts, now).unwrap();
    beat(&groups, "a", a.member_epoch, a.assignment.clone(), now).unwrap();
    let b = groups.consumer_heartbeat(request("b"), counts, now).unwrap();
    let told = beat(&groups, "a", a.member_epoch, None, now).unwrap();
    assert_eq!(told.assignment, Some(partitions("t", &[0, 1, 2])));
    beat(&groups, "a", told.member_epoch, told.assignment, now).unwrap();
    let granted = beat(&groups, "b", b.member_epoch, None, now).unwrap();
    assert_eq!(granted.assignment, Some(partitions("t", &[3, 4, 5])));
}

#[tokio::test]
async fn a_describe_shows_what_each_member_owns_and_is_headed_for() {
    let groups = coordinator();
    let now = Instant::now();
    assert_eq!(groups.consumer_group_description("g"), None, "no such group: Kafka clients fall back");
    let all = partitions("t", &[0, 1, 2, 3, 4, 5]);
    let a = join(&groups, "a", &["t"], now);
    beat(&groups, "a", a.member_epoch, Some(all.clone()), now).unwrap();
    let b = join(&groups, "b", &["t"], now);
    let told = beat(&groups, "a", a.member_epoch, None, now).unwrap();
    let kept = told.assignment.clone().expect("a's epoch moved");

    // a still owns all six until it reports three revoked; b owns nothing yet but is headed for the other three.
    let during = groups.consumer_group_description("g").expect("described");
    assert_eq!((during.state, during.assignor), ("Reconciling", "uniform"));
    let [da, db] = &during.members[..] else { panic!("two members: {during:?}") };
    assert_eq!((da.member_id.as_str(), da.member_epoch, da.kip848), ("a", told.member_epoch, true));
    assert_eq!(da.assignment, all);
    assert_eq!(da.target, kept);
    assert_eq!(db.assignment, BTreeSet::new());
    assert_eq!(db.target, &all - &kept);
    assert_eq!(db.subscribed_topics, ["t".to_string()].into());

    beat(&groups, "a", told.member_epoch, Some(kept.clone()), now).unwrap();
    let granted = beat(&groups, "b", b.member_epoch, None, now).unwrap();
    let after = groups.consumer_group_description("g").expect("described");
    assert_eq!(after.state, "Stable");
    assert!(after.group_epoch >= during.group_epoch);
    for member in &after.members {
        assert_eq!(member.assignment, member.target, "{member:?}");
    }
    assert_eq!(after.members[1].member_epoch, granted.member_epoch);
}

#[tokio::test]
async fn a_member_that_keeps_partitions_past_its_rebalance_timeout_is_removed_and_they_move() {
    let groups = coordinator();
    let start = Instant::now();
    let all = partitions("t", &[0, 1, 2, 3, 4, 5]);
    let timeout = |ms| ConsumerHeartbeat { rebalance_timeout: Some(Duration::from_millis(ms)), ..beat_request("a") };
    let a = groups
        .consumer_heartbeat(
            ConsumerHeartbeat { member_epoch: 0, subscribed_topics: Some(["t".to_string()].into()), ..timeout(500) },
            counts,
            start,
        )
        .unwrap();
    assert_eq!(a.revocation_deadline, None, "nothing to revoke yet");
    beat(&groups, "a", a.member_epoch, Some(all.clone()), start).unwrap();
    let b = join(&groups, "b", &["t"], start);
    // a is told to give up three partitions: its clock starts now, once.
    let told = beat(&groups, "a", a.member_epoch, None, start).unwrap();
    let (incarnation, deadline) = told.revocation_deadline.expect("the clock starts when a is told");
    assert_eq!(deadline, start + Duration::from_millis(500));
    let later = start + Duration::from_millis(300);
    let still = beat(&groups, "a", told.member_epoch, Some(all.clone()), later).unwrap();
    assert_eq!(still.revocation_deadline, None, "the clock is not restarted by later heartbeats");
    assert_eq!(groups.expire_revocation("g", "a", incarnation, later, counts), Some(deadline), "not yet");
    // Past the timeout, a still holding all six is removed, and b gets every partition.
    let past = start + Duration::from_millis(501);
    assert_eq!(groups.expire_revocation("g", "a", incarnation, past, counts), None);
    assert!(matches!(beat(&groups, "a", told.member_epoch, Some(all), past), Err(ConsumerError::UnknownMember { .. })));
    let b_now = beat(&groups, "b", b.member_epoch, None, past).unwrap();
    assert_eq!(b_now.assignment.map(|a| a.len()), Some(6));
}

#[tokio::test]
async fn a_member_that_revokes_in_time_stops_its_clock_and_stays() {
    let groups = coordinator();
    let start = Instant::now();
    let a = join(&groups, "a", &["t"], start);
    beat(&groups, "a", a.member_epoch, Some(partitions("t", &[0, 1, 2, 3, 4, 5])), start).unwrap();
    join(&groups, "b", &["t"], start);
    let told = beat(&groups, "a", a.member_epoch, None, start).unwrap();
    let (incarnation, deadline) = told.revocation_deadline.expect("told to revoke");
    assert_eq!(deadline, start + DEFAULT_REBALANCE_TIMEOUT, "a member that sent none gets Kafka's default");
    let kept = told.assignment.expect("its smaller assignment");
    beat(&groups, "a", told.member_epoch, Some(kept), start).unwrap();
    assert_eq!(groups.expire_revocation("g", "a", incarnation, deadline, counts), None, "nothing left to revoke");
    assert!(beat(&groups, "a", told.member_epoch, None, deadline).is_ok(), "a stays in the group");
}

fn beat_request(member: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat { group: "g".into(), member_id: member.into(), ..ConsumerHeartbeat::default() }
}

fn join_static(
    groups: &GroupCoordinator,
    member: &str,
    instance: &str,
    now: Instant,
) -> Result<ConsumerAnswer, ConsumerError> {
    let request = ConsumerHeartbeat {
        member_epoch: 0,
        subscribed_topics: Some(["t".to_string()].into()),
        owned: Some(BTreeSet::new()),
        instance_id: Some(instance.into()),
        ..beat_request(member)
    };
    groups.consumer_heartbeat(request, counts, now)
}

fn beat_as(
    groups: &GroupCoordinator,
    member: &str,
    instance: &str,
    epoch: i32,
    now: Instant,
) -> Result<ConsumerAnswer, ConsumerError> {
    let request = ConsumerHeartbeat { member_epoch: epoch, instance_id: Some(instance.into()), ..beat_request(member) };
    groups.consumer_heartbeat(request, counts, now)
}

/// Static member "a" (instance "pod-a") and dynamic "b" share t's 6 partitions, 3 each, every revocation done.
/// Returns a's epoch and partitions, and b's epoch.
fn settled_pair(groups: &GroupCoordinator, now: Instant) -> (i32, BTreeSet<TopicPartition>, i32) {
    let a = join_static(groups, "a", "pod-a", now).expect("a joins");
    beat(groups, "a", a.member_epoch, a.assignment.clone(), now).unwrap();
    let b = join(groups, "b", &["t"], now);
    let told = beat(groups, "a", a.member_epoch, None, now).unwrap();
    let kept = told.assignment.expect("a hears its smaller assignment");
    beat(groups, "a", told.member_epoch, Some(kept.clone()), now).unwrap();
    let granted = beat(groups, "b", b.member_epoch, None, now).unwrap();
    let b_owns = granted.assignment.expect("b gets what a let go");
    beat(groups, "b", granted.member_epoch, Some(b_owns.clone()), now).unwrap();
    assert_eq!((kept.len(), b_owns.len()), (3, 3));
    (told.member_epoch, kept, granted.member_epoch)
}

#[tokio::test]
async fn a_static_member_that_leaves_with_epoch_minus_2_keeps_its_partitions_for_its_next_process() {
    let groups = coordinator();
    let now = Instant::now();
    let (a_epoch, a_owns, b_epoch) = settled_pair(&groups, now);
    let generation = groups.consumer_group_description("g").expect("described").group_epoch;

    let left = beat_as(&groups, "a", "pod-a", STATIC_LEAVE_EPOCH, now).unwrap();
    assert_eq!(left.member_epoch, STATIC_LEAVE_EPOCH);
    let b_now = beat(&groups, "b", b_epoch, None, now).unwrap();
    assert_eq!((b_now.member_epoch, b_now.assignment), (b_epoch, None), "b is given none of a's partitions");
    let during = groups.consumer_group_description("g").expect("described");
    assert_eq!(during.members.len(), 2, "a keeps its place");
    assert_eq!(during.members[0].member_epoch, STATIC_LEAVE_EPOCH, "shown as Kafka shows a static member away");
    assert_eq!(during.members[0].assignment, a_owns);
    // The process that left sends nothing more that counts.
    let stale = beat(&groups, "a", a_epoch, None, now).unwrap_err();
    assert!(matches!(stale, ConsumerError::FencedEpoch { current: STATIC_LEAVE_EPOCH, .. }), "{stale}");
    let commit = groups.check_kafka_commit("g", "a", Some("pod-a"), a_epoch, &[a_owns.first().unwrap().clone()]);
    assert!(commit.is_err(), "no commit from a member that left");

    // Its next process joins with a new member id and the same instance id: a's partitions, a new epoch.
    let next = join_static(&groups, "a2", "pod-a", now).expect("the instance id was released by the -2 leave");
    assert_eq!(next.member_id, "a2");
    assert_eq!(next.assignment, Some(a_owns.clone()));
    assert!(next.member_epoch > a_epoch, "an epoch above any the old process had");
    assert!(next.new_session.is_some(), "the new process has its own session");
    let after = groups.consumer_group_description("g").expect("described");
    assert_eq!(after.group_epoch, generation, "no rebalance");
    let ids: Vec<&str> = after.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, ["a2", "b"], "the old member id is gone");
    assert_eq!(beat(&groups, "b", b_epoch, None, now).unwrap().assignment, None, "b moves nothing");
    let steady = beat(&groups, "a2", next.member_epoch, Some(a_owns), now).unwrap();
    assert_eq!((steady.member_epoch, steady.assignment), (next.member_epoch, None));

    // The old process is fenced by its instance id; without one, its id is simply unknown.
    let old = beat_as(&groups, "a", "pod-a", a_epoch, now).unwrap_err();
    assert!(matches!(old, ConsumerError::FencedInstance { .. }), "{old}");
    assert!(matches!(beat(&groups, "a", a_epoch, None, now), Err(ConsumerError::UnknownMember { .. })));
    let late_leave = beat_as(&groups, "a", "pod-a", STATIC_LEAVE_EPOCH, now).unwrap_err();
    assert!(matches!(late_leave, ConsumerError::FencedInstance { .. }), "a late leave cannot remove the new one");
    assert_eq!(groups.consumer_group_description("g").unwrap().members.len(), 2);
}

#[tokio::test]
async fn an_instance_id_still_held_is_unreleased_and_a_wrong_one_is_fenced() {
    let groups = coordinator();
    let now = Instant::now();
    let (a_epoch, a_owns, _) = settled_pair(&groups, now);
    let refused = join_static(&groups, "intruder", "pod-a", now).unwrap_err();
    assert!(matches!(&refused, ConsumerError::UnreleasedInstance { holder, .. } if holder == "a"), "{refused}");
    assert!(refused.to_string().contains("\"pod-a\""), "names the instance id: {refused}");
    assert!(refused.to_string().contains("epoch -2"), "says what would release it: {refused}");
    assert_eq!(groups.consumer_group_description("g").unwrap().members.len(), 2, "nobody was added");

    let wrong = beat_as(&groups, "a", "pod-z", a_epoch, now).unwrap_err();
    assert!(matches!(&wrong, ConsumerError::FencedInstance { instance, .. } if instance == "pod-z"), "{wrong}");
    let dynamic = beat_as(&groups, "b", "pod-a", 1, now).unwrap_err();
    assert!(matches!(dynamic, ConsumerError::FencedInstance { .. }), "b does not hold pod-a: {dynamic}");
    assert!(beat_as(&groups, "a", "pod-a", a_epoch, now).is_ok(), "its own instance id passes");

    // The holder itself, fenced and rejoining with its own member id, takes its own place back.
    let rejoined = join_static(&groups, "a", "pod-a", now).expect("the holder may rejoin");
    assert_eq!(rejoined.assignment, Some(a_owns));
    assert!(rejoined.member_epoch > a_epoch);
    let empty = ConsumerHeartbeat { instance_id: Some(String::new()), ..beat_request("a") };
    assert!(matches!(groups.consumer_heartbeat(empty, counts, now), Err(ConsumerError::InvalidRequest(_))));
}

#[tokio::test]
async fn a_departed_static_members_partitions_are_freed_when_its_session_expires() {
    let groups = coordinator();
    let start = Instant::now();
    let (_, _, b_epoch) = settled_pair(&groups, start);
    let incarnation = groups.lock()["g"].members["a"].consumer.as_ref().unwrap().incarnation;
    beat_as(&groups, "a", "pod-a", STATIC_LEAVE_EPOCH, start).unwrap();
    let later = start + Duration::from_millis(600);
    let b_beat = beat(&groups, "b", b_epoch, None, later).unwrap();
    let deadline = groups.expire_consumer("g", "a", incarnation, later, counts).expect("not yet");
    assert!(deadline > later);
    assert_eq!(groups.expire_consumer("g", "a", incarnation, deadline, counts), None, "removed at its deadline");
    let b_now = beat(&groups, "b", b_beat.member_epoch, None, deadline).unwrap();
    assert_eq!(b_now.assignment.map(|a| a.len()), Some(6), "b takes every partition");
    let fresh = join_static(&groups, "a3", "pod-a", deadline).expect("the instance id is free");
    assert_eq!(fresh.assignment, Some(BTreeSet::new()), "a new member: b must let go first");
}

#[tokio::test]
async fn epoch_minus_1_from_a_static_member_leaves_for_good() {
    let groups = coordinator();
    let now = Instant::now();
    let (_, _, b_epoch) = settled_pair(&groups, now);
    beat_as(&groups, "a", "pod-a", LEAVE_EPOCH, now).unwrap();
    let b_now = beat(&groups, "b", b_epoch, None, now).unwrap();
    assert_eq!(b_now.assignment.map(|a| a.len()), Some(6), "freed at once");
}

#[tokio::test]
async fn what_a_departed_static_member_gives_up_is_free_at_once() {
    let groups = coordinator();
    let now = Instant::now();
    let all = partitions("t", &[0, 1, 2, 3, 4, 5]);
    let a = join_static(&groups, "a", "pod-a", now).unwrap();
    beat(&groups, "a", a.member_epoch, Some(all.clone()), now).unwrap();
    let b = join(&groups, "b", &["t"], now);
    // a is told to give three up, and leaves with -2 before reporting it did: they are free for b.
    let told = beat(&groups, "a", a.member_epoch, None, now).unwrap();
    let kept = told.assignment.expect("a's smaller assignment");
    beat_as(&groups, "a", "pod-a", STATIC_LEAVE_EPOCH, now).unwrap();
    let granted = beat(&groups, "b", b.member_epoch, None, now).unwrap();
    assert_eq!(granted.assignment, Some(&all - &kept));
    // A third member joining while a is away takes its share of a's partitions without waiting for a.
    let c = join(&groups, "c", &["t"], now);
    let c_owns = c.assignment.expect("a join hears its assignment");
    let b_told = beat(&groups, "b", granted.member_epoch, None, now).unwrap();
    let b_keeps = b_told.assignment.clone().unwrap_or_else(|| &all - &kept);
    beat(&groups, "b", b_told.member_epoch, Some(b_keeps), now).unwrap();
    let c_now = beat(&groups, "c", c.member_epoch, None, now).unwrap();
    let c_total = c_now.assignment.unwrap_or(c_owns);
    assert_eq!(c_total.len(), 2, "c has its even share");
    let description = groups.consumer_group_description("g").unwrap();
    let a_now = &description.members[0];
    assert_eq!((a_now.member_id.as_str(), a_now.assignment.len()), ("a", 2), "a keeps its share, away");
    let owned: usize = description.members.iter().map(|m| m.assignment.len()).sum();
    assert_eq!(owned, 6, "every partition owned once");
}

#[tokio::test]
async fn a_groups_own_session_timeout_and_heartbeat_interval_are_its_members() {
    let mut config = BrokerConfig::for_tests(std::path::Path::new("/nonexistent-data-dir"));
    config.group_consumer_session_timeout_ms = 1_000;
    config.group_consumer_heartbeat_interval_ms = 100;
    let configs = Arc::new(crate::group_config::GroupConfigs::new(crate::group_config::GroupDefaults::of(&config)));
    let own = [
        ("consumer.session.timeout.ms".to_owned(), Some("3000".to_owned())),
        ("consumer.heartbeat.interval.ms".to_owned(), Some("700".to_owned())),
    ];
    configs.alter("g", &own, false).unwrap();
    let groups = GroupCoordinator::new(Arc::new(config), configs);
    let start = Instant::now();
    let a = join(&groups, "a", &["t"], start);
    assert_eq!(a.heartbeat_interval_ms, 700, "the group's own interval");
    let incarnation = a.new_session.expect("a session");
    // Silent past the broker's 1 s but within the group's 3 s: still a member.
    let later = start + Duration::from_millis(1_500);
    assert_eq!(groups.expire_consumer("g", "a", incarnation, later, counts), Some(start + Duration::from_secs(3)));
    let steady = beat(&groups, "a", a.member_epoch, Some(partitions("t", &[0, 1, 2, 3, 4, 5])), later).unwrap();
    assert_eq!(steady.heartbeat_interval_ms, 700);
    let other = ConsumerHeartbeat {
        group: "h".into(),
        member_id: "b".into(),
        member_epoch: 0,
        subscribed_topics: Some(["u".to_string()].into()),
        owned: Some(BTreeSet::new()),
        ..ConsumerHeartbeat::default()
    };
    assert_eq!(groups.consumer_heartbeat(other, counts, start).unwrap().heartbeat_interval_ms, 100, "the broker's");
}
