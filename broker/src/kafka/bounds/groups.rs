//! The walks of the group coordinator's requests (see the parent module). Heartbeat has no array: not walked.

use super::{BoundsError, Walk};

pub fn find_coordinator(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 3;
    if version <= 3 {
        walk.string(flexible)?; // key
    }
    if version >= 1 {
        walk.skip(1)?; // key_type
    }
    if version >= 4 {
        walk.array(flexible, |key| key.string(flexible))?;
    }
    walk.tagged_fields(flexible)
}

pub fn offset_commit(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 8;
    walk.string(flexible)?; // group_id
    walk.skip(4)?; // generation_id
    walk.string(flexible)?; // member_id
    if version >= 7 {
        walk.string(flexible)?; // group_instance_id
    }
    if version <= 4 {
        walk.skip(8)?; // retention_time_ms
    }
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4 + 8 + if version >= 6 { 4 } else { 0 })?;
            partition.string(flexible)?; // committed_metadata
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

pub fn offset_fetch(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 6;
    let topics = |walk: &mut Walk| walk.topic_partition_indexes(flexible);
    if version <= 7 {
        walk.string(flexible)?; // group_id
        topics(walk)?;
    } else {
        walk.array(flexible, |group| {
            group.string(flexible)?;
            if version >= 9 {
                group.string(flexible)?; // member_id
                group.skip(4)?; // member_epoch
            }
            topics(group)?;
            group.tagged_fields(flexible)
        })?;
    }
    if version >= 7 {
        walk.skip(1)?; // require_stable
    }
    walk.tagged_fields(flexible)
}

pub fn offset_delete(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(false)?;
    walk.array(false, |topic| {
        topic.string(false)?;
        topic.array(false, |partition| partition.skip(4))
    })
}

pub fn list_groups(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 3;
    if version >= 4 {
        walk.array(flexible, |state| state.string(flexible))?;
    }
    if version >= 5 {
        walk.array(flexible, |kind| kind.string(flexible))?;
    }
    walk.tagged_fields(flexible)
}

pub fn describe_groups(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 5;
    walk.array(flexible, |group| group.string(flexible))?;
    if version >= 3 {
        walk.skip(1)?; // include_authorized_operations
    }
    walk.tagged_fields(flexible)
}

pub fn delete_groups(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    walk.array(flexible, |group| group.string(flexible))?;
    walk.tagged_fields(flexible)
}

pub fn join_group(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 6;
    walk.string(flexible)?; // group_id
    walk.skip(if version >= 1 { 8 } else { 4 })?; // session and rebalance timeouts
    walk.string(flexible)?; // member_id
    if version >= 5 {
        walk.string(flexible)?; // group_instance_id
    }
    walk.string(flexible)?; // protocol_type
    walk.array(flexible, |protocol| {
        protocol.string(flexible)?;
        protocol.bytes(flexible)?;
        protocol.tagged_fields(flexible)
    })?;
    if version >= 8 {
        walk.string(flexible)?; // reason
    }
    walk.tagged_fields(flexible)
}

