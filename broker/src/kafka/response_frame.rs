//! A response frame in pieces, so a Fetch response carries its record batches without copying them: the
//! encoded fields go into small buffers, and each batch run storage read goes out as the very `Bytes` it
//! returned, in one vectored write with the fields around it. Storage's read stays the only copy of a record
//! between the log and the socket, as on the gRPC side.
//!
//! The pieces come from the `kafka-protocol` crate's own encoder: [`PieceWriter`] is the buffer it writes
//! into, and when it is handed a slice that *is* one of the batches named up front (same address, same
//! length), it keeps a reference instead of the bytes. Anything else is copied as usual, so the frame is the
//! same bytes as the one-buffer encoding whatever the encoder does (a test holds it to that).
//!
//! A partition's answer can be several runs, one a cached append, so a fetch carries up to what the client
//! allows instead of one append ([`BatchRun::joining`]). The response then holds a stand-in of their total length,
//! a slice of a static region no data lives in, and the writer puts the runs in its place. Were the encoder ever
//! to hand the stand-in over in parts, the frame would hold its zeros: [`encode_response_pieces`] refuses such a
//! frame ([`UnplacedRuns`]) and the caller encodes the runs joined.

use std::io::{self, IoSlice};
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::framing::{EncodeError, SIZE_PREFIX_BYTES};

/// Below this a batch run is copied into the frame: a piece of its own costs more than the copy.
pub const SHARED_PIECE_MIN_BYTES: usize = 4096;

/// At most this many pieces a write (Linux's `IOV_MAX` is 1024).
const PIECES_PER_WRITE: usize = 64;

/// The most bytes a run of several pieces stands for: the stand-ins are slices of a static region this size,
/// never written, so it costs address space only. A partition's share of a fetch is at most `max_fetch_bytes`.
pub const JOINED_RUN_MAX_BYTES: usize = 64 << 20;

static STAND_IN: [u8; JOINED_RUN_MAX_BYTES] = [0; JOINED_RUN_MAX_BYTES];

/// Record batches a response carries by reference, in the order the encoder meets them.
#[derive(Debug, Clone)]
pub struct BatchRun {
    /// What the response holds: the batches themselves, or the stand-in of several runs.
    held: Bytes,
    /// What goes out in its place, when `held` is a stand-in.
    joined: Option<Vec<Bytes>>,
}

impl BatchRun {
    /// Batches the response holds as they are.
    pub fn single(batches: Bytes) -> BatchRun {
        BatchRun { held: batches, joined: None }
    }

    /// Several runs that go out one after another as one partition's records; the runs back when they would
    /// exceed [`JOINED_RUN_MAX_BYTES`].
    pub fn joining(runs: Vec<Bytes>) -> Result<BatchRun, Vec<Bytes>> {
        let total: usize = runs.iter().map(Bytes::len).sum();
        if total > JOINED_RUN_MAX_BYTES {
            return Err(runs);
        }
        Ok(BatchRun { held: Bytes::from_static(&STAND_IN[..total]), joined: Some(runs) })
    }

    /// How many bytes of batches the run sends.
    pub fn byte_len(&self) -> usize {
        self.held.len()
    }

    /// The value for the response to hold: the batches, or the stand-in.
    pub fn held(&self) -> Bytes {
        self.held.clone()
    }

    /// Whether `records`, a value a response holds, is a stand-in of [`BatchRun::joining`].
    pub fn is_stand_in(records: &Bytes) -> bool {
        !records.is_empty() && records.as_ptr() == STAND_IN.as_ptr()
    }

    /// The batches as one buffer (a copy when there are several runs): what the response holds when the
    /// frame cannot be encoded in pieces.
    pub fn to_bytes(&self) -> Bytes {
        match &self.joined {
            None => self.held.clone(),
            Some(runs) => Bytes::from(runs.concat()),
        }
    }
}

/// A frame in which a [`BatchRun::joining`] run's stand-in was not met whole by the encoder.
#[derive(Debug)]
pub struct UnplacedRuns;

/// One whole response frame (size prefix, header, body), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFrame {
    pieces: Vec<Bytes>,
}

impl ResponseFrame {
    /// A frame encoded in one buffer.
    pub fn whole(frame: Bytes) -> ResponseFrame {
        ResponseFrame { pieces: vec![frame] }
    }

    /// The frame's pieces, in order.
    #[cfg(test)]
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// Writes the whole frame, as few writes as the stream takes (one vectored write on plain TCP).
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, stream: &mut W) -> io::Result<()> {
        if let [only] = &self.pieces[..] {
            return stream.write_all(only).await;
        }
        let (mut piece, mut offset) = (0, 0);
        while piece < self.pieces.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(&self.pieces[piece][offset..])
                .chain(self.pieces[piece + 1..].iter().map(|p| &p[..]))
                .take(PIECES_PER_WRITE)
                .map(IoSlice::new)
                .collect();
            let mut written = stream.write_vectored(&slices).await?;
            if written == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the peer took no bytes of a response"));
            }
            while piece < self.pieces.len() && written >= self.pieces[piece].len() - offset {
                written -= self.pieces[piece].len() - offset;
                piece += 1;
                offset = 0;
            }
            offset += written;
        }
        Ok(())
    }
}

