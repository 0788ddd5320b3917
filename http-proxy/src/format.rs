//! The embedded formats: how a record's key and value travel inside the API's JSON. `binary`: base64 strings
//! (any bytes); `json`: any JSON value, stored as its compact text; `avro`, `protobuf` and `jsonschema`: JSON
//! stored in Confluent's framing under a schema of the registry (`schemas.rs`). The format comes from the
//! content type,
//! `application/vnd.kafka[.FORMAT].v2+json`, of a produce, and from the consumer instance's `format` for reads.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;

/// The embedded formats, as the errors list them.
const FORMATS: &str = "\"binary\", \"json\", \"avro\", \"protobuf\" or \"jsonschema\"";

/// What every JSON answer of the API is labelled.
pub(crate) const API_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EmbeddedFormat {
    Binary,
    Json,
    Avro,
    Protobuf,
    JsonSchema,
}

/// What a media type names, as far as this API goes.
#[derive(Debug, PartialEq, Eq)]
enum MediaType {
    /// An API v2 (or unversioned) type with this embedded format, or none named.
    Kafka(Option<EmbeddedFormat>),
    /// `application/json`, `application/octet-stream`, `*/*`: what Confluent takes "for compatibility".
    Generic,
}

impl EmbeddedFormat {
    pub fn name(self) -> &'static str {
        match self {
            EmbeddedFormat::Binary => "binary",
            EmbeddedFormat::Json => "json",
            EmbeddedFormat::Avro => "avro",
            EmbeddedFormat::Protobuf => "protobuf",
            EmbeddedFormat::JsonSchema => "jsonschema",
        }
    }

    /// Whether records of this format carry a schema of the registry.
    pub fn uses_registry(self) -> bool {
        matches!(self, EmbeddedFormat::Avro | EmbeddedFormat::Protobuf | EmbeddedFormat::JsonSchema)
    }

    /// The registry's `schemaType` of this format's schemas.
    pub fn schema_type(self) -> Option<&'static str> {
        match self {
            EmbeddedFormat::Avro => Some("AVRO"),
            EmbeddedFormat::Protobuf => Some("PROTOBUF"),
            EmbeddedFormat::JsonSchema => Some("JSON"),
            EmbeddedFormat::Binary | EmbeddedFormat::Json => None,
        }
    }

    /// A consumer instance's `format`.
    pub fn from_name(name: &str) -> Result<Self, ApiError> {
        match name {
            "binary" => Ok(EmbeddedFormat::Binary),
            "json" => Ok(EmbeddedFormat::Json),
            "avro" => Ok(EmbeddedFormat::Avro),
            "protobuf" => Ok(EmbeddedFormat::Protobuf),
            "jsonschema" => Ok(EmbeddedFormat::JsonSchema),
            other => {
                Err(ApiError::invalid_consumer_config(format!("format {other:?} is not an embedded format: {FORMATS}")))
            }
        }
    }

    /// The format of a produce's records from its `Content-Type`; none given, or a generic one, is `binary`,
    /// as Confluent's proxy assumes.
    pub fn of_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let Some(content_type) = content_type else { return Ok(EmbeddedFormat::Binary) };
        match media_type(content_type) {
            Ok(MediaType::Kafka(format)) => Ok(format.unwrap_or(EmbeddedFormat::Binary)),
            Ok(MediaType::Generic) => Ok(EmbeddedFormat::Binary),
            Err(why) => Err(ApiError::new(415, 415, format!("Content-Type {content_type:?}: {why}"))),
        }
    }

    /// The format a `records` request asks for in `Accept`: `None` when any will do (none given, `*/*`,
    /// a generic or format-less type). Several types, comma-separated: the first this API knows.
    pub fn of_accept(accept: Option<&str>) -> Result<Option<Self>, ApiError> {
        let Some(accept) = accept else { return Ok(None) };
        let mut last_refusal = None;
        for item in accept.split(',') {
            match media_type(item) {
                Ok(MediaType::Kafka(format)) => return Ok(format),
                Ok(MediaType::Generic) => return Ok(None),
                Err(why) => last_refusal = Some(why),
            }
        }
        let why = last_refusal.unwrap_or_else(|| "no media type".into());
        Err(ApiError::new(406, 406, format!("Accept {accept:?}: {why}")))
    }

    /// A key or value from a produce request: `null` is none (a null value is a tombstone). Not for the
    /// registry's formats, which need their schema (`schemas.rs`).
    pub fn encode(self, field: &Value, what: &str) -> Result<Option<Bytes>, ApiError> {
        if field.is_null() {
            return Ok(None);
        }
        match self {
            EmbeddedFormat::Avro | EmbeddedFormat::Protobuf | EmbeddedFormat::JsonSchema => {
                Err(ApiError::unprocessable(format!("{what}: {} needs its schema", self.name())))
            }
            EmbeddedFormat::Binary => {
                let Value::String(text) = field else {
                    return Err(ApiError::unprocessable(format!(
                        "{what}: the binary format takes a base64 string or null, not {field}"
                    )));
                };
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map(|bytes| Some(Bytes::from(bytes)))
                    .map_err(|err| ApiError::unprocessable(format!("{what}: not base64 ({err})")))
            }
            EmbeddedFormat::Json => serde_json::to_vec(field)
                .map(|text| Some(Bytes::from(text)))
                .map_err(|err| ApiError::unprocessable(format!("{what}: {err}"))),
        }
    }
}

