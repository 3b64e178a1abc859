//! The RegionMirror status, computed (purely) from what was observed. The
//! reconciler writes it only when it differs from the stored one, so every
//! field here must be stable while the region is steady.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::streams::StreamsState;
use crate::api::conditions::{self, Desired};
use crate::api::{RegionMirror, RegionMirrorStatus, ZoneStatus};
use crate::nats::state::{in_sync, source_in_sync};
use crate::operator::error::{self, Error};

pub const READY: &str = "Ready";
pub const ZONES_READY: &str = "ZonesReady";
pub const STREAMS_READY: &str = "StreamsReady";
pub const MIRRORS_IN_SYNC: &str = "MirrorsInSync";
/// kstatus' "in progress": True from the first status write until every zone
/// runs and the streams exist, so GitOps tools (Flux `wait`, Argo CD) do not
/// call a region Current before it is. Lag does not count: a mirror behind
/// is reported by MirrorsInSync and Ready, not by Reconciling.
pub const RECONCILING: &str = "Reconciling";
/// kstatus' "failed": True when the region cannot get further until someone
/// changes something (see [`crate::operator::error::stalls`]).
pub const STALLED: &str = "Stalled";
/// Ready's reason while a drill holds the region and only mirror lag keeps
/// Ready from True: the cut is the drill's, not the region's.
pub const DRILL_IN_PROGRESS: &str = "DrillInProgress";

/// Where the region stands for kstatus readers.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Every zone runs and the streams exist.
    Done,
    /// The operator is still getting there (or retrying what may clear).
    Working {
        reason: &'static str,
        message: String,
    },
    /// Waiting alone does not help: someone must change something.
    Stalled {
        reason: &'static str,
        message: String,
    },
}

/// The region's progress from its zones' readiness and its streams' state.
pub fn progress(zones_ok: bool, streams: &StreamsState) -> Progress {
    match streams {
        StreamsState::NeedsRecreate(m) => Progress::Stalled {
            reason: "StreamNeedsRecreate",
            message: m.clone(),
        },
        StreamsState::Failed { reason, message } if error::stalls(reason) => Progress::Stalled {
            reason,
            message: message.clone(),
        },
        _ if !zones_ok => Progress::Working {
            reason: "ZonesStarting",
            message: "not every zone has all its servers ready: see ZonesReady".into(),
        },
        StreamsState::Ready => Progress::Done,
        StreamsState::Waiting(m) => Progress::Working {
            reason: "StreamsProvisioning",
            message: m.clone(),
        },
        StreamsState::Failed { reason, message } => Progress::Working {
            reason,
            message: format!("retrying: {message}"),
        },
    }
}

/// Writes `progress` as the Reconciling and Stalled conditions.
fn set_progress(
    conds: &mut Vec<Condition>,
    progress: Progress,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let (reconciling, stalled) = match progress {
        Progress::Done => (
            (
                false,
                "Reconciled",
                "every zone runs and the streams exist".to_string(),
            ),
            (false, "Reconciled", String::new()),
        ),
        Progress::Working { reason, message } => {
            ((true, reason, message), (false, reason, String::new()))
        }
        Progress::Stalled { reason, message } => {
            ((false, reason, String::new()), (true, reason, message))
        }
    };
    for (type_, (status, reason, message)) in [(RECONCILING, reconciling), (STALLED, stalled)] {
        conditions::upsert(
            conds,
            Desired {
                type_,
                status,
                reason,
                message,
            },
            generation,
            now,
        );
    }
}

/// Below this, `activeMillis` is heartbeat noise and is not reported; above, it
/// is reported in 10 s steps. Either way a steady region writes no status.
const ACTIVE_REPORT_MILLIS: i64 = 30_000;

/// Makes a zone's observation stable between two reads of a steady zone.
pub fn normalize(mut zone: ZoneStatus) -> ZoneStatus {
    zone.active_millis = reported_active(zone.active_millis);
    for source in &mut zone.sources {
        source.active_millis = reported_active(source.active_millis);
    }
    zone
}

fn reported_active(millis: Option<i64>) -> Option<i64> {
    millis
        .filter(|a| *a >= ACTIVE_REPORT_MILLIS)
        .map(|a| a - a % 10_000)
}

