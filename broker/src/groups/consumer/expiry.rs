//! The ends of a KIP-848 member's session that no heartbeat brings: a timer task per member removes it when its
//! session passes without a heartbeat (a static member that left with epoch -2 included: that frees its
//! partitions), or when it still holds partitions it was told to revoke past its rebalance timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::time::Instant;

use super::ConsumerMember;
use crate::groups::group::{Group, Member};
use crate::groups::{partition_counts_of, GroupCoordinator};
use crate::node::{now_ms, Node};

impl GroupCoordinator {
    /// Removes the member if this incarnation's session passed without a heartbeat. Returns the next deadline
    /// to look again at, or `None` once the incarnation is gone (removed now, left, or replaced).
    pub fn expire_consumer(
        &self,
        group_id: &str,
        member_id: &str,
        incarnation: u64,
        now: Instant,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> Option<Instant> {
        let deadline_of = |_: &Member, state: &ConsumerMember| Some(state.session_deadline);
        let why = "KIP-848 member's session expired; removed";
        self.expire_member(group_id, member_id, incarnation, now, partition_counts, deadline_of, why)
    }

    /// Removes the member if this incarnation still holds partitions it was told to revoke past its rebalance
    /// timeout. Returns the deadline to look again at, or `None` once there is nothing left to watch.
    pub fn expire_revocation(
        &self,
        group_id: &str,
        member_id: &str,
        incarnation: u64,
        now: Instant,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
    ) -> Option<Instant> {
        let deadline_of =
            |member: &Member, state: &ConsumerMember| state.revocation_deadline.filter(|_| !member.revoking.is_empty());
        let why = "KIP-848 member kept partitions it was told to revoke past its rebalance timeout; removed";
        self.expire_member(group_id, member_id, incarnation, now, partition_counts, deadline_of, why)
    }

    /// Removes this incarnation of the member once `deadline_of` it has passed, logging `why`. Returns the
    /// deadline to look again at, or `None` once there is nothing left to watch (removed now, gone, or no
    /// deadline). Partition counts are read before the group lock, so the deadline is looked at again under it.
    #[allow(clippy::too_many_arguments)]
    fn expire_member(
        &self,
        group_id: &str,
        member_id: &str,
        incarnation: u64,
        now: Instant,
        partition_counts: impl Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
        deadline_of: impl Fn(&Member, &ConsumerMember) -> Option<Instant>,
        why: &str,
    ) -> Option<Instant> {
        let current_deadline = |groups: &BTreeMap<String, Group>| {
            let member = groups.get(group_id)?.members.get(member_id)?;
            let state = member.consumer.as_ref().filter(|state| state.incarnation == incarnation)?;
            deadline_of(member, state)
        };
        let deadline = current_deadline(&self.lock())?;
        if deadline > now {
            return Some(deadline);
        }
        let topics = self.lock().get(group_id).map(Group::subscribed_topics).unwrap_or_default();
        let counts = partition_counts(&topics);
        let mut groups = self.lock();
        // A heartbeat may have come in between the two looks.
        let deadline = current_deadline(&groups)?;
        if deadline > now {
            return Some(deadline);
        }
        groups.get_mut(group_id)?.remove_member(member_id, counts, now_ms());
        tracing::info!(group = %group_id, member = %member_id, "{why}");
        None
    }
}

/// Keeps a KIP-848 member's session: sleeps until its deadline, looks again, and removes it when a whole session
/// passed without a heartbeat. Ends when the member is gone.
pub fn keep_consumer_session(node: Arc<Node>, group: String, member_id: String, incarnation: u64) {
    let first = Instant::now() + node.group_configs.consumer_timing(&group).session_timeout;
    watch_member(node, group, member_id, incarnation, first, |groups, group, member, incarnation, now, counts| {
        groups.expire_consumer(group, member, incarnation, now, counts)
    });
}

/// Removes a KIP-848 member that still holds partitions it was told to revoke at `deadline` (its rebalance
/// timeout). Ends once it let them go, left, or was removed.
pub fn watch_revocation(node: Arc<Node>, group: String, member_id: String, incarnation: u64, deadline: Instant) {
    watch_member(node, group, member_id, incarnation, deadline, |groups, group, member, incarnation, now, counts| {
        groups.expire_revocation(group, member, incarnation, now, counts)
    });
}

type Expire = fn(
    &GroupCoordinator,
    &str,
    &str,
    u64,
    Instant,
    &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, u32>,
) -> Option<Instant>;

/// A timer task: sleeps until `deadline`, asks `expire` to look, and goes on until it says there is nothing left
/// to watch. Nothing polls.
fn watch_member(
    node: Arc<Node>,
    group: String,
    member_id: String,
    incarnation: u64,
    deadline: Instant,
    expire: Expire,
) {
    tokio::spawn(async move {
        let counts = |topics: &BTreeSet<String>| partition_counts_of(&node, topics);
        let mut deadline = deadline;
        loop {
            tokio::time::sleep_until(deadline).await;
            match expire(&node.groups, &group, &member_id, incarnation, Instant::now(), &counts) {
                Some(next) => deadline = next,
                None => return,
            }
        }
    });
}
