//! One group of Kafka's classic protocol: the join and sync barriers, generations and the leader.
//!
//! States (Kafka's `GroupCoordinator`; a group without members is not kept):
//! - `PreparingRebalance`: every member must (re)join; each join is parked until all known members have one
//!   parked, or the rebalance timeout drops those that did not come. Then the generation is bumped, a protocol
//!   all members support is picked, a leader chosen, and every parked join answered (the leader with every
//!   member's metadata).
//! - `CompletingRebalance`: members send SyncGroup; the followers' are parked until the leader's carries the
//!   assignments, which answers all of them.
//! - `Stable`: a sync is answered with the member's assignment at once; a join that changes nothing is
//!   answered with the current generation, any other starts a new rebalance.
//!
//! A static member's new process takes the old member's place under a new id (`replace_member`), keeping its
//! assignment; the old id's parked requests are answered FENCED_INSTANCE_ID.
//!
//! **Invariant:** a member holds at most one parked join and one parked sync, and every parked one is answered
//! (or dropped, which its handler reads as an error) when the state it waits in ends, so no request waits
//! longer than a rebalance timeout or the leader's session.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{ClassicError, JoinOutcome, JoinedMember, SyncOutcome};
use crate::groups::TopicPartition;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

pub type JoinReply = oneshot::Sender<Result<JoinOutcome, ClassicError>>;
pub type SyncReply = oneshot::Sender<Result<SyncOutcome, ClassicError>>;

pub struct ClassicMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// The protocols the member supports, in its order of preference, with its metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// The topics its subscription names (decoded by the caller from the consumer protocol), for describing.
    pub topics: BTreeSet<String>,
    /// What the leader assigned it at the last sync (opaque to the broker), and the partitions in it.
    pub assignment: Bytes,
    pub assigned: Vec<TopicPartition>,
    pub parked_join: Option<JoinReply>,
    pub parked_sync: Option<SyncReply>,
    /// The last request from the member: its session ends `session_timeout_ms` after it.
    pub last_seen: Instant,
}

impl ClassicMember {
    fn protocol_names(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(|(name, _)| name.as_str())
    }

    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

pub struct ClassicGroup {
    pub name: String,
    pub protocol_type: String,
    /// The protocol (assignor) picked at the last completed join.
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub state: ClassicState,
    pub members: BTreeMap<String, ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used, with when they were handed out.
    pub pending_ids: BTreeMap<String, Instant>,
    /// Which join phase a rebalance timer belongs to: a timer of an earlier phase does nothing.
    pub rebalance_id: u64,
}

impl ClassicGroup {
    pub fn new(name: String, protocol_type: String) -> ClassicGroup {
        ClassicGroup {
            name,
            protocol_type,
            protocol: None,
            generation: 0,
            leader: None,
            state: ClassicState::PreparingRebalance,
            members: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            rebalance_id: 0,
        }
    }

    /// The protocols every member supports (all of `protocols` for the first member).
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: &str) -> bool {
        if self.members.keys().all(|id| id == except) {
            return true;
        }
        protocol_type == self.protocol_type
            && protocols.iter().any(|(name, _)| {
                self.members.values().filter(|m| m.id != except).all(|m| m.protocol_names().any(|p| p == name))
            })
    }

