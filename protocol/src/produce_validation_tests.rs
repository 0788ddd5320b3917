//! Each refusal of the produce validator, and the batches it must let through.

use super::*;
use crate::batch::{Compression, ATTRIBUTES_AT, HEADER_BYTES, LOG_OVERHEAD};
use crate::compressed::compress_batch;
use crate::compression::MAX_DECOMPRESSED_BATCH_BYTES;
use crate::record::write_header;
use crate::varint::{put_varint, put_varlong};
use crate::{validate, BatchHeader, Record, RecordBatchBuilder};
use proptest::prelude::*;

const LIMIT: usize = MAX_DECOMPRESSED_BATCH_BYTES;
const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: (i % 2 == 0).then(|| format!("k{i}").into_bytes()),
            value: Some(vec![b'v'; 20 + i]),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000 + (i as i64 * 7) % 5,
        })
        .collect()
}

fn batch_of(records: &[Record]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::default();
    records.iter().for_each(|r| builder.push(r));
    builder.build()
}

/// Rewrites header fields and recomputes the CRC, so only the field under test is wrong.
fn with_header(mut batch: Vec<u8>, change: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
    let mut header = BatchHeader::parse(&batch).unwrap();
    change(&mut header);
    write_header(&mut batch, &header);
    batch
}

/// One record, encoded by hand so its offset delta can be anything.
fn raw_record(offset_delta: i32, timestamp_delta: i64, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varlong(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1);
    put_varint(&mut body, value.len() as i32);
    body.extend_from_slice(value);
    put_varint(&mut body, 0);
    let mut record = Vec::new();
    put_varint(&mut record, body.len() as i32);
    record.extend_from_slice(&body);
    record
}

/// A batch around `records_section` with the given header fields (a valid CRC and length).
fn raw_batch(records_section: &[u8], record_count: i32, last_offset_delta: i32, attributes: i16) -> Vec<u8> {
    let mut batch = vec![0u8; HEADER_BYTES];
    batch.extend_from_slice(records_section);
    let header = BatchHeader {
        base_offset: 0,
        batch_length: (batch.len() - LOG_OVERHEAD) as i32,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count,
    };
    write_header(&mut batch, &header);
    batch
}

fn refusal(batch: &[u8]) -> BatchError {
    validate_produced(batch, LIMIT).expect_err("the batch must be refused")
}

#[test]
fn a_built_batch_passes_uncompressed_and_with_every_codec() {
    let plain = batch_of(&records(50));
    for codec in CODECS {
        let batch = compress_batch(&plain, codec, 3).unwrap();
        let produced = validate_produced(&batch, LIMIT).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
        assert_eq!((produced.header.record_count, produced.needs_append_time), (50, false));
    }
}

#[test]
fn a_header_only_batch_claiming_two_billion_records_is_refused() {
    // The outside finding: 61 bytes, count 2^31-1, no records. Storage's integrity check lets it through.
    let lie = raw_batch(&[], i32::MAX, i32::MAX - 1, 0);
    assert!(matches!(refusal(&lie), BatchError::RecordCountMismatch { declared: i32::MAX, actual: 0 }));
    let compressed_lie = raw_batch(&[], i32::MAX, i32::MAX - 1, Compression::Zstd.attribute_bits());
    assert!(matches!(refusal(&compressed_lie), BatchError::Decompress { codec: "zstd", .. }));
    let empty = raw_batch(&[], 0, i32::MAX, 0);
    assert!(validate(&empty).is_ok(), "storage's integrity check stays as lenient as what older brokers stored");
    assert!(matches!(refusal(&empty), BatchError::NoRecords { record_count: 0 }));
}

#[test]
fn a_count_that_is_not_last_offset_delta_plus_one_is_refused() {
    let batch = batch_of(&records(3));
    let more = with_header(batch.clone(), |h| h.last_offset_delta = 5);
    assert!(matches!(refusal(&more), BatchError::BadRecordCount { record_count: 3, last_offset_delta: 5 }));
    let negative = with_header(batch, |h| h.record_count = -1);
    assert!(matches!(refusal(&negative), BatchError::BadRecordCount { .. } | BatchError::NoRecords { .. }));
}

