//! W3C trace context (`traceparent`, https://www.w3.org/TR/trace-context/) as it travels in a record header.
//!
//! A producer that wants its records traced adds a header named [`TRACEPARENT_HEADER`] whose value is the
//! version-00 text form `00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>`. The broker reads it from
//! the first record of an uncompressed batch to continue the trace in its produce span; a consumer reads it to
//! continue the trace in its own. The header is part of the record, inside the batch's CRC: nobody rewrites it.
//!
//! This is the codec alone, with no OpenTelemetry dependency: the broker and the client convert to their
//! tracing library's types at their edges.

use std::fmt;

/// The record header key, as W3C names the HTTP header (Kafka instrumentations use the same key).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Length of the version-00 text form: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
pub const TRACEPARENT_LEN: usize = 55;

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// A parsed `traceparent`: the trace a record belongs to and the span that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The producer's span: 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

/// Why a `traceparent` value was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    #[error("traceparent is {0} bytes long; version 00 is exactly 55: 00-<32 hex>-<16 hex>-<2 hex>")]
    Length(usize),
    #[error("traceparent version {0:?} is not supported; only 00 is")]
    Version(String),
    #[error("traceparent is not of the form 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>")]
    Malformed,
    #[error("traceparent has an all-zero trace id or span id, which W3C reserves as invalid")]
    ZeroId,
}

impl TraceParent {
    /// A sampled context for this trace and parent span.
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8]) -> Self {
        Self { trace_id, parent_id, flags: FLAG_SAMPLED }
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Parses the version-00 text form. Lowercase hex only, as the specification requires of senders; anything
    /// else is an error, never a panic.
    pub fn parse(text: &[u8]) -> Result<Self, TraceParentError> {
        if text.len() != TRACEPARENT_LEN {
            return Err(TraceParentError::Length(text.len()));
        }
        if &text[..2] != b"00" {
            return Err(TraceParentError::Version(String::from_utf8_lossy(&text[..2]).into_owned()));
        }
        if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return Err(TraceParentError::Malformed);
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flags = [0u8; 1];
        decode_hex(&text[3..35], &mut trace_id)?;
        decode_hex(&text[36..52], &mut parent_id)?;
        decode_hex(&text[53..55], &mut flags)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(TraceParentError::ZeroId);
        }
        Ok(Self { trace_id, parent_id, flags: flags[0] })
    }

    /// The version-00 text form, as the header's value.
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        self.trace_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.parent_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

fn decode_hex(text: &[u8], out: &mut [u8]) -> Result<(), TraceParentError> {
    fn nibble(c: u8) -> Result<u8, TraceParentError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(TraceParentError::Malformed),
        }
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(())
}

/// The `traceparent` among a record's headers (the first one, if a producer sent several), parsed. A missing
/// header is `None`; a malformed one too, since a consumer or the broker cannot do better than start a new trace.
pub fn trace_parent_of<'a, V: AsRef<[u8]> + 'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<V>)>,
) -> Option<TraceParent> {
    headers
        .into_iter()
        .find(|(key, _)| *key == TRACEPARENT_HEADER)
        .and_then(|(_, value)| TraceParent::parse(value?.as_ref()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example from the W3C specification.
    const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specifications_example() {
        let parsed = TraceParent::parse(SPEC_EXAMPLE.as_bytes()).expect("the spec's own example");
        assert_eq!(parsed.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(parsed.parent_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(parsed.is_sampled());
        assert_eq!(parsed.to_header_value(), SPEC_EXAMPLE);
    }

    #[test]
    fn refuses_what_the_specification_calls_invalid() {
        let cases: [(&str, TraceParentError); 6] = [
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", TraceParentError::Length(52)),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceParentError::Version("01".into())),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", TraceParentError::Malformed),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceParentError::Malformed),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", TraceParentError::ZeroId),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", TraceParentError::ZeroId),
        ];
        for (text, expected) in cases {
            assert_eq!(TraceParent::parse(text.as_bytes()), Err(expected), "{text}");
        }
    }

    #[test]
    fn finds_the_header_among_others_and_ignores_a_bad_one() {
        let good = SPEC_EXAMPLE.as_bytes();
        let headers = [("a", Some(&b"1"[..])), (TRACEPARENT_HEADER, Some(good))];
        assert_eq!(trace_parent_of(headers).map(|p| p.to_string()).as_deref(), Some(SPEC_EXAMPLE));
        assert_eq!(trace_parent_of([(TRACEPARENT_HEADER, Some(&b"garbage"[..]))]), None);
        assert_eq!(trace_parent_of([(TRACEPARENT_HEADER, None::<&[u8]>)]), None);
    }

    proptest! {
        #[test]
        fn text_form_round_trips(trace_id in any::<[u8; 16]>(), parent_id in any::<[u8; 8]>(), flags in any::<u8>()) {
            prop_assume!(trace_id != [0; 16] && parent_id != [0; 8]);
            let context = TraceParent { trace_id, parent_id, flags };
            let text = context.to_header_value();
            prop_assert_eq!(text.len(), TRACEPARENT_LEN);
            prop_assert_eq!(TraceParent::parse(text.as_bytes()), Ok(context));
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TraceParent::parse(&bytes);
        }
    }
}
