//! A turmoil simulation of a three-node controller quorum: the real openraft core, the real log store and state
//! machine (each node's raft dir in a temp dir), on simulated hosts whose network turmoil delays and partitions.
//!
//! tonic is not hosted on turmoil here: the raft RPCs go over turmoil's TCP as length-prefixed JSON (the same
//! messages `network.rs` sends inside `rill.internal.v1`), through [`SimNetwork`], a second implementation of
//! openraft's network trait. What this proves is the quorum's behaviour over a faulty network, not the tonic glue
//! (the real-process tests in `cli/tests/cluster.rs` cover that).
//!
//! A third scenario runs the transaction coordinator's stores (`transactions/replicated.rs`) through the quorum:
//! a deposed coordinator's store cannot land over its successor's.
//!
//! Seeds: `RILL_SIM_SEEDS=N` runs seeds 0..N (default 20), from `RILL_SIM_FIRST_SEED=F` on F..F+N, and
//! `RILL_SIM_SEED=S` only S; a failure names its seed.
//! The seed fixes turmoil's choices (message latencies, the order hosts run in); openraft draws its election
//! timeouts from its own thread RNG and the log store fsyncs on tokio's blocking pool, so a rerun of a seed
//! replays the same network but not always the same elections.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, ServerState};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::metadata::{ClusterMetadata, Command};
use super::state_machine::StateMachine;
use super::{raft_config, NodeId, Raft, TypeConfig};
use crate::transactions::TransactionMetadata;

const RAFT_PORT: u16 = 9000;
const NODES: [NodeId; 3] = [1, 2, 3];
/// Simulated time any one wait of the scenario may take.
const SIM_DEADLINE: Duration = Duration::from_secs(60);
const MAX_FRAME_BYTES: usize = 16 << 20;
/// The default `node_session_timeout_ms`, which keeps raft's default timing.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

fn host_name(node_id: NodeId) -> String {
    format!("node{node_id}")
}

const APPEND_ENTRIES: u8 = 1;
const VOTE: u8 = 2;
const INSTALL_SNAPSHOT: u8 = 3;

async fn write_frame(stream: &mut turmoil::net::TcpStream, kind: u8, payload: &[u8]) -> io::Result<()> {
    stream.write_u8(kind).await?;
    stream.write_u32(payload.len() as u32).await?;
    stream.write_all(payload).await?;
    stream.flush().await
}

async fn read_frame(stream: &mut turmoil::net::TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let kind = stream.read_u8().await?;
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok((kind, payload))
}

struct SimNetwork;

struct SimConnection {
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimConnection {
        SimConnection { target }
    }
}

impl SimConnection {
    async fn call<Req, Resp, E>(
        &self,
        kind: u8,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let exchange = async {
            let mut stream = turmoil::net::TcpStream::connect((host_name(self.target), RAFT_PORT)).await?;
            write_frame(&mut stream, kind, &payload).await?;
            read_frame(&mut stream).await
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), exchange).await {
            Ok(Ok((_, reply))) => reply,
            Ok(Err(err)) => return Err(RPCError::Unreachable(Unreachable::new(&err))),
            Err(_) => return Err(RPCError::Unreachable(Unreachable::new(&io::Error::other("timed out")))),
        };
        let outcome: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        outcome.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for SimConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(APPEND_ENTRIES, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(INSTALL_SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(VOTE, &rpc, &option).await
    }
}

/// Answers one connection's raft RPCs, one frame at a time.
async fn serve_connection(mut stream: turmoil::net::TcpStream, raft: Raft) -> io::Result<()> {
    loop {
        let (kind, payload) = read_frame(&mut stream).await?;
        let decode_error = |e: serde_json::Error| io::Error::other(e.to_string());
        let reply = match kind {
            APPEND_ENTRIES => serde_json::to_vec(&raft.append_entries(serde_json::from_slice(&payload)?).await),
            VOTE => serde_json::to_vec(&raft.vote(serde_json::from_slice(&payload)?).await),
            INSTALL_SNAPSHOT => serde_json::to_vec(&raft.install_snapshot(serde_json::from_slice(&payload)?).await),
            other => return Err(io::Error::other(format!("unknown rpc kind {other}"))),
        }
        .map_err(decode_error)?;
        write_frame(&mut stream, kind, &reply).await?;
    }
}

/// What the scenario sees of each running node.
#[derive(Clone)]
struct SimNode {
    raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
}

type Nodes = Arc<Mutex<BTreeMap<NodeId, SimNode>>>;

fn node(nodes: &Nodes, node_id: NodeId) -> Option<SimNode> {
    nodes.lock().expect("nodes lock").get(&node_id).cloned()
}

async fn run_node(node_id: NodeId, raft_dir: PathBuf, nodes: Nodes) -> turmoil::Result {
    let log_store = LogStore::open(&raft_dir)?;
    let state_machine = StateMachine::open(&raft_dir)?;
    let metadata = state_machine.subscribe();
    let config = Arc::new(raft_config(SESSION_TIMEOUT).map_err(|e| e.to_string())?);
    let raft = Raft::new(node_id, config, SimNetwork, log_store, state_machine).await?;
    let members: BTreeMap<NodeId, BasicNode> =
        NODES.iter().map(|id| (*id, BasicNode { addr: format!("{}:{RAFT_PORT}", host_name(*id)) })).collect();
    // Every node proposes the same membership, as `Controller::initialize` does.
    let _ = raft.initialize(members).await;
    nodes.lock().expect("nodes lock").insert(node_id, SimNode { raft: raft.clone(), metadata });
    let listener = turmoil::net::TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), RAFT_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve_connection(stream, raft.clone()));
    }
}

