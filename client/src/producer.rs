//! The producer: `send` enqueues a record into its partition's batch; one sender task per partition ships
//! sealed batches to the broker, in order, retrying transient failures.
//!
//! The path of a record (see also ARCHITECTURE.md, "Client"):
//! 1. [`Producer::send`] reserves the record's bytes from the buffer budget (`max_buffered_bytes`), waiting
//!    there when the budget is spent: that wait is the back-pressure.
//! 2. It looks up the topic's partition count (cached from DescribeTopic), picks the partition and encodes the
//!    record into the partition's open batch, under the producer's lock, which is never held across `.await`.
//! 3. Sealed batches and linger timers go, in order, to the partition's sender task over its channel.
//! 4. The sender compresses the batch (outside the lock), sends it as `record_batch` bytes with up to
//!    `max_in_flight_per_partition` produce calls at once, and answers the batch's shared acknowledgement,
//!    which resolves the [`DeliveryFuture`] of each of its records and gives the reserved bytes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, Semaphore, TryAcquireError};

use crate::accumulator::{Appended, BatchAck, SealedBatch, TopicBatches};
use crate::admin::{describe_topic, init_producer_id};
use crate::compression::Compression;
use crate::connection::Client;
use crate::delivery::{BatchDelivery, DeliveryFuture};
use crate::error::{Error, Result};
use crate::record::ProducerRecord;
use crate::sender::{
    backoff_after, retry_backoff, run_partition_sender, waits_on_the_cluster, Command, SealLingered, SenderContext,
};

/// When the broker answers a produce call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// As soon as the batch is validated and queued: fastest, offsets unknown (-1), an append failure is lost.
    None,
    /// Once the batch is in the partition's log (durable per the topic's policy).
    #[default]
    Leader,
    /// Once the batch is fsynced.
    Durable,
    /// Once every in-sync replica of the partition holds the batch (a cluster's `ACKS_ALL`; on a single node
    /// or with one replica, as `Leader`).
    All,
}

impl Acks {
    pub(crate) fn to_proto(self) -> rill_protocol::v1::Acks {
        match self {
            Acks::None => rill_protocol::v1::Acks::None,
            Acks::Leader => rill_protocol::v1::Acks::Leader,
            Acks::Durable => rill_protocol::v1::Acks::Durable,
            Acks::All => rill_protocol::v1::Acks::All,
        }
    }
}

/// Producer settings. Every queue and wait is bounded by one of these.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// A partition's batch is sent once it holds this many encoded bytes (uncompressed).
    pub batch_bytes: usize,
    /// Longest time a record waits in a batch that is not full. Zero sends each batch as soon as its partition's
    /// sender is free, with whatever accumulated meanwhile.
    pub linger: Duration,
    pub acks: Acks,
    pub compression: Compression,
    /// Bytes of records enqueued but not yet acknowledged. `send` waits while this is spent.
    pub max_buffered_bytes: usize,
    /// Retries of a batch after a transient failure (broker unavailable, timeout, disk full); 0 = never retry.
    /// The default is unlimited: `delivery_timeout` bounds them in time.
    pub retries: u32,
    /// Wait before the first retry; doubled per retry up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    /// 250 ms by default, below Kafka's 1 s: while a partition fails over, a retry that just misses the new leader
    /// waits at most this for the next (docs/cluster.md, failover times).
    pub retry_backoff_max: Duration,
    /// Longest wait for the answer to one produce call.
    pub request_timeout: Duration,
    /// Longest time from a batch's first record to its acknowledgement, retries included (Kafka's
    /// `delivery.timeout.ms`, also 120 s by default). A batch not acknowledged by then fails with the last
    /// error it saw, and every later batch of its partition fails behind it (see `sender.rs`): a producer
    /// whose broker is gone learns it within this, not after every queued batch has used up its retries.
    pub delivery_timeout: Duration,
    /// Most batch bytes one produce call carries. Batches that wait while their partition's calls are in flight
    /// go together in the next call, up to this, and the broker writes them to disk at once; a batch bigger than
    /// this goes alone. At most the broker's `max_request_bytes`.
    pub max_request_bytes: usize,
    /// Produce calls in flight at once per partition. 1 keeps the partition's records in the order sent even
    /// across retries. More pipelines batches: an idempotent producer (at most [`MAX_IDEMPOTENT_IN_FLIGHT`])
    /// still keeps that order, since the broker refuses a batch whose sequence does not follow and the sender
    /// sends it again behind the retried one; without idempotence a retried batch may land after the ones sent
    /// after it.
    pub max_in_flight_per_partition: usize,
    /// How long a topic's partition count is trusted before it is described again.
    pub metadata_max_age: Duration,
    /// Idempotent producer (the default, as in Kafka's clients): the producer asks the broker for a producer id
    /// before its first batch and stamps it, its epoch and per-partition sequences in every batch, so a batch
    /// resent after a lost answer is recognised by the broker and answered with its original offsets instead of
    /// being stored twice. Allows `max_in_flight_per_partition` up to [`MAX_IDEMPOTENT_IN_FLIGHT`]. Off, a retry
    /// after a lost answer may store a batch twice (at-least-once).
    pub enable_idempotence: bool,
    /// Asks the broker to create a topic the producer sends to that does not exist, with the broker's defaults
    /// (on by default, as a Kafka producer's Metadata requests allow it); a broker that does not create topics
    /// automatically (its default) answers an unknown topic either way.
    pub auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            acks: Acks::Leader,
            compression: Compression::None,
            max_buffered_bytes: 64 << 20,
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(250),
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            max_request_bytes: 1 << 20,
            max_in_flight_per_partition: 1,
            metadata_max_age: Duration::from_secs(300),
            enable_idempotence: true,
            auto_create_topics: true,
        }
    }
}

