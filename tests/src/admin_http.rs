//! The broker's admin listener (`/health`, `/ready`, `/metrics`) over a real socket, as a scraper reads it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut response = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response));
    read.await.expect("answered within 10 s").expect("read the response");
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the sample written exactly as `series` (name and labels), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
