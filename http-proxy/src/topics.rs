//! Topics, partitions and brokers as the API shows them, and produce: `GET /topics`, `/topics/T`,
//! `/topics/T/partitions[/P[/offsets]]`, `/brokers`, `POST /topics/T[/partitions/P]`.
//!
//! A produce's records go through the caller's idempotent producer; each record's outcome (its partition and
//! offset, or why it was not stored) is answered in the request's order, as Confluent's proxy does, so a
//! caller resends only the records that failed. A request every record of which was refused for one reason a
//! caller must fix first (no such topic or partition, not authenticated, not allowed) is answered with that
//! reason's status instead.

use rill_client::{Admin, ClusterAdmin, Error, OffsetSpec, PartitionInfo, ProducerRecord, TopicInfo};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::format::EmbeddedFormat;
use crate::registry::SchemaRegistryClient;
use crate::routes::ProxyState;
use crate::schemas::RegisteredSchema;
use crate::server::{ApiRequest, ApiResponse};
use crate::sessions::{Credential, Session};

/// The id a single node (no `--node-id`) goes by, as its Kafka listener names it.
const SINGLE_NODE_ID: u64 = 0;

pub(crate) async fn list(session: &Session) -> Result<ApiResponse, ApiError> {
    let topics = Admin::new(session.client.clone()).list_topics().await.map_err(|err| ApiError::from_client(&err))?;
    let mut names: Vec<String> = topics.into_iter().map(|t| t.name).collect();
    names.sort();
    Ok(ApiResponse::Json(json!(names)))
}

pub(crate) async fn describe(session: &Session, topic: &str) -> Result<ApiResponse, ApiError> {
    let described = describe_topic(session, topic).await?;
    let partitions: Vec<Value> = described.partitions.iter().map(partition_json).collect();
    Ok(ApiResponse::Json(json!({
        "name": described.topic.name,
        "configs": configs_json(&described.topic),
        "partitions": partitions,
    })))
}

pub(crate) async fn partitions(session: &Session, topic: &str) -> Result<ApiResponse, ApiError> {
    let described = describe_topic(session, topic).await?;
    Ok(ApiResponse::Json(Value::Array(described.partitions.iter().map(partition_json).collect())))
}

pub(crate) async fn partition(session: &Session, topic: &str, partition: u32) -> Result<ApiResponse, ApiError> {
    let described = describe_topic(session, topic).await?;
    let found = described.partitions.iter().find(|p| p.partition == partition);
    let found = found.ok_or_else(|| ApiError::partition_not_found(topic, partition))?;
    Ok(ApiResponse::Json(partition_json(found)))
}

/// `beginning_offset` (the log start) and `end_offset` (the high watermark) of one partition.
pub(crate) async fn offsets(session: &Session, topic: &str, partition: u32) -> Result<ApiResponse, ApiError> {
    let admin = Admin::new(session.client.clone());
    let listed = admin.list_offsets(topic, &[partition], OffsetSpec::Earliest).await;
    let listed = listed.map_err(|err| ApiError::from_client(&err))?;
    let found = listed.iter().find(|o| o.partition == partition);
    let found = found.ok_or_else(|| ApiError::partition_not_found(topic, partition))?;
    Ok(ApiResponse::Json(json!({ "beginning_offset": found.log_start_offset, "end_offset": found.high_watermark })))
}

pub(crate) async fn brokers(session: &Session) -> Result<ApiResponse, ApiError> {
    let cluster = ClusterAdmin::new(session.client.clone()).describe_cluster().await;
    let cluster = cluster.map_err(|err| ApiError::from_client(&err))?;
    let mut ids: Vec<u64> = cluster.nodes.iter().map(|node| node.node_id.unwrap_or(SINGLE_NODE_ID)).collect();
    ids.sort_unstable();
    Ok(ApiResponse::Json(json!({ "brokers": ids })))
}

