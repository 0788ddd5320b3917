//! Segment recovery over arbitrary file contents: a `.log` (and `.index`) holding any bytes must open,
//! recover to a prefix of whole valid batches, serve reads of everything it kept and take a new append.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_protocol::{BatchIter, Record, RecordBatchBuilder};
use rill_storage::{Durability, Log, LogConfig};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log_bytes, index_bytes) = data.split_at(data.len() * 3 / 4);
    std::fs::write(dir.path().join("00000000000000000000.log"), log_bytes).expect("write log");
    std::fs::write(dir.path().join("00000000000000000000.index"), index_bytes).expect("write index");
    let config = LogConfig { durability: Durability::Never, index_max_bytes: 4096, ..LogConfig::default() };
    let log = Log::open(dir.path(), config).expect("recovery never fails on bad bytes");
    let end = log.log_end_offset();
    let mut next = 0;
    while next < end {
        let read = log.read(next, 1 << 20).expect("kept offsets are readable");
        let last = BatchIter::new(read.batches).last().expect("a batch").expect("whole");
        next = last.header.next_offset();
    }
    let mut builder = RecordBatchBuilder::default();
    builder.push(&Record { value: Some(b"after".to_vec()), ..Record::default() });
    assert_eq!(log.append(&builder.build()).expect("append after recovery").base_offset, end);
});
