//! Which node coordinates each consumer group, for a client of a cluster. Group calls (join, commit, fetch
//! offsets, group admin) go to the group's coordinator; until one is known they go to the bootstrap node. A
//! `not-coordinator` refusal (the broker's typed reason) names the coordinator when the node knows it, and the
//! client goes there; without a name (the group's offsets partition has no leader, or its leader is still
//! loading) it retries after a short backoff. An unreachable coordinator is forgotten, and the next call goes
//! through the bootstrap nodes again, which say where to go. A single node is its own groups' coordinator and
//! never refuses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::connection::BrokerChannel as Channel;
use rill_protocol::v1::consumer_groups_client::ConsumerGroupsClient;
use tokio::time::Instant;

use crate::connection::{call, endpoint, Client};
use crate::error::{Error, RequestContext, Result};

/// The first wait before a group call is retried; it doubles up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// The coordinators learned so far: a channel per group.
#[derive(Default)]
pub(crate) struct Coordinators {
    by_group: Mutex<HashMap<String, Channel>>,
}

impl Client {
    /// A groups client to the group's coordinator if known, else to the bootstrap node.
    pub(crate) fn groups_for(&self, group: &str) -> ConsumerGroupsClient<Channel> {
        let known = lock(&self.coordinators().by_group).get(group).cloned();
        let max = self.config().max_message_bytes;
        ConsumerGroupsClient::new(known.unwrap_or_else(|| self.channel()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    /// Learns from a failed group call: a `not-coordinator` naming a node moves the group there; one naming
    /// none, or an unreachable node, forgets the group's coordinator (an unreachable bootstrap node is replaced
    /// by the next one given).
    pub(crate) fn learn_coordinator(&self, group: &str, err: &Error) {
        let mut routes = lock(&self.coordinators().by_group);
        match err {
            Error::NotCoordinator { coordinator_address: Some(address), .. } if !address.is_empty() => {
                match endpoint(address, self.config()) {
                    Ok((_, endpoint)) => {
                        tracing::debug!(%group, %address, "following the group's coordinator");
                        routes.insert(group.to_owned(), Channel::new(endpoint.connect_lazy(), self.config()));
                    }
                    Err(_) => {
                        routes.remove(group);
                    }
                }
            }
            Error::NotCoordinator { .. } => {
                routes.remove(group);
            }
            Error::Unavailable { .. } | Error::TimedOut { .. } if routes.remove(group).is_none() => {
                self.next_bootstrap();
            }
            _ => {}
        }
    }
}

/// Runs a unary group call at the group's coordinator, following `not-coordinator` and retrying an
/// unreachable node, or a commit short of in-sync replicas, until `timeout` has passed.
pub(crate) async fn call_coordinator<T, F, Fut>(
    client: &Client,
    group: &str,
    ctx: RequestContext<'_>,
    timeout: Duration,
    mut send: F,
) -> Result<T>
where
    F: FnMut(ConsumerGroupsClient<Channel>) -> Fut,
    Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = Instant::now() + timeout;
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        let result = call(timeout, ctx, send(client.groups_for(group))).await;
        let err = match result {
            // Too few in-sync replicas of the offsets partition is brief (a replica catching up): retried too.
            Err(err @ (Error::NotCoordinator { .. } | Error::Unavailable { .. } | Error::NotEnoughReplicas { .. })) => {
                err
            }
            other => return other,
        };
        client.learn_coordinator(group, &err);
        let is_redirect = matches!(&err, Error::NotCoordinator { coordinator_address: Some(a), .. } if !a.is_empty());
        let wait = if is_redirect { Duration::ZERO } else { backoff };
        if Instant::now() + wait >= deadline {
            return Err(err);
        }
        tokio::time::sleep(wait).await;
        if !is_redirect {
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
