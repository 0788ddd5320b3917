//! A tower layer under tonic that counts each gRPC request by method, its latency to the response headers, and
//! its status when an error comes in those headers (how tonic answers a failed unary call).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

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

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

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
            response
        })
    }
}
