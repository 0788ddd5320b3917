//! DeleteRecords routed as Kafka's AdminClient routes it: on a cluster only a partition's leader deletes (it
//! answers once its in-sync replicas have moved their log start too), so each leader gets the partitions it
//! leads, at once, and a partition refused with `not-leader` (the leader moved) is routed again by a fresh
//! placement and sent again, at most [`DELETE_RECORDS_ROUNDS`] times. On a single node it is one call.

use std::time::Duration;

use rill_protocol::v1::topic_admin_client::TopicAdminClient;
use rill_protocol::v1::{DeleteRecordsBefore, DeleteRecordsRequest, DeleteRecordsResult};

use crate::admin::describe;
use crate::connection::{call, request, Client};
use crate::error::{Error, RequestContext, Result};

/// How many rounds [`delete_records`] sends before answering `not-leader` for a partition whose leader keeps
/// moving.
const DELETE_RECORDS_ROUNDS: usize = 3;
/// The wait before a round that reroutes: a new leader is elected within the controller's session timeout, and
/// a few short waits cover the common case without holding a caller whose call timeout is short.
const REROUTE_BACKOFF: Duration = Duration::from_millis(100);
/// The reason word of a partition refused because the node asked does not lead it.
const NOT_LEADER: &str = "not-leader";

/// How long the leader may wait for its replicas: most of the call's timeout, so that its `timed-out` answer,
/// naming the replicas that lag, arrives before this side gives up on the call.
fn leader_wait_ms(timeout: Duration) -> u32 {
    let wait = timeout.saturating_sub(timeout / 5);
    u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1)
}

/// Deletes `topic`'s records before each `(partition, offset)` of `before` at the partition's leader; the results
/// in the order asked.
pub(crate) async fn delete_records(
    client: &Client,
    topic: &str,
    before: &[(u32, i64)],
    timeout: Duration,
) -> Result<Vec<DeleteRecordsResult>> {
    let timeout_ms = leader_wait_ms(timeout);
    let mut pending: Vec<(u32, i64)> = before.to_vec();
    let mut results = Vec::with_capacity(before.len());
    for round in 0..DELETE_RECORDS_ROUNDS {
        let is_last_round = round + 1 == DELETE_RECORDS_ROUNDS;
        let partitions: Vec<u32> = pending.iter().map(|(partition, _)| *partition).collect();
        let calls = client.channels_by_leader(topic, &partitions).await.into_iter().map(|(channel, group)| {
            let asked = group
                .iter()
                .filter_map(|p| pending.iter().find(|(partition, _)| partition == p))
                .map(|&(partition, offset)| DeleteRecordsBefore { partition, offset })
                .collect();
            let message = DeleteRecordsRequest { topic: topic.to_owned(), partitions: asked, timeout_ms };
            let max = client.config().max_message_bytes;
            let mut topics =
                TopicAdminClient::new(channel).max_decoding_message_size(max).max_encoding_message_size(max);
            let ctx = RequestContext::topic(topic);
            async move { (group, call(timeout, ctx, topics.delete_records(request(message, timeout))).await) }
        });
        let mut rerouted: Vec<u32> = Vec::new();
        for (group, answer) in futures_util::future::join_all(calls).await {
            match answer {
                Ok(response) => {
                    for result in response.partitions {
                        if result.error_reason == NOT_LEADER && !is_last_round {
                            rerouted.push(result.partition);
                        } else {
                            results.push(result);
                        }
                    }
                }
                Err(err @ Error::Unavailable { .. }) if !is_last_round => {
                    for &partition in &group {
                        client.learn_from(topic, partition, &err).await;
                    }
                    rerouted.extend(group);
                }
                Err(err) => return Err(err),
            }
        }
        if rerouted.is_empty() {
            break;
        }
        pending.retain(|(partition, _)| rerouted.contains(partition));
        tokio::time::sleep(REROUTE_BACKOFF * (round as u32 + 1)).await;
        if let Err(err) = describe(client, topic, timeout).await {
            tracing::debug!(%topic, error = %err, "cannot learn the topic's leaders");
        }
    }
    results.sort_by_key(|result| before.iter().position(|(partition, _)| *partition == result.partition));
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_waits_most_of_the_call_timeout_and_never_zero() {
        assert_eq!(leader_wait_ms(Duration::from_secs(30)), 24_000);
        assert_eq!(leader_wait_ms(Duration::from_millis(1)), 1);
        assert_eq!(leader_wait_ms(Duration::ZERO), 1, "0 would mean the broker's default");
    }
}
