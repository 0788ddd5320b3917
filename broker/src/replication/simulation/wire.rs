//! The nodes' internal calls over turmoil's TCP: the same protobuf messages as the tonic service
//! (`rill.internal.v1`: epoch end, the `Replicate` stream) and the public produce, offset commit and offset
//! fetch (answered by the real `ConsumerGroups` service) and DeleteRecords (the real `TopicAdmin` service), each in one frame
//! `kind (u8) | length (u32) | message`. A frame is written with one write, so turmoil's message loss drops
//! whole frames; a peer that goes silent is given up after [`SILENCE_LIMIT`], as HTTP/2 keepalive would.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use rill_protocol::grpc_frames::GRPC_HEADER_BYTES;
use rill_protocol::internal::{EpochEndReply, EpochEndRequest, ReplicaData, ReplicaFetch};
use rill_protocol::v1;
use rill_protocol::v1::consumer_groups_server::ConsumerGroups;
use rill_protocol::v1::topic_admin_server::TopicAdmin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::error::Result;
use crate::node::Node;
use crate::replication::links::{unavailable, BoxFuture, EpochEndFailure, LeaderLink, LeaderLinks, ReplicaAnswers};

pub const PORT: u16 = 9092;
const MAX_FRAME_BYTES: usize = 64 << 20;
/// Longer than a leader holds an idle fetch (500 ms), so only a lost frame or a dead peer reaches it.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(3);

const EPOCH_END: u8 = 1;
const EPOCH_END_REPLY: u8 = 2;
const FETCH: u8 = 3;
const DATA: u8 = 4;
const PRODUCE: u8 = 5;
const PRODUCED: u8 = 6;
/// The call failed; the payload is the error's text.
const REFUSED: u8 = 7;
const COMMIT: u8 = 8;
const COMMITTED: u8 = 9;
const FETCH_OFFSETS: u8 = 10;
const OFFSETS: u8 = 11;
const DELETE_RECORDS: u8 = 12;
const DELETED: u8 = 13;

async fn write_frame(stream: &mut (impl AsyncWrite + Unpin), kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.extend_from_slice(&[kind]);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await?;
    stream.flush().await
}

async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<(u8, Bytes)> {
    let kind = stream.read_u8().await?;
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::other(format!("frame of {len} bytes is over the {MAX_FRAME_BYTES} limit")));
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok((kind, Bytes::from(payload)))
}

async fn read_frame_within(stream: &mut (impl AsyncRead + Unpin)) -> io::Result<(u8, Bytes)> {
    tokio::time::timeout(SILENCE_LIMIT, read_frame(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("peer silent for {SILENCE_LIMIT:?}")))?
}

fn decode<M: Message + Default>(payload: Bytes) -> io::Result<M> {
    M::decode(payload).map_err(io::Error::other)
}

