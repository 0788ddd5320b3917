//! Connection limits: `max_connections` refuses the connection past the limit and frees the slot when one
//! closes; `idle_connection_timeout_ms` closes a peer that stalls mid-preface; garbage bytes and clients that
//! vanish mid-request leave the broker serving.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use rill_protocol::v1;
use rill_tests::{batch_of, produce_request, TestBroker};
use tonic::transport::Channel;

/// True once the broker has closed `stream` (a read returns end of file or a reset), within `deadline`. Async:
/// the broker runs on this test's runtime.
async fn closed_by_broker(stream: &mut TcpStream, deadline: Duration) -> bool {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    while let Some(left) = deadline.checked_sub(started.elapsed()) {
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {} // the server's SETTINGS frame, or an error reply: keep reading
            Err(_) => return false,
        }
    }
    false
}

async fn list_topics_on_a_new_connection(url: &str) -> Result<(), String> {
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut admin = v1::topic_admin_client::TopicAdminClient::new(channel);
    admin.list_topics(v1::ListTopicsRequest {}).await.map(drop).map_err(|e| e.to_string())
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_and_slots_come_back() {
    // The test broker's own client connection takes one slot.
    let broker = TestBroker::start_with(|c| c.max_connections = 3).await;
    let url = broker.handle.as_ref().expect("running").url();
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut refused = TcpStream::connect(addr).await.expect("the kernel accepts; the broker then closes");
    assert!(closed_by_broker(&mut refused, Duration::from_secs(5)).await, "a connection past the limit is closed");
    assert!(list_topics_on_a_new_connection(&url).await.is_err(), "no slot for a new client");
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match list_topics_on_a_new_connection(&url).await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("the freed slot never came back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test]
async fn a_peer_that_stalls_mid_preface_is_closed_after_the_idle_timeout() {
    let mut broker = TestBroker::start_with(|c| c.idle_connection_timeout_ms = 300).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled.write_all(b"PRI * HTTP/2.0\r\n").await.expect("half a preface");
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    assert!(closed_by_broker(&mut stalled, Duration::from_secs(5)).await, "the stalled peer is cut off");
    assert!(closed_by_broker(&mut silent, Duration::from_secs(5)).await, "the silent peer is cut off");
    assert!(started.elapsed() >= Duration::from_millis(250), "not before the timeout: {:?}", started.elapsed());
    // The test's own client idled as long, but answers keepalive pings: it is still connected and served.
    tokio::time::sleep(Duration::from_millis(400)).await;
    broker.assert_serving().await;
}

#[tokio::test]
async fn garbage_bytes_and_vanishing_clients_leave_the_broker_serving() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let url = broker.handle.as_ref().expect("running").url();
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0xff; 4096],
        // A valid preface, then a SETTINGS frame whose length is not a multiple of 6: FRAME_SIZE_ERROR.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x07\x04\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(bytes).await;
        assert!(closed_by_broker(&mut stream, Duration::from_secs(5)).await, "garbage {:?}…", &bytes[..4]);
    }
    // Clients that give up in the middle of sending a large batch and drop their connection.
    let values: Vec<String> = (0..20_000).map(|i| format!("value-{i:0>200}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let big = batch_of(&refs, 1);
    assert!(big.len() > 4 << 20);
    for _ in 0..5 {
        let channel = Channel::from_shared(url.clone()).expect("url").connect().await.expect("connect");
        let mut records = v1::records_client::RecordsClient::new(channel).max_encoding_message_size(64 << 20);
        let request = produce_request("t", Some(0), big.clone(), v1::Acks::Leader);
        let _ = tokio::time::timeout(Duration::from_millis(2), records.produce(request)).await;
    }
    broker.assert_serving().await;
    broker.produce_values("t", 0, &["after"]).await;
    let stored = broker.fetch_all_values("t", 0, 0).await;
    assert_eq!(stored.last().map(|(_, v)| v.as_str()), Some("after"));
    // Whatever the vanished clients got through is whole batches of what they sent, nothing torn.
    assert!(stored.iter().all(|(_, v)| v == "after" || v.starts_with("value-")));
}

/// A connection from `source` (any 127.x address: Linux routes the whole block to loopback) to `addr`.
async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("source address")).expect("bind the source address");
    socket.connect(addr).await.expect("the kernel accepts; the broker decides")
}

#[tokio::test]
async fn connections_past_max_connections_per_ip_are_closed_for_that_address_only() {
    // The test broker's own client connection (from 127.0.0.1) takes one of that address's slots; 127.0.0.3 has
    // an override.
    let broker = TestBroker::start_with(|c| {
        c.max_connections_per_ip = Some(3);
        c.max_connections_per_ip_overrides.insert("127.0.0.3".parse().expect("ip"), 1);
    })
    .await;
    let addr = broker.handle.as_ref().expect("running").addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from("127.0.0.1", addr).await);
    }
    let mut refused = connect_from("127.0.0.1", addr).await;
    assert!(closed_by_broker(&mut refused, Duration::from_secs(5)).await, "a 4th from 127.0.0.1 is closed");
    // Another address has its own slots.
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut other = connect_from("127.0.0.2", addr).await;
        assert!(!closed_by_broker(&mut other, Duration::from_millis(300)).await, "127.0.0.2 has slots of its own");
        others.push(other);
    }
    let mut overridden = connect_from("127.0.0.3", addr).await;
    assert!(!closed_by_broker(&mut overridden, Duration::from_millis(300)).await, "the override's one slot");
    let mut past_override = connect_from("127.0.0.3", addr).await;
    assert!(closed_by_broker(&mut past_override, Duration::from_secs(5)).await, "past the override's limit");
    // A closed connection gives its address's slot back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from("127.0.0.1", addr).await;
        if !closed_by_broker(&mut again, Duration::from_millis(300)).await {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot of 127.0.0.1 never came back");
    }
}

#[tokio::test]
async fn a_per_ip_limit_of_zero_is_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = rill_broker::BrokerConfig::for_tests(dir.path());
    config.max_connections_per_ip = Some(0);
    let refused = config.validate().expect_err("0 is refused");
    assert!(refused.to_string().contains("max_connections_per_ip"), "{refused}");
    config.max_connections_per_ip = None;
    config.max_connections_per_ip_overrides.insert("10.0.0.5".parse().expect("ip"), 0);
    let refused = config.validate().expect_err("0 is refused");
    assert!(refused.to_string().contains("10.0.0.5 has a limit of 0"), "{refused}");
}
