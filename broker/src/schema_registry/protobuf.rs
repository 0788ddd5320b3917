//! Protobuf schemas: `.proto` text, or a base64 `FileDescriptorProto` (what confluent-kafka's Python serializer
//! registers), compiled with protox, each `import` resolved from the schema's references by name (and
//! `google/protobuf/*.proto` built in), and the rules for reading one version's data with another.
//!
//! The rules are the wire format's: a field is its number, so a field added or removed is compatible (an unknown
//! field is skipped, a missing one takes its default), a renamed one too; what a reader cannot take from a
//! writer's bytes is refused, naming the message and field.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use protox::file::{File, FileResolver, GoogleFileResolver};

/// The file name a registered schema compiles under; its imports are its references' names.
pub const ROOT_FILE: &str = "default.proto";

/// A compiled Protobuf schema.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    file: FileDescriptorProto,
}

/// The schema text and its references' texts (by reference name, imports of imports included).
struct RegisteredFiles {
    files: BTreeMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for RegisteredFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(text) => open(name, text),
            None => self.google.open_file(name),
        }
    }
}

/// Whether `text` is a base64 `FileDescriptorProto` rather than `.proto` source: source always has a space or a
/// semicolon, base64 never does.
pub fn is_base64(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn open(name: &str, text: &str) -> Result<File, protox::Error> {
    if !is_base64(text) {
        return File::from_source(name, text);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| protox::Error::new(format!("{name}: not base64: {e}")))?;
    let mut descriptor = FileDescriptorProto::decode(bytes.as_slice())
        .map_err(|e| protox::Error::new(format!("{name}: not a FileDescriptorProto: {e}")))?;
    descriptor.name = Some(name.to_owned());
    descriptor.source_code_info = None;
    Ok(File::from_file_descriptor_proto(descriptor))
}

impl ProtobufSchema {
    /// Compiles `text` with `references` (reference name → schema text) as the files it may import.
    pub fn parse(text: &str, references: &BTreeMap<String, String>) -> Result<Self, String> {
        if references.contains_key(ROOT_FILE) {
            return Err(format!("a reference may not be named {ROOT_FILE:?}"));
        }
        let mut files = references.clone();
        files.insert(ROOT_FILE.to_owned(), text.to_owned());
        // protox (through prost-reflect) panics on some malformed descriptors where it means to refuse them (an
        // explicit empty `syntax`, found by the property test below): a registration must not take a node down
        // (on a cluster, every node), so a panic while compiling is a refusal like any other.
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let resolver = RegisteredFiles { files, google: GoogleFileResolver::new() };
            let mut compiler = protox::Compiler::with_file_resolver(resolver);
            compiler.include_imports(false).include_source_info(false);
            compiler.open_file(ROOT_FILE).map_err(|e| e.to_string())?;
            Ok::<_, String>(compiler.file_descriptor_set())
        }));
        let set = compiled.unwrap_or_else(|_| Err("the compiler failed on this descriptor".into()))?;
        let file = set
            .file
            .into_iter()
            .find(|f| f.name() == ROOT_FILE)
            .ok_or_else(|| "the schema did not compile to a file".to_owned())?;
        Ok(Self { file })
    }

    /// The compiled file, base64, as Confluent's `format=serialized` answers: what Python's deserializer reads.
    pub fn serialized(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.file.encode_to_vec())
    }

    /// The file as `.proto` text, when that text compiles (with the same `references`) back to this very file.
    pub fn text(&self, references: &BTreeMap<String, String>) -> Option<String> {
        let text = super::proto_text::render(&self.file)?;
        let again = ProtobufSchema::parse(&text, references).ok()?;
        (again.identity() == self.identity()).then_some(text)
    }

    /// What makes two schemas the same: the compiled file, whether it came as text or as a descriptor, without
    /// the JSON names a compiler may or may not fill in.
    pub fn identity(&self) -> String {
        let mut file = self.file.clone();
        file.message_type.iter_mut().for_each(clear_json_names);
        base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
    }

    /// The full name of the message that Confluent's message indexes (after the schema id) point to: the first
    /// index among the file's messages, each next among the previous one's nested messages.
    pub fn message_name(&self, indexes: &[usize]) -> Option<String> {
        let (first, nested) = indexes.split_first()?;
        let mut message = self.file.message_type.get(*first)?;
        let mut name = qualified(self.file.package(), message.name());
        for index in nested {
            message = message.nested_type.get(*index)?;
            name = format!("{name}.{}", message.name());
        }
        Some(name)
    }

    /// Why a reader with this schema cannot read everything written with `writer`, if it cannot.
    pub fn cannot_read(&self, writer: &ProtobufSchema) -> Option<String> {
        if self.file.package() != writer.file.package() {
            return Some(format!("the package changed from {:?} to {:?}", writer.file.package(), self.file.package()));
        }
        let readers = messages(&self.file);
        for (name, written) in messages(&writer.file) {
            let Some(reader) = readers.get(&name) else {
                return Some(format!("message {name} was removed"));
            };
            if let Some(reason) = message_cannot_read(&name, reader, written) {
                return Some(reason);
            }
        }
        None
    }
}

