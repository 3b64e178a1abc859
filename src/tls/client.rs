//! The rustls client configuration of the operator's and the drill's own NATS
//! connections: trust the region's CA and nothing else, so a zone that shows
//! any other certificate (a stranger, an expired one) is refused.

use std::sync::Arc;

use rustls::ClientConfig;

use super::TlsError;
use super::pem::root_store;

/// A client configuration that trusts `ca_pem` only. The provider is named
/// here, not taken from the process default, which is ambiguous when several
/// crates link different providers.
pub fn client_config(ca_pem: &str) -> Result<ClientConfig, TlsError> {
    let roots = root_store(ca_pem)?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable {
                what: "TLS client configuration".to_string(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(config)
}

/// `options` made to require TLS and verify the servers with `ca_pem` alone.
/// `None` leaves them as they are: plaintext, or for a `tls://` URL the
/// system's roots (an external zone without a CA Secret).
pub fn trust_region_ca(
    options: async_nats::ConnectOptions,
    ca_pem: Option<&str>,
) -> Result<async_nats::ConnectOptions, TlsError> {
    Ok(match ca_pem {
        Some(ca) => options
            .require_tls(true)
            .tls_client_config(client_config(ca)?),
        None => options,
    })
}
