//! A turmoil simulation of partition replication: three nodes, each with the real [`Node`] parts replication
//! touches (the registry and its storage `Log`s in a temp dir, the reconciler, the follower's fetcher, the
//! leader's high watermark and ISR logic, the produce path), on simulated hosts. Followers reach leaders, and the
//! producer reaches nodes, over turmoil's TCP (`wire.rs`); the controller is a stand-in that applies the real
//! metadata commands (`controller.rs`). Each node's disk reserve (`disk_reserve.rs`) reads its free space from
//! the simulation, so a full disk is a fault like the others.
//!
//! Per seed: a producer sends numbered records to partition 0 of a topic with RF 3 and `min_insync_replicas`
//! 2 (three in four with ACKS_ALL, the rest ACKS_LEADER) while the driver injects faults for
//! [`FAULTS_FOR`]: the partition leader cut off from its followers and the controller (with or without the
//! producer), a follower cut off, a node crashed and restarted (its log recovered from its files), a node's
//! disk full (the leader's or a follower's: its appends are refused `disk-full`, so the leader hands the
//! partition to an in-sync replica, `resign.rs`, a follower says it cannot append and leaves the ISR, and a
//! group coordinator refuses commits and hands its offsets partition over), a failed fsync of a node's log of the
//! partition (storage's `fail_fsyncs`: the log refuses appends until the node restarts, which ends the fault; a
//! leader hands the partition over as for a full disk, a follower says it cannot append), message loss and
//! longer latencies (in half of those spells the controller's answers to ISR changes are lost too, the changes
//! committing later, `controller.rs`).
//! Every third round the driver also fetches, then commits, a group's offset (see below). Then it heals
//! everything, waits for the replicas to converge, and checks:
//!
//! - every record acknowledged with ACKS_ALL is in the converged log, once, in the order acknowledged;
//! - each leader epoch was written by one node at most (by the epoch stamped in each answered produce's batch);
//! - the replicas' logs are byte-identical up to the high watermark, which is their log end;
//! - on every replica whose high watermark the broker moves, it never went backwards (sampled each tick);
//! - a group's committed offset, fetched from the node the controller names coordinator (the leader of the
//!   group's `__consumer_offsets` partition, at the same epoch before the fetch and after its answer), is never
//!   below an offset commit acknowledged before the fetch was sent; after healing the coordinator serves at
//!   least the last acknowledged commit. Commits and fetches go through the real `ConsumerGroups` service and
//!   the replicated offsets store, across the same faults;
//! - share groups' states (`share_states.rs`), stored at the same coordinator as a partition leader stores them:
//!   a deposed leader's save (an older fencing token than one acknowledged) is never acknowledged, and after
//!   healing the coordinator holds at least the last acknowledged version;
//! - DeleteRecords (`deletions.rs`): the driver sometimes deletes up to near the acknowledged end, so followers
//!   cut off or crashed start over at the leader's log start; no log start ever goes back (across restarts too);
//!   after healing each replica's start is between the leader's and the high watermark and at or above every low
//!   watermark answered, and the checks above hold from the highest log start on;
//! - a restarted node's high watermark is never below what its high-watermark checkpoint held when it crashed,
//!   from the moment the broker holds it on (sampled each tick). The first fault of every seed crashes the
//!   partition leader once the checkpoint holds a high watermark above 0, so every seed checks it.
//! - follower reads (`follower_reads.rs`, KIP-392; each node in a rack of its own): every batch a follower served
//!   a consumer's read is in the converged log, byte for byte, at the offset served; the leader names a follower
//!   for a consumer only in that follower's rack.
//!
//! Seeds: `RILL_SIM_SEEDS=N` runs seeds 0..N (default 20), from `RILL_SIM_FIRST_SEED=F` on F..F+N, and
//! `RILL_SIM_SEED=S` only S; a failure names its seed.
//! The seed fixes the faults, turmoil's latencies and losses, and the order hosts run in; storage runs on
//! tokio's blocking pool in real time, so a rerun replays the same faults but not always the same interleaving.

mod checks;
mod controller;
mod deletions;
mod follower_reads;
mod offsets;
mod share_states;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_protocol::v1;
use rill_storage::SegmentFileCache;
use tokio::sync::watch;

use self::checks::{check, converged_logs};
use self::controller::StandInController;
use self::deletions::Deletions;
use self::offsets::Commits;
use super::Replication;
use crate::cluster::metadata::Command;
use crate::cluster::placement;
use crate::config::BrokerConfig;
use crate::file_budget::FileBudget;
use crate::groups::GroupCoordinator;
use crate::node::Node;
use crate::offsets::OffsetStore;
use crate::producer_ids::{LocalProducerIdBlocks, ProducerIds};
use crate::registry::Registry;

