//! The one place a [`BrokerError`] becomes a Kafka error code, chosen as Kafka's broker would answer the same
//! failure, so that clients retry what Kafka's clients retry.

use kafka_protocol::ResponseError;
use rill_protocol::BatchError;
use rill_storage::StorageError;

use crate::error::BrokerError;

/// The Kafka error code for a failed produce, fetch or offset lookup on one partition.
pub fn error_code(err: &BrokerError) -> i16 {
    kafka_error(err).code()
}

fn kafka_error(err: &BrokerError) -> ResponseError {
    match err {
        BrokerError::UnknownTopic { .. } | BrokerError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        BrokerError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BrokerError::InvalidArgument { .. } => ResponseError::InvalidRequest,
        // Retriable in Kafka's clients: the partition (deleted and recreated, or the node restarting) may serve
        // again; NOT_LEADER_OR_FOLLOWER makes them refresh metadata first.
        BrokerError::PartitionClosed { .. } | BrokerError::ShuttingDown => ResponseError::NotLeaderOrFollower,
        // A cluster node that does not lead the partition, and acks -1 below min.insync.replicas: Kafka's own.
        BrokerError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        BrokerError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        BrokerError::Storage(err) => storage_error(err),
        BrokerError::Io { .. } => ResponseError::KafkaStorageError,
        _ => ResponseError::UnknownServerError,
    }
}

fn storage_error(err: &StorageError) -> ResponseError {
    match err {
        StorageError::InvalidBatch(batch) => batch_error(batch),
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidTopicName { .. } => ResponseError::UnknownTopicOrPartition,
        StorageError::Closed(_) => ResponseError::NotLeaderOrFollower,
        StorageError::Io { .. } | StorageError::Corrupt { .. } => ResponseError::KafkaStorageError,
        StorageError::InvalidConfig { .. } => ResponseError::UnknownServerError,
    }
}

/// Kafka answers damage to the batch's framing or checksum with CORRUPT_MESSAGE, and a well-formed batch that
/// breaks a produce rule with INVALID_RECORD (or the narrower code it has for the rule).
fn batch_error(err: &BatchError) -> ResponseError {
    match err {
        BatchError::Truncated { .. }
        | BatchError::BadLength { .. }
        | BatchError::LengthMismatch { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::UnknownCompression(_)
        | BatchError::Decompress { .. } => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::InflatesPastLimit { .. } => ResponseError::MessageTooLarge,
        _ => ResponseError::InvalidRecord,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_mismatch_is_corrupt_message_and_a_broken_rule_is_invalid_record() {
        let crc = BrokerError::from(StorageError::from(BatchError::CrcMismatch { stored: 1, computed: 2 }));
        assert_eq!(error_code(&crc), ResponseError::CorruptMessage.code());
        let control = BrokerError::from(StorageError::from(BatchError::ControlBatch));
        assert_eq!(error_code(&control), ResponseError::InvalidRecord.code());
    }

    #[test]
    fn unknown_topics_and_out_of_range_offsets_keep_their_kafka_codes() {
        let unknown = BrokerError::UnknownTopic { topic: "t".into() };
        assert_eq!(error_code(&unknown), 3);
        let out_of_range =
            BrokerError::from(StorageError::OffsetOutOfRange { offset: 9, log_start_offset: 0, high_watermark: 1 });
        assert_eq!(error_code(&out_of_range), 1);
        let large = BrokerError::TooLarge { what: "record batch", size: 9, limit: 8 };
        assert_eq!(error_code(&large), 10);
    }
}