    /// Starts a join phase: parked syncs are told to rejoin. Returns the longest rebalance timeout, which
    /// the caller turns into the phase's deadline.
    pub fn prepare_rebalance(&mut self) -> u32 {
        if self.state == ClassicState::CompletingRebalance {
            for member in self.members.values_mut() {
                if let Some(reply) = member.parked_sync.take() {
                    let _ = reply.send(Err(ClassicError::RebalanceInProgress { group: self.name.clone() }));
                }
            }
        }
        self.state = ClassicState::PreparingRebalance;
        self.rebalance_id += 1;
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    /// Completes the join phase if every member has a join parked.
    pub fn complete_join_if_all_joined(&mut self) {
        if self.state == ClassicState::PreparingRebalance
            && !self.members.is_empty()
            && self.members.values().all(|m| m.parked_join.is_some())
        {
            self.complete_join();
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the generation bumped, a protocol and a
    /// leader picked, and every parked join answered.
    pub fn complete_join(&mut self) {
        self.members.retain(|_, m| m.parked_join.is_some());
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.leader = None;
            return;
        }
        self.protocol = self.vote();
        if !self.leader.as_ref().is_some_and(|leader| self.members.contains_key(leader)) {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = ClassicState::CompletingRebalance;
        let now = Instant::now();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.outcome_for(&id);
            let member = self.members.get_mut(&id).expect("listed from members");
            member.last_seen = now;
            if let Some(reply) = member.parked_join.take() {
                let _ = reply.send(Ok(outcome));
            }
        }
    }

    /// What a join of the current generation answers `member_id`: the leader also gets every member's metadata.
    pub fn outcome_for(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            member_id: member_id.to_owned(),
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol,
            leader: self.leader.clone().unwrap_or_default(),
            members,
        }
    }

    /// Kafka's choice: among the protocols all members support, each member votes for the one it prefers
    /// most; the most votes wins (ties to the name first in order, so the choice is deterministic).
    pub(super) fn vote(&self) -> Option<String> {
        let candidates: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.protocol_names())
            .filter(|name| self.members.values().all(|m| m.protocol_names().any(|p| p == *name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.protocol_names().find(|name| candidates.contains(name)) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let most = votes.values().copied().max()?;
        votes.into_iter().find(|(_, count)| *count == most).map(|(name, _)| name.to_owned())
    }

    /// The leader's sync: stores every member's assignment (none given is an empty one), answers every parked
    /// sync, and the group is stable.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes, Vec<TopicPartition>)>) {
        let mut given: BTreeMap<String, (Bytes, Vec<TopicPartition>)> =
            assignments.into_iter().map(|(id, bytes, partitions)| (id, (bytes, partitions))).collect();
        let protocol = self.protocol.clone().unwrap_or_default();
        for member in self.members.values_mut() {
            let (assignment, assigned) = given.remove(&member.id).unwrap_or_default();
            member.assignment = assignment;
            member.assigned = assigned;
            if let Some(reply) = member.parked_sync.take() {
                let _ = reply.send(Ok(SyncOutcome {
                    protocol_type: self.protocol_type.clone(),
                    protocol: protocol.clone(),
                    assignment: member.assignment.clone(),
                }));
            }
        }
        self.state = ClassicState::Stable;
    }

    /// Removes a member, telling its parked requests it is gone. Returns whether it was there.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        let Some(member) = self.members.remove(member_id) else { return false };
        let gone = || ClassicError::UnknownMember { group: self.name.clone(), member: member_id.to_owned() };
        if let Some(reply) = member.parked_join {
            let _ = reply.send(Err(gone()));
        }
        if let Some(reply) = member.parked_sync {
            let _ = reply.send(Err(gone()));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        true
    }

    /// Moves a static member to a new id (its new process), keeping its assignment and leadership; the old id's
    /// parked requests are answered `fenced`.
    pub fn replace_member(&mut self, old_id: &str, new_id: &str, fenced: ClassicError) {
        let Some(mut member) = self.members.remove(old_id) else { return };
        if let Some(reply) = member.parked_join.take() {
            let _ = reply.send(Err(fenced.clone()));
        }
        if let Some(reply) = member.parked_sync.take() {
            let _ = reply.send(Err(fenced));
        }
        member.id = new_id.to_owned();
        self.members.insert(new_id.to_owned(), member);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.to_owned());
        }
    }

