//! Names a region claims, checked before it writes anything. Object names
//! are `<region>-<zone>…`, so two regions of one namespace can build the same
//! name: region `east` with zone `b-a` and region `east-b` with zone `a` both
//! build StatefulSet `east-b-a` and its claims `data-east-b-a-N`. A region
//! whose names are held by anyone else applies nothing (not half of its
//! zones) and says which object, held by whom, and what to rename; the
//! holder keeps working untouched. `ssa::apply` refuses the same on every
//! write, so no path takes another's object even if this check is skipped.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::Api;

use super::names;
use crate::api::{RegionMirror, TlsMode};
use crate::meta::labels;
use crate::operator::error::{Error, Result};
use crate::operator::ssa::{self, Child, Uncontrolled};

/// The kinds of object a region writes (and the claims its StatefulSets make).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Service,
    StatefulSet,
    PodDisruptionBudget,
    Secret,
    Deployment,
    /// The Toxiproxy's API policy (when the operator runs with it on).
    NetworkPolicy,
    /// Made by the StatefulSet controller from the volume claim template;
    /// a StatefulSet adopts a claim of the name it wants whoever made it.
    PersistentVolumeClaim,
}

/// One name the region will write, and the zone it is built from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    pub kind: Kind,
    pub name: String,
    pub zone: Option<String>,
    /// Generated only when absent and then only read: the generated
    /// credentials, which a user may provide under that name, are used
    /// when no one controls them (another region's are refused).
    pub read_only: bool,
}

/// The name of the volume claim template: claims are `data-<pod>`.
pub const DATA_CLAIM: &str = "data";

/// Every object the region writes or has made for it: each managed zone's
/// objects and data claims, the Secrets the operator generates, and the
/// Toxiproxy.
pub fn claims(region: &RegionMirror) -> Vec<Claim> {
    let r = region.name_any();
    let spec = &region.spec;
    let mut out: Vec<Claim> = Vec::new();
    let mut add = |kind, name: String, zone: Option<&str>, read_only| {
        out.push(Claim {
            kind,
            name,
            zone: zone.map(str::to_string),
            read_only,
        })
    };
    for zone in spec.zones.iter().filter(|z| z.external.is_none()) {
        let (z, n) = (Some(zone.name.as_str()), &zone.name);
        add(Kind::ConfigMap, names::config_map(&r, n), z, false);
        add(Kind::Service, names::headless_service(&r, n), z, false);
        add(Kind::Service, names::client_service(&r, n), z, false);
        if zone.is_source() {
            add(Kind::Service, names::leafnode_service(&r, n), z, false);
        }
        add(Kind::StatefulSet, names::statefulset(&r, n), z, false);
        add(Kind::PodDisruptionBudget, names::pdb(&r, n), z, false);
        if spec.tls.mode == TlsMode::Generated {
            add(Kind::Secret, names::zone_tls_secret(&r, n), z, false);
        }
        for i in 0..zone.servers {
            let claim = format!("{DATA_CLAIM}-{}", names::pod(&r, n, i));
            add(Kind::PersistentVolumeClaim, claim, z, false);
        }
    }
    if spec.credentials.is_none() {
        add(Kind::Secret, names::generated_credentials(&r), None, true);
    }
    add(Kind::Secret, names::system_credentials(&r), None, true);
    // As `certificates::ensure`: no managed zone, no server to certify.
    let managed = spec.zones.iter().any(|z| z.external.is_none());
    if spec.tls.mode == TlsMode::Generated && managed {
        add(Kind::Secret, names::ca_secret(&r), None, false);
    }
    if crate::operator::toxiproxy::enabled(region) {
        add(Kind::Deployment, names::toxiproxy_name(&r), None, false);
        add(Kind::Service, names::toxiproxy_name(&r), None, false);
        add(Kind::NetworkPolicy, names::toxiproxy_name(&r), None, false);
    }
    out
}

