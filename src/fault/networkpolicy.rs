//! A network-level cut in a cluster: NetworkPolicies, owned by the drill, that
//! stop leafnode traffic (port 7422) between the cut zones' pods and the source
//! zone's pods, in both directions, and open nothing that was closed.
//!
//! NetworkPolicies can only allow, and they add up: once some policy selects
//! a pod for a direction, everything no policy allows is dropped. So what the
//! cut's policies allow depends on whether the namespace's own policies
//! already select the pods ([`Isolation`], read from the pods' labels when
//! the cut is made):
//! - Not selected (every connection was allowed): the cut's policies must
//!   allow what the zones need, or the drill would be an outage, and nothing
//!   else. Ingress to the source's pods: the client, monitor and metrics
//!   exporter ports from anywhere (the zone's users, the operator, scrapers:
//!   peers the operator cannot name; a drill must not blind the monitoring
//!   that watches it), the route port from the source zone's own pods, the
//!   leafnode port from the region's pods outside the cut zones (plus the
//!   uncut external zones by address). Egress from the cut zones' pods: DNS,
//!   and the route port to the cut zones' own pods. Only the ports the zones'
//!   containers listen on (`plan::ports`) are named: nothing else was
//!   listening, so nothing else needs to be let in.
//! - Already selected (a default-deny, or any policy of the user's): those
//!   policies already allow whatever the zones may do, and any allowance of
//!   the cut's would open what they close. The cut's policy for that
//!   direction allows nothing. The cut then holds only where the user's
//!   policies do not themselves allow 7422 between the zones; where they do,
//!   no policy can take it away, and the mirror-frozen proof fails the drill,
//!   which is the honest outcome.
//!
//! Leafnode clients other than the region's zones (other namespaces, other
//! regions, outside the cluster) are held off the source's leafnode port for
//! the length of the cut in a namespace without policies: the region's zones
//! are the only ones the spec knows. The exception is the region's external
//! zones that the cut leaves linked, each by its own address (an `ipBlock` of
//! one address, from its `external.url`), because CNIs differ on whether an
//! `ipBlock` also matches pod addresses and allowing `0.0.0.0/0` could leak
//! the cut. An uncut external zone known only by a host name cannot be named,
//! and such a drill is refused before any fault.
//!
//! Most CNIs (Calico, Antrea) evaluate a policy when a connection is set up
//! and let established connections live on. So after the policies land the
//! backend breaks the cut zones' established leafnode links through each
//! zone's system account ([`LeafLinks`]); their redials meet the policies.
//!
//! The operator's pod is not in the zones' network position, so it cannot
//! dial across the cut the way a zone would. What it can observe is whether
//! a zone's servers report a leafnode link: that is the probe when the
//! backend has system access to the zone. Without it (external zones) the
//! probe is [`FaultError::Unsupported`] and the isolation proof rests on the
//! mirror's last sequence staying frozen while the cut is on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use tokio::task::JoinHandle;

use super::leaflinks::LeafLinks;
use super::{DirectNetwork, FaultBackend, FaultError, Network, ZoneHost};
use crate::api::FaultRecord;
use crate::meta::{FIELD_MANAGER, labels};
use crate::plan::ports;

// The zones' container ports (`plan::ports`, from which the region
// controller builds them), as the NetworkPolicy API types them.
const LEAFNODE_PORT: i32 = ports::LEAFNODE_PORT as i32;
const CLIENT_PORT: i32 = ports::CLIENT_PORT as i32;
const CLUSTER_PORT: i32 = ports::CLUSTER_PORT as i32;
const MONITOR_PORT: i32 = ports::MONITOR_PORT as i32;
const EXPORTER_PORT: i32 = ports::EXPORTER_PORT as i32;
const DNS_PORT: i32 = 53;

/// Label naming the fault a policy belongs to.
pub const FAULT_LABEL: &str = "natsregion.io/fault";

/// Whether the namespace's own policies (any but this drill's) already
/// select the pods for a direction: then the pods are isolated for it, and
/// the cut's policy for it allows nothing (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Every pod of the source zone is selected for ingress.
    pub source_ingress: bool,
    /// Every pod of the cut zones is selected for egress.
    pub cut_egress: bool,
}

