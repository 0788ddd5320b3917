//! The batch codecs, Kafka's four: gzip, snappy, lz4 and zstd, as Kafka clients write them.
//!
//! Only the records section of a batch is compressed ([`crate::compressed`] frames it). The client compresses
//! what it produces and decompresses what it fetches; the broker decompresses what it is sent, to check the
//! records inside before it stores them (`crate::produce_validation`), and to serve STRUCTURED fetches.
//!
//! The formats, as Kafka's own clients write them (and so as the broker must read them):
//! - gzip: one or more gzip members (RFC 1952).
//! - snappy: xerial's framing (`\x82SNAPPY\0`, version, compatible version, then blocks each prefixed by its
//!   big-endian length), which the Java client and librdkafka write; a bare snappy block is read too.
//! - lz4: LZ4 frames. Independent blocks (what Kafka's and this client's encoders write) are decoded
//!   straight into the output buffer; linked blocks go through `lz4_flex`'s frame decoder.
//! - zstd: one or more zstd frames.
//!
//! [`Decompressor`] keeps what one thread reuses from batch to batch: the zstd context (~100 KiB of tables)
//! and gzip's inflate state, allocated once, not per batch. Output always goes straight into the caller's buffer, so the records are
//! written once, never decompressed into a scratch buffer and copied out. zstd compression keeps its context per
//! thread the same way (`compress_zstd`).

use std::cell::RefCell;
use std::io::{Read, Write};

use crate::batch::Compression;
use crate::BatchError;

/// Largest records section a batch may inflate to, on the broker's produce path and in a STRUCTURED fetch.
/// The same as the client's default `max_decompressed_bytes`: the broker refuses a batch its consumers could
/// not read. A small batch that inflates without bound is an attack, not data.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// xerial's snappy stream header: magic, then version 1 and compatible version 1 (big-endian i32s).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
/// xerial's default block size, what the Java client writes.
const XERIAL_BLOCK_BYTES: usize = 32 << 10;

const LZ4_MAGIC: u32 = 0x184D_2204;
const LZ4_FLG_INDEPENDENT: u8 = 0x20;
const LZ4_FLG_BLOCK_CHECKSUM: u8 = 0x10;
const LZ4_FLG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLG_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_FLG_DICT_ID: u8 = 0x01;
const LZ4_UNCOMPRESSED_BLOCK: u32 = 0x8000_0000;

/// The codec's name, for messages.
pub fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "uncompressed",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Kafka's default level of each codec (`compression.gzip.level` -1, which is zlib's 6; `compression.lz4.level` 9;
/// `compression.zstd.level` 3), what a batch is compressed at when nobody chose a level. Snappy and none have none.
pub fn default_level(codec: Compression) -> i32 {
    match codec {
        Compression::Gzip => GZIP_DEFAULT_LEVEL,
        Compression::Lz4 => LZ4_DEFAULT_LEVEL,
        Compression::Zstd => ZSTD_DEFAULT_LEVEL,
        Compression::None | Compression::Snappy => 0,
    }
}

/// Kafka's `compression.gzip.level` range (KIP-390): 1 to 9, or -1 for zlib's default (6).
pub const GZIP_LEVELS: std::ops::RangeInclusive<i32> = 1..=9;
pub const GZIP_DEFAULT_LEVEL: i32 = 6;
/// Kafka's `compression.lz4.level` range: 1 to 17 (lz4-java's; LZ4 HC itself stops improving at 12).
pub const LZ4_LEVELS: std::ops::RangeInclusive<i32> = 1..=17;
/// Kafka's default lz4 level, which its encoder (and this one) serves with LZ4's fast compressor, not LZ4 HC.
pub const LZ4_DEFAULT_LEVEL: i32 = 9;
/// Kafka's `compression.zstd.level` range: zstd's own, from its fastest negative level to 22.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -131_072..=22;
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// LZ4 frame header of what [`compress_into`] writes for LZ4 HC: independent blocks of at most 64 KiB, no
/// checksums, as Kafka's encoder writes them.
const LZ4_HC_FLG: u8 = 0x40 | LZ4_FLG_INDEPENDENT;
const LZ4_BD_64KB: u8 = 4 << 4;
const LZ4_HC_BLOCK_BYTES: usize = 64 << 10;

