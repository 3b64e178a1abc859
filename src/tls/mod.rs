//! Certificates for a region's links, pure: issue a region CA and zone server
//! certificates (`issue`), read and check PEM someone handed us (`inspect`),
//! and the rustls client configuration that trusts a region's CA (`client`).
//! No I/O: the operator keeps the PEM in Secrets, the local runtime in files.

pub mod client;
pub mod inspect;
pub mod issue;
pub mod pem;
pub mod rotation;

pub use client::{client_config, trust_region_ca};
pub use inspect::{CertInfo, read_cert, verify_server};
pub use issue::{issue_ca, issue_server};

/// Keys of a certificate Secret, in cert-manager's format.
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
pub const CA_KEY: &str = "ca.crt";

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKeyPem {
    pub cert: String,
    pub key: String,
}

// The key stays out of logs and error messages.
impl std::fmt::Debug for CertKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKeyPem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a server needs: its certificate and key, and the CA it trusts for
/// its peers (routes, leafnode links). The three keys of a cert-manager Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    pub cert: CertKeyPem,
    pub ca: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what} is not a PEM {expected}: {reason}")]
    BadPem {
        what: String,
        expected: &'static str,
        reason: String,
    },
    #[error("{what}: {reason}")]
    Unusable { what: String, reason: String },
    #[error("certificate for {name:?} is not trusted: {reason}")]
    Untrusted { name: String, reason: String },
}

/// A CA and a certificate for `localhost` written as `tls.crt`, `tls.key` and
/// `ca.crt` into `dir`, for tests that have nats-server load a config.
#[cfg(any(test, feature = "testkit"))]
pub fn write_test_files(dir: &std::path::Path) -> std::io::Result<()> {
    let now = jiff::Timestamp::now();
    let day = std::time::Duration::from_secs(86_400);
    let ca = issue_ca("natsregion test", now, day).map_err(std::io::Error::other)?;
    let cert = issue_server(&ca, "test", &["localhost".to_string()], now, day)
        .map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(CERT_KEY), &cert.cert)?;
    std::fs::write(dir.join(KEY_KEY), &cert.key)?;
    std::fs::write(dir.join(CA_KEY), &ca.cert)
}
