//! Which node leads each partition, for a client of a cluster. Produce and fetch go to the partition's leader.
//! Before the first call for a topic the client asks the bootstrap node for the topic's placement
//! (`DescribeTopic`, the metadata call, once per topic however many partitions call at once), as a Kafka
//! client's first Metadata request does, so the first produce already goes to the leader. Where no leader is
//! named (a single node, a topic that does not exist yet) calls go to the bootstrap node. A `not-leader` refusal
//! (the broker's typed reason, never its message text) names the leader when the node knows it, and the client
//! goes there; otherwise it asks for the placement again and routes by it. A fetch carries the leader epoch the
//! placement named (KIP-320), and a `fenced-leader-epoch` or `unknown-leader-epoch` refusal also sends the client
//! to ask for the placement again, as does an `unknown partition` (the node asked may not have applied the change
//! that added the partition yet; the placement also tells whether the partition exists, `partition_wait.rs`). A
//! leader that cannot be reached is forgotten, and the next call goes through the bootstrap nodes again, which say
//! where to go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::connection::BrokerChannel as Channel;
use rill_protocol::v1::PartitionInfo;

use crate::connection::{endpoint, Client, ClientConfig};
use crate::error::Error;

/// The leaders learned so far (each partition's leader address, the channel to it and, when the placement said,
/// its leader epoch), and a channel per node address (shared by the partitions it leads).
#[derive(Default)]
pub(crate) struct Leaders {
    by_partition: Mutex<HashMap<(String, u32), Route>>,
    by_address: Mutex<HashMap<String, Channel>>,
    /// Topics whose placement was asked for before their first call (done once, shared by concurrent callers).
    placement_asked: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// Each topic's partition count in the latest placement learned: whether a partition a node calls unknown
    /// is one that node has not heard of yet (`partition_wait.rs`).
    partition_counts: Mutex<HashMap<String, u32>>,
}

/// The node a partition's next call goes to, as the client knows it: a leader by address, or a bootstrap node by
/// its place in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Leader(String),
    Bootstrap(usize),
}

/// Where a partition's calls go.
struct Route {
    address: String,
    channel: Channel,
    /// The leader epoch the placement named with this leader; `None` when the leader was learned from a
    /// `not-leader` refusal, which names no epoch. Fetches carry it (KIP-320).
    leader_epoch: Option<u32>,
}

impl Leaders {
    fn channel_to(&self, address: &str, config: &ClientConfig) -> Option<Channel> {
        let mut channels = lock(&self.by_address);
        if let Some(channel) = channels.get(address) {
            return Some(channel.clone());
        }
        let (_, endpoint) = endpoint(address, config).ok()?;
        let channel = Channel::new(endpoint.connect_lazy(), config);
        channels.insert(address.to_owned(), channel.clone());
        Some(channel)
    }
}

impl Client {
    /// Where a produce or fetch for the partition goes: its leader if known, else the bootstrap node. The
    /// topic's first call asks for its placement first.
    pub(crate) async fn channel_for(&self, topic: &str, partition: u32) -> Channel {
        self.leader_for(topic, partition).await.0
    }

    /// [`Client::channel_for`], with the leader epoch the placement named for that leader, if it named one: what
    /// a fetch tells the leader it expects, so a node whose epoch differs refuses it rather than serve it.
    pub(crate) async fn leader_for(&self, topic: &str, partition: u32) -> (Channel, Option<u32>) {
        let asked = lock(&self.leaders().placement_asked).entry(topic.to_owned()).or_default().clone();
        asked.get_or_init(|| self.refresh(topic)).await;
        let routes = lock(&self.leaders().by_partition);
        match routes.get(&(topic.to_owned(), partition)) {
            Some(route) => (route.channel.clone(), route.leader_epoch),
            None => (self.channel(), None),
        }
    }

