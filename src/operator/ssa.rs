//! Server-Side Apply under the operator's one field manager, and deletion of
//! owned objects no longer desired. A leaf: the region and drill children and
//! the Toxiproxy children all write through it.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::FIELD_MANAGER;
use crate::operator::error::{Error, Result};

/// A namespaced object kind the operator writes and deletes.
pub trait Child:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + DeserializeOwned + Clone + Debug
{
}

impl<K> Child for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug
{
}

/// Applies `obj` (force: the operator owns every field it sets) and returns
/// what the API server stored, status included. An object of that name
/// controlled by anyone but `obj`'s own controller is refused with
/// [`Error::NameConflict`], never forced over: a forced apply would rewrite
/// another region's StatefulSet (and through it its volumes) in place.
pub async fn apply<K>(client: &kube::Client, obj: &K) -> Result<K>
where
    K: Child + Serialize,
{
    let ns = obj
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let ours = controller_uid(obj.meta());
    ensure_free(&api, &name, ours, Uncontrolled::Refuse, "").await?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| Error::kube(format!("apply {} {ns}/{name}", K::kind(&())), e))
}

/// The uid of the object's controlling owner.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Who holds `existing`, in words, when it is not the object controlled by
/// `ours`; `None` when writing it is ours to do. An object without any
/// controller (made by hand, or orphaned) is not taken either: the operator
/// cannot tell it from someone's data.
pub fn foreign_holder(existing: &ObjectMeta, ours: Option<&str>) -> Option<String> {
    let controller = existing
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    match (controller, ours) {
        (Some(c), Some(uid)) if c.uid == uid => None,
        (None, None) => None,
        (Some(c), _) => Some(format!("belongs to {} {} (uid {})", c.kind, c.name, c.uid)),
        (None, Some(_)) => Some(
            "has no controlling owner (made by hand, or left behind by a deleted owner)"
                .to_string(),
        ),
    }
}

/// Whether an object of the name that no one controls may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uncontrolled {
    /// It would be written over: refused.
    Refuse,
    /// It is only read, never written (a Secret the operator generates only
    /// when absent, which a user may provide under that name).
    Read,
}

/// Fails with [`Error::NameConflict`] when `name` exists and is held by
/// anyone but the controller `ours` (see [`foreign_holder`]). `hint` says
/// what to rename; empty, the generic advice is given.
pub async fn ensure_free<K>(
    api: &Api<K>,
    name: &str,
    ours: Option<&str>,
    uncontrolled: Uncontrolled,
    hint: &str,
) -> Result<()>
where
    K: Child,
{
    let kind = K::kind(&());
    let existing = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| Error::kube(format!("read {kind} {name}"), e))?;
    let Some(existing) = existing else {
        return Ok(());
    };
    if uncontrolled == Uncontrolled::Read && controller_uid(&existing.metadata).is_none() {
        return Ok(());
    }
    let Some(holder) = foreign_holder(&existing.metadata, ours) else {
        return Ok(());
    };
    Err(Error::NameConflict {
        kind: kind.to_string(),
        name: name.to_string(),
        holder,
        hint: if hint.is_empty() {
            "rename the resource whose objects collide, or delete that object if it is not needed"
                .to_string()
        } else {
            hint.to_string()
        },
    })
}

/// Deletes the objects of kind `K` that match `selector`, are owned by
/// `owner_uid` and whose names are not in `keep`. Returns `Kind/name` of what
/// went; an object already gone is not an error.
pub async fn prune_owned<K>(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    owner_uid: &str,
    keep: &[String],
) -> Result<Vec<String>>
where
    K: Child,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|e| {
            Error::kube(
                format!("list {kind}s in {namespace} matching {selector}"),
                e,
            )
        })?;
    let mut deleted = Vec::new();
    for obj in list.items {
        let name = obj.name_any();
        let ours = obj.owner_references().iter().any(|o| o.uid == owner_uid);
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

/// Deletes `name` of kind `K` if `owner_uid` owns it; an object someone else
/// owns, or one already gone, is left as it is.
pub async fn delete_owned<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    owner_uid: &str,
) -> Result<()>
where
    K: Child,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    let Some(obj) = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| Error::kube(format!("read {kind} {namespace}/{name}"), e))?
    else {
        return Ok(());
    };
    if !obj.owner_references().iter().any(|o| o.uid == owner_uid) {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("delete {kind} {namespace}/{name}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn held_by(owners: &[(&str, bool)]) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(
                owners
                    .iter()
                    .map(|(uid, controller)| OwnerReference {
                        api_version: "natsregion.io/v1alpha1".into(),
                        kind: "RegionMirror".into(),
                        name: format!("region-{uid}"),
                        uid: uid.to_string(),
                        controller: Some(*controller),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_objects_own_controller_may_write_it() {
        assert_eq!(foreign_holder(&held_by(&[("u1", true)]), Some("u1")), None);
        let other = foreign_holder(&held_by(&[("u2", true)]), Some("u1")).unwrap();
        assert_eq!(other, "belongs to RegionMirror region-u2 (uid u2)");
        // An owner that is not the controller does not make it ours.
        let bare = foreign_holder(&held_by(&[("u1", false)]), Some("u1")).unwrap();
        assert!(bare.contains("no controlling owner"), "{bare}");
        let by_hand = foreign_holder(&ObjectMeta::default(), Some("u1")).unwrap();
        assert!(by_hand.contains("made by hand"), "{by_hand}");
        // Writing something without a controller over something without one.
        assert_eq!(foreign_holder(&ObjectMeta::default(), None), None);
        assert!(foreign_holder(&held_by(&[("u2", true)]), None).is_some());
    }
}
