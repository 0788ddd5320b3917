//! The authentication settings (`[auth]` in the broker's TOML; docs/security.md).

use serde::{Deserialize, Serialize};

use super::scram::ScramMechanism;
use crate::config::ConfigError;

/// A SASL mechanism the Kafka port may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SaslMechanism {
    /// The password itself, sent by the client: only over TLS unless `sasl_plain_without_tls`.
    Plain,
    Scram(ScramMechanism),
    /// An OAuth 2 bearer token (RFC 7628), checked against the identity provider's keys (`auth.oauth`). It
    /// sends a secret itself, as PLAIN does: only over TLS unless `sasl_plain_without_tls`.
    OAuthBearer,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("PLAIN") {
            return Some(SaslMechanism::Plain);
        }
        if text.eq_ignore_ascii_case("OAUTHBEARER") {
            return Some(SaslMechanism::OAuthBearer);
        }
        ScramMechanism::parse(text).map(SaslMechanism::Scram)
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| {
            format!("{text:?} is not a SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER")
        })
    }
}

impl From<SaslMechanism> for String {
    fn from(mechanism: SaslMechanism) -> String {
        mechanism.name().to_owned()
    }
}

/// Whether the admin listener (the console and `/metrics`) asks who is calling (docs/console.md, "Signing in").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminAuth {
    /// The console asks for a user's password (a session cookie follows), `/metrics` and the console take a
    /// bearer token; `/health` and `/ready` stay open.
    Required,
    /// Anyone who reaches the admin listener uses it, as `User:ANONYMOUS`.
    Off,
}

impl AdminAuth {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "required" => Some(Self::Required),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// SASL mechanisms offered on the Kafka port; empty (the default): no SASL, every Kafka client is
    /// `User:ANONYMOUS`. When set, a Kafka connection may send only ApiVersions, SaslHandshake and
    /// SaslAuthenticate until it has authenticated.
    pub kafka_sasl_mechanisms: Vec<SaslMechanism>,
    /// Offer PLAIN and OAUTHBEARER on a listener without TLS, where the password or token crosses the network
    /// in the clear. Off by default: for a loopback-only test setup.
    pub sasl_plain_without_tls: bool,
    /// The identity provider whose OAuth bearer tokens (JWTs) authenticate clients: by SASL OAUTHBEARER on
    /// the Kafka port, and as bearer tokens on gRPC and the admin listener (`oauth.rs`).
    pub oauth: Option<super::oauth::OAuthConfig>,
    /// Refuse every gRPC call (but health checks) without a valid bearer token, UNAUTHENTICATED.
    pub require_auth: bool,
    /// Authentication on the admin listener; unset (the default): `required` when `require_auth` is on,
    /// else `off`. One switch for "this broker requires authentication", and a way to set the two apart.
    pub admin_auth: Option<AdminAuth>,
    /// Whether ACLs decide what each principal may do (`on`), or everyone may do everything (`off`, the default).
    pub authorization: AuthorizationMode,
    /// Principals (`User:NAME`) that may do everything whatever the ACLs say, with authorization on.
    pub super_users: Vec<String>,
    /// Principals (`User:NAME`) of the client certificates the cluster's nodes present to each other: a call
    /// over a connection with one of them may name the principal of the client it forwards for
    /// (`forwarded.rs`). Empty (the default): the principal of this node's own `tls.cert`, when `tls.client_ca`
    /// is set; without client certificates no connection is a node's, and a forwarded principal is refused.
    pub node_principals: Vec<String>,
    /// A file holding the secret every node of the cluster shares and sends on each node-to-node call
    /// (`node_calls.rs`): how nodes tell each other from clients without client certificates.
    pub cluster_secret_file: Option<std::path::PathBuf>,
    /// Listen on a non-loopback address although clients need not authenticate: for a trusted network only.
    pub allow_insecure: bool,
    /// KIP-368 (Kafka's `connections.max.reauth.ms`): a Kafka client's SASL authentication lasts this long, or
    /// until its token expires if sooner; it re-authenticates on its connection before then, or the connection
    /// is closed. Unset or 0 (the default, as Kafka's): an authentication lasts as long as its connection.
    pub connections_max_reauth_ms: Option<u64>,
}

/// `auth.authorization`: `off` or `on`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationMode {
    #[default]
    Off,
    On,
}

impl AuthorizationMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "off" => Some(AuthorizationMode::Off),
            "on" => Some(AuthorizationMode::On),
            _ => None,
        }
    }
}

impl AuthConfig {
    pub fn is_sasl_on(&self) -> bool {
        !self.kafka_sasl_mechanisms.is_empty()
    }

    /// Whether the admin listener's console and `/metrics` require a signed-in user or a bearer token.
    pub fn is_admin_auth_required(&self) -> bool {
        match self.admin_auth {
            Some(AdminAuth::Required) => true,
            Some(AdminAuth::Off) => false,
            None => self.require_auth,
        }
    }

