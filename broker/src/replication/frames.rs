//! The leader's answers on a `Replicate` stream, encoded without copying their record bytes.
//!
//! Why: tonic's codec encodes each `ReplicaData` into one growing buffer, so the leader copied every record byte
//! it sent once per follower (twice where the buffer grew past a batch), on top of the kernel's own copy: with
//! RF 3 two copies of each byte on the leader, about a fifth of a warm leader's samples in `memmove`
//! (docs/benchmarks.md, "Leaderships spread, and warm rounds").
//!
//! Here an answer becomes a list of `Bytes` chunks that HTTP/2 sends as they are: small chunks with the gRPC
//! frame header and every field but the batches, encoded by prost, and between them each partition's batches,
//! the tail cache's (or the segment read's) own `Bytes`. The fields keep prost's order (topic, partition,
//! batches, high watermark, log end, error, log start, below-log-start flag), so the bytes on the wire are exactly what prost would
//! have written: a follower of any version decodes them as before (an older one skips the log start it does not
//! know, and an older leader's answers read as log start 0, which moves nothing).
//! The follower's decode is unchanged (tonic's buffer, then `bytes` fields as slices of it: `.bytes()` in
//! protocol/build.rs).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use rill_protocol::grpc_frames::GRPC_HEADER_BYTES;
use rill_protocol::internal::{ReplicaData, ReplicaPartitionData};
use tokio_stream::Stream;
use tonic::Status;

use super::ReplicaDataStream;

/// `ReplicaData.partitions` is field 1, length-delimited.
const PARTITIONS_KEY: u8 = (1 << 3) | 2;
/// `ReplicaPartitionData.batches` is field 3, length-delimited.
const BATCHES_KEY: u8 = (3 << 3) | 2;

/// One partition's answer split where its batches go: `head` holds the fields before them, `tail` the ones after.
struct PartitionParts {
    head: ReplicaPartitionData,
    batches: Bytes,
    tail: ReplicaPartitionData,
}

impl PartitionParts {
    fn split(data: ReplicaPartitionData) -> Self {
        let ReplicaPartitionData {
            topic,
            partition,
            batches,
            high_watermark,
            log_end_offset,
            error,
            log_start_offset,
            fetch_offset_below_log_start,
        } = data;
        Self {
            head: ReplicaPartitionData { topic, partition, ..Default::default() },
            batches,
            tail: ReplicaPartitionData {
                high_watermark,
                log_end_offset,
                error,
                log_start_offset,
                fetch_offset_below_log_start,
                ..Default::default()
            },
        }
    }

    /// The batches field's key and length; none for no batches, as proto3 leaves an empty field out.
    fn batches_field_head_len(&self) -> usize {
        if self.batches.is_empty() {
            0
        } else {
            1 + prost::length_delimiter_len(self.batches.len())
        }
    }

    /// The encoded `ReplicaPartitionData`'s length.
    fn message_len(&self) -> usize {
        self.head.encoded_len() + self.batches_field_head_len() + self.batches.len() + self.tail.encoded_len()
    }
}

/// `answer` as one gRPC message (frame header included) in chunks: the record bytes are the answer's own `Bytes`,
/// the rest is encoded by prost. Refused, as tonic refuses, when the message is over `max_message_bytes`.
pub fn grpc_message_chunks(answer: ReplicaData, max_message_bytes: usize) -> Result<Vec<Bytes>, Status> {
    let parts: Vec<PartitionParts> = answer.partitions.into_iter().map(PartitionParts::split).collect();
    let message_len: usize =
        parts.iter().map(|p| p.message_len()).map(|len| 1 + prost::length_delimiter_len(len) + len).sum();
    if message_len > max_message_bytes {
        return Err(Status::out_of_range(format!(
            "a replication answer of {message_len} bytes exceeds the limit of {max_message_bytes} bytes"
        )));
    }
    let frame_len = u32::try_from(message_len)
        .map_err(|_| Status::out_of_range(format!("a replication answer of {message_len} bytes is over 4 GiB")))?;
    let with_batches = parts.iter().filter(|p| !p.batches.is_empty()).count();
    let mut chunks = Vec::with_capacity(2 * with_batches + 1);
    let small_bytes = GRPC_HEADER_BYTES + message_len - parts.iter().map(|p| p.batches.len()).sum::<usize>();
    let mut small = BytesMut::with_capacity(small_bytes);
    small.put_u8(0); // not compressed
    small.put_u32(frame_len);
    for part in parts {
        small.put_u8(PARTITIONS_KEY);
        encode_length(part.message_len(), &mut small)?;
        encode(&part.head, &mut small)?;
        if !part.batches.is_empty() {
            small.put_u8(BATCHES_KEY);
            encode_length(part.batches.len(), &mut small)?;
            chunks.push(small.split().freeze());
            chunks.push(part.batches);
        }
        encode(&part.tail, &mut small)?;
    }
    if !small.is_empty() {
        chunks.push(small.freeze());
    }
    Ok(chunks)
}

fn encode_length(len: usize, buf: &mut BytesMut) -> Result<(), Status> {
    prost::encode_length_delimiter(len, buf).map_err(|e| Status::internal(format!("cannot encode a length: {e}")))
}

fn encode(fields: &ReplicaPartitionData, buf: &mut BytesMut) -> Result<(), Status> {
    fields.encode(buf).map_err(|e| Status::internal(format!("cannot encode a replication answer: {e}")))
}

