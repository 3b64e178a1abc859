//! Pure builders: a validated region to the Kubernetes objects of its
//! managed zones. No I/O; the reconciler applies what these return with Server-Side
//! Apply, and the tests compare the cluster with them.
//!
//! Credentials never appear in a ConfigMap: the server configuration refers to
//! environment variables (`$NATS_APP_PASSWORD`), which the StatefulSet fills
//! from the credentials Secrets. nats-server parses an environment value as
//! configuration, so each variable the config names is the Secret value in
//! double quotes (built with Kubernetes' `$(VAR)` expansion): a password such
//! as `12k` or `yes` then stays a string instead of becoming a number or a bool.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::names;
use super::object_meta::{meta, selector, zone_labels};
use super::validated::ValidatedRegion;
use crate::api::{ZoneRole, ZoneSpec};
use crate::operator::error::{Error, Result};
use crate::plan::ports::{CLIENT_PORT, CLUSTER_PORT, EXPORTER_PORT, LEAFNODE_PORT, MONITOR_PORT};
use crate::plan::{
    RegionCredentials, ServerAddress, TlsFiles, UserPass, ZoneAddresses, ZonePlan, leaf_url,
};
use crate::tls::{CA_KEY, CERT_KEY, KEY_KEY};

/// Pod template annotation carrying a hash of the zone's configuration: a
/// changed config changes the template, and the StatefulSet rolls its pods.
pub const CONFIG_HASH: &str = "natsregion.io/config-hash";
/// Where the JetStream volume is mounted and the store lives.
pub const DATA_DIR: &str = "/data";
pub const STORE_DIR: &str = "/data/jetstream";
pub const CONFIG_DIR: &str = "/etc/nats-config";
/// Where the zone's certificate Secret (cert-manager format) is mounted.
pub const TLS_DIR: &str = "/etc/nats-tls";
pub use super::certificates::CERTIFICATE_HASH;

/// Lame duck: wait this long before moving clients away, then spread their
/// disconnects over `LAME_DUCK_DURATION`; the pod's grace period covers both.
pub const LAME_DUCK_GRACE: &str = "10s";
pub const LAME_DUCK_DURATION: &str = "30s";
pub const TERMINATION_GRACE_SECONDS: i64 = 60;

/// The user the servers run as. The official images' nats-server needs no
/// root and writes only its JetStream store (the data volume, group-owned
/// through `fsGroup`), so the root filesystem can be read-only.
pub const NATS_UID: i64 = 1000;
/// Mode of the mounted certificate files: readable by the servers' group only.
pub const TLS_FILE_MODE: i32 = 0o440;

/// Environment variables the server configuration refers to.
pub mod env {
    pub const APP_USER: &str = "NATS_APP_USER";
    pub const APP_PASSWORD: &str = "NATS_APP_PASSWORD";
    pub const SYS_USER: &str = "NATS_SYS_USER";
    pub const SYS_PASSWORD: &str = "NATS_SYS_PASSWORD";
    /// `NATS_LEAF_URL_<k>`: the k-th leafnode remote URL, credentials included.
    pub const LEAF_URL: &str = "NATS_LEAF_URL_";
    /// Suffix of the raw Secret values; the unsuffixed names are quoted.
    pub const RAW: &str = "_RAW";
}

/// Every object of one managed zone.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneChildren {
    pub zone: String,
    pub config_map: ConfigMap,
    pub headless: Service,
    pub client: Service,
    /// Source zone only.
    pub leafnode: Option<Service>,
    pub statefulset: StatefulSet,
    pub pdb: PodDisruptionBudget,
}

/// The kinds a zone's objects come in: what pruning walks, so a kind added
/// to [`ZoneChildren`] is pruned too (the match in [`ZoneChildren::metas`]
/// and the prune dispatch are exhaustive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChildKind {
    ConfigMap,
    Service,
    StatefulSet,
    PodDisruptionBudget,
}

