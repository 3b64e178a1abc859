//! The operator as a pod: README step 3, `helm install` of charts/natsregion
//! with the locally assembled image `natsregion:dev`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::scenarios::{Cluster, OPERATOR_NS};
use crate::util::{Outcome, err, secs};

pub use natsregion::testenv::node::cluster::OPERATOR_SELECTOR as SELECTOR;
use natsregion::testenv::node::cluster::{install_operator, ready_operator_pod};

pub async fn helm_install(c: &mut Cluster<'_>) -> Outcome {
    let started = Instant::now();
    install_operator(c.node)?;
    c.figure(format!("helm install --wait: {}", secs(started.elapsed())));
    let pod = ready_pod(c, Duration::from_secs(60)).await?;
    // What the chart promises, as the kubelet ran it.
    let spec = pod.spec.as_ref().ok_or("operator pod has no spec")?;
    let container = &spec.containers[0];
    let sc = container
        .security_context
        .as_ref()
        .ok_or("no container securityContext")?;
    if sc.read_only_root_filesystem != Some(true) {
        return Err("operator container root filesystem is not read-only".into());
    }
    let pod_sc = spec
        .security_context
        .as_ref()
        .ok_or("no pod securityContext")?;
    if pod_sc.run_as_non_root != Some(true) || pod_sc.run_as_user == Some(0) {
        return Err(format!("operator pod may run as root: {pod_sc:?}"));
    }
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let restarts = status
        .and_then(|s| s.first())
        .map_or(0, |s| s.restart_count);
    if restarts > 0 {
        return Err(format!("operator container restarted {restarts} times"));
    }
    Ok(())
}

/// The operator pod once it is Ready (readiness probe passed).
pub async fn ready_pod(c: &Cluster<'_>, timeout: Duration) -> Outcome<Pod> {
    ready_operator_pod(&c.client, timeout).await
}

/// Deletes the operator pod with no grace period, as `kubectl delete pod
/// --force --grace-period=0` does; returns its name.
pub async fn force_delete(c: &Cluster<'_>) -> Outcome<String> {
    let pod = ready_pod(c, Duration::from_secs(10)).await?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), OPERATOR_NS);
    pods.delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .map_err(err)?;
    Ok(name)
}

/// Scales the operator's Deployment to `replicas`.
pub async fn scale(c: &Cluster<'_>, replicas: i32) -> Outcome {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(c.client.clone(), OPERATOR_NS);
    let list = deployments
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .map_err(err)?;
    let deployment = list.items.first().ok_or("no operator Deployment")?;
    deployments
        .patch(
            &kube::ResourceExt::name_any(deployment),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// Stops (SIGSTOP) the operator's process on this host, the node's
/// containers being host processes: from then on it runs nothing, not even
/// its SIGTERM handler, until the kubelet's SIGKILL. What a crash looks like
/// to the cluster, where a force-deleted pod would still get SIGTERM and
/// heal on its way out. Returns the pid.
pub fn freeze_process() -> Outcome<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(err)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_operator = args.first().is_some_and(|a| a.ends_with(b"/natsregion"))
            && args.get(1).is_some_and(|a| *a == b"run");
        if is_operator {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => {
            // SAFETY: kill(2) on the operator process found above.
            let rc = unsafe { libc::kill(*pid as libc::pid_t, libc::SIGSTOP) };
            if rc != 0 {
                return Err(format!(
                    "SIGSTOP {pid}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(*pid)
        }
        other => Err(format!("expected one operator process, found {other:?}")),
    }
}
