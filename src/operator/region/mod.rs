//! The RegionMirror controller: observe → validate → build (pure, `children`)
//! → apply (SSA, `apply`) → provision streams (`streams`) → report (`status`).
//!
//! Children are watched (`owns`), so drift and deletions are corrected at once;
//! a steady region is otherwise looked at every `status_refresh` and only
//! written to when something changed.

pub mod applied;
pub mod apply;
pub mod certificates;
pub mod children;
pub mod credentials;
pub mod drills;
pub mod names;
pub mod object_meta;
pub mod observe;
pub mod ownership;
pub mod resume;
pub mod secrets;
pub mod status;
pub mod streams;
pub mod validated;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};

use self::applied::AppliedChildren;
use self::children::ZoneChildren;
use self::secrets::SecretCache;
use self::validated::ValidatedRegion;
use crate::api::{RegionMirror, RegionMirrorStatus};
use crate::meta::{FIELD_MANAGER, labels};
use crate::nats::{SourcesLayout, ZoneProbe, read_region, read_sources_region};
use crate::operator::context::{Context, scoped_api};
use crate::operator::error::{Error, Result};
use crate::operator::shutdown::Shutdown;
use streams::StreamsState;

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "regionmirror";

/// How long a trigger waits for more before its reconcile runs.
const RECONCILE_DEBOUNCE: Duration = Duration::from_secs(1);

struct RegionCtx {
    ctx: Arc<Context>,
    /// Consecutive failures per region (`ns/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    applied: Arc<AppliedChildren>,
    /// The operator's own Secrets as the watch delivered them.
    secrets: SecretCache,
    /// When each stalled stream was last nudged, to pace the nudges.
    nudges: resume::Nudges,
}

