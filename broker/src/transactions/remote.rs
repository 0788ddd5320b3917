//! On a cluster, what the transaction coordinator (the controller leader) asks of other nodes, and what they ask
//! of it, over the internal `Transaction` call: a marker written by a partition's leader, a committed
//! transaction's offsets stored by a group's coordinator, and TxnOffsetCommit forwarded by a group's coordinator
//! (where Kafka clients send it) to the transaction coordinator.

use serde::{Deserialize, Serialize};

use super::markers::Marker;
use super::{PendingOffset, TransactionError};
use crate::error::{BrokerError, Result};
use crate::node::Node;

/// One call, as JSON in the internal `Transaction` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Call {
    /// To a partition's leader: write this marker.
    WriteMarker(Marker),
    /// To a group's coordinator: store a committed transaction's offsets, all of one group.
    StoreOffsets { offsets: Vec<PendingOffset> },
    /// To the transaction coordinator: TxnOffsetCommit, its group checks passed where the client sent it.
    CommitOffsets { transactional_id: String, producer_id: i64, producer_epoch: i16, offsets: Vec<PendingOffset> },
}

/// Why a call was refused: the message, and for a forwarded TxnOffsetCommit the Kafka codes to answer with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub message: String,
    /// `(with PRODUCER_FENCED known, without)`, when the refusal is the coordinator's.
    #[serde(default)]
    pub codes: Option<(i16, i16)>,
}

/// Answers one call on this node.
pub async fn serve(node: &Node, call: Call) -> std::result::Result<(), Refusal> {
    let served = match call {
        Call::WriteMarker(marker) => super::markers::write_marker_as_leader(node, &marker, true).await,
        Call::StoreOffsets { offsets } => super::markers::store_group_offsets_here(node, &offsets).await,
        Call::CommitOffsets { transactional_id, producer_id, producer_epoch, offsets } => {
            node.transactions.commit_offsets_here(&transactional_id, producer_id, producer_epoch, offsets).await
        }
    };
    served.map_err(|err| Refusal {
        codes: match &err {
            BrokerError::Transaction(err) => Some((err.kafka_code(true), err.kafka_code(false))),
            _ => None,
        },
        message: err.to_string(),
    })
}

/// Sends `call` to node `to` and waits for its answer.
pub async fn call(node: &Node, to: u64, call: &Call) -> Result<()> {
    let controller = node.transactions.controller().ok_or_else(|| {
        BrokerError::Internal("a transaction call between nodes was made on a single node".to_string())
    })?;
    let payload = serde_json::to_vec(call).map_err(|e| BrokerError::Internal(e.to_string()))?;
    let answer = controller.call_transaction(to, payload).await?;
    let answer: std::result::Result<(), Refusal> = serde_json::from_slice(&answer)
        .map_err(|e| BrokerError::Internal(format!("undecodable transaction call answer: {e}")))?;
    answer.map_err(|refusal| match refusal.codes {
        Some((fenced_known_code, code)) => {
            TransactionError::Remote { message: refusal.message, fenced_known_code, code }.into()
        }
        None => BrokerError::ControllerUnavailable { reason: format!("node {to}: {}", refusal.message) },
    })
}
