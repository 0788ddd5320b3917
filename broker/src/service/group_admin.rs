//! Group administration (DescribeGroup, ListGroups, DeleteGroup, ResetOffsets) and the background work on
//! groups: rebalancing on topic changes, expiring the offsets of long-empty groups, forgetting empty groups
//! that have nothing left to remember.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rill_protocol::v1;

use super::groups::committed;
use crate::error::{BrokerError, Result};
use crate::groups::{check_group_id, partition_counts_of, TopicPartition};
use crate::node::{now_ms, Node};
use crate::offsets::OffsetKey;
use crate::registry::blocking;

pub fn describe(node: &Node, group: String) -> Result<v1::DescribeGroupResponse> {
    check_group_id(&group)?;
    node.offsets.check_coordinator(&group)?;
    if let Some(described) = describe_share_group(node, &group) {
        return Ok(described);
    }
    let snapshot = node.groups.snapshot(&group);
    let offsets: BTreeMap<TopicPartition, i64> = node
        .offsets
        .for_group(&group)
        .into_iter()
        .map(|(key, c)| (TopicPartition::new(key.topic, key.partition), c.offset))
        .collect();
    let Some(snapshot) = snapshot.or_else(|| (!offsets.is_empty()).then(empty_snapshot)) else {
        return Err(BrokerError::UnknownGroup { group });
    };
    let mut partitions: BTreeSet<TopicPartition> = offsets.keys().cloned().collect();
    for topic in &snapshot.topics {
        if let Ok(t) = node.registry.topic(topic) {
            partitions.extend((0..t.partition_count()).map(|p| TopicPartition::new(topic.clone(), p)));
        }
    }
    let partitions = partitions
        .into_iter()
        .map(|tp| {
            let committed_offset = offsets.get(&tp).copied().unwrap_or(-1);
            let ends = node.registry.partition(&tp.topic, tp.partition).ok().map(|p| {
                let log = p.log();
                (log.log_start_offset(), log.high_watermark())
            });
            let (end_offset, lag) = match ends {
                Some((start, end)) => (end, end - committed_offset.max(start).min(end)),
                None => (-1, 0),
            };
            v1::PartitionLag {
                in_flight: 0,
                member_id: snapshot.owners.get(&tp).cloned().unwrap_or_default(),
                topic: tp.topic,
                partition: tp.partition,
                committed_offset,
                end_offset,
                lag,
            }
        })
        .collect();
    Ok(v1::DescribeGroupResponse {
        group,
        state: snapshot.state as i32,
        generation: snapshot.generation,
        assignor: snapshot.assignor as i32,
        members: snapshot.members,
        partitions,
        kind: v1::GroupKind::Consumer as i32,
    })
}

/// A share group as `rill group describe` shows it: its members (an epoch is a generation) and, for every
/// partition it has started, where it is (its start offset as the committed offset), how far behind the end,
/// and how many records are out or waiting to be delivered again. `None` for a group that is no share group.
fn describe_share_group(node: &Node, group: &str) -> Option<v1::DescribeGroupResponse> {
    let now = tokio::time::Instant::now();
    let view = node.shares.describe(group, now);
    let partitions = node.shares.partitions(group, node);
    if view.is_none() && partitions.is_empty() {
        return None;
    }
    let view = view.unwrap_or(crate::share_groups::ShareGroupView {
        group_epoch: 0,
        assignment_epoch: 0,
        members: Vec::new(),
    });
    let session_timeout_ms =
        u32::try_from(node.shares.settings_of(group).session_timeout.as_millis()).unwrap_or(u32::MAX);
    let mut readers: BTreeMap<TopicPartition, Vec<String>> = BTreeMap::new();
    let members = view
        .members
        .iter()
        .map(|member| {
            for partition in &member.assignment {
                readers.entry(partition.clone()).or_default().push(member.member_id.clone());
            }
            v1::MemberDescription {
                member_id: member.member_id.clone(),
                client_id: member.client_id.clone(),
                topics: member.subscribed_topics.iter().cloned().collect(),
                member_generation: member.member_epoch,
                acked_generation: member.member_epoch,
                assigned: by_topic(&member.assignment),
                revoking: Vec::new(),
                session_timeout_ms,
            }
        })
        .collect::<Vec<_>>();
    let partitions = partitions
        .into_iter()
        .map(|share| {
            let end = node.registry.partition(&share.partition.topic, share.partition.partition).ok();
            let end_offset = end.map_or(-1, |p| p.log().high_watermark());
            v1::PartitionLag {
                member_id: readers.get(&share.partition).map(|r| r.join(",")).unwrap_or_default(),
                committed_offset: share.start_offset,
                end_offset,
                lag: if end_offset >= 0 { (end_offset - share.start_offset).max(0) } else { 0 },
                in_flight: share.in_flight as u64,
                topic: share.partition.topic,
                partition: share.partition.partition,
            }
        })
        .collect();
    let state = if members.is_empty() { v1::GroupState::Empty } else { v1::GroupState::Stable };
    Some(v1::DescribeGroupResponse {
        group: group.to_owned(),
        state: state as i32,
        generation: view.group_epoch,
        assignor: v1::Assignor::Unspecified as i32,
        members,
        partitions,
        kind: v1::GroupKind::Share as i32,
    })
}

