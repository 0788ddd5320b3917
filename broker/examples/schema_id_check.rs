//! What broker-side schema id validation (`confluent.value.schema.validation`) costs a produce: the check of one
//! batch (`schema_registry::validation::check_batch`) against the walk every produced batch already gets
//! (`rill_protocol::validate_produced`), on the same batches, uncompressed and lz4, in one process. Prints ns per
//! record for each and the check's share. Not a suite: a figure for docs/benchmarks.md.
//!
//! The strategy `record` checks RecordNameStrategy with a Protobuf schema: each batch's record name comes from
//! the schema (compiled) and the record's message indexes.
//!
//! `cargo run --release -p rill-broker --example schema_id_check [records_per_batch] [value_bytes] [rounds]
//! [topic|record]`

use std::time::Instant;

use rill_broker::schema_registry::validation::check_batch;
use rill_broker::schema_registry::SchemaRegistry;
use rill_broker::schema_registry::{SchemaDefinition, SchemaType};
use rill_broker::{SchemaIdCheck, SchemaIdChecks, SubjectNameStrategy};
use rill_protocol::{Compression, Record, RecordBatchBuilder};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let value_bytes: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let by_record = args.next().is_some_and(|strategy| strategy == "record");
    let mut registry = SchemaRegistry::default();
    let (id, strategy) = if by_record {
        let proto = r#"syntax = "proto3"; package shop; message Order { int64 id = 1; string note = 2; }"#;
        let definition = SchemaDefinition::new(proto, SchemaType::Protobuf, Vec::new());
        (
            registry.register("shop.Order", definition).map_err(|e| e.to_string())?.id,
            SubjectNameStrategy::RecordNameStrategy,
        )
    } else {
        (
            registry.register("orders-value", ORDER).map_err(|e| e.to_string())?.id,
            SubjectNameStrategy::TopicNameStrategy,
        )
    };
    let checks = SchemaIdChecks { value: SchemaIdCheck { enabled: true, strategy }, ..Default::default() };
    let mut value = vec![0u8];
    value.extend_from_slice(&id.to_be_bytes());
    if by_record {
        value.push(0); // message indexes [0]
    }
    value.extend((0..value_bytes.saturating_sub(5)).map(|i| b'a' + (i % 26) as u8));
    for codec in [Compression::None, Compression::Lz4] {
        let mut builder = RecordBatchBuilder::with_capacity(records * (value_bytes + 16));
        for n in 0..records {
            let mut value = value.clone();
            if let Some(last) = value.last_mut() {
                *last = b'a' + (n % 26) as u8;
            }
            builder.push(&Record { key: None, value: Some(value), timestamp_ms: 1, headers: Vec::new() });
        }
        let batch = rill_protocol::compressed::compress_batch(&builder.build(), codec, 0)?;
        let time = |f: &dyn Fn() -> bool| {
            // A warm-up round, then the timed ones.
            assert!(f(), "the batch passes");
            let started = Instant::now();
            for _ in 0..rounds {
                assert!(f());
            }
            started.elapsed().as_nanos() as f64 / (rounds * records) as f64
        };
        let walk = time(&|| rill_protocol::validate_produced(&batch, 64 << 20).is_ok());
        let check = time(&|| check_batch(&batch, "orders", &checks, &registry).is_ok());
        println!(
            "{codec:?}: {records} records of {value_bytes} B, batch {} B: validate_produced {walk:.1} ns/record, \
             schema id check {check:.1} ns/record ({:.0}% of the walk)",
            batch.len(),
            100.0 * check / walk
        );
    }
    Ok(())
}
