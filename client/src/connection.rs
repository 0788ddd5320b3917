//! The connection to a broker: one HTTP/2 channel shared by every producer, consumer and admin of a [`Client`].
//!
//! Why one channel: gRPC multiplexes calls as HTTP/2 streams over one TCP connection, so a producer's produce
//! calls, a consumer's long-polls and admin calls run side by side without a pool. The channel
//! ([`crate::http2::Http2Channel`], h2 without tonic's `Channel` and its buffer task) reconnects by itself when the
//! connection drops; the call that saw the drop fails with UNAVAILABLE and the producer's retry policy sends it
//! again over the new connection.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rill_protocol::v1::consumer_groups_client::ConsumerGroupsClient;
use rill_protocol::v1::records_client::RecordsClient;
use rill_protocol::v1::topic_admin_client::TopicAdminClient;

use crate::http2::Http2Channel;

use crate::error::{Error, RequestContext, Result};

/// How the client talks to the broker. The defaults suit batches up to 8 MiB on a fast network.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Longest wait for the TCP (and HTTP/2) connection to be established.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to an admin or offsets call. Produce and fetch have their own.
    pub request_timeout: Duration,
    /// Largest gRPC message sent or received. Must hold the largest batch plus its framing.
    pub max_message_bytes: usize,
    /// HTTP/2 flow-control window of one call. Large, so an 8 MiB batch is not sent in small windows.
    pub stream_window_bytes: u32,
    /// HTTP/2 flow-control window of the whole connection, shared by concurrent calls.
    pub connection_window_bytes: u32,
    /// Largest HTTP/2 frame the broker may send us (16 KiB to 16 MiB − 1). HTTP/2's default, 16 KiB, cut every
    /// fetched megabyte into 64 frames, each handled and copied on its own: replay ran at 1.2–1.4 GB/s with it,
    /// 1.9–2.4 GB/s with 1 MiB (`rill bench consume --workload 8-topics-1-partition-1kb`, same session).
    pub max_frame_bytes: u32,
    /// HTTP/2 PING interval that detects a dead connection while calls wait (a long-poll, a slow append).
    pub keep_alive_interval: Duration,
    /// TLS settings (docs/security.md). An `https://` address uses TLS with these, or with only the public roots
    /// when `None`; an address without a scheme (given, or learned from the broker: a leader, a coordinator)
    /// uses TLS when this is set; an `http://` address never does.
    pub tls: Option<crate::tls::ClientTls>,
    /// A bearer token (docs/security.md) sent as `authorization: Bearer TOKEN` on every call, to every node.
    pub token: Option<BearerToken>,
    /// The client id (Kafka's `client.id`) sent as `rill-client-id` on every call: what client quotas set for a
    /// client id apply to (docs/kafka.md, "Client quotas"). Without one, quotas see client id "".
    pub client_id: Option<ClientId>,
    /// Send produces over one long-lived `ProduceStream` call per broker connection (one message each way per
    /// produce) rather than a unary call each (a new HTTP/2 stream each); a broker without the method gets
    /// unary calls either way. On by default (docs/benchmarks.md, "Latency: one produce stream per connection").
    pub uses_produce_stream: bool,
}

/// A bearer token, checked once to be sendable as a header. Its `Debug` hides it, so a logged config leaks
/// nothing.
#[derive(Clone)]
pub struct BearerToken {
    source: TokenSourceKind,
}

#[derive(Clone)]
enum TokenSourceKind {
    Fixed(http::HeaderValue),
    /// Asked on every call: an OAuth token that expires and is renewed (docs/security.md).
    Source(std::sync::Arc<dyn TokenSource>),
}

/// Where a client's token comes from when it changes over the client's life: an OAuth access token from an
/// identity provider, renewed before it expires. Asked on every call (and when a produce stream opens), so it
/// should answer from memory and renew in the background.
pub trait TokenSource: Send + Sync + 'static {
    /// The current token (without `Bearer `).
    fn token(&self) -> String;
}

impl<F: Fn() -> String + Send + Sync + 'static> TokenSource for F {
    fn token(&self) -> String {
        self()
    }
}

impl BearerToken {
    /// Fails for an empty token or one with characters a header cannot carry (visible ASCII only).
    pub fn new(token: &str) -> Result<Self> {
        let header = bearer_header(token)?;
        Ok(Self { source: TokenSourceKind::Fixed(header) })
    }

    /// A token asked of `source` on every call, for a token that expires and is renewed (an OAuth access token).
    /// A token it answers that a header cannot carry is not sent, and the broker answers UNAUTHENTICATED.
    pub fn from_source(source: impl TokenSource) -> Self {
        Self { source: TokenSourceKind::Source(std::sync::Arc::new(source)) }
    }

