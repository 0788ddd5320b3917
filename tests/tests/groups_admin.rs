//! Group administration: DescribeGroup (members, offsets, lag), ListGroups, ResetOffsets and DeleteGroup
//! (only on empty groups), and offset expiry of empty groups.

use std::time::Duration;

use rill_protocol::v1;
use rill_tests::group_member::{describe, settle, TestMember, DEADLINE};
use rill_tests::{assert_status, TestBroker};
use tonic::Code;

const SESSION_MS: u32 = 30_000;

fn reset(group: &str, topic: &str, partitions: &[u32], to: v1::reset_offsets_request::To) -> v1::ResetOffsetsRequest {
    v1::ResetOffsetsRequest {
        group: group.into(),
        topic: topic.into(),
        partitions: partitions.to_vec(),
        to: Some(to),
        timestamp_ms: 0,
    }
}

fn latest() -> v1::reset_offsets_request::To {
    v1::reset_offsets_request::To::Spec(v1::OffsetSpec::Latest as i32)
}

async fn wait_until_empty(broker: &TestBroker, group: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while describe(&broker.groups, group).await.state != v1::GroupState::Empty as i32 {
        assert!(tokio::time::Instant::now() < deadline, "group {group} never became empty");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn describe_shows_members_their_partitions_committed_offsets_and_lag_and_list_shows_every_group() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    broker.produce_values("t", 0, &["a", "b", "c", "d", "e"]).await;
    let g = broker.groups.clone();
    let mut member = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    settle(&g, "g", &mut [&mut member]).await;
    let commit = v1::CommitOffsetsRequest {
        group: "g".into(),
        member_id: member.id.clone(),
        generation: member.generation,
        offsets: vec![v1::OffsetCommit { topic: "t".into(), partition: 0, offset: 2, metadata: String::new() }],
    };
    broker.groups.commit_offsets(commit).await.unwrap();
    let solo = v1::CommitOffsetsRequest {
        group: "solo".into(),
        member_id: String::new(),
        generation: -1,
        offsets: vec![v1::OffsetCommit { topic: "t".into(), partition: 1, offset: 0, metadata: String::new() }],
    };
    broker.groups.commit_offsets(solo).await.unwrap();

    let described = describe(&g, "g").await;
    assert_eq!(described.state, v1::GroupState::Stable as i32);
    assert_eq!(described.generation, member.generation);
    assert_eq!(described.members.len(), 1);
    let m = &described.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.client_id.as_str(), m.topics.as_slice()),
        (member.id.as_str(), "test", &["t".to_string()][..])
    );
    assert_eq!(m.assigned, [v1::TopicPartitions { topic: "t".into(), partitions: vec![0, 1] }]);
    assert!(m.revoking.is_empty());
    let lags: Vec<_> = described
        .partitions
        .iter()
        .map(|p| (p.partition, p.member_id == member.id, p.committed_offset, p.end_offset, p.lag))
        .collect();
    assert_eq!(lags, [(0, true, 2, 5, 3), (1, true, -1, 0, 0)]);

    let listed = broker.groups.list_groups(v1::ListGroupsRequest {}).await.unwrap().into_inner().groups;
    let summary: Vec<_> = listed.iter().map(|s| (s.group.as_str(), s.state, s.member_count)).collect();
    assert_eq!(
        summary,
        [("g", v1::GroupState::Stable as i32, 1), ("solo", v1::GroupState::Empty as i32, 0)],
        "groups with members and groups with only offsets, by name"
    );
    let solo = describe(&g, "solo").await;
    assert_eq!((solo.state, solo.members.len(), solo.partitions.len()), (v1::GroupState::Empty as i32, 0, 1));
    let unknown = broker.groups.describe_group(v1::DescribeGroupRequest { group: "nobody".into() }).await;
    assert_status(unknown, Code::NotFound, &["nobody"]);
}

