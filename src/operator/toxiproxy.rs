//! `spec.leafnode.proxy: toxiproxy`: the region's leafnode links run through
//! a Toxiproxy the region owns (`<region>-toxiproxy`, Deployment + Service),
//! so a `toxiproxy` drill can cut them by disabling proxies.
//!
//! One proxy per (managed mirror zone, source server), named
//! `<region>-<zone>-s<i>` (what [`ToxiproxyBackend::adopt`] parses), listening
//! on [`proxy_port`] and dialing that source server's own leafnode address
//! through the headless Service. Mirror zone remotes list the proxies, one
//! URL per source server, as they list the source servers without a proxy.
//!
//! The source servers advertise [`ADVERTISE_PORT`] on the Toxiproxy Service,
//! a port no proxy ever listens on (docs/architecture.md fact 2: a remote redials what
//! the hub advertises, around any proxy). A remote that learns it gets a
//! refused connection and keeps dialing its configured proxies. Advertising a
//! source server's own proxy address instead would not hold: every source
//! server has one proxy per mirror zone, and a cut of zone b must not leave b
//! a path through zone c's proxy.
//!
//! Builders are pure; [`sync_proxies`] creates the proxies over the API, and
//! [`reconcile`] applies (or removes) the objects and syncs.
//!
//! [`ToxiproxyBackend::adopt`]: crate::fault::ToxiproxyBackend::adopt

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::region::names;
use super::region::validated::ValidatedRegion;
use super::ssa;
use crate::api::{LeafnodeProxy, RegionMirror, ZoneSpec};
use crate::fault::FaultError;
use crate::fault::toxiproxy::api::{ToxiproxyApi, proxy_name};
use crate::meta::labels;
use crate::operator::context::OperatorPods;
use crate::operator::error::Result;
use crate::plan::ports::LEAFNODE_PORT;

/// Image of the per-region Toxiproxy.
pub const TOXIPROXY_IMAGE: &str = "ghcr.io/shopify/toxiproxy:2.12.0";
pub const TOXIPROXY_API_PORT: i32 = 8474;
/// What the source servers advertise: on the Toxiproxy Service, never a proxy.
pub const ADVERTISE_PORT: i32 = 17421;
/// The user the Toxiproxy runs as: the `nonroot` user of distroless images,
/// which the image's static binary needs nothing from.
pub const TOXIPROXY_UID: i64 = 65532;
/// Mirror zone `k` (spec order, mirror zones only), source server `i` listens
/// on `PROXY_BASE_PORT + 10 k + i` (a zone has at most 9 servers).
pub const PROXY_BASE_PORT: i32 = 17422;

pub use super::region::names::{toxiproxy_host, toxiproxy_name};

/// The API URL of the region's Toxiproxy, from inside the cluster.
pub fn api_url(namespace: &str, region: &str) -> String {
    format!(
        "http://{}:{TOXIPROXY_API_PORT}",
        toxiproxy_host(namespace, region)
    )
}

pub fn enabled(region: &RegionMirror) -> bool {
    region.spec.leafnode.proxy == LeafnodeProxy::Toxiproxy
}

/// One proxy of the region's Toxiproxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySpec {
    /// `<region>-<zone>-s<source_server>`.
    pub name: String,
    pub zone: String,
    pub source_server: i32,
    pub port: i32,
    /// `host:port` of the source server's leafnode listener.
    pub upstream: String,
}

/// The port mirror zone `zone` dials to reach source server `i`.
pub fn proxy_port(region: &RegionMirror, zone: &str, i: i32) -> Option<i32> {
    region
        .spec
        .mirror_zones()
        .position(|z| z.name == zone)
        .map(|k| PROXY_BASE_PORT + 10 * k as i32 + i)
}

