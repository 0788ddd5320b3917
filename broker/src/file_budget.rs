//! The node's budget of open files: how many descriptors it may hold, what is set aside, and what each partition
//! costs, so that CreateTopic and AddPartitions are refused (RESOURCE_EXHAUSTED) before the process runs out,
//! instead of failing half-way with "Too many open files".
//!
//! What holds descriptors, and how many:
//! - a partition: its active segment's `.log`, and once appended to with `O_DIRECT`, a direct writer
//!   ([`files_per_partition`]); sealed segments and index files hold none of their own;
//! - segments being read other than through the active segment's own descriptor (sealed ones, and `O_DIRECT`
//!   reads of any): at most the [`SegmentFileCache`](rill_storage::SegmentFileCache)'s capacity,
//!   `max_open_segment_files`;
//! - connections: one each, up to `max_connections` (capped at a quarter of the limit);
//! - everything else (listener, epoll, stdio, the data dir lock, the committed-offsets log, files opened and
//!   closed while topics change): [`BASE_RESERVED_FILES`].

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Descriptors set aside for everything but partitions, sealed-segment reads and connections.
pub const BASE_RESERVED_FILES: u64 = 64;

/// Descriptors a partition holds at most: its active segment's `.log`, and with direct writes its `O_DIRECT`
/// writer (its `O_DIRECT` reads go through the segment file cache).
pub fn files_per_partition(direct_writes: bool) -> u64 {
    if direct_writes {
        2
    } else {
        1
    }
}

/// The segment file cache's size when `max_open_segment_files` is not set: a sixteenth of the open-file limit,
/// between 16 and 1,024.
pub fn default_segment_files(max_open_files: u64) -> usize {
    (max_open_files / 16).clamp(16, 1024) as usize
}

/// How many descriptors the node may open, and how many of them partitions may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudget {
    /// The process's open-file limit (RLIMIT_NOFILE, soft, after raising it to the hard limit).
    pub max_open_files: u64,
    /// Set aside for the segment file cache, connections and the rest.
    pub reserved_files: u64,
    pub files_per_partition: u64,
}

impl FileBudget {
    pub fn new(max_open_files: u64, segment_files: usize, config: &BrokerConfig) -> Self {
        let connections = (config.max_connections as u64).min(max_open_files / 4);
        Self {
            max_open_files,
            reserved_files: BASE_RESERVED_FILES + segment_files as u64 + connections,
            files_per_partition: files_per_partition(config.direct_writes),
        }
    }

    /// Most partitions the budget holds.
    pub fn max_partitions(&self) -> u64 {
        self.max_open_files.saturating_sub(self.reserved_files) / self.files_per_partition
    }

    /// Refuses `adding` more partitions to the `open` ones when they would not fit: `what` says what was asked
    /// (e.g. `creating topic "t" with 3 partitions`).
    pub fn check(&self, open: u64, adding: u64, what: String) -> Result<(), BrokerError> {
        if open + adding <= self.max_partitions() {
            return Ok(());
        }
        Err(BrokerError::TooManyOpenFiles {
            what,
            needed_files: adding * self.files_per_partition,
            max_open_files: self.max_open_files,
            committed_files: self.reserved_files + open * self.files_per_partition,
        })
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (a process may, without privileges) and returns the limit in
/// force afterwards. If raising fails the current soft limit stands and is returned.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, soft = before, hard = limit.rlim_max, "cannot raise the open-file limit");
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_open_files: u64, direct_writes: bool) -> FileBudget {
        let config = BrokerConfig { max_connections: 64, direct_writes, ..BrokerConfig::default() };
        FileBudget::new(max_open_files, default_segment_files(max_open_files), &config)
    }

    #[test]
    fn partitions_get_what_the_reserve_leaves() {
        // 256 files: 64 base, 16 cached segment files, 64 connections; 112 left, 2 per direct partition.
        assert_eq!(budget(256, true).max_partitions(), 56);
        assert_eq!(budget(256, false).max_partitions(), 112);
        assert_eq!(budget(100, true).max_partitions(), 0, "a limit below the reserve leaves no partition");
    }

    #[test]
    fn a_create_that_would_not_fit_is_refused_with_both_figures() {
        let budget = budget(256, true);
        assert!(budget.check(50, 6, "x".into()).is_ok());
        let err = budget.check(50, 12, "creating topic \"t\" with 12 partitions".into()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        let message = err.to_string();
        assert!(
            message.starts_with("creating topic \"t\" with 12 partitions would need 24 more open files"),
            "{message}"
        );
        assert!(message.contains("the broker may open 256"), "{message}");
    }

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
        let raised = raise_open_file_limit().unwrap();
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in raise_open_file_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(raised, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
