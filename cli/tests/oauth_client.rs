//! rill's Rust client with OAuth tokens (docs/security.md, "OAuth bearer tokens"): against a broker that checks
//! an identity provider's JWTs (a JWKS file here) and requires authentication, a client whose token comes from a
//! `TokenSource` sends the source's current token on each call, so a token renewed before (or after) it expires
//! is what the next call carries; a call made with an expired one is refused UNAUTHENTICATED saying so.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rill_client::{Admin, BearerToken, Client, ClientConfig, TopicConfig};
use rill_tests::TestBroker;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_source_is_asked_on_every_call_so_a_renewed_token_goes_out() {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
        .expect("key");
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json")).expect("write");
    let broker = TestBroker::start_with(|config| {
        config.auth.oauth = Some(rill_broker::OAuthConfig::new(jwks.display().to_string()));
        config.auth.require_auth = true;
    })
    .await;

    let (asked, expired) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let source = {
        let (asked, expired) = (Arc::clone(&asked), Arc::clone(&expired));
        move || {
            asked.fetch_add(1, Ordering::SeqCst);
            let exp = if expired.load(Ordering::SeqCst) { now() - 120 } else { now() + 300 };
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(&header, &serde_json::json!({"sub": "svc-orders", "exp": exp}), &key).expect("sign")
        }
    };
    let config = ClientConfig { token: Some(BearerToken::from_source(source)), ..ClientConfig::default() };
    let url = broker.handle.as_ref().expect("running").url();
    let admin = Admin::new(Client::connect_with(&url, config).await.expect("connect"));
    admin.create_topic("orders", 1, TopicConfig::default()).await.expect("a valid token");
    let before = asked.load(Ordering::SeqCst);

    expired.store(true, Ordering::SeqCst);
    let refused = admin.list_topics().await.expect_err("an expired token");
    assert!(refused.to_string().contains("expired"), "{refused}");
    expired.store(false, Ordering::SeqCst);
    let topics = admin.list_topics().await.expect("the renewed token, on the same client");
    assert_eq!(topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["orders"]);
    assert!(asked.load(Ordering::SeqCst) >= before + 2, "asked on each call");
}
