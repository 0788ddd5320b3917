//! Records read for a share group member, and its acknowledgements applied and stored: what Kafka's ShareFetch
//! and ShareAcknowledge (`kafka/share_fetch.rs`) and rill's ShareConsume stream (`service/share_consume.rs`) both
//! do, over the node's share groups, logs and offset store. Each caller translates partitions and errors to its
//! own protocol.
//!
//! A read acquires records from the member's partitions, waiting up to the deadline while nothing can be
//! acquired, woken by an append to any of them (its high-watermark channel), by records released anywhere in the
//! share groups, or by the first of their locks running out; never by polling. It answers as soon as one record is
//! acquired. Batches go out as storage read them, never decoded or re-encoded (the RecordBatch v2 bytes are the
//! log's): a slice of the read, unless the acquired batches are not contiguous in it (a batch between them
//! acquired by nobody this time), when just those batches are copied together.
//!
//! Acknowledgements are applied in memory first (what they release is available to reads at once) and stored
//! (fsynced, `OffsetStore::save_share_states`; on a cluster at the group's coordinator, `remote.rs`) before their
//! outcome is answered, so an acknowledged record is never delivered again after a crash.
//!
//! On a cluster a partition is read only where it is led (a follower answers `not-leader`), after its window is
//! loaded from the group's coordinator; a window whose save is fenced (a newer leader or a reset stored since
//! it loaded) is dropped and loaded again by the next read.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rill_protocol::BatchIter;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{AckBatch, AckError, AckOutcomes, Acquired, BatchSpan, StateToStore};
use crate::error::BrokerError;
use crate::groups::TopicPartition;
use crate::node::Node;

/// Records a read acquires when the request leaves its maximum unset (Kafka's `max.poll.records`).
pub const DEFAULT_MAX_RECORDS: usize = 500;

/// How much one read may acquire, and until when it may wait for something.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub deadline: Instant,
}

impl Limits {
    /// The request's limits, each unset one (0 or less) the default, the bytes and the wait capped by the
    /// broker's settings.
    pub fn of(node: &Node, max_records: i64, max_bytes: i64, max_wait_ms: i64) -> Limits {
        let max_records = usize::try_from(max_records).ok().filter(|n| *n > 0).unwrap_or(DEFAULT_MAX_RECORDS);
        let max_bytes = node.fetch_bytes(u32::try_from(max_bytes.max(0)).unwrap_or(u32::MAX));
        let wait_ms = u64::try_from(max_wait_ms).unwrap_or(0).min(node.config.max_fetch_wait_ms);
        Limits { max_records, max_bytes, deadline: Instant::now() + Duration::from_millis(wait_ms) }
    }
}

/// What a read acquired in one partition: the batches holding the records, and the acquired ranges.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// A read's outcome per partition: only partitions that delivered records, or could not be read.
pub type Deliveries = BTreeMap<TopicPartition, Result<Delivered, BrokerError>>;

