//! The fault reaper: removes every fault past its deadline as the fault
//! objects themselves record it (`fault::deadline`), at the controller's
//! start and then every [`DrillSettings::reap_every`]. It reads no drill
//! status and needs no drill task, so a cut whose drill, status or operator
//! process is gone still ends at its deadline once any operator runs.

use super::toxiproxy::ToxiproxyTarget;
use super::*;
use crate::fault::networkpolicy;
use k8s_openapi::api::networking::v1::NetworkPolicy;

/// What one pass removed, described for a person.
pub async fn reap_once(ctx: &Context, settings: &DrillSettings) -> Vec<String> {
    let now = jiff::Timestamp::now();
    let mut reaped = Vec::new();
    let policies: Api<NetworkPolicy> = ctx.watched_api();
    match networkpolicy::reap_expired(&policies, now).await {
        Ok(r) => {
            for _ in &r {
                ctx.metrics.fault_healed("networkPolicy");
            }
            reaped.extend(r);
        }
        Err(e) => tracing::warn!(error = %e, "fault reaper: NetworkPolicies not read"),
    }
    for target in toxiproxy_targets(ctx, settings).await {
        match target.backend().reap_expired(now).await {
            Ok(r) => {
                for _ in &r {
                    ctx.metrics.fault_healed("toxiproxy");
                }
                reaped.extend(r);
            }
            // A region whose Toxiproxy is not up (yet) has nothing to reap.
            Err(e) => {
                tracing::debug!(api = %target.api, error = %e, "fault reaper: Toxiproxy not read")
            }
        }
    }
    for r in &reaped {
        tracing::warn!(fault = %r, "fault past its deadline removed by the reaper");
    }
    reaped
}

/// The configured Toxiproxy, and the one of every region whose leafnode
/// links run through its own.
async fn toxiproxy_targets(ctx: &Context, settings: &DrillSettings) -> Vec<ToxiproxyTarget> {
    let mut targets: Vec<ToxiproxyTarget> = settings.toxiproxy.iter().cloned().collect();
    let regions: Api<RegionMirror> = ctx.watched_api();
    match regions.list(&Default::default()).await {
        Ok(list) => {
            for r in list.items {
                if crate::operator::toxiproxy::enabled(&r) {
                    let t = ToxiproxyTarget::in_cluster(
                        &r.namespace().unwrap_or_default(),
                        &r.name_any(),
                    );
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "fault reaper: RegionMirrors not read"),
    }
    targets
}

/// Reaps at once, then every `settings.reap_every`, until dropped.
pub async fn run(ctx: Arc<Context>, settings: DrillSettings) {
    loop {
        reap_once(&ctx, &settings).await;
        tokio::time::sleep(settings.reap_every).await;
    }
}
