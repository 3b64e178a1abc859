//! The engine's runtime seam in a cluster: zones reached through their client
//! Service (or `external.url`) with the region's credentials, and temporary
//! zones from a [`TemporaryZones`] provider the drill owns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::api::{PartitionDrill, ZoneSpec};
use crate::drill::runtime::{Runtime, ZoneAccess};
use crate::fault::leaflinks::{LeafLinks, SystemAccess};
use crate::meta::labels;
use crate::nats::connect::ZoneEndpoint;
use crate::operator::context::Context;
use crate::operator::error::{Error, Result};
use crate::operator::region::children::{self, ZoneChildren};
use crate::operator::region::validated::ValidatedRegion;
use crate::operator::region::{apply, credentials, names};
use crate::plan::UserPass;

/// Starts and removes the zone a drill adds for claim 4. The zone belongs to
/// the drill, not to the RegionMirror (GitOps owns that one).
pub trait TemporaryZones: Send + Sync {
    fn add<'a>(
        &'a self,
        region: &'a ValidatedRegion,
        drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>>;

    /// Needs no region: what goes is found by the drill's labels.
    fn remove<'a>(
        &'a self,
        drill: &'a PartitionDrill,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Temporary zones as local nats-server processes of an existing runtime
/// (a [`crate::cli::local_drill::LocalRuntime`]): what tests use, since a test
/// control plane has no kubelet to run a StatefulSet.
pub struct LocalZones(pub Arc<dyn Runtime>);

impl TemporaryZones for LocalZones {
    fn add<'a>(
        &'a self,
        _region: &'a ValidatedRegion,
        _drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        self.0.add_zone(zone)
    }

    fn remove<'a>(
        &'a self,
        _drill: &'a PartitionDrill,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.0.remove_zone(zone)
    }
}

/// Temporary zones as StatefulSets (with their Services, ConfigMap and
/// PodDisruptionBudget) built by the region controller's builders, labelled
/// with the drill and owned by it: the region controller leaves them alone
/// and they go with the drill if nothing else removes them.
pub struct KubernetesZones {
    pub ctx: Arc<Context>,
    /// How often to look at the StatefulSet while its servers start.
    pub poll: Duration,
}

impl KubernetesZones {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            poll: Duration::from_secs(2),
        }
    }
}

/// The objects of drill-owned zone `zone`: the region's builders, relabelled
/// and re-owned, with the image the region's own zones run. Pure.
pub fn temporary_zone_children(
    valid: &ValidatedRegion,
    drill: &PartitionDrill,
    zone: &ZoneSpec,
) -> Result<ZoneChildren> {
    let mut with_zone = valid.clone();
    with_zone.region.spec.zones.push(zone.clone());
    // The region's Toxiproxy has no proxy for a drill's zone: it dials the
    // source's leafnode Service directly.
    with_zone.region.spec.leafnode.proxy = crate::api::LeafnodeProxy::None;
    let mut c = children::zone_children(&with_zone, zone)?;
    let owner = drill
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let drill_name = drill.name_any();
    for meta in c.metas_mut() {
        meta.owner_references = Some(vec![owner.clone()]);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(labels::DRILL.to_string(), drill_name.clone());
    }
    Ok(c)
}

/// The certificate Secret of drill-owned zone `zone` (`tls.mode: Generated`),
/// owned by the drill like the zone's other objects. Pure.
pub fn temporary_zone_certificate(
    valid: &ValidatedRegion,
    drill: &PartitionDrill,
    zone: &ZoneSpec,
) -> Result<Option<Secret>> {
    let Some(tls) = valid.tls.as_ref().filter(|_| valid.tls_enabled()) else {
        return Ok(None);
    };
    let Some(mut secret) = crate::operator::region::certificates::temporary_zone_secret(
        tls,
        &valid.region,
        &valid.namespace,
        zone,
    )?
    else {
        return Ok(None);
    };
    let owner = drill
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    secret.metadata.owner_references = Some(vec![owner]);
    secret
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(labels::DRILL.to_string(), drill.name_any());
    Ok(Some(secret))
}

