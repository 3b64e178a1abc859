//! Prometheus metrics of the operator, served on `/metrics`.
//!
//! One registry per process. Controllers record through the methods here, so
//! metric names and label sets are defined in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FullPassLabels {
    /// `never_applied`, `build_changed`, `child_changed` or `expired`.
    pub why: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The claim judged (`partition_isolation`, `no_loss`, ...) or `drill` for the whole drill.
    pub claim: String,
    /// `passed`, `failed` or `inconclusive`.
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    /// Fault backend (`networkpolicy`, `toxiproxy`, ...).
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DrillFaultLabels {
    pub namespace: String,
    pub drill: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionStateLabels {
    pub namespace: String,
    pub region: String,
    /// One of [`REGION_STATES`].
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectFailureLabels {
    pub controller: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

/// The fault backends a drill in the cluster can use (`FaultBackend::name`):
/// their counters exist at 0 from the start, so `increase()` sees the first
/// fault after a restart.
pub const FAULT_BACKENDS: [&str; 2] = ["networkPolicy", "toxiproxy"];

/// Whole-drill verdicts, at 0 from the start for the same reason.
pub const DRILL_VERDICTS: [&str; 3] = ["passed", "failed", "inconclusive"];

/// What `natsregion_region_state` distinguishes: the Ready condition's
/// verdict (`ready`, or why not) or `failed` when the last reconcile failed.
pub const REGION_STATES: [&str; 5] = [
    "ready",
    "zones_not_ready",
    "streams_not_ready",
    "mirrors_behind",
    "failed",
];

/// One fault a drill's status records and that is not healed.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenFault {
    pub backend: String,
    pub injected_at: Timestamp,
    pub deadline: Timestamp,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabels {
    pub namespace: String,
    pub region: String,
    pub zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    pub namespace: String,
    pub region: String,
    /// `ca`, `ca-next` (a CA being rotated in) or `zone/<name>`.
    pub certificate: String,
}

fn reconcile_histogram() -> Histogram {
    // 5 ms .. ~20 s: a reconcile that connects to zones takes seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    region_full_passes: Family<FullPassLabels, Counter>,
    drill_verdicts: Family<VerdictLabels, Counter>,
    faults_injected: Family<FaultLabels, Counter>,
    faults_healed: Family<FaultLabels, Counter>,
    mirror_lag: Family<ZoneLabels, Gauge>,
    mirror_resumes: Family<ZoneLabels, Counter>,
    certificate_expiry: Family<CertificateLabels, Gauge>,
    faults_open: Family<DrillFaultLabels, Gauge>,
    fault_open_since: Family<DrillFaultLabels, Gauge>,
    fault_deadline: Family<DrillFaultLabels, Gauge>,
    region_state: Family<RegionStateLabels, Gauge>,
    reconcile_failing: Family<ObjectFailureLabels, Gauge>,
    leader: Gauge,
    catch_up: Histogram,
    /// Zones with a lag gauge, per region, so a removed zone's series goes away.
    lag_zones: Mutex<Vec<ZoneLabels>>,
    /// Zones with a resume counter, per region, likewise.
    resume_zones: Mutex<Vec<ZoneLabels>>,
    /// Certificates with an expiry gauge, so a retired CA's series goes away.
    certificates: Mutex<Vec<CertificateLabels>>,
    /// Label sets of drills' fault series, so a deleted drill's go away.
    drill_faults: Mutex<Vec<DrillFaultLabels>>,
    /// Objects whose last reconcile failed, with the reason it recorded.
    failing: Mutex<Vec<ObjectFailureLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("natsregion");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        let region_full_passes = Family::<FullPassLabels, Counter>::default();
        let drill_verdicts = Family::<VerdictLabels, Counter>::default();
        let faults_injected = Family::<FaultLabels, Counter>::default();
        let faults_healed = Family::<FaultLabels, Counter>::default();
        let mirror_lag = Family::<ZoneLabels, Gauge>::default();
        let mirror_resumes = Family::<ZoneLabels, Counter>::default();
        let certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        let faults_open = Family::<DrillFaultLabels, Gauge>::default();
        let fault_open_since = Family::<DrillFaultLabels, Gauge>::default();
        let fault_deadline = Family::<DrillFaultLabels, Gauge>::default();
        let region_state = Family::<RegionStateLabels, Gauge>::default();
        let reconcile_failing = Family::<ObjectFailureLabels, Gauge>::default();
        for backend in FAULT_BACKENDS {
            let l = FaultLabels {
                backend: backend.to_string(),
            };
            let _ = faults_injected.get_or_create(&l);
            let _ = faults_healed.get_or_create(&l);
        }
        for verdict in DRILL_VERDICTS {
            let _ = drill_verdicts.get_or_create(&VerdictLabels {
                claim: "drill".to_string(),
                verdict: verdict.to_string(),
            });
        }
        let leader = Gauge::default();
        // 0.25 s .. ~4 min: a mirror redials within its reconnect interval.
        let catch_up = Histogram::new(exponential_buckets(0.25, 2.0, 11));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            reconcile_duration.clone(),
        );
        registry.register(
            "region_full_passes",
            "RegionMirror reconciles that applied every child; the others only observed the zones",
            region_full_passes.clone(),
        );
        registry.register(
            "drill_verdicts",
            "Drill claim verdicts",
            drill_verdicts.clone(),
        );
        registry.register(
            "faults_injected",
            "Network faults injected by drills",
            faults_injected.clone(),
        );
        registry.register(
            "faults_healed",
            "Network faults healed by drills",
            faults_healed.clone(),
        );
        registry.register(
            "mirror_lag_messages",
            "Source last sequence minus mirror last sequence, per mirror zone",
            mirror_lag.clone(),
        );
        registry.register(
            "mirror_resumes",
            "Leader stepdowns the operator made to resume a zone's mirror (or aggregate) that stayed silent with its leafnode link up, outside drills",
            mirror_resumes.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When a generated certificate of a region expires (Unix seconds): its CA, a CA being rotated in, each zone's",
            certificate_expiry.clone(),
        );
        registry.register(
            "faults_open",
            "Faults a drill's status records as injected and not healed, per drill and backend",
            faults_open.clone(),
        );
        registry.register(
            "fault_open_since_timestamp_seconds",
            "When the oldest open fault of a drill and backend was injected (Unix seconds)",
            fault_open_since.clone(),
        );
        registry.register(
            "fault_deadline_timestamp_seconds",
            "The earliest deadline of a drill's open faults of a backend (Unix seconds): past it, the fault should be gone",
            fault_deadline.clone(),
        );
        registry.register(
            "region_state",
            "1 for a region's current state, 0 for the others",
            region_state.clone(),
        );
        registry.register(
            "reconcile_failing",
            "1 for each object whose last reconcile failed, with the reason; gone once one succeeds",
            reconcile_failing.clone(),
        );
        registry.register(
            "drill_catch_up_seconds",
            "Time the mirrors took to catch up after a drill's heal",
            catch_up.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            reconcile_duration,
            region_full_passes,
            drill_verdicts,
            faults_injected,
            faults_healed,
            mirror_lag,
            mirror_resumes,
            certificate_expiry,
            faults_open,
            fault_open_since,
            fault_deadline,
            region_state,
            reconcile_failing,
            leader,
            catch_up,
            lag_zones: Mutex::new(Vec::new()),
            resume_zones: Mutex::new(Vec::new()),
            certificates: Mutex::new(Vec::new()),
            drill_faults: Mutex::new(Vec::new()),
            failing: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, controller: &str, took: Duration) {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A RegionMirror reconcile applied every child, and why (see `region::applied`).
    pub fn region_full_pass(&self, why: &str) {
        self.region_full_passes
            .get_or_create(&FullPassLabels {
                why: why.to_string(),
            })
            .inc();
    }

    pub fn failed(&self, controller: &str, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                controller: controller.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn drill_verdict(&self, claim: &str, verdict: &str) {
        self.drill_verdicts
            .get_or_create(&VerdictLabels {
                claim: claim.to_string(),
                verdict: verdict.to_string(),
            })
            .inc();
    }

    /// A drill's measured catch-up (runs that measured none record nothing).
    pub fn drill_catch_up(&self, seconds: f64) {
        self.catch_up.observe(seconds);
    }

    pub fn fault_injected(&self, backend: &str) {
        self.faults_injected
            .get_or_create(&FaultLabels {
                backend: backend.to_string(),
            })
            .inc();
    }

    pub fn fault_healed(&self, backend: &str) {
        self.faults_healed
            .get_or_create(&FaultLabels {
                backend: backend.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the lag of every mirror zone of one region; zones not in `lags`
    /// (removed, or lag unknown) lose their series.
    pub fn set_region_lag(&self, namespace: &str, region: &str, lags: &[(String, Option<i64>)]) {
        let mut known = self.lag_zones.lock().expect("lag zones lock");
        let labels = |zone: &str| ZoneLabels {
            namespace: namespace.to_string(),
            region: region.to_string(),
            zone: zone.to_string(),
        };
        known.retain(|l| {
            let ours = l.namespace == namespace && l.region == region;
            let keep = !ours || lags.iter().any(|(z, lag)| *z == l.zone && lag.is_some());
            if !keep {
                self.mirror_lag.remove(l);
            }
            keep
        });
        for (zone, lag) in lags {
            if let Some(lag) = lag {
                let l = labels(zone);
                self.mirror_lag.get_or_create(&l).set(*lag);
                if !known.contains(&l) {
                    known.push(l);
                }
            }
        }
    }

    /// Gives each of `zones` (one region's mirror zones; with `topology:
    /// sources` every zone) its resume counter at 0 if it has none, so
    /// `increase()` sees the first resume; zones not listed lose theirs.
    pub fn set_region_resume_zones(&self, namespace: &str, region: &str, zones: &[String]) {
        let mut known = self.resume_zones.lock().expect("resume zones lock");
        known.retain(|l| {
            let keep = l.namespace != namespace || l.region != region || zones.contains(&l.zone);
            if !keep {
                self.mirror_resumes.remove(l);
            }
            keep
        });
        for zone in zones {
            let l = ZoneLabels {
                namespace: namespace.to_string(),
                region: region.to_string(),
                zone: zone.clone(),
            };
            let _ = self.mirror_resumes.get_or_create(&l);
            if !known.contains(&l) {
                known.push(l);
            }
        }
    }

    /// The operator stepped down the leader of a zone's mirror (or
    /// aggregate) to resume it.
    pub fn mirror_resumed(&self, namespace: &str, region: &str, zone: &str) {
        self.mirror_resumes
            .get_or_create(&ZoneLabels {
                namespace: namespace.to_string(),
                region: region.to_string(),
                zone: zone.to_string(),
            })
            .inc();
    }

    /// Sets when each of one region's generated certificates expires;
    /// certificates not in `expiry` (a retired CA, a removed zone) lose
    /// their series.
    pub fn set_certificate_expiry(
        &self,
        namespace: &str,
        region: &str,
        expiry: &BTreeMap<String, Timestamp>,
    ) {
        let mut known = self.certificates.lock().expect("certificates lock");
        known.retain(|l| {
            let keep = l.namespace != namespace
                || l.region != region
                || expiry.contains_key(&l.certificate);
            if !keep {
                self.certificate_expiry.remove(l);
            }
            keep
        });
        for (certificate, at) in expiry {
            let l = CertificateLabels {
                namespace: namespace.to_string(),
                region: region.to_string(),
                certificate: certificate.clone(),
            };
            self.certificate_expiry
                .get_or_create(&l)
                .set(at.as_second());
            if !known.contains(&l) {
                known.push(l);
            }
        }
    }

    /// The faults one drill's status records as open: per backend, how many,
    /// since when and the earliest deadline. Every backend of
    /// [`FAULT_BACKENDS`] has a count (0 when nothing is open); the times
    /// exist only while a fault is open.
    pub fn set_drill_faults(&self, namespace: &str, drill: &str, open: &[OpenFault]) {
        let mut known = self.drill_faults.lock().expect("drill faults lock");
        let mut backends: Vec<&str> = FAULT_BACKENDS.to_vec();
        for f in open {
            if !backends.contains(&f.backend.as_str()) {
                backends.push(&f.backend);
            }
        }
        for backend in backends {
            let l = DrillFaultLabels {
                namespace: namespace.to_string(),
                drill: drill.to_string(),
                backend: backend.to_string(),
            };
            if !known.contains(&l) {
                known.push(l.clone());
            }
            let mine: Vec<&OpenFault> = open.iter().filter(|f| f.backend == backend).collect();
            self.faults_open.get_or_create(&l).set(mine.len() as i64);
            let since = mine.iter().map(|f| f.injected_at).min();
            let deadline = mine.iter().map(|f| f.deadline).min();
            match (since, deadline) {
                (Some(since), Some(deadline)) => {
                    self.fault_open_since
                        .get_or_create(&l)
                        .set(since.as_second());
                    self.fault_deadline
                        .get_or_create(&l)
                        .set(deadline.as_second());
                }
                _ => {
                    self.fault_open_since.remove(&l);
                    self.fault_deadline.remove(&l);
                }
            }
        }
    }

    /// Drops a deleted drill's series.
    pub fn forget_drill(&self, namespace: &str, drill: &str) {
        self.drill_faults
            .lock()
            .expect("drill faults lock")
            .retain(|l| {
                let ours = l.namespace == namespace && l.drill == drill;
                if ours {
                    for family in [
                        &self.faults_open,
                        &self.fault_open_since,
                        &self.fault_deadline,
                    ] {
                        family.remove(l);
                    }
                }
                !ours
            });
        self.reconcile_succeeded("partitiondrill", namespace, drill);
    }

    /// A region's current state: 1 for `state`, 0 for every other of
    /// [`REGION_STATES`], so each state's series exists from the region's
    /// first reconcile.
    pub fn set_region_state(&self, namespace: &str, region: &str, state: &str) {
        for s in REGION_STATES {
            self.region_state
                .get_or_create(&RegionStateLabels {
                    namespace: namespace.to_string(),
                    region: region.to_string(),
                    state: s.to_string(),
                })
                .set(i64::from(s == state));
        }
    }

    /// The last reconcile of an object failed with `reason` (replacing the
    /// reason it failed with before).
    pub fn reconcile_failing(&self, controller: &str, namespace: &str, name: &str, reason: &str) {
        self.reconcile_succeeded(controller, namespace, name);
        let l = ObjectFailureLabels {
            controller: controller.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            reason: reason.to_string(),
        };
        self.reconcile_failing.get_or_create(&l).set(1);
        self.failing.lock().expect("failing lock").push(l);
    }

    /// The last reconcile of an object succeeded (or the object is gone).
    pub fn reconcile_succeeded(&self, controller: &str, namespace: &str, name: &str) {
        self.failing.lock().expect("failing lock").retain(|l| {
            let ours = l.controller == controller && l.namespace == namespace && l.name == name;
            if ours {
                self.reconcile_failing.remove(l);
            }
            !ours
        });
    }

    /// Drops a deleted region's series.
    pub fn forget_region(&self, namespace: &str, region: &str) {
        self.set_region_lag(namespace, region, &[]);
        self.set_region_resume_zones(namespace, region, &[]);
        self.set_certificate_expiry(namespace, region, &BTreeMap::new());
        for s in REGION_STATES {
            self.region_state.remove(&RegionStateLabels {
                namespace: namespace.to_string(),
                region: region.to_string(),
                state: s.to_string(),
            });
        }
        self.reconcile_succeeded("regionmirror", namespace, region);
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_and_drops_removed_zones() {
        let m = Metrics::default();
        m.reconciled("regionmirror", Duration::from_millis(12));
        m.failed("regionmirror", "ZoneUnreachable");
        m.drill_verdict("no_loss", "passed");
        m.fault_injected("networkpolicy");
        m.fault_healed("networkpolicy");
        m.set_region_lag(
            "ns",
            "east",
            &[("b".into(), Some(5)), ("c".into(), Some(0))],
        );
        let text = m.encode();
        assert!(
            text.contains("natsregion_reconciles_total{controller=\"regionmirror\"} 1"),
            "{text}"
        );
        assert!(text.contains("reason=\"ZoneUnreachable\""), "{text}");
        assert!(
            text.contains(
                "natsregion_mirror_lag_messages{namespace=\"ns\",region=\"east\",zone=\"b\"} 5"
            ),
            "{text}"
        );
        m.set_region_lag("ns", "east", &[("c".into(), Some(0))]);
        assert!(!m.encode().contains("zone=\"b\""));
        m.forget_region("ns", "east");
        assert!(!m.encode().contains("zone=\"c\""));
    }

    #[test]
    fn resume_counters_start_at_zero_and_go_with_their_zone() {
        let m = Metrics::default();
        m.set_region_resume_zones("ns", "east", &["b".into(), "c".into()]);
        let series = |zone: &str| {
            format!(
                "natsregion_mirror_resumes_total{{namespace=\"ns\",region=\"east\",zone=\"{zone}\"}}"
            )
        };
        let text = m.encode();
        assert!(text.contains(&format!("{} 0", series("b"))), "{text}");
        m.mirror_resumed("ns", "east", "b");
        // Observed again: the count stays.
        m.set_region_resume_zones("ns", "east", &["b".into(), "c".into()]);
        let text = m.encode();
        assert!(text.contains(&format!("{} 1", series("b"))), "{text}");
        assert!(text.contains(&format!("{} 0", series("c"))), "{text}");
        m.set_region_resume_zones("ns", "east", &["b".into()]);
        assert!(!m.encode().contains(&series("c")));
        m.forget_region("ns", "east");
        assert!(!m.encode().contains("mirror_resumes_total{"));
    }

    #[test]
    fn certificate_expiry_follows_the_certificates_a_region_has() {
        let m = Metrics::default();
        let at = |s| Timestamp::from_second(s).unwrap();
        let rotating = BTreeMap::from([
            ("ca".to_string(), at(1_900_000_000)),
            ("ca-next".to_string(), at(1_990_000_000)),
            ("zone/a".to_string(), at(1_800_000_000)),
        ]);
        m.set_certificate_expiry("ns", "east", &rotating);
        let text = m.encode();
        assert!(
            text.contains("natsregion_certificate_expiry_timestamp_seconds{namespace=\"ns\",region=\"east\",certificate=\"ca-next\"} 1990000000"),
            "{text}"
        );
        assert!(
            text.contains("certificate=\"zone/a\"} 1800000000"),
            "{text}"
        );
        // The rotation finished: one CA, the one that was next.
        let done = BTreeMap::from([
            ("ca".to_string(), at(1_990_000_000)),
            ("zone/a".to_string(), at(1_800_100_000)),
        ]);
        m.set_certificate_expiry("ns", "east", &done);
        let text = m.encode();
        assert!(!text.contains("ca-next"), "{text}");
        assert!(text.contains("certificate=\"ca\"} 1990000000"), "{text}");
        m.forget_region("ns", "east");
        assert!(!m.encode().contains("certificate="));
    }

    /// `increase()` of a series needs a sample before the event: the
    /// counters an alert reads exist, at 0, before anything happened.
    #[test]
    fn counters_the_alerts_read_exist_at_zero_from_the_start() {
        let text = Metrics::default().encode();
        for series in [
            "natsregion_faults_injected_total{backend=\"networkPolicy\"} 0",
            "natsregion_faults_injected_total{backend=\"toxiproxy\"} 0",
            "natsregion_faults_healed_total{backend=\"networkPolicy\"} 0",
            "natsregion_faults_healed_total{backend=\"toxiproxy\"} 0",
            "natsregion_drill_verdicts_total{claim=\"drill\",verdict=\"failed\"} 0",
            "natsregion_drill_verdicts_total{claim=\"drill\",verdict=\"passed\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn open_faults_follow_the_drill_status_and_go_with_the_drill() {
        let m = Metrics::default();
        let at = |s| Timestamp::from_second(s).unwrap();
        let fault = |injected, deadline| OpenFault {
            backend: "networkPolicy".into(),
            injected_at: at(injected),
            deadline: at(deadline),
        };
        m.set_drill_faults("ns", "d", &[]);
        let text = m.encode();
        assert!(
            text.contains(
                "natsregion_faults_open{namespace=\"ns\",drill=\"d\",backend=\"toxiproxy\"} 0"
            ),
            "{text}"
        );
        assert!(
            !text.contains("natsregion_fault_deadline_timestamp_seconds{"),
            "{text}"
        );
        m.set_drill_faults(
            "ns",
            "d",
            &[
                fault(1_800_000_100, 1_800_000_400),
                fault(1_800_000_000, 1_800_000_300),
            ],
        );
        let text = m.encode();
        let series = |name: &str, value: &str| {
            format!("{name}{{namespace=\"ns\",drill=\"d\",backend=\"networkPolicy\"}} {value}")
        };
        assert!(
            text.contains(&series("natsregion_faults_open", "2")),
            "{text}"
        );
        assert!(
            text.contains(&series(
                "natsregion_fault_open_since_timestamp_seconds",
                "1800000000"
            )),
            "the oldest: {text}"
        );
        assert!(
            text.contains(&series(
                "natsregion_fault_deadline_timestamp_seconds",
                "1800000300"
            )),
            "the earliest: {text}"
        );
        m.set_drill_faults("ns", "d", &[]);
        let text = m.encode();
        assert!(
            text.contains(&series("natsregion_faults_open", "0")),
            "{text}"
        );
        assert!(
            !text.contains("natsregion_fault_open_since_timestamp_seconds{"),
            "{text}"
        );
        m.set_drill_faults("ns", "d", &[fault(1_800_000_000, 1_800_000_300)]);
        m.forget_drill("ns", "d");
        assert!(!m.encode().contains("drill=\"d\""));
    }

    #[test]
    fn region_state_is_one_of_its_states_and_failures_clear_on_success() {
        let m = Metrics::default();
        m.set_region_state("ns", "east", "mirrors_behind");
        m.reconcile_failing("regionmirror", "ns", "east", "ZoneUnreachable");
        let text = m.encode();
        for s in REGION_STATES {
            let v = if s == "mirrors_behind" { 1 } else { 0 };
            let series = format!(
                "natsregion_region_state{{namespace=\"ns\",region=\"east\",state=\"{s}\"}} {v}"
            );
            assert!(text.contains(&series), "{series}: {text}");
        }
        assert!(
            text.contains("natsregion_reconcile_failing{controller=\"regionmirror\",namespace=\"ns\",name=\"east\",reason=\"ZoneUnreachable\"} 1"),
            "{text}"
        );
        // Another reason replaces the first; a success clears it.
        m.reconcile_failing("regionmirror", "ns", "east", "Forbidden");
        let text = m.encode();
        assert!(!text.contains("ZoneUnreachable"), "{text}");
        assert!(text.contains("reason=\"Forbidden\"} 1"), "{text}");
        m.reconcile_succeeded("regionmirror", "ns", "east");
        assert!(!m.encode().contains("natsregion_reconcile_failing{"));
        m.reconcile_failing("regionmirror", "ns", "east", "Forbidden");
        m.forget_region("ns", "east");
        let text = m.encode();
        assert!(!text.contains("region=\"east\""), "{text}");
        assert!(!text.contains("name=\"east\""), "{text}");
    }
}