/// What a cut is about: everything the pure builder needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CutPlan {
    pub namespace: String,
    pub region: String,
    pub drill: String,
    pub source_zone: String,
    pub zones: Vec<String>,
    /// Fault id: names the policies and labels them.
    pub fault: String,
    pub owner: Option<OwnerReference>,
    /// When the policies must be gone: written on each, for the reaper.
    pub deadline: jiff::Timestamp,
    /// Addresses (CIDRs) of the region's external zones that are not cut:
    /// their servers dial the source from outside the cluster and must keep
    /// the leafnode port.
    pub keep_linked: Vec<String>,
    /// What the namespace's own policies already do to these pods.
    pub isolated: Isolation,
}

/// The two policies of one cut: ingress on the source zone's pods, egress on
/// the cut zones' pods. Pure; the backend applies what this returns.
pub fn cut_policies(plan: &CutPlan) -> Vec<NetworkPolicy> {
    let zone_pods = |zones: &[String], op: &str| LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::REGION.to_string(),
            plan.region.clone(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::ZONE.to_string(),
            operator: op.to_string(),
            values: Some(zones.to_vec()),
        }]),
    };
    let peer = |selector: LabelSelector| NetworkPolicyPeer {
        pod_selector: Some(selector),
        ..Default::default()
    };
    let source = vec![plan.source_zone.clone()];
    // The region's pods outside the cut zones (this namespace only: a
    // podSelector without a namespaceSelector).
    let mut leafnode_from = vec![peer(zone_pods(&plan.zones, "NotIn"))];
    leafnode_from.extend(plan.keep_linked.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..Default::default()
    }));
    let meta = |suffix: &str, zones: &[String]| ObjectMeta {
        name: Some(policy_name(&plan.fault, suffix)),
        namespace: Some(plan.namespace.clone()),
        labels: Some(BTreeMap::from([
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_VALUE.to_string(),
            ),
            (labels::REGION.to_string(), plan.region.clone()),
            (labels::DRILL.to_string(), plan.drill.clone()),
            (FAULT_LABEL.to_string(), label_value(&plan.fault)),
        ])),
        annotations: Some(BTreeMap::from([
            ("natsregion.io/cut-zones".to_string(), zones.join(",")),
            (
                super::deadline::ANNOTATION.to_string(),
                super::deadline::annotation_value(plan.deadline),
            ),
        ])),
        owner_references: plan.owner.clone().map(|o| vec![o]),
        ..Default::default()
    };
    let ingress_rules = if plan.isolated.source_ingress {
        Vec::new()
    } else {
        vec![
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![
                    tcp(CLIENT_PORT),
                    tcp(MONITOR_PORT),
                    tcp(EXPORTER_PORT),
                ]),
            },
            NetworkPolicyIngressRule {
                from: Some(vec![peer(zone_pods(&source, "In"))]),
                ports: Some(vec![tcp(CLUSTER_PORT)]),
            },
            NetworkPolicyIngressRule {
                from: Some(leafnode_from),
                ports: Some(vec![tcp(LEAFNODE_PORT)]),
            },
        ]
    };
    let ingress = NetworkPolicy {
        metadata: meta("ingress", &plan.zones),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(zone_pods(&source, "In")),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress_rules),
            egress: None,
        }),
    };
    let egress_rules = if plan.isolated.cut_egress {
        Vec::new()
    } else {
        vec![
            // Name resolution: the cluster's DNS, wherever it runs (a
            // Service, a node-local cache), so no peer can be named.
            NetworkPolicyEgressRule {
                to: None,
                ports: Some(vec![
                    NetworkPolicyPort {
                        protocol: Some("UDP".into()),
                        port: Some(IntOrString::Int(DNS_PORT)),
                        end_port: None,
                    },
                    tcp(DNS_PORT),
                ]),
            },
            // Routes between a cut zone's own servers. Nothing else is
            // dialed by a mirror zone's server but the source's leafnode
            // port, which is what the cut takes away.
            NetworkPolicyEgressRule {
                to: Some(vec![peer(zone_pods(&plan.zones, "In"))]),
                ports: Some(vec![tcp(CLUSTER_PORT)]),
            },
        ]
    };
    let egress = NetworkPolicy {
        metadata: meta("egress", &plan.zones),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(zone_pods(&plan.zones, "In")),
            policy_types: Some(vec!["Egress".into()]),
            ingress: None,
            egress: Some(egress_rules),
        }),
    };
    vec![ingress, egress]
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some("TCP".into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

/// Whether `selector` selects a pod labelled `labels` (the API's semantics:
/// every matchLabels entry and every expression must hold; an empty
/// selector selects every pod).
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // Unknown to this version: assume it selects, so the cut adds
            // nothing rather than open what such a policy might close.
            _ => true,
        }
    });
    exact && expressions
}

