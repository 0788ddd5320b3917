//! Kafka's consumer protocol: what a member of a "consumer" group puts in its JoinGroup metadata (the topics it
//! subscribes to) and what its leader puts in each SyncGroup assignment (the partitions it gives the member).
//! The broker passes both on unread; it decodes them only to show a Kafka group in `rill group describe`, and
//! encodes them to show a rill group to Kafka's DescribeGroups. Both start with an i16 version; later versions
//! only append fields, so the fields read here (the first) mean the same in every version.
//!
//! Decoding is by hand and never reserves by a declared count: the bytes come from clients.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::groups::TopicPartition;

/// The version rill encodes (v0: topics only; clients read any version).
const ENCODED_VERSION: i16 = 0;

/// The subscribed topics in a member's metadata; `None` if it is not the consumer protocol.
pub fn subscribed_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut reader = Reader(metadata);
    reader.int16()?;
    let count = reader.int32()?;
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        topics.insert(reader.string()?);
    }
    Some(topics)
}

/// The partitions in a leader's assignment for one member; `None` if it is not the consumer protocol.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<TopicPartition>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut reader = Reader(assignment);
    reader.int16()?;
    let mut assigned = Vec::new();
    for _ in 0..reader.int32()? {
        let topic = reader.string()?;
        for _ in 0..reader.int32()? {
            assigned.push(TopicPartition::new(topic.clone(), u32::try_from(reader.int32()?).ok()?));
        }
    }
    Some(assigned)
}

pub fn encode_subscription(topics: &[String]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect());
    versioned(&subscription)
}

pub fn encode_assignment(assigned: &[TopicPartition]) -> Bytes {
    let mut topics: Vec<AssignedTopic> = Vec::new();
    for tp in assigned {
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == tp.topic => last.partitions.push(tp.partition as i32),
            _ => topics.push(
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![tp.partition as i32]),
            ),
        }
    }
    versioned(&ConsumerProtocolAssignment::default().with_assigned_partitions(topics))
}

fn versioned(message: &impl Encodable) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(ENCODED_VERSION);
    // v0 of these two messages has no field the encoder can refuse (no nulls where none are allowed).
    if message.encode(&mut out, ENCODED_VERSION).is_err() {
        return Bytes::new();
    }
    out.freeze()
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn int16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    /// A count: negative (null) is none.
    fn int32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?).max(0))
    }

    fn string(&mut self) -> Option<String> {
        let length = usize::try_from(self.int16()?).ok()?;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_encoded_decodes_and_garbage_is_none() {
        let topics = vec!["a".to_string(), "b".to_string()];
        assert_eq!(subscribed_topics(&encode_subscription(&topics)), Some(topics.into_iter().collect()));
        let assigned = vec![TopicPartition::new("a", 0), TopicPartition::new("a", 3), TopicPartition::new("b", 1)];
        assert_eq!(assigned_partitions(&encode_assignment(&assigned)), Some(assigned));
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None, "a count the bytes cannot hold");
        assert_eq!(assigned_partitions(b"\x00"), None);
        assert_eq!(assigned_partitions(b""), Some(Vec::new()), "no assignment");
    }

    proptest::proptest! {
        #[test]
        fn any_subscription_and_assignment_round_trip(
            topics in proptest::collection::btree_set("[a-z.]{1,20}", 0..8),
            partitions in proptest::collection::vec(("[a-z]{1,5}", 0u32..1000), 0..20),
        ) {
            let listed: Vec<String> = topics.iter().cloned().collect();
            proptest::prop_assert_eq!(subscribed_topics(&encode_subscription(&listed)), Some(topics));
            let mut assigned: Vec<TopicPartition> =
                partitions.into_iter().map(|(topic, p)| TopicPartition::new(topic, p)).collect();
            assigned.sort();
            proptest::prop_assert_eq!(assigned_partitions(&encode_assignment(&assigned)), Some(assigned));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = subscribed_topics(&bytes);
            let _ = assigned_partitions(&bytes);
        }
    }
}
