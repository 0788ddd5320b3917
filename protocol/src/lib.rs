//! rill's wire formats, shared by `storage`, `broker` and `client`.
//!
//! - The record batch codec. Records travel and rest in Kafka's RecordBatch v2 (magic 2), byte for byte
//!   ([`batch`] for the header, [`record`] for the records, `docs/format.md` for the layout).
//! - [`v1`]: the gRPC API generated from `proto/rill/v1/` (`rill.proto`, `cluster.proto`, `auth.proto`) (prost messages, tonic clients and
//!   server traits), compiled by `build.rs` with `protox`, so no system `protoc` is needed.
//! - [`internal`]: the node-to-node API (`proto/rill/internal/v1/controller.proto`): raft RPCs and heartbeats
//!   between the nodes of a cluster. Not public; kept out of the reflection descriptor set.
//! - [`grpc_codec`]: the codec the generated clients and servers use (prost's, sized before encoding).
//! - [`compressed`]: framing of compressed batches; [`compression`]: the codecs (gzip, snappy, lz4, zstd),
//!   shared by the client (compress, decompress) and the broker (decompress to check and to serve STRUCTURED).
//! - [`validate`] is storage's integrity check of a batch (framing, CRC, records that parse), what recovery
//!   re-runs; [`produce_validation`] is the stricter check every append runs (Kafka's `LogValidator`): counts,
//!   offset deltas, timestamps, decompressed contents, no control batches, a producer id on transactional ones.
//! - [`compaction`]: a stored batch rewritten without the records log compaction removes (offsets, header and
//!   kept records' bytes unchanged; record count, length and CRC new), and the empty batch of a wholly removed run.
//! - [`control`]: the transaction markers (control batches) a transaction coordinator writes, and reading them back.
//! - [`partitioner`]: the key-hash partitioner the broker and the client share.
//! - [`schema_framing`]: Confluent's schema-registry framing of a key or value (Protobuf's message indexes), as
//!   the broker's schema id validation and the HTTP proxy read it.
//! - [`reason`]: the machine-readable reason the broker puts beside an error status.
//! - [`trace_context`]: the W3C `traceparent` record header that carries a trace from producer to consumer.
//! - [`hops`]: hop timestamps of sampled batches for `rill bench e2e --breakdown`, off (one relaxed load per
//!   call site) unless a benchmark turns them on.
//!
//! Invariants:
//! - One codec: the bytes a client encodes are the bytes the broker stores and the bytes a fetch
//!   returns. The broker only patches `base_offset` and `partition_leader_epoch`, which the CRC-32C
//!   does not cover, so appending never re-encodes or re-hashes a batch.
//!   Only log compaction rewrites a stored batch ([`compaction`]), and only to leave records out.
//! - Decoding never panics and never allocates in proportion to a length field it has not checked
//!   against the bytes actually present: every malformed input is a [`BatchError`].
//! - This crate does no I/O and knows nothing of storage, the broker or the client.

pub mod batch;
pub mod compaction;
pub mod compressed;
pub mod compression;
pub mod control;
pub mod grpc_codec;
pub mod grpc_frames;
pub mod hops;
pub mod internal;
pub mod partitioner;
pub mod produce_validation;
pub mod reason;
pub mod record;
pub mod schema_framing;
pub mod trace_context;
pub mod v1;
pub mod varint;

pub use batch::{validate, BatchHeader, BatchIter, Compression, RecordBatch, TimestampType};
pub use produce_validation::{
    correct_max_timestamp, stamp_log_append_time, validate_produced, validate_produced_within, ProducedBatch,
    TimestampBounds,
};
pub use record::{Header, ProducerFields, Record, RecordBatchBuilder, RecordView};

