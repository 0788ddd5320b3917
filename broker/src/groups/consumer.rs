//! Kafka's KIP-848 consumer group protocol (`group.protocol=consumer`, ConsumerGroupHeartbeat) on the node's
//! coordinator. It is the protocol rill's own gRPC groups already speak — the broker computes a target
//! assignment and moves partitions towards it only as their owners let go — so a KIP-848 member is a member of
//! the same [`Group`](super::group::Group) as gRPC members, with the same assignors, reconciliation and
//! ownership invariant; only the transport differs: a heartbeat request every few seconds instead of a stream.
//!
//! How KIP-848 maps onto a group:
//! - A member's *epoch* moves whenever its assignment changes (seen at its next heartbeat, `stamp`), and never
//!   below the group's generation, so a rejoined member never gets an epoch it had before. A heartbeat must
//!   carry an epoch the broker sent that member, no older than the last one it used; anything else is
//!   FENCED_MEMBER_EPOCH (a zombie, or a member that missed its removal), and the client rejoins.
//! - A partition taken from a member stays its own (`revoking`) until a heartbeat at the member's current epoch
//!   reports the partitions it owns (`topic_partitions`, sent by clients after they reconcile) and none of them
//!   is being revoked: only then can another member get it. Until then, that member waits.
//! - Sessions are the broker's (`group_consumer_session_timeout_ms`), or the group's own
//!   (`consumer.session.timeout.ms`, `group_config.rs`): a member silent that long is removed and its partitions
//!   freed at once, as a leave (epoch -1) does.
//! - A member that joins with an instance id (`group.instance.id`) is static (`static_member.rs`): its leave with
//!   epoch -2 keeps its place and its partitions until its session expires, so a restarted process that joins
//!   with the same instance id takes them over without moving anyone else's.
//! - A member told to revoke partitions must let them go within its rebalance timeout (`RebalanceTimeoutMs`,
//!   the client's `max.poll.interval.ms`), counted from the heartbeat that told it: one that heartbeats on but
//!   keeps them past it is removed, as Kafka fences it, so no partition waits forever on a stuck consumer.
//!
//! A group is either the classic protocol's or the broker-assigned kind (gRPC and KIP-848 members), never both
//! at once (docs/kafka.md): a heartbeat to a group with classic members is GROUP_ID_NOT_FOUND, as Kafka answers a
//! consumer heartbeat to a classic group it is not migrating.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::assignor::{Assignor, TopicPartition};
use super::group::{Group, Member, MemberView};
use super::{check_group_id, GroupCoordinator, MAX_CLIENT_ID_BYTES};
use crate::node::now_ms;

/// Longest member id a client may choose (KIP-1082 clients send their own, a UUID of 22 to 36 characters).
pub const MAX_MEMBER_ID_BYTES: usize = 255;
/// The epoch of a leave, and of a static member's leave.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// The rebalance timeout of a member that never sent one: the Java client's `max.poll.interval.ms` default.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a ConsumerGroupHeartbeat asks, with topic ids already turned into names (ids of topics that no longer
/// exist are left out by the caller). `None` fields are "unchanged since the last heartbeat", as in Kafka.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now (sent on a join and after it reconciled an assignment).
    pub owned: Option<BTreeSet<TopicPartition>>,
    /// The address the member connects from, shown by ConsumerGroupDescribe.
    pub client_host: String,
    /// What the member asked for, kept to resolve its regex again; `subscribed_topics` is what it resolved to.
    pub subscription: Option<ConsumerSubscription>,
    /// How long the member may take to revoke partitions once told (`None`: unchanged, or the default on a join).
    pub rebalance_timeout: Option<Duration>,
    /// A static member's instance id (`group.instance.id`); `None`: a dynamic member, or unchanged since the join.
    pub instance_id: Option<String>,
}

