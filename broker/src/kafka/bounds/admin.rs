//! The walks of the topic and cluster administration requests (see the parent module). DescribeCluster has no
//! array.

use super::{BoundsError, Walk};

pub fn create_topics(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 5;
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.skip(4 + 2)?; // num_partitions, replication_factor
        topic.array(flexible, |assignment| {
            assignment.skip(4)?;
            assignment.array(flexible, |broker| broker.skip(4))?;
            assignment.tagged_fields(flexible)
        })?;
        topic.array(flexible, |config| {
            config.string(flexible)?;
            config.string(flexible)?;
            config.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.skip(4 + 1)?; // timeout_ms, validate_only
    walk.tagged_fields(flexible)
}

pub fn delete_topics(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 4;
    if version >= 6 {
        walk.array(flexible, |topic| {
            topic.string(flexible)?;
            topic.skip(16)?; // topic_id
            topic.tagged_fields(flexible)
        })?;
    } else {
        walk.array(flexible, |name| name.string(flexible))?;
    }
    walk.skip(4)?; // timeout_ms
    walk.tagged_fields(flexible)
}

pub fn delete_records(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4 + 8)?; // partition_index, offset
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.skip(4)?; // timeout_ms
    walk.tagged_fields(flexible)
}

pub fn create_partitions(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.skip(4)?; // count
        topic.array(flexible, |assignment| {
            assignment.array(flexible, |broker| broker.skip(4))?;
            assignment.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.skip(4 + 1)?; // timeout_ms, validate_only
    walk.tagged_fields(flexible)
}

pub fn describe_configs(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 4;
    walk.array(flexible, |resource| {
        resource.skip(1)?; // resource_type
        resource.string(flexible)?;
        resource.array(flexible, |key| key.string(flexible))?;
        resource.tagged_fields(flexible)
    })?;
    walk.skip(1 + if version >= 3 { 1 } else { 0 })?; // include_synonyms, include_documentation
    walk.tagged_fields(flexible)
}

pub fn elect_leaders(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 2;
    if version >= 1 {
        walk.skip(1)?; // election_type
    }
    walk.topic_partition_indexes(flexible)?;
    walk.skip(4)?; // timeout_ms
    walk.tagged_fields(flexible)
}

/// Every version is flexible.
pub fn alter_partition_reassignments(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    walk.skip(4 + if version >= 1 { 1 } else { 0 })?; // timeout_ms, allow_replication_factor_change
    walk.array(true, |topic| {
        topic.string(true)?;
        topic.array(true, |partition| {
            partition.skip(4)?; // partition_index
            partition.array(true, |replica| replica.skip(4))?;
            partition.tagged_fields(true)
        })?;
        topic.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

/// v0, flexible.
pub fn list_partition_reassignments(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.skip(4)?; // timeout_ms
    walk.topic_partition_indexes(true)?;
    walk.tagged_fields(true)
}

/// v0 is flexible: the topics (each a name and tagged fields), the partition limit, a nullable cursor (a struct:
/// -1 for null, else a topic name, a partition index and tagged fields).
pub fn describe_topic_partitions(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |topic| {
        topic.string(true)?;
        topic.tagged_fields(true)
    })?;
    walk.skip(4)?; // response_partition_limit
    if walk.nullable_struct_present()? {
        walk.string(true)?;
        walk.skip(4)?;
        walk.tagged_fields(true)?;
    }
    walk.tagged_fields(true)
}

/// Every version is flexible; each partition asked is a struct of its own (an index and tagged fields).
pub fn describe_quorum(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |topic| {
        topic.string(true)?;
        topic.array(true, |partition| {
            partition.skip(4)?;
            partition.tagged_fields(true)
        })?;
        topic.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

pub fn list_config_resources(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    if version >= 1 {
        walk.array(true, |resource_type| resource_type.skip(1))?;
    }
    walk.tagged_fields(true)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    #[test]
    fn the_walk_covers_every_served_version_of_each_admin_request_exactly() {
        let config = create_topics_request::CreatableTopicConfig::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text("1000")));
        let assignment = create_topics_request::CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(0), BrokerId(1)]);
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(text("t")))
            .with_num_partitions(3)
            .with_assignments(vec![assignment])
            .with_configs(vec![config.clone(), config]);
        let create = CreateTopicsRequest::default().with_topics(vec![topic.clone(), topic]).with_validate_only(true);
        assert_walked_whole(ApiKey::CreateTopics, 2..=7, &create);

        let names = vec![TopicName(text("a")), TopicName(text("b"))];
        assert_walked_whole(ApiKey::DeleteTopics, 1..=5, &DeleteTopicsRequest::default().with_topic_names(names));
        let by_name = delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(text("a"))));
        let by_id = delete_topics_request::DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(7));
        assert_walked_whole(
            ApiKey::DeleteTopics,
            6..=6,
            &DeleteTopicsRequest::default().with_topics(vec![by_name, by_id]),
        );

        let partitions = create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(text("t")))
            .with_count(4)
            .with_assignments(Some(vec![
                create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(0)])
            ]));
        let create_partitions =
            CreatePartitionsRequest::default().with_topics(vec![partitions.clone(), partitions.with_assignments(None)]);
        assert_walked_whole(ApiKey::CreatePartitions, 0..=3, &create_partitions);

        let resource = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("t"))
            .with_configuration_keys(Some(vec![text("retention.ms")]));
        let describe = DescribeConfigsRequest::default()
            .with_resources(vec![resource.clone(), resource.with_configuration_keys(None)]);
        assert_walked_whole(ApiKey::DescribeConfigs, 1..=4, &describe);

        let elect_topic = elect_leaders_request::TopicPartitions::default()
            .with_topic(TopicName(text("t")))
            .with_partitions(vec![0, 1, 2]);
        let elect = ElectLeadersRequest::default().with_topic_partitions(Some(vec![elect_topic.clone(), elect_topic]));
        assert_walked_whole(ApiKey::ElectLeaders, 0..=2, &elect);
        assert_walked_whole(ApiKey::ElectLeaders, 0..=2, &ElectLeadersRequest::default().with_topic_partitions(None));

        let reassigned = alter_partition_reassignments_request::ReassignablePartition::default()
            .with_partition_index(1)
            .with_replicas(Some(vec![BrokerId(1), BrokerId(2)]));
        let alter_topic = alter_partition_reassignments_request::ReassignableTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(vec![reassigned.clone(), reassigned.with_replicas(None)]);
        let alter = AlterPartitionReassignmentsRequest::default().with_topics(vec![alter_topic.clone(), alter_topic]);
        assert_walked_whole(ApiKey::AlterPartitionReassignments, 0..=1, &alter);

        let list_topic = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(text("t")))
            .with_partition_indexes(vec![0, 3]);
        let list = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![list_topic.clone(), list_topic]));
        assert_walked_whole(ApiKey::ListPartitionReassignments, 0..=0, &list);
        let list_all = ListPartitionReassignmentsRequest::default().with_topics(None);
        assert_walked_whole(ApiKey::ListPartitionReassignments, 0..=0, &list_all);
        let list_resources = ListConfigResourcesRequest::default().with_resource_types(vec![2, 16, 32]);
        assert_walked_whole(ApiKey::ListConfigResources, 1..=1, &list_resources);
        assert_walked_whole(ApiKey::ListConfigResources, 0..=1, &ListConfigResourcesRequest::default());
        let quorum = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(text("__cluster_metadata")))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default(),
                describe_quorum_request::PartitionData::default(),
            ])]);
        assert_walked_whole(ApiKey::DescribeQuorum, 0..=2, &quorum);
        assert_walked_whole(ApiKey::DescribeQuorum, 0..=2, &DescribeQuorumRequest::default());
        let topic =
            |name: &str| describe_topic_partitions_request::TopicRequest::default().with_name(TopicName(text(name)));
        let paged =
            DescribeTopicPartitionsRequest::default().with_topics(vec![topic("a"), topic("b")]).with_cursor(Some(
                describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(TopicName(text("b")))
                    .with_partition_index(3),
            ));
        assert_walked_whole(ApiKey::DescribeTopicPartitions, 0..=0, &paged);
        assert_walked_whole(ApiKey::DescribeTopicPartitions, 0..=0, &DescribeTopicPartitionsRequest::default());
    }
}
