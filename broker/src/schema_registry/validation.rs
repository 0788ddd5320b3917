//! Confluent's broker-side schema id validation (Confluent Server's `confluent.value.schema.validation`,
//! Redpanda's server-side schema id validation): on a topic that turns it on, every record's key or value must
//! begin as Confluent's serializers write it, a magic byte 0 and a 4-byte schema id, and that id must be
//! registered under the record's subject (by the topic's subject name strategy). A record that does not is
//! refused with its batch, INVALID_RECORD, saying which record and why, so a producer that skipped the registry,
//! or wrote with another topic's schema, cannot put records consumers would fail to read. A null key or value
//! (a tombstone) passes, as it carries no data to read.

use rill_protocol::schema_framing::message_indexes;
use rill_protocol::BatchError;

use super::registry::SchemaRegistry;
use crate::meta::{SchemaIdCheck, SchemaIdChecks, SubjectNameStrategy};

/// Confluent's wire format: magic byte 0, then the schema id, big-endian.
const MAGIC: u8 = 0;
const ID_END: usize = 5;

/// Checks every record of `batch` (decompressed if need be) against `checks` on topic `topic`.
pub fn check_batch(
    batch: &[u8],
    topic: &str,
    checks: &SchemaIdChecks,
    registry: &SchemaRegistry,
) -> Result<(), BatchError> {
    let mut first_refusal = None;
    // Ids seen in this batch and whether they passed, per side: a batch's records mostly share one or two, so a
    // short list searched in order beats hashing each record's id.
    let mut seen: Vec<Seen> = Vec::new();
    rill_protocol::compaction::retain_records(batch, |record| {
        if first_refusal.is_some() {
            return true;
        }
        for (is_key, bytes, check) in [(true, record.key, &checks.key), (false, record.value, &checks.value)] {
            if !check.enabled {
                continue;
            }
            if let Err(reason) = check_field(is_key, bytes, topic, check, registry, &mut seen) {
                first_refusal = Some(BatchError::SchemaIdRefused { offset_delta: record.offset_delta, reason });
                break;
            }
        }
        true
    })?;
    first_refusal.map_or(Ok(()), Err)
}

/// A side, schema id and (for a record name) message indexes already checked in this batch, and the outcome.
type Seen = (bool, u32, Option<Vec<usize>>, Result<(), String>);

