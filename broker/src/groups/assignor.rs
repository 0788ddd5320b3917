//! Server-side partition assignors: given the members, what each subscribes to and the partition count of every
//! subscribed topic, the *target* assignment. Pure functions of their input, so every broker computes the same
//! target and the unit tests below check them exhaustively on small cases.
//!
//! A target only says where partitions should end up; `group.rs` moves them there without ever giving one
//! partition to two members at once.

use std::collections::{BTreeMap, BTreeSet};

use rill_protocol::v1;

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// How a group spreads its partitions; see `Assignor` in the .proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Sticky,
    Range,
    RoundRobin,
}

impl Assignor {
    /// The assignor a join asks for; `None` for a value this broker does not know.
    pub fn from_wire(value: i32) -> Option<Assignor> {
        match v1::Assignor::try_from(value).ok()? {
            v1::Assignor::Unspecified | v1::Assignor::Sticky => Some(Assignor::Sticky),
            v1::Assignor::Range => Some(Assignor::Range),
            v1::Assignor::RoundRobin => Some(Assignor::RoundRobin),
        }
    }

    pub fn to_wire(self) -> v1::Assignor {
        match self {
            Assignor::Sticky => v1::Assignor::Sticky,
            Assignor::Range => v1::Assignor::Range,
            Assignor::RoundRobin => v1::Assignor::RoundRobin,
        }
    }

    /// The target assignment: every partition of a subscribed topic goes to exactly one member subscribed to
    /// it; every member has an entry (possibly empty). `previous` is the last target, which `Sticky` keeps as
    /// much as balance allows.
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, BTreeSet<String>>,
        partition_counts: &BTreeMap<String, u32>,
        previous: &Assignment,
    ) -> Assignment {
        let mut target: Assignment = subscriptions.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
        match self {
            Assignor::Range => range(subscriptions, partition_counts, &mut target),
            Assignor::RoundRobin => round_robin(subscriptions, partition_counts, &mut target),
            Assignor::Sticky => sticky(subscriptions, partition_counts, previous, &mut target),
        }
        target
    }
}

/// Members subscribed to `topic`, by id.
fn subscribers<'a>(subscriptions: &'a BTreeMap<String, BTreeSet<String>>, topic: &str) -> Vec<&'a String> {
    subscriptions.iter().filter(|(_, topics)| topics.contains(topic)).map(|(m, _)| m).collect()
}

fn range(subs: &BTreeMap<String, BTreeSet<String>>, counts: &BTreeMap<String, u32>, target: &mut Assignment) {
    for (topic, &count) in counts {
        let members = subscribers(subs, topic);
        if members.is_empty() {
            continue;
        }
        let (per_member, extra) = (count as usize / members.len(), count as usize % members.len());
        let mut next = 0u32;
        for (i, member) in members.iter().enumerate() {
            let take = per_member + usize::from(i < extra);
            let owned = target.get_mut(*member).expect("every member has an entry");
            for _ in 0..take {
                owned.insert(TopicPartition::new(topic.clone(), next));
                next += 1;
            }
        }
    }
}

fn round_robin(subs: &BTreeMap<String, BTreeSet<String>>, counts: &BTreeMap<String, u32>, target: &mut Assignment) {
    let members: Vec<&String> = subs.keys().collect();
    if members.is_empty() {
        return;
    }
    let mut turn = 0usize;
    for (topic, &count) in counts {
        if subscribers(subs, topic).is_empty() {
            continue;
        }
        for partition in 0..count {
            // Deal to the next member in turn that subscribes to this topic (one exists, checked above).
            while !subs[members[turn % members.len()]].contains(topic) {
                turn += 1;
            }
            let member = members[turn % members.len()];
            target
                .get_mut(member)
                .expect("every member has an entry")
                .insert(TopicPartition::new(topic.clone(), partition));
            turn += 1;
        }
    }
}

/// Keep each partition with its previous owner if that member still subscribes; give the rest to the least
/// loaded subscriber; then move partitions from the most to the least loaded member that can take them until
/// no move narrows the gap. Each move lowers the sum of squared loads, so the loop ends.
fn sticky(
    subs: &BTreeMap<String, BTreeSet<String>>,
    counts: &BTreeMap<String, u32>,
    previous: &Assignment,
    target: &mut Assignment,
) {
    let all: Vec<TopicPartition> = counts
        .iter()
        .filter(|(topic, _)| !subscribers(subs, topic).is_empty())
        .flat_map(|(topic, &count)| (0..count).map(move |p| TopicPartition::new(topic.clone(), p)))
        .collect();
    let mut unowned = Vec::new();
    for tp in &all {
        let keeper = previous
            .iter()
            .find(|(m, owned)| owned.contains(tp) && subs.get(*m).is_some_and(|t| t.contains(&tp.topic)));
        match keeper {
            Some((member, _)) => {
                target.get_mut(member).expect("kept only by current members").insert(tp.clone());
            }
            None => unowned.push(tp.clone()),
        }
    }
    for tp in unowned {
        let least = subscribers(subs, &tp.topic).into_iter().min_by_key(|m| (target[*m].len(), (*m).clone()));
        if let Some(member) = least {
            target.get_mut(member).expect("subscriber has an entry").insert(tp);
        }
    }
    balance(subs, target);
}

