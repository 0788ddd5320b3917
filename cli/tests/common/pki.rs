//! Certificates made in the test (rcgen), written as PEM files: a CA, and leaves it (or another CA, or nobody)
//! signed, valid or expired. Nothing is checked in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};

/// A certificate authority whose key signs leaves.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: KeyPair,
    /// Its certificate as a PEM file, for `--tls-ca` and `--tls-client-ca`.
    pub pem_path: PathBuf,
}

/// A certificate and key written to `<dir>/<name>.pem` and `<dir>/<name>.key`.
pub struct Leaf {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The DER of the certificate, to recognise it on the wire.
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        let pem_path = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_path, cert.pem()).expect("write CA");
        Ca { cert, key, pem_path }
    }

    /// A leaf for `localhost` and 127.0.0.1, usable by a server and a client, with `serial`; expired if asked.
    pub fn issue(&self, dir: &Path, name: &str, serial: u64, is_expired: bool) -> Leaf {
        let (params, key) = leaf_params(name, serial, is_expired);
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign leaf");
        Leaf::write(dir, name, &cert, &key)
    }
}

fn leaf_params(name: &str, serial: u64, is_expired: bool) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    if is_expired {
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    }
    (params, KeyPair::generate().expect("leaf key"))
}

/// A certificate signed by its own key, with no CA behind it.
pub fn self_signed(dir: &Path, name: &str) -> Leaf {
    let (params, key) = leaf_params(name, 7, false);
    let cert = params.self_signed(&key).expect("self-signed leaf");
    Leaf::write(dir, name, &cert, &key)
}

impl Leaf {
    fn write(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &KeyPair) -> Leaf {
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Leaf { cert_path, key_path, der: cert.der().to_vec() }
    }

    pub fn cert(&self) -> &str {
        self.cert_path.to_str().expect("utf-8 path")
    }

    pub fn key(&self) -> &str {
        self.key_path.to_str().expect("utf-8 path")
    }

    /// Puts this certificate and key where `at` has its files, each by an atomic rename (as a certificate
    /// manager does), the certificate first.
    pub fn install_over(&self, at: &Leaf) {
        for (from, to) in [(&self.cert_path, &at.cert_path), (&self.key_path, &at.key_path)] {
            let staged = to.with_extension("staged");
            std::fs::copy(from, &staged).expect("stage file");
            std::fs::rename(&staged, to).expect("rename over");
        }
    }
}

/// The certificate a TLS server at `addr` presents to a new connection (DER), trusting `ca`: a handshake of
/// our own, so the test sees exactly what a new client sees.
pub fn served_certificate(addr: &str, ca: &Ca) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("trust the CA");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(super::DEADLINE)).expect("read timeout");
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).expect("TLS handshake");
    }
    connection.peer_certificates().expect("a server certificate")[0].to_vec()
}
