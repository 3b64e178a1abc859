//! Writing children with Server-Side Apply under the operator's one field
//! manager, and deleting the children no longer desired.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::children::ZoneChildren;
use crate::operator::FIELD_MANAGER;
use crate::operator::error::{Error, Result};
use crate::operator::labels;

/// Applies `obj` (force: the operator owns every field it sets) and returns
/// what the API server stored, status included.
pub async fn apply<K>(client: &kube::Client, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| Error::kube(format!("apply {} {ns}/{name}", K::kind(&())), e))
}

/// Applies every object of a zone; returns the StatefulSet as stored.
pub async fn apply_zone(client: &kube::Client, c: &ZoneChildren) -> Result<StatefulSet> {
    // The ConfigMap first: pods of a new StatefulSet mount it at start.
    apply(client, &c.config_map).await?;
    apply(client, &c.headless).await?;
    apply(client, &c.client).await?;
    if let Some(l) = &c.leafnode {
        apply(client, l).await?;
    }
    let sts = apply(client, &c.statefulset)
        .await
        .map_err(|e| immutable_statefulset(e, &c.zone))?;
    apply(client, &c.pdb).await?;
    Ok(sts)
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

/// Deletes the zone-level children of the region (owned by `uid`) whose names
/// are not in `desired` (kind → names). Returns `Kind/name` of what went.
pub async fn prune(
    client: &kube::Client,
    namespace: &str,
    region: &str,
    uid: &str,
    desired: &BTreeMap<&'static str, Vec<String>>,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    let empty = Vec::new();
    let keep = |kind: &str| desired.get(kind).unwrap_or(&empty).clone();
    deleted
        .extend(prune_kind::<ConfigMap>(client, namespace, region, uid, &keep("ConfigMap")).await?);
    deleted.extend(prune_kind::<Service>(client, namespace, region, uid, &keep("Service")).await?);
    deleted.extend(
        prune_kind::<StatefulSet>(client, namespace, region, uid, &keep("StatefulSet")).await?,
    );
    deleted.extend(
        prune_kind::<PodDisruptionBudget>(
            client,
            namespace,
            region,
            uid,
            &keep("PodDisruptionBudget"),
        )
        .await?,
    );
    Ok(deleted)
}

async fn prune_kind<K>(
    client: &kube::Client,
    namespace: &str,
    region: &str,
    uid: &str,
    keep: &[String],
) -> Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    let list = api
        .list_metadata(&ListParams::default().labels(&children_selector(region)))
        .await
        .map_err(|e| Error::kube(format!("list {kind}s of region {namespace}/{region}"), e))?;
    let mut deleted = Vec::new();
    for obj in list.items {
        let name = obj.name_any();
        let ours = obj.owner_references().iter().any(|o| o.uid == uid);
        if !ours || keep.contains(&name) {
            continue;
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete {kind} {namespace}/{name}"), e)),
        }
    }
    Ok(deleted)
}
