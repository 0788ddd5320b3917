//! Recovery: whatever an unclean shutdown or a damaged disk leaves in the files, reopening gives the
//! longest prefix of whole valid batches, indexes that answer as before, and appends that continue
//! from the right offset. Never a panic.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use rill_protocol::BatchIter;
use rill_storage::{Log, LogConfig};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    last_segment: PathBuf,
    /// (position in the last segment where a batch starts, that batch's base offset), plus the end.
    boundaries: Vec<(u64, i64)>,
    records: Vec<(i64, Vec<u8>)>,
    lookups: Vec<(i64, Option<i64>)>,
    config: LogConfig,
}

/// A log over several segments, left without a clean shutdown, and what it held.
fn unclean_log(config: LogConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, config).unwrap();
    for tag in 0..90u64 {
        log.append(&batch(tag, 1 + (tag % 3) as usize, tag as i64 * 100)).unwrap();
    }
    assert!(log.segment_count() >= 3);
    let records = read_all(&log, 0);
    let lookups = (0..90).map(|i| i * 100 + 1).map(|ts| (ts, log.offset_for_timestamp(ts).unwrap())).collect();
    drop(log); // no close(): the checkpoint still says unclean
    let last_segment = log_files(&path).pop().unwrap();
    let bytes = std::fs::read(&last_segment).unwrap();
    let mut boundaries = Vec::new();
    let mut position = 0u64;
    for batch in BatchIter::new(bytes.clone().into()) {
        // A direct write leaves zeros to the end of the last block: where the batches end.
        let Ok(batch) = batch else {
            assert!(bytes[position as usize..].iter().all(|&b| b == 0), "only padding follows the batches");
            break;
        };
        boundaries.push((position, batch.header.base_offset));
        position += batch.bytes.len() as u64;
    }
    let end_offset = records.last().unwrap().0 + 1;
    boundaries.push((position, end_offset));
    Fixture { _dir: dir, path, last_segment, boundaries, records, lookups, config }
}

impl Fixture {
    /// The offset the log must end at when the first damaged byte is at `position`.
    fn end_before(&self, position: u64) -> i64 {
        self.boundaries.iter().take_while(|(start, _)| *start <= position).last().unwrap().1
    }

    fn damaged_copy(&self, damage: impl FnOnce(&Path)) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&self.path, copy.path());
        damage(&copy.path().join(self.last_segment.file_name().unwrap()));
        copy
    }

    fn check_recovered(&self, dir: &Path, expected_end: i64, what: &str) {
        let log = Log::open(dir, self.config).unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
        assert_eq!(log.log_end_offset(), expected_end, "{what}");
        let kept: Vec<_> = self.records.iter().take_while(|(o, _)| *o < expected_end).cloned().collect();
        assert_eq!(read_all(&log, 0), kept, "{what}");
        for (ts, offset) in &self.lookups {
            let expected = offset.filter(|o| *o < expected_end);
            assert_eq!(log.offset_for_timestamp(*ts).unwrap(), expected, "{what}: timestamp {ts}");
        }
        let next = log.append(&batch(1000, 1, 0)).unwrap();
        assert_eq!(next.base_offset, expected_end, "{what}: appends continue at the end");
    }
}

#[test]
fn truncation_at_any_byte_of_the_tail_recovers_to_the_last_whole_batch() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (_, tail_end) = *fixture.boundaries.last().unwrap();
        let segment_len = fixture.boundaries.last().unwrap().0;
        for cut in 0..segment_len {
            let copy = fixture.damaged_copy(|log| {
                OpenOptions::new().write(true).open(log).unwrap().set_len(cut).unwrap();
            });
            // A cut exactly at a batch start keeps that batch's predecessors only.
            let expected = fixture.boundaries.iter().take_while(|(start, _)| *start <= cut).last().unwrap().1;
            fixture.check_recovered(copy.path(), expected, &format!("cut at {cut}"));
        }
        let copy = fixture.damaged_copy(|_| {});
        fixture.check_recovered(copy.path(), tail_end, "undamaged");
    }
}

#[test]
fn a_flipped_byte_anywhere_in_the_tail_is_caught_even_outside_the_crc() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let segment_len = fixture.boundaries.last().unwrap().0;
        for at in 0..segment_len {
            let copy = fixture.damaged_copy(|log| {
                let file = OpenOptions::new().read(true).write(true).open(log).unwrap();
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, at).unwrap();
                file.write_all_at(&[byte[0] ^ 0x01], at).unwrap();
            });
            fixture.check_recovered(copy.path(), fixture.end_before(at), &format!("flip at {at}"));
        }
    }
}

