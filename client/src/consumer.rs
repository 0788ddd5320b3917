//! The consumer: reads assigned partitions from positions it keeps, with the next fetch of each partition
//! already in flight while the application handles the records it has.
//!
//! Each assigned partition has a cursor with two positions: `fetch_position`, where its next fetch starts, and
//! `position`, the offset after the last record handed to the application. Commits store `position`, so a
//! record fetched but not yet handed out is never committed (at-least-once). Fetches are spawned tasks
//! (long-polls with `fetch_max_wait`), one per partition at a time: memory stays bounded by
//! `partitions × fetch_max_bytes` plus the records not yet handed out. A seek bumps the cursor's epoch, so the
//! answer of a fetch started before it is recognised and dropped.
//!
//! Partitions are assigned explicitly ([`Consumer::assign`]), or by the broker to the members of a consumer
//! group ([`Consumer::subscribe`], in `consumer/group.rs`): then every `poll` first applies the group's latest
//! assignment.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::Stream;
use rill_protocol::v1::{FetchRequest, FetchResponse, RecordFormat};
use tokio::task::{AbortHandle, JoinSet};

use crate::admin::{committed_offsets, list_offsets, OffsetSpec};
use crate::connection::{call, Client};
use crate::decode::{decode_batches, DecodeLimits};
use crate::error::{Error, RequestContext, Result};
use crate::membership::{GroupAssignor, Membership};
use crate::partition_wait::PartitionWait;
use crate::record::ConsumedRecord;
use crate::records_call;
use crate::subscription::Subscription;

mod group;
mod tail;

pub use group::RebalanceEvent;
use group::{AppliedAssignment, RebalanceListener};

/// Where to start reading a partition that has no committed offset, or whose position fell out of the log
/// (retention deleted it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The oldest record still in the log.
    #[default]
    Earliest,
    /// Only records appended from now on.
    Latest,
}

/// Which records of partitions written by Kafka transactional producers a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Every record, those of aborted and open transactions included (Kafka's `read_uncommitted`).
    #[default]
    ReadUncommitted,
    /// Records of committed transactions and outside any, up to the last stable offset: nothing of a transaction
    /// still open, nothing of an aborted one (the broker leaves those out). Kafka's `read_committed`.
    ReadCommitted,
}

impl Isolation {
    fn wire(self) -> i32 {
        match self {
            Isolation::ReadUncommitted => rill_protocol::v1::Isolation::ReadUncommitted as i32,
            Isolation::ReadCommitted => rill_protocol::v1::Isolation::ReadCommitted as i32,
        }
    }
}

/// Where [`Consumer::seek`] moves a partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    Offset(i64),
    Beginning,
    End,
    /// The first record whose timestamp is at or after this (ms since the Unix epoch); the end if none is.
    Timestamp(i64),
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group whose committed offsets this consumer resumes from and commits to. `None`: no commits.
    pub group_id: Option<String>,
    pub offset_reset: OffsetReset,
    /// Commit positions this often, at the start of a `poll` (so only records handed out by earlier calls are
    /// committed). `None`: only [`Consumer::commit`] commits. Needs `group_id`.
    pub auto_commit_interval: Option<Duration>,
    /// Upper bound on one fetch's bytes (at least one whole batch is returned even if larger).
    pub fetch_max_bytes: u32,
    /// A fetch waits for this many bytes, up to `fetch_max_wait`.
    pub fetch_min_bytes: u32,
    /// Longest long-poll of one fetch.
    pub fetch_max_wait: Duration,
    /// Check each fetched batch's CRC before decoding it.
    pub check_crcs: bool,
    /// Largest size a compressed batch may decompress to.
    pub max_decompressed_bytes: usize,
    /// Wait before fetching again after a failed fetch, and before rejoining a group after losing membership.
    pub retry_backoff: Duration,
    /// A subscribed consumer that sends nothing to the broker for this long is removed from its group (its
    /// partitions go to the others). Heartbeats go out at a third of it, from a background task, so a slow
    /// `poll` loop does not count; a hung process or a broken network does.
    pub session_timeout: Duration,
    /// The assignor a subscribed consumer asks for (the group's members must agree).
    pub group_assignor: GroupAssignor,
    /// Names this consumer in the group's description; prefixes its member id.
    pub client_id: String,
    /// A partition read up to its high watermark switches from `Fetch` to a `Subscribe` stream, on which the
    /// broker pushes each new batch as it is appended (no fetch has to reach the broker first). Catching up
    /// and replays keep `Fetch`. Only with `fetch_min_bytes` 1 (a push does not wait to fill). A broker that
    /// has no `Subscribe` gets fetches. On by default (docs/benchmarks.md, "Even pacing").
    pub subscribes_at_tail: bool,
    /// Which records of transactional producers' partitions to read; all of them by default.
    pub isolation: Isolation,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: None,
            offset_reset: OffsetReset::Earliest,
            auto_commit_interval: None,
            fetch_max_bytes: 4 << 20,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            check_crcs: true,
            max_decompressed_bytes: 64 << 20,
            retry_backoff: Duration::from_millis(100),
            session_timeout: Duration::from_secs(10),
            group_assignor: GroupAssignor::Sticky,
            client_id: "rill-consumer".into(),
            subscribes_at_tail: true,
            isolation: Isolation::ReadUncommitted,
        }
    }
}

