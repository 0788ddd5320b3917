//! One long-lived `Records/ProduceStream` call per broker connection, carrying every produce to that broker.
//!
//! Why: a unary produce is a new HTTP/2 stream (HEADERS each way, trailers back), and on the broker a task of
//! its own; over an open stream a produce is one gRPC message each way (docs/benchmarks.md, "Latency: one
//! produce stream per connection"). The broker answers in any order, each answer naming its request's
//! correlation id.
//!
//! No task of our own reads the answers: the callers waiting for theirs take turns. A caller whose answer is
//! not in yet polls the stream's answers itself (h2 then wakes it when more arrive), hands each answer to the
//! caller it belongs to, and when it leaves with its own (or gives up), wakes another waiting caller to take
//! its place. So an ack crosses no task between h2's connection task and the caller.
//!
//! A stream that breaks (the connection, a reset, the broker ending it) fails the produces waiting on it with
//! UNAVAILABLE, which the producer retries (idempotent: no duplicate); the next produce opens a new stream. A
//! broker that answers UNIMPLEMENTED (a node older than the method) is remembered, and produces to it go as
//! unary calls from then on.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use prost::Message;
use rill_protocol::grpc_frames::{Chunks, GRPC_HEADER_BYTES};
use rill_protocol::v1::{produce_stream_response::Outcome, ProduceRefusal, ProduceResponse, ProduceStreamResponse};
use tonic::{Code, Status};

use crate::connection::BrokerChannel;
use crate::http2::status_of;

pub(crate) const PRODUCE_STREAM_PATH: &str = "/rill.v1.Records/ProduceStream";

/// The produce stream of one broker connection: none until the first produce, and again after one broke.
#[derive(Default)]
pub(crate) struct ProduceStream {
    open: tokio::sync::Mutex<Option<Arc<OpenStream>>>,
    /// The broker answered UNIMPLEMENTED: produces to it are unary calls.
    is_unsupported: AtomicBool,
}

struct OpenStream {
    state: Mutex<StreamState>,
}

struct StreamState {
    send: SendStream<Bytes>,
    /// The answer's headers, until they come; then `answers`.
    response: Option<ResponseFuture>,
    answers: Option<RecvStream>,
    unread: Chunks,
    waiting: HashMap<u64, Waiting>,
    next_correlation_id: u64,
    /// Why the stream is over, once it is.
    broken: Option<Status>,
}

#[derive(Default)]
struct Waiting {
    answer: Option<Result<ProduceResponse, Status>>,
    waker: Option<Waker>,
}

impl std::fmt::Debug for ProduceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProduceStream").field("is_unsupported", &self.is_unsupported()).finish_non_exhaustive()
    }
}

impl ProduceStream {
    pub(crate) fn is_unsupported(&self) -> bool {
        self.is_unsupported.load(Ordering::Relaxed)
    }

    /// Sends one produce, `chunks` being its `ProduceRequest` laid out by `records_call` behind the envelope
    /// `envelope(correlation_id)` writes, and waits for its answer. UNIMPLEMENTED means the broker has no such
    /// method (and the caller should send the produce as a unary call).
    pub(crate) async fn produce(
        &self,
        channel: &BrokerChannel,
        envelope: impl FnOnce(u64) -> Result<VecDeque<Bytes>, Status>,
    ) -> Result<ProduceResponse, Status> {
        let stream = self.stream(channel).await?;
        let correlation_id = stream.send(envelope)?;
        let answer = Answer { stream: Arc::clone(&stream), correlation_id }.await;
        if let Err(status) = &answer {
            if status.code() == Code::Unimplemented {
                self.is_unsupported.store(true, Ordering::Relaxed);
            }
            if stream.is_broken() {
                self.forget(&stream).await;
            }
        }
        answer
    }

    async fn stream(&self, channel: &BrokerChannel) -> Result<Arc<OpenStream>, Status> {
        let mut open = self.open.lock().await;
        if let Some(stream) = open.as_ref().filter(|stream| !stream.is_broken()) {
            return Ok(Arc::clone(stream));
        }
        let (response, send) = channel.open_stream(PRODUCE_STREAM_PATH).await?;
        let state = StreamState {
            send,
            response: Some(response),
            answers: None,
            unread: Chunks::default(),
            waiting: HashMap::new(),
            next_correlation_id: 0,
            broken: None,
        };
        let stream = Arc::new(OpenStream { state: Mutex::new(state) });
        *open = Some(Arc::clone(&stream));
        Ok(stream)
    }

