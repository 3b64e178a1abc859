//! Issuing: a region CA, and server certificates it signs. ECDSA P-256 keys,
//! which nats-server (Go) and rustls both take.

use std::time::Duration;

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use super::{CertKeyPem, TlsError};

/// Certificates start this long before they are issued, so a peer whose
/// clock runs a little behind does not reject a fresh one.
const BACKDATE: Duration = Duration::from_secs(300);

/// A self-signed CA valid for `lifetime` from `now`.
pub fn issue_ca(
    common_name: &str,
    now: Timestamp,
    lifetime: Duration,
) -> Result<CertKeyPem, TlsError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now, lifetime)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CertKeyPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server certificate for `names` (DNS names, wildcards such as
/// `*.svc.ns.svc`, or IP addresses), signed by `ca`. Usable as a TLS server and
/// as a client: routes and leafnode remotes present it when they dial a peer.
pub fn issue_server(
    ca: &CertKeyPem,
    common_name: &str,
    names: &[String],
    now: Timestamp,
    lifetime: Duration,
) -> Result<CertKeyPem, TlsError> {
    if names.is_empty() {
        return Err(TlsError::Unusable {
            what: format!("certificate {common_name}"),
            reason: "no names to issue it for".to_string(),
        });
    }
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| TlsError::BadPem {
        what: "the CA key".to_string(),
        expected: "private key",
        reason: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(|e| TlsError::BadPem {
        what: "the CA certificate".to_string(),
        expected: "certificate",
        reason: e.to_string(),
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, lifetime)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertKeyPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "natsregion");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(
    params: &mut CertificateParams,
    now: Timestamp,
    lifetime: Duration,
) -> Result<(), TlsError> {
    let at = |secs: i64| {
        OffsetDateTime::from_unix_timestamp(secs).map_err(|e| TlsError::Unusable {
            what: "certificate validity".to_string(),
            reason: e.to_string(),
        })
    };
    let start = now.as_second();
    params.not_before = at(start - BACKDATE.as_secs() as i64)?;
    params.not_after = at(start + lifetime.as_secs() as i64)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{read_cert, verify_server};

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_server_certificate_chains_to_its_ca_for_its_names_only() {
        let now = Timestamp::now();
        let ca = issue_ca("region east", now, 10 * DAY).unwrap();
        let names = vec![
            "*.r-east.ns.svc".to_string(),
            "r-east-leaf.ns.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let server = issue_server(&ca, "r-east", &names, now, DAY).unwrap();

        verify_server(&ca.cert, &server.cert, "r-east-0.r-east.ns.svc", now).unwrap();
        verify_server(&ca.cert, &server.cert, "r-east-leaf.ns.svc", now).unwrap();
        verify_server(&ca.cert, &server.cert, "127.0.0.1", now).unwrap();
        let wrong_name = verify_server(&ca.cert, &server.cert, "r-west-0.r-west.ns.svc", now);
        assert!(
            matches!(wrong_name, Err(TlsError::Untrusted { .. })),
            "{wrong_name:?}"
        );

        let other_ca = issue_ca("another region", now, 10 * DAY).unwrap();
        let wrong_ca = verify_server(&other_ca.cert, &server.cert, "127.0.0.1", now);
        assert!(
            matches!(wrong_ca, Err(TlsError::Untrusted { .. })),
            "{wrong_ca:?}"
        );

        let expired = verify_server(&ca.cert, &server.cert, "127.0.0.1", now + 2 * DAY);
        assert!(
            matches!(&expired, Err(TlsError::Untrusted { reason, .. }) if reason.contains("xpired")),
            "{expired:?}"
        );
    }

    #[test]
    fn issued_certificates_read_back_with_their_lifetime_and_names() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let ca = issue_ca("region r", now, 10 * DAY).unwrap();
        let info = read_cert(&ca.cert).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.not_after.as_second(), now.as_second() + 10 * 86_400);

        let names = vec!["a.ns.svc".to_string(), "10.1.2.3".to_string()];
        let server = issue_server(&ca, "r-a", &names, now, DAY).unwrap();
        let info = read_cert(&server.cert).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.names, names);
        assert_eq!(info.not_before.as_second(), now.as_second() - 300);
        assert!(info.renewal_due(
            now + Duration::from_secs(3_600),
            Duration::from_secs(23 * 3_600)
        ));
        assert!(!info.renewal_due(now, Duration::from_secs(23 * 3_600)));
    }

    #[test]
    fn a_certificate_needs_a_name_and_a_usable_ca() {
        let now = Timestamp::now();
        let ca = issue_ca("r", now, DAY).unwrap();
        assert!(matches!(
            issue_server(&ca, "r-a", &[], now, DAY),
            Err(TlsError::Unusable { .. })
        ));
        let broken = CertKeyPem {
            cert: ca.cert.clone(),
            key: "not a key".to_string(),
        };
        assert!(matches!(
            issue_server(&broken, "r-a", &["a".to_string()], now, DAY),
            Err(TlsError::BadPem { .. })
        ));
    }
}
