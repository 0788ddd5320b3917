//! `Records/Fetch` and `Records/Produce` without tonic's message codec, so record bytes cross the gRPC layer
//! without a copy.
//!
//! Why: tonic encodes every response into one growing buffer and copies every request's HTTP/2 frames into
//! another, so each record byte was copied once more on the way in and once more on the way out (6% of a
//! replay's CPU; the house rule is no copy on the way out, at most one on the way in).
//!
//! - Fetch: the response body is three chunks: the gRPC frame header with the `record_batches` field's key and
//!   length, the batches themselves (the `Bytes` storage read, handed to HTTP/2 as they are), and the other
//!   fields, encoded by prost. Protobuf lets fields come in any order, so any gRPC client decodes it as the
//!   `FetchResponse` it is.
//! - Produce: the request's HTTP/2 frames are kept as they arrive and prost decodes the message from them
//!   through [`Chunks`](rill_protocol::grpc_frames::Chunks), whose `copy_to_bytes` slices a frame instead of copying when the bytes asked for lie in
//!   one. rill's client sends a batch as one chunk, and the broker accepts frames of 2 MiB, so a batch arrives
//!   as one frame and becomes the `record_batch` without a copy. Anything else (other clients, other splits) is
//!   copied together where needed, as tonic would. The size limit is checked on the gRPC frame header, before
//!   the message is read.
//!
//! Every other method of `Records` goes to the generated server untouched.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use rill_protocol::grpc_codec::SizedProstCodec;
use rill_protocol::grpc_frames::{read_message, GRPC_HEADER_BYTES};
use rill_protocol::hops::{self, Hop};
use rill_protocol::reason::Reason;
use rill_protocol::v1::{self, records_server::RecordsServer};
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::server::NamedService;
use tonic::Status;

use super::RillService;
use crate::auth::acl::{Operation, Resource};
use crate::node::Node;
use crate::quotas::QuotaKey;

const FETCH_PATH: &str = "/rill.v1.Records/Fetch";
const PRODUCE_PATH: &str = "/rill.v1.Records/Produce";
const PRODUCE_STREAM_PATH: &str = "/rill.v1.Records/ProduceStream";
/// `record_batches` is field 1, wire type 2 (length-delimited).
const RECORD_BATCHES_KEY: u8 = (1 << 3) | 2;

/// The `Records` service as the server mounts it.
#[derive(Clone)]
pub struct RecordsRoute {
    generated: RecordsServer<RillService>,
    node: Arc<Node>,
    max_request_bytes: usize,
    max_response_bytes: usize,
}

impl RecordsRoute {
    pub fn new(
        generated: RecordsServer<RillService>,
        node: Arc<Node>,
        max_request_bytes: usize,
        max_response_bytes: usize,
    ) -> Self {
        Self { generated, node, max_request_bytes, max_response_bytes }
    }
}

impl NamedService for RecordsRoute {
    const NAME: &'static str = <RecordsServer<RillService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for RecordsRoute {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let is_fetch = match request.uri().path() {
            FETCH_PATH => true,
            PRODUCE_PATH => false,
            PRODUCE_STREAM_PATH => {
                let answered = self.produce_stream(request);
                return Box::pin(async move { Ok(answered.unwrap_or_else(|status| status.into_http())) });
            }
            _ => return Box::pin(self.generated.call(request)),
        };
        let route = self.clone();
        Box::pin(async move {
            let answered = if is_fetch { route.fetch(request).await } else { route.produce(request).await };
            Ok(answered.unwrap_or_else(|status| status.into_http()))
        })
    }
}

impl RecordsRoute {
    /// Opens a produce stream: its answer body serves the stream's requests (`produce_stream.rs`).
    fn produce_stream(&self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        refuse_compressed(&request)?;
        let principal = self.node.authorizer.is_on().then(|| super::principal_in(request.extensions()));
        let quota_client = super::stream_quota_client(request.headers(), request.extensions());
        let body = super::produce_stream::ProduceStreamBody::new(
            Arc::clone(&self.node),
            principal,
            quota_client,
            request.into_body(),
            self.max_request_bytes,
        );
        let mut http = http::Response::new(Body::new(body));
        http.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        Ok(http)
    }