fn clear_json_names(message: &mut DescriptorProto) {
    message.field.iter_mut().for_each(|f| f.json_name = None);
    message.nested_type.iter_mut().for_each(clear_json_names);
}

fn qualified(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_owned()
    } else {
        format!("{package}.{name}")
    }
}

/// Every message of `file` by full name, nested ones (and map entries) included.
fn messages(file: &FileDescriptorProto) -> BTreeMap<String, &DescriptorProto> {
    fn walk<'a>(prefix: &str, message: &'a DescriptorProto, into: &mut BTreeMap<String, &'a DescriptorProto>) {
        let name = qualified(prefix, message.name());
        for nested in &message.nested_type {
            walk(&name, nested, into);
        }
        into.insert(name, message);
    }
    let mut all = BTreeMap::new();
    for message in &file.message_type {
        walk(file.package(), message, &mut all);
    }
    all
}

/// The oneof a field belongs to, by name; proto3's `optional` (a synthetic oneof of one) is no oneof.
fn oneof<'a>(message: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a str> {
    if field.proto3_optional() {
        return None;
    }
    let index = usize::try_from(field.oneof_index?).ok()?;
    message.oneof_decl.get(index).map(|o| o.name())
}

/// Scalar types whose encodings read as one another (the language guide's "Updating a message type").
fn scalar_group(kind: Type) -> u8 {
    match kind {
        Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool => 1,
        Type::Sint32 | Type::Sint64 => 2,
        Type::Fixed32 | Type::Sfixed32 => 3,
        Type::Fixed64 | Type::Sfixed64 => 4,
        Type::Double => 5,
        Type::Float => 6,
        Type::String | Type::Bytes => 7,
        Type::Message | Type::Group | Type::Enum => 0,
    }
}

fn type_name(field: &FieldDescriptorProto) -> String {
    match field.r#type() {
        Type::Message | Type::Enum | Type::Group => field.type_name().trim_start_matches('.').to_owned(),
        other => other.as_str_name().trim_start_matches("TYPE_").to_ascii_lowercase(),
    }
}

