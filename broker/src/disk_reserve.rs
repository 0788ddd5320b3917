//! Free space kept on the data dir's file system for the writes a node cannot do without: the controller's raft
//! log (a node whose raft log cannot be written stops), checkpoints, offset commits. Below
//! `min_free_disk_bytes` the node refuses partition appends, leader and follower alike, with `disk-full`: on a
//! cluster the leader hands the partition to an in-sync replica (`replication/resign.rs`) and a follower leaves
//! the ISR, so the node stays up, serving reads and metadata, until retention, deleted records or topics, or
//! the operator make room again. Redpanda's `storage_min_free_bytes` does the same; Kafka has no reserve and
//! halts once a log directory's writes fail.
//!
//! A cluster coordinator's offset commits may use the first half of the reserve ([`DiskReserve::take_for_commit`]):
//! below that, it hands its offsets partitions to in-sync replicas (as a leader hands over a partition it
//! cannot append to), so a coordinator's commits cannot eat the room its controller log needs. A single node
//! commits into the whole reserve: no other node could take its groups.
//!
//! The free space is read (`statvfs`) every `REFRESH` by a task, not per append: a check is one atomic load,
//! and each append admitted counts its bytes off the last reading until the next, so the appends between two
//! readings cannot run far past the reserve (by those already admitted, at most).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::BrokerError;

/// How often the free space is read.
const REFRESH: Duration = Duration::from_millis(100);
/// The reserve when none is set: 5% of the file system, at most this.
const DEFAULT_RESERVE_MAX: u64 = 1 << 30;

pub struct DiskReserve {
    dir: PathBuf,
    /// 0: no reserve.
    min_free_bytes: u64,
    /// As last read; `u64::MAX` until the first read, or where the file system cannot be asked.
    free_bytes: AtomicU64,
    /// Whether the last reading was below the reserve: each crossing is logged once.
    was_below: AtomicBool,
    /// Appends refused for the reserve, since the start (a metric).
    refused_appends: AtomicU64,
}

impl DiskReserve {
    /// The reserve for `dir`: `configured` if set, else 5% of its file system's size, at most 1 GiB.
    pub fn new(dir: &Path, configured: Option<u64>) -> Self {
        let space = space_of(dir);
        let min_free_bytes = configured.unwrap_or_else(|| default_reserve(space.map_or(0, |s| s.total_bytes)));
        let free_bytes = AtomicU64::new(space.map_or(u64::MAX, |s| s.free_bytes));
        Self {
            dir: dir.to_path_buf(),
            min_free_bytes,
            free_bytes,
            was_below: AtomicBool::new(false),
            refused_appends: AtomicU64::new(0),
        }
    }

    /// A reserve of two bytes (so a full disk, 0 free, is also below the half commits may use) whose free space
    /// is whatever the simulation says ([`Self::set_free_bytes`]), never read from the disk: the simulated hosts
    /// share the machine's file system, so its fullness is a fault the simulation injects.
    #[cfg(test)]
    pub(crate) fn simulated(dir: &Path) -> Self {
        Self { min_free_bytes: 2, free_bytes: AtomicU64::new(u64::MAX), ..Self::new(dir, Some(0)) }
    }

    /// Sets the free space as if just read: 0 fills the disk, `u64::MAX` frees it.
    #[cfg(test)]
    pub(crate) fn set_free_bytes(&self, free_bytes: u64) {
        self.free_bytes.store(free_bytes, Ordering::Relaxed);
    }

    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_bytes
    }

    /// The free bytes as last read.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// [`Self::check`], then counts `bytes` about to be written as gone until the next read: appends between
    /// two reads cannot run far past the reserve.
    pub fn take(&self, bytes: u64) -> Result<(), BrokerError> {
        if let Err(err) = self.check() {
            self.refused_appends.fetch_add(1, Ordering::Relaxed);
            return Err(err);
        }
        self.count_off(bytes);
        Ok(())
    }

    fn count_off(&self, bytes: u64) {
        if self.min_free_bytes > 0 {
            let _ = self
                .free_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |free| Some(free.saturating_sub(bytes)));
        }
    }

    /// Ok while the free space is at or above the reserve; `disk-full` below it.
    pub fn check(&self) -> Result<(), BrokerError> {
        let free_bytes = self.free_bytes();
        if free_bytes >= self.min_free_bytes {
            return Ok(());
        }
        Err(BrokerError::BelowDiskReserve {
            dir: self.dir.display().to_string(),
            free_bytes,
            min_free_bytes: self.min_free_bytes,
        })
    }

    /// Before an offset commit of `bytes` on a cluster coordinator: Ok while at least half the reserve is free,
    /// and counted off as [`Self::take`] counts appends; `disk-full` below that half.
    pub fn take_for_commit(&self, bytes: u64) -> Result<(), BrokerError> {
        let free_bytes = self.free_bytes();
        if free_bytes < self.min_free_bytes / 2 {
            self.refused_appends.fetch_add(1, Ordering::Relaxed);
            return Err(BrokerError::CommitsBelowDiskReserve {
                dir: self.dir.display().to_string(),
                free_bytes,
                min_free_bytes: self.min_free_bytes,
            });
        }
        self.count_off(bytes);
        Ok(())
    }

    /// Appends refused below the reserve since the node started.
    pub fn refused_appends(&self) -> u64 {
        self.refused_appends.load(Ordering::Relaxed)
    }

    /// The data dir's file system as it is now (not the last reading): for the metrics and the console.
    pub(crate) fn space_now(&self) -> Option<Space> {
        space_of(&self.dir)
    }

    /// Reads the free space now.
    pub fn refresh(&self) {
        if let Some(space) = space_of(&self.dir) {
            self.free_bytes.store(space.free_bytes, Ordering::Relaxed);
            let is_below = self.check().is_err();
            let was_below = self.was_below.swap(is_below, Ordering::Relaxed);
            if is_below && !was_below {
                tracing::warn!(dir = %self.dir.display(), free_bytes = space.free_bytes, min_free_bytes = self.min_free_bytes, "free disk space below the reserve; refusing appends until space is freed");
            } else if was_below && !is_below {
                tracing::info!(dir = %self.dir.display(), free_bytes = space.free_bytes, "free disk space back above the reserve; taking appends again");
            }
        }
    }

    /// Reads the free space every `REFRESH` until shutdown.
    pub fn spawn_refresh(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.min_free_bytes == 0 {
            return;
        }
        let reserve = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => reserve.refresh(),
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
}