/// Every proxy the region needs: none unless `leafnode.proxy` is
/// `toxiproxy`, and only between managed mirror zones and a managed source.
pub fn proxies(valid: &ValidatedRegion) -> Vec<ProxySpec> {
    let (ns, name, region) = (&valid.namespace, &valid.name, &valid.region);
    let Some(source) = region.spec.source_zone() else {
        return Vec::new();
    };
    if !enabled(region) || source.external.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for zone in region.spec.mirror_zones().filter(|z| z.external.is_none()) {
        for i in 0..source.servers.max(0) {
            let Some(port) = proxy_port(region, &zone.name, i) else {
                continue;
            };
            out.push(ProxySpec {
                name: proxy_name(name, &zone.name, i as usize),
                zone: zone.name.clone(),
                source_server: i,
                port,
                upstream: format!(
                    "{}:{LEAFNODE_PORT}",
                    names::pod_host(ns, name, &source.name, i)
                ),
            });
        }
    }
    out
}

/// Leafnode remotes (`host:port`, source server order) of mirror zone `zone`
/// through the proxy; `None` when the zone does not dial through one.
pub fn leaf_remotes(valid: &ValidatedRegion, zone: &ZoneSpec) -> Option<Vec<String>> {
    let host = toxiproxy_host(&valid.namespace, &valid.name);
    let remotes: Vec<String> = proxies(valid)
        .into_iter()
        .filter(|p| p.zone == zone.name)
        .map(|p| format!("{host}:{}", p.port))
        .collect();
    (!remotes.is_empty()).then_some(remotes)
}

/// What the source servers advertise as their leafnode URL when the links run
/// through the proxy; `None` otherwise.
pub fn source_advertise(valid: &ValidatedRegion) -> Option<String> {
    if proxies(valid).is_empty() {
        return None;
    }
    Some(format!(
        "{}:{ADVERTISE_PORT}",
        toxiproxy_host(&valid.namespace, &valid.name)
    ))
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

fn object_meta(namespace: &str, region: &str, owner: Option<OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: Some(toxiproxy_name(region)),
        namespace: Some(namespace.to_string()),
        labels: Some(toxiproxy_labels(region)),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    }
}

/// The region's Toxiproxy Deployment: one replica. Proxies live in memory, so
/// a restarted pod has none until the region controller creates them again.
pub fn deployment(namespace: &str, region: &str, owner: Option<OwnerReference>) -> Deployment {
    let labels = toxiproxy_labels(region);
    Deployment {
        metadata: object_meta(namespace, region, owner),
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
                    // Locked down like the zones' pods: the Pod Security
                    // Standards' `restricted` profile. Toxiproxy keeps its
                    // proxies in memory and listens above 1024, so it needs
                    // no capability and no writable file.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(TOXIPROXY_UID),
                        run_as_group: Some(TOXIPROXY_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![Container {
                        name: "toxiproxy".into(),
                        image: Some(TOXIPROXY_IMAGE.into()),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            privileged: Some(false),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        // No CPU limit: every leafnode byte of the region
                        // passes through this one process, and throttling
                        // it would be a slow link nobody declared.
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_string(), Quantity("50m".into())),
                                ("memory".to_string(), Quantity("32Mi".into())),
                            ])),
                            limits: Some(BTreeMap::from([(
                                "memory".to_string(),
                                Quantity("256Mi".into()),
                            )])),
                            ..Default::default()
                        }),
                        args: Some(vec![
                            "-host=0.0.0.0".into(),
                            format!("-port={TOXIPROXY_API_PORT}"),
                        ]),
                        ports: Some(vec![ContainerPort {
                            name: Some("api".into()),
                            container_port: TOXIPROXY_API_PORT,
                            ..Default::default()
                        }]),
                        readiness_probe: Some(Probe {
                            http_get: Some(HTTPGetAction {
                                path: Some("/version".into()),
                                port: IntOrString::Int(TOXIPROXY_API_PORT),
                                ..Default::default()
                            }),
                            period_seconds: Some(5),
                            ..Default::default()
                        }),
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

