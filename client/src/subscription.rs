//! One `Records/Subscribe` call: the broker pushes a partition's new batches as they are appended, so a consumer
//! at the tail gets each batch without a fetch having to reach the broker first.
//!
//! Why: a long-poll `Fetch` is a new HTTP/2 stream per answer (HEADERS, DATA, trailers, a task on the broker),
//! and after each answer the next fetch must cross to the broker before the next batch can come back
//! (docs/benchmarks.md, "Latency: the consumer at the tail on a Subscribe stream"). A push is one DATA frame.
//!
//! Flow control: a message is read only when the consumer asks for the next one, and the HTTP/2 window is
//! released only for bytes taken in, so a slow consumer holds at most one message here, the stream's window in
//! h2, and the broker's `subscribe_queue_batches`; the broker's push then waits. Dropping a `Subscription`
//! resets its stream, which ends the broker's push task.

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use prost::Message;
use rill_protocol::grpc_frames::{Chunks, GRPC_HEADER_BYTES};
use rill_protocol::v1::{SubscribeRequest, SubscribeResponse};
use tonic::{Code, Status};

use crate::connection::BrokerChannel;
use crate::http2::status_of;

const SUBSCRIBE_PATH: &str = "/rill.v1.Records/Subscribe";

/// An open subscription to one partition.
pub(crate) struct Subscription {
    answers: RecvStream,
    unread: Chunks,
    /// Kept so the request side is not reset before the broker has read the request.
    _request: SendStream<Bytes>,
    max_message_bytes: usize,
    /// The offset the next push starts at.
    next_offset: i64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("next_offset", &self.next_offset).finish_non_exhaustive()
    }
}

impl Subscription {
    /// Opens the call and waits for the broker to accept it (its answer's headers): a refusal (not the leader,
    /// a fenced epoch, an offset out of range, UNIMPLEMENTED from an older node) is the error.
    pub(crate) async fn open(
        channel: &BrokerChannel,
        request: &SubscribeRequest,
        max_message_bytes: usize,
    ) -> Result<Self, Status> {
        let (response, mut send) = channel.open_stream(SUBSCRIBE_PATH).await?;
        send.send_data(framed(request)?, true).map_err(status_of)?;
        let answers = accepted(response).await?;
        Ok(Self { answers, unread: Chunks::default(), _request: send, max_message_bytes, next_offset: request.offset })
    }

    /// Where the next push starts (the end of the last one, or the subscription's start).
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Waits for the next push. The stream's end is an error: the broker's status (not the leader any more, the
    /// partition closed, shutting down), or UNAVAILABLE if the stream or the connection broke.
    pub(crate) async fn next(&mut self) -> Result<SubscribeResponse, Status> {
        loop {
            if let Some(pushed) = self.whole_message()? {
                if pushed.next_offset > self.next_offset {
                    self.next_offset = pushed.next_offset;
                }
                return Ok(pushed);
            }
            match self.answers.data().await {
                Some(Ok(data)) => {
                    let _ = self.answers.flow_control().release_capacity(data.len());
                    self.unread.push(data);
                }
                Some(Err(err)) => return Err(broken(status_of(err))),
                None => return Err(self.ended().await),
            }
        }
    }

    /// The next whole message read so far, decoded.
    fn whole_message(&mut self) -> Result<Option<SubscribeResponse>, Status> {
        self.unread.next_message(self.max_message_bytes, "the client's max_message_bytes", "pushed message")
    }

    /// Why the stream ended: the trailers' status, else UNAVAILABLE (a subscription never ends on its own).
    async fn ended(&mut self) -> Status {
        let ended = || Status::unavailable("the broker ended the subscription");
        match self.answers.trailers().await {
            Ok(Some(trailers)) => {
                Status::from_header_map(&trailers).filter(|status| status.code() != Code::Ok).unwrap_or_else(ended)
            }
            Ok(None) => ended(),
            Err(err) => broken(status_of(err)),
        }
    }
}

fn framed(request: &SubscribeRequest) -> Result<Bytes, Status> {
    let len = request.encoded_len();
    let mut out = Vec::with_capacity(GRPC_HEADER_BYTES + len);
    out.push(0); // not compressed
    out.extend_from_slice(&(len as u32).to_be_bytes()); // a few fields and a topic name
    request.encode(&mut out).map_err(|e| Status::internal(format!("cannot encode a subscribe request: {e}")))?;
    Ok(Bytes::from(out))
}

/// The answer's headers: a "trailers-only" answer (a refusal) carries its status there.
async fn accepted(response: ResponseFuture) -> Result<RecvStream, Status> {
    let response = response.await.map_err(|err| broken(status_of(err)))?;
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    if response.status() != http::StatusCode::OK {
        return Err(Status::unavailable(format!("the broker answered HTTP {}", response.status())));
    }
    Ok(response.into_body())
}

/// A broken stream is a broker or connection that went away: UNAVAILABLE, which the consumer retries.
fn broken(status: Status) -> Status {
    match status.code() {
        Code::Unavailable | Code::Unimplemented => status,
        _ => Status::unavailable(format!("the subscription broke: {}", status.message())),
    }
}
