//! The `protobuf` embedded format: a record's key or value as JSON in Protobuf's JSON mapping (field names as
//! `json_name` or as declared, 64-bit integers as strings, bytes as base64, enums by name), stored in
//! Confluent's framing: magic byte 0, the schema id, the message indexes (which message of the file), the
//! message's binary encoding. What Confluent's Protobuf serializers write and read.
//!
//! The schema comes from the registry as compiled descriptors (`format=serialized`, the file and each file it
//! imports, by reference name), so the proxy parses no `.proto` text: a registry that takes text compiles it.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, FileDescriptor, MessageDescriptor, SerializeOptions};
use prost_types::FileDescriptorProto;
use rill_protocol::schema_framing::message_indexes;
use serde_json::Value;

use crate::avro::FRAMING_BYTES;

/// The name the schema's own file takes in the proxy's pool: one no import is called.
const ROOT_FILE: &str = "rill-http-proxy/registered.proto";

#[derive(Debug)]
pub(crate) struct ProtobufSchema {
    file: FileDescriptor,
}

fn decode_file(name: &str, base64_descriptor: &str) -> Result<FileDescriptorProto, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_descriptor.trim())
        .map_err(|err| format!("{name}: the registry's serialized schema is not base64 ({err})"))?;
    let mut file = FileDescriptorProto::decode(bytes.as_slice())
        .map_err(|err| format!("{name}: the registry's serialized schema is not a FileDescriptorProto ({err})"))?;
    file.name = Some(name.to_owned());
    Ok(file)
}

impl ProtobufSchema {
    /// The schema's file (a base64 `FileDescriptorProto`) with the files it imports, by import name; the
    /// well-known `google/protobuf/*.proto` are built in.
    pub fn from_serialized(root: &str, imports: &[(String, String)]) -> Result<Self, String> {
        let mut pool = DescriptorPool::global();
        let mut files = Vec::with_capacity(imports.len() + 1);
        for (name, descriptor) in imports {
            if pool.get_file_by_name(name).is_none() {
                files.push(decode_file(name, descriptor)?);
            }
        }
        files.push(decode_file(ROOT_FILE, root)?);
        // prost-reflect panics on some malformed descriptors where it means to refuse them: a registry's
        // answer must not take the proxy's task down.
        let added = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.add_file_descriptor_protos(files)));
        match added {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("the schema's descriptors do not build: {err}")),
            Err(_) => return Err("the schema's descriptors do not build (prost-reflect failed on them)".into()),
        }
        let file = pool.get_file_by_name(ROOT_FILE).ok_or("the schema's file is not in its pool")?;
        if file.messages().next().is_none() {
            return Err("the schema's file declares no message".into());
        }
        Ok(Self { file })
    }

    /// The message Confluent's message indexes point to: the first among the file's messages, each next among
    /// the previous one's nested messages.
    fn message(&self, indexes: &[usize]) -> Option<MessageDescriptor> {
        let (first, nested) = indexes.split_first()?;
        let mut message = self.file.messages().nth(*first)?;
        for index in nested {
            let child = message.child_messages().nth(*index)?;
            message = child;
        }
        Some(message)
    }

    /// `json` as the file's first message (as Confluent's REST Proxy takes it), framed under schema `id`.
    pub fn encode(&self, id: u32, json: &Value) -> Result<Vec<u8>, String> {
        let descriptor = self.message(&[0]).ok_or("the schema's file declares no message")?;
        let message = DynamicMessage::deserialize(descriptor.clone(), json.clone())
            .map_err(|err| format!("not a {} in Protobuf's JSON mapping: {err}", descriptor.full_name()))?;
        let mut framed = Vec::with_capacity(FRAMING_BYTES + 1 + message.encoded_len());
        framed.push(0);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.push(0); // message indexes [0], written as Confluent's serializers write it: one zero
        message.encode(&mut framed).map_err(|err| err.to_string())?;
        Ok(framed)
    }

    /// A framed value's body (after the schema id: message indexes, then the message) as JSON.
    pub fn decode(&self, body: &[u8]) -> Result<Value, String> {
        let (indexes, encoded) = message_indexes(body).ok_or("no message indexes after the schema id")?;
        let descriptor = self
            .message(&indexes)
            .ok_or_else(|| format!("message indexes {indexes:?} name no message of the schema"))?;
        let message = DynamicMessage::decode(descriptor.clone(), encoded)
            .map_err(|err| format!("not a {} ({err})", descriptor.full_name()))?;
        let options = SerializeOptions::new().skip_default_fields(false);
        message.serialize_with_options(serde_json::value::Serializer, &options).map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FieldDescriptorProto};
    use serde_json::json;

    fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            type_name: type_name.map(str::to_owned),
            ..Default::default()
        }
    }

    fn serialized(file: &FileDescriptorProto) -> String {
        base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
    }

    /// `shop.Order { int64 id = 1; crm.Customer customer = 2; google.protobuf.Timestamp at = 3; Line line = 4 }`,
    /// with `crm.Customer` imported.
    fn order_schema() -> ProtobufSchema {
        let customer = FileDescriptorProto {
            name: Some("crm/customer.proto".into()),
            package: Some("crm".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Customer".into()),
                field: vec![field("name", 1, Type::String, None)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let order = FileDescriptorProto {
            name: Some("default.proto".into()),
            package: Some("shop".into()),
            syntax: Some("proto3".into()),
            dependency: vec!["crm/customer.proto".into(), "google/protobuf/timestamp.proto".into()],
            message_type: vec![DescriptorProto {
                name: Some("Order".into()),
                field: vec![
                    field("id", 1, Type::Int64, None),
                    field("customer", 2, Type::Message, Some(".crm.Customer")),
                    field("at", 3, Type::Message, Some(".google.protobuf.Timestamp")),
                    field("line", 4, Type::Message, Some(".shop.Order.Line")),
                ],
                nested_type: vec![DescriptorProto {
                    name: Some("Line".into()),
                    field: vec![field("sku", 1, Type::String, None)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let imports = [("crm/customer.proto".to_owned(), serialized(&customer))];
        ProtobufSchema::from_serialized(&serialized(&order), &imports).expect("builds")
    }

    #[test]
    fn json_goes_to_confluents_framing_and_back() {
        let schema = order_schema();
        let order = json!({"id": "7", "customer": {"name": "Ada"}, "at": "2026-12-05T21:00:00Z", "line": {"sku": "a"}});
        let framed = schema.encode(3, &order).expect("encodes");
        assert_eq!(&framed[..6], &[0, 0, 0, 0, 3, 0], "magic, id 3, indexes [0]");
        assert_eq!(schema.decode(&framed[5..]).expect("decodes"), order);
        let line = [&[4u8, 0, 0][..], &[0x0a, 1, b'b']].concat();
        assert_eq!(schema.decode(&line).expect("nested"), json!({"sku": "b"}), "indexes [0, 0]: Order.Line");
        let refused = schema.encode(3, &json!({"id": "7", "colour": "red"})).unwrap_err();
        assert!(refused.contains("shop.Order") && refused.contains("colour"), "{refused}");
        assert!(schema.decode(&[2, 4]).unwrap_err().contains("[2]"), "no message 2");
        assert!(schema.decode(&[0, 0xff]).unwrap_err().contains("shop.Order"), "not an Order");
        assert!(ProtobufSchema::from_serialized("bm90", &[]).is_err());
    }
}
