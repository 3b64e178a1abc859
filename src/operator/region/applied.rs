//! What the controller last applied for each region, so that a steady
//! region's periodic refresh only observes its zones. Re-applying a region's
//! 18 children and listing four kinds to prune them on every refresh was what
//! the API server spent its time on at 1000 regions (a no-op Server-Side
//! Apply still costs the server a full merge, and every prune list filters
//! every child of the namespace).
//!
//! A record is trusted only while none of the region's children changed
//! since the pass that applied them began: every watch event of a child
//! (drift, deletion, a StatefulSet's status moving) counts against its owner,
//! and a pass whose start predates the last event is not proof of anything.
//! The events of the pass's own writes are the exception: an event carrying
//! a resourceVersion one of the pass's applies returned is that write coming
//! back (a resourceVersion names one write of the whole cluster), so a new
//! region is applied once, not once more because its children appeared.
//! A record also expires, so a change the watch missed is still undone.
//!
//! One small entry per region that has been applied, dropped with the region;
//! events for regions without an entry are not counted (their next reconcile
//! applies in full anyway), so deleted regions' children leave nothing behind.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;

use super::children::ZoneChildren;
use crate::api::RegionMirror;

/// The longest a region goes without its children applied in full.
pub const FULL_PASS_EVERY: Duration = Duration::from_secs(300);

/// Ready replicas per zone, as the last full pass read them off the
/// StatefulSets it applied.
pub type ReadyReplicas = HashMap<String, i32>;

#[derive(Default)]
pub struct AppliedChildren {
    regions: Mutex<HashMap<String, Entry>>,
    /// The generation whose names `ownership::check` last found free, per
    /// region: a region keeps the names it holds (no one else can create
    /// them), so only a new spec, or a new operator, needs to look again.
    names_free: Mutex<HashMap<String, Option<i64>>>,
}

#[derive(Default)]
struct Entry {
    /// Watch events of the region's children since the entry was made,
    /// not counting the operator's own writes.
    child_events: u64,
    /// The resourceVersions the last full pass's applies returned.
    own_writes: HashSet<String>,
    /// While a full pass runs: the resourceVersions of the children's events
    /// since it began, judged against its writes when it ends.
    during_pass: Option<Vec<String>>,
    applied: Option<Applied>,
}

struct Applied {
    fingerprint: u64,
    /// `child_events` when the pass that applied began.
    events_before: u64,
    at: Instant,
    ready_replicas: ReadyReplicas,
}

/// How a region is named here and in the controller's own maps.
pub fn region_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Why a reconcile applies every child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPass {
    /// Not since this operator started.
    NeverApplied,
    /// What the region builds now differs from what was applied.
    BuildChanged,
    /// A child changed, and not by the operator's last pass.
    ChildChanged,
    /// The last full pass is [`FULL_PASS_EVERY`] old.
    Expired,
}

impl FullPass {
    pub fn as_str(self) -> &'static str {
        match self {
            FullPass::NeverApplied => "never_applied",
            FullPass::BuildChanged => "build_changed",
            FullPass::ChildChanged => "child_changed",
            FullPass::Expired => "expired",
        }
    }
}

/// Whether a full pass lists the region's children to delete those of zones
/// no longer in its spec. A region whose status was never written has had
/// no pass succeed, so no spec of it before this one has children to lose;
/// listing four kinds for each of a thousand new regions was a tenth of what
/// the API server served while they came up. A pass that created children
/// and then failed before any status was written leaves them to the next
/// pass that is not the region's first, at the latest [`FULL_PASS_EVERY`]
/// after it succeeds.
pub fn prune_due(why: FullPass, status_written: bool) -> bool {
    status_written || why != FullPass::NeverApplied
}

/// A full pass under way: what it saw before it wrote anything.
#[must_use]
pub struct Pass {
    region: String,
    events_before: u64,
}