const NODES: [u64; 3] = [1, 2, 3];
const TOPIC: &str = "orders";
const DRIVER: &str = "driver";
const REPLICA_LAG_MS: u64 = 1_000;
/// The stand-in fences a node it has not heard from for this long, as the keeper does.
const SESSION_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Faults start once the cluster has formed and stop after this long.
const FAULTS_FROM: Duration = Duration::from_secs(2);
const FAULTS_FOR: Duration = Duration::from_secs(16);
/// Fewer acknowledged records than this means the workload, not replication, is broken.
const MIN_ACKNOWLEDGED: usize = 10;
/// Simulated time any one wait of the driver may take.
const SIM_DEADLINE: Duration = Duration::from_secs(60);
/// Short, so a crash finds a recent checkpoint.
const CHECKPOINT_INTERVAL_MS: u64 = 200;

fn host_name(node_id: u64) -> String {
    format!("node{node_id}")
}

/// What the hosts, the driver and the fault loop share.
#[derive(Default)]
struct World {
    controller: Arc<StandInController>,
    nodes: Mutex<BTreeMap<u64, Arc<Node>>>,
    /// For each leader epoch, the nodes that answered a produce with a batch stamped with it.
    writers: Mutex<BTreeMap<i32, BTreeSet<u64>>>,
    violations: Mutex<Vec<String>>,
    /// Set by the fault loop once every fault is healed.
    is_healed: AtomicBool,
    faults: Mutex<Vec<String>>,
    summary: Mutex<String>,
    /// Nodes restarted while the session of their previous process runs: the keeper's sessions refuse the new
    /// process's heartbeats (another incarnation) until that session expires and the node is fenced.
    refused: Mutex<BTreeSet<u64>>,
    data_dirs: BTreeMap<u64, PathBuf>,
    /// For each crashed node, the partition's high watermark in its checkpoint file at the crash: its next
    /// process's high watermark must never be below it.
    checkpointed_at_crash: Mutex<BTreeMap<u64, i64>>,
    /// Restarted processes whose high watermark was checked against a checkpointed value above 0.
    restarts_checked: AtomicUsize,
    /// For each crashed node, the log start it had published at the crash: its next process's never goes below.
    log_start_at_crash: Mutex<BTreeMap<u64, i64>>,
    /// Followers seen starting their log over at the leader's log start (`deletions::watch_log_start`).
    start_overs: AtomicUsize,
    /// DeleteRecords calls the driver was answered a low watermark for.
    deletions_succeeded: AtomicUsize,
    /// Nodes whose disk is full: a process (re)started meanwhile starts full.
    full_disks: Mutex<BTreeSet<u64>>,
    /// Leaders whose disk filled and whose partition an in-sync replica led at a later epoch by the time the
    /// fault ended (nothing else moves a leadership while a node's disk is the only fault).
    handovers: AtomicUsize,
    /// Followers whose disk filled and who were out of the ISR by the time it ended.
    full_followers_dropped: AtomicUsize,
    /// Group coordinators whose disk filled and whose offsets partition an in-sync replica led at a later epoch
    /// by the time it ended: below half the reserve, commits are refused and the partition is handed over.
    coordinator_handovers: AtomicUsize,
    /// Leaders whose log of the partition had an fsync fail and whose partition an in-sync replica led at a later
    /// epoch by the time the fault ended.
    failed_fsync_handovers: AtomicUsize,
    /// Followers whose log of the partition had an fsync fail and who were out of the ISR by the time it ended.
    failed_fsync_followers_dropped: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl World {
    fn node(&self, node_id: u64) -> Option<Arc<Node>> {
        lock(&self.nodes).get(&node_id).cloned()
    }

    /// The partition's high watermark in the checkpoint file in `node_id`'s data dir, if any.
    fn checkpointed(&self, node_id: u64) -> Option<i64> {
        let dir = self.data_dirs.get(&node_id)?;
        rill_storage::HighWatermarkCheckpoint::load(dir).ok().flatten()?.get(TOPIC, 0)
    }

    fn violation(&self, what: String) {
        lock(&self.violations).push(what);
    }

    /// The node heartbeats: the controller marks it alive if it can hear it.
    fn heartbeat(&self, node_id: u64) {
        if !self.controller.is_cut_off(node_id) && !lock(&self.refused).contains(&node_id) {
            let (address, rack) = (host_name(node_id), Some(follower_reads::rack_of(node_id)));
            self.controller.commit(&Command::MarkAlive { node_id, address, rack, at_ms: 0 });
        }
    }
}

/// One node: the parts of `server.rs`'s start that replication uses, with the simulation's links.
async fn run_node(node_id: u64, data_dir: PathBuf, world: Arc<World>) -> turmoil::Result {
    std::fs::create_dir_all(&data_dir)?;
    let config = Arc::new(BrokerConfig {
        replica_lag_time_max_ms: REPLICA_LAG_MS,
        high_watermark_checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS,
        offsets_topic_partitions: 1,
        ..BrokerConfig::for_tests(&data_dir)
    });
    let budget = FileBudget { max_open_files: 1_000, reserved_files: 100, files_per_partition: 3 };
    let registry =
        Registry::restore(Arc::clone(&config), budget, Arc::new(SegmentFileCache::new(16)), None, None).await?;
    let (_shutdown, shutdown) = watch::channel(false);
    let controller = world.controller.connect(node_id);
    let acls = Arc::new(crate::auth::acl_store::AclStore::open(&data_dir)?);
    let users = Arc::new(crate::auth::UserStore::open(&data_dir)?);
    let offsets = Arc::new(OffsetStore::replicated(Arc::clone(&controller), node_id, Arc::clone(&config)));
    // Free space from the simulation, not from the machine's disk the hosts share.
    let disk_reserve = Arc::new(crate::disk_reserve::DiskReserve::simulated(&data_dir));
    if lock(&world.full_disks).contains(&node_id) {
        disk_reserve.set_free_bytes(0);
    }
    let quotas = Arc::new(crate::quotas::store::QuotaStore::open(&data_dir)?);
    let transactions = crate::transactions::TransactionCoordinator::open(&data_dir)?;
    let schemas = Arc::new(crate::schema_registry::SchemaStore::open(&data_dir)?);
    let group_configs =
        Arc::new(crate::group_config::GroupConfigs::open(crate::group_config::GroupDefaults::of(&config), &data_dir)?);
    let node = Arc::new_cyclic(|weak| Node {
        client_telemetry: Arc::new(crate::client_telemetry::ClientTelemetry::new(
            &[],
            crate::client_telemetry::store::SubscriptionStore::in_memory(),
        )),
        // Transactions are not simulated here: a single node's coordinator, never asked.
        transactions,
        quotas: Arc::new(crate::quotas::throttle::ClientThrottle::new(
            quotas,
            std::time::Duration::from_millis(config.quota_window_ms),
        )),
        // Authorization off: the simulation is about replication, not who may produce.
        authorizer: Arc::new(crate::auth::Authorizer::new(false, &[], acls)),
        disk_reserve: Arc::clone(&disk_reserve),
        oauth: None,
        schemas,
        config: Arc::clone(&config),
        registry,
        offsets,
        groups: Arc::new(GroupCoordinator::new(Arc::clone(&config), Arc::clone(&group_configs))),
        shares: Arc::new(crate::share_groups::ShareGroups::clustered(Arc::clone(&group_configs))),
        group_configs,
        fetch_sessions: Default::default(),
        producer_ids: Arc::new(ProducerIds::new(Box::new(LocalProducerIdBlocks::new(&config.data_dir)))),
        shutdown,
        metrics: None,
        users,
        replication: Some(Arc::new(Replication::with_links(
            node_id,
            controller,
            Arc::new(wire::SimLeaders),
            Arc::clone(&config),
            weak.clone(),
            REPLICA_LAG_MS,
        ))),
    });
    let replication = node.replication.clone().ok_or("node without replication")?;
    let listener = turmoil::net::TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), wire::PORT)).await?;
    lock(&world.nodes).insert(node_id, Arc::clone(&node));
    world.heartbeat(node_id);
    tokio::spawn(super::run_reconciler(replication));
    tokio::spawn(watch_high_watermark(node_id, Arc::clone(&node), Arc::clone(&world)));
    tokio::spawn(deletions::watch_log_start(node_id, Arc::clone(&node), Arc::clone(&world)));
    loop {
        let (stream, _) = listener.accept().await?;
        let world = Arc::clone(&world);
        let on_produced = move |_offset: i64, epoch: i32| {
            lock(&world.writers).entry(epoch).or_default().insert(node_id);
        };
        tokio::spawn(wire::serve_connection(stream, Arc::clone(&node), on_produced));
    }
}