    async fn produce(&self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        refuse_compressed(&request)?;
        // The hot path: with authorization off, not even the principal is cloned.
        let principal = self.node.authorizer.is_on().then(|| super::principal_in(request.extensions()));
        let quota_client = super::quota_client(&self.node, request.headers(), request.extensions());
        let mut message =
            read_message(request.into_body(), self.max_request_bytes, "the broker's max_request_bytes").await?;
        let request_bytes = message.remaining() as u64;
        let request = v1::ProduceRequest::decode(&mut message)
            .map_err(|e| Reason::InvalidArgument.status(format!("the request is not a valid ProduceRequest: {e}")))?;
        if let Some(principal) = &principal {
            self.node.authorize(principal, Operation::Write, &Resource::topic(&request.topic))?;
        }
        if hops::is_on() {
            mark_produced(&request, Hop::BrokerDecoded);
        }
        let response = super::produce::produce(&self.node, request).await?;
        if let Some(client) = quota_client {
            client.wait_out(&self.node, QuotaKey::ProducerByteRate, request_bytes).await;
        }
        let encoded = response.encode_to_vec();
        let mut body = BytesMut::with_capacity(GRPC_HEADER_BYTES + encoded.len());
        body.put_u8(0);
        body.put_u32(u32::try_from(encoded.len()).map_err(|_| Reason::Internal.status("a produce answer over 4 GiB"))?);
        body.extend_from_slice(&encoded);
        Ok(grpc_response([body.freeze(), Bytes::new(), Bytes::new()], Bytes::new()))
    }

    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        refuse_compressed(&request)?;
        let principal = self.node.authorizer.is_on().then(|| super::principal_in(request.extensions()));
        let quota_client = super::quota_client(&self.node, request.headers(), request.extensions());
        let decoder = SizedProstCodec::<v1::FetchResponse, v1::FetchRequest>::default().decoder();
        let mut messages = Streaming::new_request(decoder, request.into_body(), None, Some(self.max_request_bytes));
        let mut message =
            messages.message().await?.ok_or_else(|| Reason::InvalidArgument.status("a fetch needs a request"))?;
        if let Some(principal) = &principal {
            self.node.authorize(principal, Operation::Read, &Resource::topic(&message.topic))?;
        }
        if let Some(bound) = quota_client.as_ref().and_then(|client| client.fetch_bytes_bound(&self.node)) {
            message.max_bytes = message.max_bytes.min(bound);
        }
        let mut response = super::read::fetch(&self.node, message).await?;
        let batches = std::mem::take(&mut response.record_batches);
        if let Some(client) = quota_client {
            client.wait_out(&self.node, QuotaKey::ConsumerByteRate, batches.len() as u64).await;
        }
        let rest = response.encode_to_vec();
        let batches_field = if batches.is_empty() { 0 } else { 1 + prost::length_delimiter_len(batches.len()) };
        let message_len = batches_field + batches.len() + rest.len();
        if message_len > self.max_response_bytes {
            return Err(Reason::TooLarge.status(format!(
                "a fetch response of {message_len} bytes exceeds the broker's limit of {} bytes",
                self.max_response_bytes
            )));
        }
        let message_len = u32::try_from(message_len)
            .map_err(|_| Reason::TooLarge.status("a fetch response must be smaller than 4 GiB"))?;
        let mut head = BytesMut::with_capacity(5 + batches_field);
        head.put_u8(0); // not compressed
        head.put_u32(message_len);
        if !batches.is_empty() {
            head.put_u8(RECORD_BATCHES_KEY);
            prost::encode_length_delimiter(batches.len(), &mut head)
                .map_err(|e| Reason::Internal.status(format!("cannot encode a length: {e}")))?;
        }
        // Sampled hops (`rill bench e2e --breakdown`): marked when the last chunk goes to HTTP/2.
        let sampled = if hops::is_on() { batches.clone() } else { Bytes::new() };
        Ok(grpc_response([head.freeze(), batches, Bytes::from(rest)], sampled))
    }
}

fn refuse_compressed(request: &http::Request<Body>) -> Result<(), Status> {
    match request.headers().get("grpc-encoding").filter(|e| *e != "identity") {
        Some(encoding) => Err(Status::unimplemented(format!(
            "request compression {encoding:?} is not supported; send identity-encoded messages"
        ))),
        None => Ok(()),
    }
}

/// The batches of a produce request, marked at `hop`.
pub(super) fn mark_produced(request: &v1::ProduceRequest, hop: Hop) {
    use v1::produce_request::Records;
    match &request.records {
        Some(Records::RecordBatch(batch)) => hops::mark_batches(batch, hop),
        Some(Records::RecordBatches(batches)) => {
            batches.batches.iter().for_each(|batch| hops::mark_batches(batch, hop))
        }
        Some(Records::RecordList(_)) | None => {}
    }
}

/// A successful unary answer: `chunks` (a gRPC-framed message), then `grpc-status: 0`. `sampled` batches are
/// marked [`Hop::ResponseWritten`] when the last chunk is handed to HTTP/2.
fn grpc_response(chunks: [Bytes; 3], sampled: Bytes) -> http::Response<Body> {
    let body = ChunkedBody { chunks: chunks.into_iter().collect(), trailers: Some(ok_trailers()), sampled };
    let mut http = http::Response::new(Body::new(body));
    http.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    http
}

fn ok_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers
}

/// The chunks of one gRPC-framed message, then the `grpc-status: 0` trailers.
struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
    /// Empty unless sampling hops.
    sampled: Bytes,
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while let Some(chunk) = self.chunks.pop_front() {
            if self.chunks.is_empty() && !self.sampled.is_empty() {
                hops::mark_batches(&std::mem::take(&mut self.sampled), Hop::ResponseWritten);
            }
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        Poll::Ready(self.trailers.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }
}