    pub(crate) fn validate(&self, is_tls: bool) -> Result<(), ConfigError> {
        let bad = |setting, reason: &str| Err(ConfigError { setting, reason: reason.to_owned() });
        let lists = [("auth.super_users", &self.super_users), ("auth.node_principals", &self.node_principals)];
        for (setting, list) in lists {
            if let Some(bad_user) = list.iter().find(|p| !is_user_principal(p)) {
                return Err(ConfigError {
                    setting,
                    reason: format!("{bad_user:?} is not a principal: use User:NAME, comma-separated"),
                });
            }
        }
        if self.kafka_sasl_mechanisms.contains(&SaslMechanism::Plain) && !is_tls && !self.sasl_plain_without_tls {
            return bad(
                "auth.kafka_sasl_mechanisms",
                "PLAIN sends passwords in the clear: turn TLS on (--tls-cert, --tls-key), or allow it with \
                 --sasl-plain-without-tls (sasl_plain_without_tls = true) on a trusted network",
            );
        }
        if self.kafka_sasl_mechanisms.contains(&SaslMechanism::OAuthBearer) {
            if self.oauth.is_none() {
                return bad(
                    "auth.kafka_sasl_mechanisms",
                    "OAUTHBEARER needs the identity provider's keys to check tokens against: give --oauth-jwks \
                     URL|FILE ([auth.oauth] jwks = ...)",
                );
            }
            if !is_tls && !self.sasl_plain_without_tls {
                return bad(
                    "auth.kafka_sasl_mechanisms",
                    "OAUTHBEARER sends bearer tokens in the clear, where anyone on the path may replay them until \
                     they expire: turn TLS on (--tls-cert, --tls-key), or allow it with --sasl-plain-without-tls \
                     (sasl_plain_without_tls = true) on a trusted network",
                );
            }
        }
        if let Some(oauth) = &self.oauth {
            oauth.validate()?;
        }
        if let Some(ms) = self.connections_max_reauth_ms.filter(|ms| (1..1000).contains(ms)) {
            return Err(ConfigError {
                setting: "auth.connections_max_reauth_ms",
                reason: format!("{ms} ms would have clients re-authenticate all the time: 0 (off) or at least 1000"),
            });
        }
        Ok(())
    }
}

fn is_user_principal(text: &str) -> bool {
    text.strip_prefix("User:").is_some_and(|name| super::users::validate_name(name).is_ok())
}

/// Whether every client on the listener must authenticate: by a required client certificate (mutual TLS), or
/// with a token on gRPC and SASL on the Kafka port both.
pub(crate) fn is_every_client_authenticated(auth: &AuthConfig, tls: Option<&crate::config::TlsConfig>) -> bool {
    let is_mtls_required = tls.and_then(|tls| tls.effective_client_auth()) == Some(crate::config::ClientAuth::Required);
    is_mtls_required || (auth.require_auth && auth.is_sasl_on())
}

