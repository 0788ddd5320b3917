//! The replication throttle for replica moves (Kafka's `--throttle`, KIP-73): a cluster-wide rate in bytes per
//! second, recorded in the replicated metadata, that bounds what a leader sends each follower for the
//! partitions that follower is being *added* to by a move and has not caught up on yet.
//!
//! Which replicas it applies to ([`is_throttled`]): a follower listed among a move's adding replicas and not in
//! the ISR. In-sync replication is never throttled: an ACKS_ALL produce waits on every ISR member, so slowing
//! one would slow producers, and a throttled ISR member could fall out of sync. Once the new replica catches up
//! it joins the ISR and its fetches go at full speed, as Kafka's throttled-replica lists stop applying once the
//! reassignment completes.
//!
//! Where it is enforced: on the leader, per follower stream ([`TokenBucket`], one per `Replicate` stream, that
//! is per pair of nodes). The leader decides what to read, so a throttled partition's bytes are never read
//! off disk only to be held back, and its in-sync partitions on the same stream go on untouched in the same
//! answer. A follower-side limit would need the follower to hold back requests for the throttled partitions
//! only, while the stream carries its in-sync ones too; it would also let one leader send a throttled
//! follower a whole `max_bytes` answer before the follower could slow down.
//!
//! The bound: over any interval of `t` seconds a stream sends at most `rate × t + burst + one batch` bytes of
//! throttled partitions (the bucket holds at most a burst; a read may end one whole batch past its allowance,
//! since a read returns at least one whole batch).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cluster::metadata::PartitionPlacement;

/// The smallest throttle accepted: below it one 16 KiB batch takes longer than a replica's fetch wait.
pub const MIN_THROTTLE_BYTES_PER_SEC: u64 = 1024;
/// The largest throttle accepted (1 TiB/s): more is no throttle at all, and likely a typo.
pub const MAX_THROTTLE_BYTES_PER_SEC: u64 = 1 << 40;
/// How much a bucket holds, as time at the rate: the most a stream sends at once after an idle spell.
const BURST: Duration = Duration::from_millis(250);
/// The smallest bucket, so a low rate still lets a usual batch go at once.
const MIN_BURST_BYTES: u64 = 16 << 10;

/// Why a throttle rate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleRefused {
    #[error(
        "a replication throttle of {bytes_per_sec} bytes/s is too low: the least allowed is \
         {MIN_THROTTLE_BYTES_PER_SEC} bytes/s (to remove the throttle, clear it: rill cluster throttle clear)"
    )]
    TooLow { bytes_per_sec: u64 },
    #[error(
        "a replication throttle of {bytes_per_sec} bytes/s is too high: the most allowed is \
         {MAX_THROTTLE_BYTES_PER_SEC} bytes/s (1 TiB/s); to remove the throttle, clear it"
    )]
    TooHigh { bytes_per_sec: u64 },
}

/// Checks a rate asked for; the same check on every path that sets one (CLI, gRPC, Kafka's configs).
pub fn check_rate(bytes_per_sec: u64) -> Result<u64, ThrottleRefused> {
    if bytes_per_sec < MIN_THROTTLE_BYTES_PER_SEC {
        return Err(ThrottleRefused::TooLow { bytes_per_sec });
    }
    if bytes_per_sec > MAX_THROTTLE_BYTES_PER_SEC {
        return Err(ThrottleRefused::TooHigh { bytes_per_sec });
    }
    Ok(bytes_per_sec)
}

/// Whether leader `leader` throttles what it sends `follower` for `partition`: the follower is not in sync yet,
/// and it is being added by a move or the topic's lists name it (Kafka's throttled replicas, below).
pub fn is_throttled(
    placement: &PartitionPlacement,
    lists: &ThrottledReplicas,
    partition: u32,
    leader: u64,
    follower: u64,
) -> bool {
    let is_added = placement.reassignment.as_ref().is_some_and(|moving| moving.adding.contains(&follower));
    let is_listed = lists.leader.names(partition, leader) || lists.follower.names(partition, follower);
    (is_added || is_listed) && !placement.isr.contains(&follower)
}

/// A topic's Kafka `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`: the
/// replicas the throttle applies to besides a move's new ones, while they are out of sync, as on Kafka
/// (`kafka-reassign-partitions.sh --throttle` fills both in; an operator may name a lagging replica, or `*`).
/// A partition's leader named in `leader` has what it sends each out-of-sync follower throttled; a follower
/// named in `follower` has what it is sent throttled. rill throttles both on the leader (the module's doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottledReplicas {
    #[serde(default, skip_serializing_if = "ReplicaList::is_empty")]
    pub leader: ReplicaList,
    #[serde(default, skip_serializing_if = "ReplicaList::is_empty")]
    pub follower: ReplicaList,
}

impl ThrottledReplicas {
    pub fn is_default(&self) -> bool {
        self.leader.is_empty() && self.follower.is_empty()
    }
}

/// One of the two lists: none (the default), every replica (`*`), or `partition:node` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaList {
    #[default]
    Empty,
    All,
    Listed(Vec<(u32, u64)>),
}

