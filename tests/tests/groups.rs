//! Consumer groups through the raw JoinGroup protocol: incremental cooperative rebalancing, session timeouts,
//! leave and disconnect, topic changes, assignors, and fenced commits.

use std::collections::BTreeSet;
use std::time::Duration;

use rill_protocol::v1;
use rill_tests::group_member::{assert_no_partition_owned_twice, describe, join_request, settle, TestMember, DEADLINE};
use rill_tests::{assert_status, TestBroker};
use tonic::Code;

/// Long enough that no test member times out unless it means to.
const SESSION_MS: u32 = 30_000;

/// How long a test watches for a message that must *not* come (bounded, far below every timeout in play).
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn three_members_own_two_each_and_a_fourth_takes_a_partition_only_after_its_owner_lets_go() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 6).await;
    let g = broker.groups.clone();
    let mut a = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let mut b = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let mut c = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    settle(&g, "g", &mut [&mut a, &mut b, &mut c]).await;
    for member in [&a, &b, &c] {
        assert_eq!(member.assigned.len(), 2, "6 partitions over 3 members");
    }
    let before = [a.assigned.clone(), b.assigned.clone(), c.assigned.clone()];

    let mut d = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    assert!(d.assigned.is_empty(), "nothing is free until an owner gives a partition up");
    let mut revokers = Vec::new();
    for (i, member) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
        if member.next_within(QUIET).await.is_some() {
            assert!(member.assigned.is_subset(&before[i]), "a rebalance only takes partitions away from old members");
            revokers.push(i);
        } else {
            assert_eq!(member.assigned, before[i], "members whose partitions stay get no new assignment");
        }
    }
    assert_eq!(revokers.len(), 1, "6 partitions over 4 members: exactly one partition moves");
    let described = describe(&g, "g").await;
    assert_eq!(described.state, v1::GroupState::Reconciling as i32);
    assert_no_partition_owned_twice(&described);
    assert!(d.next_within(QUIET).await.is_none(), "the newcomer waits while the partition is being revoked");

    let revoker = [&a, &b, &c][revokers[0]];
    let moved: BTreeSet<_> = before[revokers[0]].difference(&revoker.assigned).cloned().collect();
    revoker.ack().await;
    d.next().await.expect("the freed partition is granted");
    assert_eq!(d.assigned, moved, "the newcomer gets exactly the partition its owner gave up");
    settle(&g, "g", &mut [&mut a, &mut b, &mut c, &mut d]).await;
    let described = describe(&g, "g").await;
    assert_no_partition_owned_twice(&described);
    let owned: usize = described.members.iter().flat_map(|m| &m.assigned).map(|t| t.partitions.len()).sum();
    assert_eq!(owned, 6);
}

#[tokio::test]
async fn a_silent_member_is_removed_after_its_session_timeout_and_its_partitions_move() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 4).await;
    let g = broker.groups.clone();
    let mut silent = TestMember::join(&g, "g", &["t"], 500).await;
    let mut alive = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    settle(&g, "g", &mut [&mut silent, &mut alive]).await;
    assert_eq!(alive.assigned.len(), 2);

    // `silent` keeps its connection open but sends nothing: a hung process.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while alive.assigned.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the silent member's partitions never moved");
        alive.next_within(Duration::from_millis(100)).await;
        alive.ack().await;
    }
    let end = silent.ended().await;
    assert_status(end, Code::FailedPrecondition, &["session timed out", &silent.id]);
    assert_eq!(describe(&g, "g").await.members.len(), 1);
}

#[tokio::test]
async fn a_member_that_leaves_or_disconnects_is_removed_at_once() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 4).await;
    let g = broker.groups.clone();
    let mut leaver = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let mut stayer = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let mut dropper = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    settle(&g, "g", &mut [&mut leaver, &mut stayer, &mut dropper]).await;

    // Both removals must happen long before the 30 s session timeout: `next` gives up after 5 s.
    leaver.leave().await;
    assert_eq!(leaver.ended().await.map_err(|s| s.code()), Ok(()), "a clean leave ends the stream without error");
    drop(dropper);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while stayer.assigned.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "partitions of departed members never moved");
        stayer.next().await.expect("an assignment for the remaining member");
        stayer.ack().await;
    }
    assert_eq!(describe(&g, "g").await.members.len(), 1);
}

#[tokio::test]
async fn created_topics_and_added_partitions_are_picked_up_and_deleted_ones_dropped() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let g = broker.groups.clone();
    let mut member = TestMember::join(&g, "g", &["t", "later"], SESSION_MS).await;
    assert_eq!(member.assigned.len(), 1);
    let generation = member.generation;

    broker.create_topic("later", 2).await;
    member.next().await.expect("the new topic's partitions");
    assert_eq!(member.assigned.len(), 3);
    assert!(member.generation > generation, "a topic change bumps the generation");
    let request = v1::AddPartitionsRequest { name: "t".into(), new_partition_count: 3 };
    broker.admin.add_partitions(request).await.unwrap();
    member.next().await.expect("the added partitions");
    assert_eq!(member.assigned.len(), 5);
    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "later".into() }).await.unwrap();
    member.next().await.expect("an assignment without the deleted topic");
    assert_eq!(member.partitions(), vec![0, 1, 2]);
    assert!(member.assigned.iter().all(|(topic, _)| topic == "t"));
}

