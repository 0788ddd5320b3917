//! Requests above `max_request_bytes` are RESOURCE_EXHAUSTED, like every other limit.
//!
//! tonic refuses a message longer than the service's `max_decoding_message_size` before reading it (good: the
//! broker never buffers it), but answers OUT_OF_RANGE, which rill reserves for offsets. This response layer
//! changes the code of exactly that refusal and gives it the `too-large` reason (`rill_protocol::reason`);
//! tonic's message, which gives the size and the limit, is kept.

use http::HeaderValue;
use rill_protocol::reason::{Reason, REASON_KEY};
use tonic::Code;

/// The start of tonic's message for an over-long request (`tonic::codec::decode`), percent-encoded as it is
/// in the `grpc-message` header.
const TONIC_TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";

pub fn oversized_request_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let is_out_of_range = headers.get("grpc-status").map(HeaderValue::as_bytes) == Some(b"11");
    let is_too_large = headers.get("grpc-message").is_some_and(|m| m.as_bytes().starts_with(TONIC_TOO_LARGE));
    if is_out_of_range && is_too_large {
        headers.insert("grpc-status", HeaderValue::from(Code::ResourceExhausted as i32));
        headers.insert(REASON_KEY, HeaderValue::from_static(Reason::TooLarge.as_str()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_size_refusal_is_rewritten() {
        let too_large = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        );
        let response = oversized_request_is_resource_exhausted(too_large.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()[REASON_KEY], "too-large");
        let offset = tonic::Status::out_of_range("offset 9 is out of range");
        let response = oversized_request_is_resource_exhausted(offset.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "11");
    }
}