    async fn forget(&self, broken: &Arc<OpenStream>) {
        let mut open = self.open.lock().await;
        if open.as_ref().is_some_and(|stream| Arc::ptr_eq(stream, broken)) {
            *open = None;
        }
    }
}

impl OpenStream {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_broken(&self) -> bool {
        self.lock().broken.is_some()
    }

    /// Writes one request's chunks to the stream, whole: the lock keeps two requests' chunks from interleaving.
    fn send(&self, envelope: impl FnOnce(u64) -> Result<VecDeque<Bytes>, Status>) -> Result<u64, Status> {
        let mut state = self.lock();
        if let Some(status) = &state.broken {
            return Err(status.clone());
        }
        let correlation_id = state.next_correlation_id;
        state.next_correlation_id += 1;
        let chunks = envelope(correlation_id)?;
        for chunk in chunks {
            if let Err(err) = state.send.send_data(chunk, false) {
                let status = broken_status(status_of(err));
                state.fail_all(status.clone());
                return Err(status);
            }
        }
        state.waiting.insert(correlation_id, Waiting::default());
        Ok(correlation_id)
    }
}

impl StreamState {
    /// Reads what answers have come, handing each to its caller; registers `cx` to be woken when more come.
    fn poll_answers(&mut self, cx: &mut Context<'_>) {
        if let Some(response) = &mut self.response {
            let Poll::Ready(response) = Pin::new(response).poll(cx) else { return };
            self.response = None;
            match response {
                Err(err) => return self.fail_all(broken_status(status_of(err))),
                Ok(response) => {
                    // A "trailers-only" answer (UNIMPLEMENTED from an older node, a refusal of the call) carries
                    // its status in the headers.
                    if let Some(status) = Status::from_header_map(response.headers()) {
                        if status.code() != Code::Ok {
                            return self.fail_all(status);
                        }
                    }
                    self.answers = Some(response.into_body());
                }
            }
        }
        let Some(mut answers) = self.answers.take() else { return };
        let ended = loop {
            match answers.poll_data(cx) {
                Poll::Pending => break None,
                Poll::Ready(Some(Ok(data))) => {
                    let _ = answers.flow_control().release_capacity(data.len());
                    self.unread.push(data);
                    if let Err(status) = self.hand_out_answers() {
                        break Some(status);
                    }
                }
                Poll::Ready(Some(Err(err))) => break Some(broken_status(status_of(err))),
                Poll::Ready(None) => {
                    let ended = "the broker ended the produce stream";
                    break match answers.poll_trailers(cx) {
                        Poll::Pending => None,
                        Poll::Ready(Ok(Some(trailers))) => Some(
                            Status::from_header_map(&trailers)
                                .filter(|status| status.code() != Code::Ok)
                                .unwrap_or_else(|| Status::unavailable(ended)),
                        ),
                        Poll::Ready(Ok(None)) => Some(Status::unavailable(ended)),
                        Poll::Ready(Err(err)) => Some(broken_status(status_of(err))),
                    };
                }
            }
        };
        match ended {
            None => self.answers = Some(answers),
            Some(why) => self.fail_all(why),
        }
    }

    /// Decodes each whole answer read so far and hands it to its caller.
    fn hand_out_answers(&mut self) -> Result<(), Status> {
        while self.unread.remaining() >= GRPC_HEADER_BYTES {
            let mut header = [0u8; GRPC_HEADER_BYTES];
            self.unread.peek(&mut header);
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if self.unread.remaining() < GRPC_HEADER_BYTES + len {
                return Ok(());
            }
            self.unread.advance(GRPC_HEADER_BYTES);
            let mut message = (&mut self.unread).take(len);
            let decoded = ProduceStreamResponse::decode(&mut message);
            let rest = message.remaining();
            self.unread.advance(rest);
            let answer = decoded
                .map_err(|e| Status::internal(format!("cannot decode the broker's produce stream answer: {e}")))?;
            let outcome = match answer.outcome {
                Some(Outcome::Produced(produced)) => Ok(produced),
                Some(Outcome::Refused(refused)) => Err(refusal_status(refused)),
                None => Err(Status::internal("the broker's produce stream answer has no outcome")),
            };
            // An id nobody waits for is a caller that gave up (its timeout): nothing to hand it to.
            if let Some(waiting) = self.waiting.get_mut(&answer.correlation_id) {
                waiting.answer = Some(outcome);
                if let Some(waker) = waiting.waker.take() {
                    waker.wake();
                }
            }
        }
        Ok(())
    }