pub fn sync_group(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 4;
    walk.string(flexible)?; // group_id
    walk.skip(4)?; // generation_id
    walk.string(flexible)?; // member_id
    if version >= 3 {
        walk.string(flexible)?; // group_instance_id
    }
    if version >= 5 {
        walk.string(flexible)?; // protocol_type
        walk.string(flexible)?; // protocol_name
    }
    walk.array(flexible, |assignment| {
        assignment.string(flexible)?;
        assignment.bytes(flexible)?;
        assignment.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

pub fn leave_group(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 4;
    walk.string(flexible)?; // group_id
    if version <= 2 {
        walk.string(flexible)?; // member_id
    } else {
        walk.array(flexible, |member| {
            member.string(flexible)?;
            member.string(flexible)?; // group_instance_id
            if version >= 5 {
                member.string(flexible)?; // reason
            }
            member.tagged_fields(flexible)
        })?;
    }
    walk.tagged_fields(flexible)
}

/// Always a flexible version. v1 adds the regex subscription.
pub fn consumer_group_heartbeat(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.string(true)?; // member_id
    walk.skip(4)?; // member_epoch
    walk.string(true)?; // instance_id
    walk.string(true)?; // rack_id
    walk.skip(4)?; // rebalance_timeout_ms
    walk.array(true, |name| name.string(true))?; // subscribed_topic_names
    if version >= 1 {
        walk.string(true)?; // subscribed_topic_regex
    }
    walk.string(true)?; // server_assignor
    walk.array(true, |owned| {
        owned.skip(16)?; // topic_id
        owned.array(true, |partition| partition.skip(4))?;
        owned.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    fn topic(name: &str) -> TopicName {
        TopicName(text(name))
    }

    #[test]
    fn the_walk_covers_every_served_version_of_each_group_request_exactly() {
        let find = FindCoordinatorRequest::default().with_key(text("g"));
        assert_walked_whole(ApiKey::FindCoordinator, 0..=3, &find);
        let owned = consumer_group_heartbeat_request::TopicPartitions::default()
            .with_topic_id(uuid::Uuid::from_u128(7))
            .with_partitions(vec![0, 2]);
        let heartbeat = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_instance_id(Some(text("i")))
            .with_subscribed_topic_names(Some(vec![topic("t"), topic("u")]))
            .with_server_assignor(Some(text("uniform")))
            .with_topic_partitions(Some(vec![owned.clone(), owned]));
        assert_walked_whole(ApiKey::ConsumerGroupHeartbeat, 0..=1, &heartbeat);
        assert_walked_whole(ApiKey::ConsumerGroupHeartbeat, 0..=1, &ConsumerGroupHeartbeatRequest::default());
        let batched = FindCoordinatorRequest::default().with_coordinator_keys(vec![text("a"), text("bc")]);
        assert_walked_whole(ApiKey::FindCoordinator, 4..=4, &batched);

        let partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_committed_offset(5)
            .with_committed_metadata(Some(text("m")));
        let commit_topic = offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![partition.clone(), partition]);
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_topics(vec![commit_topic.clone(), commit_topic]);
        assert_walked_whole(ApiKey::OffsetCommit, 2..=4, &commit.clone().with_retention_time_ms(-1));
        assert_walked_whole(ApiKey::OffsetCommit, 5..=8, &commit);

        let fetch_topic = offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(topic("t"))
            .with_partition_indexes(vec![0, 1]);
        let fetch =
            OffsetFetchRequest::default().with_group_id(GroupId(text("g"))).with_topics(Some(vec![fetch_topic]));
        assert_walked_whole(ApiKey::OffsetFetch, 1..=7, &fetch);
        let group_topics = offset_fetch_request::OffsetFetchRequestTopics::default()
            .with_name(topic("t"))
            .with_partition_indexes(vec![3]);
        let group = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text("g")))
            .with_topics(Some(vec![group_topics]));
        let batched = OffsetFetchRequest::default()
            .with_group_id(GroupId(text("")))
            .with_topics(Some(Vec::new()))
            .with_groups(vec![group.clone(), group.with_topics(None)]);
        assert_walked_whole(ApiKey::OffsetFetch, 8..=8, &batched);

        let delete_topic = offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(topic("t"))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default(); 2]);
        let delete = OffsetDeleteRequest::default().with_group_id(GroupId(text("g"))).with_topics(vec![delete_topic]);
        assert_walked_whole(ApiKey::OffsetDelete, 0..=0, &delete);

        assert_walked_whole(ApiKey::ListGroups, 0..=3, &ListGroupsRequest::default());
        let filtered = ListGroupsRequest::default().with_states_filter(vec![text("Stable"), text("Empty")]);
        assert_walked_whole(ApiKey::ListGroups, 4..=4, &filtered);

        let names = vec![GroupId(text("a")), GroupId(text("b"))];
        assert_walked_whole(
            ApiKey::DescribeGroups,
            0..=5,
            &DescribeGroupsRequest::default().with_groups(names.clone()),
        );
        assert_walked_whole(ApiKey::DeleteGroups, 0..=2, &DeleteGroupsRequest::default().with_groups_names(names));

        let protocol = join_group_request::JoinGroupRequestProtocol::default()
            .with_name(text("range"))
            .with_metadata(Bytes::from_static(b"meta"));
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![protocol.clone(), protocol]);
        assert_walked_whole(ApiKey::JoinGroup, 0..=0, &join);
        assert_walked_whole(ApiKey::JoinGroup, 1..=9, &join.with_rebalance_timeout_ms(1000));

        let assignment = sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(text("m"))
            .with_assignment(Bytes::from_static(b"xy"));
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_assignments(vec![assignment.clone(), assignment]);
        assert_walked_whole(ApiKey::SyncGroup, 0..=5, &sync);

        assert_walked_whole(ApiKey::LeaveGroup, 0..=2, &LeaveGroupRequest::default().with_member_id(text("m")));
        let member = leave_group_request::MemberIdentity::default().with_member_id(text("m"));
        let leave = LeaveGroupRequest::default().with_members(vec![member.clone(), member]);
        assert_walked_whole(ApiKey::LeaveGroup, 3..=5, &leave);
    }
}
