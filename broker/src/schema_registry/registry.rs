//! The registry itself: subjects, their versions, the schemas by id, and the compatibility levels, with every
//! operation of Confluent's API as a pure function of this state, so that a single node's file and a cluster's
//! replicated metadata apply the same changes the same way.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::schema::{ParsedSchema, SchemaDefinition, SchemaReference, SchemaType};

/// Most subjects held; a registration of one more is refused.
pub const MAX_SUBJECTS: usize = 10_000;
/// Most versions of one subject.
pub const MAX_VERSIONS: usize = 1_000;
/// Largest schema text taken.
pub const MAX_SCHEMA_BYTES: usize = 256 << 10;
/// Longest subject name.
pub const MAX_SUBJECT_BYTES: usize = 255;
/// Most schemas one schema may reach through its references, and how deep.
pub const MAX_REFERENCES: usize = 256;
pub const MAX_REFERENCE_DEPTH: usize = 16;

/// A compatibility level (Confluent's names): which earlier versions a new one must be readable with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const NAMES: &'static str =
        "NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE";

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive | Compatibility::ForwardTransitive | Compatibility::FullTransitive
        )
    }

    /// Whether data written with `earlier` must be readable with `new` (backward), and the other way (forward).
    fn directions(self) -> (bool, bool) {
        match self {
            Compatibility::None => (false, false),
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
        }
    }
}

/// A registry's or subject's mode (Confluent's): `READWRITE` as usual; `READONLY` refuses every change;
/// `IMPORT` takes registrations that name their id and version (copying another registry's schemas with the ids
/// its records carry), without compatibility checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    #[default]
    Readwrite,
    Readonly,
    Import,
}

impl Mode {
    pub const NAMES: &'static str = "READWRITE, READONLY or IMPORT";

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase())).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }

    fn is_default(&self) -> bool {
        *self == Mode::Readwrite
    }
}

/// A schema held under an id: the text as first registered, its kind and references, and its identity (the
/// parsed schema written out again, so that whitespace and key order do not make two schemas of one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSchema {
    pub text: String,
    identity: String,
    #[serde(default, skip_serializing_if = "SchemaType::is_avro")]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
}

impl StoredSchema {
    pub fn definition(&self) -> SchemaDefinition {
        SchemaDefinition::new(self.text.clone(), self.schema_type, self.references.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectVersion {
    pub version: u32,
    pub id: u32,
    /// Soft-deleted: hidden from reads (but `deleted=true` ones) and from compatibility checks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub versions: Vec<SubjectVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

impl Subject {
    fn live(&self) -> impl DoubleEndedIterator<Item = &SubjectVersion> {
        self.versions.iter().filter(|v| !v.deleted)
    }

    fn is_live(&self) -> bool {
        self.live().next().is_some()
    }
}

/// The whole registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRegistry {
    pub schemas: BTreeMap<u32, StoredSchema>,
    pub subjects: BTreeMap<String, Subject>,
    pub compatibility: Compatibility,
    pub next_id: u32,
    #[serde(default, skip_serializing_if = "Mode::is_default")]
    pub mode: Mode,
    /// On a cluster, the nonces of the last changes applied: how the node that proposed one knows it has.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    recent_changes: VecDeque<u64>,
    /// Record names found, not the registry's state (never stored, never compared).
    #[serde(skip)]
    record_names: RecordNames,
}

/// Most record names kept; past it the cache starts over.
const MAX_RECORD_NAMES: usize = 10_000;

/// The record names of (schema id, message indexes) already found: a RecordNameStrategy topic's schema id check
/// asks for one with every produced batch, and finding it parses the schema (a Protobuf file is compiled). Kept
/// for good, since an id names one schema forever; a copy of the registry starts without them.
#[derive(Debug, Default)]
struct RecordNames(std::sync::Mutex<NamesByMessage>);

/// A record name (or none) by schema id and message indexes.
type NamesByMessage = std::collections::HashMap<(u32, Vec<usize>), Option<String>>;

impl RecordNames {
    fn lock(&self) -> std::sync::MutexGuard<'_, NamesByMessage> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for RecordNames {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for RecordNames {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RecordNames {}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self {
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
            compatibility: Compatibility::Backward,
            next_id: 1,
            mode: Mode::Readwrite,
            recent_changes: VecDeque::new(),
            record_names: RecordNames::default(),
        }
    }
}

/// Nonces of applied changes remembered.
const RECENT_CHANGES: usize = 256;

/// A change of the registry, as a cluster's metadata command carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChange {
    Register {
        subject: String,
        schema: String,
        /// AVRO when absent: what a node that knew only Avro wrote.
        #[serde(default, skip_serializing_if = "SchemaType::is_avro")]
        schema_type: SchemaType,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<SchemaReference>,
        /// In IMPORT mode: the id and version the schema keeps (another registry's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
    },
    DeleteSubject {
        subject: String,
        permanent: bool,
    },
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
    },
    SetCompatibility {
        subject: Option<String>,
        level: Compatibility,
    },
    ClearCompatibility {
        subject: String,
    },
    SetMode {
        subject: Option<String>,
        mode: Mode,
        force: bool,
    },
    ClearMode {
        subject: String,
    },
}

