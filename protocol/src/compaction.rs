//! Rewriting a stored batch without some of its records, for log compaction (`cleanup.policy=compact`).
//!
//! What a compacted batch keeps, as Kafka's log cleaner does: its base offset, partition leader epoch, attributes
//! (so its codec and timestamp type), last offset delta, timestamps and producer fields, and each kept record's
//! bytes unchanged (their offset and timestamp deltas are relative to the header, which stays). Only the record
//! count, the length and the CRC change. So the batch still covers the same offsets, the offsets of a log stay
//! dense from batch to batch, and a reader moves past it by its header as before (`next_offset`), records
//! missing or not.
//!
//! A batch none of whose records is kept becomes an empty one ([`empty_batch`]): the header alone, covering the
//! same offsets, as Kafka's cleaner keeps for a producer's last batch. Clients skip it by its last offset.

use crate::batch::{self, check_frame, BatchHeader, Compression, HEADER_BYTES, LOG_OVERHEAD};
use crate::compression::{compress_into, default_level, with_decompressor, MAX_DECOMPRESSED_BATCH_BYTES};
use crate::record::{parse_record, write_header, RecordView};
use crate::BatchError;

/// What [`retain_records`] made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retained {
    /// Every record is kept: the batch stays as it is.
    All,
    /// Some are: the batch rewritten with only those.
    Some { batch: Vec<u8>, removed: usize },
    /// None is; `removed` is how many the batch held.
    None { removed: usize },
}