async fn connect(host: &str) -> io::Result<turmoil::net::TcpStream> {
    tokio::time::timeout(SILENCE_LIMIT, turmoil::net::TcpStream::connect((host, PORT)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {host}")))?
}

/// Followers reach leaders at the address the metadata gives them: the host's name.
pub struct SimLeaders;

struct SimLeader {
    stream: Option<turmoil::net::TcpStream>,
}

impl LeaderLinks for SimLeaders {
    fn connect<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Box<dyn LeaderLink>>> {
        Box::pin(async move {
            let stream = connect(address).await.map_err(|e| unavailable("leader address", e))?;
            Ok(Box::new(SimLeader { stream: Some(stream) }) as Box<dyn LeaderLink>)
        })
    }
}

impl LeaderLink for SimLeader {
    fn epoch_end(&mut self, request: EpochEndRequest) -> BoxFuture<'_, Result<EpochEndReply, EpochEndFailure>> {
        let link = |e: &dyn std::fmt::Display| EpochEndFailure::Link(unavailable("epoch end", e));
        Box::pin(async move {
            let stream = self.stream.as_mut().ok_or_else(|| link(&"stream already used"))?;
            let exchange = async {
                write_frame(stream, EPOCH_END, &request.encode_to_vec()).await?;
                read_frame_within(stream).await
            };
            match exchange.await.map_err(|e| link(&e))? {
                (EPOCH_END_REPLY, payload) => decode(payload).map_err(|e| link(&e)),
                (REFUSED, payload) => Err(EpochEndFailure::Refused(String::from_utf8_lossy(&payload).into_owned())),
                (_, payload) => Err(link(&String::from_utf8_lossy(&payload))),
            }
        })
    }

    fn replicate(&mut self, mut fetches: mpsc::Receiver<ReplicaFetch>) -> BoxFuture<'_, Result<ReplicaAnswers>> {
        Box::pin(async move {
            let stream = self.stream.take().ok_or_else(|| unavailable("replicate", "stream already used"))?;
            let (mut read, mut write) = stream.into_split();
            // Ends when the fetcher drops its sender (its stream failed) or the connection breaks.
            tokio::spawn(async move {
                while let Some(fetch) = fetches.recv().await {
                    if write_frame(&mut write, FETCH, &fetch.encode_to_vec()).await.is_err() {
                        return;
                    }
                }
            });
            let (answers, received) = mpsc::channel(2);
            tokio::spawn(async move {
                loop {
                    let answer = match read_frame_within(&mut read).await {
                        Ok((DATA, payload)) => decode::<ReplicaData>(payload),
                        Ok((_, payload)) => Err(io::Error::other(String::from_utf8_lossy(&payload).into_owned())),
                        Err(err) => Err(err),
                    };
                    let is_end = answer.is_err();
                    if answers.send(answer.map_err(|e| unavailable("replication answer", e))).await.is_err() || is_end {
                        return;
                    }
                }
            });
            Ok(Box::pin(ReceiverStream::new(received)) as ReplicaAnswers)
        })
    }
}

/// Serves one connection: epoch ends, then possibly one `Replicate` stream; or produces, each answered one
/// reported to `on_produced` with its base offset and the leader epoch stamped in its batch.
pub async fn serve_connection(
    stream: turmoil::net::TcpStream,
    node: Arc<Node>,
    on_produced: impl Fn(i64, i32) + Send + 'static,
) -> io::Result<()> {
    let (mut read, mut write) = stream.into_split();
    let replication = node.replication.clone().ok_or_else(|| io::Error::other("node without replication"))?;
    loop {
        let (kind, payload) = read_frame(&mut read).await?;
        match kind {
            EPOCH_END => match replication.epoch_end(decode(payload)?) {
                Ok(reply) => write_frame(&mut write, EPOCH_END_REPLY, &reply.encode_to_vec()).await?,
                Err(status) => write_frame(&mut write, REFUSED, status.message().as_bytes()).await?,
            },
            FETCH => {
                let (fetches, inbound) = mpsc::channel(2);
                let _ = fetches.send(Ok(decode::<ReplicaFetch>(payload)?)).await;
                tokio::spawn(async move {
                    while let Ok((FETCH, payload)) = read_frame(&mut read).await {
                        let Ok(fetch) = decode::<ReplicaFetch>(payload) else { return };
                        if fetches.send(Ok(fetch)).await.is_err() {
                            return;
                        }
                    }
                });
                let mut answers = replication.serve_follower(ReceiverStream::new(inbound));
                while let Some(Ok(answer)) = answers.next().await {
                    // The node's encoding (`frames.rs`), its gRPC header dropped: the simulated followers decode
                    // what a node's leader sends.
                    let chunks = crate::replication::frames::grpc_message_chunks(answer, MAX_FRAME_BYTES)
                        .map_err(|status| io::Error::other(status.message().to_owned()))?;
                    let message: Vec<u8> =
                        chunks.iter().flat_map(|chunk| chunk.iter().copied()).skip(GRPC_HEADER_BYTES).collect();
                    write_frame(&mut write, DATA, &message).await?;
                }
                return Ok(());
            }
            PRODUCE => {
                let request: v1::ProduceRequest = decode(payload)?;
                let topic = request.topic.clone();
                match crate::service::produce(&node, request).await {
                    Ok(response) => {
                        if let Some(epoch) = stamped_epoch(&node, &topic, response.partition, response.base_offset) {
                            on_produced(response.base_offset, epoch);
                        }
                        write_frame(&mut write, PRODUCED, &response.encode_to_vec()).await?;
                    }
                    Err(err) => write_frame(&mut write, REFUSED, err.to_string().as_bytes()).await?,
                }
            }
            COMMIT => {
                let service = crate::service::RillService::new(Arc::clone(&node));
                match ConsumerGroups::commit_offsets(&service, tonic::Request::new(decode(payload)?)).await {
                    Ok(response) => write_frame(&mut write, COMMITTED, &response.into_inner().encode_to_vec()).await?,
                    Err(status) => write_frame(&mut write, REFUSED, status.message().as_bytes()).await?,
                }
            }
            FETCH_OFFSETS => {
                let service = crate::service::RillService::new(Arc::clone(&node));
                match ConsumerGroups::fetch_offsets(&service, tonic::Request::new(decode(payload)?)).await {
                    Ok(response) => write_frame(&mut write, OFFSETS, &response.into_inner().encode_to_vec()).await?,
                    Err(status) => write_frame(&mut write, REFUSED, status.message().as_bytes()).await?,
                }
            }
            DELETE_RECORDS => {
                let service = crate::service::RillService::new(Arc::clone(&node));
                match TopicAdmin::delete_records(&service, tonic::Request::new(decode(payload)?)).await {
                    Ok(response) => write_frame(&mut write, DELETED, &response.into_inner().encode_to_vec()).await?,
                    Err(status) => write_frame(&mut write, REFUSED, status.message().as_bytes()).await?,
                }
            }
            other => return Err(io::Error::other(format!("unknown frame kind {other}"))),
        }
    }
}

