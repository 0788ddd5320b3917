//! Structured records (`rill.v1.Record`) to and from record batches, for clients without the batch codec.
//!
//! The raw path never comes here: a pre-encoded batch is appended as sent and fetched as stored. STRUCTURED
//! fetches decode compressed batches too (the codecs are `rill_protocol::compression`).

use bytes::Bytes;
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::compressed::records_section;
use rill_protocol::compression::{with_decompressor, MAX_DECOMPRESSED_BATCH_BYTES};
use rill_protocol::record::RecordIter;
use rill_protocol::v1;
use rill_protocol::{BatchError, BatchIter, Compression, Header, Record, RecordBatchBuilder, TimestampType};

use crate::error::{BrokerError, Result};

/// Encodes structured records into one uncompressed batch; a timestamp of 0 becomes `now_ms`. Fails with the
/// limit once the batch would exceed `max_batch_bytes` (checked as it grows, so a huge list is never encoded).
pub fn encode_records(records: &[v1::Record], now_ms: i64, max_batch_bytes: u64) -> Result<Bytes> {
    if records.is_empty() {
        return Err(BrokerError::invalid("record_list", "a produce request needs at least one record"));
    }
    if records.len() > i32::MAX as usize {
        return Err(BrokerError::invalid("record_list", "too many records for one batch"));
    }
    let mut builder = RecordBatchBuilder::default();
    for record in records {
        let record = Record {
            key: record.key.as_ref().map(|k| k.to_vec()),
            value: record.value.as_ref().map(|v| v.to_vec()),
            headers: record
                .headers
                .iter()
                .map(|h| Header { key: h.key.clone(), value: h.value.as_ref().map(|v| v.to_vec()) })
                .collect(),
            timestamp_ms: if record.timestamp_ms == 0 { now_ms } else { record.timestamp_ms },
        };
        let size = (builder.encoded_bytes() + builder.record_bytes(&record)) as u64;
        if size > max_batch_bytes {
            return Err(BrokerError::TooLarge { what: "record batch", size, limit: max_batch_bytes });
        }
        builder.push(&record);
    }
    Ok(Bytes::from(builder.build()))
}

