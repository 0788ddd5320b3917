//! Dead-letter topics for share groups (Kafka's KIP-1191): a share group whose config names a topic
//! (`errors.deadletterqueue.topic.name`) has every record it gives up on written there: each record a member
//! rejects, and each released (by its member, by a lock that ran out, by a member that left) after its last
//! allowed delivery (`share.delivery.count.limit`). A dead letter is a record of its own whose headers say where the
//! record was and why it is here (`__dlq.errors.topic`, `.partition`, `.offset`, `.group`, `.delivery.count`,
//! `.message`, as Kafka writes them); it carries the record's key and value too when the group sets
//! `errors.deadletterqueue.copy.record.enable=true`, else none. It goes to partition `source partition % the
//! dead-letter topic's partition count`, so one source partition's dead letters stay in order.
//!
//! The topic must be fit for it, checked at each write since the group's config, the topic and the broker's
//! prefix may all change: not internal (`__`), named with the broker's `dead_letter_topic_prefix` (`dlq.` by
//! default, empty for any name), existing (or created at its first dead letter, opted in, with the broker's
//! `dead_letter_auto_create_topics`), and opted in with its own `errors.deadletterqueue.group.enable=true`, so a
//! group config cannot write into a topic its owner did not offer.
//! A topic that is not fit, or a write that keeps failing, is logged (with the group, the topics and why) and
//! the records are archived without their dead letters, as Kafka does: a broken dead-letter topic never holds the
//! group's queue up.
//!
//! Invariant: at least once. The dead letters of the records a share partition's state gives up on are written
//! (acknowledged by the dead-letter partition's in-sync replicas) before that state is stored
//! (`delivery::save`), so a crash in between leaves the records in the stored window, and they are given up on,
//! and written, again: a dead letter may be written twice, never lost while its topic is fit.
//!
//! Where: by the node that leads the source partition (it holds the window and the record), which appends to the
//! dead-letter partition itself when it leads that too, else asks that partition's leader to (the internal
//! `Share` call, `remote.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rill_protocol::v1;

use super::{DeadLetter, DeadLetterCause, StateToStore};
use crate::error::BrokerError;
use crate::groups::TopicPartition;
use crate::node::{now_ms, Node};

pub const HEADER_TOPIC: &str = "__dlq.errors.topic";
pub const HEADER_PARTITION: &str = "__dlq.errors.partition";
pub const HEADER_OFFSET: &str = "__dlq.errors.offset";
pub const HEADER_GROUP: &str = "__dlq.errors.group";
pub const HEADER_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
pub const HEADER_MESSAGE: &str = "__dlq.errors.message";

/// Writes of one partition's dead letters before they are given up: a dead-letter partition between leaders
/// (or just created, its leader not elected yet) gets two seconds, but one that is down must not hold the group's
/// acknowledgements for long.
const ATTEMPTS: u32 = 8;
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Copies of each partition of a dead-letter topic created on a cluster, at most (fewer on a smaller cluster):
/// dead letters outlive the loss of a node, as the groups' own offsets do.
const CREATED_REPLICAS: u32 = 3;

/// Bytes of the source log one read takes when dead letters copy their records: most dead letters are single
/// records, so a larger read would mostly be wasted.
const COPY_READ_BYTES: usize = 1 << 20;

/// Why a group's dead letters were not written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(
        "dead-letter topic {topic} is internal (its name starts with __): internal topics never take dead letters"
    )]
    Internal { topic: String },
    #[error(
        "dead-letter topic {topic} does not start with {prefix:?}, the broker's dead_letter_topic_prefix (Kafka's \
         errors.deadletterqueue.topic.name.prefix)"
    )]
    Prefix { topic: String, prefix: String },
    #[error(
        "dead-letter topic {topic} does not exist: create it with errors.deadletterqueue.group.enable=true, or \
         start the broker with --dead-letter-auto-create-topics"
    )]
    NoTopic { topic: String },
    #[error("dead-letter topic {topic} could not be created: {reason}")]
    NotCreated { topic: String, reason: String },
    #[error("topic {topic} does not take dead letters: set its errors.deadletterqueue.group.enable=true")]
    NotEnabled { topic: String },
    #[error("the records of dead-letter topic {topic} are its own: they are not written to it again")]
    Cycle { topic: String },
    #[error("writing to dead-letter topic {topic} partition {partition} failed after {ATTEMPTS} attempts: {reason}")]
    Write { topic: String, partition: u32, reason: String },
}

/// Writes the dead letters `states` carry, partition by partition, and empties them: each is written, or given up
/// (logged), before this returns. Called just before `states` are stored.
pub async fn write(node: &Node, group: &str, states: &mut [StateToStore]) {
    for state in states.iter_mut().filter(|state| !state.dead_letters.is_empty()) {
        let letters = std::mem::take(&mut state.dead_letters);
        let source = TopicPartition::new(state.key.topic.clone(), state.key.partition);
        let written = write_partition(node, group, &source, &letters).await;
        let count = letters.len() as u64;
        match &written {
            Ok(Some(_)) => node.shares.count_dead_letters(&state.key, count, 0),
            Ok(None) => {}
            Err(_) => node.shares.count_dead_letters(&state.key, 0, count),
        }
        match written {
            Ok(Some((topic, partition))) => tracing::debug!(
                group,
                topic = %source.topic,
                partition = source.partition,
                records = letters.len(),
                dead_letter_topic = %topic,
                dead_letter_partition = partition,
                "dead letters written"
            ),
            Ok(None) => {}
            Err(err) => tracing::warn!(
                group,
                topic = %source.topic,
                partition = source.partition,
                records = letters.len(),
                error = %err,
                "dead letters not written: the records are archived without them"
            ),
        }
    }
}

