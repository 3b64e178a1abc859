//! The toxiproxy backend as the operator uses it: the proxies already exist
//! (created by whoever wired the mirror zones' leafnode remotes through them)
//! and are found by name, `<prefix>-<zone>-s<n>`, so any operator process,
//! a restarted one included, can cut, heal and list them.
//!
//! Healing and listing leftovers are [`ToxiproxyBackend`]'s own (by prefix);
//! only the cut is done here, because `ToxiproxyBackend` cuts the proxies it
//! created itself and this process did not create them.
//!
//! In a cluster the operator also deploys a Toxiproxy per region on demand
//! ([`deployment`], [`service`]). What is missing there: the region
//! controller's config builder does not yet point mirror zones' leafnode
//! remotes at the proxies (nor create them), so a `toxiproxy` drill against a
//! managed zone fails its cut with "no proxies for zone ..." until it does.

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

use crate::api::{FaultRecord, Toxic};
use crate::fault::toxiproxy::{ToxiproxyBackend, answers_info};
use crate::fault::{FaultBackend, FaultError, Network, ZoneHost};
use crate::operator::labels;

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

/// The Service in front of it: the API, and one port per proxy added later.
pub fn service(namespace: &str, region: &str, owner: Option<OwnerReference>) -> Service {
    let labels = toxiproxy_labels(region);
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
            ports: Some(vec![ServicePort {
                name: Some("api".into()),
                port: TOXIPROXY_API_PORT,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
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
        let s = service("ns", "east", None);
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
