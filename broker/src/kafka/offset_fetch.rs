//! OffsetFetch (v1–v9): a group's committed offsets from the offset store rill's own consumers use. A partition
//! without a commit is offset -1 with no error, as in Kafka; no topics (null, v2+) asks for every partition the
//! group has committed. v8 asks for several groups in one request. v9 (KIP-848) names the asking member and its
//! epoch: in a group of KIP-848 members they are checked as a commit's are (UNKNOWN_MEMBER_ID,
//! STALE_MEMBER_EPOCH), so a member fenced out of the group does not resume from offsets it no longer owns.
//! `require_stable` (v7+, what a `read_committed` consumer sends): a partition whose offset an open transaction is
//! committing gets UNSTABLE_OFFSET_COMMIT, which the client retries until the transaction ends, as with Kafka.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::group_errors::{classic_code, group_code};
use super::KafkaContext;
use crate::groups::check_group_id;
use crate::offsets::{Committed, OffsetKey};

/// Kafka's UNSTABLE_OFFSET_COMMIT.
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// Whether an open transaction is committing an offset of the group's partition.
fn is_unstable(kafka: &KafkaContext, group: &str, topic: &str, partition: i32) -> bool {
    let Ok(partition) = u32::try_from(partition) else { return false };
    kafka.node.transactions.has_pending_offset(group, topic, partition)
}

/// One partition's committed offset (or none), found for one group.
struct Found {
    partition: i32,
    committed: Option<Committed>,
}

pub fn answer(
    kafka: &KafkaContext,
    request: OffsetFetchRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|asked| {
                let wanted = asked
                    .topics
                    .map(|topics| topics.into_iter().map(|t| (t.name, t.partition_indexes)).collect::<Vec<_>>());
                let member = Member { id: asked.member_id.as_ref().map(|id| id.as_str()), epoch: asked.member_epoch };
                let (error_code, topics) = match lookup(kafka, &asked.group_id, member, wanted, principal) {
                    Ok(topics) => (0, topics),
                    Err(code) => (code, Vec::new()),
                };
                let topics = topics
                    .into_iter()
                    .map(|(name, found)| {
                        let partitions = found
                            .into_iter()
                            .map(|f| {
                                let unstable = request.require_stable
                                    && is_unstable(kafka, asked.group_id.0.as_str(), name.0.as_str(), f.partition);
                                let (offset, metadata) = offset_and_metadata(f.committed);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(f.partition)
                                    .with_committed_offset(if unstable { -1 } else { offset })
                                    .with_metadata(metadata)
                                    .with_error_code(if unstable { UNSTABLE_OFFSET_COMMIT } else { 0 })
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(asked.group_id)
                    .with_topics(topics)
                    .with_error_code(error_code)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| topics.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    let (error_code, topics) = match lookup(kafka, &request.group_id, Member::NONE, wanted, principal) {
        Ok(topics) => (0, topics),
        Err(code) => (code, Vec::new()),
    };
    let topics = topics
        .into_iter()
        .map(|(name, found)| {
            let partitions = found
                .into_iter()
                .map(|f| {
                    let unstable = version >= 7
                        && request.require_stable
                        && is_unstable(kafka, request.group_id.0.as_str(), name.0.as_str(), f.partition);
                    let (offset, metadata) = offset_and_metadata(f.committed);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(f.partition)
                        .with_committed_offset(if unstable { -1 } else { offset })
                        .with_metadata(metadata)
                        .with_error_code(if unstable { UNSTABLE_OFFSET_COMMIT } else { 0 })
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics).with_error_code(error_code)
}

/// Who asks (v9+): a KIP-848 member and its epoch, or no member id and epoch -1.
#[derive(Clone, Copy)]
struct Member<'a> {
    id: Option<&'a str>,
    epoch: i32,
}

impl Member<'_> {
    const NONE: Member<'static> = Member { id: None, epoch: -1 };
}

/// The group's commits for `wanted` (topic and partitions), or for everything it committed when `None`.
fn lookup(
    kafka: &KafkaContext,
    group: &GroupId,
    member: Member<'_>,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    principal: &crate::auth::Principal,
) -> Result<Vec<(TopicName, Vec<Found>)>, i16> {
    use crate::auth::acl::{Operation, Resource};
    let group = group.0.as_str();
    check_group_id(group).map_err(|err| group_code(&err))?;
    // Kafka: DESCRIBE on the group; a whole-group answer leaves out topics the principal may not describe.
    kafka.authorize(principal, Operation::Describe, &Resource::group(group))?;
    let authorizer = &kafka.node.authorizer;
    let store = &kafka.node.offsets;
    store.check_coordinator(group).map_err(|err| group_code(&err))?;
    kafka.node.groups.check_kafka_offset_fetch(group, member.id, member.epoch).map_err(|err| {
        tracing::debug!(group, member = ?member.id, epoch = member.epoch, error = %err, "offset fetch refused");
        classic_code(&err)
    })?;
    let Some(wanted) = wanted else {
        let mut topics: Vec<(TopicName, Vec<Found>)> = Vec::new();
        for (key, committed) in store
            .for_group(group)
            .into_iter()
            .filter(|(key, _)| authorizer.is_allowed(principal, Operation::Describe, &Resource::topic(&key.topic)))
        {
            let found = Found { partition: key.partition as i32, committed: Some(committed) };
            match topics.last_mut() {
                Some((name, partitions)) if name.0.as_str() == key.topic => partitions.push(found),
                _ => topics.push((TopicName(StrBytes::from_string(key.topic)), vec![found])),
            }
        }
        return Ok(topics);
    };
    let topics: Vec<(TopicName, Vec<Found>)> = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let found = partitions
                .into_iter()
                .map(|partition| {
                    let committed = u32::try_from(partition).ok().and_then(|index| {
                        store.get(&OffsetKey { group: group.to_owned(), topic: name.0.to_string(), partition: index })
                    });
                    Found { partition, committed }
                })
                .collect();
            (name, found)
        })
        .collect();
    if tracing::enabled!(tracing::Level::DEBUG) {
        // Where a consumer resumes the partitions it was given: what explains a record read twice.
        let resumed: Vec<(&str, i32, Option<i64>)> = topics
            .iter()
            .flat_map(|(name, found)| {
                found.iter().map(|f| (name.0.as_str(), f.partition, f.committed.as_ref().map(|c| c.offset)))
            })
            .collect();
        tracing::debug!(group, member = ?member.id, epoch = member.epoch, ?resumed, "offsets fetched");
    }
    Ok(topics)
}

/// Kafka's "no committed offset" is offset -1 with empty metadata.
fn offset_and_metadata(committed: Option<Committed>) -> (i64, Option<StrBytes>) {
    match committed {
        Some(c) => (c.offset, Some(StrBytes::from_string(c.metadata))),
        None => (-1, Some(StrBytes::default())),
    }
}