/// Polls `check` every 50 ms of simulated time until it returns `Some`, failing past [`SIM_DEADLINE`].
async fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> Result<T, String> {
    poll_until(Duration::from_millis(50), what, check).await
}

/// Polls `check` every `every` of simulated time until it returns `Some`, failing past [`SIM_DEADLINE`]. The
/// replication simulation waits the same way.
pub(crate) async fn poll_until<T>(
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + SIM_DEADLINE;
    loop {
        if let Some(found) = check() {
            return Ok(found);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("no {what} within {SIM_DEADLINE:?} of simulated time"));
        }
        tokio::time::sleep(every).await;
    }
}

/// The leader every node in `among` agrees on, with its term.
fn agreed_leader(nodes: &Nodes, among: &[NodeId]) -> Option<(NodeId, u64)> {
    let views: Vec<_> = among.iter().map(|id| node(nodes, *id).map(|n| n.raft.metrics().borrow().clone())).collect();
    let first = views.first()?.as_ref()?;
    let leader = first.current_leader?;
    let agreed = views.iter().all(|v| v.as_ref().is_some_and(|m| m.current_leader == Some(leader)));
    let leader_metrics = node(nodes, leader)?.raft.metrics().borrow().clone();
    (agreed && leader_metrics.state == ServerState::Leader).then_some((leader, leader_metrics.current_term))
}

/// The metadata every node has applied, once all of them have applied the same entries.
fn agreed_metadata(nodes: &Nodes) -> Option<Arc<ClusterMetadata>> {
    let states: Vec<_> = NODES
        .iter()
        .map(|id| {
            let n = node(nodes, *id)?;
            let applied = n.raft.metrics().borrow().last_applied;
            let metadata = Arc::clone(&n.metadata.borrow());
            Some((applied, metadata))
        })
        .collect::<Option<_>>()?;
    let first = states.first()?.clone();
    states.iter().all(|s| *s == first).then_some(first.1)
}

async fn write(nodes: &Nodes, leader: NodeId, command: Command) -> Result<(), String> {
    let raft = node(nodes, leader).ok_or("leader not running")?.raft;
    match tokio::time::timeout(Duration::from_secs(10), raft.client_write(command)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("write through node {leader} failed: {err}")),
        Err(_) => Err(format!("write through node {leader} not committed in 10 s")),
    }
}

/// Cuts `old_leader` off from the other nodes and waits for them to elect one of theirs at a later term: the
/// others, and the new leader.
async fn partition_away(nodes: &Nodes, old_leader: NodeId, old_term: u64) -> Result<(Vec<NodeId>, NodeId), String> {
    let others: Vec<NodeId> = NODES.into_iter().filter(|id| *id != old_leader).collect();
    for other in &others {
        turmoil::partition(host_name(old_leader), host_name(*other));
    }
    let (new_leader, _) = wait_for("leader among the majority", || {
        agreed_leader(nodes, &others).filter(|(leader, term)| *leader != old_leader && *term > old_term)
    })
    .await?;
    Ok((others, new_leader))
}

