//! The one place a [`BrokerError`] becomes a Kafka error code, chosen as Kafka's broker would answer the same
//! failure, so that clients retry what Kafka's clients retry.

use crate::error::BrokerError;

/// How one resource or partition of an admin request ended, as its Kafka answer carries it: the error code
/// (0: done) and, for a refusal, the message saying why. AlterConfigs, ElectLeaders and the reassignment APIs
/// answer per item in this shape.
pub type Outcome = (i16, Option<String>);

/// The Kafka error code for a failed produce, fetch or offset lookup on one partition: the Kafka column of the one
/// table of refusals (`rill_protocol::reason::Reason`).
pub fn error_code(err: &BrokerError) -> i16 {
    match err {
        BrokerError::Denied(denied) => denied_code(denied.resource_type),
        other => other.reason().kafka_error_code(),
    }
}

/// What Kafka answers a request the ACLs refuse, by the resource they refused it on.
pub fn denied_code(resource_type: crate::auth::acl::ResourceType) -> i16 {
    use crate::auth::acl::ResourceType;
    use kafka_protocol::ResponseError;
    match resource_type {
        ResourceType::Topic => ResponseError::TopicAuthorizationFailed.code(),
        ResourceType::Group => ResponseError::GroupAuthorizationFailed.code(),
        ResourceType::Cluster => ResponseError::ClusterAuthorizationFailed.code(),
        ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed.code(),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::ResponseError;
    use rill_protocol::BatchError;
    use rill_storage::{ProducerError, StorageError};

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
            BrokerError::from(StorageError::OffsetOutOfRange { offset: 9, log_start_offset: 0, log_end_offset: 1 });
        assert_eq!(error_code(&out_of_range), 1);
        let large = BrokerError::TooLarge { what: "record batch", size: 9, limit: 8 };
        assert_eq!(error_code(&large), 10);
    }

    #[test]
    fn a_denial_is_kafkas_authorization_failure_of_its_resource_type() {
        use crate::auth::acl::ResourceType;
        let denied = |resource_type| {
            BrokerError::Denied(crate::auth::Denied {
                principal: "User:a".into(),
                operation: crate::auth::acl::Operation::Read,
                resource_type,
                resource: "x".into(),
            })
        };
        assert_eq!(error_code(&denied(ResourceType::Topic)), ResponseError::TopicAuthorizationFailed.code());
        assert_eq!(error_code(&denied(ResourceType::Group)), ResponseError::GroupAuthorizationFailed.code());
        assert_eq!(error_code(&denied(ResourceType::Cluster)), ResponseError::ClusterAuthorizationFailed.code());
    }

    #[test]
    fn idempotence_refusals_keep_kafkas_codes() {
        let gap = ProducerError::OutOfOrderSequence { producer_id: 1, epoch: 0, sequence: 5, expected: 2 };
        assert_eq!(error_code(&StorageError::from(gap).into()), ResponseError::OutOfOrderSequenceNumber.code());
        let fenced = ProducerError::InvalidEpoch { producer_id: 1, epoch: 0, current: 1 };
        assert_eq!(error_code(&StorageError::from(fenced).into()), ResponseError::InvalidProducerEpoch.code());
        let closing = BrokerError::ShuttingDown;
        assert_eq!(error_code(&closing), ResponseError::NotLeaderOrFollower.code());
    }
}
