//! DescribeQuorum (55), v0–v2: the controller quorum as Kafka's `kafka-metadata-quorum.sh describe` and the
//! admin clients' `describeMetadataQuorum` show a KRaft cluster's: Kafka's `__cluster_metadata` partition 0 is
//! rill's controller log (openraft), its leader the controller leader, its epoch the raft term, its voters and
//! observers (non-voting learners) the cluster's members, each with the log end offset it has acknowledged.
//!
//! As a Kafka broker forwards the request to the active controller, any node answers with the controller
//! leader's view (`cluster::describe::describe_by_leader`): only the leader knows what each member holds. When
//! no leader is known or it cannot be reached in time, the answer is NOT_LEADER_OR_FOLLOWER (retriable), with the
//! leader this node knows of. A single node, which has no controller quorum, answers as a quorum of one: itself
//! the leader and only voter, at epoch 0, its offsets unknown (-1). Any other topic or partition than
//! `__cluster_metadata`-0 is UNKNOWN_TOPIC_OR_PARTITION, as on Kafka. DESCRIBE on the cluster.
//!
//! Kafka's per-replica times are the leader's wall clock: `last_fetch_timestamp` is when the controller leader
//! last heard the member's heartbeat (rill's followers do not fetch the log, the leader sends it), and
//! `last_caught_up_timestamp` that time when the member holds the leader's whole log, else unknown (-1).

use kafka_protocol::messages::describe_quorum_response::{Listener, Node, PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_protocol::v1::DescribeClusterResponse;

use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::forwarded::ForwardedCaller;
use crate::auth::Principal;

/// Kafka's name of its metadata log's topic; partition 0 is the log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The listener name each voter's endpoint is described under, as Kafka's controllers name theirs.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

pub async fn answer(
    kafka: &KafkaContext,
    request: &DescribeQuorumRequest,
    version: i16,
    principal: &Principal,
) -> DescribeQuorumResponse {
    let mut response = described(kafka, request, principal).await;
    if version < 2 {
        // The voters' endpoints came with v2 (KIP-853).
        response.nodes.clear();
    }
    response
}

async fn described(
    kafka: &KafkaContext,
    request: &DescribeQuorumRequest,
    principal: &Principal,
) -> DescribeQuorumResponse {
    if let Err(err) = kafka.node.authorize(principal, Operation::Describe, &Resource::cluster()) {
        return DescribeQuorumResponse::default()
            .with_error_code(super::error::error_code(&err))
            .with_error_message(Some(text(err.to_string())));
    }
    let asks_the_log = matches!(
        request.topics.as_slice(),
        [topic] if topic.topic_name.0.as_str() == METADATA_TOPIC
            && matches!(topic.partitions.as_slice(), [partition] if partition.partition_index == 0)
    );
    if !asks_the_log {
        return each_asked_refused(request);
    }
    let Some(controller) = &kafka.controller else { return quorum_of_one(kafka) };
    let view =
        crate::cluster::describe::describe_by_leader(controller, ForwardedCaller::Principal(principal.clone())).await;
    if !view.answered_by_leader {
        let leader = view.controller_leader_id.and_then(|id| i32::try_from(id).ok()).unwrap_or(-1);
        let message = match view.controller_leader_id {
            Some(leader) => format!("controller leader {leader} did not answer in time; retry"),
            None => "no controller leader is elected (is a majority of the voters up?); retry".to_owned(),
        };
        let partition = PartitionData::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message(Some(text(message)))
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch(&view))
            .with_high_watermark(-1);
        return log_answer(partition, Vec::new());
    }
    leader_answer(&view)
}

