//! Kafka's group and admin APIs over the raw protocol (`kafka-protocol`'s encoders, `rill_tests::kafka_client`):
//! the classic group protocol's round trips and refusals (MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, an expired session), commits fenced by generation and visible to
//! gRPC, static members (KIP-345) restarted without a rebalance and their old ids fenced, a group refused to
//! the other protocol's members, topic administration's per-topic errors, and a lying
//! array count in a group request closing only its connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;
use rill_tests::group_member::{join_request, TestMember};
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{assert_status, TestBroker};

const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn addr(broker: &TestBroker) -> SocketAddr {
    broker.handle.as_ref().expect("running").addr()
}

fn join(group: &str, member_id: &str, session_timeout_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

/// A member's first join at v5: MEMBER_ID_REQUIRED with the id, then the join with it.
async fn join_new(client: &mut KafkaClient, group: &str) -> JoinGroupResponse {
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &join(group, "", 10_000)).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty(), "the id to join with comes with the refusal");
    client.call(ApiKey::JoinGroup, 5, &join(group, first.member_id.as_str(), 10_000)).await
}

async fn sync(
    client: &mut KafkaClient,
    group: &str,
    joined: &JoinGroupResponse,
    assignments: &[(&str, &str)],
) -> SyncGroupResponse {
    let assignments = assignments
        .iter()
        .map(|(member, assignment)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(text(member))
                .with_assignment(Bytes::from(assignment.to_string()))
        })
        .collect();
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(assignments);
    client.call(ApiKey::SyncGroup, 3, &request).await
}

async fn heartbeat(client: &mut KafkaClient, group: &str, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &request).await;
    response.error_code
}

async fn commit(client: &mut KafkaClient, group: &str, member: &str, generation: i32, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(text(topic))).with_partitions(
            vec![OffsetCommitRequestPartition::default()
                .with_committed_offset(offset)
                .with_committed_metadata(Some(text("m")))],
        )]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request).await;
    response.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn find_coordinator_names_this_node_for_one_key_or_many() {
    let broker = TestBroker::start_with(|c| c.advertise = Some("rill.example:19092".into())).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    for version in 0..=3 {
        let request = FindCoordinatorRequest::default().with_key(text("g"));
        let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, version, &request).await;
        assert_eq!((found.error_code, found.host.as_str(), found.port), (0, "rill.example", 19092), "v{version}");
    }
    let request = FindCoordinatorRequest::default().with_coordinator_keys(vec![text("a"), text("b"), text("")]);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &request).await;
    let codes: Vec<(String, i16, i32)> =
        found.coordinators.iter().map(|c| (c.key.to_string(), c.error_code, c.port)).collect();
    assert_eq!(codes, [("a".into(), 0, 19092), ("b".into(), 0, 19092), ("".into(), 24, -1)], "INVALID_GROUP_ID");
    let transactional = FindCoordinatorRequest::default().with_key(text("tx")).with_key_type(1);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &transactional).await;
    assert_eq!((found.error_code, found.port), (0, 19092), "a single node coordinates transactional ids too");
    let unknown_type = FindCoordinatorRequest::default().with_key(text("tx")).with_key_type(2);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &unknown_type).await;
    assert_eq!(found.error_code, 42, "INVALID_REQUEST: an unknown key type");
    assert!(found.error_message.expect("a message").contains("transactional ids (1)"));
}

