//! Request spans: one `tracing` span per produce, fetch and commit (gRPC and Kafka alike), with the topic,
//! partition and offset, under the target [`TARGET`] at DEBUG level.
//!
//! Why that target and level: the broker does not export traces itself. The binary installs an OpenTelemetry
//! layer interested in this target only when `otlp_endpoint` is set; otherwise no subscriber is interested at
//! info level, so each `debug_span!` is one cached-interest check and [`Span::is_disabled`] skips the rest (no
//! field formatting, no header parsing). `RUST_LOG=rill::request=debug` shows them in the log too.
//!
//! Numbers are recorded as `i64`: the OpenTelemetry bridge exports unsigned integers as text, and a
//! collector's queries compare `partition = 1`, not `"1"`.
//!
//! A produce continues the producer's trace: the `traceparent` header (W3C trace context,
//! `rill_protocol::trace_context`) of the first record of the first batch becomes the span's parent, and a
//! different one in a later batch of the same request becomes a link. Only uncompressed batches are looked into:
//! the broker never decompresses a batch for tracing, and never re-encodes one.

use bytes::Bytes;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::record::RecordIter;
use rill_protocol::trace_context::{trace_parent_of, TraceParent};
use rill_protocol::{BatchHeader, Compression};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every request span and event; what the OTLP layer listens to.
pub const TARGET: &str = "rill::request";

/// Most distinct trace contexts one produce request links to: a bound on the work and the span's size.
const MAX_LINKS: usize = 16;

/// The span of one produce call; `partition` and `offset` are recorded once known.
pub fn produce_span(topic: &str) -> Span {
    tracing::debug_span!(
        target: "rill::request",
        "produce",
        topic,
        partition = tracing::field::Empty,
        offset = tracing::field::Empty,
        last_offset = tracing::field::Empty,
        batches = tracing::field::Empty,
        bytes = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// The span of one partition's fetch; `next_offset` and `bytes` are recorded once read.
pub fn fetch_span(topic: &str, partition: u32, offset: i64) -> Span {
    tracing::debug_span!(
        target: "rill::request",
        "fetch",
        topic,
        partition = i64::from(partition),
        offset,
        next_offset = tracing::field::Empty,
        bytes = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// The span of one offset commit: the group, and the topic, partition and offset when it commits one
/// partition; each partition asked for is also an event on the span (a commit may name many).
pub fn commit_span<'a>(group: &str, count: usize, offsets: impl Iterator<Item = (&'a str, u32, i64)>) -> Span {
    let span = tracing::debug_span!(
        target: "rill::request",
        "commit",
        group,
        partitions = count as i64,
        topic = tracing::field::Empty,
        partition = tracing::field::Empty,
        offset = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let is_single = count == 1;
    for (topic, partition, offset) in offsets {
        if is_single {
            span.record("topic", topic).record("partition", i64::from(partition)).record("offset", offset);
        }
        tracing::debug!(target: "rill::request", parent: &span, topic, partition = i64::from(partition), offset, "commit offset");
    }
    span
}

/// Marks the span failed with `error` (OpenTelemetry's status ERROR), when the request failed.
pub fn record_outcome<T, E: std::fmt::Display>(span: &Span, outcome: &Result<T, E>) {
    if let Err(error) = outcome {
        if !span.is_disabled() {
            span.record("otel.status_code", "ERROR").record("error", tracing::field::display(error));
        }
    }
}

/// Makes `span` continue the traces the batches' first records carry (see the module doc). Does nothing for a
/// disabled span, so it costs nothing when tracing is off.
pub fn continue_producer_traces(span: &Span, batches: &[Bytes]) {
    if span.is_disabled() {
        return;
    }
    let mut contexts = batches.iter().filter_map(first_record_trace_parent);
    let Some(parent) = contexts.next() else { return };
    // The span has not been entered yet, so the parent can still be set.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(span_context(parent)));
    let mut linked = vec![parent];
    for context in contexts {
        if linked.len() > MAX_LINKS {
            break;
        }
        if !linked.contains(&context) {
            span.add_link(span_context(context));
            linked.push(context);
        }
    }
}

/// The `traceparent` of a batch's first record, when the batch is uncompressed and has one.
fn first_record_trace_parent(batch: &Bytes) -> Option<TraceParent> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.compression().ok()? != Compression::None {
        return None;
    }
    let first = RecordIter::new(batch.get(HEADER_BYTES..)?, header.base_offset, header.base_timestamp).next()?.ok()?;
    trace_parent_of(first.headers.iter().copied())
}

fn span_context(context: TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(context.trace_id),
        SpanId::from_bytes(context.parent_id),
        TraceFlags::new(context.flags),
        true,
        TraceState::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rill_protocol::compressed::compress_batch;
    use rill_protocol::{Header, Record, RecordBatchBuilder};

    fn batch(headers: Vec<Header>, compression: Compression) -> Bytes {
        let mut builder = RecordBatchBuilder::default();
        builder.push(&Record { key: None, value: Some(b"v".to_vec()), headers, timestamp_ms: 1 });
        let plain = builder.build();
        match compression {
            Compression::None => Bytes::from(plain),
            codec => Bytes::from(compress_batch(&plain, codec, 0).expect("a small batch compresses")),
        }
    }

    #[test]
    fn the_first_records_traceparent_is_read_from_an_uncompressed_batch_only() {
        let context = TraceParent::new([3; 16], [4; 8]);
        let header = Header { key: "traceparent".into(), value: Some(context.to_string().into_bytes()) };
        assert_eq!(first_record_trace_parent(&batch(vec![header.clone()], Compression::None)), Some(context));
        assert_eq!(first_record_trace_parent(&batch(vec![header], Compression::Lz4)), None);
        assert_eq!(first_record_trace_parent(&batch(Vec::new(), Compression::None)), None);
        assert_eq!(first_record_trace_parent(&Bytes::from_static(b"not a batch")), None);
    }

    #[test]
    fn a_remote_parent_keeps_its_trace_and_span_ids() {
        let context = TraceParent::new([0xab; 16], [0xcd; 8]);
        let converted = span_context(context);
        assert_eq!(converted.trace_id().to_bytes(), context.trace_id);
        assert_eq!(converted.span_id().to_bytes(), context.parent_id);
        assert!(converted.is_sampled() && converted.is_remote());
    }
}
