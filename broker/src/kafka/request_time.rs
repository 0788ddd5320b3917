//! Kafka's request quota (KIP-124) on the Kafka listener: each request's [`HandlerClock`] (`quotas/request_time.rs`)
//! for its client, from the header's client id and the connection's principal.
//!
//! A request's time is charged before its answer is encoded, so that the answer's `throttle_time_ms` carries the
//! wait (KIP-219: the client then waits by itself; the connection is not read meanwhile either way), and what
//! the encoding took is charged after it, towards the client's next wait. Exempt, as in Kafka: SASL
//! authentication, and WriteTxnMarkers (a broker's request, not a client's).

use kafka_protocol::messages::ApiKey;

use crate::auth::Principal;
pub use crate::quotas::request_time::HandlerClock;
use crate::quotas::throttle::ClientThrottle;

/// The clock of a request with API key `api_key` (as framed) and header bytes `request`, from a client
/// authenticated as `principal`; inert unless `quotas` hold a client to a request percentage.
pub fn clock_of(quotas: &ClientThrottle, api_key: i16, request: &[u8], principal: &Principal) -> HandlerClock {
    let is_exempt = [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate, ApiKey::WriteTxnMarkers]
        .iter()
        .any(|exempt| *exempt as i16 == api_key);
    let client = (quotas.store().is_request_time_set() && !is_exempt)
        .then(|| (principal.clone(), header_client_id(request).unwrap_or_default().to_owned()));
    HandlerClock::of(client)
}

/// The client id a request header names, read where every header version has it: after the API key, version and
/// correlation id, a length-prefixed string (never a compact one, for every client to read it); `None` when
/// null or cut short.
fn header_client_id(request: &[u8]) -> Option<&str> {
    let length = i16::from_be_bytes(request.get(8..10)?.try_into().ok()?);
    let length = usize::try_from(length).ok()?;
    std::str::from_utf8(request.get(10..10 + length)?).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::quotas::store::QuotaStore;
    use crate::quotas::{EntityName, QuotaChange, QuotaEntity, QuotaKey};

    fn quotas_holding(client_id: &str, percentage: u64) -> (tempfile::TempDir, ClientThrottle) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(QuotaStore::open(dir.path()).expect("store"));
        let entity = QuotaEntity { user: None, client_id: Some(EntityName::Named(client_id.into())), ip: None };
        let change = QuotaChange { entity, key: QuotaKey::RequestPercentage, value: Some(percentage) };
        store.alter(vec![change], false).expect("set");
        (dir, ClientThrottle::new(store, Duration::from_secs(1)))
    }

    fn header(api_key: ApiKey, client_id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(api_key as i16).to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 0, 0, 0, 7]);
        bytes.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        bytes.extend_from_slice(client_id.as_bytes());
        bytes
    }

    /// A future busy for `each` in each of `polls` polls, pending between them.
    async fn busy_polls(polls: u32, each: Duration) {
        for _ in 0..polls {
            std::thread::sleep(each);
            tokio::task::yield_now().await;
        }
    }

    async fn timed(clock: &HandlerClock, polls: u32, each: Duration) {
        let mut answering = std::pin::pin!(busy_polls(polls, each));
        clock.timing(answering.as_mut()).await;
    }

    #[tokio::test]
    async fn only_the_polls_are_charged_and_the_client_past_its_share_waits_at_most_a_window() {
        // 1% of a thread is 10 ms a second: 100 ms over the samples' span before the first wait.
        let (_dir, quotas) = quotas_holding("busy", 1);
        let metadata = header(ApiKey::Metadata, "busy");
        let clock = clock_of(&quotas, ApiKey::Metadata as i16, &metadata, &Principal::Anonymous);
        let mut answering = std::pin::pin!(async {
            busy_polls(3, Duration::from_millis(20)).await;
            // Waiting holds no thread: not charged, or 200 ms would be past the allowance.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        clock.timing(answering.as_mut()).await;
        assert_eq!(clock.charge(&quotas), Duration::ZERO, "60 ms: within the first span's allowance");
        assert_eq!(clock.finish(&quotas), Duration::ZERO, "charged once");

        let clock = clock_of(&quotas, ApiKey::Metadata as i16, &metadata, &Principal::Anonymous);
        timed(&clock, 1, Duration::from_millis(80)).await;
        let wait = clock.charge(&quotas);
        assert!(!wait.is_zero() && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(clock.throttle_ms(&quotas, 0), i32::try_from(wait.as_millis()).expect("ms"), "the longest");
        assert_eq!(clock.throttle_ms(&quotas, 5_000), 5_000, "a byte rate's longer wait");

        // Another client, and an exempt API, are not timed.
        for (api, client) in [(ApiKey::Metadata, "other"), (ApiKey::SaslAuthenticate, "busy")] {
            let clock = clock_of(&quotas, api as i16, &header(api, client), &Principal::Anonymous);
            timed(&clock, 1, Duration::from_millis(20)).await;
            assert_eq!(clock.finish(&quotas), Duration::ZERO, "{api:?} {client}");
        }
        let [.., (key, throttles, _)] = quotas.throttle_counts();
        assert_eq!((key, throttles), (QuotaKey::RequestPercentage, 0), "counted once the answer is out");
        assert_eq!(clock.finish(&quotas), wait);
        let [.., (_, throttles, held)] = quotas.throttle_counts();
        assert_eq!((throttles, held), (1, wait));
    }

    #[tokio::test]
    async fn a_charge_counts_the_poll_under_way() {
        let (_dir, quotas) = quotas_holding("busy", 1);
        let clock = clock_of(&quotas, 3, &header(ApiKey::Metadata, "busy"), &Principal::Anonymous);
        let mut answering = std::pin::pin!(async {
            std::thread::sleep(Duration::from_millis(120));
            clock.charge(&quotas)
        });
        let wait = clock.timing(answering.as_mut()).await;
        assert!(!wait.is_zero(), "120 ms at 1%: past the first span's 100 ms");
    }

    #[test]
    fn the_client_id_is_read_from_any_header_version_or_is_empty() {
        assert_eq!(header_client_id(&header(ApiKey::Produce, "app-1")), Some("app-1"));
        let mut null = header(ApiKey::Produce, "");
        null[8..10].copy_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(header_client_id(&null), None);
        assert_eq!(header_client_id(&header(ApiKey::Produce, "app-1")[..12]), None, "cut short");
    }
}
