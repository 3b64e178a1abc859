//! PEM text to the DER values rustls takes (through rustls' own PEM reader).

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::TlsError;

/// The certificates of a PEM text, in order (a chain: leaf first).
pub fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::BadPem {
        what: what.to_string(),
        expected: "certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".to_string()));
    }
    Ok(certs)
}

/// Roots made of the CA certificates in `ca_pem`.
pub fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem, "CA certificate")? {
        roots.add(cert).map_err(|e| TlsError::Unusable {
            what: "CA certificate".to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}