impl AppliedChildren {
    /// A watch event of a child: every region owning it must apply again,
    /// unless the event is its own last write coming back.
    pub fn child_changed(&self, child: &ObjectMeta) {
        let ns = child.namespace.as_deref().unwrap_or_default();
        let version = child.resource_version.clone().unwrap_or_default();
        let kind = RegionMirror::kind(&());
        let api_version = RegionMirror::api_version(&());
        let mut regions = self.regions.lock().expect("applied lock");
        for owner in child.owner_references.iter().flatten() {
            if owner.kind == kind
                && owner.api_version == api_version
                && let Some(entry) = regions.get_mut(&region_key(ns, &owner.name))
            {
                if entry.own_writes.contains(&version) {
                    continue;
                }
                match &mut entry.during_pass {
                    Some(seen) => seen.push(version.clone()),
                    None => {
                        tracing::debug!(
                            region = %owner.name,
                            child = child.name.as_deref().unwrap_or_default(),
                            version,
                            "a child changed, not by the operator's last full pass"
                        );
                        entry.child_events += 1;
                    }
                }
            }
        }
    }

    /// The ready replicas of the last full pass, when that pass applied
    /// exactly `fingerprint`, no child changed since it began and it is
    /// younger than [`FULL_PASS_EVERY`]; otherwise why a full pass is due.
    pub fn unchanged(
        &self,
        region: &str,
        fingerprint: u64,
        now: Instant,
    ) -> Result<ReadyReplicas, FullPass> {
        let regions = self.regions.lock().expect("applied lock");
        let Some((entry, applied)) = regions
            .get(region)
            .and_then(|e| Some((e, e.applied.as_ref()?)))
        else {
            return Err(FullPass::NeverApplied);
        };
        if applied.fingerprint != fingerprint {
            Err(FullPass::BuildChanged)
        } else if applied.events_before != entry.child_events {
            Err(FullPass::ChildChanged)
        } else if now.saturating_duration_since(applied.at) >= FULL_PASS_EVERY {
            Err(FullPass::Expired)
        } else {
            Ok(applied.ready_replicas.clone())
        }
    }

    /// Starts a full pass; call before the first write.
    pub fn begin(&self, region: &str) -> Pass {
        let mut regions = self.regions.lock().expect("applied lock");
        let entry = regions.entry(region.to_string()).or_default();
        // A pass that failed left its events unjudged: they count.
        if let Some(seen) = entry.during_pass.replace(Vec::new()) {
            entry.child_events += seen.len() as u64;
        }
        Pass {
            region: region.to_string(),
            events_before: entry.child_events,
        }
    }

    /// A full pass succeeded: `fingerprint` is what it applied, and
    /// `own_writes` the resourceVersions its applies returned.
    pub fn record(
        &self,
        pass: Pass,
        fingerprint: u64,
        ready_replicas: ReadyReplicas,
        own_writes: HashSet<String>,
        at: Instant,
    ) {
        let mut regions = self.regions.lock().expect("applied lock");
        let entry = regions.entry(pass.region).or_default();
        let seen = entry.during_pass.take().unwrap_or_default();
        entry.child_events += seen.iter().filter(|v| !own_writes.contains(*v)).count() as u64;
        entry.own_writes = own_writes;
        entry.applied = Some(Applied {
            fingerprint,
            events_before: pass.events_before,
            at,
            ready_replicas,
        });
    }

    /// Whether the region's names must be checked before it writes: not
    /// yet for this `generation` since this operator started.
    pub fn names_check_due(&self, region: &str, generation: Option<i64>) -> bool {
        let checked = self.names_free.lock().expect("applied lock");
        checked.get(region) != Some(&generation)
    }

    /// The region's names were free at `generation`.
    pub fn names_checked(&self, region: &str, generation: Option<i64>) {
        let mut checked = self.names_free.lock().expect("applied lock");
        checked.insert(region.to_string(), generation);
    }

