//! `ConsumerGroups`: the trait glue, membership streams and committed offsets. Describe, list, delete, reset
//! and the background work on groups are in `group_admin.rs`.

use rill_protocol::v1::{self, consumer_groups_server::ConsumerGroups};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::{group_admin, RillService};
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
        let request = request.into_inner();
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
        let request = request.into_inner();
        check_group_id(&request.group)?;
        let store = &self.node.offsets;
        store.check_coordinator(&request.group)?;
        let offsets = if request.partitions.is_empty() {
            store.for_group(&request.group).into_iter().map(|(key, c)| committed(key, Some(c))).collect()
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
        Ok(Response::new(session::open(std::sync::Arc::clone(&self.node), request.into_inner()).await?))
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        Ok(Response::new(group_admin::describe(&self.node, request.into_inner().group)?))
    }

    async fn list_groups(
        &self,
        _request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        Ok(Response::new(group_admin::list(&self.node)))
    }

    async fn delete_group(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        Ok(Response::new(group_admin::delete(&self.node, request.into_inner().group).await?))
    }

    async fn reset_offsets(
        &self,
        request: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        Ok(Response::new(group_admin::reset(&self.node, request.into_inner()).await?))
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
            self.node.registry.partition(&commit.topic, commit.partition)?;
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

pub(super) fn committed(key: OffsetKey, found: Option<crate::offsets::Committed>) -> v1::CommittedOffset {
    let (offset, metadata, commit_time_ms) = match found {
        Some(c) => (c.offset, c.metadata, c.commit_time_ms),
        None => (-1, String::new(), 0),
    };
    v1::CommittedOffset { topic: key.topic, partition: key.partition, offset, metadata, commit_time_ms }
}