#[tokio::test]
async fn offsets_reset_works_on_an_empty_group_and_is_refused_on_an_active_one() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    broker.produce_values("t", 0, &["a", "b", "c"]).await;
    let g = broker.groups.clone();
    let member = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    let refused = broker.groups.reset_offsets(reset("g", "t", &[], latest())).await;
    assert_status(refused, Code::FailedPrecondition, &["1 active member", "resetting offsets"]);
    let refused = broker.groups.delete_group(v1::DeleteGroupRequest { group: "g".into() }).await;
    assert_status(refused, Code::FailedPrecondition, &["1 active member", "deleting a group"]);
    let lookup = v1::FetchOffsetsRequest { group: "g".into(), partitions: vec![] };
    assert!(broker.groups.fetch_offsets(lookup.clone()).await.unwrap().into_inner().offsets.is_empty());

    member.leave().await;
    wait_until_empty(&broker, "g").await;
    let done = broker.groups.reset_offsets(reset("g", "t", &[], latest())).await.unwrap().into_inner();
    let offsets: Vec<_> = done.offsets.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(offsets, [(0, 3), (1, 0)]);
    let explicit = v1::reset_offsets_request::To::Offset(1);
    broker.groups.reset_offsets(reset("g", "t", &[0], explicit)).await.unwrap();
    let beyond = v1::reset_offsets_request::To::Offset(99);
    let clamped = broker.groups.reset_offsets(reset("g", "t", &[1], beyond)).await.unwrap().into_inner();
    assert_eq!(clamped.offsets[0].offset, 0, "clamped to the partition's end");
    let stored = broker.groups.fetch_offsets(lookup).await.unwrap().into_inner().offsets;
    assert_eq!(stored.iter().map(|o| o.offset).collect::<Vec<_>>(), [1, 0]);

    // A member joining now starts from the reset offsets; then the group is active again.
    let _back = TestMember::join(&g, "g", &["t"], SESSION_MS).await;
    assert_status(
        broker.groups.reset_offsets(reset("g", "t", &[], latest())).await,
        Code::FailedPrecondition,
        &["active"],
    );
    let missing = broker.groups.reset_offsets(reset("other", "nope", &[], latest())).await;
    assert_status(missing, Code::NotFound, &["nope"]);
    broker.assert_serving().await;
}

#[tokio::test]
async fn a_deleted_group_forgets_its_offsets_for_good() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    broker.groups.reset_offsets(reset("g", "t", &[], latest())).await.unwrap();
    let deleted = broker.groups.delete_group(v1::DeleteGroupRequest { group: "g".into() }).await.unwrap();
    assert_eq!(deleted.into_inner().deleted_offsets, 2);
    let again = broker.groups.delete_group(v1::DeleteGroupRequest { group: "g".into() }).await;
    assert_status(again, Code::NotFound, &["unknown group"]);

    let mut broker = broker.restart().await;
    let lookup = v1::FetchOffsetsRequest { group: "g".into(), partitions: vec![] };
    assert!(broker.groups.fetch_offsets(lookup).await.unwrap().into_inner().offsets.is_empty(), "deletion is durable");
    let listed = broker.groups.list_groups(v1::ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn offsets_of_a_group_empty_past_the_retention_expire_and_active_groups_keep_theirs() {
    let mut broker = TestBroker::start_with(|c| c.group_offsets_retention_ms = Some(200)).await;
    broker.create_topic("t", 1).await;
    let g = broker.groups.clone();
    let mut member = TestMember::join(&g, "active", &["t"], SESSION_MS).await;
    settle(&g, "active", &mut [&mut member]).await;
    let commit = v1::CommitOffsetsRequest {
        group: "active".into(),
        member_id: member.id.clone(),
        generation: member.generation,
        offsets: vec![v1::OffsetCommit { topic: "t".into(), partition: 0, offset: 0, metadata: String::new() }],
    };
    broker.groups.commit_offsets(commit).await.unwrap();
    broker.groups.reset_offsets(reset("idle", "t", &[], latest())).await.unwrap();

    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        member.ack().await;
        let listed = broker.groups.list_groups(v1::ListGroupsRequest {}).await.unwrap().into_inner().groups;
        if listed.iter().all(|s| s.group != "idle") {
            assert!(listed.iter().any(|s| s.group == "active"), "a group with members keeps its offsets");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the idle group's offsets never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lookup = v1::FetchOffsetsRequest { group: "active".into(), partitions: vec![] };
    assert_eq!(broker.groups.fetch_offsets(lookup).await.unwrap().into_inner().offsets.len(), 1);
}
