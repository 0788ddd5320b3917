//! The API's paths (Confluent REST Proxy v2), each to its handler in `topics.rs` or `consumers.rs`, and what
//! they share: the caller's session, the JSON body, numbers in the query.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::consumers::Instances;
use crate::error::ApiError;
use crate::metrics::{Endpoint, ProxyMetrics};
use crate::registry::SchemaRegistryClient;
use crate::server::{ApiRequest, ApiResponse};
use crate::sessions::{Credential, Sessions};
use crate::topics;
use crate::v3;
use crate::ProxyConfig;

pub(crate) struct ProxyState {
    pub metrics: Arc<ProxyMetrics>,
    pub body_read_timeout: std::time::Duration,
    pub sessions: Sessions,
    pub consumers: Arc<Instances>,
    /// For the `avro` format; `None` without a registry.
    pub registry: Option<Arc<SchemaRegistryClient>>,
}

impl ProxyState {
    /// `Err` says why the schema registry's URL is not usable.
    pub fn new(config: ProxyConfig) -> Result<Self, String> {
        let registry = match &config.schema_registry {
            Some(url) => Some(Arc::new(SchemaRegistryClient::new(url, config.token.clone())?)),
            None => None,
        };
        let metrics = Arc::new(ProxyMetrics::default());
        let consumers = Instances::new(
            config.max_consumer_instances,
            config.consumer_instance_timeout,
            registry.clone(),
            Arc::clone(&metrics),
        );
        Ok(Self {
            metrics,
            body_read_timeout: config.body_read_timeout,
            sessions: Sessions::new(config.broker, config.client, config.token),
            consumers: Arc::new(consumers),
            registry,
        })
    }
}

/// The answer, and the endpoint it counts under.
pub(crate) async fn route(state: &ProxyState, request: &ApiRequest) -> (ApiResponse, Endpoint) {
    let endpoint = path_segments(&request.path).map_or(Endpoint::Other, |segments| {
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        endpoint_of(&request.method, &segments)
    });
    let response = match route_to_handler(state, request).await {
        Ok(response) => response,
        Err(error) => ApiResponse::Error(error),
    };
    (response, endpoint)
}

/// What a request's path names, for its metrics.
fn endpoint_of(method: &str, segments: &[&str]) -> Endpoint {
    match segments {
        [] => Endpoint::Root,
        ["metrics"] => Endpoint::Metrics,
        ["topics"] => Endpoint::Topics,
        ["topics", _] | ["topics", _, "partitions", _] if method == "POST" => Endpoint::Produce,
        ["topics", _] => Endpoint::Topic,
        ["topics", _, "partitions"] => Endpoint::Partitions,
        ["topics", _, "partitions", _] => Endpoint::Partition,
        ["topics", _, "partitions", _, "offsets"] => Endpoint::PartitionOffsets,
        ["brokers"] => Endpoint::Brokers,
        ["consumers", _] => Endpoint::ConsumerCreate,
        ["consumers", _, "instances", _] => Endpoint::ConsumerDelete,
        ["consumers", _, "instances", _, "subscription"] => Endpoint::Subscription,
        ["consumers", _, "instances", _, "assignments"] => Endpoint::Assignments,
        ["consumers", _, "instances", _, "positions", ..] => Endpoint::Positions,
        ["consumers", _, "instances", _, "records"] => Endpoint::Records,
        ["consumers", _, "instances", _, "offsets"] => Endpoint::Offsets,
        ["v3", "clusters"] => Endpoint::V3Clusters,
        ["v3", "clusters", _, "topics", _, "records"] => Endpoint::V3Records,
        _ => Endpoint::Other,
    }
}

