//! A consumer-group member speaking the raw JoinGroup protocol through the generated tonic client, for tests
//! that drive the coordinator step by step (the client library's `Consumer::subscribe` does this for users).

use std::collections::BTreeSet;
use std::time::Duration;

use rill_protocol::v1::{self, consumer_groups_client::ConsumerGroupsClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// How long a test waits for an assignment that must come.
pub const DEADLINE: Duration = Duration::from_secs(5);

pub struct TestMember {
    requests: mpsc::Sender<v1::GroupRequest>,
    assignments: Streaming<v1::MemberAssignment>,
    pub id: String,
    pub generation: i32,
    pub assigned: BTreeSet<(String, u32)>,
}

pub fn join_request(group: &str, topics: &[&str], session_timeout_ms: u32, assignor: v1::Assignor) -> v1::GroupRequest {
    v1::GroupRequest {
        kind: Some(v1::group_request::Kind::Join(v1::JoinRequest {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            assignor: assignor as i32,
            client_id: "test".into(),
            session_timeout_ms,
        })),
    }
}

impl TestMember {
    /// Joins with the sticky assignor; returns once the first assignment arrived.
    pub async fn join(client: &ConsumerGroupsClient<Channel>, group: &str, topics: &[&str], session_ms: u32) -> Self {
        Self::join_with(client, join_request(group, topics, session_ms, v1::Assignor::Sticky)).await.expect("join")
    }

    pub async fn join_with(
        client: &ConsumerGroupsClient<Channel>,
        join: v1::GroupRequest,
    ) -> Result<Self, tonic::Status> {
        let (requests, rx) = mpsc::channel(16);
        requests.send(join).await.expect("the request stream is open");
        let mut client = client.clone();
        let assignments = client.join_group(ReceiverStream::new(rx)).await?.into_inner();
        let mut member =
            TestMember { requests, assignments, id: String::new(), generation: -1, assigned: BTreeSet::new() };
        member.next().await?;
        Ok(member)
    }

    /// The next assignment (within [`DEADLINE`]), applied to `assigned` and `generation`.
    pub async fn next(&mut self) -> Result<v1::MemberAssignment, tonic::Status> {
        let message = tokio::time::timeout(DEADLINE, self.assignments.message())
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("no assignment within the test deadline"))??
            .ok_or_else(|| tonic::Status::cancelled("the assignment stream ended"))?;
        self.apply(&message);
        Ok(message)
    }

    /// The next assignment if one comes within `wait` (None also if the stream ended).
    pub async fn next_within(&mut self, wait: Duration) -> Option<v1::MemberAssignment> {
        match tokio::time::timeout(wait, self.assignments.message()).await {
            Ok(Ok(Some(message))) => {
                self.apply(&message);
                Some(message)
            }
            _ => None,
        }
    }

    fn apply(&mut self, message: &v1::MemberAssignment) {
        self.id = message.member_id.clone();
        self.generation = message.generation;
        self.assigned =
            message.assigned.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.clone(), *p))).collect();
    }

    /// Acknowledges the latest assignment (also a heartbeat).
    pub async fn ack(&self) {
        self.send(v1::group_request::Kind::Heartbeat(v1::Heartbeat { acked_generation: self.generation })).await;
    }

    pub async fn leave(&self) {
        self.send(v1::group_request::Kind::Leave(v1::LeaveRequest {})).await;
    }

    async fn send(&self, kind: v1::group_request::Kind) {
        self.requests.send(v1::GroupRequest { kind: Some(kind) }).await.expect("the request stream is open");
    }

    /// Waits for the end of the assignment stream and returns its final status (Ok for a clean end).
    pub async fn ended(&mut self) -> Result<(), tonic::Status> {
        loop {
            match tokio::time::timeout(DEADLINE * 2, self.assignments.message()).await {
                Err(_) => panic!("the stream did not end within the deadline"),
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(status)) => return Err(status),
            }
        }
    }

    pub fn partitions(&self) -> Vec<u32> {
        self.assigned.iter().map(|(_, p)| *p).collect()
    }
}

/// Acknowledges assignments (and heartbeats) for every member until the group is stable and nobody has an
/// unread assignment; panics after [`DEADLINE`].
pub async fn settle(client: &ConsumerGroupsClient<Channel>, group: &str, members: &mut [&mut TestMember]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        for member in members.iter_mut() {
            while member.next_within(Duration::from_millis(20)).await.is_some() {}
            member.ack().await;
        }
        let described = describe(client, group).await;
        let is_acked = described.members.iter().all(|m| m.acked_generation == m.member_generation);
        if described.state == v1::GroupState::Stable as i32 && is_acked {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "group {group} did not settle: {described:?}");
    }
}

pub async fn describe(client: &ConsumerGroupsClient<Channel>, group: &str) -> v1::DescribeGroupResponse {
    let mut client = client.clone();
    client.describe_group(v1::DescribeGroupRequest { group: group.into() }).await.expect("describe").into_inner()
}

/// Asserts that no partition appears in two members' owned sets (assigned or revoking).
pub fn assert_no_partition_owned_twice(described: &v1::DescribeGroupResponse) {
    let mut seen = BTreeSet::new();
    for member in &described.members {
        for tp in member.assigned.iter().chain(&member.revoking) {
            for p in &tp.partitions {
                assert!(seen.insert((tp.topic.clone(), *p)), "{}-{p} owned twice: {described:?}", tp.topic);
            }
        }
    }
}