#[test]
fn a_count_below_or_above_the_records_present_is_refused() {
    let plain = batch_of(&records(4));
    for codec in CODECS {
        let batch = compress_batch(&plain, codec, 3).unwrap();
        let fewer = with_header(batch.clone(), |h| (h.record_count, h.last_offset_delta) = (3, 2));
        assert!(
            matches!(refusal(&fewer), BatchError::RecordCountMismatch { declared: 3, actual: 4 }),
            "{codec:?}: {}",
            refusal(&fewer)
        );
        let more = with_header(batch, |h| (h.record_count, h.last_offset_delta) = (5, 4));
        assert!(matches!(refusal(&more), BatchError::RecordCountMismatch { declared: 5, actual: 4 }), "{codec:?}");
    }
}

#[test]
fn offset_deltas_out_of_sequence_are_refused() {
    for deltas in [[0, 2], [1, 2], [1, 0], [0, 0]] {
        let section: Vec<u8> = deltas.iter().flat_map(|d| raw_record(*d, 0, b"x")).collect();
        let batch = raw_batch(&section, 2, 1, 0);
        assert!(matches!(refusal(&batch), BatchError::OffsetDeltaOutOfSequence { .. }), "{deltas:?}");
    }
    let fine: Vec<u8> = [0, 1].iter().flat_map(|d| raw_record(*d, 0, b"x")).collect();
    validate_produced(&raw_batch(&fine, 2, 1, 0), LIMIT).unwrap();
}

#[test]
fn a_compressed_payload_that_does_not_decompress_is_refused() {
    // The outside finding: a zstd batch whose payload is plain text.
    for codec in &CODECS[1..] {
        let batch = raw_batch(&raw_record(0, 0, b"plain text"), 1, 0, codec.attribute_bits());
        assert!(matches!(refusal(&batch), BatchError::Decompress { .. }), "{codec:?}: {}", refusal(&batch));
    }
}

#[test]
fn a_compressed_payload_of_malformed_records_is_refused() {
    for codec in &CODECS[1..] {
        let mut section = Vec::new();
        crate::compression::compress_into(*codec, 3, b"\x10not records at all", &mut section).unwrap();
        let batch = raw_batch(&section, 1, 0, codec.attribute_bits());
        assert!(matches!(refusal(&batch), BatchError::MalformedRecord(_) | BatchError::BadOffsetDelta(_)), "{codec:?}");
    }
}

#[test]
fn a_compressed_batch_inflating_past_the_limit_is_refused() {
    let big = vec![Record { value: Some(vec![0u8; 100_000]), ..Default::default() }];
    let batch = compress_batch(&batch_of(&big), Compression::Zstd, 3).unwrap();
    assert!(matches!(
        validate_produced(&batch, 10_000),
        Err(BatchError::InflatesPastLimit { limit_bytes: 10_000, .. })
    ));
}

#[test]
fn a_lying_max_timestamp_is_refused_under_create_time() {
    let batch = batch_of(&records(5));
    let header = BatchHeader::parse(&batch).unwrap();
    for lie in [header.max_timestamp + 1, header.max_timestamp - 1, i64::MAX] {
        let lying = with_header(batch.clone(), |h| h.max_timestamp = lie);
        assert!(
            matches!(refusal(&lying), BatchError::MaxTimestampMismatch { declared, actual } if declared == lie && actual == header.max_timestamp)
        );
    }
}

