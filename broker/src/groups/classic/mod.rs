//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) on the node's coordinator:
//! client-side assignment, where the broker only runs the barriers and passes the leader's assignments on
//! (`group.rs` is one group's state machine). Kafka clients' groups live beside the gRPC members' groups in the
//! same [`GroupCoordinator`] and share its offset store; one group is either kind, never both (docs/kafka.md):
//! a join of the other kind is refused while the group has members.
//!
//! Lock order: the coordinator's gRPC groups, then these; both after the offset store's lock.
//! Timers (a join phase's rebalance timeout, each member's session) are tasks that sleep until their
//! deadline and then look at the group again, so nothing polls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{check_group_id, GroupCoordinator, TopicPartition};
use crate::node::now_ms;

pub mod describe;
mod group;

use group::ClassicMember;
pub use group::{ClassicGroup, ClassicState};

/// Why a classic-protocol request is refused; each has its Kafka error code (`kafka/group_errors.rs`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClassicError {
    #[error("member {member:?} is not in group {group:?}")]
    UnknownMember { group: String, member: String },
    #[error("generation {generation} of member {member:?} is not group {group:?}'s current {current}")]
    IllegalGeneration { group: String, member: String, generation: i32, current: i32 },
    /// A KIP-848 member named an epoch it was never sent or no longer holds (Kafka's STALE_MEMBER_EPOCH).
    #[error(
        "epoch {epoch} of member {member:?} is not one group {group:?} holds for it (its current is {current}): \
         heartbeat for the current epoch, then retry"
    )]
    StaleMemberEpoch { group: String, member: String, epoch: i32, current: i32 },
    #[error("group {group:?} is rebalancing: rejoin")]
    RebalanceInProgress { group: String },
    #[error("group {group:?}: {reason}")]
    InconsistentProtocol { group: String, reason: String },
    #[error(
        "member {member:?} of group {group:?} is fenced: its instance id {instance:?} is now held by a newer member \
         (another process started with the same group.instance.id)"
    )]
    FencedInstance { group: String, member: String, instance: String },
    #[error("join again with the member id {member_id:?}")]
    MemberIdRequired { member_id: String },
    #[error("group {group:?} is full: it may have at most {limit} members (max_members_per_group)")]
    GroupFull { group: String, limit: u32 },
    #[error("too many consumer groups: the broker holds at most {limit} (max_groups)")]
    TooManyGroups { limit: u32 },
    #[error("session timeout {timeout_ms} ms is outside the broker's {min}..={max} ms")]
    InvalidSessionTimeout { timeout_ms: i32, min: u64, max: u64 },
    #[error("invalid group id: {reason}")]
    InvalidGroupId { reason: String },
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// On a cluster: this node does not coordinate the group (see `offsets::replicated`).
    #[error("{0}")]
    NotCoordinator(String),
}

/// A JoinGroup, as the coordinator needs it.
pub struct JoinRequest {
    pub group: String,
    /// Empty for a member's first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// -1 (JoinGroup v0) means the session timeout.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// The topics the member subscribes to, as far as the caller could decode them (for describing only).
    pub topics: BTreeSet<String>,
    /// JoinGroup v4+ (KIP-394): a member without an id first gets one with MEMBER_ID_REQUIRED, then joins.
    pub requires_known_member_id: bool,
}

/// A completed join: the generation and, for the leader, every member's metadata.
#[derive(Debug)]
pub struct JoinOutcome {
    pub member_id: String,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub members: Vec<JoinedMember>,
}