fn by_topic(partitions: &BTreeSet<TopicPartition>) -> Vec<v1::TopicPartitions> {
    let mut topics: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(tp.topic.as_str()).or_default().push(tp.partition);
    }
    topics.into_iter().map(|(topic, partitions)| v1::TopicPartitions { topic: topic.to_owned(), partitions }).collect()
}

fn empty_snapshot() -> crate::groups::GroupSnapshot {
    crate::groups::GroupSnapshot {
        state: v1::GroupState::Empty,
        generation: 0,
        assignor: v1::Assignor::Unspecified,
        members: Vec::new(),
        topics: BTreeSet::new(),
        owners: BTreeMap::new(),
    }
}

pub fn list(node: &Node) -> v1::ListGroupsResponse {
    let mut groups = node.groups.summaries();
    for group in node.offsets.groups().into_keys() {
        groups.entry(group.clone()).or_insert_with(|| v1::GroupSummary {
            group,
            state: v1::GroupState::Empty as i32,
            member_count: 0,
            generation: 0,
            kind: v1::GroupKind::Consumer as i32,
        });
    }
    let now = tokio::time::Instant::now();
    let share_groups = node.shares.list(now).into_iter().chain(node.offsets.share_groups().into_iter().map(|g| (g, 0)));
    for (group, members) in share_groups {
        let generation = node.shares.describe(&group, now).map_or(0, |view| view.group_epoch);
        let state = if members > 0 { v1::GroupState::Stable } else { v1::GroupState::Empty };
        groups.entry(group.clone()).or_insert_with(|| v1::GroupSummary {
            group,
            state: state as i32,
            member_count: members as u32,
            generation,
            kind: v1::GroupKind::Share as i32,
        });
    }
    v1::ListGroupsResponse { groups: groups.into_values().collect() }
}

pub async fn delete(node: &Node, group: String) -> Result<v1::DeleteGroupResponse> {
    check_group_id(&group)?;
    node.offsets.check_coordinator(&group)?;
    // A share group without members whose coordinator moved, or that outlived a restart, is known by its states.
    if node.shares.is_share_group(&group) || !node.offsets.share_states_of(&group).is_empty() {
        return delete_share_group(node, group).await;
    }
    node.groups.check_empty(&group, "deleting a group")?;
    let is_known = node.groups.knows(&group);
    let groups = Arc::clone(&node.groups);
    let checked = group.clone();
    let deleted = node
        .offsets
        .delete_group_checked(group.clone(), now_ms(), move || groups.check_empty(&checked, "deleting a group"))
        .await?;
    node.groups.forget_if_empty(&group);
    if deleted == 0 && !is_known {
        return Err(BrokerError::UnknownGroup { group });
    }
    tracing::info!(%group, offsets = deleted, "deleted group");
    Ok(v1::DeleteGroupResponse { deleted_offsets: deleted as u32 })
}

/// Deletes a share group without members: its members' records and its share partitions' stored states, so a
/// share group of the same name starts afresh (at its reset policy).
async fn delete_share_group(node: &Node, group: String) -> Result<v1::DeleteGroupResponse> {
    match node.shares.delete(&group, tokio::time::Instant::now()) {
        Ok(_) => {}
        Err(crate::share_groups::ShareError::NotEmpty { members, .. }) => {
            return Err(BrokerError::GroupNotEmpty { group, members, action: "deleting a group" });
        }
        Err(err) => return Err(BrokerError::Internal(err.to_string())),
    }
    let forgotten = node.offsets.forget_share_states(&group, |_| true).await?;
    // On a cluster, the partitions' leaders drop their windows of the group, which would store them again.
    crate::share_groups::remote::forget_everywhere(node, &group, None).await;
    tracing::info!(%group, share_partitions = forgotten, "deleted share group");
    Ok(v1::DeleteGroupResponse { deleted_offsets: forgotten as u32 })
}

