//! Index loading: after a clean shutdown the `.index` and `.timeindex` files are trusted only if plausible.
//! Whatever bytes they hold, every lookup must answer exactly as it did before they were damaged.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rill_protocol::{Record, RecordBatchBuilder};
use rill_storage::{Durability, Log, LogConfig};

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Never,
        segment_bytes: 16 << 20,
        index_interval_bytes: 128,
        index_max_bytes: 4096,
        ..LogConfig::default()
    }
}

struct Template {
    dir: PathBuf,
    lookups: Vec<(i64, Option<i64>)>,
    end: i64,
}

/// One log, built once and closed cleanly, with the answers its own indexes give.
fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let log = Log::open(&dir, config()).expect("open");
        for b in 0..40i64 {
            let mut builder = RecordBatchBuilder::default();
            for r in 0..3 {
                let ts = (b * 7919 + r * 13) % 1000;
                builder.push(&Record { value: Some(vec![b as u8; 20]), timestamp_ms: ts, ..Record::default() });
            }
            log.append(&builder.build()).expect("append");
        }
        let lookups = (-1..1001).step_by(7).map(|ts| (ts, log.offset_for_timestamp(ts).expect("lookup"))).collect();
        let end = log.log_end_offset();
        log.close().expect("close");
        Template { dir, lookups, end }
    })
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fuzz_target!(|data: &[u8]| {
    let template = template();
    let dir = tempfile::tempdir().expect("temp dir");
    copy(&template.dir, dir.path());
    let (offsets, times) = data.split_at(data.len() / 2);
    std::fs::write(dir.path().join("00000000000000000000.index"), offsets).expect("write");
    std::fs::write(dir.path().join("00000000000000000000.timeindex"), times).expect("write");
    let log = Log::open(dir.path(), config()).expect("open never fails on bad indexes");
    assert_eq!(log.log_end_offset(), template.end);
    for (ts, expected) in &template.lookups {
        assert_eq!(log.offset_for_timestamp(*ts).expect("lookup"), *expected, "timestamp {ts}");
    }
    for offset in 0..template.end {
        let read = log.read(offset, 1).expect("read");
        let batch = rill_protocol::BatchIter::new(read.batches).next().expect("a batch").expect("whole");
        assert!(batch.header.base_offset <= offset && offset <= batch.header.last_offset());
    }
});
