//! JSON Schema schemas: checked to be schemas (each keyword rill compares of the right shape, every `$ref`
//! resolvable within the document or to one of its references by name), and the rule for reading one
//! version's data with another: a reader accepts a writer's data when every document valid under the writer is
//! valid under the reader.
//!
//! That rule is decided keyword by keyword and errs on the side of refusing: where rill cannot show that the
//! reader takes everything the writer allowed (a `pattern` changed, a keyword it does not compare changed), the
//! change is refused, naming where. So an "open content model" (`additionalProperties` absent or true) behaves as
//! in Confluent's registry: a property added to it is a new constraint on data the old schema let through.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

/// Deepest nesting compared or checked.
const MAX_DEPTH: usize = 128;
/// Most steps one comparison takes: combinations within combinations multiply, and a registration must answer
/// (on a cluster every node compares it again).
const MAX_STEPS: usize = 200_000;

const TYPES: [&str; 7] = ["null", "boolean", "object", "array", "number", "string", "integer"];

/// Keywords that constrain nothing: documentation, identifiers, and the places definitions live.
const ANNOTATIONS: [&str; 18] = [
    "$schema",
    "$id",
    "id",
    "$comment",
    "$anchor",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "definitions",
    "$defs",
    "contentEncoding",
    "contentMediaType",
    "$vocabulary",
    "connect.index",
];

/// Keywords whose values are schemas, and those whose values are maps or lists of schemas.
const SCHEMA_KEYWORDS: [&str; 11] = [
    "additionalProperties",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "items",
];
const SCHEMA_MAP_KEYWORDS: [&str; 5] = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"];
const SCHEMA_LIST_KEYWORDS: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];

/// A test of a keyword's value, and what it must be.
type Shape = (fn(&Value) -> bool, &'static str);

/// The shape a keyword's value must have, for keywords whose value is no schema, with its description.
fn value_shape(key: &str) -> Option<Shape> {
    let shape: Shape = match key {
        "required" => (|v| v.as_array().is_some_and(|n| n.iter().all(Value::is_string)), "a list of property names"),
        "enum" => (Value::is_array, "a list of values"),
        "minimum" | "maximum" => (Value::is_number, "a number"),
        "multipleOf" => (|v| v.as_f64().is_some_and(|m| m > 0.0), "a number above 0"),
        "exclusiveMinimum" | "exclusiveMaximum" => {
            (|v| v.is_number() || v.is_boolean(), "a number (or, in draft 4, a boolean)")
        }
        "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties" | "maxProperties" => {
            (Value::is_u64, "a whole number from 0")
        }
        "pattern" | "format" => (Value::is_string, "a string"),
        "uniqueItems" => (Value::is_boolean, "true or false"),
        _ => return None,
    };
    Some(shape)
}

/// A JSON Schema with the documents its references name.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Value,
    references: BTreeMap<String, Value>,
}

impl JsonSchema {
    /// Parses `text` with `references` (reference name → schema text), which its `$ref`s may name.
    pub fn parse(text: &str, references: &BTreeMap<String, String>) -> Result<Self, String> {
        let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let mut documents = BTreeMap::new();
        for (name, text) in references {
            let document: Value =
                serde_json::from_str(text).map_err(|e| format!("reference {name:?} is not JSON: {e}"))?;
            documents.insert(name.clone(), document);
        }
        let schema = Self { root, references: documents };
        schema.check(&schema.root, &schema.root, "#", 0)?;
        for document in schema.references.values() {
            schema.check(document, document, "#", 0)?;
        }
        Ok(schema)
    }

    /// What makes two schemas the same: the parsed JSON written out again with its keys in order.
    pub fn identity(&self) -> String {
        self.root.to_string()
    }

    /// The schema's `title`: the record name of Confluent's RecordNameStrategy for JSON Schema.
    pub fn record_name(&self) -> Option<String> {
        self.root.get("title").and_then(Value::as_str).map(str::to_owned)
    }

    /// Why a reader with this schema cannot read everything written with `writer`, if it cannot.
    pub fn cannot_read(&self, writer: &JsonSchema) -> Option<String> {
        let mut comparison = Comparison { assumed: HashMap::new(), descent: 0, steps: 0 };
        let reader = Node { schema: &self.root, doc: &self.root, set: self };
        let written = Node { schema: &writer.root, doc: &writer.root, set: writer };
        comparison.covers(reader, written, "#", 0).err()
    }

    /// The schema `reference` (a `$ref`) names from within `doc`.
    fn resolve<'s>(&'s self, doc: &'s Value, reference: &str) -> Option<(&'s Value, &'s Value)> {
        let (base, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let document = if base.is_empty() || doc.get("$id").and_then(Value::as_str) == Some(base) {
            doc
        } else {
            self.references.get(base)?
        };
        let target = if fragment.is_empty() { document } else { document.pointer(fragment)? };
        Some((document, target))
    }