    /// The region is gone.
    pub fn forget(&self, region: &str) {
        self.regions.lock().expect("applied lock").remove(region);
        self.names_free.lock().expect("applied lock").remove(region);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.regions.lock().expect("applied lock").len()
    }
}

/// What a full pass applies, as one number: every child as built, and
/// whether the region has a Toxiproxy (without one, a full pass deletes it).
pub fn fingerprint(children: &[ZoneChildren], toxiproxy: bool) -> u64 {
    let mut hasher = HashWriter(xxhash_rust::xxh3::Xxh3::new());
    for zone in children {
        hash_json(&mut hasher, &zone.config_map);
        hash_json(&mut hasher, &zone.headless);
        hash_json(&mut hasher, &zone.client);
        hash_json(&mut hasher, &zone.leafnode);
        hash_json(&mut hasher, &zone.statefulset);
        hash_json(&mut hasher, &zone.pdb);
    }
    hasher.0.update(&[u8::from(toxiproxy)]);
    hasher.0.digest()
}

fn hash_json(hasher: &mut HashWriter, value: &impl Serialize) {
    // Built objects always serialize; a failure would only make two
    // different builds hash alike if both failed at the same byte.
    let _ = serde_json::to_writer(&mut *hasher, value);
    hasher.0.update(b"\n");
}

