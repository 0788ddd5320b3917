//! Kafka's variable-length integers: zig-zag encoded, 7 bits a byte, least significant group first
//! (the protobuf `sint32`/`sint64` encoding). Used for every field inside a v2 record.

use crate::BatchError;

/// Longest encoding of a 32-bit varint.
pub const MAX_VARINT_BYTES: usize = 5;
/// Longest encoding of a 64-bit varint.
pub const MAX_VARLONG_BYTES: usize = 10;

/// Bytes `value` takes as a varlong (and as a varint, for values that fit in 32 bits).
#[inline]
pub fn varlong_len(value: i64) -> usize {
    let mut v = zigzag64(value);
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_unsigned(out, u64::from(zigzag32(value)));
}

#[inline]
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    put_unsigned(out, zigzag64(value));
}

#[inline]
fn put_unsigned(out: &mut Vec<u8>, v: u64) {
    // Most fields of a record (attributes, deltas, short lengths) fit one byte.
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let mut bytes = [0u8; MAX_VARLONG_BYTES];
    let len = write_unsigned(&mut bytes, 0, v);
    out.extend_from_slice(&bytes[..len]);
}

/// Writes `value` as a varint into `out` at `at` and returns where it ends. For encoders that assemble a record's
/// fixed fields in a small array and append it once, instead of growing a `Vec` a byte at a time.
/// Panics if `out` has fewer than [`MAX_VARINT_BYTES`] bytes from `at` (a caller's array size, not input).
#[inline(always)]
pub fn write_varint(out: &mut [u8], at: usize, value: i32) -> usize {
    write_unsigned(out, at, u64::from(zigzag32(value)))
}

/// [`write_varint`] for a varlong: needs [`MAX_VARLONG_BYTES`] bytes from `at`.
#[inline(always)]
pub fn write_varlong(out: &mut [u8], at: usize, value: i64) -> usize {
    write_unsigned(out, at, zigzag64(value))
}

#[inline(always)]
fn write_unsigned(out: &mut [u8], mut at: usize, mut v: u64) -> usize {
    // One and two bytes unrolled: a record's lengths and deltas are nearly always one of these.
    if v < 0x80 {
        out[at] = v as u8;
        return at + 1;
    }
    if v < 0x4000 {
        out[at] = (v as u8) | 0x80;
        out[at + 1] = (v >> 7) as u8;
        return at + 2;
    }
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Reads a varint from the front of `buf`, returning it and the bytes it took.
#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), BatchError> {
    let (raw, n) = get_unsigned(buf, MAX_VARINT_BYTES)?;
    let raw = u32::try_from(raw).map_err(|_| BatchError::MalformedRecord("varint overflows 32 bits"))?;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), n))
}

/// Reads a varlong from the front of `buf`, returning it and the bytes it took.
#[inline]
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), BatchError> {
    let (raw, n) = get_unsigned(buf, MAX_VARLONG_BYTES)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), n))
}

#[inline]
fn get_unsigned(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), BatchError> {
    // The one-byte case first: it is most of the varints in a record, and the loop below costs several times
    // as much for it (it was ~10% of the instructions of a 100-byte-record produce, validation and encoding).
    if let Some(&byte) = buf.first() {
        if byte < 0x80 {
            return Ok((u64::from(byte), 1));
        }
    }
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(max_bytes).enumerate() {
        let group = u64::from(byte & 0x7f);
        // The tenth byte of a varlong may only carry the top bit of the value.
        if i == MAX_VARLONG_BYTES - 1 && group > 1 {
            return Err(BatchError::MalformedRecord("varlong overflows 64 bits"));
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_bytes {
        Err(BatchError::MalformedRecord("record ends inside a varint"))
    } else {
        Err(BatchError::MalformedRecord("varint longer than its maximum length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_kafka_reference_encodings() {
        // Values from Kafka's ByteUtilsTest: zig-zag maps 0,-1,1,-2 to 0,1,2,3.
        let cases: [(i32, &[u8]); 5] = [(0, &[0x00]), (-1, &[0x01]), (1, &[0x02]), (63, &[0x7e]), (-65, &[0x81, 0x01])];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "encoding of {value}");
            assert_eq!(get_varint(bytes).unwrap(), (value, bytes.len()));
        }
    }

    proptest! {
        #[test]
        fn writing_into_an_array_matches_pushing_onto_a_vec(int in any::<i32>(), long in any::<i64>(), at in 0usize..4) {
            let mut pushed = Vec::new();
            put_varint(&mut pushed, int);
            put_varlong(&mut pushed, long);
            let mut array = [0xaau8; 4 + MAX_VARINT_BYTES + MAX_VARLONG_BYTES];
            let end = write_varint(&mut array, at, int);
            let end = write_varlong(&mut array, end, long);
            prop_assert_eq!(&array[at..end], &pushed[..]);
        }
    }

    #[test]
    fn rejects_truncated_and_overlong_input() {
        assert!(get_varint(&[0x80]).is_err());
        assert!(get_varint(&[0xff; 6]).is_err());
        assert!(get_varlong(&[0xff; 11]).is_err());
        assert!(get_varint(&[]).is_err());
    }

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(i64::from(v)));
            prop_assert_eq!(get_varint(&out).unwrap(), (v, out.len()));
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            prop_assert_eq!(get_varlong(&out).unwrap(), (v, out.len()));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = get_varint(&bytes);
            let _ = get_varlong(&bytes);
        }
    }
}
