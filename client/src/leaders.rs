//! Which node leads each partition, for a client of a cluster. Produce and fetch go to the partition's leader;
//! until one is known they go to the bootstrap node. A `not-leader` refusal (the broker's typed reason, never
//! its message text) names the leader when the node knows it, and the client goes there; otherwise it asks any
//! node for the topic's placement (`DescribeTopic`, the metadata call) and routes by it. A leader that cannot be
//! reached is forgotten, and the next call goes through the bootstrap nodes again, which say where to go.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::connection::BrokerChannel as Channel;
use rill_protocol::v1::topic_admin_client::TopicAdminClient;
use rill_protocol::v1::DescribeTopicRequest;

use crate::connection::{call, endpoint, request, Client, ClientConfig};
use crate::error::{Error, RequestContext};

/// The leaders learned so far, and a channel per node address (shared by the partitions it leads).
#[derive(Default)]
pub(crate) struct Leaders {
    by_partition: Mutex<HashMap<(String, u32), Channel>>,
    by_address: Mutex<HashMap<String, Channel>>,
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
    /// Where a produce or fetch for the partition goes: its leader if known, else the bootstrap node.
    pub(crate) fn channel_for(&self, topic: &str, partition: u32) -> Channel {
        let known = lock(&self.leaders().by_partition).get(&(topic.to_owned(), partition)).cloned();
        known.unwrap_or_else(|| self.channel())
    }

    /// Learns from a failed produce or fetch: a `not-leader` moves the partition to the leader it names (or to
    /// the one the metadata names); an unreachable node is forgotten as leader, or, if it was the bootstrap
    /// node, replaced by the next one given.
    pub(crate) async fn learn_from(&self, topic: &str, partition: u32, err: &Error) {
        match err {
            Error::NotLeader { leader_address: Some(address), .. } => {
                self.route(topic, partition, Some(address));
            }
            Error::NotLeader { leader_address: None, .. } => self.refresh(topic).await,
            Error::Unavailable { .. } | Error::TimedOut { .. } => {
                let forgotten = lock(&self.leaders().by_partition).remove(&(topic.to_owned(), partition));
                if forgotten.is_none() {
                    self.next_bootstrap();
                }
            }
            _ => {}
        }
    }

    fn route(&self, topic: &str, partition: u32, address: Option<&str>) {
        let channel = address.filter(|a| !a.is_empty()).and_then(|a| self.leaders().channel_to(a, self.config()));
        let mut routes = lock(&self.leaders().by_partition);
        match channel {
            Some(channel) => routes.insert((topic.to_owned(), partition), channel),
            None => routes.remove(&(topic.to_owned(), partition)),
        };
    }

    /// Asks the bootstrap node for the topic's leaders and routes every partition by them.
    async fn refresh(&self, topic: &str) {
        let timeout = self.config().request_timeout;
        let max = self.config().max_message_bytes;
        let mut admin = TopicAdminClient::new(self.channel()).max_decoding_message_size(max);
        let described = call(
            timeout,
            RequestContext::topic(topic),
            admin.describe_topic(request(DescribeTopicRequest { name: topic.to_owned() }, timeout)),
        )
        .await;
        match described {
            Ok(described) => {
                for p in described.partitions {
                    self.route(topic, p.partition, Some(&p.leader_address));
                }
            }
            Err(err) => tracing::debug!(%topic, error = %err, "cannot learn the topic's leaders"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