struct HashWriter(xxhash_rust::xxh3::Xxh3);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn only_a_never_observed_regions_first_pass_skips_the_prune() {
        assert!(!prune_due(FullPass::NeverApplied, false));
        assert!(prune_due(FullPass::NeverApplied, true));
        for why in [
            FullPass::BuildChanged,
            FullPass::ChildChanged,
            FullPass::Expired,
        ] {
            assert!(prune_due(why, false) && prune_due(why, true));
        }
    }

    fn child_of(region: &str) -> ObjectMeta {
        written(region, "100")
    }

    /// A child of `region` as written at `version`.
    fn written(region: &str, version: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("ns".into()),
            name: Some(format!("{region}-a")),
            resource_version: Some(version.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: RegionMirror::api_version(&()).into(),
                kind: RegionMirror::kind(&()).into(),
                name: region.into(),
                uid: "u".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn ready() -> ReadyReplicas {
        HashMap::from([("a".to_string(), 3)])
    }

    #[test]
    fn a_pass_is_trusted_until_a_child_changes_the_build_changes_or_it_expires() {
        let applied = AppliedChildren::default();
        let t0 = Instant::now();
        assert_eq!(
            applied.unchanged("ns/r", 7, t0),
            Err(FullPass::NeverApplied)
        );
        let pass = applied.begin("ns/r");
        applied.record(pass, 7, ready(), HashSet::new(), t0);
        assert_eq!(applied.unchanged("ns/r", 7, t0), Ok(ready()));
        assert_eq!(
            applied.unchanged("ns/r", 8, t0),
            Err(FullPass::BuildChanged)
        );
        let later = t0 + FULL_PASS_EVERY;
        assert_eq!(applied.unchanged("ns/r", 7, later), Err(FullPass::Expired));

        applied.child_changed(&child_of("r"));
        assert_eq!(
            applied.unchanged("ns/r", 7, t0),
            Err(FullPass::ChildChanged)
        );
        // Another region's child, or one in another namespace, is not r's.
        let pass = applied.begin("ns/r");
        applied.record(pass, 7, ready(), HashSet::new(), t0);
        applied.child_changed(&child_of("other"));
        let mut elsewhere = child_of("r");
        elsewhere.namespace = Some("elsewhere".into());
        applied.child_changed(&elsewhere);
        assert_eq!(applied.unchanged("ns/r", 7, t0), Ok(ready()));
    }

    #[test]
    fn a_child_that_changes_while_a_pass_applies_makes_the_next_one_apply_again() {
        let applied = AppliedChildren::default();
        let t0 = Instant::now();
        let pass = applied.begin("ns/r");
        // Drift lands after the pass read the region, before it recorded.
        applied.child_changed(&child_of("r"));
        applied.record(pass, 7, ready(), HashSet::new(), t0);
        assert_eq!(
            applied.unchanged("ns/r", 7, t0),
            Err(FullPass::ChildChanged)
        );
    }

    #[test]
    fn the_passs_own_writes_coming_back_are_not_drift_anything_else_is() {
        let applied = AppliedChildren::default();
        let t0 = Instant::now();
        let own = |vs: &[&str]| vs.iter().map(|v| v.to_string()).collect::<HashSet<_>>();
        // The pass creates the children; one event comes back during the
        // pass, one after it recorded.
        let pass = applied.begin("ns/r");
        applied.child_changed(&written("r", "11"));
        applied.record(pass, 7, ready(), own(&["11", "12"]), t0);
        applied.child_changed(&written("r", "12"));
        assert_eq!(applied.unchanged("ns/r", 7, t0), Ok(ready()));
        // Someone else's write, during a pass or after one, is drift.
        applied.child_changed(&written("r", "13"));
        assert_eq!(
            applied.unchanged("ns/r", 7, t0),
            Err(FullPass::ChildChanged)
        );
        let pass = applied.begin("ns/r");
        applied.child_changed(&written("r", "14"));
        applied.record(pass, 7, ready(), own(&["15"]), t0);
        assert_eq!(
            applied.unchanged("ns/r", 7, t0),
            Err(FullPass::ChildChanged)
        );
        // A pass that failed before recording leaves its events counted: the
        // failed pass proves nothing, the next one applies after them.
        let failed = applied.begin("ns/r");
        applied.child_changed(&written("r", "16"));
        let pass = applied.begin("ns/r");
        assert_eq!(pass.events_before, failed.events_before + 1);
        applied.record(pass, 7, ready(), own(&["17"]), t0);
        assert_eq!(applied.unchanged("ns/r", 7, t0), Ok(ready()));
    }

    #[test]
    fn children_of_regions_never_applied_or_forgotten_leave_nothing_behind() {
        let applied = AppliedChildren::default();
        applied.child_changed(&child_of("gone"));
        assert_eq!(applied.len(), 0);
        let pass = applied.begin("ns/r");
        applied.record(pass, 7, ready(), HashSet::new(), Instant::now());
        applied.forget("ns/r");
        applied.child_changed(&child_of("r"));
        assert_eq!(applied.len(), 0);
    }

    #[test]
    fn names_are_checked_again_for_a_new_generation_or_after_forgetting() {
        let applied = AppliedChildren::default();
        assert!(applied.names_check_due("ns/r", Some(1)));
        applied.names_checked("ns/r", Some(1));
        assert!(!applied.names_check_due("ns/r", Some(1)));
        assert!(applied.names_check_due("ns/r", Some(2)));
        assert!(applied.names_check_due("ns/other", Some(1)));
        applied.forget("ns/r");
        assert!(applied.names_check_due("ns/r", Some(1)));
    }

    #[test]
    fn the_fingerprint_follows_every_child_and_the_toxiproxy_choice() {
        let zone = ZoneChildren {
            zone: "a".into(),
            config_map: Default::default(),
            headless: Default::default(),
            client: Default::default(),
            leafnode: None,
            statefulset: Default::default(),
            pdb: Default::default(),
        };
        let base = fingerprint(std::slice::from_ref(&zone), false);
        assert_eq!(base, fingerprint(std::slice::from_ref(&zone), false));
        assert_ne!(base, fingerprint(std::slice::from_ref(&zone), true));
        let mut changed = zone.clone();
        changed.statefulset.metadata.name = Some("renamed".into());
        assert_ne!(base, fingerprint(&[changed], false));
        assert_ne!(base, fingerprint(&[zone.clone(), zone], false));
    }
}
