//! KIP-320 on gRPC reads of one node: a Fetch or Subscribe naming the partition's leader epoch is served at the
//! node's epoch (0 on a single node) and refused with the typed `unknown-leader-epoch` reason at a newer one;
//! one naming none is not checked. The older-epoch refusal (`fenced-leader-epoch`) needs a leader change and is
//! proven on three processes in `cli/tests/cluster_leader_epochs.rs`.

use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::v1;
use rill_tests::{fetch_request, values_of, TestBroker};
use tokio_stream::StreamExt;

#[tokio::test]
async fn a_fetch_or_subscribe_at_a_newer_leader_epoch_is_refused_and_at_the_nodes_epoch_served() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    broker.produce_values("t", 0, &["a", "b"]).await;

    let at = |epoch: Option<u32>| v1::FetchRequest { current_leader_epoch: epoch, ..fetch_request("t", 0, 0, 0, 0) };
    for epoch in [None, Some(0)] {
        let fetched = broker.records.fetch(at(epoch)).await.expect("served").into_inner();
        assert_eq!(values_of(&fetched.record_batches), [(0, "a".into()), (1, "b".into())], "{epoch:?}");
    }
    let refused = broker.records.fetch(at(Some(1))).await.expect_err("an epoch the node does not know");
    assert_eq!(reason_of(&refused), Some(Reason::UnknownLeaderEpoch), "{}", refused.message());
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("epoch 1") && refused.message().contains("epoch 0"), "{}", refused.message());

    let subscribe = |epoch: Option<u32>| v1::SubscribeRequest {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        format: 0,
        current_leader_epoch: epoch,
        isolation: 0,
    };
    let refused = broker.records.subscribe(subscribe(Some(1))).await.expect_err("an epoch the node does not know");
    assert_eq!(reason_of(&refused), Some(Reason::UnknownLeaderEpoch), "{}", refused.message());
    let mut stream = broker.records.subscribe(subscribe(Some(0))).await.expect("subscribed").into_inner();
    let pushed = stream.next().await.expect("a push").expect("records");
    assert_eq!(values_of(&pushed.record_batches), [(0, "a".into()), (1, "b".into())]);
}
