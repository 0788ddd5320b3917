//! Kafka's controller mutation quota (KIP-599): `controller_mutation_rate`, the partitions a second a user or
//! client id may create or delete through CreateTopics, CreatePartitions and DeleteTopics, resolved and metered as
//! the byte rates are (`quotas/`). A topic's partitions count once it is created, grown (the partitions added) or
//! deleted; `validate_only` counts nothing.
//!
//! Kafka's two modes, by version: from CreateTopics v6, CreatePartitions v3 and DeleteTopics v5 (strict) a topic
//! asked while the client is already past its rate is refused, THROTTLING_QUOTA_EXCEEDED with the time to wait,
//! and one asked within it goes through even if it takes the client past (so one large topic is never refused
//! for good); an older version (permissive) has every topic go through. Either way the answer's
//! `throttle_time_ms` says how long the client is now to wait, which Kafka's admin clients honour (the Java
//! AdminClient retries a refused topic after it).

use std::time::Duration;

use kafka_protocol::ResponseError;

use super::KafkaContext;
use crate::auth::Principal;
use crate::quotas::{QuotaKey, ResolvedQuota};

/// A request's quota: the client's, if one covers it, and the longest wait it was told.
pub struct MutationQuota<'a> {
    kafka: &'a KafkaContext,
    quota: Option<ResolvedQuota>,
    is_strict: bool,
    wait: Duration,
}

impl<'a> MutationQuota<'a> {
    /// The quota of the client `principal`/`client_id`; `is_strict` for the versions that refuse past it.
    pub fn of(kafka: &'a KafkaContext, principal: &Principal, client_id: &str, is_strict: bool) -> Self {
        let quota = kafka.node.quotas.quota(QuotaKey::ControllerMutationRate, principal, client_id);
        MutationQuota { kafka, quota, is_strict, wait: Duration::ZERO }
    }

    /// Before a topic's change: in strict mode, refused while the client is past its rate.
    pub fn check(&mut self) -> Result<(), (ResponseError, String)> {
        let Some(quota) = self.quota.as_ref().filter(|_| self.is_strict) else { return Ok(()) };
        let pending = self.kafka.node.quotas.pending(QuotaKey::ControllerMutationRate, quota);
        if pending.is_zero() {
            return Ok(());
        }
        self.wait = self.wait.max(pending);
        Err((
            ResponseError::ThrottlingQuotaExceeded,
            format!(
                "past the controller_mutation_rate quota of {} partitions a second: retry in {} ms",
                quota.bytes_per_sec,
                pending.as_millis()
            ),
        ))
    }

    /// After `partitions` were created or deleted.
    pub fn record(&mut self, partitions: u32) {
        if let Some(quota) = &self.quota {
            let wait = self.kafka.node.quotas.charge_at(
                QuotaKey::ControllerMutationRate,
                quota,
                u64::from(partitions),
                std::time::Instant::now(),
            );
            self.wait = self.wait.max(wait);
        }
    }

    /// What the answer's `throttle_time_ms` carries.
    pub fn throttle_time_ms(&self) -> i32 {
        i32::try_from(self.wait.as_millis()).unwrap_or(i32::MAX)
    }
}