    fn header(&self) -> Option<http::HeaderValue> {
        match &self.source {
            TokenSourceKind::Fixed(header) => Some(header.clone()),
            TokenSourceKind::Source(source) => match bearer_header(&source.token()) {
                Ok(header) => Some(header),
                Err(err) => {
                    tracing::warn!(error = %err, "the token source gave a token no header can carry; sent none");
                    None
                }
            },
        }
    }
}

fn bearer_header(token: &str) -> Result<http::HeaderValue> {
    let invalid = || Error::InvalidUse { message: "a token must be non-empty visible ASCII (no spaces)".into() };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    let mut header = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| invalid())?;
    // HPACK never indexes it, so it does not linger in a compression table.
    header.set_sensitive(true);
    Ok(header)
}

/// A client id, checked once to be sendable as a header: 1 to 255 bytes of visible ASCII.
#[derive(Clone, Debug)]
pub struct ClientId {
    header: http::HeaderValue,
}

impl ClientId {
    pub fn new(client_id: &str) -> Result<Self> {
        let invalid = || Error::InvalidUse {
            message: format!("a client id must be 1 to 255 bytes of visible ASCII, not {client_id:?}"),
        };
        if client_id.is_empty() || client_id.len() > 255 || !client_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        Ok(Self { header: http::HeaderValue::from_str(client_id).map_err(|_| invalid())? })
    }
}

/// The header [`ClientConfig::client_id`] goes in.
const CLIENT_ID_HEADER: &str = "rill-client-id";

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// A channel to one node that puts the client's token and client id, if any, on every call: every generated
/// client and the hand-made produce and fetch calls (`records_call.rs`) go through it, so none can forget it.
#[derive(Clone, Debug)]
pub(crate) struct BrokerChannel {
    channel: Http2Channel,
    authorization: Option<BearerToken>,
    client_id: Option<http::HeaderValue>,
    /// The connection's produce stream (`produce_stream.rs`), shared by clones as the connection is.
    pub(crate) produce_stream: std::sync::Arc<crate::produce_stream::ProduceStream>,
    /// [`ClientConfig::uses_produce_stream`].
    pub(crate) uses_produce_stream: bool,
}

impl BrokerChannel {
    pub(crate) fn new(channel: Http2Channel, config: &ClientConfig) -> Self {
        Self {
            channel,
            authorization: config.token.clone(),
            client_id: config.client_id.as_ref().map(|id| id.header.clone()),
            produce_stream: Default::default(),
            uses_produce_stream: config.uses_produce_stream,
        }
    }

    /// Opens a long-lived call at `path`, with the client's token like any call.
    pub(crate) async fn open_stream(
        &self,
        path: &'static str,
    ) -> std::result::Result<(h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>), tonic::Status> {
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(path);
        *request.version_mut() = http::Version::HTTP_2;
        let headers = request.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        self.identify(headers);
        self.channel.open_stream(request.into_parts().0).await
    }

    /// Puts the client's token and client id, if any, on a call's headers.
    fn identify(&self, headers: &mut http::HeaderMap) {
        if let Some(authorization) = self.authorization.as_ref().and_then(BearerToken::header) {
            headers.insert(http::header::AUTHORIZATION, authorization);
        }
        if let Some(client_id) = &self.client_id {
            headers.insert(CLIENT_ID_HEADER, client_id.clone());
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for BrokerChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::Status;
    type Future = <Http2Channel as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        self.identify(request.headers_mut());
        self.channel.call(request)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_message_bytes: 64 << 20,
            stream_window_bytes: 16 << 20,
            connection_window_bytes: 64 << 20,
            max_frame_bytes: 1 << 20,
            keep_alive_interval: Duration::from_secs(20),
            tls: None,
            token: None,
            client_id: None,
            uses_produce_stream: true,
        }
    }
}

