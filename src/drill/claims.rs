//! Turns the evidence the engine gathered into the four verdicts. Pure: every
//! verdict can be reproduced from the report alone.

use std::collections::BTreeMap;

use crate::api::{Claim, ClaimResult, Verdict};

use super::audit::StoredAuditResult;
use super::checker::ZoneCheck;
use super::consumer::Position;
use super::producer::ProducerIdentity;

/// What one partition (cut → heal) showed. A figure that could not be read
/// is absent (never 0), and a claim resting on it is inconclusive.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionEvidence {
    pub zones: Vec<String>,
    /// The links across the cut, by name: each mirror's zone, or (sources
    /// topology) `<to><-<from>` for every aggregate's source with exactly
    /// one end cut off.
    pub across: Vec<String>,
    /// Every cut mirror had the source's last sequence before the cut: the cut broke a live link.
    pub in_sync_before_cut: bool,
    pub source_at_cut: Option<u64>,
    pub source_before_heal: Option<u64>,
    /// Where each link across the cut stood: a mirror's last sequence, or the
    /// newest sequence an aggregate holds from the other side.
    pub mirror_at_cut: BTreeMap<String, u64>,
    pub mirror_before_heal: BTreeMap<String, u64>,
    /// `true`: the zone could still open a leafnode connection to the source.
    pub probe_at_cut: BTreeMap<String, bool>,
    pub probe_before_heal: BTreeMap<String, bool>,
    pub held_seconds: f64,
    /// Acked during the partition by each writing zone, and how many of
    /// those that zone's own consumer read before the heal.
    pub acked_during: BTreeMap<String, u64>,
    pub own_read_during: BTreeMap<String, u64>,
    /// Messages each cut zone's consumer had stored but not yet read when the
    /// cut landed (the build-backlog step): what it must drain while cut off.
    pub backlog: BTreeMap<String, u64>,
    /// Messages each zone's consumer read while cut off (it serves what it has).
    pub reads_during: BTreeMap<String, u64>,
    /// Fetch or ack errors of each zone's consumer while the partition was on.
    pub errors_during: BTreeMap<String, u64>,
    /// Fault objects still present after the heal.
    pub leftovers: Vec<String>,
    pub healed: bool,
    /// Why the heal failed, when it did.
    pub heal_error: Option<String>,
    /// Set when no heal step closed this partition: the drill was
    /// interrupted (the reason) and the wrap-up healed it.
    pub closed_after: Option<String>,
    /// Set when the cut was no longer in place at the last look before the
    /// heal, and why: its deadline passed, its fault objects were gone (a
    /// Toxiproxy restart, someone deleting the policies), or the drill healed
    /// first because it was stopped. Whether the cut held cannot then be
    /// judged: it is not the region's doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatchUpEvidence {
    /// Heal → every mirror's last sequence equals the source's; `None`: never within the timeout.
    pub seconds: Option<f64>,
    pub timeout_seconds: f64,
    /// How long the wait and the final check kept going past the timeout,
    /// so that a catch-up that came late is told apart from messages that
    /// never came (0 when the timeout was met).
    pub grace_seconds: f64,
    /// Heal → caught up, when that happened after the timeout but within
    /// the grace: late, and measured.
    pub late_seconds: Option<f64>,
    pub reconnect_interval_seconds: i32,
    /// Lag per mirror when the wait ended.
    pub lag_at_end: BTreeMap<String, u64>,
    pub mirror_errors: BTreeMap<String, String>,
    /// Mirrors the drill made re-create their consumer after the heal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<MirrorResume>,
}