#[tokio::test]
async fn a_member_joins_syncs_heartbeats_and_is_refused_with_a_stale_generation_or_unknown_id() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let joined = join_new(&mut client, "g").await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    let member = joined.member_id.to_string();
    let synced = sync(&mut client, "g", &joined, &[(&member, "all of it")]).await;
    assert_eq!((synced.error_code, synced.assignment.as_ref()), (0, &b"all of it"[..]));

    assert_eq!(heartbeat(&mut client, "g", &member, 1).await, 0);
    assert_eq!(heartbeat(&mut client, "g", &member, 0).await, ILLEGAL_GENERATION);
    assert_eq!(heartbeat(&mut client, "g", "nobody", 1).await, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&mut client, "other", &member, 1).await, UNKNOWN_MEMBER_ID);
    let unknown: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &join("g", "made-up", 10_000)).await;
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);

    assert_eq!(commit(&mut client, "g", &member, 0, "t", 7).await, ILLEGAL_GENERATION);
    assert_eq!(commit(&mut client, "g", "nobody", 1, "t", 7).await, UNKNOWN_MEMBER_ID);
    assert_eq!(commit(&mut client, "g", "", -1, "t", 7).await, UNKNOWN_MEMBER_ID, "the group has members");
    assert_eq!(commit(&mut client, "g", &member, 1, "t", 7).await, 0);
    // The commit is in the one offset store: gRPC reads it.
    let request = v1::FetchOffsetsRequest { group: "g".into(), partitions: vec![] };
    let offsets = broker.groups.fetch_offsets(request).await.expect("fetch offsets").into_inner().offsets;
    assert_eq!(offsets.iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect::<Vec<_>>(), [("t", 0, 7)]);
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(text("g"))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(TopicName(text("t"))).with_partition_indexes(vec![0, 1]),
    ]));
    let fetched: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &fetch).await;
    let found: Vec<i64> = fetched.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    assert_eq!(found, [7, -1]);

    let leave = LeaveGroupRequest::default().with_group_id(GroupId(text("g"))).with_member_id(text(&member));
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 2, &leave).await;
    assert_eq!(left.error_code, 0);
    assert_eq!(heartbeat(&mut client, "g", &member, 1).await, UNKNOWN_MEMBER_ID, "a member that left is gone");
    assert_eq!(commit(&mut client, "g", "", -1, "t", 9).await, 0, "an empty group takes a standalone commit");
}

#[tokio::test]
async fn a_second_member_makes_the_first_rejoin_and_both_get_the_leaders_assignments() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let addr = addr(&broker);
    let mut first = KafkaClient::connect(addr).await;
    let joined = join_new(&mut first, "g").await;
    let first_id = joined.member_id.to_string();
    assert_eq!(sync(&mut first, "g", &joined, &[(&first_id, "p0 p1")]).await.error_code, 0);

    // The second member's join waits for the first to rejoin; it runs on its own connection and task.
    let second = tokio::spawn(async move {
        let mut second = KafkaClient::connect(addr).await;
        let joined = join_new(&mut second, "g").await;
        (second, joined)
    });
    let mut rejoin_needed = false;
    for _ in 0..200 {
        if heartbeat(&mut first, "g", &first_id, 1).await == REBALANCE_IN_PROGRESS {
            rejoin_needed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rejoin_needed, "the first member is told to rejoin");
    let rejoined: JoinGroupResponse = first.call(ApiKey::JoinGroup, 5, &join("g", &first_id, 10_000)).await;
    let (mut second, second_joined) = second.await.expect("the second member's task");
    assert_eq!((rejoined.error_code, rejoined.generation_id, second_joined.generation_id), (0, 2, 2));
    assert_eq!(rejoined.leader.as_str(), first_id, "the leader stays the leader");
    assert_eq!(rejoined.members.len(), 2, "the leader gets every member's metadata");
    assert!(second_joined.members.is_empty(), "a follower gets none");
    let second_id = second_joined.member_id.to_string();

    // A stale sync is refused; the follower's sync waits for the leader's.
    let stale = SyncGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id(1)
        .with_member_id(text(&second_id));
    let refused: SyncGroupResponse = second.call(ApiKey::SyncGroup, 3, &stale).await;
    assert_eq!(refused.error_code, ILLEGAL_GENERATION);
    let follower = tokio::spawn(async move { sync(&mut second, "g", &second_joined, &[]).await });
    let leader = sync(&mut first, "g", &rejoined, &[(&first_id, "p0"), (&second_id, "p1")]).await;
    let follower = follower.await.expect("the follower's task");
    assert_eq!((leader.assignment.as_ref(), follower.assignment.as_ref()), (&b"p0"[..], &b"p1"[..]));
    assert_eq!(commit(&mut first, "g", &first_id, 1, "t", 1).await, ILLEGAL_GENERATION, "generation 1 is over");
}

