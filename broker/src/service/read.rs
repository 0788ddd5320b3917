//! Fetch (with long-polling), Subscribe and ListOffsets. Fetch and Subscribe check the request's leader epoch, when
//! it names one, as Kafka's Fetch does (KIP-320, `Node::check_leader_at`).
//!
//! A READ_COMMITTED reader (`Isolation`, Kafka's `read_committed`) reads below the last stable offset, and the
//! batches of aborted transactions are left out of what it gets (`partition::without_aborted`); its `next_offset`
//! moves past them all the same.
//!
//! Waiting is event-driven: a waiter takes the partition's high-watermark receiver *before* it reads, so an
//! append that lands between the read and the wait still wakes it. Nothing sleeps in a loop.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::v1;
use rill_storage::{Log, ReadResult, StorageError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use crate::codec::{decode_records, next_offset_after};
use crate::error::{BrokerError, Result};
use crate::node::Node;
use crate::offset_lookup::{LeaderWindow, OffsetQuery};
use crate::partition::{whole_batches_below, without_aborted, Partition};
use crate::registry::blocking;
use crate::request_trace;

/// Subscribe's `offset` meaning "from the high watermark at subscribe time".
const SUBSCRIBE_FROM_LATEST: i64 = -1;
/// Subscribe's `offset` meaning "from the log start offset".
const SUBSCRIBE_FROM_EARLIEST: i64 = -2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Raw,
    Structured,
}

fn format(value: i32) -> Result<Format> {
    match v1::RecordFormat::try_from(value) {
        Ok(v1::RecordFormat::Unspecified | v1::RecordFormat::Raw) => Ok(Format::Raw),
        Ok(v1::RecordFormat::Structured) => Ok(Format::Structured),
        Err(_) => Err(BrokerError::invalid("format", format!("unknown record format {value}"))),
    }
}

/// Whether a request's `isolation` is READ_COMMITTED.
fn is_read_committed(value: i32) -> Result<bool> {
    match v1::Isolation::try_from(value) {
        Ok(v1::Isolation::Unspecified | v1::Isolation::ReadUncommitted) => Ok(false),
        Ok(v1::Isolation::ReadCommitted) => Ok(true),
        Err(_) => Err(BrokerError::invalid(
            "isolation",
            format!("unknown isolation {value}: 0 or 1 (read uncommitted) or 2 (read committed)"),
        )),
    }
}

/// What a reader gets of one read: for READ_COMMITTED, the batches below the last stable offset less those of
/// aborted transactions; and where its next read starts (past any batch left out).
struct Visible {
    read: ReadResult,
    next_offset: i64,
    last_stable_offset: i64,
}

fn visible(mut read: ReadResult, from_offset: i64, log: &Log, is_read_committed: bool) -> Visible {
    // After the read: what it returned below this is settled, and the aborted transactions loaded after it
    // include every abort the last stable offset moved past.
    let last_stable_offset = log.last_stable_offset().min(read.high_watermark);
    if is_read_committed {
        read.batches = whole_batches_below(read.batches, Some(last_stable_offset));
    }
    let next_offset = next_offset_after(&read.batches).unwrap_or(from_offset);
    if is_read_committed && next_offset > from_offset {
        let aborted = log.aborted_transactions(from_offset, next_offset);
        read.batches = without_aborted(read.batches, &aborted);
    }
    Visible { read, next_offset, last_stable_offset }
}

/// What a fetch or a subscribe push returns for one read.
struct Chunk {
    record_batches: Bytes,
    records: Vec<v1::FetchedRecord>,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    last_stable_offset: i64,
}

impl Chunk {
    fn is_empty(&self) -> bool {
        self.record_batches.is_empty() && self.records.is_empty()
    }
}

fn chunk(visible: Visible, from_offset: i64, format: Format) -> Result<Chunk> {
    let Visible { read, next_offset, last_stable_offset } = visible;
    let (record_batches, records) = match format {
        Format::Raw => (read.batches, Vec::new()),
        Format::Structured => (Bytes::new(), decode_records(&read.batches, from_offset)?),
    };
    Ok(Chunk {
        record_batches,
        records,
        next_offset,
        high_watermark: read.high_watermark,
        log_start_offset: read.log_start_offset,
        last_stable_offset,
    })
}

/// Fetches under a `fetch` span (`request_trace`).
pub async fn fetch(node: &Node, request: v1::FetchRequest) -> Result<v1::FetchResponse> {
    let span = request_trace::fetch_span(&request.topic, request.partition, request.offset);
    let fetched = fetch_in(node, request).instrument(span.clone()).await;
    if let Ok(response) = &fetched {
        span.record("next_offset", response.next_offset);
        span.record("bytes", response.record_batches.len() as i64);
    }
    request_trace::record_outcome(&span, &fetched);
    fetched
}

