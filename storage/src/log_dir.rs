//! A log's directory, and the fsyncs that make its entries durable: a new segment's file, a checkpoint or
//! snapshot renamed into place, segments removed by a truncation.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{Result, StorageError};

/// A log's directory. Its fsyncs go through [`LogDir::sync`], which remembers the first that failed and fails
/// every later one with the same reason, as a segment's data fsync does (`Segment::sync`): a directory's
/// entries are written back like a file's pages, and after a failed write-back Linux may keep them in memory as
/// clean, so a retry can succeed while a new segment's entry, or a truncation's removals, never reached the
/// disk. A crash would then lose that segment's acknowledged batches, or bring back removed ones. The log
/// refuses changes once its directory failed, until it is opened again.
#[derive(Debug)]
pub(crate) struct LogDir {
    path: PathBuf,
    sync_failure: OnceLock<String>,
    /// For tests: the next sync fails with this reason, as if the disk had said so.
    #[cfg(any(test, feature = "fault-injection"))]
    next_sync_fails: std::sync::Mutex<Option<String>>,
}

impl LogDir {
    pub(crate) fn new(path: &Path) -> Self {
        LogDir {
            path: path.to_owned(),
            sync_failure: OnceLock::new(),
            #[cfg(any(test, feature = "fault-injection"))]
            next_sync_fails: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the directory's entries durable, or says why they may not be, then and from then on.
    pub(crate) fn sync(&self) -> Result<()> {
        if let Some(failed) = self.sync_failure() {
            return Err(failed);
        }
        // Failing to open the directory (out of descriptors) says nothing of its entries: not remembered.
        let dir = File::open(&self.path).map_err(StorageError::io(&self.path))?;
        match self.fsync(&dir) {
            Ok(()) => Ok(()),
            Err(err) => {
                let reason = self.sync_failure.get_or_init(|| err.to_string());
                tracing::error!(dir = %self.path.display(), %reason, "fsync of a log's directory failed: it takes no more changes until reopened");
                Err(self.failed(reason))
            }
        }
    }

    #[cfg(not(any(test, feature = "fault-injection")))]
    fn fsync(&self, dir: &File) -> std::io::Result<()> {
        dir.sync_all()
    }

    #[cfg(any(test, feature = "fault-injection"))]
    fn fsync(&self, dir: &File) -> std::io::Result<()> {
        match self.next_sync_fails.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(reason) => Err(std::io::Error::other(reason)),
            None => dir.sync_all(),
        }
    }

    /// Why the directory's fsync failed, if one did since the log was opened.
    pub(crate) fn sync_failure(&self) -> Option<StorageError> {
        self.sync_failure.get().map(|reason| self.failed(reason))
    }

    fn failed(&self, reason: &str) -> StorageError {
        StorageError::FsyncFailed { path: self.path.clone(), reason: reason.to_owned() }
    }

    /// The next fsync of the directory fails with `reason`, as if the disk had said so; the ones after it reach
    /// the disk again (and succeed, which is what the latch must not believe).
    #[cfg(any(test, feature = "fault-injection"))]
    pub(crate) fn fail_next_sync(&self, reason: &str) {
        *self.next_sync_fails.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
    }
}

impl Deref for LogDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}
