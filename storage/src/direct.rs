//! Appends that bypass the page cache (`O_DIRECT`).
//!
//! Why: a buffered append copies every byte into the page cache, and on a VM whose free memory goes back to
//! the host that copy lands on fresh pages and costs more CPU than the rest of the broker together; the pages
//! then wait for writeback, which throttles a sustained produce at the buffered write speed of the disk. A
//! direct write hands the device our own (reused, warm) buffer instead.
//!
//! What must stay true:
//! - `O_DIRECT` writes whole aligned blocks from aligned memory, so the last partial block of the file is kept
//!   here ([`DirectAppender::tail`]) and written again, whole, with the next append. The block is padded with
//!   zeros: the file may be up to a block longer than the segment's logical size until the segment is sealed,
//!   which cuts it back. After a crash recovery finds the zeros where a batch header should be and truncates
//!   there, exactly as it treats a torn write.
//! - Zeros ahead. A small append that an fsync follows (`Durability::Always`, or while callers wait for fsyncs;
//!   at most [`ZEROS_AHEAD_MAX_APPEND`]) goes through the page cache into zeros written ahead of it
//!   ([`DirectAppender::keep_zeroed_through`], [`ZEROS_AHEAD`] at a time, direct, so they take no page cache),
//!   padded with zeros to the end of its page so that the kernel need not read the page first. A write that
//!   neither grows the file nor fills a hole changes no metadata: the fdatasync after it writes the page and
//!   flushes the device's cache, where a growing file also had its inode written first (the new size; this
//!   machine's ext4 runs without a journal, which would otherwise have had to commit it). Such a file may be up to
//!   `ZEROS_AHEAD` and a page longer than the segment until it is sealed (and by one such append more, if a crash
//!   came between the zeros and its write); recovery treats those zeros as it treats a direct write's padding.
//!   So an active segment holds at most that much more disk than its batches, once per partition.
//! - Every append is written (not staged) before `append` returns: a process crash never loses an acknowledged
//!   batch, as with buffered writes.
//! - Readers keep reading through the segment's ordinary descriptor; the kernel invalidates cached pages a
//!   direct write covers, and readers only read below the published size, whose bytes never change.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use bytes::{Bytes, BytesMut};

/// The alignment of offsets, lengths and memory for `O_DIRECT`: 4 KiB suits 512-byte and 4 KiB sector disks.
pub(crate) const BLOCK_BYTES: usize = 4096;

/// The most one direct write carries: a bigger batch goes in several writes, so the staging memory stays
/// bounded per thread whatever the batch size.
const STAGE_BYTES: usize = 1 << 20;

thread_local! {
    /// Staging memory for direct writes: one per appending thread, not one per segment, so a broker with
    /// thousands of partitions holds a few megabytes of it, not gigabytes.
    static STAGE: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::new(STAGE_BYTES));
}

/// How far past a synced small append the file is filled with written zeros at a time: one direct write and one
/// inode write per this much appended (about 230 appends of 1 KB), where a growing file had its inode written
/// with every fsync. The fill holds up the append that makes it, by about 0.15 ms here.
pub(crate) const ZEROS_AHEAD: u64 = 256 << 10;

/// The largest append that goes into zeros written ahead; a larger synced append that is still small (under
/// `direct_min_batch_bytes`, when set higher) grows the file. It bounds the zeros a crash can leave past the last
/// batch, between a fill and the write it was for: recovery takes no more than that as padding.
pub(crate) const ZEROS_AHEAD_MAX_APPEND: u64 = 64 << 10;

/// Zeros to fill ahead from, aligned for `O_DIRECT`; allocated by the first append that needs them.
static ZEROS: std::sync::OnceLock<AlignedBuf> = std::sync::OnceLock::new();

/// A block-aligned window inside an over-allocated `Vec`, found with `align_offset` (no `unsafe`).
struct AlignedBuf {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let vec = vec![0u8; len + BLOCK_BYTES];
        let start = vec.as_ptr().align_offset(BLOCK_BYTES);
        assert!(start < BLOCK_BYTES, "a u8 pointer can always be aligned within one block");
        Self { vec, start, len }
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }

    fn bytes(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }
}

