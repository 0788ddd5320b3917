//! `Records/Produce` and `Records/Fetch` without tonic's message codec, so record bytes cross the gRPC layer
//! without a copy in the client.
//!
//! Why: tonic encodes every request into one buffer, copying each record byte once more after the accumulator
//! wrote it (7.6% of the CPU of a 1 KiB-record produce, client and broker on one machine), and copies every
//! answer's HTTP/2 frames into another before decoding it (the largest user-space copy of a replay).
//! - Produce: the request body is the gRPC frame header with the other fields and the key and length of
//!   `record_batch` (one batch) or `record_batches` (several, concatenated), then each batch's own `Bytes`.
//! - Fetch: the answer is decoded by prost straight from its HTTP/2 frames
//!   ([`rill_protocol::grpc_frames`]); the broker sends the batches as one chunk and the client accepts 1 MiB
//!   frames, so a fetch's batches usually arrive in one frame and become slices of it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::connection::BrokerChannel as Channel;
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use rill_protocol::grpc_frames::{read_message, Chunks, GRPC_HEADER_BYTES};
use rill_protocol::hops::{self, Hop};
use rill_protocol::reason::Reason;
use rill_protocol::v1::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};
use tonic::body::Body;
use tonic::Status;
use tower::ServiceExt;

const PRODUCE_PATH: &str = "/rill.v1.Records/Produce";
const FETCH_PATH: &str = "/rill.v1.Records/Fetch";
/// `record_batch` is field 3, wire type 2 (length-delimited).
const RECORD_BATCH_KEY: u8 = (3 << 3) | 2;
/// `record_batches` is field 6, wire type 2: a `RecordBatches` message.
const RECORD_BATCHES_KEY: u8 = (6 << 3) | 2;
/// `RecordBatches.batches` is field 1, wire type 2, repeated.
const BATCHES_KEY: u8 = (1 << 3) | 2;
/// `ProduceStreamRequest.correlation_id` is field 1, a varint.
const STREAM_CORRELATION_ID_KEY: u8 = 1 << 3;
/// `ProduceStreamRequest.request` is field 2, wire type 2.
const STREAM_REQUEST_KEY: u8 = (2 << 3) | 2;

/// One produce call: `request` with `records` unset, and `batches` as its `record_batch` (one) or
/// `record_batches` (several, which the broker appends at consecutive offsets). Each batch is a chunk of its
/// own, so it reaches the broker as one piece, whole in its HTTP/2 frame, and is never copied there.
pub(crate) async fn produce(
    channel: Channel,
    request: &ProduceRequest,
    batches: &[Bytes],
    timeout: Duration,
    max_message_bytes: usize,
) -> Result<tonic::Response<ProduceResponse>, Status> {
    debug_assert!(request.records.is_none(), "the batches travel beside the message");
    // Sampled hops (`rill bench e2e --breakdown`): the batches are marked when their last chunk goes to HTTP/2.
    let sampled = if hops::is_on() { batches.to_vec() } else { Vec::new() };
    if channel.uses_produce_stream && !channel.produce_stream.is_unsupported() {
        let produce_stream = std::sync::Arc::clone(&channel.produce_stream);
        let envelope = |correlation_id| produce_chunks(request, batches, max_message_bytes, Some(correlation_id));
        let streamed = produce_stream.produce(&channel, |correlation_id| {
            let chunks = envelope(correlation_id);
            sampled.iter().for_each(|batch| hops::mark_batches(batch, Hop::RequestWritten));
            chunks
        });
        match streamed.await {
            Err(status) if status.code() == tonic::Code::Unimplemented && produce_stream.is_unsupported() => {
                tracing::debug!("the broker has no produce stream; producing with unary calls");
            }
            answer => return answer.map(tonic::Response::new),
        }
    }
    let chunks = produce_chunks(request, batches, max_message_bytes, None)?;
    let answer = unary(channel, PRODUCE_PATH, chunks, sampled, timeout, max_message_bytes).await?;
    decode(answer, "produce")
}

