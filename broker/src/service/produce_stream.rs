//! `Records/ProduceStream`: many produces over one long-lived HTTP/2 stream, served in the one task hyper runs
//! for the stream.
//!
//! Why: a unary produce opens a stream (HEADERS each way, trailers back) and hyper spawns a task for it; for a
//! lone 1 KB record that was most of the "HTTP/2 transfer + broker decode" hop (docs/benchmarks.md, "Latency:
//! one produce stream per connection"). Here a produce is one gRPC message each way on a stream already open.
//!
//! The answer's body is the whole state machine: when hyper polls it for the next frame, it reads the request
//! body's messages, starts each produce (the same checks as the unary call, `produce::admit`, authorized per
//! request) and returns the answers as they complete, in any order, each with its request's correlation id. So
//! no task or channel sits between the writer that completes an append and the HTTP/2 stream that carries the
//! ack.
//!
//! Order: a stream's requests for one partition are appended in the order they arrived, as Kafka appends a
//! connection's requests (a producer without idempotence that pipelines relies on it). Each request is admitted
//! (checked, its partition picked) as it is read, then waits for its turn at the partition's writer queue: until
//! the stream's previous request for that partition is on the queue. The queue then keeps the order. Only the
//! step onto the queue is ordered, and only per partition: requests for other partitions are not held up, and
//! the appends, fsyncs and answers still overlap.
//! Bounds: at most `max_in_flight` produces at a time (the request body is not read past that: HTTP/2 flow
//! control then holds the client back), each message at most `max_request_bytes`. Dropping the body (the
//! client reset the stream, or the connection ended) drops the produces in flight.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use http_body::{Body as _, Frame};
use prost::Message;
use rill_protocol::grpc_frames::{Chunks, GRPC_HEADER_BYTES};
use rill_protocol::hops::{self, Hop};
use rill_protocol::reason::Reason;
use rill_protocol::v1;
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::Status;

use super::QuotaClient;
use crate::auth::acl::{Operation, Resource};
use crate::auth::Principal;
use crate::metrics::RequestMetrics;
use crate::node::Node;
use crate::quotas::QuotaKey;

const PRODUCE_PATH: &str = "/rill.v1.Records/Produce";

/// How many produces of one stream the broker works on at once; the client's sender keeps one call in flight
/// per partition, so this is room for that many partitions' calls before the stream waits.
pub const MAX_IN_FLIGHT: usize = 256;

