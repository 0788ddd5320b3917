//! `GET .../records`: what the instance's consumer has, up to `max_bytes`, shown in the instance's format. An
//! `avro` instance looks up the schema each key and value names (by the id in Confluent's framing) before it
//! shows any. An answer that cannot be shown whole is not shown at all: its partitions go back to where it
//! began, so nothing is skipped and nothing it held is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rill_client::{ConsumedRecord, Consumer, SeekTo};
use serde_json::{json, Value};

use super::{Caller, ConsumerInstance, MAX_RECORDS_BYTES, MAX_RECORDS_WAIT};
use crate::avro::{schema_id, AvroSchema};
use crate::error::{code, ApiError};
use crate::format::EmbeddedFormat;
use crate::routes::query_number;
use crate::server::{ApiRequest, ApiResponse};

pub(super) async fn records(
    instance: &mut ConsumerInstance,
    caller: &Caller<'_>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    if let Some(asked) = EmbeddedFormat::of_accept(request.accept.as_deref())? {
        if asked != instance.format {
            let format = instance.format.name();
            return Err(ApiError::new(
                406,
                code::CONSUMER_FORMAT_MISMATCH,
                format!(
                    "this consumer instance reads the {format} format, not {}: ask with \
                     Accept: application/vnd.kafka.{format}.v2+json",
                    asked.name()
                ),
            ));
        }
    }
    let wait = match query_number(&request.query, "timeout")? {
        Some(ms) => Duration::from_millis(ms).min(MAX_RECORDS_WAIT),
        None => instance.request_wait,
    };
    let max_bytes = query_number(&request.query, "max_bytes")?
        .map_or(MAX_RECORDS_BYTES, |bytes| usize::try_from(bytes).unwrap_or(usize::MAX).min(MAX_RECORDS_BYTES));
    let polled = match tokio::time::timeout(wait, instance.consumer.poll_max_bytes(max_bytes)).await {
        Ok(polled) => polled.map_err(|e| ApiError::from_client(&e))?,
        Err(_) => Vec::new(),
    };
    let format = instance.format;
    let schemas = match format {
        EmbeddedFormat::Avro => match schemas_named(&polled, caller).await {
            Ok(schemas) => schemas,
            Err(refused) => {
                rewind(&mut instance.consumer, &polled).await;
                return Err(refused);
            }
        },
        _ => HashMap::new(),
    };
    let show = |bytes: Option<&Bytes>| match format {
        EmbeddedFormat::Avro => show_avro(bytes, &schemas),
        _ => format.decode(bytes),
    };
    let mut answered = Vec::with_capacity(polled.len());
    for record in &polled {
        let (key, value) = match (show(record.key.as_ref()), show(record.value.as_ref())) {
            (Ok(key), Ok(value)) => (key, value),
            (Err(why), _) | (_, Err(why)) => {
                rewind(&mut instance.consumer, &polled).await;
                return Err(ApiError::new(
                    500,
                    code::KAFKA_ERROR,
                    format!(
                        "partition {} of topic {:?}, offset {}: {why}; a {} consumer cannot show it. Read it with a \
                         binary consumer, or move past it (POST positions, offset {})",
                        record.partition,
                        record.topic,
                        record.offset,
                        format.name(),
                        record.offset + 1
                    ),
                ));
            }
        };
        answered.push(json!({
            "topic": &*record.topic, "key": key, "value": value, "partition": record.partition, "offset": record.offset,
        }));
    }
    caller.metrics.consumed(format, answered.len() as u64);
    Ok(ApiResponse::Json(Value::Array(answered)))
}

/// The schemas the framed keys and values of `polled` name, from the registry (as the instance's caller).
async fn schemas_named(
    polled: &[ConsumedRecord],
    caller: &Caller<'_>,
) -> Result<HashMap<u32, Arc<AvroSchema>>, ApiError> {
    let ids: BTreeSet<u32> = polled
        .iter()
        .flat_map(|record| [record.key.as_ref(), record.value.as_ref()])
        .flatten()
        .filter_map(|bytes| schema_id(bytes).ok().map(|(id, _)| id))
        .collect();
    let mut schemas = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(schemas);
    }
    let registry = caller.registry.ok_or_else(|| {
        ApiError::new(500, code::KAFKA_ERROR, "this avro instance has no schema registry to read schemas from")
    })?;
    for id in ids {
        let schema = registry.schema_by_id(id, caller.credential).await;
        schemas.insert(id, schema.map_err(|err| err.answer(&format!("schema {id} of the records read")))?);
    }
    Ok(schemas)
}

fn show_avro(bytes: Option<&Bytes>, schemas: &HashMap<u32, Arc<AvroSchema>>) -> Result<Value, String> {
    let Some(bytes) = bytes else { return Ok(Value::Null) };
    let (id, datum) = schema_id(bytes)?;
    let schema = schemas.get(&id).ok_or_else(|| format!("schema {id} was not found"))?;
    schema.decode(datum)
}

/// Puts every partition of `polled` back at its first record there: none of them reached the caller.
async fn rewind(consumer: &mut Consumer, polled: &[ConsumedRecord]) {
    let mut firsts: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for record in polled {
        firsts.entry((record.topic.to_string(), record.partition)).or_insert(record.offset);
    }
    for ((topic, partition), offset) in firsts {
        if let Err(error) = consumer.seek(&topic, partition, SeekTo::Offset(offset)).await {
            tracing::warn!(topic, partition, offset, %error, "could not put a partition back after a failed answer");
        }
    }
}
