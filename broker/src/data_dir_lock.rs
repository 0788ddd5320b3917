//! One node per data directory. Two brokers appending to the same partition files would interleave
//! their writes and corrupt both; so a node holds an exclusive `flock` on `<data>/__lock` for its
//! whole life. The kernel drops the lock when the process dies, even by SIGKILL, so a crash never leaves
//! a stale lock behind (unlike a PID file).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "__lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data directory {0} is in use by another rill broker (it holds {0}/__lock)")]
    InUse(PathBuf),
    #[error("cannot lock data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for as long as the node runs; dropping it (closing the file) releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        // SAFETY: `flock` takes a file descriptor and flags and touches no memory of ours; the descriptor
        // is valid for the duration of the call because `file` owns it.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.kind() {
                std::io::ErrorKind::WouldBlock => LockError::InUse(data_dir.to_owned()),
                _ => io(err),
            });
        }
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_fails_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path());
        assert!(matches!(second, Err(LockError::InUse(_))), "{second:?}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
