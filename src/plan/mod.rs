//! Pure builders from a `RegionMirrorSpec` (plus addressing chosen by the
//! caller) to nats-server configuration files and stream configs. No I/O here:
//! the operator's ConfigMaps and the local runtime render the same plans.

pub mod capacity;
pub mod conf;
pub mod ports;
pub mod server;
pub mod stream;

pub use server::{
    AccountConfig, ClusterConfig, JetStreamConfig, LeafnodeConfig, MAX_MEMORY_STORE, RemoteConfig,
    RouteAuthorization, ServerAddress, ServerConfig, ServerPlan, TLS_HANDSHAKE_TIMEOUT,
    TLS_MIN_VERSION, TlsConfig, TlsFiles, UserConfig, ZoneAddresses, ZonePlan, host_port, leaf_url,
    parse_quantity, server_config,
};
pub use stream::{
    StreamKind, ZONE_TOKEN, ZoneStream, aggregate_stream_config, api_prefix, local_stream_config,
    local_stream_name, mirror_stream_config, producer_subject, source_stream_config, zone_streams,
    zone_subjects,
};

use serde::{Deserialize, Serialize};

/// The account producers, consumers and leafnode links use.
pub const APP_ACCOUNT: &str = "APP";
/// The system account (monitoring, JetStream domain plumbing).
pub const SYSTEM_ACCOUNT: &str = "SYS";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPass {
    pub user: String,
    pub password: String,
}

/// The users every zone's servers accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCredentials {
    /// Application account; also what mirror zones' leafnode links log in as.
    pub app: UserPass,
    pub system: UserPass,
}

impl RegionCredentials {
    fn check(&self) -> Result<(), PlanError> {
        let bad = |m: &str| Err(PlanError::Credentials(m.to_string()));
        for (which, u) in [("application", &self.app), ("system", &self.system)] {
            if u.user.is_empty() || u.password.is_empty() {
                return bad(&format!("the {which} user and password must not be empty"));
            }
            // The server takes such a password for a bcrypt hash and would
            // compare the client's plain password against it.
            if is_bcrypt_like(&u.password) {
                return bad(&format!(
                    "the {which} password looks like a bcrypt hash ($2a$NN$...), which nats-server would not treat as a plain password"
                ));
            }
        }
        if self.app.user == self.system.user {
            return bad(
                "the application and system users must differ: a user name may belong to only one account",
            );
        }
        Ok(())
    }
}

fn is_bcrypt_like(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 7
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("the region has no source zone")]
    NoSourceZone,
    #[error("zone {0} is not in the region")]
    UnknownZone(String),
    #[error("zone {0} is external: its servers are not configured by natsregion")]
    ExternalZone(String),
    #[error("zone {zone} has {want} servers but addresses were given for {got}")]
    ServerCount { zone: String, want: i32, got: usize },
    #[error("source zone {zone}: server {server} has no leafnode port")]
    MissingLeafnodePort { zone: String, server: String },
    #[error("mirror zone {0} has no leafnode address of the source zone to dial")]
    NoLeafRemotes(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("zone {0}: the spec turns TLS on but no certificate files were given")]
    MissingTlsFiles(String),
    #[error(
        "zone {0}: certificate files were given but the spec turns TLS off (tls.mode: Disabled)"
    )]
    UnexpectedTlsFiles(String),
    #[error("stream.syncInterval {0:?} is not 'always' or a duration such as 10s or 2m")]
    SyncInterval(String),
    #[error("storage size {0:?} is not a quantity such as 512Mi or 10Gi")]
    StorageSize(String),
}

#[cfg(test)]
mod tests;
