//! On a cluster, what a share partition's leader asks of the group's coordinator, and what the coordinator tells
//! or asks the other nodes, over the internal `Share` call: a window's stored state loaded and its changes stored
//! where the group's offsets partition is led (and replicated with it), whether a member opening a share session
//! is in the group, a reset or deleted group's windows dropped, and, for a member of rill's `ShareConsume` stream
//! (whose coordinator serves it), records read and acknowledged at the partitions' leaders
//! (`member_reads.rs`). On a single node, and where this node is the group's coordinator, each is answered here
//! without a call.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use base64::Engine as _;

use super::delivery::{self, Delivered, Deliveries, Limits};
use super::{AckBatch, Acquired, StateToStore};
use crate::error::{BrokerError, Result};
use crate::groups::TopicPartition;
use crate::node::Node;
use crate::offsets::{OffsetKey, StoredShareState};

/// The bytes of batches one `Read` call returns at most: they travel base64 in JSON, and the answer must fit the
/// internal call's message limit (`MAX_RAFT_MESSAGE_BYTES`, 16 MiB) with room to spare.
const READ_BYTES_CAP: usize = 4 << 20;

/// The longest one `Read` call waits for records at the leader: well inside the internal call's deadline.
pub const READ_WAIT_CAP: std::time::Duration = std::time::Duration::from_secs(3);

/// One call, as JSON in the internal `Share` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Call {
    /// To a group's coordinator: the state stored for one share partition.
    Load { key: OffsetKey },
    /// To a group's coordinator: store these states of the group's partitions (answered once replicated).
    Save { group: String, states: Vec<StateToStore> },
    /// To a group's coordinator: whether `member` is a member of `group`.
    IsMember { group: String, member: String },
    /// From a group's coordinator to every node: drop the group's windows (of `topics`, or all of them and the
    /// members' sessions), which it reset or deleted.
    Forget { group: String, topics: Option<BTreeSet<String>> },
    /// From a group's coordinator to every node: `member` left or timed out; release what it holds and forget
    /// its session.
    Departed { group: String, member: String },
    /// From a group's coordinator to a partition's leader: acquire records of `partitions` for `member`, waiting
    /// up to `wait_ms` for some.
    Read {
        group: String,
        member: String,
        partitions: Vec<TopicPartition>,
        max_records: usize,
        max_bytes: usize,
        wait_ms: u64,
    },
    /// From a group's coordinator to a partition's leader: apply and store `member`'s acknowledgements.
    Acknowledge { group: String, member: String, acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)> },
    /// From a share partition's leader to a dead-letter partition's leader: append these dead letters (a
    /// `ProduceRequest`, protobuf-encoded, base64), answered once its in-sync replicas hold them.
    DeadLetters { produce_base64: String },
}

/// What a `Read` acquired in one partition, or why the partition could not be read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadPartition {
    pub partition: TopicPartition,
    pub outcome: std::result::Result<ReadRecords, String>,
}

/// The batches holding the acquired records (base64), and the acquired ranges.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRecords {
    pub batches_base64: String,
    pub acquired: Vec<Acquired>,
}

/// A call's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    Loaded(Option<StoredShareState>),
    Saved,
    IsMember(bool),
    Forgotten,
    Read(Vec<ReadPartition>),
    /// Each partition's acknowledgement outcome: `None` stored, else why not.
    Acknowledged(Vec<(TopicPartition, Option<String>)>),
    DeadLettersWritten,
}

/// Why a call was refused, as the caller turns it back into the error the callee had.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    /// The node called is not the group's coordinator (any more, or not yet).
    NotCoordinator {
        group: String,
        partition: u32,
        node_id: u64,
        coordinator: Option<u64>,
        address: Option<String>,
    },
    /// A save from a stale window (`BrokerError::ShareStateFenced`).
    Fenced {
        group: String,
        topic: String,
        partition: u32,
        sent: u32,
        stored: u32,
    },
    Other(String),
}

impl From<BrokerError> for Refusal {
    fn from(err: BrokerError) -> Refusal {
        match err {
            BrokerError::NotCoordinator { group, partition, node_id, coordinator, coordinator_address, .. } => {
                Refusal::NotCoordinator { group, partition, node_id, coordinator, address: coordinator_address }
            }
            BrokerError::ShareStateFenced { group, topic, partition, sent, stored } => {
                Refusal::Fenced { group, topic, partition, sent, stored }
            }
            other => Refusal::Other(other.to_string()),
        }
    }
}

