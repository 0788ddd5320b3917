//! `rill schema` against a real `rill broker` process serving the schema registry (`--schema-registry-listen`):
//! register a schema file, list subjects, show a version, check a compatible and an incompatible change (exit 1
//! with the reason: what a CI step reads), set a compatibility level, delete, and clear errors for a registry
//! that is not there or a file that is not a schema.

use crate::common;

use common::{rill, AdminBroker};

const V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},
  {"name":"note","type":"string","default":""}]}"#;
const BREAKING: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},
  {"name":"coupon","type":"string"}]}"#;

#[test]
fn rill_schema_registers_checks_lists_and_deletes() {
    let registry = common::dead_address();
    let broker = AdminBroker::start(&["--schema-registry-listen", &registry]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let (v1, v2, breaking) = (file("v1.avsc", V1), file("v2.avsc", V2), file("breaking.avsc", BREAKING));
    let schema = |args: &[&str]| {
        let mut all = vec!["schema", "--registry", registry.as_str()];
        all.extend_from_slice(args);
        rill(&broker.addr, &all)
    };

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
        shown.starts_with("subject orders-value version 1 id 1\n") && shown.contains("\"name\": \"id\""),
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
    let nowhere = rill(&broker.addr, &["schema", "--registry", &common::dead_address(), "subjects"]);
    assert!(!nowhere.status.success() && nowhere.stderr.contains("--schema-registry-listen"), "{}", nowhere.stderr);
}