impl ReplicaList {
    /// What is accepted, for a refusal.
    pub const FORMAT: &'static str =
        "\"*\" (every replica) or a comma-separated list of PARTITION:BROKER pairs such as 0:1,0:2 (empty: none)";

    /// Kafka's form: `*`, or `PARTITION:BROKER` pairs separated by commas (spaces around each allowed), or
    /// nothing. The same pair twice is kept once.
    pub fn parse(value: &str) -> Option<ReplicaList> {
        let value = value.trim();
        if value == "*" {
            return Some(ReplicaList::All);
        }
        let mut pairs = Vec::new();
        for pair in value.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (partition, node) = pair.split_once(':')?;
            let pair = (partition.trim().parse().ok()?, node.trim().parse().ok()?);
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
        Some(if pairs.is_empty() { ReplicaList::Empty } else { ReplicaList::Listed(pairs) })
    }

    pub fn is_empty(&self) -> bool {
        *self == ReplicaList::Empty
    }

    /// Whether the list names `node`'s replica of `partition`.
    pub fn names(&self, partition: u32, node: u64) -> bool {
        match self {
            ReplicaList::Empty => false,
            ReplicaList::All => true,
            ReplicaList::Listed(pairs) => pairs.contains(&(partition, node)),
        }
    }
}

impl std::fmt::Display for ReplicaList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaList::Empty => Ok(()),
            ReplicaList::All => f.write_str("*"),
            ReplicaList::Listed(pairs) => {
                let pairs: Vec<String> = pairs.iter().map(|(partition, node)| format!("{partition}:{node}")).collect();
                f.write_str(&pairs.join(","))
            }
        }
    }
}

/// A token bucket over the bytes one follower stream sends for throttled partitions. It may go into debt by
/// one read (a read returns at least one whole batch); nothing is read for them again until it is repaid.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    bytes_per_sec: u64,
    burst_bytes: u64,
    /// Signed: a read past the allowance leaves a debt.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket at `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let burst_bytes = burst_bytes(bytes_per_sec);
        Self { bytes_per_sec, burst_bytes, tokens: burst_bytes as f64, refilled_at: now }
    }

    /// Takes a new rate (the metadata changed while a move ran), keeping what is in the bucket up to the new
    /// burst, and any debt.
    pub fn set_rate(&mut self, bytes_per_sec: u64, now: Instant) {
        if bytes_per_sec == self.bytes_per_sec {
            return;
        }
        self.refill(now);
        self.bytes_per_sec = bytes_per_sec;
        self.burst_bytes = burst_bytes(bytes_per_sec);
        self.tokens = self.tokens.min(self.burst_bytes as f64);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.bytes_per_sec as f64).min(self.burst_bytes as f64);
        self.refilled_at = now;
    }

    /// The bytes the stream may read for throttled partitions now: 0 while the bucket is empty or in debt.
    pub fn allowance(&mut self, now: Instant) -> usize {
        self.refill(now);
        if self.tokens < 1.0 {
            0
        } else {
            self.tokens as usize
        }
    }

    /// Counts `bytes` sent for throttled partitions.
    pub fn charge(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// When the bucket will hold at least one byte again (now if it does).
    pub fn refilled_by(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        let missing = 1.0 - self.tokens;
        now + Duration::from_secs_f64(missing / self.bytes_per_sec as f64)
    }
}