/// Samples the partition's high watermark every tick once the broker holds it (from the reconciler's first
/// look at the partition on): it must never go back during this process's life, nor be below what the
/// checkpoint held when the node's previous process crashed.
async fn watch_high_watermark(node_id: u64, node: Arc<Node>, world: Arc<World>) {
    let mut highest: Option<i64> = None;
    let floor = lock(&world.checkpointed_at_crash).get(&node_id).copied();
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Ok(partition) = node.registry.partition(TOPIC, 0) else { continue };
        let log = partition.log();
        if !log.is_high_watermark_held() {
            continue;
        }
        let high_watermark = log.high_watermark();
        let role = || match node.check_leader(TOPIC, 0) {
            Ok(()) => "leader",
            Err(_) => "follower",
        };
        if let Some(floor) = floor.filter(|f| high_watermark < *f) {
            world.violation(format!(
                "node {node_id} ({}, log end {}): restarted with the high watermark at {high_watermark}, below the \
                 {floor} its checkpoint held when it crashed",
                role(),
                log.log_end_offset()
            ));
            return;
        }
        if highest.is_none() && floor.is_some_and(|f| f > 0) {
            world.restarts_checked.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(highest) = highest.filter(|h| high_watermark < *h) {
            world.violation(format!(
                "node {node_id} ({}, log end {}): the high watermark went back from {highest} to {high_watermark}",
                role(),
                log.log_end_offset()
            ));
            return;
        }
        highest = Some(highest.map_or(high_watermark, |h| h.max(high_watermark)));
    }
}

