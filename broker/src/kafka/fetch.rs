//! Fetch (v4–v16; from v7 with fetch sessions, KIP-227, `fetch_sessions.rs`: an incremental fetch names only what
//! changed and is answered only what did). From v13 (KIP-516) topics are named by id: the ids are read as names
//! first (an id that names no topic is answered UNKNOWN_TOPIC_ID), the sessions keep names, and the answer names
//! each topic by id again. A partition's leader answers (from v11 a follower too, below), and a partition's
//! `current_leader_epoch` (v9+, KIP-320) is checked as ListOffsets checks it (`leader_epoch.rs`): older is FENCED_LEADER_EPOCH, newer
//! UNKNOWN_LEADER_EPOCH.
//! Batches go out as the `Bytes` storage read, whole, never decoded; a batch that starts before the fetch
//! offset is sent whole too, and the client skips the records below its offset, as with Kafka.
//!
//! From v12 (KIP-595) a fetch may name the epoch of the last record the client read (`last_fetched_epoch`).
//! When this leader's log says that epoch ended below the fetch offset, or holds only an older epoch, the
//! records the client read past that end were never committed here, and the answer is `diverging_epoch` (the
//! epoch and where it ends) with no records, as Kafka's `Partition.fetchRecords` answers, so the client
//! truncates or resets instead of reading on. The epoch list is read only when the last fetched epoch is older
//! than the leader's: a client reading in the leader's own epoch cannot have diverged (it ends at the log end).
//!
//! A partition's answer goes on past the append the fetch offset is in, while the following appends are in the
//! tail cache and fit the partition's `partition_max_bytes` and the response's `max_bytes`: each is a run of
//! its own in the frame (`response_frame.rs`, no copy), so a consumer's round trip carries up to what it allows
//! (with one append a fetch, a replay of 1 MB appends took a round trip a megabyte whatever the client asked).
//!
//! `isolation_level` 1 (`read_committed`) reads below the partition's last stable offset only (no batch of a
//! transaction still open), and each answer lists the aborted transactions its batches overlap (producer id and
//! first offset), which the client skips to their abort markers, as against Kafka. Every answer carries the last
//! stable offset.
//!
//! From v11 (KIP-392) a consumer's fetch (replica id -1) may be served by a follower as well as by the leader:
//! a follower reads up to its own high watermark (and last stable offset), which its leader's answers keep
//! within a replication round trip of the leader's; an offset past its log end is OFFSET_OUT_OF_RANGE, which
//! sends the client back to the leader. A leader asked by a consumer that names its rack (`rack_id`,
//! `client.rack`) answers with no records and a `preferred_read_replica` when an in-sync follower in that rack
//! holds the offset and this node is in another rack (`Replication::preferred_read_replica`); the client then
//! fetches from that follower until it errs or its metadata ages out, as Kafka's RackAwareReplicaSelector has
//! it. `--follower-fetching off` keeps every consumer on the leader.
//!
//! A partition refused NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names its leader (v12+) and the answer
//! carries its endpoint (v16+): KIP-951, `leader_hints.rs`.
//!
//! The long-poll is the gRPC fetch's: the request waits up to `max_wait_ms` (capped by `max_fetch_wait_ms`)
//! until `min_bytes` are there, woken by the partitions' high-watermark channels, never by polling.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::error::error_code;
use super::fetch_sessions::Served;
use super::leader_epoch::{led_partition, replica_partition};
use super::leader_hints::{is_hinted, node_endpoint, LeaderHints};
use super::response_frame::{BatchRun, JOINED_RUN_MAX_BYTES};
use super::KafkaContext;
use crate::partition::{next_offset_after, whole_batches_below, Partition};
use crate::request_trace;
use crate::topic_id::TopicId;

