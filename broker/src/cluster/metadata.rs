//! The cluster metadata the controller quorum replicates: the cluster id, the nodes and their liveness, topic
//! placement (partition → replicas, leader, leader epoch, ISR), the users and ACLs (`access.rs`), and the
//! transaction coordinator's transactional ids (`transactions/`). Changed
//! only by applying a [`Command`]
//! that raft committed, so every replica that applied the same log holds the same metadata.
//!
//! Leader elections happen here, in `apply`, so they are as deterministic as every other change: fencing a
//! node moves each partition it led to the first other member of the ISR (never outside it: unclean election
//! is off) with the epoch bumped, and takes the node out of every ISR it was in, unless it is the last member.
//! A partition whose last in-sync replica is fenced has no leader until that replica comes back.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::access::{AccessRefusal, AclBindings, Users};
use super::console_sessions::ConsoleSessions;
use super::reassignment_state::ReplicaReassignment;
use crate::auth::acl::AclBinding;
use crate::auth::users::UserRecord;
use crate::client_telemetry::subscriptions::{StoredSubscriptions, SubscriptionError};
use crate::group_config::{GroupConfigError, StoredGroupConfigs};
use crate::meta::TopicSettings;
use crate::quotas::{ClientQuotas, InvalidQuota, QuotaChange};
use crate::topic_defaults::TopicDefaults;
use crate::topic_id::TopicId;
use crate::transactions::TransactionMetadata;

/// The transaction coordinator's transactional ids, by producer id (what a partition leader looks a transactional
/// batch up by). Each id behind its own `Arc`, so a change copies the map's pointers, not every id's state.
pub type Transactions = Arc<BTreeMap<i64, Arc<TransactionMetadata>>>;

/// A node's liveness as the controller leader judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Heartbeating within `node_session_timeout_ms`.
    Alive,
    /// Silent for longer than `node_session_timeout_ms`; its leaderships (next step) move elsewhere.
    Fenced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: u64,
    pub address: String,
    /// Its `--rack` as its last heartbeat before this record named it (Kafka's `broker.rack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    pub state: NodeState,
    /// When the leader that wrote the current state decided it, by its wall clock (ms since the Unix epoch).
    /// Informational: no decision reads it, so clock skew between nodes cannot fence anyone.
    pub state_since_ms: i64,
    /// Set while fenced by its own graceful stop: the incarnation of the process that stopped. Every controller
    /// leader ignores that process's heartbeats (one may still be in flight), so it is never marked alive
    /// again; a restart, a new incarnation, is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_incarnation: Option<u64>,
}

/// Where a partition's replicas live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// Node ids holding a replica, the preferred leader first.
    pub replicas: Vec<u64>,
    pub leader: Option<u64>,
    /// Bumped on every leader change, so a deposed leader's writes can be told apart.
    pub leader_epoch: u32,
    /// The in-sync replicas.
    pub isr: Vec<u64>,
    /// The move under way, if any (`reassignment_state.rs`); `replicas` then ends with the replicas it adds.
    /// Absent from partitions written before moves were replicated, and from those not moving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<ReplicaReassignment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPlacement {
    /// Indexed by partition number.
    pub partitions: Vec<PartitionPlacement>,
    /// A produce is refused while a partition's ISR is smaller.
    pub min_insync_replicas: u32,
    /// Every replica opens its log with these.
    pub settings: TopicSettings,
    /// Chosen by the proposer of the create; `None` in a topic created before topic ids, which `topic_id` then
    /// derives from the name alike on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<TopicId>,
}

impl TopicPlacement {
    /// The topic's id (`topic_id.rs`): the same on every node that applied the same log.
    pub fn topic_id(&self, name: &str) -> TopicId {
        self.topic_id.unwrap_or_else(|| TopicId::derived(name))
    }

