//! One region, validated and read once per reconcile and once per drill:
//! the facts every builder and the drill runtime need (namespace, name,
//! owner uid, the effective image, the credentials), so none of them derives
//! them again, or differently.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use super::certificates::{self, RegionTls, ZoneCertificate};
use super::credentials::{self, Credentials};
use super::secrets::{SecretCache, Secrets};
use crate::api::validate;
use crate::api::{RegionMirror, ZoneSpec};
use crate::operator::context::{Context, ZoneUrls};
use crate::operator::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct ValidatedRegion {
    pub region: RegionMirror,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// What managed zones run: the spec's image, or the operator's default
    /// when the spec makes no choice.
    pub image: String,
    /// Read (or generated, the first time) from the region's Secrets.
    pub credentials: Credentials,
    /// The region's CA and zone certificates (`None`: `tls.mode: Disabled`
    /// and no external zone with a CA).
    pub tls: Option<RegionTls>,
    /// A prometheus-nats-exporter image for a sidecar beside each managed
    /// zone's servers (the operator's `--nats-exporter-image`); `None`: none.
    pub exporter_image: Option<String>,
}

impl ValidatedRegion {
    /// Checks the spec with the CRD's own rules, then reads the credentials
    /// and certificates (the operator's own Secrets from `cache` when it
    /// holds them, see [`Secrets`]).
    pub async fn load(
        ctx: &Context,
        region: &RegionMirror,
        cache: Option<&SecretCache>,
    ) -> Result<Self> {
        let (namespace, uid) = identity(region)?;
        let secrets = Secrets::new(&ctx.client, &namespace, cache);
        let credentials = credentials::ensure(&secrets, region).await?;
        let tls = certificates::ensure(&ctx.client, &secrets, region).await?;
        let expiry = tls.as_ref().map(|t| t.expiry.clone()).unwrap_or_default();
        ctx.metrics
            .set_certificate_expiry(&namespace, &region.name_any(), &expiry);
        let mut valid = Self::assemble(
            region,
            namespace,
            uid,
            &ctx.settings.default_nats_image,
            credentials,
            tls,
        );
        valid.exporter_image = ctx.settings.nats_exporter_image.clone();
        Ok(valid)
    }

    /// The same without the API server: credentials and certificates given (tests, benches).
    pub fn new(
        region: &RegionMirror,
        default_image: &str,
        credentials: Credentials,
        tls: Option<RegionTls>,
    ) -> Result<Self> {
        let (namespace, uid) = identity(region)?;
        Ok(Self::assemble(
            region,
            namespace,
            uid,
            default_image,
            credentials,
            tls,
        ))
    }

    fn assemble(
        region: &RegionMirror,
        namespace: String,
        uid: String,
        default_image: &str,
        credentials: Credentials,
        tls: Option<RegionTls>,
    ) -> Self {
        Self {
            tls,
            namespace,
            name: region.name_any(),
            uid,
            image: effective_image(&region.spec.image, default_image).to_string(),
            credentials,
            region: region.clone(),
            exporter_image: None,
        }
    }

    pub fn source_zone(&self) -> Option<&ZoneSpec> {
        self.region.spec.source_zone()
    }

    /// The region's object that owns its children.
    pub fn owner(&self) -> Result<OwnerReference> {
        super::object_meta::owner(&self.region)
    }

    /// Whether the managed zones run TLS.
    pub fn tls_enabled(&self) -> bool {
        self.region.spec.tls.enabled()
    }

    /// The CA zone `zone` is verified with (see [`RegionTls::ca_for`]).
    pub fn zone_ca(&self, zone: &ZoneSpec) -> Option<String> {
        let tls = self.tls.as_ref()?;
        if zone.external.is_none() && !self.tls_enabled() {
            return None;
        }
        tls.ca_for(zone).map(str::to_string)
    }

