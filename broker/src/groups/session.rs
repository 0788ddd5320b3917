//! One member's JoinGroup stream: admission, then a task that keeps the session.
//!
//! The task owns the member's side of the protocol: each message from the member resets its session timer and
//! a heartbeat's acknowledgement goes to the coordinator; a leave, a closed or broken request stream, the
//! response stream being dropped, an expired session or the broker shutting down all end the session, and the
//! member is removed at once. Assignments travel the other way through a `watch` channel that the coordinator
//! writes: it holds only the latest whole assignment, so a slow member costs one message of memory, never a
//! queue, and it never misses the newest state.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rill_protocol::v1;
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::Stream;
use tonic::{Code, Status, Streaming};

use super::{partition_counts_of, Joined, MemberView};
use crate::error::{BrokerError, Result};
use crate::node::Node;

/// How long a new stream may take to send its join before the broker gives up on it.
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// The response side of a JoinGroup call: the member's assignments, then the end of its session.
pub struct AssignmentStream {
    views: WatchStream<MemberView>,
    is_done: bool,
}

impl Stream for AssignmentStream {
    type Item = std::result::Result<v1::MemberAssignment, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.is_done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.views).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(MemberView::Assigned(assignment))) => Poll::Ready(Some(Ok(assignment))),
            Poll::Ready(Some(MemberView::Ended { code, message })) => {
                self.is_done = true;
                Poll::Ready(Some(Err(Status::new(code, message))))
            }
            Poll::Ready(Some(MemberView::Moved(status))) => {
                self.is_done = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(Some(MemberView::Left)) | Poll::Ready(None) => {
                self.is_done = true;
                Poll::Ready(None)
            }
        }
    }
}

/// A membership stream's first message (its join), as JoinGroup and ShareConsume read it: refused when the
/// stream closes or breaks first, or sends nothing within [`JOIN_WAIT`].
pub async fn first_message<T: prost::Message + Default>(inbound: &mut Streaming<T>) -> Result<T> {
    match tokio::time::timeout(JOIN_WAIT, inbound.message()).await {
        Ok(Ok(Some(message))) => Ok(message),
        Ok(Ok(None)) => Err(BrokerError::invalid("join", "the stream closed before its join")),
        Ok(Err(status)) => Err(BrokerError::SessionEnded { reason: status.message().to_owned() }),
        Err(_) => Err(BrokerError::invalid("join", format!("no join within {} ms", JOIN_WAIT.as_millis()))),
    }
}

/// Reads the join (the stream's first message), admits the member and starts its session task.
pub async fn open(
    node: Arc<Node>,
    mut inbound: Streaming<v1::GroupRequest>,
    principal: crate::auth::Principal,
) -> Result<AssignmentStream> {
    let first = first_message(&mut inbound).await?;
    let Some(v1::group_request::Kind::Join(join)) = first.kind else {
        return Err(BrokerError::invalid("join", "the first message of a JoinGroup stream must be a join"));
    };
    if node.is_shutting_down() {
        return Err(BrokerError::ShuttingDown);
    }
    // Kafka's JoinGroup needs READ on the group; its consumers then fetch, which needs READ on each topic:
    // refused here, at the join, rather than at every fetch of an assignment that cannot be read.
    use crate::auth::acl::{Operation, Resource};
    node.authorize(&principal, Operation::Read, &Resource::group(&join.group))?;
    for topic in &join.topics {
        node.authorize(&principal, Operation::Read, &Resource::topic(topic))?;
    }
    node.offsets.check_coordinator(&join.group)?;
    if let Some(view) = node.shares.describe(&join.group, tokio::time::Instant::now()) {
        return Err(BrokerError::GroupKindMismatch {
            group: join.group,
            members: view.members.len(),
            kind: "share group (KIP-932)",
            other: "rill (gRPC)",
        });
    }
    let (joined, views) = node.groups.join(join, |topics| partition_counts_of(&node, topics))?;
    let views = WatchStream::new(views);
    tokio::spawn(keep_session(node, joined, inbound));
    Ok(AssignmentStream { views, is_done: false })
}

/// How a session ended, for the log and the member's final status.
enum End {
    Left,
    Failed(Code, String),
}

async fn keep_session(node: Arc<Node>, joined: Joined, mut inbound: Streaming<v1::GroupRequest>) {
    let end = run(&node, &joined, &mut inbound).await;
    let reason = match &end {
        End::Left => "left".to_owned(),
        End::Failed(_, message) => message.clone(),
    };
    node.groups.remove(&joined.group, &joined.member_id, |topics| partition_counts_of(&node, topics), &reason);
    if matches!(*joined.updates.borrow(), MemberView::Moved(_)) {
        return;
    }
    joined.updates.send_replace(match end {
        End::Left => MemberView::Left,
        End::Failed(code, message) => MemberView::Ended { code, message },
    });
}

async fn run(node: &Node, joined: &Joined, inbound: &mut Streaming<v1::GroupRequest>) -> End {
    let mut shutdown = node.shutdown.clone();
    let shutting_down = async move {
        // A dropped sender means the node will never shut down gracefully: wait forever, not spin.
        if shutdown.wait_for(|is_shutting_down| *is_shutting_down).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(shutting_down);
    let session = tokio::time::sleep(joined.session_timeout);
    tokio::pin!(session);
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            _ = &mut session => {
                let ms = joined.session_timeout.as_millis();
                return End::Failed(Code::FailedPrecondition, format!(
                    "session timed out: member {:?} of group {:?} sent nothing for {ms} ms and was removed; rejoin",
                    joined.member_id, joined.group
                ));
            }
            _ = joined.updates.closed() => return End::Failed(Code::Cancelled, "the member stopped listening".into()),
            _ = &mut shutting_down => {
                return End::Failed(Code::Unavailable, BrokerError::ShuttingDown.to_string());
            }
        };
        session.as_mut().reset(Instant::now() + joined.session_timeout);
        let kind = match message {
            Ok(Some(request)) => request.kind,
            Ok(None) => return End::Left,
            Err(status) => return End::Failed(Code::Cancelled, format!("connection lost: {}", status.message())),
        };
        match kind {
            Some(v1::group_request::Kind::Heartbeat(beat)) => {
                if let Err(err) = node.groups.heartbeat(&joined.group, &joined.member_id, beat.acked_generation) {
                    return End::Failed(err.code(), err.to_string());
                }
            }
            Some(v1::group_request::Kind::Leave(_)) => return End::Left,
            Some(v1::group_request::Kind::Join(_)) => {
                return End::Failed(
                    Code::InvalidArgument,
                    "a member joins once per stream; open a new stream to rejoin".into(),
                )
            }
            None => return End::Failed(Code::InvalidArgument, "a group request without a kind".into()),
        }
    }
}