type Key = (Arc<str>, u32);

struct Cursor {
    /// Offset after the last record handed to the application, or past the offsets after it that hold no record
    /// for it (transaction markers, an aborted transaction's batches left out by the broker): what `commit` stores.
    position: i64,
    /// Offset after the last record decoded into `ready` for this partition: once `position` reaches it, every
    /// record decoded was handed out.
    decoded_end: i64,
    /// Where the fetches decoded so far end (their `next_offset`): `position` moves there once it reaches
    /// `decoded_end`, as a Kafka consumer's position moves past control records.
    fetched_end: i64,
    /// Where the fetch in flight (or the next one) starts.
    fetch_position: i64,
    /// Changed by every seek (and re-assignment); a fetch answer with another epoch is dropped. Drawn from the
    /// consumer's counter, so a partition unassigned and assigned again never reuses an epoch.
    epoch: u64,
    fetch: Option<AbortHandle>,
    /// The partition's wait through passing refusals of its fetches (`partition_wait.rs`); reset by an answer.
    wait: PartitionWait,
    /// The last fetch read up to the high watermark, or the partition is subscribed: its next read is a push.
    is_at_tail: bool,
    /// The partition's open `Subscribe` stream while no task is reading it (between two pushes).
    subscription: Option<Subscription>,
    /// The last read was a push.
    was_pushed: bool,
}

impl Cursor {
    /// Records handed out up to `end`.
    fn advance_to(&mut self, end: i64) {
        self.position = self.position.max(end);
        if self.position >= self.decoded_end {
            self.position = self.position.max(self.fetched_end);
        }
    }

    /// A fetch answer decoded: its last record ends at `last_decoded` (`None`: it held none), and the partition's
    /// next read starts at `next`.
    fn decoded(&mut self, last_decoded: Option<i64>, next: i64) {
        if let Some(end) = last_decoded {
            self.decoded_end = self.decoded_end.max(end);
        }
        self.fetched_end = self.fetched_end.max(next);
        self.advance_to(self.position);
    }
}

/// A fetched batch that did not decode, waiting to be reported.
struct Undecodable {
    key: Key,
    /// The cursor's epoch then: a seek or re-assignment since makes the report moot.
    epoch: u64,
    /// Where the partition fetches again once it is reported (the bad batch, unless the application seeks).
    offset: i64,
    error: Error,
}

struct FetchDone {
    key: Key,
    epoch: u64,
    offset: i64,
    outcome: FetchOutcome,
}

enum FetchOutcome {
    Fetched(FetchResponse),
    /// A push on the partition's subscription, which goes on.
    Pushed(FetchResponse, Subscription),
    /// The fetch offset was out of range; `offset_reset` says to continue here.
    Reset(i64),
    Failed(Error),
}