/// The direct-write side of one segment's `.log`.
pub(crate) struct DirectAppender {
    file: File,
    /// The file's bytes from the start of the block holding `tail_end` up to `tail_end`.
    tail: Box<[u8; BLOCK_BYTES]>,
    /// Where the bytes in `tail` end; `None` until they are loaded from the file (after an open, or after a
    /// failed write, when the file may hold anything past the logical size).
    tail_end: Option<u64>,
    /// The file's length as our writes left it (past the segment's end it holds written zeros); `None` until
    /// read from the file, and after a write that may have left it anything else.
    file_end: Option<u64>,
}

impl DirectAppender {
    /// Opens `path` for direct writes; `Ok(None)` if its file system refuses `O_DIRECT`.
    pub fn open(path: &Path) -> io::Result<Option<Self>> {
        match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Ok(Some(Self { file, tail: Box::new([0; BLOCK_BYTES]), tail_end: None, file_end: None })),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file changed under us: a write through the page cache ended at `end`. The next direct write loads the
    /// partial block again, and the file may have grown.
    pub fn wrote_buffered_through(&mut self, end: u64) {
        self.tail_end = None;
        self.file_end = self.file_end.filter(|&file_end| file_end >= end);
    }

    /// The file may have been cut or grown by someone else: read its length again before the next fill.
    pub fn forget_file_end(&mut self) {
        self.file_end = None;
    }

    /// Makes sure the file holds written bytes (data, or zeros written before) up to `end`, a block boundary: if
    /// not, writes zeros from its end to [`ZEROS_AHEAD`] past `end`, direct. Call it before a write through the
    /// page cache up to `end` that an fsync follows (the module's "Zeros ahead").
    pub fn keep_zeroed_through(&mut self, end: u64) -> io::Result<()> {
        let file_end = match self.file_end {
            Some(file_end) => file_end,
            None => self.file.metadata()?.len(),
        };
        self.file_end = Some(file_end);
        if end <= file_end {
            return Ok(());
        }
        // From the first block boundary at or past the file's end: the bytes before it are the segment's, or
        // read as zeros.
        let mut at = file_end.next_multiple_of(BLOCK_BYTES as u64);
        let zeros = ZEROS.get_or_init(|| AlignedBuf::new(ZEROS_AHEAD as usize)).bytes();
        while at < end + ZEROS_AHEAD {
            let len = (end + ZEROS_AHEAD - at).min(zeros.len() as u64) as usize;
            if let Err(e) = self.file.write_all_at(&zeros[..len], at) {
                self.file_end = None;
                return Err(e);
            }
            at += len as u64;
            self.file_end = Some(at);
        }
        Ok(())
    }

    /// Whether the file is known to hold written bytes up to `end` (no zeros to write before a write ending there).
    pub fn has_zeros_through(&self, end: u64) -> bool {
        self.file_end.is_some_and(|file_end| file_end >= end)
    }

    /// A direct write just ended at `end`: the file is at least that long now.
    fn wrote_direct_through(&mut self, end: u64) {
        self.file_end = self.file_end.map(|file_end| file_end.max(end));
    }

    /// Writes `parts`, one after the other, at `position` (the segment's logical size). `reader` is the
    /// segment's ordinary descriptor, used to load the partial last block when it is not already held.
    pub fn write_at(&mut self, position: u64, parts: &[&[u8]], reader: &File) -> io::Result<()> {
        let result = self.write_parts(position, parts, reader);
        if result.is_err() {
            self.tail_end = None;
            self.file_end = None;
        }
        result
    }

    /// [`DirectAppender::write_at`] staged in `buffer` (any capacity; it grows if needed) instead of the thread's
    /// staging memory, which the caller keeps: the written batches are `buffer[start..end]` of the answer. One copy
    /// of the record bytes serves both the device write and the tail cache. The answer: the buffer, its capacity,
    /// and `start..end`.
    pub fn write_kept(
        &mut self,
        position: u64,
        parts: &[&[u8]],
        reader: &File,
        buffer: BytesMut,
    ) -> io::Result<(Bytes, usize, usize, usize)> {
        let result = self.write_kept_parts(position, parts, reader, buffer);
        if result.is_err() {
            self.tail_end = None;
            self.file_end = None;
        }
        result
    }

    fn write_kept_parts(
        &mut self,
        position: u64,
        parts: &[&[u8]],
        reader: &File,
        mut buffer: BytesMut,
    ) -> io::Result<(Bytes, usize, usize, usize)> {
        let block = BLOCK_BYTES as u64;
        let file_position = position - position % block;
        let tail_len = (position - file_position) as usize;
        if self.tail_end != Some(position) {
            reader.read_exact_at(&mut self.tail[..tail_len], file_position)?;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let filled = tail_len + len;
        let padded = filled.next_multiple_of(BLOCK_BYTES);
        buffer.clear();
        buffer.reserve(padded + BLOCK_BYTES);
        // The write starts at the first block boundary of the buffer's memory; the bytes before it are unused.
        let head = buffer.as_ptr().align_offset(BLOCK_BYTES);
        buffer.resize(head, 0);
        buffer.extend_from_slice(&self.tail[..tail_len]);
        for part in parts {
            buffer.extend_from_slice(part);
        }
        buffer.resize(head + padded, 0);
        self.file.write_all_at(&buffer[head..head + padded], file_position)?;
        self.wrote_direct_through(file_position + padded as u64);
        let whole_blocks = filled - filled % BLOCK_BYTES;
        self.tail[..filled - whole_blocks].copy_from_slice(&buffer[head + whole_blocks..head + filled]);
        self.tail_end = Some(position + len as u64);
        let capacity = buffer.capacity();
        Ok((buffer.freeze(), capacity, head + tail_len, head + filled))
    }

    fn write_parts(&mut self, position: u64, parts: &[&[u8]], reader: &File) -> io::Result<()> {
        let block = BLOCK_BYTES as u64;
        let mut file_position = position - position % block;
        let tail_len = (position - file_position) as usize;
        if self.tail_end != Some(position) {
            reader.read_exact_at(&mut self.tail[..tail_len], file_position)?;
        }
        STAGE.with(|stage| {
            let mut stage = stage.borrow_mut();
            let stage = stage.window();
            stage[..tail_len].copy_from_slice(&self.tail[..tail_len]);
            let mut filled = tail_len;
            for part in parts {
                let mut part: &[u8] = part;
                while !part.is_empty() {
                    let n = part.len().min(stage.len() - filled);
                    stage[filled..filled + n].copy_from_slice(&part[..n]);
                    filled += n;
                    part = &part[n..];
                    if filled == stage.len() {
                        self.file.write_all_at(stage, file_position)?;
                        file_position += stage.len() as u64;
                        filled = 0;
                    }
                }
            }
            let whole_blocks = filled - filled % BLOCK_BYTES;
            let new_tail_len = filled - whole_blocks;
            if filled > 0 {
                let padded = filled.next_multiple_of(BLOCK_BYTES);
                stage[filled..padded].fill(0);
                self.file.write_all_at(&stage[..padded], file_position)?;
                file_position += padded as u64;
            }
            self.wrote_direct_through(file_position);
            self.tail[..new_tail_len].copy_from_slice(&stage[whole_blocks..filled]);
            let written: usize = parts.iter().map(|p| p.len()).sum();
            self.tail_end = Some(position + written as u64);
            Ok(())
        })
    }
}

/// Reads `len` bytes at `position` through `file`, opened with `O_DIRECT`: from the device into memory of our
/// own, never through the page cache, so a replay costs the broker no page-cache copy (and fills no page cache
/// that the next append would have to evict). The whole aligned span is read; the answer is a slice of it.
pub(crate) fn read_at(file: &File, position: u64, len: usize) -> io::Result<Bytes> {
    let start = position - position % BLOCK_BYTES as u64;
    let skew = (position - start) as usize;
    let span = (skew + len).next_multiple_of(BLOCK_BYTES);
    // Not zeroed first: zeroing was 3.4% of a replay's CPU, for bytes the read overwrites at once.
    let mut buf: Vec<u8> = Vec::with_capacity(span + BLOCK_BYTES);
    let head = buf.as_ptr().align_offset(BLOCK_BYTES);
    buf.resize(head, 0);
    let mut got = 0;
    while got < skew + len {
        let spare = &mut buf.spare_capacity_mut()[..span - got];
        // Short only at the end of the file (a sealed segment is not a whole number of blocks), where the
        // bytes wanted are already in.
        let n = pread_uninit(file, spare, start + got as u64)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the segment ends before its size"));
        }
        // SAFETY: `pread_uninit` initialized the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        got += n;
    }
    Ok(Bytes::from(buf).slice(head + skew..head + skew + len))
}

/// `pread` into memory that is not initialized yet; the first `n` (the answer) bytes of `into` are afterwards.
fn pread_uninit(file: &File, into: &mut [std::mem::MaybeUninit<u8>], position: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off_t::try_from(position).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: the kernel writes at most `into.len()` bytes into `into`, which we own exclusively; writing
        // to uninitialized memory is what `MaybeUninit` is for.
        let n = unsafe { libc::pread(file.as_raw_fd(), into.as_mut_ptr().cast(), into.len(), offset) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Opens `path` for direct reads; `Ok(None)` if its file system refuses `O_DIRECT`.
pub(crate) fn open_reader(path: &Path) -> io::Result<Option<File>> {
    match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many of a directly written segment's newest bytes stay in memory ([`RecentBytes`]).
const RECENT_BYTES: usize = 256 << 10;

/// The newest bytes of a directly written segment, in memory. A consumer tailing the log reads what was just
/// appended; without this, every such read (and the batch-header read that finds where it starts) would wait
/// for the device, which is the difference between a sub-millisecond and a ~2 ms end-to-end p99. Batches bigger
/// than a quarter of it are not kept: a workload of big batches is there for throughput, and the copy into
/// memory would cost more than the device read it saves.
#[derive(Default)]
pub(crate) struct RecentBytes {
    /// The file position of `bytes[0]`.
    start: u64,
    bytes: std::collections::VecDeque<u8>,
}

impl RecentBytes {
    /// Records an append of `parts` at `position`, once it is written.
    pub fn push(&mut self, position: u64, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let is_contiguous = position == self.start + self.bytes.len() as u64;
        if !is_contiguous || len > RECENT_BYTES / 4 {
            self.bytes.clear();
            self.start = position + len as u64;
            return;
        }
        let excess = (self.bytes.len() + len).saturating_sub(RECENT_BYTES);
        self.bytes.drain(..excess);
        self.start += excess as u64;
        for part in parts {
            self.bytes.extend(part.iter());
        }
    }

    /// `len` bytes at `position`, if all of them are held.
    pub fn read(&self, position: u64, len: usize) -> Option<Bytes> {
        // Checked before allocating: most reads of a segment are of older bytes, and a zeroed buffer the size of
        // a fetch, thrown away, cost ~3% of a replay's CPU.
        let (front, back) = self.slices(position, len)?;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(front);
        out.extend_from_slice(back);
        Some(Bytes::from(out))
    }

    /// Fills `into` with the bytes at `position`, if all of them are held; a batch header read this way
    /// allocates nothing.
    pub fn read_into(&self, position: u64, into: &mut [u8]) -> bool {
        let Some((front, back)) = self.slices(position, into.len()) else { return false };
        into[..front.len()].copy_from_slice(front);
        into[front.len()..].copy_from_slice(back);
        true
    }

    /// The `len` bytes at `position` as the two pieces the ring holds them in, if all of them are held.
    fn slices(&self, position: u64, len: usize) -> Option<(&[u8], &[u8])> {
        if position < self.start || position + len as u64 > self.start + self.bytes.len() as u64 {
            return None;
        }
        let from = (position - self.start) as usize;
        let (front, back) = self.bytes.as_slices();
        let front_from = from.min(front.len());
        let in_front = (front.len() - front_from).min(len);
        let back_from = from - front_from;
        Some((&front[front_from..front_from + in_front], &back[back_from..back_from + (len - in_front)]))
    }

    /// Frees the memory: the segment is sealed, its readers go to the device.
    pub fn clear(&mut self) {
        self.bytes = std::collections::VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appender(dir: &Path) -> (DirectAppender, File, std::path::PathBuf) {
        let path = dir.join("direct.log");
        let reader = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let appender = DirectAppender::open(&path).unwrap().expect("the test directory's file system takes O_DIRECT");
        (appender, reader, path)
    }

    /// Appends of every size around the block and stage boundaries leave exactly the bytes written, in order,
    /// followed by zeros to the end of the last block.
    #[test]
    fn appends_of_any_size_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (mut appender, reader, path) = appender(dir.path());
        let mut expected = Vec::new();
        let sizes = [1, 15, 4096 - 16, 4096, 4097, 100, STAGE_BYTES - 3, STAGE_BYTES, 2 * STAGE_BYTES + 5, 7];
        for (i, size) in sizes.into_iter().enumerate() {
            let head = [i as u8; 3];
            let body: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            appender.write_at(expected.len() as u64, &[&head, &body], &reader).unwrap();
            expected.extend_from_slice(&head);
            expected.extend_from_slice(&body);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), expected.len().next_multiple_of(BLOCK_BYTES));
            assert_eq!(&on_disk[..expected.len()], &expected[..], "after append {i} of {size} bytes");
            assert!(on_disk[expected.len()..].iter().all(|&b| b == 0), "padding is zeros");
        }
    }

    /// Direct reads return exactly the bytes asked for, at any position and length, also past a sealed
    /// segment's last whole block.
    #[test]
    fn direct_reads_return_exactly_the_range_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.log");
        let bytes: Vec<u8> = (0..3 * BLOCK_BYTES + 123).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let reader = open_reader(&path).unwrap().unwrap();
        for (position, len) in [(0, 1), (0, bytes.len()), (4095, 2), (4096, 4096), (5000, bytes.len() - 5000), (17, 0)]
        {
            let read = read_at(&reader, position as u64, len).unwrap();
            assert_eq!(&read[..], &bytes[position..position + len], "{len} bytes at {position}");
        }
        assert!(read_at(&reader, 0, bytes.len() + 1).is_err(), "a read past the end is an error, not garbage");
    }

    /// Recent bytes answer exactly what was appended at the positions asked, across the ring's wrap, and nothing
    /// they no longer hold.
    #[test]
    fn recent_bytes_answer_only_what_they_hold() {
        let mut recent = RecentBytes::default();
        let mut log = Vec::new();
        for i in 0..200usize {
            let batch: Vec<u8> = (0..(i * 997) % 9000 + 1).map(|b| (b + i) as u8).collect();
            let cut = 5.min(batch.len());
            recent.push(log.len() as u64, &[&batch[..cut], &batch[cut..]]);
            log.extend_from_slice(&batch);
            for (position, len) in [(log.len() - batch.len(), batch.len()), (log.len().saturating_sub(100_000), 50_000)]
            {
                if let Some(read) = recent.read(position as u64, len) {
                    assert_eq!(&read[..], &log[position..position + len]);
                }
            }
            assert!(recent.read(0, log.len()).is_none() || log.len() <= RECENT_BYTES);
            let last = log.len() - batch.len();
            assert!(recent.read(last as u64, batch.len()).is_some(), "the newest batch is always held");
            let mut head = vec![0u8; batch.len().min(61)];
            assert!(recent.read_into(last as u64, &mut head));
            assert_eq!(head, &log[last..last + head.len()]);
            assert!(!recent.read_into(log.len() as u64, &mut head), "nothing past the end");
        }
        recent.push(log.len() as u64, &[&vec![1u8; RECENT_BYTES]]);
        assert!(recent.read((log.len() - 1) as u64, 1).is_none(), "a big batch empties it");
    }

    /// A new appender (as after a reopen) picks the partial last block up from the file.
    #[test]
    fn a_fresh_appender_continues_a_file_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, reader, path) = appender(dir.path());
        first.write_at(0, &[b"hello, "], &reader).unwrap();
        let mut second = DirectAppender::open(&path).unwrap().unwrap();
        second.write_at(7, &[b"world"], &reader).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..12], b"hello, world");
    }
}
