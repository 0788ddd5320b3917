//! The controller quorum: cluster metadata replicated with openraft over the nodes listed in `--peers`.
//!
//! - [`peers`] parses and checks `--node-id`/`--peers`; [`identity`] keeps `<data>/cluster.toml` (cluster id,
//!   node id, peers) and refuses a data dir that belongs to another node or peers list.
//! - [`log_store`] (raft log and vote) and [`state_machine`] (snapshot and [`metadata`]) persist raft in
//!   `<data>/__raft/`; [`network`] and [`rpc`] carry raft's RPCs over the internal `rill.internal.v1` service
//!   on the node's own listener.
//! - [`keeper`] runs on every node: it heartbeats to the controller leader and, on the leader, turns
//!   [`sessions`] (in memory) into fence/alive commands through raft; `liveness` fences a silent node early
//!   once its address refuses connections (its process is gone); [`election`] calls an election on the
//!   survivors of a controller leader whose address refuses, as soon as raft lets them vote.
//! - [`probe`] asks every peer who it is before a node joins, refusing a duplicate node id, disagreeing peers or
//!   another cluster's data dir.
//! - [`describe`] serves the public `ClusterAdmin` service.
//! - [`join`] sets up the data dir of a node started with `--join`; [`membership`] adds and removes nodes at
//!   run time (`rill cluster add-node`/`remove-node`), moving a removed node's replicas as [`reassign`] plans;
//!   `reassignment` moves one partition onto the replicas an operator names (`rill topic reassign`), or each
//!   partition [`rebalance`] plans to spread the replicas evenly (`rill cluster rebalance`), through a move
//!   recorded in the metadata ([`reassignment_state`]) that any controller leader finishes or cancels.
//! - [`preferred_leaders`] plans preferred leader elections (which partitions go back to their first replica,
//!   and when leadership is out of balance); `leader_balance` commits them, on demand and from the keeper.
//! - [`placement`] places a new topic's replicas; `propose` commits a command from any node (a follower
//!   forwards it to the leader), which is how topics are created and ISRs change.
//! - `access` applies the users and ACL bindings the metadata holds, which the auth stores read and change.
//!
//! Invariants: a vote is on disk before it is answered and a log entry before openraft counts it as persisted;
//! metadata changes only by applying committed commands; a node without peers starts none of this.

pub mod access;
pub mod console_sessions;
pub mod describe;
mod election;
pub mod identity;
mod join;
mod keeper;
pub mod leader_balance;
mod liveness;
mod log_store;
mod membership;
pub mod metadata;
mod network;
pub mod peers;
pub mod placement;
pub mod preferred_leaders;
mod probe;
pub mod producer_id_blocks;
mod propose;
pub mod reassign;
pub mod reassignment;
pub mod reassignment_state;
pub mod rebalance;
pub mod replication_throttle;
mod rpc;
mod sessions;
#[cfg(test)]
pub(crate) mod simulation;
mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::BasicNode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use identity::{ClusterIdentity, IdentityError};
pub use peers::{parse_peers, validate as validate_settings, Peer};

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use metadata::{ClusterMetadata, Command, CommandOutcome, NodeState};
use sessions::{RaftContact, Sessions};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The controller's raft: commands on cluster metadata, nodes named by `u64` ids with `host:port` addresses.
    pub TypeConfig:
        D = Command,
        R = CommandOutcome,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// Raft timing bounds. Elections are slow enough for a loaded machine's scheduling hiccups (a spurious election
/// costs a leader change) and quick enough that a dead leader is replaced well within a node session; see
/// [`raft_timing`] for how the session sets them between these bounds.
const RAFT_HEARTBEAT_INTERVAL_MAX_MS: u64 = 250;
const RAFT_HEARTBEAT_INTERVAL_MIN_MS: u64 = 50;
const RAFT_ELECTION_TIMEOUT_MAX_CAP_MS: u64 = 3_000;
const RAFT_ELECTION_TIMEOUT_MAX_FLOOR_MS: u64 = 300;
/// A live node needs one keeper tick to learn a new controller leader and one to heartbeat it; a session a new
/// leader seeds from raft contact lasts at least this many heartbeat intervals.
const SEEDED_SESSION_MIN_HEARTBEATS: u32 = 3;
/// A snapshot every this many entries; the log before it can then be purged.
const SNAPSHOT_EVERY_ENTRIES: u64 = 1_000;

