//! The record batch decoder on arbitrary bytes: validation, batch splitting and record decoding must return
//! errors, never panic, and anything `validate` accepts must decode completely. The produce rules
//! (`validate_produced`, which also decompresses) must never panic either, and never accept what the integrity
//! check refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_protocol::batch::{
    batch_crc, ATTRIBUTES_AT, BATCH_LENGTH_AT, CRC_AT, HEADER_BYTES, LOG_OVERHEAD, MAGIC_AT,
};
use rill_protocol::{validate, validate_produced, BatchIter};

/// What the produce rules accept, the integrity check (what recovery re-runs) accepts too: otherwise a produced
/// batch could be truncated by the next recovery.
fn check_produced(data: &[u8]) {
    if validate_produced(data, 1 << 20).is_ok() {
        validate(data).expect("a batch the produce rules accept passes the integrity check");
    }
}

/// Anything `validate` accepts must decode completely: the fast record check never passes what the full parser
/// refuses.
fn check_validated(data: &[u8]) {
    if validate(data).is_ok() {
        let batch = rill_protocol::RecordBatch::new(bytes::Bytes::copy_from_slice(data)).expect("validated once");
        if let Ok(records) = batch.records() {
            let mut count = 0;
            for record in records {
                record.expect("a validated batch decodes");
                count += 1;
            }
            assert_eq!(count, batch.header.record_count, "a validated batch holds the records it says");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_validated(data);
    check_produced(data);
    // Random bytes almost never carry a right length, magic and CRC, so the record walk behind them would go
    // unexercised: set those (and no compression), and let the fuzzer drive the records themselves.
    if data.len() >= HEADER_BYTES {
        let mut fixed = data.to_vec();
        let batch_length = (fixed.len() - LOG_OVERHEAD) as i32;
        fixed[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
        fixed[MAGIC_AT] = 2;
        // With the fuzzer's codec bits, so the decompressors behind the produce rules see arbitrary payloads.
        let crc = batch_crc(&fixed);
        fixed[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        check_produced(&fixed);
        fixed[ATTRIBUTES_AT + 1] &= !0x07;
        let crc = batch_crc(&fixed);
        fixed[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        check_validated(&fixed);
        check_produced(&fixed);
    }
    for batch in BatchIter::new(bytes::Bytes::copy_from_slice(data)).flatten() {
        if let Ok(records) = batch.records() {
            records.for_each(drop);
        }
    }
});
