//! TLS to the broker (docs/security.md): used for an `https://` address, and for every node learned from one
//! (leaders, coordinators), so a cluster reached over TLS is never spoken to in plaintext.
//!
//! The broker's certificate must chain to a CA this client trusts: the public web PKI roots (Mozilla's, as
//! `webpki-roots` ships them) and any CA given here. A client certificate is presented when the broker asks
//! for one (mutual TLS).

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{Error, Result};

/// What a client trusts and presents over TLS. Its `Debug` never shows the private key.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) trusted besides the public roots: a private CA that signed the broker's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// This client's certificate chain and private key (PEM), for a broker that asks for one.
    pub identity: Option<ClientIdentity>,
    /// The name the broker's certificate must be valid for, when it is not the address's host.
    pub server_name: Option<String>,
}

/// A client certificate chain and its key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("has_ca", &self.ca_pem.is_some())
            .field("has_identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn read(role: &str, path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|err| Error::InvalidUse { message: format!("cannot read TLS {role} {}: {err}", path.display()) })?;
    if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(Error::InvalidUse {
            message: format!("TLS {role} {} is not PEM (no `-----BEGIN` line)", path.display()),
        });
    }
    Ok(bytes)
}

impl ClientTls {
    /// Reads the PEM files: `ca` to trust besides the public roots; `cert` and `key` (both or neither) to present.
    pub fn from_files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self> {
        let ca_pem = ca.map(|path| read("CA", path)).transpose()?;
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                Some(ClientIdentity { cert_pem: read("certificate", cert)?, key_pem: read("key", key)? })
            }
            (None, None) => None,
            _ => {
                return Err(Error::InvalidUse {
                    message: "a TLS client certificate needs its key, and a key its certificate: give both".into(),
                })
            }
        };
        Ok(Self { ca_pem, identity, server_name: None })
    }

    pub(crate) fn to_tonic(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().with_webpki_roots();
        if let Some(ca) = &self.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some(identity) = &self.identity {
            config = config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name);
        }
        config
    }
}