/// Most produce calls an idempotent producer keeps in flight per partition: the broker keeps the last 5
/// batches of each producer to recognise a retry (`rill_storage::producer_state::BATCHES_KEPT`, Kafka's 5).
pub const MAX_IDEMPOTENT_IN_FLIGHT: usize = 5;

/// Sends records to topics in batches. Cheap to clone; clones share batches, buffer and sender tasks.
///
/// Dropping the last clone seals every open batch and lets the sender tasks finish sending them; call
/// [`Producer::flush`] first to wait for that.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

pub(crate) struct ProducerInner {
    client: Client,
    metrics: Arc<Metrics>,
    config: Arc<ProducerConfig>,
    topics: Arc<Mutex<Topics>>,
    /// The buffer budget, one permit per byte. Fair (FIFO), so a waiting large record is not starved.
    buffer: Arc<Semaphore>,
    /// An idempotent producer's id and epoch, asked for before its first record is placed.
    identity: tokio::sync::OnceCell<(i64, i16)>,
}

/// Every `send` looks its topic up here, so the hash is foldhash rather than SipHash: topic names come from the
/// application, not from an adversary. SipHash of the name was 3.4% of a 100-byte-record produce profile, and a
/// byte-at-a-time FNV-1a of a 45-byte name still cost more than the record's encoding; foldhash takes 8 bytes
/// at a time.
type Topics = HashMap<String, TopicEntry, foldhash::fast::RandomState>;

pub(crate) struct TopicEntry {
    pub batches: TopicBatches,
    senders: Vec<Option<mpsc::UnboundedSender<Command>>>,
    /// When the partition count was last described, ms since the Unix epoch.
    described_at_ms: i64,
    /// The batches an append just sealed, on their way to their senders; kept to reuse its allocation.
    sealed: Vec<SealedBatch>,
}

