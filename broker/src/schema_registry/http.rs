//! Confluent Schema Registry's REST API (v1) on `schema_registry_listen`, served by the admin listener's small
//! HTTP server (`metrics/admin_http.rs`): what Confluent's serializers (confluent-kafka, the Java client's
//! `KafkaAvroSerializer`) and tools call. Errors are Confluent's: `{"error_code": 40401, "message": ...}` with the
//! code's HTTP status.
//!
//! Who may call: with `auth.admin_auth` required (or `require_auth`), a bearer token (a rill token, or an OAuth
//! JWT) or HTTP Basic with a user's password; else anyone. With authorization on, a change (register, delete,
//! compatibility) needs ALTER on the cluster, as Kafka's own configuration does; reads need only the caller to be
//! let in.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use super::registry::{
    check_subject, Compatibility, FoundVersion, Mode, SchemaChange, SchemaError, SchemaRegistry, VersionRef,
};
use super::schema::{SchemaDefinition, SchemaReference, SchemaType};
use super::store::{SchemaStore, StoreError};
use crate::auth::acl::{Operation, Resource};
use crate::auth::admin::AdminAuthenticator;
use crate::auth::backoff::FailureBackoff;
use crate::auth::{Authorizer, Principal, UserStore};
use crate::console::html::{url_decode, Form};
use crate::metrics::admin_http::{HttpHandler, Request, Response};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The schema registry's HTTP side.
pub struct SchemaRegistryApi {
    pub store: Arc<SchemaStore>,
    pub auth: Arc<AdminAuthenticator>,
    pub users: Arc<UserStore>,
    pub authorizer: Arc<Authorizer>,
    basic_failures: FailureBackoff,
}

impl SchemaRegistryApi {
    pub fn new(
        store: Arc<SchemaStore>,
        auth: Arc<AdminAuthenticator>,
        users: Arc<UserStore>,
        authorizer: Arc<Authorizer>,
    ) -> Self {
        Self { store, auth, users, authorizer, basic_failures: FailureBackoff::default() }
    }
}

impl HttpHandler for SchemaRegistryApi {
    fn answer<'a>(&'a self, request: &'a Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(self.route(request))
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    Response { status, content_type: CONTENT_TYPE, headers: Vec::new(), body: body.to_string().into_bytes() }
}

fn error_response(status: u16, code: u32, message: &str) -> Response {
    json_response(status, &json!({"error_code": code, "message": message}))
}

fn refused(err: &SchemaError) -> Response {
    error_response(err.http_status(), err.code(), &err.to_string())
}

fn store_refused(err: StoreError) -> Response {
    match err {
        StoreError::Refused(err) => refused(&err),
        other => {
            tracing::warn!(error = %other, "schema registry change not made");
            error_response(500, 50001, &other.to_string())
        }
    }
}

/// A registration or lookup body: `{"schema": "...", "schemaType": "AVRO", "references": []}`.
fn schema_of(request: &Request) -> Result<SchemaDefinition, Response> {
    schema_and_ids_of(request).map(|(schema, _, _)| schema)
}

/// A body's `references`: `[{"name": N, "subject": S, "version": V}]`.
fn references_of(body: &Value) -> Result<Vec<SchemaReference>, SchemaError> {
    let Some(references) = body.get("references").filter(|r| !r.is_null()) else { return Ok(Vec::new()) };
    let invalid = |why: String| SchemaError::InvalidSchema(format!("\"references\": {why}"));
    let Some(references) = references.as_array() else {
        return Err(invalid("must be a list of {\"name\", \"subject\", \"version\"}".into()));
    };
    references
        .iter()
        .map(|reference| {
            let text = |field: &str| {
                reference
                    .get(field)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("each reference needs a non-empty \"{field}\" string: {reference}")))
            };
            let version = reference
                .get("version")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v >= 1)
                .ok_or_else(|| invalid(format!("each reference needs a \"version\" from 1: {reference}")))?;
            Ok(SchemaReference { name: text("name")?, subject: text("subject")?, version })
        })
        .collect()
}

