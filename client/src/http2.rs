//! One HTTP/2 connection to one broker, driven by `h2` itself rather than tonic's `Channel`.
//!
//! Why: a lone record's produce and its fetch each crossed three tasks on the client before this (the caller,
//! the `Channel`'s buffer task, hyper's connection task, and hyper's per-call task that pipes the request body
//! and carries the answer back), each crossing a wake and a context switch on a busy machine (docs/benchmarks.md,
//! "Latency: the client's HTTP/2 connection without tonic's `Channel`"). Here the caller opens the stream, hands
//! the body's chunks to h2 and waits for the answer in its own task; the only other task is the one that drives
//! the connection's socket.
//!
//! What the `Channel` gave that the client relies on, kept here:
//! - many concurrent calls over the one connection (h2 queues the streams past the broker's limit);
//! - a connection opened on the first call or at once ([`Http2Channel::connect`]), at most one attempt at a time,
//!   bounded by `connect_timeout`, and counted as up only once the broker has answered a PING on it (below);
//! - reconnection: a connection that breaks is forgotten and the next call opens another; the calls that saw it
//!   break fail with UNAVAILABLE or INTERNAL, which [`crate::Error`] treats as retriable;
//! - keep-alive PINGs every `keep_alive_interval`, even while idle; no answer within `connect_timeout` closes
//!   the connection, failing the calls that wait on it;
//! - a connection counts as up only once the broker has answered on it: h2's handshake returns as soon as our
//!   preface is written, which a frozen process's kernel accepts and buffers (SIGSTOP, a hung broker), so
//!   without an answer the first call would wait out its whole request timeout there instead of the client
//!   moving to the next bootstrap node after `connect_timeout`. The answer awaited is a PING's: HTTP/2 makes the
//!   server's SETTINGS its first frame, so a PONG proves both. One round trip, at connect only;
//! - TLS through [`crate::tls::TlsConnector`] (with its 1 MiB send buffer), TCP_NODELAY on plain TCP too, and
//!   the windows and frame size of [`ClientConfig`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{PingPong, RecvStream, SendStream};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use http_body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::connection::ClientConfig;
use crate::tls::TlsConnector;

/// A handle on the connection to one broker. Clones share it.
#[derive(Clone)]
pub(crate) struct Http2Channel {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    /// The open connection's sender and the generation it was opened in; `None` before the first call and
    /// after the connection broke.
    live: Mutex<Option<(SendRequest<Bytes>, u64)>>,
    /// Held while a connection is being opened, so concurrent first calls open one, not one each.
    opening: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

/// Where the broker is and how connections to it are set up.
struct Target {
    scheme: Scheme,
    authority: Authority,
    /// The URI a TLS connector wants (host and port); also what error messages name.
    uri: Uri,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    keep_alive_interval: Duration,
    stream_window_bytes: u32,
    connection_window_bytes: u32,
    max_frame_bytes: u32,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
    /// TCP (and TLS) connected, but no HTTP/2 frame came back: a stopped or hung process whose kernel still
    /// accepts connections.
    #[error("the node accepted the connection but did not answer HTTP/2 within {} ms", .0.as_millis())]
    Silent(Duration),
    #[error("the node closed the connection before answering HTTP/2")]
    ClosedBeforeAnswer,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP/2 handshake: {0}")]
    Handshake(#[from] h2::Error),
}

impl std::fmt::Debug for Http2Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Channel").field("uri", &self.shared.target.uri).finish_non_exhaustive()
    }
}

impl Http2Channel {
    /// A channel to `uri` (`http://host:port`; TLS when `tls` is given) that connects on its first call.
    pub(crate) fn lazy(uri: Uri, tls: Option<TlsConnector>, config: &ClientConfig) -> Self {
        let scheme = if tls.is_some() { Scheme::HTTPS } else { Scheme::HTTP };
        let authority = uri.authority().cloned().unwrap_or_else(|| Authority::from_static("localhost"));
        let target = Target {
            scheme,
            authority,
            uri,
            tls,
            connect_timeout: config.connect_timeout,
            keep_alive_interval: config.keep_alive_interval,
            stream_window_bytes: config.stream_window_bytes,
            connection_window_bytes: config.connection_window_bytes,
            max_frame_bytes: config.max_frame_bytes,
        };
        let shared = Shared { target, live: Mutex::new(None), opening: Default::default(), generations: 0.into() };
        Self { shared: Arc::new(shared) }
    }

