//! `TopicAdmin`: create, delete, list, describe topics; add partitions; alter settings; delete records.

use rill_protocol::v1::{self, topic_admin_server::TopicAdmin};
use tonic::{Request, Response, Status};

use super::{authorize_create_topic, principal_of, RillService};
use crate::auth::acl::{Operation, Resource};
use crate::error::Result;
use crate::node::Node;
use crate::topic_config::ConfigChange;

#[tonic::async_trait]
impl TopicAdmin for RillService {
    async fn create_topic(
        &self,
        request: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        let principal = principal_of(&request);
        let mut request = request.into_inner();
        authorize_create_topic(&self.node, &principal, &request.name)?;
        if request.partition_count == 0 {
            request.partition_count = self.node.config.default_partitions;
        }
        if let Some(replication) = &self.node.replication {
            let topic = replication.create_topic(request).await?;
            return Ok(Response::new(v1::CreateTopicResponse { topic: Some(topic) }));
        }
        if request.replication_factor.is_some_and(|rf| rf > 1) {
            return Err(crate::error::BrokerError::invalid(
                "replication_factor",
                "a single node (started without --peers) holds one copy of each partition: use 1",
            )
            .into());
        }
        let config = request.config.unwrap_or_default();
        let topic = self.node.registry.create(&request.name, request.partition_count, &config).await?;
        Ok(Response::new(v1::CreateTopicResponse { topic: Some(topic.info()) }))
    }

    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let principal = principal_of(&request);
        let name = request.into_inner().name;
        self.node.authorize(&principal, Operation::Delete, &Resource::topic(&name))?;
        self.node.delete_topic(&name).await?;
        Ok(Response::new(v1::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let principal = principal_of(&request);
        let mut topics: Vec<v1::TopicInfo> = match &self.node.replication {
            Some(replication) => replication.list_topics(),
            None => self.node.registry.list().iter().map(|t| t.info()).collect(),
        };
        // As Kafka's Metadata: a topic the principal may not describe is left out, not refused.
        let authorizer = &self.node.authorizer;
        topics.retain(|topic| authorizer.is_allowed(&principal, Operation::Describe, &Resource::topic(&topic.name)));
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let principal = principal_of(&request);
        let name = &request.get_ref().name;
        self.node.authorize(&principal, Operation::Describe, &Resource::topic(name))?;
        if request.get_ref().auto_create && self.node.config.auto_create_topics && !self.node.knows_topic(name) {
            self.node.create_topic_by_default(&principal, name).await?;
        }
        if let Some(replication) = &self.node.replication {
            let local_only = request.metadata().get(crate::replication::LOCAL_ONLY_KEY).is_some();
            let caller = crate::auth::forwarded::ForwardedCaller::of(&request);
            let name = request.into_inner().name;
            return Ok(Response::new(replication.describe_topic(&name, local_only, caller).await?));
        }
        Ok(Response::new(self.describe(&request.into_inner().name)?))
    }

    async fn add_partitions(
        &self,
        request: Request<v1::AddPartitionsRequest>,
    ) -> Result<Response<v1::AddPartitionsResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        self.node.authorize(&principal, Operation::Alter, &Resource::topic(&request.name))?;
        if let Some(replication) = &self.node.replication {
            let topic = replication.add_partitions(&request.name, request.new_partition_count, None, false).await?;
            return Ok(Response::new(v1::AddPartitionsResponse { topic: Some(topic) }));
        }
        let topic = self.node.registry.add_partitions(&request.name, request.new_partition_count).await?;
        Ok(Response::new(v1::AddPartitionsResponse { topic: Some(topic.info()) }))
    }