/// Runs the RegionMirror controller until `shutdown`.
pub async fn controller(ctx: Arc<Context>, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    let ns = ns.as_deref();
    // Only the operator's own objects are cached, not every Service in the cluster.
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let applied = Arc::new(AppliedChildren::default());
    let (secrets, secrets_writer) = reflector::store();
    let state = Arc::new(RegionCtx {
        ctx: ctx.clone(),
        failures: Mutex::default(),
        applied: applied.clone(),
        secrets,
        nudges: resume::Nudges::default(),
    });
    // The debounce folds a burst of triggers into one reconcile: a region's
    // first reconcile creates 18 children, and each of their watch events
    // queued it again (at 1000 regions most reconciles were such repeats).
    let config = ControllerConfig::default()
        .concurrency(ctx.settings.max_concurrent_reconciles)
        .debounce(RECONCILE_DEBOUNCE);
    Controller::new(
        scoped_api::<RegionMirror>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(config)
    .owns_stream(child_events::<StatefulSet>(
        &client, ns, &children, &applied,
    ))
    .owns_stream(child_events::<ConfigMap>(&client, ns, &children, &applied))
    .owns_stream(child_events::<Service>(&client, ns, &children, &applied))
    .owns_stream(child_events::<PodDisruptionBudget>(
        &client, ns, &children, &applied,
    ))
    // Neither of these is applied by a full pass, so their events
    // trigger the region without invalidating its pass: a region's
    // Secrets feed what it builds (a change there changes the build),
    // and its Toxiproxy (`leafnode.proxy: toxiproxy`) is reconciled on
    // every look (ready → sync its proxies).
    .owns(scoped_api::<Deployment>(&client, ns), children.clone())
    .owns_stream(
        watcher(scoped_api::<Secret>(&client, ns), children)
            .default_backoff()
            // Never read, and the larger part of a Secret's metadata.
            .modify(|s| s.managed_fields_mut().clear())
            .reflect(secrets_writer)
            .touched_objects(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, state)
    .for_each(|result| {
        let (ctx, applied) = (ctx.clone(), applied.clone());
        async move {
            match result {
                Ok((obj, _)) => tracing::debug!(region = %obj, "reconciled"),
                // A region that is gone (its children's deletion still
                // triggers it): drop its lag series and its record.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    let ns = obj.namespace.as_deref().unwrap_or_default();
                    ctx.metrics.forget_region(ns, &obj.name);
                    applied.forget(&applied::region_key(ns, &obj.name));
                }
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        }
    })
    .await;
}

/// Metadata-only watch events of one kind of child (what `owns` watches),
/// each counted against its region before it triggers the region.
fn child_events<K>(
    client: &kube::Client,
    ns: Option<&str>,
    config: &watcher::Config,
    applied: &Arc<AppliedChildren>,
) -> impl Stream<Item = std::result::Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let applied = applied.clone();
    watcher(
        scoped_api::<PartialObjectMeta<K>>(client, ns),
        config.clone(),
    )
    .touched_objects()
    .inspect_ok(move |child| applied.child_changed(&child.metadata))
}

fn key(region: &RegionMirror) -> String {
    applied::region_key(&region.namespace().unwrap_or_default(), &region.name_any())
}

async fn reconcile(region: Arc<RegionMirror>, rc: Arc<RegionCtx>) -> Result<Action> {
    if region.metadata.deletion_timestamp.is_some() {
        // Children go with the region through their owner references.
        let ctx = &rc.ctx;
        ctx.metrics
            .forget_region(&region.namespace().unwrap_or_default(), &region.name_any());
        rc.applied.forget(&key(&region));
        rc.nudges.forget(&key(&region));
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = reconcile_region(&region, &rc).await;
    let ctx = &rc.ctx;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    tracing::debug!(region = %key(&region), took_ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "reconcile");
    match &result {
        Ok(_) => {
            rc.failures
                .lock()
                .expect("failures lock")
                .remove(&key(&region));
            ctx.metrics.reconcile_succeeded(
                CONTROLLER,
                &region.namespace().unwrap_or_default(),
                &region.name_any(),
            );
        }
        Err(e) => {
            ctx.metrics.failed(CONTROLLER, e.reason());
            let ns = region.namespace().unwrap_or_default();
            ctx.metrics
                .reconcile_failing(CONTROLLER, &ns, &region.name_any(), e.reason());
            ctx.metrics
                .set_region_state(&ns, &region.name_any(), "failed");
            tracing::warn!(region = %key(&region), reason = e.reason(), error = %e, "reconcile failed");
            warn(ctx, &region, e.reason(), &e.to_string()).await;
            let old = region.status.clone().unwrap_or_default();
            let new = status::failed(&region, &old, e, now());
            if new != old
                && let Err(write) = write_status(ctx, &region, &new).await
            {
                tracing::warn!(region = %key(&region), error = %write, "cannot write the failure into the status");
            }
        }
    }
    result
}

fn error_policy(region: Arc<RegionMirror>, error: &Error, rc: Arc<RegionCtx>) -> Action {
    if error.is_permanent() {
        // Retrying the same spec fails the same way: wait for it to change.
        return Action::await_change();
    }
    let mut failures = rc.failures.lock().expect("failures lock");
    let n = failures.entry(key(&region)).or_insert(0);
    *n += 1;
    Action::requeue(Error::backoff(*n))
}

/// Seconds precision, as the API server stores condition times: a time read
/// back then compares equal to the one written.
fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

async fn warn(ctx: &Context, region: &RegionMirror, reason: &str, note: &str) {
    publish(ctx, region, EventType::Warning, reason, note).await
}

async fn publish(ctx: &Context, region: &RegionMirror, type_: EventType, reason: &str, note: &str) {
    ctx.publish_event(region, type_, reason, "Reconcile", note)
        .await
}

async fn write_status(
    ctx: &Context,
    region: &RegionMirror,
    status: &RegionMirrorStatus,
) -> Result<()> {
    let ns = region
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<RegionMirror> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": RegionMirror::api_version(&()),
        "kind": RegionMirror::kind(&()),
        "status": status,
    });
    api.patch_status(
        &region.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| {
        Error::kube(
            format!("write the status of RegionMirror {}", key(region)),
            e,
        )
    })?;
    Ok(())
}

/// Applies every child and, with `prune`, deletes those of zones no longer
/// in the spec. Returns each zone's ready replicas as its StatefulSet
/// reported them, and the resourceVersions the applies returned.
async fn apply_children(
    ctx: &Context,
    valid: &ValidatedRegion,
    children: &[ZoneChildren],
    prune: bool,
) -> Result<(applied::ReadyReplicas, HashSet<String>)> {
    let client = &ctx.client;
    let region = &valid.region;
    let mut ready_replicas = HashMap::new();
    let mut own_writes = HashSet::new();
    for zone in children {
        let done = apply::apply_zone(client, zone).await?;
        let ready = done.statefulset.status.and_then(|s| s.ready_replicas);
        ready_replicas.insert(zone.zone.clone(), ready.unwrap_or(0));
        own_writes.extend(done.resource_versions);
    }
    reconcile_toxiproxy(ctx, valid).await?;
    if !prune {
        return Ok((ready_replicas, own_writes));
    }
    let selector = apply::children_selector(&valid.name);
    let pruned = apply::prune(client, &valid.namespace, &selector, &valid.uid, children).await?;
    if !pruned.is_empty() {
        tracing::info!(region = %key(region), deleted = ?pruned, "deleted objects of zones no longer in the spec");
        let note = format!(
            "deleted {} of zones no longer in the spec",
            pruned.join(", ")
        );
        publish(ctx, region, EventType::Normal, "ZoneRemoved", &note).await;
    }
    Ok((ready_replicas, own_writes))
}

