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
    GroupCoordinator::new(Arc::new(config))
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