/// Reads records from assigned partitions. Not `Clone`: one consumer is one reader with one set of positions.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// foldhash, not SipHash: looked up for every fetch answer and every run of handed-out records.
    cursors: HashMap<Key, Cursor, foldhash::fast::RandomState>,
    fetches: JoinSet<FetchDone>,
    /// Records fetched and decoded but not yet handed out, in fetch order.
    ready: VecDeque<ConsumedRecord>,
    /// Batches that could not be decoded, reported by `poll` once the records before them are handed out. Their
    /// partitions fetch nothing until then.
    undecodable: VecDeque<Undecodable>,
    last_commit: Instant,
    next_epoch: u64,
    /// Set by `subscribe`: the group membership whose assignments drive the cursors.
    membership: Option<Membership>,
    group_applied: AppliedAssignment,
    rebalance_listener: Option<RebalanceListener>,
    /// A broker answered `Subscribe` with UNIMPLEMENTED (an older node): this consumer fetches from then on.
    subscribe_is_unsupported: Arc<AtomicBool>,
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Result<Self> {
        if config.auto_commit_interval.is_some() && config.group_id.is_none() {
            return Err(Error::NoGroup);
        }
        if config.fetch_max_bytes == 0 {
            return Err(Error::InvalidUse { message: "fetch_max_bytes must be at least 1".into() });
        }
        Ok(Self {
            client,
            config,
            cursors: HashMap::default(),
            fetches: JoinSet::new(),
            ready: VecDeque::new(),
            undecodable: VecDeque::new(),
            last_commit: Instant::now(),
            next_epoch: 0,
            membership: None,
            group_applied: AppliedAssignment::default(),
            rebalance_listener: None,
            subscribe_is_unsupported: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Starts reading `partitions` of `topic` (all of them if empty): from the group's committed offsets when a
    /// `group_id` is set and has one, else from `offset_reset`. Already assigned partitions keep their position.
    /// Refused while subscribed to a group (the broker assigns then).
    pub async fn assign(&mut self, topic: &str, partitions: &[u32]) -> Result<()> {
        if let Some(membership) = &self.membership {
            return Err(Error::InvalidUse {
                message: format!("subscribed to group {:?}: the broker assigns partitions", membership.group),
            });
        }
        self.add_partitions(topic, partitions).await
    }

    async fn add_partitions(&mut self, topic: &str, partitions: &[u32]) -> Result<()> {
        let timeout = self.client.config().request_timeout;
        let partitions = if partitions.is_empty() {
            let offsets = list_offsets(&self.client, topic, &[], OffsetSpec::Earliest, timeout).await?;
            offsets.iter().map(|o| o.partition).collect()
        } else {
            partitions.to_vec()
        };
        let topic_name = self.topic_name(topic);
        let new: Vec<u32> =
            partitions.into_iter().filter(|p| !self.cursors.contains_key(&(Arc::clone(&topic_name), *p))).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut starts = vec![None; new.len()];
        if let Some(group) = &self.config.group_id {
            let wanted: Vec<(&str, u32)> = new.iter().map(|&p| (topic, p)).collect();
            for committed in committed_offsets(&self.client, group, &wanted, timeout).await? {
                if let Some(i) = new.iter().position(|&p| p == committed.partition && committed.topic == topic) {
                    starts[i] = (committed.offset >= 0).then_some(committed.offset);
                }
            }
        }
        let missing: Vec<u32> = new.iter().zip(&starts).filter(|(_, s)| s.is_none()).map(|(p, _)| *p).collect();
        if !missing.is_empty() {
            let spec = reset_spec(self.config.offset_reset);
            for offset in list_offsets(&self.client, topic, &missing, spec, timeout).await? {
                if let Some(i) = new.iter().position(|&p| p == offset.partition) {
                    starts[i] = Some(offset.offset);
                }
            }
        }
        for (partition, start) in new.into_iter().zip(starts) {
            let start = start.ok_or_else(|| Error::UnknownPartition { topic: topic.to_owned(), partition })?;
            let key = (Arc::clone(&topic_name), partition);
            let epoch = self.new_epoch();
            let cursor = Cursor {
                position: start,
                decoded_end: start,
                fetched_end: start,
                fetch_position: start,
                epoch,
                fetch: None,
                wait: PartitionWait::default(),
                is_at_tail: false,
                subscription: None,
                was_pushed: false,
            };
            self.cursors.insert(key.clone(), cursor);
            self.start_fetch(&key, Duration::ZERO);
        }
        Ok(())
    }

    /// Stops reading `partitions` of `topic`; records of theirs not yet handed out are dropped. Ignored (and
    /// logged) while subscribed to a group: the broker decides then.
    pub fn unassign(&mut self, topic: &str, partitions: &[u32]) {
        if self.membership.is_some() {
            tracing::warn!(topic, "unassign ignored: a subscribed consumer's partitions are assigned by its group");
            return;
        }
        for &partition in partitions {
            self.unassign_one(topic, partition);
        }
    }

    fn unassign_one(&mut self, topic: &str, partition: u32) {
        let key: Key = (Arc::from(topic), partition);
        if let Some(cursor) = self.cursors.remove(&key) {
            if let Some(fetch) = cursor.fetch {
                fetch.abort();
            }
        }
        self.ready.retain(|r| !(&*r.topic == topic && r.partition == partition));
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        let mut assigned: Vec<(String, u32)> = self.cursors.keys().map(|(t, p)| (t.to_string(), *p)).collect();
        assigned.sort();
        assigned
    }

    /// How many assigned partitions have a fetch on its way (all of them, normally: each partition's next fetch is
    /// started before the records of its last one are handed out).
    pub fn fetches_in_flight(&self) -> usize {
        self.cursors.values().filter(|c| c.fetch.is_some()).count()
    }

    /// How many assigned partitions read at the tail by subscription: their last records were pushed by the
    /// broker rather than fetched ([`ConsumerConfig::subscribes_at_tail`]).
    pub fn subscribed_partitions(&self) -> usize {
        self.cursors.values().filter(|c| c.was_pushed).count()
    }

    /// The offset of the next record `poll` will hand out for this partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<i64> {
        self.cursors.get(&(Arc::from(topic), partition)).map(|c| c.position)
    }

    /// Moves an assigned partition's position. The fetch in flight for it is abandoned and records of it not
    /// yet handed out are dropped.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<i64> {
        let key: Key = (self.topic_name(topic), partition);
        if !self.cursors.contains_key(&key) {
            return Err(Error::NotAssigned { what: format!("partition {partition} of topic {topic:?}") });
        }
        let timeout = self.client.config().request_timeout;
        let spec = match to {
            SeekTo::Offset(offset) => {
                self.move_to(&key, offset);
                return Ok(offset);
            }
            SeekTo::Beginning => OffsetSpec::Earliest,
            SeekTo::End => OffsetSpec::Latest,
            SeekTo::Timestamp(ms) => OffsetSpec::Timestamp(ms),
        };
        let offset = lookup_offset(&self.client, topic, partition, spec, timeout).await?;
        self.move_to(&key, offset);
        Ok(offset)
    }

    /// Waits for records and returns every record fetched so far (at least one). Returns at once with nothing
    /// when no partition is assigned by hand; a subscribed consumer waits for the group to assign it some.
    /// Cancel-safe: records are only taken once the call completes.
    ///
    /// A batch that cannot be decoded (damaged, or compressed with bytes that do not decompress) never hides the
    /// records before it: they are returned first, and the next call returns the error, `Error::Corrupt` or
    /// `Error::Decompress`, naming the partition and offset. To skip the batch, `seek` the partition to the
    /// offset [`Error::undecodable_batch`] gives; otherwise the partition fetches it again and the error comes
    /// back.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        if !self.ready_records().await? {
            return Ok(Vec::new());
        }
        // Moves the queue's buffer out whole (a VecDeque that has not wrapped becomes a Vec without moving a record).
        let records = Vec::from(std::mem::take(&mut self.ready));
        self.handed_out_all(&records);
        Ok(records)
    }

    /// [`Consumer::poll`] handing out records only while their keys, values and headers add up to at most
    /// `max_bytes` (always at least one record). The others stay for the next call, their positions not moved,
    /// so a commit does not cover them: what a caller that forwards records in bounded answers (the HTTP proxy's
    /// `max_bytes`) needs to commit only what it forwarded.
    pub async fn poll_max_bytes(&mut self, max_bytes: usize) -> Result<Vec<ConsumedRecord>> {
        if !self.ready_records().await? {
            return Ok(Vec::new());
        }
        let mut taken_bytes = 0usize;
        let mut count = 0usize;
        for record in &self.ready {
            let size = record.payload_bytes();
            if count > 0 && taken_bytes.saturating_add(size) > max_bytes {
                break;
            }
            taken_bytes = taken_bytes.saturating_add(size);
            count += 1;
        }
        let records: Vec<ConsumedRecord> = self.ready.drain(..count).collect();
        self.handed_out_all(&records);
        Ok(records)
    }

    /// The next record; `None` when no partition is assigned.
    pub async fn next_record(&mut self) -> Option<Result<ConsumedRecord>> {
        match self.ready_records().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(err) => return Some(Err(err)),
        }
        let record = self.ready.pop_front()?;
        self.handed_out(&record);
        Some(Ok(record))
    }

    /// The records as a stream (of [`Consumer::next_record`]); it ends when no partition is assigned.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumedRecord>> + '_ {
        futures_util::stream::unfold(self, |consumer| async move {
            let next = consumer.next_record().await?;
            Some((next, consumer))
        })
    }

    /// Stores the position of every assigned partition as the group's committed offset. A subscribed consumer
    /// commits as its group member; the broker refuses (`Error::GroupRefused`) a member it has removed.
    pub async fn commit(&mut self) -> Result<()> {
        self.config.group_id.as_deref().ok_or(Error::NoGroup)?;
        let keys: Vec<Key> = self.cursors.keys().cloned().collect();
        self.commit_keys(&keys).await?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Stores these offsets (topic, partition, the offset of the next record to read) as the group's committed
    /// offsets, as [`Consumer::commit`] does (as the group's member when subscribed), whatever the positions.
    pub async fn commit_offsets(&mut self, offsets: &[(&str, u32, i64)]) -> Result<()> {
        let group = self.config.group_id.as_deref().ok_or(Error::NoGroup)?;
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = self.commit_identity();
        let timeout = self.client.config().request_timeout;
        crate::admin::commit_offsets(&self.client, group, &member_id, generation, offsets.iter().copied(), timeout)
            .await
    }

    /// Applies the group's latest assignment (when subscribed), auto-commits if due, then waits until records
    /// are ready. `false` if nothing is assigned by hand. A subscribed consumer also wakes up for a new
    /// assignment, so a revocation never waits for a long-poll to end.
    async fn ready_records(&mut self) -> Result<bool> {
        loop {
            self.apply_assignment().await?;
            self.maybe_auto_commit().await;
            let Some(mut updates) = self.membership.as_ref().map(|m| m.state.clone()) else {
                return self.fill().await;
            };
            if !self.ready.is_empty() {
                return Ok(true);
            }
            let has_partitions = !self.cursors.is_empty();
            tokio::select! {
                filled = self.fill(), if has_partitions => {
                    if filled? {
                        return Ok(true);
                    }
                }
                changed = Self::wait_for_assignment_change(&mut updates) => changed?,
            }
        }
    }

    async fn maybe_auto_commit(&mut self) {
        let Some(interval) = self.config.auto_commit_interval else { return };
        if self.last_commit.elapsed() < interval {
            return;
        }
        if let Err(err) = self.commit().await {
            // The next interval tries again; the records stay uncommitted, which at-least-once allows.
            tracing::warn!(error = %err, "auto-commit failed");
            self.last_commit = Instant::now();
        }
    }

    fn handed_out(&mut self, record: &ConsumedRecord) {
        self.advance(&record.topic, record.partition, record.offset + 1);
    }

    /// [`Self::handed_out`] for many records: one cursor lookup per run of records from one partition (they
    /// arrive grouped by fetch), not one per record, which was a hash of the topic name per record.
    fn handed_out_all(&mut self, records: &[ConsumedRecord]) {
        let mut run: Option<(&Arc<str>, u32, i64)> = None;
        for record in records {
            match &mut run {
                Some((topic, partition, end))
                    if Arc::ptr_eq(topic, &record.topic) && *partition == record.partition =>
                {
                    *end = (*end).max(record.offset + 1);
                }
                _ => {
                    if let Some((topic, partition, end)) = run.take() {
                        self.advance(topic, partition, end);
                    }
                    run = Some((&record.topic, record.partition, record.offset + 1));
                }
            }
        }
        if let Some((topic, partition, end)) = run {
            self.advance(topic, partition, end);
        }
    }

    fn advance(&mut self, topic: &Arc<str>, partition: u32, end: i64) {
        if let Some(cursor) = self.cursors.get_mut(&(Arc::clone(topic), partition)) {
            cursor.advance_to(end);
        }
    }

    /// Waits until `ready` holds records. `false` if nothing is assigned.
    async fn fill(&mut self) -> Result<bool> {
        while self.ready.is_empty() {
            if self.cursors.is_empty() {
                return Ok(false);
            }
            if let Some(err) = self.take_undecodable() {
                return Err(err);
            }
            let done = match self.fetches.join_next().await {
                Some(Ok(done)) => done,
                Some(Err(err)) if err.is_cancelled() => continue,
                Some(Err(err)) => {
                    return Err(Error::Broker { code: tonic::Code::Internal, message: format!("fetch task: {err}") })
                }
                None => {
                    // Every fetch ended without a successor (only after an error): start them again.
                    let keys: Vec<Key> = self.cursors.keys().cloned().collect();
                    for key in keys {
                        self.start_fetch(&key, self.config.retry_backoff);
                    }
                    continue;
                }
            };
            self.handle_fetch(done)?;
            // Take in every other answer that is already here, so one poll serves all partitions that have data.
            while let Some(joined) = self.fetches.try_join_next() {
                if let Ok(done) = joined {
                    self.handle_fetch(done)?;
                }
            }
        }
        Ok(true)
    }

    /// Applies one fetch task's outcome. Synchronous, so `poll` stays cancel-safe: an outcome taken from the
    /// join set is always applied, and the partition always gets its next fetch.
    fn handle_fetch(&mut self, done: FetchDone) -> Result<()> {
        let FetchDone { key, epoch, offset, outcome } = done;
        let Some(cursor) = self.cursors.get_mut(&key) else { return Ok(()) };
        if cursor.epoch != epoch || cursor.fetch_position != offset {
            return Ok(());
        }
        cursor.fetch = None;
        let response = match outcome {
            FetchOutcome::Fetched(response) => {
                cursor.wait = PartitionWait::default();
                cursor.is_at_tail = response.next_offset >= response.high_watermark;
                cursor.was_pushed = false;
                response
            }
            FetchOutcome::Pushed(response, subscription) => {
                cursor.wait = PartitionWait::default();
                cursor.subscription = Some(subscription);
                cursor.was_pushed = true;
                response
            }
            FetchOutcome::Reset(reset) => {
                tracing::info!(topic = %key.0, partition = key.1, offset, reset, "position out of range; reset");
                self.move_to(&key, reset);
                return Ok(());
            }
            FetchOutcome::Failed(err) => {
                cursor.was_pushed = false;
                // A partition between leaders, or just added and not yet known to the node asked, is waited for
                // (the fetch task refreshed the placement); one the metadata never lists is reported.
                let is_listed = self.client.is_listed(&key.0, key.1);
                let is_passing = cursor.wait.is_passing(&err, is_listed, Instant::now());
                self.start_fetch(&key, self.config.retry_backoff);
                if err.is_retriable() || is_passing {
                    tracing::debug!(topic = %key.0, partition = key.1, error = %err, "fetch failed; retrying");
                    return Ok(());
                }
                return Err(err);
            }
        };
        // Prefetch before decoding: the broker's next offset is known now, so the partition's next read travels
        // (or its subscription waits for the next push) while this answer is decoded and handed out.
        let prefetched = response.next_offset > offset;
        if prefetched {
            self.fetch_from(&key, response.next_offset, Duration::ZERO);
        }
        let limits = DecodeLimits {
            check_crcs: self.config.check_crcs,
            max_decompressed_bytes: self.config.max_decompressed_bytes,
        };
        let before = self.ready.len();
        let decoded = decode_batches(&key.0, key.1, offset, response.record_batches, limits, &mut self.ready);
        let next = match decoded {
            Ok(next) => {
                let next = next.max(response.next_offset);
                let last_decoded = self.ready.range(before..).next_back().map(|record| record.offset + 1);
                if let Some(cursor) = self.cursors.get_mut(&key) {
                    cursor.decoded(last_decoded, next);
                }
                next
            }
            Err(error) => {
                // The records before the bad batch are in `ready`; the error waits for them to be handed out,
                // and the partition (prefetch cancelled, subscription dropped) waits for the error to be reported.
                let bad_offset = error.undecodable_batch().map_or(offset, |(_, _, at, _)| at);
                if let Some(cursor) = self.cursors.get_mut(&key) {
                    cursor.fetch_position = bad_offset;
                    cursor.subscription = None;
                    if let Some(fetch) = cursor.fetch.take() {
                        fetch.abort();
                    }
                }
                self.undecodable.push_back(Undecodable { key, epoch, offset: bad_offset, error });
                return Ok(());
            }
        };
        if !prefetched || next != response.next_offset {
            self.fetch_from(&key, next, Duration::ZERO);
        }
        Ok(())
    }

    /// The first undecodable batch still relevant (its partition neither moved nor unassigned since), once no
    /// record is waiting to be handed out; its partition fetches again, from the bad batch.
    fn take_undecodable(&mut self) -> Option<Error> {
        while let Some(Undecodable { key, epoch, offset, error }) = self.undecodable.pop_front() {
            if self.cursors.get(&key).is_some_and(|cursor| cursor.epoch == epoch) {
                self.fetch_from(&key, offset, self.config.retry_backoff);
                return Some(error);
            }
        }
        None
    }

    /// Sets both positions of `key`, drops what was fetched from the old one, and fetches from the new one.
    fn move_to(&mut self, key: &Key, offset: i64) {
        let epoch = self.new_epoch();
        let Some(cursor) = self.cursors.get_mut(key) else { return };
        cursor.position = offset;
        cursor.decoded_end = offset;
        cursor.fetched_end = offset;
        cursor.fetch_position = offset;
        cursor.epoch = epoch;
        // Moved: the next read is a fetch, which tells whether the new position is at the tail.
        cursor.is_at_tail = false;
        cursor.subscription = None;
        cursor.was_pushed = false;
        if let Some(fetch) = cursor.fetch.take() {
            fetch.abort();
        }
        self.ready.retain(|r| !(r.topic == key.0 && r.partition == key.1));
        self.start_fetch(key, Duration::ZERO);
    }

    /// Moves the partition's fetch position to `offset` and starts its next fetch from there (replacing one in
    /// flight).
    fn fetch_from(&mut self, key: &Key, offset: i64, delay: Duration) {
        if let Some(cursor) = self.cursors.get_mut(key) {
            cursor.fetch_position = offset;
        }
        self.start_fetch(key, delay);
    }

    /// Starts the partition's next read: a push on its subscription when it is at the tail (opening one if
    /// need be), else a fetch.
    fn start_fetch(&mut self, key: &Key, delay: Duration) {
        let Some(cursor) = self.cursors.get_mut(key) else { return };
        if let Some(previous) = cursor.fetch.take() {
            previous.abort();
        }
        // A subscription goes on only from where its last push ended; anything else is a move.
        let subscription = cursor.subscription.take().filter(|open| open.next_offset() == cursor.fetch_position);
        let subscribes = subscription.is_some()
            || (self.config.subscribes_at_tail
                && self.config.fetch_min_bytes <= 1
                && cursor.is_at_tail
                && !self.subscribe_is_unsupported.load(Ordering::Relaxed));
        let tail = tail::TailRead {
            subscription,
            max_bytes: self.config.fetch_max_bytes,
            isolation: self.config.isolation.wire(),
            is_unsupported: Arc::clone(&self.subscribe_is_unsupported),
        };
        let client = self.client.clone();
        let message = FetchRequest {
            topic: key.0.to_string(),
            partition: key.1,
            offset: cursor.fetch_position,
            max_bytes: self.config.fetch_max_bytes,
            min_bytes: self.config.fetch_min_bytes,
            max_wait_ms: u32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(u32::MAX),
            format: RecordFormat::Raw as i32,
            current_leader_epoch: None,
            isolation: self.config.isolation.wire(),
        };
        let timeout = self.config.fetch_max_wait + client.config().request_timeout;
        let reset = reset_spec(self.config.offset_reset);
        let (key, epoch, offset) = (key.clone(), cursor.epoch, cursor.fetch_position);
        let handle = self.fetches.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let pushed = if subscribes { tail.next_push(&client, &key.0, key.1, offset).await } else { None };
            let read = match pushed {
                Some(pushed) => pushed.map(|(response, subscription)| FetchOutcome::Pushed(response, subscription)),
                None => {
                    let ctx = RequestContext::partition(&key.0, key.1);
                    let max_message_bytes = client.config().max_message_bytes;
                    let (channel, current_leader_epoch) = client.leader_for(&key.0, key.1).await;
                    let message = FetchRequest { current_leader_epoch, ..message };
                    let fetch = records_call::fetch(channel, &message, timeout, max_message_bytes);
                    call(timeout, ctx, fetch).await.map(FetchOutcome::Fetched)
                }
            };
            let outcome = match read {
                Ok(outcome) => outcome,
                // The position left the log (retention, or a seek past the end): look up where to go from here
                // in this task, so `poll` never awaits anything but the join set.
                Err(Error::OffsetOutOfRange { .. }) => {
                    let timeout = client.config().request_timeout;
                    match lookup_offset(&client, &key.0, key.1, reset, timeout).await {
                        Ok(reset) => FetchOutcome::Reset(reset),
                        Err(err) => FetchOutcome::Failed(err),
                    }
                }
                Err(err) => {
                    client.learn_from(&key.0, key.1, &err).await;
                    FetchOutcome::Failed(err)
                }
            };
            FetchDone { key, epoch, offset, outcome }
        });
        cursor.fetch = Some(handle);
    }

    fn new_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// The shared name of an assigned topic, so records and cursors of one topic share one allocation.
    fn topic_name(&self, topic: &str) -> Arc<str> {
        self.cursors.keys().find(|(t, _)| &**t == topic).map_or_else(|| Arc::from(topic), |(t, _)| Arc::clone(t))
    }
}

