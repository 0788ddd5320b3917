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

/// The future a producer's `send_batch` hands back: resolves once every record of the call is acknowledged.
///
/// It holds one acknowledgement per run of consecutive records that went to the same batch (usually one or
/// two per call), not one per record.
#[must_use = "a batch delivery reports whether the records were stored; drop it explicitly to ignore that"]
#[derive(Default)]
pub struct BatchDelivery {
    runs: Vec<PendingRun>,
    /// Runs answered so far, in order.
    delivered: Vec<DeliveredRun>,
}

/// Where a run of consecutive records of one `send_batch` call was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveredRun {
    /// Index in the call's slice of the run's first record.
    pub first_record: usize,
    pub record_count: usize,
    pub partition: u32,
    /// Offset of the run's first record; the others follow it one by one. -1 when sent with acks `none`.
    pub base_offset: i64,
}

struct PendingRun {
    ack: BatchAck,
    partition: u32,
    batch_id: u64,
    /// Position of the run's first record in its batch.
    index_in_batch: usize,
    first_record: usize,
    record_count: usize,
}

impl BatchDelivery {
    /// The batch (partition, id) whose acknowledgement the last run holds: a record landing there extends it.
    pub(crate) fn open_run(&self) -> Option<(u32, u64)> {
        self.runs.last().map(|run| (run.partition, run.batch_id))
    }

    /// Adds `count` records of the call from `record` on, stored one after the other from `index_in_batch` of
    /// batch `batch_id` of `partition`. `ack` is `None` when that batch is the one [`Self::open_run`] named.
    pub(crate) fn add(
        &mut self,
        record: usize,
        partition: u32,
        batch_id: u64,
        index_in_batch: usize,
        count: usize,
        ack: Option<BatchAck>,
    ) {
        match ack {
            Some(ack) => self.runs.push(PendingRun {
                ack,
                partition,
                batch_id,
                index_in_batch,
                first_record: record,
                record_count: count,
            }),
            None => {
                debug_assert!(self.open_run() == Some((partition, batch_id)), "no ack only for the held batch");
                if let Some(run) = self.runs.last_mut() {
                    run.record_count += count;
                }
            }
        }
    }

    /// Records this delivery covers (until it resolves).
    pub fn record_count(&self) -> usize {
        self.runs.iter().map(|run| run.record_count).sum()
    }
}

impl Future for BatchDelivery {
    type Output = Result<Vec<DeliveredRun>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Runs are answered in any order; they are collected front to back so the result keeps the call's order.
        while let Some(run) = this.runs.get_mut(this.delivered.len()) {
            let outcome = match Pin::new(&mut run.ack).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(Err(Error::ProducerClosed)),
                Poll::Ready(Ok(outcome)) => outcome,
            };
            match record_offset(&outcome, run.index_in_batch) {
                Ok(base_offset) => this.delivered.push(DeliveredRun {
                    first_record: run.first_record,
                    record_count: run.record_count,
                    partition: run.partition,
                    base_offset,
                }),
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        this.runs.clear();
        Poll::Ready(Ok(std::mem::take(&mut this.delivered)))
    }
}
