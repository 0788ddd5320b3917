//! Per-batch compression: the codecs the producer encodes with and the consumer decodes transparently.
//!
//! Kafka's layout: only the records section of a batch is compressed; the header stays readable, with the codec
//! in its attribute bits. The codecs themselves are `rill_protocol::compression`, shared with the broker (which
//! decompresses what it is sent to check it); the producer writes any of Kafka's four codecs as Kafka clients do
//! (gzip members, xerial-framed snappy, LZ4 frames, zstd frames), and the consumer reads all four.

use rill_protocol::compressed::compress_batch as compress_with;
use rill_protocol::compression::with_decompressor;
use rill_protocol::Compression as Codec;

pub(crate) use rill_protocol::compression::codec_name;

/// How the producer compresses each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    /// gzip at the given level: 1 (fastest) to 9 (smallest), or -1 for zlib's default, 6 (Kafka's
    /// `compression.gzip.level`). The slowest codec; what every Kafka client reads.
    Gzip { level: i32 },
    /// Snappy in xerial's framing, as Kafka's Java client and librdkafka write it. No levels.
    Snappy,
    /// LZ4 frames: cheap on CPU, a modest ratio.
    Lz4,
    /// zstd at the given level (1 is fast; 3 is zstd's default; -131072 to 22, Kafka's `compression.zstd.level`).
    Zstd { level: i32 },
}

impl Compression {
    pub(crate) fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Gzip { .. } => Codec::Gzip,
            Compression::Snappy => Codec::Snappy,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zstd { .. } => Codec::Zstd,
        }
    }

    /// What is wrong with the level, if anything: Kafka's ranges (KIP-390). `Producer::new` refuses a config
    /// this refuses.
    pub fn check(self) -> Result<(), String> {
        use rill_protocol::compression::{GZIP_LEVELS, ZSTD_LEVELS};
        match self {
            Compression::Gzip { level } if level != -1 && !GZIP_LEVELS.contains(&level) => {
                Err(format!("gzip level {level} must be from 1 to 9, or -1 for zlib's default (6)"))
            }
            Compression::Zstd { level } if !ZSTD_LEVELS.contains(&level) => {
                Err(format!("zstd level {level} must be from -131072 to 22"))
            }
            _ => Ok(()),
        }
    }
}

/// Compresses the records section of `batch` (an uncompressed batch as `RecordBatchBuilder::build` made it)
/// and returns the compressed batch with its header fixed. `None` returns `batch` unchanged.
pub(crate) fn compress_batch(batch: Vec<u8>, compression: Compression) -> Result<Vec<u8>, String> {
    let level = match compression {
        Compression::None => return Ok(batch),
        Compression::Snappy | Compression::Lz4 => rill_protocol::compression::default_level(compression.codec()),
        Compression::Gzip { level } | Compression::Zstd { level } => level,
    };
    compress_with(&batch, compression.codec(), level).map_err(|e| e.to_string())
}

/// Decompresses a batch's records section, refusing to produce more than `limit_bytes` (a small batch that
/// inflates without bound is an attack, not data). The records are handed out as slices of the result, so it
/// is a buffer of its own; the codec contexts are this thread's, reused.
pub(crate) fn decompress_records(codec: Codec, section: &[u8], limit_bytes: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(section.len().saturating_mul(2).min(limit_bytes));
    with_decompressor(|decompressor, _| decompressor.decompress_into(codec, section, limit_bytes, &mut out))
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_protocol::compressed::records_section;
    use rill_protocol::record::RecordIter;
    use rill_protocol::{validate, Record, RecordBatchBuilder};

    fn batch_of(n: usize) -> (Vec<u8>, Vec<Record>) {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                key: Some(format!("key-{i}").into_bytes()),
                value: Some(format!("value {i} repeats repeats repeats").into_bytes()),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000 + i as i64,
            })
            .collect();
        let mut builder = RecordBatchBuilder::default();
        records.iter().for_each(|r| builder.push(r));
        (builder.build(), records)
    }

    #[test]
    fn batches_of_every_codec_validate_shrink_and_decode_back() {
        for compression in [
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: -1 },
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd { level: 1 },
            Compression::Zstd { level: 3 },
        ] {
            let (plain, records) = batch_of(200);
            let compressed = compress_batch(plain.clone(), compression).expect("compress");
            let header = validate(&compressed).expect("a valid batch");
            assert_eq!(header.compression().expect("known codec"), compression.codec());
            assert_eq!(header.record_count, 200);
            assert!(compressed.len() < plain.len() / 2, "{compression:?}: {} of {}", compressed.len(), plain.len());
            let section = decompress_records(compression.codec(), records_section(&compressed), 1 << 20).unwrap();
            assert_eq!(section, records_section(&plain));
            let decoded: Vec<Record> =
                RecordIter::new(&section, 0, header.base_timestamp).map(|r| r.unwrap().to_record()).collect();
            assert_eq!(decoded, records);
        }
    }

    #[test]
    fn levels_outside_kafkas_ranges_are_named() {
        for (bad, needle) in [
            (Compression::Gzip { level: 0 }, "from 1 to 9, or -1"),
            (Compression::Gzip { level: 10 }, "gzip level 10"),
            (Compression::Zstd { level: 23 }, "from -131072 to 22"),
        ] {
            let refusal = bad.check().expect_err("out of range");
            assert!(refusal.contains(needle), "{refusal}");
        }
        for good in [Compression::Gzip { level: -1 }, Compression::Gzip { level: 9 }, Compression::Zstd { level: -5 }] {
            assert_eq!(good.check(), Ok(()));
        }
    }

    #[test]
    fn no_compression_leaves_the_batch_alone() {
        let (plain, _) = batch_of(3);
        assert_eq!(compress_batch(plain.clone(), Compression::None).unwrap(), plain);
    }

    #[test]
    fn inflating_past_the_limit_or_garbage_is_an_error() {
        let (plain, _) = batch_of(200);
        let compressed = compress_batch(plain, Compression::Zstd { level: 3 }).unwrap();
        let err = decompress_records(Codec::Zstd, records_section(&compressed), 100).unwrap_err();
        assert!(err.contains("limit"), "{err}");
        assert!(decompress_records(Codec::Lz4, b"not an lz4 frame", 1 << 20).is_err());
        assert!(decompress_records(Codec::Zstd, b"not a zstd frame", 1 << 20).is_err());
        assert!(decompress_records(Codec::Gzip, b"", 1 << 20).is_err());
        assert!(decompress_records(Codec::Snappy, b"", 1 << 20).is_err());
    }
}