async fn route_to_handler(state: &ProxyState, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let segments = path_segments(&request.path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if request.method == "GET" && segments == ["metrics"] {
        // No credentials needed, as Prometheus scrapes: the page names no topic, group or caller.
        let page = state.metrics.encode(state.consumers.count(), state.sessions.count());
        return Ok(ApiResponse::Metrics(page));
    }
    let credential = Credential::of(request.authorization.as_deref())?;
    let session = || state.sessions.session(&credential);
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", []) => Ok(ApiResponse::Json(json!({}))),
        ("GET", ["topics"]) => topics::list(&*session()?).await,
        ("GET", ["topics", topic]) => topics::describe(&*session()?, topic).await,
        ("POST", ["topics", topic]) => topics::produce(state, &credential, topic, None, request).await,
        ("GET", ["topics", topic, "partitions"]) => topics::partitions(&*session()?, topic).await,
        ("GET", ["topics", topic, "partitions", partition]) => {
            topics::partition(&*session()?, topic, partition_number(topic, partition)?).await
        }
        ("POST", ["topics", topic, "partitions", partition]) => {
            topics::produce(state, &credential, topic, Some(partition_number(topic, partition)?), request).await
        }
        ("GET", ["topics", topic, "partitions", partition, "offsets"]) => {
            topics::offsets(&*session()?, topic, partition_number(topic, partition)?).await
        }
        ("GET", ["brokers"]) => topics::brokers(&*session()?).await,
        ("GET", ["v3", "clusters"]) => v3::clusters(&*session()?).await,
        ("POST", ["v3", "clusters", cluster, "topics", topic, "records"]) => {
            v3::produce(state, &credential, cluster, topic, request).await
        }
        ("POST", ["consumers", group]) => state.consumers.create(&*session()?, &credential, group, request),
        (_, ["consumers", group, "instances", instance, rest @ ..]) => {
            state.consumers.handle(&credential, group, instance, rest, request).await
        }
        (_, ["topics", ..] | ["brokers"] | ["consumers", _] | ["v3", "clusters", ..] | []) => {
            Err(ApiError::new(405, 405, format!("{method} is not served at {}: see docs/http-proxy.md", request.path)))
        }
        _ => Err(ApiError::new(
            404,
            404,
            format!(
                "no such endpoint: {method} {}; rill's HTTP proxy serves Confluent REST Proxy's API v2: /topics, \
                 /topics/T/partitions, /brokers, /consumers/GROUP, and v3's /v3/clusters/C/topics/T/records \
                 (docs/http-proxy.md)",
                request.path
            ),
        )),
    }
}

fn partition_number(topic: &str, text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            404,
            crate::error::code::PARTITION_NOT_FOUND,
            format!("{text:?} is not a partition of topic {topic:?}"),
        )
    })
}

/// The request body as JSON.
pub(crate) fn json_body(request: &ApiRequest) -> Result<Value, ApiError> {
    if request.body.is_empty() {
        return Err(ApiError::unprocessable("the request has no body: this endpoint takes a JSON object"));
    }
    serde_json::from_slice(&request.body).map_err(|err| ApiError::unprocessable(format!("the body is not JSON: {err}")))
}

/// A number in the query string (`?timeout=500&max_bytes=1024`); `None` when not given.
pub(crate) fn query_number(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return value.parse().map(Some).map_err(|_| {
                ApiError::unprocessable(format!("query parameter {name}={value:?} is not a number (at least 0)"))
            });
        }
    }
    Ok(None)
}

/// The path's segments, percent-decoded; empty segments (a trailing slash) dropped.
fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = byte.ok_or_else(|| {
                ApiError::bad_request(format!("path segment {segment:?}: a % not followed by two hex digits"))
            })?;
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| ApiError::bad_request(format!("path segment {segment:?} is not UTF-8")))
}

/// A path segment as a URL carries it: unreserved characters as they are, the rest percent-encoded.
pub(crate) fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_and_decoded() {
        assert_eq!(path_segments("/topics/a%2Eb/partitions/").unwrap(), vec!["topics", "a.b", "partitions"]);
        assert!(path_segments("/topics/%zz").is_err());
        assert!(path_segments("/topics/%ff").is_err());
    }

    #[test]
    fn group_and_instance_names_are_encoded_in_the_base_uri() {
        assert_eq!(percent_encode("orders-v1.x_y~"), "orders-v1.x_y~");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn query_numbers_are_read_or_refused() {
        assert_eq!(query_number("timeout=500&max_bytes=10", "max_bytes"), Ok(Some(10)));
        assert_eq!(query_number("", "timeout"), Ok(None));
        assert_eq!(query_number("timeout=-1", "timeout").unwrap_err().status, 422);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_say_what_is_served() {
        let state = ProxyState::new(ProxyConfig::new("127.0.0.1:9")).expect("no registry");
        let ask =
            |method: &str, path: &str| ApiRequest { method: method.into(), path: path.into(), ..ApiRequest::default() };
        let (ApiResponse::Error(missing), Endpoint::Other) = route(&state, &ask("GET", "/nope")).await else {
            panic!("an error")
        };
        assert_eq!(missing.status, 404);
        assert!(missing.message.contains("/topics"), "{}", missing.message);
        let (ApiResponse::Error(wrong), _) = route(&state, &ask("DELETE", "/topics/t")).await else {
            panic!("an error")
        };
        assert_eq!(wrong.status, 405);
        let (ApiResponse::Json(root), Endpoint::Root) = route(&state, &ask("GET", "/")).await else { panic!("json") };
        assert_eq!(root, json!({}));
        let basic = ApiRequest { authorization: Some("Basic YTpi".into()), ..ask("GET", "/topics") };
        let (ApiResponse::Error(refused), Endpoint::Topics) = route(&state, &basic).await else { panic!("an error") };
        assert_eq!(refused.status, 401);
    }
}