impl ChildKind {
    pub const ALL: [ChildKind; 4] = [
        ChildKind::ConfigMap,
        ChildKind::Service,
        ChildKind::StatefulSet,
        ChildKind::PodDisruptionBudget,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::ConfigMap => "ConfigMap",
            ChildKind::Service => "Service",
            ChildKind::StatefulSet => "StatefulSet",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
        }
    }
}

impl ZoneChildren {
    /// Every object's kind and metadata, in apply order.
    pub fn metas(&self) -> Vec<(ChildKind, &ObjectMeta)> {
        let mut out = vec![
            (ChildKind::ConfigMap, &self.config_map.metadata),
            (ChildKind::Service, &self.headless.metadata),
            (ChildKind::Service, &self.client.metadata),
        ];
        if let Some(l) = &self.leafnode {
            out.push((ChildKind::Service, &l.metadata));
        }
        out.push((ChildKind::StatefulSet, &self.statefulset.metadata));
        out.push((ChildKind::PodDisruptionBudget, &self.pdb.metadata));
        out
    }

    /// The same, to relabel or re-own every object.
    pub fn metas_mut(&mut self) -> Vec<&mut ObjectMeta> {
        let mut out = vec![
            &mut self.config_map.metadata,
            &mut self.headless.metadata,
            &mut self.client.metadata,
        ];
        if let Some(l) = &mut self.leafnode {
            out.push(&mut l.metadata);
        }
        out.push(&mut self.statefulset.metadata);
        out.push(&mut self.pdb.metadata);
        out
    }

    /// Names of this zone's objects of `kind`.
    pub fn names_of(&self, kind: ChildKind) -> impl Iterator<Item = String> + '_ {
        self.metas()
            .into_iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, m)| m.name.clone().unwrap_or_default())
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("builder JSON matches the k8s-openapi type")
}

/// The objects of every managed zone, in spec order. External zones get none.
pub fn region_children(valid: &ValidatedRegion) -> Result<Vec<ZoneChildren>> {
    valid
        .region
        .spec
        .zones
        .iter()
        .filter(|z| z.external.is_none())
        .map(|z| zone_children(valid, z))
        .collect()
}

/// Addressing of a managed zone in the cluster: servers bind every interface,
/// peers find each other through the headless Service, mirror zones dial the
/// source zone's leafnode Service, and the source advertises that Service
/// (docs/architecture.md fact 2: never its pods' own addresses, which would bypass a cut).
/// With `leafnode.proxy: toxiproxy` mirror zones dial the region's Toxiproxy
/// instead and the source advertises a refused port on it
/// (`crate::operator::toxiproxy`).
pub fn zone_addresses(valid: &ValidatedRegion, zone: &ZoneSpec) -> ZoneAddresses {
    let (ns, name) = (&valid.namespace, &valid.name);
    let source = valid.source_zone();
    let servers = (0..zone.servers.max(0))
        .map(|i| ServerAddress {
            name: names::pod(name, &zone.name, i),
            host: "0.0.0.0".to_string(),
            client_port: CLIENT_PORT,
            cluster_port: CLUSTER_PORT,
            monitor_port: MONITOR_PORT,
            leafnode_port: zone.is_source().then_some(LEAFNODE_PORT),
            leaf_advertise: zone.is_source().then(|| {
                // Through a proxy: an address that refuses (see `toxiproxy`).
                crate::operator::toxiproxy::source_advertise(valid).unwrap_or_else(|| {
                    format!(
                        "{}:{LEAFNODE_PORT}",
                        names::leafnode_host(ns, name, &zone.name)
                    )
                })
            }),
            store_dir: STORE_DIR.to_string(),
        })
        .collect();
    let routes = (0..zone.servers.max(0))
        .map(|i| {
            format!(
                "nats-route://{}:{CLUSTER_PORT}",
                names::pod_host(ns, name, &zone.name, i)
            )
        })
        .collect();
    // A managed mirror zone can only dial a managed source zone: an external
    // source's leafnode address is not known (planning then fails with NoLeafRemotes).
    let (leaf_remotes, leaf_remotes_only) = match source {
        Some(s) if !zone.is_source() && s.external.is_none() => {
            match crate::operator::toxiproxy::leaf_remotes(valid, zone) {
                // `leafnode.proxy: toxiproxy`: one proxy per source server,
                // and only those are dialled (a source pod's own address,
                // which its INFO advertises, bypasses the proxy).
                Some(proxies) => (proxies, true),
                None => (
                    vec![format!(
                        "{}:{LEAFNODE_PORT}",
                        names::leafnode_host(ns, name, &s.name)
                    )],
                    false,
                ),
            }
        }
        _ => (vec![], false),
    };
    ZoneAddresses {
        servers,
        routes,
        leaf_remotes,
        leaf_remotes_only,
        tls: valid.tls_enabled().then(|| TlsFiles {
            cert_file: format!("{TLS_DIR}/{CERT_KEY}"),
            key_file: format!("{TLS_DIR}/{KEY_KEY}"),
            ca_file: format!("{TLS_DIR}/{CA_KEY}"),
            route_identity: names::route_identity(ns, name, &zone.name),
        }),
    }
}

