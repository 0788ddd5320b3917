//! The keeper, one task per node of a cluster, once every `node_heartbeat_interval_ms` (and at once when the node
//! becomes the controller leader):
//! - every node heartbeats to the controller leader (the leader records its own directly);
//! - the leader turns its in-memory sessions into metadata: the cluster id if none is chosen yet, `Fence` for a
//!   node whose session expired or whose address refuses connections once its heartbeat is overdue
//!   (`liveness.rs`), `MarkAlive` for a node heard again (or for the first time); it also wakes, between
//!   ticks, to probe a node a replication stream from which broke (`Controller::suspect`), here or on another
//!   node, which heartbeats at once to name it (`HeartbeatRequest.suspects`);
//! - every node learns the cluster id from the metadata and records it in `cluster.toml`;
//! - the leader purges the console sessions that have ended (idle or too old) from the metadata, in one
//!   command, when its clock says one has: a write only when there is something to drop;
//! - the leader completes the partition moves recorded in the metadata (`reassignment.rs`), so a new leader
//!   finishes those its predecessor began;
//! - the leader, every `leader_imbalance_check_interval_ms` (unless `auto_leader_rebalance_enable` is off),
//!   hands leaderships back to preferred replicas where leadership is out of balance (`leader_balance.rs`).
//!
//! - every node records the controller membership in `cluster.toml` when it changes, so a restart may name
//!   the current members in `--peers`.
//!
//! A node stops (see [`Controller::failed`]) when the leader says its data dir belongs to another cluster, or
//! when its node id stays held by another running process for two session timeouts, or once it has been
//! removed from the cluster (it sees itself leave the membership, or the leader refuses its heartbeat).

use std::sync::Arc;
use std::time::Duration;

use rill_protocol::internal::controller_client::ControllerClient;
use rill_protocol::internal::HeartbeatRequest;
use tokio::time::Instant;

use super::metadata::{Command, NodeState};
use super::{identity, liveness, Controller, NodeId};
use crate::tls::{channel_to, PeerChannel};

pub async fn run(controller: Arc<Controller>) {
    let interval = Duration::from_millis(controller.config.node_heartbeat_interval_ms);
    let session_timeout = Duration::from_millis(controller.config.node_session_timeout_ms);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeats = Heartbeats { leader: None, refused_since: None };
    let mut was_member = false;
    let mut was_leading = false;
    let mut raft_metrics = controller.raft.metrics();
    let balance_interval = Duration::from_millis(controller.config.leader_imbalance_check_interval_ms);
    let mut balance = super::leader_balance::BalanceSchedule::new(balance_interval, Instant::now());
    loop {
        let turn = next_turn(&controller, &mut tick, &mut raft_metrics, was_leading).await;
        if turn == Turn::Suspects {
            let metrics = controller.raft.metrics().borrow().clone();
            if is_leading(&metrics, controller.node_id) {
                fence_refused(&controller, Vec::new(), interval, session_timeout).await;
            } else if let Some((leader_id, leader_address)) = controller_leader(&metrics) {
                // The leader probes them: tell it now, in a heartbeat of its own.
                heartbeats.send(&controller, leader_id, &leader_address, interval, session_timeout).await;
            }
            continue;
        }
        learn_cluster_id(&controller).await;
        let metrics = controller.raft.metrics().borrow().clone();
        let is_member = metrics.membership_config.nodes().any(|(id, _)| *id == controller.node_id);
        let is_removed = was_member && !is_member || controller.metadata().removed_nodes.contains(&controller.node_id);
        if is_removed && !controller.is_leaving.load(std::sync::atomic::Ordering::SeqCst) {
            controller.fail(super::probe::removed_message(controller.node_id));
            return;
        }
        was_member = is_member;
        if is_member {
            record_members(&controller, &metrics).await;
        }
        let now = Instant::now();
        was_leading = is_leading(&metrics, controller.node_id);
        if was_leading {
            let nodes = metrics.membership_config.nodes().map(|(id, node)| (*id, node.addr.clone()));
            controller.sessions.lead(metrics.current_term, nodes, now, &controller.raft_contact);
            if let Err(refused) = controller.sessions.heard(
                controller.node_id,
                &controller.address,
                controller.rack.as_deref(),
                controller.incarnation,
                now,
            ) {
                tracing::warn!(%refused, "the controller leader refused its own heartbeat");
            }
            lead(&controller, now, interval, session_timeout).await;
            controller.drive();
            controller.settle_voters().await;
            if controller.config.auto_leader_rebalance_enable && balance.is_due(now) {
                controller.balance_leaders().await;
            }
        } else {
            balance.not_leading(now);
            controller.sessions.stop_leading();
            if let Some((leader_id, leader_address)) = controller_leader(&metrics) {
                heartbeats.send(&controller, leader_id, &leader_address, interval, session_timeout).await;
            }
        }
    }
}

