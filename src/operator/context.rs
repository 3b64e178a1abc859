//! What every controller of the operator shares: the API client, metrics, the
//! event reporter and the settings given on the command line.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::metrics::Metrics;
use super::region::names;
use crate::nats::ConnectSettings;
use crate::plan::ports::{CLIENT_PORT, MONITOR_PORT};

/// Settings of one operator process (flags of `natsregion run`).
#[derive(Clone)]
pub struct OperatorSettings {
    /// Image for managed zones whose spec makes no choice: `image` empty or
    /// left at the CRD's default (see `region::validated::effective_image`).
    pub default_nats_image: String,
    /// How often a region's status is read again from its zones when nothing
    /// else triggers a reconcile.
    pub status_refresh: Duration,
    /// Watch only this namespace; `None`: every namespace.
    pub namespace: Option<String>,
    /// How the operator dials the zones' NATS servers. The deadline is short on
    /// purpose: a zone that is not up is reported and retried on the next refresh,
    /// it must not hold a reconcile for long.
    pub nats_connect: ConnectSettings,
    /// Where to reach managed zones when the in-cluster Service DNS names do not
    /// resolve (tests, an operator running outside the cluster). `None`: the
    /// zone's client Service and pod DNS names.
    pub zone_access_override: Option<Arc<dyn ZoneAccess>>,
    /// RegionMirrors reconciled at once. A reconcile holds its children's
    /// objects and an API connection of its own while it runs, so this bounds
    /// the operator's peak memory and its connections when many regions
    /// change at once (a start, a new operator version).
    pub max_concurrent_reconciles: u16,
    /// The operator's own pods, the only ones a region's Toxiproxy API lets
    /// in (a NetworkPolicy per Toxiproxy). `None`: no such policy (an
    /// operator outside the cluster has no pods to name).
    pub toxiproxy_api_policy: Option<OperatorPods>,
    /// A mirror (or an aggregate's source) silent this long while the
    /// source's JetStream API answers through its zone is made to
    /// re-create its consumer by a leader stepdown, at most once per this
    /// long per stream, outside drills (`region::resume`). `None`: off.
    pub resume_stalled_mirrors_after: Option<Duration>,
    /// A prometheus-nats-exporter image to run beside each managed zone's
    /// servers (their monitoring port serves JSON, not the Prometheus
    /// format); `None`: no exporter.
    pub nats_exporter_image: Option<String>,
}

/// The operator's pods, as a NetworkPolicy names them: the chart passes its
/// release namespace and the pods' selector labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl OperatorPods {
    /// `labels` as `key=value,key=value` (the flag's format). Empty labels
    /// are refused: a selector without labels would match every pod of the
    /// namespace.
    pub fn parse(namespace: &str, labels: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for pair in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        if map.is_empty() {
            return Err("no labels: give the operator pods' labels as key=value,key=value (an empty selector would let every pod of the namespace in)".to_string());
        }
        if namespace.is_empty() {
            return Err("no namespace: give the operator's namespace".to_string());
        }
        Ok(Self {
            namespace: namespace.to_string(),
            labels: map,
        })
    }
}

/// Default of [`OperatorSettings::resume_stalled_mirrors_after`]. A healthy
/// mirror hears a heartbeat every second, and nats-server's own health
/// check re-creates the consumer of a mirror silent 10 s; past that, with
/// the link up, the server's next try can be 40 s away (docs/architecture.md,
/// "Prompt resume after a heal"). Any cut that leaves a mirror stalled is
/// longer than 10 s (the lost request is sent 10-20 s into it), so at 10 s
/// such a mirror is nudged on the first look after its link is back.
pub const RESUME_STALLED_MIRRORS_AFTER: Duration = Duration::from_secs(10);

/// Default of [`OperatorSettings::max_concurrent_reconciles`].
pub const MAX_CONCURRENT_RECONCILES: u16 = 8;

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            default_nats_image: crate::api::default_image(),
            status_refresh: Duration::from_secs(30),
            namespace: None,
            nats_connect: ConnectSettings {
                client_name: "natsregion-operator".to_string(),
                attempt_timeout: Duration::from_secs(2),
                deadline: Duration::from_secs(4),
                request_timeout: Duration::from_secs(5),
            },
            zone_access_override: None,
            max_concurrent_reconciles: MAX_CONCURRENT_RECONCILES,
            toxiproxy_api_policy: None,
            resume_stalled_mirrors_after: Some(RESUME_STALLED_MIRRORS_AFTER),
            nats_exporter_image: None,
        }
    }
}

impl fmt::Debug for OperatorSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorSettings")
            .field("default_nats_image", &self.default_nats_image)
            .field("status_refresh", &self.status_refresh)
            .field("namespace", &self.namespace)
            .field("nats_connect", &self.nats_connect)
            .field("zone_access_override", &self.zone_access_override.is_some())
            .field("max_concurrent_reconciles", &self.max_concurrent_reconciles)
            .field(
                "resume_stalled_mirrors_after",
                &self.resume_stalled_mirrors_after,
            )
            .field("toxiproxy_api_policy", &self.toxiproxy_api_policy)
            .field("nats_exporter_image", &self.nats_exporter_image)
            .finish()
    }
}

