//! The admin HTTP listener (`admin_listen`, 127.0.0.1:9644 by default): `GET /metrics`, `/health`, `/ready`,
//! and the web console (`console/`) at every other path.
//!
//! Over TLS when `tls.admin` is on (the broker's certificate, reloaded with it; ALPN `http/1.1`). With
//! `auth.admin_auth` required, `/metrics` and the console need a bearer token or, for the console, a signed-in
//! session (`auth/admin.rs`); `/health` and `/ready` stay open: they tell a load balancer or an orchestrator
//! only whether to send traffic, and those probe without credentials.
//!
//! A deliberately small HTTP/1.1 server: one request per connection, answered and closed, at most
//! `MAX_ADMIN_CONNECTIONS` at once, a request head of at most `MAX_REQUEST_HEAD_BYTES` and a body of at most
//! `MAX_REQUEST_BODY_BYTES` read within `REQUEST_TIMEOUT`. That is all Prometheus, load balancers' health checks and `rill top` need, and it keeps a
//! second HTTP stack (and its limits) out of the broker.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::NodeMetrics;
use crate::auth::admin::{AdminAuthenticator, Caller};
use crate::cluster::{metadata::NodeState, Controller};
use crate::node::Node;
use crate::tls::TlsAcceptorHandle;

/// Admin connections served at once; one more is closed unanswered.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// A request line and headers larger than this are refused (431).
const MAX_REQUEST_HEAD_BYTES: usize = 8 << 10;
/// A console form larger than this is refused (413): a produced test message is the largest.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// A client that has not sent its whole request by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener answers from.
#[derive(Clone)]
pub struct AdminState {
    pub node: Arc<Node>,
    pub metrics: Arc<NodeMetrics>,
    pub controller: Option<Arc<Controller>>,
    /// True once the data dir is open and every partition recovered; false again when shutdown begins.
    pub is_started: Arc<AtomicBool>,
    /// The web console at `/`; `None` with `console = off`.
    pub console: Option<Arc<crate::console::Console>>,
    /// Who calls, and whether anonymous callers may.
    pub auth: Arc<AdminAuthenticator>,
    /// TLS on this listener (`tls.admin`); `None`: plain HTTP.
    pub tls: Option<Arc<TlsAcceptorHandle>>,
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What answers the requests of a listener [`serve_http`] serves: the admin listener's routes, or the schema
/// registry's (`schema_registry/http.rs`).
pub trait HttpHandler: Send + Sync + 'static {
    fn answer<'a>(&'a self, request: &'a Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>>;
}

impl HttpHandler for AdminState {
    fn answer<'a>(&'a self, request: &'a Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(route(request, self))
    }
}

/// Serves admin requests on `listener` until the task is aborted: at the end of a shutdown, so that `/ready`
/// says 503 while the node drains.
pub fn serve(listener: TcpListener, state: AdminState) -> JoinHandle<()> {
    let tls = state.tls.clone();
    serve_http(listener, tls, Arc::new(state))
}

/// Serves `handler`'s requests on `listener` (over TLS with `tls`) until the task is aborted, with this
/// module's limits.
pub fn serve_http(
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptorHandle>>,
    handler: Arc<dyn HttpHandler>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_ADMIN_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, most likely: the broker port's accept loop logs and backs off too.
                    tracing::debug!(error = %err, "admin listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!(%peer, "admin connection refused: too many open");
                continue;
            };
            let (handler, tls) = (Arc::clone(&handler), tls.clone());
            tokio::spawn(async move {
                let answered = match &tls {
                    None => answer(stream, Some(peer.ip()), false, handler.as_ref()).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => answer(stream, Some(peer.ip()), true, handler.as_ref()).await,
                        Err(err) => Err(err),
                    },
                };
                if let Err(err) = answered {
                    tracing::debug!(%peer, error = %err, "admin request failed");
                }
                drop(slot);
            });
        }
    })
}