/// The scenario: elect, partition the leader away, elect again, heal, converge.
async fn scenario(nodes: Nodes) -> turmoil::Result {
    let (old_leader, old_term) = wait_for("first leader", || agreed_leader(&nodes, &NODES)).await?;
    for node_id in NODES {
        write(&nodes, old_leader, Command::MarkAlive { node_id, address: host_name(node_id), rack: None, at_ms: 1 })
            .await?;
    }

    let (others, new_leader) = partition_away(&nodes, old_leader, old_term).await?;
    write(&nodes, new_leader, Command::Fence { node_id: old_leader, at_ms: 2, stopped_incarnation: None }).await?;
    // Cut off from the majority, the old leader cannot commit anything.
    let old = node(&nodes, old_leader).ok_or("old leader not running")?.raft;
    let stranded = tokio::time::timeout(
        Duration::from_secs(2),
        old.client_write(Command::Fence { node_id: new_leader, at_ms: 3, stopped_incarnation: None }),
    );
    if let Ok(Ok(_)) = stranded.await {
        return Err(format!("node {old_leader} committed a write while partitioned from the majority").into());
    }

    for other in &others {
        turmoil::repair(host_name(old_leader), host_name(*other));
    }
    wait_for("old leader stepping down to follow the new one", || {
        let metrics = old.metrics().borrow().clone();
        (metrics.state != ServerState::Leader && metrics.current_leader.is_some_and(|l| l != old_leader)).then_some(())
    })
    .await?;
    let agreed = wait_for("every node applying the same metadata", || agreed_metadata(&nodes)).await?;
    if agreed.state_of(old_leader) != Some(super::metadata::NodeState::Fenced) {
        return Err(format!("converged metadata lost the fence of node {old_leader}: {agreed:?}").into());
    }
    Ok(())
}

/// What a transaction coordinator's store through `leader` did (`Command::StoreTransaction`).
async fn store_transaction(
    nodes: &Nodes,
    leader: NodeId,
    meta: &TransactionMetadata,
    prior: Option<&TransactionMetadata>,
    within: Duration,
) -> Result<bool, String> {
    let raft = node(nodes, leader).ok_or("leader not running")?.raft;
    let command =
        Command::StoreTransaction { meta: Box::new(meta.clone()), replaces: None, prior: prior.cloned().map(Box::new) };
    match tokio::time::timeout(within, raft.client_write(command)).await {
        Ok(Ok(written)) => Ok(written.data.changed),
        Ok(Err(err)) => Err(format!("store through node {leader} failed: {err}")),
        Err(_) => Err(format!("store through node {leader} not committed in {within:?}")),
    }
}