/// The gRPC-framed request, as chunks: a head with every field but the batches, then each batch in a chunk of
/// its own. With a `correlation_id`, the `ProduceRequest` goes inside a `ProduceStreamRequest`.
fn produce_chunks(
    request: &ProduceRequest,
    batches: &[Bytes],
    max_message_bytes: usize,
    correlation_id: Option<u64>,
) -> Result<VecDeque<Bytes>, Status> {
    let fields_len = request.encoded_len();
    let field_len = |len: usize| 1 + prost::length_delimiter_len(len) + len;
    let nested_len: usize = batches.iter().map(|batch| field_len(batch.len())).sum();
    let records_len = match batches {
        [batch] => field_len(batch.len()),
        _ => field_len(nested_len),
    };
    let request_len = fields_len + records_len;
    let message_len = match correlation_id {
        Some(id) => 1 + prost::encoding::encoded_len_varint(id) + field_len(request_len),
        None => request_len,
    };
    let message_len =
        u32::try_from(message_len).ok().filter(|len| *len as usize <= max_message_bytes).ok_or_else(|| {
            Reason::TooLarge.status(format!(
                "a produce request of {message_len} bytes exceeds the client's limit of {max_message_bytes} bytes"
            ))
        })?;
    let mut head = BytesMut::with_capacity(GRPC_HEADER_BYTES + 2 * (1 + 10) + fields_len + 2 * (1 + 10));
    head.put_u8(0); // not compressed
    head.put_u32(message_len);
    if let Some(id) = correlation_id {
        head.put_u8(STREAM_CORRELATION_ID_KEY);
        prost::encoding::encode_varint(id, &mut head);
        put_key_and_length(&mut head, STREAM_REQUEST_KEY, request_len)?;
    }
    request.encode(&mut head).map_err(|e| Status::internal(format!("cannot encode a produce request: {e}")))?;
    let mut chunks = VecDeque::with_capacity(1 + 2 * batches.len());
    if let [batch] = batches {
        put_key_and_length(&mut head, RECORD_BATCH_KEY, batch.len())?;
        chunks.push_back(head.freeze());
        chunks.push_back(batch.clone());
    } else {
        put_key_and_length(&mut head, RECORD_BATCHES_KEY, nested_len)?;
        for (i, batch) in batches.iter().enumerate() {
            // Each element's key and length: at the end of the head for the first, a small chunk of their own
            // for the others, so no batch is copied to be joined with what precedes it.
            let mut key = if i == 0 { std::mem::take(&mut head) } else { BytesMut::with_capacity(1 + 10) };
            put_key_and_length(&mut key, BATCHES_KEY, batch.len())?;
            chunks.push_back(key.freeze());
            chunks.push_back(batch.clone());
        }
    }
    Ok(chunks)
}

fn put_key_and_length(out: &mut BytesMut, key: u8, len: usize) -> Result<(), Status> {
    out.put_u8(key);
    prost::encode_length_delimiter(len, out).map_err(|e| Status::internal(format!("cannot encode a length: {e}")))
}

/// One fetch call; the answer's `record_batches` are slices of the frames they arrived in.
pub(crate) async fn fetch(
    channel: Channel,
    request: &FetchRequest,
    timeout: Duration,
    max_message_bytes: usize,
) -> Result<tonic::Response<FetchResponse>, Status> {
    let len = request.encoded_len();
    let mut head = BytesMut::with_capacity(GRPC_HEADER_BYTES + len);
    head.put_u8(0); // not compressed
    head.put_u32(len as u32); // a few fields and a topic name
    request.encode(&mut head).map_err(|e| Status::internal(format!("cannot encode a fetch request: {e}")))?;
    let answer =
        unary(channel, FETCH_PATH, VecDeque::from([head.freeze()]), Vec::new(), timeout, max_message_bytes).await?;
    decode(answer, "fetch")
}

fn decode<M: Message + Default>(mut answer: Chunks, call: &str) -> Result<tonic::Response<M>, Status> {
    M::decode(&mut answer)
        .map(tonic::Response::new)
        .map_err(|e| Status::internal(format!("cannot decode the broker's {call} answer: {e}")))
}

