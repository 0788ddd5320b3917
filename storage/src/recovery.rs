//! Scanning a segment's `.log` batch by batch: used to recover after an unclean shutdown and to
//! rebuild index files. The scan trusts nothing in the file: every batch is checked in full and the
//! scan stops at the first byte that is not a whole valid batch, saying why.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::BatchHeader;

use crate::checkpoint::{sync_dir, Checkpoint, EpochStart};
use crate::config::SegmentSettings;
use crate::index::{OffsetEntry, TimeEntry};
use crate::segment::{OpenMode, Segment, LOG_SUFFIX};
use crate::{Result, StorageError};

/// Decides where index entries go. Appends and rebuilds share it, so a rebuilt index holds exactly
/// the entries the appends wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexCursor {
    bytes_since_entry: u64,
    /// Largest timestamp of any batch so far in the segment.
    pub max_timestamp: i64,
    last_time_entry: i64,
    last_batch_base: Option<i64>,
}

impl Default for IndexCursor {
    fn default() -> Self {
        Self { bytes_since_entry: 0, max_timestamp: i64::MIN, last_time_entry: i64::MIN, last_batch_base: None }
    }
}

impl IndexCursor {
    /// Accounts for one batch at `position`; returns the index entries it earns.
    pub fn on_batch(
        &mut self,
        header: &BatchHeader,
        position: u32,
        interval_bytes: u64,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        let mut earned = (None, None);
        if self.bytes_since_entry >= interval_bytes {
            earned.0 = Some(OffsetEntry { offset: header.base_offset, position });
            if self.max_timestamp > self.last_time_entry {
                earned.1 = Some(TimeEntry { timestamp: self.max_timestamp, offset: header.base_offset });
                self.last_time_entry = self.max_timestamp;
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_bytes() as u64;
        self.last_batch_base = Some(header.base_offset);
        earned
    }

    /// The cursor just before the batch of the newest offset index entry (or the segment's first
    /// batch), given the newest time index entry: where a rescan of a segment's tail starts. The
    /// byte count is zero at both: an entry resets it, and a segment starts with it.
    pub fn at_index_entry(last_time_entry: Option<i64>) -> Self {
        let last_time_entry = last_time_entry.unwrap_or(i64::MIN);
        Self { bytes_since_entry: 0, max_timestamp: last_time_entry, last_time_entry, last_batch_base: None }
    }

    /// The time index entry a segment gets when sealed, so that its last entry holds its largest
    /// timestamp (what retention and timestamp lookups read).
    pub fn final_time_entry(&mut self) -> Option<TimeEntry> {
        let offset = self.last_batch_base?;
        if self.max_timestamp <= self.last_time_entry {
            return None;
        }
        self.last_time_entry = self.max_timestamp;
        Some(TimeEntry { timestamp: self.max_timestamp, offset })
    }
}

/// What a scan found: the valid prefix of the file, and the index entries for it.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of whole valid batches from the start of the file.
    pub valid_bytes: u64,
    pub file_bytes: u64,
    /// Offset after the last valid batch.
    pub next_offset: i64,
    pub cursor: IndexCursor,
    pub offset_entries: Vec<OffsetEntry>,
    pub time_entries: Vec<TimeEntry>,
    /// Leader epochs that start inside the valid prefix, for a log whose checkpoint was lost.
    pub epochs_seen: Vec<EpochStart>,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanStart {
    pub position: u64,
    pub offset: i64,
    /// The index state just before `position`.
    pub cursor: IndexCursor,
}

impl ScanStart {
    pub fn segment_start(base_offset: i64) -> Self {
        Self { position: 0, offset: base_offset, cursor: IndexCursor::default() }
    }
}

/// Which leader epoch a batch must carry: what the checkpoint says, or (checkpoint lost) any epoch
/// not below the previous one.
pub(crate) enum EpochRule<'a> {
    Known(&'a dyn Fn(i64) -> Option<i32>),
    NonDecreasing,
}

/// Scans from `start` (a batch boundary: the file's start, or an offset index entry) to the end of
/// the file.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    start: ScanStart,
    interval_bytes: u64,
    epochs: &EpochRule<'_>,
    previous_epoch: Option<i32>,
) -> Result<ScanOutcome> {
    let file_bytes = file.metadata().map_err(StorageError::io(path))?.len();
    let mut out = ScanOutcome {
        valid_bytes: start.position,
        file_bytes,
        next_offset: start.offset,
        cursor: start.cursor,
        offset_entries: Vec::new(),
        time_entries: Vec::new(),
        epochs_seen: Vec::new(),
        damage: None,
    };
    let mut last_epoch = previous_epoch;
    let mut buf = Vec::new();
    while out.valid_bytes < file_bytes {
        let pos = out.valid_bytes;
        match check_batch_at(file, path, pos, file_bytes, out.next_offset, &mut buf)? {
            Err(reason) => {
                // Zeros from the end of the last batch to the end of its block are what a direct write
                // pads with (see `direct.rs`): cut, but not damage.
                if !is_direct_write_padding(file, path, pos, file_bytes)? {
                    out.damage = Some(reason);
                }
                break;
            }
            Ok(header) => {
                let epoch = header.partition_leader_epoch;
                let epoch_ok = match epochs {
                    EpochRule::Known(epoch_at) => epoch_at(header.base_offset) == Some(epoch),
                    EpochRule::NonDecreasing => epoch >= 0 && last_epoch.is_none_or(|last| epoch >= last),
                };
                if !epoch_ok {
                    out.damage = Some(format!("batch at offset {} carries leader epoch {epoch}", header.base_offset));
                    break;
                }
                if last_epoch != Some(epoch) {
                    out.epochs_seen.push(EpochStart { epoch, start_offset: header.base_offset });
                    last_epoch = Some(epoch);
                }
                let (offset_entry, time_entry) = out.cursor.on_batch(&header, pos as u32, interval_bytes);
                out.offset_entries.extend(offset_entry);
                out.time_entries.extend(time_entry);
                out.valid_bytes += header.total_bytes() as u64;
                out.next_offset = header.next_offset();
            }
        }
    }
    Ok(out)
}

/// Zeros from the last batch to the end of an aligned file, no more than a direct write pads with and a synced
/// append's zeros ahead reach, its own bytes included if a crash came between the zeros and them (`direct.rs`,
/// "Zeros ahead").
fn is_direct_write_padding(file: &File, path: &Path, pos: u64, file_bytes: u64) -> Result<bool> {
    use crate::direct::{BLOCK_BYTES, ZEROS_AHEAD, ZEROS_AHEAD_MAX_APPEND};
    let block = BLOCK_BYTES as u64;
    if !file_bytes.is_multiple_of(block) || file_bytes - pos >= block + ZEROS_AHEAD + ZEROS_AHEAD_MAX_APPEND {
        return Ok(false);
    }
    let mut chunk = vec![0u8; (file_bytes - pos).min(64 << 10) as usize];
    let mut at = pos;
    while at < file_bytes {
        let len = (file_bytes - at).min(chunk.len() as u64) as usize;
        file.read_exact_at(&mut chunk[..len], at).map_err(StorageError::io(path))?;
        if chunk[..len].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += len as u64;
    }
    Ok(true)
}

/// Checks the batch at `pos`: `Ok(Err(reason))` is damage, `Err` an I/O failure.
fn check_batch_at(
    file: &File,
    path: &Path,
    pos: u64,
    file_bytes: u64,
    expected_offset: i64,
    buf: &mut Vec<u8>,
) -> Result<std::result::Result<BatchHeader, String>> {
    let remaining = file_bytes - pos;
    if remaining < HEADER_BYTES as u64 {
        return Ok(Err(format!("{remaining} trailing bytes are less than a batch header")));
    }
    let mut header_bytes = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut header_bytes, pos).map_err(StorageError::io(path))?;
    let header = match BatchHeader::parse(&header_bytes) {
        Ok(header) => header,
        Err(e) => return Ok(Err(format!("bad batch header at position {pos}: {e}"))),
    };
    let total = header.total_bytes() as u64;
    if total > remaining {
        return Ok(Err(format!("torn batch at position {pos}: needs {total} bytes, {remaining} present")));
    }
    if header.base_offset != expected_offset {
        return Ok(Err(format!(
            "batch at position {pos} has base offset {}, expected {expected_offset}",
            header.base_offset
        )));
    }
    buf.resize(total as usize, 0);
    file.read_exact_at(buf, pos).map_err(StorageError::io(path))?;
    Ok(rill_protocol::validate(buf).map_err(|e| format!("invalid batch at position {pos}: {e}")))
}

