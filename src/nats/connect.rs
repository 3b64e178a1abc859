//! Connecting to one zone: its client URLs, the application account's
//! user and password, and a JetStream context bound to the zone's own domain.

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectErrorKind, ServerAddr};

use super::api::{self, Answer, NoAnswer};

/// Where a zone is and who we are to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneEndpoint {
    pub zone: String,
    /// Client URLs of the zone's servers (`nats://host:port`).
    pub urls: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The JetStream domain the zone must report; checked when set, because a
    /// zone answering with another domain means mirrors would point at the wrong
    /// `$JS.<domain>.API`.
    pub domain: Option<String>,
    /// PEM of the CA the zone's certificates chain to. Set: TLS is required
    /// and the servers are verified against this CA alone.
    pub ca: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectSettings {
    /// Connection name shown by the servers (`/connz`), so operators can tell
    /// the operator's and the drill's connections apart.
    pub client_name: String,
    /// Bound on one TCP + handshake attempt.
    pub attempt_timeout: Duration,
    /// Bound on the whole connect, JetStream becoming ready included. A zone
    /// that just started needs a few seconds to elect its meta leader.
    pub deadline: Duration,
    /// Bound on each JetStream API request made through the returned context.
    pub request_timeout: Duration,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self {
            client_name: "natsregion".to_string(),
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(20),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A live connection to one zone.
#[derive(Clone, Debug)]
pub struct ZoneClient {
    pub zone: String,
    pub client: Client,
    /// JetStream of the zone itself (no domain prefix): the servers we are
    /// connected to answer `$JS.API` for their own domain.
    pub js: Context,
    /// The domain the zone reported.
    pub domain: Option<String>,
    /// The server that accepted the connection.
    pub server_name: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConnectError {
    #[error("zone {zone}: no client URLs to connect to")]
    NoUrls { zone: String },
    #[error("zone {zone}: client URL {url:?} is not a NATS URL ({reason}); use nats://host:port")]
    BadUrl {
        zone: String,
        url: String,
        reason: String,
    },
    #[error(
        "zone {zone}: the servers refused user {user:?} ({reason}); check the credentials secret (keys user and password)"
    )]
    Unauthorized {
        zone: String,
        user: String,
        reason: String,
    },
    #[error("zone {zone}: TLS handshake failed: {reason}")]
    Tls { zone: String, reason: String },
    #[error("zone {zone}: no server answered at {} within {elapsed:?} ({attempts} attempts; last error: {last})", urls.join(", "))]
    Unreachable {
        zone: String,
        urls: Vec<String>,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    #[error(
        "zone {zone}: connected, but JetStream did not answer within {elapsed:?} ({reason}); is JetStream enabled for the application account?"
    )]
    NoJetStream {
        zone: String,
        elapsed: Duration,
        reason: String,
    },
    #[error(
        "zone {zone}: JetStream domain is {actual:?} but {expected:?} was expected; set zones[].domain to the domain the servers run with"
    )]
    DomainMismatch {
        zone: String,
        expected: String,
        actual: Option<String>,
    },
}

/// A connection to each server of `endpoint` (one per URL), leaving out
/// those that do not answer.
pub async fn connect_each(endpoint: &ZoneEndpoint, settings: &ConnectSettings) -> Vec<ZoneClient> {
    let mut out = Vec::new();
    for url in &endpoint.urls {
        let one = ZoneEndpoint {
            urls: vec![url.clone()],
            ..endpoint.clone()
        };
        if let Ok(c) = connect(&one, settings).await {
            out.push(c);
        }
    }
    out
}

