//! Topic ids: the stable UUID each topic carries beside its name, as Kafka's topics do since KIP-516. Kafka
//! clients that speak KIP-848 (`group.protocol=consumer`) learn their assignments by topic id and resolve the ids
//! through Metadata v10+, so an id must never change while its topic exists, across restarts and on every node.
//!
//! A new topic gets a random (version 4) id. A topic written before ids existed gets one when it is loaded: on a
//! single node a random one, persisted in its metadata file at once; on a cluster one derived from its name
//! (`derived`), which every replica of the controller's metadata computes alike without a new log entry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A topic's id. Never Kafka's reserved zero id or its "metadata topic" id 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(Uuid);

impl TopicId {
    pub fn random() -> TopicId {
        loop {
            let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            if !is_reserved(id) {
                return TopicId(id);
            }
        }
    }

    /// The id of a topic created before ids existed: a version 8 (custom) UUID of FNV-1a hashes of its name,
    /// the same on every node and every run.
    pub fn derived(topic: &str) -> TopicId {
        let hash = |seed: u64| topic.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
        let (high, low) = (hash(0xcbf2_9ce4_8422_2325), hash(0x6c62_272e_07bb_0142));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        if is_reserved(id) {
            // Unreachable in practice (the version bits are set); keeps the invariant without a panic.
            return TopicId(uuid::Builder::from_custom_bytes([0xff; 16]).into_uuid());
        }
        TopicId(id)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }

    pub fn from_uuid(id: Uuid) -> Option<TopicId> {
        (!is_reserved(id)).then_some(TopicId(id))
    }
}

fn is_reserved(id: Uuid) -> bool {
    id.as_u128() <= 1
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a topic id: a UUID like 7f1c5b0e-3d2a-4c8e-9b1f-2a6d4e8c0b3a (not all zeros or 1) is allowed")]
pub struct BadTopicId {
    text: String,
}

impl FromStr for TopicId {
    type Err = BadTopicId;

    fn from_str(text: &str) -> Result<TopicId, BadTopicId> {
        Uuid::parse_str(text).ok().and_then(TopicId::from_uuid).ok_or_else(|| BadTopicId { text: text.to_owned() })
    }
}

impl Serialize for TopicId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TopicId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_and_reserved_ones_are_refused() {
        let id = TopicId::random();
        assert_eq!(id.to_string().parse::<TopicId>().unwrap(), id);
        assert_ne!(TopicId::random(), id);
        for reserved in ["00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000001", "x"] {
            let err = reserved.parse::<TopicId>().unwrap_err();
            assert!(err.to_string().contains("not a topic id"), "{err}");
        }
    }

    #[test]
    fn a_derived_id_depends_only_on_the_name() {
        assert_eq!(TopicId::derived("orders"), TopicId::derived("orders"));
        assert_ne!(TopicId::derived("orders"), TopicId::derived("orderz"));
        assert_eq!(TopicId::derived("orders").as_uuid().get_version_num(), 8);
    }
}
