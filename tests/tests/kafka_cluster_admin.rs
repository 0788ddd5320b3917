//! Kafka's ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments on the broker's port
//! (docs/kafka.md, docs/cluster.md), spoken raw with the `kafka-protocol` crate over every advertised version:
//! a single node refuses the two that change the cluster saying it runs alone and lists no reassignment; a
//! cluster of one (a controller quorum of one node, the real controller code) answers each partition with
//! Kafka's codes and a message saying what is allowed; and with authorization on, ElectLeaders and Alter need
//! ALTER on the cluster and List DESCRIBE, refused with CLUSTER_AUTHORIZATION_FAILED naming the principal.
//! DescribeCluster answers as Metadata does, on a single node and on a cluster.
//! The elections and moves themselves, across three real processes, are in `cli/tests/cluster_kafka_admin.rs`.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{cluster_of_one, TestBroker, PASSWORD};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn elect(election_type: i8, partitions: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
    let topics = partitions.map(|topics| {
        topics
            .iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default().with_topic(TopicName(text(topic))).with_partitions(partitions.to_vec())
            })
            .collect()
    });
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(topics)
        .with_timeout_ms(5_000)
}

/// Each partition's answer, as (topic, partition, code, message), sorted.
fn elected(response: &ElectLeadersResponse) -> Vec<(String, i32, i16, String)> {
    let mut results: Vec<_> = response
        .replica_election_results
        .iter()
        .flat_map(|topic| {
            topic.partition_result.iter().map(|p| {
                let message = p.error_message.as_deref().unwrap_or_default().to_string();
                (topic.topic.0.to_string(), p.partition_id, p.error_code, message)
            })
        })
        .collect();
    results.sort();
    results
}

fn codes(results: &[(String, i32, i16, String)]) -> Vec<(&str, i32, i16)> {
    results.iter().map(|(topic, partition, code, _)| (topic.as_str(), *partition, *code)).collect()
}

fn alter(partitions: &[(&str, i32, Option<&[i32]>)]) -> AlterPartitionReassignmentsRequest {
    let topics = partitions
        .iter()
        .map(|(topic, partition, replicas)| {
            let replicas = replicas.map(|ids| ids.iter().copied().map(BrokerId).collect());
            ReassignableTopic::default().with_name(TopicName(text(topic))).with_partitions(vec![
                ReassignablePartition::default().with_partition_index(*partition).with_replicas(replicas),
            ])
        })
        .collect();
    AlterPartitionReassignmentsRequest::default().with_timeout_ms(5_000).with_topics(topics)
}

/// Each partition's answer to an Alter, as (topic, partition, code, message), sorted.
fn altered(response: &AlterPartitionReassignmentsResponse) -> Vec<(String, i32, i16, String)> {
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    let mut results: Vec<_> = response
        .responses
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let message = p.error_message.as_deref().unwrap_or_default().to_string();
                (topic.name.0.to_string(), p.partition_index, p.error_code, message)
            })
        })
        .collect();
    results.sort();
    results
}

fn list_all() -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default().with_timeout_ms(5_000).with_topics(None)
}

#[tokio::test]
async fn a_single_node_refuses_elections_and_reassignments_saying_it_runs_alone_and_lists_none() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;

    for version in 0..=2 {
        let response: ElectLeadersResponse =
            client.call(ApiKey::ElectLeaders, version, &elect(PREFERRED, Some(&[("orders", &[0, 1])]))).await;
        let results = elected(&response);
        assert_eq!(codes(&results), [("orders", 0, INVALID_REQUEST), ("orders", 1, INVALID_REQUEST)], "v{version}");
        assert!(results[0].3.contains("runs alone") && results[0].3.contains("no other replica"), "{results:?}");
        assert_eq!(response.error_code, if version >= 1 { INVALID_REQUEST } else { 0 }, "v{version}");
    }
    for version in 0..=1 {
        let response: AlterPartitionReassignmentsResponse =
            client.call(ApiKey::AlterPartitionReassignments, version, &alter(&[("orders", 0, Some(&[0]))])).await;
        assert_eq!(response.error_code, INVALID_REQUEST, "v{version}");
        let message = response.error_message.as_deref().unwrap_or_default();
        assert!(message.contains("runs alone") && message.contains("--peers"), "{message}");
        assert!(response.responses.is_empty());
    }
    let listed: ListPartitionReassignmentsResponse =
        client.call(ApiKey::ListPartitionReassignments, 0, &list_all()).await;
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0), "nothing moves on a single node");
    broker.assert_serving().await;
}

