//! What the region looks like, read from every zone.
//!
//! A mirror's lag is computed from both sides (source last sequence minus
//! mirror last sequence): the server's own mirror `lag` stays 0 while the
//! mirror is cut off (docs/architecture.md fact 3), so it is never used. `active` and the
//! mirror's `error` are reported next to it, because a lag of 0 says nothing
//! about whether the mirror can still hear the source. With `topology:
//! sources` the same holds per source of every zone's aggregate
//! (`read_sources_region`).

use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use futures::future::join_all;
use serde::Deserialize;

use super::api;
use super::connect::ZoneClient;
use crate::api::{
    RegionMirrorSpec, RegionMirrorStatus, SourceStatus, ZoneRole, ZoneSpec, ZoneStatus,
};
use crate::plan::{local_stream_name, zone_subjects};

/// How to reach one zone for reading its state.
#[derive(Clone, Debug)]
pub struct ZoneProbe {
    pub name: String,
    pub role: ZoneRole,
    pub domain: String,
    /// Servers the zone should have.
    pub servers: i32,
    pub js: Context,
    /// Monitoring base URLs (`http://host:8222`) of the zone's servers. With
    /// them, ready servers come from `/healthz` and the meta leader from
    /// `/jsz`; the application account cannot ask `$SYS` for either. Without
    /// them, ready servers are the stream's peers that are not offline.
    pub monitor_urls: Vec<String>,
}