#[tokio::test]
async fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &join("g", "", 300)).await;
    assert_eq!((first.error_code, first.generation_id), (0, 1), "before v4 no MEMBER_ID_REQUIRED round trip");
    let member = first.member_id.to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Describing the group is not a request from the member: it does not keep the session.
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(text("g"))]);
        let described: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &request).await;
        if described.groups[0].members.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the member was never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(heartbeat(&mut client, "g", &member, 1).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn a_group_is_kafkas_or_rills_and_the_other_kind_is_refused_with_a_clear_error() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let grpc_member = TestMember::join(&broker.groups, "rill-group", &["t"], 10_000).await;
    let refused: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &join("rill-group", "", 10_000)).await;
    assert_eq!(refused.error_code, INCONSISTENT_GROUP_PROTOCOL);
    // Kafka's tools see the rill group, with its member and what it owns.
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(text("rill-group"))]);
    let described: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &request).await;
    let group = &described.groups[0];
    assert_eq!((group.protocol_type.as_str(), group.members.len()), ("consumer", 1));
    assert_eq!(group.members[0].member_id.as_str(), grpc_member.id);

    let joined: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &join("kafka-group", "", 10_000)).await;
    assert_eq!(joined.error_code, 0);
    let mixed =
        TestMember::join_with(&broker.groups, join_request("kafka-group", &["t"], 10_000, v1::Assignor::Sticky)).await;
    assert_status(mixed.map(|m| m.id), tonic::Code::FailedPrecondition, &["kafka-group", "Kafka", "one kind of group"]);
    let listed: ListGroupsResponse = client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
    let mut groups: Vec<(String, String)> =
        listed.groups.iter().map(|g| (g.group_id.0.to_string(), g.group_state.to_string())).collect();
    groups.sort();
    assert_eq!(groups, [("kafka-group".into(), "CompletingRebalance".into()), ("rill-group".into(), "Stable".into())]);
    let delete =
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("kafka-group")), GroupId(text("none"))]);
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete).await;
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [68, 69], "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND");
}

