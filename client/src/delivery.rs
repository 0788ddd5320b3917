//! The future a producer's `send` hands back: one record's share of its batch's acknowledgement.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::accumulator::{record_offset, BatchAck};
use crate::error::{Error, Result};
use crate::record::RecordMetadata;

/// Resolves to where a record was stored once its batch is acknowledged, or to why the batch failed. Dropping
/// it does not cancel the send.
#[must_use = "a delivery future reports whether the record was stored; drop it explicitly to ignore that"]
pub struct DeliveryFuture {
    ack: BatchAck,
    index: usize,
    partition: u32,
    timestamp_ms: i64,
}

impl DeliveryFuture {
    pub(crate) fn new(ack: BatchAck, index: usize, partition: u32, timestamp_ms: i64) -> Self {
        Self { ack, index, partition, timestamp_ms }
    }

    /// Whether the batch has been answered (so awaiting this returns at once).
    pub fn is_answered(&self) -> bool {
        self.ack.peek().is_some()
    }

    /// The partition the record was put in.
    pub fn partition(&self) -> u32 {
        self.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.ack).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::ProducerClosed)),
            Poll::Ready(Ok(outcome)) => Poll::Ready(record_offset(&outcome, this.index).map(|offset| RecordMetadata {
                partition: this.partition,
                offset,
                timestamp_ms: this.timestamp_ms,
            })),
        }
    }
}