impl ZoneProbe {
    pub fn new(spec: &ZoneSpec, client: &ZoneClient, monitor_urls: Vec<String>) -> Self {
        Self {
            name: spec.name.clone(),
            role: spec.role,
            domain: spec.domain().to_string(),
            servers: spec.servers,
            js: client.js.clone(),
            monitor_urls,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionSummary {
    pub source_zone: Option<String>,
    pub source_last_seq: Option<i64>,
    pub zones: usize,
    /// Zones with all their servers ready and the stream present.
    pub zones_ready: usize,
    /// Mirror zones; with `topology: sources` every zone (each holds an aggregate).
    pub mirrors: usize,
    /// Mirrors whose last sequence equals the source's, with no mirror error
    /// (aggregates: every source at lag 0 without error).
    pub mirrors_in_sync: usize,
    /// Largest lag over the mirrors (sources) whose lag could be computed.
    pub max_lag: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RegionState {
    pub stream: String,
    /// In the order the zones were given.
    pub zones: Vec<ZoneStatus>,
    pub summary: RegionSummary,
}

impl RegionState {
    pub fn zone(&self, name: &str) -> Option<&ZoneStatus> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// Writes the observed state into a RegionMirror status (conditions and
    /// observedGeneration are the controller's business).
    pub fn apply_to(&self, status: &mut RegionMirrorStatus) {
        let s = &self.summary;
        status.source_zone = s.source_zone.clone();
        status.zones_ready = Some(format!("{}/{}", s.zones_ready, s.zones));
        status.mirrors_in_sync = Some(format!("{}/{}", s.mirrors_in_sync, s.mirrors));
        status.max_lag = s.max_lag;
        status.zones = self.zones.clone();
    }
}

/// A mirror that has every message the source has, and no sourcing error; an
/// aggregate (topology `sources`) that has every message of every zone's
/// local stream, with no error on any source.
pub fn in_sync(zone: &ZoneStatus) -> bool {
    zone.error.is_none()
        && if zone.sources.is_empty() {
            zone.lag == Some(0)
        } else {
            zone.sources.iter().all(source_in_sync)
        }
}

pub fn source_in_sync(source: &SourceStatus) -> bool {
    source.lag == Some(0) && source.error.is_none()
}

pub fn zone_ready(zone: &ZoneStatus) -> bool {
    zone.ready_servers >= zone.servers && zone.last_seq.is_some()
}

/// Reads every zone. Never fails: what could not be read shows up as `None`
/// fields and an `error` on the zone.
pub async fn read_region(stream: &str, zones: &[ZoneProbe]) -> RegionState {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok();
    let http = http.as_ref();
    // Mirrors first, then the source: a publish racing this read then shows as
    // lag, and a mirror ahead of its source means the source really went back
    // (for example it was recreated).
    let mirrors = join_all(
        zones
            .iter()
            .filter(|z| z.role == ZoneRole::Mirror)
            .map(|z| observe_mirror(z, stream, http)),
    )
    .await;
    let sources = join_all(
        zones
            .iter()
            .filter(|z| z.role == ZoneRole::Source)
            .map(|z| async { observe(z, stream, http).await.0 }),
    )
    .await;
    let source_last_seq = sources.first().and_then(|s| s.last_seq);

    let mut by_name: Vec<ZoneStatus> = mirrors.into_iter().chain(sources).collect();
    for zone in by_name
        .iter_mut()
        .filter(|z| z.role == role_name(ZoneRole::Mirror))
    {
        zone.lag = match (source_last_seq, zone.last_seq) {
            (Some(source), Some(mirror)) => Some(source - mirror),
            _ => None,
        };
    }
    let statuses: Vec<ZoneStatus> = zones
        .iter()
        .filter_map(|z| {
            by_name
                .iter()
                .position(|s| s.name == z.name)
                .map(|i| by_name.swap_remove(i))
        })
        .collect();

    let mirrors: Vec<&ZoneStatus> = statuses
        .iter()
        .filter(|z| z.role == role_name(ZoneRole::Mirror))
        .collect();
    let summary = RegionSummary {
        source_zone: zones
            .iter()
            .find(|z| z.role == ZoneRole::Source)
            .map(|z| z.name.clone()),
        source_last_seq,
        zones: statuses.len(),
        zones_ready: statuses.iter().filter(|z| zone_ready(z)).count(),
        mirrors: mirrors.len(),
        mirrors_in_sync: mirrors.iter().filter(|z| in_sync(z)).count(),
        max_lag: mirrors.iter().filter_map(|z| z.lag).max(),
    };
    RegionState {
        stream: stream.to_string(),
        zones: statuses,
        summary,
    }
}

/// The streams of the sources topology that `read_sources_region` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcesLayout {
    /// Every zone's aggregate has this name.
    pub aggregate: String,
    /// One per zone of the spec, in spec order.
    pub locals: Vec<LocalStream>,
}

/// One zone's local stream, and the subjects under which the aggregates hold
/// its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalStream {
    pub zone: String,
    pub stream: String,
    pub subjects: Vec<String>,
}

impl SourcesLayout {
    pub fn of(spec: &RegionMirrorSpec) -> Self {
        Self {
            aggregate: spec.stream.name.clone(),
            locals: spec
                .zones
                .iter()
                .map(|z| LocalStream {
                    zone: z.name.clone(),
                    stream: local_stream_name(spec, &z.name),
                    subjects: zone_subjects(spec, z),
                })
                .collect(),
        }
    }
}

/// One source of an aggregate, as the aggregate's stream info shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceView {
    pub name: String,
    /// Since the aggregate last heard from the source; `None` if it never has.
    pub active: Option<Duration>,
    /// The error the server reports for the source (async-nats drops it).
    pub error: Option<String>,
}

fn source_views(found: &api::StreamInfo) -> Vec<SourceView> {
    let errors = found.raw.get("sources").and_then(|s| s.as_array());
    let error_of = |name: &str| {
        errors?
            .iter()
            .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))?
            .get("error")
            .and_then(|e| serde_json::from_value::<api::ApiError>(e.clone()).ok())
            .map(|e| e.description)
    };
    found
        .info
        .sources
        .iter()
        .map(|s| SourceView {
            name: s.name.clone(),
            active: s.active,
            error: error_of(&s.name),
        })
        .collect()
}

/// What the aggregate of one zone holds of `local`: `view` is that source in
/// the aggregate's info (`None` when the aggregate does not source it),
/// `sourced` the newest of the local stream's sequences it holds, and
/// `origin_last` the local stream's last sequence, read after `sourced`.
pub fn source_status(
    local: &LocalStream,
    view: Option<&SourceView>,
    sourced: Option<&Result<u64, StateError>>,
    origin_last: Option<u64>,
) -> SourceStatus {
    let lag = match (origin_last, sourced) {
        (Some(last), Some(Ok(sourced))) => Some(last as i64 - *sourced as i64),
        _ => None,
    };
    let error = match view {
        None => Some(format!(
            "the aggregate does not source {} (zone {}'s local stream)",
            local.stream, local.zone
        )),
        Some(view) => view
            .error
            .as_ref()
            .map(|e| format!("source {}: {e}", local.stream))
            .or_else(|| {
                view.active.is_none().then(|| {
                    format!(
                        "the aggregate has never heard from {}: check zone {}'s domain \
                         ($JS.<domain>.API) and its leafnode link",
                        local.stream, local.zone
                    )
                })
            }),
    }
    .or_else(|| match sourced {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    });
    SourceStatus {
        zone: local.zone.clone(),
        lag,
        active_millis: view.and_then(|v| v.active).map(|a| a.as_millis() as i64),
        error,
    }
}