/// A managed zone's addresses as the operator must dial them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneUrls {
    /// `nats://host:port` client URLs.
    pub client: Vec<String>,
    /// `http://host:port` monitoring base URLs, one per server (may be empty).
    pub monitor: Vec<String>,
    /// The CA (PEM) the zone's servers are verified with. `None` from
    /// [`ZoneUrls::in_cluster`]: the region's CA applies
    /// (`ValidatedRegion::zone_urls` fills it in); an override that points at
    /// other servers names theirs.
    pub ca: Option<String>,
}

impl ZoneUrls {
    /// How the operator reaches a managed zone from inside the cluster: the
    /// client Service and each pod through the headless Service.
    pub fn in_cluster(namespace: &str, region: &str, zone: &str, servers: i32) -> Self {
        Self {
            client: vec![format!(
                "nats://{}:{CLIENT_PORT}",
                names::client_host(namespace, region, zone)
            )],
            monitor: (0..servers.max(0))
                .map(|i| {
                    format!(
                        "http://{}:{MONITOR_PORT}",
                        names::pod_host(namespace, region, zone, i)
                    )
                })
                .collect(),
            ca: None,
        }
    }
}

/// Overrides how managed zones are reached (see `OperatorSettings::zone_access_override`).
pub trait ZoneAccess: Send + Sync {
    /// `None`: use the in-cluster addresses for this zone.
    fn zone_urls(&self, namespace: &str, region: &str, zone: &str) -> Option<ZoneUrls>;
}

/// Shared state of the operator's controllers.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    pub settings: OperatorSettings,
    /// One recorder for the process, so repeated events become a series
    /// instead of new Event objects.
    pub recorder: Recorder,
}

/// `K` in `namespace`, or in every namespace: what the operator watches.
pub fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

impl Context {
    /// `K` where this operator works (`--namespace`, or everywhere).
    pub fn watched_api<K>(&self) -> kube::Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        scoped_api(&self.client, self.settings.namespace.as_deref())
    }

    pub fn new(client: kube::Client, settings: OperatorSettings, reporter: Reporter) -> Arc<Self> {
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            metrics: Arc::new(Metrics::default()),
            reporter,
            settings,
        })
    }

    /// Publishes an Event about `obj`. A failure to publish is logged, never
    /// an error of the reconcile that wanted to say something.
    pub async fn publish_event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            // Event notes are limited to 1 kB.
            note: Some(note.chars().take(1000).collect()),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(
                kind = %K::kind(&()),
                name = %obj.meta().name.as_deref().unwrap_or_default(),
                error = %e,
                "cannot publish an Event"
            );
        }
    }

    /// Addresses of managed zone `zone` of region `region` in `namespace`:
    /// the override when one answers, else the in-cluster Service and pod names.
    pub fn zone_urls(&self, namespace: &str, region: &str, zone: &str, servers: i32) -> ZoneUrls {
        if let Some(urls) = self
            .settings
            .zone_access_override
            .as_ref()
            .and_then(|o| o.zone_urls(namespace, region, zone))
        {
            return urls;
        }
        ZoneUrls::in_cluster(namespace, region, zone, servers)
    }
}

/// The reporter for a process: controller name plus the pod name when known.
pub fn reporter() -> Reporter {
    Reporter {
        controller: "natsregion-operator".to_string(),
        instance: std::env::var("POD_NAME").ok().or_else(hostname_instance),
    }
}

fn hostname_instance() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_pods_from_the_flags() {
        let pods = OperatorPods::parse(
            "ops",
            "app.kubernetes.io/name=natsregion, app.kubernetes.io/component=operator",
        )
        .unwrap();
        assert_eq!(pods.namespace, "ops");
        assert_eq!(pods.labels["app.kubernetes.io/component"], "operator");
        assert_eq!(pods.labels.len(), 2);
        assert!(
            OperatorPods::parse("ops", "")
                .unwrap_err()
                .contains("every pod")
        );
        assert!(OperatorPods::parse("ops", "a").is_err());
        assert!(OperatorPods::parse("", "a=b").is_err());
    }

    #[test]
    fn in_cluster_addresses_use_the_services_and_pod_dns() {
        let urls = ZoneUrls::in_cluster("ns1", "east", "b", 2);
        assert_eq!(urls.client, vec!["nats://east-b-client.ns1.svc:4222"]);
        assert_eq!(
            urls.monitor,
            vec![
                "http://east-b-0.east-b.ns1.svc:8222",
                "http://east-b-1.east-b.ns1.svc:8222"
            ]
        );
    }
}