#[derive(Debug)]
pub struct JoinedMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug)]
pub struct SyncOutcome {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

pub type Pending<T> = oneshot::Receiver<Result<T, ClassicError>>;

/// One classic group's members, for DescribeGroups and `rill group describe`.
pub struct ClassicSnapshot {
    pub state: ClassicState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<ClassicMemberView>,
}

pub struct ClassicMemberView {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub metadata: Bytes,
    pub assignment: Bytes,
    pub topics: BTreeSet<String>,
    pub assigned: Vec<TopicPartition>,
}

impl GroupCoordinator {
    /// A JoinGroup: admits or updates the member and answers when its join phase completes (at once when
    /// nothing changes in a stable group).
    pub fn classic_join(self: &Arc<Self>, request: JoinRequest) -> Result<Pending<JoinOutcome>, ClassicError> {
        check_group_id(&request.group).map_err(|err| ClassicError::InvalidGroupId { reason: err.to_string() })?;
        let (min, max) = (self.config.group_min_session_timeout_ms, self.config.group_max_session_timeout_ms);
        let session_timeout_ms = u32::try_from(request.session_timeout_ms)
            .ok()
            .filter(|ms| (min..=max).contains(&u64::from(*ms)))
            .ok_or(ClassicError::InvalidSessionTimeout { timeout_ms: request.session_timeout_ms, min, max })?;
        let rebalance_timeout_ms = u32::try_from(request.rebalance_timeout_ms).unwrap_or(session_timeout_ms);
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(ClassicError::InconsistentProtocol {
                group: request.group,
                reason: "a join must name a protocol type and at least one protocol".into(),
            });
        }
        let grpc = self.lock();
        if let Some(members) = grpc.get(&request.group).map(|g| g.members.len()).filter(|n| *n > 0) {
            return Err(ClassicError::InconsistentProtocol {
                group: request.group.clone(),
                reason: format!(
                    "it has {members} broker-assigned member(s) (rill gRPC or KIP-848 consumers); a group is \
                     of one protocol at a time"
                ),
            });
        }
        let mut classic = self.classic_lock();
        if !classic.contains_key(&request.group) && grpc.len() + classic.len() >= self.config.max_groups as usize {
            return Err(ClassicError::TooManyGroups { limit: self.config.max_groups });
        }
        drop(grpc);
        let group = classic
            .entry(request.group.clone())
            .or_insert_with(|| ClassicGroup::new(request.group.clone(), request.protocol_type.clone()));
        let now = Instant::now();
        let max_session = Duration::from_millis(max);
        group.pending_ids.retain(|_, issued| now.duration_since(*issued) < max_session);
        let result = self.join_locked(group, request, session_timeout_ms, rebalance_timeout_ms, now);
        if group.members.is_empty() && group.pending_ids.is_empty() {
            let name = group.name.clone();
            classic.remove(&name);
        }
        result
    }

