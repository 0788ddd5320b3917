//! Merging small segments after compaction, as Kafka's cleaner groups them: a compacted topic's segments shrink
//! pass after pass (a quiet topic with a short `segment.ms` rolls one per append), and without merging it would
//! keep a file, two index files and a descriptor's worth of cache for every segment it ever had.
//!
//! After a pass, runs of neighbouring segments wholly below where compaction has reached are copied, batch bytes
//! unchanged, into one file at the first one's base offset, while they fit one segment: `segment_bytes`, offsets
//! relative to the base within `u32`, and index entries within `index_max_bytes`. Offsets, batches and epochs do
//! not change; only which file holds them.
//!
//! The swap spans several files, so it has a commit point of its own: the merged file is written as
//! `<base>.cleaned`, fsynced and checked as recovery checks a segment, then renamed to `<base>-<next>.swap` (the
//! offsets it holds in its name) and the directory fsynced. From there the merge is done: the old segments'
//! files are removed and the swap renamed to `<base>.log` ([`complete_swap`]), and a crash anywhere in that is
//! finished at the next open the same way ([`complete_swaps`]); before it, the leftover `.cleaned` is removed and
//! the old segments stay. Readers holding an old segment keep reading its pinned file
//! ([`Segment::pin_before_replacement`]).

use std::fs::{self, File};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compaction::{check_rewrite, corrupt, remove_if_present, Rewrite, CLEANED_SUFFIX};
use super::{epoch_at, lock, Log};
use crate::checkpoint::EpochStart;
use crate::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::{LogConfig, Result, StorageError};

/// The suffix of a merged segment's file from its commit until it takes its place.
pub(crate) const SWAP_SUFFIX: &str = "swap";

/// Bytes of the larger index entry (the time index's: a timestamp and a relative offset), for how many entries
/// a merged segment may need.
const LARGEST_INDEX_ENTRY_BYTES: u64 = 12;

impl Log {
    /// Merges each run of neighbouring segments below `end` that fits one segment (see the module doc); the
    /// number of segments that went. Called by a compaction pass with the log's epochs.
    pub(super) fn merge_small_segments(&self, end: i64, epochs: &[EpochStart]) -> Result<usize> {
        let config = self.config();
        let candidates: Vec<Arc<Segment>> = {
            let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
            // Never the active segment: each has a successor.
            segments
                .values()
                .zip(segments.keys().skip(1))
                .take_while(|(segment, _)| segment.next_offset() <= end)
                .map(|(segment, _)| Arc::clone(segment))
                .collect()
        };
        let mut merged = 0;
        for run in runs_that_fit(&candidates, &config) {
            if run.len() < 2 {
                continue;
            }
            if !self.merge(run, epochs)? {
                break;
            }
            merged += run.len() - 1;
        }
        Ok(merged)
    }

    /// Merges `run` into one segment. `Ok(false)`: one of its segments left the log meanwhile (retention), and
    /// nothing changed.
    fn merge(&self, run: &[Arc<Segment>], epochs: &[EpochStart]) -> Result<bool> {
        let base = run[0].base_offset();
        let next = run[run.len() - 1].next_offset();
        let path = segment_path(self.dir.path(), base, CLEANED_SUFFIX);
        let bytes = match concatenate(run, &path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = remove_if_present(&path);
                // A segment retention removed while it was copied: the run is no longer the log's.
                let is_in_log = self.holds_all(run);
                return if is_in_log { Err(e) } else { Ok(false) };
            }
        };
        let rewrite = Rewrite { path, bytes, records_removed: 0 };
        let epoch_of = |offset: i64| epoch_at(epochs, offset);
        if let Err(e) = check_rewrite(&rewrite, base, next, &epoch_of, self.config().index_interval_bytes) {
            let _ = remove_if_present(&rewrite.path);
            return Err(e);
        }
        let _rewrite = lock(&self.rewrite);
        self.ensure_open()?;
        if !self.holds_all(run) {
            remove_if_present(&rewrite.path)?;
            return Ok(false);
        }
        let swap = swap_path(self.dir.path(), base, next);
        fs::rename(&rewrite.path, &swap).map_err(StorageError::io(&rewrite.path))?;
        self.dir.sync()?;
        // Committed. From here a crash is finished at the next open; the old segments' readers read their own files.
        for segment in run {
            segment.pin_before_replacement()?;
        }
        complete_swap(self.dir.path(), base, next, || self.dir.sync())?;
        for segment in run {
            self.segment_settings.files.forget(segment.log_path());
        }
        let reopened = self.reopen_rewritten(base, next, bytes, epochs)?;
        let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
        for segment in &run[1..] {
            segments.remove(&segment.base_offset());
        }
        segments.insert(base, Arc::new(reopened));
        drop(segments);
        tracing::debug!(dir = %self.dir.display(), base, next, segments = run.len(), bytes, "merged segments");
        Ok(true)
    }

    /// Whether every segment of `run` is still the log's, as it was.
    fn holds_all(&self, run: &[Arc<Segment>]) -> bool {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        run.iter().all(|s| segments.get(&s.base_offset()).is_some_and(|current| Arc::ptr_eq(current, s)))
    }
}

