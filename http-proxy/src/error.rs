//! Confluent REST Proxy's error answers: an HTTP status and a body `{"error_code": N, "message": "..."}` whose
//! code is the status followed by two digits naming the case (40401: topic not found), or the bare status when
//! the API names no case. The client library's errors become these in one place, [`ApiError::from_client`].

use rill_client::Error;

/// Confluent's codes this proxy answers with.
pub(crate) mod code {
    pub const TOPIC_NOT_FOUND: u32 = 40401;
    pub const PARTITION_NOT_FOUND: u32 = 40402;
    pub const CONSUMER_INSTANCE_NOT_FOUND: u32 = 40403;
    pub const CONSUMER_FORMAT_MISMATCH: u32 = 40601;
    pub const CONSUMER_ALREADY_EXISTS: u32 = 40902;
    pub const ILLEGAL_STATE: u32 = 40903;
    pub const INVALID_CONSUMER_CONFIG: u32 = 42204;
    pub const KAFKA_ERROR: u32 = 50001;
    pub const KAFKA_RETRIABLE_ERROR: u32 = 50002;
}

/// An answer that is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub error_code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        Self { status, error_code, message: message.into() }
    }

    /// 422 with the bare status as its code: the body was read but says something the API does not allow.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, 422, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 400, message)
    }

    pub fn topic_not_found(topic: &str) -> Self {
        Self::new(404, code::TOPIC_NOT_FOUND, format!("Topic {topic:?} not found."))
    }

    pub fn partition_not_found(topic: &str, partition: u32) -> Self {
        Self::new(404, code::PARTITION_NOT_FOUND, format!("Partition {partition} of topic {topic:?} not found."))
    }

    pub fn instance_not_found(group: &str, instance: &str) -> Self {
        Self::new(
            404,
            code::CONSUMER_INSTANCE_NOT_FOUND,
            format!("Consumer instance {instance:?} of group {group:?} not found."),
        )
    }

    pub fn illegal_state(message: impl Into<String>) -> Self {
        Self::new(409, code::ILLEGAL_STATE, message)
    }

    pub fn invalid_consumer_config(message: impl Into<String>) -> Self {
        Self::new(422, code::INVALID_CONSUMER_CONFIG, message)
    }

    /// The one mapping of the client library's errors: what the broker refused keeps its meaning (not found,
    /// not allowed, wrong), and what may pass (a leader moving, a node down, a timeout) is "retriable".
    pub fn from_client(error: &Error) -> Self {
        let message = error.to_string();
        match error.root() {
            Error::UnknownTopic { topic } => Self::topic_not_found(topic),
            Error::UnknownPartition { topic, partition } => Self::partition_not_found(topic, *partition),
            Error::Unauthenticated { .. } => Self::new(401, 40101, message),
            Error::PermissionDenied { .. } => Self::new(403, 40301, message),
            Error::NotAssigned { .. } | Error::GroupRefused { .. } => Self::illegal_state(message),
            Error::InvalidArgument { .. }
            | Error::InvalidUse { .. }
            | Error::OffsetOutOfRange { .. }
            | Error::RecordTooLarge { .. }
            | Error::BatchTooLarge { .. }
            | Error::TopicExists { .. } => Self::unprocessable(message),
            Error::LimitExceeded { .. } => Self::new(429, 42901, message),
            root if root.is_retriable() => Self::new(500, code::KAFKA_RETRIABLE_ERROR, message),
            _ => Self::new(500, code::KAFKA_ERROR, message),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error_code": self.error_code, "message": self.message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_their_meaning() {
        let unknown = ApiError::from_client(&Error::UnknownTopic { topic: "t".into() });
        assert_eq!((unknown.status, unknown.error_code), (404, 40401));
        let partition = ApiError::from_client(&Error::UnknownPartition { topic: "t".into(), partition: 3 });
        assert_eq!((partition.status, partition.error_code), (404, 40402));
        let denied = ApiError::from_client(&Error::PermissionDenied { message: "no".into() });
        assert_eq!((denied.status, denied.error_code), (403, 40301));
        let down = ApiError::from_client(&Error::Unavailable { message: "refused".into() });
        assert_eq!((down.status, down.error_code), (500, code::KAFKA_RETRIABLE_ERROR));
        let wrong = ApiError::from_client(&Error::InvalidArgument { message: "bad".into() });
        assert_eq!((wrong.status, wrong.error_code), (422, 422));
        assert_eq!(wrong.body()["message"], serde_json::json!(wrong.message));
    }
}
