//! The local region runtime: every zone as nats-server processes on this
//! machine, wired exactly as the operator wires them (the same `plan`
//! builders), so `drill --local`, `make demo` and the integration tests
//! exercise the real mechanism.

pub mod process;
pub mod region;
pub mod toxiproxy;
pub mod zone;

pub use process::{ChildSpec, ManagedProcess, free_port, wait_for_http_ok, wait_for_tcp};
pub use region::{LocalRegion, LocalRegionOptions, generate_credentials, zone_tls};
pub use zone::{LocalServer, LocalZone, ZoneOptions};

use std::path::PathBuf;
use std::time::Duration;

/// Failures of the local runtime. Startup failures carry the tail of the
/// server's log, which is almost always where the reason is.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Tool(#[from] crate::tools::MissingTool),
    #[error(transparent)]
    Spec(#[from] crate::api::validate::SpecError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Fault(#[from] crate::fault::FaultError),
    #[error("certificates: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) before it was ready; log tail:\n{log_tail}")]
    Exited {
        name: String,
        status: String,
        log_tail: String,
    },
    #[error("{name}: {what} not ready after {after:?}; log tail:\n{log_tail}")]
    Timeout {
        name: String,
        what: String,
        after: Duration,
        log_tail: String,
    },
    #[error(
        "zone {0} is external: a local region runs every zone itself; drop `external` to run it locally"
    )]
    ExternalZone(String),
    #[error("zone {0} is not in the local region")]
    UnknownZone(String),
    #[error("zone {0} is already in the local region")]
    DuplicateZone(String),
    #[error("{0}")]
    Invalid(String),
    #[error("zone {zone} has no server {index}")]
    NoSuchServer { zone: String, index: usize },
}
