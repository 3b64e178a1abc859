//! What one reconcile of a PartitionDrill must do: a pure function of the
//! drill as stored, whether this process runs a task for it, and the time.
//! The controller carries the decision out; the table tests below pin the
//! rules without an API server.

use std::time::Duration;

use kube::ResourceExt;

use super::{ABORT_ANNOTATION, FINALIZER};
use crate::api::{DrillPhase, FaultRecord, PartitionDrill, PartitionDrillStatus};
use crate::operator::error::{Error, Result};

/// A fault this long past its deadline was removed by its backend's timer:
/// the drill cannot go on believing the partition holds.
const OVERDUE_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// The task of this process must stop (the drill is being deleted, an
    /// abort was asked, or a fault is overdue); it heals on its way out.
    StopTask { overdue: bool },
    /// The task runs and writes status as it goes; look again to collect it.
    WatchTask,
    /// The status says a run is in progress or faults are open, but no task
    /// runs here (the operator restarted, or a task died): heal these first.
    HealOrphan(Vec<FaultRecord>),
    /// Being deleted with nothing open: let it go.
    Release,
    /// An abort asked before the run started: record it as Aborted.
    MarkAborted,
    /// Nothing to do until the drill changes.
    Idle,
    /// Record that this generation of the spec was seen, start no run: a
    /// scheduled drill's edit waits for its next time, a suspended one for
    /// `suspend: false`.
    Observe,
    /// The next scheduled run is this far away.
    WaitFor(Duration),
    /// Start a run; `scheduled_at` is the schedule time it stands for.
    Start {
        scheduled_at: Option<jiff::Timestamp>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Remove the heal finalizer before `next` (the run is over, or none began).
    pub drop_finalizer: bool,
    pub next: Next,
}

impl Next {
    fn only(self) -> Decision {
        Decision {
            drop_finalizer: false,
            next: self,
        }
    }
}

pub fn decide(
    drill: &PartitionDrill,
    task_running: bool,
    now: jiff::Timestamp,
) -> Result<Decision> {
    let status = drill.status.as_ref();
    let deleting = drill.metadata.deletion_timestamp.is_some();
    let abort_asked = drill
        .annotations()
        .get(ABORT_ANNOTATION)
        .is_some_and(|v| v == "true");
    let open = unhealed(status);
    if task_running {
        let overdue = open.iter().any(|f| f.deadline.0 < now - OVERDUE_GRACE);
        return Ok(if deleting || abort_asked || overdue {
            Next::StopTask { overdue }
        } else {
            Next::WatchTask
        }
        .only());
    }

    let phase = status.map(|s| s.phase).unwrap_or_default();
    if matches!(phase, DrillPhase::Running | DrillPhase::Healing) || !open.is_empty() {
        return Ok(Next::HealOrphan(open).only());
    }
    if deleting {
        return Ok(Next::Release.only());
    }
    let drop_finalizer = has_finalizer(drill) && (phase.is_finished() || status.is_none());
    let next = if abort_asked {
        if phase.is_finished() {
            Next::Idle
        } else {
            Next::MarkAborted
        }
    } else if drill.spec.suspend && drill.spec.schedule.is_some() {
        if spec_changed(drill) || status.is_none() {
            Next::Observe
        } else {
            Next::Idle
        }
    } else if phase.is_finished() && spec_changed(drill) {
        // An edit (from Git, say) is the user asking for the drill as it
        // now reads: a one-shot drill runs it, a scheduled one at its next
        // time. Either way observedGeneration follows.
        if drill.spec.schedule.is_none() {
            Next::Start { scheduled_at: None }
        } else {
            Next::Observe
        }
    } else if phase.is_finished() {
        match next_run(drill, now)? {
            None => Next::Idle,
            Some(next) if next > now => {
                let wait = (next - now)
                    .total(jiff::Unit::Second)
                    .unwrap_or(60.0)
                    .clamp(1.0, 3600.0);
                Next::WaitFor(Duration::from_secs_f64(wait))
            }
            // Recorded as the schedule time itself, as CronJobs do: the
            // latest one due, so times missed while no operator ran are
            // skipped instead of run one after another.
            Some(next) => Next::Start {
                scheduled_at: Some(latest_due(drill, now).unwrap_or(next)),
            },
        }
    } else {
        // A schedule that never fires (or does not parse) is refused before
        // the first run, not after it.
        if let Some(schedule) = &drill.spec.schedule {
            parse_schedule(schedule)?;
        }
        Next::Start {
            scheduled_at: drill.spec.schedule.as_ref().map(|_| now),
        }
    };
    Ok(Decision {
        drop_finalizer,
        next,
    })
}

