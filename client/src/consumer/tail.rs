//! A partition read at its tail: pushes on a `Subscribe` stream instead of long-poll fetches
//! (`subscription.rs` says why).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rill_protocol::v1::{FetchResponse, RecordFormat, SubscribeRequest};
use tonic::Code;

use crate::connection::{call, Client};
use crate::error::{Error, RequestContext, Result};
use crate::subscription::Subscription;

/// What one read task needs to take the partition's next push.
pub(super) struct TailRead {
    /// The partition's open subscription, positioned at the read's offset; `None` opens one.
    pub subscription: Option<Subscription>,
    pub max_bytes: u32,
    /// The consumer's isolation, as the wire names it.
    pub isolation: i32,
    /// Set when a broker answers `Subscribe` with UNIMPLEMENTED: the consumer fetches from then on.
    pub is_unsupported: Arc<AtomicBool>,
}

impl TailRead {
    /// The next push from `offset`, as a fetch answer, with the subscription to take the one after from. `None`
    /// when the broker has no `Subscribe` (the caller fetches instead).
    pub(super) async fn next_push(
        self,
        client: &Client,
        topic: &str,
        partition: u32,
        offset: i64,
    ) -> Option<Result<(FetchResponse, Subscription)>> {
        let ctx = RequestContext::partition(topic, partition);
        let mut subscription = match self.subscription {
            Some(open) => open,
            None => match open(client, topic, partition, offset, self.max_bytes, self.isolation).await {
                Ok(open) => open,
                Err(Error::Broker { code: Code::Unimplemented, .. }) => {
                    tracing::debug!(topic, partition, "the broker has no Subscribe; fetching");
                    self.is_unsupported.store(true, Ordering::Relaxed);
                    return None;
                }
                Err(err) => return Some(Err(err)),
            },
        };
        // No deadline: at an idle tail nothing may come for a long time. A dead connection is found by the
        // client's keep-alive PINGs, which end the stream.
        let pushed = match subscription.next().await {
            Ok(pushed) => pushed,
            Err(status) => return Some(Err(Error::from_status(&status, ctx))),
        };
        let response = FetchResponse {
            record_batches: pushed.record_batches,
            records: pushed.records,
            next_offset: pushed.next_offset,
            high_watermark: pushed.high_watermark,
            log_start_offset: pushed.log_start_offset,
            last_stable_offset: pushed.last_stable_offset,
        };
        Some(Ok((response, subscription)))
    }
}

async fn open(
    client: &Client,
    topic: &str,
    partition: u32,
    offset: i64,
    max_bytes: u32,
    isolation: i32,
) -> Result<Subscription> {
    let ctx = RequestContext::partition(topic, partition);
    let (channel, current_leader_epoch) = client.leader_for(topic, partition).await;
    let request = SubscribeRequest {
        topic: topic.to_owned(),
        partition,
        offset,
        max_bytes,
        format: RecordFormat::Raw as i32,
        current_leader_epoch,
        isolation,
    };
    let timeout = client.config().request_timeout;
    let max_message_bytes = client.config().max_message_bytes;
    let opened = async { Subscription::open(&channel, &request, max_message_bytes).await.map(tonic::Response::new) };
    call(timeout, ctx, opened).await
}
