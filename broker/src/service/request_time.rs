//! The request quota (`request_percentage`, `quotas/request_time.rs`) for gRPC calls: a tower layer under the
//! authentication layer (which names the call's principal) that times each call's handler, from the request to
//! the response's headers (a unary call's whole work; a stream's opening, not the messages it streams after),
//! charges it to the caller (its principal and `rill-client-id`), and holds the response back the time the
//! quota says: gRPC has no field to tell a client to wait, as with the byte rates (`QuotaClient::wait_out`).
//!
//! Untouched while no client is held to a request percentage: the call goes straight through. Exempt: the
//! cluster's own calls between nodes, health checks and reflection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;

use super::{principal_in, CLIENT_ID_HEADER};
use crate::quotas::request_time::HandlerClock;
use crate::quotas::throttle::ClientThrottle;

/// Paths whose calls are not charged: the nodes' own, health and reflection.
const EXEMPT_PREFIXES: [&str; 3] = [crate::auth::node_calls::INTERNAL_PREFIX, "/grpc.health.v1.", "/grpc.reflection."];

#[derive(Debug, Clone)]
pub struct RequestTimeLayer {
    quotas: Arc<ClientThrottle>,
    shutdown: watch::Receiver<bool>,
}

impl RequestTimeLayer {
    pub fn new(quotas: Arc<ClientThrottle>, shutdown: watch::Receiver<bool>) -> Self {
        Self { quotas, shutdown }
    }
}

impl<S> tower::Layer<S> for RequestTimeLayer {
    type Service = RequestTime<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTime { inner, quotas: Arc::clone(&self.quotas), shutdown: self.shutdown.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct RequestTime<S> {
    inner: S,
    quotas: Arc<ClientThrottle>,
    shutdown: watch::Receiver<bool>,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestTime<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if !self.quotas.store().is_request_time_set() || EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Answer::Untimed { answering: self.inner.call(request) };
        }
        let principal = principal_in(request.extensions());
        let client_id = request.headers().get(CLIENT_ID_HEADER).and_then(|id| id.to_str().ok()).unwrap_or_default();
        let clock = HandlerClock::of(Some((principal, client_id.to_owned())));
        let answering = self.inner.call(request);
        let quotas = Arc::clone(&self.quotas);
        let mut shutdown = self.shutdown.clone();
        let answering = Box::pin(async move {
            let mut answering = std::pin::pin!(answering);
            let response = clock.timing(answering.as_mut()).await;
            let wait = clock.finish(&quotas);
            if !wait.is_zero() {
                tracing::debug!(throttle_ms = wait.as_millis() as u64, "gRPC client past its request_percentage");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|is_shutting_down| *is_shutting_down) => {}
                }
            }
            response
        });
        Answer::Timed { answering }
    }
}

pin_project_lite::pin_project! {
    /// A call's answer: straight from the service, or timed and held (boxed: only while a request quota is set).
    #[project = AnswerProjection]
    pub enum Answer<F: Future> {
        Untimed { #[pin] answering: F },
        Timed { answering: Pin<Box<dyn Future<Output = F::Output> + Send>> },
    }
}

impl<F: Future> Future for Answer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            AnswerProjection::Untimed { answering } => answering.poll(cx),
            AnswerProjection::Timed { answering } => answering.as_mut().poll(cx),
        }
    }
}