    /// The first partition's replica count, leaving out replicas a move under way is adding.
    pub fn replication_factor(&self) -> u32 {
        self.partitions.first().map_or(0, |p| p.original_replicas().len() as u32)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Chosen once, by the first controller leader.
    pub cluster_id: Option<String>,
    pub nodes: BTreeMap<u64, NodeRecord>,
    pub topics: BTreeMap<String, TopicPlacement>,
    /// The first producer id no node has been given yet: blocks are handed out from here, so ids are unique
    /// across the cluster and survive the loss of any node's disk (Kafka's KIP-730).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Nodes taken out of the cluster by `rill cluster remove-node`. Their ids are never reused, and a node
    /// that comes back with one is refused (its heartbeats, its start-up check), so a stale data dir cannot
    /// rejoin the replica sets it was reassigned away from.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub removed_nodes: std::collections::BTreeSet<u64>,
    /// The cluster's users: credentials and token hashes, never a secret (`access.rs`).
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub users: Users,
    /// The cluster's ACL bindings, sorted, each once.
    #[serde(default, skip_serializing_if = "is_empty_list")]
    pub acls: AclBindings,
    /// The console's sign-in sessions, by the SHA-256 of their ids: never a cookie (`console_sessions.rs`).
    #[serde(default, skip_serializing_if = "is_empty_sessions")]
    pub console_sessions: ConsoleSessions,
    /// The replication throttle for replica moves, in bytes per second (`replication/throttle.rs`): what a
    /// leader sends a replica being added, per pair of nodes. `None`: moves copy at full speed. Absent from
    /// metadata written before throttles existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_throttle_bytes_per_sec: Option<u64>,
    /// The client quotas every node holds its clients to (`quotas/`). Absent from metadata written before
    /// quotas existed, and while none is set.
    #[serde(default, skip_serializing_if = "is_no_quota")]
    pub client_quotas: Arc<ClientQuotas>,
    /// The transactional ids the cluster's transaction coordinator (the controller leader) keeps. Absent from
    /// metadata written before transactions were served on a cluster, and while there is none.
    #[serde(default, skip_serializing_if = "is_no_transaction")]
    pub transactions: Transactions,
    /// The schema registry (`schema_registry/`). Absent from metadata written before it existed, and while it
    /// is empty.
    #[serde(default, skip_serializing_if = "is_empty_registry")]
    pub schema_registry: Arc<crate::schema_registry::SchemaRegistry>,
    /// The groups' own settings (`group_config.rs`), by group and Kafka key name. Absent from metadata written
    /// before group configs were served on a cluster, and while no group has one.
    #[serde(default, skip_serializing_if = "is_no_group_config")]
    pub group_configs: Arc<StoredGroupConfigs>,
    /// The client metrics subscriptions set through the Kafka API (`client_telemetry/subscriptions.rs`), by
    /// name. Absent from metadata written before they existed, and while there is none.
    #[serde(default, skip_serializing_if = "is_no_client_metrics")]
    pub client_metrics: Arc<StoredSubscriptions>,
    /// The cluster's dynamic topic defaults (`topic_defaults.rs`): what a topic that does not set a key takes.
    /// Absent from metadata written before they existed, and while none is set.
    #[serde(default, skip_serializing_if = "TopicDefaults::is_empty")]
    pub topic_defaults: TopicDefaults,
}

fn is_no_client_metrics(subscriptions: &Arc<StoredSubscriptions>) -> bool {
    subscriptions.is_empty()
}

fn is_no_group_config(configs: &Arc<StoredGroupConfigs>) -> bool {
    configs.is_empty()
}

fn is_empty_registry(registry: &Arc<crate::schema_registry::SchemaRegistry>) -> bool {
    registry.is_empty()
}

fn is_no_transaction(transactions: &Transactions) -> bool {
    transactions.is_empty()
}

fn is_no_quota(quotas: &Arc<ClientQuotas>) -> bool {
    quotas.is_empty()
}

fn is_empty_sessions(sessions: &ConsoleSessions) -> bool {
    sessions.is_empty()
}

fn is_empty_map(users: &Users) -> bool {
    users.is_empty()
}

fn is_empty_list(acls: &AclBindings) -> bool {
    acls.is_empty()
}

/// A change to the metadata, as raft log entries carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster id if none is set yet (the first committed one wins).
    SetClusterId {
        cluster_id: String,
    },
    /// The node heartbeats: registers it, or brings it back from fenced.
    MarkAlive {
        node_id: u64,
        address: String,
        /// Absent from the entries of nodes without a rack, and of versions before racks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
        at_ms: i64,
    },
    /// The node's session expired, or its process stopped gracefully: its leaderships move to other in-sync
    /// replicas.
    Fence {
        node_id: u64,
        at_ms: i64,
        /// A graceful stop: the incarnation of the process that fenced itself ([`NodeRecord::stopped_incarnation`]).
        /// Absent from a fence the controller leader decided, and from those written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_incarnation: Option<u64>,
    },
    /// A new topic, placed by the proposer (see `placement.rs`). Refused (`changed: false`) if the name exists.
    CreateTopic {
        name: String,
        placement: TopicPlacement,
    },
    DeleteTopic {
        name: String,
    },
    /// New partitions at the end of a topic, placed by the proposer (Kafka's CreatePartitions). Applied only if the
    /// topic still has `from_count` partitions, so two adds that raced cannot both land on the count the proposer
    /// saw; every node holding a replica of the topic then opens the new logs (`replication/reconcile.rs`).
    AddPartitions {
        name: String,
        from_count: u32,
        partitions: Vec<PartitionPlacement>,
    },
    /// The partition leader's new ISR (Kafka's AlterPartition). Applied only if `leader` still leads at
    /// `leader_epoch`, so a deposed leader's late request changes nothing; the leader stays in its own ISR.
    AlterIsr {
        topic: String,
        partition: u32,
        leader: u64,
        leader_epoch: u32,
        isr: Vec<u64>,
    },
    /// Reserves the next `count` producer ids for the node that asked (its `ProducerIds` issues them).
    ReserveProducerIds {
        count: i64,
    },
    /// Reassignment, step 1: `node` becomes a replica (out of the ISR); it catches up through normal
    /// replication and the leader adds it to the ISR as for any follower.
    AddReplica {
        topic: String,
        partition: u32,
        node: u64,
    },
    /// Reassignment, step 2: `node` leaves the replicas and the ISR; if it led, the first other in-sync replica
    /// (an alive one first) leads at the next epoch. Refused (`changed: false`) if no other in-sync replica
    /// would be left: what only `node` holds would be lost.
    DropReplica {
        topic: String,
        partition: u32,
        node: u64,
    },
    /// The partition's leader cannot append (its disk is full; Kafka moves the leaderships of a failed log
    /// directory): the first other alive in-sync replica, in replica order, leads at the next epoch, and `leader`
    /// leaves the ISR until it has caught up again. Applied only if `leader` still leads at `leader_epoch` and
    /// another alive replica is in sync: a partition only its leader holds in full stays where it is.
    ResignLeadership {
        topic: String,
        partition: u32,
        leader: u64,
        leader_epoch: u32,
    },
    /// `node` leaves the cluster for good (after its replicas moved and it left the raft membership): it is
    /// forgotten, and refused if it comes back.
    RemoveNode {
        node_id: u64,
    },
    /// A new user, its credentials derived (salted, hashed) by the proposer. Refused if the name is taken.
    CreateUser {
        name: String,
        user: UserRecord,
    },
    /// The user goes, with its tokens; the ACLs naming it stay, as on a single node.
    DeleteUser {
        name: String,
    },
    /// Kafka's AlterUserScramCredentials for one user (`UserRecord::with_credentials`): credentials derived by
    /// the proposer from the client's salted passwords; the user is created by its first, removed with its last.
    AlterUserCredentials {
        name: String,
        upserts: Vec<(crate::auth::scram::ScramMechanism, crate::auth::scram::ScramCredential)>,
        deletes: Vec<crate::auth::scram::ScramMechanism>,
    },
    /// A bearer token issued by the proposer, by its SHA-256.
    AddUserToken {
        name: String,
        token_hash: String,
    },
    /// All of `bindings` or none (an invalid one, or the limit, refuses them all); one held already counts once.
    AddAcls {
        bindings: Vec<AclBinding>,
    },
    /// Removes these bindings: the ones the proposer's filter matched on its replica.
    RemoveAcls {
        bindings: Vec<AclBinding>,
    },
    /// Preferred leader election (Kafka's `PREFERRED` election type), for many partitions in one entry: each
    /// listed partition's first replica leads at the next epoch where [`ClusterMetadata::can_elect_preferred`]
    /// allows it (alive, in the ISR, not leading already); the others stay as they are, so a plan that went
    /// stale between the proposer's look and the commit changes nothing it should not.
    ElectPreferredLeaders {
        partitions: Vec<(String, u32)>,
    },
    /// Reassignment: the partition's replicas in a new order, the preferred leader first. Applied only when
    /// `replicas` holds exactly the current replicas; the leader, its epoch and the ISR stay.
    OrderReplicas {
        topic: String,
        partition: u32,
        replicas: Vec<u64>,
    },
    /// A console sign-in (`console_sessions.rs`): refused unless `user` exists with the credential stamp
    /// `user_stamp`; past the caps, the oldest sign-ins go.
    OpenConsoleSession {
        id_sha256: String,
        user: String,
        user_stamp: String,
        at_unix_ms: u64,
    },
    /// A console sign-out.
    EndConsoleSession {
        id_sha256: String,
    },
    /// These sessions were used at `at_unix_ms` (a coarse touch: at most one per session every few minutes).
    TouchConsoleSessions {
        id_sha256s: Vec<String>,
        at_unix_ms: u64,
    },
    /// The controller leader's purge: every session ended (idle or too old) at `at_unix_ms` goes.
    PurgeConsoleSessions {
        at_unix_ms: u64,
    },
    /// A durable move onto `target` (`reassignment_state.rs`): the adding replicas join, out of the ISR.
    /// Refused if the partition is moving already or the target is empty, repeats a node or names a removed one.
    BeginReassignment {
        topic: String,
        partition: u32,
        target: Vec<u64>,
    },
    /// The move ends on its target; applied only once every adding replica is in the ISR.
    CompleteReassignment {
        topic: String,
        partition: u32,
    },
    /// The move ends on the original replicas; refused if none of them is in sync.
    CancelReassignment {
        topic: String,
        partition: u32,
    },
    /// Sets (`Some`) or clears (`None`) the replication throttle for replica moves. The proposer checked the
    /// rate (`throttle::check_rate`); unchanged when it is the throttle in force already.
    SetReplicationThrottle {
        bytes_per_sec: Option<u64>,
    },
    /// A topic's new settings and `min_insync_replicas` (`rill topic alter`, Kafka's AlterConfigs), checked whole
    /// by the proposer (`topic_config.rs`); every node applies the settings to its replicas' logs when it sees
    /// them (`replication/reconcile.rs`). Refused (`changed: false`) for an unknown topic, a
    /// `min_insync_replicas` outside 1 to the replication factor, or settings the same as the topic's. Changes
    /// only fields the placement already had, so metadata and snapshots written before it read as before.
    AlterTopicConfig {
        name: String,
        settings: TopicSettings,
        min_insync_replicas: u32,
    },
    /// The cluster's topic defaults changed (`topic_defaults.rs`), with every topic that follows them for the keys
    /// changed: its settings as the proposer saw them and as they become, computed and checked by the proposer.
    /// All or nothing: refused (`changed: false`) when a topic's settings are no longer what the proposer saw (an
    /// alter committed in between, which must not be undone), so the proposer computes again; a topic deleted
    /// since is skipped.
    AlterTopicDefaults {
        defaults: TopicDefaults,
        topics: Vec<FollowedTopic>,
    },
    /// Client quotas set or removed, all or none (`quotas/`), checked by the proposer and again here: an
    /// invalid change, or one past the limit on entities, changes nothing and says why.
    AlterClientQuotas {
        changes: Vec<QuotaChange>,
    },
    /// A change of the schema registry, checked by the proposer and again here (`SchemaChange::apply`): a
    /// refused one changes nothing but the nonce, which tells the proposer it was applied, and says why.
    ChangeSchemas {
        nonce: u64,
        change: crate::schema_registry::SchemaChange,
    },
    /// The transaction coordinator's new state of one transactional id, under its producer id. A compare-and-set:
    /// applied only if the id's state under `replaces` (or, without it, under the new producer id) is still
    /// `prior` (`None`: no state there), so a coordinator that lost the controller leadership and got it back
    /// cannot overwrite what another coordinator stored meanwhile. `replaces` names the producer id the id had
    /// before a new one was issued to it (its epochs ran out); its entry goes.
    StoreTransaction {
        meta: Box<TransactionMetadata>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prior: Option<Box<TransactionMetadata>>,
    },
    /// Forgets an idle transactional id (Kafka's `transactional.id.expiration.ms`), if its state is still `prior`.
    RemoveTransaction {
        producer_id: i64,
        prior: Box<TransactionMetadata>,
    },
    /// A group's config keys set (`Some`) or deleted (`None`), all or none (`group_config::apply_stored`): each
    /// key and value checked here as by the proposer, which also checked the heartbeat against the session
    /// timeout with its broker settings. Changes only what names the group, so concurrent alters of different
    /// keys both land.
    AlterGroupConfig {
        group: String,
        changes: Vec<(String, Option<String>)>,
    },
    /// A client metrics subscription's keys set (`Some`) or deleted (`None`), all or none, each checked here as by
    /// the proposer (`StoredSubscriptions::apply`); one left with no key is deleted.
    AlterClientMetrics {
        name: String,
        changes: Vec<(String, Option<String>)>,
    },
}