    /// The certificate Secret managed zone `zone` mounts: the one read or
    /// issued for it, else (a drill's temporary zone) the one it will get.
    pub fn zone_certificate(&self, zone: &str) -> Option<ZoneCertificate> {
        if !self.tls_enabled() {
            return None;
        }
        if let Some(c) = self.tls.as_ref().and_then(|t| t.zone_secrets.get(zone)) {
            return Some(c.clone());
        }
        let secret = match self.region.spec.tls.zone_secret(zone) {
            Some(s) => s.to_string(),
            None => super::names::zone_tls_secret(&self.name, zone),
        };
        Some(ZoneCertificate {
            secret,
            fingerprint: String::new(),
        })
    }

    /// Mirror zones whose link to the source cannot be trusted, with why
    /// (see `certificates::untrusted_links`).
    pub fn untrusted_links(&self) -> impl Iterator<Item = (&String, &String)> {
        self.tls.iter().flat_map(|t| t.untrusted.iter())
    }

    /// How this process dials managed zone `zone`, and the CA it verifies
    /// the servers with.
    pub fn zone_urls(&self, ctx: &Context, zone: &ZoneSpec) -> ZoneUrls {
        let mut urls = ctx.zone_urls(&self.namespace, &self.name, &zone.name, zone.servers);
        if urls.ca.is_none() {
            urls.ca = self.zone_ca(zone);
        }
        urls
    }
}

/// The image for a region's servers. The CRD fills in `api::default_image()`
/// when a spec names none, so that value (or an empty one) means "no choice
/// made" and the operator's `--default-nats-image` applies: a cluster can point
/// every region at a mirrored registry without editing them.
pub fn effective_image<'a>(spec_image: &'a str, operator_default: &'a str) -> &'a str {
    if spec_image.is_empty() || spec_image == crate::api::default_image() {
        operator_default
    } else {
        spec_image
    }
}

/// The rules, then the identity every child's owner reference needs.
fn identity(region: &RegionMirror) -> Result<(String, String)> {
    validate::region(region, None)?;
    let namespace = region
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let uid = region.uid().ok_or(Error::MissingField("metadata.uid"))?;
    Ok((namespace, uid))
}

/// A validated region for builder tests and benchmarks: fixed credentials
/// in the Secrets the operator would generate.
#[cfg(any(test, feature = "testkit"))]
pub fn fixture(region: &RegionMirror, default_image: &str) -> ValidatedRegion {
    use crate::plan::UserPass;
    let name = region.name_any();
    let credentials = Credentials {
        refs: super::credentials::SecretRefs {
            app: super::names::generated_credentials(&name),
            system: super::names::system_credentials(&name),
        },
        app: UserPass {
            user: "app".into(),
            password: "app-secret".into(),
        },
        system: UserPass {
            user: "sys".into(),
            password: "sys-secret".into(),
        },
    };
    let tls = region.spec.tls.enabled().then(|| RegionTls {
        ca: "fixture CA".to_string(),
        zone_secrets: region
            .spec
            .zones
            .iter()
            .filter(|z| z.external.is_none())
            .map(|z| {
                let secret = region
                    .spec
                    .tls
                    .zone_secret(&z.name)
                    .map(str::to_string)
                    .unwrap_or_else(|| super::names::zone_tls_secret(&name, &z.name));
                let cert = ZoneCertificate {
                    secret,
                    fingerprint: format!("fixture-{}", z.name),
                };
                (z.name.clone(), cert)
            })
            .collect(),
        issuer: None,
        expiry: Default::default(),
        rotation: None,
        external_cas: Default::default(),
        untrusted: Default::default(),
    });
    ValidatedRegion::new(region, default_image, credentials, tls).expect("a valid test region")
}

#[cfg(test)]
mod tests {
    use super::effective_image;

    #[test]
    fn operator_default_image_applies_when_the_spec_made_no_choice() {
        let crd_default = crate::api::default_image();
        assert_eq!(
            effective_image("", "registry.local/nats:2"),
            "registry.local/nats:2"
        );
        assert_eq!(
            effective_image(&crd_default, "registry.local/nats:2"),
            "registry.local/nats:2"
        );
        assert_eq!(
            effective_image("nats:2.14.1", "registry.local/nats:2"),
            "nats:2.14.1"
        );
    }
}
