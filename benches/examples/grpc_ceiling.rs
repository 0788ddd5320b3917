//! The HTTP/2 ceiling: what tonic alone moves on this machine, with no broker and no storage behind it.
//!
//! A minimal unary service takes a `bytes` payload and answers with nothing, like a produce; a second mode
//! answers an empty request with the payload, like a fetch. The codec copies the payload into tonic's encode
//! buffer exactly as prost does for a `bytes` field, and the HTTP/2 settings are the broker's and client's
//! (TCP_NODELAY, 256 KiB frames, 32/64 MiB windows). `rill bench` figures read against this ceiling show how
//! much the broker itself costs.
//!
//! Usage: `cargo run --release -p rill-benches --example grpc_ceiling -- [put|get] [PAYLOAD_BYTES] [STREAMS] [SECONDS]`

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// Raw bytes as the gRPC message: encoding copies them into the frame buffer (as prost does), decoding takes a
/// slice of the receive buffer (as prost does for `Bytes` fields).
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

const MAX_MESSAGE: usize = 64 << 20;

/// `/ceiling.Sink/Put` takes a payload and answers empty; `/ceiling.Sink/Get` answers the payload it holds.
#[derive(Clone)]
struct Sink {
    payload: Bytes,
}

impl tonic::server::NamedService for Sink {
    const NAME: &'static str = "ceiling.Sink";
}

struct Answer(Bytes);

impl tonic::server::UnaryService<Bytes> for Answer {
    type Response = Bytes;
    type Future = Ready<Result<Response<Bytes>, Status>>;
    fn call(&mut self, _request: Request<Bytes>) -> Self::Future {
        ready(Ok(Response::new(self.0.clone())))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Sink {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let answer = if request.uri().path().ends_with("/Get") { self.payload.clone() } else { Bytes::new() };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(Answer(answer), request).await)
        })
    }
}

async fn client_loop(channel: Channel, is_get: bool, payload: Bytes, until: Instant, moved: Arc<AtomicU64>) {
    let mut grpc =
        tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE);
    let (path, send) =
        if is_get { ("/ceiling.Sink/Get", Bytes::new()) } else { ("/ceiling.Sink/Put", payload.clone()) };
    while Instant::now() < until {
        if grpc.ready().await.is_err() {
            return;
        }
        let path = http::uri::PathAndQuery::from_static(path);
        match grpc.unary::<Bytes, Bytes, _>(Request::new(send.clone()), path, RawCodec).await {
            Ok(_) => {
                moved.fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
            Err(status) => {
                eprintln!("call failed: {status}");
                return;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let is_get = args.first().is_some_and(|m| m == "get");
    let payload_bytes: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let streams: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(8);
    let seconds: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(5);
    let payload = Bytes::from(vec![b'x'; payload_bytes]);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let sink = Sink { payload: payload.clone() };
    tokio::spawn(
        Server::builder()
            .tcp_nodelay(true)
            .max_frame_size(256 << 10)
            .initial_stream_window_size(32 << 20)
            .initial_connection_window_size(64 << 20)
            .add_service(sink)
            .serve_with_incoming(incoming),
    );

    let moved = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .initial_stream_window_size(32 << 20)
            .initial_connection_window_size(64 << 20)
            .connect()
            .await?;
        tasks.push(tokio::spawn(client_loop(channel, is_get, payload.clone(), until, moved.clone())));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = moved.load(Ordering::Relaxed) as f64;
    println!(
        "{} {} B payloads, {streams} connections, {elapsed:.1} s: {:.0} MB/s",
        if is_get { "get" } else { "put" },
        payload_bytes,
        bytes / elapsed / 1e6
    );
    Ok(())
}