/// The response body of one `Replicate` stream: each answer the leader's task sends as its chunks, then the
/// stream's status in the trailers. Pulls the next answer only once the last one's chunks are handed to HTTP/2,
/// which takes them as its flow control allows: the leader's task stays bounded by its channel of two answers.
pub struct ReplicaDataBody {
    answers: ReplicaDataStream,
    chunks: VecDeque<Bytes>,
    max_message_bytes: usize,
    is_done: bool,
}

impl ReplicaDataBody {
    pub fn new(answers: ReplicaDataStream, max_message_bytes: usize) -> Self {
        Self { answers, chunks: VecDeque::new(), max_message_bytes, is_done: false }
    }

    fn finish(&mut self, status: &Status) -> Frame<Bytes> {
        self.is_done = true;
        let mut trailers = http::HeaderMap::with_capacity(2);
        if let Err(unencodable) = status.add_header(&mut trailers) {
            trailers.clear();
            tracing::debug!(error = %unencodable, "a replication stream's status does not fit a header");
            let _ = Status::internal("replication stream failed").add_header(&mut trailers);
        }
        Frame::trailers(trailers)
    }
}

impl http_body::Body for ReplicaDataBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            if let Some(chunk) = self.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if self.is_done {
                return Poll::Ready(None);
            }
            let status = match ready!(Pin::new(&mut self.answers).poll_next(cx)) {
                Some(Ok(answer)) => match grpc_message_chunks(answer, self.max_message_bytes) {
                    Ok(chunks) => {
                        self.chunks.extend(chunks);
                        continue;
                    }
                    Err(status) => status,
                },
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            return Poll::Ready(Some(Ok(self.finish(&status))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_done && self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every frame of `body`: the data joined, and the trailers.
    async fn collect(mut body: ReplicaDataBody) -> (Vec<u8>, http::HeaderMap) {
        use http_body::Body as _;
        let mut data = Vec::new();
        let mut trailers = http::HeaderMap::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            match frame.expect("infallible").into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().expect("data or trailers"),
            }
        }
        assert!(body.is_end_stream());
        (data, trailers)
    }

    fn partition_data() -> impl Strategy<Value = ReplicaPartitionData> {
        (
            "[a-z.-]{0,12}",
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of("[ -~]{0,40}"),
            any::<i64>(),
            any::<bool>(),
        )
            .prop_map(
                |(topic, partition, batches, high_watermark, log_end_offset, error, log_start_offset, is_below)| {
                    ReplicaPartitionData {
                        topic,
                        partition,
                        batches: batches.into(),
                        high_watermark,
                        log_end_offset,
                        error: error.unwrap_or_default(),
                        log_start_offset,
                        fetch_offset_below_log_start: is_below,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn chunks_are_the_bytes_prost_would_write_and_share_the_batches(
            partitions in proptest::collection::vec(partition_data(), 0..6)
        ) {
            let answer = ReplicaData { partitions };
            let expected = answer.encode_to_vec();
            let batches: Vec<Bytes> =
                answer.partitions.iter().map(|p| p.batches.clone()).filter(|b| !b.is_empty()).collect();
            let chunks = grpc_message_chunks(answer, usize::MAX).expect("under the limit");
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            prop_assert_eq!(joined[0], 0);
            prop_assert_eq!(u32::from_be_bytes(joined[1..5].try_into().expect("4 bytes")) as usize, expected.len());
            prop_assert_eq!(&joined[GRPC_HEADER_BYTES..], &expected[..]);
            // Each batch goes out as the very `Bytes` the leader read: no copy of record bytes.
            for batch in &batches {
                prop_assert!(chunks.iter().any(|c| c.as_ptr() == batch.as_ptr() && c.len() == batch.len()));
            }
        }
    }

    #[test]
    fn an_answer_over_the_limit_is_refused_with_its_size() {
        let answer = ReplicaData {
            partitions: vec![ReplicaPartitionData {
                topic: "orders".into(),
                batches: vec![7u8; 1000].into(),
                ..Default::default()
            }],
        };
        let status = grpc_message_chunks(answer, 100).expect_err("1000 bytes of batches over a 100-byte limit");
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert!(status.message().contains("limit of 100 bytes"), "{}", status.message());
    }

    #[tokio::test]
    async fn the_body_sends_each_answer_then_an_ok_status() {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let answer = ReplicaData {
            partitions: vec![ReplicaPartitionData {
                topic: "orders".into(),
                partition: 3,
                batches: vec![1u8; 64].into(),
                high_watermark: 5,
                log_end_offset: 9,
                error: String::new(),
                log_start_offset: 2,
                fetch_offset_below_log_start: true,
            }],
        };
        let expected = answer.encode_to_vec();
        tx.send(Ok(answer.clone())).await.expect("open");
        tx.send(Ok(answer)).await.expect("open");
        drop(tx);
        let (data, trailers) =
            collect(ReplicaDataBody::new(tokio_stream::wrappers::ReceiverStream::new(rx), usize::MAX)).await;
        assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
        let mut bytes = Bytes::from(data);
        for _ in 0..2 {
            let message = bytes.split_to(GRPC_HEADER_BYTES + expected.len());
            assert_eq!(&message[GRPC_HEADER_BYTES..], &expected[..]);
        }
        assert!(bytes.is_empty());
    }

    #[tokio::test]
    async fn a_failed_stream_ends_with_its_status() {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(Err(Status::failed_precondition("node 4 holds no replica of it"))).await.expect("open");
        let (data, trailers) =
            collect(ReplicaDataBody::new(tokio_stream::wrappers::ReceiverStream::new(rx), usize::MAX)).await;
        assert!(data.is_empty());
        let status = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(status.message(), "node 4 holds no replica of it");
    }
}