fn placeholder(var: &str) -> String {
    format!("__natsregion_env_{var}__")
}

/// Credentials that render as unique markers, replaced by `$VAR` references.
fn placeholder_credentials() -> RegionCredentials {
    RegionCredentials {
        app: UserPass {
            user: placeholder(env::APP_USER),
            password: placeholder(env::APP_PASSWORD),
        },
        system: UserPass {
            user: placeholder(env::SYS_USER),
            password: placeholder(env::SYS_PASSWORD),
        },
    }
}

/// One configuration file per server (`<pod>.conf`), credentials as `$VAR`.
pub fn config_files(
    valid: &ValidatedRegion,
    zone: &ZoneSpec,
) -> Result<(BTreeMap<String, String>, ZoneAddresses)> {
    let addresses = zone_addresses(valid, zone);
    let creds = placeholder_credentials();
    let plan =
        ZonePlan::build(&valid.region.spec, &zone.name, &addresses, &creds).map_err(|source| {
            Error::Plan {
                zone: zone.name.clone(),
                source,
            }
        })?;
    let files = plan
        .servers
        .iter()
        .map(|server| {
            let mut text = server.render();
            for (k, addr) in addresses.leaf_remotes.iter().enumerate() {
                let quoted = format!("\"{}\"", leaf_url(&creds.app, addr));
                text = text.replace(&quoted, &format!("${}{k}", env::LEAF_URL));
            }
            for var in [
                env::APP_USER,
                env::APP_PASSWORD,
                env::SYS_USER,
                env::SYS_PASSWORD,
            ] {
                text = text.replace(&format!("\"{}\"", placeholder(var)), &format!("${var}"));
            }
            debug_assert!(!text.contains("__natsregion_env_"), "{text}");
            // Lame duck mode (the preStop hook) must finish within the pod's
            // termination grace period; the server's default takes 2 minutes.
            text.push_str(&format!(
                "lame_duck_grace_period: \"{LAME_DUCK_GRACE}\"\nlame_duck_duration: \"{LAME_DUCK_DURATION}\"\n"
            ));
            (format!("{}.conf", server.address.name), text)
        })
        .collect();
    Ok((files, addresses))
}

/// Hash of the rendered configuration (hex xxh3), for the pod template annotation.
pub fn config_hash(files: &BTreeMap<String, String>) -> String {
    let mut all = String::new();
    for (name, text) in files {
        all.push_str(name);
        all.push('\0');
        all.push_str(text);
        all.push('\0');
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(all.as_bytes()))
}

