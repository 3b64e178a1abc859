//! The toxiproxy backend as the operator uses it: the proxies already exist
//! (created by whoever wired the mirror zones' leafnode remotes through them)
//! and are found by name, `<prefix>-<zone>-s<n>`, so any operator process,
//! a restarted one included, can cut, heal and list them.
//!
//! Healing and listing leftovers are [`ToxiproxyBackend`]'s own (by prefix);
//! only the cut is done here, because `ToxiproxyBackend` cuts the proxies it
//! created itself and this process did not create them.
//!
//! In a cluster, without an override, the operator deploys a Toxiproxy per
//! region on demand ([`ensure`]: Deployment + Service owned by the region, and
//! one proxy per mirror zone, `<region>-<zone>-s0` listening on
//! [`proxy_port`] and dialing the source zone's leafnode Service).
//!
//! What is missing for that to cut anything: the region controller's config
//! builder (`region::children::zone_addresses`) still points mirror zones'
//! leafnode remotes at the source's leafnode Service, not at
//! `<region>-toxiproxy.<ns>.svc:<proxy_port>`, and the source advertises that
//! Service, which a remote would redial around a cut (DESIGN.md fact 1); it
//! must advertise an address that does not bypass the proxy. Until both
//! change, a `toxiproxy` drill against managed zones cuts proxies nobody
//! uses: the mirror keeps moving and claim 1 fails with "partition leaked",
//! which is the honest verdict. External zones wired through a Toxiproxy of
//! their own work today (give the operator its URL and prefix).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::api::RegionMirror;
use crate::api::{FaultRecord, Toxic};
use crate::fault::toxiproxy::{ToxiproxyBackend, answers_info};
use crate::fault::{FaultBackend, FaultError, Network, ZoneHost};
use crate::operator::labels;
use crate::operator::region::names;
use kube::{Resource, ResourceExt};

/// Image of the per-region Toxiproxy.
pub const TOXIPROXY_IMAGE: &str = "ghcr.io/shopify/toxiproxy:2.12.0";
pub const TOXIPROXY_API_PORT: i32 = 8474;

/// An existing Toxiproxy: its API and the prefix of the proxies to drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToxiproxyTarget {
    pub api: String,
    pub prefix: String,
}

impl ToxiproxyTarget {
    /// The Toxiproxy the operator deploys for `region` in `namespace`.
    pub fn in_cluster(namespace: &str, region: &str) -> Self {
        Self {
            api: format!(
                "http://{}.{namespace}.svc:{TOXIPROXY_API_PORT}",
                toxiproxy_name(region)
            ),
            prefix: region.to_string(),
        }
    }
}

pub fn toxiproxy_name(region: &str) -> String {
    format!("{region}-toxiproxy")
}

fn toxiproxy_labels(region: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_string(), "toxiproxy".to_string()),
        (labels::REGION.to_string(), region.to_string()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
    ])
}

