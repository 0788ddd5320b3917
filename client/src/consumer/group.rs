//! A consumer in a group: [`Consumer::subscribe`] joins, and every `poll` first applies the broker's latest
//! assignment: it commits and stops reading the partitions taken away (at-least-once: nothing handed out is
//! given up uncommitted), starts reading the new ones from the group's committed offsets, tells the
//! application through its rebalance listener, and only then acknowledges the assignment, which is what lets
//! the broker hand the given-up partitions to their next owner.
//!
//! Applying is idempotent (it works from the difference between the assignment and the partitions the consumer
//! reads), so a `poll` cancelled half-way simply finishes the job on the next call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Consumer, Key};
use crate::admin::commit_offsets;
use crate::error::{Error, Result};
use crate::membership::{failure, JoinSettings, Membership};

/// A change of the partitions a subscribed consumer reads, reported to [`Consumer::on_rebalance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// The consumer now reads these partitions (from the group's committed offsets), under `generation`.
    Assigned { generation: i32, partitions: Vec<(String, u32)> },
    /// The consumer gave these partitions up: their positions were committed first (unless the commit failed,
    /// which is logged), and no record of theirs is handed out any more.
    Revoked { generation: i32, partitions: Vec<(String, u32)> },
    /// The membership was lost (the broker removed the member, or the connection broke), so these partitions
    /// were dropped without a commit: they may already belong to another member. The consumer rejoins.
    Lost { partitions: Vec<(String, u32)> },
}

/// What a subscribed consumer has applied: its membership incarnation, member id and generation.
#[derive(Debug, Clone, Default)]
pub(super) struct AppliedAssignment {
    pub incarnation: u64,
    pub member_id: String,
    pub generation: i32,
}

/// Heartbeats go out at a third of the session timeout; below this they would be a busy loop.
const MIN_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3);

pub(super) type RebalanceListener = Box<dyn FnMut(&RebalanceEvent) + Send>;

