//! The `avro` embedded format: a record's key or value as JSON in Avro's JSON encoding (a union's value wrapped
//! in an object naming its branch, `{"string": "x"}`, null bare; bytes and fixed as strings of code points
//! 0–255), stored in Confluent's framing: magic byte 0, the schema's id (4 bytes, big-endian), the Avro binary
//! datum. What Confluent's serializers write and read, so records produced over HTTP are read by their
//! `KafkaAvroDeserializer` and theirs over HTTP.
//!
//! Conversion walks the schema, so each JSON value is checked against the type it must be, with the path of
//! the value that is not (`$.items[2].price: 12.5 is not a long`).

use std::collections::HashMap;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{Name, NamesRef, RecordField, ResolvedSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::{Map, Number, Value as Json};

/// Confluent's framing: one magic byte 0 and a 4-byte schema id before the datum.
const MAGIC: u8 = 0;
pub(crate) const FRAMING_BYTES: usize = 5;

/// A parsed schema with its named types, as the conversions need them.
#[derive(Debug)]
pub(crate) struct AvroSchema {
    pub schema: Schema,
}

impl AvroSchema {
    pub fn parse(text: &str) -> Result<Self, String> {
        let schema = Schema::parse_str(text).map_err(|err| format!("not an Avro schema: {err}"))?;
        ResolvedSchema::try_from(&schema).map_err(|err| format!("the schema's names do not resolve: {err}"))?;
        Ok(Self { schema })
    }

    fn names(&self) -> NamesRef<'_> {
        ResolvedSchema::try_from(&self.schema).map(|resolved| resolved.get_names().clone()).unwrap_or_default()
    }

    /// `json` (Avro's JSON encoding) as a framed datum under schema id `id`.
    pub fn encode(&self, id: u32, json: &Json) -> Result<Vec<u8>, String> {
        let names = self.names();
        let value = to_avro(json, &self.schema, &names, "$", false)?;
        let writer = GenericDatumWriter::builder(&self.schema).build().map_err(|err| err.to_string())?;
        let datum = writer.write_value_to_vec(value).map_err(|err| err.to_string())?;
        let mut framed = Vec::with_capacity(FRAMING_BYTES + datum.len());
        framed.push(MAGIC);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&datum);
        Ok(framed)
    }

    /// A framed datum's body (after [`schema_id`]) as Avro's JSON encoding.
    pub fn decode(&self, datum: &[u8]) -> Result<Json, String> {
        let mut reader = datum;
        let datum_reader = GenericDatumReader::builder(&self.schema).build().map_err(|err| err.to_string())?;
        let value =
            datum_reader.read_value(&mut reader).map_err(|err| format!("not an Avro datum of its schema: {err}"))?;
        if !reader.is_empty() {
            return Err(format!("{} bytes left after the Avro datum", reader.len()));
        }
        to_json(&value, &self.schema, &self.names(), "$")
    }
}

/// The schema id of a framed key or value, and the datum after it.
pub(crate) fn schema_id(framed: &[u8]) -> Result<(u32, &[u8]), String> {
    match framed {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [MAGIC, ..] => Err(format!("{} bytes: too short for Confluent's framing", framed.len())),
        _ => Err("no Confluent framing (magic byte 0 and a schema id)".into()),
    }
}

/// Follows a reference to a named type.
fn named<'a>(schema: &'a Schema, names: &'a NamesRef<'a>) -> Result<&'a Schema, String> {
    match schema {
        Schema::Ref { name } => names.get(name).copied().ok_or_else(|| format!("unknown type {}", name.fullname(None))),
        other => Ok(other),
    }
}

/// How a union names the branch a value takes in Avro's JSON encoding.
fn branch_name(schema: &Schema) -> String {
    let full = |name: &Name| name.fullname(None);
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(record) => full(&record.name),
        Schema::Enum(enumeration) => full(&enumeration.name),
        Schema::Fixed(fixed) | Schema::Duration(fixed) => full(&fixed.name),
        Schema::Decimal(decimal) => match &decimal.inner {
            apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => full(&fixed.name),
            apache_avro::schema::InnerDecimalSchema::Bytes => "bytes".into(),
        },
        Schema::Uuid(uuid) => match uuid {
            apache_avro::schema::UuidSchema::String => "string".into(),
            apache_avro::schema::UuidSchema::Bytes => "bytes".into(),
            apache_avro::schema::UuidSchema::Fixed(fixed) => full(&fixed.name),
        },
        Schema::Ref { name } => full(name),
    }
}

