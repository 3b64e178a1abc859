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
    leader: Gauge,
    catch_up: Histogram,
    /// Zones with a lag gauge, per region, so a removed zone's series goes away.
    lag_zones: Mutex<Vec<ZoneLabels>>,
    /// Zones with a resume counter, per region, likewise.
    resume_zones: Mutex<Vec<ZoneLabels>>,
    /// Certificates with an expiry gauge, so a retired CA's series goes away.
    certificates: Mutex<Vec<CertificateLabels>>,
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
            leader,
            catch_up,
            lag_zones: Mutex::new(Vec::new()),
            resume_zones: Mutex::new(Vec::new()),
            certificates: Mutex::new(Vec::new()),
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

    /// Drops a deleted region's series.
    pub fn forget_region(&self, namespace: &str, region: &str) {
        self.set_region_lag(namespace, region, &[]);
        self.set_region_resume_zones(namespace, region, &[]);
        self.set_certificate_expiry(namespace, region, &BTreeMap::new());
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
}
