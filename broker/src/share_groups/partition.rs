//! One share partition's delivery state (KIP-932): which records of one topic partition a share group has done
//! with, which it is delivering and to whom, and how often each was delivered.
//!
//! The state is a window over the log, `[start, end)`: every offset below `start` is done with (accepted,
//! rejected, archived after too many deliveries, or not a record at all: a control batch, a gap a compaction
//! left); `end` is the first offset never acquired. Inside the window, `in_flight` holds the records still owed
//! a delivery (available) or out with a member under a lock (acquired); an offset of the window that is not in
//! `in_flight` is done. `start` is therefore always `in_flight`'s first key, or `end` when it is empty.
//!
//! Invariants, asserted by the unit and property tests:
//! - `start <= end`, every key of `in_flight` is in `[start, end)`, and `end - start` never exceeds the
//!   window's limit (`max_record_locks`) after an acquisition that added fresh records, so the state a group
//!   keeps per partition is bounded whatever the log holds;
//! - a record is acquired by at most one member at a time, and only its holder may acknowledge it;
//! - a record is delivered at most `delivery_count_limit` times: released (by its member, by a lock that ran
//!   out, by a member that left) once it has been delivered that often, it is archived, not made available;
//! - with `keeps_dead_letters` (the group names a dead-letter topic), every record rejected or archived is kept
//!   as a [`DeadLetter`] until the state that no longer holds it is taken to be stored (`take_dead_letters`), so
//!   its dead letter is written before that state is (`share_groups/dead_letters.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// What the client says of one acknowledged offset (ShareFetch's and ShareAcknowledge's `acknowledge_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// Not a record (the client found no record at the offset): done with.
    Gap,
    /// Processed: done with.
    Accept,
    /// Not processed: deliver it again (to any member), unless it has been delivered too often.
    Release,
    /// Unprocessable: never deliver it again.
    Reject,
}

impl AckType {
    pub fn from_wire(value: i8) -> Option<AckType> {
        match value {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

/// Why an acknowledgement was refused; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("acknowledgement batch {first}..={last} is empty or reversed")]
    BadRange { first: i64, last: i64 },
    #[error(
        "acknowledgement batch {first}..={last} has {types} acknowledge types: one for the whole batch, or one per \
         offset ({count}), is allowed"
    )]
    TypeCount { first: i64, last: i64, types: usize, count: i64 },
    #[error("acknowledge type {0} is not one of 0 (gap), 1 (accept), 2 (release), 3 (reject)")]
    UnknownType(i8),
    #[error(
        "offset {offset} is not acquired by this member (it was released, timed out, or was never delivered to it)"
    )]
    NotAcquired { offset: i64 },
    #[error("acknowledgement batches {first}..={last} and the one before overlap: each offset is acknowledged once")]
    Overlapping { first: i64, last: i64 },
}

/// One acknowledgement batch of a request: `first..=last` and its types (one for the whole batch, or one per
/// offset).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

/// A member of the share group, as records' locks name it.
pub type MemberRef = Arc<str>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    delivery_count: u16,
    lock: Option<Lock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lock {
    member: MemberRef,
    deadline: Instant,
}

/// How one share partition delivers: the group's settings, the same for all its partitions.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRules {
    pub lock_duration: Duration,
    pub delivery_count_limit: u16,
    pub max_record_locks: u32,
    /// The group names a dead-letter topic (`errors.deadletterqueue.topic.name`): records it gives up on are kept
    /// as dead letters to write there.
    pub keeps_dead_letters: bool,
}

/// A record the group gave up on, to be written to its dead-letter topic (KIP-1191).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub offset: i64,
    /// How often it was delivered.
    pub delivery_count: u16,
    pub cause: DeadLetterCause,
}

/// Why a record became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeadLetterCause {
    /// A member acknowledged it REJECT.
    Rejected,
    /// Released (by its member, a lock that ran out, a member that left) after its last allowed delivery.
    DeliveryLimit,
}