/// Whether `policy` isolates a pod labelled `labels` for `direction`
/// (`Ingress` or `Egress`): it selects the pod and has that type. The API
/// server fills in `policyTypes`; without it, Ingress always and Egress when
/// there are egress rules, as the API defines.
pub fn isolates(
    policy: &NetworkPolicy,
    direction: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    let typed = match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == direction),
        None => direction == "Ingress" || spec.egress.is_some(),
    };
    typed
        && spec
            .pod_selector
            .as_ref()
            .is_none_or(|s| selects(s, labels))
}

/// [`Isolation`] of the source's and the cut zones' pods (by their labels)
/// under `policies`, leaving out the cut policies of natsregion's drills.
/// No pods at all: not isolated (nothing to tell from).
pub fn isolation(
    policies: &[NetworkPolicy],
    source_pods: &[BTreeMap<String, String>],
    cut_pods: &[BTreeMap<String, String>],
) -> Isolation {
    let others: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| {
            !p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(FAULT_LABEL))
        })
        .collect();
    let all_isolated = |pods: &[BTreeMap<String, String>], direction: &str| {
        !pods.is_empty()
            && pods
                .iter()
                .all(|l| others.iter().any(|p| isolates(p, direction, l)))
    };
    Isolation {
        source_ingress: all_isolated(source_pods, "Ingress"),
        cut_egress: all_isolated(cut_pods, "Egress"),
    }
}

/// The CIDR a NetworkPolicy can name for an external zone at `url`
/// (`nats://host:port`): the host as a single address when it is an IP
/// literal; `None` for a host name, which a policy cannot name.
pub fn external_cidr(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, _port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(match host.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(ip) => format!("{ip}/32"),
        std::net::IpAddr::V6(ip) => format!("{ip}/128"),
    })
}