    /// Checks that `schema` (at `path` in `doc`) is a schema: the keywords rill compares of the right shape.
    fn check(&self, doc: &Value, schema: &Value, path: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: nested more than {MAX_DEPTH} deep"));
        }
        let object = match schema {
            Value::Bool(_) => return Ok(()),
            Value::Object(object) => object,
            other => return Err(format!("{path}: a schema is an object or a boolean, not {other}")),
        };
        for (key, value) in object {
            let at = format!("{path}/{key}");
            let invalid = |what: &str| Err(format!("{at}: must be {what}"));
            match key.as_str() {
                "type" => {
                    let names: Vec<&Value> = match value {
                        Value::Array(names) if !names.is_empty() => names.iter().collect(),
                        Value::String(_) => vec![value],
                        _ => return invalid("a type name or a non-empty list of them"),
                    };
                    if let Some(bad) = names.iter().find(|n| !n.as_str().is_some_and(|n| TYPES.contains(&n))) {
                        return Err(format!("{at}: {bad} is not a type ({})", TYPES.join(", ")));
                    }
                }
                "$ref" => {
                    let Some(reference) = value.as_str() else { return invalid("a string") };
                    if self.resolve(doc, reference).is_none() {
                        return Err(format!(
                            "{at}: {reference:?} does not resolve (a JSON pointer in this document, or a reference \
                             named in the schema's references)"
                        ));
                    }
                }
                key if value_shape(key).is_some() => {
                    if let Some((_, what)) = value_shape(key).filter(|(fits, _)| !fits(value)) {
                        return invalid(what);
                    }
                }
                key if SCHEMA_MAP_KEYWORDS.contains(&key) => {
                    let Some(entries) = value.as_object() else { return invalid("an object of schemas") };
                    for (name, member) in entries {
                        self.check(doc, member, &format!("{at}/{name}"), depth + 1)?;
                    }
                }
                key if SCHEMA_LIST_KEYWORDS.contains(&key) || (key == "items" && value.is_array()) => {
                    let Some(members) = value.as_array().filter(|m| !m.is_empty() || key == "prefixItems") else {
                        return invalid("a non-empty list of schemas");
                    };
                    for (index, member) in members.iter().enumerate() {
                        self.check(doc, member, &format!("{at}/{index}"), depth + 1)?;
                    }
                }
                key if SCHEMA_KEYWORDS.contains(&key) => self.check(doc, value, &at, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A schema within its document, within its schema (whose references a `$ref` may name).
#[derive(Clone, Copy)]
struct Node<'s> {
    schema: &'s Value,
    doc: &'s Value,
    set: &'s JsonSchema,
}

impl<'s> Node<'s> {
    fn with<'t>(&self, schema: &'t Value) -> Node<'t>
    where
        's: 't,
    {
        Node { schema, doc: self.doc, set: self.set }
    }

    fn object(&self) -> Option<&'s Map<String, Value>> {
        self.schema.as_object()
    }

    fn get(&self, key: &str) -> Option<&'s Value> {
        self.object().and_then(|o| o.get(key))
    }

    /// Whether it constrains nothing: `true`, `{}`, or only annotations.
    fn is_open(&self) -> bool {
        match self.schema {
            Value::Bool(b) => *b,
            Value::Object(o) => o.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
            _ => false,
        }
    }

    /// Its `$ref`'s target, if it is nothing but a reference (and annotations).
    fn pure_reference(&self) -> Option<Node<'s>> {
        let object = self.object()?;
        let reference = object.get("$ref")?.as_str()?;
        if object.keys().any(|k| k != "$ref" && !ANNOTATIONS.contains(&k.as_str())) {
            return None;
        }
        let (doc, schema) = self.set.resolve(self.doc, reference)?;
        Some(Node { schema, doc, set: self.set })
    }

    /// The schema its references lead to, followed through references to references; one that leads back to
    /// itself through references alone allows anything, as validators take it.
    fn followed(&self) -> Node<'s> {
        static OPEN: Value = Value::Bool(true);
        let mut node = *self;
        let mut passed: Vec<*const Value> = Vec::new();
        while let Some(target) = node.pure_reference() {
            if passed.contains(&(target.schema as *const Value)) || passed.len() > MAX_DEPTH {
                return Node { schema: &OPEN, ..target };
            }
            passed.push(target.schema as *const Value);
            node = target;
        }
        node
    }

    /// The types it allows (None: any), `integer` standing for itself and `number` for both.
    fn types(&self) -> Option<BTreeSet<&'s str>> {
        if let Some(values) = self.get("enum").and_then(Value::as_array) {
            return Some(values.iter().map(value_type).collect());
        }
        if let Some(value) = self.get("const") {
            return Some(BTreeSet::from([value_type(value)]));
        }
        match self.get("type")? {
            Value::String(name) => Some(BTreeSet::from([name.as_str()])),
            Value::Array(names) => Some(names.iter().filter_map(Value::as_str).collect()),
            _ => None,
        }
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether no value has a type of both sets (None: any type).
fn types_disjoint(a: Option<BTreeSet<&str>>, b: Option<BTreeSet<&str>>) -> bool {
    let (Some(a), Some(b)) = (a, b) else { return false };
    let (a, b) = (Some(a), Some(b));
    TYPES.iter().all(|t| !(allows(&a, t) && allows(&b, t)))
}

fn allows(types: &Option<BTreeSet<&str>>, name: &str) -> bool {
    match types {
        None => true,
        Some(set) => set.contains(name) || (name == "integer" && set.contains("number")),
    }
}

/// The schema without `key`.
fn without(schema: &Value, key: &str) -> Value {
    let mut copy = schema.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove(key);
    }
    copy
}

