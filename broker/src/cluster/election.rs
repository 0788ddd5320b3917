//! A dead controller leader's successor, elected as soon as raft lets the voters vote.
//!
//! On its own timer, a raft follower that stops hearing its leader calls an election only after the leader's
//! lease (`election_timeout_max`, during which every voter refuses votes) and then a random election timeout:
//! 2.5–3 s with the default session. Until a new controller leader is elected nobody fences the dead node, so
//! its partitions wait too. The dead leader's port says sooner that its process is gone, as the keeper's
//! liveness probe does for any node (`liveness.rs`): once a voter has not heard the leader for a probe's delay,
//! it connects to the leader's address; refused, it calls an election itself as soon as the other voters' leases
//! on the old leader have run out, instead of waiting out its random timeout too.
//!
//! The survivors call in the order of their node ids, a stagger apart, each once, so two of them do not split
//! the vote: the first as soon as the lease is over; the next, if no leader is known by its turn (the first's
//! log was behind, or a voter's lease was not over yet), at a term past the first's, so the vote the first gave
//! itself does not refuse it. Past the last turn raft's own timers go on. Calling again and again would not
//! help: a survivor whose log is behind cannot win, and each of its calls would raise the term that the one
//! that can must beat (seen: 4.9 s for a stop whose survivors called five times each).
//!
//! Invariant: this only ever calls an election, which raft keeps safe whoever calls it: at most one leader per
//! term, and only a voter with every committed entry wins. It calls one only while the leader it follows refuses
//! connections and has not been heard since; a leader heard again, or a new one known, ends the calls.

use std::sync::Weak;
use std::time::Duration;

use openraft::{BasicNode, RaftMetrics};
use tokio::sync::watch;
use tokio::time::Instant;

use super::liveness::{self, Probe};
use super::{Controller, NodeId};

/// Past a voter's lease on the old leader before this node calls: the voters heard the old leader's last
/// heartbeat a little apart.
const LEASE_MARGIN: Duration = Duration::from_millis(25);
/// Between two survivors' calls: longer than an election's round trip, so the next survivor sees its outcome (a
/// leader) instead of splitting the vote, and than the usual skew between the survivors' clocks of when they
/// last heard the old leader (a raft heartbeat, or a lagging survivor's last AppendEntries: 100 ms seen).
const STAGGER: Duration = Duration::from_millis(250);

/// The controller leader this voter follows and has stopped hearing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Silent {
    leader_id: NodeId,
    address: String,
    last_heard: Instant,
}

/// When the voter ranked `rank` (0 first) among the survivors of a leader last heard at `last_heard` calls its
/// first election: every voter's lease over, then its turn.
fn first_call(last_heard: Instant, lease: Duration, rank: usize) -> Instant {
    last_heard + lease + LEASE_MARGIN + STAGGER * rank as u32
}

/// How many elections in a row the survivor ranked `rank` starts, each one term past the one before: so its
/// candidacy is at a later term than any an earlier survivor took, and a vote that earlier survivor gave itself
/// (its call lost: its log was behind, or a voter's lease not over yet) never refuses this one.
fn rounds_in_a_row(rank: usize) -> u32 {
    u32::try_from(rank).unwrap_or(u32::MAX - 1) + 1
}

/// This node's place among the voters other than `dead_leader`, lowest id first; `None` if it is no voter.
fn rank(voters: impl Iterator<Item = NodeId>, own: NodeId, dead_leader: NodeId) -> Option<(usize, usize)> {
    let mut survivors: Vec<NodeId> = voters.filter(|id| *id != dead_leader).collect();
    survivors.sort_unstable();
    survivors.dedup();
    survivors.iter().position(|id| *id == own).map(|rank| (rank, survivors.len()))
}

/// The leader this node follows as a voter, with its address: `None` for a leader, a learner, or a node that
/// knows no leader (raft's own timer runs then).
fn followed_leader(metrics: &RaftMetrics<NodeId, BasicNode>, own: NodeId) -> Option<(NodeId, String)> {
    let leader_id = metrics.current_leader.filter(|id| *id != own)?;
    let membership = metrics.membership_config.membership();
    if !membership.voter_ids().any(|id| id == own) {
        return None;
    }
    membership.get_node(&leader_id).map(|node| (leader_id, node.addr.clone()))
}