/// `<fault>-<suffix>`, cut to a DNS label (63) so it is valid everywhere.
pub fn policy_name(fault: &str, suffix: &str) -> String {
    let keep = 63 - suffix.len() - 1;
    let base: String = fault.chars().take(keep).collect();
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

/// A label value is at most 63 characters.
fn label_value(s: &str) -> String {
    let v: String = s.chars().take(63).collect();
    v.trim_end_matches(['-', '.', '_']).to_string()
}

/// Where the backend works: the drill's namespace, region and owner.
#[derive(Clone, Debug)]
pub struct NetworkPolicyTarget {
    pub namespace: String,
    pub region: String,
    pub drill: String,
    pub source_zone: String,
    /// The drill, so the policies go away with it whatever else happens.
    pub owner: Option<OwnerReference>,
}

/// Cuts with NetworkPolicies; heals by deleting them. Stateless apart from
/// deadline timers: a new instance for the same drill heals and lists what an
/// earlier one (or an earlier process) left.
pub struct NetworkPolicyBackend {
    api: Api<NetworkPolicy>,
    target: NetworkPolicyTarget,
    faults: AtomicU64,
    deadlines: Arc<Mutex<BTreeMap<String, JoinHandle<()>>>>,
    links: LeafLinks,
    /// External zone → its address, for the zones a cut leaves linked.
    external: BTreeMap<String, String>,
}

impl NetworkPolicyBackend {
    pub fn new(client: kube::Client, target: NetworkPolicyTarget) -> Self {
        Self {
            api: Api::namespaced(client, &target.namespace),
            target,
            faults: AtomicU64::new(0),
            deadlines: Arc::default(),
            links: LeafLinks::default(),
            external: BTreeMap::new(),
        }
    }

    /// The region's external zones by address (see [`external_cidr`]): a
    /// cut keeps the ones it does not cut linked.
    pub fn with_external_zones(mut self, external: BTreeMap<String, String>) -> Self {
        self.external = external;
        self
    }

    /// Zones whose leafnode links the backend can see and break through
    /// their system account (see [`LeafLinks`]).
    pub fn with_links(mut self, links: LeafLinks) -> Self {
        self.links = links;
        self
    }

    fn selector(&self) -> ListParams {
        ListParams::default().labels(&format!(
            "{}={},{}={}",
            labels::DRILL,
            label_value(&self.target.drill),
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE
        ))
    }

    /// Every policy this drill owns, by name.
    pub async fn policies(&self) -> Result<Vec<NetworkPolicy>, FaultError> {
        self.api
            .list(&self.selector())
            .await
            .map(|l| l.items)
            .map_err(|e| err("list NetworkPolicies", e))
    }

    /// Deletes every policy of this drill. Not found counts as deleted.
    pub async fn delete_all(&self) -> Result<(), FaultError> {
        delete_all(&self.api, &self.selector()).await
    }

    /// What the namespace's own policies already do to the source's and the
    /// cut zones' pods, read now: a policy the user adds during the cut is
    /// not seen (it can only narrow what the pods may do further).
    async fn isolation(&self, zones: &[String]) -> Result<Isolation, FaultError> {
        let policies = self
            .api
            .list(&ListParams::default())
            .await
            .map_err(|e| err("list NetworkPolicies", e))?
            .items;
        if policies.is_empty() {
            return Ok(Isolation::default());
        }
        let pods: Api<Pod> =
            Api::namespaced(self.api.clone().into_client(), &self.target.namespace);
        let labels_of =
            async |zones: &[String]| -> Result<Vec<BTreeMap<String, String>>, FaultError> {
                let selector = format!(
                    "{}={},{} in ({})",
                    labels::REGION,
                    self.target.region,
                    labels::ZONE,
                    zones.join(",")
                );
                Ok(pods
                    .list_metadata(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| err("list the zones' pods", e))?
                    .items
                    .into_iter()
                    .map(|p| p.metadata.labels.unwrap_or_default())
                    .collect())
            };
        let source = labels_of(std::slice::from_ref(&self.target.source_zone)).await?;
        let cut = labels_of(zones).await?;
        Ok(isolation(&policies, &source, &cut))
    }
}

/// The in-process deadline timers die with the backend, as they would with
/// the process: the deadline the reaper enforces is the one on the policies.
impl Drop for NetworkPolicyBackend {
    fn drop(&mut self) {
        for (_, t) in std::mem::take(&mut *self.deadlines.lock().expect("deadlines")) {
            t.abort();
        }
    }
}

/// Deletes every fault NetworkPolicy past its deadline (the annotation) that
/// `api` lists; returns their names. Policies without a deadline are left
/// alone: they were not written by a cut.
pub async fn reap_expired(
    api: &Api<NetworkPolicy>,
    now: jiff::Timestamp,
) -> Result<Vec<String>, FaultError> {
    let selector = ListParams::default().labels(&format!(
        "{FAULT_LABEL},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let list = api
        .list(&selector)
        .await
        .map_err(|e| err("list NetworkPolicies", e))?;
    let expired = list.items.into_iter().filter(|p| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::deadline::ANNOTATION))
            .and_then(|v| super::deadline::parse_annotation(v))
            .is_some_and(|d| super::deadline::expired(d, now))
    });
    let (reaped, first_err) = delete_each(api, expired).await;
    match first_err {
        Some(e) if reaped.is_empty() => Err(e),
        _ => Ok(reaped),
    }
}

async fn delete_all(api: &Api<NetworkPolicy>, selector: &ListParams) -> Result<(), FaultError> {
    let list = api
        .list(selector)
        .await
        .map_err(|e| err("list NetworkPolicies", e))?;
    let (_, first_err) = delete_each(api, list.items).await;
    first_err.map_or(Ok(()), Err)
}

