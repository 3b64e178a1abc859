//! The node's volumes. kube-controller-manager's hostPath provisioner makes
//! each volume's directory root-owned with mode 0750, and the kubelet does
//! not apply a pod's `fsGroup` to hostPath volumes, so a pod that runs as
//! non-root (the NATS pods run as uid 1000) could not write its own volume.
//! kind's provisioner (local-path) makes every volume directory 0777; this
//! task does the same for the volumes this node's provisioner creates.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

/// Where the hostPath provisioner puts volumes (`/tmp/hostpath_pv/<uid>`).
pub const PROVISIONER_DIR: &str = "/tmp/hostpath_pv";

/// Watches PersistentVolumes and opens each provisioned directory to every
/// user as it appears, before a pod can use it (the claim binds, then the
/// pod is scheduled and its containers start).
pub fn open_provisioned_volumes(client: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pvs: Api<PersistentVolume> = Api::all(client);
        let mut events = watcher::watcher(pvs, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let pv = match event {
                Ok(Event::Apply(pv) | Event::InitApply(pv)) => pv,
                _ => continue,
            };
            let Some(path) = pv
                .spec
                .and_then(|s| s.host_path)
                .map(|h| h.path)
                .filter(|p| Path::new(p).starts_with(PROVISIONER_DIR))
            else {
                continue;
            };
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            {
                tracing::warn!(%path, error = %e, "cannot open a provisioned volume to non-root pods");
            }
        }
    })
}
