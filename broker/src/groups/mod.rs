//! The group coordinator: consumer-group membership, server-side assignment and incremental cooperative
//! rebalancing (the protocol is documented in `proto/rill/v1/rill.proto`, above `service ConsumerGroups`).
//!
//! - `assignor.rs` — the sticky, range and round-robin assignors: pure functions to a target assignment.
//! - `group.rs` — one group: members, generation, and `reconcile`, which moves partitions towards the target
//!   without ever letting two members own one.
//! - `session.rs` — one member's JoinGroup stream: its session timer, heartbeats, leave and disconnect.
//! - `consumer.rs` — Kafka's KIP-848 ConsumerGroupHeartbeat: Kafka members of the same groups, epochs mapped
//!   onto generations, their sessions kept by a timer; static members (`consumer/static_member.rs`) keep their
//!   place across a leave with epoch -2.
//! - `classic/` — Kafka's classic protocol (client-side assignment): groups of their own kind.
//!
//! [`GroupCoordinator`] holds every group behind one `std::sync::Mutex`, held only for in-memory work (never
//! across an `.await`, never around disk I/O). Membership is not persisted: after a broker restart members'
//! streams have broken and they rejoin; committed offsets are durable in `offsets/`. Lock order: an offset
//! commit checks the committing member *inside* the offsets lock (see `OffsetStore::commit_checked`), so the
//! coordinator lock is taken after the offsets lock, never the other way round.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rill_protocol::v1;
use tokio::sync::watch;

use crate::cluster::metadata::ClusterMetadata;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::node::{now_ms, Node};
use crate::offsets::MAX_GROUP_CHARS;
use crate::registry::Registry;

mod assignor;
pub mod classic;
pub mod consumer;
mod group;
pub mod session;

pub use assignor::{Assignor, TopicPartition};
pub use group::MemberView;
use group::{by_topic, Group, Member};

/// Longest client id a member may give.
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// A member just admitted: what its session task needs.
pub struct Joined {
    pub group: String,
    pub member_id: String,
    pub session_timeout: Duration,
    pub updates: watch::Sender<MemberView>,
}

/// A consistent copy of one group's membership, for DescribeGroup.
pub struct GroupSnapshot {
    pub state: v1::GroupState,
    pub generation: i32,
    /// For a Kafka group, the client-side assignor its members agreed on, where rill has a name for it.
    pub assignor: v1::Assignor,
    pub members: Vec<v1::MemberDescription>,
    pub topics: BTreeSet<String>,
    pub owners: BTreeMap<TopicPartition, String>,
}

pub struct GroupCoordinator {
    config: Arc<BrokerConfig>,
    /// Groups' own settings: a KIP-848 group's `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`.
    configs: Arc<crate::group_config::GroupConfigs>,
    groups: Mutex<BTreeMap<String, Group>>,
    /// The groups of Kafka clients (classic protocol, `classic/`). Locked after `groups` when both are.
    classic: Mutex<BTreeMap<String, classic::ClassicGroup>>,
    next_member: AtomicU64,
    /// Random per broker start, so member ids are never reused across restarts (a zombie from before a restart
    /// cannot pass for a new member).
    member_id_salt: u64,
}

impl GroupCoordinator {
    pub fn new(config: Arc<BrokerConfig>, configs: Arc<crate::group_config::GroupConfigs>) -> GroupCoordinator {
        let member_id_salt = std::collections::hash_map::RandomState::new().build_hasher().finish() ^ now_ms() as u64;
        GroupCoordinator {
            config,
            configs,
            groups: Mutex::new(BTreeMap::new()),
            classic: Mutex::new(BTreeMap::new()),
            next_member: AtomicU64::new(1),
            member_id_salt,
        }
    }

