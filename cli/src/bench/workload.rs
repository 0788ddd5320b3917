//! Named workloads: fixed shapes, so a figure can be rerun by anyone and compared run to run. The names follow
//! the OpenMessaging Benchmark's (`1-topic-16-partitions-1kb`), plus the shape the benchmark issue compares
//! against Apache Iggy (8 producers, each to its own single-partition topic, 1000 records of 1000 bytes a batch).

use std::time::Duration;

/// Everything that shapes a run. Flags override a named workload's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    pub partitions_per_topic: u32,
    pub message_bytes: usize,
    /// Total messages, over all producers; `None` runs for `duration`.
    pub messages: Option<u64>,
    pub duration: Duration,
    pub producers: u32,
    pub consumers: u32,
    pub batch_bytes: usize,
    pub linger: Duration,
    /// Messages per second over all producers; `None` is as fast as possible.
    pub rate: Option<u64>,
    /// Records a producer hands the client per call (1: `send` per record; more: `send_batch`).
    pub records_per_send: usize,
}

/// The encoded size of a batch of `records` keyless records of `message_bytes`, built the way the producer
/// builds it, so `batch_bytes` seals batches at that many records.
pub fn batch_bytes_for(records: usize, message_bytes: usize) -> usize {
    let value = vec![0u8; message_bytes];
    let mut builder = rill_protocol::RecordBatchBuilder::with_capacity(records * (message_bytes + 16));
    for _ in 0..records {
        builder.push(&rill_protocol::Record { value: Some(value.clone()), ..rill_protocol::Record::default() });
    }
    builder.encoded_bytes()
}

pub const NAMES: [&str; 6] = [
    "1-topic-16-partitions-1kb",
    "1-topic-16-partitions-100b",
    "8-topics-1-partition-1kb",
    "8-topics-1-partition-100b",
    "1-topic-1-partition-1kb",
    "e2e-10k-msgs-1kb",
];

pub fn named(name: &str) -> Option<Workload> {
    let base = Workload {
        name: name.to_owned(),
        topics: 1,
        partitions_per_topic: 1,
        message_bytes: 1024,
        messages: Some(1_000_000),
        duration: Duration::from_secs(30),
        producers: 1,
        consumers: 1,
        batch_bytes: 1 << 20,
        linger: Duration::from_millis(5),
        rate: None,
        records_per_send: 1,
    };
    Some(match name {
        "1-topic-16-partitions-1kb" => Workload { partitions_per_topic: 16, producers: 4, consumers: 4, ..base },
        "1-topic-16-partitions-100b" => Workload {
            partitions_per_topic: 16,
            message_bytes: 100,
            messages: Some(10_000_000),
            producers: 4,
            consumers: 4,
            batch_bytes: batch_bytes_for(1000, 100),
            ..base
        },
        // The comparison shape: 1000 batches of 1000 records per producer, handed to the client 1000 at
        // a time as Iggy's benchmark does (the OMB-shaped workloads send record by record, as Kafka's does).
        "8-topics-1-partition-1kb" => Workload {
            topics: 8,
            message_bytes: 1000,
            messages: Some(8_000_000),
            producers: 8,
            consumers: 8,
            batch_bytes: batch_bytes_for(1000, 1000),
            records_per_send: 1000,
            ..base
        },
        "8-topics-1-partition-100b" => Workload {
            topics: 8,
            message_bytes: 100,
            messages: Some(8_000_000),
            producers: 8,
            consumers: 8,
            batch_bytes: batch_bytes_for(1000, 100),
            records_per_send: 1000,
            ..base
        },
        "1-topic-1-partition-1kb" => base,
        // End-to-end latency at a fixed, moderate rate: the broker is not the bottleneck, the path is measured.
        "e2e-10k-msgs-1kb" => Workload {
            messages: Some(300_000),
            rate: Some(10_000),
            batch_bytes: 64 << 10,
            // Latency, not batching: a batch leaves as soon as the partition's sender is free.
            linger: Duration::ZERO,
            ..base
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_is_a_workload() {
        for name in NAMES {
            let workload = named(name).expect(name);
            assert_eq!(workload.name, name);
            assert!(workload.producers >= 1 && workload.topics >= 1 && workload.message_bytes >= 16);
        }
        assert!(named("no-such-workload").is_none());
    }

    #[test]
    fn a_thousand_record_batch_fits_its_batch_bytes() {
        // The comparison shape: 1000 records of 1000 bytes must be one batch, not two.
        let bytes = batch_bytes_for(1000, 1000);
        assert!((1000 * 1000..1100 * 1000).contains(&bytes), "{bytes}");
    }
}