/// The spec moved past the generation the status last recorded. A status
/// without one (written before this was kept) counts as current: an upgrade
/// must not run every finished drill again.
fn spec_changed(drill: &PartitionDrill) -> bool {
    let observed = drill.status.as_ref().and_then(|s| s.observed_generation);
    matches!((drill.metadata.generation, observed), (Some(g), Some(o)) if g > o)
}

/// The faults the status records as injected and not yet healed.
pub fn unhealed(status: Option<&PartitionDrillStatus>) -> Vec<FaultRecord> {
    status
        .map(|s| {
            s.faults
                .iter()
                .filter(|f| f.healed_at.is_none())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_finalizer(drill: &PartitionDrill) -> bool {
    drill.finalizers().iter().any(|f| f == FINALIZER)
}

/// When a finished drill should run again: the first schedule time after its
/// last run (or its creation, or `now` when it has neither). `None` without a
/// schedule.
pub fn next_run(drill: &PartitionDrill, now: jiff::Timestamp) -> Result<Option<jiff::Timestamp>> {
    let Some(schedule) = &drill.spec.schedule else {
        return Ok(None);
    };
    let cron = parse_schedule(schedule)?;
    let status = drill.status.as_ref();
    let after = status
        .and_then(|s| s.last_schedule_time.clone().or(s.started_at.clone()))
        .or_else(|| drill.metadata.creation_timestamp.clone())
        .map(|t| t.0)
        .unwrap_or(now);
    let next = cron
        .find_next_occurrence(&after.to_zoned(jiff::tz::TimeZone::UTC), false)
        .map_err(|e| invalid_schedule(format!("spec.schedule {schedule:?}: {e}")))?;
    Ok(Some(next.timestamp()))
}

fn invalid_schedule(message: String) -> Error {
    Error::Other {
        reason: "InvalidSchedule",
        message,
        permanent: true,
    }
}

/// The schedule as the API server's rules and the local runtime read it.
fn parse_schedule(schedule: &str) -> Result<croner::Cron> {
    crate::api::validate::schedule(schedule).map_err(invalid_schedule)
}

/// The latest schedule time at or before `now`.
fn latest_due(drill: &PartitionDrill, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let cron = crate::api::validate::schedule(drill.spec.schedule.as_ref()?).ok()?;
    cron.find_previous_occurrence(&now.to_zoned(jiff::tz::TimeZone::UTC), true)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{PartitionDrillSpec, Verdict};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-02T12:00:30Z";

    /// A drill as a row of the table describes it.
    #[derive(Default)]
    struct Row {
        phase: Option<DrillPhase>,
        deleting: bool,
        abort: bool,
        finalizer: bool,
        schedule: Option<&'static str>,
        last_scheduled: Option<&'static str>,
        /// Deadlines of unhealed faults.
        open: &'static [&'static str],
        generation: Option<i64>,
        observed: Option<i64>,
        suspend: bool,
    }

    fn drill(r: &Row) -> PartitionDrill {
        let spec: PartitionDrillSpec = serde_json::from_value(serde_json::json!({
            "regionRef": {"name": "east"},
        }))
        .unwrap();
        let mut d = PartitionDrill::new("d", spec);
        d.spec.schedule = r.schedule.map(str::to_string);
        d.spec.suspend = r.suspend;
        d.metadata.generation = r.generation;
        d.metadata.creation_timestamp = Some(Time(ts("2026-12-02T11:00:00Z")));
        if r.deleting {
            d.metadata.deletion_timestamp = Some(Time(ts(NOW)));
        }
        if r.abort {
            d.metadata.annotations = Some([(ABORT_ANNOTATION.into(), "true".into())].into());
        }
        if r.finalizer {
            d.metadata.finalizers = Some(vec![FINALIZER.into()]);
        }
        if r.phase.is_some() || !r.open.is_empty() {
            let mut s = PartitionDrillStatus {
                phase: r.phase.unwrap_or_default(),
                last_schedule_time: r.last_scheduled.map(|t| Time(ts(t))),
                observed_generation: r.observed,
                ..Default::default()
            };
            s.verdict = Verdict::NotRun;
            s.faults = r
                .open
                .iter()
                .enumerate()
                .map(|(i, deadline)| FaultRecord {
                    id: format!("f{i}"),
                    backend: "networkPolicy".into(),
                    zones: vec!["west".into()],
                    injected_at: Time(ts("2026-12-02T12:00:00Z")),
                    deadline: Time(ts(deadline)),
                    healed_at: None,
                    intent: false,
                })
                .collect();
            d.status = Some(s);
        }
        d
    }

    fn next(r: Row, task: bool) -> Decision {
        decide(&drill(&r), task, ts(NOW)).unwrap()
    }

    #[test]
    fn with_a_task_running_only_stop_or_watch() {
        let running = || Row {
            phase: Some(DrillPhase::Running),
            finalizer: true,
            open: &["2026-12-02T12:05:00Z"],
            ..Default::default()
        };
        assert_eq!(next(running(), true).next, Next::WatchTask);
        let cases = [
            (
                Row {
                    deleting: true,
                    ..running()
                },
                false,
            ),
            (
                Row {
                    abort: true,
                    ..running()
                },
                false,
            ),
            // Deadline 12:00:20, now 12:00:30: past the 5 s grace.
            (
                Row {
                    open: &["2026-12-02T12:00:20Z"],
                    ..running()
                },
                true,
            ),
        ];
        for (row, overdue) in cases {
            assert_eq!(next(row, true), Next::StopTask { overdue }.only());
        }
        // Within the grace the backend's own timer is still on it.
        let close = Row {
            open: &["2026-12-02T12:00:27Z"],
            ..running()
        };
        assert_eq!(next(close, true).next, Next::WatchTask);
    }

    #[test]
    fn without_a_task_a_run_in_progress_or_an_open_fault_is_healed_first() {
        for phase in [DrillPhase::Running, DrillPhase::Healing] {
            let row = Row {
                phase: Some(phase),
                deleting: true,
                abort: true,
                ..Default::default()
            };
            assert_eq!(next(row, false), Next::HealOrphan(vec![]).only());
        }
        // A finished drill whose final heal failed still has an open fault.
        let row = Row {
            phase: Some(DrillPhase::Failed),
            open: &["2026-12-02T12:05:00Z"],
            ..Default::default()
        };
        match next(row, false).next {
            Next::HealOrphan(open) => assert_eq!(open.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finished_or_never_started_drills() {
        let finished = || Row {
            phase: Some(DrillPhase::Succeeded),
            finalizer: true,
            ..Default::default()
        };
        assert_eq!(
            next(
                Row {
                    deleting: true,
                    ..finished()
                },
                false
            ),
            Next::Release.only()
        );
        assert_eq!(
            next(finished(), false),
            Decision {
                drop_finalizer: true,
                next: Next::Idle
            }
        );
        assert_eq!(
            next(
                Row {
                    abort: true,
                    ..finished()
                },
                false
            ),
            Decision {
                drop_finalizer: true,
                next: Next::Idle
            }
        );
        // Never started: an abort is recorded, else it starts.
        assert_eq!(
            next(
                Row {
                    abort: true,
                    ..Default::default()
                },
                false
            ),
            Next::MarkAborted.only()
        );
        assert_eq!(
            next(Row::default(), false),
            Next::Start { scheduled_at: None }.only()
        );
        assert_eq!(
            next(
                Row {
                    schedule: Some("*/5 * * * *"),
                    ..Default::default()
                },
                false
            ),
            Next::Start {
                scheduled_at: Some(ts(NOW))
            }
            .only()
        );
        // A Pending status without a finalizer is not a finished run.
        let pending = Row {
            phase: Some(DrillPhase::Pending),
            finalizer: true,
            ..Default::default()
        };
        assert!(!next(pending, false).drop_finalizer);
    }

    #[test]
    fn scheduled_drills_wait_for_the_next_time_or_start_at_the_latest_due() {
        let scheduled = |last: &'static str| Row {
            phase: Some(DrillPhase::Succeeded),
            schedule: Some("*/5 * * * *"),
            last_scheduled: Some(last),
            ..Default::default()
        };
        // Last run 11:59:30 → next 12:00:00... that is due (12:00:30 now).
        assert_eq!(
            next(scheduled("2026-12-02T11:59:30Z"), false).next,
            Next::Start {
                scheduled_at: Some(ts("2026-12-02T12:00:00Z"))
            }
        );
        // Last run at 12:00:00 → next 12:05:00, 270 s away.
        assert_eq!(
            next(scheduled("2026-12-02T12:00:00Z"), false).next,
            Next::WaitFor(Duration::from_secs(270))
        );
        // Missed times while no operator ran: one run, for the latest due.
        assert_eq!(
            next(scheduled("2026-12-02T10:00:00Z"), false).next,
            Next::Start {
                scheduled_at: Some(ts("2026-12-02T12:00:00Z"))
            }
        );
    }

    #[test]
    fn an_edited_finished_drill_runs_again_if_one_shot_and_is_observed_if_scheduled() {
        let edited = || Row {
            phase: Some(DrillPhase::Failed),
            generation: Some(2),
            observed: Some(1),
            ..Default::default()
        };
        assert_eq!(
            next(edited(), false).next,
            Next::Start { scheduled_at: None }
        );
        // Not edited, or a status of before observedGeneration: stays done.
        for observed in [Some(2), None] {
            let row = Row {
                observed,
                ..edited()
            };
            assert_eq!(next(row, false).next, Next::Idle);
        }
        // The abort annotation still holds it.
        let aborted = Row {
            abort: true,
            ..edited()
        };
        assert_eq!(next(aborted, false).next, Next::Idle);
        // While it runs the task is not disturbed: the edit runs after.
        let running = Row {
            phase: Some(DrillPhase::Running),
            ..edited()
        };
        assert_eq!(next(running, true).next, Next::WatchTask);
        // Scheduled: the edit is the next run's, not a run of its own.
        let scheduled = Row {
            schedule: Some("*/5 * * * *"),
            last_scheduled: Some("2026-12-02T12:00:00Z"),
            ..edited()
        };
        assert_eq!(next(scheduled, false).next, Next::Observe);
    }

    #[test]
    fn a_suspended_schedule_starts_nothing_and_stops_nothing() {
        let suspended = |phase, last: Option<&'static str>| Row {
            phase,
            schedule: Some("*/5 * * * *"),
            last_scheduled: last,
            suspend: true,
            generation: Some(2),
            observed: Some(2),
            ..Default::default()
        };
        // Due since 12:00:00, never run, or just created: no start.
        assert_eq!(
            next(
                suspended(Some(DrillPhase::Succeeded), Some("2026-12-02T11:55:00Z")),
                false
            )
            .next,
            Next::Idle
        );
        assert_eq!(
            next(suspended(Some(DrillPhase::Pending), None), false).next,
            Next::Idle
        );
        assert_eq!(next(suspended(None, None), false).next, Next::Observe);
        // The suspend itself is an edit: recorded, nothing started.
        let just_suspended = Row {
            observed: Some(1),
            ..suspended(Some(DrillPhase::Succeeded), Some("2026-12-02T11:55:00Z"))
        };
        assert_eq!(next(just_suspended, false).next, Next::Observe);
        // A run going on is not stopped by it.
        assert_eq!(
            next(suspended(Some(DrillPhase::Running), None), true).next,
            Next::WatchTask
        );
        // Unsuspended: the latest time due runs.
        let resumed = Row {
            suspend: false,
            ..suspended(Some(DrillPhase::Succeeded), Some("2026-12-02T11:55:00Z"))
        };
        assert_eq!(
            next(resumed, false).next,
            Next::Start {
                scheduled_at: Some(ts("2026-12-02T12:00:00Z"))
            }
        );
    }

    #[test]
    fn a_schedule_that_does_not_parse_is_a_permanent_error() {
        let row = Row {
            phase: Some(DrillPhase::Succeeded),
            schedule: Some("every day"),
            ..Default::default()
        };
        let e = decide(&drill(&row), false, ts(NOW)).unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(e.reason(), "InvalidSchedule");
    }

    fn scheduled_drill(schedule: Option<&str>, last: Option<&str>) -> PartitionDrill {
        let mut d: PartitionDrill = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "PartitionDrill",
            "metadata": {"name": "d", "creationTimestamp": "2026-01-01T00:00:30Z"},
            "spec": {"regionRef": {"name": "r"}, "schedule": schedule},
        }))
        .unwrap();
        d.status = last.map(|t| PartitionDrillStatus {
            last_schedule_time: Some(Time(t.parse().unwrap())),
            phase: DrillPhase::Succeeded,
            ..Default::default()
        });
        d
    }

    #[test]
    fn the_next_run_follows_the_last_scheduled_one() {
        assert_eq!(
            next_run(&scheduled_drill(None, None), ts(NOW)).unwrap(),
            None
        );
        let next = next_run(&scheduled_drill(Some("*/15 * * * *"), None), ts(NOW))
            .unwrap()
            .unwrap();
        assert_eq!(next.to_string(), "2026-01-01T00:15:00Z");
        let next = next_run(
            &scheduled_drill(Some("0 3 * * *"), Some("2026-01-01T03:00:00Z")),
            ts(NOW),
        )
        .unwrap()
        .unwrap();
        assert_eq!(next.to_string(), "2026-01-02T03:00:00Z");
    }

    #[test]
    fn missed_runs_collapse_into_the_latest_one() {
        let d = scheduled_drill(Some("0 * * * *"), Some("2026-01-01T03:00:00Z"));
        let now: jiff::Timestamp = "2026-01-03T07:30:00Z".parse().unwrap();
        assert!(next_run(&d, now).unwrap().unwrap() < now);
        assert_eq!(
            latest_due(&d, now).unwrap().to_string(),
            "2026-01-03T07:00:00Z"
        );
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused_before_the_first_run() {
        for never in ["0 0 31 2 *", "0 0 31 4-4 *", "99 * * * *"] {
            let e = decide(&scheduled_drill(Some(never), None), false, ts(NOW)).unwrap_err();
            assert!(e.is_permanent(), "{never}");
            assert_eq!(e.reason(), "InvalidSchedule", "{never}");
        }
        let fine = decide(&scheduled_drill(Some("0 0 29 2 *"), None), false, ts(NOW)).unwrap();
        assert!(matches!(fine.next, Next::Start { .. }), "{:?}", fine.next);
    }

    #[test]
    fn a_bad_schedule_waits_for_a_fix() {
        let e = next_run(&scheduled_drill(Some("99 * * * *"), None), ts(NOW)).unwrap_err();
        assert!(e.is_permanent());
        assert_eq!(e.reason(), "InvalidSchedule");
    }
}
