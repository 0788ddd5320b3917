//! A compiled Protobuf file written back as `.proto` text, for a schema registered as a base64 descriptor (what
//! confluent-kafka's Python serializer sends): Confluent's registry answers such a schema as text, and text is
//! what people read in `rill schema show` and the console. The text is given only when it compiles back to the
//! same file (`protobuf.rs` checks); what this writer does not know (options other than the few below,
//! extensions, services, groups, editions) leaves the schema answered as registered.

use std::fmt::Write;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto};

/// The file as `.proto` text, or None where it holds something this writer does not write.
pub fn render(file: &FileDescriptorProto) -> Option<String> {
    let syntax = match file.syntax() {
        "" | "proto2" => "proto2",
        "proto3" => "proto3",
        _ => return None,
    };
    if file.options.is_some() || !file.service.is_empty() || !file.extension.is_empty() {
        return None;
    }
    let mut out = format!("syntax = \"{syntax}\";\n");
    if !file.package().is_empty() {
        writeln!(out, "package {};", file.package()).ok()?;
    }
    for (index, import) in file.dependency.iter().enumerate() {
        let index = i32::try_from(index).ok()?;
        let kind = if file.public_dependency.contains(&index) {
            "public "
        } else if file.weak_dependency.contains(&index) {
            "weak "
        } else {
            ""
        };
        writeln!(out, "import {kind}\"{}\";", escape(import)).ok()?;
    }
    for message in &file.message_type {
        out.push('\n');
        write_message(&mut out, message, syntax == "proto3", 0)?;
    }
    for enumeration in &file.enum_type {
        out.push('\n');
        write_enum(&mut out, enumeration, 0)?;
    }
    Some(out)
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

fn write_message(out: &mut String, message: &DescriptorProto, proto3: bool, level: usize) -> Option<()> {
    if message.options.is_some() || !message.extension.is_empty() {
        return None;
    }
    let pad = indent(level);
    writeln!(out, "{pad}message {} {{", message.name()).ok()?;
    let inner = indent(level + 1);
    for nested in message.nested_type.iter().filter(|n| !is_map_entry(n)) {
        write_message(out, nested, proto3, level + 1)?;
    }
    for enumeration in &message.enum_type {
        write_enum(out, enumeration, level + 1)?;
    }
    let mut open_oneof: Option<i32> = None;
    for field in &message.field {
        let oneof = field.oneof_index.filter(|_| !field.proto3_optional());
        if open_oneof.is_some() && open_oneof != oneof {
            writeln!(out, "{inner}}}").ok()?;
            open_oneof = None;
        }
        if let (Some(index), None) = (oneof, open_oneof) {
            let declared = message.oneof_decl.get(usize::try_from(index).ok()?)?;
            if declared.options.is_some() {
                return None;
            }
            writeln!(out, "{inner}oneof {} {{", declared.name()).ok()?;
            open_oneof = Some(index);
        }
        let field_pad = if open_oneof.is_some() { indent(level + 2) } else { inner.clone() };
        write_field(out, message, field, proto3, open_oneof.is_some(), &field_pad)?;
    }
    if open_oneof.is_some() {
        writeln!(out, "{inner}}}").ok()?;
    }
    let ranges: Vec<String> = message.reserved_range.iter().map(|r| range(r.start(), r.end() - 1)).collect();
    if !ranges.is_empty() {
        writeln!(out, "{inner}reserved {};", ranges.join(", ")).ok()?;
    }
    if !message.reserved_name.is_empty() {
        let names: Vec<String> = message.reserved_name.iter().map(|n| format!("\"{}\"", escape(n))).collect();
        writeln!(out, "{inner}reserved {};", names.join(", ")).ok()?;
    }
    for extensions in &message.extension_range {
        if extensions.options.is_some() {
            return None;
        }
        writeln!(out, "{inner}extensions {};", range(extensions.start(), extensions.end() - 1)).ok()?;
    }
    writeln!(out, "{pad}}}").ok()
}

/// `N`, `N to M` or `N to max` (the last field number).
fn range(start: i32, last: i32) -> String {
    match last {
        _ if last == start => start.to_string(),
        536_870_911 => format!("{start} to max"),
        _ => format!("{start} to {last}"),
    }
}

fn is_map_entry(message: &DescriptorProto) -> bool {
    message.options.as_ref().is_some_and(|o| o.map_entry())
}

fn write_field(
    out: &mut String,
    message: &DescriptorProto,
    field: &FieldDescriptorProto,
    proto3: bool,
    in_oneof: bool,
    pad: &str,
) -> Option<()> {
    if field.extendee.is_some() || field.r#type() == Type::Group {
        return None;
    }
    let map_entry = match field.r#type() {
        Type::Message if field.label() == Label::Repeated => {
            let short = field.type_name().rsplit('.').next().unwrap_or_default();
            message.nested_type.iter().find(|n| n.name() == short && is_map_entry(n))
        }
        _ => None,
    };
    let declared = match map_entry {
        Some(entry) => {
            let (key, value) = (entry.field.first()?, entry.field.get(1)?);
            format!("map<{}, {}>", type_of(key)?, type_of(value)?)
        }
        None => {
            let label = match (field.label(), proto3, in_oneof) {
                (_, _, true) => "",
                (Label::Repeated, _, _) => "repeated ",
                (Label::Required, _, _) => "required ",
                (Label::Optional, true, _) if field.proto3_optional() => "optional ",
                (Label::Optional, true, _) => "",
                (Label::Optional, false, _) => "optional ",
            };
            format!("{label}{}", type_of(field)?)
        }
    };
    let mut options = Vec::new();
    if let Some(given) = &field.options {
        let known =
            prost_types::FieldOptions { packed: given.packed, deprecated: given.deprecated, ..Default::default() };
        if *given != known {
            return None;
        }
        if let Some(packed) = given.packed {
            options.push(format!("packed = {packed}"));
        }
        if let Some(deprecated) = given.deprecated {
            options.push(format!("deprecated = {deprecated}"));
        }
    }
    if let Some(default) = &field.default_value {
        options.push(match field.r#type() {
            Type::String => format!("default = \"{}\"", escape(default)),
            // A bytes default is kept C-escaped in the descriptor, as the text writes it.
            Type::Bytes => format!("default = \"{default}\""),
            _ => format!("default = {default}"),
        });
    }
    if let Some(json_name) = field.json_name.as_deref().filter(|j| *j != default_json_name(field.name())) {
        options.push(format!("json_name = \"{}\"", escape(json_name)));
    }
    let options = if options.is_empty() { String::new() } else { format!(" [{}]", options.join(", ")) };
    writeln!(out, "{pad}{declared} {} = {}{options};", field.name(), field.number()).ok()
}

