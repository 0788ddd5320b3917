//! Lying counts planted in real requests: whatever 4 bytes overwrite whatever place of a well-formed group,
//! admin or ACL request, either the walk refuses it or the crate's decoder gets it and returns (Ok or an error). A
//! count the walk let through would make the decoder reserve for it, and a failed reservation aborts the test
//! process, so a pass here means the walk catches every count that matters.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use proptest::prelude::*;

use super::check;
use super::tests::text;

/// A well-formed request of each walked group and admin API, with every array holding elements.
fn requests() -> Vec<(ApiKey, i16, BytesMut)> {
    fn encoded(api: ApiKey, version: i16, request: &impl Encodable) -> (ApiKey, i16, BytesMut) {
        let mut body = BytesMut::new();
        request.encode(&mut body, version).expect("a valid request encodes");
        (api, version, body)
    }
    let protocol = join_group_request::JoinGroupRequestProtocol::default()
        .with_name(text("range"))
        .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff"));
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![protocol.clone(), protocol]);
    let assignment = sync_group_request::SyncGroupRequestAssignment::default()
        .with_member_id(text("m"))
        .with_assignment(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01"));
    let sync = SyncGroupRequest::default().with_group_id(GroupId(text("g"))).with_assignments(vec![assignment; 2]);
    let partition =
        offset_commit_request::OffsetCommitRequestPartition::default().with_committed_metadata(Some(text("m")));
    let commit = OffsetCommitRequest::default().with_group_id(GroupId(text("g"))).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(vec![partition; 2]),
    ]);
    let fetch_group = offset_fetch_request::OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(text("g")))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
            .with_name(TopicName(text("t")))
            .with_partition_indexes(vec![0, 1, 2])]));
    let fetch = OffsetFetchRequest::default().with_groups(vec![fetch_group; 2]);
    let leave = LeaveGroupRequest::default().with_members(vec![
        leave_group_request::MemberIdentity::default()
            .with_member_id(text("m"));
        2
    ]);
    let config =
        create_topics_request::CreatableTopicConfig::default().with_name(text("a")).with_value(Some(text("1")));
    let topic =
        create_topics_request::CreatableTopic::default().with_name(TopicName(text("t"))).with_configs(vec![config; 2]);
    let create = CreateTopicsRequest::default().with_topics(vec![topic; 2]);
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_name(text("t"))
        .with_configuration_keys(Some(vec![text("a"), text("b")]));
    let describe = DescribeConfigsRequest::default().with_resources(vec![resource; 2]);
    let find = FindCoordinatorRequest::default().with_coordinator_keys(vec![text("a"), text("b")]);
    let owned = consumer_group_heartbeat_request::TopicPartitions::default().with_partitions(vec![0, 1]);
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_subscribed_topic_names(Some(vec![TopicName(text("t")); 2]))
        .with_topic_partitions(Some(vec![owned; 2]));
    let creation =
        create_acls_request::AclCreation::default().with_resource_name(text("t")).with_principal(text("User:a"));
    let create_acls = CreateAclsRequest::default().with_creations(vec![creation; 2]);
    let filter = delete_acls_request::DeleteAclsFilter::default().with_resource_name_filter(Some(text("t")));
    let delete_acls = DeleteAclsRequest::default().with_filters(vec![filter; 2]);
    let elect_topic =
        elect_leaders_request::TopicPartitions::default().with_topic(TopicName(text("t"))).with_partitions(vec![0, 1]);
    let elect = ElectLeadersRequest::default().with_topic_partitions(Some(vec![elect_topic; 2]));
    let reassigned = alter_partition_reassignments_request::ReassignablePartition::default()
        .with_replicas(Some(vec![BrokerId(1), BrokerId(2)]));
    let alter = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        alter_partition_reassignments_request::ReassignableTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(vec![reassigned; 2]);
        2
    ]);
    let list = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
        list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(text("t")))
            .with_partition_indexes(vec![0, 1]);
        2
    ]));
    let purge = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(
                vec![delete_records_request::DeleteRecordsPartition::default().with_offset(40); 2]
            );
        2
    ]);
    let mut all = Vec::new();
    for version in [0, 2] {
        all.push(encoded(ApiKey::DeleteRecords, version, &purge));
    }
    for version in [0, 2] {
        all.push(encoded(ApiKey::ElectLeaders, version, &elect));
    }
    all.push(encoded(ApiKey::AlterPartitionReassignments, 1, &alter));
    all.push(encoded(ApiKey::ListPartitionReassignments, 0, &list));
    let list_resources = ListConfigResourcesRequest::default().with_resource_types(vec![16, 32]);
    all.push(encoded(ApiKey::ListConfigResources, 1, &list_resources));
    let quorum = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(text("__cluster_metadata")))
        .with_partitions(vec![describe_quorum_request::PartitionData::default()])]);
    all.push(encoded(ApiKey::DescribeQuorum, 2, &quorum));
    let paged = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![describe_topic_partitions_request::TopicRequest::default().with_name(TopicName(text("t")))])
        .with_cursor(Some(describe_topic_partitions_request::Cursor::default().with_topic_name(TopicName(text("t")))));
    all.push(encoded(ApiKey::DescribeTopicPartitions, 0, &paged));
    for version in [0, 5, 9] {
        all.push(encoded(ApiKey::JoinGroup, version, &join));
    }
    for version in [0, 5] {
        all.push(encoded(ApiKey::SyncGroup, version, &sync));
    }
    for version in [2, 8] {
        all.push(encoded(ApiKey::OffsetCommit, version, &commit.clone().with_retention_time_ms(-1)));
    }
    all.push(encoded(ApiKey::OffsetFetch, 8, &fetch.with_topics(Some(Vec::new()))));
    all.push(encoded(ApiKey::LeaveGroup, 5, &leave));
    for version in [2, 7] {
        all.push(encoded(ApiKey::CreateTopics, version, &create));
    }
    all.push(encoded(ApiKey::DescribeConfigs, 4, &describe));
    all.push(encoded(ApiKey::FindCoordinator, 4, &find));
    all.push(encoded(ApiKey::ConsumerGroupHeartbeat, 1, &heartbeat));
    let ack = share_fetch_request::AcknowledgementBatch::default().with_acknowledge_types(vec![1, 2]);
    let share_partition = share_fetch_request::FetchPartition::default().with_acknowledgement_batches(vec![ack; 2]);
    let share_fetch = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(text("g"))))
        .with_member_id(Some(text("m")))
        .with_topics(vec![share_fetch_request::FetchTopic::default().with_partitions(vec![share_partition; 2]); 2])
        .with_forgotten_topics_data(vec![
            share_fetch_request::ForgottenTopic::default().with_partitions(vec![0, 1]);
            2
        ]);
    all.push(encoded(ApiKey::ShareFetch, 1, &share_fetch));
    let share_heartbeat = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text("g")))
        .with_subscribed_topic_names(Some(vec![TopicName(text("a")), TopicName(text("b"))]));
    all.push(encoded(ApiKey::ShareGroupHeartbeat, 1, &share_heartbeat));
    let quota_entity = alter_client_quotas_request::EntityData::default().with_entity_type(text("user"));
    let quota_op = alter_client_quotas_request::OpData::default().with_key(text("consumer_byte_rate"));
    let quota_entry = alter_client_quotas_request::EntryData::default()
        .with_entity(vec![quota_entity; 2])
        .with_ops(vec![quota_op; 2]);
    let alter_quotas = AlterClientQuotasRequest::default().with_entries(vec![quota_entry; 2]);
    let quota_filter = describe_client_quotas_request::ComponentData::default().with_entity_type(text("user"));
    let describe_quotas = DescribeClientQuotasRequest::default().with_components(vec![quota_filter; 2]);
    for version in [0, 1] {
        all.push(encoded(ApiKey::AlterClientQuotas, version, &alter_quotas));
        all.push(encoded(ApiKey::DescribeClientQuotas, version, &describe_quotas));
    }
    for version in [1, 3] {
        all.push(encoded(ApiKey::CreateAcls, version, &create_acls));
        all.push(encoded(ApiKey::DeleteAcls, version, &delete_acls));
    }
    all
}

