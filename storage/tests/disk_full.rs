//! A full disk: appends fail with a clear error, the log stays readable, and it takes appends again
//! once space returns, with nothing acknowledged lost. Uses a real tiny filesystem (tmpfs), which
//! needs root, as CI and the development machines have; elsewhere the test says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rill_storage::{Log, LogConfig};

struct TinyFs {
    path: PathBuf,
}

impl TinyFs {
    fn mount(bytes: u64) -> Option<Self> {
        let path = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Self { path })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn fill(dir: &Path, bytes: usize) -> PathBuf {
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0u8; bytes]).unwrap();
    filler
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_the_log_recovers_when_space_returns() {
    let Some(fs) = TinyFs::mount(512 * 1024) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let filler = fill(&fs.path, 256 * 1024);
    let dir = fs.path.join("t-0");
    let config = LogConfig { segment_bytes: 64 * 1024, index_max_bytes: 4096, max_batch_bytes: 8192, ..small_config() };
    let log = Log::open(&dir, config).unwrap();
    let mut acknowledged = 0i64;
    let error = loop {
        match log.append(&batch(acknowledged as u64, 4, 0)) {
            Ok(info) => {
                assert_eq!(info.base_offset, acknowledged);
                acknowledged = info.last_offset + 1;
            }
            Err(e) => break e,
        }
        assert!(acknowledged < 1_000_000, "the disk never filled");
    };
    assert!(error.is_disk_full(), "expected ENOSPC, got {error}");
    assert!(error.to_string().contains("No space left"), "{error}");
    // Near the limit a smaller write (a new segment's first batch) may still fit; every append either
    // fails as disk full or lands at the next offset, until the disk is truly full.
    let mut failures_in_a_row = 1;
    while failures_in_a_row < 5 {
        match log.append(&batch(acknowledged as u64, 4, 0)) {
            Ok(info) => {
                assert_eq!(info.base_offset, acknowledged);
                acknowledged = info.last_offset + 1;
                failures_in_a_row = 0;
            }
            Err(e) => {
                assert!(e.is_disk_full(), "{e}");
                failures_in_a_row += 1;
            }
        }
    }
    assert_eq!(log.log_end_offset(), acknowledged, "a failed append leaves nothing behind");
    assert_eq!(read_all(&log, 0).len() as i64, acknowledged, "reads go on while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    let after = log.append(&batch(7, 4, 0)).expect("appends resume once space returns");
    assert_eq!(after.base_offset, acknowledged);
    acknowledged = after.last_offset + 1;
    drop(log); // unclean: recovery must find every acknowledged record, and no partial batch
    let reopened = Log::open(&dir, config).unwrap();
    assert_eq!(reopened.log_end_offset(), acknowledged);
    assert_eq!(read_all(&reopened, 0).len() as i64, acknowledged);
}
