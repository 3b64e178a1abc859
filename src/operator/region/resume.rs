//! Resuming a region's stalled mirrors outside drills (issue 24). After a
//! real outage of a leafnode link, a mirror (or an aggregate's source)
//! whose consumer-create request went into the cut stays silent some 40 s
//! after the link is back (docs/architecture.md, "Prompt resume after a
//! heal"). On each look, a stream silent past
//! `--resume-stalled-mirrors-after-seconds` whose source's JetStream API
//! answers through its zone gets a leader stepdown, at most once per that
//! long, unless a drill holds the region (the drill resumes its own and
//! counts that as evidence). The decision is `nats::resume::decide`, shared
//! with the drill engine.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::streams::Connected;
use crate::api::{RegionMirror, RegionMirrorSpec, ZoneStatus};
use crate::nats::resume::{self, Decision, Facts, Policy};
use crate::operator::context::Context;
use crate::plan;

/// Event reasons.
pub const RESUMED: &str = "MirrorResumed";
pub const NOT_RESUMED: &str = "MirrorNotResumed";

/// `(region key, zone, stream)`.
type StreamKey = (String, String, String);

/// When each stream was last nudged (or found unresumable). Kept in the
/// controller, not the status: it only paces this process's nudges.
#[derive(Default)]
pub struct Nudges(Mutex<HashMap<StreamKey, Instant>>);

impl Nudges {
    fn since(&self, key: &StreamKey) -> Option<Duration> {
        let map = self.0.lock().expect("nudges lock");
        map.get(key).map(Instant::elapsed)
    }

    fn record(&self, key: StreamKey) {
        self.0
            .lock()
            .expect("nudges lock")
            .insert(key, Instant::now());
    }

    /// A deleted region's streams.
    pub fn forget(&self, region: &str) {
        self.0
            .lock()
            .expect("nudges lock")
            .retain(|(r, _, _), _| r != region);
    }
}

/// One source a stream has not heard from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilentSource {
    pub zone: String,
    /// Its JetStream API as the stream's `external.api` names it.
    pub api: String,
    pub silent: Duration,
}

/// A stream with a source across a leafnode silent past the threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stalled {
    pub zone: String,
    pub stream: String,
    pub sources: Vec<SilentSource>,
    pub leader: Option<String>,
    pub replicas: usize,
}

/// The streams of the region whose source across a leafnode (a mirror's
/// source zone; each other zone an aggregate sources) has been silent at
/// least `after`, from the observed zones. Pure. A zone's own local
/// stream, sourced without a leafnode, is not a leafnode stall.
pub fn stalled(spec: &RegionMirrorSpec, zones: &[ZoneStatus], after: Duration) -> Vec<Stalled> {
    let silent = |millis: Option<i64>| {
        millis
            .map(|m| Duration::from_millis(m.max(0) as u64))
            .filter(|d| *d >= after)
    };
    let mut out = Vec::new();
    for z in zones {
        let Some(zone) = spec.zone(&z.name) else {
            continue;
        };
        let (sources, replicas) = if spec.is_sources() {
            let sources = z
                .sources
                .iter()
                .filter(|s| s.zone != z.name)
                .filter_map(|s| {
                    let from = spec.zone(&s.zone)?;
                    Some(SilentSource {
                        zone: s.zone.clone(),
                        api: plan::api_prefix(from.domain()),
                        silent: silent(s.active_millis)?,
                    })
                })
                .collect::<Vec<_>>();
            let replicas = plan::aggregate_stream_config(spec, zone).num_replicas;
            (sources, replicas)
        } else {
            let Some(source) = spec.source_zone().filter(|_| z.role == "mirror") else {
                continue;
            };
            let sources = silent(z.active_millis)
                .map(|d| SilentSource {
                    zone: source.name.clone(),
                    api: plan::api_prefix(source.domain()),
                    silent: d,
                })
                .into_iter()
                .collect::<Vec<_>>();
            let replicas = plan::mirror_stream_config(spec, source.domain(), zone).num_replicas;
            (sources, replicas)
        };
        if !sources.is_empty() {
            out.push(Stalled {
                zone: z.name.clone(),
                stream: spec.stream.name.clone(),
                sources,
                leader: z.stream_leader.clone(),
                replicas,
            });
        }
    }
    out
}

/// Whether any stream of the region has not heard from a source for
/// [`resume::SILENT`] (a heartbeat comes every second): a link is down or
/// a stream stalled, so the region is looked at again soon, and a stall is
/// seen within seconds of its link coming back instead of a refresh later.
pub fn any_silent(zones: &[ZoneStatus]) -> bool {
    let silent = |m: &Option<i64>| m.is_some_and(|m| m >= resume::SILENT.as_millis() as i64);
    zones.iter().any(|z| {
        silent(&z.active_millis)
            || z.sources
                .iter()
                .any(|s| s.zone != z.name && silent(&s.active_millis))
    })
}

