//! Reaching a region's zones over NATS and provisioning its streams: the source
//! stream in the source zone, a mirror in every other zone. A mirror whose
//! settings cannot be edited in place is reported, never recreated here:
//! recreating copies the whole history again, which is the user's decision.

use futures::future::join_all;

use crate::api::{RegionMirrorSpec, ZoneSpec};
use crate::nats::{self, ConnectSettings, Outcome, ZoneClient, ZoneEndpoint};
use crate::operator::error::Error;
use crate::plan::{UserPass, mirror_stream_config, source_stream_config};

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
pub async fn provision(
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
    let mut errors = Vec::new();
    let mut recreate = Vec::new();
    let mut waiting = Vec::new();
    let source_ok = match nats::ensure_source_stream(
        &source.client.js,
        &source_stream_config(spec),
        source.zone.servers.max(0) as usize,
    )
    .await
    {
        Ok(Outcome::NeedsRecreate { reason }) => {
            recreate.push(format!(
                "source zone {}: {reason}; to apply the change, delete stream {} there and let the operator create it again (its messages are lost, and every mirror must then be recreated too)",
                source.zone.name, spec.stream.name
            ));
            true
        }
        Ok(outcome) => {
            log_outcome(&source.zone.name, &spec.stream.name, &outcome);
            true
        }
        Err(source_err) => {
            errors.push(Error::Provision {
                zone: source.zone.name.clone(),
                source: source_err,
            });
            false
        }
    };
    if source_ok {
        let mirrors = spec.mirror_zones().map(|zone| async move {
            let Some(c) = connected.iter().find(|c| c.zone.name == zone.name) else {
                return (zone.name.clone(), None);
            };
            let config = mirror_stream_config(spec, source_spec.domain(), zone);
            let r = nats::ensure_mirror(&c.client.js, &config, zone.servers.max(0) as usize).await;
            (zone.name.clone(), Some(r))
        });
        for (zone, result) in join_all(mirrors).await {
            match result {
                None => waiting.push(zone),
                Some(Ok(Outcome::NeedsRecreate { reason })) => recreate.push(format!(
                    "zone {zone}: {reason}; delete stream {} in that zone to have it recreated (it copies the whole history again)",
                    spec.stream.name
                )),
                Some(Ok(outcome)) => log_outcome(&zone, &spec.stream.name, &outcome),
                Some(Err(e)) => errors.push(Error::Provision { zone, source: e }),
            }
        }
    }
    let state = if let Some(first) = errors.first() {
        StreamsState::Failed {
            reason: first.reason(),
            message: errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }
    } else if !recreate.is_empty() {
        StreamsState::NeedsRecreate(recreate.join("; "))
    } else if !waiting.is_empty() {
        StreamsState::Waiting(format!(
            "waiting for zone(s) {} to be ready before creating their mirrors",
            waiting.join(", ")
        ))
    } else {
        StreamsState::Ready
    };
    (state, errors)
}

fn log_outcome(zone: &str, stream: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Unchanged => tracing::debug!(zone, stream, "stream unchanged"),
        other => tracing::info!(zone, stream, outcome = ?other, "stream provisioned"),
    }
}