/// Polls `check` every 20 ms of simulated time until it returns `Some`, failing past the raft simulation's
/// deadline.
async fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> Result<T, String> {
    crate::cluster::simulation::poll_until(Duration::from_millis(20), what, check).await
}

/// The partition as the controller has it and as each running node holds it: what a failed wait prints.
fn describe_partition(world: &World) -> String {
    let committed = world.controller.committed();
    let placed = committed.topics.get(TOPIC).and_then(|t| t.partitions.first()).map(|p| {
        format!("leader {:?} at epoch {}, replicas {:?}, ISR {:?}", p.leader, p.leader_epoch, p.replicas, p.isr)
    });
    let nodes: Vec<String> = NODES
        .iter()
        .map(|id| match world.node(*id).map(|node| node.registry.partition(TOPIC, 0)) {
            Some(Ok(partition)) => {
                let log = partition.log();
                let role = match world.node(*id).map(|node| node.check_leader(TOPIC, 0)) {
                    Some(Ok(())) => "leads",
                    _ => "follows",
                };
                format!(
                    "node {id} {role} ({:?} to the controller): log {}..{}, high watermark {}, leader epoch {}",
                    committed.state_of(*id),
                    log.log_start_offset(),
                    log.log_end_offset(),
                    log.high_watermark(),
                    log.leader_epoch()
                )
            }
            Some(Err(err)) => format!("node {id}: {err}"),
            None => format!("node {id}: not running"),
        })
        .collect();
    format!("controller: {placed:?}; {}", nodes.join("; "))
}

fn produce_request(sequence: u64, acks: v1::Acks) -> v1::ProduceRequest {
    let record = v1::Record { value: Some(Bytes::copy_from_slice(&sequence.to_be_bytes())), ..Default::default() };
    v1::ProduceRequest {
        topic: TOPIC.into(),
        partition: Some(0),
        acks: acks as i32,
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records: vec![record] })),
    }
}