/// What to rename so that `claim` of `region` no longer collides.
pub fn rename_hint(region: &str, claim: &Claim) -> String {
    match &claim.zone {
        Some(zone) => format!(
            "zone objects are named <region>-<zone> (here {region}-{zone}), so another region's names can match: rename zone {zone} or region {region} so that no other region of the namespace builds {}",
            claim.name
        ),
        None => format!("rename region {region}, or remove that object if it is not needed"),
    }
}

/// Who holds an existing data claim, when it is not this region's zone's:
/// a claim kept from a deleted region (`deletionPolicy: Retain`) carries the
/// labels of the zone it belonged to, and the StatefulSet would adopt it and
/// serve that zone's data as its own.
pub fn foreign_claim(existing: &ObjectMeta, region: &str, zone: &str) -> Option<String> {
    let label = |key: &str| {
        existing
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    };
    match (label(labels::REGION), label(labels::ZONE)) {
        (Some(r), Some(z)) if r == region && z == zone => None,
        (Some(r), Some(z)) => Some(format!(
            "holds the data of region {r}'s zone {z} (kept after that region or zone was deleted)"
        )),
        _ => Some("was not made for a natsregion zone (no region and zone labels)".to_string()),
    }
}

/// Fails with [`Error::NameConflict`] on the first name of the region that
/// exists and is not the region's own; reads each name, writes nothing.
pub async fn check(client: &kube::Client, region: &RegionMirror) -> Result<()> {
    let ns = region
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let uid = region.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let name = region.name_any();
    for claim in claims(region) {
        let hint = rename_hint(&name, &claim);
        let (c, n) = (client, &ns);
        match claim.kind {
            Kind::ConfigMap => free::<ConfigMap>(c, n, &claim, &uid, &hint).await?,
            Kind::Service => free::<Service>(c, n, &claim, &uid, &hint).await?,
            Kind::StatefulSet => free::<StatefulSet>(c, n, &claim, &uid, &hint).await?,
            Kind::PodDisruptionBudget => {
                free::<PodDisruptionBudget>(c, n, &claim, &uid, &hint).await?
            }
            Kind::Secret => free::<Secret>(c, n, &claim, &uid, &hint).await?,
            Kind::Deployment => free::<Deployment>(c, n, &claim, &uid, &hint).await?,
            Kind::NetworkPolicy => free::<NetworkPolicy>(c, n, &claim, &uid, &hint).await?,
            Kind::PersistentVolumeClaim => {
                let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
                let existing = api.get_metadata_opt(&claim.name).await.map_err(|e| {
                    Error::kube(format!("read PersistentVolumeClaim {}", claim.name), e)
                })?;
                let zone = claim.zone.as_deref().unwrap_or_default();
                if let Some(holder) = existing.and_then(|e| foreign_claim(&e.metadata, &name, zone))
                {
                    return Err(Error::NameConflict {
                        kind: "PersistentVolumeClaim".to_string(),
                        name: claim.name,
                        holder,
                        hint: format!(
                            "{hint} (or, if that data is no longer wanted, delete the claim)"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

async fn free<K: Child>(
    client: &kube::Client,
    ns: &str,
    claim: &Claim,
    uid: &str,
    hint: &str,
) -> Result<()> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let uncontrolled = if claim.read_only {
        Uncontrolled::Read
    } else {
        Uncontrolled::Refuse
    };
    ssa::ensure_free(&api, &claim.name, Some(uid), uncontrolled, hint).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::region::children::{ChildKind, region_children};
    use crate::operator::region::validated::fixture;
    use std::collections::BTreeSet;

    fn region(name: &str, zones: &[&str]) -> RegionMirror {
        let zones: Vec<_> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                serde_json::json!({"name": z, "role": if i == 0 {"source"} else {"mirror"}, "servers": 1})
            })
            .collect();
        let mut r = RegionMirror::new(
            name,
            serde_json::from_value(serde_json::json!({
                "stream": {"name": "EVENTS", "subjects": ["e.>"], "replicas": 1},
                "zones": zones,
            }))
            .unwrap(),
        );
        r.metadata.namespace = Some("ns1".into());
        r.metadata.uid = Some(format!("uid-{name}"));
        r
    }

    #[test]
    fn the_claims_are_every_object_the_builders_make() {
        let r = region("east", &["a", "b"]);
        let built = region_children(&fixture(&r, "nats")).unwrap();
        let claimed = claims(&r);
        for kind in ChildKind::ALL {
            let want: BTreeSet<String> = built.iter().flat_map(|c| c.names_of(kind)).collect();
            let got: BTreeSet<String> = claimed
                .iter()
                .filter(|c| format!("{:?}", c.kind) == kind.as_str())
                .map(|c| c.name.clone())
                .collect();
            assert_eq!(got, want, "{kind:?}");
        }
        let claim = |k| {
            claimed
                .iter()
                .filter(move |c| c.kind == k)
                .map(|c| c.name.as_str())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            claim(Kind::PersistentVolumeClaim),
            BTreeSet::from(["data-east-a-0", "data-east-b-0"])
        );
        let pvc = built[0]
            .statefulset
            .spec
            .volume_claim_templates
            .as_ref()
            .unwrap();
        assert_eq!(pvc[0].metadata.name.as_deref(), Some(DATA_CLAIM));
        assert_eq!(
            claim(Kind::Secret),
            BTreeSet::from([
                "east-a-tls",
                "east-b-tls",
                "east-ca",
                "east-credentials",
                "east-system-credentials"
            ])
        );
    }

    #[test]
    fn only_the_generated_credentials_may_be_provided_by_hand() {
        let read_only: BTreeSet<String> = claims(&region("east", &["a"]))
            .into_iter()
            .filter(|c| c.read_only)
            .map(|c| c.name)
            .collect();
        assert_eq!(
            read_only,
            BTreeSet::from(["east-credentials".into(), "east-system-credentials".into()])
        );
    }

    #[test]
    fn a_region_of_external_zones_claims_no_ca() {
        let mut r = region("ext", &["a", "b"]);
        for z in &mut r.spec.zones {
            z.external = Some(
                serde_json::from_value(serde_json::json!({"url": "nats://127.0.0.1:4222"}))
                    .unwrap(),
            );
        }
        let secrets: Vec<_> = claims(&r)
            .into_iter()
            .filter(|c| c.kind == Kind::Secret)
            .map(|c| c.name)
            .collect();
        assert_eq!(secrets, ["ext-credentials", "ext-system-credentials"]);
    }

    #[test]
    fn regions_whose_zone_names_run_together_claim_the_same_names() {
        let east = claims(&region("east", &["a", "b-a"]));
        let east_b = claims(&region("east-b", &["a", "c"]));
        let shared: BTreeSet<_> = east
            .iter()
            .filter(|c| east_b.iter().any(|d| d.kind == c.kind && d.name == c.name))
            .map(|c| c.name.as_str())
            .collect();
        assert!(shared.contains("east-b-a"), "{shared:?}");
        assert!(shared.contains("data-east-b-a-0"), "{shared:?}");
        let sts = east_b
            .iter()
            .find(|c| c.kind == Kind::StatefulSet && c.name == "east-b-a")
            .unwrap();
        let hint = rename_hint("east-b", sts);
        assert!(hint.contains("rename zone a or region east-b"), "{hint}");
    }

    #[test]
    fn a_kept_claim_is_its_own_zones_only() {
        let kept = |r: &str, z: &str| ObjectMeta {
            labels: Some(
                [(labels::REGION, r), (labels::ZONE, z)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(foreign_claim(&kept("east-b", "a"), "east-b", "a"), None);
        let other = foreign_claim(&kept("east", "b-a"), "east-b", "a").unwrap();
        assert!(other.contains("region east's zone b-a"), "{other}");
        let bare = foreign_claim(&ObjectMeta::default(), "east-b", "a").unwrap();
        assert!(bare.contains("no region and zone labels"), "{bare}");
    }
}