pub async fn reset(node: &Node, request: v1::ResetOffsetsRequest) -> Result<v1::ResetOffsetsResponse> {
    check_group_id(&request.group)?;
    node.offsets.check_coordinator(&request.group)?;
    let is_share =
        node.shares.is_share_group(&request.group) || !node.offsets.share_states_of(&request.group).is_empty();
    if !is_share {
        node.groups.check_empty(&request.group, "resetting offsets")?;
    }
    let topic = node.registry.topic(&request.topic)?;
    let indexes: Vec<u32> =
        if request.partitions.is_empty() { (0..topic.partition_count()).collect() } else { request.partitions.clone() };
    let to = request.to.ok_or_else(|| BrokerError::invalid("to", "say where to reset to: a spec or an offset"))?;
    let mut commits = Vec::with_capacity(indexes.len());
    for index in indexes {
        let log = Arc::clone(topic.partition(index)?.log());
        let (start, end) = (log.log_start_offset(), log.high_watermark());
        let offset = match to {
            v1::reset_offsets_request::To::Offset(offset) => offset.clamp(start, end),
            v1::reset_offsets_request::To::Spec(spec) => match v1::OffsetSpec::try_from(spec) {
                Ok(v1::OffsetSpec::Unspecified | v1::OffsetSpec::Earliest) => start,
                Ok(v1::OffsetSpec::Latest) => end,
                Ok(v1::OffsetSpec::Timestamp) => {
                    let timestamp_ms = request.timestamp_ms;
                    blocking(move || Ok(log.offset_for_timestamp(timestamp_ms)?)).await?.unwrap_or(end)
                }
                Ok(v1::OffsetSpec::MaxTimestamp) => {
                    let largest = blocking(move || Ok(log.largest_timestamp()?)).await?;
                    largest.map(|largest| largest.offset).filter(|offset| *offset < end).unwrap_or(end)
                }
                Err(_) => return Err(BrokerError::invalid("spec", format!("unknown offset spec {spec}"))),
            },
        };
        let key = OffsetKey { group: request.group.clone(), topic: request.topic.clone(), partition: index };
        commits.push((key, offset, "reset".to_owned()));
    }
    if is_share {
        return reset_share_group(node, &request.group, commits).await;
    }
    let groups = Arc::clone(&node.groups);
    let group = request.group.clone();
    let now = now_ms();
    node.offsets.commit_checked(commits.clone(), now, move || groups.check_empty(&group, "resetting offsets")).await?;
    let offsets = commits
        .into_iter()
        .map(|(key, offset, metadata)| {
            committed(key, Some(crate::offsets::Committed { offset, metadata, commit_time_ms: now }))
        })
        .collect();
    Ok(v1::ResetOffsetsResponse { offsets })
}

/// Moves a share group's start offsets (it must have no members): what it had in flight there is forgotten, and
/// it reads on from each new start.
async fn reset_share_group(
    node: &Node,
    group: &str,
    targets: Vec<(OffsetKey, i64, String)>,
) -> Result<v1::ResetOffsetsResponse> {
    let partitions: Vec<(TopicPartition, i64)> = targets
        .iter()
        .map(|(key, offset, _)| (TopicPartition::new(key.topic.clone(), key.partition), *offset))
        .collect();
    let to_store = match node.shares.reset(group, &partitions, node, tokio::time::Instant::now()) {
        Ok(to_store) => to_store,
        Err(crate::share_groups::ShareError::NotEmpty { members, .. }) => {
            return Err(BrokerError::GroupNotEmpty { group: group.to_owned(), members, action: "resetting offsets" });
        }
        Err(err) => return Err(BrokerError::Internal(err.to_string())),
    };
    node.offsets.save_share_states(group, to_store).await?;
    // On a cluster the partitions' leaders drop their windows and load the reset ones (a window they keep would
    // be fenced at its next save: the reset took a new token).
    let topics = targets.iter().map(|(key, _, _)| key.topic.clone()).collect();
    crate::share_groups::remote::forget_everywhere(node, group, Some(topics)).await;
    tracing::info!(%group, partitions = targets.len(), "reset a share group's start offsets");
    let now = now_ms();
    let offsets = targets
        .into_iter()
        .map(|(key, offset, metadata)| {
            committed(key, Some(crate::offsets::Committed { offset, metadata, commit_time_ms: now }))
        })
        .collect();
    Ok(v1::ResetOffsetsResponse { offsets })
}

/// Rebalances subscribed groups after every topic change (created, deleted, partitions added), until shutdown:
/// on a cluster as the applied metadata shows them, since a coordinator need not hold a replica of the topics its
/// groups read and its registry then never hears of them; on a single node as its registry does.
pub async fn follow_topic_changes(node: Arc<Node>) {
    match node.replication.clone() {
        Some(replication) => follow_metadata(node, replication).await,
        None => follow_registry(node).await,
    }
}

