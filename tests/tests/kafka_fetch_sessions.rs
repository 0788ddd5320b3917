//! Fetch sessions (KIP-227) over the raw protocol: a full fetch with epoch 0 opens a session and is answered
//! every partition; an incremental fetch names only what changed and is answered only the partitions with
//! records or moved bounds; a waiting incremental fetch is woken by an append to a partition it did not name;
//! forgotten partitions are no longer read; an epoch out of turn is INVALID_FETCH_SESSION_EPOCH, an unknown or
//! closed session FETCH_SESSION_ID_NOT_FOUND, and a client without sessions (epoch -1) is served as before.
//! All of it at v12 (topics by name) and at v16 (by id, KIP-516), where an id that names no topic is
//! UNKNOWN_TOPIC_ID and each answer names its topic by id; and a session at v16 whose topic is deleted and created
//! again under its name is answered UNKNOWN_TOPIC_ID for the old id, never the new topic's records, until the
//! client forgets the old id and adds the new one.

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_protocol::v1;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{values_of, TestBroker};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn orders() -> TopicName {
    TopicName(StrBytes::from_static_str("orders"))
}

fn partition(index: i32, offset: i64) -> FetchPartition {
    FetchPartition::default().with_partition(index).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)
}

/// A fetch of `orders` (by name and id: each version encodes the one it has, v13+ the id).
fn fetch(session: (i32, i32), partitions: Vec<FetchPartition>, wait_ms: i32, id: uuid::Uuid) -> FetchRequest {
    let topics = match partitions.is_empty() {
        true => Vec::new(),
        false => vec![FetchTopic::default().with_topic(orders()).with_topic_id(id).with_partitions(partitions)],
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(topics)
}

/// (partition, high watermark, values) of each partition an answer carries.
fn answered(response: &FetchResponse) -> Vec<(i32, i64, Vec<String>)> {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let values = p.records.as_ref().map(values_of).unwrap_or_default();
            (p.partition_index, p.high_watermark, values.into_iter().map(|(_, v)| v).collect())
        })
        .collect()
}

async fn topic_id(client: &mut KafkaClient) -> uuid::Uuid {
    let request =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(orders()))]));
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request).await;
    response.topics[0].topic_id
}

/// The topic ids an answer names (v13+), one per topic it carries.
fn topic_ids(response: &FetchResponse) -> Vec<uuid::Uuid> {
    response.responses.iter().map(|t| t.topic_id).collect()
}

#[tokio::test]
async fn a_session_names_and_answers_only_what_changed() {
    session_at(12).await;
}

#[tokio::test]
async fn a_session_by_topic_id_names_and_answers_only_what_changed() {
    session_at(16).await;
}

