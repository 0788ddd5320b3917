//! The admin HTTP listener (`admin_listen`, 127.0.0.1:9644 by default): `GET /metrics`, `/health`, `/ready`.
//!
//! A deliberately small HTTP/1.1 server: one request per connection, answered and closed, at most
//! `MAX_ADMIN_CONNECTIONS` at once, a request head of at most `MAX_REQUEST_HEAD_BYTES` read within
//! `REQUEST_TIMEOUT`. That is all Prometheus, load balancers' health checks and `rill top` need, and it keeps a
//! second HTTP stack (and its limits) out of the broker.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::NodeMetrics;
use crate::cluster::{metadata::NodeState, Controller};
use crate::node::Node;

/// Admin connections served at once; one more is closed unanswered.
const MAX_ADMIN_CONNECTIONS: usize = 32;
/// A request line and headers larger than this are refused (431).
const MAX_REQUEST_HEAD_BYTES: usize = 8 << 10;
/// A client that has not sent its whole request head by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin listener answers from.
#[derive(Clone)]
pub struct AdminState {
    pub node: Arc<Node>,
    pub metrics: Arc<NodeMetrics>,
    pub controller: Option<Arc<Controller>>,
    /// True once the data dir is open and every partition recovered; false again when shutdown begins.
    pub is_started: Arc<AtomicBool>,
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves admin requests on `listener` until the task is aborted: at the end of a shutdown, so that `/ready`
/// says 503 while the node drains.
pub fn serve(listener: TcpListener, state: AdminState) -> JoinHandle<()> {
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
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(err) = answer(stream, &state).await {
                    tracing::debug!(%peer, error = %err, "admin request failed");
                }
                drop(slot);
            });
        }
    })
}

/// A request as far as the admin listener cares.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    wants_openmetrics: bool,
}

async fn answer(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = match head.as_deref().map(parse_request) {
        None => (431, "text/plain; charset=utf-8", format!("request head over {MAX_REQUEST_HEAD_BYTES} bytes\n")),
        Some(None) => (400, "text/plain; charset=utf-8", "not an HTTP/1 request\n".to_string()),
        Some(Some(request)) => route(&request, state).await,
    };
    let is_head = head.as_deref().and_then(parse_request).is_some_and(|r| r.method == "HEAD");
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if !is_head {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head (up to the blank line); `None` when it exceeds the limit.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        head.extend_from_slice(&chunk[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(None);
        }
    }
}

fn parse_request(head: &str) -> Option<Request> {
    let mut lines = head.lines();
    let mut words = lines.next()?.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    let wants_openmetrics = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text")
        })
    });
    Some(Request { method: method.to_string(), path: path.to_string(), wants_openmetrics })
}

async fn route(request: &Request, state: &AdminState) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.method != "GET" && request.method != "HEAD" {
        return (405, TEXT, "only GET and HEAD are served\n".to_string());
    }
    match request.path.as_str() {
        "/health" => (200, TEXT, "ok\n".to_string()),
        "/ready" => match not_ready_reason(state) {
            None => (200, TEXT, "ready\n".to_string()),
            Some(reason) => (503, TEXT, format!("not ready: {reason}\n")),
        },
        "/metrics" => {
            let (node, metrics, controller) =
                (Arc::clone(&state.node), Arc::clone(&state.metrics), state.controller.clone());
            let openmetrics = request.wants_openmetrics;
            let encoded =
                tokio::task::spawn_blocking(move || super::encode(node, metrics, controller, openmetrics)).await;
            match encoded {
                Ok(Ok(text)) if openmetrics => {
                    (200, "application/openmetrics-text; version=1.0.0; charset=utf-8", text)
                }
                Ok(Ok(text)) => (200, "text/plain; version=0.0.4; charset=utf-8", text),
                _ => (500, TEXT, "metrics could not be encoded\n".to_string()),
            }
        }
        _ => (404, TEXT, "not found: the admin listener serves /metrics, /health and /ready\n".to_string()),
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
        assert_eq!(request, Some(Request { method: "GET".into(), path: "/metrics".into(), wants_openmetrics: true }));
        assert_eq!(parse_request("GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request("\u{16}\u{3}\u{1}garbage"), None);
    }
}
