//! The records an application sends and receives.
//!
//! Keys, values and header values are [`Bytes`]: a producer can send slices of a buffer it already holds, and a
//! consumer receives slices of the fetched (or decompressed) buffer instead of copies.

use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::trace_context::{trace_parent_of, TraceParent, TRACEPARENT_HEADER};

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record to produce. Build one with [`ProducerRecord::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// Partitioning key: records with the same key go to the same partition (while the partition count holds).
    pub key: Option<Bytes>,
    /// The payload; `None` is a null value (a tombstone, in Kafka's terms).
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Create time in ms since the Unix epoch; `None` takes the producer's clock at `send`.
    pub timestamp_ms: Option<i64>,
    /// An explicit partition, overriding the key hash and sticky partitioning.
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A record with this value, no key, no headers, timestamped at send.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self { value: Some(value.into()), ..Self::default() }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header { key: key.into(), value: Some(value.into()) });
        self
    }

    /// Carries the caller's trace to the broker and to consumers: a `traceparent` header (W3C trace context)
    /// naming the caller's span as the parent. Opt-in and per record: the producer adds nothing by itself.
    pub fn with_trace_parent(mut self, context: TraceParent) -> Self {
        self.headers.push(Header { key: TRACEPARENT_HEADER.into(), value: Some(context.to_header_value().into()) });
        self
    }

    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Bytes of key, value and headers: what the record costs in the producer's buffer, give or take the
    /// few varint bytes of framing (`FRAMING_BYTES` covers them).
    pub(crate) fn buffered_bytes(&self) -> usize {
        const FRAMING_BYTES: usize = 40;
        const HEADER_FRAMING_BYTES: usize = 10;
        let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self.headers.iter().map(|h| h.key.len() + field(&h.value) + HEADER_FRAMING_BYTES).sum();
        field(&self.key) + field(&self.value) + headers + FRAMING_BYTES
    }
}

/// Where a produced record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: u32,
    /// The record's offset; -1 with `Acks::None`, where the broker answers before it appends.
    pub offset: i64,
    /// The record's create time, ms since the Unix epoch (as sent, or as stamped by `send`).
    pub timestamp_ms: i64,
}

/// A record as a consumer receives it. `key`, `value` and header values share the fetched buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl ConsumedRecord {
    /// Bytes of key, value and header keys and values: what the record weighs when handed on.
    pub fn payload_bytes(&self) -> usize {
        let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self.headers.iter().map(|h| h.key.len() + field(&h.value)).sum();
        field(&self.key) + field(&self.value) + headers
    }

    /// The trace the producer sent this record in (its `traceparent` header), for a consumer span to continue:
    /// make it the parent of the span that processes the record. `None` without a well-formed header.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        trace_parent_of(self.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_methods_set_each_field() {
        let record =
            ProducerRecord::new("v").with_key("k").with_header("trace", "abc").with_timestamp_ms(42).with_partition(3);
        assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(record.headers, vec![Header { key: "trace".into(), value: Some(Bytes::from_static(b"abc")) }]);
        assert_eq!((record.timestamp_ms, record.partition), (Some(42), Some(3)));
    }

    #[test]
    fn a_trace_parent_given_to_the_producer_is_what_the_consumer_reads_back() {
        let context = TraceParent::new([0x4b; 16], [0x07; 8]);
        let sent = ProducerRecord::new("v").with_header("other", "x").with_trace_parent(context);
        assert_eq!(sent.headers[1].key, "traceparent");
        let consumed = ConsumedRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: sent.value.clone(),
            headers: sent.headers.clone(),
        };
        assert_eq!(consumed.trace_parent(), Some(context));
        let untraced = ConsumedRecord { headers: Vec::new(), ..consumed };
        assert_eq!(untraced.trace_parent(), None);
    }

    #[test]
    fn buffered_bytes_covers_the_encoded_size() {
        use rill_protocol::RecordBatchBuilder;
        let record = ProducerRecord::new(vec![7u8; 300]).with_key("key").with_header("h", "v").with_timestamp_ms(1);
        let builder = RecordBatchBuilder::default();
        let encoded = builder.fields_bytes(
            1,
            record.key.as_deref(),
            record.value.as_deref(),
            record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref())),
        );
        assert!(record.buffered_bytes() >= encoded, "{} < {encoded}", record.buffered_bytes());
    }
}
