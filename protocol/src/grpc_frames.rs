//! One gRPC message read from the HTTP/2 frames it came in, without copying them together: what lets the
//! broker take a produced batch and the client take a fetched one as the frame bytes themselves.
//!
//! [`read_message`] keeps a unary call's body frames as they arrive; prost decodes the message from them
//! through [`Chunks`], whose `copy_to_bytes` slices a frame instead of copying when the bytes asked for lie in
//! one. A `bytes` field that arrived inside one frame (a batch sent as its own chunk, in frames of up to 1–2
//! MiB) therefore becomes a slice of that frame. Anything else is copied together where needed, as tonic would.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body::Body as _;
use tonic::body::Body;
use tonic::Status;

/// gRPC's frame header: a compressed flag and the message length (big-endian u32).
pub const GRPC_HEADER_BYTES: usize = 5;

/// The one message of a unary call's body (a request, or an answer), as the HTTP/2 frames it came in. Refuses
/// a message above `limit` from its header, before reading it; `limit_name` says whose limit that is in the
/// error. A failed call's status, in the trailers, is returned as the error.
pub async fn read_message(mut body: Body, limit: usize, limit_name: &str) -> Result<Chunks, Status> {
    let mut chunks = Chunks::default();
    let mut expected: Option<usize> = None;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let data = match frame?.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Some(status) = frame.trailers_ref().and_then(Status::from_header_map) {
                    if status.code() != tonic::Code::Ok {
                        return Err(status);
                    }
                }
                continue;
            }
        };
        chunks.push(data);
        if expected.is_none() && chunks.remaining() >= GRPC_HEADER_BYTES {
            let mut header = [0u8; GRPC_HEADER_BYTES];
            chunks.peek(&mut header);
            if header[0] != 0 {
                return Err(Status::internal("a compressed message without a grpc-encoding"));
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if len > limit {
                return Err(Status::resource_exhausted(format!(
                    "a message of {len} bytes exceeds {limit_name} of {limit} bytes"
                )));
            }
            expected = Some(GRPC_HEADER_BYTES + len);
        }
        if expected.is_some_and(|total| chunks.remaining() > total) {
            return Err(Status::invalid_argument("a unary call carries exactly one message each way"));
        }
    }
    match expected {
        Some(total) if chunks.remaining() == total => {
            chunks.advance(GRPC_HEADER_BYTES);
            Ok(chunks)
        }
        _ => Err(Status::internal("the body ended inside its message")),
    }
}

