//! What `kafka-transactions.sh` and the admin clients ask of transactions: ListTransactions (v0–1),
//! DescribeTransactions (v0) from the coordinator (`crate::transactions`; on a cluster, the controller leader:
//! the others list none and describe none, NOT_COORDINATOR), DescribeProducers (v0) from each partition's log, the
//! way to find a transaction left open in a partition, and WriteTxnMarkers (v1), the way to end it.

use kafka_protocol::messages::describe_producers_response::{self, PartitionResponse, TopicResponse};
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::leader_epoch::led_partition;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::node::now_ms;
use crate::transactions::{Marker, TransactionState};

const STATES: [TransactionState; 6] = [
    TransactionState::Empty,
    TransactionState::Ongoing,
    TransactionState::PrepareCommit,
    TransactionState::PrepareAbort,
    TransactionState::CompleteCommit,
    TransactionState::CompleteAbort,
];

pub fn list(
    kafka: &KafkaContext,
    request: &ListTransactionsRequest,
    principal: &Principal,
) -> ListTransactionsResponse {
    // Kafka's other states (Dead, PrepareEpochFence) are names rill's coordinator never uses: they select nothing,
    // and are not unknown.
    let known = |name: &str| STATES.iter().any(|s| s.as_str() == name) || name == "Dead" || name == "PrepareEpochFence";
    let unknown: Vec<StrBytes> = request.state_filters.iter().filter(|f| !known(f.as_str())).cloned().collect();
    let now = now_ms();
    // On a cluster only the coordinator lists (the admin client asks every node and joins the answers).
    let mut listed: Vec<_> = kafka
        .node
        .transactions
        .all()
        .into_iter()
        .filter(|meta| {
            request.state_filters.is_empty() || request.state_filters.iter().any(|f| f.as_str() == meta.state.as_str())
        })
        .filter(|meta| {
            request.producer_id_filters.is_empty()
                || request.producer_id_filters.iter().any(|id| id.0 == meta.producer_id)
        })
        // v1 (KIP-994): transactions open longer than this, in ms; -1 (the default) for all.
        .filter(|meta| {
            request.duration_filter < 0
                || (meta.state == TransactionState::Ongoing
                    && now.saturating_sub(meta.started_ms) >= request.duration_filter)
        })
        .filter(|meta| {
            let id = Resource::transactional_id(&meta.transactional_id);
            kafka.node.authorizer.is_allowed(principal, Operation::Describe, &id)
        })
        .collect();
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    let states = listed
        .into_iter()
        .map(|meta| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(meta.transactional_id)))
                .with_producer_id(meta.producer_id.into())
                .with_transaction_state(StrBytes::from_static_str(meta.state.as_str()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states)
}

