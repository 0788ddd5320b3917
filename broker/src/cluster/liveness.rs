//! The controller leader's probe of a node whose heartbeat is overdue: a TCP connection to the node's address.
//!
//! A node killed or crashed stops heartbeating, but its session (`node_session_timeout_ms`, 6 s by default) must
//! run out before it is fenced, and until then its partitions have a leader that answers nobody. Its port,
//! though, says at once that the process is gone: the kernel refuses a connection where nothing listens. So once
//! a heartbeat is half an interval late, the leader connects; refused, the node is fenced then (the same
//! `Fence` command as at the session's end). Anything else decides nothing and the session runs on: a hung or
//! overloaded process still accepts (its kernel answers for it), an unreachable host does not answer within
//! the probe's time, and an address that does not resolve is not a refusal.
//!
//! The controller leader also probes a node as soon as one of its own replication streams from that node
//! breaks (`Controller::suspect`): a killed process's kernel closes its connections at once, so a partition
//! leader's death is found in milliseconds rather than 1.5 heartbeat intervals after its last heartbeat.
//!
//! Invariant: a probe only ever fences earlier a node that would be fenced anyway. It is never the reason a
//! node is marked alive, and a node is probed only when its heartbeat is overdue or a stream from it broke.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// The longest a probe waits for a connection. A refusal on a reachable host comes back in a round trip; past
/// this, the probe has learned nothing, and the keeper's tick must not wait on it.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_millis(250);

/// What a connection to a node's address said about its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Refused: nothing listens at the address.
    Refused,
    /// Accepted, timed out, unresolvable or any other error: no conclusion.
    Inconclusive,
}

/// How late a heartbeat is before its node is probed: half an interval past the one it was due at.
pub fn probe_after(heartbeat_interval: Duration) -> Duration {
    heartbeat_interval + heartbeat_interval / 2
}

/// Connects to `address` (`HOST:PORT`) and closes at once.
pub async fn probe(address: &str, heartbeat_interval: Duration) -> Probe {
    let timeout = (heartbeat_interval / 2).min(PROBE_TIMEOUT_MAX);
    match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => Probe::Refused,
        Ok(Err(error)) => {
            tracing::debug!(address, %error, "liveness probe: no conclusion");
            Probe::Inconclusive
        }
        Ok(Ok(_)) | Err(_) => Probe::Inconclusive,
    }
}

/// Probes every `(node_id, address)` at once; returns the nodes whose address refused.
pub async fn refused(nodes: Vec<(u64, String)>, heartbeat_interval: Duration) -> Vec<(u64, String)> {
    let probes = nodes.into_iter().map(|(node_id, address)| async move {
        let probe = probe(&address, heartbeat_interval).await;
        (node_id, address, probe)
    });
    futures_util::future::join_all(probes)
        .await
        .into_iter()
        .filter(|(_, _, probe)| *probe == Probe::Refused)
        .map(|(node_id, address, _)| (node_id, address))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);

    /// An address nothing listens at: a port bound, then released.
    fn closed_address() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        address
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_a_listening_one_is_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("address").to_string();
        assert_eq!(probe(&open, INTERVAL).await, Probe::Inconclusive, "a listener that never accepts still answers");
        assert_eq!(probe(&closed_address(), INTERVAL).await, Probe::Refused);
    }

    #[tokio::test]
    async fn an_address_that_does_not_resolve_or_parse_is_no_refusal() {
        for address in ["no-such-host.invalid:9092", "not an address", "127.0.0.1"] {
            assert_eq!(probe(address, INTERVAL).await, Probe::Inconclusive, "{address}");
        }
    }

    #[tokio::test]
    async fn only_the_refusing_nodes_are_returned() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("address").to_string();
        let closed = closed_address();
        let nodes = vec![(1, open), (2, closed.clone()), (3, "no-such-host.invalid:1".to_owned())];
        assert_eq!(refused(nodes, INTERVAL).await, vec![(2, closed)]);
    }

    #[test]
    fn a_node_is_probed_half_an_interval_after_its_heartbeat_was_due() {
        assert_eq!(probe_after(Duration::from_millis(100)), Duration::from_millis(150));
        assert_eq!(probe_after(Duration::from_secs(1)), Duration::from_millis(1_500));
    }
}