/// [`schema_of`], and the `id` and `version` an import names.
fn schema_and_ids_of(request: &Request) -> Result<(SchemaDefinition, Option<u32>, Option<u32>), Response> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| error_response(400, 400, &format!("the body must be JSON with a \"schema\" string: {e}")))?;
    let number = |field: &str| -> Result<Option<u32>, Response> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| {
                refused(&SchemaError::InvalidSchema(format!("\"{field}\" must be a whole number, not {value}")))
            }),
        }
    };
    let (id, version) = (number("id")?, number("version")?);
    let schema_type = match body.get("schemaType").filter(|t| !t.is_null()) {
        None => SchemaType::Avro,
        Some(named) => named.as_str().and_then(SchemaType::parse).ok_or_else(|| {
            refused(&SchemaError::InvalidSchema(format!(
                "unknown schemaType {named}: rill's schema registry holds {}",
                SchemaType::NAMES
            )))
        })?,
    };
    let references = references_of(&body).map_err(|e| refused(&e))?;
    match body.get("schema").and_then(Value::as_str) {
        Some(schema) => Ok((SchemaDefinition::new(schema, schema_type, references), id, version)),
        None => Err(refused(&SchemaError::InvalidSchema("the body has no \"schema\" string".into()))),
    }
}

/// A schema's text as asked for: Confluent's `format=serialized` gives a Protobuf schema as its base64
/// descriptor (what Python's deserializer reads); otherwise a Protobuf file registered as a descriptor is given
/// as `.proto` text where it can be, as Confluent's registry does, and anything else as registered.
fn text_in_format(registry: &SchemaRegistry, id: u32, text: String, format: Option<&str>) -> String {
    match format {
        Some("serialized") => registry.parsed(id).and_then(|p| p.serialized()).unwrap_or(text),
        _ => registry.protobuf_text(id).unwrap_or(text),
    }
}

/// A version as Confluent answers it: `schemaType` only when not AVRO, `references` only when there are some.
fn version_body(registry: &SchemaRegistry, found: FoundVersion, format: Option<&str>) -> Value {
    let mut body = json!({"subject": found.subject, "version": found.version, "id": found.id});
    add_kind(&mut body, found.schema_type, &found.references);
    body["schema"] = Value::String(text_in_format(registry, found.id, found.text, format));
    body
}

fn add_kind(body: &mut Value, schema_type: SchemaType, references: &[SchemaReference]) {
    if !schema_type.is_avro() {
        body["schemaType"] = json!(schema_type.name());
    }
    if !references.is_empty() {
        body["references"] = json!(references);
    }
}

fn mode_of(request: &Request) -> Result<Mode, Response> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| error_response(400, 400, &format!("the body must be JSON: {e}")))?;
    let text = body.get("mode").and_then(Value::as_str).unwrap_or_default();
    Mode::parse(text).ok_or_else(|| error_response(422, 42204, &format!("Invalid mode {text:?}: {}", Mode::NAMES)))
}

fn compatibility_of(request: &Request) -> Result<Compatibility, Response> {
    let body: Value = serde_json::from_slice(&request.body)
        .map_err(|e| error_response(400, 400, &format!("the body must be JSON: {e}")))?;
    let text = body.get("compatibility").and_then(Value::as_str).unwrap_or_default();
    Compatibility::parse(text).ok_or_else(|| refused(&SchemaError::InvalidCompatibility(text.to_owned())))
}

