//! The schema registry as the `avro`, `protobuf` and `jsonschema` formats need it: a schema registered under a
//! subject (`POST /subjects/S/versions`, Confluent's API, rill's `--schema-registry-listen` or Confluent's own),
//! and a schema by id (`GET /schemas/ids/N?format=serialized`: a Protobuf schema as its compiled descriptor), with
//! the schemas its references name (`GET /subjects/S/versions/V`), over plain HTTP/1.1 with hyper, one
//! connection per call, each within `REGISTRY_TIMEOUT`. Calls carry the caller's bearer token, so the registry's
//! authentication and ACLs apply.
//!
//! Schemas by id never change, so they are kept (up to `MAX_CACHED`); so is each caller's registration of a
//! schema under a subject, so a produce after the first asks the registry nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::avro::AvroSchema;
use crate::error::ApiError;
use crate::format::EmbeddedFormat;
use crate::protobuf::ProtobufSchema;
use crate::routes::percent_encode;
use crate::schemas::{JsonSchema, RegisteredSchema};
use crate::sessions::Credential;

const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest registry answer read (a schema is at most 256 KiB in rill's registry).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Schemas by id, and registrations, kept at most; past it the cache starts over.
const MAX_CACHED: usize = 10_000;
/// Confluent's error code for a schema that does not fit: what a refused schema or id is answered with.
const INVALID_SCHEMA: u32 = 42205;
/// Most schemas one schema's references reach.
const MAX_REFERENCES: usize = 256;

/// Why the registry did not give what was asked.
#[derive(Debug)]
pub(crate) enum RegistryError {
    /// No answer (down, unreachable, timed out, not HTTP).
    Unreachable(String),
    /// An answer refusing the call: its status, Confluent error code and message.
    Refused { status: u16, error_code: u64, message: String },
    /// The registry's schema is not one the proxy can use.
    Unusable(String),
}

impl RegistryError {
    /// As the proxy answers it, `what` naming the schema asked for (`value_schema_id 7`).
    pub fn answer(&self, what: &str) -> ApiError {
        match self {
            RegistryError::Unreachable(why) => ApiError::new(
                500,
                crate::error::code::KAFKA_RETRIABLE_ERROR,
                format!("{what}: the schema registry did not answer: {why}"),
            ),
            RegistryError::Refused { status: status @ (401 | 403), error_code, message } => ApiError::new(
                *status,
                u32::from(*status) * 100 + 1,
                format!("{what}: the schema registry refused ({error_code}): {message}"),
            ),
            RegistryError::Refused { status, error_code, message } => ApiError::new(
                422,
                INVALID_SCHEMA,
                format!("{what}: the schema registry answered {status} ({error_code}): {message}"),
            ),
            RegistryError::Unusable(why) => ApiError::new(422, INVALID_SCHEMA, format!("{what}: {why}")),
        }
    }
}

pub(crate) struct SchemaRegistryClient {
    /// `host:port`, and the path the API is under (empty, or `/prefix`).
    authority: String,
    base_path: String,
    /// The proxy's own token, for callers without one.
    own_token: Option<String>,
    by_id: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
    registered: Mutex<HashMap<(Credential, String, EmbeddedFormat, String), u32>>,
}

/// Its address only: the token is a secret.
impl std::fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistryClient").field("authority", &self.authority).finish_non_exhaustive()
    }
}