fn message_cannot_read(name: &str, reader: &DescriptorProto, writer: &DescriptorProto) -> Option<String> {
    let written: BTreeMap<i32, &FieldDescriptorProto> = writer.field.iter().map(|f| (f.number(), f)).collect();
    let read: BTreeMap<i32, &FieldDescriptorProto> = reader.field.iter().map(|f| (f.number(), f)).collect();
    let writer_oneofs: BTreeSet<&str> = writer.field.iter().filter_map(|f| oneof(writer, f)).collect();
    let mut moved_into: BTreeMap<&str, usize> = BTreeMap::new();
    for (number, field) in &read {
        let at = format!("field {name}.{} ({number})", field.name());
        let required = field.label() == Label::Required;
        let Some(old) = written.get(number) else {
            if required {
                return Some(format!("{at} was added as required: data written without it cannot be read"));
            }
            continue;
        };
        if required && old.label() != Label::Required {
            return Some(format!("{at} became required: data written without it cannot be read"));
        }
        let (new_type, old_type) = (field.r#type(), old.r#type());
        let same_kind = match (scalar_group(new_type), scalar_group(old_type)) {
            (0, 0) => new_type == old_type && field.type_name() == old.type_name(),
            (0, _) | (_, 0) => false,
            // Bytes read as a string only when they are UTF-8, which nothing promises.
            _ if old_type == Type::Bytes && new_type == Type::String => false,
            (new_group, old_group) => new_group == old_group,
        };
        if !same_kind {
            return Some(format!("{at} changed type from {} to {}", type_name(old), type_name(field)));
        }
        if old.label() == Label::Repeated && field.label() != Label::Repeated {
            return Some(format!("{at} is no longer repeated: a reader would keep only the last element"));
        }
        match (oneof(writer, old), oneof(reader, field)) {
            (None, Some(group)) if writer_oneofs.contains(group) => {
                return Some(format!("{at} moved into the existing oneof {group}"));
            }
            (None, Some(group)) => *moved_into.entry(group).or_default() += 1,
            _ => {}
        }
    }
    if let Some((group, _)) = moved_into.iter().find(|(_, count)| **count > 1) {
        return Some(format!(
            "several fields of {name} moved into the new oneof {group}: a reader keeps only one of them"
        ));
    }
    let reader_oneofs: BTreeSet<&str> = reader.field.iter().filter_map(|f| oneof(reader, f)).collect();
    for (number, field) in &written {
        if read.contains_key(number) {
            continue;
        }
        if let Some(group) = oneof(writer, field).filter(|group| reader_oneofs.contains(group)) {
            return Some(format!(
                "field {name}.{} ({number}) was removed from oneof {group}: data with it set would read as none set",
                field.name()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ProtobufSchema {
        ProtobufSchema::parse(text, &BTreeMap::new()).expect("compiles")
    }

    const V1: &str = r#"syntax = "proto3"; package shop;
        message Order { int64 id = 1; string item = 2; repeated string tags = 3; Line line = 4;
          message Line { int32 count = 1; } }"#;

    #[test]
    fn text_and_its_descriptor_are_the_same_schema_and_name_their_messages() {
        let text = parse(V1);
        let from_descriptor = parse(&text.serialized());
        assert_eq!(text.identity(), from_descriptor.identity());
        assert_eq!(text.message_name(&[0]).as_deref(), Some("shop.Order"));
        assert_eq!(text.message_name(&[0, 0]).as_deref(), Some("shop.Order.Line"));
        assert_eq!(text.message_name(&[1]), None);
        assert!(ProtobufSchema::parse("message {", &BTreeMap::new()).is_err());
        assert!(ProtobufSchema::parse("bm90IGEgZGVzY3JpcHRvcg==", &BTreeMap::new()).is_err());
        let err = ProtobufSchema::parse(r#"syntax = "proto3"; import "customer.proto";"#, &BTreeMap::new());
        assert!(err.expect_err("unresolved").contains("customer.proto"));
        let well_known = r#"syntax = "proto3"; import "google/protobuf/timestamp.proto";
            message E { google.protobuf.Timestamp at = 1; }"#;
        parse(well_known);
    }

    #[test]
    fn a_descriptor_the_compiler_fails_on_is_refused() {
        let file =
            FileDescriptorProto { name: Some("x.proto".into()), syntax: Some(String::new()), ..Default::default() };
        let encoded = base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec());
        let refused = ProtobufSchema::parse(&encoded, &BTreeMap::new()).expect_err("refused");
        assert!(refused.contains("compiler failed"), "{refused}");
    }

    #[test]
    fn a_descriptor_is_written_back_as_text_that_compiles_to_it() {
        let customer = r#"syntax = "proto3"; package crm; message Customer { string name = 1; }"#;
        let references = BTreeMap::from([("crm/customer.proto".to_owned(), customer.to_owned())]);
        let source = r#"syntax = "proto3";
            package shop;
            import "crm/customer.proto";
            import "google/protobuf/timestamp.proto";
            message Order {
              enum Status { NEW = 0; PAID = 1; reserved 7; reserved "LOST"; }
              message Line { string sku = 1; int32 count = 2 [deprecated = true]; }
              int64 id = 1;
              crm.Customer customer = 2;
              repeated Line lines = 3;
              map<string, int64> totals = 4;
              optional string note = 5;
              oneof payment { string card = 6; string voucher = 7; }
              Status status = 8;
              google.protobuf.Timestamp at = 9;
              repeated int32 codes = 10 [packed = false];
              string display_name = 11 [json_name = "shown"];
              reserved 20 to 29, 40;
              reserved "old";
            }"#;
        let schema = ProtobufSchema::parse(source, &references).expect("compiles");
        let text = schema.text(&references).expect("written back");
        assert!(text.contains("map<string, int64> totals = 4;") && text.contains("oneof payment {"), "{text}");
        assert!(text.contains("optional string note = 5;") && text.contains("reserved 20 to 29, 40;"), "{text}");
        let again = ProtobufSchema::parse(&text, &references).expect("the text compiles");
        assert_eq!(again.identity(), schema.identity());
        let proto2 = r#"syntax = "proto2"; message P { required string a = 1; optional int32 b = 2 [default = 7];
            optional string c = 3 [default = "x\"y"]; extensions 100 to max; }"#;
        let schema = ProtobufSchema::parse(proto2, &BTreeMap::new()).expect("compiles");
        assert!(schema.text(&BTreeMap::new()).expect("written").contains("[default = \"x\\\"y\"]"));
        let with_options = r#"syntax = "proto3"; option java_package = "com.shop"; message M { int32 a = 1; }"#;
        let schema = ProtobufSchema::parse(with_options, &BTreeMap::new()).expect("compiles");
        assert_eq!(schema.text(&BTreeMap::new()), None, "a file option this writer does not write");
    }

    #[test]
    fn imports_resolve_from_references() {
        let customer = r#"syntax = "proto3"; package crm; message Customer { string name = 1; }"#;
        let references = BTreeMap::from([("crm/customer.proto".to_owned(), customer.to_owned())]);
        let order = r#"syntax = "proto3"; package shop; import "crm/customer.proto";
            message Order { crm.Customer customer = 1; }"#;
        let schema = ProtobufSchema::parse(order, &references).expect("compiles");
        assert_eq!(schema.file.dependency, vec!["crm/customer.proto".to_owned()]);
    }

    fn reason(writer: &str, reader: &str) -> Option<String> {
        parse(reader).cannot_read(&parse(writer))
    }

    #[test]
    fn what_the_wire_format_reads_passes_and_the_rest_is_named() {
        let added = V1.replace("Line line = 4;", "Line line = 4; string note = 5;");
        assert_eq!(reason(V1, &added), None, "a field added");
        assert_eq!(reason(&added, V1), None, "a field removed");
        assert_eq!(reason(V1, &V1.replace("string item", "string title")), None, "renamed");
        assert_eq!(reason(V1, &V1.replace("int64 id", "uint64 id")), None, "varint family");
        assert_eq!(reason(V1, &V1.replace("string item", "bytes item")), None, "string read as bytes");
        let bytes = V1.replace("string item", "bytes item");
        assert!(reason(&bytes, V1).expect("bytes as string").contains("shop.Order.item (2) changed type"));
        assert!(reason(V1, &V1.replace("int64 id", "sint64 id")).expect("zigzag").contains("int64 to sint64"));
        assert!(reason(V1, &V1.replace("Line line", "Order line")).expect("named").contains("changed type"));
        assert!(reason(V1, &V1.replace("repeated string tags", "string tags")).expect("label").contains("repeated"));
        assert_eq!(reason(&V1.replace("repeated string tags", "string tags"), V1), None, "singular to repeated");
        let nested_removed = V1.replace("message Line { int32 count = 1; }", "").replace("Line line = 4;", "");
        assert!(reason(V1, &nested_removed).expect("removed").contains("message shop.Order.Line was removed"));
        assert!(reason(V1, &V1.replace("package shop", "package store")).expect("package").contains("package"));
        let nested = V1.replace("int32 count = 1;", "int32 count = 1; string sku = 2;");
        assert_eq!(reason(V1, &nested), None, "nested messages compared by name");
    }

    /// Descriptors of any shape: names, numbers, types (known and not), labels, type names pointing anywhere,
    /// oneof indexes in and out of range, nesting: what a client may send as base64.
    fn descriptor() -> impl proptest::strategy::Strategy<Value = FileDescriptorProto> {
        use proptest::prelude::*;
        let name = prop::sample::select(vec!["A", "B", "a", "b", "x.y", "", "1", "A.B", "oneof"]);
        let type_name = prop::sample::select(vec![
            ".p.A",
            ".p.B",
            ".p.A.B",
            "A",
            ".google.protobuf.Timestamp",
            ".q.C",
            "",
            ".",
            ".p.E",
        ]);
        let field = (
            name.clone(),
            -2..20i32,
            0..21i32,
            0..5i32,
            proptest::option::of(type_name),
            proptest::option::of(-1..3i32),
            any::<bool>(),
        )
            .prop_map(|(name, number, kind, label, type_name, oneof_index, optional)| FieldDescriptorProto {
                name: Some(name.to_owned()),
                number: Some(number),
                r#type: Some(kind),
                label: Some(label),
                type_name: type_name.map(str::to_owned),
                oneof_index,
                proto3_optional: Some(optional),
                ..Default::default()
            });
        let leaf =
            (name.clone(), prop::collection::vec(field.clone(), 0..4), 0..3usize).prop_map(|(name, field, oneofs)| {
                DescriptorProto {
                    name: Some(name.to_owned()),
                    field,
                    oneof_decl: (0..oneofs)
                        .map(|i| prost_types::OneofDescriptorProto {
                            name: Some(format!("o{i}")),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            });
        let message = leaf.prop_recursive(3, 12, 3, move |inner| {
            (inner.clone(), prop::collection::vec(inner, 0..3)).prop_map(|(mut message, nested)| {
                message.nested_type = nested;
                message
            })
        });
        (
            prop::sample::select(vec!["p", "", "q", "google.protobuf"]),
            prop::sample::select(vec!["proto3", "proto2", "", "editions", "proto4"]),
            prop::collection::vec(message, 0..4),
            prop::collection::vec(
                prop::sample::select(vec![
                    "google/protobuf/timestamp.proto",
                    "dep.proto",
                    "default.proto",
                    "nowhere.proto",
                ]),
                0..3,
            ),
        )
            .prop_map(|(package, syntax, message_type, dependency)| FileDescriptorProto {
                name: Some("x.proto".into()),
                package: Some(package.to_owned()),
                syntax: Some(syntax.to_owned()),
                message_type,
                dependency: dependency.into_iter().map(str::to_owned).collect(),
                ..Default::default()
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Whatever descriptor a client sends, compiling, comparing and naming its messages answers and never
        /// panics: on a cluster every node applies a registration.
        #[test]
        fn any_descriptor_compiles_or_is_refused_without_a_panic(
            file in descriptor(),
            other in descriptor(),
            indexes in proptest::collection::vec(0..4usize, 0..4),
        ) {
            let dependency = r#"syntax = "proto3"; package p; message E { int32 e = 1; }"#;
            let references = BTreeMap::from([("dep.proto".to_owned(), dependency.to_owned())]);
            let encoded = base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec());
            let parsed = ProtobufSchema::parse(&encoded, &references);
            let encoded_other = base64::engine::general_purpose::STANDARD.encode(other.encode_to_vec());
            if let (Ok(schema), Ok(other)) = (&parsed, ProtobufSchema::parse(&encoded_other, &references)) {
                let _ = (schema.cannot_read(&other), other.cannot_read(schema), schema.message_name(&indexes));
                if let Some(text) = schema.text(&references) {
                    let again = ProtobufSchema::parse(&text, &references).expect("written text compiles");
                    proptest::prop_assert_eq!(again.identity(), schema.identity());
                }
                let again = ProtobufSchema::parse(&schema.serialized(), &references).expect("its own descriptor");
                proptest::prop_assert_eq!(again.identity(), schema.identity());
            }
        }
    }

    #[test]
    fn oneofs_and_required_fields() {
        let plain = r#"syntax = "proto3"; message P { string a = 1; string b = 2; }"#;
        let one_in = r#"syntax = "proto3"; message P { oneof k { string a = 1; } string b = 2; }"#;
        let both_in = r#"syntax = "proto3"; message P { oneof k { string a = 1; string b = 2; } }"#;
        assert_eq!(reason(plain, one_in), None, "one field into a new oneof");
        assert!(reason(plain, both_in).expect("several").contains("several fields"));
        assert!(reason(one_in, both_in).expect("existing").contains("existing oneof k"));
        let fewer = r#"syntax = "proto3"; message P { oneof k { string a = 1; string c = 3; } }"#;
        assert!(reason(both_in, fewer).expect("removed").contains("removed from oneof k"));
        let optional = r#"syntax = "proto3"; message P { optional string a = 1; string b = 2; }"#;
        assert_eq!(reason(plain, optional), None, "proto3 optional is no oneof");
        let v1 = r#"syntax = "proto2"; message Q { optional string a = 1; }"#;
        let v2 = r#"syntax = "proto2"; message Q { optional string a = 1; required string b = 2; }"#;
        assert!(reason(v1, v2).expect("required").contains("added as required"));
        assert_eq!(reason(v2, v1), None, "a required field removed");
        assert!(reason(v1, &v1.replace("optional", "required")).expect("became").contains("became required"));
    }
}
