//! Share groups (KIP-932) over the raw protocol: a member joins with ShareGroupHeartbeat and fetches with
//! ShareFetch, getting the stored batches and the ranges acquired for it; a second member gets nothing the first
//! holds; acknowledgements move the group's start offset (DescribeShareGroupOffsets) and survive a restart;
//! ShareGroupDescribe shows who reads what; a waiting ShareFetch is woken by an append; and each refusal has its
//! Kafka code and a message: a session epoch out of turn, an acknowledgement of a record not held, a request
//! without a member, a group that is no share group; a rejected record becomes a dead letter in the group's
//! dead-letter topic (KIP-1191), or is counted lost where that topic is not fit. A cluster node (of one) serves
//! them through its clustered path, and does not serve the offset changes a cluster does not have.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::share_fetch_request::{AcknowledgementBatch, FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_broker::share_groups::ShareOffsetReset;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{values_of, TestBroker};

const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INVALID_RECORD_STATE: i16 = 121;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn addr(broker: &TestBroker) -> SocketAddr {
    broker.handle.as_ref().expect("running").addr()
}

async fn earliest_broker() -> TestBroker {
    let mut broker = TestBroker::start_with(|config| config.share_auto_offset_reset = ShareOffsetReset::Earliest).await;
    broker.create_topic("jobs", 1).await;
    broker
}

async fn topic_id(client: &mut KafkaClient, topic: &str) -> uuid::Uuid {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(text(topic))))]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request).await;
    response.topics[0].topic_id
}

async fn join(client: &mut KafkaClient, group: &str, member: &str) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_member_id(text(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![TopicName(text("jobs"))]));
    let joined: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &request).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    joined
}

fn share_fetch(member: &str, epoch: i32, topic: uuid::Uuid, acks: Vec<AcknowledgementBatch>) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(text("workers"))))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_topics(vec![FetchTopic::default().with_topic_id(topic).with_partitions(vec![FetchPartition::default()
            .with_partition_index(0)
            .with_acknowledgement_batches(acks)])])
}

fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    let partitions = response.responses.iter().flat_map(|t| &t.partitions);
    partitions.flat_map(|p| &p.acquired_records).map(|a| (a.first_offset, a.last_offset, a.delivery_count)).collect()
}

fn accept(first: i64, last: i64) -> AcknowledgementBatch {
    AcknowledgementBatch::default().with_first_offset(first).with_last_offset(last).with_acknowledge_types(vec![1])
}

async fn start_offset(client: &mut KafkaClient) -> i64 {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(text("workers")))
            .with_topics(None),
    ]);
    let response: DescribeShareGroupOffsetsResponse = client.call(ApiKey::DescribeShareGroupOffsets, 0, &request).await;
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0, "{:?}", group.error_message);
    group.topics[0].partitions[0].start_offset
}

