//! Share groups through the client: `ShareConsumer` against an embedded broker. Members split a partition's
//! records one by one, each accepted once; a released record comes back to the group with its delivery count
//! raised, a rejected one never; a member that goes away gives back what it held at once, and one that closes
//! accepts what it was handed; in explicit acknowledgement mode nothing is accepted that the application did
//! not accept, and a member that closes with records unacknowledged gives them back; a consumer group's id is
//! refused.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{create_topic, TestBroker, DEADLINE};
use rill_client::{
    AcknowledgeType, AcknowledgementMode, Admin, Client, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord, ShareConsumer, ShareConsumerConfig,
};

fn config(max_records: u32) -> ShareConsumerConfig {
    ShareConsumerConfig { max_records, max_wait: Duration::from_millis(200), ..ShareConsumerConfig::default() }
}

/// A topic of one partition whose share group `group` starts at the log's start.
async fn setup(client: &Client, topic: &str, group: &str) {
    create_topic(client, topic, 1).await;
    let earliest = [("share.auto.offset.reset".to_owned(), "earliest".to_owned())];
    Admin::new(client.clone()).alter_group_config(group, &earliest, &[], false).await.expect("group config");
}

/// Sends `values`, each in a batch of its own (a share group hands records out a batch at a time at most).
async fn produce_one_by_one(client: &Client, topic: &str, values: impl IntoIterator<Item = String>) {
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    for value in values {
        producer.send(topic, ProducerRecord::new(value)).await.expect("send").await.expect("stored");
    }
}

fn value_of(record: &rill_client::ShareRecord) -> String {
    String::from_utf8_lossy(record.record.value.as_deref().unwrap_or_default()).into_owned()
}

#[tokio::test]
async fn three_members_share_one_partition_and_every_record_is_accepted_once() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    setup(&client, "jobs", "workers").await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(ShareConsumer::join(client.clone(), "workers", &["jobs"], config(5)).await.expect("joins"));
    }
    let ids: BTreeSet<String> = members.iter().map(|m| m.member_id().expect("a member").to_owned()).collect();
    assert_eq!(ids.len(), 3, "each stream is its own member");
    let total = 150;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (index, mut member) in members.into_iter().enumerate() {
        let seen_tx = seen_tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let records = member.poll().await.expect("poll");
                for record in &records {
                    assert_eq!(record.delivery_count, 1, "nothing is delivered twice: {record:?}");
                    if seen_tx.send((index, value_of(record))).is_err() {
                        break;
                    }
                }
                if seen_tx.is_closed() {
                    let failures = member.close().await.expect("close");
                    assert!(failures.is_empty(), "{failures:?}");
                    return;
                }
            }
        }));
    }
    drop(seen_tx);
    produce_one_by_one(&client, "jobs", (0..total).map(|n| format!("job-{n}"))).await;
    let mut by_member: BTreeMap<usize, usize> = BTreeMap::new();
    let mut values = BTreeSet::new();
    tokio::time::timeout(DEADLINE, async {
        while values.len() < total {
            let (member, value) = seen.recv().await.expect("members keep reading");
            assert!(values.insert(value.clone()), "{value} read twice");
            *by_member.entry(member).or_default() += 1;
        }
    })
    .await
    .expect("every record read within the deadline");
    drop(seen);
    for task in tasks {
        task.await.expect("member task");
    }
    assert!(by_member.len() >= 2, "the members shared the partition: {by_member:?}");
    // Every record accepted: the group's start moved past them all, nothing is in flight.
    let described = Admin::new(client.clone()).describe_group("workers").await.expect("describe");
    let partition = &described.partitions[0];
    assert_eq!((partition.committed_offset, partition.in_flight), (total as i64, 0), "{described:?}");
}

#[tokio::test]
async fn a_released_record_comes_back_counted_and_a_rejected_one_never() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    setup(&client, "jobs", "workers").await;
    produce_one_by_one(&client, "jobs", ["a", "b", "c"].map(String::from)).await;
    let mut member = ShareConsumer::join(client.clone(), "workers", &["jobs"], config(10)).await.expect("joins");
    let mut first = Vec::new();
    while first.len() < 3 {
        first.extend(member.poll().await.expect("poll"));
    }
    assert_eq!(first.iter().map(value_of).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(first.iter().all(|r| r.delivery_count == 1));
    member.acknowledge(&first[1], AcknowledgeType::Release).expect("b held");
    member.acknowledge(&first[2], AcknowledgeType::Reject).expect("c held");
    assert!(member.acknowledge(&first[2], AcknowledgeType::Accept).is_ok(), "changing one's mind before it is sent");
    member.acknowledge(&first[2], AcknowledgeType::Reject).expect("c held");
    // `a` is accepted by the poll that sends these.
    let again = member.poll().await.expect("poll");
    assert_eq!(again.iter().map(|r| (value_of(r), r.delivery_count)).collect::<Vec<_>>(), [("b".to_owned(), 2)]);
    assert!(matches!(member.acknowledge(&first[0], AcknowledgeType::Release), Err(Error::InvalidUse { .. })));
    assert!(member.commit().await.expect("commit").is_empty());
    assert!(member.poll().await.expect("poll").is_empty(), "a accepted, b accepted, c rejected");
    let described = Admin::new(client.clone()).describe_group("workers").await.expect("describe");
    assert_eq!(described.partitions[0].committed_offset, 3, "{described:?}");
    member.close().await.expect("close");
}

