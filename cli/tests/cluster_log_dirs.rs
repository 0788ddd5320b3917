//! Kafka's DescribeLogDirs on three real `rill broker` processes, spoken raw on the Kafka port: each node
//! describes its own data dir and only the replicas it keeps (as each Kafka broker describes its own disks), and
//! after an acks-all produce every replica of a partition reports the same bytes (replicas are byte-identical).

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::{self, Cluster};
use common::{rill, rill_with_stdin, DEADLINE};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
const TOPIC: &str = "sizes";
const PARTITIONS: usize = 3;

/// Node `addr`'s one log dir and its (partition, size) of [`TOPIC`], asked by name.
fn described(runtime: &tokio::runtime::Runtime, addr: &str) -> (String, BTreeMap<i32, i64>) {
    let addr: SocketAddr = addr.parse().expect("node address");
    let asked = DescribableLogDirTopic::default()
        .with_topic(TopicName(StrBytes::from_string(TOPIC.into())))
        .with_partitions((0..PARTITIONS as i32).collect());
    let request = DescribeLogDirsRequest::default().with_topics(Some(vec![asked]));
    let response: DescribeLogDirsResponse = runtime.block_on(async {
        let mut client = KafkaClient::connect(addr).await;
        client.call(ApiKey::DescribeLogDirs, 4, &request).await
    });
    assert_eq!(response.error_code, 0);
    let [dir] = &response.results[..] else { panic!("one log dir per node: {response:?}") };
    let sizes = dir.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.partition_size)));
    (dir.log_dir.to_string(), sizes.collect())
}

#[test]
fn each_node_describes_its_own_replicas_in_its_own_data_dir() {
    let cluster = Cluster::start(FAST_CLUSTER);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let create = ["topic", "create", TOPIC, "--partitions", "3", "--replication-factor", "2"];
    let deadline = Instant::now() + DEADLINE;
    // The cluster forms first: a create before a controller leader is elected is refused, and retried.
    while !rill(&cluster.all(), &create).status.success() {
        assert!(Instant::now() < deadline, "{TOPIC} not created within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows = cluster::wait_for_topic(cluster.any_running(), TOPIC, PARTITIONS, "every replica in sync", |rows| {
        rows.iter().all(|r| r.isr.len() == 2)
    });
    let input: String = (0..300).map(|i| format!("record {i}\n")).collect();
    let produced = rill_with_stdin(&cluster.all(), &["produce", TOPIC, "--acks", "all"], input.as_bytes());
    assert!(produced.status.success(), "{}", produced.stderr);

    let mut sizes_by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for node in 1..=3u64 {
        let (log_dir, sizes) = described(&runtime, cluster.addr(node));
        assert_eq!(Some(log_dir.as_str()), cluster.data_dir(node).to_str(), "node {node} names its own data dir");
        let kept: Vec<i32> = (0..PARTITIONS).filter(|p| rows[*p].replicas.contains(&node)).map(|p| p as i32).collect();
        assert_eq!(sizes.keys().copied().collect::<Vec<_>>(), kept, "node {node}: only its own replicas");
        for (partition, size) in sizes {
            sizes_by_partition.entry(partition).or_default().push(size);
        }
    }
    // Every record reached every in-sync replica before the produce was answered: the copies are the same size.
    let total: i64 = sizes_by_partition.values().map(|sizes| sizes[0]).sum();
    assert!(total > 300 * "record 299".len() as i64, "{sizes_by_partition:?}");
    for (partition, sizes) in &sizes_by_partition {
        assert_eq!(sizes.len(), 2, "partition {partition} has two replicas");
        assert_eq!(sizes[0], sizes[1], "partition {partition}'s replicas hold the same bytes");
    }
}
