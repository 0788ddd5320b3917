//! The leader's side of replication: one task per follower stream answers each `ReplicaFetch` with the
//! batches past the follower's log end, for every partition the stream carries. A fetch first records where
//! the follower's log ends (which may move the high watermark and the follower's ISR membership), then reads;
//! with nothing to send it waits, up to the follower's `max_wait_ms`, for an append on this node.
//!
//! A follower being added by a move and not yet in sync gets that partition's bytes through the stream's
//! [`TokenBucket`] when a replication throttle is set (`throttle.rs`); its other partitions go on at full speed.

use std::sync::Arc;
use std::time::Duration;

use rill_protocol::internal::{ReplicaData, ReplicaFetch, ReplicaPartitionData, ReplicaPosition};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::throttle::{self, TokenBucket};
use super::{lock, FollowerProgress, Replication};
use crate::cluster::metadata::NodeState;
use crate::partition::Partition;

pub type ReplicaDataStream = ReceiverStream<Result<ReplicaData, Status>>;

/// The longest a leader holds a fetch with nothing new; the follower's own wait is capped by it.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(1);
/// How long an answer that would carry only a moved high watermark waits for an append to carry it with: under
/// load the next append comes sooner and the follower makes no extra round trip for the high watermark alone;
/// on a quiet partition a follower (and a consumer reading from it) learns it this much later at most.
const HIGH_WATERMARK_LINGER: Duration = Duration::from_millis(1);
/// Bytes per partition per answer when the follower asks for none or for more.
const MAX_BYTES_PER_PARTITION: usize = 4 << 20;