/// Refuses a listener on a non-loopback address that anyone who reaches it may use without authenticating,
/// unless `allow_insecure` says the network is trusted.
pub(crate) fn check_exposure(
    listen: std::net::SocketAddr,
    auth: &AuthConfig,
    tls: Option<&crate::config::TlsConfig>,
) -> Result<(), ConfigError> {
    if listen.ip().is_loopback() || auth.allow_insecure || is_every_client_authenticated(auth, tls) {
        return Ok(());
    }
    Err(ConfigError {
        setting: "listen",
        reason: format!(
            "{listen} is not a loopback address, and clients need not authenticate there: anyone who reaches it \
             could read, write and delete every topic. Require authentication (mutual TLS with --tls-client-ca, \
             or --require-auth with --kafka-sasl-mechanisms), or pass --allow-insecure (RILL_ALLOW_INSECURE, \
             allow_insecure = true in [auth]) on a trusted network (docs/security.md)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_without_tls_is_refused_naming_the_way_out() {
        let plain = AuthConfig { kafka_sasl_mechanisms: vec![SaslMechanism::Plain], ..AuthConfig::default() };
        let err = plain.validate(false).expect_err("PLAIN in the clear");
        assert!(err.reason.contains("--sasl-plain-without-tls") && err.reason.contains("--tls-cert"), "{err:?}");
        assert!(plain.validate(true).is_ok());
        let allowed = AuthConfig { sasl_plain_without_tls: true, ..plain.clone() };
        assert!(allowed.validate(false).is_ok());
        let parsed: AuthConfig =
            toml::from_str("kafka_sasl_mechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]").expect("valid TOML");
        assert_eq!(parsed.kafka_sasl_mechanisms, [SaslMechanism::Scram(ScramMechanism::Sha512), SaslMechanism::Plain]);
        assert!(toml::from_str::<AuthConfig>("kafka_sasl_mechanisms = [\"GSSAPI\"]").is_err());
    }

    #[test]
    fn oauthbearer_needs_the_providers_keys_and_tls() {
        let bearer = AuthConfig { kafka_sasl_mechanisms: vec![SaslMechanism::OAuthBearer], ..AuthConfig::default() };
        let err = bearer.validate(true).expect_err("no keys");
        assert!(err.reason.contains("--oauth-jwks"), "{err:?}");
        let with_keys = AuthConfig { oauth: Some(super::super::oauth::OAuthConfig::new("/etc/jwks.json")), ..bearer };
        assert!(with_keys.validate(true).is_ok());
        let err = with_keys.validate(false).expect_err("tokens in the clear");
        assert!(err.reason.contains("--sasl-plain-without-tls"), "{err:?}");
        assert!(AuthConfig { sasl_plain_without_tls: true, ..with_keys.clone() }.validate(false).is_ok());
        let parsed: AuthConfig = toml::from_str(
            "kafka_sasl_mechanisms = [\"OAUTHBEARER\"]\n[oauth]\njwks = \"https://idp/certs\"\naudience = [\"rill\"]",
        )
        .expect("valid TOML");
        assert_eq!(parsed.oauth.as_ref().map(|o| o.principal_claim.as_str()), Some("sub"));
        assert!(parsed.validate(true).is_ok());
        let mut wrong = with_keys;
        if let Some(oauth) = wrong.oauth.as_mut() {
            oauth.jwks = "ftp://idp/certs".into();
        }
        assert_eq!(wrong.validate(true).expect_err("not a URL").setting, "auth.oauth.jwks");
        assert!(toml::from_str::<AuthConfig>("[oauth]\njwks = \"x\"\nissuer_url = \"y\"").is_err(), "unknown key");
    }

    #[test]
    fn admin_auth_follows_require_auth_unless_set() {
        assert!(!AuthConfig::default().is_admin_auth_required(), "the default stays open, as before");
        let required = AuthConfig { require_auth: true, ..AuthConfig::default() };
        assert!(required.is_admin_auth_required());
        let apart = AuthConfig { admin_auth: Some(AdminAuth::Off), ..required };
        assert!(!apart.is_admin_auth_required());
        let parsed: AuthConfig = toml::from_str("admin_auth = \"required\"").expect("valid TOML");
        assert!(parsed.is_admin_auth_required());
        assert!(parsed.validate(false).is_ok(), "on a cluster too: users are replicated");
    }

    #[test]
    fn authorization_settings_read_from_toml_and_are_checked() {
        let parsed: AuthConfig =
            toml::from_str("authorization = \"on\"\nsuper_users = [\"User:admin\"]\nallow_insecure = true")
                .expect("valid TOML");
        assert_eq!(parsed.authorization, AuthorizationMode::On);
        assert_eq!(parsed.super_users, ["User:admin"]);
        assert!(parsed.validate(false).is_ok());
        let bad = AuthConfig { super_users: vec!["admin".into()], ..AuthConfig::default() };
        let err = bad.validate(false).expect_err("not a principal");
        assert!(err.reason.contains("User:NAME"), "{err:?}");
    }

    #[test]
    fn a_non_loopback_listener_needs_authentication_or_allow_insecure() {
        let any: std::net::SocketAddr = "0.0.0.0:9092".parse().expect("address");
        let loopback: std::net::SocketAddr = "127.0.0.1:9092".parse().expect("address");
        let open = AuthConfig::default();
        assert!(check_exposure(loopback, &open, None).is_ok());
        let err = check_exposure(any, &open, None).expect_err("open to the network");
        assert!(err.reason.contains("--allow-insecure") && err.reason.contains("--require-auth"), "{err:?}");
        let insecure = AuthConfig { allow_insecure: true, ..AuthConfig::default() };
        assert!(check_exposure(any, &insecure, None).is_ok());
        let token_only = AuthConfig { require_auth: true, ..AuthConfig::default() };
        assert!(check_exposure(any, &token_only, None).is_err(), "Kafka clients would be anonymous");
        let both =
            AuthConfig { kafka_sasl_mechanisms: vec![SaslMechanism::Scram(ScramMechanism::Sha256)], ..token_only };
        assert!(check_exposure(any, &both, None).is_ok());
        let mut mtls = crate::config::TlsConfig::new("c.pem", "k.pem");
        mtls.client_ca = Some("ca.pem".into());
        assert!(check_exposure(any, &open, Some(&mtls)).is_ok());
        mtls.client_auth = Some(crate::config::ClientAuth::Optional);
        assert!(check_exposure(any, &open, Some(&mtls)).is_err());
    }
}