/// Why a zone is not in sync, in words for the MirrorsInSync condition.
fn behind(zone: &ZoneStatus, aggregate: Option<&str>) -> Vec<String> {
    let Some(aggregate) = aggregate else {
        return vec![match (&zone.lag, &zone.error) {
            (_, Some(e)) => format!("zone {}: {e}", zone.name),
            (Some(lag), None) => format!("zone {}: {lag} messages behind", zone.name),
            (None, None) => format!("zone {}: lag unknown", zone.name),
        }];
    };
    let mut why: Vec<String> = zone
        .error
        .iter()
        .map(|e| format!("aggregate {aggregate} in zone {}: {e}", zone.name))
        .collect();
    why.extend(zone.sources.iter().filter(|s| !source_in_sync(s)).map(|s| {
        match (&s.lag, &s.error) {
            (_, Some(e)) => format!(
                "aggregate {aggregate} in zone {} behind zone {}: {e}",
                zone.name, s.zone
            ),
            (Some(lag), None) => format!(
                "aggregate {aggregate} in zone {} is {lag} messages behind zone {}",
                zone.name, s.zone
            ),
            (None, None) => format!(
                "aggregate {aggregate} in zone {}: lag behind zone {} unknown",
                zone.name, s.zone
            ),
        }
    }));
    if why.is_empty() {
        why.push(format!(
            "aggregate {aggregate} in zone {}: lag unknown",
            zone.name
        ));
    }
    why
}

fn zone_servers_ready(z: &ZoneStatus) -> bool {
    z.ready_servers >= z.servers
}

