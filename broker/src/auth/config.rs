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
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("PLAIN") {
            return Some(SaslMechanism::Plain);
        }
        ScramMechanism::parse(text).map(SaslMechanism::Scram)
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
            .ok_or_else(|| format!("{text:?} is not a SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
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
    /// Offer PLAIN on a listener without TLS, where the password crosses the network in the clear. Off by
    /// default: for a loopback-only test setup.
    pub sasl_plain_without_tls: bool,
    /// Refuse every gRPC call (but health checks) without a valid bearer token, UNAUTHENTICATED.
    pub require_auth: bool,
    /// Authentication on the admin listener; unset (the default): `required` when `require_auth` is on,
    /// else `off`. One switch for "this broker requires authentication", and a way to set the two apart.
    pub admin_auth: Option<AdminAuth>,
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

    pub(crate) fn validate(&self, is_tls: bool, is_cluster: bool) -> Result<(), ConfigError> {
        let bad = |setting, reason: &str| Err(ConfigError { setting, reason: reason.to_owned() });
        if is_cluster && self.is_sasl_on() {
            return bad(
                "auth.kafka_sasl_mechanisms",
                "users are not replicated across a cluster yet: SASL works on a single node only",
            );
        }
        if is_cluster && self.require_auth {
            return bad(
                "auth.require_auth",
                "users and tokens are not replicated across a cluster yet: it works on a single node only",
            );
        }
        if is_cluster && self.admin_auth == Some(AdminAuth::Required) {
            return bad(
                "auth.admin_auth",
                "users are not replicated across a cluster yet: console sign-in works on a single node only",
            );
        }
        if self.kafka_sasl_mechanisms.contains(&SaslMechanism::Plain) && !is_tls && !self.sasl_plain_without_tls {
            return bad(
                "auth.kafka_sasl_mechanisms",
                "PLAIN sends passwords in the clear: turn TLS on (--tls-cert, --tls-key), or allow it with \
                 --sasl-plain-without-tls (sasl_plain_without_tls = true) on a trusted network",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_without_tls_and_sasl_on_a_cluster_are_refused_naming_the_way_out() {
        let plain = AuthConfig { kafka_sasl_mechanisms: vec![SaslMechanism::Plain], ..AuthConfig::default() };
        let err = plain.validate(false, false).expect_err("PLAIN in the clear");
        assert!(err.reason.contains("--sasl-plain-without-tls") && err.reason.contains("--tls-cert"), "{err:?}");
        assert!(plain.validate(true, false).is_ok());
        let allowed = AuthConfig { sasl_plain_without_tls: true, ..plain.clone() };
        assert!(allowed.validate(false, false).is_ok());
        assert!(plain.validate(true, true).is_err(), "users are not replicated");
        let parsed: AuthConfig =
            toml::from_str("kafka_sasl_mechanisms = [\"SCRAM-SHA-512\", \"PLAIN\"]").expect("valid TOML");
        assert_eq!(parsed.kafka_sasl_mechanisms, [SaslMechanism::Scram(ScramMechanism::Sha512), SaslMechanism::Plain]);
        assert!(toml::from_str::<AuthConfig>("kafka_sasl_mechanisms = [\"GSSAPI\"]").is_err());
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
        assert!(parsed.validate(false, true).is_err(), "users are not replicated");
    }
}
