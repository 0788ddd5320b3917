//! Framing of compressed batches.
//!
//! In a compressed v2 batch only the records section is compressed: the 61-byte header stays readable, with the
//! codec in attribute bits 0-2, `batch_length` counting the compressed bytes and the CRC-32C covering them.
//! The codecs are in [`crate::compression`]; [`compress_batch`] compresses an uncompressed batch with one,
//! [`recompress`] moves a batch from its codec to another (a topic's `compression.type`), and
//! [`seal_compressed`] fixes the header of a batch compressed by other means.

use crate::batch::{BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD};
use crate::record::write_header;
use crate::BatchError;

const COMPRESSION_MASK: i16 = 0x07;

/// Turns `buf` into a valid compressed batch. `buf` must hold the header of an uncompressed batch (as
/// [`crate::RecordBatchBuilder::build`] writes it) followed by that batch's records section compressed with
/// `compression`. Sets `batch_length` and the compression bits and recomputes the CRC; record count, offset
/// deltas and timestamps keep the values the uncompressed header had. Returns the new header.
pub fn seal_compressed(buf: &mut [u8], compression: Compression) -> Result<BatchHeader, BatchError> {
    let mut header = BatchHeader::parse(buf)?;
    let batch_length = i32::try_from(buf.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::LengthMismatch { declared: i32::MAX as usize, actual: buf.len() })?;
    header.batch_length = batch_length;
    header.attributes = (header.attributes & !COMPRESSION_MASK) | compression.attribute_bits();
    write_header(buf, &header);
    header.crc = u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]);
    Ok(header)
}

/// Compresses the records section of `batch` (an uncompressed batch as [`crate::RecordBatchBuilder::build`]
/// made it) with `codec` at `level` (gzip 0-9, zstd 1-22; ignored by the others) and returns the compressed
/// batch with its header sealed. `Compression::None` returns a copy of `batch`.
pub fn compress_batch(batch: &[u8], codec: Compression, level: i32) -> Result<Vec<u8>, BatchError> {
    let header =
        batch.get(..HEADER_BYTES).ok_or(BatchError::Truncated { needed: HEADER_BYTES, available: batch.len() })?;
    if codec == Compression::None {
        return Ok(batch.to_vec());
    }
    let records = records_section(batch);
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len() / 2 + 64);
    out.extend_from_slice(header);
    crate::compression::compress_into(codec, level, records, &mut out)?;
    seal_compressed(&mut out, codec)?;
    Ok(out)
}

/// `batch` (of any codec, checked by the caller) with its records section in `codec` instead, at `level`, as Kafka's
/// broker rewrites a batch for a topic whose `compression.type` names a codec: the header's fields stay
/// (offsets, timestamps, producer id, epoch, sequence, the transactional and timestamp-type bits), `batch_length`,
/// the codec bits and the CRC are new, and the records are the same bytes once decompressed. At most
/// `max_decompressed_bytes` of records are decompressed.
pub fn recompress(
    batch: &[u8],
    codec: Compression,
    level: i32,
    max_decompressed_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let records = records_section(batch);
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len() + 64);
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    match header.compression()? {
        Compression::None => crate::compression::compress_into(codec, level, records, &mut out)?,
        from => crate::compression::with_decompressor(|decompressor, plain| {
            decompressor.decompress_into(from, records, max_decompressed_bytes, plain)?;
            crate::compression::compress_into(codec, level, plain, &mut out)
        })?,
    }
    seal_compressed(&mut out, codec)?;
    Ok(out)
}

