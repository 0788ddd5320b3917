//! Fetched bytes to records: split the batches, check them, decompress, and slice each record's fields out of
//! the buffer they arrived (or were decompressed) in.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::batch::{batch_crc, HEADER_BYTES};
use rill_protocol::compressed::records_section;
use rill_protocol::hops::{self, Hop};
use rill_protocol::record::RecordIter;
use rill_protocol::{BatchError, BatchIter, Compression as Codec, RecordBatch, RecordView, TimestampType};

use crate::compression::{codec_name, decompress_records};
use crate::error::{Error, Result};
use crate::record::{ConsumedRecord, Header};

/// How fetched batches are checked and decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeLimits {
    /// Re-check each batch's CRC-32C (cheap insurance against damage on the way; framing is checked by decoding).
    pub check_crcs: bool,
    /// Largest records section a compressed batch may inflate to.
    pub max_decompressed_bytes: usize,
}

/// Decodes the records at offsets `>= from` in `batches` (whole batches, as a fetch returns them; the first may
/// start before `from`) onto the back of `out`, and returns the offset after the last batch seen. Records go
/// straight to the consumer's queue: a `ConsumedRecord` is ~130 bytes, and moving each through intermediate
/// vectors cost as much as copying a 1 KiB value would.
///
/// A batch that cannot be decoded stops the walk, but never hides what came before it: `out` keeps every record
/// of the batches before the bad one (none of the bad batch's own), and the error names the offset where the
/// bad batch starts and the one after it, where a reader that wants to skip it seeks to.
pub(crate) fn decode_batches(
    topic: &Arc<str>,
    partition: u32,
    from: i64,
    batches: Bytes,
    limits: DecodeLimits,
    out: &mut VecDeque<ConsumedRecord>,
) -> Result<i64> {
    let mut next_offset = from;
    for batch in BatchIter::new(batches) {
        // A header that does not parse gives no batch end: the best skip is past the first offset not read.
        let batch = batch.map_err(|source| Error::Corrupt {
            topic: topic.to_string(),
            partition,
            offset: next_offset,
            skip_to: next_offset.saturating_add(1),
            source,
        })?;
        let header = batch.header;
        if header.next_offset() <= from {
            continue;
        }
        next_offset = next_offset.max(header.next_offset());
        let before = out.len();
        if let Err(err) = decode_batch(topic, partition, from, &batch, limits, out) {
            out.truncate(before);
            return Err(err);
        }
        if hops::is_on() {
            hops::mark(header.base_sequence, Hop::ClientDecoded);
        }
    }
    Ok(next_offset)
}

/// Decodes one batch's records at offsets `>= from` onto `out`; on an error `out` may hold some of them.
fn decode_batch(
    topic: &Arc<str>,
    partition: u32,
    from: i64,
    batch: &RecordBatch,
    limits: DecodeLimits,
    out: &mut VecDeque<ConsumedRecord>,
) -> Result<()> {
    let header = batch.header;
    let offset = header.base_offset.max(from);
    let skip_to = header.next_offset();
    let corrupt = |source: BatchError| Error::Corrupt { topic: topic.to_string(), partition, offset, skip_to, source };
    // The CRC alone: the record walk below is the decode itself, and it stops at the first malformed record.
    if limits.check_crcs {
        let computed = batch_crc(&batch.bytes);
        if computed != header.crc {
            return Err(corrupt(BatchError::CrcMismatch { stored: header.crc, computed }));
        }
    }
    // Control batches (transaction markers in Kafka) carry no application records.
    if header.is_control() {
        return Ok(());
    }
    let codec = header.compression().map_err(corrupt)?;
    let records = match codec {
        Codec::None => batch.bytes.slice(HEADER_BYTES..),
        codec => decompress_records(codec, records_section(&batch.bytes), limits.max_decompressed_bytes)
            .map(Bytes::from)
            .map_err(|message| Error::Decompress {
                codec: codec_name(codec),
                topic: topic.to_string(),
                partition,
                offset,
                skip_to,
                message,
            })?,
    };
    // The count is the sender's word: bounded by what the bytes can hold (a record takes at least 7).
    out.reserve((header.record_count.max(0) as usize).min(records.len() / 7));
    // A LogAppendTime batch's records were all written at the time the broker stamped, as Kafka reads them.
    let log_append_time = (header.timestamp_type() == TimestampType::LogAppendTime).then_some(header.max_timestamp);
    for view in RecordIter::new(&records, header.base_offset, header.base_timestamp) {
        let mut view = view.map_err(corrupt)?;
        if view.offset >= from {
            view.timestamp_ms = log_append_time.unwrap_or(view.timestamp_ms);
            out.push_back(to_consumed(topic, partition, &records, &view));
        }
    }
    Ok(())
}