fn check_field(
    is_key: bool,
    bytes: Option<&[u8]>,
    topic: &str,
    check: &SchemaIdCheck,
    registry: &SchemaRegistry,
    seen: &mut Vec<Seen>,
) -> Result<(), String> {
    let side = if is_key { "key" } else { "value" };
    let Some(bytes) = bytes else { return Ok(()) };
    if bytes.len() < ID_END || bytes[0] != MAGIC {
        return Err(format!(
            "its {side} does not begin with a schema id (a magic byte 0 and a 4-byte id, as Confluent's \
             serializers write it), which the topic requires (confluent.{side}.schema.validation)"
        ));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    // Only a record name needs the message a Protobuf record is (its indexes); an Avro or JSON record has none
    // and any it seems to have count for nothing.
    // (None, not an empty list, for the topic's name: comparing two lists, even empty, costs a `memcmp` call per
    // record, which was most of a 100 B record's check.)
    let indexes = match check.strategy {
        SubjectNameStrategy::TopicNameStrategy => None,
        _ => Some(message_indexes(&bytes[ID_END..]).map(|(indexes, _)| indexes).unwrap_or_default()),
    };
    if let Some((_, _, _, known)) = seen.iter().find(|(k, i, m, _)| *k == is_key && *i == id && *m == indexes) {
        return known.clone();
    }
    let checked = registered(id, indexes.as_deref().unwrap_or_default(), side, topic, check.strategy, registry);
    seen.push((is_key, id, indexes, checked.clone()));
    checked
}

/// Ok if schema `id` is registered under the subject `strategy` names for it.
fn registered(
    id: u32,
    message_indexes: &[usize],
    side: &str,
    topic: &str,
    strategy: SubjectNameStrategy,
    registry: &SchemaRegistry,
) -> Result<(), String> {
    if registry.schema(id).is_err() {
        return Err(format!("its {side} names schema id {id}, which the schema registry does not have"));
    }
    let subject = match strategy {
        SubjectNameStrategy::TopicNameStrategy => format!("{topic}-{side}"),
        SubjectNameStrategy::RecordNameStrategy | SubjectNameStrategy::TopicRecordNameStrategy => {
            let Some(name) = registry.record_name(id, message_indexes) else {
                return Err(format!(
                    "its {side} names schema id {id}, which has no record name (an Avro named type, a JSON \
                     Schema's title, the Protobuf message its message indexes point to): {strategy:?} needs one"
                ));
            };
            match strategy {
                SubjectNameStrategy::RecordNameStrategy => name,
                _ => format!("{topic}-{name}"),
            }
        }
    };
    let usages = registry.usages(id, false).unwrap_or_default();
    if usages.iter().any(|(registered_under, _)| *registered_under == subject) {
        return Ok(());
    }
    Err(format!("its {side} names schema id {id}, which is not registered under subject {subject:?} ({strategy:?})"))
}

#[cfg(test)]
mod tests {
    use rill_protocol::{Record, RecordBatchBuilder};

    use super::*;

    const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;

    fn framed(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![MAGIC];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn batch(values: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::with_capacity(1024);
        for value in values {
            builder.push(&Record { key: None, value: value.clone(), timestamp_ms: 1, headers: Vec::new() });
        }
        builder.build()
    }

    fn value_checks(strategy: SubjectNameStrategy) -> SchemaIdChecks {
        SchemaIdChecks { value: SchemaIdCheck { enabled: true, strategy }, ..SchemaIdChecks::default() }
    }

    #[test]
    fn values_must_carry_an_id_registered_under_their_subject() {
        let mut registry = SchemaRegistry::default();
        let id = registry.register("orders-value", ORDER).expect("registered").id;
        let other = registry.register("refunds-value", r#""string""#).expect("registered").id;
        let checks = value_checks(SubjectNameStrategy::TopicNameStrategy);
        let good = batch(&[Some(framed(id, b"\x02")), None, Some(framed(id, b"\x04"))]);
        assert_eq!(check_batch(&good, "orders", &checks, &registry), Ok(()), "a tombstone passes");
        let refused = |values: &[Option<Vec<u8>>]| match check_batch(&batch(values), "orders", &checks, &registry) {
            Err(BatchError::SchemaIdRefused { offset_delta, reason }) => (offset_delta, reason),
            other => panic!("refused expected, got {other:?}"),
        };
        let (at, reason) = refused(&[Some(framed(id, b"")), Some(b"plain json".to_vec())]);
        assert!(at == 1 && reason.contains("does not begin with a schema id"), "{reason}");
        let (_, reason) = refused(&[Some(framed(999, b""))]);
        assert!(reason.contains("schema id 999") && reason.contains("does not have"), "{reason}");
        let (_, reason) = refused(&[Some(framed(other, b""))]);
        assert!(reason.contains("\"orders-value\""), "another topic's schema: {reason}");
        assert_eq!(check_batch(&good, "orders", &SchemaIdChecks::default(), &registry), Ok(()), "off: unchecked");
        let keys = SchemaIdChecks { key: SchemaIdCheck { enabled: true, ..SchemaIdCheck::default() }, ..checks };
        assert_eq!(check_batch(&good, "orders", &keys, &registry), Ok(()), "a null key passes");
    }

    #[test]
    fn record_name_strategies_name_the_subject_after_the_schema() {
        let mut registry = SchemaRegistry::default();
        let by_record = registry.register("shop.Order", ORDER).expect("registered").id;
        let value = batch(&[Some(framed(by_record, b""))]);
        let record_checks = value_checks(SubjectNameStrategy::RecordNameStrategy);
        assert_eq!(check_batch(&value, "orders", &record_checks, &registry), Ok(()));
        let topic_record = value_checks(SubjectNameStrategy::TopicRecordNameStrategy);
        assert!(check_batch(&value, "orders", &topic_record, &registry).is_err(), "needs orders-shop.Order");
        registry.register("orders-shop.Order", ORDER).expect("registered");
        assert_eq!(check_batch(&value, "orders", &topic_record, &registry), Ok(()));
        assert!(
            check_batch(&value, "orders", &value_checks(SubjectNameStrategy::TopicNameStrategy), &registry).is_err()
        );
    }

    #[test]
    fn a_protobuf_record_names_its_message_by_its_indexes_and_a_json_schema_by_its_title() {
        use crate::schema_registry::{SchemaDefinition, SchemaType};
        let proto = r#"syntax = "proto3"; package shop; message Order { message Line { int32 n = 1; } int64 id = 1; }
            message Refund { int64 id = 1; }"#;
        let definition = SchemaDefinition::new(proto, SchemaType::Protobuf, Vec::new());
        let mut registry = SchemaRegistry::default();
        let id = registry.register("shop.Refund", &definition).expect("registered").id;
        registry.register("shop.Order.Line", &definition).expect("registered");
        let checks = value_checks(SubjectNameStrategy::RecordNameStrategy);
        // Confluent's indexes: [1] (zigzag count 1, index 1) is Refund; [0, 0] is Order.Line; a lone 0 is [0].
        let refund = batch(&[Some(framed(id, b"\x02\x02\x08\x01"))]);
        assert_eq!(check_batch(&refund, "t", &checks, &registry), Ok(()));
        let line = batch(&[Some(framed(id, b"\x04\x00\x00"))]);
        assert_eq!(check_batch(&line, "t", &checks, &registry), Ok(()));
        let order = batch(&[Some(framed(id, b"\x00\x08\x01"))]);
        match check_batch(&order, "t", &checks, &registry) {
            Err(BatchError::SchemaIdRefused { reason, .. }) => assert!(reason.contains("\"shop.Order\""), "{reason}"),
            other => panic!("shop.Order is not a subject: {other:?}"),
        }

        let json = r#"{"title":"shop.Payment","type":"object"}"#;
        let id = registry.register("shop.Payment", SchemaDefinition::new(json, SchemaType::Json, Vec::new()));
        let payment = batch(&[Some(framed(id.expect("registered").id, b"{}"))]);
        assert_eq!(check_batch(&payment, "t", &checks, &registry), Ok(()));
    }
}