    fn join_locked(
        self: &Arc<Self>,
        group: &mut ClassicGroup,
        request: JoinRequest,
        session_timeout_ms: u32,
        rebalance_timeout_ms: u32,
        now: Instant,
    ) -> Result<Pending<JoinOutcome>, ClassicError> {
        let mut member_id = request.member_id.clone();
        if let Some(instance) = request.instance_id.as_deref() {
            match group.member_of_instance(instance) {
                Some(holder) if member_id.is_empty() => {
                    // Its new process; a protocol the others do not share is refused below, as anyone's is.
                    let is_supported = group.supports(&request.protocol_type, &request.protocols, &holder);
                    if is_supported {
                        return Ok(self.rejoin_static(
                            group,
                            holder,
                            request,
                            session_timeout_ms,
                            rebalance_timeout_ms,
                        ));
                    }
                }
                Some(holder) if holder != member_id => return Err(fenced(group, &member_id, instance)),
                _ => {}
            }
        }
        if !group.supports(&request.protocol_type, &request.protocols, &member_id) {
            return Err(ClassicError::InconsistentProtocol {
                group: group.name.clone(),
                reason: format!(
                    "protocol type {:?} with protocols {:?} shares none with the members' ({:?})",
                    request.protocol_type,
                    request.protocols.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
                    group.protocol_type
                ),
            });
        }
        let is_new = !group.members.contains_key(&member_id);
        if is_new {
            let limit = self.config.max_members_per_group;
            // Ids handed out and not yet used count too, so joins that never come back cannot grow the group.
            if member_id.is_empty() && group.members.len() + group.pending_ids.len() >= limit as usize {
                return Err(ClassicError::GroupFull { group: group.name.clone(), limit });
            }
            if member_id.is_empty() {
                member_id = self.new_member_id(&request.client_id);
                if request.requires_known_member_id && request.instance_id.is_none() {
                    group.pending_ids.insert(member_id.clone(), now);
                    return Err(ClassicError::MemberIdRequired { member_id });
                }
            } else if group.pending_ids.remove(&member_id).is_none() {
                return Err(ClassicError::UnknownMember { group: group.name.clone(), member: member_id });
            }
            if group.members.len() >= limit as usize {
                return Err(ClassicError::GroupFull { group: group.name.clone(), limit });
            }
            if group.members.is_empty() {
                group.protocol_type = request.protocol_type.clone();
            }
        }
        let (reply, pending) = oneshot::channel();
        let changed = is_new || group.members.get(&member_id).is_some_and(|m| m.protocols != request.protocols);
        let member = group.members.entry(member_id.clone()).or_insert_with(|| ClassicMember {
            id: member_id.clone(),
            instance_id: request.instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols: Vec::new(),
            topics: BTreeSet::new(),
            assignment: Bytes::new(),
            assigned: Vec::new(),
            parked_join: None,
            parked_sync: None,
            last_seen: now,
        });
        member.session_timeout_ms = session_timeout_ms;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.protocols = request.protocols;
        member.topics = request.topics;
        member.last_seen = now;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let answers_now = match group.state {
            ClassicState::PreparingRebalance => false,
            ClassicState::CompletingRebalance => !changed,
            ClassicState::Stable => !changed && !is_leader,
        };
        if answers_now && group.generation > 0 {
            let _ = reply.send(Ok(group.outcome_for(&member_id)));
        } else {
            if let Some(member) = group.members.get_mut(&member_id) {
                // A join sent again (a retry after a lost connection) replaces the one parked before.
                member.parked_join = Some(reply);
            }
            if group.state != ClassicState::PreparingRebalance || group.rebalance_id == 0 {
                self.start_rebalance(group);
            }
            group.complete_join_if_all_joined();
        }
        if is_new {
            self.watch_session(group.name.clone(), member_id.clone(), Duration::from_millis(session_timeout_ms.into()));
            tracing::info!(group = %group.name, member = %member_id, "kafka member joined");
        }
        Ok(pending)
    }

    /// A static member's new process (KIP-345): it takes the old member's place under a new id, keeping its
    /// assignment, and the old id is fenced. A stable group whose protocol choice stays the same answers at
    /// once with the current generation and no rebalance, naming the leader as it was, so the new process does
    /// not take itself for a leader and assign (its sync gets the kept assignment). In any other state the
    /// group rebalances, since the leader may be assigning to the old id.
    fn rejoin_static(
        self: &Arc<Self>,
        group: &mut ClassicGroup,
        old_id: String,
        request: JoinRequest,
        session_timeout_ms: u32,
        rebalance_timeout_ms: u32,
    ) -> Pending<JoinOutcome> {
        let new_id = self.new_member_id(&request.client_id);
        let leader_before = group.leader.clone();
        let instance = request.instance_id.clone().unwrap_or_default();
        group.replace_member(
            &old_id,
            &new_id,
            ClassicError::FencedInstance {
                group: group.name.clone(),
                member: old_id.clone(),
                instance: instance.clone(),
            },
        );
        let (reply, pending) = oneshot::channel();
        if let Some(member) = group.members.get_mut(&new_id) {
            member.client_id = request.client_id;
            member.client_host = request.client_host;
            member.session_timeout_ms = session_timeout_ms;
            member.rebalance_timeout_ms = rebalance_timeout_ms;
            member.protocols = request.protocols;
            member.topics = request.topics;
            member.last_seen = Instant::now();
        }
        let keeps_protocol = group.protocol.is_some() && group.vote() == group.protocol;
        if group.state == ClassicState::Stable && keeps_protocol {
            let mut outcome = group.outcome_for(&new_id);
            outcome.leader = leader_before.unwrap_or_default();
            outcome.members.clear();
            let _ = reply.send(Ok(outcome));
        } else {
            if let Some(member) = group.members.get_mut(&new_id) {
                member.parked_join = Some(reply);
            }
            if group.state != ClassicState::PreparingRebalance {
                self.start_rebalance(group);
            }
            group.complete_join_if_all_joined();
        }
        self.watch_session(group.name.clone(), new_id.clone(), Duration::from_millis(session_timeout_ms.into()));
        tracing::info!(group = %group.name, member = %new_id, old_member = %old_id, instance = %instance,
            "kafka static member rejoined");
        pending
    }

