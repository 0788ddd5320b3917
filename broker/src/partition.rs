//! One partition as the broker serves it: its [`Log`], the writer task that owns its appends, and the
//! high-watermark channel that wakes long-polling fetches and subscribers.
//!
//! Appends go through a bounded queue to one writer task per partition. The writer takes every batch waiting
//! (up to a limit) and appends them in one blocking call off the async threads (on its own thread when they are
//! small and need no fsync: one short write costs less than the hop), then publishes the new high watermark once. So producers never fight over a lock, a full queue pushes back on producers instead of
//! growing, and batches land in the order they were queued (a producer that waits for each answer keeps its
//! order). Reads go straight to the log (it is `Sync`), also off the async threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::hops::{self, Hop};
use rill_storage::{AppendInfo, Log, ReadResult, StorageError, TopicName};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{BrokerError, Result};
use crate::metrics::{PartitionTraffic, WriteMetrics};

mod durable_syncs;
pub(crate) use durable_syncs::DurableSyncs;

/// Most batches the writer appends in one blocking call: bounds the latency one call adds to the batches
/// queued behind it.
const MAX_BATCHES_PER_WRITE: usize = 64;

/// Most bytes a writer appends on its own async thread instead of the blocking pool, when no fsync follows. A
/// direct write of this much takes the kernel about as long as the hop to the pool and back (~30 µs here); a
/// larger one would hold up the other tasks of the thread.
const INLINE_APPEND_BYTES_MAX: usize = 64 << 10;

/// The batches of one produce call waiting for the writer, and where to send the outcome (`None` for acks NONE).
struct AppendJob {
    batches: Vec<Bytes>,
    reply: Option<oneshot::Sender<Result<AppendInfo, StorageError>>>,
    /// A transaction marker from the coordinator (one control batch), not a client's batches: it skips their rules.
    is_marker: bool,
}

/// One produce call's batches on the writer's queue, their place in the partition's order already taken.
pub struct QueuedAppend<'a> {
    partition: &'a Partition,
    outcome: oneshot::Receiver<Result<AppendInfo, StorageError>>,
}

impl QueuedAppend<'_> {
    /// Where the batches landed, once the writer has appended them.
    pub async fn appended(self) -> Result<AppendInfo> {
        Ok(self.outcome.await.map_err(|_| self.partition.closed())??)
    }
}

pub struct Partition {
    pub topic: TopicName,
    pub index: u32,
    log: Arc<Log>,
    /// The high watermark, republished after every append; receivers wake on change, and once more when the
    /// partition closes (check [`Partition::is_closed`] after waking).
    high_watermark: watch::Sender<i64>,
    is_closed: AtomicBool,
    /// `None` once the partition is closing: new appends are refused.
    queue: Mutex<Option<mpsc::Sender<AppendJob>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Bytes and records in and out; `None` when the node records no metrics (admin listener off).
    traffic: Option<PartitionTraffic>,
    /// The node's group-commit counts, shared by every writer; `None` as `traffic`.
    write_metrics: Option<Arc<WriteMetrics>>,
    /// The fsyncs durable acks wait for, when the writer does not fsync every append (`durable_syncs.rs`).
    durable_syncs: Arc<DurableSyncs>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

impl Partition {
    /// Wraps an opened log and starts its writer task on the current runtime. Its appends take one of
    /// `append_slots` (the broker's, shared by every partition) while they write.
    pub fn start(
        topic: TopicName,
        index: u32,
        log: Log,
        queue_batches: usize,
        append_slots: Arc<Semaphore>,
        write_metrics: Option<Arc<WriteMetrics>>,
    ) -> Arc<Partition> {
        let log = Arc::new(log);
        let (high_watermark, _) = watch::channel(log.high_watermark());
        let (tx, rx) = mpsc::channel(queue_batches);
        let partition = Arc::new(Partition {
            topic,
            index,
            log: Arc::clone(&log),
            high_watermark,
            is_closed: AtomicBool::new(false),
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            traffic: write_metrics.as_ref().map(|_| PartitionTraffic::default()),
            write_metrics,
            durable_syncs: DurableSyncs::new(log.durable_end_offset()),
        });
        let writer = tokio::spawn(run_writer(Arc::clone(&partition), rx, append_slots));
        *lock(&partition.writer) = Some(writer);
        partition
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Bytes and records in and out, when the node records metrics.
    pub fn traffic(&self) -> Option<&PartitionTraffic> {
        self.traffic.as_ref()
    }

    /// True once the partition's topic was deleted or the broker is shutting down: waiters should give up.
    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    pub(crate) fn closed(&self) -> BrokerError {
        BrokerError::PartitionClosed { topic: self.topic.to_string(), partition: self.index }
    }

    fn sender(&self) -> Result<mpsc::Sender<AppendJob>> {
        lock(&self.queue).clone().ok_or_else(|| self.closed())
    }

    /// Appends the batches of one produce call (already checked against the topic's limits) at consecutive
    /// offsets and returns where they landed: the first batch's base offset, the last one's last offset. Waits
    /// for room in the queue when the writer is behind.
    pub async fn append(&self, batches: Vec<Bytes>) -> Result<AppendInfo> {
        self.enqueue(batches).await?.appended().await
    }

    /// Puts the batches of one produce call on the writer's queue, waiting for room, and returns once they are
    /// on it: calls queued one after the other are appended in that order. The append's outcome comes from
    /// [`QueuedAppend::appended`].
    pub async fn enqueue(&self, batches: Vec<Bytes>) -> Result<QueuedAppend<'_>> {
        let (reply, outcome) = oneshot::channel();
        let queue = self.sender()?;
        queue.send(AppendJob { batches, reply: Some(reply), is_marker: false }).await.map_err(|_| self.closed())?;
        Ok(QueuedAppend { partition: self, outcome })
    }