/// The cluster id once known, shared by the network (sent with every RPC) and the RPC server (checked).
#[derive(Clone, Default)]
pub struct ClusterIdCell(Arc<RwLock<Option<String>>>);

impl ClusterIdCell {
    pub fn get(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, cluster_id: String) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(cluster_id);
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot open the controller's raft state in {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid raft settings: {0}")]
    RaftConfig(String),
    #[error("cannot start the controller's raft: {0}")]
    Raft(String),
}

/// This node's member of the controller quorum.
pub struct Controller {
    pub node_id: NodeId,
    pub address: String,
    /// This node's `--rack`, sent with its heartbeats.
    pub rack: Option<String>,
    pub raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    sessions: Sessions,
    /// When this node last heard each peer over raft; seeds the sessions when it becomes leader.
    raft_contact: RaftContact,
    cluster_id: ClusterIdCell,
    /// Random per process start; see `HeartbeatRequest.incarnation`.
    incarnation: u64,
    pub(crate) config: Arc<BrokerConfig>,
    identity: std::sync::Mutex<ClusterIdentity>,
    /// Set once to why this node must stop (it belongs to another cluster, its id is taken).
    failure: watch::Sender<Option<String>>,
    keeper: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Held through an add or remove of a node or a reassignment: changes run one at a time. In an `Arc` so
    /// that a reassignment started by Kafka's AlterPartitionReassignments holds it in its own task.
    membership_change: Arc<tokio::sync::Mutex<()>>,
    /// Set while this node, as controller leader, completes the moves recorded in the metadata
    /// ([`Controller::drive`]): one driver at a time.
    is_driving_reassignments: std::sync::atomic::AtomicBool,
    /// Set once this process has applied the metadata ([`Controller::has_caught_up`]); never cleared.
    has_caught_up: std::sync::atomic::AtomicBool,
    /// Set while this node, as controller leader, removes itself: it must finish before it stops.
    is_leaving: std::sync::atomic::AtomicBool,
    /// Elections this node called because the controller leader it followed died (`election.rs`).
    elections_called: std::sync::atomic::AtomicU64,
    /// Fences this node committed as controller leader, by cause.
    fences: keeper::Fences,
    /// Nodes a replication stream from which broke since the keeper's last turn ([`Controller::suspect`]).
    suspects: std::sync::Mutex<std::collections::BTreeSet<NodeId>>,
    /// Wakes the controller leader's keeper to probe the suspects at once.
    suspected: tokio::sync::Notify,
    /// One connection per peer for node-to-node calls made per client request (share groups' state), by node
    /// id with the address it was made for: a call must not pay for a connection.
    peer_channels: std::sync::Mutex<std::collections::BTreeMap<NodeId, (String, crate::tls::PeerChannel)>>,
}

