//! The follower's side of replication: one task per leader node this node follows, holding ONE `Replicate`
//! stream for every partition it follows there. Each answer's batches are appended unchanged (storage's
//! `append_replica`), the follower's high watermark and log start offset follow the leader's, and the next
//! request carries the new log ends and log starts. Before streaming, each log is cut back to where its last
//! epoch ends in the leader's log (KIP-101/KIP-279), so a tail the old leader never got committed is dropped
//! rather than kept beside the new leader's records. A log that ends below the leader's log start (its records
//! were deleted there meanwhile) starts over, empty, at that start when the leader's answer says so.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rill_protocol::internal::{EpochEndRequest, ReplicaFetch, ReplicaPosition};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::links::{unavailable, EpochEndFailure, LeaderLink};
use super::{CannotWrite, PartitionKey, Replication};
use crate::error::{BrokerError, Result};
use crate::partition::Partition;
use rill_storage::StorageError;

/// How long the leader may hold a fetch with nothing new.
const FETCH_MAX_WAIT_MS: u32 = 500;
const FETCH_MAX_BYTES_PER_PARTITION: u32 = 1 << 20;
/// Reconnect backoff after a failed stream, doubling from the first retry to the last. The first is short because
/// the commonest failure is brief: a follower told of a new leadership may ask before the leader has finished
/// taking the partition over (about a millisecond), and every acks-all produce waits for it meanwhile. A leader
/// that stays down is retried at `RETRY_MAX` within a few hundred milliseconds.
const RETRY_MIN: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How often a partition whose truncation the leader refused is asked about again while the others stream.
const SET_ASIDE_RETRY: Duration = Duration::from_secs(1);

/// One partition followed from a leader at an epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub topic: String,
    pub partition: u32,
    pub epoch: u32,
}

/// A running fetcher; dropping it stops the task.
pub struct Fetcher {
    pub address: String,
    pub assignments: Vec<Assignment>,
    task: JoinHandle<()>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fetcher {
    pub fn start(replication: Arc<Replication>, leader: u64, address: String, assignments: Vec<Assignment>) -> Self {
        let task = tokio::spawn(run(replication, leader, address.clone(), assignments.clone()));
        Self { address, assignments, task }
    }
}

/// The waits between a follower's attempts to stream from one leader: from `RETRY_MIN`, doubling to `RETRY_MAX`,
/// and from `RETRY_MIN` again once a stream has carried records.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: RETRY_MIN }
    }

    /// The wait before the next attempt; the one after it is twice as long, up to `RETRY_MAX`.
    fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(RETRY_MAX);
        wait
    }

    /// A stream that carried records (or ended cleanly) was healthy: its end starts a new streak of failures.
    fn reset(&mut self) {
        self.next = RETRY_MIN;
    }
}