impl Producer {
    pub fn new(client: Client, config: ProducerConfig) -> Result<Self> {
        check_config(&client, &config)?;
        Ok(Self {
            inner: Arc::new(ProducerInner {
                metrics: Arc::default(),
                buffer: Arc::new(Semaphore::new(config.max_buffered_bytes)),
                client,
                config: Arc::new(config),
                topics: Arc::new(Mutex::new(Topics::default())),
                identity: tokio::sync::OnceCell::new(),
            }),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Enqueues `record` for `topic` and returns once it is in a batch, with a future that resolves when the
    /// broker has acknowledged the batch. Waits first while `max_buffered_bytes` are in use (back-pressure).
    ///
    /// Records sent one after the other to one partition are stored in that order (with the default
    /// `max_in_flight_per_partition` of 1). Awaiting each `DeliveryFuture` before the next `send` costs a round
    /// trip and a linger per record: keep them (or drop them) and `flush` instead.
    pub async fn send(&self, topic: &str, record: ProducerRecord) -> Result<DeliveryFuture> {
        let reserved = record.buffered_bytes();
        self.check_record_size(reserved)?;
        // Returned if the record is not enqueued, whether `enqueue` fails or this future is dropped mid-way.
        self.ensure_identity().await?;
        let reservation = self.reserve(reserved).await?;
        let delivery = self.enqueue(topic, &record, reserved).await?;
        std::mem::forget(reservation);
        Ok(delivery)
    }

    /// Sends `records` to `topic` in one call, as Apache Iggy's and Pulsar's clients can: one buffer
    /// reservation, one clock read, one lock and one topic lookup for all of them instead of one each, which is
    /// most of `send`'s cost for small records. Each record still picks its partition as in [`Self::send`]
    /// (explicit, by key, or sticky) and lands in that partition's open batch; nothing is sealed early.
    ///
    /// The records are encoded (copied) into their batches before this returns, so the caller can reuse the
    /// slice at once. The returned [`BatchDelivery`] resolves when every record is acknowledged, with the
    /// offsets of each run of consecutive records that went to one batch. A slice larger than
    /// `max_buffered_bytes` is enqueued in parts, each waiting for room as `send` does.
    ///
    /// Errors are `send`'s: a record too large, an unknown explicit partition, a closed producer. Sizes are
    /// checked for the whole slice and partitions for each part before any of it is enqueued, so for a slice
    /// within `max_buffered_bytes` an error means none of its records were sent.
    pub async fn send_batch(&self, topic: &str, records: &[ProducerRecord]) -> Result<BatchDelivery> {
        for record in records {
            self.check_record_size(record.buffered_bytes())?;
        }
        self.ensure_identity().await?;
        let mut delivery = BatchDelivery::default();
        let limit = self.inner.config.max_buffered_bytes;
        let mut first = 0;
        while first < records.len() {
            // The longest run of records from `first` whose bytes the buffer can ever hold at once.
            let mut reserved = 0;
            let mut end = first;
            while let Some(record) = records.get(end) {
                let size = record.buffered_bytes();
                if end > first && reserved + size > limit {
                    break;
                }
                reserved += size;
                end += 1;
            }
            let reservation = self.reserve(reserved).await?;
            let part = &records[first..end];
            let now = now_ms();
            self.with_fresh_entry(topic, now, |entry| {
                entry.append_all(topic, part, first, now, &self.inner, &mut delivery)
            })
            .await??;
            std::mem::forget(reservation);
            first = end;
        }
        Ok(delivery)
    }

    /// An idempotent producer's id and epoch: asked for once (InitProducerId, retried like a produce call), before
    /// any batch is opened, so that every batch it seals is stamped. `None` with idempotence off.
    async fn ensure_identity(&self) -> Result<Option<(i64, i16)>> {
        let (client, config) = (&self.inner.client, &self.inner.config);
        if !config.enable_idempotence {
            return Ok(None);
        }
        let identity = self
            .inner
            .identity
            .get_or_try_init(|| async {
                // Bounded as a batch's delivery is: the records waiting for this id would time out by then.
                let deadline = tokio::time::Instant::now() + config.delivery_timeout;
                let mut attempt = 0;
                loop {
                    let err = match init_producer_id(client, client.config().request_timeout).await {
                        Ok(identity) => return Ok(identity),
                        Err(err) => err,
                    };
                    // An id comes from the controller: while its quorum elects a leader, the shortest backoff.
                    let backoff = backoff_after(config, attempt, waits_on_the_cluster(&err, &[]));
                    if !err.is_retriable()
                        || attempt >= config.retries
                        || tokio::time::Instant::now() + backoff >= deadline
                    {
                        return Err(err);
                    }
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
            })
            .await?;
        Ok(Some(*identity))
    }

    /// Takes `bytes` (at most `max_buffered_bytes`, checked by the caller) from the buffer budget, waiting for
    /// room; the reservation gives them back when dropped, unless the caller forgets it once the records are
    /// enqueued (their batch gives the bytes back when answered).
    async fn reserve(&self, bytes: usize) -> Result<Reservation<'_>> {
        let permits = u32::try_from(bytes).expect("at most max_buffered_bytes, which fits a u32");
        match self.inner.buffer.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err(Error::ProducerClosed),
            Err(TryAcquireError::NoPermits) => {
                // The buffer is full of records waiting in batches or in flight: cut the lingers short so
                // those batches go as soon as their senders have room, then wait for their bytes.
                self.expire_lingers();
                self.inner.buffer.acquire_many(permits).await.map_err(|_| Error::ProducerClosed)?.forget();
            }
        }
        Ok(Reservation { buffer: &self.inner.buffer, bytes })
    }

    /// Seals every open batch now and waits until every record sent before this call is answered (acknowledged
    /// or failed: failures are reported by the records' delivery futures).
    pub async fn flush(&self) {
        let waits: Vec<oneshot::Receiver<()>> = {
            let mut topics = lock(&self.inner.topics);
            let mut waits = Vec::new();
            for (name, entry) in topics.iter_mut() {
                let open: Vec<u32> = entry.batches.open_partitions().collect();
                for partition in open {
                    if let Some(batch) = entry.batches.seal(partition, None) {
                        entry.dispatch(name, partition, Command::Send(batch), &self.inner);
                    }
                }
                for partition in 0..entry.senders.len() as u32 {
                    let (tx, rx) = oneshot::channel();
                    if entry.send_existing(partition, Command::Flush(tx)) {
                        waits.push(rx);
                    }
                }
            }
            waits
        };
        for wait in waits {
            // An error means the sender task ended, which it does only after answering everything it held.
            let _ = wait.await;
        }
    }

    fn expire_lingers(&self) {
        let mut topics = lock(&self.inner.topics);
        let deadline = tokio::time::Instant::now();
        for (name, entry) in topics.iter_mut() {
            for (partition, id) in entry.batches.expire_lingers() {
                entry.dispatch(name, partition, Command::Linger { id, deadline }, &self.inner);
            }
        }
    }

    /// Counters of what the sender tasks did so far.
    pub fn metrics(&self) -> ProducerMetrics {
        self.inner.metrics.snapshot()
    }

    /// Bytes of records enqueued and not yet answered.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.config.max_buffered_bytes - self.inner.buffer.available_permits()
    }

    fn check_record_size(&self, size: usize) -> Result<()> {
        let config = &self.inner.config;
        if size > config.max_buffered_bytes {
            return Err(Error::RecordTooLarge {
                size,
                limit: config.max_buffered_bytes,
                setting: "max_buffered_bytes",
            });
        }
        let limit = max_batch_bytes(self.inner.client.config().max_message_bytes);
        if size > limit {
            return Err(Error::RecordTooLarge { size, limit, setting: "max_message_bytes" });
        }
        Ok(())
    }

    async fn enqueue(&self, topic: &str, record: &ProducerRecord, reserved: usize) -> Result<DeliveryFuture> {
        // One clock read per record: it stamps the record and ages the metadata (a wall-clock jump only makes
        // a refresh come early or late).
        let now = now_ms();
        let timestamp_ms = record.timestamp_ms.unwrap_or(now);
        self.with_fresh_entry(topic, now, |entry| entry.append(topic, record, timestamp_ms, reserved, &self.inner))
            .await?
    }

    /// Runs `f` on `topic`'s entry under the producer's lock, once its partition count is known and no older
    /// than `metadata_max_age` at `now` (ms), asking the broker first if it is not.
    async fn with_fresh_entry<T>(&self, topic: &str, now: i64, mut f: impl FnMut(&mut TopicEntry) -> T) -> Result<T> {
        let max_age_ms = i64::try_from(self.inner.config.metadata_max_age.as_millis()).unwrap_or(i64::MAX);
        let mut is_refreshed = false;
        loop {
            {
                let mut topics = lock(&self.inner.topics);
                if let Some(entry) = topics.get_mut(topic) {
                    if is_refreshed || now.saturating_sub(entry.described_at_ms) < max_age_ms {
                        return Ok(f(entry));
                    }
                }
            }
            self.refresh_metadata(topic).await?;
            is_refreshed = true;
        }
    }

    /// Describes `topic` (without the lock: concurrent first sends may describe twice, which is harmless) and
    /// records its partition count. Transient failures are retried like produce calls; if they persist and a
    /// stale partition count is cached, that one is used rather than failing the send.
    async fn refresh_metadata(&self, topic: &str) -> Result<()> {
        let (client, config) = (&self.inner.client, &self.inner.config);
        let mut attempt = 0;
        let description = loop {
            match describe_topic(client, topic, config.auto_create_topics, client.config().request_timeout).await {
                Ok(description) => break description,
                Err(err) if err.is_retriable() && attempt < config.retries => {
                    tokio::time::sleep(retry_backoff(config, attempt)).await;
                    attempt += 1;
                }
                Err(err) if err.is_retriable() && lock(&self.inner.topics).contains_key(topic) => {
                    tracing::warn!(%topic, error = %err, "cannot refresh the partition count; using the cached one");
                    return Ok(());
                }
                Err(err) => return Err(err),
            }
        };
        let partition_count = description.partition_count.max(1);
        let batch_bytes = topic_batch_bytes(config.batch_bytes, &description);
        let mut topics = lock(&self.inner.topics);
        let entry = topics.entry(topic.to_owned()).or_insert_with(|| TopicEntry {
            batches: TopicBatches::new(partition_count, batch_bytes),
            senders: Vec::new(),
            described_at_ms: now_ms(),
            sealed: Vec::new(),
        });
        if let Some(&(producer_id, epoch)) = self.inner.identity.get() {
            entry.batches.set_producer(producer_id, epoch);
        }
        entry.batches.grow(partition_count);
        entry.batches.set_batch_bytes(batch_bytes);
        entry.described_at_ms = now_ms();
        Ok(())
    }
}

impl TopicEntry {
    /// Places the record in its partition's batch and dispatches what that sealed or opened.
    fn append(
        &mut self,
        topic: &str,
        record: &ProducerRecord,
        timestamp_ms: i64,
        reserved: usize,
        inner: &ProducerInner,
    ) -> Result<DeliveryFuture> {
        let appended = self.batches.place(topic, record, timestamp_ms, reserved, None, &mut self.sealed)?;
        let partition = appended.partition;
        let index = appended.index;
        let ack = self.dispatch_appended(topic, appended, inner).expect("no batch was held, so the ack is given");
        Ok(DeliveryFuture::new(ack, index, partition, timestamp_ms))
    }

