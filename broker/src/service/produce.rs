//! Produce: check the records against the topic's limits, pick the partition, hand the batch to the partition's
//! writer, and answer when the requested acks are met.
//!
//! A pre-encoded batch travels as a `Bytes` slice of the request buffer into the log's `append`, which copies
//! it once into the segment file. It is never re-encoded: storage patches the base offset, outside the CRC.

use bytes::Bytes;
use rill_protocol::partitioner::partition_for_key;
use rill_protocol::v1::{self, produce_request::Records};
use rill_protocol::RecordBatch;
use rill_storage::StorageError;

use crate::codec::encode_records;
use crate::error::{BrokerError, Result};
use crate::node::{now_ms, Node};
use crate::registry::Topic;

pub async fn produce(node: &Node, request: v1::ProduceRequest) -> Result<v1::ProduceResponse> {
    if node.is_shutting_down() {
        return Err(BrokerError::ShuttingDown);
    }
    let topic = node.registry.topic(&request.topic)?;
    let acks = v1::Acks::try_from(request.acks)
        .map_err(|_| BrokerError::invalid("acks", format!("unknown value {}", request.acks)))?;
    let limit = topic.settings.max_batch_bytes;
    let batches = match request.records {
        None => return Err(BrokerError::invalid("records", "set one of record_batch, record_batches or record_list")),
        Some(Records::RecordBatch(batch)) => vec![within_limit(batch, limit)?],
        Some(Records::RecordBatches(v1::RecordBatches { batches })) => {
            if batches.is_empty() {
                return Err(BrokerError::invalid("record_batches", "holds no batch: send at least one"));
            }
            batches.into_iter().map(|batch| within_limit(batch, limit)).collect::<Result<_>>()?
        }
        Some(Records::RecordList(list)) => vec![encode_records(&list.records, now_ms(), limit)?],
    };
    // Storage validates every batch on append. The first is validated here too when the broker must look
    // inside (its first key, to pick a partition), and all are when it answers before the append (acks NONE),
    // so that a bad batch is still refused with INVALID_ARGUMENT rather than lost.
    let first_key = if request.partition.is_none() { first_key(&batches[0])? } else { None };
    if acks == v1::Acks::None {
        // `first_key` has checked the first batch already when it ran.
        let unchecked = if request.partition.is_none() { &batches[1..] } else { &batches[..] };
        for batch in unchecked {
            rill_protocol::validate(batch).map_err(StorageError::from)?;
        }
    }
    let index = match request.partition {
        Some(index) => index,
        None => pick_partition(&topic, first_key.as_deref()),
    };
    let partition = topic.partition(index)?;
    if acks == v1::Acks::None {
        partition.append_unacknowledged(batches).await?;
        return Ok(v1::ProduceResponse { partition: index, base_offset: -1, last_offset: -1, append_time_ms: -1 });
    }
    let (count, bytes) = (batches.len(), batches.iter().map(Bytes::len).sum::<usize>());
    let appended = partition.append(batches).await?;
    if acks == v1::Acks::Durable {
        partition.sync_through(appended.last_offset + 1).await?;
    }
    tracing::debug!(topic = %topic.name, partition = index, batches = count, bytes, base_offset = appended.base_offset, ?acks, "produced");
    Ok(v1::ProduceResponse {
        partition: index,
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
        append_time_ms: appended.append_time_ms,
    })
}

fn within_limit(batch: Bytes, limit: u64) -> Result<Bytes> {
    if batch.len() as u64 > limit {
        return Err(BrokerError::TooLarge { what: "record batch", size: batch.len() as u64, limit });
    }
    Ok(batch)
}

/// Validates the batch and returns the key of its first record, if the records are readable here (a
/// compressed batch is valid but opaque to the broker: it goes round-robin unless the producer names a
/// partition, which rill's client always does).
fn first_key(batch: &Bytes) -> Result<Option<Bytes>> {
    let batch = RecordBatch::new(batch.clone()).map_err(StorageError::from)?;
    let Ok(mut records) = batch.records() else { return Ok(None) };
    match records.next() {
        Some(Ok(record)) => Ok(record.key.map(|key| batch.bytes.slice_ref(key))),
        Some(Err(err)) => Err(StorageError::from(err).into()),
        None => Ok(None),
    }
}

/// Kafka's default partitioner: murmur2 of the key for keyed records, round-robin otherwise.
fn pick_partition(topic: &Topic, key: Option<&[u8]>) -> u32 {
    match key {
        Some(key) => partition_for_key(key, topic.partition_count().max(1)),
        None => topic.round_robin_partition(),
    }
}
