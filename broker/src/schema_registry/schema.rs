//! The three kinds of schema the registry holds (Confluent's `schemaType`: AVRO, JSON, PROTOBUF), their
//! references to schemas registered under other subjects, and what the registry asks of each kind: is it a
//! schema, is it the same as another, can one read what another wrote, and what is its record name.

use std::collections::BTreeMap;

use apache_avro::schema_compatibility::{Compatibility as AvroReadability, SchemaCompatibility};
use serde::{Deserialize, Serialize};

use super::json_schema::JsonSchema;
use super::protobuf::ProtobufSchema;

/// A schema's kind, as Confluent's API names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub const NAMES: &'static str = "AVRO, JSON or PROTOBUF";
    pub const ALL: [SchemaType; 3] = [SchemaType::Avro, SchemaType::Json, SchemaType::Protobuf];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name().eq_ignore_ascii_case(text))
    }

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A schema's use of another subject's version: an Avro named type, a JSON Schema `$ref`, a Protobuf `import`,
/// by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// A schema as a client gives it: its text, kind and references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDefinition {
    pub text: String,
    pub schema_type: SchemaType,
    pub references: Vec<SchemaReference>,
}

impl SchemaDefinition {
    pub fn new(text: impl Into<String>, schema_type: SchemaType, references: Vec<SchemaReference>) -> Self {
        Self { text: text.into(), schema_type, references }
    }
}

/// An Avro schema without references: what the registry held before it knew other kinds.
impl From<&str> for SchemaDefinition {
    fn from(text: &str) -> Self {
        Self::new(text, SchemaType::Avro, Vec::new())
    }
}

impl From<&String> for SchemaDefinition {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<&SchemaDefinition> for SchemaDefinition {
    fn from(schema: &SchemaDefinition) -> Self {
        schema.clone()
    }
}

/// A schema parsed, with what it references resolved.
#[derive(Debug, Clone)]
pub enum ParsedSchema {
    Avro(apache_avro::Schema),
    Json(JsonSchema),
    /// Boxed: a compiled file is several times the size of the others.
    Protobuf(Box<ProtobufSchema>),
}

impl ParsedSchema {
    /// Parses `text` as a `kind` schema; `references` maps each reference's name (imports of imports included)
    /// to its text.
    pub fn parse(kind: SchemaType, text: &str, references: &BTreeMap<String, String>) -> Result<Self, String> {
        match kind {
            SchemaType::Avro if references.is_empty() => {
                apache_avro::Schema::parse_str(text).map(ParsedSchema::Avro).map_err(|e| e.to_string())
            }
            SchemaType::Avro => apache_avro::Schema::parse_str_with_list(text, references.values())
                .map(|(schema, _)| ParsedSchema::Avro(schema))
                .map_err(|e| e.to_string()),
            SchemaType::Json => JsonSchema::parse(text, references).map(ParsedSchema::Json),
            SchemaType::Protobuf => {
                ProtobufSchema::parse(text, references).map(|p| ParsedSchema::Protobuf(Box::new(p)))
            }
        }
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            ParsedSchema::Avro(_) => SchemaType::Avro,
            ParsedSchema::Json(_) => SchemaType::Json,
            ParsedSchema::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// What makes two registrations the same schema: the parsed schema written out again, with its kind and
    /// references (an Avro schema without references is its canonical JSON alone, as stored before).
    pub fn identity(&self, references: &[SchemaReference]) -> Result<String, String> {
        let canonical = match self {
            ParsedSchema::Avro(schema) => serde_json::to_string(schema).map_err(|e| e.to_string())?,
            ParsedSchema::Json(schema) => schema.identity(),
            ParsedSchema::Protobuf(schema) => schema.identity(),
        };
        if self.schema_type().is_avro() && references.is_empty() {
            return Ok(canonical);
        }
        let references = serde_json::to_string(references).map_err(|e| e.to_string())?;
        Ok(format!("{} {references} {canonical}", self.schema_type().name()))
    }

    /// Why a reader with this schema cannot read everything written with `writer`, if it cannot.
    pub fn cannot_read(&self, writer: &ParsedSchema) -> Option<String> {
        match (self, writer) {
            (ParsedSchema::Avro(reader), ParsedSchema::Avro(writer)) => {
                match SchemaCompatibility::can_read(writer, reader) {
                    Ok(AvroReadability::Full) => None,
                    Ok(_) => Some("Avro's schema resolution reads only part of it".to_owned()),
                    Err(e) => Some(e.to_string()),
                }
            }
            (ParsedSchema::Json(reader), ParsedSchema::Json(writer)) => reader.cannot_read(writer),
            (ParsedSchema::Protobuf(reader), ParsedSchema::Protobuf(writer)) => reader.cannot_read(writer),
            _ => Some(format!(
                "the schema type changed from {} to {}",
                writer.schema_type().name(),
                self.schema_type().name()
            )),
        }
    }

    /// The record name Confluent's RecordNameStrategy puts in the subject: an Avro named type's full name, a
    /// JSON Schema's `title`, the full name of the Protobuf message the record's message indexes point to.
    pub fn record_name(&self, message_indexes: &[usize]) -> Option<String> {
        match self {
            ParsedSchema::Avro(schema) => schema.name().map(|name| name.fullname(None)),
            ParsedSchema::Json(schema) => schema.record_name(),
            ParsedSchema::Protobuf(schema) => schema.message_name(message_indexes),
        }
    }

    /// The schema as Confluent's `format=serialized` gives it: a Protobuf file as a base64 descriptor, which
    /// confluent-kafka's Python deserializer reads; None for the other kinds (served as registered).
    pub fn serialized(&self) -> Option<String> {
        match self {
            ParsedSchema::Protobuf(schema) => Some(schema.serialized()),
            _ => None,
        }
    }
}