    /// Appends `records` (the slice of a `send_batch` starting at `first`) in order, adding each run of
    /// consecutive records that share a batch to `delivery`. Explicit partitions are checked first, so an
    /// unknown one enqueues nothing.
    fn append_all(
        &mut self,
        topic: &str,
        records: &[ProducerRecord],
        first: usize,
        now_ms: i64,
        inner: &ProducerInner,
        delivery: &mut BatchDelivery,
    ) -> Result<()> {
        let partition_count = self.batches.partition_count();
        if let Some(partition) = records.iter().filter_map(|r| r.partition).find(|p| *p >= partition_count) {
            return Err(Error::UnknownPartition { topic: topic.to_owned(), partition });
        }
        let mut i = 0;
        while let Some(record) = records.get(i) {
            // Most of a keyless call goes in runs into the sticky partition's open batch; `place` takes each
            // record a run stops at (the one that seals a batch, opens one, or has a key).
            if let Some(run) = self.batches.append_sticky_run(&records[i..], now_ms, delivery.open_run()) {
                delivery.add(first + i, run.partition, run.batch_id, run.first_index, run.count, run.ack);
                i += run.count;
                continue;
            }
            let held = delivery.open_run();
            let timestamp_ms = record.timestamp_ms.unwrap_or(now_ms);
            let appended =
                self.batches.place(topic, record, timestamp_ms, record.buffered_bytes(), held, &mut self.sealed)?;
            let (partition, batch_id, index) = (appended.partition, appended.batch_id, appended.index);
            let ack = self.dispatch_appended(topic, appended, inner);
            delivery.add(first + i, partition, batch_id, index, 1, ack);
            i += 1;
        }
        Ok(())
    }