    /// Opens a long-lived stream on the connection (opening the connection if need be): `head` is the call's
    /// request head; its body goes through the returned `SendStream`, its answer through the `ResponseFuture`.
    pub(crate) async fn open_stream(
        &self,
        head: http::request::Parts,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), Status> {
        Shared::open_stream(&self.shared, head).await
    }

    /// Opens the connection now, unless one is open: UNAVAILABLE, naming the address, if it cannot be.
    pub(crate) async fn connect(&self) -> Result<(), Status> {
        Shared::open(&self.shared).await.map(drop)
    }
}

impl tower::Service<http::Request<Body>> for Http2Channel {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Status>> + Send>>;

    /// Always ready: h2 itself queues streams past the broker's concurrency limit, and a missing connection is
    /// opened by the call.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Shared::send(&shared, request).await })
    }
}

impl Shared {
    fn live(&self) -> Option<(SendRequest<Bytes>, u64)> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Drops the connection of `generation` if it is still the live one: the next call opens another.
    fn forget(&self, generation: u64) {
        let mut live = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if live.as_ref().is_some_and(|(_, live_generation)| *live_generation == generation) {
            *live = None;
        }
    }

    async fn open(this: &Arc<Self>) -> Result<(SendRequest<Bytes>, u64), Status> {
        let _one_at_a_time = this.opening.lock().await;
        if let Some(live) = this.live() {
            return Ok(live);
        }
        let target = &this.target;
        let generation = this.generations.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + target.connect_timeout;
        let opened = target.open(Arc::downgrade(this), generation, deadline).await;
        let sender = opened.map_err(|err| Status::unavailable(format!("cannot connect to {}: {err}", target.uri)))?;
        *this.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((sender.clone(), generation));
        Ok((sender, generation))
    }

    /// The live connection (opened if there is none) once it can take a new stream, with its generation. Fails
    /// at once if the connection is known to be broken (and forgets it); a stream over the broker's limit waits.
    async fn ready(this: &Arc<Self>) -> Result<(SendRequest<Bytes>, u64), Status> {
        let (sender, generation) = match this.live() {
            Some(live) => live,
            None => Self::open(this).await?,
        };
        let sender = sender.ready().await.map_err(|err| {
            this.forget(generation);
            status_of(err)
        })?;
        Ok((sender, generation))
    }

    async fn open_stream(
        this: &Arc<Self>,
        mut head: http::request::Parts,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), Status> {
        let (mut sender, generation) = Self::ready(this).await?;
        head.uri = this.target.absolute(head.uri)?;
        sender.send_request(http::Request::from_parts(head, ()), false).map_err(|err| {
            if err.is_io() || err.is_go_away() {
                this.forget(generation);
            }
            status_of(err)
        })
    }

    async fn send(this: &Arc<Self>, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        let (mut sender, generation) = Self::ready(this).await?;
        let (mut head, body) = request.into_parts();
        head.uri = this.target.absolute(head.uri)?;
        let is_bodyless = body.is_end_stream();
        let (response, stream) =
            sender.send_request(http::Request::from_parts(head, ()), is_bodyless).map_err(|err| {
                if err.is_io() || err.is_go_away() {
                    this.forget(generation);
                }
                status_of(err)
            })?;
        let upload = (!is_bodyless).then_some(Upload { body, stream });
        let response = Exchange { upload, response }.await?;
        let (head, recv) = response.into_parts();
        Ok(http::Response::from_parts(head, Body::new(AnswerBody { recv, state: AnswerState::Data })))
    }
}