/// The per-region Toxiproxy Deployment (one replica; proxies live in memory,
/// so a restarted pod has none until they are created again).
pub fn deployment(namespace: &str, region: &str, owner: Option<OwnerReference>) -> Deployment {
    let labels = toxiproxy_labels(region);
    Deployment {
        metadata: ObjectMeta {
            name: Some(toxiproxy_name(region)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "toxiproxy".into(),
                        image: Some(TOXIPROXY_IMAGE.into()),
                        args: Some(vec![
                            "-host=0.0.0.0".into(),
                            format!("-port={TOXIPROXY_API_PORT}"),
                        ]),
                        ports: Some(vec![ContainerPort {
                            name: Some("api".into()),
                            container_port: TOXIPROXY_API_PORT,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// First port of the proxies in the per-region Toxiproxy; mirror zone `k`
/// (in spec order, counting mirror zones only) listens on `PROXY_BASE_PORT + k`.
pub const PROXY_BASE_PORT: i32 = 17422;

/// One proxy of the per-region Toxiproxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySpec {
    pub name: String,
    pub zone: String,
    pub port: i32,
    /// `host:port` of the source zone's leafnode Service.
    pub upstream: String,
}

/// The port mirror zone `zone` of `region` dials through the proxy.
pub fn proxy_port(region: &RegionMirror, zone: &str) -> Option<i32> {
    region
        .spec
        .mirror_zones()
        .position(|z| z.name == zone)
        .map(|k| PROXY_BASE_PORT + k as i32)
}

/// The proxies of the per-region Toxiproxy: one per managed mirror zone.
pub fn proxies(region: &RegionMirror) -> Vec<ProxySpec> {
    let ns = region.namespace().unwrap_or_default();
    let name = region.name_any();
    let Some(source) = region.spec.source_zone() else {
        return Vec::new();
    };
    region
        .spec
        .mirror_zones()
        .filter(|z| z.external.is_none())
        .filter_map(|z| {
            Some(ProxySpec {
                name: format!("{name}-{}-s0", z.name),
                zone: z.name.clone(),
                port: proxy_port(region, &z.name)?,
                upstream: format!(
                    "{}:{}",
                    names::leafnode_host(&ns, &name, &source.name),
                    names::LEAFNODE_PORT
                ),
            })
        })
        .collect()
}

/// The Service in front of it: the API, and one port per proxy.
pub fn service(
    namespace: &str,
    region: &str,
    proxies: &[ProxySpec],
    owner: Option<OwnerReference>,
) -> Service {
    let labels = toxiproxy_labels(region);
    let mut ports = vec![ServicePort {
        name: Some("api".into()),
        port: TOXIPROXY_API_PORT,
        ..Default::default()
    }];
    ports.extend(proxies.iter().map(|p| ServicePort {
        name: Some(format!("leaf-{}", p.port)),
        port: p.port,
        ..Default::default()
    }));
    Service {
        metadata: ObjectMeta {
            name: Some(toxiproxy_name(region)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deploys the region's Toxiproxy (owned by the region) if it is not there,
/// waits up to `wait` for it to answer, and creates the proxies it lacks.
pub async fn ensure(
    client: &kube::Client,
    region: &RegionMirror,
    wait: Duration,
) -> Result<ToxiproxyTarget, String> {
    let ns = region.namespace().unwrap_or_default();
    let name = region.name_any();
    let owner = region.controller_owner_ref(&());
    let plan = proxies(region);
    apply(client, &deployment(&ns, &name, owner.clone())).await?;
    apply(client, &service(&ns, &name, &plan, owner)).await?;
    let target = ToxiproxyTarget::in_cluster(&ns, &name);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client without TLS builds");
    let started = std::time::Instant::now();
    loop {
        match http.get(format!("{}/version", target.api)).send().await {
            Ok(r) if r.status().is_success() => break,
            other => {
                if started.elapsed() >= wait {
                    return Err(format!(
                        "Toxiproxy {} did not answer within {wait:?} ({})",
                        target.api,
                        match other {
                            Ok(r) => format!("HTTP {}", r.status()),
                            Err(e) => e.to_string(),
                        }
                    ));
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    for p in &plan {
        let body = json!({
            "name": p.name,
            "listen": format!("0.0.0.0:{}", p.port),
            "upstream": p.upstream,
            "enabled": true,
        });
        let resp = http
            .post(format!("{}/proxies", target.api))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("create proxy {}: {e}", p.name))?;
        // 409: it exists already (an earlier drill made it).
        if !resp.status().is_success() && resp.status().as_u16() != 409 {
            return Err(format!("create proxy {}: HTTP {}", p.name, resp.status()));
        }
    }
    Ok(target)
}

async fn apply<K>(client: &kube::Client, obj: &K) -> Result<(), String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    crate::operator::region::apply::apply(client, obj)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Deserialize)]
struct ProxyInfo {
    name: String,
    listen: String,
    enabled: bool,
}

/// Cuts proxies found by name; heals and lists through [`ToxiproxyBackend`].
pub struct ClusterToxiproxy {
    target: ToxiproxyTarget,
    backend: ToxiproxyBackend,
    http: reqwest::Client,
    deadlines: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    faults: Mutex<u64>,
}

impl ClusterToxiproxy {
    pub fn new(target: ToxiproxyTarget) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client without TLS builds");
        Self {
            backend: ToxiproxyBackend::with_prefix(&target.api, true, &target.prefix),
            target,
            http,
            deadlines: Arc::default(),
            faults: Mutex::new(0),
        }
    }

    fn api(&self) -> &str {
        self.target.api.trim_end_matches('/')
    }

    fn err(op: &str, e: impl std::fmt::Display) -> FaultError {
        FaultError::Toxiproxy {
            op: op.to_string(),
            message: e.to_string(),
        }
    }

    /// The zone's proxies, `<prefix>-<zone>-s<n>`.
    async fn zone_proxies(&self, zone: &str) -> Result<Vec<ProxyInfo>, FaultError> {
        let op = "list proxies";
        let resp = self
            .http
            .get(format!("{}/proxies", self.api()))
            .send()
            .await
            .map_err(|e| Self::err(op, format!("{} unreachable: {e}", self.api())))?;
        if !resp.status().is_success() {
            return Err(Self::err(op, format!("HTTP {}", resp.status())));
        }
        let all: BTreeMap<String, ProxyInfo> = resp.json().await.map_err(|e| Self::err(op, e))?;
        let head = format!("{}-{zone}-s", self.target.prefix);
        Ok(all
            .into_values()
            .filter(|p| {
                p.name
                    .strip_prefix(&head)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect())
    }

    /// Where to dial a proxy's listen address from here: an unspecified
    /// address means the host of the API.
    fn dial_addr(&self, listen: &str) -> Option<SocketAddr> {
        let addr: SocketAddr = listen.parse().ok()?;
        if !addr.ip().is_unspecified() {
            return Some(addr);
        }
        let host = self
            .api()
            .split("://")
            .nth(1)?
            .rsplit_once(':')
            .map(|(h, _)| h)?;
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        Some(SocketAddr::new(ip, addr.port()))
    }
}

async fn set_enabled(
    http: &reqwest::Client,
    api: &str,
    proxy: &str,
    enabled: bool,
) -> Result<(), FaultError> {
    let op = format!(
        "{} proxy {proxy}",
        if enabled { "enable" } else { "disable" }
    );
    let resp = http
        .post(format!("{api}/proxies/{proxy}"))
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .map_err(|e| ClusterToxiproxy::err(&op, e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(ClusterToxiproxy::err(
            &op,
            format!("HTTP {}", resp.status()),
        ))
    }
}

impl Network for ClusterToxiproxy {
    fn prepare_zone<'a>(&'a self, _zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>> {
        Box::pin(async { Ok(ZoneHost::loopback()) })
    }
    fn leaf_route<'a>(
        &'a self,
        _zone: &'a str,
        _source_server: usize,
        upstream: SocketAddr,
    ) -> BoxFuture<'a, Result<SocketAddr, FaultError>> {
        Box::pin(async move { Ok(upstream) })
    }
    fn leaf_advertise(&self, _source_server: usize, _listen: SocketAddr) -> Option<String> {
        None
    }
}

impl FaultBackend for ClusterToxiproxy {
    fn name(&self) -> &'static str {
        "toxiproxy"
    }

    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Result<FaultRecord, FaultError>> {
        Box::pin(async move {
            let mut proxies = Vec::new();
            for zone in zones {
                let found = self.zone_proxies(zone).await?;
                if found.is_empty() {
                    return Err(Self::err(
                        "cut",
                        format!(
                            "no proxies for zone {zone} (named {}-{zone}-s<n>) at {}: the zone's leafnode remotes do not run through this Toxiproxy",
                            self.target.prefix,
                            self.api()
                        ),
                    ));
                }
                proxies.extend(found.into_iter().map(|p| p.name));
            }
            let injected = jiff::Timestamp::now();
            let id = {
                let mut n = self.faults.lock().expect("faults");
                *n += 1;
                format!("{}-cut{}-{}", self.target.prefix, *n, injected.as_second())
            };
            // Armed before the first proxy goes down: a dropped future or a
            // failure half way still ends in a heal.
            let task = tokio::spawn({
                let http = self.http.clone();
                let api = self.api().to_string();
                let proxies = proxies.clone();
                let id = id.clone();
                let deadlines = self.deadlines.clone();
                async move {
                    tokio::time::sleep(deadline).await;
                    tracing::warn!(fault = %id, "fault deadline reached without a heal; enabling its proxies");
                    for p in &proxies {
                        if let Err(e) = set_enabled(&http, &api, p, true).await {
                            tracing::error!(fault = %id, error = %e, "deadline heal failed");
                        }
                    }
                    deadlines.lock().expect("deadlines").remove(&id);
                }
            });
            self.deadlines
                .lock()
                .expect("deadlines")
                .insert(id.clone(), task);
            for p in &proxies {
                if let Err(e) = set_enabled(&self.http, self.api(), p, false).await {
                    let record = crate::fault::fault_record(
                        id.clone(),
                        self.name(),
                        zones,
                        injected,
                        deadline,
                    );
                    let _ = self.heal(&record).await;
                    return Err(e);
                }
            }
            Ok(crate::fault::fault_record(
                id,
                self.name(),
                zones,
                injected,
                deadline,
            ))
        })
    }

    fn heal<'a>(&'a self, record: &'a FaultRecord) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let healed = self.backend.heal(record).await;
            if healed.is_ok()
                && let Some(t) = self.deadlines.lock().expect("deadlines").remove(&record.id)
            {
                t.abort();
            }
            healed
        })
    }

    /// Dials each proxy the zone's remotes are configured with. It does not
    /// see the source's advertised leafnode URLs (what a remote may learn and
    /// redial around the proxy): the mirror-frozen proof covers that leak.
    fn probe<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<bool, FaultError>> {
        Box::pin(async move {
            let proxies = self.zone_proxies(zone).await?;
            if proxies.is_empty() {
                return Err(FaultError::UnknownZone(zone.to_string()));
            }
            let addrs: Vec<SocketAddr> = proxies
                .iter()
                .filter_map(|p| self.dial_addr(&p.listen))
                .collect();
            let answers = futures::future::join_all(
                addrs
                    .into_iter()
                    .map(|a| answers_info(a, Duration::from_millis(1500))),
            )
            .await;
            Ok(answers.into_iter().any(|up| up) || proxies.iter().any(|p| p.enabled))
        })
    }

    fn leftovers(&self) -> BoxFuture<'_, Result<Vec<String>, FaultError>> {
        self.backend.leftovers()
    }

    fn apply_toxics<'a>(
        &'a self,
        _zone: &'a str,
        toxics: &'a [Toxic],
    ) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if toxics.is_empty() {
                // The heal removes every toxic this prefix carries.
                return self.backend.clear_toxics().await;
            }
            Err(FaultError::Unsupported {
                backend: "toxiproxy",
                what: "toxics on proxies it did not create (not supported by the operator yet)"
                    .into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_region_toxiproxy_serves_its_api() {
        let d = deployment("ns", "east", None);
        assert_eq!(d.metadata.name.as_deref(), Some("east-toxiproxy"));
        let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
        assert!(
            c.image
                .as_deref()
                .unwrap()
                .starts_with("ghcr.io/shopify/toxiproxy")
        );
        let s = service("ns", "east", &[], None);
        assert_eq!(
            s.spec.as_ref().unwrap().selector,
            d.spec.selector.match_labels
        );
        assert_eq!(
            ToxiproxyTarget::in_cluster("ns", "east").api,
            "http://east-toxiproxy.ns.svc:8474"
        );
    }

    #[test]
    fn each_managed_mirror_zone_gets_a_proxy_to_the_source_leafnode_service() {
        let region: RegionMirror = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "RegionMirror",
            "metadata": {"name": "east", "namespace": "ns"},
            "spec": {
                "stream": {"name": "EVENTS", "subjects": ["events.>"]},
                "zones": [
                    {"name": "b", "role": "mirror"},
                    {"name": "a", "role": "source"},
                    {"name": "c", "role": "mirror"},
                    {"name": "x", "role": "mirror", "domain": "x", "external": {"url": "nats://x:4222"}},
                ],
            },
        }))
        .unwrap();
        let p = proxies(&region);
        assert_eq!(
            p.iter()
                .map(|p| (p.name.as_str(), p.port))
                .collect::<Vec<_>>(),
            [("east-b-s0", 17422), ("east-c-s0", 17423)]
        );
        assert!(p.iter().all(|p| p.upstream == "east-a-leaf.ns.svc:7422"));
        let svc = service("ns", "east", &p, None);
        let ports: Vec<i32> = svc
            .spec
            .unwrap()
            .ports
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [8474, 17422, 17423]);
    }

    #[test]
    fn unspecified_listen_addresses_are_dialed_at_the_api_host() {
        let t = ClusterToxiproxy::new(ToxiproxyTarget {
            api: "http://127.0.0.1:8474".into(),
            prefix: "p".into(),
        });
        assert_eq!(
            t.dial_addr("[::]:5000"),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            t.dial_addr("127.0.0.2:5000"),
            Some("127.0.0.2:5000".parse().unwrap())
        );
    }
}