    /// Hands their senders the batches a record sealed, then arms the linger of the batch it opened; returns the
    /// record's acknowledgement.
    ///
    /// In that order: a sender seals a lingered batch itself (`SealLingered`) and queues it at once, so a linger
    /// that reached it before the batch sealed ahead of the lingering one would let the younger batch go first.
    /// An idempotent producer's broker then sees a gap in the sequences and refuses the batch for good.
    fn dispatch_appended(&mut self, topic: &str, appended: Appended, inner: &ProducerInner) -> Option<BatchAck> {
        if !self.sealed.is_empty() {
            let mut sealed = std::mem::take(&mut self.sealed);
            for batch in sealed.drain(..) {
                self.dispatch(topic, batch.partition, Command::Send(batch), inner);
            }
            self.sealed = sealed;
        }
        if let Some(id) = appended.opened {
            let deadline = tokio::time::Instant::now() + inner.config.linger;
            self.dispatch(topic, appended.partition, Command::Linger { id, deadline }, inner);
        }
        appended.ack
    }

    /// Hands `command` to the partition's sender task, starting the task on first use. Called under the
    /// producer's lock, so commands of one partition reach its task in the order batches were sealed.
    fn dispatch(&mut self, topic: &str, partition: u32, command: Command, inner: &ProducerInner) {
        let slot = partition as usize;
        if self.senders.len() <= slot {
            self.senders.resize_with(slot + 1, || None);
        }
        let sender = self.senders[slot].get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            // Weak: a dropped producer is not kept alive by its own tasks.
            let topics = Arc::downgrade(&inner.topics);
            let name = topic.to_owned();
            let seal_lingered: SealLingered = Box::new(move |id| {
                let topics = topics.upgrade()?;
                let mut topics = lock(&topics);
                topics.get_mut(&name)?.batches.seal(partition, Some(id))
            });
            let context = SenderContext {
                client: inner.client.clone(),
                config: Arc::clone(&inner.config),
                seal_lingered,
                buffer: Arc::clone(&inner.buffer),
                metrics: Arc::clone(&inner.metrics),
                topic: Arc::from(topic),
                partition,
            };
            tokio::spawn(run_partition_sender(context, rx));
            tx
        });
        if let Err(mpsc::error::SendError(command)) = sender.send(command) {
            // The task is gone (a runtime shutting down): answer what the command carried so nobody waits.
            command.fail(Error::ProducerClosed, &inner.buffer);
        }
    }

    fn send_existing(&self, partition: u32, command: Command) -> bool {
        match self.senders.get(partition as usize) {
            Some(Some(sender)) => sender.send(command).is_ok(),
            _ => false,
        }
    }
}

