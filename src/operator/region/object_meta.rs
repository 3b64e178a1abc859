//! Labels and metadata of the region's objects: a leaf, so the builders
//! and the credentials (which write Secrets) share them without a cycle.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::RegionMirror;
use crate::meta::labels;
use crate::operator::error::{Error, Result};

/// Labels on every object of a region (zone-level objects add the zone).
pub fn region_labels(region: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::NAME.to_string(), "nats".to_string()),
        (labels::REGION.to_string(), region.to_string()),
    ])
}

pub fn zone_labels(region: &str, zone: &str) -> BTreeMap<String, String> {
    let mut l = region_labels(region);
    l.insert(labels::ZONE.to_string(), zone.to_string());
    l
}

/// The pods of a zone (the StatefulSet, PDB and Service selectors).
pub fn selector(region: &str, zone: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_string(), "nats".to_string()),
        (labels::REGION.to_string(), region.to_string()),
        (labels::ZONE.to_string(), zone.to_string()),
    ])
}

/// The region as the controlling owner of its children.
pub fn owner(region: &RegionMirror) -> Result<OwnerReference> {
    region
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))
}

pub fn meta(
    region: &RegionMirror,
    name: String,
    labels: BTreeMap<String, String>,
) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: region.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner(region)?]),
        ..Default::default()
    })
}
