//! A schema registry in the broker, speaking Confluent Schema Registry's REST API on its own listener
//! (`schema_registry_listen`, as Redpanda serves one on 8081), so that Confluent's Avro, Protobuf and JSON Schema
//! serializers and deserializers work against rill unchanged: a producer registers its schema under a subject
//! (`TOPIC-value`) and writes the id before each record; a consumer reads the schema by id.
//!
//! `registry.rs` holds subjects, versions, schemas by id and compatibility levels, every operation a pure
//! function of that state; `schema.rs` is what each kind of schema (`avro`, `protobuf.rs`, `json_schema.rs`) is
//! asked: does it parse, is it the same as another, can it read what another wrote; `store.rs` keeps the registry
//! (a single node's `__schemas.json`, or the cluster's replicated metadata, where every node serves it); `http.rs`
//! is the API; `validation.rs` checks, on a topic that asks for it, that every record carries the id of a schema
//! registered under its subject (Confluent's broker-side schema id validation).
//!
//! **Invariants:** an id names one schema forever: the same schema (parsed, so that whitespace, key order, or a
//! Protobuf file given as text or as a descriptor do not count; with its kind and references, which do) keeps its
//! id across subjects, and a permanently deleted schema's id is never given again, since records written with it
//! may still be read. A new version passes its subject's compatibility level (by its kind's rules, refusing where
//! they cannot decide) before it is stored, on a cluster checked again as the change is applied. Every schema's
//! references resolve when it is registered, and a referenced version cannot be deleted while a live schema uses
//! it. Nothing a client sends makes a node panic or compare without end (a cluster's every node applies it).

pub mod http;
pub mod json_schema;
pub mod proto_text;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod store;
pub mod validation;

pub use registry::{SchemaChange, SchemaRegistry};
pub use schema::{SchemaDefinition, SchemaReference, SchemaType};
pub use store::{SchemaStore, StoreError};
