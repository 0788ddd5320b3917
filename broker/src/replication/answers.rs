//! The follower's side of the `Replicate` call without tonic's decoder: fetches go out gRPC-framed, and the
//! leader's answers are decoded from the HTTP/2 frames they came in.
//!
//! Why: tonic's `Streaming` copies every DATA frame into one buffer before prost decodes from it, so a follower
//! copied each record byte it replicated once more than the socket read and the direct write's staging: a tenth
//! of a warm node's samples at RF 3 (docs/benchmarks.md, "Followers decode from the frames"). The leader sends
//! each partition's batches as a chunk of their own (`frames.rs`), and the peer channel takes frames of up to
//! `http2_max_frame_bytes` (`tls/peer.rs`), so a batch usually arrives as one frame; prost reads the answer
//! through [`Chunks`], whose `copy_to_bytes` slices that frame. A field cut across frames is copied together,
//! as tonic would have.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::{Body as _, Frame};
use prost::Message;
use rill_protocol::grpc_frames::{Chunks, GRPC_HEADER_BYTES};
use rill_protocol::internal::{ReplicaData, ReplicaFetch};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::Status;

/// The call's path: `rpc Replicate` of `rill.internal.v1.Controller`.
pub const REPLICATE_PATH: &str = "/rill.internal.v1.Controller/Replicate";

/// The request of a `Replicate` call whose body is the fetches sent into `fetches`, each gRPC-framed.
pub fn replicate_request(fetches: mpsc::Receiver<ReplicaFetch>) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(FetchesBody { fetches }));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(REPLICATE_PATH);
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    request
}

/// The leader's answer to [`replicate_request`]: its error status when it refused the call, else its answers.
pub fn answers_of(response: http::Response<Body>, max_answer_bytes: usize) -> Result<AnswerFrames, Status> {
    // A "trailers-only" answer (a refusal) has its status in the headers and no message.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    if response.status() != http::StatusCode::OK {
        return Err(Status::unavailable(format!("the leader answered HTTP {}", response.status())));
    }
    Ok(AnswerFrames { body: response.into_body(), unread: Chunks::default(), max_answer_bytes, has_ended: false })
}

/// Fetches as a request body: one DATA frame per fetch, the body ending when the fetcher drops its sender.
struct FetchesBody {
    fetches: mpsc::Receiver<ReplicaFetch>,
}

impl http_body::Body for FetchesBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.fetches.poll_recv(cx).map(|fetch| fetch.map(|fetch| Ok(Frame::data(framed(&fetch)))))
    }
}

/// `message` with gRPC's frame header (uncompressed, its length) before it.
fn framed(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(GRPC_HEADER_BYTES + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).expect("a fetch lists the partitions one follower follows: far under 4 GiB"));
    message.encode(&mut out).expect("the buffer was sized by encoded_len");
    out.freeze()
}

/// The leader's answers, in order, each decoded once its last frame is in.
pub struct AnswerFrames {
    body: Body,
    /// Frames read and not yet decoded: the rest of an answer, and perhaps the start of the next.
    unread: Chunks,
    max_answer_bytes: usize,
    has_ended: bool,
}

impl AnswerFrames {
    /// The next whole answer in `unread`, if there is one.
    fn decode_next(&mut self) -> Result<Option<ReplicaData>, Status> {
        self.unread.next_message(self.max_answer_bytes, "the follower's limit", "replication answer")
    }
}

