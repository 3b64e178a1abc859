//! A fault's deadline, written on the fault objects themselves so that any
//! process can enforce it: an annotation on each NetworkPolicy of a cut, and
//! a marker toxic on each disabled Toxiproxy proxy. The operator's reaper
//! (`operator::drill::reaper`) reads them back, at its start and then
//! periodically, and removes every fault past its deadline, whether or not a
//! drill task, a drill status or the process that cut is still there. Pure.

/// On every NetworkPolicy of a cut: the RFC 3339 time it must be gone by.
pub const ANNOTATION: &str = "natsregion.io/fault-deadline";

/// Toxics named `natsregion-deadline-<unix seconds>` mark a cut proxy's
/// deadline. Toxicity 0: Toxiproxy never applies them (the link, once the
/// proxy is enabled again, is untouched), it only keeps them with the proxy.
pub const MARKER_PREFIX: &str = "natsregion-deadline-";

/// When a fault injected at `injected` must be gone: `after` later.
pub fn at(injected: jiff::Timestamp, after: std::time::Duration) -> jiff::Timestamp {
    injected + jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::MAX)
}

/// The marker toxic's name for `deadline`.
pub fn marker_name(deadline: jiff::Timestamp) -> String {
    format!("{MARKER_PREFIX}{}", deadline.as_second())
}

/// The deadline a marker toxic's name holds; `None` for any other toxic.
pub fn parse_marker(name: &str) -> Option<jiff::Timestamp> {
    let secs: i64 = name.strip_prefix(MARKER_PREFIX)?.parse().ok()?;
    jiff::Timestamp::from_second(secs).ok()
}

/// The annotation's value for `deadline`.
pub fn annotation_value(deadline: jiff::Timestamp) -> String {
    deadline.to_string()
}

/// The deadline an annotation value holds; `None` when it is not a time.
pub fn parse_annotation(value: &str) -> Option<jiff::Timestamp> {
    value.parse().ok()
}

/// Past its deadline at `now`.
pub fn expired(deadline: jiff::Timestamp, now: jiff::Timestamp) -> bool {
    deadline <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_round_trip_and_other_toxics_are_not_markers() {
        let t = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(marker_name(t), "natsregion-deadline-1800000000");
        assert_eq!(parse_marker(&marker_name(t)), Some(t));
        assert_eq!(parse_marker("latency-0-upstream"), None);
        assert_eq!(parse_marker("natsregion-deadline-soon"), None);
    }

    #[test]
    fn annotations_round_trip_and_expire_at_the_deadline() {
        let t: jiff::Timestamp = "2026-12-06T20:00:00Z".parse().unwrap();
        assert_eq!(parse_annotation(&annotation_value(t)), Some(t));
        assert_eq!(parse_annotation("tomorrow"), None);
        assert!(!expired(t, t - jiff::SignedDuration::from_secs(1)));
        assert!(expired(t, t));
        assert!(expired(t, t + jiff::SignedDuration::from_secs(1)));
    }
}
