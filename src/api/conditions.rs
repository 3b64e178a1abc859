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

/// A condition's status. Most conditions are decided either way; some (a
/// drill's outcome while it runs) are not decided yet, which is `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    True,
    False,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::True => TRUE,
            State::False => FALSE,
            State::Unknown => UNKNOWN,
        }
    }
}

impl From<bool> for State {
    fn from(b: bool) -> Self {
        if b { State::True } else { State::False }
    }
}

/// Merge `desired` into `existing`, keeping `lastTransitionTime` when the
/// status did not change.
pub fn upsert(
    existing: &mut Vec<Condition>,
    desired: Desired<'_>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    upsert_state(
        existing,
        desired.type_,
        desired.status.into(),
        desired.reason,
        desired.message,
        generation,
        now,
    )
}

/// [`upsert`] for a condition that may be `Unknown`.
pub fn upsert_state(
    existing: &mut Vec<Condition>,
    type_: &str,
    state: State,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let status = state.as_str();
    match existing.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = generation;
        }
        None => existing.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
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