pub fn describe(
    kafka: &KafkaContext,
    request: &DescribeTransactionsRequest,
    principal: &Principal,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            let answer = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id((-1).into())
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if kafka.authorize(principal, Operation::Describe, &Resource::transactional_id(id.0.as_str())).is_err() {
                return answer.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            let meta = match kafka.node.transactions.get(id.0.as_str()) {
                Ok(Some(meta)) => meta,
                Ok(None) => return answer.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Err(not_coordinator) => return answer.with_error_code(not_coordinator.kafka_code(true)),
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &meta.partitions {
                if !kafka.node.authorizer.is_allowed(principal, Operation::Describe, &Resource::topic(topic)) {
                    continue;
                }
                match topics.last_mut() {
                    Some(last) if last.topic.0.as_str() == topic => last.partitions.push(*partition as i32),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partitions(vec![*partition as i32]),
                    ),
                }
            }
            let is_open = meta.state == TransactionState::Ongoing || meta.state.is_prepared();
            answer
                .with_transaction_state(StrBytes::from_static_str(meta.state.as_str()))
                .with_transaction_timeout_ms(i32::try_from(meta.timeout_ms).unwrap_or(i32::MAX))
                .with_transaction_start_time_ms(if is_open { meta.started_ms } else { -1 })
                .with_producer_id(meta.producer_id.into())
                .with_producer_epoch(meta.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn describe_producers(
    kafka: &KafkaContext,
    request: &DescribeProducersRequest,
    principal: &Principal,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let authorized = kafka.authorize(principal, Operation::Read, &Resource::topic(topic.name.0.as_str()));
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    let led = authorized.and_then(|()| led_partition(&kafka.node, topic.name.0.as_str(), index, -1));
                    let (partition, _) = match led {
                        Ok(led) => led,
                        Err(code) => return answer.with_error_code(code),
                    };
                    let producers = partition
                        .log()
                        .producer_activity()
                        .into_iter()
                        .map(|producer| {
                            describe_producers_response::ProducerState::default()
                                .with_producer_id(producer.producer_id.into())
                                .with_producer_epoch(i32::from(producer.epoch))
                                .with_last_sequence(producer.last_sequence)
                                .with_last_timestamp(producer.last_seen_ms)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(producer.transaction_first_offset.unwrap_or(-1))
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// WriteTxnMarkers (v1): what `kafka-transactions.sh abort` sends a partition's leader to end a transaction left
/// open there (a hanging transaction, one its coordinator no longer knows). Refused (INVALID_TXN_STATE) while the
/// coordinator still has that producer's transaction open with the partition: ending it behind its coordinator's
/// back would split it, and the coordinator ends it itself (EndTxn, or its timeout). A marker older than the
/// producer's epoch in the partition is INVALID_PRODUCER_EPOCH. Kafka asks CLUSTER_ACTION on the cluster, an
/// operation rill's ACLs do not have: ALTER on the cluster here.
pub async fn write_markers(
    kafka: &KafkaContext,
    request: WriteTxnMarkersRequest,
    principal: &Principal,
) -> WriteTxnMarkersResponse {
    let authorized = kafka.authorize(principal, Operation::Alter, &Resource::cluster());
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let producer_id = marker.producer_id.0;
        let asked = MarkerAsked { epoch: marker.producer_epoch, commit: marker.transaction_result };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for index in topic.partition_indexes {
                let written = match authorized {
                    Err(code) => Err(code),
                    Ok(()) => write_marker(kafka, topic.name.0.as_str(), index, &asked, producer_id).await,
                };
                partitions.push(
                    write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(written.err().unwrap_or(0)),
                );
            }
            topics.push(
                write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        markers.push(
            write_txn_markers_response::WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// What one WriteTxnMarkers entry asks: the producer's epoch and the outcome.
struct MarkerAsked {
    epoch: i16,
    commit: bool,
}

async fn write_marker(
    kafka: &KafkaContext,
    topic: &str,
    index: i32,
    asked: &MarkerAsked,
    producer_id: i64,
) -> Result<(), i16> {
    let (partition, _) = led_partition(&kafka.node, topic, index, -1)?;
    if producer_id < 0 || asked.epoch < 0 {
        return Err(ResponseError::InvalidProducerEpoch.code());
    }
    let current = partition.log().producer_activity().into_iter().find(|p| p.producer_id == producer_id);
    if current.is_some_and(|producer| asked.epoch < producer.epoch) {
        return Err(ResponseError::InvalidProducerEpoch.code());
    }
    let index = partition.index;
    if kafka.node.transactions.has_open(producer_id, topic, index) {
        tracing::info!(
            topic,
            partition = index,
            producer_id,
            "refused WriteTxnMarkers: the coordinator has this transaction open"
        );
        return Err(ResponseError::InvalidTxnState.code());
    }
    let marker = Marker {
        topic: topic.to_string(),
        partition: index,
        producer_id,
        producer_epoch: asked.epoch,
        commit: asked.commit,
    };
    kafka.node.transactions.write_marker(&kafka.node, &marker).await.map_err(|err| {
        tracing::warn!(topic, partition = index, producer_id, error = %err, "WriteTxnMarkers failed");
        super::error::error_code(&err)
    })?;
    tracing::info!(
        topic,
        partition = index,
        producer_id,
        epoch = asked.epoch,
        commit = asked.commit,
        "wrote a transaction marker asked by WriteTxnMarkers"
    );
    Ok(())
}