#[tokio::test]
async fn create_topics_answers_each_topic_with_its_own_error_and_validate_only_creates_nothing() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("exists", 1).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let topic = |name: &str, partitions: i32| {
        CreatableTopic::default()
            .with_name(TopicName(text(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
    };
    let config =
        |name: &str, value: &str| CreatableTopicConfig::default().with_name(text(name)).with_value(Some(text(value)));
    let request = CreateTopicsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        topic("new", 3).with_configs(vec![config("retention.bytes", "-1")]),
        topic("exists", 1),
        topic("bad/name", 1),
        topic("zero", 0),
        topic("replicated", 1).with_replication_factor(3),
        topic("compacted", 1).with_configs(vec![config("cleanup.policy", "compact,shrink")]),
        topic("strict", 1).with_configs(vec![config("min.insync.replicas", "2")]),
        topic("lenient", 1).with_configs(vec![config("min.insync.replicas", "1")]),
    ]);
    let created: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request).await;
    let codes: Vec<(String, i16)> = created.topics.iter().map(|t| (t.name.0.to_string(), t.error_code)).collect();
    let expected = [
        ("new", 0),
        ("exists", 36),
        ("bad/name", 17),
        ("zero", 37),
        ("replicated", 38),
        ("compacted", 40),
        ("strict", 40),
        ("lenient", 0),
    ];
    assert_eq!(codes, expected.map(|(n, c)| (n.to_string(), c)));
    assert!(created.topics[1..7].iter().all(|t| t.error_message.is_some()), "every refusal says why");
    let strict = created.topics[6].error_message.as_deref().unwrap_or_default();
    assert!(strict.contains("min.insync.replicas 2: a single rill node holds one replica"), "{strict}");
    assert_eq!(created.topics[0].num_partitions, 3);
    let topics = broker.admin.list_topics(v1::ListTopicsRequest {}).await.expect("list").into_inner().topics;
    assert_eq!(topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["exists", "lenient", "new"]);

    let validated = CreateTopicsRequest::default().with_validate_only(true).with_topics(vec![topic("checked", 2)]);
    let answer: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 4, &validated).await;
    assert_eq!(answer.topics[0].error_code, 0);
    assert!(broker
        .admin
        .describe_topic(v1::DescribeTopicRequest { name: "checked".into(), auto_create: false })
        .await
        .is_err());

    let delete = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(text("new")), TopicName(text("nope"))]);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &delete).await;
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 3], "UNKNOWN_TOPIC_OR_PARTITION for the one that does not exist");

    // v6 names each topic by name or by id (KIP-516), never both; an id that names no topic is UNKNOWN_TOPIC_ID.
    let asked = metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(text("lenient"))));
    let metadata: MetadataResponse =
        client.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(vec![asked]))).await;
    let lenient = metadata.topics[0].topic_id;
    let state = delete_topics_request::DeleteTopicState::default;
    let stranger = uuid::Uuid::from_u128(9);
    let delete = DeleteTopicsRequest::default().with_topics(vec![
        state().with_topic_id(lenient),
        state().with_name(Some(TopicName(text("exists")))),
        state().with_name(Some(TopicName(text("checked")))).with_topic_id(stranger),
        state(),
        state().with_topic_id(stranger),
    ]);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &delete).await;
    let answers: Vec<(Option<&str>, uuid::Uuid, i16)> =
        deleted.responses.iter().map(|r| (r.name.as_ref().map(|n| n.0.as_str()), r.topic_id, r.error_code)).collect();
    let nil = uuid::Uuid::nil();
    let expected =
        [(Some("lenient"), lenient, 0), (Some("exists"), nil, 0), (Some("checked"), stranger, 42), (None, nil, 42)];
    assert_eq!(answers[..4], expected, "{deleted:?}");
    assert_eq!(answers[4], (None, stranger, 100), "{deleted:?}");
    assert!(deleted.responses[2..].iter().all(|r| r.error_message.is_some()), "every refusal says why");
    let topics = broker.admin.list_topics(v1::ListTopicsRequest {}).await.expect("list").into_inner().topics;
    assert!(topics.is_empty(), "{topics:?}");

    let resources = vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(text("0"))
            .with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("nope")),
    ];
    let described: DescribeConfigsResponse =
        client.call(ApiKey::DescribeConfigs, 4, &DescribeConfigsRequest::default().with_resources(resources)).await;
    assert_eq!((described.results[0].error_code, described.results[1].error_code), (0, 3));
    let broker_configs = &described.results[0].configs;
    let auto_create = broker_configs.iter().find(|c| c.name.as_str() == "auto.create.topics.enable").expect("listed");
    assert_eq!(auto_create.value.as_ref().map(|v| v.as_str()), Some("false"));
}