/// DescribeCluster (Java's `AdminClient.describeCluster`; librdkafka and kafka-python build theirs from
/// Metadata) names the same brokers, cluster id and controller as Metadata, on a single node and on a cluster.
#[tokio::test]
async fn describe_cluster_answers_what_metadata_does_on_a_single_node_and_a_cluster() {
    let mut single = TestBroker::start().await;
    let mut cluster = cluster_of_one().await;
    for (broker, is_cluster) in [(&single, false), (&cluster, true)] {
        let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
        let metadata: MetadataResponse =
            client.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(Some(Vec::new()))).await;
        let brokers: Vec<(i32, String, i32)> =
            metadata.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
        let cluster_id = metadata.cluster_id.as_ref().map(|id| id.to_string());
        assert_eq!(brokers.len(), 1, "{brokers:?}");
        if is_cluster {
            assert_ne!(cluster_id.as_deref(), Some("rill"), "a cluster's own id, recorded at its start");
        }
        for version in 0..=1 {
            let described: DescribeClusterResponse =
                client.call(ApiKey::DescribeCluster, version, &DescribeClusterRequest::default()).await;
            assert_eq!(described.error_code, 0, "v{version}");
            let described_brokers: Vec<(i32, String, i32)> =
                described.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect();
            assert_eq!(described_brokers, brokers, "v{version}, cluster {is_cluster}");
            assert_eq!(Some(described.cluster_id.to_string()), cluster_id, "v{version}, cluster {is_cluster}");
            assert_eq!(described.controller_id, metadata.controller_id, "v{version}, cluster {is_cluster}");
        }
    }
    single.assert_serving().await;
    cluster.assert_serving().await;
}