/// `candidates` (neighbours, in offset order) cut into runs, each as long as it still fits one segment.
fn runs_that_fit<'a>(candidates: &'a [Arc<Segment>], config: &LogConfig) -> Vec<&'a [Arc<Segment>]> {
    let max_entries = config.index_max_bytes / LARGEST_INDEX_ENTRY_BYTES;
    let fits = |bytes: u64, base: i64, next: i64| {
        bytes <= config.segment_bytes
            && next - 1 - base <= i64::from(u32::MAX)
            && bytes / config.index_interval_bytes.max(1) < max_entries
    };
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, segment) in candidates.iter().enumerate() {
        let with = bytes + segment.size();
        if i > start && !fits(with, candidates[start].base_offset(), segment.next_offset()) {
            runs.push(&candidates[start..i]);
            start = i;
            bytes = segment.size();
        } else {
            bytes = with;
        }
    }
    if start < candidates.len() {
        runs.push(&candidates[start..]);
    }
    runs
}

/// Writes the segments' batches, one after the other, to `path` and fsyncs it; the bytes written.
fn concatenate(run: &[Arc<Segment>], path: &Path) -> Result<u64> {
    let mut output = BufWriter::with_capacity(1 << 20, File::create(path).map_err(StorageError::io(path))?);
    let mut bytes = 0;
    for segment in run {
        let source = File::open(segment.log_path()).map_err(StorageError::io(segment.log_path()))?;
        let copied = std::io::copy(&mut source.take(segment.size()), &mut output).map_err(StorageError::io(path))?;
        if copied != segment.size() {
            return Err(corrupt(segment.log_path(), "the segment file is shorter than the segment"));
        }
        bytes += copied;
    }
    let file = output.into_inner().map_err(|e| StorageError::io(path)(e.into_error()))?;
    file.sync_all().map_err(StorageError::io(path))?;
    Ok(bytes)
}

/// `<base>-<next>.swap`: a merged segment's file, committed, holding offsets `base..next`.
fn swap_path(dir: &Path, base: i64, next: i64) -> PathBuf {
    dir.join(format!("{base:020}-{next:020}.{SWAP_SUFFIX}"))
}

/// The offsets a swap file's name says it holds.
fn parse_swap_name(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(&format!(".{SWAP_SUFFIX}"))?;
    let (base, next) = stem.split_once('-')?;
    let (base, next) = (base.parse::<i64>().ok()?, next.parse::<i64>().ok()?);
    (base >= 0 && next > base).then_some((base, next))
}

/// Puts the committed swap `<base>-<next>.swap` in the place of the segments it merged: every segment file
/// with a base offset in `base..next` goes (the `.log` at `base` is replaced by the rename), then the swap
/// becomes `<base>.log`, with the directory fsynced (`sync_dir`) after each step. Safe to run again after a crash
/// part way.
fn complete_swap(dir: &Path, base: i64, next: i64, sync_dir: impl Fn() -> Result<()>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, suffix)) = name.split_once('.') else { continue };
        let is_segment_file = [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX].contains(&suffix);
        let Ok(offset) = stem.parse::<i64>() else { continue };
        let is_merged = stem.len() == 20 && (base..next).contains(&offset);
        if is_segment_file && is_merged && !(offset == base && suffix == LOG_SUFFIX) {
            remove_if_present(&entry.path())?;
        }
    }
    sync_dir()?;
    let swap = swap_path(dir, base, next);
    let log = segment_path(dir, base, LOG_SUFFIX);
    fs::rename(&swap, &log).map_err(StorageError::io(&swap))?;
    sync_dir()
}

/// Finishes every merge a crash left committed but not done (see the module doc). Run at open, before the
/// segments are listed.
pub(crate) fn complete_swaps(dir: &Path) -> Result<()> {
    let mut swaps = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        if let Some(offsets) = entry.file_name().to_str().and_then(parse_swap_name) {
            swaps.push(offsets);
        }
    }
    for (base, next) in swaps {
        tracing::info!(dir = %dir.display(), base, next, "finishing a segment merge a crash interrupted");
        complete_swap(dir, base, next, || crate::checkpoint::sync_dir(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_names_the_offsets_it_holds() {
        let dir = Path::new("/d");
        let name = swap_path(dir, 40, 1234);
        assert_eq!(name, Path::new("/d/00000000000000000040-00000000000000001234.swap"));
        let name = name.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_swap_name(name), Some((40, 1234)));
        for other in ["00000000000000000040.log", "x-y.swap", "00000000000000000040-00000000000000000040.swap"] {
            assert_eq!(parse_swap_name(other), None, "{other}");
        }
    }
}
