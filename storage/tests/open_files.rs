//! Descriptors a log holds: an idle log keeps only its active segment's `.log` open, index files are closed once
//! mapped, and reads of sealed segments go through a bounded cache that many logs share.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{batch, both_write_modes, read_all};
use rill_storage::{Log, SegmentFileCache, SystemClock};

/// This process's open descriptors on files inside `dir`.
fn descriptors_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let dir = dir.canonicalize().expect("canonical dir");
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .collect()
}

/// A log of several segments, closed: the next open finds them sealed.
fn log_of_several_segments(dir: &Path, config: &rill_storage::LogConfig) {
    let log = Log::open(dir, *config).unwrap();
    for tag in 0..60 {
        log.append(&batch(tag, 3, tag as i64)).unwrap();
    }
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    log.close().unwrap();
}

#[test]
fn an_idle_log_holds_one_descriptor_its_active_segment() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        log_of_several_segments(dir.path(), &config);
        let log = Log::open(dir.path(), config).unwrap();
        let open = descriptors_in(dir.path());
        assert_eq!(open.len(), 1, "{config:?}: {open:?}");
        assert!(open[0].extension().is_some_and(|e| e == "log"), "{open:?}");
        log.close().unwrap();
        drop(log);
        assert_eq!(descriptors_in(dir.path()), Vec::<std::path::PathBuf>::new(), "{config:?}");
    }
}

#[test]
fn reads_of_sealed_segments_keep_at_most_the_cache_capacity_open() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        log_of_several_segments(dir.path(), &config);
        let files = Arc::new(SegmentFileCache::new(2));
        let log = Log::open_shared(dir.path(), config, Arc::new(SystemClock), Arc::clone(&files)).unwrap();
        assert_eq!(read_all(&log, 0).len(), 60 * 3, "every record reads back through the cache");
        assert!(files.open_files() <= 2, "{config:?}: {} cached", files.open_files());
        let open = descriptors_in(dir.path());
        // The active segment's own descriptor (and its O_DIRECT writer, after appends; none here), plus the cache.
        assert!(open.len() <= 1 + 2, "{config:?}: {open:?}");
        assert!(
            open.iter().all(|path| path.extension().is_some_and(|e| e == "log")),
            "no index file stays open: {open:?}"
        );
    }
}

#[test]
fn a_truncation_into_a_sealed_segment_reopens_it_for_appends() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        log_of_several_segments(dir.path(), &config);
        let log = Log::open(dir.path(), config).unwrap();
        log.truncate_to(4).unwrap(); // inside the first, sealed, segment
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.append(&batch(99, 2, 0)).unwrap().base_offset, 3);
        assert_eq!(read_all(&log, 0).len(), 5);
    }
}

#[test]
fn a_deleted_log_leaves_no_descriptor_in_the_shared_cache_and_a_new_one_reads_its_own_files() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("t-0");
    let config = both_write_modes()[0];
    log_of_several_segments(&dir, &config);
    let files = Arc::new(SegmentFileCache::new(8));
    let open = |files: &Arc<SegmentFileCache>| {
        Log::open_shared(&dir, config, Arc::new(SystemClock), Arc::clone(files)).unwrap()
    };
    let log = open(&files);
    assert_eq!(read_all(&log, 0).len(), 60 * 3);
    assert!(files.open_files() > 0);
    log.delete().unwrap();
    assert_eq!(files.open_files(), 0, "the deleted files' descriptors are closed");
    // The same path again, with other records: reads must not come from the old files.
    let log = open(&files);
    for tag in 100..160 {
        log.append(&batch(tag, 3, tag as i64)).unwrap();
    }
    log.close().unwrap();
    let log = open(&files);
    let records = read_all(&log, 0);
    assert_eq!(records.len(), 60 * 3);
    assert_eq!(records, read_all(&Log::open(&dir, config).unwrap(), 0), "the same records as a fresh open");
}
