//! ConsumerGroupHeartbeat (v0–v1): Kafka's KIP-848 consumer protocol (`group.protocol=consumer`), on the node's
//! coordinator (`groups::consumer`). This file only translates: topic ids to names and back (KIP-848 names
//! topics by id, `topic_id.rs`), and the coordinator's refusals to Kafka's codes, each with its message.
//! A subscription by regex is resolved here, at every heartbeat, against the topics that exist
//! (`groups::consumer::subscription`), so the coordinator sees topic names only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::dispatch::Caller;
use super::KafkaContext;
use crate::groups::consumer::{
    keep_consumer_session, watch_revocation, ConsumerError, ConsumerHeartbeat, ConsumerSubscription, TopicRegex,
};
use crate::groups::{partition_counts_of, TopicPartition};

pub fn answer(
    kafka: &KafkaContext,
    request: ConsumerGroupHeartbeatRequest,
    caller: Caller,
) -> ConsumerGroupHeartbeatResponse {
    let group = request.group_id.0.to_string();
    if kafka.node.is_shutting_down() {
        return refused(ResponseError::CoordinatorNotAvailable, "the broker is shutting down".into());
    }
    if let Err(err) = kafka.node.offsets.check_coordinator(&group) {
        return refused(ResponseError::NotCoordinator, err.to_string());
    }
    if kafka.node.shares.is_share_group(&group) {
        return refused(
            ResponseError::GroupIdNotFound,
            format!("group {group} is a share group, not a consumer group"),
        );
    }
    let ids = TopicIds::now(kafka);
    let (subscribed_topics, subscription) = match subscription(kafka, &request, &ids) {
        Ok(Some((topics, asked))) => (Some(topics), Some(asked)),
        Ok(None) => (None, None),
        Err(message) => return refused(ResponseError::InvalidRegularExpression, message),
    };
    let owned = request.topic_partitions.map(|topics| {
        topics
            .iter()
            .filter_map(|owned| ids.name_of(owned.topic_id).map(|name| (name, &owned.partitions)))
            .flat_map(|(name, partitions)| {
                partitions.iter().filter_map(move |p| Some(TopicPartition::new(name, u32::try_from(*p).ok()?)))
            })
            .collect::<BTreeSet<_>>()
    });
    let heartbeat = ConsumerHeartbeat {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        client_id: caller.client_id,
        client_host: caller.host,
        subscribed_topics,
        subscription,
        server_assignor: request.server_assignor.map(|name| name.to_string()),
        owned,
        // -1: unchanged since the last heartbeat.
        rebalance_timeout: u64::try_from(request.rebalance_timeout_ms).ok().map(Duration::from_millis),
        instance_id: request.instance_id.map(|instance| instance.to_string()),
    };
    let counts = |topics: &BTreeSet<String>| partition_counts_of(&kafka.node, topics);
    match kafka.node.groups.consumer_heartbeat(heartbeat, counts, Instant::now()) {
        Ok(answer) => {
            if let Some(incarnation) = answer.new_session {
                keep_consumer_session(kafka.node.clone(), group.clone(), answer.member_id.clone(), incarnation);
            }
            if let Some((incarnation, deadline)) = answer.revocation_deadline {
                watch_revocation(kafka.node.clone(), group, answer.member_id.clone(), incarnation, deadline);
            }
            let assignment = answer
                .assignment
                .map(|partitions| Assignment::default().with_topic_partitions(ids.by_topic_id(&partitions)));
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(answer.member_id)))
                .with_member_epoch(answer.member_epoch)
                .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
        Err(err) => refused(code(&err), err.to_string()),
    }
}