    fn fail_all(&mut self, status: Status) {
        tracing::debug!(error = %status, waiting = self.waiting.len(), "produce stream ended");
        self.send.send_reset(h2::Reason::CANCEL);
        self.response = None;
        self.answers = None;
        for waiting in self.waiting.values_mut() {
            waiting.answer.get_or_insert_with(|| Err(status.clone()));
            if let Some(waker) = waiting.waker.take() {
                waker.wake();
            }
        }
        self.broken = Some(status);
    }

    /// Wakes a caller still waiting, to read the answers in place of one that leaves.
    fn wake_another(&mut self) {
        if let Some(waker) = self.waiting.values_mut().find_map(|waiting| waiting.waker.take()) {
            waker.wake();
        }
    }
}

/// A broken stream is a broker or connection that went away: UNAVAILABLE, which the producer retries.
/// The status a refused produce would have had as a unary call: its code, message, details (the typed reason)
/// and text metadata (the leader a `not-leader` names; an entry that is not a valid header is dropped).
fn refusal_status(refused: ProduceRefusal) -> Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in &refused.metadata {
        let key = tonic::metadata::AsciiMetadataKey::from_bytes(key.as_bytes());
        if let (Ok(key), Ok(value)) = (key, value.parse()) {
            metadata.insert(key, value);
        }
    }
    Status::with_details_and_metadata(Code::from_i32(refused.code), refused.message, refused.details, metadata)
}

fn broken_status(status: Status) -> Status {
    match status.code() {
        Code::Unavailable | Code::Unimplemented => status,
        _ => Status::unavailable(format!("the produce stream broke: {}", status.message())),
    }
}

/// One caller's wait for its answer.
struct Answer {
    stream: Arc<OpenStream>,
    correlation_id: u64,
}

impl Future for Answer {
    type Output = Result<ProduceResponse, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.stream.lock();
        let has_answer = |state: &StreamState| {
            state.waiting.get(&self.correlation_id).is_none_or(|waiting| waiting.answer.is_some())
        };
        if !has_answer(&state) && state.broken.is_none() {
            state.poll_answers(cx);
        }
        match state.waiting.get_mut(&self.correlation_id) {
            None => Poll::Ready(Err(Status::internal("a produce stream answer was taken twice"))),
            Some(waiting) => match waiting.answer.take() {
                Some(answer) => {
                    state.waiting.remove(&self.correlation_id);
                    // This caller may be the one h2 would wake for the next answer.
                    state.wake_another();
                    Poll::Ready(answer)
                }
                None => {
                    waiting.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let mut state = self.stream.lock();
        if state.waiting.remove(&self.correlation_id).is_some() {
            // Given up before its answer (a timeout): another caller reads in its place.
            state.wake_another();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, RequestContext};
    use rill_protocol::reason::{Reason, LEADER_ADDRESS_KEY};

    #[test]
    fn a_stream_refusal_naming_the_leader_reads_as_a_not_leader_error_with_its_address() {
        let reason = Reason::NotLeader.status("node 1 does not lead");
        let refusal = ProduceRefusal {
            code: reason.code() as i32,
            message: "node 1 does not lead partition 2 of topic \"orders\"; node 3 at 127.0.0.1:9094 does".into(),
            details: reason.details().to_vec().into(),
            metadata: [(LEADER_ADDRESS_KEY.to_owned(), "127.0.0.1:9094".to_owned()), ("bad key\n".into(), "x".into())]
                .into_iter()
                .collect(),
        };
        let error = Error::from_status(&refusal_status(refusal), RequestContext::partition("orders", 2));
        assert!(
            matches!(&error, Error::NotLeader { leader_address: Some(address), .. } if address == "127.0.0.1:9094"),
            "{error:?}"
        );
    }
}