async fn run(replication: Arc<Replication>, leader: u64, address: String, assignments: Vec<Assignment>) {
    let mut backoff = Backoff::new();
    // A follower that cannot append (a full disk) drops out of the ISR: the operator must learn why from its
    // log, once per streak of such failures rather than once per retry.
    let mut is_append_failing = false;
    // The partitions whose last append here failed for want of space; each fetch says so, and the leader
    // takes this node out of their ISRs.
    let mut cannot_append = HashSet::new();
    loop {
        let mut has_appended = false;
        match stream_from(&replication, &address, &assignments, &mut has_appended, &mut cannot_append).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                let is_append_failure = matches!(err, BrokerError::Storage(_) | BrokerError::BelowDiskReserve { .. });
                if is_append_failure && (!is_append_failing || has_appended) {
                    tracing::warn!(leader, %address, error = %err, "cannot append what the leader sent; retrying");
                } else {
                    tracing::debug!(leader, %address, error = %err, "replication stream failed; reconnecting");
                    // Killed, the leader's process closed its connections: the controller may find it gone now
                    // rather than once its heartbeat is overdue.
                    replication.controller.stream_broke(leader);
                }
                is_append_failing = is_append_failure;
                if has_appended {
                    backoff.reset();
                }
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

/// Follows the leader until the stream fails; `has_appended` says whether it appended anything meanwhile. A
/// partition whose truncation the leader refuses (still taking it over, or unable to open its replica) is set
/// aside and asked about again every `SET_ASIDE_RETRY`, while the others stream: one partition the leader
/// cannot serve must not stop this node following all the rest there, or their ISRs would shrink to the
/// leader alone.
async fn stream_from(
    replication: &Replication,
    address: &str,
    assignments: &[Assignment],
    has_appended: &mut bool,
    cannot_append: &mut HashSet<PartitionKey>,
) -> Result<()> {
    let node = replication.node()?;
    let mut candidates: Vec<Followed> = Vec::with_capacity(assignments.len());
    for assignment in assignments {
        candidates.push((assignment.clone(), node.registry.partition(&assignment.topic, assignment.partition)?));
    }
    let disk_reserve = Arc::clone(&node.disk_reserve);
    drop(node);
    let mut leader = replication.leader_links.connect(address).await?;
    let (mut followed, mut set_aside) = truncate_all(leader.as_mut(), candidates).await?;
    if followed.is_empty() {
        return Err(refused_all(&set_aside));
    }
    let mut retry_at = Instant::now() + SET_ASIDE_RETRY;
    let (requests, outbound) = mpsc::channel(2);
    let fetch = |followed: &[Followed], cannot_append: &HashSet<PartitionKey>| ReplicaFetch {
        cluster_id: String::new(),
        follower_id: replication.node_id,
        partitions: followed
            .iter()
            .map(|(a, p)| ReplicaPosition {
                topic: a.topic.clone(),
                partition: a.partition,
                leader_epoch: a.epoch,
                fetch_offset: p.log().log_end_offset(),
                log_start_offset: p.log().log_start_offset(),
                cannot_append: cannot_append.contains(&(a.topic.clone(), a.partition)),
                high_watermark: Some(p.log().high_watermark()),
            })
            .collect(),
        max_wait_ms: FETCH_MAX_WAIT_MS,
        max_bytes_per_partition: FETCH_MAX_BYTES_PER_PARTITION,
    };
    requests.send(fetch(&followed, cannot_append)).await.map_err(|e| unavailable("replication stream", e))?;
    let mut inbound = leader.replicate(outbound).await?;
    // Partitions this answer showed this node cannot follow for now; the others go on without them.
    let (mut diverged, mut leaving) = (Vec::new(), Vec::new());
    while let Some(answer) = inbound.next().await.transpose()? {
        let mut partitions = answer.partitions.into_iter();
        while let Some(data) = partitions.next() {
            let Some((_, partition)) =
                followed.iter().find(|(a, _)| a.topic == data.topic && a.partition == data.partition)
            else {
                continue;
            };
            if data.fetch_offset_below_log_start {
                start_over(partition, data.log_start_offset).await?;
                continue;
            }
            if !data.error.is_empty() {
                tracing::debug!(topic = %data.topic, partition = data.partition, error = %data.error, "leader refused a partition");
                continue;
            }
            if !data.batches.is_empty() {
                tracing::debug!(topic = %data.topic, partition = data.partition, bytes = data.batches.len(), "follower received");
                let key = (data.topic.clone(), data.partition);
                // Below the disk reserve as on a full disk: the room left is the metadata's.
                let appended = match disk_reserve.take(data.batches.len() as u64) {
                    Ok(()) => append(partition, data.batches).await,
                    Err(err) => Err(err),
                };
                match appended {
                    Ok(()) => cannot_append.remove(&key),
                    Err(err) => {
                        match CannotWrite::of(&err) {
                            Some(CannotWrite::DiskFull) => {
                                // Nor can the rest of this answer be: all of it is reported at once.
                                cannot_append.insert(key);
                                let rest = partitions.filter(|rest| !rest.batches.is_empty());
                                cannot_append.extend(rest.map(|rest| (rest.topic, rest.partition)));
                            }
                            // This partition's log alone takes no appends until the node restarts: the next fetch
                            // tells the leader (which takes this node out of its ISR), and then the stream follows
                            // the leader's other partitions without it rather than failing them all with it.
                            Some(CannotWrite::FsyncFailed) => {
                                tracing::warn!(topic = %data.topic, partition = data.partition, error = %err, "this replica takes no appends until the node restarts; following the leader's other partitions without it");
                                cannot_append.insert(key.clone());
                                leaving.push(key);
                                continue;
                            }
                            // What the leader sent does not continue this log (a divergence the truncation did not
                            // see, or damaged bytes): set aside to be truncated to the leader again, while the
                            // others stream.
                            None if matches!(err, BrokerError::Storage(StorageError::Corrupt { .. })) => {
                                tracing::warn!(topic = %data.topic, partition = data.partition, error = %err, "the leader's batches do not continue this replica; truncating it to the leader again shortly");
                                diverged.push(key);
                                continue;
                            }
                            None => {}
                        }
                        return Err(err);
                    }
                };
                *has_appended = true;
                tracing::debug!(topic = %data.topic, partition = data.partition, log_end = partition.log().log_end_offset(), "follower appended");
            }
            // Holding all the leader has, it has nothing it could fail to append: it may rejoin the ISR. A flag
            // kept until its next append would keep a caught-up replica out for as long as nobody produces (one
            // that started over at the leader's log start, say, or one whose batches came before its disk filled).
            if partition.log().log_end_offset() >= data.log_end_offset {
                cannot_append.remove(&(data.topic.clone(), data.partition));
            }
            follow_high_watermark(partition.log(), data.high_watermark);
            // After the high watermark: the start goes up to it, so as far as the leader's when caught up.
            if data.log_start_offset > partition.log().log_start_offset() {
                follow_log_start(partition, data.log_start_offset).await?;
            }
            partition.publish_offsets();
        }
        for key in diverged.drain(..) {
            if let Some(at) = followed.iter().position(|(a, _)| a.topic == key.0 && a.partition == key.1) {
                set_aside.push(followed.remove(at));
            }
        }
        if !set_aside.is_empty() && Instant::now() >= retry_at {
            // On a link of its own: the stream's may be spoken for (the simulation's is).
            let mut link = replication.leader_links.connect(address).await?;
            let (ready, still_refused) = truncate_all(link.as_mut(), std::mem::take(&mut set_aside)).await?;
            followed.extend(ready);
            set_aside = still_refused;
            retry_at = Instant::now() + SET_ASIDE_RETRY;
        }
        requests.send(fetch(&followed, cannot_append)).await.map_err(|e| unavailable("replication stream", e))?;
        if !leaving.is_empty() {
            // Their last fetch said they cannot append; the leader has no reason to send them more.
            followed
                .retain(|(a, _)| !leaving.iter().any(|key: &PartitionKey| key.0 == a.topic && key.1 == a.partition));
            leaving.clear();
            if followed.is_empty() && set_aside.is_empty() {
                return Err(unavailable("replication stream", "no partition followed there can take appends"));
            }
        }
    }
    Ok(())
}

/// One partition followed from the leader, with its local replica.
type Followed = (Assignment, Arc<Partition>);

/// Truncates each partition to the leader (KIP-279) and splits them: those ready to fetch, and those whose
/// truncation the leader refused. A replica whose log takes no changes until the node restarts (a failed fsync)
/// is in neither: it is not followed, and the others are. A failed link, or any other failure, fails the whole
/// call.
async fn truncate_all(
    leader: &mut dyn LeaderLink,
    partitions: Vec<Followed>,
) -> Result<(Vec<Followed>, Vec<Followed>)> {
    let (mut ready, mut refused) = (Vec::with_capacity(partitions.len()), Vec::new());
    for (assignment, partition) in partitions {
        match truncate_to_leader(leader, &assignment, &partition).await {
            Ok(()) => ready.push((assignment, partition)),
            Err(Truncation::Refused(why)) => {
                tracing::debug!(topic = %assignment.topic, partition = assignment.partition, error = %why, "leader refused the epoch end; following its other partitions meanwhile");
                refused.push((assignment, partition));
            }
            Err(Truncation::Failed(err)) if CannotWrite::of(&err) == Some(CannotWrite::FsyncFailed) => {
                tracing::warn!(topic = %assignment.topic, partition = assignment.partition, error = %err, "this replica takes no changes until the node restarts; following the leader's other partitions without it");
            }
            Err(Truncation::Failed(err)) => return Err(err),
        }
    }
    Ok((ready, refused))
}

/// Every partition followed from this leader was refused: the stream fails, and the run loop retries it.
fn refused_all(set_aside: &[Followed]) -> BrokerError {
    let names: Vec<String> = set_aside.iter().map(|(a, _)| format!("{}-{}", a.topic, a.partition)).collect();
    unavailable("epoch end", format!("the leader refused every partition followed there: {}", names.join(", ")))
}

/// Appends what the leader sent, on the blocking pool. Not inline on this thread even when small, as the leader's
/// writer does: measured on a busy disk, a direct write here stalled the fetcher's runtime thread for milliseconds
/// and the replication round's p99 grew (docs/benchmarks.md, "The acks-all path profiled").
async fn append(partition: &Partition, batches: bytes::Bytes) -> Result<()> {
    let log = Arc::clone(partition.log());
    tokio::task::spawn_blocking(move || {
        log.append_replica(batches)?;
        if log.syncs_every_append() {
            log.flush()?;
        }
        Ok::<_, rill_storage::StorageError>(())
    })
    .await
    .map_err(BrokerError::join)??;
    Ok(())
}

/// Moves this replica's log start to the leader's (records deleted there go here too), as far as its high
/// watermark, on the blocking pool: the new start is fsynced before it is published (`log_start.rs`).
async fn follow_log_start(partition: &Partition, leader_log_start_offset: i64) -> Result<()> {
    let log = Arc::clone(partition.log());
    let moved = tokio::task::spawn_blocking(move || log.follow_log_start_offset(leader_log_start_offset))
        .await
        .map_err(BrokerError::join)??;
    tracing::debug!(topic = %partition.topic, partition = partition.index, leader_log_start_offset, log_start_offset = moved, "follower moved its log start");
    Ok(())
}

/// The leader deleted the records this replica would fetch next (DeleteRecords or retention while it was away):
/// its log starts over, empty, at the leader's log start (Kafka's `truncateFullyAndStartAt`), on the blocking pool
/// (segments are deleted and checkpoints fsynced), and the next fetch asks from there. Only when the whole log is
/// below that start: a log that reaches it already fetches from its end, which the leader holds.
async fn start_over(partition: &Partition, leader_log_start_offset: i64) -> Result<()> {
    let log = Arc::clone(partition.log());
    let from = log.log_end_offset();
    if from >= leader_log_start_offset {
        return Ok(());
    }
    tracing::info!(
        topic = %partition.topic,
        partition = partition.index,
        from,
        to = leader_log_start_offset,
        "follower log ends below the leader's log start; starting it over, empty, at the leader's start"
    );
    tokio::task::spawn_blocking(move || log.truncate_fully_and_start_at(leader_log_start_offset))
        .await
        .map_err(BrokerError::join)??;
    partition.publish_offsets();
    Ok(())
}

/// Takes the leader's high watermark, but never moves back on its word. A leader's high watermark can lag
/// what this follower already knew committed: a leader restarted at the same epoch starts from its log start
/// until its followers fetch again, and a new leader learns the old one's high watermark a fetch late. What
/// was committed stays committed (every in-sync replica holds it), so the lower figure is only older news; had
/// this follower taken it, a consumer of this replica, once it leads, would find offsets it had read out of
/// range. Only a truncation lowers it (storage's `truncate_to` clamps it to the new log end).
fn follow_high_watermark(log: &rill_storage::Log, leader_high_watermark: i64) {
    log.set_high_watermark(leader_high_watermark.max(log.high_watermark()));
}

/// Why a partition could not be truncated to its leader.
enum Truncation {
    /// The leader answered, refusing this partition.
    Refused(String),
    /// The link or the local log failed.
    Failed(BrokerError),
}

impl<E: Into<BrokerError>> From<E> for Truncation {
    fn from(err: E) -> Self {
        Truncation::Failed(err.into())
    }
}

/// KIP-279: asks the leader where this log's last epoch ends there, and drops whatever this log holds past it.
async fn truncate_to_leader(
    leader: &mut dyn LeaderLink,
    assignment: &Assignment,
    partition: &Partition,
) -> Result<(), Truncation> {
    let log = Arc::clone(partition.log());
    let Some((last_epoch, _)) = log.epoch_end_offset(i32::MAX) else { return Ok(()) };
    let request = EpochEndRequest {
        topic: assignment.topic.clone(),
        partition: assignment.partition,
        leader_epoch: u32::try_from(last_epoch).unwrap_or(0),
    };
    let reply = match leader.epoch_end(request).await {
        Ok(reply) => reply,
        Err(EpochEndFailure::Refused(why)) => return Err(Truncation::Refused(why)),
        Err(EpochEndFailure::Link(err)) => return Err(Truncation::Failed(err)),
    };
    let target = if reply.end_offset < 0 {
        // The leader holds no epoch this old: keep only what this node knew committed.
        log.high_watermark()
    } else {
        // The leader's epoch may be older than ours: its end there, and ours, bound the common prefix.
        let own_end = log.epoch_end_offset(reply.leader_epoch).map_or(log.log_end_offset(), |(_, end)| end);
        reply.end_offset.min(own_end)
    };
    // Never below this log's start: what lies below it is gone here already (a log started over at its leader's
    // start holds no epoch history before it, and the leader may name an older epoch's end). A log that
    // diverges from there on empties at its start, and the leader's answer says where to go next.
    let target = target.max(log.log_start_offset());
    if target < log.log_end_offset() {
        tracing::info!(topic = %assignment.topic, partition = assignment.partition, last_epoch, target, log_end = log.log_end_offset(), "truncating a divergent tail before following the new leader");
        tokio::task::spawn_blocking(move || log.truncate_to(target)).await.map_err(BrokerError::join)??;
        partition.publish_offsets();
    } else if reply.leader_epoch < last_epoch && target == log.log_end_offset() {
        // This node began an epoch the leader never had (it led, and lost the leadership before appending):
        // nothing to drop but that epoch, which would make the leader's older batches look stale here.
        tokio::task::spawn_blocking(move || log.truncate_to(target)).await.map_err(BrokerError::join)??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_within_milliseconds_double_to_a_second_and_start_over_after_a_healthy_stream() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..10).map(|_| backoff.next_wait().as_millis() as u64).collect();
        // The first retry comes soon enough for a leader that was still taking the partition over.
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), RETRY_MIN);
        assert_eq!(backoff.next_wait(), 2 * RETRY_MIN);
    }

    fn log_of(records: usize) -> (tempfile::TempDir, rill_storage::Log) {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = rill_storage::Log::open(dir.path(), rill_storage::LogConfig::default()).expect("new log");
        for sequence in 0..records {
            let record = rill_protocol::v1::Record { value: Some(vec![sequence as u8].into()), ..Default::default() };
            let batch = crate::codec::encode_records(&[record], 1, 1 << 20).expect("one small record");
            log.append(&batch).expect("append");
        }
        log.hold_high_watermark(log.log_start_offset());
        (dir, log)
    }

    /// A leader that refuses the epoch end of the partitions named, and whose other answers end every log
    /// at offset 2 of epoch 0, or whose link is down.
    struct RefusingLeader {
        refused: Vec<u32>,
        is_down: bool,
    }

    impl LeaderLink for RefusingLeader {
        fn epoch_end(
            &mut self,
            request: EpochEndRequest,
        ) -> super::super::links::BoxFuture<'_, Result<rill_protocol::internal::EpochEndReply, EpochEndFailure>>
        {
            Box::pin(async move {
                if self.is_down {
                    return Err(EpochEndFailure::Link(unavailable("epoch end", "connection refused")));
                }
                if self.refused.contains(&request.partition) {
                    return Err(EpochEndFailure::Refused("not ready yet".into()));
                }
                Ok(rill_protocol::internal::EpochEndReply { end_offset: 2, leader_epoch: 0 })
            })
        }

        fn replicate(
            &mut self,
            _fetches: mpsc::Receiver<ReplicaFetch>,
        ) -> super::super::links::BoxFuture<'_, Result<super::super::links::ReplicaAnswers>> {
            Box::pin(async { Err(unavailable("replicate", "not in this test")) })
        }
    }

    fn followed(index: u32, log: rill_storage::Log) -> Followed {
        let topic = rill_storage::TopicName::new("orders").expect("a valid name");
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let assignment = Assignment { topic: "orders".into(), partition: index, epoch: 1 };
        (assignment, Partition::start(topic, index, log, 4, slots, None))
    }

    #[tokio::test]
    async fn a_partition_the_leader_refuses_is_set_aside_and_the_others_are_truncated_and_followed() {
        let (_d0, log0) = log_of(5);
        let (_d1, log1) = log_of(5);
        let (_d2, log2) = log_of(5);
        let partitions = vec![followed(0, log0), followed(1, log1), followed(2, log2)];
        let mut leader = RefusingLeader { refused: vec![1], is_down: false };
        let (ready, refused) = truncate_all(&mut leader, partitions).await.unwrap_or_else(|_| panic!("the link works"));
        let indexes = |followed: &[Followed]| followed.iter().map(|(a, _)| a.partition).collect::<Vec<_>>();
        assert_eq!((indexes(&ready), indexes(&refused)), (vec![0, 2], vec![1]));
        // Truncated where the leader's epoch ends; the refused one is left as it was.
        let ends: Vec<i64> =
            [&ready[0], &refused[0], &ready[1]].iter().map(|(_, p)| p.log().log_end_offset()).collect();
        assert_eq!(ends, [2, 5, 2]);
        // A replica whose log failed an fsync cannot be truncated: left out, and the others go on.
        let (_d4, log4) = log_of(5);
        log4.fail_fsyncs("Input/output error (os error 5), injected by the test");
        let (_d5, log5) = log_of(5);
        let mut leader = RefusingLeader { refused: vec![], is_down: false };
        let (ready_too, refused_too) = truncate_all(&mut leader, vec![followed(4, log4), followed(5, log5)])
            .await
            .unwrap_or_else(|_| panic!("one failed log does not fail the call"));
        assert_eq!((indexes(&ready_too), indexes(&refused_too)), (vec![5], vec![]));
        // Every partition refused: nothing to stream, and the error names them.
        let message = refused_all(&refused).to_string();
        assert!(message.contains("orders-1"), "{message}");
        // A link that fails fails them all: the stream reconnects rather than follow none.
        let (_d3, log3) = log_of(5);
        let mut down = RefusingLeader { refused: vec![], is_down: true };
        assert!(truncate_all(&mut down, vec![followed(3, log3)]).await.is_err());
    }

    #[test]
    fn a_follower_high_watermark_does_not_move_back_when_the_leader_reports_less() {
        let (_dir, log) = log_of(5);
        follow_high_watermark(&log, 4);
        assert_eq!(log.high_watermark(), 4);
        // A leader restarted at the same epoch, or newly elected, may report less than was committed.
        follow_high_watermark(&log, 0);
        assert_eq!(log.high_watermark(), 4);
        follow_high_watermark(&log, 9);
        assert_eq!(log.high_watermark(), 5, "never past this replica's log end");
    }

    #[test]
    fn a_truncated_follower_high_watermark_follows_the_leader_from_its_new_log_end() {
        let (_dir, log) = log_of(5);
        follow_high_watermark(&log, 5);
        log.truncate_to(2).expect("truncate");
        assert_eq!(log.high_watermark(), 2);
        follow_high_watermark(&log, 1);
        assert_eq!(log.high_watermark(), 2);
    }
}
