//! A real Kubernetes control plane (etcd + kube-apiserver, optionally
//! kube-controller-manager) started from the binaries `tools/install.sh k8s`
//! builds. Used by the integration tests and the benchmark subcommand, which
//! need the API server's own CEL, defaulting and subresource behaviour rather
//! than an imitation of it.

pub mod controlplane;
mod process;

use std::path::PathBuf;
use std::time::Duration;

pub use controlplane::ControlPlane;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    MissingTool(#[from] crate::tools::MissingTool),
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) during startup; last lines of {}:\n{tail}", log.display())]
    Exited {
        name: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("timed out after {after:?} waiting for {what}{}; last lines of {}:\n{tail}", if last.is_empty() { String::new() } else { format!(" (last answer: {last})") }, log.display())]
    Timeout {
        what: String,
        after: Duration,
        last: String,
        log: PathBuf,
        tail: String,
    },
    #[error("could not read the generated kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

impl Error {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A startup that lost a race for a port with some other process; starting
    /// again with fresh ports fixes it.
    fn is_port_clash(&self) -> bool {
        match self {
            Error::Exited { tail, .. } | Error::Timeout { tail, .. } => {
                tail.contains("address already in use")
            }
            _ => false,
        }
    }
}
