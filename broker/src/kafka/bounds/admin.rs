//! The walks of the topic administration requests (see the parent module). DescribeCluster has no array.

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
    }
}