impl Controller {
    /// Opens the raft state in the data dir and starts this node's raft. The node then waits for its peers;
    /// [`Controller::start_background`] initializes the membership and starts heartbeats.
    pub async fn open(config: Arc<BrokerConfig>, identity: ClusterIdentity) -> Result<Arc<Self>, ControllerError> {
        let raft_dir = raft_dir(&config.data_dir);
        let storage = |source| ControllerError::Storage { path: raft_dir.clone(), source };
        let log_store = log_store::LogStore::open(&raft_dir).map_err(storage)?;
        let state_machine = state_machine::StateMachine::open(&raft_dir).map_err(storage)?;
        let metadata = state_machine.subscribe();
        let cluster_id = ClusterIdCell::default();
        if let Some(id) = &identity.cluster_id {
            cluster_id.set(id.clone());
        }
        let node_id = identity.node_id;
        let address = identity.own_address().ok_or_else(|| {
            ControllerError::RaftConfig(format!("node {node_id} is not among its peers and joined at no address"))
        })?;
        let session_timeout = Duration::from_millis(config.node_session_timeout_ms);
        let raft_config = raft_config(session_timeout)?;
        let peers = peers::format_peers(&identity.peers);
        let network = network::Network {
            node_id,
            cluster_id: cluster_id.clone(),
            peers,
            config: Arc::clone(&config),
            reachability: Arc::default(),
        };
        let raft = Raft::new(node_id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let heartbeat_interval = Duration::from_millis(config.node_heartbeat_interval_ms);
        Ok(Arc::new(Self {
            node_id,
            address,
            rack: config.rack.clone(),
            raft,
            metadata,
            sessions: Sessions::new(session_timeout, heartbeat_interval * SEEDED_SESSION_MIN_HEARTBEATS),
            raft_contact: RaftContact::default(),
            cluster_id,
            incarnation: rand::random::<u64>().max(1),
            config,
            identity: std::sync::Mutex::new(identity),
            failure: watch::channel(None).0,
            keeper: std::sync::Mutex::new(None),
            membership_change: Arc::new(tokio::sync::Mutex::new(())),
            is_driving_reassignments: std::sync::atomic::AtomicBool::new(false),
            has_caught_up: std::sync::atomic::AtomicBool::new(false),
            is_leaving: std::sync::atomic::AtomicBool::new(false),
            elections_called: std::sync::atomic::AtomicU64::new(0),
            fences: keeper::Fences::default(),
            suspects: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            suspected: tokio::sync::Notify::new(),
            peer_channels: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }))
    }

    /// Once the node serves the internal service: initializes the membership from the peers (a no-op on a
    /// node whose raft already has state) and starts the keeper.
    pub fn start_background(self: &Arc<Self>) {
        tokio::spawn(watch_raft_core(Arc::downgrade(self), self.raft.metrics()));
        tokio::spawn(election::watch(Arc::downgrade(self), self.raft.metrics()));
        let controller = Arc::clone(self);
        let task = tokio::spawn(async move {
            if let Err(reason) = probe::check_peers(&controller).await {
                controller.fail(reason);
                return;
            }
            controller.initialize().await;
            keeper::run(controller).await;
        });
        *self.keeper.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Every node proposes the same initial membership, all peers as voters: openraft documents this as safe
    /// (identical configs), and it means the cluster forms as soon as any quorum is up, whichever nodes those are.
    /// A node that joined later proposes nothing: it waits to be added (a membership of its own would be a
    /// second cluster).
    async fn initialize(&self) {
        if !self.identity.lock().unwrap_or_else(|p| p.into_inner()).is_founding_member() {
            tracing::info!(node_id = self.node_id, "waiting to be added to the cluster (rill cluster add-node)");
            return;
        }
        let members: BTreeMap<NodeId, BasicNode> =
            self.peers().into_iter().map(|peer| (peer.node_id, BasicNode { addr: peer.address })).collect();
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!(node_id = self.node_id, "controller membership initialized from the peers"),
            Err(err) => tracing::debug!(node_id = self.node_id, error = %err, "controller already initialized"),
        }
    }

    /// Elections this node has called since it started because the controller leader it followed stopped and
    /// its address refused connections, ahead of raft's own election timeout.
    pub fn elections_called(&self) -> u64 {
        self.elections_called.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fences this node has committed as controller leader since it started, per cause (`cause` label).
    pub fn fences(&self) -> Vec<(&'static str, u64)> {
        keeper::FenceCause::ALL.iter().map(|cause| (cause.label(), self.fences.get(*cause))).collect()
    }

    /// A replication stream from `node_id` broke (on this node, or on another that named it in a heartbeat): a
    /// node killed closes its connections at once, long before its heartbeat is overdue. On the controller leader
    /// the keeper probes it now (`liveness.rs`) and fences it if its port refuses; elsewhere the keeper names it
    /// to the leader in a heartbeat sent at once.
    pub fn suspect(&self, node_id: NodeId) {
        if node_id == self.node_id || !self.config.node_liveness_probe {
            return;
        }
        self.suspects.lock().unwrap_or_else(|p| p.into_inner()).insert(node_id);
        self.suspected.notify_one();
    }

    /// The nodes suspected since the last call.
    fn take_suspects(&self) -> std::collections::BTreeSet<NodeId> {
        std::mem::take(&mut *self.suspects.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The peers the cluster was formed with (unchanged by membership changes; see `identity.rs`).
    pub fn peers(&self) -> Vec<Peer> {
        self.identity.lock().unwrap_or_else(|p| p.into_inner()).peers.clone()
    }

    /// The controller membership as this node last applied it, voters and learners, by id; the founding peers
    /// while raft has none yet (a node waiting to be added).
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        let metrics = self.raft.metrics().borrow().clone();
        let members: BTreeMap<NodeId, String> =
            metrics.membership_config.nodes().map(|(id, node)| (*id, node.addr.clone())).collect();
        if members.is_empty() {
            return self.peers().into_iter().map(|p| (p.node_id, p.address)).collect();
        }
        members
    }

    /// The voters of the controller membership as this node last applied it.
    pub fn voters(&self) -> std::collections::BTreeSet<NodeId> {
        self.raft.metrics().borrow().membership_config.voter_ids().collect()
    }

    /// Whether this node is the controller leader now (as its raft last knew).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        metrics.current_leader == Some(self.node_id) && metrics.state.is_leader()
    }

    /// On the controller leader, how it stands with its quorum (raft's metrics `metrics`); `None` elsewhere.
    pub fn quorum_contact(&self, metrics: &openraft::RaftMetrics<NodeId, openraft::BasicNode>) -> QuorumContact {
        let is_leader = metrics.current_leader == Some(self.node_id) && metrics.state.is_leader();
        let ack_age_ms = if is_leader { metrics.millis_since_quorum_ack } else { None };
        // A leader not acknowledged by a majority for an election timeout would have been replaced, were a
        // majority up and reachable: it was not, so none is.
        let election_timeout_max_ms = raft_timing(Duration::from_millis(self.config.node_session_timeout_ms)).2;
        let is_lost = is_leader && ack_age_ms.is_none_or(|age| age > election_timeout_max_ms);
        QuorumContact { ack_age_ms, is_lost }
    }

    /// Whether this process has caught up with the cluster's metadata: it knows a leader and has applied every
    /// entry of its raft log. A restarted node holds its last snapshot until the leader tells it how far its
    /// log is committed, so until then a topic it does not know may well exist; the edges answer that with a
    /// retriable refusal rather than "unknown topic". Once true it stays true: a follower a few entries behind
    /// later is ordinary lag, as a Kafka broker's metadata cache lags.
    pub fn has_caught_up(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.has_caught_up.load(Ordering::Relaxed) {
            return true;
        }
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let applied = metrics.last_applied.map(|log_id| log_id.index);
        let has_caught_up = metrics.current_leader.is_some() && applied >= metrics.last_log_index;
        if has_caught_up {
            self.has_caught_up.store(true, Ordering::Relaxed);
            tracing::info!(node_id = self.node_id, applied = ?applied, "caught up with the cluster's metadata");
        }
        has_caught_up
    }

    /// The controller leader as this node last knew it.
    pub fn current_leader_id(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.metadata.borrow())
    }

    /// Records that this node must stop, with why; the first reason wins.
    fn fail(&self, reason: String) {
        tracing::error!(node_id = self.node_id, %reason, "this node cannot stay in the cluster");
        self.failure.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Waits until this node must stop, and says why. Never returns while all is well.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.subscribe();
        loop {
            if let Some(reason) = failure.borrow_and_update().clone() {
                return reason;
            }
            if failure.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A controlled shutdown's first step (Kafka's `controlled.shutdown.enable`): stops heartbeating, so the
    /// controller leader does not mark this node alive again, and fences this node through the controller, which
    /// moves its leaderships to in-sync replicas and takes it out of every ISR while it still serves. Clients
    /// then meet refusals that name the new leaders, instead of a port that refuses until the node is found
    /// dead, and acks-all produces stop waiting for it. Returns how many partitions it still leads: those
    /// with no other in-sync replica, or all of them if the controller could not be reached within `timeout`.
    pub async fn hand_over_leaderships(&self, timeout: Duration) -> usize {
        let led = |metadata: &ClusterMetadata| {
            let own = Some(self.node_id);
            metadata.topics.values().flat_map(|t| t.partitions.iter()).filter(|p| p.leader == own).count()
        };
        if !self.config.controlled_shutdown || self.metadata().state_of(self.node_id) != Some(NodeState::Alive) {
            return led(&self.metadata());
        }
        if let Some(task) = self.keeper.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        let command = Command::Fence {
            node_id: self.node_id,
            at_ms: crate::node::now_ms(),
            stopped_incarnation: Some(self.incarnation),
        };
        let handed_over = tokio::time::timeout(timeout, async {
            self.propose(command).await?;
            // Applied here too (a proposal forwarded to the leader reaches this replica a round trip later).
            self.wait_for_metadata(|m| m.state_of(self.node_id) == Some(NodeState::Fenced)).await;
            Ok::<(), BrokerError>(())
        })
        .await;
        match handed_over {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot hand this node's leaderships over; stopping anyway"),
            Err(_) => tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "the controller did not take this node's leaderships in time; stopping anyway"
            ),
        }
        led(&self.metadata())
    }

    /// Stops the keeper and raft.
    pub async fn shutdown(&self) {
        if let Some(task) = self.keeper.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(error = %err, "controller raft did not stop cleanly");
        }
    }
}