impl Target {
    /// The request's path under this broker's scheme and authority: h2 sends them as `:scheme` and
    /// `:authority`, which the generated clients leave to the channel.
    fn absolute(&self, uri: Uri) -> Result<Uri, Status> {
        let mut parts = uri.into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        Uri::from_parts(parts).map_err(|err| Status::internal(format!("cannot address a call to {}: {err}", self.uri)))
    }

    /// Opens TCP (and TLS), runs the HTTP/2 handshake, waits for the broker's first answer and spawns the task
    /// that drives the connection, all by `deadline`.
    async fn open(
        &self,
        shared: Weak<Shared>,
        generation: u64,
        deadline: tokio::time::Instant,
    ) -> Result<SendRequest<Bytes>, ConnectError> {
        let timed_out = |_| ConnectError::TimedOut(self.connect_timeout);
        match &self.tls {
            Some(tls) => {
                let io = tokio::time::timeout_at(deadline, tls.connect(&self.uri)).await.map_err(timed_out)??;
                self.handshake(io, shared, generation, deadline).await
            }
            None => {
                let host = self.authority.host().trim_start_matches('[').trim_end_matches(']');
                let port = self.authority.port_u16().unwrap_or(80);
                let tcp =
                    tokio::time::timeout_at(deadline, TcpStream::connect((host, port))).await.map_err(timed_out)??;
                // A lone record's request must leave at once, not wait for the previous segment's ACK.
                tcp.set_nodelay(true)?;
                self.handshake(tcp, shared, generation, deadline).await
            }
        }
    }

    async fn handshake<T>(
        &self,
        io: T,
        shared: Weak<Shared>,
        generation: u64,
        deadline: tokio::time::Instant,
    ) -> Result<SendRequest<Bytes>, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let silent = |_| ConnectError::Silent(self.connect_timeout);
        let handshake = h2::client::Builder::new()
            .initial_window_size(self.stream_window_bytes)
            .initial_connection_window_size(self.connection_window_bytes)
            .max_frame_size(self.max_frame_bytes)
            // hyper's client defaults, which the `Channel` used: no server push, 16 KiB of headers, 1 MiB buffered
            // a stream before its flow control asks for more.
            .enable_push(false)
            .max_header_list_size(16 << 10)
            .max_send_buffer_size(1 << 20)
            .handshake::<_, Bytes>(io);
        let (sender, mut connection) = tokio::time::timeout_at(deadline, handshake).await.map_err(silent)??;
        let mut pings = connection.ping_pong();
        if let Some(pings) = pings.as_mut() {
            let answered = first_answer(&mut connection, pings);
            tokio::time::timeout_at(deadline, answered).await.map_err(silent)??;
        }
        let (interval, timeout, uri) = (self.keep_alive_interval, self.connect_timeout, self.uri.clone());
        tokio::spawn(async move {
            let keep_alive = keep_alive(pings, interval, timeout);
            let why = tokio::select! {
                biased;
                result = &mut connection => match result {
                    Ok(()) => "closed".to_owned(),
                    Err(err) => err.to_string(),
                },
                why = keep_alive => why,
            };
            tracing::debug!(broker = %uri, %why, "HTTP/2 connection ended");
            // Dropping the connection fails the calls still waiting on it.
            drop(connection);
            if let Some(shared) = shared.upgrade() {
                shared.forget(generation);
            }
        });
        Ok(sender)
    }
}

/// Drives the connection until the broker answers a PING: its SETTINGS came first, so it speaks HTTP/2 and is
/// alive. Nothing else is sent before, so no call can be stranded on a connection that never answers.
async fn first_answer<T>(
    connection: &mut h2::client::Connection<T, Bytes>,
    pings: &mut PingPong,
) -> Result<(), ConnectError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        pong = pings.ping(h2::Ping::opaque()) => pong.map(drop).map_err(ConnectError::Handshake),
        ended = &mut *connection => Err(match ended {
            Ok(()) => ConnectError::ClosedBeforeAnswer,
            Err(err) => ConnectError::Handshake(err),
        }),
    }
}