pub fn zone_children(valid: &ValidatedRegion, zone: &ZoneSpec) -> Result<ZoneChildren> {
    let region = &valid.region;
    let name = valid.name.clone();
    let z = zone.name.as_str();
    let (files, addresses) = config_files(valid, zone)?;
    let hash = config_hash(&files);
    let zl = zone_labels(&name, z);
    let sel = selector(&name, z);

    let config_map = ConfigMap {
        metadata: meta(region, names::config_map(&name, z), zl.clone())?,
        data: Some(files),
        ..Default::default()
    };

    let mut headless: Service = typed(json!({
        "spec": {
            "clusterIP": "None",
            // Routes must resolve before a server is ready: a zone's servers
            // only become ready once they have formed their cluster.
            "publishNotReadyAddresses": true,
            "selector": sel,
            "ports": [
                {"name": "client", "port": CLIENT_PORT},
                {"name": "cluster", "port": CLUSTER_PORT},
                {"name": "monitor", "port": MONITOR_PORT},
            ],
        }
    }));
    headless.metadata = meta(region, names::headless_service(&name, z), zl.clone())?;

    let mut client: Service = typed(json!({
        "spec": {
            "selector": sel,
            "ports": [{"name": "client", "port": CLIENT_PORT}],
        }
    }));
    client.metadata = meta(region, names::client_service(&name, z), zl.clone())?;

    let leafnode = if zone.is_source() {
        let mut svc: Service = typed(json!({
            "spec": {
                "selector": sel,
                "ports": [{"name": "leafnodes", "port": LEAFNODE_PORT}],
            }
        }));
        svc.metadata = meta(region, names::leafnode_service(&name, z), zl.clone())?;
        Some(svc)
    } else {
        None
    };

    let statefulset = statefulset(valid, zone, &addresses, &hash)?;

    let mut pdb: PodDisruptionBudget = typed(json!({
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": sel},
        }
    }));
    pdb.metadata = meta(region, names::pdb(&name, z), zl)?;

    Ok(ZoneChildren {
        zone: zone.name.clone(),
        config_map,
        headless,
        client,
        leafnode,
        statefulset,
        pdb,
    })
}

/// prometheus-nats-exporter beside the server: it reads the server's JSON
/// monitoring endpoints on localhost (plain HTTP: monitoring never runs TLS,
/// see docs/architecture.md) and serves them as Prometheus metrics.
fn exporter_container(image: &str) -> serde_json::Value {
    json!({
        "name": "exporter",
        "image": image,
        "args": [
            format!("-port={EXPORTER_PORT}"),
            "-connz", "-routez", "-subz", "-varz", "-leafz", "-jsz=all", "-healthz",
            "-use_internal_server_name",
            format!("http://localhost:{MONITOR_PORT}"),
        ],
        // The NATS chart's port and name, so scrape configs written for it fit.
        "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
    })
}