/// The topics the member subscribes to after this heartbeat, and what it asked for, when either may have changed:
/// always while a regex is in force (a topic may have been created since), else only when the request names
/// topics. `None` fields (unchanged, in KIP-848) are filled from what the member asked before; an empty regex
/// means none, as librdkafka sends it.
fn subscription(
    kafka: &KafkaContext,
    request: &ConsumerGroupHeartbeatRequest,
    ids: &TopicIds,
) -> Result<Option<(BTreeSet<String>, ConsumerSubscription)>, String> {
    let asked_names: Option<BTreeSet<String>> =
        request.subscribed_topic_names.as_ref().map(|names| names.iter().map(|n| n.0.to_string()).collect());
    let asked_regex = match request.subscribed_topic_regex.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(source) => Some(Some(TopicRegex::new(source)?)),
    };
    let before = match (&asked_names, &asked_regex) {
        (Some(_), Some(_)) => None,
        _ if request.member_epoch == 0 => None,
        _ => kafka.node.groups.consumer_subscription(&request.group_id, &request.member_id),
    };
    let regex = match asked_regex {
        Some(regex) => regex,
        None => before.as_ref().and_then(|b| b.regex.clone()),
    };
    if regex.is_none() {
        // A regex just cleared leaves the names the member had, if it sent none.
        let cleared = before.as_ref().is_some_and(|b| b.regex.is_some());
        let names = if cleared { asked_names.or_else(|| before.map(|b| b.names)) } else { asked_names };
        return Ok(names.map(|names| (names.clone(), ConsumerSubscription { names, regex: None })));
    }
    let names = asked_names.or_else(|| before.map(|b| b.names)).unwrap_or_default();
    let subscription = ConsumerSubscription { names, regex };
    Ok(Some((subscription.resolve(ids.names()), subscription)))
}

fn code(err: &ConsumerError) -> ResponseError {
    match err {
        ConsumerError::UnknownMember { .. } => ResponseError::UnknownMemberId,
        ConsumerError::FencedEpoch { .. } => ResponseError::FencedMemberEpoch,
        ConsumerError::UnsupportedAssignor { .. } => ResponseError::UnsupportedAssignor,
        ConsumerError::ClassicGroup { .. } => ResponseError::GroupIdNotFound,
        ConsumerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ConsumerError::InvalidGroupId(_) => ResponseError::InvalidGroupId,
        ConsumerError::GroupFull { .. } | ConsumerError::TooManyGroups { .. } => ResponseError::GroupMaxSizeReached,
        ConsumerError::UnreleasedInstance { .. } => ResponseError::UnreleasedInstanceId,
        ConsumerError::FencedInstance { .. } => ResponseError::FencedInstanceId,
    }
}

fn refused(error: ResponseError, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_member_epoch(-1)
}

/// Every topic's id, as Metadata answers them (the controller's on a cluster).
pub(super) struct TopicIds {
    by_name: BTreeMap<String, Uuid>,
    by_id: BTreeMap<Uuid, String>,
}

impl TopicIds {
    pub(super) fn now(kafka: &KafkaContext) -> TopicIds {
        let pairs: Vec<(String, Uuid)> = match &kafka.node.replication {
            Some(replication) => replication
                .metadata()
                .topics
                .iter()
                .map(|(name, placed)| (name.clone(), placed.topic_id(name).as_uuid()))
                .collect(),
            None => kafka.node.registry.list().iter().map(|t| (t.name.to_string(), t.id.as_uuid())).collect(),
        };
        TopicIds { by_id: pairs.iter().map(|(n, id)| (*id, n.clone())).collect(), by_name: pairs.into_iter().collect() }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub(super) fn id_of(&self, name: &str) -> Option<Uuid> {
        self.by_name.get(name).copied()
    }

    pub(super) fn name_of(&self, id: Uuid) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// The assignment on the wire; a topic deleted since the assignment was computed is left out.
    fn by_topic_id(&self, partitions: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
        self.grouped(partitions)
            .into_iter()
            .map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions))
            .collect()
    }

    /// Partitions grouped by topic id; a topic deleted since they were listed is left out.
    pub(super) fn grouped(&self, partitions: &BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
        let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            if let Some(id) = self.by_name.get(&tp.topic) {
                out.entry(*id).or_default().push(tp.partition as i32);
            }
        }
        out
    }
}