    /// Admits a member: validates the join, creates the group if needed, and rebalances. `partition_counts`
    /// gives the partition counts of the topics that exist among those asked ([`partition_counts_of`]).
    pub fn join(
        &self,
        request: v1::JoinRequest,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> Result<(Joined, watch::Receiver<MemberView>)> {
        check_group_id(&request.group)?;
        let topics = self.check_topics(&request.topics)?;
        let assignor = Assignor::from_wire(request.assignor)
            .ok_or_else(|| BrokerError::invalid("assignor", format!("unknown assignor {}", request.assignor)))?;
        if request.client_id.len() > MAX_CLIENT_ID_BYTES || request.client_id.chars().any(char::is_control) {
            return Err(BrokerError::invalid(
                "client_id",
                format!("at most {MAX_CLIENT_ID_BYTES} bytes without control characters"),
            ));
        }
        let session_timeout_ms = self.session_timeout_ms(request.session_timeout_ms)?;
        let member_id = self.new_member_id(&request.client_id);
        let (updates, view) = watch::channel(MemberView::Left);
        let counts = {
            let mut wanted = topics.clone();
            if let Some(group) = self.lock().get(&request.group) {
                wanted.extend(group.subscribed_topics());
            }
            partition_counts(&wanted)
        };
        let mut groups = self.lock();
        let kafka_members = self.classic_members(&request.group);
        if kafka_members > 0 {
            return Err(BrokerError::GroupKindMismatch {
                group: request.group,
                members: kafka_members,
                kind: "Kafka",
                other: "rill (gRPC)",
            });
        }
        if !groups.contains_key(&request.group) && groups.len() >= self.config.max_groups as usize {
            return Err(BrokerError::TooManyGroups { limit: self.config.max_groups });
        }
        let group = groups
            .entry(request.group.clone())
            .or_insert_with(|| Group::new(request.group.clone(), assignor, now_ms()));
        if group.members.is_empty() {
            group.assignor = assignor;
        } else if group.assignor != assignor {
            return Err(BrokerError::invalid(
                "assignor",
                format!(
                    "group {:?} uses the {:?} assignor; its members must all ask for it",
                    request.group, group.assignor
                ),
            ));
        }
        if group.members.len() >= self.config.max_members_per_group as usize {
            return Err(BrokerError::TooManyMembers { group: request.group, limit: self.config.max_members_per_group });
        }
        let member = Member {
            id: member_id.clone(),
            client_id: request.client_id,
            topics,
            session_timeout_ms,
            assigned: BTreeMap::new(),
            revoking: BTreeMap::new(),
            member_generation: -1,
            acked_generation: -1,
            updates: updates.clone(),
            consumer: None,
        };
        group.add_member(member, counts);
        // A member with nothing to own yet still learns its id and generation.
        if let Some(member) = group.members.get_mut(&member_id) {
            if member.member_generation < 0 {
                member.member_generation = group.generation;
                member.updates.send_replace(MemberView::Assigned(member.view()));
            }
        }
        tracing::info!(group = %request.group, member = %member_id, generation = group.generation, "member joined");
        let joined = Joined {
            group: request.group,
            member_id,
            session_timeout: Duration::from_millis(u64::from(session_timeout_ms)),
            updates,
        };
        Ok((joined, view))
    }

    /// Records a heartbeat that acknowledges `acked_generation`. UnknownMember if the member was removed.
    pub fn heartbeat(&self, group: &str, member_id: &str, acked_generation: i32) -> Result<()> {
        let mut groups = self.lock();
        let known = groups.get_mut(group).is_some_and(|g| g.acknowledge(member_id, acked_generation));
        if known {
            Ok(())
        } else {
            Err(BrokerError::UnknownMember { group: group.to_owned(), member: member_id.to_owned() })
        }
    }

    /// Removes a member (left, disconnected, session expired, shutdown) and rebalances the rest at once.
    pub fn remove(
        &self,
        group_id: &str,
        member_id: &str,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        reason: &str,
    ) {
        let topics = match self.lock().get(group_id) {
            Some(group) => group.subscribed_topics(),
            None => return,
        };
        let counts = partition_counts(&topics);
        let mut groups = self.lock();
        if let Some(group) = groups.get_mut(group_id) {
            if group.remove_member(member_id, counts, now_ms()) {
                tracing::info!(group = %group_id, member = %member_id, reason, generation = group.generation, "member removed");
            }
        }
    }

    /// Rebalances every group whose subscribed topics changed (created, deleted, partitions added).
    pub fn refresh_topics(&self, partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>) {
        let subscriptions: Vec<(String, BTreeSet<String>)> =
            self.lock().iter().map(|(name, g)| (name.clone(), g.subscribed_topics())).collect();
        for (name, topics) in subscriptions {
            let counts = partition_counts(&topics);
            if let Some(group) = self.lock().get_mut(&name) {
                // Subscriptions may have changed meanwhile; the next refresh or membership change catches up.
                if group.subscribed_topics() == topics {
                    group.refresh(counts);
                }
            }
        }
    }

    /// Checks a commit from a member (see "Commits" in the .proto). An empty member id is a standalone
    /// commit, allowed only while the group has no members.
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let groups = self.lock();
        let group = groups.get(group_id);
        if member_id.is_empty() {
            let members = group.map_or(0, |g| g.members.len()) + self.classic_members(group_id);
            if members > 0 {
                return Err(BrokerError::GroupNotEmpty {
                    group: group_id.to_owned(),
                    members,
                    action: "a commit without a member id",
                });
            }
            return Ok(());
        }
        let unknown = || BrokerError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
        let member = group.and_then(|g| g.members.get(member_id)).ok_or_else(unknown)?;
        if generation > member.member_generation {
            return Err(BrokerError::invalid(
                "generation",
                format!("{generation} is newer than the member's latest assignment ({})", member.member_generation),
            ));
        }
        for tp in partitions {
            let assigned_at = member.owns(tp).ok_or_else(|| BrokerError::NotOwner {
                group: group_id.to_owned(),
                member: member_id.to_owned(),
                topic: tp.topic.clone(),
                partition: tp.partition,
            })?;
            if generation < assigned_at {
                return Err(BrokerError::StaleGeneration {
                    group: group_id.to_owned(),
                    member: member_id.to_owned(),
                    generation,
                    assigned_at,
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                });
            }
        }
        Ok(())
    }