/// Fails the node when its raft core stops with an error (its log or vote could not be written: a full disk,
/// say). openraft stops the core for good then, and a node that stayed up would serve metadata it no longer
/// follows and keep heartbeating as if it did; stopping hands it to its supervisor, and a restart once the cause
/// is fixed rejoins (Kafka's broker halts on a failed log dir the same way). A stop asked for is no failure.
async fn watch_raft_core(
    controller: std::sync::Weak<Controller>,
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>,
) {
    let mut logged_leadership = None;
    loop {
        let (fatal, leadership) = {
            let now = metrics.borrow_and_update();
            let fatal = match &now.running_state {
                Ok(()) => None,
                Err(openraft::error::Fatal::Stopped) => return,
                Err(fatal) => Some(fatal.to_string()),
            };
            (fatal, now.current_leader.map(|leader| (leader, now.current_term)))
        };
        // openraft's own account of elections is off by default (`cli/src/telemetry.rs`): this is its outcome.
        if leadership.is_some() && leadership != logged_leadership {
            if let Some((leader, term)) = leadership {
                tracing::info!(leader, term, "controller leader elected");
            }
            logged_leadership = leadership;
        }
        if let Some(fatal) = fatal {
            if let Some(controller) = controller.upgrade() {
                let raft_dir = raft_dir(&controller.config.data_dir);
                controller.fail(format!(
                    "the controller's raft stopped: {fatal} (raft state in {}); this node stops rather than serve \
                     metadata it can no longer follow: fix the cause (free the disk) and start it again",
                    raft_dir.display()
                ));
            }
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The controller leader's contact with its quorum ([`Controller::quorum_contact`]).
pub struct QuorumContact {
    /// How long ago a majority of the voters last acknowledged it; `None` on a follower, and before the first.
    pub ack_age_ms: Option<u64>,
    /// No majority has acknowledged it for longer than the election timeout: nothing can be committed.
    pub is_lost: bool,
}

/// Raft's heartbeat interval and election timeout range, in ms, for nodes with `session_timeout`.
///
/// A dead controller leader is fenced only once a new leader is elected, so the election bounds a failover
/// that takes the controller leader with it. openraft 0.9 starts one `election_timeout_max` (its leader lease,
/// during which followers refuse votes) plus a random timeout in `[min, max)` after it last heard the leader:
/// under `2 * max`; the survivors of a leader whose port refuses call it as soon as the lease is over
/// (`election.rs`). With `max` an eighth of the session (750 ms by default), the election ends within a quarter
/// of it and a killed controller leader is replaced in under a second. Raft heartbeats five times per `min`
/// (every 100 ms by default), so a follower starts an election of its own only after the lease and `min` without
/// one: 1.25 s, twelve heartbeats lost in a row, by default (KRaft's election timeout is 1 s).
fn raft_timing(session_timeout: Duration) -> (u64, u64, u64) {
    let eighth_ms = session_timeout.as_millis() as u64 / 8;
    let election_max_ms = eighth_ms.clamp(RAFT_ELECTION_TIMEOUT_MAX_FLOOR_MS, RAFT_ELECTION_TIMEOUT_MAX_CAP_MS);
    let election_min_ms = election_max_ms * 2 / 3;
    let heartbeat_ms = (election_min_ms / 5).clamp(RAFT_HEARTBEAT_INTERVAL_MIN_MS, RAFT_HEARTBEAT_INTERVAL_MAX_MS);
    (heartbeat_ms, election_min_ms, election_max_ms)
}

/// The raft settings every controller runs with (the simulation tests too).
fn raft_config(session_timeout: Duration) -> Result<openraft::Config, ControllerError> {
    let (heartbeat_ms, election_min_ms, election_max_ms) = raft_timing(session_timeout);
    openraft::Config {
        cluster_name: "rill".into(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_min_ms,
        election_timeout_max: election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
        ..Default::default()
    }
    .validate()
    .map_err(|e| ControllerError::RaftConfig(e.to_string()))
}

/// The identity this start runs with: checked against `<data>/cluster.toml`, recorded on a first start with
/// peers, or (a fresh data dir with `--join`) learned from a running node. `None` for a single node.
pub async fn identity_for_start(config: &BrokerConfig) -> Result<Option<ClusterIdentity>, ControllerError> {
    let is_joining = !config.join.is_empty();
    match identity::check_or_record(&config.data_dir, config.node_id, &config.peers, is_joining)? {
        None if is_joining => {
            identity::refuse_single_node_topics(&config.data_dir)?;
            Ok(Some(join::identity_from_cluster(config).await?))
        }
        identity => Ok(identity),
    }
}

/// `<data>/__raft`: the `__` prefix keeps it out of the topics' namespace and orphan cleanup.
pub fn raft_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("__raft")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raft_election_ends_within_a_quarter_of_a_node_session_between_the_bounds() {
        for session_ms in [300, 1_500, 3_000, 6_000, 60_000] {
            let (heartbeat_ms, election_min_ms, election_max_ms) = raft_timing(Duration::from_millis(session_ms));
            assert!(heartbeat_ms < election_min_ms && election_min_ms < election_max_ms, "{session_ms} ms");
            raft_config(Duration::from_millis(session_ms)).expect("openraft accepts the timing");
            let at_the_floor = election_max_ms == RAFT_ELECTION_TIMEOUT_MAX_FLOOR_MS;
            assert!(at_the_floor || 2 * election_max_ms <= session_ms / 4, "{session_ms} ms");
        }
        assert_eq!(raft_timing(Duration::from_millis(6_000)), (100, 500, 750), "the default session");
        assert_eq!(raft_timing(Duration::from_millis(3_000)), (50, 250, 375));
        assert_eq!(raft_timing(Duration::from_millis(1_500)), (50, 200, 300));
        assert_eq!(raft_timing(Duration::from_millis(300)), (50, 200, 300));
        assert_eq!(raft_timing(Duration::from_secs(60)), (250, 2_000, 3_000));
    }
}