#[tokio::test]
async fn members_acquire_records_one_at_a_time_and_acknowledgements_outlive_a_restart() {
    let mut broker = earliest_broker().await;
    broker.produce_values("jobs", 0, &["a", "b", "c"]).await;
    broker.produce_values("jobs", 0, &["d", "e"]).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "jobs").await;
    let joined = join(&mut client, "workers", "one").await;
    let assignment = joined.assignment.expect("a join hears its assignment");
    assert_eq!(assignment.topic_partitions[0].topic_id, id);
    join(&mut client, "workers", "two").await;

    let first: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    assert_eq!(acquired(&first), [(0, 4, 1)]);
    assert_eq!(first.acquisition_lock_timeout_ms, 30_000);
    let records = first.responses[0].partitions[0].records.clone().expect("records");
    let values: Vec<String> = values_of(&records).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["a", "b", "c", "d", "e"], "the stored batches, as they are");

    // The other member's fetch finds everything held by `one`.
    let second: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("two", 0, id, vec![])).await;
    assert_eq!(acquired(&second), []);

    // `one` accepts 0..=2 and releases 3..=4 (ShareAcknowledge: no fetch that would take them back at once), and
    // they go to `two` for their second delivery.
    let batch = |first, last, kind| {
        share_acknowledge_request::AcknowledgementBatch::default()
            .with_first_offset(first)
            .with_last_offset(last)
            .with_acknowledge_types(vec![kind])
    };
    let acknowledge = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(text("workers"))))
        .with_member_id(Some(text("one")))
        .with_share_session_epoch(1)
        .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![share_acknowledge_request::AcknowledgePartition::default()
                .with_acknowledgement_batches(vec![batch(0, 2, 1), batch(3, 4, 2)])])]);
    let acked: ShareAcknowledgeResponse = client.call(ApiKey::ShareAcknowledge, 1, &acknowledge).await;
    assert_eq!((acked.error_code, acked.responses[0].partitions[0].error_code), (0, 0));
    assert_eq!(start_offset(&mut client).await, 3);
    let again: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("two", 1, id, vec![])).await;
    assert_eq!(acquired(&again), [(3, 4, 2)]);

    let described: ShareGroupDescribeResponse = client
        .call(
            ApiKey::ShareGroupDescribe,
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("workers"))]),
        )
        .await;
    let group = &described.groups[0];
    assert_eq!((group.error_code, group.group_state.as_str()), (0, "Stable"));
    let members: Vec<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, ["one", "two"]);
    assert!(group.members.iter().all(|m| m.assignment.topic_partitions[0].topic_name.as_str() == "jobs"));

    // /metrics: where the group is, what is out, and what happened to its records.
    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    let (status, metrics) = rill_tests::admin_http::get(admin, "/metrics", "text/plain").await;
    assert_eq!(status, 200);
    let series = |name: &str, labels: &str| rill_tests::admin_http::sample(&metrics, &format!("{name}{{{labels}}}"));
    let partition = "group=\"workers\",topic=\"jobs\",partition=\"0\"";
    assert_eq!(series("rill_share_group_start_offset", partition), Some(3.0), "{metrics}");
    assert_eq!(series("rill_share_group_lag_records", partition), Some(2.0));
    assert_eq!(series("rill_share_group_acquired_records", partition), Some(2.0), "3 and 4, out with two");
    assert_eq!(series("rill_share_group_members", "group=\"workers\""), Some(2.0));
    let outcome =
        |outcome: &str| series("rill_share_records_total", &format!("group=\"workers\",outcome=\"{outcome}\""));
    assert_eq!((outcome("acquired"), outcome("accepted"), outcome("released")), (Some(7.0), Some(3.0), Some(2.0)));

    drop(client);
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    assert_eq!(start_offset(&mut client).await, 3, "acknowledged records stay done");
    join(&mut client, "workers", "three").await;
    let after: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("three", 0, id, vec![])).await;
    assert_eq!(acquired(&after), [(3, 4, 2)], "in flight at the restart: available again, the count kept");
}

/// Kafka's config resource type of a group.
const GROUP_CONFIGS: i8 = 32;

fn set_group_config(group: &str, key: &str, value: &str) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let config = AlterableConfig::default().with_name(text(key)).with_config_operation(0).with_value(Some(text(value)));
    let resource = AlterConfigsResource::default()
        .with_resource_type(GROUP_CONFIGS)
        .with_resource_name(text(group))
        .with_configs(vec![config]);
    IncrementalAlterConfigsRequest::default().with_resources(vec![resource])
}

