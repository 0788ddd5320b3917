//! `GET .../records`: what the instance's consumer has, up to `max_bytes`, shown in the instance's format. An
//! `avro`, `protobuf` or `jsonschema` instance looks up the schema each key and value names (by the id in Confluent's framing) before it
//! shows any. An answer that cannot be shown whole is not shown at all: its partitions go back to where it
//! began, so nothing is skipped and nothing it held is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use rill_client::{ConsumedRecord, Consumer, SeekTo};
use serde_json::Value;

use super::{Caller, ConsumerInstance, MAX_RECORDS_BYTES, MAX_RECORDS_WAIT};
use crate::avro::schema_id;
use crate::error::{code, ApiError};
use crate::format::EmbeddedFormat;
use crate::routes::query_number;
use crate::schemas::RegisteredSchema;
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
    super::subscription::follow_pattern(instance).await?;
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
    let schemas = match format.uses_registry() {
        true => match schemas_named(&polled, format, caller).await {
            Ok(schemas) => schemas,
            Err(refused) => {
                rewind(&mut instance.consumer, &polled).await;
                return Err(refused);
            }
        },
        false => HashMap::new(),
    };
    // The answer is written straight as JSON text: the keys and values of the binary format are base64, which
    // needs no escaping, and those of the json format are already JSON text (checked, then copied), so neither
    // goes through a JSON value and the escaping pass of writing one (docs/benchmarks.md, "HTTP proxy").
    let mut answer = Vec::with_capacity(polled.iter().map(|r| r.payload_bytes() * 4 / 3 + 96).sum::<usize>() + 2);
    answer.push(b'[');
    for (index, record) in polled.iter().enumerate() {
        if index > 0 {
            answer.push(b',');
        }
        let written = write_record(&mut answer, record, format, &schemas);
        if let Err(why) = written {
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
    }
    answer.push(b']');
    caller.metrics.consumed(format, polled.len() as u64);
    Ok(ApiResponse::JsonText(answer))
}

/// `{"topic": T, "key": K, "value": V, "partition": P, "offset": O}`, the key and value as `format` shows them.
fn write_record(
    out: &mut Vec<u8>,
    record: &ConsumedRecord,
    format: EmbeddedFormat,
    schemas: &HashMap<u32, Arc<RegisteredSchema>>,
) -> Result<(), String> {
    out.extend_from_slice(b"{\"topic\":");
    serde_json::to_writer(&mut *out, &*record.topic).map_err(|err| err.to_string())?;
    out.extend_from_slice(b",\"key\":");
    write_field(out, record.key.as_ref(), format, schemas)?;
    out.extend_from_slice(b",\"value\":");
    write_field(out, record.value.as_ref(), format, schemas)?;
    out.extend_from_slice(format!(",\"partition\":{},\"offset\":{}}}", record.partition, record.offset).as_bytes());
    Ok(())
}

fn write_field(
    out: &mut Vec<u8>,
    bytes: Option<&Bytes>,
    format: EmbeddedFormat,
    schemas: &HashMap<u32, Arc<RegisteredSchema>>,
) -> Result<(), String> {
    let Some(bytes) = bytes else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    match format {
        EmbeddedFormat::Binary => {
            out.push(b'"');
            let start = out.len();
            out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut out[start..])
                .map_err(|err| err.to_string())?;
            out.truncate(start + written);
            out.push(b'"');
        }
        EmbeddedFormat::Json => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|err| format!("not JSON ({err})"))?;
            out.extend_from_slice(bytes);
        }
        EmbeddedFormat::Avro | EmbeddedFormat::Protobuf | EmbeddedFormat::JsonSchema => {
            let value = show_registered(bytes, format, schemas)?;
            serde_json::to_writer(&mut *out, &value).map_err(|err| err.to_string())?;
        }
    }
    Ok(())
}

/// The schemas the framed keys and values of `polled` name, from the registry (as the instance's caller).
async fn schemas_named(
    polled: &[ConsumedRecord],
    format: EmbeddedFormat,
    caller: &Caller<'_>,
) -> Result<HashMap<u32, Arc<RegisteredSchema>>, ApiError> {
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
        ApiError::new(
            500,
            code::KAFKA_ERROR,
            format!("this {} instance has no schema registry to read schemas from", format.name()),
        )
    })?;
    for id in ids {
        let schema = registry.schema_by_id(id, caller.credential).await;
        schemas.insert(id, schema.map_err(|err| err.answer(&format!("schema {id} of the records read")))?);
    }
    Ok(schemas)
}

fn show_registered(
    bytes: &Bytes,
    format: EmbeddedFormat,
    schemas: &HashMap<u32, Arc<RegisteredSchema>>,
) -> Result<Value, String> {
    let (id, body) = schema_id(bytes)?;
    let schema = schemas.get(&id).ok_or_else(|| format!("schema {id} was not found"))?;
    if schema.format() != format {
        return Err(format!("it names schema {id}, a {} schema", schema.format().name()));
    }
    schema.decode(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn written(bytes: Option<&[u8]>, format: EmbeddedFormat) -> Result<String, String> {
        let mut out = Vec::new();
        let bytes = bytes.map(Bytes::copy_from_slice);
        write_field(&mut out, bytes.as_ref(), format, &HashMap::new())?;
        String::from_utf8(out).map_err(|err| err.to_string())
    }

    #[test]
    fn keys_and_values_are_written_as_their_format_shows_them_or_refused() {
        assert_eq!(written(Some(b"hello"), EmbeddedFormat::Binary), Ok("\"aGVsbG8=\"".into()));
        assert_eq!(written(Some(b""), EmbeddedFormat::Binary), Ok("\"\"".into()));
        assert_eq!(written(None, EmbeddedFormat::Binary), Ok("null".into()));
        assert_eq!(
            written(Some(br#"{"a": [1, "\u00e9"]}"#), EmbeddedFormat::Json),
            Ok(r#"{"a": [1, "\u00e9"]}"#.into())
        );
        assert!(written(Some(b"\x00\x01"), EmbeddedFormat::Json).unwrap_err().starts_with("not JSON"));
        assert!(written(Some(b"{\"a\": 1} {\"b\": 2}"), EmbeddedFormat::Json).is_err(), "two values are not one");
        assert!(written(Some(b"plain"), EmbeddedFormat::Avro).unwrap_err().contains("Confluent framing"));
    }

    #[test]
    fn an_answer_is_the_json_it_claims_to_be() {
        let record = |offset, value: &[u8]| ConsumedRecord {
            topic: Arc::from("t"),
            partition: 1,
            offset,
            timestamp_ms: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
        };
        let mut out = Vec::new();
        write_record(&mut out, &record(7, b"\xff\x00\""), EmbeddedFormat::Binary, &HashMap::new()).unwrap();
        let parsed: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"topic": "t", "key": "aw==", "value": "/wAi", "partition": 1, "offset": 7})
        );
    }
}
