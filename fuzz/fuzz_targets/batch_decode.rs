//! The record batch decoder on arbitrary bytes: validation, batch splitting and record decoding must return
//! errors, never panic, and anything `validate` accepts must decode completely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_protocol::{validate, BatchIter};

fuzz_target!(|data: &[u8]| {
    if validate(data).is_ok() {
        let batch = rill_protocol::RecordBatch::new(bytes::Bytes::copy_from_slice(data)).expect("validated once");
        if let Ok(records) = batch.records() {
            for record in records {
                record.expect("a validated batch decodes");
            }
        }
    }
    for batch in BatchIter::new(bytes::Bytes::copy_from_slice(data)).flatten() {
        if let Ok(records) = batch.records() {
            records.for_each(drop);
        }
    }
});
