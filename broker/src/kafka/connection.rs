//! One Kafka connection: read a size-prefixed request, answer it, read the next. One request at a time, in
//! order, as Kafka's broker does (it mutes a connection while a request is in flight), so responses never need
//! reordering. While a request is answered (a produce waits for its append), the connection reads ahead into
//! its buffer, up to one more whole request (`request_buffer.rs`): a pipelining client (librdkafka keeps
//! several produce requests in flight) has its next request read by the time the answer is written, and a
//! connection holds at most two request buffers (`max_request_bytes` each). Reading ahead changes nothing a
//! client can see: requests are still answered one by one, in order.
//!
//! A request that cannot be framed or decoded closes this connection only: after a bad size or a body that
//! does not parse, nothing later on the stream can be trusted to start a frame. An API or version not served
//! closes it too, except ApiVersions, whose v0 answer every client can read whatever version it sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader, ShareFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use tokio::io::AsyncWriteExt;

use super::api_versions::{self, supported_versions};
use super::framing::{encode_response, EncodeError, FrameError, RequestPreamble};
use super::oversized::{self, OVERSIZED_PRODUCE_CEILING};
use super::request_buffer::RequestBuffer;
use super::request_time::{clock_of, HandlerClock};
use super::response_frame::{encode_response_pieces, BatchRun, ResponseFrame, UnplacedRuns};
use super::sasl::{Gate, SaslAnswer, SaslSession};
use super::{
    error_counts, fetch, init_producer_id, list_offsets, metadata, offset_for_leader_epoch, produce, share_fetch,
    KafkaContext,
};
use crate::quotas::{QuotaKey, ResolvedQuota};
use crate::tls::ServedStream;

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API {0:?} is not served (see ApiVersions)")]
    NotServed(ApiKey),
    #[error("{api:?} v{version} is not served: versions {min} to {max} are")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("API key {api_key} before SASL authentication (only ApiVersions, SaslHandshake, SaslAuthenticate are)")]
    Unauthenticated { api_key: i16 },
    #[error(
        "API key {api_key} after the SASL session expired (auth.connections_max_reauth_ms, or the token's exp) \
         without a re-authentication (KIP-368)"
    )]
    SessionExpired { api_key: i16 },
}

