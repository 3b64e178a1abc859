//! The region's drills, as far as its reconcile cares. Provisioning: a
//! drill's `add-temporary-zone` step on a sources region adds its temporary
//! zone's local stream to every aggregate itself (the zone is not in the
//! spec), so while the drill runs the region keeps that source instead of
//! removing it on its next pass, which would falsify the drill's verdict.
//! Status: the drill that holds the region explains its mirrors' lag, and
//! CA rotation waits for it.

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api::{DrillPhase, PartitionDrill, RegionMirror};
use crate::operator::error::{Error, Result};
use crate::plan::local_stream_name;

/// The PartitionDrills of namespace `ns`.
pub async fn list(client: &kube::Client, ns: &str) -> Result<Vec<PartitionDrill>> {
    Ok(Api::<PartitionDrill>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::kube(format!("list the PartitionDrills in {ns}"), e))?
        .items)
}

/// The drill that holds region `region` now (it runs, heals, or has a fault
/// open), read from the drills' statuses.
pub fn holder<'a>(region: &str, drills: &'a [PartitionDrill]) -> Option<&'a PartitionDrill> {
    drills.iter().find(|d| {
        d.spec.region_ref.name == region && d.status.as_ref().is_some_and(|s| s.holds_region())
    })
}

/// The local stream of the temporary zone of every drill of `region` that is
/// running now. A finished drill's source goes with the next pass: its zone
/// is removed with it (or kept, then added to the spec by the user).
pub fn sources_of_running_drills(region: &RegionMirror, drills: &[PartitionDrill]) -> Vec<String> {
    let mut names: Vec<String> = drills
        .iter()
        .filter(|d| d.spec.region_ref.name == region.name_any())
        .filter(|d| {
            d.status
                .as_ref()
                .is_some_and(|s| s.phase == DrillPhase::Running)
        })
        .map(|d| local_stream_name(&region.spec, &d.spec.temporary_zone.name))
        .filter(|name| {
            !region
                .spec
                .zones
                .iter()
                .any(|z| local_stream_name(&region.spec, &z.name) == *name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PartitionDrillStatus;
    use serde_json::json;

    fn region() -> RegionMirror {
        let spec = json!({
            "topology": "sources",
            "stream": {"name": "EV", "subjects": ["ev.{zone}.>"]},
            "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
        });
        RegionMirror::new("east", serde_json::from_value(spec).unwrap())
    }

    fn drill(
        name: &str,
        region: &str,
        temporary: &str,
        phase: Option<DrillPhase>,
    ) -> PartitionDrill {
        let spec = json!({"regionRef": {"name": region}, "temporaryZone": {"name": temporary}});
        let mut d = PartitionDrill::new(name, serde_json::from_value(spec).unwrap());
        d.status = phase.map(|phase| PartitionDrillStatus {
            phase,
            ..Default::default()
        });
        d
    }

    #[test]
    fn only_running_drills_of_this_region_keep_their_temporary_zone() {
        let drills = [
            drill("running", "east", "t1", Some(DrillPhase::Running)),
            drill("same-zone", "east", "t1", Some(DrillPhase::Running)),
            drill("other-region", "west", "t2", Some(DrillPhase::Running)),
            drill("done", "east", "t3", Some(DrillPhase::Succeeded)),
            drill("healing", "east", "t4", Some(DrillPhase::Healing)),
            drill("new", "east", "t5", None),
            // A temporary zone named like a zone of the spec keeps nothing extra.
            drill("spec-zone", "east", "b", Some(DrillPhase::Running)),
        ];
        assert_eq!(sources_of_running_drills(&region(), &drills), ["EV-t1"]);
    }
}
