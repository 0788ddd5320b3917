//! One port, two protocols: each accepted connection is told apart by its first byte. gRPC (HTTP/2) opens with
//! the preface `PRI * HTTP/2.0`, so its first byte is `P` (0x50); a Kafka request opens with its 4-byte
//! big-endian size, whose first byte is 0x50 only for a request of 1.25 GiB or more, far above any sensible
//! `max_request_bytes` (8 MiB by default; such a request would go to tonic and fail its preface check). So one
//! peeked byte decides, and nothing is consumed: tonic reads the preface itself.

use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

use super::KafkaContext;
use crate::connection::LimitedConnection;

/// The first byte of the HTTP/2 connection preface.
const HTTP2_PREFACE_FIRST_BYTE: u8 = b'P';

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
    mut shutdown: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<LimitedConnection>> {
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
            let (grpc_tx, kafka) = (grpc_tx.clone(), Arc::clone(&kafka));
            tokio::spawn(async move {
                match connection.first_byte().await {
                    Ok(Some(byte)) => match protocol_of(byte) {
                        Protocol::Grpc => {
                            // Fails only once tonic has stopped: the connection is then dropped, i.e. closed.
                            let _ = grpc_tx.send(Ok(connection)).await;
                        }
                        Protocol::Kafka => super::connection::serve(connection, kafka).await,
                    },
                    Ok(None) => {}
                    Err(err) => tracing::debug!(error = %err, "connection closed before its first byte"),
                }
            });
        }
    });
    ReceiverStream::new(grpc_rx)
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