/// Sends a unary call whose gRPC-framed request is `chunks`, and reads its one answer as frames.
async fn unary(
    channel: Channel,
    path: &'static str,
    chunks: VecDeque<Bytes>,
    sampled: Vec<Bytes>,
    timeout: Duration,
    max_message_bytes: usize,
) -> Result<Chunks, Status> {
    let mut http = http::Request::new(Body::new(ChunksBody { chunks, sampled }));
    *http.method_mut() = http::Method::POST;
    *http.uri_mut() = http::Uri::from_static(path);
    *http.version_mut() = http::Version::HTTP_2;
    let headers = http.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    if let Ok(value) = http::HeaderValue::from_str(&grpc_timeout(timeout)) {
        headers.insert("grpc-timeout", value);
    }

    let response = channel.oneshot(http).await.map_err(|e| Status::from_error(Box::new(e)))?;
    // A "trailers-only" answer (an error, typically) has its status in the headers and no message.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    if response.status() != http::StatusCode::OK {
        // What gRPC's HTTP mapping says of a proxy's or a stranger's answer.
        let code = match response.status().as_u16() {
            429 | 502..=504 => tonic::Code::Unavailable,
            _ => tonic::Code::Unknown,
        };
        return Err(Status::new(code, format!("the broker answered HTTP {}", response.status())));
    }
    read_message(response.into_body(), max_message_bytes, "the client's max_message_bytes").await
}

/// gRPC's timeout header: at most 8 digits, in the finest unit that fits.
fn grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let millis = timeout.as_millis();
    if millis <= MAX {
        format!("{millis}m")
    } else {
        format!("{}S", (timeout.as_secs() as u128).min(MAX))
    }
}

/// A body of chunks, sent as they are.
struct ChunksBody {
    chunks: VecDeque<Bytes>,
    /// Batches marked [`Hop::RequestWritten`] once the last chunk is handed over; empty unless sampling.
    sampled: Vec<Bytes>,
}

