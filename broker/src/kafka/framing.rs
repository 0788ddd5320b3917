//! Kafka's framing: every request and response is a 4-byte big-endian size, then that many bytes. A request
//! opens with its API key, API version and correlation id (the fixed part of every request header version),
//! which is all the broker needs to route it, or to answer a version it does not serve.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;

/// The size prefix of every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// API key (i16), API version (i16) and correlation id (i32): the shortest request there is.
pub const PREAMBLE_BYTES: usize = 8;

/// Why a connection's next frame cannot be read; the connection is closed, since after it the byte stream has
/// no trustworthy frame boundary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("request size {size} exceeds the limit of {limit} bytes (max_request_bytes)")]
    TooLarge { size: i64, limit: usize },
    #[error("request size {size} is below the {PREAMBLE_BYTES} bytes of a request header")]
    TooShort { size: i64 },
}

/// The size a frame's prefix declares, checked against the limit before a byte of the body is read or a
/// buffer is allocated for it.
/// It is at least `min_bytes`: a request's preamble ([`PREAMBLE_BYTES`]), or nothing for a raw SASL message
/// (after a SaslHandshake v0; PLAIN's `\0a\0b` is 4 bytes).
pub fn frame_size(
    prefix: [u8; SIZE_PREFIX_BYTES],
    min_bytes: usize,
    max_request_bytes: usize,
) -> Result<usize, FrameError> {
    let size = i64::from(i32::from_be_bytes(prefix));
    if size < min_bytes as i64 {
        return Err(FrameError::TooShort { size });
    }
    let size = usize::try_from(size).map_err(|_| FrameError::TooShort { size })?;
    if size > max_request_bytes {
        return Err(FrameError::TooLarge { size: size as i64, limit: max_request_bytes });
    }
    Ok(size)
}

/// The fixed head of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPreamble {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RequestPreamble {
    /// `None` for a request shorter than the preamble (refused already by [`request_size`]).
    pub fn parse(request: &[u8]) -> Option<RequestPreamble> {
        let head: &[u8; PREAMBLE_BYTES] = request.get(..PREAMBLE_BYTES)?.try_into().ok()?;
        Some(RequestPreamble {
            api_key: i16::from_be_bytes([head[0], head[1]]),
            api_version: i16::from_be_bytes([head[2], head[3]]),
            correlation_id: i32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        })
    }
}

/// Why a response could not be encoded: a bug (a field out of its version's range), never the client's input.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a Kafka response: {0}")]
pub struct EncodeError(String);

impl EncodeError {
    pub(super) fn new(reason: String) -> EncodeError {
        EncodeError(reason)
    }
}

/// One whole response frame: size prefix, response header (of `header_version`), body (of `version`).
pub fn encode_response<M: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &M,
    version: i16,
) -> Result<Bytes, EncodeError> {
    let mut frame = BytesMut::with_capacity(SIZE_PREFIX_BYTES + 64);
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, header_version)
        .map_err(|e| EncodeError(e.to_string()))?;
    body.encode(&mut frame, version).map_err(|e| EncodeError(e.to_string()))?;
    let size = i32::try_from(frame.len() - SIZE_PREFIX_BYTES)
        .map_err(|_| EncodeError(format!("a response of {} bytes", frame.len())))?;
    frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2_gib_size_prefix_is_refused_before_reading_the_body() {
        let prefix = i32::MAX.to_be_bytes();
        assert_eq!(
            frame_size(prefix, PREAMBLE_BYTES, 8 << 20),
            Err(FrameError::TooLarge { size: i32::MAX as i64, limit: 8 << 20 })
        );
    }

    #[test]
    fn a_negative_or_headerless_size_is_refused() {
        assert_eq!(frame_size((-1i32).to_be_bytes(), PREAMBLE_BYTES, 1024), Err(FrameError::TooShort { size: -1 }));
        assert_eq!(frame_size(7i32.to_be_bytes(), PREAMBLE_BYTES, 1024), Err(FrameError::TooShort { size: 7 }));
        assert_eq!(frame_size(8i32.to_be_bytes(), PREAMBLE_BYTES, 1024), Ok(8));
        assert_eq!(frame_size(1024i32.to_be_bytes(), PREAMBLE_BYTES, 1024), Ok(1024));
    }

    #[test]
    fn the_preamble_is_key_version_and_correlation_id() {
        let request = [0, 18, 0, 3, 0, 0, 0, 42, 0xff];
        let preamble = RequestPreamble::parse(&request).expect("long enough");
        assert_eq!(preamble, RequestPreamble { api_key: 18, api_version: 3, correlation_id: 42 });
        assert_eq!(RequestPreamble::parse(&request[..7]), None);
    }

    #[test]
    fn a_response_frame_is_sized_and_starts_with_the_correlation_id() {
        let body = kafka_protocol::messages::ApiVersionsResponse::default();
        let frame = encode_response(7, 0, &body, 0).expect("encodes");
        let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
        assert_eq!(size as usize, frame.len() - 4);
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
    }
}
