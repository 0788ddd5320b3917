//! A Kafka connection's incoming bytes, cut into request frames without copying them.
//!
//! One buffer per connection. A read takes what the socket has, so a run of small requests costs one read
//! between them, not two per request (size prefix, then body). A large request is read straight into the
//! allocation that becomes its `Bytes`: never zeroed first, never copied after, and its record batches go to
//! storage as slices of it. To keep a request in one allocation, a read never crosses the end of the frame
//! under way once its size is known, and after a large request (a producer's are about `batch.size` each)
//! the next read takes only the size prefix, so the body is read into a buffer of exactly its size. After a
//! small one, a read takes up to a chunk, and a large request that starts inside it has at most that chunk
//! moved once.
//!
//! The connection reads ahead while a request is answered ([`RequestBuffer::wants_read_ahead`]): at most one
//! more whole request, so a connection holds at most two request buffers (`max_request_bytes` each).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::framing::{frame_size, FrameError, PREAMBLE_BYTES, SIZE_PREFIX_BYTES};

/// The smallest read: room for many small requests (Metadata, Heartbeat, a fetch) at once.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Request frames as they arrive on one connection.
pub struct RequestBuffer {
    buffered: BytesMut,
    max_request_bytes: usize,
    /// The last whole frame's size, prefix included: a large one predicts another.
    last_frame_bytes: usize,
    is_peer_closed: bool,
    /// The shortest frame taken: a request's preamble, or less while raw SASL messages are expected.
    min_frame_bytes: usize,
}

impl RequestBuffer {
    pub fn new(max_request_bytes: usize) -> Self {
        RequestBuffer {
            buffered: BytesMut::new(),
            max_request_bytes,
            last_frame_bytes: 0,
            is_peer_closed: false,
            min_frame_bytes: PREAMBLE_BYTES,
        }
    }

    /// The next whole request (without its size prefix), if it is all here. A size prefix that cannot start a
    /// request is an error before a byte of its body is read.
    pub fn next_request(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.declared_size()? else { return Ok(None) };
        if self.buffered.len() < SIZE_PREFIX_BYTES + size {
            return Ok(None);
        }
        self.last_frame_bytes = SIZE_PREFIX_BYTES + size;
        self.buffered.advance(SIZE_PREFIX_BYTES);
        Ok(Some(self.buffered.split_to(size).freeze()))
    }

    /// Whether the next frames are raw SASL messages (after a SaslHandshake v0), which may be shorter than any
    /// request.
    pub fn expect_raw_frames(&mut self, is_raw: bool) {
        self.min_frame_bytes = if is_raw { 0 } else { PREAMBLE_BYTES };
    }

    /// After [`next_request`](Self::next_request) refused a frame as too large: what has arrived of its body (the
    /// size prefix dropped), taken out, so the caller reads the rest from the connection itself
    /// (`oversized.rs`). The buffer is then empty, ready for the request after it.
    pub fn take_oversized(&mut self) -> BytesMut {
        let mut taken = std::mem::take(&mut self.buffered);
        taken.advance(SIZE_PREFIX_BYTES.min(taken.len()));
        taken
    }

