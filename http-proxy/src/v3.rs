//! Confluent REST Proxy's API v3 for producing, the one Confluent Cloud documents: `POST
//! /v3/clusters/C/topics/T/records`, a record per JSON object with headers and a timestamp (which v2 cannot
//! carry), its key and value each typed (`BINARY` base64, `JSON`, `STRING`, or Avro by `schema_id` or
//! `schema`). A body may hold several objects one after another (Confluent's streaming mode, sent whole): each
//! gets its delivery report, in order. `GET /v3/clusters` names the cluster.
//!
//! A body of one record that is refused is answered with the refusal's status; with several, every report says
//! its own `error_code` (200 when stored) and the answer is 200.

use std::sync::Arc;

use bytes::Bytes;
use rill_client::{ClusterAdmin, Header, ProducerRecord, RecordMetadata};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::format::EmbeddedFormat;
use crate::registry::SchemaRegistryClient;
use crate::routes::ProxyState;
use crate::schemas::RegisteredSchema;
use crate::server::{ApiRequest, ApiResponse};
use crate::sessions::{Credential, Session};

/// Records one body may hold (the body is also bounded in bytes).
const MAX_RECORDS_PER_BODY: usize = 10_000;
/// What a single node's cluster is called, as its Kafka listener names it.
const SINGLE_NODE_CLUSTER_ID: &str = "rill";

/// `GET /v3/clusters`.
pub(crate) async fn clusters(session: &Session) -> Result<ApiResponse, ApiError> {
    let id = cluster_id(session).await?;
    Ok(ApiResponse::Json(json!({
        "kind": "KafkaClusterList",
        "data": [{ "kind": "KafkaCluster", "cluster_id": id }],
    })))
}

async fn cluster_id(session: &Session) -> Result<String, ApiError> {
    let cluster = ClusterAdmin::new(session.client.clone()).describe_cluster().await;
    let cluster = cluster.map_err(|err| ApiError::from_client(&err))?;
    Ok(if cluster.cluster_id.is_empty() { SINGLE_NODE_CLUSTER_ID.to_owned() } else { cluster.cluster_id })
}

/// `POST /v3/clusters/C/topics/T/records`.
pub(crate) async fn produce(
    state: &ProxyState,
    credential: &Credential,
    cluster: &str,
    topic: &str,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let objects: Vec<Value> = serde_json::Deserializer::from_slice(&request.body)
        .into_iter::<Value>()
        .take(MAX_RECORDS_PER_BODY + 1)
        .collect::<Result<_, _>>()
        .map_err(|err| ApiError::new(400, 400, format!("the body is not JSON objects one after another: {err}")))?;
    if objects.is_empty() {
        return Err(ApiError::new(400, 400, "the body holds no record: send a JSON object per record"));
    }
    if objects.len() > MAX_RECORDS_PER_BODY {
        return Err(ApiError::new(400, 400, format!("more than {MAX_RECORDS_PER_BODY} records in one body")));
    }
    let session = state.sessions.session(credential)?;
    let producer = session.producer()?;
    let mut reports = Vec::with_capacity(objects.len());
    let mut deliveries = Vec::with_capacity(objects.len());
    for object in &objects {
        let built = record(object, topic, state.registry.as_deref(), credential).await;
        let sent = match built {
            Ok((record, sizes)) => match producer.send(topic, record).await {
                Ok(delivery) => Ok((delivery, sizes)),
                Err(err) => Err(ApiError::from_client(&err)),
            },
            Err(refused) => Err(refused),
        };
        deliveries.push(sent);
    }
    for sent in deliveries {
        let report = match sent {
            Ok((delivery, sizes)) => match delivery.await {
                Ok(stored) => Ok(stored_report(cluster, topic, &stored, &sizes)),
                Err(err) => Err(ApiError::from_client(&err)),
            },
            Err(refused) => Err(refused),
        };
        reports.push(report);
    }
    for report in reports.iter().flatten() {
        let format = match report["value"]["type"].as_str() {
            Some("JSON") => EmbeddedFormat::Json,
            Some("AVRO") => EmbeddedFormat::Avro,
            Some("PROTOBUF") => EmbeddedFormat::Protobuf,
            Some("JSONSCHEMA") => EmbeddedFormat::JsonSchema,
            _ => EmbeddedFormat::Binary,
        };
        state.metrics.produced(format, 1);
    }
    if let [Err(refused)] = reports.as_slice() {
        return Err(refused.clone());
    }
    let mut answer = Vec::new();
    for report in reports {
        let report =
            report.unwrap_or_else(|refused| json!({ "error_code": refused.status, "message": refused.message }));
        answer.extend_from_slice(report.to_string().as_bytes());
        answer.push(b'\n');
    }
    if answer.ends_with(b"\n") && objects.len() == 1 {
        answer.pop();
    }
    Ok(ApiResponse::JsonText(answer))
}

/// The type and size of a stored key or value, for its report.
type Sizes = (Option<(String, usize)>, Option<(String, usize)>);