/// Appends `records` compressed with `codec` to `out`, at `level` in Kafka's terms: gzip 0-9 (-1: 6), zstd its
/// own levels, lz4 1-17 where Kafka's default 9 (and anything outside 1-17) is LZ4's fast compressor and the other
/// levels LZ4 HC, as Kafka's encoder chooses. Snappy has no level.
pub fn compress_into(codec: Compression, level: i32, records: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let failed = |e: std::io::Error| BatchError::Compress { codec: codec_name(codec), reason: e.to_string() };
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip => {
            let level = if level < 0 { GZIP_DEFAULT_LEVEL } else { level.min(9) };
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level as u32));
            encoder.write_all(records).map_err(failed)?;
            encoder.finish().map_err(failed)?;
        }
        Compression::Snappy => {
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(XERIAL_BLOCK_BYTES) {
                let at = out.len();
                out.resize(at + 4 + snap::raw::max_compress_len(block.len()), 0);
                let written = encoder
                    .compress(block, &mut out[at + 4..])
                    .map_err(|e| BatchError::Compress { codec: "snappy", reason: e.to_string() })?;
                out[at..at + 4].copy_from_slice(&(written as u32).to_be_bytes());
                out.truncate(at + 4 + written);
            }
        }
        Compression::Lz4 if level == LZ4_DEFAULT_LEVEL || !LZ4_LEVELS.contains(&level) => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(out);
            encoder.write_all(records).map_err(failed)?;
            encoder.finish().map_err(|e| BatchError::Compress { codec: "lz4", reason: e.to_string() })?;
        }
        Compression::Lz4 => lz4_hc_frame(level, records, out)?,
        Compression::Zstd => {
            compress_zstd(level.clamp(*ZSTD_LEVELS.start(), *ZSTD_LEVELS.end()), records, out).map_err(failed)?
        }
    }
    Ok(())
}

thread_local! {
    /// The zstd compression context a thread reuses from batch to batch: its tables are allocated once (and grown
    /// for a bigger batch or level), not per batch.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// One zstd frame of `records` appended to `out`, in one call with the size known: zstd sizes its tables to the
/// batch, so a high level costs the memory of a batch, not of its 128 MiB window.
fn compress_zstd(level: i32, records: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let at = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(records.len()));
    let mut into = std::io::Cursor::new(&mut *out);
    into.set_position(at as u64);
    ZSTD_COMPRESSOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            let compressor = match &mut *kept {
                Some(compressor) => {
                    compressor.set_compression_level(level)?;
                    compressor
                }
                None => kept.insert(zstd::bulk::Compressor::new(level)?),
            };
            let written = compressor.compress_to_buffer(records, &mut into);
            // A high level on a big batch grows the tables to many MiB: not kept on every thread for good.
            if compressor.context_mut().sizeof() > KEPT_BUFFER_BYTES {
                *kept = None;
            }
            written
        }
        Err(_) => zstd::bulk::Compressor::new(level)?.compress_to_buffer(records, &mut into),
    })?;
    Ok(())
}

