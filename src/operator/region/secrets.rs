//! The Secrets one reconcile reads, in one namespace. The operator's own
//! Secrets (generated credentials, the region's CA and zone certificates)
//! come from the RegionMirror controller's watch of them when it has them:
//! every look at a region read six of them from the API server, which at
//! 1000 regions was a third of all requests the API server served. Any other
//! Secret (the user's), or one the watch has not delivered yet, is read from
//! the API server, so a Secret the operator just created is never taken for
//! missing and generated twice.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::operator::error::{Error, Result};

/// The watch's copies of the operator's own Secrets (labelled managed-by).
pub type SecretCache = Store<Secret>;

pub struct Secrets<'a> {
    api: Api<Secret>,
    namespace: &'a str,
    cache: Option<&'a SecretCache>,
}

impl<'a> Secrets<'a> {
    pub fn new(client: &kube::Client, namespace: &'a str, cache: Option<&'a SecretCache>) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            namespace,
            cache,
        }
    }

    /// The Secret, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Secret>> {
        let cached = self
            .cache
            .and_then(|c| c.get(&ObjectRef::new(name).within(self.namespace)));
        if let Some(secret) = cached {
            return Ok(Some(Secret::clone(&secret)));
        }
        get(&self.api, name).await
    }

    /// The namespace's Secrets, for writes.
    pub fn api(&self) -> &Api<Secret> {
        &self.api
    }
}

/// The Secret from the API server, or `None` when it does not exist.
pub async fn get(api: &Api<Secret>, name: &str) -> Result<Option<Secret>> {
    api.get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("read Secret {name}"), e))
}