async fn fetch_in(node: &Node, request: v1::FetchRequest) -> Result<v1::FetchResponse> {
    node.check_leader_at(&request.topic, request.partition, request.current_leader_epoch.map(i64::from))?;
    let partition = node.registry.partition(&request.topic, request.partition)?;
    let format = format(request.format)?;
    let is_read_committed = is_read_committed(request.isolation)?;
    let max_bytes = node.fetch_bytes(request.max_bytes);
    let min_bytes = (request.min_bytes as usize).min(max_bytes);
    let wait_ms = u64::from(request.max_wait_ms).min(node.config.max_fetch_wait_ms);
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut high_watermark = partition.watch_high_watermark();
    let mut shutdown = node.shutdown.clone();
    let read = loop {
        high_watermark.borrow_and_update();
        let read = partition.read(request.offset, max_bytes).await?;
        let read = visible(read, request.offset, partition.log(), is_read_committed);
        let done = read.read.batches.len() >= min_bytes
            || Instant::now() >= deadline
            || partition.is_closed()
            || node.is_shutting_down();
        if done {
            break read;
        }
        tokio::select! {
            _ = high_watermark.changed() => {}
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    rill_protocol::hops::mark_batches(&read.read.batches, rill_protocol::hops::Hop::FetchRead);
    let chunk = chunk(read, request.offset, format)?;
    tracing::debug!(
        topic = %request.topic,
        partition = request.partition,
        offset = request.offset,
        bytes = chunk.record_batches.len(),
        next_offset = chunk.next_offset,
        "fetched"
    );
    Ok(v1::FetchResponse {
        record_batches: chunk.record_batches,
        records: chunk.records,
        next_offset: chunk.next_offset,
        high_watermark: chunk.high_watermark,
        log_start_offset: chunk.log_start_offset,
        last_stable_offset: chunk.last_stable_offset,
    })
}

pub async fn subscribe(
    node: &Arc<Node>,
    request: v1::SubscribeRequest,
) -> Result<ReceiverStream<Result<v1::SubscribeResponse, Status>>> {
    let led_epoch =
        node.check_leader_at(&request.topic, request.partition, request.current_leader_epoch.map(i64::from))?;
    let partition = node.registry.partition(&request.topic, request.partition)?;
    let format = format(request.format)?;
    let is_read_committed = is_read_committed(request.isolation)?;
    let max_bytes = node.fetch_bytes(request.max_bytes);
    let offset = match request.offset {
        SUBSCRIBE_FROM_LATEST if is_read_committed => partition.log().last_stable_offset(),
        SUBSCRIBE_FROM_LATEST => partition.log().high_watermark(),
        SUBSCRIBE_FROM_EARLIEST => partition.log().log_start_offset(),
        offset if offset < 0 => {
            return Err(BrokerError::invalid(
                "offset",
                format!("{offset} is neither an offset nor -1 (latest) or -2 (earliest)"),
            ))
        }
        offset => offset,
    };
    // Check the start offset now, so a bad one fails the call itself rather than the stream's first message. As
    // for a fetch, the bound is the log end: past the high watermark the stream waits for it.
    let (log_start_offset, log_end_offset) = (partition.log().log_start_offset(), partition.log().log_end_offset());
    if offset < log_start_offset || offset > log_end_offset {
        return Err(StorageError::OffsetOutOfRange { offset, log_start_offset, log_end_offset }.into());
    }
    tracing::debug!(topic = %request.topic, partition = request.partition, offset, "subscription started");
    let (tx, rx) = mpsc::channel(node.config.subscribe_queue_batches);
    let subscription =
        Subscription { topic: request.topic, led_epoch: i64::from(led_epoch), max_bytes, format, is_read_committed };
    tokio::spawn(follow(Arc::clone(node), partition, subscription, offset, tx));
    Ok(ReceiverStream::new(rx))
}

/// What one subscriber asked for, and where it started.
struct Subscription {
    topic: String,
    /// The leader epoch this node led the partition at when the subscription started.
    led_epoch: i64,
    max_bytes: usize,
    format: Format,
    is_read_committed: bool,
}

/// Pushes batches to one subscriber until it goes away, the partition closes, this node stops leading the
/// partition at the epoch the subscription started in, or the broker shuts down. The channel is bounded: when
/// the subscriber is slow, `send` waits, so the broker holds at most `subscribe_queue_batches` responses for it
/// and HTTP/2 flow control holds the rest back on the client side.
///
/// Leadership is checked before each read, as each fetch checks it: a deposed leader keeps the partition as a
/// follower, whose high watermark trails the new leader's, and a subscriber left on it would silently fall
/// behind (or, at a later epoch of this node's, read a log truncated under it). It gets `not-leader` or
/// `fenced-leader-epoch` instead, typed, and subscribes at the leader.
async fn follow(
    node: Arc<Node>,
    partition: Arc<Partition>,
    subscription: Subscription,
    mut offset: i64,
    tx: mpsc::Sender<Result<v1::SubscribeResponse, Status>>,
) {
    let Subscription { topic, led_epoch, max_bytes, format, is_read_committed } = subscription;
    let mut high_watermark = partition.watch_high_watermark();
    let mut shutdown = node.shutdown.clone();
    loop {
        if node.is_shutting_down() {
            let _ = tx.send(Err(BrokerError::ShuttingDown.into())).await;
            return;
        }
        if partition.is_closed() {
            let _ = tx.send(Err(partition.closed().into())).await;
            return;
        }
        if let Err(moved) = node.check_leader_at(&topic, partition.index, Some(led_epoch)) {
            let _ = tx.send(Err(moved.into())).await;
            return;
        }
        high_watermark.borrow_and_update();
        let read = partition.read(offset, max_bytes).await.inspect(|read| {
            rill_protocol::hops::mark_batches(&read.batches, rill_protocol::hops::Hop::FetchRead);
        });
        let read = read.map(|read| visible(read, offset, partition.log(), is_read_committed));
        let pushed = match read.and_then(|read| chunk(read, offset, format)) {
            // Only aborted batches: nothing to push, and the next read starts past them.
            Ok(chunk) if chunk.next_offset > offset && chunk.is_empty() => {
                offset = chunk.next_offset;
                continue;
            }
            Ok(chunk) if chunk.next_offset > offset => chunk,
            Ok(_) => {
                tokio::select! {
                    _ = high_watermark.changed() => {}
                    _ = shutdown.changed() => {}
                    _ = tx.closed() => return,
                }
                continue;
            }
            Err(err) => {
                let _ = tx.send(Err(err.into())).await;
                return;
            }
        };
        offset = pushed.next_offset;
        let message = v1::SubscribeResponse {
            record_batches: pushed.record_batches,
            records: pushed.records,
            next_offset: pushed.next_offset,
            high_watermark: pushed.high_watermark,
            log_start_offset: pushed.log_start_offset,
            last_stable_offset: pushed.last_stable_offset,
        };
        if tx.send(Ok(message)).await.is_err() {
            return;
        }
    }
}

/// Only a partition's leader answers, as with Kafka's ListOffsets: a follower's high watermark trails the
/// leader's, so its "latest" would be an offset the leader would not give, and a client that moved on to the
/// leader could see "latest" go backwards. A request naming a partition this node does not lead is refused whole
/// with `not-leader` (the client sends each leader the partitions it leads, `client/src/admin.rs`). What the
/// leader answers is `offset_lookup.rs`'s rule, Kafka's too: a new leader still learning its high watermark
/// refuses with `offset-not-available` (retried), and a timestamp with no record below the high watermark is
/// answered with the high watermark (where a consumer of "from then on" starts).
pub async fn list_offsets(node: &Node, request: v1::ListOffsetsRequest) -> Result<v1::ListOffsetsResponse> {
    let query = match v1::OffsetSpec::try_from(request.spec) {
        Ok(v1::OffsetSpec::Unspecified | v1::OffsetSpec::Earliest) => OffsetQuery::Earliest,
        Ok(v1::OffsetSpec::Latest) => OffsetQuery::Latest,
        Ok(v1::OffsetSpec::Timestamp) => OffsetQuery::Timestamp(request.timestamp_ms),
        Ok(v1::OffsetSpec::MaxTimestamp) => OffsetQuery::LargestTimestamp,
        Err(_) => return Err(BrokerError::invalid("spec", format!("unknown offset spec {}", request.spec))),
    };
    let indexes: Vec<u32> = if request.partitions.is_empty() {
        (0..node.registry.topic(&request.topic)?.partition_count()).collect()
    } else {
        request.partitions
    };
    let mut offsets = Vec::with_capacity(indexes.len());
    for index in indexes {
        // Leadership first, as Fetch does: on a cluster a partition just added (or a topic this node only now
        // takes a replica of) is in the metadata before its log is open here, and that is `not-leader`, which
        // clients retry, rather than an unknown partition, which they give up on.
        node.check_leader(&request.topic, index)?;
        let partition = node.registry.partition(&request.topic, index)?;
        let log = Arc::clone(partition.log());
        let window = LeaderWindow::of(&log);
        let found_at_timestamp = match query {
            OffsetQuery::Timestamp(timestamp_ms) => {
                blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?)).await?
            }
            OffsetQuery::LargestTimestamp => {
                blocking(move || Ok(log.largest_timestamp()?.map(|largest| largest.offset))).await?
            }
            OffsetQuery::Earliest | OffsetQuery::Latest => None,
        };
        let offset = window
            .answer(query, found_at_timestamp)
            .map_err(|lagging| BrokerError::OffsetNotAvailable {
                topic: request.topic.clone(),
                partition: index,
                high_watermark: lagging.high_watermark,
                epoch_start: lagging.epoch_start,
            })?
            .unwrap_or(window.high_watermark);
        offsets.push(v1::PartitionOffset {
            partition: index,
            offset,
            log_start_offset: window.log_start_offset,
            high_watermark: window.high_watermark,
        });
    }
    Ok(v1::ListOffsetsResponse { offsets })
}