/// `POST /topics/T` (`partition` `None`: each record's own, else by key) and `POST /topics/T/partitions/P`.
pub(crate) async fn produce(
    state: &ProxyState,
    credential: &Credential,
    topic: &str,
    partition: Option<u32>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let format = EmbeddedFormat::of_content_type(request.content_type.as_deref())?;
    let fast = match format {
        EmbeddedFormat::Binary => binary_records(&request.body, partition),
        _ => None,
    };
    let (records, codec) = match fast {
        Some(records) => (records, RecordCodec::Plain(format)),
        None => {
            let body = crate::routes::json_body(request)?;
            let codec = RecordCodec::for_request(format, &body, topic, state, credential).await?;
            (produce_records(&body, &codec, partition)?, codec)
        }
    };
    let producer = state.sessions.session(credential)?.producer()?;
    let mut sent = Vec::with_capacity(records.len());
    for record in records {
        match producer.send(topic, record).await {
            Ok(delivery) => sent.push(Ok(delivery)),
            // Nothing is enqueued yet: the whole request is refused for what the caller must fix.
            Err(err) if sent.is_empty() && refuses_whole_request(&err) => return Err(ApiError::from_client(&err)),
            Err(err) => sent.push(Err(err)),
        }
    }
    let mut outcomes = Vec::with_capacity(sent.len());
    for delivery in sent {
        outcomes.push(match delivery {
            Ok(delivery) => delivery.await,
            Err(err) => Err(err),
        });
    }
    if let Some(Err(first)) = outcomes.first() {
        let is_same_refusal = |o: &Result<_, Error>| o.as_ref().err().is_some_and(|e| same_kind(e, first));
        if refuses_whole_request(first) && outcomes.iter().all(is_same_refusal) {
            return Err(ApiError::from_client(first));
        }
    }
    let offsets: Vec<Value> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(stored) => json!({ "partition": stored.partition, "offset": stored.offset, "error_code": null, "error": null }),
            // Confluent's per-record codes: 2 may pass if sent again, 1 will not.
            Err(err) => json!({
                "partition": null, "offset": null, "error_code": if err.is_retriable() { 2 } else { 1 }, "error": err.to_string(),
            }),
        })
        .collect();
    state.metrics.produced(format, outcomes.iter().filter(|o| o.is_ok()).count() as u64);
    let (key_schema_id, value_schema_id) = codec.schema_ids();
    Ok(ApiResponse::Json(
        json!({ "key_schema_id": key_schema_id, "value_schema_id": value_schema_id, "offsets": offsets }),
    ))
}

/// Which side of a record a key or value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Key,
    Value,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
        }
    }
}

type IdentifiedSchema = (u32, Arc<RegisteredSchema>);

/// How a produce's keys and values become bytes.
enum RecordCodec {
    Plain(EmbeddedFormat),
    /// A format of the registry, with each side's schema when the request named one.
    Registered {
        format: EmbeddedFormat,
        key: Option<IdentifiedSchema>,
        value: Option<IdentifiedSchema>,
    },
}

impl RecordCodec {
    /// For a request in `format`; a format of the registry looks up (or registers, under the topic's subjects)
    /// the schemas the body names.
    async fn for_request(
        format: EmbeddedFormat,
        body: &Value,
        topic: &str,
        state: &ProxyState,
        credential: &Credential,
    ) -> Result<Self, ApiError> {
        if !format.uses_registry() {
            return Ok(RecordCodec::Plain(format));
        }
        let registry = state.registry.as_deref().ok_or_else(|| {
            ApiError::new(
                415,
                415,
                format!(
                    "the {} format needs a schema registry: run the broker with --schema-registry-listen, or rill \
                     http-proxy with --schema-registry URL",
                    format.name()
                ),
            )
        })?;
        let key = registered_schema(body, Side::Key, format, topic, registry, credential).await?;
        let value = registered_schema(body, Side::Value, format, topic, registry, credential).await?;
        Ok(RecordCodec::Registered { format, key, value })
    }

    fn encode(&self, field: &Value, side: Side, what: &str) -> Result<Option<Bytes>, ApiError> {
        let (format, key, value) = match self {
            RecordCodec::Plain(format) => return format.encode(field, what),
            RecordCodec::Registered { format, key, value } => (format, key, value),
        };
        if field.is_null() {
            return Ok(None);
        }
        let schema = match side {
            Side::Key => key,
            Side::Value => value,
        };
        let Some((id, schema)) = schema else {
            let (code, name) = match side {
                Side::Key => (42201, "key"),
                Side::Value => (42202, "value"),
            };
            return Err(ApiError::new(
                422,
                code,
                format!("{what}: a {} {name} needs {name}_schema or {name}_schema_id in the request", format.name()),
            ));
        };
        let framed = schema.encode(*id, field).map_err(|why| ApiError::new(422, 42203, format!("{what}: {why}")))?;
        Ok(Some(Bytes::from(framed)))
    }