impl SchemaChange {
    /// Applies the change to `registry`; Ok(false) when it changed nothing (a schema the subject already has).
    pub fn apply(&self, registry: &mut SchemaRegistry) -> Result<bool, SchemaError> {
        match self {
            SchemaChange::Register { subject, schema, schema_type, references, id: None, version: None } => {
                registry.check_writable(subject)?;
                let definition = SchemaDefinition::new(schema.clone(), *schema_type, references.clone());
                registry.register(subject, &definition).map(|r| r.is_new)
            }
            SchemaChange::Register { subject, schema, schema_type, references, id, version } => {
                let definition = SchemaDefinition::new(schema.clone(), *schema_type, references.clone());
                registry.import(subject, &definition, *id, *version).map(|r| r.is_new)
            }
            SchemaChange::SetMode { subject, mode, force } => {
                registry.set_mode(subject.as_deref(), *mode, *force).map(|()| true)
            }
            SchemaChange::ClearMode { subject } => registry.clear_mode(subject).map(|_| true),
            SchemaChange::DeleteSubject { subject, permanent } => {
                registry.check_writable(subject)?;
                registry.delete_subject(subject, *permanent).map(|_| true)
            }
            SchemaChange::DeleteVersion { subject, version, permanent } => {
                registry.check_writable(subject)?;
                registry.delete_version(subject, VersionRef::Number(*version), *permanent).map(|_| true)
            }
            SchemaChange::SetCompatibility { subject, level } => {
                registry.check_writable(subject.as_deref().unwrap_or(""))?;
                registry.set_compatibility(subject.as_deref(), *level).map(|()| true)
            }
            SchemaChange::ClearCompatibility { subject } => {
                registry.check_writable(subject)?;
                registry.clear_compatibility(subject).map(|_| true)
            }
        }
    }
}

/// Why a request is refused, with Confluent's error code and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound { subject: String, version: String },
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectCompatibility(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level {0:?}: {names}", names = Compatibility::NAMES)]
    InvalidCompatibility(String),
    #[error("Invalid subject {0:?}: 1 to 255 characters, no control characters")]
    InvalidSubject(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" ({level}): {reason}"
    )]
    Incompatible { subject: String, level: String, reason: String },
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error(
        "One or more references exist to the schema {{subject={subject}, version={version}}}: schema ids {ids:?} \
         reference it; delete them first"
    )]
    ReferenceExists { subject: String, version: u32, ids: Vec<u32> },
}

impl SchemaError {
    /// Confluent's `error_code` for it; its first three digits are the HTTP status.
    pub fn code(&self) -> u32 {
        match self {
            SchemaError::SubjectNotFound(_) => 40401,
            SchemaError::VersionNotFound { .. } => 40402,
            SchemaError::SchemaNotFound(_) => 40403,
            SchemaError::SubjectSoftDeleted(_) => 40404,
            SchemaError::SubjectNotSoftDeleted(_) => 40405,
            SchemaError::VersionNotSoftDeleted { .. } => 40407,
            SchemaError::NoSubjectCompatibility(_) => 40408,
            SchemaError::InvalidSchema(_) | SchemaError::InvalidSubject(_) | SchemaError::TooMany(_) => 42201,
            SchemaError::InvalidVersion(_) => 42202,
            SchemaError::InvalidCompatibility(_) => 42203,
            SchemaError::Incompatible { .. } => 409,
            SchemaError::NotPermitted(_) => 42205,
            SchemaError::ReferenceExists { .. } => 42206,
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.code() {
            409 => 409,
            code => (code / 100) as u16,
        }
    }
}

/// A version as the API names it: a number, or `latest` (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Number(u32),
    Latest,
}

impl VersionRef {
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        if text == "latest" || text == "-1" {
            return Ok(VersionRef::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionRef::Number(n)),
            _ => Err(SchemaError::InvalidVersion(text.to_owned())),
        }
    }
}

/// A version found, with its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub text: String,
    pub schema_type: SchemaType,
    pub references: Vec<SchemaReference>,
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: u32,
    pub version: u32,
    /// False when the subject already had the schema (nothing changed).
    pub is_new: bool,
}

fn stored(schema: &SchemaDefinition, identity: String) -> StoredSchema {
    StoredSchema {
        text: schema.text.clone(),
        identity,
        schema_type: schema.schema_type,
        references: schema.references.clone(),
    }
}

pub fn check_subject(subject: &str) -> Result<(), SchemaError> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES || subject.chars().any(char::is_control) {
        return Err(SchemaError::InvalidSubject(subject.to_owned()));
    }
    Ok(())
}

impl SchemaRegistry {
    /// Applies a cluster's change and remembers its nonce (also when it changed nothing or was refused, so that
    /// the node waiting on it stops waiting).
    pub fn apply_replicated(&mut self, nonce: u64, change: &SchemaChange) -> Result<bool, SchemaError> {
        let mut next = self.clone();
        let applied = change.apply(&mut next);
        if applied.is_ok() {
            *self = next;
        }
        self.recent_changes.push_back(nonce);
        if self.recent_changes.len() > RECENT_CHANGES {
            self.recent_changes.pop_front();
        }
        applied
    }

    pub fn has_applied(&self, nonce: u64) -> bool {
        self.recent_changes.contains(&nonce)
    }

    pub fn is_empty(&self) -> bool {
        *self == SchemaRegistry::default()
    }

    fn subject(&self, name: &str) -> Result<&Subject, SchemaError> {
        self.subjects.get(name).ok_or_else(|| SchemaError::SubjectNotFound(name.to_owned()))
    }

    /// A subject with a live version (or any, with `deleted`).
    fn readable_subject(&self, name: &str, deleted: bool) -> Result<&Subject, SchemaError> {
        match self.subject(name)? {
            subject if deleted || subject.is_live() => Ok(subject),
            _ => Err(SchemaError::SubjectNotFound(name.to_owned())),
        }
    }

    pub fn effective_mode(&self, subject: &str) -> Mode {
        self.subjects.get(subject).and_then(|s| s.mode).unwrap_or(self.mode)
    }

    /// A change of `subject` outside IMPORT's registrations: refused while it (or the registry) is READONLY, and
    /// a plain registration is refused while IMPORT (it would take an id an import may still need).
    fn check_writable(&self, subject: &str) -> Result<(), SchemaError> {
        match self.effective_mode(subject) {
            Mode::Readwrite => Ok(()),
            Mode::Readonly => Err(SchemaError::NotPermitted(format!(
                "Subject '{subject}' is in read-only mode: set the mode to READWRITE to change it"
            ))),
            Mode::Import => Err(SchemaError::NotPermitted(format!(
                "Subject '{subject}' is in import mode: registrations must name their id (and version); set the \
                 mode to READWRITE to register otherwise"
            ))),
        }
    }

