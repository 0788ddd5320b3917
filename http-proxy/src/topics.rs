//! Topics, partitions and brokers as the API shows them, and produce: `GET /topics`, `/topics/T`,
//! `/topics/T/partitions[/P[/offsets]]`, `/brokers`, `POST /topics/T[/partitions/P]`.
//!
//! A produce's records go through the caller's idempotent producer; each record's outcome (its partition and
//! offset, or why it was not stored) is answered in the request's order, as Confluent's proxy does, so a
//! caller resends only the records that failed. A request every record of which was refused for one reason a
//! caller must fix first (no such topic or partition, not authenticated, not allowed) is answered with that
//! reason's status instead.

use rill_client::{Admin, ClusterAdmin, Error, OffsetSpec, PartitionInfo, ProducerRecord, TopicInfo};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::format::EmbeddedFormat;
use crate::server::{ApiRequest, ApiResponse};
use crate::sessions::Session;

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
    session: &Session,
    topic: &str,
    partition: Option<u32>,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let format = EmbeddedFormat::of_content_type(request.content_type.as_deref())?;
    let body = crate::routes::json_body(request)?;
    let records = produce_records(&body, format, partition)?;
    let producer = session.producer()?;
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
    Ok(ApiResponse::Json(json!({ "key_schema_id": null, "value_schema_id": null, "offsets": offsets })))
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

/// The records of a produce body: `{"records": [{"key": K, "value": V, "partition": P}, ...]}`.
fn produce_records(
    body: &Value,
    format: EmbeddedFormat,
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
            "key_schema" | "value_schema" | "key_schema_id" | "value_schema_id" => {
                return Err(ApiError::unprocessable(format!(
                    "{name} goes with the avro, protobuf and jsonschema formats, which rill's HTTP proxy does not \
                     serve: send binary (base64) or json records"
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
    records.iter().enumerate().map(|(index, record)| produce_record(index, record, format, path_partition)).collect()
}

fn produce_record(
    index: usize,
    record: &Value,
    format: EmbeddedFormat,
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
    let key = format.encode(fields.get("key").unwrap_or(&null), &format!("records[{index}].key"))?;
    let value = format.encode(fields.get("value").unwrap_or(&null), &format!("records[{index}].value"))?;
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
        let records = produce_records(&body, EmbeddedFormat::Binary, None).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(records[0].partition, Some(1));
        assert_eq!((records[1].key.clone(), records[1].value.clone(), records[1].partition), (None, None, None));

        let refused =
            |body: Value, path: Option<u32>| produce_records(&body, EmbeddedFormat::Json, path).unwrap_err().message;
        assert!(refused(json!([1]), None).contains("JSON object"));
        assert!(refused(json!({"records": []}), None).contains("empty"));
        assert!(refused(json!({"records": [{"value": 1, "headers": []}]}), None)
            .contains("records[0]: unknown field \"headers\""));
        assert!(refused(json!({"records": [{"value": 1, "partition": -1}]}), None).contains("records[0].partition"));
        assert!(refused(json!({"records": [{"value": 1, "partition": 2}]}), Some(1)).contains("partition 1"));
        assert!(refused(json!({"value_schema_id": 3, "records": [{"value": 1}]}), None).contains("avro"));
        let on_path =
            produce_records(&json!({"records": [{"value": {"a": 1}}]}), EmbeddedFormat::Json, Some(4)).unwrap();
        assert_eq!(on_path[0].partition, Some(4));
        assert_eq!(on_path[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
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