#[tokio::test]
async fn a_lying_count_in_a_group_request_closes_only_that_connection() {
    let broker = TestBroker::start().await;
    let addr = addr(&broker);
    let mut healthy = KafkaClient::connect(addr).await;
    // JoinGroup v0: group "g", session timeout, member "", protocol type "c", then 2^31 - 1 protocols.
    let mut body = vec![0, 11, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    body.extend_from_slice(&[0, 1, b'g', 0, 0, 0x27, 0x10, 0, 0, 0, 1, b'c']);
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let mut lying = KafkaClient::connect(addr).await;
    lying.send_raw(&frame).await;
    assert!(lying.is_closed_by_broker().await);
    let found: FindCoordinatorResponse =
        healthy.call(ApiKey::FindCoordinator, 0, &FindCoordinatorRequest::default().with_key(text("g"))).await;
    assert_eq!(found.error_code, 0, "the other connection is still served");
}

#[tokio::test]
async fn a_restarted_static_member_replaces_its_old_id_and_leaves_by_instance_id() {
    let broker = TestBroker::start().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let static_join = |member: &str| join("g", member, 10_000).with_group_instance_id(Some(text("pod-1")));
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &static_join("")).await;
    assert_eq!((first.error_code, first.generation_id), (0, 1), "a static member needs no MEMBER_ID_REQUIRED");
    assert_eq!(first.members[0].group_instance_id.as_ref().map(|id| id.as_str()), Some("pod-1"));
    let old_id = first.member_id.to_string();
    // The process restarts: same instance id, no member id. The old id is gone, the new one leads.
    let second: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &static_join("")).await;
    assert_eq!((second.error_code, second.generation_id), (0, 2));
    assert_ne!(second.member_id.as_str(), old_id);
    assert_eq!(second.leader, second.member_id);
    assert_eq!(heartbeat(&mut client, "g", &old_id, 1).await, UNKNOWN_MEMBER_ID);

    let leave = LeaveGroupRequest::default().with_group_id(GroupId(text("g"))).with_members(vec![
        leave_group_request::MemberIdentity::default().with_group_instance_id(Some(text("pod-1"))),
        leave_group_request::MemberIdentity::default().with_member_id(text("never-joined")),
    ]);
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 4, &leave).await;
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, [0, UNKNOWN_MEMBER_ID]);
    assert_eq!(heartbeat(&mut client, "g", second.member_id.as_str(), 2).await, UNKNOWN_MEMBER_ID);
}

fn static_join(member: &str, instance: &str) -> JoinGroupRequest {
    join("g", member, 10_000).with_group_instance_id(Some(text(instance)))
}

async fn static_heartbeat(client: &mut KafkaClient, member: &str, instance: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_member_id(text(member))
        .with_group_instance_id(Some(text(instance)))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &request).await;
    response.error_code
}

async fn static_sync(client: &mut KafkaClient, member: &str, instance: &str, generation: i32) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_generation_id(generation)
        .with_member_id(text(member))
        .with_group_instance_id(Some(text(instance)));
    client.call(ApiKey::SyncGroup, 3, &request).await
}

