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
    check_frame, BatchHeader, Compression, TimestampType, ATTRIBUTES_AT, CRC_AT, HEADER_BYTES, MAX_TIMESTAMP_AT,
    NO_PRODUCER_ID, TIMESTAMP_TYPE_BIT,
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

/// Kafka's `NO_TIMESTAMP`: a record without one (a pre-0.10 client's), never out of bounds.
const NO_TIMESTAMP: i64 = -1;

/// How far a CreateTime record's timestamp may be from the broker's clock: Kafka's topic configs
/// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms` (KIP-937), checked by
/// [`validate_produced_within`]. `None`: no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampBounds {
    pub before_max_ms: Option<u64>,
    pub after_max_ms: Option<u64>,
}

impl TimestampBounds {
    pub fn is_unbounded(&self) -> bool {
        self.before_max_ms.is_none() && self.after_max_ms.is_none()
    }
}

/// Checks a batch a client produced (see the module doc), decompressing a compressed one into this thread's
/// reused buffer, at most `max_decompressed_bytes` of it.
pub fn validate_produced(batch: &[u8], max_decompressed_bytes: usize) -> Result<ProducedBatch, BatchError> {
    validate::<false>(batch, max_decompressed_bytes).map(|(produced, _)| produced)
}

/// [`validate_produced`], and a topic's timestamp bounds as Kafka's `LogValidator` checks them, in the same walk
/// of the records: each CreateTime record's timestamp at most `before_max_ms` behind `now_ms` and at most
/// `after_max_ms` ahead of it. A record without a timestamp (-1) and a LogAppendTime batch (its records take the
/// broker's clock) pass. Apart from `validate_produced` so that the common produce, of a topic without bounds,
/// pays nothing for them.
pub fn validate_produced_within(
    batch: &[u8],
    max_decompressed_bytes: usize,
    now_ms: i64,
    bounds: TimestampBounds,
) -> Result<ProducedBatch, BatchError> {
    let (produced, range) = validate::<true>(batch, max_decompressed_bytes)?;
    let Some((oldest, newest)) = range.filter(|_| !produced.needs_append_time) else { return Ok(produced) };
    let to_ms = |limit: u64| i64::try_from(limit).unwrap_or(i64::MAX);
    if let Some(limit) = bounds.before_max_ms {
        if now_ms.saturating_sub(oldest) > to_ms(limit) {
            return Err(BatchError::TimestampTooOld { timestamp: oldest, now_ms, before_max_ms: limit });
        }
    }
    if let Some(limit) = bounds.after_max_ms {
        if newest.saturating_sub(now_ms) > to_ms(limit) {
            return Err(BatchError::TimestampTooNew { timestamp: newest, now_ms, after_max_ms: limit });
        }
    }
    Ok(produced)
}

/// The checks, and with `RANGE` the records' smallest and largest timestamps but -1 (`None` without one).
fn validate<const RANGE: bool>(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<(ProducedBatch, Option<(i64, i64)>), BatchError> {
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
    let range = match header.compression()? {
        Compression::None => check_records_strictly::<RANGE>(&header, records)?,
        codec => with_decompressor(|decompressor, buffer| {
            decompressor.decompress_into(codec, records, max_decompressed_bytes, buffer)?;
            check_records_strictly::<RANGE>(&header, buffer)
        })?,
    };
    let produced = ProducedBatch { header, needs_append_time: header.timestamp_type() == TimestampType::LogAppendTime };
    Ok((produced, range))
}

/// One walk over the records: offset deltas exactly 0, 1, 2, .., their number `record_count`, and (CreateTime)
/// the largest timestamp the header's `max_timestamp`. With `RANGE`, also the records' timestamp range but -1
/// (see [`validate`]); without, it costs nothing: this walk is every produced record's.
fn check_records_strictly<const RANGE: bool>(
    header: &BatchHeader,
    records: &[u8],
) -> Result<Option<(i64, i64)>, BatchError> {
    let mut count: i32 = 0;
    let mut max_timestamp = i64::MIN;
    // The smallest timestamp but NO_TIMESTAMP; i64::MAX while there is none.
    let mut min_timestamp = i64::MAX;
    walk_records(records, |offset_delta, timestamp_delta| {
        if offset_delta != count {
            return Err(BatchError::OffsetDeltaOutOfSequence { position: count, offset_delta });
        }
        count = count.saturating_add(1);
        // As a consumer reads it (`RecordIter`): saturating, never wrapping.
        let timestamp = header.base_timestamp.saturating_add(timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if RANGE {
            min_timestamp = min_timestamp.min(if timestamp == NO_TIMESTAMP { i64::MAX } else { timestamp });
        }
        Ok(())
    })?;
    // NO_TIMESTAMP is below every real timestamp, so the largest is a real one whenever there is any.
    let range = (min_timestamp != i64::MAX).then_some((min_timestamp, max_timestamp));
    if count != header.record_count {
        return Err(BatchError::RecordCountMismatch { declared: header.record_count, actual: count });
    }
    if header.timestamp_type() == TimestampType::CreateTime && max_timestamp != header.max_timestamp {
        return Err(BatchError::MaxTimestampMismatch { declared: header.max_timestamp, actual: max_timestamp });
    }
    Ok(range)
}

/// Stamps a batch with the broker's clock, as a LogAppendTime batch: the attributes' timestamp-type bit is set
/// (a producer's batch on a topic with `message.timestamp.type=LogAppendTime` arrives without it), `max_timestamp`
/// becomes `now_ms` and the CRC is recomputed (it covers both). Consumers read every record of such a batch as
/// written at `max_timestamp`, and the time index and ListOffsets by time see the broker's time. `batch` must
/// have passed [`validate_produced`].
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
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