fn default_reserve(total_bytes: u64) -> u64 {
    (total_bytes / 20).min(DEFAULT_RESERVE_MAX)
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Space {
    pub(crate) total_bytes: u64,
    /// What an unprivileged writer may still use (`f_bavail`).
    pub(crate) free_bytes: u64,
}

/// The size and free space of the file system holding `dir` (the console shows them too).
pub(crate) fn space_of(dir: &Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` a buffer of the size statvfs writes.
    let status = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    let block = stat.f_frsize;
    Some(Space { total_bytes: stat.f_blocks.saturating_mul(block), free_bytes: stat.f_bavail.saturating_mul(block) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reserve_is_five_percent_of_the_file_system_up_to_a_gibibyte() {
        assert_eq!(default_reserve(32 << 20), (32 << 20) / 20);
        assert_eq!(default_reserve(10 << 30), 512 << 20);
        assert_eq!(default_reserve(1 << 40), 1 << 30);
    }

    #[test]
    fn appends_taken_count_off_the_free_space_until_it_is_read_again() {
        let dir = tempfile::tempdir().expect("a dir");
        let reserve = DiskReserve::new(dir.path(), Some(1000));
        reserve.free_bytes.store(3000, Ordering::Relaxed);
        reserve.take(1500).expect("3000 free");
        reserve.take(1000).expect("1500 free");
        assert_eq!(reserve.free_bytes(), 500);
        assert_eq!(reserve.refused_appends(), 0);
        assert!(reserve.take(1).is_err(), "500 free, below the reserve");
        assert!(reserve.check().is_err());
        assert_eq!(reserve.refused_appends(), 1, "a refused take counts; a check alone does not");
    }

    #[test]
    fn commits_may_use_the_first_half_of_the_reserve() {
        let dir = tempfile::tempdir().expect("a dir");
        let reserve = DiskReserve::new(dir.path(), Some(1000));
        reserve.free_bytes.store(900, Ordering::Relaxed);
        assert!(reserve.take(1).is_err(), "below the reserve: no appends");
        reserve.take_for_commit(300).expect("900 free, at or above half the reserve");
        assert_eq!(reserve.free_bytes(), 600);
        reserve.take_for_commit(100).expect("600 free");
        reserve.take_for_commit(1).expect("500 free: exactly half");
        let err = reserve.take_for_commit(1).expect_err("499 free, below half");
        assert_eq!(err.reason(), rill_protocol::reason::Reason::DiskFull);
        assert!(err.to_string().contains("499") && err.to_string().contains("half"), "{err}");
        assert_eq!(reserve.refused_appends(), 2, "the refused append and the refused commit");
        let off = DiskReserve::new(dir.path(), Some(0));
        off.free_bytes.store(0, Ordering::Relaxed);
        off.take_for_commit(1).expect("0 keeps no reserve");
    }

    #[test]
    fn appends_are_refused_below_the_reserve_naming_the_dir_and_both_figures() {
        let dir = tempfile::tempdir().expect("a dir");
        let reserve = DiskReserve::new(dir.path(), Some(1000));
        assert!(reserve.free_bytes() > 1000 && reserve.check().is_ok(), "a temp dir has room");
        reserve.free_bytes.store(999, Ordering::Relaxed);
        let err = reserve.check().expect_err("below");
        assert_eq!(err.reason(), rill_protocol::reason::Reason::DiskFull);
        let message = err.to_string();
        assert!(
            message.contains("999") && message.contains("1000") && message.contains("min_free_disk_bytes"),
            "{message}"
        );
        reserve.refresh();
        assert!(reserve.check().is_ok(), "read again: the temp dir's room is back");
        let off = DiskReserve::new(dir.path(), Some(0));
        off.free_bytes.store(0, Ordering::Relaxed);
        assert!(off.check().is_ok(), "0 keeps no reserve");
    }
}