/// A batch of the log as an acquisition sees it: its offsets and whether its records are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Nothing to deliver: a control marker, or (read_committed) an aborted transaction's records. Its offsets
    /// are done with as soon as the window reaches them.
    pub is_skipped: bool,
}

/// Offsets `first..=last` acquired by one fetch, each delivered `delivery_count` times (this delivery included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    start: i64,
    end: i64,
    in_flight: BTreeMap<i64, InFlight>,
    /// What happened to this partition's records since the broker started (not stored: metrics).
    counts: DeliveryCounts,
    /// Records given up on since the state was last taken to be stored, when the rules keep them.
    dead_letters: Vec<DeadLetter>,
}

/// Records of a share partition by what happened to them, since the broker started (`rill_share_records_*`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Deliveries: records acquired by a member (a record delivered three times counts three).
    pub acquired: u64,
    pub accepted: u64,
    /// Offsets acknowledged as holding no record (a compaction's gap, a marker the client skipped).
    pub gaps: u64,
    /// Released by their member for another delivery.
    pub released: u64,
    pub rejected: u64,
    /// Locks that ran out before their member acknowledged the record.
    pub lock_timeouts: u64,
    /// Records a member held when it left, its session closed or it was timed out.
    pub member_releases: u64,
    /// Given up after `delivery_count_limit` deliveries.
    pub archived: u64,
    /// Rejected or given up records whose dead letters were written to the group's dead-letter topic.
    pub dead_letters: u64,
    /// Those whose dead letters were not (the topic unfit, or its writes failing): archived without them.
    pub dead_letters_lost: u64,
}

impl std::ops::AddAssign for DeliveryCounts {
    fn add_assign(&mut self, other: DeliveryCounts) {
        self.acquired += other.acquired;
        self.accepted += other.accepted;
        self.gaps += other.gaps;
        self.released += other.released;
        self.rejected += other.rejected;
        self.lock_timeouts += other.lock_timeouts;
        self.member_releases += other.member_releases;
        self.archived += other.archived;
        self.dead_letters += other.dead_letters;
        self.dead_letters_lost += other.dead_letters_lost;
    }
}

/// A share partition's state as stored (`encode`/`decode`): the window and each undelivered record's count.
/// Locks are not stored: after a restart every record still in flight is available again.
const SNAPSHOT_VERSION: u8 = 0;
/// Most records in flight a stored state may name: far above any window the settings allow (`max_record_locks`
/// is at most 100,000), so only damaged bytes reach it, and they cannot make the broker allocate without bound.
const MAX_STORED_IN_FLIGHT: i64 = 1 << 20;

impl SharePartition {
    /// A partition the group has not read yet, starting at `start` (its `share.auto.offset.reset`).
    pub fn starting_at(start: i64) -> SharePartition {
        SharePartition {
            start,
            end: start,
            in_flight: BTreeMap::new(),
            counts: DeliveryCounts::default(),
            dead_letters: Vec::new(),
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    pub fn end(&self) -> i64 {
        self.end
    }

    /// Records in the window still to be delivered or out with a member.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What happened to this partition's records since the broker started.
    pub fn counts(&self) -> DeliveryCounts {
        self.counts
    }

    /// Records out with a member under a lock.
    pub fn acquired(&self) -> usize {
        self.in_flight.values().filter(|record| record.lock.is_some()).count()
    }

    /// The records given up on since the last call, for their dead letters to be written before the state that no
    /// longer holds them is stored (only kept under rules that keep dead letters).
    pub fn take_dead_letters(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.dead_letters)
    }

    pub fn has_dead_letters(&self) -> bool {
        !self.dead_letters.is_empty()
    }

    /// Counts dead letters taken earlier: `written` to the dead-letter topic, `lost` not.
    pub fn count_dead_letters(&mut self, written: u64, lost: u64) {
        self.counts.dead_letters += written;
        self.counts.dead_letters_lost += lost;
    }

    /// The earliest lock deadline, when a waiting fetch should look again.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight.values().filter_map(|record| record.lock.as_ref().map(|lock| lock.deadline)).min()
    }