/// One partition of the request, resolved with the leader epoch it is led in (or the error code it gets).
struct Wanted {
    partition: Result<(Arc<Partition>, i32), i16>,
    index: i32,
    fetch_offset: i64,
    /// v12+: the epoch of the last record the client read; -1 when it does not say.
    last_fetched_epoch: i32,
    max_bytes: usize,
    /// KIP-392: the follower this leader sends the consumer to instead of answering with records.
    read_replica: Option<i32>,
}

impl Wanted {
    /// KIP-320's divergence check (Kafka's `Partition.fetchRecords` with a last fetched epoch): the largest epoch
    /// at or below the client's last one that this log holds, and where it ends, when that end is below the
    /// fetch offset or the epoch is older than the client's.
    fn diverging_epoch(&self, partition: &Partition, leader_epoch: i32) -> Option<EpochEndOffset> {
        if self.last_fetched_epoch < 0 || self.last_fetched_epoch >= leader_epoch {
            return None;
        }
        let (epoch, end_offset) = partition.log().end_offset_for_leader_epoch(self.last_fetched_epoch)?;
        (epoch < self.last_fetched_epoch || end_offset < self.fetch_offset)
            .then(|| EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset))
    }
}

/// The first Fetch version a follower may answer a consumer's (KIP-392: it carries the consumer's rack).
const FOLLOWER_FETCH_VERSION: i16 = 11;
/// The first Fetch version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;

/// Who fetches, as far as which replica serves it goes.
#[derive(Clone, Copy)]
struct Reader<'a> {
    /// A consumer's Fetch from v11: a follower may serve it.
    may_read_follower: bool,
    /// The consumer's rack, on a cluster whose leaders send consumers to followers in their rack.
    client_rack: Option<(&'a crate::replication::Replication, &'a str)>,
}