fn is_leading(metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>, node_id: NodeId) -> bool {
    metrics.current_leader == Some(node_id) && metrics.state.is_leader()
}

/// The controller leader's id and address, as this node knows them.
fn controller_leader(metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>) -> Option<(NodeId, String)> {
    let id = metrics.current_leader?;
    metrics.membership_config.membership().get_node(&id).map(|node| (id, node.addr.clone()))
}

/// What woke the keeper.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// The tick, or this node just became the controller leader: a whole turn.
    Whole,
    /// A replication stream from a node broke ([`Controller::suspect`]), here or (told in a heartbeat) on another
    /// node: the leader probes it, and nothing else; another node heartbeats at once to tell the leader.
    Suspects,
}

/// Waits for the next tick, or until this node becomes the controller leader: a new leader's first turn
/// fences the nodes that died with the old one (their ports refuse, `liveness.rs`) without waiting up to a
/// whole interval for the tick. Any node also wakes when a node is suspected.
async fn next_turn(
    controller: &Controller,
    tick: &mut tokio::time::Interval,
    raft_metrics: &mut tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
    was_leading: bool,
) -> Turn {
    loop {
        tokio::select! {
            _ = tick.tick() => return Turn::Whole,
            () = controller.suspected.notified() => return Turn::Suspects,
            changed = raft_metrics.changed(), if !was_leading => {
                if changed.is_err() {
                    // Raft has stopped (the node is failing): the ticks alone go on.
                    tick.tick().await;
                    return Turn::Whole;
                }
                if is_leading(&raft_metrics.borrow_and_update(), controller.node_id) {
                    tick.reset();
                    return Turn::Whole;
                }
            }
        }
    }
}

/// The leader's decisions for this tick, each a command through raft.
async fn lead(controller: &Controller, now: Instant, interval: Duration, session_timeout: Duration) {
    let metadata = controller.metadata();
    // Before any await, and from the same metadata that decides below whom to mark alive: a process that fenced
    // itself when it stopped gracefully is never heard again, even by a heartbeat of it that arrived before.
    for node in metadata.nodes.values().filter(|n| n.state == NodeState::Fenced) {
        if let Some(incarnation) = node.stopped_incarnation {
            controller.sessions.stopped(node.node_id, incarnation);
        }
    }
    if metadata.cluster_id.is_none() {
        let cluster_id = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        write(controller, Command::SetClusterId { cluster_id }, session_timeout).await;
    }
    let at_ms = crate::node::now_ms();
    let at_unix_ms = u64::try_from(at_ms).unwrap_or(0);
    if metadata.has_ended_console_sessions(at_unix_ms) {
        write(controller, Command::PurgeConsoleSessions { at_unix_ms }, session_timeout).await;
    }
    for node_id in controller.sessions.expired(now) {
        if metadata.state_of(node_id) == Some(NodeState::Alive) {
            tracing::warn!(
                node_id,
                timeout_ms = session_timeout.as_millis() as u64,
                "node session expired; fencing it"
            );
            if write(controller, Command::Fence { node_id, at_ms, stopped_incarnation: None }, session_timeout).await {
                controller.fences.count(FenceCause::SessionExpired);
            }
        }
    }
    if controller.config.node_liveness_probe {
        let overdue = controller.sessions.overdue(now, liveness::probe_after(interval));
        fence_refused(controller, overdue, interval, session_timeout).await;
    }
    for (node_id, address, rack) in controller.sessions.live(now) {
        // A node restarted with another address or rack is recorded again, whether or not it was fenced.
        let is_recorded_alive = metadata
            .nodes
            .get(&node_id)
            .is_some_and(|n| n.state == NodeState::Alive && n.address == address && n.rack == rack);
        if !is_recorded_alive {
            tracing::info!(node_id, %address, rack = rack.as_deref().unwrap_or(""), "node heartbeating; marking it alive");
            write(controller, Command::MarkAlive { node_id, address, rack, at_ms }, session_timeout).await;
        }
    }
}

