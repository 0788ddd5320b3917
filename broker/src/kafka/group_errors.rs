//! The Kafka error codes of group failures: the classic protocol's refusals and the coordinator's and offset
//! store's errors, as Kafka's group coordinator answers the same situations (so clients rejoin, retry or stop
//! where Kafka's make them).

use kafka_protocol::ResponseError;

use super::error::error_code;
use crate::error::BrokerError;
use crate::groups::classic::ClassicError;

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
}