    /// Appends a transaction marker (`transactions/`) after every batch queued before it, and returns where it
    /// landed.
    pub async fn append_marker(&self, marker: Bytes) -> Result<AppendInfo> {
        self.enqueue_marker(marker).await?.appended().await
    }

    /// Queues a transaction marker after every batch queued before it; the append is awaited on what it returns.
    pub async fn enqueue_marker(&self, marker: Bytes) -> Result<QueuedAppend<'_>> {
        let (reply, outcome) = oneshot::channel();
        let queue = self.sender()?;
        queue
            .send(AppendJob { batches: vec![marker], reply: Some(reply), is_marker: true })
            .await
            .map_err(|_| self.closed())?;
        Ok(QueuedAppend { partition: self, outcome })
    }

    /// Queues batches without waiting for the append (acks NONE). Still waits for room in the queue.
    pub async fn append_unacknowledged(&self, batches: Vec<Bytes>) -> Result<()> {
        let queue = self.sender()?;
        queue.send(AppendJob { batches, reply: None, is_marker: false }).await.map_err(|_| self.closed())
    }

    /// Returns once every offset below `end_offset` is fsynced (acks DURABLE). Concurrent callers share fsyncs, and
    /// wait without holding a thread.
    pub async fn sync_through(&self, end_offset: i64) -> Result<()> {
        // An `always` topic's writer fsynced the append before answering it: checking here saves the two thread
        // hops to the blocking pool and back, each a wake-up of another thread.
        if self.log.durable_end_offset() >= end_offset {
            return Ok(());
        }
        self.durable_syncs.wait_through(&self.log, end_offset).await
    }