/// The producer and the checks: produce through the faults; once healed, converge and check.
async fn drive(world: Arc<World>, mut deletions: Deletions) -> turmoil::Result {
    wait_for("three alive nodes", || (world.controller.committed().alive_nodes().len() == NODES.len()).then_some(()))
        .await?;
    let settings = {
        let node = world.node(1).ok_or("node 1 not running")?;
        let (_, settings) =
            node.registry.check_create(TOPIC, 1, &v1::TopicConfig::default(), &crate::topic_defaults::NONE)?;
        settings
    };
    let placed = placement::place(
        1,
        Some(3),
        Some(2),
        &world.controller.committed().alive_nodes(),
        &Default::default(),
        &Default::default(),
        settings,
    )?;
    world.controller.commit(&Command::CreateTopic { name: TOPIC.into(), placement: placed });
    // The offsets topic as a node's first group request would create it, but with 3 replicas (the simulation's
    // nodes are configured without peers, from which a node takes the replication factor).
    let offsets_settings = {
        let node = world.node(1).ok_or("node 1 not running")?;
        crate::offsets::replicated::topic_settings(&node.config)
    };
    let alive = world.controller.committed().alive_nodes();
    let offsets_placed =
        placement::place(1, Some(3), None, &alive, &Default::default(), &Default::default(), offsets_settings)?;
    let name = crate::offsets::OFFSETS_TOPIC.to_owned();
    world.controller.commit(&Command::CreateTopic { name, placement: offsets_placed });
    let mut commits = Commits::default();
    let mut share_saves = share_states::ShareSaves::default();
    let mut follower_reads = follower_reads::FollowerReads::default();

    // Each ACKS_ALL-acknowledged sequence with the offset it was answered at.
    let mut acknowledged: Vec<(u64, i64)> = Vec::new();
    let mut sequence = 0;
    let mut target = 0;
    while !world.is_healed.load(Ordering::Acquire) {
        sequence += 1;
        if sequence % 3 == 0 {
            commits.round(&world, sequence as i64).await;
        }
        if sequence % 3 == 1 {
            share_saves.round(&world, sequence).await;
        }
        follower_reads.round(&world).await;
        let acks = if sequence % 4 == 0 { v1::Acks::Leader } else { v1::Acks::All };
        match wire::produce(&host_name(NODES[target]), &produce_request(sequence, acks)).await {
            Ok(produced) if acks == v1::Acks::All => {
                acknowledged.push((sequence, produced.base_offset));
                deletions.maybe_delete(&host_name(NODES[target]), produced.base_offset + 1).await;
            }
            Ok(_) => {}
            Err(_) => {
                // Not the leader, not enough replicas, or unreachable: as a client would, try the next node.
                target = (target + 1) % NODES.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    wait_for("every replica back in the ISR under a leader", || {
        let metadata = world.controller.committed();
        let p = metadata.topics.get(TOPIC)?.partitions.first()?.clone();
        (p.leader.is_some() && p.isr.len() == NODES.len()).then_some(())
    })
    .await
    .map_err(|err| format!("{err}: {}", describe_partition(&world)))?;
    // One more acknowledged record, so the high watermark covers everything the leader holds.
    let deadline = tokio::time::Instant::now() + SIM_DEADLINE;
    loop {
        sequence += 1;
        if let Ok(produced) = wire::produce(&host_name(NODES[target]), &produce_request(sequence, v1::Acks::All)).await
        {
            acknowledged.push((sequence, produced.base_offset));
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no ACKS_ALL produce succeeded after healing".into());
        }
        target = (target + 1) % NODES.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = wait_for("replicas with equal log ends, each its high watermark, each start followed", || {
        converged_logs(&world)
    })
    .await?;
    check(&world, &converged, &acknowledged, &deletions)?;
    follower_reads.check(&converged)?;
    commits.check_final(&world).await?;
    share_saves.check_final(&world).await?;
    let epochs = lock(&world.writers).clone();
    let faults = lock(&world.faults).clone();
    tracing::info!(acknowledged = acknowledged.len(), sent = sequence, ?epochs, ?faults, "converged");
    world.deletions_succeeded.store(deletions.succeeded, Ordering::Relaxed);
    *lock(&world.summary) = format!(
        "{} of {sequence} records acknowledged, epochs written {epochs:?}, restarts checked against their \
         checkpoint {}, checkpointed at crash {:?}, deletions {deletions:?}, log starts {:?}, start-overs {}, \
         commits {commits:?}, share saves {share_saves:?}, offsets partition at {:?}, follower reads {} (redirects {}), faults {faults:?}",
        acknowledged.len(),
        world.restarts_checked.load(Ordering::Relaxed),
        lock(&world.checkpointed_at_crash),
        converged.log_starts,
        world.start_overs.load(Ordering::Relaxed),
        offsets::coordinator(&world),
        follower_reads.reads,
        follower_reads.redirects,
    );
    Ok(())
}

/// A fault the loop injects, and how it ends.
#[derive(Debug, Clone)]
enum Fault {
    /// Cut off from the other nodes and the controller (and from the producer if `alone`).
    Isolated {
        node_id: u64,
        alone: bool,
    },
    Crashed {
        node_id: u64,
    },
    /// No free space left below the node's disk reserve; `led_at` is the leader epoch if it led the partition,
    /// `coordinated_at` if it led the group's offsets partition.
    DiskFull {
        node_id: u64,
        led_at: Option<u32>,
        coordinated_at: Option<u32>,
    },
    /// An fsync of the node's log of the partition failed: the log takes no appends until the node restarts,
    /// which ends the fault. `led_at` as for `DiskFull`.
    FsyncFailed {
        node_id: u64,
        led_at: Option<u32>,
    },
    /// Message loss and slower messages everywhere.
    Lossy,
}

struct FaultLoop {
    rng: StdRng,
    world: Arc<World>,
    active: Option<(Fault, Duration)>,
    /// When the controller fences each silent node, unless heard from before.
    fences: BTreeMap<u64, Duration>,
    next_at: Duration,
    has_crashed_leader: bool,
}

impl FaultLoop {
    fn leader(&self) -> u64 {
        self.partition_state().and_then(|(leader, _, _)| leader).unwrap_or(NODES[0])
    }

    /// The partition's leader, leader epoch and ISR as committed.
    fn partition_state(&self) -> Option<(Option<u64>, u32, Vec<u64>)> {
        let metadata = self.world.controller.committed();
        let p = metadata.topics.get(TOPIC)?.partitions.first()?.clone();
        Some((p.leader, p.leader_epoch, p.isr))
    }

    fn fill_disk(&self, node_id: u64, free_bytes: u64) {
        let mut full = lock(&self.world.full_disks);
        if free_bytes == 0 {
            full.insert(node_id);
        } else {
            full.remove(&node_id);
        }
        if let Some(node) = self.world.node(node_id) {
            node.disk_reserve.set_free_bytes(free_bytes);
        }
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, now: Duration) {
        let leader = self.leader();
        let other = *NODES.iter().filter(|id| **id != leader).nth(self.rng.gen_range(0..2)).unwrap_or(&NODES[0]);
        let drawn = self.rng.gen_range(0..9);
        let fault = match drawn {
            // The first fault crashes the leader (see `step`): every seed restarts a leader from its checkpoint.
            _ if !self.has_crashed_leader => Fault::Crashed { node_id: leader },
            0 => Fault::Isolated { node_id: leader, alone: false },
            1 => Fault::Isolated { node_id: leader, alone: true },
            2 => Fault::Isolated { node_id: other, alone: false },
            3 => Fault::Crashed { node_id: if self.rng.gen_bool(0.7) { leader } else { other } },
            4 | 5 => {
                let node_id = if drawn == 4 { leader } else { other };
                let led_at = self.partition_state().filter(|(l, _, _)| *l == Some(node_id)).map(|(_, epoch, _)| epoch);
                let coordinated_at =
                    offsets::coordinator(&self.world).filter(|(l, _)| *l == node_id).map(|(_, epoch)| epoch);
                Fault::DiskFull { node_id, led_at, coordinated_at }
            }
            6 | 7 => {
                let node_id = if drawn == 6 { leader } else { other };
                let led_at = self.partition_state().filter(|(l, _, _)| *l == Some(node_id)).map(|(_, epoch, _)| epoch);
                Fault::FsyncFailed { node_id, led_at }
            }
            _ => Fault::Lossy,
        };
        match &fault {
            Fault::Isolated { node_id, alone } => {
                for peer in NODES.iter().filter(|id| *id != node_id) {
                    sim.partition(host_name(*node_id), host_name(*peer));
                }
                if *alone {
                    sim.partition(host_name(*node_id), DRIVER);
                }
                self.world.controller.cut_off(*node_id);
            }
            Fault::Crashed { node_id } => {
                self.has_crashed_leader |= *node_id == leader;
                self.crash(sim, *node_id);
            }
            Fault::DiskFull { node_id, .. } => self.fill_disk(*node_id, 0),
            Fault::FsyncFailed { node_id, .. } => {
                let partition = self.world.node(*node_id).and_then(|node| node.registry.partition(TOPIC, 0).ok());
                if let Some(partition) = partition {
                    partition.log().fail_fsyncs("Input/output error (os error 5), injected by the simulation");
                }
            }
            Fault::Lossy => {
                sim.set_fail_rate(0.05);
                sim.set_max_message_latency(Duration::from_millis(100));
            }
        }
        let lasts = Duration::from_millis(self.rng.gen_range(500..4_000));
        // Half the lossy spells also lose the controller's answers to ISR changes, chosen without a draw of
        // its own so the other faults of a seed stay what they were.
        if matches!(fault, Fault::Lossy) && lasts.as_millis().is_multiple_of(2) {
            self.world.controller.lose_isr_answers();
        }
        lock(&self.world.faults).push(format!("{fault:?} at {now:?} for {lasts:?}"));
        if let Fault::Isolated { node_id, .. } | Fault::Crashed { node_id } = &fault {
            self.fences.insert(*node_id, now + SESSION_TIMEOUT);
        }
        self.active = Some((fault, now + lasts));
    }

    /// Stops the node's process, keeping what the restart checks need.
    fn crash(&self, sim: &mut turmoil::Sim<'_>, node_id: u64) {
        if let Some(checkpointed) = self.world.checkpointed(node_id) {
            lock(&self.world.checkpointed_at_crash).insert(node_id, checkpointed);
        }
        if let Some(log_start) = deletions::log_start_of(&self.world, node_id) {
            lock(&self.world.log_start_at_crash).insert(node_id, log_start);
        }
        sim.crash(host_name(node_id));
        lock(&self.world.nodes).remove(&node_id);
        self.world.controller.cut_off(node_id);
    }

    fn end(&mut self, sim: &mut turmoil::Sim<'_>) {
        let Some((fault, _)) = self.active.take() else { return };
        match fault {
            Fault::Isolated { node_id, alone } => {
                for peer in NODES.iter().filter(|id| **id != node_id) {
                    sim.repair(host_name(node_id), host_name(*peer));
                }
                if alone {
                    sim.repair(host_name(node_id), DRIVER);
                }
                // Heard again within its session: not fenced.
                self.fences.remove(&node_id);
                self.world.controller.reconnect(node_id);
                self.world.heartbeat(node_id);
            }
            Fault::Crashed { node_id } => {
                if self.fences.contains_key(&node_id) {
                    lock(&self.world.refused).insert(node_id);
                }
                self.world.controller.reconnect(node_id);
                sim.bounce(host_name(node_id));
            }
            Fault::DiskFull { node_id, led_at, coordinated_at } => {
                let coordinator = offsets::coordinator(&self.world);
                if coordinated_at.is_some_and(|at| coordinator.is_some_and(|(l, epoch)| l != node_id && epoch > at)) {
                    self.world.coordinator_handovers.fetch_add(1, Ordering::Relaxed);
                }
                if let Some((leader, epoch, isr)) = self.partition_state() {
                    if led_at.is_some_and(|at| epoch > at) && leader.is_some_and(|l| l != node_id) {
                        self.world.handovers.fetch_add(1, Ordering::Relaxed);
                    }
                    if led_at.is_none() && leader != Some(node_id) && !isr.contains(&node_id) {
                        self.world.full_followers_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.fill_disk(node_id, u64::MAX);
            }
            Fault::FsyncFailed { node_id, led_at } => {
                if let Some((leader, epoch, isr)) = self.partition_state() {
                    if led_at.is_some_and(|at| epoch > at) && leader.is_some_and(|l| l != node_id) {
                        self.world.failed_fsync_handovers.fetch_add(1, Ordering::Relaxed);
                    }
                    if led_at.is_none() && leader != Some(node_id) && !isr.contains(&node_id) {
                        self.world.failed_fsync_followers_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Only a restart makes the log take appends again: the node stops and starts at once, while the
                // session of its stopped process still runs (as a crash that ends before its fencing).
                self.crash(sim, node_id);
                self.fences.insert(node_id, sim.elapsed() + SESSION_TIMEOUT);
                lock(&self.world.refused).insert(node_id);
                self.world.controller.reconnect(node_id);
                sim.bounce(host_name(node_id));
            }
            Fault::Lossy => {
                sim.set_fail_rate(0.0);
                sim.set_max_message_latency(Duration::from_millis(10));
                self.world.controller.stop_losing_answers();
            }
        }
    }

    /// Called after every step of the simulation.
    fn step(&mut self, sim: &mut turmoil::Sim<'_>) {
        let now = sim.elapsed();
        if self.world.is_healed.load(Ordering::Acquire) {
            return;
        }
        let is_over = now >= FAULTS_FROM + FAULTS_FOR;
        if is_over {
            self.end(sim);
            if self.fences.is_empty() {
                self.world.is_healed.store(true, Ordering::Release);
                return;
            }
        }
        let due: Vec<u64> = self.fences.iter().filter(|(_, at)| now >= **at).map(|(id, _)| *id).collect();
        for node_id in due {
            self.fences.remove(&node_id);
            self.world.controller.commit(&Command::Fence { node_id, at_ms: 0, stopped_incarnation: None });
            if lock(&self.world.refused).remove(&node_id) && lock(&self.world.nodes).contains_key(&node_id) {
                self.world.heartbeat(node_id);
            }
        }
        // The first crash waits until the leader's checkpoint covers a record, so the restart is checked.
        let is_first_crash_ready =
            || self.has_crashed_leader || self.world.checkpointed(self.leader()).is_some_and(|hw| hw > 0);
        let is_due = self.active.is_none()
            && !is_over
            && now >= self.next_at
            && self.world.controller.committed().topics.contains_key(TOPIC)
            && is_first_crash_ready();
        match &mut self.active {
            Some((_, until)) if now >= *until => {
                self.end(sim);
                self.next_at = now + Duration::from_millis(self.rng.gen_range(200..1_500));
            }
            None if is_due => self.start(sim, now),
            _ => {}
        }
    }
}

/// What one seed exercised, summed over the seeds so the test can insist each path ran somewhere.
#[derive(Debug, Default)]
struct Exercised {
    deletions_succeeded: usize,
    start_overs: usize,
    handovers: usize,
    full_followers_dropped: usize,
    coordinator_handovers: usize,
    failed_fsync_handovers: usize,
    failed_fsync_followers_dropped: usize,
}

fn run_seed(seed: u64) -> Result<Exercised, String> {
    let dirs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(200))
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .build();
    let data_dirs = NODES.iter().map(|id| (*id, dirs.path().join(host_name(*id)))).collect();
    let world = Arc::new(World { data_dirs, ..World::default() });
    for node_id in NODES {
        let data_dir = dirs.path().join(host_name(node_id));
        let world = Arc::clone(&world);
        sim.host(host_name(node_id), move || run_node(node_id, data_dir.clone(), Arc::clone(&world)));
    }
    sim.client(DRIVER, drive(Arc::clone(&world), Deletions::new(seed)));
    let mut faults = FaultLoop {
        rng: StdRng::seed_from_u64(seed),
        world: Arc::clone(&world),
        active: None,
        fences: BTreeMap::new(),
        next_at: FAULTS_FROM,
        has_crashed_leader: false,
    };
    let outcome = loop {
        match sim.step() {
            Ok(true) => break Ok(()),
            Ok(false) => faults.step(&mut sim),
            Err(err) => break Err(err.to_string()),
        }
    };
    lock(&world.nodes).clear();
    let outcome = outcome.map_err(|err| format!("{err} (faults: {:?})", lock(&world.faults)));
    if std::env::var_os("RILL_SIM_VERBOSE").is_some() {
        eprintln!("seed {seed}: {}", lock(&world.summary));
    }
    outcome.map(|()| Exercised {
        deletions_succeeded: world.deletions_succeeded.load(Ordering::Relaxed),
        start_overs: world.start_overs.load(Ordering::Relaxed),
        handovers: world.handovers.load(Ordering::Relaxed),
        full_followers_dropped: world.full_followers_dropped.load(Ordering::Relaxed),
        coordinator_handovers: world.coordinator_handovers.load(Ordering::Relaxed),
        failed_fsync_handovers: world.failed_fsync_handovers.load(Ordering::Relaxed),
        failed_fsync_followers_dropped: world.failed_fsync_followers_dropped.load(Ordering::Relaxed),
    })
}

/// Seeds past CI's that once failed, run with them unless `RILL_SIM_SEED` picks one. A rerun replays a seed's
/// faults but not always its interleaving, so each found its bug in most runs, not all.
fn regression_seeds() -> Vec<u64> {
    // 515: a follower that started over at the leader's log start after its disk filled stayed flagged as
    // unable to append, so the leader never took it back into the ISR while nothing was produced.
    // 3324, 3769: a follower whose disk was full joined the ISR at the high watermark; before the controller
    // applied it the high watermark passed it, and once it was elected the others truncated a committed record
    // (before the leader counted a joiner in the high watermark: 3769 failed in 25 of 25 runs, 3324 in 10 of 70).
    // 378: a node that began a leader epoch and lost it before appending kept that epoch at its log end, refused
    // the new leader's batches of the older epoch for good, and its whole stream from that leader failed with it
    // (3 of 3 runs before the fix).
    const FOUND: [u64; 4] = [378, 515, 3324, 3769];
    if std::env::var_os("RILL_SIM_SEED").is_some() {
        return Vec::new();
    }
    FOUND.iter().copied().filter(|seed| !crate::cluster::simulation::seeds().contains(seed)).collect()
}

#[test]
fn acknowledged_records_survive_partitions_crashes_and_loss_and_replicas_converge() {
    let started = std::time::Instant::now();
    let (mut deleting_seeds, mut starting_over_seeds, mut handing_over_seeds, mut dropping_seeds) = (0, 0, 0, 0);
    let mut coordinator_moving_seeds = 0;
    let (mut fsync_handing_over_seeds, mut fsync_dropping_seeds) = (0, 0);
    for seed in crate::cluster::simulation::seeds().into_iter().chain(regression_seeds()) {
        match run_seed(seed) {
            Ok(exercised) => {
                deleting_seeds += usize::from(exercised.deletions_succeeded > 0);
                starting_over_seeds += usize::from(exercised.start_overs > 0);
                handing_over_seeds += usize::from(exercised.handovers > 0);
                dropping_seeds += usize::from(exercised.full_followers_dropped > 0);
                coordinator_moving_seeds += usize::from(exercised.coordinator_handovers > 0);
                fsync_handing_over_seeds += usize::from(exercised.failed_fsync_handovers > 0);
                fsync_dropping_seeds += usize::from(exercised.failed_fsync_followers_dropped > 0);
            }
            Err(err) => panic!("replication simulation failed with seed {seed} (rerun: RILL_SIM_SEED={seed}): {err}"),
        }
    }
    eprintln!(
        "replication simulation: DeleteRecords answered in {deleting_seeds} seeds, a follower started over in \
         {starting_over_seeds}, a full leader handed over in {handing_over_seeds}, a full follower left the ISR in \
         {dropping_seeds}, a full coordinator handed its offsets partition over in {coordinator_moving_seeds}, a \
         leader whose fsync failed handed over in {fsync_handing_over_seeds}, a follower whose fsync failed left the \
         ISR in {fsync_dropping_seeds}, finished in {:?}",
        started.elapsed()
    );
    // Otherwise the log-start properties could pass without anything deleted or any follower starting over. A
    // single seed (`RILL_SIM_SEED`) may exercise neither, so only a run of several seeds is held to it.
    if crate::cluster::simulation::seeds().len() > 1 {
        assert!(deleting_seeds > 0, "no seed had a DeleteRecords answered");
        assert!(starting_over_seeds > 0, "no seed had a follower start over at the leader's log start");
        assert!(handing_over_seeds > 0, "no seed had a leader whose disk filled hand the partition over");
        assert!(dropping_seeds > 0, "no seed had a follower whose disk filled leave the ISR");
        assert!(coordinator_moving_seeds > 0, "no seed had a coordinator whose disk filled hand its groups over");
        assert!(fsync_handing_over_seeds > 0, "no seed had a leader whose fsync failed hand the partition over");
        assert!(fsync_dropping_seeds > 0, "no seed had a follower whose fsync failed leave the ISR");
    }
}