#[tokio::test]
async fn range_and_round_robin_are_selectable_and_members_must_agree() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 5).await;
    let g = broker.groups.clone();
    for (assignor, expected) in
        [(v1::Assignor::Range, [vec![0, 1, 2], vec![3, 4]]), (v1::Assignor::RoundRobin, [vec![0, 2, 4], vec![1, 3]])]
    {
        let group = format!("{assignor:?}");
        let mut x = TestMember::join_with(&g, join_request(&group, &["t"], SESSION_MS, assignor)).await.unwrap();
        let mut y = TestMember::join_with(&g, join_request(&group, &["t"], SESSION_MS, assignor)).await.unwrap();
        settle(&g, &group, &mut [&mut x, &mut y]).await;
        let (first, second) = if x.id < y.id { (&x, &y) } else { (&y, &x) };
        assert_eq!([first.partitions(), second.partitions()], expected, "{assignor:?}");
        assert_eq!(describe(&g, &group).await.assignor, assignor as i32);
        let sticky = TestMember::join_with(&g, join_request(&group, &["t"], SESSION_MS, v1::Assignor::Sticky)).await;
        assert_status(sticky.map(|m| m.id), Code::InvalidArgument, &["assignor", &format!("{assignor:?}")]);
    }
    broker.assert_serving().await;
}

#[tokio::test]
async fn bad_joins_are_refused_with_the_reason() {
    let mut broker = TestBroker::start_with(|c| c.max_members_per_group = 1).await;
    broker.create_topic("t", 1).await;
    let g = broker.groups.clone();
    let join = |topics: &[&str], session| join_request("g", topics, session, v1::Assignor::Sticky);
    let no_topics = TestMember::join_with(&g, join(&[], SESSION_MS)).await;
    assert_status(no_topics.map(|m| m.id), Code::InvalidArgument, &["topic"]);
    let too_short = TestMember::join_with(&g, join(&["t"], 5)).await;
    assert_status(too_short.map(|m| m.id), Code::InvalidArgument, &["session_timeout_ms", "100"]);
    let bad_name = TestMember::join_with(&g, join(&["no/slash"], SESSION_MS)).await;
    assert_status(bad_name.map(|m| m.id), Code::InvalidArgument, &["no/slash"]);
    let heartbeat_first =
        v1::GroupRequest { kind: Some(v1::group_request::Kind::Heartbeat(v1::Heartbeat { acked_generation: 0 })) };
    let not_a_join = TestMember::join_with(&g, heartbeat_first).await;
    assert_status(not_a_join.map(|m| m.id), Code::InvalidArgument, &["first message", "join"]);
    let _first = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let full = TestMember::join_with(&g, join(&["t"], SESSION_MS)).await;
    assert_status(full.map(|m| m.id), Code::ResourceExhausted, &["max_members_per_group"]);
    broker.assert_serving().await;
}

#[tokio::test]
async fn commits_from_fenced_members_are_refused_and_owners_commits_accepted() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    broker.create_topic("other", 1).await;
    let g = broker.groups.clone();
    let mut zombie = TestMember::join(&g, "g", &["t"], 400).await;
    let mut owner = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    settle(&g, "g", &mut [&mut zombie, &mut owner]).await;
    let zombie_partition = zombie.partitions()[0];
    let owner_generation_before = owner.generation;
    let commit =
        |member: &TestMember, generation: i32, topic: &str, partition: u32, offset: i64| v1::CommitOffsetsRequest {
            group: "g".into(),
            member_id: member.id.clone(),
            generation,
            offsets: vec![v1::OffsetCommit { topic: topic.into(), partition, offset, metadata: String::new() }],
        };
    let mut groups = broker.groups.clone();
    groups.commit_offsets(commit(&zombie, zombie.generation, "t", zombie_partition, 1)).await.expect("owner commits");

    // The zombie hangs; its session expires and its partition moves to `owner`.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while owner.assigned.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the zombie's partition never moved");
        owner.next_within(Duration::from_millis(100)).await;
        owner.ack().await;
    }
    let stale = groups.commit_offsets(commit(&zombie, zombie.generation, "t", zombie_partition, 7)).await;
    assert_status(stale, Code::FailedPrecondition, &[&zombie.id, "not in group", "rejoin"]);
    let old_generation = groups.commit_offsets(commit(&owner, owner_generation_before, "t", zombie_partition, 2)).await;
    assert_status(old_generation, Code::FailedPrecondition, &["stale generation", "apply the latest assignment"]);
    let not_owned = groups.commit_offsets(commit(&owner, owner.generation, "other", 0, 1)).await;
    assert_status(not_owned, Code::FailedPrecondition, &["not owned", "other"]);
    let future = groups.commit_offsets(commit(&owner, owner.generation + 5, "t", 0, 1)).await;
    assert_status(future, Code::InvalidArgument, &["generation"]);
    let mut standalone = commit(&owner, -1, "t", 0, 1);
    standalone.member_id.clear();
    assert_status(groups.commit_offsets(standalone).await, Code::FailedPrecondition, &["active member", "member id"]);
    groups.commit_offsets(commit(&owner, owner.generation, "t", zombie_partition, 3)).await.expect("the new owner");

    let lookup = v1::FetchOffsetsRequest { group: "g".into(), partitions: vec![] };
    let stored = groups.fetch_offsets(lookup).await.unwrap().into_inner().offsets;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].offset, 3, "only accepted commits were stored");
    broker.assert_serving().await;
}

#[tokio::test]
async fn shutdown_ends_member_streams_with_unavailable() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let mut member = TestMember::join(&broker.groups, "g", &["t"], SESSION_MS).await;
    broker.shutdown().await;
    assert_status(member.ended().await, Code::Unavailable, &["shutting down"]);
}