/// Connects to a zone, retrying unreachable servers and a JetStream that is
/// not ready yet until `settings.deadline`; bad URLs and refused credentials
/// fail at once, since retrying cannot fix them.
pub async fn connect(
    endpoint: &ZoneEndpoint,
    settings: &ConnectSettings,
) -> Result<ZoneClient, ConnectError> {
    let zone = endpoint.zone.clone();
    if endpoint.urls.is_empty() {
        return Err(ConnectError::NoUrls { zone });
    }
    let addrs = endpoint
        .urls
        .iter()
        .map(|url| {
            ServerAddr::from_str(url).map_err(|e| ConnectError::BadUrl {
                zone: zone.clone(),
                url: url.clone(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let started = Instant::now();
    let deadline = started + settings.deadline;
    let mut attempts = 0u32;
    let mut backoff = Duration::from_millis(100);
    let client = loop {
        attempts += 1;
        let mut options = async_nats::ConnectOptions::new()
            .name(&settings.client_name)
            .connection_timeout(settings.attempt_timeout)
            .request_timeout(Some(settings.request_timeout));
        if let (Some(user), Some(password)) = (&endpoint.user, &endpoint.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let options =
            crate::tls::trust_region_ca(options, endpoint.ca.as_deref()).map_err(|e| {
                ConnectError::Tls {
                    zone: zone.clone(),
                    reason: e.to_string(),
                }
            })?;
        match options.connect(addrs.clone()).await {
            Ok(client) => break client,
            Err(e) => match e.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    return Err(ConnectError::Unauthorized {
                        zone,
                        user: endpoint.user.clone().unwrap_or_default(),
                        reason: e.to_string(),
                    });
                }
                ConnectErrorKind::ServerParse => {
                    return Err(ConnectError::BadUrl {
                        zone,
                        url: endpoint.urls.join(","),
                        reason: e.to_string(),
                    });
                }
                ConnectErrorKind::Tls => {
                    return Err(ConnectError::Tls {
                        zone,
                        reason: e.to_string(),
                    });
                }
                // A certificate the CA does not vouch for arrives as an I/O
                // error; retrying cannot fix it, so it fails now with its name.
                _ if is_certificate_error(&e) => {
                    return Err(ConnectError::Tls {
                        zone,
                        reason: e.to_string(),
                    });
                }
                _ => {
                    let now = Instant::now();
                    if now + backoff >= deadline {
                        return Err(ConnectError::Unreachable {
                            zone,
                            urls: endpoint.urls.clone(),
                            attempts,
                            elapsed: now - started,
                            last: e.to_string(),
                        });
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            },
        }
    };

    let js = jetstream::ContextBuilder::new()
        .timeout(settings.request_timeout)
        .build(client.clone());
    let domain = wait_for_jetstream(&zone, &js, started, deadline).await?;
    if let Some(expected) = &endpoint.domain
        && domain.as_deref() != Some(expected.as_str())
    {
        return Err(ConnectError::DomainMismatch {
            zone,
            expected: expected.clone(),
            actual: domain,
        });
    }
    let server_name = client.server_info().server_name;
    Ok(ZoneClient {
        zone,
        client,
        js,
        domain,
        server_name,
    })
}

/// Whether rustls refused the server's certificate (wrong CA, wrong name,
/// expired) somewhere down the error's sources.
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(
            rustls_error,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        next = err.source();
    }
    false
}

const JETSTREAM_NOT_ENABLED_FOR_ACCOUNT: u64 = 10039;

/// Account info is the cheapest JetStream call the application account may
/// make; it answers once the zone has a meta leader, and carries the domain.
async fn wait_for_jetstream(
    zone: &str,
    js: &Context,
    started: Instant,
    deadline: Instant,
) -> Result<Option<String>, ConnectError> {
    #[derive(serde::Deserialize)]
    struct AccountInfo {
        #[serde(default)]
        domain: Option<String>,
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        let reason = match api::call::<AccountInfo>(js, "INFO".to_string(), &()).await {
            Ok(Answer::Ok(info)) => return Ok(info.domain.filter(|d| !d.is_empty())),
            // Not enabled for the account is configuration, not start-up: fail at once.
            Ok(Answer::Err(e)) if e.err_code == JETSTREAM_NOT_ENABLED_FOR_ACCOUNT => {
                return Err(ConnectError::NoJetStream {
                    zone: zone.to_string(),
                    elapsed: started.elapsed(),
                    reason: e.to_string(),
                });
            }
            Ok(Answer::Err(e)) => e.to_string(),
            Err(NoAnswer::NoResponders) => "no responders on $JS.API.INFO".to_string(),
            Err(e) => e.to_string(),
        };
        let now = Instant::now();
        if now + backoff >= deadline {
            return Err(ConnectError::NoJetStream {
                zone: zone.to_string(),
                elapsed: now - started,
                reason,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
