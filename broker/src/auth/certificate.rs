//! The principal of a client certificate (mutual TLS): the rule is the subject's common name (CN), else the
//! certificate's first DNS subject alternative name, as `User:NAME` when that is a valid user name
//! (`users::validate_name`); otherwise, or without a certificate, none. The chain was verified in the handshake;
//! this only reads the leaf's names. SASL and bearer tokens, when given, take precedence over it.

use rustls::pki_types::CertificateDer;

use super::users::validate_name;
use super::Principal;

/// DER of the commonName attribute's OID, 2.5.4.3.
const COMMON_NAME_OID: [u8; 3] = [0x55, 0x04, 0x03];

/// The principal `leaf` maps to, if any.
pub fn principal_of(leaf: &CertificateDer<'_>) -> Option<Principal> {
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    let name = common_name(cert.subject()).or_else(|| cert.valid_dns_names().next().map(str::to_owned))?;
    match validate_name(&name) {
        Ok(()) => Some(Principal::User(name)),
        Err(err) => {
            tracing::debug!(error = %err, "client certificate name is not a user name: no principal from it");
            None
        }
    }
}

/// The first CN in a subject (the DER contents of an RDNSequence: SETs of SEQUENCE { OID, string }), if it is
/// UTF-8. Every length is checked against the bytes present; anything unexpected is no CN, never a panic.
fn common_name(mut rdn_sequence: &[u8]) -> Option<String> {
    while !rdn_sequence.is_empty() {
        let (set, rest) = element(rdn_sequence, 0x31)?;
        rdn_sequence = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = element(attributes, 0x30)?;
            attributes = rest;
            let (oid, value) = element(attribute, 0x06)?;
            if oid == COMMON_NAME_OID {
                // UTF8String, PrintableString, IA5String, T61String: all read as UTF-8 when they are.
                let (&tag, _) = value.split_first()?;
                let (text, _) = element(value, tag)?;
                return std::str::from_utf8(text).ok().map(str::to_owned);
            }
        }
    }
    None
}

/// One DER element with `tag` at the start of `bytes`: its contents and what follows.
fn element(bytes: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = bytes.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(common_name: Option<&str>, dns_names: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(dns_names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "rill tests");
        if let Some(cn) = common_name {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn the_common_name_is_the_principal_else_the_first_dns_name() {
        assert_eq!(
            principal_of(&certificate(Some("app1"), &["ignored.example"])),
            Some(Principal::User("app1".into()))
        );
        assert_eq!(
            principal_of(&certificate(None, &["svc.rill.test", "other.example"])),
            Some(Principal::User("svc.rill.test".into()))
        );
        assert_eq!(principal_of(&certificate(Some("not a user name"), &[])), None, "spaces are not allowed");
        assert_eq!(principal_of(&certificate(None, &[])), None);
        assert_eq!(principal_of(&CertificateDer::from(vec![0x30, 0x82, 0xff])), None, "garbage is no principal");
    }

    #[test]
    fn truncated_or_lying_lengths_are_no_common_name() {
        assert_eq!(common_name(&[0x31, 0x05, 0x30]), None);
        assert_eq!(common_name(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(element(&[0x30, 0x89], 0x30), None);
    }
}
