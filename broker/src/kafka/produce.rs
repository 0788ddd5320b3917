//! Produce (v3+, record batch v2 only): each partition's records go through the same produce path as gRPC's
//! (`service::produce`), so Kafka's batch rules (`rill_protocol::validate_produced`) and the topic's limits
//! apply alike. The batches are `Bytes` slices of the request frame, appended unchanged, with one exception
//! Kafka's broker makes too: a CreateTime batch whose `max_timestamp` is not its largest record timestamp is
//! refused by that path, then corrected (`rill_protocol::correct_max_timestamp`, a copy with a new CRC) and
//! produced again, as Kafka's `LogValidator` sets the field instead of refusing it. Old clients leave it unset.
//!
//! From v10 (KIP-951) a partition refused because this node does not lead it names its leader, with the
//! leader's endpoint in the answer (`leader_hints.rs`).
//!
//! acks 0 is rill's NONE (no response at all, as Kafka sends none), 1 is LEADER, -1 (all) is ALL on a cluster
//! (every in-sync replica holds the batch, `min.insync.replicas` enforced) and DURABLE on a single node, where
//! "all in-sync replicas" is this node and rill makes it mean fsynced before the answer.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_protocol::v1::{self, produce_request::Records};
use rill_protocol::{BatchHeader, BatchIter, TimestampType};
use rill_storage::StorageError;

use super::error::error_code;
use super::leader_hints::{is_hinted, node_endpoint, LeaderHints};
use super::KafkaContext;
use crate::error::BrokerError;

/// The rill acks a Kafka `acks` value asks for on a cluster node or a single node; `None` for a value Kafka
/// refuses too.
pub fn acks(kafka_acks: i16, is_cluster: bool) -> Option<v1::Acks> {
    match kafka_acks {
        0 => Some(v1::Acks::None),
        1 => Some(v1::Acks::Leader),
        -1 if is_cluster => Some(v1::Acks::All),
        -1 => Some(v1::Acks::Durable),
        _ => None,
    }
}

pub async fn answer(
    kafka: &KafkaContext,
    request: ProduceRequest,
    principal: &crate::auth::Principal,
) -> ProduceResponse {
    use crate::auth::acl::{Operation, Resource};
    let acks = acks(request.acks, kafka.node.replication.is_some());
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        // Once per topic; a denied topic's partitions are each answered TOPIC_AUTHORIZATION_FAILED, as Kafka does.
        let authorized = kafka.authorize(principal, Operation::Write, &Resource::topic(topic.name.0.as_str()));
        for data in topic.partition_data {
            let index = data.index;
            let outcome = match (acks, authorized) {
                (_, Err(code)) => Err((code, None)),
                (None, _) => Err((ResponseError::InvalidRequiredAcks.code(), None)),
                (Some(acks), Ok(())) => {
                    produce_partition(kafka, topic.name.0.as_str(), index, data.records, acks).await
                }
            };
            partition_responses.push(match outcome {
                Ok(answer) => answer,
                Err((code, message)) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(code)
                    // Produce v8+ (KIP-467): what was wrong, in words; older versions drop the field.
                    .with_error_message(message.map(StrBytes::from_string))
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1),
            });
        }
        responses
            .push(TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partition_responses));
    }
    with_leader_hints(kafka, ProduceResponse::default().with_responses(responses))
}

/// `response` with KIP-951's hints (v10+): each partition refused for not being led here names its leader.
fn with_leader_hints(kafka: &KafkaContext, mut response: ProduceResponse) -> ProduceResponse {
    let mut hints: Option<LeaderHints> = None;
    for topic in &mut response.responses {
        for partition in topic.partition_responses.iter_mut().filter(|p| is_hinted(p.error_code)) {
            let hints = hints.get_or_insert_with(|| LeaderHints::new(kafka));
            if let Some((leader_id, leader_epoch)) = hints.leader_of(topic.name.0.as_str(), partition.index) {
                partition.current_leader =
                    LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader_id)).with_leader_epoch(leader_epoch);
            }
        }
    }
    if let Some(hints) = hints {
        response.node_endpoints = hints.endpoints().into_iter().map(|b| node_endpoint!(NodeEndpoint, b)).collect();
    }
    response
}

