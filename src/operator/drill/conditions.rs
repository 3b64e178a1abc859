//! PartitionDrill conditions, derived from the phase of the current (or last)
//! run, so `kubectl wait --for=condition=...` and kstatus readers (Flux,
//! Argo CD health checks) can tell a drill in progress, passed, failed or
//! unable to finish. They change only at a run's start and end; the shared
//! upsert keeps `lastTransitionTime` when a status stays the same.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::conditions::{State, upsert_state};
use crate::api::{DrillPhase, PartitionDrillStatus, Verdict};

/// kstatus' "in progress": True while a run is on (faults may be open).
pub const RECONCILING: &str = "Reconciling";
/// True once the run ended, however it ended: what CI waits for.
pub const COMPLETED: &str = "Completed";
/// True when the run ended with every claim passed.
pub const SUCCEEDED: &str = "Succeeded";
/// True when a claim failed on the evidence, or a precondition failed.
pub const FAILED: &str = "Failed";
/// kstatus' "failed": True when the run ended other than Succeeded (Failed,
/// Errored, Aborted), so GitOps health shows a drill that did not pass.
pub const STALLED: &str = "Stalled";

pub const ALL: [&str; 5] = [RECONCILING, COMPLETED, SUCCEEDED, FAILED, STALLED];

/// Condition messages stay short: claims and status carry the detail.
const MESSAGE_CHARS: usize = 1000;

fn phase_name(phase: DrillPhase) -> &'static str {
    match phase {
        DrillPhase::Pending => "Pending",
        DrillPhase::Running => "Running",
        DrillPhase::Healing => "Healing",
        DrillPhase::Succeeded => "Succeeded",
        DrillPhase::Failed => "Failed",
        DrillPhase::Aborted => "Aborted",
        DrillPhase::Errored => "Errored",
    }
}

/// One line on what the run found: its message, and which claims failed.
fn outcome(status: &PartitionDrillStatus) -> String {
    let failed: Vec<&str> = status
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Failed)
        .map(|c| c.claim.title())
        .collect();
    let mut m = status.message.clone().unwrap_or_default();
    if !failed.is_empty() {
        if !m.is_empty() {
            m.push_str("; ");
        }
        m.push_str(&format!("failed: {}", failed.join(", ")));
    }
    if m.is_empty() {
        m = format!(
            "phase {}, verdict {:?}",
            phase_name(status.phase),
            status.verdict
        );
    }
    m.chars().take(MESSAGE_CHARS).collect()
}

/// Sets every drill condition in `status.conditions` from `status.phase`;
/// `status.conditions` must hold the previous ones, so unchanged conditions
/// keep their transition time.
pub fn update(status: &mut PartitionDrillStatus, generation: Option<i64>, now: jiff::Timestamp) {
    let phase = status.phase;
    let reason = phase_name(phase);
    let message = outcome(status);
    let running = !phase.is_finished();
    let (reconciling, completed, succeeded, failed, stalled) = if running {
        (
            State::True,
            State::False,
            State::Unknown,
            State::Unknown,
            State::False,
        )
    } else {
        let ok = phase == DrillPhase::Succeeded;
        (
            State::False,
            State::True,
            ok.into(),
            (phase == DrillPhase::Failed).into(),
            (!ok).into(),
        )
    };
    let mut conds: Vec<Condition> = std::mem::take(&mut status.conditions);
    for (type_, state) in [
        (RECONCILING, reconciling),
        (COMPLETED, completed),
        (SUCCEEDED, succeeded),
        (FAILED, failed),
        (STALLED, stalled),
    ] {
        upsert_state(
            &mut conds,
            type_,
            state,
            reason,
            message.clone(),
            generation,
            now,
        );
    }
    status.conditions = conds;
}

/// `passed/judged` over the claims in status (`4/4`), for the printer column.
pub fn claims_passed(status: &PartitionDrillStatus) -> Option<String> {
    if status.claims.is_empty() {
        return None;
    }
    let passed = status
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Passed)
        .count();
    Some(format!("{passed}/{}", status.claims.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Claim, ClaimResult};

    fn cond<'a>(s: &'a PartitionDrillStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).expect(t)
    }

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn claim(claim: Claim, verdict: Verdict) -> ClaimResult {
        ClaimResult {
            claim,
            verdict,
            message: String::new(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn a_run_moves_conditions_at_its_start_and_end_only() {
        let mut s = PartitionDrillStatus {
            phase: DrillPhase::Running,
            ..Default::default()
        };
        update(&mut s, Some(1), at(10));
        assert_eq!(cond(&s, RECONCILING).status, "True");
        assert_eq!(cond(&s, COMPLETED).status, "False");
        assert_eq!(cond(&s, SUCCEEDED).status, "Unknown");
        assert_eq!(cond(&s, STALLED).status, "False");
        // Healing is still in progress: nothing moves.
        s.phase = DrillPhase::Healing;
        update(&mut s, Some(1), at(20));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.last_transition_time.0 == at(10))
        );

        s.phase = DrillPhase::Failed;
        s.verdict = Verdict::Failed;
        s.claims = vec![
            claim(Claim::LocalConsumption, Verdict::Passed),
            claim(Claim::NoLossAfterHeal, Verdict::Failed),
        ];
        update(&mut s, Some(2), at(30));
        assert_eq!(cond(&s, COMPLETED).status, "True");
        assert_eq!(cond(&s, FAILED).status, "True");
        assert_eq!(cond(&s, SUCCEEDED).status, "False");
        assert_eq!(cond(&s, STALLED).status, "True");
        assert_eq!(cond(&s, STALLED).reason, "Failed");
        assert!(cond(&s, FAILED).message.contains("nothing lost"));
        assert_eq!(cond(&s, FAILED).observed_generation, Some(2));
        assert_eq!(cond(&s, COMPLETED).last_transition_time.0, at(30));
        assert_eq!(claims_passed(&s).as_deref(), Some("1/2"));
        assert_eq!(s.conditions.len(), ALL.len());
    }

    #[test]
    fn the_next_run_keeps_times_of_conditions_that_stay() {
        let mut s = PartitionDrillStatus {
            phase: DrillPhase::Succeeded,
            ..Default::default()
        };
        update(&mut s, Some(1), at(10));
        assert_eq!(cond(&s, SUCCEEDED).status, "True");
        assert_eq!(cond(&s, FAILED).status, "False");
        // A scheduled run starts: Stalled was False and stays False.
        s.phase = DrillPhase::Running;
        update(&mut s, Some(1), at(50));
        assert_eq!(cond(&s, STALLED).last_transition_time.0, at(10));
        assert_eq!(cond(&s, COMPLETED).last_transition_time.0, at(50));
        // It errors: no verdict on the region, but not a success either.
        s.phase = DrillPhase::Errored;
        s.message = Some("the zones did not answer".into());
        update(&mut s, Some(1), at(90));
        assert_eq!(cond(&s, FAILED).status, "False");
        assert_eq!(cond(&s, STALLED).status, "True");
        assert_eq!(cond(&s, STALLED).message, "the zones did not answer");
    }
}
