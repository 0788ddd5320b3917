//! A Kafka group as rill's own DescribeGroup and ListGroups show it (`rill group describe`): its state in rill's
//! words, the generation, each member's subscribed topics and assigned partitions (decoded by the Kafka layer
//! from the consumer protocol when the members joined and synced).

use rill_protocol::v1;

use super::{ClassicSnapshot, ClassicState};
use crate::groups::{by_topic, GroupSnapshot};

pub fn as_group_snapshot(snapshot: ClassicSnapshot) -> GroupSnapshot {
    let mut owners = std::collections::BTreeMap::new();
    let mut topics = std::collections::BTreeSet::new();
    let members = snapshot
        .members
        .into_iter()
        .map(|m| {
            for tp in &m.assigned {
                owners.insert(tp.clone(), m.id.clone());
            }
            topics.extend(m.topics.iter().cloned());
            v1::MemberDescription {
                member_id: m.id,
                client_id: m.client_id,
                topics: m.topics.into_iter().collect(),
                member_generation: snapshot.generation,
                acked_generation: snapshot.generation,
                assigned: by_topic(m.assigned.iter()),
                revoking: Vec::new(),
                session_timeout_ms: m.session_timeout_ms,
            }
        })
        .collect();
    GroupSnapshot {
        state: state(snapshot.state),
        generation: snapshot.generation,
        assignor: assignor(&snapshot.protocol),
        members,
        topics,
        owners,
    }
}

pub fn as_summary(group: String, snapshot: &ClassicSnapshot) -> v1::GroupSummary {
    v1::GroupSummary {
        kind: v1::GroupKind::Consumer as i32,
        group,
        state: state(snapshot.state) as i32,
        member_count: snapshot.members.len() as u32,
        generation: snapshot.generation,
    }
}

/// Rill's states: a rebalance in either of its phases is "reconciling".
fn state(state: ClassicState) -> v1::GroupState {
    match state {
        ClassicState::Stable => v1::GroupState::Stable,
        ClassicState::PreparingRebalance | ClassicState::CompletingRebalance => v1::GroupState::Reconciling,
    }
}

/// Kafka's assignor names that have a rill counterpart.
fn assignor(protocol: &str) -> v1::Assignor {
    match protocol {
        "range" => v1::Assignor::Range,
        "roundrobin" => v1::Assignor::RoundRobin,
        "sticky" | "cooperative-sticky" => v1::Assignor::Sticky,
        _ => v1::Assignor::Unspecified,
    }
}
