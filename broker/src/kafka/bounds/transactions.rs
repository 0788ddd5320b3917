//! The walks of the transactional requests with arrays (see the parent module): AddPartitionsToTxn (v0–3, the
//! client's layout: one transaction's topics and partition indexes) and TxnOffsetCommit (v0–3: topics, each with
//! partitions). v3 of both is flexible. AddOffsetsToTxn and EndTxn have no arrays.

use super::{BoundsError, Walk};

pub fn add_partitions_to_txn(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 3;
    walk.string(flexible)?; // transactional_id
    walk.skip(8 + 2)?; // producer_id, producer_epoch
    walk.topic_partition_indexes(flexible)?;
    walk.tagged_fields(flexible)
}

pub fn txn_offset_commit(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 3;
    walk.string(flexible)?; // transactional_id
    walk.string(flexible)?; // group_id
    walk.skip(8 + 2)?; // producer_id, producer_epoch
    if version >= 3 {
        walk.skip(4)?; // generation_id
        walk.string(flexible)?; // member_id
        walk.string(flexible)?; // group_instance_id
    }
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4 + 8)?; // partition_index, committed_offset
            if version >= 2 {
                partition.skip(4)?; // committed_leader_epoch
            }
            partition.string(flexible)?; // committed_metadata
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

/// ListTransactions (flexible from v0): state filters, producer id filters, v1's duration filter.
pub fn list_transactions(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    walk.array(true, |state| state.string(true))?;
    walk.array(true, |producer_id| producer_id.skip(8))?;
    if version >= 1 {
        walk.skip(8)?; // duration_filter
    }
    walk.tagged_fields(true)
}

/// DescribeTransactions v0 (flexible): transactional ids.
pub fn describe_transactions(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |id| id.string(true))?;
    walk.tagged_fields(true)
}

/// DescribeProducers v0 (flexible): topics, each with partition indexes.
pub fn describe_producers(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.topic_partition_indexes(true)?;
    walk.tagged_fields(true)
}

/// WriteTxnMarkers v1 (flexible): markers, each a producer, its topics with partition indexes, and an epoch.
pub fn write_txn_markers(walk: &mut Walk) -> Result<(), BoundsError> {
    walk.array(true, |marker| {
        marker.skip(8 + 2 + 1)?; // producer_id, producer_epoch, transaction_result
        marker.topic_partition_indexes(true)?;
        marker.skip(4)?; // coordinator_epoch
        marker.tagged_fields(true)
    })?;
    walk.tagged_fields(true)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::*;

    use super::super::tests::{assert_walked_whole, text};

    #[test]
    fn the_walk_covers_every_served_version_of_each_transactional_request_exactly() {
        let topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partitions(vec![0, 3, 7]);
        let add = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(text("app-1")))
            .with_v3_and_below_producer_id(ProducerId(42))
            .with_v3_and_below_topics(vec![topic.clone(), topic]);
        assert_walked_whole(ApiKey::AddPartitionsToTxn, 0..=3, &add);

        let partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
            .with_partition_index(2)
            .with_committed_offset(100)
            .with_committed_metadata(Some(text("m")));
        let topic = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partitions(vec![partition.clone(), partition]);
        let commit = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(text("app-1")))
            .with_group_id(GroupId(text("g")))
            .with_topics(vec![topic]);
        assert_walked_whole(ApiKey::TxnOffsetCommit, 0..=2, &commit);
        let member =
            commit.with_member_id(text("member-1")).with_generation_id(4).with_group_instance_id(Some(text("i")));
        assert_walked_whole(ApiKey::TxnOffsetCommit, 3..=3, &member);

        let list = ListTransactionsRequest::default()
            .with_state_filters(vec![text("Ongoing"), text("Empty")])
            .with_producer_id_filters(vec![ProducerId(3), ProducerId(4)])
            .with_duration_filter(1_000);
        assert_walked_whole(ApiKey::ListTransactions, 1..=1, &list);
        assert_walked_whole(ApiKey::ListTransactions, 0..=0, &list.with_duration_filter(-1));
        let describe = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(text("a")), TransactionalId(text("b"))]);
        assert_walked_whole(ApiKey::DescribeTransactions, 0..=0, &describe);
        let topic = describe_producers_request::TopicRequest::default()
            .with_name(TopicName(text("orders")))
            .with_partition_indexes(vec![0, 1]);
        assert_walked_whole(
            ApiKey::DescribeProducers,
            0..=0,
            &DescribeProducersRequest::default().with_topics(vec![topic]),
        );
        let topic = write_txn_markers_request::WritableTxnMarkerTopic::default()
            .with_name(TopicName(text("orders")))
            .with_partition_indexes(vec![0, 2]);
        let marker = write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(9))
            .with_producer_epoch(3)
            .with_coordinator_epoch(-1)
            .with_topics(vec![topic.clone(), topic]);
        let markers = WriteTxnMarkersRequest::default().with_markers(vec![marker.clone(), marker]);
        assert_walked_whole(ApiKey::WriteTxnMarkers, 1..=1, &markers);
    }

    #[test]
    fn a_lying_partition_count_is_refused_before_decoding() {
        // v0: transactional id "t", producer id and epoch, one topic "o" with 2^31-1 partitions in 4 bytes.
        let mut body = vec![0, 1, b't'];
        body.extend_from_slice(&[0; 10]);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&[0, 1, b'o']);
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        assert!(super::super::check(ApiKey::AddPartitionsToTxn, 0, &body).is_err());
    }
}