/// The answer: the member's id and epoch, and its whole assignment when the member needs to hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<BTreeSet<TopicPartition>>,
    /// A new member (or a rejoin): its session timer must be started, for this incarnation.
    pub new_session: Option<u64>,
    /// The member was just told to revoke partitions: a timer must remove it if it still holds them then
    /// (`watch_revocation`), for this incarnation.
    pub revocation_deadline: Option<(u64, Instant)>,
}

/// Why a heartbeat is refused; each maps to its Kafka error code (`kafka/group_errors.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    #[error("member {member:?} is not in group {group:?}: rejoin with epoch 0")]
    UnknownMember { group: String, member: String },
    #[error("member {member:?} of group {group:?} sent epoch {sent}; its epoch is {current}: rejoin with epoch 0")]
    FencedEpoch { group: String, member: String, sent: i32, current: i32 },
    #[error("server assignor {name:?} is not served: use \"uniform\" or \"range\"")]
    UnsupportedAssignor { name: String },
    #[error("group {group:?} has {members} classic-protocol member(s); a group is of one protocol at a time")]
    ClassicGroup { group: String, members: usize },
    #[error("invalid ConsumerGroupHeartbeat: {0}")]
    InvalidRequest(String),
    #[error("invalid group id: {0}")]
    InvalidGroupId(String),
    #[error("group {group:?} is full: it may have at most {limit} members (max_members_per_group)")]
    GroupFull { group: String, limit: u32 },
    #[error("too many consumer groups: the broker holds at most {limit} (max_groups)")]
    TooManyGroups { limit: u32 },
    #[error(
        "instance id {instance:?} of group {group:?} is held by member {holder:?}, which has not left: it must leave \
         with epoch -2 (or its session expire) before another member joins with that instance id"
    )]
    UnreleasedInstance { group: String, instance: String, holder: String },
    #[error(
        "member {member:?} of group {group:?} does not hold instance id {instance:?}: a newer member took its place \
         with it, or this member joined with another one"
    )]
    FencedInstance { group: String, member: String, instance: String },
}

/// What the coordinator keeps of a KIP-848 member beyond what every member has.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Tells this incarnation's session timer from that of an earlier one with the same member id.
    pub incarnation: u64,
    /// The member's epoch: bumped whenever its assignment changes (`stamp`), never reused in the group's life.
    pub epoch: i32,
    /// The assignment the epoch stands for.
    pub stamped: BTreeSet<TopicPartition>,
    /// The oldest epoch a heartbeat may still carry: the last one the member used.
    pub lowest_valid_epoch: i32,
    pub session_deadline: Instant,
    pub client_host: String,
    pub subscription: ConsumerSubscription,
    pub rebalance_timeout: Duration,
    /// Set when the member is told to revoke partitions; cleared once it holds none it must revoke.
    pub revocation_deadline: Option<Instant>,
    /// The instance id of a static member (`group.instance.id`); `None` for a dynamic one.
    pub instance_id: Option<String>,
    /// A static member that left with epoch -2: it keeps its partitions and its instance id until its session
    /// expires or a new member joins with that instance id; meanwhile no heartbeat or commit is taken from it.
    pub has_left: bool,
}

impl ConsumerMember {
    /// The epoch Kafka shows and checks against: -2 for a static member that left.
    pub fn current_epoch(&self) -> i32 {
        if self.has_left {
            STATIC_LEAVE_EPOCH
        } else {
            self.epoch
        }
    }

    /// Whether a commit or an offset fetch may carry `epoch`: one the member was sent and has not moved past.
    pub fn accepts_epoch(&self, epoch: i32) -> bool {
        !self.has_left && (self.lowest_valid_epoch..=self.epoch).contains(&epoch)
    }
}

/// Kafka's server assignor names: "uniform" (Kafka's default) spreads partitions evenly and keeps them where
/// they are, which is rill's sticky assignor; "range" is the range assignor.
pub fn assignor_named(name: &str) -> Option<Assignor> {
    match name {
        "uniform" => Some(Assignor::Sticky),
        "range" => Some(Assignor::Range),
        _ => None,
    }
}

