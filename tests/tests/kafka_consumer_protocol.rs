//! KIP-848's ConsumerGroupHeartbeat over the raw protocol: a member joins with epoch 0 and learns its partitions
//! by topic id; a gRPC member shares the group and gets partitions only once the Kafka member reports it let them
//! go; and each refusal has its Kafka code and a message: an unknown member, an epoch never sent (FENCED), an
//! unknown server assignor, a regex subscription, a classic group's id; and a member that keeps partitions it
//! was told to revoke past its rebalance timeout is removed.

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
const FENCED_MEMBER_EPOCH: i16 = 110;
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