    /// Reads whole batches from `offset`: from the tail cache on this thread when it holds them (a look-up and a
    /// slice, cheaper than the hop to the blocking pool), else from the segments, off the async threads.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let read = match self.log.read_from_memory(offset, max_bytes) {
            Some(read) => read,
            None => {
                let log = Arc::clone(&self.log);
                tokio::task::spawn_blocking(move || log.read(offset, max_bytes)).await.map_err(BrokerError::join)??
            }
        };
        if let Some(traffic) = &self.traffic {
            traffic.record_out(read.batches.len() as u64, offsets_in(&read.batches));
        }
        Ok(read)
    }

    /// The batches from `offset` on, when the tail cache holds them and they fit `max_bytes` whole: the
    /// appends after the one a fetch read first (Kafka's fetch answers with several). `None` otherwise: nothing
    /// there yet, not in memory, or its first batch alone is larger than what is left.
    pub fn read_following(&self, offset: i64, max_bytes: usize) -> Option<ReadResult> {
        let read = self.log.read_from_memory(offset, max_bytes)?;
        if read.batches.is_empty() || read.batches.len() > max_bytes {
            return None;
        }
        if let Some(traffic) = &self.traffic {
            traffic.record_out(read.batches.len() as u64, offsets_in(&read.batches));
        }
        Some(read)
    }

    /// A receiver of the high watermark; `changed()` wakes after each append and fails once the partition is gone.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Publishes the log's high watermark as it is now, waking waiters if it moved: after an append, and when
    /// replication moves the high watermark of a replicated partition.
    pub fn publish_offsets(&self) {
        let high_watermark = self.log.high_watermark();
        self.high_watermark
            .send_if_modified(|published| std::mem::replace(published, high_watermark) != high_watermark);
    }

    /// Wakes every high-watermark waiter without a change: a change of leadership they must look at.
    pub fn wake_waiters(&self) {
        self.high_watermark.send_modify(|_| {});
    }

    /// Stops taking appends, wakes every waiter, lets the writer finish what is queued, and waits for it.
    /// Idempotent.
    pub async fn stop_writer(&self, grace: Duration) {
        self.is_closed.store(true, Ordering::Release);
        self.high_watermark.send_modify(|_| {});
        drop(lock(&self.queue).take());
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer {
            // Producers holding a cloned sender can delay the end of the queue; after the grace period the
            // writer is abandoned rather than holding up a shutdown or a delete.
            match tokio::time::timeout(grace, writer).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(partition = ?self, error = %err, "partition writer failed"),
                Err(_) => tracing::warn!(partition = ?self, "partition writer still busy after the grace period"),
            }
        }
    }
}

async fn run_writer(partition: Arc<Partition>, mut queue: mpsc::Receiver<AppendJob>, append_slots: Arc<Semaphore>) {
    let mut jobs = Vec::with_capacity(MAX_BATCHES_PER_WRITE);
    while queue.recv_many(&mut jobs, MAX_BATCHES_PER_WRITE).await > 0 {
        let log = Arc::clone(&partition.log);
        let taken = std::mem::take(&mut jobs);
        mark_jobs(&taken, Hop::WriterTook);
        // Waits here, not on a blocking thread, while other partitions hold the slots. The semaphore is never
        // closed; if it were, writing without a slot is still correct.
        let slot = Arc::clone(&append_slots).acquire_owned().await.ok();
        let group_bytes: usize = taken.iter().flat_map(|job| &job.batches).map(Bytes::len).sum();
        let written = if group_bytes <= INLINE_APPEND_BYTES_MAX && log.is_plain_write(group_bytes as u64) {
            // A small append that is only a write (no fsync, no roll) is cheaper here than the two thread hops to
            // the blocking pool and back (a third of the broker's share of a lone record's latency,
            // docs/benchmarks.md).
            Ok(write_group(&log, taken, slot))
        } else {
            tokio::task::spawn_blocking(move || write_group(&log, taken, slot)).await
        };
        if let Some(write_metrics) = &partition.write_metrics {
            // A failed blocking task wrote nothing anyone is told of: 0.
            write_metrics.record_group(written.as_ref().map_or(0, |(taken, _)| taken.len()));
        }
        let (taken, outcomes) = match written {
            Ok(done) => done,
            Err(err) => {
                // Only a panic in storage gets here; the jobs' reply channels were dropped with the closure,
                // so their producers see the partition as closed. Keep serving: the next call may succeed.
                tracing::error!(partition = ?partition, error = %err, "append task failed");
                continue;
            }
        };
        // Wake waiters only when there is something new to read (not after a group that all failed).
        partition.publish_offsets();
        mark_jobs(&taken, Hop::HighWatermarkPublished);
        if let Some(traffic) = &partition.traffic {
            for (job, outcome) in taken.iter().zip(&outcomes) {
                if let Some(info) = outcome.as_ref().ok().filter(|info| !info.is_duplicate) {
                    let bytes: usize = job.batches.iter().map(Bytes::len).sum();
                    traffic.record_in(bytes as u64, (info.last_offset - info.base_offset + 1).max(0) as u64);
                }
            }
        }
        for (job, outcome) in taken.into_iter().zip(outcomes) {
            match (job.reply, outcome) {
                (Some(reply), outcome) => {
                    // The producer may have gone away (cancelled call): nothing to tell.
                    let _ = reply.send(outcome);
                }
                (None, Err(err)) => {
                    tracing::warn!(partition = ?partition, error = %err, "append with acks none failed")
                }
                (None, Ok(_)) => {}
            }
        }
    }
}