/// Byte chunks read as one `Buf`. `copy_to_bytes` slices a chunk when the bytes asked for lie in one, which is
/// what makes prost's `bytes` fields zero-copy here.
#[derive(Default)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl Chunks {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The next whole message of a stream of length-prefixed gRPC messages, decoded and consumed; `None` until
    /// all of its bytes are here. A message above `limit` is refused from its header, before it is read;
    /// `what` names the message and `limit_name` whose limit it is, in the errors.
    pub fn next_message<M: prost::Message + Default>(
        &mut self,
        limit: usize,
        limit_name: &str,
        what: &str,
    ) -> Result<Option<M>, Status> {
        if self.remaining < GRPC_HEADER_BYTES {
            return Ok(None);
        }
        let mut header = [0u8; GRPC_HEADER_BYTES];
        self.peek(&mut header);
        if header[0] != 0 {
            return Err(Status::internal(format!("a compressed {what} on a stream without a grpc-encoding")));
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > limit {
            return Err(Status::resource_exhausted(format!(
                "a {what} of {len} bytes exceeds {limit_name} of {limit} bytes"
            )));
        }
        if self.remaining < GRPC_HEADER_BYTES + len {
            return Ok(None);
        }
        self.advance(GRPC_HEADER_BYTES);
        let mut message = self.take(len);
        let decoded = M::decode(&mut message);
        let rest = message.remaining();
        self.advance(rest);
        decoded.map(Some).map_err(|e| Status::internal(format!("cannot decode the {what}: {e}")))
    }

    /// Copies the first `into.len()` bytes into `into` without consuming them; the caller checked they exist.
    pub fn peek(&self, into: &mut [u8]) {
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = chunk.len().min(into.len() - filled);
            into[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == into.len() {
                break;
            }
        }
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the chunks");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else { return };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining, "copy_to_bytes past the end of the chunks");
        if let Some(front) = self.chunks.front_mut() {
            if len <= front.len() {
                self.remaining -= len;
                let bytes = front.split_to(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                return bytes;
            }
        }
        let mut copied = BytesMut::with_capacity(len);
        copied.put((&mut *self).take(len));
        copied.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;
    use proptest::prelude::*;
    use prost::Message;

    fn request(batch_len: usize) -> v1::ProduceRequest {
        v1::ProduceRequest {
            topic: "orders".into(),
            partition: Some(3),
            records: Some(v1::produce_request::Records::RecordBatch(Bytes::from(
                (0..batch_len).map(|i| i as u8).collect::<Vec<u8>>(),
            ))),
            acks: 1,
        }
    }

    fn chunks_of(bytes: &[u8], cuts: &[usize]) -> Chunks {
        let mut chunks = Chunks::default();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(Bytes::copy_from_slice(&bytes[from..cut.max(from)]));
            from = cut.max(from);
        }
        chunks
    }

    fn framed(message: &v1::ProduceRequest) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
        framed
    }

    #[test]
    fn a_stream_of_messages_comes_out_one_whole_message_at_a_time() {
        let (first, second) = (request(300), request(4000));
        let stream = [framed(&first), framed(&second)].concat();
        let mut chunks = Chunks::default();
        let mut read = Vec::new();
        // Fed in 7-byte frames: a message is read only once all of it is there.
        for piece in stream.chunks(7) {
            chunks.push(Bytes::copy_from_slice(piece));
            while let Some(message) = chunks
                .next_message::<v1::ProduceRequest>(1 << 20, "the test's limit", "message")
                .expect("valid messages")
            {
                read.push(message);
            }
        }
        assert_eq!(read, vec![first, second]);
        assert_eq!(chunks.remaining(), 0);
    }

    #[test]
    fn a_message_over_the_limit_or_compressed_is_refused_from_its_header() {
        let big = framed(&request(5000));
        let mut chunks = Chunks::default();
        chunks.push(Bytes::copy_from_slice(&big[..GRPC_HEADER_BYTES]));
        let refused = chunks.next_message::<v1::ProduceRequest>(1000, "the follower's limit", "replication answer");
        let status = refused.expect_err("over the limit");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("exceeds the follower's limit of 1000 bytes"), "{}", status.message());

        let mut compressed = framed(&request(10));
        compressed[0] = 1;
        let mut chunks = Chunks::default();
        chunks.push(Bytes::from(compressed));
        let status = chunks.next_message::<v1::ProduceRequest>(1000, "a limit", "message").expect_err("compressed");
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    proptest! {
        /// However the frames cut the message, prost reads the same request from them.
        #[test]
        fn any_split_of_a_message_decodes_to_the_same_request(
            batch_len in 0usize..3000,
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let original = request(batch_len);
            let encoded = original.encode_to_vec();
            let mut chunks = chunks_of(&encoded, &cuts);
            prop_assert_eq!(chunks.remaining(), encoded.len());
            let decoded = v1::ProduceRequest::decode(&mut chunks).unwrap();
            prop_assert_eq!(decoded, original);
        }
    }

    /// The split rill's client makes (fields, then the batch on its own) gives a batch that is the frame itself.
    #[test]
    fn a_batch_in_a_frame_of_its_own_is_not_copied() {
        let original = request(100_000);
        let Some(v1::produce_request::Records::RecordBatch(batch)) = original.records.clone() else { unreachable!() };
        // As `client/src/produce_call.rs` lays it out: every other field, the batch's key and length, the batch.
        let mut head = v1::ProduceRequest { records: None, ..original.clone() }.encode_to_vec();
        head.push((3 << 3) | 2);
        prost::encode_length_delimiter(batch.len(), &mut head).unwrap();
        let mut chunks = Chunks::default();
        chunks.push(Bytes::from(head));
        let frame = Bytes::copy_from_slice(&batch);
        chunks.push(frame.clone());
        let decoded = v1::ProduceRequest::decode(&mut chunks).unwrap();
        assert_eq!(decoded, original);
        let Some(v1::produce_request::Records::RecordBatch(batch)) = decoded.records else { panic!("a batch") };
        assert_eq!(batch.as_ptr(), frame.as_ptr(), "the decoded batch is a slice of the frame");
    }

    #[test]
    fn peek_and_advance_cross_chunks() {
        let mut chunks = chunks_of(b"0123456789", &[1, 2, 7]);
        let mut head = [0u8; 5];
        chunks.peek(&mut head);
        assert_eq!(&head, b"01234");
        chunks.advance(3);
        assert_eq!(chunks.remaining(), 7);
        assert_eq!(&chunks.copy_to_bytes(6)[..], b"345678");
        assert_eq!(&chunks.copy_to_bytes(1)[..], b"9");
        assert_eq!(chunks.remaining(), 0);
    }
}
