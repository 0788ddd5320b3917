//! The Kafka error codes of group failures: the classic protocol's refusals and the coordinator's and offset
//! store's errors, as Kafka's group coordinator answers the same situations (so clients rejoin, retry or stop
//! where Kafka's make them).

use kafka_protocol::ResponseError;

use super::error::error_code;
use crate::error::BrokerError;
use crate::groups::classic::ClassicError;
use rill_protocol::reason::Reason;

pub fn classic_code(err: &ClassicError) -> i16 {
    let error = match err {
        ClassicError::UnknownMember { .. } => ResponseError::UnknownMemberId,
        ClassicError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        // Kafka's rule: an epoch ahead of the member's was never sent to it (fenced: rejoin); one behind is
        // stale (heartbeat, then retry).
        ClassicError::StaleMemberEpoch { epoch, current, .. } if epoch > current => ResponseError::FencedMemberEpoch,
        ClassicError::StaleMemberEpoch { .. } => ResponseError::StaleMemberEpoch,
        ClassicError::RebalanceInProgress { .. } => ResponseError::RebalanceInProgress,
        ClassicError::InconsistentProtocol { .. } => ResponseError::InconsistentGroupProtocol,
        ClassicError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
        ClassicError::FencedInstance { .. } => ResponseError::FencedInstanceId,
        ClassicError::GroupFull { .. } | ClassicError::TooManyGroups { .. } => ResponseError::GroupMaxSizeReached,
        ClassicError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        ClassicError::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
        // Retriable: the client looks for the coordinator again, and finds the node once it is back.
        ClassicError::ShuttingDown => ResponseError::CoordinatorNotAvailable,
        ClassicError::NotCoordinator(_) => ResponseError::NotCoordinator,
    };
    error.code()
}

/// A group-level failure of the coordinator or the offset store (commits, deletes).
pub fn group_code(err: &BrokerError) -> i16 {
    let error = match err {
        BrokerError::UnknownGroup { .. } => ResponseError::GroupIdNotFound,
        BrokerError::UnknownMember { .. } => ResponseError::UnknownMemberId,
        BrokerError::NotOwner { .. } | BrokerError::StaleGeneration { .. } => ResponseError::IllegalGeneration,
        BrokerError::GroupNotEmpty { .. } => ResponseError::NonEmptyGroup,
        BrokerError::GroupKindMismatch { .. } => ResponseError::InconsistentGroupProtocol,
        BrokerError::InvalidArgument { field: "group", .. } => ResponseError::InvalidGroupId,
        BrokerError::TooManyGroups { .. } | BrokerError::TooManyMembers { .. } => ResponseError::GroupMaxSizeReached,
        // Kafka's coordinator answers a commit short of in-sync replicas so: the client retries it.
        BrokerError::ShuttingDown | BrokerError::NotEnoughReplicas { .. } => ResponseError::CoordinatorNotAvailable,
        // Its offsets partition's disk is full (KAFKA_STORAGE_ERROR), which Kafka's coordinator answers with
        // NOT_COORDINATOR: the client looks for the coordinator again, and on a cluster finds the in-sync replica
        // this node handed the partition to (`replication/resign.rs`).
        other if other.reason() == Reason::DiskFull => ResponseError::NotCoordinator,
        other => return error_code(other),
    };
    error.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_refusals_keep_kafkas_codes() {
        let unknown = ClassicError::UnknownMember { group: "g".into(), member: "m".into() };
        assert_eq!(classic_code(&unknown), 25);
        let stale =
            ClassicError::IllegalGeneration { group: "g".into(), member: "m".into(), generation: 1, current: 2 };
        assert_eq!(classic_code(&stale), 22);
        assert_eq!(classic_code(&ClassicError::RebalanceInProgress { group: "g".into() }), 27);
        assert_eq!(classic_code(&ClassicError::MemberIdRequired { member_id: "m".into() }), 79);
        let fenced = ClassicError::FencedInstance { group: "g".into(), member: "m".into(), instance: "i".into() };
        assert_eq!(classic_code(&fenced), 82);
        assert_eq!(group_code(&BrokerError::GroupNotEmpty { group: "g".into(), members: 1, action: "x" }), 68);
        assert_eq!(group_code(&BrokerError::UnknownGroup { group: "g".into() }), 69);
    }

    #[test]
    fn a_commit_the_coordinators_full_disk_refused_sends_the_client_to_find_the_coordinator_again() {
        let below = BrokerError::BelowDiskReserve { dir: "d".into(), free_bytes: 1, min_free_bytes: 2 };
        let enospc =
            BrokerError::Io { path: "d/00000.log".into(), source: std::io::Error::from_raw_os_error(libc::ENOSPC) };
        for err in [below, enospc] {
            assert_eq!(err.reason(), Reason::DiskFull);
            assert_eq!(group_code(&err), ResponseError::NotCoordinator.code(), "{err}");
            assert_eq!(error_code(&err), ResponseError::KafkaStorageError.code(), "a produce keeps Kafka's code");
        }
    }
}