    fn uses_registry(&self) -> bool {
        matches!(self, RecordCodec::Registered { .. })
    }

    fn schema_ids(&self) -> (Option<u32>, Option<u32>) {
        match self {
            RecordCodec::Plain(_) => (None, None),
            RecordCodec::Registered { key, value, .. } => {
                (key.as_ref().map(|(id, _)| *id), value.as_ref().map(|(id, _)| *id))
            }
        }
    }
}

/// The schema a produce names for one side: `SIDE_schema` (registered under `TOPIC-SIDE`, Confluent's
/// TopicNameStrategy) or `SIDE_schema_id`; `None` when it names neither.
async fn registered_schema(
    body: &Value,
    side: Side,
    format: EmbeddedFormat,
    topic: &str,
    registry: &SchemaRegistryClient,
    credential: &Credential,
) -> Result<Option<IdentifiedSchema>, ApiError> {
    let name = side.name();
    let given = |field: String| body.get(&field).filter(|v| !v.is_null());
    match (given(format!("{name}_schema")), given(format!("{name}_schema_id"))) {
        (Some(_), Some(_)) => Err(ApiError::unprocessable(format!("give {name}_schema or {name}_schema_id, not both"))),
        (Some(Value::String(text)), None) => {
            let subject = format!("{topic}-{name}");
            let registered = registry.register(&subject, text, format, credential).await;
            registered.map(Some).map_err(|err| err.answer(&format!("{name}_schema (subject {subject})")))
        }
        (Some(_), None) => Err(ApiError::unprocessable(format!("{name}_schema is the schema's JSON text, a string"))),
        (None, Some(id)) => {
            let id = id
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| ApiError::unprocessable(format!("{name}_schema_id: {id} is not a schema id")))?;
            let schema = registry.schema_by_id(id, credential).await;
            let schema = schema.map_err(|err| err.answer(&format!("{name}_schema_id {id}")))?;
            if schema.format() != format {
                return Err(ApiError::new(
                    422,
                    42205,
                    format!(
                        "{name}_schema_id {id} is a {} schema; this request's format is {}",
                        schema.format().name(),
                        format.name()
                    ),
                ));
            }
            Ok(Some((id, schema)))
        }
        (None, None) => Ok(None),
    }
}

fn refuses_whole_request(error: &Error) -> bool {
    matches!(
        error.root(),
        Error::UnknownTopic { .. }
            | Error::UnknownPartition { .. }
            | Error::Unauthenticated { .. }
            | Error::PermissionDenied { .. }
    )
}

fn same_kind(a: &Error, b: &Error) -> bool {
    std::mem::discriminant(a.root()) == std::mem::discriminant(b.root())
}

/// A binary produce body read without building a JSON value: its base64 strings borrowed from the body and
/// decoded straight into the records' buffers (docs/benchmarks.md, "HTTP proxy"). `None` for anything else
/// than a well-formed binary body (unknown fields, bad base64, a partition against the path's): the general path
/// reads it again and says precisely what is wrong.
fn binary_records(body: &[u8], path_partition: Option<u32>) -> Option<Vec<ProducerRecord>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body<'a> {
        #[serde(borrow)]
        records: Vec<Record<'a>>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Record<'a> {
        #[serde(borrow, default)]
        key: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        value: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        partition: Option<u32>,
    }
    use base64::Engine;
    let decode = |text: &Option<std::borrow::Cow<'_, str>>| -> Option<Option<Bytes>> {
        match text {
            None => Some(None),
            Some(text) => {
                base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).ok().map(|b| Some(Bytes::from(b)))
            }
        }
    };
    let parsed: Body<'_> = serde_json::from_slice(body).ok()?;
    if parsed.records.is_empty() {
        return None;
    }
    parsed
        .records
        .iter()
        .map(|record| {
            let partition = match (path_partition, record.partition) {
                (Some(path), Some(own)) if path != own => return None,
                (path, own) => path.or(own),
            };
            Some(ProducerRecord {
                key: decode(&record.key)?,
                value: decode(&record.value)?,
                partition,
                ..ProducerRecord::default()
            })
        })
        .collect()
}

