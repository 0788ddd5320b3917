//! KIP-848's ConsumerGroupHeartbeat over the raw protocol: a member joins with epoch 0 and learns its partitions
//! by topic id; a gRPC member shares the group and gets partitions only once the Kafka member reports it let them
//! go; and each refusal has its Kafka code and a message: an unknown member, an epoch never sent (FENCED), an
//! unknown server assignor, a regex subscription, a classic group's id; and a member that keeps partitions it
//! was told to revoke past its rebalance timeout is removed. A static member (instance id) that leaves with epoch
//! -2 keeps its partitions for the next process with its instance id, until its session expires; a held instance
//! id is UNRELEASED_INSTANCE_ID, one that is not the member's own FENCED_INSTANCE_ID; a gRPC member joining while
//! it is away gets its share at once.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::group_member::TestMember;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::TestBroker;

const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_INSTANCE_ID: i16 = 82;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNRELEASED_INSTANCE_ID: i16 = 111;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn addr(broker: &TestBroker) -> SocketAddr {
    broker.handle.as_ref().expect("running").addr()
}

fn heartbeat(group: &str, member: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
}

fn joining(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    heartbeat(group, member, 0)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(text(t))).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

async fn topic_id(client: &mut KafkaClient, topic: &str) -> uuid::Uuid {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(text(topic))))]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request).await;
    response.topics[0].topic_id
}

fn partitions(response: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<i32>> {
    let assignment = response.assignment.as_ref()?;
    Some(assignment.topic_partitions.iter().flat_map(|t| t.partitions.iter().copied()).collect())
}

fn message(response: &ConsumerGroupHeartbeatResponse) -> String {
    response.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_kafka_member_and_a_grpc_member_share_a_group_and_partitions_move_only_once_released() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "orders").await;
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("g", "kafka-member", &["orders"])).await;
    assert_eq!(joined.error_code, 0, "{}", message(&joined));
    assert_eq!(joined.member_id.as_ref().map(|m| m.as_str()), Some("kafka-member"), "the client's own id is kept");
    assert!(joined.member_epoch > 0);
    let assignment = joined.assignment.as_ref().expect("a join hears its assignment");
    assert_eq!(assignment.topic_partitions[0].topic_id, id, "assignments name topics by id");
    assert_eq!(partitions(&joined), Some([0, 1, 2, 3].into()));
    let owned = |ps: &[i32]| Some(vec![TopicPartitions::default().with_topic_id(id).with_partitions(ps.to_vec())]);
    let steady: ConsumerGroupHeartbeatResponse = client
        .call(
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &heartbeat("g", "kafka-member", joined.member_epoch).with_topic_partitions(owned(&[0, 1, 2, 3])),
        )
        .await;
    assert_eq!((steady.error_code, steady.assignment.is_none()), (0, true));

    // A gRPC member of the same group waits for what the Kafka member still owns.
    let mut grpc = TestMember::join(&broker.groups, "g", &["orders"], 10_000).await;
    assert!(grpc.partitions().is_empty(), "nothing is free yet: {:?}", grpc.partitions());
    let told: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("g", "kafka-member", steady.member_epoch)).await;
    assert!(told.member_epoch > steady.member_epoch, "a new assignment, a new epoch");
    let kept: Vec<i32> = partitions(&told).expect("the assignment comes with the new epoch").into_iter().collect();
    assert_eq!(kept.len(), 2);
    let released: ConsumerGroupHeartbeatResponse = client
        .call(
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &heartbeat("g", "kafka-member", told.member_epoch).with_topic_partitions(owned(&kept)),
        )
        .await;
    assert_eq!(released.error_code, 0);
    let granted = grpc.next().await.expect("the released partitions go to the gRPC member");
    let granted: BTreeSet<i32> = granted.assigned.iter().flat_map(|t| t.partitions.iter().map(|p| *p as i32)).collect();
    assert!(granted.is_disjoint(&kept.iter().copied().collect()), "no partition is owned twice");
    assert_eq!(granted.len(), 2);

    let left: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("g", "kafka-member", -1)).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let all = grpc.next().await.expect("the leaver's partitions follow at once");
    assert_eq!(all.assigned.iter().map(|t| t.partitions.len()).sum::<usize>(), 4);
}