#[tokio::test]
async fn a_cluster_answers_each_partition_with_kafkas_codes_and_what_is_allowed() {
    let broker = cluster_of_one().await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;

    // PREFERRED: the only replica leads already; unknown topics and partitions are said so, each alone.
    for version in 0..=2 {
        let asked: &[(&str, &[i32])] = &[("orders", &[0, 7, -1]), ("nope", &[0])];
        let response: ElectLeadersResponse =
            client.call(ApiKey::ElectLeaders, version, &elect(PREFERRED, Some(asked))).await;
        assert_eq!(response.error_code, 0, "v{version}");
        let results = elected(&response);
        assert_eq!(
            codes(&results),
            [
                ("nope", 0, UNKNOWN_TOPIC_OR_PARTITION),
                ("orders", -1, UNKNOWN_TOPIC_OR_PARTITION),
                ("orders", 0, ELECTION_NOT_NEEDED),
                ("orders", 7, UNKNOWN_TOPIC_OR_PARTITION),
            ],
            "v{version}"
        );
        assert!(results[2].3.contains("node 1, the preferred leader, leads it already"), "{results:?}");
        assert!(results[3].3.contains("partitions 0 to 1"), "{results:?}");
    }
    // Every partition: nothing moves, and Kafka leaves ELECTION_NOT_NEEDED out of such an answer.
    let all: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &elect(PREFERRED, None)).await;
    assert_eq!((all.error_code, elected(&all).len()), (0, 0), "{all:?}");
    // UNCLEAN: a partition with a leader needs no election; an unknown type is refused saying the types.
    let unclean: ElectLeadersResponse =
        client.call(ApiKey::ElectLeaders, 1, &elect(UNCLEAN, Some(&[("orders", &[1])]))).await;
    let results = elected(&unclean);
    assert_eq!(codes(&results), [("orders", 1, ELECTION_NOT_NEEDED)]);
    assert!(results[0].3.contains("node 1 leads it"), "{results:?}");
    let odd: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &elect(7, Some(&[("orders", &[1])]))).await;
    assert_eq!(odd.error_code, INVALID_REQUEST);
    assert!(elected(&odd)[0].3.contains("0 (PREFERRED) and 1 (UNCLEAN)"), "{odd:?}");

    for version in 0..=1 {
        let request = alter(&[
            ("orders", 0, Some(&[1])),
            ("orders", 1, Some(&[2])),
            ("nope", 0, Some(&[1])),
            ("orders", 9, None),
        ]);
        let results = altered(&client.call(ApiKey::AlterPartitionReassignments, version, &request).await);
        assert_eq!(
            codes(&results),
            [
                ("nope", 0, UNKNOWN_TOPIC_OR_PARTITION),
                ("orders", 0, 0),
                ("orders", 1, INVALID_REPLICA_ASSIGNMENT),
                ("orders", 9, UNKNOWN_TOPIC_OR_PARTITION),
            ],
            "v{version}"
        );
        assert!(results[2].3.contains("node 2 is not a member") && results[2].3.contains("alive members: 1"));
        // The no-op move of partition 0 is recorded until the controller completes it: wait for that first.
        wait_until_nothing_moves(&mut client).await;
        let request = alter(&[("orders", 0, Some(&[1, 1])), ("orders", 1, None)]);
        let results = altered(&client.call(ApiKey::AlterPartitionReassignments, version, &request).await);
        assert_eq!(
            codes(&results),
            [("orders", 0, INVALID_REPLICA_ASSIGNMENT), ("orders", 1, NO_REASSIGNMENT_IN_PROGRESS)],
            "v{version}"
        );
        assert!(results[0].3.contains("more than once"), "{results:?}");
        assert!(results[1].3.contains("nothing to cancel"), "{results:?}");
        let empty = altered(
            &client.call(ApiKey::AlterPartitionReassignments, version, &alter(&[("orders", 1, Some(&[]))])).await,
        );
        assert_eq!(codes(&empty), [("orders", 1, INVALID_REPLICA_ASSIGNMENT)]);
        assert!(empty[0].3.contains("empty"), "{empty:?}");
    }
    // v1 may forbid a change of the replica count.
    let fixed = alter(&[("orders", 0, Some(&[1, 2]))]).with_allow_replication_factor_change(false);
    let answer: AlterPartitionReassignmentsResponse = client.call(ApiKey::AlterPartitionReassignments, 1, &fixed).await;
    assert!(!answer.allow_replication_factor_change);
    let results = altered(&answer);
    assert_eq!(codes(&results), [("orders", 0, INVALID_REPLICATION_FACTOR)]);
    assert!(results[0].3.contains("does not allow a replication factor change"), "{results:?}");
    wait_until_nothing_moves(&mut client).await;
}