/// The records of a produce body: `{"records": [{"key": K, "value": V, "partition": P}, ...]}`.
fn produce_records(
    body: &Value,
    codec: &RecordCodec,
    path_partition: Option<u32>,
) -> Result<Vec<ProducerRecord>, ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::unprocessable(
            "the body is a JSON object: {\"records\": [{\"key\": ..., \"value\": ...}]}",
        ));
    };
    for name in fields.keys() {
        match name.as_str() {
            "records" => {}
            "key_schema" | "value_schema" | "key_schema_id" | "value_schema_id" if codec.uses_registry() => {}
            "key_schema" | "value_schema" | "key_schema_id" | "value_schema_id" => {
                return Err(ApiError::unprocessable(format!(
                    "{name} goes with a format of the schema registry (Content-Type: \
                     application/vnd.kafka.avro.v2+json, .protobuf. or .jsonschema.)"
                )))
            }
            other => {
                return Err(ApiError::unprocessable(format!("unknown field {other:?}: a produce has \"records\"")))
            }
        }
    }
    let Some(Value::Array(records)) = fields.get("records") else {
        return Err(ApiError::unprocessable("\"records\" must be an array of records"));
    };
    if records.is_empty() {
        return Err(ApiError::unprocessable("\"records\" is empty: send at least one record"));
    }
    records.iter().enumerate().map(|(index, record)| produce_record(index, record, codec, path_partition)).collect()
}

fn produce_record(
    index: usize,
    record: &Value,
    codec: &RecordCodec,
    path_partition: Option<u32>,
) -> Result<ProducerRecord, ApiError> {
    let Value::Object(fields) = record else {
        return Err(ApiError::unprocessable(format!("records[{index}] is not an object with key, value, partition")));
    };
    if let Some(other) = fields.keys().find(|k| !matches!(k.as_str(), "key" | "value" | "partition")) {
        return Err(ApiError::unprocessable(format!(
            "records[{index}]: unknown field {other:?}; a record has key, value and partition"
        )));
    }
    let null = Value::Null;
    let key = codec.encode(fields.get("key").unwrap_or(&null), Side::Key, &format!("records[{index}].key"))?;
    let value = codec.encode(fields.get("value").unwrap_or(&null), Side::Value, &format!("records[{index}].value"))?;
    let partition = match fields.get("partition").unwrap_or(&null) {
        Value::Null => None,
        given => Some(given.as_u64().and_then(|p| u32::try_from(p).ok()).ok_or_else(|| {
            ApiError::unprocessable(format!("records[{index}].partition: {given} is not a partition number"))
        })?),
    };
    let partition = match (path_partition, partition) {
        (Some(path), Some(own)) if path != own => {
            return Err(ApiError::unprocessable(format!(
                "records[{index}].partition is {own}, but this request produces to partition {path}"
            )))
        }
        (path, own) => path.or(own),
    };
    Ok(ProducerRecord { key, value, partition, ..ProducerRecord::default() })
}

async fn describe_topic(session: &Session, topic: &str) -> Result<rill_client::TopicDescription, ApiError> {
    Admin::new(session.client.clone()).describe_topic(topic).await.map_err(|err| ApiError::from_client(&err))
}

/// A partition as `{"partition", "leader", "replicas": [{"broker", "leader", "in_sync"}]}`. A single node lists
/// no replicas: it is the leader and the one replica.
fn partition_json(partition: &PartitionInfo) -> Value {
    if partition.replicas.is_empty() {
        let leader = partition.leader.unwrap_or(SINGLE_NODE_ID);
        return json!({
            "partition": partition.partition,
            "leader": leader,
            "replicas": [{ "broker": leader, "leader": true, "in_sync": true }],
        });
    }
    let replicas: Vec<Value> = partition
        .replicas
        .iter()
        .map(|&node| {
            json!({ "broker": node, "leader": partition.leader == Some(node), "in_sync": partition.isr.contains(&node) })
        })
        .collect();
    let leader = partition.leader.map_or(-1, |node| i64::try_from(node).unwrap_or(-1));
    json!({ "partition": partition.partition, "leader": leader, "replicas": replicas })
}