/// Decodes `body` as `api` v`version` with the crate, for the APIs `requests` lists.
fn decode(api: ApiKey, version: i16, body: &[u8]) {
    let mut body = Bytes::copy_from_slice(body);
    let _ = match api {
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut body, version).map(drop),
        ApiKey::SyncGroup => SyncGroupRequest::decode(&mut body, version).map(drop),
        ApiKey::OffsetCommit => OffsetCommitRequest::decode(&mut body, version).map(drop),
        ApiKey::OffsetFetch => OffsetFetchRequest::decode(&mut body, version).map(drop),
        ApiKey::LeaveGroup => LeaveGroupRequest::decode(&mut body, version).map(drop),
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut body, version).map(drop),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::decode(&mut body, version).map(drop),
        ApiKey::FindCoordinator => FindCoordinatorRequest::decode(&mut body, version).map(drop),
        ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::decode(&mut body, version).map(drop),
        ApiKey::ShareFetch => ShareFetchRequest::decode(&mut body, version).map(drop),
        ApiKey::ShareGroupHeartbeat => ShareGroupHeartbeatRequest::decode(&mut body, version).map(drop),
        ApiKey::CreateAcls => CreateAclsRequest::decode(&mut body, version).map(drop),
        ApiKey::DeleteAcls => DeleteAclsRequest::decode(&mut body, version).map(drop),
        ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::decode(&mut body, version).map(drop),
        ApiKey::AlterClientQuotas => AlterClientQuotasRequest::decode(&mut body, version).map(drop),
        ApiKey::ElectLeaders => ElectLeadersRequest::decode(&mut body, version).map(drop),
        ApiKey::DeleteRecords => DeleteRecordsRequest::decode(&mut body, version).map(drop),
        ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::decode(&mut body, version).map(drop),
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::decode(&mut body, version).map(drop),
        ApiKey::ListConfigResources => ListConfigResourcesRequest::decode(&mut body, version).map(drop),
        ApiKey::DescribeQuorum => DescribeQuorumRequest::decode(&mut body, version).map(drop),
        ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::decode(&mut body, version).map(drop),
        other => panic!("{other:?} is not in requests()"),
    };
}

proptest! {
    #[test]
    fn a_lie_planted_anywhere_is_refused_or_decodes_without_a_huge_reservation(
        which: usize, at: usize, lie in prop_oneof![any::<u32>(), Just(0x7fff_ffff), Just(0xffff_fff0)],
    ) {
        let all = requests();
        let (api, version, mut body) = all[which % all.len()].clone();
        let at = at % body.len().saturating_sub(3).max(1);
        let end = (at + 4).min(body.len());
        body[at..end].copy_from_slice(&lie.to_be_bytes()[..end - at]);
        if check(api, version, &body).is_ok() {
            decode(api, version, &body);
        }
    }

    #[test]
    fn the_walk_never_panics_on_arbitrary_bytes(which: usize, bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let all = requests();
        let (api, version, _) = all[which % all.len()];
        let _ = check(api, version, &bytes);
    }
}