impl Drop for ProducerInner {
    /// The last producer handle is gone: seal every open batch so the sender tasks send them. Dropping the
    /// senders afterwards ends each task once it has answered everything it holds.
    fn drop(&mut self) {
        let mut topics = lock(&self.topics);
        let names: Vec<String> = topics.keys().cloned().collect();
        for name in names {
            let Some(entry) = topics.get_mut(&name) else { continue };
            let open: Vec<u32> = entry.batches.open_partitions().collect();
            for partition in open {
                if let Some(batch) = entry.batches.seal(partition, None) {
                    if !entry.send_existing(partition, Command::Send(batch)) {
                        tracing::warn!(topic = %name, partition, "producer dropped with a batch it cannot send");
                    }
                }
            }
            entry.senders.clear();
        }
    }
}

/// What the producer's sender tasks have done since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerMetrics {
    /// Batches the broker acknowledged.
    pub batches_acknowledged: u64,
    /// Batches that failed for good (their records' delivery futures carry the error).
    pub batches_failed: u64,
    /// Produce calls sent again after a transient failure.
    pub retries: u64,
    /// Produce calls that carried batches (retries not counted). Fewer than the batches when batches that
    /// waited for their partition's in-flight call went together (see `ProducerConfig::max_request_bytes`).
    pub produce_calls: u64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub batches_acknowledged: AtomicU64,
    pub batches_failed: AtomicU64,
    pub retries: AtomicU64,
    pub produce_calls: AtomicU64,
}

