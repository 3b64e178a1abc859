//! Looking at a region's zones: which have ready servers (StatefulSet status
//! for managed zones), which answer over NATS, and what each one looks like.

use std::collections::HashMap;

use futures::future::join_all;

use super::credentials::Credentials;
use super::streams::{self, Connected};
use super::validated::ValidatedRegion;
use crate::api::{ZoneSpec, ZoneStatus};
use crate::nats::{ConnectError, RegionState};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::plan::UserPass;

/// The zones after dialing them.
#[derive(Default)]
pub struct Dialed {
    pub connected: Vec<Connected>,
    /// Why a zone has no NATS view, for its `error` in the status.
    pub unreachable: HashMap<String, String>,
    /// Zones that should have answered (servers ready, or external) and did
    /// not: `(reason, message)`. A failure, unlike a zone still starting.
    pub failures: Vec<(&'static str, String)>,
}

/// Dials every external zone, and every managed zone whose StatefulSet
/// reports all its servers ready (`ready_replicas`, by zone).
pub async fn dial_zones(
    ctx: &Context,
    valid: &ValidatedRegion,
    creds: &Credentials,
    external_users: &HashMap<String, UserPass>,
    ready_replicas: &HashMap<String, i32>,
) -> Dialed {
    let attempts = valid.region.spec.zones.iter().map(|zone| async move {
        let (urls, monitor, user, ca) = match &zone.external {
            Some(ext) => (
                vec![ext.url.clone()],
                vec![],
                &external_users[&zone.name],
                valid.zone_ca(zone),
            ),
            None => {
                let ready = ready_replicas.get(&zone.name).copied().unwrap_or(0);
                if ready < zone.servers {
                    return (zone, None);
                }
                let urls = valid.zone_urls(ctx, zone);
                (urls.client, urls.monitor, &creds.app, urls.ca)
            }
        };
        let dialed = streams::connect_zone(&ctx.settings.nats_connect, zone, urls, user, ca)
            .await
            .map(|client| Connected {
                zone: zone.clone(),
                client,
                monitor,
            });
        (zone, Some(dialed))
    });
    let mut out = Dialed::default();
    for (zone, outcome) in join_all(attempts).await {
        match outcome {
            Some(Ok(c)) => out.connected.push(c),
            None => {
                out.unreachable.insert(
                    zone.name.clone(),
                    "waiting for the servers to become ready".to_string(),
                );
            }
            Some(Err(e)) => {
                let mut message = match &e {
                    Error::Connect(inner) => {
                        format!("zone {}: {}", zone.name, stable_connect_message(inner))
                    }
                    other => other.to_string(),
                };
                // Only the in-cluster names can be the problem; a test's
                // override dials addresses that work from anywhere.
                if zone.external.is_none()
                    && ctx.settings.zone_access_override.is_none()
                    && let Some(hint) = super::names::outside_cluster_hint()
                {
                    message = format!("{message}; {hint}");
                }
                out.unreachable.insert(zone.name.clone(), message.clone());
                out.failures.push((e.reason(), message));
            }
        }
    }
    out
}

/// A connect failure in words that do not change from one attempt to the next
/// (no elapsed time, no attempt count), so a steady failure writes no status.
fn stable_connect_message(e: &ConnectError) -> String {
    match e {
        ConnectError::Unreachable { urls, last, .. } => {
            format!("no server answered at {} ({last})", urls.join(", "))
        }
        ConnectError::NoJetStream { reason, .. } => {
            format!("connected, but JetStream did not answer ({reason})")
        }
        other => other.to_string(),
    }
}

/// One status per zone, in spec order: what NATS showed, or why nothing could
/// be read; managed zones' ready servers are the StatefulSet's ready pods
/// (what the kubelet's `/healthz?js-enabled-only=true` probes say).
pub fn zone_statuses(
    zones: &[ZoneSpec],
    state: &RegionState,
    unreachable: &HashMap<String, String>,
    ready_replicas: &HashMap<String, i32>,
) -> Vec<ZoneStatus> {
    zones
        .iter()
        .map(|zone| {
            let mut z = state
                .zone(&zone.name)
                .cloned()
                .unwrap_or_else(|| ZoneStatus {
                    name: zone.name.clone(),
                    role: if zone.is_source() { "source" } else { "mirror" }.to_string(),
                    domain: zone.domain().to_string(),
                    servers: zone.servers,
                    error: unreachable.get(&zone.name).cloned(),
                    ..Default::default()
                });
            if let Some(ready) = ready_replicas.get(&zone.name) {
                z.ready_servers = *ready;
            }
            z
        })
        .collect()
}