fn stored_report(cluster: &str, topic: &str, stored: &RecordMetadata, (key, value): &Sizes) -> Value {
    let side = |s: &Option<(String, usize)>| s.as_ref().map(|(kind, size)| json!({ "type": kind, "size": size }));
    json!({
        "error_code": 200,
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": stored.partition,
        "offset": stored.offset,
        "timestamp": rfc3339(stored.timestamp_ms),
        "key": side(key),
        "value": side(value),
    })
}

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or(Value::Null, |t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, 400, message)
}

/// One record object as a producer record, with the type and size of its key and value.
async fn record(
    object: &Value,
    topic: &str,
    registry: Option<&SchemaRegistryClient>,
    credential: &Credential,
) -> Result<(ProducerRecord, Sizes), ApiError> {
    let Value::Object(fields) = object else {
        return Err(bad("a record is a JSON object: {\"key\": ..., \"value\": ..., \"headers\": [...]}"));
    };
    let allowed = ["partition_id", "headers", "key", "value", "timestamp"];
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("unknown field {unknown:?}: a record has {}", allowed.join(", "))));
    }
    let partition = match fields.get("partition_id").filter(|v| !v.is_null()) {
        None => None,
        Some(given) => Some(
            given
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| bad(format!("partition_id: {given} is not a partition number")))?,
        ),
    };
    let timestamp_ms = match fields.get("timestamp").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::String(text)) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|err| bad(format!("timestamp {text:?} is not an RFC 3339 time ({err})")))?
                .timestamp_millis(),
        ),
        Some(other) => {
            return Err(bad(format!("timestamp: {other} is not an RFC 3339 time such as 2026-12-05T21:00:00Z")))
        }
    };
    let headers = headers(fields.get("headers"))?;
    let (key, key_size) = side(fields, "key", topic, registry, credential).await?;
    let (value, value_size) = side(fields, "value", topic, registry, credential).await?;
    let record = ProducerRecord { key, value, headers, timestamp_ms, partition };
    Ok((record, (key_size, value_size)))
}

fn headers(given: Option<&Value>) -> Result<Vec<Header>, ApiError> {
    let Some(given) = given.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Value::Array(items) = given else { return Err(bad("headers: an array of {\"name\", \"value\"}")) };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name =
                item.get("name").and_then(Value::as_str).ok_or_else(|| bad(format!("headers[{i}].name: a string")))?;
            let value = match item.get("value").filter(|v| !v.is_null()) {
                None => None,
                Some(Value::String(text)) => Some(Bytes::from(
                    base64_decode(text).map_err(|why| bad(format!("headers[{i}].value: not base64 ({why})")))?,
                )),
                Some(other) => return Err(bad(format!("headers[{i}].value: {other} is not a base64 string"))),
            };
            Ok(Header { key: name.to_owned(), value })
        })
        .collect()
}

fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text)
}

/// A key or value, `{"type": ..., "data": ...}` or `{"schema_id": N, "data": ...}`: its bytes, and its type and
/// size for the report (none when absent or null).
async fn side(
    fields: &Map<String, Value>,
    name: &str,
    topic: &str,
    registry: Option<&SchemaRegistryClient>,
    credential: &Credential,
) -> Result<(Option<Bytes>, Option<(String, usize)>), ApiError> {
    let Some(given) = fields.get(name).filter(|v| !v.is_null()) else { return Ok((None, None)) };
    let Value::Object(spec) = given else {
        return Err(bad(format!(
            "{name}: an object {{\"type\": \"BINARY\"|\"JSON\"|\"STRING\"|\"AVRO\", \"data\": ...}}"
        )));
    };
    let allowed = ["type", "data", "schema_id", "schema", "subject_name_strategy"];
    if let Some(unknown) = spec.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{name}: unknown field {unknown:?} (type, data, schema_id, schema)")));
    }
    if spec.get("subject_name_strategy").is_some() {
        return Err(bad(format!("{name}.subject_name_strategy: only TopicNameStrategy (the default) is served")));
    }
    let data = spec.get("data").unwrap_or(&Value::Null);
    let is_schema = spec.contains_key("schema_id") || spec.contains_key("schema");
    let kind = match spec.get("type").and_then(Value::as_str) {
        Some(kind) => kind.to_ascii_uppercase(),
        None if is_schema => "AVRO".to_owned(),
        None => "BINARY".to_owned(),
    };
    if data.is_null() {
        return Ok((None, None));
    }
    let bytes = match kind.as_str() {
        "BINARY" => {
            let text = data.as_str().ok_or_else(|| bad(format!("{name}.data: BINARY takes a base64 string")))?;
            base64_decode(text).map_err(|why| bad(format!("{name}.data: not base64 ({why})")))?
        }
        "STRING" => {
            data.as_str().ok_or_else(|| bad(format!("{name}.data: STRING takes a string")))?.as_bytes().to_vec()
        }
        "JSON" => serde_json::to_vec(data).map_err(|err| bad(format!("{name}.data: {err}")))?,
        "AVRO" => registered(EmbeddedFormat::Avro, spec, data, name, topic, registry, credential).await?,
        "PROTOBUF" => registered(EmbeddedFormat::Protobuf, spec, data, name, topic, registry, credential).await?,
        "JSONSCHEMA" => registered(EmbeddedFormat::JsonSchema, spec, data, name, topic, registry, credential).await?,
        other => {
            return Err(bad(format!(
                "{name}.type {other:?} is not served: BINARY, JSON, STRING, or AVRO, PROTOBUF or JSONSCHEMA (with a \
                 schema registry)"
            )))
        }
    };
    let size = bytes.len();
    Ok((Some(Bytes::from(bytes)), Some((kind, size))))
}