    /// Whether reading ahead is still useful: the peer is open and no whole request (or bad prefix, which the
    /// next [`next_request`](Self::next_request) reports) is waiting yet.
    pub fn wants_read_ahead(&self) -> bool {
        if self.is_peer_closed {
            return false;
        }
        match self.declared_size() {
            Ok(Some(size)) => self.buffered.len() < SIZE_PREFIX_BYTES + size,
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The peer closed its side: what is buffered is all there will be.
    pub fn is_peer_closed(&self) -> bool {
        self.is_peer_closed
    }

    /// Bytes of a request that started but did not finish (what a peer that closed cut off).
    pub fn partial_bytes(&self) -> usize {
        self.buffered.len()
    }

    /// One read from `connection`: the bytes it brought (0 once the peer has closed). Cancel-safe: a read that
    /// is dropped before it completes has taken nothing.
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, connection: &mut R) -> io::Result<usize> {
        let room = self.room_for_next_read();
        self.buffered.reserve(room);
        let read = connection.read_buf(&mut (&mut self.buffered).limit(room)).await?;
        if read == 0 {
            self.is_peer_closed = true;
        }
        Ok(read)
    }

    /// How much the next read may take: up to the end of the frame under way (so the next frame starts in an
    /// allocation of its own); just the size prefix after a large frame; else a chunk.
    fn room_for_next_read(&self) -> usize {
        match self.declared_size() {
            Ok(Some(size)) => (SIZE_PREFIX_BYTES + size).saturating_sub(self.buffered.len()).max(1),
            Ok(None) if self.buffered.is_empty() && self.last_frame_bytes > READ_CHUNK_BYTES => SIZE_PREFIX_BYTES,
            // A bad prefix is reported by `next_request` before any further read.
            Ok(None) | Err(_) => READ_CHUNK_BYTES,
        }
    }

    /// The size the buffered prefix declares; `None` before all four bytes are here.
    fn declared_size(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buffered.get(..SIZE_PREFIX_BYTES) else { return Ok(None) };
        let prefix: [u8; SIZE_PREFIX_BYTES] = prefix.try_into().expect("a slice of SIZE_PREFIX_BYTES");
        frame_size(prefix, self.min_frame_bytes, self.max_request_bytes).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    async fn requests_read_in_pieces(stream: &[u8], piece_bytes: usize) -> Vec<Bytes> {
        let (mut client, mut server) = tokio::io::duplex(piece_bytes);
        let sent = stream.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in sent.chunks(piece_bytes) {
                client.write_all(piece).await.expect("the reader is open");
            }
        });
        let mut buffer = RequestBuffer::new(1 << 20);
        let mut requests = Vec::new();
        loop {
            while let Some(request) = buffer.next_request().expect("well-formed frames") {
                requests.push(request);
            }
            if buffer.read_from(&mut server).await.expect("an in-memory stream") == 0 {
                break;
            }
        }
        writer.await.expect("the writer finished");
        assert_eq!(buffer.partial_bytes(), 0, "nothing left over");
        requests
    }

    #[tokio::test]
    async fn frames_are_cut_whole_whatever_the_reads_bring() {
        let bodies: Vec<Vec<u8>> = [8usize, 9, 300, 70_000, 8, 200_000, 12]
            .iter()
            .enumerate()
            .map(|(n, &len)| (0..len).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|body| frame(body)).collect();
        for piece_bytes in [1, 3, 4, 5, 4096, 65_537, 1 << 20] {
            let requests = requests_read_in_pieces(&stream, piece_bytes).await;
            let got: Vec<&[u8]> = requests.iter().map(|r| &r[..]).collect();
            let want: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            assert_eq!(got, want, "read in pieces of {piece_bytes} bytes");
        }
    }

    #[tokio::test]
    async fn a_raw_sasl_frame_may_be_shorter_than_any_request() {
        let mut server = std::io::Cursor::new(frame(b"\0u\0p"));
        let mut buffer = RequestBuffer::new(1 << 20);
        buffer.read_from(&mut server).await.expect("in memory");
        assert_eq!(buffer.next_request(), Err(FrameError::TooShort { size: 4 }), "a request needs its preamble");
        buffer.expect_raw_frames(true);
        assert_eq!(buffer.next_request(), Ok(Some(Bytes::from_static(b"\0u\0p"))));
    }

    #[tokio::test]
    async fn a_bad_size_prefix_is_refused_before_its_body_arrives() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client.write_all(&i32::MAX.to_be_bytes()).await.expect("open");
        let mut buffer = RequestBuffer::new(1 << 20);
        buffer.read_from(&mut server).await.expect("in memory");
        assert!(!buffer.wants_read_ahead(), "nothing to wait for after a bad prefix");
        assert_eq!(buffer.next_request(), Err(FrameError::TooLarge { size: i32::MAX as i64, limit: 1 << 20 }));
    }

    #[tokio::test]
    async fn reading_ahead_stops_at_one_whole_request() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        use tokio::io::AsyncWriteExt;
        let two = [frame(&[1; 10]), frame(&[2; 10])].concat();
        client.write_all(&two).await.expect("open");
        let mut buffer = RequestBuffer::new(1 << 20);
        while buffer.wants_read_ahead() {
            buffer.read_from(&mut server).await.expect("in memory");
        }
        assert_eq!(buffer.next_request().expect("framed").as_deref(), Some(&[1u8; 10][..]));
        assert_eq!(buffer.next_request().expect("framed").as_deref(), Some(&[2u8; 10][..]));
        assert_eq!(buffer.next_request().expect("framed"), None);
        drop(client);
        assert_eq!(buffer.read_from(&mut server).await.expect("in memory"), 0);
        assert!(buffer.is_peer_closed());
    }
}
