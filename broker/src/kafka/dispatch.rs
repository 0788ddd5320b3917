//! Routes the APIs beyond records and metadata to their files: the group coordinator's (FindCoordinator, the
//! offsets, the classic group protocol, group administration) and topic administration. Each handler takes the
//! decoded request and returns the response; decoding, encoding and the connection's errors stay here, so a
//! handler never sees bytes. `connection.rs` routes here every API `api_versions::SUPPORTED` lists that it does
//! not serve itself.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::connection::{malformed_by, RequestError};
use super::framing::encode_response;
use super::{
    consumer_group_describe, consumer_group_heartbeat, create_topics, describe_cluster, describe_configs,
    find_coordinator, groups_admin, heartbeat, join_group, offset_commit, offset_delete, offset_fetch, sync_group,
    topics_admin, KafkaContext,
};

/// Who sent a request: what a group member is described with.
pub struct Caller {
    pub client_id: String,
    pub host: String,
}

/// The response frame to a request of `api` v`version`, whose header has been read off `body`.
pub async fn answer(
    kafka: &KafkaContext,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
    caller: Caller,
) -> Result<Bytes, RequestError> {
    let header_version = api.response_header_version(version);
    // Decodes the request as `$request`, runs the handler on it, and frames what it answers.
    macro_rules! serve {
        ($request:ty, |$decoded:ident| $handler:expr) => {{
            let $decoded = <$request>::decode(&mut body, version).map_err(malformed_by(api, version))?;
            let response = $handler;
            super::error_counts::count(kafka, api, &response);
            Ok(encode_response(correlation_id, header_version, &response, version)?)
        }};
    }
    match api {
        ApiKey::FindCoordinator => {
            serve!(FindCoordinatorRequest, |request| find_coordinator::answer(kafka, request, version))
        }
        ApiKey::OffsetCommit => serve!(OffsetCommitRequest, |request| offset_commit::answer(kafka, request).await),
        ApiKey::OffsetFetch => serve!(OffsetFetchRequest, |request| offset_fetch::answer(kafka, request, version)),
        ApiKey::OffsetDelete => serve!(OffsetDeleteRequest, |request| offset_delete::answer(kafka, request).await),
        ApiKey::ListGroups => serve!(ListGroupsRequest, |request| groups_admin::list(kafka, &request)),
        ApiKey::DescribeGroups => serve!(DescribeGroupsRequest, |request| groups_admin::describe(kafka, &request)),
        ApiKey::DeleteGroups => serve!(DeleteGroupsRequest, |request| groups_admin::delete(kafka, request).await),
        ApiKey::JoinGroup => {
            serve!(JoinGroupRequest, |request| join_group::answer(kafka, request, version, caller).await)
        }
        ApiKey::SyncGroup => serve!(SyncGroupRequest, |request| sync_group::answer(kafka, request).await),
        ApiKey::ConsumerGroupHeartbeat => {
            serve!(ConsumerGroupHeartbeatRequest, |request| consumer_group_heartbeat::answer(kafka, request, caller))
        }
        ApiKey::ConsumerGroupDescribe => {
            serve!(ConsumerGroupDescribeRequest, |request| consumer_group_describe::answer(kafka, &request))
        }
        ApiKey::Heartbeat => serve!(HeartbeatRequest, |request| heartbeat::heartbeat(kafka, &request)),
        ApiKey::LeaveGroup => serve!(LeaveGroupRequest, |request| heartbeat::leave(kafka, request, version)),
        ApiKey::CreateTopics => serve!(CreateTopicsRequest, |request| create_topics::answer(kafka, request).await),
        ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, |request| topics_admin::delete(kafka, request).await),
        ApiKey::CreatePartitions => {
            serve!(CreatePartitionsRequest, |request| topics_admin::create_partitions(kafka, request).await)
        }
        ApiKey::DescribeConfigs => serve!(DescribeConfigsRequest, |request| describe_configs::answer(kafka, &request)),
        ApiKey::DescribeCluster => serve!(DescribeClusterRequest, |request| describe_cluster::answer(kafka, &request)),
        other => Err(RequestError::NotServed(other)),
    }
}