/// Reads `application/vnd.kafka[.FORMAT][.v2]+json` (parameters ignored); `Err` says why a type is refused.
fn media_type(text: &str) -> Result<MediaType, String> {
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "application/octet-stream" | "*/*" | "application/*" => return Ok(MediaType::Generic),
        "" => return Err("no media type".into()),
        _ => {}
    }
    let Some(rest) = essence.strip_prefix("application/vnd.kafka") else {
        return Err("the API takes application/vnd.kafka.binary.v2+json or application/vnd.kafka.json.v2+json".into());
    };
    let Some(rest) = rest.strip_suffix("+json") else {
        return Err("the API's only serialization is +json".into());
    };
    let mut format = None;
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        match part {
            "v2" => {}
            "v1" | "v3" => return Err(format!("API {part} is not served; rill's HTTP proxy serves v2")),
            "binary" => format = Some(EmbeddedFormat::Binary),
            "json" => format = Some(EmbeddedFormat::Json),
            "avro" => format = Some(EmbeddedFormat::Avro),
            "protobuf" => format = Some(EmbeddedFormat::Protobuf),
            "jsonschema" => format = Some(EmbeddedFormat::JsonSchema),
            other => {
                return Err(format!(
                    "{other:?} is neither an embedded format (binary, json, avro, protobuf, jsonschema) nor v2"
                ))
            }
        }
    }
    Ok(MediaType::Kafka(format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_name_the_format_or_are_refused_saying_why() {
        let of = |ct| EmbeddedFormat::of_content_type(Some(ct));
        assert_eq!(of("application/vnd.kafka.json.v2+json"), Ok(EmbeddedFormat::Json));
        assert_eq!(of("application/vnd.kafka.binary.v2+json; charset=utf-8"), Ok(EmbeddedFormat::Binary));
        assert_eq!(of("application/vnd.kafka.v2+json"), Ok(EmbeddedFormat::Binary));
        assert_eq!(of("application/json"), Ok(EmbeddedFormat::Binary));
        assert_eq!(EmbeddedFormat::of_content_type(None), Ok(EmbeddedFormat::Binary));
        assert_eq!(of("application/vnd.kafka.avro.v2+json"), Ok(EmbeddedFormat::Avro));
        assert_eq!(of("application/vnd.kafka.protobuf.v2+json"), Ok(EmbeddedFormat::Protobuf));
        assert_eq!(of("application/vnd.kafka.jsonschema.v2+json"), Ok(EmbeddedFormat::JsonSchema));
        let unknown = of("application/vnd.kafka.thrift.v2+json").unwrap_err();
        assert_eq!(unknown.status, 415);
        assert!(unknown.message.contains("thrift"), "{}", unknown.message);
        assert_eq!(of("application/vnd.kafka.json.v1+json").unwrap_err().status, 415);
        assert_eq!(of("text/plain").unwrap_err().status, 415);
    }

    #[test]
    fn accept_picks_the_first_known_type() {
        let of = |a| EmbeddedFormat::of_accept(Some(a));
        assert_eq!(of("application/vnd.kafka.json.v2+json"), Ok(Some(EmbeddedFormat::Json)));
        assert_eq!(of("text/html, application/vnd.kafka.binary.v2+json"), Ok(Some(EmbeddedFormat::Binary)));
        assert_eq!(of("*/*"), Ok(None));
        assert_eq!(EmbeddedFormat::of_accept(None), Ok(None));
        assert_eq!(of("text/html").unwrap_err().status, 406);
    }

    #[test]
    fn binary_and_json_are_stored_as_bytes_and_refuse_what_they_cannot_carry() {
        let binary = EmbeddedFormat::Binary;
        let stored = binary.encode(&json!("aGVsbG8="), "records[0].value").unwrap();
        assert_eq!(stored.as_deref(), Some(&b"hello"[..]));
        assert_eq!(binary.encode(&json!(null), "v"), Ok(None));
        let wrong = binary.encode(&json!(12), "records[1].key").unwrap_err();
        assert!(wrong.message.starts_with("records[1].key"), "{}", wrong.message);
        assert_eq!(binary.encode(&json!("***"), "v").unwrap_err().status, 422);

        let as_json = EmbeddedFormat::Json;
        let value = json!({"order": 7, "items": ["a", "b"]});
        let stored = as_json.encode(&value, "v").unwrap();
        assert!(stored.as_deref().is_some_and(|text| !text.contains(&b' ')), "compact text");
        assert_eq!(serde_json::from_slice::<Value>(&stored.unwrap()).unwrap(), value);
    }
}