/// The Service in front of it: the API, the refused advertise port, and one
/// port per proxy.
pub fn service(
    namespace: &str,
    region: &str,
    proxies: &[ProxySpec],
    owner: Option<OwnerReference>,
) -> Service {
    let port = |name: String, port: i32| ServicePort {
        name: Some(name),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    let mut ports = vec![
        port("api".into(), TOXIPROXY_API_PORT),
        // Nothing listens behind it: a learned leafnode URL that is refused.
        port("leaf-advertise".into(), ADVERTISE_PORT),
    ];
    ports.extend(
        proxies
            .iter()
            .map(|p| port(format!("leaf-{}", p.port), p.port)),
    );
    Service {
        metadata: object_meta(namespace, region, owner),
        spec: Some(ServiceSpec {
            selector: Some(toxiproxy_labels(region)),
            ports: Some(ports),
            // One replica carries every leafnode link of the region: a slow
            // readiness answer under load must not take it out of the
            // endpoints, which would be a partition nobody declared.
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Who may reach the region's Toxiproxy pod, on which port. Its API (8474)
/// has no authentication, and whoever reaches it can cut or heal the region:
/// only the operator's pods (`operator`, in their namespace) may. The proxy
/// ports and the advertise port stay open to the region's own pods (its
/// zones dial the proxies; a remote that learned the advertise port must be
/// refused at once, not left waiting on a dropped packet). Nothing else of the
/// cluster dials the Toxiproxy, so nothing else is let in.
pub fn api_network_policy(
    namespace: &str,
    region: &str,
    proxies: &[ProxySpec],
    operator: &OperatorPods,
    owner: Option<OwnerReference>,
) -> NetworkPolicy {
    let tcp = |port: i32| NetworkPolicyPort {
        protocol: Some("TCP".into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    };
    let mut leaf_ports = vec![tcp(ADVERTISE_PORT)];
    leaf_ports.extend(proxies.iter().map(|p| tcp(p.port)));
    NetworkPolicy {
        metadata: object_meta(namespace, region, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(toxiproxy_labels(region)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    // One peer with both selectors: the operator's pods in
                    // the operator's namespace (two peers would let in any
                    // pod of that namespace, and such pods anywhere).
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                NAMESPACE_NAME_LABEL.to_string(),
                                operator.namespace.clone(),
                            )])),
                            ..Default::default()
                        }),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(operator.labels.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ports: Some(vec![tcp(TOXIPROXY_API_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                labels::REGION.to_string(),
                                region.to_string(),
                            )])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ports: Some(leaf_ports),
                },
            ]),
            egress: None,
        }),
    }
}

/// Kubernetes' own label on every namespace.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn port_of(listen: &str) -> Option<i32> {
    listen.rsplit_once(':')?.1.parse().ok()
}

/// Makes the proxies at `api` under `<prefix>-` match `plan`: creates the
/// missing ones, recreates those whose port or upstream changed, deletes the
/// rest. Never enables or disables one that is right: a drill may hold it cut.
/// Returns what it did, for the log.
pub async fn sync_proxies(
    api: &ToxiproxyApi,
    prefix: &str,
    plan: &[ProxySpec],
) -> std::result::Result<Vec<String>, FaultError> {
    let existing = api.proxies().await?;
    let is_current = |name: &str| {
        existing.get(name).is_some_and(|p| {
            plan.iter().any(|want| {
                want.name == name
                    && port_of(&p.listen) == Some(want.port)
                    && p.upstream == want.upstream
            })
        })
    };
    let ours = format!("{prefix}-");
    let mut done = Vec::new();
    for name in existing.keys() {
        if name.starts_with(&ours) && !is_current(name) {
            api.delete(name).await?;
            done.push(format!("deleted {name}"));
        }
    }
    for want in plan.iter().filter(|w| !is_current(&w.name)) {
        api.create(
            &want.name,
            &format!("0.0.0.0:{}", want.port),
            &want.upstream,
        )
        .await?;
        done.push(format!("created {}", want.name));
    }
    Ok(done)
}

