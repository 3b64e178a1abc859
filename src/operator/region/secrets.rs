//! The Secrets one reconcile reads, in one namespace. The operator's own
//! Secrets (generated credentials, the region's CA and zone certificates)
//! come from the RegionMirror controller's watch of them when it has them:
//! every look at a region read six of them from the API server, which at
//! 1000 regions was a third of all requests the API server served. Any other
//! Secret (the user's), or one the watch has not delivered yet, is read from
//! the API server, so a Secret the operator just created is never taken for
//! missing and generated twice. A generated Secret is created with a create
//! that fails when it exists, never by a write that could replace one.

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::meta::FIELD_MANAGER;
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
        if let Some(secret) = self.cached(name) {
            return Ok(Some(secret));
        }
        get(&self.api, name).await
    }

    /// The Secret `name` as it exists, or the one `make` builds, created.
    /// Only a create makes it, and a create fails when the Secret exists
    /// (then it is read), so a password or a key is never generated over
    /// another. When the cache has listed every Secret and lacks this one,
    /// it is almost surely a new region's: the create goes first, instead of
    /// a GET that would only say it is missing (six per new region).
    pub async fn get_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<Secret>,
    ) -> Result<Found> {
        if let Some(secret) = self.cached(name) {
            return Ok(Found::Existing(secret));
        }
        let listed = self
            .cache
            .is_some_and(|c| matches!(c.wait_until_ready().now_or_never(), Some(Ok(()))));
        if !listed && let Some(secret) = get(&self.api, name).await? {
            return Ok(Found::Existing(secret));
        }
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match self.api.create(&params, &make()?).await {
            Ok(created) => Ok(Found::Created(created)),
            Err(kube::Error::Api(status)) if status.code == 409 => get(&self.api, name)
                .await?
                .map(Found::Existing)
                // Deleted between the create and the read: the next pass creates it.
                .ok_or_else(|| Error::Other {
                    reason: "SecretRace",
                    message: format!("Secret {name} existed at create and was gone at read"),
                    permanent: false,
                }),
            Err(e) => Err(Error::kube(format!("create Secret {name}"), e)),
        }
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let key = ObjectRef::new(name).within(self.namespace);
        self.cache
            .and_then(|c| c.get(&key))
            .map(|s| Secret::clone(&s))
    }
}

/// What [`Secrets::get_or_create`] found.
pub enum Found {
    Existing(Secret),
    Created(Secret),
}

impl Found {
    pub fn secret(&self) -> &Secret {
        match self {
            Found::Existing(s) | Found::Created(s) => s,
        }
    }
}

/// An external zone's Secret may be used only when it carries
/// `natsregion.io/external-credentials: "true"`. What it holds goes to the
/// zone's URL (credentials in the leafnode URL and the operator's own
/// connection), and the URL is the RegionMirror's to choose: without an
/// opt-in on the Secret, permission to write a RegionMirror would be
/// permission to send any Secret of the namespace to a server of one's own,
/// even for someone who may not read Secrets.
pub fn require_external_opt_in(
    secret: &Secret,
    namespace: &str,
    name: &str,
    field: &'static str,
) -> Result<()> {
    use crate::meta::labels::{EXTERNAL_CREDENTIALS, EXTERNAL_CREDENTIALS_VALUE};
    let opted_in = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(EXTERNAL_CREDENTIALS))
        .is_some_and(|v| v == EXTERNAL_CREDENTIALS_VALUE);
    if opted_in {
        return Ok(());
    }
    Err(Error::ExternalSecretNotOptedIn {
        namespace: namespace.to_string(),
        secret: name.to_string(),
        field,
        label: EXTERNAL_CREDENTIALS,
        value: EXTERNAL_CREDENTIALS_VALUE,
    })
}

/// The Secret from the API server, or `None` when it does not exist.
pub async fn get(api: &Api<Secret>, name: &str) -> Result<Option<Secret>> {
    api.get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("read Secret {name}"), e))
}
