//! Long-polling fetch and Subscribe: both are woken by appends, never by a polling loop.

use std::time::{Duration, Instant};

use rill_protocol::v1;
use rill_tests::{assert_status, fetch_request, values_of, TestBroker};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn long_poll_fetch_wakes_on_append() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("lp", 1).await;
    let mut fetcher = broker.records.clone();
    let started = Instant::now();
    // Waits up to 20 s for one byte; the append below must end the wait long before that.
    let waiting = tokio::spawn(async move { fetcher.fetch(fetch_request("lp", 0, 0, 1, 20_000)).await });
    tokio::task::yield_now().await;
    broker.produce_values("lp", 0, &["wake up"]).await;
    let response = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(values_of(&response.record_batches), [(0, "wake up".into())]);
    assert!(started.elapsed() < Duration::from_secs(10), "woken by the append, not by the timeout");
}

#[tokio::test]
async fn long_poll_returns_empty_after_max_wait_and_at_once_with_data() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("lp", 1).await;
    let started = Instant::now();
    let empty = broker.records.fetch(fetch_request("lp", 0, 0, 1, 50)).await.unwrap().into_inner();
    assert!(empty.record_batches.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50), "waited for max_wait_ms");
    broker.produce_values("lp", 0, &["x"]).await;
    let ready = broker.records.fetch(fetch_request("lp", 0, 0, 1, 20_000)).await.unwrap().into_inner();
    assert_eq!(values_of(&ready.record_batches).len(), 1);
}

#[tokio::test]
async fn subscribe_replays_then_follows_new_batches() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("sub", 1).await;
    broker.produce_values("sub", 0, &["old-0", "old-1"]).await;
    let request = v1::SubscribeRequest {
        topic: "sub".into(),
        partition: 0,
        offset: 1,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    let mut stream = broker.records.subscribe(request).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(values_of(&first.record_batches)[1], (1, "old-1".into()));
    assert_eq!(first.next_offset, 2);
    for i in 0..3 {
        let value = format!("new-{i}");
        broker.produce_values("sub", 0, &[&value]).await;
        let pushed = stream.next().await.unwrap().unwrap();
        assert_eq!(values_of(&pushed.record_batches), [(2 + i, value)]);
    }
}

#[tokio::test]
async fn subscribe_from_latest_sees_only_new_records_in_structured_form() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("sub", 1).await;
    broker.produce_values("sub", 0, &["before"]).await;
    let request = v1::SubscribeRequest {
        topic: "sub".into(),
        partition: 0,
        offset: -1,
        max_bytes: 0,
        format: v1::RecordFormat::Structured as i32,
        current_leader_epoch: None,
        isolation: 0,
    };
    let mut stream = broker.records.subscribe(request).await.unwrap().into_inner();
    broker.produce_values("sub", 0, &["after"]).await;
    let pushed = stream.next().await.unwrap().unwrap();
    assert_eq!(pushed.records.len(), 1);
    assert_eq!((pushed.records[0].offset, pushed.records[0].value.as_deref()), (1, Some(&b"after"[..])));
}

#[tokio::test]
async fn a_slow_subscriber_does_not_stop_producers_or_other_readers() {
    let mut broker = TestBroker::start_with(|c| c.subscribe_queue_batches = 2).await;
    broker.create_topic("slow", 1).await;
    let request = v1::SubscribeRequest {
        topic: "slow".into(),
        partition: 0,
        offset: 0,
        max_bytes: 1024,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    // Subscribed, and never read until the end: the broker keeps at most 2 pushes for it.
    let mut stream = broker.records.subscribe(request).await.unwrap().into_inner();
    let value = "v".repeat(900);
    for _ in 0..200 {
        broker.produce_values("slow", 0, &[&value]).await;
    }
    assert_eq!(broker.fetch_values("slow", 0, 199).await.len(), 1, "producers and fetches go on");
    let mut next = 0;
    while next < 200 {
        let pushed = stream.next().await.unwrap().unwrap();
        for (offset, _) in values_of(&pushed.record_batches) {
            assert_eq!(offset, next, "in order, nothing lost");
            next += 1;
        }
    }
}

#[tokio::test]
async fn subscribe_refuses_bad_offsets_and_ends_when_the_topic_is_deleted() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("sub", 1).await;
    let request = |offset| v1::SubscribeRequest {
        topic: "sub".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    assert_status(broker.records.subscribe(request(5)).await, Code::OutOfRange, &["offset 5", "0"]);
    broker.assert_serving().await;
    assert_status(broker.records.subscribe(request(-3)).await, Code::InvalidArgument, &["-3"]);
    broker.assert_serving().await;
    let unknown = v1::SubscribeRequest { topic: "nope".into(), ..request(0) };
    assert_status(broker.records.subscribe(unknown).await, Code::NotFound, &["nope"]);
    broker.assert_serving().await;

    let mut stream = broker.records.subscribe(request(0)).await.unwrap().into_inner();
    broker.admin.delete_topic(v1::DeleteTopicRequest { name: "sub".into() }).await.unwrap();
    let ended = stream.next().await;
    match ended {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{}", status.message()),
        other => panic!("expected the stream to end with UNAVAILABLE, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_ends_subscriptions_and_long_polls_promptly() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("s", 1).await;
    let request = v1::SubscribeRequest {
        topic: "s".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: None,
        isolation: 0,
    };
    let mut stream = broker.records.subscribe(request).await.unwrap().into_inner();
    let mut fetcher = broker.records.clone();
    let poll = tokio::spawn(async move { fetcher.fetch(fetch_request("s", 0, 0, 1, 30_000)).await });
    tokio::task::yield_now().await;
    let started = Instant::now();
    broker.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown is not held up by waiting calls");
    assert!(!matches!(stream.next().await, Some(Ok(_))), "the subscription ended");
    let _ = poll.await.unwrap();
}
