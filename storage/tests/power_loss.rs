//! Simulated power loss: the disk keeps what was fsynced and an arbitrary part of the rest, ending in a torn
//! page (the bytes of the last page past the cut are zeros or garbage). Reopening must give back every record
//! below the last completed flush, and past it only whole records exactly as written: a prefix of the log.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use rill_storage::{Log, LogConfig, WriteMode};

const PAGE: u64 = 4096;

/// What a power cut leaves of one file: `durable` bytes for sure, then up to `written`, cut at `cut_at`
/// (a fraction of the undurable part), and the rest of that page torn.
fn cut_file(path: &Path, durable: u64, cut_at: f64, torn: &[u8]) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let written = file.metadata().unwrap().len();
    if written <= durable {
        return;
    }
    let cut = durable + ((written - durable) as f64 * cut_at) as u64;
    file.set_len(cut).unwrap();
    let page_end = (cut / PAGE + 1) * PAGE;
    let tear = ((page_end - cut) as usize).min(torn.len());
    if tear > 0 && cut > durable {
        file.write_all_at(&torn[..tear], cut).unwrap();
    }
}

/// A power cut: the active segment keeps `durable` bytes and loses an arbitrary part of the rest (`cut_file`); its
/// index files, never synced, keep a third.
fn lose_power(active: &Path, durable: u64, cut_at: f64, torn: &[u8], zero_tear: bool) {
    let zeros;
    let torn = if zero_tear {
        zeros = vec![0u8; torn.len()];
        &zeros[..]
    } else {
        torn
    };
    cut_file(active, durable, cut_at, torn);
    for suffix in ["index", "timeindex"] {
        let path = active.with_extension(suffix);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 3).unwrap();
    }
}