/// A request as far as the admin listener and the console care. Its `Debug` leaves out the credentials and the
/// body (a sign-in form holds a password).
#[derive(Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The target after `?`, still percent-encoded.
    pub query: String,
    pub wants_openmetrics: bool,
    /// `Host`, `Origin`, `Sec-Fetch-Site` and `Content-Type`: what the console's guard on writes reads.
    pub host: Option<String>,
    pub origin: Option<String>,
    pub fetch_site: Option<String>,
    pub content_type: Option<String>,
    pub content_length: usize,
    /// The body of a POST (a console form), at most `MAX_REQUEST_BODY_BYTES`.
    pub body: Vec<u8>,
    /// `Authorization` (a bearer token) and `Cookie` (the console session): secrets, never logged.
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    /// Where the request came from (the sign-in backoff is per address), and whether over TLS (the session
    /// cookie is `Secure` then, and the console's own origin `https://`).
    pub peer: Option<IpAddr>,
    pub is_tls: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("has_authorization", &self.authorization.is_some())
            .field("has_cookie", &self.cookie.is_some())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// An answer: status, content type, extra headers and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self { status, content_type: TEXT, headers: Vec::new(), body: body.into().into_bytes() }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: Option<IpAddr>,
    is_tls: bool,
    handler: &dyn HttpHandler,
) -> std::io::Result<()> {
    let mut request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(read) => read?,
        Err(_) => return Ok(()),
    };
    if let ReadRequest::Complete(request) = &mut request {
        (request.peer, request.is_tls) = (peer, is_tls);
    }
    let response = match &request {
        ReadRequest::HeadTooLarge => Response::text(431, format!("request head over {MAX_REQUEST_HEAD_BYTES} bytes\n")),
        ReadRequest::BodyTooLarge => Response::text(413, format!("request body over {MAX_REQUEST_BODY_BYTES} bytes\n")),
        ReadRequest::NotHttp => Response::text(400, "not an HTTP/1 request\n"),
        ReadRequest::Complete(request) => handler.answer(request).await,
    };
    let is_head = matches!(&request, ReadRequest::Complete(r) if r.method == "HEAD");
    let reason = match response.status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !is_head {
        stream.write_all(&response.body).await?;
    }
    stream.shutdown().await
}

/// What reading a request gave.
enum ReadRequest {
    Complete(Box<Request>),
    HeadTooLarge,
    BodyTooLarge,
    NotHttp,
}

/// The request head (up to the blank line) and the body its `Content-Length` announces.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<ReadRequest> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = head_end(&bytes) {
            break end;
        }
        if bytes.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(ReadRequest::HeadTooLarge);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break bytes.len();
        }
        bytes.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end.min(bytes.len())]).into_owned();
    let Some(mut request) = parse_request(&head) else { return Ok(ReadRequest::NotHttp) };
    if request.content_length > MAX_REQUEST_BODY_BYTES {
        return Ok(ReadRequest::BodyTooLarge);
    }
    let mut body = bytes.split_off(head_end.min(bytes.len()));
    while body.len() < request.content_length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(request.content_length);
    request.body = body;
    Ok(ReadRequest::Complete(Box::new(request)))
}