/// A key or value in a format of the schema registry: by `schema_id`, or `schema` registered under the topic's
/// subject.
async fn registered(
    format: EmbeddedFormat,
    spec: &Map<String, Value>,
    data: &Value,
    name: &str,
    topic: &str,
    registry: Option<&SchemaRegistryClient>,
    credential: &Credential,
) -> Result<Vec<u8>, ApiError> {
    let kind = format.name().to_ascii_uppercase();
    let registry = registry.ok_or_else(|| {
        bad(format!("{name}: {kind} needs a schema registry (the broker's --schema-registry-listen, or rill http-proxy --schema-registry URL)"))
    })?;
    let (id, schema): (u32, Arc<RegisteredSchema>) = match (spec.get("schema_id"), spec.get("schema")) {
        (Some(id), None) => {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| bad(format!("{name}.schema_id: {id} is not a schema id")))?;
            let schema = registry
                .schema_by_id(id, credential)
                .await
                .map_err(|err| err.answer(&format!("{name}.schema_id {id}")))?;
            if schema.format() != format {
                let other = schema.format().name().to_ascii_uppercase();
                return Err(bad(format!("{name}.schema_id {id} is a {other} schema, not {kind}")));
            }
            (id, schema)
        }
        (None, Some(Value::String(text))) => {
            let subject = format!("{topic}-{name}");
            registry
                .register(&subject, text, format, credential)
                .await
                .map_err(|err| err.answer(&format!("{name}.schema (subject {subject})")))?
        }
        (None, Some(_)) => return Err(bad(format!("{name}.schema: the schema's JSON text, a string"))),
        (Some(_), Some(_)) => return Err(bad(format!("{name}: give schema_id or schema, not both"))),
        (None, None) => return Err(bad(format!("{name}: {kind} needs schema_id or schema"))),
    };
    schema.encode(id, data).map_err(|why| bad(format!("{name}.data: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn built(object: Value) -> Result<(ProducerRecord, Sizes), ApiError> {
        record(&object, "t", None, &Credential::Proxy).await
    }

    #[tokio::test]
    async fn a_record_carries_headers_a_timestamp_and_typed_key_and_value() {
        let (record, (key, value)) = built(json!({
            "partition_id": 1,
            "headers": [{"name": "trace", "value": "dA=="}, {"name": "empty", "value": null}],
            "key": {"type": "STRING", "data": "customer-7"},
            "value": {"type": "JSON", "data": {"n": 1}},
            "timestamp": "2026-12-05T21:00:00.250Z",
        }))
        .await
        .expect("a record");
        assert_eq!(record.partition, Some(1));
        assert_eq!(record.key.as_deref(), Some(&b"customer-7"[..]));
        assert_eq!(record.value.as_deref(), Some(&br#"{"n":1}"#[..]));
        assert_eq!(record.headers[0], Header { key: "trace".into(), value: Some(Bytes::from_static(b"t")) });
        assert_eq!(record.headers[1].value, None);
        assert_eq!(record.timestamp_ms, Some(1_796_504_400_250));
        assert_eq!((key, value), (Some(("STRING".into(), 10)), Some(("JSON".into(), 7))));
        assert_eq!(rfc3339(1_796_504_400_250), json!("2026-12-05T21:00:00.250Z"));
        let (binary, _) = built(json!({"value": {"data": "aGk="}})).await.expect("BINARY by default");
        assert_eq!(binary.value.as_deref(), Some(&b"hi"[..]));
    }

    #[tokio::test]
    async fn a_record_that_cannot_be_stored_is_refused_naming_the_field() {
        let refused = |object: Value| async move { built(object).await.unwrap_err().message };
        assert!(refused(json!({"value": {"type": "BINARY", "data": "***"}}))
            .await
            .starts_with("value.data: not base64"));
        assert!(refused(json!({"key": {"type": "PROTOBUF", "data": 1}})).await.contains("PROTOBUF"));
        assert!(refused(json!({"timestamp": "yesterday"})).await.contains("RFC 3339"));
        assert!(refused(json!({"headers": [{"value": "aA=="}]})).await.starts_with("headers[0].name"));
        assert!(refused(json!({"value": {"schema_id": 1, "data": {}}})).await.contains("schema registry"));
        assert!(refused(json!({"offset": 3})).await.contains("unknown field \"offset\""));
        assert!(refused(json!([1])).await.contains("JSON object"));
    }
}