/// Probes `overdue` (nodes whose heartbeat is late) and the nodes suspected since the last probe, if alive, and
/// fences those whose address refuses connections.
async fn fence_refused(
    controller: &Controller,
    overdue: Vec<(NodeId, String)>,
    interval: Duration,
    session_timeout: Duration,
) {
    let metadata = controller.metadata();
    let overdue_ids: Vec<NodeId> = overdue.iter().map(|(node_id, _)| *node_id).collect();
    let suspected = controller.sessions.addresses_of(&controller.take_suspects());
    let mut probed: Vec<(NodeId, String)> = overdue.into_iter().chain(suspected).collect();
    probed.sort();
    probed.dedup_by_key(|(node_id, _)| *node_id);
    probed
        .retain(|(node_id, _)| *node_id != controller.node_id && metadata.state_of(*node_id) == Some(NodeState::Alive));
    let at_ms = crate::node::now_ms();
    for (node_id, address) in liveness::refused(probed, interval).await {
        let cause =
            if overdue_ids.contains(&node_id) { FenceCause::HeartbeatOverdue } else { FenceCause::StreamBroken };
        tracing::warn!(node_id, %address, cause = cause.label(), "node's address refuses connections; fencing it");
        controller.sessions.refused(node_id);
        if write(controller, Command::Fence { node_id, at_ms, stopped_incarnation: None }, session_timeout).await {
            controller.fences.count(cause);
        }
    }
}

/// Commits `command`; false (logged) if it was not committed within `timeout`: the next turn decides again.
async fn write(controller: &Controller, command: Command, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, controller.raft.client_write(command.clone())).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::info!(?command, error = %err, "metadata change not committed; next tick retries");
            false
        }
        Err(_) => {
            tracing::info!(?command, "metadata change not committed in time; next tick retries");
            false
        }
    }
}

/// Why the controller leader fenced a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceCause {
    /// Not heard for `node_session_timeout_ms`.
    SessionExpired,
    /// Its heartbeat overdue, and its address refused a connection.
    HeartbeatOverdue,
    /// A replication stream from it broke, and its address refused a connection.
    StreamBroken,
}

impl FenceCause {
    pub const ALL: [FenceCause; 3] =
        [FenceCause::SessionExpired, FenceCause::HeartbeatOverdue, FenceCause::StreamBroken];

    /// The `cause` label of `rill_controller_fences_total`.
    pub fn label(self) -> &'static str {
        match self {
            FenceCause::SessionExpired => "session-expired",
            FenceCause::HeartbeatOverdue => "heartbeat-overdue",
            FenceCause::StreamBroken => "stream-broken",
        }
    }
}

/// Fences this node committed as controller leader, by cause.
#[derive(Default)]
pub struct Fences([std::sync::atomic::AtomicU64; 3]);

