//! What a drill's fault backend needs of its region, checked before any
//! fault: a backend that cannot cut the region's links would only report a
//! leak, and one that would cut more than asked would disturb zones the
//! drill leaves alone. Pure; each message names the field to change.

use std::collections::BTreeMap;

use crate::api::{FaultBackend, LeafnodeProxy, PartitionDrill, RegionMirror};
use crate::fault::networkpolicy::external_cidr;

/// The zones a drill cuts: `fault.zones`, or every mirror zone.
pub fn cut_zones(drill: &PartitionDrill, region: &RegionMirror) -> Vec<String> {
    if drill.spec.fault.zones.is_empty() {
        region.spec.mirror_zones().map(|z| z.name.clone()).collect()
    } else {
        drill.spec.fault.zones.clone()
    }
}

/// The region's external zones by the address a NetworkPolicy can name
/// (zones known by a host name are left out).
pub fn external_addresses(region: &RegionMirror) -> BTreeMap<String, String> {
    region
        .spec
        .zones
        .iter()
        .filter_map(|z| {
            let url = &z.external.as_ref()?.url;
            Some((z.name.clone(), external_cidr(url)?))
        })
        .collect()
}

pub fn check(drill: &PartitionDrill, region: &RegionMirror) -> Result<(), String> {
    match drill.spec.fault.backend {
        FaultBackend::Toxiproxy => super::toxiproxy::precondition(region),
        FaultBackend::NetworkPolicy => network_policy(drill, region),
    }
}

/// A `networkPolicy` drill needs the mirror zones to dial the source zone's
/// pods: through the region's Toxiproxy the leafnode traffic comes from the
/// Toxiproxy pod, which the cut's policies do not select, so nothing would
/// be cut. And every external mirror zone it leaves linked must be known by
/// address: the policies let it in by an `ipBlock`, and a host name cannot
/// be one, so the zone would be cut along with the others.
fn network_policy(drill: &PartitionDrill, region: &RegionMirror) -> Result<(), String> {
    let name = kube::ResourceExt::name_any(region);
    if region.spec.leafnode.proxy == LeafnodeProxy::Toxiproxy {
        return Err(format!(
            "fault.backend networkPolicy cannot cut RegionMirror {name}: its spec.leafnode.proxy is toxiproxy, so the leafnode links come from the Toxiproxy pod, which NetworkPolicies on the zones' pods do not cut; use fault.backend toxiproxy (or set spec.leafnode.proxy: none on the region)"
        ));
    }
    let cut = cut_zones(drill, region);
    let addresses = external_addresses(region);
    let unnamed: Vec<String> = region
        .spec
        .mirror_zones()
        .filter(|z| z.external.is_some() && !cut.contains(&z.name))
        .filter(|z| !addresses.contains_key(&z.name))
        .map(|z| z.name.clone())
        .collect();
    if unnamed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "fault.backend networkPolicy would cut external zone(s) {} of RegionMirror {name} too: a NetworkPolicy can let a zone outside the cluster in only by address, and their external.url names a host; give them an IP address in external.url, add them to fault.zones, or use fault.backend toxiproxy",
        unnamed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(zones: serde_json::Value, proxy: &str) -> RegionMirror {
        RegionMirror::new(
            "east",
            serde_json::from_value(serde_json::json!({
                "zones": zones,
                "stream": {"name": "EVENTS", "subjects": ["events.>"]},
                "leafnode": {"proxy": proxy},
            }))
            .expect("region spec"),
        )
    }

    fn drill(backend: &str, zones: &[&str]) -> PartitionDrill {
        PartitionDrill::new(
            "d",
            serde_json::from_value(serde_json::json!({
                "regionRef": {"name": "east"},
                "fault": {"backend": backend, "zones": zones},
            }))
            .expect("drill spec"),
        )
    }

    fn managed() -> serde_json::Value {
        serde_json::json!([{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}])
    }

    #[test]
    fn a_network_policy_drill_refuses_a_region_linked_through_toxiproxy() {
        let np = drill("networkPolicy", &[]);
        assert_eq!(check(&np, &region(managed(), "none")), Ok(()));
        let e = check(&np, &region(managed(), "toxiproxy")).unwrap_err();
        assert!(
            e.contains("spec.leafnode.proxy") && e.contains("fault.backend toxiproxy"),
            "{e}"
        );
        let e = check(&drill("toxiproxy", &[]), &region(managed(), "none")).unwrap_err();
        assert!(e.contains("spec.leafnode.proxy: toxiproxy"), "{e}");
    }

    #[test]
    fn external_zones_left_linked_must_be_known_by_address() {
        let zones = serde_json::json!([
            {"name": "a", "role": "source"},
            {"name": "b", "role": "mirror"},
            {"name": "c", "role": "mirror", "domain": "c", "external": {"url": "nats://203.0.113.7:4222"}},
            {"name": "d", "role": "mirror", "domain": "d", "external": {"url": "nats://nats.example.com:4222"}},
        ]);
        let r = region(zones, "none");
        assert_eq!(
            external_addresses(&r),
            BTreeMap::from([("c".to_string(), "203.0.113.7/32".to_string())])
        );
        // Cutting b leaves d linked, and d cannot be named.
        let e = check(&drill("networkPolicy", &["b"]), &r).unwrap_err();
        assert!(
            e.contains("external zone(s) d") && e.contains("fault.zones"),
            "{e}"
        );
        // Cutting d (or every mirror) leaves only zones that can be named.
        assert_eq!(check(&drill("networkPolicy", &["b", "d"]), &r), Ok(()));
        assert_eq!(check(&drill("networkPolicy", &[]), &r), Ok(()));
    }
}