/// Decides record by record, in offset order, whether `batch` keeps it, and rewrites the batch with the kept ones
/// (see the module doc). The batch's frame and CRC are checked first; a compressed batch is decompressed and the
/// kept records compressed again with its codec.
pub fn retain_records(batch: &[u8], mut keep: impl FnMut(&RecordView<'_>) -> bool) -> Result<Retained, BatchError> {
    let header = check_frame(batch)?;
    let codec = header.compression()?;
    let mut filter = |section: &[u8]| -> Result<(Vec<u8>, usize, usize), BatchError> {
        let mut kept = Vec::new();
        let (mut count, mut removed, mut at) = (0usize, 0usize, 0usize);
        while at < section.len() {
            let (record, used) = parse_record(&section[at..], header.base_offset, header.base_timestamp)?;
            if keep(&record) {
                kept.extend_from_slice(&section[at..at + used]);
                count += 1;
            } else {
                removed += 1;
            }
            at += used;
        }
        Ok((kept, count, removed))
    };
    let (kept, count, removed) = match codec {
        Compression::None => filter(&batch[HEADER_BYTES..])?,
        _ => with_decompressor(|decompressor, section| {
            decompressor.decompress_into(codec, &batch[HEADER_BYTES..], MAX_DECOMPRESSED_BATCH_BYTES, section)?;
            filter(section)
        })?,
    };
    if removed == 0 {
        return Ok(Retained::All);
    }
    if count == 0 {
        return Ok(Retained::None { removed });
    }
    let mut out = vec![0u8; HEADER_BYTES];
    // The producer's own level is not recorded in the batch: the codec's default it is.
    compress_into(codec, default_level(codec), &kept, &mut out)?;
    let rewritten = BatchHeader {
        batch_length: batch_length(out.len())?,
        record_count: i32::try_from(count).map_err(|_| BatchError::MalformedRecord("too many records"))?,
        ..header
    };
    write_header(&mut out, &rewritten);
    Ok(Retained::Some { batch: out, removed })
}

/// Checks that every record of `batch` has a key: what a compacted topic takes (Kafka's rule too: a record without a
/// key could never be replaced or deleted). A compressed batch is decompressed to look.
pub fn require_keys(batch: &[u8]) -> Result<(), BatchError> {
    let mut keyless = None;
    retain_records(batch, |record| {
        if record.key.is_none() && keyless.is_none() {
            keyless = Some(record.offset_delta);
        }
        true
    })?;
    keyless.map_or(Ok(()), |offset_delta| Err(BatchError::MissingKey { offset_delta }))
}

fn batch_length(total: usize) -> Result<i32, BatchError> {
    i32::try_from(total - LOG_OVERHEAD).map_err(|_| BatchError::MalformedRecord("batch longer than 2 GiB"))
}

/// A batch of no records covering the offsets `first.base_offset` to `last_offset`: the header of `first`
/// (leader epoch, producer, base sequence, timestamp type) with `max_timestamp`, uncompressed (an empty section
/// is no valid stream of any codec). Used for one batch, or a run of them that together lost every record.
pub fn empty_batch(first: &BatchHeader, last_offset: i64, max_timestamp: i64) -> Result<Vec<u8>, BatchError> {
    let last_offset_delta = i32::try_from(last_offset - first.base_offset)
        .ok()
        .filter(|delta| *delta >= 0)
        .ok_or(BatchError::BadOffsetDelta(i32::MAX))?;
    let mut out = vec![0u8; HEADER_BYTES];
    let header = BatchHeader {
        batch_length: batch_length(HEADER_BYTES)?,
        attributes: first.attributes & !batch::COMPRESSION_MASK,
        last_offset_delta,
        max_timestamp,
        record_count: 0,
        ..*first
    };
    write_header(&mut out, &header);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate;
    use crate::record::RecordIter;
    use crate::{Record, RecordBatchBuilder};

    fn batch_of(keys: &[&str], codec: Compression) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        for (i, key) in keys.iter().enumerate() {
            builder.push(&Record {
                key: Some(key.as_bytes().to_vec()),
                value: (i % 3 != 2).then(|| format!("value {i}").into_bytes()),
                headers: Vec::new(),
                timestamp_ms: 1_000 + i as i64,
            });
        }
        let mut plain = builder.build();
        batch::set_base_offset(&mut plain, 100);
        if codec == Compression::None {
            return plain;
        }
        let header = BatchHeader::parse(&plain).unwrap();
        let mut out = vec![0u8; HEADER_BYTES];
        compress_into(codec, 3, &plain[HEADER_BYTES..], &mut out).unwrap();
        let compressed = BatchHeader {
            batch_length: (out.len() - LOG_OVERHEAD) as i32,
            attributes: codec.attribute_bits(),
            ..header
        };
        write_header(&mut out, &compressed);
        out
    }

    fn records_of(batch: &[u8]) -> Vec<(i64, String, Option<String>)> {
        let header = validate(batch).unwrap();
        let codec = header.compression().unwrap();
        let mut section = Vec::new();
        crate::compression::Decompressor::default()
            .decompress_into(codec, &batch[HEADER_BYTES..], 1 << 20, &mut section)
            .unwrap();
        RecordIter::new(&section, header.base_offset, header.base_timestamp)
            .map(|r| {
                let r = r.unwrap();
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                (r.offset, text(r.key).unwrap(), text(r.value))
            })
            .collect()
    }

    /// The kept records come back byte for byte at their offsets, with the header's offsets, timestamps and codec
    /// as they were, for every codec.
    #[test]
    fn a_rewritten_batch_keeps_its_offsets_and_the_kept_records() {
        for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let original = batch_of(&["a", "b", "c", "d", "e"], codec);
            let before = validate(&original).unwrap();
            let Retained::Some { batch, removed } = retain_records(&original, |r| r.offset % 2 == 0).unwrap() else {
                panic!("{codec:?}: some records were to go");
            };
            assert_eq!(removed, 2);
            let after = validate(&batch).unwrap();
            assert_eq!(after.record_count, 3, "{codec:?}");
            assert_eq!(
                (after.base_offset, after.last_offset_delta, after.base_timestamp, after.max_timestamp),
                (before.base_offset, before.last_offset_delta, before.base_timestamp, before.max_timestamp)
            );
            assert_eq!(after.compression().unwrap(), codec);
            let all = records_of(&original);
            let kept: Vec<_> = all.into_iter().filter(|(offset, _, _)| offset % 2 == 0).collect();
            assert_eq!(records_of(&batch), kept, "{codec:?}");
        }
    }

    #[test]
    fn a_batch_keeping_all_or_none_says_so() {
        let original = batch_of(&["a", "b"], Compression::Lz4);
        assert_eq!(retain_records(&original, |_| true).unwrap(), Retained::All);
        assert_eq!(retain_records(&original, |_| false).unwrap(), Retained::None { removed: 2 });
        let mut damaged = original.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(retain_records(&damaged, |_| true), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn a_compacted_topic_takes_only_records_with_keys() {
        let keyed = batch_of(&["a", "b"], Compression::Gzip);
        assert_eq!(require_keys(&keyed), Ok(()));
        let mut builder = RecordBatchBuilder::default();
        for key in [Some(b"a".to_vec()), None] {
            builder.push(&Record { key, value: Some(b"v".to_vec()), headers: Vec::new(), timestamp_ms: 0 });
        }
        assert_eq!(require_keys(&builder.build()), Err(BatchError::MissingKey { offset_delta: 1 }));
    }

    /// An empty batch is a valid batch of no records covering the run's offsets, uncompressed.
    #[test]
    fn an_empty_batch_covers_the_offsets_of_the_run() {
        let first = validate(&batch_of(&["a", "b"], Compression::Zstd)).unwrap();
        let empty = empty_batch(&first, 150, 9_999).unwrap();
        let header = validate(&empty).unwrap();
        assert_eq!((header.base_offset, header.next_offset(), header.record_count), (100, 151, 0));
        assert_eq!(header.compression().unwrap(), Compression::None);
        assert_eq!((header.max_timestamp, header.producer_id), (9_999, first.producer_id));
        assert!(empty_batch(&first, 99, 0).is_err(), "a run cannot end before it starts");
    }
}