async fn produce_partition(
    kafka: &KafkaContext,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: v1::Acks,
) -> Result<PartitionProduceResponse, (i16, Option<String>)> {
    let unknown = || (ResponseError::UnknownTopicOrPartition.code(), None);
    let partition = u32::try_from(index).map_err(|_| unknown())?;
    let refused = |err: &BrokerError| {
        tracing::debug!(topic, partition, error = %err, "kafka produce refused");
        (error_code(err), Some(err.to_string()))
    };
    let batches = split_batches(records.unwrap_or_default()).map_err(|err| refused(&err))?;
    let is_log_append_time = is_log_append_time_topic(kafka, topic)
        || BatchHeader::parse(&batches[0]).is_ok_and(|header| header.timestamp_type() == TimestampType::LogAppendTime);
    let request = |batches| v1::ProduceRequest {
        topic: topic.to_string(),
        partition: Some(partition),
        acks: acks as i32,
        records: Some(Records::RecordBatches(v1::RecordBatches { batches })),
    };
    // A refused call stores nothing, so the corrected batches go through the whole path again, rules and
    // producer sequences included. The first try costs nothing extra for the clients that set the field.
    let produced = match crate::service::produce(&kafka.node, request(batches.clone())).await {
        Err(err) if is_max_timestamp_mismatch(&err) => {
            tracing::trace!(topic, partition, error = %err, "correcting the batches' max timestamp, as Kafka does");
            let corrected = corrected_max_timestamps(batches).map_err(|err| refused(&err))?;
            crate::service::produce(&kafka.node, request(corrected)).await
        }
        produced => produced,
    };
    let produced = produced.map_err(|err| refused(&err))?;
    let log_start_offset =
        kafka.node.registry.partition(topic, partition).map(|p| p.log().log_start_offset()).unwrap_or(-1);
    Ok(PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(produced.base_offset)
        // Kafka reports the append time only for LogAppendTime batches; -1 means "the producer's CreateTime".
        .with_log_append_time_ms(if is_log_append_time { produced.append_time_ms } else { -1 })
        .with_log_start_offset(log_start_offset))
}

/// A topic with `message.timestamp.type=LogAppendTime`: the broker stamps its batches, and Kafka's answer says when.
fn is_log_append_time_topic(kafka: &KafkaContext, topic: &str) -> bool {
    kafka.node.registry.topic(topic).is_ok_and(|topic| topic.settings().timestamps.log_append_time)
}

fn is_max_timestamp_mismatch(err: &BrokerError) -> bool {
    matches!(
        err,
        BrokerError::Storage(StorageError::InvalidBatch(rill_protocol::BatchError::MaxTimestampMismatch { .. }))
    )
}

/// `batches` with each wrong CreateTime `max_timestamp` set to the largest record timestamp (a copy of just
/// those batches); any other fault is the refusal.
fn corrected_max_timestamps(batches: Vec<Bytes>) -> Result<Vec<Bytes>, BrokerError> {
    batches
        .into_iter()
        .map(|batch| {
            match rill_protocol::correct_max_timestamp(&batch, rill_protocol::compression::MAX_DECOMPRESSED_BATCH_BYTES)
            {
                Ok(Some(corrected)) => Ok(Bytes::from(corrected)),
                Ok(None) => Ok(batch),
                Err(refused) => Err(StorageError::from(refused).into()),
            }
        })
        .collect()
}

/// The batches of one partition's `records`, as slices of the request: at least one, each whole (the produce
/// path checks each one's checksum and rules).
fn split_batches(records: Bytes) -> Result<Vec<Bytes>, BrokerError> {
    let batches = BatchIter::new(records)
        .map(|batch| batch.map(|batch| batch.bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(StorageError::from)?;
    if batches.is_empty() {
        return Err(StorageError::from(rill_protocol::BatchError::Truncated {
            needed: rill_protocol::batch::HEADER_BYTES,
            available: 0,
        })
        .into());
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_acks_map_to_none_leader_and_all_or_durable() {
        for is_cluster in [false, true] {
            assert_eq!(acks(0, is_cluster), Some(v1::Acks::None));
            assert_eq!(acks(1, is_cluster), Some(v1::Acks::Leader));
            assert_eq!(acks(2, is_cluster), None);
        }
        assert_eq!(acks(-1, true), Some(v1::Acks::All), "every in-sync replica of a cluster");
        assert_eq!(acks(-1, false), Some(v1::Acks::Durable), "the one replica, fsynced");
    }

    #[test]
    fn records_that_are_not_whole_batches_are_a_corrupt_message() {
        let garbage = split_batches(Bytes::from_static(&[1, 2, 3])).expect_err("not a batch");
        assert_eq!(error_code(&garbage), ResponseError::CorruptMessage.code());
        let empty = split_batches(Bytes::new()).expect_err("no batch");
        assert_eq!(error_code(&empty), ResponseError::CorruptMessage.code());
    }
}