/// The controller leader's view as Kafka's answer.
fn leader_answer(view: &DescribeClusterResponse) -> DescribeQuorumResponse {
    let now_ms = crate::node::now_ms();
    let leader_id = view.controller_leader_id;
    let leader_log_end = view.nodes.iter().find(|node| node.node_id == leader_id).and_then(|node| node.raft_log_end);
    let replica = |node: &rill_protocol::v1::ClusterNode| {
        let is_leader = node.node_id == leader_id;
        let heard = node.last_heartbeat_age_ms.map(|age| now_ms - i64::try_from(age).unwrap_or(i64::MAX).min(now_ms));
        let is_caught_up = node.raft_log_end.is_some() && node.raft_log_end >= leader_log_end;
        let (last_fetch, last_caught_up) = match (is_leader, heard) {
            // Kafka reports -1 and now for the leader itself.
            (true, _) => (-1, now_ms),
            (false, Some(heard)) => (heard, if is_caught_up { heard } else { -1 }),
            (false, None) => (-1, -1),
        };
        ReplicaState::default()
            .with_replica_id(broker_id(node.node_id))
            .with_log_end_offset(node.raft_log_end.and_then(|end| i64::try_from(end).ok()).unwrap_or(-1))
            .with_last_fetch_timestamp(last_fetch)
            .with_last_caught_up_timestamp(last_caught_up)
    };
    let (voters, observers): (Vec<_>, Vec<_>) = view.nodes.iter().partition(|node| node.is_voter);
    let listeners = voters
        .iter()
        .filter_map(|node| {
            let (host, port) = crate::config::parse_advertise(&node.address).ok()?;
            let listener =
                Listener::default().with_name(text(CONTROLLER_LISTENER)).with_host(text(host)).with_port(port);
            Some(Node::default().with_node_id(broker_id(node.node_id)).with_listeners(vec![listener]))
        })
        .collect();
    let partition = PartitionData::default()
        .with_leader_id(broker_id(leader_id))
        .with_leader_epoch(epoch(view))
        .with_high_watermark(view.raft_high_watermark.and_then(|hw| i64::try_from(hw).ok()).unwrap_or(-1))
        .with_current_voters(voters.into_iter().map(replica).collect())
        .with_observers(observers.into_iter().map(replica).collect());
    log_answer(partition, listeners)
}

/// A single node: a quorum of one, itself, with no log to give offsets of.
fn quorum_of_one(kafka: &KafkaContext) -> DescribeQuorumResponse {
    let this = BrokerId(kafka.node_id);
    let replica = ReplicaState::default()
        .with_replica_id(this)
        .with_log_end_offset(-1)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1);
    let partition = PartitionData::default()
        .with_leader_id(this)
        .with_leader_epoch(0)
        .with_high_watermark(-1)
        .with_current_voters(vec![replica]);
    let listener = Listener::default()
        .with_name(text(CONTROLLER_LISTENER))
        .with_host(text(kafka.advertised_host.clone()))
        .with_port(kafka.advertised_port);
    log_answer(partition, vec![Node::default().with_node_id(this).with_listeners(vec![listener])])
}

fn log_answer(partition: PartitionData, nodes: Vec<Node>) -> DescribeQuorumResponse {
    let topic = TopicData::default().with_topic_name(TopicName(text(METADATA_TOPIC))).with_partitions(vec![partition]);
    DescribeQuorumResponse::default().with_topics(vec![topic]).with_nodes(nodes)
}

/// Kafka's answer to a request that does not name exactly `__cluster_metadata`-0: each partition asked refused.
fn each_asked_refused(request: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    let message = format!("the controller quorum's log is {METADATA_TOPIC} partition 0, asked alone");
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    PartitionData::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(StrBytes::from_string(message.clone())))
                        .with_leader_id(BrokerId(-1))
                        .with_leader_epoch(-1)
                        .with_high_watermark(-1)
                })
                .collect();
            TopicData::default().with_topic_name(topic.topic_name.clone()).with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

fn broker_id(node_id: Option<u64>) -> BrokerId {
    BrokerId(node_id.and_then(|id| i32::try_from(id).ok()).unwrap_or(-1))
}

fn epoch(view: &DescribeClusterResponse) -> i32 {
    i32::try_from(view.raft_term).unwrap_or(i32::MAX)
}