type Answer = (u64, Result<v1::ProduceResponse, Status>);
type Produce = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The answer body of one `ProduceStream` call.
pub struct ProduceStreamBody {
    node: Arc<Node>,
    principal: Option<Principal>,
    /// Who the stream's produces are charged to, should a client quota apply.
    quota_client: Arc<QuotaClient>,
    /// `None` once the client half-closed the stream.
    requests: Option<Body>,
    /// Bytes of the request body not yet decoded into a message.
    unread: Chunks,
    in_flight: FuturesUnordered<Produce>,
    turns: PartitionTurns,
    max_request_bytes: usize,
    /// Set when the stream must end: OK, or why the stream was refused.
    ending: Option<Status>,
    is_done: bool,
    /// Ready once the node shuts down: the stream then takes no more requests, answers those in flight and
    /// ends, so the graceful shutdown is not held up by a stream that would never end by itself.
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl ProduceStreamBody {
    pub fn new(
        node: Arc<Node>,
        principal: Option<Principal>,
        quota_client: QuotaClient,
        requests: Body,
        max_request_bytes: usize,
    ) -> Self {
        let mut shutdown = node.shutdown.clone();
        let shutdown = async move {
            // A dropped sender is a node torn down without a shutdown: nothing to wait for then.
            if shutdown.wait_for(|is_shutting_down| *is_shutting_down).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        Self {
            shutdown: Some(shutdown.boxed()),
            node,
            principal,
            quota_client: Arc::new(quota_client),
            requests: Some(requests),
            unread: Chunks::default(),
            in_flight: FuturesUnordered::new(),
            turns: PartitionTurns::default(),
            max_request_bytes,
            ending: None,
            is_done: false,
        }
    }

    /// Starts the produce of each whole message read so far, up to the in-flight bound.
    fn start_read_messages(&mut self) -> Result<(), Status> {
        while self.in_flight.len() < MAX_IN_FLIGHT && self.unread.remaining() >= GRPC_HEADER_BYTES {
            let mut header = [0u8; GRPC_HEADER_BYTES];
            self.unread.peek(&mut header);
            if header[0] != 0 {
                return Err(Reason::InvalidArgument.status("a compressed message on a stream without grpc-encoding"));
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if len > self.max_request_bytes {
                return Err(Reason::TooLarge.status(format!(
                    "a produce message of {len} bytes exceeds the broker's max_request_bytes of {} bytes",
                    self.max_request_bytes
                )));
            }
            if self.unread.remaining() < GRPC_HEADER_BYTES + len {
                return Ok(());
            }
            self.unread.advance(GRPC_HEADER_BYTES);
            let mut message = (&mut self.unread).take(len);
            let decoded = v1::ProduceStreamRequest::decode(&mut message);
            // prost may stop short of a message's end only on an error; skip what is left of it either way.
            let rest = message.remaining();
            self.unread.advance(rest);
            let streamed = decoded.map_err(|e| {
                Reason::InvalidArgument.status(format!("a message is not a valid ProduceStreamRequest: {e}"))
            })?;
            self.start(streamed, len as u64);
        }
        Ok(())
    }

    /// Admits the request now, in arrival order, and puts its produce in flight behind the stream's earlier
    /// requests for the same partition.
    fn start(&mut self, streamed: v1::ProduceStreamRequest, message_bytes: u64) {
        let correlation_id = streamed.correlation_id;
        let request = match self.authorized(streamed.request) {
            Ok(request) => request,
            Err(refused) => {
                // Not a produce (no request, or not allowed): answered, not counted, as before it was admitted.
                self.in_flight.push(std::future::ready((correlation_id, Err(refused))).boxed());
                return;
            }
        };
        if hops::is_on() {
            super::records_route::mark_produced(&request, Hop::BrokerDecoded);
        }
        let started = std::time::Instant::now();
        let admitted = super::produce::admit(&self.node, request).map(|admitted| {
            let partition = admitted.partition();
            let (earlier, queued) = self.turns.next(partition.topic.as_str(), partition.index);
            (admitted, earlier, queued)
        });
        let node = Arc::clone(&self.node);
        let quota_client = Arc::clone(&self.quota_client);
        let produce = async move {
            let produced = match admitted {
                Err(refused) => Err(Status::from(refused)),
                Ok((admitted, earlier, queued)) => {
                    if let Some(earlier) = earlier {
                        // An error is an earlier request dropped before it was queued: nothing to wait for.
                        let _ = earlier.await;
                    }
                    // The stream's next request for the partition may be gone already: nothing to tell then.
                    let on_queued = move || {
                        let _ = queued.send(());
                    };
                    admitted.produce(on_queued).await.map_err(Status::from)
                }
            };
            // Over a quota, this answer comes late and holds one of the stream's in-flight places meanwhile.
            quota_client.wait_out(&node, QuotaKey::ProducerByteRate, message_bytes).await;
            // Each request counts as a Produce, as a unary call would, so the per-method figures keep meaning
            // "produces"; the stream itself counts once, under ProduceStream.
            if let Some(metrics) = &node.metrics {
                let code = produced.as_ref().err().map(|status| status.code() as u16);
                metrics.grpc.record(RequestMetrics::method_index(PRODUCE_PATH), started.elapsed(), code);
            }
            (correlation_id, produced)
        };
        self.in_flight.push(produce.boxed());
    }

    fn authorized(&self, request: Option<v1::ProduceRequest>) -> Result<v1::ProduceRequest, Status> {
        let Some(request) = request else {
            return Err(Reason::InvalidArgument.status("a ProduceStreamRequest needs a request"));
        };
        if let Some(principal) = &self.principal {
            self.node.authorize(principal, Operation::Write, &Resource::topic(&request.topic))?;
        }
        Ok(request)
    }

    /// Reads the request body until it has nothing more now, starting produces as messages complete.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some(requests) = &mut self.requests else { return Ok(()) };
            match Pin::new(requests).poll_frame(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(None) => {
                    self.requests = None;
                    if self.unread.remaining() > 0 {
                        return Err(Reason::InvalidArgument.status("the stream ended inside a message"));
                    }
                }
                Poll::Ready(Some(Err(status))) => return Err(status),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.unread.push(data);
                        self.start_read_messages()?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where each of a stream's requests stands in its partition's order: per partition the stream produced to, a
/// receiver that completes once the stream's latest request for it is on the partition's writer queue (or was
/// dropped without getting there).
#[derive(Default)]
struct PartitionTurns {
    latest: HashMap<String, HashMap<u32, oneshot::Receiver<()>>>,
    /// Receivers in `latest`, bounded: past `MAX_TURNS`, those already complete are dropped.
    count: usize,
}

/// At most `MAX_IN_FLIGHT` turns are not yet complete (one per request in flight), so pruning at twice that
/// keeps the map bounded and prunes rarely.
const MAX_TURNS: usize = 2 * MAX_IN_FLIGHT;

impl PartitionTurns {
    /// The next turn at `topic`'s `partition`: what to wait for before queueing (the previous request for it,
    /// `None` if that one is queued already or there is none) and what to complete once queued.
    fn next(&mut self, topic: &str, partition: u32) -> (Option<oneshot::Receiver<()>>, oneshot::Sender<()>) {
        if self.count >= MAX_TURNS {
            self.prune();
        }
        let (queued, turn) = oneshot::channel();
        if !self.latest.contains_key(topic) {
            self.latest.insert(topic.to_owned(), HashMap::new());
        }
        let topic_turns = self.latest.get_mut(topic).expect("inserted above");
        let earlier = topic_turns.insert(partition, turn);
        if earlier.is_none() {
            self.count += 1;
        }
        (earlier.and_then(|mut earlier| is_pending(&mut earlier).then_some(earlier)), queued)
    }

    fn prune(&mut self) {
        self.latest.retain(|_, turns| {
            turns.retain(|_, turn| is_pending(turn));
            !turns.is_empty()
        });
        self.count = self.latest.values().map(HashMap::len).sum();
    }
}

/// Whether the request behind `turn` has yet to be queued (a receiver found complete is never awaited again).
fn is_pending(turn: &mut oneshot::Receiver<()>) -> bool {
    matches!(turn.try_recv(), Err(oneshot::error::TryRecvError::Empty))
}

/// A refusal's text metadata (the leader a `not-leader` names, say), which a stream answer carries in a field as
/// the unary call's trailers do.
fn text_metadata(status: &Status) -> HashMap<String, String> {
    status
        .metadata()
        .iter()
        .filter_map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                Some((key.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}

/// One answer as a gRPC-framed `ProduceStreamResponse`.
fn encode_answer((correlation_id, outcome): Answer) -> Bytes {
    use v1::produce_stream_response::Outcome;
    let outcome = match outcome {
        Ok(produced) => Outcome::Produced(produced),
        Err(status) => Outcome::Refused(v1::ProduceRefusal {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: status.details().to_vec().into(),
            metadata: text_metadata(&status),
        }),
    };
    let answer = v1::ProduceStreamResponse { correlation_id, outcome: Some(outcome) };
    let len = answer.encoded_len();
    let mut framed = BytesMut::with_capacity(GRPC_HEADER_BYTES + len);
    framed.put_u8(0);
    // An answer is a few numbers or a refusal's message: far below 4 GiB.
    framed.put_u32(len as u32);
    answer.encode(&mut framed).expect("the buffer was sized for the answer");
    framed.freeze()
}

impl http_body::Body for ProduceStreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.is_done {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().is_some_and(|shutdown| shutdown.as_mut().poll(cx).is_ready()) {
            this.shutdown = None;
            this.requests = None;
            this.unread = Chunks::default();
        }
        if this.ending.is_none() {
            if let Err(status) = this.start_read_messages().and_then(|()| this.poll_requests(cx)) {
                tracing::debug!(error = %status, "produce stream refused");
                // What is in flight is dropped: the client fails those requests and sends them again.
                this.in_flight = FuturesUnordered::new();
                this.requests = None;
                this.ending = Some(status);
            }
        }
        if let Poll::Ready(Some(answer)) = this.in_flight.poll_next_unpin(cx) {
            let answered = encode_answer(answer);
            // A slot freed: read on (the request body may have stopped at the bound), on the next poll.
            if this.requests.is_some() && this.in_flight.len() + 1 == MAX_IN_FLIGHT {
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(Some(Ok(Frame::data(answered))));
        }
        let has_ended = this.ending.is_some() || (this.requests.is_none() && this.in_flight.is_empty());
        if !has_ended {
            return Poll::Pending;
        }
        this.is_done = true;
        let status = this.ending.take().unwrap_or_else(|| Status::ok(""));
        let mut trailers = status.into_http::<()>().into_parts().0.headers;
        trailers.remove(http::header::CONTENT_TYPE);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.is_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_on_the_stream_names_the_leader_as_the_unary_call_s_trailers_do() {
        let refused = crate::error::BrokerError::NotLeader {
            topic: "orders".into(),
            partition: 2,
            node_id: 1,
            leader: Some(3),
            leader_address: Some("127.0.0.1:9094".into()),
        };
        let mut framed = encode_answer((7, Err(Status::from(refused))));
        framed.advance(GRPC_HEADER_BYTES);
        let answer = v1::ProduceStreamResponse::decode(framed).expect("an answer");
        let Some(v1::produce_stream_response::Outcome::Refused(refusal)) = answer.outcome else {
            panic!("a refusal: {answer:?}")
        };
        assert_eq!(answer.correlation_id, 7);
        assert_eq!(
            refusal.metadata.get(rill_protocol::reason::LEADER_ADDRESS_KEY).map(String::as_str),
            Some("127.0.0.1:9094")
        );
        assert_eq!(refusal.metadata.get(rill_protocol::reason::LEADER_ID_KEY).map(String::as_str), Some("3"));
        let status = Status::with_details(tonic::Code::from_i32(refusal.code), refusal.message, refusal.details);
        assert_eq!(rill_protocol::reason::reason_of(&status), Some(Reason::NotLeader));
    }

    #[test]
    fn a_request_waits_only_for_the_unqueued_request_before_it_in_its_own_partition() {
        let mut turns = PartitionTurns::default();
        let (first_waits, first_queued) = turns.next("t", 0);
        assert!(first_waits.is_none(), "the first request of a partition waits for nothing");
        let (other_partition_waits, _other_partition_queued) = turns.next("t", 1);
        assert!(other_partition_waits.is_none(), "a request for partition 1 waits for none of partition 0's");
        let (other_topic_waits, _other_topic_queued) = turns.next("u", 0);
        assert!(other_topic_waits.is_none(), "nor does one for another topic's partition 0");

        let (second_waits, second_queued) = turns.next("t", 0);
        let mut second_waits = second_waits.expect("the second request of partition 0 waits for the first");
        assert!(is_pending(&mut second_waits));
        first_queued.send(()).expect("the second request still waits");
        assert!(!is_pending(&mut second_waits), "the first one queued: the second may go");

        // A request dropped before it was queued (refused, or the stream ended) holds none up.
        drop(second_queued);
        let (third_waits, third_queued) = turns.next("t", 0);
        assert!(third_waits.is_none());
        let (fourth_waits, _) = turns.next("t", 0);
        assert!(fourth_waits.is_some(), "the third request is not queued yet");
        drop(third_queued);
    }

    #[test]
    fn turns_stay_bounded_and_keep_those_not_yet_queued() {
        let mut turns = PartitionTurns::default();
        let mut not_queued = Vec::new();
        for partition in 0..10_000u32 {
            let (_, queued) = turns.next("t", partition);
            if partition % 100 == 0 {
                not_queued.push(queued);
            }
        }
        assert!(turns.count <= MAX_TURNS, "{} turns kept", turns.count);
        let (waits, _) = turns.next("t", 0);
        assert!(waits.is_some(), "a request not yet queued still holds up the next of its partition");
        drop(not_queued);
    }
}