#[tokio::test]
async fn a_kafka_member_that_keeps_revoked_partitions_past_its_rebalance_timeout_is_removed() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "orders").await;
    let owned_all = Some(vec![TopicPartitions::default().with_topic_id(id).with_partitions(vec![0, 1, 2, 3])]);
    let stuck = |epoch: i32| {
        heartbeat("g", "stuck", epoch).with_rebalance_timeout_ms(500).with_topic_partitions(owned_all.clone())
    };
    let joined: ConsumerGroupHeartbeatResponse = client
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("g", "stuck", &["orders"]).with_rebalance_timeout_ms(500))
        .await;
    assert_eq!(joined.error_code, 0, "{}", message(&joined));
    let mut epoch = joined.member_epoch;
    let mut grpc = TestMember::join(&broker.groups, "g", &["orders"], 10_000).await;
    assert!(grpc.partitions().is_empty(), "the Kafka member owns everything");
    // The Kafka member is told to give two partitions up, and keeps reporting all four, heartbeating on.
    let started = std::time::Instant::now();
    let refused = loop {
        let answer: ConsumerGroupHeartbeatResponse =
            client.call(ApiKey::ConsumerGroupHeartbeat, 1, &stuck(epoch)).await;
        if answer.error_code != 0 {
            break answer;
        }
        epoch = answer.member_epoch;
        assert!(started.elapsed() < Duration::from_secs(30), "never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.error_code, UNKNOWN_MEMBER_ID, "{}", message(&refused));
    assert!(started.elapsed() >= Duration::from_millis(500), "not before its rebalance timeout");
    let all = grpc.next().await.expect("the stuck member's partitions move");
    assert_eq!(all.assigned.iter().map(|t| t.partitions.len()).sum::<usize>(), 4);
}

#[tokio::test]
async fn each_refusal_has_its_kafka_code_and_says_what_was_wrong() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;

    let unknown: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("g", "nobody", 4)).await;
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID, "{}", message(&unknown));

    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("g", "m", &["orders"])).await;
    let fenced: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("g", "m", joined.member_epoch + 5)).await;
    assert_eq!(fenced.error_code, FENCED_MEMBER_EPOCH);
    assert!(message(&fenced).contains("rejoin with epoch 0"), "{}", message(&fenced));

    let assignor = joining("h", "m", &["orders"]).with_server_assignor(Some(text("cooperative-sticky")));
    let refused: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &assignor).await;
    assert_eq!(refused.error_code, UNSUPPORTED_ASSIGNOR);
    assert!(message(&refused).contains("\"uniform\" or \"range\""), "{}", message(&refused));

    // A regex is resolved by the broker; one RE2 cannot compile is refused, naming it.
    let regex = joining("r", "m", &[]).with_subscribed_topic_regex(Some(text("ord.*")));
    let joined: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &regex).await;
    assert_eq!(joined.error_code, 0, "{}", message(&joined));
    let held = joined.assignment.map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum::<usize>());
    assert_eq!(held, Some(2), "both partitions of orders, which the regex matches");
    let bad = joining("r2", "m", &[]).with_subscribed_topic_regex(Some(text("ord(ers")));
    let refused: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &bad).await;
    assert_eq!(refused.error_code, INVALID_REGULAR_EXPRESSION);
    assert!(message(&refused).contains("\"ord(ers\" is not a valid RE2"), "{}", message(&refused));

    // A classic group's id belongs to the classic protocol while it has members.
    let classic = JoinGroupRequest::default()
        .with_group_id(GroupId(text("classic")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(5_000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"subscription"))]);
    let joined_classic: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &classic).await;
    assert_eq!(joined_classic.error_code, 0);
    let refused: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("classic", "m", &["orders"])).await;
    assert_eq!(refused.error_code, GROUP_ID_NOT_FOUND);
    assert!(message(&refused).contains("classic"), "{}", message(&refused));
}

fn commit(member: &str, epoch: i32, offset: i64) -> OffsetCommitRequest {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    OffsetCommitRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_member_id(text(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(text("orders"))).with_partitions(
            vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset)],
        )])
}

fn fetch_as(member: Option<&str>, epoch: i32) -> OffsetFetchRequest {
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(text("g")))
        .with_member_id(member.map(text))
        .with_member_epoch(epoch)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(text("orders")))
            .with_partition_indexes(vec![0])]));
    OffsetFetchRequest::default().with_groups(vec![group])
}