impl Refusal {
    fn into_error(self, to: u64) -> BrokerError {
        match self {
            Refusal::NotCoordinator { group, partition, node_id, coordinator, address } => {
                BrokerError::NotCoordinator {
                    group,
                    partition,
                    node_id,
                    coordinator,
                    coordinator_address: address,
                    without_coordinator_because: None,
                }
            }
            Refusal::Fenced { group, topic, partition, sent, stored } => {
                BrokerError::ShareStateFenced { group, topic, partition, sent, stored }
            }
            Refusal::Other(message) => BrokerError::ControllerUnavailable {
                reason: format!("node {to}, the share group's coordinator: {message}"),
            },
        }
    }
}

/// Answers one call on this node.
pub async fn serve(node: &Node, call: Call) -> std::result::Result<Answer, Refusal> {
    let served = match call {
        Call::Load { key } => load_here(node, &key).map(Answer::Loaded),
        Call::Save { group, states } => node.offsets.save_share_states(&group, states).await.map(|()| Answer::Saved),
        Call::IsMember { group, member } => is_member_here(node, &group, &member).map(Answer::IsMember),
        Call::Forget { group, topics } => {
            node.shares.forget_windows(&group, topics.as_ref());
            Ok(Answer::Forgotten)
        }
        Call::Departed { group, member } => {
            node.shares.depart(&group, &member);
            Ok(Answer::Forgotten)
        }
        Call::Read { group, member, partitions, max_records, max_bytes, wait_ms } => {
            let wait = std::time::Duration::from_millis(wait_ms).min(READ_WAIT_CAP);
            let limits = Limits {
                max_records,
                max_bytes: max_bytes.min(READ_BYTES_CAP),
                deadline: tokio::time::Instant::now() + wait,
            };
            if let Err(err) = node.shares.keep_session(&group, &member, tokio::time::Instant::now()) {
                return Err(Refusal::Other(err.to_string()));
            }
            let delivered = delivery::deliver(node, &group, &member, &partitions, limits).await;
            Ok(Answer::Read(delivered.into_iter().map(ReadPartition::of).collect()))
        }
        Call::Acknowledge { group, member, acknowledgements } => {
            let applied = delivery::apply(node, &group, &member, acknowledgements);
            let stored = delivery::store(node, &group, applied).await;
            let outcomes =
                stored.into_iter().map(|(partition, outcome)| (partition, outcome.err().map(|f| f.to_string())));
            Ok(Answer::Acknowledged(outcomes.collect()))
        }
        Call::DeadLetters { produce_base64 } => {
            let request = base64::engine::general_purpose::STANDARD
                .decode(produce_base64)
                .map_err(|e| BrokerError::Internal(format!("undecodable dead letters: {e}")))
                .and_then(|bytes| {
                    <rill_protocol::v1::ProduceRequest as prost::Message>::decode(bytes.as_slice())
                        .map_err(|e| BrokerError::Internal(format!("undecodable dead letters: {e}")))
                });
            match request {
                Ok(request) => {
                    super::dead_letters::append_here(node, request).await.map(|()| Answer::DeadLettersWritten)
                }
                Err(err) => Err(err),
            }
        }
    };
    served.map_err(Refusal::from)
}

impl ReadPartition {
    fn of((partition, delivered): (TopicPartition, Result<Delivered>)) -> ReadPartition {
        let outcome = delivered.map_err(|err| err.to_string()).map(|delivered| ReadRecords {
            batches_base64: base64::engine::general_purpose::STANDARD.encode(&delivered.records),
            acquired: delivered.acquired,
        });
        ReadPartition { partition, outcome }
    }
}

fn load_here(node: &Node, key: &OffsetKey) -> Result<Option<StoredShareState>> {
    node.offsets.check_coordinator(&key.group)?;
    Ok(node.offsets.share_state(key))
}

fn is_member_here(node: &Node, group: &str, member: &str) -> Result<bool> {
    node.offsets.check_coordinator(group)?;
    Ok(node.shares.has_member(group, member, tokio::time::Instant::now()))
}

