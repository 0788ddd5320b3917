//! The codec's refusals of a request get the codes the proto promises.
//!
//! - Requests above `max_request_bytes` are RESOURCE_EXHAUSTED, like every other limit. tonic refuses a message
//!   longer than the service's `max_decoding_message_size` before reading it (good: the broker never buffers
//!   it), but answers OUT_OF_RANGE, which rill reserves for offsets.
//! - A request that is not valid protobuf is INVALID_ARGUMENT. The codec (`rill_protocol::grpc_codec`) says
//!   INTERNAL, right for a client reading a broken answer, wrong for a caller's bad request.
//!
//! This response layer changes the code of exactly those refusals and gives them their reason (`too-large`,
//! `invalid-argument`: `rill_protocol::reason`, in the `grpc-status-details-bin` header as every refusal of the
//! broker carries it), and keeps their messages, which say what was wrong.

use http::HeaderValue;
use rill_protocol::reason::Reason;

/// The start of tonic's message for an over-long request (`tonic::codec::decode`), percent-encoded as it is
/// in the `grpc-message` header.
const TONIC_TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";

/// [`rill_protocol::grpc_codec::MALFORMED_MESSAGE`], percent-encoded as in the `grpc-message` header.
const MALFORMED_REQUEST: &[u8] = b"malformed%20protobuf%20message";

pub fn codec_refusals_get_rills_codes<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let code = headers.get("grpc-status").map(HeaderValue::as_bytes);
    let message = headers.get("grpc-message").map_or(&b""[..], HeaderValue::as_bytes);
    let reason = if code == Some(b"11") && message.starts_with(TONIC_TOO_LARGE) {
        Reason::TooLarge
    } else if code == Some(b"13") && message.starts_with(MALFORMED_REQUEST) {
        Reason::InvalidArgument
    } else {
        return response;
    };
    headers.insert("grpc-status", HeaderValue::from(reason.grpc_code() as i32));
    // The details of a status for the reason, encoded as tonic encodes them; the message stays tonic's.
    if let Some(details) = reason.status("").into_http::<()>().headers_mut().remove(DETAILS_HEADER) {
        headers.insert(DETAILS_HEADER, details);
    }
    response
}

/// Where gRPC carries a status's details (`google.rpc.Status`, base64).
const DETAILS_HEADER: &str = "grpc-status-details-bin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_size_refusal_is_rewritten() {
        let too_large = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        );
        let response = codec_refusals_get_rills_codes(too_large.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "8");
        let status = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(rill_protocol::reason::reason_of(&status), Some(Reason::TooLarge));
        assert!(status.message().starts_with("Error, decoded message length too large"));
        let offset = tonic::Status::out_of_range("offset 9 is out of range");
        let response = codec_refusals_get_rills_codes(offset.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "11");
    }

    #[test]
    fn a_request_that_does_not_parse_is_invalid_argument_and_other_internal_errors_stay() {
        let malformed = tonic::Status::internal(format!(
            "{}: failed to decode Protobuf message: invalid wire type",
            rill_protocol::grpc_codec::MALFORMED_MESSAGE
        ));
        let response = codec_refusals_get_rills_codes(malformed.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "3");
        let disk = tonic::Status::internal("i/o error on /data: Input/output error");
        let response = codec_refusals_get_rills_codes(disk.into_http::<()>());
        assert_eq!(response.headers()["grpc-status"], "13");
    }
}
