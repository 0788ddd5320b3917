//! The walks of the share group requests (KIP-932; see the parent module). Every version served is flexible.

use super::{BoundsError, Walk};

pub fn share_group_heartbeat(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.string(true)?; // member_id
    walk.skip(4)?; // member_epoch
    walk.string(true)?; // rack_id
    walk.array(true, |name| name.string(true))?; // subscribed_topic_names
    walk.tagged_fields(true)
}

/// An acknowledgement batch: first and last offset, then its types (one byte each).
fn acknowledgement_batches(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |batch| {
        batch.skip(16)?; // first_offset, last_offset
        batch.array(true, |kind| kind.skip(1))?; // acknowledge_types
        batch.tagged_fields(true)
    })
}

/// Topics by id, each with its partitions and their acknowledgement batches (ShareFetch's and ShareAcknowledge's
/// layouts of v1 are the same here).
fn acknowledged_topics(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |topic| {
        topic.skip(16)?; // topic_id
        topic.array(true, |partition| {
            partition.skip(4)?; // partition_index
            acknowledgement_batches(partition)?;
            partition.tagged_fields(true)
        })?;
        topic.tagged_fields(true)
    })
}

pub fn share_fetch(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.string(true)?; // member_id
    walk.skip(4 * 6)?; // share_session_epoch, max_wait_ms, min_bytes, max_bytes, max_records, batch_size
    acknowledged_topics(walk)?;
    walk.array(true, |forgotten| {
        forgotten.skip(16)?; // topic_id
        forgotten.array(true, |partition| partition.skip(4))?;
        forgotten.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

pub fn share_acknowledge(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.string(true)?; // member_id
    walk.skip(4)?; // share_session_epoch
    acknowledged_topics(walk)?;
    walk.tagged_fields(true)
}

pub fn share_group_describe(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |group| group.string(true))?; // group_ids
    walk.skip(1)?; // include_authorized_operations
    walk.tagged_fields(true)
}

pub fn describe_share_group_offsets(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |group| {
        group.string(true)?; // group_id
        group.topic_partition_indexes(true)?; // topics (nullable)
        group.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

pub fn alter_share_group_offsets(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.array(true, |topic| {
        topic.string(true)?; // topic_name
        topic.array(true, |partition| {
            partition.skip(4 + 8)?; // partition_index, start_offset
            partition.tagged_fields(true)
        })?;
        topic.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

pub fn delete_share_group_offsets(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.string(true)?; // group_id
    walk.array(true, |topic| {
        topic.string(true)?; // topic_name
        topic.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    fn batch() -> share_fetch_request::AcknowledgementBatch {
        share_fetch_request::AcknowledgementBatch::default()
            .with_first_offset(3)
            .with_last_offset(5)
            .with_acknowledge_types(vec![1, 2, 0])
    }

    #[test]
    fn every_share_request_is_walked_to_its_end() {
        let heartbeat = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_rack_id(Some(text("r")))
            .with_subscribed_topic_names(Some(vec![TopicName(text("a")), TopicName(text("b"))]));
        assert_walked_whole(ApiKey::ShareGroupHeartbeat, 1..=1, &heartbeat);
        assert_walked_whole(ApiKey::ShareGroupHeartbeat, 1..=1, &ShareGroupHeartbeatRequest::default());

        let partition = share_fetch_request::FetchPartition::default()
            .with_partition_index(1)
            .with_acknowledgement_batches(vec![batch(); 2]);
        let fetch = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(text("g"))))
            .with_member_id(Some(text("m")))
            .with_topics(vec![share_fetch_request::FetchTopic::default().with_partitions(vec![partition; 2]); 2])
            .with_forgotten_topics_data(vec![
                share_fetch_request::ForgottenTopic::default().with_partitions(vec![0, 1]);
                2
            ]);
        assert_walked_whole(ApiKey::ShareFetch, 1..=1, &fetch);
        assert_walked_whole(ApiKey::ShareFetch, 1..=1, &ShareFetchRequest::default());

        let ack_batch = share_acknowledge_request::AcknowledgementBatch::default().with_acknowledge_types(vec![1]);
        let ack_partition =
            share_acknowledge_request::AcknowledgePartition::default().with_acknowledgement_batches(vec![ack_batch; 3]);
        let acknowledge = ShareAcknowledgeRequest::default().with_topics(vec![
            share_acknowledge_request::AcknowledgeTopic::default().with_partitions(vec![ack_partition; 2]);
            2
        ]);
        assert_walked_whole(ApiKey::ShareAcknowledge, 1..=1, &acknowledge);

        let describe =
            ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("a")), GroupId(text("b"))]);
        assert_walked_whole(ApiKey::ShareGroupDescribe, 1..=1, &describe);

        let topic = describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(text("t")))
            .with_partitions(vec![0, 1, 2]);
        let offsets = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(text("g")))
                .with_topics(Some(vec![topic; 2])),
            describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(text("h"))),
        ]);
        assert_walked_whole(ApiKey::DescribeShareGroupOffsets, 0..=0, &offsets);

        let partition = alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
            .with_partition_index(1)
            .with_start_offset(7);
        let alter = AlterShareGroupOffsetsRequest::default().with_group_id(GroupId(text("g"))).with_topics(vec![
            alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(text("t")))
                .with_partitions(vec![partition; 2]);
            2
        ]);
        assert_walked_whole(ApiKey::AlterShareGroupOffsets, 0..=0, &alter);
        let delete = DeleteShareGroupOffsetsRequest::default().with_group_id(GroupId(text("g"))).with_topics(vec![
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(text("t")));
            2
        ]);
        assert_walked_whole(ApiKey::DeleteShareGroupOffsets, 0..=0, &delete);
    }
}
