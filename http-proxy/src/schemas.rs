//! A registered schema as the proxy uses it, of whichever kind the registry holds it as: `avro` (`avro.rs`),
//! `protobuf` (`protobuf.rs`) or `jsonschema` (here: each value validated against the schema, with its
//! references, before it is stored as compact JSON text in Confluent's framing). Each turns a record's JSON
//! into framed bytes under its id, and framed bytes back into JSON.

use std::collections::HashMap;

use serde_json::Value;

use crate::avro::{AvroSchema, FRAMING_BYTES};
use crate::format::EmbeddedFormat;
use crate::protobuf::ProtobufSchema;

#[derive(Debug)]
pub(crate) enum RegisteredSchema {
    Avro(AvroSchema),
    Protobuf(ProtobufSchema),
    Json(JsonSchema),
}

impl RegisteredSchema {
    /// The embedded format that writes and reads records of this schema.
    pub fn format(&self) -> EmbeddedFormat {
        match self {
            RegisteredSchema::Avro(_) => EmbeddedFormat::Avro,
            RegisteredSchema::Protobuf(_) => EmbeddedFormat::Protobuf,
            RegisteredSchema::Json(_) => EmbeddedFormat::JsonSchema,
        }
    }

    /// `json` as a framed key or value under schema `id`.
    pub fn encode(&self, id: u32, json: &Value) -> Result<Vec<u8>, String> {
        match self {
            RegisteredSchema::Avro(schema) => schema.encode(id, json),
            RegisteredSchema::Protobuf(schema) => schema.encode(id, json),
            RegisteredSchema::Json(schema) => schema.encode(id, json),
        }
    }

    /// A framed key or value's body (what follows the schema id) as JSON.
    pub fn decode(&self, body: &[u8]) -> Result<Value, String> {
        match self {
            RegisteredSchema::Avro(schema) => schema.decode(body),
            RegisteredSchema::Protobuf(schema) => schema.decode(body),
            RegisteredSchema::Json(_) => {
                serde_json::from_slice(body).map_err(|err| format!("not JSON after the schema id ({err})"))
            }
        }
    }
}

/// A JSON Schema, compiled with the documents its references name.
pub(crate) struct JsonSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

/// Where a `$ref` to another document is looked up: the schema's references, by name.
struct References(HashMap<String, Value>);

/// The base a schema's relative `$ref`s resolve against, so that `"$ref": "address.json"` is the reference
/// named `address.json`.
const BASE_URI: &str = "json-schema:///";

impl jsonschema::Retrieve for References {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        let name = uri.strip_prefix(BASE_URI).unwrap_or(uri);
        self.0
            .get(name)
            .or_else(|| self.0.get(uri))
            .cloned()
            .ok_or_else(|| format!("{name:?} is not one of the schema's references").into())
    }
}

impl JsonSchema {
    /// `text` with `references` (name → schema text).
    pub fn new(text: &str, references: &[(String, String)]) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(text).map_err(|err| format!("not a JSON Schema: {err}"))?;
        let mut documents = HashMap::with_capacity(references.len());
        for (name, text) in references {
            let document: Value =
                serde_json::from_str(text).map_err(|err| format!("reference {name:?} is not JSON: {err}"))?;
            documents.insert(name.clone(), document);
        }
        let validator = jsonschema::options()
            .with_base_uri(BASE_URI)
            .with_retriever(References(documents))
            .build(&schema)
            .map_err(|err| format!("not a usable JSON Schema: {err}"))?;
        Ok(Self { validator })
    }

    /// `json`, valid under the schema, framed under `id`; else the first error, with where it is.
    pub fn encode(&self, id: u32, json: &Value) -> Result<Vec<u8>, String> {
        if let Some(error) = self.validator.iter_errors(json).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "$".to_owned() } else { format!("${}", at.replace('/', ".")) };
            return Err(format!("{at}: {error}"));
        }
        let text = serde_json::to_vec(json).map_err(|err| err.to_string())?;
        let mut framed = Vec::with_capacity(FRAMING_BYTES + text.len());
        framed.push(0);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&text);
        Ok(framed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_schema_validates_before_framing_and_follows_references() {
        let address = r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;
        let payment = r#"{"type":"object","properties":{"id":{"type":"integer"},"address":{"$ref":"address.json"}},
            "required":["id"]}"#;
        let schema = JsonSchema::new(payment, &[("address.json".into(), address.into())]).expect("compiles");
        let framed = schema.encode(4, &json!({"id": 1, "address": {"city": "Oslo"}})).expect("valid");
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 4]);
        let registered = RegisteredSchema::Json(schema);
        assert_eq!(registered.decode(&framed[5..]), Ok(json!({"id": 1, "address": {"city": "Oslo"}})));
        let RegisteredSchema::Json(schema) = &registered else { unreachable!() };
        let refused = schema.encode(4, &json!({"id": 1, "address": {}})).unwrap_err();
        assert!(refused.starts_with("$.address") && refused.contains("city"), "{refused}");
        assert!(schema.encode(4, &json!({"id": "one"})).unwrap_err().starts_with("$.id"));
        assert!(JsonSchema::new(payment, &[]).is_err(), "a reference not given");
        assert!(JsonSchema::new("{", &[]).is_err());
    }
}
