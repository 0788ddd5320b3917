//! How a share group's partitions are spread over its members: a pure function of the members' subscriptions
//! and the topics' partition counts, recomputed whenever either changes.
//!
//! Unlike a consumer group, a share group may give one partition to several members (records are handed out
//! one by one under locks, so members never read the same record at once), and a member never has to give a
//! partition up before another may read it, so an assignment is replaced at once, with no revocation step.
//! Topic by topic, with P partitions and M subscribed members (in member-id order): when M <= P, partition p goes
//! to member p mod M (each partition read by one member, as in a consumer group); when M > P, member m reads
//! partition m mod P (every member has work, every partition is read by M/P members or one more). Either way every
//! partition is read and every member of a topic with partitions gets at least one.

use std::collections::{BTreeMap, BTreeSet};

use crate::groups::TopicPartition;

/// The partitions of each member, for members (by id) subscribed to topics, and topics' partition counts
/// (topics that do not exist are absent and give nothing).
pub fn assign(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut assignment: BTreeMap<String, BTreeSet<TopicPartition>> =
        subscriptions.keys().map(|member| (member.clone(), BTreeSet::new())).collect();
    for (topic, &partitions) in partition_counts {
        let readers: Vec<&String> =
            subscriptions.iter().filter(|(_, topics)| topics.contains(topic)).map(|(member, _)| member).collect();
        if readers.is_empty() || partitions == 0 {
            continue;
        }
        let members = readers.len() as u32;
        if members <= partitions {
            for partition in 0..partitions {
                let reader = readers[(partition % members) as usize];
                assignment.entry(reader.clone()).or_default().insert(TopicPartition::new(topic, partition));
            }
        } else {
            for (index, reader) in readers.iter().enumerate() {
                let partition = index as u32 % partitions;
                assignment.entry((*reader).clone()).or_default().insert(TopicPartition::new(topic, partition));
            }
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions(members: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|(member, topics)| (member.to_string(), topics.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn partitions_of(assignment: &BTreeMap<String, BTreeSet<TopicPartition>>, member: &str) -> Vec<(String, u32)> {
        assignment[member].iter().map(|tp| (tp.topic.clone(), tp.partition)).collect()
    }

    #[test]
    fn fewer_members_than_partitions_split_them() {
        let counts = BTreeMap::from([("t".to_string(), 5)]);
        let assignment = assign(&subscriptions(&[("a", &["t"]), ("b", &["t"])]), &counts);
        assert_eq!(partitions_of(&assignment, "a"), [("t".into(), 0), ("t".into(), 2), ("t".into(), 4)]);
        assert_eq!(partitions_of(&assignment, "b"), [("t".into(), 1), ("t".into(), 3)]);
    }

    #[test]
    fn more_members_than_partitions_share_them_and_all_have_work() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let members = subscriptions(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let assignment = assign(&members, &counts);
        assert_eq!(partitions_of(&assignment, "a"), [("t".into(), 0)]);
        assert_eq!(partitions_of(&assignment, "b"), [("t".into(), 1)]);
        assert_eq!(partitions_of(&assignment, "c"), [("t".into(), 0)]);
    }

    #[test]
    fn topics_are_assigned_to_their_subscribers_only_and_missing_topics_give_nothing() {
        let counts = BTreeMap::from([("t".to_string(), 1), ("u".to_string(), 1)]);
        let assignment = assign(&subscriptions(&[("a", &["t", "gone"]), ("b", &["u"])]), &counts);
        assert_eq!(partitions_of(&assignment, "a"), [("t".into(), 0)]);
        assert_eq!(partitions_of(&assignment, "b"), [("u".into(), 0)]);
        let nothing = assign(&subscriptions(&[("a", &["gone"])]), &counts);
        assert!(nothing["a"].is_empty());
    }

    proptest::proptest! {
        #[test]
        fn every_partition_is_read_and_every_subscriber_has_work(members in 1usize..9, partitions in 1u32..9) {
            let names: Vec<String> = (0..members).map(|m| format!("m{m}")).collect();
            let subs = names.iter().map(|n| (n.clone(), BTreeSet::from(["t".to_string()]))).collect();
            let assignment = assign(&subs, &BTreeMap::from([("t".to_string(), partitions)]));
            let read: BTreeSet<u32> = assignment.values().flatten().map(|tp| tp.partition).collect();
            proptest::prop_assert_eq!(read.len() as u32, partitions);
            proptest::prop_assert!(assignment.values().all(|owned| !owned.is_empty()));
            let most = assignment.values().map(BTreeSet::len).max().unwrap_or(0);
            let least = assignment.values().map(BTreeSet::len).min().unwrap_or(0);
            proptest::prop_assert!(most - least <= 1, "balanced: {most} vs {least}");
        }
    }
}