impl Consumer {
    /// Joins consumer group `group` subscribed to `topics`: from now on the broker decides which of their
    /// partitions this consumer reads, and `poll` follows its decisions. Partitions of topics created or grown
    /// later are picked up. Positions are committed with the member's id and generation (on
    /// `auto_commit_interval`, on [`Consumer::commit`], and always before a partition is given up).
    ///
    /// Keep calling `poll`: heartbeats go out from a background task, but a partition the broker moves away
    /// from this consumer is handed over only when a `poll` has committed and dropped it.
    ///
    /// Refused if the consumer is already subscribed, reads partitions assigned by hand, or was built with
    /// another `group_id`.
    pub fn subscribe(&mut self, group: &str, topics: &[&str]) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidUse { message });
        if let Some(membership) = &self.membership {
            return invalid(format!("already subscribed to group {:?}; unsubscribe first", membership.group));
        }
        if !self.cursors.is_empty() {
            return invalid("this consumer reads partitions assigned by hand; unassign them first".into());
        }
        if topics.is_empty() {
            return invalid("subscribe to at least one topic".into());
        }
        if self.config.session_timeout < MIN_SESSION_TIMEOUT {
            return invalid(format!("session_timeout must be at least {MIN_SESSION_TIMEOUT:?}"));
        }
        match &self.config.group_id {
            Some(configured) if configured != group => {
                return invalid(format!("this consumer was built for group {configured:?}, not {group:?}"));
            }
            _ => self.config.group_id = Some(group.to_owned()),
        }
        let settings = JoinSettings {
            group: group.to_owned(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            assignor: self.config.group_assignor,
            session_timeout: self.config.session_timeout,
            client_id: self.config.client_id.clone(),
            retry_backoff: self.config.retry_backoff,
        };
        self.membership = Some(Membership::start(self.client.clone(), settings));
        self.group_applied = AppliedAssignment::default();
        Ok(())
    }

    /// Commits the positions of every partition, stops reading them and leaves the group (its partitions go
    /// to the other members at once). Dropping the consumer also leaves, without the commit.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        if self.membership.is_none() {
            return Ok(());
        }
        let keys: Vec<Key> = self.cursors.keys().cloned().collect();
        let committed = self.commit_keys(&keys).await;
        self.drop_partitions(&keys);
        let generation = self.group_applied.generation;
        self.notify(RebalanceEvent::Revoked { generation, partitions: names(&keys) });
        self.membership = None;
        self.group_applied = AppliedAssignment::default();
        committed
    }

    /// Calls `listener` on every change of the partitions this subscribed consumer reads, from inside `poll`
    /// (so never concurrently with the application's processing of records).
    pub fn on_rebalance(&mut self, listener: impl FnMut(&RebalanceEvent) + Send + 'static) {
        self.rebalance_listener = Some(Box::new(listener));
    }

    /// The member id and generation of the latest assignment this consumer applied; `None` if not subscribed
    /// or not yet a member.
    pub fn group_member(&self) -> Option<(String, i32)> {
        let applied = &self.group_applied;
        (self.membership.is_some() && !applied.member_id.is_empty())
            .then(|| (applied.member_id.clone(), applied.generation))
    }

    /// The id and generation a commit carries: the member's when subscribed, a standalone committer's if not.
    pub(super) fn commit_identity(&self) -> (String, i32) {
        match &self.membership {
            Some(_) => (self.group_applied.member_id.clone(), self.group_applied.generation),
            None => (String::new(), -1),
        }
    }

    /// Applies the broker's latest assignment if the consumer has not yet (see the module docs).
    pub(super) async fn apply_assignment(&mut self) -> Result<()> {
        let Some(membership) = &mut self.membership else { return Ok(()) };
        let state = membership.state.borrow_and_update().clone();
        failure(&state)?;
        if state.incarnation != self.group_applied.incarnation || state.assignment.is_none() {
            // A new incarnation is a new member: whatever the old one read is lost, not revoked.
            let lost: Vec<Key> = self.cursors.keys().cloned().collect();
            if !lost.is_empty() {
                self.drop_partitions(&lost);
                self.notify(RebalanceEvent::Lost { partitions: names(&lost) });
            }
            self.group_applied = AppliedAssignment { incarnation: state.incarnation, ..AppliedAssignment::default() };
        }
        let Some(assignment) = state.assignment else { return Ok(()) };
        let wanted: BTreeSet<(String, u32)> = assignment.partitions;
        let revoked: Vec<Key> =
            self.cursors.keys().filter(|(t, p)| !wanted.contains(&(t.to_string(), *p))).cloned().collect();
        if !revoked.is_empty() {
            if let Err(error) = self.commit_keys(&revoked).await {
                // Giving the partitions up anyway is still at-least-once: their next owner re-reads from the
                // last commit that did land.
                tracing::warn!(%error, "committing partitions before giving them up failed");
            }
            self.drop_partitions(&revoked);
            let generation = self.group_applied.generation;
            self.notify(RebalanceEvent::Revoked { generation, partitions: names(&revoked) });
        }
        let mut added: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (topic, partition) in &wanted {
            if !self.cursors.contains_key(&(Arc::from(topic.as_str()), *partition)) {
                added.entry(topic.clone()).or_default().push(*partition);
            }
        }
        for (topic, partitions) in &added {
            self.add_partitions(topic, partitions).await?;
        }
        self.group_applied = AppliedAssignment {
            incarnation: state.incarnation,
            member_id: assignment.member_id,
            generation: assignment.generation,
        };
        if !added.is_empty() {
            let partitions =
                added.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect();
            self.notify(RebalanceEvent::Assigned { generation: assignment.generation, partitions });
        }
        if let Some(membership) = &self.membership {
            membership.applied.send_replace((state.incarnation, assignment.generation));
        }
        Ok(())
    }

    /// Waits until the membership task publishes something new. An error if the subscription failed for good.
    pub(super) async fn wait_for_assignment_change(
        updates: &mut tokio::sync::watch::Receiver<crate::membership::MemberState>,
    ) -> Result<()> {
        if updates.changed().await.is_err() {
            failure(&updates.borrow())?;
            return Err(Error::Unavailable { message: "the group membership task ended".into() });
        }
        Ok(())
    }

    /// Commits the positions of `keys` as the group (member or standalone).
    pub(super) async fn commit_keys(&mut self, keys: &[Key]) -> Result<()> {
        let group = self.config.group_id.as_deref().ok_or(Error::NoGroup)?;
        let offsets: Vec<(&str, u32, i64)> = keys
            .iter()
            .filter_map(|key| self.cursors.get(key).map(|cursor| (&*key.0, key.1, cursor.position)))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = self.commit_identity();
        let timeout = self.client.config().request_timeout;
        commit_offsets(&self.client, group, &member_id, generation, offsets.into_iter(), timeout).await
    }

    fn drop_partitions(&mut self, keys: &[Key]) {
        for (topic, partition) in keys {
            self.unassign_one(topic, *partition);
        }
    }

    fn notify(&mut self, event: RebalanceEvent) {
        tracing::info!(?event, "rebalance");
        if let Some(listener) = &mut self.rebalance_listener {
            listener(&event);
        }
    }
}

fn names(keys: &[Key]) -> Vec<(String, u32)> {
    let mut names: Vec<(String, u32)> = keys.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Client, ClientConfig, Consumer, ConsumerConfig, Error};

    #[tokio::test]
    async fn subscribe_refuses_what_cannot_work_before_joining() {
        let client = Client::connect_lazy("127.0.0.1:9", ClientConfig::default()).expect("valid address");
        let config = ConsumerConfig { session_timeout: Duration::ZERO, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config).expect("valid config");
        assert!(matches!(consumer.subscribe("g", &["t"]), Err(Error::InvalidUse { .. })));
        let config = ConsumerConfig { group_id: Some("other".into()), ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client, config).expect("valid config");
        assert!(matches!(consumer.subscribe("g", &[]), Err(Error::InvalidUse { .. })));
        assert!(matches!(consumer.subscribe("g", &["t"]), Err(Error::InvalidUse { .. })), "another group");
        consumer.subscribe("other", &["t"]).expect("the configured group");
        assert!(matches!(consumer.subscribe("other", &["t"]), Err(Error::InvalidUse { .. })), "twice");
        assert!(matches!(consumer.assign("t", &[0]).await, Err(Error::InvalidUse { .. })), "assign by hand");
        assert!(consumer.group_member().is_none(), "not a member before the broker answers");
    }
}