/// An LZ4 frame of `records` in LZ4 HC blocks at `level` (liblz4's; it stops at 12).
fn lz4_hc_frame(level: i32, records: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let failed = |e: std::io::Error| BatchError::Compress { codec: "lz4", reason: e.to_string() };
    out.extend_from_slice(&LZ4_MAGIC.to_le_bytes());
    let descriptor = [LZ4_HC_FLG, LZ4_BD_64KB];
    out.extend_from_slice(&descriptor);
    out.push((twox_hash::XxHash32::oneshot(0, &descriptor) >> 8) as u8);
    let bound = lz4::block::compress_bound(LZ4_HC_BLOCK_BYTES).map_err(failed)?;
    for block in records.chunks(LZ4_HC_BLOCK_BYTES) {
        let at = out.len();
        out.resize(at + 4 + bound, 0);
        let mode = Some(lz4::block::CompressionMode::HIGHCOMPRESSION(level));
        let written = lz4::block::compress_to_buffer(block, mode, false, &mut out[at + 4..]).map_err(failed)?;
        // A block that does not shrink is stored as it is, flagged, as LZ4 frames allow.
        let length = if written >= block.len() {
            out[at + 4..at + 4 + block.len()].copy_from_slice(block);
            block.len() as u32 | LZ4_UNCOMPRESSED_BLOCK
        } else {
            written as u32
        };
        out[at..at + 4].copy_from_slice(&length.to_le_bytes());
        out.truncate(at + 4 + (length & !LZ4_UNCOMPRESSED_BLOCK) as usize);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

/// Decompresses records sections, reusing its codec contexts from one batch to the next. One per thread
/// ([`with_decompressor`]), or one per long-lived reader.
#[derive(Default)]
pub struct Decompressor {
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
    /// Raw-deflate state for gzip members (~40 KiB of window and tables, allocated once).
    gzip: Option<flate2::Decompress>,
}

impl Decompressor {
    /// Replaces `out`'s contents with `section` decompressed with `codec`; at most `limit_bytes` of them.
    /// A section that is not a whole, valid stream of its codec is an error, never a panic.
    pub fn decompress_into(
        &mut self,
        codec: Compression,
        section: &[u8],
        limit_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), BatchError> {
        out.clear();
        let name = codec_name(codec);
        let corrupt = |reason: String| BatchError::Decompress { codec: name, reason };
        match codec {
            Compression::None => {
                if section.len() > limit_bytes {
                    return Err(BatchError::InflatesPastLimit { codec: name, limit_bytes });
                }
                out.extend_from_slice(section);
            }
            Compression::Gzip => {
                let inflate = self.gzip.get_or_insert_with(|| flate2::Decompress::new(false));
                decompress_gzip(inflate, section, limit_bytes, out).map_err(corrupt)?
            }
            Compression::Snappy => decompress_snappy(section, limit_bytes, out).map_err(corrupt)?,
            Compression::Lz4 => decompress_lz4(section, limit_bytes, out).map_err(corrupt)?,
            Compression::Zstd => self.decompress_zstd(section, limit_bytes, out).map_err(corrupt)?,
        }
        if out.len() > limit_bytes {
            out.clear();
            return Err(BatchError::InflatesPastLimit { codec: name, limit_bytes });
        }
        Ok(())
    }

    fn decompress_zstd(&mut self, section: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let decoder = match &mut self.zstd {
            Some(decoder) => {
                decoder.reinit().map_err(|e| e.to_string())?;
                decoder
            }
            None => self.zstd.insert(zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?),
        };
        if section.is_empty() {
            return Err("no zstd frame".into());
        }
        let mut input = InBuffer::around(section);
        // Ends at a frame boundary (the last call returned 0) with all input consumed.
        let mut frame_done = false;
        while input.pos() < section.len() || !frame_done {
            if out.len() > limit_bytes {
                return Ok(()); // the caller reports the limit
            }
            if out.capacity() - out.len() < 16 << 10 {
                let want = (section.len() * 4).clamp(64 << 10, 4 << 20);
                out.reserve(want.min(limit_bytes + 1 - out.len().min(limit_bytes)).max(16 << 10));
            }
            let before = (input.pos(), out.len());
            let len = out.len();
            let mut output = OutBuffer::around_pos(out, len);
            let hint = decoder.run(&mut input, &mut output).map_err(|e| e.to_string())?;
            frame_done = hint == 0;
            if (input.pos(), out.len()) == before && !frame_done {
                return Err("the zstd stream ends inside a frame".into());
            }
        }
        Ok(())
    }
}

/// The decompression buffer a thread keeps between batches is cut back to this once a batch grew it past:
/// the common batch reuses it, a rare huge one does not pin its size on every thread for good.
const KEPT_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    static THREAD_DECOMPRESSOR: RefCell<(Decompressor, Vec<u8>)> = RefCell::new((Decompressor::default(), Vec::new()));
}

/// Runs `f` with this thread's [`Decompressor`] and its reused output buffer. Not reentrant: `f` must not
/// call it again (a nested call gets fresh ones rather than a panic).
pub fn with_decompressor<R>(f: impl FnOnce(&mut Decompressor, &mut Vec<u8>) -> R) -> R {
    THREAD_DECOMPRESSOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut reused) => {
            let (decompressor, buffer) = &mut *reused;
            let result = f(decompressor, buffer);
            if buffer.capacity() > KEPT_BUFFER_BYTES {
                buffer.clear();
                buffer.shrink_to(KEPT_BUFFER_BYTES);
            }
            result
        }
        Err(_) => f(&mut Decompressor::default(), &mut Vec::new()),
    })
}