fn burst_bytes(bytes_per_sec: u64) -> u64 {
    let per_burst = u128::from(bytes_per_sec) * BURST.as_millis() / 1000;
    u64::try_from(per_burst).unwrap_or(u64::MAX).max(MIN_BURST_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::reassignment_state::ReplicaReassignment;

    #[test]
    fn rates_out_of_range_are_refused_naming_the_limits() {
        assert_eq!(check_rate(0), Err(ThrottleRefused::TooLow { bytes_per_sec: 0 }));
        assert_eq!(check_rate(1023), Err(ThrottleRefused::TooLow { bytes_per_sec: 1023 }));
        assert!(check_rate(0).expect_err("0").to_string().contains("least allowed is 1024 bytes/s"));
        assert_eq!(check_rate(1024), Ok(1024));
        assert_eq!(check_rate(256 << 10), Ok(256 << 10));
        assert_eq!(check_rate(1 << 40), Ok(1 << 40));
        assert!(matches!(check_rate(u64::MAX), Err(ThrottleRefused::TooHigh { .. })));
    }

    #[test]
    fn only_a_replica_being_added_and_not_yet_in_sync_is_throttled() {
        let moving = PartitionPlacement {
            replicas: vec![1, 2, 3, 4],
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1, 2, 3],
            reassignment: Some(ReplicaReassignment { target: vec![4, 2, 3], adding: vec![4], removing: vec![1] }),
        };
        let none = ThrottledReplicas::default();
        assert!(is_throttled(&moving, &none, 0, 1, 4), "the replica being added, out of the ISR");
        assert!(!is_throttled(&moving, &none, 0, 1, 2), "an in-sync replica that stays");
        assert!(!is_throttled(&moving, &none, 0, 1, 3), "an in-sync replica that stays");
        let caught_up = PartitionPlacement { isr: vec![1, 2, 3, 4], ..moving.clone() };
        assert!(!is_throttled(&caught_up, &none, 0, 1, 4), "once in the ISR it goes at full speed");
        // A replica out of the ISR for another reason (it lagged, or restarted) catches up at full speed.
        let lagging = PartitionPlacement { reassignment: None, isr: vec![1, 2], replicas: vec![1, 2, 3], ..moving };
        assert!(!is_throttled(&lagging, &none, 0, 1, 3));
    }

    #[test]
    fn a_lagging_replica_the_topics_lists_name_is_throttled_until_it_is_in_sync() {
        let lagging = PartitionPlacement {
            replicas: vec![1, 2, 3],
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1, 2],
            reassignment: None,
        };
        let list = |value: &str| ReplicaList::parse(value).expect("a list");
        let leaders = ThrottledReplicas { leader: list("0:1, 1:2"), follower: ReplicaList::Empty };
        assert!(is_throttled(&lagging, &leaders, 0, 1, 3), "partition 0's leader 1 is named");
        assert!(!is_throttled(&lagging, &leaders, 0, 1, 2), "in sync: never throttled");
        assert!(!is_throttled(&lagging, &leaders, 1, 1, 3), "partition 1 names another leader");
        let followers = ThrottledReplicas { leader: ReplicaList::Empty, follower: list("0:3") };
        assert!(is_throttled(&lagging, &followers, 0, 1, 3));
        assert!(!is_throttled(&lagging, &followers, 2, 1, 3), "another partition");
        let every = ThrottledReplicas { leader: ReplicaList::All, follower: ReplicaList::Empty };
        assert!(is_throttled(&lagging, &every, 7, 1, 3));
        let in_sync = PartitionPlacement { isr: vec![1, 2, 3], ..lagging };
        assert!(!is_throttled(&in_sync, &every, 0, 1, 3));
    }

    #[test]
    fn replica_lists_read_kafkas_form_and_show_it_back() {
        assert_eq!(ReplicaList::parse("*"), Some(ReplicaList::All));
        assert_eq!(ReplicaList::parse(" "), Some(ReplicaList::Empty));
        let listed = ReplicaList::parse("0:1, 0:2 ,1 : 3,0:1").expect("pairs");
        assert_eq!(listed, ReplicaList::Listed(vec![(0, 1), (0, 2), (1, 3)]));
        assert_eq!(listed.to_string(), "0:1,0:2,1:3");
        assert_eq!(ReplicaList::All.to_string(), "*");
        for bad in ["0", "0:x", "a:1", "0:1,*", "-1:2", "0:1:2"] {
            assert_eq!(ReplicaList::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bucket_never_lets_more_than_the_rate_times_the_time_plus_a_burst_and_one_read() {
        let start = Instant::now();
        let rate = 256 << 10;
        let mut bucket = TokenBucket::new(rate, start);
        let batch = 10_000usize;
        let mut sent = 0u64;
        // A reader that always wants more, polling every 7 ms for 10 s, reading whole batches.
        for step in 0..=1430u64 {
            let now = start + Duration::from_millis(7 * step);
            let allowance = bucket.allowance(now);
            if allowance > 0 {
                // Whole batches up to the allowance, at least one.
                let read = (allowance / batch).max(1) * batch;
                bucket.charge(read);
                sent += read as u64;
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            let bound = rate as f64 * elapsed + burst_bytes(rate) as f64 + batch as f64;
            assert!((sent as f64) <= bound, "{sent} bytes sent after {elapsed} s, bound {bound}");
        }
        // And it does not starve the reader: close to the rate over the run.
        let expected = rate as f64 * 10.0;
        assert!(sent as f64 > expected * 0.9, "{sent} bytes in 10 s at {rate} bytes/s");
    }

    #[test]
    fn a_bucket_in_debt_allows_nothing_until_refilled_and_says_when() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1024, start);
        assert_eq!(bucket.allowance(start), 16 << 10, "the smallest burst");
        bucket.charge((16 << 10) + 2048);
        assert_eq!(bucket.allowance(start), 0);
        let refilled = bucket.refilled_by(start);
        assert!(refilled > start + Duration::from_secs(2) && refilled <= start + Duration::from_millis(2001));
        assert_eq!(bucket.allowance(start + Duration::from_secs(3)), 1024);
    }

    #[test]
    fn a_rate_change_keeps_the_debt_and_caps_the_bucket_at_the_new_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1 << 20, start);
        assert_eq!(bucket.allowance(start), 256 << 10);
        bucket.set_rate(64 << 10, start);
        assert_eq!(bucket.allowance(start), 16 << 10, "capped at the new burst");
        bucket.charge(32 << 10);
        bucket.set_rate(1 << 20, start);
        assert_eq!(bucket.allowance(start), 0, "the debt stays");
        // 100 ms at 1 MiB/s is 104,857.6 bytes, less the 16 KiB owed.
        assert_eq!(bucket.allowance(start + Duration::from_millis(100)), 88_473);
    }
}