impl Stream for AnswerFrames {
    type Item = Result<ReplicaData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.decode_next() {
                Ok(Some(answer)) => return Poll::Ready(Some(Ok(answer))),
                Ok(None) => {}
                Err(status) => {
                    // Nothing after an undecodable answer can be trusted: the stream ends with this error.
                    this.unread = Chunks::default();
                    this.has_ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
            if this.has_ended {
                return Poll::Ready(None);
            }
            let frame = match std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => {
                    this.has_ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    this.has_ended = true;
                    if this.unread.remaining() > 0 {
                        this.unread = Chunks::default();
                        return Poll::Ready(Some(Err(Status::internal("the leader's stream ended inside an answer"))));
                    }
                    return Poll::Ready(None);
                }
            };
            match frame.into_data() {
                Ok(data) => this.unread.push(data),
                Err(frame) => {
                    // The trailers end the stream: an error status there is the leader's last word.
                    this.has_ended = true;
                    if let Some(status) = frame.trailers_ref().and_then(Status::from_header_map) {
                        if status.code() != tonic::Code::Ok {
                            return Poll::Ready(Some(Err(status)));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rill_protocol::internal::ReplicaPartitionData;
    use std::collections::VecDeque;
    use tokio_stream::StreamExt;

    /// Frames of a body in test: what a leader's HTTP/2 connection might hand the follower.
    fn body_of(frames: VecDeque<Bytes>, trailers: Option<http::HeaderMap>) -> Body {
        struct Frames(VecDeque<Bytes>, Option<http::HeaderMap>);
        impl http_body::Body for Frames {
            type Data = Bytes;
            type Error = Status;
            fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
                if let Some(data) = self.0.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(self.1.take().map(|trailers| Ok(Frame::trailers(trailers))))
            }
        }
        Body::new(Frames(frames, trailers))
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("a test runtime").block_on(future)
    }

    fn answer(partitions: usize, batch_len: usize) -> ReplicaData {
        ReplicaData {
            partitions: (0..partitions)
                .map(|p| ReplicaPartitionData {
                    topic: format!("orders-{p}"),
                    partition: p as u32,
                    batches: Bytes::from((0..batch_len).map(|i| (i + p) as u8).collect::<Vec<u8>>()),
                    high_watermark: 7,
                    log_end_offset: 9,
                    error: String::new(),
                    log_start_offset: 3,
                    fetch_offset_below_log_start: p % 2 == 1,
                })
                .collect(),
        }
    }

    fn cut(bytes: &Bytes, cuts: &[usize]) -> VecDeque<Bytes> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut frames = VecDeque::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            frames.push_back(bytes.slice(from..cut.max(from)));
            from = cut.max(from);
        }
        frames
    }

    fn response(frames: VecDeque<Bytes>, trailers: Option<http::HeaderMap>) -> http::Response<Body> {
        http::Response::new(body_of(frames, trailers))
    }

    fn decode_all(frames: VecDeque<Bytes>, limit: usize) -> Vec<Result<ReplicaData, Status>> {
        let answers = answers_of(response(frames, None), limit).expect("an OK response");
        block_on(answers.collect::<Vec<_>>())
    }

    proptest! {
        /// However HTTP/2 cuts a stream of answers into frames, the follower reads the same answers, in order.
        #[test]
        fn any_framing_of_the_answers_decodes_to_the_same_answers(
            sizes in proptest::collection::vec((0usize..4, 0usize..3000), 1..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let sent: Vec<ReplicaData> = sizes.iter().map(|(p, len)| answer(*p, *len)).collect();
            let stream: Vec<u8> = sent.iter().flat_map(|a| framed(a).to_vec()).collect();
            let got = decode_all(cut(&Bytes::from(stream), &cuts), 1 << 20);
            let got: Vec<ReplicaData> = got.into_iter().map(|a| a.expect("a whole answer")).collect();
            prop_assert_eq!(got, sent);
        }
    }

    /// As `frames.rs` sends it, with the batches in a frame of their own, the batches are that frame.
    #[test]
    fn batches_in_a_frame_of_their_own_are_not_copied() {
        let sent = answer(1, 100_000);
        let wire = framed(&sent);
        let batches = &sent.partitions[0].batches;
        let start = wire.windows(batches.len()).position(|w| w == &batches[..]).expect("the batches are on the wire");
        let frames: VecDeque<Bytes> =
            [wire.slice(..start), wire.slice(start..start + batches.len()), wire.slice(start + batches.len()..)]
                .into_iter()
                .collect();
        let batch_frame = frames[1].clone();
        let got = decode_all(frames, 1 << 20).remove(0).expect("one answer");
        assert_eq!(got, sent);
        assert_eq!(got.partitions[0].batches.as_ptr(), batch_frame.as_ptr(), "a slice of the frame, not a copy");
    }

    #[test]
    fn an_answer_over_the_limit_is_refused_from_its_header() {
        let wire = framed(&answer(1, 5_000));
        let got = decode_all(VecDeque::from([wire.slice(..GRPC_HEADER_BYTES)]), 4_096);
        assert_eq!(got.len(), 1, "one error, then the stream ends");
        let status = got.into_iter().next().expect("one item").expect_err("over the limit");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("limit of 4096 bytes"), "{}", status.message());
    }

    #[test]
    fn a_stream_cut_inside_an_answer_is_an_error_not_a_short_answer() {
        let wire = framed(&answer(2, 1_000));
        let got = decode_all(VecDeque::from([wire.slice(..wire.len() - 1)]), 1 << 20);
        let status = got.into_iter().next().expect("one item").expect_err("cut short");
        assert!(status.message().contains("ended inside an answer"), "{}", status.message());
    }

    #[test]
    fn an_error_in_the_trailers_is_the_streams_last_item() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
        trailers.insert("grpc-message", http::HeaderValue::from_static("shutting down"));
        let answers = answers_of(response(VecDeque::from([framed(&answer(1, 10))]), Some(trailers)), 1 << 20)
            .expect("an OK response");
        let got = block_on(answers.collect::<Vec<_>>());
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let status = got[1].as_ref().expect_err("the trailers' status");
        assert_eq!((status.code(), status.message()), (tonic::Code::Unavailable, "shutting down"));
    }

    #[test]
    fn a_refused_call_is_its_status() {
        let mut refused = response(VecDeque::new(), None);
        refused.headers_mut().insert("grpc-status", http::HeaderValue::from_static("16"));
        let status = answers_of(refused, 1 << 20).err().expect("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
