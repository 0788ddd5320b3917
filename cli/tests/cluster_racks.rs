//! Racks on three real `rill broker` processes started with `--rack`: the racks show in `rill cluster describe`
//! and in Kafka's Metadata, DescribeCluster and a broker's DescribeConfigs, new partitions' replicas span racks (with two nodes in one rack and
//! one in another, every partition of two replicas has one on the lone node), and KIP-392 fetching from followers
//! spoken raw on the Kafka port: the leader sends a consumer that names a follower's rack to that follower, the
//! follower serves Fetch v11+ up to its high watermark (not v10, and an offset past its log end is out of range,
//! which sends a client back to the leader), and once that follower is killed the leader serves the consumer
//! itself.

use crate::common;

use common::cluster::{self, kafka_call as call, Cluster, PartitionRow};
use common::{eventually, rill, rill_with_stdin};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const FAST_FAILOVER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                             replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const NO_EPOCH: i32 = -1;

fn rack_of(node_id: u64) -> String {
    format!("zone-{node_id}")
}

/// What a consumer's Fetch of partition 0 of `orders` was answered.
#[derive(Debug, PartialEq)]
struct Fetched {
    error_code: i16,
    preferred_read_replica: i32,
    high_watermark: i64,
    offsets: Vec<i64>,
}

/// Partition 0 of `orders` fetched from `offset` by a consumer in `rack` (empty: none said) at v`version`.
fn fetch(addr: &str, version: i16, rack: &str, offset: i64, current_leader_epoch: i32) -> Fetched {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_rack_id(StrBytes::from_string(rack.to_owned()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(addr, ApiKey::Fetch, version, &request);
    let answer = &response.responses[0].partitions[0];
    let offsets = answer.records.as_ref().map(rill_tests::values_of).unwrap_or_default();
    Fetched {
        error_code: answer.error_code,
        preferred_read_replica: answer.preferred_read_replica.0,
        high_watermark: answer.high_watermark,
        offsets: offsets.into_iter().map(|(at, _)| at).filter(|at| *at >= offset).collect(),
    }
}

fn rows(addr: &str, partitions: usize) -> Option<Vec<PartitionRow>> {
    cluster::describe_topic(addr, "orders", partitions)
}

#[test]
fn racks_show_in_the_cluster_and_kafka_metadata_and_replicas_span_them() {
    let cluster = Cluster::start_in_racks(FAST_FAILOVER, ["zone-a", "zone-a", "zone-b"]);
    let described = eventually("every node's rack recorded", || {
        let described = rill(cluster.addr(1), &["cluster", "describe"]);
        (described.status.success() && described.stdout.matches("zone-a").count() == 2)
            .then_some(described.stdout)
            .filter(|out| out.contains("zone-b"))
    });
    assert!(described.contains("RACK"), "{described}");

    let metadata: MetadataResponse = call(cluster.addr(2), ApiKey::Metadata, 12, &MetadataRequest::default());
    let mut racks: Vec<(i32, Option<String>)> =
        metadata.brokers.iter().map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string()))).collect();
    racks.sort();
    let expected = vec![(1, Some("zone-a".into())), (2, Some("zone-a".into())), (3, Some("zone-b".into()))];
    assert_eq!(racks, expected);
    let request = DescribeClusterRequest::default().with_endpoint_type(1);
    let described: DescribeClusterResponse = call(cluster.addr(3), ApiKey::DescribeCluster, 1, &request);
    let mut racks: Vec<(i32, Option<String>)> =
        described.brokers.iter().map(|b| (b.broker_id.0, b.rack.as_ref().map(|r| r.to_string()))).collect();
    racks.sort();
    assert_eq!(racks, expected);
    // A broker's own configs (resource type 4) carry its rack and the replica selector, as Kafka's.
    let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("3"))
        .with_configuration_keys(None)]);
    let configs: DescribeConfigsResponse = call(cluster.addr(3), ApiKey::DescribeConfigs, 4, &request);
    let entry = |name: &str| {
        let entries = &configs.results[0].configs;
        entries.iter().find(|e| e.name.as_str() == name).and_then(|e| e.value.as_ref()).map(|v| v.to_string())
    };
    assert_eq!(entry("broker.rack").as_deref(), Some("zone-b"), "{configs:?}");
    let selector = entry("replica.selector.class");
    assert_eq!(selector.as_deref(), Some("org.apache.kafka.common.replica.RackAwareReplicaSelector"));

    // Six partitions of two replicas: without racks, round-robin puts 1 and 2 together for some; with them, every
    // partition has its second replica in the other zone, which only node 3 is in.
    let create = ["topic", "create", "orders", "--partitions", "6", "--replication-factor", "2"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let placed = eventually("every partition placed", || rows(cluster.addr(1), 6));
    for row in &placed {
        assert!(row.replicas.contains(&3), "a partition without a replica in zone-b: {placed:?}");
    }
    let leaders: std::collections::BTreeSet<u64> = placed.iter().filter_map(|row| row.leader).collect();
    assert_eq!(leaders.len(), 3, "leaderships still spread over every node: {placed:?}");
}