/// The transaction coordinator's one-at-a-time rule (`transactions/replicated.rs`) over the real quorum: the
/// coordinator (the leader) stores an open transaction and is partitioned away; its successor commits a no-op of
/// its term, reads the transaction and aborts it; the old coordinator's commit of the same transaction cannot be
/// committed while it is cut off, and once healed a store from the state it read (a coordinator that regained
/// the leadership with a stale read) changes nothing. Every node ends with the abort.
async fn transaction_scenario(nodes: Nodes) -> turmoil::Result {
    let (old_leader, old_term) = wait_for("first leader", || agreed_leader(&nodes, &NODES)).await?;
    let mut open = TransactionMetadata::new("app-1".into(), 1000, 60_000, 1);
    open.producer_epoch = 0;
    open.state = crate::transactions::TransactionState::Ongoing;
    open.partitions.insert(("orders".into(), 0));
    if !store_transaction(&nodes, old_leader, &open, None, Duration::from_secs(10)).await? {
        return Err("the first store of a new transactional id changed nothing".into());
    }

    let (others, new_leader) = partition_away(&nodes, old_leader, old_term).await?;
    // The new coordinator's load: a no-op of its term first, then what it applied.
    write(&nodes, new_leader, Command::SetClusterId { cluster_id: String::new() }).await?;
    let read = node(&nodes, new_leader)
        .and_then(|n| n.metadata.borrow().transactions.get(&1000).map(|meta| TransactionMetadata::clone(meta)))
        .ok_or("the new leader lost the open transaction")?;
    if read != open {
        return Err(format!("the new leader read {read:?}, not the open transaction").into());
    }
    let mut aborted = read.clone();
    aborted.producer_epoch = 1;
    aborted.state = crate::transactions::TransactionState::PrepareAbort;
    if !store_transaction(&nodes, new_leader, &aborted, Some(&read), Duration::from_secs(10)).await? {
        return Err("the new coordinator's abort changed nothing".into());
    }

    let mut committed = open.clone();
    committed.state = crate::transactions::TransactionState::PrepareCommit;
    if let Ok(true) = store_transaction(&nodes, old_leader, &committed, Some(&open), Duration::from_secs(2)).await {
        return Err(format!("node {old_leader} committed a store while partitioned from the majority").into());
    }
    for other in &others {
        turmoil::repair(host_name(old_leader), host_name(*other));
    }
    let (leader, _) = wait_for("one leader after healing", || agreed_leader(&nodes, &NODES)).await?;
    if store_transaction(&nodes, leader, &committed, Some(&open), Duration::from_secs(10)).await? {
        return Err("a store from a stale read overwrote the new coordinator's abort".into());
    }
    let agreed = wait_for("every node applying the same metadata", || agreed_metadata(&nodes)).await?;
    match agreed.transactions.get(&1000) {
        Some(meta) if **meta == aborted => Ok(()),
        other => Err(format!("converged on {other:?}, not the new coordinator's abort").into()),
    }
}

fn simulation(seed: u64) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(300))
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .build()
}

/// Adds the three nodes, each keeping its raft dir under `dirs` across crashes and restarts.
fn add_nodes(sim: &mut turmoil::Sim<'static>, dirs: &tempfile::TempDir, nodes: &Nodes) {
    for node_id in NODES {
        let raft_dir = dirs.path().join(host_name(node_id));
        let nodes = Arc::clone(nodes);
        sim.host(host_name(node_id), move || run_node(node_id, raft_dir.clone(), Arc::clone(&nodes)));
    }
}

/// Runs one seed of a driver that needs no crash or restart (those are the crash scenario's, stepped from outside).
fn run_seed<F>(seed: u64, driver: impl FnOnce(Nodes) -> F) -> Result<(), String>
where
    F: std::future::Future<Output = turmoil::Result> + 'static,
{
    let dirs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut sim = simulation(seed);
    let nodes: Nodes = Arc::default();
    add_nodes(&mut sim, &dirs, &nodes);
    sim.client("driver", driver(Arc::clone(&nodes)));
    let outcome = sim.run().map_err(|e| e.to_string());
    nodes.lock().expect("nodes lock").clear();
    outcome
}

/// Where the crash scenario is; the driver (inside the simulation) and the loop stepping it (outside, where
/// hosts can be crashed and restarted) hand over through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPhase {
    Electing,
    /// The driver asks for this node (the leader) to be crashed.
    CrashRequested(NodeId),
    Crashed(NodeId),
    RestartRequested(NodeId),
    Restarted,
}

type Phase = Arc<Mutex<CrashPhase>>;

fn phase_is(phase: &Phase, wanted: CrashPhase) -> Option<()> {
    (*phase.lock().expect("phase lock") == wanted).then_some(())
}

fn alter_group_config(key: &str, value: &str) -> Command {
    Command::AlterGroupConfig { group: "billing".into(), changes: vec![(key.into(), Some(value.into()))] }
}

