//! Opening a segment that exists on disk, and making one take appends again: where a segment's files are
//! checked against each other and, when they disagree, rescanned.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::BatchHeader;

use super::{
    read_lock, segment_path, write_lock, OpenMode, Segment, SegmentIo, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::index::{LoadError, OffsetIndex, TimeIndex};
use crate::recovery::{self, EpochRule, IndexCursor, ScanOutcome, ScanStart};
use crate::{Result, StorageError};

impl Segment {
    /// Opens an existing segment. With `needs_scan`, or when an index is missing or implausible, the
    /// `.log` is scanned: the result says where the valid batches end (the caller truncates) and the
    /// indexes are rebuilt from it.
    pub fn open(dir: &Path, base_offset: i64, mode: &OpenMode<'_>) -> Result<(Self, Option<ScanOutcome>)> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new().read(true).write(true).open(&log_path).map_err(StorageError::io(&log_path))?;
        let file_bytes = file.metadata().map_err(StorageError::io(&log_path))?.len();
        let index_path = segment_path(dir, base_offset, INDEX_SUFFIX);
        let time_index_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        let loaded = match (mode.needs_scan, mode.known_next_offset) {
            (false, Some(next)) => {
                let offsets = OffsetIndex::load(&index_path, base_offset, next, |e| u64::from(e.position) < file_bytes);
                let times = TimeIndex::load(&time_index_path, base_offset, next, |_| true);
                match (offsets, times) {
                    (Ok(o), Ok(t)) => Some((o, t, next)),
                    (Err(LoadError::Io(e)), _) | (_, Err(LoadError::Io(e))) => return Err(e),
                    (o, t) => {
                        let offsets = o.err().map_or_else(|| "ok".to_owned(), |e| e.to_string());
                        let times = t.err().map_or_else(|| "ok".to_owned(), |e| e.to_string());
                        tracing::warn!(path = %log_path.display(), offsets, times, "rebuilding index files from the log");
                        None
                    }
                }
            }
            _ => None,
        };
        // A loaded segment is trusted only if its tail agrees: the batches after the last index entry
        // end exactly at the end of the file, at the offset the log expects. A file that lost its end
        // (a disk that acknowledged a sync it did not do) is rescanned and truncated like a torn one.
        let loaded = loaded.filter(|(offset_index, _, next)| {
            let from = offset_index.last().map_or((0, base_offset), |e| (u64::from(e.position), e.offset));
            let consistent = tail_ends_at(&file, from, file_bytes, *next);
            if !consistent {
                tracing::warn!(path = %log_path.display(), "segment tail disagrees with its neighbours; rescanning");
            }
            consistent
        });
        if let Some((offset_index, time_index, next)) = loaded {
            let max_timestamp = time_index.last().map_or(i64::MIN, |e| e.timestamp);
            let segment = Self {
                base_offset,
                log_path,
                held_file: RwLock::new(Some(Arc::new(file))),
                files: Arc::clone(&mode.settings.files),
                size: AtomicU64::new(file_bytes),
                next_offset: AtomicI64::new(next),
                max_timestamp: AtomicI64::new(max_timestamp),
                created_ms: AtomicI64::new(mode.now_ms),
                offset_index: RwLock::new(offset_index),
                time_index: RwLock::new(time_index),
                io: SegmentIo::new(mode.settings),
                replaced: std::sync::OnceLock::new(),
            };
            return Ok((segment, None));
        }
        let scan = recovery::scan(
            &file,
            &log_path,
            ScanStart::segment_start(base_offset),
            mode.settings.index_interval_bytes,
            &mode.epochs,
            mode.previous_epoch,
        )?;
        let mut offset_index = OffsetIndex::create(&index_path, base_offset, mode.settings.index_max_bytes)?;
        let mut time_index = TimeIndex::create(&time_index_path, base_offset, mode.settings.index_max_bytes)?;
        for entry in &scan.offset_entries {
            offset_index.append(*entry)?;
        }
        for entry in &scan.time_entries {
            time_index.append(*entry)?;
        }
        let segment = Self {
            base_offset,
            log_path,
            held_file: RwLock::new(Some(Arc::new(file))),
            files: Arc::clone(&mode.settings.files),
            size: AtomicU64::new(scan.valid_bytes),
            next_offset: AtomicI64::new(scan.next_offset),
            max_timestamp: AtomicI64::new(scan.cursor.max_timestamp),
            created_ms: AtomicI64::new(mode.now_ms),
            offset_index: RwLock::new(offset_index),
            time_index: RwLock::new(time_index),
            io: SegmentIo::new(mode.settings),
            replaced: std::sync::OnceLock::new(),
        };
        Ok((segment, Some(scan)))
    }

    /// Makes a reopened last segment take appends again: grows the index files back, and rescans
    /// the batches after the last offset index entry to restore the index cursor an append would
    /// have left. The same scan checks the tail: anything after the last whole valid batch (a
    /// clean-shutdown marker does not prove the tail intact) is cut off.
    pub fn resume_append(&self, index_max_bytes: u64, interval: u64, epochs: &EpochRule<'_>) -> Result<IndexCursor> {
        if read_lock(&self.held_file).is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)
                .map_err(StorageError::io(&self.log_path))?;
            *write_lock(&self.held_file) = Some(Arc::new(file));
            self.files.forget(&self.log_path);
        }
        let file = self.held_file()?;
        write_lock(&self.offset_index).reopen_for_append(index_max_bytes);
        write_lock(&self.time_index).reopen_for_append(index_max_bytes);
        let last_time_entry = read_lock(&self.time_index).last().map(|e| e.timestamp);
        let cursor = IndexCursor::at_index_entry(last_time_entry);
        let start = match read_lock(&self.offset_index).last() {
            Some(entry) => ScanStart { position: u64::from(entry.position), offset: entry.offset, cursor },
            None => ScanStart { position: 0, offset: self.base_offset, cursor },
        };
        let scan = recovery::scan(&file, &self.log_path, start, interval, epochs, None)?;
        if let Some(damage) = &scan.damage {
            tracing::warn!(
                path = %self.log_path.display(),
                valid_bytes = scan.valid_bytes,
                dropped_bytes = scan.file_bytes - scan.valid_bytes,
                damage,
                "truncating the active segment at damaged data"
            );
            file.set_len(scan.valid_bytes).map_err(StorageError::io(&self.log_path))?;
            file.sync_all().map_err(StorageError::io(&self.log_path))?;
            write_lock(&self.offset_index).truncate_from_offset(scan.next_offset);
            write_lock(&self.time_index).truncate_from_offset(scan.next_offset);
        }
        // Entries the scan earned past the last one on disk (an index that lagged its log).
        for entry in &scan.offset_entries {
            let mut index = write_lock(&self.offset_index);
            if !index.is_full() && index.last().is_none_or(|l| l.offset < entry.offset) {
                index.append(*entry)?;
            }
        }
        for entry in &scan.time_entries {
            let mut index = write_lock(&self.time_index);
            if !index.is_full() && index.last().is_none_or(|l| l.offset < entry.offset) {
                index.append(*entry)?;
            }
        }
        self.size.store(scan.valid_bytes, Ordering::Release);
        self.next_offset.store(scan.next_offset, Ordering::Release);
        self.max_timestamp.store(scan.cursor.max_timestamp, Ordering::Release);
        Ok(scan.cursor)
    }
}

/// Walks batch headers from `(position, offset)` to the end of the file: true if they chain without a gap
/// and end exactly at `file_bytes` and `next_offset`.
fn tail_ends_at(file: &File, (mut position, mut offset): (u64, i64), file_bytes: u64, next_offset: i64) -> bool {
    let mut header_bytes = [0u8; HEADER_BYTES];
    while position < file_bytes {
        if file.read_exact_at(&mut header_bytes, position).is_err() {
            return false;
        }
        match BatchHeader::parse(&header_bytes) {
            Ok(header) if header.base_offset == offset => {
                position += header.total_bytes() as u64;
                offset = header.next_offset();
            }
            _ => return false,
        }
    }
    position == file_bytes && offset == next_offset
}
