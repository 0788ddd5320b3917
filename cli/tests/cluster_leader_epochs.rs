//! KIP-320 after a leader failover, on three real `rill broker` processes spoken raw on the Kafka port: the
//! leader is SIGKILLed, and the new one refuses a Fetch carrying the old epoch (FENCED_LEADER_EPOCH), serves one
//! carrying its own, and answers OffsetForLeaderEpoch for the old epoch with where that epoch ended (every served
//! version), as a consumer validating its position after the change asks; a follower answers OffsetForLeaderEpoch
//! with NOT_LEADER_OR_FOLLOWER, and Fetch v12 (KIP-392: follower fetching, `cluster_racks.rs`) at its epoch. A gRPC Fetch naming the old epoch is refused with the typed `fenced-leader-epoch`
//! reason. And the Rust client's ListOffsets, bootstrapped from a follower, still returns the
//! leader's offsets: the follower refuses, and the client asks each partition's leader. A Produce or Fetch sent
//! to a node that does not lead names the leader, its epoch and (Produce v10+, Fetch v16+) its endpoint, as
//! ShareFetch and ShareAcknowledge do (KIP-951).

use crate::common;

use common::cluster::{self, kafka_call as call, Cluster, PartitionRow};
use common::{eventually, rill, rill_with_stdin};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    share_acknowledge_request, share_fetch_request, ApiKey, BrokerId, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::v1;
use rill_protocol::v1::records_client::RecordsClient;

/// Short sessions, so the killed leader's partitions move within the test's deadline.
const FAST_FAILOVER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
                             replica_lag_time_max_ms = 1500\nauto_leader_rebalance_enable = false\n";
const NO_EPOCH: i32 = -1;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

fn orders() -> TopicName {
    TopicName(StrBytes::from_static_str("orders"))
}

/// (error code, offsets of the records) of partition 0 of `orders` fetched from `offset` with Fetch v12.
fn fetch(addr: &str, offset: i64, current_leader_epoch: i32) -> (i16, Vec<i64>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(orders()).with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_current_leader_epoch(current_leader_epoch)
            .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(addr, ApiKey::Fetch, 12, &request);
    let answer = &response.responses[0].partitions[0];
    let offsets = answer.records.as_ref().map(rill_tests::values_of).unwrap_or_default();
    // A batch starting below the fetch offset comes whole; a client skips the records below its offset.
    (answer.error_code, offsets.into_iter().map(|(at, _)| at).filter(|at| *at >= offset).collect())
}

/// (error code, leader epoch, end offset) of partition 0 of `orders` for `leader_epoch`, asked at v`version`.
fn end_offset(addr: &str, version: i16, current_leader_epoch: i32, leader_epoch: i32) -> (i16, i32, i64) {
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(orders()).with_partitions(vec![OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(current_leader_epoch)
            .with_leader_epoch(leader_epoch)]),
    ]);
    let response: OffsetForLeaderEpochResponse = call(addr, ApiKey::OffsetForLeaderEpoch, version, &request);
    let answer = &response.topics[0].partitions[0];
    (answer.error_code, answer.leader_epoch, answer.end_offset)
}

fn rows(addr: &str) -> Option<Vec<PartitionRow>> {
    cluster::describe_topic(addr, "orders", 2)
}

fn produce(addr: &str, partition: u32, values: impl Iterator<Item = String>) {
    let input: String = values.map(|value| value + "\n").collect();
    let partition = partition.to_string();
    let args = ["produce", "orders", "--partition", &partition, "--acks", "all"];
    let produced = rill_with_stdin(addr, &args, input.as_bytes());
    assert!(produced.status.success(), "produce: {}", produced.stderr);
}

/// The typed reason a gRPC Fetch of partition 0 of `orders` at `current_leader_epoch` is refused with, if any.
fn grpc_fetch_refusal(addr: &str, current_leader_epoch: u32) -> Option<Reason> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut records = RecordsClient::connect(format!("http://{addr}")).await.expect("connect");
        let request = v1::FetchRequest {
            topic: "orders".into(),
            partition: 0,
            offset: 0,
            current_leader_epoch: Some(current_leader_epoch),
            ..Default::default()
        };
        records.fetch(request).await.err().map(|status| reason_of(&status).expect("a typed refusal"))
    })
}

/// The Rust client's `Latest` offsets of `orders`, bootstrapped from `addr` only.
fn latest_offsets_through(addr: &str) -> Vec<(u32, i64)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = rill_client::Client::connect(addr).await.expect("connect");
        let offsets = rill_client::Admin::new(client)
            .list_offsets("orders", &[], rill_client::OffsetSpec::Latest)
            .await
            .expect("offsets from the leaders");
        offsets.iter().map(|o| (o.partition, o.offset)).collect()
    })
}