/// Crash the leader, commit through the new one, restart the old leader: it recovers its log from disk and
/// catches up to the same metadata, a group's config altered through each leader merged.
async fn crash_scenario(nodes: Nodes, phase: Phase) -> turmoil::Result {
    let (old_leader, _) = wait_for("first leader", || agreed_leader(&nodes, &NODES)).await?;
    for node_id in NODES {
        write(&nodes, old_leader, Command::MarkAlive { node_id, address: host_name(node_id), rack: None, at_ms: 1 })
            .await?;
    }
    write(&nodes, old_leader, alter_group_config("consumer.session.timeout.ms", "20000")).await?;
    *phase.lock().expect("phase lock") = CrashPhase::CrashRequested(old_leader);
    wait_for("the crash", || phase_is(&phase, CrashPhase::Crashed(old_leader))).await?;
    nodes.lock().expect("nodes lock").remove(&old_leader);
    let others: Vec<NodeId> = NODES.into_iter().filter(|id| *id != old_leader).collect();
    let (new_leader, _) =
        wait_for("a new leader", || agreed_leader(&nodes, &others).filter(|(l, _)| *l != old_leader)).await?;
    write(&nodes, new_leader, Command::Fence { node_id: old_leader, at_ms: 2, stopped_incarnation: None }).await?;
    write(&nodes, new_leader, alter_group_config("consumer.heartbeat.interval.ms", "2000")).await?;
    *phase.lock().expect("phase lock") = CrashPhase::RestartRequested(old_leader);
    wait_for("the restart", || phase_is(&phase, CrashPhase::Restarted)).await?;
    write(
        &nodes,
        new_leader,
        Command::MarkAlive { node_id: old_leader, address: host_name(old_leader), rack: None, at_ms: 3 },
    )
    .await?;
    let agreed =
        wait_for("every node, the restarted one too, applying the same metadata", || agreed_metadata(&nodes)).await?;
    let billing = agreed.group_configs.get("billing").map(|keys| keys.keys().map(String::as_str).collect());
    if agreed.nodes.len() != 3
        || agreed.state_of(old_leader) != Some(super::metadata::NodeState::Alive)
        || billing != Some(vec!["consumer.heartbeat.interval.ms", "consumer.session.timeout.ms"])
    {
        return Err(format!("converged metadata is not the committed one: {agreed:?}").into());
    }
    Ok(())
}

fn run_crash_seed(seed: u64) -> Result<(), String> {
    let dirs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut sim = simulation(seed);
    let nodes: Nodes = Arc::default();
    add_nodes(&mut sim, &dirs, &nodes);
    let phase: Phase = Arc::new(Mutex::new(CrashPhase::Electing));
    sim.client("driver", crash_scenario(Arc::clone(&nodes), Arc::clone(&phase)));
    let outcome = loop {
        match sim.step() {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(err) => break Err(err.to_string()),
        }
        let current = *phase.lock().expect("phase lock");
        match current {
            CrashPhase::CrashRequested(victim) => {
                sim.crash(host_name(victim));
                *phase.lock().expect("phase lock") = CrashPhase::Crashed(victim);
            }
            CrashPhase::RestartRequested(victim) => {
                sim.bounce(host_name(victim));
                *phase.lock().expect("phase lock") = CrashPhase::Restarted;
            }
            _ => {}
        }
    };
    nodes.lock().expect("nodes lock").clear();
    outcome
}

/// The seeds to run: `RILL_SIM_SEED` alone, or `RILL_SIM_SEEDS` (default 20) from `RILL_SIM_FIRST_SEED` (0).
/// The replication simulation takes the same.
pub(crate) fn seeds() -> Vec<u64> {
    match std::env::var("RILL_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("RILL_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("RILL_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
            // Past the seeds CI runs, for a search of new ones.
            let first = std::env::var("RILL_SIM_FIRST_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
            (first..first + count).collect()
        }
    }
}

#[test]
fn a_partitioned_leader_is_replaced_and_every_node_converges_after_healing() {
    for seed in seeds() {
        if let Err(err) = run_seed(seed, scenario) {
            panic!("simulation failed with seed {seed} (rerun: RILL_SIM_SEED={seed}): {err}");
        }
    }
}

#[test]
fn a_deposed_transaction_coordinator_cannot_overwrite_its_successors_change() {
    for seed in seeds() {
        if let Err(err) = run_seed(seed, transaction_scenario) {
            panic!("simulation failed with seed {seed} (rerun: RILL_SIM_SEED={seed}): {err}");
        }
    }
}

#[test]
fn a_crashed_leader_restarts_from_its_raft_dir_and_catches_up() {
    for seed in seeds() {
        if let Err(err) = run_crash_seed(seed) {
            panic!("simulation failed with seed {seed} (rerun: RILL_SIM_SEED={seed}): {err}");
        }
    }
}
