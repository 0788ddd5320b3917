//! A Produce request over `max_request_bytes`, answered MESSAGE_TOO_LARGE instead of a closed connection.
//!
//! A producer configured for large messages (librdkafka's `message.max.bytes`, Java's `max.request.size`) sends
//! requests over the broker's limit. Closing the connection, as for any frame over the limit, leaves the client
//! retrying into the same wall until its delivery timeout, with librdkafka blaming SASL or TLS settings. Kafka
//! answers such a producer MESSAGE_TOO_LARGE, since its own request ceiling (`socket.request.max.bytes`, 100
//! MiB) is far above its message limit. Here the request is read through without being held: the names and
//! partition numbers it carries are kept (to answer each partition), every record byte is read into a small
//! scratch buffer and dropped, so the connection's memory stays bounded by its small fields, not the request.
//! Up to [`OVERSIZED_PRODUCE_CEILING`] bytes; any other API, a larger frame, or a body that does not parse as
//! Produce closes the connection as before.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::api_versions::supported_versions;
use super::framing::encode_response;

/// The largest request read through to answer it (Kafka's `socket.request.max.bytes` default); larger ones
/// close the connection unread.
pub const OVERSIZED_PRODUCE_CEILING: usize = 100 << 20;

/// Most bytes one small field (a client id, a topic name, a tagged field) may take.
const MAX_FIELD_BYTES: usize = 64 << 10;

/// Most partitions one answer names: a request naming more closes the connection.
const MAX_PARTITIONS: usize = 100_000;

/// Why an oversized request was not answered: the connection then closes.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    #[error("not a Produce request (API key {0})")]
    NotProduce(i16),
    #[error("Produce v{0} is not served")]
    Version(i16),
    #[error("malformed Produce request: {0}")]
    Malformed(&'static str),
    #[error("the connection failed while the request was read: {0}")]
    Io(#[from] std::io::Error),
}

/// What the request said that its answer needs.
#[derive(Debug)]
pub struct OversizedProduce {
    pub api_version: i16,
    pub correlation_id: i32,
    pub acks: i16,
    /// Per topic, its partition numbers.
    pub topics: Vec<(StrBytes, Vec<i32>)>,
}

impl OversizedProduce {
    /// The answer: MESSAGE_TOO_LARGE for every partition, saying how large the request was and what is allowed.
    pub fn answer(&self, size: usize, limit: usize) -> Result<Bytes, super::framing::EncodeError> {
        let message = format!(
            "the produce request of {size} bytes is over this broker's max_request_bytes ({limit}); a topic's \
             batches are limited to its max_batch_bytes: lower the client's message.max.bytes or max.request.size"
        );
        let responses = self
            .topics
            .iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .iter()
                    .map(|index| {
                        PartitionProduceResponse::default()
                            .with_index(*index)
                            .with_error_code(ResponseError::MessageTooLarge.code())
                            .with_error_message(Some(StrBytes::from_string(message.clone())))
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect();
                TopicProduceResponse::default().with_name(TopicName(name.clone())).with_partition_responses(partitions)
            })
            .collect();
        let response = ProduceResponse::default().with_responses(responses);
        let header_version = ApiKey::Produce.response_header_version(self.api_version);
        encode_response(self.correlation_id, header_version, &response, self.api_version)
    }
}

/// Reads the body of a `size`-byte request through, `buffered` being what has arrived of it already, and returns
/// what its answer needs. Consumes exactly `size` bytes, so the next request starts where it ended.
pub async fn read_through<R: AsyncRead + Unpin>(
    buffered: BytesMut,
    size: usize,
    connection: &mut R,
) -> Result<OversizedProduce, Unanswered> {
    if buffered.len() > size {
        return Err(Unanswered::Malformed("more bytes buffered than the request holds"));
    }
    let mut body = Body { pending: buffered, unread: size, connection, scratch: Vec::new() };
    let api_key = body.i16().await?;
    if api_key != ApiKey::Produce as i16 {
        return Err(Unanswered::NotProduce(api_key));
    }
    let api_version = body.i16().await?;
    match supported_versions(api_key) {
        Some((min, max)) if (min..=max).contains(&api_version) => {}
        _ => return Err(Unanswered::Version(api_version)),
    }
    let flexible = api_version >= 9;
    let correlation_id = body.i32().await?;
    // Request header v1 (v2 when flexible): the client id is a plain nullable string either way.
    let client_id = body.i16().await?;
    body.skip_small(usize::try_from(client_id).unwrap_or(0)).await?;
    if flexible {
        body.tagged_fields().await?;
    }
    // transactional_id
    if flexible {
        body.compact_string().await?;
    } else {
        let length = body.i16().await?;
        body.skip_small(usize::try_from(length).unwrap_or(0)).await?;
    }
    let acks = body.i16().await?;
    let _timeout_ms = body.i32().await?;
    let topic_count = body.count(flexible).await?;
    let mut topics = Vec::with_capacity(topic_count.min(1024));
    let mut partition_total = 0usize;
    for _ in 0..topic_count {
        let name = if flexible {
            body.compact_string().await?
        } else {
            let length = usize::try_from(body.i16().await?).map_err(|_| Unanswered::Malformed("a null topic name"))?;
            body.small(length).await?
        };
        let name = StrBytes::from_utf8(name).map_err(|_| Unanswered::Malformed("a topic name that is not UTF-8"))?;
        let partition_count = body.count(flexible).await?;
        partition_total += partition_count;
        if partition_total > MAX_PARTITIONS {
            return Err(Unanswered::Malformed("more partitions than one request may name"));
        }
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(body.i32().await?);
            // records: nullable bytes, read through and dropped.
            let length =
                if flexible { body.uvarint().await?.checked_sub(1) } else { u64::try_from(body.i32().await?).ok() };
            body.skip(usize::try_from(length.unwrap_or(0)).unwrap_or(usize::MAX)).await?;
            if flexible {
                body.tagged_fields().await?;
            }
        }
        if flexible {
            body.tagged_fields().await?;
        }
        topics.push((name, partitions));
    }
    if flexible {
        body.tagged_fields().await?;
    }
    if body.unread != 0 {
        return Err(Unanswered::Malformed("bytes after the last topic"));
    }
    Ok(OversizedProduce { api_version, correlation_id, acks, topics })
}