/// (error code, base offset) of a Kafka Produce v9 of one batch to partition 0 of `orders` with `acks`.
fn kafka_produce(addr: &str, acks: i16, values: &[&str]) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(acks).with_timeout_ms(5_000).with_topic_data(vec![
        TopicProduceData::default().with_name(orders()).with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(rill_tests::batch_of(values, 1)))]),
    ]);
    let response: ProduceResponse = call(addr, ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// A KIP-951 node endpoint as `id@host:port`, as `Cluster::addr` names the node (each answer has its own type).
fn endpoint(id: BrokerId, host: &str, port: i32) -> String {
    format!("{}@{host}:{port}", id.0)
}

/// KIP-951: (error code, current leader id, its epoch, the endpoints' `id@host:port`) of a Kafka Produce of one
/// batch to partition 0 of `orders` at `version`.
fn kafka_produce_hint(addr: &str, version: i16) -> (i16, i32, i32, Vec<String>) {
    let request =
        ProduceRequest::default().with_acks(1).with_timeout_ms(5_000).with_topic_data(vec![TopicProduceData::default(
        )
        .with_name(orders())
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(rill_tests::batch_of(&["hinted"], 1)))])]);
    let response: ProduceResponse = call(addr, ApiKey::Produce, version, &request);
    let answer = &response.responses[0].partition_responses[0];
    let endpoints = response.node_endpoints.iter().map(|e| endpoint(e.node_id, &e.host, e.port));
    (answer.error_code, answer.current_leader.leader_id.0, answer.current_leader.leader_epoch, endpoints.collect())
}

/// KIP-951: (error code, current leader id, its epoch, the endpoints' `id@host:port`) of a Kafka Fetch of
/// partition 0 of `orders` at `version`, naming `current_leader_epoch`.
fn kafka_fetch_hint(addr: &str, version: i16, current_leader_epoch: i32) -> (i16, i32, i32, Vec<String>) {
    // By name to v12, by id from v13 (KIP-516).
    let topic = match version {
        13.. => FetchTopic::default().with_topic_id(orders_metadata(addr).topic_id),
        _ => FetchTopic::default().with_topic(orders()),
    };
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_current_leader_epoch(current_leader_epoch)
        .with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![topic.with_partitions(vec![partition])]);
    let response: FetchResponse = call(addr, ApiKey::Fetch, version, &request);
    let answer = &response.responses[0].partitions[0];
    let endpoints = response.node_endpoints.iter().map(|e| endpoint(e.node_id, &e.host, e.port));
    (answer.error_code, answer.current_leader.leader_id.0, answer.current_leader.leader_epoch, endpoints.collect())
}

/// `orders` as Metadata v12 at `addr` describes it (its `topic_id` names it from Fetch v13 on).
fn orders_metadata(addr: &str) -> MetadataResponseTopic {
    let request =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(orders()))]));
    let response: MetadataResponse = call(addr, ApiKey::Metadata, 12, &request);
    response.topics.into_iter().next().expect("orders described")
}

