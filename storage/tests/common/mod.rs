#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};
use rill_storage::{Clock, Durability, Log, LogConfig, WriteMode};

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Small segments and indexes, so a few kilobytes span several segments and many index entries.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: None,
        index_interval_bytes: 256,
        index_max_bytes: 1024,
        max_batch_bytes: 2048,
        retention_bytes: None,
        retention_ms: None,
        durability: Durability::Never,
        write_mode: LogConfig::default().write_mode,
        // Between the test batches' sizes, so appends take both paths of direct mode.
        direct_min_batch_bytes: 300,
        ..LogConfig::default()
    }
}

/// `small_config` through the page cache, with every append direct, and with direct and buffered appends
/// mixed: recovery must hold for each.
pub fn both_write_modes() -> [LogConfig; 3] {
    [
        LogConfig { write_mode: WriteMode::Buffered, ..small_config() },
        LogConfig { write_mode: WriteMode::Direct, direct_min_batch_bytes: 0, ..small_config() },
        LogConfig { write_mode: WriteMode::Direct, ..small_config() },
    ]
}

/// A batch of `count` records whose values name their batch and position, timestamps from `ts`.
pub fn batch(tag: u64, count: usize, ts: i64) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::default();
    for i in 0..count {
        builder.push(&Record {
            key: Some(format!("k{tag}").into_bytes()),
            value: Some(format!("batch {tag} record {i}").into_bytes()),
            headers: vec![],
            timestamp_ms: ts + i as i64,
        });
    }
    builder.build()
}

/// Every record from `from` to the high watermark: (offset, value).
pub fn read_all(log: &Log, from: i64) -> Vec<(i64, Vec<u8>)> {
    read_records(log, from).into_iter().map(|(offset, _, value)| (offset, value.unwrap_or_default())).collect()
}

/// A record as read back: offset, key, value.
pub type Stored = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record from `from` to the high watermark, with its key; the batches must run dense (each starting at or
/// below where the last one ended) and stay valid.
pub fn read_records(log: &Log, from: i64) -> Vec<Stored> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.high_watermark() {
        let read = log.read(next, 1 << 20).expect("read within bounds");
        assert!(!read.batches.is_empty(), "no batch at offset {next} below the high watermark");
        for batch in BatchIter::new(read.batches) {
            let batch = batch.expect("whole batch");
            rill_protocol::validate(&batch.bytes).expect("stored batches stay valid");
            assert!(batch.header.base_offset <= next, "a gap before offset {}", batch.header.base_offset);
            for record in batch.records().expect("uncompressed") {
                let record = record.expect("record decodes");
                if record.offset >= next {
                    out.push((record.offset, record.key.map(<[u8]>::to_vec), record.value.map(<[u8]>::to_vec)));
                }
            }
            next = batch.header.next_offset();
        }
    }
    out
}

pub fn batches(bytes: Bytes) -> Vec<rill_protocol::RecordBatch> {
    BatchIter::new(bytes).collect::<Result<_, _>>().expect("whole batches")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// A batch of `records` records from producer `id` at `epoch`, starting at sequence `sequence`.
pub fn idempotent(id: i64, epoch: i16, sequence: i32, records: usize) -> Vec<u8> {
    let mut bytes = batch(id as u64, records, 1_000);
    let mut header = rill_protocol::BatchHeader::parse(&bytes).unwrap();
    header.producer_id = id;
    header.producer_epoch = epoch;
    header.base_sequence = sequence;
    rill_protocol::record::write_header(&mut bytes, &header);
    let at = rill_protocol::batch::PRODUCER_ID_AT;
    assert_eq!(bytes[at..at + 8], id.to_be_bytes());
    bytes
}