/// Avro's JSON encoding of `bytes` and `fixed`: a string whose code points 0–255 are the bytes.
fn latin1_bytes(text: &str, path: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{path}: {c:?} is not a byte (code points 0 to 255)")))
        .collect()
}

fn latin1_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `json` as an Avro value of `schema`. `is_default`: a field's default, where a union takes its first branch
/// unwrapped (the Avro specification's rule for defaults).
fn to_avro(json: &Json, schema: &Schema, names: &NamesRef<'_>, path: &str, is_default: bool) -> Result<Avro, String> {
    let schema = named(schema, names)?;
    let not = |what: &str| format!("{path}: {json} is not {what}");
    let value = match schema {
        Schema::Null => json.is_null().then_some(Avro::Null).ok_or_else(|| not("null"))?,
        Schema::Boolean => Avro::Boolean(json.as_bool().ok_or_else(|| not("a boolean"))?),
        Schema::Int => Avro::Int(int(json).ok_or_else(|| not("an int"))?),
        Schema::Long => Avro::Long(json.as_i64().ok_or_else(|| not("a long"))?),
        Schema::Float => Avro::Float(json.as_f64().ok_or_else(|| not("a float"))? as f32),
        Schema::Double => Avro::Double(json.as_f64().ok_or_else(|| not("a double"))?),
        Schema::String => Avro::String(json.as_str().ok_or_else(|| not("a string"))?.to_owned()),
        Schema::Bytes => Avro::Bytes(latin1_bytes(json.as_str().ok_or_else(|| not("bytes (a string)"))?, path)?),
        Schema::Fixed(fixed) => {
            let bytes = latin1_bytes(json.as_str().ok_or_else(|| not("a fixed (a string)"))?, path)?;
            if bytes.len() != fixed.size {
                return Err(format!("{path}: {} bytes where the fixed {} has {}", bytes.len(), fixed.name, fixed.size));
            }
            Avro::Fixed(fixed.size, bytes)
        }
        Schema::Enum(enumeration) => {
            let symbol = json.as_str().ok_or_else(|| not("an enum symbol (a string)"))?;
            let index = enumeration.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                format!(
                    "{path}: {symbol:?} is not a symbol of {} ({})",
                    enumeration.name,
                    enumeration.symbols.join(", ")
                )
            })?;
            Avro::Enum(u32::try_from(index).map_err(|_| not("an enum symbol"))?, symbol.to_owned())
        }
        Schema::Array(array) => {
            let items = json.as_array().ok_or_else(|| not("an array"))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| to_avro(item, &array.items, names, &format!("{path}[{i}]"), false));
            Avro::Array(items.collect::<Result<_, _>>()?)
        }
        Schema::Map(map) => {
            let entries = json.as_object().ok_or_else(|| not("a map (an object)"))?;
            let entries = entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_avro(v, &map.types, names, &format!("{path}.{k}"), false)?)));
            Avro::Map(entries.collect::<Result<HashMap<_, _>, String>>()?)
        }
        Schema::Record(record) => {
            let fields = json.as_object().ok_or_else(|| not(&format!("a {} record (an object)", record.name)))?;
            if let Some(unknown) = fields.keys().find(|k| !record.fields.iter().any(|f| &f.name == *k)) {
                return Err(format!("{path}: {unknown:?} is not a field of {}", record.name));
            }
            let values = record.fields.iter().map(|field| record_field(fields, field, names, path));
            Avro::Record(values.collect::<Result<_, _>>()?)
        }
        Schema::Union(union) => union_value(json, union, names, path, is_default)?,
        // Logical types: their underlying type's JSON, resolved by Avro into the logical value.
        logical => {
            let underlying = match logical {
                Schema::Date | Schema::TimeMillis => Avro::Int(int(json).ok_or_else(|| not("an int"))?),
                Schema::Decimal(_) | Schema::BigDecimal => {
                    Avro::Bytes(latin1_bytes(json.as_str().ok_or_else(|| not("a decimal's bytes (a string)"))?, path)?)
                }
                Schema::Uuid(_) => Avro::String(json.as_str().ok_or_else(|| not("a uuid (a string)"))?.to_owned()),
                Schema::Duration(_) => {
                    Avro::Fixed(12, latin1_bytes(json.as_str().ok_or_else(|| not("a duration (a string)"))?, path)?)
                }
                _ => Avro::Long(json.as_i64().ok_or_else(|| not("a long"))?),
            };
            underlying.resolve(logical).map_err(|err| format!("{path}: {err}"))?
        }
    };
    Ok(value)
}

