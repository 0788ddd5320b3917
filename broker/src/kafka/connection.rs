//! One Kafka connection: read a size-prefixed request, answer it, read the next. One request at a time, in
//! order, as Kafka's broker does (it mutes a connection while a request is in flight), so responses never need
//! reordering and a connection holds at most one request buffer (`max_request_bytes`).
//!
//! A request that cannot be framed or decoded closes this connection only: after a bad size or a body that
//! does not parse, nothing later on the stream can be trusted to start a frame. An API or version not served
//! closes it too, except ApiVersions, whose v0 answer every client can read whatever version it sent.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader,
};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::api_versions::{self, supported_versions};
use super::framing::{encode_response, request_size, EncodeError, FrameError, RequestPreamble, SIZE_PREFIX_BYTES};
use super::sasl::{Gate, SaslAnswer, SaslSession};
use super::{error_counts, fetch, init_producer_id, list_offsets, metadata, produce, KafkaContext};
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
}

/// Serves one connection until the client closes it, it sends what cannot be answered, or the broker stops.
pub async fn serve(mut connection: ServedStream, kafka: Arc<KafkaContext>) {
    let peer = connection.peer_addr();
    let max_request_bytes = usize::try_from(kafka.node.config.max_request_bytes).unwrap_or(usize::MAX);
    let mut shutdown = kafka.node.shutdown.clone();
    let mut sasl = SaslSession::new(&kafka, connection.is_tls(), connection.peer_certificates());
    tracing::debug!(?peer, "kafka connection");
    while !kafka.node.is_shutting_down() {
        let request = tokio::select! {
            request = read_request(&mut connection, max_request_bytes) => request,
            _ = shutdown.changed() => return,
        };
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(ReadError::Io(err)) => {
                tracing::debug!(?peer, error = %err, "kafka connection closed while reading a request");
                return;
            }
            Err(ReadError::Request(err)) => {
                tracing::info!(?peer, error = %err, "closing kafka connection");
                return;
            }
        };
        let started = std::time::Instant::now();
        let api_key = request.get(..2).map_or(-1, |key| i16::from_be_bytes([key[0], key[1]]));
        let (answered, must_close) = match sasl.gate(api_key) {
            Gate::Serve => (answer(&kafka, request, peer, sasl.principal()).await, false),
            Gate::Sasl => match sasl.answer(&kafka, request, peer).await {
                Ok(SaslAnswer { frame, must_close }) => (Ok(Some(frame)), must_close),
                Err(err) => (Err(err), true),
            },
            Gate::Refuse => (Err(RequestError::Unauthenticated { api_key }), true),
        };
        if let Some(metrics) = &kafka.node.metrics {
            metrics.kafka.record(api_key, started.elapsed(), answered.is_err() || must_close);
        }
        let principal = sasl.principal();
        match answered {
            Ok(Some(response)) => {
                if let Err(err) = connection.write_all(&response).await {
                    tracing::debug!(?peer, %principal, error = %err, "kafka connection closed while writing a response");
                    return;
                }
                if must_close {
                    let _ = connection.flush().await;
                    return;
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::info!(?peer, %principal, error = %err, "closing kafka connection");
                return;
            }
        }
    }
}

#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    Request(RequestError),
}

/// The next request frame (without its size prefix); `None` when the client closed between requests.
async fn read_request(connection: &mut ServedStream, max_request_bytes: usize) -> Result<Option<Bytes>, ReadError> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    let first = connection.read(&mut prefix).await.map_err(ReadError::Io)?;
    if first == 0 {
        return Ok(None);
    }
    connection.read_exact(&mut prefix[first..]).await.map_err(ReadError::Io)?;
    let size = request_size(prefix, max_request_bytes).map_err(|err| ReadError::Request(err.into()))?;
    let mut request = BytesMut::zeroed(size);
    connection.read_exact(&mut request).await.map_err(ReadError::Io)?;
    Ok(Some(request.freeze()))
}

/// The response frame to one request; `None` for a request Kafka does not answer (Produce with acks 0).
pub async fn answer(
    kafka: &KafkaContext,
    request: Bytes,
    peer: Option<std::net::SocketAddr>,
    principal: &crate::auth::Principal,
) -> Result<Option<Bytes>, RequestError> {
    let preamble = RequestPreamble::parse(&request).ok_or(FrameError::TooShort { size: request.len() as i64 })?;
    let RequestPreamble { api_key, api_version: version, correlation_id } = preamble;
    let api = ApiKey::try_from(api_key).map_err(|()| RequestError::UnknownApiKey(api_key))?;
    let (min, max) = supported_versions(api_key).ok_or(RequestError::NotServed(api))?;
    if api == ApiKey::ApiVersions && version > max {
        // The client does not know this broker's versions yet: answer in v0, which it can always read.
        let answer = api_versions::answer(false, kafka.node.config.auth.is_sasl_on());
        return Ok(Some(encode_response(correlation_id, 0, &answer, 0)?));
    }
    if version < min || version > max {
        return Err(RequestError::UnsupportedVersion { api, version, min, max });
    }
    let malformed = malformed_by(api, version);
    let mut body = request;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(&malformed)?;
    super::bounds::check(api, version, &body).map_err(malformed_by(api, version))?;
    let header_version = api.response_header_version(version);
    let frame = match api {
        ApiKey::ApiVersions => {
            let answer = api_versions::answer(true, kafka.node.config.auth.is_sasl_on());
            encode_response(correlation_id, header_version, &answer, version)?
        }
        ApiKey::Metadata => {
            let request = MetadataRequest::decode(&mut body, version).map_err(&malformed)?;
            let response = metadata::answer(kafka, &request, principal);
            error_counts::count(kafka, api, &response);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut body, version).map_err(&malformed)?;
            let is_acks_none = request.acks == 0;
            let response = produce::answer(kafka, request, principal).await;
            error_counts::count(kafka, api, &response);
            if is_acks_none {
                return Ok(None);
            }
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::Fetch => {
            let request = FetchRequest::decode(&mut body, version).map_err(&malformed)?;
            let response = fetch::answer(kafka, request, principal).await;
            error_counts::count(kafka, api, &response);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::ListOffsets => {
            let request = ListOffsetsRequest::decode(&mut body, version).map_err(&malformed)?;
            let response = list_offsets::answer(kafka, request, principal).await;
            error_counts::count(kafka, api, &response);
            encode_response(correlation_id, header_version, &response, version)?
        }
        ApiKey::InitProducerId => {
            let request = InitProducerIdRequest::decode(&mut body, version).map_err(&malformed)?;
            let response = init_producer_id::answer(kafka, &request, principal).await;
            error_counts::count(kafka, api, &response);
            encode_response(correlation_id, header_version, &response, version)?
        }
        // The group and admin APIs, each in its own file, are routed by `dispatch.rs`.
        other => {
            let caller = super::dispatch::Caller {
                client_id: header.client_id.map(|id| id.to_string()).unwrap_or_default(),
                // Kafka shows a member's host as "/" and its address.
                host: peer.map(|peer| format!("/{}", peer.ip())).unwrap_or_default(),
                principal: principal.clone(),
            };
            super::dispatch::answer(kafka, other, version, correlation_id, body, caller).await?
        }
    };
    Ok(Some(frame))
}

/// Turns the codec's decode error (the `kafka-protocol` crate's own) into this module's.
pub(super) fn malformed_by<E: std::fmt::Display>(api: ApiKey, version: i16) -> impl Fn(E) -> RequestError {
    move |err| RequestError::Malformed { api, version, reason: err.to_string() }
}
