//! Topic administration in a cluster: a create or add-partitions is checked where it arrives, placed over the
//! alive nodes (or as an operator assigned it) and committed by the controller; every replica then opens its logs
//! (`reconcile.rs`). gRPC's `TopicAdmin` and Kafka's CreateTopics, DeleteTopics and CreatePartitions come here. Describe shows each
//! partition's placement, and the high watermark and replicas' log ends as the partition's leader knows them.

use rill_protocol::v1;

use super::Replication;
use crate::cluster::metadata::{Command, FollowedTopic, TopicPlacement};
use crate::cluster::placement;
use crate::error::{BrokerError, Result};
use crate::meta::TopicSettings;
use crate::registry::settings_info;
use crate::topic_config::{apply_changes, fill_overrides, ConfigChange, Defaults, TopicConfigState};
use crate::topic_defaults::TopicDefaults;
use crate::topic_id::TopicId;

impl Replication {
    pub async fn create_topic(&self, request: v1::CreateTopicRequest) -> Result<v1::TopicInfo> {
        let (name, placed) = self.create_topic_placed(request, None, false).await?;
        Ok(topic_info(&name, &placed))
    }

    /// The create of `create_topic`, placed on `assignment` when given (Kafka's manual assignment: the replicas of
    /// each partition, the preferred leader first; the partition count and replication factor are its own), and
    /// only checked with `is_validate_only`. Answers the topic's name and placement as committed (or as it would
    /// be).
    pub async fn create_topic_placed(
        &self,
        request: v1::CreateTopicRequest,
        assignment: Option<&[Vec<u64>]>,
        is_validate_only: bool,
    ) -> Result<(String, TopicPlacement)> {
        let node = self.node()?;
        let config = request.config.unwrap_or_default();
        let partition_count = assignment.map_or(request.partition_count, |a| a.len() as u32);
        let metadata = self.controller.metadata();
        let (name, mut settings) =
            node.registry.check_create(&request.name, partition_count, &config, &metadata.topic_defaults)?;
        if let (Some(own), Some(_)) = (settings.own_keys.as_mut(), request.min_insync_replicas) {
            own.0.insert(crate::topic_config::ConfigKey::MinInsyncReplicas);
        }
        if metadata.topics.contains_key(name.as_str()) {
            return Err(BrokerError::TopicExists { topic: name.to_string() });
        }
        let alive = metadata.alive_nodes();
        // Unset: this node's `default_replication_factor` (Kafka's `default.replication.factor`).
        let replication_factor = request.replication_factor.unwrap_or(node.config.default_replication_factor);
        // A cluster still forming (or a node that has not heard from it since starting) has no alive node to
        // place on: that is a wait, not a replication factor the caller got wrong.
        if metadata.cluster_id.is_none() || alive.is_empty() {
            return Err(BrokerError::ControllerUnavailable {
                reason: format!(
                    "node {} knows of no alive node yet: the cluster is still forming (a majority of the peers must \
                     be up and elect a controller leader) or this node has not caught up with it; retry in a moment",
                    self.node_id
                ),
            });
        }
        // Unset: the cluster's `min.insync.replicas` default, else the replication factor's.
        let min_insync_replicas = |replication_factor: u32| {
            request.min_insync_replicas.unwrap_or_else(|| {
                let defaults = Defaults::with(&self.config, &metadata.topic_defaults);
                crate::topic_config::default_min_insync_replicas_of(defaults, replication_factor)
            })
        };
        let placed = match assignment {
            Some(assignment) => {
                let partitions = placement::assigned(assignment, request.replication_factor, &alive)?;
                let replication_factor = partitions.first().map_or(1, |p| p.replicas.len() as u32);
                let min_insync_replicas = placement::check_min_insync_replicas(
                    Some(min_insync_replicas(replication_factor)),
                    replication_factor,
                )?;
                TopicPlacement { partitions, min_insync_replicas, settings, topic_id: Some(TopicId::random()) }
            }
            None => placement::place(
                partition_count,
                Some(replication_factor),
                Some(min_insync_replicas(replication_factor)),
                &alive,
                &metadata.racks(),
                &metadata.preferred_leaderships(),
                settings,
            )?,
        };
        if is_validate_only {
            return Ok((name.to_string(), placed));
        }
        let command = Command::CreateTopic { name: name.to_string(), placement: placed.clone() };
        let outcome = self.controller.propose(command).await?;
        if !outcome.changed {
            return Err(BrokerError::TopicExists { topic: name.to_string() });
        }
        // Answer once this node knows the topic, so a describe or list right after shows it.
        self.controller.wait_for_metadata(Box::new(|m| m.topics.contains_key(name.as_str()))).await;
        tracing::info!(topic = %name, partitions = partition_count, replication_factor = placed.replication_factor(), "created replicated topic");
        Ok((name.to_string(), placed))
    }