    /// Registers `text` under `subject` with the `id` (and `version`) it had in another registry, in IMPORT mode:
    /// no compatibility check; the id must be free or already hold this very schema.
    pub fn import(
        &mut self,
        subject: &str,
        schema: &SchemaDefinition,
        id: Option<u32>,
        version: Option<u32>,
    ) -> Result<Registered, SchemaError> {
        check_subject(subject)?;
        if self.effective_mode(subject) != Mode::Import {
            return Err(SchemaError::NotPermitted(format!(
                "a schema id or version may be given only in IMPORT mode; subject '{subject}' is in {} mode",
                self.effective_mode(subject).name()
            )));
        }
        let Some(id) = id.filter(|id| (1..=i32::MAX as u32).contains(id)) else {
            return Err(SchemaError::NotPermitted("an import names its schema id (1 to 2^31-1)".into()));
        };
        let (_, identity) = self.parse(schema)?;
        match self.schemas.get(&id) {
            Some(stored) if stored.identity != identity => {
                return Err(SchemaError::NotPermitted(format!(
                    "schema id {id} already holds another schema: an import may not overwrite it"
                )));
            }
            Some(_) => {}
            None => {
                if let Some((other, _)) = self.schemas.iter().find(|(_, s)| s.identity == identity) {
                    return Err(SchemaError::NotPermitted(format!(
                        "this schema is already held under id {other}: one schema, one id"
                    )));
                }
            }
        }
        let existing = self.subjects.get(subject).and_then(|s| s.versions.iter().find(|v| v.id == id).cloned());
        if let Some(existing) = existing.filter(|v| version.is_none_or(|n| n == v.version)) {
            return Ok(Registered { id, version: existing.version, is_new: false });
        }
        let latest = self.subjects.get(subject).and_then(|s| s.versions.last()).map_or(0, |v| v.version);
        let version = version.unwrap_or(latest + 1);
        if version <= latest {
            return Err(SchemaError::InvalidVersion(format!(
                "{version} (subject '{subject}' is at version {latest}: an import adds versions after it)"
            )));
        }
        self.check_room_for(subject)?;
        self.schemas.entry(id).or_insert_with(|| stored(schema, identity));
        self.next_id = self.next_id.max(id + 1);
        let entry = self.subjects.entry(subject.to_owned()).or_default();
        entry.versions.push(SubjectVersion { version, id, deleted: false });
        Ok(Registered { id, version, is_new: true })
    }

    /// Sets the mode of the registry or of `subject`. IMPORT for the whole registry needs it empty (or `force`),
    /// as Confluent's does: ids an import brings must not meet ids already given.
    pub fn set_mode(&mut self, subject: Option<&str>, mode: Mode, force: bool) -> Result<(), SchemaError> {
        match subject {
            None => {
                if mode == Mode::Import && !force && !self.schemas.is_empty() {
                    return Err(SchemaError::NotPermitted(
                        "Cannot import since found existing subjects: import into an empty registry, or pass \
                         force=true"
                            .into(),
                    ));
                }
                self.mode = mode;
            }
            Some(subject) => {
                self.subject_entry(subject)?.mode = Some(mode);
            }
        }
        Ok(())
    }