/// Creates, updates or deletes the region's Toxiproxy and syncs its proxies;
/// a Toxiproxy that is up but cannot be synced is warned about, not failed.
async fn reconcile_toxiproxy(ctx: &Context, valid: &ValidatedRegion) -> Result<()> {
    let api_policy = ctx.settings.toxiproxy_api_policy.as_ref();
    if let Some(problem) =
        crate::operator::toxiproxy::reconcile(&ctx.client, valid, api_policy).await?
    {
        warn(ctx, &valid.region, "ToxiproxyNotSynced", &problem).await;
    }
    Ok(())
}

async fn reconcile_region(region: &RegionMirror, rc: &RegionCtx) -> Result<Action> {
    let (ctx, applied, secrets) = (rc.ctx.as_ref(), rc.applied.as_ref(), &rc.secrets);
    // Before anything is written (loading generates Secrets): a region
    // whose names another holds writes nothing at all.
    let region_key = key(region);
    let generation = region.metadata.generation;
    if applied.names_check_due(&region_key, generation) {
        crate::api::validate::region(region, None)?;
        ownership::check(&ctx.client, region).await?;
        applied.names_checked(&region_key, generation);
    }
    let valid = ValidatedRegion::load(ctx, region, Some(secrets)).await?;
    let (ns, name) = (&valid.namespace, &valid.name);
    let creds = &valid.credentials;
    let client = &ctx.client;

    // Build, and apply unless the last full pass applied this very build and
    // no child moved since (see `applied`).
    let children = children::region_children(&valid)?;
    let proxied = crate::operator::toxiproxy::enabled(region);
    let fingerprint = applied::fingerprint(&children, proxied);
    let ready_replicas = match applied.unchanged(&region_key, fingerprint, Instant::now()) {
        Ok(ready) => {
            // A Toxiproxy's proxies live in its memory, not in an object
            // whose change the watch would see: sync them on every look.
            if proxied {
                reconcile_toxiproxy(ctx, &valid).await?;
            }
            ready
        }
        Err(why) => {
            tracing::debug!(region = %region_key, why = why.as_str(), "applying every child");
            let pass = applied.begin(&region_key);
            ctx.metrics.region_full_pass(why.as_str());
            let status_written = region
                .status
                .as_ref()
                .is_some_and(|s| s.observed_generation.is_some());
            let prune = applied::prune_due(why, status_written);
            let (ready, own_writes) = apply_children(ctx, &valid, &children, prune).await?;
            applied.record(pass, fingerprint, ready.clone(), own_writes, Instant::now());
            ready
        }
    };

    // Observe: dial every zone that should answer.
    let mut external_users = HashMap::new();
    for zone in region.spec.zones.iter().filter(|z| z.external.is_some()) {
        let user = credentials::for_external_zone(client, region, zone, &creds.app).await?;
        external_users.insert(zone.name.clone(), user);
    }
    let dialed = observe::dial_zones(ctx, &valid, creds, &external_users, &ready_replicas).await;

    // Streams, then what the zones look like.
    // One list a pass: the running drills' temporary zones are kept in the
    // aggregates, and the one holding the region explains its lag.
    let drills = drills::list(client, ns).await?;
    let keep = drills::sources_of_running_drills(region, &drills);
    let holder = drills::holder(name, &drills).map(|d| d.name_any());
    let (mut streams_state, errors) =
        streams::provision(&region.spec, &dialed.connected, &keep).await;
    for e in &errors {
        ctx.metrics.failed(CONTROLLER, e.reason());
        warn(ctx, region, e.reason(), &e.to_string()).await;
    }
    for (reason, message) in &dialed.failures {
        ctx.metrics.failed(CONTROLLER, reason);
        warn(ctx, region, reason, message).await;
    }
    // A zone that should answer and does not is a failure, not a wait.
    if let Some((reason, _)) = dialed.failures.first()
        && !matches!(streams_state, StreamsState::Failed { .. })
    {
        streams_state = StreamsState::Failed {
            reason,
            message: dialed
                .failures
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    if let StreamsState::NeedsRecreate(message) = &streams_state {
        warn(ctx, region, "StreamNeedsRecreate", message).await;
    }
    // One connection per zone per refresh, closed when this reconcile ends:
    // nothing is kept that could go stale between reconciles.
    let probes: Vec<ZoneProbe> = dialed
        .connected
        .iter()
        .map(|c| ZoneProbe::new(&c.zone, &c.client, c.monitor.clone()))
        .collect();
    let state = if region.spec.is_sources() {
        read_sources_region(&SourcesLayout::of(&region.spec), &probes).await
    } else {
        read_region(&region.spec.stream.name, &probes).await
    };
    let mut zones = observe::zone_statuses(
        &region.spec.zones,
        &state,
        &dialed.unreachable,
        &ready_replicas,
    );
    // A link that cannot be trusted is the cause of whatever else the zone
    // shows (a mirror that never syncs), so it is named first.
    for (zone, why) in valid.untrusted_links() {
        if let Some(z) = zones.iter_mut().find(|z| &z.name == zone) {
            z.error = Some(match z.error.take() {
                Some(other) => format!("{why}; {other}"),
                None => why.clone(),
            });
        }
    }

    // With sources every zone holds an aggregate, so every zone has a lag.
    let lags: Vec<(String, Option<i64>)> = zones
        .iter()
        .filter(|z| region.spec.is_sources() || z.role == "mirror")
        .map(|z| (z.name.clone(), z.lag))
        .collect();
    ctx.metrics.set_region_lag(ns, name, &lags);
    let streams: Vec<String> = lags.iter().map(|(zone, _)| zone.clone()).collect();
    ctx.metrics.set_region_resume_zones(ns, name, &streams);
    resume::resume_stalled(
        ctx,
        region,
        &dialed.connected,
        &zones,
        holder.as_deref(),
        &rc.nudges,
    )
    .await;
    let silent = ctx.settings.resume_stalled_mirrors_after.is_some() && resume::any_silent(&zones);

    let old = region.status.clone().unwrap_or_default();
    let mut new = status::observed(
        region,
        &old,
        zones,
        &streams_state,
        holder.as_deref(),
        now(),
    );
    new.tls = valid.tls.as_ref().and_then(|t| t.status());
    if new != old {
        write_status(ctx, region, &new).await?;
    }
    ctx.metrics.set_region_state(ns, name, status::state(&new));
    let warned = !errors.is_empty() || !dialed.failures.is_empty();
    Ok(Action::requeue(next_look(
        &new,
        warned,
        silent,
        ctx.settings.status_refresh,
    )))
}

/// How long until a region is observed again. Mirrors behind with every zone
/// answering is usually a region still converging: a mirror created in this
/// very pass has not heard from its source yet (no `mirror.active`), and
/// waiting a whole status refresh left that stale "never heard" status up for
/// 30 s. A pass that warned (a zone or stream failing) keeps the refresh, so
/// a broken region is not hammered and its Events not repeated every 3 s.
/// A stream not hearing from its source (`silent`, see
/// `resume::any_silent`) is looked at soon as well, warned or not: its
/// stall is to be resumed within seconds of its link coming back.
fn next_look(
    status: &RegionMirrorStatus,
    warned: bool,
    silent: bool,
    refresh: Duration,
) -> Duration {
    // A drill's lag is looked at as often: its end shows as soon.
    let converging = status.conditions.iter().any(|c| {
        c.type_ == status::READY
            && (c.status == "False" && c.reason == "MirrorsBehind"
                || c.reason == status::DRILL_IN_PROGRESS)
    });
    if (converging && !warned) || silent {
        refresh.min(SETTLING_REFRESH)
    } else {
        refresh
    }
}

const SETTLING_REFRESH: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::{RegionMirrorStatus, SETTLING_REFRESH, next_look, status};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use std::time::Duration;

    fn with_ready(ready: &str, reason: &str) -> RegionMirrorStatus {
        RegionMirrorStatus {
            conditions: vec![Condition {
                type_: status::READY.into(),
                status: ready.into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_converging_region_is_looked_at_again_soon_a_settled_or_failing_one_is_not() {
        let refresh = Duration::from_secs(30);
        let behind = with_ready("False", "MirrorsBehind");
        assert_eq!(next_look(&behind, false, false, refresh), SETTLING_REFRESH);
        assert_eq!(next_look(&behind, true, false, refresh), refresh);
        let ready = with_ready("True", "RegionReady");
        assert_eq!(next_look(&ready, false, false, refresh), refresh);
        assert_eq!(
            next_look(&with_ready("False", "ZonesNotReady"), false, false, refresh),
            refresh
        );
        // A silent mirror (lag 0 while its link is cut) is looked at soon.
        assert_eq!(next_look(&ready, false, true, refresh), SETTLING_REFRESH);
        assert_eq!(next_look(&behind, true, true, refresh), SETTLING_REFRESH);
        // A refresh shorter than the settling interval stays as configured.
        let quick = Duration::from_secs(1);
        assert_eq!(next_look(&behind, false, false, quick), quick);
    }
}
