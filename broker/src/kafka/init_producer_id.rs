//! InitProducerId (v0–4) for idempotent and transactional producers.
//!
//! As Kafka's broker does for a producer without a `transactional.id`, every request gets a new producer id at
//! epoch 0, also when a v3+ request names its current id and epoch (KIP-360's epoch bump after an
//! OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID): a fresh id starts a fresh sequence in every partition,
//! which is what the bump is for. A `transactional.id` goes to the transaction coordinator (`crate::transactions`):
//! the id's producer id at a new epoch, fencing older instances and aborting their open transaction.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::ResponseError;

use super::error::error_code;
use super::KafkaContext;

pub async fn answer(
    kafka: &KafkaContext,
    request: &InitProducerIdRequest,
    kafka_version: i16,
    principal: &crate::auth::Principal,
) -> InitProducerIdResponse {
    let refused = |code: i16| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id((-1).into()).with_producer_epoch(-1)
    };
    if let Some(transactional_id) = &request.transactional_id {
        let transactional_id = transactional_id.0.as_str();
        let coordinator = match super::transactions::coordinator(
            kafka,
            principal,
            crate::auth::acl::Operation::Write,
            transactional_id,
        ) {
            Ok(coordinator) => coordinator,
            Err(code) => return refused(code),
        };
        let expected = (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
        let version_knows_fenced = kafka_version >= super::transactions::FENCED_SINCE_INIT_PRODUCER_ID;
        return match coordinator
            .init_producer(&kafka.node, transactional_id, i64::from(request.transaction_timeout_ms), expected)
            .await
        {
            Ok((producer_id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(producer_id.into()).with_producer_epoch(epoch)
            }
            Err(err) => {
                // The response has no message field: the log line says why.
                tracing::debug!(transactional_id, error = %err, "InitProducerId refused");
                refused(super::transactions::code_of(&err, version_knows_fenced))
            }
        };
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