#[test]
fn a_wrong_max_timestamp_is_corrected_as_kafka_does_and_nothing_else_is() {
    let batch = batch_of(&records(5));
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(correct_max_timestamp(&batch, LIMIT), Ok(None), "a right batch is left as it is");
    // -1 is what Sarama 1.22 sends: it never sets the field.
    for codec in CODECS {
        let compressed = compress_batch(&batch, codec, 1).unwrap();
        let unset = with_header(compressed.clone(), |h| h.max_timestamp = -1);
        let corrected = correct_max_timestamp(&unset, LIMIT).unwrap().expect("a corrected copy");
        assert_eq!(corrected, compressed, "{codec:?}: the batch a correct client sends, byte for byte");
        assert_eq!(BatchHeader::parse(&corrected).unwrap().max_timestamp, header.max_timestamp);
        assert!(validate_produced(&corrected, LIMIT).is_ok());
    }
    // Any other fault is refused, never papered over by the new CRC.
    let unset = with_header(batch.clone(), |h| h.max_timestamp = -1);
    let mut damaged = unset.clone();
    *damaged.last_mut().unwrap() ^= 1;
    assert!(matches!(correct_max_timestamp(&damaged, LIMIT), Err(BatchError::CrcMismatch { .. })));
    let miscounted = with_header(unset, |h| h.record_count = 4);
    assert!(correct_max_timestamp(&miscounted, LIMIT).is_err());
}

#[test]
fn log_append_time_is_accepted_whatever_the_timestamps_and_stamped_with_a_valid_crc() {
    let batch = with_header(batch_of(&records(5)), |h| {
        h.attributes |= 0x08;
        h.max_timestamp = 3;
    });
    let produced = validate_produced(&batch, LIMIT).unwrap();
    assert!(produced.needs_append_time);
    let mut stamped = batch.clone();
    stamp_log_append_time(&mut stamped, 1_234_567);
    let header = validate(&stamped).expect("the stamped batch keeps a valid CRC");
    assert_eq!((header.max_timestamp, header.timestamp_type()), (1_234_567, TimestampType::LogAppendTime));
    assert_eq!(stamped[ATTRIBUTES_AT..ATTRIBUTES_AT + 2], batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]);
    assert!(!validate_produced(&stamped, LIMIT).unwrap().header.is_control());
}

/// A topic with `message.timestamp.type=LogAppendTime` gets CreateTime batches: stamping sets the type bit too,
/// and leaves every other attribute (the codec) and the records as they were.
#[test]
fn stamping_a_create_time_batch_makes_it_log_append_time_with_its_codec_kept() {
    for codec in CODECS {
        let batch = compress_batch(&batch_of(&records(4)), codec, 3).unwrap();
        let mut stamped = batch.clone();
        stamp_log_append_time(&mut stamped, 42_000);
        let header = validate(&stamped).expect("a valid CRC over the new attributes");
        assert_eq!((header.timestamp_type(), header.max_timestamp), (TimestampType::LogAppendTime, 42_000));
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!(stamped[HEADER_BYTES..], batch[HEADER_BYTES..], "records untouched");
    }
}

