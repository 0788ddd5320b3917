//! `rill schema` against a real `rill broker` process serving the schema registry (`--schema-registry-listen`):
//! register a schema file, list subjects, show a version, check a compatible and an incompatible change (exit 1
//! with the reason: what a CI step reads), set a compatibility level, delete, and clear errors for a registry
//! that is not there or a file that is not a schema.

use crate::common;

use common::{rill, AdminBroker, Output};

const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},
  {"name":"note","type":"string","default":""}]}"#;
const BREAKING: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},
  {"name":"coupon","type":"string"}]}"#;

/// A broker serving the schema registry, and a directory for schema files.
struct RegistryBroker {
    registry: String,
    broker: AdminBroker,
    dir: tempfile::TempDir,
}

impl RegistryBroker {
    fn start() -> Self {
        let registry = common::dead_address();
        let broker = AdminBroker::start(&["--schema-registry-listen", &registry]);
        Self { registry, broker, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// Writes `text` to the file `name`; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }

    /// `rill schema --registry REGISTRY ARGS...`.
    fn schema(&self, args: &[&str]) -> Output {
        let mut all = vec!["schema", "--registry", self.registry.as_str()];
        all.extend_from_slice(args);
        rill(&self.broker.addr, &all)
    }
}

#[test]
fn rill_schema_registers_checks_lists_and_deletes() {
    let setup = RegistryBroker::start();
    let (file, schema) = (|name: &str, text: &str| setup.file(name, text), |args: &[&str]| setup.schema(args));
    let (v1, v2, breaking) = (file("v1.avsc", V1), file("v2.avsc", V2), file("breaking.avsc", BREAKING));

    let registered = schema(&["register", "orders-value", &v1]);
    assert!(registered.status.success(), "{}", registered.stderr);
    assert_eq!(registered.stdout.trim(), "registered under orders-value: version 1 id 1");
    let compatible = schema(&["check", "orders-value", &v2]);
    assert!(compatible.status.success() && compatible.stdout.contains("compatible"), "{}", compatible.stderr);
    let incompatible = schema(&["check", "orders-value", &breaking]);
    assert_eq!(incompatible.status.code(), Some(1), "a CI step fails on it");
    assert!(incompatible.stderr.contains("not compatible with orders-value"), "{}", incompatible.stderr);
    let refused = schema(&["register", "orders-value", &breaking]);
    assert!(!refused.status.success() && refused.stderr.contains("409"), "{}", refused.stderr);
    schema(&["register", "orders-value", &v2]).ok();

    let listed = schema(&["subjects"]).ok().to_owned();
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["SUBJECT", "VERSIONS", "LATEST", "ID"], vec!["orders-value", "2", "2", "2"]]);
    let shown = schema(&["show", "orders-value", "--version", "1"]).ok().to_owned();
    assert!(
        shown.starts_with("subject orders-value version 1 id 1 type AVRO\n") && shown.contains("\"name\": \"id\""),
        "{shown}"
    );

    assert_eq!(schema(&["compatibility"]).ok().trim(), "compatibility BACKWARD");
    schema(&["compatibility", "orders-value", "--set", "none"]).ok();
    assert_eq!(schema(&["compatibility", "orders-value"]).ok().trim(), "compatibility NONE");
    let bad_level = schema(&["compatibility", "--set", "sideways"]);
    assert!(!bad_level.status.success() && bad_level.stderr.contains("42203"), "{}", bad_level.stderr);

    assert!(schema(&["delete", "orders-value", "--version", "2"]).ok().contains("soft-deleted"));
    let permanent = schema(&["delete", "orders-value", "--permanent"]);
    assert!(!permanent.status.success() && permanent.stderr.contains("40405"), "soft first: {}", permanent.stderr);
    schema(&["delete", "orders-value"]).ok();
    assert_eq!(schema(&["subjects"]).ok().lines().count(), 1, "only the header");

    let not_avro = schema(&["register", "x-value", &file("bad.avsc", "{\"type\": \"nope\"}")]);
    assert!(!not_avro.status.success() && not_avro.stderr.contains("42201"), "{}", not_avro.stderr);
    let missing = schema(&["register", "x-value", "/nonexistent.avsc"]);
    assert!(!missing.status.success() && missing.stderr.contains("cannot read the schema file"));
    let nowhere = rill(&setup.broker.addr, &["schema", "--registry", &common::dead_address(), "subjects"]);
    assert!(!nowhere.status.success() && nowhere.stderr.contains("--schema-registry-listen"), "{}", nowhere.stderr);
}

#[test]
fn rill_schema_registers_protobuf_with_references_and_json_schema() {
    let setup = RegistryBroker::start();
    let (file, schema) = (|name: &str, text: &str| setup.file(name, text), |args: &[&str]| setup.schema(args));
    let customer = file("customer.proto", r#"syntax = "proto3"; package crm; message Customer { string name = 1; }"#);
    let order = r#"syntax = "proto3"; package shop; import "crm/customer.proto";
        message Order { int64 id = 1; crm.Customer customer = 2; }"#;
    let order_file = file("order.proto", order);
    assert_eq!(
        schema(&["register", "crm/customer.proto", &customer]).ok().trim(),
        "registered under crm/customer.proto: version 1 id 1",
        "a .proto file is PROTOBUF"
    );
    let unresolved = schema(&["register", "orders-value", &order_file]);
    assert!(!unresolved.status.success() && unresolved.stderr.contains("crm/customer.proto"), "{}", unresolved.stderr);
    let reference = "crm/customer.proto=crm/customer.proto:1";
    schema(&["register", "orders-value", &order_file, "--reference", reference]).ok();
    let shown = schema(&["show", "orders-value"]).ok().to_owned();
    assert!(shown.starts_with("subject orders-value version 1 id 2 type PROTOBUF\n"), "{shown}");
    assert!(shown.contains("reference crm/customer.proto = crm/customer.proto:1"), "{shown}");
    let retyped = file("retyped.proto", &order.replace("int64 id", "string id"));
    let check = schema(&["check", "orders-value", &retyped, "--reference", reference]);
    assert_eq!(check.status.code(), Some(1), "{}", check.stderr);
    assert!(check.stderr.contains("shop.Order.id (1) changed type from int64 to string"), "{}", check.stderr);
    let in_use = schema(&["delete", "crm/customer.proto"]);
    assert!(!in_use.status.success() && in_use.stderr.contains("42206"), "{}", in_use.stderr);

    let payment = file("payment.json", r#"{"type":"object","properties":{"amount":{"type":"number"}}}"#);
    let as_avro = schema(&["register", "payments-value", &payment]);
    assert!(!as_avro.status.success() && as_avro.stderr.contains("AVRO schema"), "{}", as_avro.stderr);
    schema(&["register", "payments-value", &payment, "--type", "json"]).ok();
    assert!(schema(&["show", "payments-value"]).ok().contains("type JSON"));
    let bad_type = schema(&["register", "payments-value", &payment, "--type", "xml"]);
    assert!(!bad_type.status.success() && bad_type.stderr.contains("avro, json or protobuf"), "{}", bad_type.stderr);
    let bad_reference = schema(&["register", "x", &customer, "--reference", "nameonly"]);
    assert!(!bad_reference.status.success() && bad_reference.stderr.contains("NAME=SUBJECT:VERSION"));
}
