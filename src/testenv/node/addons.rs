//! What a cluster needs beyond its processes: cluster DNS (CoreDNS as a pod),
//! a default StorageClass (the controller manager's hostPath provisioner), and
//! the readiness probe, a pod that must resolve a Service name.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::super::Error;
use super::{CLUSTER_DOMAIN, COREDNS_IMAGE, DNS_IP, RESOLVE_IMAGE};

const MANAGER: &str = "natsregion-testenv";

/// Server-side applies each object (any kind: apiVersion and kind say which).
pub async fn apply_all(client: &Client, objects: &[Value]) -> Result<(), Error> {
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = format!("{}s", kind.to_lowercase());
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: if plural.ends_with("ss") {
                format!("{}es", &plural[..plural.len() - 1])
            } else {
                plural
            },
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    }
    Ok(())
}

pub fn storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        // kube-controller-manager --enable-hostpath-provisioner: directories
        // under /tmp/hostpath_pv (opened to non-root pods by
        // storage::open_provisioned_volumes), deleted with their claims.
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    })
}

pub fn coredns() -> Vec<Value> {
    let ns = "kube-system";
    let labels = json!({"k8s-app": "kube-dns"});
    let corefile = format!(
        ".:53 {{\n    errors\n    health :8080\n    ready :8181\n    \
         kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        pods insecure\n        \
         fallthrough in-addr.arpa ip6.arpa\n        ttl 5\n    }}\n    cache 5\n}}\n"
    );
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": ns},
            "data": {"Corefile": corefile},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": true}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": DNS_IP.to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        }),
    ]
}

/// Runs a pod that resolves `kubernetes.default` through cluster DNS and
/// waits for it to succeed: the DNS pod, the Service VIP (kube-proxy), the
/// pod network and the kubelet all took part.
pub async fn resolve_probe(client: &Client, timeout: Duration) -> Result<Duration, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = "natsregion-resolve-probe";
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "resolve",
                "image": RESOLVE_IMAGE,
                "imagePullPolicy": "Never",
                "args": [format!("kubernetes.default.svc.{CLUSTER_DOMAIN}"), "60"],
            }],
        },
    }))
    .expect("probe pod deserializes");
    let started = Instant::now();
    let mut last = String::new();
    // The `default` ServiceAccount appears a moment after the namespace; until
    // then admission refuses pods.
    loop {
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let _ = pods
                    .delete(name, &DeleteParams::default().grace_period(0))
                    .await;
            }
            Err(e) => last = e.to_string(),
        }
        if started.elapsed() > timeout {
            return Err(probe_timeout(timeout, last));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    loop {
        let p = pods.get(name).await?;
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        match phase.as_str() {
            "Succeeded" => break,
            "Failed" => {
                let logs = pods
                    .logs(name, &Default::default())
                    .await
                    .unwrap_or_default();
                return Err(Error::Command {
                    command: format!("pod {name} (resolve kubernetes.default)"),
                    output: logs,
                });
            }
            _ => last = format!("pod {} phase {phase:?}", p.name_any()),
        }
        if started.elapsed() > timeout {
            return Err(probe_timeout(timeout, last));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let _ = pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
    Ok(took)
}

fn probe_timeout(after: Duration, last: String) -> Error {
    Error::Timeout {
        what: "a pod to resolve kubernetes.default".into(),
        after,
        last,
        log: Default::default(),
        tail: String::new(),
    }
}