    /// Grows the topic to `new_count` partitions: the new ones placed round-robin over the alive nodes as a create
    /// places them (or on `assignment`, one replica list per new partition), with the topic's replication factor,
    /// committed through the controller; every replica then opens its new logs (`reconcile.rs`). Only checked with
    /// `is_validate_only`. Answers once this node has applied it.
    pub async fn add_partitions(
        &self,
        name: &str,
        new_count: u32,
        assignment: Option<&[Vec<u64>]>,
        is_validate_only: bool,
    ) -> Result<v1::TopicInfo> {
        let node = self.node()?;
        if name.starts_with(crate::registry::RESERVED_PREFIX) {
            return Err(BrokerError::ReservedTopicName { name: name.to_owned() });
        }
        let metadata = self.controller.metadata();
        let placed = metadata.topics.get(name).ok_or_else(|| self.unknown_topic(name))?;
        let from_count = placed.partitions.len() as u32;
        node.registry.check_partition_count(new_count, from_count)?;
        let replication_factor = placed.replication_factor();
        let alive = metadata.alive_nodes();
        let added = match assignment {
            Some(assignment) if assignment.len() as u32 != new_count - from_count => {
                return Err(BrokerError::invalid(
                    "replica_assignment",
                    format!(
                        "it lists {} partition(s), and going from {from_count} to {new_count} partitions adds {}",
                        assignment.len(),
                        new_count - from_count
                    ),
                ));
            }
            Some(assignment) => placement::assigned(assignment, Some(replication_factor), &alive)?,
            None => {
                let min_insync_replicas = Some(placed.min_insync_replicas);
                let (leaderships, settings) = (metadata.preferred_leaderships(), placed.settings.clone());
                let count = new_count - from_count;
                let racks = metadata.racks();
                placement::place(
                    count,
                    Some(replication_factor),
                    min_insync_replicas,
                    &alive,
                    &racks,
                    &leaderships,
                    settings,
                )?
                .partitions
            }
        };
        let mut grown = placed.clone();
        grown.partitions.extend(added.iter().cloned());
        let info = topic_info(name, &grown);
        if is_validate_only {
            return Ok(info);
        }
        let command = Command::AddPartitions { name: name.to_owned(), from_count, partitions: added };
        if !self.controller.propose(command).await?.changed {
            let now = self.controller.metadata().topics.get(name).map(|t| t.partitions.len() as u32);
            let Some(now) = now else { return Err(self.unknown_topic(name)) };
            return Err(BrokerError::InvalidPartitionCount {
                requested: new_count,
                reason: format!("the topic went from {from_count} to {now} partitions meanwhile; ask again"),
            });
        }
        let grown_to = new_count as usize;
        self.controller
            .wait_for_metadata(Box::new(|m| m.topics.get(name).is_some_and(|t| t.partitions.len() >= grown_to)))
            .await;
        tracing::info!(topic = %name, from = from_count, to = new_count, "added partitions to a replicated topic");
        Ok(info)
    }