impl http_body::Body for ChunksBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = std::iter::from_fn(|| self.chunks.pop_front()).find(|chunk| !chunk.is_empty());
        if self.chunks.is_empty() && !self.sampled.is_empty() {
            for batch in std::mem::take(&mut self.sampled) {
                hops::mark_batches(&batch, Hop::RequestWritten);
            }
        }
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len: usize = self.chunks.iter().map(Bytes::len).sum();
        http_body::SizeHint::with_exact(len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_protocol::v1::records_server::{Records, RecordsServer};
    use rill_protocol::v1::{ListOffsetsRequest, ListOffsetsResponse, SubscribeRequest};

    /// Answers a produce after `delay` with `answer`, remembering what it was sent.
    struct FakeRecords {
        delay: Duration,
        answer: Result<ProduceResponse, Status>,
        seen: std::sync::Mutex<Vec<ProduceRequest>>,
        fetch_answer: Result<FetchResponse, Status>,
    }

    impl FakeRecords {
        fn answering(answer: Result<ProduceResponse, Status>) -> Self {
            Self {
                delay: Duration::ZERO,
                answer,
                seen: Default::default(),
                fetch_answer: Err(Status::unimplemented("fake")),
            }
        }
    }

    #[tonic::async_trait]
    impl Records for FakeRecords {
        async fn produce(
            &self,
            request: tonic::Request<ProduceRequest>,
        ) -> Result<tonic::Response<ProduceResponse>, Status> {
            self.seen.lock().unwrap().push(request.into_inner());
            tokio::time::sleep(self.delay).await;
            self.answer.clone().map(tonic::Response::new)
        }
        type ProduceStreamStream = tokio_stream::Empty<Result<rill_protocol::v1::ProduceStreamResponse, Status>>;
        async fn produce_stream(
            &self,
            _: tonic::Request<tonic::Streaming<rill_protocol::v1::ProduceStreamRequest>>,
        ) -> Result<tonic::Response<Self::ProduceStreamStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn fetch(&self, _: tonic::Request<FetchRequest>) -> Result<tonic::Response<FetchResponse>, Status> {
            self.fetch_answer.clone().map(tonic::Response::new)
        }
        type SubscribeStream = tokio_stream::Empty<Result<rill_protocol::v1::SubscribeResponse, Status>>;
        async fn subscribe(
            &self,
            _: tonic::Request<SubscribeRequest>,
        ) -> Result<tonic::Response<Self::SubscribeStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn list_offsets(
            &self,
            _: tonic::Request<ListOffsetsRequest>,
        ) -> Result<tonic::Response<ListOffsetsResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn init_producer_id(
            &self,
            _: tonic::Request<rill_protocol::v1::InitProducerIdRequest>,
        ) -> Result<tonic::Response<rill_protocol::v1::InitProducerIdResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
    }

    /// Serves `fake` on a free port; the channel reaches it.
    async fn serve(fake: std::sync::Arc<FakeRecords>) -> (Channel, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RecordsServer::from_arc(fake))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        let config = crate::ClientConfig::default();
        let (_, endpoint) = crate::connection::endpoint(&addr.to_string(), &config).expect("valid");
        let channel = endpoint.connect().await.expect("connects");
        (Channel::new(channel, &config), server)
    }

    async fn call_fake(fake: FakeRecords, timeout: Duration) -> (Result<ProduceResponse, Status>, Vec<ProduceRequest>) {
        call_fake_with(fake, timeout, &[Bytes::from(vec![5u8; 70_000])]).await
    }

    async fn call_fake_with(
        fake: FakeRecords,
        timeout: Duration,
        batches: &[Bytes],
    ) -> (Result<ProduceResponse, Status>, Vec<ProduceRequest>) {
        let fake = std::sync::Arc::new(fake);
        let (channel, server) = serve(fake.clone()).await;
        let fields = ProduceRequest { topic: "t".into(), partition: Some(1), records: None, acks: 1 };
        let result = tokio::time::timeout(timeout * 4, produce(channel, &fields, batches, timeout, 1 << 20))
            .await
            .expect("the call ends by itself")
            .map(tonic::Response::into_inner);
        server.abort();
        let seen = fake.seen.lock().unwrap().clone();
        (result, seen)
    }

    #[tokio::test]
    async fn the_broker_receives_the_whole_request_and_its_answer_comes_back() {
        let answer = ProduceResponse { partition: 1, base_offset: 7, last_offset: 9, append_time_ms: 5 };
        let fake = FakeRecords::answering(Ok(answer));
        let (result, seen) = call_fake(fake, Duration::from_secs(5)).await;
        assert_eq!(result.expect("answered"), answer);
        let expected = ProduceRequest {
            topic: "t".into(),
            partition: Some(1),
            records: Some(rill_protocol::v1::produce_request::Records::RecordBatch(Bytes::from(vec![5u8; 70_000]))),
            acks: 1,
        };
        assert_eq!(seen, vec![expected]);
    }

    #[tokio::test]
    async fn several_batches_travel_as_the_elements_of_record_batches() {
        let answer = ProduceResponse { partition: 1, base_offset: 7, last_offset: 30, append_time_ms: 5 };
        let batches = [Bytes::from(vec![1u8; 300]), Bytes::from(vec![2u8; 70_000]), Bytes::from(vec![3u8; 9])];
        let (result, seen) = call_fake_with(FakeRecords::answering(Ok(answer)), Duration::from_secs(5), &batches).await;
        assert_eq!(result.expect("answered"), answer);
        let expected = ProduceRequest {
            topic: "t".into(),
            partition: Some(1),
            records: Some(rill_protocol::v1::produce_request::Records::RecordBatches(
                rill_protocol::v1::RecordBatches { batches: batches.to_vec() },
            )),
            acks: 1,
        };
        assert_eq!(seen, vec![expected]);
    }

    #[tokio::test]
    async fn a_refusal_comes_back_with_its_code_and_message() {
        let refusal = Status::not_found("unknown topic \"t\"");
        let fake = FakeRecords::answering(Err(refusal));
        let status = call_fake(fake, Duration::from_secs(5)).await.0.expect_err("refused");
        assert_eq!((status.code(), status.message()), (tonic::Code::NotFound, "unknown topic \"t\""));
    }

    #[tokio::test]
    async fn the_deadline_reaches_the_broker() {
        // The broker's own timeout (from `grpc-timeout`) ends the call before the answer would come.
        let fake =
            FakeRecords { delay: Duration::from_secs(30), ..FakeRecords::answering(Err(Status::internal("late"))) };
        let status = call_fake(fake, Duration::from_millis(200)).await.0.expect_err("cut short");
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    }

    async fn fetch_from(fetch_answer: Result<FetchResponse, Status>, limit: usize) -> Result<FetchResponse, Status> {
        let fake =
            std::sync::Arc::new(FakeRecords { fetch_answer, ..FakeRecords::answering(Err(Status::internal("-"))) });
        let (channel, server) = serve(fake).await;
        let request =
            FetchRequest { topic: "t".into(), partition: 1, offset: 5, max_bytes: 1 << 20, ..Default::default() };
        let result =
            tokio::time::timeout(Duration::from_secs(20), fetch(channel, &request, Duration::from_secs(5), limit))
                .await
                .expect("the call ends by itself")
                .map(tonic::Response::into_inner);
        server.abort();
        result
    }

    #[tokio::test]
    async fn a_fetch_answer_decodes_from_its_frames_whole() {
        // Larger than one 16 KiB frame, as tonic's server sends it: the batches are copied together once.
        let answer = FetchResponse {
            record_batches: Bytes::from((0..300_000).map(|i| i as u8).collect::<Vec<u8>>()),
            next_offset: 77,
            high_watermark: 90,
            log_start_offset: 3,
            ..Default::default()
        };
        assert_eq!(fetch_from(Ok(answer.clone()), 1 << 20).await.expect("answered"), answer);
    }

    #[tokio::test]
    async fn a_fetch_refusal_or_an_answer_over_the_limit_is_an_error() {
        let status =
            fetch_from(Err(Status::out_of_range("offset 5 is past the end")), 1 << 20).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (tonic::Code::OutOfRange, "offset 5 is past the end"));
        let big = FetchResponse { record_batches: Bytes::from(vec![1u8; 5000]), ..Default::default() };
        let status = fetch_from(Ok(big), 4096).await.expect_err("over the limit");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("max_message_bytes"), "{status:?}");
    }

    #[test]
    fn timeouts_use_at_most_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
    }

    /// On a produce stream, the chunks are a gRPC-framed `ProduceStreamRequest` holding the whole request.
    #[test]
    fn the_stream_envelope_holds_the_request_and_its_correlation_id() {
        use rill_protocol::v1::{produce_request::Records, ProduceStreamRequest, RecordBatches};
        let fields = ProduceRequest { topic: "t".into(), partition: Some(3), records: None, acks: 1 };
        for batches in
            [vec![Bytes::from(vec![9u8; 300])], vec![Bytes::from(vec![1u8; 20]), Bytes::from(vec![2u8; 200])]]
        {
            for correlation_id in [0, 1, 300, u64::MAX] {
                let chunks = produce_chunks(&fields, &batches, 1 << 20, Some(correlation_id)).expect("laid out");
                let joined: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.iter().copied()).collect();
                let len = u32::from_be_bytes(joined[1..5].try_into().unwrap()) as usize;
                assert_eq!((joined[0], len), (0, joined.len() - GRPC_HEADER_BYTES));
                let decoded = ProduceStreamRequest::decode(&joined[GRPC_HEADER_BYTES..]).expect("decodes");
                let records = match &batches[..] {
                    [batch] => Records::RecordBatch(batch.clone()),
                    _ => Records::RecordBatches(RecordBatches { batches: batches.clone() }),
                };
                let request = ProduceRequest { records: Some(records), ..fields.clone() };
                assert_eq!(decoded, ProduceStreamRequest { correlation_id, request: Some(request) });
            }
        }
    }

    /// The two chunks are, byte for byte, prost's encoding of the whole request behind a gRPC frame header.
    #[test]
    fn the_chunks_are_the_request_prost_would_send() {
        let batch = Bytes::from(vec![9u8; 300]);
        let fields = ProduceRequest { topic: "t".into(), partition: Some(3), records: None, acks: 1 };
        let whole = ProduceRequest {
            records: Some(rill_protocol::v1::produce_request::Records::RecordBatch(batch.clone())),
            ..fields.clone()
        };
        let mut head = BytesMut::new();
        fields.encode(&mut head).unwrap();
        head.put_u8(RECORD_BATCH_KEY);
        prost::encode_length_delimiter(batch.len(), &mut head).unwrap();
        head.extend_from_slice(&batch);
        let decoded = ProduceRequest::decode(&head[..]).unwrap();
        assert_eq!(decoded, whole);
    }
}
