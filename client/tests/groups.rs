//! Consumer groups through the client: `Consumer::subscribe` against an embedded broker. Members run as tasks
//! behind freezable proxies (see `common/group.rs`), so a test can make one leave, hang or die.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::group::{lock, owns, wait_until, FreezableProxy, GroupMember, Shared, SharedState};
use common::{create_topic, TestBroker, DEADLINE};
use rill_client::{
    Admin, Client, Consumer, ConsumerConfig, Error, GroupState, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    RebalanceEvent,
};

fn config(session_ms: u64) -> ConsumerConfig {
    ConsumerConfig {
        session_timeout: Duration::from_millis(session_ms),
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    }
}

/// Sends `values` to `partition` (or by the producer's choice) and waits until all are stored.
async fn produce(client: &Client, topic: &str, partition: Option<u32>, values: impl IntoIterator<Item = String>) {
    let producer = Producer::new(client.clone(), ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for value in values {
        let record = ProducerRecord { partition, ..ProducerRecord::new(value) };
        deliveries.push(producer.send(topic, record).await.expect("send"));
    }
    for delivery in deliveries {
        delivery.await.expect("stored");
    }
}

fn new_shared() -> SharedState {
    Arc::new(Mutex::new(Shared::default()))
}

fn events_of(shared: &Shared, member: &str) -> Vec<RebalanceEvent> {
    shared.events.iter().filter(|(m, _)| m == member).map(|(_, e)| e.clone()).collect()
}

#[tokio::test]
async fn three_members_share_six_partitions_and_a_fourth_takes_one_while_the_others_keep_consuming() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 6).await;
    let shared = new_shared();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(GroupMember::start(broker.addr(), name, "g", "t", config(10_000), 1, &shared).await);
    }
    wait_until(&shared, "a, b and c own 2 each", |s| owns(s, &[("a", 2), ("b", 2), ("c", 2)], 6)).await;
    let events_before = lock(&shared).events.len();
    let before = lock(&shared).owned.clone();

    members.push(GroupMember::start(broker.addr(), "d", "g", "t", config(10_000), 1, &shared).await);
    wait_until(&shared, "d owns one", |s| s.owned.get("d").is_some_and(|o| o.len() == 1)).await;
    let admin = Admin::new(client.clone());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while admin.describe_group("g").await.expect("describe").state != GroupState::Stable as i32 {
        assert!(tokio::time::Instant::now() < deadline, "the group never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let shared = lock(&shared);
        let after_join: Vec<_> = shared.events[events_before..].to_vec();
        let revoked: Vec<_> = after_join
            .iter()
            .filter_map(|(m, e)| match e {
                RebalanceEvent::Revoked { partitions, .. } => Some((m.clone(), partitions.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(revoked.len(), 1, "one member gave one partition up: {after_join:?}");
        assert_eq!(revoked[0].1.len(), 1);
        let moved = revoked[0].1[0].1;
        assert_eq!(shared.owned["d"], BTreeSet::from([moved]), "d got exactly the partition given up");
        assert!(after_join.iter().all(|(_, e)| !matches!(e, RebalanceEvent::Lost { .. })));
        for (member, owned) in &before {
            if *member != revoked[0].0 {
                assert_eq!(&shared.owned[member], owned, "{member} kept its partitions");
            }
        }
    }

    // Every member keeps consuming what it owns: new records on every partition reach their owner.
    let marker_values: Vec<String> = (0..6).map(|p| format!("after-{p}")).collect();
    for (p, value) in marker_values.iter().enumerate() {
        produce(&client, "t", Some(p as u32), [value.clone()]).await;
    }
    wait_until(&shared, "every marker is processed", |s| {
        marker_values.iter().all(|v| s.processed.iter().any(|r| &r.value == v))
    })
    .await;
    let shared = lock(&shared);
    for record in shared.processed.iter().filter(|r| r.value.starts_with("after-")) {
        assert!(shared.owned[&record.member].contains(&record.partition), "{record:?} read by its owner");
    }
    assert!(shared.errors.is_empty(), "{:?}", shared.errors);
}

#[tokio::test]
async fn a_hung_member_loses_its_partitions_after_the_session_timeout_a_leaving_or_killed_one_at_once() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 4).await;
    let shared = new_shared();
    let hung = GroupMember::start(broker.addr(), "hung", "g", "t", config(600), 1, &shared).await;
    let _stayer = GroupMember::start(broker.addr(), "stayer", "g", "t", config(30_000), 1, &shared).await;
    wait_until(&shared, "2 each", |s| owns(s, &[("hung", 2), ("stayer", 2)], 4)).await;
    // The hung member never revokes: its two partitions reach `stayer` only once the broker gives up on it.
    let _frozen: FreezableProxy = hung.hang();
    wait_until(&shared, "stayer owns all 4", |s| s.owned.get("stayer").is_some_and(|o| o.len() == 4)).await;

    // 30 s sessions: the waits below (at most 20 s) end long before any session could expire.
    let leaver = GroupMember::start(broker.addr(), "leaver", "g", "t", config(30_000), 1, &shared).await;
    wait_until(&shared, "leaver owns 2", |s| s.owned.get("leaver").is_some_and(|o| o.len() == 2)).await;
    leaver.leave().await;
    wait_until(&shared, "stayer owns all 4 again", |s| s.owned.get("stayer").is_some_and(|o| o.len() == 4)).await;
    let killed = GroupMember::start(broker.addr(), "killed", "g", "t", config(30_000), 1, &shared).await;
    wait_until(&shared, "killed owns 2", |s| s.owned.get("killed").is_some_and(|o| o.len() == 2)).await;
    killed.kill();
    wait_until(&shared, "stayer owns all 4 at last", |s| s.owned.get("stayer").is_some_and(|o| o.len() == 4)).await;
    let shared = lock(&shared);
    assert!(events_of(&shared, "leaver").iter().any(|e| matches!(e, RebalanceEvent::Revoked { .. })));
    assert!(shared.errors.iter().all(|(m, _)| m != "stayer"), "{:?}", shared.errors);
}

#[tokio::test]
async fn at_least_once_under_churn_every_record_is_processed_and_only_uncommitted_ones_twice() {
    const N: usize = 3_000;
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 4).await;
    let shared = new_shared();
    let session_ms = 800;
    let mut live = vec![
        GroupMember::start(broker.addr(), "m0", "g", "t", config(session_ms), 10, &shared).await,
        GroupMember::start(broker.addr(), "m1", "g", "t", config(session_ms), 10, &shared).await,
    ];
    let producer_client = client.clone();
    let producing = tokio::spawn(async move {
        for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
            // Spread over every partition, so every member has records in flight when the churn hits it.
            for p in 0..4u32 {
                let values: Vec<String> = chunk.iter().filter(|n| **n as u32 % 4 == p).map(|n| n.to_string()).collect();
                produce(&producer_client, "t", Some(p), values).await;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    let mut hung = Vec::new();
    let mut crashed = BTreeSet::new();
    let churn = ["join", "leave", "join", "hang", "join", "kill", "join", "leave", "join"];
    for (step, action) in churn.iter().enumerate() {
        // Each step waits for some progress, so members change while records flow.
        let before = lock(&shared).processed.len();
        wait_until(&shared, "progress between churn steps", |s| s.processed.len() >= (before + 150).min(N)).await;
        match *action {
            "join" => {
                let name = format!("m{}", step + 2);
                live.push(GroupMember::start(broker.addr(), &name, "g", "t", config(session_ms), 10, &shared).await);
            }
            "leave" => live.remove(0).leave().await,
            "hang" => {
                let member = live.remove(0);
                crashed.insert(member.name.clone());
                hung.push(member.hang());
            }
            _ => {
                let member = live.remove(0);
                crashed.insert(member.name.clone());
                member.kill();
            }
        }
    }
    producing.await.expect("the producer finished");
    wait_until(&shared, "all N records are processed", |s| {
        s.processed.iter().map(|r| r.value.as_str()).collect::<BTreeSet<_>>().len() == N
    })
    .await;

    let shared = lock(&shared);
    let mut first_reader: BTreeMap<(u32, i64), &str> = BTreeMap::new();
    let mut twice = 0;
    for record in &shared.processed {
        let Some(first) = first_reader.get(&(record.partition, record.offset)).copied() else {
            first_reader.insert((record.partition, record.offset), &record.member);
            continue;
        };
        twice += 1;
        // A record is read again only if its first reader crashed before committing past it.
        assert!(crashed.contains(first), "{record:?} was read twice though {first} did not crash");
        let committed = shared.committed.get(&(first.to_owned(), record.partition)).copied().unwrap_or(0);
        assert!(record.offset >= committed, "{record:?} was read again below {first}'s commit at {committed}");
    }
    let values: BTreeSet<usize> = shared.processed.iter().filter_map(|r| r.value.parse().ok()).collect();
    assert_eq!(values, (0..N).collect(), "every record was processed");
    let live_errors: Vec<_> = shared.errors.iter().filter(|(m, _)| !crashed.contains(m)).collect();
    assert!(live_errors.is_empty(), "{live_errors:?}");
    eprintln!("{} records, {twice} processed twice after crashes", shared.processed.len());
}

#[tokio::test]
async fn two_groups_on_one_topic_each_get_every_record_and_auto_commit_their_progress() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 3).await;
    let (first, second) = (new_shared(), new_shared());
    let auto = |group: &str| ConsumerConfig {
        group_id: Some(group.into()),
        auto_commit_interval: Some(Duration::from_millis(50)),
        ..config(10_000)
    };
    let _members = [
        GroupMember::start(broker.addr(), "x1", "first", "t", auto("first"), 1, &first).await,
        GroupMember::start(broker.addr(), "x2", "first", "t", auto("first"), 1, &first).await,
        GroupMember::start(broker.addr(), "y1", "second", "t", auto("second"), 1, &second).await,
    ];
    produce(&client, "t", None, (0..300).map(|n| n.to_string())).await;
    for shared in [&first, &second] {
        wait_until(shared, "every record is processed", |s| {
            s.processed.iter().map(|r| r.value.as_str()).collect::<BTreeSet<_>>().len() == 300
        })
        .await;
    }
    let admin = Admin::new(client.clone());
    let ends: Vec<i64> =
        admin.list_offsets("t", &[], OffsetSpec::Latest).await.expect("ends").iter().map(|o| o.offset).collect();
    for group in ["first", "second"] {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let wanted: Vec<(&str, u32)> = (0..3).map(|p| ("t", p)).collect();
            let committed = admin.committed_offsets(group, &wanted).await.expect("committed offsets");
            if committed.iter().map(|c| c.offset).collect::<Vec<_>>() == ends {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{group} never committed up to the end: {committed:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_fenced_members_commit_is_refused_and_it_rejoins() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 2).await;
    produce(&client, "t", None, (0..10).map(|n| n.to_string())).await;
    let proxy = FreezableProxy::start(broker.addr()).await;
    let zombie_client = Client::connect(proxy.addr.to_string()).await.expect("connect");
    let mut zombie = Consumer::new(zombie_client, config(500)).expect("consumer");
    let zombie_events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&zombie_events);
    zombie.on_rebalance(move |event| sink.lock().expect("events").push(event.clone()));
    zombie.subscribe("g", &["t"]).expect("subscribe");
    let records = tokio::time::timeout(DEADLINE, zombie.poll()).await.expect("records in time").expect("poll");
    assert!(!records.is_empty());
    let (member_id, _) = zombie.group_member().expect("a member");

    let shared = new_shared();
    let _owner = GroupMember::start(broker.addr(), "owner", "g", "t", config(30_000), 1, &shared).await;
    proxy.freeze();
    wait_until(&shared, "the owner has both partitions", |s| s.owned.get("owner").is_some_and(|o| o.len() == 2)).await;
    proxy.thaw();
    match zombie.commit().await {
        Err(Error::GroupRefused { message }) => {
            assert!(message.contains(&member_id) && message.contains("not in group"), "{message}");
        }
        other => panic!("a fenced commit must be refused, got {other:?}"),
    }
    // The zombie's next polls notice the lost membership, drop its partitions and rejoin as a new member.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !zombie_events.lock().expect("events").iter().any(|e| matches!(e, RebalanceEvent::Lost { .. })) {
        assert!(tokio::time::Instant::now() < deadline, "the zombie never noticed it was fenced");
        let _ = tokio::time::timeout(Duration::from_millis(100), zombie.poll()).await;
    }
    while zombie.group_member().is_none_or(|(id, _)| id == member_id) {
        assert!(tokio::time::Instant::now() < deadline, "the zombie never rejoined");
        let _ = tokio::time::timeout(Duration::from_millis(100), zombie.poll()).await;
    }
}

#[tokio::test]
async fn offsets_reset_is_refused_while_the_group_has_members_and_works_once_it_is_empty() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 1).await;
    produce(&client, "t", Some(0), (0..5).map(|n| format!("old-{n}"))).await;
    let admin = Admin::new(client.clone());
    let mut consumer = Consumer::new(client.clone(), config(10_000)).expect("consumer");
    consumer.subscribe("g", &["t"]).expect("subscribe");
    tokio::time::timeout(DEADLINE, consumer.poll()).await.expect("in time").expect("poll");
    match admin.reset_offsets("g", "t", &[], OffsetSpec::Latest).await {
        Err(Error::GroupRefused { message }) => assert!(message.contains("active member"), "{message}"),
        other => panic!("a reset of an active group must be refused, got {other:?}"),
    }
    consumer.unsubscribe().await.expect("unsubscribe commits and leaves");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while admin.describe_group("g").await.expect("describe").state != GroupState::Empty as i32 {
        assert!(tokio::time::Instant::now() < deadline, "the group never became empty");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // To the record with the largest timestamp: where ListOffsets finds it.
    let largest = admin.list_offsets("t", &[], OffsetSpec::MaxTimestamp).await.expect("max timestamp")[0].offset;
    let reset = admin.reset_offsets("g", "t", &[], OffsetSpec::MaxTimestamp).await.expect("reset to it");
    assert!((0..5).contains(&largest), "{largest}");
    assert_eq!(reset[0].offset, largest);
    let reset = admin.reset_offsets("g", "t", &[], OffsetSpec::Earliest).await.expect("reset of an empty group");
    assert_eq!(reset[0].offset, 0);

    // A new member starts from the reset offset: every old record again.
    let mut again = Consumer::new(client, config(10_000)).expect("consumer");
    again.subscribe("g", &["t"]).expect("subscribe");
    let mut values = Vec::new();
    let collect = async {
        while values.len() < 5 {
            values.extend(again.poll().await.expect("poll").into_iter().map(|r| r.offset));
        }
    };
    tokio::time::timeout(DEADLINE, collect).await.expect("the old records again");
    assert_eq!(values[0], 0);
}

#[tokio::test]
async fn a_subscribed_consumer_rejoins_after_a_broker_restart_and_resumes_from_its_commits() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    create_topic(&client, "t", 2).await;
    produce(&client, "t", None, (0..10).map(|n| format!("old-{n}"))).await;
    let mut consumer = Consumer::new(client.clone(), config(10_000)).expect("consumer");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    consumer.on_rebalance(move |event| sink.lock().expect("events").push(event.clone()));
    consumer.subscribe("g", &["t"]).expect("subscribe");
    let mut seen = Vec::new();
    let first = async {
        while seen.len() < 10 {
            seen.extend(consumer.poll().await.expect("poll").into_iter().map(|r| common::value_str(&r).to_owned()));
        }
    };
    tokio::time::timeout(DEADLINE, first).await.expect("the old records");
    consumer.commit().await.expect("commit");
    let (member_before, _) = consumer.group_member().expect("a member");

    let addr = broker.stop().await;
    broker.restart_on(addr).await;
    produce(&client, "t", None, (0..5).map(|n| format!("new-{n}"))).await;
    let mut after = Vec::new();
    let resumed = async {
        while after.len() < 5 {
            match consumer.poll().await {
                Ok(records) => after.extend(records.into_iter().map(|r| common::value_str(&r).to_owned())),
                // While the broker is away, fetches fail: the consumer keeps going.
                Err(err) => assert!(err.is_retriable() || matches!(err, Error::Broker { .. }), "{err:?}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, resumed).await.expect("the new records after the restart");
    after.sort();
    assert_eq!(after, (0..5).map(|n| format!("new-{n}")).collect::<Vec<_>>(), "committed records are not re-read");
    let (member_after, _) = consumer.group_member().expect("a member again");
    assert_ne!(member_before, member_after, "a rejoin is a new member");
    let events = events.lock().expect("events");
    assert!(events.iter().any(|e| matches!(e, RebalanceEvent::Lost { .. })), "{events:?}");
}
