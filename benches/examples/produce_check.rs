//! What the produce check (`rill_protocol::validate_produced`, run on every produced batch) costs a record: one
//! batch of 100-byte records checked over and over, for an instruction count under callgrind, or timed.
//! `within` checks it against timestamp bounds too (`validate_produced_within`, a topic with
//! `message.timestamp.before.max.ms` / `after.max.ms`); `zstd` and `lz4-zstd` check it and then recompress it
//! into zstd (`rill_protocol::compressed::recompress`, a topic with `compression.type=zstd`), from uncompressed or
//! from lz4; `gzip` and `lz4` into those codecs from uncompressed. LEVEL is the topic's level for the codec
//! (`compression.zstd.level` and the others), Kafka's default for it when not given.
//!
//! `cargo build --release -p rill-benches --example produce_check`, then
//! `valgrind --tool=callgrind target/release/examples/produce_check plain|within [ROUNDS] [RECORDS]` and compare the
//! totals, or time `produce_check zstd|lz4-zstd|gzip|lz4 [ROUNDS] [RECORDS] [LEVEL]` (docs/benchmarks.md).

use rill_protocol::compressed::{compress_batch, recompress};
use rill_protocol::compression::{default_level, MAX_DECOMPRESSED_BATCH_BYTES};
use rill_protocol::{
    validate_produced, validate_produced_within, Compression, Record, RecordBatchBuilder, TimestampBounds,
};

const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    if !["plain", "within", "zstd", "lz4-zstd", "gzip", "lz4"].contains(&mode.as_str()) {
        eprintln!("usage: produce_check plain|within|zstd|lz4-zstd|gzip|lz4 [ROUNDS] [RECORDS_PER_BATCH] [LEVEL]");
        std::process::exit(2);
    }
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let records: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let codec = match mode.as_str() {
        "gzip" => Compression::Gzip,
        "lz4" => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let level: i32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(default_level(codec));
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
    let batch = if mode == "lz4-zstd" { compress_batch(&batch, Compression::Lz4, 0).expect("lz4") } else { batch };
    let bounds = TimestampBounds { before_max_ms: Some(3_600_000), after_max_ms: Some(3_600_000) };
    let mut passed = 0;
    for _ in 0..rounds {
        let batch = std::hint::black_box(&batch);
        let checked = match mode.as_str() {
            "within" => validate_produced_within(batch, MAX_DECOMPRESSED_BATCH_BYTES, BASE_TIMESTAMP, bounds),
            "plain" => validate_produced(batch, MAX_DECOMPRESSED_BATCH_BYTES),
            _ => validate_produced(batch, MAX_DECOMPRESSED_BATCH_BYTES).and_then(|checked| {
                recompress(batch, codec, level, MAX_DECOMPRESSED_BATCH_BYTES).map(|moved| {
                    std::hint::black_box(moved);
                    checked
                })
            }),
        };
        passed += usize::from(checked.is_ok());
    }
    println!("{passed} of {rounds} batches of {records} records passed");
}