fn commit_code(response: &OffsetCommitResponse) -> i16 {
    response.topics[0].partitions[0].error_code
}

/// (group error, the committed offset of orders/0 when there is no error)
fn fetched(response: &OffsetFetchResponse) -> (i16, Option<i64>) {
    let group = &response.groups[0];
    let offset = group.topics.first().and_then(|t| t.partitions.first()).map(|p| p.committed_offset);
    (group.error_code, offset)
}

#[tokio::test]
async fn offset_commit_and_fetch_v9_check_the_members_epoch_with_kip_848_codes() {
    const ILLEGAL_GENERATION: i16 = 22;
    const STALE_MEMBER_EPOCH: i16 = 113;
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "orders").await;
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("g", "m", &["orders"])).await;
    assert_eq!(joined.error_code, 0, "{}", message(&joined));
    let epoch = joined.member_epoch;
    assert!(epoch > 0);
    let owned = Some(vec![TopicPartitions::default().with_topic_id(id).with_partitions(vec![0, 1])]);
    let steady: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat("g", "m", epoch).with_topic_partitions(owned)).await;
    assert_eq!((steady.error_code, steady.member_epoch), (0, epoch), "{}", message(&steady));

    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit("m", epoch, 3)).await;
    assert_eq!(commit_code(&committed), 0, "the member's own epoch");
    let stale: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit("m", epoch - 1, 7)).await;
    assert_eq!(commit_code(&stale), STALE_MEMBER_EPOCH, "an epoch it no longer holds");
    let ahead: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit("m", epoch + 1, 7)).await;
    assert_eq!(commit_code(&ahead), FENCED_MEMBER_EPOCH, "an epoch it was never sent");
    let old_client: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit("m", epoch - 1, 7)).await;
    assert_eq!(commit_code(&old_client), ILLEGAL_GENERATION, "v8 knows no KIP-848 codes");
    let unknown: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &commit("other", epoch, 7)).await;
    assert_eq!(commit_code(&unknown), UNKNOWN_MEMBER_ID);

    let mine: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &fetch_as(Some("m"), epoch)).await;
    assert_eq!(fetched(&mine), (0, Some(3)), "only the commit at the right epoch landed");
    let stale: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &fetch_as(Some("m"), epoch - 1)).await;
    assert_eq!(fetched(&stale).0, STALE_MEMBER_EPOCH);
    let ahead: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &fetch_as(Some("m"), epoch + 1)).await;
    assert_eq!(fetched(&ahead).0, FENCED_MEMBER_EPOCH);
    let stranger: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &fetch_as(Some("other"), epoch)).await;
    assert_eq!(fetched(&stranger).0, UNKNOWN_MEMBER_ID);
    let admin: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &fetch_as(None, -1)).await;
    assert_eq!(fetched(&admin), (0, Some(3)), "an admin tool names no member");
    let v8: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &fetch_as(None, -1)).await;
    assert_eq!(fetched(&v8), (0, Some(3)));
}

/// One Kafka member's side of the raw protocol: its id, epoch and the partitions of one topic it owns, reported
/// on every heartbeat as a client does once it has reconciled.
struct RawMember {
    id: String,
    instance: Option<String>,
    epoch: i32,
    owned: BTreeSet<i32>,
}

impl RawMember {
    async fn join(client: &mut KafkaClient, id: &str, instance: Option<&str>) -> RawMember {
        let request = joining("g", id, &["orders"]).with_instance_id(instance.map(text));
        let joined: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request).await;
        assert_eq!(joined.error_code, 0, "{}", message(&joined));
        RawMember {
            id: id.into(),
            instance: instance.map(String::from),
            epoch: joined.member_epoch,
            owned: partitions(&joined).expect("a join hears its assignment"),
        }
    }

    /// A heartbeat reporting what it owns; takes the assignment it hears (as applied at once).
    async fn beat(&mut self, client: &mut KafkaClient, topic: uuid::Uuid) -> ConsumerGroupHeartbeatResponse {
        let owned =
            TopicPartitions::default().with_topic_id(topic).with_partitions(self.owned.iter().copied().collect());
        let request = heartbeat("g", &self.id, self.epoch)
            .with_instance_id(self.instance.as_deref().map(text))
            .with_topic_partitions(Some(vec![owned]));
        let answer: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request).await;
        if answer.error_code == 0 {
            self.epoch = answer.member_epoch;
            if let Some(assigned) = partitions(&answer) {
                self.owned = assigned;
            }
        }
        answer
    }

    async fn leave(&self, client: &mut KafkaClient, epoch: i32) -> ConsumerGroupHeartbeatResponse {
        let request = heartbeat("g", &self.id, epoch).with_instance_id(self.instance.as_deref().map(text));
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request).await
    }
}