    /// Ok if the cluster's metadata holds `partition` of `topic`, whether or not this node holds a replica of it
    /// (a group's coordinator takes commits for any partition of the cluster).
    pub fn check_partition_exists(&self, topic: &str, partition: u32) -> Result<()> {
        let metadata = self.controller.metadata();
        let placed = metadata.topics.get(topic).ok_or_else(|| self.unknown_topic(topic))?;
        let partition_count = placed.partitions.len() as u32;
        if partition >= partition_count {
            return Err(BrokerError::UnknownPartition { topic: topic.to_owned(), partition, partition_count });
        }
        Ok(())
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        if name.starts_with(crate::registry::RESERVED_PREFIX) {
            return Err(BrokerError::ReservedTopicName { name: name.to_owned() });
        }
        if !self.controller.metadata().topics.contains_key(name) {
            return Err(BrokerError::UnknownTopic { topic: name.to_owned() });
        }
        let outcome = self.controller.propose(Command::DeleteTopic { name: name.to_owned() }).await?;
        if !outcome.changed {
            return Err(BrokerError::UnknownTopic { topic: name.to_owned() });
        }
        self.controller.wait_for_metadata(Box::new(|m| !m.topics.contains_key(name))).await;
        Ok(())
    }

    pub fn list_topics(&self) -> Vec<v1::TopicInfo> {
        self.controller.metadata().topics.iter().map(|(name, placed)| topic_info(name, placed)).collect()
    }