/// Whether a leader other than `dead_leader` is known (this node, or one it heard).
fn has_successor(metrics: &RaftMetrics<NodeId, BasicNode>, dead_leader: NodeId) -> bool {
    metrics.current_leader.is_some_and(|id| id != dead_leader)
}

/// Runs on every node of a cluster until its raft stops or the controller is dropped.
pub async fn watch(controller: Weak<Controller>, mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>) {
    let Some((interval, lease)) = controller.upgrade().and_then(|c| {
        let config = &c.config;
        let (raft_heartbeat_ms, _, election_max_ms) =
            super::raft_timing(Duration::from_millis(config.node_session_timeout_ms));
        let interval = Duration::from_millis(config.node_heartbeat_interval_ms.max(raft_heartbeat_ms));
        config.node_liveness_probe.then_some((interval, Duration::from_millis(election_max_ms)))
    }) else {
        return;
    };
    let probe_after = liveness::probe_after(interval);
    loop {
        let Some(silent) = next_silent(&controller, &mut metrics, probe_after).await else { return };
        if liveness::probe(&silent.address, interval).await != Probe::Refused {
            // Alive as far as its port says (hung, or only slow): raft's timers decide. Look again later.
            if !sleep_or_stop(&mut metrics, interval).await {
                return;
            }
            continue;
        }
        // Then a pause, so a leader that stays silent and refusing is not probed in a loop.
        if !call_elections(&controller, &mut metrics, &silent, lease).await
            || !sleep_or_stop(&mut metrics, interval).await
        {
            return;
        }
    }
}

/// Waits until this voter has not heard the leader it follows for `probe_after`; `None` once raft stops.
async fn next_silent(
    controller: &Weak<Controller>,
    metrics: &mut watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    probe_after: Duration,
) -> Option<Silent> {
    // A leader this process has not heard at all (it learned it from its own stored vote) counts from when
    // this process first saw it followed. One it has heard counts from then, even if a probe of it found its
    // port still open meanwhile (a node stopping gracefully serves until it exits): the lease at the other
    // voters runs from their last message too.
    let mut first_seen: Option<(NodeId, Instant)> = None;
    loop {
        let followed = {
            let controller = controller.upgrade()?;
            let snapshot = metrics.borrow_and_update();
            followed_leader(&snapshot, controller.node_id).map(|(leader_id, address)| {
                let seen = match first_seen {
                    Some((id, at)) if id == leader_id => at,
                    _ => Instant::now(),
                };
                first_seen = Some((leader_id, seen));
                let last_heard = controller.raft_contact.last_heard(leader_id).unwrap_or(seen);
                Silent { leader_id, address, last_heard }
            })
        };
        let Some(silent) = followed else {
            first_seen = None;
            metrics.changed().await.ok()?;
            continue;
        };
        let due = silent.last_heard + probe_after;
        if Instant::now() >= due {
            return Some(silent);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            changed = metrics.changed() => changed.ok()?,
        }
    }
}

/// Calls the election in this node's turn, unless a leader other than `silent`'s is known by then or `silent`'s
/// leader has been heard again. False once raft stops.
async fn call_elections(
    controller: &Weak<Controller>,
    metrics: &mut watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    silent: &Silent,
    lease: Duration,
) -> bool {
    let Some((own, voters)) = controller.upgrade().map(|c| {
        let snapshot = metrics.borrow();
        (c.node_id, snapshot.membership_config.membership().voter_ids().collect::<Vec<_>>())
    }) else {
        return false;
    };
    let Some((rank, _)) = rank(voters.into_iter(), own, silent.leader_id) else { return true };
    let at = first_call(silent.last_heard, lease, rank);
    loop {
        if has_successor(&metrics.borrow_and_update(), silent.leader_id) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at) => break,
            changed = metrics.changed() => if changed.is_err() { return false },
        }
    }
    let Some(controller) = controller.upgrade() else { return false };
    if controller.raft_contact.last_heard(silent.leader_id).is_some_and(|heard| heard > silent.last_heard) {
        return true;
    }
    let term = metrics.borrow().current_term;
    let rounds = rounds_in_a_row(rank);
    tracing::warn!(
        leader_id = silent.leader_id,
        address = %silent.address,
        term = term + u64::from(rounds),
        "the controller leader's address refuses connections; calling an election"
    );
    controller.elections_called.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for _ in 0..rounds {
        if controller.raft.trigger().elect().await.is_err() {
            return false;
        }
    }
    true
}

