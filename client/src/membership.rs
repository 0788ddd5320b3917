//! Group membership for a subscribed [`crate::Consumer`]: one background task per subscription that keeps the
//! member's JoinGroup stream (the protocol is in `proto/rill/v1/rill.proto`, above `service ConsumerGroups`).
//!
//! The task joins, heartbeats every `heartbeat_interval_ms` the broker asks for, forwards each assignment, and
//! acknowledges an assignment as soon as the consumer reports it applied. It never touches partitions itself:
//! the consumer applies assignments inside `poll`, where it owns the positions it must commit first.
//!
//! Both directions are `watch` channels holding only the latest value (bounded by construction): an assignment
//! is the member's whole set, so the consumer only ever needs the newest one, and an acknowledgement names the
//! newest generation applied. If the stream breaks (broker restart, session expired), the task publishes
//! "no assignment" (the consumer drops its partitions without committing: they may be someone else's now)
//! and rejoins as a new member after `retry_backoff`. Dropping the [`Membership`] makes the task send a
//! leave and end.

use std::collections::BTreeSet;
use std::time::Duration;

use rill_protocol::v1::{self, group_request::Kind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connection::Client;
use crate::error::{Error, RequestContext, Result};

/// How the broker spreads a group's partitions over its members (server-side). The group's first member
/// chooses; all members must ask for the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupAssignor {
    /// Balanced, and members keep their partitions through rebalances unless balance needs them to move.
    #[default]
    Sticky,
    /// Per topic, consecutive ranges of partitions per member (co-partitioned topics line up).
    Range,
    /// Partitions dealt to the members in turn.
    RoundRobin,
}

impl GroupAssignor {
    fn to_wire(self) -> v1::Assignor {
        match self {
            GroupAssignor::Sticky => v1::Assignor::Sticky,
            GroupAssignor::Range => v1::Assignor::Range,
            GroupAssignor::RoundRobin => v1::Assignor::RoundRobin,
        }
    }
}

/// The member's latest assignment from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupAssignment {
    pub member_id: String,
    pub generation: i32,
    pub partitions: BTreeSet<(String, u32)>,
}

/// What the task publishes. `incarnation` counts joins: a new one means a new member id, and partitions of
/// the previous incarnation are lost, never to be committed.
#[derive(Debug, Clone)]
pub(crate) struct MemberState {
    pub incarnation: u64,
    pub assignment: Option<GroupAssignment>,
    /// The subscription failed for good (e.g. the broker refused the join as invalid).
    pub failure: Option<Error>,
}

/// What the consumer reports back: the (incarnation, generation) it has applied.
pub(crate) type Applied = (u64, i32);

pub(crate) struct Membership {
    pub group: String,
    pub state: watch::Receiver<MemberState>,
    pub applied: watch::Sender<Applied>,
    /// Not aborted on drop: dropping `applied` makes the task send a leave and end by itself.
    _task: JoinHandle<()>,
}

pub(crate) struct JoinSettings {
    pub group: String,
    pub topics: Vec<String>,
    pub assignor: GroupAssignor,
    pub session_timeout: Duration,
    pub client_id: String,
    pub retry_backoff: Duration,
}

impl Membership {
    /// Starts the membership task; the first assignment arrives on `state`.
    pub fn start(client: Client, settings: JoinSettings) -> Membership {
        let initial = MemberState { incarnation: 0, assignment: None, failure: None };
        let (state_tx, state) = watch::channel(initial);
        let (applied, applied_rx) = watch::channel((0, -1));
        let group = settings.group.clone();
        let task = tokio::spawn(run(client, settings, state_tx, applied_rx));
        Membership { group, state, applied, _task: task }
    }
}

/// How one incarnation of the membership ended.
enum Ended {
    /// The consumer dropped the membership: leave sent, stop.
    Left,
    /// The stream broke or the broker removed the member: rejoin.
    Lost(String),
    /// The broker refused the join as wrong: retrying cannot help.
    Refused(Error),
}

async fn run(
    client: Client,
    settings: JoinSettings,
    state: watch::Sender<MemberState>,
    mut applied: watch::Receiver<Applied>,
) {
    let mut incarnation = 0u64;
    loop {
        incarnation += 1;
        match member(&client, &settings, incarnation, &state, &mut applied).await {
            Ended::Left => return,
            Ended::Refused(error) => {
                tracing::warn!(group = %settings.group, %error, "the broker refused the group join");
                state.send_replace(MemberState { incarnation, assignment: None, failure: Some(error) });
                return;
            }
            Ended::Lost(reason) => {
                tracing::info!(group = %settings.group, %reason, "group membership lost; rejoining");
                state.send_replace(MemberState { incarnation, assignment: None, failure: None });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_backoff) => {}
            _ = consumer_gone(&applied) => return,
        }
    }
}