impl SchemaRegistryApi {
    async fn route(&self, request: &Request) -> Response {
        let principal = match self.caller(request).await {
            Ok(principal) => principal,
            Err(response) => return response,
        };
        let segments: Vec<String> =
            request.path.split('/').filter(|s| !s.is_empty()).map(|s| url_decode(s, false)).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query = Form::parse(&request.query);
        let flag = |name: &str| query.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let is_write = !matches!(request.method.as_str(), "GET" | "HEAD")
            && !matches!(segments.as_slice(), ["subjects", _] | ["compatibility", ..]);
        if is_write {
            if let Err(denied) = self.authorizer.check(&principal, Operation::Alter, &Resource::cluster()) {
                return error_response(403, 40301, &denied.to_string());
            }
        }
        let registry = self.store.snapshot();
        let method = request.method.as_str();
        match (method, segments.as_slice()) {
            ("GET", []) => json_response(200, &json!({})),
            ("GET", ["schemas", "types"]) => json_response(200, &json!(SchemaType::ALL.map(SchemaType::name))),
            ("GET", ["mode"]) => json_response(200, &json!({"mode": registry.mode.name()})),
            ("GET", ["mode", subject]) => {
                let own = registry.subjects.get(*subject).and_then(|s| s.mode);
                match own.or(flag("defaultToGlobal").then_some(registry.mode)) {
                    Some(mode) => json_response(200, &json!({"mode": mode.name()})),
                    None => error_response(
                        404,
                        40409,
                        &format!("Subject '{subject}' does not have subject-level mode configured"),
                    ),
                }
            }
            ("PUT", ["mode"]) => self.set_mode(None, request, flag("force")).await,
            ("PUT", ["mode", subject]) => self.set_mode(Some(subject), request, flag("force")).await,
            ("DELETE", ["mode", subject]) => {
                let before = registry.effective_mode(subject);
                match self.store.change(SchemaChange::ClearMode { subject: (*subject).to_owned() }).await {
                    Ok(_) => json_response(200, &json!({"mode": before.name()})),
                    Err(err) => store_refused(err),
                }
            }
            ("GET", ["subjects"]) => {
                let prefix = query.get("subjectPrefix").unwrap_or("");
                json_response(200, &json!(registry.subject_names(flag("deleted"), prefix)))
            }
            ("GET", ["subjects", subject, "versions"]) => match registry.versions(subject, flag("deleted")) {
                Ok(versions) => json_response(200, &json!(versions)),
                Err(err) => refused(&err),
            },
            ("GET", ["subjects", subject, "versions", version]) => {
                let found = VersionRef::parse(version).and_then(|v| registry.version(subject, v, flag("deleted")));
                match found {
                    Ok(found) => json_response(200, &version_body(&registry, found, query.get("format"))),
                    Err(err) => refused(&err),
                }
            }
            ("GET", ["subjects", subject, "versions", version, "schema"]) => {
                match VersionRef::parse(version).and_then(|v| registry.version(subject, v, flag("deleted"))) {
                    Ok(found) => {
                        let text = text_in_format(&registry, found.id, found.text, query.get("format"));
                        Response { body: text.into_bytes(), ..json_response(200, &Value::Null) }
                    }
                    Err(err) => refused(&err),
                }
            }
            ("GET", ["subjects", subject, "versions", version, "referencedby"]) => {
                match VersionRef::parse(version).and_then(|v| registry.version(subject, v, false)) {
                    Ok(found) => json_response(200, &json!(registry.referenced_by(subject, found.version))),
                    Err(err) => refused(&err),
                }
            }
            ("POST", ["subjects", subject]) => match schema_of(request) {
                Ok(schema) => match registry.lookup(subject, &schema, flag("deleted")) {
                    Ok(found) => json_response(200, &version_body(&registry, found, query.get("format"))),
                    Err(err) => refused(&err),
                },
                Err(response) => response,
            },
            ("POST", ["subjects", subject, "versions"]) => self.register(subject, request).await,
            ("DELETE", ["subjects", subject]) => {
                let permanent = flag("permanent");
                // What the delete removes: the live versions, or (permanent) every version left.
                let versions = registry.versions(subject, permanent).unwrap_or_default();
                let change = SchemaChange::DeleteSubject { subject: (*subject).to_owned(), permanent };
                match self.store.change(change).await {
                    Ok(_) => json_response(200, &json!(versions)),
                    Err(err) => store_refused(err),
                }
            }
            ("DELETE", ["subjects", subject, "versions", version]) => {
                let permanent = flag("permanent");
                let found = VersionRef::parse(version).and_then(|v| registry.version(subject, v, permanent));
                let number = match found {
                    Ok(found) => found.version,
                    Err(err) => return refused(&err),
                };
                let change = SchemaChange::DeleteVersion { subject: (*subject).to_owned(), version: number, permanent };
                match self.store.change(change).await {
                    Ok(_) => json_response(200, &json!(number)),
                    Err(err) => store_refused(err),
                }
            }
            ("GET", ["schemas", "ids", id]) => {
                match id.parse::<u32>().ok().and_then(|id| Some((id, registry.schema(id).ok()?))) {
                    Some((number, stored)) => {
                        let mut body = json!({});
                        add_kind(&mut body, stored.schema_type, &stored.references);
                        let text = text_in_format(&registry, number, stored.text.clone(), query.get("format"));
                        body["schema"] = Value::String(text);
                        json_response(200, &body)
                    }
                    None => refused(&SchemaError::SchemaNotFound((*id).to_owned())),
                }
            }
            ("GET", ["schemas", "ids", id, "schema"]) => {
                match id.parse::<u32>().ok().and_then(|id| Some((id, registry.schema(id).ok()?))) {
                    Some((number, stored)) => {
                        let text = text_in_format(&registry, number, stored.text.clone(), query.get("format"));
                        Response { body: text.into_bytes(), ..json_response(200, &Value::Null) }
                    }
                    None => refused(&SchemaError::SchemaNotFound((*id).to_owned())),
                }
            }
            ("GET", ["schemas", "ids", id, "versions"]) => match id
                .parse()
                .ok()
                .map(|id| registry.usages(id, flag("deleted")))
            {
                Some(Ok(usages)) => json_response(
                    200,
                    &json!(usages.into_iter().map(|(s, v)| json!({"subject": s, "version": v})).collect::<Vec<_>>()),
                ),
                _ => refused(&SchemaError::SchemaNotFound((*id).to_owned())),
            },
            ("GET", ["schemas", "ids", id, "subjects"]) => {
                match id.parse().ok().map(|id| registry.usages(id, flag("deleted"))) {
                    Some(Ok(usages)) => {
                        let mut subjects: Vec<String> = usages.into_iter().map(|(s, _)| s).collect();
                        subjects.dedup();
                        json_response(200, &json!(subjects))
                    }
                    _ => refused(&SchemaError::SchemaNotFound((*id).to_owned())),
                }
            }
            ("GET", ["config"]) => json_response(200, &json!({"compatibilityLevel": registry.compatibility.name()})),
            ("GET", ["config", subject]) => {
                let own = registry.subjects.get(*subject).and_then(|s| s.compatibility);
                match own.or(flag("defaultToGlobal").then_some(registry.compatibility)) {
                    Some(level) => json_response(200, &json!({"compatibilityLevel": level.name()})),
                    None => refused(&SchemaError::NoSubjectCompatibility((*subject).to_owned())),
                }
            }
            ("PUT", ["config"]) => self.set_compatibility(None, request).await,
            ("PUT", ["config", subject]) => self.set_compatibility(Some(subject), request).await,
            ("DELETE", ["config"]) => {
                let before = registry.compatibility;
                let change = SchemaChange::SetCompatibility { subject: None, level: Compatibility::Backward };
                match self.store.change(change).await {
                    Ok(_) => json_response(200, &json!({"compatibilityLevel": before.name()})),
                    Err(err) => store_refused(err),
                }
            }
            ("DELETE", ["config", subject]) => {
                match self.store.change(SchemaChange::ClearCompatibility { subject: (*subject).to_owned() }).await {
                    Ok(_) => {
                        let before = registry.subjects.get(*subject).and_then(|s| s.compatibility);
                        json_response(200, &json!({"compatibilityLevel": before.map(Compatibility::name)}))
                    }
                    Err(err) => store_refused(err),
                }
            }
            ("POST", ["compatibility", "subjects", subject, "versions", rest @ ..]) if rest.len() <= 1 => {
                let schema = match schema_of(request) {
                    Ok(schema) => schema,
                    Err(response) => return response,
                };
                let version = match rest.first().map(|v| VersionRef::parse(v)).transpose() {
                    Ok(version) => version,
                    Err(err) => return refused(&err),
                };
                if version.is_some() && registry.versions(subject, false).is_err() {
                    return refused(&SchemaError::SubjectNotFound((*subject).to_owned()));
                }
                match registry.is_compatible(subject, version, &schema) {
                    Ok(Ok(())) => json_response(200, &json!({"is_compatible": true})),
                    Ok(Err(reason)) if flag("verbose") => {
                        json_response(200, &json!({"is_compatible": false, "messages": [reason]}))
                    }
                    Ok(Err(_)) => json_response(200, &json!({"is_compatible": false})),
                    Err(err) => refused(&err),
                }
            }
            (_, ["subjects" | "schemas" | "config" | "compatibility" | "mode", ..]) => {
                error_response(405, 405, &format!("{method} is not served at {}", request.path))
            }
            _ => error_response(404, 404, &format!("no schema registry resource at {}", request.path)),
        }
    }