/// Builds the record from slices of `buf`, the buffer `view` borrows from: no copy of key, value or headers.
fn to_consumed(topic: &Arc<str>, partition: u32, buf: &Bytes, view: &RecordView<'_>) -> ConsumedRecord {
    let slice = |field: Option<&[u8]>| field.map(|bytes| buf.slice_ref(bytes));
    ConsumedRecord {
        topic: Arc::clone(topic),
        partition,
        offset: view.offset,
        timestamp_ms: view.timestamp_ms,
        key: slice(view.key),
        value: slice(view.value),
        headers: if view.headers.is_empty() {
            Vec::new()
        } else {
            view.headers.iter().map(|(key, value)| Header { key: (*key).to_owned(), value: slice(*value) }).collect()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::{compress_batch, Compression};
    use rill_protocol::batch::set_base_offset;
    use rill_protocol::{Header as WireHeader, Record, RecordBatchBuilder};

    fn batch(base_offset: i64, values: &[&str], compression: Compression) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        for (i, value) in values.iter().enumerate() {
            builder.push(&Record {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(value.as_bytes().to_vec()),
                headers: vec![WireHeader { key: "h".into(), value: Some(b"hv".to_vec()) }],
                timestamp_ms: 1_000 + i as i64,
            });
        }
        let mut bytes = compress_batch(builder.build(), compression).expect("compress");
        set_base_offset(&mut bytes, base_offset);
        bytes
    }

    const LIMITS: DecodeLimits = DecodeLimits { check_crcs: true, max_decompressed_bytes: 1 << 20 };

    #[test]
    fn records_before_the_requested_offset_are_skipped_across_codecs() {
        let topic: Arc<str> = Arc::from("t");
        let mut fetched = batch(10, &["a", "b", "c"], Compression::None);
        fetched.extend(batch(13, &["d", "e"], Compression::Lz4));
        fetched.extend(batch(15, &["f"], Compression::Zstd { level: 1 }));
        let mut out = VecDeque::new();
        let next = decode_batches(&topic, 2, 11, Bytes::from(fetched), LIMITS, &mut out).unwrap();
        assert_eq!(next, 16);
        let seen: Vec<(i64, &[u8])> = out.iter().map(|r| (r.offset, r.value.as_deref().unwrap())).collect();
        assert_eq!(seen, vec![(11, &b"b"[..]), (12, b"c"), (13, b"d"), (14, b"e"), (15, b"f")]);
        assert_eq!(out[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(out[0].headers, vec![Header { key: "h".into(), value: Some(Bytes::from_static(b"hv")) }]);
        assert_eq!((out[0].timestamp_ms, out[0].partition, &*out[0].topic), (1_001, 2, "t"));
    }

    #[test]
    fn gzip_and_snappy_batches_from_other_producers_decode_too() {
        let topic: Arc<str> = Arc::from("t");
        let plain = batch(0, &["x", "y"], Compression::None);
        for codec in [Codec::Gzip, Codec::Snappy] {
            let compressed = rill_protocol::compressed::compress_batch(&plain, codec, 6).unwrap();
            let mut out = VecDeque::new();
            decode_batches(&topic, 0, 0, Bytes::from(compressed), LIMITS, &mut out).unwrap();
            let values: Vec<&[u8]> = out.iter().map(|r| r.value.as_deref().unwrap()).collect();
            assert_eq!(values, [&b"x"[..], b"y"], "{codec:?}");
        }
    }

    #[test]
    fn records_of_a_log_append_time_batch_carry_the_broker_stamp() {
        let topic: Arc<str> = Arc::from("t");
        let mut stamped = batch(0, &["a", "b"], Compression::None);
        stamped[22] |= 0x08; // the LogAppendTime attribute bit
        rill_protocol::stamp_log_append_time(&mut stamped, 77_000);
        let mut out = VecDeque::new();
        decode_batches(&topic, 0, 0, Bytes::from(stamped), LIMITS, &mut out).unwrap();
        let times: Vec<i64> = out.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(times, [77_000, 77_000]);
    }

    #[test]
    fn values_share_the_fetched_buffer() {
        let topic: Arc<str> = Arc::from("t");
        let fetched = Bytes::from(batch(0, &["shared"], Compression::None));
        let range = fetched.as_ptr_range();
        let mut out = VecDeque::new();
        decode_batches(&topic, 0, 0, fetched.clone(), LIMITS, &mut out).unwrap();
        let value = out[0].value.as_ref().unwrap();
        assert!(range.contains(&value.as_ptr()), "the value was copied out of the fetch buffer");
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let topic: Arc<str> = Arc::from("t");
        let mut fetched = batch(0, &["a", "b"], Compression::None);
        let last = fetched.len() - 1;
        fetched[last] ^= 0xff;
        let mut out = VecDeque::new();
        let err = decode_batches(&topic, 0, 0, Bytes::from(fetched.clone()), LIMITS, &mut out).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        fetched.truncate(30);
        assert!(decode_batches(&topic, 0, 0, Bytes::from(fetched), LIMITS, &mut out).is_err());
    }

    #[test]
    fn a_damaged_batch_keeps_the_records_before_it_and_names_where_it_starts_and_ends() {
        let topic: Arc<str> = Arc::from("t");
        let good = batch(0, &["a", "b"], Compression::None);
        let mut damaged = batch(2, &["c", "d", "e"], Compression::None);
        // Cut the last record's value short: the CRC is not checked, the walk finds it.
        let len = damaged.len();
        damaged[len - 3] = 0x7f;
        let mut fetched = good.clone();
        fetched.extend_from_slice(&damaged);
        fetched.extend(batch(5, &["f"], Compression::None));
        let unchecked = DecodeLimits { check_crcs: false, ..LIMITS };
        let mut out = VecDeque::new();
        let err = decode_batches(&topic, 0, 1, Bytes::from(fetched), unchecked, &mut out).unwrap_err();
        let values: Vec<&[u8]> = out.iter().map(|r| r.value.as_deref().unwrap()).collect();
        assert_eq!(values, [&b"b"[..]], "the good record before the damage is kept, none of the damaged batch's");
        assert!(matches!(err, Error::Corrupt { offset: 2, skip_to: 5, .. }), "{err:?}");
        assert_eq!(err.undecodable_batch(), Some(("t", 0, 2, 5)));
        assert!(err.to_string().contains("offset 2"), "{err}");
    }

    #[test]
    fn a_batch_that_does_not_decompress_keeps_the_records_before_it() {
        let topic: Arc<str> = Arc::from("t");
        let mut fetched = batch(7, &["a"], Compression::None);
        let mut bad = batch(8, &["plain text, not zstd"], Compression::None);
        // Flag it zstd with the records left as they are, and fix the CRC so only the codec can object.
        bad[rill_protocol::batch::ATTRIBUTES_AT + 1] |= Compression::Zstd { level: 1 }.codec().attribute_bits() as u8;
        let crc = batch_crc(&bad);
        bad[rill_protocol::batch::CRC_AT..rill_protocol::batch::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        fetched.extend_from_slice(&bad);
        let mut out = VecDeque::new();
        let err = decode_batches(&topic, 3, 0, Bytes::from(fetched), LIMITS, &mut out).unwrap_err();
        assert_eq!(out.len(), 1);
        assert_eq!(err.undecodable_batch(), Some(("t", 3, 8, 9)), "{err:?}");
    }

    fn arb_record() -> impl proptest::strategy::Strategy<Value = Record> {
        use proptest::prelude::*;
        let bytes = proptest::collection::vec(any::<u8>(), 0..300);
        let header =
            ("[a-z]{0,6}", proptest::option::of(bytes.clone())).prop_map(|(key, value)| WireHeader { key, value });
        (
            proptest::option::of(bytes.clone()),
            proptest::option::of(bytes),
            proptest::collection::vec(header, 0..3),
            0i64..4_000_000_000_000,
        )
            .prop_map(|(key, value, headers, timestamp_ms)| Record { key, value, headers, timestamp_ms })
    }

    proptest::proptest! {
        #[test]
        fn any_records_survive_any_codec_and_come_back_from_any_offset(
            records in proptest::collection::vec(arb_record(), 1..30),
            codec in 0usize..3,
            base in 0i64..1 << 40,
            skip in 0usize..30,
        ) {
            let compression = [Compression::None, Compression::Lz4, Compression::Zstd { level: 1 }][codec];
            let mut builder = RecordBatchBuilder::default();
            records.iter().for_each(|r| builder.push(r));
            let mut bytes = compress_batch(builder.build(), compression).expect("compress");
            set_base_offset(&mut bytes, base);
            let topic: Arc<str> = Arc::from("p");
            let skip = skip.min(records.len());
            let mut out = VecDeque::new();
            let next = decode_batches(&topic, 0, base + skip as i64, Bytes::from(bytes), LIMITS, &mut out).unwrap();
            proptest::prop_assert_eq!(next, base + records.len() as i64);
            proptest::prop_assert_eq!(out.len(), records.len() - skip);
            for (got, want) in out.iter().zip(&records[skip..]) {
                proptest::prop_assert_eq!(got.key.as_deref(), want.key.as_deref());
                proptest::prop_assert_eq!(got.value.as_deref(), want.value.as_deref());
                proptest::prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
                let headers: Vec<(String, Option<Vec<u8>>)> =
                    got.headers.iter().map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec()))).collect();
                let wanted: Vec<(String, Option<Vec<u8>>)> =
                    want.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
                proptest::prop_assert_eq!(headers, wanted);
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let topic: Arc<str> = Arc::from("p");
            let limits = DecodeLimits { check_crcs: false, max_decompressed_bytes: 1 << 16 };
            let _ = decode_batches(&topic, 0, 0, Bytes::from(bytes), limits, &mut VecDeque::new());
        }
    }
}