/// Reads every zone of a sources-topology region: each zone's aggregate,
/// with one [`SourceStatus`] per local stream of the layout, and each zone's
/// own local stream. Never fails, as [`read_region`].
pub async fn read_sources_region(layout: &SourcesLayout, zones: &[ZoneProbe]) -> RegionState {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok();
    let http = http.as_ref();
    let aggregate = layout.aggregate.as_str();
    // Aggregates first, then the local streams: a publish racing this read
    // then shows as lag, and an aggregate ahead of a local stream means that
    // stream really went back (it was recreated).
    let aggregates = join_all(zones.iter().map(|z| async move {
        let sourced = join_all(
            layout
                .locals
                .iter()
                .map(|l| sourced_seq(&z.js, aggregate, &l.subjects)),
        );
        let ((status, found), sourced) = futures::join!(observe(z, aggregate, http), sourced);
        (status, found, sourced)
    }))
    .await;
    let locals = join_all(layout.locals.iter().map(|l| async move {
        match zones.iter().find(|z| z.name == l.zone) {
            Some(z) => Some(last_seq(&z.js, &l.stream).await),
            None => None,
        }
    }))
    .await;

    let mut statuses = Vec::new();
    for (mut status, found, sourced) in aggregates {
        match &found {
            Some(found) if found.info.config.sources.as_ref().is_none_or(Vec::is_empty) => {
                status.error = Some(format!(
                    "stream {aggregate} in this zone sources nothing: it is not the region's aggregate"
                ));
            }
            Some(found) => {
                let views = source_views(found);
                status.sources = layout
                    .locals
                    .iter()
                    .zip(&sourced)
                    .zip(&locals)
                    .map(|((local, sourced), last)| {
                        let view = views.iter().find(|v| v.name == local.stream);
                        let last = last.as_ref().and_then(|r| r.as_ref().ok()).copied();
                        source_status(local, view, Some(sourced), last)
                    })
                    .collect();
                status.lag = status.sources.iter().filter_map(|s| s.lag).max();
            }
            None => {}
        }
        // The zone's own writes go to its local stream: without it the zone
        // is not writable, whatever its aggregate shows.
        let own = layout
            .locals
            .iter()
            .zip(&locals)
            .find(|(l, _)| l.zone == status.name);
        if let Some((local, Some(Err(e)))) = own {
            let why = format!("local stream {}: {e}", local.stream);
            status.error = Some(match status.error.take() {
                Some(other) => format!("{other}; {why}"),
                None => why,
            });
        }
        statuses.push(status);
    }

    let summary = RegionSummary {
        source_zone: zones
            .iter()
            .find(|z| z.role == ZoneRole::Source)
            .map(|z| z.name.clone()),
        source_last_seq: None,
        zones: statuses.len(),
        zones_ready: statuses.iter().filter(|z| zone_ready(z)).count(),
        mirrors: statuses.len(),
        mirrors_in_sync: statuses.iter().filter(|z| in_sync(z)).count(),
        max_lag: statuses.iter().filter_map(|z| z.lag).max(),
    };
    RegionState {
        stream: aggregate.to_string(),
        zones: statuses,
        summary,
    }
}

fn role_name(role: ZoneRole) -> String {
    match role {
        ZoneRole::Source => "source",
        ZoneRole::Mirror => "mirror",
    }
    .to_string()
}

