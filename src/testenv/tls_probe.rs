//! What a NATS port shows a client, read the way a client meets it: the
//! plaintext `INFO` line every NATS listener sends first, then either a TLS
//! handshake (which certificate is served) or plaintext (whether the server
//! takes it). Blocking; call from `spawn_blocking`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The `INFO {...}` line the server sends before any handshake.
fn info_line(stream: &TcpStream) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(stream.try_clone().map_err(|e| e.to_string())?)
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(|e| format!("reading INFO: {e}"))?;
    if !line.starts_with("INFO ") {
        return Err(format!("expected INFO, got {line:?}"));
    }
    Ok(line)
}

fn dial(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The DER of the certificate served at `addr` after the INFO line, the
/// handshake verified with `ca_pem` for `name`.
pub fn served_certificate(addr: SocketAddr, ca_pem: &str, name: &str) -> Result<Vec<u8>, String> {
    let config = crate::tls::client_config(ca_pem).map_err(|e| e.to_string())?;
    let conn = handshake(addr, true, config, name)?;
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate served".to_string())
}

/// The protocol version a handshake with `addr` settles on when the client
/// offers only `versions`, or why the handshake failed. `info_first`: the
/// port sends its INFO line before the handshake (clients, leafnodes); routes
/// start with the handshake.
pub fn negotiated_version(
    addr: SocketAddr,
    info_first: bool,
    ca_pem: &str,
    name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<rustls::ProtocolVersion, String> {
    let roots = crate::tls::pem::root_store(ca_pem).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = handshake(addr, info_first, config, name)?;
    conn.protocol_version()
        .ok_or_else(|| "no version negotiated".to_string())
}

fn handshake(
    addr: SocketAddr,
    info_first: bool,
    config: rustls::ClientConfig,
    name: &str,
) -> Result<rustls::ClientConnection, String> {
    let mut stream = dial(addr)?;
    if info_first {
        info_line(&stream)?;
    }
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(conn)
}

/// What a plaintext client gets: the INFO line, then what the server answers
/// (or how it hangs up) when the client logs in and pings without TLS.
pub struct PlaintextAttempt {
    pub info: String,
    /// Everything the server sent after INFO until it closed or went quiet.
    pub answer: String,
}

impl PlaintextAttempt {
    /// The server asked for TLS in INFO and never answered the ping.
    pub fn refused(&self) -> bool {
        self.info.contains("\"tls_required\":true") && !self.answer.contains("PONG")
    }
}

pub fn plaintext_attempt(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<PlaintextAttempt, String> {
    let mut stream = dial(addr)?;
    let info = info_line(&stream)?;
    let connect = serde_json::json!({"user": user, "pass": password, "verbose": false, "tls_required": false});
    // Errors writing mean the server hung up already: that is an answer too.
    let _ = stream.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(PlaintextAttempt {
        info,
        answer: String::from_utf8_lossy(&answer).into_owned(),
    })
}

/// A client configuration for tests that dial a server by an address its
/// certificate does not carry (a pod IP, from the host): the chain must lead
/// to `ca_pem` and the certificate must be valid for `name` (the pod's DNS
/// name), whatever address was dialed. Only the name check is moved; an
/// untrusted or expired certificate still fails.
pub fn client_config_for_name(ca_pem: &str, name: &str) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = crate::tls::pem::root_store(ca_pem).map_err(|e| e.to_string())?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let expected = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let verifier = Arc::new(NamedVerifier { inner, expected });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _dialed: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expected, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