fn secret_env(var: &str, secret: &str, key: &str) -> serde_json::Value {
    json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

fn statefulset(
    valid: &ValidatedRegion,
    zone: &ZoneSpec,
    addresses: &ZoneAddresses,
    config_hash: &str,
) -> Result<StatefulSet> {
    let (name, image, secrets) = (&valid.name, &valid.image, &valid.credentials.refs);
    let z = zone.name.as_str();
    let sel = selector(name, z);
    let mut pod_labels = zone_labels(name, z);
    pod_labels.extend(sel.clone());

    let raw = |v: &str| format!("{v}{}", env::RAW);
    let mut envs = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        secret_env(&raw(env::APP_USER), &secrets.app, "user"),
        secret_env(&raw(env::APP_PASSWORD), &secrets.app, "password"),
        secret_env(&raw(env::SYS_USER), &secrets.system, "user"),
        secret_env(&raw(env::SYS_PASSWORD), &secrets.system, "password"),
    ];
    for var in [
        env::APP_USER,
        env::APP_PASSWORD,
        env::SYS_USER,
        env::SYS_PASSWORD,
    ] {
        envs.push(json!({"name": var, "value": format!("\"$({})\"", raw(var))}));
    }
    for (k, addr) in addresses.leaf_remotes.iter().enumerate() {
        envs.push(json!({
            "name": format!("{}{k}", env::LEAF_URL),
            "value": format!(
                "\"nats-leaf://$({}):$({})@{addr}\"",
                raw(env::APP_USER),
                raw(env::APP_PASSWORD)
            ),
        }));
    }

    let certificate = valid.zone_certificate(z);
    let mut ports = vec![
        json!({"name": "client", "containerPort": CLIENT_PORT}),
        json!({"name": "cluster", "containerPort": CLUSTER_PORT}),
        json!({"name": "monitor", "containerPort": MONITOR_PORT}),
    ];
    if zone.role == ZoneRole::Source {
        ports.push(json!({"name": "leafnodes", "containerPort": LEAFNODE_PORT}));
    }
    let health = |period: i32, failures: i32| {
        json!({
            "httpGet": {"path": "/healthz?js-enabled-only=true", "port": MONITOR_PORT},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        })
    };

    let mut node_selector = zone.scheduling.node_selector.clone();
    if let Some(tz) = &zone.scheduling.topology_zone {
        node_selector.insert("topology.kubernetes.io/zone".to_string(), tz.clone());
    }
    let mut pvc = json!({
        "metadata": {"name": "data", "labels": zone_labels(name, z)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": zone.storage.size}},
        }
    });
    if let Some(class) = &zone.storage.class_name {
        pvc["spec"]["storageClassName"] = json!(class);
    }

    let mut pod_spec = json!({
        // Lame duck mode (grace + duration, see the config) fits in here.
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        // Locked down: the Pod Security Standards' `restricted` profile.
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": NATS_UID,
            "runAsGroup": NATS_UID,
            "fsGroup": NATS_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": sel},
        }],
        "containers": [{
            "name": "nats",
            "image": image,
            // nats-server is PID 1, so the preStop hook can signal it by pid.
            "command": ["nats-server"],
            "args": ["--config", format!("{CONFIG_DIR}/$(POD_NAME).conf")],
            "env": envs,
            "ports": ports,
            "readinessProbe": health(5, 3),
            "livenessProbe": health(10, 30),
            "lifecycle": {"preStop": {"exec": {"command": ["nats-server", "--signal", "ldm=1"]}}},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "config", "mountPath": CONFIG_DIR},
                {"name": "data", "mountPath": DATA_DIR},
            ],
        }],
        "volumes": [{"name": "config", "configMap": {"name": names::config_map(name, z)}}],
    });
    if !node_selector.is_empty() {
        pod_spec["nodeSelector"] = json!(node_selector);
    }
    if let Some(exporter) = &valid.exporter_image {
        pod_spec["containers"]
            .as_array_mut()
            .expect("containers is a list")
            .push(exporter_container(exporter));
    }
    let mut annotations = json!({CONFIG_HASH: config_hash});
    if let Some(cert) = &certificate {
        pod_spec["volumes"]
            .as_array_mut()
            .expect("volumes is a list")
            .push(json!({
                "name": "tls",
                "secret": {"secretName": cert.secret, "defaultMode": TLS_FILE_MODE},
            }));
        pod_spec["containers"][0]["volumeMounts"]
            .as_array_mut()
            .expect("volumeMounts is a list")
            .push(json!({"name": "tls", "mountPath": TLS_DIR, "readOnly": true}));
        annotations[CERTIFICATE_HASH] = json!(cert.fingerprint);
    }

    let mut sts: StatefulSet = typed(json!({
        "spec": {
            "replicas": zone.servers,
            "serviceName": names::headless_service(name, z),
            // Every server must start for the zone to elect a JetStream leader,
            // and a pod is only ready after that: ordered start would deadlock.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": sel},
            "persistentVolumeClaimRetentionPolicy": {
                // spec.deletionPolicy decides whether deleting the region (or
                // removing the zone) deletes its data; scaling keeps it.
                "whenDeleted": valid.region.spec.deletion_policy.when_deleted(),
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": annotations,
                },
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [pvc],
        }
    }));
    sts.metadata = meta(
        &valid.region,
        names::statefulset(name, z),
        zone_labels(name, z),
    )?;
    Ok(sts)
}

#[cfg(test)]
mod tests;
