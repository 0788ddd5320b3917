//! Control batches: the transaction markers a transaction coordinator writes into each partition a transaction
//! touched, and reads back from a log.
//!
//! Kafka's `EndTransactionMarker`: a batch with the transactional and control attribute bits set, the
//! producer's id and epoch, base sequence -1, and one record whose key is the control record's version (i16, 0)
//! and type (i16: 0 abort, 1 commit), and whose value is the marker's version (i16, 0) and the coordinator's
//! epoch (i32). Consumers never deliver control records; a `read_committed` consumer uses the markers to end its
//! skipping of an aborted transaction's records. Markers are never compressed.

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::record::{Record, RecordIter};
use crate::{BatchError, ProducerFields, RecordBatchBuilder};

/// How a transaction ended, as its marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionOutcome {
    Abort,
    Commit,
}

impl TransactionOutcome {
    /// The control record type in the marker's key.
    fn control_type(self) -> i16 {
        match self {
            TransactionOutcome::Abort => 0,
            TransactionOutcome::Commit => 1,
        }
    }
}

/// A marker ending `producer_id`'s transaction at `producer_epoch` with `outcome`, its base offset still 0 (the
/// log stamps it) and its timestamp `timestamp_ms`.
pub fn end_transaction_marker(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    outcome: TransactionOutcome,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&outcome.control_type().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = RecordBatchBuilder::with_capacity(HEADER_BYTES + 32);
    builder.set_producer(ProducerFields { producer_id, producer_epoch, base_sequence: -1 });
    builder.push(&Record { key: Some(key), value: Some(value), headers: Vec::new(), timestamp_ms });
    let mut marker = builder.build();
    let mut header = BatchHeader::parse(&marker).expect("the builder writes a whole header");
    header.attributes |= batch::TRANSACTIONAL_BIT | batch::CONTROL_BIT;
    crate::record::write_header(&mut marker, &header);
    marker
}

/// The outcome a control batch records: `Some` for a transaction marker, `None` for any other batch (not a
/// control batch, or a control record type rill does not write, such as KRaft's). A control batch whose records
/// do not parse is an error: it was stored damaged.
pub fn transaction_outcome(batch: &[u8]) -> Result<Option<TransactionOutcome>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || header.compression()? != crate::Compression::None {
        return Ok(None);
    }
    let records = batch
        .get(HEADER_BYTES..header.total_bytes())
        .ok_or(BatchError::Truncated { needed: header.total_bytes(), available: batch.len() })?;
    let Some(record) = RecordIter::new(records, header.base_offset, header.base_timestamp).next() else {
        return Ok(None);
    };
    let record = record?;
    let outcome = match record.key {
        Some([0, 0, 0, 0]) => Some(TransactionOutcome::Abort),
        Some([0, 0, 0, 1]) => Some(TransactionOutcome::Commit),
        _ => None,
    };
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_control_batch_that_names_its_producer_and_outcome() {
        for outcome in [TransactionOutcome::Abort, TransactionOutcome::Commit] {
            let marker = end_transaction_marker(42, 7, 3, outcome, 1_000);
            let header = crate::validate(&marker).expect("a marker passes storage's integrity check");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch, header.base_sequence), (42, 7, -1));
            assert_eq!(header.record_count, 1);
            assert_eq!(transaction_outcome(&marker), Ok(Some(outcome)));
        }
    }

    #[test]
    fn a_marker_carries_kafkas_key_and_value_bytes() {
        let marker = end_transaction_marker(1, 0, 5, TransactionOutcome::Commit, 9);
        let header = BatchHeader::parse(&marker).expect("a header");
        let record = RecordIter::new(&marker[HEADER_BYTES..], 0, header.base_timestamp)
            .next()
            .expect("one record")
            .expect("it parses");
        assert_eq!(record.key, Some(&[0u8, 0, 0, 1][..]), "version 0, type 1 (commit)");
        assert_eq!(record.value, Some(&[0u8, 0, 0, 0, 0, 5][..]), "version 0, coordinator epoch 5");
    }

    #[test]
    fn a_data_batch_or_an_unknown_control_type_has_no_outcome() {
        let mut builder = RecordBatchBuilder::default();
        builder.push(&Record { key: Some(vec![0, 0, 0, 1]), value: None, headers: Vec::new(), timestamp_ms: 1 });
        assert_eq!(transaction_outcome(&builder.build()), Ok(None), "not a control batch");
        let mut leader_change = RecordBatchBuilder::default();
        leader_change.push(&Record { key: Some(vec![0, 0, 0, 2]), value: None, headers: Vec::new(), timestamp_ms: 1 });
        let mut bytes = leader_change.build();
        let mut header = BatchHeader::parse(&bytes).expect("a header");
        header.attributes |= batch::CONTROL_BIT;
        crate::record::write_header(&mut bytes, &header);
        assert_eq!(transaction_outcome(&bytes), Ok(None), "KRaft's leader change record");
    }
}