/// Polls ListPartitionReassignments until it lists nothing; anything it lists is `orders` 0 staying on node 1.
async fn wait_until_nothing_moves(client: &mut KafkaClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: ListPartitionReassignmentsResponse =
            client.call(ApiKey::ListPartitionReassignments, 0, &list_all()).await;
        assert_eq!(listed.error_code, 0, "{:?}", listed.error_message);
        if listed.topics.is_empty() {
            return;
        }
        for topic in &listed.topics {
            for p in &topic.partitions {
                assert_eq!((topic.name.0.as_str(), p.partition_index), ("orders", 0));
                assert_eq!(
                    (p.replicas.clone(), p.adding_replicas.len(), p.removing_replicas.len()),
                    (vec![BrokerId(1)], 0, 0)
                );
            }
        }
        assert!(Instant::now() < deadline, "a no-op move still listed after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The super user `admin` grants User:ops DESCRIBE on the resource of Kafka type `resource_type` named `name`.
async fn allow_ops_to_describe(admin: &mut KafkaClient, resource_type: i8, name: &str) {
    let grant = CreateAclsRequest::default().with_creations(vec![AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_resource_pattern_type(3) // LITERAL
        .with_principal(text("User:ops"))
        .with_host(text("*"))
        .with_operation(8) // DESCRIBE
        .with_permission_type(3)]); // ALLOW
    let granted: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(granted.results[0].error_code, 0, "{:?}", granted.results[0].error_message);
}

#[tokio::test]
async fn elections_and_reassignments_need_alter_on_the_cluster_and_listing_them_describe() {
    let broker = TestBroker::start_authorizing(&[("orders", 1)], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;

    for version in 0..=2 {
        let response: ElectLeadersResponse =
            ops.call(ApiKey::ElectLeaders, version, &elect(PREFERRED, Some(&[("orders", &[0])]))).await;
        let results = elected(&response);
        assert_eq!(codes(&results), [("orders", 0, CLUSTER_AUTHORIZATION_FAILED)], "v{version}");
        assert!(results[0].3.contains("User:ops") && results[0].3.contains("alter the cluster"), "{results:?}");
    }
    for version in 0..=1 {
        let response: AlterPartitionReassignmentsResponse =
            ops.call(ApiKey::AlterPartitionReassignments, version, &alter(&[("orders", 0, Some(&[0]))])).await;
        assert_eq!(response.error_code, CLUSTER_AUTHORIZATION_FAILED, "v{version}");
        assert!(response.error_message.as_deref().unwrap_or_default().contains("alter the cluster"));
    }
    let refused: ListPartitionReassignmentsResponse =
        ops.call(ApiKey::ListPartitionReassignments, 0, &list_all()).await;
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(refused.error_message.as_deref().unwrap_or_default().contains("describe the cluster"));

    // DESCRIBE on the cluster lets ops list, and still not elect.
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    allow_ops_to_describe(&mut admin, 4, "kafka-cluster").await; // CLUSTER
    let listed: ListPartitionReassignmentsResponse = ops.call(ApiKey::ListPartitionReassignments, 0, &list_all()).await;
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0));
    let still: ElectLeadersResponse = ops.call(ApiKey::ElectLeaders, 2, &elect(PREFERRED, None)).await;
    assert_eq!(still.error_code, CLUSTER_AUTHORIZATION_FAILED);
    // The super user gets past authorization to the single node's own refusal.
    let past: ElectLeadersResponse =
        admin.call(ApiKey::ElectLeaders, 2, &elect(PREFERRED, Some(&[("orders", &[0])]))).await;
    assert_eq!(past.error_code, INVALID_REQUEST);
}

fn quorum_request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(text(topic)))
        .with_partitions(
            partitions
                .iter()
                .map(|p| describe_quorum_request::PartitionData::default().with_partition_index(*p))
                .collect(),
        )])
}