/// Kafka's `message.timestamp.before.max.ms` / `after.max.ms`: the oldest and the newest record are checked, in
/// every codec; a record without a timestamp (-1) and a LogAppendTime batch are never out of bounds.
#[test]
fn timestamp_bounds_refuse_records_too_far_from_the_brokers_clock() {
    let at = |timestamps: &[i64]| -> Vec<Record> {
        timestamps
            .iter()
            .map(|&ts| Record { key: None, value: Some(b"v".to_vec()), headers: vec![], timestamp_ms: ts })
            .collect()
    };
    let now = 10_000_000;
    let bounds = TimestampBounds { before_max_ms: Some(1_000), after_max_ms: Some(500) };
    for codec in CODECS {
        let check = |timestamps: &[i64], bounds| {
            let batch = compress_batch(&batch_of(&at(timestamps)), codec, 3).unwrap();
            validate_produced_within(&batch, LIMIT, now, bounds).map(|_| ())
        };
        assert_eq!(check(&[now - 1_000, now, now + 500], bounds), Ok(()), "{codec:?}: on the edges");
        assert_eq!(
            check(&[now, now - 1_001, now], bounds),
            Err(BatchError::TimestampTooOld { timestamp: now - 1_001, now_ms: now, before_max_ms: 1_000 }),
            "{codec:?}: the oldest record, wherever it is"
        );
        assert_eq!(
            check(&[now, now + 501], bounds),
            Err(BatchError::TimestampTooNew { timestamp: now + 501, now_ms: now, after_max_ms: 500 })
        );
        assert_eq!(check(&[now - 50_000, now + 50_000], TimestampBounds::default()), Ok(()), "no bounds");
        assert_eq!(check(&[-1, now], bounds), Ok(()), "no timestamp is not an old one");
    }
    let old = with_header(batch_of(&at(&[5])), |h| h.attributes |= 0x08);
    assert!(validate_produced_within(&old, LIMIT, now, bounds).is_ok(), "a LogAppendTime batch takes the clock");
    let message = BatchError::TimestampTooOld { timestamp: 5, now_ms: now, before_max_ms: 1_000 }.to_string();
    assert!(message.contains("message.timestamp.before.max.ms=1000"), "{message}");
}

#[test]
fn control_batches_and_transactional_ones_without_a_producer_are_refused() {
    let batch = batch_of(&records(2));
    let control = with_header(batch.clone(), |h| h.attributes |= 0x20);
    assert_eq!(refusal(&control), BatchError::ControlBatch);
    let transactional = with_header(batch.clone(), |h| h.attributes |= 0x10);
    assert_eq!(refusal(&transactional), BatchError::TransactionalWithoutProducer { producer_id: -1 });
    assert!(refusal(&control).to_string().contains("control"));
    let of_a_producer = with_header(batch, |h| {
        h.attributes |= 0x10;
        h.producer_id = 7;
        h.producer_epoch = 0;
        h.base_sequence = 0;
    });
    let accepted = validate_produced(&of_a_producer, LIMIT).expect("a transactional producer's batch passes");
    assert!(accepted.header.is_transactional());
}

#[test]
fn idempotent_batches_need_an_epoch_and_sequence_and_other_producer_ids_are_refused() {
    let batch = batch_of(&records(2));
    let idempotent = |id: i64, epoch: i16, sequence: i32| {
        with_header(batch.clone(), |h| {
            h.producer_id = id;
            h.producer_epoch = epoch;
            h.base_sequence = sequence;
        })
    };
    assert!(validate_produced(&idempotent(7, 0, 0), LIMIT).is_ok());
    assert!(validate_produced(&idempotent(7, 3, i32::MAX), LIMIT).is_ok());
    for (id, epoch, sequence) in [(7, -1, 0), (7, 0, -1), (-2, -1, -1), (i64::MIN, 0, 0)] {
        assert_eq!(
            refusal(&idempotent(id, epoch, sequence)),
            BatchError::InvalidProducerFields { producer_id: id, producer_epoch: epoch, base_sequence: sequence }
        );
    }
}

#[test]
fn a_gzip_flag_on_uncompressed_records_is_refused() {
    // The outside finding: attributes say gzip, the section holds plain records.
    let plain = batch_of(&records(3));
    let flagged = with_header(plain, |h| h.attributes |= Compression::Gzip.attribute_bits());
    assert!(matches!(refusal(&flagged), BatchError::Decompress { codec: "gzip", .. }));
}

#[test]
fn integrity_failures_still_come_first() {
    let mut batch = batch_of(&records(2));
    let last = batch.len() - 1;
    batch[last] ^= 1;
    assert!(matches!(refusal(&batch), BatchError::CrcMismatch { .. }));
    assert!(matches!(refusal(&batch[..30]), BatchError::Truncated { .. }));
}