async fn follow_registry(node: Arc<Node>) {
    let mut changes = node.registry.watch_changes();
    let mut shutdown = node.shutdown.clone();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => return,
        }
        node.groups.refresh_topics(|topics| partition_counts_of(&node, topics));
    }
}

async fn follow_metadata(node: Arc<Node>, replication: Arc<crate::replication::Replication>) {
    let mut metadata = replication.watch_metadata();
    let mut shutdown = node.shutdown.clone();
    // The metadata changes far more often than topics do (ISR, leaders, node heartbeats): the groups are only
    // looked at when some topic's partition count changed.
    let mut last_counts: Option<BTreeMap<String, usize>> = None;
    loop {
        let counts: BTreeMap<String, usize> = metadata
            .borrow_and_update()
            .topics
            .iter()
            .map(|(t, placed)| (t.clone(), placed.partitions.len()))
            .collect();
        if last_counts.as_ref() != Some(&counts) {
            node.groups.refresh_topics(|topics| partition_counts_of(&node, topics));
            last_counts = Some(counts);
        }
        tokio::select! {
            changed = metadata.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => return,
        }
    }
}

/// Forgets empty groups that have no offsets, and, with `group_offsets_retention_ms`, the offsets of groups
/// empty and without commits for that long. Called by the maintenance task.
pub async fn expire_groups(node: &Node) {
    let with_offsets = node.offsets.groups();
    let now = now_ms();
    let retention_ms = node.config.group_offsets_retention_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
    for (group, _) in node.groups.empty_groups() {
        if !with_offsets.contains_key(&group) {
            node.groups.forget_if_empty(&group);
        }
    }
    let Some(retention_ms) = retention_ms else { return };
    let emptied: BTreeMap<String, i64> = node.groups.empty_groups().into_iter().collect();
    for (group, newest_commit_ms) in with_offsets {
        let last_active_ms = newest_commit_ms.max(emptied.get(&group).copied().unwrap_or(0));
        if now.saturating_sub(last_active_ms) < retention_ms {
            continue;
        }
        let groups = Arc::clone(&node.groups);
        let checked = group.clone();
        let check = move || groups.check_empty(&checked, "expiring offsets");
        match node.offsets.delete_group_checked(group.clone(), now, check).await {
            Ok(deleted) => {
                node.groups.forget_if_empty(&group);
                tracing::info!(%group, offsets = deleted, "expired the offsets of an empty group");
            }
            Err(BrokerError::GroupNotEmpty { .. }) => {}
            Err(err) => tracing::warn!(%group, error = %err, "expiring group offsets failed"),
        }
    }
}

/// `rill group config GROUP`: every group setting `group` runs with.
pub fn group_config(node: &Node, group: String) -> Result<v1::GroupConfigResponse> {
    check_group_id(&group)?;
    let config = node.group_configs.get(&group);
    Ok(group_config_response(node, group, &config))
}

/// `rill group config GROUP --set KEY=VALUE --delete KEY`: changes `group`'s settings, stored before the answer.
pub async fn alter_group_config(
    node: &Arc<Node>,
    request: v1::AlterGroupConfigRequest,
) -> Result<v1::GroupConfigResponse> {
    let v1::AlterGroupConfigRequest { group, set, delete, validate_only } = request;
    check_group_id(&group)?;
    if let Some(both) = delete.iter().find(|key| set.contains_key(*key)) {
        return Err(BrokerError::InvalidGroupConfig {
            group,
            reason: format!("{both} is both set and deleted; name it once"),
        });
    }
    let mut changes: Vec<(String, Option<String>)> = set.into_iter().map(|(key, value)| (key, Some(value))).collect();
    changes.sort();
    changes.extend(delete.into_iter().map(|key| (key, None)));
    let configs = Arc::clone(&node.group_configs);
    let altered = {
        let group = group.clone();
        blocking(move || Ok(configs.alter(&group, &changes, validate_only))).await?
    };
    match altered {
        Ok(config) => Ok(group_config_response(node, group, &config)),
        Err(crate::group_config::AlterConfigError::Refused(why)) => {
            Err(BrokerError::InvalidGroupConfig { group, reason: why.to_string() })
        }
        Err(crate::group_config::AlterConfigError::Store(err)) => Err(err),
    }
}

fn group_config_response(
    node: &Node,
    group: String,
    config: &crate::group_config::GroupConfig,
) -> v1::GroupConfigResponse {
    let mut configs: Vec<v1::GroupConfigEntry> = node
        .group_configs
        .entries_of(config)
        .into_iter()
        .map(|entry| v1::GroupConfigEntry {
            name: entry.key.kafka_name().to_owned(),
            value: entry.value,
            is_group_setting: entry.is_group_setting,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    v1::GroupConfigResponse { group, configs }
}