/// A field's type as the text names it: a scalar's keyword, or a message or enum by its full name.
fn type_of(field: &FieldDescriptorProto) -> Option<String> {
    Some(match field.r#type() {
        Type::Message | Type::Enum => field.type_name().to_owned(),
        Type::Group => return None,
        scalar => scalar.as_str_name().strip_prefix("TYPE_")?.to_ascii_lowercase(),
    })
}

/// protoc's JSON name of a field: underscores dropped, the letter after each upper-cased.
fn default_json_name(name: &str) -> String {
    let mut json = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                json.extend(c.to_uppercase());
                upper = false;
            }
            c => json.push(c),
        }
    }
    json
}

fn write_enum(out: &mut String, enumeration: &EnumDescriptorProto, level: usize) -> Option<()> {
    let pad = indent(level);
    let inner = indent(level + 1);
    writeln!(out, "{pad}enum {} {{", enumeration.name()).ok()?;
    if let Some(options) = &enumeration.options {
        let known = prost_types::EnumOptions { allow_alias: options.allow_alias, ..Default::default() };
        if *options != known {
            return None;
        }
        if let Some(alias) = options.allow_alias {
            writeln!(out, "{inner}option allow_alias = {alias};").ok()?;
        }
    }
    for value in &enumeration.value {
        if value.options.is_some() {
            return None;
        }
        writeln!(out, "{inner}{} = {};", value.name(), value.number()).ok()?;
    }
    let ranges: Vec<String> = enumeration.reserved_range.iter().map(|r| range(r.start(), r.end())).collect();
    if !ranges.is_empty() {
        writeln!(out, "{inner}reserved {};", ranges.join(", ")).ok()?;
    }
    if !enumeration.reserved_name.is_empty() {
        let names: Vec<String> = enumeration.reserved_name.iter().map(|n| format!("\"{}\"", escape(n))).collect();
        writeln!(out, "{inner}reserved {};", names.join(", ")).ok()?;
    }
    writeln!(out, "{pad}}}").ok()
}

/// A string as a `.proto` string literal's contents.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            c if c.is_control() => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    let _ = write!(escaped, "\\{byte:03o}");
                }
            }
            c => escaped.push(c),
        }
    }
    escaped
}