/// A mirror still silent a few seconds after its link to the source
/// answered again, made to re-create its consumer by a leader stepdown
/// (docs/architecture.md, "Prompt resume after a heal").
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorResume {
    pub zone: String,
    /// Heal → the source's JetStream API answered through the mirror's zone.
    pub link_up_seconds: f64,
    /// Heal → the stepdown was asked.
    pub at_seconds: f64,
    /// The server asked to take over: the one whose link to the source was
    /// seen back; `None`: any other (it led already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_server: Option<String>,
    /// Why it could not be done (an R1 mirror has no other leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MirrorResume {
    pub fn describe(&self) -> String {
        match &self.error {
            None => format!(
                "resumed mirror {} by leader stepdown at {:.1}s after the heal (link up at {:.1}s{})",
                self.zone,
                self.at_seconds,
                self.link_up_seconds,
                self.to_server
                    .as_ref()
                    .map(|s| format!(", to server {s}"))
                    .unwrap_or_default()
            ),
            Some(e) => format!(
                "could not resume mirror {} at {:.1}s after the heal: {e}",
                self.zone, self.at_seconds
            ),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseEvidence {
    pub paused_zone: String,
    pub published: u64,
    pub before: BTreeMap<String, Position>,
    pub after: BTreeMap<String, Position>,
    /// Each zone's stream's last sequence after the phase: what its consumer
    /// had to reach (the source's, for mirrors).
    pub last_seq: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinEvidence {
    pub zone: String,
    /// Acked before the zone joined, and how long until its consumer had read them all.
    pub history: u64,
    pub backfill_seconds: Option<f64>,
    /// The producers already writing, by zone, around the join.
    pub producers_before: BTreeMap<String, ProducerIdentity>,
    pub producers_after: BTreeMap<String, ProducerIdentity>,
    pub error: Option<String>,
}

/// All evidence; `None` where the step that gathers it did not run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `sources`: every zone writes and every aggregate sources all zones.
    pub topology: crate::api::Topology,
    pub partitions: Vec<PartitionEvidence>,
    pub catch_up: Option<CatchUpEvidence>,
    pub pause: Option<PauseEvidence>,
    pub join: Option<JoinEvidence>,
    /// Per-zone findings of the final check; empty when verify did not run.
    pub zones: Vec<ZoneCheck>,
    /// Why the steps stopped before the end, if they did; the wrap-up still
    /// healed, waited for catch-up and checked.
    pub interrupted: Option<String>,
    /// The step the steps stopped at, when they did, and the steps after it
    /// that never ran: a claim whose step is among them says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_reached: Vec<String>,
    /// Each zone's stored stream read back by the final check.
    pub stored: Vec<StoredAuditResult>,
    /// Zones whose stored stream could not be read back, and why.
    pub stored_errors: BTreeMap<String, String>,
}

/// Failures decide; without any, missing evidence makes the claim
/// inconclusive rather than passed.
fn result(
    claim: Claim,
    failures: Vec<String>,
    missing: Vec<String>,
    pass: String,
    evidence: BTreeMap<String, String>,
) -> ClaimResult {
    let (verdict, message) = if !failures.is_empty() {
        (Verdict::Failed, failures.join("; "))
    } else if !missing.is_empty() {
        (
            Verdict::Inconclusive,
            format!("not proven: {}", missing.join("; ")),
        )
    } else {
        (Verdict::Passed, pass)
    };
    ClaimResult {
        claim,
        verdict,
        message,
        evidence,
    }
}

fn not_run(claim: Claim, why: &str) -> ClaimResult {
    ClaimResult {
        claim,
        verdict: Verdict::NotRun,
        message: why.to_string(),
        evidence: BTreeMap::new(),
    }
}

/// Not run because `step` never ran: why, when the steps stopped before it
/// (or in it), else `otherwise` (the drill's steps did not include it).
fn step_not_run(ev: &Evidence, claim: Claim, step: &str, otherwise: &str) -> ClaimResult {
    let why = ev.interrupted.as_deref().unwrap_or("an error");
    match ev.stopped_at.as_deref() {
        Some(at) if at == step => not_run(
            claim,
            &format!("the steps stopped in {step} ({why}), so this claim could not be judged"),
        ),
        Some(at) if ev.not_reached.iter().any(|s| s == step) => not_run(
            claim,
            &format!("the {step} step never ran: the steps stopped at {at} ({why})"),
        ),
        _ => not_run(claim, otherwise),
    }
}

/// Acked messages removed from the streams the writers were acked by (a
/// gap in the stored sequences): the root of whatever every stream and
/// consumer fed from them lacks, named once.
struct Removals<'a> {
    roots: Vec<&'a StoredAuditResult>,
    total: u64,
    ids: std::collections::BTreeSet<&'a str>,
}

impl<'a> Removals<'a> {
    fn of(ev: &'a Evidence) -> Self {
        let roots: Vec<&StoredAuditResult> = ev
            .stored
            .iter()
            .filter(|a| a.acked_here && a.removed > 0)
            .collect();
        Self {
            total: roots.iter().map(|a| a.removed).sum(),
            ids: roots
                .iter()
                .flat_map(|a| a.removed_ids.iter().map(String::as_str))
                .collect(),
            roots,
        }
    }

    /// Whether `count` absent messages, `ids` the ones named, are all among
    /// the removed ones: a consequence of the removal, no finding of their own.
    fn explain(&self, count: u64, ids: &[String]) -> bool {
        count > 0 && count <= self.total && ids.iter().all(|id| self.ids.contains(id.as_str()))
    }
}

/// "5 acked messages removed from zone a's stored stream EVENTS (ids 1-311,
/// 1-312, ...; seqs 311, 312, ...)".
fn removal(a: &StoredAuditResult) -> String {
    let more = if (a.removed_ids.len() as u64) < a.removed {
        ", ..."
    } else {
        ""
    };
    format!(
        "{} acked messages removed from {} (ids {}{more}; seqs {}{more})",
        a.removed,
        a.label(),
        a.removed_ids.join(", "),
        a.removed_seqs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn show<T: std::fmt::Debug>(map: &BTreeMap<String, T>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn judge(ev: &Evidence) -> Vec<ClaimResult> {
    vec![
        local_consumption(ev),
        no_loss_after_heal(ev),
        independent_progress(ev),
        zone_join(ev),
    ]
}

/// Claim 1, with the isolation proof: a partition that did not hold proves nothing.
fn local_consumption(ev: &Evidence) -> ClaimResult {
    let claim = Claim::LocalConsumption;
    let sources = ev.topology == crate::api::Topology::Sources;
    if ev.partitions.is_empty() {
        return step_not_run(ev, claim, "partition", "no partition step ran");
    }
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut evidence = BTreeMap::new();
    let seq = |v: Option<&u64>| v.map_or("unread".to_string(), u64::to_string);
    for (i, p) in ev.partitions.iter().enumerate() {
        let tag = |k: &str| {
            if ev.partitions.len() == 1 {
                k.to_string()
            } else {
                format!("partition{i}.{k}")
            }
        };
        // A cut that ended before the last look proves nothing either way
        // (what moved after it ended is not a leak, and the consumers saw a
        // shorter cut than the one judged): the partition is inconclusive.
        let mut discarded = Vec::new();
        let failures = if let Some(why) = &p.ended_early {
            missing.push(format!(
                "the cut of {:?} ended before the heal ({why}), so whether it held cannot be judged",
                p.zones
            ));
            evidence.insert(tag("endedEarly"), why.clone());
            &mut discarded
        } else {
            &mut failures
        };
        if !p.in_sync_before_cut {
            failures.push(format!(
                "{} {:?} were not in sync before the cut, so the partition cut no live link",
                if sources { "aggregates of" } else { "mirrors" },
                p.zones
            ));
        }
        for link in &p.across {
            let what = if sources {
                format!("aggregate source {link}")
            } else {
                format!("mirror {link} last_seq")
            };
            match (p.mirror_at_cut.get(link), p.mirror_before_heal.get(link)) {
                (Some(at), Some(before)) if at != before => failures.push(format!(
                    "partition leaked: {what} moved {at} -> {before} while cut off"
                )),
                (Some(_), Some(_)) => {}
                (at, _) => missing.push(format!(
                    "{what} could not be read {}",
                    if at.is_none() {
                        "at the cut"
                    } else {
                        "before the heal"
                    }
                )),
            }
        }
        for zone in &p.zones {
            if p.probe_at_cut.get(zone) == Some(&true)
                || p.probe_before_heal.get(zone) == Some(&true)
            {
                failures.push(format!("partition leaked: a probe from {zone} reached the source's leafnode listener across the cut"));
            }
            let read = p.reads_during.get(zone).copied().unwrap_or(0);
            if let Some(&backlog) = p.backlog.get(zone)
                && read < backlog
            {
                failures.push(format!(
                    "zone {zone}'s consumer read {read} of its {backlog}-message backlog while cut off"
                ));
            }
        }
        let no_traffic = "no traffic was acked during the partition: put a produce step between partition and heal";
        match (p.source_at_cut, p.source_before_heal) {
            (Some(at), Some(before)) if before <= at => failures.push(no_traffic.to_string()),
            (Some(_), Some(_)) => {}
            _ if sources => {}
            _ => missing.push(
                "the source's last sequence could not be read at the cut and before the heal"
                    .to_string(),
            ),
        }
        if p.acked_during.values().sum::<u64>() == 0 {
            failures.push(no_traffic.to_string());
        } else {
            for (zone, acked) in p.acked_during.iter().filter(|(_, a)| **a == 0) {
                failures.push(format!(
                    "zone {zone} got no write acked during the partition ({acked}): every zone must keep accepting its own writes"
                ));
            }
        }
        for (zone, &acked) in &p.acked_during {
            let read = p.own_read_during.get(zone).copied().unwrap_or(0);
            if read < acked {
                failures.push(if sources {
                    format!("zone {zone}'s consumer read {read} of the {acked} messages the zone wrote during the partition")
                } else {
                    format!("the source zone's consumer read {read} of the {acked} messages acked during the partition")
                });
            }
        }
        let errors: u64 = p.errors_during.values().sum();
        if errors > 0 {
            failures.push(format!(
                "consumers saw {errors} errors during the partition ({})",
                show(&p.errors_during)
            ));
        }
        evidence.insert(tag("cutZones"), p.zones.join(","));
        evidence.insert(tag("heldSeconds"), format!("{:.1}", p.held_seconds));
        if !sources {
            evidence.insert(
                tag("sourceLastSeq"),
                format!(
                    "{} -> {}",
                    seq(p.source_at_cut.as_ref()),
                    seq(p.source_before_heal.as_ref())
                ),
            );
        }
        evidence.insert(
            tag(if sources {
                "sourcedSeq"
            } else {
                "mirrorLastSeq"
            }),
            p.across
                .iter()
                .map(|z| {
                    format!(
                        "{z}: {} -> {}",
                        seq(p.mirror_at_cut.get(z)),
                        seq(p.mirror_before_heal.get(z))
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        evidence.insert(
            tag("probeAcrossCut"),
            format!(
                "at cut: {}; before heal: {}",
                show(&p.probe_at_cut),
                show(&p.probe_before_heal)
            ),
        );
        evidence.insert(
            tag("ownReadDuring"),
            p.acked_during
                .iter()
                .map(|(z, acked)| {
                    let read = p.own_read_during.get(z).copied().unwrap_or(0);
                    format!("{z}: {read}/{acked}")
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        evidence.insert(
            tag("cutZonesReadDuring"),
            p.zones
                .iter()
                .map(|z| {
                    let read = p.reads_during.get(z).copied().unwrap_or(0);
                    match p.backlog.get(z) {
                        Some(b) => format!("{z}: {read} of backlog {b}"),
                        None => format!("{z}: {read} (no backlog built)"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        evidence.insert(tag("readsDuring"), show(&p.reads_during));
        evidence.insert(tag("errorsDuring"), show(&p.errors_during));
        if let Some(why) = &p.closed_after {
            evidence.insert(tag("closedAfter"), why.clone());
        }
    }
    let drained = ev
        .partitions
        .iter()
        .all(|p| p.zones.iter().all(|z| p.backlog.contains_key(z)));
    let held = if sources {
        "the cut held (aggregate sources frozen both ways, probes refused) and every zone kept accepting and consuming its own writes without errors"
    } else {
        "the cut held (mirror sequences frozen, probes refused) and every zone kept consuming without errors"
    };
    let pass = if drained {
        format!("{held}, the cut zones draining their backlog")
    } else {
        format!("{held} (no build-backlog step: the cut zones had nothing new to read)")
    };
    result(claim, failures, missing, pass, evidence)
}

fn no_loss_after_heal(ev: &Evidence) -> ClaimResult {
    let claim = Claim::NoLossAfterHeal;
    let sources = ev.topology == crate::api::Topology::Sources;
    // Without a partition there is no heal to judge, but a loss the final
    // check found is still a loss.
    if ev.partitions.is_empty() && ev.zones.is_empty() && ev.stored.is_empty() {
        return step_not_run(
            ev,
            claim,
            "partition",
            "no partition step ran, so there was no heal to judge",
        );
    }
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut evidence = BTreeMap::new();
    for p in &ev.partitions {
        if !p.healed {
            failures.push(format!(
                "the partition of {:?} was not healed{}",
                p.zones,
                p.heal_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
        if !p.leftovers.is_empty() {
            failures.push(format!(
                "the heal left faults behind: {}",
                p.leftovers.join(", ")
            ));
        }
    }
    match &ev.catch_up {
        None if ev.partitions.is_empty() => {}
        None => missing.push("catch-up was not measured".to_string()),
        Some(c) => {
            evidence.insert(
                "reconnectIntervalSeconds".into(),
                c.reconnect_interval_seconds.to_string(),
            );
            let what = if sources { "aggregates" } else { "mirrors" };
            if !c.resumes.is_empty() {
                evidence.insert(
                    "mirrorResumes".into(),
                    c.resumes
                        .iter()
                        .map(MirrorResume::describe)
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            if c.seconds.is_none() {
                evidence.insert(
                    "catchUpGraceSeconds".into(),
                    format!("{:.0}", c.grace_seconds),
                );
            }
            match (c.seconds, c.late_seconds) {
                (Some(s), _) => {
                    evidence.insert("catchUpSeconds".into(), format!("{s:.2}"));
                }
                // Late is not lost: say how late, and what arrived late.
                (None, Some(late)) => {
                    evidence.insert("lateCatchUpSeconds".into(), format!("{late:.2}"));
                    let arrived: Vec<String> = ev
                        .zones
                        .iter()
                        .filter(|z| z.late > 0)
                        .map(|z| {
                            format!(
                                "{} read {} of {} acked messages after that timeout",
                                z.label(),
                                z.late,
                                z.expected
                            )
                        })
                        .collect();
                    let complete = ev.zones.iter().all(|z| z.lost == 0)
                        && ev.stored.iter().all(|a| a.missing == 0 && a.removed == 0);
                    failures.push(format!(
                        "{what} caught up {late:.2}s after the heal, later than timeouts.catchUpSeconds {:.0}s{}{}",
                        c.timeout_seconds,
                        if arrived.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", arrived.join(", "))
                        },
                        if complete && !ev.zones.is_empty() {
                            " (late: every acked message arrived)"
                        } else {
                            " (late)"
                        }
                    ));
                }
                (None, None) => failures.push(format!(
                    "{what} did not catch up within {:.0}s after the heal, nor in the {:.0}s grace after that (lag: {}{})",
                    c.timeout_seconds,
                    c.grace_seconds,
                    show(&c.lag_at_end),
                    if c.mirror_errors.is_empty() {
                        String::new()
                    } else {
                        format!("; mirror errors: {}", show(&c.mirror_errors))
                    }
                )),
            }
        }
    }
    // Only what is still absent after the grace is lost.
    let after_grace = ev
        .catch_up
        .as_ref()
        .filter(|c| c.seconds.is_none())
        .map(|c| format!(", still missing after the {:.0}s grace", c.grace_seconds))
        .unwrap_or_default();
    if ev.zones.is_empty() {
        missing.push("the final check did not run: nothing was checked for loss".to_string());
    }
    // The removal first, once; what follows from it only says so.
    let removals = Removals::of(ev);
    let removed_at = failures.len();
    let mut consequences = Vec::new();
    for z in &ev.zones {
        if removals.explain(z.lost, &z.lost_ids) {
            consequences.push(format!("what {} read", z.label()));
        } else if z.lost > 0 {
            failures.push(format!(
                "{} lost {} of {} acked messages{after_grace} (prefix {}, middle {}, suffix {}; ids {})",
                z.label(),
                z.lost,
                z.expected,
                z.lost_prefix,
                z.lost_middle,
                z.lost_suffix,
                z.lost_ids.join(", ")
            ));
        }
        if z.duplicated > 0 {
            failures.push(format!(
                "{} read {} messages twice (ids {})",
                z.label(),
                z.duplicated,
                z.duplicated_ids.join(", ")
            ));
        }
        if z.reordered > 0 {
            let first = z.reordered_examples.first().map(|m| {
                format!(
                    "; first at seq {}: expected {:?}, got {}",
                    m.stream_seq, m.expected, m.got
                )
            });
            let what = if z.origin.is_some() {
                "messages out of the order they were acked in, or altered"
            } else {
                "sequences that differ from the source"
            };
            failures.push(format!(
                "{} has {} {what}{}",
                z.label(),
                z.reordered,
                first.unwrap_or_default()
            ));
        }
        if z.unexpected > 0 {
            failures.push(format!(
                "{} read {} messages nobody wrote",
                z.label(),
                z.unexpected
            ));
        }
        evidence.insert(
            match &z.origin {
                Some(origin) => format!("zone.{}.{origin}", z.zone),
                None => format!("zone.{}", z.zone),
            },
            format!(
                "expected={} read={} late={} lost={} duplicated={} reordered={} recovered={} foreign={}",
                z.expected,
                z.read,
                z.late,
                z.lost,
                z.duplicated,
                z.reordered,
                z.recovered,
                z.foreign
            ),
        );
    }
    for a in ev.stored.iter().filter(|a| a.removed > 0 && !a.acked_here) {
        if removals.explain(a.removed, &a.removed_ids) {
            consequences.push(a.label());
        } else {
            failures.push(removal(a));
        }
    }
    for a in &ev.stored {
        if a.missing > 0 {
            failures.push(format!(
                "{} lacks {} of {} acked messages (prefix {}, middle {}, suffix {}; {})",
                a.label(),
                a.missing,
                a.expected,
                a.missing_prefix,
                a.missing_middle,
                a.missing_suffix,
                a.missing_examples.join(", ")
            ));
        }
        if a.altered > 0 {
            let first = a.altered_examples.first().map(|m| {
                format!(
                    "; first at seq {}: expected {}, stored {}",
                    m.stream_seq,
                    m.expected.as_deref().unwrap_or("nothing"),
                    m.got
                )
            });
            failures.push(format!(
                "{} holds {} messages that differ from what was acked{}",
                a.label(),
                a.altered,
                first.unwrap_or_default()
            ));
        }
        if a.added > 0 {
            failures.push(format!(
                "{} holds {} messages of this run that were never published or are stored twice ({})",
                a.label(),
                a.added,
                a.added_examples.join(", ")
            ));
        }
        evidence.insert(
            match &a.origin {
                Some(origin) => format!("stored.{}.{}.{origin}", a.zone, a.stream),
                None => format!("stored.{}.{}", a.zone, a.stream),
            },
            format!(
                "seq {}..{} ({} messages, {} before this run): expected={} missing={} removed={} altered={} added={} recovered={} foreign={}",
                a.first_seq,
                a.last_seq,
                a.messages,
                a.before_run,
                a.expected,
                a.missing,
                a.removed,
                a.altered,
                a.added,
                a.recovered,
                a.foreign
            ),
        );
    }
    let mut named: Vec<String> = removals.roots.iter().map(|a| removal(a)).collect();
    if !consequences.is_empty() {
        named.push(format!(
            "the same messages are absent from {} (consequence of the removal above)",
            and_list(&consequences)
        ));
    }
    failures.splice(removed_at..removed_at, named);
    for (zone, e) in &ev.stored_errors {
        missing.push(format!(
            "zone {zone}'s stored stream could not be read back ({e})"
        ));
    }
    if !ev.zones.is_empty() && ev.stored.is_empty() && ev.stored_errors.is_empty() {
        missing.push("the stored streams were not audited".to_string());
    }
    let catch_up = ev
        .catch_up
        .as_ref()
        .and_then(|c| {
            let resumed: Vec<String> = c.resumes.iter().map(MirrorResume::describe).collect();
            c.seconds.map(|s| {
                if resumed.is_empty() {
                    format!(" in {s:.2}s")
                } else {
                    format!(" in {s:.2}s ({})", resumed.join("; "))
                }
            })
        })
        .unwrap_or_default();
    result(
        claim,
        failures,
        missing,
        format!(
            "nothing lost, duplicated or reordered in what consumers read or what every zone stores; {} caught up{catch_up}",
            if sources {
                "every aggregate"
            } else {
                "mirrors"
            }
        ),
        evidence,
    )
}

fn independent_progress(ev: &Evidence) -> ClaimResult {
    let claim = Claim::IndependentProgress;
    let Some(p) = &ev.pause else {
        return step_not_run(ev, claim, "pause-consumer", "no pause-consumer step ran");
    };
    let mut failures = Vec::new();
    let mut evidence = BTreeMap::new();
    let (Some(before), Some(after)) = (p.before.get(&p.paused_zone), p.after.get(&p.paused_zone))
    else {
        return result(
            claim,
            Vec::new(),
            vec![format!(
                "no consumer position could be read for the paused zone {}",
                p.paused_zone
            )],
            String::new(),
            evidence,
        );
    };
    if after.ack_floor != before.ack_floor {
        failures.push(format!(
            "the paused consumer in {} moved its ack floor {} -> {}",
            p.paused_zone, before.ack_floor, after.ack_floor
        ));
    }
    let shortfall = (before.pending + p.published).saturating_sub(after.pending);
    // Messages removed from the paused zone's stream past its ack floor
    // cannot be pending: a shortfall of no more than those follows from
    // the removal.
    let removed: u64 = ev
        .stored
        .iter()
        .filter(|a| a.zone == p.paused_zone && a.origin.is_none())
        .map(|a| {
            if a.removed_seqs.len() as u64 == a.removed {
                a.removed_seqs
                    .iter()
                    .filter(|&&seq| seq > before.ack_floor)
                    .count() as u64
            } else {
                a.removed
            }
        })
        .sum();
    if shortfall > 0 && shortfall <= removed {
        failures.push(format!(
            "the paused consumer in {} shows {} pending where {} were published, {shortfall} short: consequence of the removal above",
            p.paused_zone, after.pending, p.published
        ));
    } else if shortfall > 0 {
        failures.push(format!(
            "the paused consumer in {} shows {} pending, expected at least {} (+{} published)",
            p.paused_zone,
            after.pending,
            before.pending + p.published,
            p.published
        ));
    }
    for (zone, pos) in &p.after {
        if *zone == p.paused_zone {
            continue;
        }
        let last = p.last_seq.get(zone).copied().unwrap_or(u64::MAX);
        if pos.ack_floor < last || pos.pending > 0 {
            failures.push(format!(
                "zone {zone} did not keep up while {} was paused: ack floor {} of {}, {} pending",
                p.paused_zone,
                pos.ack_floor,
                p.last_seq
                    .get(zone)
                    .map_or("an unread last sequence".to_string(), u64::to_string),
                pos.pending
            ));
        }
    }
    if p.after.len() < 2 {
        failures.push("there was no other zone to compare with".to_string());
    }
    evidence.insert("pausedZone".into(), p.paused_zone.clone());
    evidence.insert("published".into(), p.published.to_string());
    evidence.insert("lastSeq".into(), show(&p.last_seq));
    for (zone, a) in &p.after {
        let b = p.before.get(zone).copied().unwrap_or_default();
        evidence.insert(
            format!("zone.{zone}"),
            format!(
                "ackFloor {} -> {}, pending {} -> {}",
                b.ack_floor, a.ack_floor, b.pending, a.pending
            ),
        );
    }
    result(
        claim,
        failures,
        Vec::new(),
        format!(
            "with {} paused, every other zone acked all {} new messages",
            p.paused_zone, p.published
        ),
        evidence,
    )
}

fn zone_join(ev: &Evidence) -> ClaimResult {
    let claim = Claim::ZoneJoin;
    let Some(j) = &ev.join else {
        return step_not_run(
            ev,
            claim,
            "add-temporary-zone",
            "no add-temporary-zone step ran",
        );
    };
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    let mut evidence = BTreeMap::new();
    if let Some(e) = &j.error {
        failures.push(format!("zone {} could not join: {e}", j.zone));
    }
    match j.backfill_seconds {
        Some(s) => {
            evidence.insert("backfillSeconds".into(), format!("{s:.2}"));
        }
        None if j.error.is_none() => failures.push(format!(
            "zone {} did not backfill the {} messages of history in time",
            j.zone, j.history
        )),
        None => {}
    }
    evidence.insert("history".into(), j.history.to_string());
    if j.producers_before.is_empty() {
        missing.push("the producers' identities were not recorded around the join".to_string());
    }
    for (zone, b) in &j.producers_before {
        match j.producers_after.get(zone) {
            Some(a) if a == b => {
                evidence.insert(
                    format!("producer.{zone}"),
                    format!(
                        "server {} client {} connects {} subject {}",
                        a.server_id, a.client_id, a.connects, a.subject
                    ),
                );
            }
            Some(a) => failures.push(format!("the producer in zone {zone} changed its connection or settings while the zone joined: {b:?} -> {a:?}")),
            None => missing.push(format!("the producer in zone {zone} was not recorded after the join")),
        }
    }
    let own: Vec<&ZoneCheck> = ev.zones.iter().filter(|z| z.zone == j.zone).collect();
    let removals = Removals::of(ev);
    for z in &own {
        let only_removed = z.duplicated == 0 && z.reordered == 0 && z.unexpected == 0;
        if only_removed && removals.explain(z.lost, &z.lost_ids) {
            failures.push(format!(
                "the new zone {} lacks {} of the acked messages removed before it read them{}: consequence of the removal above",
                j.zone,
                z.lost,
                z.origin
                    .as_ref()
                    .map(|o| format!(" (the writes of zone {o})"))
                    .unwrap_or_default()
            ));
        } else if z.clean() {
            evidence.insert(
                match &z.origin {
                    Some(origin) => format!("zone.{origin}"),
                    None => "zone".into(),
                },
                format!("read {} of {} acked, in order", z.read, z.expected),
            );
        } else {
            failures.push(format!(
                "the new zone {} is missing or disorders history{}: lost {} duplicated {} reordered {}",
                j.zone,
                z.origin.as_ref().map(|o| format!(" of zone {o}")).unwrap_or_default(),
                z.lost,
                z.duplicated,
                z.reordered
            ));
        }
    }
    if own.is_empty() {
        if ev.zones.is_empty() {
            missing.push("the final check did not run after the join".to_string());
        } else if j.error.is_none() {
            missing.push(format!("zone {} was not checked", j.zone));
        }
    }
    let sources = ev.topology == crate::api::Topology::Sources;
    if sources && j.error.is_none() && !ev.zones.is_empty() {
        // Its writes must reach every other aggregate with no change to anyone.
        let elsewhere: Vec<&ZoneCheck> = ev
            .zones
            .iter()
            .filter(|c| c.origin.as_deref() == Some(j.zone.as_str()) && c.zone != j.zone)
            .collect();
        if elsewhere.is_empty() {
            missing.push(format!(
                "no other aggregate was checked for zone {}'s writes",
                j.zone
            ));
        } else if elsewhere.iter().all(|c| c.expected == 0) {
            failures.push(format!(
                "zone {} wrote nothing after it joined: put a produce step after add-temporary-zone",
                j.zone
            ));
        }
        for c in elsewhere.iter().filter(|c| c.expected > 0) {
            if c.clean() {
                evidence.insert(
                    format!("appearedIn.{}", c.zone),
                    format!("read {} of {} acked", c.read, c.expected),
                );
            } else {
                failures.push(format!(
                    "zone {}'s writes are not all in zone {}'s aggregate, once and in order: lost {} duplicated {} reordered {}",
                    j.zone, c.zone, c.lost, c.duplicated, c.reordered
                ));
            }
        }
    }
    if sources {
        return result(
            claim,
            failures,
            missing,
            format!(
                "{} sourced every zone's history, its own writes appeared in every other aggregate, and the producers already writing were untouched",
                j.zone
            ),
            evidence,
        );
    }
    result(
        claim,
        failures,
        missing,
        format!(
            "{} backfilled the whole history and followed new traffic; the producer was untouched",
            j.zone
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Evidence {
        let zones = vec!["b".to_string()];
        let one = |v: u64| BTreeMap::from([("b".to_string(), v)]);
        let no = BTreeMap::from([("b".to_string(), false)]);
        let producer = ProducerIdentity {
            server_id: "S".into(),
            client_id: 4,
            connects: 1,
            subject: "events.x".into(),
        };
        let pos = |f, p| Position {
            ack_floor: f,
            pending: p,
            ack_pending: 0,
        };
        Evidence {
            topology: Default::default(),
            partitions: vec![PartitionEvidence {
                zones,
                in_sync_before_cut: true,
                source_at_cut: Some(100),
                source_before_heal: Some(200),
                mirror_at_cut: one(100),
                mirror_before_heal: one(100),
                probe_at_cut: no.clone(),
                probe_before_heal: no,
                held_seconds: 8.0,
                across: vec!["b".into()],
                acked_during: BTreeMap::from([("a".into(), 100)]),
                own_read_during: BTreeMap::from([("a".into(), 100)]),
                backlog: one(100),
                reads_during: one(100),
                errors_during: BTreeMap::from([("a".into(), 0), ("b".into(), 0)]),
                leftovers: vec![],
                healed: true,
                heal_error: None,
                closed_after: None,
                ended_early: None,
            }],
            catch_up: Some(CatchUpEvidence {
                seconds: Some(3.2),
                timeout_seconds: 60.0,
                reconnect_interval_seconds: 2,
                ..Default::default()
            }),
            pause: Some(PauseEvidence {
                paused_zone: "a".into(),
                published: 50,
                before: BTreeMap::from([("a".into(), pos(50, 0)), ("b".into(), pos(50, 0))]),
                after: BTreeMap::from([("a".into(), pos(50, 50)), ("b".into(), pos(100, 0))]),
                last_seq: BTreeMap::from([("a".into(), 100), ("b".into(), 100)]),
            }),
            join: Some(JoinEvidence {
                zone: "joiner".into(),
                history: 200,
                backfill_seconds: Some(1.0),
                producers_before: BTreeMap::from([("a".into(), producer.clone())]),
                producers_after: BTreeMap::from([("a".into(), producer)]),
                error: None,
            }),
            zones: ["a", "b", "joiner"]
                .iter()
                .map(|z| ZoneCheck {
                    zone: z.to_string(),
                    expected: 300,
                    read: 300,
                    ..Default::default()
                })
                .collect(),
            interrupted: None,
            stopped_at: None,
            not_reached: Vec::new(),
            stored: ["a", "b", "joiner"]
                .iter()
                .map(|z| StoredAuditResult {
                    zone: z.to_string(),
                    expected: 300,
                    stored_from_run: 300,
                    ..Default::default()
                })
                .collect(),
            stored_errors: BTreeMap::new(),
        }
    }

    fn verdicts(ev: &Evidence) -> Vec<Verdict> {
        judge(ev).into_iter().map(|c| c.verdict).collect()
    }

    #[test]
    fn healthy_evidence_passes_all_four() {
        assert_eq!(
            verdicts(&healthy()),
            vec![Verdict::Passed; 4],
            "{:#?}",
            judge(&healthy())
        );
    }

    #[test]
    fn a_resumed_mirror_is_named_in_claim_two_and_its_evidence() {
        let mut ev = healthy();
        ev.catch_up.as_mut().unwrap().resumes = vec![
            MirrorResume {
                zone: "b".into(),
                link_up_seconds: 0.8,
                at_seconds: 1.9,
                to_server: Some("b-1".into()),
                error: None,
            },
            MirrorResume {
                zone: "c".into(),
                link_up_seconds: 0.5,
                at_seconds: 1.6,
                to_server: None,
                error: Some("the mirror has 1 replica".into()),
            },
        ];
        let claims = judge(&ev);
        let c2 = claims
            .iter()
            .find(|c| c.claim == Claim::NoLossAfterHeal)
            .unwrap();
        assert_eq!(c2.verdict, Verdict::Passed, "{c2:?}");
        let said = "resumed mirror b by leader stepdown at 1.9s after the heal (link up at 0.8s, to server b-1); could not resume mirror c at 1.6s after the heal: the mirror has 1 replica";
        assert!(
            c2.message
                .ends_with(&format!("caught up in 3.20s ({said})")),
            "{}",
            c2.message
        );
        assert_eq!(
            c2.evidence.get("mirrorResumes").map(String::as_str),
            Some(said)
        );
    }

    #[test]
    fn a_cut_that_ended_early_is_inconclusive_never_a_leak() {
        let mut ev = healthy();
        ev.partitions[0].mirror_before_heal = BTreeMap::from([("b".into(), 150)]);
        ev.partitions[0].probe_before_heal = BTreeMap::from([("b".into(), true)]);
        ev.partitions[0].ended_early = Some("its deadline passed".into());
        let c = &judge(&ev)[0];
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
        assert!(!c.message.contains("leaked"), "{}", c.message);
        assert!(c.message.contains("its deadline passed"), "{}", c.message);
        assert_eq!(c.evidence["endedEarly"], "its deadline passed");
        // The same figures with the cut in place to the end: a leak.
        ev.partitions[0].ended_early = None;
        assert_eq!(judge(&ev)[0].verdict, Verdict::Failed);
    }

    #[test]
    fn a_moving_mirror_fails_claim_one_as_a_leak() {
        let mut ev = healthy();
        ev.partitions[0].mirror_before_heal.insert("b".into(), 180);
        let c = &judge(&ev)[0];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(c.message.contains("partition leaked"), "{}", c.message);
        assert_eq!(verdicts(&ev)[1..], [Verdict::Passed; 3]);
    }

    #[test]
    fn lost_messages_fail_claim_two_with_ids() {
        let mut ev = healthy();
        ev.zones[1].lost = 2;
        ev.zones[1].lost_ids = vec!["1-4".into(), "1-9".into()];
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(c.message.contains("1-4, 1-9"), "{}", c.message);
    }

    #[test]
    fn no_catch_up_and_leftovers_fail_claim_two() {
        let mut ev = healthy();
        ev.catch_up.as_mut().unwrap().seconds = None;
        ev.partitions[0].leftovers = vec!["proxy b-0 disabled".into()];
        let c = &judge(&ev)[1];
        assert!(
            c.message.contains("did not catch up") && c.message.contains("left faults behind"),
            "{}",
            c.message
        );
    }

    /// The catch-up ran over its timeout and came within the grace: claim 2
    /// fails as late, with the time, and nothing is called lost or missing.
    fn late_catch_up(ev: &mut Evidence) {
        let c = ev.catch_up.as_mut().unwrap();
        c.seconds = None;
        c.timeout_seconds = 1.0;
        c.grace_seconds = 10.0;
        c.late_seconds = Some(6.3);
        c.reconnect_interval_seconds = 5;
    }

    #[test]
    fn a_late_but_complete_catch_up_fails_claim_two_as_late_never_lost() {
        let mut ev = healthy();
        late_catch_up(&mut ev);
        ev.zones[1].late = 200;
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed, "{}", c.message);
        assert!(
            c.message.contains(
                "mirrors caught up 6.30s after the heal, later than timeouts.catchUpSeconds 1s"
            ) && c
                .message
                .contains("zone b read 200 of 300 acked messages after that timeout")
                && c.message.contains("late: every acked message arrived"),
            "{}",
            c.message
        );
        assert!(
            !c.message.contains("lost") && !c.message.contains("missing"),
            "{}",
            c.message
        );
        assert_eq!(c.evidence["lateCatchUpSeconds"], "6.30");
        assert_eq!(c.evidence["catchUpGraceSeconds"], "10");
        assert!(c.evidence["zone.b"].contains("late=200 lost=0"), "{c:?}");
        // The other claims do not hear of it.
        assert_eq!(verdicts(&ev)[2..], [Verdict::Passed; 2]);
    }

    #[test]
    fn messages_still_absent_after_the_grace_are_lost_beside_the_late_ones() {
        let mut ev = healthy();
        late_catch_up(&mut ev);
        ev.zones[1].late = 150;
        ev.zones[1].lost = 2;
        ev.zones[1].lost_suffix = 2;
        ev.zones[1].lost_ids = vec!["1-299".into(), "1-300".into()];
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(
            c.message
                .contains("zone b read 150 of 300 acked messages after that timeout (late)")
                && c.message.contains(
                    "zone b lost 2 of 300 acked messages, still missing after the 10s grace"
                )
                && c.message.contains("1-299, 1-300"),
            "{}",
            c.message
        );
        assert!(
            !c.message.contains("every acked message arrived"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_catch_up_that_never_came_names_the_grace_and_the_loss() {
        let mut ev = healthy();
        late_catch_up(&mut ev);
        let c = ev.catch_up.as_mut().unwrap();
        c.late_seconds = None;
        c.lag_at_end = BTreeMap::from([("b".into(), 300)]);
        ev.zones[1].lost = 300;
        ev.zones[1].lost_suffix = 300;
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(
            c.message.contains(
                "mirrors did not catch up within 1s after the heal, nor in the 10s grace after that (lag: b=300"
            ) && c
                .message
                .contains("zone b lost 300 of 300 acked messages, still missing after the 10s grace"),
            "{}",
            c.message
        );
        assert!(!c.message.contains("late"), "{}", c.message);
    }

    #[test]
    fn a_stalled_other_zone_fails_claim_three() {
        let mut ev = healthy();
        ev.pause.as_mut().unwrap().after.insert(
            "b".into(),
            Position {
                ack_floor: 60,
                pending: 40,
                ack_pending: 0,
            },
        );
        assert_eq!(judge(&ev)[2].verdict, Verdict::Failed);
    }

    #[test]
    fn a_reconnected_producer_fails_claim_four() {
        let mut ev = healthy();
        ev.join
            .as_mut()
            .unwrap()
            .producers_after
            .get_mut("a")
            .unwrap()
            .connects = 2;
        assert_eq!(judge(&ev)[3].verdict, Verdict::Failed);
    }

    #[test]
    fn an_unread_mirror_sequence_is_inconclusive_never_a_leak_from_zero() {
        let mut ev = healthy();
        ev.partitions[0].mirror_before_heal.clear();
        let c = &judge(&ev)[0];
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
        assert!(!c.message.contains("leaked"), "{}", c.message);
        assert!(c.message.contains("before the heal"), "{}", c.message);
        assert!(c.evidence["mirrorLastSeq"].contains("unread"));
    }

    #[test]
    fn a_cut_zone_that_does_not_drain_its_backlog_fails_claim_one() {
        let mut ev = healthy();
        ev.partitions[0].reads_during.insert("b".into(), 10);
        let c = &judge(&ev)[0];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(
            c.message.contains("read 10 of its 100-message backlog"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_hole_in_a_stored_stream_fails_claim_two_naming_the_sequence() {
        let mut ev = healthy();
        ev.stored[1].missing = 2;
        ev.stored[1].missing_middle = 2;
        ev.stored[1].missing_examples = vec!["seq 5 (1-5)".into(), "seq 6 (1-6)".into()];
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(
            c.message.contains("zone b's stored stream lacks 2 of 300")
                && c.message.contains("seq 5 (1-5), seq 6 (1-6)"),
            "{}",
            c.message
        );
    }

    /// Two acked messages (seqs 75 and 76, during the pause phase) removed
    /// from zone a's stream, the one the writer was acked by; the joiner
    /// mirrored it after, so neither a's consumer, nor the joiner's, nor the
    /// joiner's stored stream has them, and a's paused consumer shows two
    /// fewer pending.
    fn removed_from_the_source(ev: &mut Evidence) {
        let ids = vec!["1-75".to_string(), "1-76".to_string()];
        for i in [0, 2] {
            let a = &mut ev.stored[i];
            a.stream = "EVENTS".into();
            a.removed = 2;
            a.removed_ids = ids.clone();
            a.removed_seqs = vec![75, 76];
            a.acked_here = i == 0;
            ev.zones[i].lost = 2;
            ev.zones[i].lost_middle = 2;
            ev.zones[i].lost_ids = ids.clone();
        }
        ev.pause
            .as_mut()
            .unwrap()
            .after
            .get_mut("a")
            .unwrap()
            .pending = 48;
    }

    #[test]
    fn a_removal_is_named_once_and_what_follows_from_it_says_so() {
        let mut ev = healthy();
        removed_from_the_source(&mut ev);
        let claims = judge(&ev);
        let c2 = &claims[1];
        assert_eq!(c2.verdict, Verdict::Failed);
        assert_eq!(
            c2.message,
            "2 acked messages removed from zone a's stored stream EVENTS (ids 1-75, 1-76; seqs 75, 76); \
             the same messages are absent from what zone a read, what zone joiner read and zone joiner's stored stream EVENTS (consequence of the removal above)"
        );
        assert!(
            c2.evidence["stored.a.EVENTS"].contains("removed=2"),
            "{c2:?}"
        );
        let c3 = &claims[2];
        assert_eq!(c3.verdict, Verdict::Failed);
        assert_eq!(
            c3.message,
            "the paused consumer in a shows 48 pending where 50 were published, 2 short: consequence of the removal above"
        );
        let c4 = &claims[3];
        assert_eq!(c4.verdict, Verdict::Failed);
        assert_eq!(
            c4.message,
            "the new zone joiner lacks 2 of the acked messages removed before it read them: consequence of the removal above"
        );
        assert_eq!(claims[0].verdict, Verdict::Passed);
    }

    #[test]
    fn more_than_the_removal_explains_fails_on_its_own() {
        let mut ev = healthy();
        removed_from_the_source(&mut ev);
        // Ten short where two were removed: the paused consumer's own finding.
        ev.pause
            .as_mut()
            .unwrap()
            .after
            .get_mut("a")
            .unwrap()
            .pending = 40;
        // A consumer that lacks a message nobody removed.
        ev.zones[2].lost = 3;
        ev.zones[2].lost_ids.push("1-90".into());
        let claims = judge(&ev);
        assert_eq!(
            claims[2].message,
            "the paused consumer in a shows 40 pending, expected at least 50 (+50 published)"
        );
        let c2 = &claims[1].message;
        assert!(
            c2.contains("zone joiner lost 3 of 300 acked messages")
                && c2.contains("1-75, 1-76, 1-90")
                && c2.contains("absent from what zone a read and zone joiner's stored stream EVENTS (consequence"),
            "{c2}"
        );
        assert!(
            claims[3]
                .message
                .contains("is missing or disorders history: lost 3"),
            "{}",
            claims[3].message
        );
        // Removed before the paused consumer's ack floor: nothing it could be short of.
        let mut ev = healthy();
        removed_from_the_source(&mut ev);
        ev.stored[0].removed_seqs = vec![5, 6];
        assert!(judge(&ev)[2].message.contains("expected at least 50"));
    }

    #[test]
    fn a_removal_from_a_mirror_alone_is_its_own_finding() {
        let mut ev = healthy();
        let b = &mut ev.stored[1];
        b.removed = 2;
        b.removed_ids = vec!["1-5".into(), "1-6".into()];
        b.removed_seqs = vec![5, 6];
        let c2 = &judge(&ev)[1];
        assert_eq!(c2.verdict, Verdict::Failed);
        assert_eq!(
            c2.message,
            "2 acked messages removed from zone b's stored stream (ids 1-5, 1-6; seqs 5, 6)"
        );
    }

    #[test]
    fn a_stored_stream_that_cannot_be_read_is_inconclusive() {
        let mut ev = healthy();
        ev.stored.remove(1);
        ev.stored_errors.insert("b".into(), "timed out".into());
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
    }

    #[test]
    fn a_failed_heal_names_its_error() {
        let mut ev = healthy();
        ev.partitions[0].healed = false;
        ev.partitions[0].heal_error = Some("toxiproxy: connection refused".into());
        let c = &judge(&ev)[1];
        assert_eq!(c.verdict, Verdict::Failed);
        assert!(c.message.contains("connection refused"), "{}", c.message);
    }

    #[test]
    fn a_check_that_never_ran_is_inconclusive_not_failed() {
        let mut ev = healthy();
        ev.zones.clear();
        ev.catch_up = None;
        let v = verdicts(&ev);
        assert_eq!(v[1], Verdict::Inconclusive);
        assert_eq!(v[3], Verdict::Inconclusive);
    }

    #[test]
    fn a_loss_found_without_any_partition_still_fails_claim_two() {
        let mut ev = healthy();
        ev.partitions.clear();
        ev.catch_up = None;
        ev.zones[0].lost = 3;
        assert_eq!(judge(&ev)[1].verdict, Verdict::Failed);
    }

    #[test]
    fn missing_steps_are_not_run() {
        let ev = Evidence::default();
        assert_eq!(verdicts(&ev), vec![Verdict::NotRun; 4]);
        assert_eq!(judge(&ev)[0].message, "no partition step ran");
    }

    #[test]
    fn a_claim_whose_step_never_ran_says_where_the_steps_stopped() {
        let mut ev = healthy();
        ev.partitions.clear();
        ev.catch_up = None;
        ev.join = None;
        ev.interrupted = Some("the cut failed: toxiproxy: connection refused".into());
        ev.stopped_at = Some("partition".into());
        ev.not_reached = ["produce", "heal", "add-temporary-zone", "verify"]
            .map(String::from)
            .to_vec();
        let claims = judge(&ev);
        assert_eq!(claims[0].verdict, Verdict::NotRun);
        assert_eq!(
            claims[0].message,
            "the steps stopped in partition (the cut failed: toxiproxy: connection refused), so this claim could not be judged"
        );
        assert_eq!(claims[3].verdict, Verdict::NotRun);
        assert_eq!(
            claims[3].message,
            "the add-temporary-zone step never ran: the steps stopped at partition (the cut failed: toxiproxy: connection refused)"
        );
        // A step the drill never had is not blamed on the stop.
        ev.not_reached.retain(|s| s != "add-temporary-zone");
        assert_eq!(judge(&ev)[3].message, "no add-temporary-zone step ran");
    }
}