/// Encodes a response into pieces, passing `shared` (the batch runs the response holds, in the order the
/// encoder meets them) by reference. `Ok(Err(UnplacedRuns))` when a run of several pieces was not placed: the
/// frame would carry its stand-in, so there is none; encode the response holding [`BatchRun::to_bytes`] instead.
pub fn encode_response_pieces<M: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &M,
    version: i16,
    shared: Vec<BatchRun>,
) -> Result<Result<ResponseFrame, UnplacedRuns>, EncodeError> {
    let mut writer = PieceWriter::new(shared);
    writer.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut writer, header_version)
        .map_err(|e| EncodeError::new(e.to_string()))?;
    body.encode(&mut writer, version).map_err(|e| EncodeError::new(e.to_string()))?;
    let Some(mut pieces) = writer.finish() else { return Ok(Err(UnplacedRuns)) };
    let total: usize = pieces.iter().map(Bytes::len).sum();
    let size = i32::try_from(total - SIZE_PREFIX_BYTES)
        .map_err(|_| EncodeError::new(format!("a response of {total} bytes")))?;
    // The prefix was written first, into the first piece, which is always an owned one.
    let mut first = BytesMut::from(&pieces[0][..]);
    first[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    pieces[0] = first.freeze();
    Ok(Ok(ResponseFrame { pieces }))
}

/// The buffer the encoder writes into: owned bytes, with the shared runs spliced in as pieces of their own.
struct PieceWriter {
    /// Bytes written since the last shared piece.
    head: BytesMut,
    pieces: Vec<Bytes>,
    /// Bytes in `pieces`: where `head` starts in the frame.
    flushed_bytes: usize,
    shared: std::vec::IntoIter<BatchRun>,
    next_shared: Option<BatchRun>,
}

impl PieceWriter {
    fn new(shared: Vec<BatchRun>) -> PieceWriter {
        let mut shared = shared.into_iter();
        let next_shared = shared.next();
        PieceWriter { head: BytesMut::with_capacity(256), pieces: Vec::new(), flushed_bytes: 0, shared, next_shared }
    }

    /// The pieces, or `None` when a run of several pieces did not get its place: its stand-in was then written
    /// as bytes, or in parts (matching is in order, so a run met out of order leaves every later one unmatched).
    fn finish(mut self) -> Option<Vec<Bytes>> {
        if self.next_shared.iter().chain(self.shared.as_slice()).any(|run| run.joined.is_some()) {
            return None;
        }
        if !self.head.is_empty() || self.pieces.is_empty() {
            self.pieces.push(self.head.freeze());
        }
        Some(self.pieces)
    }

    fn push_piece(&mut self, piece: Bytes) {
        if !self.head.is_empty() {
            let head = self.head.split().freeze();
            self.flushed_bytes += head.len();
            self.pieces.push(head);
        }
        self.flushed_bytes += piece.len();
        self.pieces.push(piece);
    }

    /// The encoder may go back to patch a length it wrote earlier (message encoders do not today). Before the
    /// last shared piece that needs one buffer again: the pieces are joined, a copy only this rare path pays.
    fn join_pieces(&mut self) {
        if self.pieces.is_empty() {
            return;
        }
        let mut joined = BytesMut::with_capacity(self.flushed_bytes + self.head.len());
        for piece in self.pieces.drain(..) {
            joined.extend_from_slice(&piece);
        }
        joined.extend_from_slice(&self.head);
        self.head = joined;
        self.flushed_bytes = 0;
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose own implementation upholds the contract.
unsafe impl BufMut for PieceWriter {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `chunk_mut` returned, which is `head`'s.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let is_next_shared = self
            .next_shared
            .as_ref()
            .is_some_and(|shared| shared.held.as_ptr() == src.as_ptr() && shared.held.len() == src.len());
        if !is_next_shared {
            self.head.extend_from_slice(src);
            return;
        }
        let shared = self.next_shared.take().expect("checked just above");
        self.next_shared = self.shared.next();
        match shared.joined {
            Some(runs) => {
                for run in runs {
                    if run.len() >= SHARED_PIECE_MIN_BYTES {
                        self.push_piece(run);
                    } else {
                        self.head.extend_from_slice(&run);
                    }
                }
            }
            None if src.len() >= SHARED_PIECE_MIN_BYTES => self.push_piece(shared.held),
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for PieceWriter {
    fn offset(&self) -> usize {
        self.flushed_bytes + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.flushed_bytes {
            self.join_pieces();
        }
        self.head.resize(offset - self.flushed_bytes, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.flushed_bytes {
            self.join_pieces();
        }
        let flushed = self.flushed_bytes;
        &mut self.head[r.start - flushed..r.end - flushed]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::framing::encode_response;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};

    fn fetch_response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(n, r)| {
                PartitionData::default()
                    .with_partition_index(n as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r.clone()))
            })
            .collect();
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("t")))
            .with_partitions(partitions);
        FetchResponse::default().with_responses(vec![topic])
    }