    /// Removes `subject`'s own mode (it follows the registry's again); returns the mode it had.
    pub fn clear_mode(&mut self, subject: &str) -> Result<Mode, SchemaError> {
        let found = self.subjects.get_mut(subject).ok_or_else(|| SchemaError::SubjectNotFound(subject.to_owned()))?;
        let mode = found.mode.take().unwrap_or(self.mode);
        self.forget_if_empty(subject);
        Ok(mode)
    }

    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.subjects.get(subject).and_then(|s| s.compatibility).unwrap_or(self.compatibility)
    }

    /// The subjects with a live version (all, with `deleted`), optionally those starting with `prefix`.
    pub fn subject_names(&self, deleted: bool, prefix: &str) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(name, subject)| name.starts_with(prefix) && (deleted || subject.is_live()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, SchemaError> {
        let found = self.readable_subject(subject, deleted)?;
        Ok(found.versions.iter().filter(|v| deleted || !v.deleted).map(|v| v.version).collect())
    }

    pub fn version(&self, subject: &str, version: VersionRef, deleted: bool) -> Result<FoundVersion, SchemaError> {
        let found = self.readable_subject(subject, deleted)?;
        let mut candidates = found.versions.iter().filter(|v| deleted || !v.deleted);
        let picked = match version {
            VersionRef::Latest => candidates.next_back(),
            VersionRef::Number(n) => candidates.find(|v| v.version == n),
        };
        let picked = picked.ok_or_else(|| SchemaError::VersionNotFound {
            subject: subject.to_owned(),
            version: match version {
                VersionRef::Latest => "latest".to_owned(),
                VersionRef::Number(n) => n.to_string(),
            },
        })?;
        Ok(self.found(subject, picked))
    }

    fn found(&self, subject: &str, version: &SubjectVersion) -> FoundVersion {
        let definition = self.schemas.get(&version.id).map(StoredSchema::definition).unwrap_or_default();
        FoundVersion {
            subject: subject.to_owned(),
            version: version.version,
            id: version.id,
            text: definition.text,
            schema_type: definition.schema_type,
            references: definition.references,
        }
    }

    /// `schema`'s references resolved to their texts by name, the references of references included.
    fn resolve_references(&self, references: &[SchemaReference]) -> Result<BTreeMap<String, String>, SchemaError> {
        let mut resolved = BTreeMap::new();
        let mut pending: Vec<(&SchemaReference, usize)> = references.iter().map(|r| (r, 0)).collect();
        while let Some((reference, depth)) = pending.pop() {
            if depth >= MAX_REFERENCE_DEPTH || resolved.len() >= MAX_REFERENCES {
                return Err(SchemaError::InvalidSchema(format!(
                    "its references reach more than {MAX_REFERENCES} schemas or {MAX_REFERENCE_DEPTH} levels deep"
                )));
            }
            if reference.name.is_empty() {
                return Err(SchemaError::InvalidSchema("a reference has an empty name".into()));
            }
            if resolved.contains_key(&reference.name) {
                continue;
            }
            let found = self
                .subjects
                .get(&reference.subject)
                .and_then(|s| s.versions.iter().find(|v| v.version == reference.version))
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(|| {
                    SchemaError::InvalidSchema(format!(
                        "reference {:?}: subject {:?} has no version {}",
                        reference.name, reference.subject, reference.version
                    ))
                })?;
            resolved.insert(reference.name.clone(), found.text.clone());
            pending.extend(found.references.iter().map(|r| (r, depth + 1)));
        }
        Ok(resolved)
    }

    /// `schema` parsed, with its identity.
    pub fn parse(&self, schema: &SchemaDefinition) -> Result<(ParsedSchema, String), SchemaError> {
        if schema.text.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::InvalidSchema(format!("over {MAX_SCHEMA_BYTES} bytes")));
        }
        let references = self.resolve_references(&schema.references)?;
        let parsed = ParsedSchema::parse(schema.schema_type, &schema.text, &references)
            .map_err(|e| SchemaError::InvalidSchema(format!("{} schema: {e}", schema.schema_type.name())))?;
        let identity = parsed.identity(&schema.references).map_err(SchemaError::InvalidSchema)?;
        Ok((parsed, identity))
    }

    /// Schema `id` as `.proto` text, if it is a Protobuf file registered as a base64 descriptor and the text
    /// compiles back to the same file: Confluent's registry answers such a schema as text.
    pub fn protobuf_text(&self, id: u32) -> Option<String> {
        let stored = self.schemas.get(&id)?;
        if stored.schema_type != SchemaType::Protobuf || !super::protobuf::is_base64(&stored.text) {
            return None;
        }
        let references = self.resolve_references(&stored.references).ok()?;
        super::protobuf::ProtobufSchema::parse(&stored.text, &references).ok()?.text(&references)
    }

    /// Schema `id` parsed, if it (still) parses.
    pub fn parsed(&self, id: u32) -> Option<ParsedSchema> {
        self.parse(&self.schemas.get(&id)?.definition()).ok().map(|(parsed, _)| parsed)
    }

    /// The ids of schemas, named by a live version, that reference `subject`'s `version`.
    pub fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        let live: std::collections::BTreeSet<u32> =
            self.subjects.values().flat_map(|s| s.live().map(|v| v.id)).collect();
        self.schemas
            .iter()
            .filter(|(id, stored)| {
                live.contains(id) && stored.references.iter().any(|r| r.subject == subject && r.version == version)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Refuses to delete `subject`'s `versions` while a live schema references one of them.
    fn check_unreferenced(&self, subject: &str, versions: impl IntoIterator<Item = u32>) -> Result<(), SchemaError> {
        for version in versions {
            let ids = self.referenced_by(subject, version);
            if !ids.is_empty() {
                return Err(SchemaError::ReferenceExists { subject: subject.to_owned(), version, ids });
            }
        }
        Ok(())
    }

    pub fn schema(&self, id: u32) -> Result<&StoredSchema, SchemaError> {
        self.schemas.get(&id).ok_or_else(|| SchemaError::SchemaNotFound(id.to_string()))
    }

    /// The record name of schema `id` (an Avro named type's full name, a JSON Schema's title, the Protobuf
    /// message `message_indexes` point to), if it has one.
    pub fn record_name(&self, id: u32, message_indexes: &[usize]) -> Option<String> {
        let key = (id, message_indexes.to_vec());
        if let Some(name) = self.record_names.lock().get(&key) {
            return name.clone();
        }
        let name = self.parsed(id)?.record_name(message_indexes);
        let mut names = self.record_names.lock();
        if names.len() >= MAX_RECORD_NAMES {
            names.clear();
        }
        names.insert(key, name.clone());
        name
    }

    /// The (subject, version) pairs holding schema `id`.
    pub fn usages(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>, SchemaError> {
        self.schema(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(name, subject)| {
                subject
                    .versions
                    .iter()
                    .filter(move |v| v.id == id && (deleted || !v.deleted))
                    .map(|v| (name.clone(), v.version))
            })
            .collect())
    }

    /// The live version of `subject` holding `text`'s schema, if any.
    pub fn lookup(
        &self,
        subject: &str,
        schema: impl Into<SchemaDefinition>,
        deleted: bool,
    ) -> Result<FoundVersion, SchemaError> {
        let found = self.readable_subject(subject, deleted)?;
        let (_, identity) = self.parse(&schema.into())?;
        let version = found
            .versions
            .iter()
            .filter(|v| deleted || !v.deleted)
            .find(|v| self.schemas.get(&v.id).is_some_and(|s| s.identity == identity))
            .ok_or_else(|| SchemaError::SchemaNotFound(format!("for subject '{subject}'")))?;
        Ok(self.found(subject, version))
    }

    /// Why `new` may not follow the live versions of `subject` at its compatibility level, if it may not.
    fn incompatibility(
        &self,
        subject: &str,
        new: &ParsedSchema,
        against: Option<u32>,
    ) -> Result<Option<String>, SchemaError> {
        let level = self.effective_compatibility(subject);
        let (backward, forward) = level.directions();
        let Some(found) = self.subjects.get(subject) else { return Ok(None) };
        let live: Vec<&SubjectVersion> = found.live().collect();
        let earlier: Vec<&SubjectVersion> = match against {
            Some(version) => live.into_iter().filter(|v| v.version == version).collect(),
            None if level.is_transitive() => live,
            None => live.into_iter().last().into_iter().collect(),
        };
        for version in earlier {
            let Some(stored) = self.schemas.get(&version.id) else { continue };
            let (old, _) = self.parse(&stored.definition())?;
            if backward {
                if let Some(why) = new.cannot_read(&old) {
                    return Ok(Some(format!(
                        "the new schema cannot read data written with version {}: {why}",
                        version.version
                    )));
                }
            }
            if forward {
                if let Some(why) = old.cannot_read(new) {
                    return Ok(Some(format!(
                        "version {} cannot read data written with the new schema: {why}",
                        version.version
                    )));
                }
            }
        }
        Ok(None)
    }

    /// Whether `text` may follow `subject`'s version (all those its level checks, for `None`).
    pub fn is_compatible(
        &self,
        subject: &str,
        version: Option<VersionRef>,
        schema: impl Into<SchemaDefinition>,
    ) -> Result<Result<(), String>, SchemaError> {
        let (new, _) = self.parse(&schema.into())?;
        let against = match version {
            Some(version) => Some(self.version(subject, version, false)?.version),
            None => None,
        };
        Ok(self.incompatibility(subject, &new, against)?.map_or(Ok(()), Err))
    }

    /// Registers `text` under `subject`: its existing version if the subject has the schema, else a new version
    /// (the schema's existing id if another subject has it, else a new one), after the compatibility check.
    pub fn register(&mut self, subject: &str, schema: impl Into<SchemaDefinition>) -> Result<Registered, SchemaError> {
        check_subject(subject)?;
        let definition = schema.into();
        let (schema, identity) = self.parse(&definition)?;
        if let Some(found) = self.subjects.get(subject) {
            let existing = found.live().find(|v| self.schemas.get(&v.id).is_some_and(|s| s.identity == identity));
            if let Some(existing) = existing {
                return Ok(Registered { id: existing.id, version: existing.version, is_new: false });
            }
        }
        if let Some(reason) = self.incompatibility(subject, &schema, None)? {
            let level = self.effective_compatibility(subject).name().to_owned();
            return Err(SchemaError::Incompatible { subject: subject.to_owned(), level, reason });
        }
        self.check_room_for(subject)?;
        if self.subjects.get(subject).is_some_and(|s| s.versions.len() >= MAX_VERSIONS) {
            return Err(SchemaError::TooMany(format!("subject '{subject}' has {MAX_VERSIONS} versions, its most")));
        }
        let id = match self.schemas.iter().find(|(_, s)| s.identity == identity) {
            Some((id, _)) => *id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.schemas.insert(id, stored(&definition, identity));
                id
            }
        };
        let entry = self.subjects.entry(subject.to_owned()).or_default();
        let version = entry.versions.last().map_or(1, |v| v.version + 1);
        entry.versions.push(SubjectVersion { version, id, deleted: false });
        Ok(Registered { id, version, is_new: true })
    }

    /// Deletes `subject`'s versions: soft (hidden) or, after a soft delete, permanent. Returns the versions.
    pub fn delete_subject(&mut self, subject: &str, permanent: bool) -> Result<Vec<u32>, SchemaError> {
        let found = self.subject(subject)?;
        let versions: Vec<u32> = match (permanent, found.is_live()) {
            (true, true) => return Err(SchemaError::SubjectNotSoftDeleted(subject.to_owned())),
            (false, false) => return Err(SchemaError::SubjectSoftDeleted(subject.to_owned())),
            (true, false) => found.versions.iter().map(|v| v.version).collect(),
            (false, true) => found.live().map(|v| v.version).collect(),
        };
        self.check_unreferenced(subject, versions.iter().copied())?;
        if permanent {
            self.subjects.remove(subject);
        } else if let Some(found) = self.subjects.get_mut(subject) {
            found.versions.iter_mut().for_each(|v| v.deleted = true);
        }
        self.forget_unused_schemas();
        Ok(versions)
    }

    /// Deletes one version of `subject`, soft or (after a soft delete) permanent.
    pub fn delete_version(&mut self, subject: &str, version: VersionRef, permanent: bool) -> Result<u32, SchemaError> {
        let number = self.version(subject, version, permanent)?.version;
        self.check_unreferenced(subject, [number])?;
        let found = self.subjects.get_mut(subject).ok_or_else(|| SchemaError::SubjectNotFound(subject.to_owned()))?;
        let at = found
            .versions
            .iter()
            .position(|v| v.version == number)
            .ok_or_else(|| SchemaError::VersionNotFound { subject: subject.to_owned(), version: number.to_string() })?;
        if permanent {
            if !found.versions[at].deleted {
                return Err(SchemaError::VersionNotSoftDeleted { subject: subject.to_owned(), version: number });
            }
            found.versions.remove(at);
            self.forget_if_empty(subject);
        } else {
            found.versions[at].deleted = true;
        }
        self.forget_unused_schemas();
        Ok(number)
    }

    /// `subject`'s entry, made if need be (a level or mode set before its first version), within the limit.
    fn subject_entry(&mut self, subject: &str) -> Result<&mut Subject, SchemaError> {
        check_subject(subject)?;
        self.check_room_for(subject)?;
        Ok(self.subjects.entry(subject.to_owned()).or_default())
    }

    /// Refuses a new subject past [`MAX_SUBJECTS`]; one the registry holds always has room.
    fn check_room_for(&self, subject: &str) -> Result<(), SchemaError> {
        if !self.subjects.contains_key(subject) && self.subjects.len() >= MAX_SUBJECTS {
            return Err(SchemaError::TooMany(format!("the registry holds {MAX_SUBJECTS} subjects, its most")));
        }
        Ok(())
    }

    /// Drops `subject`'s entry once it holds nothing: no version, no level or mode of its own.
    fn forget_if_empty(&mut self, subject: &str) {
        let is_empty = self
            .subjects
            .get(subject)
            .is_some_and(|s| s.versions.is_empty() && s.compatibility.is_none() && s.mode.is_none());
        if is_empty {
            self.subjects.remove(subject);
        }
    }

    /// Schemas no version names any more (permanently deleted) are forgotten; ids are never given again.
    fn forget_unused_schemas(&mut self) {
        let used: std::collections::BTreeSet<u32> =
            self.subjects.values().flat_map(|s| s.versions.iter().map(|v| v.id)).collect();
        self.schemas.retain(|id, _| used.contains(id));
    }

    pub fn set_compatibility(&mut self, subject: Option<&str>, level: Compatibility) -> Result<(), SchemaError> {
        match subject {
            None => self.compatibility = level,
            Some(subject) => {
                self.subject_entry(subject)?.compatibility = Some(level);
            }
        }
        Ok(())
    }

    /// Removes `subject`'s own level (it follows the global one again); returns the level it had.
    pub fn clear_compatibility(&mut self, subject: &str) -> Result<Compatibility, SchemaError> {
        let found = self.subjects.get_mut(subject).ok_or_else(|| SchemaError::SubjectNotFound(subject.to_owned()))?;
        let level =
            found.compatibility.take().ok_or_else(|| SchemaError::NoSubjectCompatibility(subject.to_owned()))?;
        self.forget_if_empty(subject);
        Ok(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{fields}]}}"#)
    }

    const ID: &str = r#"{"name":"id","type":"long"}"#;
    const NOTE_WITH_DEFAULT: &str = r#"{"name":"note","type":"string","default":""}"#;
    const NOTE: &str = r#"{"name":"note","type":"string"}"#;

    #[test]
    fn a_schema_registered_twice_keeps_its_version_and_another_subject_shares_its_id() {
        let mut registry = SchemaRegistry::default();
        let first = registry.register("orders-value", &record(ID)).expect("registered");
        assert_eq!(first, Registered { id: 1, version: 1, is_new: true });
        let spaced = format!(" {} ", record(ID).replace(',', ", "));
        assert!(!registry.register("orders-value", &spaced).expect("same").is_new, "whitespace is no change");
        let elsewhere = registry.register("returns-value", &record(ID)).expect("registered");
        assert_eq!((elsewhere.id, elsewhere.version), (1, 1), "the same schema keeps its id");
        let second = registry.register("orders-value", &record(&format!("{ID},{NOTE_WITH_DEFAULT}"))).expect("v2");
        assert_eq!((second.id, second.version), (2, 2));
        assert_eq!(registry.versions("orders-value", false), Ok(vec![1, 2]));
        assert_eq!(registry.version("orders-value", VersionRef::Latest, false).map(|v| v.id), Ok(2));
        assert_eq!(registry.usages(1, false), Ok(vec![("orders-value".into(), 1), ("returns-value".into(), 1)]));
        assert_eq!(registry.lookup("orders-value", &spaced, false).map(|v| v.version), Ok(1));
        assert!(matches!(registry.register("orders-value", "{\"type\":\"nope\"}"), Err(SchemaError::InvalidSchema(_))));
    }

    #[test]
    fn each_level_checks_the_direction_and_versions_it_names() {
        let mut registry = SchemaRegistry::default();
        registry.register("s", &record(ID)).expect("v1");
        // A field without a default cannot be read from data written without it: not backward.
        let err = registry.register("s", &record(&format!("{ID},{NOTE}"))).expect_err("backward");
        assert_eq!(err.code(), 409);
        assert!(err.to_string().contains("BACKWARD"), "{err}");
        registry.register("s", &record(&format!("{ID},{NOTE_WITH_DEFAULT}"))).expect("with a default it is");
        // Forward: data written with the new schema (no note) must be readable with version 2 (a default).
        registry.set_compatibility(Some("s"), Compatibility::Forward).expect("level");
        registry.register("s", &record(ID)).expect("forward: the old reader has a default for note");
        registry.set_compatibility(Some("s"), Compatibility::None).expect("level");
        registry.register("s", r#"{"type":"string"}"#).expect("NONE checks nothing");
        registry.set_compatibility(Some("s"), Compatibility::BackwardTransitive).expect("level");
        let widened = r#"["null","string"]"#;
        assert_eq!(registry.is_compatible("s", Some(VersionRef::Latest), widened).expect("checked"), Ok(()));
        assert!(registry.register("s", widened).is_err(), "transitive: version 1 (a record) is not readable");
        assert_eq!(registry.clear_compatibility("s"), Ok(Compatibility::BackwardTransitive));
        assert_eq!(registry.effective_compatibility("s"), Compatibility::Backward);
        assert_eq!(registry.clear_compatibility("s").map_err(|e| e.code()), Err(40408));
        // An enum losing a symbol is not backward-compatible (Avro reads it only partly).
        let mut enums = SchemaRegistry::default();
        enums.register("e", r#"{"type":"enum","name":"C","symbols":["A","B"]}"#).expect("v1");
        assert!(enums.register("e", r#"{"type":"enum","name":"C","symbols":["A"]}"#).is_err());
    }

    #[test]
    fn an_import_keeps_another_registrys_ids_and_readonly_refuses_changes() {
        let mut registry = SchemaRegistry::default();
        let import = |registry: &mut SchemaRegistry, subject: &str, text: &str, id, version| {
            let change = SchemaChange::Register {
                subject: subject.into(),
                schema: text.into(),
                schema_type: SchemaType::Avro,
                references: Vec::new(),
                id,
                version,
            };
            change.apply(registry)
        };
        assert_eq!(import(&mut registry, "s", &record(ID), Some(100), Some(3)).map_err(|e| e.code()), Err(42205));
        SchemaChange::SetMode { subject: None, mode: Mode::Import, force: false }.apply(&mut registry).expect("empty");
        let plain = SchemaChange::Register {
            subject: "s".into(),
            schema: record(ID),
            schema_type: SchemaType::Avro,
            references: Vec::new(),
            id: None,
            version: None,
        };
        assert_eq!(plain.apply(&mut registry).map_err(|e| e.code()), Err(42205), "an import names its id");
        assert_eq!(import(&mut registry, "s", &record(ID), Some(100), Some(3)), Ok(true));
        assert_eq!(import(&mut registry, "s", &record(ID), Some(100), Some(3)), Ok(false), "again: no change");
        let v2 = record(&format!("{ID},{NOTE}"));
        assert_eq!(import(&mut registry, "s", &v2, Some(100), None).map_err(|e| e.code()), Err(42205), "id taken");
        assert_eq!(import(&mut registry, "s", &v2, Some(250), Some(2)).map_err(|e| e.code()), Err(42202), "v2 < v3");
        assert_eq!(import(&mut registry, "s", &v2, Some(250), None), Ok(true), "no compatibility check on import");
        assert_eq!(registry.versions("s", false), Ok(vec![3, 4]));
        assert_eq!(registry.lookup("s", &v2, false).map(|v| v.id), Ok(250));
        SchemaChange::SetMode { subject: None, mode: Mode::Readwrite, force: false }.apply(&mut registry).expect("rw");
        let next = registry.register("t", r#""string""#).expect("registered");
        assert_eq!(next.id, 251, "ids go on after the imported ones");
        SchemaChange::SetMode { subject: Some("t".into()), mode: Mode::Readonly, force: false }
            .apply(&mut registry)
            .expect("readonly");
        let change = SchemaChange::Register {
            subject: "t".into(),
            schema: r#""int""#.into(),
            schema_type: SchemaType::Avro,
            references: Vec::new(),
            id: None,
            version: None,
        };
        assert_eq!(change.apply(&mut registry).map_err(|e| e.code()), Err(42205));
        let delete = SchemaChange::DeleteSubject { subject: "t".into(), permanent: false };
        assert_eq!(delete.apply(&mut registry).map_err(|e| e.code()), Err(42205));
        let import_again = SchemaChange::SetMode { subject: None, mode: Mode::Import, force: false };
        assert_eq!(import_again.apply(&mut registry).map_err(|e| e.code()), Err(42205), "not empty");
        SchemaChange::SetMode { subject: None, mode: Mode::Import, force: true }.apply(&mut registry).expect("forced");
        assert_eq!(registry.clear_mode("t"), Ok(Mode::Readonly));
        assert_eq!(registry.effective_mode("t"), Mode::Import);
    }

    #[test]
    fn protobuf_and_json_schemas_with_references_across_subjects() {
        let mut registry = SchemaRegistry::default();
        let customer = r#"syntax = "proto3"; package crm; message Customer { string name = 1; }"#;
        let customer_id =
            registry.register("crm/customer.proto", SchemaDefinition::new(customer, SchemaType::Protobuf, vec![]));
        assert_eq!(customer_id.map(|r| r.id), Ok(1));
        let reference =
            SchemaReference { name: "crm/customer.proto".into(), subject: "crm/customer.proto".into(), version: 1 };
        let order = r#"syntax = "proto3"; package shop; import "crm/customer.proto";
            message Order { int64 id = 1; crm.Customer customer = 2; }"#;
        let with_reference = SchemaDefinition::new(order, SchemaType::Protobuf, vec![reference.clone()]);
        let registered = registry.register("orders-value", &with_reference).expect("registered");
        assert_eq!((registered.id, registered.version), (2, 1));
        let without = SchemaDefinition::new(order, SchemaType::Protobuf, vec![]);
        assert_eq!(registry.register("orders-value", &without).map_err(|e| e.code()), Err(42201), "import unresolved");
        let found = registry.lookup("orders-value", &with_reference, false).expect("found");
        assert_eq!((found.schema_type, found.references), (SchemaType::Protobuf, vec![reference]));
        assert_eq!(registry.referenced_by("crm/customer.proto", 1), vec![2]);
        let err = registry.delete_subject("crm/customer.proto", false).expect_err("referenced");
        assert_eq!(err.code(), 42206, "{err}");
        assert_eq!(
            registry.delete_version("crm/customer.proto", VersionRef::Number(1), false).map_err(|e| e.code()),
            Err(42206)
        );
        // Evolution is checked by Protobuf's rules; another kind is another schema, and not compatible.
        let retyped = order.replace("int64 id = 1", "string id = 1");
        let err = registry
            .register(
                "orders-value",
                SchemaDefinition::new(&retyped, SchemaType::Protobuf, with_reference.references.clone()),
            )
            .expect_err("incompatible");
        assert!(err.to_string().contains("shop.Order.id (1) changed type from int64 to string"), "{err}");
        let json = SchemaDefinition::new(r#"{"type":"object"}"#, SchemaType::Json, vec![]);
        let err = registry.register("orders-value", &json).expect_err("another kind");
        assert!(err.to_string().contains("from PROTOBUF to JSON"), "{err}");
        assert_eq!(registry.register("payments-value", &json).map(|r| r.id), Ok(3));
        let closed = r#"{"type":"object","additionalProperties":false}"#;
        let err = registry
            .register("payments-value", SchemaDefinition::new(closed, SchemaType::Json, vec![]))
            .expect_err("closing");
        assert!(err.to_string().contains("additionalProperties"), "{err}");
        assert_eq!(
            registry.register("avro-value", r#"{"type":"object"}"#).map_err(|e| e.code()),
            Err(42201),
            "as Avro"
        );
        // The same text as another kind is another schema, with its own id.
        let as_avro = registry.register("strings", r#""string""#).expect("avro").id;
        let as_json = registry.register("strings-json", SchemaDefinition::new(r#""string""#, SchemaType::Json, vec![]));
        assert!(as_json.is_err(), "a JSON string is no JSON Schema");
        assert_ne!(as_avro, 3);
        let serialized = registry.parsed(2).and_then(|p| p.serialized()).expect("a descriptor");
        let from_descriptor =
            SchemaDefinition::new(serialized, SchemaType::Protobuf, with_reference.references.clone());
        assert_eq!(registry.lookup("orders-value", &from_descriptor, false).map(|f| f.id), Ok(2), "text or descriptor");
    }

    #[test]
    fn a_change_carries_its_kind_and_references_and_older_ones_read_as_avro() {
        let reference = SchemaReference { name: "c.proto".into(), subject: "customer".into(), version: 1 };
        let change = SchemaChange::Register {
            subject: "orders".into(),
            schema: "syntax = \"proto3\";".into(),
            schema_type: SchemaType::Protobuf,
            references: vec![reference],
            id: None,
            version: None,
        };
        let encoded = serde_json::to_string(&change).expect("encoded");
        assert_eq!(serde_json::from_str::<SchemaChange>(&encoded).expect("decoded"), change);
        let older = r#"{"register":{"subject":"s","schema":"\"string\""}}"#;
        match serde_json::from_str::<SchemaChange>(older).expect("an older node's change") {
            SchemaChange::Register { schema_type, references, .. } => {
                assert_eq!((schema_type, references), (SchemaType::Avro, Vec::new()))
            }
            other => panic!("{other:?}"),
        }
        let mut registry = SchemaRegistry::default();
        registry.register("s", r#""string""#).expect("avro");
        let file = serde_json::to_string(&registry).expect("the registry's file");
        assert!(!file.contains("schema_type") && !file.contains("references"), "Avro's entries as before: {file}");
    }

    proptest::proptest! {
        /// Whatever a client sends as a Protobuf or JSON schema, registering it answers and never panics.
        #[test]
        fn any_protobuf_or_json_text_registers_or_is_refused_without_a_panic(
            text in proptest::prop_oneof![
                schema_like(),
                "(syntax = \"proto[23]\";)? ?(package [a-z.]{0,6};)? ?(message [A-Za-z]{1,4} \\{ ?((repeated |optional |required )?(int32|string|bytes|[A-Z][a-z]{0,3}|map<string, ?int32>) [a-z]{1,3} = [0-9]{1,2}; ?){0,4}\\})*",
                "[A-Za-z0-9+/=]{0,64}",
            ],
            kind in proptest::sample::select(vec![SchemaType::Protobuf, SchemaType::Json]),
        ) {
            let mut registry = SchemaRegistry::default();
            let first = match kind {
                SchemaType::Protobuf => r#"syntax = "proto3"; message A { int32 a = 1; }"#,
                _ => r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#,
            };
            registry.register("s", SchemaDefinition::new(first, kind, vec![])).expect("v1");
            let definition = SchemaDefinition::new(text, kind, vec![]);
            let _ = registry.register("s", &definition);
            let _ = registry.is_compatible("s", None, &definition);
            if let Ok(registered) = registry.register("t", &definition) {
                let parsed = registry.parsed(registered.id).expect("parses again");
                let _ = (parsed.serialized(), parsed.record_name(&[0, 1]));
            }
        }
    }

    proptest::proptest! {
        /// Whatever text a client sends as a schema (JSON of any shape, or not JSON), registering it answers
        /// (a version, or InvalidSchema) and never panics: on a cluster every node applies it.
        #[test]
        fn any_text_registers_or_is_refused_without_a_panic(text in schema_like()) {
            let mut registry = SchemaRegistry::default();
            registry.register("orders-value", &record(ID)).expect("v1");
            let _ = registry.register("orders-value", &text);
            let _ = registry.is_compatible("orders-value", None, &text);
            let _ = registry.lookup("orders-value", &text, false);
        }
    }

    /// JSON values built from Avro's vocabulary (types, names, fields, symbols), and raw strings.
    fn schema_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let word = prop::sample::select(vec![
            "record", "enum", "array", "map", "fixed", "string", "long", "int", "null", "boolean", "bytes", "double",
            "float", "union", "Order", "a.b.C", "", "1x", "decimal", "uuid", "date",
        ]);
        let leaf = prop_oneof![
            word.clone().prop_map(|w| serde_json::Value::String(w.to_owned())),
            any::<i64>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
        ];
        let key = prop::sample::select(vec![
            "type",
            "name",
            "namespace",
            "fields",
            "symbols",
            "items",
            "values",
            "size",
            "default",
            "logicalType",
            "precision",
            "scale",
            "aliases",
            "doc",
        ]);
        let json = leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| {
                    serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        });
        prop_oneof![json.prop_map(|v| v.to_string()), ".{0,40}"]
    }

    #[test]
    fn deletes_are_soft_first_then_permanent_and_ids_are_never_given_twice() {
        let mut registry = SchemaRegistry::default();
        registry.register("s", &record(ID)).expect("v1");
        registry.register("s", &record(&format!("{ID},{NOTE_WITH_DEFAULT}"))).expect("v2");
        assert_eq!(registry.delete_subject("s", true).map_err(|e| e.code()), Err(40405));
        assert_eq!(registry.delete_version("s", VersionRef::Number(2), false), Ok(2));
        assert_eq!(registry.versions("s", false), Ok(vec![1]));
        assert_eq!(registry.versions("s", true), Ok(vec![1, 2]));
        assert_eq!(registry.delete_subject("s", false), Ok(vec![1]));
        assert_eq!(registry.versions("s", false).map_err(|e| e.code()), Err(40401));
        assert_eq!(registry.subject_names(false, ""), Vec::<String>::new());
        assert_eq!(registry.subject_names(true, ""), vec!["s".to_owned()]);
        assert_eq!(registry.delete_subject("s", false).map_err(|e| e.code()), Err(40404));
        assert_eq!(registry.delete_subject("s", true), Ok(vec![1, 2]));
        assert_eq!(registry.schema(1).map_err(|e| e.code()), Err(40403));
        let again = registry.register("s", &record(ID)).expect("anew");
        assert_eq!((again.id, again.version), (3, 1), "a new id: an old reader may still hold id 1's schema");
        assert_eq!(VersionRef::parse("0").map_err(|e| e.code()), Err(42202));
        assert_eq!(Compatibility::parse("full_transitive"), Some(Compatibility::FullTransitive));
        assert!(check_subject("").is_err() && check_subject("a\nb").is_err());
    }
}