/// DescribeQuorum (`kafka-metadata-quorum.sh describe`): the controller quorum as Kafka's `__cluster_metadata`
/// partition 0, in every version: a cluster of one is its own leader and only voter, at its raft term, at the log
/// end it holds; a single node a quorum of one with unknown offsets; any other partition UNKNOWN_TOPIC_OR_PARTITION
/// each; DESCRIBE on the cluster needed (the three-node view through every node is in the compat tests).
#[tokio::test]
async fn describe_quorum_shows_the_controller_quorum_as_kafkas_metadata_log() {
    let mut cluster = cluster_of_one().await;
    let addr = cluster.handle.as_ref().expect("running").addr();
    let mut client = KafkaClient::connect(addr).await;
    for version in 0..=2 {
        let answer: DescribeQuorumResponse =
            client.call(ApiKey::DescribeQuorum, version, &quorum_request("__cluster_metadata", &[0])).await;
        assert_eq!(answer.error_code, 0, "v{version}");
        let log = &answer.topics[0].partitions[0];
        assert_eq!((answer.topics[0].topic_name.0.as_str(), log.error_code), ("__cluster_metadata", 0));
        assert_eq!(log.leader_id, BrokerId(1), "v{version}");
        assert!(log.leader_epoch >= 1, "the raft term: {}", log.leader_epoch);
        let voters: Vec<(i32, i64)> = log.current_voters.iter().map(|v| (v.replica_id.0, v.log_end_offset)).collect();
        assert_eq!(voters.len(), 1, "{voters:?}");
        // The topic created through the quorum is in its log: the end is past it, the applied part too.
        assert!(voters[0].0 == 1 && voters[0].1 > 1, "{voters:?}");
        assert!(log.high_watermark > 1 && log.high_watermark <= voters[0].1, "{}", log.high_watermark);
        assert!(log.observers.is_empty());
        if version >= 1 {
            assert_eq!(log.current_voters[0].last_fetch_timestamp, -1, "the leader's own, as Kafka reports it");
            assert!(log.current_voters[0].last_caught_up_timestamp > 0);
        }
        if version == 2 {
            let ports: Vec<(i32, u16)> =
                answer.nodes.iter().flat_map(|n| n.listeners.iter().map(|l| (n.node_id.0, l.port))).collect();
            assert_eq!(ports, [(1, addr.port())]);
        }
    }
    for asked in [quorum_request("__cluster_metadata", &[1]), quorum_request("orders", &[0, 1])] {
        let answer: DescribeQuorumResponse = client.call(ApiKey::DescribeQuorum, 2, &asked).await;
        let codes: Vec<(String, i32, i16)> = answer
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.to_string(), p.partition_index, p.error_code)))
            .collect();
        let expected: Vec<(String, i32, i16)> = asked
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.to_string(), p.partition_index, 3)))
            .collect();
        assert_eq!(codes, expected);
        let message = answer.topics[0].partitions[0].error_message.as_deref().unwrap_or_default().to_string();
        assert!(message.contains("__cluster_metadata partition 0"), "{message}");
    }
    cluster.assert_serving().await;

    let mut single = TestBroker::start().await;
    let mut client = KafkaClient::connect(single.handle.as_ref().expect("running").addr()).await;
    let answer: DescribeQuorumResponse =
        client.call(ApiKey::DescribeQuorum, 1, &quorum_request("__cluster_metadata", &[0])).await;
    let log = &answer.topics[0].partitions[0];
    assert_eq!((log.error_code, log.leader_epoch, log.high_watermark), (0, 0, -1));
    assert_eq!(log.current_voters.len(), 1);
    assert_eq!((log.current_voters[0].replica_id, log.current_voters[0].log_end_offset), (log.leader_id, -1));
    single.assert_serving().await;

    let broker = TestBroker::start_authorizing(&[], &["admin", "ops"]).await;
    let mut ops = KafkaClient::connect_as(broker.handle.as_ref().expect("running").addr(), "ops", PASSWORD).await;
    let refused: DescribeQuorumResponse =
        ops.call(ApiKey::DescribeQuorum, 2, &quorum_request("__cluster_metadata", &[0])).await;
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    let message = refused.error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains("User:ops") && message.contains("describe the cluster"), "{message}");
}

fn partitions_request(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| describe_topic_partitions_request::TopicRequest::default().with_name(TopicName(text(t))))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(topic, partition)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(TopicName(text(topic)))
                .with_partition_index(partition)
        }))
}

/// A topic as a page shows it: its name, error code and partition indexes.
type PagedTopic = (String, i16, Vec<i32>);