/// KIP-1191: a record rejected by a group that names a dead-letter topic is written there, and /metrics counts it;
/// with the group's topic unfit (here, not opted in), it is archived all the same, counted as a dead letter lost.
#[tokio::test]
async fn a_rejected_record_is_a_dead_letter_written_or_counted_lost() {
    let mut broker = earliest_broker().await;
    broker.produce_values("jobs", 0, &["a", "b", "c"]).await;
    for (name, opted_in) in [("dlq.jobs", true), ("dlq.closed", false)] {
        let config = rill_protocol::v1::TopicConfig { dead_letter_group_enable: Some(opted_in), ..Default::default() };
        let request = rill_protocol::v1::CreateTopicRequest {
            name: name.into(),
            partition_count: 1,
            config: Some(config),
            ..Default::default()
        };
        broker.admin.create_topic(request).await.expect("create the dead-letter topic");
    }
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let set: IncrementalAlterConfigsResponse = client
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &set_group_config("workers", "errors.deadletterqueue.topic.name", "dlq.jobs"),
        )
        .await;
    assert_eq!(set.responses[0].error_code, 0, "{:?}", set.responses[0].error_message);
    let id = topic_id(&mut client, "jobs").await;
    join(&mut client, "workers", "one").await;
    let fetched: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&fetched), [(0, 2, 1)]);
    // a rejected, b accepted: one dead letter. Then the group names a topic that did not opt in, and c is rejected.
    let batch = |first: i64, last: i64, types: Vec<i8>| {
        AcknowledgementBatch::default().with_first_offset(first).with_last_offset(last).with_acknowledge_types(types)
    };
    let acked: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 1, id, vec![batch(0, 1, vec![3, 1])])).await;
    assert_eq!(acked.responses[0].partitions[0].acknowledge_error_code, 0);
    assert_eq!(broker.fetch_values("dlq.jobs", 0, 0).await.len(), 1, "one dead letter, written before the answer");
    let set: IncrementalAlterConfigsResponse = client
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &set_group_config("workers", "errors.deadletterqueue.topic.name", "dlq.closed"),
        )
        .await;
    assert_eq!(set.responses[0].error_code, 0);
    let acked: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 2, id, vec![batch(2, 2, vec![3])])).await;
    assert_eq!(acked.responses[0].partitions[0].acknowledge_error_code, 0, "the reject takes all the same");
    assert_eq!(start_offset(&mut client).await, 3, "every record done with");
    assert!(broker.fetch_values("dlq.closed", 0, 0).await.is_empty(), "not opted in: nothing written");

    let admin = broker.handle.as_ref().and_then(|h| h.admin_addr()).expect("the test config turns the listener on");
    let (_, metrics) = rill_tests::admin_http::get(admin, "/metrics", "text/plain").await;
    let outcome = |outcome: &str| {
        let series = format!("rill_share_records_total{{group=\"workers\",outcome=\"{outcome}\"}}");
        rill_tests::admin_http::sample(&metrics, &series)
    };
    assert_eq!(
        (outcome("rejected"), outcome("dead_letter"), outcome("dead_letter_lost")),
        (Some(2.0), Some(1.0), Some(1.0))
    );
}

#[tokio::test]
async fn a_waiting_share_fetch_is_woken_by_an_append() {
    let mut broker = earliest_broker().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "jobs").await;
    join(&mut client, "workers", "one").await;
    let waiting = share_fetch("one", 0, id, vec![]).with_max_wait_ms(20_000);
    let started = Instant::now();
    let fetch = tokio::spawn(async move {
        let response: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &waiting).await;
        response
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.produce_values("jobs", 0, &["late"]).await;
    let response = fetch.await.expect("the fetch task");
    assert_eq!(acquired(&response), [(0, 0, 1)]);
    assert!(started.elapsed() < Duration::from_secs(10), "woken by the append, not by its 20 s wait");
}

