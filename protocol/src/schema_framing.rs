//! Confluent's schema-registry framing of a record's key or value, as its serializers write it and both the
//! broker (schema id validation) and the HTTP proxy (the registry's embedded formats) read it: magic byte 0, the
//! schema id (4 bytes, big-endian), and for Protobuf the message indexes, then the encoded data. rill stores the
//! bytes as they come; this only reads the framing.

/// Most message indexes taken: the nesting of a Protobuf message in its file.
const MAX_MESSAGE_INDEXES: u64 = 64;

/// The message indexes at the start of `bytes` (a zigzag varint count, then that many zigzag varints; a count of
/// 0 stands for `[0]`, the file's first message) and the bytes after them; None if they do not parse.
pub fn message_indexes(mut bytes: &[u8]) -> Option<(Vec<usize>, &[u8])> {
    let mut next = || -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((value >> 1) ^ (value & 1).wrapping_neg());
            }
        }
        None
    };
    let indexes = match next()? {
        0 => vec![0],
        count if count > MAX_MESSAGE_INDEXES => return None,
        count => (0..count).map(|_| next().and_then(|i| usize::try_from(i).ok())).collect::<Option<Vec<_>>>()?,
    };
    Some((indexes, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_as_confluents_serializers_write_them() {
        assert_eq!(message_indexes(b"\x00rest"), Some((vec![0], &b"rest"[..])), "a lone 0 is [0]");
        assert_eq!(message_indexes(b"\x02\x02"), Some((vec![1], &b""[..])));
        assert_eq!(message_indexes(b"\x04\x00\x00\x08"), Some((vec![0, 0], &b"\x08"[..])));
        assert_eq!(message_indexes(b"\x7f"), None, "a count past the limit");
        assert_eq!(message_indexes(b"\x04\x02"), None, "cut short");
        assert_eq!(message_indexes(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), None, "a varint too long");
    }
}