    /// Moves the window's start up to the log's start: records the log no longer holds (retention, DeleteRecords)
    /// can never be delivered. Returns whether anything changed.
    pub fn skip_below(&mut self, log_start: i64) -> bool {
        if log_start <= self.start {
            return false;
        }
        self.in_flight = self.in_flight.split_off(&log_start);
        self.end = self.end.max(log_start);
        self.start = log_start;
        self.advance_start();
        true
    }

    /// Releases every lock whose deadline has passed. Returns how many records were released.
    pub fn expire_locks(&mut self, now: Instant, rules: &DeliveryRules) -> usize {
        let expired: Vec<i64> = self
            .in_flight
            .iter()
            .filter(|(_, record)| record.lock.as_ref().is_some_and(|lock| lock.deadline <= now))
            .map(|(offset, _)| *offset)
            .collect();
        for offset in &expired {
            self.release(*offset, rules);
        }
        self.counts.lock_timeouts += expired.len() as u64;
        self.advance_start();
        expired.len()
    }

    /// Releases every record `member` holds (it left the group or closed its session). Returns how many.
    pub fn release_member(&mut self, member: &str, rules: &DeliveryRules) -> usize {
        let held: Vec<i64> = self
            .in_flight
            .iter()
            .filter(|(_, record)| record.lock.as_ref().is_some_and(|lock| &*lock.member == member))
            .map(|(offset, _)| *offset)
            .collect();
        for offset in &held {
            self.release(*offset, rules);
        }
        self.counts.member_releases += held.len() as u64;
        self.advance_start();
        held.len()
    }

    /// The offset a fetch should read the log from to find something to acquire: the first available record,
    /// else the window's end if the window has room for fresh records; `None` when there is nothing to acquire
    /// until a lock runs out or an acknowledgement moves the start.
    pub fn read_from(&self, rules: &DeliveryRules) -> Option<i64> {
        let available = self.in_flight.iter().find(|(_, record)| record.lock.is_none()).map(|(offset, _)| *offset);
        available.or_else(|| self.has_room(rules).then_some(self.end))
    }

    /// Whether the window may take fresh records: fewer than `max_record_locks` between its start and its end.
    pub fn has_room(&self, rules: &DeliveryRules) -> bool {
        self.end - self.start < i64::from(rules.max_record_locks)
    }

    /// Acquires for `member`, from the batches a read of the log returned (in offset order, all below the high
    /// watermark), the available records they hold and then fresh ones, until `max_records` are acquired (whole
    /// batches are not split for it: Kafka's `max_records` is a soft limit too) or the window is full (fresh
    /// records are split at the window's limit: the client keeps only what the acquired ranges name). Returns
    /// the ranges acquired, in offset order.
    pub fn acquire(
        &mut self,
        batches: &[BatchSpan],
        member: &MemberRef,
        now: Instant,
        max_records: usize,
        rules: &DeliveryRules,
    ) -> Vec<Acquired> {
        let deadline = now + rules.lock_duration;
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut taken = 0usize;
        for batch in batches {
            if taken >= max_records.max(1) {
                break;
            }
            // Records of this batch delivered before and available again (a batch past the window's end has none,
            // and an empty range must not reach `BTreeMap::range`, which panics on one).
            let delivered_last = batch.last_offset.min(self.end - 1);
            let redelivered: Vec<i64> = if delivered_last < batch.base_offset {
                Vec::new()
            } else {
                self.in_flight
                    .range(batch.base_offset..=delivered_last)
                    .filter(|(_, record)| record.lock.is_none())
                    .map(|(offset, _)| *offset)
                    .collect()
            };
            for offset in redelivered {
                let record = self.in_flight.get_mut(&offset).expect("collected from the map above");
                record.delivery_count = record.delivery_count.saturating_add(1);
                record.lock = Some(Lock { member: Arc::clone(member), deadline });
                push_acquired(&mut acquired, offset, record.delivery_count);
                taken += 1;
            }
            // Fresh records: only ever contiguous with the window's end.
            if batch.last_offset < self.end || batch.base_offset > self.end {
                continue;
            }
            if !self.has_room(rules) {
                continue;
            }
            if batch.is_skipped {
                // A transaction marker is not a record, nor under read_committed is an aborted one.
                self.end = batch.last_offset + 1;
                self.advance_start();
                continue;
            }
            let last = batch.last_offset.min(self.start + i64::from(rules.max_record_locks) - 1);
            for offset in self.end..=last {
                self.in_flight.insert(
                    offset,
                    InFlight { delivery_count: 1, lock: Some(Lock { member: Arc::clone(member), deadline }) },
                );
                push_acquired(&mut acquired, offset, 1);
                taken += 1;
            }
            self.end = last + 1;
        }
        self.counts.acquired += taken as u64;
        acquired
    }