/// The topic's settings by Kafka's names, as strings (Confluent's proxy shows them so); -1 is "no limit".
fn configs_json(topic: &TopicInfo) -> Value {
    let config = topic.config.clone().unwrap_or_default();
    let limit = |v: Option<u64>| match v {
        None | Some(u64::MAX) => "-1".to_owned(),
        Some(v) => v.to_string(),
    };
    let mut configs = Map::new();
    let mut put = |name: &str, value: String| {
        configs.insert(name.to_owned(), Value::String(value));
    };
    put("cleanup.policy", config.cleanup_policy.clone().unwrap_or_else(|| "delete".into()));
    put("retention.ms", limit(config.retention_ms));
    put("retention.bytes", limit(config.retention_bytes));
    if let Some(bytes) = config.segment_bytes {
        put("segment.bytes", bytes.to_string());
    }
    if let Some(bytes) = config.max_batch_bytes {
        put("max.message.bytes", bytes.to_string());
    }
    if let Some(ms) = config.delete_retention_ms {
        put("delete.retention.ms", ms.to_string());
    }
    if let Some(ms) = config.min_compaction_lag_ms {
        put("min.compaction.lag.ms", ms.to_string());
    }
    put("min.insync.replicas", topic.min_insync_replicas.max(1).to_string());
    Value::Object(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_bodies_are_read_or_refused_naming_the_field() {
        let body = json!({"records": [{"key": "aw==", "value": "dg==", "partition": 1}, {"value": null}]});
        let records = produce_records(&body, &RecordCodec::Plain(EmbeddedFormat::Binary), None).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(records[0].partition, Some(1));
        assert_eq!((records[1].key.clone(), records[1].value.clone(), records[1].partition), (None, None, None));

        let refused = |body: Value, path: Option<u32>| {
            produce_records(&body, &RecordCodec::Plain(EmbeddedFormat::Json), path).unwrap_err().message
        };
        assert!(refused(json!([1]), None).contains("JSON object"));
        assert!(refused(json!({"records": []}), None).contains("empty"));
        assert!(refused(json!({"records": [{"value": 1, "headers": []}]}), None)
            .contains("records[0]: unknown field \"headers\""));
        assert!(refused(json!({"records": [{"value": 1, "partition": -1}]}), None).contains("records[0].partition"));
        assert!(refused(json!({"records": [{"value": 1, "partition": 2}]}), Some(1)).contains("partition 1"));
        assert!(refused(json!({"value_schema_id": 3, "records": [{"value": 1}]}), None).contains("avro"));
        let on_path = produce_records(
            &json!({"records": [{"value": {"a": 1}}]}),
            &RecordCodec::Plain(EmbeddedFormat::Json),
            Some(4),
        )
        .unwrap();
        assert_eq!(on_path[0].partition, Some(4));
        assert_eq!(on_path[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
    }

    #[test]
    fn a_binary_body_read_fast_gives_what_the_general_path_gives() {
        let bodies = [
            json!({"records": [{"key": "aw==", "value": "dg==", "partition": 1}, {"value": null}, {"key": null}]}),
            json!({"records": [{"value": "aGVsbG8=", "partition": 3}]}),
        ];
        for body in bodies {
            let fast = binary_records(body.to_string().as_bytes(), None).expect("well-formed");
            let general = produce_records(&body, &RecordCodec::Plain(EmbeddedFormat::Binary), None).expect("valid");
            assert_eq!(fast, general, "{body}");
        }
        let on_path = binary_records(br#"{"records": [{"value": "dg=="}]}"#, Some(2)).expect("well-formed");
        assert_eq!(on_path[0].partition, Some(2));
        // Anything not well-formed goes to the general path, which words the refusal.
        for refused in [
            &br#"{"records": [{"value": "***"}]}"#[..],
            br#"{"records": [{"value": "dg==", "headers": []}]}"#,
            br#"{"records": []}"#,
            br#"{"records": [{"value": "dg==", "partition": 1}]}"#,
            br#"{"value_schema_id": 1, "records": [{"value": "dg=="}]}"#,
            b"not json",
        ] {
            assert_eq!(binary_records(refused, Some(2)), None, "{}", String::from_utf8_lossy(refused));
        }
    }

    #[test]
    fn a_single_node_is_the_leader_and_only_replica() {
        let single = PartitionInfo { partition: 2, ..PartitionInfo::default() };
        assert_eq!(
            partition_json(&single),
            json!({"partition": 2, "leader": 0, "replicas": [{"broker": 0, "leader": true, "in_sync": true}]})
        );
        let replicated = PartitionInfo {
            partition: 0,
            leader: Some(2),
            replicas: vec![1, 2],
            isr: vec![2],
            ..PartitionInfo::default()
        };
        assert_eq!(
            partition_json(&replicated),
            json!({"partition": 0, "leader": 2, "replicas": [
                {"broker": 1, "leader": false, "in_sync": false}, {"broker": 2, "leader": true, "in_sync": true}]})
        );
    }
}
