//! The two seams between replication and the rest of the cluster, so the same replication code runs in a
//! node and in the turmoil simulation (`simulation.rs`):
//!
//! - [`ControllerLink`]: the metadata this node applied, and proposals to the controller quorum. In a node it
//!   is the raft [`Controller`]; in the simulation a stand-in that applies the same [`Command`]s to the same
//!   [`ClusterMetadata`], so elections follow the same rules (`metadata.rs`).
//! - [`LeaderLinks`]: how a follower reaches a leader node (KIP-279's epoch end, then the `Replicate` stream).
//!   In a node it is tonic ([`TonicLeaders`]); in the simulation turmoil's TCP carrying the same protobuf
//!   messages.
//!
//! Neither seam decides anything: what to fetch, truncate, append and acknowledge stays in `fetcher.rs`,
//! `leader.rs` and `isr.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rill_protocol::internal::controller_client::ControllerClient;
use rill_protocol::internal::{EpochEndReply, EpochEndRequest, ReplicaData, ReplicaFetch};
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, StreamExt};
use tower::ServiceExt;

use crate::cluster::metadata::{ClusterMetadata, Command, CommandOutcome};
use crate::cluster::Controller;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::tls::{channel_to, PeerChannel};

use super::answers;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A leader's answers on one `Replicate` stream, in order; ends when the leader closes it.
pub type ReplicaAnswers = Pin<Box<dyn Stream<Item = Result<ReplicaData>> + Send>>;

/// What replication needs of the controller quorum.
pub trait ControllerLink: Send + Sync + 'static {
    /// The metadata as this node last applied it.
    fn metadata(&self) -> Arc<ClusterMetadata>;
    fn watch_metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>>;
    /// Commits `command` (from any node) and answers what applying it did.
    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutcome>>;
    /// Waits, bounded, until the applied metadata satisfies `is_done`; false if it did not in time.
    fn wait_for_metadata<'a>(
        &'a self,
        is_done: Box<dyn Fn(&ClusterMetadata) -> bool + Send + Sync + 'a>,
    ) -> BoxFuture<'a, bool>;
    /// The controller quorum's leader as this node knows it.
    fn current_leader(&self) -> Option<u64>;
    /// Whether this node has applied the cluster's metadata since it started (`Controller::has_caught_up`).
    fn has_caught_up(&self) -> bool {
        true
    }
    /// A replication stream from leader node `node_id` broke (`Controller::suspect`).
    fn stream_broke(&self, _node_id: u64) {}
}

impl ControllerLink for Controller {
    fn metadata(&self) -> Arc<ClusterMetadata> {
        Controller::metadata(self)
    }

    fn watch_metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        Controller::watch_metadata(self)
    }

    fn propose(&self, command: Command) -> BoxFuture<'_, Result<CommandOutcome>> {
        Box::pin(Controller::propose(self, command))
    }

    fn wait_for_metadata<'a>(
        &'a self,
        is_done: Box<dyn Fn(&ClusterMetadata) -> bool + Send + Sync + 'a>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(Controller::wait_for_metadata(self, is_done))
    }

    fn current_leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    fn has_caught_up(&self) -> bool {
        Controller::has_caught_up(self)
    }

    fn stream_broke(&self, node_id: u64) {
        Controller::suspect(self, node_id)
    }
}

/// Opens connections to leader nodes, by the address the metadata gives them.
pub trait LeaderLinks: Send + Sync + 'static {
    fn connect<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Box<dyn LeaderLink>>>;
}

/// Why a leader named no epoch end for one partition.
#[derive(Debug)]
pub enum EpochEndFailure {
    /// The leader answered, refusing this one partition (it is still taking it over, cannot open its replica,
    /// or leads it no more): the link itself works, and the link's other partitions do not wait on this one.
    Refused(String),
    /// The link failed: the leader is unreachable, or the call broke.
    Link(BrokerError),
}

/// One connection from a follower to a leader node.
pub trait LeaderLink: Send {
    /// KIP-279: where `request.leader_epoch` ends in the leader's log.
    fn epoch_end(&mut self, request: EpochEndRequest) -> BoxFuture<'_, Result<EpochEndReply, EpochEndFailure>>;
    /// Opens the `Replicate` stream: the leader answers each fetch sent into `fetches`, in order.
    fn replicate(&mut self, fetches: mpsc::Receiver<ReplicaFetch>) -> BoxFuture<'_, Result<ReplicaAnswers>>;
}

/// A follower-side failure to reach or hear the leader: the fetcher reconnects after a backoff.
pub(super) fn unavailable(what: &str, err: impl std::fmt::Display) -> BrokerError {
    BrokerError::ControllerUnavailable { reason: format!("{what}: {err}") }
}

/// A replication answer may hold `FETCH_MAX_BYTES_PER_PARTITION` for each of many partitions.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// The nodes' internal tonic service (`rill.internal.v1`), with the node's TLS settings.
pub struct TonicLeaders {
    pub config: Arc<BrokerConfig>,
}

struct TonicLeader {
    client: ControllerClient<PeerChannel>,
    /// The same channel, for `Replicate`: its answers are read from the HTTP/2 frames (`answers.rs`).
    channel: PeerChannel,
}

impl LeaderLinks for TonicLeaders {
    fn connect<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Box<dyn LeaderLink>>> {
        Box::pin(async move {
            let channel = channel_to(address, &self.config).map_err(|e| unavailable("leader address", e))?;
            let client = ControllerClient::new(channel.clone()).max_decoding_message_size(MAX_ANSWER_BYTES);
            Ok(Box::new(TonicLeader { client, channel }) as Box<dyn LeaderLink>)
        })
    }
}

impl LeaderLink for TonicLeader {
    fn epoch_end(&mut self, request: EpochEndRequest) -> BoxFuture<'_, Result<EpochEndReply, EpochEndFailure>> {
        Box::pin(async move {
            match self.client.offsets_for_leader_epoch(request).await {
                Ok(reply) => Ok(reply.into_inner()),
                // The leader's own refusal carries a reason; a transport failure does not.
                Err(status) if rill_protocol::reason::reason_of(&status).is_some() => {
                    Err(EpochEndFailure::Refused(status.message().to_owned()))
                }
                Err(status) => Err(EpochEndFailure::Link(unavailable("epoch end", status))),
            }
        })
    }

    fn replicate(&mut self, fetches: mpsc::Receiver<ReplicaFetch>) -> BoxFuture<'_, Result<ReplicaAnswers>> {
        Box::pin(async move {
            let request = answers::replicate_request(fetches);
            let response = self.channel.clone().oneshot(request).await.map_err(|e| unavailable("replicate", e))?;
            let inbound = answers::answers_of(response.map(tonic::body::Body::new), MAX_ANSWER_BYTES)
                .map_err(|e| unavailable("replicate", e))?;
            let answers = inbound.map(|answer| answer.map_err(|e| unavailable("replication answer", e)));
            Ok(Box::pin(answers) as ReplicaAnswers)
        })
    }
}