/// With `leafnode.proxy: toxiproxy`: applies the Toxiproxy Deployment,
/// Service and, when `api_policy` names the operator's pods, the
/// NetworkPolicy that keeps everyone else off its API; then syncs the
/// proxies. Without: deletes them if the region owns them. A Toxiproxy that
/// does not answer before its pod is ready is not a failure (the mirror zones
/// just cannot link until it does); one that is ready and still cannot be
/// synced returns the problem, for an Event.
pub async fn reconcile(
    client: &kube::Client,
    valid: &ValidatedRegion,
    api_policy: Option<&OperatorPods>,
) -> Result<Option<String>> {
    let (ns, name) = (&valid.namespace, &valid.name);
    let object = toxiproxy_name(name);
    if !enabled(&valid.region) {
        ssa::delete_owned::<Deployment>(client, ns, &object, &valid.uid).await?;
        ssa::delete_owned::<Service>(client, ns, &object, &valid.uid).await?;
        ssa::delete_owned::<NetworkPolicy>(client, ns, &object, &valid.uid).await?;
        return Ok(None);
    }
    let owner = valid.owner()?;
    let plan = proxies(valid);
    // Before the pod: an API that no one may reach yet is better than one
    // that anyone could, even for a moment.
    match api_policy {
        Some(operator) => {
            let policy = api_network_policy(ns, name, &plan, operator, Some(owner.clone()));
            ssa::apply(client, &policy).await?;
        }
        None => ssa::delete_owned::<NetworkPolicy>(client, ns, &object, &valid.uid).await?,
    }
    let stored = ssa::apply(client, &deployment(ns, name, Some(owner.clone()))).await?;
    ssa::apply(client, &service(ns, name, &plan, Some(owner))).await?;
    let ready = stored.status.and_then(|s| s.ready_replicas).unwrap_or(0) > 0;
    let api = ToxiproxyApi::new(api_url(ns, name), Duration::from_secs(5));
    match sync_proxies(&api, name, &plan).await {
        Ok(done) => {
            if !done.is_empty() {
                tracing::info!(region = %name, ?done, "toxiproxy proxies synced");
            }
            Ok(None)
        }
        Err(e) if ready => Ok(Some(format!(
            "the region's Toxiproxy is ready but its proxies cannot be synced, so the mirror zones cannot link: {e}"
        ))),
        Err(e) => {
            tracing::debug!(region = %name, error = %e, "toxiproxy not ready yet");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn region(proxy: &str) -> ValidatedRegion {
        let region: RegionMirror = serde_json::from_value(json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "RegionMirror",
            "metadata": {"name": "east", "namespace": "ns", "uid": "u1"},
            "spec": {
                "stream": {"name": "EVENTS", "subjects": ["events.>"], "replicas": 1},
                "leafnode": {"proxy": proxy},
                "zones": [
                    {"name": "b", "role": "mirror"},
                    {"name": "a", "role": "source", "servers": 2},
                    {"name": "c-1", "role": "mirror"},
                    {"name": "x", "role": "mirror", "domain": "x", "external": {"url": "nats://x:4222"}},
                ],
            },
        }))
        .unwrap();
        crate::operator::region::validated::fixture(&region, "nats:test")
    }

    #[test]
    fn one_proxy_per_managed_mirror_zone_and_source_server() {
        let r = region("toxiproxy");
        let p = proxies(&r);
        assert_eq!(
            p.iter()
                .map(|p| (p.name.as_str(), p.port, p.upstream.as_str()))
                .collect::<Vec<_>>(),
            [
                ("east-b-s0", 17422, "east-a-0.east-a.ns.svc:7422"),
                ("east-b-s1", 17423, "east-a-1.east-a.ns.svc:7422"),
                ("east-c-1-s0", 17432, "east-a-0.east-a.ns.svc:7422"),
                ("east-c-1-s1", 17433, "east-a-1.east-a.ns.svc:7422"),
            ]
        );
        let svc = service("ns", "east", &p, None);
        let ports: Vec<i32> = svc
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [8474, ADVERTISE_PORT, 17422, 17423, 17432, 17433]);
        assert!(
            !p.iter().any(|p| p.port == ADVERTISE_PORT),
            "nothing listens behind the advertised port"
        );
        let d = deployment("ns", "east", None);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector, d.spec.selector.match_labels);
        assert_eq!(
            spec.publish_not_ready_addresses,
            Some(true),
            "a not-ready Toxiproxy must not cut the links it carries"
        );
        assert!(proxies(&region("none")).is_empty());
    }

    #[test]
    fn only_the_operators_pods_reach_the_api_and_only_the_regions_pods_the_proxies() {
        let r = region("toxiproxy");
        let plan = proxies(&r);
        let operator = OperatorPods {
            namespace: "ops".into(),
            labels: BTreeMap::from([("app.kubernetes.io/component".into(), "operator".into())]),
        };
        let policy = api_network_policy("ns", "east", &plan, &operator, None);
        assert_eq!(policy.metadata.name.as_deref(), Some("east-toxiproxy"));
        let spec = policy.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels,
            deployment("ns", "east", None).spec.selector.match_labels,
            "selects the Toxiproxy's pod"
        );
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        let ports = |rule: &NetworkPolicyIngressRule| -> Vec<i32> {
            rule.ports
                .iter()
                .flatten()
                .map(|p| match p.port {
                    Some(IntOrString::Int(n)) => n,
                    _ => panic!("numeric"),
                })
                .collect()
        };
        // The API: one peer that is both the operator's namespace and its pods.
        assert_eq!(ports(&rules[0]), [TOXIPROXY_API_PORT]);
        let from = rules[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(
            from[0].namespace_selector.as_ref().unwrap().match_labels,
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "ops".to_string()
            )]))
        );
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels.as_ref(),
            Some(&operator.labels)
        );
        // The proxies and the refused advertise port: the region's pods only,
        // never the API.
        let leaf = ports(&rules[1]);
        assert_eq!(leaf, [ADVERTISE_PORT, 17422, 17423, 17432, 17433]);
        let from = rules[1].from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        assert!(from[0].namespace_selector.is_none(), "this namespace only");
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels,
            Some(BTreeMap::from([(
                labels::REGION.to_string(),
                "east".to_string()
            )]))
        );
        assert!(
            rules.iter().all(|r| r.from.is_some()),
            "no rule open to all"
        );
    }

    #[test]
    fn the_pod_is_locked_down() {
        let pod = deployment("ns", "east", None).spec.template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert!(psc.run_as_user.is_some_and(|u| u > 0));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        let res = c.resources.as_ref().unwrap();
        assert!(res.requests.as_ref().unwrap().contains_key("memory"));
        assert!(res.limits.as_ref().unwrap().contains_key("memory"));
    }

    #[test]
    fn remotes_point_at_the_proxy_and_the_advertise_does_not_bypass_it() {
        let r = region("toxiproxy");
        let b = r.region.spec.zone("b").unwrap();
        assert_eq!(
            leaf_remotes(&r, b).unwrap(),
            ["east-toxiproxy.ns.svc:17422", "east-toxiproxy.ns.svc:17423"]
        );
        // A drill's temporary zone has no proxy: it dials the source directly.
        let mut joiner = b.clone();
        joiner.name = "joiner".into();
        assert_eq!(leaf_remotes(&r, &joiner), None);
        assert_eq!(
            source_advertise(&r).unwrap(),
            format!("east-toxiproxy.ns.svc:{ADVERTISE_PORT}")
        );
        // Behind the proxy, a mirror zone dials nothing else.
        let only = |r: &ValidatedRegion, z: &ZoneSpec| {
            crate::operator::region::children::zone_addresses(r, z).leaf_remotes_only
        };
        assert!(only(&r, b));
        assert!(!only(&r, &joiner));
        let r = region("none");
        assert_eq!(leaf_remotes(&r, r.region.spec.zone("b").unwrap()), None);
        assert_eq!(source_advertise(&r), None);
        assert!(!only(&r, r.region.spec.zone("b").unwrap()));
    }
}
