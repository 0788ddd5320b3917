//! A minimal Kafka client for the end-to-end tests: requests encoded and responses decoded by the
//! `kafka-protocol` crate (the broker's codec, but driven from the client side), over a plain TCP socket.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every call gives up after this: a test never hangs on a broker that does not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaClient {
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: String,
}

impl KafkaClient {
    pub async fn connect(addr: SocketAddr) -> KafkaClient {
        let stream = TcpStream::connect(addr).await.expect("connect to the Kafka port");
        KafkaClient { stream, next_correlation_id: 1, client_id: "rill-tests".into() }
    }

    /// The client id the requests' headers carry from now on ("rill-tests" until set).
    pub fn with_client_id(mut self, client_id: &str) -> KafkaClient {
        self.client_id = client_id.into();
        self
    }

    /// Connects and signs in as `user` with SASL PLAIN; the broker must take PLAIN without TLS.
    pub async fn connect_as(addr: SocketAddr, user: &str, password: &str) -> KafkaClient {
        let mut client = KafkaClient::connect(addr).await;
        let mechanism = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        let handshake: SaslHandshakeResponse = client.call(ApiKey::SaslHandshake, 1, &mechanism).await;
        assert_eq!(handshake.error_code, 0, "PLAIN offered: {:?}", handshake.mechanisms);
        let credentials =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(format!("\0{user}\0{password}")));
        let authenticated: SaslAuthenticateResponse = client.call(ApiKey::SaslAuthenticate, 2, &credentials).await;
        assert_eq!(authenticated.error_code, 0, "{:?}", authenticated.error_message);
        client
    }

    /// Sends `request` as `api` v`version` and returns the decoded response.
    pub async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, request: &Req) -> Resp {
        self.send(api, version, request).await;
        let mut body = self.receive().await.expect("a response");
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).expect("response header");
        assert_eq!(header.correlation_id, self.next_correlation_id - 1, "responses come in order");
        let response = Resp::decode(&mut body, version).expect("response body decodes");
        assert!(!body.has_remaining(), "{} bytes left after the {api:?} v{version} response", body.remaining());
        response
    }

    /// ListOffsets v`version` for one partition (see [`list_offsets_request`]): that partition's answer.
    pub async fn list_offset(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> ListOffsetsPartitionResponse {
        let request = list_offsets_request(topic, partition, timestamp);
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, version, &request).await;
        let mut partitions = response.topics.into_iter().flat_map(|t| t.partitions);
        partitions.next().expect("an answer for the partition asked")
    }

    /// Sends one request frame, encoded with the header version `api` and `version` call for.
    pub async fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, request: &Req) {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.next_correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        self.next_correlation_id += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, api.request_header_version(version)).expect("header encodes");
        request.encode(&mut frame, version).expect("request encodes");
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.send_raw(&frame).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// The next response frame without its size prefix; `None` when the broker closed the connection.
    pub async fn receive(&mut self) -> Option<Bytes> {
        let read = async {
            let size = self.stream.read_i32().await.ok()?;
            let mut body = vec![0u8; usize::try_from(size).ok()?];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(CALL_TIMEOUT, read).await.expect("the broker answers or closes in time")
    }

    /// True once the broker has closed the connection (end of file or reset), within the call timeout.
    pub async fn is_closed_by_broker(&mut self) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// A ListOffsets request for one partition of `topic`, as a consumer sends it (replica id -1). `timestamp` is ms
/// since the epoch or a spec: -1 latest, -2 earliest, -3 the largest timestamp, -4 earliest local, -5 latest
/// tiered. A test that needs more (a `current_leader_epoch`) sets it on the partition before sending.
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    let partition = ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp);
    let topic = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partitions(vec![partition]);
    ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![topic])
}
