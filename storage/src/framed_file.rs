//! The framing a log's small metadata files share (the checkpoint, producer-state snapshots): an 8-byte magic,
//! the body, and a big-endian CRC-32 over both. Checked whole before any field is read, so a torn or damaged
//! file is refused as such and never half-trusted.

/// The body after the magic, once `buf` is at least `min_len` bytes, its CRC-32 matches and it opens with
/// `magic`; `Err` says which check failed.
pub(crate) fn checked_body<'a>(
    buf: &'a [u8],
    min_len: usize,
    magic: &[u8; 8],
) -> std::result::Result<&'a [u8], &'static str> {
    if buf.len() < min_len.max(magic.len() + 4) {
        return Err("shorter than the fixed fields");
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32fast::hash(body).to_be_bytes() != crc {
        return Err("checksum mismatch");
    }
    match body.split_at(magic.len()) {
        (head, rest) if head == magic => Ok(rest),
        _ => Err("bad magic"),
    }
}

/// Bytes of a file holding one offset: magic, version (u16), the offset (i64), CRC.
pub(crate) const OFFSET_FILE_BYTES: usize = 22;

/// A file holding one offset (`log_start.rs`, `cleaner_offset.rs`): `magic`, `version`, `offset`, the CRC.
pub(crate) fn encode_offset(magic: &[u8; 8], version: u16, offset: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(OFFSET_FILE_BYTES);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The offset an [`encode_offset`] file holds; `Err` says which check failed.
pub(crate) fn decode_offset(buf: &[u8], magic: &[u8; 8], version: u16) -> std::result::Result<i64, &'static str> {
    let body = checked_body(buf, OFFSET_FILE_BYTES, magic)?;
    if body.len() != OFFSET_FILE_BYTES - magic.len() - 4 {
        return Err("not the size of an offset file");
    }
    if u16::from_be_bytes([body[0], body[1]]) != version {
        return Err("unknown version");
    }
    Ok(i64::from_be_bytes(body[2..10].try_into().map_err(|_| "short")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
        let mut out = [magic.as_slice(), body].concat();
        let crc = crc32fast::hash(&out).to_be_bytes();
        out.extend_from_slice(&crc);
        out
    }

    #[test]
    fn each_damage_is_named() {
        let good = framed(b"RILLTEST", b"body");
        assert_eq!(checked_body(&good, 16, b"RILLTEST"), Ok(&b"body"[..]));
        assert_eq!(checked_body(&good[..10], 0, b"RILLTEST"), Err("shorter than the fixed fields"));
        assert_eq!(checked_body(&good, 17, b"RILLTEST"), Err("shorter than the fixed fields"));
        let mut flipped = good.clone();
        flipped[9] ^= 1;
        assert_eq!(checked_body(&flipped, 0, b"RILLTEST"), Err("checksum mismatch"));
        assert_eq!(checked_body(&framed(b"RILLOTHR", b"body"), 0, b"RILLTEST"), Err("bad magic"));
    }
}