/// Acquires records for `member` from `partitions`, waiting for some until `limits.deadline`. Returns at once
/// when a partition cannot be read (waiting cannot change that).
pub async fn deliver(
    node: &Node,
    group: &str,
    member: &str,
    partitions: &[TopicPartition],
    limits: Limits,
) -> Deliveries {
    let mut shutdown = node.shutdown.clone();
    let mut released = node.shares.watch_released();
    loop {
        released.borrow_and_update();
        let mut watchers = JoinSet::new();
        for partition in partitions {
            if let Ok(log) = node.registry.partition(&partition.topic, partition.partition) {
                let mut high_watermark = log.watch_high_watermark();
                high_watermark.borrow_and_update();
                watchers.spawn(async move { high_watermark.changed().await.is_ok() });
            }
        }
        let deliveries = acquire_all(node, group, member, partitions, limits).await;
        if !deliveries.is_empty() || Instant::now() >= limits.deadline || node.is_shutting_down() {
            return deliveries;
        }
        let wake =
            node.shares.next_deadline(group, partitions).map_or(limits.deadline, |lock| lock.min(limits.deadline));
        tokio::select! {
            _ = watchers.join_next(), if !watchers.is_empty() => {}
            _ = released.changed() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One pass over the partitions.
async fn acquire_all(
    node: &Node,
    group: &str,
    member: &str,
    partitions: &[TopicPartition],
    limits: Limits,
) -> Deliveries {
    let is_read_committed = node.shares.settings_of(group).is_read_committed;
    let (mut records_left, mut bytes_left) = (limits.max_records, limits.max_bytes);
    let mut deliveries = Deliveries::new();
    for partition in partitions {
        if records_left == 0 || bytes_left == 0 {
            break;
        }
        if let Err(err) = load_window(node, group, partition).await {
            deliveries.insert(partition.clone(), Err(err));
            continue;
        }
        let (read_from, to_store) = node.shares.prepare(group, partition, node, Instant::now());
        if let Some(state) = to_store {
            if let Err(err) = save(node, group, vec![state]).await {
                deliveries.insert(partition.clone(), Err(err));
                continue;
            }
        }
        let Some(offset) = read_from else { continue };
        let Ok(log) = node.registry.partition(&partition.topic, partition.partition) else { continue };
        let read = match log.read(offset, bytes_left).await {
            Ok(read) => read,
            Err(err) => {
                deliveries.insert(partition.clone(), Err(err));
                continue;
            }
        };
        // read_committed: nothing at or past the last stable offset (an open transaction's batches, and what
        // follows them) is acquired, and an aborted transaction's batches are skipped, never delivered.
        let stable_end = is_read_committed.then(|| log.log().last_stable_offset());
        let aborted = stable_end.map(|end| log.log().aborted_transactions(offset, end)).unwrap_or_default();
        let batches = spans(&read.batches, stable_end, &aborted);
        let spans: Vec<BatchSpan> = batches.iter().map(|(span, _)| *span).collect();
        let acquired = node.shares.acquire(group, member, partition, &spans, records_left, Instant::now());
        if acquired.is_empty() {
            continue;
        }
        let count: usize = acquired.iter().map(|a| (a.last - a.first + 1) as usize).sum();
        records_left = records_left.saturating_sub(count);
        let records = records_for(&read.batches, &batches, &acquired);
        bytes_left = bytes_left.saturating_sub(records.len());
        deliveries.insert(partition.clone(), Ok(Delivered { records, acquired }));
    }
    deliveries
}

/// On a cluster: checks this node leads `partition`, and loads its window from the group's coordinator unless it
/// holds it at the epoch it leads at (storing where it starts, when the group never read it). Nothing on a single
/// node, whose windows load from its own store as they are read.
async fn load_window(node: &Node, group: &str, partition: &TopicPartition) -> Result<(), BrokerError> {
    if !node.shares.is_clustered() {
        return Ok(());
    }
    node.check_leader(&partition.topic, partition.partition)?;
    if !node.shares.needs_load(group, partition, node) {
        return Ok(());
    }
    let key = crate::offsets::OffsetKey {
        group: group.to_owned(),
        topic: partition.topic.clone(),
        partition: partition.partition,
    };
    let stored = super::remote::load(node, &key).await?;
    match node.shares.install(group, partition, stored, node) {
        Some(started) => save(node, group, vec![started]).await,
        None => Ok(()),
    }
}

/// Writes the dead letters `states` carry (`dead_letters.rs`), then stores the states where the group's
/// coordinator keeps them; a fenced window is dropped, to be loaded again. Every share state stored goes through
/// here, so no record leaves a stored window before its dead letter is written.
pub async fn save(node: &Node, group: &str, mut states: Vec<StateToStore>) -> Result<(), BrokerError> {
    super::dead_letters::write(node, group, &mut states).await;
    let saved = super::remote::save(node, group, states).await;
    if let Err(BrokerError::ShareStateFenced { topic, partition, .. }) = &saved {
        node.shares.forget_window(group, &TopicPartition::new(topic.clone(), *partition));
    }
    saved
}

/// Each batch of a read that starts below `stable_end` (every one when `None`), with where its bytes are in the
/// read; a control batch, or one of the `aborted` transactions, is skipped.
fn spans(
    read: &Bytes,
    stable_end: Option<i64>,
    aborted: &[rill_storage::AbortedTransaction],
) -> Vec<(BatchSpan, std::ops::Range<usize>)> {
    let mut at = 0;
    let mut out = Vec::new();
    for batch in BatchIter::new(read.clone()) {
        let Ok(batch) = batch else { break };
        if stable_end.is_some_and(|end| batch.header.base_offset >= end) {
            break;
        }
        let span = BatchSpan {
            base_offset: batch.header.base_offset,
            last_offset: batch.header.last_offset(),
            is_skipped: batch.header.is_control() || crate::partition::is_aborted(&batch.header, aborted),
        };
        out.push((span, at..at + batch.bytes.len()));
        at += batch.bytes.len();
    }
    out
}

/// The batches of `read` that hold acquired offsets: one slice of the read when they are contiguous (as they are
/// unless a batch between them holds nothing acquired), else a copy of just those batches.
fn records_for(read: &Bytes, batches: &[(BatchSpan, std::ops::Range<usize>)], acquired: &[Acquired]) -> Bytes {
    let holds = |span: &BatchSpan| acquired.iter().any(|a| a.first <= span.last_offset && a.last >= span.base_offset);
    let wanted: Vec<&std::ops::Range<usize>> =
        batches.iter().filter(|(span, _)| holds(span)).map(|(_, range)| range).collect();
    let (Some(first), Some(last)) = (wanted.first(), wanted.last()) else { return Bytes::new() };
    let is_contiguous = wanted.windows(2).all(|pair| pair[0].end == pair[1].start);
    if is_contiguous {
        return read.slice(first.start..last.end);
    }
    let mut out = BytesMut::with_capacity(wanted.iter().map(|r| r.len()).sum());
    for range in wanted {
        out.extend_from_slice(&read[range.clone()]);
    }
    out.freeze()
}

/// Acknowledgements applied in memory, their states not stored yet.
pub struct Applied {
    outcomes: AckOutcomes,
    to_store: Vec<StateToStore>,
}

/// Applies `member`'s acknowledgements in memory (what they release is available to reads at once), partition
/// by partition: a partition's all apply or none do.
pub fn apply(
    node: &Node,
    group: &str,
    member: &str,
    acknowledgements: Vec<(TopicPartition, Vec<AckBatch>)>,
) -> Applied {
    if acknowledgements.is_empty() {
        return Applied { outcomes: Vec::new(), to_store: Vec::new() };
    }
    let (outcomes, to_store) = node.shares.acknowledge(group, member, acknowledgements);
    Applied { outcomes, to_store }
}

/// Why a partition's acknowledgements did not take.
#[derive(Debug)]
pub enum AckFailure {
    /// Refused: none of the partition's applied.
    Refused(AckError),
    /// Applied in memory, but not stored: a crash would forget them. (The one store's error, shared by its
    /// partitions.)
    NotStored(std::sync::Arc<BrokerError>),
}

impl std::fmt::Display for AckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AckFailure::Refused(err) => err.fmt(f),
            AckFailure::NotStored(err) => write!(f, "the acknowledgement was not stored: {err}"),
        }
    }
}

/// Stores what `apply` changed (fsynced); each partition's outcome.
pub async fn store(node: &Node, group: &str, applied: Applied) -> BTreeMap<TopicPartition, Result<(), AckFailure>> {
    let stored = save(node, group, applied.to_store).await.map_err(std::sync::Arc::new);
    applied
        .outcomes
        .into_iter()
        .map(|(partition, outcome)| {
            let outcome = match (outcome, &stored) {
                (Err(err), _) => Err(AckFailure::Refused(err)),
                (Ok(()), Err(err)) => Err(AckFailure::NotStored(std::sync::Arc::clone(err))),
                (Ok(()), Ok(())) => Ok(()),
            };
            (partition, outcome)
        })
        .collect()
}
