//! ShareConsume: one share group member's stream (`proto/rill/v1/rill.proto`, "Share groups"). The stream is the
//! membership: its task joins the member, beats its heartbeat on the group's interval while the stream is open
//! (a member need not send anything to stay), serves its fetches and acknowledgements one at a time, and removes
//! it (releasing what it holds) when the stream closes, breaks, or the broker shuts down. The reads and the stores
//! are `share_groups/delivery.rs`'s, as Kafka's ShareFetch runs them, so Kafka and rill members share a group.
//!
//! On a cluster the stream is served by the group's coordinator (elsewhere it is refused `not-coordinator`,
//! naming it, and the client opens it there), which keeps the member as it keeps a Kafka member, and reads and
//! acknowledges for it at each partition's leader (`share_groups/member_reads.rs`). A member whose coordinator
//! moves is refused at its next heartbeat, and joins again at the new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_protocol::v1;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::error::{BrokerError, Result};
use crate::groups::{check_group_id, TopicPartition};
use crate::node::Node;
use crate::share_groups::delivery::Limits;
use crate::share_groups::member_reads::MemberReads;
use crate::share_groups::{AckBatch, ShareError, ShareHeartbeat};

pub type ShareStream = ReceiverStream<std::result::Result<v1::ShareResponse, Status>>;

/// The member a stream keeps.
struct Member {
    group: String,
    id: String,
    topics: std::collections::BTreeSet<String>,
    epoch: i32,
    client_id: String,
    client_host: String,
}

/// Reads the join (the stream's first message), admits the member and starts the task that keeps it.
pub async fn open(
    node: Arc<Node>,
    mut inbound: Streaming<v1::ShareRequest>,
    principal: Principal,
    client_id: String,
    client_host: String,
) -> Result<ShareStream> {
    let first = crate::groups::session::first_message(&mut inbound).await?;
    let Some(v1::share_request::Kind::Join(join)) = first.kind else {
        return Err(BrokerError::invalid("join", "the first message of a ShareConsume stream must be a join"));
    };
    if node.is_shutting_down() {
        return Err(BrokerError::ShuttingDown);
    }
    check_group_id(&join.group)?;
    node.offsets.check_coordinator(&join.group)?;
    if join.topics.is_empty() || join.topics.iter().any(String::is_empty) {
        return Err(BrokerError::invalid("topics", "a share group member subscribes to one topic or more, each named"));
    }
    // Kafka's ShareGroupHeartbeat needs READ on the group, its ShareFetch READ on each topic: both at the join.
    node.authorize(&principal, Operation::Read, &Resource::group(&join.group))?;
    for topic in &join.topics {
        node.authorize(&principal, Operation::Read, &Resource::topic(topic))?;
    }
    if node.groups.knows(&join.group) || node.groups.classic_snapshot(&join.group).is_some() {
        let members = node.groups.snapshot(&join.group).map_or(0, |group| group.members.len());
        return Err(BrokerError::GroupKindMismatch {
            group: join.group,
            members,
            kind: "consumer group",
            other: "share group",
        });
    }
    let mut member = Member {
        group: join.group,
        id: format!("rill-{}", uuid::Uuid::from_u128(rand::random())),
        topics: join.topics.into_iter().collect(),
        epoch: 0,
        client_id,
        client_host,
    };
    if let Err(err) = beat(&node, &mut member).await {
        // The heartbeat may have let the member in before the store failed: out again, so its partitions do not
        // wait for a session timeout with nobody reading them.
        member.epoch = -1;
        let _ = beat(&node, &mut member).await;
        return Err(err);
    }
    tracing::debug!(group = %member.group, member = %member.id, "share group member joined over gRPC");
    let (outbound, responses) = mpsc::channel(2);
    let lock_ms = node.shares.settings_of(&member.group).rules.lock_duration.as_millis();
    let joined =
        v1::ShareJoined { member_id: member.id.clone(), record_lock_ms: u32::try_from(lock_ms).unwrap_or(u32::MAX) };
    let _ = outbound.send(Ok(response(v1::share_response::Kind::Joined(joined)))).await;
    tokio::spawn(keep(node, member, inbound, outbound));
    Ok(ReceiverStream::new(responses))
}