impl Fences {
    pub fn count(&self, cause: FenceCause) {
        self.0[cause as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self, cause: FenceCause) -> u64 {
        self.0[cause as usize].load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Records the cluster id once the metadata has one; a different one than the data dir's stops the node.
async fn learn_cluster_id(controller: &Controller) {
    let Some(cluster_id) = controller.metadata().cluster_id.clone() else { return };
    match controller.cluster_id.get() {
        Some(known) if known == cluster_id => {}
        Some(known) => controller.fail(format!(
            "data dir {} belongs to cluster {known}, but its peers' controller quorum is cluster {cluster_id}; \
             use a fresh data dir for this node",
            controller.config.data_dir.display()
        )),
        None => {
            let mut updated = controller.identity.lock().unwrap_or_else(|p| p.into_inner()).clone();
            updated.cluster_id = Some(cluster_id.clone());
            match store_identity(controller, updated).await {
                Ok(()) => {
                    tracing::info!(%cluster_id, "joined the cluster; recorded its id in cluster.toml");
                    controller.cluster_id.set(cluster_id);
                }
                Err(err) => tracing::warn!(error = %err, "cannot record the cluster id yet; next tick retries"),
            }
        }
    }
}

/// Keeps `cluster.toml`'s `members` equal to the applied membership (written only when it changes).
async fn record_members(controller: &Controller, metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>) {
    let mut members: Vec<super::Peer> = metrics
        .membership_config
        .nodes()
        .map(|(id, node)| super::Peer { node_id: *id, address: node.addr.clone() })
        .collect();
    members.sort();
    let mut updated = controller.identity.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let is_founding_membership = updated.members.is_empty() && members == updated.peers;
    if updated.members == members || is_founding_membership {
        return;
    }
    updated.members = members;
    let members = super::peers::format_peers(&updated.members);
    match store_identity(controller, updated).await {
        Ok(()) => tracing::info!(%members, "the controller membership changed; recorded it in cluster.toml"),
        Err(err) => tracing::warn!(error = %err, "cannot record the membership yet; next tick retries"),
    }
}

/// Writes `updated` to `cluster.toml` off the async workers, then makes it the node's identity in memory.
async fn store_identity(controller: &Controller, updated: identity::ClusterIdentity) -> Result<(), String> {
    let data_dir = controller.config.data_dir.clone();
    let stored = tokio::task::spawn_blocking(move || identity::store(&data_dir, &updated).map(|()| updated))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))?;
    *controller.identity.lock().unwrap_or_else(|p| p.into_inner()) = stored;
    Ok(())
}

struct Heartbeats {
    leader: Option<(NodeId, ControllerClient<PeerChannel>)>,
    /// Since when the leader has refused this node's id as held by another process.
    refused_since: Option<Instant>,
}

impl Heartbeats {
    async fn send(
        &mut self,
        controller: &Controller,
        leader_id: NodeId,
        leader_address: &str,
        interval: Duration,
        session_timeout: Duration,
    ) {
        if self.leader.as_ref().map(|(id, _)| *id) != Some(leader_id) {
            match channel_to(leader_address, &controller.config) {
                Ok(channel) => self.leader = Some((leader_id, ControllerClient::new(channel))),
                Err(err) => {
                    tracing::warn!(leader_id, leader_address, error = %err, "bad controller leader address");
                    return;
                }
            }
        }
        let Some((_, client)) = self.leader.as_mut() else { return };
        let mut request = tonic::Request::new(HeartbeatRequest {
            cluster_id: controller.cluster_id.get().unwrap_or_default(),
            node_id: controller.node_id,
            address: controller.address.clone(),
            incarnation: controller.incarnation,
            rack: controller.rack.clone(),
            // Lost with a heartbeat that is not delivered: the leader's own probe of overdue heartbeats remains.
            suspects: controller.take_suspects().into_iter().filter(|id| *id != leader_id).collect(),
        });
        request.set_timeout(interval.max(Duration::from_millis(100)));
        match client.heartbeat(request).await {
            Ok(_) => self.refused_since = None,
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                controller.fail(status.message().to_owned())
            }
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                let since = *self.refused_since.get_or_insert_with(Instant::now);
                tracing::warn!(leader_id, reason = status.message(), "heartbeat refused");
                // A restarted node waits for its old session to expire; one still refused after two session
                // timeouts is competing with a live process.
                if since.elapsed() > 2 * session_timeout {
                    controller.fail(status.message().to_owned());
                }
            }
            Err(status) => tracing::debug!(leader_id, error = %status, "heartbeat not delivered"),
        }
    }
}
