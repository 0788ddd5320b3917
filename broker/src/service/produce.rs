//! Produce: check the records against the topic's limits and Kafka's produce rules, pick the partition, hand the
//! batch to the partition's writer, and answer when the requested acks are met.
//!
//! A pre-encoded batch travels as a `Bytes` slice of the request buffer into the log's `append`, which copies
//! it once into the segment file. It is never re-encoded: storage patches the base offset, outside the CRC. The
//! exceptions are what Kafka's broker rewrites too: a LogAppendTime batch (one its producer flagged, or any batch
//! of a topic with `message.timestamp.type=LogAppendTime`), copied once here to take the broker's clock as its
//! max timestamp, and, on a topic whose `compression.type` names a codec, a batch in another codec, recompressed
//! into it. A topic with timestamp bounds (`message.timestamp.before.max.ms`, `.after.max.ms`) has each batch's
//! records checked here against the broker's clock, before the append.

use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::compressed::recompress;
use rill_protocol::compression::MAX_DECOMPRESSED_BATCH_BYTES;
use rill_protocol::partitioner::partition_for_key;
use rill_protocol::record::RecordIter;
use rill_protocol::v1::{self, produce_request::Records};
use rill_protocol::{
    stamp_log_append_time, validate_produced, validate_produced_within, BatchHeader, Compression, TimestampType,
};
use rill_storage::StorageError;
use tracing::{Instrument, Span};

use crate::codec::encode_records;
use crate::error::{BrokerError, Result};
use crate::meta::TopicSettings;
use crate::node::{now_ms, Node};
use crate::partition::Partition;
use crate::registry::Topic;
use crate::replication::{CannotWrite, Replication};
use crate::request_trace;
use crate::transactions::AdmittedTransactional;

/// Produces under a `produce` span (`request_trace`) that continues the trace of the batches' first records.
pub async fn produce(node: &Node, request: v1::ProduceRequest) -> Result<v1::ProduceResponse> {
    if let (Some(replication), Some(index)) = (&node.replication, request.partition) {
        replication.await_leadership_start(&request.topic, index).await;
        if let Some(header) = first_transactional_header(&request) {
            node.transactions.await_admissible(&header, &request.topic, index).await;
        }
    }
    admit(node, request)?.produce(|| {}).await
}

/// A produce that passed every check made before the append, its partition picked: what is left is to queue its
/// batches on the partition's writer and wait for the acks.
pub struct AdmittedProduce {
    span: Span,
    partition: Arc<Partition>,
    batches: Vec<Bytes>,
    acks: v1::Acks,
    /// In a cluster: where the leader's appends are replicated, and the leader epoch the produce was admitted in.
    leader_epoch: Option<(Arc<Replication>, u32)>,
    /// A transactional produce's admission, held until its batches are queued (`transactions/`).
    transaction: Option<AdmittedTransactional>,
    /// The broker's clock stamped into its LogAppendTime batches: the append time the answer reports.
    log_append_time_ms: Option<i64>,
}

/// Checks a produce and picks its partition, waiting on nothing: a caller that admits produces one after the
/// other gets partitions picked (round-robin, by key) in that order, and can queue them in that order.
pub fn admit(node: &Node, request: v1::ProduceRequest) -> Result<AdmittedProduce> {
    let span = request_trace::produce_span(&request.topic);
    if !span.is_disabled() {
        match &request.records {
            Some(Records::RecordBatch(batch)) => {
                request_trace::continue_producer_traces(&span, std::slice::from_ref(batch))
            }
            Some(Records::RecordBatches(v1::RecordBatches { batches })) => {
                request_trace::continue_producer_traces(&span, batches)
            }
            _ => {}
        }
    }
    let admitted = span.in_scope(|| admit_in(node, request, &span));
    request_trace::record_outcome(&span, &admitted);
    let Admission { partition, batches: Checked { batches, log_append_time_ms, .. }, acks, leader_epoch, transaction } =
        admitted?;
    Ok(AdmittedProduce { span, partition, batches, acks, leader_epoch, transaction, log_append_time_ms })
}

struct Admission {
    partition: Arc<Partition>,
    batches: Checked,
    acks: v1::Acks,
    leader_epoch: Option<(Arc<Replication>, u32)>,
    transaction: Option<AdmittedTransactional>,
}