    /// Applies one acknowledgement batch of `member`: `types` has one type for the whole of `first..=last`, or
    /// one per offset. Either all of it applies or none (and the error says why).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        rules: &DeliveryRules,
    ) -> Result<(), AckError> {
        self.acknowledge_batches(member, &[AckBatch { first, last, types: types.to_vec() }], rules)
    }

    /// Applies a request's acknowledgement batches of one partition: every batch is checked (its range, its
    /// types, each offset held by `member`, no offset named twice) before any is applied, so either all apply or
    /// none does, without copying the state to undo a failure.
    pub fn acknowledge_batches(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        rules: &DeliveryRules,
    ) -> Result<(), AckError> {
        let mut checked: Vec<(&AckBatch, Vec<AckType>)> = Vec::with_capacity(batches.len());
        for batch in batches {
            checked.push((batch, self.check(member, batch)?));
        }
        let mut ranges: Vec<(i64, i64)> = batches.iter().map(|b| (b.first, b.last)).collect();
        ranges.sort_unstable();
        if let Some(pair) = ranges.windows(2).find(|pair| pair[1].0 <= pair[0].1) {
            return Err(AckError::Overlapping { first: pair[1].0, last: pair[1].1 });
        }
        for (batch, types) in checked {
            for (index, offset) in (batch.first..=batch.last).enumerate() {
                match if types.len() == 1 { types[0] } else { types[index] } {
                    AckType::Gap => {
                        self.in_flight.remove(&offset);
                        self.counts.gaps += 1;
                    }
                    AckType::Accept => {
                        self.in_flight.remove(&offset);
                        self.counts.accepted += 1;
                    }
                    AckType::Reject => {
                        if let Some(record) = self.in_flight.remove(&offset) {
                            if rules.keeps_dead_letters {
                                let delivery_count = record.delivery_count;
                                let cause = DeadLetterCause::Rejected;
                                self.dead_letters.push(DeadLetter { offset, delivery_count, cause });
                            }
                        }
                        self.counts.rejected += 1;
                    }
                    AckType::Release => {
                        self.counts.released += 1;
                        self.release(offset, rules);
                    }
                }
            }
        }
        self.advance_start();
        Ok(())
    }

    /// One batch's types, if it may be applied: a forward range, one type or one per offset, known types, and
    /// every offset held by `member`.
    fn check(&self, member: &str, batch: &AckBatch) -> Result<Vec<AckType>, AckError> {
        let AckBatch { first, last, ref types } = *batch;
        if last < first {
            return Err(AckError::BadRange { first, last });
        }
        let count = last - first + 1;
        if types.len() != 1 && types.len() as i64 != count {
            return Err(AckError::TypeCount { first, last, types: types.len(), count });
        }
        let parsed = types
            .iter()
            .map(|&wire| AckType::from_wire(wire).ok_or(AckError::UnknownType(wire)))
            .collect::<Result<Vec<_>, _>>()?;
        for offset in first..=last {
            let held = self.in_flight.get(&offset).and_then(|record| record.lock.as_ref());
            if held.is_none_or(|lock| &*lock.member != member) {
                // Held offsets are in the map, so the walk stops within `in_flight.len() + 1` steps whatever
                // range a client names.
                return Err(AckError::NotAcquired { offset });
            }
        }
        Ok(parsed)
    }

    /// Makes one in-flight record available again, or archives it once it has been delivered as often as allowed.
    fn release(&mut self, offset: i64, rules: &DeliveryRules) {
        if let Some(record) = self.in_flight.get_mut(&offset) {
            if record.delivery_count >= rules.delivery_count_limit {
                let delivery_count = record.delivery_count;
                self.in_flight.remove(&offset);
                self.counts.archived += 1;
                if rules.keeps_dead_letters {
                    self.dead_letters.push(DeadLetter {
                        offset,
                        delivery_count,
                        cause: DeadLetterCause::DeliveryLimit,
                    });
                }
            } else {
                record.lock = None;
            }
        }
    }

    fn advance_start(&mut self) {
        self.start = self.in_flight.keys().next().copied().unwrap_or(self.end);
    }

    /// The state as stored: the window, then each record in flight as runs of offsets with one delivery count.
    /// Layout (big-endian): version `0u8`, start (i64), end (i64), then runs of first (i64), last (i64), delivery
    /// count (u16) to the end.
    pub fn encode(&self) -> Vec<u8> {
        let mut runs: Vec<(i64, i64, u16)> = Vec::new();
        for (&offset, record) in &self.in_flight {
            match runs.last_mut() {
                Some((_, last, count)) if *last + 1 == offset && *count == record.delivery_count => *last = offset,
                _ => runs.push((offset, offset, record.delivery_count)),
            }
        }
        let mut out = Vec::with_capacity(17 + runs.len() * 18);
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        for (first, last, count) in runs {
            out.extend_from_slice(&first.to_be_bytes());
            out.extend_from_slice(&last.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
        out
    }

    /// A stored state, every record in flight available again (its locks died with the broker that held them);
    /// records already delivered `delivery_count_limit` times are archived. `None` for bytes that are not a
    /// state this version wrote, or that break the window's invariants.
    pub fn decode(bytes: &[u8], rules: &DeliveryRules) -> Option<SharePartition> {
        let (&version, rest) = bytes.split_first()?;
        if version != SNAPSHOT_VERSION || rest.len() < 16 || (rest.len() - 16) % 18 != 0 {
            return None;
        }
        let start = i64::from_be_bytes(rest[0..8].try_into().ok()?);
        let end = i64::from_be_bytes(rest[8..16].try_into().ok()?);
        if start > end || start < 0 {
            return None;
        }
        let mut in_flight = BTreeMap::new();
        let mut dead_letters = Vec::new();
        let mut entries = 0i64;
        for run in rest[16..].chunks_exact(18) {
            let first = i64::from_be_bytes(run[0..8].try_into().ok()?);
            let last = i64::from_be_bytes(run[8..16].try_into().ok()?);
            let delivery_count = u16::from_be_bytes(run[16..18].try_into().ok()?);
            if first < start || last >= end || first > last {
                return None;
            }
            entries += last - first + 1;
            if entries > MAX_STORED_IN_FLIGHT {
                return None;
            }
            if delivery_count >= rules.delivery_count_limit {
                // Out on its last delivery when the broker stopped: it will not come again.
                if rules.keeps_dead_letters {
                    let cause = DeadLetterCause::DeliveryLimit;
                    dead_letters.extend((first..=last).map(|offset| DeadLetter { offset, delivery_count, cause }));
                }
                continue;
            }
            for offset in first..=last {
                in_flight.insert(offset, InFlight { delivery_count, lock: None });
            }
        }
        let mut partition = SharePartition { start, end, in_flight, counts: DeliveryCounts::default(), dead_letters };
        partition.advance_start();
        Some(partition)
    }
}

fn push_acquired(acquired: &mut Vec<Acquired>, offset: i64, delivery_count: u16) {
    match acquired.last_mut() {
        Some(run) if run.last + 1 == offset && run.delivery_count == delivery_count => run.last = offset,
        _ => acquired.push(Acquired { first: offset, last: offset, delivery_count }),
    }
}

#[cfg(test)]
mod tests;