/// Deletes each of `policies` in its own namespace, going on past failures;
/// not found counts as deleted. The ones deleted, and the first failure.
async fn delete_each(
    api: &Api<NetworkPolicy>,
    policies: impl IntoIterator<Item = NetworkPolicy>,
) -> (Vec<String>, Option<FaultError>) {
    let mut deleted = Vec::new();
    let mut first_err = None;
    for p in policies {
        let ns = p.metadata.namespace.unwrap_or_default();
        let name = p.metadata.name.unwrap_or_default();
        let in_ns: Api<NetworkPolicy> = Api::namespaced(api.clone().into_client(), &ns);
        match in_ns.delete(&name, &DeleteParams::default()).await {
            Ok(_) => deleted.push(format!("NetworkPolicy {ns}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                first_err.get_or_insert(err(&format!("delete NetworkPolicy {ns}/{name}"), e));
            }
        }
    }
    (deleted, first_err)
}

fn err(op: &str, e: impl std::fmt::Display) -> FaultError {
    FaultError::Command {
        command: format!("kubernetes: {op}"),
        message: e.to_string(),
    }
}

// In a cluster the zones run in their pods; placement and links are the
// region controller's business, so this backend places nothing itself.
impl Network for NetworkPolicyBackend {
    fn prepare_zone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<ZoneHost, FaultError>> {
        DirectNetwork.prepare_zone(zone)
    }
    fn leaf_route<'a>(
        &'a self,
        zone: &'a str,
        source_server: usize,
        upstream: std::net::SocketAddr,
    ) -> BoxFuture<'a, Result<std::net::SocketAddr, FaultError>> {
        Box::pin(async move {
            DirectNetwork
                .leaf_route(zone, source_server, upstream)
                .await
        })
    }
    fn leaf_advertise(&self, source_server: usize, listen: std::net::SocketAddr) -> Option<String> {
        DirectNetwork.leaf_advertise(source_server, listen)
    }
    fn leaf_routes_only(&self) -> bool {
        DirectNetwork.leaf_routes_only()
    }
}