/// What `zone` shows of `stream` whatever the stream is to it, with the
/// stream info for the topology's own fields.
async fn observe(
    zone: &ZoneProbe,
    stream: &str,
    http: Option<&reqwest::Client>,
) -> (ZoneStatus, Option<api::StreamInfo>) {
    let mut status = ZoneStatus {
        name: zone.name.clone(),
        role: role_name(zone.role),
        domain: zone.domain.clone(),
        servers: zone.servers,
        ..Default::default()
    };
    let monitored = async {
        match http {
            Some(http) if !zone.monitor_urls.is_empty() => {
                Some(monitor(http, &zone.monitor_urls).await)
            }
            _ => None,
        }
    };
    let (info, monitored) = futures::join!(api::stream_info(&zone.js, stream), monitored);

    let mut stream_peers_up = 0;
    let mut found_info = None;
    match info {
        Err(e) => {
            status.error = Some(format!(
                "JetStream did not answer stream info for {stream}: {e}"
            ))
        }
        Ok(Err(e)) => status.error = Some(format!("stream info for {stream} failed: {e}")),
        Ok(Ok(None)) => status.error = Some(format!("stream {stream} does not exist in this zone")),
        Ok(Ok(Some(found))) => {
            let info = &found.info;
            status.last_seq = Some(info.state.last_sequence as i64);
            match &info.cluster {
                Some(cluster) if cluster.leader.is_some() => {
                    status.stream_leader = cluster.leader.clone();
                    let current = cluster
                        .replicas
                        .iter()
                        .filter(|p| p.current && !p.offline)
                        .count();
                    status.current_replicas = Some(1 + current as i32);
                    stream_peers_up =
                        1 + cluster.replicas.iter().filter(|p| !p.offline).count() as i32;
                }
                // Clustered stream without a leader: no replica can serve.
                Some(cluster) if cluster.name.is_some() => status.current_replicas = Some(0),
                // A stream on a server without a cluster is its own single replica.
                _ => {
                    status.current_replicas = Some(1);
                    stream_peers_up = 1;
                }
            }
            found_info = Some(found);
        }
    }
    match monitored {
        Some(m) => {
            status.ready_servers = m.healthy;
            status.meta_leader = m.meta_leader;
        }
        None => status.ready_servers = stream_peers_up.min(zone.servers),
    }
    (status, found_info)
}

/// A mirror zone's `activeMillis` and `error`, from its mirror's info.
async fn observe_mirror(
    zone: &ZoneProbe,
    stream: &str,
    http: Option<&reqwest::Client>,
) -> ZoneStatus {
    let (mut status, found) = observe(zone, stream, http).await;
    let Some(found) = found else {
        return status;
    };
    match &found.info.mirror {
        None => status.error = Some(format!("stream {stream} in this zone is not a mirror")),
        Some(mirror) => {
            status.active_millis = mirror.active.map(|a| a.as_millis() as i64);
            status.error = found.mirror_error().map(|e| e.description).or_else(|| {
                mirror.active.is_none().then(|| {
                    "the mirror has never heard from the source: check mirror.external.api \
                     ($JS.<source domain>.API) and the leafnode link"
                        .to_string()
                })
            });
        }
    }
    status
}

struct Monitored {
    healthy: i32,
    meta_leader: Option<String>,
}

