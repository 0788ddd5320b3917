//! InitProducerId (v0–4) for idempotent producers; transactions are not served.
//!
//! As Kafka's broker does for a producer without a `transactional.id`, every request gets a new producer id at
//! epoch 0, also when a v3+ request names its current id and epoch (KIP-360's epoch bump after an
//! OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID): a fresh id starts a fresh sequence in every partition,
//! which is what the bump is for. A `transactional.id` is refused: rill has no transactions (docs/kafka.md).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::KafkaContext;

pub async fn answer(
    kafka: &KafkaContext,
    request: &InitProducerIdRequest,
    principal: &crate::auth::Principal,
) -> InitProducerIdResponse {
    let refused = |code: i16| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id((-1).into()).with_producer_epoch(-1)
    };
    if let Some(transactional_id) = &request.transactional_id {
        // The response has no message field: the log line says why.
        tracing::debug!(transactional_id = %transactional_id.0, "refused InitProducerId: rill has no transactions");
        // What a Kafka broker answers when a client may not use transactional ids: fatal in every client, which
        // reports it instead of retrying.
        return refused(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // Kafka (KIP-679): IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if kafka.node.authorizer.check_idempotent_write(principal).is_err() {
        return refused(ResponseError::ClusterAuthorizationFailed.code());
    }
    match kafka.node.producer_ids.issue().await {
        Ok(producer_id) => {
            InitProducerIdResponse::default().with_producer_id(producer_id.into()).with_producer_epoch(0)
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot issue a producer id");
            refused(error_code(&err))
        }
    }
}