/// The records section of a batch: compressed bytes for a compressed batch, records for an uncompressed one.
pub fn records_section(batch: &[u8]) -> &[u8] {
    batch.get(HEADER_BYTES..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordIter;
    use crate::{validate, Record, RecordBatch, RecordBatchBuilder};
    use bytes::Bytes;

    fn uncompressed(n: usize) -> (Vec<u8>, Vec<Record>) {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(vec![i as u8; 10]),
                headers: vec![],
                timestamp_ms: 1_000 + i as i64,
            })
            .collect();
        let mut builder = RecordBatchBuilder::default();
        records.iter().for_each(|r| builder.push(r));
        (builder.build(), records)
    }

    /// A stand-in codec for framing tests: reversing the bytes changes them without shrinking them.
    fn reversed(bytes: &[u8]) -> Vec<u8> {
        bytes.iter().rev().copied().collect()
    }

    #[test]
    fn sealed_batch_validates_and_keeps_count_offsets_and_timestamps() {
        let (plain, records) = uncompressed(5);
        let plain_header = validate(&plain).unwrap();
        let mut framed = plain[..HEADER_BYTES].to_vec();
        framed.extend_from_slice(&reversed(records_section(&plain))[..40]);
        let header = seal_compressed(&mut framed, Compression::Zstd).unwrap();
        assert_eq!(validate(&framed).unwrap(), header);
        assert_eq!(header.compression().unwrap(), Compression::Zstd);
        assert_eq!(header.total_bytes(), framed.len());
        assert_eq!(
            (header.record_count, header.last_offset_delta, header.base_timestamp, header.max_timestamp),
            (5, 4, 1_000, 1_000 + records.len() as i64 - 1)
        );
        assert_eq!(plain_header.record_count, header.record_count);
    }

    #[test]
    fn decoding_the_restored_section_gives_the_records_back() {
        let (plain, records) = uncompressed(3);
        let mut framed = plain[..HEADER_BYTES].to_vec();
        framed.extend_from_slice(&reversed(records_section(&plain)));
        seal_compressed(&mut framed, Compression::Lz4).unwrap();
        let batch = RecordBatch::new(Bytes::from(framed)).unwrap();
        assert!(matches!(batch.records(), Err(BatchError::UnsupportedCompression(Compression::Lz4))));
        let restored = reversed(records_section(&batch.bytes));
        let decoded: Vec<Record> =
            RecordIter::new(&restored, 0, batch.header.base_timestamp).map(|r| r.unwrap().to_record()).collect();
        assert_eq!(decoded, records);
    }

    /// From every codec to every other: the records read back the same, and the header keeps what is the
    /// producer's (sequence, epoch, the transactional and LogAppendTime bits).
    #[test]
    fn recompressing_moves_a_batch_between_any_two_codecs_and_keeps_its_header() {
        const CODECS: [Compression; 5] =
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        let (plain, records) = uncompressed(20);
        let mut producer = BatchHeader::parse(&plain).unwrap();
        (producer.producer_id, producer.producer_epoch, producer.base_sequence) = (7, 2, 40);
        producer.attributes |= 0x10 | 0x08;
        let mut plain = plain.clone();
        write_header(&mut plain, &producer);
        for from in CODECS {
            let source = compress_batch(&plain, from, 3).unwrap();
            for to in CODECS {
                let moved = recompress(&source, to, 3, 1 << 20).unwrap();
                let header = validate(&moved).unwrap_or_else(|e| panic!("{from:?} to {to:?}: {e}"));
                assert_eq!(header.compression().unwrap(), to);
                let kept = |h: &BatchHeader| {
                    (
                        h.producer_id,
                        h.producer_epoch,
                        h.base_sequence,
                        h.record_count,
                        h.max_timestamp,
                        h.attributes & !7,
                    )
                };
                assert_eq!(kept(&header), kept(&producer), "{from:?} to {to:?}");
                crate::validate_produced(&moved, 1 << 20).expect("records that decompress and walk");
                let inflated = recompress(&moved, Compression::None, 0, 1 << 20).unwrap();
                let batch = RecordBatch::new(Bytes::from(inflated)).unwrap();
                let read: Vec<Record> = batch.records().unwrap().map(|r| r.unwrap().to_record()).collect();
                assert_eq!(read, records, "{from:?} to {to:?}");
            }
        }
        let bomb = compress_batch(&plain, Compression::Zstd, 3).unwrap();
        assert!(matches!(recompress(&bomb, Compression::Lz4, 3, 16), Err(BatchError::InflatesPastLimit { .. })));
    }

    #[test]
    fn sealing_short_bytes_is_an_error_not_a_panic() {
        assert!(matches!(seal_compressed(&mut [0u8; 10], Compression::Lz4), Err(BatchError::Truncated { .. })));
        assert!(records_section(&[1, 2, 3]).is_empty());
    }
}