/// A handle on one broker. Cheap to clone: clones share the channel (and so the TCP connection).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    /// One channel per address given (`a:1,b:2`): the first that connected, and lazy ones to the others.
    bootstrap: Vec<BrokerChannel>,
    /// Which of `bootstrap` calls go to; moves on when it cannot be reached.
    current: AtomicUsize,
    config: ClientConfig,
    leaders: crate::leaders::Leaders,
    coordinators: crate::coordinators::Coordinators,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the broker at `addr` (`host:port` or `http://host:port`) with the default [`ClientConfig`],
    /// failing with [`Error::Unavailable`] if it cannot be reached within the connect timeout.
    pub async fn connect(addr: impl AsRef<str>) -> Result<Self> {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// [`Client::connect`] with explicit settings. `addr` may list several nodes of a cluster, comma-separated:
    /// the client connects to the first that answers and learns the others from it.
    pub async fn connect_with(addr: impl AsRef<str>, config: ClientConfig) -> Result<Self> {
        let config = with_tls_for_https(addr.as_ref(), config);
        let addresses: Vec<&str> = addr.as_ref().split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
        let endpoints = addresses.iter().map(|a| endpoint(a, &config)).collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::InvalidAddress { addr: addr.as_ref().to_owned(), reason: "no address".into() });
        }
        let mut failures = Vec::new();
        for (index, (url, endpoint)) in endpoints.iter().enumerate() {
            match endpoint.connect().await {
                Ok(channel) => {
                    let bootstrap = endpoints
                        .iter()
                        .enumerate()
                        .map(|(i, (_, e))| if i == index { channel.clone() } else { e.connect_lazy() })
                        .map(|channel| BrokerChannel::new(channel, &config))
                        .collect();
                    return Ok(Self::from_parts(url.clone(), bootstrap, index, config));
                }
                Err(status) => failures.push(status.message().to_owned()),
            }
        }
        Err(Error::Unavailable { message: failures.join("; ") })
    }

    fn from_parts(addr: String, bootstrap: Vec<BrokerChannel>, current: usize, config: ClientConfig) -> Self {
        let inner = Inner {
            addr,
            bootstrap,
            current: AtomicUsize::new(current),
            config,
            leaders: crate::leaders::Leaders::default(),
            coordinators: crate::coordinators::Coordinators::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    pub(crate) fn leaders(&self) -> &crate::leaders::Leaders {
        &self.inner.leaders
    }

    pub(crate) fn coordinators(&self) -> &crate::coordinators::Coordinators {
        &self.inner.coordinators
    }

    /// How many bootstrap nodes were given (at least 1).
    pub(crate) fn bootstrap_count(&self) -> usize {
        self.inner.bootstrap.len().max(1)
    }

    /// Which bootstrap node calls without a known leader go to.
    pub(crate) fn bootstrap_index(&self) -> usize {
        self.inner.current.load(Ordering::Acquire) % self.inner.bootstrap.len().max(1)
    }

    /// Sends later calls to the next bootstrap node (a no-op with one).
    pub(crate) fn next_bootstrap(&self) {
        let count = self.inner.bootstrap.len();
        if count > 1 {
            let _ = self.inner.current.fetch_update(Ordering::AcqRel, Ordering::Acquire, |i| Some((i + 1) % count));
        }
    }

    /// A client that connects on its first call instead of now: for starting before the broker does. Must be
    /// called inside a Tokio runtime (the connection's task is spawned there).
    pub fn connect_lazy(addr: impl AsRef<str>, config: ClientConfig) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidUse { message: "Client::connect_lazy needs a Tokio runtime".into() });
        }
        let config = with_tls_for_https(addr.as_ref(), config);
        let endpoints = addr
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| endpoint(a, &config))
            .collect::<Result<Vec<_>>>()?;
        let Some((url, _)) = endpoints.first() else {
            return Err(Error::InvalidAddress { addr: addr.as_ref().to_owned(), reason: "no address".into() });
        };
        let url = url.clone();
        let bootstrap = endpoints.iter().map(|(_, e)| BrokerChannel::new(e.connect_lazy(), &config)).collect();
        Ok(Self::from_parts(url, bootstrap, 0, config))
    }

    /// The broker address, as `http://host:port` or `https://host:port`.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub(crate) fn records(&self) -> RecordsClient<BrokerChannel> {
        let max = self.inner.config.max_message_bytes;
        RecordsClient::new(self.channel()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    /// The connection itself, for calls made without a generated client (see `records_call.rs`).
    pub(crate) fn channel(&self) -> BrokerChannel {
        self.inner.bootstrap[self.bootstrap_index()].clone()
    }

    pub(crate) fn topics(&self) -> TopicAdminClient<BrokerChannel> {
        let max = self.inner.config.max_message_bytes;
        TopicAdminClient::new(self.channel()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub(crate) fn groups(&self) -> ConsumerGroupsClient<BrokerChannel> {
        let max = self.inner.config.max_message_bytes;
        ConsumerGroupsClient::new(self.channel()).max_decoding_message_size(max).max_encoding_message_size(max)
    }
}

/// Runs one call with a deadline: the `grpc-timeout` header tells the broker, the local timer makes sure the
/// caller is answered even if the broker never does. Statuses become [`Error`]s here.
pub(crate) async fn call<T, F>(timeout: Duration, ctx: RequestContext<'_>, call: F) -> Result<T>
where
    F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let ctx = ctx.with_timeout(timeout);
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(Error::from_status(&status, ctx)),
        Err(_) => Err(Error::TimedOut { after: timeout, message: "no answer from the broker".into() }),
    }
}

/// A request carrying its deadline for the broker.
pub(crate) fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

pub(crate) fn endpoint(addr: &str, config: &ClientConfig) -> Result<(String, BrokerEndpoint)> {
    // h2 panics on a frame size outside what HTTP/2 allows; a setting deserves an error instead.
    if !(16_384..=16_777_215).contains(&config.max_frame_bytes) {
        return Err(Error::InvalidUse {
            message: format!("max_frame_bytes {} is outside 16384..=16777215", config.max_frame_bytes),
        });
    }
    let invalid = |reason: String| Error::InvalidAddress { addr: addr.to_owned(), reason };
    let (url, is_tls) = match addr.split_once("://") {
        Some(("https", _)) => (addr.to_owned(), true),
        Some(("http", _)) => (addr.to_owned(), false),
        Some((scheme, _)) => return Err(invalid(format!("{scheme}:// is neither http:// nor https://"))),
        None if config.tls.is_some() => (format!("https://{addr}"), true),
        None => (format!("http://{addr}"), false),
    };
    let uri: http::Uri = url.parse().map_err(|err| invalid(error_chain(&err)))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host: use host:port".into()));
    }
    if uri.port_u16().is_none() {
        return Err(invalid("no port: use host:port".into()));
    }
    let tls = match is_tls {
        true => Some(
            config
                .tls
                .clone()
                .unwrap_or_default()
                .connector()
                .map_err(|err| invalid(format!("TLS settings: {err}")))?,
        ),
        false => None,
    };
    Ok((url, BrokerEndpoint { uri, tls, config: config.clone() }))
}