fn admit_in(node: &Node, request: v1::ProduceRequest, span: &Span) -> Result<Admission> {
    if node.is_shutting_down() {
        return Err(BrokerError::ShuttingDown);
    }
    // The broker's own topics (a cluster's `__consumer_offsets`) are written by the broker alone: a client's
    // record there could forge a group's commit.
    if request.topic.starts_with(crate::registry::RESERVED_PREFIX) {
        return Err(BrokerError::ReservedTopicName { name: request.topic });
    }
    // A cluster node holding no replica of the topic has no log of it: still `not-leader`, naming the leader.
    if let (Some(index), Some(_)) = (request.partition, &node.replication) {
        node.check_leader(&request.topic, index)?;
    }
    let topic = node.registry.topic(&request.topic)?;
    let acks = v1::Acks::try_from(request.acks)
        .map_err(|_| BrokerError::invalid("acks", format!("unknown value {}", request.acks)))?;
    let settings = topic.settings();
    let limit = settings.max_batch_bytes;
    // Which batches the broker must check before the append: all when it answers first (acks NONE), the first
    // when it reads that batch's first key to pick the partition.
    let wants_key = request.partition.is_none();
    let check_here = |position: usize| acks == v1::Acks::None || (position == 0 && wants_key);
    let batches = match request.records {
        None => return Err(BrokerError::invalid("records", "set one of record_batch, record_batches or record_list")),
        Some(Records::RecordBatch(batch)) => checked_batches(vec![batch], &settings, wants_key, check_here)?,
        Some(Records::RecordBatches(v1::RecordBatches { batches })) => {
            if batches.is_empty() {
                return Err(BrokerError::invalid("record_batches", "holds no batch: send at least one"));
            }
            checked_batches(batches, &settings, wants_key, check_here)?
        }
        // Encoded here by the builder: valid by construction, CreateTime, uncompressed; the topic's timestamp and
        // compression rules still apply.
        Some(Records::RecordList(list)) => {
            checked_batches(vec![encode_records(&list.records, now_ms(), limit)?], &settings, wants_key, |_| false)?
        }
    };
    if settings.schema_ids.is_on() {
        let registry = node.schemas.snapshot();
        for batch in &batches.batches {
            let checked =
                crate::schema_registry::validation::check_batch(batch, &request.topic, &settings.schema_ids, &registry);
            if let Err(refused) = checked {
                if let Some(metrics) = &node.metrics {
                    metrics.schema_id_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::debug!(topic = %request.topic, reason = %refused, "produce refused: schema id validation");
                return Err(StorageError::from(refused).into());
            }
        }
    }
    let index = match request.partition {
        Some(index) => index,
        None => pick_partition(&topic, batches.first_key.as_deref()),
    };
    span.record("partition", i64::from(index));
    let partition = topic.partition(index)?;
    let transaction = admit_transactional(node, &batches.batches, &request.topic, index)?;
    // In a cluster: only the leader takes produces, and ACKS_ALL needs enough in-sync replicas first.
    let leader_epoch = match &node.replication {
        Some(replication) => {
            let epoch = replication.check_leader(&request.topic, index)?;
            if acks == v1::Acks::All {
                replication.check_in_sync(&request.topic, index)?;
            }
            Some((Arc::clone(replication), epoch))
        }
        None => None,
    };
    // Below the disk reserve: refused before the append, and the leadership moves as for a full disk.
    if let Err(err) = node.disk_reserve.take(batches.batches.iter().map(|b| b.len() as u64).sum()) {
        if let Some((replication, epoch)) = &leader_epoch {
            replication.resign_for_full_disk(&request.topic, index, *epoch);
        }
        return Err(err);
    }
    Ok(Admission { partition, batches, acks, leader_epoch, transaction })
}

/// The header of the request's first batch, if it is a transactional producer's.
fn first_transactional_header(request: &v1::ProduceRequest) -> Option<BatchHeader> {
    let first = match &request.records {
        Some(Records::RecordBatch(batch)) => batch,
        Some(Records::RecordBatches(v1::RecordBatches { batches })) => batches.first()?,
        _ => return None,
    };
    BatchHeader::parse(first).ok().filter(|header| header.is_transactional() && header.producer_id >= 0)
}

/// A produce of transactional batches goes on only inside its producer's open transaction, with the partition
/// added to it; the admission is held until the batches are queued. One look at each batch's attributes for any
/// other produce.
fn admit_transactional(
    node: &Node,
    batches: &[Bytes],
    topic: &str,
    index: u32,
) -> Result<Option<AdmittedTransactional>> {
    // One without a producer id is the produce rules' to refuse (INVALID_ARGUMENT, saying what is missing).
    let mut headers = batches
        .iter()
        .filter_map(|batch| BatchHeader::parse(batch).ok())
        .filter(|header| header.is_transactional() && header.producer_id >= 0);
    let Some(first) = headers.next() else { return Ok(None) };
    if headers.any(|header| (header.producer_id, header.producer_epoch) != (first.producer_id, first.producer_epoch)) {
        return Err(BrokerError::invalid(
            "records",
            "transactional batches of one produce must come from one producer id and epoch",
        ));
    }
    Ok(Some(node.transactions.admit_produce(&first, topic, index)?))
}

impl AdmittedProduce {
    /// The partition the produce goes to.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Queues the batches on the partition's writer, calls `on_queued` once they are on its queue (their place
    /// in the partition's order taken; not called if they never get there), and answers once the acks are met.
    pub async fn produce(self, on_queued: impl FnOnce()) -> Result<v1::ProduceResponse> {
        let span = self.span.clone();
        let produced = self.produce_in(on_queued).instrument(span.clone()).await;
        request_trace::record_outcome(&span, &produced);
        produced
    }

    async fn produce_in(self, on_queued: impl FnOnce()) -> Result<v1::ProduceResponse> {
        let AdmittedProduce { span, partition, batches, acks, leader_epoch, transaction, log_append_time_ms } = self;
        let index = partition.index;
        if acks == v1::Acks::None {
            partition.append_unacknowledged(batches).await?;
            drop(transaction);
            on_queued();
            return Ok(v1::ProduceResponse { partition: index, base_offset: -1, last_offset: -1, append_time_ms: -1 });
        }
        let (count, bytes) = (batches.len(), batches.iter().map(Bytes::len).sum::<usize>());
        let queued = partition.enqueue(batches).await?;
        drop(transaction);
        on_queued();
        // A leader whose disk is full, or whose log had an fsync fail, hands the partition over rather than
        // refusing until space is freed or the node restarts.
        let resign_if_full = |err: BrokerError| {
            if let (Some((replication, epoch)), Some(why)) = (&leader_epoch, CannotWrite::of(&err)) {
                replication.resign(partition.topic.as_str(), index, *epoch, why);
            }
            err
        };
        let appended = queued.appended().await.map_err(resign_if_full)?;
        if let Some((replication, _)) = &leader_epoch {
            replication.on_append(&partition);
        }
        if acks == v1::Acks::Durable {
            partition.sync_through(appended.last_offset + 1).await.map_err(resign_if_full)?;
        }
        if let (v1::Acks::All, Some((replication, epoch))) = (acks, &leader_epoch) {
            replication.wait_replicated(&partition, *epoch, appended.last_offset + 1).await?;
        }
        span.record("offset", appended.base_offset).record("last_offset", appended.last_offset);
        span.record("batches", count as i64).record("bytes", bytes as i64);
        tracing::debug!(topic = %partition.topic, partition = index, batches = count, bytes, base_offset = appended.base_offset, ?acks, "produced");
        Ok(v1::ProduceResponse {
            partition: index,
            base_offset: appended.base_offset,
            last_offset: appended.last_offset,
            append_time_ms: log_append_time_ms.unwrap_or(appended.append_time_ms),
        })
    }
}

/// A produce's batches, ready for the append.
struct Checked {
    batches: Vec<Bytes>,
    /// The time stamped into its LogAppendTime batches, if it has any (one time for all, as Kafka stamps them).
    log_append_time_ms: Option<i64>,
    /// The first record's key, when asked for (to pick the partition by), read before any rewrite.
    first_key: Option<Bytes>,
}

/// Checks each batch against the topic's size limit, and prepares it for the append. Storage's append checks
/// every batch with Kafka's produce rules (`rill_protocol::validate_produced`) before writing any, off the async
/// threads; the broker runs the same check here only when it must answer or look inside before the append:
/// the batches at the positions `check_here` names; any LogAppendTime batch (flagged by its producer, or every
/// batch of a LogAppendTime topic), which leaves with the broker's clock as its `max_timestamp`; every batch of
/// a topic whose timestamps are bounded, checked against the broker's clock as Kafka's `LogValidator` checks them;
/// and, on a topic whose `compression.type` names a codec, every batch in another codec, which leaves in that
/// one. So a bad batch is refused with INVALID_ARGUMENT either way, and the common produce checks each batch once.
fn checked_batches(
    mut batches: Vec<Bytes>,
    settings: &TopicSettings,
    wants_key: bool,
    check_here: impl Fn(usize) -> bool,
) -> Result<Checked> {
    let (limit, timestamps) = (settings.max_batch_bytes, &settings.timestamps);
    let codec = settings.compression.codec(&settings.compression_levels);
    // Read once, and only by a produce that needs it: one time for every batch it stamps or checks.
    let mut now = None;
    let mut log_append_time_ms = None;
    let mut key = None;
    // With LogAppendTime the producer's timestamps are replaced, so Kafka checks no bound.
    let bounds =
        if timestamps.log_append_time { rill_protocol::TimestampBounds::default() } else { timestamps.bounds() };
    for (position, batch) in batches.iter_mut().enumerate() {
        if batch.len() as u64 > limit {
            return Err(BrokerError::TooLarge { what: "record batch", size: batch.len() as u64, limit });
        }
        let header = BatchHeader::parse(batch).ok();
        let is_log_append_time = timestamps.log_append_time
            || header.is_some_and(|header| header.timestamp_type() == TimestampType::LogAppendTime);
        let recompress_to = codec.filter(|(codec, _)| header.is_some_and(|h| h.compression().ok() != Some(*codec)));
        let wants_key_here = wants_key && position == 0;
        if !(check_here(position) || wants_key_here || is_log_append_time || !bounds.is_unbounded())
            && recompress_to.is_none()
        {
            continue;
        }
        if bounds.is_unbounded() {
            validate_produced(batch, MAX_DECOMPRESSED_BATCH_BYTES)
        } else {
            validate_produced_within(batch, MAX_DECOMPRESSED_BATCH_BYTES, *now.get_or_insert_with(now_ms), bounds)
        }
        .map_err(StorageError::from)?;
        if wants_key_here {
            key = first_key(batch)?;
        }
        // Request buffers are shared and read-only: a batch the broker rewrites is copied once, and rewritten only
        // after the check above, so a new CRC never covers damage the old one caught.
        let mut rewritten = match recompress_to {
            Some((codec, level)) => {
                let moved =
                    recompress(batch, codec, level, MAX_DECOMPRESSED_BATCH_BYTES).map_err(StorageError::from)?;
                if moved.len() as u64 > limit {
                    return Err(BrokerError::TooLarge {
                        what: "recompressed record batch",
                        size: moved.len() as u64,
                        limit,
                    });
                }
                Some(moved)
            }
            None => None,
        };
        if is_log_append_time {
            let now = *now.get_or_insert_with(now_ms);
            stamp_log_append_time(rewritten.get_or_insert_with(|| batch.to_vec()), now);
            log_append_time_ms = Some(now);
        }
        if let Some(rewritten) = rewritten {
            *batch = Bytes::from(rewritten);
        }
    }
    Ok(Checked { batches, log_append_time_ms, first_key: key })
}

/// The key of the batch's first record, if the records are readable without decompressing (a compressed batch
/// goes round-robin unless the producer names a partition, which rill's client always does), as produced (before a
/// topic's `compression.type` recompresses it). The batch has passed `validate_produced` in `checked_batches`.
fn first_key(batch: &Bytes) -> Result<Option<Bytes>> {
    let header = BatchHeader::parse(batch).map_err(StorageError::from)?;
    if header.compression().map_err(StorageError::from)? != Compression::None {
        return Ok(None);
    }
    let mut records = RecordIter::new(&batch[HEADER_BYTES..], header.base_offset, header.base_timestamp);
    match records.next() {
        Some(Ok(record)) => Ok(record.key.map(|key| batch.slice_ref(key))),
        Some(Err(err)) => Err(StorageError::from(err).into()),
        None => Ok(None),
    }
}

/// Kafka's default partitioner: murmur2 of the key for keyed records, round-robin otherwise.
fn pick_partition(topic: &Topic, key: Option<&[u8]>) -> u32 {
    match key {
        Some(key) => partition_for_key(key, topic.partition_count().max(1)),
        None => topic.round_robin_partition(),
    }
}