fn response(kind: v1::share_response::Kind) -> v1::ShareResponse {
    v1::ShareResponse { kind: Some(kind) }
}

/// A heartbeat on the member's behalf: joins it (epoch 0), keeps it, or removes it (-1). A new partition's start
/// is stored before the member reads from it. On a cluster, refused once this node no longer coordinates the
/// group; the members that left are told to the other nodes.
async fn beat(node: &Arc<Node>, member: &mut Member) -> Result<()> {
    if member.epoch >= 0 {
        node.offsets.check_coordinator(&member.group)?;
    }
    let answered = node.shares.heartbeat(member.heartbeat(member.epoch), node.as_ref(), Instant::now());
    crate::share_groups::remote::release_departed(node);
    let answer = match answered {
        // The member's session ran out (its stream's task could not beat in time) or its epoch was lost: as a
        // Kafka member would, it joins again with its id, which keeps what it holds.
        Err(ShareError::UnknownMember { .. } | ShareError::FencedEpoch { .. }) if member.epoch > 0 => {
            tracing::info!(group = %member.group, member = %member.id, "share group member joins again");
            let answered = node.shares.heartbeat(member.heartbeat(0), node.as_ref(), Instant::now());
            crate::share_groups::remote::release_departed(node);
            answered.map_err(refusal)?
        }
        answered => answered.map_err(refusal)?,
    };
    crate::share_groups::delivery::save(node, &member.group, answer.to_store).await?;
    member.epoch = answer.member_epoch;
    Ok(())
}

impl Member {
    /// Its heartbeat at `epoch`, naming its topics when it joins.
    fn heartbeat(&self, epoch: i32) -> ShareHeartbeat {
        ShareHeartbeat {
            group: self.group.clone(),
            member_id: self.id.clone(),
            member_epoch: epoch,
            subscribed_topics: (epoch == 0).then(|| self.topics.clone()),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rack: None,
        }
    }
}

fn refusal(err: ShareError) -> BrokerError {
    match err {
        ShareError::GroupFull { group, max } => BrokerError::TooManyMembers { group, limit: max },
        ShareError::TooManyGroups { max } => BrokerError::TooManyGroups { limit: max },
        ShareError::InvalidRequest(reason) => BrokerError::invalid("share request", reason),
        other => BrokerError::SessionEnded { reason: other.to_string() },
    }
}

/// Serves the member until its stream ends, then removes it from the group.
async fn keep(
    node: Arc<Node>,
    mut member: Member,
    mut inbound: Streaming<v1::ShareRequest>,
    outbound: mpsc::Sender<std::result::Result<v1::ShareResponse, Status>>,
) {
    let ended = serve(&node, &mut member, &mut inbound, &outbound).await;
    // Leaving releases every record the member still holds, for the group's other members at once.
    member.epoch = -1;
    if let Err(err) = beat(&node, &mut member).await {
        tracing::debug!(group = %member.group, member = %member.id, error = %err, "share group member's leave");
    }
    tracing::debug!(group = %member.group, member = %member.id, reason = %ended.as_ref().err().map_or("left".into(), |s| s.message().to_owned()), "share group member left");
    if let Err(status) = ended {
        let _ = outbound.send(Err(status)).await;
    }
}