fn arb_record() -> impl Strategy<Value = Record> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    let header =
        ("[a-z]{0,6}", proptest::option::of(bytes.clone())).prop_map(|(key, value)| crate::Header { key, value });
    (
        proptest::option::of(bytes.clone()),
        proptest::option::of(bytes),
        proptest::collection::vec(header, 0..3),
        0i64..4_000_000_000_000,
    )
        .prop_map(|(key, value, headers, timestamp_ms)| Record { key, value, headers, timestamp_ms })
}

proptest! {
    #[test]
    fn any_batch_the_builder_makes_passes_with_any_codec(
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in 0usize..5,
    ) {
        let batch = compress_batch(&batch_of(&records), CODECS[codec], 1).unwrap();
        let produced = validate_produced(&batch, LIMIT);
        prop_assert!(produced.is_ok(), "{:?}", produced);
        // Storage appends what `validate_produced` accepts and recovery keeps what `validate` accepts: the
        // first must imply the second, or recovery would truncate acknowledged data.
        prop_assert!(validate(&batch).is_ok());
    }

    #[test]
    fn whatever_the_produce_rules_accept_the_integrity_check_accepts(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        count in 0i32..4,
        attributes in 0i16..0x40,
    ) {
        // Records sections of plain bytes: mostly refused, sometimes accepted by both; never by the produce
        // rules alone.
        let batch = raw_batch(&bytes, count, (count - 1).max(0), attributes);
        if validate_produced(&batch, LIMIT).is_ok() {
            prop_assert!(validate(&batch).is_ok());
        }
        let records: Vec<u8> = (0..count).flat_map(|d| raw_record(d, i64::from(d), &bytes[..bytes.len().min(20)])).collect();
        let batch = raw_batch(&records, count, (count - 1).max(0), attributes & !0x07);
        if validate_produced(&batch, LIMIT).is_ok() {
            prop_assert!(validate(&batch).is_ok());
        }
    }

    #[test]
    fn any_change_to_count_deltas_or_max_timestamp_is_refused(
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in 0usize..5,
        field in 0usize..3,
        change in prop_oneof![1i64..3, -3i64..0, Just(i64::from(i32::MAX)), Just(i64::MIN / 2)],
    ) {
        let batch = compress_batch(&batch_of(&records), CODECS[codec], 1).unwrap();
        let mutated = with_header(batch, |h| match field {
            0 => h.record_count = (i64::from(h.record_count) + change).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            1 => {
                // Count and last offset delta agree with each other but not with the records.
                let count = (i64::from(h.record_count) + change).clamp(1, i64::from(i32::MAX)) as i32;
                h.record_count = count;
                h.last_offset_delta = count - 1;
            }
            _ => h.max_timestamp = h.max_timestamp.wrapping_add(change),
        });
        let unchanged = BatchHeader::parse(&mutated).map(|h| (h.record_count, h.max_timestamp));
        let original = compress_batch(&batch_of(&records), CODECS[codec], 1).unwrap();
        let original = BatchHeader::parse(&original).map(|h| (h.record_count, h.max_timestamp));
        prop_assume!(unchanged != original);
        prop_assert!(validate_produced(&mutated, LIMIT).is_err());
    }

    #[test]
    fn a_corrected_batch_is_the_original_whatever_max_timestamp_was_sent(
        records in proptest::collection::vec(arb_record(), 1..20),
        codec in 0usize..5,
        sent in any::<i64>(),
    ) {
        let batch = compress_batch(&batch_of(&records), CODECS[codec], 1).unwrap();
        let sent = with_header(batch.clone(), |h| h.max_timestamp = sent);
        let corrected = correct_max_timestamp(&sent, LIMIT).unwrap().unwrap_or(sent);
        prop_assert_eq!(corrected, batch);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_validator(bytes in proptest::collection::vec(any::<u8>(), 0..400), codec in 0i16..8) {
        let batch = raw_batch(&bytes, 1, 0, codec);
        let _ = validate_produced(&batch, 1 << 16);
        let _ = validate_produced(&bytes, 1 << 16);
    }
}