    async fn alter_topic_config(
        &self,
        request: Request<v1::AlterTopicConfigRequest>,
    ) -> Result<Response<v1::AlterTopicConfigResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        // Kafka's rule for AlterConfigs on a topic.
        self.node.authorize(&principal, Operation::AlterConfigs, &Resource::topic(&request.name))?;
        let changes = crate::topic_config::changes_of(&request);
        let topic = crate::topic_config::alter(&self.node, &request.name, &changes, request.validate_only).await?;
        Ok(Response::new(v1::AlterTopicConfigResponse { topic: Some(topic) }))
    }

    async fn describe_topic_defaults(
        &self,
        request: Request<v1::DescribeTopicDefaultsRequest>,
    ) -> Result<Response<v1::DescribeTopicDefaultsResponse>, Status> {
        let principal = principal_of(&request);
        // Kafka's rule for DescribeConfigs of a broker resource.
        self.node.authorize(&principal, Operation::DescribeConfigs, &Resource::cluster())?;
        let current = crate::topic_defaults::current(&self.node);
        let defaults = topic_defaults_of(&self.node, &current);
        Ok(Response::new(v1::DescribeTopicDefaultsResponse { defaults }))
    }

    async fn alter_topic_defaults(
        &self,
        request: Request<v1::AlterTopicDefaultsRequest>,
    ) -> Result<Response<v1::AlterTopicDefaultsResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        // Kafka's rule for AlterConfigs of a broker resource.
        self.node.authorize(&principal, Operation::AlterConfigs, &Resource::cluster())?;
        let mut changes: Vec<ConfigChange> =
            request.set.into_iter().map(|(key, value)| ConfigChange::set(key, value)).collect();
        changes.extend(request.delete.into_iter().map(ConfigChange::delete));
        if changes.is_empty() {
            return Err(crate::error::BrokerError::invalid(
                "set",
                "nothing to change: set or delete at least one default",
            )
            .into());
        }
        let (after, topics) = crate::topic_defaults::alter(&self.node, &changes, request.validate_only).await?;
        let defaults = topic_defaults_of(&self.node, &after);
        Ok(Response::new(v1::AlterTopicDefaultsResponse { defaults, topics_changed: topics as u32 }))
    }

    async fn delete_records(
        &self,
        request: Request<v1::DeleteRecordsRequest>,
    ) -> Result<Response<v1::DeleteRecordsResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        // Kafka's rule for DeleteRecords.
        self.node.authorize(&principal, Operation::Delete, &Resource::topic(&request.topic))?;
        match &self.node.replication {
            // A node holds only its replicas' logs: the metadata says whether the topic exists.
            Some(replication) if !replication.metadata().topics.contains_key(&request.topic) => {
                return Err(replication.unknown_topic(&request.topic).into());
            }
            Some(_) => {}
            None => {
                self.node.registry.topic(&request.topic)?;
            }
        }
        let timeout = crate::delete_records::timeout_of(i64::from(request.timeout_ms));
        // The partitions wait for their replicas together: the call takes the longest wait, not their sum.
        let deletions = request.partitions.iter().map(|asked| {
            crate::delete_records::delete_records_before(
                &self.node,
                &request.topic,
                asked.partition,
                asked.offset,
                timeout,
            )
        });
        let outcomes = futures_util::future::join_all(deletions).await;
        let mut partitions = Vec::with_capacity(request.partitions.len());
        for (asked, deleted) in request.partitions.iter().zip(outcomes) {
            partitions.push(match deleted {
                Ok(low_watermark) => {
                    v1::DeleteRecordsResult { partition: asked.partition, low_watermark, ..Default::default() }
                }
                Err(err) => v1::DeleteRecordsResult {
                    partition: asked.partition,
                    low_watermark: -1,
                    error_reason: err.reason().as_str().to_owned(),
                    error_message: err.to_string(),
                },
            });
        }
        Ok(Response::new(v1::DeleteRecordsResponse { partitions }))
    }
}

/// The transactions open in `log`, oldest first (what DescribeTopic shows beside the last stable offset).
pub(crate) fn open_transactions(log: &rill_storage::Log) -> Vec<v1::OpenTransaction> {
    let mut open: Vec<v1::OpenTransaction> = log
        .producer_activity()
        .into_iter()
        .filter_map(|producer| {
            Some(v1::OpenTransaction {
                producer_id: producer.producer_id,
                producer_epoch: i32::from(producer.epoch),
                first_offset: producer.transaction_first_offset?,
                last_seen_ms: producer.last_seen_ms,
            })
        })
        .collect();
    open.sort_by_key(|transaction| transaction.first_offset);
    open
}

impl RillService {
    fn describe(&self, name: &str) -> Result<v1::DescribeTopicResponse> {
        let topic = self.node.registry.topic(name)?;
        // These getters read in-memory state kept by the log; none touches the disk.
        let partitions = topic
            .partitions()
            .iter()
            .map(|p| {
                let log = p.log();
                let cache = log.tail_cache_stats().unwrap_or_default();
                v1::PartitionInfo {
                    partition: p.index,
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    size_bytes: log.size_bytes(),
                    segment_count: log.segment_count() as u64,
                    tail_cache_hits: cache.hits,
                    tail_cache_misses: cache.misses,
                    tail_cache_hit_bytes: cache.hit_bytes,
                    read_ahead_hits: cache.read_ahead_hits,
                    fsync_failure: log.sync_failure().map(|err| err.to_string()).unwrap_or_default(),
                    last_stable_offset: log.last_stable_offset(),
                    open_transactions: open_transactions(log),
                    ..Default::default()
                }
            })
            .collect();
        let mut info = topic.info();
        let state = crate::topic_config::TopicConfigState { settings: topic.settings(), min_insync_replicas: 1 };
        crate::topic_config::fill_overrides(&mut info, &state, 1, &self.node.config);
        Ok(v1::DescribeTopicResponse { topic: Some(info), partitions })
    }
}

/// `defaults` as the gRPC API shows them, beside this node's static ones.
fn topic_defaults_of(node: &Node, defaults: &crate::topic_defaults::TopicDefaults) -> Vec<v1::TopicDefault> {
    crate::topic_defaults::described(&node.config, defaults)
        .into_iter()
        .map(|default| v1::TopicDefault {
            key: default.broker_name.to_owned(),
            topic_key: default.key.kafka_name().to_owned(),
            value: default.value,
            is_set: default.is_set,
        })
        .collect()
}