/// Where the head ends (after its blank line), if it has.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|at| at + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_request(head: &str) -> Option<Request> {
    let mut lines = head.lines();
    let mut words = lines.next()?.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request =
        Request { method: method.to_string(), path: path.to_string(), query: query.to_string(), ..Request::default() };
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("accept") {
            request.wants_openmetrics |= value.contains("application/openmetrics-text");
        } else if name.eq_ignore_ascii_case("host") {
            request.host = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("origin") {
            request.origin = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("sec-fetch-site") {
            request.fetch_site = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-type") {
            request.content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("authorization") {
            request.authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("cookie") {
            // Browsers may split cookies over several headers (HTTP/2 does; HTTP/1.1 clients rarely).
            request.cookie = Some(match request.cookie.take() {
                Some(earlier) => format!("{earlier}; {value}"),
                None => value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().ok()?;
        }
    }
    Some(request)
}

/// The answer to a request whose credentials were refused, or that needs some and has none.
pub fn unauthorized(message: &str) -> Response {
    Response {
        status: 401,
        content_type: TEXT,
        headers: vec![("www-authenticate", "Bearer realm=\"rill\"".to_string())],
        body: format!("{message}\n").into_bytes(),
    }
}

async fn route(request: &Request, state: &AdminState) -> Response {
    if matches!(request.path.as_str(), "/health" | "/ready") {
        return health_or_ready(request, state);
    }
    let caller = match state
        .auth
        .authenticate(request.authorization.as_deref(), request.cookie.as_deref(), std::time::SystemTime::now())
        .await
    {
        Ok(caller) => caller,
        Err(refused) => {
            tracing::debug!(path = request.path, peer = ?request.peer, "admin request refused: {refused}");
            return unauthorized(&format!("unauthorized: {refused}"));
        }
    };
    if request.path != "/metrics" {
        return match &state.console {
            Some(console) => console.handle(request, &caller).await,
            None => Response::text(
                404,
                "not found: the admin listener serves /metrics, /health and /ready (the console is off)\n",
            ),
        };
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET and HEAD are served\n");
    }
    if state.auth.is_required() && !caller.is_authenticated() {
        return unauthorized(
            "unauthorized: /metrics needs `Authorization: Bearer TOKEN` (`rill token create USER`; Prometheus: \
             `authorization: {credentials: TOKEN}` in the scrape config)",
        );
    }
    metrics(request, state, &caller).await
}

fn health_or_ready(request: &Request, state: &AdminState) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET and HEAD are served\n");
    }
    match request.path.as_str() {
        "/health" => Response::text(200, "ok\n"),
        _ => match not_ready_reason(state) {
            None => Response::text(200, "ready\n"),
            Some(reason) => Response::text(503, format!("not ready: {reason}\n")),
        },
    }
}

async fn metrics(request: &Request, state: &AdminState, caller: &Caller) -> Response {
    tracing::debug!(principal = %caller.principal(), "metrics scraped");
    let (node, metrics, controller) = (Arc::clone(&state.node), Arc::clone(&state.metrics), state.controller.clone());
    let openmetrics = request.wants_openmetrics;
    let console_sessions = state.auth.session_count(std::time::SystemTime::now());
    let encoded = tokio::task::spawn_blocking(move || {
        super::encode(super::Scraped { node, metrics, controller, console_sessions }, openmetrics)
    })
    .await;
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match encoded {
        Ok(Ok(text)) => Response { status: 200, content_type, headers: Vec::new(), body: text.into_bytes() },
        _ => Response::text(500, "metrics could not be encoded\n"),
    }
}

/// Why the node is not ready for traffic, if it is not.
fn not_ready_reason(state: &AdminState) -> Option<&'static str> {
    if !state.is_started.load(Ordering::Acquire) || state.node.is_shutting_down() {
        return Some("starting or shutting down");
    }
    let controller = state.controller.as_ref()?;
    match controller.metadata().nodes.get(&controller.node_id).map(|record| record.state) {
        Some(NodeState::Alive) => None,
        Some(NodeState::Fenced) => Some("fenced by the controller"),
        None => Some("not yet registered with the controller"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_and_accept_header_are_read() {
        let request = parse_request(
            "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
        );
        let expected = Request {
            method: "GET".into(),
            path: "/metrics".into(),
            query: "x=1".into(),
            wants_openmetrics: true,
            host: Some("a".into()),
            ..Request::default()
        };
        assert_eq!(request, Some(expected));
        assert_eq!(parse_request("GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request("\u{16}\u{3}\u{1}garbage"), None);
    }
}