/// Reopens the log after a power cut and checks what it gives back: every record below `durable_end`, and
/// beyond it only a prefix of `written`; appends go on after it. Returns the recovered end.
fn reopen_after_power_loss(
    dir: &Path,
    config: LogConfig,
    written: &[(i64, Vec<u8>)],
    durable_end: i64,
    next: &[u8],
) -> Result<i64, TestCaseError> {
    let recovered = Log::open(dir, config).unwrap();
    let end = recovered.log_end_offset();
    prop_assert!(end >= durable_end, "lost flushed records: end {} < durable {}", end, durable_end);
    let kept = read_all(&recovered, 0);
    prop_assert_eq!(&kept[..], &written[..kept.len()], "recovered records are a prefix of what was written");
    prop_assert_eq!(kept.len() as i64, end);
    let appended = recovered.append(next).unwrap();
    prop_assert_eq!(appended.base_offset, end);
    prop_assert_eq!(read_all(&recovered, 0).len() as i64, appended.last_offset + 1);
    Ok(end)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn recovery_after_power_loss_keeps_every_flushed_record_and_only_a_prefix_beyond(
        flushed_batches in 1usize..40,
        unflushed_batches in 1usize..40,
        cut_at in 0.0f64..1.0,
        torn in proptest::collection::vec(any::<u8>(), 0..4096),
        zero_tear in any::<bool>(),
        group in 1usize..6,
    ) {
        let config = LogConfig { segment_bytes: 8 * 1024, ..small_config() };
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        let mut tag = 0u64;
        for _ in 0..flushed_batches {
            log.append(&batch(tag, 1 + (tag % 4) as usize, tag as i64)).unwrap();
            tag += 1;
        }
        log.flush().unwrap();
        let durable_end = log.durable_end_offset();
        let durable_sizes: Vec<_> = log_files(dir.path())
            .into_iter()
            .map(|p| (p.clone(), std::fs::metadata(&p).unwrap().len()))
            .collect();
        // The unflushed batches go `group` to a call (as a produce call's batches do), in one write each.
        let mut left = unflushed_batches;
        while left > 0 {
            let count = group.min(left);
            let encoded: Vec<Vec<u8>> = (tag..tag + count as u64).map(|t| batch(t, 1 + (t % 4) as usize, t as i64)).collect();
            let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            log.append_batches_unsynced(&parts).unwrap();
            tag += count as u64;
            left -= count;
        }
        let written = read_all(&log, 0);
        drop(log); // the power goes out: no close

        // What the log fsynced: everything in a sealed segment (a roll fsyncs it), and in the active one what
        // the flush covered. The rest of the active segment may be lost from any byte on.
        let active = log_files(dir.path()).pop().unwrap();
        let durable = durable_sizes.iter().find(|(p, _)| *p == active).map_or(0, |(_, size)| *size);
        lose_power(&active, durable, cut_at, &torn, zero_tear);
        reopen_after_power_loss(dir.path(), config, &written, durable_end, &batch(999, 1, 0))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The same with direct writes and a caller waiting for fsyncs, so that small appends go into zeros written
    /// ahead (`direct.rs`, "Zeros ahead") and large ones direct: a power cut anywhere past the last fsync, in the
    /// batches or in the zeros after them, still gives back every fsynced record and a prefix beyond.
    #[test]
    fn recovery_after_power_loss_amid_zeros_written_ahead_keeps_a_prefix(
        flushed_batches in 1usize..30,
        unflushed_batches in 1usize..30,
        cut_at in 0.0f64..1.0,
        torn in proptest::collection::vec(any::<u8>(), 0..4096),
        zero_tear in any::<bool>(),
        large_every in 2u64..6,
        segment_kib in prop_oneof![Just(16u64), Just(1024u64)],
    ) {
        let config = LogConfig {
            write_mode: WriteMode::Direct,
            direct_min_batch_bytes: 300,
            segment_bytes: segment_kib * 1024,
            index_max_bytes: 1 << 20,
            ..small_config()
        };
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        // One record stays under 300 bytes (into zeros, through the page cache), 12 go over (direct).
        let encoded = |tag: u64| batch(tag, if tag.is_multiple_of(large_every) { 12 } else { 1 }, tag as i64);
        let mut tag = 0u64;
        for _ in 0..flushed_batches {
            let info = log.append(&encoded(tag)).unwrap();
            log.sync_through(info.last_offset + 1).unwrap();
            tag += 1;
        }
        let durable_end = log.durable_end_offset();
        // What is on disk for sure in the active segment: its batches so far (the zeros past them will be
        // written over, in the page cache, by the appends below).
        let files = log_files(dir.path());
        let sealed: u64 = files[..files.len() - 1].iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        let durable = log.size_bytes() - sealed;
        for _ in 0..unflushed_batches {
            log.append(&encoded(tag)).unwrap();
            tag += 1;
        }
        let written = read_all(&log, 0);
        drop(log); // the power goes out: no close

        let active = log_files(dir.path()).pop().unwrap();
        let is_same_segment = log_files(dir.path()).len() == files.len();
        lose_power(&active, if is_same_segment { durable } else { 0 }, cut_at, &torn, zero_tear);
        reopen_after_power_loss(dir.path(), config, &written, durable_end, &encoded(999))?;
    }
}

/// A disk that lied about a sync: a sealed segment before the recovery point lost its end. The log must not
/// trust it on the strength of the checkpoint: the segment is cut back to its last whole batch and everything
/// after it dropped, as after any other damage.
#[test]
fn a_sealed_segment_that_lost_its_end_is_truncated_not_trusted() {
    let config = LogConfig { segment_bytes: 4096, ..small_config() };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    for tag in 0..60u64 {
        log.append(&batch(tag, 3, tag as i64)).unwrap();
    }
    let written = read_all(&log, 0);
    for clean in [false, true] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        if clean {
            Log::open(copy.path(), config).unwrap().close().unwrap();
        }
        let second = log_files(copy.path())[1].clone();
        let len = std::fs::metadata(&second).unwrap().len();
        OpenOptions::new().write(true).open(&second).unwrap().set_len(len - 10).unwrap();
        let recovered = Log::open(copy.path(), config).unwrap();
        let kept = read_all(&recovered, 0);
        assert!(!kept.is_empty() && kept.len() < written.len(), "clean={clean}");
        assert_eq!(&kept[..], &written[..kept.len()], "clean={clean}");
        assert_eq!(log_files(copy.path()).len(), 2, "clean={clean}: later segments dropped");
        assert_eq!(recovered.append(&batch(1, 1, 0)).unwrap().base_offset, kept.len() as i64);
    }
}