fn int(json: &Json) -> Option<i32> {
    json.as_i64().and_then(|n| i32::try_from(n).ok())
}

fn record_field(
    fields: &Map<String, Json>,
    field: &RecordField,
    names: &NamesRef<'_>,
    path: &str,
) -> Result<(String, Avro), String> {
    let path = format!("{path}.{}", field.name);
    let value = match (fields.get(&field.name), &field.default) {
        (Some(json), _) => to_avro(json, &field.schema, names, &path, false)?,
        (None, Some(default)) => to_avro(default, &field.schema, names, &path, true)?,
        (None, None) => return Err(format!("{path}: missing (the field has no default)")),
    };
    Ok((field.name.clone(), value))
}

fn union_value(
    json: &Json,
    union: &UnionSchema,
    names: &NamesRef<'_>,
    path: &str,
    is_default: bool,
) -> Result<Avro, String> {
    let variants = union.variants();
    let take = |index: usize, json: &Json| -> Result<Avro, String> {
        let value = to_avro(json, &variants[index], names, path, false)?;
        Ok(Avro::Union(u32::try_from(index).map_err(|_| format!("{path}: too many branches"))?, Box::new(value)))
    };
    if is_default {
        return take(0, json);
    }
    if json.is_null() {
        let null = variants.iter().position(|v| matches!(v, Schema::Null));
        return null.map_or_else(|| Err(format!("{path}: null is not a branch of this union")), |i| take(i, json));
    }
    if let Some((name, inner)) = json.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) {
        if let Some(index) = variants.iter().position(|v| branch_name(v) == *name) {
            return take(index, inner);
        }
    }
    // Not wrapped: the first branch that takes the value as it is.
    (0..variants.len()).find_map(|index| take(index, json).ok()).ok_or_else(|| {
        let branches: Vec<String> = variants.iter().map(branch_name).collect();
        format!(
            "{path}: {json} fits no branch of the union ({}); wrap it as {{\"BRANCH\": value}}",
            branches.join(", ")
        )
    })
}