    /// Checks `changes` against the topic's settings in the metadata and commits the result through the
    /// controller; every node holding a replica applies it to its logs (`reconcile.rs`). Answers once this node
    /// has applied it, so a describe right after shows it.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        changes: &[ConfigChange],
        is_validate_only: bool,
    ) -> Result<v1::TopicInfo> {
        let metadata = self.controller.metadata();
        let placed = metadata.topics.get(name).ok_or_else(|| self.unknown_topic(name))?;
        let current =
            TopicConfigState { settings: placed.settings.clone(), min_insync_replicas: placed.min_insync_replicas };
        let replication_factor = placed.replication_factor();
        let defaults = Defaults::with(&self.config, &metadata.topic_defaults);
        let next = apply_changes(&current, changes, replication_factor, defaults)?;
        let mut info = topic_info(name, placed);
        info.config = Some(settings_info(&next.settings));
        fill_overrides(&mut info, &next, replication_factor, &self.config);
        if is_validate_only || next == current {
            return Ok(info);
        }
        let command = Command::AlterTopicConfig {
            name: name.to_owned(),
            settings: next.settings.clone(),
            min_insync_replicas: next.min_insync_replicas,
        };
        let outcome = self.controller.propose(command).await?;
        if !outcome.changed && !self.controller.metadata().topics.contains_key(name) {
            return Err(self.unknown_topic(name));
        }
        self.controller
            .wait_for_metadata(Box::new(|m| {
                m.topics
                    .get(name)
                    .is_some_and(|t| t.settings == next.settings && t.min_insync_replicas == next.min_insync_replicas)
            }))
            .await;
        tracing::info!(topic = %name, settings = ?next.settings, min_insync_replicas = next.min_insync_replicas, "altered a replicated topic's settings");
        Ok(info)
    }

    /// The cluster's topic defaults, as this node last applied the metadata.
    pub fn topic_defaults(&self) -> TopicDefaults {
        self.controller.metadata().topic_defaults.clone()
    }

    /// Changes the cluster's topic defaults (`topic_defaults.rs`): checked, every user topic that does not own a key
    /// changed re-resolved from this node's metadata (refused whole if one cannot take it), and, unless
    /// `is_validate_only`, both committed as one command; every node applies the topics' settings to its replicas.
    /// A topic altered between the read and the commit makes the command stale (`Command::AlterTopicDefaults`):
    /// computed again from the newer metadata, a few times. Answers once this node has applied it, with the new
    /// defaults and the count of topics that changed.
    pub async fn alter_topic_defaults(
        &self,
        changes: &[ConfigChange],
        is_validate_only: bool,
    ) -> Result<(TopicDefaults, usize)> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let metadata = self.controller.metadata();
            let (defaults, keys) = metadata.topic_defaults.changed(changes, &self.config)?;
            let mut topics = Vec::new();
            let user_topics =
                metadata.topics.iter().filter(|(name, _)| !name.starts_with(crate::registry::RESERVED_PREFIX));
            for (name, placed) in user_topics {
                let current = TopicConfigState {
                    settings: placed.settings.clone(),
                    min_insync_replicas: placed.min_insync_replicas,
                };
                let scope = Defaults::with(&self.config, &defaults);
                let rf = placed.replication_factor();
                if let Some(next) = crate::topic_defaults::followed(name, &current, rf, &keys, scope)? {
                    let min_insync_replicas =
                        (next.min_insync_replicas != current.min_insync_replicas).then_some(next.min_insync_replicas);
                    topics.push(FollowedTopic {
                        name: name.clone(),
                        before: current.settings,
                        after: next.settings,
                        min_insync_replicas,
                    });
                }
            }
            let count = topics.len();
            if is_validate_only || (defaults == metadata.topic_defaults && topics.is_empty()) {
                return Ok((defaults, count));
            }
            let command = Command::AlterTopicDefaults { defaults: defaults.clone(), topics };
            if !self.controller.propose(command).await?.changed {
                // A topic changed since this node's metadata was read: wait for the newer one and compute again.
                let seen = metadata.clone();
                self.controller.wait_for_metadata(Box::new(move |m| !std::ptr::eq(m, &*seen))).await;
                continue;
            }
            let wanted = defaults.clone();
            self.controller.wait_for_metadata(Box::new(move |m| m.topic_defaults == wanted)).await;
            tracing::info!(defaults = ?defaults, topics = count, "altered the cluster's topic defaults");
            return Ok((defaults, count));
        }
        Err(BrokerError::ControllerUnavailable {
            reason: format!(
                "the topics changed under {ATTEMPTS} attempts to change the topic defaults (other alters were \
                 committed in between); retry"
            ),
        })
    }

    /// Placement from the metadata; for the partitions this node leads, its log's figures and each replica's
    /// log end; for the others, the same asked of their leaders (`local_only` on that call, so it is not
    /// forwarded again), or this node's replica's figures if a leader does not answer in time. `caller` is the
    /// client's token or principal, sent on so that the leader authorizes the same principal.
    pub async fn describe_topic(
        &self,
        name: &str,
        local_only: bool,
        caller: crate::auth::forwarded::ForwardedCaller,
    ) -> Result<v1::DescribeTopicResponse> {
        let mut described = self.describe_local(name)?;
        if local_only {
            return Ok(described);
        }
        let remote: std::collections::BTreeSet<(u64, String)> = described
            .partitions
            .iter()
            .filter(|p| p.leader.is_some_and(|id| id != self.node_id) && !p.leader_address.is_empty())
            .filter_map(|p| Some((p.leader?, p.leader_address.clone())))
            .collect();
        for (leader, address) in remote {
            let Some(answer) = ask_leader(&address, name, &self.config, caller.clone()).await else { continue };
            for p in answer.partitions.into_iter().filter(|p| p.leader == Some(leader)) {
                if let Some(slot) = described.partitions.get_mut(p.partition as usize) {
                    *slot = p;
                }
            }
        }
        Ok(described)
    }

    fn describe_local(&self, name: &str) -> Result<v1::DescribeTopicResponse> {
        let node = self.node()?;
        let metadata = self.controller.metadata();
        let placed = metadata.topics.get(name).ok_or_else(|| self.unknown_topic(name))?;
        let local = node.registry.topic(name).ok();
        let partitions = placed
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let index = index as u32;
                let mut info = v1::PartitionInfo {
                    partition: index,
                    leader: p.leader,
                    leader_address: p.leader.and_then(|id| metadata.address_of(id)).unwrap_or_default().to_owned(),
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader_epoch: p.leader_epoch,
                    ..Default::default()
                };
                if let Some(moving) = &p.reassignment {
                    info.target_replicas = moving.target.clone();
                    info.adding_replicas = moving.adding.clone();
                    info.removing_replicas = moving.removing.clone();
                }
                if let Some(partition) = local.as_ref().and_then(|t| t.partition(index).ok()) {
                    let log = partition.log();
                    info.log_start_offset = log.log_start_offset();
                    info.high_watermark = log.high_watermark();
                    info.size_bytes = log.size_bytes();
                    info.segment_count = log.segment_count() as u64;
                    let cache = log.tail_cache_stats().unwrap_or_default();
                    (info.tail_cache_hits, info.tail_cache_misses) = (cache.hits, cache.misses);
                    info.tail_cache_hit_bytes = cache.hit_bytes;
                    info.read_ahead_hits = cache.read_ahead_hits;
                    info.fsync_failure = log.sync_failure().map(|err| err.to_string()).unwrap_or_default();
                    info.last_stable_offset = log.last_stable_offset();
                    info.open_transactions = crate::service::admin::open_transactions(log);
                    info.replica_log_ends = self
                        .replica_log_ends(name, index, log.log_end_offset())
                        .into_iter()
                        .map(|(node_id, log_end_offset)| v1::ReplicaLogEnd { node_id, log_end_offset })
                        .collect();
                }
                info
            })
            .collect();
        let mut info = topic_info(name, placed);
        let state =
            TopicConfigState { settings: placed.settings.clone(), min_insync_replicas: placed.min_insync_replicas };
        fill_overrides(&mut info, &state, placed.replication_factor(), &self.config);
        Ok(v1::DescribeTopicResponse { topic: Some(info), partitions })
    }
}