impl TemporaryZones for KubernetesZones {
    fn add<'a>(
        &'a self,
        valid: &'a ValidatedRegion,
        drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        Box::pin(async move {
            let ctx = &self.ctx;
            if let Some(secret) =
                temporary_zone_certificate(valid, drill, zone).map_err(|e| e.to_string())?
            {
                // Through the one apply helper: it refuses a Secret of that
                // name that another owner holds.
                crate::operator::ssa::apply(&ctx.client, &secret)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let c = temporary_zone_children(valid, drill, zone).map_err(|e| e.to_string())?;
            apply::apply_zone(&ctx.client, &c)
                .await
                .map_err(|e| e.to_string())?;
            // The engine's step timeout bounds this wait.
            let sts: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &valid.namespace);
            let sts_name = names::statefulset(&valid.name, &zone.name);
            loop {
                let ready = sts
                    .get_opt(&sts_name)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|s| s.status)
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if ready >= zone.servers {
                    break;
                }
                tokio::time::sleep(self.poll).await;
            }
            let urls = valid.zone_urls(ctx, zone);
            Ok(access(zone, urls.client, &valid.credentials.app, urls.ca))
        })
    }

    fn remove<'a>(
        &'a self,
        drill: &'a PartitionDrill,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let ns = drill.namespace().unwrap_or_default();
            let uid = drill.uid().unwrap_or_default();
            let selector = apply::temporary_zone_selector(
                &drill.spec.region_ref.name,
                zone,
                &drill.name_any(),
            );
            apply::prune(&self.ctx.client, &ns, &selector, &uid, &[])
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// The region's zones as the operator dials them, plus temporary zones.
pub struct KubeRuntime {
    region: ValidatedRegion,
    drill: PartitionDrill,
    temporary: Arc<dyn TemporaryZones>,
    zones: Mutex<Vec<ZoneAccess>>,
    /// Temporary zones asked for and not removed yet (a start the engine
    /// gave up on included).
    started: Mutex<Vec<String>>,
}

impl KubeRuntime {
    pub fn new(
        region: ValidatedRegion,
        drill: PartitionDrill,
        zones: Vec<ZoneAccess>,
        temporary: Arc<dyn TemporaryZones>,
    ) -> Self {
        Self {
            region,
            drill,
            temporary,
            zones: Mutex::new(zones),
            started: Mutex::new(Vec::new()),
        }
    }

    /// Removes temporary zones the engine did not (a start that timed out,
    /// an aborted drill). Returns what could not be removed.
    pub async fn remove_leftovers(&self) -> Vec<String> {
        let names = self.started.lock().expect("started").clone();
        let mut failed = Vec::new();
        for name in names {
            if let Err(e) = self.remove_zone(&name).await {
                failed.push(format!("{name}: {e}"));
            }
        }
        failed
    }
}

impl Runtime for KubeRuntime {
    fn zones(&self) -> Vec<ZoneAccess> {
        self.zones.lock().expect("zones").clone()
    }

    fn add_zone<'a>(&'a self, zone: &'a ZoneSpec) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        Box::pin(async move {
            self.started
                .lock()
                .expect("started")
                .push(zone.name.clone());
            let access = self.temporary.add(&self.region, &self.drill, zone).await?;
            self.zones.lock().expect("zones").push(access.clone());
            Ok(access)
        })
    }

    fn remove_zone<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.temporary.remove(&self.drill, name).await?;
            self.zones
                .lock()
                .expect("zones")
                .retain(|z| z.name() != name);
            Ok(())
        })
    }
}

