//! The sender task of one partition: ships its sealed batches in order, fires linger timers, answers flushes.
//!
//! One task per partition (not one per producer) so partitions proceed in parallel while each keeps its order;
//! the producer's lock is taken only to seal a batch whose linger expired, never across an `.await`. At most
//! `max_in_flight_per_partition` produce calls are outstanding; batches beyond that wait in `queued`, and a
//! batch whose linger expired stays open (and keeps filling) until there is room to send it.
//!
//! Pipelining. An idempotent producer may keep up to 5 calls in flight per partition (Kafka's limit): the broker
//! appends a batch only if its sequence follows the partition's last, so a batch sent while an earlier one is
//! being retried is refused as out of order, never stored ahead of it. Such a refusal is expected: the call waits
//! until every call before it is answered and then goes again, once ([`CallOrder`]). A refusal with every earlier
//! call answered is the broker's real judgement, and final.
//!
//! Failure. A batch is retried while its failures are transient and its `delivery_timeout` (counted from its
//! first record) lasts; then it fails with the last error it saw. Once a batch has failed for good, every
//! later batch of the partition fails too, unsent ([`Error::EarlierBatchFailed`]), for the rest of the
//! producer's life: sending them would store records after a gap in the producer's stream, and a record sent
//! after the failed ones could land ahead of them if the application sent those again. This is Kafka's
//! idempotent producer's rule (librdkafka's gapless guarantee makes it a fatal error); a producer that must go
//! on after a failure is created anew.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use rill_protocol::v1::ProduceRequest;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use crate::accumulator::{BatchOutcome, SealedBatch};
use crate::compression::{compress_batch, Compression};
use crate::connection::{call, Client};
use crate::error::{Error, RequestContext};
use crate::leaders::Destination;
use crate::producer::{Acks, Metrics, ProducerConfig};
use crate::records_call;
use std::sync::atomic::Ordering;

/// What the producer tells a partition's sender, in the order it happened.
pub(crate) enum Command {
    Send(SealedBatch),
    /// Batch `id` was opened: seal it at `deadline` unless it was sealed before.
    Linger {
        id: u64,
        deadline: Instant,
    },
    /// Answer once every batch sent before this command is answered.
    Flush(oneshot::Sender<()>),
}

impl Command {
    /// Answers the command without doing it, so no caller waits forever.
    pub fn fail(self, err: Error, buffer: &Semaphore) {
        match self {
            Command::Send(batch) => {
                let _ = batch.ack.send(Err(err));
                buffer.add_permits(batch.reserved_bytes);
            }
            Command::Flush(done) => {
                let _ = done.send(());
            }
            Command::Linger { .. } => {}
        }
    }
}

/// Seals the partition's open batch if it is the batch of the given id (its linger expired), returning it. The
/// producer provides it, so the sender never touches the producer's batches itself; it must not keep a
/// dropped producer alive (hold a weak reference).
pub(crate) type SealLingered = Box<dyn Fn(u64) -> Option<SealedBatch> + Send + Sync>;

/// What a sender task needs: clones of the producer's parts.
pub(crate) struct SenderContext {
    pub client: Client,
    pub config: Arc<ProducerConfig>,
    pub seal_lingered: SealLingered,
    pub buffer: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub topic: Arc<str>,
    pub partition: u32,
}