/// One or more gzip members (RFC 1952): each header is skipped, its deflate stream inflated straight into `out`
/// with the reused `inflate`, and its trailer's CRC-32 and size checked.
fn decompress_gzip(
    inflate: &mut flate2::Decompress,
    section: &[u8],
    limit_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if section.is_empty() {
        return Err("no gzip member".into());
    }
    let mut rest = section;
    while !rest.is_empty() {
        let deflated = gzip_member_body(rest)?;
        inflate.reset(false);
        let member_start = out.len();
        loop {
            if out.len() > limit_bytes {
                return Ok(()); // the caller reports the limit
            }
            if out.capacity() - out.len() < 16 << 10 {
                out.reserve((deflated.len() * 4).clamp(64 << 10, 4 << 20));
            }
            let (in_before, out_before) = (inflate.total_in(), out.len());
            let input = deflated.get(in_before as usize..).unwrap_or_default();
            // Not `Finish`: on a first call miniz takes that to mean the output has room for everything and
            // fails the stream when it has not (any batch inflating past 4 times its size into a fresh buffer).
            let status = inflate
                .decompress_vec(input, out, flate2::FlushDecompress::None)
                .map_err(|e| format!("bad deflate stream: {e}"))?;
            if status == flate2::Status::StreamEnd {
                break;
            }
            if inflate.total_in() == in_before && out.len() == out_before {
                return Err("the gzip member ends inside its deflate stream".into());
            }
        }
        let consumed = inflate.total_in() as usize;
        let trailer = deflated.get(consumed..consumed + 8).ok_or("gzip trailer cut short")?;
        let inflated = &out[member_start..];
        if u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) != inflated.len() as u32 {
            return Err("gzip member size does not match its trailer".into());
        }
        if u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) != crc32fast::hash(inflated) {
            return Err("gzip member CRC-32 does not match its contents".into());
        }
        rest = &deflated[consumed + 8..];
    }
    Ok(())
}

/// The deflate stream (and trailer) of the gzip member at the front of `member`, past its header.
fn gzip_member_body(member: &[u8]) -> Result<&[u8], String> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let fixed = member.first_chunk::<10>().ok_or("gzip header cut short")?;
    if fixed[0..2] != [0x1f, 0x8b] {
        return Err("not a gzip member (bad magic)".into());
    }
    if fixed[2] != 8 {
        return Err(format!("gzip compression method {} is not deflate (8)", fixed[2]));
    }
    let flags = fixed[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = member.get(at..at + 2).ok_or("gzip extra field cut short")?;
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let text = member.get(at..).ok_or("gzip header cut short")?;
            at += text.iter().position(|&b| b == 0).ok_or("gzip name or comment without its end")? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    member.get(at..).ok_or_else(|| "gzip header cut short".into())
}