/// Why a partition's preferred replica cannot take the leadership now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreferredNotElected {
    #[error("no such partition")]
    NoSuchPartition,
    #[error("node {preferred}, the preferred leader, leads it already")]
    AlreadyLeader { preferred: u64 },
    #[error("node {preferred}, the preferred leader, is not alive")]
    NotAlive { preferred: u64 },
    #[error("node {preferred}, the preferred leader, is not in the ISR yet (it is catching up)")]
    NotInSync { preferred: u64 },
}

/// Whether `a` and `b` name the same nodes, each once.
fn same_members(a: &[u64], b: &[u64]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    let has_duplicates = b.windows(2).any(|w| w[0] == w[1]);
    a == b && !has_duplicates
}

/// What applying a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub changed: bool,
    /// For [`Command::ReserveProducerIds`]: the block reserved, `start..end`.
    #[serde(default)]
    pub producer_ids: Option<(i64, i64)>,
    /// For a user or ACL command: how many users, tokens or bindings it added or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For a user or ACL command that changed nothing: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<AccessRefusal>,
    /// For a schema registry change: it was refused (the proposer finds why on the state it then applied).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_refused: bool,
}

/// One topic a change of the topic defaults re-resolves: its settings as the proposer read them, and after; its
/// new `min_insync_replicas` when a `min.insync.replicas` default changes it (absent in entries of older nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedTopic {
    pub name: String,
    pub before: TopicSettings,
    pub after: TopicSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
}

impl CommandOutcome {
    pub fn unchanged() -> CommandOutcome {
        CommandOutcome { changed: false, producer_ids: None, count: None, refusal: None, schema_refused: false }
    }
}