/// `schema` with `member`'s keywords added, where they do not clash (an `allOf` member, an `anyOf` branch):
/// `required` lists joined, `properties` merged; None where a keyword is in both with other values.
fn merged(schema: &Value, member: &Value) -> Option<Value> {
    let mut merged = schema.as_object().cloned().unwrap_or_default();
    match member {
        Value::Bool(true) => return Some(Value::Object(merged)),
        Value::Object(_) => {}
        _ => return None,
    }
    for (key, value) in member.as_object()? {
        match (merged.get_mut(key), key.as_str()) {
            (None, _) => {
                merged.insert(key.clone(), value.clone());
            }
            (Some(Value::Array(names)), "required") => {
                for name in value.as_array()? {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
            (Some(Value::Object(properties)), "properties") => {
                for (name, property) in value.as_object()? {
                    match properties.get(name) {
                        Some(existing) if existing != property => return None,
                        _ => {
                            properties.insert(name.clone(), property.clone());
                        }
                    }
                }
            }
            (Some(existing), _) if existing == value => {}
            _ => return None,
        }
    }
    Some(Value::Object(merged))
}

/// A bound of a number: its value and whether it is exclusive.
fn bound(node: &Node<'_>, inclusive: &str, exclusive: &str) -> Option<(f64, bool)> {
    let limit = node.get(inclusive).and_then(Value::as_f64);
    match node.get(exclusive) {
        Some(Value::Bool(true)) => limit.map(|l| (l, true)),
        Some(value) if value.is_number() => {
            let strict = value.as_f64()?;
            match limit {
                Some(l) if (inclusive == "minimum" && l > strict) || (inclusive == "maximum" && l < strict) => {
                    Some((l, false))
                }
                _ => Some((strict, true)),
            }
        }
        _ => limit.map(|l| (l, false)),
    }
}

/// Whether the writer's lower bound is at or above the reader's (for `minimum`, `minLength` and the like).
fn within_lower(reader: Option<(f64, bool)>, writer: Option<(f64, bool)>) -> bool {
    match (reader, writer) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some((r, r_strict)), Some((w, w_strict))) => w > r || (w == r && (w_strict || !r_strict)),
    }
}

fn within_upper(reader: Option<(f64, bool)>, writer: Option<(f64, bool)>) -> bool {
    within_lower(reader.map(|(v, s)| (-v, s)), writer.map(|(v, s)| (-v, s)))
}

struct Comparison {
    /// Pairs of (reader, writer) schemas reached through a `$ref` and being compared, with the descent at which
    /// they were reached: met again deeper in the documents (a recursive schema), the pair is taken as covered,
    /// the rest of the comparison deciding; met again without descending, it is not shown to be.
    assumed: HashMap<(usize, usize), usize>,
    /// How many properties and items deep the comparison is.
    descent: usize,
    steps: usize,
}

