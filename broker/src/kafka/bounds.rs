//! A walk over a request body before the `kafka-protocol` crate decodes it, checking every array's element count
//! against the bytes left. The crate reserves room for the count an array declares before reading an element,
//! so a lying count (2^31 topics in a 20-byte request) would ask the allocator for hundreds of GiB, and an
//! allocation failure aborts the process rather than failing the request. Every element takes at least one byte,
//! so a count above the bytes left is a malformed request, refused here; the reservation the crate then makes is
//! at most `max_request_bytes` elements.
//!
//! The walk follows the layouts of the versions served (`api_versions::SUPPORTED`); field by field it is the
//! crate's decoder order (Kafka's message schemas). Fields without arrays are skipped by size.

use kafka_protocol::messages::ApiKey;

mod acls;
mod admin;
mod client_quotas;
#[cfg(test)]
mod fuzz;
mod groups;
mod share;
mod transactions;

/// Why a request body is refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct BoundsError(String);

/// Checks the array counts of a served request's body (after its header).
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), BoundsError> {
    walked_bytes(api, version, body).map(drop)
}

/// How many bytes of `body` the walk covered (all of a well-formed request of a walked API).
fn walked_bytes(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let mut walk = Walk { body, at: 0 };
    match api {
        ApiKey::Produce => produce(&mut walk, version)?,
        ApiKey::Fetch => fetch(&mut walk, version)?,
        ApiKey::ListOffsets => list_offsets(&mut walk, version)?,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch(&mut walk, version)?,
        ApiKey::Metadata => metadata(&mut walk, version)?,
        ApiKey::FindCoordinator => groups::find_coordinator(&mut walk, version)?,
        ApiKey::OffsetCommit => groups::offset_commit(&mut walk, version)?,
        ApiKey::OffsetFetch => groups::offset_fetch(&mut walk, version)?,
        ApiKey::OffsetDelete => groups::offset_delete(&mut walk)?,
        ApiKey::ListGroups => groups::list_groups(&mut walk, version)?,
        ApiKey::DescribeGroups => groups::describe_groups(&mut walk, version)?,
        ApiKey::DeleteGroups => groups::delete_groups(&mut walk, version)?,
        ApiKey::JoinGroup => groups::join_group(&mut walk, version)?,
        ApiKey::SyncGroup => groups::sync_group(&mut walk, version)?,
        ApiKey::LeaveGroup => groups::leave_group(&mut walk, version)?,
        ApiKey::ConsumerGroupHeartbeat => groups::consumer_group_heartbeat(&mut walk, version)?,
        ApiKey::ShareGroupHeartbeat => share::share_group_heartbeat(&mut walk)?,
        ApiKey::ShareFetch => share::share_fetch(&mut walk)?,
        ApiKey::ShareAcknowledge => share::share_acknowledge(&mut walk)?,
        ApiKey::ShareGroupDescribe => share::share_group_describe(&mut walk)?,
        ApiKey::DescribeShareGroupOffsets => share::describe_share_group_offsets(&mut walk)?,
        ApiKey::AlterShareGroupOffsets => share::alter_share_group_offsets(&mut walk)?,
        ApiKey::DeleteShareGroupOffsets => share::delete_share_group_offsets(&mut walk)?,
        ApiKey::CreateTopics => admin::create_topics(&mut walk, version)?,
        ApiKey::DeleteTopics => admin::delete_topics(&mut walk, version)?,
        ApiKey::DeleteRecords => admin::delete_records(&mut walk, version)?,
        ApiKey::CreatePartitions => admin::create_partitions(&mut walk, version)?,
        ApiKey::DescribeConfigs => admin::describe_configs(&mut walk, version)?,
        ApiKey::ElectLeaders => admin::elect_leaders(&mut walk, version)?,
        ApiKey::AlterPartitionReassignments => admin::alter_partition_reassignments(&mut walk, version)?,
        ApiKey::ListPartitionReassignments => admin::list_partition_reassignments(&mut walk)?,
        ApiKey::ListConfigResources => admin::list_config_resources(&mut walk, version)?,
        ApiKey::DescribeQuorum => admin::describe_quorum(&mut walk)?,
        ApiKey::DescribeTopicPartitions => admin::describe_topic_partitions(&mut walk)?,
        ApiKey::DescribeAcls => acls::describe_acls(&mut walk, version)?,
        ApiKey::CreateAcls => acls::create_acls(&mut walk, version)?,
        ApiKey::DeleteAcls => acls::delete_acls(&mut walk, version)?,
        ApiKey::DescribeClientQuotas => client_quotas::describe_client_quotas(&mut walk, version)?,
        ApiKey::AlterClientQuotas => client_quotas::alter_client_quotas(&mut walk, version)?,
        ApiKey::AddPartitionsToTxn => transactions::add_partitions_to_txn(&mut walk, version)?,
        ApiKey::TxnOffsetCommit => transactions::txn_offset_commit(&mut walk, version)?,
        ApiKey::ListTransactions => transactions::list_transactions(&mut walk, version)?,
        ApiKey::DescribeTransactions => transactions::describe_transactions(&mut walk)?,
        ApiKey::DescribeProducers => transactions::describe_producers(&mut walk)?,
        ApiKey::WriteTxnMarkers => transactions::write_txn_markers(&mut walk)?,
        // ApiVersions, Heartbeat, DescribeCluster, AddOffsetsToTxn and EndTxn have no arrays; any other API is not
        // decoded.
        _ => return Ok(body.len()),
    }
    Ok(walk.at)
}

