//! Idempotent producers over gRPC: `InitProducerId` issues ids never issued before (across restarts), a batch
//! sent again is answered with the offsets it got the first time and stored once, a gap and an older epoch are
//! refused with FAILED_PRECONDITION and their reasons (`out-of-order-sequence`, `invalid-producer-epoch`), and the partition remembers its producers across a restart.

use rill_protocol::reason::{reason_of, Reason};
use rill_protocol::v1;
use rill_tests::{assert_status, idempotent_batch_of, produce_request, TestBroker};
use tonic::Code;

async fn init_producer_id(broker: &mut TestBroker) -> i64 {
    let response = broker.records.init_producer_id(v1::InitProducerIdRequest {}).await.expect("a producer id");
    let response = response.into_inner();
    assert_eq!(response.producer_epoch, 0);
    response.producer_id
}

async fn produce(broker: &mut TestBroker, batch: bytes::Bytes, acks: v1::Acks) -> Result<(i64, i64), tonic::Status> {
    let answer = broker.records.produce(produce_request("t", Some(0), batch, acks)).await?.into_inner();
    Ok((answer.base_offset, answer.last_offset))
}

#[tokio::test]
async fn producer_ids_are_never_issued_twice_across_restarts() {
    let mut broker = TestBroker::start().await;
    let mut ids = vec![init_producer_id(&mut broker).await, init_producer_id(&mut broker).await];
    broker = broker.restart().await;
    ids.push(init_producer_id(&mut broker).await);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
}

#[tokio::test]
async fn a_batch_sent_again_gets_its_original_offsets_and_is_stored_once() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let id = init_producer_id(&mut broker).await;
    let first = idempotent_batch_of(&["a", "b", "c"], id, 0, 0);
    assert_eq!(produce(&mut broker, first.clone(), v1::Acks::Leader).await.ok(), Some((0, 2)));
    broker.produce_values("t", 0, &["plain"]).await;
    assert_eq!(produce(&mut broker, idempotent_batch_of(&["d"], id, 0, 3), v1::Acks::Durable).await.ok(), Some((4, 4)));
    for acks in [v1::Acks::Leader, v1::Acks::Durable] {
        assert_eq!(produce(&mut broker, first.clone(), acks).await.ok(), Some((0, 2)), "{acks:?}");
    }
    let values: Vec<String> = broker.fetch_all_values("t", 0, 0).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["a", "b", "c", "plain", "d"]);
}

#[tokio::test]
async fn a_gap_and_an_older_epoch_are_refused_and_nothing_is_stored() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let id = init_producer_id(&mut broker).await;
    produce(&mut broker, idempotent_batch_of(&["a"], id, 1, 0), v1::Acks::Leader).await.expect("first batch");
    let gap = produce(&mut broker, idempotent_batch_of(&["c"], id, 1, 2), v1::Acks::Leader).await;
    let gap = gap.expect_err("a gap");
    assert_eq!(reason_of(&gap), Some(Reason::OutOfOrderSequence), "{}", gap.message());
    assert_status(Err::<(), _>(gap), Code::FailedPrecondition, &["out of order sequence", "expected 1"]);
    let fenced = produce(&mut broker, idempotent_batch_of(&["z"], id, 0, 1), v1::Acks::Leader).await;
    let fenced = fenced.expect_err("fenced");
    assert_eq!(reason_of(&fenced), Some(Reason::InvalidProducerEpoch), "{}", fenced.message());
    assert_status(Err::<(), _>(fenced), Code::FailedPrecondition, &["epoch 0", "fenced"]);
    let invalid = produce(&mut broker, idempotent_batch_of(&["n"], id, 1, -1), v1::Acks::Leader).await;
    assert_status(invalid, Code::InvalidArgument, &["base sequence -1"]);
    assert_eq!(broker.fetch_all_values("t", 0, 0).await.len(), 1);
}

#[tokio::test]
async fn the_partition_remembers_its_producers_across_a_restart() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let id = init_producer_id(&mut broker).await;
    for (i, value) in ["a", "b", "c"].iter().enumerate() {
        let batch = idempotent_batch_of(&[value], id, 0, i as i32);
        produce(&mut broker, batch, v1::Acks::Leader).await.expect("stored");
    }
    broker = broker.restart().await;
    let retry = produce(&mut broker, idempotent_batch_of(&["b"], id, 0, 1), v1::Acks::Leader).await;
    assert_eq!(retry.ok(), Some((1, 1)), "answered from the state the restart kept");
    let gap = produce(&mut broker, idempotent_batch_of(&["e"], id, 0, 4), v1::Acks::Leader).await;
    assert_status(gap, Code::FailedPrecondition, &["expected 3"]);
    assert_eq!(produce(&mut broker, idempotent_batch_of(&["d"], id, 0, 3), v1::Acks::Leader).await.ok(), Some((3, 3)));
}
