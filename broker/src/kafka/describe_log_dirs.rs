//! DescribeLogDirs (v1–v4): what `kafka-log-dirs.sh --describe` and Kafka UIs (Kafka UI, AKHQ, Conduktor,
//! Redpanda Console) read topic sizes from. A node has one log dir, its data dir (by its absolute path), holding
//! every partition replica it keeps; each is described with the bytes of its segments (`Log::size_bytes`, what
//! gRPC's DescribeTopic gives), an offset lag of 0 (Kafka's lag of a "future" replica being moved between a
//! broker's dirs: rill has none) and `is_future_key` false. v4 adds the volume's total and usable bytes
//! (`statvfs`, as Kafka's `FileStore` reads them).
//!
//! As Kafka's broker answers: topics named in the request are described (partitions this node does not keep are
//! left out, unknown topics too), null topics ask for all; on a cluster only this node's replicas, since each
//! broker describes its own disks and a client asks each broker. DESCRIBE on the cluster is required: a denied
//! request gets no dirs, and from v3 CLUSTER_AUTHORIZATION_FAILED as its error code. The internal log a single
//! node keeps its committed offsets in (`__consumer_offsets-0`, outside the topic registry) is not described.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::topic_configs::text;
use super::KafkaContext;
use crate::auth::acl::{Operation, Resource};
use crate::registry::blocking;

/// The first version with a top-level error code.
const FIRST_WITH_ERROR_CODE: i16 = 3;
/// The first version with the volume's total and usable bytes.
const FIRST_WITH_VOLUME_BYTES: i16 = 4;
/// Kafka's value of `total_bytes` and `usable_bytes` when they are unknown.
const UNKNOWN_BYTES: i64 = -1;

pub async fn answer(
    kafka: &KafkaContext,
    request: &DescribeLogDirsRequest,
    version: i16,
    principal: &crate::auth::Principal,
) -> DescribeLogDirsResponse {
    if let Err(code) = kafka.authorize(principal, Operation::Describe, &Resource::cluster()) {
        let refused = DescribeLogDirsResponse::default();
        return if version >= FIRST_WITH_ERROR_CODE { refused.with_error_code(code) } else { refused };
    }
    let data_dir = std::path::absolute(&kafka.node.config.data_dir).unwrap_or(kafka.node.config.data_dir.clone());
    let mut dir = DescribeLogDirsResult::default()
        .with_log_dir(text(data_dir.display().to_string()))
        .with_topics(described_topics(kafka, request));
    if version >= FIRST_WITH_VOLUME_BYTES {
        let (usable, total) = volume_bytes(data_dir).await;
        dir = dir.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default().with_results(vec![dir])
}

/// The replicas this node keeps of the topics asked for (all, for null topics), by topic name.
fn described_topics(kafka: &KafkaContext, request: &DescribeLogDirsRequest) -> Vec<DescribeLogDirsTopic> {
    let asked: Option<BTreeMap<&str, &[i32]>> = request
        .topics
        .as_ref()
        .map(|topics| topics.iter().map(|t| (t.topic.0.as_str(), t.partitions.as_slice())).collect());
    // A cluster node opens every partition of a topic it keeps any replica of; it describes its own replicas.
    let metadata = kafka.controller.as_ref().map(|controller| (controller.metadata(), controller.node_id));
    let is_replica_here = |topic: &str, index: u32| match &metadata {
        None => true,
        Some((metadata, me)) => metadata
            .topics
            .get(topic)
            .and_then(|placed| placed.partitions.get(index as usize))
            .is_some_and(|placed| placed.replicas.contains(me)),
    };
    let mut described = Vec::new();
    for topic in kafka.node.registry.list() {
        let name = topic.name.to_string();
        let asked_partitions = match &asked {
            None => None,
            Some(asked) => match asked.get(name.as_str()) {
                Some(partitions) => Some(*partitions),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = topic
            .partitions()
            .iter()
            .filter(|p| asked_partitions.is_none_or(|asked| asked.contains(&(p.index as i32))))
            .filter(|p| is_replica_here(&name, p.index))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index as i32)
                    .with_partition_size(i64::try_from(p.log().size_bytes()).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            described
                .push(DescribeLogDirsTopic::default().with_name(TopicName(text(name))).with_partitions(partitions));
        }
    }
    described
}

/// (usable, total) bytes of the file system holding `dir`, or Kafka's -1 for each when they cannot be read.
async fn volume_bytes(dir: PathBuf) -> (i64, i64) {
    let space = blocking(move || Ok(crate::console::file_system_space(&dir))).await.ok().flatten();
    match space {
        Some((usable, total)) => (i64::try_from(usable).unwrap_or(i64::MAX), i64::try_from(total).unwrap_or(i64::MAX)),
        None => (UNKNOWN_BYTES, UNKNOWN_BYTES),
    }
}