/// Static member "a1" (instance "pod-a") and dynamic "b" own two of orders' four partitions each, every
/// revocation reported.
async fn settled_static_pair(client: &mut KafkaClient, topic: uuid::Uuid) -> (RawMember, RawMember) {
    let mut a = RawMember::join(client, "a1", Some("pod-a")).await;
    assert_eq!(a.owned, [0, 1, 2, 3].into());
    a.beat(client, topic).await;
    let mut b = RawMember::join(client, "b", None).await;
    assert!(b.owned.is_empty(), "a owns everything until it reports letting go");
    let started = std::time::Instant::now();
    while a.owned.len() != 2 || b.owned.len() != 2 {
        assert_eq!(a.beat(client, topic).await.error_code, 0);
        assert_eq!(b.beat(client, topic).await.error_code, 0);
        assert!(started.elapsed() < Duration::from_secs(10), "never settled: a {:?}, b {:?}", a.owned, b.owned);
    }
    assert!(a.owned.is_disjoint(&b.owned));
    (a, b)
}

#[tokio::test]
async fn a_static_member_that_leaves_with_epoch_minus_2_keeps_its_partitions_for_its_next_process() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let topic = topic_id(&mut client, "orders").await;
    let (a1, mut b) = settled_static_pair(&mut client, topic).await;

    let left = a1.leave(&mut client, -2).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -2), "{}", message(&left));
    let (b_epoch, b_owned) = (b.epoch, b.owned.clone());
    let steady = b.beat(&mut client, topic).await;
    assert_eq!(steady.error_code, 0);
    assert!(steady.assignment.is_none(), "b is given none of a's partitions: {:?}", partitions(&steady));
    assert_eq!((b.epoch, &b.owned), (b_epoch, &b_owned));

    // The next process with the same instance id and a new member id takes a1's partitions back.
    let a2 = RawMember::join(&mut client, "a2", Some("pod-a")).await;
    assert_eq!(a2.owned, a1.owned, "the same partitions, with no rebalance");
    assert!(a2.epoch > a1.epoch);
    let still = b.beat(&mut client, topic).await;
    assert_eq!((still.error_code, still.assignment.is_none()), (0, true), "b moves nothing");

    // The old process is fenced by its instance id; its late leave removes nobody.
    let mut old = RawMember { epoch: a1.epoch, ..a1 };
    let fenced = old.beat(&mut client, topic).await;
    assert_eq!(fenced.error_code, FENCED_INSTANCE_ID, "{}", message(&fenced));
    assert!(message(&fenced).contains("pod-a"), "{}", message(&fenced));
    let late_leave = old.leave(&mut client, -2).await;
    assert_eq!(late_leave.error_code, FENCED_INSTANCE_ID);
    let described: ConsumerGroupDescribeResponse = client
        .call(
            ApiKey::ConsumerGroupDescribe,
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("g"))]),
        )
        .await;
    let ids: BTreeSet<String> = described.groups[0].members.iter().map(|m| m.member_id.to_string()).collect();
    assert_eq!(ids, ["a2".to_string(), "b".to_string()].into(), "a1 is gone");
    let a2_shown = described.groups[0].members.iter().find(|m| m.member_id.as_str() == "a2").expect("a2");
    assert_eq!(a2_shown.instance_id.as_deref(), Some("pod-a"), "described with its instance id");
}

