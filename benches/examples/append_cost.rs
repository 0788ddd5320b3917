//! What idempotence costs storage's append: the same batches appended with or without a producer id, for an
//! instruction count under callgrind (a timing on this shared VM moves more than the difference).
//!
//! `cargo build --release -p rill-benches --example append_cost`, then
//! `valgrind --tool=callgrind target/release/examples/append_cost plain|idempotent [BATCHES] [RECORDS]` and compare
//! the totals (docs/benchmarks.md).

use rill_protocol::{ProducerFields, Record, RecordBatchBuilder};
use rill_storage::{Durability, Log, LogConfig, WriteMode};

fn main() {
    let mut args = std::env::args().skip(1);
    let is_idempotent = match args.next().as_deref() {
        Some("idempotent") => true,
        Some("plain") => false,
        _ => {
            eprintln!("usage: append_cost plain|idempotent [BATCHES] [RECORDS_PER_BATCH]");
            std::process::exit(2);
        }
    };
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let records: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = tempfile_dir();
    let config = LogConfig {
        durability: Durability::Never,
        write_mode: WriteMode::Buffered,
        retention_ms: None,
        ..LogConfig::default()
    };
    let log = Log::open(&dir, config).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let value = vec![b'x'; 100];
    let mut sequence = 0i32;
    for _ in 0..batches {
        let mut builder = RecordBatchBuilder::default();
        if is_idempotent {
            builder.set_producer(ProducerFields { producer_id: 7, producer_epoch: 0, base_sequence: sequence });
            sequence += records as i32;
        }
        for i in 0..records {
            builder.push(&Record { key: None, value: Some(value.clone()), headers: vec![], timestamp_ms: i as i64 });
        }
        log.append(&builder.build()).unwrap_or_else(|e| panic!("append: {e}"));
    }
    log.close().unwrap_or_else(|e| panic!("close: {e}"));
    println!("{} batches, log end {}", batches, log.log_end_offset());
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-append-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