/// One incarnation: join, then heartbeat and forward assignments until the stream ends.
async fn member(
    client: &Client,
    settings: &JoinSettings,
    incarnation: u64,
    state: &watch::Sender<MemberState>,
    applied: &mut watch::Receiver<Applied>,
) -> Ended {
    // A few messages at most are ever queued: one heartbeat per interval and one per applied assignment.
    let (requests, outgoing) = mpsc::channel(8);
    let join = v1::JoinRequest {
        group: settings.group.clone(),
        topics: settings.topics.clone(),
        assignor: settings.assignor.to_wire() as i32,
        client_id: settings.client_id.clone(),
        session_timeout_ms: u32::try_from(settings.session_timeout.as_millis()).unwrap_or(u32::MAX),
    };
    if requests.send(v1::GroupRequest { kind: Some(Kind::Join(join)) }).await.is_err() {
        return Ended::Lost("request queue closed".into());
    }
    let stream = tokio_stream_from(outgoing);
    let mut groups = client.groups_for(&settings.group);
    let joined = tokio::select! {
        joined = groups.join_group(stream) => joined,
        _ = consumer_gone(applied) => return Ended::Left,
    };
    let mut responses = match joined {
        Ok(response) => response.into_inner(),
        Err(status) => return classify(client, &settings.group, &status),
    };
    let mut heartbeat = tokio::time::interval(settings.session_timeout / 3);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation_sent = -1;
    loop {
        tokio::select! {
            message = responses.message() => match message {
                Ok(Some(assignment)) => {
                    let interval = Duration::from_millis(u64::from(assignment.heartbeat_interval_ms.max(1)));
                    if interval != heartbeat.period() {
                        heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    }
                    let partitions = assignment
                        .assigned
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.clone(), *p)))
                        .collect();
                    let assignment = GroupAssignment {
                        member_id: assignment.member_id,
                        generation: assignment.generation,
                        partitions,
                    };
                    state.send_replace(MemberState { incarnation, assignment: Some(assignment), failure: None });
                }
                Ok(None) => return Ended::Lost("the broker ended the membership stream".into()),
                Err(status) => return classify(client, &settings.group, &status),
            },
            _ = heartbeat.tick() => {
                let acked = acked_generation(applied, incarnation);
                if requests.send(heartbeat_request(acked)).await.is_err() {
                    return Ended::Lost("request stream closed".into());
                }
            }
            changed = applied.changed() => {
                if changed.is_err() {
                    let _ = requests.send(v1::GroupRequest { kind: Some(Kind::Leave(v1::LeaveRequest {})) }).await;
                    // Wait for the broker to end the stream, so the leave is delivered before the task ends.
                    let _ = tokio::time::timeout(settings.session_timeout, async {
                        while let Ok(Some(_)) = responses.message().await {}
                    }).await;
                    return Ended::Left;
                }
                let acked = acked_generation(applied, incarnation);
                if acked != generation_sent {
                    generation_sent = acked;
                    if requests.send(heartbeat_request(acked)).await.is_err() {
                        return Ended::Lost("request stream closed".into());
                    }
                }
            }
        }
    }
}

/// Resolves once the consumer dropped its side. Watches a clone, so the caller's receiver keeps its own view
/// of which acknowledgement it has seen.
async fn consumer_gone(applied: &watch::Receiver<Applied>) {
    let mut probe = applied.clone();
    while probe.changed().await.is_ok() {}
}

fn tokio_stream_from(rx: mpsc::Receiver<v1::GroupRequest>) -> impl futures_util::Stream<Item = v1::GroupRequest> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|message| (message, rx)) })
}

fn acked_generation(applied: &watch::Receiver<Applied>, incarnation: u64) -> i32 {
    let (applied_incarnation, generation) = *applied.borrow();
    if applied_incarnation == incarnation {
        generation
    } else {
        -1
    }
}

fn heartbeat_request(acked_generation: i32) -> v1::GroupRequest {
    v1::GroupRequest { kind: Some(Kind::Heartbeat(v1::Heartbeat { acked_generation })) }
}

/// A join the broker refused as wrong is final; anything else (unreachable, restarting, session expired, the
/// group moved to another coordinator, which the client learns here) is worth a rejoin.
fn classify(client: &Client, group: &str, status: &tonic::Status) -> Ended {
    let error = Error::from_status(status, RequestContext::default());
    client.learn_coordinator(group, &error);
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::NotFound => Ended::Refused(error),
        tonic::Code::ResourceExhausted if !error.is_retriable() => Ended::Refused(error),
        _ => Ended::Lost(error.to_string()),
    }
}

/// Convenience for the consumer: the result of a subscription that failed for good.
pub(crate) fn failure(state: &MemberState) -> Result<()> {
    match &state.failure {
        Some(error) => Err(error.clone()),
        None => Ok(()),
    }
}