/// Writes one source partition's dead letters; where they went, or `None` when the group no longer names a
/// dead-letter topic (its config changed since the records were given up on).
async fn write_partition(
    node: &Node,
    group: &str,
    source: &TopicPartition,
    letters: &[DeadLetter],
) -> Result<Option<(String, u32)>, DeadLetterError> {
    let Some(topic) = node.group_configs.dead_letter_topic(group) else { return Ok(None) };
    let partition = match destination(node, &topic.name, source) {
        Err(DeadLetterError::NoTopic { .. }) if node.config.dead_letter_auto_create_topics => {
            create(node, &topic.name).await?;
            destination(node, &topic.name, source)?
        }
        found => found?,
    };
    let copies = match topic.copies_record {
        true => copied_records(node, source, letters).await,
        false => BTreeMap::new(),
    };
    let records = letters.iter().map(|letter| dead_letter_record(group, source, letter, copies.get(&letter.offset)));
    let request = v1::ProduceRequest {
        topic: topic.name.clone(),
        partition: Some(partition),
        records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records: records.collect() })),
        acks: v1::Acks::All as i32,
    };
    let mut attempt = 1;
    loop {
        match produce_at_leader(node, request.clone()).await {
            Ok(()) => return Ok(Some((topic.name, partition))),
            Err(err) if attempt < ATTEMPTS && is_passing(&err) => {
                tracing::debug!(group, dead_letter_topic = %topic.name, partition, error = %err, "dead letter write retried");
                attempt += 1;
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            Err(err) => {
                return Err(DeadLetterError::Write { topic: topic.name, partition, reason: err.to_string() });
            }
        }
    }
}

/// The dead-letter partition `source`'s dead letters go to, once the topic is found fit for them.
fn destination(node: &Node, topic: &str, source: &TopicPartition) -> Result<u32, DeadLetterError> {
    if topic.starts_with("__") {
        return Err(DeadLetterError::Internal { topic: topic.to_owned() });
    }
    let prefix = &node.config.dead_letter_topic_prefix;
    if !topic.starts_with(prefix.as_str()) {
        return Err(DeadLetterError::Prefix { topic: topic.to_owned(), prefix: prefix.clone() });
    }
    if topic == source.topic {
        return Err(DeadLetterError::Cycle { topic: topic.to_owned() });
    }
    let (partitions, takes_dead_letters) = match &node.replication {
        Some(replication) => {
            let metadata = replication.metadata();
            let placed =
                metadata.topics.get(topic).ok_or_else(|| DeadLetterError::NoTopic { topic: topic.to_owned() })?;
            (placed.partitions.len() as u32, placed.settings.takes_dead_letters)
        }
        None => {
            let found = node.registry.topic(topic).map_err(|_| DeadLetterError::NoTopic { topic: topic.to_owned() })?;
            (found.partition_count(), found.settings().takes_dead_letters)
        }
    };
    if !takes_dead_letters {
        return Err(DeadLetterError::NotEnabled { topic: topic.to_owned() });
    }
    if partitions == 0 {
        return Err(DeadLetterError::NoTopic { topic: topic.to_owned() });
    }
    Ok(source.partition % partitions)
}

/// Creates dead-letter topic `name`, opted in: one partition, on up to [`CREATED_REPLICAS`] nodes of a cluster. A
/// topic another write created meanwhile is found, not an error.
async fn create(node: &Node, name: &str) -> Result<(), DeadLetterError> {
    let config = v1::TopicConfig { dead_letter_group_enable: Some(true), ..Default::default() };
    let created = match &node.replication {
        Some(replication) => {
            let nodes = u32::try_from(replication.metadata().alive_nodes().len()).unwrap_or(u32::MAX);
            let request = v1::CreateTopicRequest {
                name: name.to_owned(),
                partition_count: 1,
                config: Some(config),
                replication_factor: Some(nodes.clamp(1, CREATED_REPLICAS)),
                ..Default::default()
            };
            replication.create_topic(request).await.map(drop)
        }
        None => node.registry.create(name, 1, &config).await.map(drop),
    };
    match created {
        Ok(()) => {
            tracing::info!(topic = name, "dead-letter topic created");
            Ok(())
        }
        Err(BrokerError::TopicExists { .. }) => Ok(()),
        Err(err) => Err(DeadLetterError::NotCreated { topic: name.to_owned(), reason: err.to_string() }),
    }
}