#[test]
fn garbage_after_the_last_batch_is_cut_off() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (end_position, end_offset) = *fixture.boundaries.last().unwrap();
        for garbage in [vec![0u8; 1], vec![0u8; 100], vec![0xff; 61], (0..=255).collect()] {
            let copy = fixture.damaged_copy(|log| {
                OpenOptions::new().write(true).open(log).unwrap().write_all_at(&garbage, end_position).unwrap();
            });
            fixture.check_recovered(copy.path(), end_offset, &format!("{} garbage bytes", garbage.len()));
        }
    }
}

#[test]
fn deleting_every_index_file_rebuilds_identical_lookups() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (_, end) = *fixture.boundaries.last().unwrap();
        // Once after a clean shutdown (indexes trusted, then missing) and once after an unclean one.
        for is_clean in [true, false] {
            let copy = fixture.damaged_copy(|_| {});
            if is_clean {
                Log::open(copy.path(), fixture.config).unwrap().close().unwrap();
            }
            for entry in std::fs::read_dir(copy.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "index" || e == "timeindex") {
                    std::fs::remove_file(path).unwrap();
                }
            }
            fixture.check_recovered(copy.path(), end, &format!("indexes deleted, clean={is_clean}"));
        }
    }
}

#[test]
fn garbage_index_files_are_rebuilt_not_trusted() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (_, end) = *fixture.boundaries.last().unwrap();
        let copy = fixture.damaged_copy(|_| {});
        Log::open(copy.path(), fixture.config).unwrap().close().unwrap();
        for (i, entry) in std::fs::read_dir(copy.path()).unwrap().enumerate() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "index" || e == "timeindex") {
                std::fs::write(&path, vec![(i * 37) as u8; 24 + i % 5]).unwrap();
            }
        }
        fixture.check_recovered(copy.path(), end, "garbage indexes");
    }
}

#[test]
fn damage_in_an_earlier_segment_drops_everything_after_it() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&fixture.path, copy.path());
        // Truncate the second segment in the middle; the checkpoint puts the recovery point at the
        // last segment, so mark the shutdown unclean from the start by removing the checkpoint.
        std::fs::remove_file(copy.path().join("partition.checkpoint")).unwrap();
        let second = &log_files(copy.path())[1];
        let len = std::fs::metadata(second).unwrap().len();
        OpenOptions::new().write(true).open(second).unwrap().set_len(len / 2).unwrap();
        let log = Log::open(copy.path(), fixture.config).unwrap();
        let end = log.log_end_offset();
        let kept = read_all(&log, 0);
        assert!(end > 0 && (end as usize) < fixture.records.len());
        assert_eq!(kept, fixture.records[..end as usize].to_vec());
        assert_eq!(log_files(copy.path()).len(), 2, "segments after the damage are deleted");
        assert_eq!(log.append(&batch(7, 1, 0)).unwrap().base_offset, end);
    }
}

#[test]
fn a_damaged_or_missing_checkpoint_means_a_full_rescan_not_a_failure() {
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (_, end) = *fixture.boundaries.last().unwrap();
        let copy = fixture.damaged_copy(|_| {});
        std::fs::write(copy.path().join("partition.checkpoint"), b"not a checkpoint").unwrap();
        fixture.check_recovered(copy.path(), end, "garbage checkpoint");
        let copy = fixture.damaged_copy(|_| {});
        std::fs::remove_file(copy.path().join("partition.checkpoint")).unwrap();
        fixture.check_recovered(copy.path(), end, "missing checkpoint");
    }
}

#[test]
fn arbitrary_segment_bytes_never_panic_on_open() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let valid = batch(0, 2, 5);
    let strategy = (proptest::collection::vec(any::<u8>(), 0..400), 0usize..3, any::<bool>());
    runner
        .run(&strategy, |(garbage, valid_prefix, with_checkpoint)| {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = Vec::new();
            for i in 0..valid_prefix {
                let mut b = valid.clone();
                rill_protocol::batch::set_base_offset(&mut b, 2 * i as i64);
                rill_protocol::batch::set_partition_leader_epoch(&mut b, 0);
                bytes.extend_from_slice(&b);
            }
            bytes.extend_from_slice(&garbage);
            std::fs::write(dir.path().join("00000000000000000000.log"), &bytes).unwrap();
            std::fs::write(dir.path().join("00000000000000000000.index"), &garbage).unwrap();
            if with_checkpoint {
                std::fs::write(dir.path().join("partition.checkpoint"), &garbage).unwrap();
            }
            let log = Log::open(dir.path(), small_config()).unwrap();
            prop_assert!(log.log_end_offset() >= 2 * valid_prefix as i64);
            read_all(&log, 0);
            Ok(())
        })
        .unwrap();
}