/// Runs until the producer drops the channel and everything received has been answered.
pub(crate) async fn run_partition_sender(ctx: SenderContext, mut commands: mpsc::UnboundedReceiver<Command>) {
    let max_in_flight = ctx.config.max_in_flight_per_partition.max(1);
    // A group must also fit the client's own message limit (less room for the other fields), or a call that
    // would have gone through batch by batch would be refused whole.
    let max_message_bytes = ctx.client.config().max_message_bytes;
    let max_request_bytes =
        ctx.config.max_request_bytes.min(max_message_bytes.saturating_sub(rill_protocol::MESSAGE_OVERHEAD_BYTES));
    let mut in_flight = FuturesOrdered::new();
    // Calls answered so far, in the order sent (`FuturesOrdered` yields them so), and the first that failed for
    // good: what a call refused as out of order waits on before going again.
    let (answered_calls, _) = watch::channel(AnsweredCalls::default());
    let mut calls_sent = 0u64;
    let max_batches_in_flight =
        if ctx.config.enable_idempotence { crate::producer::MAX_IDEMPOTENT_IN_FLIGHT } else { usize::MAX };
    let mut batches_in_flight = 0usize;
    let mut has_acknowledged = false;
    let mut queued: VecDeque<SealedBatch> = VecDeque::new();
    let mut linger: Option<(u64, Instant)> = None;
    // Flushes wait for a count of answered batches: `received` when the flush arrived.
    let mut flushes: VecDeque<(u64, oneshot::Sender<()>)> = VecDeque::new();
    let (mut received, mut answered) = (0u64, 0u64);
    let mut is_closed = false;
    // The error of the first batch that failed for good; from then on every batch fails behind it.
    let mut failure: Option<Error> = None;
    loop {
        if let Some(cause) = &failure {
            for batch in queued.drain(..) {
                answered += 1;
                let behind = ctx.earlier_batch_failed(cause);
                answer(&ctx.metrics, &ctx.buffer, &ctx.topic, ctx.partition, batch.into_parts(), Err(behind));
            }
        }
        // Until its first call is acknowledged, a partition does not know this producer and would store its
        // first batch at any sequence (a new producer id, as Kafka 2.5+): a later call overtaking the first one
        // on the way (HTTP/2 serves calls concurrently, unlike Kafka's one-at-a-time connection) would be stored
        // ahead of it. So an idempotent producer pipelines only once the partition has acknowledged a call.
        let max_in_flight = if ctx.config.enable_idempotence && !has_acknowledged { 1 } else { max_in_flight };
        while in_flight.len() < max_in_flight {
            // An idempotent producer's broker recognises a retried batch among the producer's last
            // `MAX_IDEMPOTENT_IN_FLIGHT` batches of the partition only: no more are ever unanswered at once, so a
            // retry of any of them (its answer lost) is answered as a duplicate, not refused as out of order.
            let room = max_batches_in_flight.saturating_sub(batches_in_flight);
            let batches = take_request(&mut queued, max_request_bytes, room);
            if batches.is_empty() {
                break;
            }
            let order = CallOrder { index: calls_sent, answered: answered_calls.subscribe() };
            calls_sent += 1;
            batches_in_flight += batches.len();
            in_flight.push_back(send_batches(&ctx, batches, order));
        }
        while flushes.front().is_some_and(|(after, _)| *after <= answered) {
            if let Some((_, done)) = flushes.pop_front() {
                let _ = done.send(());
            }
        }
        if is_closed && queued.is_empty() && in_flight.is_empty() {
            break;
        }
        let has_room = in_flight.len() + queued.len() < max_in_flight;
        // A linger already over (linger 0, or a busy sender) seals at once: tokio's timer fires no sooner than
        // its next millisecond tick, which was most of the send latency of a `linger: 0` producer.
        if has_room && linger.is_some_and(|(_, deadline)| deadline <= Instant::now()) {
            if let Some((id, _)) = linger.take() {
                if let Some(batch) = (ctx.seal_lingered)(id) {
                    received += 1;
                    queued.push_back(batch);
                }
            }
            continue;
        }
        let linger_deadline = linger.map(|(_, deadline)| deadline);
        tokio::select! {
            command = commands.recv(), if !is_closed => match command {
                None => {
                    is_closed = true;
                    // Nothing can arrive any more: a pending linger has nothing left to seal.
                    linger = None;
                }
                Some(Command::Send(batch)) => {
                    assert_eq!(batch.partition, ctx.partition, "a batch reached another partition's sender");
                    received += 1;
                    queued.push_back(batch);
                }
                Some(Command::Linger { id, deadline }) => linger = Some((id, deadline)),
                Some(Command::Flush(done)) => flushes.push_back((received, done)),
            },
            () = sleep_until(linger_deadline), if linger.is_some() && has_room => {
                if let Some((id, _)) = linger.take() {
                    if let Some(batch) = (ctx.seal_lingered)(id) {
                        received += 1;
                        queued.push_back(batch);
                    }
                }
            },
            Some(call) = in_flight.next(), if !in_flight.is_empty() => {
                answered += call.answered;
                has_acknowledged |= call.failure.is_none();
                batches_in_flight = batches_in_flight.saturating_sub(call.answered as usize);
                answered_calls.send_modify(|calls| {
                    calls.count += 1;
                    if calls.failure.is_none() {
                        calls.failure.clone_from(&call.failure);
                    }
                });
                if let (None, Some(err)) = (&failure, call.failure) {
                    tracing::warn!(
                        topic = %ctx.topic,
                        partition = ctx.partition,
                        error = %err,
                        "a batch failed for good: every later batch of the partition fails behind it"
                    );
                    failure = Some(err);
                }
            }
        }
    }
}

