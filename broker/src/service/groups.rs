//! `ConsumerGroups`: the trait glue, membership streams and committed offsets. Describe, list, delete, reset
//! and the background work on groups are in `group_admin.rs`.

use rill_protocol::v1::{self, consumer_groups_server::ConsumerGroups};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::{group_admin, principal_of, RillService};
use crate::auth::acl::{Operation, Resource};
use crate::error::{BrokerError, Result};
use crate::groups::{check_group_id, session, TopicPartition};
use crate::node::now_ms;
use crate::offsets::{OffsetKey, MAX_METADATA_BYTES};
use crate::request_trace;

#[tonic::async_trait]
impl ConsumerGroups for RillService {
    async fn commit_offsets(
        &self,
        request: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        // Kafka's OffsetCommit: READ on the group, READ on each topic.
        self.node.authorize(&principal, Operation::Read, &Resource::group(&request.group))?;
        for topic in unique_topics(request.offsets.iter().map(|c| c.topic.as_str())) {
            self.node.authorize(&principal, Operation::Read, &Resource::topic(topic))?;
        }
        let offsets = request.offsets.iter().map(|c| (c.topic.as_str(), c.partition, c.offset));
        let span = request_trace::commit_span(&request.group, request.offsets.len(), offsets);
        let committed = self.commit(request).instrument(span.clone()).await;
        request_trace::record_outcome(&span, &committed);
        committed?;
        Ok(Response::new(v1::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        check_group_id(&request.group)?;
        // Kafka's OffsetFetch: DESCRIBE on the group, and on each topic (one not describable is left out of a
        // whole-group answer, refused when asked for by name).
        let authorizer = &self.node.authorizer;
        self.node.authorize(&principal, Operation::Describe, &Resource::group(&request.group))?;
        for topic in unique_topics(request.partitions.iter().map(|tp| tp.topic.as_str())) {
            self.node.authorize(&principal, Operation::Describe, &Resource::topic(topic))?;
        }
        let store = &self.node.offsets;
        store.check_coordinator(&request.group)?;
        let offsets = if request.partitions.is_empty() {
            store
                .for_group(&request.group)
                .into_iter()
                .filter(|(key, _)| authorizer.is_allowed(&principal, Operation::Describe, &Resource::topic(&key.topic)))
                .map(|(key, c)| committed(key, Some(c)))
                .collect()
        } else {
            request
                .partitions
                .into_iter()
                .map(|tp| {
                    let key = OffsetKey { group: request.group.clone(), topic: tp.topic, partition: tp.partition };
                    let found = store.get(&key);
                    committed(key, found)
                })
                .collect()
        };
        Ok(Response::new(v1::FetchOffsetsResponse { offsets }))
    }

    type JoinGroupStream = session::AssignmentStream;

    async fn join_group(
        &self,
        request: Request<Streaming<v1::GroupRequest>>,
    ) -> Result<Response<Self::JoinGroupStream>, Status> {
        let principal = principal_of(&request);
        Ok(Response::new(session::open(std::sync::Arc::clone(&self.node), request.into_inner(), principal).await?))
    }

    type ShareConsumeStream = super::share_consume::ShareStream;

    async fn share_consume(
        &self,
        request: Request<Streaming<v1::ShareRequest>>,
    ) -> Result<Response<Self::ShareConsumeStream>, Status> {
        let principal = principal_of(&request);
        let client_id = request
            .metadata()
            .get(super::CLIENT_ID_HEADER)
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let client_host = request.remote_addr().map(|addr| addr.ip().to_string()).unwrap_or_default();
        let node = std::sync::Arc::clone(&self.node);
        let stream = super::share_consume::open(node, request.into_inner(), principal, client_id, client_host).await?;
        Ok(Response::new(stream))
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let principal = principal_of(&request);
        let group = request.into_inner().group;
        self.node.authorize(&principal, Operation::Describe, &Resource::group(&group))?;
        Ok(Response::new(group_admin::describe(&self.node, group)?))
    }

    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        let principal = principal_of(&request);
        let mut listed = group_admin::list(&self.node);
        let authorizer = &self.node.authorizer;
        listed.groups.retain(|g| authorizer.is_allowed(&principal, Operation::Describe, &Resource::group(&g.group)));
        Ok(Response::new(listed))
    }

    async fn delete_group(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        let principal = principal_of(&request);
        let group = request.into_inner().group;
        self.node.authorize(&principal, Operation::Delete, &Resource::group(&group))?;
        Ok(Response::new(group_admin::delete(&self.node, group).await?))
    }

    async fn reset_offsets(
        &self,
        request: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        // Kafka's AlterConsumerGroupOffsets: READ on the group and on the topic.
        let principal = principal_of(&request);
        let request = request.into_inner();
        self.node.authorize(&principal, Operation::Read, &Resource::group(&request.group))?;
        self.node.authorize(&principal, Operation::Read, &Resource::topic(&request.topic))?;
        Ok(Response::new(group_admin::reset(&self.node, request).await?))
    }

    async fn describe_group_config(
        &self,
        request: Request<v1::DescribeGroupConfigRequest>,
    ) -> Result<Response<v1::GroupConfigResponse>, Status> {
        let principal = principal_of(&request);
        let group = request.into_inner().group;
        self.node.authorize(&principal, Operation::DescribeConfigs, &Resource::group(&group))?;
        Ok(Response::new(group_admin::group_config(&self.node, group)?))
    }

    async fn alter_group_config(
        &self,
        request: Request<v1::AlterGroupConfigRequest>,
    ) -> Result<Response<v1::GroupConfigResponse>, Status> {
        let principal = principal_of(&request);
        let request = request.into_inner();
        self.node.authorize(&principal, Operation::AlterConfigs, &Resource::group(&request.group))?;
        Ok(Response::new(group_admin::alter_group_config(&self.node, request).await?))
    }
}

impl RillService {
    /// Validates a commit, then stores it if the committing member may commit (checked as it lands).
    async fn commit(&self, request: v1::CommitOffsetsRequest) -> Result<()> {
        check_group_id(&request.group)?;
        self.node.offsets.check_coordinator(&request.group)?;
        let mut commits = Vec::with_capacity(request.offsets.len());
        let mut partitions = Vec::with_capacity(request.offsets.len());
        for commit in request.offsets {
            // The partition must exist now; a commit for a typo'd topic would otherwise sit there forever.
            self.node.check_partition_exists(&commit.topic, commit.partition)?;
            if commit.offset < 0 {
                return Err(BrokerError::invalid("offset", format!("{} is negative", commit.offset)));
            }
            if commit.metadata.len() > MAX_METADATA_BYTES {
                return Err(BrokerError::TooLarge {
                    what: "offset metadata",
                    size: commit.metadata.len() as u64,
                    limit: MAX_METADATA_BYTES as u64,
                });
            }
            partitions.push(TopicPartition::new(commit.topic.clone(), commit.partition));
            let key = OffsetKey { group: request.group.clone(), topic: commit.topic, partition: commit.partition };
            commits.push((key, commit.offset, commit.metadata));
        }
        let groups = std::sync::Arc::clone(&self.node.groups);
        let (group, member, generation) = (request.group, request.member_id, request.generation);
        let check = move || groups.check_commit(&group, &member, generation, &partitions);
        self.node.offsets.commit_checked(commits, now_ms(), check).await
    }
}

/// Each topic once, in the order first named: a request checks a topic once however many partitions it names.
fn unique_topics<'a>(topics: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    topics.filter(|topic| seen.insert(*topic)).collect()
}

pub(super) fn committed(key: OffsetKey, found: Option<crate::offsets::Committed>) -> v1::CommittedOffset {
    let (offset, metadata, commit_time_ms) = match found {
        Some(c) => (c.offset, c.metadata, c.commit_time_ms),
        None => (-1, String::new(), 0),
    };
    v1::CommittedOffset { topic: key.topic, partition: key.partition, offset, metadata, commit_time_ms }
}