/// Serves one connection until the client closes it, it sends what cannot be answered, or the broker stops.
pub async fn serve(mut connection: ServedStream, kafka: Arc<KafkaContext>) {
    let peer = connection.peer_addr();
    let max_request_bytes = usize::try_from(kafka.node.config.max_request_bytes).unwrap_or(usize::MAX);
    let mut requests = RequestBuffer::new(max_request_bytes);
    let mut shutdown = kafka.node.shutdown.clone();
    let mut sasl = SaslSession::new(&kafka, connection.is_tls(), connection.peer_certificates());
    let mut software = ClientSoftware::default();
    tracing::debug!(?peer, "kafka connection");
    while !kafka.node.is_shutting_down() {
        requests.expect_raw_frames(sasl.expects_raw_frame());
        let request = match requests.next_request() {
            Ok(Some(request)) => request,
            Ok(None) if requests.is_peer_closed() => {
                if requests.partial_bytes() > 0 {
                    let partial_bytes = requests.partial_bytes();
                    tracing::debug!(?peer, partial_bytes, "kafka connection closed in the middle of a request");
                }
                return;
            }
            Ok(None) => {
                let read = tokio::select! {
                    read = requests.read_from(&mut connection) => read,
                    _ = shutdown.changed() => return,
                };
                if let Err(err) = read {
                    tracing::debug!(?peer, error = %err, "kafka connection closed while reading a request");
                    return;
                }
                continue;
            }
            Err(FrameError::TooLarge { size, limit }) if (size as usize) <= OVERSIZED_PRODUCE_CEILING => {
                if !answer_oversized(&kafka, &mut sasl, &mut requests, &mut connection, size as usize, limit).await {
                    return;
                }
                continue;
            }
            Err(err) => {
                tracing::info!(?peer, error = %RequestError::from(err), "closing kafka connection");
                return;
            }
        };
        let started = std::time::Instant::now();
        let api_key = if sasl.expects_raw_frame() {
            // A raw SASL message after a SaslHandshake v0: what SaslAuthenticate carries in later versions.
            ApiKey::SaslAuthenticate as i16
        } else {
            request.get(..2).map_or(-1, |key| i16::from_be_bytes([key[0], key[1]]))
        };
        let clock = clock_of(&kafka.node.quotas, api_key, &request, sasl.principal());
        let ((answered, must_close), read_ahead_error) = {
            let answering =
                std::pin::pin!(answer_gated(&kafka, &mut sasl, &mut software, api_key, request, peer, &clock));
            let mut timed = clock.timing(answering);
            while_reading_ahead(std::pin::Pin::new(&mut timed), &mut requests, &mut connection).await
        };
        if let Some(metrics) = &kafka.node.metrics {
            metrics.kafka.record(api_key, started.elapsed(), answered.is_err() || must_close);
        }
        let principal = sasl.principal();
        let throttle = match answered {
            Ok(Answer { frame: Some(response), throttle }) => {
                if let Err(err) = response.write_to(&mut connection).await {
                    tracing::debug!(?peer, %principal, error = %err, "kafka connection closed while writing a response");
                    return;
                }
                if must_close {
                    let _ = connection.flush().await;
                    return;
                }
                throttle
            }
            Ok(Answer { frame: None, throttle }) => throttle,
            Err(err) => {
                tracing::info!(?peer, %principal, error = %err, "closing kafka connection");
                return;
            }
        };
        // A byte rate's wait or the request quota's, whichever is longer, as in Kafka.
        let throttle = throttle.max(clock.finish(&kafka.node.quotas));
        if !throttle.is_zero() {
            // Over its quota (KIP-219): the answer told the client how long; the connection is not read meanwhile,
            // so a client that does not wait by itself waits all the same.
            tracing::debug!(?peer, %principal, throttle_ms = throttle.as_millis() as u64, "client throttled");
            tokio::select! {
                _ = tokio::time::sleep(throttle) => {}
                _ = shutdown.changed() => return,
            }
        }
        // A read that failed while the answer was worked out ends the connection now that the answer is out;
        // the idle timeout is the exception: a long answer (a fetch's long-poll) is not the client's silence,
        // and the write just made restarted the connection's idle clock.
        if let Some(err) = read_ahead_error.filter(|err| err.kind() != std::io::ErrorKind::TimedOut) {
            tracing::debug!(?peer, error = %err, "kafka connection closed while reading a request");
            return;
        }
    }
}

/// Reads a request over `max_request_bytes` through and answers it MESSAGE_TOO_LARGE when it is a Produce the
/// connection may send (`oversized.rs`); whether the connection stays open.
async fn answer_oversized(
    kafka: &KafkaContext,
    sasl: &mut SaslSession,
    requests: &mut RequestBuffer,
    connection: &mut ServedStream,
    size: usize,
    limit: usize,
) -> bool {
    let peer = connection.peer_addr();
    let started = std::time::Instant::now();
    let buffered = requests.take_oversized();
    let read = match oversized::read_through(buffered, size, connection).await {
        Ok(read) => read,
        Err(unanswered) => {
            tracing::info!(?peer, size, limit, reason = %unanswered, "closing kafka connection: request over max_request_bytes");
            return false;
        }
    };
    let may_produce = !sasl.expects_raw_frame() && matches!(sasl.gate(ApiKey::Produce as i16), Gate::Serve);
    if let Some(metrics) = &kafka.node.metrics {
        metrics.kafka.record(ApiKey::Produce as i16, started.elapsed(), true);
    }
    if !may_produce || read.acks == 0 {
        // Unauthenticated, or nobody waits for an answer (acks 0): Kafka closes such a connection too.
        tracing::info!(?peer, size, limit, "closing kafka connection: produce request over max_request_bytes");
        return false;
    }
    tracing::info!(
        ?peer,
        principal = %sasl.principal(),
        size,
        limit,
        "answered a produce request over max_request_bytes with MESSAGE_TOO_LARGE"
    );
    let answer = match read.answer(size, limit) {
        Ok(answer) => answer,
        Err(err) => {
            tracing::info!(?peer, error = %err, "closing kafka connection");
            return false;
        }
    };
    ResponseFrame::whole(answer).write_to(connection).await.is_ok()
}

