//! Routes the APIs beyond records and metadata to their files: the group coordinator's (FindCoordinator, the
//! offsets, the classic group protocol, group administration), topic and cluster administration, the ACL and the client quota APIs. Each handler takes the
//! decoded request and returns the response; decoding, encoding and the connection's errors stay here, so a
//! handler never sees bytes. `connection.rs` routes here every API `api_versions::SUPPORTED` lists that it does
//! not serve itself.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::connection::{malformed_by, RequestError};
use super::framing::encode_response;
use super::request_time::HandlerClock;
use super::{
    acls, alter_configs, client_quotas, client_telemetry, consumer_group_describe, consumer_group_heartbeat,
    create_topics, delete_records, describe_cluster, describe_configs, describe_log_dirs, describe_quorum,
    describe_topic_partitions, elect_leaders, find_coordinator, groups_admin, heartbeat, join_group,
    list_config_resources, offset_commit, offset_delete, offset_fetch, partition_reassignments, share_fetch,
    share_group_describe, share_group_heartbeat, share_group_offsets, sync_group, topics_admin, transactions,
    transactions_admin, user_scram, KafkaContext,
};
use crate::auth::acl::{Operation, Resource};

/// Who sent a request: what a group member is described with.
pub struct Caller {
    pub client_id: String,
    pub host: String,
    pub peer: Option<std::net::SocketAddr>,
    pub software: super::connection::ClientSoftware,
    /// Who the connection authenticated as: what each API's authorization is asked about.
    pub principal: crate::auth::Principal,
}

/// Kafka's rule for the group protocol's requests (FindCoordinator asks DESCRIBE, the others READ): the denial,
/// or `None` when the principal may.
fn group_denial(kafka: &KafkaContext, caller: &Caller, operation: Operation, group: &str) -> Option<GroupDenial> {
    let denied = kafka.node.authorizer.check(&caller.principal, operation, &Resource::group(group)).err()?;
    Some(GroupDenial { code: super::error::denied_code(denied.resource_type), message: denied.to_string() })
}

/// GROUP_AUTHORIZATION_FAILED, and what was refused to whom, for the responses that carry a message (a client
/// shows it: librdkafka's "FindCoordinator response error: ..." is otherwise left empty).
struct GroupDenial {
    code: i16,
    message: String,
}