fn reset_spec(reset: OffsetReset) -> OffsetSpec {
    match reset {
        OffsetReset::Earliest => OffsetSpec::Earliest,
        OffsetReset::Latest => OffsetSpec::Latest,
    }
}

async fn lookup_offset(
    client: &Client,
    topic: &str,
    partition: u32,
    spec: OffsetSpec,
    timeout: Duration,
) -> Result<i64> {
    let offsets = list_offsets(client, topic, &[partition], spec, timeout).await?;
    offsets
        .iter()
        .find(|o| o.partition == partition)
        .map(|o| o.offset)
        .ok_or_else(|| Error::UnknownPartition { topic: topic.to_owned(), partition })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ClientConfig;

    fn cursor_at(offset: i64) -> Cursor {
        Cursor {
            position: offset,
            decoded_end: offset,
            fetched_end: offset,
            fetch_position: offset,
            epoch: 0,
            fetch: None,
            wait: PartitionWait::default(),
            is_at_tail: false,
            subscription: None,
            was_pushed: false,
        }
    }

    #[test]
    fn the_position_moves_past_offsets_without_records_once_the_records_before_them_are_handed_out() {
        // Records 10..=12, then a transaction marker at 13: the fetch ends at 14.
        let mut cursor = cursor_at(10);
        cursor.decoded(Some(13), 14);
        assert_eq!(cursor.position, 10, "nothing handed out yet");
        cursor.advance_to(12);
        assert_eq!(cursor.position, 12, "record 12 is still to come");
        cursor.advance_to(13);
        assert_eq!(cursor.position, 14, "past the marker, as a Kafka consumer's position");
        // A fetch of markers (or aborted batches the broker left out) only: nothing to wait for.
        cursor.decoded(None, 20);
        assert_eq!(cursor.position, 20);
        // A prefetched answer decoded before the records of the one before it are handed out.
        let mut cursor = cursor_at(0);
        cursor.decoded(Some(5), 5);
        cursor.decoded(Some(8), 9);
        cursor.advance_to(5);
        assert_eq!(cursor.position, 5, "records 5..8 are still to come");
        cursor.advance_to(8);
        assert_eq!(cursor.position, 9);
    }

    #[tokio::test]
    async fn auto_commit_without_a_group_is_refused() {
        let client = Client::connect_lazy("127.0.0.1:9", ClientConfig::default()).expect("valid address");
        let config = ConsumerConfig { auto_commit_interval: Some(Duration::from_secs(1)), ..ConsumerConfig::default() };
        assert!(matches!(Consumer::new(client.clone(), config), Err(Error::NoGroup)));
        let config = ConsumerConfig { fetch_max_bytes: 0, ..ConsumerConfig::default() };
        assert!(matches!(Consumer::new(client, config), Err(Error::InvalidUse { .. })));
    }

    #[tokio::test]
    async fn a_consumer_with_nothing_assigned_polls_nothing_at_once() {
        let client = Client::connect_lazy("127.0.0.1:9", ClientConfig::default()).expect("valid address");
        let mut consumer = Consumer::new(client, ConsumerConfig::default()).expect("valid config");
        assert!(consumer.poll().await.expect("nothing to fail").is_empty());
        assert!(consumer.next_record().await.is_none());
        assert!(consumer.assignment().is_empty());
        let err = consumer.seek("t", 0, SeekTo::Beginning).await.expect_err("not assigned");
        assert!(matches!(err, Error::NotAssigned { .. }));
    }
}