/// The answer to one request, through the SASL gate, and whether the connection must close after it.
async fn answer_gated(
    kafka: &KafkaContext,
    sasl: &mut SaslSession,
    software: &mut ClientSoftware,
    api_key: i16,
    request: Bytes,
    peer: Option<std::net::SocketAddr>,
    clock: &HandlerClock,
) -> (Result<Answer, RequestError>, bool) {
    if sasl.expects_raw_frame() {
        let SaslAnswer { frame, must_close } = sasl.answer_raw(kafka, request, peer).await;
        return (Ok(Answer::frame(frame)), must_close);
    }
    match sasl.gate(api_key) {
        Gate::Serve => (answer(kafka, request, peer, sasl.principal(), software, clock).await, false),
        Gate::Sasl => match sasl.answer(kafka, request, peer).await {
            Ok(SaslAnswer { frame, must_close }) => (Ok(Answer::frame(frame)), must_close),
            Err(err) => (Err(err), true),
        },
        Gate::Refuse => (Err(RequestError::Unauthenticated { api_key }), true),
        Gate::Expired => (Err(RequestError::SessionExpired { api_key }), true),
    }
}

/// Drives `answering` to its end while reading the connection's next request into `requests`, and returns
/// the answer with the error a read ahead met (after which it read no more).
async fn while_reading_ahead<F: std::future::Future>(
    mut answering: std::pin::Pin<&mut F>,
    requests: &mut RequestBuffer,
    connection: &mut ServedStream,
) -> (F::Output, Option<std::io::Error>) {
    let mut read_error = None;
    loop {
        let may_read = read_error.is_none() && requests.wants_read_ahead();
        tokio::select! {
            biased;
            answered = &mut answering => return (answered, read_error),
            // Cancel-safe: a read dropped because the answer came first has taken no bytes.
            read = requests.read_from(connection), if may_read => {
                if let Err(err) = read {
                    read_error = Some(err);
                }
            }
        }
    }
}

/// What a request is answered with, and how long its client is held for going over a quota.
pub struct Answer {
    /// `None` for a request Kafka does not answer (Produce with acks 0).
    pub frame: Option<ResponseFrame>,
    pub throttle: Duration,
}

impl Answer {
    fn frame(frame: Bytes) -> Answer {
        Answer::throttled(frame, Duration::ZERO)
    }

    fn throttled(frame: Bytes, throttle: Duration) -> Answer {
        Answer { frame: Some(ResponseFrame::whole(frame)), throttle }
    }
}

/// What a client said it is in its ApiVersions (v3 on): what client metrics subscriptions match on and mark pushes
/// with (KIP-714, KIP-511). Empty until then.
#[derive(Debug, Clone, Default)]
pub struct ClientSoftware {
    pub name: String,
    pub version: String,
}

/// Longest software name or version kept (Kafka's clients send a few dozen bytes).
const MAX_SOFTWARE_TEXT: usize = 128;