#[tokio::test]
async fn share_requests_out_of_turn_are_refused_with_their_codes_and_reasons() {
    let mut broker = earliest_broker().await;
    broker.produce_values("jobs", 0, &["a"]).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "jobs").await;
    join(&mut client, "workers", "one").await;

    let no_member: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![]).with_member_id(None)).await;
    assert_eq!(no_member.error_code, INVALID_REQUEST);
    assert!(format!("{:?}", no_member.error_message).contains("member_id"), "{:?}", no_member.error_message);

    let opened: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&opened), [(0, 0, 1)]);
    let skipped: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 5, id, vec![])).await;
    assert_eq!(skipped.error_code, INVALID_SHARE_SESSION_EPOCH);
    assert!(format!("{:?}", skipped.error_message).contains("next epoch, 1"), "{:?}", skipped.error_message);

    // Offset 7 was never delivered: refused with INVALID_RECORD_STATE, and the fetch goes on.
    let wrong: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 1, id, vec![accept(7, 7)])).await;
    let partition = &wrong.responses[0].partitions[0];
    assert_eq!(partition.acknowledge_error_code, INVALID_RECORD_STATE);
    assert!(format!("{:?}", partition.acknowledge_error_message).contains("offset 7"), "{partition:?}");

    let acknowledge = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(text("workers"))))
        .with_member_id(Some(text("one")))
        .with_share_session_epoch(0);
    let at_zero: ShareAcknowledgeResponse = client.call(ApiKey::ShareAcknowledge, 1, &acknowledge).await;
    assert_eq!(at_zero.error_code, INVALID_SHARE_SESSION_EPOCH);

    // ListGroups v5 names the group's type and filters by it.
    let listed =
        |types: &[&str]| ListGroupsRequest::default().with_types_filter(types.iter().map(|t| text(t)).collect());
    let shares: ListGroupsResponse = client.call(ApiKey::ListGroups, 5, &listed(&["share"])).await;
    let found: Vec<(&str, &str, &str)> =
        shares.groups.iter().map(|g| (g.group_id.as_str(), g.group_type.as_str(), g.group_state.as_str())).collect();
    assert_eq!(found, [("workers", "share", "Stable")]);
    let consumers: ListGroupsResponse = client.call(ApiKey::ListGroups, 5, &listed(&["consumer", "classic"])).await;
    assert!(consumers.groups.is_empty(), "{consumers:?}");

    let unknown: ShareGroupDescribeResponse = client
        .call(
            ApiKey::ShareGroupDescribe,
            1,
            &ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(text("nope"))]),
        )
        .await;
    assert_eq!(unknown.groups[0].error_code, GROUP_ID_NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_share_group_or_its_topic_forgets_where_it_was() {
    const NON_EMPTY_GROUP: i16 = 68;
    let mut broker = earliest_broker().await;
    broker.produce_values("jobs", 0, &["a", "b"]).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "jobs").await;
    join(&mut client, "workers", "one").await;
    let fetched: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&fetched), [(0, 1, 1)]);
    let _: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 1, id, vec![accept(0, 1)])).await;
    assert_eq!(start_offset(&mut client).await, 2);
    // rill's own admin shows it as a share group, and refuses to reset offsets it does not commit.
    let described = broker
        .groups
        .describe_group(rill_protocol::v1::DescribeGroupRequest { group: "workers".into() })
        .await
        .expect("described")
        .into_inner();
    assert_eq!(described.kind(), rill_protocol::v1::GroupKind::Share);
    let partition = &described.partitions[0];
    assert_eq!((partition.committed_offset, partition.end_offset, partition.lag, partition.in_flight), (2, 2, 0, 0));
    assert_eq!(partition.member_id, "one");
    let reset_to_zero = || rill_protocol::v1::ResetOffsetsRequest {
        group: "workers".into(),
        topic: "jobs".into(),
        partitions: Vec::new(),
        to: Some(rill_protocol::v1::reset_offsets_request::To::Offset(0)),
        timestamp_ms: 0,
    };
    let refused = broker.groups.reset_offsets(reset_to_zero()).await;
    rill_tests::assert_status(refused, tonic::Code::FailedPrecondition, &["1 active member", "resetting offsets"]);
    // Nor may rill's own consumers join it.
    let grpc_join =
        rill_tests::group_member::join_request("workers", &["jobs"], 10_000, rill_protocol::v1::Assignor::Sticky);
    let joined = rill_tests::group_member::TestMember::join_with(&broker.groups, grpc_join).await.map(|_| ());
    rill_tests::assert_status(joined, tonic::Code::FailedPrecondition, &["share group (KIP-932)", "workers"]);

    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("workers"))]);
    let refused: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete).await;
    assert_eq!(refused.results[0].error_code, NON_EMPTY_GROUP, "a member is in it");
    let leave = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text("workers")))
        .with_member_id(text("one"))
        .with_member_epoch(-1);
    let left: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &leave).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    // Without members its start offsets may be moved: back to 0, and both records come again.
    let reset = broker.groups.reset_offsets(reset_to_zero()).await.expect("reset").into_inner();
    assert_eq!(reset.offsets.iter().map(|o| o.offset).collect::<Vec<_>>(), [0]);
    assert_eq!(start_offset(&mut client).await, 0);
    join(&mut client, "workers", "one").await;
    let again: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&again), [(0, 1, 1)], "a reset forgets the records' deliveries too");
    let left: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &leave).await;
    assert_eq!(left.error_code, 0);
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete).await;
    assert_eq!(deleted.results[0].error_code, 0);

    // Joined again, the group starts afresh: at the log's start.
    join(&mut client, "workers", "one").await;
    let afresh: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&afresh), [(0, 1, 1)]);
    let _: ShareFetchResponse =
        client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 1, id, vec![accept(0, 1)])).await;
    assert_eq!(start_offset(&mut client).await, 2);

    // The topic deleted and created again: nothing of the old topic's state is left, in memory or stored.
    broker.admin.delete_topic(rill_protocol::v1::DeleteTopicRequest { name: "jobs".into() }).await.expect("deleted");
    broker.create_topic("jobs", 1).await;
    let broker = broker.restart().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(text("workers")))
            .with_topics(None),
    ]);
    let response: DescribeShareGroupOffsetsResponse = client.call(ApiKey::DescribeShareGroupOffsets, 0, &request).await;
    assert!(response.groups[0].topics.is_empty(), "{response:?}");
}

