//! The broker's checks of a batch a client produced: Kafka's `LogValidator`, as strict as Kafka's broker.
//!
//! [`crate::validate`] is storage's integrity check (framing, CRC, records that parse): it is what recovery
//! re-runs on every start, so it must never grow stricter than what older brokers stored. This module is the
//! stricter gate in front of the log: storage's append runs it (and the broker, when it must answer before the
//! append), recovery never does, as Kafka applies `LogValidator` only on the produce path. A batch passes when:
//! - it is one whole batch whose CRC-32C holds ([`crate::batch::check_frame`]);
//! - it is not a control batch (transaction markers are the broker's), and a transactional one has a producer id
//!   (which transaction it belongs to is the broker's check, against its transaction coordinator);
//! - an idempotent batch (producer id 0 or more) has an epoch and a base sequence of 0 or more, as Kafka's
//!   `LogValidator` asks; any other batch has producer id -1;
//! - `record_count` is above 0 and equals `last_offset_delta + 1`;
//! - its records (decompressed first when the attributes name a codec) are exactly `record_count`
//!   well-formed records with offset deltas 0, 1, .., `record_count - 1` in that order;
//! - with CreateTime, `max_timestamp` is the largest record timestamp. A LogAppendTime batch is accepted
//!   whatever its timestamps say: the broker overwrites `max_timestamp` with its own clock
//!   ([`stamp_log_append_time`]), as Kafka does.
//!
//! Kafka's broker itself does not refuse a CreateTime batch whose `max_timestamp` is wrong: its `LogValidator`
//! sets the field and recomputes the CRC. The Kafka port does the same for the clients that rely on it
//! ([`correct_max_timestamp`]); gRPC producers, rill's own API, are held to the rule.
//!
//! Every refusal is a [`BatchError`] that says what was wrong; nothing of a refused batch is stored.

use crate::batch::{
    check_frame, BatchHeader, Compression, TimestampType, CRC_AT, HEADER_BYTES, MAX_TIMESTAMP_AT, NO_PRODUCER_ID,
};
use crate::compression::with_decompressor;
use crate::record::walk_records;
use crate::BatchError;

/// A batch that passed [`validate_produced`], and what the broker must still do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatch {
    pub header: BatchHeader,
    /// A LogAppendTime batch: its `max_timestamp` becomes the broker's clock ([`stamp_log_append_time`]).
    pub needs_append_time: bool,
}

/// Checks a batch a client produced (see the module doc), decompressing a compressed one into this thread's
/// reused buffer, at most `max_decompressed_bytes` of it.
pub fn validate_produced(batch: &[u8], max_decompressed_bytes: usize) -> Result<ProducedBatch, BatchError> {
    let header = check_frame(batch)?;
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Err(BatchError::TransactionalWithoutProducer { producer_id: header.producer_id });
    }
    let is_idempotent = header.producer_id >= 0;
    if header.producer_id < NO_PRODUCER_ID || (is_idempotent && (header.producer_epoch < 0 || header.base_sequence < 0))
    {
        return Err(BatchError::InvalidProducerFields {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
        });
    }
    if header.record_count <= 0 {
        return Err(BatchError::NoRecords { record_count: header.record_count });
    }
    if header.last_offset_delta.checked_add(1) != Some(header.record_count) {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let records = &batch[HEADER_BYTES..];
    match header.compression()? {
        Compression::None => check_records_strictly(&header, records)?,
        codec => with_decompressor(|decompressor, buffer| {
            decompressor.decompress_into(codec, records, max_decompressed_bytes, buffer)?;
            check_records_strictly(&header, buffer)
        })?,
    }
    Ok(ProducedBatch { header, needs_append_time: header.timestamp_type() == TimestampType::LogAppendTime })
}

/// One walk over the records: offset deltas exactly 0, 1, 2, .., their number `record_count`, and (CreateTime)
/// the largest timestamp the header's `max_timestamp`.
fn check_records_strictly(header: &BatchHeader, records: &[u8]) -> Result<(), BatchError> {
    let mut count: i32 = 0;
    let mut max_timestamp = i64::MIN;
    walk_records(records, |offset_delta, timestamp_delta| {
        if offset_delta != count {
            return Err(BatchError::OffsetDeltaOutOfSequence { position: count, offset_delta });
        }
        count = count.saturating_add(1);
        // As a consumer reads it (`RecordIter`): saturating, never wrapping.
        max_timestamp = max_timestamp.max(header.base_timestamp.saturating_add(timestamp_delta));
        Ok(())
    })?;
    if count != header.record_count {
        return Err(BatchError::RecordCountMismatch { declared: header.record_count, actual: count });
    }
    if header.timestamp_type() == TimestampType::CreateTime && max_timestamp != header.max_timestamp {
        return Err(BatchError::MaxTimestampMismatch { declared: header.max_timestamp, actual: max_timestamp });
    }
    Ok(())
}

/// Stamps a LogAppendTime batch with the broker's clock: `max_timestamp` becomes `now_ms` and the CRC is
/// recomputed (it covers `max_timestamp`). Consumers read every record of such a batch as written at
/// `max_timestamp`, and the time index and ListOffsets by time see the broker's time. `batch` must have
/// passed [`validate_produced`].
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    set_max_timestamp(batch, now_ms);
}

/// A copy of a CreateTime `batch` with `max_timestamp` set to its largest record timestamp and the CRC
/// recomputed, when the client got it wrong (Sarama 1.22 leaves it -1), as Kafka's `LogValidator` sets it;
/// `None` when the batch passes [`validate_produced`] as it is. Any other refusal stands: the correction is made
/// only once every other rule, the old CRC first, has passed, so the new CRC never covers damage.
pub fn correct_max_timestamp(batch: &[u8], max_decompressed_bytes: usize) -> Result<Option<Vec<u8>>, BatchError> {
    match validate_produced(batch, max_decompressed_bytes) {
        Ok(_) => Ok(None),
        // The last rule `check_records_strictly` checks: every other one held.
        Err(BatchError::MaxTimestampMismatch { actual, .. }) => {
            let mut corrected = batch.to_vec();
            set_max_timestamp(&mut corrected, actual);
            Ok(Some(corrected))
        }
        Err(refused) => Err(refused),
    }
}

/// Writes `max_timestamp` and the CRC that covers it.
fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crate::batch::batch_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
#[path = "produce_validation_tests.rs"]
mod tests;