impl Metrics {
    fn snapshot(&self) -> ProducerMetrics {
        ProducerMetrics {
            batches_acknowledged: self.batches_acknowledged.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            produce_calls: self.produce_calls.load(Ordering::Relaxed),
        }
    }
}

/// Buffer bytes taken for a record that is not enqueued yet; given back on drop.
struct Reservation<'a> {
    buffer: &'a Semaphore,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.buffer.add_permits(self.bytes);
    }
}

fn lock(topics: &Mutex<Topics>) -> MutexGuard<'_, Topics> {
    // A panic while holding the lock leaves plain data (batches being filled) that is still consistent enough
    // to send or drop; poisoning would only turn one bug into a cascade.
    topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The batch size to fill for `topic`: `batch_bytes`, or the topic's `max_batch_bytes` if that is smaller, so that
/// a batch of several records is never refused as too large (a single record over it still is, naming the limit).
fn topic_batch_bytes(batch_bytes: usize, topic: &rill_protocol::v1::TopicInfo) -> usize {
    let topic_limit = topic.config.as_ref().and_then(|c| c.max_batch_bytes).and_then(|b| usize::try_from(b).ok());
    topic_limit.map_or(batch_bytes, |limit| batch_bytes.min(limit))
}

/// The largest batch that fits a gRPC message of `max_message_bytes` with its framing.
fn max_batch_bytes(max_message_bytes: usize) -> usize {
    const PRODUCE_FRAMING_BYTES: usize = 4 << 10;
    max_message_bytes.saturating_sub(PRODUCE_FRAMING_BYTES)
}

fn check_config(client: &Client, config: &ProducerConfig) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidUse { message });
    if tokio::runtime::Handle::try_current().is_err() {
        return invalid("a Producer runs its sender tasks on Tokio: create it inside a Tokio runtime".into());
    }
    let max_batch = max_batch_bytes(client.config().max_message_bytes);
    if config.batch_bytes < 1024 || config.batch_bytes > max_batch {
        return invalid(format!(
            "batch_bytes {} must be in 1024..={max_batch} (max_message_bytes)",
            config.batch_bytes
        ));
    }
    if config.max_buffered_bytes < config.batch_bytes || config.max_buffered_bytes > u32::MAX as usize {
        return invalid(format!(
            "max_buffered_bytes {} must be at least batch_bytes ({}) and at most {}",
            config.max_buffered_bytes,
            config.batch_bytes,
            u32::MAX
        ));
    }
    if config.max_in_flight_per_partition == 0 {
        return invalid("max_in_flight_per_partition must be at least 1".into());
    }
    if config.enable_idempotence && config.max_in_flight_per_partition > MAX_IDEMPOTENT_IN_FLIGHT {
        return invalid(format!(
            "max_in_flight_per_partition {} must be at most {MAX_IDEMPOTENT_IN_FLIGHT} with enable_idempotence (as \
             in Kafka: the broker recognises a retried batch among its partition's last {MAX_IDEMPOTENT_IN_FLIGHT})",
            config.max_in_flight_per_partition
        ));
    }
    if config.delivery_timeout.is_zero() || config.delivery_timeout < config.linger {
        return invalid(format!(
            "delivery_timeout {:?} must be more than zero and at least linger ({:?}): a batch would time out \
             before it is sent",
            config.delivery_timeout, config.linger
        ));
    }
    if let Err(message) = config.compression.check() {
        return invalid(message);
    }
    if config.max_request_bytes == 0 {
        return invalid("max_request_bytes must be at least 1 (a batch bigger than it still goes alone)".into());
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
