//! A tower layer under tonic that counts each gRPC request by method, its latency to the response headers, and
//! its status when an error comes in those headers (how tonic answers a failed unary call) or in the trailers
//! that end the body (how a stream, e.g. a Subscribe or a group membership, fails after it started).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::Frame;
use tonic::body::Body;

use super::{NodeMetrics, RequestMetrics};

#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<NodeMetrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<NodeMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, metrics: Arc::clone(&self.metrics) }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Arc<NodeMetrics>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = RequestMetrics::method_index(request.uri().path());
        let started = Instant::now();
        let metrics = Arc::clone(&self.metrics);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|code| code.to_str().ok())
                    .and_then(|code| code.parse::<u16>().ok()),
                // The transport failed to answer at all: UNKNOWN.
                Err(_) => Some(2),
            };
            metrics.grpc.record(method, started.elapsed(), code);
            // A status in the headers is the whole answer; without one, the trailers will say. (Boxed again: the
            // router's body type is tonic's one `Body`, with or without this layer; one small allocation per
            // call, with metrics on only.)
            if code.is_some() {
                return response;
            }
            let watcher = Some(TrailersWatcher { metrics, method });
            response.map(|response| response.map(|body| Body::new(TrailersWatched { body, watcher })))
        })
    }
}

/// Counts the error status a response's trailers carry, once.
#[derive(Debug)]
struct TrailersWatcher {
    metrics: Arc<NodeMetrics>,
    method: usize,
}

/// A response body passed through unchanged, its trailers' `grpc-status` counted when it is an error.
struct TrailersWatched<B> {
    body: B,
    watcher: Option<TrailersWatcher>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for TrailersWatched<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(trailers) = frame.trailers_ref() {
                let code = trailers.get("grpc-status").and_then(|c| c.to_str().ok()).and_then(|c| c.parse().ok());
                if let (Some(watcher), Some(code)) = (this.watcher.take(), code) {
                    watcher.metrics.grpc.record_error(watcher.method, code);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