/// The leader epoch in the batch at `offset` of this node's log, if it is still there.
fn stamped_epoch(node: &Node, topic: &str, partition: u32, offset: i64) -> Option<i32> {
    let read = node.registry.partition(topic, partition).ok()?.log().read_to_end(offset, 1).ok()?;
    let header = rill_protocol::BatchHeader::parse(&read.batches).ok()?;
    (header.base_offset == offset).then_some(header.partition_leader_epoch)
}

/// One call from the driver host: the answer of kind `answer`, or why there is none.
async fn call<M: Message + Default>(host: &str, kind: u8, request: &impl Message, answer: u8) -> Result<M, String> {
    let exchange = async {
        let mut stream = connect(host).await?;
        write_frame(&mut stream, kind, &request.encode_to_vec()).await?;
        read_frame_within(&mut stream).await
    };
    match exchange.await {
        Ok((kind, payload)) if kind == answer => decode(payload).map_err(|e| e.to_string()),
        Ok((_, payload)) => Err(String::from_utf8_lossy(&payload).into_owned()),
        Err(err) => Err(err.to_string()),
    }
}

/// One offset commit from the driver host, through the node's real `ConsumerGroups::commit_offsets`.
pub async fn commit(host: &str, request: &v1::CommitOffsetsRequest) -> Result<v1::CommitOffsetsResponse, String> {
    call(host, COMMIT, request, COMMITTED).await
}

/// One offset fetch from the driver host, through the node's real `ConsumerGroups::fetch_offsets`.
pub async fn fetch_offsets(host: &str, request: &v1::FetchOffsetsRequest) -> Result<v1::FetchOffsetsResponse, String> {
    call(host, FETCH_OFFSETS, request, OFFSETS).await
}

/// One DeleteRecords from the driver host, through the node's real `TopicAdmin::delete_records`. The request's
/// `timeout_ms` must stay under [`SILENCE_LIMIT`], or a slow answer reads as a dead peer.
pub async fn delete_records(
    host: &str,
    request: &v1::DeleteRecordsRequest,
) -> Result<v1::DeleteRecordsResponse, String> {
    call(host, DELETE_RECORDS, request, DELETED).await
}

/// One produce from the producer host: the answer, or why there is none.
pub async fn produce(host: &str, request: &v1::ProduceRequest) -> std::result::Result<v1::ProduceResponse, String> {
    let exchange = async {
        let mut stream = connect(host).await?;
        write_frame(&mut stream, PRODUCE, &request.encode_to_vec()).await?;
        read_frame_within(&mut stream).await
    };
    match exchange.await {
        Ok((PRODUCED, payload)) => decode(payload).map_err(|e| e.to_string()),
        Ok((_, payload)) => Err(String::from_utf8_lossy(&payload).into_owned()),
        Err(err) => Err(err.to_string()),
    }
}