/// The part of a request's body not yet parsed: `pending` arrived, `unread` counts it and what is still on the
/// connection.
struct Body<'a, R> {
    pending: BytesMut,
    unread: usize,
    connection: &'a mut R,
    scratch: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Body<'_, R> {
    /// Makes `n` bytes (at most [`MAX_FIELD_BYTES`]) available in `pending`.
    async fn fill(&mut self, n: usize) -> Result<(), Unanswered> {
        if n > self.unread || n > MAX_FIELD_BYTES {
            return Err(Unanswered::Malformed("a field runs past the end of the request"));
        }
        while self.pending.len() < n {
            let wanted = (self.unread - self.pending.len()).min(MAX_FIELD_BYTES);
            self.pending.reserve(wanted);
            let read = self.connection.read_buf(&mut (&mut self.pending).limit(wanted)).await?;
            if read == 0 {
                return Err(Unanswered::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(())
    }

    async fn small(&mut self, n: usize) -> Result<Bytes, Unanswered> {
        self.fill(n).await?;
        self.unread -= n;
        Ok(self.pending.split_to(n).freeze())
    }

    async fn skip_small(&mut self, n: usize) -> Result<(), Unanswered> {
        self.small(n).await.map(drop)
    }

    /// Reads `n` bytes of any size through, holding at most a scratch buffer of them.
    async fn skip(&mut self, n: usize) -> Result<(), Unanswered> {
        if n > self.unread {
            return Err(Unanswered::Malformed("a record set runs past the end of the request"));
        }
        let from_pending = n.min(self.pending.len());
        self.pending.advance(from_pending);
        self.unread -= from_pending;
        let mut left = n - from_pending;
        if left > 0 && self.scratch.is_empty() {
            self.scratch = vec![0; MAX_FIELD_BYTES];
        }
        while left > 0 {
            let chunk = left.min(self.scratch.len());
            let read = self.connection.read(&mut self.scratch[..chunk]).await?;
            if read == 0 {
                return Err(Unanswered::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            left -= read;
            self.unread -= read;
        }
        Ok(())
    }

    async fn i16(&mut self) -> Result<i16, Unanswered> {
        Ok(self.small(2).await?.get_i16())
    }

    async fn i32(&mut self) -> Result<i32, Unanswered> {
        Ok(self.small(4).await?.get_i32())
    }

    async fn uvarint(&mut self) -> Result<u64, Unanswered> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.small(1).await?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Unanswered::Malformed("a varint longer than 5 bytes"))
    }

    /// An array's element count: i32 (-1 null), or compact (unsigned varint, count + 1, 0 null).
    async fn count(&mut self, flexible: bool) -> Result<usize, Unanswered> {
        let count = if flexible {
            self.uvarint().await?.saturating_sub(1)
        } else {
            u64::try_from(self.i32().await?).unwrap_or(0)
        };
        usize::try_from(count).map_err(|_| Unanswered::Malformed("an array count out of range"))
    }

    /// A compact (nullable) string; empty for null.
    async fn compact_string(&mut self) -> Result<Bytes, Unanswered> {
        let length = self.uvarint().await?.saturating_sub(1);
        self.small(usize::try_from(length).unwrap_or(usize::MAX)).await
    }

    async fn tagged_fields(&mut self) -> Result<(), Unanswered> {
        let count = self.uvarint().await?;
        for _ in 0..count {
            let _tag = self.uvarint().await?;
            let length = self.uvarint().await?;
            self.skip_small(usize::try_from(length).unwrap_or(usize::MAX)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// A whole Produce request frame body (header and body, no size prefix) with `records` bytes per partition.
    fn produce_request(version: i16, topics: &[(&str, &[i32])], records: usize) -> BytesMut {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("tester")))
            .encode(&mut frame, ApiKey::Produce.request_header_version(version))
            .expect("a header");
        let topic_data = topics
            .iter()
            .map(|(name, partitions)| {
                let partition_data = partitions
                    .iter()
                    .map(|index| {
                        PartitionProduceData::default()
                            .with_index(*index)
                            .with_records(Some(Bytes::from(vec![7u8; records])))
                    })
                    .collect();
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string((*name).to_owned())))
                    .with_partition_data(partition_data)
            })
            .collect();
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(topic_data)
            .encode(&mut frame, version)
            .expect("a body");
        frame
    }

    #[tokio::test]
    async fn every_served_version_is_read_through_to_its_end_and_answered_per_partition() {
        for version in 3..=9 {
            let request = produce_request(version, &[("orders", &[0, 2]), ("audit", &[5])], 300_000);
            let size = request.len();
            // The first bytes arrived with the size prefix; the rest comes from the connection, then another
            // request's first byte that must stay unread.
            let (head, rest) = request.split_at(1000);
            let mut wire = rest.to_vec();
            wire.push(0xAA);
            let mut connection = std::io::Cursor::new(wire);
            let read = read_through(BytesMut::from(head), size, &mut connection).await.expect("read through");
            assert_eq!(connection.position() as usize, size - 1000, "v{version}: exactly the request");
            assert_eq!((read.correlation_id, read.acks, read.api_version), (77, -1, version));
            let names: Vec<(&str, &[i32])> = read.topics.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
            assert_eq!(names, [("orders", &[0, 2][..]), ("audit", &[5][..])]);

            let mut answer = read.answer(size, 1000).expect("an answer");
            let frame_size = answer.get_i32() as usize;
            assert_eq!(frame_size, answer.len());
            kafka_protocol::messages::ResponseHeader::decode(
                &mut answer,
                ApiKey::Produce.response_header_version(version),
            )
            .expect("a header");
            let response = ProduceResponse::decode(&mut answer, version).expect("a response");
            let codes: Vec<i16> =
                response.responses.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)).collect();
            assert_eq!(codes, [ResponseError::MessageTooLarge.code(); 3], "v{version}");
        }
    }

    #[tokio::test]
    async fn another_api_or_a_cut_request_is_not_answered() {
        let mut metadata = BytesMut::new();
        metadata.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
        metadata.extend_from_slice(&[0; 30]);
        let refused = read_through(metadata.clone(), 10_000_000, &mut std::io::Cursor::new(Vec::new())).await;
        assert!(matches!(refused, Err(Unanswered::NotProduce(3))), "{refused:?}");

        let request = produce_request(9, &[("orders", &[0])], 100_000);
        let size = request.len();
        let cut = request[..50_000].to_vec();
        let refused = read_through(BytesMut::new(), size, &mut std::io::Cursor::new(cut)).await;
        assert!(matches!(refused, Err(Unanswered::Io(_))), "{refused:?}");

        // A record set declared longer than the request.
        let request = produce_request(7, &[("orders", &[0])], 10);
        let short = BytesMut::from(&request[..request.len() - 5]);
        let refused = read_through(short, request.len() - 5, &mut std::io::Cursor::new(Vec::new())).await;
        assert!(matches!(refused, Err(Unanswered::Malformed(_))), "{refused:?}");
    }

    proptest::proptest! {
        /// Whatever bytes follow a Produce preamble, and whatever size is declared, the read ends (answered or
        /// not) without a panic and never takes a byte past the declared size.
        #[test]
        fn arbitrary_bodies_end_within_their_declared_size(
            version in 3i16..=9,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            extra in 0usize..64,
        ) {
            let mut body = BytesMut::new();
            body.extend_from_slice(&(ApiKey::Produce as i16).to_be_bytes());
            body.extend_from_slice(&version.to_be_bytes());
            body.extend_from_slice(&tail);
            let size = body.len();
            let mut wire = body[2..].to_vec();
            wire.extend(std::iter::repeat_n(0xEE, extra));
            let mut connection = std::io::Cursor::new(wire);
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
            let _ = runtime.block_on(read_through(BytesMut::from(&body[..2]), size, &mut connection));
            proptest::prop_assert!(connection.position() as usize <= size - 2);
        }
    }
}