    /// `partitions` of `topic` grouped by the node that leads them, each group with the channel to that node
    /// (partitions without a known leader in one group, to the bootstrap node): one call per leader for requests
    /// that name many partitions, such as ListOffsets, which only a leader answers.
    pub(crate) async fn channels_by_leader(&self, topic: &str, partitions: &[u32]) -> Vec<(Channel, Vec<u32>)> {
        let asked = lock(&self.leaders().placement_asked).entry(topic.to_owned()).or_default().clone();
        asked.get_or_init(|| self.refresh(topic)).await;
        let mut groups: Vec<(Option<String>, Channel, Vec<u32>)> = Vec::new();
        let routes = lock(&self.leaders().by_partition);
        for &partition in partitions {
            let (address, channel) = match routes.get(&(topic.to_owned(), partition)) {
                Some(route) => (Some(route.address.clone()), route.channel.clone()),
                None => (None, self.channel()),
            };
            match groups.iter_mut().find(|(known, _, _)| *known == address) {
                Some((_, _, group)) => group.push(partition),
                None => groups.push((address, channel, vec![partition])),
            }
        }
        groups.into_iter().map(|(_, channel, group)| (channel, group)).collect()
    }

    /// Learns from a failed produce or fetch: a `not-leader` moves the partition to the leader it names (or to
    /// the one the metadata names), an `unknown partition` asks for the placement again; an unreachable node is forgotten as leader, or, if it was the bootstrap
    /// node, replaced by the next one given.
    pub(crate) async fn learn_from(&self, topic: &str, partition: u32, err: &Error) {
        match err {
            Error::NotLeader { leader_address: Some(address), .. } => {
                self.route(topic, partition, Some(address), None);
            }
            // An unknown partition: the node asked may lag the metadata (a partition just added), or the client's
            // placement is what is behind; either way a fresh one says where to go and whether it exists.
            Error::NotLeader { leader_address: None, .. }
            | Error::LeaderEpochMismatch { .. }
            | Error::UnknownPartition { .. } => self.refresh(topic).await,
            Error::Unavailable { .. } | Error::TimedOut { .. } => {
                let forgotten = lock(&self.leaders().by_partition).remove(&(topic.to_owned(), partition));
                if forgotten.is_none() {
                    self.next_bootstrap();
                }
            }
            _ => {}
        }
    }

    /// Where [`Client::channel_for`] sends the partition's next call, without asking for the placement.
    pub(crate) fn destination_of(&self, topic: &str, partition: u32) -> Destination {
        match lock(&self.leaders().by_partition).get(&(topic.to_owned(), partition)) {
            Some(route) => Destination::Leader(route.address.clone()),
            None => Destination::Bootstrap(self.bootstrap_index()),
        }
    }

    fn route(&self, topic: &str, partition: u32, address: Option<&str>, leader_epoch: Option<u32>) {
        let address = address.filter(|a| !a.is_empty());
        let route = address.and_then(|a| {
            let channel = self.leaders().channel_to(a, self.config())?;
            Some(Route { address: a.to_owned(), channel, leader_epoch })
        });
        let mut routes = lock(&self.leaders().by_partition);
        match route {
            Some(route) => routes.insert((topic.to_owned(), partition), route),
            None => routes.remove(&(topic.to_owned(), partition)),
        };
    }

    /// Whether the latest placement of `topic` the client learned lists `partition`.
    pub(crate) fn is_listed(&self, topic: &str, partition: u32) -> bool {
        lock(&self.leaders().partition_counts).get(topic).is_some_and(|count| partition < *count)
    }

    /// Asks the bootstrap node for the topic's placement; [`crate::admin::describe`] routes by it.
    async fn refresh(&self, topic: &str) {
        if let Err(err) = crate::admin::describe(self, topic, self.config().request_timeout).await {
            tracing::debug!(%topic, error = %err, "cannot learn the topic's leaders");
        }
    }

    /// Routes every partition of `topic` by a DescribeTopic answer, whoever asked for it (the producer's
    /// partition count, the admin), so the topic's first call needs no second one.
    pub(crate) fn learn_placement(&self, topic: &str, partitions: &[PartitionInfo]) {
        for p in partitions {
            self.route(topic, p.partition, Some(&p.leader_address), Some(p.leader_epoch));
        }
        // The latest answer, not the largest seen: a topic deleted and created again may have fewer partitions.
        let count = partitions.iter().map(|p| p.partition.saturating_add(1)).max().unwrap_or(0);
        lock(&self.leaders().partition_counts).insert(topic.to_owned(), count);
        let asked = lock(&self.leaders().placement_asked).entry(topic.to_owned()).or_default().clone();
        // Already set, or being set by the call that brought this answer: either way the topic is known.
        let _ = asked.set(());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