#[test]
fn a_consumer_in_a_followers_rack_reads_from_it_until_it_goes() {
    let mut cluster = Cluster::start_in_racks(FAST_FAILOVER, ["zone-1", "zone-2", "zone-3"]);
    let create = ["topic", "create", "orders", "--partitions", "1", "--replication-factor", "3"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let first = eventually("a leader and 3 in-sync replicas", || {
        rows(cluster.addr(1), 1).filter(|rows| rows[0].leader.is_some() && rows[0].isr.len() == 3)
    });
    let leader = first[0].leader.expect("a leader");
    let epoch = i32::try_from(first[0].epoch).expect("a small epoch");
    let follower = first[0].replicas.iter().copied().find(|id| *id != leader).expect("a follower");
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let args = ["produce", "orders", "--partition", "0", "--acks", "all"];
    let produced = rill_with_stdin(cluster.addr(leader), &args, input.as_bytes());
    assert!(produced.status.success(), "produce: {}", produced.stderr);
    // The follower's own high watermark reaches 10 with the leader's next answer to it.
    let all: Vec<i64> = (0..10).collect();
    eventually("the follower serving up to 10", || {
        let read = fetch(cluster.addr(follower), 11, &rack_of(follower), 0, epoch);
        (read.offsets == all).then_some(())
    });

    // The leader sends a consumer in the follower's rack there, with no records; one in its own rack, or in a
    // rack no replica is in, or naming none, it serves.
    let sent = fetch(cluster.addr(leader), 11, &rack_of(follower), 0, epoch);
    let expected =
        Fetched { error_code: 0, preferred_read_replica: follower as i32, high_watermark: 10, offsets: vec![] };
    assert_eq!(sent, expected);
    for rack in [rack_of(leader), "zone-9".to_owned(), String::new()] {
        let served = fetch(cluster.addr(leader), 12, &rack, 4, epoch);
        assert_eq!((served.preferred_read_replica, served.offsets), (-1, (4..10).collect()), "rack {rack:?}");
    }

    // The follower serves v11 and v12, checks the epoch as the leader does, and refuses what it cannot serve.
    let served = fetch(cluster.addr(follower), 12, &rack_of(follower), 3, epoch);
    let expected =
        Fetched { error_code: 0, preferred_read_replica: -1, high_watermark: 10, offsets: (3..10).collect() };
    assert_eq!(served, expected);
    assert_eq!(fetch(cluster.addr(follower), 11, "", 0, NO_EPOCH).offsets, all);
    assert_eq!(fetch(cluster.addr(follower), 10, "", 0, NO_EPOCH).error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(fetch(cluster.addr(follower), 12, "", 0, epoch + 1).error_code, UNKNOWN_LEADER_EPOCH);
    assert_eq!(fetch(cluster.addr(follower), 12, "", 11, epoch).error_code, OFFSET_OUT_OF_RANGE);
    // Its reads are counted on its own node, and the leader's redirect on the leader's.
    let counter = |node: u64, name: &str| cluster::scrape(cluster.admin(node))?.get(name).copied();
    assert!(counter(follower, "rill_kafka_follower_reads_total").is_some_and(|reads| reads >= 3.0));
    assert!(counter(leader, "rill_kafka_read_replica_redirects_total").is_some_and(|sent| sent >= 1.0));
    let fetched = eventually("the follower's fetched bytes", || {
        let samples = cluster::scrape(cluster.admin(follower))?;
        samples
            .iter()
            .find(|(series, _)| {
                series.starts_with("rill_partition_fetched_bytes_total{") && series.contains("\"orders\"")
            })
            .map(|(_, v)| *v)
    });
    assert!(fetched > 0.0, "{fetched}");

    // The follower dies: once it is out of the ISR the leader serves that rack's consumer itself.
    cluster.nodes[follower as usize - 1].take().expect("running").kill();
    eventually("the leader serving the dead follower's rack", || {
        let read = fetch(cluster.addr(leader), 12, &rack_of(follower), 0, epoch);
        (read.preferred_read_replica == -1 && read.offsets == all).then_some(())
    });
}