/// The status for a region whose children were applied and whose zones were
/// observed (`zones` in spec order, one per zone).
pub fn observed(
    region: &RegionMirror,
    old: &RegionMirrorStatus,
    zones: Vec<ZoneStatus>,
    streams: &StreamsState,
    drill: Option<&str>,
    now: jiff::Timestamp,
) -> RegionMirrorStatus {
    let generation = region.metadata.generation;
    let mut status = old.clone();
    status.observed_generation = generation;
    status.source_zone = region.spec.source_zone().map(|z| z.name.clone());
    let zones: Vec<ZoneStatus> = zones.into_iter().map(normalize).collect();

    let ready: Vec<&ZoneStatus> = zones.iter().filter(|z| zone_servers_ready(z)).collect();
    let not_ready: Vec<String> = zones
        .iter()
        .filter(|z| !zone_servers_ready(z))
        .map(|z| match &z.error {
            Some(e) => format!(
                "zone {}: {}/{} servers ready ({e})",
                z.name, z.ready_servers, z.servers
            ),
            None => format!(
                "zone {}: {}/{} servers ready",
                z.name, z.ready_servers, z.servers
            ),
        })
        .collect();
    // With sources every zone holds an aggregate, and each is counted.
    let sources = region.spec.is_sources();
    let aggregate = sources.then_some(region.spec.stream.name.as_str());
    let mirrors: Vec<&ZoneStatus> = zones
        .iter()
        .filter(|z| sources || z.role == "mirror")
        .collect();
    let synced = mirrors.iter().filter(|z| in_sync(z)).count();
    status.zones_ready = Some(format!("{}/{}", ready.len(), zones.len()));
    status.mirrors_in_sync = Some(format!("{synced}/{}", mirrors.len()));
    status.max_lag = mirrors.iter().filter_map(|z| z.lag).max();

    let mut conds = std::mem::take(&mut status.conditions);
    let zones_ok = not_ready.is_empty();
    let set = |conds: &mut Vec<Condition>, type_, ok: bool, reason, message: String| {
        conditions::upsert(
            conds,
            Desired {
                type_,
                status: ok,
                reason,
                message,
            },
            generation,
            now,
        )
    };
    set(
        &mut conds,
        ZONES_READY,
        zones_ok,
        if zones_ok {
            "AllZonesReady"
        } else {
            "ZonesNotReady"
        },
        if zones_ok {
            format!("{0}/{0} zones have all their servers ready", zones.len())
        } else {
            not_ready.join("; ")
        },
    );
    let (streams_ok, streams_reason, streams_message) = match streams {
        StreamsState::Ready if sources => (
            true,
            "StreamsProvisioned",
            format!(
                "every zone has its local stream {0}-<zone> and the aggregate {0} sourcing every zone's",
                region.spec.stream.name
            ),
        ),
        StreamsState::Ready => (
            true,
            "StreamsProvisioned",
            format!(
                "stream {} exists in the source zone and is mirrored in every mirror zone",
                region.spec.stream.name
            ),
        ),
        StreamsState::Waiting(m) => (false, "WaitingForZones", m.clone()),
        StreamsState::NeedsRecreate(m) => (false, "StreamNeedsRecreate", m.clone()),
        StreamsState::Failed { reason, message } => (false, *reason, message.clone()),
    };
    set(
        &mut conds,
        STREAMS_READY,
        streams_ok,
        streams_reason,
        streams_message,
    );
    let lagging: Vec<String> = mirrors
        .iter()
        .filter(|z| !in_sync(z))
        .flat_map(|z| behind(z, aggregate))
        .collect();
    let sync_ok = lagging.is_empty();
    set(
        &mut conds,
        MIRRORS_IN_SYNC,
        sync_ok,
        if mirrors.is_empty() {
            "NoMirrors"
        } else if sync_ok {
            "InSync"
        } else {
            "MirrorsBehind"
        },
        if sync_ok && sources {
            format!(
                "{synced}/{} aggregates hold every message of every zone's local stream",
                mirrors.len()
            )
        } else if sync_ok {
            format!(
                "{synced}/{} mirrors hold every message of the source",
                mirrors.len()
            )
        } else {
            lagging.join("; ")
        },
    );
    let (ready_ok, ready_reason, ready_message) = if !zones_ok {
        (
            false,
            "ZonesNotReady",
            "not every zone is ready: see ZonesReady".to_string(),
        )
    } else if !streams_ok {
        (
            false,
            streams_reason,
            "streams are not provisioned: see StreamsReady".to_string(),
        )
    } else if let (false, Some(drill)) = (sync_ok, drill) {
        (
            true,
            DRILL_IN_PROGRESS,
            format!(
                "drill {drill} holds the region: its cut keeps {}s behind (see MirrorsInSync) until it heals",
                kind(sources)
            ),
        )
    } else if !sync_ok {
        (
            false,
            "MirrorsBehind",
            format!("not every {} is in sync: see MirrorsInSync", kind(sources)),
        )
    } else {
        (
            true,
            "RegionReady",
            format!("every zone is ready and every {} in sync", kind(sources)),
        )
    };
    set(&mut conds, READY, ready_ok, ready_reason, ready_message);
    set_progress(&mut conds, progress(zones_ok, streams), generation, now);
    status.conditions = conds;
    status.zones = zones;
    status
}

/// The region's state for `natsregion_region_state` (one of
/// `metrics::REGION_STATES`), from the Ready condition `observed` set.
pub fn state(status: &RegionMirrorStatus) -> &'static str {
    match status.conditions.iter().find(|c| c.type_ == READY) {
        Some(c) if c.status == conditions::TRUE => "ready",
        Some(c) if c.reason == "ZonesNotReady" => "zones_not_ready",
        Some(c) if c.reason == "MirrorsBehind" => "mirrors_behind",
        _ => "streams_not_ready",
    }
}

fn kind(sources: bool) -> &'static str {
    if sources { "aggregate" } else { "mirror" }
}