async fn monitor(http: &reqwest::Client, urls: &[String]) -> Monitored {
    #[derive(Deserialize)]
    struct Jsz {
        #[serde(default)]
        meta_cluster: Option<MetaCluster>,
    }
    #[derive(Deserialize)]
    struct MetaCluster {
        #[serde(default)]
        leader: Option<String>,
    }
    let probes = urls.iter().map(|base| async move {
        let base = base.trim_end_matches('/');
        let healthy = matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status().is_success());
        let leader = match http.get(format!("{base}/jsz")).send().await {
            Ok(r) if r.status().is_success() => r.json::<Jsz>().await.ok().and_then(|j| j.meta_cluster).and_then(|m| m.leader),
            _ => None,
        };
        (healthy, leader.filter(|l| !l.is_empty()))
    });
    let results = join_all(probes).await;
    Monitored {
        healthy: results.iter().filter(|(h, _)| *h).count() as i32,
        meta_leader: results.into_iter().find_map(|(_, l)| l),
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StateError {
    #[error("stream {stream} does not exist in this zone")]
    StreamMissing { stream: String },
    #[error("stream info for {stream} failed: {reason}")]
    Api { stream: String, reason: String },
    #[error("JetStream did not answer stream info for {stream}: {reason}")]
    NoAnswer { stream: String, reason: String },
}

/// Stream info for `stream` in the zone behind `js`, with every way of not
/// getting it as a `StateError`.
async fn stream_info(js: &Context, stream: &str) -> Result<api::StreamInfo, StateError> {
    match api::stream_info(js, stream).await {
        Ok(Ok(Some(found))) => Ok(found),
        Ok(Ok(None)) => Err(StateError::StreamMissing {
            stream: stream.to_string(),
        }),
        Ok(Err(e)) => Err(StateError::Api {
            stream: stream.to_string(),
            reason: e.to_string(),
        }),
        Err(e) => Err(StateError::NoAnswer {
            stream: stream.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The stream's last sequence in the zone behind `js`.
pub async fn last_seq(js: &Context, stream: &str) -> Result<u64, StateError> {
    Ok(stream_info(js, stream).await?.info.state.last_sequence)
}

/// The stream's configuration in the zone behind `js`.
pub async fn stream_config(
    js: &Context,
    stream: &str,
) -> Result<async_nats::jetstream::stream::Config, StateError> {
    Ok(stream_info(js, stream).await?.info.config)
}

/// The sources topology: the newest sequence of a zone's local stream that the
/// aggregate `aggregate` in the zone behind `js` holds, read from the
/// `Nats-Stream-Source` header (`<source> <sequence> ...`) of the aggregate's
/// newest message under each of that zone's `subjects`; 0 when it holds
/// none. With the local stream's last sequence this gives a source's lag
/// from both sides: the server's own source `lag` is its view, which stays
/// put while the link is cut (as a mirror's does, fact 3).
pub async fn sourced_seq(
    js: &Context,
    aggregate: &str,
    subjects: &[String],
) -> Result<u64, StateError> {
    let stream = js
        .get_stream_no_info(aggregate)
        .await
        .map_err(|e| StateError::NoAnswer {
            stream: aggregate.to_string(),
            reason: e.to_string(),
        })?;
    let mut newest = 0;
    for subject in subjects {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as Kind;
        let message = match stream
            .get_last_raw_message_by_subject(subject.as_str())
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == Kind::NoMessageFound => continue,
            Err(e) => {
                return Err(StateError::Api {
                    stream: aggregate.to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let seq = message
            .headers
            .get(SOURCE_HEADER)
            .and_then(|v| v.as_str().split_whitespace().nth(1)?.parse::<u64>().ok())
            .ok_or_else(|| StateError::Api {
                stream: aggregate.to_string(),
                reason: format!(
                    "message {} under {subject} carries no {SOURCE_HEADER} header: it was not sourced",
                    message.sequence
                ),
            })?;
        newest = newest.max(seq);
    }
    Ok(newest)
}

/// Set by the server on every message a stream sources.
const SOURCE_HEADER: &str = "Nats-Stream-Source";

/// One mirror as its own zone sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorView {
    pub last_seq: u64,
    /// Since the mirror last heard from the source; `None` if it never has.
    pub active: Option<Duration>,
    /// The error the mirror's sourcing reports (async-nats does not decode it).
    pub error: Option<String>,
}

/// The mirror stream `stream` in the zone behind `js`; `StateError::Api` when
/// the stream there is not a mirror.
pub async fn mirror_view(js: &Context, stream: &str) -> Result<MirrorView, StateError> {
    let found = stream_info(js, stream).await?;
    match &found.info.mirror {
        Some(mirror) => Ok(MirrorView {
            last_seq: found.info.state.last_sequence,
            active: mirror.active,
            error: found.mirror_error().map(|e| e.description),
        }),
        None => Err(StateError::Api {
            stream: stream.to_string(),
            reason: "the stream is not a mirror".to_string(),
        }),
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error(
    "mirrors not in sync after {waited:?}: source last_seq {source_last_seq:?}, mirrors {mirror_last_seqs:?}"
)]
pub struct SyncTimeout {
    pub waited: Duration,
    pub source_last_seq: Option<u64>,
    /// In the order the mirrors were given; `None` where it could not be read.
    pub mirror_last_seqs: Vec<Option<u64>>,
}

/// Waits until every mirror's last sequence has reached the source's, and
/// returns how long that took from the call. Called right after a heal, this
/// is the catch-up time (docs/architecture.md fact 4). Each round reads the source first
/// and the mirrors after, so with producers still writing it ends once the
/// mirrors have caught up with where the source was, not when writes stop.
pub async fn wait_until_in_sync(
    source: &Context,
    mirrors: &[&Context],
    stream: &str,
    timeout: Duration,
) -> Result<Duration, SyncTimeout> {
    let started = Instant::now();
    loop {
        let source_last_seq = last_seq(source, stream).await.ok();
        let mirror_last_seqs: Vec<Option<u64>> =
            join_all(mirrors.iter().map(|m| last_seq(m, stream)))
                .await
                .into_iter()
                .map(Result::ok)
                .collect();
        if let Some(target) = source_last_seq
            && mirror_last_seqs
                .iter()
                .all(|m| m.is_some_and(|m| m >= target))
        {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return Err(SyncTimeout {
                waited: started.elapsed(),
                source_last_seq,
                mirror_last_seqs,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalStream {
        LocalStream {
            zone: "c".into(),
            stream: "EV-c".into(),
            subjects: vec!["ev.c.>".into()],
        }
    }

    fn heard(millis: u64) -> SourceView {
        SourceView {
            name: "EV-c".into(),
            active: Some(Duration::from_millis(millis)),
            error: None,
        }
    }

    #[test]
    fn a_source_lag_is_the_local_streams_last_sequence_minus_what_the_aggregate_holds() {
        let s = source_status(&local(), Some(&heard(120)), Some(&Ok(7)), Some(10));
        assert_eq!(
            s,
            SourceStatus {
                zone: "c".into(),
                lag: Some(3),
                active_millis: Some(120),
                error: None,
            }
        );
        assert!(!source_in_sync(&s));
        let s = source_status(&local(), Some(&heard(120)), Some(&Ok(10)), Some(10));
        assert!(source_in_sync(&s));
        // The local stream unreadable (its zone not connected): the lag is
        // unknown, not 0.
        let s = source_status(&local(), Some(&heard(120)), Some(&Ok(10)), None);
        assert_eq!(s.lag, None);
        assert!(!source_in_sync(&s));
    }

    #[test]
    fn a_source_that_never_delivered_or_is_missing_says_why() {
        let never = SourceView {
            active: None,
            ..heard(0)
        };
        let s = source_status(&local(), Some(&never), Some(&Ok(0)), Some(0));
        assert_eq!(s.lag, Some(0), "nothing written, nothing behind");
        assert!(
            s.error
                .as_deref()
                .unwrap()
                .contains("never heard from EV-c"),
            "{s:?}"
        );
        assert!(!source_in_sync(&s), "lag 0 without contact is not in sync");

        let failing = SourceView {
            error: Some("stream not found".into()),
            ..never
        };
        let s = source_status(&local(), Some(&failing), Some(&Ok(0)), None);
        assert_eq!(s.error.as_deref(), Some("source EV-c: stream not found"));

        let s = source_status(&local(), None, Some(&Ok(0)), Some(4));
        assert_eq!(s.lag, Some(4));
        assert!(
            s.error.as_deref().unwrap().contains("does not source EV-c"),
            "{s:?}"
        );
    }

    #[test]
    fn an_aggregate_is_in_sync_when_every_source_is() {
        let synced = |zone: &str| SourceStatus {
            zone: zone.into(),
            lag: Some(0),
            ..Default::default()
        };
        let mut zone = ZoneStatus {
            name: "a".into(),
            lag: Some(0),
            sources: vec![synced("a"), synced("b")],
            ..Default::default()
        };
        assert!(in_sync(&zone));
        zone.sources[1].error = Some("source EV-b: stream not found".into());
        assert!(!in_sync(&zone), "lag 0 on the zone, but a source fails");
        zone.sources[1] = synced("b");
        zone.error = Some("local stream EV-a: does not exist".into());
        assert!(!in_sync(&zone));
    }

    #[test]
    fn the_layout_names_every_zones_local_stream_and_subjects() {
        let spec: RegionMirrorSpec = serde_json::from_value(serde_json::json!({
            "topology": "sources",
            "stream": {"name": "EV", "subjects": ["ev.{zone}.>", "audit.{zone}"]},
            "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
        }))
        .unwrap();
        let layout = SourcesLayout::of(&spec);
        assert_eq!(layout.aggregate, "EV");
        assert_eq!(
            layout.locals[1],
            LocalStream {
                zone: "b".into(),
                stream: "EV-b".into(),
                subjects: vec!["ev.b.>".into(), "audit.b".into()],
            }
        );
    }
}