/// Where one broker is and how to reach it: over plain TCP, or over TLS through the client's own connector.
pub(crate) struct BrokerEndpoint {
    uri: http::Uri,
    tls: Option<crate::tls::TlsConnector>,
    config: ClientConfig,
}

impl BrokerEndpoint {
    /// A channel with its connection open: UNAVAILABLE, naming the address, if it cannot be opened.
    pub(crate) async fn connect(&self) -> std::result::Result<Http2Channel, tonic::Status> {
        let channel = self.connect_lazy();
        channel.connect().await?;
        Ok(channel)
    }

    pub(crate) fn connect_lazy(&self) -> Http2Channel {
        Http2Channel::lazy(self.uri.clone(), self.tls.clone(), &self.config)
    }
}

/// An `https://` address in the list makes the whole client speak TLS: the nodes it learns of (given as
/// `host:port`) are the same cluster's.
fn with_tls_for_https(addr: &str, mut config: ClientConfig) -> ClientConfig {
    if config.tls.is_none() && addr.split(',').any(|a| a.trim().starts_with("https://")) {
        config.tls = Some(crate::tls::ClientTls::default());
    }
    config
}

fn error_chain(err: &dyn std::error::Error) -> String {
    crate::error::with_causes(err.to_string(), err.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_without_a_port_or_with_garbage_are_rejected() {
        assert!(matches!(Client::connect("localhost").await, Err(Error::InvalidAddress { .. })));
        assert!(matches!(Client::connect("http://[::1").await, Err(Error::InvalidAddress { .. })));
    }

    #[tokio::test]
    async fn a_list_of_unreachable_nodes_names_each_and_an_empty_list_is_refused() {
        let dead = |_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").to_string()
        };
        let (a, b): (String, String) = (dead(0), dead(1));
        let Err(Error::Unavailable { message }) = Client::connect(format!("{a},{b}")).await else {
            panic!("connected to closed ports")
        };
        assert!(message.contains(&a) && message.contains(&b), "{message}");
        assert!(matches!(Client::connect(" , ").await, Err(Error::InvalidAddress { .. })));
        let lazy = Client::connect_lazy(format!("{a}, {b}"), ClientConfig::default()).expect("lazy list");
        assert_eq!(lazy.addr(), format!("http://{a}"));
    }

    #[tokio::test]
    async fn a_frame_size_http2_forbids_is_an_error_not_a_panic() {
        for max_frame_bytes in [0, 16_383, 16_777_216] {
            let config = ClientConfig { max_frame_bytes, ..ClientConfig::default() };
            let Err(err) = Client::connect_lazy("127.0.0.1:9", config) else {
                panic!("{max_frame_bytes} was accepted")
            };
            assert!(matches!(&err, Error::InvalidUse { message } if message.contains("max_frame_bytes")), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable_not_a_panic() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        let err = Client::connect(addr.to_string()).await.expect_err("nothing listens there");
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(err.is_retriable());
    }

    #[tokio::test]
    async fn lazy_clients_share_one_channel_across_clones() {
        let client = Client::connect_lazy("127.0.0.1:9", ClientConfig::default()).expect("valid address");
        let clone = client.clone();
        assert!(Arc::ptr_eq(&client.inner, &clone.inner));
        assert_eq!(clone.addr(), "http://127.0.0.1:9");
    }
}