/// Nudges the region's stalled streams (see the module doc). What it did
/// is an Event on the region, a log line and, for a stepdown,
/// `natsregion_mirror_resumes_total`.
pub async fn resume_stalled(
    ctx: &Context,
    region: &RegionMirror,
    connected: &[Connected],
    zones: &[ZoneStatus],
    holder: Option<&str>,
    nudges: &Nudges,
) {
    let Some(after) = ctx.settings.resume_stalled_mirrors_after else {
        return;
    };
    let stalled = stalled(&region.spec, zones, after);
    if stalled.is_empty() {
        return;
    }
    let (ns, name) = (region.namespace().unwrap_or_default(), region.name_any());
    let region_key = format!("{ns}/{name}");
    let policy = Policy {
        silent_after: after,
        link_settled_after: Duration::ZERO,
        interval: after,
        never_heard_is_silent: false,
    };
    for s in stalled {
        let Some(c) = connected.iter().find(|c| c.zone.name == s.zone) else {
            continue;
        };
        let mut linked = Vec::new();
        for source in &s.sources {
            if resume::source_api_answers(&c.client.client, &source.api).await {
                linked.push(source);
            }
        }
        // One connection per zone: the server it reached stands for the
        // zone's links, and any other server may take over.
        let servers: Vec<String> = if linked.is_empty() {
            Vec::new()
        } else {
            vec![c.client.server_name.clone()]
        };
        let key = (region_key.clone(), s.zone.clone(), s.stream.clone());
        let facts = Facts {
            active: s.sources.iter().map(|x| x.silent).max(),
            linked_for: (!linked.is_empty()).then_some(Duration::ZERO),
            linked_servers: &servers,
            per_server: false,
            leader: s.leader.as_deref(),
            replicas: s.replicas,
            since_last: nudges.since(&key),
            held_by: holder,
        };
        let from = linked
            .iter()
            .map(|x| format!("zone {} for {:.0}s", x.zone, x.silent.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ");
        let what = format!(
            "stream {} in zone {} has not heard from {from} although the leafnode link answers",
            s.stream, s.zone
        );
        match resume::decide(&policy, &facts) {
            Decision::Leave(why) => {
                tracing::debug!(region = %region_key, zone = %s.zone, why = ?why, "stalled stream left alone");
            }
            Decision::Cannot(why) => {
                nudges.record(key);
                let note = format!(
                    "{what}; not resumed: {why} (the server retries by itself some 40 s after the link came back)"
                );
                tracing::warn!(region = %region_key, zone = %s.zone, "{note}");
                super::warn(ctx, region, NOT_RESUMED, &note).await;
            }
            Decision::Nudge { preferred } => {
                nudges.record(key);
                let outcome = resume::stepdown(&c.client.js, &s.stream, preferred.as_deref()).await;
                match outcome {
                    Ok(()) => {
                        ctx.metrics.mirror_resumed(&ns, &name, &s.zone);
                        let note = format!(
                            "{what}: stepped its leader{} down, so it asks for a consumer now instead of some 40 s after the link came back",
                            s.leader
                                .as_deref()
                                .map(|l| format!(" ({l})"))
                                .unwrap_or_default()
                        );
                        tracing::info!(region = %region_key, zone = %s.zone, "{note}");
                        super::publish(ctx, region, EventType::Normal, RESUMED, &note).await;
                    }
                    Err(e) => {
                        let note = format!("{what}; not resumed: {e}");
                        tracing::warn!(region = %region_key, zone = %s.zone, "{note}");
                        super::warn(ctx, region, NOT_RESUMED, &note).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SourceStatus;
    use serde_json::json;

    /// Stream `EVENTS` on `events.>` over `zones` (the lib's tests cannot
    /// reach `testenv::fixtures`, which only the testkit feature builds).
    fn events_spec(zones: serde_json::Value) -> serde_json::Value {
        json!({
            "stream": {"name": "EVENTS", "subjects": ["events.>"], "replicas": 1},
            "zones": zones,
        })
    }

    fn region_spec(spec: serde_json::Value) -> crate::api::RegionMirrorSpec {
        serde_json::from_value(spec).expect("test region spec deserializes")
    }

    fn zone(name: &str, role: &str, active: Option<i64>) -> ZoneStatus {
        ZoneStatus {
            name: name.into(),
            role: role.into(),
            active_millis: active,
            stream_leader: Some(format!("{name}-0")),
            ..Default::default()
        }
    }

    #[test]
    fn a_mirror_silent_past_the_threshold_is_stalled_with_its_source_api() {
        let spec = region_spec(events_spec(json!([
            {"name": "a", "role": "source", "servers": 1},
            {"name": "b", "role": "mirror", "servers": 3},
            {"name": "c", "role": "mirror", "servers": 1},
        ])));
        let zones = [
            zone("a", "source", None),
            zone("b", "mirror", Some(12_000)),
            zone("c", "mirror", Some(9_000)),
        ];
        let found = stalled(&spec, &zones, Duration::from_secs(10));
        assert_eq!(found.len(), 1, "{found:?}");
        let b = &found[0];
        assert_eq!((b.zone.as_str(), b.leader.as_deref()), ("b", Some("b-0")));
        assert_eq!(
            b.sources,
            vec![SilentSource {
                zone: "a".into(),
                api: "$JS.a.API".into(),
                silent: Duration::from_secs(12)
            }]
        );
        assert!(any_silent(&zones));
        assert!(!any_silent(&[zone("b", "mirror", Some(1_000))]));
    }

    #[test]
    fn an_aggregate_is_stalled_by_another_zones_source_not_its_own() {
        let mut spec = events_spec(json!([
            {"name": "a", "role": "source", "servers": 3},
            {"name": "b", "role": "mirror", "servers": 3},
        ]));
        spec["topology"] = json!("sources");
        spec["stream"]["subjects"] = json!(["events.{zone}.>"]);
        let spec = region_spec(spec);
        let source = |zone: &str, active| SourceStatus {
            zone: zone.into(),
            active_millis: Some(active),
            ..Default::default()
        };
        let mut b = zone("b", "mirror", None);
        b.sources = vec![source("a", 30_000), source("b", 40_000)];
        let found = stalled(&spec, &[b], Duration::from_secs(10));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].sources.len(), 1, "{found:?}");
        assert_eq!(found[0].sources[0].zone, "a");
        assert!(found[0].replicas >= 1);
    }
}