/// The answer to one request; an ApiVersions records what the client says it is in `software`. Each answer's
/// `throttle_time_ms` carries the request quota's wait as `clock` charges it.
pub async fn answer(
    kafka: &KafkaContext,
    request: Bytes,
    peer: Option<std::net::SocketAddr>,
    principal: &crate::auth::Principal,
    software: &mut ClientSoftware,
    clock: &HandlerClock,
) -> Result<Answer, RequestError> {
    let quotas = &kafka.node.quotas;
    let request_bytes = request.len() as u64;
    let preamble = RequestPreamble::parse(&request).ok_or(FrameError::TooShort { size: request.len() as i64 })?;
    let RequestPreamble { api_key, api_version: version, correlation_id } = preamble;
    let api = ApiKey::try_from(api_key).map_err(|()| RequestError::UnknownApiKey(api_key))?;
    let (min, max) = supported_versions(api_key).ok_or(RequestError::NotServed(api))?;
    if api == ApiKey::ApiVersions && version > max {
        // The client does not know this broker's versions yet: answer in v0, which it can always read.
        let answer = api_versions::answer(false, kafka.node.config.auth.is_sasl_on());
        return Ok(Answer::frame(encode_response(correlation_id, 0, &answer, 0)?));
    }
    if version < min || version > max {
        return Err(RequestError::UnsupportedVersion { api, version, min, max });
    }
    let malformed = malformed_by(api, version);
    let mut body = request;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(&malformed)?;
    let client_id = header.client_id.as_ref().map_or("", |id| id.as_str());
    super::bounds::check(api, version, &body).map_err(malformed_by(api, version))?;
    let header_version = api.response_header_version(version);
    let frame = match api {
        ApiKey::ApiVersions => {
            if version >= 3 {
                let request = ApiVersionsRequest::decode(&mut body, version).map_err(&malformed)?;
                let kept = |text: &str| text.chars().take(MAX_SOFTWARE_TEXT).collect::<String>();
                software.name = kept(request.client_software_name.as_str());
                software.version = kept(request.client_software_version.as_str());
            }
            let mut answer = api_versions::answer(true, kafka.node.config.auth.is_sasl_on());
            answer.throttle_time_ms = clock.throttle_ms(quotas, answer.throttle_time_ms);
            encode_response(correlation_id, header_version, &answer, version)?
        }
        ApiKey::Metadata => {
            let mut request = MetadataRequest::decode(&mut body, version).map_err(&malformed)?;
            // v0 has no null list: an empty one asks for every topic, as null does from v1 (where an empty
            // list asks for none).
            if version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty) {
                request.topics = None;
            }
            let mut response = metadata::answer_creating(kafka, &request, principal, client_id).await;
            error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut body, version).map_err(&malformed)?;
            let is_acks_none = request.acks == 0;
            let mut response = produce::answer(kafka, request, principal).await;
            error_counts::count(kafka, api, &response);
            // Kafka charges a produce's whole request, appended or not.
            let throttle = quotas.charge(QuotaKey::ProducerByteRate, principal, client_id, request_bytes);
            if is_acks_none {
                return Ok(Answer { frame: None, throttle });
            }
            response.throttle_time_ms = clock.throttle_ms(quotas, throttle_ms(throttle));
            let frame = encode_response(correlation_id, header_version, &response, version)?;
            return Ok(Answer::throttled(frame, throttle));
        }
        ApiKey::Fetch => {
            let mut request = FetchRequest::decode(&mut body, version).map_err(&malformed)?;
            let quota = quotas.quota(QuotaKey::ConsumerByteRate, principal, client_id);
            if let Some(quota) = &quota {
                // One answer may not carry more than the quota allows over the samples' span, as in Kafka.
                let bound = quotas.fetch_bytes_bound(quota);
                request.max_bytes = request.max_bytes.min(i32::try_from(bound).unwrap_or(i32::MAX));
            }
            let (mut response, runs) = fetch::answer(kafka, request, version, principal).await;
            error_counts::count(kafka, api, &response);
            let (throttle, is_withheld) = match &quota {
                Some(quota) => fetch_throttle(kafka, quota, &mut response, &runs),
                None => (Duration::ZERO, false),
            };
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            if is_withheld {
                // The answer carries no records (they were not charged), only the time to wait.
                let frame = encode_response(correlation_id, header_version, &response, version)?;
                return Ok(Answer::throttled(frame, throttle));
            }
            // The batches go out as storage read them, as pieces of the frame (`response_frame.rs`).
            match encode_response_pieces(correlation_id, header_version, &response, version, runs.clone())? {
                Ok(frame) => return Ok(Answer { frame: Some(frame), throttle }),
                Err(UnplacedRuns) => {
                    // Not seen: the encoder writes a partition's records in one piece. Correct whatever it does.
                    let records = response.responses.iter_mut().flat_map(|topic| &mut topic.partitions);
                    for (partition, run) in records.filter(|p| p.records.is_some()).zip(&runs) {
                        partition.records = Some(run.to_bytes());
                    }
                    let frame = encode_response(correlation_id, header_version, &response, version)?;
                    return Ok(Answer::throttled(frame, throttle));
                }
            }
        }
        ApiKey::ShareFetch => {
            let request = ShareFetchRequest::decode(&mut body, version).map_err(&malformed)?;
            let mut response = share_fetch::answer(kafka, request, principal).await;
            error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            // As a Fetch's: the batches go out as storage read them, as pieces of the frame.
            let partitions = response.responses.iter().flat_map(|topic| &topic.partitions);
            let runs: Vec<BatchRun> = partitions.filter_map(|p| p.records.clone()).map(BatchRun::single).collect();
            match encode_response_pieces(correlation_id, header_version, &response, version, runs.clone())? {
                Ok(frame) => return Ok(Answer { frame: Some(frame), throttle: Duration::ZERO }),
                Err(UnplacedRuns) => {
                    // Single runs are never stand-ins, so every one is placed; correct whatever the encoder does.
                    let records = response.responses.iter_mut().flat_map(|topic| &mut topic.partitions);
                    for (partition, run) in records.filter(|p| p.records.is_some()).zip(&runs) {
                        partition.records = Some(run.to_bytes());
                    }
                    encode_response(correlation_id, header_version, &response, version)?
                }
            }
        }
        ApiKey::ListOffsets => {
            let request = ListOffsetsRequest::decode(&mut body, version).map_err(&malformed)?;
            let mut response = list_offsets::answer(kafka, request, version, principal).await;
            error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::OffsetForLeaderEpoch => {
            let request = OffsetForLeaderEpochRequest::decode(&mut body, version).map_err(&malformed)?;
            let mut response = offset_for_leader_epoch::answer(kafka, request, principal);
            error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::InitProducerId => {
            let request = InitProducerIdRequest::decode(&mut body, version).map_err(&malformed)?;
            let mut response = init_producer_id::answer(kafka, &request, version, principal).await;
            error_counts::count(kafka, api, &response);
            response.throttle_time_ms = clock.throttle_ms(quotas, response.throttle_time_ms);
            encode_response(correlation_id, header_version, &response, version)?
        }
        // The group and admin APIs, each in its own file, are routed by `dispatch.rs`.
        other => {
            let caller = super::dispatch::Caller {
                client_id: client_id.to_owned(),
                // Kafka shows a member's host as "/" and its address.
                host: peer.map(|peer| format!("/{}", peer.ip())).unwrap_or_default(),
                peer,
                software: software.clone(),
                principal: principal.clone(),
            };
            super::dispatch::answer(kafka, other, version, correlation_id, body, caller, clock).await?
        }
    };
    Ok(Answer::frame(frame))
}