/// Appends the jobs taken from the queue, each in one storage call, and gives the append slot back.
fn write_group(
    log: &Log,
    taken: Vec<AppendJob>,
    slot: Option<OwnedSemaphorePermit>,
) -> (Vec<AppendJob>, Vec<Result<AppendInfo, StorageError>>) {
    // Under the `always` policy, `append` would fsync once per batch, one after the other; instead every batch
    // of the group is appended and one fsync covers them all before any is answered.
    mark_jobs(&taken, Hop::AppendStarted);
    let mut outcomes: Vec<_> = taken
        .iter()
        .map(|job| match job.is_marker {
            true => log.append_control_unsynced(&job.batches[0]),
            false => append_job(log, &job.batches),
        })
        .collect();
    mark_jobs(&taken, Hop::Appended);
    // The fsync is the device's work too, but a slot paces writes: holding it would hold back the other
    // partitions' appends for a whole flush.
    drop(slot);
    if log.syncs_every_append() {
        sync_group(log, &mut outcomes);
    }
    (taken, outcomes)
}

/// Marks a sampled hop (`rill bench e2e --breakdown`) for every batch of `jobs`; one relaxed load when off.
fn mark_jobs(jobs: &[AppendJob], hop: Hop) {
    if hops::is_on() {
        jobs.iter().flat_map(|job| &job.batches).for_each(|batch| hops::mark_batches(batch, hop));
    }
}

/// Offsets (records, less any a compaction removed) covered by the whole batches in `batches`: read from each
/// batch's header, so the count costs a few loads per batch, not per record.
/// The offset after the last whole batch of `batches`, which hold whole batches from their start; `None` when
/// they hold none.
pub fn next_offset_after(batches: &[u8]) -> Option<i64> {
    let mut next = None;
    let mut rest = batches;
    while let Ok(header) = rill_protocol::BatchHeader::parse(rest) {
        let Some(after) = usize::try_from(header.batch_length)
            .ok()
            .and_then(|len| rest.get(len + rill_protocol::batch::LOG_OVERHEAD..))
        else {
            break;
        };
        next = Some(header.next_offset());
        rest = after;
    }
    next
}

/// The whole batches of `batches` that start below `end` (all of them when `end` is `None`): a `read_committed`
/// read stops at the last stable offset, always a batch's start (the first batch of the oldest open transaction),
/// so no batch is cut.
pub fn whole_batches_below(batches: Bytes, end: Option<i64>) -> Bytes {
    let Some(end) = end else { return batches };
    let mut kept = 0;
    let mut rest = &batches[..];
    while let Ok(header) = rill_protocol::BatchHeader::parse(rest) {
        if header.base_offset >= end {
            break;
        }
        let length = header.total_bytes();
        let Some(after) = rest.get(length..) else { break };
        kept += length;
        rest = after;
    }
    batches.slice(..kept)
}

/// Whether the batch of `header` holds records of one of the `aborted` transactions: a transactional batch of an
/// aborted transaction's producer from its first offset to its marker.
pub fn is_aborted(header: &rill_protocol::BatchHeader, aborted: &[rill_storage::AbortedTransaction]) -> bool {
    header.is_transactional()
        && !header.is_control()
        && aborted.iter().any(|a| {
            a.producer_id == header.producer_id
                && a.first_offset <= header.base_offset
                && header.base_offset < a.last_offset
        })
}

/// `batches` without the batches of the `aborted` transactions (a transactional batch of an aborted transaction's
/// producer from its first offset to its marker): what a gRPC `read_committed` reader gets, as the Kafka client
/// leaves them out on its side. Zero-copy unless a batch goes; then the kept ones are copied into one buffer.
pub fn without_aborted(batches: Bytes, aborted: &[rill_storage::AbortedTransaction]) -> Bytes {
    if aborted.is_empty() {
        return batches;
    }
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut at = 0;
    while let Ok(header) = rill_protocol::BatchHeader::parse(&batches[at..]) {
        let end = at + header.total_bytes();
        if end > batches.len() {
            break;
        }
        if !is_aborted(&header, aborted) {
            match kept.last_mut() {
                Some(run) if run.end == at => run.end = end,
                _ => kept.push(at..end),
            }
        }
        at = end;
    }
    match kept.as_slice() {
        [only] => batches.slice(only.clone()),
        runs => Bytes::from(runs.iter().flat_map(|run| batches[run.clone()].iter().copied()).collect::<Vec<u8>>()),
    }
}

