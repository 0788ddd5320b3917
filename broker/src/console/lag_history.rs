//! Each consumer group's total lag over the last minutes, for the group page's lag chart: the sampler task
//! (`throughput::run_sampler`) reads every committed offset and the high watermarks every `SAMPLE_INTERVAL`, and
//! keeps per group a ring of `SAMPLES_KEPT` totals. It counts committed partitions only (lag = high watermark
//! minus the commit, from the log start at the earliest), as `rill_group_lag_records` does; the group page's
//! table adds the subscribed partitions with no commit yet.
//!
//! Bounded: at most `MAX_GROUPS` groups are followed, the first by name; the others' pages say so. A group with
//! no commits left is forgotten at the next sample.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::throughput::SAMPLES_KEPT;
use crate::node::{now_ms, Node};
use crate::offsets::OffsetKey;

/// Groups whose lag is followed: 120 samples of 16 bytes each, about 2 MB in all.
pub const MAX_GROUPS: usize = 1_000;

/// A group's total lag at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    pub at_ms: i64,
    pub lag: i64,
}

/// What the history holds for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupLagHistory {
    /// The samples, oldest first (empty until the first sample after the group's first commit).
    Followed(Vec<LagSample>),
    /// Over `MAX_GROUPS` groups have commits and this one is not among the first by name.
    NotFollowed,
}

#[derive(Default)]
pub struct LagHistory {
    groups: Mutex<BTreeMap<String, VecDeque<LagSample>>>,
}

impl LagHistory {
    pub fn of(&self, group: &str) -> GroupLagHistory {
        let groups = self.lock();
        match groups.get(group) {
            Some(samples) => GroupLagHistory::Followed(samples.iter().copied().collect()),
            None if groups.len() >= MAX_GROUPS
                && groups.keys().next_back().is_some_and(|last| group > last.as_str()) =>
            {
                GroupLagHistory::NotFollowed
            }
            None => GroupLagHistory::Followed(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VecDeque<LagSample>>> {
        // Plain numbers: still good to show after a panic elsewhere.
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads every committed offset and the partitions' log bounds once, and records each group's total.
    pub fn sample(&self, node: &Node) {
        let committed = node.offsets.all_committed();
        let lag_of = |key: &OffsetKey, offset: i64| {
            let partition = node.registry.partition(&key.topic, key.partition).ok()?;
            let log = partition.log();
            let (start, end) = (log.log_start_offset(), log.high_watermark());
            Some(end - offset.max(start).min(end))
        };
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for (key, offset) in &committed {
            let lag = lag_of(key, *offset).unwrap_or(0);
            if let Some(total) = totals.get_mut(&key.group) {
                *total += lag;
            } else if totals.len() < MAX_GROUPS {
                totals.insert(key.group.clone(), lag);
            }
        }
        self.record(totals, now_ms());
    }

    /// Appends one sample per group in `totals` and forgets the groups not in it.
    fn record(&self, totals: BTreeMap<String, i64>, at_ms: i64) {
        let mut groups = self.lock();
        groups.retain(|group, _| totals.contains_key(group));
        for (group, lag) in totals {
            let samples = groups.entry(group).or_default();
            if samples.len() == SAMPLES_KEPT {
                samples.pop_front();
            }
            samples.push_back(LagSample { at_ms, lag });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_keeps_its_newest_totals_and_a_group_without_commits_is_forgotten() {
        let history = LagHistory::default();
        assert_eq!(history.of("billing"), GroupLagHistory::Followed(Vec::new()), "nothing sampled yet");
        for i in 0..(SAMPLES_KEPT as i64 + 5) {
            history.record(BTreeMap::from([("billing".to_string(), 1_000 - i), ("audit".to_string(), i)]), i);
        }
        let GroupLagHistory::Followed(samples) = history.of("billing") else { panic!("billing is followed") };
        assert_eq!(samples.len(), SAMPLES_KEPT, "the ring is bounded");
        assert_eq!(samples.first(), Some(&LagSample { at_ms: 5, lag: 995 }), "the oldest kept");
        assert_eq!(samples.last(), Some(&LagSample { at_ms: SAMPLES_KEPT as i64 + 4, lag: 876 }));
        history.record(BTreeMap::from([("audit".to_string(), 0)]), 1_000);
        assert_eq!(history.of("billing"), GroupLagHistory::Followed(Vec::new()), "forgotten once it has no commits");
    }

    #[test]
    fn past_the_group_limit_a_later_name_is_not_followed() {
        let history = LagHistory::default();
        let totals: BTreeMap<String, i64> = (0..MAX_GROUPS).map(|i| (format!("g{i:05}"), 1)).collect();
        history.record(totals, 0);
        assert!(matches!(history.of("g00000"), GroupLagHistory::Followed(s) if s.len() == 1));
        assert_eq!(history.of("zz-later"), GroupLagHistory::NotFollowed);
        assert_eq!(
            history.of("a-earlier"),
            GroupLagHistory::Followed(Vec::new()),
            "would be followed: not yet sampled"
        );
    }
}