/// Sleeps `duration`; false if raft stopped meanwhile.
async fn sleep_or_stop(metrics: &mut watch::Receiver<RaftMetrics<NodeId, BasicNode>>, duration: Duration) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return true,
            changed = metrics.changed() => if changed.is_err() { return false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivors_rank_by_node_id_without_the_dead_leader() {
        assert_eq!(rank([3, 1, 2].into_iter(), 1, 2), Some((0, 2)));
        assert_eq!(rank([3, 1, 2].into_iter(), 3, 2), Some((1, 2)));
        assert_eq!(rank([1, 2, 3, 4, 5].into_iter(), 5, 1), Some((3, 4)));
        assert_eq!(rank([1, 2, 3].into_iter(), 4, 1), None, "a learner calls no election");
        assert_eq!(rank([1, 2].into_iter(), 2, 1), Some((0, 1)));
    }

    #[test]
    fn the_first_call_waits_for_every_lease_then_takes_its_turn() {
        let heard = Instant::now();
        let lease = Duration::from_millis(1500);
        assert_eq!(first_call(heard, lease, 0), heard + lease + LEASE_MARGIN);
        assert_eq!(first_call(heard, lease, 2) - first_call(heard, lease, 1), STAGGER);
        assert!(first_call(heard, lease, 0) > heard + lease, "no call inside the lease: every vote would be refused");
    }

    #[test]
    fn a_later_survivor_stands_at_a_later_term_than_every_earlier_one() {
        assert_eq!(rounds_in_a_row(0), 1);
        assert_eq!(rounds_in_a_row(1), 2);
        assert_eq!(rounds_in_a_row(3), 4);
    }

    fn metrics(
        own: NodeId,
        leader: Option<NodeId>,
        voters: &[NodeId],
        learners: &[NodeId],
    ) -> RaftMetrics<NodeId, BasicNode> {
        let nodes = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, BasicNode { addr: format!("127.0.0.1:{}", 9000 + id) }))
            .collect::<std::collections::BTreeMap<_, _>>();
        let membership = openraft::Membership::new(vec![voters.iter().copied().collect()], nodes);
        let mut metrics = RaftMetrics::new_initial(own);
        metrics.current_leader = leader;
        metrics.membership_config = std::sync::Arc::new(openraft::StoredMembership::new(None, membership));
        metrics
    }

    #[test]
    fn only_a_voter_following_another_node_watches_its_leader() {
        let followed = followed_leader(&metrics(1, Some(2), &[1, 2, 3], &[]), 1);
        assert_eq!(followed, Some((2, "127.0.0.1:9002".to_owned())));
        assert_eq!(followed_leader(&metrics(2, Some(2), &[1, 2, 3], &[]), 2), None, "the leader itself");
        assert_eq!(followed_leader(&metrics(1, None, &[1, 2, 3], &[]), 1), None, "no leader known");
        assert_eq!(followed_leader(&metrics(4, Some(2), &[1, 2, 3], &[4]), 4), None, "a learner");
    }

    #[test]
    fn a_successor_is_any_known_leader_but_the_dead_one() {
        assert!(!has_successor(&metrics(1, Some(2), &[1, 2, 3], &[]), 2));
        assert!(!has_successor(&metrics(1, None, &[1, 2, 3], &[]), 2), "a candidate knows no leader yet");
        assert!(has_successor(&metrics(1, Some(3), &[1, 2, 3], &[]), 2));
        assert!(has_successor(&metrics(1, Some(1), &[1, 2, 3], &[]), 2), "this node won");
    }
}