#[tokio::test]
async fn a_share_groups_start_can_be_set_before_it_runs_and_its_state_deleted_once_it_is_empty() {
    const NON_EMPTY_GROUP: i16 = 68;
    let mut broker = TestBroker::start().await; // `latest`, Kafka's default
    broker.create_topic("jobs", 1).await;
    broker.produce_values("jobs", 0, &["a", "b", "c"]).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let id = topic_id(&mut client, "jobs").await;
    let alter = |offset: i64| {
        AlterShareGroupOffsetsRequest::default().with_group_id(GroupId(text("workers"))).with_topics(vec![
            alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(TopicName(text("jobs")))
                .with_partitions(vec![
                    alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(offset),
                ]),
        ])
    };
    // Before any member: the group will start at 1, not at the high watermark.
    let altered: AlterShareGroupOffsetsResponse = client.call(ApiKey::AlterShareGroupOffsets, 0, &alter(1)).await;
    assert_eq!((altered.error_code, altered.responses[0].partitions[0].error_code), (0, 0), "{altered:?}");
    assert_eq!(start_offset(&mut client).await, 1);
    join(&mut client, "workers", "one").await;
    let fetched: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &share_fetch("one", 0, id, vec![])).await;
    assert_eq!(acquired(&fetched), [(1, 2, 1)]);
    let busy: AlterShareGroupOffsetsResponse = client.call(ApiKey::AlterShareGroupOffsets, 0, &alter(0)).await;
    assert_eq!(busy.error_code, NON_EMPTY_GROUP, "{busy:?}");

    let leave = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text("workers")))
        .with_member_id(text("one"))
        .with_member_epoch(-1);
    let _: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &leave).await;
    let delete = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(text("workers")))
        .with_topics(vec![delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(text("jobs")))]);
    let deleted: DeleteShareGroupOffsetsResponse = client.call(ApiKey::DeleteShareGroupOffsets, 0, &delete).await;
    assert_eq!((deleted.error_code, deleted.responses[0].error_code), (0, 0), "{deleted:?}");
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(text("workers")))
            .with_topics(None),
    ]);
    let described: DescribeShareGroupOffsetsResponse =
        client.call(ApiKey::DescribeShareGroupOffsets, 0, &request).await;
    assert!(described.groups[0].topics.is_empty(), "{described:?}");

    // A consumer group's id is no share group's.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(TopicName(text("jobs")))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)])]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let wrong: AlterShareGroupOffsetsResponse =
        client.call(ApiKey::AlterShareGroupOffsets, 0, &alter(0).with_group_id(GroupId(text("billing")))).await;
    assert_eq!(wrong.error_code, GROUP_ID_NOT_FOUND);
    assert!(format!("{:?}", wrong.error_message).contains("consumer group"), "{wrong:?}");
}