impl SchemaRegistryClient {
    /// For the registry at `url` (`http://HOST:PORT[/PATH]`).
    pub fn new(url: &str, own_token: Option<String>) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url:?}: the HTTP proxy reaches a schema registry over plain http:// (on loopback or a trusted network)")
        })?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let base_path = match path.trim_end_matches('/') {
            "" => String::new(),
            path => format!("/{path}"),
        };
        Ok(Self {
            authority: authority.to_owned(),
            base_path,
            own_token,
            by_id: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        })
    }

    /// The schema with this id.
    pub async fn schema_by_id(&self, id: u32, caller: &Credential) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(schema) = lock(&self.by_id).get(&id) {
            return Ok(Arc::clone(schema));
        }
        let answer = self.call("GET", &format!("/schemas/ids/{id}?format=serialized"), None, caller).await?;
        let text = answer.get("schema").and_then(Value::as_str).ok_or_else(|| {
            RegistryError::Unreachable(format!("the answer for schema {id} holds no \"schema\": {answer}"))
        })?;
        let schema_type = answer.get("schemaType").and_then(Value::as_str).unwrap_or("AVRO");
        let has_references = answer.get("references").and_then(Value::as_array).is_some_and(|r| !r.is_empty());
        let schema = match schema_type {
            "AVRO" if has_references => {
                return Err(RegistryError::Unusable(format!(
                    "schema {id} is Avro with references, which the proxy does not read"
                )))
            }
            "AVRO" => RegisteredSchema::Avro(AvroSchema::parse(text).map_err(RegistryError::Unusable)?),
            "PROTOBUF" => {
                let imports = self.references(&answer, caller).await?;
                RegisteredSchema::Protobuf(
                    ProtobufSchema::from_serialized(text, &imports).map_err(RegistryError::Unusable)?,
                )
            }
            "JSON" => {
                let references = self.references(&answer, caller).await?;
                RegisteredSchema::Json(JsonSchema::new(text, &references).map_err(RegistryError::Unusable)?)
            }
            other => {
                return Err(RegistryError::Unusable(format!("schema {id} is {other}, which the proxy does not read")))
            }
        };
        let schema = Arc::new(schema);
        let mut by_id = lock(&self.by_id);
        if by_id.len() >= MAX_CACHED {
            by_id.clear();
        }
        by_id.insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// The schemas `answer`'s references name, and theirs, as (reference name, schema text) in the order found;
    /// each asked `format=serialized` (a Protobuf file as its descriptor).
    async fn references(&self, answer: &Value, caller: &Credential) -> Result<Vec<(String, String)>, RegistryError> {
        let mut found: Vec<(String, String)> = Vec::new();
        let mut pending: Vec<Value> = answer.get("references").and_then(Value::as_array).cloned().unwrap_or_default();
        while let Some(reference) = pending.pop() {
            let (Some(name), Some(subject), Some(version)) = (
                reference.get("name").and_then(Value::as_str),
                reference.get("subject").and_then(Value::as_str),
                reference.get("version").and_then(Value::as_u64),
            ) else {
                return Err(RegistryError::Unusable(format!("a reference the proxy cannot follow: {reference}")));
            };
            if found.iter().any(|(known, _)| known == name) {
                continue;
            }
            if found.len() >= MAX_REFERENCES {
                return Err(RegistryError::Unusable(format!("the schema's references reach over {MAX_REFERENCES}")));
            }
            let path = format!("/subjects/{}/versions/{version}?format=serialized", percent_encode(subject));
            let version_answer = self.call("GET", &path, None, caller).await?;
            let text = version_answer.get("schema").and_then(Value::as_str).ok_or_else(|| {
                RegistryError::Unreachable(format!("the answer for {subject} version {version} holds no schema"))
            })?;
            found.push((name.to_owned(), text.to_owned()));
            pending.extend(version_answer.get("references").and_then(Value::as_array).cloned().unwrap_or_default());
        }
        // Imports before the files that import them.
        found.reverse();
        Ok(found)
    }

    /// Registers `text` as a `format` schema under `subject` (the registry answers the id it already has if it
    /// holds it) and returns its id and parsed form.
    pub async fn register(
        &self,
        subject: &str,
        text: &str,
        format: EmbeddedFormat,
        caller: &Credential,
    ) -> Result<(u32, Arc<RegisteredSchema>), RegistryError> {
        let avro = match format {
            EmbeddedFormat::Avro => {
                Some(Arc::new(RegisteredSchema::Avro(AvroSchema::parse(text).map_err(RegistryError::Unusable)?)))
            }
            _ => None,
        };
        let key = (caller.clone(), subject.to_owned(), format, text.to_owned());
        let known = lock(&self.registered).get(&key).copied();
        let id = match known {
            Some(id) => id,
            None => {
                let path = format!("/subjects/{}/versions", percent_encode(subject));
                let mut body = json!({ "schema": text });
                if let Some(kind) = format.schema_type().filter(|kind| *kind != "AVRO") {
                    body["schemaType"] = json!(kind);
                }
                let answer = self.call("POST", &path, Some(body), caller).await?;
                let id = answer.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
                let id = id.ok_or_else(|| {
                    RegistryError::Unreachable(format!("the registration answer holds no id: {answer}"))
                })?;
                let mut registered = lock(&self.registered);
                if registered.len() >= MAX_CACHED {
                    registered.clear();
                }
                registered.insert(key, id);
                id
            }
        };
        let Some(schema) = avro else {
            // Protobuf and JSON Schema as the registry compiled them (text or descriptor alike).
            return Ok((id, self.schema_by_id(id, caller).await?));
        };
        let mut by_id = lock(&self.by_id);
        if by_id.len() < MAX_CACHED {
            by_id.insert(id, Arc::clone(&schema));
        }
        Ok((id, schema))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        caller: &Credential,
    ) -> Result<Value, RegistryError> {
        let token = match caller {
            Credential::Bearer(token) => Some(token.as_str()),
            Credential::Proxy => self.own_token.as_deref(),
        };
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.authority).await.map_err(|err| err.to_string())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|err| err.to_string())?;
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base_path))
                .header(HOST, &self.authority)
                .header(CONTENT_TYPE, "application/vnd.schemaregistry.v1+json");
            if let Some(token) = token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
            let request = request.body(Full::new(body)).map_err(|err| err.to_string())?;
            let answer = sender.send_request(request).await.map_err(|err| err.to_string())?;
            let status = answer.status().as_u16();
            let body =
                Limited::new(answer.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(|err| err.to_string())?;
            Ok::<_, String>((status, body.to_bytes()))
        };
        let (status, body) = match tokio::time::timeout(REGISTRY_TIMEOUT, exchange).await {
            Ok(Ok(answered)) => answered,
            Ok(Err(why)) => return Err(RegistryError::Unreachable(format!("{}: {why}", self.authority))),
            Err(_) => {
                return Err(RegistryError::Unreachable(format!(
                    "{}: no answer within {REGISTRY_TIMEOUT:?}",
                    self.authority
                )))
            }
        };
        let answer: Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "message": String::from_utf8_lossy(&body) }));
        if !(200..300).contains(&status) {
            let error_code = answer.get("error_code").and_then(Value::as_u64).unwrap_or(u64::from(status));
            let message = answer.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
            return Err(RegistryError::Refused { status, error_code, message });
        }
        Ok(answer)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_taken() {
        let client = SchemaRegistryClient::new("http://127.0.0.1:8081", None).expect("valid");
        assert_eq!((client.authority.as_str(), client.base_path.as_str()), ("127.0.0.1:8081", ""));
        let prefixed = SchemaRegistryClient::new("http://registry:80/sr/", None).expect("valid");
        assert_eq!(prefixed.base_path, "/sr");
        assert!(SchemaRegistryClient::new("https://registry", None).unwrap_err().contains("http://"));
        assert!(SchemaRegistryClient::new("http:///x", None).is_err());
    }

    #[tokio::test]
    async fn a_registry_that_is_not_there_is_unreachable_not_a_refusal() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = SchemaRegistryClient::new(&format!("http://{addr}"), None).expect("valid");
        let failed = client.schema_by_id(1, &Credential::Proxy).await.unwrap_err();
        assert!(matches!(failed, RegistryError::Unreachable(_)), "{failed:?}");
        let answer = failed.answer("value_schema_id 1");
        assert_eq!((answer.status, answer.error_code), (500, 50002));
        let refused = RegistryError::Refused { status: 404, error_code: 40403, message: "Schema not found".into() };
        assert_eq!(refused.answer("value_schema_id 9").error_code, INVALID_SCHEMA);
        let denied = RegistryError::Refused { status: 403, error_code: 40301, message: "no".into() };
        assert_eq!(denied.answer("x").status, 403);
    }
}