/// The response frame to a request of `api` v`version`, whose header has been read off `body`.
pub async fn answer(
    kafka: &KafkaContext,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
    caller: Caller,
    clock: &HandlerClock,
) -> Result<Bytes, RequestError> {
    let header_version = api.response_header_version(version);
    // Decodes the request as `$request`, runs the handler on it, and frames what it answers, with the request
    // quota's wait in its `throttle_time_ms` (`request_time.rs`).
    macro_rules! serve {
        ($request:ty, |$decoded:ident| $handler:expr) => {{
            let $decoded = <$request>::decode(&mut body, version).map_err(malformed_by(api, version))?;
            let mut response = $handler;
            super::error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(&kafka.node.quotas, response.throttle_time_ms);
            Ok(encode_response(correlation_id, header_version, &response, version)?)
        }};
    }
    match api {
        ApiKey::FindCoordinator => serve!(FindCoordinatorRequest, |request| {
            let key = request.coordinator_keys.first().unwrap_or(&request.key).to_string();
            // v4+ may ask for several groups at once; each is asked DESCRIBE (one denied refuses the request).
            let denied = std::iter::once(key)
                .chain(request.coordinator_keys.iter().skip(1).map(|k| k.to_string()))
                .filter(|_| request.key_type == find_coordinator::KEY_TYPE_GROUP)
                .find_map(|group| group_denial(kafka, &caller, Operation::Describe, &group));
            match denied {
                Some(GroupDenial { code, message }) if version < 4 => FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_node_id((-1).into()),
                Some(GroupDenial { code, message }) => FindCoordinatorResponse::default().with_coordinators(
                    request
                        .coordinator_keys
                        .iter()
                        .map(|key| {
                            find_coordinator_response::Coordinator::default()
                                .with_key(key.clone())
                                .with_node_id((-1).into())
                                .with_port(-1)
                                .with_error_code(code)
                                .with_error_message(Some(StrBytes::from_string(message.clone())))
                        })
                        .collect(),
                ),
                None => find_coordinator::answer(kafka, request, version, &caller.principal),
            }
        }),
        ApiKey::OffsetCommit => {
            serve!(OffsetCommitRequest, |request| offset_commit::answer(kafka, request, version, &caller.principal)
                .await)
        }
        ApiKey::OffsetFetch => {
            serve!(OffsetFetchRequest, |request| offset_fetch::answer(kafka, request, version, &caller.principal))
        }
        ApiKey::OffsetDelete => {
            serve!(OffsetDeleteRequest, |request| offset_delete::answer(kafka, request, &caller.principal).await)
        }
        ApiKey::ListGroups => {
            serve!(ListGroupsRequest, |request| groups_admin::list(kafka, &request, version, &caller.principal))
        }
        ApiKey::DescribeGroups => {
            serve!(DescribeGroupsRequest, |request| groups_admin::describe(kafka, &request, &caller.principal))
        }
        ApiKey::DeleteGroups => {
            serve!(DeleteGroupsRequest, |request| groups_admin::delete(kafka, request, &caller.principal).await)
        }
        ApiKey::JoinGroup => serve!(JoinGroupRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, .. }) => {
                    JoinGroupResponse::default().with_error_code(code).with_generation_id(-1)
                }
                None => join_group::answer(kafka, request, version, caller).await,
            }
        }),
        ApiKey::SyncGroup => serve!(SyncGroupRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, .. }) => SyncGroupResponse::default().with_error_code(code),
                None => sync_group::answer(kafka, request).await,
            }
        }),
        ApiKey::ConsumerGroupHeartbeat => serve!(ConsumerGroupHeartbeatRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, message }) => ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
                None => consumer_group_heartbeat::answer(kafka, request, caller),
            }
        }),
        ApiKey::ShareGroupHeartbeat => serve!(ShareGroupHeartbeatRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, message }) => ShareGroupHeartbeatResponse::default()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_member_epoch(-1),
                None => share_group_heartbeat::answer(kafka, request, caller).await,
            }
        }),
        ApiKey::ShareAcknowledge => serve!(ShareAcknowledgeRequest, |request| {
            share_fetch::acknowledge_request(kafka, request, &caller.principal).await
        }),
        ApiKey::ShareGroupDescribe => {
            serve!(ShareGroupDescribeRequest, |request| share_group_describe::describe(
                kafka,
                &request,
                &caller.principal
            ))
        }
        ApiKey::AlterShareGroupOffsets => serve!(AlterShareGroupOffsetsRequest, |request| {
            share_group_offsets::alter(kafka, request, &caller.principal).await
        }),
        ApiKey::DeleteShareGroupOffsets => serve!(DeleteShareGroupOffsetsRequest, |request| {
            share_group_offsets::delete(kafka, request, &caller.principal).await
        }),
        ApiKey::DescribeShareGroupOffsets => {
            serve!(DescribeShareGroupOffsetsRequest, |request| share_group_describe::offsets(
                kafka,
                &request,
                &caller.principal
            ))
        }
        ApiKey::ConsumerGroupDescribe => {
            serve!(ConsumerGroupDescribeRequest, |request| consumer_group_describe::answer(
                kafka,
                &request,
                &caller.principal
            ))
        }
        ApiKey::Heartbeat => serve!(HeartbeatRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, .. }) => HeartbeatResponse::default().with_error_code(code),
                None => heartbeat::heartbeat(kafka, &request),
            }
        }),
        ApiKey::LeaveGroup => serve!(LeaveGroupRequest, |request| {
            match group_denial(kafka, &caller, Operation::Read, request.group_id.0.as_str()) {
                Some(GroupDenial { code, .. }) => LeaveGroupResponse::default().with_error_code(code),
                None => heartbeat::leave(kafka, request, version),
            }
        }),
        ApiKey::CreateTopics => {
            serve!(CreateTopicsRequest, |request| create_topics::answer(kafka, request, version, &caller).await)
        }
        ApiKey::DeleteTopics => {
            serve!(DeleteTopicsRequest, |request| topics_admin::delete(kafka, request, version, &caller).await)
        }
        ApiKey::CreatePartitions => serve!(CreatePartitionsRequest, |request| {
            topics_admin::create_partitions(kafka, request, version, &caller).await
        }),
        ApiKey::DescribeConfigs => {
            serve!(DescribeConfigsRequest, |request| describe_configs::answer(kafka, &request, &caller.principal))
        }
        ApiKey::IncrementalAlterConfigs => serve!(IncrementalAlterConfigsRequest, |request| {
            alter_configs::incremental(kafka, request, &caller.principal).await
        }),
        ApiKey::DeleteRecords => {
            serve!(DeleteRecordsRequest, |request| delete_records::answer(kafka, request, &caller.principal).await)
        }
        ApiKey::AlterConfigs => {
            serve!(AlterConfigsRequest, |request| alter_configs::full(kafka, request, &caller.principal).await)
        }
        ApiKey::DescribeLogDirs => serve!(DescribeLogDirsRequest, |request| {
            describe_log_dirs::answer(kafka, &request, version, &caller.principal).await
        }),
        ApiKey::DescribeCluster => serve!(DescribeClusterRequest, |request| describe_cluster::answer(kafka, &request)),
        ApiKey::DescribeAcls => {
            serve!(DescribeAclsRequest, |request| acls::describe(kafka, &request, &caller.principal))
        }
        ApiKey::CreateAcls => {
            serve!(CreateAclsRequest, |request| acls::create(kafka, request, &caller.principal).await)
        }
        ApiKey::DeleteAcls => {
            serve!(DeleteAclsRequest, |request| acls::delete(kafka, request, &caller.principal).await)
        }
        ApiKey::ElectLeaders => {
            serve!(ElectLeadersRequest, |request| elect_leaders::answer(kafka, request, version, &caller.principal)
                .await)
        }
        ApiKey::AlterPartitionReassignments => serve!(AlterPartitionReassignmentsRequest, |request| {
            partition_reassignments::alter(kafka, request, version, &caller.principal).await
        }),
        ApiKey::ListPartitionReassignments => serve!(ListPartitionReassignmentsRequest, |request| {
            partition_reassignments::list(kafka, &request, &caller.principal)
        }),
        ApiKey::DescribeClientQuotas => {
            serve!(DescribeClientQuotasRequest, |request| client_quotas::describe(kafka, &request, &caller.principal))
        }
        ApiKey::AlterClientQuotas => {
            serve!(AlterClientQuotasRequest, |request| client_quotas::alter(kafka, request, &caller.principal).await)
        }
        ApiKey::DescribeUserScramCredentials => serve!(DescribeUserScramCredentialsRequest, |request| {
            user_scram::describe(kafka, &request, &caller.principal)
        }),
        ApiKey::AlterUserScramCredentials => serve!(AlterUserScramCredentialsRequest, |request| {
            user_scram::alter(kafka, request, &caller.principal).await
        }),
        ApiKey::AddPartitionsToTxn => serve!(AddPartitionsToTxnRequest, |request| {
            transactions::add_partitions(kafka, request, version, &caller.principal).await
        }),
        ApiKey::AddOffsetsToTxn => {
            serve!(AddOffsetsToTxnRequest, |request| transactions::add_offsets(
                kafka,
                request,
                version,
                &caller.principal
            )
            .await)
        }
        ApiKey::EndTxn => {
            serve!(EndTxnRequest, |request| transactions::end(kafka, request, version, &caller.principal).await)
        }
        ApiKey::TxnOffsetCommit => serve!(TxnOffsetCommitRequest, |request| {
            transactions::commit_offsets(kafka, request, version, &caller.principal).await
        }),
        ApiKey::ListTransactions => {
            serve!(ListTransactionsRequest, |request| transactions_admin::list(kafka, &request, &caller.principal))
        }
        ApiKey::DescribeTransactions => serve!(DescribeTransactionsRequest, |request| {
            transactions_admin::describe(kafka, &request, &caller.principal)
        }),
        ApiKey::DescribeProducers => serve!(DescribeProducersRequest, |request| {
            transactions_admin::describe_producers(kafka, &request, &caller.principal)
        }),
        ApiKey::WriteTxnMarkers => {
            // A broker's request, exempt from the request quota (it has no throttle time to carry).
            let request = WriteTxnMarkersRequest::decode(&mut body, version).map_err(malformed_by(api, version))?;
            let response = transactions_admin::write_markers(kafka, request, &caller.principal).await;
            super::error_counts::count(kafka, api, &response);
            Ok(encode_response(correlation_id, header_version, &response, version)?)
        }
        ApiKey::GetTelemetrySubscriptions => serve!(GetTelemetrySubscriptionsRequest, |request| {
            client_telemetry::subscriptions(kafka, &request, &caller)
        }),
        ApiKey::PushTelemetry => serve!(PushTelemetryRequest, |request| client_telemetry::push(kafka, &request)),
        ApiKey::ListConfigResources => serve!(ListConfigResourcesRequest, |request| {
            list_config_resources::answer(kafka, &request, version, &caller.principal)
        }),
        ApiKey::DescribeTopicPartitions => serve!(DescribeTopicPartitionsRequest, |request| {
            describe_topic_partitions::answer(kafka, &request, &caller.principal)
        }),
        ApiKey::DescribeQuorum => {
            // Kafka's answer has no throttle time: the request quota's wait holds the connection only.
            let request = DescribeQuorumRequest::decode(&mut body, version).map_err(malformed_by(api, version))?;
            let response = describe_quorum::answer(kafka, &request, version, &caller.principal).await;
            super::error_counts::count(kafka, api, &response);
            Ok(encode_response(correlation_id, header_version, &response, version)?)
        }
        other => Err(RequestError::NotServed(other)),
    }
}
