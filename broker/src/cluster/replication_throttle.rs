//! Setting and clearing the replication throttle for replica moves (`rill cluster throttle`, `--throttle` on
//! `rill topic reassign` and `rill cluster remove-node`, Kafka's `*.replication.throttled.rate` broker
//! configs). The rate lives in the replicated metadata (`ClusterMetadata::replication_throttle_bytes_per_sec`),
//! so every leader applies it and it outlives restarts and controller failovers; what it throttles, and how, is
//! `replication/throttle.rs`.

use std::time::Duration;

use super::metadata::{Command, CommandOutcome};
use super::Controller;
use crate::error::BrokerError;
use crate::replication::throttle::{check_rate, ThrottleRefused};

/// How long a change is proposed again while no controller leader takes it (an election under way).
const PROPOSE_RETRY_FOR: Duration = Duration::from_secs(5);
const PROPOSE_RETRY_AFTER: Duration = Duration::from_millis(100);

/// The throttle before and after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleChanged {
    pub previous_bytes_per_sec: Option<u64>,
    pub bytes_per_sec: Option<u64>,
}

impl From<ThrottleRefused> for BrokerError {
    fn from(refusal: ThrottleRefused) -> Self {
        BrokerError::invalid("bytes_per_sec", refusal.to_string())
    }
}

impl Controller {
    /// Sets (`Some`) or clears (`None`) the throttle, from any node (the proposal goes to the controller leader),
    /// and answers once this node applied it.
    pub(crate) async fn set_replication_throttle(
        &self,
        bytes_per_sec: Option<u64>,
    ) -> Result<ThrottleChanged, BrokerError> {
        if let Some(rate) = bytes_per_sec {
            check_rate(rate)?;
        }
        let previous_bytes_per_sec = self.metadata().replication_throttle_bytes_per_sec;
        let outcome = self.propose_throttle(bytes_per_sec).await?;
        if outcome.changed {
            // Committed on the leader; this node's replica applies it a round trip later.
            let is_applied =
                self.wait_for_metadata(|metadata| metadata.replication_throttle_bytes_per_sec == bytes_per_sec).await;
            if !is_applied {
                return Err(BrokerError::ControllerUnavailable {
                    reason: "the throttle was committed but this node has not applied it yet; describe the \
                             cluster to see it"
                        .into(),
                });
            }
            match bytes_per_sec {
                Some(rate) => tracing::info!(bytes_per_sec = rate, ?previous_bytes_per_sec, "replication throttle set"),
                None => tracing::info!(?previous_bytes_per_sec, "replication throttle cleared"),
            }
        }
        Ok(ThrottleChanged { previous_bytes_per_sec, bytes_per_sec })
    }

    /// Proposes the throttle, again while the controller leader is changing (a proposal sent to a node that just
    /// lost the leadership is refused), up to [`PROPOSE_RETRY_FOR`]. Setting a rate is idempotent, so a retry of
    /// a proposal that did commit changes nothing more.
    async fn propose_throttle(&self, bytes_per_sec: Option<u64>) -> Result<CommandOutcome, BrokerError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_RETRY_FOR;
        loop {
            match self.propose(Command::SetReplicationThrottle { bytes_per_sec }).await {
                Err(BrokerError::ControllerUnavailable { reason }) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%reason, "proposing the replication throttle again");
                    tokio::time::sleep(PROPOSE_RETRY_AFTER).await;
                }
                answered => return answered,
            }
        }
    }
}