    /// A SyncGroup: the leader's carries every member's assignment; each member gets its own once it is there.
    pub fn classic_sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<String>, Option<String>),
        assignments: Vec<(String, Bytes, Vec<TopicPartition>)>,
    ) -> Result<Pending<SyncOutcome>, ClassicError> {
        let mut classic = self.classic_lock();
        let group = known_member(&mut classic, group_id, member_id, instance_id)?;
        if generation != group.generation {
            return Err(illegal_generation(group, member_id, generation));
        }
        let (protocol_type, protocol_name) = protocol;
        let is_type_wrong = protocol_type.is_some_and(|t| t != group.protocol_type);
        if is_type_wrong || protocol_name.is_some_and(|p| Some(p) != group.protocol) {
            return Err(ClassicError::InconsistentProtocol {
                group: group_id.to_owned(),
                reason: "the sync names another protocol than the join picked".into(),
            });
        }
        let (reply, pending) = oneshot::channel();
        match group.state {
            ClassicState::PreparingRebalance => {
                return Err(ClassicError::RebalanceInProgress { group: group_id.to_owned() });
            }
            ClassicState::CompletingRebalance => {
                if let Some(member) = group.members.get_mut(member_id) {
                    member.parked_sync = Some(reply);
                }
                if group.leader.as_deref() == Some(member_id) {
                    group.complete_sync(assignments);
                    tracing::info!(group = %group_id, generation, "kafka group stable");
                }
            }
            ClassicState::Stable => {
                let member = &group.members[member_id];
                let _ = reply.send(Ok(SyncOutcome {
                    protocol_type: group.protocol_type.clone(),
                    protocol: group.protocol.clone().unwrap_or_default(),
                    assignment: member.assignment.clone(),
                }));
            }
        }
        Ok(pending)
    }

    /// A Heartbeat: keeps the session, and tells the member when it must rejoin.
    pub fn classic_heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ClassicError> {
        let mut classic = self.classic_lock();
        let group = known_member(&mut classic, group_id, member_id, instance_id)?;
        if generation != group.generation {
            return Err(illegal_generation(group, member_id, generation));
        }
        if group.state == ClassicState::PreparingRebalance {
            return Err(ClassicError::RebalanceInProgress { group: group_id.to_owned() });
        }
        Ok(())
    }

    /// A LeaveGroup of one member (by id, or by static instance id); the rest rebalance.
    pub fn classic_leave(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ClassicError> {
        let mut classic = self.classic_lock();
        let unknown = || ClassicError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
        let group = classic.get_mut(group_id).ok_or_else(unknown)?;
        let id = match instance_id {
            Some(instance) => {
                let holder = group.member_of_instance(instance).ok_or_else(unknown)?;
                // An empty member id leaves by instance id alone (an operator's or a new process's leave).
                if !member_id.is_empty() && holder != member_id {
                    return Err(fenced(group, member_id, instance));
                }
                holder
            }
            None => member_id.to_owned(),
        };
        if !group.remove_member(&id) {
            return Err(unknown());
        }
        tracing::info!(group = %group_id, member = %id, "kafka member left");
        self.after_removal(&mut classic, group_id);
        Ok(())
    }

    /// The check an offset commit from a Kafka client passes, under the offset store's lock (Kafka's rules):
    /// a group without members takes commits of generation -1 (a consumer that assigns partitions itself);
    /// a classic group's member commits with its current generation, also while the group prepares a
    /// rebalance (a cooperative member commits what it gives up before rejoining), but not between the join
    /// and the sync.
    pub fn check_kafka_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        partitions: &[TopicPartition],
    ) -> Result<(), ClassicError> {
        let grpc = self.lock();
        let unknown = || ClassicError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
        if let Some(group) = grpc.get(group_id).filter(|g| !g.members.is_empty()) {
            // A KIP-848 member commits with an epoch it was sent, and only partitions it owns (also while it is
            // giving them up: a consumer commits what it read before letting a partition go).
            let member = group.members.get(member_id).filter(|m| m.consumer.is_some()).ok_or_else(unknown)?;
            // A static member that left (epoch -2) commits nothing: its next process commits as a new member.
            let state = member.consumer.as_ref().ok_or_else(unknown)?;
            let epoch = state.current_epoch();
            if !state.accepts_epoch(generation) {
                return Err(ClassicError::StaleMemberEpoch {
                    group: group_id.to_owned(),
                    member: member_id.to_owned(),
                    epoch: generation,
                    current: epoch,
                });
            }
            if !partitions.iter().all(|tp| member.owns(tp).is_some()) {
                return Err(ClassicError::IllegalGeneration {
                    group: group_id.to_owned(),
                    member: member_id.to_owned(),
                    generation,
                    current: epoch,
                });
            }
            return Ok(());
        }
        drop(grpc);
        let mut classic = self.classic_lock();
        let Some(group) = classic.get_mut(group_id).filter(|g| !g.members.is_empty()) else {
            return if generation < 0 { Ok(()) } else { Err(unknown()) };
        };
        if let Some(instance) = instance_id {
            if group.member_of_instance(instance).is_some_and(|holder| holder != member_id) {
                return Err(fenced(group, member_id, instance));
            }
        }
        let member = group.members.get_mut(member_id).ok_or_else(unknown)?;
        member.last_seen = Instant::now();
        if group.state == ClassicState::CompletingRebalance {
            return Err(ClassicError::RebalanceInProgress { group: group_id.to_owned() });
        }
        if generation != group.generation {
            return Err(illegal_generation(group, member_id, generation));
        }
        Ok(())
    }

    /// The check an OffsetFetch v9+ naming a member passes (KIP-848): in a group of KIP-848 members, the member
    /// must be one of them and the epoch one it holds, as for a commit. No member id and a negative epoch (an
    /// admin tool, a consumer outside any group) always pass, and so does a classic group, whose members do not
    /// send them.
    pub fn check_kafka_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), ClassicError> {
        if member_id.is_none() && epoch < 0 {
            return Ok(());
        }
        let grpc = self.lock();
        let Some(group) = grpc.get(group_id).filter(|g| g.members.values().any(|m| m.consumer.is_some())) else {
            return Ok(());
        };
        let member_id = member_id.unwrap_or_default();
        let unknown = || ClassicError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
        let member = group.members.get(member_id).and_then(|m| m.consumer.as_ref()).ok_or_else(unknown)?;
        if !member.accepts_epoch(epoch) {
            return Err(ClassicError::StaleMemberEpoch {
                group: group_id.to_owned(),
                member: member_id.to_owned(),
                epoch,
                current: member.current_epoch(),
            });
        }
        Ok(())
    }

    /// How many Kafka members `group_id` has (0 if it is not a classic group).
    pub fn classic_members(&self, group_id: &str) -> usize {
        self.classic_lock().get(group_id).map_or(0, |g| g.members.len())
    }

    pub fn classic_snapshot(&self, group_id: &str) -> Option<ClassicSnapshot> {
        let classic = self.classic_lock();
        let group = classic.get(group_id).filter(|g| !g.members.is_empty())?;
        let protocol = group.protocol.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| ClassicMemberView {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                metadata: m.protocols.iter().find(|(p, _)| *p == protocol).map(|(_, b)| b.clone()).unwrap_or_default(),
                assignment: m.assignment.clone(),
                topics: m.topics.clone(),
                assigned: m.assigned.clone(),
            })
            .collect();
        Some(ClassicSnapshot {
            state: group.state,
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            protocol,
            members,
        })
    }

    /// Names of the classic groups with members.
    pub fn classic_groups(&self) -> Vec<String> {
        self.classic_lock().values().filter(|g| !g.members.is_empty()).map(|g| g.name.clone()).collect()
    }

    fn start_rebalance(self: &Arc<Self>, group: &mut ClassicGroup) {
        let timeout_ms = group.prepare_rebalance();
        let (name, rebalance_id) = (group.name.clone(), group.rebalance_id);
        let coordinator = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms.into())).await;
            let mut classic = coordinator.classic_lock();
            if let Some(group) = classic.get_mut(&name) {
                if group.state == ClassicState::PreparingRebalance && group.rebalance_id == rebalance_id {
                    tracing::info!(group = %name, "rebalance timed out; members that did not rejoin are removed");
                    group.complete_join();
                }
            }
            coordinator.forget_classic_if_empty(&mut classic, &name);
        });
    }

    /// After a member left or expired: the others rebalance, or the group goes if none is left.
    fn after_removal(self: &Arc<Self>, classic: &mut BTreeMap<String, ClassicGroup>, group_id: &str) {
        if let Some(group) = classic.get_mut(group_id) {
            if !group.members.is_empty() {
                self.start_rebalance(group);
                group.complete_join_if_all_joined();
            }
        }
        self.forget_classic_if_empty(classic, group_id);
    }

    fn forget_classic_if_empty(&self, classic: &mut BTreeMap<String, ClassicGroup>, group_id: &str) {
        if classic.get(group_id).is_some_and(|g| g.members.is_empty() && g.pending_ids.is_empty()) {
            classic.remove(group_id);
            tracing::debug!(group = %group_id, emptied_at_ms = now_ms(), "kafka group has no members left");
        }
    }

    /// Ends the member's session `session` after its last request, unless a join or sync of it is parked
    /// (then the join phase's timeout or the leader's session bounds it).
    fn watch_session(self: &Arc<Self>, group_id: String, member_id: String, session: Duration) {
        let coordinator = Arc::clone(self);
        tokio::spawn(async move {
            let mut deadline = Instant::now() + session;
            loop {
                tokio::time::sleep_until(deadline).await;
                let mut classic = coordinator.classic_lock();
                let Some(group) = classic.get_mut(&group_id) else { return };
                let Some(member) = group.members.get(&member_id) else { return };
                let is_waiting = member.parked_join.is_some() || member.parked_sync.is_some();
                let expires = member.last_seen + Duration::from_millis(member.session_timeout_ms.into());
                if is_waiting || expires > Instant::now() {
                    deadline = if is_waiting { Instant::now() + session } else { expires };
                    continue;
                }
                group.remove_member(&member_id);
                tracing::info!(group = %group_id, member = %member_id, "kafka member's session expired");
                coordinator.after_removal(&mut classic, &group_id);
                return;
            }
        });
    }

    pub(super) fn classic_lock(&self) -> MutexGuard<'_, BTreeMap<String, ClassicGroup>> {
        self.classic.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The group of a known member, its session refreshed. A member whose static instance id a newer member holds
/// is fenced (Kafka checks this before the member id).
fn known_member<'a>(
    classic: &'a mut BTreeMap<String, ClassicGroup>,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<&'a mut ClassicGroup, ClassicError> {
    let unknown = || ClassicError::UnknownMember { group: group_id.to_owned(), member: member_id.to_owned() };
    let group = classic.get_mut(group_id).ok_or_else(unknown)?;
    if let Some(instance) = instance_id {
        if group.member_of_instance(instance).is_some_and(|holder| holder != member_id) {
            return Err(fenced(group, member_id, instance));
        }
    }
    group.members.get_mut(member_id).ok_or_else(unknown)?.last_seen = Instant::now();
    Ok(group)
}

fn fenced(group: &ClassicGroup, member_id: &str, instance: &str) -> ClassicError {
    ClassicError::FencedInstance {
        group: group.name.clone(),
        member: member_id.to_owned(),
        instance: instance.to_owned(),
    }
}

fn illegal_generation(group: &ClassicGroup, member_id: &str, generation: i32) -> ClassicError {
    ClassicError::IllegalGeneration {
        group: group.name.clone(),
        member: member_id.to_owned(),
        generation,
        current: group.generation,
    }
}