/// Room a produce or fetch message needs around its record bytes: the topic name, the other fields, protobuf
/// tags and lengths, the gRPC prefix. The broker's request limit is its batch limit plus this, its response
/// limit its fetch limit plus this, and the client's produce calls leave this much of its message limit free,
/// so a batch the broker accepts alone always fits a message.
pub const MESSAGE_OVERHEAD_BYTES: usize = 64 << 10;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: needs {needed} bytes, only {available} present")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported batch magic {0}: only record batch v2 (magic 2) is accepted")]
    UnsupportedMagic(i8),
    #[error("batch length field {batch_length} is below the minimum of {min}")]
    BadLength { batch_length: i32, min: i32 },
    #[error("batch length field says {declared} bytes but {actual} were sent")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("batch checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("batch declares {declared} records but holds {actual}")]
    RecordCountMismatch { declared: i32, actual: i32 },
    #[error(
        "record {offset_delta} of the batch has no key: the topic is compacted (cleanup.policy compact), which keeps \
         each key's newest record, so every record needs a key"
    )]
    MissingKey { offset_delta: i32 },
    /// A record without a schema id the topic's schema id validation takes (the broker's check, with the reason).
    #[error("record {offset_delta} of the batch: {reason}")]
    SchemaIdRefused { offset_delta: i32, reason: String },
    #[error("record count {record_count} does not fit last offset delta {last_offset_delta}")]
    BadRecordCount { record_count: i32, last_offset_delta: i32 },
    #[error("bad offset delta {0}: deltas must be non-negative, increasing, and end at the last offset delta")]
    BadOffsetDelta(i32),
    #[error("unknown compression codec {0} in batch attributes (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)")]
    UnknownCompression(u8),
    #[error("records compressed with {0:?} cannot be decoded here")]
    UnsupportedCompression(Compression),
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    #[error("cannot decompress the {codec} records section: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("the {codec} records section inflates past the limit of {limit_bytes} bytes")]
    InflatesPastLimit { codec: &'static str, limit_bytes: usize },
    #[error("cannot compress with {codec}: {reason}")]
    Compress { codec: &'static str, reason: String },
    #[error("control batches are written by the broker only: clients may not produce them")]
    ControlBatch,
    #[error(
        "a transactional batch (attribute bit 4) needs the producer id and epoch InitProducerId gave its \
         transactional id, and a base sequence of 0 or more; this one has producer id {producer_id}"
    )]
    TransactionalWithoutProducer { producer_id: i64 },
    #[error(
        "producer id {producer_id} with epoch {producer_epoch} and base sequence {base_sequence} is not allowed: an \
         idempotent batch has a producer id, epoch and base sequence of at least 0; any other batch has producer id -1"
    )]
    InvalidProducerFields { producer_id: i64, producer_epoch: i16, base_sequence: i32 },
    #[error("record count {record_count} is not allowed: a batch must hold at least one record")]
    NoRecords { record_count: i32 },
    #[error(
        "record {position} has offset delta {offset_delta}: the records' offset deltas must be 0, 1, 2, ... in order"
    )]
    OffsetDeltaOutOfSequence { position: i32, offset_delta: i32 },
    #[error(
        "max timestamp {declared} is not the largest record timestamp {actual}: with CreateTime they must be equal"
    )]
    MaxTimestampMismatch { declared: i64, actual: i64 },
    #[error(
        "record timestamp {timestamp} is more than message.timestamp.before.max.ms={before_max_ms} before the broker's \
         clock ({now_ms}): the topic accepts records at most that old (or set the timestamp, or the config, higher)"
    )]
    TimestampTooOld { timestamp: i64, now_ms: i64, before_max_ms: u64 },
    #[error(
        "record timestamp {timestamp} is more than message.timestamp.after.max.ms={after_max_ms} ahead of the broker's \
         clock ({now_ms}): the topic accepts records at most that far in the future (check the producer's clock)"
    )]
    TimestampTooNew { timestamp: i64, now_ms: i64, after_max_ms: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn record(key: Option<&[u8]>, value: &[u8], ts: i64) -> Record {
        Record {
            key: key.map(<[u8]>::to_vec),
            value: Some(value.to_vec()),
            headers: vec![Header { key: "h".into(), value: Some(b"v".to_vec()) }],
            timestamp_ms: ts,
        }
    }

    fn built(records: &[Record]) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::default();
        for r in records {
            builder.push(r);
        }
        builder.build()
    }

    #[test]
    fn encodes_the_kafka_v2_layout_field_by_field() {
        // One record, key null, value "hello", no headers: each field where Kafka's DefaultRecordBatch
        // and DefaultRecord put it.
        let r = Record { key: None, value: Some(b"hello".to_vec()), headers: vec![], timestamp_ms: 1_700_000_000_000 };
        let bytes = built(&[r]);
        assert_eq!(&bytes[0..8], &0i64.to_be_bytes());
        assert_eq!(i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize, bytes.len() - 12);
        assert_eq!(&bytes[12..16], &(-1i32).to_be_bytes());
        assert_eq!(bytes[16], 2);
        assert_eq!(&bytes[27..35], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&bytes[57..61], &1i32.to_be_bytes());
        // Record: length 11, attributes 0, ts delta 0, offset delta 0, key -1, value len 5, "hello", 0 headers.
        assert_eq!(&bytes[61..], &[0x16, 0, 0, 0, 0x01, 0x0a, b'h', b'e', b'l', b'l', b'o', 0]);
        let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&bytes[21..]));
    }

    #[test]
    fn push_fields_encodes_the_same_bytes_as_push_and_sizes_them_exactly() {
        let records = [record(Some(b"k"), b"v1", 10), record(None, b"", 7), record(Some(b""), b"x", 2000)];
        let mut owned = RecordBatchBuilder::default();
        let mut borrowed = RecordBatchBuilder::default();
        for r in &records {
            owned.push(r);
            let headers = r.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
            let before = borrowed.encoded_bytes();
            let predicted =
                borrowed.fields_bytes(r.timestamp_ms, r.key.as_deref(), r.value.as_deref(), headers.clone());
            borrowed.push_fields(r.timestamp_ms, r.key.as_deref(), r.value.as_deref(), headers);
            assert_eq!(borrowed.encoded_bytes() - before, predicted);
        }
        assert_eq!(owned.build(), borrowed.build());
    }

    #[test]
    fn validate_accepts_what_the_builder_builds_and_records_decode_back() {
        let records = vec![record(Some(b"k1"), b"v1", 1000), record(None, b"", 999), record(Some(b""), b"x", 2000)];
        let bytes = built(&records);
        let header = validate(&bytes).unwrap();
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 2000);
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        let decoded: Vec<Record> = batch.records().unwrap().map(|r| r.unwrap().to_record()).collect();
        assert_eq!(decoded, records);
    }

    #[test]
    fn patching_offset_and_epoch_keeps_the_crc_valid() {
        let mut bytes = built(&[record(None, b"v", 5)]);
        batch::set_base_offset(&mut bytes, 1234);
        batch::set_partition_leader_epoch(&mut bytes, 7);
        let header = validate(&bytes).unwrap();
        assert_eq!((header.base_offset, header.partition_leader_epoch), (1234, 7));
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        assert_eq!(batch.records().unwrap().next().unwrap().unwrap().offset, 1234);
    }

    #[test]
    fn every_single_byte_flip_in_the_crc_range_is_caught() {
        let bytes = built(&[record(Some(b"key"), b"value", 42), record(None, b"second", 43)]);
        for at in batch::MAGIC_AT..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(validate(&damaged).is_err(), "flip at byte {at} was accepted");
        }
    }

    #[test]
    fn lies_about_length_or_count_are_rejected() {
        let bytes = built(&[record(None, b"v", 1)]);
        assert!(matches!(validate(&bytes[..bytes.len() - 1]), Err(BatchError::LengthMismatch { .. })));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(validate(&longer), Err(BatchError::LengthMismatch { .. })));
        // A header claiming two records over one: fix the CRC so only the count is wrong.
        let mut header = validate(&bytes).unwrap();
        header.record_count = 2;
        header.last_offset_delta = 1;
        let mut lying = bytes.clone();
        record::write_header(&mut lying, &header);
        assert!(matches!(validate(&lying), Err(BatchError::RecordCountMismatch { .. })));
        assert!(matches!(validate(&bytes[..30]), Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn batch_iter_splits_consecutive_batches_and_reports_a_torn_tail() {
        let a = built(&[record(None, b"a", 1)]);
        let b = built(&[record(None, b"b", 2), record(None, b"c", 3)]);
        let mut joined = [a.clone(), b.clone()].concat();
        let batches: Vec<_> = BatchIter::new(Bytes::from(joined.clone())).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(&batches[1].bytes[..], &b[..]);
        joined.truncate(joined.len() - 3);
        let results: Vec<_> = BatchIter::new(Bytes::from(joined)).collect();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(BatchError::Truncated { .. })));
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        let header = ("[a-z]{0,8}", proptest::option::of(bytes.clone())).prop_map(|(key, value)| Header { key, value });
        (
            proptest::option::of(bytes.clone()),
            proptest::option::of(bytes),
            proptest::collection::vec(header, 0..4),
            -1_000_000i64..4_000_000_000_000,
        )
            .prop_map(|(key, value, headers, timestamp_ms)| Record { key, value, headers, timestamp_ms })
    }

    proptest! {
        /// The fast record check and the full parser agree on every input: the same deltas, or both an error.
        #[test]
        fn the_record_walk_agrees_with_the_full_parser(
            records in proptest::collection::vec((arb_record(), any::<bool>(), 0i64..20_000), 1..12),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            // Mostly the shape the fast path takes (no headers, timestamps close together), some not.
            let records: Vec<Record> = records
                .into_iter()
                .map(|(record, plain, ms)| {
                    let headers = if plain { Vec::new() } else { record.headers };
                    Record { headers, timestamp_ms: 1_700_000_000_000 + ms, ..record }
                })
                .collect();
            let mut bytes = built(&records)[batch::HEADER_BYTES..].to_vec();
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            bytes.truncate(bytes.len() - cut % 3);
            let mut fast = Vec::new();
            let walked = record::walk_records(&bytes, |delta, timestamp_delta| {
                fast.push((delta, timestamp_delta));
                Ok(())
            });
            let full: Result<Vec<(i32, i64)>, BatchError> = record::RecordIter::new(&bytes, 0, 0)
                .map(|r| r.map(|view| (view.offset_delta, view.timestamp_ms)))
                .collect();
            match full {
                Ok(deltas) => {
                    prop_assert!(walked.is_ok(), "{walked:?}");
                    prop_assert_eq!(fast, deltas);
                }
                Err(_) => prop_assert!(walked.is_err()),
            }
        }

        /// The fast checksum is CRC-32C, bit for bit, at every length and alignment (`crc32c` is the reference).
        #[test]
        fn batch_crc_is_crc32c(bytes in proptest::collection::vec(any::<u8>(), 21..5000), skip in 0usize..16) {
            let bytes = &bytes[skip.min(bytes.len() - 21)..];
            prop_assert_eq!(batch::batch_crc(bytes), crc32c::crc32c(&bytes[batch::CRC_COVERS_FROM..]));
        }

        #[test]
        fn any_records_round_trip(records in proptest::collection::vec(arb_record(), 1..20), base in 0i64..1 << 40) {
            let mut builder = RecordBatchBuilder::default();
            let mut predicted = batch::HEADER_BYTES;
            for r in &records {
                predicted += builder.record_bytes(r);
                builder.push(r);
            }
            prop_assert_eq!(builder.encoded_bytes(), predicted);
            let mut bytes = builder.build();
            batch::set_base_offset(&mut bytes, base);
            let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
            prop_assert_eq!(batch.header.last_offset(), base + records.len() as i64 - 1);
            let decoded: Vec<RecordView> = batch.records().unwrap().collect::<Result<_, _>>().unwrap();
            for (i, (view, original)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(view.offset, base + i as i64);
                prop_assert_eq!(&view.to_record(), original);
            }
        }

        #[test]
        fn validating_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate(&bytes);
            for batch in BatchIter::new(Bytes::from(bytes)).flatten() {
                if let Ok(records) = batch.records() {
                    records.for_each(drop);
                }
            }
        }

        /// The CI-sized twin of the `request_decode` fuzz target.
        #[test]
        fn decoding_arbitrary_request_bytes_never_panics(kind in 0u8..11, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            use prost::Message;
            fn round_trip<M: Message + Default>(body: &[u8]) {
                if let Ok(message) = M::decode(body) {
                    M::decode(message.encode_to_vec().as_slice()).expect("what was encoded decodes");
                }
            }
            match kind {
                0 => round_trip::<v1::CreateTopicRequest>(&body),
                1 => round_trip::<v1::DeleteTopicRequest>(&body),
                2 => round_trip::<v1::ListTopicsRequest>(&body),
                3 => round_trip::<v1::DescribeTopicRequest>(&body),
                4 => round_trip::<v1::AddPartitionsRequest>(&body),
                5 => round_trip::<v1::ProduceRequest>(&body),
                6 => round_trip::<v1::FetchRequest>(&body),
                7 => round_trip::<v1::SubscribeRequest>(&body),
                8 => round_trip::<v1::ListOffsetsRequest>(&body),
                9 => round_trip::<v1::CommitOffsetsRequest>(&body),
                _ => round_trip::<v1::FetchOffsetsRequest>(&body),
            }
        }

        #[test]
        fn validating_mutated_batches_never_panics(
            records in proptest::collection::vec(arb_record(), 1..5),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = built(&records);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = validate(&bytes);
        }
    }
}
