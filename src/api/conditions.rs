//! Conditions with stable `lastTransitionTime`: a condition's time moves only
//! when its status changes, so a steady object produces no status writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// What a controller wants a condition to say this time round.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

/// Merge `desired` into `existing`, keeping `lastTransitionTime` when the
/// status did not change.
pub fn upsert(
    existing: &mut Vec<Condition>,
    desired: Desired<'_>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let status = if desired.status { TRUE } else { FALSE };
    match existing.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.to_string();
            c.reason = desired.reason.to_string();
            c.message = desired.message;
            c.observed_generation = generation;
        }
        None => existing.push(Condition {
            type_: desired.type_.to_string(),
            status: status.to_string(),
            reason: desired.reason.to_string(),
            message: desired.message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: bool, reason: &str) -> Desired<'static> {
        Desired {
            type_: "Ready",
            status,
            reason: if reason == "a" { "a" } else { "b" },
            message: String::new(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let t2 = jiff::Timestamp::from_second(3_000).unwrap();
        let mut conds = Vec::new();
        upsert(&mut conds, ready(false, "a"), Some(1), t0);
        upsert(&mut conds, ready(false, "b"), Some(2), t1);
        assert_eq!(conds[0].last_transition_time, Time(t0));
        assert_eq!(conds[0].reason, "b");
        assert_eq!(conds[0].observed_generation, Some(2));
        upsert(&mut conds, ready(true, "a"), Some(2), t2);
        assert_eq!(conds[0].last_transition_time, Time(t2));
        assert!(is_true(&conds, "Ready"));
        assert_eq!(conds.len(), 1);
    }
}
