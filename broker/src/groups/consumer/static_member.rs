//! KIP-848's static membership: a member that joins with an instance id (`group.instance.id`) is the same member
//! across restarts of its process, so a rolling restart moves no partition.
//!
//! - A leave with epoch -2 ("temporarily leaving", what a static consumer sends on close) keeps the member in the
//!   group with the partitions it was granted and its place in the target: nobody else is given them. What it was
//!   still giving up is freed at once (it has stopped reading), and so is anything a later rebalance takes from
//!   it (`Group::reconcile`). Its session timer runs on from its last heartbeat; when it expires, the member is
//!   removed and its partitions freed as for any expiry.
//! - A join (epoch 0) with the instance id of a member that left takes its place (`Group::replace_member`): it
//!   owns what the old member was granted, at a new epoch above the old member's, and the old member id is gone.
//!   No other member's assignment moves. While the holder has not left, another member's join is
//!   UNRELEASED_INSTANCE_ID, as in Kafka; the holder itself rejoining with its own member id (after a
//!   FENCED_MEMBER_EPOCH) takes its own place the same way, where Kafka would refuse it until its session expired
//!   (librdkafka treats that refusal as fatal).
//! - A heartbeat or leave naming an instance id that another member holds, or that is not the member's own, is
//!   FENCED_INSTANCE_ID: the old process of a replaced member, or a misconfigured one, cannot act for the new one.
//!   A heartbeat without an instance id is "unchanged since the join", as in KIP-848.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::{arm_revocation, stamp, ConsumerAnswer, ConsumerError, ConsumerHeartbeat};
use crate::groups::group::{Group, Member};
use crate::groups::GroupCoordinator;

/// The member of `group` that holds `instance`, if any (left or not).
pub(super) fn static_holder<'g>(group: &'g Group, instance: &str) -> Option<&'g Member> {
    group.members.values().find(|m| m.consumer.as_ref().and_then(|c| c.instance_id.as_deref()) == Some(instance))
}

/// FENCED_INSTANCE_ID unless the request's instance id (when it names one) is the member's own: held by no other
/// member, and not different from the one the member joined with.
pub(super) fn check_instance(group: Option<&Group>, request: &ConsumerHeartbeat) -> Result<(), ConsumerError> {
    let Some(instance) = request.instance_id.as_deref() else { return Ok(()) };
    let fenced = || ConsumerError::FencedInstance {
        group: request.group.clone(),
        member: request.member_id.clone(),
        instance: instance.to_owned(),
    };
    let Some(group) = group else { return Ok(()) };
    if static_holder(group, instance).is_some_and(|holder| holder.id != request.member_id) {
        return Err(fenced());
    }
    let own_instance = group.members.get(&request.member_id).and_then(|m| m.consumer.as_ref()).map(|c| &c.instance_id);
    match own_instance {
        Some(own) if own.as_deref() != Some(instance) => Err(fenced()),
        _ => Ok(()),
    }
}

/// A static member's leave with epoch -2: it stays, keeping what it was granted, until its session expires or a
/// new member with its instance id replaces it.
pub(super) fn leave_static(group: &mut Group, member_id: &str) {
    let Some(member) = group.members.get_mut(member_id) else { return };
    let Some(state) = member.consumer.as_mut() else { return };
    state.has_left = true;
    state.revocation_deadline = None;
    let generation = member.member_generation;
    // It reads nothing now: what it was giving up is free for the members waiting for it.
    group.acknowledge(member_id, generation);
    let kept = group.members.get(member_id).map_or(0, |m| m.assigned.len());
    tracing::info!(group = %group.name, member = %member_id, kept, "KIP-848 static member left until it rejoins");
}

impl GroupCoordinator {
    /// `member` (a join with `holder_id`'s instance id) takes the place of `holder_id`, which has left or is
    /// the same member rejoining. Its epoch is above any the old member had, so nothing the old process sent can
    /// pass for the new one's.
    pub(super) fn replace_static_member(
        &self,
        group: &mut Group,
        holder_id: &str,
        mut member: Member,
        counts: BTreeMap<String, u32>,
        now: Instant,
    ) -> ConsumerAnswer {
        let member_id = member.id.clone();
        let incarnation = member.consumer.as_ref().map_or(0, |c| c.incarnation);
        let holder = group.members.get(holder_id);
        let old_epoch = holder.and_then(|m| m.consumer.as_ref()).map_or(0, |c| c.epoch);
        // The old member's subscription first, so the target it had still holds; a new one rebalances after.
        let wanted = match holder {
            Some(holder) => std::mem::replace(&mut member.topics, holder.topics.clone()),
            None => member.topics.clone(),
        };
        group.replace_member(holder_id, member);
        if group.members.get(&member_id).is_some_and(|m| m.topics != wanted) {
            group.resubscribe(&member_id, wanted, counts);
        }
        let generation = group.generation;
        let replacement = group.members.get_mut(&member_id).expect("just put in the old member's place");
        let assigned = replacement.assigned.keys().cloned().collect();
        if let Some(state) = replacement.consumer.as_mut() {
            state.epoch = old_epoch.saturating_add(1).max(generation).max(1);
            state.stamped = assigned;
            state.lowest_valid_epoch = state.epoch;
        }
        let epoch = stamp(group, &member_id);
        let revocation_deadline = arm_revocation(group, &member_id, now);
        let member = &group.members[&member_id];
        tracing::info!(group = %group.name, member = %member_id, replaced = %holder_id, epoch,
            kept = member.assigned.len(), "KIP-848 static member rejoined");
        ConsumerAnswer {
            member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: self.consumer_heartbeat_interval_ms(&group.name),
            assignment: Some(member.assigned.keys().cloned().collect()),
            new_session: Some(incarnation),
            revocation_deadline,
        }
    }
}