/// The status after a reconcile failed before the zones could be observed:
/// Ready is False with the error, Stalled True if waiting cannot clear it
/// (Reconciling True otherwise); the rest keeps its last observed value.
pub fn failed(
    region: &RegionMirror,
    old: &RegionMirrorStatus,
    error: &Error,
    now: jiff::Timestamp,
) -> RegionMirrorStatus {
    let mut status = old.clone();
    status.observed_generation = region.metadata.generation;
    conditions::upsert(
        &mut status.conditions,
        Desired {
            type_: READY,
            status: false,
            reason: error.reason(),
            message: error.to_string(),
        },
        region.metadata.generation,
        now,
    );
    let progress = if error.stalls() {
        Progress::Stalled {
            reason: error.reason(),
            message: error.to_string(),
        }
    } else {
        Progress::Working {
            reason: error.reason(),
            message: format!("retrying: {error}"),
        }
    };
    set_progress(
        &mut status.conditions,
        progress,
        region.metadata.generation,
        now,
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SourceStatus;
    use serde_json::json;

    fn region() -> RegionMirror {
        let mut r = RegionMirror::new(
            "east",
            serde_json::from_value(json!({
                "stream": {"name": "EVENTS", "subjects": ["e.>"]},
                "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
            }))
            .unwrap(),
        );
        r.metadata.generation = Some(3);
        r
    }

    fn zone(name: &str, role: &str, ready: i32, lag: Option<i64>) -> ZoneStatus {
        ZoneStatus {
            name: name.into(),
            role: role.into(),
            domain: name.into(),
            servers: 3,
            ready_servers: ready,
            last_seq: Some(10),
            lag,
            active_millis: Some(1_234),
            ..Default::default()
        }
    }

    fn cond<'a>(s: &'a RegionMirrorStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn steady_observations_give_the_same_status() {
        let r = region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let zones = || {
            vec![
                zone("a", "source", 3, None),
                zone("b", "mirror", 3, Some(0)),
            ]
        };
        let s0 = observed(
            &r,
            &Default::default(),
            zones(),
            &StreamsState::Ready,
            None,
            t0,
        );
        let mut again = zones();
        again[1].active_millis = Some(4_321);
        let s1 = observed(&r, &s0, again, &StreamsState::Ready, None, t1);
        assert_eq!(s0, s1);
        assert_eq!(cond(&s1, READY).status, "True");
        assert_eq!(state(&s1), "ready");
        assert_eq!(cond(&s1, READY).observed_generation, Some(3));
        assert_eq!(s1.zones_ready.as_deref(), Some("2/2"));
        assert_eq!(s1.mirrors_in_sync.as_deref(), Some("1/1"));
        assert_eq!(s1.max_lag, Some(0));
        assert_eq!(s1.zones[1].active_millis, None);
    }

    #[test]
    fn conditions_follow_readiness_and_lag() {
        let r = region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let s0 = observed(
            &r,
            &Default::default(),
            vec![zone("a", "source", 3, None), zone("b", "mirror", 1, None)],
            &StreamsState::Waiting("waiting for zone(s) b".into()),
            None,
            t0,
        );
        assert_eq!(cond(&s0, ZONES_READY).status, "False");
        assert!(
            cond(&s0, ZONES_READY)
                .message
                .contains("zone b: 1/3 servers ready")
        );
        assert_eq!(cond(&s0, STREAMS_READY).reason, "WaitingForZones");
        assert_eq!(cond(&s0, READY).reason, "ZonesNotReady");
        assert_eq!(state(&s0), "zones_not_ready");
        let s1 = observed(
            &r,
            &s0,
            vec![
                zone("a", "source", 3, None),
                zone("b", "mirror", 3, Some(7)),
            ],
            &StreamsState::Ready,
            None,
            t1,
        );
        assert_eq!(cond(&s1, ZONES_READY).status, "True");
        assert_eq!(cond(&s1, ZONES_READY).last_transition_time.0, t1);
        assert_eq!(cond(&s1, MIRRORS_IN_SYNC).status, "False");
        assert!(
            cond(&s1, MIRRORS_IN_SYNC)
                .message
                .contains("7 messages behind")
        );
        // MirrorsInSync was False before too: its transition time stays.
        assert_eq!(cond(&s1, MIRRORS_IN_SYNC).last_transition_time.0, t0);
        assert_eq!(s1.max_lag, Some(7));
        assert_eq!(cond(&s1, READY).reason, "MirrorsBehind");
        assert_eq!(state(&s1), "mirrors_behind");
    }

    fn sources_region() -> RegionMirror {
        let mut r = RegionMirror::new(
            "east",
            serde_json::from_value(json!({
                "topology": "sources",
                "stream": {"name": "EV", "subjects": ["ev.{zone}.>"]},
                "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
            }))
            .unwrap(),
        );
        r.metadata.generation = Some(1);
        r
    }

    fn aggregate(name: &str, role: &str, lags: [(&str, Option<i64>); 2]) -> ZoneStatus {
        let sources: Vec<SourceStatus> = lags
            .iter()
            .map(|(zone, lag)| SourceStatus {
                zone: (*zone).into(),
                lag: *lag,
                active_millis: Some(900),
                error: None,
            })
            .collect();
        ZoneStatus {
            lag: sources.iter().filter_map(|s| s.lag).max(),
            sources,
            ..zone(name, role, 3, None)
        }
    }

    #[test]
    fn with_sources_every_zones_aggregate_counts_and_a_lagging_source_is_named() {
        let r = sources_region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        let steady = || {
            vec![
                aggregate("a", "source", [("a", Some(0)), ("b", Some(0))]),
                aggregate("b", "mirror", [("a", Some(0)), ("b", Some(0))]),
            ]
        };
        let s0 = observed(
            &r,
            &Default::default(),
            steady(),
            &StreamsState::Ready,
            None,
            t0,
        );
        assert_eq!(
            s0.mirrors_in_sync.as_deref(),
            Some("2/2"),
            "the hub's aggregate counts too"
        );
        assert_eq!(s0.max_lag, Some(0));
        assert_eq!(cond(&s0, READY).status, "True");
        assert!(
            cond(&s0, STREAMS_READY)
                .message
                .contains("local stream EV-<zone>")
        );
        assert!(
            cond(&s0, MIRRORS_IN_SYNC)
                .message
                .contains("2/2 aggregates")
        );
        assert_eq!(
            s0.zones[0].sources[1].active_millis, None,
            "heartbeat noise"
        );
        // Steady: other heartbeat ages, the same status.
        let mut again = steady();
        again[0].sources[0].active_millis = Some(4_000);
        assert_eq!(observed(&r, &s0, again, &StreamsState::Ready, None, t1), s0);

        let mut behind = steady();
        behind[1] = aggregate("b", "mirror", [("a", Some(5)), ("b", Some(0))]);
        behind[0].sources[1].error = Some("source EV-b: stream not found".into());
        behind[0].sources[1].active_millis = Some(45_678);
        let s1 = observed(&r, &s0, behind, &StreamsState::Ready, None, t1);
        assert_eq!(s1.mirrors_in_sync.as_deref(), Some("0/2"));
        assert_eq!(s1.max_lag, Some(5));
        assert_eq!(s1.zones[0].sources[1].active_millis, Some(40_000));
        let message = &cond(&s1, MIRRORS_IN_SYNC).message;
        assert!(
            message.contains("aggregate EV in zone b is 5 messages behind zone a"),
            "{message}"
        );
        assert!(
            message.contains("aggregate EV in zone a behind zone b: source EV-b: stream not found"),
            "{message}"
        );
        assert_eq!(cond(&s1, READY).reason, "MirrorsBehind");
        assert!(cond(&s1, READY).message.contains("aggregate"));
    }

    #[test]
    fn reconciling_until_zones_run_and_streams_exist_stalled_when_waiting_cannot_help() {
        let waiting = StreamsState::Waiting("waiting for zone(s) b".into());
        let failed = |reason| StreamsState::Failed {
            reason,
            message: "m".into(),
        };
        let cases = [
            (false, waiting.clone(), Some("ZonesStarting"), None),
            (true, waiting, Some("StreamsProvisioning"), None),
            (
                false,
                failed("ZoneUnreachable"),
                Some("ZonesStarting"),
                None,
            ),
            (
                true,
                failed("ZoneUnreachable"),
                Some("ZoneUnreachable"),
                None,
            ),
            (
                true,
                failed("SubjectsOverlap"),
                None,
                Some("SubjectsOverlap"),
            ),
            // A stream only a person can recreate stalls, zones ready or not.
            (
                false,
                StreamsState::NeedsRecreate("delete EV".into()),
                None,
                Some("StreamNeedsRecreate"),
            ),
            (true, StreamsState::Ready, None, None),
        ];
        for (zones_ok, streams, working, stalled) in cases {
            let p = progress(zones_ok, &streams);
            let what = format!("{zones_ok} {streams:?}: {p:?}");
            match (p, working, stalled) {
                (Progress::Working { reason, .. }, Some(w), None) => {
                    assert_eq!(reason, w, "{what}")
                }
                (Progress::Stalled { reason, .. }, None, Some(s)) => {
                    assert_eq!(reason, s, "{what}")
                }
                (Progress::Done, None, None) => {}
                _ => panic!("{what}"),
            }
        }
    }

    #[test]
    fn the_first_status_is_reconciling_and_a_running_region_is_not() {
        let r = region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let starting = observed(
            &r,
            &Default::default(),
            vec![zone("a", "source", 0, None), zone("b", "mirror", 0, None)],
            &StreamsState::Waiting("waiting for zone(s) a, b".into()),
            None,
            t0,
        );
        assert_eq!(cond(&starting, RECONCILING).status, "True");
        assert_eq!(cond(&starting, RECONCILING).reason, "ZonesStarting");
        assert_eq!(cond(&starting, RECONCILING).observed_generation, Some(3));
        assert_eq!(cond(&starting, STALLED).status, "False");
        let running = observed(
            &r,
            &starting,
            vec![
                zone("a", "source", 3, None),
                zone("b", "mirror", 3, Some(0)),
            ],
            &StreamsState::Ready,
            None,
            t0,
        );
        assert_eq!(cond(&running, RECONCILING).status, "False");
        assert_eq!(cond(&running, STALLED).status, "False");
        assert_eq!(cond(&running, READY).status, "True");
    }

    #[test]
    fn a_drill_cut_keeps_ready_true_but_not_a_zone_down() {
        let r = region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let cut = || {
            vec![
                zone("a", "source", 3, None),
                zone("b", "mirror", 3, Some(40)),
            ]
        };
        let s = observed(
            &r,
            &Default::default(),
            cut(),
            &StreamsState::Ready,
            Some("d1"),
            t0,
        );
        assert_eq!(cond(&s, READY).status, "True");
        assert_eq!(cond(&s, READY).reason, DRILL_IN_PROGRESS);
        assert!(cond(&s, READY).message.contains("drill d1"));
        // The lag itself is still told.
        assert_eq!(cond(&s, MIRRORS_IN_SYNC).status, "False");
        assert_eq!(cond(&s, RECONCILING).status, "False");
        // Without the drill the same lag is MirrorsBehind.
        let s = observed(
            &r,
            &Default::default(),
            cut(),
            &StreamsState::Ready,
            None,
            t0,
        );
        assert_eq!(cond(&s, READY).reason, "MirrorsBehind");
        // A zone down during a drill is not the drill's: Ready goes False.
        let mut down = cut();
        down[1].ready_servers = 1;
        let s = observed(
            &r,
            &Default::default(),
            down,
            &StreamsState::Ready,
            Some("d1"),
            t0,
        );
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(cond(&s, READY).reason, "ZonesNotReady");
    }

    #[test]
    fn a_failed_reconcile_stalls_only_when_waiting_cannot_clear_it() {
        let r = region();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let conflict = Error::NameConflict {
            kind: "Service".into(),
            name: "east-a".into(),
            holder: "belongs to someone else".into(),
            hint: "rename the region".into(),
        };
        let s = failed(&r, &Default::default(), &conflict, t0);
        assert_eq!(cond(&s, STALLED).status, "True");
        assert_eq!(cond(&s, STALLED).reason, "NameConflict");
        assert_eq!(cond(&s, RECONCILING).status, "False");
        let missing = Error::CredentialsMissing {
            namespace: "ns".into(),
            secret: "s".into(),
            field: "spec.credentials.secretName",
            hint: "",
        };
        let s = failed(&r, &s, &missing, t0);
        assert_eq!(cond(&s, STALLED).status, "False");
        assert_eq!(cond(&s, RECONCILING).status, "True");
        assert_eq!(cond(&s, RECONCILING).reason, "CredentialsMissing");
        assert_eq!(cond(&s, STALLED).observed_generation, Some(3));
    }
}