    /// GroupNotEmpty if the group has members: resets and deletes need an empty group.
    pub fn check_empty(&self, group_id: &str, action: &'static str) -> Result<()> {
        let members = self.lock().get(group_id).map_or(0, |g| g.members.len()) + self.classic_members(group_id);
        if members > 0 {
            return Err(BrokerError::GroupNotEmpty { group: group_id.to_owned(), members, action });
        }
        Ok(())
    }

    /// Forgets a group if it has no members (after DeleteGroup, or when nothing about it is left to keep).
    pub fn forget_if_empty(&self, group_id: &str) -> bool {
        let mut groups = self.lock();
        let is_empty = groups.get(group_id).is_some_and(|g| g.members.is_empty());
        if is_empty {
            groups.remove(group_id);
        }
        is_empty
    }

    /// Whether the coordinator knows the group (it has members, or had them and was not forgotten).
    pub fn knows(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    /// Groups without members and when they were emptied.
    pub fn empty_groups(&self) -> Vec<(String, i64)> {
        self.lock().values().filter(|g| g.members.is_empty()).map(|g| (g.name.clone(), g.emptied_at_ms)).collect()
    }

    pub fn snapshot(&self, group_id: &str) -> Option<GroupSnapshot> {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            drop(groups);
            return self.classic_snapshot(group_id).map(classic::describe::as_group_snapshot);
        };
        let state = if group.members.is_empty() {
            v1::GroupState::Empty
        } else if group.is_stable() {
            v1::GroupState::Stable
        } else {
            v1::GroupState::Reconciling
        };
        let mut owners = BTreeMap::new();
        let members = group
            .members
            .values()
            .map(|m| {
                for tp in m.assigned.keys().chain(m.revoking.keys()) {
                    owners.insert(tp.clone(), m.id.clone());
                }
                v1::MemberDescription {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    topics: m.topics.iter().cloned().collect(),
                    member_generation: m.member_generation,
                    acked_generation: m.acked_generation,
                    assigned: by_topic(m.assigned.keys()),
                    revoking: by_topic(m.revoking.keys()),
                    session_timeout_ms: m.session_timeout_ms,
                }
            })
            .collect();
        Some(GroupSnapshot {
            state,
            generation: if group.members.is_empty() { 0 } else { group.generation },
            assignor: group.assignor.to_wire(),
            members,
            topics: group.subscribed_topics(),
            owners,
        })
    }