impl Replication {
    /// Serves one follower's stream (tonic's, or the simulation's) until it ends.
    pub fn serve_follower<S>(self: &Arc<Self>, mut inbound: S) -> ReplicaDataStream
    where
        S: Stream<Item = Result<ReplicaFetch, Status>> + Send + Unpin + 'static,
    {
        // One answer in flight and one ready: the follower asks again only after it appended the last one.
        let (tx, rx) = mpsc::channel(2);
        let replication = Arc::clone(self);
        tokio::spawn(async move {
            // One bucket per stream, that is per pair of nodes: the throttle bounds what this leader sends this
            // follower over all the partitions it is being added to.
            let mut bucket: Option<TokenBucket> = None;
            loop {
                let fetch = match inbound.next().await {
                    Some(Ok(fetch)) => fetch,
                    None => return,
                    Some(Err(status)) => {
                        tracing::debug!(error = %status, "replication stream from a follower ended");
                        return;
                    }
                };
                let answer = replication.answer(fetch, &mut bucket).await;
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }

    async fn answer(&self, fetch: ReplicaFetch, bucket: &mut Option<TokenBucket>) -> ReplicaData {
        let mut appended = self.appended.subscribe();
        let follower = fetch.follower_id;
        let partitions: Vec<(ReplicaPosition, Result<Arc<Partition>, String>)> = fetch
            .partitions
            .into_iter()
            .map(|position| {
                let partition = self.record_fetch(follower, &position);
                (position, partition)
            })
            .collect();
        let max_bytes = match fetch.max_bytes_per_partition as usize {
            0 => MAX_BYTES_PER_PARTITION,
            asked => asked.min(MAX_BYTES_PER_PARTITION),
        };
        let throttled = self.throttled_partitions(follower, &partitions, bucket);
        let mut bucket = if throttled.iter().any(|is| *is) { bucket.as_mut() } else { None };
        let deadline = Instant::now() + Duration::from_millis(u64::from(fetch.max_wait_ms)).min(MAX_FETCH_WAIT);
        // When an answer would carry only a moved high watermark: the next append's answer would carry it too.
        let mut high_watermark_due: Option<Instant> = None;
        loop {
            let allowance = bucket.as_deref_mut().map(|b| b.allowance(Instant::now()));
            let read = read_all(&partitions, max_bytes, &throttled, allowance).await;
            let now = Instant::now();
            if let Some(bucket) = bucket.as_deref_mut() {
                bucket.charge(read.throttled_bytes);
            }
            let has_news = read.has_batches || read.moves_log_start;
            if read.moves_high_watermark && high_watermark_due.is_none() {
                high_watermark_due = Some(now + HIGH_WATERMARK_LINGER);
            }
            let is_high_watermark_due = high_watermark_due.is_some_and(|due| now >= due);
            if has_news || is_high_watermark_due || read.is_below_log_start || now >= deadline {
                return read.answer;
            }
            // Woken by any append on this node, or once the bucket holds bytes again for a partition it held
            // back, or when a moved high watermark is due; a spurious wake costs one more read.
            let wake = match bucket.as_deref_mut() {
                Some(bucket) if read.is_held_back => bucket.refilled_by(now).min(deadline),
                _ => deadline,
            };
            let wake = high_watermark_due.map_or(wake, |due| due.min(wake));
            let _ = tokio::time::timeout_at(wake, appended.changed()).await;
        }
    }

    /// Which of the fetched partitions the throttle applies to for `follower`, and the stream's bucket brought
    /// to the rate the metadata holds now (dropped when the throttle is cleared). Read once per fetch: a
    /// throttle set, changed or cleared applies from the follower's next fetch, within `MAX_FETCH_WAIT`.
    fn throttled_partitions(
        &self,
        follower: u64,
        partitions: &[(ReplicaPosition, Result<Arc<Partition>, String>)],
        bucket: &mut Option<TokenBucket>,
    ) -> Vec<bool> {
        let metadata = self.controller.metadata();
        let Some(rate) = metadata.replication_throttle_bytes_per_sec else {
            *bucket = None;
            return vec![false; partitions.len()];
        };
        let now = Instant::now();
        match bucket {
            Some(bucket) => bucket.set_rate(rate, now),
            None => *bucket = Some(TokenBucket::new(rate, now)),
        }
        partitions
            .iter()
            .map(|(position, _)| {
                let Some(topic) = metadata.topics.get(&position.topic) else { return false };
                topic.partitions.get(position.partition as usize).is_some_and(|placement| {
                    let lists = &topic.settings.throttled_replicas;
                    throttle::is_throttled(placement, lists, position.partition, self.node_id, follower)
                })
            })
            .collect()
    }

    /// Notes the follower's log end for one partition this node leads at the epoch it names.
    fn record_fetch(&self, follower: u64, position: &ReplicaPosition) -> Result<Arc<Partition>, String> {
        let node = self.node().map_err(|e| e.to_string())?;
        let partition = node.registry.partition(&position.topic, position.partition).map_err(|e| e.to_string())?;
        let key = (position.topic.clone(), position.partition);
        let leader_end = partition.log().log_end_offset();
        let now = Instant::now();
        let isr_change = {
            let mut leaders = lock(&self.leaders);
            // Read under the lock, where the high watermark is also moved (`advance_high_watermark`): a joining
            // follower is checked against the latest, and counted in it from then on.
            let high_watermark = partition.log().high_watermark();
            let state = leaders.get_mut(&key).ok_or_else(|| format!("node {} does not lead it", self.node_id))?;
            if state.epoch != position.leader_epoch {
                return Err(format!(
                    "leader epoch {} asked, node {} leads at epoch {}",
                    position.leader_epoch, self.node_id, state.epoch
                ));
            }
            if !state.replicas.contains(&follower) {
                return Err(format!("node {follower} holds no replica of it"));
            }
            let progress = state.followers.entry(follower).or_insert(FollowerProgress {
                log_end: position.fetch_offset,
                log_start: position.log_start_offset,
                caught_up_at: now,
                leader_end_at_last_fetch: leader_end,
                last_fetch_at: now,
            });
            if position.fetch_offset != progress.log_end {
                tracing::debug!(topic = %key.0, partition = key.1, follower, log_end = position.fetch_offset, "follower log end");
            }
            if position.fetch_offset >= leader_end {
                progress.caught_up_at = now;
            } else if position.fetch_offset >= progress.leader_end_at_last_fetch {
                progress.caught_up_at = progress.caught_up_at.max(progress.last_fetch_at);
            }
            if position.log_start_offset != progress.log_start {
                progress.log_start = position.log_start_offset;
                self.log_starts_reported.send_modify(|count| *count = count.wrapping_add(1));
            }
            progress.log_end = position.fetch_offset;
            progress.leader_end_at_last_fetch = leader_end;
            progress.last_fetch_at = now;
            // A fenced node may still fetch (a node stopping gracefully has itself fenced first, then stops its
            // fetchers): it is not taken back in (KIP-841), or acks-all would wait on it once it is gone. Checked
            // here, by the leader, not when the controller applies the change: that rule is the same on every
            // version of the nodes that replay the log.
            let isr_change = if position.cannot_append {
                // Out at once: in the ISR it would hold the high watermark back until it lagged out.
                let leaves = state.isr.contains(&follower) && !state.is_isr_change_pending;
                leaves.then(|| IsrChange::Shrink { epoch: state.epoch, isr: state.isr.clone() })
            } else {
                let joins = state.may_join_isr(follower, position.fetch_offset, high_watermark)
                    && self.controller.metadata().state_of(follower) == Some(NodeState::Alive);
                joins.then(|| IsrChange::Grow {
                    epoch: state.epoch,
                    isr: state.isr.clone(),
                    replicas: state.replicas.clone(),
                })
            };
            if let Some(change) = &isr_change {
                state.is_isr_change_pending = true;
                // A shrink leaves an earlier joiner counted: its join may be committed and not yet seen here.
                if matches!(change, IsrChange::Grow { .. }) {
                    state.note_joining(follower);
                }
            }
            isr_change
        };
        match isr_change {
            Some(IsrChange::Grow { epoch, isr, replicas }) => {
                // Kafka's order: the ISR as the replicas list it, so the preferred leader stays first.
                let grown: Vec<u64> = replicas.into_iter().filter(|id| isr.contains(id) || *id == follower).collect();
                tracing::info!(topic = %key.0, partition = key.1, follower, ?grown, "follower caught up; growing the ISR");
                self.propose_isr(key, epoch, grown);
            }
            Some(IsrChange::Shrink { epoch, isr }) => {
                let shrunk: Vec<u64> = isr.into_iter().filter(|id| *id != follower).collect();
                tracing::warn!(topic = %key.0, partition = key.1, follower, ?shrunk, "follower cannot append (its disk is full); shrinking the ISR");
                self.propose_isr(key, epoch, shrunk);
            }
            None => {}
        }
        self.advance_high_watermark(&partition);
        Ok(partition)
    }
}

/// An ISR change a follower's fetch calls for.
enum IsrChange {
    /// It caught up: it joins.
    Grow { epoch: u32, isr: Vec<u64>, replicas: Vec<u64> },
    /// It cannot append: it leaves.
    Shrink { epoch: u32, isr: Vec<u64> },
}

/// One round of reads for a follower.
struct FollowerRead {
    answer: ReplicaData,
    /// Whether any partition had batches to send.
    has_batches: bool,
    /// The bytes read for throttled partitions, to charge to the stream's bucket.
    throttled_bytes: usize,
    /// Whether a throttled partition had batches to send but the bucket held them back.
    is_held_back: bool,
    /// Whether the follower's log start is behind where this answer lets it go (`min(leader's start, its log
    /// end)`): answered at once, not held, so a DeleteRecords waiting on it is not kept a whole fetch wait. Once
    /// the follower has moved, its next fetch says so and this is false again: no busy loop.
    moves_log_start: bool,
    /// A partition's high watermark here is past the follower's, within its log end (`tells_high_watermark`).
    moves_high_watermark: bool,
    /// Whether a partition's fetch offset is below this log's start: answered at once, so the follower starts
    /// over at the start without waiting a whole fetch. Its next fetch is at the start: no busy loop.
    is_below_log_start: bool,
}

/// Reads every partition's batches past the follower's position. Partitions marked in `throttled` share
/// `allowance` bytes (unlimited when `None`): none is read once it is spent.
async fn read_all(
    partitions: &[(ReplicaPosition, Result<Arc<Partition>, String>)],
    max_bytes: usize,
    throttled: &[bool],
    mut allowance: Option<usize>,
) -> FollowerRead {
    let mut read_round = FollowerRead {
        answer: ReplicaData { partitions: Vec::with_capacity(partitions.len()) },
        has_batches: false,
        throttled_bytes: 0,
        is_held_back: false,
        moves_log_start: false,
        moves_high_watermark: false,
        is_below_log_start: false,
    };
    for (index, (position, partition)) in partitions.iter().enumerate() {
        let mut data =
            ReplicaPartitionData { topic: position.topic.clone(), partition: position.partition, ..Default::default() };
        let is_throttled = throttled.get(index).copied().unwrap_or(false);
        let max_bytes = match allowance {
            Some(left) if is_throttled => max_bytes.min(left),
            _ => max_bytes,
        };
        if let Ok(partition) = partition {
            data.log_start_offset = partition.log().log_start_offset();
        }
        match partition {
            Err(reason) => data.error = reason.clone(),
            // The records the follower asks for were deleted here: it must start over at this log's start, which
            // `log_start_offset` carries (Kafka's OFFSET_OUT_OF_RANGE to a follower). Nothing is read.
            Ok(partition) if position.fetch_offset < data.log_start_offset => {
                tracing::debug!(topic = %position.topic, partition = position.partition, fetch_offset = position.fetch_offset, log_start_offset = data.log_start_offset, "a follower fetches below the log start");
                data.fetch_offset_below_log_start = true;
                read_round.is_below_log_start = true;
                data.high_watermark = partition.log().high_watermark();
                data.log_end_offset = partition.log().log_end_offset();
            }
            // A follower at the log end has nothing to read: no hand-off to the blocking pool. At rest that is
            // every partition, each fetch round, and the hand-offs were most of an idle node's CPU.
            Ok(partition) if position.fetch_offset == partition.log().log_end_offset() => {
                data.high_watermark = partition.log().high_watermark();
                data.log_end_offset = position.fetch_offset;
            }
            // A throttled partition whose stream has spent its allowance: nothing read until the bucket refills.
            Ok(partition) if max_bytes == 0 => {
                read_round.is_held_back = true;
                data.high_watermark = partition.log().high_watermark();
                data.log_end_offset = partition.log().log_end_offset();
            }
            Ok(partition) => {
                let log = Arc::clone(partition.log());
                let offset = position.fetch_offset;
                // What a follower fetches was usually appended a moment ago: from the tail cache, on this thread.
                let read = match log.read_to_end_from_memory(offset, max_bytes) {
                    Some(read) => Ok(Ok(read)),
                    None => tokio::task::spawn_blocking(move || log.read_to_end(offset, max_bytes)).await,
                };
                match read {
                    Ok(Ok(read)) => {
                        read_round.has_batches |= !read.batches.is_empty();
                        if is_throttled {
                            read_round.throttled_bytes += read.batches.len();
                            allowance = allowance.map(|left| left.saturating_sub(read.batches.len()));
                        }
                        tracing::debug!(topic = %position.topic, partition = position.partition, from = offset, bytes = read.batches.len(), is_throttled, "read for a follower");
                        data.batches = read.batches;
                    }
                    Ok(Err(err)) => data.error = err.to_string(),
                    Err(err) => data.error = err.to_string(),
                }
                data.high_watermark = partition.log().high_watermark();
                data.log_end_offset = partition.log().log_end_offset();
            }
        }
        // Only for a partition served without error: the follower skips one with an error (a fetch below this
        // log's start, say) and would not move, so answering it at once would only make the two spin.
        read_round.moves_log_start |= partition.is_ok()
            && data.error.is_empty()
            && position.log_start_offset < data.log_start_offset.min(position.fetch_offset);
        read_round.moves_high_watermark |=
            partition.is_ok() && data.error.is_empty() && tells_high_watermark(position, &data);
        read_round.answer.partitions.push(data);
    }
    read_round
}

/// Whether the answer moves the follower's high watermark: the leader's is past the one the follower reported,
/// and so is the follower's log end (a follower never holds a high watermark past its log end, so one behind the
/// leader's log would be answered again and again for nothing). A follower that reports none is never answered
/// early for it.
fn tells_high_watermark(position: &ReplicaPosition, data: &ReplicaPartitionData) -> bool {
    position.high_watermark.is_some_and(|known| data.high_watermark.min(position.fetch_offset) > known)
}

impl super::LeaderState {
    /// Whether `follower`, its log ending at `log_end`, may join the ISR now (Kafka's `isFollowerInSync`): it
    /// holds everything committed (the high watermark) and everything of this leader's epoch before its start,
    /// and no other ISR change is in flight.
    fn may_join_isr(&self, follower: u64, log_end: i64, high_watermark: i64) -> bool {
        !self.isr.contains(&follower)
            && log_end >= high_watermark
            && log_end >= self.epoch_start_offset
            && !self.is_isr_change_pending
    }

    /// Counts `follower` in the high watermark from now on: an ISR change adding it is being sent.
    pub(super) fn note_joining(&mut self, follower: u64) {
        if !self.joining.contains(&follower) {
            self.joining.push(follower);
        }
    }

    /// Takes the ISR and replicas this node's metadata holds for the partition: a joiner now in the ISR counts
    /// as a member, and one no longer a replica (moved away) can never join.
    pub(super) fn follow_placement(&mut self, isr: &[u64], replicas: &[u64]) {
        self.isr = isr.to_vec();
        self.replicas = replicas.to_vec();
        self.joining.retain(|joiner| !isr.contains(joiner) && replicas.contains(joiner));
    }

    /// Stops counting a joiner that has not caught up for the lag limit: its change never showed in the metadata,
    /// and were it to apply late, the follower would be taken out again as lagging.
    pub(super) fn forget_quiet_joiners(&mut self, now: Instant, replica_lag: Duration) {
        let (followers, since) = (&self.followers, self.since);
        self.joining.retain(|joiner| {
            let caught_up_at = followers.get(joiner).map_or(since, |f| f.caught_up_at);
            now.saturating_duration_since(caught_up_at) <= replica_lag
        });
    }

    /// The most the high watermark may be, this node leading with its log ending at `leader_end`: the smallest
    /// log end over the ISR and the followers joining it (a follower not heard from counts as 0).
    pub(super) fn high_watermark_bound(&self, leader_id: u64, leader_end: i64) -> i64 {
        self.isr
            .iter()
            .chain(self.joining.iter().filter(|id| !self.isr.contains(id)))
            .map(|id| if *id == leader_id { leader_end } else { self.followers.get(id).map_or(0, |f| f.log_end) })
            .min()
            .unwrap_or(leader_end)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::super::LeaderState;
    use tokio::time::Instant;

    fn leading_from(epoch_start_offset: i64) -> LeaderState {
        LeaderState {
            epoch: 1,
            isr: vec![2, 3],
            replicas: vec![1, 2, 3],
            followers: HashMap::new(),
            since: Instant::now(),
            is_isr_change_pending: false,
            joining: Vec::new(),
            epoch_start_offset,
        }
    }

    #[test]
    fn a_follower_is_answered_early_only_when_the_answer_moves_its_high_watermark() {
        use rill_protocol::internal::{ReplicaPartitionData, ReplicaPosition};
        let position = |fetch_offset, high_watermark| ReplicaPosition {
            fetch_offset,
            high_watermark,
            ..ReplicaPosition::default()
        };
        let leader_at = |high_watermark| ReplicaPartitionData { high_watermark, ..ReplicaPartitionData::default() };
        // At the log end, its high watermark behind the leader's: told at once.
        assert!(super::tells_high_watermark(&position(11, Some(10)), &leader_at(11)));
        // Told, it reports the leader's: held until there is more.
        assert!(!super::tells_high_watermark(&position(11, Some(11)), &leader_at(11)));
        // Behind the leader's high watermark with its log end: only up to the log end moves it.
        assert!(super::tells_high_watermark(&position(8, Some(7)), &leader_at(11)));
        assert!(!super::tells_high_watermark(&position(8, Some(8)), &leader_at(11)));
        // A follower of an older version reports none.
        assert!(!super::tells_high_watermark(&position(11, None), &leader_at(11)));
    }

    #[test]
    fn a_follower_joins_the_isr_only_once_it_reaches_the_high_watermark_and_this_epochs_start() {
        // Elected with 120 in its log while the old leader had committed up to 100: a follower at 100 (one that
        // cannot append, say) is not in sync, or it would hold the high watermark at 100.
        let state = leading_from(120);
        assert!(!state.may_join_isr(1, 100, 100));
        assert!(!state.may_join_isr(1, 119, 100));
        assert!(state.may_join_isr(1, 120, 100));
        assert!(!state.may_join_isr(1, 120, 130), "below the high watermark");
        assert!(!state.may_join_isr(2, 200, 100), "in the ISR already");
        let pending = LeaderState { is_isr_change_pending: true, ..leading_from(0) };
        assert!(!pending.may_join_isr(1, 200, 100), "one ISR change at a time");
    }

    /// The replication simulation's seed 3324, in small: leader 2, ISR {2, 3}; follower 1 (its disk full) joins at
    /// 162, the high watermark then, while 3 has 163. Once the controller applies the join, 1 is in sync and may
    /// be elected: had the high watermark moved to 163 meanwhile, 1's election would truncate a committed record
    /// from 2 and 3. So the joiner counts from the moment its change is sent.
    #[test]
    fn a_follower_joining_the_isr_holds_the_high_watermark_from_the_moment_its_change_is_sent() {
        let now = Instant::now();
        let at = |log_end| super::super::FollowerProgress {
            log_end,
            log_start: 0,
            caught_up_at: now,
            leader_end_at_last_fetch: log_end,
            last_fetch_at: now,
        };
        let mut state = leading_from(162);
        state.followers = HashMap::from([(1, at(162)), (3, at(163))]);
        assert_eq!(state.high_watermark_bound(2, 164), 163, "the ISR alone: 2 at 164, 3 at 163");
        state.note_joining(1);
        assert_eq!(state.high_watermark_bound(2, 164), 162, "the joiner's log end bounds it");
        state.followers.insert(1, at(164));
        assert_eq!(state.high_watermark_bound(2, 164), 163, "caught up, it bounds nothing");
        state.isr = vec![1, 2, 3];
        assert_eq!(state.high_watermark_bound(2, 164), 163, "applied: counted once, as a member");
        let unheard = LeaderState { joining: vec![1], followers: HashMap::from([(3, at(163))]), ..leading_from(0) };
        assert_eq!(unheard.high_watermark_bound(2, 164), 0, "a joiner not heard from holds nothing as committed");
    }

    /// A change whose answer was lost (the controller committed it, the reply timed out) applies later, maybe
    /// after a second follower has started joining: each joiner holds the high watermark until this node's
    /// metadata shows it in the ISR, it is moved away, or it goes quiet.
    #[test]
    fn every_joiner_holds_the_high_watermark_until_the_metadata_shows_it_or_it_goes_quiet() {
        let now = Instant::now();
        let lag = Duration::from_secs(10);
        let at = |log_end, caught_up_at| super::super::FollowerProgress {
            log_end,
            log_start: 0,
            caught_up_at,
            leader_end_at_last_fetch: log_end,
            last_fetch_at: caught_up_at,
        };
        // Leader 2, ISR {2, 3}: follower 1 joins at 100; its change's answer is lost (pending is cleared, the
        // joiner stays); follower 4 joins at 105.
        let mut state = LeaderState { isr: vec![2, 3], replicas: vec![1, 2, 3, 4], ..leading_from(0) };
        state.followers = HashMap::from([(1, at(100, now)), (3, at(110, now)), (4, at(105, now))]);
        state.note_joining(1);
        state.note_joining(4);
        state.note_joining(1);
        assert_eq!(state.joining, vec![1, 4], "each joiner once");
        assert_eq!(state.high_watermark_bound(2, 120), 100, "the first joiner, its answer lost, still counts");
        state.forget_quiet_joiners(now + lag, lag);
        assert_eq!(state.high_watermark_bound(2, 120), 100, "caught up within the lag limit: still counted");

        // The lost change shows applied: 1 counts as a member from here on, 4 still as a joiner.
        state.follow_placement(&[1, 2, 3], &[1, 2, 3, 4]);
        assert_eq!(state.joining, vec![4]);
        assert_eq!(state.high_watermark_bound(2, 120), 100);
        state.followers.insert(1, at(120, now));
        assert_eq!(state.high_watermark_bound(2, 120), 105, "the joiner 4 bounds it now");

        // Moved away, 4 can never join.
        state.follow_placement(&[1, 2, 3], &[1, 2, 3]);
        assert!(state.joining.is_empty());
        assert_eq!(state.high_watermark_bound(2, 120), 110);

        // A joiner gone quiet past the lag limit stops counting.
        state.note_joining(4);
        state.replicas.push(4);
        state.forget_quiet_joiners(now + lag + Duration::from_millis(1), lag);
        assert!(state.joining.is_empty(), "quiet since {now:?} for longer than {lag:?}");
    }
}