impl GroupCoordinator {
    /// A ConsumerGroupHeartbeat: joins (epoch 0), heartbeats, or leaves (epoch -1 or -2) the member.
    /// `partition_counts` gives the partition counts of the topics that exist among those asked.
    pub fn consumer_heartbeat(
        &self,
        request: ConsumerHeartbeat,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<ConsumerAnswer, ConsumerError> {
        check_group_id(&request.group).map_err(|err| ConsumerError::InvalidGroupId(err.to_string()))?;
        self.check_heartbeat(&request)?;
        let assignor = match request.server_assignor.as_deref() {
            None => None,
            Some(name) => {
                Some(assignor_named(name).ok_or_else(|| ConsumerError::UnsupportedAssignor { name: name.into() })?)
            }
        };
        // Partition counts are read before the lock (the registry has its own), for every topic the group may
        // subscribe to after this request.
        let counts = {
            let mut wanted = request.subscribed_topics.clone().unwrap_or_default();
            if let Some(group) = self.lock().get(&request.group) {
                wanted.extend(group.subscribed_topics());
            }
            partition_counts(&wanted)
        };
        let mut groups = self.lock();
        let classic = self.classic_members(&request.group);
        if classic > 0 {
            return Err(ConsumerError::ClassicGroup { group: request.group, members: classic });
        }
        if request.member_epoch == LEAVE_EPOCH || request.member_epoch == STATIC_LEAVE_EPOCH {
            return self.consumer_leave(&mut groups, request, counts);
        }
        if request.member_epoch == 0 {
            return self.consumer_join(&mut groups, request, assignor, counts, now);
        }
        check_instance(groups.get(&request.group), &request)?;
        let unknown =
            || ConsumerError::UnknownMember { group: request.group.clone(), member: request.member_id.clone() };
        let group = groups.get_mut(&request.group).ok_or_else(unknown)?;
        let member = group.members.get_mut(&request.member_id).ok_or_else(unknown)?;
        let Some(state) = member.consumer.as_mut() else {
            // A gRPC member's id: it heartbeats on its stream, not here.
            return Err(unknown());
        };
        let is_fenced =
            state.has_left || request.member_epoch > state.epoch || request.member_epoch < state.lowest_valid_epoch;
        if is_fenced {
            return Err(ConsumerError::FencedEpoch {
                group: request.group,
                member: request.member_id,
                sent: request.member_epoch,
                current: state.current_epoch(),
            });
        }
        state.lowest_valid_epoch = request.member_epoch;
        state.session_deadline = now + self.configs.consumer_timing(&request.group).session_timeout;
        if let Some(subscription) = &request.subscription {
            state.subscription = subscription.clone();
        }
        if let Some(timeout) = request.rebalance_timeout {
            state.rebalance_timeout = timeout;
        }
        if let Some(assignor) = assignor.filter(|a| *a != group.assignor) {
            if group.members.len() > 1 {
                return Err(mixed_assignors(&request.group, group.assignor, assignor));
            }
            group.assignor = assignor;
        }
        if let Some(topics) = request.subscribed_topics.as_ref() {
            if group.members.get(&request.member_id).is_some_and(|m| m.topics != *topics) {
                group.resubscribe(&request.member_id, topics.clone(), counts);
            }
        }
        let epoch = stamp(group, &request.member_id);
        if let Some(owned) = &request.owned {
            let member = &group.members[&request.member_id];
            // At its current epoch the member has heard every revocation; owning none of them means it let go.
            let has_released = request.member_epoch == epoch
                && !member.revoking.is_empty()
                && member.revoking.keys().all(|tp| !owned.contains(tp));
            if has_released {
                tracing::debug!(group = %request.group, member = %request.member_id, epoch, ?owned,
                    "KIP-848 member released the partitions it was revoking");
                let generation = member.member_generation;
                group.acknowledge(&request.member_id, generation);
                if let Some(state) = group.members.get_mut(&request.member_id).and_then(|m| m.consumer.as_mut()) {
                    state.revocation_deadline = None;
                }
            }
        }
        let epoch = stamp(group, &request.member_id);
        let revocation_deadline = arm_revocation(group, &request.member_id, now);
        let assigned: BTreeSet<TopicPartition> = group.members[&request.member_id].assigned.keys().cloned().collect();
        // Kafka sends the assignment when the epoch moved, or when what the member reports differs from it.
        let needs_assignment =
            epoch != request.member_epoch || request.owned.as_ref().is_some_and(|owned| *owned != assigned);
        if needs_assignment {
            let revoking: Vec<&TopicPartition> = group.members[&request.member_id].revoking.keys().collect();
            tracing::debug!(group = %request.group, member = %request.member_id, sent_epoch = request.member_epoch,
                epoch, owned = ?request.owned, ?assigned, ?revoking, "KIP-848 member told its assignment");
        }
        Ok(ConsumerAnswer {
            member_id: request.member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: self.consumer_heartbeat_interval_ms(&request.group),
            assignment: needs_assignment.then_some(assigned),
            new_session: None,
            revocation_deadline,
        })
    }

    /// What a KIP-848 member last asked to subscribe to, to resolve a heartbeat that leaves it unchanged.
    pub fn consumer_subscription(&self, group_id: &str, member_id: &str) -> Option<ConsumerSubscription> {
        let groups = self.lock();
        let member = groups.get(group_id)?.members.get(member_id)?;
        member.consumer.as_ref().map(|c| c.subscription.clone())
    }

    fn check_heartbeat(&self, request: &ConsumerHeartbeat) -> Result<(), ConsumerError> {
        let invalid = |reason: String| Err(ConsumerError::InvalidRequest(reason));
        if request.member_id.len() > MAX_MEMBER_ID_BYTES || request.member_id.chars().any(char::is_control) {
            return invalid(format!("a member id is at most {MAX_MEMBER_ID_BYTES} bytes without control characters"));
        }
        if request.member_epoch != 0 && request.member_id.is_empty() {
            return invalid(format!("epoch {} without a member id: join with epoch 0", request.member_epoch));
        }
        if request.member_epoch < STATIC_LEAVE_EPOCH {
            return invalid(format!("member epoch {} is below -2", request.member_epoch));
        }
        if let Some(instance) = &request.instance_id {
            if instance.is_empty() || instance.len() > MAX_MEMBER_ID_BYTES || instance.chars().any(char::is_control) {
                return invalid(format!(
                    "an instance id is 1 to {MAX_MEMBER_ID_BYTES} bytes without control characters, or null"
                ));
            }
        }
        if request.client_id.len() > MAX_CLIENT_ID_BYTES {
            return invalid(format!("a client id is at most {MAX_CLIENT_ID_BYTES} bytes"));
        }
        if let Some(topics) = &request.subscribed_topics {
            let limit = self.config.max_topics_per_member as usize;
            if topics.len() > limit {
                return invalid(format!("at most {limit} subscribed topics per member (max_topics_per_member)"));
            }
            for topic in topics {
                rill_storage::TopicName::new(topic)
                    .map_err(|err| ConsumerError::InvalidRequest(format!("subscribed topic {topic:?}: {err}")))?;
            }
        }
        Ok(())
    }

    fn consumer_join(
        &self,
        groups: &mut BTreeMap<String, Group>,
        request: ConsumerHeartbeat,
        assignor: Option<Assignor>,
        counts: BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<ConsumerAnswer, ConsumerError> {
        let Some(topics) = request.subscribed_topics.clone() else {
            return Err(ConsumerError::InvalidRequest("a join (epoch 0) must name its subscribed topics".into()));
        };
        if !groups.contains_key(&request.group)
            && groups.len() + self.classic_groups().len() >= self.config.max_groups as usize
        {
            return Err(ConsumerError::TooManyGroups { limit: self.config.max_groups });
        }
        let group = groups
            .entry(request.group.clone())
            .or_insert_with(|| Group::new(request.group.clone(), assignor.unwrap_or(Assignor::Sticky), now_ms()));
        let holder = request.instance_id.as_deref().and_then(|instance| static_holder(group, instance));
        if let Some((holder, instance)) = holder.zip(request.instance_id.as_deref()) {
            if holder.id != request.member_id && !holder.has_left() {
                return Err(ConsumerError::UnreleasedInstance {
                    group: request.group.clone(),
                    instance: instance.to_owned(),
                    holder: holder.id.clone(),
                });
            }
        }
        let holder_id = holder.map(|h| h.id.clone());
        // A member that rejoins with its id (after being fenced, or restarted) starts over: it owns nothing now.
        // A static member's rejoin keeps what it owned instead (`replace_static_member`).
        let is_holder = holder_id.as_deref() == Some(request.member_id.as_str());
        let is_rejoin = group.members.get(&request.member_id).is_some_and(|m| m.consumer.is_some());
        if is_rejoin && !is_holder {
            group.remove_member(&request.member_id, counts.clone(), now_ms());
        }
        if group.members.contains_key(&request.member_id) && !is_holder {
            return Err(ConsumerError::InvalidRequest(format!(
                "member id {:?} is taken by a rill (gRPC) member of group {:?}",
                request.member_id, request.group
            )));
        }
        // The one member a static rejoin replaces may be the only other one.
        let others = group.members.len() - usize::from(holder_id.is_some());
        match assignor {
            Some(assignor) if assignor != group.assignor && others > 0 => {
                return Err(mixed_assignors(&request.group, group.assignor, assignor));
            }
            Some(assignor) => group.assignor = assignor,
            None => {}
        }
        if holder_id.is_none() && group.members.len() >= self.config.max_members_per_group as usize {
            return Err(ConsumerError::GroupFull { group: request.group, limit: self.config.max_members_per_group });
        }
        let member = self.new_consumer_member(request, topics, now);
        let (member_id, incarnation) = (member.id.clone(), member.consumer.as_ref().map_or(0, |c| c.incarnation));
        if let Some(holder_id) = holder_id {
            return Ok(self.replace_static_member(group, &holder_id, member, counts, now));
        }
        group.add_member(member, counts);
        let epoch = stamp(group, &member_id);
        let heartbeat_interval_ms = self.consumer_heartbeat_interval_ms(&group.name);
        let member = group.members.get_mut(&member_id).expect("just added");
        if member.member_generation < 0 {
            member.member_generation = group.generation;
        }
        tracing::info!(group = %group.name, member = %member_id, epoch, "KIP-848 member joined");
        Ok(ConsumerAnswer {
            member_id,
            member_epoch: epoch,
            heartbeat_interval_ms,
            assignment: Some(member.assigned.keys().cloned().collect()),
            new_session: Some(incarnation),
            revocation_deadline: None,
        })
    }

    /// A joining member as the coordinator keeps it, owning nothing yet.
    fn new_consumer_member(&self, request: ConsumerHeartbeat, topics: BTreeSet<String>, now: Instant) -> Member {
        let member_id =
            if request.member_id.is_empty() { self.new_member_id(&request.client_id) } else { request.member_id };
        let incarnation = self.next_member.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Nobody listens: a KIP-848 member hears its assignment in its next heartbeat's answer.
        let (updates, _) = watch::channel(MemberView::Left);
        let session_timeout = self.configs.consumer_timing(&request.group).session_timeout;
        let session_timeout_ms = u32::try_from(session_timeout.as_millis()).unwrap_or(u32::MAX);
        let subscription =
            request.subscription.unwrap_or_else(|| ConsumerSubscription { names: topics.clone(), regex: None });
        Member {
            id: member_id,
            client_id: request.client_id,
            topics,
            session_timeout_ms,
            assigned: BTreeMap::new(),
            revoking: BTreeMap::new(),
            member_generation: -1,
            acked_generation: -1,
            updates,
            consumer: Some(ConsumerMember {
                incarnation,
                epoch: 0,
                stamped: BTreeSet::new(),
                lowest_valid_epoch: 0,
                session_deadline: now + session_timeout,
                client_host: request.client_host,
                subscription,
                rebalance_timeout: request.rebalance_timeout.unwrap_or(DEFAULT_REBALANCE_TIMEOUT),
                revocation_deadline: None,
                instance_id: request.instance_id,
                has_left: false,
            }),
        }
    }

    /// A leave: epoch -1 removes the member and frees its partitions; -2 from a static member keeps its place
    /// (`leave_static`). A leave naming an instance id another member holds is FENCED_INSTANCE_ID: an old
    /// process's late leave must not remove the new one.
    fn consumer_leave(
        &self,
        groups: &mut BTreeMap<String, Group>,
        request: ConsumerHeartbeat,
        counts: BTreeMap<String, u32>,
    ) -> Result<ConsumerAnswer, ConsumerError> {
        check_instance(groups.get(&request.group), &request)?;
        let is_consumer = |g: &Group| g.members.get(&request.member_id).is_some_and(|m| m.consumer.is_some());
        if let Some(group) = groups.get_mut(&request.group).filter(|g| is_consumer(g)) {
            let is_static =
                group.members[&request.member_id].consumer.as_ref().is_some_and(|c| c.instance_id.is_some());
            if request.member_epoch == STATIC_LEAVE_EPOCH && is_static {
                leave_static(group, &request.member_id);
            } else {
                group.remove_member(&request.member_id, counts, now_ms());
                tracing::info!(group = %request.group, member = %request.member_id, "KIP-848 member left");
            }
        }
        // Leaving twice, or after expiry, is answered the same: the member is out either way.
        Ok(ConsumerAnswer {
            member_id: request.member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
            new_session: None,
            revocation_deadline: None,
        })
    }

    /// The heartbeat interval `group`'s KIP-848 members are told: its `consumer.heartbeat.interval.ms`, else the
    /// broker's.
    fn consumer_heartbeat_interval_ms(&self, group: &str) -> i32 {
        i32::try_from(self.configs.consumer_timing(group).heartbeat_interval.as_millis()).unwrap_or(i32::MAX)
    }
}

/// The member's epoch for its assignment as it is now: a new one if the assignment changed since the last stamp
/// (or on a join), at least the group's generation, so a rejoined member never gets an epoch it had before.
fn stamp(group: &mut Group, member_id: &str) -> i32 {
    let generation = group.generation;
    let member = group.members.get_mut(member_id).expect("stamped members exist");
    let assigned: BTreeSet<TopicPartition> = member.assigned.keys().cloned().collect();
    let state = member.consumer.as_mut().expect("only KIP-848 members are stamped");
    if state.epoch == 0 || state.stamped != assigned {
        state.epoch = state.epoch.saturating_add(1).max(generation).max(1);
        state.stamped = assigned;
    }
    state.epoch
}

/// Starts the member's revocation clock when it is told to revoke partitions (it hears so in this answer), and
/// stops it once it has none to revoke. Returns the deadline when it was just started.
fn arm_revocation(group: &mut Group, member_id: &str, now: Instant) -> Option<(u64, Instant)> {
    let member = group.members.get_mut(member_id)?;
    let is_revoking = !member.revoking.is_empty();
    let state = member.consumer.as_mut()?;
    match (is_revoking, state.revocation_deadline) {
        (false, _) => {
            state.revocation_deadline = None;
            None
        }
        (true, Some(_)) => None,
        (true, None) => {
            let deadline = now + state.rebalance_timeout;
            state.revocation_deadline = Some(deadline);
            Some((state.incarnation, deadline))
        }
    }
}

fn mixed_assignors(group: &str, current: Assignor, asked: Assignor) -> ConsumerError {
    ConsumerError::InvalidRequest(format!(
        "group {group:?} uses the {current:?} assignor and this member asks for {asked:?}; its members must agree"
    ))
}

mod describe;
mod expiry;
mod static_member;
mod subscription;

pub use expiry::{keep_consumer_session, watch_revocation};
use static_member::{check_instance, leave_static, static_holder};

pub use subscription::{ConsumerSubscription, TopicRegex};

#[cfg(test)]
mod tests;
