//! Durability across restarts: data, topics and committed offsets; and the offset-commit API's bad inputs.

use rill_protocol::v1;
use rill_tests::{assert_status, batch_of, produce_request, TestBroker};
use tonic::Code;

fn commit(group: &str, topic: &str, partition: u32, offset: i64) -> v1::CommitOffsetsRequest {
    v1::CommitOffsetsRequest {
        group: group.into(),
        member_id: String::new(),
        generation: -1,
        offsets: vec![v1::OffsetCommit { topic: topic.into(), partition, offset, metadata: format!("at {offset}") }],
    }
}

fn lookup(group: &str, topic: &str, partition: u32) -> v1::FetchOffsetsRequest {
    v1::FetchOffsetsRequest {
        group: group.into(),
        partitions: vec![v1::TopicPartition { topic: topic.into(), partition }],
    }
}

#[tokio::test]
async fn committed_offsets_and_data_survive_a_restart() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 2).await;
    broker.produce_values("t", 0, &["a", "b", "c"]).await;
    let durable = produce_request("t", Some(1), batch_of(&["durable"], 1), v1::Acks::Durable);
    broker.records.produce(durable).await.unwrap();
    broker.groups.commit_offsets(commit("g1", "t", 0, 2)).await.unwrap();
    broker.groups.commit_offsets(commit("g1", "t", 0, 3)).await.unwrap();
    broker.groups.commit_offsets(commit("g2", "t", 1, 1)).await.unwrap();

    let mut broker = broker.restart().await;
    assert_eq!(broker.fetch_values("t", 0, 0).await.len(), 3);
    assert_eq!(broker.fetch_values("t", 1, 0).await, [(0, "durable".into())]);
    assert_eq!(broker.produce_values("t", 0, &["d"]).await, 3, "appends continue after the restored end");
    let g1 = broker.groups.fetch_offsets(lookup("g1", "t", 0)).await.unwrap().into_inner().offsets;
    assert_eq!((g1[0].offset, g1[0].metadata.as_str()), (3, "at 3"), "the last commit wins");
    assert!(g1[0].commit_time_ms > 0);
    let all = v1::FetchOffsetsRequest { group: "g2".into(), partitions: vec![] };
    let g2 = broker.groups.fetch_offsets(all).await.unwrap().into_inner().offsets;
    assert_eq!(g2.len(), 1);
    assert_eq!((g2[0].topic.as_str(), g2[0].partition, g2[0].offset), ("t", 1, 1));
    let none = broker.groups.fetch_offsets(lookup("g3", "t", 0)).await.unwrap().into_inner().offsets;
    assert_eq!(none[0].offset, -1, "no commit yet");
}

#[tokio::test]
async fn bad_commits_are_refused_and_store_nothing() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    assert_status(broker.groups.commit_offsets(commit("g", "nope", 0, 1)).await, Code::NotFound, &["nope"]);
    broker.assert_serving().await;
    assert_status(broker.groups.commit_offsets(commit("g", "t", 3, 1)).await, Code::NotFound, &["partition 3"]);
    broker.assert_serving().await;
    assert_status(broker.groups.commit_offsets(commit("g", "t", 0, -5)).await, Code::InvalidArgument, &["-5"]);
    broker.assert_serving().await;
    assert_status(broker.groups.commit_offsets(commit("", "t", 0, 1)).await, Code::InvalidArgument, &["group"]);
    broker.assert_serving().await;
    let long = "g".repeat(250);
    assert_status(broker.groups.commit_offsets(commit(&long, "t", 0, 1)).await, Code::InvalidArgument, &["249"]);
    broker.assert_serving().await;
    let mut big = commit("g", "t", 0, 1);
    big.offsets[0].metadata = "m".repeat(5000);
    assert_status(broker.groups.commit_offsets(big).await, Code::ResourceExhausted, &["4096"]);
    broker.assert_serving().await;
    let mut member = commit("g", "t", 0, 1);
    member.member_id = "m-1".into();
    assert_status(broker.groups.commit_offsets(member).await, Code::FailedPrecondition, &["m-1", "not in group"]);
    broker.assert_serving().await;
    let stored = broker.groups.fetch_offsets(lookup("g", "t", 0)).await.unwrap().into_inner().offsets;
    assert_eq!(stored[0].offset, -1, "nothing was stored");
    broker.groups.commit_offsets(commit("g", "t", 0, 0)).await.unwrap();
}

#[tokio::test]
async fn a_second_broker_on_the_same_data_dir_is_refused_until_the_first_stops() {
    let broker = TestBroker::start().await;
    let config = broker.config.clone();
    let second = rill_broker::Broker::start(config.clone()).await;
    let err = second.err().expect("the data dir is locked");
    assert!(err.to_string().contains("in use by another rill broker"), "{err}");
    let _dir = broker.shutdown().await;
    let third = rill_broker::Broker::start(config).await.expect("free once the first has stopped");
    third.shutdown().await;
}
