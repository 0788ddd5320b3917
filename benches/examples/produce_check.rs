//! What the produce check (`rill_protocol::validate_produced`, run on every produced batch) costs a record: one
//! batch of 100-byte records checked over and over, for an instruction count under callgrind, or timed.
//! `within` checks it against timestamp bounds too (`validate_produced_within`, a topic with
//! `message.timestamp.before.max.ms` / `after.max.ms`).
//!
//! `cargo build --release -p rill-benches --example produce_check`, then
//! `valgrind --tool=callgrind target/release/examples/produce_check plain|within [ROUNDS] [RECORDS]` and compare the
//! totals (docs/benchmarks.md).

use rill_protocol::compression::MAX_DECOMPRESSED_BATCH_BYTES;
use rill_protocol::{validate_produced, validate_produced_within, Record, RecordBatchBuilder, TimestampBounds};

const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let is_within = match args.next().as_deref() {
        Some("within") => true,
        Some("plain") => false,
        _ => {
            eprintln!("usage: produce_check plain|within [ROUNDS] [RECORDS_PER_BATCH]");
            std::process::exit(2);
        }
    };
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let records: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut builder = RecordBatchBuilder::default();
    for i in 0..records {
        builder.push(&Record {
            key: None,
            value: Some(vec![b'x'; 100]),
            headers: vec![],
            timestamp_ms: BASE_TIMESTAMP + i,
        });
    }
    let batch = builder.build();
    let bounds = TimestampBounds { before_max_ms: Some(3_600_000), after_max_ms: Some(3_600_000) };
    let mut passed = 0;
    for _ in 0..rounds {
        let batch = std::hint::black_box(&batch);
        let checked = if is_within {
            validate_produced_within(batch, MAX_DECOMPRESSED_BATCH_BYTES, BASE_TIMESTAMP, bounds)
        } else {
            validate_produced(batch, MAX_DECOMPRESSED_BATCH_BYTES)
        };
        passed += usize::from(checked.is_ok());
    }
    println!("{passed} of {rounds} batches of {records} records passed");
}
