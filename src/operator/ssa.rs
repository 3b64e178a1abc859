//! Server-Side Apply under the operator's one field manager, and deletion of
//! owned objects no longer desired. A leaf: the region and drill children and
//! the Toxiproxy children all write through it.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
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
/// what the API server stored, status included.
pub async fn apply<K>(client: &kube::Client, obj: &K) -> Result<K>
where
    K: Child + Serialize,
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