/// Where a call about `group` is answered: `None` here (a single node, or this node coordinates the group), else
/// the coordinator's node id.
fn coordinator_of(node: &Node, group: &str) -> Result<Option<u64>> {
    let Some(replication) = &node.replication else { return Ok(None) };
    match node.offsets.coordinator(group) {
        Some((id, _)) if id == replication.node_id() => Ok(None),
        Some((id, _)) => Ok(Some(id)),
        // No leader for the group's offsets partition: the refusal says so.
        None => node.offsets.check_coordinator(group).map(|()| None),
    }
}

async fn call(node: &Node, to: u64, call: &Call) -> Result<Answer> {
    let controller = node.transactions.controller().ok_or_else(|| {
        BrokerError::Internal("a share group call between nodes was made on a single node".to_string())
    })?;
    let payload = serde_json::to_vec(call).map_err(|e| BrokerError::Internal(e.to_string()))?;
    let answer = controller.call_share(to, payload).await?;
    let answer: std::result::Result<Answer, Refusal> = serde_json::from_slice(&answer)
        .map_err(|e| BrokerError::Internal(format!("undecodable share group call answer: {e}")))?;
    answer.map_err(|refusal| refusal.into_error(to))
}

fn unexpected(answer: Answer) -> BrokerError {
    BrokerError::Internal(format!("unexpected answer to a share group call: {answer:?}"))
}

/// The state the group's coordinator stores for one share partition.
pub async fn load(node: &Node, key: &OffsetKey) -> Result<Option<StoredShareState>> {
    match coordinator_of(node, &key.group)? {
        None => load_here(node, key),
        Some(to) => match call(node, to, &Call::Load { key: key.clone() }).await? {
            Answer::Loaded(stored) => Ok(stored),
            other => Err(unexpected(other)),
        },
    }
}

/// Stores states of `group`'s partitions where the group's coordinator keeps them; returns once they are stored
/// (fsynced on a single node, replicated on a cluster).
pub async fn save(node: &Node, group: &str, states: Vec<StateToStore>) -> Result<()> {
    if states.is_empty() {
        return Ok(());
    }
    match coordinator_of(node, group)? {
        None => node.offsets.save_share_states(group, states).await,
        Some(to) => match call(node, to, &Call::Save { group: group.to_owned(), states }).await? {
            Answer::Saved => Ok(()),
            other => Err(unexpected(other)),
        },
    }
}

/// Whether `member` is a member of `group`, as its coordinator says.
pub async fn is_member(node: &Node, group: &str, member: &str) -> Result<bool> {
    match coordinator_of(node, group)? {
        None => is_member_here(node, group, member),
        Some(to) => match call(node, to, &Call::IsMember { group: group.to_owned(), member: member.to_owned() }).await?
        {
            Answer::IsMember(is) => Ok(is),
            other => Err(unexpected(other)),
        },
    }
}

/// Acquires records of `partitions` (all led by node `leader`, not this one) for `member` at their leader.
/// A call that fails is each partition's error.
pub async fn read(
    node: &Node,
    leader: u64,
    group: &str,
    member: &str,
    partitions: Vec<TopicPartition>,
    limits: Limits,
) -> Deliveries {
    let wait = limits.deadline.saturating_duration_since(tokio::time::Instant::now());
    let asked = Call::Read {
        group: group.to_owned(),
        member: member.to_owned(),
        partitions: partitions.clone(),
        max_records: limits.max_records,
        max_bytes: limits.max_bytes,
        wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
    };
    let read = match call(node, leader, &asked).await {
        Ok(Answer::Read(read)) => read,
        Ok(other) => return failed(partitions, &unexpected(other)),
        Err(err) => return failed(partitions, &err),
    };
    let mut out = Deliveries::new();
    for ReadPartition { partition, outcome } in read {
        let delivered = outcome
            .map_err(|message| BrokerError::ControllerUnavailable {
                reason: format!("node {leader}, the partition's leader: {message}"),
            })
            .and_then(|records| {
                let batches = base64::engine::general_purpose::STANDARD
                    .decode(records.batches_base64)
                    .map_err(|e| BrokerError::Internal(format!("node {leader} sent undecodable batches: {e}")))?;
                Ok(Delivered { records: batches.into(), acquired: records.acquired })
            });
        out.insert(partition, delivered);
    }
    out
}

