//! Structured records (`rill.v1.Record`) to and from record batches, for clients without the batch codec.
//!
//! The raw path never comes here: a pre-encoded batch is appended as sent and fetched as stored.

use bytes::Bytes;
use rill_protocol::v1;
use rill_protocol::{BatchIter, Header, Record, RecordBatchBuilder};

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
/// the whole batch that holds the requested offset).
pub fn decode_records(batches: &Bytes, from_offset: i64) -> Result<Vec<v1::FetchedRecord>> {
    let mut out = Vec::new();
    for batch in BatchIter::new(batches.clone()) {
        let batch = batch.map_err(|e| BrokerError::Internal(format!("stored batch does not parse: {e}")))?;
        let records = batch.records().map_err(|e| {
            BrokerError::invalid("format", format!("{e}; fetch this partition with RECORD_FORMAT_RAW instead"))
        })?;
        for record in records {
            let record = record.map_err(|e| BrokerError::Internal(format!("stored record does not parse: {e}")))?;
            if record.offset < from_offset {
                continue;
            }
            out.push(v1::FetchedRecord {
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                key: record.key.map(|k| batches.slice_ref(k)),
                value: record.value.map(|v| batches.slice_ref(v)),
                headers: record
                    .headers
                    .iter()
                    .map(|(key, value)| v1::RecordHeader {
                        key: (*key).to_owned(),
                        value: value.map(|v| batches.slice_ref(v)),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
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
    fn an_oversized_list_is_refused_with_the_limit() {
        let record = v1::Record { value: Some(Bytes::from(vec![0u8; 1000])), ..Default::default() };
        let err = encode_records(&vec![record; 10], 1, 2000).unwrap_err();
        assert!(matches!(err, BrokerError::TooLarge { limit: 2000, .. }), "{err}");
        assert!(encode_records(&[], 1, 2000).is_err());
    }
}