    /// Every group the coordinator holds, with its state and member count.
    pub fn summaries(&self) -> BTreeMap<String, v1::GroupSummary> {
        let mut summaries: BTreeMap<String, v1::GroupSummary> = self
            .lock()
            .values()
            .map(|g| {
                let state = match (g.members.is_empty(), g.is_stable()) {
                    (true, _) => v1::GroupState::Empty,
                    (false, true) => v1::GroupState::Stable,
                    (false, false) => v1::GroupState::Reconciling,
                };
                let summary = v1::GroupSummary {
                    kind: v1::GroupKind::Consumer as i32,
                    group: g.name.clone(),
                    state: state as i32,
                    member_count: g.members.len() as u32,
                    generation: if g.members.is_empty() { 0 } else { g.generation },
                };
                (g.name.clone(), summary)
            })
            .collect();
        for name in self.classic_groups() {
            if let Some(snapshot) = self.classic_snapshot(&name) {
                summaries.insert(name.clone(), classic::describe::as_summary(name, &snapshot));
            }
        }
        summaries
    }

    fn check_topics(&self, topics: &[String]) -> Result<BTreeSet<String>> {
        if topics.is_empty() {
            return Err(BrokerError::invalid("topics", "a member must subscribe to at least one topic"));
        }
        let limit = self.config.max_topics_per_member as usize;
        if topics.len() > limit {
            return Err(BrokerError::invalid(
                "topics",
                format!("at most {limit} topics per member (max_topics_per_member)"),
            ));
        }
        for topic in topics {
            rill_storage::TopicName::new(topic)?;
        }
        Ok(topics.iter().cloned().collect())
    }

    fn session_timeout_ms(&self, requested: u32) -> Result<u32> {
        let (min, max) = (self.config.group_min_session_timeout_ms, self.config.group_max_session_timeout_ms);
        let timeout = if requested == 0 { self.config.group_session_timeout_ms } else { u64::from(requested) };
        if !(min..=max).contains(&timeout) {
            return Err(BrokerError::invalid(
                "session_timeout_ms",
                format!("{timeout} is outside the broker's {min}..={max} (group_min/max_session_timeout_ms)"),
            ));
        }
        Ok(u32::try_from(timeout).expect("validated below 2^32 by the config"))
    }

