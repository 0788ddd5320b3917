//! One consumer group's membership and the incremental cooperative rebalance that moves its partitions.
//!
//! Three assignments are kept apart:
//! - the *target*, what the assignor wants (`assignor.rs`), recomputed at every generation;
//! - each member's `assigned` partitions, which it owns and reads;
//! - each member's `revoking` partitions: taken out of its assignment but still owned until it acknowledges an
//!   assignment of that generation (it has committed and stopped reading them) or is removed.
//!
//! [`Group::reconcile`] moves `assigned` towards the target in two passes: first it revokes what a member should
//! no longer have, then it grants each wanted partition that no *other* member owns. **Invariant** (asserted
//! after every reconcile): the owned sets (`assigned` plus `revoking`) of the members are disjoint, so no
//! partition is ever read by two members of a group at once.

use std::collections::{BTreeMap, BTreeSet};

use rill_protocol::v1;
use tokio::sync::watch;

use super::assignor::{Assignment, Assignor, TopicPartition};
use super::consumer::ConsumerMember;

/// What a member's JoinGroup stream sends next: its latest assignment, or the end of its session.
#[derive(Debug, Clone)]
pub enum MemberView {
    Assigned(v1::MemberAssignment),
    /// The member left: the stream ends without an error.
    Left,
    /// The session ended for another reason: the stream ends with this status.
    Ended {
        code: tonic::Code,
        message: String,
    },
    /// The group moved to another coordinator: the stream ends with this status (`not-coordinator`, naming
    /// the new coordinator when known), so the member rejoins there.
    Moved(tonic::Status),
}

#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// Generation at which the member was given the partition: commits must carry this one or a later one.
    pub assigned_at: i32,
}

#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    pub assigned_at: i32,
    /// Generation of the assignment that took the partition away: an ack of it (or later) frees the partition.
    pub revoked_at: i32,
}

pub struct Member {
    pub id: String,
    pub client_id: String,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u32,
    pub assigned: BTreeMap<TopicPartition, Grant>,
    pub revoking: BTreeMap<TopicPartition, Revocation>,
    /// Generation of the latest assignment sent to the member (-1 before the first).
    pub member_generation: i32,
    /// Latest generation the member acknowledged (-1 before the first).
    pub acked_generation: i32,
    pub updates: watch::Sender<MemberView>,
    /// A Kafka KIP-848 member's own state (`consumer.rs`); `None` for a gRPC member.
    pub consumer: Option<ConsumerMember>,
}

impl Member {
    /// A KIP-848 static member that left with epoch -2: it has stopped reading, but keeps its place.
    pub fn has_left(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| c.has_left)
    }

    pub fn owns(&self, tp: &TopicPartition) -> Option<i32> {
        self.assigned.get(tp).map(|g| g.assigned_at).or_else(|| self.revoking.get(tp).map(|r| r.assigned_at))
    }

    pub fn view(&self) -> v1::MemberAssignment {
        v1::MemberAssignment {
            member_id: self.id.clone(),
            generation: self.member_generation,
            assigned: by_topic(self.assigned.keys()),
            heartbeat_interval_ms: (self.session_timeout_ms / 3).max(1),
            session_timeout_ms: self.session_timeout_ms,
        }
    }
}

/// Partitions grouped per topic, each list in order (the wire shape).
pub fn by_topic<'a>(partitions: impl Iterator<Item = &'a TopicPartition>) -> Vec<v1::TopicPartitions> {
    let mut out: Vec<v1::TopicPartitions> = Vec::new();
    for tp in partitions {
        match out.last_mut() {
            Some(last) if last.topic == tp.topic => last.partitions.push(tp.partition),
            _ => out.push(v1::TopicPartitions { topic: tp.topic.clone(), partitions: vec![tp.partition] }),
        }
    }
    out
}