    async fn register(&self, subject: &str, request: &Request) -> Response {
        if let Err(err) = check_subject(subject) {
            return refused(&err);
        }
        let (schema, id, version) = match schema_and_ids_of(request) {
            Ok(fields) => fields,
            Err(response) => return response,
        };
        let change = SchemaChange::Register {
            subject: subject.to_owned(),
            schema: schema.text.clone(),
            schema_type: schema.schema_type,
            references: schema.references.clone(),
            id,
            version,
        };
        match self.store.change(change).await {
            Ok(registry) => match registry.lookup(subject, &schema, false) {
                Ok(found) => {
                    tracing::debug!(subject, id = found.id, version = found.version, "schema registered");
                    json_response(200, &json!({"id": found.id}))
                }
                Err(err) => refused(&err),
            },
            Err(err) => store_refused(err),
        }
    }

    async fn set_mode(&self, subject: Option<&str>, request: &Request, force: bool) -> Response {
        let mode = match mode_of(request) {
            Ok(mode) => mode,
            Err(response) => return response,
        };
        let change = SchemaChange::SetMode { subject: subject.map(str::to_owned), mode, force };
        match self.store.change(change).await {
            Ok(_) => json_response(200, &json!({"mode": mode.name()})),
            Err(err) => store_refused(err),
        }
    }