impl FaultBackend for NetworkPolicyBackend {
    fn name(&self) -> &'static str {
        "networkPolicy"
    }

    fn cut<'a>(
        &'a self,
        zones: &'a [String],
        deadline: Duration,
    ) -> BoxFuture<'a, Result<FaultRecord, FaultError>> {
        Box::pin(async move {
            let n = self.faults.fetch_add(1, Ordering::Relaxed) + 1;
            let started = jiff::Timestamp::now();
            let id = format!("{}-cut{}-{}", self.target.drill, n, started.as_second());
            let plan = CutPlan {
                namespace: self.target.namespace.clone(),
                region: self.target.region.clone(),
                drill: self.target.drill.clone(),
                source_zone: self.target.source_zone.clone(),
                zones: zones.to_vec(),
                fault: id.clone(),
                owner: self.target.owner.clone(),
                deadline: super::deadline::at(started, deadline),
                keep_linked: self
                    .external
                    .iter()
                    .filter(|(zone, _)| !zones.contains(zone))
                    .map(|(_, cidr)| cidr.clone())
                    .collect(),
                isolated: self.isolation(zones).await?,
            };
            // The deadline is armed before the first policy lands.
            let task = tokio::spawn({
                let api = self.api.clone();
                let selector =
                    ListParams::default().labels(&format!("{FAULT_LABEL}={}", label_value(&id)));
                let id = id.clone();
                let deadlines = self.deadlines.clone();
                async move {
                    tokio::time::sleep(deadline).await;
                    tracing::warn!(fault = %id, "fault deadline reached without a heal; deleting its NetworkPolicies");
                    if let Err(e) = delete_all(&api, &selector).await {
                        tracing::error!(fault = %id, error = %e, "deadline heal failed");
                    }
                    deadlines.lock().expect("deadlines").remove(&id);
                }
            });
            self.deadlines
                .lock()
                .expect("deadlines")
                .insert(id.clone(), task);
            let pp = PatchParams::apply(FIELD_MANAGER).force();
            for policy in cut_policies(&plan) {
                let name = policy.metadata.name.clone().unwrap_or_default();
                if let Err(e) = self.api.patch(&name, &pp, &Patch::Apply(&policy)).await {
                    let _ = self.delete_all().await;
                    if let Some(t) = self.deadlines.lock().expect("deadlines").remove(&id) {
                        t.abort();
                    }
                    return Err(err(&format!("apply NetworkPolicy {name}"), e));
                }
            }
            // Most CNIs apply a policy to new connections only: break the
            // established leafnode links so their redials meet the policies.
            self.links.break_established(zones, "NetworkPolicy").await;
            Ok(super::fault_record(
                id,
                self.name(),
                zones,
                started,
                deadline,
            ))
        })
    }

    fn heal<'a>(&'a self, record: &'a FaultRecord) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let deleted = self.delete_all().await;
            if deleted.is_ok()
                && let Some(t) = self.deadlines.lock().expect("deadlines").remove(&record.id)
            {
                t.abort();
            }
            deleted
        })
    }

    /// Whether `zone`'s servers report a leafnode link, as their system
    /// account sees it. Without system access to the zone there is nothing
    /// to observe from the operator's pod, which is not in the zone's network
    /// position: `Unsupported`, and the mirror's frozen last sequence is the
    /// proof.
    fn probe<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<bool, FaultError>> {
        Box::pin(async move {
            if self.links.knows(zone) {
                return self.links.linked(zone).await;
            }
            Err(FaultError::Unsupported {
                backend: "networkPolicy",
                what: "system access to the zone to see its leafnode links (a probe from inside the zone's network is not possible from the operator's pod); the cut is proven by the mirror's frozen last sequence"
                    .into(),
            })
        })
    }

    fn leftovers(&self) -> BoxFuture<'_, Result<Vec<String>, FaultError>> {
        Box::pin(async move {
            Ok(self
                .policies()
                .await?
                .into_iter()
                .map(|p| {
                    format!(
                        "NetworkPolicy {}/{}",
                        p.metadata.namespace.unwrap_or_default(),
                        p.metadata.name.unwrap_or_default()
                    )
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn plan() -> CutPlan {
        CutPlan {
            namespace: "ns".into(),
            region: "east".into(),
            drill: "d".into(),
            source_zone: "a".into(),
            zones: vec!["b".into(), "c".into()],
            fault: "d-cut1-1700000000".into(),
            owner: None,
            deadline: jiff::Timestamp::from_second(1_700_000_060).unwrap(),
            keep_linked: Vec::new(),
            isolated: Isolation::default(),
        }
    }

    fn ports(p: &[NetworkPolicyPort]) -> Vec<(String, i32, Option<i32>)> {
        p.iter()
            .map(|p| {
                let port = match p.port {
                    Some(IntOrString::Int(n)) => n,
                    _ => panic!("numeric ports only"),
                };
                (p.protocol.clone().unwrap_or_default(), port, p.end_port)
            })
            .collect()
    }

    /// Every port any rule of `policy` names, with its protocol.
    fn named_ports(policy: &NetworkPolicy) -> BTreeSet<(String, i32)> {
        let spec = policy.spec.as_ref().unwrap();
        let rules = spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| r.ports.iter().flatten())
            .chain(
                spec.egress
                    .iter()
                    .flatten()
                    .flat_map(|r| r.ports.iter().flatten()),
            );
        rules
            .map(|p| {
                assert_eq!(p.end_port, None, "single ports only, no ranges");
                let (proto, port, _) = ports(std::slice::from_ref(p))[0].clone();
                (proto, port)
            })
            .collect()
    }

    /// The zone requirement of a selector: its first expression's key,
    /// operator and values.
    fn zone_requirement(selector: Option<&LabelSelector>) -> (String, String, Vec<String>) {
        let req = &selector.unwrap().match_expressions.as_ref().unwrap()[0];
        let values = req.values.clone().unwrap_or_default();
        (req.key.clone(), req.operator.clone(), values)
    }

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn tcp_ports(ports: &[i32]) -> BTreeSet<(String, i32)> {
        ports.iter().map(|p| ("TCP".to_string(), *p)).collect()
    }

    #[test]
    fn ingress_on_source_pods_names_only_the_zones_ports_and_refuses_leafnodes_from_the_cut_zones()
    {
        let policies = cut_policies(&plan());
        let ingress = &policies[0];
        assert_eq!(
            ingress.metadata.name.as_deref(),
            Some("d-cut1-1700000000-ingress")
        );
        let spec = ingress.spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_string()][..])
        );
        let sel = spec.pod_selector.as_ref().unwrap();
        assert_eq!(sel.match_labels.as_ref().unwrap()[labels::REGION], "east");
        assert_eq!(
            zone_requirement(Some(sel)),
            (labels::ZONE.into(), "In".into(), zones(&["a"]))
        );
        // The zone's four NATS ports and the exporter sidecar's, nothing
        // else: a default-deny namespace's other ports stay closed.
        assert_eq!(
            named_ports(ingress),
            tcp_ports(&[4222, 6222, 7422, 7777, 8222])
        );
        let rules = spec.ingress.as_ref().unwrap();
        // Client, monitor and metrics from anywhere: the zone's users, the
        // operator, Prometheus (a drill must not blind what watches it).
        assert!(rules[0].from.is_none());
        assert_eq!(
            ports(rules[0].ports.as_ref().unwrap()),
            [
                ("TCP".into(), 4222, None),
                ("TCP".into(), 8222, None),
                ("TCP".into(), 7777, None)
            ]
        );
        // Routes only from the source zone's own pods.
        assert_eq!(
            ports(rules[1].ports.as_ref().unwrap()),
            [("TCP".into(), 6222, None)]
        );
        let peers = rules[1].from.as_ref().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(
            zone_requirement(peers[0].pod_selector.as_ref()),
            (labels::ZONE.into(), "In".into(), zones(&["a"]))
        );
        // 7422 only from the region's pods outside the cut zones, in this namespace.
        assert_eq!(
            ports(rules[2].ports.as_ref().unwrap()),
            [("TCP".into(), 7422, None)]
        );
        let peers = rules[2].from.as_ref().unwrap();
        assert_eq!(peers.len(), 1);
        assert!(peers[0].namespace_selector.is_none());
        let zone_peer = peers[0].pod_selector.as_ref().unwrap();
        assert_eq!(
            zone_peer.match_labels.as_ref().unwrap()[labels::REGION],
            "east"
        );
        assert_eq!(
            zone_requirement(Some(zone_peer)),
            (labels::ZONE.into(), "NotIn".into(), zones(&["b", "c"]))
        );
    }

    #[test]
    fn egress_on_cut_zone_pods_allows_only_dns_and_their_own_routes() {
        let policies = cut_policies(&plan());
        let egress = &policies[1];
        let spec = egress.spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Egress".to_string()][..])
        );
        assert_eq!(
            zone_requirement(spec.pod_selector.as_ref()),
            (labels::ZONE.into(), "In".into(), zones(&["b", "c"]))
        );
        let mut want = tcp_ports(&[53, 6222]);
        want.insert(("UDP".into(), 53));
        assert_eq!(named_ports(egress), want, "no leafnode port at all");
        let rules = spec.egress.as_ref().unwrap();
        assert!(rules[0].to.is_none(), "DNS wherever it runs");
        let peers = rules[1].to.as_ref().unwrap();
        assert_eq!(
            zone_requirement(peers[0].pod_selector.as_ref()),
            (labels::ZONE.into(), "In".into(), zones(&["b", "c"]))
        );
    }

    #[test]
    fn pods_the_namespace_already_isolates_get_no_allowance_from_the_cut() {
        let mut p = plan();
        p.isolated = Isolation {
            source_ingress: true,
            cut_egress: true,
        };
        let policies = cut_policies(&p);
        for policy in &policies {
            assert!(named_ports(policy).is_empty(), "{policy:?}");
            let spec = policy.spec.as_ref().unwrap();
            assert!(spec.ingress.iter().flatten().next().is_none());
            assert!(spec.egress.iter().flatten().next().is_none());
            // Still selects the pods, so the cut is listed, reaped and healed alike.
            assert!(spec.pod_selector.is_some());
        }
        // One direction each.
        p.isolated.cut_egress = false;
        let policies = cut_policies(&p);
        assert!(named_ports(&policies[0]).is_empty());
        assert!(!named_ports(&policies[1]).is_empty());
    }

    fn pod(zone: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::NAME.to_string(), "nats".to_string()),
            (labels::REGION.to_string(), "east".to_string()),
            (labels::ZONE.to_string(), zone.to_string()),
        ])
    }

    fn policy(types: &[&str], selector: LabelSelector, fault: bool) -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                labels: fault.then(|| BTreeMap::from([(FAULT_LABEL.to_string(), "f".to_string())])),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector),
                policy_types: Some(types.iter().map(|t| t.to_string()).collect()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn isolation_follows_the_apis_selector_and_policy_type_rules() {
        let everything = LabelSelector::default();
        let (a, b) = ([pod("a")], [pod("b")]);
        // A default-deny of both directions isolates everyone.
        let deny = policy(&["Ingress", "Egress"], everything.clone(), false);
        assert_eq!(
            isolation(std::slice::from_ref(&deny), &a, &b),
            Isolation {
                source_ingress: true,
                cut_egress: true
            }
        );
        // Ingress only: the cut zones' egress stays open.
        let ingress_only = policy(&["Ingress"], everything.clone(), false);
        assert_eq!(
            isolation(&[ingress_only], &a, &b),
            Isolation {
                source_ingress: true,
                cut_egress: false
            }
        );
        // A policy of another app's pods, or a drill's own cut, does not count.
        let other = policy(
            &["Ingress", "Egress"],
            LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            },
            false,
        );
        let cut = policy(&["Ingress", "Egress"], everything.clone(), true);
        assert_eq!(isolation(&[other, cut], &a, &b), Isolation::default());
        // Expressions: NotIn matches pods without the label too.
        let not_b = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: labels::ZONE.into(),
                operator: "NotIn".into(),
                values: Some(vec!["b".into()]),
            }]),
            ..Default::default()
        };
        assert!(selects(&not_b, &pod("a")));
        assert!(!selects(&not_b, &pod("b")));
        assert!(selects(&not_b, &BTreeMap::new()));
        // Every pod must be isolated, and no pods tells nothing.
        let only_a = policy(
            &["Ingress"],
            LabelSelector {
                match_labels: Some(BTreeMap::from([(labels::ZONE.into(), "a".into())])),
                ..Default::default()
            },
            false,
        );
        assert!(isolation(std::slice::from_ref(&only_a), &a, &b).source_ingress);
        assert!(
            !isolation(std::slice::from_ref(&only_a), &[pod("a"), pod("c")], &b).source_ingress
        );
        assert_eq!(isolation(&[deny], &[], &[]), Isolation::default());
    }

    #[test]
    fn policies_are_labelled_for_the_drill_and_owned_by_it() {
        let mut p = plan();
        p.owner = Some(OwnerReference {
            api_version: "natsregion.io/v1alpha1".into(),
            kind: "PartitionDrill".into(),
            name: "d".into(),
            uid: "u".into(),
            ..Default::default()
        });
        for policy in cut_policies(&p) {
            let l = policy.metadata.labels.as_ref().unwrap();
            assert_eq!(l[labels::DRILL], "d");
            assert_eq!(l[FAULT_LABEL], "d-cut1-1700000000");
            assert_eq!(
                policy.metadata.owner_references.as_ref().unwrap()[0].uid,
                "u"
            );
        }
    }

    #[test]
    fn external_zones_left_uncut_keep_the_leafnode_port_by_address() {
        let mut p = plan();
        p.keep_linked = vec!["203.0.113.7/32".into()];
        let leafnode_peers = |p: &CutPlan| {
            cut_policies(p)[0]
                .spec
                .as_ref()
                .unwrap()
                .ingress
                .as_ref()
                .unwrap()[2]
                .from
                .clone()
                .unwrap()
        };
        let blocks: Vec<String> = leafnode_peers(&p)
            .iter()
            .filter_map(|p| p.ip_block.as_ref().map(|b| b.cidr.clone()))
            .collect();
        assert_eq!(blocks, ["203.0.113.7/32"]);
        // Without uncut external zones, no address is let in at all.
        assert!(leafnode_peers(&plan()).iter().all(|p| p.ip_block.is_none()));
        assert_eq!(
            external_cidr("nats://203.0.113.7:4222").as_deref(),
            Some("203.0.113.7/32")
        );
        assert_eq!(
            external_cidr("tls://[2001:db8::7]:4222").as_deref(),
            Some("2001:db8::7/128")
        );
        assert_eq!(external_cidr("tls://nats.example.com:4222"), None);
    }

    #[test]
    fn long_names_stay_valid() {
        let name = policy_name(&"x".repeat(100), "ingress");
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-ingress"));
    }
}