/// Marks a describe forwarded to a partition leader: answered from that node alone.
pub const LOCAL_ONLY_KEY: &str = "rill-local-only";
const ASK_LEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn ask_leader(
    address: &str,
    name: &str,
    config: &crate::BrokerConfig,
    caller: crate::auth::forwarded::ForwardedCaller,
) -> Option<v1::DescribeTopicResponse> {
    use rill_protocol::v1::topic_admin_client::TopicAdminClient;
    let channel = crate::tls::channel_to(address, config).ok()?;
    let mut request = tonic::Request::new(v1::DescribeTopicRequest { name: name.to_owned(), auto_create: false });
    request.metadata_mut().insert(LOCAL_ONLY_KEY, tonic::metadata::MetadataValue::from_static("1"));
    caller.send_on(request.metadata_mut());
    request.set_timeout(ASK_LEADER_TIMEOUT);
    let mut admin = TopicAdminClient::new(channel);
    match tokio::time::timeout(ASK_LEADER_TIMEOUT, admin.describe_topic(request)).await {
        Ok(Ok(answer)) => Some(answer.into_inner()),
        Ok(Err(status)) => {
            tracing::debug!(%address, error = %status, "partition leader did not describe the topic");
            None
        }
        Err(_) => None,
    }
}

fn topic_info(name: &str, placed: &TopicPlacement) -> v1::TopicInfo {
    let settings: &TopicSettings = &placed.settings;
    v1::TopicInfo {
        name: name.to_owned(),
        partition_count: placed.partitions.len() as u32,
        config: Some(settings_info(settings)),
        replication_factor: placed.replication_factor(),
        min_insync_replicas: placed.min_insync_replicas,
        overridden_keys: Vec::new(),
    }
}