#[tokio::test]
async fn a_held_instance_id_is_unreleased_and_another_ones_is_fenced() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let topic = topic_id(&mut client, "orders").await;
    let mut a = RawMember::join(&mut client, "a1", Some("pod-a")).await;
    a.beat(&mut client, topic).await;

    let intruder = joining("g", "a2", &["orders"]).with_instance_id(Some(text("pod-a")));
    let refused: ConsumerGroupHeartbeatResponse = client.call(ApiKey::ConsumerGroupHeartbeat, 1, &intruder).await;
    assert_eq!(refused.error_code, UNRELEASED_INSTANCE_ID, "{}", message(&refused));
    assert!(message(&refused).contains("\"pod-a\"") && message(&refused).contains("\"a1\""), "{}", message(&refused));

    let mut confused = RawMember { instance: Some("pod-z".into()), ..a };
    let fenced = confused.beat(&mut client, topic).await;
    assert_eq!(fenced.error_code, FENCED_INSTANCE_ID, "{}", message(&fenced));
    let mut a = RawMember { instance: Some("pod-a".into()), ..confused };
    let own = a.beat(&mut client, topic).await;
    assert_eq!(own.error_code, 0, "its own instance id passes: {}", message(&own));
    assert_eq!(a.owned, [0, 1, 2, 3].into(), "the refused joins changed nothing");
}

#[tokio::test]
async fn a_departed_static_members_partitions_move_when_its_session_expires() {
    let mut broker = TestBroker::start_with(|config| {
        config.group_consumer_session_timeout_ms = 1_500;
        config.group_consumer_heartbeat_interval_ms = 100;
    })
    .await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let topic = topic_id(&mut client, "orders").await;
    let (a, mut b) = settled_static_pair(&mut client, topic).await;
    assert_eq!(a.leave(&mut client, -2).await.error_code, 0);
    let left_at = std::time::Instant::now();
    loop {
        let answer = b.beat(&mut client, topic).await;
        assert_eq!(answer.error_code, 0, "{}", message(&answer));
        if b.owned.len() == 4 {
            break;
        }
        assert!(left_at.elapsed() < Duration::from_secs(30), "a's partitions never moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = left_at.elapsed();
    // a's session runs from its last heartbeat, a moment before the leave.
    assert!(waited >= Duration::from_millis(1_000), "moved after {waited:?}: before a's session could expire");
    let fresh = RawMember::join(&mut client, "a2", Some("pod-a")).await;
    assert!(fresh.owned.is_empty(), "the instance id is free again, and b owns everything: {:?}", fresh.owned);
}

#[tokio::test]
async fn a_grpc_member_joining_while_a_static_member_is_away_gets_its_share_at_once() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 4).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let topic = topic_id(&mut client, "orders").await;
    let mut a1 = RawMember::join(&mut client, "a1", Some("pod-a")).await;
    a1.beat(&mut client, topic).await;
    assert_eq!(a1.leave(&mut client, -2).await.error_code, 0);

    // The away member reads nothing, so the gRPC member need not wait for it to let its share go.
    let mut grpc = TestMember::join(&broker.groups, "g", &["orders"], 10_000).await;
    let started = std::time::Instant::now();
    while grpc.partitions().len() < 2 {
        grpc.next().await.expect("the stream stays open");
        assert!(started.elapsed() < Duration::from_secs(10), "never got its share: {:?}", grpc.partitions());
    }
    let granted: BTreeSet<i32> = grpc.partitions().into_iter().map(|p| p as i32).collect();
    assert_eq!(granted.len(), 2);

    let a2 = RawMember::join(&mut client, "a2", Some("pod-a")).await;
    assert_eq!(a2.owned.len(), 2, "the static member's share, kept for it");
    assert!(a2.owned.is_disjoint(&granted), "no partition owned twice");
}

#[tokio::test]
async fn a_groups_own_heartbeat_interval_set_through_its_configs_is_what_its_members_are_told() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 1).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let set = |key: &str, value: &str| {
        AlterableConfig::default().with_name(text(key)).with_config_operation(0).with_value(Some(text(value)))
    };
    let resource = AlterConfigsResource::default()
        .with_resource_type(32)
        .with_resource_name(text("tuned"))
        .with_configs(vec![set("consumer.heartbeat.interval.ms", "1234"), set("consumer.session.timeout.ms", "20000")]);
    let altered: IncrementalAlterConfigsResponse = client
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![resource]),
        )
        .await;
    assert_eq!(altered.responses[0].error_code, 0, "{:?}", altered.responses[0].error_message);
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("tuned", "m", &["orders"])).await;
    assert_eq!((joined.error_code, joined.heartbeat_interval_ms), (0, 1234), "{}", message(&joined));
    let default: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &joining("plain", "m", &["orders"])).await;
    assert_eq!(default.heartbeat_interval_ms, 5000, "a group without its own: the broker's");
}