/// PINGs the broker every `interval`; returns why the connection should end: no answer within `timeout`.
async fn keep_alive(pings: Option<PingPong>, interval: Duration, timeout: Duration) -> String {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(err)) => return format!("keep-alive PING failed: {err}"),
            Err(_) => return format!("no answer to a keep-alive PING within {timeout:?}"),
        }
    }
}

/// What a broken stream or connection means to a caller, as gRPC over HTTP/2 maps it
/// (grpc/doc/PROTOCOL-HTTP2.md, "Errors"); anything on the socket is UNAVAILABLE.
pub(crate) fn status_of(err: h2::Error) -> Status {
    let code = match err.reason() {
        _ if err.is_io() => Code::Unavailable,
        Some(h2::Reason::REFUSED_STREAM) => Code::Unavailable,
        Some(h2::Reason::CANCEL) => Code::Cancelled,
        Some(h2::Reason::ENHANCE_YOUR_CALM) => Code::ResourceExhausted,
        Some(h2::Reason::INADEQUATE_SECURITY) => Code::PermissionDenied,
        Some(_) => Code::Internal,
        None => Code::Unknown,
    };
    Status::new(code, format!("HTTP/2: {err}"))
}

/// A call in flight: its request body still being handed to h2, and the answer's headers awaited, both in the
/// caller's task.
struct Exchange {
    upload: Option<Upload>,
    response: ResponseFuture,
}

struct Upload {
    body: Body,
    stream: SendStream<Bytes>,
}

impl Future for Exchange {
    type Output = Result<http::Response<RecvStream>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(upload) = &mut self.upload {
            if let Poll::Ready(done) = upload.poll_send(cx) {
                self.upload = None;
                done?;
            }
        }
        let answer = std::task::ready!(Pin::new(&mut self.response).poll(cx)).map_err(status_of)?;
        // The broker answered before the whole request was handed over (an early refusal): the rest goes from a
        // task of its own, as the broker may still read it.
        if let Some(mut upload) = self.upload.take() {
            tokio::spawn(std::future::poll_fn(move |cx| upload.poll_send(cx).map(drop)));
        }
        Poll::Ready(Ok(answer))
    }
}

impl Upload {
    /// Hands the body's frames to h2 as they come. The bodies are in memory already (a produce's batches, one
    /// encoded message), so h2 buffers what the stream's window does not yet allow instead of the caller waiting
    /// for capacity chunk by chunk; an error sending means the stream is gone, which the answer reports.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    let _ = self.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(Ok(()));
                }
                Some(Err(status)) => {
                    self.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Err(status));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let is_last = self.body.is_end_stream();
                        if self.stream.send_data(data, is_last).is_err() || is_last {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let _ = self.stream.send_trailers(trailers);
                        }
                        return Poll::Ready(Ok(()));
                    }
                },
            }
        }
    }
}

/// An answer's body: its DATA frames as they arrive, each returned to the connection's window at once, then its
/// trailers (where gRPC puts the status).
struct AnswerBody {
    recv: RecvStream,
    state: AnswerState,
}

enum AnswerState {
    Data,
    Trailers,
    Done,
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            match self.state {
                AnswerState::Data => match std::task::ready!(self.recv.poll_data(cx)) {
                    Some(Ok(data)) => {
                        let _ = self.recv.flow_control().release_capacity(data.len());
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Some(Err(err)) => {
                        self.state = AnswerState::Done;
                        return Poll::Ready(Some(Err(status_of(err))));
                    }
                    None => self.state = AnswerState::Trailers,
                },
                AnswerState::Trailers => {
                    let trailers = std::task::ready!(self.recv.poll_trailers(cx));
                    self.state = AnswerState::Done;
                    return Poll::Ready(match trailers {
                        Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                        Ok(None) => None,
                        Err(err) => Some(Err(status_of(err))),
                    });
                }
                AnswerState::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, AnswerState::Done)
    }
}
