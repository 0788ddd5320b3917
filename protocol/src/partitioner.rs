//! The key-hash partitioner that the broker and the client share, so a key maps to the same partition whoever
//! picks it.
//!
//! It is Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff` modulo the partition count,
//! with Kafka's murmur2 seed. Records land where a Kafka client would put them, and the mapping is stable for as
//! long as the partition count does not change (adding partitions remaps keys, as in Kafka).

/// The partition for `key` among `partition_count` partitions (which must be at least 1).
pub fn partition_for_key(key: &[u8], partition_count: u32) -> u32 {
    assert!(partition_count > 0, "a topic always has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

/// Kafka's 32-bit murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_reference_values() {
        // From Kafka's UtilsTest.testMurmur2 (the Java ints, as u32).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected as u32, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for count in 1..20 {
            let p = partition_for_key(b"user-42", count);
            assert!(p < count);
            assert_eq!(p, partition_for_key(b"user-42", count));
        }
    }
}
