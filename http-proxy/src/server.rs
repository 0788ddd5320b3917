//! The HTTP/1.1 side: hyper serving each connection (keep-alive, chunked bodies) in its own task, at most
//! [`MAX_CONNECTIONS`] at once (one more is closed unanswered), a request head within `HEADER_READ_TIMEOUT` (also
//! how long a kept-alive connection may stay idle), its body within `ProxyConfig::body_read_timeout` (408 past it)
//! and a body of at most [`MAX_REQUEST_BODY_BYTES`] (413 past it). Requests become [`ApiRequest`]s for
//! `routes.rs`; its [`ApiResponse`]s become JSON answers labelled `application/vnd.kafka.v2+json`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::format::API_CONTENT_TYPE;
use crate::metrics::Endpoint;
use crate::routes::{self, ProxyState};
use crate::ListenerTls;

/// Largest request body: a produce of this much is refused whole (413), before any of it is sent.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 << 20;
/// HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A client that has not sent a request head by then (on a new or a kept-alive connection) is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request as the routes read it.
#[derive(Debug, Default)]
pub(crate) struct ApiRequest {
    pub method: String,
    pub path: String,
    /// After `?`, still percent-encoded.
    pub query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// A secret: passed on, never logged.
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub body: Bytes,
}

/// What a route answers.
#[derive(Debug)]
pub(crate) enum ApiResponse {
    Json(Value),
    NoContent,
    Error(ApiError),
    /// The metrics page, in Prometheus' text format.
    Metrics(String),
    /// JSON already written as text.
    JsonText(Vec<u8>),
}

impl From<ApiError> for ApiResponse {
    fn from(error: ApiError) -> Self {
        ApiResponse::Error(error)
    }
}

pub(crate) fn serve(
    listener: TcpListener,
    tls: Option<Arc<dyn ListenerTls>>,
    state: Arc<ProxyState>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, most likely: back off rather than spin.
                    tracing::debug!(error = %err, "http proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!(%peer, "http proxy connection refused: too many open");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (state, tls) = (Arc::clone(&state), tls.clone());
            tokio::spawn(async move {
                let served = match tls {
                    None => serve_connection(stream, state).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => serve_connection(stream, state).await,
                        Err(err) => Err(format!("TLS handshake: {err}")),
                    },
                };
                if let Err(err) = served {
                    tracing::debug!(%peer, error = %err, "http proxy connection ended");
                }
                drop(slot);
            });
        }
    })
}

/// Serves one connection's requests (kept alive) until it closes.
async fn serve_connection<S>(stream: S, state: Arc<ProxyState>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(answer(request, &state).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(|err| err.to_string())
}

async fn answer(request: Request<Incoming>, state: &ProxyState) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let header = |name| header_text(&parts.headers, name);
    let announced: Option<usize> = header(CONTENT_LENGTH).and_then(|length| length.parse().ok());
    let body = if announced.is_some_and(|length| length > MAX_REQUEST_BODY_BYTES) {
        Err(too_large())
    } else {
        // A body trickling in would hold its connection's slot as long as it liked.
        let wait = state.body_read_timeout;
        match tokio::time::timeout(wait, Limited::new(body, MAX_REQUEST_BODY_BYTES).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Ok(Err(err)) => Err(ApiError::bad_request(format!("the request body could not be read: {err}"))),
            Err(_) => Err(ApiError::new(408, 408, format!("the request body did not arrive within {wait:?}"))),
        }
    };
    let (response, endpoint) = match body {
        Ok(body) => {
            let request = ApiRequest {
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                content_type: header(CONTENT_TYPE),
                accept: header(ACCEPT),
                authorization: header(AUTHORIZATION),
                host: header(HOST),
                body,
            };
            let (response, endpoint) = routes::route(state, &request).await;
            if let ApiResponse::Error(error) = &response {
                tracing::debug!(method = %request.method, path = %request.path, status = error.status, "{}", error.message);
            }
            (response, endpoint)
        }
        Err(error) => (ApiResponse::Error(error), Endpoint::Other),
    };
    let answer = render(response);
    state.metrics.request_done(endpoint, answer.status().as_u16(), started.elapsed());
    answer
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        413,
        format!("the request body is over {MAX_REQUEST_BODY_BYTES} bytes: send fewer records per request"),
    )
}

fn header_text(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn render(response: ApiResponse) -> Response<Full<Bytes>> {
    let (status, body) = match response {
        ApiResponse::Json(value) => (200, Some(value)),
        ApiResponse::NoContent => (204, None),
        ApiResponse::Error(error) => (error.status, Some(error.body())),
        ApiResponse::Metrics(page) => {
            let mut answer = Response::new(Full::new(Bytes::from(page)));
            answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE));
            return answer;
        }
        ApiResponse::JsonText(text) => {
            let mut answer = Response::new(Full::new(Bytes::from(text)));
            answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(API_CONTENT_TYPE));
            return answer;
        }
    };
    let mut answer = Response::new(Full::new(body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()))));
    *answer.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status != 204 {
        answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(API_CONTENT_TYPE));
    }
    if status == 401 {
        answer.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"rill\""));
    }
    answer
}