#[tokio::test]
async fn in_explicit_mode_only_what_the_application_acknowledged_is_done_with() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    setup(&client, "jobs", "workers").await;
    produce_one_by_one(&client, "jobs", ["a", "b", "c"].map(String::from)).await;
    let explicit = ShareConsumerConfig { acknowledgement_mode: AcknowledgementMode::Explicit, ..config(10) };
    let mut member = ShareConsumer::join(client.clone(), "workers", &["jobs"], explicit).await.expect("joins");
    let mut first = Vec::new();
    while first.len() < 3 {
        first.extend(member.poll().await.expect("poll"));
    }
    member.acknowledge(&first[0], AcknowledgeType::Accept).expect("a held");
    let refused = member.poll().await.expect_err("b and c are not acknowledged");
    assert!(matches!(refused, Error::InvalidUse { .. }), "{refused}");
    assert!(refused.to_string().contains("2 records"), "{refused}");
    // A commit sends what was acknowledged (a), and nothing for b and c, which stay this member's.
    assert!(member.commit().await.expect("commit").is_empty());
    member.acknowledge(&first[1], AcknowledgeType::Accept).expect("b still held");
    // Closed with c unacknowledged: c goes back to the group rather than counting as done.
    assert!(member.close().await.expect("close").is_empty());
    let mut next = ShareConsumer::join(client.clone(), "workers", &["jobs"], config(10)).await.expect("joins");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while back.is_empty() {
            back.extend(next.poll().await.expect("poll"));
        }
    })
    .await
    .expect("c came back");
    assert_eq!(back.iter().map(|r| (value_of(r), r.delivery_count)).collect::<Vec<_>>(), [("c".to_owned(), 2)]);
    next.close().await.expect("close");
}

#[tokio::test]
async fn a_member_that_goes_away_gives_its_records_back_at_once_and_one_that_closes_accepts_them() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    setup(&client, "jobs", "workers").await;
    produce_one_by_one(&client, "jobs", ["a", "b"].map(String::from)).await;
    // The group's lock is the broker's 30 s: only the member's leaving can bring the records back sooner.
    let mut gone = ShareConsumer::join(client.clone(), "workers", &["jobs"], config(10)).await.expect("joins");
    let mut held = Vec::new();
    while held.len() < 2 {
        held.extend(gone.poll().await.expect("poll"));
    }
    drop(gone);
    let mut next = ShareConsumer::join(client.clone(), "workers", &["jobs"], config(10)).await.expect("joins");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while back.len() < 2 {
            back.extend(next.poll().await.expect("poll"));
        }
    })
    .await
    .expect("the records came back well before their locks ran out");
    assert_eq!(
        back.iter().map(|r| (value_of(r), r.delivery_count)).collect::<Vec<_>>(),
        [("a".to_owned(), 2), ("b".to_owned(), 2)]
    );
    // Closing accepts what the last poll handed out: a third member finds nothing.
    assert!(next.close().await.expect("close").is_empty());
    let mut third = ShareConsumer::join(client.clone(), "workers", &["jobs"], config(10)).await.expect("joins");
    assert!(third.poll().await.expect("poll").is_empty());
    third.close().await.expect("close");
}

#[tokio::test]
async fn a_consumer_groups_id_and_a_share_consumer_without_topics_are_refused() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "jobs", 1).await;
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default()).expect("consumer");
    consumer.subscribe("orders-app", &["jobs"]).expect("subscribe");
    // The member joins on the first poll.
    let _ = tokio::time::timeout(Duration::from_secs(2), consumer.poll()).await;
    let admin = Admin::new(client.clone());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !admin.describe_group("orders-app").await.is_ok_and(|g| !g.members.is_empty()) {
        assert!(tokio::time::Instant::now() < deadline, "the consumer group's member did not join");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused =
        ShareConsumer::join(client.clone(), "orders-app", &["jobs"], config(10)).await.err().expect("refused");
    assert!(matches!(refused, Error::GroupRefused { .. }), "{refused:?}");
    assert!(refused.to_string().contains("consumer group"), "{refused}");
    let none = ShareConsumer::join(client.clone(), "workers", &[], config(10)).await.err().expect("refused");
    assert!(matches!(none, Error::InvalidUse { .. }), "{none:?}");
    let bad = ShareConsumer::join(client.clone(), "", &["jobs"], config(10)).await.err().expect("refused");
    assert!(matches!(bad, Error::InvalidArgument { .. }), "{bad:?}");
}