/// The key and value of each record `letters` name, read from the source partition's log (this node leads it).
/// A record the log no longer holds (retention, compaction) or cannot be read has none: its dead letter still
/// says where it was.
async fn copied_records(
    node: &Node,
    source: &TopicPartition,
    letters: &[DeadLetter],
) -> BTreeMap<i64, (Option<Bytes>, Option<Bytes>)> {
    let mut found = BTreeMap::new();
    let Ok(log) = node.registry.partition(&source.topic, source.partition) else { return found };
    let mut wanted: Vec<i64> = letters.iter().map(|letter| letter.offset).collect();
    wanted.sort_unstable();
    for offset in wanted {
        if found.contains_key(&offset) {
            continue;
        }
        let read = match log.read(offset, COPY_READ_BYTES).await {
            Ok(read) => read,
            Err(err) => {
                tracing::debug!(topic = %source.topic, partition = source.partition, offset, error = %err, "a dead letter's record cannot be read");
                continue;
            }
        };
        let Ok(records) = crate::codec::decode_records(&read.batches, offset) else { continue };
        for record in records {
            found.entry(record.offset).or_insert((record.key, record.value));
        }
    }
    found
}

/// One dead letter: the record's key and value when copied, and the headers saying where it was and why.
fn dead_letter_record(
    group: &str,
    source: &TopicPartition,
    letter: &DeadLetter,
    copy: Option<&(Option<Bytes>, Option<Bytes>)>,
) -> v1::Record {
    let message = match letter.cause {
        DeadLetterCause::Rejected => "rejected by a member of the share group".to_owned(),
        DeadLetterCause::DeliveryLimit => format!(
            "delivered {} times, the share group's share.delivery.count.limit, without being accepted",
            letter.delivery_count
        ),
    };
    let header = |key: &str, value: String| v1::RecordHeader { key: key.to_owned(), value: Some(value.into()) };
    let (key, value) = copy.cloned().unwrap_or_default();
    v1::Record {
        key,
        value,
        headers: vec![
            header(HEADER_TOPIC, source.topic.clone()),
            header(HEADER_PARTITION, source.partition.to_string()),
            header(HEADER_OFFSET, letter.offset.to_string()),
            header(HEADER_GROUP, group.to_owned()),
            header(HEADER_DELIVERY_COUNT, letter.delivery_count.to_string()),
            header(HEADER_MESSAGE, message),
        ],
        timestamp_ms: now_ms(),
    }
}

/// Appends `request` at its partition's leader: here, or (on a cluster) where the metadata says.
async fn produce_at_leader(node: &Node, request: v1::ProduceRequest) -> Result<(), BrokerError> {
    match crate::service::produce::produce(node, request.clone()).await {
        Ok(_) => Ok(()),
        Err(BrokerError::NotLeader { leader: Some(leader), node_id, .. }) if leader != node_id => {
            super::remote::write_dead_letters(node, leader, request).await
        }
        Err(err) => Err(err),
    }
}

/// Whether a failed write may succeed if tried again soon: a partition between leaders, or a leader out of
/// reach for a moment.
fn is_passing(err: &BrokerError) -> bool {
    matches!(
        err,
        BrokerError::NotLeader { .. }
            | BrokerError::NotEnoughReplicas { .. }
            | BrokerError::ControllerUnavailable { .. }
            | BrokerError::PartitionClosed { .. }
    )
}

/// Appends dead letters another node sent (this node leads their partition): the `Share` call's side of
/// [`produce_at_leader`].
pub async fn append_here(node: &Node, request: v1::ProduceRequest) -> Result<(), BrokerError> {
    crate::service::produce::produce(node, request).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_says_where_its_record_was_and_why() {
        let source = TopicPartition::new("jobs", 4);
        let letter = DeadLetter { offset: 17, delivery_count: 5, cause: DeadLetterCause::DeliveryLimit };
        let record = dead_letter_record("workers", &source, &letter, None);
        let headers: Vec<(String, String)> = record
            .headers
            .iter()
            .map(|h| {
                (h.key.clone(), String::from_utf8(h.value.clone().unwrap_or_default().to_vec()).unwrap_or_default())
            })
            .collect();
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET, HEADER_GROUP, HEADER_DELIVERY_COUNT, HEADER_MESSAGE]
        );
        assert_eq!(headers[0].1, "jobs");
        assert_eq!(headers[1].1, "4");
        assert_eq!(headers[2].1, "17");
        assert_eq!(headers[3].1, "workers");
        assert_eq!(headers[4].1, "5");
        assert!(headers[5].1.contains("delivered 5 times"), "{}", headers[5].1);
        assert_eq!((record.key, record.value), (None, None), "nothing copied unless the group asks");

        let rejected = DeadLetter { offset: 3, delivery_count: 1, cause: DeadLetterCause::Rejected };
        let copy = (Some(Bytes::from_static(b"k")), Some(Bytes::from_static(b"v")));
        let record = dead_letter_record("workers", &source, &rejected, Some(&copy));
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
        let message = record.headers.iter().find(|h| h.key == HEADER_MESSAGE).and_then(|h| h.value.clone());
        assert_eq!(message.as_deref(), Some(&b"rejected by a member of the share group"[..]));
    }
}