#[test]
fn a_produce_fetch_or_share_request_sent_to_a_node_that_does_not_lead_names_the_leader_and_its_endpoint() {
    let cluster = Cluster::start(FAST_FAILOVER);
    let create = ["topic", "create", "orders", "--partitions", "1", "--replication-factor", "1"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let placed = eventually("a leader", || {
        cluster::describe_topic(cluster.addr(1), "orders", 1).filter(|rows| rows[0].leader.is_some())
    });
    let (leader, epoch) = (placed[0].leader.expect("a leader"), i32::try_from(placed[0].epoch).expect("small"));
    let elsewhere = [1, 2, 3].into_iter().find(|id| *id != leader).expect("a node without the partition");
    let leader_id = i32::try_from(leader).expect("small");
    let leader_endpoint = vec![format!("{leader}@{}", cluster.addr(leader))];
    eventually("the other node knowing the leader", || {
        Some(kafka_produce_hint(cluster.addr(elsewhere), 10)).filter(|(_, id, _, _)| *id == leader_id)
    });

    // Produce v10 and v11 carry the leader and its endpoint; v9 has no field for them (unknown: -1).
    for version in [10, 11] {
        let hint = kafka_produce_hint(cluster.addr(elsewhere), version);
        assert_eq!(hint, (NOT_LEADER_OR_FOLLOWER, leader_id, epoch, leader_endpoint.clone()), "v{version}");
    }
    assert_eq!(kafka_produce_hint(cluster.addr(elsewhere), 9), (NOT_LEADER_OR_FOLLOWER, -1, -1, vec![]));
    // The leader takes it, and names nobody.
    assert_eq!(kafka_produce_hint(cluster.addr(leader), 10), (0, -1, -1, vec![]));

    // Fetch v12 names the leader, v16 (topics by id) its endpoint too, for a node without a replica and for a
    // stale epoch at the leader itself; v11 has no field for it.
    let hint = (NOT_LEADER_OR_FOLLOWER, leader_id, epoch, leader_endpoint.clone());
    assert_eq!(kafka_fetch_hint(cluster.addr(elsewhere), 16, epoch), hint);
    assert_eq!(
        kafka_fetch_hint(cluster.addr(elsewhere), 12, epoch),
        (NOT_LEADER_OR_FOLLOWER, leader_id, epoch, vec![])
    );
    assert_eq!(kafka_fetch_hint(cluster.addr(elsewhere), 11, epoch), (NOT_LEADER_OR_FOLLOWER, -1, -1, vec![]));
    assert_eq!(kafka_fetch_hint(cluster.addr(leader), 16, epoch).0, 0);
    if epoch > 0 {
        assert_eq!(
            kafka_fetch_hint(cluster.addr(leader), 12, epoch - 1),
            (FENCED_LEADER_EPOCH, leader_id, epoch, vec![])
        );
    }
    assert_eq!(kafka_fetch_hint(cluster.addr(leader), 12, epoch).0, 0);

    // A share group's member fetches and acknowledges at the leader; elsewhere it is told where that is.
    let topic_id = orders_metadata(cluster.addr(elsewhere)).topic_id;
    join_share_group(&cluster, "workers", "one");
    let partition = |acks: Vec<share_fetch_request::AcknowledgementBatch>| {
        share_fetch_request::FetchPartition::default().with_partition_index(0).with_acknowledgement_batches(acks)
    };
    let fetch = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("workers"))))
        .with_member_id(Some(StrBytes::from_static_str("one")))
        .with_share_session_epoch(0)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(10)
        .with_topics(vec![share_fetch_request::FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![partition(Vec::new())])]);
    let fetched: ShareFetchResponse = call(cluster.addr(elsewhere), ApiKey::ShareFetch, 1, &fetch);
    assert_eq!(fetched.error_code, 0, "{:?}", fetched.error_message);
    let answer = &fetched.responses[0].partitions[0];
    assert_eq!(answer.error_code, NOT_LEADER_OR_FOLLOWER, "{:?}", answer.error_message);
    assert_eq!((answer.current_leader.leader_id, answer.current_leader.leader_epoch), (leader_id, epoch));
    let endpoints: Vec<String> = fetched.node_endpoints.iter().map(|e| endpoint(e.node_id, &e.host, e.port)).collect();
    assert_eq!(endpoints, leader_endpoint);

    let acknowledge = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("workers"))))
        .with_member_id(Some(StrBytes::from_static_str("one")))
        .with_share_session_epoch(1)
        .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![share_acknowledge_request::AcknowledgePartition::default()
                .with_partition_index(0)
                .with_acknowledgement_batches(vec![share_acknowledge_request::AcknowledgementBatch::default()
                    .with_first_offset(0)
                    .with_last_offset(0)
                    .with_acknowledge_types(vec![1])])])]);
    let acknowledged: ShareAcknowledgeResponse =
        call(cluster.addr(elsewhere), ApiKey::ShareAcknowledge, 1, &acknowledge);
    assert_eq!(acknowledged.error_code, 0, "{:?}", acknowledged.error_message);
    let answer = &acknowledged.responses[0].partitions[0];
    assert_eq!(answer.error_code, NOT_LEADER_OR_FOLLOWER, "{:?}", answer.error_message);
    assert_eq!((answer.current_leader.leader_id, answer.current_leader.leader_epoch), (leader_id, epoch));
    let endpoints: Vec<String> =
        acknowledged.node_endpoints.iter().map(|e| endpoint(e.node_id, &e.host, e.port)).collect();
    assert_eq!(endpoints, leader_endpoint);
}