impl Comparison {
    /// Ok when every document valid under `writer` is valid under `reader`, else where and why not.
    fn covers(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: nested more than {MAX_DEPTH} deep to compare"));
        }
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(format!("{path}: too many combinations to compare (over {MAX_STEPS} steps)"));
        }
        let depth = depth + 1;
        if writer.schema == &Value::Bool(false) || reader.is_open() {
            return Ok(());
        }
        // The same schema in the same documents: whatever it allows, it allows.
        if reader.schema == writer.schema && reader.doc == writer.doc && reader.set.references == writer.set.references
        {
            return Ok(());
        }
        if reader.schema == &Value::Bool(false) {
            return Err(format!("{path}: the new schema allows nothing here"));
        }
        // References: followed; a pair met again deeper in the documents is taken as covered.
        if reader.pure_reference().is_some() || writer.pure_reference().is_some() {
            let (reader, writer) = (reader.followed(), writer.followed());
            let pair = (reader.schema as *const Value as usize, writer.schema as *const Value as usize);
            match self.assumed.get(&pair) {
                Some(&at) if self.descent > at => return Ok(()),
                Some(_) => {
                    return Err(format!(
                        "{path}: a schema that refers back to itself without a property or item between"
                    ))
                }
                None => {}
            }
            self.assumed.insert(pair, self.descent);
            let covered = self.covers(reader, writer, path, depth);
            self.assumed.remove(&pair);
            return covered;
        }
        if let Some(reference) = writer.get("$ref").and_then(Value::as_str) {
            // A reference beside other keywords: drafts up to 7 ignore the other keywords, later ones apply both,
            // so the writer allows no more than the target does either way, and the target alone is compared.
            return match writer.set.resolve(writer.doc, reference) {
                Some((doc, schema)) => self.covers(reader, Node { schema, doc, ..writer }, path, depth),
                None => Err(format!("{path}: {reference:?} does not resolve")),
            };
        }
        if let Some(reference) = reader.get("$ref").and_then(Value::as_str) {
            let rest = without(reader.schema, "$ref");
            let Some((doc, schema)) = reader.set.resolve(reader.doc, reference) else {
                return Err(format!("{path}: {reference:?} does not resolve"));
            };
            self.covers(Node { schema, doc, ..reader }, writer, path, depth)?;
            return self.covers(reader.with(&rest), writer, path, depth);
        }
        // The same combination on both sides: the rest of each decides.
        for key in ["anyOf", "oneOf"] {
            let (Some(written), Some(read)) = (writer.get(key), reader.get(key)) else { continue };
            // Equal text is the same schema when no `$ref` in it can lead somewhere else on each side.
            let same_targets = !written.to_string().contains("\"$ref\"")
                || (reader.doc == writer.doc && reader.set.references == writer.set.references);
            if written == read && same_targets {
                let (reader_rest, writer_rest) = (without(reader.schema, key), without(writer.schema, key));
                return self.covers(reader.with(&reader_rest), writer.with(&writer_rest), path, depth);
            }
        }
        // The writer's combinations.
        if let Some(members) = writer.get("allOf").and_then(Value::as_array) {
            let mut rest = without(writer.schema, "allOf");
            let mut unmerged = Vec::new();
            for member in members {
                let member_node = writer.with(member);
                let member = member_node.pure_reference().map_or(member, |n| n.schema);
                match merged(&rest, member) {
                    Some(next) => rest = next,
                    None => unmerged.push(member),
                }
            }
            let whole = self.covers(reader, writer.with(&rest), path, depth);
            return unmerged.iter().fold(whole, |found, member| {
                found.or_else(|e| self.covers(reader, writer.with(member), path, depth).map_err(|_| e))
            });
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = writer.get(key).and_then(Value::as_array) {
                let rest = without(writer.schema, key);
                if self.covers(reader, writer.with(&rest), path, depth).is_ok() {
                    return Ok(());
                }
                for (index, branch) in branches.iter().enumerate() {
                    let branch_node = writer.with(branch);
                    let branch = branch_node.pure_reference().map_or(branch, |n| n.schema);
                    let at = format!("{path}/{key}/{index}");
                    match merged(&rest, branch) {
                        Some(whole) => self.covers(reader, writer.with(&whole), &at, depth)?,
                        None => self.covers(reader, writer.with(branch), &at, depth)?,
                    }
                }
                return Ok(());
            }
        }
        // The reader's.
        if let Some(members) = reader.get("allOf").and_then(Value::as_array) {
            for (index, member) in members.iter().enumerate() {
                self.covers(reader.with(member), writer, &format!("{path}/allOf/{index}"), depth)?;
            }
            return self.covers(reader.with(&without(reader.schema, "allOf")), writer, path, depth);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = reader.get(key).and_then(Value::as_array) {
                self.covers(reader.with(&without(reader.schema, key)), writer, path, depth)?;
                let mut first_error = None;
                for (index, branch) in branches.iter().enumerate() {
                    match self.covers(reader.with(branch), writer, path, depth) {
                        // oneOf: the writer's documents must also fail every other branch, shown by their types.
                        Ok(()) if key == "oneOf" => {
                            let others = branches.iter().enumerate().filter(|(other, _)| *other != index);
                            let overlapping = others
                                .map(|(other, b)| (other, reader.with(b)))
                                .find(|(_, b)| !types_disjoint(b.followed().types(), writer.types()));
                            return match overlapping {
                                None => Ok(()),
                                Some((other, _)) => Err(format!(
                                    "{path}/oneOf: the old schema's documents may match branch {other} as well as \
                                     branch {index}, and oneOf takes exactly one"
                                )),
                            };
                        }
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                let message =
                    format!("{path}: no branch of the new schema's {key} takes everything the old schema allowed");
                return Err(match first_error {
                    Some(inner) if !inner.contains("no branch of") => format!("{message} (the first: {inner})"),
                    _ => message,
                });
            }
        }
        self.covers_keywords(reader, writer, path, depth)
    }

    /// The comparison of plain keywords, once references and combinations are unfolded.
    fn covers_keywords(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str, depth: usize) -> Result<(), String> {
        let writer_types = writer.types();
        if let Some(reader_types) =
            reader.types().filter(|_| reader.get("enum").is_none() && reader.get("const").is_none())
        {
            let uncovered: Vec<&str> = match &writer_types {
                None => vec!["any type"],
                Some(types) => types.iter().copied().filter(|t| !allows(&Some(reader_types.clone()), t)).collect(),
            };
            if !uncovered.is_empty() {
                return Err(format!(
                    "{path}: the new schema takes only {} where the old one took {}",
                    reader_types.iter().copied().collect::<Vec<_>>().join(", "),
                    uncovered.join(", ")
                ));
            }
        }
        // A writer of listed values: each must be valid under the reader.
        let written_values: Option<Vec<&Value>> = match (writer.get("enum"), writer.get("const")) {
            (_, Some(value)) => Some(vec![value]),
            (Some(Value::Array(values)), None) => Some(values.iter().collect()),
            _ => None,
        };
        if let Some(values) = written_values {
            for value in values {
                if !self.accepts(reader, value, depth) {
                    return Err(format!("{path}: the new schema does not take the old schema's value {value}"));
                }
            }
            return Ok(());
        }
        if reader.get("enum").is_some() || reader.get("const").is_some() {
            return Err(format!("{path}: the new schema takes only listed values, the old one took others"));
        }
        let reader_object = reader.object().cloned().unwrap_or_default();
        let writer_object = writer.object().cloned().unwrap_or_default();
        let may = |name: &str| allows(&writer_types, name);
        let number = may("number") || may("integer");
        for (key, value) in &reader_object {
            let key = key.as_str();
            if ANNOTATIONS.contains(&key) || key == "type" {
                continue;
            }
            let applies = match key {
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf" => number,
                "minLength" | "maxLength" | "pattern" | "format" => may("string"),
                "items" | "prefixItems" | "additionalItems" | "minItems" | "maxItems" | "uniqueItems" | "contains"
                | "unevaluatedItems" | "minContains" | "maxContains" => may("array"),
                "properties"
                | "required"
                | "additionalProperties"
                | "patternProperties"
                | "minProperties"
                | "maxProperties"
                | "propertyNames"
                | "dependencies"
                | "dependentRequired"
                | "dependentSchemas"
                | "unevaluatedProperties" => may("object"),
                _ => true,
            };
            if !applies {
                continue;
            }
            let at = format!("{path}/{key}");
            match key {
                "minimum" | "exclusiveMinimum" => {
                    if !within_lower(
                        bound(&reader, "minimum", "exclusiveMinimum"),
                        bound(&writer, "minimum", "exclusiveMinimum"),
                    ) {
                        return Err(format!("{at}: the new lower bound leaves out numbers the old schema allowed"));
                    }
                }
                "maximum" | "exclusiveMaximum" => {
                    if !within_upper(
                        bound(&reader, "maximum", "exclusiveMaximum"),
                        bound(&writer, "maximum", "exclusiveMaximum"),
                    ) {
                        return Err(format!("{at}: the new upper bound leaves out numbers the old schema allowed"));
                    }
                }
                "multipleOf" => {
                    let step = value.as_f64().unwrap_or(1.0);
                    let written = writer.get("multipleOf").and_then(Value::as_f64).or_else(|| {
                        (step == 1.0 && writer_types.as_ref().is_some_and(|t| !t.contains("number"))).then_some(1.0)
                    });
                    let ratio = written.map(|w| w / step);
                    if !ratio.is_some_and(|r| (r - r.round()).abs() < 1e-9 && r >= 1.0) {
                        return Err(format!("{at}: the old schema allowed numbers that are not multiples of {step}"));
                    }
                }
                "minLength" | "minItems" | "minProperties" => {
                    let lower = |n: &Node<'_>| n.get(key).and_then(Value::as_f64).map(|v| (v, false));
                    if !within_lower(lower(&reader), lower(&writer)) {
                        return Err(format!("{at}: raised above what the old schema allowed"));
                    }
                }
                "maxLength" | "maxItems" | "maxProperties" => {
                    let upper = |n: &Node<'_>| n.get(key).and_then(Value::as_f64).map(|v| (v, false));
                    if !within_upper(upper(&reader), upper(&writer)) {
                        return Err(format!("{at}: lowered below what the old schema allowed"));
                    }
                }
                "uniqueItems" => {
                    if value == &Value::Bool(true) && writer_object.get(key) != Some(value) {
                        return Err(format!("{at}: the old schema allowed repeated items"));
                    }
                }
                "required" => {
                    let written: Vec<&Value> = writer_object
                        .get(key)
                        .and_then(Value::as_array)
                        .map(|v| v.iter().collect())
                        .unwrap_or_default();
                    if let Some(name) = value.as_array().into_iter().flatten().find(|n| !written.contains(n)) {
                        return Err(format!("{at}: property {name} is required now and was not before"));
                    }
                }
                "properties" | "additionalProperties" => {}
                "items" | "prefixItems" | "additionalItems" => {}
                _ => {
                    if writer_object.get(key) != Some(value) {
                        return Err(format!("{at}: changed or added, and rill compares `{key}` only for equality"));
                    }
                }
            }
        }
        if may("object") {
            self.covers_properties(reader, writer, path, depth)?;
        }
        if may("array") {
            self.covers_items(reader, writer, path, depth)?;
        }
        Ok(())
    }

    fn covers_properties(
        &mut self,
        reader: Node<'_>,
        writer: Node<'_>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        let empty = Map::new();
        let reader_properties = reader.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let writer_properties = writer.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let reader_patterns = reader.get("patternProperties");
        let writer_patterns = writer.get("patternProperties");
        if reader_patterns.is_some() && reader_patterns != writer_patterns {
            return Err(format!("{path}/patternProperties: changed, and rill compares it only for equality"));
        }
        let open = Value::Bool(true);
        let reader_rest = reader.get("additionalProperties").unwrap_or(&open);
        let writer_rest = writer.get("additionalProperties").unwrap_or(&open);
        let names: BTreeSet<&String> = reader_properties.keys().chain(writer_properties.keys()).collect();
        for name in names {
            let at = format!("{path}/properties/{name}");
            let read = reader_properties.get(name).unwrap_or(reader_rest);
            let written = writer_properties.get(name).unwrap_or(writer_rest);
            if !reader_properties.contains_key(name) && reader_patterns.is_some() {
                continue; // decided by the (equal) patterns and the rest below
            }
            self.descent += 1;
            let covered = self.covers(reader.with(read), writer.with(written), &at, depth);
            self.descent -= 1;
            covered.map_err(|e| {
                if writer_properties.contains_key(name) || !writer.with(written).is_open() {
                    e
                } else {
                    format!("{e} (property {name:?} was added where the old schema allowed any property)")
                }
            })?;
        }
        self.descent += 1;
        let rest = &format!("{path}/additionalProperties");
        let covered = self.covers(reader.with(reader_rest), writer.with(writer_rest), rest, depth);
        self.descent -= 1;
        covered
    }

    fn covers_items(&mut self, reader: Node<'_>, writer: Node<'_>, path: &str, depth: usize) -> Result<(), String> {
        let open = Value::Bool(true);
        // Each side as positional schemas and the schema of the items after them.
        let layout = |node: &Node<'_>| -> (Vec<Value>, Value) {
            if let Some(prefix) = node.get("prefixItems").and_then(Value::as_array) {
                return (prefix.clone(), node.get("items").cloned().unwrap_or(Value::Bool(true)));
            }
            match node.get("items") {
                Some(Value::Array(prefix)) => {
                    (prefix.clone(), node.get("additionalItems").cloned().unwrap_or(Value::Bool(true)))
                }
                Some(items) => (Vec::new(), items.clone()),
                None => (Vec::new(), open.clone()),
            }
        };
        let (reader_prefix, reader_rest) = layout(&reader);
        let (writer_prefix, writer_rest) = layout(&writer);
        for index in 0..reader_prefix.len().max(writer_prefix.len()) {
            let read = reader_prefix.get(index).unwrap_or(&reader_rest);
            let written = writer_prefix.get(index).unwrap_or(&writer_rest);
            self.descent += 1;
            let covered = self.covers(reader.with(read), writer.with(written), &format!("{path}/items/{index}"), depth);
            self.descent -= 1;
            covered?;
        }
        self.descent += 1;
        let covered =
            self.covers(reader.with(&reader_rest), writer.with(&writer_rest), &format!("{path}/items"), depth);
        self.descent -= 1;
        covered
    }

    /// Whether `value` is valid under `reader`; false where rill cannot tell (a keyword it does not evaluate).
    fn accepts(&mut self, reader: Node<'_>, value: &Value, depth: usize) -> bool {
        self.steps += 1;
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return false;
        }
        let depth = depth + 1;
        let object = match reader.schema {
            Value::Bool(b) => return *b,
            Value::Object(object) => object,
            _ => return false,
        };
        for (key, expected) in object {
            let fits = match key.as_str() {
                key if ANNOTATIONS.contains(&key) => true,
                "$ref" => match expected.as_str().and_then(|r| reader.set.resolve(reader.doc, r)) {
                    Some((doc, schema)) => self.accepts(Node { schema, doc, ..reader }, value, depth),
                    None => false,
                },
                "type" => {
                    let named: BTreeSet<&str> = match expected {
                        Value::String(name) => BTreeSet::from([name.as_str()]),
                        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                        _ => BTreeSet::new(),
                    };
                    allows(&Some(named), value_type(value))
                }
                "enum" => expected.as_array().is_some_and(|values| values.contains(value)),
                "const" => expected == value,
                "minimum" | "exclusiveMinimum" | "maximum" | "exclusiveMaximum" => match value.as_f64() {
                    None => true,
                    Some(v) => {
                        let point = Some((v, false));
                        within_lower(bound(&reader, "minimum", "exclusiveMinimum"), point)
                            && within_upper(bound(&reader, "maximum", "exclusiveMaximum"), point)
                    }
                },
                "minLength" | "maxLength" => match value.as_str() {
                    None => true,
                    Some(text) => {
                        let length = text.chars().count() as u64;
                        let limit = expected.as_u64().unwrap_or(0);
                        if key == "minLength" {
                            length >= limit
                        } else {
                            length <= limit
                        }
                    }
                },
                "required" => match value.as_object() {
                    None => true,
                    Some(fields) => expected
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .all(|n| fields.contains_key(n)),
                },
                "properties" | "additionalProperties" => match value.as_object() {
                    None => true,
                    Some(fields) => fields.iter().all(|(name, field)| {
                        let declared = object.get("properties").and_then(|p| p.get(name));
                        let schema = declared.or(object.get("additionalProperties")).unwrap_or(&Value::Bool(true));
                        self.accepts(reader.with(schema), field, depth)
                    }),
                },
                "items" if expected.is_object() || expected.is_boolean() => match value.as_array() {
                    None => true,
                    Some(items) => items.iter().all(|item| self.accepts(reader.with(expected), item, depth)),
                },
                "allOf" | "anyOf" => {
                    let members = expected.as_array().cloned().unwrap_or_default();
                    let passing = members.iter().filter(|m| self.accepts(reader.with(m), value, depth)).count();
                    if key == "allOf" {
                        passing == members.len()
                    } else {
                        passing > 0
                    }
                }
                // "Not accepted" here may be "cannot tell", so exactly one branch, or none, cannot be told apart.
                "oneOf" | "not" => false,
                _ => false,
            };
            if !fits {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(text: &str) -> JsonSchema {
        JsonSchema::parse(text, &BTreeMap::new()).expect("a schema")
    }

    /// Why `reader` cannot read what `writer` wrote.
    fn reason(writer: &str, reader: &str) -> Option<String> {
        schema(reader).cannot_read(&schema(writer))
    }

    const CLOSED: &str = r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],
        "additionalProperties":false}"#;
    const OPEN: &str = r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#;

    #[test]
    fn only_schemas_are_taken() {
        assert!(JsonSchema::parse("{", &BTreeMap::new()).expect_err("json").contains("not JSON"));
        assert!(JsonSchema::parse("3", &BTreeMap::new()).is_err());
        let bad_type = JsonSchema::parse(r#"{"type":"text"}"#, &BTreeMap::new()).expect_err("type");
        assert!(bad_type.contains("#/type") && bad_type.contains("is not a type"), "{bad_type}");
        let nested = JsonSchema::parse(r#"{"properties":{"a":{"minLength":-1}}}"#, &BTreeMap::new());
        assert!(nested.expect_err("nested").contains("#/properties/a/minLength"));
        let dangling = JsonSchema::parse(r##"{"$ref":"#/definitions/x"}"##, &BTreeMap::new());
        assert!(dangling.expect_err("ref").contains("does not resolve"));
        assert_eq!(schema(r#"{"title":"shop.Order","b":1, "a":2}"#).record_name().as_deref(), Some("shop.Order"));
        assert_eq!(schema(r#"{"a":2,"b":1}"#).identity(), schema(r#"{ "b":1, "a":2 }"#).identity());
    }

    #[test]
    fn closed_models_take_new_optional_properties_and_open_ones_do_not() {
        let closed_more =
            CLOSED.replace(r#""id":{"type":"integer"}"#, r#""id":{"type":"integer"},"note":{"type":"string"}"#);
        assert_eq!(reason(CLOSED, &closed_more), None, "an optional property added to a closed model");
        let open_more =
            OPEN.replace(r#""id":{"type":"integer"}"#, r#""id":{"type":"integer"},"note":{"type":"string"}"#);
        let added = reason(OPEN, &open_more).expect("open");
        assert!(added.contains("#/properties/note") && added.contains("any property"), "{added}");
        assert_eq!(reason(&open_more, OPEN), None, "a property removed from an open model");
        assert!(reason(&closed_more, CLOSED).expect("closed removal").contains("#/properties/note"));
        assert_eq!(reason(CLOSED, OPEN), None, "opening a closed model");
        assert!(reason(OPEN, CLOSED).expect("closing").contains("additionalProperties"));
        let required = OPEN.replace(r#"["id"]"#, r#"["id","note"]"#);
        assert!(reason(OPEN, &required).expect("required").contains("\"note\" is required now"));
    }

    #[test]
    fn types_bounds_and_values_widen_but_do_not_narrow() {
        let int = r#"{"type":"integer","minimum":0,"maximum":10}"#;
        let num = r#"{"type":["number","null"],"minimum":0}"#;
        assert_eq!(reason(int, num), None, "integer within number, a bound dropped");
        assert!(reason(num, int).expect("narrowed").contains("takes only integer"));
        assert!(reason(int, r#"{"type":"integer","minimum":1}"#).expect("raised").contains("#/minimum"));
        assert_eq!(reason(int, r#"{"type":"integer","exclusiveMinimum":-1}"#), None);
        assert!(reason(r#"{"type":"string"}"#, r#"{"type":"string","maxLength":5}"#).is_some());
        assert_eq!(reason(r#"{"enum":["a","b"]}"#, r#"{"enum":["a","b","c"]}"#), None);
        assert!(reason(r#"{"enum":["a","b"]}"#, r#"{"enum":["a"]}"#).expect("value").contains("\"b\""));
        assert_eq!(reason(r#"{"enum":["a","b"]}"#, r#"{"type":"string","maxLength":1}"#), None);
        assert!(reason(r#"{"type":"string"}"#, r#"{"type":"string","pattern":"^a"}"#).expect("p").contains("pattern"));
        assert_eq!(reason(r#"{"type":"integer","multipleOf":4}"#, r#"{"type":"integer","multipleOf":2}"#), None);
        assert!(reason(r#"{"type":"integer","multipleOf":2}"#, r#"{"type":"integer","multipleOf":4}"#).is_some());
    }

    /// Schemas built from JSON Schema's vocabulary, each keyword with a value of its shape (so that most are
    /// schemas and get compared), nested.
    fn schema_like() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let type_name = prop::sample::select(vec!["string", "integer", "number", "object", "array", "null", "boolean"]);
        let scalar = prop_oneof![
            prop::sample::select(vec!["a", "b", "x"]).prop_map(|w| Value::String(w.to_owned())),
            (-3i64..5).prop_map(Value::from),
            Just(Value::from(0.5)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        let names = prop::collection::vec(prop::sample::select(vec!["a", "b", "x"]), 0..3);
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            type_name.clone().prop_map(|t| json!({ "type": t })),
            prop::collection::vec(type_name, 1..3).prop_map(|t| json!({ "type": t })),
            prop::sample::select(vec!["#", "#/definitions/a", "a.json"]).prop_map(|r| json!({ "$ref": r })),
            prop::collection::vec(scalar.clone(), 1..4).prop_map(|v| json!({ "enum": v })),
            scalar.clone().prop_map(|v| json!({ "const": v })),
            (
                prop::sample::select(vec![
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "minLength",
                    "maxLength",
                    "minItems",
                    "multipleOf"
                ]),
                1u64..5
            )
                .prop_map(|(k, n)| json!({ k: n })),
            names.clone().prop_map(|n| json!({ "required": n })),
            Just(json!({ "pattern": "^a" })),
            Just(json!({ "uniqueItems": true })),
        ];
        leaf.prop_recursive(4, 48, 4, move |inner| {
            let members = prop::collection::vec(inner.clone(), 1..3);
            let named = prop::collection::vec((prop::sample::select(vec!["a", "b", "x"]), inner.clone()), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
            let part = prop_oneof![
                (prop::sample::select(vec!["allOf", "anyOf", "oneOf", "prefixItems"]), members)
                    .prop_map(|(k, m)| (k, Value::Array(m))),
                (prop::sample::select(vec!["properties", "definitions", "patternProperties"]), named)
                    .prop_map(|(k, n)| (k, n)),
                (prop::sample::select(vec!["items", "not", "additionalProperties", "if", "then"]), inner.clone())
                    .prop_map(|(k, v)| (k, v)),
                (Just("required"), names.clone().prop_map(|n| json!(n))),
                (Just("type"), prop::sample::select(vec!["object", "array", "integer"]).prop_map(|t| json!(t))),
            ];
            (inner, prop::collection::vec(part, 1..4)).prop_map(|(base, parts)| {
                let mut object = base.as_object().cloned().unwrap_or_default();
                for (key, value) in parts {
                    object.insert(key.to_owned(), value);
                }
                Value::Object(object)
            })
        })
    }

    /// Documents built from the same vocabulary as the schemas.
    fn document() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            prop::sample::select(vec!["a", "b", "x", ""]).prop_map(|w| Value::String(w.to_owned())),
            (-3i64..5).prop_map(Value::from),
            Just(Value::from(0.5)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(vec!["a", "b", "x"]), inner), 0..3)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Soundness, against an independent validator (the `jsonschema` crate, draft 2020-12): when rill says a
        /// reader reads what a writer wrote, no document the writer takes is refused by the reader.
        #[test]
        fn what_is_called_compatible_is_so_for_every_document(
            writer in schema_like(),
            reader in schema_like(),
            documents in proptest::collection::vec(document(), 48),
        ) {
            let address = r#"{"type":"string"}"#;
            let references = BTreeMap::from([("a.json".to_owned(), address.to_owned())]);
            let parsed = |value: &Value| JsonSchema::parse(&value.to_string(), &references);
            let (Ok(parsed_writer), Ok(parsed_reader)) = (parsed(&writer), parsed(&reader)) else { return Ok(()) };
            if parsed_reader.cannot_read(&parsed_writer).is_some() {
                return Ok(());
            }
            struct Address(Value);
            impl jsonschema::Retrieve for Address {
                fn retrieve(
                    &self,
                    _: &jsonschema::Uri<String>,
                ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(self.0.clone())
                }
            }
            let validator = |schema: &Value| {
                jsonschema::options()
                    .with_base_uri("json-schema:///")
                    .with_retriever(Address(json!({"type": "string"})))
                    .build(schema)
                    .ok()
            };
            let (Some(writes), Some(reads)) = (validator(&writer), validator(&reader)) else { return Ok(()) };
            for document in &documents {
                proptest::prop_assert!(
                    !writes.is_valid(document) || reads.is_valid(document),
                    "called compatible, yet {} is valid under the writer {} and not under the reader {}",
                    document, writer, reader
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// Whatever two schemas a client sends, checking and comparing them answers, never panics and never
        /// runs without end; a schema always reads what it wrote itself.
        #[test]
        fn any_two_schemas_compare_without_a_panic(writer in schema_like(), reader in schema_like()) {
            let references = BTreeMap::from([("a.json".to_owned(), r#"{"type":"string"}"#.to_owned())]);
            let parsed = |value: &Value| JsonSchema::parse(&value.to_string(), &references);
            if let (Ok(writer), Ok(reader)) = (parsed(&writer), parsed(&reader)) {
                let _ = reader.cannot_read(&writer);
                proptest::prop_assert_eq!(writer.cannot_read(&writer), None);
            }
        }
    }

    #[test]
    fn what_the_soundness_property_found() {
        // A schema that is nothing but a reference to itself takes anything, as validators have it.
        assert!(reason(r##"{"$ref":"#"}"##, r#"{"required":["a"]}"#).is_some());
        // A reader's enum and type both apply to the writer's values.
        assert!(reason(r#"{"enum":[null]}"#, r#"{"enum":[null],"type":"object"}"#).is_some());
        // oneOf takes exactly one branch: a document both branches take is refused by it.
        let both = r#"{"oneOf":[{"minimum":1},{"minimum":1}]}"#;
        assert!(reason(r#"{"type":"array"}"#, both).expect("overlapping").contains("exactly one"));
        let disjoint = r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#;
        assert_eq!(reason(r#"{"type":"integer","minimum":0}"#, disjoint), None, "the branches' types tell");
        let same_union = r#"{"oneOf":[{"minimum":1},{"minimum":1}],"title":"t"}"#;
        assert_eq!(reason(both, same_union), None, "the same oneOf on both sides");
    }

    #[test]
    fn a_comparison_that_would_multiply_without_end_is_cut_off() {
        let mut nested = r#"{"type":"integer"}"#.to_owned();
        for _ in 0..40 {
            nested = format!(r#"{{"anyOf":[{nested},{nested},{{"type":"string"}}]}}"#);
            if nested.len() > 200_000 {
                break;
            }
        }
        assert_eq!(reason(&nested, &nested), None, "the same schema");
        let wider = nested.replace(r#""type":"string""#, r#""type":["string","boolean"]"#);
        let reason = reason(&nested, &wider).expect("not shown to cover within the steps");
        assert!(reason.contains("steps"), "{reason}");
    }

    #[test]
    fn references_combinations_and_arrays() {
        let v1 = r##"{"definitions":{"line":{"type":"object","properties":{"n":{"type":"integer"}}}},
            "type":"array","items":{"$ref":"#/definitions/line"}}"##;
        let v2 = v1.replace(r#""n":{"type":"integer"}"#, r#""n":{"type":"number"}"#);
        assert_eq!(reason(v1, &v2), None);
        assert!(reason(&v2, v1).expect("narrowed").contains("#/items/properties/n"));
        let either = r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#;
        assert_eq!(reason(r#"{"type":"string"}"#, either), None, "a branch added");
        assert!(reason(either, r#"{"type":"string"}"#).expect("branch").contains("anyOf/1"));
        let all = r#"{"allOf":[{"type":"object"},{"required":["id"]}],"properties":{"id":{"type":"integer"}}}"#;
        assert_eq!(reason(all, OPEN), None, "allOf members merged");
        let recursive = r##"{"type":"object","properties":{"next":{"$ref":"#"},"v":{"type":"integer"}}}"##;
        assert_eq!(reason(recursive, recursive), None, "a recursive schema against itself");
        let wider = recursive.replace(r#""v":{"type":"integer"}"#, r#""v":{"type":"number"}"#);
        assert_eq!(reason(recursive, &wider), None);
        assert!(reason(&wider, recursive).is_some());
        let tuple = r#"{"type":"array","prefixItems":[{"type":"string"}],"items":false}"#;
        assert_eq!(reason(tuple, r#"{"type":"array","items":{"type":"string"}}"#), None);
        assert!(reason(r#"{"type":"array"}"#, tuple).is_some());
        let customer = r#"{"type":"object","properties":{"name":{"type":"string"}}}"#;
        let references = BTreeMap::from([("customer.json".to_owned(), customer.to_owned())]);
        let order = r#"{"type":"object","properties":{"customer":{"$ref":"customer.json"}}}"#;
        let with_reference = JsonSchema::parse(order, &references).expect("resolved");
        assert_eq!(with_reference.cannot_read(&with_reference), None);
        assert!(JsonSchema::parse(order, &BTreeMap::new()).is_err(), "a reference not named");
    }
}