impl SenderContext {
    fn earlier_batch_failed(&self, cause: &Error) -> Error {
        Error::EarlierBatchFailed {
            topic: self.topic.to_string(),
            partition: self.partition,
            cause: Box::new(cause.root().clone()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The queued batches the next produce call carries: the oldest, and those after it while their bytes stay within
/// `max_request_bytes`. Batches that waited for the in-flight call go together, so the broker appends them with
/// one write; each stays its own batch, with its own acknowledgement.
fn take_request(queued: &mut VecDeque<SealedBatch>, max_request_bytes: usize, max_batches: usize) -> Vec<SealedBatch> {
    let mut taken: Vec<SealedBatch> = Vec::new();
    let mut bytes = 0;
    while let Some(next) = queued.front() {
        if taken.len() >= max_batches || (!taken.is_empty() && bytes + next.bytes.len() > max_request_bytes) {
            break;
        }
        bytes += next.bytes.len();
        taken.extend(queued.pop_front());
    }
    taken
}

/// The partition's calls answered so far, counted in the order they were sent, and the first failure for good.
#[derive(Default)]
struct AnsweredCalls {
    count: u64,
    failure: Option<Error>,
}

/// Where one call stands among its partition's: its index in the order sent, and a view of the calls answered.
pub(crate) struct CallOrder {
    index: u64,
    answered: watch::Receiver<AnsweredCalls>,
}

impl CallOrder {
    /// Whether a call sent before this one is still unanswered: an out-of-order refusal is then expected.
    fn is_behind_unanswered(&self) -> bool {
        self.answered.borrow().count < self.index
    }

    /// Waits until every call sent before this one is answered, up to `deadline`; the first failure for good
    /// among them, if any. `Err(())` when the deadline came first.
    async fn wait_for_earlier(&mut self, deadline: Instant) -> Result<Option<Error>, ()> {
        let index = self.index;
        match tokio::time::timeout_at(deadline, self.answered.wait_for(|calls| calls.count >= index)).await {
            Ok(Ok(calls)) => Ok(calls.failure.clone()),
            // The sender task is gone: nothing more will be answered.
            Ok(Err(_)) | Err(_) => Err(()),
        }
    }
}

/// What one produce call came to: how many batches it answered, and the error if they failed for good.
struct CallOutcome {
    answered: u64,
    failure: Option<Error>,
}

/// A batch's acknowledgement, record count and reserved bytes: what answering it takes.
type Answerable = (oneshot::Sender<BatchOutcome>, usize, usize);

impl SealedBatch {
    fn into_parts(self) -> Answerable {
        (self.ack, self.record_count, self.reserved_bytes)
    }
}

/// Compresses and produces the batches of one call, then answers each batch's records and returns their bytes to
/// the buffer budget.
fn send_batches(
    ctx: &SenderContext,
    batches: Vec<SealedBatch>,
    order: CallOrder,
) -> impl std::future::Future<Output = CallOutcome> + Send + 'static {
    let client = ctx.client.clone();
    let config = Arc::clone(&ctx.config);
    let buffer = Arc::clone(&ctx.buffer);
    let metrics = Arc::clone(&ctx.metrics);
    let topic = Arc::clone(&ctx.topic);
    let partition = ctx.partition;
    async move {
        let answered = batches.len() as u64;
        // The oldest batch's delivery timeout bounds the call: it runs out first.
        let deadline = batches.first().map(|batch| batch.opened_at + config.delivery_timeout);
        let mut sent: Vec<Answerable> = Vec::with_capacity(batches.len());
        let mut bytes = Vec::with_capacity(batches.len());
        let mut failure = None;
        let mut batches = batches.into_iter();
        for batch in batches.by_ref() {
            let (data, parts) = (batch.bytes, (batch.ack, batch.record_count, batch.reserved_bytes));
            match compress(data, config.compression).await {
                Ok(compressed) => {
                    bytes.push(compressed.into());
                    sent.push(parts);
                }
                Err(err) => {
                    answer(&metrics, &buffer, &topic, partition, parts, Err(err.clone()));
                    failure = Some(err);
                    break;
                }
            }
        }
        if let Some(cause) = &failure {
            // Behind a batch that cannot be sent: sending these would leave a gap.
            for batch in batches {
                let behind =
                    Error::EarlierBatchFailed { topic: topic.to_string(), partition, cause: Box::new(cause.clone()) };
                answer(&metrics, &buffer, &topic, partition, batch.into_parts(), Err(behind));
            }
        }
        let Some(deadline) = deadline.filter(|_| !sent.is_empty()) else {
            return CallOutcome { answered, failure };
        };
        metrics.produce_calls.fetch_add(1, Ordering::Relaxed);
        let produce_call = Call { topic: &topic, partition, batches: &bytes, deadline };
        let outcome = produce_with_retries(&client, &config, &metrics, produce_call, order).await;
        if let Err(err) = &outcome {
            failure.get_or_insert_with(|| err.clone());
        }
        // The broker put the call's batches at consecutive offsets, in order: each starts where the one before ends.
        let mut base_offset = outcome;
        for batch in sent {
            let record_count = batch.1 as i64;
            answer(&metrics, &buffer, &topic, partition, batch, base_offset.clone());
            if let Ok(base) = &mut base_offset {
                if *base >= 0 {
                    *base += record_count;
                }
            }
        }
        CallOutcome { answered, failure }
    }
}

/// Answers one batch's records and gives its bytes back to the buffer budget.
fn answer(
    metrics: &Metrics,
    buffer: &Semaphore,
    topic: &str,
    partition: u32,
    (ack, record_count, reserved_bytes): Answerable,
    outcome: BatchOutcome,
) {
    match &outcome {
        Ok(_) => metrics.batches_acknowledged.fetch_add(1, Ordering::Relaxed),
        // The failure itself was logged as a warning once; what fails behind it would repeat it per batch.
        Err(err @ Error::EarlierBatchFailed { .. }) => {
            tracing::debug!(%topic, partition, records = record_count, error = %err, "batch not sent");
            metrics.batches_failed.fetch_add(1, Ordering::Relaxed)
        }
        Err(err) => {
            tracing::warn!(%topic, partition, records = record_count, error = %err, "batch not produced");
            metrics.batches_failed.fetch_add(1, Ordering::Relaxed)
        }
    };
    let _ = ack.send(outcome);
    buffer.add_permits(reserved_bytes);
}

/// Compresses on the blocking pool: zstd on a 1 MiB batch takes milliseconds, which would stall the other
/// partitions' I/O on this runtime worker.
async fn compress(bytes: Vec<u8>, compression: Compression) -> Result<Vec<u8>, Error> {
    if compression == Compression::None {
        return Ok(bytes);
    }
    match tokio::task::spawn_blocking(move || compress_batch(bytes, compression)).await {
        Ok(compressed) => compressed.map_err(|message| Error::Compress { message }),
        Err(err) => Err(Error::Compress { message: format!("compression task failed: {err}") }),
    }
}

/// One produce call per attempt; transient failures (see [`Error::is_retriable`]) are retried with exponential
/// backoff, up to `config.retries` times and until `deadline` (the oldest batch's delivery timeout), when the
/// call fails with the last error it saw. Returns the first batch's base offset (-1 with `Acks::None`).
async fn produce_with_retries(
    client: &Client,
    config: &ProducerConfig,
    metrics: &Metrics,
    produce_call: Call<'_>,
    mut order: CallOrder,
) -> BatchOutcome {
    let Call { topic, partition, batches, deadline } = produce_call;
    let mut has_waited_for_earlier = false;
    // `records` stays unset: the batches travel beside the message, uncopied (see `records_call.rs`).
    let message = ProduceRequest {
        topic: topic.to_owned(),
        partition: Some(partition),
        records: None,
        acks: config.acks.to_proto() as i32,
    };
    let max_message_bytes = client.config().max_message_bytes;
    let mut attempt = 0u32;
    let mut last_error = None;
    // Where this call went since it last backed off.
    let mut visited: Vec<Destination> = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(last_error.unwrap_or_else(|| Error::TimedOut {
                after: config.delivery_timeout,
                message: "the batch waited longer than delivery_timeout to be sent".into(),
            }));
        }
        // An attempt never outlives the batch's delivery timeout.
        let timeout = config.request_timeout.min(remaining);
        let ctx = RequestContext::partition(topic, partition);
        let channel = client.channel_for(topic, partition).await;
        let was_behind_unanswered = order.is_behind_unanswered();
        let produced = records_call::produce(channel, &message, batches, timeout, max_message_bytes);
        let result = call(timeout, ctx, produced).await;
        match result {
            // An earlier call of the partition was still unanswered: it is being retried, and this call's
            // sequence came first. Once every earlier call is answered, this one goes again, once.
            Err(err @ Error::OutOfOrderSequence { .. }) if was_behind_unanswered && !has_waited_for_earlier => {
                has_waited_for_earlier = true;
                match order.wait_for_earlier(deadline).await {
                    Ok(None) => {}
                    Ok(Some(cause)) => {
                        return Err(Error::EarlierBatchFailed {
                            topic: topic.to_owned(),
                            partition,
                            cause: Box::new(cause.root().clone()),
                        })
                    }
                    Err(()) => return Err(err),
                }
            }
            Ok(response) if config.acks == Acks::None => {
                let _ = response;
                return Ok(-1);
            }
            Ok(response) => return Ok(response.base_offset),
            Err(err) if err.is_retriable() && attempt < config.retries => {
                // Read after the failure, not before each call: an answered call pays nothing for it. The route
                // is still the one the call took unless a concurrent call's refusal moved it meanwhile.
                let failed_at = client.destination_of(topic, partition);
                visited.push(failed_at);
                let is_waiting_on_the_cluster = waits_on_the_cluster(&err, &visited);
                client.learn_from(topic, partition, &err).await;
                let next = client.destination_of(topic, partition);
                let backoff = if is_retried_at_once(&err, &next, &visited) {
                    Duration::ZERO
                } else {
                    visited.clear();
                    let backoff = backoff_after(config, attempt, is_waiting_on_the_cluster);
                    backoff.min(deadline.saturating_duration_since(Instant::now()))
                };
                tracing::debug!(%topic, partition, attempt, ?backoff, ?next, error = %err, "produce failed; retrying");
                tokio::time::sleep(backoff).await;
                metrics.retries.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                last_error = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
}

/// The batches of one produce call and where they go, until when.
struct Call<'a> {
    topic: &'a str,
    partition: u32,
    batches: &'a [bytes::Bytes],
    deadline: Instant,
}

/// Whether the failed call's error sends the next attempt to another node: a refusal naming the leader, or a
/// node that could not be reached (its route is forgotten). Waiting then only delays a failover: a leader that
/// died is named by the others until its session expires, and each dead end cost a full backoff.
fn goes_elsewhere_next(err: &Error) -> bool {
    matches!(err, Error::NotLeader { leader_address: Some(_), .. } | Error::Unavailable { .. })
}

/// Whether the next attempt goes without a backoff: it goes elsewhere (above), and to a node this call has not
/// been sent to since it last backed off. So two nodes naming each other, or every node down, still back off,
/// once per round of the nodes; and when a failover's new leader is named, the call goes there at once, however
/// many dead ends came just before it (a rule of "never twice in a row" made it wait a full backoff whenever the
/// new leader was named right after the dead one's refusal, which a failover's rounds of retries often do).
fn is_retried_at_once(err: &Error, next: &Destination, visited: &[Destination]) -> bool {
    goes_elsewhere_next(err) && !visited.contains(next)
}

/// How many attempts of a call may wait the shortest backoff while the cluster catches up
/// ([`waits_on_the_cluster`]). A failover's round is two attempts (the dead leader, at once, then the refusal
/// naming it, which backs off), so 40 is about a second of 50 ms backoffs by default: past the liveness probe's
/// fence (375-625 ms after the last heartbeat with the default 250 ms heartbeats) and a controller election with
/// 1.5 s sessions (0.6-0.75 s). A leader that stays dead (its partition has no other in-sync replica, the probe is
/// off, or the sessions are long) is then asked after the attempt's growing backoff.
const SHORT_BACKOFF_ATTEMPTS: u32 = 40;

/// Whether the cluster's metadata is about to change under the call, so that the attempt's growing backoff would
/// only delay it. The controller is unavailable: its quorum is electing a leader (a dead controller leader's
/// survivors call the election as soon as raft lets them, about 1.5 s after its death by default), and a call
/// that needs it (a new idempotent producer's id) can go as soon as one leads. Or a refusal names a leader this
/// call has already tried since it last backed off (`visited`, the failed attempt's destination last):
/// - the node refused naming itself: the metadata makes it the leader, but it has not finished taking the
///   partition over (`not ready yet`), which takes about a millisecond;
/// - another node names a leader the call could not reach: it died, and the others name it until the controller
///   fences it, which its liveness probe does within a few hundred ms of the death;
/// - two nodes name each other: one has not applied the latest leadership yet.
pub(crate) fn waits_on_the_cluster(err: &Error, visited: &[Destination]) -> bool {
    match err {
        Error::NotLeader { leader_address: Some(named), .. } => {
            visited.iter().any(|tried| matches!(tried, Destination::Leader(address) if address == named))
        }
        Error::ControllerUnavailable { .. } => true,
        _ => false,
    }
}

/// The wait before attempt `attempt + 1`: the shortest backoff, not the attempt's, for a while when the metadata
/// is about to change (`is_waiting_on_the_cluster`, [`waits_on_the_cluster`]).
pub(crate) fn backoff_after(config: &ProducerConfig, attempt: u32, is_waiting_on_the_cluster: bool) -> Duration {
    if is_waiting_on_the_cluster && attempt < SHORT_BACKOFF_ATTEMPTS {
        config.retry_backoff
    } else {
        retry_backoff(config, attempt)
    }
}

/// `retry_backoff` doubled per attempt, capped at `retry_backoff_max`.
pub(crate) fn retry_backoff(config: &ProducerConfig, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    config.retry_backoff.saturating_mul(factor).min(config.retry_backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_takes_queued_batches_in_order_up_to_the_limit_and_a_big_one_alone() {
        let mut queued: VecDeque<SealedBatch> = [600, 300, 200, 2000, 100]
            .into_iter()
            .map(|len| SealedBatch {
                partition: 0,
                bytes: vec![0; len],
                record_count: 1,
                reserved_bytes: len,
                ack: oneshot::channel().0,
                opened_at: Instant::now(),
            })
            .collect();
        let mut calls = Vec::new();
        while !queued.is_empty() {
            calls.push(take_request(&mut queued, 1000, 3).iter().map(|b| b.bytes.len()).collect::<Vec<_>>());
        }
        assert_eq!(calls, vec![vec![600, 300], vec![200], vec![2000], vec![100]]);
        // An idempotent producer's room in batches bounds a call too.
        let mut queued: VecDeque<SealedBatch> = (0..5)
            .map(|_| SealedBatch {
                partition: 0,
                bytes: vec![0; 10],
                record_count: 1,
                reserved_bytes: 10,
                ack: oneshot::channel().0,
                opened_at: Instant::now(),
            })
            .collect();
        assert_eq!(take_request(&mut queued, 1000, 2).len(), 2);
        assert_eq!(take_request(&mut queued, 1000, 0).len(), 0, "no room: nothing is sent");
        assert_eq!(take_request(&mut queued, 1000, 5).len(), 3);
    }

    #[test]
    fn only_a_redirect_or_an_unreachable_node_is_retried_without_a_backoff() {
        let redirect = Error::NotLeader { message: "node 2 leads".into(), leader_address: Some("b:2".into()) };
        assert!(goes_elsewhere_next(&redirect));
        assert!(goes_elsewhere_next(&Error::Unavailable { message: "connection refused".into() }));
        let no_leader = Error::NotLeader { message: "no leader right now".into(), leader_address: None };
        assert!(!goes_elsewhere_next(&no_leader), "the same node is asked again: it needs the time to elect");
        assert!(!goes_elsewhere_next(&Error::NotEnoughReplicas { message: "isr 1 < 2".into() }));
    }

    #[test]
    fn a_failover_s_new_leader_is_tried_at_once_and_loops_back_off_once_per_round() {
        let leader = |n: u16| Destination::Leader(format!("127.0.0.1:{n}"));
        let names =
            |n: u16| Error::NotLeader { message: "elsewhere".into(), leader_address: Some(format!("127.0.0.1:{n}")) };
        let unreachable = Error::Unavailable { message: "connection refused".into() };
        // During the dead leader's session: bootstrap node 0 names dead node 1, which cannot be reached, and the
        // next call would go to bootstrap node 0 again: that round backs off.
        assert!(is_retried_at_once(&names(1), &leader(1), &[Destination::Bootstrap(0)]));
        assert!(!is_retried_at_once(&unreachable, &Destination::Bootstrap(0), &[Destination::Bootstrap(0), leader(1)]));
        // The session expired: the bootstrap node names the new leader, which is tried at once, even though the
        // call just went somewhere at once before (the dead leader).
        assert!(is_retried_at_once(&names(3), &leader(3), &[Destination::Bootstrap(0), leader(1)]));
        // Two nodes naming each other: the second refusal backs off.
        assert!(is_retried_at_once(&names(2), &leader(2), &[leader(1)]));
        assert!(!is_retried_at_once(&names(1), &leader(1), &[leader(1), leader(2)]));
        // Every node down: each bootstrap node is tried once, then the call backs off.
        assert!(is_retried_at_once(&unreachable, &Destination::Bootstrap(1), &[Destination::Bootstrap(0)]));
        assert!(!is_retried_at_once(
            &unreachable,
            &Destination::Bootstrap(0),
            &[Destination::Bootstrap(0), Destination::Bootstrap(1)]
        ));
        // The new leader, reached at once, was still taking the partition over: it names itself. It is asked
        // again after the shortest backoff.
        assert!(waits_on_the_cluster(&names(3), &[Destination::Bootstrap(0), leader(1), leader(3)]));
        assert!(!is_retried_at_once(&names(3), &leader(3), &[Destination::Bootstrap(0), leader(1), leader(3)]));
        assert!(!waits_on_the_cluster(&names(3), &[leader(1)]), "a first redirect to a new node is no wait");
        // A bootstrap node still names the dead leader the call could not reach: it is about to be fenced, so
        // the shortest backoff too. Every node down (only unreachable answers) is not that.
        assert!(waits_on_the_cluster(&names(1), &[leader(1), Destination::Bootstrap(1)]));
        assert!(!waits_on_the_cluster(&unreachable, &[leader(1), Destination::Bootstrap(0)]));
        // A refusal that names no leader asks the same place again, after a backoff.
        let no_leader = Error::NotLeader { message: "no leader right now".into(), leader_address: None };
        assert!(!is_retried_at_once(&no_leader, &leader(4), &[]));
        // The controller's quorum electing a leader: the shortest backoff for a while, then the attempt's.
        let electing = Error::ControllerUnavailable { message: "controller leader 1: tcp connect error".into() };
        assert!(waits_on_the_cluster(&electing, &[]));
        let config = ProducerConfig::default();
        assert_eq!(backoff_after(&config, 5, true), config.retry_backoff);
        assert_eq!(backoff_after(&config, 5, false), retry_backoff(&config, 5));
        assert_eq!(backoff_after(&config, SHORT_BACKOFF_ATTEMPTS, true), config.retry_backoff_max);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = ProducerConfig {
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_millis(100),
            ..ProducerConfig::default()
        };
        let waits: Vec<u128> = (0..6).map(|a| retry_backoff(&config, a).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(retry_backoff(&config, u32::MAX), Duration::from_millis(100));
    }
}
