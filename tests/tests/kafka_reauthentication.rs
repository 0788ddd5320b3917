//! KIP-368 re-authentication on the Kafka port, over real sockets to an embedded broker with SASL PLAIN: with
//! `auth.connections_max_reauth_ms` set, SaslAuthenticate tells the client how long its session lasts, a
//! re-authentication on the same connection extends it, a request after its end closes the connection, and a
//! re-authentication must keep the principal and the mechanism. Without the setting, sessions last as long as
//! their connections and a second handshake is refused, as before.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rill_broker::SaslMechanism;
use rill_tests::kafka_client::KafkaClient;
use rill_tests::{TestBroker, PASSWORD};

const SESSION: Duration = Duration::from_millis(3000);

async fn broker(max_reauth_ms: Option<u64>) -> TestBroker {
    let broker = TestBroker::start_with(|config| {
        config.auth.kafka_sasl_mechanisms =
            vec![SaslMechanism::Plain, SaslMechanism::Scram(rill_broker::auth::scram::ScramMechanism::Sha256)];
        config.auth.sasl_plain_without_tls = true;
        config.auth.connections_max_reauth_ms = max_reauth_ms;
    })
    .await;
    broker.create_users(&["app", "other"]).await;
    broker
}

fn addr(broker: &TestBroker) -> std::net::SocketAddr {
    broker.handle.as_ref().expect("running").addr()
}

async fn handshake(client: &mut KafkaClient, mechanism: &'static str) -> SaslHandshakeResponse {
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    client.call(ApiKey::SaslHandshake, 1, &request).await
}

async fn plain(client: &mut KafkaClient, user: &str) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(format!("\0{user}\0{PASSWORD}")));
    client.call(ApiKey::SaslAuthenticate, 2, &request).await
}

async fn metadata_answers(client: &mut KafkaClient) -> bool {
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    !response.brokers.is_empty()
}

#[tokio::test]
async fn a_session_ends_after_the_interval_unless_the_client_reauthenticates() {
    let broker = broker(Some(SESSION.as_millis() as u64)).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    assert_eq!(handshake(&mut client, "PLAIN").await.error_code, 0);
    let authenticated = plain(&mut client, "app").await;
    assert_eq!((authenticated.error_code, authenticated.session_lifetime_ms), (0, 3000));
    assert!(metadata_answers(&mut client).await);

    // Re-authenticated before the end, the connection outlives the first session.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(handshake(&mut client, "PLAIN").await.error_code, 0, "a re-authentication's handshake");
    let again = plain(&mut client, "app").await;
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 3000));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(metadata_answers(&mut client).await, "3.6 s after the first authentication, 1.8 s after the second");

    // Past the second session's end, the next request closes the connection.
    tokio::time::sleep(SESSION).await;
    client.send(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert!(client.is_closed_by_broker().await, "a request after the session's end closes the connection");
}

#[tokio::test]
async fn a_reauthentication_must_keep_the_principal_and_the_mechanism() {
    let broker = broker(Some(60_000)).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    handshake(&mut client, "PLAIN").await;
    assert_eq!(plain(&mut client, "app").await.session_lifetime_ms, 60_000);
    assert_eq!(handshake(&mut client, "PLAIN").await.error_code, 0);
    let other = plain(&mut client, "other").await;
    assert_eq!(other.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(client.is_closed_by_broker().await, "re-authenticating as another user closes the connection");

    let mut client = KafkaClient::connect(addr(&broker)).await;
    handshake(&mut client, "PLAIN").await;
    assert_eq!(plain(&mut client, "app").await.error_code, 0);
    let switched = handshake(&mut client, "SCRAM-SHA-256").await;
    assert_eq!(switched.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert_eq!(switched.mechanisms, [StrBytes::from_static_str("PLAIN")], "the mechanism it must use");
    assert!(client.is_closed_by_broker().await);
}

#[tokio::test]
async fn without_the_setting_a_session_lasts_as_long_as_its_connection() {
    let broker = broker(None).await;
    let mut client = KafkaClient::connect(addr(&broker)).await;
    handshake(&mut client, "PLAIN").await;
    let authenticated = plain(&mut client, "app").await;
    assert_eq!((authenticated.error_code, authenticated.session_lifetime_ms), (0, 0), "0: no limit");
    assert!(metadata_answers(&mut client).await);
    let again = handshake(&mut client, "PLAIN").await;
    assert_eq!(again.error_code, ResponseError::IllegalSaslState.code(), "no re-authentication to start");
    assert!(client.is_closed_by_broker().await);
}
