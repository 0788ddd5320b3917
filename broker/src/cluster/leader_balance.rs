//! Preferred leader election carried out by the controller leader: on demand (`ElectLeaders`, `rill cluster
//! elect-leaders`) and, unless `auto_leader_rebalance_enable` is off, every
//! `leader_imbalance_check_interval_ms` from the keeper. Either way it is ONE
//! [`Command::ElectPreferredLeaders`] for all the partitions that move, and none when nothing may move.
//!
//! What it does to in-flight produce: the old leader stops leading at the new epoch; an ACKS_ALL produce it
//! was waiting on fails with `not-leader` and the client retries on the new leader (an idempotent producer
//! without a duplicate). The new leader is in the ISR, so it holds every acknowledged record.

use std::time::Duration;

use tokio::time::Instant;

use super::metadata::Command;
use super::preferred_leaders::{self, ElectionScope, LeaderMove, NotMoved};
use super::Controller;
use crate::error::BrokerError;

/// What an on-demand election did.
pub struct LeadersElected {
    /// The partitions whose preferred replica leads now, with the epoch it leads at.
    pub moved: Vec<(LeaderMove, u32)>,
    /// The partitions in scope not led by their preferred replica that stay so, and why.
    pub not_moved: Vec<NotMoved>,
}

/// When the keeper next checks the balance; pushed back a whole interval whenever this node is not the leader,
/// so a new controller leader waits an interval before its first check, as Kafka's does.
pub(super) struct BalanceSchedule {
    interval: Duration,
    next_check: Instant,
}

impl BalanceSchedule {
    pub(super) fn new(interval: Duration, now: Instant) -> Self {
        Self { interval, next_check: now + interval }
    }

    pub(super) fn not_leading(&mut self, now: Instant) {
        self.next_check = now + self.interval;
    }

    /// Whether a check is due now (and, if so, schedules the next one).
    pub(super) fn is_due(&mut self, now: Instant) -> bool {
        if now < self.next_check {
            return false;
        }
        self.next_check = now + self.interval;
        true
    }
}

impl Controller {
    /// On the controller leader: hands the partitions in `scope` back to their preferred replicas where they
    /// may lead now.
    pub(crate) async fn elect_preferred_leaders(
        &self,
        scope: ElectionScope<'_>,
    ) -> Result<LeadersElected, BrokerError> {
        let plan = preferred_leaders::plan_election(&self.metadata(), scope)?;
        let moved = self.commit_election(plan.moves).await?;
        Ok(LeadersElected { moved, not_moved: plan.not_moved })
    }

    /// From the keeper, on the leader: one election for the out-of-balance nodes' partitions, if any.
    pub(super) async fn balance_leaders(&self) {
        let threshold = self.config.leader_imbalance_per_broker_percentage;
        let moves = preferred_leaders::plan_rebalance(&self.metadata(), threshold);
        if moves.is_empty() {
            return;
        }
        match self.commit_election(moves).await {
            Ok(moved) => tracing::info!(partitions = moved.len(), "leaderships handed back to preferred replicas"),
            Err(err) => tracing::info!(error = %err, "preferred leader election not committed; next check retries"),
        }
    }

    /// Commits the moves as one command; returns those that took effect (the metadata may have changed since
    /// they were planned), each with its new epoch.
    async fn commit_election(&self, moves: Vec<LeaderMove>) -> Result<Vec<(LeaderMove, u32)>, BrokerError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let partitions = moves.iter().map(|m| (m.topic.clone(), m.partition)).collect();
        self.commit(Command::ElectPreferredLeaders { partitions }).await?;
        let after = self.metadata();
        Ok(moves
            .into_iter()
            .filter_map(|m| {
                let p = after.partition(&m.topic, m.partition)?;
                (p.leader == Some(m.to)).then_some(p.leader_epoch).map(|epoch| (m, epoch))
            })
            .collect())
    }
}