    /// Forgets every group `is_moved` names (on a cluster, the groups of an offsets partition this node no
    /// longer leads): each gRPC member's stream ends with `refusal(group)` (`not-coordinator`), so it rejoins
    /// at the new coordinator; Kafka members' parked joins and syncs end (they rejoin, and hear NOT_COORDINATOR).
    pub fn drop_groups(&self, is_moved: impl Fn(&str) -> bool, refusal: impl Fn(&str) -> Option<BrokerError>) {
        let dropped: Vec<Group> = {
            let mut groups = self.lock();
            let names: Vec<String> = groups.keys().filter(|name| is_moved(name)).cloned().collect();
            names.into_iter().filter_map(|name| groups.remove(&name)).collect()
        };
        for group in &dropped {
            let status = refusal(&group.name).map_or_else(
                || tonic::Status::unavailable(format!("group {:?} moved to another coordinator", group.name)),
                tonic::Status::from,
            );
            for member in group.members.values() {
                member.updates.send_replace(MemberView::Moved(status.clone()));
            }
            tracing::info!(group = %group.name, members = group.members.len(), "group moved to another coordinator");
        }
        let dropped_classic = {
            let mut classic = self.classic_lock();
            let names: Vec<String> = classic.keys().filter(|name| is_moved(name)).cloned().collect();
            names.into_iter().filter_map(|name| classic.remove(&name)).count()
        };
        if dropped_classic > 0 {
            tracing::info!(groups = dropped_classic, "Kafka groups moved to another coordinator");
        }
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let prefix = if client_id.is_empty() { "member" } else { client_id };
        format!("{prefix}-{:016x}{n:08x}", self.member_id_salt)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Partition counts of the topics that exist among `topics` (a missing topic has none yet), the one source every
/// assignment is computed from, gRPC and Kafka (KIP-848) members alike: on a cluster the applied metadata's, since a
/// coordinator need not hold a replica of every topic its groups read (with RF 1 it often holds none of most);
/// on a single node its registry.
pub fn partition_counts_of(node: &Node, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    match &node.replication {
        Some(replication) => metadata_partition_counts(&replication.metadata(), topics),
        None => registry_partition_counts(&node.registry, topics),
    }
}

/// Partition counts of the topics among `topics` that the cluster's metadata holds.
fn metadata_partition_counts(metadata: &ClusterMetadata, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    topics
        .iter()
        .filter_map(|t| metadata.topics.get(t).map(|placed| (t.clone(), placed.partitions.len() as u32)))
        .collect()
}

/// Partition counts of the topics among `topics` that this node's registry holds.
fn registry_partition_counts(registry: &Registry, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    topics.iter().filter_map(|t| registry.topic(t).ok().map(|topic| (t.clone(), topic.partition_count()))).collect()
}

/// A group id: 1..=249 characters, no control characters.
pub fn check_group_id(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(BrokerError::invalid("group", "a group id cannot be empty"));
    }
    if group.chars().count() > MAX_GROUP_CHARS {
        return Err(BrokerError::invalid("group", format!("a group id is at most {MAX_GROUP_CHARS} characters")));
    }
    if group.chars().any(char::is_control) {
        return Err(BrokerError::invalid("group", format!("{group:?} holds control characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::group::fixtures::member;
    use super::*;
    use crate::cluster::metadata::fixtures::placed;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn metadata_counts_every_partition_wherever_its_replicas_live() {
        let mut metadata = ClusterMetadata::default();
        // RF 1 topics on nodes 2 and 3: a coordinator on node 1 holds none of them, yet assigns them all.
        metadata.topics.insert("on-two".into(), placed(&[&[2], &[2], &[3]], 1));
        metadata.topics.insert("on-three".into(), placed(&[&[3]], 1));
        metadata.topics.insert("unsubscribed".into(), placed(&[&[1]], 1));
        let counts = metadata_partition_counts(&metadata, &topics(&["on-two", "on-three", "not-created-yet"]));
        let expected: BTreeMap<String, u32> = [("on-three".to_owned(), 1), ("on-two".to_owned(), 3)].into();
        assert_eq!(counts, expected, "missing topics have no count; others count all their partitions");
    }

    #[test]
    fn a_group_refreshed_from_the_metadata_hands_out_added_partitions() {
        let mut metadata = ClusterMetadata::default();
        metadata.topics.insert("orders".into(), placed(&[&[2]], 1));
        let mut group = Group::new("g".into(), Assignor::Range, 0);
        let (member, _view) = member("m", &["orders"]);
        group.add_member(member, metadata_partition_counts(&metadata, &topics(&["orders"])));
        let owned = |group: &Group| group.members["m"].assigned.keys().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!(owned(&group), vec![0]);

        metadata.topics.insert("orders".into(), placed(&[&[2], &[3], &[1]], 1));
        group.refresh(metadata_partition_counts(&metadata, &topics(&["orders"])));
        assert_eq!(owned(&group), vec![0, 1, 2], "partitions added through the metadata are assigned");

        metadata.topics.remove("orders");
        group.refresh(metadata_partition_counts(&metadata, &topics(&["orders"])));
        assert!(owned(&group).is_empty(), "a deleted topic's partitions are taken back");
    }
}