/// Joins `member` to share group `group`, subscribed to `orders`, at the group's coordinator (FindCoordinator asked
/// of node 1); again while no coordinator serves the group yet (the first group request creates its partition).
fn join_share_group(cluster: &Cluster, group: &str, member: &str) {
    let text = |value: &str| StrBytes::from_string(value.to_owned());
    eventually("a coordinator taking the share group's member", || {
        let find = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![text(group)]);
        let found: FindCoordinatorResponse = call(cluster.addr(1), ApiKey::FindCoordinator, 4, &find);
        let coordinator = found.coordinators.first().filter(|c| c.error_code == 0 && c.node_id.0 >= 1)?;
        let join = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_member_id(text(member))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![orders()]));
        let address = cluster.addr(u64::try_from(coordinator.node_id.0).ok()?);
        let joined: ShareGroupHeartbeatResponse = call(address, ApiKey::ShareGroupHeartbeat, 1, &join);
        (joined.error_code == 0).then_some(())
    });
}

#[test]
fn a_kafka_acks_all_produce_is_answered_from_the_in_sync_replicas_and_refused_below_their_minimum() {
    let mut cluster = Cluster::start(FAST_FAILOVER);
    let create =
        ["topic", "create", "orders", "--partitions", "2", "--replication-factor", "3", "--min-insync-replicas", "3"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let first = eventually("a leader and 3 in-sync replicas", || {
        rows(cluster.addr(1)).filter(|rows| rows[0].leader.is_some() && rows[0].isr.len() == 3)
    });
    let leader = first[0].leader.expect("a leader");
    // acks=all (-1): answered once every in-sync replica holds the batch, so the high watermark is past it.
    assert_eq!(kafka_produce(cluster.addr(leader), -1, &["a", "b"]), (0, 0));
    let rows_now = rows(cluster.addr(leader)).expect("rows");
    assert!(rows_now[0].high_watermark >= 2, "acknowledged before the ISR held it: {rows_now:?}");

    let follower = first[0].replicas.iter().copied().find(|id| *id != leader).expect("a follower");
    cluster.nodes[follower as usize - 1].take().expect("running").kill();
    eventually("the ISR without the killed follower", || {
        rows(cluster.addr(leader)).filter(|rows| rows[0].isr.len() == 2)
    });
    // Two in-sync replicas, three required: Kafka's NOT_ENOUGH_REPLICAS, and nothing appended. acks=1 is not
    // bound by min.insync.replicas.
    assert_eq!(kafka_produce(cluster.addr(leader), -1, &["c"]).0, NOT_ENOUGH_REPLICAS);
    assert_eq!(kafka_produce(cluster.addr(leader), 1, &["d"]), (0, 2));
}

#[test]
fn after_a_failover_the_new_leader_fences_the_old_epoch_and_says_where_it_ended() {
    let mut cluster = Cluster::start(FAST_FAILOVER);
    let create =
        ["topic", "create", "orders", "--partitions", "2", "--replication-factor", "3", "--min-insync-replicas", "2"];
    eventually("the topic created", || rill(cluster.addr(1), &create).status.success().then_some(()));
    let first = eventually("leaders and 3 in-sync replicas", || {
        rows(cluster.addr(1)).filter(|rows| rows.iter().all(|r| r.leader.is_some() && r.isr.len() == 3))
    });
    let old_leader = first[0].leader.expect("a leader");
    let old_epoch = i32::try_from(first[0].epoch).expect("a small epoch");
    produce(cluster.addr(old_leader), 0, (0..10).map(|i| format!("before-{i}")));
    produce(cluster.addr(old_leader), 1, (0..4).map(|i| format!("other-{i}")));
    eventually("every replica of partition 0 at 10", || {
        rows(cluster.addr(old_leader))
            .filter(|rows| rows[0].high_watermark == 10 && rows[0].log_ends.iter().all(|(_, end)| *end == 10))
    });

    // gRPC ListOffsets through a client that knows only a follower of partition 0: the follower refuses, the
    // client asks the leaders, and the offsets are theirs.
    let follower = first[0].replicas.iter().copied().find(|id| *id != old_leader).expect("a follower");
    assert_eq!(latest_offsets_through(cluster.addr(follower)), [(0, 10), (1, 4)]);

    // The old leader answers at its epoch; a follower serves the fetch (KIP-392), not the epoch's end.
    assert_eq!(fetch(cluster.addr(old_leader), 8, old_epoch), (0, vec![8, 9]));
    assert_eq!(end_offset(cluster.addr(old_leader), 4, old_epoch, old_epoch), (0, old_epoch, 10));
    // (Its own high watermark reaches 10 with the leader's next answer to it.)
    eventually("the follower serving up to 10", || {
        Some(fetch(cluster.addr(follower), 8, old_epoch)).filter(|read| *read == (0, vec![8, 9]))
    });
    assert_eq!(end_offset(cluster.addr(follower), 2, NO_EPOCH, old_epoch).0, NOT_LEADER_OR_FOLLOWER);

    // The leader dies; another in-sync replica takes over at a newer epoch and writes on.
    cluster.nodes[old_leader as usize - 1].take().expect("the leader running").kill();
    let survivor = first[0].replicas.iter().copied().find(|id| *id != old_leader).expect("a survivor");
    let failed_over = eventually("a new leader of partition 0", || {
        rows(cluster.addr(survivor)).filter(|rows| rows[0].leader.is_some_and(|id| id != old_leader))
    });
    let new_leader = failed_over[0].leader.expect("a leader");
    let new_epoch = i32::try_from(failed_over[0].epoch).expect("a small epoch");
    assert!(new_epoch > old_epoch, "{failed_over:?}");
    eventually("the new leader serving", || {
        Some(fetch(cluster.addr(new_leader), 0, new_epoch)).filter(|(code, _)| *code == 0)
    });
    produce(cluster.addr(new_leader), 0, (0..5).map(|i| format!("after-{i}")));

    // A consumer still on the old epoch is fenced: its metadata is stale, and the answer names the leader now
    // (KIP-951). At the new epoch it reads on.
    assert_eq!(fetch(cluster.addr(new_leader), 10, old_epoch), (FENCED_LEADER_EPOCH, vec![]));
    let new_leader_id = i32::try_from(new_leader).expect("small");
    assert_eq!(
        kafka_fetch_hint(cluster.addr(new_leader), 12, old_epoch),
        (FENCED_LEADER_EPOCH, new_leader_id, new_epoch, vec![])
    );
    assert_eq!(fetch(cluster.addr(new_leader), 10, new_epoch + 1), (UNKNOWN_LEADER_EPOCH, vec![]));
    assert_eq!(fetch(cluster.addr(new_leader), 10, new_epoch), (0, vec![10, 11, 12, 13, 14]));
    // gRPC reads are fenced alike, with typed reasons.
    let (old_epoch_u32, new_epoch_u32) = (old_epoch as u32, new_epoch as u32);
    assert_eq!(grpc_fetch_refusal(cluster.addr(new_leader), old_epoch_u32), Some(Reason::FencedLeaderEpoch));
    assert_eq!(grpc_fetch_refusal(cluster.addr(new_leader), new_epoch_u32 + 1), Some(Reason::UnknownLeaderEpoch));
    assert_eq!(grpc_fetch_refusal(cluster.addr(new_leader), new_epoch_u32), None);

    // Its position check after refreshing: the old epoch ended at 10 here too, so nothing it read was lost.
    for version in 2..=4 {
        assert_eq!(
            end_offset(cluster.addr(new_leader), version, new_epoch, old_epoch),
            (0, old_epoch, 10),
            "v{version}"
        );
        assert_eq!(
            end_offset(cluster.addr(new_leader), version, NO_EPOCH, new_epoch),
            (0, new_epoch, 15),
            "v{version}"
        );
        let fenced = end_offset(cluster.addr(new_leader), version, old_epoch, old_epoch);
        assert_eq!(fenced, (FENCED_LEADER_EPOCH, -1, -1), "v{version}");
        let unknown = end_offset(cluster.addr(new_leader), version, new_epoch + 1, old_epoch);
        assert_eq!(unknown.0, UNKNOWN_LEADER_EPOCH, "v{version}");
    }
    let other = [1, 2, 3].into_iter().find(|id| *id != old_leader && *id != new_leader).expect("a third node");
    let follower_answer = eventually("the other survivor following the new epoch", || {
        Some(end_offset(cluster.addr(other), 4, new_epoch, old_epoch))
            .filter(|(code, _, _)| *code != UNKNOWN_LEADER_EPOCH)
    });
    assert_eq!(follower_answer.0, NOT_LEADER_OR_FOLLOWER);

    // The client, knowing only the node that now follows partition 0, still gets the new leaders' offsets (once
    // partition 1, which may have failed over too, has its high watermark back at 4).
    eventually("both partitions led by survivors", || {
        rows(cluster.addr(other)).filter(|rows| rows.iter().all(|r| r.leader.is_some_and(|id| id != old_leader)))
    });
    eventually("the leaders' offsets through a follower", || {
        Some(latest_offsets_through(cluster.addr(other))).filter(|offsets| offsets[..] == [(0, 15), (1, 4)])
    });
}
