//! Deleting records is refused on a cluster, whole and clearly, on three real `rill broker` processes: followers
//! do not learn the leader's log start offset yet, so a failover would serve the deleted records again. `rill
//! topic delete-records` exits 1 saying so, Kafka's DeleteRecords answers UNSUPPORTED_VERSION for each partition,
//! and nothing moves on any node.

mod common;

use std::net::SocketAddr;

use common::cluster::{self, Cluster};
use common::{eventually, rill, rill_with_stdin};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rill_tests::kafka_client::KafkaClient;

const FAST_CLUSTER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                            replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
const UNSUPPORTED_VERSION: i16 = 35;

fn kafka_delete_records(addr: &str, offset: i64) -> Vec<(i16, i64)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr: SocketAddr = addr.parse().expect("node address");
    let request =
        DeleteRecordsRequest::default().with_timeout_ms(5_000).with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset)])]);
    let response: DeleteRecordsResponse = runtime.block_on(async {
        let mut client = KafkaClient::connect(addr).await;
        client.call(ApiKey::DeleteRecords, 2, &request).await
    });
    response.topics.iter().flat_map(|t| &t.partitions).map(|p| (p.error_code, p.low_watermark)).collect()
}

#[test]
fn deleting_records_on_a_cluster_is_refused_whole_on_every_node() {
    let cluster = Cluster::start(FAST_CLUSTER);
    let create = ["topic", "create", "orders", "--replication-factor", "3"];
    eventually("the topic created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let rows = cluster::wait_for_topic(cluster.addr(1), "orders", 1, "a leader and 3 in-sync replicas", |rows| {
        rows[0].leader.is_some() && rows[0].isr.len() == 3
    });
    let leader = rows[0].leader.expect("a leader");
    let lines: String = (0..20).map(|i| format!("v{i}\n")).collect();
    rill_with_stdin(cluster.addr(leader), &["produce", "orders", "--partition", "0"], lines.as_bytes()).ok();

    for node in 1..=3 {
        let addr = cluster.addr(node);
        rill(addr, &["topic", "delete-records", "orders", "--partition", "0", "--before", "10"])
            .fails(1, "deleting records is not supported on a cluster yet");
        assert_eq!(kafka_delete_records(addr, 10), [(UNSUPPORTED_VERSION, -1)], "node {node}");
    }
    let rows = cluster::describe_topic(cluster.addr(leader), "orders", 1).expect("described");
    assert_eq!(rows[0].high_watermark, 20, "{rows:?}");
    let consumed = rill(cluster.addr(leader), &["consume", "orders"]);
    assert_eq!(consumed.ok().lines().next(), Some("v0"), "every record is still served");
}