pub struct Group {
    pub name: String,
    pub assignor: Assignor,
    /// Bumped by every change of membership, subscriptions or subscribed topics' partition counts.
    pub generation: i32,
    pub members: BTreeMap<String, Member>,
    /// Partition counts of the subscribed topics the current target was computed from.
    pub partition_counts: BTreeMap<String, u32>,
    target: Assignment,
    /// When the last member left (ms since the epoch), for offset expiry; 0 while it has members.
    pub emptied_at_ms: i64,
}

impl Group {
    pub fn new(name: String, assignor: Assignor, now_ms: i64) -> Group {
        Group {
            name,
            assignor,
            generation: 0,
            members: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            target: Assignment::new(),
            emptied_at_ms: now_ms,
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
    }

    /// What the assignor wants `member_id` to own (empty for a member it has not placed).
    pub fn target_of(&self, member_id: &str) -> BTreeSet<TopicPartition> {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    pub fn is_stable(&self) -> bool {
        self.members.values().all(|m| {
            m.revoking.is_empty()
                && self
                    .target
                    .get(&m.id)
                    .is_some_and(|t| t.len() == m.assigned.len() && t.iter().all(|tp| m.assigned.contains_key(tp)))
        })
    }

    pub fn add_member(&mut self, member: Member, partition_counts: BTreeMap<String, u32>) {
        self.emptied_at_ms = 0;
        self.members.insert(member.id.clone(), member);
        self.rebalance(partition_counts);
    }

    /// Removes a member and frees everything it owned at once. Returns whether it was there.
    pub fn remove_member(&mut self, member_id: &str, partition_counts: BTreeMap<String, u32>, now_ms: i64) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        if self.members.is_empty() {
            self.emptied_at_ms = now_ms;
        }
        self.rebalance(partition_counts);
        true
    }

    /// A static member's new incarnation takes the old one's place (KIP-848, `consumer/static_member.rs`): it
    /// owns what the old one was granted and is headed for the same target, so no other member's assignment
    /// moves and there is no new generation. What the old one was still giving up is free at once: no process
    /// reads it any more. Returns whether `old_id` was there.
    pub fn replace_member(&mut self, old_id: &str, mut member: Member) -> bool {
        let Some(old) = self.members.remove(old_id) else { return false };
        member.assigned = old.assigned;
        member.member_generation = old.member_generation;
        member.acked_generation = old.acked_generation;
        if let Some(target) = self.target.remove(old_id) {
            self.target.insert(member.id.clone(), target);
        }
        self.members.insert(member.id.clone(), member);
        self.reconcile();
        true
    }

    /// A member changed its subscription: a new generation, whose target follows the new topics.
    pub fn resubscribe(&mut self, member_id: &str, topics: BTreeSet<String>, partition_counts: BTreeMap<String, u32>) {
        let Some(member) = self.members.get_mut(member_id) else { return };
        member.topics = topics;
        self.rebalance(partition_counts);
    }

    /// Recomputes the target if a subscribed topic appeared, vanished or grew.
    pub fn refresh(&mut self, partition_counts: BTreeMap<String, u32>) {
        if partition_counts != self.partition_counts && !self.members.is_empty() {
            self.rebalance(partition_counts);
        }
    }

    /// The member applied the assignment of `generation`: partitions it was asked to give up by then are free.
    pub fn acknowledge(&mut self, member_id: &str, generation: i32) -> bool {
        let Some(member) = self.members.get_mut(member_id) else { return false };
        // A member cannot have applied an assignment it was never sent.
        let generation = generation.min(member.member_generation);
        member.acked_generation = member.acked_generation.max(generation);
        let before = member.revoking.len();
        member.revoking.retain(|_, r| r.revoked_at > generation);
        if member.revoking.len() != before {
            self.reconcile();
        }
        true
    }

    /// A new generation: a new target from the assignor, then move towards it.
    fn rebalance(&mut self, partition_counts: BTreeMap<String, u32>) {
        self.generation = self.generation.wrapping_add(1).max(1);
        self.partition_counts = partition_counts;
        let subscriptions: BTreeMap<String, BTreeSet<String>> =
            self.members.values().map(|m| (m.id.clone(), m.topics.clone())).collect();
        self.target = self.assignor.assign(&subscriptions, &self.partition_counts, &self.target);
        self.reconcile();
    }

    /// Revokes what each member should not have, then grants each wanted partition nobody else owns; sends
    /// every member whose assignment changed its new one.
    fn reconcile(&mut self) {
        let generation = self.generation;
        let mut changed = BTreeSet::new();
        let no_target = BTreeSet::new();
        for member in self.members.values_mut() {
            let wanted = self.target.get(&member.id).unwrap_or(&no_target);
            let dropped: Vec<TopicPartition> =
                member.assigned.keys().filter(|tp| !wanted.contains(*tp)).cloned().collect();
            // A static member that left reads nothing, so what is taken from it is free at once.
            let must_release = !member.has_left();
            for tp in dropped {
                let grant = member.assigned.remove(&tp).expect("listed from assigned");
                if must_release {
                    member.revoking.insert(tp, Revocation { assigned_at: grant.assigned_at, revoked_at: generation });
                }
                changed.insert(member.id.clone());
            }
        }
        let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for member in self.members.values() {
            for tp in member.assigned.keys().chain(member.revoking.keys()) {
                owner.insert(tp.clone(), member.id.clone());
            }
        }
        for member in self.members.values_mut() {
            let Some(wanted) = self.target.get(&member.id) else { continue };
            for tp in wanted {
                if member.assigned.contains_key(tp) {
                    continue;
                }
                if let Some(revocation) = member.revoking.remove(tp) {
                    // Taken away and wanted back before the member let go: it never has to stop.
                    member.assigned.insert(tp.clone(), Grant { assigned_at: revocation.assigned_at });
                } else if owner.contains_key(tp) {
                    continue;
                } else {
                    member.assigned.insert(tp.clone(), Grant { assigned_at: generation });
                    owner.insert(tp.clone(), member.id.clone());
                }
                changed.insert(member.id.clone());
            }
        }
        for id in changed {
            let member = self.members.get_mut(&id).expect("changed members exist");
            member.member_generation = generation;
            member.updates.send_replace(MemberView::Assigned(member.view()));
        }
        self.assert_exclusive_ownership();
    }

    fn assert_exclusive_ownership(&self) {
        let mut seen = BTreeSet::new();
        for member in self.members.values() {
            for tp in member.assigned.keys().chain(member.revoking.keys()) {
                assert!(seen.insert(tp), "group {:?}: partition {tp:?} owned twice", self.name);
            }
        }
    }
}

/// What the groups' unit tests build members with, here and in `groups/mod.rs`.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    /// A member subscribed to `topics` that has been assigned nothing yet, and the receiver of what it is told.
    pub fn member(id: &str, topics: &[&str]) -> (Member, watch::Receiver<MemberView>) {
        let (updates, rx) = watch::channel(MemberView::Left);
        let member = Member {
            id: id.into(),
            client_id: String::new(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 1000,
            assigned: BTreeMap::new(),
            revoking: BTreeMap::new(),
            member_generation: -1,
            acked_generation: -1,
            updates,
            consumer: None,
        };
        (member, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::member;
    use super::*;

    fn counts(n: u32) -> BTreeMap<String, u32> {
        [("t".to_string(), n)].into()
    }

    fn assigned(group: &Group, id: &str) -> Vec<u32> {
        group.members[id].assigned.keys().map(|tp| tp.partition).collect()
    }

    fn latest(rx: &watch::Receiver<MemberView>) -> (i32, Vec<u32>) {
        match &*rx.borrow() {
            MemberView::Assigned(a) => (a.generation, a.assigned.iter().flat_map(|t| t.partitions.clone()).collect()),
            other => panic!("no assignment: {other:?}"),
        }
    }

    #[test]
    fn a_moving_partition_is_granted_only_after_its_owner_acknowledges_giving_it_up() {
        let mut group = Group::new("g".into(), Assignor::Sticky, 0);
        let (a, a_rx) = member("a", &["t"]);
        group.add_member(a, counts(4));
        assert_eq!(latest(&a_rx), (1, vec![0, 1, 2, 3]));
        let (b, b_rx) = member("b", &["t"]);
        group.add_member(b, counts(4));
        assert_eq!(group.generation, 2);
        // a is asked to give up two partitions; b gets nothing until a acknowledges.
        assert_eq!(latest(&a_rx).1.len(), 2);
        assert_eq!(group.members["a"].revoking.len(), 2);
        assert!(assigned(&group, "b").is_empty());
        assert!(!group.is_stable());
        group.acknowledge("a", 1);
        assert!(assigned(&group, "b").is_empty(), "an ack of an older generation frees nothing");
        group.acknowledge("a", 2);
        assert_eq!(assigned(&group, "b").len(), 2);
        assert_eq!(latest(&b_rx).0, 2);
        assert!(group.is_stable());
    }

    #[test]
    fn a_removed_member_frees_its_partitions_at_once_even_while_revoking() {
        let mut group = Group::new("g".into(), Assignor::Sticky, 0);
        let (a, _a_rx) = member("a", &["t"]);
        group.add_member(a, counts(4));
        let (b, _b_rx) = member("b", &["t"]);
        group.add_member(b, counts(4));
        assert!(group.remove_member("a", counts(4), 5));
        assert_eq!(assigned(&group, "b"), vec![0, 1, 2, 3]);
        assert!(group.is_stable());
        assert!(group.remove_member("b", counts(4), 9));
        assert_eq!(group.emptied_at_ms, 9);
        assert!(!group.remove_member("b", counts(4), 10), "removing twice is harmless");
    }

    #[test]
    fn new_partitions_and_new_topics_are_picked_up_by_a_refresh() {
        let mut group = Group::new("g".into(), Assignor::RoundRobin, 0);
        let (a, _a) = member("a", &["t", "later"]);
        group.add_member(a, counts(1));
        let (b, _b) = member("b", &["t"]);
        group.add_member(b, counts(1));
        group.acknowledge("a", group.generation);
        let generation = group.generation;
        group.refresh(counts(1));
        assert_eq!(group.generation, generation, "no change, no new generation");
        group.refresh([("t".to_string(), 3), ("later".to_string(), 2)].into());
        assert_eq!(group.generation, generation + 1);
        for id in ["a", "b"] {
            let acked = group.members[id].member_generation;
            group.acknowledge(id, acked);
        }
        let total: usize = group.members.values().map(|m| m.assigned.len()).sum();
        assert_eq!(total, 5);
        assert!(group.members["b"].assigned.keys().all(|tp| tp.topic == "t"));
    }

    #[test]
    fn no_partition_is_ever_owned_twice_under_random_churn() {
        // A deterministic pseudo-random walk of joins, leaves, acks and topic growth; reconcile asserts the
        // invariant after every step, and at the end, with everyone acknowledged, the target is reached.
        let mut group = Group::new("g".into(), Assignor::Sticky, 0);
        let mut receivers = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut partitions = 6;
        for step in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ids: Vec<String> = group.members.keys().cloned().collect();
            match seed % 7 {
                0 | 1 if ids.len() < 8 => {
                    let id = format!("m{step}");
                    let (m, rx) = member(&id, &["t"]);
                    receivers.insert(id, rx);
                    group.add_member(m, counts(partitions));
                }
                2 if !ids.is_empty() => {
                    let id = &ids[(seed >> 8) as usize % ids.len()];
                    group.remove_member(id, counts(partitions), step);
                }
                3 if partitions < 40 => {
                    partitions += 1;
                    group.refresh(counts(partitions));
                }
                _ if !ids.is_empty() => {
                    let id = &ids[(seed >> 8) as usize % ids.len()];
                    let generation = group.members[id].member_generation;
                    group.acknowledge(id, generation);
                }
                _ => {}
            }
        }
        for _ in 0..3 {
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let generation = group.members[&id].member_generation;
                group.acknowledge(&id, generation);
            }
        }
        assert!(group.is_stable());
        if !group.members.is_empty() {
            let total: usize = group.members.values().map(|m| m.assigned.len()).sum();
            assert_eq!(total, partitions as usize);
        }
    }
}