/// xerial-framed snappy, or one bare snappy block.
fn decompress_snappy(section: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(compressed).map_err(|e| e.to_string())?;
        // A snappy element of n bytes yields at most 64 / 3 * n (a 3-byte copy of 64): a length beyond that is a
        // lie, refused before the output it claims is allocated and zero-filled.
        if len > compressed.len().saturating_mul(22).saturating_add(64) {
            return Err(format!("a snappy block of {} bytes claims {len} bytes of output", compressed.len()));
        }
        if out.len() + len > limit_bytes {
            // Past the limit: the caller reports it, without inflating the block.
            out.resize(limit_bytes + 1, 0);
            return Ok(());
        }
        let at = out.len();
        out.resize(at + len, 0);
        let written = decoder.decompress(compressed, &mut out[at..]).map_err(|e| e.to_string())?;
        out.truncate(at + written);
        Ok(())
    };
    let Some(mut rest) = section.strip_prefix(&XERIAL_MAGIC[..]) else {
        if section.is_empty() {
            return Err("no snappy data".into());
        }
        return block(section, out);
    };
    rest = rest.get(XERIAL_HEADER_BYTES - XERIAL_MAGIC.len()..).ok_or("xerial header cut short")?;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or("xerial block length cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        let compressed = tail.get(..len).ok_or("xerial block longer than the batch")?;
        block(compressed, out)?;
        if out.len() > limit_bytes {
            return Ok(());
        }
        rest = &tail[len..];
    }
    Ok(())
}