/// Each topic of a page and the next cursor.
fn page(answer: &DescribeTopicPartitionsResponse) -> (Vec<PagedTopic>, Option<(String, i32)>) {
    let topics = answer
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (name, t.error_code, t.partitions.iter().map(|p| p.partition_index).collect())
        })
        .collect();
    let cursor = answer.next_cursor.as_ref().map(|c| (c.topic_name.to_string(), c.partition_index));
    (topics, cursor)
}

/// DescribeTopicPartitions (KIP-966) pages Metadata's topics in name order from a cursor: the limit cuts a topic
/// or falls between two, the cursor names where the next page starts, and the last has none; unknown and refused
/// topics are said so; a cursor outside the topics asked is INVALID_REQUEST; each topic carries the operations
/// its principal may perform on it.
#[tokio::test]
async fn describe_topic_partitions_pages_topics_in_name_order_from_a_cursor() {
    let mut broker = TestBroker::start().await;
    for (topic, partitions) in [("c", 1), ("a", 3), ("b", 2)] {
        broker.create_topic(topic, partitions).await;
    }
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let s = |name: &str| name.to_owned();
    let ask = |topics: &'static [&'static str], limit, cursor| partitions_request(topics, limit, cursor);
    let first: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &ask(&[], 4, None)).await;
    assert_eq!(page(&first), (vec![(s("a"), 0, vec![0, 1, 2]), (s("b"), 0, vec![0])], Some((s("b"), 1))));
    let second: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &ask(&[], 4, Some(("b", 1)))).await;
    assert_eq!(page(&second), (vec![(s("b"), 0, vec![1]), (s("c"), 0, vec![0])], None));
    // A limit reached at a topic's end: the next page starts at the next topic.
    let cut: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &ask(&[], 3, None)).await;
    assert_eq!(page(&cut), (vec![(s("a"), 0, vec![0, 1, 2])], Some((s("b"), 0))));
    let named: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &ask(&["nope", "c", "a"], 2000, None)).await;
    assert_eq!(
        page(&named),
        (vec![(s("a"), 0, vec![0, 1, 2]), (s("c"), 0, vec![0]), (s("nope"), UNKNOWN_TOPIC_OR_PARTITION, vec![])], None)
    );
    let leader = &named.topics[0].partitions[0];
    assert_eq!(
        (leader.leader_id, leader.isr_nodes.len(), leader.eligible_leader_replicas.as_deref()),
        (BrokerId(0), 1, Some(&[][..]))
    );
    assert_eq!(named.topics[0].topic_authorized_operations & (1 << 8), 1 << 8, "DESCRIBE, with authorization off");
    let outside: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &ask(&["a"], 10, Some(("b", 0)))).await;
    assert_eq!(page(&outside).0, [(s("a"), INVALID_REQUEST, vec![])]);
    broker.assert_serving().await;

    let broker = TestBroker::start_authorizing(&[("a", 1), ("b", 1)], &["admin", "ops"]).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut admin = KafkaClient::connect_as(addr, "admin", PASSWORD).await;
    allow_ops_to_describe(&mut admin, 2, "a").await; // TOPIC
    let mut ops = KafkaClient::connect_as(addr, "ops", PASSWORD).await;
    let all: DescribeTopicPartitionsResponse = ops.call(ApiKey::DescribeTopicPartitions, 0, &ask(&[], 10, None)).await;
    assert_eq!(page(&all), (vec![(s("a"), 0, vec![0])], None), "only what ops may describe");
    assert_eq!(all.topics[0].topic_authorized_operations, 1 << 8, "DESCRIBE alone");
    let named: DescribeTopicPartitionsResponse =
        ops.call(ApiKey::DescribeTopicPartitions, 0, &ask(&["b"], 10, None)).await;
    assert_eq!(page(&named).0, [(s("b"), TOPIC_AUTHORIZATION_FAILED, vec![])]);
}
