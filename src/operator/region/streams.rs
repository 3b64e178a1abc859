//! Reaching a region's zones over NATS and provisioning its streams
//! (`plan::zone_streams` chooses them): the source stream in the source zone
//! and a mirror in every other zone; or, with `topology: sources`, a local
//! stream and an aggregate in every zone. A stream whose settings cannot be
//! edited in place is reported, never recreated here: recreating loses
//! messages or copies the whole history again, which is the user's decision.

use async_nats::jetstream::stream::{Config, Source};
use futures::future::join_all;

use crate::api::{RegionMirrorSpec, ZoneSpec};
use crate::nats::{self, ConnectSettings, Outcome, ProvisionError, ZoneClient, ZoneEndpoint};
use crate::operator::error::Error;
use crate::plan::{StreamKind, UserPass, ZoneStream, zone_streams};

/// A zone the operator could connect to.
#[derive(Clone, Debug)]
pub struct Connected {
    pub zone: ZoneSpec,
    pub client: ZoneClient,
    /// Monitoring URLs of the zone's servers, when known.
    pub monitor: Vec<String>,
}

pub async fn connect_zone(
    settings: &ConnectSettings,
    zone: &ZoneSpec,
    urls: Vec<String>,
    user: &UserPass,
    ca: Option<String>,
) -> Result<ZoneClient, Error> {
    let endpoint = ZoneEndpoint {
        zone: zone.name.clone(),
        urls,
        user: Some(user.user.clone()),
        password: Some(user.password.clone()),
        domain: Some(zone.domain().to_string()),
        ca,
    };
    nats::connect(&endpoint, settings)
        .await
        .map_err(Error::Connect)
}

/// Where the region's streams stand, for the StreamsReady condition.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamsState {
    Ready,
    /// Some zone is not reachable yet; nothing failed.
    Waiting(String),
    /// The source's or a mirror's settings changed in a way the server cannot
    /// apply in place: the stream must be deleted and created again.
    NeedsRecreate(String),
    /// Provisioning failed; `reason` is the error's.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// Provisions the streams in every connected zone. Errors are collected per
/// zone (one zone failing does not stop the others) and summarized.
/// `keep` names aggregate sources that stay although no zone of the spec is
/// theirs (a running drill's temporary zone, `drills::kept_sources`).
pub async fn provision(
    spec: &RegionMirrorSpec,
    connected: &[Connected],
    keep: &[String],
) -> (StreamsState, Vec<Error>) {
    if spec.is_sources() {
        provision_sources(spec, connected, keep).await
    } else {
        provision_mirrors(spec, connected).await
    }
}

/// What one pass did, summed up into a StreamsState.
#[derive(Default)]
struct Pass {
    errors: Vec<Error>,
    recreate: Vec<String>,
    /// Zones of the spec not connected yet.
    waiting: Vec<String>,
}

impl Pass {
    fn record(
        &mut self,
        zone: &ZoneSpec,
        stream: &ZoneStream,
        result: Result<Outcome, ProvisionError>,
    ) {
        let name = &stream.config.name;
        match result {
            Ok(Outcome::NeedsRecreate { reason }) => {
                let what = match stream.kind {
                    StreamKind::Source => format!(
                        "source zone {}: {reason}; to apply the change, delete stream {name} there and let the operator create it again (its messages are lost, and every mirror must then be recreated too)",
                        zone.name
                    ),
                    StreamKind::Mirror => format!(
                        "zone {}: {reason}; delete stream {name} in that zone to have it recreated (it copies the whole history again)",
                        zone.name
                    ),
                    StreamKind::Local => format!(
                        "zone {}: {reason}; to apply the change, delete stream {name} there and let the operator create it again (its messages are lost)",
                        zone.name
                    ),
                    StreamKind::Aggregate => format!(
                        "zone {}: {reason}; delete the aggregate {name} in that zone to have it recreated (it sources every zone's local stream again)",
                        zone.name
                    ),
                };
                self.recreate.push(what);
            }
            Ok(outcome) => log_outcome(&zone.name, name, &outcome),
            Err(source) => self.errors.push(Error::Provision {
                zone: zone.name.clone(),
                source,
            }),
        }
    }