/// LZ4 frames. Blocks of a frame with independent blocks are decoded straight into `out`; a frame with linked
/// blocks (each may refer back to the one before) goes through `lz4_flex`'s frame decoder.
fn decompress_lz4(section: &[u8], limit_bytes: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if section.is_empty() {
        return Err("no lz4 frame".into());
    }
    let mut rest = section;
    while !rest.is_empty() {
        let magic = rest.first_chunk::<4>().map(|m| u32::from_le_bytes(*m)).ok_or("lz4 frame header cut short")?;
        if magic != LZ4_MAGIC {
            return Err(format!("bad lz4 frame magic {magic:#010x}"));
        }
        let flg = *rest.get(4).ok_or("lz4 frame header cut short")?;
        if flg & LZ4_FLG_INDEPENDENT == 0 {
            // Linked blocks: rare (neither Kafka's nor this crate's encoder writes them), decoded the slow way.
            return lz4_flex::frame::FrameDecoder::new(rest)
                .take(limit_bytes.saturating_sub(out.len()) as u64 + 1)
                .read_to_end(out)
                .map(drop)
                .map_err(|e| e.to_string());
        }
        // BD bits 6-4: the frame's largest block, 64 KiB (4) to 4 MiB (7). A block's output is zero-filled before
        // it is decoded into, so this bounds that fill to one block (filling 4 MiB for every 64 KiB block made
        // the broker's lz4 check several times slower).
        let bd = *rest.get(5).ok_or("lz4 frame header cut short")?;
        let max_block_bytes = match (bd >> 4) & 0x07 {
            4 => 64usize << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            other => return Err(format!("bad lz4 block size code {other}")),
        };
        let header_bytes =
            7 + if flg & LZ4_FLG_CONTENT_SIZE != 0 { 8 } else { 0 } + if flg & LZ4_FLG_DICT_ID != 0 { 4 } else { 0 };
        let block_checksum = if flg & LZ4_FLG_BLOCK_CHECKSUM != 0 { 4 } else { 0 };
        rest = rest.get(header_bytes..).ok_or("lz4 frame header cut short")?;
        loop {
            let (size, tail) = rest.split_first_chunk::<4>().ok_or("lz4 frame ends without its end mark")?;
            let size = u32::from_le_bytes(*size);
            if size == 0 {
                rest = tail;
                break;
            }
            let len = (size & !LZ4_UNCOMPRESSED_BLOCK) as usize;
            let block = tail.get(..len).ok_or("lz4 block longer than the batch")?;
            rest = tail.get(len + block_checksum..).ok_or("lz4 block checksum cut short")?;
            if size & LZ4_UNCOMPRESSED_BLOCK != 0 {
                out.extend_from_slice(block);
            } else {
                // An LZ4 block of n bytes yields at most ~255 n (each extra match-length byte adds 255): the
                // zero-fill is bounded by that too, so tiny blocks in a frame of 4 MiB blocks cost no more than
                // real data would.
                let possible = block.len().saturating_mul(255).saturating_add(64);
                let room = max_block_bytes.min(possible).min(limit_bytes + 1 - out.len().min(limit_bytes));
                let at = out.len();
                out.resize(at + room, 0);
                match lz4_flex::block::decompress_into(block, &mut out[at..]) {
                    Ok(written) => out.truncate(at + written),
                    // Out of room below the limit: the block inflates past it, which the caller reports.
                    Err(lz4_flex::block::DecompressError::OutputTooSmall { .. })
                        if room < max_block_bytes.min(possible) =>
                    {
                        return Ok(())
                    }
                    Err(e) => {
                        out.truncate(at);
                        return Err(e.to_string());
                    }
                }
            }
            if out.len() > limit_bytes {
                return Ok(());
            }
        }
        if flg & LZ4_FLG_CONTENT_CHECKSUM != 0 {
            rest = rest.get(4..).ok_or("lz4 content checksum cut short")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 997) as u8).collect()
    }

    fn compressed(codec: Compression, records: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress_into(codec, default_level(codec), records, &mut out).expect("compress");
        out
    }

    /// Kafka's levels (KIP-390) reach the codecs: every level of each range round-trips, through this decoder and,
    /// for LZ4 HC's frames, lz4_flex's (which checks the header's checksum); a higher level shrinks compressible
    /// records more than a low one; lz4's default stays LZ4's fast compressor, the others are LZ4 HC.
    #[test]
    fn every_kafka_level_of_each_codec_round_trips_and_higher_levels_shrink_more() {
        let records: Vec<u8> =
            (0..30_000u32).flat_map(|i| format!("order-{} amount={}\n", i % 5000, i % 97).into_bytes()).collect();
        let size = |codec, level| {
            let mut out = Vec::new();
            compress_into(codec, level, &records, &mut out).expect("compress");
            let mut decoded = Vec::new();
            Decompressor::default()
                .decompress_into(codec, &out, 64 << 20, &mut decoded)
                .unwrap_or_else(|e| panic!("{codec:?} at level {level}: {e}"));
            assert!(decoded == records, "{codec:?} at level {level}");
            if codec == Compression::Lz4 {
                let mut read = Vec::new();
                lz4_flex::frame::FrameDecoder::new(&out[..]).read_to_end(&mut read).expect("a valid LZ4 frame");
                assert!(read == records, "lz4 level {level} through lz4_flex");
            }
            out.len()
        };
        let gzip: Vec<i32> = GZIP_LEVELS.collect();
        let lz4: Vec<i32> = LZ4_LEVELS.collect();
        for (codec, levels) in
            [(Compression::Gzip, gzip), (Compression::Lz4, lz4), (Compression::Zstd, vec![-5, 1, 9, 19])]
        {
            let sizes: Vec<usize> = levels.iter().map(|level| size(codec, *level)).collect();
            assert!(sizes[sizes.len() - 1] < sizes[0], "{codec:?}: {sizes:?} bytes at levels {levels:?}");
        }
        assert!(size(Compression::Zstd, 22) < size(Compression::Zstd, 1));
        assert!(size(Compression::Gzip, -1) == size(Compression::Gzip, 6), "-1 is zlib's default, 6");
        let mut fast = lz4_flex::frame::FrameEncoder::new(Vec::new());
        fast.write_all(&records).unwrap();
        let mut default = Vec::new();
        compress_into(Compression::Lz4, LZ4_DEFAULT_LEVEL, &records, &mut default).unwrap();
        assert!(default == fast.finish().unwrap(), "Kafka's default lz4 level is LZ4's fast compressor");
        assert!(default.len() == size(Compression::Lz4, 0), "outside 1-17 is the default");
        assert!(size(Compression::Lz4, 12) < default.len(), "HC below the fast compressor");
    }

    /// The thread's zstd context carries nothing from one batch to the next: each frame is the one a fresh
    /// context makes at that level, whatever level and size came before, appended after what `out` held.
    #[test]
    fn a_reused_zstd_context_makes_what_a_fresh_one_makes() {
        let small: Vec<u8> = (0..5_000u32).flat_map(|i| format!("small {} ", i % 13).into_bytes()).collect();
        let big: Vec<u8> = (0..60_000u32).flat_map(|i| format!("big {} {} ", i % 700, i % 3).into_bytes()).collect();
        for (records, level) in [(&big, 19), (&small, 1), (&big, 3), (&small, -5), (&small, 19), (&big, 1)] {
            let mut out = b"header".to_vec();
            compress_into(Compression::Zstd, level, records, &mut out).expect("compress");
            let fresh = zstd::bulk::compress(records, level).expect("fresh");
            assert!(out[..6] == *b"header" && out[6..] == fresh[..], "level {level}, {} bytes", records.len());
        }
    }

    #[test]
    fn lz4_hc_stores_a_block_that_does_not_shrink_as_it_is() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..150_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut out = Vec::new();
        compress_into(Compression::Lz4, 12, &noise, &mut out).expect("compress");
        let first_block = u32::from_le_bytes(out[7..11].try_into().unwrap());
        assert_ne!(first_block & LZ4_UNCOMPRESSED_BLOCK, 0, "noise is stored, flagged");
        let mut decoded = Vec::new();
        Decompressor::default().decompress_into(Compression::Lz4, &out, 1 << 20, &mut decoded).expect("decompress");
        assert!(decoded == noise);
        let mut read = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&out[..]).read_to_end(&mut read).expect("a valid LZ4 frame");
        assert!(read == noise);
    }

    #[test]
    fn every_codec_round_trips_into_one_reused_buffer() {
        let mut decompressor = Decompressor::default();
        let mut out = Vec::new();
        for len in [0usize, 1, 100, 70_000, 300_000] {
            let records = sample(len);
            for codec in CODECS {
                let section = compressed(codec, &records);
                decompressor.decompress_into(codec, &section, 1 << 20, &mut out).expect("decompress");
                assert_eq!(out, records, "{codec:?} of {len} bytes");
            }
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let mut out = Vec::new();
        for codec in &CODECS[1..] {
            for garbage in [&b""[..], b"plain text, not a compressed stream", &[0xff; 64]] {
                let decoded = Decompressor::default().decompress_into(*codec, garbage, 1 << 20, &mut out);
                assert!(matches!(decoded, Err(BatchError::Decompress { .. })), "{codec:?} of {garbage:?}: {decoded:?}");
            }
        }
    }

    #[test]
    fn a_stream_cut_short_is_an_error() {
        let records = sample(10_000);
        for codec in &CODECS[1..] {
            let section = compressed(*codec, &records);
            let cut = &section[..section.len() - 5];
            let decoded = Decompressor::default().decompress_into(*codec, cut, 1 << 20, &mut Vec::new());
            assert!(decoded.is_err(), "{codec:?}");
        }
    }

    /// Text-like records inflate to 5 or more times their gzip size: each must decode into a fresh buffer, and into
    /// a buffer reused at any size, as a broker thread's first batch and its later ones do.
    #[test]
    fn gzip_that_inflates_many_times_its_size_decodes_into_a_fresh_buffer() {
        for count in [10_000u32, 200_000] {
            let records: Vec<u8> = (0..count)
                .flat_map(|i| format!("{{\"order\":{},\"status\":\"paid\"}}\n", i % 3000).into_bytes())
                .collect();
            for level in [1, 6, 9] {
                let mut section = Vec::new();
                compress_into(Compression::Gzip, level, &records, &mut section).expect("compress");
                assert!(section.len() * 5 < records.len(), "a ratio past 5: {} of {}", section.len(), records.len());
                for mut out in [Vec::new(), Vec::with_capacity(100), Vec::with_capacity(10 << 20)] {
                    Decompressor::default()
                        .decompress_into(Compression::Gzip, &section, 64 << 20, &mut out)
                        .unwrap_or_else(|e| panic!("level {level}, {count} records: {e}"));
                    assert!(out == records);
                }
            }
        }
    }

    #[test]
    fn gzip_members_with_header_fields_several_members_and_bad_trailers() {
        let records = sample(50_000);
        let mut encoder = flate2::GzBuilder::new()
            .filename("batch")
            .comment("from another producer")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&records[..20_000]).unwrap();
        let mut section = encoder.finish().unwrap();
        section.extend(compressed(Compression::Gzip, &records[20_000..]));
        let mut decompressor = Decompressor::default();
        let mut out = Vec::new();
        decompressor.decompress_into(Compression::Gzip, &section, 1 << 20, &mut out).unwrap();
        assert_eq!(out, records);
        let mut bad_crc = compressed(Compression::Gzip, &records);
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let refused = decompressor.decompress_into(Compression::Gzip, &bad_crc, 1 << 20, &mut out);
        assert!(
            matches!(refused, Err(BatchError::Decompress { ref reason, .. }) if reason.contains("CRC")),
            "{refused:?}"
        );
    }

    #[test]
    fn a_snappy_block_claiming_more_than_it_can_hold_is_refused_before_allocating() {
        // Varint 0x7fffffff (2 GiB), then one literal byte: the claim is refused, not zero-filled.
        let lie = [0xff, 0xff, 0xff, 0xff, 0x07, 0x00, b'x'];
        let refused =
            Decompressor::default().decompress_into(Compression::Snappy, &lie, usize::MAX - 1, &mut Vec::new());
        assert!(
            matches!(refused, Err(BatchError::Decompress { ref reason, .. }) if reason.contains("claims")),
            "{refused:?}"
        );
    }

    #[test]
    fn inflating_past_the_limit_is_refused_for_every_codec() {
        let records = vec![7u8; 200_000];
        for codec in CODECS {
            let section = compressed(codec, &records);
            let decoded = Decompressor::default().decompress_into(codec, &section, 1000, &mut Vec::new());
            assert!(matches!(decoded, Err(BatchError::InflatesPastLimit { limit_bytes: 1000, .. })), "{codec:?}");
        }
    }

    #[test]
    fn linked_or_large_lz4_blocks_and_bare_snappy_are_read_too() {
        let records = sample(300_000);
        let info = lz4_flex::frame::FrameInfo::new().block_mode(lz4_flex::frame::BlockMode::Linked);
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(&records).unwrap();
        let linked = encoder.finish().unwrap();
        let mut out = Vec::new();
        Decompressor::default().decompress_into(Compression::Lz4, &linked, 1 << 20, &mut out).unwrap();
        assert_eq!(out, records);
        for size in [lz4_flex::frame::BlockSize::Max256KB, lz4_flex::frame::BlockSize::Max4MB] {
            let info = lz4_flex::frame::FrameInfo::new().block_size(size).block_checksums(true).content_checksum(true);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            encoder.write_all(&records).unwrap();
            let big_blocks = encoder.finish().unwrap();
            Decompressor::default().decompress_into(Compression::Lz4, &big_blocks, 1 << 20, &mut out).unwrap();
            assert_eq!(out, records, "{size:?}");
        }
        let bare = snap::raw::Encoder::new().compress_vec(&records).unwrap();
        Decompressor::default().decompress_into(Compression::Snappy, &bare, 1 << 20, &mut out).unwrap();
        assert_eq!(out, records);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sections_never_panic(codec in 1usize..5, bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Decompressor::default().decompress_into(CODECS[codec], &bytes, 1 << 16, &mut Vec::new());
        }
    }
}