fn balance(subs: &BTreeMap<String, BTreeSet<String>>, target: &mut Assignment) {
    loop {
        let mut best: Option<(String, String, TopicPartition)> = None;
        // The biggest gap a single move can close: from the most loaded member to the least loaded one that
        // subscribes to one of its partitions' topics.
        let mut by_load: Vec<(&String, usize)> = target.iter().map(|(m, o)| (m, o.len())).collect();
        by_load.sort_by_key(|(m, load)| (std::cmp::Reverse(*load), (*m).clone()));
        'search: for (from, from_load) in &by_load {
            for (to, to_load) in by_load.iter().rev() {
                if *to_load + 1 >= *from_load {
                    break;
                }
                let movable = target[*from].iter().rev().find(|tp| subs[*to].contains(&tp.topic));
                if let Some(tp) = movable {
                    best = Some(((*from).clone(), (*to).clone(), tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = best else { return };
        target.get_mut(&from).expect("member").remove(&tp);
        target.get_mut(&to).expect("member").insert(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members.iter().map(|(m, t)| (m.to_string(), t.iter().map(|t| t.to_string()).collect())).collect()
    }

    fn counts(topics: &[(&str, u32)]) -> BTreeMap<String, u32> {
        topics.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    fn loads(a: &Assignment) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    /// Every partition of a subscribed topic is assigned exactly once, to a subscriber.
    fn assert_complete(a: &Assignment, s: &BTreeMap<String, BTreeSet<String>>, c: &BTreeMap<String, u32>) {
        let mut seen = BTreeSet::new();
        for (member, owned) in a {
            for tp in owned {
                assert!(s[member].contains(&tp.topic), "{member} does not subscribe to {tp:?}");
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let expected: usize =
            c.iter().filter(|(t, _)| s.values().any(|ts| ts.contains(*t))).map(|(_, n)| *n as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn every_assignor_assigns_each_partition_once_and_balances_a_homogeneous_group() {
        let c = counts(&[("a", 7), ("b", 5)]);
        for n in 1..=13 {
            let names: Vec<String> = (0..n).map(|i| format!("m{i:02}")).collect();
            let s: BTreeMap<_, _> = names.iter().map(|m| (m.clone(), ["a".to_string(), "b".into()].into())).collect();
            for assignor in [Assignor::Sticky, Assignor::RoundRobin] {
                let a = assignor.assign(&s, &c, &Assignment::new());
                assert_complete(&a, &s, &c);
                let (min, max) = (loads(&a).into_iter().min().unwrap(), loads(&a).into_iter().max().unwrap());
                assert!(max - min <= 1, "{assignor:?} with {n} members: loads {:?}", loads(&a));
            }
            assert_complete(&Assignor::Range.assign(&s, &c, &Assignment::new()), &s, &c);
        }
    }

    #[test]
    fn range_gives_consecutive_partitions_and_the_extra_ones_to_the_first_members() {
        let s = subs(&[("x", &["t"]), ("y", &["t"])]);
        let a = Assignor::Range.assign(&s, &counts(&[("t", 5)]), &Assignment::new());
        let parts = |m: &str| a[m].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!((parts("x"), parts("y")), (vec![0, 1, 2], vec![3, 4]));
    }

    #[test]
    fn assignors_respect_heterogeneous_subscriptions() {
        let s = subs(&[("x", &["a"]), ("y", &["a", "b"]), ("z", &["b", "gone"])]);
        let c = counts(&[("a", 4), ("b", 3), ("unsubscribed", 2)]);
        for assignor in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
            assert_complete(&assignor.assign(&s, &c, &Assignment::new()), &s, &c);
        }
    }

    #[test]
    fn sticky_moves_only_what_balance_needs_when_a_member_joins_or_leaves() {
        let c = counts(&[("t", 6)]);
        let three = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let before = Assignor::Sticky.assign(&three, &c, &Assignment::new());
        let four = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let after = Assignor::Sticky.assign(&four, &c, &before);
        assert_complete(&after, &four, &c);
        let kept: usize = ["a", "b", "c"].iter().map(|m| after[*m].intersection(&before[*m]).count()).sum();
        // Loads 2,2,1,1: the newcomer needs one partition, and only that one moves.
        assert_eq!(kept, 5, "one partition moved: {before:?} -> {after:?}");
        assert_eq!(after["d"].len(), 1);
        assert!(after.iter().filter(|(m, _)| *m != "d").all(|(m, o)| o.is_subset(&before[m])));

        let two = subs(&[("a", &["t"]), ("b", &["t"])]);
        let shrunk = Assignor::Sticky.assign(&two, &c, &before);
        assert_complete(&shrunk, &two, &c);
        assert!(before["a"].is_subset(&shrunk["a"]) && before["b"].is_subset(&shrunk["b"]), "survivors keep theirs");
    }

    #[test]
    fn sticky_is_stable_when_nothing_changes() {
        let s = subs(&[("a", &["t", "u"]), ("b", &["t"]), ("c", &["u"])]);
        let c = counts(&[("t", 5), ("u", 4)]);
        let first = Assignor::Sticky.assign(&s, &c, &Assignment::new());
        assert_eq!(Assignor::Sticky.assign(&s, &c, &first), first);
    }

    #[test]
    fn no_members_or_no_partitions_assign_nothing() {
        let empty = BTreeMap::new();
        assert!(Assignor::Sticky.assign(&empty, &counts(&[("t", 3)]), &Assignment::new()).is_empty());
        let s = subs(&[("a", &["missing"])]);
        for assignor in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
            let a = assignor.assign(&s, &counts(&[("t", 3)]), &Assignment::new());
            assert_eq!(a.len(), 1);
            assert!(a["a"].is_empty());
        }
    }
}