    /// The member's id for a static `instance_id`, if one holds it.
    pub fn member_of_instance(&self, instance_id: &str) -> Option<String> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id)).map(|m| m.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> ClassicMember {
        ClassicMember {
            id: id.into(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(format!("{id}:{p}")))).collect(),
            topics: BTreeSet::new(),
            assignment: Bytes::new(),
            assigned: Vec::new(),
            parked_join: None,
            parked_sync: None,
            last_seen: Instant::now(),
        }
    }

    fn park_join(group: &mut ClassicGroup, id: &str) -> oneshot::Receiver<Result<JoinOutcome, ClassicError>> {
        let (tx, rx) = oneshot::channel();
        group.members.get_mut(id).expect("a member").parked_join = Some(tx);
        rx
    }

    #[test]
    fn the_join_waits_for_every_member_then_the_leader_alone_gets_the_metadata() {
        let mut group = ClassicGroup::new("g".into(), "consumer".into());
        group.members.insert("a".into(), member("a", &["range", "roundrobin"]));
        group.members.insert("b".into(), member("b", &["roundrobin", "range"]));
        group.members.insert("c".into(), member("c", &["roundrobin"]));
        group.prepare_rebalance();
        let mut a = park_join(&mut group, "a");
        let mut b = park_join(&mut group, "b");
        group.complete_join_if_all_joined();
        assert!(a.try_recv().is_err(), "c has not joined yet");
        let mut c = park_join(&mut group, "c");
        group.complete_join_if_all_joined();
        let (a, b, c) =
            (a.try_recv().unwrap().unwrap(), b.try_recv().unwrap().unwrap(), c.try_recv().unwrap().unwrap());
        assert_eq!((a.generation, a.protocol.as_str(), a.leader.as_str()), (1, "roundrobin", "a"));
        assert_eq!(a.members.len(), 3);
        assert_eq!(a.members[1].metadata, Bytes::from("b:roundrobin"));
        assert!(b.members.is_empty() && c.members.is_empty());
        assert_eq!(group.state, ClassicState::CompletingRebalance);
    }

    #[test]
    fn members_that_miss_the_rebalance_timeout_are_dropped_and_a_new_leader_chosen() {
        let mut group = ClassicGroup::new("g".into(), "consumer".into());
        group.members.insert("a".into(), member("a", &["range"]));
        group.members.insert("b".into(), member("b", &["range"]));
        group.leader = Some("a".into());
        group.generation = 4;
        group.prepare_rebalance();
        let mut b = park_join(&mut group, "b");
        group.complete_join();
        let b = b.try_recv().unwrap().unwrap();
        assert_eq!((b.generation, b.leader.as_str(), b.members.len()), (5, "b", 1));
        assert!(!group.members.contains_key("a"));
    }

    #[test]
    fn a_new_rebalance_tells_parked_syncs_to_rejoin_and_the_leaders_sync_answers_the_rest() {
        let mut group = ClassicGroup::new("g".into(), "consumer".into());
        group.members.insert("a".into(), member("a", &["range"]));
        group.members.insert("b".into(), member("b", &["range"]));
        group.prepare_rebalance();
        let _a = park_join(&mut group, "a");
        let _b = park_join(&mut group, "b");
        group.complete_join_if_all_joined();
        let (tx, mut parked) = oneshot::channel();
        group.members.get_mut("b").unwrap().parked_sync = Some(tx);
        group.prepare_rebalance();
        assert!(matches!(parked.try_recv(), Ok(Err(ClassicError::RebalanceInProgress { .. }))));

        let _a = park_join(&mut group, "a");
        let _b = park_join(&mut group, "b");
        group.complete_join_if_all_joined();
        let (tx, mut parked) = oneshot::channel();
        group.members.get_mut("b").unwrap().parked_sync = Some(tx);
        let to_b = vec![TopicPartition::new("t", 1)];
        group.complete_sync(vec![("b".into(), Bytes::from_static(b"for b"), to_b.clone())]);
        let synced = parked.try_recv().unwrap().unwrap();
        assert_eq!(synced.assignment, Bytes::from_static(b"for b"));
        assert_eq!(group.members["b"].assigned, to_b);
        assert!(group.members["a"].assignment.is_empty(), "a member the leader left out gets nothing");
        assert_eq!(group.state, ClassicState::Stable);
    }

    #[test]
    fn a_replaced_static_member_keeps_its_assignment_and_leadership_and_its_old_id_is_fenced() {
        let mut group = ClassicGroup::new("g".into(), "consumer".into());
        group.members.insert("old".into(), member("old", &["range"]));
        group.members.get_mut("old").unwrap().instance_id = Some("pod-1".into());
        group.members.get_mut("old").unwrap().assignment = Bytes::from_static(b"mine");
        group.leader = Some("old".into());
        let (tx, mut parked) = oneshot::channel();
        group.members.get_mut("old").unwrap().parked_sync = Some(tx);
        let fenced = ClassicError::FencedInstance { group: "g".into(), member: "old".into(), instance: "pod-1".into() };
        group.replace_member("old", "new", fenced);
        assert!(matches!(parked.try_recv(), Ok(Err(ClassicError::FencedInstance { .. }))));
        assert!(!group.members.contains_key("old"));
        assert_eq!(group.members["new"].assignment, Bytes::from_static(b"mine"));
        assert_eq!(group.members["new"].id, "new");
        assert_eq!(group.leader.as_deref(), Some("new"));
        assert_eq!(group.member_of_instance("pod-1").as_deref(), Some("new"));
    }

    #[test]
    fn only_protocols_every_member_supports_are_accepted() {
        let mut group = ClassicGroup::new("g".into(), "consumer".into());
        group.members.insert("a".into(), member("a", &["range", "cooperative-sticky"]));
        let protocols = |names: &[&str]| names.iter().map(|n| (n.to_string(), Bytes::new())).collect::<Vec<_>>();
        assert!(group.supports("consumer", &protocols(&["cooperative-sticky"]), ""));
        assert!(!group.supports("consumer", &protocols(&["roundrobin"]), ""));
        assert!(!group.supports("connect", &protocols(&["range"]), ""));
        assert!(group.supports("connect", &protocols(&["x"]), "a"), "the only member may change everything");
    }
}