/// The CI-sized twin of the `index_load` fuzz target: after a clean shutdown, index files holding any bytes
/// at all leave every lookup answering as before.
#[test]
fn arbitrary_index_bytes_never_change_an_answer() {
    use proptest::prelude::*;
    for config in both_write_modes() {
        let fixture = unclean_log(config);
        let (_, end) = *fixture.boundaries.last().unwrap();
        let clean = tempfile::tempdir().unwrap();
        copy_dir(&fixture.path, clean.path());
        Log::open(clean.path(), fixture.config).unwrap().close().unwrap();
        let last = fixture.last_segment.file_name().unwrap().to_owned();
        let mut runner =
            proptest::test_runner::TestRunner::new(ProptestConfig { cases: 48, ..ProptestConfig::default() });
        let strategy = (proptest::collection::vec(any::<u8>(), 0..200), proptest::collection::vec(any::<u8>(), 0..200));
        runner
            .run(&strategy, |(offsets, times)| {
                let copy = tempfile::tempdir().unwrap();
                copy_dir(clean.path(), copy.path());
                let segment = copy.path().join(&last);
                std::fs::write(segment.with_extension("index"), &offsets).unwrap();
                std::fs::write(segment.with_extension("timeindex"), &times).unwrap();
                fixture.check_recovered(copy.path(), end, "arbitrary index bytes");
                Ok(())
            })
            .unwrap();
    }
}

/// Storage's append applies Kafka's produce rules; recovery re-checks only integrity. A batch an older broker
/// stored that the produce rules now refuse (here: zstd-flagged records that are not zstd, which the integrity
/// check cannot see into) is refused on append but kept by recovery, never truncated.
#[test]
fn recovery_keeps_a_stored_batch_that_only_the_produce_rules_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { write_mode: rill_storage::WriteMode::Buffered, ..small_config() };
    let log = Log::open(dir.path(), config).unwrap();
    log.append(&batch(0, 2, 100)).unwrap();
    let mut lenient = batch(1, 1, 200);
    let mut header = rill_protocol::BatchHeader::parse(&lenient).unwrap();
    header.attributes |= rill_protocol::Compression::Zstd.attribute_bits();
    rill_protocol::record::write_header(&mut lenient, &header);
    rill_protocol::validate(&lenient).expect("the integrity check accepts it");
    assert!(matches!(log.append(&lenient), Err(rill_storage::StorageError::InvalidBatch(_))), "append refuses it");
    drop(log); // unclean: recovery rescans the segment

    // Written as an older broker would have: at the next offset, with the epoch of the batch before it.
    let segment = log_files(dir.path()).pop().unwrap();
    let stored = std::fs::read(&segment).unwrap();
    lenient[0..8].copy_from_slice(&2i64.to_be_bytes());
    lenient[12..16].copy_from_slice(&stored[12..16]);
    OpenOptions::new().append(true).open(&segment).unwrap().write_all_at(&lenient, stored.len() as u64).unwrap();

    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), 3, "the lenient batch survives recovery");
    assert_eq!(log.append(&batch(2, 1, 300)).unwrap().base_offset, 3);
}

/// The clean-shutdown flag of a log's checkpoint (docs/format.md: flags at byte 10, bit 0).
fn checkpoint_says_clean(dir: &Path) -> bool {
    let checkpoint = std::fs::read(dir.join("partition.checkpoint")).expect("checkpoint file");
    u16::from_be_bytes([checkpoint[10], checkpoint[11]]) & 1 == 1
}

#[test]
fn a_log_reopened_and_closed_without_a_change_keeps_its_checkpoint_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    for tag in 0..20 {
        log.append(&batch(tag, 2, tag as i64)).unwrap();
    }
    log.close().unwrap();
    let inode = std::fs::metadata(dir.path().join("partition.checkpoint")).unwrap().ino();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(checkpoint_says_clean(dir.path()), "nothing changed yet: the clean flag is still true");
    log.close().unwrap();
    // The checkpoint is stored by writing a new file and renaming it over the old: the same inode means no store.
    assert_eq!(std::fs::metadata(dir.path().join("partition.checkpoint")).unwrap().ino(), inode);
    assert_eq!(read_all(&Log::open(dir.path(), small_config()).unwrap(), 0).len(), 40);
}

#[test]
fn the_first_append_after_a_clean_open_marks_the_log_unclean_before_writing() {
    for config in both_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        log.append(&batch(0, 2, 0)).unwrap();
        log.close().unwrap();
        let log = Log::open(dir.path(), config).unwrap();
        log.append(&batch(1, 2, 1)).unwrap();
        assert!(!checkpoint_says_clean(dir.path()), "{config:?}: a crash from here on must rescan");
        drop(log); // a crash: no close
        let reopened = Log::open(dir.path(), config).unwrap();
        assert_eq!(read_all(&reopened, 0).len(), 4, "{config:?}");
        assert_eq!(reopened.log_end_offset(), 4);
    }
}