fn offsets_in(batches: &[u8]) -> u64 {
    let mut offsets = 0u64;
    let mut rest = batches;
    while let Ok(header) = rill_protocol::BatchHeader::parse(rest) {
        offsets += u64::try_from(i64::from(header.last_offset_delta) + 1).unwrap_or(0);
        let Some(next) = usize::try_from(header.batch_length)
            .ok()
            .and_then(|len| rest.get(len + rill_protocol::batch::LOG_OVERHEAD..))
        else {
            break;
        };
        rest = next;
    }
    offsets
}

/// Appends one job's batches in one storage call (one write where they share a segment); the outcome spans them.
fn append_job(log: &Log, batches: &[Bytes]) -> Result<AppendInfo, StorageError> {
    let slices: Vec<&[u8]> = batches.iter().map(|batch| &batch[..]).collect();
    let appended = log.append_batches_unsynced(&slices)?;
    match (appended.first(), appended.last()) {
        (Some(first), Some(last)) => Ok(AppendInfo { last_offset: last.last_offset, ..*first }),
        _ => Err(StorageError::Io {
            path: Default::default(),
            source: std::io::Error::other("an append job with no batch"),
        }),
    }
}

/// Group commit for `always` topics: one fsync covers every batch the writer just appended. If it fails, every
/// batch of the group is answered with the failure (they are in the log but not known to be on disk; a
/// producer that retries may duplicate them, which at-least-once delivery allows).
fn sync_group(log: &Log, outcomes: &mut [Result<AppendInfo, StorageError>]) {
    let Some(end_offset) = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|info| info.last_offset + 1).max()
    else {
        return;
    };
    if let Err(err) = log.sync_through(end_offset) {
        for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
            *outcome = Err(copy_of(&err));
        }
    }
}

