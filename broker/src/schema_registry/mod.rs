//! A schema registry in the broker, speaking Confluent Schema Registry's REST API on its own listener
//! (`schema_registry_listen`, as Redpanda serves one on 8081), so that Confluent's Avro serializers and
//! deserializers work against rill unchanged: a producer registers its schema under a subject (`TOPIC-value`)
//! and writes the id before each record; a consumer reads the schema by id.
//!
//! `registry.rs` holds subjects, versions, schemas by id and compatibility levels, every operation a pure
//! function of that state; `store.rs` keeps it (a single node's `__schemas.json`, or the cluster's replicated
//! metadata, where every node serves it); `http.rs` is the API; `validation.rs` checks, on a topic that asks for
//! it, that every record carries the id of a schema registered under its subject (Confluent's broker-side schema
//! id validation).
//!
//! **Invariants:** an id names one schema forever: the same schema (parsed, so that whitespace and key order do
//! not count) keeps its id across subjects, and a permanently deleted schema's id is never given again, since
//! records written with it may still be read. A new version passes its subject's compatibility level (Avro's
//! schema resolution, fully) before it is stored, on a cluster checked again as the change is applied. AVRO
//! only: other schema types and references are refused, never stored unchecked.

pub mod http;
pub mod registry;
pub mod store;
pub mod validation;

pub use registry::{SchemaChange, SchemaRegistry};
pub use store::{SchemaStore, StoreError};