/// A throttle time as Kafka's responses carry it.
fn throttle_ms(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX)
}

/// Charges a fetch answer's records to the client's quota. Over it, the records are taken out of `response` and
/// back off the meter (Kafka answers a throttled fetch empty), and the answer carries the time to wait; the
/// same records fit once it is up. Records that could never fit (more than the quota allows at once: a fetch
/// returns its first batch whole, however large) go out all the same, and the client waits after them:
/// withholding them would stall the consumer for good.
fn fetch_throttle(
    kafka: &KafkaContext,
    quota: &ResolvedQuota,
    response: &mut kafka_protocol::messages::FetchResponse,
    runs: &[super::response_frame::BatchRun],
) -> (Duration, bool) {
    let bytes: u64 = runs.iter().map(|run| run.byte_len() as u64).sum();
    let quotas = &kafka.node.quotas;
    let throttle = quotas.charge_at(QuotaKey::ConsumerByteRate, quota, bytes, std::time::Instant::now());
    if throttle.is_zero() {
        return (throttle, false);
    }
    response.throttle_time_ms = throttle_ms(throttle);
    if bytes > quotas.fetch_bytes_bound(quota) {
        return (throttle, false);
    }
    quotas.refund(QuotaKey::ConsumerByteRate, quota, bytes);
    for partition in response.responses.iter_mut().flat_map(|topic| &mut topic.partitions) {
        if partition.records.is_some() {
            partition.records = Some(Bytes::new());
        }
    }
    (throttle, true)
}

/// Turns the codec's decode error (the `kafka-protocol` crate's own) into this module's.
pub(super) fn malformed_by<E: std::fmt::Display>(api: ApiKey, version: i16) -> impl Fn(E) -> RequestError {
    move |err| RequestError::Malformed { api, version, reason: err.to_string() }
}
