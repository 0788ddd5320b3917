//! `ConsumerGroups`: committed offsets. Membership and assignment arrive with the consumer-groups issue; until
//! then every group is memberless, so only standalone commits (empty member id) are accepted.

use rill_protocol::v1::{self, consumer_groups_server::ConsumerGroups};
use tonic::{Request, Response, Status};

use super::RillService;
use crate::error::{BrokerError, Result};
use crate::node::now_ms;
use crate::offsets::{OffsetKey, MAX_GROUP_CHARS, MAX_METADATA_BYTES};

#[tonic::async_trait]
impl ConsumerGroups for RillService {
    async fn commit_offsets(
        &self,
        request: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let request = request.into_inner();
        check_group(&request.group)?;
        if !request.member_id.is_empty() {
            return Err(BrokerError::invalid(
                "member_id",
                format!(
                    "unknown member {:?} of group {:?}: the group has no members; commit with an empty member id",
                    request.member_id, request.group
                ),
            )
            .into());
        }
        let mut commits = Vec::with_capacity(request.offsets.len());
        for commit in request.offsets {
            // The partition must exist now; a commit for a typo'd topic would otherwise sit there forever.
            self.node.registry.partition(&commit.topic, commit.partition)?;
            if commit.offset < 0 {
                return Err(BrokerError::invalid("offset", format!("{} is negative", commit.offset)).into());
            }
            if commit.metadata.len() > MAX_METADATA_BYTES {
                return Err(BrokerError::TooLarge {
                    what: "offset metadata",
                    size: commit.metadata.len() as u64,
                    limit: MAX_METADATA_BYTES as u64,
                }
                .into());
            }
            let key = OffsetKey { group: request.group.clone(), topic: commit.topic, partition: commit.partition };
            commits.push((key, commit.offset, commit.metadata));
        }
        self.node.offsets.commit(commits, now_ms()).await?;
        Ok(Response::new(v1::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let request = request.into_inner();
        check_group(&request.group)?;
        let store = &self.node.offsets;
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
}

fn committed(key: OffsetKey, found: Option<crate::offsets::Committed>) -> v1::CommittedOffset {
    let (offset, metadata, commit_time_ms) = match found {
        Some(c) => (c.offset, c.metadata, c.commit_time_ms),
        None => (-1, String::new(), 0),
    };
    v1::CommittedOffset { topic: key.topic, partition: key.partition, offset, metadata, commit_time_ms }
}

fn check_group(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(BrokerError::invalid("group", "a group id cannot be empty"));
    }
    if group.chars().count() > MAX_GROUP_CHARS {
        return Err(BrokerError::invalid("group", format!("a group id is at most {MAX_GROUP_CHARS} characters")));
    }
    if group.chars().any(char::is_control) {
        return Err(BrokerError::invalid("group", format!("{group:?} holds control characters")));
    }
    Ok(())
}