/// One asked partition on this node with the epoch it is known at and, at its leader, the follower in the
/// reader's rack to send it to; or the Kafka code. KIP-320 (v9+ carry the epoch): a stale or unknown current
/// leader epoch, or a node that does not lead (from v11: hold a replica), sends the client to refresh Metadata.
fn resolve(
    node: &crate::node::Node,
    topic: &str,
    asked: &kafka_protocol::messages::fetch_request::FetchPartition,
    reader: Reader<'_>,
) -> Result<(Arc<Partition>, i32, Option<i32>), i16> {
    let (partition, epoch, is_leader) = match reader.may_read_follower {
        true => replica_partition(node, topic, asked.partition, asked.current_leader_epoch)?,
        false => led_partition(node, topic, asked.partition, asked.current_leader_epoch)
            .map(|(partition, epoch)| (partition, epoch, true))?,
    };
    let read_replica = match (is_leader, reader.client_rack) {
        (true, Some((replication, rack))) => replication
            .preferred_read_replica(topic, partition.index, rack, asked.fetch_offset)
            .and_then(|id| i32::try_from(id).ok()),
        _ => None,
    };
    if let Some(metrics) = &node.metrics {
        let counted = match (is_leader, read_replica) {
            (true, Some(_)) => Some(&metrics.follower_fetching.redirects),
            (false, _) => Some(&metrics.follower_fetching.follower_reads),
            (true, None) => None,
        };
        if let Some(counter) = counted {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok((partition, epoch, read_replica))
}

/// The response, and its record batches as the frame carries them (`response_frame::encode_response_pieces`).
pub async fn answer(
    kafka: &KafkaContext,
    mut request: FetchRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> (FetchResponse, Vec<BatchRun>) {
    use crate::auth::acl::{Operation, Resource};
    let node = &kafka.node;
    let by_id = version >= TOPIC_ID_VERSION;
    let mut unknown_ids = match by_id {
        true => name_topics(kafka, &mut request),
        false => Vec::new(),
    };
    // An incremental fetch is read as a full one of every partition of its session; its answer then keeps what
    // changed (`FetchSessions::answered`).
    let served = match version {
        7.. if request.replica_id.0 < 0 => match node.fetch_sessions.open(&mut request, principal, Instant::now()) {
            Ok(served) => served,
            Err((code, reason)) => {
                tracing::debug!(session = request.session_id, epoch = request.session_epoch, %reason, "kafka fetch session refused");
                return (FetchResponse::default().with_error_code(code), Vec::new());
            }
        },
        _ => Served::Sessionless,
    };
    if by_id && matches!(served, Served::Incremental(_)) {
        unknown_ids.extend(take_stale(kafka, &mut request));
    }
    let may_read_follower = version >= FOLLOWER_FETCH_VERSION && request.replica_id.0 < 0;
    let client_rack = match (&node.replication, request.rack_id.as_str()) {
        (Some(replication), rack) if may_read_follower && node.config.follower_fetching && !rack.is_empty() => {
            Some((replication.as_ref(), rack))
        }
        _ => None,
    };
    let reader = Reader { may_read_follower, client_rack };
    let topics: Vec<(kafka_protocol::messages::TopicName, Vec<Wanted>)> = request
        .topics
        .iter()
        .map(|topic| {
            let authorized = kafka.authorize(principal, Operation::Read, &Resource::topic(topic.topic.0.as_str()));
            let wanted = topic
                .partitions
                .iter()
                .map(|asked| {
                    let resolved = authorized.and_then(|()| resolve(node, topic.topic.0.as_str(), asked, reader));
                    let read_replica = resolved.as_ref().ok().and_then(|(_, _, read_replica)| *read_replica);
                    Wanted {
                        partition: resolved.map(|(partition, epoch, _)| (partition, epoch)),
                        index: asked.partition,
                        fetch_offset: asked.fetch_offset,
                        last_fetched_epoch: asked.last_fetched_epoch,
                        max_bytes: node.fetch_bytes(u32::try_from(asked.partition_max_bytes).unwrap_or(0)),
                        read_replica,
                    }
                })
                .collect();
            (topic.topic.clone(), wanted)
        })
        .collect();
    let response_max_bytes = node.fetch_bytes(u32::try_from(request.max_bytes).unwrap_or(0));
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0).min(response_max_bytes);
    let wait_ms = u64::try_from(request.max_wait_ms).unwrap_or(0).min(node.config.max_fetch_wait_ms);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut shutdown = node.shutdown.clone();
    loop {
        // Receivers taken before the reads: an append between a read and the wait still wakes the wait.
        // One watcher per distinct partition, however often the request names it.
        let mut watchers = JoinSet::new();
        let mut watched = HashSet::new();
        for wanted in topics.iter().flat_map(|(_, wanted)| wanted) {
            if let Ok((partition, _)) = &wanted.partition {
                if !watched.insert(Arc::as_ptr(partition) as usize) {
                    continue;
                }
                let mut high_watermark = partition.watch_high_watermark();
                high_watermark.borrow_and_update();
                watchers.spawn(async move { high_watermark.changed().await.is_ok() });
            }
        }
        let (responses, bytes, joined) = read_all(&topics, response_max_bytes, request.isolation_level == 1).await;
        // A diverging epoch or another replica to read from, like an error, is answered at once: waiting cannot
        // change it.
        let has_error = responses.iter().flat_map(|topic| &topic.partitions).any(|p| {
            p.error_code != 0 || p.diverging_epoch != EpochEndOffset::default() || p.preferred_read_replica.0 >= 0
        });
        if bytes >= min_bytes
            || has_error
            || Instant::now() >= deadline
            || node.is_shutting_down()
            || watchers.is_empty()
        {
            let mut response = FetchResponse::default().with_responses(responses);
            if by_id {
                give_ids(kafka, &mut response);
            }
            response.session_id = node.fetch_sessions.answered(served, &mut response.responses);
            add_leader_hints(kafka, &mut response);
            if by_id {
                answer_by_id(&mut response, &unknown_ids);
            }
            let runs = batch_runs(&mut response, joined);
            return (response, runs);
        }
        tokio::select! {
            _ = watchers.join_next() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Fetch v13+ (KIP-516): gives each topic and forgotten topic of `request` its name from its id, so the rest reads
/// names as before; takes out the topics whose id names no topic, returned to be answered UNKNOWN_TOPIC_ID.
fn name_topics(kafka: &KafkaContext, request: &mut FetchRequest) -> Vec<(Uuid, Vec<i32>)> {
    let asked =
        request.topics.iter().map(|t| t.topic_id).chain(request.forgotten_topics_data.iter().map(|t| t.topic_id));
    let names = topic_names_of(kafka, asked.filter_map(TopicId::from_uuid).collect());
    let name_of = |id: Uuid| Some(TopicName(StrBytes::from_string(names.get(&TopicId::from_uuid(id)?)?.clone())));
    let mut unknown = Vec::new();
    request.topics.retain_mut(|topic| match name_of(topic.topic_id) {
        Some(name) => {
            topic.topic = name;
            true
        }
        None => {
            unknown.push((topic.topic_id, topic.partitions.iter().map(|p| p.partition).collect()));
            false
        }
    });
    // A forgotten topic that is gone keeps no name: its session forgets its partitions by id.
    for topic in &mut request.forgotten_topics_data {
        topic.topic = name_of(topic.topic_id).unwrap_or_default();
    }
    unknown
}

/// Fetch v13+, an incremental fetch: takes out the session's topics whose id is no longer the id of the topic
/// their name holds (deleted, perhaps created again), returned to be answered UNKNOWN_TOPIC_ID: a session's
/// partition is never read from another topic than the one the client named.
fn take_stale(kafka: &KafkaContext, request: &mut FetchRequest) -> Vec<(Uuid, Vec<i32>)> {
    let mut stale = Vec::new();
    request.topics.retain(|topic| {
        let is_current = topic_id_of(kafka, topic.topic.0.as_str()) == Some(topic.topic_id);
        if !is_current {
            stale.push((topic.topic_id, topic.partitions.iter().map(|p| p.partition).collect()));
        }
        is_current
    });
    stale
}

/// Fetch v13+: every topic of the answer given its id (the session keeps partitions by id and name).
fn give_ids(kafka: &KafkaContext, response: &mut FetchResponse) {
    for topic in &mut response.responses {
        // A topic deleted since it was read (no id any more) is answered with the nil id, which no client holds.
        topic.topic_id = topic_id_of(kafka, topic.topic.0.as_str()).unwrap_or_default();
    }
}

/// Fetch v13+: every topic of the answer by its id alone, and the unknown ids' partitions UNKNOWN_TOPIC_ID.
fn answer_by_id(response: &mut FetchResponse, unknown: &[(Uuid, Vec<i32>)]) {
    for topic in &mut response.responses {
        // The encoder refuses a field the version does not have.
        topic.topic = TopicName::default();
    }
    for (topic_id, partitions) in unknown {
        let partitions = partitions.iter().map(|index| {
            PartitionData::default()
                .with_partition_index(*index)
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()))
        });
        response
            .responses
            .push(FetchableTopicResponse::default().with_topic_id(*topic_id).with_partitions(partitions.collect()));
    }
}

/// The names of the topics with ids `ids`: this node's replicas of them (a lookup each), else (on a cluster) the
/// controller's metadata, where a topic without a replica here is still known, so its fetch is told
/// NOT_LEADER_OR_FOLLOWER and where the leader is.
fn topic_names_of(kafka: &KafkaContext, ids: BTreeSet<TopicId>) -> BTreeMap<TopicId, String> {
    let mut names = kafka.node.registry.names_by_id(&ids);
    if names.len() < ids.len() {
        if let Some(replication) = &kafka.node.replication {
            let metadata = replication.metadata();
            let missing = |id: &TopicId| ids.contains(id) && !names.contains_key(id);
            let found: Vec<(TopicId, String)> = metadata
                .topics
                .iter()
                .map(|(name, placed)| (placed.topic_id(name), name))
                .filter(|(id, _)| missing(id))
                .map(|(id, name)| (id, name.clone()))
                .collect();
            names.extend(found);
        }
    }
    names
}

fn topic_id_of(kafka: &KafkaContext, name: &str) -> Option<Uuid> {
    if let Ok(topic) = kafka.node.registry.topic(name) {
        return Some(topic.id.as_uuid());
    }
    let metadata = kafka.node.replication.as_ref()?.metadata();
    metadata.topics.get(name).map(|placed| placed.topic_id(name).as_uuid())
}

/// KIP-951's hints (v12+ the leader, v16+ its endpoint): each partition refused for not being led or served
/// here, or for a stale epoch, names its leader.
fn add_leader_hints(kafka: &KafkaContext, response: &mut FetchResponse) {
    let mut hints: Option<LeaderHints> = None;
    for topic in &mut response.responses {
        for partition in topic.partitions.iter_mut().filter(|p| is_hinted(p.error_code)) {
            let hints = hints.get_or_insert_with(|| LeaderHints::new(kafka));
            if let Some((leader_id, leader_epoch)) = hints.leader_of(topic.topic.0.as_str(), partition.partition_index)
            {
                partition.current_leader =
                    LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader_id)).with_leader_epoch(leader_epoch);
            }
        }
    }
    if let Some(hints) = hints {
        response.node_endpoints = hints.endpoints().into_iter().map(|b| node_endpoint!(NodeEndpoint, b)).collect();
    }
}

/// The runs the response's records are, in the order the encoder meets them: a stand-in is the next of
/// `joined` (made in that order), anything else the batches themselves. A stand-in without its run (none is
/// made so) becomes an empty answer, which the client fetches again, never the stand-in's zeros.
fn batch_runs(response: &mut FetchResponse, joined: Vec<BatchRun>) -> Vec<BatchRun> {
    let mut joined = joined.into_iter();
    let partitions = response.responses.iter_mut().flat_map(|topic| &mut topic.partitions);
    let records = partitions.filter_map(|p| p.records.as_mut());
    records
        .map(|records| {
            if BatchRun::is_stand_in(records) {
                if let Some(run) = joined.next() {
                    return run;
                }
                *records = Bytes::new();
            }
            BatchRun::single(records.clone())
        })
        .collect()
}

/// Reads every partition once, within the response's byte budget (the first non-empty partition returns at
/// least one whole batch regardless, as in Kafka, so a batch larger than the budget still makes progress).
/// Also returns the runs of several cached appends, in the order their stand-ins are in the response.
async fn read_all(
    topics: &[(kafka_protocol::messages::TopicName, Vec<Wanted>)],
    max_bytes: usize,
    is_read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, Vec<BatchRun>) {
    let mut budget = max_bytes;
    let mut total = 0;
    let mut joined = Vec::new();
    let mut responses = Vec::with_capacity(topics.len());
    for (name, wanted) in topics {
        let mut partitions = Vec::with_capacity(wanted.len());
        for wanted in wanted {
            let data =
                PartitionData::default().with_partition_index(wanted.index).with_preferred_read_replica(BrokerId(-1));
            let (partition, leader_epoch) = match &wanted.partition {
                Ok((partition, leader_epoch)) => (partition, *leader_epoch),
                Err(code) => {
                    partitions.push(data.with_error_code(*code).with_high_watermark(-1).with_last_stable_offset(-1));
                    continue;
                }
            };
            let (log_start_offset, high_watermark) =
                (partition.log().log_start_offset(), partition.log().high_watermark());
            let data = data
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(partition.log().last_stable_offset())
                .with_log_start_offset(log_start_offset);
            if let Some(replica) = wanted.read_replica {
                tracing::debug!(
                    topic = name.0.as_str(),
                    partition = wanted.index,
                    offset = wanted.fetch_offset,
                    replica,
                    "kafka fetch sent to a replica in the consumer's rack"
                );
                partitions.push(data.with_preferred_read_replica(BrokerId(replica)).with_records(Some(Bytes::new())));
                continue;
            }
            if let Some(diverging) = wanted.diverging_epoch(partition, leader_epoch) {
                tracing::debug!(
                    topic = name.0.as_str(),
                    partition = wanted.index,
                    offset = wanted.fetch_offset,
                    last_fetched_epoch = wanted.last_fetched_epoch,
                    epoch = diverging.epoch,
                    end_offset = diverging.end_offset,
                    "kafka fetch past the end of the client's last epoch"
                );
                partitions.push(data.with_diverging_epoch(diverging).with_records(Some(Bytes::new())));
                continue;
            }
            if budget == 0 && total > 0 {
                partitions.push(data.with_records(Some(Bytes::new())));
                continue;
            }
            let span = request_trace::fetch_span(name.0.as_str(), wanted.index as u32, wanted.fetch_offset);
            let allowance = wanted.max_bytes.min(budget.max(1));
            let read = partition.read(wanted.fetch_offset, allowance).instrument(span.clone()).await;
            if let Ok(read) = &read {
                span.record("bytes", read.batches.len() as i64);
            }
            request_trace::record_outcome(&span, &read);
            match read {
                Ok(mut read) => {
                    // Read after the batches: what the read returned below it is stable.
                    let last_stable = partition.log().last_stable_offset();
                    let stable_end = is_read_committed.then_some(last_stable);
                    let mut runs = vec![whole_batches_below(std::mem::take(&mut read.batches), stable_end)];
                    let mut taken = runs[0].len();
                    let mut next = next_offset_after(&runs[0]);
                    while let Some(offset) = next.filter(|_| taken < allowance.min(JOINED_RUN_MAX_BYTES)) {
                        let Some(more) = partition.read_following(offset, allowance.min(JOINED_RUN_MAX_BYTES) - taken)
                        else {
                            break;
                        };
                        let batches = whole_batches_below(more.batches, stable_end);
                        if batches.is_empty() {
                            break;
                        }
                        taken += batches.len();
                        next = next_offset_after(&batches);
                        read.high_watermark = read.high_watermark.max(more.high_watermark);
                        runs.push(batches);
                    }
                    let aborted = match (is_read_committed, next) {
                        (true, Some(end)) => partition
                            .log()
                            .aborted_transactions(wanted.fetch_offset, end)
                            .into_iter()
                            .map(|aborted| {
                                AbortedTransaction::default()
                                    .with_producer_id(aborted.producer_id.into())
                                    .with_first_offset(aborted.first_offset)
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let records = match runs.len() {
                        1 => runs.pop().unwrap_or_default(),
                        _ => match BatchRun::joining(runs) {
                            Ok(run) => {
                                let held = run.held();
                                joined.push(run);
                                held
                            }
                            Err(runs) => Bytes::from(runs.concat()),
                        },
                    };
                    total += records.len();
                    budget = budget.saturating_sub(records.len());
                    partitions.push(
                        data.with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(last_stable.min(read.high_watermark))
                            .with_log_start_offset(read.log_start_offset)
                            .with_aborted_transactions(Some(aborted))
                            .with_records(Some(records)),
                    );
                }
                Err(err) => {
                    tracing::debug!(partition = ?partition, offset = wanted.fetch_offset, error = %err, "kafka fetch refused");
                    partitions.push(data.with_error_code(error_code(&err)).with_records(Some(Bytes::new())));
                }
            }
        }
        responses.push(FetchableTopicResponse::default().with_topic(name.clone()).with_partitions(partitions));
    }
    (responses, total, joined)
}