    fn singles(records: &[Bytes]) -> Vec<BatchRun> {
        records.iter().cloned().map(BatchRun::single).collect()
    }

    #[test]
    fn a_joined_run_goes_out_as_its_pieces_and_the_frame_is_the_joined_one_byte_for_byte() {
        let runs: Vec<Bytes> = [10_000usize, 100, 8192]
            .iter()
            .enumerate()
            .map(|(n, &len)| Bytes::from((0..len).map(|i| (i * 7 + n) as u8).collect::<Vec<_>>()))
            .collect();
        let other = Bytes::from(vec![3u8; 5000]);
        let joined = BatchRun::joining(runs.clone()).expect("within the stand-in");
        assert!(BatchRun::is_stand_in(&joined.held()));
        let response = fetch_response(&[joined.held(), other.clone()]);
        let expected = fetch_response(&[Bytes::from(runs.concat()), other.clone()]);
        for version in [4, 11, 12, 16] {
            let header_version = if version >= 12 { 1 } else { 0 };
            let whole = encode_response(5, header_version, &expected, version).expect("encodes");
            let shared = vec![joined.clone(), BatchRun::single(other.clone())];
            let frame = encode_response_pieces(5, header_version, &response, version, shared)
                .expect("encodes")
                .expect("placed");
            assert_eq!(frame.pieces().concat(), whole.to_vec(), "v{version}");
            for run in [&runs[0], &runs[2], &other] {
                assert!(frame.pieces().iter().any(|p| p.as_ptr() == run.as_ptr()), "v{version}: shared, not copied");
            }
        }
    }

    #[test]
    fn a_joined_run_met_out_of_order_gives_no_frame_rather_than_its_stand_in() {
        let joined = BatchRun::joining(vec![Bytes::from(vec![1u8; 9000]), Bytes::from(vec![2u8; 9000])]).expect("fits");
        let other = Bytes::from(vec![3u8; 5000]);
        let response = fetch_response(&[joined.held(), other.clone()]);
        let out_of_order = vec![BatchRun::single(other), joined.clone()];
        let encoded = encode_response_pieces(5, 0, &response, 4, out_of_order).expect("encodes");
        assert!(encoded.is_err(), "the stand-in's zeros must never make a frame");
        assert_eq!(joined.to_bytes().len(), 18_000);
    }

    #[test]
    fn a_fetch_frame_in_pieces_is_the_one_buffer_frame_byte_for_byte() {
        let records: Vec<Bytes> = [10_000usize, 100, 0, 5000, 4096]
            .iter()
            .enumerate()
            .map(|(n, &len)| Bytes::from((0..len).map(|i| (i + n) as u8).collect::<Vec<_>>()))
            .collect();
        let response = fetch_response(&records);
        for version in [4, 11, 12, 16] {
            let header_version = if version >= 12 { 1 } else { 0 };
            let whole = encode_response(9, header_version, &response, version).expect("encodes");
            let frame = encode_response_pieces(9, header_version, &response, version, singles(&records))
                .expect("encodes")
                .expect("placed");
            assert_eq!(frame.pieces().concat(), whole.to_vec(), "v{version}");
            let shared = frame.pieces().iter().filter(|p| records.iter().any(|r| r.as_ptr() == p.as_ptr())).count();
            assert_eq!(shared, 3, "v{version}: the runs of 4 KiB and more are shared, not copied");
        }
    }

    #[test]
    fn runs_named_out_of_order_are_copied_not_misplaced() {
        let records: Vec<Bytes> = (0..3).map(|n| Bytes::from(vec![n as u8; 8192])).collect();
        let response = fetch_response(&records);
        let reversed: Vec<Bytes> = records.iter().rev().cloned().collect();
        let whole = encode_response(1, 0, &response, 4).expect("encodes");
        let frame = encode_response_pieces(1, 0, &response, 4, singles(&reversed)).expect("encodes").expect("placed");
        assert_eq!(frame.pieces().concat(), whole.to_vec());
    }

    #[tokio::test]
    async fn a_frame_in_pieces_is_written_whole_through_short_writes() {
        let records: Vec<Bytes> = (0..100).map(|n| Bytes::from(vec![n as u8; 5000])).collect();
        let response = fetch_response(&records);
        let frame = encode_response_pieces(3, 0, &response, 4, singles(&records)).expect("encodes").expect("placed");
        assert!(frame.pieces().len() > PIECES_PER_WRITE, "more pieces than one write takes");
        let (mut client, mut server) = tokio::io::duplex(1000);
        let expected = frame.pieces().concat();
        let writer = tokio::spawn(async move { frame.write_to(&mut server).await });
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut received).await.expect("in memory");
        writer.await.expect("the writer finished").expect("written");
        assert_eq!(received, expected);
    }
}