/// How the drill reaches every zone of `region`: `external.url` for external
/// zones, the client Service (or the context's override) for managed ones;
/// the zone's own Secret when it names one, else the region's (read the way
/// the region controller reads them).
pub async fn zone_accesses(ctx: &Context, valid: &ValidatedRegion) -> Result<Vec<ZoneAccess>> {
    let creds = &valid.credentials;
    let mut out = Vec::new();
    for zone in &valid.region.spec.zones {
        let (urls, user, ca) = match &zone.external {
            Some(ext) => (
                vec![ext.url.clone()],
                credentials::for_external_zone(&ctx.client, &valid.region, zone, &creds.app)
                    .await?,
                valid.zone_ca(zone),
            ),
            None => {
                let urls = valid.zone_urls(ctx, zone);
                (urls.client, creds.app.clone(), urls.ca)
            }
        };
        out.push(access(zone, urls, &user, ca));
    }
    Ok(out)
}

/// System access to every managed zone of `region`, for the networkPolicy
/// backend to see and break leafnode links (external zones have no system
/// user the operator knows).
pub async fn system_links(ctx: &Context, valid: &ValidatedRegion) -> Result<LeafLinks> {
    let creds = &valid.credentials;
    let zones = valid
        .region
        .spec
        .zones
        .iter()
        .filter(|z| z.external.is_none())
        .map(|z| {
            let urls = valid.zone_urls(ctx, z);
            (
                z.name.clone(),
                SystemAccess {
                    urls: urls.client,
                    user: creds.system.user.clone(),
                    password: creds.system.password.clone(),
                    servers: z.servers.max(1) as usize,
                    ca: urls.ca,
                },
            )
        })
        .collect();
    Ok(LeafLinks { zones })
}

fn access(zone: &ZoneSpec, urls: Vec<String>, user: &UserPass, ca: Option<String>) -> ZoneAccess {
    ZoneAccess {
        role: zone.role,
        endpoint: ZoneEndpoint {
            zone: zone.name.clone(),
            urls,
            user: Some(user.user.clone()),
            password: Some(user.password.clone()),
            domain: Some(zone.domain().to_string()),
            ca,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RegionMirror;

    #[test]
    fn a_temporary_zone_is_built_by_the_region_builders_and_owned_by_the_drill() {
        let mut region: RegionMirror = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "RegionMirror",
            "metadata": {"name": "east", "namespace": "ns", "uid": "region-uid"},
            "spec": {
                "stream": {"name": "EVENTS", "subjects": ["events.>"]},
                "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
            },
        }))
        .unwrap();
        region.metadata.namespace = Some("ns".into());
        let drill: PartitionDrill = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "PartitionDrill",
            "metadata": {"name": "d", "namespace": "ns", "uid": "drill-uid"},
            "spec": {"regionRef": {"name": "east"}},
        }))
        .unwrap();
        let zone = ZoneSpec {
            name: "joiner".into(),
            role: crate::api::ZoneRole::Mirror,
            servers: 1,
            storage: Default::default(),
            scheduling: Default::default(),
            domain: None,
            external: None,
        };
        let valid = crate::operator::region::validated::fixture(&region, "mirror.local/nats:2.14");
        let c = temporary_zone_children(&valid, &drill, &zone).unwrap();
        assert_eq!(c.statefulset.metadata.name.as_deref(), Some("east-joiner"));
        // The spec kept the CRD's default image, so the operator's default applies,
        // as it does for the region's own zones.
        let images: Vec<_> = c
            .statefulset
            .spec
            .template
            .spec
            .as_ref()
            .map(|p| {
                p.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            images.iter().any(|i| i == "mirror.local/nats:2.14"),
            "{images:?}"
        );
        assert!(c.leafnode.is_none(), "a mirror zone dials the source");
        let selector = apply::temporary_zone_selector("east", "joiner", "d");
        for (_, meta) in c.metas() {
            let l = meta.labels.as_ref().unwrap();
            assert_eq!(l[labels::DRILL], "d");
            // What `remove` deletes is exactly what `add` applied.
            for term in selector.split(',') {
                let (k, v) = term.split_once('=').unwrap();
                assert_eq!(l.get(k).map(String::as_str), Some(v), "{term}");
            }
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].uid, "drill-uid");
        }
        // The region controller's pruning never selects drill-labelled objects.
        assert!(apply::children_selector("east").contains(&format!("!{}", labels::DRILL)));
    }
}