/// `value` of `schema` in Avro's JSON encoding.
fn to_json(value: &Avro, schema: &Schema, names: &NamesRef<'_>, path: &str) -> Result<Json, String> {
    let schema = named(schema, names)?;
    let number = |n: f64| Number::from_f64(n).map_or(Json::Null, Json::Number);
    let json = match (value, schema) {
        (Avro::Null, _) => Json::Null,
        (Avro::Boolean(b), _) => Json::Bool(*b),
        (Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n), _) => Json::from(*n),
        (
            Avro::Long(n)
            | Avro::TimeMicros(n)
            | Avro::TimestampMillis(n)
            | Avro::TimestampMicros(n)
            | Avro::TimestampNanos(n)
            | Avro::LocalTimestampMillis(n)
            | Avro::LocalTimestampMicros(n)
            | Avro::LocalTimestampNanos(n),
            _,
        ) => Json::from(*n),
        (Avro::Float(n), _) => number(f64::from(*n)),
        (Avro::Double(n), _) => number(*n),
        (Avro::String(s), _) => Json::String(s.clone()),
        (Avro::Uuid(uuid), _) => Json::String(uuid.to_string()),
        (Avro::Bytes(bytes) | Avro::Fixed(_, bytes), _) => Json::String(latin1_text(bytes)),
        (Avro::Decimal(decimal), _) => {
            let bytes: Vec<u8> = decimal.try_into().map_err(|err| format!("{path}: {err}"))?;
            Json::String(latin1_text(&bytes))
        }
        (Avro::BigDecimal(decimal), _) => Json::String(decimal.to_string()),
        (Avro::Duration(duration), _) => Json::String(latin1_text(&<[u8; 12]>::from(*duration))),
        (Avro::Enum(_, symbol), _) => Json::String(symbol.clone()),
        (Avro::Array(items), Schema::Array(array)) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &array.items, names, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Avro::Map(entries), Schema::Map(map)) => {
            let mut object = Map::new();
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                object.insert(key.clone(), to_json(&entries[key], &map.types, names, &format!("{path}.{key}"))?);
            }
            Json::Object(object)
        }
        (Avro::Record(fields), Schema::Record(record)) => {
            let mut object = Map::new();
            for ((name, field_value), field) in fields.iter().zip(&record.fields) {
                object.insert(name.clone(), to_json(field_value, &field.schema, names, &format!("{path}.{name}"))?);
            }
            Json::Object(object)
        }
        (Avro::Union(index, inner), Schema::Union(union)) => {
            let branch = usize::try_from(*index).ok().and_then(|i| union.variants().get(i));
            let branch = branch.ok_or_else(|| format!("{path}: union branch {index} does not exist"))?;
            let branch = named(branch, names)?;
            match branch {
                Schema::Null => Json::Null,
                _ => {
                    let mut wrapped = Map::new();
                    wrapped.insert(branch_name(branch), to_json(inner, branch, names, path)?);
                    Json::Object(wrapped)
                }
            }
        }
        (other, schema) => return Err(format!("{path}: a {other:?} where the schema has {}", branch_name(schema))),
    };
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "prices", "type": {"type": "map", "values": "double"}, "default": {}},
        {"name": "raw", "type": "bytes", "default": ""},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 0},
        {"name": "next", "type": ["null", "Order"], "default": null}
    ]}"#;

    #[test]
    fn a_record_goes_to_confluents_framing_and_back_in_avros_json_encoding() {
        let schema = AvroSchema::parse(ORDER).expect("a schema");
        let order = json!({
            "id": 7, "item": "book", "note": {"string": "gift"}, "status": "PAID", "tags": ["a"],
            "prices": {"eur": 12.5}, "raw": "\u{0}\u{ff}", "day": 19000,
            "next": {"shop.Order": {"id": 8, "item": "pen", "status": "NEW"}},
        });
        let framed = schema.encode(42, &order).expect("encodes");
        let (id, datum) = schema_id(&framed).expect("framed");
        assert_eq!((framed[0], id), (0, 42));
        let back = schema.decode(datum).expect("decodes");
        assert_eq!(back["note"], json!({"string": "gift"}));
        assert_eq!(back["raw"], json!("\u{0}\u{ff}"));
        assert_eq!(back["next"]["shop.Order"]["item"], json!("pen"));
        assert_eq!(back["next"]["shop.Order"]["note"], Json::Null, "a default filled in");
        assert_eq!(back["day"], json!(19000));
        // Read back, it encodes to the same bytes.
        assert_eq!(schema.encode(42, &back).expect("encodes again"), framed);
        // An unwrapped union value is taken by the first branch that fits it.
        let plain =
            schema.encode(42, &json!({"id": 1, "item": "x", "status": "NEW", "note": "plain"})).expect("lenient");
        assert_eq!(schema.decode(&plain[FRAMING_BYTES..]).expect("decodes")["note"], json!({"string": "plain"}));
    }

    #[test]
    fn a_value_that_does_not_fit_is_refused_with_its_path() {
        let schema = AvroSchema::parse(ORDER).expect("a schema");
        let refused = |order: Json| schema.encode(1, &order).unwrap_err();
        assert!(refused(json!({"item": "x", "status": "NEW"})).contains("$.id: missing"));
        assert!(refused(json!({"id": 1.5, "item": "x", "status": "NEW"})).contains("$.id: 1.5 is not a long"));
        assert!(refused(json!({"id": 1, "item": "x", "status": "LOST"})).contains("not a symbol of shop.Status"));
        assert!(refused(json!({"id": 1, "item": "x", "status": "NEW", "tags": [1]})).contains("$.tags[0]"));
        assert!(refused(json!({"id": 1, "item": "x", "status": "NEW", "colour": "red"})).contains("\"colour\""));
        assert!(refused(json!({"id": 1, "item": "x", "status": "NEW", "raw": "\u{100}"})).contains("$.raw"));
        assert!(refused(json!({"id": 1, "item": "x", "status": "NEW", "note": 3})).contains("fits no branch"));
        assert!(AvroSchema::parse("{\"type\": \"nothing\"}").is_err());
    }

    #[test]
    fn framing_is_checked() {
        assert_eq!(schema_id(&[0, 0, 0, 1, 0, 9]), Ok((256, &[9][..])));
        assert!(schema_id(&[0, 0, 1]).unwrap_err().contains("too short"));
        assert!(schema_id(b"{\"json\": 1}").unwrap_err().contains("no Confluent framing"));
        let schema = AvroSchema::parse("\"long\"").expect("a schema");
        assert!(schema.decode(&[2, 2]).unwrap_err().contains("left after"));
    }
}