#[tokio::test]
async fn a_static_member_restarted_in_a_stable_group_keeps_its_assignment_and_fences_its_old_id() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let (mut a, mut b) = (KafkaClient::connect(addr(&broker)).await, KafkaClient::connect(addr(&broker)).await);
    // A stable group of two static members at generation 2, a the leader.
    let a1: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &static_join("", "pod-a")).await;
    let a_id = a1.member_id.to_string();
    // b's join parks until a, told by a heartbeat that the group rebalances, rejoins.
    let rejoin_a = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while static_heartbeat(&mut a, &a_id, "pod-a", 1).await != REBALANCE_IN_PROGRESS {
            assert!(tokio::time::Instant::now() < deadline, "b's join never started a rebalance");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let joined: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &static_join(&a_id, "pod-a")).await;
        joined
    };
    let join_b = static_join("", "pod-b");
    let (b1, a2): (JoinGroupResponse, JoinGroupResponse) =
        tokio::join!(b.call(ApiKey::JoinGroup, 5, &join_b), rejoin_a);
    assert_eq!((a2.error_code, b1.error_code, a2.generation_id, a2.leader.as_str()), (0, 0, 2, a_id.as_str()));
    let b_id = b1.member_id.to_string();
    let assignments = [(a_id.as_str(), "for a"), (b_id.as_str(), "for b")];
    let (a_synced, b_synced) =
        tokio::join!(sync(&mut a, "g", &a2, &assignments), static_sync(&mut b, &b_id, "pod-b", 2));
    assert_eq!((a_synced.assignment.as_ref(), b_synced.assignment.as_ref()), (&b"for a"[..], &b"for b"[..]));

    // b's process restarts: the same instance id, no member id. It is answered at once, at the same
    // generation, with a as the leader, and its sync gets the assignment it had; a sees no rebalance.
    let mut b2 = KafkaClient::connect(addr(&broker)).await;
    let rejoined: JoinGroupResponse = b2.call(ApiKey::JoinGroup, 5, &static_join("", "pod-b")).await;
    assert_eq!((rejoined.error_code, rejoined.generation_id, rejoined.leader.as_str()), (0, 2, a_id.as_str()));
    assert!(rejoined.members.is_empty(), "a follower gets no member list");
    let b2_id = rejoined.member_id.to_string();
    assert_ne!(b2_id, b_id);
    assert_eq!(static_sync(&mut b2, &b2_id, "pod-b", 2).await.assignment.as_ref(), b"for b");
    assert_eq!(static_heartbeat(&mut a, &a_id, "pod-a", 2).await, 0, "no rebalance for the others");

    // The old process is fenced on every call that names the instance id.
    assert_eq!(static_heartbeat(&mut b, &b_id, "pod-b", 2).await, FENCED_INSTANCE_ID);
    assert_eq!(static_sync(&mut b, &b_id, "pod-b", 2).await.error_code, FENCED_INSTANCE_ID);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_member_id(text(&b_id))
        .with_group_instance_id(Some(text("pod-b")))
        .with_generation_id_or_member_epoch(2)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(vec![OffsetCommitRequestPartition::default().with_committed_offset(1)])]);
    let committed: OffsetCommitResponse = b.call(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, FENCED_INSTANCE_ID);
    let join_again: JoinGroupResponse = b.call(ApiKey::JoinGroup, 5, &static_join(&b_id, "pod-b")).await;
    assert_eq!(join_again.error_code, FENCED_INSTANCE_ID);
    let leave = |member: &str| {
        LeaveGroupRequest::default().with_group_id(GroupId(text("g"))).with_members(vec![
            leave_group_request::MemberIdentity::default()
                .with_member_id(text(member))
                .with_group_instance_id(Some(text("pod-b"))),
        ])
    };
    let left: LeaveGroupResponse = b.call(ApiKey::LeaveGroup, 4, &leave(&b_id)).await;
    assert_eq!(left.members[0].error_code, FENCED_INSTANCE_ID);

    // The leader restarts too: told the old leader's id, it does not assign; its sync gets its assignment.
    let mut a3 = KafkaClient::connect(addr(&broker)).await;
    let rejoined: JoinGroupResponse = a3.call(ApiKey::JoinGroup, 5, &static_join("", "pod-a")).await;
    assert_eq!((rejoined.error_code, rejoined.generation_id, rejoined.leader.as_str()), (0, 2, a_id.as_str()));
    let a3_id = rejoined.member_id.to_string();
    assert_eq!(static_sync(&mut a3, &a3_id, "pod-a", 2).await.assignment.as_ref(), b"for a");
    assert_eq!(static_heartbeat(&mut b2, &b2_id, "pod-b", 2).await, 0);

    // The new b leaves: the group rebalances with the new a, which now leads.
    let left: LeaveGroupResponse = b2.call(ApiKey::LeaveGroup, 4, &leave(&b2_id)).await;
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(static_heartbeat(&mut a3, &a3_id, "pod-a", 2).await, REBALANCE_IN_PROGRESS);
    let alone: JoinGroupResponse = a3.call(ApiKey::JoinGroup, 5, &static_join(&a3_id, "pod-a")).await;
    assert_eq!((alone.error_code, alone.generation_id, alone.leader.as_str()), (0, 3, a3_id.as_str()));
}

#[tokio::test]
async fn joins_past_max_members_per_group_are_refused_even_before_they_take_their_ids() {
    let broker = TestBroker::start_with(|c| c.max_members_per_group = 2).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let joined = join_new(&mut client, "g").await;
    assert_eq!(joined.error_code, 0);
    let handed_out: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &join("g", "", 10_000)).await;
    assert_eq!(handed_out.error_code, MEMBER_ID_REQUIRED, "one more may come");
    let refused: JoinGroupResponse = client.call(ApiKey::JoinGroup, 5, &join("g", "", 10_000)).await;
    assert_eq!(refused.error_code, 81, "GROUP_MAX_SIZE_REACHED: the id handed out holds the last place");
}
