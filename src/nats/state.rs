//! What the region looks like, read from every zone.
//!
//! A mirror's lag is computed from both sides (source last sequence minus
//! mirror last sequence): the server's own mirror `lag` stays 0 while the
//! mirror is cut off (docs/architecture.md fact 3), so it is never used. `active` and the
//! mirror's `error` are reported next to it, because a lag of 0 says nothing
//! about whether the mirror can still hear the source.

use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use futures::future::join_all;
use serde::Deserialize;

use super::api;
use super::connect::ZoneClient;
use crate::api::{RegionMirrorStatus, ZoneRole, ZoneSpec, ZoneStatus};

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
    pub mirrors: usize,
    /// Mirrors whose last sequence equals the source's, with no mirror error.
    pub mirrors_in_sync: usize,
    /// Largest lag over the mirrors whose lag could be computed.
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

/// A mirror that has every message the source has, and no sourcing error.
pub fn in_sync(zone: &ZoneStatus) -> bool {
    zone.lag == Some(0) && zone.error.is_none()
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
            .map(|z| observe(z, stream, http)),
    )
    .await;
    let sources = join_all(
        zones
            .iter()
            .filter(|z| z.role == ZoneRole::Source)
            .map(|z| observe(z, stream, http)),
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

fn role_name(role: ZoneRole) -> String {
    match role {
        ZoneRole::Source => "source",
        ZoneRole::Mirror => "mirror",
    }
    .to_string()
}

async fn observe(zone: &ZoneProbe, stream: &str, http: Option<&reqwest::Client>) -> ZoneStatus {
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
            if zone.role == ZoneRole::Mirror {
                match &info.mirror {
                    None => {
                        status.error = Some(format!("stream {stream} in this zone is not a mirror"))
                    }
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
            }
        }
    }
    match monitored {
        Some(m) => {
            status.ready_servers = m.healthy;
            status.meta_leader = m.meta_leader;
        }
        None => status.ready_servers = stream_peers_up.min(zone.servers),
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