/// Decodes whole batches into structured records, skipping records before `from_offset` (a fetch starts with
/// the whole batch that holds the requested offset). A compressed batch is decompressed (with this thread's
/// codec contexts) into a buffer of its own, which the records' keys and values are slices of. The records of a
/// LogAppendTime batch carry its `max_timestamp`, the time the broker stamped, as Kafka's consumers read them.
pub fn decode_records(batches: &Bytes, from_offset: i64) -> Result<Vec<v1::FetchedRecord>> {
    let mut out = Vec::new();
    for batch in BatchIter::new(batches.clone()) {
        let batch = batch.map_err(|e| BrokerError::Internal(format!("stored batch does not parse: {e}")))?;
        let header = batch.header;
        if header.next_offset() <= from_offset || header.is_control() {
            continue;
        }
        let codec = header.compression().map_err(|e| stored_fault("batch", e))?;
        let records = match codec {
            Compression::None => batch.bytes.slice(HEADER_BYTES..),
            codec => decompressed(codec, records_section(&batch.bytes))?,
        };
        let log_append_time = (header.timestamp_type() == TimestampType::LogAppendTime).then_some(header.max_timestamp);
        for record in RecordIter::new(&records, header.base_offset, header.base_timestamp) {
            let record = record.map_err(|e| stored_fault("record", e))?;
            if record.offset < from_offset {
                continue;
            }
            out.push(v1::FetchedRecord {
                offset: record.offset,
                timestamp_ms: log_append_time.unwrap_or(record.timestamp_ms),
                key: record.key.map(|k| records.slice_ref(k)),
                value: record.value.map(|v| records.slice_ref(v)),
                headers: record
                    .headers
                    .iter()
                    .map(|(key, value)| v1::RecordHeader {
                        key: (*key).to_owned(),
                        value: value.map(|v| records.slice_ref(v)),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// A stored batch the broker cannot read: storage validated it on append, so this is damage or a bug.
fn stored_fault(what: &str, err: BatchError) -> BrokerError {
    BrokerError::Internal(format!("stored {what} does not parse: {err}"))
}

fn decompressed(codec: Compression, section: &[u8]) -> Result<Bytes> {
    let mut records = Vec::with_capacity(section.len().saturating_mul(3).min(MAX_DECOMPRESSED_BATCH_BYTES));
    with_decompressor(|decompressor, _| {
        decompressor.decompress_into(codec, section, MAX_DECOMPRESSED_BATCH_BYTES, &mut records)
    })
    .map_err(|e| {
        // Batches stored before the broker checked compressed contents on produce may not decompress.
        BrokerError::invalid("format", format!("{e}; fetch this partition with RECORD_FORMAT_RAW instead"))
    })?;
    Ok(Bytes::from(records))
}

/// The offset after the last record of the last whole batch in `batches`, if any.
pub fn next_offset_after(batches: &Bytes) -> Option<i64> {
    BatchIter::new(batches.clone()).filter_map(|b| b.ok()).last().map(|b| b.header.next_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_records_round_trip_through_a_batch() {
        let records = vec![
            v1::Record {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![v1::RecordHeader { key: "h".into(), value: None }],
                timestamp_ms: 0,
            },
            v1::Record { key: None, value: None, headers: vec![], timestamp_ms: 77 },
        ];
        let batch = encode_records(&records, 1234, 1 << 20).unwrap();
        let decoded = decode_records(&batch, 1).unwrap();
        assert_eq!(decoded.len(), 1, "offset 0 is skipped");
        assert_eq!((decoded[0].offset, decoded[0].timestamp_ms, decoded[0].key.clone()), (1, 77, None));
        let all = decode_records(&batch, 0).unwrap();
        assert_eq!(all[0].timestamp_ms, 1234);
        assert_eq!(all[0].headers[0].key, "h");
        assert_eq!(next_offset_after(&batch), Some(2));
    }

    fn arb_record() -> impl proptest::strategy::Strategy<Value = v1::Record> {
        use proptest::prelude::*;
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from));
        let header = ("[a-z]{0,8}", bytes()).prop_map(|(key, value)| v1::RecordHeader { key, value });
        (bytes(), bytes(), proptest::collection::vec(header, 0..3), 1i64..4_000_000_000_000)
            .prop_map(|(key, value, headers, timestamp_ms)| v1::Record { key, value, headers, timestamp_ms })
    }

    proptest::proptest! {
        #[test]
        fn any_structured_records_round_trip(records in proptest::collection::vec(arb_record(), 1..10)) {
            let batch = encode_records(&records, 1, 1 << 20).unwrap();
            let decoded = decode_records(&batch, 0).unwrap();
            proptest::prop_assert_eq!(decoded.len(), records.len());
            for (i, (got, sent)) in decoded.iter().zip(&records).enumerate() {
                proptest::prop_assert_eq!(got.offset, i as i64);
                proptest::prop_assert_eq!(got.timestamp_ms, sent.timestamp_ms);
                proptest::prop_assert_eq!(&got.key, &sent.key);
                proptest::prop_assert_eq!(&got.value, &sent.value);
                proptest::prop_assert_eq!(&got.headers, &sent.headers);
            }
        }
    }

    #[test]
    fn compressed_and_log_append_time_batches_decode_to_structured_records() {
        let records = vec![
            v1::Record { value: Some(Bytes::from_static(b"one")), timestamp_ms: 10, ..Default::default() },
            v1::Record { value: Some(Bytes::from_static(b"two")), timestamp_ms: 20, ..Default::default() },
        ];
        let plain = encode_records(&records, 1, 1 << 20).unwrap();
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let mut batch = rill_protocol::compressed::compress_batch(&plain, codec, 1).unwrap();
            rill_protocol::batch::set_base_offset(&mut batch, 7);
            let decoded = decode_records(&Bytes::from(batch), 8).unwrap();
            let seen: Vec<_> = decoded.iter().map(|r| (r.offset, r.timestamp_ms, r.value.clone())).collect();
            assert_eq!(seen, [(8, 20, Some(Bytes::from_static(b"two")))], "{codec:?}");
        }
        let mut stamped = plain.to_vec();
        stamped[22] |= 0x08; // the LogAppendTime attribute bit
        rill_protocol::stamp_log_append_time(&mut stamped, 99_000);
        let decoded = decode_records(&Bytes::from(stamped), 0).unwrap();
        assert!(decoded.iter().all(|r| r.timestamp_ms == 99_000), "{decoded:?}");
    }

    #[test]
    fn a_stored_batch_that_does_not_decompress_is_invalid_argument_naming_raw() {
        let plain = encode_records(&[v1::Record::default()], 1, 1 << 20).unwrap();
        let mut flagged = plain.to_vec();
        flagged[22] |= Compression::Zstd.attribute_bits() as u8;
        rill_protocol::stamp_log_append_time(&mut flagged, 1); // any rewrite that recomputes the CRC
        let err = decode_records(&Bytes::from(flagged), 0).unwrap_err();
        assert!(err.to_string().contains("RECORD_FORMAT_RAW"), "{err}");
    }

    #[test]
    fn an_oversized_list_is_refused_with_the_limit() {
        let record = v1::Record { value: Some(Bytes::from(vec![0u8; 1000])), ..Default::default() };
        let err = encode_records(&vec![record; 10], 1, 2000).unwrap_err();
        assert!(matches!(err, BrokerError::TooLarge { limit: 2000, .. }), "{err}");
        assert!(encode_records(&[], 1, 2000).is_err());
    }
}
