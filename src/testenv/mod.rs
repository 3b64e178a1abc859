//! A real Kubernetes control plane (etcd + kube-apiserver, optionally
//! kube-controller-manager) started from the binaries `tools/install.sh k8s`
//! builds. Used by the integration tests and the benchmark subcommand, which
//! need the API server's own CEL, defaulting and subresource behaviour rather
//! than an imitation of it. [`node`] adds a kubelet, a container runtime and
//! the rest of a one-node cluster, for tests whose pods must really run.

pub mod controlplane;
pub mod fixtures;
pub mod gitops;
pub mod node;
mod process;
pub mod relay;
pub mod support;
pub mod tls_probe;

use std::path::PathBuf;
use std::time::Duration;

pub use controlplane::{ControlPlane, ControlPlaneOptions};

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
    #[error("CRD {name} could not be installed: {reason}")]
    CrdNotEstablished { name: String, reason: String },
    /// This machine cannot run it (not root, a tool missing); tests skip.
    #[error("unsupported here: {0}")]
    Unsupported(String),
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    /// Another one-node cluster runs on this machine (`node::lock`).
    #[error(
        "another one-node cluster holds this machine ({holder}); waited {waited:?} for it (stop it, or wait for its run to end)"
    )]
    NodeBusy { holder: String, waited: Duration },
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

/// Server-side applies `crd` and waits until the API server serves it.
pub async fn install_crd(
    client: &kube::Client,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<(), Error> {
    use kube::ResourceExt;
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(crate::meta::FIELD_MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await?;
    match tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::CrdNotEstablished {
            name,
            reason: e.to_string(),
        }),
        Err(_) => Err(Error::CrdNotEstablished {
            name,
            reason: "not Established within 30s".into(),
        }),
    }
}

/// Installs both natsregion CRDs exactly as `crds/` holds them (the unit test
/// `checked_in_crds_match_the_rust_types` keeps the two identical).
pub async fn install_natsregion_crds(client: &kube::Client) -> Result<(), Error> {
    for (file, yaml) in crate::api::crd_files() {
        let crd = serde_yaml_ng::from_str(&yaml).map_err(|e| Error::CrdNotEstablished {
            name: file.to_string(),
            reason: e.to_string(),
        })?;
        install_crd(client, &crd).await?;
    }
    Ok(())
}