fn failed(partitions: Vec<TopicPartition>, err: &BrokerError) -> Deliveries {
    partitions
        .into_iter()
        .map(|partition| {
            let err = BrokerError::ControllerUnavailable { reason: format!("the partition's leader: {err}") };
            (partition, Err(err))
        })
        .collect()
}

/// Applies and stores `member`'s acknowledgements of partitions node `leader` leads, there. Each partition's
/// outcome: `Err` with why it did not take (the whole call's failure for all of them).
pub async fn acknowledge(
    node: &Node,
    leader: u64,
    group: &str,
    member: &str,
    acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)>,
) -> Vec<(TopicPartition, std::result::Result<(), String>)> {
    let partitions: Vec<TopicPartition> = acknowledgements.iter().map(|(partition, _)| partition.clone()).collect();
    let asked = Call::Acknowledge { group: group.to_owned(), member: member.to_owned(), acknowledgements };
    match call(node, leader, &asked).await {
        Ok(Answer::Acknowledged(outcomes)) => outcomes
            .into_iter()
            .map(|(partition, refused)| {
                (partition, refused.map_or(Ok(()), |why| Err(format!("at node {leader}: {why}"))))
            })
            .collect(),
        Ok(other) => {
            let why = unexpected(other).to_string();
            partitions.into_iter().map(|partition| (partition, Err(why.clone()))).collect()
        }
        Err(err) => {
            let why = format!("the acknowledgement did not reach node {leader}, the partition's leader: {err}");
            partitions.into_iter().map(|partition| (partition, Err(why.clone()))).collect()
        }
    }
}

/// Appends dead letters (`request`) at node `leader`, which leads their partition. Its refusal comes back as the
/// write's error.
pub async fn write_dead_letters(node: &Node, leader: u64, request: rill_protocol::v1::ProduceRequest) -> Result<()> {
    let produce_base64 = base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(&request));
    match call(node, leader, &Call::DeadLetters { produce_base64 }).await {
        Ok(Answer::DeadLettersWritten) => Ok(()),
        Ok(other) => Err(unexpected(other)),
        Err(BrokerError::ControllerUnavailable { reason }) => Err(BrokerError::ControllerUnavailable {
            reason: reason.replace("the share group's coordinator", "the dead-letter partition's leader"),
        }),
        Err(err) => Err(err),
    }
}

/// On a cluster, tells every other node in the metadata, in the background, that the members this node's groups
/// lost since the last call left: each releases what they hold there at once, rather than when its locks run out.
pub fn release_departed(node: &std::sync::Arc<Node>) {
    let departed = node.shares.take_departed();
    if departed.is_empty() {
        return;
    }
    let node = std::sync::Arc::clone(node);
    tokio::spawn(async move {
        for (group, member) in departed {
            let told = Call::Departed { group: group.clone(), member: member.clone() };
            for (to, err) in tell_others(&node, &told).await {
                tracing::debug!(%group, %member, node = to, error = %err, "cannot tell a node a member left");
            }
        }
    });
}

/// On a cluster, tells every other node in the metadata to drop `group`'s windows (of `topics`, or all), at
/// once and best effort: a node not reached holds a window whose next save is fenced by the reset's new token
/// (`ShareGroups::reset`), after which it loads what was stored.
pub async fn forget_everywhere(node: &Node, group: &str, topics: Option<BTreeSet<String>>) {
    for (to, err) in tell_others(node, &Call::Forget { group: group.to_owned(), topics }).await {
        tracing::warn!(%group, node = to, error = %err, "cannot tell a node to drop a share group's windows");
    }
}

/// Sends `told` to every other node in the metadata at once (none on a single node); the nodes that refused it
/// or could not be reached, with why.
async fn tell_others(node: &Node, told: &Call) -> Vec<(u64, BrokerError)> {
    let (Some(replication), Some(controller)) = (&node.replication, node.transactions.controller()) else {
        return Vec::new();
    };
    let me = replication.node_id();
    let others: Vec<u64> = controller.metadata().nodes.keys().copied().filter(|id| *id != me).collect();
    let outcomes = futures_util::future::join_all(others.iter().map(|to| call(node, *to, told))).await;
    others.into_iter().zip(outcomes).filter_map(|(to, outcome)| outcome.err().map(|err| (to, err))).collect()
}
