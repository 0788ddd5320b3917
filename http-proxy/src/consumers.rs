//! Consumer instances: `POST /consumers/GROUP` makes one (a rill [`Consumer`] of that group, held by the proxy
//! under a name), and `/consumers/GROUP/instances/NAME/...` drives it: `subscription` (the group assigns its
//! partitions), `assignments` (partitions chosen by hand), `positions` (seek), `records` (read), `offsets`
//! (commit, committed). `DELETE` closes it; one unused for `consumer_instance_timeout` is closed by
//! [`sweep_expired`].
//!
//! One request at a time per instance (a `tokio` mutex around it): a `records` long-poll holds it, as a Kafka
//! consumer is not shared between threads. The instance's group membership heartbeats from the client's own
//! task meanwhile, so a caller that polls now and then keeps its partitions; a rebalance is applied at the
//! caller's next `records`, which commits what it must hand over first.
//!
//! Committed offsets follow Confluent's proxy: a commit names the offset of the last record processed and the
//! group stores the next one (offset + 1); an empty commit stores the positions of every record handed out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_client::{Admin, Client, Consumer, ConsumerConfig, OffsetReset, SeekTo};
use serde_json::{json, Value};

use crate::error::{code, ApiError};
use crate::format::EmbeddedFormat;
use crate::metrics::ProxyMetrics;
use crate::registry::SchemaRegistryClient;
use crate::routes::{json_body, percent_encode};
use crate::server::{ApiRequest, ApiResponse};
use crate::sessions::{Credential, Session};

mod records;
mod subscription;

/// Longest a `records` request waits for records (`timeout`); Confluent's default is the instance's
/// `consumer.request.timeout.ms`, 1 s.
const MAX_RECORDS_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_RECORDS_WAIT: Duration = Duration::from_secs(1);
/// Most record bytes (keys, values, headers) one `records` answer carries (`max_bytes`), and its default.
const MAX_RECORDS_BYTES: usize = 16 << 20;
/// Longest instance name (Kafka's limit on a client id is larger; a name is also a path segment).
const MAX_NAME_CHARS: usize = 255;
const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How often a `topic_pattern` subscription is matched against the topics again, unless `metadata.max.age.ms`
/// says otherwise (Kafka's consumers wait 5 minutes; a proxy's callers expect a new topic sooner).
const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(10);

type InstanceKey = (String, String);

/// Every consumer instance the proxy holds.
pub(crate) struct Instances {
    max: usize,
    timeout: Duration,
    held: Mutex<HashMap<InstanceKey, Arc<InstanceSlot>>>,
    /// Names given to instances created without one.
    next_name: std::sync::atomic::AtomicU64,
    /// Where `avro`, `protobuf` and `jsonschema` instances find the schemas their records name.
    registry: Option<Arc<SchemaRegistryClient>>,
    metrics: Arc<ProxyMetrics>,
}

struct InstanceSlot {
    owner: Credential,
    last_used: Mutex<Instant>,
    instance: tokio::sync::Mutex<ConsumerInstance>,
}

impl InstanceSlot {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }
}

struct ConsumerInstance {
    group: String,
    format: EmbeddedFormat,
    client: Client,
    config: ConsumerConfig,
    is_auto_commit: bool,
    request_wait: Duration,
    /// How often a `topic_pattern` is matched against the topics again (`metadata.max.age.ms`).
    metadata_max_age: Duration,
    consumer: Consumer,
    /// The topics subscribed to; empty when not subscribed (or a pattern matches none yet).
    subscription: Vec<String>,
    /// A `topic_pattern` subscription, matched against the topics again now and then.
    pattern: Option<subscription::TopicPattern>,
}

impl ConsumerInstance {
    /// Replaces the consumer with a fresh one (no subscription, nothing assigned): the old one leaves its group
    /// as it is dropped, having committed its positions only with `auto.commit.enable` (as a Kafka consumer
    /// closing does).
    async fn renew_consumer(&mut self) -> Result<(), ApiError> {
        if self.is_auto_commit && !self.consumer.assignment().is_empty() {
            if let Err(error) = self.consumer.commit().await {
                tracing::warn!(group = %self.group, %error, "auto-commit before leaving failed");
            }
        }
        self.consumer =
            Consumer::new(self.client.clone(), self.config.clone()).map_err(|e| ApiError::from_client(&e))?;
        self.subscription.clear();
        Ok(())
    }

