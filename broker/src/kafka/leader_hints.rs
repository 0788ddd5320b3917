//! KIP-951's leader hints: on a cluster, a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
//! names its current leader and leader epoch as this node's replica of the metadata has them, and the answer
//! carries those leaders' client endpoints, so a client moves the partition at once instead of asking Metadata
//! first and waiting for its answer (Produce v10+, Fetch v12+ for the leader and v16+ for the endpoints,
//! ShareFetch and ShareAcknowledge v1). The encoders leave the fields out of older versions.
//!
//! A single node leads every partition it has, so it never hints; nor does a node that knows no leader of the
//! partition (the fields stay at their "unknown" defaults and the client asks Metadata, as before). A hint may be
//! as stale as this node's replica: the client takes it only when its epoch is newer than the one it knows.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::metadata::{cluster_brokers, Broker};
use super::KafkaContext;
use crate::cluster::metadata::ClusterMetadata;

/// A [`Broker`] as the response type's own `NodeEndpoint` (each response message has its own).
macro_rules! node_endpoint {
    ($endpoint:ty, $broker:expr) => {{
        let broker: $crate::kafka::metadata::Broker = $broker;
        <$endpoint>::default()
            .with_node_id(broker.id)
            .with_host(kafka_protocol::protocol::StrBytes::from_string(broker.host))
            .with_port(broker.port)
            .with_rack(broker.rack.map(kafka_protocol::protocol::StrBytes::from_string))
    }};
}
pub(super) use node_endpoint;

/// Whether a partition answered `code` gets a hint: the codes after which a client looks for the leader.
pub(super) fn is_hinted(code: i16) -> bool {
    code == ResponseError::NotLeaderOrFollower.code() || code == ResponseError::FencedLeaderEpoch.code()
}

/// The leaders one answer names, so that it carries their endpoints too.
pub(super) struct LeaderHints {
    metadata: Option<Arc<ClusterMetadata>>,
    named: BTreeSet<u64>,
}

impl LeaderHints {
    pub fn new(kafka: &KafkaContext) -> Self {
        Self { metadata: kafka.node.replication.as_ref().map(|r| r.metadata()), named: BTreeSet::new() }
    }

    /// The leader id and leader epoch of `topic`'s partition `index`, if this node's metadata knows one;
    /// remembered for [`LeaderHints::endpoints`].
    pub fn leader_of(&mut self, topic: &str, index: i32) -> Option<(i32, i32)> {
        let metadata = self.metadata.as_ref()?;
        let placement = metadata.topics.get(topic)?.partitions.get(usize::try_from(index).ok()?)?;
        let leader = placement.leader?;
        let leader_id = i32::try_from(leader).ok()?;
        self.named.insert(leader);
        Some((leader_id, i32::try_from(placement.leader_epoch).unwrap_or(i32::MAX)))
    }

    /// The named leaders as Metadata gives them (alive nodes, at their client addresses, with their racks).
    pub fn endpoints(&self) -> Vec<Broker> {
        let Some(metadata) = self.metadata.as_ref().filter(|_| !self.named.is_empty()) else { return Vec::new() };
        let is_named = |broker: &Broker| u64::try_from(broker.id.0).is_ok_and(|id| self.named.contains(&id));
        cluster_brokers(metadata).into_iter().filter(is_named).collect()
    }
}