    fn state(self, waiting_for: &str) -> (StreamsState, Vec<Error>) {
        let state = if let Some(first) = self.errors.first() {
            StreamsState::Failed {
                reason: first.reason(),
                message: self
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        } else if !self.recreate.is_empty() {
            StreamsState::NeedsRecreate(self.recreate.join("; "))
        } else if !self.waiting.is_empty() {
            StreamsState::Waiting(format!(
                "waiting for zone(s) {} to be ready before creating {waiting_for}",
                self.waiting.join(", ")
            ))
        } else {
            StreamsState::Ready
        };
        (state, self.errors)
    }
}

/// The mirror topology: the source stream first, and the mirrors only once it
/// is there (a mirror is created after asking the source through its link).
async fn provision_mirrors(
    spec: &RegionMirrorSpec,
    connected: &[Connected],
) -> (StreamsState, Vec<Error>) {
    let Some(source_spec) = spec.source_zone() else {
        return (
            StreamsState::Waiting("the region has no source zone".to_string()),
            vec![],
        );
    };
    let Some(source) = connected.iter().find(|c| c.zone.is_source()) else {
        return (
            StreamsState::Waiting(format!(
                "waiting for source zone {} to be ready before creating stream {}",
                source_spec.name, spec.stream.name
            )),
            vec![],
        );
    };
    let mut pass = Pass::default();
    for stream in zone_streams(spec, &source.zone) {
        let result = ensure(&source.client.js, &stream, &source.zone).await;
        pass.record(&source.zone, &stream, result);
    }
    if pass.errors.is_empty() {
        let mirrors = spec.mirror_zones().map(|zone| async move {
            let c = connected.iter().find(|c| c.zone.name == zone.name)?;
            let mut done = Vec::new();
            for stream in zone_streams(spec, zone) {
                let result = ensure(&c.client.js, &stream, zone).await;
                done.push((stream, result));
            }
            Some(done)
        });
        for (zone, done) in spec.mirror_zones().zip(join_all(mirrors).await) {
            match done {
                None => pass.waiting.push(zone.name.clone()),
                Some(done) => {
                    for (stream, result) in done {
                        pass.record(zone, &stream, result);
                    }
                }
            }
        }
    }
    pass.state("their mirrors")
}

/// The sources topology: every connected zone's local stream, then every
/// connected zone's aggregate. An aggregate may source a local stream that
/// does not exist yet (a zone not ready): the server keeps retrying it (the
/// source reports "stream not found" meanwhile, docs/architecture.md). But
/// its retries back off, so a local stream created after the aggregate was
/// delivered about 9 s late: hence locals first, in every zone.
async fn provision_sources(
    spec: &RegionMirrorSpec,
    connected: &[Connected],
    keep: &[String],
) -> (StreamsState, Vec<Error>) {
    let mut pass = Pass::default();
    let zones: Vec<(&ZoneSpec, &Connected, Vec<ZoneStream>)> = spec
        .zones
        .iter()
        .filter_map(
            |zone| match connected.iter().find(|c| c.zone.name == zone.name) {
                Some(c) => Some((zone, c, zone_streams(spec, zone))),
                None => {
                    pass.waiting.push(zone.name.clone());
                    None
                }
            },
        )
        .collect();
    for kind in [StreamKind::Local, StreamKind::Aggregate] {
        let ensured = zones.iter().map(|(zone, c, streams)| async move {
            let mut done = Vec::new();
            for stream in streams.iter().filter(|s| s.kind == kind) {
                let mut stream = stream.clone();
                if kind == StreamKind::Aggregate && !keep.is_empty() {
                    let current = current_sources(&c.client.js, &stream.config.name).await;
                    stream.config = keep_sources(stream.config, &current, keep);
                }
                let result = ensure(&c.client.js, &stream, zone).await;
                done.push((stream, result));
            }
            (*zone, done)
        });
        for (zone, done) in join_all(ensured).await {
            for (stream, result) in done {
                pass.record(zone, &stream, result);
            }
        }
    }
    pass.state(&format!(
        "their local streams ({}-<zone>) and aggregates ({})",
        spec.stream.name, spec.stream.name
    ))
}

async fn ensure(
    js: &async_nats::jetstream::Context,
    stream: &ZoneStream,
    zone: &ZoneSpec,
) -> Result<Outcome, ProvisionError> {
    nats::ensure_zone_stream(js, stream, zone.servers.max(0) as usize).await
}

/// The sources the aggregate has now; none when it cannot be read (it is
/// then created or reported by the ensure that follows).
async fn current_sources(js: &async_nats::jetstream::Context, aggregate: &str) -> Vec<Source> {
    nats::state::stream_config(js, aggregate)
        .await
        .ok()
        .and_then(|c| c.sources)
        .unwrap_or_default()
}

/// `wanted` plus every source of `current` named in `keep` that `wanted`
/// lacks, as the aggregate has it now: the drill that added it owns its
/// settings, and rewriting them would restart its delivery.
pub fn keep_sources(mut wanted: Config, current: &[Source], keep: &[String]) -> Config {
    let sources = wanted.sources.get_or_insert_with(Vec::new);
    for source in current.iter().filter(|s| keep.contains(&s.name)) {
        if !sources.iter().any(|s| s.name == source.name) {
            sources.push(source.clone());
        }
    }
    wanted
}

fn log_outcome(zone: &str, stream: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Unchanged => tracing::debug!(zone, stream, "stream unchanged"),
        other => tracing::info!(zone, stream, outcome = ?other, "stream provisioned"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, api: Option<&str>) -> Source {
        Source {
            name: name.into(),
            external: api.map(|api| async_nats::jetstream::stream::External {
                api_prefix: api.into(),
                delivery_prefix: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn kept_sources_stay_as_the_aggregate_has_them_others_go() {
        let wanted = Config {
            name: "EV".into(),
            sources: Some(vec![
                source("EV-a", None),
                source("EV-b", Some("$JS.b.API")),
            ]),
            ..Default::default()
        };
        let mut drills = source("EV-t", Some("$JS.t.API"));
        drills.filter_subject = Some("ev.t.>".into());
        let current = [
            source("EV-a", None),
            source("EV-c", Some("$JS.c.API")),
            drills.clone(),
        ];
        let kept = keep_sources(wanted.clone(), &current, &["EV-t".to_string()]);
        assert_eq!(
            kept.sources.unwrap(),
            [
                source("EV-a", None),
                source("EV-b", Some("$JS.b.API")),
                drills
            ],
            "c left the spec and goes; the drill's t stays with the drill's settings"
        );
        assert_eq!(keep_sources(wanted.clone(), &current, &[]), wanted);
        // A kept name the aggregate does not have (the drill did not add it yet) adds nothing.
        assert_eq!(
            keep_sources(wanted.clone(), &current[..2], &["EV-t".to_string()]),
            wanted
        );
    }
}
