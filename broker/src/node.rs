//! The state every request handler shares: settings, topics, committed offsets, consumer groups and the
//! shutdown signal.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use rill_protocol::v1;

use crate::auth::Principal;
use crate::config::BrokerConfig;
use crate::groups::GroupCoordinator;
use crate::offsets::OffsetStore;
use crate::registry::Registry;

pub struct Node {
    pub config: Arc<BrokerConfig>,
    pub registry: Registry,
    pub offsets: Arc<OffsetStore>,
    pub groups: Arc<GroupCoordinator>,
    /// Share groups (KIP-932): on a cluster node the members of the groups it coordinates, and the windows and
    /// share sessions of the partitions it leads.
    pub shares: Arc<crate::share_groups::ShareGroups>,
    /// Groups' own settings (Kafka's group configs), which the share groups and `groups` read: a single node's file
    /// or the cluster's metadata.
    pub group_configs: Arc<crate::group_config::GroupConfigs>,
    /// Kafka consumers' fetch sessions (KIP-227), one cache for every Kafka listener, as Kafka's broker has.
    pub fetch_sessions: crate::kafka::fetch_sessions::FetchSessions,
    pub producer_ids: Arc<crate::producer_ids::ProducerIds>,
    /// Turns true when shutdown starts: long-polls answer at once and subscriptions end, so that in-flight
    /// calls finish and the graceful shutdown is not held up by calls that would never end by themselves.
    pub shutdown: watch::Receiver<bool>,
    /// The live metrics; `None` with the admin listener off (nothing is recorded then).
    pub metrics: Option<Arc<crate::metrics::NodeMetrics>>,
    /// Partition replication over the cluster; `None` on a single node (no peers).
    pub replication: Option<Arc<crate::replication::Replication>>,
    /// The users clients authenticate as: the node's file, or on a cluster node the replicated ones.
    pub users: Arc<crate::auth::UserStore>,
    /// The identity provider's keys OAuth bearer tokens are checked against; `None` without `auth.oauth`.
    pub oauth: Option<Arc<crate::auth::oauth::OAuthValidator>>,
    /// The schema registry: served on `schema_registry_listen`, and what topics with schema id validation check
    /// records against.
    pub schemas: Arc<crate::schema_registry::SchemaStore>,
    /// What each principal may do: asked once per request at the edges (gRPC handlers, the Kafka APIs).
    pub authorizer: Arc<crate::auth::Authorizer>,
    /// The client quotas and each client's rate: asked after each produce and fetch at the edges.
    pub quotas: Arc<crate::quotas::throttle::ClientThrottle>,
    /// The free space kept for metadata: partition appends are refused below it.
    pub disk_reserve: Arc<crate::disk_reserve::DiskReserve>,
    /// Kafka transactions' coordinator: this node's own on a single node; on a cluster node the coordinator acting
    /// while this node is the controller leader, and every node's check of transactional produces.
    pub transactions: Arc<crate::transactions::TransactionCoordinator>,
    /// Kafka clients' pushed metrics (KIP-714) and the subscriptions that ask for them.
    pub client_telemetry: Arc<crate::client_telemetry::ClientTelemetry>,
}

impl Node {
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Ok if `partition` of `topic` exists: on a cluster node in the cluster's metadata, whether or not this node
    /// holds a replica of it (a group's coordinator takes commits for any partition), else in the registry.
    pub fn check_partition_exists(&self, topic: &str, partition: u32) -> crate::error::Result<()> {
        match &self.replication {
            Some(replication) => replication.check_partition_exists(topic, partition),
            None => self.registry.partition(topic, partition).map(drop),
        }
    }

    /// Deletes a topic: on a cluster through the controller, each group's coordinator then forgetting the
    /// topic's committed offsets as it applies the deletion (`replication/reconcile.rs`); on a single node here,
    /// with its committed offsets forgotten before the answer.
    pub async fn delete_topic(&self, name: &str) -> crate::error::Result<()> {
        let Some(replication) = &self.replication else {
            let deleted_at_ms = now_ms();
            self.registry.delete(name).await?;
            // The topic is gone whatever happens next; offsets left behind are forgotten at the next start.
            if let Err(err) = self.offsets.forget_topics([name.to_owned()].into(), deleted_at_ms).await {
                tracing::error!(topic = %name, error = %err, "cannot forget a deleted topic's committed offsets");
            }
            // Share groups too: a topic created again under this name is read from its reset policy.
            self.shares.forget_topic(name);
            self.offsets.forget_share_states_of_topics(&[name.to_owned()].into()).await;
            return Ok(());
        };
        replication.delete_topic(name).await
    }

    /// Whether topic `name` exists as far as this node knows. A cluster node that has not caught up with the
    /// metadata since it started counts every name as known: it cannot tell, and must not create what may exist.
    pub fn knows_topic(&self, name: &str) -> bool {
        match &self.replication {
            Some(replication) => !replication.has_caught_up() || replication.metadata().topics.contains_key(name),
            None => self.registry.topic(name).is_ok(),
        }
    }