/// The member's requests, one at a time, and its heartbeats between and during them.
async fn serve(
    node: &Arc<Node>,
    member: &mut Member,
    inbound: &mut Streaming<v1::ShareRequest>,
    outbound: &mpsc::Sender<std::result::Result<v1::ShareResponse, Status>>,
) -> std::result::Result<(), Status> {
    let mut shutdown = node.shutdown.clone();
    let shutting_down = async move {
        // A dropped sender means the node will never shut down gracefully: wait forever, not spin.
        if shutdown.wait_for(|is_shutting_down| *is_shutting_down).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(shutting_down);
    let mut next_beat = Instant::now() + node.shares.settings_of(&member.group).heartbeat_interval;
    let mut reads = MemberReads::new(Arc::clone(node), &member.group, &member.id);
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            _ = tokio::time::sleep_until(next_beat) => {
                beat(node, member).await.map_err(Status::from)?;
                next_beat = Instant::now() + node.shares.settings_of(&member.group).heartbeat_interval;
                continue;
            }
            _ = outbound.closed() => return Ok(()),
            _ = &mut shutting_down => {
                return Err(Status::from(BrokerError::ShuttingDown));
            }
        };
        let kind = match message {
            Ok(Some(request)) => request.kind,
            Ok(None) => return Ok(()),
            Err(status) => return Err(Status::cancelled(format!("connection lost: {}", status.message()))),
        };
        let answer = match kind {
            Some(v1::share_request::Kind::Fetch(fetch)) => {
                let acknowledgements = by_partition(&fetch.acknowledgements);
                let limits = Limits::of(
                    node,
                    i64::from(fetch.max_records),
                    i64::from(fetch.max_bytes),
                    i64::from(fetch.max_wait_ms),
                );
                // The acknowledgements' stores and the read run at once; the read sees what they released.
                let stored = reads.acknowledge(acknowledgements);
                let work = async { tokio::join!(stored, reads.read(limits)) };
                tokio::pin!(work);
                // A long wait for records keeps the member's heartbeat going.
                let (stored, delivered) = loop {
                    tokio::select! {
                        done = &mut work => break done,
                        _ = tokio::time::sleep_until(next_beat) => {
                            beat(node, member).await.map_err(Status::from)?;
                            next_beat = Instant::now() + node.shares.settings_of(&member.group).heartbeat_interval;
                        }
                        _ = outbound.closed() => return Ok(()),
                    }
                };
                let partitions = delivered
                    .into_iter()
                    .map(|(partition, delivered)| match delivered {
                        Ok(delivered) => v1::SharePartitionRecords {
                            topic: partition.topic,
                            partition: partition.partition,
                            record_batches: delivered.records,
                            acquired: delivered
                                .acquired
                                .iter()
                                .map(|a| v1::AcquiredRange {
                                    first_offset: a.first,
                                    last_offset: a.last,
                                    delivery_count: u32::from(a.delivery_count),
                                })
                                .collect(),
                            error: String::new(),
                        },
                        Err(err) => v1::SharePartitionRecords {
                            topic: partition.topic,
                            partition: partition.partition,
                            error: err.to_string(),
                            ..Default::default()
                        },
                    })
                    .collect();
                v1::share_response::Kind::Records(v1::ShareRecords { partitions, acknowledgements: results(stored) })
            }
            Some(v1::share_request::Kind::Acknowledge(acknowledge)) => {
                let stored = reads.acknowledge(by_partition(&acknowledge.acknowledgements)).await;
                v1::share_response::Kind::Acknowledged(v1::ShareAcknowledged { acknowledgements: results(stored) })
            }
            Some(v1::share_request::Kind::Join(_)) => {
                return Err(Status::invalid_argument("a member joins once per stream; open a new stream to rejoin"))
            }
            None => return Err(Status::invalid_argument("a share request without a kind")),
        };
        if outbound.send(Ok(response(answer))).await.is_err() {
            return Ok(());
        }
    }
}

/// The acknowledgements grouped by partition (a map: a request may name many).
fn by_partition(acknowledgements: &[v1::ShareAcknowledgement]) -> Vec<(TopicPartition, Vec<AckBatch>)> {
    let mut grouped: BTreeMap<TopicPartition, Vec<AckBatch>> = BTreeMap::new();
    for ack in acknowledgements {
        // A type prost could not name (a newer client's) stays out of range and is refused per partition.
        let types = vec![i8::try_from(ack.r#type).unwrap_or(i8::MAX)];
        let batch = AckBatch { first: ack.first_offset, last: ack.last_offset, types };
        grouped.entry(TopicPartition::new(ack.topic.clone(), ack.partition)).or_default().push(batch);
    }
    grouped.into_iter().collect()
}

fn results(stored: BTreeMap<TopicPartition, std::result::Result<(), String>>) -> Vec<v1::ShareAcknowledgeResult> {
    stored
        .into_iter()
        .map(|(partition, outcome)| v1::ShareAcknowledgeResult {
            topic: partition.topic,
            partition: partition.partition,
            error: outcome.err().unwrap_or_default(),
        })
        .collect()
}