    fn is_subscribed(&self) -> bool {
        !self.subscription.is_empty() || self.pattern.is_some()
    }
}

impl Instances {
    pub fn new(
        max: usize,
        timeout: Duration,
        registry: Option<Arc<SchemaRegistryClient>>,
        metrics: Arc<ProxyMetrics>,
    ) -> Self {
        let next_name = std::sync::atomic::AtomicU64::new(1);
        Self { max, timeout, held: Mutex::new(HashMap::new()), next_name, registry, metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceKey, Arc<InstanceSlot>>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /consumers/GROUP`.
    pub fn create(
        &self,
        session: &Session,
        credential: &Credential,
        group: &str,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let body = if request.body.is_empty() { json!({}) } else { json_body(request)? };
        let settings = InstanceSettings::from_body(&body)?;
        if settings.format.uses_registry() && self.registry.is_none() {
            return Err(ApiError::invalid_consumer_config(format!(
                "the {} format needs a schema registry: run the broker with --schema-registry-listen, or rill \
                 http-proxy with --schema-registry URL",
                settings.format.name()
            )));
        }
        let name = match settings.name.clone() {
            Some(name) => name,
            None => format!(
                "rest-consumer-{}-{}",
                std::process::id(),
                self.next_name.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        let config = ConsumerConfig {
            group_id: Some(group.to_owned()),
            offset_reset: settings.offset_reset,
            auto_commit_interval: settings.is_auto_commit.then_some(settings.auto_commit_interval),
            fetch_min_bytes: settings.fetch_min_bytes,
            client_id: format!("rill-http-proxy/{name}"),
            ..ConsumerConfig::default()
        };
        let consumer = Consumer::new(session.client.clone(), config.clone()).map_err(|e| ApiError::from_client(&e))?;
        let mut held = self.lock();
        let key = (group.to_owned(), name.clone());
        if held.contains_key(&key) {
            return Err(ApiError::new(
                409,
                code::CONSUMER_ALREADY_EXISTS,
                format!("Consumer instance {name:?} of group {group:?} already exists: DELETE it first, or pick another name."),
            ));
        }
        if held.len() >= self.max {
            return Err(ApiError::new(
                429,
                42901,
                format!("the proxy holds {} consumer instances, its limit: DELETE some first", held.len()),
            ));
        }
        let instance = ConsumerInstance {
            group: group.to_owned(),
            format: settings.format,
            client: session.client.clone(),
            config,
            is_auto_commit: settings.is_auto_commit,
            request_wait: settings.request_wait,
            metadata_max_age: settings.metadata_max_age,
            consumer,
            subscription: Vec::new(),
            pattern: None,
        };
        let slot = InstanceSlot {
            owner: credential.clone(),
            last_used: Mutex::new(Instant::now()),
            instance: tokio::sync::Mutex::new(instance),
        };
        held.insert(key, Arc::new(slot));
        drop(held);
        tracing::info!(group, instance = %name, "consumer instance created");
        let host = request.host.as_deref().unwrap_or("localhost");
        let base_uri = format!("http://{host}/consumers/{}/instances/{}", percent_encode(group), percent_encode(&name));
        Ok(ApiResponse::Json(json!({ "instance_id": name, "base_uri": base_uri })))
    }

    /// Everything under `/consumers/GROUP/instances/NAME`: `rest` is what follows.
    pub async fn handle(
        &self,
        credential: &Credential,
        group: &str,
        name: &str,
        rest: &[&str],
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let key = (group.to_owned(), name.to_owned());
        let slot = {
            let held = self.lock();
            // Another caller's instance is not found: its name tells nothing about whether it exists.
            held.get(&key).filter(|slot| slot.owner == *credential).cloned()
        };
        let slot = slot.ok_or_else(|| ApiError::instance_not_found(group, name))?;
        slot.touch();
        let method = request.method.as_str();
        let answer = match (method, rest) {
            ("DELETE", []) => {
                let removed = self.lock().remove(&key);
                if let Some(removed) = removed {
                    let mut instance = removed.instance.lock().await;
                    instance.renew_consumer().await?;
                    tracing::info!(group, instance = %name, "consumer instance deleted");
                }
                Ok(ApiResponse::NoContent)
            }
            (_, [endpoint, ..]) => {
                let mut instance = slot.instance.lock().await;
                let caller = Caller { credential, registry: self.registry.as_deref(), metrics: &self.metrics };
                instance_request(&mut instance, &caller, method, endpoint, &rest[1..], request).await
            }
            _ => Err(method_not_allowed(method, "the instance itself is only deleted (DELETE)")),
        };
        slot.touch();
        answer
    }

    /// Closes the instances unused for longer than the timeout and not busy with a request.
    async fn close_expired(&self) {
        let now = Instant::now();
        let expired: Vec<(InstanceKey, Arc<InstanceSlot>)> = {
            let mut held = self.lock();
            let keys: Vec<InstanceKey> = held
                .iter()
                .filter(|(_, slot)| {
                    let last = *slot.last_used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    now.duration_since(last) >= self.timeout && slot.instance.try_lock().is_ok()
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.into_iter().filter_map(|key| held.remove(&key).map(|slot| (key, slot))).collect()
        };
        for ((group, name), slot) in expired {
            tracing::info!(group, instance = %name, "consumer instance unused past its timeout: closed");
            let mut instance = slot.instance.lock().await;
            if let Err(error) = instance.renew_consumer().await {
                tracing::debug!(group, instance = %name, error = %error.message, "closing an expired instance");
            }
        }
    }

    /// How many instances are held.
    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

/// Runs until aborted: closes expired instances every tenth of the timeout (at least every 10 s).
pub(crate) async fn sweep_expired(instances: Arc<Instances>) {
    let every = (instances.timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        tokio::time::sleep(every).await;
        instances.close_expired().await;
    }
}

/// Who drives an instance, and what its `avro` reads need.
pub(super) struct Caller<'a> {
    pub credential: &'a Credential,
    pub registry: Option<&'a SchemaRegistryClient>,
    pub metrics: &'a ProxyMetrics,
}

async fn instance_request(
    instance: &mut ConsumerInstance,
    caller: &Caller<'_>,
    method: &str,
    endpoint: &str,
    rest: &[&str],
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let client_error = |err: rill_client::Error| ApiError::from_client(&err);
    match (method, endpoint, rest) {
        ("POST", "subscription", []) => subscription::subscribe(instance, &json_body(request)?).await,
        ("GET", "subscription", []) => Ok(ApiResponse::Json(subscription::describe(instance))),
        ("DELETE", "subscription", []) => {
            instance.renew_consumer().await?;
            instance.pattern = None;
            Ok(ApiResponse::NoContent)
        }
        ("POST", "assignments", []) => assign(instance, &json_body(request)?).await,
        ("GET", "assignments", []) => {
            let partitions: Vec<Value> = instance
                .consumer
                .assignment()
                .into_iter()
                .map(|(topic, partition)| json!({ "topic": topic, "partition": partition }))
                .collect();
            Ok(ApiResponse::Json(json!({ "partitions": partitions })))
        }
        ("POST", "positions", []) => {
            for (topic, partition, offset) in offsets_of(&json_body(request)?)? {
                instance.consumer.seek(&topic, partition, SeekTo::Offset(offset)).await.map_err(client_error)?;
            }
            Ok(ApiResponse::NoContent)
        }
        ("POST", "positions", [end @ ("beginning" | "end")]) => {
            let to = if *end == "beginning" { SeekTo::Beginning } else { SeekTo::End };
            for (topic, partition) in partitions_of(&json_body(request)?)? {
                instance.consumer.seek(&topic, partition, to).await.map_err(client_error)?;
            }
            Ok(ApiResponse::NoContent)
        }
        ("GET", "records", []) => records::records(instance, caller, request).await,
        ("POST", "offsets", []) => commit(instance, request).await,
        ("GET", "offsets", []) => committed(instance, request).await,
        (_, "subscription" | "assignments" | "positions" | "records" | "offsets", _) if rest.is_empty() => {
            Err(method_not_allowed(method, "see docs/http-proxy.md for each endpoint's methods"))
        }
        _ => Err(ApiError::new(404, 404, format!("no such consumer endpoint {endpoint:?}"))),
    }
}

fn method_not_allowed(method: &str, why: &str) -> ApiError {
    ApiError::new(405, 405, format!("{method} is not served here: {why}"))
}

async fn assign(instance: &mut ConsumerInstance, body: &Value) -> Result<ApiResponse, ApiError> {
    if instance.is_subscribed() {
        return Err(ApiError::illegal_state(
            "this instance is subscribed (its group assigns its partitions): DELETE the subscription first",
        ));
    }
    let wanted: BTreeSet<(String, u32)> = partitions_of(body)?.into_iter().collect();
    let current: BTreeSet<(String, u32)> = instance.consumer.assignment().into_iter().collect();
    for (topic, partition) in current.difference(&wanted) {
        instance.consumer.unassign(topic, &[*partition]);
    }
    let mut added: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (topic, partition) in wanted.difference(&current) {
        added.entry(topic).or_default().push(*partition);
    }
    for (topic, partitions) in added {
        instance.consumer.assign(topic, &partitions).await.map_err(|e| ApiError::from_client(&e))?;
    }
    Ok(ApiResponse::NoContent)
}

async fn commit(instance: &mut ConsumerInstance, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = if request.body.is_empty() { json!({}) } else { json_body(request)? };
    let client_error = |e: rill_client::Error| ApiError::from_client(&e);
    if body.get("offsets").is_none() {
        if !instance.consumer.assignment().is_empty() {
            instance.consumer.commit().await.map_err(client_error)?;
        }
        return Ok(ApiResponse::NoContent);
    }
    let offsets = offsets_of(&body)?;
    // Confluent's proxy takes the offset of the last record processed; the group stores the next one.
    let next: Vec<(&str, u32, i64)> = offsets.iter().map(|(t, p, o)| (t.as_str(), *p, o.saturating_add(1))).collect();
    instance.consumer.commit_offsets(&next).await.map_err(client_error)?;
    Ok(ApiResponse::NoContent)
}

async fn committed(instance: &mut ConsumerInstance, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let asked =
        if request.body.is_empty() { instance.consumer.assignment() } else { partitions_of(&json_body(request)?)? };
    let offsets = if asked.is_empty() {
        Vec::new()
    } else {
        let partitions: Vec<(&str, u32)> = asked.iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let admin = Admin::new(instance.client.clone());
        admin.committed_offsets(&instance.group, &partitions).await.map_err(|e| ApiError::from_client(&e))?
    };
    let offsets: Vec<Value> = offsets
        .into_iter()
        .map(|c| json!({ "topic": c.topic, "partition": c.partition, "offset": c.offset, "metadata": c.metadata }))
        .collect();
    Ok(ApiResponse::Json(json!({ "offsets": offsets })))
}

/// `{"partitions": [{"topic": T, "partition": P}, ...]}`.
fn partitions_of(body: &Value) -> Result<Vec<(String, u32)>, ApiError> {
    let Some(Value::Array(items)) = body.get("partitions") else {
        return Err(ApiError::unprocessable("the body is {\"partitions\": [{\"topic\": ..., \"partition\": ...}]}"));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| Ok((topic_of(item, "partitions", index)?, partition_of(item, "partitions", index)?)))
        .collect()
}

/// `{"offsets": [{"topic": T, "partition": P, "offset": O}, ...]}`.
fn offsets_of(body: &Value) -> Result<Vec<(String, u32, i64)>, ApiError> {
    let Some(Value::Array(items)) = body.get("offsets") else {
        return Err(ApiError::unprocessable(
            "the body is {\"offsets\": [{\"topic\": ..., \"partition\": ..., \"offset\": ...}]}",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let offset = item.get("offset").and_then(Value::as_i64).filter(|o| *o >= 0).ok_or_else(|| {
                ApiError::new(422, 422, format!("offsets[{index}].offset must be a number, at least 0"))
            })?;
            Ok((topic_of(item, "offsets", index)?, partition_of(item, "offsets", index)?, offset))
        })
        .collect()
}

fn topic_of(item: &Value, list: &str, index: usize) -> Result<String, ApiError> {
    item.get("topic")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unprocessable(format!("{list}[{index}].topic must be a topic name")))
}

fn partition_of(item: &Value, list: &str, index: usize) -> Result<u32, ApiError> {
    item.get("partition")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| ApiError::new(422, 422, format!("{list}[{index}].partition must be a partition number")))
}

/// A new instance's settings, from Confluent's names; values as strings (as Confluent documents them) or as
/// JSON numbers and booleans.
#[derive(Debug, PartialEq)]
struct InstanceSettings {
    name: Option<String>,
    format: EmbeddedFormat,
    offset_reset: OffsetReset,
    is_auto_commit: bool,
    auto_commit_interval: Duration,
    fetch_min_bytes: u32,
    request_wait: Duration,
    metadata_max_age: Duration,
}

impl InstanceSettings {
    fn from_body(body: &Value) -> Result<Self, ApiError> {
        let Value::Object(fields) = body else {
            return Err(ApiError::invalid_consumer_config("the body is a JSON object of consumer settings"));
        };
        let mut settings = InstanceSettings {
            name: None,
            format: EmbeddedFormat::Binary,
            // Kafka consumers' default, and Confluent's.
            offset_reset: OffsetReset::Latest,
            is_auto_commit: true,
            auto_commit_interval: DEFAULT_AUTO_COMMIT_INTERVAL,
            fetch_min_bytes: 1,
            request_wait: DEFAULT_RECORDS_WAIT,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
        };
        for (key, value) in fields {
            settings.set(key, value)?;
        }
        Ok(settings)
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<(), ApiError> {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => return Ok(()),
            other => return Err(ApiError::invalid_consumer_config(format!("{key}: {other} is not a setting's value"))),
        };
        let invalid = |allowed: &str| ApiError::invalid_consumer_config(format!("{key}: {text:?} is not {allowed}"));
        let number = |max: u64| text.parse::<u64>().ok().filter(|n| *n <= max);
        match key {
            "name" => {
                let is_valid = !text.is_empty()
                    && text.chars().count() <= MAX_NAME_CHARS
                    && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if !is_valid {
                    return Err(invalid("a name of 1 to 255 letters, digits, '.', '_' or '-'"));
                }
                self.name = Some(text);
            }
            "format" => self.format = EmbeddedFormat::from_name(&text)?,
            "auto.offset.reset" => {
                self.offset_reset = match text.as_str() {
                    "earliest" | "smallest" => OffsetReset::Earliest,
                    "latest" | "largest" => OffsetReset::Latest,
                    _ => return Err(invalid("\"earliest\" or \"latest\"")),
                }
            }
            "auto.commit.enable" => {
                self.is_auto_commit = match text.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("\"true\" or \"false\"")),
                }
            }
            "auto.commit.interval.ms" => {
                let ms = number(86_400_000).filter(|ms| *ms >= 100).ok_or_else(|| invalid("100 to 86400000 ms"))?;
                self.auto_commit_interval = Duration::from_millis(ms);
            }
            "fetch.min.bytes" => {
                let bytes =
                    number(u64::from(u32::MAX)).filter(|b| *b >= 1).ok_or_else(|| invalid("1 or more bytes"))?;
                self.fetch_min_bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            }
            "consumer.request.timeout.ms" => {
                let max_ms = MAX_RECORDS_WAIT.as_millis() as u64;
                let ms = number(max_ms).ok_or_else(|| invalid(&format!("0 to {max_ms} ms")))?;
                self.request_wait = Duration::from_millis(ms);
            }
            "metadata.max.age.ms" => {
                let ms = number(86_400_000).filter(|ms| *ms >= 100).ok_or_else(|| invalid("100 to 86400000 ms"))?;
                self.metadata_max_age = Duration::from_millis(ms);
            }
            other => {
                return Err(ApiError::invalid_consumer_config(format!(
                    "{other:?} is not a consumer setting rill's HTTP proxy takes: name, format, auto.offset.reset, \
                     auto.commit.enable, auto.commit.interval.ms, fetch.min.bytes, consumer.request.timeout.ms, \
                     metadata.max.age.ms"
                )))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_settings_take_confluents_names_and_refuse_the_rest() {
        let settings = InstanceSettings::from_body(&json!({
            "name": "c-1", "format": "json", "auto.offset.reset": "earliest", "auto.commit.enable": "false",
            "fetch.min.bytes": 10, "consumer.request.timeout.ms": "250",
        }))
        .unwrap();
        assert_eq!(settings.name.as_deref(), Some("c-1"));
        assert_eq!(settings.format, EmbeddedFormat::Json);
        assert_eq!(settings.offset_reset, OffsetReset::Earliest);
        assert!(!settings.is_auto_commit);
        assert_eq!((settings.fetch_min_bytes, settings.request_wait), (10, Duration::from_millis(250)));
        let defaults = InstanceSettings::from_body(&json!({})).unwrap();
        assert_eq!(
            (defaults.format, defaults.offset_reset, defaults.is_auto_commit),
            (EmbeddedFormat::Binary, OffsetReset::Latest, true)
        );

        let refused = |body: Value| InstanceSettings::from_body(&body).unwrap_err();
        let protobuf = InstanceSettings::from_body(&json!({"format": "protobuf"})).expect("protobuf");
        assert_eq!(protobuf.format, EmbeddedFormat::Protobuf);
        let thrift = refused(json!({"format": "thrift"}));
        assert_eq!((thrift.status, thrift.error_code), (422, code::INVALID_CONSUMER_CONFIG));
        assert!(thrift.message.contains("jsonschema"), "{}", thrift.message);
        assert!(refused(json!({"auto.offset.reset": "none"})).message.contains("earliest"));
        assert!(refused(json!({"name": "a/b"})).message.contains("name"));
        assert!(refused(json!({"enable.idempotence": "true"})).message.contains("auto.commit.enable"));
        assert!(refused(json!({"consumer.request.timeout.ms": "600000"})).message.contains("60000"));
    }

    #[test]
    fn partition_and_offset_lists_are_read_or_refused_naming_the_item() {
        let body = json!({"offsets": [{"topic": "t", "partition": 1, "offset": 5}]});
        assert_eq!(offsets_of(&body).unwrap(), vec![("t".to_owned(), 1, 5)]);
        let negative = offsets_of(&json!({"offsets": [{"topic": "t", "partition": 1, "offset": -1}]})).unwrap_err();
        assert_eq!((negative.error_code, negative.message.starts_with("offsets[0].offset")), (422, true));
        let body = json!({"partitions": [{"topic": "t", "partition": 0}, {"topic": "", "partition": 1}]});
        assert!(partitions_of(&body).unwrap_err().message.starts_with("partitions[1].topic"));
        assert!(partitions_of(&json!({})).is_err());
    }

    #[tokio::test]
    async fn an_instance_unused_past_its_timeout_is_closed_and_a_busy_one_is_not() {
        // A timeout of zero: every instance not busy is past it at once.
        let instances = Instances::new(10, Duration::ZERO, None, Arc::default());
        let sessions = crate::sessions::Sessions::new("127.0.0.1:9".into(), rill_client::ClientConfig::default(), None);
        let session = sessions.session(&Credential::Proxy).unwrap();
        let request = |name: &str| ApiRequest {
            method: "POST".into(),
            body: format!(r#"{{"name": "{name}"}}"#).into(),
            ..ApiRequest::default()
        };
        instances.create(&session, &Credential::Proxy, "g", &request("idle")).unwrap();
        instances.create(&session, &Credential::Proxy, "g", &request("busy")).unwrap();
        let again = instances.create(&session, &Credential::Proxy, "g", &request("idle")).unwrap_err();
        assert_eq!(again.error_code, code::CONSUMER_ALREADY_EXISTS);
        let busy = instances.lock().get(&("g".to_owned(), "busy".to_owned())).cloned().unwrap();
        let held = busy.instance.lock().await;
        instances.close_expired().await;
        assert_eq!(instances.count(), 1, "the idle instance went, the busy one stayed");
        drop(held);
        let other_caller = Credential::Bearer("someone-else".into());
        let get = ApiRequest { method: "GET".into(), ..ApiRequest::default() };
        let hidden = instances.handle(&other_caller, "g", "busy", &["subscription"], &get).await.unwrap_err();
        assert_eq!(hidden.error_code, code::CONSUMER_INSTANCE_NOT_FOUND, "another caller's instance is not found");
    }
}