async fn session_at(version: i16) {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 3).await;
    broker.produce_values("orders", 0, &["a"]).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let topic = topic_id(&mut client).await;
    let fetch = move |session, partitions, wait_ms| fetch(session, partitions, wait_ms, topic);

    // Epoch 0 opens a session: every partition is answered, with the session's id.
    let all = vec![partition(0, 0), partition(1, 0), partition(2, 0)];
    let opened: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((0, 0), all, 0)).await;
    assert_eq!(opened.error_code, 0);
    let id = opened.session_id;
    assert!(id > 0, "a session was opened");
    assert_eq!(answered(&opened), [(0, 1, vec!["a".to_owned()]), (1, 0, vec![]), (2, 0, vec![])]);

    // Moved on in partition 0, nothing new anywhere: an empty answer, after the wait.
    let started = Instant::now();
    let idle: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id, 1), vec![partition(0, 1)], 200)).await;
    assert_eq!((idle.error_code, idle.session_id), (0, id));
    assert!(answered(&idle).is_empty(), "{:?}", answered(&idle));
    assert!(started.elapsed() >= Duration::from_millis(150), "the fetch waited for records");

    // A waiting incremental fetch that names nothing is woken by an append to partition 2, and answered it alone.
    let waiting = tokio::spawn(async move {
        let response: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id, 2), vec![], 10_000)).await;
        (client, response)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker.produce_values("orders", 2, &["c"]).await;
    let (mut client, woken) = waiting.await.expect("the fetch");
    assert_eq!(answered(&woken), [(2, 1, vec!["c".to_owned()])]);

    // Partition 2 forgotten: an append there is not read any more; one to partition 1 is.
    broker.produce_values("orders", 2, &["d"]).await;
    broker.produce_values("orders", 1, &["b"]).await;
    let mut forget = fetch((id, 3), vec![], 0);
    forget.forgotten_topics_data =
        vec![ForgottenTopic::default().with_topic(orders()).with_topic_id(topic).with_partitions(vec![2])];
    let after: FetchResponse = client.call(ApiKey::Fetch, version, &forget).await;
    assert_eq!(answered(&after), [(1, 1, vec!["b".to_owned()])]);
    if version >= 13 {
        assert_eq!(topic_ids(&opened), [topic]);
        assert_eq!(topic_ids(&after), [topic]);
        // An id that names no topic: UNKNOWN_TOPIC_ID for its partitions, answered under that id, the rest read.
        let stranger = uuid::Uuid::from_u128(7);
        let mut mixed = fetch((0, -1), vec![partition(0, 0)], 0);
        mixed.topics.push(FetchTopic::default().with_topic_id(stranger).with_partitions(vec![partition(0, 0)]));
        let answer: FetchResponse = client.call(ApiKey::Fetch, version, &mixed).await;
        assert_eq!(topic_ids(&answer), [topic, stranger]);
        assert_eq!(answered(&answer)[0], (0, 1, vec!["a".to_owned()]));
        let refused = &answer.responses[1].partitions[0];
        assert_eq!((refused.partition_index, refused.error_code), (0, UNKNOWN_TOPIC_ID));
    }

    // An epoch out of turn, an unknown session: refused with Kafka's codes, and nothing changes.
    let early: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id, 9), vec![], 0)).await;
    assert_eq!(early.error_code, INVALID_FETCH_SESSION_EPOCH);
    let unknown: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id + 1, 1), vec![], 0)).await;
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // Epoch -1 closes the session and is a full fetch; the session is gone after it.
    let closing: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id, -1), vec![partition(0, 0)], 0)).await;
    assert_eq!((closing.error_code, closing.session_id), (0, 0));
    assert_eq!(answered(&closing), [(0, 1, vec!["a".to_owned()])]);
    let closed: FetchResponse = client.call(ApiKey::Fetch, version, &fetch((id, 4), vec![], 0)).await;
    assert_eq!(closed.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Below v7 there are no sessions: every partition asked is answered.
    let old: FetchResponse =
        client.call(ApiKey::Fetch, 6, &fetch((0, -1), vec![partition(0, 1), partition(1, 1)], 0)).await;
    assert_eq!(answered(&old), [(0, 1, vec![]), (1, 1, vec![])]);
}

#[tokio::test]
async fn a_session_by_topic_id_never_reads_a_topic_created_again_under_its_name() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("orders", 1).await;
    broker.produce_values("orders", 0, &["old"]).await;
    let mut client = KafkaClient::connect(broker.handle.as_ref().expect("running").addr()).await;
    let old = topic_id(&mut client).await;
    let opened: FetchResponse = client.call(ApiKey::Fetch, 16, &fetch((0, 0), vec![partition(0, 0)], 0, old)).await;
    let id = opened.session_id;
    assert!(id > 0, "a session was opened");
    assert_eq!(answered(&opened), [(0, 1, vec!["old".to_owned()])]);

    // Deleted and created again: the same name, another id, other records.
    let deleted = v1::DeleteTopicRequest { name: "orders".into() };
    broker.admin.delete_topic(deleted).await.expect("delete");
    broker.create_topic("orders", 1).await;
    broker.produce_values("orders", 0, &["new"]).await;
    let new = topic_id(&mut client).await;
    assert_ne!(new, old);

    // The session's partition is the old topic's: UNKNOWN_TOPIC_ID under the old id, at every fetch.
    for epoch in 1..=2 {
        let stale: FetchResponse = client.call(ApiKey::Fetch, 16, &fetch((id, epoch), vec![], 0, old)).await;
        assert_eq!((stale.error_code, stale.session_id), (0, id));
        assert_eq!(topic_ids(&stale), [old]);
        let refused = &stale.responses[0].partitions[0];
        assert_eq!((refused.partition_index, refused.error_code), (0, UNKNOWN_TOPIC_ID));
        assert!(answered(&stale)[0].2.is_empty(), "no records of the new topic under the old id");
    }

    // The client forgets the old id and adds the new one in the same fetch: the new topic is read, by its id.
    let mut moved = fetch((id, 3), vec![partition(0, 0)], 0, new);
    moved.forgotten_topics_data = vec![ForgottenTopic::default().with_topic_id(old).with_partitions(vec![0])];
    let read: FetchResponse = client.call(ApiKey::Fetch, 16, &moved).await;
    assert_eq!(topic_ids(&read), [new]);
    assert_eq!(answered(&read), [(0, 1, vec!["new".to_owned()])]);
    // The old id is gone from the session: nothing more to say.
    let quiet: FetchResponse = client.call(ApiKey::Fetch, 16, &fetch((id, 4), vec![partition(0, 1)], 0, new)).await;
    assert!(quiet.responses.is_empty(), "{:?}", answered(&quiet));
}
