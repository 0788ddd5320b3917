//! What ConsumerGroupDescribe (KIP-848's describe) shows of a broker-assigned group: the group's epoch, its
//! assignor by Kafka's name, and per member its epoch, subscription, current assignment and target. gRPC members
//! are shown too (they are members of the same group), with their generation as epoch.

use std::collections::BTreeSet;

use super::super::assignor::{Assignor, TopicPartition};
use super::super::GroupCoordinator;

/// A broker-assigned group as Kafka's consumer-group tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// Kafka's state names for consumer groups: `Empty`, `Reconciling` or `Stable`.
    pub state: &'static str,
    /// Bumped by every change of membership or subscription; the target assignment is computed at each, so it is
    /// also the assignment epoch.
    pub group_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    /// A KIP-848 member (Kafka's member type "consumer"); false for a rill gRPC member.
    pub kip848: bool,
    /// A static member's instance id (`group.instance.id`).
    pub instance_id: Option<String>,
    /// What the member subscribes to, its regex resolved; the regex itself, if it has one.
    pub subscribed_topics: BTreeSet<String>,
    pub subscribed_regex: Option<String>,
    /// What the member owns now: its grants and the partitions it has yet to give up.
    pub assignment: BTreeSet<TopicPartition>,
    /// What the assignor wants it to own once every revocation is done.
    pub target: BTreeSet<TopicPartition>,
}

/// Kafka's name of a server assignor (`assignor_named`'s inverse); round-robin is rill's own.
pub fn kafka_assignor_name(assignor: Assignor) -> &'static str {
    match assignor {
        Assignor::Sticky => "uniform",
        Assignor::Range => "range",
        Assignor::RoundRobin => "roundrobin",
    }
}

impl GroupCoordinator {
    /// `None` when the node holds no broker-assigned group of that id (a classic group, or only offsets): Kafka
    /// answers GROUP_ID_NOT_FOUND, and clients then describe it with DescribeGroups.
    pub fn consumer_group_description(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id)?;
        let state = if group.members.is_empty() {
            "Empty"
        } else if group.is_stable() {
            "Stable"
        } else {
            "Reconciling"
        };
        let members = group
            .members
            .values()
            .map(|member| ConsumerMemberDescription {
                member_id: member.id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.consumer.as_ref().map(|c| c.client_host.clone()).unwrap_or_default(),
                member_epoch: member.consumer.as_ref().map_or(member.member_generation, |c| c.current_epoch()),
                kip848: member.consumer.is_some(),
                instance_id: member.consumer.as_ref().and_then(|c| c.instance_id.clone()),
                subscribed_topics: member.topics.clone(),
                subscribed_regex: member
                    .consumer
                    .as_ref()
                    .and_then(|c| c.subscription.regex.as_ref())
                    .map(|regex| regex.source().to_owned()),
                assignment: member.assigned.keys().chain(member.revoking.keys()).cloned().collect(),
                target: group.target_of(&member.id),
            })
            .collect();
        Some(ConsumerGroupDescription {
            state,
            group_epoch: group.generation,
            assignor: kafka_assignor_name(group.assignor),
            members,
        })
    }
}
