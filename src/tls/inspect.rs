//! Reading certificates: lifetime and names (for renewal), whether a key
//! belongs to its certificate, and whether a certificate is trusted for a name
//! under a CA, checked the way the operator's own rustls connections check it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

use super::pem::{certs, root_store};
use super::{CertKeyPem, TlsError};

/// What renewal and the checks need from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// Subject alternative names: DNS names and IP addresses, in order.
    pub names: Vec<String>,
    pub is_ca: bool,
}

impl CertInfo {
    /// Whether the certificate expires within `before` of `now` (or already has).
    pub fn renewal_due(&self, now: Timestamp, before: Duration) -> bool {
        now.as_second() + before.as_secs() as i64 >= self.not_after.as_second()
    }
}

/// The first certificate of `pem`, read.
pub fn read_cert(pem: &str) -> Result<CertInfo, TlsError> {
    let der = certs(pem, "certificate")?.remove(0);
    let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::BadPem {
        what: "certificate".to_string(),
        expected: "X.509 certificate",
        reason: e.to_string(),
    })?;
    let time = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_second(t.timestamp()).map_err(|e| TlsError::Unusable {
            what: "certificate validity".to_string(),
            reason: e.to_string(),
        })
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_before: time(x509.validity().not_before)?,
        not_after: time(x509.validity().not_after)?,
        names,
        is_ca: x509.is_ca(),
    })
}

/// Whether the key of `pair` belongs to its certificate: a Secret whose
/// `tls.key` was rotated without its `tls.crt` would fail every handshake.
pub fn check_pair(pair: &CertKeyPem, what: &str) -> Result<(), TlsError> {
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).map_err(|e| TlsError::BadPem {
        what: format!("{what} key"),
        expected: "private key",
        reason: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Unusable {
            what: format!("{what} key"),
            reason: e.to_string(),
        })?;
    let chain = certs(&pair.cert, &format!("{what} certificate"))?;
    rustls::sign::CertifiedKey::new(chain, signer)
        .keys_match()
        .map_err(|e| TlsError::Unusable {
            what: what.to_string(),
            reason: format!("the key does not belong to the certificate ({e})"),
        })
}

/// Checks that `cert_pem` (leaf first, then any intermediates) is trusted
/// under `ca_pem` for `name` (a DNS name or an IP address) at `now`.
pub fn verify_server(
    ca_pem: &str,
    cert_pem: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), TlsError> {
    let untrusted = |reason: String| TlsError::Untrusted {
        name: name.to_string(),
        reason,
    };
    let roots = root_store(ca_pem)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| untrusted(e.to_string()))?;
    let chain = certs(cert_pem, "certificate")?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| TlsError::Unusable {
        what: format!("name {name:?}"),
        reason: e.to_string(),
    })?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now.as_second().max(0) as u64));
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], at)
        .map(|_| ())
        .map_err(|e| untrusted(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{issue_ca, issue_server};

    #[test]
    fn a_key_from_another_certificate_is_caught() {
        let now = Timestamp::now();
        let day = Duration::from_secs(86_400);
        let ca = issue_ca("r", now, day).unwrap();
        let a = issue_server(&ca, "a", &["a".to_string()], now, day).unwrap();
        let b = issue_server(&ca, "b", &["b".to_string()], now, day).unwrap();
        check_pair(&a, "zone a").unwrap();
        let mixed = CertKeyPem {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let err = check_pair(&mixed, "zone a").unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
        assert!(matches!(
            read_cert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(TlsError::BadPem { .. })
        ));
        assert!(matches!(read_cert(""), Err(TlsError::BadPem { .. })));
    }
}