struct Walk<'a> {
    body: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.body.len().saturating_sub(self.at)
    }

    fn skip(&mut self, bytes: usize) -> Result<(), BoundsError> {
        if bytes > self.left() {
            return Err(BoundsError(format!("request ends {} bytes short of a field", bytes - self.left())));
        }
        self.at += bytes;
        Ok(())
    }

    fn int(&mut self, bytes: usize) -> Result<i64, BoundsError> {
        let field =
            self.body.get(self.at..self.at + bytes).ok_or_else(|| BoundsError("request ends inside a field".into()))?;
        self.at += bytes;
        Ok(field.iter().fold(0i64, |value, byte| (value << 8) | i64::from(*byte)) << (64 - 8 * bytes)
            >> (64 - 8 * bytes))
    }

    fn unsigned_varint(&mut self) -> Result<u64, BoundsError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.int(1)? as u8;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BoundsError("a varint longer than 5 bytes".into()))
    }

    /// A string (i16 length, -1 null) or, in flexible versions, a compact string (unsigned varint length + 1).
    fn string(&mut self, is_flexible: bool) -> Result<(), BoundsError> {
        let length = if is_flexible { self.unsigned_varint()? as i64 - 1 } else { self.int(2)? };
        self.skip(usize::try_from(length).unwrap_or(0))
    }

    /// A nullable struct's marker (an int8, -1 for null): whether the struct follows.
    fn nullable_struct_present(&mut self) -> Result<bool, BoundsError> {
        Ok(self.int(1)? >= 0)
    }

    /// Bytes (i32 length, -1 null) or compact bytes.
    fn bytes(&mut self, is_flexible: bool) -> Result<(), BoundsError> {
        let length = if is_flexible { self.unsigned_varint()? as i64 - 1 } else { self.int(4)? };
        self.skip(usize::try_from(length).unwrap_or(0))
    }

    /// An array (i32 count, -1 null) or compact array, each element walked by `element`.
    fn array(
        &mut self,
        is_flexible: bool,
        mut element: impl FnMut(&mut Self) -> Result<(), BoundsError>,
    ) -> Result<(), BoundsError> {
        let count = if is_flexible { self.unsigned_varint()? as i64 - 1 } else { self.int(4)? };
        let count = usize::try_from(count).unwrap_or(0);
        if count > self.left() {
            return Err(BoundsError(format!("an array declares {count} elements in {} bytes", self.left())));
        }
        (0..count).try_for_each(|_| element(self))
    }

    /// The common array of topics by name, each with its partition indexes (i32s) and, flexible, tagged fields.
    fn topic_partition_indexes(&mut self, is_flexible: bool) -> Result<(), BoundsError> {
        self.array(is_flexible, |topic| {
            topic.string(is_flexible)?;
            topic.array(is_flexible, |partition| partition.skip(4))?;
            topic.tagged_fields(is_flexible)
        })
    }

    /// A flexible version's tagged fields: a count, then each tag's number, size and bytes.
    fn tagged_fields(&mut self, is_flexible: bool) -> Result<(), BoundsError> {
        if !is_flexible {
            return Ok(());
        }
        for _ in 0..self.unsigned_varint()? {
            self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            self.skip(usize::try_from(size).unwrap_or(usize::MAX))?;
        }
        Ok(())
    }
}

