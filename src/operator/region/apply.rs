//! Writing children with Server-Side Apply under the operator's one field
//! manager, and deleting the children no longer desired.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::children::{ChildKind, ZoneChildren};
use crate::meta::labels;
use crate::operator::error::{Error, Result};
use crate::operator::ssa::{self, apply};

/// A zone's objects as the API server stored them.
pub struct AppliedZone {
    pub statefulset: StatefulSet,
    /// The resourceVersion of every object applied: the watch events of
    /// these writes are the operator's own, not drift.
    pub resource_versions: Vec<String>,
}

/// Applies every object of a zone.
pub async fn apply_zone(client: &kube::Client, c: &ZoneChildren) -> Result<AppliedZone> {
    let mut versions = Vec::new();
    let mut seen = |meta: &ObjectMeta| versions.extend(meta.resource_version.clone());
    // The ConfigMap first: pods of a new StatefulSet mount it at start.
    seen(&apply(client, &c.config_map).await?.metadata);
    seen(&apply(client, &c.headless).await?.metadata);
    seen(&apply(client, &c.client).await?.metadata);
    if let Some(l) = &c.leafnode {
        seen(&apply(client, l).await?.metadata);
    }
    let statefulset = apply(client, &c.statefulset)
        .await
        .map_err(|e| immutable_statefulset(e, &c.zone))?;
    seen(&statefulset.metadata);
    seen(&apply(client, &c.pdb).await?.metadata);
    Ok(AppliedZone {
        statefulset,
        resource_versions: versions,
    })
}

/// The API server refuses to change a StatefulSet's volume claim templates;
/// the only spec fields that feed them are the zone's storage size and class.
fn immutable_statefulset(e: Error, zone: &str) -> Error {
    match &e {
        Error::Kube {
            source: kube::Error::Api(status),
            ..
        } if status.code == 422
            && (status.message.contains("volumeClaimTemplates")
                || status.message.contains("updates to statefulset spec")) =>
        {
            Error::Other {
                reason: "StorageImmutable",
                message: format!(
                    "zone {zone}: zones[].storage (size, className) cannot change once the zone exists, because a StatefulSet's volume claim templates are immutable: put the old value back, or add a zone under a new name with the new storage and then remove this one"
                ),
                permanent: true,
            }
        }
        _ => e,
    }
}

/// Label selector of the zone-level children of a region. Objects a drill
/// made (labelled with the drill) are the drill controller's business.
pub fn children_selector(region: &str) -> String {
    format!(
        "{}={},{}={},{},!{}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::REGION,
        region,
        labels::ZONE,
        labels::DRILL
    )
}

/// Label selector of the objects of a drill's temporary zone.
pub fn temporary_zone_selector(region: &str, zone: &str, drill: &str) -> String {
    format!(
        "{}={},{}={region},{}={zone},{}={drill}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::REGION,
        labels::ZONE,
        labels::DRILL
    )
}

/// Deletes the objects matching `selector` and owned by `uid` that are not
/// among the `applied` zones' objects, of every [`ChildKind`]. Returns
/// `Kind/name` of what went.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    uid: &str,
    applied: &[ZoneChildren],
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for kind in ChildKind::ALL {
        let keep: Vec<String> = applied.iter().flat_map(|c| c.names_of(kind)).collect();
        let (ns, sel) = (namespace, selector);
        deleted.extend(match kind {
            ChildKind::ConfigMap => {
                ssa::prune_owned::<ConfigMap>(client, ns, sel, uid, &keep).await?
            }
            ChildKind::Service => ssa::prune_owned::<Service>(client, ns, sel, uid, &keep).await?,
            ChildKind::StatefulSet => {
                ssa::prune_owned::<StatefulSet>(client, ns, sel, uid, &keep).await?
            }
            ChildKind::PodDisruptionBudget => {
                ssa::prune_owned::<PodDisruptionBudget>(client, ns, sel, uid, &keep).await?
            }
        });
    }
    Ok(deleted)
}