    /// Kafka's auto topic creation (`auto_create_topics`, which the caller checks): creates topic `name` with
    /// this node's `default_partitions` and `default_replication_factor` and the default settings, if `principal`
    /// may create it (CREATE on the cluster or the topic, as any create). A topic another request created first
    /// is no error: both callers then describe it. Answers once this node knows the topic, with the partitions
    /// this call created (0 when another request's create came first), which Kafka's mutation quota counts.
    pub async fn create_topic_by_default(&self, principal: &Principal, name: &str) -> crate::error::Result<u32> {
        crate::service::authorize_create_topic(self, principal, name)?;
        let partitions = self.config.default_partitions;
        let created = match &self.replication {
            Some(replication) => {
                let request =
                    v1::CreateTopicRequest { name: name.to_owned(), partition_count: partitions, ..Default::default() };
                replication.create_topic(request).await.map(drop)
            }
            None => self.registry.create(name, partitions, &v1::TopicConfig::default()).await.map(drop),
        };
        match created {
            Ok(()) => {
                tracing::info!(topic = name, partitions, principal = %principal, "topic created automatically");
                Ok(partitions)
            }
            Err(crate::error::BrokerError::TopicExists { .. }) => Ok(0),
            Err(err) => Err(err),
        }
    }

    /// In a cluster, refuses a produce or fetch for a partition this node does not lead (`not-leader`).
    pub fn check_leader(&self, topic: &str, partition: u32) -> crate::error::Result<()> {
        match &self.replication {
            Some(replication) => replication.check_leader(topic, partition).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The partition's leader epoch as this node knows it, and whether this node leads it at that epoch (else
    /// the `not-leader` refusal). A single node leads every partition at epoch 0, the epoch its Kafka Metadata
    /// answers.
    pub fn leader_epoch(&self, topic: &str, partition: u32) -> crate::error::Result<(i32, crate::error::Result<()>)> {
        match &self.replication {
            Some(replication) => {
                let (epoch, led) = replication.leader_epoch(topic, partition)?;
                Ok((i32::try_from(epoch).unwrap_or(i32::MAX), led.map(|_| ())))
            }
            None => self.registry.partition(topic, partition).map(|_| (0, Ok(()))),
        }
    }

    /// KIP-320's check of a read, in Kafka's order (`Partition.getLocalLog`): the partition must exist, a
    /// `current_leader_epoch` the request names (`None`: not said, no check) must be the epoch this node knows
    /// (older: `FencedLeaderEpoch`, newer: `UnknownLeaderEpoch`), and this node must lead the partition at it
    /// (`NotLeader`). The one check behind gRPC Fetch and Subscribe and Kafka's Fetch, ListOffsets and
    /// OffsetForLeaderEpoch; the answer is the epoch led.
    pub fn check_leader_at(
        &self,
        topic: &str,
        partition: u32,
        current_leader_epoch: Option<i64>,
    ) -> crate::error::Result<i32> {
        let (known, led) = self.leader_epoch(topic, partition)?;
        if let Some(asked) = current_leader_epoch {
            check_epoch(topic, partition, asked, known)?;
        }
        led.map(|()| known)
    }

    /// [`Node::check_leader_at`] for a consumer's read that a follower may serve (Kafka's Fetch from v11,
    /// KIP-392): the same epoch check, then this node must hold a replica of the partition, led or followed.
    /// The answer is the epoch known and whether this node leads.
    pub fn check_replica_at(
        &self,
        topic: &str,
        partition: u32,
        current_leader_epoch: Option<i64>,
    ) -> crate::error::Result<(i32, bool)> {
        let Some(replication) = &self.replication else {
            return self.check_leader_at(topic, partition, current_leader_epoch).map(|epoch| (epoch, true));
        };
        let (known, role) = replication.replica_epoch(topic, partition)?;
        let known = i32::try_from(known).unwrap_or(i32::MAX);
        if let Some(asked) = current_leader_epoch {
            check_epoch(topic, partition, asked, known)?;
        }
        role.map(|is_leader| (known, is_leader))
    }

    /// Allows `principal` `operation` on `resource`, or refuses it (`permission-denied`), counted and logged.
    pub fn authorize(
        &self,
        principal: &crate::auth::Principal,
        operation: crate::auth::acl::Operation,
        resource: &crate::auth::acl::Resource<'_>,
    ) -> crate::error::Result<()> {
        self.authorizer.check(principal, operation, resource).map_err(Into::into)
    }

    /// The byte budget of one fetch or subscribe push: the request's, or the default, capped by the limit.
    pub fn fetch_bytes(&self, requested: u32) -> usize {
        let requested = if requested == 0 { self.config.default_fetch_bytes } else { u64::from(requested) };
        usize::try_from(requested.min(self.config.max_fetch_bytes)).unwrap_or(usize::MAX)
    }
}

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// KIP-320: the epoch a request names against the one this node knows; older is fenced, newer unknown.
fn check_epoch(topic: &str, partition: u32, asked: i64, known: i32) -> crate::error::Result<()> {
    let (topic, current) = (topic.to_owned(), i64::from(known));
    match asked.cmp(&current) {
        std::cmp::Ordering::Less => {
            Err(crate::error::BrokerError::FencedLeaderEpoch { topic, partition, asked, current })
        }
        std::cmp::Ordering::Greater => {
            Err(crate::error::BrokerError::UnknownLeaderEpoch { topic, partition, asked, current })
        }
        std::cmp::Ordering::Equal => Ok(()),
    }
}
