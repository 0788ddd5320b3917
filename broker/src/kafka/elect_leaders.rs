//! ElectLeaders (v0–v2, KIP-460), on the controller leader, through the election `rill cluster elect-leaders`
//! runs (`Controller::elect_preferred_leaders`): one metadata command for every partition that moves.
//!
//! PREFERRED (0) hands each partition named (or every partition, for a null list) back to its first replica
//! where that replica is alive and in sync: moved is 0, a preferred replica that leads already is
//! ELECTION_NOT_NEEDED, one that cannot lead now PREFERRED_LEADER_NOT_AVAILABLE with the reason. UNCLEAN (1)
//! would make an out-of-sync replica leader of a partition that has none; rill never does (unclean leader
//! election is off and cannot be turned on): a partition with a leader is ELECTION_NOT_NEEDED, as Kafka answers,
//! one without is ELIGIBLE_LEADERS_NOT_AVAILABLE saying why. As in Kafka, a null list answers only the
//! partitions that moved or could not, never ELECTION_NOT_NEEDED. ALTER on the cluster, as Kafka asks.

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::error::{error_code, Outcome};
use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::cluster::metadata::ClusterMetadata;
use crate::cluster::preferred_leaders::ElectionScope;
use crate::error::BrokerError;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn answer(
    kafka: &KafkaContext,
    request: ElectLeadersRequest,
    version: i16,
    principal: &Principal,
) -> ElectLeadersResponse {
    let asked: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect()
    });
    let controller =
        kafka.node.authorize(principal, Operation::Alter, &Resource::cluster()).and_then(|()| {
            match &kafka.controller {
                None => Err(crate::cluster::describe::single_node_election_refused()),
                Some(_) => kafka.leading_controller(),
            }
        });
    let controller = match controller {
        Ok(controller) => controller,
        Err(err) => return refused_whole(&err, asked.as_deref(), version),
    };
    let metadata = controller.metadata();
    let outcomes = match request.election_type {
        PREFERRED => match preferred(controller, &metadata, asked.as_deref()).await {
            Ok(outcomes) => outcomes,
            Err(err) => return refused_whole(&err, asked.as_deref(), version),
        },
        UNCLEAN => unclean(&metadata, asked.as_deref()),
        other => {
            let err = BrokerError::invalid(
                "election_type",
                format!("unknown election type {other}: 0 (PREFERRED) and 1 (UNCLEAN) are the types"),
            );
            return refused_whole(&err, asked.as_deref(), version);
        }
    };
    response(outcomes)
}

/// PREFERRED: the partitions asked that exist go to the election; the others are UNKNOWN_TOPIC_OR_PARTITION.
async fn preferred(
    controller: &crate::cluster::Controller,
    metadata: &ClusterMetadata,
    asked: Option<&[(String, i32)]>,
) -> Result<BTreeMap<(String, i32), Outcome>, BrokerError> {
    let mut outcomes = BTreeMap::new();
    let known: Option<Vec<(String, u32)>> = asked.map(|asked| {
        asked
            .iter()
            .filter_map(|(topic, partition)| match existing(metadata, topic, *partition) {
                Some(index) => Some((topic.clone(), index)),
                None => {
                    outcomes.insert((topic.clone(), *partition), unknown(metadata, topic, *partition));
                    None
                }
            })
            .collect()
    });
    let scope = match &known {
        None => ElectionScope::All,
        Some(known) if known.is_empty() => return Ok(outcomes),
        Some(known) => ElectionScope::Partitions(known),
    };
    let elected = controller.elect_preferred_leaders(scope).await?;
    for (moved, _epoch) in elected.moved {
        outcomes.insert((moved.topic, moved.partition as i32), (0, None));
    }
    for not_moved in elected.not_moved {
        let message = format!(
            "partition {} of topic {:?} stays with its leader: {}; the election moves it once the preferred \
             replica is alive and in the ISR",
            not_moved.partition, not_moved.topic, not_moved.reason
        );
        outcomes.insert(
            (not_moved.topic, not_moved.partition as i32),
            (ResponseError::PreferredLeaderNotAvailable.code(), Some(message)),
        );
    }
    // A partition named and neither moved nor refused is led by its preferred replica already.
    for (topic, partition) in known.unwrap_or_default() {
        outcomes.entry((topic.clone(), partition as i32)).or_insert_with(|| {
            let preferred = metadata.partition(&topic, partition).and_then(|p| p.replicas.first().copied());
            let message = match preferred {
                Some(node) => format!("node {node}, the preferred leader, leads it already"),
                None => "its preferred leader leads it already".to_owned(),
            };
            (ResponseError::ElectionNotNeeded.code(), Some(message))
        });
    }
    Ok(outcomes)
}

/// UNCLEAN: nothing is elected; each partition says why.
fn unclean(metadata: &ClusterMetadata, asked: Option<&[(String, i32)]>) -> BTreeMap<(String, i32), Outcome> {
    let partitions: Vec<(String, i32)> = match asked {
        Some(asked) => asked.to_vec(),
        None => metadata
            .topics
            .iter()
            .flat_map(|(name, placed)| (0..placed.partitions.len() as i32).map(move |p| (name.clone(), p)))
            .collect(),
    };
    let is_all = asked.is_none();
    partitions
        .into_iter()
        .filter_map(|(topic, partition)| {
            let Some(index) = existing(metadata, &topic, partition) else {
                let outcome = unknown(metadata, &topic, partition);
                return Some(((topic, partition), outcome));
            };
            let placed = metadata.partition(&topic, index)?;
            let outcome = match placed.leader {
                Some(_) if is_all => return None,
                Some(leader) => (
                    ResponseError::ElectionNotNeeded.code(),
                    Some(format!(
                        "node {leader} leads it; an unclean election only elects a partition without a leader"
                    )),
                ),
                None => (
                    ResponseError::EligibleLeadersNotAvailable.code(),
                    Some(format!(
                        "rill never elects an out-of-sync replica (unclean leader election is off and cannot be turned \
                         on): the partition gets a leader when a member of its ISR ({}) is alive again",
                        crate::cluster::reassign::join_ids(&placed.isr)
                    )),
                ),
            };
            Some(((topic, partition), outcome))
        })
        .collect()
}

/// The partition index, if `topic` has partition `partition`.
fn existing(metadata: &ClusterMetadata, topic: &str, partition: i32) -> Option<u32> {
    let index = u32::try_from(partition).ok()?;
    metadata.partition(topic, index).map(|_| index)
}

fn unknown(metadata: &ClusterMetadata, topic: &str, partition: i32) -> Outcome {
    let message = match metadata.topics.get(topic) {
        None => format!("no topic {topic:?}"),
        Some(placed) => format!("topic {topic:?} has partitions 0 to {}, not {partition}", placed.partitions.len() - 1),
    };
    (ResponseError::UnknownTopicOrPartition.code(), Some(message))
}

/// Every partition asked gets the same refusal; from v1 the request's code says it too (v0 has no such field).
fn refused_whole(err: &BrokerError, asked: Option<&[(String, i32)]>, version: i16) -> ElectLeadersResponse {
    let code = error_code(err);
    let outcomes = asked
        .unwrap_or_default()
        .iter()
        .map(|(topic, partition)| ((topic.clone(), *partition), (code, Some(err.to_string()))))
        .collect();
    let answer = response(outcomes);
    if version >= 1 {
        answer.with_error_code(code)
    } else {
        answer
    }
}

fn response(outcomes: BTreeMap<(String, i32), Outcome>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), (code, message)) in outcomes {
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message.map(text)),
        );
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default().with_topic(TopicName(text(topic))).with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
