//! One region, validated and read once per reconcile and once per drill:
//! the facts every builder and the drill runtime need (namespace, name,
//! owner uid, the effective image, the credentials), so none of them derives
//! them again, or differently.

use kube::ResourceExt;

use super::credentials::{self, Credentials};
use super::effective_image;
use crate::api::validate;
use crate::api::{RegionMirror, ZoneSpec};
use crate::operator::context::{Context, ZoneUrls};
use crate::operator::error::{Error, Result};

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
}

impl ValidatedRegion {
    /// Checks the spec with the CRD's own rules, then reads the credentials.
    pub async fn load(ctx: &Context, region: &RegionMirror) -> Result<Self> {
        validate::region(region, None)?;
        let namespace = region
            .namespace()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let uid = region.uid().ok_or(Error::MissingField("metadata.uid"))?;
        let credentials = credentials::ensure(&ctx.client, region).await?;
        Ok(Self {
            namespace,
            name: region.name_any(),
            uid,
            image: effective_image(&region.spec.image, &ctx.settings.default_nats_image)
                .to_string(),
            credentials,
            region: region.clone(),
        })
    }

    pub fn source_zone(&self) -> Option<&ZoneSpec> {
        self.region.spec.source_zone()
    }

    /// How this process dials managed zone `zone`.
    pub fn zone_urls(&self, ctx: &Context, zone: &ZoneSpec) -> ZoneUrls {
        ctx.zone_urls(&self.namespace, &self.name, &zone.name, zone.servers)
    }
}