/// A copy of an fsync failure for each producer it concerns (`StorageError` is not `Clone`: it holds an
/// `io::Error`). Keeps the OS error code, so a full disk is still recognised as one.
fn copy_of(err: &StorageError) -> StorageError {
    match err {
        StorageError::FsyncFailed { path, reason } => {
            StorageError::FsyncFailed { path: path.clone(), reason: reason.clone() }
        }
        StorageError::Io { path, source } => StorageError::Io {
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => StorageError::Io { path: Default::default(), source: std::io::Error::other(other.to_string()) },
    }
}

/// Locks a mutex that only guards quick, panic-free sections; a poisoned one is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_protocol::{Record, RecordBatchBuilder};
    use rill_storage::{Durability, LogConfig};

    fn one_record_batch(value: u32) -> Bytes {
        let mut builder = RecordBatchBuilder::default();
        let record =
            Record { key: None, value: Some(value.to_be_bytes().to_vec()), headers: Vec::new(), timestamp_ms: 1 };
        builder.push(&record);
        Bytes::from(builder.build())
    }

    /// A partition of topic `t` on a log of its own in a temp dir (kept as long as the returned guard).
    fn started(durability: Durability) -> (tempfile::TempDir, Arc<Partition>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = Log::open(dir.path(), LogConfig { durability, ..LogConfig::default() }).expect("a log");
        let topic = TopicName::new("t").expect("a valid name");
        (dir, Partition::start(topic, 0, log, 64, Arc::new(Semaphore::new(2)), None))
    }

    /// On an `always` topic, with many producers' calls grouped by the writer: no call is answered, and no reader
    /// sees a batch, before an fsync covers it, and the offsets stay dense and in each producer's order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn always_topics_answer_and_publish_only_what_is_fsynced() {
        let (_dir, partition) = started(Durability::Always);
        let watcher = {
            let partition = Arc::clone(&partition);
            let mut high_watermark = partition.watch_high_watermark();
            tokio::spawn(async move {
                let mut checks = 0;
                while high_watermark.changed().await.is_ok() && !partition.is_closed() {
                    let published = *high_watermark.borrow_and_update();
                    assert!(published <= partition.log().durable_end_offset(), "{published} published unsynced");
                    checks += 1;
                }
                checks
            })
        };
        let producers: Vec<_> = (0..8u32)
            .map(|producer| {
                let partition = Arc::clone(&partition);
                tokio::spawn(async move {
                    let mut offsets = Vec::new();
                    for n in 0..50u32 {
                        let queued =
                            partition.enqueue(vec![one_record_batch(producer * 1000 + n)]).await.expect("queued");
                        let info = queued.appended().await.expect("appended");
                        assert!(partition.log().durable_end_offset() > info.last_offset, "answered before its fsync");
                        offsets.push(info.base_offset);
                    }
                    offsets
                })
            })
            .collect();
        let mut all = Vec::new();
        for producer in producers {
            let offsets = producer.await.expect("a producer");
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one producer's calls land in its order");
            all.extend(offsets);
        }
        all.sort_unstable();
        assert_eq!(all, (0..400).collect::<Vec<i64>>(), "dense offsets, none twice");
        assert_eq!(partition.log().high_watermark(), 400);
        partition.stop_writer(Duration::from_secs(5)).await;
        assert!(watcher.await.expect("the watcher") > 0);
    }

    /// Durable acks on a `never` topic: many producers wait for shared fsyncs at once; every call returns (none is
    /// left waiting when the fsync task stops), and none before an fsync covers its batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_waiters_on_a_never_topic_all_return_and_only_once_fsynced() {
        let (_dir, partition) = started(Durability::Never);
        let producers: Vec<_> = (0..16u32)
            .map(|producer| {
                let partition = Arc::clone(&partition);
                tokio::spawn(async move {
                    for n in 0..40u32 {
                        let info = partition.append(vec![one_record_batch(producer * 1000 + n)]).await.expect("append");
                        partition.sync_through(info.last_offset + 1).await.expect("fsynced");
                        assert!(partition.log().durable_end_offset() > info.last_offset, "answered before its fsync");
                        if n % 8 == 0 {
                            // Let the fsync task stop now and then, so waiters also find it stopped.
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                })
            })
            .collect();
        for producer in producers {
            tokio::time::timeout(Duration::from_secs(30), producer)
                .await
                .expect("every durable wait returns")
                .expect("a producer");
        }
        assert_eq!(partition.log().durable_end_offset(), 640);
        partition.stop_writer(Duration::from_secs(5)).await;
    }

    /// Batches of one record at `bases`, transactional ones from producer 7 where `transactional` says.
    fn batches_at(bases: &[(i64, bool)]) -> Bytes {
        let mut all = Vec::new();
        for &(base, is_transactional) in bases {
            let mut batch = one_record_batch(base as u32).to_vec();
            let mut header = rill_protocol::BatchHeader::parse(&batch).expect("a header");
            header.base_offset = base;
            if is_transactional {
                header.attributes |= rill_protocol::batch::TRANSACTIONAL_BIT;
                (header.producer_id, header.producer_epoch, header.base_sequence) = (7, 0, 0);
            }
            rill_protocol::record::write_header(&mut batch, &header);
            all.extend_from_slice(&batch);
        }
        Bytes::from(all)
    }

    #[test]
    fn a_read_committed_read_keeps_the_whole_batches_below_the_last_stable_offset() {
        let read = batches_at(&[(3, false), (4, false), (5, false)]);
        let one = read.len() / 3;
        assert_eq!(whole_batches_below(read.clone(), None).len(), read.len());
        assert_eq!(whole_batches_below(read.clone(), Some(5)).len(), 2 * one);
        assert_eq!(whole_batches_below(read.clone(), Some(3)).len(), 0);
        assert_eq!(whole_batches_below(read.clone(), Some(100)).len(), read.len());
    }

    #[test]
    fn an_aborted_transactions_batches_are_left_out_and_nothing_else() {
        let read = batches_at(&[(0, false), (1, true), (2, true), (3, false), (4, true)]);
        let one = read.len() / 5;
        let aborted = [rill_storage::AbortedTransaction { producer_id: 7, first_offset: 1, last_offset: 3 }];
        assert_eq!(without_aborted(read.clone(), &[]), read, "nothing aborted: the same bytes");
        let kept = without_aborted(read.clone(), &aborted);
        assert_eq!(kept.len(), 3 * one);
        let offsets: Vec<i64> =
            rill_protocol::BatchIter::new(kept).map(|batch| batch.expect("whole batches").header.base_offset).collect();
        assert_eq!(offsets, [0, 3, 4], "the producer's later transaction (at 4) is not the aborted one");
        let other = [rill_storage::AbortedTransaction { producer_id: 8, first_offset: 0, last_offset: 9 }];
        assert_eq!(without_aborted(read.clone(), &other), read, "another producer's abort leaves these");
    }
}