/// Base offsets of the `.log` files in `dir`, ascending. Leftover temporary files are removed.
pub(crate) fn segment_bases(dir: &Path) -> Result<Vec<i64>> {
    // A merge of segments a crash interrupted after its commit (`log/merge.rs`): finished first, so the listing
    // sees the merged segment and none of those it replaced.
    crate::log::complete_swaps(dir)?;
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!(".{}", crate::log::CLEANED_SUFFIX)) {
            // A compaction's rewrite that a crash (or a failure) left before it took its segment's place.
            let path = entry.path();
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(&format!(".{LOG_SUFFIX}")) {
            match stem.parse::<i64>() {
                Ok(base) if base >= 0 && stem.len() == 20 => bases.push(base),
                _ => {
                    tracing::warn!(dir = %dir.display(), file = name, "ignoring a .log file not named by a base offset")
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

pub(crate) struct Opened {
    pub segments: Vec<Segment>,
    pub epochs: Vec<EpochStart>,
}

/// Opens every segment, rescanning those past the recovery point after an unclean shutdown. At the
/// first damage the segment is truncated there and every later segment deleted: offsets must stay
/// dense, so nothing after a hole can be kept.
pub(crate) fn open_segments(
    dir: &Path,
    settings: &SegmentSettings,
    stored: Option<&Checkpoint>,
    bases: &[i64],
    now_ms: i64,
) -> Result<Opened> {
    let is_clean = stored.is_some_and(|c| c.is_clean_shutdown);
    let recovery_point = stored.map_or(i64::MIN, |c| c.recovery_point);
    let known_epochs = |offset: i64| stored.and_then(|c| c.epoch_at(offset));
    let epochs_rule = match stored {
        Some(c) if !c.epochs.is_empty() => EpochRule::Known(&known_epochs),
        _ => EpochRule::NonDecreasing,
    };
    let mut epochs = stored.map(|c| c.epochs.clone()).unwrap_or_default();
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let successor = bases.get(i + 1).copied();
        let is_last = successor.is_none();
        let known_next_offset = match successor {
            Some(next) => Some(next),
            None if is_clean => Some(recovery_point),
            None => None,
        };
        let past_recovery_point = successor.is_none_or(|next| next > recovery_point);
        let mode = OpenMode {
            needs_scan: !is_clean && past_recovery_point,
            known_next_offset,
            epochs: match &epochs_rule {
                EpochRule::Known(f) => EpochRule::Known(*f),
                EpochRule::NonDecreasing => EpochRule::NonDecreasing,
            },
            previous_epoch: epochs.last().map(|e| e.epoch),
            now_ms,
            settings,
        };
        let (segment, scan) = Segment::open(dir, base, &mode)?;
        let mut is_damaged = false;
        if let Some(scan) = scan {
            if matches!(epochs_rule, EpochRule::NonDecreasing) {
                for seen in &scan.epochs_seen {
                    if epochs.last().is_none_or(|last| last.epoch != seen.epoch) {
                        epochs.push(*seen);
                    }
                }
            }
            let ends_early = !is_last && scan.next_offset != successor.unwrap_or(i64::MAX);
            if let Some(damage) = &scan.damage {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    valid_bytes = scan.valid_bytes,
                    dropped_bytes = scan.file_bytes - scan.valid_bytes,
                    next_offset = scan.next_offset,
                    damage,
                    "recovery truncated the log at damaged data"
                );
            }
            if scan.valid_bytes < scan.file_bytes {
                truncate_file(dir, base, scan.valid_bytes)?;
            }
            segment.sync()?;
            is_damaged = scan.damage.is_some() || ends_early;
            if !is_last || is_damaged {
                segment.seal(&mut scan.cursor.clone())?;
            }
        }
        let is_empty_after_damage = is_damaged && segment.size() == 0 && !segments.is_empty();
        if is_empty_after_damage {
            segment.delete_files()?;
        } else {
            segments.push(segment);
        }
        if is_damaged {
            for &doomed in &bases[i + 1..] {
                tracing::warn!(dir = %dir.display(), segment = doomed, "deleting a segment that follows damaged data");
                for suffix in [LOG_SUFFIX, crate::segment::INDEX_SUFFIX, crate::segment::TIME_INDEX_SUFFIX] {
                    let path = crate::segment::segment_path(dir, doomed, suffix);
                    if let Err(e) = fs::remove_file(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            return Err(StorageError::io(path)(e));
                        }
                    }
                }
            }
            sync_dir(dir)?;
            break;
        }
    }
    // Only the last segment stays active; the others read through the shared cache of descriptors.
    for sealed in segments.iter().rev().skip(1) {
        sealed.close_file();
    }
    let log_end = segments.last().map_or(0, |s| s.next_offset());
    epochs.retain(|e| e.start_offset <= log_end);
    if epochs.is_empty() {
        epochs.push(EpochStart { epoch: 0, start_offset: segments.first().map_or(0, |s| s.base_offset()) });
    }
    Ok(Opened { segments, epochs })
}

fn truncate_file(dir: &Path, base: i64, len: u64) -> Result<()> {
    let path = crate::segment::segment_path(dir, base, LOG_SUFFIX);
    let file = fs::OpenOptions::new().write(true).open(&path).map_err(StorageError::io(&path))?;
    file.set_len(len).map_err(StorageError::io(&path))?;
    file.sync_all().map_err(StorageError::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::{BLOCK_BYTES, ZEROS_AHEAD, ZEROS_AHEAD_MAX_APPEND};
    use std::io::Write;

    /// Zeros past the last batch to the end of an aligned file are padding (a direct write's block, and the zeros
    /// written ahead of synced appends), not damage; anything else after them, or more of them, is.
    #[test]
    fn zeros_written_ahead_are_padding_and_nothing_more_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.log");
        let block = BLOCK_BYTES as u64;
        let check = |data_end: u64, file_bytes: u64, stray: Option<u64>| {
            let mut file = File::create(&path).unwrap();
            file.write_all(&vec![7u8; data_end as usize]).unwrap();
            file.set_len(file_bytes).unwrap();
            if let Some(at) = stray {
                file.write_all_at(&[1], at).unwrap();
            }
            is_direct_write_padding(&File::open(&path).unwrap(), &path, data_end, file_bytes).unwrap()
        };
        assert!(check(100, block, None), "a block's padding");
        assert!(check(100, block + ZEROS_AHEAD, None), "a page's padding and the zeros ahead");
        let most = block + ZEROS_AHEAD + ZEROS_AHEAD_MAX_APPEND;
        assert!(check(100, most, None), "zeros ahead of the largest append, which a crash kept from landing");
        assert!(!check(100, block + ZEROS_AHEAD, Some(block + ZEROS_AHEAD - 1)), "a stray byte at the end");
        assert!(!check(100, block + ZEROS_AHEAD, Some(70_000)), "a stray byte among the zeros");
        assert!(!check(100, most + block, None), "more zeros than were ever written ahead");
        assert!(!check(100, block + 1, None), "an unaligned file was not padded");
    }
}
