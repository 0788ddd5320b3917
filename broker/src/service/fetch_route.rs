//! `Records/Fetch` without tonic's message encoder, so fetched batches reach the socket without a copy.
//!
//! Why: tonic encodes every response into one growing buffer, so a fetch copied each record byte once more after
//! reading it (6% of a replay's CPU; the house rule is no copy on the way out). Here the response body is three
//! chunks: the gRPC frame header with the `record_batches` field's key and length, the batches themselves (the
//! `Bytes` storage read, handed to HTTP/2 as they are), and the other fields, encoded by prost. Protobuf lets
//! fields come in any order, so any gRPC client decodes it as the `FetchResponse` it is.
//!
//! Every other method of `Records` goes to the generated server untouched.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use rill_protocol::grpc_codec::SizedProstCodec;
use rill_protocol::v1::{self, records_server::RecordsServer};
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::server::NamedService;
use tonic::Status;

use super::RillService;
use crate::node::Node;

const FETCH_PATH: &str = "/rill.v1.Records/Fetch";
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
        if request.uri().path() != FETCH_PATH {
            return Box::pin(self.generated.call(request));
        }
        let route = self.clone();
        Box::pin(async move {
            Ok(match route.fetch(request).await {
                Ok(response) => response,
                Err(status) => status.into_http(),
            })
        })
    }
}

impl RecordsRoute {
    async fn fetch(&self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        if let Some(encoding) = request.headers().get("grpc-encoding").filter(|e| *e != "identity") {
            return Err(Status::unimplemented(format!(
                "request compression {encoding:?} is not supported; send identity-encoded messages"
            )));
        }
        let decoder = SizedProstCodec::<v1::FetchResponse, v1::FetchRequest>::default().decoder();
        let mut messages = Streaming::new_request(decoder, request.into_body(), None, Some(self.max_request_bytes));
        let message = messages.message().await?.ok_or_else(|| Status::invalid_argument("a fetch needs a request"))?;
        let mut response = super::read::fetch(&self.node, message).await?;
        let batches = std::mem::take(&mut response.record_batches);
        let rest = response.encode_to_vec();
        let batches_field = if batches.is_empty() { 0 } else { 1 + prost::length_delimiter_len(batches.len()) };
        let message_len = batches_field + batches.len() + rest.len();
        if message_len > self.max_response_bytes {
            return Err(Status::resource_exhausted(format!(
                "a fetch response of {message_len} bytes exceeds the broker's limit of {} bytes",
                self.max_response_bytes
            )));
        }
        let message_len = u32::try_from(message_len)
            .map_err(|_| Status::resource_exhausted("a fetch response must be smaller than 4 GiB"))?;
        let mut head = BytesMut::with_capacity(5 + batches_field);
        head.put_u8(0); // not compressed
        head.put_u32(message_len);
        if !batches.is_empty() {
            head.put_u8(RECORD_BATCHES_KEY);
            prost::encode_length_delimiter(batches.len(), &mut head)
                .map_err(|e| Status::internal(format!("cannot encode a length: {e}")))?;
        }
        let chunks: VecDeque<Bytes> = [head.freeze(), batches, Bytes::from(rest)].into_iter().collect();
        let mut http = http::Response::new(Body::new(FetchBody { chunks, trailers: Some(ok_trailers()) }));
        http.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        Ok(http)
    }
}

fn ok_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers
}

/// The chunks of one encoded `FetchResponse`, then the `grpc-status: 0` trailers.
struct FetchBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for FetchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        while let Some(chunk) = self.chunks.pop_front() {
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