    async fn set_compatibility(&self, subject: Option<&str>, request: &Request) -> Response {
        let level = match compatibility_of(request) {
            Ok(level) => level,
            Err(response) => return response,
        };
        let change = SchemaChange::SetCompatibility { subject: subject.map(str::to_owned), level };
        match self.store.change(change).await {
            Ok(_) => json_response(200, &json!({"compatibility": level.name()})),
            Err(err) => store_refused(err),
        }
    }

    /// The caller's principal: a bearer token's (rill's or an OAuth JWT), HTTP Basic's user, or anonymous
    /// where the admin listener lets anonymous callers in.
    async fn caller(&self, request: &Request) -> Result<Principal, Response> {
        let unauthorized = |message: &str| {
            let mut response = error_response(401, 401, message);
            response.headers.push(("www-authenticate", "Basic realm=\"rill schema registry\"".to_owned()));
            response
        };
        if let Some(basic) = request.authorization.as_deref().and_then(|v| v.strip_prefix("Basic ")) {
            return match self.check_basic(basic.trim(), request.peer).await {
                Some(user) => Ok(Principal::User(user)),
                None => Err(unauthorized("unauthorized: wrong user name or password")),
            };
        }
        match self.auth.authenticate(request.authorization.as_deref(), None, SystemTime::now()).await {
            Ok(caller) if caller.is_authenticated() || !self.auth.is_required() => Ok(caller.principal()),
            Ok(_) => Err(unauthorized(
                "unauthorized: the schema registry needs HTTP Basic (a user's name and password) or \
                 `Authorization: Bearer TOKEN` (`rill token create USER`, or an OAuth token)",
            )),
            Err(refused) => Err(unauthorized(&format!("unauthorized: {refused}"))),
        }
    }

    /// HTTP Basic `user:password` (base64) checked against the user's stored credential (PBKDF2: off the async
    /// threads); a failure waits out its address's backoff.
    async fn check_basic(&self, encoded: &str, peer: Option<IpAddr>) -> Option<String> {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let (users, name, password) = (Arc::clone(&self.users), user.to_owned(), password.to_owned());
        let is_valid = crate::auth::users::validate_name(&name).is_ok()
            && tokio::task::spawn_blocking(move || users.check_password(&name, password.as_bytes()))
                .await
                .unwrap_or(false);
        let address = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if is_valid {
            self.basic_failures.record_success(address);
            return Some(user.to_owned());
        }
        let wait = self.basic_failures.record_failure(address, Instant::now());
        tracing::info!(%address, user, "schema registry: HTTP Basic authentication failed");
        tokio::time::sleep(wait).await;
        None
    }
}
