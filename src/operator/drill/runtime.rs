//! The engine's runtime seam in a cluster: zones reached through their client
//! Service (or `external.url`) with the region's credentials, and temporary
//! zones from a [`TemporaryZones`] provider the drill owns.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::{PartitionDrill, RegionMirror, ZoneSpec};
use crate::drill::runtime::{Runtime, ZoneAccess};
use crate::nats::connect::ZoneEndpoint;
use crate::operator::context::Context;
use crate::operator::error::{Error, Result};
use crate::operator::region::names;

/// Starts and removes the zone a drill adds for claim 4. The zone belongs to
/// the drill, not to the RegionMirror (GitOps owns that one).
pub trait TemporaryZones: Send + Sync {
    fn add<'a>(
        &'a self,
        region: &'a RegionMirror,
        drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>>;

    fn remove<'a>(
        &'a self,
        region: &'a RegionMirror,
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
        _region: &'a RegionMirror,
        _drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        self.0.add_zone(zone)
    }

    fn remove<'a>(
        &'a self,
        _region: &'a RegionMirror,
        _drill: &'a PartitionDrill,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.0.remove_zone(zone)
    }
}

/// Temporary zones as StatefulSets built by the region controller's builders.
///
/// Not wired yet: the region controller's builders take a whole region and
/// its credentials; a drill-owned zone needs them to build one extra mirror
/// zone (StatefulSet, Services, ConfigMap) owned by the drill. Until then the
/// step reports this, and claim 4 fails with the reason instead of passing.
pub struct KubernetesZones;

impl TemporaryZones for KubernetesZones {
    fn add<'a>(
        &'a self,
        _region: &'a RegionMirror,
        _drill: &'a PartitionDrill,
        zone: &'a ZoneSpec,
    ) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        Box::pin(async move {
            Err(format!(
                "temporary zone {}: starting a drill-owned StatefulSet zone is not implemented in this operator build",
                zone.name
            ))
        })
    }

    fn remove<'a>(
        &'a self,
        _region: &'a RegionMirror,
        _drill: &'a PartitionDrill,
        _zone: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The region's zones as the operator dials them, plus temporary zones.
pub struct KubeRuntime {
    region: RegionMirror,
    drill: PartitionDrill,
    temporary: Arc<dyn TemporaryZones>,
    zones: Mutex<Vec<ZoneAccess>>,
}

impl KubeRuntime {
    pub fn new(
        region: RegionMirror,
        drill: PartitionDrill,
        zones: Vec<ZoneAccess>,
        temporary: Arc<dyn TemporaryZones>,
    ) -> Self {
        Self {
            region,
            drill,
            temporary,
            zones: Mutex::new(zones),
        }
    }
}

impl Runtime for KubeRuntime {
    fn zones(&self) -> Vec<ZoneAccess> {
        self.zones.lock().expect("zones").clone()
    }

    fn add_zone<'a>(&'a self, zone: &'a ZoneSpec) -> BoxFuture<'a, Result<ZoneAccess, String>> {
        Box::pin(async move {
            let access = self.temporary.add(&self.region, &self.drill, zone).await?;
            self.zones.lock().expect("zones").push(access.clone());
            Ok(access)
        })
    }

    fn remove_zone<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.temporary
                .remove(&self.region, &self.drill, name)
                .await?;
            self.zones
                .lock()
                .expect("zones")
                .retain(|z| z.name() != name);
            Ok(())
        })
    }
}

/// `user` and `password` of a Secret.
pub async fn read_user_pass(
    client: &kube::Client,
    namespace: &str,
    secret: &str,
    field: &'static str,
) -> Result<(String, String)> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let s = api
        .get_opt(secret)
        .await
        .map_err(|e| Error::kube(format!("read Secret {namespace}/{secret}"), e))?
        .ok_or_else(|| Error::CredentialsMissing {
            namespace: namespace.to_string(),
            secret: secret.to_string(),
            field,
            hint: "",
        })?;
    let key = |k: &str| -> Result<String> {
        let bytes = s
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .or_else(|| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|v| v.clone().into_bytes())
            })
            .ok_or_else(|| Error::CredentialsInvalid {
                secret: secret.to_string(),
                field,
                reason: format!("has no key {k:?}"),
            })?;
        String::from_utf8(bytes).map_err(|_| Error::CredentialsInvalid {
            secret: secret.to_string(),
            field,
            reason: format!("key {k:?} is not UTF-8"),
        })
    };
    Ok((key("user")?, key("password")?))
}

/// How the drill reaches every zone of `region`: `external.url` for external
/// zones, the client Service (or the context's override) for managed ones;
/// the zone's own Secret when it names one, else the region's.
pub async fn zone_accesses(ctx: &Context, region: &RegionMirror) -> Result<Vec<ZoneAccess>> {
    let namespace = region
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = region
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let region_secret = region
        .spec
        .credentials
        .as_ref()
        .map(|c| c.secret_name.clone())
        .unwrap_or_else(|| names::generated_credentials(&name));
    let mut region_creds = None;
    let mut out = Vec::new();
    for zone in &region.spec.zones {
        let (urls, creds) = match &zone.external {
            Some(ext) => {
                let creds = match &ext.credentials_secret {
                    Some(s) => Some(
                        read_user_pass(
                            &ctx.client,
                            &namespace,
                            s,
                            "spec.zones[].external.credentialsSecret",
                        )
                        .await?,
                    ),
                    None => None,
                };
                (vec![ext.url.clone()], creds)
            }
            None => (
                ctx.zone_urls(&namespace, &name, &zone.name, zone.servers)
                    .client,
                None,
            ),
        };
        let (user, password) = match creds {
            Some(c) => c,
            None => {
                if region_creds.is_none() {
                    region_creds = Some(
                        read_user_pass(
                            &ctx.client,
                            &namespace,
                            &region_secret,
                            "spec.credentials.secretName",
                        )
                        .await?,
                    );
                }
                region_creds.clone().expect("just read")
            }
        };
        out.push(ZoneAccess {
            role: zone.role,
            endpoint: ZoneEndpoint {
                zone: zone.name.clone(),
                urls,
                user: Some(user),
                password: Some(password),
                domain: Some(zone.domain().to_string()),
            },
        });
    }
    Ok(out)
}