/// On a cluster of one node, which is the group's coordinator and the partitions' leader: the clustered path
/// (members at the coordinator, windows at the leader started by the first fetch, states stored through the
/// coordinator, a reset loaded by the leader at its next read).
#[tokio::test]
async fn a_cluster_node_serves_share_groups_and_a_reset_reaches_the_leaders_window() {
    const UNKNOWN_MEMBER_ID: i16 = 25;
    let mut broker = rill_tests::cluster_of_one().await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    let versions: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
    for served in
        [ApiKey::ShareGroupHeartbeat, ApiKey::ShareFetch, ApiKey::ShareAcknowledge, ApiKey::AlterShareGroupOffsets]
    {
        assert!(keys.contains(&(served as i16)), "{served:?} not advertised on a cluster node");
    }
    let id = topic_id(&mut client, "orders").await;
    // The first group request creates `__consumer_offsets`; the node coordinates once it has loaded it.
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text("workers")))
        .with_member_id(text("one"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![TopicName(text("orders"))]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let joined: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &request).await;
        if joined.error_code == 0 {
            assert_eq!(joined.assignment.map(|a| a.topic_partitions[0].partitions.len()), Some(2));
            break;
        }
        assert!(Instant::now() < deadline, "not the coordinator within 30 s: {:?}", joined.error_message);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fetch = |member: &str, epoch: i32, acks: Vec<AcknowledgementBatch>| {
        let partitions = vec![
            FetchPartition::default().with_partition_index(0).with_acknowledgement_batches(acks),
            FetchPartition::default().with_partition_index(1),
        ];
        share_fetch(member, epoch, id, vec![])
            .with_topics(vec![FetchTopic::default().with_topic_id(id).with_partitions(partitions)])
    };
    // A member the coordinator does not have opens no session.
    let stranger: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &fetch("zed", 0, vec![])).await;
    assert_eq!(stranger.error_code, UNKNOWN_MEMBER_ID, "{:?}", stranger.error_message);
    // The first fetch starts the windows (latest: at the end), and later records are acquired.
    let first: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &fetch("one", 0, vec![])).await;
    assert_eq!((first.error_code, acquired(&first)), (0, vec![]), "{:?}", first.error_message);
    broker.produce_values("orders", 0, &["a", "b", "c"]).await;
    let second: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &fetch("one", 1, vec![])).await;
    assert_eq!(acquired(&second), [(0, 2, 1)]);
    let third: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &fetch("one", 2, vec![accept(0, 2)])).await;
    let acknowledged = third.responses[0].partitions.iter().find(|p| p.partition_index == 0).expect("partition 0");
    assert_eq!(acknowledged.acknowledge_error_code, 0, "{:?}", acknowledged.acknowledge_error_message);
    // Stored at the coordinator: DescribeShareGroupOffsets reads it there.
    assert_eq!(start_offset(&mut client).await, 3);

    // The member leaves; the group is moved back to offset 1, and the leader's window follows at its next read.
    let leave = request.clone().with_member_epoch(-1).with_subscribed_topic_names(None);
    let left: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &leave).await;
    assert_eq!(left.error_code, 0, "{:?}", left.error_message);
    let alter = AlterShareGroupOffsetsRequest::default().with_group_id(GroupId(text("workers"))).with_topics(vec![
        alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(text("orders")))
            .with_partitions(vec![alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default(
            )
            .with_partition_index(0)
            .with_start_offset(1)]),
    ]);
    let altered: AlterShareGroupOffsetsResponse = client.call(ApiKey::AlterShareGroupOffsets, 0, &alter).await;
    assert_eq!(altered.error_code, 0, "{:?}", altered.error_message);
    assert_eq!(start_offset(&mut client).await, 1);
    let rejoin = request.clone().with_member_id(text("two"));
    let joined: ShareGroupHeartbeatResponse = client.call(ApiKey::ShareGroupHeartbeat, 1, &rejoin).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let again: ShareFetchResponse = client.call(ApiKey::ShareFetch, 1, &fetch("two", 0, vec![])).await;
    assert_eq!(acquired(&again), [(1, 2, 1)], "read again from the reset start");
}
