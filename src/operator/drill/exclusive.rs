//! One drill per region at a time. Two drills on one region would undo each
//! other's cuts (NetworkPolicies only add allowances, a Toxiproxy heal
//! enables every proxy of the region) and both would blame the region. A
//! drill whose region is busy waits, Pending, with a message naming the
//! drill that holds it; a scheduled run whose time comes while the region
//! is busy is skipped and says so.
//!
//! Busy means: a drill task of this process runs on the region (or is being
//! started, so two drills created together cannot both pass the check), or
//! another drill's status says it is running or has faults open (an
//! operator restarted while it ran: its orphan heal comes first).

use super::*;

/// A region, as `(namespace, name)`.
pub type RegionKey = (String, String);

pub fn region_key(drill: &PartitionDrill) -> RegionKey {
    (
        drill.namespace().unwrap_or_default(),
        drill.spec.region_ref.name.clone(),
    )
}

/// The drill (by name) that holds `drill`'s region in `others`' statuses,
/// other than `drill` itself. Pure.
pub fn holder_in_statuses<'a>(
    drill: &PartitionDrill,
    others: impl IntoIterator<Item = &'a PartitionDrill>,
) -> Option<String> {
    let key = region_key(drill);
    others
        .into_iter()
        .filter(|o| o.uid() != drill.uid() && region_key(o) == key)
        .find(|o| o.status.as_ref().is_some_and(|s| s.holds_region()))
        .map(|o| o.name_any())
}

/// Starts of this process in flight, by region: the drill's uid and name.
#[derive(Default)]
pub struct Starting(Mutex<HashMap<RegionKey, (String, String)>>);

impl Shared {
    /// Reserves `drill`'s region for it, or names the drill that holds it.
    /// The reservation lasts until [`Shared::unreserve`], once the task is
    /// registered (the tasks then hold the region) or the start failed.
    pub(super) fn reserve(&self, drill: &PartitionDrill) -> std::result::Result<(), String> {
        let key = region_key(drill);
        let uid = drill.uid().unwrap_or_default();
        let tasks = self.tasks.lock().expect("tasks");
        if let Some(other) = tasks
            .iter()
            .find(|(u, r)| **u != uid && r.region == key && !r.handle.is_finished())
        {
            return Err(other.1.name.clone());
        }
        let mut starting = self.starting.0.lock().expect("starting");
        match starting.get(&key) {
            Some((u, name)) if *u != uid => Err(name.clone()),
            _ => {
                starting.insert(key, (uid, drill.name_any()));
                Ok(())
            }
        }
    }

    /// The reservation is over: the task is registered, or the start failed.
    pub(super) fn unreserve(&self, drill: &PartitionDrill) {
        let key = region_key(drill);
        let mut starting = self.starting.0.lock().expect("starting");
        if starting
            .get(&key)
            .is_some_and(|(u, _)| Some(u.as_str()) == drill.uid().as_deref())
        {
            starting.remove(&key);
        }
    }
}

/// `Some(holder)` when `drill` may not start now. Reserves the region when
/// it may: the caller must [`Shared::unreserve`] once the task is registered
/// or the start failed.
pub(super) async fn busy(
    shared: &Shared,
    api: &Api<PartitionDrill>,
    drill: &PartitionDrill,
) -> Result<Option<String>> {
    let others = api
        .list(&Default::default())
        .await
        .map_err(|e| Error::kube("list the drills of the namespace", e))?;
    if let Some(holder) = holder_in_statuses(drill, &others.items) {
        return Ok(Some(holder));
    }
    Ok(shared.reserve(drill).err())
}

/// The status of a drill that waits for `holder`: Pending, saying so. A
/// scheduled run is skipped instead: it keeps its last result, records the
/// schedule time it stood for, and says why it did not run.
pub(super) fn waiting(
    drill: &PartitionDrill,
    holder: &str,
    scheduled_at: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> PartitionDrillStatus {
    let region = &drill.spec.region_ref.name;
    let mut s = drill.status.clone().unwrap_or_default();
    match scheduled_at {
        Some(at) if s.phase.is_finished() => {
            s.last_schedule_time = Some(Time(at));
            s.message = Some(format!(
                "the run scheduled at {at} was skipped: drill {holder} was running on region {region} (one drill per region at a time)"
            ));
        }
        _ => {
            s.phase = DrillPhase::Pending;
            s.message = Some(format!(
                "waiting for drill {holder}, which is running on region {region}: one drill per region at a time"
            ));
        }
    }
    conditions::update(&mut s, drill.metadata.generation, now);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PartitionDrillStatus;

    fn drill(name: &str, region: &str, phase: Option<DrillPhase>) -> PartitionDrill {
        let spec = serde_json::from_value(serde_json::json!({"regionRef": {"name": region}}))
            .expect("drill spec");
        let mut d = PartitionDrill::new(name, spec);
        d.metadata.namespace = Some("ns".into());
        d.metadata.uid = Some(format!("uid-{name}"));
        d.status = phase.map(|phase| PartitionDrillStatus {
            phase,
            ..Default::default()
        });
        d
    }

    #[test]
    fn a_running_drill_on_the_same_region_holds_it() {
        let me = drill("me", "east", None);
        let others = [
            drill("done", "east", Some(DrillPhase::Succeeded)),
            drill("elsewhere", "west", Some(DrillPhase::Running)),
            drill("me", "east", Some(DrillPhase::Running)),
        ];
        assert_eq!(holder_in_statuses(&me, &others), None);
        let others = [drill("nightly", "east", Some(DrillPhase::Healing))];
        assert_eq!(
            holder_in_statuses(&me, &others),
            Some("nightly".to_string())
        );
    }

    #[test]
    fn a_one_shot_drill_waits_and_a_scheduled_run_is_skipped() {
        let now: jiff::Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        let s = waiting(&drill("me", "east", None), "nightly", None, now);
        assert_eq!(s.phase, DrillPhase::Pending);
        let m = s.message.unwrap();
        assert!(m.contains("nightly") && m.contains("east"), "{m}");
        let mut done = drill("me", "east", Some(DrillPhase::Succeeded));
        done.spec.schedule = Some("0 * * * *".into());
        let s = waiting(&done, "nightly", Some(now), now);
        assert_eq!(s.phase, DrillPhase::Succeeded, "the last result stands");
        assert_eq!(s.last_schedule_time, Some(Time(now)));
        assert!(s.message.unwrap().contains("skipped"));
    }
}