impl ClusterMetadata {
    /// Applies one committed command. Deterministic: depends only on the metadata and the command.
    pub fn apply(&mut self, command: &Command) -> CommandOutcome {
        let mut producer_ids = None;
        let changed = match command {
            Command::SetClusterId { cluster_id } => {
                let is_unset = self.cluster_id.is_none();
                if is_unset {
                    self.cluster_id = Some(cluster_id.clone());
                }
                is_unset
            }
            Command::MarkAlive { node_id, .. } if self.removed_nodes.contains(node_id) => false,
            Command::MarkAlive { node_id, address, rack, at_ms } => {
                let record = NodeRecord {
                    node_id: *node_id,
                    address: address.clone(),
                    rack: rack.clone(),
                    state: NodeState::Alive,
                    state_since_ms: *at_ms,
                    stopped_incarnation: None,
                };
                match self.nodes.get_mut(node_id) {
                    Some(existing)
                        if existing.state == NodeState::Alive
                            && existing.address == *address
                            && existing.rack == *rack =>
                    {
                        false
                    }
                    Some(existing) => {
                        *existing = record;
                        true
                    }
                    None => {
                        self.nodes.insert(*node_id, record);
                        true
                    }
                }
            }
            Command::Fence { node_id, at_ms, stopped_incarnation } => match self.nodes.get_mut(node_id) {
                Some(existing) if existing.state == NodeState::Alive => {
                    existing.state = NodeState::Fenced;
                    existing.state_since_ms = *at_ms;
                    existing.stopped_incarnation = *stopped_incarnation;
                    self.move_leaderships_from(*node_id);
                    true
                }
                _ => false,
            },
            Command::CreateTopic { name, placement } => {
                let is_new = !self.topics.contains_key(name);
                if is_new {
                    self.topics.insert(name.clone(), placement.clone());
                }
                is_new
            }
            Command::DeleteTopic { name } => self.topics.remove(name).is_some(),
            Command::AddPartitions { name, from_count, partitions } => match self.topics.get_mut(name) {
                Some(topic) if topic.partitions.len() == *from_count as usize && !partitions.is_empty() => {
                    topic.partitions.extend(partitions.iter().cloned());
                    true
                }
                _ => false,
            },
            Command::AlterIsr { topic, partition, leader, leader_epoch, isr } => {
                match self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(*partition as usize)) {
                    Some(p)
                        if p.leader == Some(*leader)
                            && p.leader_epoch == *leader_epoch
                            && isr.contains(leader)
                            && isr.iter().all(|id| p.replicas.contains(id))
                            && p.isr != *isr =>
                    {
                        p.isr = isr.clone();
                        true
                    }
                    _ => false,
                }
            }
            Command::ReserveProducerIds { count } => {
                let start = self.next_producer_id;
                let end = start.saturating_add((*count).max(0));
                self.next_producer_id = end;
                producer_ids = Some((start, end));
                end > start
            }
            Command::AddReplica { topic, partition, node } => {
                match self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(*partition as usize)) {
                    Some(p) if !p.replicas.contains(node) && !self.removed_nodes.contains(node) => {
                        p.replicas.push(*node);
                        true
                    }
                    _ => false,
                }
            }
            Command::DropReplica { topic, partition, node } => self.drop_replica(topic, *partition, *node),
            Command::ResignLeadership { topic, partition, leader, leader_epoch } => {
                self.resign_leadership(topic, *partition, *leader, *leader_epoch)
            }
            Command::RemoveNode { node_id } => {
                let is_new = self.removed_nodes.insert(*node_id);
                self.nodes.remove(node_id);
                is_new
            }
            Command::CreateUser { .. }
            | Command::DeleteUser { .. }
            | Command::AlterUserCredentials { .. }
            | Command::AddUserToken { .. }
            | Command::AddAcls { .. }
            | Command::RemoveAcls { .. } => return self.apply_access(command),
            Command::OpenConsoleSession { .. }
            | Command::EndConsoleSession { .. }
            | Command::TouchConsoleSessions { .. }
            | Command::PurgeConsoleSessions { .. } => return self.apply_console_session(command),
            Command::ElectPreferredLeaders { partitions } => {
                let mut elected = 0;
                for (topic, partition) in partitions {
                    elected += usize::from(self.elect_preferred(topic, *partition));
                }
                elected > 0
            }
            Command::OrderReplicas { topic, partition, replicas } => {
                match self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(*partition as usize)) {
                    Some(p) if p.replicas != *replicas && same_members(&p.replicas, replicas) => {
                        p.replicas = replicas.clone();
                        true
                    }
                    _ => false,
                }
            }
            Command::BeginReassignment { topic, partition, target } => {
                self.begin_reassignment(topic, *partition, target)
            }
            Command::CompleteReassignment { topic, partition } => self.complete_reassignment(topic, *partition),
            Command::CancelReassignment { topic, partition } => self.cancel_reassignment(topic, *partition),
            Command::SetReplicationThrottle { bytes_per_sec } => {
                let is_valid = bytes_per_sec.is_none_or(|rate| crate::replication::throttle::check_rate(rate).is_ok());
                let changed = is_valid && self.replication_throttle_bytes_per_sec != *bytes_per_sec;
                if changed {
                    self.replication_throttle_bytes_per_sec = *bytes_per_sec;
                }
                changed
            }
            Command::AlterTopicConfig { name, settings, min_insync_replicas } => match self.topics.get_mut(name) {
                Some(topic)
                    if (1..=topic.replication_factor()).contains(min_insync_replicas)
                        && (topic.settings != *settings || topic.min_insync_replicas != *min_insync_replicas) =>
                {
                    topic.settings = settings.clone();
                    topic.min_insync_replicas = *min_insync_replicas;
                    true
                }
                _ => false,
            },
            Command::AlterTopicDefaults { defaults, topics } => {
                let is_stale = topics
                    .iter()
                    .any(|followed| self.topics.get(&followed.name).is_some_and(|t| t.settings != followed.before));
                if is_stale {
                    return CommandOutcome::unchanged();
                }
                let mut changed = self.topic_defaults != *defaults;
                self.topic_defaults = defaults.clone();
                for followed in topics {
                    if let Some(topic) = self.topics.get_mut(&followed.name) {
                        topic.settings = followed.after.clone();
                        if let Some(count) = followed.min_insync_replicas {
                            // Computed for the replicas the proposer saw; a move since may have left fewer.
                            topic.min_insync_replicas = count.clamp(1, topic.replication_factor().max(1));
                        }
                        changed = true;
                    }
                }
                changed
            }
            Command::AlterClientQuotas { changes } => {
                let mut quotas = ClientQuotas::clone(&self.client_quotas);
                return match quotas.apply(changes) {
                    Ok(changed) => {
                        if changed {
                            self.client_quotas = Arc::new(quotas);
                        }
                        CommandOutcome { changed, ..CommandOutcome::unchanged() }
                    }
                    Err(invalid) => {
                        let refusal = match invalid {
                            InvalidQuota::TooMany => AccessRefusal::TooManyQuotas,
                            _ => AccessRefusal::Invalid,
                        };
                        CommandOutcome { refusal: Some(refusal), ..CommandOutcome::unchanged() }
                    }
                };
            }
            Command::AlterGroupConfig { group, changes } => {
                let mut configs = StoredGroupConfigs::clone(&self.group_configs);
                return match crate::group_config::apply_stored(&mut configs, group, changes) {
                    Ok(changed) => {
                        if changed {
                            self.group_configs = Arc::new(configs);
                        }
                        CommandOutcome { changed, ..CommandOutcome::unchanged() }
                    }
                    Err(refused) => {
                        let refusal = match refused {
                            GroupConfigError::TooManyGroups => AccessRefusal::TooManyGroupConfigs,
                            _ => AccessRefusal::Invalid,
                        };
                        CommandOutcome { refusal: Some(refusal), ..CommandOutcome::unchanged() }
                    }
                };
            }
            Command::AlterClientMetrics { name, changes } => {
                let mut subscriptions = StoredSubscriptions::clone(&self.client_metrics);
                let (changed, refusal) = match subscriptions.apply(name, changes) {
                    Ok(changed) => (changed, None),
                    Err(SubscriptionError::TooMany) => (false, Some(AccessRefusal::TooManySubscriptions)),
                    Err(_) => (false, Some(AccessRefusal::Invalid)),
                };
                if changed {
                    self.client_metrics = Arc::new(subscriptions);
                }
                return CommandOutcome { changed, refusal, ..CommandOutcome::unchanged() };
            }
            Command::ChangeSchemas { nonce, change } => {
                let registry = Arc::make_mut(&mut self.schema_registry);
                let schema_refused = registry.apply_replicated(*nonce, change).is_err();
                return CommandOutcome { changed: true, schema_refused, ..CommandOutcome::unchanged() };
            }
            Command::StoreTransaction { meta, replaces, prior } => {
                let key = replaces.unwrap_or(meta.producer_id);
                let is_current = self.transactions.get(&key).map(|kept| kept.as_ref()) == prior.as_deref();
                let is_new_key_free = replaces.is_none() || !self.transactions.contains_key(&meta.producer_id);
                if is_current && is_new_key_free {
                    let transactions = Arc::make_mut(&mut self.transactions);
                    transactions.remove(&key);
                    transactions.insert(meta.producer_id, Arc::new(TransactionMetadata::clone(meta)));
                    true
                } else {
                    false
                }
            }
            Command::RemoveTransaction { producer_id, prior } => {
                let is_current = self.transactions.get(producer_id).is_some_and(|kept| **kept == **prior);
                if is_current {
                    Arc::make_mut(&mut self.transactions).remove(producer_id);
                }
                is_current
            }
        };
        if let Command::MarkAlive { node_id, .. } = command {
            self.elect_leaderless(*node_id);
        }
        CommandOutcome { changed, producer_ids, ..CommandOutcome::unchanged() }
    }

    /// A fenced node leads nothing and is in no ISR (but the last member of one keeps its place: it holds
    /// everything acknowledged, and unclean election is off, so the partition waits for it).
    fn move_leaderships_from(&mut self, fenced: u64) {
        let alive: Vec<u64> = self.nodes.values().filter(|n| n.state == NodeState::Alive).map(|n| n.node_id).collect();
        for partition in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            if partition.isr.len() > 1 {
                partition.isr.retain(|id| *id != fenced);
            }
            if partition.leader == Some(fenced) {
                partition.leader = partition.isr.iter().copied().find(|id| *id != fenced && alive.contains(id));
                partition.leader_epoch += 1;
            }
        }
    }

    fn drop_replica(&mut self, topic: &str, partition: u32, node: u64) -> bool {
        let alive: Vec<u64> = self.alive_nodes();
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return false;
        };
        let isr_left: Vec<u64> = p.isr.iter().copied().filter(|id| *id != node).collect();
        if !p.replicas.contains(&node) || isr_left.is_empty() {
            return false;
        }
        p.replicas.retain(|id| *id != node);
        p.isr = isr_left;
        if p.leader == Some(node) {
            // In replica order, so a reassignment's new preferred leader takes over when it is in sync.
            let alive_in_sync = p.replicas.iter().copied().find(|id| p.isr.contains(id) && alive.contains(id));
            p.leader = alive_in_sync.or_else(|| p.isr.first().copied());
            p.leader_epoch += 1;
        }
        true
    }

    fn resign_leadership(&mut self, topic: &str, partition: u32, leader: u64, leader_epoch: u32) -> bool {
        let alive = self.alive_nodes();
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return false;
        };
        if p.leader != Some(leader) || p.leader_epoch != leader_epoch {
            return false;
        }
        let successor = p.replicas.iter().copied().find(|id| *id != leader && p.isr.contains(id) && alive.contains(id));
        let Some(successor) = successor else { return false };
        p.isr.retain(|id| *id != leader);
        p.leader = Some(successor);
        p.leader_epoch += 1;
        true
    }

    /// Whether the partition's preferred replica (its first) may take the leadership now: it is alive, in the
    /// ISR (so it holds every acknowledged record: no data is at stake) and not leading already.
    pub fn can_elect_preferred(&self, topic: &str, partition: u32) -> Result<u64, PreferredNotElected> {
        let p = self.partition(topic, partition).ok_or(PreferredNotElected::NoSuchPartition)?;
        let preferred = *p.replicas.first().ok_or(PreferredNotElected::NoSuchPartition)?;
        if p.leader == Some(preferred) {
            return Err(PreferredNotElected::AlreadyLeader { preferred });
        }
        if self.state_of(preferred) != Some(NodeState::Alive) {
            return Err(PreferredNotElected::NotAlive { preferred });
        }
        if !p.isr.contains(&preferred) {
            return Err(PreferredNotElected::NotInSync { preferred });
        }
        Ok(preferred)
    }

    fn elect_preferred(&mut self, topic: &str, partition: u32) -> bool {
        let Ok(preferred) = self.can_elect_preferred(topic, partition) else { return false };
        let Some(p) = self.topics.get_mut(topic).and_then(|t| t.partitions.get_mut(partition as usize)) else {
            return false;
        };
        p.leader = Some(preferred);
        p.leader_epoch += 1;
        true
    }

    /// A partition left without a leader takes `node_id` back as leader if it is in the ISR.
    fn elect_leaderless(&mut self, node_id: u64) {
        for partition in self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()) {
            if partition.leader.is_none() && partition.isr.contains(&node_id) {
                partition.leader = Some(node_id);
                partition.leader_epoch += 1;
            }
        }
    }

    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionPlacement> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }

    /// Alive node ids, ascending.
    /// How many partitions each node is the preferred leader (first replica) of: where placement starts new
    /// topics, so leaderships spread.
    pub fn preferred_leaderships(&self) -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for placement in self.topics.values() {
            for partition in &placement.partitions {
                if let Some(&preferred) = partition.replicas.first() {
                    *counts.entry(preferred).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    pub fn alive_nodes(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.state == NodeState::Alive).map(|n| n.node_id).collect()
    }

    /// The rack of each node that has one.
    pub fn racks(&self) -> super::placement::Racks {
        self.nodes.values().filter_map(|n| Some((n.node_id, n.rack.clone()?))).collect()
    }

    pub fn rack_of(&self, node_id: u64) -> Option<&str> {
        self.nodes.get(&node_id)?.rack.as_deref()
    }

    pub fn address_of(&self, node_id: u64) -> Option<&str> {
        self.nodes.get(&node_id).map(|n| n.address.as_str())
    }

    pub fn state_of(&self, node_id: u64) -> Option<NodeState> {
        self.nodes.get(&node_id).map(|n| n.state)
    }
}

/// Metadata as the cluster tests start from: alive nodes and topics placed by hand.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn topic_settings() -> TopicSettings {
        TopicSettings {
            segment_bytes: 1 << 20,
            durability: crate::config::DurabilityPolicy::Interval,
            flush_interval_ms: 1000,
            max_batch_bytes: 1 << 20,
            retention_ms: None,
            retention_bytes: None,
            cleanup: crate::meta::Cleanup::default(),
            segment_ms: crate::meta::DEFAULT_SEGMENT_MS,
            timestamps: crate::meta::MessageTimestamps::default(),
            compression: crate::meta::TopicCompression::Producer,
            compression_levels: crate::meta::CompressionLevels::default(),
            schema_ids: crate::meta::SchemaIdChecks::default(),
            takes_dead_letters: false,
            throttled_replicas: Default::default(),
            own_keys: None,
        }
    }

    /// A topic whose partitions have these replica lists, each led by its first replica at epoch 0 with every
    /// replica in sync.
    pub fn placed(partitions: &[&[u64]], min_insync_replicas: u32) -> TopicPlacement {
        let partitions = partitions
            .iter()
            .map(|replicas| PartitionPlacement {
                replicas: replicas.to_vec(),
                leader: replicas.first().copied(),
                leader_epoch: 0,
                isr: replicas.to_vec(),
                reassignment: None,
            })
            .collect();
        TopicPlacement { partitions, min_insync_replicas, settings: topic_settings(), topic_id: None }
    }

    /// `alive` nodes, and each topic placed as [`placed`] does.
    pub fn cluster(alive: &[u64], topics: &[(&str, &[&[u64]])], min_insync_replicas: u32) -> ClusterMetadata {
        let mut metadata = ClusterMetadata::default();
        for id in alive {
            metadata.apply(&Command::MarkAlive { node_id: *id, address: format!("h:{id}"), rack: None, at_ms: 1 });
        }
        for (name, partitions) in topics {
            let placement = placed(partitions, min_insync_replicas);
            metadata.apply(&Command::CreateTopic { name: (*name).into(), placement });
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(node_id: u64) -> Command {
        Command::MarkAlive { node_id, address: format!("h:{node_id}"), rack: None, at_ms: 1 }
    }

    #[test]
    fn the_first_cluster_id_committed_wins() {
        let mut metadata = ClusterMetadata::default();
        assert!(metadata.apply(&Command::SetClusterId { cluster_id: "a".into() }).changed);
        assert!(!metadata.apply(&Command::SetClusterId { cluster_id: "b".into() }).changed);
        assert_eq!(metadata.cluster_id.as_deref(), Some("a"));
    }

    fn store(meta: &TransactionMetadata, replaces: Option<i64>, prior: Option<&TransactionMetadata>) -> Command {
        Command::StoreTransaction { meta: Box::new(meta.clone()), replaces, prior: prior.cloned().map(Box::new) }
    }

    #[test]
    fn a_transactional_id_is_stored_only_over_the_state_its_coordinator_read() {
        let mut metadata = ClusterMetadata::default();
        let first = TransactionMetadata::new("app".into(), 7, 60_000, 1);
        assert!(metadata.apply(&store(&first, None, None)).changed);
        // Stored again as if new: another coordinator stored it meanwhile.
        assert!(!metadata.apply(&store(&first, None, None)).changed);
        let mut second = first.clone();
        second.producer_epoch = 0;
        assert!(metadata.apply(&store(&second, None, Some(&first))).changed);
        let mut stale = first.clone();
        stale.producer_epoch = 5;
        assert!(!metadata.apply(&store(&stale, None, Some(&first))).changed, "a stale coordinator's write");
        assert_eq!(metadata.transactions[&7].producer_epoch, 0);

        // A new producer id replaces the old entry, only if the new one is free.
        let mut renewed = second.clone();
        renewed.producer_id = 8;
        assert!(metadata.apply(&store(&renewed, Some(7), Some(&second))).changed);
        assert_eq!(metadata.transactions.keys().copied().collect::<Vec<_>>(), vec![8]);
        let mut other = renewed.clone();
        other.transactional_id = "other".into();
        other.producer_id = 9;
        assert!(metadata.apply(&store(&other, None, None)).changed);
        let mut clash = renewed.clone();
        clash.producer_id = 9;
        assert!(!metadata.apply(&store(&clash, Some(8), Some(&renewed))).changed);

        assert!(!metadata.apply(&Command::RemoveTransaction { producer_id: 8, prior: Box::new(second) }).changed);
        assert!(metadata.apply(&Command::RemoveTransaction { producer_id: 8, prior: Box::new(renewed) }).changed);
        assert_eq!(metadata.transactions.keys().copied().collect::<Vec<_>>(), vec![9]);
        // Through a snapshot's JSON and back.
        let json = serde_json::to_string(&metadata).unwrap();
        assert_eq!(serde_json::from_str::<ClusterMetadata>(&json).unwrap(), metadata);
    }

    #[test]
    fn a_fenced_node_comes_back_alive_when_it_heartbeats_again() {
        let mut metadata = ClusterMetadata::default();
        assert!(metadata.apply(&alive(2)).changed);
        assert!(!metadata.apply(&alive(2)).changed);
        assert!(metadata.apply(&Command::Fence { node_id: 2, at_ms: 5, stopped_incarnation: None }).changed);
        assert_eq!(metadata.state_of(2), Some(NodeState::Fenced));
        assert!(!metadata.apply(&Command::Fence { node_id: 2, at_ms: 6, stopped_incarnation: None }).changed);
        assert!(metadata.apply(&alive(2)).changed);
        assert_eq!(metadata.state_of(2), Some(NodeState::Alive));
    }

    #[test]
    fn a_graceful_stop_records_the_stopped_process_until_a_new_one_is_alive() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&alive(2));
        metadata.apply(&Command::Fence { node_id: 2, at_ms: 5, stopped_incarnation: Some(7) });
        assert_eq!(metadata.nodes[&2].stopped_incarnation, Some(7));
        metadata.apply(&alive(2));
        assert_eq!(metadata.nodes[&2].stopped_incarnation, None, "a restarted process is alive");
        // A fence written before the field existed reads as one the leader decided.
        let old: Command = serde_json::from_str(r#"{"Fence":{"node_id":2,"at_ms":6}}"#).expect("an old fence");
        assert_eq!(old, Command::Fence { node_id: 2, at_ms: 6, stopped_incarnation: None });
    }

    fn placed(replicas: &[u64]) -> TopicPlacement {
        fixtures::placed(&[replicas], 2)
    }

    #[test]
    fn fencing_the_leader_elects_another_in_sync_replica_at_the_next_epoch() {
        let mut metadata = ClusterMetadata::default();
        for id in 1..=3 {
            metadata.apply(&alive(id));
        }
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        metadata.apply(&Command::Fence { node_id: 1, at_ms: 2, stopped_incarnation: None });
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (Some(2), 1, vec![2, 3]));
        metadata.apply(&Command::Fence { node_id: 2, at_ms: 3, stopped_incarnation: None });
        metadata.apply(&Command::Fence { node_id: 3, at_ms: 4, stopped_incarnation: None });
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.isr.clone()), (None, vec![3]), "the last in-sync replica keeps its place");
        metadata.apply(&alive(1));
        assert_eq!(metadata.partition("t", 0).expect("placed").leader, None, "1 is out of sync: no unclean election");
        metadata.apply(&alive(3));
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.leader_epoch), (Some(3), 4));
    }

    #[test]
    fn a_leader_that_resigns_hands_over_to_an_alive_in_sync_replica_and_leaves_the_isr() {
        let mut metadata = ClusterMetadata::default();
        for id in 1..=3 {
            metadata.apply(&alive(id));
        }
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        let resign =
            |leader, leader_epoch| Command::ResignLeadership { topic: "t".into(), partition: 0, leader, leader_epoch };
        assert!(!metadata.apply(&resign(2, 0)).changed, "2 does not lead");
        assert!(!metadata.apply(&resign(1, 1)).changed, "1 leads at epoch 0, not 1");
        // Its successor in replica order is out of sync: the next in-sync one leads.
        metadata.apply(&Command::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 3],
        });
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1, 3]));
        assert!(metadata.apply(&resign(1, 0)).changed);
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (Some(3), 1, vec![3]));
        assert!(!metadata.apply(&resign(1, 0)).changed, "a second resignation at the old epoch changes nothing");
        assert!(!metadata.apply(&resign(3, 1)).changed, "no other replica is in sync: 3 keeps what only it holds");
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (Some(3), 1, vec![3]));
    }

    #[test]
    fn an_isr_change_from_a_deposed_leader_is_ignored() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        let stale = Command::AlterIsr { topic: "t".into(), partition: 0, leader: 2, leader_epoch: 0, isr: vec![2] };
        assert!(!metadata.apply(&stale).changed);
        let current =
            Command::AlterIsr { topic: "t".into(), partition: 0, leader: 1, leader_epoch: 0, isr: vec![1, 3] };
        assert!(metadata.apply(&current).changed);
        assert_eq!(metadata.partition("t", 0).expect("placed").isr, vec![1, 3]);
    }

    #[test]
    fn a_reassigned_replica_joins_then_the_old_one_leaves_and_its_leadership_moves_in_sync() {
        let mut metadata = ClusterMetadata::default();
        for id in 1..=4 {
            metadata.apply(&alive(id));
        }
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[2, 1, 3]) });
        let add = Command::AddReplica { topic: "t".into(), partition: 0, node: 4 };
        assert!(metadata.apply(&add).changed);
        assert!(!metadata.apply(&add).changed, "already a replica");
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!((p.replicas.clone(), p.isr.clone()), (vec![2, 1, 3, 4], vec![2, 1, 3]), "out of sync at first");
        let drop = Command::DropReplica { topic: "t".into(), partition: 0, node: 2 };
        assert!(metadata.apply(&drop).changed);
        let p = metadata.partition("t", 0).expect("placed");
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
            (vec![1, 3, 4], vec![1, 3], Some(1), 1)
        );
        metadata.apply(&Command::RemoveNode { node_id: 2 });
        assert!(!metadata.nodes.contains_key(&2));
        assert!(!metadata.apply(&alive(2)).changed, "a removed node never comes back");
        assert!(!metadata.apply(&Command::AddReplica { topic: "t".into(), partition: 0, node: 2 }).changed);
    }

    #[test]
    fn the_last_in_sync_replica_is_never_dropped() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1]) });
        metadata.apply(&Command::AddReplica { topic: "t".into(), partition: 0, node: 2 });
        assert!(!metadata.apply(&Command::DropReplica { topic: "t".into(), partition: 0, node: 1 }).changed);
        assert_eq!(metadata.partition("t", 0).expect("placed").leader, Some(1));
    }

    #[test]
    fn fencing_an_unknown_node_changes_nothing() {
        let mut metadata = ClusterMetadata::default();
        assert!(!metadata.apply(&Command::Fence { node_id: 9, at_ms: 1, stopped_incarnation: None }).changed);
    }

    #[test]
    fn producer_id_blocks_never_overlap_and_survive_a_snapshot() {
        let mut metadata = ClusterMetadata::default();
        let first = metadata.apply(&Command::ReserveProducerIds { count: 1000 }).producer_ids;
        assert_eq!(first, Some((0, 1000)));
        let restored: ClusterMetadata = serde_json::from_slice(&serde_json::to_vec(&metadata).unwrap()).unwrap();
        let mut metadata = restored;
        assert_eq!(metadata.apply(&Command::ReserveProducerIds { count: 1000 }).producer_ids, Some((1000, 2000)));
        // A snapshot from before producer ids were reserved through the controller starts at 0.
        let old: ClusterMetadata = serde_json::from_str(r#"{"cluster_id":null,"nodes":{},"topics":{}}"#).unwrap();
        assert_eq!(old.next_producer_id, 0);
        assert!(metadata.nodes.is_empty());
    }

    #[test]
    fn the_replication_throttle_is_set_changed_and_cleared_and_survives_a_snapshot() {
        let mut metadata = ClusterMetadata::default();
        let set = |rate| Command::SetReplicationThrottle { bytes_per_sec: rate };
        assert!(metadata.apply(&set(Some(256 << 10))).changed);
        assert!(!metadata.apply(&set(Some(256 << 10))).changed, "the same rate again changes nothing");
        assert!(!metadata.apply(&set(Some(0))).changed, "a rate the proposer should have refused");
        assert!(metadata.apply(&set(Some(1 << 20))).changed);
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&metadata).expect("encodes")).expect("decodes");
        assert_eq!(restored.replication_throttle_bytes_per_sec, Some(1 << 20));
        assert!(metadata.apply(&set(None)).changed);
        assert_eq!(metadata.replication_throttle_bytes_per_sec, None);
        // Metadata written before throttles existed has none.
        let old: ClusterMetadata =
            serde_json::from_str(r#"{"cluster_id":null,"nodes":{},"topics":{}}"#).expect("an old snapshot");
        assert_eq!(old.replication_throttle_bytes_per_sec, None);
    }

    #[test]
    fn altered_topic_settings_apply_on_every_replica_and_survive_a_snapshot() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        let settings = TopicSettings { retention_ms: Some(3_600_000), ..fixtures::topic_settings() };
        let alter = |name: &str, min_insync_replicas| Command::AlterTopicConfig {
            name: name.into(),
            settings: settings.clone(),
            min_insync_replicas,
        };
        assert!(metadata.apply(&alter("t", 3)).changed);
        assert!(!metadata.apply(&alter("t", 3)).changed, "the same settings again change nothing");
        assert!(!metadata.apply(&alter("t", 4)).changed, "above the replication factor");
        assert!(!metadata.apply(&alter("t", 0)).changed);
        assert!(!metadata.apply(&alter("gone", 1)).changed, "an unknown topic");
        // Through the raft log's encoding, as a follower applies it, and through a snapshot.
        let entry: Command =
            serde_json::from_slice(&serde_json::to_vec(&alter("t", 1)).expect("encodes")).expect("decodes");
        let mut follower = metadata.clone();
        assert!(follower.apply(&entry).changed);
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&follower).expect("encodes")).expect("decodes");
        let topic = &restored.topics["t"];
        assert_eq!((topic.settings.retention_ms, topic.min_insync_replicas), (Some(3_600_000), 1));
    }

    #[test]
    fn topic_defaults_change_with_their_topics_or_not_at_all_when_a_topic_changed_meanwhile() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        let before = metadata.topics["t"].settings.clone();
        let after = TopicSettings { retention_ms: Some(3_600_000), ..before.clone() };
        let broker = crate::config::BrokerConfig::default();
        let change = [crate::topic_config::ConfigChange::set("log.retention.ms", "3600000")];
        let (defaults, _) = crate::topic_defaults::NONE.changed(&change, &broker).expect("valid");
        let command = |before: &TopicSettings| Command::AlterTopicDefaults {
            defaults: defaults.clone(),
            topics: vec![
                FollowedTopic {
                    name: "t".into(),
                    before: before.clone(),
                    after: after.clone(),
                    min_insync_replicas: None,
                },
                FollowedTopic {
                    name: "gone".into(),
                    before: before.clone(),
                    after: after.clone(),
                    min_insync_replicas: None,
                },
            ],
        };
        // Read before an alter that committed first: refused whole, the alter kept.
        let mut altered = metadata.clone();
        let alter = Command::AlterTopicConfig {
            name: "t".into(),
            settings: TopicSettings { segment_ms: 60_000, ..before.clone() },
            min_insync_replicas: 2,
        };
        assert!(altered.apply(&alter).changed);
        assert!(!altered.apply(&command(&before)).changed, "stale");
        assert!(altered.topic_defaults.is_empty());
        assert_eq!(altered.topics["t"].settings.segment_ms, 60_000);
        // As read: both change; a deleted topic is skipped. Through the log's encoding and a snapshot.
        let entry: Command =
            serde_json::from_slice(&serde_json::to_vec(&command(&before)).expect("encodes")).expect("decodes");
        assert!(metadata.apply(&entry).changed);
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&metadata).expect("encodes")).expect("decodes");
        assert_eq!(restored.topic_defaults, defaults);
        assert_eq!(restored.topics["t"].settings.retention_ms, Some(3_600_000));
        assert!(!restored.topics.contains_key("gone"));
    }

    #[test]
    fn a_min_insync_default_sets_each_topics_count_within_its_replicas() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "three".into(), placement: placed(&[1, 2, 3]) });
        metadata.apply(&Command::CreateTopic { name: "two".into(), placement: fixtures::placed(&[&[1, 2]], 1) });
        let settings = metadata.topics["three"].settings.clone();
        let followed = |name: &str, count| FollowedTopic {
            name: name.into(),
            before: settings.clone(),
            after: settings.clone(),
            min_insync_replicas: count,
        };
        let broker = crate::config::BrokerConfig::default();
        let change = [crate::topic_config::ConfigChange::set("min.insync.replicas", "3")];
        let (defaults, _) = crate::topic_defaults::NONE.changed(&change, &broker).expect("valid");
        // "two" was computed for 3 replicas (moved away since): it takes both it has.
        let command = Command::AlterTopicDefaults {
            defaults,
            topics: vec![followed("three", Some(3)), followed("two", Some(3))],
        };
        let entry: Command = serde_json::from_slice(&serde_json::to_vec(&command).expect("encodes")).expect("decodes");
        assert!(metadata.apply(&entry).changed);
        assert_eq!((metadata.topics["three"].min_insync_replicas, metadata.topics["two"].min_insync_replicas), (3, 2));
        // An older node's entry has no count: the topic keeps its own.
        let older = serde_json::to_string(&followed("three", None)).expect("encodes");
        assert!(!older.contains("min_insync_replicas"), "{older}");
        let command =
            Command::AlterTopicDefaults { defaults: Default::default(), topics: vec![followed("three", None)] };
        assert!(metadata.apply(&command).changed);
        assert_eq!(metadata.topics["three"].min_insync_replicas, 3);
    }

    #[test]
    fn partitions_are_added_only_to_the_count_the_proposer_saw() {
        let mut metadata = ClusterMetadata::default();
        metadata.apply(&Command::CreateTopic { name: "t".into(), placement: placed(&[1, 2, 3]) });
        let new = fixtures::placed(&[&[2, 3, 1], &[3, 1, 2]], 2).partitions;
        let add =
            |name: &str, from_count| Command::AddPartitions { name: name.into(), from_count, partitions: new.clone() };
        assert!(!metadata.apply(&add("t", 2)).changed, "the topic has 1 partition, not 2");
        assert!(!metadata.apply(&add("gone", 1)).changed, "an unknown topic");
        let entry: Command =
            serde_json::from_slice(&serde_json::to_vec(&add("t", 1)).expect("encodes")).expect("decodes");
        assert!(metadata.apply(&entry).changed);
        assert!(!metadata.apply(&entry).changed, "a second add proposed from the same count loses");
        let topic = &metadata.topics["t"];
        let replicas: Vec<&[u64]> = topic.partitions.iter().map(|p| p.replicas.as_slice()).collect();
        assert_eq!(replicas, [&[1, 2, 3][..], &[2, 3, 1], &[3, 1, 2]]);
        assert_eq!(topic.partitions[2].leader, Some(3));
    }

    #[test]
    fn group_configs_merge_alters_of_different_keys_refuse_bad_ones_and_survive_a_snapshot() {
        let mut metadata = ClusterMetadata::default();
        let alter = |group: &str, key: &str, value: Option<&str>| Command::AlterGroupConfig {
            group: group.to_owned(),
            changes: vec![(key.to_owned(), value.map(str::to_owned))],
        };
        // Two nodes' alters of different keys of one group, committed one after the other: both land.
        assert!(metadata.apply(&alter("billing", "consumer.session.timeout.ms", Some("20000"))).changed);
        assert!(metadata.apply(&alter("billing", "consumer.heartbeat.interval.ms", Some("2000"))).changed);
        assert!(!metadata.apply(&alter("billing", "consumer.heartbeat.interval.ms", Some("2000"))).changed);
        let billing = &metadata.group_configs["billing"];
        assert_eq!(billing["consumer.session.timeout.ms"], "20000");
        assert_eq!(billing["consumer.heartbeat.interval.ms"], "2000");
        // What the proposer should have refused changes nothing, and says so.
        for bad in [alter("billing", "consumer.session.timeout.ms", Some("1")), alter("billing", "x.y", Some("1"))] {
            let outcome = metadata.apply(&bad);
            assert!(!outcome.changed && outcome.refusal == Some(AccessRefusal::Invalid), "{bad:?}: {outcome:?}");
        }
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&metadata).expect("encodes")).expect("decodes");
        assert_eq!(restored.group_configs, metadata.group_configs);
        // Deleting a group's last key removes the group.
        assert!(metadata.apply(&alter("billing", "consumer.session.timeout.ms", None)).changed);
        assert!(metadata.apply(&alter("billing", "consumer.heartbeat.interval.ms", None)).changed);
        assert!(metadata.group_configs.is_empty());
        // A key a newer node stored is kept through this node's alters of the others.
        Arc::make_mut(&mut metadata.group_configs)
            .insert("audit".into(), BTreeMap::from([("consumer.future.key".into(), "1".into())]));
        assert!(metadata.apply(&alter("audit", "consumer.session.timeout.ms", Some("30000"))).changed);
        assert_eq!(metadata.group_configs["audit"].len(), 2);
        // Metadata written before group configs were replicated has none.
        let old: ClusterMetadata =
            serde_json::from_str(r#"{"cluster_id":null,"nodes":{},"topics":{}}"#).expect("an old snapshot");
        assert!(old.group_configs.is_empty());
    }

    #[test]
    fn client_metrics_subscriptions_merge_refuse_bad_ones_and_survive_a_snapshot() {
        let mut metadata = ClusterMetadata::default();
        let alter = |key: &str, value: Option<&str>| Command::AlterClientMetrics {
            name: "orders".to_owned(),
            changes: vec![(key.to_owned(), value.map(str::to_owned))],
        };
        // Two nodes' alters of different keys, committed one after the other: both land.
        assert!(metadata.apply(&alter("metrics", Some("org.apache.kafka.producer."))).changed);
        let entry: Command =
            serde_json::from_slice(&serde_json::to_vec(&alter("interval.ms", Some("1000"))).expect("encodes"))
                .expect("decodes");
        assert!(metadata.apply(&entry).changed);
        assert!(!metadata.apply(&entry).changed, "the same again changes nothing");
        let subscription = &metadata.client_metrics.subscriptions()[0];
        assert_eq!((subscription.metrics.len(), subscription.interval_ms), (1, 1000));
        let outcome = metadata.apply(&alter("interval.ms", Some("1")));
        assert!(!outcome.changed && outcome.refusal == Some(AccessRefusal::Invalid), "{outcome:?}");
        let restored: ClusterMetadata =
            serde_json::from_slice(&serde_json::to_vec(&metadata).expect("encodes")).expect("decodes");
        assert_eq!(restored.client_metrics, metadata.client_metrics);
        assert!(metadata.apply(&alter("metrics", None)).changed);
        assert!(metadata.apply(&alter("interval.ms", None)).changed);
        assert!(metadata.client_metrics.is_empty(), "a subscription without keys is gone");
        let old: ClusterMetadata =
            serde_json::from_str(r#"{"cluster_id":null,"nodes":{},"topics":{}}"#).expect("an old snapshot");
        assert!(old.client_metrics.is_empty());
    }
}
