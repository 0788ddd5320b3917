//! One port, two protocols: each accepted connection is told apart by its first byte. gRPC (HTTP/2) opens with
//! the preface `PRI * HTTP/2.0`, so its first byte is `P` (0x50); a Kafka request opens with its 4-byte
//! big-endian size, whose first byte is 0x50 only for a request of 1.25 GiB or more, far above any sensible
//! `max_request_bytes` (8 MiB by default; such a request would go to tonic and fail its preface check). So one
//! peeked byte decides, and nothing is consumed: tonic reads the preface itself.
//!
//! With TLS on, the first byte must open a TLS handshake record (0x16); after the handshake, ALPN decides: gRPC
//! clients offer `h2` (required by gRPC over TLS), Kafka clients offer nothing. A plaintext client on a TLS
//! listener, or a TLS client on a plaintext one, is closed at its first byte, so it fails at once, not after a
//! timeout, and the node logs which mistake it was.

use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

use super::KafkaContext;
use crate::connection::LimitedConnection;
use crate::metrics::ConnectionMetrics;
use crate::tls::{ServedStream, TlsAcceptorHandle};

/// The first byte of the HTTP/2 connection preface.
const HTTP2_PREFACE_FIRST_BYTE: u8 = b'P';

/// The first byte of a TLS record carrying a handshake message (a ClientHello opens every TLS connection). As a
/// Kafka size prefix it would announce a request of 369 MiB or more, above any sensible `max_request_bytes`.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Connections told apart but not yet taken by tonic. tonic takes them as fast as they come, so this only
/// absorbs a burst; each also holds one of `max_connections` slots, which bounds them anyway.
const GRPC_HANDOFF_QUEUE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Kafka,
}

/// Which protocol a connection speaks, by its first byte.
pub fn protocol_of(first_byte: u8) -> Protocol {
    if first_byte == HTTP2_PREFACE_FIRST_BYTE {
        Protocol::Grpc
    } else {
        Protocol::Kafka
    }
}

/// Takes every accepted connection, serves the Kafka ones itself and returns the stream of gRPC ones for
/// tonic. Each connection is sniffed on a task of its own, so one that sends nothing (until the idle timeout
/// closes it) delays no other. Accepting stops when the broker shuts down, which closes the listening socket.
pub fn split(
    accepted: impl Stream<Item = io::Result<LimitedConnection>> + Send + 'static,
    kafka: Arc<KafkaContext>,
    tls: Option<Arc<TlsAcceptorHandle>>,
    mut shutdown: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<ServedStream>> {
    let (grpc_tx, grpc_rx) = mpsc::channel(GRPC_HANDOFF_QUEUE);
    tokio::spawn(async move {
        tokio::pin!(accepted);
        loop {
            let next = tokio::select! {
                next = accepted.next() => next,
                _ = shutdown.changed() => None,
            };
            let Some(connection) = next else { return };
            let connection = match connection {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::debug!(error = %err, "accepting a connection failed");
                    continue;
                }
            };
            let (grpc_tx, kafka, tls) = (grpc_tx.clone(), Arc::clone(&kafka), tls.clone());
            tokio::spawn(async move {
                let connections = kafka.node.metrics.as_ref().map(|metrics| &*metrics.connections);
                match open(connection, tls.as_deref(), connections).await {
                    // Fails only once tonic has stopped: the connection is then dropped, i.e. closed.
                    Some((stream, Protocol::Grpc)) => drop(grpc_tx.send(Ok(stream)).await),
                    Some((stream, Protocol::Kafka)) => super::connection::serve(stream, kafka).await,
                    None => {}
                }
            });
        }
    });
    ReceiverStream::new(grpc_rx)
}

/// Reads what a new connection opens with and returns it ready to serve, with the protocol it speaks: by its
/// first byte (left unread) on a plaintext listener, by ALPN after the handshake on a TLS one. `None`: the
/// connection closed, stayed silent, failed its handshake or spoke the other kind of transport; it is dropped
/// (closed) and the reason logged at debug (these are the peer's faults, not the node's); on a TLS listener a
/// failed handshake, and plaintext where a handshake should be, count in `rill_tls_handshake_failures_total`.
async fn open(
    connection: LimitedConnection,
    tls: Option<&TlsAcceptorHandle>,
    metrics: Option<&ConnectionMetrics>,
) -> Option<(ServedStream, Protocol)> {
    let count_failure = || {
        if let Some(metrics) = metrics {
            metrics.tls_handshake_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let peer = connection.peer_addr();
    let first = match connection.first_byte().await {
        Ok(Some(byte)) => byte,
        Ok(None) => return None,
        Err(err) => {
            tracing::debug!(?peer, error = %err, "connection closed before its first byte");
            return None;
        }
    };
    match (tls, first) {
        (Some(tls), TLS_HANDSHAKE_RECORD) => match tls.accept(connection).await {
            Ok(stream) => {
                let is_h2 = stream.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2);
                Some((ServedStream::tls(stream), if is_h2 { Protocol::Grpc } else { Protocol::Kafka }))
            }
            Err(err) => {
                count_failure();
                tracing::debug!(?peer, error = %err, "TLS handshake failed");
                None
            }
        },
        (Some(_), _) => {
            count_failure();
            tracing::debug!(?peer, first_byte = first, "plaintext connection on a TLS listener: closed");
            None
        }
        (None, TLS_HANDSHAKE_RECORD) => {
            tracing::debug!(?peer, "TLS handshake on a plaintext listener: closed");
            None
        }
        (None, byte) => Some((ServedStream::Plain(connection), protocol_of(byte))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http2_preface_is_grpc_and_a_size_prefix_is_kafka() {
        assert_eq!(protocol_of(b"PRI * HTTP/2.0"[0]), Protocol::Grpc);
        // Any request under 16 MiB starts with a zero byte.
        assert_eq!(protocol_of(0), Protocol::Kafka);
        assert_eq!(protocol_of(0x16), Protocol::Kafka, "garbage is handed to Kafka framing, which refuses it");
    }
}