fn produce(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 9;
    walk.string(flexible)?; // transactional_id
    walk.skip(2 + 4)?; // acks, timeout_ms
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4)?;
            partition.bytes(flexible)?;
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

fn fetch(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 12;
    // Topics by name, by id from v13 (KIP-516).
    let topic_key = |walk: &mut Walk| if version >= 13 { walk.skip(16) } else { walk.string(flexible) };
    if version <= 14 {
        walk.skip(4)?; // replica_id (a tagged replica state from v15)
    }
    walk.skip(4 + 4 + 4 + 1)?; // max_wait_ms, min_bytes, max_bytes, isolation_level
    if version >= 7 {
        walk.skip(4 + 4)?; // session_id, session_epoch
    }
    walk.array(flexible, |topic| {
        topic_key(topic)?;
        topic.array(flexible, |partition| {
            let epochs = if version >= 12 {
                8
            } else if version >= 9 {
                4
            } else {
                0
            };
            let log_start = if version >= 5 { 8 } else { 0 };
            partition.skip(4 + 8 + 4 + epochs + log_start)?;
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    if version >= 7 {
        walk.array(flexible, |forgotten| {
            topic_key(forgotten)?;
            forgotten.array(flexible, |partition| partition.skip(4))?;
            forgotten.tagged_fields(flexible)
        })?;
    }
    if version >= 11 {
        walk.string(flexible)?; // rack_id
    }
    walk.tagged_fields(flexible)
}

fn list_offsets(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 6;
    walk.skip(4)?; // replica_id
    if version >= 2 {
        walk.skip(1)?; // isolation_level
    }
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4 + if version >= 4 { 4 } else { 0 } + 8)?;
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

fn offset_for_leader_epoch(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 4;
    if version >= 3 {
        walk.skip(4)?; // replica_id
    }
    walk.array(flexible, |topic| {
        topic.string(flexible)?;
        topic.array(flexible, |partition| {
            partition.skip(4 + 4 + 4)?; // partition, current_leader_epoch, leader_epoch
            partition.tagged_fields(flexible)
        })?;
        topic.tagged_fields(flexible)
    })?;
    walk.tagged_fields(flexible)
}

fn metadata(walk: &mut Walk, version: i16) -> Result<(), BoundsError> {
    let flexible = version >= 9;
    walk.array(flexible, |topic| {
        if version >= 10 {
            topic.skip(16)?; // topic_id
        }
        topic.string(flexible)?;
        topic.tagged_fields(flexible)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_above_the_bytes_left_is_refused() {
        let lying = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(check(ApiKey::Metadata, 1, &lying).is_err());
        // Compact: an unsigned varint of 2^32 - 1.
        let lying_compact = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert!(check(ApiKey::Metadata, 12, &lying_compact).is_err());
    }

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{fetch_request, list_offsets_request, metadata_request, produce_request};
    use kafka_protocol::messages::{offset_for_leader_epoch_request, OffsetForLeaderEpochRequest};
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use uuid::Uuid;

    fn name(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.into()))
    }

    /// The walk must cover exactly what the crate encodes, field for field, or it would misread real requests.
    /// A protocol string, as the walk tests build requests.
    pub(super) fn text(value: &str) -> kafka_protocol::protocol::StrBytes {
        kafka_protocol::protocol::StrBytes::from_string(value.into())
    }

    pub(super) fn assert_walked_whole(api: ApiKey, versions: std::ops::RangeInclusive<i16>, request: &impl Encodable) {
        for version in versions {
            let mut body = BytesMut::new();
            request.encode(&mut body, version).unwrap_or_else(|err| panic!("{api:?} v{version} encodes: {err}"));
            let walked = walked_bytes(api, version, &body);
            assert_eq!(walked, Ok(body.len()), "{api:?} v{version}");
        }
    }

    #[test]
    fn the_walk_covers_every_served_version_of_each_request_exactly() {
        let partition = produce_request::PartitionProduceData::default().with_records(Some(Bytes::from_static(b"xyz")));
        let topic = produce_request::TopicProduceData::default().with_name(name("a")).with_partition_data(vec![
            partition.clone(),
            partition.with_unknown_tagged_field(7, Bytes::from_static(b"tag")),
        ]);
        let produce = ProduceRequest::default().with_topic_data(vec![topic.clone(), topic]);
        assert_walked_whole(ApiKey::Produce, 3..=8, &produce);
        assert_walked_whole(ApiKey::Produce, 9..=11, &produce.with_transactional_id(None));

        let fetch_topic = fetch_request::FetchTopic::default()
            .with_topic(name("orders"))
            .with_partitions(vec![fetch_request::FetchPartition::default(); 3]);
        let forgotten = fetch_request::ForgottenTopic::default().with_topic(name("old")).with_partitions(vec![1, 2]);
        let fetch = FetchRequest::default().with_topics(vec![fetch_topic.clone(), fetch_topic.clone()]);
        assert_walked_whole(ApiKey::Fetch, 4..=6, &fetch);
        assert_walked_whole(ApiKey::Fetch, 7..=12, &fetch.clone().with_forgotten_topics_data(vec![forgotten]));
        // By id from v13; v15 moves the replica id into a tagged replica state, set here as a broker's would be.
        let by_id =
            |topic: fetch_request::FetchTopic| topic.with_topic(TopicName::default()).with_topic_id(Uuid::from_u128(9));
        let forgotten_by_id =
            fetch_request::ForgottenTopic::default().with_topic_id(Uuid::from_u128(3)).with_partitions(vec![1, 2]);
        let fetch_by_id = FetchRequest::default()
            .with_topics(vec![by_id(fetch_topic.clone()), by_id(fetch_topic)])
            .with_forgotten_topics_data(vec![forgotten_by_id]);
        assert_walked_whole(ApiKey::Fetch, 13..=14, &fetch_by_id);
        let replica = fetch_request::ReplicaState::default().with_replica_id(BrokerId(2)).with_replica_epoch(5);
        assert_walked_whole(
            ApiKey::Fetch,
            15..=16,
            &fetch_by_id.clone().with_replica_id(BrokerId(-1)).with_replica_state(replica.clone()),
        );
        // v17 adds a follower's replica directory id to each partition, tagged.
        let directory = |mut topic: fetch_request::FetchTopic| {
            let partitions = std::mem::take(&mut topic.partitions);
            topic.with_partitions(
                partitions.into_iter().map(|p| p.with_replica_directory_id(Uuid::from_u128(7))).collect(),
            )
        };
        let fetch_v17 = fetch_by_id.clone().with_topics(fetch_by_id.topics.into_iter().map(directory).collect());
        assert_walked_whole(
            ApiKey::Fetch,
            17..=17,
            &fetch_v17.with_replica_id(BrokerId(-1)).with_replica_state(replica),
        );

        let list_topic = list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default(); 2]);
        assert_walked_whole(ApiKey::ListOffsets, 1..=6, &ListOffsetsRequest::default().with_topics(vec![list_topic]));

        let epoch_topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default(); 3]);
        let tagged = epoch_topic.clone().with_unknown_tagged_field(3, Bytes::from_static(b"tag"));
        let epochs = OffsetForLeaderEpochRequest::default().with_topics(vec![epoch_topic.clone(), epoch_topic]);
        assert_walked_whole(ApiKey::OffsetForLeaderEpoch, 2..=4, &epochs);
        let tagged = OffsetForLeaderEpochRequest::default().with_topics(vec![tagged.clone(), tagged]);
        assert_walked_whole(ApiKey::OffsetForLeaderEpoch, 4..=4, &tagged);

        let metadata_topic = metadata_request::MetadataRequestTopic::default().with_name(Some(name("orders")));
        let metadata = MetadataRequest::default().with_topics(Some(vec![metadata_topic; 2]));
        assert_walked_whole(ApiKey::Metadata, 1..=3, &metadata.clone().with_allow_auto_topic_creation(true));
        // From v4 the walk stops after the topics: the flags after them hold no array.
        for version in 4..=13 {
            let mut body = BytesMut::new();
            metadata.encode(&mut body, version).expect("encodes");
            let flags = if version >= 11 {
                2
            } else if version >= 8 {
                3
            } else {
                1
            };
            let tags = usize::from(version >= 9);
            assert_eq!(walked_bytes(ApiKey::Metadata, version, &body), Ok(body.len() - flags - tags), "v{version}");
        }
    }

    #[test]
    fn null_and_empty_arrays_pass() {
        assert_eq!(check(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xff]), Ok(()));
        assert_eq!(check(ApiKey::Metadata, 12, &[0, 0, 0, 0]), Ok(()));
    }
}
